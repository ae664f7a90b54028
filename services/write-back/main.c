/*
 * mspsync-write-back — writes changed asset dates back into ConnectWise RMM and Syncro
 * (see wb.h, work.c).
 *
 * Wiring only: configuration, the Kafka side (a keyed worker, svc.h), Redis (the async
 * connection every step uses; a blocking one for the token cache), the HTTP client, the token
 * cache and the event loop.
 */
#include "wb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <curl/curl.h>

#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"

#define M_PARTITIONS "mspsync_write_back_assigned_partitions"

static wb_t W;

static const msp_config_entry_t config_table[] = {
    MSP_SVC_WORKER_CONFIG(W.conf.svc, "mspsync-write-back",
                          "Kafka consumer group of the write-backs", "9104"),
    MSP_SVC_VENDOR_RATE_ROWS(W.conf.svc),
    MSP_SVC_CWRMM_TOKEN_MARGIN_ROW(W.conf.cwrmm_token_margin_ms),
    MSP_SVC_KEYQ_ROWS(W.conf.max_active, W.conf.max_queued,
                      "Assets whose date changes are written at once by one replica",
                      "Date changes"),
    MSP_SVC_BACKOFF_ROWS(W.conf.backoff_base_ms, W.conf.backoff_cap_ms, "30000"),
    MSP_SVC_HTTP_TIMEOUT_ROW(W.conf.http_timeout_ms),
    {"MSPSYNC_DONE_TTL_DAYS", MSP_CFG_INT, "90",
     "Days a finished change id is remembered per asset (a replay older than that is checked against the vendor only)",
     &W.conf.done_ttl_days, 1, 3650},
    {NULL},
};

/* The keyed worker's callbacks (svc.h). */
static void on_message(void *arg, rd_kafka_message_t *msg) { wb_accept(arg, msg); }

static void on_delivery(void *arg, const rd_kafka_message_t *msg) {
    wb_delivery_report(arg, msg);
}

static void on_tick(void *arg) {
    wb_t *wb = arg;
    wb_state_rebuild_tick(wb); /* after a loss of Redis: the states from wb.states */
    msp_metric_set(wb->metrics, "mspsync_write_back_http_inflight", NULL,
                   msp_http_inflight(wb->http));
    for (size_t i = 0; msp_vendor_at(i); i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        char labels[64];
        snprintf(labels, sizeof(labels), "vendor=\"%s\"", v->name);
        if (v->auth_requested && msp_vendor_auth_state(&wb->auth, v))
            msp_metric_set(wb->metrics, "mspsync_write_back_token_requests_total", labels,
                           (double)v->auth_requested(msp_vendor_auth_state(&wb->auth, v)));
    }
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
    msp_metric_declare(m, "mspsync_write_back_token_requests_total", "counter",
                       "Tokens this process asked a vendor for, by vendor (ConnectWise RMM: POST "
                       "/v1/token)");
    msp_metric_declare(m, "mspsync_write_back_changes_held", "gauge", "Date changes in memory");
    msp_metric_declare(m, "mspsync_write_back_changes_active", "gauge",
                       "Date changes being worked on");
    msp_metric_declare(m, M_PARTITIONS, "gauge", "date.changes partitions owned");
    msp_metric_declare(m, "mspsync_write_back_http_inflight", "gauge", "HTTP requests in flight");
}

int main(int argc, char **argv) {
    msp_lifecycle_signals();   /* first: SIGTERM must work at any moment, Kafka or not */
    int rc = msp_svc_configure("write-back", config_table, argc, argv, &W.conf.svc, &W.key);
    if (rc >= 0) return rc;   /* --help, or a configuration error */
    int exit_code = 0;
    wb_t *wb = &W;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    wb->base = event_base_new();
    wb->metrics = msp_metrics_new("write-back");
    declare_metrics(wb->metrics);

    msp_svc_worker_t *w = &wb->worker;
    *w = (msp_svc_worker_t){
        .conf = &wb->conf.svc,
        .client_id = "mspsync-write-back",
        .topic = MSP_TOPIC_DATE_CHANGES,
        .metrics = wb->metrics,
        .redis = &wb->redis,
        .gauge_partitions = M_PARTITIONS,
        .gauge_held = "mspsync_write_back_changes_held",
        .gauge_active = "mspsync_write_back_changes_active",
        .accept = on_message,
        .delivery_report = on_delivery,
        .tick = on_tick,
        .arg = wb,
    };
    /* Redis first: it connects (and reconnects) by itself while Kafka is awaited. */
    wb->aredis = msp_aredis_new(wb->base, wb->conf.svc.redis_url, 0);
    if (!wb->aredis) {
        MSP_ERROR("init.failed", NULL, "out of memory");
        return 1;
    }
    w->aredis = wb->aredis; /* /readyz asks it (and state.c's look), never waiting on Redis */
    msp_keyq_ops_t ops = wb_keyq_ops;
    ops.opaque = wb;
    /* The ops server first: /healthz answers (and /readyz says why not) while Kafka is awaited. */
    msp_svc_t svc;
    int started = msp_svc_worker_start(w, &svc, wb->base, (int)wb->conf.max_active,
                                       (int)wb->conf.max_queued, &ops);
    if (started >= 0) {
        exit_code = started; /* 0 stopped while waiting for Kafka, 1 or 2 failed */
        goto stop;
    }
    msp_http_opts_t hopts = {.timeout_ms = wb->conf.http_timeout_ms};
    wb->http = msp_http_new(wb->base, &hopts);
    msp_vendor_auth_env_t aenv = {
        wb->base, wb->http, &wb->redis, &wb->key, wb->conf.cwrmm_token_margin_ms, wb->aredis};
    if (!wb->http || msp_vendor_auth_open(&wb->auth, &aenv) != 0) {
        MSP_ERROR("init.failed", NULL, "out of memory");
        return 1;
    }
    wb_vcall_env(wb);

    if (msp_svc_worker_serve(w, &svc) != 0) return 1;
    char shown[512];
    MSP_INFO("started", NULL, "metrics_port=%d brokers=%s max_active=%lld", svc.ops_port,
             msp_url_mask(wb->conf.svc.brokers, shown, sizeof(shown)), wb->conf.max_active);

    if (msp_lifecycle_running()) event_base_dispatch(wb->base);

stop:
    /* Shutdown: in-flight vendor calls are cancelled (their changes stay uncommitted and replay;
     * the read before every write makes the replay safe), dead letters are delivered. */
    wb->stopping = 1;
    msp_keyq_stop(w->kq);
    wb_state_rebuild_close(wb); /* its thread borrows the configuration */
    msp_http_destroy(wb->http);
    wb->http = NULL;
    msp_vendor_auth_close(&wb->auth);
    msp_svc_worker_close(w);   /* dead letters delivered; the consumer closed before the queue */
    msp_svc_close(&svc);
    msp_aredis_free(wb->aredis); /* after the items: they cancelled their callbacks */
    if (wb->redis) redisFree(wb->redis);
    msp_metrics_destroy(wb->metrics);
    event_base_free(wb->base);
    curl_global_cleanup();
    msp_secure_zero(&wb->key, sizeof(wb->key));
    MSP_INFO("stopped", NULL, "bye");
    msp_config_free(config_table);
    return exit_code;
}
