/*
 * mspsync-gateway — the admin REST API (tenants, the Syncro and ConnectWise RMM integrations,
 * the inventory view and date edits, webhook secrets, ticketing settings) and the signed MTP
 * incident webhook.
 *
 * Wiring only (the logic lives in the modules listed in gateway.h), on the service skeleton
 * (svc.h): read the config table and the secret key (msp_svc_configure), listen (the /v1 routes
 * answer 503 and /readyz says why until Kafka is there; /healthz answers throughout), create the
 * topics, start the producer (wired to the loop: msp_svc_wire), Redis (the blocking context of
 * the admin routes, and the async one of the webhooks' tenant cache and the journal's marker
 * check: tenant_cache.c) and the vendor HTTP client on one libevent loop, serve until SIGINT/SIGTERM clears the run flag (lifecycle.h), then shut
 * down in order:
 *   stop accepting → cancel vendor calls → flush the producer (delivery reports answer their held
 *   requests) → answer whatever is still held with 503 → free everything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>

#include "gateway.h"
#include "mspsync/aredis.h"
#include "mspsync/backoff.h"
#include "mspsync/billing.h"
#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"

#define SHUTDOWN_FLUSH_MS 10000
#define TOKEN_MARGIN_MS 60000        /* refresh a cached vendor token this long before expiry */
#define REDIS_ANSWER_MS 3000         /* /readyz: the async Redis connection answered within this */

static gw_t gw;
static msp_svc_t svc;   /* the API server's socket, the producer's wiring, the tick */

static const msp_config_entry_t config[] = {
    {"MSPSYNC_HTTP_BIND", MSP_CFG_STR, "127.0.0.1", "address the API listens on", &gw.cfg.http_bind,
     0, 0, 0},
    {"MSPSYNC_HTTP_PORT", MSP_CFG_INT, "8080", "API port; 0 = any free port", &gw.cfg.http_port, 0,
     65535, 0},
    MSP_SVC_PORT_FILE_ROW(gw.cfg.svc, "API"),
    {"MSPSYNC_ADMIN_TOKEN", MSP_CFG_STR, NULL,
     "bearer token required on every /v1 route except the signed MTP webhooks (incidents, usage)",
     &gw.cfg.admin_token, 0, 0, 1},
    MSP_SVC_KAFKA_ROWS(gw.cfg.svc),
    MSP_SVC_REDIS_ROW(gw.cfg),
    MSP_KAFKA_CONFIG(gw.cfg.svc.kafka),
    MSP_SVC_LOG_ROW(gw.cfg.svc, "info"),
    {"MSPSYNC_MAX_BODY", MSP_CFG_INT, "1048576",
     "hard cap on any request body in bytes: larger bodies are refused with 413 before any "
     "route runs (and the connection closed); must exceed MSPSYNC_WEBHOOK_MAX_BODY",
     &gw.cfg.max_body, 1024, 64LL * 1024 * 1024, 0},
    {"MSPSYNC_VENDOR_TIMEOUT_MS", MSP_CFG_INT, "15000",
     "limit for a vendor check (rate-limit wait + request) when saving an integration",
     &gw.cfg.vendor_timeout_ms, 100, 300000, 0},
    /* every vendor row's PUT setting (msp_vendor_put_part_t.setting), in registry order */
    {"(vendor PUT settings)", MSP_CFG_EXPAND, NULL, NULL, &gw.cfg.put_settings, 0, 0, 0,
     msp_vendor_put_setting_rows},
    MSP_SVC_VENDOR_RATE_ROWS(gw.cfg.svc),
    {"MSPSYNC_KAFKA_DELIVERY_TIMEOUT_MS", MSP_CFG_INT, "30000",
     "how long a queued job, tombstone or webhook incident may wait for Kafka before the "
     "request fails with 503",
     &gw.cfg.kafka_delivery_timeout_ms, 1000, 300000, 0},
    {"MSPSYNC_KAFKA_LINGER_MS", MSP_CFG_INT, "2",
     "how long the producer waits to batch records; every webhook and job answer waits for its "
     "delivery report, so this adds to their latency (the workers use 20)",
     &gw.cfg.kafka_linger_ms, 0, 1000, 0},
    {"MSPSYNC_WEBHOOK_MAX_BODY", MSP_CFG_INT, "262144",
     "largest incident webhook body in bytes (answered 413 in JSON above it)",
     &gw.cfg.webhook_max_body, 1024, 64LL * 1024 * 1024, 0},
    {"MSPSYNC_WEBHOOK_TOLERANCE_S", MSP_CFG_INT, "300",
     "replay window of the incident webhook: X-MSPSync-Timestamp may differ from the gateway "
     "clock by at most this many seconds",
     &gw.cfg.webhook_tolerance_s, 1, 86400, 0},
    MSP_BILLING_TEST_CLOCK_ROW(gw.cfg.test_clock_file),
    {"MSPSYNC_MAX_HEADER_BYTES", MSP_CFG_INT, "16384",
     "largest request line plus header fields in bytes (line ends not counted): above it the "
     "request is refused with 431 as soon as the limit is passed, before auth",
     &gw.cfg.max_header_bytes, 1024, 1024 * 1024, 0},
    {"MSPSYNC_MAX_HEADERS", MSP_CFG_INT, "100",
     "most header fields in a request: more are refused with 431 before auth", &gw.cfg.max_headers,
     10, 10000, 0},
    {NULL},
};

