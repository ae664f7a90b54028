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
 *
 * Stopping is bounded too: from the moment the flag is seen cleared, the producer flushes get
 * MSP_STOP_GRACE_MS, asked for through msp_lifecycle_budget_ms(); a Kafka that went away after
 * start-up cannot make a flush wait its own timeout (a consumer close has none: the watchdog
 * below bounds it). A watchdog thread ends the process with exit code 0
 * at MSP_STOP_HARD_MS whatever it is doing. Cutting a stop short is safe by design: offsets are
 * committed only after a worker's side effect is done and Kafka acknowledged its output, so what
 * was not finished replays on the next start, exactly as after a SIGKILL, which the kill tests
 * exercise.
 */
#ifndef MSPSYNC_LIFECYCLE_H
#define MSPSYNC_LIFECYCLE_H

#include <signal.h>

struct event_base;

/**
 * @brief Install the SIGINT/SIGTERM handlers (they clear the run flag), ignore SIGPIPE and
 * start the stop watchdog (a detached thread polling the flag every 20 ms; it exits the process
 * with 0 MSP_STOP_HARD_MS after the stop, logging "shutdown.forced"). Call first in main, right
 * after reading the configuration.
 */
void msp_lifecycle_signals(void);

/** Time the graceful stop may take, from the moment the cleared flag is first seen. */
#define MSP_STOP_GRACE_MS 1400
/** The watchdog's exit, from the same moment (an orchestrator allows 2 s in our promise). */
#define MSP_STOP_HARD_MS 1800

/** @brief 1 until SIGINT/SIGTERM arrived (or msp_lifecycle_stop), then 0. */
int msp_lifecycle_running(void);

/** @brief The run flag itself (borrowed, static), for code that takes a flag pointer. */
volatile sig_atomic_t *msp_lifecycle_run_flag(void);

/** @brief Clear the run flag as a signal would (a fatal error, tests). */
void msp_lifecycle_stop(void);

/**
 * @brief How long a step of the stop may wait: want while running, else what is left of
 * MSP_STOP_GRACE_MS since the stop was first seen (0 when spent), never more than want.
 */
int msp_lifecycle_budget_ms(int want);

/**
 * @brief Wait ms while running base (may be NULL) without blocking, in 50 ms slices.
 * @returns 0 after ms, -1 as soon as the run flag is cleared.
 */
int msp_lifecycle_wait(struct event_base *base, int ms);

/**
 * @brief Create the topics (msp_kafka_ensure_topics), retrying with backoff (1 s doubling to
 * 5 s) for as long as the broker is unreachable or refuses our credentials (a user may be
 * created after the service started); every attempt is waited for in slices that run base.
 * Logs each failure as kafka.unavailable, or kafka.auth_failed (error) for a failed
 * authentication or TLS handshake.
 * @returns 0 the topics exist, -1 stopped by a signal before that, -2 a configuration error
 * (logged as config.invalid: the service exits non-zero).
 */
int msp_lifecycle_ensure_topics(const char *brokers, struct event_base *base);

#endif
