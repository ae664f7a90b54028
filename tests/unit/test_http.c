/*
 * test_http.c — the async HTTP client against an in-process libevent evhttp server.
 *
 * The server and the client share one event_base, so every test is a single thread: start
 * requests, then run the loop until the expected callbacks (and any delayed server replies) have
 * happened. The server's behaviour is chosen by the request path (see serve()).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "mspsync/backoff.h"
#include "mspsync/http.h"
#include "mspsync/log.h"

/* ------------------------------------------------------------------ fixture */

typedef struct fx_s fx_t;

/* What one client callback saw (copied: the response is only valid during the callback). */
typedef struct got_s {
    fx_t    *fx;
    int      called;
    long     status;
    int      curl_code;
    char     errstr[256];
    char    *body;
    size_t   body_len;
    int64_t  retry_after_ms;
    char    *content_type;
    char    *link_next;
    int64_t  elapsed_ms;
    char     request_id[MSP_HTTP_REQUEST_ID_SIZE];
    msp_http_outcome_t outcome;
    int      id;
} got_t;

struct fx_s {
    struct event_base *base;
    struct evhttp     *srv;
    int                port;
    msp_http_t        *h;

    /* server side */
    int   srv_requests;
    int   srv_delayed_pending;
    char  srv_method[16];
    char  srv_body[512];
    char  srv_custom[128];
    char  srv_content_type[128];
    char  srv_accept_encoding[128];
    int   srv_rid_n;             /* requests to /rid */
    int   srv_rid_count[8];      /* X-Request-ID headers each carried */
    char  srv_rid[8][80];        /* the (first) value of each */

    /* client side */
    int   done;
    int   chain_left;            /* test_callback_may_start_new_requests */
    got_t chain_got[3];
};

typedef struct delayed_s {
    fx_t                  *fx;
    struct evhttp_request *req;
    struct event          *ev;
} delayed_t;

static void delayed_fire(evutil_socket_t fd, short what, void *arg) {
    delayed_t *d = arg;
    struct evbuffer *b = evbuffer_new();
    (void)fd;
    (void)what;
    evbuffer_add_printf(b, "late");
    /* If the client gave up, libevent has detached the request; sending then just frees it. */
    evhttp_send_reply(d->req, 200, "OK", b);
    evbuffer_free(b);
    d->fx->srv_delayed_pending--;
    event_free(d->ev);
    free(d);
}

static int query_int(const struct evhttp_uri *uri, const char *name, int dflt) {
    struct evkeyvalq q;
    const char *v;
    int out = dflt;
    const char *query = evhttp_uri_get_query(uri);

    if (!query)
        return dflt;
    TAILQ_INIT(&q);
    if (evhttp_parse_query_str(query, &q) == 0 && (v = evhttp_find_header(&q, name)) != NULL)
        out = atoi(v);
    evhttp_clear_headers(&q);
    return out;
}

static void copy_header(struct evkeyvalq *hdrs, const char *name, char *out, size_t size) {
    const char *v = evhttp_find_header(hdrs, name);
    snprintf(out, size, "%s", v ? v : "");
}

