/*
 * test_par.c — the normalizer's prepare threads (services/normalizer/par.c).
 *
 * What the batch loop relies on: every item of [0, n) is run exactly once, whatever n and the
 * thread count; small batches stay on the caller; a run returns only after every share is done;
 * helpers really run shares (a batch of a few thousand items is spread); a helper's JSON arena
 * (json_arena.c, per thread) is emptied only when the caller asks, between runs; and a batch
 * made in one generation of the arenas outlives the next batch made in the other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json_arena.h"
#include "par.h"

typedef struct {
    atomic_int *runs; /* per item: times run */
    pthread_t *who;   /* per item: the thread that ran it */
    size_t *arena_at; /* per item: arena bytes in use on its thread when it ran */
    int alloc;        /* make a jansson value per item (in the running thread's arena) */
} job_t;

static void run_items(void *arg, size_t from, size_t to) {
    job_t *j = arg;
    for (size_t i = from; i < to; i++) {
        atomic_fetch_add(&j->runs[i], 1);
        j->who[i] = pthread_self();
        if (j->arena_at)
            j->arena_at[i] = nz_json_arena_used();
        if (j->alloc) {
            json_t *v = json_pack("{s:i,s:s}", "i", (int)i, "s", "payload of some length");
            json_decref(v);
        }
    }
}

static job_t job_new(size_t n) {
    job_t j = {calloc(n, sizeof(atomic_int)), calloc(n, sizeof(pthread_t)),
               calloc(n, sizeof(size_t)), 0};
    assert_non_null(j.runs);
    assert_non_null(j.who);
    assert_non_null(j.arena_at);
    return j;
}

static void job_free(job_t *j) {
    free(j->runs);
    free(j->who);
    free(j->arena_at);
}

static void test_every_item_once(void **state) {
    (void)state;
    static const int threads[] = {1, 2, 3, 5};
    static const size_t sizes[] = {0, 1, 2, 7, 63, 64, 65, 500, 1001};
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        nz_par_t *p = nz_par_new(threads[t]);
        assert_non_null(p);
        assert_int_equal(nz_par_threads(p), threads[t]);
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (int round = 0; round < 3; round++) {
                size_t n = sizes[s];
                job_t j = job_new(n + 1);
                nz_par_run(p, n, 1, run_items, &j);
                for (size_t i = 0; i < n; i++)
                    assert_int_equal(atomic_load(&j.runs[i]), 1);
                assert_int_equal(atomic_load(&j.runs[n]), 0);
                job_free(&j);
            }
        nz_par_destroy(p);
    }
}

static size_t threads_seen(const job_t *j, size_t n) {
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = pthread_equal(j->who[k], j->who[i]);
        distinct += !seen;
    }
    return distinct;
}

static void test_small_batches_stay_on_the_caller(void **state) {
    (void)state;
    nz_par_t *p = nz_par_new(2);
    assert_non_null(p);
    job_t j = job_new(63);
    nz_par_run(p, 63, 32, run_items, &j); /* 63 < 32 per thread × 2 */
    for (size_t i = 0; i < 63; i++)
        assert_true(pthread_equal(j.who[i], pthread_self()));
    job_free(&j);

    j = job_new(4000);
    nz_par_run(p, 4000, 32, run_items, &j);
    assert_int_equal(threads_seen(&j, 4000), 2);
    assert_true(pthread_equal(j.who[0], pthread_self())); /* share 0 is the caller's */
    assert_false(pthread_equal(j.who[3999], pthread_self()));
    job_free(&j);
    nz_par_destroy(p);
}

static void test_helper_arena_is_emptied_only_when_asked(void **state) {
    (void)state;
    nz_json_arena_enable();
    nz_par_t *p = nz_par_new(2);
    assert_non_null(p);
    size_t n = 1000, last = n - 1; /* the last item is in the helper's share */

    job_t j = job_new(n);
    j.alloc = 1;
    nz_par_run(p, n, 1, run_items, &j);
    size_t helper_used = j.arena_at[last];
    assert_true(helper_used > 0);       /* the helper allocated in its own arena... */
    assert_int_equal(j.arena_at[0], 0); /* ...not in the caller's (empty before) */
    job_free(&j);

    j = job_new(n);
    j.alloc = 1;
    nz_par_run(p, n, 1, run_items, &j);
    assert_true(j.arena_at[n / 2] > helper_used); /* not asked: the helper's arena kept growing */
    job_free(&j);

    nz_json_arena_reset(); /* the caller's call empties the idle helper's arena too */
    j = job_new(n);
    j.alloc = 1;
    nz_par_run(p, n, 1, run_items, &j);
    assert_int_equal(j.arena_at[n / 2], 0);
    assert_int_equal(j.arena_at[0], 0);
    job_free(&j);

    nz_par_destroy(p);
    nz_json_arena_reset();
}

/* One string per item, made on the thread that runs it (in that thread's arena). */
typedef struct {
    char **s;
    int tag;
} strings_t;

static void make_strings(void *arg, size_t from, size_t to) {
    strings_t *j = arg;
    for (size_t i = from; i < to; i++) {
        json_t *v = json_pack("{s:i,s:i}", "tag", j->tag, "i", (int)i);
        j->s[i] = json_dumps(v, JSON_COMPACT);
        json_decref(v);
    }
}

static void assert_strings(const strings_t *j, size_t n) {
    char want[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(want, sizeof want, "{\"tag\":%d,\"i\":%zu}", j->tag, i);
        assert_string_equal(j->s[i], want);
    }
}

/* The deferred commit's use: batch A's strings stay intact while batch B is made in the other
 * generation; releasing A's generation leaves B's intact, on the caller and on the helper. */
static void test_generations_keep_the_batch_in_flight(void **state) {
    (void)state;
    nz_json_arena_enable();
    nz_par_t *p = nz_par_new(2);
    assert_non_null(p);
    size_t n = 2000;
    strings_t a = {calloc(n, sizeof(char *)), 1}, b = {calloc(n, sizeof(char *)), 2};
    strings_t c = {calloc(n, sizeof(char *)), 3};
    assert_non_null(a.s);
    assert_non_null(b.s);
    assert_non_null(c.s);

    nz_par_run(p, n, 1, make_strings, &a);
    nz_json_arena_next();
    nz_par_run(p, n, 1, make_strings, &b); /* would reuse A's memory if it were emptied */
    assert_strings(&a, n);
    assert_strings(&b, n);
    nz_json_arena_release(); /* A's generation */
    nz_json_arena_next();    /* C takes the emptied one: B's must stay */
    nz_par_run(p, n, 1, make_strings, &c);
    assert_strings(&b, n);
    assert_strings(&c, n);
    nz_json_arena_release();
    assert_strings(&c, n);

    free(a.s);
    free(b.s);
    free(c.s);
    nz_par_destroy(p);
    nz_json_arena_reset();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_item_once),
        cmocka_unit_test(test_small_batches_stay_on_the_caller),
        cmocka_unit_test(test_helper_arena_is_emptied_only_when_asked),
        cmocka_unit_test(test_generations_keep_the_batch_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
