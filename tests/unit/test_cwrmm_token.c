/*
 * test_cwrmm_token.c — the ConnectWise RMM token cache against an in-process token endpoint.
 *
 * A libevent evhttp server on 127.0.0.1:<ephemeral> plays POST /v1/token (it counts the calls,
 * and answers with a configurable expires_in, status and delay); the msp_http client and the
 * cache run on the same event_base, so each test is one thread that starts gets and runs the loop
 * until the callbacks it expects have happened. Redis is absent (NULL) or broken in most tests:
 * the cache then works from memory. When redis-server is on PATH, the last tests start one on a
 * free port and check that two caches (two "processes") share one token through it, in the
 * blocking mode and in the async mode (msp_cwrmm_tokens_set_async, one msp_aredis_t each), and
 * that a stopped Redis never blocks the async mode.
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "mspsync/aredis.h"
#include "mspsync/backoff.h"
#include "mspsync/cwrmm.h"
#include "mspsync/http.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"

#define KEY_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

/* ------------------------------------------------------------------ fixture */

typedef struct fx_s {
    struct event_base  *base;
    struct evhttp      *srv;
    int                 port;
    msp_http_t         *http;
    msp_secret_key_t    key;
    msp_cwrmm_integration_t in;

    /* server behaviour and observations */
    int   posts;            /* POST /v1/token answered or pending */
    int   expires_in;       /* seconds, in the answer */
    int   status;           /* 200, or an error status */
    int   delay_ms;         /* answer after this long */
    int   pending;          /* delayed answers not sent yet */
    int   bad_requests;     /* wrong method, content type or body */
} fx_t;

/* What one token callback saw. */
typedef struct got_s {
    int     called;
    char    header[256];
    int     had_header;
    long    status;
    int64_t retry_after_ms;
    char    error[512];
    int     in_get;         /* set while msp_cwrmm_token_get runs: must stay 0 in callbacks */
} got_t;

static int in_get;

static void on_token(const char *auth_header, long status, int64_t retry_after_ms,
                     const char *error, void *opaque) {
    got_t *g = opaque;
    g->called++;
    g->in_get = in_get;
    g->had_header = auth_header != NULL;
    snprintf(g->header, sizeof(g->header), "%s", auth_header ? auth_header : "");
    g->status = status;
    g->retry_after_ms = retry_after_ms;
    snprintf(g->error, sizeof(g->error), "%s", error ? error : "");
}

static int get(msp_cwrmm_tokens_t *t, fx_t *fx, got_t *g) {
    int rc;
    in_get = 1;
    rc = msp_cwrmm_token_get(t, "acme", &fx->in, on_token, g);
    in_get = 0;
    return rc;
}

typedef struct delayed_s {
    fx_t                  *fx;
    struct evhttp_request *req;
    struct event          *ev;
    int                    n;
} delayed_t;

static void answer(fx_t *fx, struct evhttp_request *req, int n) {
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    evhttp_add_header(out, "Content-Type", "application/json");
    if (fx->status == 200) {
        evbuffer_add_printf(b, "{\"access_token\":\"tok-%d\",\"token_type\":\"Bearer\","
                               "\"expires_in\":%d,\"scope\":\"platform.devices.read\"}",
                            n, fx->expires_in);
        evhttp_send_reply(req, 200, "OK", b);
    } else {
        evbuffer_add_printf(b, "{\"error\":\"invalid_client\","
                               "\"error_description\":\"Client authentication failed\"}");
        evhttp_send_reply(req, fx->status, "Error", b);
    }
    evbuffer_free(b);
}

static void delayed_fire(evutil_socket_t fd, short what, void *arg) {
    delayed_t *d = arg;
    (void)fd;
    (void)what;
    answer(d->fx, d->req, d->n);
    d->fx->pending--;
    event_free(d->ev);
    free(d);
}

static void serve(struct evhttp_request *req, void *arg) {
    fx_t *fx = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char body[2048];
    size_t n = evbuffer_get_length(in);
    json_t *j;

    if (!path || strcmp(path, "/v1/token") != 0 ||
        evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        fx->bad_requests++;
        evhttp_send_reply(req, 404, "Not Found", NULL);
        return;
    }
    if (n >= sizeof(body))
        n = sizeof(body) - 1;
    evbuffer_copyout(in, body, n);
    body[n] = '\0';
    j = json_loads(body, 0, NULL);
    if (!ct || strcmp(ct, "application/json") != 0 || !j ||
        strcmp(json_string_value(json_object_get(j, "grant_type")), "client_credentials") != 0 ||
        strcmp(json_string_value(json_object_get(j, "client_secret")), fx->in.client_secret) != 0)
        fx->bad_requests++;
    json_decref(j);

    fx->posts++;
    if (fx->delay_ms > 0) {
        delayed_t *d = calloc(1, sizeof(*d));
        struct timeval tv = {fx->delay_ms / 1000, (fx->delay_ms % 1000) * 1000};
        d->fx = fx;
        d->req = req;
        d->n = fx->posts;
        d->ev = evtimer_new(fx->base, delayed_fire, d);
        evtimer_add(d->ev, &tv);
        fx->pending++;
        return;
    }
    answer(fx, req, fx->posts);
}

