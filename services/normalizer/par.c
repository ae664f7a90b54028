/*
 * par.c — see par.h. One mutex and two condition variables: the caller publishes a job (a new
 * generation), the helpers run their shares and count down, the last one wakes the caller.
 */
#include "par.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <mspsync/json_dump.h>

#include "json_arena.h"

typedef struct helper_s {
    nz_par_t *pool;
    int index; /* share index: 1 .. threads-1 (the caller runs share 0) */
    pthread_t tid;
} helper_t;

struct nz_par_s {
    int threads;
    int started; /* helpers running */
    helper_t *helpers;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen; /* one per job */
    int pending;       /* helpers still running the current job */
    int stop;
    nz_par_fn *fn;
    void *arg;
    size_t n;
};

/* Share i of [0, n) split in `threads` contiguous parts. */
static void share(size_t n, int threads, int i, size_t *from, size_t *to) {
    *from = n * (size_t)i / (size_t)threads;
    *to = n * (size_t)(i + 1) / (size_t)threads;
}

static void *helper_main(void *arg) {
    helper_t *h = arg;
    nz_par_t *p = h->pool;
    unsigned long seen = 0;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        nz_par_fn *fn = p->fn;
        void *farg = p->arg;
        size_t from, to;
        share(p->n, p->threads, h->index, &from, &to);
        pthread_mutex_unlock(&p->mu);

        if (from < to)
            fn(farg, from, to);

        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    nz_json_arena_destroy();      /* this thread's arena */
    msp_json_dumps_thread_done(); /* and its dump buffer */
    return NULL;
}

nz_par_t *nz_par_new(int threads) {
    nz_par_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = threads < 1 ? 1 : threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    if (p->threads > 1) {
        p->helpers = calloc((size_t)p->threads - 1, sizeof *p->helpers);
        if (!p->helpers) {
            nz_par_destroy(p);
            errno = ENOMEM;
            return NULL;
        }
    }
    for (int i = 0; i < p->threads - 1; i++) {
        helper_t *h = &p->helpers[i];
        h->pool = p;
        h->index = i + 1;
        int err = pthread_create(&h->tid, NULL, helper_main, h);
        if (err) {
            nz_par_destroy(p);
            errno = err;
            return NULL;
        }
        p->started++;
    }
    return p;
}

int nz_par_threads(const nz_par_t *p) { return p ? p->threads : 1; }

void nz_par_run(nz_par_t *p, size_t n, size_t min_share, nz_par_fn *fn, void *arg) {
    if (!p || p->threads == 1 || n < min_share * (size_t)p->threads) {
        if (n)
            fn(arg, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->pending = p->started;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);

    size_t from, to;
    share(n, p->threads, 0, &from, &to);
    fn(arg, from, to);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void nz_par_destroy(nz_par_t *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->helpers[i].tid, NULL);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->helpers);
    free(p);
}
