/*
 * svc.h — the event-loop wiring every Kafka worker shares (fetcher, ticket-creator).
 *
 * A worker runs one libevent loop. librdkafka signals "queue became non-empty" by writing to a
 * pipe (rd_kafka_queue_io_event_enable); the loop watches the read ends and calls the worker's
 * callbacks. Because that signal only fires on empty → non-empty, a periodic tick is the safety
 * net. SIGINT/SIGTERM break the loop; the ops server (/healthz, /readyz, /metrics) listens on
 * the metrics address and its bound port can be written to a file (tests use port 0).
 */
#ifndef MSPSYNC_SVC_H
#define MSPSYNC_SVC_H

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/ops.h"

typedef struct msp_svc_s {
    struct event_base *base;
    int                consumer_pipe[2], producer_pipe[2];
    struct event      *consumer_ev, *producer_ev, *tick_ev, *sigint, *sigterm;
    struct evhttp     *ops;
    int                ops_port;
    void             (*on_consumer)(void *arg);
    void             (*on_producer)(void *arg);
    void             (*on_tick)(void *arg);
    void              *arg;
} msp_svc_t;

/**
 * @brief Create the topics (retrying for up to ~5 minutes while the broker is unreachable).
 * @returns 0 or -1 (logged).
 */
int msp_svc_ensure_topics(const char *brokers);

/**
 * @brief Wire the consumer's and the producer's queues to the loop and start the tick
 * (tick_ms). Callbacks get arg. @returns 0 or -1 (errstr).
 */
int msp_svc_wire(msp_svc_t *s, struct event_base *base, rd_kafka_t *consumer,
                 rd_kafka_t *producer, int tick_ms, void (*on_consumer)(void *),
                 void (*on_producer)(void *), void (*on_tick)(void *), void *arg, char *errstr,
                 size_t errstr_size);

/**
 * @brief Listen for /healthz, /readyz, /metrics; write the bound port to port_file when set;
 * break the loop on SIGINT/SIGTERM. @returns 0 or -1 (logged).
 */
int msp_svc_serve_ops(msp_svc_t *s, const char *bind, int port, const char *port_file,
                      msp_metrics_t *m, msp_ready_cb *ready, void *opaque);

/** @brief Free the events, the pipes and the ops server. */
void msp_svc_close(msp_svc_t *s);

#endif
