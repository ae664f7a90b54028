/*
 * kafka.h — the Kafka spine: topic names, producer and consumer set-up, dead-lettering.
 *
 * Producers are idempotent (enable.idempotence=true: acks=all, ordered, no duplicates from
 * retries) and batched (linger.ms); callers never flush per message. Consumers are group members
 * with enable.auto.offset.store=false: a worker calls rd_kafka_offsets_store() only after the
 * message's side effect succeeded (at-least-once); the background auto-commit then commits what
 * was stored.
 *
 * Topic names get MSPSYNC_TOPIC_PREFIX prepended (default ""), so that several test runs or
 * environments can share one cluster.
 *
 * Every rd_kafka_conf_t is built here: mspsync's settings first, then the operator's librdkafka
 * properties (kafka_props.h: security.protocol, sasl.*, ssl.*, ...), so the operator wins. The
 * settings every service shares (those properties, the size of the topics it creates) are the
 * MSP_KAFKA_CONFIG rows of its config table, applied by msp_kafka_configure.
 */
#ifndef MSPSYNC_KAFKA_H
#define MSPSYNC_KAFKA_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/config.h"

#define MSP_TOPIC_SYNC_JOBS   "sync.jobs"
#define MSP_TOPIC_RAW_RECORDS "raw.records"
#define MSP_TOPIC_RAW_EVENTS "raw.events" /* incidents: never behind a sync */
#define MSP_TOPIC_SYNC_EVENTS "sync.events"
#define MSP_TOPIC_CUSTOMERS   "customers"
#define MSP_TOPIC_ASSETS      "assets"
#define MSP_TOPIC_CONTACTS "contacts"
#define MSP_TOPIC_TICKETS "tickets"
#define MSP_TOPIC_SETTINGS "settings"
#define MSP_TOPIC_DLQ         "dlq"
#define MSP_TOPIC_INCIDENTS   "incidents"
#define MSP_TOPIC_DATE_CHANGES "date.changes"
#define MSP_TOPIC_CONFIG "config" /* compacted: configuration journal (statekeys.h) */
/* incidents kept while a tenant's ticketing is paused or switched off with when_disabled=hold
 * (key: tenant id; the ticket-creator writes and reads it, design.md "Incidents to tickets") */
#define MSP_TOPIC_INCIDENTS_HELD "incidents.held"
#define MSP_TOPIC_USAGE_EVENTS "usage.events" /* usage reports and push requests (billing) */
/* compacted: the write-back's per-asset states and done sets (key "<tenant>/<asset>"), the
 * source its Redis hashes are rebuilt from after a loss (services/write-back/state.c) */
#define MSP_TOPIC_WB_STATES "wb.states"
/* trace entries, asset histories and billing writes as the services wrote them to Redis
 * (trace.h: the journal the gateway rebuilds them from after a loss of Redis) */
#define MSP_TOPIC_TRACES "traces"

/** The Kafka settings of every service, filled by its MSP_KAFKA_CONFIG rows. */
typedef struct msp_kafka_conf_s {
    char     *properties_file;   /* "" = none */
    long long topic_partitions;
    long long topic_replication;
    long long topic_min_insync;  /* 0 = the broker's default */
} msp_kafka_conf_t;

/**
 * @brief The config table rows of msp_kafka_conf_t k (one definition for every service):
 * MSP_KAFKA_CLIENT_CONFIG for every service, MSP_KAFKA_CONFIG for those that create topics.
 */
#define MSP_KAFKA_CLIENT_CONFIG(k)                                                                \
    {"MSPSYNC_KAFKA_PROPERTIES_FILE", MSP_CFG_STR, "",                                            \
     "A file of librdkafka properties (key=value lines: security.protocol, sasl.mechanisms, "     \
     "sasl.username, sasl.password, ssl.ca.location, ...) for every Kafka client, applied after " \
     "mspsync's own; MSPSYNC_KAFKA_PROP_* variables (docs/configuration.md) override its lines",  \
     &(k).properties_file}
#define MSP_KAFKA_CONFIG(k)                                                                       \
    MSP_KAFKA_CLIENT_CONFIG(k),                                                                   \
    {"MSPSYNC_KAFKA_TOPIC_PARTITIONS", MSP_CFG_INT, "6",                                          \
     "Partitions of the topics a service creates (existing topics are left as they are): at "     \
     "least the largest replica count of any service",                                            \
     &(k).topic_partitions, 1, 100000},                                                           \
    {"MSPSYNC_KAFKA_TOPIC_REPLICATION", MSP_CFG_INT, "1",                                         \
     "Replication factor of the topics a service creates: min(3, brokers) in production",         \
     &(k).topic_replication, 1, 32767},                                                           \
    {"MSPSYNC_KAFKA_TOPIC_MIN_INSYNC", MSP_CFG_INT, "0",                                          \
     "min.insync.replicas of the topics a service creates (0 = the broker's default; "            \
     "replication - 1 in production)",                                                            \
     &(k).topic_min_insync, 0, 32767}

