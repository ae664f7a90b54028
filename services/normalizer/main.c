/*
 * mspsync-normalizer — raw.records → canonical customers/assets, the Redis inventory view, dlq.
 *
 * Wiring only, in the shape of a librdkafka example: the configuration table (the shared rows and
 * the start-up of svc.h: settings, the ops server, the topics), a signal-cleared run flag, a
 * consume loop that collects batches, and an orderly shutdown (close the consumer so the stored
 * offsets are committed, flush the producer, destroy). The batch logic — mapping,
 * change detection, sweeps and the produce → Redis → offsets order — is in normalizer.c.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <mspsync/backoff.h>
#include <mspsync/config.h>
#include <mspsync/kafka.h>
#include <mspsync/lifecycle.h>
#include <mspsync/log.h>
#include <mspsync/ops.h>
#include <mspsync/priority.h>
#include <mspsync/svc.h>
#include <mspsync/trace.h>

#include "json_arena.h"
#include "normalizer.h"

#define SERVICE           "normalizer"
#define FIRST_POLL_MS     100   /* an idle loop still serves /metrics this often */
#define NEXT_POLL_MS      10    /* a batch ends when the consumer has nothing for this long */

static struct {
    msp_svc_conf_t svc;   /* Kafka, Redis, logging, ops server (svc.h) */
    char     *input;
    long long batch_size, batch_wait_ms, identity_max_shared, prepare_threads, linger_ms;
    int       json_arena;
} cfg;

/* Why a batch stopped taking messages (mspsync_normalizer_batch_closes_total{reason}). */
enum { CLOSE_SIZE, CLOSE_IDLE, CLOSE_DEADLINE, CLOSE_STOP, CLOSE_N };
static const char *const close_labels[CLOSE_N] = {"reason=\"size\"", "reason=\"idle\"",
                                                  "reason=\"deadline\"", "reason=\"stop\""};
#define M_CLOSES "mspsync_normalizer_batch_closes_total"
#define M_FILL_S "mspsync_normalizer_batch_fill_seconds_total"

static const msp_config_entry_t config_table[] = {
    MSP_SVC_KAFKA_ROWS(cfg.svc),
    MSP_SVC_REDIS_ROW(cfg.svc),
    MSP_KAFKA_CONFIG(cfg.svc.kafka),
    {"MSPSYNC_NORMALIZER_INPUT", MSP_CFG_STR, "all",
     "What this normalizer consumes: records (raw.records: sync pages, edits), events (raw.events: "
     "incidents, which then never wait behind a sync) or all (both, one process)",
     &cfg.input, 0, 0, 0},
    MSP_SVC_GROUP_ROW(cfg.svc, "",
                      "Kafka consumer group (default mspsync-normalizer, or "
                      "mspsync-normalizer-events when MSPSYNC_NORMALIZER_INPUT=events)"),
    {"MSPSYNC_BATCH_SIZE", MSP_CFG_INT, "500",
     "Most messages processed (and committed) as one batch", &cfg.batch_size, 1, 100000, 0},
    {"MSPSYNC_BATCH_MAX_WAIT_MS", MSP_CFG_INT, "5",
     "A batch closes this long after its first message at the latest (also when messages keep "
     "coming), so no message waits for a batch to fill; 0 = only on size or a 10 ms gap",
     &cfg.batch_wait_ms, 0, 10000, 0},
    {"MSPSYNC_KAFKA_LINGER_MS", MSP_CFG_INT, "20",
     "how long the producer waits to batch records (a batch's outputs are sent at its end "
     "whatever this is)",
     &cfg.linger_ms, 0, 1000, 0},
    {"MSPSYNC_IDENTITY_MAX_SHARED", MSP_CFG_INT, "3",
     "A serial or MAC seen on more asset records than this (per tenant) stops merging machines: "
     "one per integration plus a stale duplicate",
     &cfg.identity_max_shared, 1, 1000, 0},
    MSP_SVC_NICE_ROW(cfg.svc, "-1",
                     "-1: 10 when only raw.records is consumed (bulk work yields to the incident "
                     "path), else as started"),
    {"MSPSYNC_PREPARE_THREADS", MSP_CFG_INT, "2",
     "Threads that parse, map and fingerprint a batch's messages, the batch loop's included "
     "(1 = the batch loop alone); Redis and Kafka stay on the batch loop",
     &cfg.prepare_threads, 1, 64, 0},
    MSP_SVC_OPS_ROWS(cfg.svc, "9101"),
    MSP_SVC_LOG_ROW(cfg.svc, "info"),
    {"MSPSYNC_JSON_ARENA", MSP_CFG_BOOL, "1",
     "Allocate each batch's JSON in one arena freed at commit (0 = plain malloc)", &cfg.json_arena,
     0, 0, 0},
    {NULL, MSP_CFG_STR, NULL, NULL, NULL, 0, 0, 0},
};