static void serve(struct evhttp_request *req, void *arg) {
    fx_t *fx = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();

    fx->srv_requests++;
    if (!path)
        path = "/";

    if (strcmp(path, "/hello") == 0) {
        evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
        evbuffer_add_printf(b, "hello world");
        evhttp_send_reply(req, 200, "OK", b);
    } else if (strcmp(path, "/ratelimited") == 0) {
        evhttp_add_header(out, "Retry-After", "3");
        evhttp_add_header(out, "Content-Type", "application/json");
        evbuffer_add_printf(b, "{\"error\":\"slow down\"}");
        evhttp_send_reply(req, 429, "Too Many Requests", b);
    } else if (strcmp(path, "/paged") == 0) {
        evhttp_add_header(out, "Link",
                          "<http://127.0.0.1/items?cursor=a,b>; rel=\"prev\", "
                          "<http://127.0.0.1/items?cursor=xyz&limit=500>; REL=\"next\"");
        evbuffer_add_printf(b, "[]");
        evhttp_send_reply(req, 200, "OK", b);
    } else if (strcmp(path, "/big") == 0 || strcmp(path, "/bigchunked") == 0) {
        char chunk[1000];
        int i;
        memset(chunk, 'x', sizeof(chunk));
        if (strcmp(path, "/big") == 0) { /* with Content-Length */
            for (i = 0; i < 100; i++)
                evbuffer_add(b, chunk, sizeof(chunk));
            evhttp_send_reply(req, 200, "OK", b);
        } else { /* chunked: only the write callback can notice */
            evhttp_send_reply_start(req, 200, "OK");
            for (i = 0; i < 100; i++) {
                evbuffer_add(b, chunk, sizeof(chunk));
                evhttp_send_reply_chunk(req, b);
            }
            evhttp_send_reply_end(req);
        }
    } else if (strcmp(path, "/slow") == 0) {
        delayed_t *d = calloc(1, sizeof(*d));
        struct timeval tv;
        int ms = query_int(uri, "ms", 1000);
        tv.tv_sec = ms / 1000;
        tv.tv_usec = (ms % 1000) * 1000;
        d->fx = fx;
        d->req = req;
        d->ev = evtimer_new(fx->base, delayed_fire, d);
        evtimer_add(d->ev, &tv);
        fx->srv_delayed_pending++;
    } else if (strcmp(path, "/echo") == 0) {
        struct evkeyvalq *in = evhttp_request_get_input_headers(req);
        struct evbuffer *body = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(body);
        static const char *const names[] = {"GET", "POST", "HEAD", "PUT", "DELETE",
                                            "OPTIONS", "TRACE", "CONNECT", "PATCH"};
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        size_t bit;
        for (bit = 0; bit < sizeof(names) / sizeof(names[0]); bit++)
            if (cmd == (enum evhttp_cmd_type)(1 << bit))
                snprintf(fx->srv_method, sizeof(fx->srv_method), "%s", names[bit]);
        if (n >= sizeof(fx->srv_body))
            n = sizeof(fx->srv_body) - 1;
        evbuffer_copyout(body, fx->srv_body, n);
        fx->srv_body[n] = '\0';
        copy_header(in, "X-Custom", fx->srv_custom, sizeof(fx->srv_custom));
        copy_header(in, "Content-Type", fx->srv_content_type, sizeof(fx->srv_content_type));
        copy_header(in, "Accept-Encoding", fx->srv_accept_encoding,
                    sizeof(fx->srv_accept_encoding));
        evbuffer_add_printf(b, "{\"ok\":true}");
        evhttp_send_reply(req, 201, "Created", b);
    } else if (strcmp(path, "/rid") == 0 && fx->srv_rid_n < 8) {
        struct evkeyvalq *in = evhttp_request_get_input_headers(req);
        struct evkeyval *kv;
        int i = fx->srv_rid_n++;
        TAILQ_FOREACH(kv, in, next) {
            if (strcasecmp(kv->key, "X-Request-ID") != 0)
                continue;
            if (fx->srv_rid_count[i]++ == 0)
                snprintf(fx->srv_rid[i], sizeof(fx->srv_rid[i]), "%s", kv->value);
        }
        evhttp_send_reply(req, 204, "No Content", b);
    } else if (strncmp(path, "/n/", 3) == 0) {
        evbuffer_add_printf(b, "n=%s", path + 3);
        evhttp_send_reply(req, 200, "OK", b);
    } else {
        evhttp_send_reply(req, 404, "Not Found", b);
    }
    evbuffer_free(b);
}

static int setup(void **state) {
    fx_t *fx = calloc(1, sizeof(*fx));
    struct evhttp_bound_socket *bs;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    fx->base = event_base_new();
    fx->srv = evhttp_new(fx->base);
    evhttp_set_allowed_methods(fx->srv, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(fx->srv, serve, fx);
    bs = evhttp_bind_socket_with_handle(fx->srv, "127.0.0.1", 0);
    assert_non_null(bs);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &len), 0);
    fx->port = ntohs(sa.sin_port);
    *state = fx;
    return 0;
}

static int wake_pred_none(fx_t *fx) {
    return fx->srv_delayed_pending == 0;
}

