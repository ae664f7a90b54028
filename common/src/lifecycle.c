/*
 * lifecycle.c — the run flag and interruptible start-up waits (see lifecycle.h).
 *
 * The flag is a sig_atomic_t written only by the handler (and msp_lifecycle_stop); waits poll it
 * every 50-100 ms. SA_RESTART is left off so that a blocking call the signal lands in returns
 * early (EINTR) instead of finishing its own timeout first.
 */
#include "mspsync/lifecycle.h"

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

void msp_lifecycle_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
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
        if (msp_kafka_ensure_topics(brokers, 6, 10000, keep_waiting, base, errstr,
                                    sizeof(errstr)) == 0)
            return 0;
        if (!run) break;
        int64_t ms = msp_backoff_ms(attempt < 4 ? attempt : 4, 1000, 5000, msp_rand01());
        MSP_WARN("kafka.unavailable", NULL, "cannot create the topics yet (retry in %lld ms): %s",
                 (long long)ms, errstr);
        if (msp_lifecycle_wait(base, (int)ms) < 0) break;
    }
    MSP_INFO("shutdown", NULL, "stopped while waiting for Kafka");
    return -1;
}
