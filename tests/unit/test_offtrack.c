/*
 * test_offtrack.c — which offset may be committed when messages finish out of order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "mspsync/offtrack.h"

static void in_order_completion_commits_each_next_offset(void **state) {
    (void)state;
    msp_offtrack_t *t = msp_offtrack_new();
    assert_non_null(t);
    for (int64_t o = 100; o < 105; o++) assert_int_equal(msp_offtrack_begin(t, "raw", 0, o), 0);
    assert_int_equal(msp_offtrack_inflight(t), 5);
    for (int64_t o = 100; o < 105; o++) assert_int_equal(msp_offtrack_done(t, "raw", 0, o), o + 1);
    assert_int_equal(msp_offtrack_inflight(t), 0);
    msp_offtrack_destroy(t);
}

static void a_fast_message_does_not_commit_past_a_slow_one(void **state) {
    (void)state;
    msp_offtrack_t *t = msp_offtrack_new();
    for (int64_t o = 10; o <= 13; o++) msp_offtrack_begin(t, "sync.jobs", 2, o);
    /* 11, 13, 12 finish while 10 (a long sync) is still running: nothing may be committed */
    assert_int_equal(msp_offtrack_done(t, "sync.jobs", 2, 11), -1);
    assert_int_equal(msp_offtrack_done(t, "sync.jobs", 2, 13), -1);
    assert_int_equal(msp_offtrack_done(t, "sync.jobs", 2, 12), -1);
    assert_int_equal(msp_offtrack_inflight(t), 1);
    /* 10 finishes: everything up to 13 is done, the next offset to consume is 14 */
    assert_int_equal(msp_offtrack_done(t, "sync.jobs", 2, 10), 14);
    assert_int_equal(msp_offtrack_inflight(t), 0);
    /* the partition keeps working after it drained */
    assert_int_equal(msp_offtrack_begin(t, "sync.jobs", 2, 20), 0);
    assert_int_equal(msp_offtrack_done(t, "sync.jobs", 2, 20), 21);
    msp_offtrack_destroy(t);
}

static void a_gap_stops_the_commit_at_the_lowest_unfinished(void **state) {
    (void)state;
    msp_offtrack_t *t = msp_offtrack_new();
    for (int64_t o = 0; o < 6; o++) msp_offtrack_begin(t, "raw", 0, o);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 1), -1);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 0), 2);  /* 2 still running */
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 4), -1);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 2), 3);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 3), 5);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 5), 6);
    msp_offtrack_destroy(t);
}

static void offsets_need_not_be_contiguous(void **state) {
    (void)state;
    /* compacted topics and transactions leave holes in the offsets a consumer sees */
    msp_offtrack_t *t = msp_offtrack_new();
    msp_offtrack_begin(t, "assets", 0, 7);
    msp_offtrack_begin(t, "assets", 0, 19);
    msp_offtrack_begin(t, "assets", 0, 40);
    assert_int_equal(msp_offtrack_done(t, "assets", 0, 19), -1);
    assert_int_equal(msp_offtrack_done(t, "assets", 0, 7), 20);
    assert_int_equal(msp_offtrack_done(t, "assets", 0, 40), 41);
    msp_offtrack_destroy(t);
}

static void unknown_repeated_or_duplicate_offsets_are_refused(void **state) {
    (void)state;
    msp_offtrack_t *t = msp_offtrack_new();
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 5), -1);      /* no such partition */
    msp_offtrack_begin(t, "raw", 0, 5);
    assert_int_equal(msp_offtrack_begin(t, "raw", 0, 5), -1);     /* already in flight */
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 6), -1);      /* never begun */
    assert_int_equal(msp_offtrack_inflight(t), 1);
    msp_offtrack_begin(t, "raw", 0, 6);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 6), -1);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 6), -1);      /* done twice */
    assert_int_equal(msp_offtrack_inflight(t), 1);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 5), 7);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 5), -1);      /* already committed */
    assert_int_equal(msp_offtrack_begin(t, "raw", 0, -1), -1);
    msp_offtrack_destroy(t);
}

static void an_out_of_order_begin_is_still_tracked_in_order(void **state) {
    (void)state;
    msp_offtrack_t *t = msp_offtrack_new();
    msp_offtrack_begin(t, "raw", 0, 10);
    msp_offtrack_begin(t, "raw", 0, 30);
    assert_int_equal(msp_offtrack_begin(t, "raw", 0, 20), 0);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 10), 11);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 30), -1);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 20), 31);
    msp_offtrack_destroy(t);
}

