/*
 * mspsync-ticket-creator — turns canonical incidents into Syncro tickets (see tc.h, work.c).
 *
 * Wiring only: configuration, the Kafka side (a keyed worker, svc.h), Redis, the HTTP client,
 * the release of held incidents (hold.c) and the event loop.
 *
 * Redis is one async connection (aredis.h) on the loop: /readyz says "redis unavailable" when it
 * has not answered within MSP_SVC_REDIS_ANSWER_MS, from what the tick's probe last heard, and
 * never waits on Redis itself.
 */
#include "tc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <curl/curl.h>

#include "mspsync/backoff.h"
#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"
#include "mspsync/svc.h"

static tc_t T;

static const msp_config_entry_t config_table[] = {
    MSP_SVC_WORKER_CONFIG(T.conf.svc, "mspsync-ticket-creator",
                          "Kafka consumer group of the ticket-creators", "9103"),
    MSP_SVC_VENDOR_RATE_ROWS(T.conf.svc),
    MSP_SVC_KEYQ_ROWS(T.conf.max_active, T.conf.max_queued,
                      "Incidents (distinct fingerprints) worked on at once by one replica",
                      "Incident events"),
    MSP_SVC_BACKOFF_ROWS(T.conf.backoff_base_ms, T.conf.backoff_cap_ms, "30000"),
    MSP_SVC_HTTP_TIMEOUT_ROW(T.conf.http_timeout_ms),
    {"MSPSYNC_SEARCH_MAX_PAGES", MSP_CFG_INT, "20",
     "Ticket list pages searched for our marker after a crash between create and record",
     &T.conf.search_max_pages, 1, 1000},
    {NULL},
};

/* The keyed worker's callbacks (svc.h). */
static void on_message(void *arg, rd_kafka_message_t *msg) { tc_accept(arg, msg); }

static void on_delivery(void *arg, const rd_kafka_message_t *msg) {
    tc_delivery_report(arg, msg);
}

static void on_tick(void *arg) {
    tc_t *tc = arg;
    msp_metric_set(tc->metrics, "mspsync_ticket_creator_http_inflight", NULL,
                   msp_http_inflight(tc->http));
}

int main(int argc, char **argv) {
    msp_lifecycle_signals();   /* first: SIGTERM must work at any moment, Kafka or not */
    int rc = msp_svc_configure("ticket-creator", config_table, argc, argv, &T.conf.svc, &T.key);
    if (rc >= 0) return rc;   /* --help, or a configuration error */
    int exit_code = 0;
    tc_t *tc = &T;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tc->base = event_base_new();
    /* Connecting (and reconnecting) by itself from here on: nothing waits for Redis. */
    tc->aredis = msp_aredis_new(tc->base, tc->conf.svc.redis_url, 0);
    if (!tc->aredis) {
        MSP_ERROR("oom", NULL, "no Redis connection");
        return 1;
    }
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

    msp_svc_worker_t *w = &tc->worker;
    *w = (msp_svc_worker_t){
        .conf = &tc->conf.svc,
        .client_id = "mspsync-ticket-creator",
        .topic = MSP_TOPIC_INCIDENTS,
        .metrics = tc->metrics,
        .aredis = tc->aredis,
        .gauge_partitions = "mspsync_ticket_creator_assigned_partitions",
        .gauge_held = "mspsync_ticket_creator_events_held",
        .gauge_active = "mspsync_ticket_creator_events_active",
        .accept = on_message,
        .delivery_report = on_delivery,
        .tick = on_tick,
        .arg = tc,
    };
    msp_keyq_ops_t ops = tc_keyq_ops;
    ops.opaque = tc;
    /* The ops server first: /healthz answers (and /readyz says why not) while Kafka is awaited. */
    msp_svc_t svc;
    int started = msp_svc_worker_start(w, &svc, tc->base, (int)tc->conf.max_active,
                                       (int)tc->conf.max_queued, &ops);
    if (started >= 0) {
        exit_code = started; /* 0 stopped while waiting for Kafka, 1 or 2 failed */
        goto stop;
    }
    msp_http_opts_t hopts = {.timeout_ms = tc->conf.http_timeout_ms};
    tc->http = msp_http_new(tc->base, &hopts);
    tc_vcall_env(tc);
    if (tc_release_init(tc) != 0) {
        MSP_ERROR("init.failed", NULL, "cannot start the release of held incidents");
        exit_code = 1;
        goto stop;
    }

    if (msp_svc_worker_serve(w, &svc) != 0) return 1;
    char shown[512];
    MSP_INFO("started", NULL, "metrics_port=%d brokers=%s max_active=%lld", svc.ops_port,
             msp_url_mask(tc->conf.svc.brokers, shown, sizeof(shown)), tc->conf.max_active);

    if (msp_lifecycle_running()) event_base_dispatch(tc->base);

stop:
    /* Shutdown: in-flight Syncro calls are cancelled (their events stay uncommitted and replay;
     * the markers make the replay safe), dead letters are delivered. */
    tc->stopping = 1;
    msp_keyq_stop(w->kq);
    msp_http_destroy(tc->http);
    tc->http = NULL;
    msp_svc_worker_close(w);
    /* After the flush (a released event's dead letter reports there); an event still in flight
     * stays held: its `from` did not move. */
    tc_release_close(tc);
    msp_svc_close(&svc);
    msp_aredis_cancel(tc->aredis, tc); /* the probe's (hold.c's went with the releaser) */
    msp_aredis_free(tc->aredis);       /* after every owner of a reply is gone */
    msp_metrics_destroy(tc->metrics);
    event_base_free(tc->base);
    curl_global_cleanup();
    msp_secure_zero(&tc->key, sizeof(tc->key));
    MSP_INFO("stopped", NULL, "bye");
    msp_config_free(config_table);
    return exit_code;
}
