/*
 * test_vcall.c — the vendor-call engine: how an answer is judged, and the path of a call through
 * retries, Retry-After, one re-authentication and the dead letter.
 *
 * The engine runs for real on a libevent loop; only its edges are replaced: the bucket always
 * gives a token (or says wait once), "HTTP" answers from a script on the next loop turn (never
 * from inside the send, as http.h promises), and the token source hands out numbered tokens the
 * same way. Backoff is 10..40 ms so a case takes milliseconds.
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

#define MAX_SCRIPT 32

typedef struct answer_s {
    long status;
    const char *body;
    int64_t retry_after_ms;
} answer_t;

/* One test's world: the script, what the owner was told, what the edges saw. */
typedef struct world_s {
    struct event_base *base;
    msp_vcall_env_t env;
    msp_vcall_t vc;
    answer_t script[MAX_SCRIPT];
    int nscript, sent;
    char sent_auth[MAX_SCRIPT][64];
    char sent_url[256];
    int no_refresh;      /* the token source cannot refresh */
    int takes_to_refuse; /* the bucket says "wait 5 ms" this often */
    int redis_down;      /* Redis cannot be reached this often */
    long sent_timeout;   /* the last request's timeout_ms */
    int token_gets, token_rejects;
    long token_status; /* != 0: the token endpoint refuses */
    int oks, fails, gave_up, abandoned, retry_from_runs, stop_after_send;
    char fail_why[1024];
    msp_vcall_failure_t fail_kind;
    int64_t delays[MAX_SCRIPT];
    int ndelays;
    int async_takes, async_unconnected, async_hold, answered_inside;
    int in_take;
    msp_gcra_async_t *held; /* a take whose answer the test delivers (async_hold) */
} world_t;

static world_t *W;

/* ---------------------------------------------------------------- edges */

static int fake_take(redisContext *c, const char *key, double rate, int burst, int cost,
                     int64_t *wait_ms, char *errstr, size_t errstr_size) {
    (void)c, (void)key, (void)rate, (void)burst, (void)cost, (void)errstr, (void)errstr_size;
    if (W->takes_to_refuse > 0) {
        W->takes_to_refuse--;
        *wait_ms = 5;
        return 0;
    }
    return 1;
}

/* The async take answers on the loop, never inside the call; a cancelled one not at all. */
static void take_answer(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    msp_gcra_async_t *t = arg;
    if (!t->cb)
        return; /* msp_gcra_cancel came first */
    int refuse = W->takes_to_refuse > 0;
    if (refuse)
        W->takes_to_refuse--;
    t->cb(t->arg, refuse ? 0 : 1, refuse ? 5 : 0, NULL);
}

static int fake_take_async(msp_aredis_t *a, msp_gcra_async_t *t, const char *key, double rate,
                           int burst, int cost, msp_gcra_cb *cb, void *arg, char *err,
                           size_t err_size) {
    (void)a, (void)key, (void)rate, (void)burst, (void)cost;
    W->async_takes++;
    if (W->async_unconnected > 0) {
        W->async_unconnected--;
        snprintf(err, err_size, "not connected");
        return -2;
    }
    t->a = NULL;
    t->cb = cb;
    t->arg = arg;
    if (W->async_hold) {
        W->held = t;
        return 0;
    }
    struct timeval now = {0, 0};
    event_base_once(W->base, -1, EV_TIMEOUT, take_answer, t, &now);
    return 0;
}

static void use_async_redis(void) {
    static char dummy;
    W->env.aredis = (msp_aredis_t *)&dummy; /* only the fake take sees it */
    W->env.take_async = fake_take_async;
    W->env.take = NULL; /* a blocking take now would crash the test */
}

static int fake_redis_ok(redisContext **c, const char *url) {
    (void)c, (void)url;
    if (W->redis_down > 0) {
        W->redis_down--;
        return 0;
    }
    return 1;
}

typedef struct pending_s {
    msp_http_cb *cb;
    void *opaque;
    answer_t a;
} pending_t;

static void deliver(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    pending_t *p = arg;
    msp_http_response_t res = {.status = p->a.status, .retry_after_ms = p->a.retry_after_ms};
    res.body = (char *)(p->a.body ? p->a.body : "");
    res.body_len = strlen(res.body);
    if (p->a.status == 0)
        snprintf(res.errstr, sizeof(res.errstr), "Connection refused");
    if (W->stop_after_send)
        W->stop_after_send = 2;
    p->cb(&res, p->opaque);
    free(p);
}