/**
 * @brief Apply a service's Kafka settings once at start-up, before any handle is made: the topic
 * prefix (msp_topic_prefix_check, then msp_topic_prefix_set), the size of the topics
 * msp_kafka_ensure_topics creates, and the operator's librdkafka properties
 * (k->properties_file, then the MSPSYNC_KAFKA_PROP_* variables of the environment).
 * @returns 0 or -1: a configuration error (errstr names the variable; the caller exits).
 */
int msp_kafka_configure(const msp_kafka_conf_t *k, const char *topic_prefix, char *errstr,
                        size_t errstr_size);

/**
 * @brief Whether Kafka accepts every topic name prefix + base name: only [A-Za-z0-9._-], at
 * most 249 characters with the longest base name.
 * @returns 0 or -1 (errstr names MSPSYNC_TOPIC_PREFIX).
 */
int msp_topic_prefix_check(const char *prefix, char *errstr, size_t errstr_size);

/**
 * @brief linger.ms of the producers made after this call (default 20: batches for throughput).
 * A service whose callers wait for the delivery report (the gateway's 202) sets it lower.
 */
void msp_kafka_linger_set(int ms);

/**
 * @brief Static group membership (KIP-345) for the consumers made after this call: a replica
 * that restarts with the same id (e.g. a StatefulSet pod name) takes its partitions back at once
 * instead of after the session timeout. NULL or "" = dynamic membership (the default). Copied.
 */
void msp_kafka_group_instance_set(const char *id);

/** @brief Set the prefix (copied). Call once at start-up before msp_topic(). */
void msp_topic_prefix_set(const char *prefix);

/** @brief The full topic name for a base name. Borrowed, valid until exit. */
const char *msp_topic(const char *base);

/**
 * @brief An idempotent producer. dr_cb (may be NULL) gets every delivery report with the
 * message's opaque; opaque is passed to rd_kafka_conf_set_opaque.
 * @returns new handle or NULL (errstr).
 */
rd_kafka_t *msp_kafka_producer_new(const char *brokers, const char *client_id,
                                   void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                                   void *opaque, char *errstr, size_t errstr_size);

/**
 * @brief A group consumer subscribed to the NULL-terminated topics (full names), with
 * auto.offset.reset=earliest and manual offset store. rebalance_cb may be NULL.
 * @returns new handle or NULL (errstr).
 */
rd_kafka_t *msp_kafka_consumer_new(const char *brokers, const char *group, const char *client_id,
                                   const char **topics,
                                   void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                        rd_kafka_topic_partition_list_t *, void *),
                                   void *opaque, char *errstr, size_t errstr_size);

/**
 * @brief A consumer outside any group, for reading one partition from a known offset
 * (rd_kafka_assign): no offsets are committed (the reader keeps its position elsewhere),
 * end of partition is reported (RD_KAFKA_RESP_ERR__PARTITION_EOF), and at most ~1 MB is
 * prefetched. @returns new handle or NULL (errstr).
 */
rd_kafka_t *msp_kafka_reader_new(const char *brokers, const char *client_id, char *errstr,
                                 size_t errstr_size);

/**
 * @brief Create the mspsync topics if missing (customers and assets compacted), with the
 * partitions, replication factor and min.insync.replicas of msp_kafka_configure, waiting up to
 * timeout_ms. Existing topics are left as they are. The wait runs in 100 ms slices; between
 * them keep_waiting(opaque) (may be NULL) is called, and a 0 from it abandons the attempt. An
 * authentication or TLS failure reported by librdkafka ends the attempt at once (errstr says
 * which) and is what msp_kafka_waiting_why answers until topics are created.
 * @returns 0, -1 worth retrying (errstr; "stopped" when keep_waiting said so), or -2 a
 * configuration error that no retry can fix (the client cannot be made with these properties,
 * Kafka refuses a topic name, the partition count or a topic setting).
 */
int msp_kafka_ensure_topics(const char *brokers, int timeout_ms,
                            int (*keep_waiting)(void *opaque), void *opaque, char *errstr,
                            size_t errstr_size);

