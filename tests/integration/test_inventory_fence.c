/*
 * test_inventory_fence.c — the normalizer's inventory calls against a real Redis that loses its
 * state (services/normalizer/inventory.h, nz_inv_fence): no write of a call lands in a Redis
 * flushed after the state check its batch passed, and the call says so (NZ_INV_LOST).
 *
 * Starts its own redis-server (MSPSYNC_REDIS_SERVER overrides the binary); exit code 77 (ctest:
 * skipped) when there is none.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "inventory.h"
#include "redis_server.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"

#define TENANT "fence"
#define EPOCH "e0000000000000000000000000000001"
#define RECORDS 3000

static test_redis_t g_srv = {.pid = -1};
static redisContext *g_c;   /* the test's own connection: markers, checks, flushes */
static redisContext *g_inv; /* the inventory's */

static void run(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", fmt, r->str);
    freeReplyObject(r);
}

/* The state as the gateway's restore and a rebuild leave it: both markers name epoch. */
static void set_markers(redisContext *c, const char *epoch) {
    char ke[64], ki[64];
    msp_key(ke, sizeof(ke), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(ki, sizeof(ki), "_", MSP_STATE_INVENTORY_SUFFIX);
    run(c, "MSET %s %s %s %s", ke, epoch, ki, epoch);
}

/* The inventory's keys of the test tenant. */
static long long inv_keys(void) {
    char cursor[32] = "0", pattern[96];
    long long n = 0;
    msp_key(pattern, sizeof(pattern), TENANT, "inv:*");
    do {
        redisReply *r = redisCommand(g_c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        n += (long long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

/* RECORDS source assets, each its own machine (its own MAC and serial). */
static json_t **records(void) {
    json_t **v = calloc(RECORDS, sizeof(*v));
    assert_non_null(v);
    for (int i = 0; i < RECORDS; i++) {
        char mac[18], sn[16];
        snprintf(mac, sizeof(mac), "02:00:00:%02X:%02X:%02X", (i >> 16) & 0xff, (i >> 8) & 0xff,
                 i & 0xff);
        snprintf(sn, sizeof(sn), "SN%06d", i);
        v[i] = json_pack("{s:s,s:s,s:s,s:[s]}", "name", sn, "manufacturer", "Dell Inc.", "serial",
                         sn, "macs", mac);
        assert_non_null(v[i]);
    }
    return v;
}

static void free_records(json_t **v) {
    for (int i = 0; i < RECORDS; i++)
        json_decref(v[i]);
    free(v);
}

/* One nz_inv_run of n records on g_inv. @returns its result. */
static int inventory_run(json_t **recs, int n, nz_inv_out_t *out) {
    char err[512] = "";
    nz_inv_t *inv = nz_inv_new(20);
    assert_non_null(inv);
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "syncro:%d", i);
        assert_int_equal(nz_inv_queue(inv, TENANT, id, recs[i]), 0);
    }
    memset(out, 0, sizeof(*out));
    int rc = nz_inv_run(inv, g_inv, "2026-12-07T00:00:00Z", out, err, sizeof(err));
    if (rc == NZ_INV_LOST)
        assert_non_null(strstr(err, "lost its state"));
    if (rc == -1)
        print_error("nz_inv_run: %s\n", err);
    nz_inv_destroy(inv);
    return rc;
}

static void reconnect(void) {
    redisFree(g_inv);
    g_inv = test_redis_connect(&g_srv);
}

static int setup(void **state) {
    (void)state;
    run(g_c, "FLUSHALL");
    set_markers(g_c, EPOCH);
    nz_inv_fence(EPOCH);
    reconnect();
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------- */

static void a_call_writes_while_the_state_holds_and_leaves_no_watch(void **state) {
    (void)state;
    json_t **recs = records();
    nz_inv_out_t out;
    assert_int_equal(inventory_run(recs, 10, &out), 0);
    assert_int_equal((int)out.n, 10);
    nz_inv_out_clear(&out);
    assert_true(inv_keys() > 10);
    /* The caller's own transactions on the connection are not made conditional by the call. */
    set_markers(g_c, "another");
    redisReply *r = redisCommand(g_inv, "MULTI");
    freeReplyObject(r);
    r = redisCommand(g_inv, "SET %s x", "mspsync:{fence}:probe");
    freeReplyObject(r);
    r = redisCommand(g_inv, "EXEC");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    free_records(recs);
}

static void a_call_after_a_flush_writes_nothing(void **state) {
    (void)state;
    json_t **recs = records();
    nz_inv_out_t out;
    run(g_c, "FLUSHALL"); /* after the batch's state check */
    assert_int_equal(inventory_run(recs, 10, &out), NZ_INV_LOST);
    assert_int_equal((int)out.n, 0);
    assert_int_equal(inv_keys(), 0);
    free_records(recs);
}

static void a_call_after_a_restore_and_rebuild_writes_nothing(void **state) {
    (void)state;
    json_t **recs = records();
    nz_inv_out_t out;
    run(g_c, "FLUSHALL");
    set_markers(g_c, "e0000000000000000000000000000002"); /* a new epoch, rebuilt */
    assert_int_equal(inventory_run(recs, 10, &out), NZ_INV_LOST);
    assert_int_equal(inv_keys(), 0);
    /* the single calls too */
    char err[256];
    json_t *fields = json_pack("{s:s}", "purchase", "2024-01-02");
    assert_int_equal(nz_inv_edit(g_inv, TENANT, "a1", fields, "edit1", "2026-12-07T00:00:00Z", &out,
                                 err, sizeof(err)),
                     NZ_INV_LOST);
    json_decref(fields);
    reconnect();
    assert_int_equal(nz_inv_source_gone(g_inv, TENANT, "syncro:1", "2026-12-07T00:00:00Z", &out,
                                        err, sizeof(err)),
                     NZ_INV_LOST);
    reconnect();
    assert_int_equal(nz_inv_source_remove(g_inv, TENANT, "syncro:1", "2026-12-07T00:00:00Z", &out,
                                          err, sizeof(err)),
                     NZ_INV_LOST);
    assert_int_equal(inv_keys(), 0);
    free_records(recs);
}

typedef struct {
    int64_t at_us; /* when to flush (monotonic) */
} flusher_t;

static void *flusher(void *arg) {
    flusher_t *f = arg;
    char err[256];
    redisContext *c = msp_redis_connect(g_srv.url, err, sizeof(err));
    while (test_mono_us() < f->at_us)
        usleep(100);
    redisReply *r = c ? redisCommand(c, "FLUSHALL") : NULL;
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return NULL;
}

/*
 * A flush at any moment of a run: whatever the run wrote before it is gone with it, and nothing
 * is written after it. Without the fence, the run's writes after the flush stay.
 */
static void a_flush_during_a_call_leaves_none_of_its_writes(void **state) {
    (void)state;
    json_t **recs = records();
    nz_inv_out_t out;
    /* how long a run takes here */
    int64_t t0 = test_mono_us();
    assert_int_equal(inventory_run(recs, RECORDS, &out), 0);
    int64_t took = test_mono_us() - t0;
    nz_inv_out_clear(&out);
    int lost = 0, rounds = 24;
    for (int round = 0; round < rounds; round++) {
        run(g_c, "FLUSHALL");
        set_markers(g_c, EPOCH);
        reconnect();
        flusher_t f = {.at_us = test_mono_us() + took * (round + 1) / (rounds + 2)}; /* spread */
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, flusher, &f), 0);
        int rc = inventory_run(recs, RECORDS, &out);
        pthread_join(th, NULL);
        nz_inv_out_clear(&out);
        assert_true(rc == 0 || rc == NZ_INV_LOST);
        lost += rc == NZ_INV_LOST;
        long long left = inv_keys();
        if (left != 0)
            fail_msg("round %d (flush %lld us into a %lld us run, rc %d): %lld inventory keys "
                     "written after the flush",
                     round, (long long)(took * (round + 1) / (rounds + 2)), (long long)took, rc,
                     left);
    }
    /* the flushes did land during runs (else this test proves nothing) */
    assert_true(lost > 0);
    print_message("%d of %d runs found the state lost (a run takes %lld us)\n", lost, rounds,
                  (long long)took);
    free_records(recs);
}

int main(void) {
    if (test_redis_start(&g_srv) != 0) {
        fprintf(stderr, "test_inventory_fence: cannot start redis-server: skipped\n");
        return 77;
    }
    g_c = test_redis_connect(&g_srv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(a_call_writes_while_the_state_holds_and_leaves_no_watch, setup),
        cmocka_unit_test_setup(a_call_after_a_flush_writes_nothing, setup),
        cmocka_unit_test_setup(a_call_after_a_restore_and_rebuild_writes_nothing, setup),
        cmocka_unit_test_setup(a_flush_during_a_call_leaves_none_of_its_writes, setup),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    redisFree(g_inv);
    redisFree(g_c);
    test_redis_stop(&g_srv);
    return failed;
}
