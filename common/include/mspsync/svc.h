/*
 * svc.h — the service skeleton: the settings every service shares, the ops server and its port
 * file, and the event-loop wiring of the Kafka handles (gateway, fetcher, normalizer,
 * ticket-creator, write-back; the command-line dlq shares the settings only).
 *
 * A service runs one libevent loop (the normalizer polls Kafka itself and runs the loop between
 * batches). librdkafka signals "queue became non-empty" by writing to a pipe
 * (rd_kafka_queue_io_event_enable); the loop watches the read ends and calls the service's
 * callbacks. Because that signal only fires on empty → non-empty, a periodic tick is the safety
 * net; the tick also breaks the loop once SIGINT/SIGTERM cleared the run flag (lifecycle.h).
 *
 * Order of start-up: msp_svc_configure right after msp_lifecycle_signals; then msp_svc_init and
 * msp_svc_serve_ops (msp_svc_serve_http on the gateway's API server): /healthz, /readyz and
 * /metrics answer while the service waits for Kafka, and the bound port can be written to a file
 * (tests use port 0); then the topics (msp_lifecycle_ensure_topics), then the Kafka handles and
 * msp_svc_wire. Shutdown ends with msp_svc_close, once the Kafka handles are destroyed.
 */
#ifndef MSPSYNC_SVC_H
#define MSPSYNC_SVC_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/aredis.h"
#include "mspsync/config.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/keyq.h"
#include "mspsync/offtrack.h"
#include "mspsync/ops.h"
#include "mspsync/vendor.h"

typedef struct msp_svc_s {
    struct event_base *base;
    int                consumer_pipe[2], producer_pipe[2];
    struct event      *consumer_ev, *producer_ev, *tick_ev;
    struct evhttp     *ops;          /* the server /healthz /readyz /metrics answer on */
    int                ops_owned;    /* 1: ops was made by msp_svc_serve_ops (freed by close) */
    struct evhttp_bound_socket *ops_sock; /* its listening socket (borrowed from ops) */
    int                ops_port;     /* the bound port */
    void             (*on_consumer)(void *arg);
    void             (*on_producer)(void *arg);
    void             (*on_tick)(void *arg);
    void              *arg;
} msp_svc_t;

/** @brief An empty svc on base (nothing to free yet). */
void msp_svc_init(msp_svc_t *s, struct event_base *base);

/**
 * @brief Wire the consumer's and the producer's queues to the loop and start the tick
 * (tick_ms), which also ends the loop once the run flag is cleared. Callbacks get arg. A service
 * that only produces (the gateway) passes consumer and on_consumer NULL.
 * @returns 0 or -1 (errstr).
 */
int msp_svc_wire(msp_svc_t *s, rd_kafka_t *consumer, rd_kafka_t *producer, int tick_ms,
                 void (*on_consumer)(void *), void (*on_producer)(void *),
                 void (*on_tick)(void *), void *arg, char *errstr, size_t errstr_size);

/**
 * @brief Write port to path as one line, atomically (a temporary file renamed over path), so a
 * reader polling for the file never sees half a number. @returns 0 or -1 (errno set).
 */
int msp_svc_write_port_file(const char *path, int port);

/**
 * @brief Bind http (the service's own server, borrowed: the gateway's API) to bind:port, mount
 * /healthz, /readyz, /metrics on it and write the bound port to port_file when set
 * (msp_svc_write_port_file; failing to is an error: whoever set it waits for the file).
 * Call before waiting for Kafka: ready must answer "not ready" until the handles exist.
 * @returns 0 or -1 (logged as init.failed).
 */
int msp_svc_serve_http(msp_svc_t *s, struct evhttp *http, const char *bind, int port,
                       const char *port_file, msp_metrics_t *m, msp_ready_cb *ready,
                       void *opaque);

/** @brief msp_svc_serve_http on a server made here for nothing else (freed by msp_svc_close). */
int msp_svc_serve_ops(msp_svc_t *s, const char *bind, int port, const char *port_file,
                      msp_metrics_t *m, msp_ready_cb *ready, void *opaque);

/** @brief Stop accepting connections (the first step of the gateway's shutdown); requests
 * already received are still answered. */
void msp_svc_stop_accepting(msp_svc_t *s);

/** @brief Free the events, the pipes and the ops server if it made it (whatever was made). */
void msp_svc_close(msp_svc_t *s);

