/*
 * mspsync-write-back — writes changed asset dates back into ConnectWise RMM and Syncro
 * (see wb.h, work.c).
 *
 * Wiring only: configuration, the Kafka handles, Redis, the HTTP client, the token cache and the
 * event loop.
 */
#include "wb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <curl/curl.h>

#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"

#define M_PARTITIONS "mspsync_write_back_assigned_partitions"

static wb_t W;

static const msp_config_entry_t config_table[] = {
    {"MSPSYNC_KAFKA_BROKERS", MSP_CFG_STR, "127.0.0.1:9092", "Kafka bootstrap servers",
     &W.conf.brokers},
    {"MSPSYNC_REDIS_URL", MSP_CFG_STR, "127.0.0.1:6379", "Redis address (host:port or redis://host:port/db)",
     &W.conf.redis_url},
    {"MSPSYNC_TOPIC_PREFIX", MSP_CFG_STR, "", "Prefix of every Kafka topic name", &W.conf.topic_prefix},
    {"MSPSYNC_GROUP", MSP_CFG_STR, "mspsync-write-back", "Kafka consumer group of the write-backs",
     &W.conf.group},
    {"MSPSYNC_GROUP_INSTANCE_ID", MSP_CFG_STR, "",
     "Static group membership id (e.g. the pod name of a StatefulSet): a restarted replica gets its partitions back at once instead of after the 10 s session timeout. Empty = dynamic",
     &W.conf.group_instance_id},
    {"MSPSYNC_LOG_LEVEL", MSP_CFG_STR, "info", "debug, info, warn or error", &W.conf.log_level},
    {"MSPSYNC_METRICS_BIND", MSP_CFG_STR, "127.0.0.1", "Address of /healthz, /readyz, /metrics",
     &W.conf.metrics_bind},
    {"MSPSYNC_METRICS_PORT", MSP_CFG_INT, "9104", "Port of /healthz, /readyz, /metrics (0 = any free port)",
     &W.conf.metrics_port, 0, 65535},
    {"MSPSYNC_PORT_FILE", MSP_CFG_STR, "", "If set, the bound metrics port is written to this file",
     &W.conf.port_file},
    {"MSPSYNC_SYNCRO_RATE_MILLI", MSP_CFG_INT, "2900",
     "Syncro requests per 1000 s for one account, shared with the fetchers, the gateway and the ticket-creator: set it the same in every service (Syncro allows 180/min = 3000)",
     &W.conf.syncro_rate_milli, 1, 10000000},
    {"MSPSYNC_SYNCRO_BURST", MSP_CFG_INT, "3", "Requests a Syncro account's bucket allows at once",
     &W.conf.syncro_burst, 1, 10000},
    {"MSPSYNC_CWRMM_RATE_MILLI", MSP_CFG_INT, "10000",
     "ConnectWise RMM requests per 1000 s for one API client (client id), shared with the fetchers: set it the same in every service",
     &W.conf.cwrmm_rate_milli, 1, 100000000},
    {"MSPSYNC_CWRMM_BURST", MSP_CFG_INT, "10", "Requests a ConnectWise RMM client's bucket allows at once",
     &W.conf.cwrmm_burst, 1, 100000},
    {"MSPSYNC_CWRMM_TOKEN_MARGIN_MS", MSP_CFG_INT, "300000",
     "Refresh a ConnectWise RMM token this long before it expires (at most a quarter of its life)",
     &W.conf.cwrmm_token_margin_ms, 0, 3600000},
    {"MSPSYNC_MAX_ACTIVE", MSP_CFG_INT, "64",
     "Assets whose date changes are written at once by one replica", &W.conf.max_active, 1, 100000},
    {"MSPSYNC_MAX_QUEUED", MSP_CFG_INT, "5000",
     "Date changes held in memory before consumption pauses (resumes at half)", &W.conf.max_queued,
     2, 10000000},
    {"MSPSYNC_BACKOFF_BASE_MS", MSP_CFG_INT, "500",
     "First retry delay after 423/429/5xx/timeouts (doubles, full jitter)", &W.conf.backoff_base_ms,
     1, 600000},
    {"MSPSYNC_BACKOFF_CAP_MS", MSP_CFG_INT, "30000", "Longest retry delay (a Retry-After above it wins)",
     &W.conf.backoff_cap_ms, 1, 3600000},
    {"MSPSYNC_HTTP_TIMEOUT_MS", MSP_CFG_INT, "30000", "Timeout of one vendor request",
     &W.conf.http_timeout_ms, 100, 600000},
    {"MSPSYNC_DONE_TTL_DAYS", MSP_CFG_INT, "90",
     "Days a finished change id is remembered per asset (a replay older than that is checked against the vendor only)",
     &W.conf.done_ttl_days, 1, 3650},
    {NULL},
};

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    wb_t *wb = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
        if (e) {
            MSP_ERROR("kafka.assign_failed", NULL, "%s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        if (msp_keyq_paused(wb->kq)) rd_kafka_pause_partitions(rk, parts);
        wb->assigned_partitions += parts->cnt;
    } else {
        for (int i = 0; i < parts->cnt; i++)
            msp_keyq_revoked(wb->kq, parts->elems[i].topic, parts->elems[i].partition);
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e) rd_kafka_error_destroy(e);
        wb->assigned_partitions -= parts->cnt;
        if (wb->assigned_partitions < 0) wb->assigned_partitions = 0;
    }
    MSP_INFO("kafka.rebalance", NULL, "%s %d partitions, now %d",
             err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked", parts->cnt,
             wb->assigned_partitions);
    msp_metric_set(wb->metrics, M_PARTITIONS, NULL, wb->assigned_partitions);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    wb_delivery_report((wb_t *)opaque, msg);
}

