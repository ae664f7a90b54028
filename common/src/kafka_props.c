/*
 * kafka_props.c — the operator's librdkafka properties (see kafka_props.h).
 *
 * The list keeps one entry per property name (a later source replaces an earlier value) with
 * where it came from, so that an error at any point names the variable or the file line the
 * operator has to fix. Each value is tried on a scratch rd_kafka_conf_t as it is added: an
 * unknown property or a value librdkafka refuses fails at start-up, not when a handle is made.
 * librdkafka quotes the refused value in its error text; for a secret property that text is
 * replaced by ours.
 */
#include "mspsync/kafka_props.h"
#include "mspsync/config.h"
#include "mspsync/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    char *value;
    char *origin; /* "MSPSYNC_KAFKA_PROP_X" or "MSPSYNC_KAFKA_PROPERTIES_FILE: path:line" */
    int   secret;
} prop_t;

struct msp_kafka_props_s {
    prop_t          *v;
    int              cnt, cap;
    rd_kafka_conf_t *scratch; /* values are tried here as they are added */
};

msp_kafka_props_t *msp_kafka_props_new(void) {
    msp_kafka_props_t *p = calloc(1, sizeof(*p));
    if (p && !(p->scratch = rd_kafka_conf_new())) {
        free(p);
        return NULL;
    }
    return p;
}

static void prop_clear(prop_t *e) {
    if (e->value) {
        if (e->secret) msp_log_unredact(e->value);
        explicit_bzero(e->value, strlen(e->value));
    }
    free(e->name);
    free(e->value);
    free(e->origin);
    memset(e, 0, sizeof(*e));
}

void msp_kafka_props_destroy(msp_kafka_props_t *p) {
    if (!p) return;
    for (int i = 0; i < p->cnt; i++) prop_clear(&p->v[i]);
    free(p->v);
    if (p->scratch) rd_kafka_conf_destroy(p->scratch);
    free(p);
}

int msp_kafka_prop_secret(const char *name) {
    static const char *const marks[] = {"password", "secret", "ssl.key.pem", "ssl_key",
                                        "sasl.oauthbearer.config", "jaas"};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
        if (strstr(name, marks[i])) return 1;
    return 0;
}

int msp_kafka_prop_name(const char *var, char *out, size_t size, int *from_file) {
    size_t plen = strlen(MSP_KAFKA_PROP_ENV), n, o = 0;
    if (strncmp(var, MSP_KAFKA_PROP_ENV, plen)) return -1;
    const char *s = var + plen;
    n = strlen(s);
    int file = n > 5 && !strcmp(s + n - 5, "_FILE");
    if (file) n -= 5;
    if (from_file) *from_file = file;
    if (n == 0 || s[0] == '_' || s[n - 1] == '_') return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!isalnum((unsigned char)c) && c != '_') return -1;
        if (c == '_' && i + 1 < n && s[i + 1] == '_') {
            i++; /* "__" is a literal '_' */
        } else if (c == '_') {
            c = '.';
        }
        if (o + 1 >= size) return -1;
        out[o++] = (char)tolower((unsigned char)c);
    }
    out[o] = '\0';
    return 0;
}

/* Try name=value on conf; errstr gets origin and the reason, never a secret value. */
static int prop_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                    const char *origin, char *errstr, size_t errstr_size) {
    char why[512];
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, name, value, why, sizeof(why));
    if (r == RD_KAFKA_CONF_OK) return 0;
    if (r == RD_KAFKA_CONF_UNKNOWN)
        snprintf(errstr, errstr_size, "%s: unknown librdkafka property \"%s\"", origin, name);
    else if (msp_kafka_prop_secret(name))
        snprintf(errstr, errstr_size, "%s: invalid value for \"%s\"", origin, name);
    else
        snprintf(errstr, errstr_size, "%s: %s", origin, why);
    explicit_bzero(why, sizeof(why));
    return -1;
}

/* Check and add (or replace) one property; value and origin are copied. */
static int props_add(msp_kafka_props_t *p, const char *name, const char *value,
                     const char *origin, char *errstr, size_t errstr_size) {
    if (prop_set(p->scratch, name, value, origin, errstr, errstr_size) != 0) return -1;
    int i = 0;
    while (i < p->cnt && strcmp(p->v[i].name, name)) i++;
    if (i == p->cnt) {
        if (p->cnt == p->cap) {
            int cap = p->cap ? p->cap * 2 : 8;
            prop_t *v = realloc(p->v, (size_t)cap * sizeof(*v));
            if (!v) goto oom;
            p->v = v;
            p->cap = cap;
        }
        memset(&p->v[p->cnt++], 0, sizeof(prop_t));
    }
    prop_clear(&p->v[i]);
    prop_t *e = &p->v[i];
    e->name = strdup(name);
    e->value = strdup(value);
    e->origin = strdup(origin);
    e->secret = msp_kafka_prop_secret(name);
    if (!e->name || !e->value || !e->origin) goto oom;
    if (e->secret) msp_log_redact(e->value);
    return 0;
oom:
    snprintf(errstr, errstr_size, "%s: out of memory", origin);
    return -1;
}

