/*
 * test_redis.c — common/src/redis.c against a real Redis.
 *
 * MSPSYNC_TEST_REDIS=host:port points the test at a running server (every key it writes is
 * under a tenant unique to this run and is deleted at the end). Unset, the test starts its own
 * `redis-server` (MSPSYNC_REDIS_SERVER overrides the binary) on a free loopback port and stops
 * it afterwards. Exit code 77 (ctest: skipped) when no server can be had.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redis_server.h"
#include "mspsync/aredis.h"
#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/cwrmm.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"
#include "mspsync/vendor.h"

#include <event2/event.h>

static test_redis_t g_srv = {.pid = -1}; /* its url: MSPSYNC_TEST_REDIS, or our own server */
static char g_tenant[64];
static redisContext *g_c;

/* ---------------------------------------------------------------------------------------------
 * Server and helpers
 * ------------------------------------------------------------------------------------------- */

static void key(char *buf, size_t size, const char *rest) {
    assert_true(msp_key(buf, size, g_tenant, "%s", rest) > 0);
}

static void del(redisContext *c, const char *k) {
    redisReply *r = redisCommand(c, "DEL %s", k);
    assert_non_null(r);
    freeReplyObject(r);
}

static long long pttl(redisContext *c, const char *k) {
    redisReply *r = redisCommand(c, "PTTL %s", k);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static int64_t redis_now_us(redisContext *c) {
    redisReply *r = redisCommand(c, "TIME");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    int64_t us = atoll(r->element[0]->str) * 1000000 + atoll(r->element[1]->str);
    freeReplyObject(r);
    return us;
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------- */

static void keys_carry_the_tenant_hash_tag(void **state) {
    (void)state;
    char buf[128];
    int n = msp_key(buf, sizeof(buf), "acme", "cursor:syncro:%s", "4f1c");
    assert_string_equal(buf, "mspsync:{acme}:cursor:syncro:4f1c");
    assert_int_equal(n, (int)strlen(buf));
    assert_int_equal(msp_key(buf, sizeof(buf), "syncro:12345", "rl"), 25);
    assert_string_equal(buf, "mspsync:{syncro:12345}:rl");
    char small[20];
    assert_int_equal(msp_key(small, sizeof(small), "acme", "inv:asset:%d", 123456789), -1);
    assert_int_equal(msp_key(small, sizeof(small), "a-very-long-tenant-id", "x"), -1);
    /* exactly fitting */
    char exact[18]; /* "mspsync:{acme}:ab" is 17 characters + NUL */
    assert_int_equal(msp_key(exact, sizeof(exact), "acme", "ab"), 17);
    assert_int_equal(msp_key(exact, sizeof(exact) - 1, "acme", "ab"), -1);
}

static void connect_accepts_url_forms_and_selects_the_database(void **state) {
    (void)state;
    char url[300], err[256], k[128];
    key(k, sizeof(k), "dbtest");
    snprintf(url, sizeof(url), "redis://%s/3", g_srv.url);
    redisContext *c3 = msp_redis_connect(url, err, sizeof(err));
    if (!c3) fail_msg("%s: %s", url, err);
    redisReply *r = redisCommand(c3, "SET %s in-db-3", k);
    freeReplyObject(r);
    int e = 0;
    char *v = msp_redis_get(g_c, k, &e);     /* db 0 */
    assert_int_equal(e, 0);
    assert_null(v);
    v = msp_redis_get(c3, k, &e);
    assert_string_equal(v, "in-db-3");
    free(v);
    del(c3, k);
    redisFree(c3);

    snprintf(url, sizeof(url), "redis://%s", g_srv.url);
    redisContext *c = msp_redis_connect(url, err, sizeof(err));
    assert_non_null(c);
    redisFree(c);

    static const char *const bad[] = {"", "http://localhost:6379", "localhost:notaport",
                                      "localhost:70000", "redis://:6379", "redis://h:1/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        c = msp_redis_connect(bad[i], err, sizeof(err));
        if (c) fail_msg("accepted \"%s\"", bad[i]);
        assert_true(strlen(err) > 0);
    }
    /* nothing listens: an error, within the 2 s connect timeout */
    snprintf(url, sizeof(url), "127.0.0.1:%d", test_free_port());
    int64_t t0 = test_mono_us();
    assert_null(msp_redis_connect(url, err, sizeof(err)));
    assert_true(test_mono_us() - t0 < 3000000);
}

static void ensure_replaces_a_broken_context(void **state) {
    (void)state;
    char err[256];
    redisContext *c = NULL;
    assert_int_equal(msp_redis_ensure(&c, g_srv.url, err, sizeof(err)), 0);
    assert_non_null(c);
    redisContext *same = c;
    assert_int_equal(msp_redis_ensure(&c, g_srv.url, err, sizeof(err)), 0);
    assert_ptr_equal(c, same);

    /* the server drops the connection: the next command fails and marks the context */
    redisReply *r = redisCommand(c, "CLIENT ID");
    assert_non_null(r);
    long long id = r->integer;
    freeReplyObject(r);
    r = redisCommand(g_c, "CLIENT KILL ID %lld", id);
    freeReplyObject(r);
    r = redisCommand(c, "PING");
    assert_null(r);
    assert_true(c->err != 0);

    assert_int_equal(msp_redis_ensure(&c, g_srv.url, err, sizeof(err)), 0);
    r = redisCommand(c, "PING");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
}

static void gcra_allows_the_burst_then_limits_like_the_c_decision(void **state) {
    (void)state;
    char k[128], err[256] = "";
    key(k, sizeof(k), "rl:burst");
    const double rate = 1.0; /* T = 1 s: the test runs well inside one slot */
    const int burst = 5;
    int64_t retry = -1;
    int64_t t0 = redis_now_us(g_c);
    for (int i = 0; i < burst; i++) {
        int rc = msp_gcra_take(g_c, k, rate, burst, 1, &retry, err, sizeof(err));
        if (rc != 1) fail_msg("take %d: rc %d %s", i, rc, err);
        assert_int_equal(retry, 0);
    }
    int rc = msp_gcra_take(g_c, k, rate, burst, 1, &retry, err, sizeof(err));
    int64_t t1 = redis_now_us(g_c);
    assert_int_equal(rc, 0);
    /* the first slot frees T after the first take: retry ≈ 1000 ms minus the time spent */
    int64_t elapsed_ms = (t1 - t0) / 1000;
    assert_true(retry <= 1000);
    assert_true(retry >= 1000 - elapsed_ms - 1);

    /* the stored TAT is what msp_gcra_decide would have stored: first take time + 5 T */
    int e = 0;
    char *tat_s = msp_redis_get(g_c, k, &e);
    assert_non_null(tat_s);
    int64_t tat = atoll(tat_s);
    free(tat_s);
    assert_true(tat >= t0 + burst * 1000000 && tat <= t1 + burst * 1000000);
    /* feeding that TAT and the server's clock to the C decision gives the same answer */
    int64_t now = redis_now_us(g_c), c_retry = 0;
    assert_int_equal(msp_gcra_decide(now, tat, rate, burst, 1, NULL, &c_retry), 0);
    assert_true(c_retry > 0 && (c_retry + 999) / 1000 <= 1000);

    /* idle buckets vanish: PX ≈ (TAT - now)/1000 + 1000 ms */
    long long ttl = pttl(g_c, k);
    assert_true(ttl > 1000 && ttl <= burst * 1000 + 1000);

    /* invalid buckets are errors, not silent limits */
    assert_int_equal(msp_gcra_take(g_c, k, 0.0, burst, 1, &retry, err, sizeof(err)), -1);
    assert_int_equal(msp_gcra_take(g_c, k, rate, burst, burst + 1, &retry, err, sizeof(err)), -1);
    del(g_c, k);
}

static void gcra_waiting_the_retry_after_lets_one_more_through(void **state) {
    (void)state;
    char k[128], err[256];
    key(k, sizeof(k), "rl:wait");
    /* T = 1 s: the last two takes must come within one slot of each other, which a loaded
     * machine does not promise for 50 ms */
    const double rate = 1.0;
    int64_t retry = 0;
    assert_int_equal(msp_gcra_take(g_c, k, rate, 2, 1, &retry, err, sizeof(err)), 1);
    assert_int_equal(msp_gcra_take(g_c, k, rate, 2, 1, &retry, err, sizeof(err)), 1);
    assert_int_equal(msp_gcra_take(g_c, k, rate, 2, 1, &retry, err, sizeof(err)), 0);
    assert_true(retry >= 1 && retry <= 1000);
    usleep((useconds_t)retry * 1000 + 2000);
    assert_int_equal(msp_gcra_take(g_c, k, rate, 2, 1, &retry, err, sizeof(err)), 1);
    assert_int_equal(msp_gcra_take(g_c, k, rate, 2, 1, &retry, err, sizeof(err)), 0);
    del(g_c, k);
}

static void gcra_survives_a_script_flush(void **state) {
    (void)state;
    char k[128], err[256] = "";
    key(k, sizeof(k), "rl:flush");
    int64_t retry;
    assert_int_equal(msp_gcra_take(g_c, k, 100.0, 10, 1, &retry, err, sizeof(err)), 1);
    for (int i = 0; i < 3; i++) {
        redisReply *r = redisCommand(g_c, "SCRIPT FLUSH");
        assert_non_null(r);
        freeReplyObject(r);
        int rc = msp_gcra_take(g_c, k, 100.0, 10, 1, &retry, err, sizeof(err));
        if (rc != 1) fail_msg("after SCRIPT FLUSH: rc %d %s", rc, err);
        /* the cursor script falls back the same way */
        char ck[128];
        key(ck, sizeof(ck), "cursor:flush");
        r = redisCommand(g_c, "SCRIPT FLUSH");
        freeReplyObject(r);
        assert_int_equal(msp_cursor_cas(g_c, ck, NULL, "x"), 1);
        assert_int_equal(msp_cursor_cas(g_c, ck, "x", NULL), 1);
    }
    del(g_c, k);
}

static void two_clients_sharing_a_bucket_never_exceed_its_rate(void **state) {
    (void)state;
    char k[128], err[256];
    key(k, sizeof(k), "rl:shared");
    redisContext *a = test_redis_connect(&g_srv), *b = test_redis_connect(&g_srv);
    const double rate = 20.0;
    const int burst = 4;
    long allowed = 0, limited = 0;
    int64_t start = test_mono_us(), end = start + 2000000;
    int64_t now;
    for (int i = 0; (now = test_mono_us()) < end; i++) {
        int64_t retry = 0;
        int rc = msp_gcra_take(i % 2 ? a : b, k, rate, burst, 1, &retry, err, sizeof(err));
        if (rc < 0) fail_msg("take: %s", err);
        if (rc == 1) allowed++;
        else {
            limited++;
            assert_true(retry >= 1 && retry <= 50);
        }
    }
    double elapsed = (double)(test_mono_us() - start) / 1e6;
    fprintf(stderr, "  shared bucket: %ld allowed, %ld limited in %.2f s (rate %.0f/s, burst %d)\n",
            allowed, limited, elapsed, rate, burst);
    assert_true(limited > 0);
    assert_true(allowed <= burst + (long)(rate * elapsed) + 1);
    /* and the bucket is not starved; loosely: a descheduled client (loaded machine) loses the
     * slots that went by while it was not asking */
    assert_true(allowed >= (long)(rate * elapsed * 0.5));
    redisFree(a);
    redisFree(b);
    del(g_c, k);
}

static void cursor_cas_swaps_only_from_the_expected_value(void **state) {
    (void)state;
    char k[128];
    key(k, sizeof(k), "cursor:syncro:job-1");
    int e = 0;
    /* absent → set */
    assert_int_equal(msp_cursor_cas(g_c, k, NULL, "customer:1"), 1);
    /* a second replica that also believed it absent loses */
    assert_int_equal(msp_cursor_cas(g_c, k, NULL, "customer:1"), 0);
    /* wrong expected value: no change */
    assert_int_equal(msp_cursor_cas(g_c, k, "customer:7", "customer:8"), 0);
    char *v = msp_redis_get(g_c, k, &e);
    assert_string_equal(v, "customer:1");
    free(v);
    /* right expected value: swapped, no expiry with plain cas */
    assert_int_equal(msp_cursor_cas(g_c, k, "customer:1", "asset:1"), 1);
    v = msp_redis_get(g_c, k, &e);
    assert_string_equal(v, "asset:1");
    free(v);
    assert_int_equal(pttl(g_c, k), -1);
    /* with a TTL (the fetcher keeps cursors 7 days) */
    assert_int_equal(msp_cursor_cas_ex(g_c, k, "asset:1", "done", 7LL * 24 * 3600 * 1000), 1);
    long long ttl = pttl(g_c, k);
    assert_true(ttl > 7LL * 24 * 3600 * 1000 - 60000);
    /* delete needs the right expected value too */
    assert_int_equal(msp_cursor_cas(g_c, k, "asset:1", NULL), 0);
    assert_int_equal(msp_cursor_cas(g_c, k, "done", NULL), 1);
    v = msp_redis_get(g_c, k, &e);
    assert_null(v);
    assert_int_equal(e, 0);
    /* deleting an absent key that is expected absent is a (trivial) success */
    assert_int_equal(msp_cursor_cas(g_c, k, NULL, NULL), 1);
    /* values are binary-safe strings with spaces */
    assert_int_equal(msp_cursor_cas(g_c, k, NULL, "asset:7 with space"), 1);
    assert_int_equal(msp_cursor_cas(g_c, k, "asset:7 with space", NULL), 1);
    /* a key of another type is an error, not a mismatch */
    redisReply *r = redisCommand(g_c, "HSET %s f v", k);
    freeReplyObject(r);
    assert_int_equal(msp_cursor_cas(g_c, k, NULL, "x"), -1);
    v = msp_redis_get(g_c, k, &e);
    assert_null(v);
    assert_int_equal(e, -1);
    del(g_c, k);
}

static void idempotency_claim_is_won_once_and_shows_the_holder(void **state) {
    (void)state;
    char k[128];
    key(k, sizeof(k), "idem:incident:abc");
    char *holder = (char *)"untouched";
    assert_int_equal(msp_idem_claim(g_c, k, "worker-1", 60000, &holder), 1);
    assert_null(holder);
    long long ttl = pttl(g_c, k);
    assert_true(ttl > 59000 && ttl <= 60000);
    assert_int_equal(msp_idem_claim(g_c, k, "worker-2", 60000, &holder), 0);
    assert_non_null(holder);
    assert_string_equal(holder, "worker-1");
    free(holder);
    assert_int_equal(msp_idem_claim(g_c, k, "worker-3", 60000, NULL), 0);
    del(g_c, k);
    /* ttl 0: no expiry */
    assert_int_equal(msp_idem_claim(g_c, k, "forever", 0, NULL), 1);
    assert_int_equal(pttl(g_c, k), -1);
    del(g_c, k);
}

static void lease_is_held_once_renewed_by_its_holder_and_lost_when_it_expires(void **state) {
    (void)state;
    char k[128];
    key(k, sizeof(k), "rebuild_lock");
    msp_lease_t a, b;
    assert_int_equal(msp_lease_take(&a, g_c, k, 60000), 1);
    assert_int_equal(msp_lease_take(&b, g_c, k, 60000), 0); /* one holder at a time */
    assert_string_not_equal(a.me, b.me);
    /* within a fifth of its time to live keep sends nothing; after it, it renews to the full ttl */
    redisReply *r = redisCommand(g_c, "PEXPIRE %s 5000", k);
    freeReplyObject(r);
    assert_int_equal(msp_lease_keep(&a), 1);
    assert_true(pttl(g_c, k) <= 5000);
    a.renewed_ms -= 20000;
    assert_int_equal(msp_lease_keep(&a), 1);
    assert_true(pttl(g_c, k) > 50000);
    /* not the holder: release changes nothing */
    msp_lease_release(&b);
    assert_true(pttl(g_c, k) > 0);
    /* expired and taken by another: the first holder learns it lost the lease */
    del(g_c, k);
    assert_int_equal(msp_lease_take(&b, g_c, k, 60000), 1);
    a.renewed_ms -= 20000;
    assert_int_equal(msp_lease_keep(&a), 0);
    msp_lease_release(&a);
    assert_true(pttl(g_c, k) > 0); /* still b's */
    msp_lease_release(&b);
    assert_int_equal(pttl(g_c, k), -2);
}

/* ---------------------------------------------------------------------------------------------
 * Setup
 * ------------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------------
 * The async connection (aredis.h)
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    int calls;
    int got_reply;
    char str[128];
    char why[200];
    int64_t at_ms;
} areply_t;

static void areply_cb(void *arg, redisReply *r, const char *why) {
    areply_t *a = arg;
    a->calls++;
    a->at_ms = msp_now_ms();
    if (r) {
        a->got_reply = 1;
        snprintf(a->str, sizeof(a->str), "%s",
                 r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ? r->str : "");
    } else {
        snprintf(a->why, sizeof(a->why), "%s", why ? why : "(null)");
    }
}

static int g_ticks;
static void count_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    g_ticks++;
}

/* Run the loop until *done is non-zero or ms pass. @returns 1 when done. */
static int run_until(struct event_base *base, const int *done, int ms) {
    int64_t end = msp_now_ms() + ms;
    while (!*done && msp_now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    return *done != 0;
}

static void wakeup_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
}

static struct event_base *loop_with_ticker(struct event **ticker, int every_ms) {
    struct event_base *base = event_base_new();
    assert_non_null(base);
    *ticker = event_new(base, -1, EV_PERSIST, every_ms ? count_tick : wakeup_cb, NULL);
    struct timeval tv = {0, (every_ms ? every_ms : 20) * 1000};
    event_add(*ticker, &tv);
    return base;
}

static void async_commands_answer_in_order_on_the_loop(void **state) {
    (void)state;
    struct event *ticker;
    struct event_base *base = loop_with_ticker(&ticker, 0);
    msp_aredis_t *a = msp_aredis_new(base, g_srv.url, 0);
    assert_non_null(a);
    char k[128];
    key(k, sizeof(k), "async:order");
    areply_t set = {0}, get = {0};
    assert_int_equal(msp_aredis_cmd(a, areply_cb, &set, "SET %s %s", k, "v1"), 0);
    assert_int_equal(msp_aredis_cmd(a, areply_cb, &get, "GET %s", k), 0);
    assert_int_equal(set.calls + get.calls, 0); /* never from inside the call */
    assert_int_equal((int)msp_aredis_pending(a), 2);
    assert_true(run_until(base, &get.calls, 5000));
    assert_int_equal(set.calls, 1);
    assert_true(set.at_ms <= get.at_ms);
    assert_string_equal(get.str, "v1");
    assert_int_equal((int)msp_aredis_pending(a), 0);
    assert_true(msp_aredis_answered_ms(a) > 0);

    /* a cancelled callback does not run, later ones still do */
    areply_t gone = {0}, after = {0};
    assert_int_equal(msp_aredis_cmd(a, areply_cb, &gone, "GET %s", k), 0);
    assert_int_equal(msp_aredis_cmd(a, areply_cb, &after, "GET %s", k), 0);
    msp_aredis_cancel(a, &gone);
    assert_true(run_until(base, &after.calls, 5000));
    assert_int_equal(gone.calls, 0);

    /* freeing answers what is in flight */
    areply_t pending = {0};
    assert_int_equal(msp_aredis_cmd(a, areply_cb, &pending, "GET %s", k), 0);
    msp_aredis_free(a);
    assert_int_equal(pending.calls, 1);
    assert_int_equal(pending.got_reply, 0);
    assert_string_equal(pending.why, "shutting down");
    del(g_c, k);
    event_free(ticker);
    event_base_free(base);
}

static void async_stall_is_answered_at_the_limit_and_the_loop_never_waits(void **state) {
    (void)state;
    if (g_srv.pid <= 0)
        skip(); /* a server of our own is needed to stop it */
    struct event *ticker;
    struct event_base *base = loop_with_ticker(&ticker, 10);
    const int stall_ms = 400;
    msp_aredis_t *a = msp_aredis_new(base, g_srv.url, stall_ms);
    char k[128];
    key(k, sizeof(k), "async:stall");
    areply_t first = {0};
    assert_int_equal(msp_aredis_cmd(a, areply_cb, &first, "SET %s x", k), 0);
    assert_true(run_until(base, &first.got_reply, 5000));

    kill(g_srv.pid, SIGSTOP);
    areply_t stalled = {0};
    int64_t t0 = msp_now_ms();
    assert_int_equal(msp_aredis_cmd(a, areply_cb, &stalled, "GET %s", k), 0);
    g_ticks = 0;
    int done = run_until(base, &stalled.calls, 10000);
    int64_t waited = msp_now_ms() - t0;
    int ticks = g_ticks;
    kill(g_srv.pid, SIGCONT);
    assert_true(done);
    assert_int_equal(stalled.got_reply, 0);
    if (!strstr(stalled.why, "no answer from Redis in 400 ms"))
        fail_msg("why: %s", stalled.why);
    if (waited < stall_ms || waited > stall_ms + 3000)
        fail_msg("answered after %lld ms (limit %d)", (long long)waited, stall_ms);
    /* the loop ran its 10 ms timer all along: a blocking call would have frozen it */
    if (ticks < (int)(waited / 10) / 4)
        fail_msg("%d ticks of 10 ms in %lld ms: the loop was held", ticks, (long long)waited);

    /* it reconnects by itself and works again */
    areply_t again = {0};
    int64_t end = msp_now_ms() + 10000;
    while (!again.got_reply && msp_now_ms() < end) {
        memset(&again, 0, sizeof(again));
        if (msp_aredis_cmd(a, areply_cb, &again, "GET %s", k) == 0)
            run_until(base, &again.calls, 2000);
        else
            event_base_loop(base, EVLOOP_ONCE);
    }
    assert_true(again.got_reply);
    assert_string_equal(again.str, "x");
    msp_aredis_free(a);
    del(g_c, k);
    event_free(ticker);
    event_base_free(base);
}

typedef struct {
    int calls, rc;
    int64_t wait_ms;
    char err[600];
} atake_t;

static void atake_cb(void *arg, int rc, int64_t wait_ms, const char *err) {
    atake_t *t = arg;
    t->calls++;
    t->rc = rc;
    t->wait_ms = wait_ms;
    snprintf(t->err, sizeof(t->err), "%s", err ? err : "");
}

static void async_gcra_takes_like_the_blocking_take_and_after_a_script_flush(void **state) {
    (void)state;
    struct event *ticker;
    struct event_base *base = loop_with_ticker(&ticker, 0);
    msp_aredis_t *a = msp_aredis_new(base, g_srv.url, 0);
    char k[128], err[600];
    key(k, sizeof(k), "rl:async");
    redisReply *r = redisCommand(g_c, "SCRIPT FLUSH"); /* the first take meets NOSCRIPT */
    freeReplyObject(r);
    msp_gcra_async_t t;
    for (int i = 0; i < 4; i++) {
        atake_t got = {0};
        if (msp_gcra_take_async(a, &t, k, 1.0, 3, 1, atake_cb, &got, err, sizeof(err)) != 0)
            fail_msg("take %d: %s", i, err);
        assert_true(run_until(base, &got.calls, 5000));
        if (i < 3 && got.rc != 1)
            fail_msg("take %d of a burst of 3: rc %d %s", i, got.rc, got.err);
        if (i == 3) { /* the fourth waits about one emission interval, as the blocking take */
            assert_int_equal(got.rc, 0);
            assert_true(got.wait_ms > 900 && got.wait_ms <= 1000);
            int64_t retry;
            assert_int_equal(msp_gcra_take(g_c, k, 1.0, 3, 1, &retry, err, sizeof(err)), 0);
            assert_true(llabs((long long)(retry - got.wait_ms)) < 200);
        }
    }
    /* invalid buckets and cancelled takes */
    atake_t bad = {0};
    assert_int_equal(msp_gcra_take_async(a, &t, k, 0.0, 3, 1, atake_cb, &bad, err, sizeof(err)),
                     -1);
    atake_t cancelled = {0};
    assert_int_equal(
        msp_gcra_take_async(a, &t, k, 1.0, 3, 1, atake_cb, &cancelled, err, sizeof(err)), 0);
    msp_gcra_cancel(&t);
    areply_t ping = {0};
    assert_int_equal(msp_aredis_cmd(a, areply_cb, &ping, "PING"), 0);
    assert_true(run_until(base, &ping.calls, 5000));
    assert_int_equal(cancelled.calls, 0);
    assert_int_equal(bad.calls, 0);
    msp_aredis_free(a);
    del(g_c, k);
    event_free(ticker);
    event_base_free(base);
}

typedef struct {
    int calls, rc;
    char err[512];
} acred_t;

static void acred_cb(void *arg, int rc, const char *err) {
    acred_t *c = arg;
    c->calls++;
    c->rc = rc;
    snprintf(c->err, sizeof(c->err), "%s", err ? err : "");
}

static int g_lost_calls, g_lost;
static void alost_cb(void *arg, int lost) {
    (void)arg;
    g_lost_calls++;
    g_lost = lost;
}

/* The async credential load in its three states: a restore pending, no integration, a stored
 * one (its secret opened, its bucket the account's). */
static void async_credential_load_answers_each_state(void **state) {
    (void)state;
    msp_secret_key_t sk;
    char err[256];
    assert_int_equal(msp_secret_key_parse(
                         &sk, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                         err, sizeof(err)),
                     0);
    struct event *ticker;
    struct event_base *base = loop_with_ticker(&ticker, 0);
    msp_aredis_t *a = msp_aredis_new(base, g_srv.url, 0);
    char epoch[64];
    msp_key(epoch, sizeof(epoch), "_", MSP_STATE_EPOCH_SUFFIX);
    redisReply *r = redisCommand(g_c, "GET %s", epoch);
    char *saved_epoch = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    const msp_vendor_t *v = msp_vendor_find("cwrmm");
    assert_non_null(v);
    msp_vendor_cred_t async = {0};
    msp_vendor_cred_async_t op;

    for (int phase = 0; phase < 3; phase++) {
        /* 0: no integration, no marker (a restore is pending); 1: no integration, marker set;
         * 2: a stored integration */
        freeReplyObject(redisCommand(g_c, phase == 0 ? "DEL %s" : "SET %s e1", epoch));
        if (phase == 2) {
            char k[256];
            msp_key(k, sizeof(k), g_tenant, "integration:cwrmm");
            char aad[128];
            snprintf(aad, sizeof(aad), "%s/cwrmm", g_tenant);
            char *sealed = msp_secret_seal(&sk, aad, "s3cret", 6);
            assert_non_null(sealed);
            freeReplyObject(redisCommand(g_c,
                                         "HSET %s base_url https://x.test client_id c1 "
                                         "client_secret_sealed %s writeback_purchase 1",
                                         k, sealed));
            free(sealed);
        }
        int want = phase == 0 ? -1 : phase == 1 ? 1 : 0;
        g_lost_calls = 0;
        assert_int_equal(msp_state_lost_async(a, alost_cb, NULL), 0);
        acred_t got = {0};
        assert_int_equal(
            msp_vendor_cred_load_async(v, a, &sk, g_tenant, &async, &op, acred_cb, &got), 0);
        assert_int_equal(got.calls, 0);
        assert_true(run_until(base, &got.calls, 5000));
        assert_int_equal(g_lost_calls, 1);
        assert_int_equal(g_lost, phase == 0 ? 1 : 0);
        if (got.rc != want)
            fail_msg("phase %d: rc %d (%s), want %d", phase, got.rc, got.err, want);
        if (phase == 0)
            assert_non_null(strstr(got.err, "being restored"));
        if (phase == 1)
            assert_non_null(strstr(got.err, "has no ConnectWise RMM integration"));
        if (phase == 2) {
            const msp_cwrmm_integration_t *ci = async.impl;
            assert_string_equal(ci->client_secret, "s3cret");
            assert_string_equal(msp_vendor_cred_base_url(&async), "https://x.test");
            assert_non_null(strstr(msp_vendor_cred_bucket(&async), "{cwrmm:"));
        }
        msp_vendor_cred_clear(&async);
    }
    /* a cancelled load never answers */
    acred_t cancelled = {0};
    assert_int_equal(
        msp_vendor_cred_load_async(v, a, &sk, g_tenant, &async, &op, acred_cb, &cancelled), 0);
    msp_vendor_cred_cancel(&op);
    areply_t ping = {0};
    assert_int_equal(msp_aredis_cmd(a, areply_cb, &ping, "PING"), 0);
    assert_true(run_until(base, &ping.calls, 5000));
    assert_int_equal(cancelled.calls, 0);
    msp_vendor_cred_clear(&async);

    if (saved_epoch)
        freeReplyObject(redisCommand(g_c, "SET %s %s", epoch, saved_epoch));
    else
        freeReplyObject(redisCommand(g_c, "DEL %s", epoch));
    free(saved_epoch);
    msp_aredis_free(a);
    event_free(ticker);
    event_base_free(base);
}

static void delete_test_keys(void) {
    if (!g_c || g_c->err) return;
    char pattern[128];
    snprintf(pattern, sizeof(pattern), "mspsync:{%s}:*", g_tenant);
    for (int db = 0; db < 4; db++) {
        redisReply *r = redisCommand(g_c, "SELECT %d", db);
        if (r) freeReplyObject(r);
        char cursor[32] = "0";
        do {
            r = redisCommand(g_c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
            if (!r || r->type != REDIS_REPLY_ARRAY) break;
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (size_t i = 0; i < r->element[1]->elements; i++) {
                redisReply *d = redisCommand(g_c, "DEL %s", r->element[1]->element[i]->str);
                if (d) freeReplyObject(d);
            }
            freeReplyObject(r);
            r = NULL;
        } while (strcmp(cursor, "0") != 0);
        if (r) freeReplyObject(r);
    }
    redisReply *r = redisCommand(g_c, "SELECT 0");
    if (r) freeReplyObject(r);
}

static int group_setup(void **state) {
    (void)state;
    char err[256] = "";
    g_c = msp_redis_connect(g_srv.url, err, sizeof(err));
    if (!g_c) {
        fprintf(stderr, "cannot connect to %s: %s\n", g_srv.url, err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    delete_test_keys();
    redisFree(g_c);
    g_c = NULL;
    return 0;
}

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(g_tenant, sizeof(g_tenant), "it-%ld-%ld", (long)getpid(), (long)ts.tv_nsec);

    const char *ext = getenv("MSPSYNC_TEST_REDIS");
    if (ext && *ext) {
        snprintf(g_srv.url, sizeof(g_srv.url), "%s", ext);
    } else if (test_redis_start(&g_srv) != 0) {
        fprintf(stderr, "test_redis: no MSPSYNC_TEST_REDIS and cannot start redis-server: "
                        "skipped\n");
        test_redis_stop(&g_srv);
        return 77;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_carry_the_tenant_hash_tag),
        cmocka_unit_test(connect_accepts_url_forms_and_selects_the_database),
        cmocka_unit_test(ensure_replaces_a_broken_context),
        cmocka_unit_test(gcra_allows_the_burst_then_limits_like_the_c_decision),
        cmocka_unit_test(gcra_waiting_the_retry_after_lets_one_more_through),
        cmocka_unit_test(gcra_survives_a_script_flush),
        cmocka_unit_test(two_clients_sharing_a_bucket_never_exceed_its_rate),
        cmocka_unit_test(cursor_cas_swaps_only_from_the_expected_value),
        cmocka_unit_test(idempotency_claim_is_won_once_and_shows_the_holder),
        cmocka_unit_test(lease_is_held_once_renewed_by_its_holder_and_lost_when_it_expires),
        cmocka_unit_test(async_commands_answer_in_order_on_the_loop),
        cmocka_unit_test(async_stall_is_answered_at_the_limit_and_the_loop_never_waits),
        cmocka_unit_test(async_gcra_takes_like_the_blocking_take_and_after_a_script_flush),
        cmocka_unit_test(async_credential_load_answers_each_state),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    test_redis_stop(&g_srv);
    return failed;
}