static void integration(fx_t *fx, const char *secret) {
    free(fx->in.client_secret);
    memset(&fx->in, 0, sizeof(fx->in));
    snprintf(fx->in.base_url, sizeof(fx->in.base_url), "http://127.0.0.1:%d", fx->port);
    snprintf(fx->in.client_id, sizeof(fx->in.client_id), "client-1");
    msp_cwrmm_account_id(fx->in.base_url, fx->in.client_id, fx->in.account,
                         sizeof(fx->in.account));
    fx->in.client_secret = strdup(secret);
}

static int setup(void **state) {
    fx_t *fx = calloc(1, sizeof(*fx));
    struct evhttp_bound_socket *bs;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    char err[128];

    fx->base = event_base_new();
    fx->srv = evhttp_new(fx->base);
    evhttp_set_allowed_methods(fx->srv, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(fx->srv, serve, fx);
    bs = evhttp_bind_socket_with_handle(fx->srv, "127.0.0.1", 0);
    assert_non_null(bs);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &len), 0);
    fx->port = ntohs(sa.sin_port);
    fx->http = msp_http_new(fx->base, NULL);
    assert_non_null(fx->http);
    assert_int_equal(msp_secret_key_parse(&fx->key, KEY_HEX, err, sizeof(err)), 0);
    fx->expires_in = 3599;
    fx->status = 200;
    integration(fx, "the-client-secret");
    *state = fx;
    return 0;
}

static void tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until *count reaches want or timeout_ms passes. @returns *count >= want. */
static int run_until(fx_t *fx, const int *count, int want, int64_t timeout_ms) {
    struct event *t = event_new(fx->base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 10000};
    int64_t deadline = msp_now_ms() + timeout_ms;

    event_add(t, &tv);
    while ((!count || *count < want) && msp_now_ms() < deadline)
        event_base_loop(fx->base, EVLOOP_ONCE);
    event_free(t);
    return !count || *count >= want;
}

/* Run the loop for ms milliseconds. */
static void run_for(fx_t *fx, int64_t ms) {
    struct event *t = event_new(fx->base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 10000};
    int64_t deadline = msp_now_ms() + ms;

    event_add(t, &tv);
    while (msp_now_ms() < deadline)
        event_base_loop(fx->base, EVLOOP_ONCE);
    event_free(t);
}

static int teardown(void **state) {
    fx_t *fx = *state;

    msp_http_destroy(fx->http);
    fx->http = NULL;
    /* let delayed answers go out so libevent frees their requests */
    for (int i = 0; i < 100 && fx->pending > 0; i++)
        run_for(fx, 20);
    evhttp_free(fx->srv);
    event_base_free(fx->base);
    free(fx->in.client_secret);
    free(fx);
    return 0;
}

/* Sum of called over n results. */
static int called(const got_t *g, int n) {
    int sum = 0;
    for (int i = 0; i < n; i++)
        sum += g[i].called;
    return sum;
}

static int wait_called(fx_t *fx, const got_t *g, int n, int want, int64_t timeout_ms) {
    int64_t deadline = msp_now_ms() + timeout_ms;
    while (called(g, n) < want && msp_now_ms() < deadline)
        run_for(fx, 10);
    return called(g, n);
}

/* ------------------------------------------------------------------ tests (memory only) */

static void test_fifty_concurrent_gets_cause_one_post(void **state) {
    fx_t *fx = *state;
    got_t g[50];
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);

    memset(g, 0, sizeof(g));
    fx->delay_ms = 100;
    for (int i = 0; i < 50; i++)
        assert_int_equal(get(t, fx, &g[i]), 0);
    assert_int_equal(called(g, 50), 0); /* never from inside get */
    assert_int_equal(wait_called(fx, g, 50, 50, 5000), 50);
    assert_int_equal(fx->posts, 1);
    assert_int_equal(msp_cwrmm_tokens_requested(t), 1);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(g[i].called, 1);
        assert_int_equal(g[i].in_get, 0);
        assert_string_equal(g[i].header, "Authorization: Bearer tok-1");
        assert_int_equal(g[i].status, 200);
    }
    assert_int_equal(fx->bad_requests, 0);

    /* a later get is served from memory, still deferred */
    memset(g, 0, sizeof(g));
    assert_int_equal(get(t, fx, &g[0]), 0);
    assert_int_equal(g[0].called, 0);
    assert_int_equal(wait_called(fx, g, 1, 1, 1000), 1);
    assert_string_equal(g[0].header, "Authorization: Bearer tok-1");
    assert_int_equal(fx->posts, 1);
    msp_cwrmm_tokens_destroy(t);
}

