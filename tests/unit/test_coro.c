/*
 * test_coro.c — the promises of mspsync/coro.h: a started function runs at once and until it
 * yields; resume continues it where it stopped; a pool never runs more than max at once and
 * reuses a finished coroutine's stack; a coroutine that resumes another gets control back when
 * that one yields; deep frames fit the stack; self() tells where the code runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mspsync/coro.h"

typedef struct {
    int steps;
    msp_coro_t *self;
    char trail[64];
} job_t;

static void mark(job_t *j, char c) {
    size_t n = strlen(j->trail);
    j->trail[n] = c;
    j->trail[n + 1] = '\0';
}

static void two_yields(void *arg) {
    job_t *j = arg;
    j->self = msp_coro_self();
    mark(j, 'a');
    msp_coro_yield();
    mark(j, 'b');
    msp_coro_yield();
    mark(j, 'c');
}

static void test_start_runs_until_yield_and_resume_continues(void **state) {
    (void)state;
    msp_coro_pool_t *p = msp_coro_pool_new(0, 4);
    assert_non_null(p);
    job_t j = {0};
    assert_null(msp_coro_self());
    assert_int_equal(msp_coro_start(p, two_yields, &j), 0);
    assert_string_equal(j.trail, "a");
    assert_non_null(j.self);
    assert_null(msp_coro_self()); /* back on the thread's own stack */
    assert_int_equal(msp_coro_busy(p), 1);
    msp_coro_resume(j.self);
    assert_string_equal(j.trail, "ab");
    msp_coro_resume(j.self);
    assert_string_equal(j.trail, "abc");
    assert_int_equal(msp_coro_busy(p), 0);
    msp_coro_resume(j.self); /* finished: ignored, nothing runs */
    assert_string_equal(j.trail, "abc");
    msp_coro_pool_free(p);
}

static void test_max_busy_then_reuse(void **state) {
    (void)state;
    msp_coro_pool_t *p = msp_coro_pool_new(64 * 1024, 3);
    job_t j[4] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(msp_coro_start(p, two_yields, &j[i]), 0);
    assert_int_equal(msp_coro_busy(p), 3);
    assert_int_equal(msp_coro_start(p, two_yields, &j[3]), -1);
    assert_string_equal(j[3].trail, ""); /* refused: did not run */
    msp_coro_resume(j[1].self);
    msp_coro_resume(j[1].self);
    assert_string_equal(j[1].trail, "abc");
    assert_int_equal(msp_coro_busy(p), 2);
    assert_int_equal(msp_coro_start(p, two_yields, &j[3]), 0);
    assert_ptr_equal(j[3].self, j[1].self); /* the finished one, reused */
    for (int i = 0; i < 4; i++)
        if (i != 1) {
            msp_coro_resume(j[i].self);
            msp_coro_resume(j[i].self);
            assert_string_equal(j[i].trail, "abc");
        }
    assert_int_equal(msp_coro_busy(p), 0);
    msp_coro_pool_free(p);
}

typedef struct {
    job_t *inner;
    char trail[64];
    msp_coro_t *self;
} outer_t;

static void resumes_another(void *arg) {
    outer_t *o = arg;
    o->self = msp_coro_self();
    strcat(o->trail, "x");
    msp_coro_resume(o->inner->self); /* inner: 'b', then yields back to here */
    strcat(o->trail, "y");
    msp_coro_yield();
    strcat(o->trail, "z");
}

static void test_a_coroutine_resumes_another(void **state) {
    (void)state;
    msp_coro_pool_t *p = msp_coro_pool_new(0, 2);
    job_t in = {0};
    outer_t out = {&in, "", NULL};
    assert_int_equal(msp_coro_start(p, two_yields, &in), 0);
    assert_int_equal(msp_coro_start(p, resumes_another, &out), 0);
    assert_string_equal(in.trail, "ab");
    assert_string_equal(out.trail, "xy"); /* control came back to the resumer, then it yielded */
    msp_coro_resume(in.self);
    assert_string_equal(in.trail, "abc");
    assert_int_equal(msp_coro_busy(p), 1); /* the outer one, suspended after "y" */
    /* the idle one is reused; the outer one is found again through a job that records it */
    job_t again = {0};
    assert_int_equal(msp_coro_start(p, two_yields, &again), 0);
    assert_ptr_equal(again.self, in.self);
    msp_coro_resume(again.self);
    msp_coro_resume(again.self);
    assert_string_equal(again.trail, "abc");
    assert_int_equal(msp_coro_busy(p), 1);
    msp_coro_resume(out.self);
    assert_string_equal(out.trail, "xyz");
    assert_int_equal(msp_coro_busy(p), 0);
    msp_coro_pool_free(p);
}

/* Deep frames: ~160 KiB of locals over 40 calls fit a 256 KiB stack, across switches. */
static msp_coro_t *deep_self;

static int deep(int n) {
    volatile char buf[4096];
    memset((char *)buf, n, sizeof(buf));
    if (n == 0)
        return buf[100];
    if (n % 8 == 0)
        msp_coro_yield();
    return deep(n - 1) + buf[4095];
}

static void deep_job(void *arg) {
    deep_self = msp_coro_self();
    *(int *)arg = deep(40);
}

static void test_deep_frames_fit_and_survive_switches(void **state) {
    (void)state;
    msp_coro_pool_t *p = msp_coro_pool_new(256 * 1024, 1);
    int sum = -1;
    assert_int_equal(msp_coro_start(p, deep_job, &sum), 0);
    for (int i = 0; i < 5; i++) { /* yields at n = 40, 32, 24, 16, 8 */
        assert_int_equal(sum, -1);
        assert_int_equal(msp_coro_busy(p), 1);
        assert_int_equal(msp_coro_start(p, deep_job, &sum), -1); /* the only one is busy */
        msp_coro_resume(deep_self);
    }
    assert_int_equal(sum, 40 * 41 / 2); /* buf[4095] of each level n = n */
    assert_int_equal(msp_coro_busy(p), 0);
    msp_coro_pool_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_runs_until_yield_and_resume_continues),
        cmocka_unit_test(test_max_busy_then_reuse),
        cmocka_unit_test(test_a_coroutine_resumes_another),
        cmocka_unit_test(test_deep_frames_fit_and_survive_switches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