static void partitions_and_topics_are_independent(void **state) {
    (void)state;
    msp_offtrack_t *t = msp_offtrack_new();
    enum { TOPICS = 3, PARTS = 500, PER = 4 };
    const char *topics[TOPICS] = {"raw.records", "sync.jobs", "assets"};
    for (int k = 0; k < TOPICS; k++)
        for (int32_t p = 0; p < PARTS; p++)
            for (int64_t o = 0; o < PER; o++)
                assert_int_equal(msp_offtrack_begin(t, topics[k], p, 1000 * p + o), 0);
    assert_int_equal(msp_offtrack_inflight(t), TOPICS * PARTS * PER);
    /* finish in reverse: only the last done per partition moves its commit */
    for (int k = 0; k < TOPICS; k++)
        for (int32_t p = PARTS - 1; p >= 0; p--)
            for (int64_t o = PER - 1; o >= 0; o--) {
                int64_t got = msp_offtrack_done(t, topics[k], p, 1000 * p + o);
                assert_int_equal(got, o == 0 ? 1000 * p + PER : -1);
            }
    assert_int_equal(msp_offtrack_inflight(t), 0);
    msp_offtrack_destroy(t);
}

static void thousands_in_flight_in_one_partition(void **state) {
    (void)state;
    msp_offtrack_t *t = msp_offtrack_new();
    enum { N = 20000 };
    /* a sliding window: begin ahead, finish odd offsets first, then even ones */
    int64_t committed = -1;
    for (int64_t o = 0; o < N; o++) assert_int_equal(msp_offtrack_begin(t, "raw", 1, o), 0);
    for (int64_t o = 1; o < N; o += 2) assert_int_equal(msp_offtrack_done(t, "raw", 1, o), -1);
    for (int64_t o = 0; o < N; o += 2) {
        int64_t got = msp_offtrack_done(t, "raw", 1, o);
        assert_int_equal(got, o + 2);
        committed = got;
        /* keep beginning new work while the window drains (exercises compaction) */
        assert_int_equal(msp_offtrack_begin(t, "raw", 1, N + o), 0);
    }
    assert_int_equal(committed, N);
    assert_int_equal(msp_offtrack_inflight(t), N / 2);
    for (int64_t o = N; o < N + N; o += 2) assert_int_equal(msp_offtrack_done(t, "raw", 1, o), o + 1);
    assert_int_equal(msp_offtrack_inflight(t), 0);
    msp_offtrack_destroy(t);
}

static void forgetting_a_revoked_partition_drops_its_work(void **state) {
    (void)state;
    msp_offtrack_t *t = msp_offtrack_new();
    for (int64_t o = 0; o < 5; o++) {
        msp_offtrack_begin(t, "raw", 0, o);
        msp_offtrack_begin(t, "raw", 1, o);
    }
    msp_offtrack_done(t, "raw", 0, 3);
    assert_int_equal(msp_offtrack_inflight(t), 9);
    msp_offtrack_forget(t, "raw", 0);
    assert_int_equal(msp_offtrack_inflight(t), 5);
    /* late completions of the revoked partition commit nothing */
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 0), -1);
    /* the other partition is untouched */
    assert_int_equal(msp_offtrack_done(t, "raw", 1, 0), 1);
    /* reassigned later: starts fresh from wherever the group's committed offset was */
    assert_int_equal(msp_offtrack_begin(t, "raw", 0, 3), 0);
    assert_int_equal(msp_offtrack_done(t, "raw", 0, 3), 4);
    msp_offtrack_forget(t, "raw", 7);      /* unknown partition: no-op */
    msp_offtrack_forget(t, "nothing", 0);
    msp_offtrack_destroy(t);
    msp_offtrack_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order_completion_commits_each_next_offset),
        cmocka_unit_test(a_fast_message_does_not_commit_past_a_slow_one),
        cmocka_unit_test(a_gap_stops_the_commit_at_the_lowest_unfinished),
        cmocka_unit_test(offsets_need_not_be_contiguous),
        cmocka_unit_test(unknown_repeated_or_duplicate_offsets_are_refused),
        cmocka_unit_test(an_out_of_order_begin_is_still_tracked_in_order),
        cmocka_unit_test(partitions_and_topics_are_independent),
        cmocka_unit_test(thousands_in_flight_in_one_partition),
        cmocka_unit_test(forgetting_a_revoked_partition_drops_its_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
