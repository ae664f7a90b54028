/*
 * http_util.c — the gateway's HTTP plumbing: JSON replies, bearer auth, bounded body parsing,
 * query parameters, tenant id syntax, request framing checks, and held requests.
 *
 * Every reply goes through gw_reply(), which sets the JSON content type and counts the reply
 * in mspsync_http_requests_total{route,code}: a handler can never answer uncounted.
 *
 * Requests libevent refuses itself (request line or header section over the size limit, a body
 * over MSPSYNC_MAX_BODY, a malformed request line or header, an unknown method) never reach a
 * callback of ours: libevent 2.1 answers them with evhttp_send_error(), which writes an HTML
 * page, and 2.1 has no hook for that (evhttp_set_errorcb arrived in 2.2). So this file defines
 * evhttp_send_error itself: libevent's shared library calls it through its PLT, the executable's
 * definition wins, and those refusals are JSON too (431 for the header section, 413 for the
 * body, 400, 501), with Connection: close as libevent's own page has. gw_http_install() checks
 * at startup that the override is the one in effect and warns otherwise (a static or
 * symbolically bound libevent): the statuses stay right, only the bodies would be HTML again.
 *
 * Held requests (answered after a Kafka delivery report or a vendor call) are tracked in a list
 * on gw_t. Invariant: a held request is replied to exactly once, through gw_held_reply(). The
 * connection's close callback tells apart the two ways libevent 2.1 lets go of a pending request:
 * the client hung up (the request is detached from its connection and stays ours — replying frees
 * it) or the server is being torn down (the request is freed with its connection — we forget it).
 */
#include "gateway.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "mspsync/crypto.h"
#include "mspsync/log.h"
#include "mspsync/utf8.h"
#include "query.h"

static const char *reason_phrase(int code) {
    switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default:  return "Unknown";
    }
}

static void count_reply(gw_t *gw, const char *route, int code) {
    if (!gw)
        return;
    char labels[128];
    /* route names are fixed identifiers chosen by router.c: nothing to escape */
    snprintf(labels, sizeof(labels), "route=\"%s\",code=\"%d\"", route ? route : "unknown", code);
    msp_metric_add(gw->metrics, "mspsync_http_requests_total", labels, 1);
}

void gw_reply_text(gw_t *gw, struct evhttp_request *req, const char *route, int code,
                   const char *text, size_t len) {
    count_reply(gw, route, code);
    gw_audit_end(gw, req, code); /* the change it answers, if any, is complete now */
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (text) {
        evhttp_add_header(h, "Content-Type", "application/json");
        /* the request's own output buffer: evhttp sends it as the body */
        struct evbuffer *out = evhttp_request_get_output_buffer(req);
        evbuffer_add(out, text, len);
        evbuffer_add(out, "\n", 1);
    }
    evhttp_send_reply(req, code, reason_phrase(code), NULL);
}

void gw_reply(gw_t *gw, struct evhttp_request *req, const char *route, int code, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text) /* out of memory: an empty body of the type promised */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
    json_decref(body);
    gw_reply_text(gw, req, route, code, text, text ? strlen(text) : 0);
    free(text);
}

static json_t *error_body(const char *fmt, va_list ap) {
    char raw[1024], msg[1024];
    vsnprintf(raw, sizeof(raw), fmt, ap);
    /* The text may echo request bytes that are not UTF-8, and vsnprintf may have cut it inside
     * a character: clean it (U+FFFD for each bad byte) so that the specific message is sent. */
    msp_utf8_copy(msg, sizeof(msg), raw);
    json_t *j = json_pack("{s:s}", "error", msg);
    return j ? j : json_pack("{s:s}", "error", "out of memory"); /* never answer without a body */
}

void gw_reply_error(gw_t *gw, struct evhttp_request *req, const char *route, int code,
                    const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    json_t *body = error_body(fmt, ap);
    va_end(ap);
    gw_reply(gw, req, route, code, body);
}