/* s without surrounding blanks, in place. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

/* One line of the file: blank, a comment, or key=value. */
static int file_line(msp_kafka_props_t *p, char *line, const char *where, char *errstr,
                     size_t errstr_size) {
    char *s = trim(line);
    if (!*s || *s == '#' || *s == '!') return 0;
    char *eq = strchr(s, '=');
    if (!eq) {
        snprintf(errstr, errstr_size, "%s: expected key=value", where);
        return -1;
    }
    *eq = '\0';
    char *key = trim(s);
    if (!*key) {
        snprintf(errstr, errstr_size, "%s: no property name before '='", where);
        return -1;
    }
    return props_add(p, key, trim(eq + 1), where, errstr, errstr_size);
}

int msp_kafka_props_load_file(msp_kafka_props_t *p, const char *path, char *errstr,
                              size_t errstr_size) {
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(errstr, errstr_size, "MSPSYNC_KAFKA_PROPERTIES_FILE: cannot read %s: %s", path,
                 strerror(errno));
        return -1;
    }
    char *line = NULL, where[600];
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    for (int no = 1; rc == 0 && (len = getline(&line, &cap, f)) >= 0; no++) {
        snprintf(where, sizeof(where), "MSPSYNC_KAFKA_PROPERTIES_FILE: %s:%d", path, no);
        rc = file_line(p, line, where, errstr, errstr_size);
        explicit_bzero(line, (size_t)len);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(errstr, errstr_size, "MSPSYNC_KAFKA_PROPERTIES_FILE: cannot read %s", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* One MSPSYNC_KAFKA_PROP_* variable ("NAME=value"). */
static int env_prop(msp_kafka_props_t *p, const char *entry, char *errstr, size_t errstr_size) {
    char var[256], name[256];
    const char *eq = strchr(entry, '=');
    if (!eq || !eq[1]) return 0; /* empty = unset */
    if ((size_t)(eq - entry) >= sizeof(var)) {
        snprintf(errstr, errstr_size, "%.60s...: variable name too long", entry);
        return -1;
    }
    memcpy(var, entry, (size_t)(eq - entry));
    var[eq - entry] = '\0';
    int from_file = 0;
    if (msp_kafka_prop_name(var, name, sizeof(name), &from_file) != 0) {
        snprintf(errstr, errstr_size, "%s: not a property name (MSPSYNC_KAFKA_PROP_ then the "
                 "librdkafka name in capitals, '_' for '.', '__' for '_')", var);
        return -1;
    }
    if (!from_file) return props_add(p, name, eq + 1, var, errstr, errstr_size);
    char *value = NULL;
    errstr[0] = '\0';
    if (msp_secret_file_read(var, eq + 1, &value, errstr, errstr_size) != 0) return -1;
    int rc = props_add(p, name, value, var, errstr, errstr_size);
    explicit_bzero(value, strlen(value));
    free(value);
    return rc;
}

int msp_kafka_props_load_env(msp_kafka_props_t *p, char **envp, char *errstr,
                             size_t errstr_size) {
    size_t plen = strlen(MSP_KAFKA_PROP_ENV);
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, MSP_KAFKA_PROP_ENV, plen)) continue;
        if (env_prop(p, *e, errstr, errstr_size) != 0) return -1;
    }
    return 0;
}

int msp_kafka_props_count(const msp_kafka_props_t *p) {
    return p ? p->cnt : 0;
}

const char *msp_kafka_props_get(const msp_kafka_props_t *p, const char *name) {
    for (int i = 0; p && i < p->cnt; i++)
        if (!strcmp(p->v[i].name, name)) return p->v[i].value;
    return NULL;
}

int msp_kafka_props_apply(const msp_kafka_props_t *p, rd_kafka_conf_t *conf, char *errstr,
                          size_t errstr_size) {
    for (int i = 0; p && i < p->cnt; i++)
        if (prop_set(conf, p->v[i].name, p->v[i].value, p->v[i].origin, errstr, errstr_size))
            return -1;
    return 0;
}