static void test_token_is_refreshed_once_when_a_quarter_of_its_life_is_left(void **state) {
    fx_t *fx = *state;
    got_t g[10];
    redisContext *none = NULL;
    /* expires_in 2 s, margin 60 s: refreshed when less than min(60 s, 2 s / 4) = 0.5 s is left */
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, &none, &fx->key, 60000);

    memset(g, 0, sizeof(g));
    fx->expires_in = 2;
    assert_int_equal(get(t, fx, &g[0]), 0);
    assert_int_equal(wait_called(fx, g, 1, 1, 2000), 1);
    assert_string_equal(g[0].header, "Authorization: Bearer tok-1");

    run_for(fx, 1000); /* 1 s left: still good */
    assert_int_equal(get(t, fx, &g[1]), 0);
    assert_int_equal(wait_called(fx, g, 2, 2, 1000), 2);
    assert_string_equal(g[1].header, "Authorization: Bearer tok-1");
    assert_int_equal(fx->posts, 1);

    run_for(fx, 600); /* < 0.5 s left: the next gets refresh, once */
    fx->delay_ms = 50;
    for (int i = 2; i < 10; i++)
        assert_int_equal(get(t, fx, &g[i]), 0);
    assert_int_equal(wait_called(fx, g, 10, 10, 2000), 10);
    assert_int_equal(fx->posts, 2);
    for (int i = 2; i < 10; i++)
        assert_string_equal(g[i].header, "Authorization: Bearer tok-2");
    msp_cwrmm_tokens_destroy(t);
}

/* Log redaction holds the token the cache keeps, not every token it ever had. */
static void test_only_the_kept_token_is_redacted(void **state) {
    fx_t *fx = *state;
    got_t g[3];
    redisContext *none = NULL;
    size_t before = msp_log_redact_count();
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, &none, &fx->key, 60000);

    memset(g, 0, sizeof(g));
    fx->expires_in = 2;
    assert_int_equal(get(t, fx, &g[0]), 0);
    assert_int_equal(wait_called(fx, g, 1, 1, 2000), 1);
    assert_int_equal(msp_log_redact_count(), before + 1);           /* tok-1 */
    run_for(fx, 1600);                                              /* due for a refresh */
    assert_int_equal(get(t, fx, &g[1]), 0);
    assert_int_equal(wait_called(fx, g, 2, 2, 2000), 2);
    assert_string_equal(g[1].header, "Authorization: Bearer tok-2");
    assert_int_equal(msp_log_redact_count(), before + 1);           /* tok-2 replaced tok-1 */
    msp_cwrmm_token_rejected(t, "acme", &fx->in, g[1].header);
    assert_int_equal(msp_log_redact_count(), before);               /* rejected: forgotten */
    assert_int_equal(get(t, fx, &g[2]), 0);
    assert_int_equal(wait_called(fx, g, 3, 3, 2000), 3);
    assert_int_equal(msp_log_redact_count(), before + 1);           /* tok-3 */
    msp_cwrmm_tokens_destroy(t);
    assert_int_equal(msp_log_redact_count(), before);               /* freed: forgotten */
}

static void test_concurrent_rejections_cause_one_refresh(void **state) {
    fx_t *fx = *state;
    got_t first, g[10];
    char rejected[256];
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);

    memset(&first, 0, sizeof(first));
    memset(g, 0, sizeof(g));
    assert_int_equal(get(t, fx, &first), 0);
    assert_int_equal(wait_called(fx, &first, 1, 1, 2000), 1);
    snprintf(rejected, sizeof(rejected), "%s", first.header);

    /* ten API calls answered 401 with the same token; each forgets it and asks again */
    fx->delay_ms = 50;
    for (int i = 0; i < 10; i++) {
        msp_cwrmm_token_rejected(t, "acme", &fx->in, rejected);
        assert_int_equal(get(t, fx, &g[i]), 0);
    }
    assert_int_equal(wait_called(fx, g, 10, 10, 2000), 10);
    assert_int_equal(fx->posts, 2);
    for (int i = 0; i < 10; i++)
        assert_string_equal(g[i].header, "Authorization: Bearer tok-2");

    /* a late rejection of the old token does not drop the new one */
    msp_cwrmm_token_rejected(t, "acme", &fx->in, rejected);
    memset(g, 0, sizeof(g));
    assert_int_equal(get(t, fx, &g[0]), 0);
    assert_int_equal(wait_called(fx, g, 1, 1, 2000), 1);
    assert_string_equal(g[0].header, "Authorization: Bearer tok-2");
    assert_int_equal(fx->posts, 2);
    msp_cwrmm_tokens_destroy(t);
}

