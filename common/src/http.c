/*
 * http.c — asynchronous HTTP: one libcurl multi handle driven by a libevent loop.
 *
 * The "multi socket" pattern: curl tells us which sockets it wants watched
 * (CURLMOPT_SOCKETFUNCTION) and when it next wants control (CURLMOPT_TIMERFUNCTION); we keep one
 * persistent `struct event` per socket and one evtimer, and every time one fires we hand control
 * back with curl_multi_socket_action() and then collect finished transfers.
 *
 * Invariants:
 * - User callbacks never run inside a curl callback. They run from drain_done(), after
 *   curl_multi_socket_action() returned, and the easy handle is already out of the multi, so a
 *   callback may start new requests (curl_multi_add_handle is legal there) or even destroy the
 *   client.
 * - Destroy during a callback is deferred: `depth` counts the libevent callbacks of ours on the
 *   stack; msp_http_destroy() cancels every request at once but frees the client only when the
 *   outermost one unwinds. After destroy nothing touches the multi handle again.
 * - Every request sits on `reqs` until its callback has run, so destroy can cancel it and the
 *   callback runs exactly once.
 * - max_body is checked in the write callback on decoded bytes (so gzip cannot inflate past it).
 * - Every request carries exactly one X-Request-ID (ours, or the caller's), and deliver() logs
 *   it with the outcome before the callback runs, so a support case can quote it.
 */
#include "mspsync/http.h"
#include "mspsync/backoff.h"
#include "mspsync/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/rand.h>

#define MSP_HTTP_DEFAULT_CONNECT_MS 5000L
#define MSP_HTTP_DEFAULT_TIMEOUT_MS 30000L
#define MSP_HTTP_DEFAULT_MAX_BODY   ((size_t)64 * 1024 * 1024)

typedef struct msp_http_req_s msp_http_req_t;

/* One socket curl asked us to watch. */
typedef struct msp_http_sock_s {
    msp_http_t              *h;
    curl_socket_t            fd;
    struct event            *ev;
    struct msp_http_sock_s  *prev, *next;
} msp_http_sock_t;

struct msp_http_req_s {
    msp_http_t          *h;
    CURL                *easy;
    struct curl_slist   *headers;
    msp_http_cb         *cb;
    void                *opaque;
    msp_http_response_t  res;
    size_t               body_cap;
    size_t               max_body;
    int                  too_large;
    int64_t              started_ms;
    char                 method[17];
    char                *log_url;  /* the URL without query or fragment (may hold secrets) */
    char                *tenant;   /* may be NULL */
    char                 errbuf[CURL_ERROR_SIZE];
    msp_http_req_t      *prev, *next;
};

struct msp_http_s {
    struct event_base *base;
    CURLM             *multi;
    struct event      *timer;
    msp_http_opts_t    opts;
    msp_http_req_t    *reqs;       /* in flight, callback not yet run */
    msp_http_sock_t   *socks;      /* watched sockets */
    int                inflight;
    int                depth;      /* our libevent callbacks on the stack */
    int                destroyed;  /* msp_http_destroy() called; free when depth drops to 0 */
};

/* ---------------------------------------------------------------- lists and small helpers */

static void req_link(msp_http_t *h, msp_http_req_t *r) {
    r->prev = NULL;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->inflight++;
}

static void req_unlink(msp_http_t *h, msp_http_req_t *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    h->inflight--;
}

static void req_free(msp_http_req_t *r) {
    if (!r)
        return;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->res.body);
    free(r->res.content_type);
    free(r->res.link_next);
    free(r->log_url);
    free(r->tenant);
    free(r);
}

static char *dup_range(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* ---------------------------------------------------------------- Link header */

/* Does a rel value (space-separated relation types) contain "next"? */
static int rel_has_next(const char *v, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t start;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        start = i;
        while (i < n && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i - start == 4 && strncasecmp(v + start, "next", 4) == 0)
            return 1;
    }
    return 0;
}

