/*
 * mspsync-billing — usage reports become monthly high-water marks, and the marks become the
 * quantities of Syncro recurring-invoice lines, daily and on demand (see billing.h, work.c,
 * sched.c).
 *
 * Wiring only: configuration, the Kafka side (a keyed worker, svc.h), Redis, the HTTP client
 * and the event loop.
 */
#include "billing.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/billing.h"
#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"

#define M_PARTITIONS "mspsync_billing_assigned_partitions"

static bl_t B;

static const msp_config_entry_t config_table[] = {
    MSP_SVC_WORKER_CONFIG(B.conf.svc, "mspsync-billing",
                          "Kafka consumer group of the billing "
                          "services",
                          "9106"),
    MSP_SVC_VENDOR_RATE_ROWS(B.conf.svc),
    MSP_SVC_KEYQ_ROWS(B.conf.max_active, B.conf.max_queued,
                      "Marks (org and product) and tenants' pushes worked on at once by one "
                      "replica",
                      "Usage reports and push requests"),
    MSP_SVC_BACKOFF_ROWS(B.conf.backoff_base_ms, B.conf.backoff_cap_ms, "30000"),
    MSP_SVC_HTTP_TIMEOUT_ROW(B.conf.http_timeout_ms),
    {"MSPSYNC_BILLING_SCHEDULE_CHECK_MS", MSP_CFG_INT, "30000",
     "How often the daily push times of the tenants are checked (0 = no daily push)",
     &B.conf.schedule_check_ms, 0, 86400000},
    {"MSPSYNC_BILLING_HISTORY_MAX", MSP_CFG_INT, "200",
     "Quantity changes kept per invoice line in its push history", &B.conf.history_max, 1, 100000},
    MSP_BILLING_TEST_CLOCK_ROW(B.conf.test_clock_file),
    {NULL},
};

static void on_message(void *arg, rd_kafka_message_t *msg) { bl_accept(arg, msg); }

static void on_delivery(void *arg, const rd_kafka_message_t *msg) { bl_delivery_report(arg, msg); }

static void on_tick(void *arg) {
    bl_t *bl = arg;
    msp_metric_set(bl->metrics, "mspsync_billing_http_inflight", NULL, msp_http_inflight(bl->http));
    bl_schedule_tick(bl);
}

static void declare_metrics(msp_metrics_t *m) {
    msp_metric_declare(m, "mspsync_billing_reports_total", "counter",
                       "Usage reports by outcome (applied, late)");
    msp_metric_declare(m, "mspsync_billing_pushes_total", "counter",
                       "Pushes by outcome (done, failed)");
    msp_metric_declare(m, "mspsync_billing_requests_total", "counter",
                       "Syncro requests by outcome");
    msp_metric_declare(m, "mspsync_billing_retries_total", "counter",
                       "Syncro calls retried after 423/429/5xx/timeouts/transport errors");
    msp_metric_declare(m, "mspsync_billing_dead_lettered_total", "counter",
                       "Messages sent to the dlq topic");
    msp_metric_declare(m, "mspsync_billing_ratelimit_waits_total", "counter",
                       "Times a request waited for a rate-limit token");
    msp_metric_declare(m, "mspsync_billing_messages_held", "gauge", "Messages in memory");
    msp_metric_declare(m, "mspsync_billing_messages_active", "gauge", "Messages being worked on");
    msp_metric_declare(m, M_PARTITIONS, "gauge", "usage.events partitions owned");
    msp_metric_declare(m, "mspsync_billing_http_inflight", "gauge", "HTTP requests in flight");
}

int main(int argc, char **argv) {
    msp_lifecycle_signals(); /* first: SIGTERM must work at any moment, Kafka or not */
    int rc = msp_svc_configure("billing", config_table, argc, argv, &B.conf.svc, &B.key);
    if (rc >= 0)
        return rc; /* --help, or a configuration error */
    int exit_code = 0;
    bl_t *bl = &B;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    bl->base = event_base_new();
    bl->metrics = msp_metrics_new("billing");
    declare_metrics(bl->metrics);

    msp_svc_worker_t *w = &bl->worker;
    *w = (msp_svc_worker_t){
        .conf = &bl->conf.svc,
        .client_id = "mspsync-billing",
        .topic = MSP_TOPIC_USAGE_EVENTS,
        .metrics = bl->metrics,
        .redis = &bl->redis,
        .gauge_partitions = M_PARTITIONS,
        .gauge_held = "mspsync_billing_messages_held",
        .gauge_active = "mspsync_billing_messages_active",
        .accept = on_message,
        .delivery_report = on_delivery,
        .tick = on_tick,
        .arg = bl,
    };
    msp_keyq_ops_t ops = bl_keyq_ops;
    ops.opaque = bl;
    /* The ops server first: /healthz answers (and /readyz says why not) while Kafka is awaited. */
    msp_svc_t svc;
    int started = msp_svc_worker_start(w, &svc, bl->base, (int)bl->conf.max_active,
                                       (int)bl->conf.max_queued, &ops);
    if (started >= 0) {
        exit_code = started; /* 0 stopped while waiting for Kafka, 1 or 2 failed */
        goto stop;
    }
    msp_http_opts_t hopts = {.timeout_ms = bl->conf.http_timeout_ms};
    bl->http = msp_http_new(bl->base, &hopts);
    if (!bl->http) {
        MSP_ERROR("init.failed", NULL, "out of memory");
        return 1;
    }
    bl_vcall_env(bl);
    if (!bl_redis_ok(bl))
        MSP_WARN("redis.unavailable", NULL, "starting anyway; will retry");

    if (msp_svc_worker_serve(w, &svc) != 0)
        return 1;
    char shown[512];
    MSP_INFO("started", NULL, "metrics_port=%d brokers=%s max_active=%lld", svc.ops_port,
             msp_url_mask(bl->conf.svc.brokers, shown, sizeof(shown)), bl->conf.max_active);

    if (msp_lifecycle_running())
        event_base_dispatch(bl->base);

stop:
    /* Shutdown: in-flight Syncro calls are cancelled (their pushes stay uncommitted and replay;
     * the read before every write makes the replay safe), dead letters are delivered. */
    bl->stopping = 1;
    bl_replay_stop(bl); /* its thread uses the configuration freed below */
    msp_keyq_stop(w->kq);
    msp_http_destroy(bl->http);
    bl->http = NULL;
    msp_svc_worker_close(w); /* dead letters delivered; the consumer closed before the queue */
    msp_svc_close(&svc);
    if (bl->redis)
        redisFree(bl->redis);
    msp_metrics_destroy(bl->metrics);
    event_base_free(bl->base);
    curl_global_cleanup();
    msp_secure_zero(&bl->key, sizeof(bl->key));
    MSP_INFO("stopped", NULL, "bye");
    msp_config_free(config_table);
    return exit_code;
}