/**
 * @brief Why Kafka is not usable yet, for /readyz (a fixed phrase, the details are logged):
 * "kafka authentication failed" or "kafka TLS handshake failed" after such a failure of the
 * last msp_kafka_ensure_topics attempt, else "waiting for kafka". @returns borrowed, static.
 */
const char *msp_kafka_waiting_why(void);

/** @brief 1 when the last msp_kafka_ensure_topics attempt failed authentication or TLS. */
int msp_kafka_refused(void);

/**
 * @brief Route the handle's own log lines (librdkafka's "%4|...|FAC|..." on stderr by default)
 * through msp_log as event "kafka.log" with the facility in the message; syslog levels map to
 * ours (0-3 error, 4 warn, 5-6 info, 7 debug). msp_kafka_producer_new and
 * msp_kafka_consumer_new already do this; call it for any other rd_kafka_conf_t before
 * rd_kafka_new. The callback runs on librdkafka's threads: msp_log_write is thread-safe.
 */
void msp_kafka_conf_log(rd_kafka_conf_t *conf);

/**
 * @brief The partition.assignment.strategy of our consumers: "cooperative-sticky" with
 * librdkafka >= 2.3.0, "range,roundrobin" (eager) before. librdkafka < 2.3.0 aborts in
 * rd_kafka_sticky_assignor_state_destroy when a cooperative-sticky consumer is destroyed between
 * its JoinGroup and its first assignment (librdkafka issue 4312), which a SIGTERM during start-up
 * or a rebalance hits. Rebalance callbacks must therefore check rd_kafka_rebalance_protocol()
 * (msp_kafka_rebalance_apply does). Borrowed, static.
 */
const char *msp_kafka_assignor(void);

/**
 * @brief 1 when rk's group uses the COOPERATIVE rebalance protocol; 0 under EAGER and when rk
 * is no group member (rd_kafka_rebalance_protocol() is then NULL: a consumer closed before it
 * ever joined).
 */
int msp_kafka_cooperative(rd_kafka_t *rk);

/**
 * @brief The assign/unassign half of every rebalance callback, right for both protocols:
 * incremental (un)assign under COOPERATIVE, rd_kafka_assign(parts)/(NULL) under EAGER. Call it
 * after the service revoked its own state for parts (on revoke) or before it uses the new
 * partitions (on assign). Errors are logged as kafka.assign_failed.
 */
void msp_kafka_rebalance_apply(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t *parts);

/**
 * @brief Produce a copy of src (key, value, headers) to the dlq topic with headers
 * x-dlq-reason, x-dlq-service, x-dlq-source-topic, x-dlq-source-partition,
 * x-dlq-source-offset, x-dlq-failed-at (and x-dlq-tenant: msp_kafka_dead_letter_tenant). A source with an x-source-topic header (a copy kept on
 * another topic, such as incidents.held) names that topic as x-dlq-source-topic, so that a
 * replay goes where the original would have gone. Asynchronous; the delivery report carries
 * `opaque`.
 * @returns 0 or -1 when the produce call itself failed.
 */
int msp_kafka_dead_letter(rd_kafka_t *producer, const rd_kafka_message_t *src,
                          const char *service, const char *reason, void *opaque);

/**
 * @brief msp_kafka_dead_letter with the tenant the dead letter belongs to in an x-dlq-tenant
 * header: tenant (may be NULL), else what msp_kafka_tenant_of finds in src; no header when
 * neither names one. Every dead letter of mspsync goes through here (msp_kafka_dead_letter
 * and msp_dead_letter_send, with the item's tenant), so the header is on every new one.
 * @returns 0 or -1 when the produce call itself failed.
 */
int msp_kafka_dead_letter_tenant(rd_kafka_t *producer, const rd_kafka_message_t *src,
                                 const char *service, const char *reason, const char *tenant,
                                 void *opaque);

/**
 * @brief The tenant a record of any mspsync topic belongs to: its value's "tenant" (a JSON
 * object's), else its key up to the first '/' (`<tenant>/<id>` keys), else its whole key (the
 * topics keyed by tenant). Only [A-Za-z0-9_-], 1..63 bytes count.
 * @returns 0 (buf filled), or -1 (buf "": none found, or buf too small).
 */
int msp_kafka_tenant_of(const rd_kafka_message_t *m, char *buf, size_t size);

/**
 * @brief The tenant of a dead letter: its x-dlq-tenant header, else msp_kafka_tenant_of (dead
 * letters written before the header existed). @returns 0 (buf filled) or -1 (buf "").
 */