char *msp_http_parse_link_next(const char *value) {
    const char *p = value;

    if (!value)
        return NULL;
    for (;;) {
        const char *url, *url_end;
        int next = 0;

        while (*p == ',' || is_ows(*p))
            p++;
        if (*p != '<')
            return NULL; /* end, or not a link-value we understand */
        url = p + 1;
        url_end = strchr(url, '>');
        if (!url_end)
            return NULL;
        p = url_end + 1;

        /* link-params: *( OWS ";" OWS name [ "=" ( token / quoted-string ) ] ) */
        for (;;) {
            const char *name, *val = NULL;
            size_t name_len, val_len = 0;
            char quoted_buf[256];

            while (is_ows(*p))
                p++;
            if (*p != ';')
                break;
            p++;
            while (is_ows(*p))
                p++;
            name = p;
            while (*p && *p != '=' && *p != ';' && *p != ',' && !is_ows(*p))
                p++;
            name_len = (size_t)(p - name);
            while (is_ows(*p))
                p++;
            if (*p == '=') {
                p++;
                while (is_ows(*p))
                    p++;
                if (*p == '"') {
                    /* quoted-string with backslash escapes, unescaped into quoted_buf */
                    size_t k = 0;
                    p++;
                    while (*p && *p != '"') {
                        if (*p == '\\' && p[1])
                            p++;
                        if (k < sizeof(quoted_buf) - 1)
                            quoted_buf[k++] = *p;
                        p++;
                    }
                    if (*p == '"')
                        p++;
                    quoted_buf[k] = '\0';
                    val = quoted_buf;
                    val_len = k;
                } else {
                    val = p;
                    while (*p && *p != ';' && *p != ',' && !is_ows(*p))
                        p++;
                    val_len = (size_t)(p - val);
                }
            }
            if (val && name_len == 3 && strncasecmp(name, "rel", 3) == 0 &&
                rel_has_next(val, val_len))
                next = 1;
        }
        if (next && url_end > url)
            return dup_range(url, (size_t)(url_end - url));
        /* skip anything unexpected up to the next link-value */
        while (*p && *p != ',')
            p++;
        if (!*p)
            return NULL;
    }
}

/* ---------------------------------------------------------------- curl easy callbacks */

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp) {
    msp_http_req_t *r = userp;
    size_t n = size * nmemb;

    if (n > r->max_body || r->res.body_len > r->max_body - n) {
        r->too_large = 1;
        return 0; /* not n: curl aborts with CURLE_WRITE_ERROR */
    }
    if (r->res.body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        char *p;
        while (cap < r->res.body_len + n + 1)
            cap *= 2;
        p = realloc(r->res.body, cap);
        if (!p)
            return 0;
        r->res.body = p;
        r->body_cap = cap;
    }
    memcpy(r->res.body + r->res.body_len, data, n);
    r->res.body_len += n;
    r->res.body[r->res.body_len] = '\0';
    return n;
}

/* Header lines arrive one at a time, with CRLF, not NUL-terminated. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp) {
    msp_http_req_t *r = userp;
    size_t n = size * nmemb, name_len;
    const char *colon, *v, *end = data + n;
    char *value;

    /* A new status line (after 100 Continue, or an auth round) starts a new header set. */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        r->res.retry_after_ms = -1;
        free(r->res.content_type);
        free(r->res.link_next);
        r->res.content_type = r->res.link_next = NULL;
        return n;
    }
    colon = memchr(data, ':', n);
    if (!colon)
        return n;
    name_len = (size_t)(colon - data);
    v = colon + 1;
    while (v < end && is_ows(*v))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || is_ows(end[-1])))
        end--;

    if (name_len == 11 && strncasecmp(data, "Retry-After", 11) == 0) {
        if ((value = dup_range(v, (size_t)(end - v))) != NULL) {
            r->res.retry_after_ms = msp_retry_after_ms(value, time(NULL));
            free(value);
        }
    } else if (name_len == 12 && strncasecmp(data, "Content-Type", 12) == 0) {
        free(r->res.content_type);
        r->res.content_type = dup_range(v, (size_t)(end - v));
    } else if (name_len == 4 && strncasecmp(data, "Link", 4) == 0 && !r->res.link_next) {
        if ((value = dup_range(v, (size_t)(end - v))) != NULL) {
            r->res.link_next = msp_http_parse_link_next(value);
            free(value);
        }
    }
    return n;
}

