/*
 * test_vendor_put.c — a row's PUT part (vendor.h msp_vendor_put_part_t) without the gateway:
 * Syncro's validate (where the account is, the setting, the stored fields) and its proof run
 * through the vendor-call engine over canned answers — every call takes a token of the
 * account's bucket, carries the key and a timeout, and the proof ends with what the gateway
 * answers: proven with the permissions found, 422 for a refused key, 502 for a vendor failure or
 * a bucket that frees only after the deadline. The edges (bucket, HTTP) are the engine's test
 * hooks (msp_vcall_env_t.take, .send, .redis_ok); answers come on the next loop turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <cmocka.h>

#include "mspsync/backoff.h"
#include "mspsync/syncro.h"
#include "mspsync/vcall.h"
#include "mspsync/vendor.h"

typedef struct world_s {
    struct event_base *base;
    msp_vcall_env_t env;
    msp_vendor_put_t put;
    json_t *body;
    long me_status;         /* GET /me answers this (200: a /me body without flags) */
    long probe_status;      /* every probe answers this */
    const char *lacked;     /* the permission whose probe answers 401 */
    int64_t bucket_wait_ms; /* != 0: the bucket refuses with this wait */
    int takes, sent;
    char first_url[256], first_auth[128];
    long min_timeout;
    int done, code;
    json_t *answer;
    char outcome[32];
} world_t;

static world_t *W;

static int fake_take(redisContext *c, const char *key, double rate, int burst, int cost,
                     int64_t *wait_ms, char *errstr, size_t errstr_size) {
    (void)c, (void)rate, (void)burst, (void)cost, (void)errstr, (void)errstr_size;
    assert_non_null(strstr(key, "syncro:"));
    W->takes++;
    *wait_ms = W->bucket_wait_ms;
    return W->bucket_wait_ms ? 0 : 1;
}

static int fake_redis_ok(redisContext **c, const char *url) {
    (void)c, (void)url;
    return 1;
}

typedef struct pending_s {
    msp_http_cb *cb;
    void *opaque;
    long status;
    const char *body;
} pending_t;

static void deliver(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    pending_t *p = arg;
    msp_http_response_t res = {.status = p->status, .retry_after_ms = -1};
    res.body = (char *)p->body;
    res.body_len = strlen(p->body);
    p->cb(&res, p->opaque);
    free(p);
}

/* The permission a probe URL (base + "/" + probe path) checks, or NULL for /me. */
static const char *probed(const char *url) {
    const char *path = strstr(url, "/api/") + strlen("/api/");
    for (const msp_vendor_feature_t *f = msp_vendor_syncro.features; f->feature; f++)
        for (const char *const *perm = f->permissions; *perm; perm++) {
            msp_syncro_probe_t pr;
            if (msp_syncro_probe_for(*perm, &pr) == 0 && !pr.me_area && strcmp(pr.path, path) == 0)
                return *perm;
        }
    return NULL;
}

static int fake_send(msp_http_t *h, const msp_http_request_t *req, msp_http_cb *cb, void *opaque) {
    (void)h;
    if (W->sent++ == 0) {
        snprintf(W->first_url, sizeof(W->first_url), "%s", req->url);
        snprintf(W->first_auth, sizeof(W->first_auth), "%s", req->headers[0]);
    }
    if (!W->min_timeout || req->timeout_ms < W->min_timeout)
        W->min_timeout = req->timeout_ms;
    pending_t *p = calloc(1, sizeof(*p));
    p->cb = cb;
    p->opaque = opaque;
    const char *perm = probed(req->url);
    if (!perm) {
        p->status = W->me_status;
        p->body = W->me_status == 200 ? "{\"permissions\":{}}" : "{\"error\":\"bad key\"}";
    } else {
        p->status = W->lacked && strcmp(perm, W->lacked) == 0 ? 401 : W->probe_status;
        p->body = "{}";
    }
    struct timeval now = {0, 0};
    event_base_once(W->base, -1, EV_TIMEOUT, deliver, p, &now);
    return 0;
}

static void answered(msp_vendor_put_t *p, const char *outcome) {
    (void)p;
    snprintf(W->outcome, sizeof(W->outcome), "%s", outcome);
}

static void done(msp_vendor_put_t *p, int code, json_t *body) {
    (void)p;
    W->done++;
    W->code = code;
    W->answer = body;
}

static int setup(void **state) {
    W = calloc(1, sizeof(*W));
    W->base = event_base_new();
    static msp_http_t *no_http;
    static redisContext *no_redis;
    static const int stopping = 0;
    W->env = (msp_vcall_env_t){.base = W->base,
                               .http = &no_http,
                               .redis = &no_redis,
                               .backoff_base_ms = 10,
                               .backoff_cap_ms = 10,
                               .stopping = &stopping,
                               .take = fake_take,
                               .send = fake_send,
                               .redis_ok = fake_redis_ok};
    W->me_status = 200;
    W->probe_status = 404; /* a probe on an id that does not exist: the permission is held */
    W->body = json_pack("{s:s,s:s}", "subdomain", "Acme", "api_key", "T0pSecret");
    W->put = (msp_vendor_put_t){.vendor = &msp_vendor_syncro,
                                .tenant = "t1",
                                .setting = "http://127.0.0.1:9/{subdomain}/api",
                                .writeback_purchase = -1,
                                .writeback_warranty = -1,
                                .env = &W->env,
                                .rate = 3,
                                .burst = 3,
                                .answered = answered,
                                .done = done};
    *state = W;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    msp_vendor_syncro.put->free(&W->put);
    json_decref(W->body);
    json_decref(W->answer);
    event_base_free(W->base);
    free(W);
    return 0;
}