/*
 * /readyz is not authenticated: why is a fixed phrase, the details go to the log. Redis counts
 * as there when the async connection answered lately (the journal's marker check asks every
 * second): a probe never waits on a stalled Redis, and neither does the loop.
 */
static int ready_cb(void *opaque, char *why, size_t why_size) {
    gw_t *g = opaque;
    if (!g->rk) {
        snprintf(why, why_size, "%s", msp_kafka_waiting_why());
        return 0;
    }
    int64_t answered = msp_aredis_answered_ms(g->aredis);
    if (!msp_aredis_up(g->aredis) || msp_now_ms() - answered > REDIS_ANSWER_MS) {
        MSP_WARN("redis.unavailable", NULL, "no answer from Redis for %lld ms%s",
                 (long long)(msp_now_ms() - answered),
                 msp_aredis_up(g->aredis) ? "" : " (not connected)");
        snprintf(why, why_size, "redis unavailable");
        return 0;
    }
    if (g->restoring != 0) { /* a start on an empty Redis, or a wipe: journal.c */
        snprintf(why, why_size,
                 g->restoring == 1 ? "restoring the configuration from kafka"
                                   : "reading the configuration state");
        return 0;
    }
    return gw_kafka_ready(g, why, why_size);
}

/* The producer's queue (delivery reports answer held requests) and the 100 ms tick, which also
 * ends the loop once the run flag is cleared (msp_svc_wire). */
static void on_producer(void *arg) { rd_kafka_poll(((gw_t *)arg)->rk, 0); }

/* Every route but the ops endpoints: nothing works before the producer exists. */
static void route_now(gw_t *g, void *arg) {
    struct evhttp_request *req = arg;
    if (!g->rk) {
        gw_reply_error(g, req, "starting", 503, "the gateway is starting: waiting for Kafka");
        return;
    }
    if (g->restoring == 1 || (g->restoring == 2 && gw_journal_check(g))) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "2");
        gw_reply_error(g, req, "restoring", 503,
                       "restoring the configuration from Kafka after a loss of Redis; retry");
        return;
    }
    gw_route(req, g);
}

/* The webhooks answer from the tenant cache and async Redis on the loop itself; every other
 * request runs on a coroutine of its own, so its synchronous Redis calls never hold the loop
 * (admin.c). So does a webhook before the state marker was first read (route_now reads it). An
 * absolute-form or encoded webhook path merely takes the coroutine's way. */
static void route_cb(struct evhttp_request *req, void *arg) {
    gw_t *g = arg;
    const char *uri = evhttp_request_get_uri(req);
    if (uri && strncmp(uri, "/v1/webhooks/", 13) == 0 && g->restoring != 2)
        route_now(g, req);
    else
        gw_admin_serve(g, req, route_now);
}