static void test_401_from_the_token_endpoint_reaches_every_waiter(void **state) {
    fx_t *fx = *state;
    got_t g[5];
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);

    memset(g, 0, sizeof(g));
    fx->status = 401;
    fx->delay_ms = 50;
    for (int i = 0; i < 5; i++)
        assert_int_equal(get(t, fx, &g[i]), 0);
    assert_int_equal(wait_called(fx, g, 5, 5, 2000), 5);
    assert_int_equal(fx->posts, 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(g[i].called, 1);
        assert_int_equal(g[i].had_header, 0);
        assert_int_equal(g[i].status, 401);
        assert_int_equal(g[i].retry_after_ms, -1);
        assert_non_null(strstr(g[i].error, "POST /v1/token answered 401"));
        assert_non_null(strstr(g[i].error, "the client id or secret is wrong or revoked"));
        assert_null(strstr(g[i].error, fx->in.client_secret));
    }

    /* nothing is cached from a failure: the next get asks again */
    fx->status = 200;
    memset(g, 0, sizeof(g));
    assert_int_equal(get(t, fx, &g[0]), 0);
    assert_int_equal(wait_called(fx, g, 1, 1, 2000), 1);
    assert_int_equal(g[0].status, 200);
    assert_int_equal(fx->posts, 2);
    msp_cwrmm_tokens_destroy(t);
}

static void test_unreachable_endpoint_is_a_transport_failure(void **state) {
    fx_t *fx = *state;
    got_t g;
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);

    memset(&g, 0, sizeof(g));
    snprintf(fx->in.base_url, sizeof(fx->in.base_url), "http://127.0.0.1:1");
    assert_int_equal(get(t, fx, &g), 0);
    assert_int_equal(wait_called(fx, &g, 1, 1, 5000), 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.had_header, 0);
    assert_non_null(strstr(g.error, "ConnectWise RMM POST /v1/token"));
    msp_cwrmm_tokens_destroy(t);
}

static void test_cancelled_waiter_is_never_called(void **state) {
    fx_t *fx = *state;
    got_t a, b, c;
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    fx->delay_ms = 100;
    assert_int_equal(get(t, fx, &a), 0);
    assert_int_equal(get(t, fx, &b), 0);
    msp_cwrmm_token_cancel(t, &a); /* waiting for the POST */
    assert_int_equal(wait_called(fx, &b, 1, 1, 2000), 1);
    run_for(fx, 50);
    assert_int_equal(a.called, 0);

    /* answered from memory but not yet delivered */
    assert_int_equal(get(t, fx, &c), 0);
    msp_cwrmm_token_cancel(t, &c);
    run_for(fx, 50);
    assert_int_equal(c.called, 0);
    assert_int_equal(fx->posts, 1);
    msp_cwrmm_tokens_destroy(t);
}

static void test_a_changed_secret_never_reuses_the_old_token(void **state) {
    fx_t *fx = *state;
    got_t a, b;
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(get(t, fx, &a), 0);
    assert_int_equal(wait_called(fx, &a, 1, 1, 2000), 1);
    integration(fx, "a-new-secret");
    assert_int_equal(get(t, fx, &b), 0);
    assert_int_equal(wait_called(fx, &b, 1, 1, 2000), 1);
    assert_int_equal(fx->posts, 2);
    assert_string_equal(b.header, "Authorization: Bearer tok-2");
    assert_int_equal(fx->bad_requests, 0);
    msp_cwrmm_tokens_destroy(t);
}

static void test_destroy_drops_waiters_and_an_inflight_request(void **state) {
    fx_t *fx = *state;
    got_t g[3];
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);

    memset(g, 0, sizeof(g));
    fx->delay_ms = 200;
    for (int i = 0; i < 3; i++)
        assert_int_equal(get(t, fx, &g[i]), 0);
    run_for(fx, 50); /* the POST is on the wire */
    msp_cwrmm_tokens_destroy(t);
    run_for(fx, 400); /* its answer arrives for a cache that is gone */
    assert_int_equal(called(g, 3), 0);
    assert_int_equal(fx->posts, 1);
}

typedef struct destroyer_s {
    msp_cwrmm_tokens_t *t;
    int                 called;
} destroyer_t;

static void destroy_in_callback(const char *auth_header, long status, int64_t retry_after_ms,
                                const char *error, void *opaque) {
    destroyer_t *d = opaque;
    (void)auth_header, (void)status, (void)retry_after_ms, (void)error;
    d->called++;
    msp_cwrmm_tokens_destroy(d->t);
}

static void test_a_callback_may_destroy_the_cache(void **state) {
    fx_t *fx = *state;
    destroyer_t d[2];
    msp_cwrmm_tokens_t *t = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);

    d[0].t = d[1].t = t;
    d[0].called = d[1].called = 0;
    assert_int_equal(msp_cwrmm_token_get(t, "acme", &fx->in, destroy_in_callback, &d[0]), 0);
    assert_int_equal(msp_cwrmm_token_get(t, "acme", &fx->in, destroy_in_callback, &d[1]), 0);
    run_until(fx, &d[0].called, 1, 2000);
    run_for(fx, 50);
    assert_int_equal(d[0].called, 1);
    assert_int_equal(d[1].called, 0); /* dropped with the cache */
}

