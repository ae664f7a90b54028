/*
 * json_arena.c — see json_arena.h. One arena per thread: the batch loop's and each prepare
 * helper's (par.h); jansson's allocator hooks are global, the blocks are thread-local.
 */
#include "json_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_POISON(p, n)   ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define BLOCK_SIZE ((size_t)4 << 20)
#define KEEP_BYTES ((size_t)16 << 20)   /* a batch of 500 assets uses a few MB */
#define ALIGN      16

typedef struct block_s {
    struct block_s *next;
    size_t          size; /* bytes of data[] */
    size_t          used;
    _Alignas(ALIGN) unsigned char data[];
} block_t;

static __thread block_t *blocks; /* this thread's arena, current block first */
static __thread size_t handed;
static int enabled; /* set once, before any helper thread starts */

static void *arena_malloc(size_t n) {
    n = (n + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
    if (n == 0) n = ALIGN;
    if (!blocks || blocks->size - blocks->used < n) {
        /* Reuse a kept block further down the list before asking for a new one. */
        block_t **pp = blocks ? &blocks->next : &blocks;
        block_t *b = NULL;
        for (; *pp; pp = &(*pp)->next) {
            if ((*pp)->used == 0 && (*pp)->size >= n) {
                b = *pp;
                *pp = b->next;
                break;
            }
        }
        if (!b) {
            size_t size = n > BLOCK_SIZE ? n : BLOCK_SIZE;
            b = malloc(sizeof(*b) + size);
            if (!b) return NULL;
            b->size = size;
            b->used = 0;
            ARENA_POISON(b->data, size);
        }
        b->next = blocks;
        blocks = b;
    }
    void *p = blocks->data + blocks->used;
    blocks->used += n;
    handed += n;
    ARENA_UNPOISON(p, n);
    return p;
}

static void arena_free(void *p) {
    (void)p; /* everything goes at the next reset */
}

void nz_json_arena_enable(void) {
    json_set_alloc_funcs(arena_malloc, arena_free);
    enabled = 1;
}

int nz_json_arena_enabled(void) { return enabled; }

size_t nz_json_arena_used(void) { return handed; }

void nz_json_arena_reset(void) {
    size_t kept = 0;
    block_t **pp = &blocks;
    while (*pp) {
        block_t *b = *pp;
        if (kept + b->size <= KEEP_BYTES) {
            kept += b->size;
            b->used = 0;
            ARENA_POISON(b->data, b->size);
            pp = &b->next;
        } else {
            *pp = b->next;
            free(b);
        }
    }
    handed = 0;
}

void nz_json_arena_destroy(void) {
    while (blocks) {
        block_t *b = blocks;
        blocks = b->next;
        free(b);
    }
    handed = 0;
}
