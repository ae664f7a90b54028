/*
 * svc.h — the event-loop wiring every Kafka worker shares (fetcher, ticket-creator, write-back).
 *
 * A worker runs one libevent loop. librdkafka signals "queue became non-empty" by writing to a
 * pipe (rd_kafka_queue_io_event_enable); the loop watches the read ends and calls the worker's
 * callbacks. Because that signal only fires on empty → non-empty, a periodic tick is the safety
 * net; the tick also breaks the loop once SIGINT/SIGTERM cleared the run flag (lifecycle.h).
 *
 * Order of start-up: msp_svc_init and msp_svc_serve_ops first (the ops server — /healthz,
 * /readyz, /metrics — answers while the service waits for Kafka; its bound port can be written
 * to a file, tests use port 0), then the topics (msp_lifecycle_ensure_topics), then the Kafka
 * handles and msp_svc_wire.
 */
#ifndef MSPSYNC_SVC_H
#define MSPSYNC_SVC_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/keyq.h"
#include "mspsync/offtrack.h"
#include "mspsync/ops.h"

typedef struct msp_svc_s {
    struct event_base *base;
    int                consumer_pipe[2], producer_pipe[2];
    struct event      *consumer_ev, *producer_ev, *tick_ev;
    struct evhttp     *ops;
    int                ops_port;
    void             (*on_consumer)(void *arg);
    void             (*on_producer)(void *arg);
    void             (*on_tick)(void *arg);
    void              *arg;
} msp_svc_t;

/** @brief An empty svc on base (nothing to free yet). */
void msp_svc_init(msp_svc_t *s, struct event_base *base);

/**
 * @brief Wire the consumer's and the producer's queues to the loop and start the tick
 * (tick_ms), which also ends the loop once the run flag is cleared. Callbacks get arg.
 * @returns 0 or -1 (errstr).
 */
int msp_svc_wire(msp_svc_t *s, rd_kafka_t *consumer, rd_kafka_t *producer, int tick_ms,
                 void (*on_consumer)(void *), void (*on_producer)(void *),
                 void (*on_tick)(void *), void *arg, char *errstr, size_t errstr_size);

/**
 * @brief Listen for /healthz, /readyz, /metrics; write the bound port to port_file when set.
 * Call before waiting for Kafka: ready must answer "not ready" until the handles exist.
 * @returns 0 or -1 (logged).
 */
int msp_svc_serve_ops(msp_svc_t *s, const char *bind, int port, const char *port_file,
                      msp_metrics_t *m, msp_ready_cb *ready, void *opaque);

/** @brief Free the events, the pipes and the ops server (whatever was made). */
void msp_svc_close(msp_svc_t *s);

/* ---------------------------------------------------------------------------------------------
 * Keyed workers (ticket-creator, write-back): one consumed topic whose messages go through a
 * msp_keyq (per-key order, bounded, offsets stored when done), a producer for dead letters
 * (msp_dead_letter_*), Redis, and the ops server. Their common settings, Kafka handles,
 * rebalancing, polling and /readyz live here; the work on one message stays in the service.
 * ------------------------------------------------------------------------------------------- */

/** @brief The settings every keyed worker has, filled by MSP_SVC_WORKER_CONFIG. */
typedef struct msp_svc_conf_s {
    char      *brokers;
    char      *redis_url;
    char      *topic_prefix;
    char      *group;
    char      *group_instance_id;
    char      *log_level;
    char      *metrics_bind;
    long long  metrics_port;
    char      *port_file;
    msp_kafka_conf_t kafka;
} msp_svc_conf_t;