static void test_broken_redis_means_memory_only(void **state) {
    fx_t *fx = *state;
    got_t g[3];
    redisContext *broken = redisConnect("127.0.0.1", 1); /* refused: err is set */
    msp_cwrmm_tokens_t *t;

    assert_non_null(broken);
    assert_true(broken->err != 0);
    t = msp_cwrmm_tokens_new(fx->base, fx->http, &broken, &fx->key, 60000);
    memset(g, 0, sizeof(g));
    for (int i = 0; i < 3; i++)
        assert_int_equal(get(t, fx, &g[i]), 0);
    assert_int_equal(wait_called(fx, g, 3, 3, 2000), 3);
    assert_int_equal(fx->posts, 1);
    assert_string_equal(g[2].header, "Authorization: Bearer tok-1");
    msp_cwrmm_token_rejected(t, "acme", &fx->in, g[0].header);
    msp_cwrmm_tokens_destroy(t);
    redisFree(broken);
}

/* ------------------------------------------------------------------ tests with redis-server */

typedef struct redis_srv_s {
    pid_t pid;
    int   port;
} redis_srv_t;

static int on_path(const char *name) {
    const char *path = getenv("PATH");
    char buf[4096], full[4200];
    char *save = NULL, *dir;

    if (!path)
        return 0;
    snprintf(buf, sizeof(buf), "%s", path);
    for (dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(full, sizeof(full), "%s/%s", dir, name);
        if (access(full, X_OK) == 0)
            return 1;
    }
    return 0;
}

static int free_port(void) {
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Start redis-server on a free port. @returns 0, or -1 (skip). */
static int redis_start(redis_srv_t *r) {
    char port[16];

    if (!on_path("redis-server"))
        return -1;
    r->port = free_port();
    if (r->port <= 0)
        return -1;
    snprintf(port, sizeof(port), "%d", r->port);
    r->pid = fork();
    if (r->pid < 0)
        return -1;
    if (r->pid == 0) {
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) { /* up to 5 s */
        redisContext *c = redisConnect("127.0.0.1", r->port);
        int ok = c && !c->err;
        if (ok) {
            redisReply *rep = redisCommand(c, "PING");
            ok = rep && rep->type == REDIS_REPLY_STATUS;
            if (rep)
                freeReplyObject(rep);
        }
        redisFree(c);
        if (ok)
            return 0;
        usleep(50000);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    return -1;
}

static void redis_stop(redis_srv_t *r) {
    int status;
    kill(r->pid, SIGTERM);
    waitpid(r->pid, &status, 0);
}

static void test_two_processes_share_one_token_through_redis(void **state) {
    fx_t *fx = *state;
    redis_srv_t srv;
    redisContext *ca, *cb;
    msp_cwrmm_tokens_t *a, *b;
    got_t ga[5], gb[5], late;
    char key[256];
    redisReply *r;

    if (redis_start(&srv) != 0) {
        skip();
        return;
    }
    ca = redisConnect("127.0.0.1", srv.port);
    cb = redisConnect("127.0.0.1", srv.port);
    assert_true(ca && !ca->err && cb && !cb->err);
    a = msp_cwrmm_tokens_new(fx->base, fx->http, &ca, &fx->key, 60000);
    b = msp_cwrmm_tokens_new(fx->base, fx->http, &cb, &fx->key, 60000);
    memset(ga, 0, sizeof(ga));
    memset(gb, 0, sizeof(gb));
    memset(&late, 0, sizeof(late));

    /* both "processes" ask at once: A takes the lock and POSTs, B waits for the stored token */
    fx->delay_ms = 300;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(get(a, fx, &ga[i]), 0);
        assert_int_equal(get(b, fx, &gb[i]), 0);
    }
    assert_int_equal(wait_called(fx, ga, 5, 5, 5000), 5);
    assert_int_equal(wait_called(fx, gb, 5, 5, 5000), 5);
    assert_int_equal(fx->posts, 1);
    assert_int_equal(msp_cwrmm_tokens_requested(a) + msp_cwrmm_tokens_requested(b), 1);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(ga[i].header, "Authorization: Bearer tok-1");
        assert_string_equal(gb[i].header, "Authorization: Bearer tok-1");
    }

    /* stored sealed with a TTL, the lock released */
    assert_true(msp_key(key, sizeof(key), "acme", "token:cwrmm") > 0);
    r = redisCommand(ca, "PTTL %s", key);
    assert_true(r->type == REDIS_REPLY_INTEGER && r->integer > 3500000 && r->integer <= 3599000);
    freeReplyObject(r);
    r = redisCommand(ca, "GET %s", key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_memory_equal(r->str, "v1:", 3);
    assert_null(strstr(r->str, "tok-1"));
    freeReplyObject(r);
    r = redisCommand(ca, "EXISTS %s:lock", key);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);

    /* a rejection in A deletes the shared token; B still holds it in memory, A refreshes */
    msp_cwrmm_token_rejected(a, "acme", &fx->in, ga[0].header);
    r = redisCommand(ca, "EXISTS %s", key);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    fx->delay_ms = 0;
    assert_int_equal(get(a, fx, &late), 0);
    assert_int_equal(wait_called(fx, &late, 1, 1, 2000), 1);
    assert_string_equal(late.header, "Authorization: Bearer tok-2");
    assert_int_equal(fx->posts, 2);

    /* a third "process" with a different secret does not take the stored token */
    {
        msp_cwrmm_tokens_t *c3 = msp_cwrmm_tokens_new(fx->base, fx->http, &cb, &fx->key, 60000);
        got_t g3;
        memset(&g3, 0, sizeof(g3));
        integration(fx, "rotated-secret");
        assert_int_equal(get(c3, fx, &g3), 0);
        assert_int_equal(wait_called(fx, &g3, 1, 1, 2000), 1);
        assert_string_equal(g3.header, "Authorization: Bearer tok-3");
        assert_int_equal(fx->posts, 3);
        msp_cwrmm_tokens_destroy(c3);
    }

    msp_cwrmm_tokens_destroy(a);
    msp_cwrmm_tokens_destroy(b);
    redisFree(ca);
    redisFree(cb);
    redis_stop(&srv);
}