static int fake_send(msp_http_t *h, const msp_http_request_t *req, msp_http_cb *cb, void *opaque) {
    (void)h;
    assert_true(W->sent < W->nscript);
    snprintf(W->sent_auth[W->sent], sizeof(W->sent_auth[0]), "%s",
             req->headers[0] ? req->headers[0] : "");
    snprintf(W->sent_url, sizeof(W->sent_url), "%s", req->url);
    W->sent_timeout = req->timeout_ms;
    pending_t *p = calloc(1, sizeof(*p));
    p->cb = cb;
    p->opaque = opaque;
    p->a = W->script[W->sent++];
    struct timeval now = {0, 0};
    event_base_once(W->base, -1, EV_TIMEOUT, deliver, p, &now);
    return 0;
}

static void token_answer(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    char header[64];
    snprintf(header, sizeof(header), "Authorization: Bearer t%d", W->token_gets);
    if (W->token_status)
        msp_vcall_authed(arg, NULL, W->token_status, -1, "Invalid client secret");
    else
        msp_vcall_authed(arg, header, 200, -1, NULL);
}

static int fake_token_get(void *ctx, msp_vcall_t *c, char *header, size_t header_size) {
    (void)ctx, (void)header, (void)header_size;
    W->token_gets++;
    struct timeval now = {0, 0};
    return event_base_once(W->base, -1, EV_TIMEOUT, token_answer, c, &now) == 0 ? 1 : -1;
}

static int fake_token_rejected(void *ctx, msp_vcall_t *c, const char *auth_header) {
    (void)ctx, (void)c;
    assert_non_null(strstr(auth_header, "Bearer t"));
    W->token_rejects++;
    return !W->no_refresh;
}

static const msp_vcall_auth_t fake_tokens = {fake_token_get, fake_token_rejected, NULL};

/* ---------------------------------------------------------------- owner */

static void own_fail(void *owner, msp_vcall_failure_t kind, const char *why) {
    (void)owner;
    W->fail_kind = kind;
    W->fails++;
    snprintf(W->fail_why, sizeof(W->fail_why), "%s", why);
}

static void own_retrying(void *owner, unsigned attempt, int64_t delay_ms, const char *why) {
    (void)owner, (void)why;
    assert_int_equal(attempt, (unsigned)W->ndelays + 1);
    W->delays[W->ndelays++] = delay_ms;
}

static void own_gave_up(void *owner, unsigned attempts, const char *why) {
    (void)owner;
    W->gave_up = (int)attempts;
    snprintf(W->fail_why, sizeof(W->fail_why), "%s", why);
}

static int own_gone(void *owner) {
    (void)owner;
    return W->stop_after_send == 2;
}

static void own_abandon(void *owner) {
    (void)owner;
    W->abandoned++;
}

static const msp_vcall_ops_t owner_ops = {
    .fail = own_fail,
    .retrying = own_retrying,
    .gave_up = own_gave_up,
    .gone = own_gone,
    .abandon = own_abandon,
};

static void ok_any(void *owner, msp_http_response_t *res, json_t *body) {
    (void)owner, (void)res;
    assert_null(body);
    W->oks++;
}

static void ok_object(void *owner, msp_http_response_t *res, json_t *body) {
    (void)owner, (void)res;
    assert_true(json_is_object(body));
    W->oks++;
}

static int gone_on_404(void *owner, const msp_http_response_t *res) {
    (void)owner;
    return res->status == 404;
}

/* ---------------------------------------------------------------- world */

static int setup(void **state) {
    W = calloc(1, sizeof(*W));
    W->base = event_base_new();
    W->env = (msp_vcall_env_t){.base = W->base,
                               .backoff_base_ms = 20,
                               .backoff_cap_ms = 40,
                               .take = fake_take,
                               .send = fake_send,
                               .redis_ok = fake_redis_ok};
    static msp_http_t *no_http;
    static redisContext *no_redis;
    W->env.http = &no_http;
    W->env.redis = &no_redis;
    msp_vcall_init(&W->vc, &W->env, &owner_ops, W, NULL);
    msp_vcall_account_t syncro = {.base_url = "https://acme.syncromsp.test/api/v1",
                                  .bucket_key = "b",
                                  .rate = 3,
                                  .burst = 1,
                                  .auth_header = "Authorization: key",
                                  .describe = msp_syncro_describe};
    msp_vcall_account(&W->vc, &syncro);
    *state = W;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    msp_vcall_clear(&W->vc);
    event_base_free(W->base);
    free(W);
    return 0;
}