/* ---------------------------------------------------------------------------------------------
 * Workers (fetcher, ticket-creator, write-back): one consumed topic, a producer (records, dead
 * letters), Redis, and the ops server. Their common settings, Kafka handles, rebalancing,
 * polling and /readyz live here; the work on one message stays in the service.
 *
 * A keyed worker (ticket-creator, write-back) passes msp_keyq ops to msp_svc_worker_open: its
 * messages go through a msp_keyq (per-key order, bounded, offsets stored when done). A worker
 * without them (the fetcher) takes every message as it comes and stores offsets itself, with the
 * offset tracker made here; it hears of revoked partitions through `revoked`.
 * ------------------------------------------------------------------------------------------- */

/** @brief The settings every service shares, filled by the MSP_SVC_* rows below (a service
 * without a consumer group or an ops server of its own leaves those fields NULL). */
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
    long long  nice; /* MSPSYNC_NICE (priority.h), applied by msp_svc_configure; -1: by the
                      * service itself (the normalizer decides by its lane) */
    msp_vendor_rates_t rates; /* every vendor's rate settings (MSP_SVC_VENDOR_RATE_ROWS) */
    msp_kafka_conf_t kafka;
} msp_svc_conf_t;

/*
 * The settings services share, each row written once here (config.h: "share rows through
 * macros"). A row names its destination; a service's table lists the rows it needs, so --help
 * and docs/configuration.md say the same thing for the same variable in every service.
 */

/** @brief MSPSYNC_KAFKA_BROKERS and MSPSYNC_TOPIC_PREFIX into a msp_svc_conf_t c. */
#define MSP_SVC_KAFKA_ROWS(c)                                                                      \
    {"MSPSYNC_KAFKA_BROKERS", MSP_CFG_STR, "127.0.0.1:9092", "Kafka bootstrap servers",            \
     &(c).brokers},                                                                                \
    {"MSPSYNC_TOPIC_PREFIX", MSP_CFG_STR, "", "Prefix of every Kafka topic name",                  \
     &(c).topic_prefix}

/** @brief MSPSYNC_REDIS_URL into c.redis_url. */
#define MSP_SVC_REDIS_ROW(c)                                                                       \
    {"MSPSYNC_REDIS_URL", MSP_CFG_STR, "127.0.0.1:6379",                                           \
     "Redis address (host:port or redis://host:port/db)", &(c).redis_url}

/** @brief MSPSYNC_LOG_LEVEL into c.log_level (the command-line dlq defaults to warn). */
#define MSP_SVC_LOG_ROW(c, level_def)                                                              \
    {"MSPSYNC_LOG_LEVEL", MSP_CFG_STR, level_def, "debug, info, warn or error", &(c).log_level}

/** @brief MSPSYNC_NICE into c.nice: the CPU niceness the service takes at start (priority.h);
 * nice_help says what this service's default means. A table without it leaves 0. */
#define MSP_SVC_NICE_ROW(c, nice_def, nice_help)                                                         \
    {                                                                                                    \
        "MSPSYNC_NICE", MSP_CFG_INT, nice_def,                                                           \
            "CPU niceness taken at start, 1-19 (a higher one yields the CPU to the others; 0 keeps the " \
            "niceness the process was started with); " nice_help,                                        \
            &(c).nice, -1, 19                                                                            \
    }

/** @brief MSPSYNC_GROUP into c.group. */
#define MSP_SVC_GROUP_ROW(c, group_def, group_help)                                                \
    {"MSPSYNC_GROUP", MSP_CFG_STR, group_def, group_help, &(c).group}

/** @brief MSPSYNC_GROUP_INSTANCE_ID into c.group_instance_id (the keyed workers). */
#define MSP_SVC_GROUP_INSTANCE_ROW(c)                                                              \
    {"MSPSYNC_GROUP_INSTANCE_ID", MSP_CFG_STR, "",                                                 \
     "Static group membership id (e.g. the pod name of a StatefulSet): a restarted replica gets "  \
     "its partitions back at once instead of after the 10 s session timeout. Empty = dynamic",     \
     &(c).group_instance_id}

/** @brief The ops server's address and the port file, for the services with a server of its
 * own (the gateway mounts the ops endpoints on its API server and has MSPSYNC_HTTP_PORT). */
#define MSP_SVC_OPS_ROWS(c, metrics_port_def)                                                      \
    {"MSPSYNC_METRICS_BIND", MSP_CFG_STR, "127.0.0.1", "Address of /healthz, /readyz, /metrics",   \
     &(c).metrics_bind},                                                                           \
    {"MSPSYNC_METRICS_PORT", MSP_CFG_INT, metrics_port_def,                                        \
     "Port of /healthz, /readyz, /metrics (0 = any free port)", &(c).metrics_port, 0, 65535},      \
    MSP_SVC_PORT_FILE_ROW(c, "metrics")

