/*
 * coro.h — coroutines on one thread: code written as a sequence of blocking steps that waits
 * without holding its thread.
 *
 * A coroutine runs a function on a stack of its own. Inside it, a step that would block (a Redis
 * command) starts the work asynchronously and calls msp_coro_yield(): the thread goes back to
 * whoever resumed the coroutine (the event loop), and the callback that carries the answer calls
 * msp_coro_resume() to continue it from there. The gateway runs each admin request so, which lets
 * ~120 synchronous Redis calls in its handlers wait on the async connection (aredis.h) while the
 * loop serves webhooks, /healthz and other requests (services/gateway/admin.c).
 *
 *   - A pool owns the coroutines, made on demand up to max and then reused: a finished one parks
 *     in its own stack's loop and takes the next function without a new context. Each stack is
 *     an mmap with a guard page below it (an overflow faults instead of corrupting memory); pages
 *     are only committed as they are touched.
 *   - msp_coro_start() runs fn(arg) at once, until it yields or returns. A coroutine may resume
 *     another (it becomes that one's resumer); a coroutine never resumes itself.
 *   - Single-threaded: a pool, its coroutines and every call here belong to one thread.
 *   - AddressSanitizer is told of every stack switch (__sanitizer_start/finish_switch_fiber), so
 *     sanitized builds check coroutine stacks as any other.
 */
#ifndef MSPSYNC_CORO_H
#define MSPSYNC_CORO_H

#include <stddef.h>

typedef struct msp_coro_s msp_coro_t;
typedef struct msp_coro_pool_s msp_coro_pool_t;
typedef void(msp_coro_fn)(void *arg);

/**
 * @brief A pool of at most max coroutines with stacks of stack_size bytes (rounded up to pages;
 * 0 = 256 KiB, and four times that under AddressSanitizer, whose frames are larger).
 * @returns the pool, or NULL when out of memory or max < 1.
 */
msp_coro_pool_t *msp_coro_pool_new(size_t stack_size, int max);

/** @brief Free the pool and its stacks. Every coroutine must have returned. NULL-safe. */
void msp_coro_pool_free(msp_coro_pool_t *p);

/**
 * @brief Run fn(arg) on a free coroutine now, until it yields or returns.
 * @returns 0 started; -1 every coroutine of the pool is busy (max reached) or no stack could be
 * mapped: fn did not run.
 */
int msp_coro_start(msp_coro_pool_t *p, msp_coro_fn *fn, void *arg);

/** @brief The coroutine running now, NULL on the thread's own stack. */
msp_coro_t *msp_coro_self(void);

/** @brief Suspend the running coroutine; its resumer goes on. Only inside a coroutine. */
void msp_coro_yield(void);

/** @brief Continue c (suspended in msp_coro_yield) until it yields again or returns. */
void msp_coro_resume(msp_coro_t *c);

/** @brief Coroutines running or suspended (started and not returned). */
int msp_coro_busy(const msp_coro_pool_t *p);

#endif