static void tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until pred(fx) holds or timeout_ms passes. @returns pred(fx). */
static int run_until(fx_t *fx, int (*pred)(fx_t *), int64_t timeout_ms) {
    struct event *t = event_new(fx->base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 20000}; /* keeps EVLOOP_ONCE from blocking forever */
    int64_t deadline = msp_now_ms() + timeout_ms;

    event_add(t, &tv);
    while (!pred(fx) && msp_now_ms() < deadline)
        event_base_loop(fx->base, EVLOOP_ONCE);
    event_free(t);
    return pred(fx);
}

static int teardown(void **state) {
    fx_t *fx = *state;

    msp_http_destroy(fx->h);
    fx->h = NULL;
    /* Let delayed replies go out so libevent frees their requests. */
    run_until(fx, wake_pred_none, 5000);
    evhttp_free(fx->srv);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

static void client(fx_t *fx, const msp_http_opts_t *opts) {
    fx->h = msp_http_new(fx->base, opts);
    assert_non_null(fx->h);
}

static void url(fx_t *fx, char *out, size_t size, const char *path) {
    snprintf(out, size, "http://127.0.0.1:%d%s", fx->port, path);
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static void on_done(msp_http_response_t *res, void *opaque) {
    got_t *g = opaque;

    g->called++;
    g->status = res->status;
    g->curl_code = res->curl_code;
    snprintf(g->errstr, sizeof(g->errstr), "%s", res->errstr);
    assert_non_null(res->body); /* promised even on failure */
    g->body = dup_or_null(res->body);
    g->body_len = res->body_len;
    g->retry_after_ms = res->retry_after_ms;
    g->content_type = dup_or_null(res->content_type);
    g->link_next = dup_or_null(res->link_next);
    g->elapsed_ms = res->elapsed_ms;
    snprintf(g->request_id, sizeof(g->request_id), "%s", res->request_id);
    g->outcome = msp_http_classify(res);
    if (g->fx)
        g->fx->done++;
}

static void got_free(got_t *g) {
    free(g->body);
    free(g->content_type);
    free(g->link_next);
    memset(g, 0, sizeof(*g));
}

static int done_1(fx_t *fx) {
    return fx->done >= 1;
}

/* One request, run to completion. */
static void fetch(fx_t *fx, const msp_http_request_t *req, got_t *g) {
    g->fx = fx;
    assert_int_equal(msp_http_request(fx->h, req, on_done, g), 0);
    assert_int_equal(msp_http_inflight(fx->h), 1);
    assert_true(run_until(fx, done_1, 10000));
    assert_int_equal(g->called, 1);
    assert_int_equal(msp_http_inflight(fx->h), 0);
}

/* ------------------------------------------------------------------ tests */

static void test_get_200_delivers_body_and_content_type(void **state) {
    fx_t *fx = *state;
    char u[128];
    msp_http_request_t req = {.method = "GET", .url = u};
    got_t g = {0};

    client(fx, NULL);
    url(fx, u, sizeof(u), "/hello");
    fetch(fx, &req, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.curl_code, 0);
    assert_string_equal(g.errstr, "");
    assert_string_equal(g.body, "hello world");
    assert_int_equal(g.body_len, 11);
    assert_string_equal(g.content_type, "text/plain; charset=utf-8");
    assert_null(g.link_next);
    assert_int_equal(g.retry_after_ms, -1);
    assert_true(g.elapsed_ms >= 0);
    assert_int_equal(g.outcome, MSP_HTTP_OK);
    got_free(&g);
}

static void test_429_with_retry_after_is_retried_after_3s(void **state) {
    fx_t *fx = *state;
    char u[128];
    msp_http_request_t req = {.method = "GET", .url = u};
    got_t g = {0};

    client(fx, NULL);
    url(fx, u, sizeof(u), "/ratelimited");
    fetch(fx, &req, &g);
    assert_int_equal(g.status, 429);
    assert_int_equal(g.retry_after_ms, 3000);
    assert_int_equal(g.outcome, MSP_HTTP_RETRY);
    assert_string_equal(g.body, "{\"error\":\"slow down\"}");
    got_free(&g);
}

static void test_link_rel_next_is_parsed_from_response(void **state) {
    fx_t *fx = *state;
    char u[128];
    msp_http_request_t req = {.method = "GET", .url = u};
    got_t g = {0};

    client(fx, NULL);
    url(fx, u, sizeof(u), "/paged");
    fetch(fx, &req, &g);
    assert_int_equal(g.status, 200);
    assert_non_null(g.link_next);
    assert_string_equal(g.link_next, "http://127.0.0.1/items?cursor=xyz&limit=500");
    got_free(&g);
}

static void test_link_header_variants(void **state) {
    static const struct {
        const char *value;
        const char *next; /* NULL: none */
    } cases[] = {
        {"<https://a/p2>; rel=\"next\"", "https://a/p2"},
        {"<https://a/p2>; rel=next", "https://a/p2"},
        {"<https://a/p2>;rel=NEXT", "https://a/p2"},
        {"<https://a/p1>; rel=\"prev\", <https://a/p3>; rel=\"next\"", "https://a/p3"},
        {"<https://a/p3>; rel=\"next\", <https://a/p1>; rel=\"prev\"", "https://a/p3"},
        {"<https://a/x?a=1,2>; title=\"a, b; c\"; rel=\"next\"", "https://a/x?a=1,2"},
        {"<https://a/last>; rel=\"last next\"", "https://a/last"},
        {"<https://a/n>; rel=\"nextpage\"", NULL},
        {"<https://a/p1>; rel=\"prev\"", NULL},
        {"<https://a/p1>; rel=\"first\",<https://a/p2>; rel=\"next\"", "https://a/p2"},
        {"", NULL},
        {"garbage", NULL},
        {"<https://a/unterminated; rel=next", NULL},
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = msp_http_parse_link_next(cases[i].value);
        if (cases[i].next) {
            if (!got || strcmp(got, cases[i].next) != 0)
                fail_msg("Link %s: expected %s, got %s", cases[i].value, cases[i].next,
                         got ? got : "(null)");
        } else if (got) {
            fail_msg("Link %s: expected none, got %s", cases[i].value, got);
        }
        free(got);
    }
    assert_null(msp_http_parse_link_next(NULL));
}

static void check_too_large(fx_t *fx, const char *path) {
    char u[128];
    msp_http_request_t req = {.method = "GET", .url = u};
    got_t g = {0};

    url(fx, u, sizeof(u), path);
    fetch(fx, &req, &g);
    assert_int_equal(g.status, 0);
    assert_int_not_equal(g.curl_code, 0);
    assert_string_equal(g.errstr, "response body larger than 1000 bytes");
    assert_string_equal(g.body, "");
    assert_int_equal(g.body_len, 0);
    got_free(&g);
    fx->done = 0;
}

static void test_body_over_max_body_fails_the_request(void **state) {
    fx_t *fx = *state;
    msp_http_opts_t opts = {.max_body = 1000};

    client(fx, &opts);
    check_too_large(fx, "/big");        /* Content-Length says so up front */
    check_too_large(fx, "/bigchunked"); /* only counting bytes notices */
}

static void test_slow_server_times_out_and_is_retried(void **state) {
    fx_t *fx = *state;
    char u[128];
    msp_http_request_t req = {.method = "GET", .url = u, .timeout_ms = 200};
    got_t g = {0};

    client(fx, NULL);
    url(fx, u, sizeof(u), "/slow?ms=600");
    fetch(fx, &req, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_true(strlen(g.errstr) > 0);
    assert_int_equal(g.outcome, MSP_HTTP_RETRY);
    assert_true(g.elapsed_ms >= 150 && g.elapsed_ms < 550);
    got_free(&g);
}

static void test_client_default_timeout_applies(void **state) {
    fx_t *fx = *state;
    msp_http_opts_t opts = {.timeout_ms = 150};
    char u[128];
    msp_http_request_t req = {.method = "GET", .url = u};
    got_t g = {0};

    client(fx, &opts);
    url(fx, u, sizeof(u), "/slow?ms=500");
    fetch(fx, &req, &g);
    assert_int_equal(g.curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(g.status, 0);
    got_free(&g);
}

static void test_connection_refused_is_a_transport_error(void **state) {
    fx_t *fx = *state;
    char u[128];
    msp_http_request_t req = {.method = "GET", .url = u};
    got_t g = {0};
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* A port that was free a moment ago and now has no listener. */
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);

    client(fx, NULL);
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/hello", ntohs(sa.sin_port));
    fetch(fx, &req, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.curl_code, CURLE_COULDNT_CONNECT);
    assert_true(strlen(g.errstr) > 0);
    assert_int_equal(g.outcome, MSP_HTTP_RETRY);
    got_free(&g);
}

static void test_only_http_and_https_are_allowed(void **state) {
    fx_t *fx = *state;
    msp_http_request_t req = {.method = "GET", .url = "file:///etc/passwd"};
    got_t g = {0};

    client(fx, NULL);
    fetch(fx, &req, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.curl_code, CURLE_UNSUPPORTED_PROTOCOL);
    assert_string_equal(g.body, "");
    got_free(&g);
}

static void test_post_body_and_custom_headers_reach_the_server(void **state) {
    fx_t *fx = *state;
    char u[128];
    const char *headers[] = {"X-Custom: hello there", "Content-Type: application/json", NULL};
    const char body[] = "{\"subject\":\"disk full\",\"n\":1}";
    msp_http_request_t req = {.method = "POST", .url = u, .headers = headers,
                              .body = body, .body_len = strlen(body)};
    got_t g = {0};

    client(fx, NULL);
    url(fx, u, sizeof(u), "/echo");
    fetch(fx, &req, &g);
    assert_int_equal(g.status, 201);
    assert_int_equal(g.outcome, MSP_HTTP_OK);
    assert_string_equal(fx->srv_method, "POST");
    assert_string_equal(fx->srv_body, body);
    assert_string_equal(fx->srv_custom, "hello there");
    assert_string_equal(fx->srv_content_type, "application/json");
    assert_non_null(strstr(fx->srv_accept_encoding, "gzip"));
    got_free(&g);
}

/* "xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx", lower-case hex */
static int is_uuid_v4(const char *s) {
    static const char variant[] = "89ab";
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!strchr("0123456789abcdef", s[i]) || !s[i]) {
            return 0;
        }
    }
    return s[14] == '4' && strchr(variant, s[19]) != NULL;
}

/* ConnectWise RMM's device operations require X-Request-ID and both vendors' support asks for
 * it: every request carries exactly one, fresh each time, the same the response reports, and
 * the outcome log line names it. */
static void test_every_request_carries_a_fresh_request_id_that_is_logged(void **state) {
    fx_t *fx = *state;
    char u[128], logbuf[8192] = "";
    const char *methods[] = {"GET", "POST", "PUT", "GET"};
    const char *headers[] = {"Accept: application/json", NULL};
    got_t g[4];
    FILE *log = tmpfile();

    assert_non_null(log);
    msp_log_set_stream(log);
    client(fx, NULL);
    url(fx, u, sizeof(u), "/rid?secret=hidden");
    for (int i = 0; i < 4; i++) {
        msp_http_request_t req = {.method = methods[i], .url = u, .headers = headers,
                                  .body = i == 1 ? "{}" : NULL, .body_len = i == 1 ? 2 : 0,
                                  .tenant = "acme"};
        memset(&g[i], 0, sizeof(g[i]));
        fx->done = 0;
        fetch(fx, &req, &g[i]);
        assert_int_equal(g[i].status, 204);
    }
    msp_log_set_stream(NULL);
    assert_int_equal(fx->srv_rid_n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fx->srv_rid_count[i], 1);
        assert_true(is_uuid_v4(fx->srv_rid[i]));
        assert_string_equal(g[i].request_id, fx->srv_rid[i]);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(fx->srv_rid[i], fx->srv_rid[k]);
    }
    rewind(log);
    logbuf[fread(logbuf, 1, sizeof(logbuf) - 1, log)] = '\0';
    fclose(log);
    for (int i = 0; i < 4; i++) {
        const char *line = strstr(logbuf, fx->srv_rid[i]);
        assert_non_null(line);
        while (line > logbuf && line[-1] != '\n')
            line--;
        assert_non_null(strstr(line, "\"event\":\"vendor.request\""));
        assert_non_null(strstr(line, "\"tenant\":\"acme\""));
        assert_non_null(strstr(line, "status=204"));
        assert_non_null(strstr(line, "outcome=ok"));
    }
    assert_null(strstr(logbuf, "hidden")); /* the query string is never logged */
    for (int i = 0; i < 4; i++)
        got_free(&g[i]);
}