/* The first permission of the row that only a probe can tell. */
static const char *first_probed(void) {
    for (const msp_vendor_feature_t *f = msp_vendor_syncro.features; f->feature; f++)
        for (const char *const *perm = f->permissions; *perm; perm++) {
            msp_syncro_probe_t pr;
            if (msp_syncro_probe_for(*perm, &pr) == 0 && !pr.me_area)
                return *perm;
        }
    return NULL;
}

static void prove(int64_t deadline_in_ms) {
    char err[300];
    assert_int_equal(msp_vendor_syncro.put->validate(&W->put, W->body, err, sizeof(err)), 0);
    W->put.deadline_ms = msp_now_ms() + deadline_in_ms;
    msp_vendor_syncro.put->prove(&W->put);
    event_base_dispatch(W->base);
    assert_int_equal(W->done, 1);
}

static void validate_places_the_account_by_the_setting(void **state) {
    (void)state;
    char err[300];
    assert_int_equal(msp_vendor_syncro.put->validate(&W->put, W->body, err, sizeof(err)), 0);
    assert_string_equal(W->put.base_url, "http://127.0.0.1:9/acme/api");
    assert_string_equal(W->put.secret, "T0pSecret");
    assert_string_equal(W->put.stored[0], "base_url");
    assert_string_equal(W->put.stored[1], W->put.base_url);
    assert_string_equal(W->put.stored[2], "account_id");
    assert_string_equal(W->put.stored[3], W->put.account_id);
    assert_null(W->put.stored[4]);
    msp_vendor_syncro.put->free(&W->put);
    assert_null(W->put.impl);
    json_object_set_new(W->body, "subdomain", json_string("not a subdomain!"));
    assert_int_equal(msp_vendor_syncro.put->validate(&W->put, W->body, err, sizeof(err)), -1);
    assert_true(err[0]);
}

static void the_proof_asks_me_then_probes_through_the_engine(void **state) {
    (void)state;
    W->lacked = first_probed();
    assert_non_null(W->lacked);
    prove(15000);
    assert_int_equal(W->code, 0);
    assert_string_equal(W->first_url, "http://127.0.0.1:9/acme/api/me");
    assert_non_null(strstr(W->first_auth, "T0pSecret"));
    assert_true(W->sent > 1);
    assert_int_equal(W->takes, W->sent); /* every call took a token of the account's bucket */
    assert_true(W->min_timeout >= 1000 && W->min_timeout <= 15000);
    assert_true(W->outcome[0]); /* the metric saw the answers */
    assert_false(msp_vendor_list_has(W->put.granted, W->lacked));
    /* /me granted no flag: what is granted is what the probes found */
    for (const char *p = W->put.granted; *p;) {
        char perm[128];
        size_t n = strcspn(p, ",");
        snprintf(perm, sizeof(perm), "%.*s", (int)n, p);
        msp_syncro_probe_t pr;
        assert_int_equal(msp_syncro_probe_for(perm, &pr), 0);
        assert_null(pr.me_area);
        p += n + (p[n] == ',');
    }
    assert_true(W->put.granted[0]);
}

static void a_refused_key_is_422_with_the_vendor_status(void **state) {
    (void)state;
    W->me_status = 401;
    prove(15000);
    assert_int_equal(W->code, 422);
    assert_int_equal(W->sent, 1);
    assert_int_equal(json_integer_value(json_object_get(W->answer, "vendor_status")), 401);
    assert_non_null(strstr(json_string_value(json_object_get(W->answer, "error")), "GET /me"));
}

static void a_vendor_failure_is_502_and_not_retried(void **state) {
    (void)state;
    W->probe_status = 503;
    prove(15000);
    assert_int_equal(W->code, 502);
    assert_int_equal(W->sent, 2); /* /me, then the first probe: no second try */
    assert_null(json_object_get(W->answer, "vendor_status"));
}

static void a_bucket_past_the_deadline_is_502_rate_limited(void **state) {
    (void)state;
    W->bucket_wait_ms = 4200;
    prove(1000);
    assert_int_equal(W->code, 502);
    assert_int_equal(W->sent, 0);
    assert_string_equal(
        json_string_value(json_object_get(W->answer, "error")),
        "the Syncro API rate limit for this account is exhausted; try again in 5 s");
    assert_string_equal(W->outcome, "rate_limited");
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(validate_places_the_account_by_the_setting),
        T(the_proof_asks_me_then_probes_through_the_engine),
        T(a_refused_key_is_422_with_the_vendor_status),
        T(a_vendor_failure_is_502_and_not_retried),
        T(a_bucket_past_the_deadline_is_502_rate_limited),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