const char *gw_bearer(struct evhttp_request *req) {
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!v || strncasecmp(v, "Bearer ", 7) != 0)
        return NULL;
    v += 7;
    while (*v == ' ')
        v++;
    return v;
}

int gw_auth_ok(const gw_t *gw, struct evhttp_request *req) {
    const char *v = gw_bearer(req);
    return v && msp_consttime_streq(v, gw->cfg.admin_token);
}

int gw_read_json(gw_t *gw, struct evhttp_request *req, const char *route, int optional,
                 json_t **out) {
    *out = NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = in ? evbuffer_get_length(in) : 0;
    if ((long long)len > gw->cfg.max_body) {
        gw_reply_error(gw, req, route, 413, "request body larger than %lld bytes",
                       gw->cfg.max_body);
        return -1;
    }
    if (len == 0) {
        if (optional)
            return 0;
        gw_reply_error(gw, req, route, 400, "a JSON request body is required");
        return -1;
    }
    const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    json_error_t jerr;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        gw_reply_error(gw, req, route, 400, "malformed JSON at line %d, column %d: %s",
                       jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        gw_reply_error(gw, req, route, 400, "the request body must be a JSON object");
        return -1;
    }
    *out = j;
    return 0;
}

char *gw_query_param(struct evhttp_request *req, const char *name) {
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    char *value, err[256];
    /* malformed queries were refused by the router (gw_check_query) before any handler ran */
    return gw_query_get(uri ? evhttp_uri_get_query(uri) : NULL, name, &value, err,
                        sizeof(err)) == 1 ? value : NULL;
}

long long gw_query_int(gw_t *gw, struct evhttp_request *req, const char *route, const char *name,
                       long long def, long long max) {
    char *v = gw_query_param(req, name);
    if (!v)
        return def;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    int bad = !v[0] || *end || n < 1 || n > max;
    free(v);
    if (bad) {
        gw_reply_error(gw, req, route, 400, "\"%s\" must be an integer from 1 to %lld", name, max);
        return -1;
    }
    return n;
}

int gw_check_query(gw_t *gw, struct evhttp_request *req, const char *route) {
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    char err[256];
    if (gw_query_check(uri ? evhttp_uri_get_query(uri) : NULL, err, sizeof(err)) == 0)
        return 0;
    gw_reply_error(gw, req, route, 400, "%s", err);
    return -1;
}

/* ---- request framing ----------------------------------------------------------------------- */

static void refuse_and_close(gw_t *gw, struct evhttp_request *req, const char *route, int code,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The connection cannot be trusted to be in step after such a request: answer, then close. */
static void refuse_and_close(gw_t *gw, struct evhttp_request *req, const char *route, int code,
                             const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    json_t *body = error_body(fmt, ap);
    va_end(ap);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, "Connection");
    evhttp_add_header(h, "Connection", "close");
    gw_reply(gw, req, route, code, body);
}

int gw_check_framing(gw_t *gw, struct evhttp_request *req, const char *route) {
    /* libevent bounds the bytes of the header section (MSPSYNC_MAX_HEADER_BYTES), not how many
     * fields it holds: a count of tiny fields is ours to bound */
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyval *kv;
    long long fields = 0;
    const char *cl = NULL, *te = NULL;
    int cl_conflict = 0;
    TAILQ_FOREACH(kv, in, next) {
        fields++;
        if (strcasecmp(kv->key, "Content-Length") == 0) {
            if (cl && strcmp(cl, kv->value) != 0)
                cl_conflict = 1;
            cl = kv->value;
        } else if (strcasecmp(kv->key, "Transfer-Encoding") == 0) {
            te = kv->value;
        }
    }
    if (fields > gw->cfg.max_headers) {
        refuse_and_close(gw, req, route, 431, "too many header fields (%lld, at most %lld)",
                         fields, gw->cfg.max_headers);
        return -1;
    }
    /* RFC 9112 6.3: differing Content-Length values, or a Content-Length next to a
     * Transfer-Encoding, leave the body's end ambiguous (the classic request-smuggling shape);
     * libevent read the body by the first value, so refuse instead of guessing */
    if (cl_conflict) {
        refuse_and_close(gw, req, route, 400, "conflicting Content-Length header fields");
        return -1;
    }
    if (cl && te) {
        refuse_and_close(gw, req, route, 400,
                         "Content-Length together with Transfer-Encoding is not allowed");
        return -1;
    }
    return 0;
}

