/*
 * test_gcra.c — the GCRA decision (msp_gcra_decide), which the Redis Lua script mirrors.
 * Time is simulated in microseconds; no Redis involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mspsync/redis.h"

#define NOW0 INT64_C(1800000000000000) /* µs since the epoch, 2027 */

/* A client's bucket as the Lua script keeps it: the stored TAT, -1 before the first request. */
typedef struct {
    int64_t tat;
} bucket_t;

static int take(bucket_t *b, int64_t now, double rate, int burst, int cost, int64_t *retry) {
    int64_t new_tat = 0, r = -1;
    int rc = msp_gcra_decide(now, b->tat, rate, burst, cost, &new_tat, &r);
    if (rc == 1) b->tat = new_tat;
    else assert_int_equal(new_tat, b->tat); /* a limited request leaves the bucket alone */
    if (retry) *retry = r;
    return rc;
}

static void idle_bucket_allows_exactly_burst_then_limits(void **state) {
    (void)state;
    bucket_t b = {-1};
    for (int i = 0; i < 5; i++) assert_int_equal(take(&b, NOW0, 3.0, 5, 1, NULL), 1);
    int64_t retry = 0;
    assert_int_equal(take(&b, NOW0, 3.0, 5, 1, &retry), 0);
    assert_true(retry > 0);
}

static void retry_after_is_time_until_next_slot_and_then_one_more_passes(void **state) {
    (void)state;
    const double rate = 10.0; /* T = 100 ms */
    const int64_t T = 100000;
    bucket_t b = {-1};
    for (int i = 0; i < 3; i++) assert_int_equal(take(&b, NOW0, rate, 3, 1, NULL), 1);
    int64_t retry = 0;
    assert_int_equal(take(&b, NOW0, rate, 3, 1, &retry), 0);
    assert_int_equal(retry, T);
    /* 40 ms later the wait is 60 ms */
    assert_int_equal(take(&b, NOW0 + 40000, rate, 3, 1, &retry), 0);
    assert_int_equal(retry, T - 40000);
    /* one µs early is still too early */
    assert_int_equal(take(&b, NOW0 + T - 1, rate, 3, 1, &retry), 0);
    assert_int_equal(retry, 1);
    /* after waiting T exactly one more passes, the next one waits a full T again */
    assert_int_equal(take(&b, NOW0 + T, rate, 3, 1, &retry), 1);
    assert_int_equal(retry, 0);
    assert_int_equal(take(&b, NOW0 + T, rate, 3, 1, &retry), 0);
    assert_int_equal(retry, T);
}

static void sixty_seconds_of_hammering_stays_within_rate_plus_burst(void **state) {
    (void)state;
    const double rate = 10.0;
    const int burst = 5;
    bucket_t b = {-1};
    long allowed = 0;
    int64_t last_allowed = 0;
    for (int64_t now = NOW0; now < NOW0 + 60 * INT64_C(1000000); now += 1000) {
        int64_t retry = 0;
        if (take(&b, now, rate, burst, 1, &retry) == 1) {
            allowed++;
            last_allowed = now;
        } else {
            assert_true(retry > 0 && retry <= 100000);
        }
    }
    assert_true(last_allowed > NOW0);
    assert_true(allowed <= burst + (long)(rate * 60));
    assert_true(allowed >= (long)(rate * 60));
}

static void cost_above_one_takes_several_slots(void **state) {
    (void)state;
    const double rate = 10.0;
    const int64_t T = 100000;
    bucket_t b = {-1};
    int64_t retry = 0;
    /* burst 5: cost 3 passes, a second cost 3 would need 6 slots */
    assert_int_equal(take(&b, NOW0, rate, 5, 3, &retry), 1);
    assert_int_equal(take(&b, NOW0, rate, 5, 3, &retry), 0);
    assert_int_equal(retry, T); /* one slot must drain first */
    assert_int_equal(take(&b, NOW0, rate, 5, 2, &retry), 1);
    assert_int_equal(take(&b, NOW0, rate, 5, 1, &retry), 0);
    assert_int_equal(retry, T);
    assert_int_equal(take(&b, NOW0 + 3 * T, rate, 5, 3, &retry), 1);
}

static void tat_in_the_past_is_reset_to_now(void **state) {
    (void)state;
    int64_t new_tat = 0, retry = -1;
    /* a bucket last used an hour ago behaves like an idle one: full burst available */
    int64_t old = NOW0 - 3600 * INT64_C(1000000);
    assert_int_equal(msp_gcra_decide(NOW0, old, 10.0, 4, 1, &new_tat, &retry), 1);
    assert_int_equal(new_tat, NOW0 + 100000);
    assert_int_equal(retry, 0);
    bucket_t b = {old};
    for (int i = 0; i < 4; i++) assert_int_equal(take(&b, NOW0, 10.0, 4, 1, NULL), 1);
    assert_int_equal(take(&b, NOW0, 10.0, 4, 1, NULL), 0);
}

static void fractional_interval_rounds_up_so_the_rate_is_never_exceeded(void **state) {
    (void)state;
    /* Syncro: 180/min = 3/s → T = ceil(333333.3) = 333334 µs */
    int64_t new_tat = 0;
    assert_int_equal(msp_gcra_decide(NOW0, -1, 3.0, 1, 1, &new_tat, NULL), 1);
    assert_int_equal(new_tat, NOW0 + 333334);
}

static void invalid_buckets_are_rejected(void **state) {
    (void)state;
    int64_t nt, ra;
    assert_int_equal(msp_gcra_decide(NOW0, -1, 0.0, 5, 1, &nt, &ra), -1);
    assert_int_equal(msp_gcra_decide(NOW0, -1, -1.0, 5, 1, &nt, &ra), -1);
    assert_int_equal(msp_gcra_decide(NOW0, -1, 10.0, 0, 1, &nt, &ra), -1);
    assert_int_equal(msp_gcra_decide(NOW0, -1, 10.0, 5, 0, &nt, &ra), -1);
    assert_int_equal(msp_gcra_decide(NOW0, -1, 10.0, 5, 6, &nt, &ra), -1);
    /* out pointers are optional */
    assert_int_equal(msp_gcra_decide(NOW0, -1, 10.0, 5, 1, NULL, NULL), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idle_bucket_allows_exactly_burst_then_limits),
        cmocka_unit_test(retry_after_is_time_until_next_slot_and_then_one_more_passes),
        cmocka_unit_test(sixty_seconds_of_hammering_stays_within_rate_plus_burst),
        cmocka_unit_test(cost_above_one_takes_several_slots),
        cmocka_unit_test(tat_in_the_past_is_reset_to_now),
        cmocka_unit_test(fractional_interval_rounds_up_so_the_rate_is_never_exceeded),
        cmocka_unit_test(invalid_buckets_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