/* ---------------------------------------------------------------- completion */

static void deliver(msp_http_t *h, msp_http_req_t *r) {
    msp_http_cb *cb = r->cb;

    if (!r->res.body) { /* promise a NUL-terminated body, even an empty one */
        r->res.body = calloc(1, 1);
        r->res.body_len = 0;
    }
    r->res.elapsed_ms = msp_now_ms() - r->started_ms;
    req_unlink(h, r);
    MSP_INFO("vendor.request", r->tenant, "%s %s status=%ld outcome=%s elapsed_ms=%lld "
             "request_id=%s%s%s", r->method, r->log_url ? r->log_url : "?", r->res.status,
             msp_http_outcome_name(msp_http_classify(&r->res)), (long long)r->res.elapsed_ms,
             r->res.request_id, r->res.errstr[0] ? " error=" : "", r->res.errstr);
    cb(&r->res, r->opaque);
    req_free(r);
}

static void finish(msp_http_t *h, msp_http_req_t *r, CURLcode rc) {
    long status = 0;

    curl_multi_remove_handle(h->multi, r->easy);
    r->res.curl_code = (int)rc;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        r->res.status = status;
        r->res.errstr[0] = '\0';
    } else {
        /* No usable response: a partial one (cut off, or over max_body) must not look like a
         * success to msp_http_classify. */
        r->res.status = 0;
        if (r->too_large || rc == CURLE_FILESIZE_EXCEEDED) /* decoded bytes, or Content-Length */
            snprintf(r->res.errstr, sizeof(r->res.errstr), "response body larger than %zu bytes",
                     r->max_body);
        else
            snprintf(r->res.errstr, sizeof(r->res.errstr), "%s",
                     r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
        free(r->res.body);
        r->res.body = NULL;
        r->res.body_len = 0;
    }
    deliver(h, r);
}

static void drain_done(msp_http_t *h) {
    CURLMsg *msg;
    int left;

    while (!h->destroyed && (msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        msp_http_req_t *r = NULL;
        CURLcode rc;

        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        /* msg is invalid from here on (finish() removes the handle). */
        if (r)
            finish(h, r, rc);
    }
}

static void free_client(msp_http_t *h);

/* Every entry from libevent goes through enter/leave so a destroy in a user callback is safe. */
static void leave(msp_http_t *h) {
    if (--h->depth == 0 && h->destroyed)
        free_client(h);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg) {
    msp_http_t *h = arg;
    int action = 0, running = 0;

    if (h->destroyed)
        return;
    if (what & EV_READ)
        action |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        action |= CURL_CSELECT_OUT;
    h->depth++;
    curl_multi_socket_action(h->multi, fd, action, &running);
    drain_done(h);
    leave(h);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    msp_http_t *h = arg;
    int running = 0;

    (void)fd;
    (void)what;
    if (h->destroyed)
        return;
    h->depth++;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_done(h);
    leave(h);
}

/* ---------------------------------------------------------------- curl multi callbacks */

static int multi_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    msp_http_t *h = userp;
    msp_http_sock_t *so = socketp;
    short kind;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (so) {
            event_free(so->ev); /* safe even from inside this event's own callback */
            if (so->prev)
                so->prev->next = so->next;
            else
                h->socks = so->next;
            if (so->next)
                so->next->prev = so->prev;
            free(so);
        }
        return 0;
    }

    if (!so) {
        so = calloc(1, sizeof(*so));
        if (!so)
            return -1;
        so->h = h;
        so->fd = s;
        so->next = h->socks;
        if (h->socks)
            h->socks->prev = so;
        h->socks = so;
        curl_multi_assign(h->multi, s, so);
    }
    kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) |
                   EV_PERSIST);
    if (so->ev)
        event_free(so->ev);
    so->ev = event_new(h->base, s, kind, on_socket_event, h);
    if (!so->ev || event_add(so->ev, NULL) != 0)
        return -1;
    return 0;
}

