/*
 * coro.c — coroutines on ucontext (see coro.h).
 *
 * A coroutine's stack runs trampoline(), a loop: run the function, park on the pool's idle list,
 * switch out; the next start switches back in and the loop takes the new function. So a context
 * is made once per coroutine (makecontext) and every later start or resume is one swapcontext.
 *
 * Every switch is announced to AddressSanitizer in pairs: the side that leaves calls
 * __sanitizer_start_switch_fiber with the bounds of the stack it goes to, the side that arrives
 * calls __sanitizer_finish_switch_fiber, which also reports the stack it came from (the resumer's:
 * where a yield goes back to).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mspsync/coro.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "mspsync/log.h"

#if defined(__SANITIZE_ADDRESS__)
#define CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO_ASAN 1
#endif
#endif
#ifdef CORO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define DEFAULT_STACK (1024 * 1024)
#else
#define DEFAULT_STACK (256 * 1024)
#endif

struct msp_coro_s {
    msp_coro_pool_t *pool;
    ucontext_t ctx;  /* its own, while switched out */
    ucontext_t back; /* its resumer's, while it runs */
    char *map;       /* the mapping: guard page, then the stack */
    size_t map_size;
    char *stack;
    size_t stack_size;
    msp_coro_fn *fn;
    void *arg;
    msp_coro_t *resumer; /* NULL: the thread's own stack */
    msp_coro_t *next_idle;
#ifdef CORO_ASAN
    void *fake;              /* its fake stack while switched out */
    const void *back_bottom; /* the resumer's stack, as the sanitizer reported it */
    size_t back_size;
#endif
};

struct msp_coro_pool_s {
    size_t stack_size;
    int max, made, busy;
    msp_coro_t *idle;
    msp_coro_t **all;
};

static __thread msp_coro_t *current;
static __thread msp_coro_t *starting; /* handed to trampoline on a coroutine's first entry */

/* Inside c, just after a switch brought the thread here. */
static void arrived(msp_coro_t *c) {
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(c->fake, &c->back_bottom, &c->back_size);
#else
    (void)c;
#endif
}

/* From inside c back to its resumer; returns when c is resumed again. */
static void switch_out(msp_coro_t *c) {
#ifdef CORO_ASAN
    __sanitizer_start_switch_fiber(&c->fake, c->back_bottom, c->back_size);
#endif
    swapcontext(&c->ctx, &c->back);
    arrived(c);
}

/* From the running code (a coroutine or the thread's stack) into c, until c switches out. */
static void switch_in(msp_coro_t *c) {
    msp_coro_t *prev = current;
    c->resumer = prev;
    current = c;
#ifdef CORO_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, c->stack, c->stack_size);
#endif
    swapcontext(&c->back, &c->ctx);
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    current = prev;
}

static void trampoline(void) {
    msp_coro_t *c = starting;
    arrived(c);
    for (;;) {
        c->fn(c->arg);
        c->fn = NULL;
        c->arg = NULL;
        msp_coro_pool_t *p = c->pool;
        p->busy--;
        c->next_idle = p->idle;
        p->idle = c;
        switch_out(c);
    }
}

static void coro_unmap(msp_coro_t *c) {
#ifdef CORO_ASAN
    /* the parked trampoline's frame left poisoned shadow: not for whatever maps here next */
    __asan_unpoison_memory_region(c->stack, c->stack_size);
#endif
    munmap(c->map, c->map_size);
}

/* A fresh context on c's stack that enters trampoline() (apart: getcontext returns twice for
 * the compiler, which then warns of every local of its caller). */
static __attribute__((noinline)) int ctx_make(msp_coro_t *c) {
    if (getcontext(&c->ctx) != 0)
        return -1;
    c->ctx.uc_stack.ss_sp = c->stack;
    c->ctx.uc_stack.ss_size = c->stack_size;
    c->ctx.uc_link = NULL;
    makecontext(&c->ctx, trampoline, 0);
    return 0;
}

static msp_coro_t *coro_new(msp_coro_pool_t *p) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    msp_coro_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->pool = p;
    c->stack_size = p->stack_size;
    c->map_size = p->stack_size + page;
    c->map = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (c->map == MAP_FAILED) {
        free(c);
        return NULL;
    }
    c->stack = c->map + page;
    if (mprotect(c->map, page, PROT_NONE) != 0 || ctx_make(c) != 0) {
        munmap(c->map, c->map_size);
        free(c);
        return NULL;
    }
    p->all[p->made++] = c;
    return c;
}

msp_coro_pool_t *msp_coro_pool_new(size_t stack_size, int max) {
    if (max < 1)
        return NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    msp_coro_pool_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->all = calloc((size_t)max, sizeof(*p->all)))) {
        free(p);
        return NULL;
    }
    if (stack_size == 0)
        stack_size = DEFAULT_STACK;
    p->stack_size = (stack_size + page - 1) / page * page;
    p->max = max;
    return p;
}

void msp_coro_pool_free(msp_coro_pool_t *p) {
    if (!p)
        return;
    if (p->busy)
        MSP_ERROR("coro.busy", NULL, "%d coroutine(s) still suspended; their stacks are kept",
                  p->busy);
    for (int i = 0; i < p->made; i++) {
        msp_coro_t *c = p->all[i];
        if (c->fn) /* suspended: its frames may still be pointed at */
            continue;
        coro_unmap(c);
        free(c);
    }
    free(p->all);
    free(p);
}

int msp_coro_start(msp_coro_pool_t *p, msp_coro_fn *fn, void *arg) {
    msp_coro_t *c = p->idle;
    if (c) {
        p->idle = c->next_idle;
    } else if (p->made >= p->max || !(c = coro_new(p))) {
        return -1;
    }
    c->next_idle = NULL;
    c->fn = fn;
    c->arg = arg;
    p->busy++;
    starting = c;
    switch_in(c);
    return 0;
}

msp_coro_t *msp_coro_self(void) { return current; }

void msp_coro_yield(void) {
    msp_coro_t *c = current;
    if (!c) {
        MSP_ERROR("coro.yield", NULL, "yield outside a coroutine (ignored)");
        return;
    }
    switch_out(c);
}

void msp_coro_resume(msp_coro_t *c) {
    int running = !c || !c->fn;
    for (msp_coro_t *r = current; r && !running; r = r->resumer)
        running = r == c; /* itself, or one of the chain that resumed it */
    if (running) {
        MSP_ERROR("coro.resume", NULL, "resume of a coroutine that is running or idle (ignored)");
        return;
    }
    switch_in(c);
}

int msp_coro_busy(const msp_coro_pool_t *p) { return p ? p->busy : 0; }