/** @brief The first entries of a keyed worker's config table; c is its msp_svc_conf_t. */
#define MSP_SVC_WORKER_CONFIG(c, group_def, group_help, metrics_port_def)                          \
    {"MSPSYNC_KAFKA_BROKERS", MSP_CFG_STR, "127.0.0.1:9092", "Kafka bootstrap servers",            \
     &(c).brokers},                                                                                \
    {"MSPSYNC_REDIS_URL", MSP_CFG_STR, "127.0.0.1:6379",                                           \
     "Redis address (host:port or redis://host:port/db)", &(c).redis_url},                         \
    {"MSPSYNC_TOPIC_PREFIX", MSP_CFG_STR, "", "Prefix of every Kafka topic name",                  \
     &(c).topic_prefix},                                                                           \
    {"MSPSYNC_GROUP", MSP_CFG_STR, group_def, group_help, &(c).group},                             \
    {"MSPSYNC_GROUP_INSTANCE_ID", MSP_CFG_STR, "",                                                 \
     "Static group membership id (e.g. the pod name of a StatefulSet): a restarted replica gets "  \
     "its partitions back at once instead of after the 10 s session timeout. Empty = dynamic",     \
     &(c).group_instance_id},                                                                      \
    {"MSPSYNC_LOG_LEVEL", MSP_CFG_STR, "info", "debug, info, warn or error", &(c).log_level},      \
    {"MSPSYNC_METRICS_BIND", MSP_CFG_STR, "127.0.0.1", "Address of /healthz, /readyz, /metrics",   \
     &(c).metrics_bind},                                                                           \
    {"MSPSYNC_METRICS_PORT", MSP_CFG_INT, metrics_port_def,                                        \
     "Port of /healthz, /readyz, /metrics (0 = any free port)", &(c).metrics_port, 0, 65535},      \
    {"MSPSYNC_PORT_FILE", MSP_CFG_STR, "", "If set, the bound metrics port is written to this file", \
     &(c).port_file},                                                                              \
    MSP_KAFKA_CONFIG((c).kafka)

/**
 * @brief Logging, the Kafka settings (msp_kafka_configure) and the static group membership from
 * conf. @returns 0 or -1: a configuration error (logged as config.invalid; exit non-zero).
 */
int msp_svc_conf_apply(const char *service, const msp_svc_conf_t *conf);

typedef struct msp_svc_worker_s {
    /* Set by the service before msp_svc_worker_open. */
    const msp_svc_conf_t *conf;
    const char     *client_id;        /* "mspsync-ticket-creator" */
    const char     *topic;            /* base name of the consumed topic ("incidents") */
    msp_metrics_t  *metrics;
    redisContext  **redis;            /* the service's connection: /readyz checks it */
    const char     *gauge_partitions; /* partitions owned */
    const char     *gauge_held;       /* messages held (queued + active) */
    const char     *gauge_active;     /* messages being worked on */
    /** A consumed message (ownership passes): msp_keyq_accept and msp_keyq_push (or not). */
    void          (*accept)(void *arg, rd_kafka_message_t *msg);
    /** A delivery report of the producer (dead letters: msp_dead_letter_report). */
    void          (*delivery_report)(void *arg, const rd_kafka_message_t *msg);
    /** Every tick, after polling: the service's own gauges. May be NULL. */
    void          (*tick)(void *arg);
    void           *arg;

    /* Made by msp_svc_worker_open, freed by msp_svc_worker_close (NULL before). */
    rd_kafka_t     *consumer, *producer;
    msp_offtrack_t *offtrack;
    msp_keyq_t     *kq;
    int             assigned_partitions;
} msp_svc_worker_t;

/**
 * @brief The producer, the consumer (subscribed to w->topic, rebalanced into the queue), the
 * offset tracker and the queue (ops: the service's item callbacks).
 * @returns 0 or -1 (logged: kafka.init_failed or init.failed).
 */
int msp_svc_worker_open(msp_svc_worker_t *w, int max_active, int max_queued,
                        const msp_keyq_ops_t *ops);

/**
 * @brief msp_svc_init and msp_svc_serve_ops, ready when the Kafka handles exist, Redis answers
 * and a partition is assigned. Call before msp_lifecycle_ensure_topics and
 * msp_svc_worker_open (w's settings filled in). @returns 0 or -1 (logged).
 */
int msp_svc_worker_listen(msp_svc_worker_t *w, msp_svc_t *svc, struct event_base *base);

/**
 * @brief msp_svc_wire after msp_svc_worker_open (tick every 100 ms: a paused consumer is still
 * polled, for rebalances). @returns 0 or -1 (logged).
 */
int msp_svc_worker_serve(msp_svc_worker_t *w, msp_svc_t *svc);

/** @brief Set the held/active gauges (done after every poll; call it where else it matters). */
void msp_svc_worker_gauges(msp_svc_worker_t *w);

/**
 * @brief Shutdown, after msp_keyq_stop and cancelling the work in flight: deliver the dead
 * letters (up to 10 s), close the consumer (its revoke callback still uses the queue), free the
 * queue (nothing stored for unfinished items), the handles and the offset tracker. Also right
 * after a failed or skipped msp_svc_worker_open (frees what exists).
 */
void msp_svc_worker_close(msp_svc_worker_t *w);

#endif
