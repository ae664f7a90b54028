/*
 * config.c — settings from the environment, driven by one table per service.
 *
 * The table is the single source of truth: the parser below, `--help` and the Markdown in
 * docs/configuration.md are all generated from it, so documentation cannot drift from behaviour.
 *
 * Loading is all-or-nothing. Every entry is parsed and validated first; only when all are valid
 * are the destinations written. On error no destination is touched and nothing is allocated, and
 * errstr lists every invalid variable ("A: ...; B: ...") so an operator fixes them in one go.
 *
 * An empty variable counts as unset (container tooling often passes "VAR=" for "not given").
 * Values of entries marked secret are never printed: not in --help, not in the Markdown, not in
 * error messages. A secret entry NAME may instead be given as NAME_FILE, the path of a file
 * holding it (a Docker or Kubernetes secret mounted as a file): one trailing newline is dropped,
 * setting both is an error, and so is a file that cannot be read or is empty.
 */
#include "mspsync/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef union {
    char *s;
    long long i;
    int b;
} cfg_value_t;

static const char *type_name(msp_cfg_type_t t) {
    switch (t) {
    case MSP_CFG_STR:  return "string";
    case MSP_CFG_INT:  return "int";
    case MSP_CFG_BOOL: return "bool";
    case MSP_CFG_EXPAND: break; /* expanded before anything prints or reads it */
    }
    return "?";
}

static int has_bounds(const msp_config_entry_t *e) {
    return !(e->min == 0 && e->max == 0);
}

/* Append "; "-separated error text to errstr, truncating silently when it is full. */
static void add_err(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_err(char *errstr, size_t errstr_size, const char *fmt, ...) {
    size_t used;
    va_list ap;

    if (!errstr || errstr_size == 0)
        return;
    used = strnlen(errstr, errstr_size);
    if (used + 1 >= errstr_size)
        return;
    if (used > 0) {
        snprintf(errstr + used, errstr_size - used, "; ");
        used = strnlen(errstr, errstr_size);
        if (used + 1 >= errstr_size)
            return;
    }
    va_start(ap, fmt);
    vsnprintf(errstr + used, errstr_size - used, fmt, ap);
    va_end(ap);
}

/* Copy of s without surrounding whitespace into buf; returns buf, or NULL if it does not fit. */
static char *trimmed(const char *s, char *buf, size_t size) {
    const char *end;
    size_t len;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    len = (size_t)(end - s);
    if (len >= size)
        return NULL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

static int parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"1", "true", "yes"};
    static const char *const no[]  = {"0", "false", "no"};
    size_t i;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = 1;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Parse and validate one entry's text into *v. Returns 0, or -1 after adding to errstr.
 * from_default only changes the wording: a bad default is a bug in the table, not the
 * operator's. */
static int parse_entry(const msp_config_entry_t *e, const char *text, int from_default,
                       cfg_value_t *v, char *errstr, size_t errstr_size) {
    const char *origin = from_default ? " (built-in default)" : "";
    char buf[64], *t, *end;

    switch (e->type) {
    case MSP_CFG_STR:
        v->s = strdup(text);
        if (!v->s) {
            add_err(errstr, errstr_size, "%s: out of memory", e->name);
            return -1;
        }
        return 0;

    case MSP_CFG_INT:
        t = trimmed(text, buf, sizeof(buf));
        if (t && *t) {
            errno = 0;
            v->i  = strtoll(t, &end, 10);
            if (*end == '\0' && errno != ERANGE) {
                if (has_bounds(e) && (v->i < e->min || v->i > e->max)) {
                    add_err(errstr, errstr_size, "%s: must be between %lld and %lld%s", e->name,
                            e->min, e->max, origin);
                    return -1;
                }
                return 0;
            }
            if (*end == '\0') { /* ERANGE: a number, just far too big for long long */
                if (has_bounds(e))
                    add_err(errstr, errstr_size, "%s: must be between %lld and %lld%s", e->name,
                            e->min, e->max, origin);
                else
                    add_err(errstr, errstr_size, "%s: integer out of range%s", e->name, origin);
                return -1;
            }
        }
        if (e->secret)
            add_err(errstr, errstr_size, "%s: not an integer%s", e->name, origin);
        else
            add_err(errstr, errstr_size, "%s: not an integer: '%s'%s", e->name, text, origin);
        return -1;

    case MSP_CFG_BOOL:
        t = trimmed(text, buf, sizeof(buf));
        if (t && parse_bool(t, &v->b) == 0)
            return 0;
        if (e->secret)
            add_err(errstr, errstr_size, "%s: not a boolean (use 1/0, true/false, yes/no)%s",
                    e->name, origin);
        else
            add_err(errstr, errstr_size,
                    "%s: not a boolean: '%s' (use 1/0, true/false, yes/no)%s", e->name, text,
                    origin);
        return -1;

    case MSP_CFG_EXPAND: /* expanded before anything reads it: rows do not expand further */ break;
    }

    add_err(errstr, errstr_size, "%s: unknown setting type %d", e->name, (int)e->type);
    return -1;
}

/* The largest secret file read: a token or a password, never a document. */
#define SECRET_FILE_MAX 65536

int msp_secret_file_read(const char *var, const char *path, char **out, char *errstr,
                         size_t errstr_size) {
    char buf[SECRET_FILE_MAX + 1];
    size_t n = 0;
    ssize_t r = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *out = NULL;
    if (fd < 0) {
        add_err(errstr, errstr_size, "%s: cannot read %s: %s", var, path, strerror(errno));
        return -1;
    }
    while (n < sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - n)) > 0)
        n += (size_t)r;
    if (r < 0)
        add_err(errstr, errstr_size, "%s: cannot read %s: %s", var, path, strerror(errno));
    else if (n > SECRET_FILE_MAX)
        add_err(errstr, errstr_size, "%s: %s is larger than %d bytes", var, path, SECRET_FILE_MAX);
    close(fd);
    if (r >= 0 && n <= SECRET_FILE_MAX) {
        if (n > 0 && buf[n - 1] == '\n')
            n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
        if (n == 0)
            add_err(errstr, errstr_size, "%s: %s is empty", var, path);
        else if (memchr(buf, '\0', n))
            add_err(errstr, errstr_size, "%s: %s holds a NUL byte", var, path);
        else if (!(*out = strndup(buf, n)))
            add_err(errstr, errstr_size, "%s: out of memory", var);
    }
    explicit_bzero(buf, sizeof(buf));
    return *out ? 0 : -1;
}