static void test_a_fresh_process_reads_the_stored_token(void **state) {
    fx_t *fx = *state;
    redis_srv_t srv;
    redisContext *c;
    msp_cwrmm_tokens_t *a, *b;
    got_t ga, gb;

    if (redis_start(&srv) != 0) {
        skip();
        return;
    }
    c = redisConnect("127.0.0.1", srv.port);
    assert_true(c && !c->err);
    memset(&ga, 0, sizeof(ga));
    memset(&gb, 0, sizeof(gb));
    a = msp_cwrmm_tokens_new(fx->base, fx->http, &c, &fx->key, 60000);
    assert_int_equal(get(a, fx, &ga), 0);
    assert_int_equal(wait_called(fx, &ga, 1, 1, 2000), 1);
    msp_cwrmm_tokens_destroy(a);

    b = msp_cwrmm_tokens_new(fx->base, fx->http, &c, &fx->key, 60000);
    assert_int_equal(get(b, fx, &gb), 0);
    assert_int_equal(gb.called, 0);
    assert_int_equal(wait_called(fx, &gb, 1, 1, 2000), 1);
    assert_string_equal(gb.header, "Authorization: Bearer tok-1");
    assert_int_equal(fx->posts, 1);
    msp_cwrmm_tokens_destroy(b);
    redisFree(c);
    redis_stop(&srv);
}

static void test_integration_load_opens_the_stored_secret(void **state) {
    fx_t *fx = *state;
    redis_srv_t srv;
    redisContext *c;
    msp_cwrmm_integration_t in;
    msp_secret_key_t other;
    char err[256], key[256], want_account[64], want_bucket[384];
    char *sealed;
    redisReply *r;

    memset(&in, 0, sizeof(in));
    assert_int_equal(msp_cwrmm_integration_load(NULL, &fx->key, "acme", &in, err, sizeof(err)),
                     -1);
    if (redis_start(&srv) != 0) {
        skip();
        return;
    }
    c = redisConnect("127.0.0.1", srv.port);
    assert_true(c && !c->err);
    assert_int_equal(msp_cwrmm_integration_load(c, &fx->key, "acme", &in, err, sizeof(err)), 1);

    assert_true(msp_key(key, sizeof(key), "acme", "integration:cwrmm") > 0);
    sealed = msp_secret_seal(&fx->key, "acme/cwrmm", "s3cret-value", 12);
    r = redisCommand(c, "HSET %s base_url %s client_id %s client_secret_sealed %s "
                        "writeback_purchase 1 writeback_warranty 0",
                     key, "https://openapi.service.itsupport247.net", "client-1", sealed);
    freeReplyObject(r);
    size_t before = msp_log_redact_count();
    assert_int_equal(msp_cwrmm_integration_load(c, &fx->key, "acme", &in, err, sizeof(err)), 0);
    assert_int_equal(msp_log_redact_count(), before + 1);  /* redacted while loaded */
    assert_string_equal(in.base_url, "https://openapi.service.itsupport247.net");
    assert_string_equal(in.client_id, "client-1");
    assert_string_equal(in.client_secret, "s3cret-value");
    msp_cwrmm_account_id(in.base_url, in.client_id, want_account, sizeof(want_account));
    assert_string_equal(in.account, want_account);
    snprintf(want_bucket, sizeof(want_bucket), "mspsync:{cwrmm:%s}:rl", want_account);
    assert_string_equal(in.bucket_key, want_bucket);
    assert_int_equal(in.writeback_purchase, 1);
    assert_int_equal(in.writeback_warranty, 0);

    /* an explicit account id wins */
    r = redisCommand(c, "HSET %s account_id cw:shared", key);
    freeReplyObject(r);
    assert_int_equal(msp_cwrmm_integration_load(c, &fx->key, "acme", &in, err, sizeof(err)), 0);
    assert_int_equal(msp_log_redact_count(), before + 1);  /* loaded again: still one */
    assert_string_equal(in.account, "cw:shared");
    assert_string_equal(in.bucket_key, "mspsync:{cwrmm:cw:shared}:rl");

    /* another MSPSYNC_SECRET_KEY, or sealed for another tenant: cannot be opened */
    memset(&other, 7, sizeof(other));
    assert_int_equal(msp_cwrmm_integration_load(c, &other, "acme", &in, err, sizeof(err)), 2);
    assert_null(in.client_secret);
    assert_non_null(strstr(err, "cannot be decrypted"));
    free(sealed);
    sealed = msp_secret_seal(&fx->key, "other/cwrmm", "s3cret-value", 12);
    r = redisCommand(c, "HSET %s client_secret_sealed %s", key, sealed);
    freeReplyObject(r);
    assert_int_equal(msp_cwrmm_integration_load(c, &fx->key, "acme", &in, err, sizeof(err)), 2);

    /* disabled: no sealed secret */
    r = redisCommand(c, "HDEL %s client_secret_sealed", key);
    freeReplyObject(r);
    assert_int_equal(msp_cwrmm_integration_load(c, &fx->key, "acme", &in, err, sizeof(err)), 1);

    msp_cwrmm_integration_clear(&in);
    msp_cwrmm_integration_clear(NULL);
    assert_int_equal(msp_log_redact_count(), before);      /* cleared: forgotten */
    free(sealed);
    redisFree(c);
    redis_stop(&srv);
}