static void use_tokens(void) {
    msp_vcall_account_t cw = W->vc.acct;
    cw.auth_header = NULL;
    cw.auth = &fake_tokens;
    msp_vcall_account(&W->vc, &cw);
}

static void script(int n, const answer_t *a) {
    memcpy(W->script, a, (size_t)n * sizeof(*a));
    W->nscript = n;
}

static void run(const char *method, const msp_vcall_step_t *step) {
    msp_vcall_call(&W->vc, method, strdup("/tickets"), NULL, step);
    event_base_dispatch(W->base);
}

/* ---------------------------------------------------------------- judge */

static msp_vcall_action_t judge(long status) {
    msp_http_response_t res = {.status = status, .retry_after_ms = -1};
    return msp_vcall_judge(&W->vc, &res, msp_http_classify(&res));
}

static void answers_are_classified_ok_retry_or_fail(void **state) {
    (void)state;
    assert_int_equal(judge(200), MSP_VCALL_DONE);
    assert_int_equal(judge(204), MSP_VCALL_DONE);
    long retry[] = {0, 408, 423, 425, 429, 500, 502, 503, 504};
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
        assert_int_equal(judge(retry[i]), MSP_VCALL_RETRY);
    long fail[] = {400, 401, 403, 404, 409, 422};
    for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++)
        assert_int_equal(judge(fail[i]), MSP_VCALL_FAIL);
}

static void a_401_reauthenticates_only_with_a_token_source_and_only_once(void **state) {
    (void)state;
    assert_int_equal(judge(401), MSP_VCALL_FAIL); /* an API key cannot be refreshed */
    use_tokens();
    assert_int_equal(judge(401), MSP_VCALL_REAUTH);
    assert_int_equal(judge(403), MSP_VCALL_FAIL); /* a permission, not a token */
    W->vc.reauthed = 1;
    assert_int_equal(judge(401), MSP_VCALL_FAIL);
}

/* ---------------------------------------------------------- the state machine */

static void a_2xx_goes_to_ok_with_the_body_it_expects(void **state) {
    (void)state;
    script(1, (answer_t[]){{200, "{\"ticket\":{\"id\":1}}", -1}});
    run("POST", &(msp_vcall_step_t){.ok = ok_object, .expect = MSP_VCALL_BODY_OBJECT});
    assert_int_equal(W->oks, 1);
    assert_int_equal(W->fails + W->ndelays, 0);
    assert_string_equal(W->sent_auth[0], "Authorization: key");
}

