/*
 * mspsync-ticket-creator — turns canonical incidents into Syncro tickets (see tc.h, work.c).
 *
 * Wiring only: configuration, the Kafka handles, Redis, the HTTP client and the event loop.
 */
#include "tc.h"

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

static tc_t T;

static const msp_config_entry_t config_table[] = {
    {"MSPSYNC_KAFKA_BROKERS", MSP_CFG_STR, "127.0.0.1:9092", "Kafka bootstrap servers",
     &T.conf.brokers},
    {"MSPSYNC_REDIS_URL", MSP_CFG_STR, "127.0.0.1:6379", "Redis address (host:port or redis://host:port/db)",
     &T.conf.redis_url},
    {"MSPSYNC_TOPIC_PREFIX", MSP_CFG_STR, "", "Prefix of every Kafka topic name", &T.conf.topic_prefix},
    {"MSPSYNC_GROUP", MSP_CFG_STR, "mspsync-ticket-creator", "Kafka consumer group of the ticket-creators",
     &T.conf.group},
    {"MSPSYNC_GROUP_INSTANCE_ID", MSP_CFG_STR, "",
     "Static group membership id (e.g. the pod name of a StatefulSet): a restarted replica gets its partitions back at once instead of after the 10 s session timeout. Empty = dynamic",
     &T.conf.group_instance_id},
    {"MSPSYNC_LOG_LEVEL", MSP_CFG_STR, "info", "debug, info, warn or error", &T.conf.log_level},
    {"MSPSYNC_METRICS_BIND", MSP_CFG_STR, "127.0.0.1", "Address of /healthz, /readyz, /metrics",
     &T.conf.metrics_bind},
    {"MSPSYNC_METRICS_PORT", MSP_CFG_INT, "9103", "Port of /healthz, /readyz, /metrics (0 = any free port)",
     &T.conf.metrics_port, 0, 65535},
    {"MSPSYNC_PORT_FILE", MSP_CFG_STR, "", "If set, the bound metrics port is written to this file",
     &T.conf.port_file},
    {"MSPSYNC_SYNCRO_RATE_MILLI", MSP_CFG_INT, "2900",
     "Syncro requests per 1000 s for one account, shared with the fetchers and the gateway: set it the same in every service (Syncro allows 180/min = 3000)",
     &T.conf.syncro_rate_milli, 1, 10000000},
    {"MSPSYNC_SYNCRO_BURST", MSP_CFG_INT, "3", "Requests a Syncro account's bucket allows at once",
     &T.conf.syncro_burst, 1, 10000},
    {"MSPSYNC_MAX_ACTIVE", MSP_CFG_INT, "64",
     "Incidents (distinct fingerprints) worked on at once by one replica", &T.conf.max_active, 1, 100000},
    {"MSPSYNC_MAX_QUEUED", MSP_CFG_INT, "5000",
     "Incident events held in memory before consumption pauses (resumes at half)", &T.conf.max_queued,
     2, 10000000},
    {"MSPSYNC_BACKOFF_BASE_MS", MSP_CFG_INT, "500", "First retry delay after 429/5xx/timeouts (doubles, full jitter)",
     &T.conf.backoff_base_ms, 1, 600000},
    {"MSPSYNC_BACKOFF_CAP_MS", MSP_CFG_INT, "30000", "Longest retry delay (a Retry-After above it wins)",
     &T.conf.backoff_cap_ms, 1, 3600000},
    {"MSPSYNC_HTTP_TIMEOUT_MS", MSP_CFG_INT, "30000", "Timeout of one Syncro request",
     &T.conf.http_timeout_ms, 100, 600000},
    {"MSPSYNC_SEARCH_MAX_PAGES", MSP_CFG_INT, "20",
     "Ticket list pages searched for our marker after a crash between create and record",
     &T.conf.search_max_pages, 1, 1000},
    {NULL},
};

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    tc_t *tc = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
        if (e) {
            MSP_ERROR("kafka.assign_failed", NULL, "%s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        if (tc->paused) rd_kafka_pause_partitions(rk, parts);
        tc->assigned_partitions += parts->cnt;
    } else {
        for (int i = 0; i < parts->cnt; i++)
            tc_partition_revoked(tc, parts->elems[i].topic, parts->elems[i].partition);
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e) rd_kafka_error_destroy(e);
        tc->assigned_partitions -= parts->cnt;
        if (tc->assigned_partitions < 0) tc->assigned_partitions = 0;
    }
    MSP_INFO("kafka.rebalance", NULL, "%s %d partitions, now %d",
             err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked", parts->cnt,
             tc->assigned_partitions);
    msp_metric_set(tc->metrics, "mspsync_ticket_creator_assigned_partitions", NULL,
                   tc->assigned_partitions);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    tc_delivery_report((tc_t *)opaque, msg);
}

static void consume_ready(tc_t *tc) {
    rd_kafka_message_t *m;
    int budget = 1000;
    while (!tc->stopping && !tc->paused && budget-- > 0 &&
           (m = rd_kafka_consumer_poll(tc->consumer, 0))) {
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                MSP_WARN("kafka.consumer_error", NULL, "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        tc_accept(tc, m);   /* takes m */
        if (tc->nitems >= tc->conf.max_queued) break;
    }
    tc_pump(tc);
}

static void on_consumer(void *arg) { consume_ready((tc_t *)arg); }

static void on_producer(void *arg) { rd_kafka_poll(((tc_t *)arg)->producer, 0); }

/* Safety net: the io-event only fires on empty → non-empty; a paused consumer still polls
 * (rebalances and errors are served from rd_kafka_consumer_poll). */
static void on_tick(void *arg) {
    tc_t *tc = arg;
    rd_kafka_poll(tc->producer, 0);
    if (tc->paused) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(tc->consumer, 0);
        if (m) {
            if (m->err) rd_kafka_message_destroy(m);
            else tc_accept(tc, m);
        }
        tc_pump(tc);
    } else {
        consume_ready(tc);
    }
    msp_metric_set(tc->metrics, "mspsync_ticket_creator_http_inflight", NULL,
                   msp_http_inflight(tc->http));
}