/** @brief MSPSYNC_PORT_FILE into c.port_file; what names the port written ("metrics", "API"). */
#define MSP_SVC_PORT_FILE_ROW(c, what)                                                             \
    {"MSPSYNC_PORT_FILE", MSP_CFG_STR, "",                                                         \
     "If set, the bound " what " port is written to this file (atomically: a reader never sees "  \
     "half a number)", &(c).port_file}

/**
 * @brief Every vendor's rate limit into c.rates (msp_vendor_rates_t): MSPSYNC_<NAME>_RATE_MILLI
 * and MSPSYNC_<NAME>_BURST of each row of the vendor table, whose row names them and gives their
 * defaults, bounds and help. One bucket per vendor account in Redis is shared by every replica of
 * every service that calls it, so every service reads them all (the same value everywhere).
 */
#define MSP_SVC_VENDOR_RATE_ROWS(c)                                                                \
    { "(vendor rates)", MSP_CFG_EXPAND, NULL, NULL, &(c).rates, 0, 0, 0, msp_vendor_rate_rows }

/** @brief How early a cached ConnectWise RMM token is refreshed (fetcher, write-back). */
#define MSP_SVC_CWRMM_TOKEN_MARGIN_ROW(margin_ms)                                                  \
    {"MSPSYNC_CWRMM_TOKEN_MARGIN_MS", MSP_CFG_INT, "300000",                                       \
     "Refresh a ConnectWise RMM token this long before it expires (at most a quarter of its "      \
     "life)", &(margin_ms), 0, 3600000}

/** @brief Retry delays of vendor calls: the first (doubling, full jitter) and the longest. */
#define MSP_SVC_BACKOFF_ROWS(base_ms, cap_ms, cap_def)                                             \
    {"MSPSYNC_BACKOFF_BASE_MS", MSP_CFG_INT, "500",                                                \
     "First retry delay after 423/429/5xx/timeouts/unreadable answers (doubles, full jitter)",     \
     &(base_ms), 1, 600000},                                                                       \
    {"MSPSYNC_BACKOFF_CAP_MS", MSP_CFG_INT, cap_def,                                               \
     "Longest retry delay (a Retry-After above it wins)", &(cap_ms), 1, 3600000}

/** @brief The timeout of one vendor request (the workers; the gateway bounds its checks with
 * MSPSYNC_VENDOR_TIMEOUT_MS). */
#define MSP_SVC_HTTP_TIMEOUT_ROW(timeout_ms)                                                       \
    {"MSPSYNC_HTTP_TIMEOUT_MS", MSP_CFG_INT, "30000", "Timeout of one vendor request",             \
     &(timeout_ms), 100, 600000}

/** @brief A keyed worker's queue bounds (msp_svc_worker_open): how many keys are worked on at
 * once (active_help says what one is) and how many messages are held ("<held> held in memory
 * ..."). */
#define MSP_SVC_KEYQ_ROWS(max_active, max_queued, active_help, held)                               \
    {"MSPSYNC_MAX_ACTIVE", MSP_CFG_INT, "64", active_help, &(max_active), 1, 100000},              \
    {"MSPSYNC_MAX_QUEUED", MSP_CFG_INT, "5000",                                                    \
     held " held in memory before consumption pauses (resumes at half)", &(max_queued), 2,         \
     10000000}

/** @brief The first entries of a keyed worker's config table; c is its msp_svc_conf_t. */
#define MSP_SVC_WORKER_CONFIG(c, group_def, group_help, metrics_port_def)                          \
    MSP_SVC_KAFKA_ROWS(c), MSP_SVC_REDIS_ROW(c), MSP_SVC_GROUP_ROW(c, group_def, group_help),      \
    MSP_SVC_GROUP_INSTANCE_ROW(c), MSP_SVC_LOG_ROW(c, "info"),                                     \
    MSP_SVC_OPS_ROWS(c, metrics_port_def), MSP_KAFKA_CONFIG((c).kafka)

/**
 * @brief Logging, the Kafka settings (msp_kafka_configure) and the static group membership from
 * conf. @returns 0 or -1: a configuration error (logged as config.invalid; exit non-zero).
 */
int msp_svc_conf_apply(const char *service, const msp_svc_conf_t *conf);

/**
 * @brief The start of a worker's main, right after msp_lifecycle_signals: load tbl from the
 * environment (--help prints it), msp_svc_conf_apply(conf) and, when key is not NULL, load the
 * secret key (msp_secret_key_load). An invalid table is printed to stderr as
 * "mspsync-<service>: ..." (logging is not set up yet), anything later logged as config.invalid.
 * @returns -1 to go on, else the exit code: 0 after --help, 2 for a configuration error (the
 * table freed).
 */
