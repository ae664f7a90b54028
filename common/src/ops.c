/*
 * ops.c — the metrics registry and the /healthz, /readyz, /metrics endpoints.
 *
 * A registry is two small arrays: families (name, type, help) and series (name, label text,
 * value). Services own a few dozen series at most, so lookups are linear and the exposition sorts
 * a copy of the series pointers by name, then label text: the output order is stable whatever the
 * order of the first increments was, and every family prints its HELP and TYPE lines exactly once.
 *
 * Every series carries service="<service>" first; the service value is escaped here (\\, \", \n
 * per the text format). The caller's label text is used as given: callers build it with values
 * they control and escape (the gateway escapes what it puts there).
 *
 * Single-threaded by contract (ops.h): no locks.
 */
#include "mspsync/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

typedef struct msp_family_s {
    char *name;
    char *type;  /* "counter" or "gauge" */
    char *help;  /* may be NULL */
} msp_family_t;

typedef struct msp_series_s {
    char  *name;
    char  *labels;  /* caller's label text, "" when none */
    double value;
} msp_series_t;

struct msp_metrics_s {
    char          *service_label;  /* service="<escaped>" */
    msp_family_t  *fam;
    size_t         fam_n, fam_cap;
    msp_series_t  *ser;
    size_t         ser_n, ser_cap;
    msp_ready_cb  *ready;         /* set by msp_ops_mount (msp_ops_bind) */
    void          *ready_opaque;
};