static void test_a_callers_own_request_id_is_sent_once_as_given(void **state) {
    fx_t *fx = *state;
    char u[128];
    const char *headers[] = {"X-Request-ID:  support-case-42 ", "X-Request-ID: second", NULL};
    msp_http_request_t req = {.method = "GET", .url = u, .headers = headers};
    got_t g = {0};

    client(fx, NULL);
    url(fx, u, sizeof(u), "/rid");
    fetch(fx, &req, &g);
    assert_int_equal(fx->srv_rid_count[0], 1);
    assert_string_equal(fx->srv_rid[0], "support-case-42");
    assert_string_equal(g.request_id, "support-case-42");
    got_free(&g);
}

static void test_put_and_delete_use_their_verbs(void **state) {
    fx_t *fx = *state;
    char u[128];
    char body[] = "{\"properties\":{}} and some trailing bytes";
    msp_http_request_t req = {.method = "PUT", .url = u, .body = body, .body_len = 17};
    got_t g = {0};

    client(fx, NULL);
    url(fx, u, sizeof(u), "/echo");
    fetch(fx, &req, &g);
    memset(body, '!', sizeof(body) - 1); /* the body was copied at request time */
    assert_string_equal(fx->srv_method, "PUT");
    assert_string_equal(fx->srv_body, "{\"properties\":{}}");
    got_free(&g);

    fx->done = 0;
    req.method = "DELETE";
    req.body = NULL;
    req.body_len = 0;
    fetch(fx, &req, &g);
    assert_string_equal(fx->srv_method, "DELETE");
    assert_string_equal(fx->srv_body, "");
    got_free(&g);
}