/* ---- libevent's own refusals, in JSON -------------------------------------------------------- */

static gw_t *edge_gw; /* for the metrics of refusals made by libevent: set by gw_http_install */

/*
 * 1 when libevent refused the request because its request line and header fields passed
 * evhttp_set_max_headers_size. libevent 2.1 reports that as a malformed request (400), so tell
 * it apart the way libevent decided it (evhttp_parse_firstline_, evhttp_parse_headers_):
 *   - the complete lines it counted (headers_size) are over the limit;
 *   - they plus a still unterminated line waiting in the input are;
 *   - a complete request line over the limit is dropped before anything is recorded, leaving
 *     headers_size 0 and no HTTP version (an empty request line also leaves that, and is
 *     answered 431 too: harmless, it was no request).
 */
static int header_section_too_large(gw_t *gw, struct evhttp_request *req) {
    if (!gw)
        return 0;
    size_t max = (size_t)gw->cfg.max_header_bytes;
    if (req->headers_size > max || (req->headers_size == 0 && !req->major))
        return 1;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct evbuffer *pending = bev ? bufferevent_get_input(bev) : NULL;
    if (!pending)
        return 0;
    size_t n = evbuffer_get_length(pending);
    return req->headers_size + n > max && evbuffer_search(pending, "\n", 1, NULL).pos < 0;
}

/*
 * Replaces libevent 2.1's evhttp_send_error (http.h), which libevent calls for requests it will
 * not hand to a callback. The codes it passes: 400 (malformed request line, header or body
 * framing — and, in 2.1, a header section over evhttp_set_max_headers_size), 413 (body over
 * evhttp_set_max_body_size), 501 (a method outside evhttp_set_allowed_methods: unknown tokens
 * like "FOO", and CONNECT), and whatever a callback asks for (ops.c's 500).
 */
void evhttp_send_error(struct evhttp_request *req, int error, const char *reason) {
    gw_t *gw = edge_gw;
    const char *route = "unmatched";
    int too_large = error == 400 && header_section_too_large(gw, req);
    if (!req->major) {  /* the request line never parsed: answer as HTTP/1.1, as libevent does */
        req->major = 1;
        req->minor = 1;
    }
    evhttp_clear_headers(evhttp_request_get_output_headers(req));
    if (too_large) {
        refuse_and_close(gw, req, route, 431,
                         "request line and header fields larger than %lld bytes",
                         gw->cfg.max_header_bytes);
    } else if (error == 400) {
        refuse_and_close(gw, req, route, 400,
                         "malformed HTTP request (request line, a header field, or the body's "
                         "length or chunking)");
    } else if (error == 413) {
        refuse_and_close(gw, req, route, 413, "request body larger than %lld bytes",
                         gw ? gw->cfg.max_body : 0LL);
    } else if (error == 501) {
        refuse_and_close(gw, req, route, 501, "method not implemented");
    } else {
        refuse_and_close(gw, req, route, error, "%s", reason ? reason : reason_phrase(error));
    }
}

void gw_http_install(gw_t *gw) {
    edge_gw = gw;
    void *in_effect = dlsym(RTLD_DEFAULT, "evhttp_send_error");
    if (in_effect != (void *)evhttp_send_error)
        MSP_WARN("http.error_pages", NULL, "libevent does not call the gateway's "
                 "evhttp_send_error: requests libevent refuses itself get HTML bodies");
}

int gw_valid_tenant_id(const char *s) {
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n < 1 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 (i > 0 && (c == '_' || c == '-'));
        if (!ok)
            return 0;
    }
    return 1;
}

/* ---- held requests ------------------------------------------------------------------------- */

