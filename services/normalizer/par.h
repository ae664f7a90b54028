/*
 * par.h — run one function over the items of a batch on more than one thread (fork/join).
 *
 * The normalizer's batch loop is single-threaded by design: Redis, Kafka and the inventory are
 * used from one thread, in order. One stage needs none of them: preparing a message (parse the
 * envelope, map the vendor payload, fingerprint the canonical record) is pure CPU, about a
 * quarter of a batch's time (docs/benchmarks.md), and each message is independent of the
 * others. nz_par_run() splits [0, n) into one contiguous share per thread, runs the caller's
 * share on the calling thread and the others on helper threads, and returns when every share
 * is done — so the caller sees the batch exactly as if it had run the loop itself.
 *
 * A share's function must touch only its own items (no metrics, no producing, no Redis): what
 * needs the batch's shared state is done by the caller after nz_par_run() returns.
 *
 * jansson's allocations go to the JSON arena, which is per thread (json_arena.h): a helper's
 * trees live in its own arena. Between two runs the helpers are idle, and the end of a run
 * orders everything they wrote before what the caller does next: that is when the caller may
 * empty or switch every thread's arena (nz_json_arena_reset, _next, _release).
 */
#ifndef NZ_PAR_H
#define NZ_PAR_H

#include <stddef.h>

typedef struct nz_par_s nz_par_t;

/** @brief Run items [from, to) of the caller's batch. */
typedef void nz_par_fn(void *arg, size_t from, size_t to);

/**
 * @brief A pool of threads - 1 helper threads (threads = 1: none; everything runs on the
 * caller). @returns the pool, or NULL when a thread could not be started (errno).
 */
nz_par_t *nz_par_new(int threads);

/** @brief Threads taking part in a run, the caller included. */
int nz_par_threads(const nz_par_t *p);

/**
 * @brief fn over [0, n), split between the threads; returns when all of it has run. Batches
 * smaller than min_share items per thread run on the caller alone (a hand-over costs more than
 * a few items).
 */
void nz_par_run(nz_par_t *p, size_t n, size_t min_share, nz_par_fn *fn, void *arg);

/** @brief Stop and join the helpers (each frees its arena); NULL is fine. */
void nz_par_destroy(nz_par_t *p);

#endif