static void test_invalid_request_is_refused_without_callback(void **state) {
    fx_t *fx = *state;
    msp_http_request_t req = {.method = "get me", .url = "http://127.0.0.1/"};
    got_t g = {0};

    client(fx, NULL);
    assert_int_equal(msp_http_request(fx->h, &req, on_done, &g), -1);
    req.method = "GET";
    req.url = NULL;
    assert_int_equal(msp_http_request(fx->h, &req, on_done, &g), -1);
    assert_int_equal(msp_http_request(NULL, &req, on_done, &g), -1);
    assert_int_equal(msp_http_inflight(fx->h), 0);
    assert_int_equal(g.called, 0);
}

#define N_CONCURRENT 100

static int done_all(fx_t *fx) {
    return fx->done >= N_CONCURRENT;
}

static void test_hundred_concurrent_requests_all_complete(void **state) {
    fx_t *fx = *state;
    got_t *g = calloc(N_CONCURRENT, sizeof(*g));
    char u[128], want[32];
    int i;

    client(fx, NULL);
    for (i = 0; i < N_CONCURRENT; i++) {
        char path[32];
        msp_http_request_t req = {.method = "GET", .url = u};
        snprintf(path, sizeof(path), "/n/%d", i);
        url(fx, u, sizeof(u), path);
        g[i].fx = fx;
        assert_int_equal(msp_http_request(fx->h, &req, on_done, &g[i]), 0);
    }
    assert_int_equal(msp_http_inflight(fx->h), N_CONCURRENT);
    assert_true(run_until(fx, done_all, 20000));
    assert_int_equal(msp_http_inflight(fx->h), 0);
    for (i = 0; i < N_CONCURRENT; i++) {
        assert_int_equal(g[i].called, 1);
        assert_int_equal(g[i].status, 200);
        snprintf(want, sizeof(want), "n=%d", i);
        assert_string_equal(g[i].body, want);
        got_free(&g[i]);
    }
    free(g);
}

