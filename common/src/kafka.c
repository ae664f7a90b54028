/*
 * kafka.c — producer/consumer set-up shared by every service, topic names, dead-lettering.
 *
 * Producer settings favour no loss and no duplicates over latency: enable.idempotence
 * (implies acks=all and in-order retries), a small linger so that records batch, lz4
 * compression. Consumers store offsets manually (enable.auto.offset.store=false) so that an
 * offset is only committed after the worker's side effect is done.
 *
 * Every handle made here logs through msp_log (msp_kafka_conf_log): librdkafka's own lines
 * would otherwise reach stderr unformatted, between our JSON lines.
 *
 * The operator's librdkafka properties (kafka_props.h) are set last on every rd_kafka_conf_t made
 * here (producers, consumers, the admin client of msp_kafka_ensure_topics): the operator wins.
 *
 * The assignor depends on the librdkafka found at run time (msp_kafka_assignor): before 2.3.0
 * cooperative-sticky aborts the process when a consumer is destroyed between JoinGroup and its
 * first assignment (librdkafka issue 4312). There the consumers use the eager range/roundrobin
 * assignors instead; every rebalance callback goes through msp_kafka_rebalance_apply, which
 * follows whichever protocol the group runs.
 */
#include "mspsync/kafka.h"
#include "mspsync/backoff.h"
#include "mspsync/config.h"
#include "mspsync/kafka_props.h"
#include "mspsync/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static char *topic_prefix;
static char *group_instance_id;
static int   producer_linger_ms = 20;

/* Set once by msp_kafka_configure, before any handle exists. */
static msp_kafka_props_t *props;
static int topic_partitions = 6, topic_replication = 1, topic_min_insync;

/* The brokers refused us during the last topic-creation attempt (AUTH or TLS): a wait alone
 * does not fix that. Written by the admin client's error callback, read by /readyz, both on the
 * main thread. */
enum { TROUBLE_NONE, TROUBLE_AUTH, TROUBLE_TLS };
static int  kafka_trouble;
static char kafka_trouble_text[256];

/* The topics msp_kafka_ensure_topics creates: every base name msp_topic() is asked for. */
static const struct {
    const char *base;
    int compacted;
    const char *retention_ms; /* NULL: the broker's default */
} want_topics[] = {
    {MSP_TOPIC_SYNC_JOBS, 0},
    {MSP_TOPIC_RAW_RECORDS, 0},
    {MSP_TOPIC_SYNC_EVENTS, 0},
    {MSP_TOPIC_CUSTOMERS, 1},
    {MSP_TOPIC_ASSETS, 1},
    {MSP_TOPIC_DLQ, 0},
    {MSP_TOPIC_INCIDENTS, 0},
    {MSP_TOPIC_DATE_CHANGES, 0},
    {MSP_TOPIC_RAW_EVENTS, 0},
    {MSP_TOPIC_CONFIG, 1},
    {MSP_TOPIC_CONTACTS, 1},
    {MSP_TOPIC_TICKETS, 1},
    {MSP_TOPIC_SETTINGS, 1},
    /* held incidents wait for a fixed key or ticketing switched on: 30 days, not the broker's
     * default week (design.md "Held incidents") */
    {MSP_TOPIC_INCIDENTS_HELD, 0, "2592000000"},
    /* usage reports are the billing marks' source of truth: kept 400 days, so the marks of the
     * current and the previous billing periods can be rebuilt from them (services/billing) */
    {MSP_TOPIC_USAGE_EVENTS, 0, "34560000000"},
    {MSP_TOPIC_WB_STATES, 1},
    /* the traces' journal (trace.h): 91 days, a day more than a trace lives in Redis, so every
     * trace still alive can be rebuilt; billing's history of writes is in it too */
    {MSP_TOPIC_TRACES, 0, "7862400000"},
};
#define WANT_TOPICS ((int)(sizeof(want_topics) / sizeof(want_topics[0])))

/* msp_topic's table of full names: every topic above plus room for names asked for outside it
 * (a test's own topic). Two branches that each added a topic once overflowed a fixed 16 and
 * every service aborted at start: the bound now follows the list. */
#define MAX_TOPICS (WANT_TOPICS + 16)

/* Kafka's limit on the length of a topic name. */
#define TOPIC_NAME_MAX 249

