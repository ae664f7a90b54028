/*
 * task.h — one piece of blocking work run once on a thread of its own, off a service's event
 * loop, which polls it from its timers.
 *
 * A rebuild after a loss of Redis (billing's replay of usage.events, the ticket-creator's scan of
 * incidents.held) reads a whole topic: seconds to minutes. Run on the loop, it would stop
 * /healthz, /metrics and the service's timers for that long. The loop starts it here instead and
 * goes on; each turn of its timer asks msp_task_reap whether it ended. The work uses nothing the
 * loop uses (its own Redis connection, its own Kafka reader); what it hands back it writes into
 * its argument before it returns, which the loop reads only after msp_task_reap said 1 (the join
 * orders the memory).
 *
 * Not thread-safe itself: the loop alone calls these functions.
 */
#ifndef MSPSYNC_TASK_H
#define MSPSYNC_TASK_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct msp_task_s {
    pthread_t th;
    int started;      /* a thread was made and not joined yet */
    atomic_int ended; /* set by the thread as its last act */
    void (*fn)(void *arg);
    void *arg;
} msp_task_t;

/**
 * @brief Run fn(arg) on a new thread unless a run of t has not been reaped yet. arg is borrowed:
 * it must live until msp_task_reap returns 1 or msp_task_join returns.
 * @returns 1 started, 0 one is running already (nothing done), -1 the thread could not be made.
 */
int msp_task_start(msp_task_t *t, void (*fn)(void *arg), void *arg);

/** @brief Whether a run was started and not reaped yet (it may have ended). */
int msp_task_busy(const msp_task_t *t);

/** @brief Join the run if it ended. @returns 1 joined now (its results may be read), 0 it is still
 * running or none was started. */
int msp_task_reap(msp_task_t *t);

/** @brief Wait for the run to end and join it (stopping: the work polls the lifecycle flag or
 * its own). NULL-safe; nothing when none was started. */
void msp_task_join(msp_task_t *t);

#endif
