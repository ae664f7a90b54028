/*
 * lifecycle.h — start-up and stop for every long-running service: the SIGINT/SIGTERM flag and
 * start-up waits that a signal interrupts.
 *
 * A container runs the service as PID 1, where the kernel applies no default action to SIGTERM:
 * a signal nobody handles is ignored and the runtime SIGKILLs the process after its stop timeout.
 * So every service installs these handlers first, before it touches Kafka or Redis, and every
 * start-up wait (topic creation, metadata, Redis) runs in slices of at most ~100 ms that check
 * the flag and run the service's event loop once, so that /healthz answers and a stop request
 * is honoured within a fraction of a second at any moment.
 *
 * The handler only clears a flag (async-signal-safe); event loops notice it on their tick.
 */
#ifndef MSPSYNC_LIFECYCLE_H
#define MSPSYNC_LIFECYCLE_H

#include <signal.h>

struct event_base;

/**
 * @brief Install the SIGINT/SIGTERM handlers (they clear the run flag) and ignore SIGPIPE.
 * Call first in main, right after reading the configuration.
 */
void msp_lifecycle_signals(void);

/** @brief 1 until SIGINT/SIGTERM arrived (or msp_lifecycle_stop), then 0. */
int msp_lifecycle_running(void);

/** @brief The run flag itself (borrowed, static), for code that takes a flag pointer. */
volatile sig_atomic_t *msp_lifecycle_run_flag(void);

/** @brief Clear the run flag as a signal would (a fatal error, tests). */
void msp_lifecycle_stop(void);

/**
 * @brief Wait ms while running base (may be NULL) without blocking, in 50 ms slices.
 * @returns 0 after ms, -1 as soon as the run flag is cleared.
 */
int msp_lifecycle_wait(struct event_base *base, int ms);

/**
 * @brief Create the topics (msp_kafka_ensure_topics), retrying with backoff (1 s doubling to
 * 5 s) for as long as the broker is unreachable; every attempt is waited for in slices that run
 * base. Logs each failure as kafka.unavailable.
 * @returns 0 the topics exist, -1 stopped by a signal before that.
 */
int msp_lifecycle_ensure_topics(const char *brokers, struct event_base *base);

#endif
