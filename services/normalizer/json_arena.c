/*
 * json_arena.c — see json_arena.h. One arena per thread: the batch loop's and each prepare
 * helper's (par.h); jansson's allocator hooks are global, the blocks are the thread's own. A
 * registry of the arenas lets the batch loop empty or switch all of them at once, while the
 * helpers are idle between two runs (par.h: a run's end orders their writes before it).
 */
#include "json_arena.h"

#include <pthread.h>
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
#define KEEP_BYTES ((size_t)16 << 20) /* per generation: a batch of 500 assets uses a few MB */
#define ALIGN      16

typedef struct block_s {
    struct block_s *next;
    size_t          size; /* bytes of data[] */
    size_t          used;
    _Alignas(ALIGN) unsigned char data[];
} block_t;

/* One thread's arena: two generations of blocks, cur taking the allocations. */
typedef struct arena_s {
    struct arena_s *next; /* the registry of every thread's arena */
    block_t *gen[2];
    int cur;
    size_t handed; /* bytes handed out in gen[cur] since it was last emptied */
} arena_t;

static __thread arena_t *mine;
static arena_t *arenas; /* every thread's, for the calls that act on all of them */
static pthread_mutex_t arenas_mu = PTHREAD_MUTEX_INITIALIZER;
static int enabled; /* set once, before any helper thread starts */

static arena_t *arena_mine(void) {
    if (!mine && (mine = calloc(1, sizeof *mine)) != NULL) {
        pthread_mutex_lock(&arenas_mu);
        mine->next = arenas;
        arenas = mine;
        pthread_mutex_unlock(&arenas_mu);
    }
    return mine;
}

static void *arena_malloc(size_t n) {
    arena_t *a = arena_mine();
    if (!a)
        return NULL;
    block_t **blocks = &a->gen[a->cur];
    n = (n + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
    if (n == 0) n = ALIGN;
    if (!*blocks || (*blocks)->size - (*blocks)->used < n) {
        /* Reuse a kept block further down the list before asking for a new one. */
        block_t **pp = *blocks ? &(*blocks)->next : blocks;
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
        b->next = *blocks;
        *blocks = b;
    }
    void *p = (*blocks)->data + (*blocks)->used;
    (*blocks)->used += n;
    a->handed += n;
    ARENA_UNPOISON(p, n);
    return p;
}

static void arena_free(void *p) { (void)p; /* everything goes when its generation is emptied */ }

void nz_json_arena_enable(void) {
    json_set_alloc_funcs(arena_malloc, arena_free);
    enabled = 1;
}

int nz_json_arena_enabled(void) { return enabled; }

size_t nz_json_arena_used(void) { return mine ? mine->handed : 0; }

/* Forget every allocation of one generation, keeping up to KEEP_BYTES of its blocks. */
static void gen_empty(block_t **gen) {
    size_t kept = 0;
    block_t **pp = gen;
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
}

void nz_json_arena_reset(void) {
    pthread_mutex_lock(&arenas_mu);
    for (arena_t *a = arenas; a; a = a->next) {
        gen_empty(&a->gen[0]);
        gen_empty(&a->gen[1]);
        a->handed = 0;
    }
    pthread_mutex_unlock(&arenas_mu);
}

void nz_json_arena_next(void) {
    pthread_mutex_lock(&arenas_mu);
    for (arena_t *a = arenas; a; a = a->next) {
        a->cur ^= 1;
        a->handed = 0;
    }
    pthread_mutex_unlock(&arenas_mu);
}

void nz_json_arena_release(void) {
    pthread_mutex_lock(&arenas_mu);
    for (arena_t *a = arenas; a; a = a->next)
        gen_empty(&a->gen[a->cur ^ 1]);
    pthread_mutex_unlock(&arenas_mu);
}

static void gen_free(block_t **gen) {
    while (*gen) {
        block_t *b = *gen;
        *gen = b->next;
        free(b);
    }
}

void nz_json_arena_destroy(void) {
    if (!mine)
        return;
    pthread_mutex_lock(&arenas_mu);
    for (arena_t **pp = &arenas; *pp; pp = &(*pp)->next)
        if (*pp == mine) {
            *pp = mine->next;
            break;
        }
    pthread_mutex_unlock(&arenas_mu);
    gen_free(&mine->gen[0]);
    gen_free(&mine->gen[1]);
    free(mine);
    mine = NULL;
}