struct gw_held_s {
    gw_t                       *gw;
    struct evhttp_request      *req;    /* NULL once libevent freed it (server teardown) */
    struct evhttp_connection   *evcon;  /* whose close callback points at us, or NULL */
    const char                 *route;
    int                         client_gone;
    void                      (*cancel)(void *arg);
    void                       *cancel_arg;
    struct gw_held_s           *prev, *next;
};

static void held_close_cb(struct evhttp_connection *evcon, void *arg) {
    gw_held_t *h = arg;
    h->evcon = NULL;
    if (!h->req)
        return;
    if (evhttp_request_get_connection(h->req) == NULL) {
        /* client hung up: the request was detached and is still ours to reply to (and free) */
        h->client_gone = 1;
    } else {
        /* the connection is being freed together with its queued requests */
        h->req = NULL;
    }
}

gw_held_t *gw_hold(gw_t *gw, struct evhttp_request *req, const char *route) {
    gw_held_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->gw = gw;
    h->req = req;
    h->route = route;
    h->evcon = evhttp_request_get_connection(req);
    if (h->evcon)
        evhttp_connection_set_closecb(h->evcon, held_close_cb, h);
    h->next = gw->held;
    if (gw->held)
        gw->held->prev = h;
    gw->held = h;
    return h;
}

struct evhttp_request *gw_held_release(gw_held_t *h) {
    gw_t *gw = h->gw;
    struct evhttp_request *req = h->req;
    if (h->evcon)
        evhttp_connection_set_closecb(h->evcon, NULL, NULL);
    if (h->prev)
        h->prev->next = h->next;
    else
        gw->held = h->next;
    if (h->next)
        h->next->prev = h->prev;
    free(h);
    return req;
}

/* Release h and hand its request to reply(arg), or drop the answer when libevent freed it. */
static struct evhttp_request *held_take(gw_held_t *h, int code, gw_t **gw, const char **route) {
    *gw = h->gw;
    *route = h->route;
    int gone = h->client_gone;
    struct evhttp_request *req = gw_held_release(h);
    if (req && gone)
        MSP_DEBUG("http.client_gone", NULL, "client left before the %d reply", code);
    return req; /* replying frees a detached request */
}

void gw_held_reply(gw_held_t *h, int code, json_t *body) {
    gw_t *gw;
    const char *route;
    struct evhttp_request *req = held_take(h, code, &gw, &route);
    if (req)
        gw_reply(gw, req, route, code, body);
    else
        json_decref(body);
}

void gw_held_reply_text(gw_held_t *h, int code, const char *text, size_t len) {
    gw_t *gw;
    const char *route;
    struct evhttp_request *req = held_take(h, code, &gw, &route);
    if (req)
        gw_reply_text(gw, req, route, code, text, len);
}

void gw_held_reply_error(gw_held_t *h, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    json_t *body = error_body(fmt, ap);
    va_end(ap);
    gw_held_reply(h, code, body);
}

void gw_held_on_shutdown(gw_held_t *h, void (*cancel)(void *arg), void *arg) {
    h->cancel = cancel;
    h->cancel_arg = arg;
}

void gw_held_fail_all(gw_t *gw, const char *why) {
    while (gw->held) {
        gw_held_t *h = gw->held;
        if (h->cancel)
            h->cancel(h->cancel_arg);  /* answers h, which unlinks it */
        else
            gw_held_reply_error(h, 503, "%s", why);
    }
}

const char *gw_json_kind(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

int gw_valid_record_id(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 256)
        return 0;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

int gw_json_only_keys(const json_t *obj, const char *const *allowed, char *err,
                      size_t err_size) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (ok)
            continue;
        size_t n = (size_t)snprintf(err, err_size, "unknown key \"%.*s\" (expected ",
                                    MSP_UTF8_CUT(k, 64));
        for (int i = 0; allowed[i] && n < err_size; i++)
            n += (size_t)snprintf(err + n, err_size - n, "%s\"%s\"", i ? ", " : "", allowed[i]);
        if (n < err_size)
            snprintf(err + n, err_size - n, ")");
        return -1;
    }
    return 0;
}