/* The text of a secret entry from NAME or NAME_FILE. *text is the environment's (borrowed) or
 * *owned's (new, from the file; wipe and free it). Returns 0, or -1 after adding to errstr. */
static int secret_text(const msp_config_entry_t *e, const char **text, char **owned,
                       char *errstr, size_t errstr_size) {
    char var[256];
    const char *path;

    *owned = NULL;
    snprintf(var, sizeof(var), "%s_FILE", e->name);
    path = getenv(var);
    if (!path || !*path)
        return 0;
    if (*text && **text) {
        add_err(errstr, errstr_size, "set only one of %s and %s", e->name, var);
        return -1;
    }
    if (msp_secret_file_read(var, path, owned, errstr, errstr_size) != 0)
        return -1;
    *text = *owned;
    return 0;
}

/* Text shown in the DEFAULT column. */
static const char *default_text(const msp_config_entry_t *e) {
    if (!e->def)
        return "(required)";
    if (e->secret)
        return "(secret)";
    if (!*e->def)
        return "\"\"";
    return e->def;
}

/* Description plus the valid range for bounded integers, into buf. */
static const char *describe(const msp_config_entry_t *e, char *buf, size_t size) {
    const char *help = e->help ? e->help : "";

    if (e->type == MSP_CFG_INT && has_bounds(e))
        snprintf(buf, size, "%s%s(%lld..%lld)", help, *help ? " " : "", e->min, e->max);
    else if (e->secret)
        snprintf(buf, size, "%s%s(or %s_FILE: a file holding it)", help, *help ? " " : "",
                 e->name);
    else
        snprintf(buf, size, "%s", help);
    return buf;
}

