/*
 * test_backoff.c — the retry schedule, Retry-After parsing and the clocks.
 *
 * The schedule is a pure function of (attempt, base, cap, rand01), so most cases pass fixed
 * random numbers and check exact delays.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mspsync/backoff.h"

/* 2015-10-21 07:27:30 UTC, 30 s before the RFC example date. */
#define EXAMPLE_NOW ((time_t)1445412450)

static void delay_doubles_with_each_attempt_at_top_of_range(void **state) {
    (void)state;
    /* rand01 just below 1 gives (almost) the ceiling base * 2^attempt. */
    const double hi = 0.999999999;
    assert_int_equal(msp_backoff_ms(0, 1000, 1000000, hi), 999);
    assert_int_equal(msp_backoff_ms(1, 1000, 1000000, hi), 1999);
    assert_int_equal(msp_backoff_ms(2, 1000, 1000000, hi), 3999);
    assert_int_equal(msp_backoff_ms(3, 1000, 1000000, hi), 7999);
    assert_int_equal(msp_backoff_ms(4, 1000, 1000000, hi), 15999);
}

static void delay_follows_documented_formula(void **state) {
    (void)state;
    /* floor 500, ceiling 4000: 500 + 0.5 * 3500 */
    assert_int_equal(msp_backoff_ms(2, 1000, 60000, 0.5), 2250);
    /* floor 50, ceiling 200: 50 + 0.25 * 150 */
    assert_int_equal(msp_backoff_ms(1, 100, 60000, 0.25), 87);
}

static void delay_never_exceeds_cap(void **state) {
    (void)state;
    for (unsigned a = 0; a < 40; a++) {
        int64_t d = msp_backoff_ms(a, 1000, 30000, 0.999999999);
        assert_true(d <= 30000);
    }
    assert_int_equal(msp_backoff_ms(10, 1000, 30000, 0.999999999), 29999);
}

static void retry_is_never_immediate_floor_is_half_base(void **state) {
    (void)state;
    for (unsigned a = 0; a < 20; a++)
        assert_int_equal(msp_backoff_ms(a, 1000, 30000, 0.0), 500);
    /* a cap below the floor is a hard limit */
    assert_int_equal(msp_backoff_ms(0, 1000, 200, 0.0), 200);
    assert_int_equal(msp_backoff_ms(5, 1000, 200, 0.9), 200);
}

static void huge_attempt_does_not_overflow(void **state) {
    (void)state;
    int64_t d = msp_backoff_ms(100, 1000, 60000, 0.999999999);
    assert_true(d >= 500 && d <= 60000);
    assert_int_equal(msp_backoff_ms(63, 1, 60000, 0.0), 0); /* floor of base 1 is 0 */
    d = msp_backoff_ms(62, INT64_MAX / 2, INT64_MAX, 0.5);
    assert_true(d >= INT64_MAX / 4 && d <= INT64_MAX);
    d = msp_backoff_ms(UINT32_MAX, 1000, INT64_MAX, 0.999999999);
    assert_true(d >= 500 && d <= INT64_MAX);
}

static void out_of_contract_inputs_are_safe(void **state) {
    (void)state;
    assert_int_equal(msp_backoff_ms(3, 0, 1000, 0.5), 0);
    assert_int_equal(msp_backoff_ms(3, -5, 1000, 0.5), 0);
    assert_int_equal(msp_backoff_ms(3, 1000, 0, 0.5), 0);
    assert_int_equal(msp_backoff_ms(0, 1000, 60000, 1.5), 500);  /* treated as 0 */
    assert_int_equal(msp_backoff_ms(0, 1000, 60000, -0.1), 500);
    assert_int_equal(msp_backoff_ms(0, 1000, 60000, NAN), 500);
}

static void rand01_stays_in_unit_interval_and_varies(void **state) {
    (void)state;
    double lo = 1.0, hi = 0.0, sum = 0.0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        double r = msp_rand01();
        assert_true(r >= 0.0 && r < 1.0);
        if (r < lo)
            lo = r;
        if (r > hi)
            hi = r;
        sum += r;
    }
    assert_true(lo < 0.01);
    assert_true(hi > 0.99);
    assert_true(sum / n > 0.45 && sum / n < 0.55);
}

static void retry_after_delta_seconds(void **state) {
    (void)state;
    assert_int_equal(msp_retry_after_ms("120", 0), 120000);
    assert_int_equal(msp_retry_after_ms("0", 0), 0);
    assert_int_equal(msp_retry_after_ms("1.5", 0), 1500);
    assert_int_equal(msp_retry_after_ms("  7 ", 0), 7000);
    assert_int_equal(msp_retry_after_ms("0.0001", 0), 1); /* a minimum wait rounds up */
    assert_int_equal(msp_retry_after_ms("2.250", 0), 2250);
}