static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
    msp_http_t *h = userp;
    struct timeval tv;

    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(h->timer);
        return 0;
    }
    /* Never call curl_multi_socket_action() from here: 0 means "as soon as possible", which a
     * zero timeout on the loop gives us without re-entering curl. */
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return evtimer_add(h->timer, &tv) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- public API */

msp_http_t *msp_http_new(struct event_base *base, const msp_http_opts_t *opts) {
    msp_http_t *h;

    if (!base)
        return NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    h = calloc(1, sizeof(*h));
    if (!h) {
        curl_global_cleanup();
        return NULL;
    }
    h->base = base;
    if (opts)
        h->opts = *opts;
    if (h->opts.connect_timeout_ms <= 0)
        h->opts.connect_timeout_ms = MSP_HTTP_DEFAULT_CONNECT_MS;
    if (h->opts.timeout_ms <= 0)
        h->opts.timeout_ms = MSP_HTTP_DEFAULT_TIMEOUT_MS;
    if (h->opts.max_body == 0)
        h->opts.max_body = MSP_HTTP_DEFAULT_MAX_BODY;

    h->multi = curl_multi_init();
    h->timer = evtimer_new(base, on_timer, h);
    if (!h->multi || !h->timer) {
        free_client(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, multi_socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    if (h->opts.max_host_connections > 0)
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, h->opts.max_host_connections);
    return h;
}

static void free_client(msp_http_t *h) {
    msp_http_sock_t *so;

    if (h->multi)
        curl_multi_cleanup(h->multi); /* may still report CURL_POLL_REMOVE for cached sockets */
    /* Whatever curl did not tell us to forget. */
    while ((so = h->socks) != NULL) {
        h->socks = so->next;
        event_free(so->ev);
        free(so);
    }
    if (h->timer)
        event_free(h->timer);
    free(h);
    curl_global_cleanup();
}

void msp_http_destroy(msp_http_t *h) {
    msp_http_req_t *r;

    if (!h || h->destroyed)
        return;
    h->destroyed = 1; /* from now on msp_http_request() refuses */

    while ((r = h->reqs) != NULL) {
        curl_multi_remove_handle(h->multi, r->easy);
        free(r->res.body);
        r->res.body = NULL;
        r->res.body_len = 0;
        r->res.status = 0;
        r->res.curl_code = CURLE_ABORTED_BY_CALLBACK;
        snprintf(r->res.errstr, sizeof(r->res.errstr), "cancelled");
        deliver(h, r);
    }
    if (h->depth == 0)
        free_client(h);
    /* else: leave() frees it when our outermost libevent callback unwinds */
}

int msp_http_new_request_id(char out[MSP_HTTP_REQUEST_ID_SIZE]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t k = 0;

    out[0] = '\0';
    if (RAND_bytes(b, (int)sizeof(b)) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 0xf];
    }
    out[k] = '\0';
    return 0;
}

/* The caller's own X-Request-ID value (trimmed, cut to fit) into out. @returns 1 if it has one. */
static int caller_request_id(const char *header, char out[MSP_HTTP_REQUEST_ID_SIZE]) {
    const char *v, *e;
    size_t n;

    if (strncasecmp(header, "X-Request-ID:", 13) != 0)
        return 0;
    v = header + 13;
    while (is_ows(*v))
        v++;
    e = v + strlen(v);
    while (e > v && is_ows(e[-1]))
        e--;
    n = (size_t)(e - v);
    if (n == 0)
        return 0;
    if (n >= MSP_HTTP_REQUEST_ID_SIZE)
        n = MSP_HTTP_REQUEST_ID_SIZE - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return 1;
}

static int valid_method(const char *m) {
    const char *p;
    if (!m || !*m || strlen(m) > 16)
        return 0;
    for (p = m; *p; p++)
        if (!isupper((unsigned char)*p))
            return 0;
    return 1;
}