static void print_help(const char *service, const msp_config_entry_t *tbl) {
    const msp_config_entry_t *e;
    int wname = (int)strlen("NAME"), wtype = (int)strlen("TYPE"), wdef = (int)strlen("DEFAULT");
    char desc[512];

    for (e = tbl; e->name; e++) {
        int l;
        if ((l = (int)strlen(e->name)) > wname)
            wname = l;
        if ((l = (int)strlen(type_name(e->type))) > wtype)
            wtype = l;
        if ((l = (int)strlen(default_text(e))) > wdef)
            wdef = l;
    }

    printf("Usage: mspsync-%s [--help]\n\n", service ? service : "mspsync");
    printf("%-*s  %-*s  %-*s  %s\n", wname, "NAME", wtype, "TYPE", wdef, "DEFAULT", "DESCRIPTION");
    for (e = tbl; e->name; e++)
        printf("%-*s  %-*s  %-*s  %s\n", wname, e->name, wtype, type_name(e->type), wdef,
               default_text(e), describe(e, desc, sizeof(desc)));
    fflush(stdout);
}

static void print_markdown(const char *service, const msp_config_entry_t *tbl);

static int load_flat(const char *service, const msp_config_entry_t *tbl, int argc, char **argv,
                     char *errstr, size_t errstr_size) {
    const msp_config_entry_t *e;
    cfg_value_t *vals;
    size_t n = 0, i;
    int failed = 0;

    if (errstr && errstr_size)
        errstr[0] = '\0';
    if (!tbl) {
        add_err(errstr, errstr_size, "no configuration table");
        return -1;
    }

    for (i = 1; argv && i < (size_t)(argc > 0 ? argc : 0); i++) {
        if (argv[i] && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))) {
            print_help(service, tbl);
            return 1;
        }
        if (argv[i] && !strcmp(argv[i], "--help-markdown")) {
            print_markdown(service, tbl);
            return 1;
        }
    }

    for (e = tbl; e->name; e++)
        n++;
    vals = calloc(n ? n : 1, sizeof(*vals));
    if (!vals) {
        add_err(errstr, errstr_size, "out of memory");
        return -1;
    }

    /* Pass 1: parse everything, collecting every error. */
    for (i = 0; i < n; i++) {
        const char *text = getenv(tbl[i].name);
        char *owned = NULL;
        int from_default = 0;

        if (tbl[i].secret &&
            secret_text(&tbl[i], &text, &owned, errstr, errstr_size) != 0) {
            failed = 1;
            continue;
        }
        if (!text || !*text) {
            text         = tbl[i].def;
            from_default = 1;
        }
        if (!text) {
            add_err(errstr, errstr_size, "%s is required", tbl[i].name);
            failed = 1;
            continue;
        }
        if (parse_entry(&tbl[i], text, from_default, &vals[i], errstr, errstr_size) == -1)
            failed = 1;
        if (owned) {
            explicit_bzero(owned, strlen(owned));
            free(owned);
        }
    }

    /* Pass 2: all valid, so publish; otherwise release what pass 1 allocated. */
    for (i = 0; i < n; i++) {
        if (tbl[i].type == MSP_CFG_STR) {
            if (failed || !tbl[i].dest) {
                if (vals[i].s && tbl[i].secret)
                    explicit_bzero(vals[i].s, strlen(vals[i].s));
                free(vals[i].s);
            } else {
                *(char **)tbl[i].dest = vals[i].s;
            }
        } else if (!failed && tbl[i].dest) {
            if (tbl[i].type == MSP_CFG_INT)
                *(long long *)tbl[i].dest = vals[i].i;
            else
                *(int *)tbl[i].dest = vals[i].b;
        }
    }
    free(vals);
    return failed ? -1 : 0;
}

/* Markdown cell text: '|' would end the cell, so escape it. */
static void md_cell(const char *s) {
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", stdout);
        else if (*s == '\n')
            fputc(' ', stdout);
        else
            fputc(*s, stdout);
    }
}

static void print_markdown(const char *service, const msp_config_entry_t *tbl) {
    const msp_config_entry_t *e;
    char desc[512];

    printf("### mspsync-%s\n\n", service ? service : "mspsync");
    printf("| Variable | Type | Default | Description |\n");
    printf("|----------|------|---------|-------------|\n");
    for (e = tbl; e && e->name; e++) {
        printf("| `%s` | %s | ", e->name, type_name(e->type));
        if (!e->def) {
            fputs("**required**", stdout);
        } else if (e->secret) {
            fputs("(secret)", stdout);
        } else if (!*e->def) {
            fputs("(empty)", stdout);
        } else {
            fputc('`', stdout);
            md_cell(e->def);
            fputc('`', stdout);
        }
        fputs(" | ", stdout);
        md_cell(describe(e, desc, sizeof(desc)));
        fputs(" |\n", stdout);
    }
    fputc('\n', stdout);
    fflush(stdout);
}