/* Escape a label value: backslash, double quote and newline (text format 0.0.4). */
static char *escape_label_value(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            *o++ = '\\';
            *o++ = *s;
        } else if (*s == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

/* HELP text escaping: only backslash and newline. Appended to buf. */
static void append_help(struct evbuffer *buf, const char *s) {
    for (; *s; s++) {
        if (*s == '\\')
            evbuffer_add(buf, "\\\\", 2);
        else if (*s == '\n')
            evbuffer_add(buf, "\\n", 2);
        else
            evbuffer_add(buf, s, 1);
    }
}

static int valid_metric_name(const char *s) {
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        int c = (unsigned char)*p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

msp_metrics_t *msp_metrics_new(const char *service) {
    msp_metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    char *esc = escape_label_value(service ? service : "");
    if (!esc) {
        free(m);
        return NULL;
    }
    size_t len = strlen(esc) + sizeof("service=\"\"");
    m->service_label = malloc(len);
    if (!m->service_label) {
        free(esc);
        free(m);
        return NULL;
    }
    snprintf(m->service_label, len, "service=\"%s\"", esc);
    free(esc);
    return m;
}

void msp_metrics_destroy(msp_metrics_t *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->fam_n; i++) {
        free(m->fam[i].name);
        free(m->fam[i].type);
        free(m->fam[i].help);
    }
    for (size_t i = 0; i < m->ser_n; i++) {
        free(m->ser[i].name);
        free(m->ser[i].labels);
    }
    free(m->fam);
    free(m->ser);
    free(m->service_label);
    free(m);
}

static msp_family_t *family_find(const msp_metrics_t *m, const char *name) {
    for (size_t i = 0; i < m->fam_n; i++)
        if (strcmp(m->fam[i].name, name) == 0)
            return &m->fam[i];
    return NULL;
}

void msp_metric_declare(msp_metrics_t *m, const char *name, const char *type, const char *help) {
    if (!m || !valid_metric_name(name))
        return;
    const char *t = (type && strcmp(type, "counter") == 0) ? "counter" : "gauge";
    msp_family_t *f = family_find(m, name);
    if (!f) {
        if (m->fam_n == m->fam_cap) {
            size_t cap = m->fam_cap ? m->fam_cap * 2 : 8;
            msp_family_t *nf = realloc(m->fam, cap * sizeof(*nf));
            if (!nf)
                return;
            m->fam = nf;
            m->fam_cap = cap;
        }
        f = &m->fam[m->fam_n];
        memset(f, 0, sizeof(*f));
        f->name = strdup(name);
        if (!f->name)
            return;
        m->fam_n++;
    }
    free(f->type);
    free(f->help);
    f->type = strdup(t);
    f->help = help ? strdup(help) : NULL;
}

static msp_series_t *series_find(const msp_metrics_t *m, const char *name, const char *labels) {
    if (!labels)
        labels = "";
    for (size_t i = 0; i < m->ser_n; i++)
        if (strcmp(m->ser[i].name, name) == 0 && strcmp(m->ser[i].labels, labels) == 0)
            return &m->ser[i];
    return NULL;
}

static msp_series_t *series_get(msp_metrics_t *m, const char *name, const char *labels) {
    if (!m || !valid_metric_name(name))
        return NULL;
    msp_series_t *s = series_find(m, name, labels);
    if (s)
        return s;
    if (m->ser_n == m->ser_cap) {
        size_t cap = m->ser_cap ? m->ser_cap * 2 : 16;
        msp_series_t *ns = realloc(m->ser, cap * sizeof(*ns));
        if (!ns)
            return NULL;
        m->ser = ns;
        m->ser_cap = cap;
    }
    s = &m->ser[m->ser_n];
    s->name = strdup(name);
    s->labels = strdup(labels ? labels : "");
    s->value = 0;
    if (!s->name || !s->labels) {
        free(s->name);
        free(s->labels);
        return NULL;
    }
    m->ser_n++;
    return s;
}

void msp_metric_add(msp_metrics_t *m, const char *name, const char *labels, double v) {
    msp_series_t *s = series_get(m, name, labels);
    if (s)
        s->value += v;
}

void msp_metric_set(msp_metrics_t *m, const char *name, const char *labels, double v) {
    msp_series_t *s = series_get(m, name, labels);
    if (s)
        s->value = v;
}

double msp_metric_get(const msp_metrics_t *m, const char *name, const char *labels) {
    if (!m || !name)
        return 0;
    const msp_series_t *s = series_find(m, name, labels);
    return s ? s->value : 0;
}

static int series_cmp(const void *a, const void *b) {
    const msp_series_t *x = *(const msp_series_t *const *)a;
    const msp_series_t *y = *(const msp_series_t *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

static void append_value(struct evbuffer *buf, double v) {
    if (isnan(v))
        evbuffer_add_printf(buf, "NaN");
    else if (isinf(v))
        evbuffer_add_printf(buf, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        evbuffer_add_printf(buf, "%.0f", v);
    else
        evbuffer_add_printf(buf, "%.17g", v);
}

char *msp_metrics_render(const msp_metrics_t *m) {
    if (!m)
        return strdup("");
    struct evbuffer *buf = evbuffer_new();
    if (!buf)
        return NULL;
    const msp_series_t **order = NULL;
    if (m->ser_n) {
        order = malloc(m->ser_n * sizeof(*order));
        if (!order) {
            evbuffer_free(buf);
            return NULL;
        }
        for (size_t i = 0; i < m->ser_n; i++)
            order[i] = &m->ser[i];
        qsort(order, m->ser_n, sizeof(*order), series_cmp);
    }
    const char *current = NULL;
    for (size_t i = 0; i < m->ser_n; i++) {
        const msp_series_t *s = order[i];
        if (!current || strcmp(current, s->name) != 0) {
            const msp_family_t *f = family_find(m, s->name);
            if (f && f->help) {
                evbuffer_add_printf(buf, "# HELP %s ", s->name);
                append_help(buf, f->help);
                evbuffer_add(buf, "\n", 1);
            }
            evbuffer_add_printf(buf, "# TYPE %s %s\n", s->name, f ? f->type : "gauge");
            current = s->name;
        }
        evbuffer_add_printf(buf, "%s{%s%s%s} ", s->name, m->service_label,
                            s->labels[0] ? "," : "", s->labels);
        append_value(buf, s->value);
        evbuffer_add(buf, "\n", 1);
    }
    free(order);
    size_t len = evbuffer_get_length(buf);
    char *out = malloc(len + 1);
    if (out) {
        evbuffer_remove(buf, out, len);
        out[len] = '\0';
    }
    evbuffer_free(buf);
    return out;
}

/* ---- endpoints ---------------------------------------------------------------------------- */

static void send_text(struct evhttp_request *req, int code, const char *reason,
                      const char *content_type, const char *body) {
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
        evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

static int only_get(struct evhttp_request *req) {
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)
        return 1;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
    send_text(req, 405, "Method Not Allowed", "application/json",
              "{\"error\":\"method not allowed\"}");
    return 0;
}

static void healthz_cb(struct evhttp_request *req, void *arg) {
    if (!only_get(req))
        return;
    send_text(req, 200, "OK", "application/json", "{\"status\":\"ok\"}");
}

/* Minimal JSON string escaping for the readiness reason (it may carry error text). */
static void json_escape_into(char *out, size_t size, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

static void readyz_cb(struct evhttp_request *req, void *arg) {
    msp_metrics_t *m = arg;
    if (!only_get(req))
        return;
    char why[256] = "";
    int ready = m->ready ? m->ready(m->ready_opaque, why, sizeof(why)) : 1;
    if (ready) {
        send_text(req, 200, "OK", "application/json", "{\"status\":\"ready\"}");
        return;
    }
    char esc[600], body[700];
    json_escape_into(esc, sizeof(esc), why[0] ? why : "not ready");
    snprintf(body, sizeof(body), "{\"status\":\"not ready\",\"reason\":\"%s\"}", esc);
    send_text(req, 503, "Service Unavailable", "application/json", body);
}

static void metrics_cb(struct evhttp_request *req, void *arg) {
    msp_metrics_t *m = arg;
    if (!only_get(req))
        return;
    char *text = msp_metrics_render(m);
    if (!text) {
        send_text(req, 500, "Internal Server Error", "application/json",
                  "{\"error\":\"out of memory\"}");
        return;
    }
    send_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text);
    free(text);
}

int msp_ops_mount(struct evhttp *http, msp_metrics_t *m, msp_ready_cb *ready, void *opaque) {
    if (!http || !m)
        return -1;
    m->ready = ready;
    m->ready_opaque = opaque;
    if (evhttp_set_cb(http, "/healthz", healthz_cb, m) != 0 ||
        evhttp_set_cb(http, "/readyz", readyz_cb, m) != 0 ||
        evhttp_set_cb(http, "/metrics", metrics_cb, m) != 0)
        return -1;
    return 0;
}

struct evhttp_bound_socket *msp_ops_bind(struct evhttp *http, const char *bind, int port,
                                         int *bound_port, msp_metrics_t *m, msp_ready_cb *ready,
                                         void *opaque) {
    struct evhttp_bound_socket *sock =
        evhttp_bind_socket_with_handle(http, bind ? bind : "127.0.0.1", (ev_uint16_t)port);
    if (!sock)
        return NULL;
    if (msp_ops_mount(http, m, ready, opaque) != 0) {
        evhttp_del_accept_socket(http, sock);
        return NULL;
    }
    if (bound_port) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        *bound_port = port;
        if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET)
                *bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            else if (ss.ss_family == AF_INET6)
                *bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    return sock;
}