/*
 * MSPSYNC_NORMALIZER_INPUT → the topics to consume (topics[0..1], NULL-terminated by the caller's
 * array) and the default consumer group. Events get their own group so that a records replica
 * joining or leaving never pauses the incidents. @returns -1 for an unknown value.
 */
static int input_topics(const char *input, const char **topics, const char **group)
{
    int records = strcmp(input, "records") == 0, events = strcmp(input, "events") == 0;
    int all     = strcmp(input, "all") == 0;
    if (!records && !events && !all)
        return -1;
    if (group)
        *group = events ? "mspsync-normalizer-events" : "mspsync-normalizer";
    if (topics) {
        int i = 0;
        if (!events)
            topics[i++] = msp_topic(MSP_TOPIC_RAW_RECORDS);
        if (!records)
            topics[i++] = msp_topic(MSP_TOPIC_RAW_EVENTS);
    }
    return 0;
}

/* /readyz: not before the Kafka handles exist (the topics are awaited with /healthz up). */
static rd_kafka_t *consumer_made;

static int ready_cb(void *opaque, char *why, size_t why_size)
{
    if (!consumer_made) {
        snprintf(why, why_size, "%s", msp_kafka_waiting_why());
        return 0;
    }
    return nz_ready(opaque, why, why_size);
}