int msp_svc_configure(const char *service, const msp_config_entry_t *tbl, int argc, char **argv,
                      const msp_svc_conf_t *conf, msp_secret_key_t *key);

/* /readyz of a worker on an async connection: Redis answered within this (ms). */
#define MSP_SVC_REDIS_ANSWER_MS 3000

typedef struct msp_svc_worker_s {
    /* Set by the service before msp_svc_worker_open. */
    const msp_svc_conf_t *conf;
    const char     *client_id;        /* "mspsync-ticket-creator" */
    const char     *topic;            /* base name of the consumed topic ("incidents") */
    msp_metrics_t  *metrics;
    redisContext  **redis;            /* the service's connection: /readyz checks it */
    /** When set, /readyz asks it instead of *redis and never waits on Redis: Redis counts as
     * there when it answered within MSP_SVC_REDIS_ANSWER_MS (the service keeps a cheap command
     * going on a timer so that "lately" holds when idle), and state_lost is the service's last
     * answer to "did Redis lose its state?" (1 lost, 0 no, -1 no answer yet). */
    msp_aredis_t *aredis;
    int state_lost;
    const char     *gauge_partitions; /* partitions owned */
    const char     *gauge_held;       /* keyed: messages held (queued + active) */
    const char     *gauge_active;     /* keyed: messages being worked on */
    /** A consumed message (ownership passes): a keyed worker msp_keyq_accept and
     * msp_keyq_push (or not); any worker destroys it when done. */
    void          (*accept)(void *arg, rd_kafka_message_t *msg);
    /** A partition was revoked (before it is given up; a keyed worker's queue already forgot
     * its items). May be NULL. */
    void          (*revoked)(void *arg, const char *topic, int32_t partition);
    /** At shutdown, once the producer was flushed and before the consumer closes: free what
     * the delivery reports needed (the fetcher's jobs). May be NULL. */
    void          (*flushed)(void *arg);
    /** A delivery report of the producer (dead letters: msp_dead_letter_report). */
    void          (*delivery_report)(void *arg, const rd_kafka_message_t *msg);
    /** Every tick, after polling: the service's own gauges. May be NULL. */
    void          (*tick)(void *arg);
    void           *arg;

    /* Made by msp_svc_worker_open, freed by msp_svc_worker_close (NULL before). */
    rd_kafka_t     *consumer, *producer;
    msp_offtrack_t *offtrack;
    msp_keyq_t     *kq;               /* NULL without keyq ops */
    int             assigned_partitions;
} msp_svc_worker_t;

/**
 * @brief The producer, the consumer (subscribed to w->topic, rebalanced into the queue), the
 * offset tracker and, for a keyed worker, the queue (ops: the service's item callbacks; NULL: no
 * queue, max_active and max_queued unused).
 * @returns 0 or -1 (logged: kafka.init_failed or init.failed).
 */
int msp_svc_worker_open(msp_svc_worker_t *w, int max_active, int max_queued,
                        const msp_keyq_ops_t *ops);

/**
 * @brief A worker's start-up in its order: msp_svc_init and msp_svc_serve_ops (the ops server
 * answers from here on: ready when the Kafka handles exist, Redis answers and a partition is
 * assigned), the topics (msp_lifecycle_ensure_topics, waiting for Kafka as long as it takes),
 * msp_svc_worker_open. svc is ready for msp_svc_close whatever happens.
 * @returns -1 when the handles are open (go on), else the exit code to shut down with: 0 stopped
 * by a signal while waiting for Kafka, 1 could not start (logged), 2 a configuration error.
 */
int msp_svc_worker_start(msp_svc_worker_t *w, msp_svc_t *svc, struct event_base *base,
                         int max_active, int max_queued, const msp_keyq_ops_t *ops);

/**
 * @brief msp_svc_wire after msp_svc_worker_open (tick every 100 ms: a paused consumer is still
 * polled, for rebalances). @returns 0 or -1 (logged).
 */
int msp_svc_worker_serve(msp_svc_worker_t *w, msp_svc_t *svc);

/** @brief Set a keyed worker's held/active gauges (done after every poll; call it where else it
 * matters). */
void msp_svc_worker_gauges(msp_svc_worker_t *w);

/**
 * @brief Shutdown, after msp_keyq_stop and cancelling the work in flight: deliver what was
 * produced (up to 10 s, bounded by the stop's budget), call `flushed`, close the consumer (its
 * revoke callback still uses the queue), free the queue (nothing stored for unfinished items),
 * the handles and the offset tracker. Also right after a failed or skipped msp_svc_worker_open
 * (frees what exists).
 */
void msp_svc_worker_close(msp_svc_worker_t *w);

#endif