int msp_dlq_tenant(const rd_kafka_message_t *m, char *buf, size_t size);

/**
 * @brief What a replay of dead letter m produces: its source topic (x-dlq-source-topic; new,
 * free()) and its headers without the x-dlq-* ones (new, or NULL when m has none: pass to
 * msp_kafka_produce, which steals them on success). Key and value are m's own. Shared by
 * mspsync-dlq replay and the gateway's POST .../dead-letters/replay.
 * @returns 0, or -1 when m names no source topic (both outputs NULL).
 */
int msp_dlq_unwrap(const rd_kafka_message_t *m, char **source_topic, rd_kafka_headers_t **headers);

/**
 * A consumed message on its way to the dlq topic, embedded in a worker's item (ticket-creator,
 * write-back). The item stays held, its offset unstored, until the dead letter is acknowledged; a
 * failed produce or delivery is retried by the caller (a timer), never given up.
 */
typedef struct msp_dead_letter_s {
    char       *reason;     /* owned: msp_dead_letter_clear */
    const char *tenant;     /* borrowed, for the logs; may be NULL */
    void       *owner;      /* the caller's item, handed back by msp_dead_letter_report */
    int         inflight;   /* produced, delivery report not served yet */
} msp_dead_letter_t;

/** @brief Set the reason (copied), the owner and the tenant before the first send. */
void msp_dead_letter_set(msp_dead_letter_t *dl, void *owner, const char *tenant,
                         const char *reason);

/**
 * @brief msp_kafka_dead_letter of src with dl's reason; the delivery report carries dl.
 * @returns 0 (a report follows: msp_dead_letter_report), or -1 when the produce call failed
 * (logged as dlq.produce_failed: send again in 1 s).
 */
int msp_dead_letter_send(rd_kafka_t *producer, msp_dead_letter_t *dl,
                         const rd_kafka_message_t *src, const char *service);

/**
 * @brief Serve a delivery report of the worker's producer.
 * @returns 1 the dead letter is delivered (*owner: complete it), -1 its delivery failed (logged
 * as dlq.delivery_failed; *owner: send again in 1 s), 0 not a dead letter in flight (*owner NULL).
 */
int msp_dead_letter_report(const rd_kafka_message_t *m, void **owner);

/** @brief Free the reason. */
void msp_dead_letter_clear(msp_dead_letter_t *dl);

/**
 * @brief Produce to a topic (full name) with copy semantics; headers may be NULL (destroyed by
 * the call on success, left to the caller on failure). Retries internally while the local queue
 * is full (serving delivery reports with rd_kafka_poll). @returns 0 or -1.
 */
int msp_kafka_produce(rd_kafka_t *producer, const char *topic, const void *key, size_t key_len,
                      const void *value, size_t value_len, rd_kafka_headers_t *headers,
                      void *opaque);

/** Called for every record msp_kafka_read_to_end reads; value NULL = tombstone. 0 = go on. */
typedef int(msp_kafka_read_cb)(const char *key, size_t key_len, const char *value, size_t value_len,
                               void *opaque);

/**
 * @brief Read a topic (full name) from its first offset to the end offsets it has when the call
 * starts, every partition, in offset order within a partition, calling cb for each record. A
 * consumer of no group (nothing committed, no rebalance): for rebuilding state from a compacted
 * topic. Blocking: run it off an event loop. keep_going(opaque) (may be NULL) is asked between
 * polls; 0 abandons. timeout_ms bounds the whole read.
 * @returns number of records read, or -1 (errstr): Kafka unreachable, a partition unreadable,
 *          the timeout, abandoned, or cb returned non-zero.
 */
long long msp_kafka_read_to_end(const char *brokers, const char *topic, int timeout_ms,
                                msp_kafka_read_cb *cb, int (*keep_going)(void *), void *opaque,
                                char *errstr, size_t errstr_size);

/** Called for every record msp_kafka_read_to_end_msg reads (offset, partition, headers). */
typedef int(msp_kafka_read_msg_cb)(const rd_kafka_message_t *m, void *opaque);

/**
 * @brief msp_kafka_read_to_end, with the whole record given to cb: for a reader that needs the
 * record's partition, offset or headers (the held-incident index, rebuilt from incidents.held).
 */
long long msp_kafka_read_to_end_msg(const char *brokers, const char *topic, int timeout_ms,
                                    msp_kafka_read_msg_cb *cb, int (*keep_going)(void *),
                                    void *opaque, char *errstr, size_t errstr_size);

#endif
