/*
 * json_arena.h — a per-batch arena for jansson's allocations in the normalizer.
 *
 * A batch parses hundreds of vendor payloads into jansson trees, builds canonical records and
 * dumps them; all of it dies together when the batch is committed. With glibc malloc, freeing
 * those hundreds of thousands of small nodes one by one cost about a fifth of the normalizer's
 * time (perf, docs/benchmarks.md). The arena hands out memory by bumping a pointer and frees
 * it all at once in nz_json_arena_reset().
 *
 * Each thread has an arena of its own (the prepare helpers of par.h allocate in theirs); reset
 * and destroy act on the calling thread's arena. Freeing is a no-op, so a tree made on one
 * thread may be released on another.
 *
 * Invariant the caller keeps: no jansson value or json_dumps() string outlives the batch in
 * which it was made — reset only when every item is cleared and every produced payload is
 * acknowledged. Under AddressSanitizer the reset poisons the memory, so a use after reset is
 * reported like a use after free.
 */
#ifndef NZ_JSON_ARENA_H
#define NZ_JSON_ARENA_H

#include <stddef.h>

/** @brief Route jansson's allocations to the arena (call once, before any jansson use). */
void nz_json_arena_enable(void);

/** @brief 1 when enabled. */
int nz_json_arena_enabled(void);

/** @brief Forget every allocation (keeps up to 16 MiB of blocks for the next batch). */
void nz_json_arena_reset(void);

/** @brief Free every block (at exit). */
void nz_json_arena_destroy(void);

/** @brief Bytes handed out since the last reset. */
size_t nz_json_arena_used(void);

#endif