static int server_saw_3(fx_t *fx) {
    return fx->srv_requests >= 3;
}

static void test_destroy_cancels_inflight_requests(void **state) {
    fx_t *fx = *state;
    got_t g[3] = {{0}};
    char u[128];
    int i;

    client(fx, NULL);
    url(fx, u, sizeof(u), "/slow?ms=300");
    for (i = 0; i < 3; i++) {
        msp_http_request_t req = {.method = "GET", .url = u};
        g[i].fx = fx;
        assert_int_equal(msp_http_request(fx->h, &req, on_done, &g[i]), 0);
    }
    /* Mid-flight: the server holds all three. */
    assert_true(run_until(fx, server_saw_3, 5000));
    assert_int_equal(fx->done, 0);
    msp_http_destroy(fx->h);
    fx->h = NULL;
    assert_int_equal(fx->done, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(g[i].called, 1);
        assert_int_equal(g[i].status, 0);
        assert_int_equal(g[i].curl_code, CURLE_ABORTED_BY_CALLBACK);
        assert_string_equal(g[i].errstr, "cancelled");
        got_free(&g[i]);
    }
    /* Requests queued but never started are cancelled too. */
    client(fx, NULL);
    {
        msp_http_request_t req = {.method = "GET", .url = u};
        got_t q = {0};
        assert_int_equal(msp_http_request(fx->h, &req, on_done, &q), 0);
        msp_http_destroy(fx->h);
        fx->h = NULL;
        assert_int_equal(q.called, 1);
        assert_string_equal(q.errstr, "cancelled");
        got_free(&q);
    }
}