static void declare_metrics(msp_metrics_t *m) {
    msp_metric_declare(m, "mspsync_http_requests_total", "counter",
                       "API requests answered, by route and status code.");
    msp_metric_declare(m, "mspsync_jobs_queued_total", "counter",
                       "Sync jobs acknowledged by Kafka.");
    msp_metric_declare(m, "mspsync_vendor_requests_total", "counter",
                       "Vendor API calls made by the gateway, by outcome.");
    msp_metric_declare(m, "mspsync_secrets", "gauge",
                       "Stored secrets by the key of MSPSYNC_SECRET_KEYS that opens them (newest, "
                       "older, unreadable), as of the last GET /v1/secrets or re-seal.");
    msp_metric_declare(m, "mspsync_redis_blocking_commands_total", "counter",
                       "Redis commands the gateway sent on its blocking connection from the loop "
                       "(not from an admin request's coroutine): each holds the loop until Redis "
                       "answers. Expected only at shutdown.");
    msp_metric_add(m, "mspsync_jobs_queued_total", NULL, 0);
    msp_metric_add(m, "mspsync_redis_blocking_commands_total", NULL, 0);
}

/* The gateway's own checks of its settings, after the table's. @returns 0 or -1 (logged). */
static int check_config(const gw_config_t *cfg) {
    if (cfg->webhook_max_body >= cfg->max_body) {
        /* libevent would refuse such bodies itself, before the webhook could name its limit */
        MSP_ERROR("config.invalid", NULL, "MSPSYNC_WEBHOOK_MAX_BODY (%lld) must be smaller than "
                  "MSPSYNC_MAX_BODY (%lld)", cfg->webhook_max_body, cfg->max_body);
        return -1;
    }
    if (!cfg->admin_token[0]) {
        MSP_ERROR("config.invalid", NULL, "MSPSYNC_ADMIN_TOKEN must not be empty");
        return -1;
    }
    msp_log_redact(cfg->admin_token);
    return 0;
}

/* The API server's limits and routes (the ops endpoints are mounted by msp_svc_serve_http). */
static void http_setup(gw_t *g) {
    gw_http_install(g);  /* libevent's own refusals (below) answer in JSON */
    evhttp_set_max_body_size(g->http, (ev_ssize_t)g->cfg.max_body);
    evhttp_set_max_headers_size(g->http, (ev_ssize_t)g->cfg.max_header_bytes);
    /* the methods HTTP defines for an origin server reach the router (405 with Allow on a
     * known route); libevent refuses CONNECT (we are no proxy) and unknown tokens: 501 */
    evhttp_set_allowed_methods(g->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS |
                                            EVHTTP_REQ_TRACE);
    evhttp_set_timeout(g->http, 60);
    evhttp_set_gencb(g->http, route_cb, g);
}