int msp_topic_prefix_check(const char *prefix, char *errstr, size_t errstr_size) {
    size_t n = strlen(prefix), longest = 0;
    const char *base = "";
    for (int i = 0; i < WANT_TOPICS; i++)
        if (strlen(want_topics[i].base) > longest) {
            base = want_topics[i].base;
            longest = strlen(base);
        }
    size_t ok = strspn(prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
    if (ok < n) {
        snprintf(errstr, errstr_size, "MSPSYNC_TOPIC_PREFIX: character %zu ('%c') is not allowed "
                 "in a Kafka topic name (only A-Z a-z 0-9 . _ -)", ok + 1, prefix[ok]);
        return -1;
    }
    if (n + longest > TOPIC_NAME_MAX) {
        snprintf(errstr, errstr_size, "MSPSYNC_TOPIC_PREFIX: %zu characters; at most %zu (Kafka "
                 "allows %d in a topic name, \"%s\" takes %zu)", n, TOPIC_NAME_MAX - longest,
                 TOPIC_NAME_MAX, base, longest);
        return -1;
    }
    return 0;
}

extern char **environ;

int msp_kafka_configure(const msp_kafka_conf_t *k, const char *prefix, char *errstr,
                        size_t errstr_size) {
    if (msp_topic_prefix_check(prefix ? prefix : "", errstr, errstr_size) != 0) return -1;
    if (k->topic_min_insync > k->topic_replication) {
        snprintf(errstr, errstr_size, "MSPSYNC_KAFKA_TOPIC_MIN_INSYNC (%lld) must not exceed "
                 "MSPSYNC_KAFKA_TOPIC_REPLICATION (%lld)", k->topic_min_insync,
                 k->topic_replication);
        return -1;
    }
    msp_kafka_props_t *p = msp_kafka_props_new();
    if (!p) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    if ((k->properties_file && k->properties_file[0] &&
         msp_kafka_props_load_file(p, k->properties_file, errstr, errstr_size) != 0) ||
        msp_kafka_props_load_env(p, environ, errstr, errstr_size) != 0) {
        msp_kafka_props_destroy(p);
        return -1;
    }
    msp_kafka_props_destroy(props);
    props = p;
    topic_partitions = (int)k->topic_partitions;
    topic_replication = (int)k->topic_replication;
    topic_min_insync = (int)k->topic_min_insync;
    msp_topic_prefix_set(prefix);
    return 0;
}

static struct {
    char *base;
    char *full;
} topics[MAX_TOPICS];
static int topics_cnt;

void msp_kafka_linger_set(int ms) {
    producer_linger_ms = ms < 0 ? 0 : ms;
}

void msp_kafka_group_instance_set(const char *id) {
    free(group_instance_id);
    group_instance_id = id && id[0] ? strdup(id) : NULL;
}

void msp_topic_prefix_set(const char *prefix) {
    free(topic_prefix);
    topic_prefix = strdup(prefix ? prefix : "");
    for (int i = 0; i < topics_cnt; i++) {
        free(topics[i].base);
        free(topics[i].full);
    }
    topics_cnt = 0;
}

const char *msp_topic(const char *base) {
    for (int i = 0; i < topics_cnt; i++)
        if (!strcmp(topics[i].base, base)) return topics[i].full;
    if (topics_cnt == MAX_TOPICS)
        abort(); /* a programming error: far more names than topics */
    const char *p = topic_prefix ? topic_prefix : "";
    size_t n = strlen(p) + strlen(base) + 1;
    char *full = malloc(n);
    if (!full) abort();
    snprintf(full, n, "%s%s", p, base);
    topics[topics_cnt].base = strdup(base);
    topics[topics_cnt].full = full;
    topics_cnt++;
    return full;
}

/* librdkafka's log callback, on its own threads. Levels are syslog's. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    msp_log_level_t l = level <= 3 ? MSP_LOG_ERROR
                        : level == 4 ? MSP_LOG_WARN
                        : level <= 6 ? MSP_LOG_INFO
                                     : MSP_LOG_DEBUG;
    if (l < msp_log_min_level) return;
    msp_log_write(l, NULL, 0, "kafka.log", NULL, "%s %s: %s", rk ? rd_kafka_name(rk) : "rdkafka",
                  fac ? fac : "", buf ? buf : "");
}

void msp_kafka_conf_log(rd_kafka_conf_t *conf) {
    rd_kafka_conf_set_log_cb(conf, log_cb);
}

/* 2.3.0 fixed the destroy-before-first-assignment abort of cooperative-sticky (issue 4312). */
#define MSP_RDKAFKA_STICKY_FIXED 0x020300ff

const char *msp_kafka_assignor(void) {
    return rd_kafka_version() >= MSP_RDKAFKA_STICKY_FIXED ? "cooperative-sticky"
                                                          : "range,roundrobin";
}

int msp_kafka_cooperative(rd_kafka_t *rk) {
    /* NULL when the consumer is no group member (closed before it ever joined: UBSan saw the
     * gateway's history reader do it at shutdown) */
    const char *p = rd_kafka_rebalance_protocol(rk);
    return p && !strcmp(p, "COOPERATIVE");
}

void msp_kafka_rebalance_apply(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t *parts) {
    int coop = msp_kafka_cooperative(rk);
    int assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t r = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (coop)
        e = assign ? rd_kafka_incremental_assign(rk, parts) : rd_kafka_incremental_unassign(rk, parts);
    else
        r = rd_kafka_assign(rk, assign ? parts : NULL);
    if (e) {
        MSP_ERROR("kafka.assign_failed", NULL, "%s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (r) {
        MSP_ERROR("kafka.assign_failed", NULL, "%s", rd_kafka_err2str(r));
    }
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errstr,
                    size_t errstr_size) {
    if (rd_kafka_conf_set(conf, k, v, errstr, errstr_size) != RD_KAFKA_CONF_OK) return -1;
    return 0;
}

/* The operator's properties over ours, then our log callback: every conf ends here. */
static int conf_finish(rd_kafka_conf_t *conf, char *errstr, size_t errstr_size) {
    if (msp_kafka_props_apply(props, conf, errstr, errstr_size) != 0) return -1;
    msp_kafka_conf_log(conf);
    return 0;
}

rd_kafka_t *msp_kafka_producer_new(const char *brokers, const char *client_id,
                                   void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                                   void *opaque, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char linger[16];
    snprintf(linger, sizeof(linger), "%d", producer_linger_ms);
    if (conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) ||
        conf_set(conf, "client.id", client_id, errstr, errstr_size) ||
        conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) ||
        conf_set(conf, "linger.ms", linger, errstr, errstr_size) ||
        conf_set(conf, "compression.codec", "lz4", errstr, errstr_size) ||
        conf_set(conf, "message.timeout.ms", "300000", errstr, errstr_size) ||
        conf_set(conf, "queue.buffering.max.messages", "500000", errstr, errstr_size) ||
        conf_finish(conf, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (dr_cb) rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk) rd_kafka_conf_destroy(conf);
    return rk;
}

/* A consumer handle of conf (taken, also on failure) whose messages come from its poll. */
static rd_kafka_t *consumer_of(rd_kafka_conf_t *conf, char *errstr, size_t errstr_size) {
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

rd_kafka_t *msp_kafka_consumer_new(const char *brokers, const char *group, const char *client_id,
                                   const char **topic_names,
                                   void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                        rd_kafka_topic_partition_list_t *, void *),
                                   void *opaque, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) ||
        conf_set(conf, "client.id", client_id, errstr, errstr_size) ||
        conf_set(conf, "group.id", group, errstr, errstr_size) ||
        conf_set(conf, "auto.offset.reset", "earliest", errstr, errstr_size) ||
        conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) ||
        conf_set(conf, "enable.auto.commit", "true", errstr, errstr_size) ||
        conf_set(conf, "auto.commit.interval.ms", "1000", errstr, errstr_size) ||
        conf_set(conf, "session.timeout.ms", "10000", errstr, errstr_size) ||
        conf_set(conf, "heartbeat.interval.ms", "1000", errstr, errstr_size) ||
        conf_set(conf, "partition.assignment.strategy", msp_kafka_assignor(), errstr,
                 errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if ((group_instance_id &&
         conf_set(conf, "group.instance.id", group_instance_id, errstr, errstr_size)) ||
        conf_finish(conf, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (rebalance_cb) rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_t *rk = consumer_of(conf, errstr, errstr_size);
    if (!rk)
        return NULL;
    int n = 0;
    while (topic_names[n]) n++;
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(subs, topic_names[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe failed: %s", rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

rd_kafka_t *msp_kafka_reader_new(const char *brokers, const char *client_id, char *errstr,
                                 size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* A group id is required by the consumer API; with assign() and no commits it joins no
     * group and stores nothing under it. */
    if (conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) ||
        conf_set(conf, "client.id", client_id, errstr, errstr_size) ||
        conf_set(conf, "group.id", client_id, errstr, errstr_size) ||
        conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) ||
        conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) ||
        conf_set(conf, "enable.partition.eof", "true", errstr, errstr_size) ||
        conf_set(conf, "queued.max.messages.kbytes", "1024", errstr, errstr_size) ||
        conf_set(conf, "fetch.max.bytes", "1048576", errstr, errstr_size) ||
        conf_finish(conf, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return consumer_of(conf, errstr, errstr_size);
}

/* The admin client's errors, served by rd_kafka_poll in msp_kafka_ensure_topics: a failed
 * authentication or TLS handshake is told at once instead of as a timeout 10 s later. */
static void admin_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    (void)opaque;
    int t = err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
                    err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED
                ? TROUBLE_AUTH
            : err == RD_KAFKA_RESP_ERR__SSL ? TROUBLE_TLS
                                            : TROUBLE_NONE;
    if (t == TROUBLE_NONE) return; /* unreachable brokers: the attempt's timeout says so */
    kafka_trouble = t;
    snprintf(kafka_trouble_text, sizeof(kafka_trouble_text), "%s", reason ? reason : "");
}

int msp_kafka_refused(void) {
    return kafka_trouble != TROUBLE_NONE;
}

const char *msp_kafka_waiting_why(void) {
    return kafka_trouble == TROUBLE_AUTH  ? "kafka authentication failed"
           : kafka_trouble == TROUBLE_TLS ? "kafka TLS handshake failed"
                                          : "waiting for kafka";
}

/* The client that creates the topics; NULL when these properties make none (errstr). */
static rd_kafka_t *admin_new(const char *brokers, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) ||
        conf_finish(conf, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_error_cb(conf, admin_error_cb);
    char why[400];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        snprintf(errstr, errstr_size, "no Kafka client can be made with these properties: %s",
                 why);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* The topics as configured; -1 when librdkafka refuses the sizing (errstr). */
static int new_topics(rd_kafka_NewTopic_t **nt, char *errstr, size_t errstr_size) {
    char isr[16];
    snprintf(isr, sizeof(isr), "%d", topic_min_insync);
    for (int i = 0; i < WANT_TOPICS; i++) {
        nt[i] = rd_kafka_NewTopic_new(msp_topic(want_topics[i].base), topic_partitions,
                                      topic_replication, errstr, errstr_size);
        if (!nt[i]) return -1;
        if (topic_min_insync > 0)
            rd_kafka_NewTopic_set_config(nt[i], "min.insync.replicas", isr);
        if (want_topics[i].compacted) {
            rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "compact");
            rd_kafka_NewTopic_set_config(nt[i], "min.cleanable.dirty.ratio", "0.1");
        }
        if (want_topics[i].retention_ms)
            rd_kafka_NewTopic_set_config(nt[i], "retention.ms", want_topics[i].retention_ms);
    }
    return 0;
}

/* Errors of a topic that no retry fixes: the name, the sizing or a setting is refused. */
static int topic_error_fatal(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION ||
           err == RD_KAFKA_RESP_ERR_INVALID_PARTITIONS || err == RD_KAFKA_RESP_ERR_INVALID_CONFIG ||
           err == RD_KAFKA_RESP_ERR_POLICY_VIOLATION;
}

/* 0, -1 or -2 for the CreateTopics result ev (see msp_kafka_ensure_topics). */
static int topics_result(rd_kafka_event_t *ev, char *errstr, size_t errstr_size) {
    if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "creating topics: %s", rd_kafka_event_error_string(ev));
        return -1;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(tr[i]);
        if (!err || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
        snprintf(errstr, errstr_size, "creating topic %s: %s", rd_kafka_topic_result_name(tr[i]),
                 rd_kafka_topic_result_error_string(tr[i]));
        return topic_error_fatal(err) ? -2 : -1;
    }
    return 0;
}

/* Wait for the result on q in short slices: a SIGTERM while the broker is unreachable must not
 * wait out the timeout, nor a failed authentication. NULL when given up (errstr says why) or
 * timed out (errstr ""). */
static rd_kafka_event_t *topics_wait(rd_kafka_t *rk, rd_kafka_queue_t *q, int timeout_ms,
                                     int (*keep_waiting)(void *), void *opaque, char *errstr,
                                     size_t errstr_size) {
    for (int waited = 0; waited < timeout_ms + 2000; waited += 100) {
        if (keep_waiting && !keep_waiting(opaque)) {
            snprintf(errstr, errstr_size, "stopped");
            return NULL;
        }
        rd_kafka_poll(rk, 0); /* admin_error_cb */
        if (kafka_trouble != TROUBLE_NONE) {
            snprintf(errstr, errstr_size, "%s: %s", msp_kafka_waiting_why(), kafka_trouble_text);
            return NULL;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
        if (ev) return ev;
    }
    errstr[0] = '\0'; /* timed out */
    return NULL;
}

int msp_kafka_ensure_topics(const char *brokers, int timeout_ms,
                            int (*keep_waiting)(void *opaque), void *opaque, char *errstr,
                            size_t errstr_size) {
    rd_kafka_NewTopic_t *nt[WANT_TOPICS] = {0};
    char e2[256];
    kafka_trouble = TROUBLE_NONE;
    rd_kafka_t *rk = admin_new(brokers, errstr, errstr_size);
    if (!rk) return -2;
    if (new_topics(nt, errstr, errstr_size) != 0) {
        rd_kafka_NewTopic_destroy_array(nt, WANT_TOPICS);
        rd_kafka_destroy(rk);
        return -2;
    }
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, e2, sizeof(e2));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, e2, sizeof(e2));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, WANT_TOPICS, opts, q);
    rd_kafka_event_t *ev = topics_wait(rk, q, timeout_ms, keep_waiting, opaque, errstr,
                                       errstr_size);
    int rc = ev ? topics_result(ev, errstr, errstr_size) : -1;
    if (!ev && !errstr[0]) {
        char shown[512];
        snprintf(errstr, errstr_size, "timed out creating topics on %s",
                 msp_url_mask(brokers, shown, sizeof(shown)));
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy_array(nt, WANT_TOPICS);
    rd_kafka_destroy(rk);
    if (rc == 0) kafka_trouble = TROUBLE_NONE;
    return rc;
}

int msp_kafka_produce(rd_kafka_t *producer, const char *topic, const void *key, size_t key_len,
                      const void *value, size_t value_len, rd_kafka_headers_t *headers,
                      void *opaque) {
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t err;
        if (headers) {
            err = rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        } else {
            err = rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        }
        if (!err) return 0;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt > 3000) return -1;
        /* Local queue full: serve delivery reports to make room, then try again. */
        rd_kafka_poll(producer, 10);
    }
}