/* A callback that starts the next request: a pager fetching page after page. */
static void on_chain(msp_http_response_t *res, void *opaque) {
    got_t *g = opaque;
    fx_t *fx = g->fx;

    on_done(res, opaque);
    if (--fx->chain_left > 0) {
        char u[128];
        msp_http_request_t req = {.method = "GET", .url = u};
        got_t *next = &fx->chain_got[3 - fx->chain_left];
        url(fx, u, sizeof(u), "/hello");
        next->fx = fx;
        assert_int_equal(msp_http_request(fx->h, &req, on_chain, next), 0);
    }
}

static int chain_done(fx_t *fx) {
    return fx->done >= 3;
}

static void test_callback_may_start_new_requests(void **state) {
    fx_t *fx = *state;
    char u[128];
    msp_http_request_t req = {.method = "GET", .url = u};
    int i;

    client(fx, NULL);
    url(fx, u, sizeof(u), "/hello");
    fx->chain_left = 3;
    fx->chain_got[0].fx = fx;
    assert_int_equal(msp_http_request(fx->h, &req, on_chain, &fx->chain_got[0]), 0);
    assert_true(run_until(fx, chain_done, 10000));
    for (i = 0; i < 3; i++) {
        assert_int_equal(fx->chain_got[i].status, 200);
        got_free(&fx->chain_got[i]);
    }
    assert_int_equal(msp_http_inflight(fx->h), 0);
}

/* A callback that destroys the client: the other in-flight requests are cancelled, and the
 * client is freed only after this callback returns (ASan would catch a use after free). */
static void on_destroy(msp_http_response_t *res, void *opaque) {
    got_t *g = opaque;
    fx_t *fx = g->fx;
    msp_http_request_t req = {.method = "GET", .url = "http://127.0.0.1:1/"};

    on_done(res, opaque);
    msp_http_destroy(fx->h);
    assert_int_equal(msp_http_request(fx->h, &req, on_done, g), -1); /* not freed yet: refused */
    fx->h = NULL;
}

static int done_3(fx_t *fx) {
    return fx->done >= 3;
}