/* ------------------------------------------------------------------ async mode (aredis.h) */

/* A redis-server's async connection on the fixture's loop (stall_ms: its stall limit). */
static msp_aredis_t *async_redis(fx_t *fx, const redis_srv_t *srv, int stall_ms) {
    char url[64];
    snprintf(url, sizeof(url), "127.0.0.1:%d", srv->port);
    msp_aredis_t *a = msp_aredis_new(fx->base, url, stall_ms);
    assert_non_null(a);
    run_for(fx, 50); /* connected */
    return a;
}

/* Run the loop until EXISTS key (asked on c) answers want, up to 2 s. @returns the last answer. */
static long long wait_exists(fx_t *fx, redisContext *c, const char *key, long long want) {
    long long got = -1;
    for (int i = 0; i < 200; i++) {
        redisReply *r = redisCommand(c, "EXISTS %s", key);
        got = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (r)
            freeReplyObject(r);
        if (got == want)
            break;
        run_for(fx, 10);
    }
    return got;
}

static void test_async_two_processes_share_one_token_through_redis(void **state) {
    fx_t *fx = *state;
    redis_srv_t srv;
    redisContext *c;
    msp_aredis_t *ra, *rb;
    msp_cwrmm_tokens_t *a, *b;
    got_t ga[5], gb[5], late;
    char key[256], lock[300];
    redisReply *r;

    if (redis_start(&srv) != 0) {
        skip();
        return;
    }
    c = redisConnect("127.0.0.1", srv.port); /* the test's own look at Redis */
    assert_true(c && !c->err);
    ra = async_redis(fx, &srv, 0);
    rb = async_redis(fx, &srv, 0);
    a = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);
    b = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);
    msp_cwrmm_tokens_set_async(a, ra);
    msp_cwrmm_tokens_set_async(b, rb);
    memset(ga, 0, sizeof(ga));
    memset(gb, 0, sizeof(gb));
    memset(&late, 0, sizeof(late));

    /* both ask at once: one takes the lock and POSTs, the other polls for the stored token */
    fx->delay_ms = 300;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(get(a, fx, &ga[i]), 0);
        assert_int_equal(get(b, fx, &gb[i]), 0);
    }
    assert_int_equal(called(ga, 5) + called(gb, 5), 0); /* never from inside get */
    assert_int_equal(wait_called(fx, ga, 5, 5, 5000), 5);
    assert_int_equal(wait_called(fx, gb, 5, 5, 5000), 5);
    assert_int_equal(fx->posts, 1);
    assert_int_equal(msp_cwrmm_tokens_requested(a) + msp_cwrmm_tokens_requested(b), 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ga[i].in_get, 0);
        assert_string_equal(ga[i].header, "Authorization: Bearer tok-1");
        assert_string_equal(gb[i].header, "Authorization: Bearer tok-1");
    }

    /* stored sealed with a TTL, the lock released */
    assert_true(msp_key(key, sizeof(key), "acme", "token:cwrmm") > 0);
    snprintf(lock, sizeof(lock), "%s:lock", key);
    assert_int_equal(wait_exists(fx, c, lock, 0), 0);
    r = redisCommand(c, "PTTL %s", key);
    assert_true(r->type == REDIS_REPLY_INTEGER && r->integer > 3500000 && r->integer <= 3599000);
    freeReplyObject(r);
    r = redisCommand(c, "GET %s", key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_memory_equal(r->str, "v1:", 3);
    assert_null(strstr(r->str, "tok-1"));
    freeReplyObject(r);

    /* a rejection in A deletes the shared token (once Redis answered), and A refreshes */
    msp_cwrmm_token_rejected(a, "acme", &fx->in, ga[0].header);
    assert_int_equal(wait_exists(fx, c, key, 0), 0);
    fx->delay_ms = 0;
    assert_int_equal(get(a, fx, &late), 0);
    assert_int_equal(wait_called(fx, &late, 1, 1, 2000), 1);
    assert_string_equal(late.header, "Authorization: Bearer tok-2");
    assert_int_equal(fx->posts, 2);

    msp_cwrmm_tokens_destroy(a);
    msp_cwrmm_tokens_destroy(b);
    msp_aredis_free(ra);
    msp_aredis_free(rb);
    redisFree(c);
    redis_stop(&srv);
}