static int ready_cb(void *opaque, char *why, size_t why_size) {
    tc_t *tc = opaque;
    if (!tc_redis_ok(tc)) {
        snprintf(why, why_size, "redis unavailable");
        return 0;
    }
    if (tc->assigned_partitions == 0) {
        snprintf(why, why_size, "no incidents partitions assigned yet");
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    char errstr[512];
    int rc = msp_config_load("ticket-creator", config_table, argc, argv, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "mspsync-ticket-creator: %s\n", errstr);
        return 2;
    }
    tc_t *tc = &T;
    tc->conf.syncro_rate = (double)tc->conf.syncro_rate_milli / 1000.0;
    msp_log_init("ticket-creator", tc->conf.log_level);
    msp_topic_prefix_set(tc->conf.topic_prefix);
    msp_kafka_group_instance_set(tc->conf.group_instance_id);
    if (msp_secret_key_load(&tc->key, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("config.invalid", NULL, "%s", errstr);
        msp_config_free(config_table);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tc->base = event_base_new();
    tc->metrics = msp_metrics_new("ticket-creator");
    msp_metric_declare(tc->metrics, "mspsync_ticket_creator_events_total", "counter",
                       "Incident events by outcome");
    msp_metric_declare(tc->metrics, "mspsync_ticket_creator_requests_total", "counter",
                       "Syncro requests by outcome");
    msp_metric_declare(tc->metrics, "mspsync_ticket_creator_retries_total", "counter",
                       "Syncro requests retried after 429/5xx/timeouts");
    msp_metric_declare(tc->metrics, "mspsync_ticket_creator_ratelimit_waits_total", "counter",
                       "Times a request waited for a rate-limit token");
    msp_metric_declare(tc->metrics, "mspsync_ticket_creator_recovered_total", "counter",
                       "Tickets found by their marker after a crash (not created twice)");
    msp_metric_declare(tc->metrics, "mspsync_ticket_creator_events_held", "gauge",
                       "Incident events in memory");
    msp_metric_declare(tc->metrics, "mspsync_ticket_creator_events_active", "gauge",
                       "Incident events being worked on");
    msp_metric_declare(tc->metrics, "mspsync_ticket_creator_assigned_partitions", "gauge",
                       "incidents partitions owned");
    msp_metric_declare(tc->metrics, "mspsync_ticket_creator_http_inflight", "gauge",
                       "HTTP requests in flight");

    if (msp_svc_ensure_topics(tc->conf.brokers) != 0) return 1;
    tc->producer = msp_kafka_producer_new(tc->conf.brokers, "mspsync-ticket-creator", dr_cb, tc,
                                          errstr, sizeof(errstr));
    const char *topics[] = {msp_topic(MSP_TOPIC_INCIDENTS), NULL};
    tc->consumer = tc->producer ? msp_kafka_consumer_new(tc->conf.brokers, tc->conf.group,
                                                         "mspsync-ticket-creator", topics,
                                                         rebalance_cb, tc, errstr, sizeof(errstr))
                                : NULL;
    if (!tc->producer || !tc->consumer) {
        MSP_ERROR("kafka.init_failed", NULL, "%s", errstr);
        return 1;
    }
    tc->offtrack = msp_offtrack_new();
    msp_http_opts_t hopts = {.timeout_ms = tc->conf.http_timeout_ms};
    tc->http = msp_http_new(tc->base, &hopts);
    if (!tc_redis_ok(tc)) MSP_WARN("redis.unavailable", NULL, "starting anyway; will retry");

    msp_svc_t svc;
    if (msp_svc_wire(&svc, tc->base, tc->consumer, tc->producer, 100, on_consumer, on_producer,
                     on_tick, tc, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("init.failed", NULL, "%s", errstr);
        return 1;
    }
    if (msp_svc_serve_ops(&svc, tc->conf.metrics_bind, (int)tc->conf.metrics_port,
                          tc->conf.port_file, tc->metrics, ready_cb, tc) != 0)
        return 1;
    MSP_INFO("started", NULL, "metrics_port=%d brokers=%s max_active=%lld", svc.ops_port,
             tc->conf.brokers, tc->conf.max_active);

    event_base_dispatch(tc->base);

    /* Shutdown: in-flight Syncro calls are cancelled (their events stay uncommitted and replay;
     * the markers make the replay safe), dead letters are delivered. */
    tc->stopping = 1;
    msp_http_destroy(tc->http);
    tc->http = NULL;
    rd_kafka_flush(tc->producer, 10000);
    tc_destroy_all(tc);
    rd_kafka_consumer_close(tc->consumer);
    rd_kafka_destroy(tc->consumer);
    rd_kafka_destroy(tc->producer);
    msp_offtrack_destroy(tc->offtrack);
    msp_svc_close(&svc);
    if (tc->redis) redisFree(tc->redis);
    msp_metrics_destroy(tc->metrics);
    event_base_free(tc->base);
    curl_global_cleanup();
    msp_secure_zero(&tc->key, sizeof(tc->key));
    MSP_INFO("stopped", NULL, "bye");
    msp_config_free(config_table);
    return 0;
}