int msp_http_request(msp_http_t *h, const msp_http_request_t *req, msp_http_cb *cb, void *opaque) {
    msp_http_req_t *r;
    CURL *e;
    const char *method;
    const char **hp;
    int has_expect = 0, has_request_id = 0;

    if (!h || h->destroyed || !req || !req->url || !cb)
        return -1;
    method = req->method ? req->method : "GET";
    if (!valid_method(method))
        return -1;

    r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->h = h;
    r->cb = cb;
    r->opaque = opaque;
    r->max_body = h->opts.max_body;
    r->res.retry_after_ms = -1;
    r->easy = e = curl_easy_init();
    if (!e)
        goto fail;

    snprintf(r->method, sizeof(r->method), "%s", method);
    r->log_url = dup_range(req->url, strcspn(req->url, "?#"));
    r->tenant = req->tenant ? strdup(req->tenant) : NULL;
    if (!r->log_url || (req->tenant && !r->tenant))
        goto fail;
    for (hp = req->headers; hp && *hp; hp++) {
        struct curl_slist *n;
        if (strncasecmp(*hp, "X-Request-ID:", 13) == 0 &&
            (has_request_id || !caller_request_id(*hp, r->res.request_id)))
            continue; /* exactly one, never an empty one */
        n = curl_slist_append(r->headers, *hp);
        if (!n)
            goto fail;
        r->headers = n;
        if (strncasecmp(*hp, "Expect:", 7) == 0)
            has_expect = 1;
        if (strncasecmp(*hp, "X-Request-ID:", 13) == 0)
            has_request_id = 1;
    }
    if (!has_request_id) {
        char line[32 + MSP_HTTP_REQUEST_ID_SIZE];
        struct curl_slist *n;
        if (msp_http_new_request_id(r->res.request_id) != 0)
            goto fail;
        snprintf(line, sizeof(line), "X-Request-ID: %s", r->res.request_id);
        if (!(n = curl_slist_append(r->headers, line)))
            goto fail;
        r->headers = n;
    }
    if (!has_expect) {
        /* No "Expect: 100-continue" round trip for larger bodies: our APIs answer directly. */
        struct curl_slist *n = curl_slist_append(r->headers, "Expect:");
        if (!n)
            goto fail;
        r->headers = n;
    }

    if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK)
        goto fail;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    if (curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK)
        goto fail;
#else
    if (curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK)
        goto fail;
#endif
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : h->opts.timeout_ms);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* every encoding this libcurl decodes */
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mspsync/1");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if ((curl_off_t)r->max_body > 0)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);

    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        /* POST, or POST machinery with another verb: the body goes out the same way. */
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (req->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
            strcmp(method, "PATCH") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)(req->body ? req->body_len : 0));
            if (curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "") != CURLE_OK)
                goto fail;
        }
    }

    r->started_ms = msp_now_ms();
    req_link(h, r);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        req_unlink(h, r);
        goto fail;
    }
    return 0;

fail:
    req_free(r);
    return -1;
}

int msp_http_inflight(const msp_http_t *h) {
    return h ? h->inflight : 0;
}

char *msp_http_steal_body(msp_http_response_t *res) {
    char *b;
    if (!res)
        return NULL;
    b = res->body;
    res->body = NULL;
    res->body_len = 0;
    return b;
}

msp_http_outcome_t msp_http_classify(const msp_http_response_t *res) {
    long s;

    if (!res)
        return MSP_HTTP_RETRY;
    s = res->status;
    if (s == 0)
        return MSP_HTTP_RETRY; /* no response: connect failure, timeout, reset */
    if (s >= 200 && s < 300)
        return MSP_HTTP_OK;
    if (s == 408 || s == 423 || s == 425 || s == 429 || s >= 500)
        return MSP_HTTP_RETRY;
    if (s == 401 || s == 403)
        return MSP_HTTP_FATAL;
    return MSP_HTTP_DEADLETTER; /* other 4xx, and 1xx/3xx we never asked to follow */
}

const char *msp_http_outcome_name(msp_http_outcome_t o) {
    switch (o) {
    case MSP_HTTP_OK:         return "ok";
    case MSP_HTTP_RETRY:      return "retry";
    case MSP_HTTP_FATAL:      return "fatal";
    case MSP_HTTP_DEADLETTER: return "deadletter";
    }
    return "unknown";
}
