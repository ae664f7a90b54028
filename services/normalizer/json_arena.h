/*
 * json_arena.h — a per-batch arena for jansson's allocations in the normalizer.
 *
 * A batch parses hundreds of vendor payloads into jansson trees, builds canonical records and
 * dumps them; all of it dies together when the batch is committed. With glibc malloc, freeing
 * those hundreds of thousands of small nodes one by one cost about a fifth of the normalizer's
 * time (perf, docs/benchmarks.md). The arena hands out memory by bumping a pointer and frees
 * it all at once in nz_json_arena_reset().
 *
 * Each thread has an arena of its own (the prepare helpers of par.h allocate in theirs).
 * Freeing is a no-op, so a tree made on one thread may be released on another.
 *
 * Two generations: a batch whose commit waits for Kafka (normalizer.c, "the deferred commit")
 * keeps its trees and payloads in one while the next batch is prepared in the other;
 * nz_json_arena_next() switches every thread to the other generation, nz_json_arena_release()
 * empties the one not in use. These and nz_json_arena_reset() act on every thread's arena: call
 * them from the batch loop, never while a nz_par_run() is in progress.
 *
 * Invariant the caller keeps: no jansson value or json_dumps() string outlives its generation
 * — empty one only when every tree in it is done with and every payload made in it is
 * acknowledged. Under AddressSanitizer emptying poisons the memory, so a use after it is
 * reported like a use after free.
 */
#ifndef NZ_JSON_ARENA_H
#define NZ_JSON_ARENA_H

#include <stddef.h>

/** @brief Route jansson's allocations to the arena (call once, before any jansson use). */
void nz_json_arena_enable(void);

/** @brief 1 when enabled. */
int nz_json_arena_enabled(void);

/** @brief Every thread: forget every allocation of both generations (keeps up to 16 MiB of
 * blocks per generation for the batches to come). */
void nz_json_arena_reset(void);

/** @brief Every thread: allocate in the other generation from now on (it must be empty). */
void nz_json_arena_next(void);

/** @brief Every thread: forget every allocation of the generation not in use. */
void nz_json_arena_release(void);

/** @brief Free the calling thread's arena (at its exit). */
void nz_json_arena_destroy(void);

/** @brief Bytes the calling thread was handed in its generation in use since it was emptied
 * or switched to. */
size_t nz_json_arena_used(void);

#endif