/* A token stored by a blocking-mode cache is read by an async one, and the other way round. */
static void test_async_and_blocking_caches_share_the_stored_token(void **state) {
    fx_t *fx = *state;
    redis_srv_t srv;
    redisContext *c;
    msp_aredis_t *ra;
    msp_cwrmm_tokens_t *a, *b;
    got_t ga, gb;

    if (redis_start(&srv) != 0) {
        skip();
        return;
    }
    c = redisConnect("127.0.0.1", srv.port);
    assert_true(c && !c->err);
    ra = async_redis(fx, &srv, 0);
    memset(&ga, 0, sizeof(ga));
    memset(&gb, 0, sizeof(gb));
    a = msp_cwrmm_tokens_new(fx->base, fx->http, &c, &fx->key, 60000);
    assert_int_equal(get(a, fx, &ga), 0);
    assert_int_equal(wait_called(fx, &ga, 1, 1, 2000), 1);
    msp_cwrmm_tokens_destroy(a);

    b = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);
    msp_cwrmm_tokens_set_async(b, ra);
    assert_int_equal(get(b, fx, &gb), 0);
    assert_int_equal(gb.called, 0);
    assert_int_equal(wait_called(fx, &gb, 1, 1, 2000), 1);
    assert_string_equal(gb.header, "Authorization: Bearer tok-1");
    assert_int_equal(fx->posts, 1);
    msp_cwrmm_tokens_destroy(b);
    msp_aredis_free(ra);
    redisFree(c);
    redis_stop(&srv);
}

/* Redis stopped (SIGSTOP): get returns at once and the loop goes on; once the connection's stall
 * limit drops the read, the cache POSTs alone and every waiter gets the token. A cache destroyed
 * while its answer is awaited is never called back. */
static void test_async_stopped_redis_never_blocks(void **state) {
    fx_t *fx = *state;
    redis_srv_t srv;
    msp_aredis_t *ra;
    msp_cwrmm_tokens_t *a, *gone;
    got_t g[3], never;
    int64_t t0, took;

    if (redis_start(&srv) != 0) {
        skip();
        return;
    }
    ra = async_redis(fx, &srv, 400);
    a = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);
    gone = msp_cwrmm_tokens_new(fx->base, fx->http, NULL, &fx->key, 60000);
    msp_cwrmm_tokens_set_async(a, ra);
    msp_cwrmm_tokens_set_async(gone, ra);
    memset(g, 0, sizeof(g));
    memset(&never, 0, sizeof(never));
    kill(srv.pid, SIGSTOP);

    t0 = msp_now_ms();
    for (int i = 0; i < 3; i++)
        assert_int_equal(get(a, fx, &g[i]), 0);
    assert_int_equal(msp_cwrmm_token_get(gone, "acme", &fx->in, on_token, &never), 0);
    took = msp_now_ms() - t0;
    assert_true(took < 100);        /* the blocking mode waits out its 5 s timeout here */
    msp_cwrmm_tokens_destroy(gone); /* its GET is still unanswered */
    assert_int_equal(wait_called(fx, g, 3, 3, 5000), 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(g[i].header, "Authorization: Bearer tok-1");
    assert_int_equal(fx->posts, 1);
    assert_int_equal(never.called, 0);

    kill(srv.pid, SIGCONT);
    msp_cwrmm_tokens_destroy(a);
    msp_aredis_free(ra);
    redis_stop(&srv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifty_concurrent_gets_cause_one_post, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_token_is_refreshed_once_when_a_quarter_of_its_life_is_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_the_kept_token_is_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_rejections_cause_one_refresh, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_401_from_the_token_endpoint_reaches_every_waiter,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_endpoint_is_a_transport_failure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_waiter_is_never_called, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_changed_secret_never_reuses_the_old_token, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_destroy_drops_waiters_and_an_inflight_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_callback_may_destroy_the_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_redis_means_memory_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes_share_one_token_through_redis, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_fresh_process_reads_the_stored_token, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_integration_load_opens_the_stored_secret, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_async_two_processes_share_one_token_through_redis,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_and_blocking_caches_share_the_stored_token,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_stopped_redis_never_blocks, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