static void retry_after_garbage_is_absent(void **state) {
    (void)state;
    assert_int_equal(msp_retry_after_ms("abc", 0), -1);
    assert_int_equal(msp_retry_after_ms(NULL, 0), -1);
    assert_int_equal(msp_retry_after_ms("", 0), -1);
    assert_int_equal(msp_retry_after_ms("   ", 0), -1);
    assert_int_equal(msp_retry_after_ms("-5", 0), -1);
    assert_int_equal(msp_retry_after_ms("12abc", 0), -1);
    assert_int_equal(msp_retry_after_ms("1.", 0), -1);
    assert_int_equal(msp_retry_after_ms("1 2", 0), -1);
    assert_int_equal(msp_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT junk", EXAMPLE_NOW), -1);
    assert_int_equal(msp_retry_after_ms("Wed, 99 Oct 2015 07:28:00 GMT", EXAMPLE_NOW), -1);
}

static void retry_after_huge_delta_saturates(void **state) {
    (void)state;
    int64_t ms = msp_retry_after_ms("99999999999999999999999999", 0);
    assert_true(ms > 0);
}

static void retry_after_http_date_in_future(void **state) {
    (void)state;
    assert_int_equal(msp_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", EXAMPLE_NOW), 30000);
    /* obsolete forms a recipient must still accept */
    assert_int_equal(msp_retry_after_ms("Wednesday, 21-Oct-15 07:28:00 GMT", EXAMPLE_NOW), 30000);
    assert_int_equal(msp_retry_after_ms("Wed Oct 21 07:28:00 2015", EXAMPLE_NOW), 30000);
}

static void retry_after_http_date_in_past_is_zero(void **state) {
    (void)state;
    assert_int_equal(msp_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", EXAMPLE_NOW + 3600), 0);
    assert_int_equal(msp_retry_after_ms("Thu, 01 Jan 1970 00:00:00 GMT", EXAMPLE_NOW), 0);
}

static void clocks_move_forward(void **state) {
    (void)state;
    int64_t m1 = msp_now_ms();
    int64_t w  = msp_wall_ms();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int64_t m2 = msp_now_ms();
    assert_true(m2 - m1 >= 19);
    /* wall clock is epoch-based: later than 2020-01-01 */
    assert_true(w > (int64_t)1577836800 * 1000);
    assert_true(labs((long)(w / 1000 - (int64_t)time(NULL))) <= 2);
}

static void format_time_is_rfc3339_utc_with_ms(void **state) {
    (void)state;
    char buf[32];
    /* 2026-11-23T21:45:00Z = 1795470300 */
    msp_format_time((int64_t)1795470300 * 1000 + 123, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-23T21:45:00.123Z");
    msp_format_time(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    msp_format_time(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    /* exactly the documented minimum size */
    char small[25];
    msp_format_time((int64_t)1795470300 * 1000 + 7, small, sizeof(small));
    assert_string_equal(small, "2026-11-23T21:45:00.007Z");
}

/* The digits written directly are what snprintf writes, across years 0 to 9999 and beyond it
 * (snprintf again), and a buffer too small for the whole text is cut as snprintf cuts it. */
static void format_time_matches_snprintf_everywhere(void **state) {
    (void)state;
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t ms = (int64_t)(x % 400000000000000ULL) - 62167219200000LL; /* 0000 .. ~12600 */
        time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        struct tm tm;
        char want[64], got[64], cut[20], cut_want[20];
        assert_non_null(gmtime_r(&secs, &tm));
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms - (int64_t)secs * 1000));
        msp_format_time(ms, got, sizeof(got));
        assert_string_equal(got, want);
        memcpy(cut_want, want, sizeof(cut_want) - 1); /* want is longer */
        cut_want[sizeof(cut_want) - 1] = '\0';
        msp_format_time(ms, cut, sizeof(cut));
        assert_string_equal(cut, cut_want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(delay_doubles_with_each_attempt_at_top_of_range),
        cmocka_unit_test(delay_follows_documented_formula),
        cmocka_unit_test(delay_never_exceeds_cap),
        cmocka_unit_test(retry_is_never_immediate_floor_is_half_base),
        cmocka_unit_test(huge_attempt_does_not_overflow),
        cmocka_unit_test(out_of_contract_inputs_are_safe),
        cmocka_unit_test(rand01_stays_in_unit_interval_and_varies),
        cmocka_unit_test(retry_after_delta_seconds),
        cmocka_unit_test(retry_after_garbage_is_absent),
        cmocka_unit_test(retry_after_huge_delta_saturates),
        cmocka_unit_test(retry_after_http_date_in_future),
        cmocka_unit_test(retry_after_http_date_in_past_is_zero),
        cmocka_unit_test(clocks_move_forward),
        cmocka_unit_test(format_time_is_rfc3339_utc_with_ms),
        cmocka_unit_test(format_time_matches_snprintf_everywhere),
    };
    return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