/* The x-dlq-* headers a dead letter gets and a replay takes off again. */
static const char *const DLQ_HEADERS[] = {
    "x-dlq-reason",        "x-dlq-service",   "x-dlq-source-topic", "x-dlq-source-partition",
    "x-dlq-source-offset", "x-dlq-failed-at", "x-dlq-tenant"};
#define DLQ_HEADERS_CNT (sizeof(DLQ_HEADERS) / sizeof(DLQ_HEADERS[0]))

/* 1 when s (n bytes) can name a tenant: [A-Za-z0-9_-], 1..63 bytes. */
static int tenant_like(const char *s, size_t n) {
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '-' || s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

/* Copy n bytes of s into buf when they can name a tenant. @returns 0, or -1 (buf ""). */
static int tenant_copy(const char *s, size_t n, char *buf, size_t size) {
    buf[0] = '\0';
    if (!s || !tenant_like(s, n) || n >= size)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

int msp_kafka_tenant_of(const rd_kafka_message_t *m, char *buf, size_t size) {
    if (!buf || !size)
        return -1;
    buf[0] = '\0';
    json_t *v = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    const char *t = json_string_value(json_object_get(v, "tenant"));
    int rc = t ? tenant_copy(t, strlen(t), buf, size) : -1;
    json_decref(v);
    if (rc == 0 || !m->key)
        return rc;
    const char *k = m->key, *slash = memchr(k, '/', m->key_len);
    return tenant_copy(k, slash ? (size_t)(slash - k) : m->key_len, buf, size);
}

int msp_dlq_tenant(const rd_kafka_message_t *m, char *buf, size_t size) {
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h &&
        rd_kafka_header_get_last(h, "x-dlq-tenant", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v &&
        tenant_copy(v, n, buf, size) == 0)
        return 0;
    return msp_kafka_tenant_of(m, buf, size);
}

int msp_dlq_unwrap(const rd_kafka_message_t *m, char **source_topic, rd_kafka_headers_t **headers) {
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    *source_topic = NULL;
    *headers = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || !h ||
        rd_kafka_header_get_last(h, "x-dlq-source-topic", &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        !v || n == 0)
        return -1;
    *source_topic = strndup(v, n);
    *headers = rd_kafka_headers_copy(h);
    if (!*source_topic || !*headers) {
        free(*source_topic);
        *source_topic = NULL;
        if (*headers)
            rd_kafka_headers_destroy(*headers);
        *headers = NULL;
        return -1;
    }
    for (size_t i = 0; i < DLQ_HEADERS_CNT; i++)
        rd_kafka_header_remove(*headers, DLQ_HEADERS[i]);
    return 0;
}

int msp_kafka_dead_letter(rd_kafka_t *producer, const rd_kafka_message_t *src,
                          const char *service, const char *reason, void *opaque) {
    return msp_kafka_dead_letter_tenant(producer, src, service, reason, NULL, opaque);
}

int msp_kafka_dead_letter_tenant(rd_kafka_t *producer, const rd_kafka_message_t *src,
                                 const char *service, const char *reason, const char *tenant,
                                 void *opaque) {
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_headers_t *orig = NULL;
    if (rd_kafka_message_headers(src, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig)
        hdrs = rd_kafka_headers_copy(orig);
    else
        hdrs = rd_kafka_headers_new(8);
    char num[32], when[40];
    rd_kafka_header_add(hdrs, "x-dlq-reason", -1, reason, -1);
    rd_kafka_header_add(hdrs, "x-dlq-service", -1, service, -1);
    /* A record that is a copy kept elsewhere (incidents.held) names the topic it replays to. */
    const void *copy_of = NULL;
    size_t copy_len = 0;
    if (!orig || rd_kafka_header_get_last(orig, "x-source-topic", &copy_of, &copy_len) ||
        !copy_of) {
        copy_of = rd_kafka_topic_name(src->rkt);
        copy_len = strlen(copy_of);
    }
    rd_kafka_header_add(hdrs, "x-dlq-source-topic", -1, copy_of, (ssize_t)copy_len);
    snprintf(num, sizeof(num), "%d", (int)src->partition);
    rd_kafka_header_add(hdrs, "x-dlq-source-partition", -1, num, -1);
    snprintf(num, sizeof(num), "%lld", (long long)src->offset);
    rd_kafka_header_add(hdrs, "x-dlq-source-offset", -1, num, -1);
    msp_format_time(msp_wall_ms(), when, sizeof(when));
    rd_kafka_header_add(hdrs, "x-dlq-failed-at", -1, when, -1);
    /* The tenant whose dead letter it is, for the per-tenant index (gateway) and
     * mspsync-dlq --tenant: the caller's, else what the record itself says. */
    char derived[64];
    if ((!tenant || !tenant_like(tenant, strlen(tenant))) &&
        msp_kafka_tenant_of(src, derived, sizeof(derived)) == 0)
        tenant = derived;
    if (tenant && tenant_like(tenant, strlen(tenant)))
        rd_kafka_header_add(hdrs, "x-dlq-tenant", -1, tenant, -1);
    if (msp_kafka_produce(producer, msp_topic(MSP_TOPIC_DLQ), src->key, src->key_len,
                          src->payload, src->len, hdrs, opaque) != 0) {
        rd_kafka_headers_destroy(hdrs);
        return -1;
    }
    return 0;
}

void msp_dead_letter_set(msp_dead_letter_t *dl, void *owner, const char *tenant,
                         const char *reason) {
    free(dl->reason);
    dl->reason = strdup(reason);
    dl->owner = owner;
    dl->tenant = tenant;
}

int msp_dead_letter_send(rd_kafka_t *producer, msp_dead_letter_t *dl,
                         const rd_kafka_message_t *src, const char *service) {
    if (msp_kafka_dead_letter_tenant(producer, src, service, dl->reason, dl->tenant, dl) != 0) {
        MSP_WARN("dlq.produce_failed", dl->tenant, "retrying in 1 s");
        return -1;
    }
    dl->inflight = 1;
    return 0;
}

int msp_dead_letter_report(const rd_kafka_message_t *m, void **owner) {
    msp_dead_letter_t *dl = m->_private;
    *owner = NULL;
    if (!dl || !dl->inflight) return 0;
    dl->inflight = 0;
    *owner = dl->owner;
    if (m->err) {
        MSP_WARN("dlq.delivery_failed", dl->tenant, "%s; retrying", rd_kafka_err2str(m->err));
        return -1;
    }
    return 1;
}

void msp_dead_letter_clear(msp_dead_letter_t *dl) {
    free(dl->reason);
    dl->reason = NULL;
}

/* ---- reading a topic to its end ---------------------------------------------------------- */

/* The reader behind both forms: cb with the key and value, or mcb with the whole record. */
static long long read_to_end(const char *brokers, const char *topic, int timeout_ms,
                             msp_kafka_read_cb *cb, msp_kafka_read_msg_cb *mcb,
                             int (*keep_going)(void *), void *opaque, char *errstr,
                             size_t errstr_size) {
    rd_kafka_t *rk = msp_kafka_reader_new(brokers, "mspsync-reader", errstr, errstr_size);
    if (!rk)
        return -1;
    long long n = -1;
    int64_t deadline = msp_now_ms() + timeout_ms;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int *open_parts = NULL, left = 0;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(errstr, errstr_size, "no metadata for %s: %s", topic,
                 rd_kafka_err2str(err ? err : md->topics[0].err));
        goto done;
    }
    int cnt = md->topics[0].partition_cnt;
    parts = rd_kafka_topic_partition_list_new(cnt);
    open_parts = calloc((size_t)cnt + 1, sizeof(*open_parts));
    int64_t *ends = calloc((size_t)cnt + 1, sizeof(*ends));
    if (!open_parts || !ends) {
        free(ends);
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    for (int i = 0; i < cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, timeout_ms);
        if (err) {
            snprintf(errstr, errstr_size, "end offsets of %s [%d]: %s", topic, (int)p,
                     rd_kafka_err2str(err));
            free(ends);
            goto done;
        }
        ends[i] = hi;
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        open_parts[i] = hi > lo; /* an empty partition (or all compacted away) is done */
        left += open_parts[i];
    }
    n = 0;
    if (left && (err = rd_kafka_assign(rk, parts)) != 0) {
        snprintf(errstr, errstr_size, "assign %s: %s", topic, rd_kafka_err2str(err));
        n = -1;
    }
    while (n >= 0 && left > 0) {
        if (msp_now_ms() > deadline) {
            snprintf(errstr, errstr_size, "reading %s timed out (%d partitions left)", topic, left);
            n = -1;
            break;
        }
        if (keep_going && !keep_going(opaque)) {
            snprintf(errstr, errstr_size, "stopped");
            n = -1;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        int i = 0;
        while (i < cnt && md->topics[0].partitions[i].id != m->partition)
            i++;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (i < cnt && open_parts[i] && m->offset >= ends[i]) {
                open_parts[i] = 0;
                left--;
            }
        } else if (m->err) {
            snprintf(errstr, errstr_size, "reading %s: %s", topic, rd_kafka_message_errstr(m));
            n = -1;
        } else if (i < cnt && m->offset < ends[i]) {
            if ((mcb ? mcb(m, opaque)
                     : cb(m->key, m->key_len, m->payload, m->payload ? m->len : 0, opaque)) != 0) {
                snprintf(errstr, errstr_size, "a record of %s could not be applied", topic);
                n = -1;
            } else {
                n++;
            }
            if (open_parts[i] && m->offset + 1 >= ends[i]) {
                open_parts[i] = 0;
                left--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    free(ends);
done:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    free(open_parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

long long msp_kafka_read_to_end(const char *brokers, const char *topic, int timeout_ms,
                                msp_kafka_read_cb *cb, int (*keep_going)(void *), void *opaque,
                                char *errstr, size_t errstr_size) {
    return read_to_end(brokers, topic, timeout_ms, cb, NULL, keep_going, opaque, errstr,
                       errstr_size);
}

long long msp_kafka_read_to_end_msg(const char *brokers, const char *topic, int timeout_ms,
                                    msp_kafka_read_msg_cb *cb, int (*keep_going)(void *),
                                    void *opaque, char *errstr, size_t errstr_size) {
    return read_to_end(brokers, topic, timeout_ms, NULL, cb, keep_going, opaque, errstr,
                       errstr_size);
}