static void test_callback_may_destroy_the_client(void **state) {
    fx_t *fx = *state;
    got_t slow[2] = {{0}}, fast = {0};
    char us[128], uf[128];
    int i;

    client(fx, NULL);
    url(fx, us, sizeof(us), "/slow?ms=500");
    url(fx, uf, sizeof(uf), "/hello");
    for (i = 0; i < 2; i++) {
        msp_http_request_t req = {.method = "GET", .url = us};
        slow[i].fx = fx;
        assert_int_equal(msp_http_request(fx->h, &req, on_done, &slow[i]), 0);
    }
    {
        msp_http_request_t req = {.method = "GET", .url = uf};
        fast.fx = fx;
        assert_int_equal(msp_http_request(fx->h, &req, on_destroy, &fast), 0);
    }
    assert_true(run_until(fx, done_3, 5000));
    assert_null(fx->h);
    assert_int_equal(fast.status, 200);
    for (i = 0; i < 2; i++) {
        assert_int_equal(slow[i].called, 1);
        assert_string_equal(slow[i].errstr, "cancelled");
        got_free(&slow[i]);
    }
    got_free(&fast);
}

static void test_steal_body_transfers_ownership(void **state) {
    msp_http_response_t res;
    char *b;
    (void)state;

    memset(&res, 0, sizeof(res));
    res.body = strdup("abc");
    res.body_len = 3;
    b = msp_http_steal_body(&res);
    assert_string_equal(b, "abc");
    assert_null(res.body);
    assert_int_equal(res.body_len, 0);
    free(b);
    assert_null(msp_http_steal_body(&res));
}

static void test_classify_follows_the_enum_contract(void **state) {
    static const struct {
        long status;
        msp_http_outcome_t want;
    } cases[] = {
        {200, MSP_HTTP_OK},         {201, MSP_HTTP_OK},         {204, MSP_HTTP_OK},
        {0, MSP_HTTP_RETRY},        {408, MSP_HTTP_RETRY},      {423, MSP_HTTP_RETRY},
        {425, MSP_HTTP_RETRY},      {429, MSP_HTTP_RETRY},      {500, MSP_HTTP_RETRY},
        {502, MSP_HTTP_RETRY},      {503, MSP_HTTP_RETRY},      {599, MSP_HTTP_RETRY},
        {401, MSP_HTTP_FATAL},      {403, MSP_HTTP_FATAL},      {400, MSP_HTTP_DEADLETTER},
        {404, MSP_HTTP_DEADLETTER}, {409, MSP_HTTP_DEADLETTER}, {422, MSP_HTTP_DEADLETTER},
        {100, MSP_HTTP_DEADLETTER}, {301, MSP_HTTP_DEADLETTER}, {304, MSP_HTTP_DEADLETTER},
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msp_http_response_t res;
        memset(&res, 0, sizeof(res));
        res.status = cases[i].status;
        if (msp_http_classify(&res) != cases[i].want)
            fail_msg("status %ld: expected %s, got %s", cases[i].status,
                     msp_http_outcome_name(cases[i].want),
                     msp_http_outcome_name(msp_http_classify(&res)));
    }
    assert_string_equal(msp_http_outcome_name(MSP_HTTP_OK), "ok");
    assert_string_equal(msp_http_outcome_name(MSP_HTTP_RETRY), "retry");
    assert_string_equal(msp_http_outcome_name(MSP_HTTP_FATAL), "fatal");
    assert_string_equal(msp_http_outcome_name(MSP_HTTP_DEADLETTER), "deadletter");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_200_delivers_body_and_content_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_with_retry_after_is_retried_after_3s, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_rel_next_is_parsed_from_response, setup, teardown),
        cmocka_unit_test(test_link_header_variants),
        cmocka_unit_test_setup_teardown(test_body_over_max_body_fails_the_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_server_times_out_and_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_default_timeout_applies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused_is_a_transport_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_http_and_https_are_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body_and_custom_headers_reach_the_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_request_carries_a_fresh_request_id_that_is_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_callers_own_request_id_is_sent_once_as_given, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_and_delete_use_their_verbs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_request_is_refused_without_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hundred_concurrent_requests_all_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_cancels_inflight_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_may_start_new_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_may_destroy_the_client, setup, teardown),
        cmocka_unit_test(test_steal_body_transfers_ownership),
        cmocka_unit_test(test_classify_follows_the_enum_contract),
    };

    /* The server writes to sockets the client may have closed (timeouts, cancels). */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
