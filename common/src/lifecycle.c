/*
 * lifecycle.c — the run flag and interruptible start-up waits (see lifecycle.h).
 *
 * The flag is a sig_atomic_t written only by the handler (and msp_lifecycle_stop); waits poll it
 * every 50-100 ms. SA_RESTART is left off so that a blocking call the signal lands in returns
 * early (EINTR) instead of finishing its own timeout first.
 *
 * The stop's clock starts when the cleared flag is first seen, by the watchdog (every 20 ms) or
 * by msp_lifecycle_budget_ms, whichever comes first; one atomic compare-and-swap decides.
 */
#include "mspsync/lifecycle.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"

#define SLICE_MS 50

static volatile sig_atomic_t run = 1;

static void on_signal(int sig) {
    (void)sig;
    run = 0;
}

static int64_t stop_seen_ms; /* 0 until the cleared flag is seen; then when (atomic) */

static int64_t stop_started(void) {
    int64_t seen = __atomic_load_n(&stop_seen_ms, __ATOMIC_ACQUIRE);
    if (seen) return seen;
    int64_t now = msp_now_ms(), expected = 0;
    if (__atomic_compare_exchange_n(&stop_seen_ms, &expected, now, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return now;
    return expected; /* another thread saw it first */
}

int msp_lifecycle_budget_ms(int want) {
    if (run) return want;
    int64_t left = stop_started() + MSP_STOP_GRACE_MS - msp_now_ms();
    if (left < 0) left = 0;
    return left < want ? (int)left : want;
}

/* The last resort: whatever the graceful path waits on, the process is gone in time. */
static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        usleep(20 * 1000);
        if (run) continue;
        if (msp_now_ms() - stop_started() < MSP_STOP_HARD_MS) continue;
        MSP_WARN("shutdown.forced", NULL, "the graceful stop took over %d ms; exiting now (work "
                 "not committed replays on the next start)", MSP_STOP_HARD_MS);
        fflush(NULL);
        _exit(0);
    }
    return NULL;
}

void msp_lifecycle_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    static int watching;
    pthread_t t;
    if (!watching && pthread_create(&t, NULL, watchdog, NULL) == 0) {
        pthread_detach(t);
        watching = 1;
    }
}

int msp_lifecycle_running(void) { return run != 0; }

volatile sig_atomic_t *msp_lifecycle_run_flag(void) { return &run; }

void msp_lifecycle_stop(void) { run = 0; }

int msp_lifecycle_wait(struct event_base *base, int ms) {
    int64_t until = msp_now_ms() + ms;
    while (run) {
        if (base) event_base_loop(base, EVLOOP_NONBLOCK); /* /healthz answers meanwhile */
        int64_t left = until - msp_now_ms();
        if (left <= 0) return 0;
        usleep((useconds_t)(left < SLICE_MS ? left : SLICE_MS) * 1000);
    }
    return -1;
}

/* Between the 100 ms polls of a CreateTopics request: serve the loop, stop on a signal. */
static int keep_waiting(void *opaque) {
    struct event_base *base = opaque;
    if (base && run) event_base_loop(base, EVLOOP_NONBLOCK);
    return run != 0;
}

int msp_lifecycle_ensure_topics(const char *brokers, struct event_base *base) {
    char errstr[512];
    for (unsigned attempt = 0; run; attempt++) {
        int rc = msp_kafka_ensure_topics(brokers, 10000, keep_waiting, base, errstr,
                                         sizeof(errstr));
        if (rc == 0)
            return 0;
        if (rc == -2) {
            MSP_ERROR("config.invalid", NULL, "Kafka: %s", errstr);
            return -2;
        }
        if (!run) break;
        int64_t ms = msp_backoff_ms(attempt < 4 ? attempt : 4, 1000, 5000, msp_rand01());
        if (msp_kafka_refused())
            MSP_ERROR("kafka.auth_failed", NULL, "%s (retry in %lld ms)", errstr, (long long)ms);
        else
            MSP_WARN("kafka.unavailable", NULL, "cannot create the topics yet (retry in %lld ms): "
                     "%s", (long long)ms, errstr);
        if (msp_lifecycle_wait(base, (int)ms) < 0) break;
    }
    MSP_INFO("shutdown", NULL, "stopped while waiting for Kafka");
    return -1;
}