static void free_flat(const msp_config_entry_t *tbl) {
    const msp_config_entry_t *e;

    for (e = tbl; e && e->name; e++) {
        char **p;
        if (e->type != MSP_CFG_STR || !e->dest)
            continue;
        p = (char **)e->dest;
        if (*p && e->secret)
            explicit_bzero(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

/* ---- tables with expanded rows ---------------------------------------------------------- */

/* tbl with every MSP_CFG_EXPAND entry replaced by its rows, ending with {NULL}: new (free()), or
 * NULL (out of memory). */
static msp_config_entry_t *flatten(const msp_config_entry_t *tbl) {
    const msp_config_entry_t *e;
    size_t n = 0, k = 0;
    for (e = tbl; e && e->name; e++)
        n += e->type == MSP_CFG_EXPAND ? e->expand(e->dest, NULL, 0) : 1;
    msp_config_entry_t *flat = calloc(n + 1, sizeof(*flat));
    for (e = tbl; flat && e && e->name; e++)
        k += e->type == MSP_CFG_EXPAND ? e->expand(e->dest, flat + k, n - k) : (flat[k] = *e, 1);
    return flat;
}

int msp_config_load(const char *service, const msp_config_entry_t *tbl, int argc, char **argv,
                    char *errstr, size_t errstr_size) {
    msp_config_entry_t *flat = tbl ? flatten(tbl) : NULL;
    if (tbl && !flat) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    int rc = load_flat(service, flat, argc, argv, errstr, errstr_size);
    free(flat);
    return rc;
}

void msp_config_print_markdown(const char *service, const msp_config_entry_t *tbl) {
    msp_config_entry_t *flat = flatten(tbl);
    print_markdown(service, flat);
    free(flat);
}

void msp_config_free(const msp_config_entry_t *tbl) {
    msp_config_entry_t *flat = flatten(tbl);
    free_flat(flat);
    free(flat);
}

/* ---- masking addresses ----------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t size, len;
} mask_out_t;

static void mask_put(mask_out_t *o, const char *s, size_t n) {
    while (n-- > 0 && o->len + 1 < o->size)
        o->p[o->len++] = *s++;
    o->p[o->len] = '\0';
}

static int all_digits(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

char *msp_url_mask(const char *url, char *out, size_t size) {
    mask_out_t o = {out, size, 0};
    const char *rest, *sep, *at, *colon, *auth_end, *port;
    size_t n;

    if (!out || size == 0)
        return out;
    out[0] = '\0';
    if (!url)
        return out;

    /* scheme, when what precedes "://" looks like one */
    rest = url;
    sep  = strstr(url, "://");
    if (sep && sep > url && strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789+.-_") == (size_t)(sep - url)) {
        mask_put(&o, url, (size_t)(sep - url) + 3);
        rest = sep + 3;
    }

    /* user info: up to the LAST '@' (a password may hold '@' or '/'); the user name stays */
    at = strrchr(rest, '@');
    if (at) {
        colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon)
            mask_put(&o, rest, (size_t)(colon - rest) + 1);
        mask_put(&o, "***@", 4);
        rest = at + 1;
    }

    /* host[:port]: a port that is not a number is masked as well */
    auth_end = rest + strcspn(rest, "/?#");
    port     = NULL;
    if (*rest == '[') {
        const char *close = memchr(rest, ']', (size_t)(auth_end - rest));
        if (close && close + 1 < auth_end && close[1] == ':')
            port = close + 2;
    } else {
        for (const char *p = auth_end; p > rest; p--)
            if (p[-1] == ':') {
                port = p;
                break;
            }
    }
    n = port ? (size_t)(auth_end - port) : 0;
    if (port && n > 0 && !all_digits(port, n)) {
        mask_put(&o, rest, (size_t)(port - rest));
        mask_put(&o, "***", 3);
    } else {
        mask_put(&o, rest, (size_t)(auth_end - rest));
    }
    mask_put(&o, auth_end, strlen(auth_end));
    return out;
}