static void retry_after_wins_over_the_backoff(void **state) {
    (void)state;
    script(3, (answer_t[]){{429, "", 70}, {503, "", -1}, {200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->oks, 1);
    assert_int_equal(W->sent, 3);
    assert_int_equal(W->ndelays, 2);
    assert_int_equal(W->delays[0], 70); /* the vendor's 70 ms, above the 40 ms cap */
    assert_in_range(W->delays[1], 10, 40);
}

static void backoff_stays_between_half_the_base_and_the_cap(void **state) {
    (void)state;
    for (unsigned a = 0; a < 70; a++) {
        assert_in_range(msp_vcall_delay_ms(&W->env, a, -1, 0.0), 10, 40);
        assert_in_range(msp_vcall_delay_ms(&W->env, a, -1, 0.999999), 10, 40);
    }
    assert_int_equal(msp_vcall_delay_ms(&W->env, 0, -1, 0.999999), 19);
    assert_int_equal(msp_vcall_delay_ms(&W->env, 5, -1, 0.999999), 39);
    assert_int_equal(msp_vcall_delay_ms(&W->env, 5, 5, 0.0), 10); /* a shorter Retry-After */
    answer_t a[12];
    for (int i = 0; i < 11; i++)
        a[i] = (answer_t){503, "", -1};
    a[11] = (answer_t){200, "", -1};
    script(12, a);
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->oks, 1);
    assert_int_equal(W->ndelays, 11);
    for (int i = 0; i < 11; i++)
        assert_in_range(W->delays[i], 10, 40);
}

static void after_max_attempts_the_owner_gives_up(void **state) {
    (void)state;
    W->vc.max_attempts = 3;
    script(3, (answer_t[]){{503, "", -1}, {503, "", -1}, {503, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent, 3);
    assert_int_equal(W->ndelays, 2);
    assert_int_equal(W->gave_up, 3);
    assert_int_equal(W->oks + W->fails, 0);
    assert_non_null(strstr(W->fail_why, "answered 503"));
}

static void one_reauth_on_401_then_the_second_401_dead_letters(void **state) {
    (void)state;
    use_tokens();
    script(2, (answer_t[]){{401, "", -1}, {401, "{\"error\":\"token revoked\"}", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent, 2);
    assert_int_equal(W->token_gets, 2);
    assert_int_equal(W->token_rejects, 1);
    assert_string_equal(W->sent_auth[0], "Authorization: Bearer t1");
    assert_string_equal(W->sent_auth[1], "Authorization: Bearer t2");
    assert_int_equal(W->fails, 1);
    assert_int_equal(W->fail_kind, MSP_VCALL_FAIL_FORBIDDEN);
    assert_non_null(strstr(W->fail_why, "answered 401"));
    assert_int_equal(W->ndelays, 0); /* a re-auth is not a backoff */
}

static void a_2xx_between_two_401s_allows_a_second_reauth(void **state) {
    (void)state;
    use_tokens();
    script(2, (answer_t[]){{401, "", -1}, {200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->oks, 1);
    script(2, (answer_t[]){{401, "", -1}, {200, "", -1}});
    W->sent = 0;
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->oks, 2);
    assert_int_equal(W->token_rejects, 2);
    assert_int_equal(W->fails, 0);
}

static void a_refused_token_fails_with_the_token_endpoints_words(void **state) {
    (void)state;
    use_tokens();
    W->token_status = 401;
    script(1, (answer_t[]){{200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent, 0);
    assert_int_equal(W->fails, 1);
    assert_int_equal(W->fail_kind, MSP_VCALL_FAIL_AUTH);
    assert_string_equal(W->fail_why, "Invalid client secret");
}

static void the_dead_letter_carries_the_vendors_message(void **state) {
    (void)state;
    script(1, (answer_t[]){{422, "{\"message\":\"Problem type is invalid\"}", -1}});
    run("POST", &(msp_vcall_step_t){.ok = ok_object, .expect = MSP_VCALL_BODY_OBJECT});
    assert_int_equal(W->fails, 1);
    assert_int_equal(W->fail_kind, MSP_VCALL_FAIL_REFUSED);
    assert_int_equal(W->oks, 0);
    assert_string_equal(W->fail_why, "Syncro POST /tickets answered 422: Problem type is invalid");
}

static void the_calls_fail_handler_may_take_a_4xx_over(void **state) {
    (void)state;
    script(1, (answer_t[]){{404, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any, .fail = gone_on_404});
    assert_int_equal(W->fails + W->oks, 0);
    script(1, (answer_t[]){{403, "", -1}});
    W->sent = 0;
    run("GET", &(msp_vcall_step_t){.ok = ok_any, .fail = gone_on_404});
    assert_int_equal(W->fails, 1);
}

static void an_unreadable_2xx_is_retried(void **state) {
    (void)state;
    script(2, (answer_t[]){{200, "<html>proxy</html>", -1}, {200, "{}", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_object, .expect = MSP_VCALL_BODY_OBJECT});
    assert_int_equal(W->ndelays, 1);
    assert_int_equal(W->oks, 1);
}

static void from_step(void *owner) {
    (void)owner;
    W->retry_from_runs++;
}

static void a_retry_starts_at_the_step_the_call_names(void **state) {
    (void)state;
    script(1, (answer_t[]){{0, "", -1}});
    run("PUT", &(msp_vcall_step_t){.ok = ok_any, .retry_from = from_step});
    assert_int_equal(W->sent, 1); /* the PUT is not resent as such */
    assert_int_equal(W->retry_from_runs, 1);
}

static void the_bucket_is_waited_for_before_sending(void **state) {
    (void)state;
    W->takes_to_refuse = 2;
    script(1, (answer_t[]){{200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->takes_to_refuse, 0);
    assert_int_equal(W->oks, 1);
    assert_int_equal(W->ndelays, 0); /* a rate-limit wait is no retry */
}

static void work_gone_during_the_call_is_abandoned(void **state) {
    (void)state;
    W->stop_after_send = 1;
    script(1, (answer_t[]){{200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->abandoned, 1);
    assert_int_equal(W->oks + W->fails, 0);
}

static msp_http_outcome_t a_404_is_the_end(void *owner, const msp_http_response_t *res) {
    (void)owner;
    return res->status == 404 ? MSP_HTTP_OK : msp_http_classify(res);
}

static void a_call_to_a_whole_url_keeps_its_own_classification(void **state) {
    (void)state;
    script(1, (answer_t[]){{404, "", -1}});
    msp_vcall_step_t step = {.classify = a_404_is_the_end, .ok = ok_any};
    msp_vcall_call_url(&W->vc, "GET", strdup("https://rmm.test/api/devices?cursor=abc"),
                       "/api/devices", NULL, &step);
    event_base_dispatch(W->base);
    assert_string_equal(W->sent_url, "https://rmm.test/api/devices?cursor=abc");
    assert_int_equal(W->oks, 1);
    assert_int_equal(W->fails, 0);
}

static void a_401_is_final_when_the_token_source_cannot_refresh(void **state) {
    (void)state;
    use_tokens();
    W->no_refresh = 1;
    script(1, (answer_t[]){{401, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent, 1);
    assert_int_equal(W->token_rejects, 1);
    assert_int_equal(W->fails, 1);
    assert_int_equal(W->fail_kind, MSP_VCALL_FAIL_FORBIDDEN);
}

static void a_one_shot_check_refuses_only_the_4xx_retrying_cannot_help(void **state) {
    (void)state;
    long refused[] = {400, 401, 403, 404, 409, 422};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        assert_true(msp_vcall_refused(refused[i]));
    long not_refused[] = {0, 200, 302, 408, 423, 425, 429, 500, 503};
    for (size_t i = 0; i < sizeof(not_refused) / sizeof(not_refused[0]); i++)
        assert_false(msp_vcall_refused(not_refused[i]));
}

static void the_async_bucket_is_waited_for_without_blocking(void **state) {
    (void)state;
    use_async_redis();
    W->takes_to_refuse = 2;
    script(1, (answer_t[]){{200, "", -1}});
    msp_vcall_call(&W->vc, "GET", strdup("/tickets"), NULL, &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent, 0); /* nothing sent before the bucket answered */
    assert_int_equal(W->async_takes, 1);
    event_base_dispatch(W->base);
    assert_int_equal(W->async_takes, 3);
    assert_int_equal(W->takes_to_refuse, 0);
    assert_int_equal(W->oks, 1);
    assert_int_equal(W->ndelays, 0);
}

static void an_unconnected_async_redis_is_waited_for(void **state) {
    (void)state;
    use_async_redis();
    W->async_unconnected = 1;
    script(1, (answer_t[]){{200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->async_takes, 2);
    assert_int_equal(W->oks, 1);
}

static void a_call_stopped_while_its_token_is_taken_hears_nothing(void **state) {
    (void)state;
    use_async_redis();
    W->async_hold = 1;
    script(1, (answer_t[]){{200, "", -1}});
    msp_vcall_call(&W->vc, "GET", strdup("/tickets"), NULL, &(msp_vcall_step_t){.ok = ok_any});
    assert_non_null(W->held);
    assert_int_equal(W->vc.take_inflight, 1);
    msp_vcall_stop(&W->vc);
    assert_int_equal(W->vc.take_inflight, 0);
    struct timeval now = {0, 0};
    event_base_once(W->base, -1, EV_TIMEOUT, take_answer, W->held, &now);
    event_base_dispatch(W->base);
    assert_int_equal(W->sent, 0);
    assert_int_equal(W->oks + W->fails + W->abandoned, 0);
}

/* ---------------------------------------------------- a one-shot check's options */

static void a_deadline_fails_a_bucket_wait_that_would_end_after_it(void **state) {
    (void)state;
    W->vc.opts.deadline_ms = msp_now_ms() + 2; /* the bucket frees in 5 ms */
    W->takes_to_refuse = 1;
    script(1, (answer_t[]){{200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent, 0);
    assert_int_equal(W->fails, 1);
    assert_int_equal(W->fail_kind, MSP_VCALL_FAIL_THROTTLED);
    assert_int_equal(W->vc.wait_ms, 5);
    /* a wait that ends in time is waited out */
    W->fails = 0;
    W->vc.opts.deadline_ms = msp_now_ms() + 5000;
    W->takes_to_refuse = 1;
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent, 1);
    assert_int_equal(W->oks, 1);
    assert_int_equal(W->fails, 0);
}

static void a_deadline_fails_at_once_when_redis_is_down(void **state) {
    (void)state;
    W->vc.opts.deadline_ms = msp_now_ms() + 5000;
    W->redis_down = 1;
    script(1, (answer_t[]){{200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent, 0);
    assert_int_equal(W->fails, 1);
    assert_int_equal(W->fail_kind, MSP_VCALL_FAIL_UNAVAILABLE);
    assert_non_null(strstr(W->fail_why, "redis unavailable"));
}

static void a_call_timeout_is_the_time_left_but_at_least_the_minimum(void **state) {
    (void)state;
    W->vc.opts.timeout_ms = 1000;
    script(2, (answer_t[]){{200, "", -1}, {200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent_timeout, 1000); /* no deadline: the minimum */
    W->vc.opts.deadline_ms = msp_now_ms() + 5000;
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_true(W->sent_timeout > 1000 && W->sent_timeout <= 5000);
    assert_int_equal(W->oks, 2);
}

static void a_failed_token_fetch_is_handed_back_not_retried(void **state) {
    (void)state;
    use_tokens();
    W->vc.opts.token_final = 1;
    W->vc.max_attempts = 3;
    W->token_status = 503; /* retryable for a worker */
    script(1, (answer_t[]){{200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->token_gets, 1);
    assert_int_equal(W->ndelays, 0);
    assert_int_equal(W->fails, 1);
    assert_int_equal(W->fail_kind, MSP_VCALL_FAIL_AUTH);
    assert_int_equal(W->vc.status, 503);
    assert_string_equal(W->fail_why, "Invalid client secret");
}

static void without_reauth_a_401_is_final_and_the_token_forgotten(void **state) {
    (void)state;
    use_tokens();
    W->vc.opts.no_reauth = 1;
    script(2, (answer_t[]){{401, "", -1}, {200, "", -1}});
    run("GET", &(msp_vcall_step_t){.ok = ok_any});
    assert_int_equal(W->sent, 1);
    assert_int_equal(W->token_gets, 1);
    assert_int_equal(W->token_rejects, 1);
    assert_int_equal(W->oks, 0);
    assert_int_equal(W->fails, 1);
    assert_int_equal(W->fail_kind, MSP_VCALL_FAIL_FORBIDDEN);
    assert_int_equal(W->vc.status, 401);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(answers_are_classified_ok_retry_or_fail),
        T(a_401_reauthenticates_only_with_a_token_source_and_only_once),
        T(a_2xx_goes_to_ok_with_the_body_it_expects),
        T(retry_after_wins_over_the_backoff),
        T(backoff_stays_between_half_the_base_and_the_cap),
        T(after_max_attempts_the_owner_gives_up),
        T(one_reauth_on_401_then_the_second_401_dead_letters),
        T(a_2xx_between_two_401s_allows_a_second_reauth),
        T(a_refused_token_fails_with_the_token_endpoints_words),
        T(the_dead_letter_carries_the_vendors_message),
        T(the_calls_fail_handler_may_take_a_4xx_over),
        T(an_unreadable_2xx_is_retried),
        T(a_retry_starts_at_the_step_the_call_names),
        T(the_bucket_is_waited_for_before_sending),
        T(work_gone_during_the_call_is_abandoned),
        T(a_call_to_a_whole_url_keeps_its_own_classification),
        T(a_401_is_final_when_the_token_source_cannot_refresh),
        T(a_one_shot_check_refuses_only_the_4xx_retrying_cannot_help),
        T(the_async_bucket_is_waited_for_without_blocking),
        T(an_unconnected_async_redis_is_waited_for),
        T(a_call_stopped_while_its_token_is_taken_hears_nothing),
        T(a_deadline_fails_a_bucket_wait_that_would_end_after_it),
        T(a_deadline_fails_at_once_when_redis_is_down),
        T(a_call_timeout_is_the_time_left_but_at_least_the_minimum),
        T(a_failed_token_fetch_is_handed_back_not_retried),
        T(without_reauth_a_401_is_final_and_the_token_forgotten),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