int main(int argc, char **argv)
{
    msp_lifecycle_signals();   /* first: SIGTERM must work at any moment, Kafka or not */
    char               errstr[512];
    int                exit_code = 1;
    struct event_base *base      = NULL;
    msp_svc_t          svc;      /* the ops server (svc.h) */
    msp_metrics_t     *metrics   = NULL;
    nz_t              *nz        = NULL;
    rd_kafka_t        *consumer = NULL, *producer = NULL;
    rd_kafka_message_t **batch  = NULL;

    int rc = msp_svc_configure(SERVICE, config_table, argc, argv, &cfg.svc, NULL);
    if (rc >= 0)
        return rc;
    const char *group = NULL;
    if (input_topics(cfg.input, NULL, &group) < 0) {
        fprintf(stderr, "mspsync-normalizer: MSPSYNC_NORMALIZER_INPUT must be records, events or "
                        "all\n");
        msp_config_free(config_table);
        return 2;
    }
    if (!cfg.svc.group[0]) {
        free(cfg.svc.group);
        cfg.svc.group = strdup(group);
        if (!cfg.svc.group) {
            fprintf(stderr, "mspsync-normalizer: out of memory\n");
            return 2;
        }
    }
    /* A batch builds and frees hundreds of thousands of small jansson nodes; with glibc's
     * fastbins every larger allocation then pays malloc_consolidate over them (12 % of the
     * normalizer's time in perf). Without fastbins the same frees go to tcache and the bins
     * directly: +10-14 % records/s (docs/benchmarks.md). */
    mallopt(M_MXFAST, 0);
    if (cfg.svc.nice < 0 && strcmp(cfg.input, "records") == 0) /* -1: by lane (svc.h) */
        msp_priority_apply(MSP_NICE_BULK);
    if (cfg.json_arena)
        nz_json_arena_enable();
    msp_kafka_linger_set((int)cfg.linger_ms);

    msp_svc_init(&svc, NULL);
    base    = event_base_new();
    metrics = msp_metrics_new(SERVICE);
    batch   = calloc((size_t)cfg.batch_size, sizeof *batch);
    if (!base || !metrics || !batch) {
        MSP_ERROR("startup", NULL, "out of memory");
        goto out;
    }
    msp_metric_declare(metrics, M_CLOSES, "counter",
                       "Batches closed, by why they stopped taking messages (size, idle gap, "
                       "deadline MSPSYNC_BATCH_MAX_WAIT_MS, stop).");
    msp_metric_declare(metrics, M_FILL_S, "counter",
                       "Seconds batches spent between their first message and closing (the wait "
                       "a message has before processing starts).");
    nz = nz_new(&(nz_conf_t){.redis_url = cfg.svc.redis_url,
                             .brokers = cfg.svc.brokers,
                             .batch_size = (size_t)cfg.batch_size,
                             .identity_max_shared = (int)cfg.identity_max_shared,
                             .prepare_threads = (int)cfg.prepare_threads,
                             .metrics = metrics,
                             .base = base,
                             .run = msp_lifecycle_run_flag()});
    if (!nz) {
        MSP_ERROR("startup", NULL, "out of memory");
        goto out;
    }

    /* The ops server first: /healthz answers (and /readyz says why not) while Kafka is awaited. */
    msp_svc_init(&svc, base);
    if (msp_svc_serve_ops(&svc, cfg.svc.metrics_bind, (int)cfg.svc.metrics_port,
                          cfg.svc.port_file, metrics, ready_cb, nz) != 0)
        goto out;

    int made = msp_lifecycle_ensure_topics(cfg.svc.brokers, base);
    if (made < 0) {
        exit_code = made == -2 ? 2 : 0;   /* a configuration error, or stopped while waiting */
        goto out;
    }

    producer = msp_kafka_producer_new(cfg.svc.brokers, "mspsync-normalizer", nz_dr_cb, nz, errstr,
                                      sizeof errstr);
    if (!producer) {
        MSP_ERROR("startup", NULL, "producer: %s", errstr);
        goto out;
    }
    const char *topics[3] = {NULL, NULL, NULL};
    input_topics(cfg.input, topics, NULL);
    consumer = msp_kafka_consumer_new(cfg.svc.brokers, cfg.svc.group, "mspsync-normalizer", topics,
                                      nz_rebalance_cb, nz, errstr, sizeof errstr);
    if (!consumer) {
        MSP_ERROR("startup", NULL, "consumer: %s", errstr);
        goto out;
    }
    nz_set_kafka(nz, consumer, producer);
    msp_trace_journal_init(producer, metrics); /* the traces and histories it appends */
    consumer_made = consumer;
    MSP_INFO("startup", NULL, "consuming %s%s%s as group %s, batches of %lld closing %lld ms after "
             "their first message, metrics on %s:%d", topics[0], topics[1] ? " and " : "",
             topics[1] ? topics[1] : "", cfg.svc.group, cfg.batch_size, cfg.batch_wait_ms,
             cfg.svc.metrics_bind, svc.ops_port);

    exit_code = 0;
    while (msp_lifecycle_running()) {
        size_t  n     = nz_take_held(nz, batch, (size_t)cfg.batch_size);
        int64_t first = n ? msp_now_ms() : 0;   /* when this batch took its first message */
        int     why   = CLOSE_SIZE;
        while (n < (size_t)cfg.batch_size) {
            if (!msp_lifecycle_running()) {
                why = CLOSE_STOP;
                break;
            }
            /* with a batch's commit deferred, an empty consumer ends the wait at once: the
             * commit runs now instead of after an idle poll */
            int wait = n ? NEXT_POLL_MS : nz_has_pending(nz) ? 0 : FIRST_POLL_MS;
            if (n && cfg.batch_wait_ms > 0) {
                int64_t left = first + cfg.batch_wait_ms - msp_now_ms();
                if (left <= 0) {
                    why = CLOSE_DEADLINE;
                    break;
                }
                if (left < wait)
                    wait = (int)left;
            }
            rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, wait);
            if (!m) {
                why = n && cfg.batch_wait_ms > 0 && msp_now_ms() >= first + cfg.batch_wait_ms
                          ? CLOSE_DEADLINE
                          : CLOSE_IDLE;
                break;
            }
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    MSP_WARN("kafka.consumer_error", NULL, "%s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            if (n == 0)
                first = msp_now_ms();
            batch[n++] = m;
        }
        if (n) {
            msp_metric_add(metrics, M_CLOSES, close_labels[why], 1);
            msp_metric_add(metrics, M_FILL_S, NULL, (double)(msp_now_ms() - first) / 1e3);
        }

        rc = nz_process_batch(nz, batch, n); /* takes the messages */
        if (rc == -2) {
            exit_code = 1;
            break;
        }

        rd_kafka_poll(producer, 0);
        if (rd_kafka_fatal_error(producer, errstr, sizeof errstr)) {
            MSP_ERROR("kafka.fatal", NULL, "producer fatal error: %s", errstr);
            exit_code = 1;
            break;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    MSP_INFO("shutdown", NULL, "stopping: committing stored offsets, flushing the producer");
    if (nz_finish_pending(nz) == -2)
        exit_code = 1;

out:
    if (consumer) {
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(consumer);   /* commits stored offsets */
        if (err)
            MSP_WARN("kafka.close", NULL, "consumer close: %s", rd_kafka_err2str(err));
        rd_kafka_destroy(consumer);
    }
    if (producer) {
        if (rd_kafka_flush(producer, msp_lifecycle_budget_ms(30000)) != RD_KAFKA_RESP_ERR_NO_ERROR)
            MSP_WARN("kafka.flush", NULL, "%d message(s) not delivered at exit (the batch replays)",
                     rd_kafka_outq_len(producer));
        msp_trace_journal_init(NULL, NULL);
        rd_kafka_destroy(producer);
    }
    nz_destroy(nz);   /* after the producer: it may reference outputs until then */
    nz_json_arena_destroy();
    msp_svc_close(&svc);
    if (base)
        event_base_free(base);
    msp_metrics_destroy(metrics);
    free(batch);
    msp_config_free(config_table);
    if (exit_code == 0)
        MSP_INFO("shutdown", NULL, "stopped");
    return exit_code;
}