int main(int argc, char **argv) {
    msp_lifecycle_signals();   /* first: SIGTERM must work at any moment, Kafka or not */
    int rc = msp_svc_configure("gateway", config, argc, argv, &gw.cfg.svc, &gw.key);
    if (rc >= 0)
        return rc;
    if (check_config(&gw.cfg) != 0) {
        msp_secure_zero(&gw.key, sizeof(gw.key));
        msp_config_free(config);
        return 2;
    }
    msp_kafka_linger_set((int)gw.cfg.kafka_linger_ms);
    char errstr[512];
    rc = 1;

    /* epoll changelist: evhttp turns a connection's read event off and on for every request;
     * the changes of one loop pass are folded into one epoll_ctl per fd instead of two */
    struct event_config *ecfg = event_config_new();
    if (ecfg)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    gw.base = ecfg ? event_base_new_with_config(ecfg) : NULL;
    if (ecfg)
        event_config_free(ecfg);
    msp_svc_init(&svc, gw.base);
    gw.metrics = msp_metrics_new("gateway");
    gw.http = gw.base ? evhttp_new(gw.base) : NULL;
    msp_http_opts_t hopts = {.timeout_ms = (long)gw.cfg.vendor_timeout_ms,
                             .max_body = 4 * 1024 * 1024};
    gw.vendor = gw.base ? msp_http_new(gw.base, &hopts) : NULL;
    if (!gw.base || !gw.metrics || !gw.http || !gw.vendor) {
        MSP_ERROR("startup", NULL, "out of memory");
        goto out;
    }
    declare_metrics(gw.metrics);
    http_setup(&gw);
    if (msp_svc_serve_http(&svc, gw.http, gw.cfg.http_bind, (int)gw.cfg.http_port,
                           gw.cfg.svc.port_file, gw.metrics, ready_cb, &gw) != 0)
        goto out;

    int made = msp_lifecycle_ensure_topics(gw.cfg.svc.brokers, gw.base);
    if (made != 0) {
        rc = made == -2 ? 2 : 0;   /* a configuration error, or stopped while waiting */
        goto out;
    }
    if (gw_kafka_start(&gw, errstr, sizeof(errstr)) != 0 ||
        msp_svc_wire(&svc, NULL, gw.rk, 100, NULL, on_producer, on_producer, &gw, errstr,
                     sizeof(errstr)) != 0) {
        MSP_ERROR("kafka.producer", NULL, "%s", errstr);
        goto out;
    }
    if (!(gw.redis = msp_redis_connect(gw.cfg.redis_url, errstr, sizeof(errstr))))
        MSP_WARN("redis.connect", NULL, "%s (will retry on use)", errstr);
    /* the async connection first: the token caches (a PUT's proof) work on it, off the loop */
    if (gw_tc_start(&gw) != 0) {
        MSP_ERROR("startup", NULL, "out of memory");
        goto out;
    }
    msp_vendor_auth_env_t aenv = {.base = gw.base,
                                  .http = gw.vendor,
                                  .redis = &gw.redis,
                                  .key = &gw.key,
                                  .token_margin_ms = TOKEN_MARGIN_MS,
                                  .aredis = gw.aredis};
    if (msp_vendor_auth_open(&gw.auth, &aenv) != 0 || gw_admin_start(&gw) != 0 ||
        gw_journal_start(&gw) != 0) {
        MSP_ERROR("startup", NULL, "out of memory");
        goto out;
    }
    if (gw_history_start(&gw, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("kafka.consumer", NULL, "sync history reader: %s", errstr);
        goto out;
    }
    if (gw_replayer_start(&gw, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("kafka.producer", NULL, "%s", errstr);
        goto out;
    }
    MSP_INFO("gateway.started", NULL, "listening on %s:%d", gw.cfg.http_bind, svc.ops_port);

    while (msp_lifecycle_running())
        event_base_dispatch(gw.base);

    MSP_INFO("gateway.stopping", NULL, "shutting down");
    rc = 0;

out:
    gw.stopping = 1;
    msp_svc_stop_accepting(&svc);
    msp_http_destroy(gw.vendor);                   /* callbacks answer 503 */
    /* before the async connection it uses goes (a call cancelled later sees no state) */
    msp_vendor_auth_close(&gw.auth);
    gw_tc_stop(&gw); /* held webhook lookups answer 503; async Redis closed */
    gw_admin_stop(&gw); /* admin requests still waiting answer 503 */
    gw_journal_stop(&gw);
    gw_history_stop(&gw);  /* its reader stops where it is: the positions in Redis say where */
    gw_replayer_stop(&gw); /* a replay in progress stops; its request answers 503 below */
    gw.vendor = NULL;
    /* delivery reports answer the held requests; the producer's wiring goes with it */
    gw_kafka_stop(&gw, msp_lifecycle_budget_ms(SHUTDOWN_FLUSH_MS));
    msp_svc_close(&svc);
    gw_held_fail_all(&gw, "the gateway is shutting down");
    gw_secrets_forget_all(&gw);
    if (gw.base)
        event_base_loop(gw.base, EVLOOP_NONBLOCK); /* push the last replies out */
    if (gw.http)
        evhttp_free(gw.http);
    gw_audit_free_all(&gw); /* records of requests libevent dropped unanswered */
    if (gw.redis)
        redisFree(gw.redis);
    msp_metrics_destroy(gw.metrics);
    if (gw.base)
        event_base_free(gw.base);
    msp_secure_zero(&gw.key, sizeof(gw.key));
    msp_config_free(config);
    if (rc == 0)
        MSP_INFO("gateway.stopped", NULL, "bye");
    return rc;
}