static void gauges(wb_t *wb) {
    msp_metric_set(wb->metrics, "mspsync_write_back_changes_held", NULL, msp_keyq_held(wb->kq));
    msp_metric_set(wb->metrics, "mspsync_write_back_changes_active", NULL, msp_keyq_active(wb->kq));
}

static void consume_ready(wb_t *wb) {
    rd_kafka_message_t *m;
    int budget = 1000;
    while (!wb->stopping && !msp_keyq_paused(wb->kq) && budget-- > 0 &&
           (m = rd_kafka_consumer_poll(wb->consumer, 0))) {
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                MSP_WARN("kafka.consumer_error", NULL, "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        wb_accept(wb, m);   /* takes m */
        if (msp_keyq_full(wb->kq)) break;
    }
    msp_keyq_pump(wb->kq);
    gauges(wb);
}

static void on_consumer(void *arg) { consume_ready((wb_t *)arg); }

static void on_producer(void *arg) { rd_kafka_poll(((wb_t *)arg)->producer, 0); }

/* Safety net: the io-event only fires on empty → non-empty; a paused consumer still polls
 * (rebalances and errors are served from rd_kafka_consumer_poll). */
static void on_tick(void *arg) {
    wb_t *wb = arg;
    rd_kafka_poll(wb->producer, 0);
    if (msp_keyq_paused(wb->kq)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(wb->consumer, 0);
        if (m) {
            if (m->err) rd_kafka_message_destroy(m);
            else wb_accept(wb, m);
        }
        msp_keyq_pump(wb->kq);
        gauges(wb);
    } else {
        consume_ready(wb);
    }
    msp_metric_set(wb->metrics, "mspsync_write_back_http_inflight", NULL,
                   msp_http_inflight(wb->http));
    msp_metric_set(wb->metrics, "mspsync_write_back_cwrmm_token_requests_total", NULL,
                   (double)msp_cwrmm_tokens_requested(wb->tokens));
}

static int ready_cb(void *opaque, char *why, size_t why_size) {
    wb_t *wb = opaque;
    if (!wb_redis_ok(wb)) {
        snprintf(why, why_size, "redis unavailable");
        return 0;
    }
    if (wb->assigned_partitions == 0) {
        snprintf(why, why_size, "no date.changes partitions assigned yet");
        return 0;
    }
    return 1;
}

static void declare_metrics(msp_metrics_t *m) {
    msp_metric_declare(m, "mspsync_write_back_changes_total", "counter",
                       "Date changes by outcome (done, duplicate, dead_lettered)");
    msp_metric_declare(m, "mspsync_write_back_writes_total", "counter",
                       "Target fields by integration and result (written, already_set, skipped, failed)");
    msp_metric_declare(m, "mspsync_write_back_requests_total", "counter",
                       "Vendor requests by integration and outcome");
    msp_metric_declare(m, "mspsync_write_back_retries_total", "counter",
                       "Vendor calls retried after 423/429/5xx/timeouts/transport errors");
    msp_metric_declare(m, "mspsync_write_back_dead_lettered_total", "counter",
                       "Date changes sent to the dlq topic");
    msp_metric_declare(m, "mspsync_write_back_ratelimit_waits_total", "counter",
                       "Times a request waited for a rate-limit token");
    msp_metric_declare(m, "mspsync_write_back_cwrmm_token_requests_total", "counter",
                       "POST /v1/token calls this process made");
    msp_metric_declare(m, "mspsync_write_back_changes_held", "gauge", "Date changes in memory");
    msp_metric_declare(m, "mspsync_write_back_changes_active", "gauge",
                       "Date changes being worked on");
    msp_metric_declare(m, M_PARTITIONS, "gauge", "date.changes partitions owned");
    msp_metric_declare(m, "mspsync_write_back_http_inflight", "gauge", "HTTP requests in flight");
}

int main(int argc, char **argv) {
    char errstr[512];
    int rc = msp_config_load("write-back", config_table, argc, argv, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "mspsync-write-back: %s\n", errstr);
        return 2;
    }
    wb_t *wb = &W;
    wb->conf.syncro_rate = (double)wb->conf.syncro_rate_milli / 1000.0;
    wb->conf.cwrmm_rate = (double)wb->conf.cwrmm_rate_milli / 1000.0;
    msp_log_init("write-back", wb->conf.log_level);
    msp_topic_prefix_set(wb->conf.topic_prefix);
    msp_kafka_group_instance_set(wb->conf.group_instance_id);
    if (msp_secret_key_load(&wb->key, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("config.invalid", NULL, "%s", errstr);
        msp_config_free(config_table);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    wb->base = event_base_new();
    wb->metrics = msp_metrics_new("write-back");
    declare_metrics(wb->metrics);

    if (msp_svc_ensure_topics(wb->conf.brokers) != 0) return 1;
    wb->producer = msp_kafka_producer_new(wb->conf.brokers, "mspsync-write-back", dr_cb, wb,
                                          errstr, sizeof(errstr));
    const char *topics[] = {msp_topic(MSP_TOPIC_DATE_CHANGES), NULL};
    wb->consumer = wb->producer ? msp_kafka_consumer_new(wb->conf.brokers, wb->conf.group,
                                                         "mspsync-write-back", topics,
                                                         rebalance_cb, wb, errstr, sizeof(errstr))
                                : NULL;
    if (!wb->producer || !wb->consumer) {
        MSP_ERROR("kafka.init_failed", NULL, "%s", errstr);
        return 1;
    }
    wb->offtrack = msp_offtrack_new();
    msp_keyq_ops_t ops = wb_keyq_ops;
    ops.opaque = wb;
    wb->kq = msp_keyq_new(wb->consumer, wb->offtrack, (int)wb->conf.max_active,
                          (int)wb->conf.max_queued, &ops);
    msp_http_opts_t hopts = {.timeout_ms = wb->conf.http_timeout_ms};
    wb->http = msp_http_new(wb->base, &hopts);
    wb->tokens = msp_cwrmm_tokens_new(wb->base, wb->http, &wb->redis, &wb->key,
                                      wb->conf.cwrmm_token_margin_ms);
    if (!wb->offtrack || !wb->kq || !wb->http || !wb->tokens) {
        MSP_ERROR("init.failed", NULL, "out of memory");
        return 1;
    }
    if (!wb_redis_ok(wb)) MSP_WARN("redis.unavailable", NULL, "starting anyway; will retry");

    msp_svc_t svc;
    if (msp_svc_wire(&svc, wb->base, wb->consumer, wb->producer, 100, on_consumer, on_producer,
                     on_tick, wb, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("init.failed", NULL, "%s", errstr);
        return 1;
    }
    if (msp_svc_serve_ops(&svc, wb->conf.metrics_bind, (int)wb->conf.metrics_port,
                          wb->conf.port_file, wb->metrics, ready_cb, wb) != 0)
        return 1;
    MSP_INFO("started", NULL, "metrics_port=%d brokers=%s max_active=%lld", svc.ops_port,
             wb->conf.brokers, wb->conf.max_active);

    event_base_dispatch(wb->base);

    /* Shutdown: in-flight vendor calls are cancelled (their changes stay uncommitted and replay;
     * the read before every write makes the replay safe), dead letters are delivered. */
    wb->stopping = 1;
    msp_keyq_stop(wb->kq);
    msp_http_destroy(wb->http);
    wb->http = NULL;
    msp_cwrmm_tokens_destroy(wb->tokens);
    wb->tokens = NULL;
    rd_kafka_flush(wb->producer, 10000);
    rd_kafka_consumer_close(wb->consumer);   /* its revoke callback still uses the queue */
    msp_keyq_destroy(wb->kq);
    rd_kafka_destroy(wb->consumer);
    rd_kafka_destroy(wb->producer);
    msp_offtrack_destroy(wb->offtrack);
    msp_svc_close(&svc);
    if (wb->redis) redisFree(wb->redis);
    msp_metrics_destroy(wb->metrics);
    event_base_free(wb->base);
    curl_global_cleanup();
    msp_secure_zero(&wb->key, sizeof(wb->key));
    MSP_INFO("stopped", NULL, "bye");
    msp_config_free(config_table);
    return 0;
}
