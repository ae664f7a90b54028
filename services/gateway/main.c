/*
 * mspsync-gateway — the admin REST API (tenants, the Syncro and ConnectWise RMM integrations,
 * the inventory view and date edits, webhook secrets, ticketing settings) and the signed MTP
 * incident webhook.
 *
 * Wiring only (the logic lives in the modules listed in gateway.h): read the config table, install
 * the signal handlers, load the secret key, listen (the /v1 routes answer 503 and /readyz says
 * why until Kafka is there; /healthz answers throughout), create the topics, start the producer,
 * Redis and the vendor HTTP client on one libevent loop, serve until SIGINT/SIGTERM clears the
 * run flag (lifecycle.h), then shut down in order:
 *   stop accepting → cancel vendor calls → flush the producer (delivery reports answer their held
 *   requests) → answer whatever is still held with 503 → free everything.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/http.h>

#include "gateway.h"
#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"

#define SHUTDOWN_FLUSH_MS 10000
#define CWRMM_TOKEN_MARGIN_MS 60000  /* refresh a ConnectWise RMM token this long before expiry */

static gw_t gw;

static const msp_config_entry_t config[] = {
    {"MSPSYNC_HTTP_BIND", MSP_CFG_STR, "127.0.0.1", "address the API listens on",
     &gw.cfg.http_bind, 0, 0, 0},
    {"MSPSYNC_HTTP_PORT", MSP_CFG_INT, "8080", "API port; 0 = any free port",
     &gw.cfg.http_port, 0, 65535, 0},
    {"MSPSYNC_PORT_FILE", MSP_CFG_STR, "", "if set, the bound port is written to this file",
     &gw.cfg.port_file, 0, 0, 0},
    {"MSPSYNC_ADMIN_TOKEN", MSP_CFG_STR, NULL,
     "bearer token required on every /v1 route except the signed incident webhook",
     &gw.cfg.admin_token, 0, 0, 1},
    {"MSPSYNC_KAFKA_BROKERS", MSP_CFG_STR, "127.0.0.1:9092", "Kafka bootstrap servers",
     &gw.cfg.kafka_brokers, 0, 0, 0},
    {"MSPSYNC_REDIS_URL", MSP_CFG_STR, "127.0.0.1:6379", "Redis: host:port or redis://host:port/db",
     &gw.cfg.redis_url, 0, 0, 0},
    {"MSPSYNC_TOPIC_PREFIX", MSP_CFG_STR, "", "prepended to every Kafka topic name",
     &gw.cfg.topic_prefix, 0, 0, 0},
    MSP_KAFKA_CONFIG(gw.cfg.kafka),
    {"MSPSYNC_LOG_LEVEL", MSP_CFG_STR, "info", "debug, info, warn or error",
     &gw.cfg.log_level, 0, 0, 0},
    {"MSPSYNC_MAX_BODY", MSP_CFG_INT, "1048576",
     "hard cap on any request body in bytes: larger bodies are refused with 413 before any "
     "route runs (and the connection closed); must exceed MSPSYNC_WEBHOOK_MAX_BODY",
     &gw.cfg.max_body, 1024, 64LL * 1024 * 1024, 0},
    {"MSPSYNC_VENDOR_TIMEOUT_MS", MSP_CFG_INT, "15000",
     "limit for a vendor check (rate-limit wait + request) when saving an integration",
     &gw.cfg.vendor_timeout_ms, 100, 300000, 0},
    {"MSPSYNC_SYNCRO_RATE_MILLI", MSP_CFG_INT, "2900",
     "Syncro requests per 1000 s for one account, shared with the fetchers: set it the same in "
     "every service (Syncro allows 180/min = 3000)",
     &gw.cfg.syncro_rate_milli, 1, 10000000, 0},
    {"MSPSYNC_SYNCRO_BURST", MSP_CFG_INT, "3", "Syncro burst size per account",
     &gw.cfg.syncro_burst, 1, 1000, 0},
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
    {"MSPSYNC_MAX_HEADER_BYTES", MSP_CFG_INT, "16384",
     "largest request line plus header fields in bytes (line ends not counted): above it the "
     "request is refused with 431 as soon as the limit is passed, before auth",
     &gw.cfg.max_header_bytes, 1024, 1024 * 1024, 0},
    {"MSPSYNC_MAX_HEADERS", MSP_CFG_INT, "100",
     "most header fields in a request: more are refused with 431 before auth",
     &gw.cfg.max_headers, 10, 10000, 0},
    {NULL},
};

/* /readyz is not authenticated: why is a fixed phrase, the details go to the log. */
static int ready_cb(void *opaque, char *why, size_t why_size) {
    gw_t *g = opaque;
    char err[256];
    if (!g->rk) {
        snprintf(why, why_size, "%s", msp_kafka_waiting_why());
        return 0;
    }
    if (!gw_redis_ping(g, err, sizeof(err))) {
        MSP_WARN("redis.unavailable", NULL, "%s", err);
        snprintf(why, why_size, "redis unavailable");
        return 0;
    }
    return gw_kafka_ready(g, why, why_size);
}

/* The 100 ms tick: notice a cleared run flag (the handler itself only sets a flag). */
static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    if (!msp_lifecycle_running())
        event_base_loopbreak(gw.base);
}

/* Every route but the ops endpoints: nothing works before the producer exists. */
static void route_cb(struct evhttp_request *req, void *arg) {
    gw_t *g = arg;
    if (!g->rk) {
        gw_reply_error(g, req, "starting", 503, "the gateway is starting: waiting for Kafka");
        return;
    }
    gw_route(req, arg);
}

static int write_port_file(const char *path, int port) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

static int bound_port(struct evhttp_bound_socket *sock) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void declare_metrics(msp_metrics_t *m) {
    msp_metric_declare(m, "mspsync_http_requests_total", "counter",
                       "API requests answered, by route and status code.");
    msp_metric_declare(m, "mspsync_jobs_queued_total", "counter",
                       "Sync jobs acknowledged by Kafka.");
    msp_metric_declare(m, "mspsync_vendor_requests_total", "counter",
                       "Vendor API calls made by the gateway, by outcome.");
    msp_metric_add(m, "mspsync_jobs_queued_total", NULL, 0);
}

int main(int argc, char **argv) {
    msp_lifecycle_signals();   /* first: SIGTERM must work at any moment, Kafka or not */
    char errstr[512];
    int rc = 1;
    struct event *tick = NULL;
    struct evhttp_bound_socket *sock = NULL;

    gw.kafka_pipe[0] = gw.kafka_pipe[1] = -1;

    int lrc = msp_config_load("gateway", config, argc, argv, errstr, sizeof(errstr));
    if (lrc == 1)
        return 0;
    msp_log_init("gateway", lrc == 0 ? gw.cfg.log_level : NULL);
    if (lrc != 0) {
        MSP_ERROR("config.invalid", NULL, "%s", errstr);
        goto out;
    }
    if (gw.cfg.webhook_max_body >= gw.cfg.max_body) {
        /* libevent would refuse such bodies itself, before the webhook could name its limit */
        MSP_ERROR("config.invalid", NULL, "MSPSYNC_WEBHOOK_MAX_BODY (%lld) must be smaller than "
                  "MSPSYNC_MAX_BODY (%lld)", gw.cfg.webhook_max_body, gw.cfg.max_body);
        goto out;
    }
    if (!gw.cfg.admin_token[0]) {
        MSP_ERROR("config.invalid", NULL, "MSPSYNC_ADMIN_TOKEN must not be empty");
        goto out;
    }
    msp_log_redact(gw.cfg.admin_token);
    if (msp_secret_key_load(&gw.key, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("config.secret_key", NULL, "%s", errstr);
        goto out;
    }

    if (msp_kafka_configure(&gw.cfg.kafka, gw.cfg.topic_prefix, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("config.invalid", NULL, "%s", errstr);
        goto out;
    }
    msp_kafka_linger_set((int)gw.cfg.kafka_linger_ms);

    gw.base = event_base_new();
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

    gw_http_install(&gw);  /* libevent's own refusals (below) answer in JSON */
    evhttp_set_max_body_size(gw.http, (ev_ssize_t)gw.cfg.max_body);
    evhttp_set_max_headers_size(gw.http, (ev_ssize_t)gw.cfg.max_header_bytes);
    /* the methods HTTP defines for an origin server reach the router (405 with Allow on a
     * known route); libevent refuses CONNECT (we are no proxy) and unknown tokens: 501 */
    evhttp_set_allowed_methods(gw.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS |
                                            EVHTTP_REQ_TRACE);
    evhttp_set_timeout(gw.http, 60);
    evhttp_set_gencb(gw.http, route_cb, &gw);
    if (msp_ops_mount(gw.http, gw.metrics, ready_cb, &gw) != 0) {
        MSP_ERROR("startup", NULL, "could not mount the ops endpoints");
        goto out;
    }
    sock = evhttp_bind_socket_with_handle(gw.http, gw.cfg.http_bind, (ev_uint16_t)gw.cfg.http_port);
    if (!sock) {
        MSP_ERROR("http.bind", NULL, "cannot listen on %s:%lld: %s", gw.cfg.http_bind,
                  gw.cfg.http_port, strerror(errno));
        goto out;
    }
    int port = bound_port(sock);
    if (gw.cfg.port_file[0] && write_port_file(gw.cfg.port_file, port) != 0) {
        MSP_ERROR("http.port_file", NULL, "cannot write %s: %s", gw.cfg.port_file,
                  strerror(errno));
        goto out;
    }

    tick = event_new(gw.base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 100 * 1000};
    event_add(tick, &tv);

    int made = msp_lifecycle_ensure_topics(gw.cfg.kafka_brokers, gw.base);
    if (made != 0) {
        rc = made == -2 ? 1 : 0;   /* a configuration error, or stopped while waiting */
        goto out;
    }
    if (gw_kafka_start(&gw, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("kafka.producer", NULL, "%s", errstr);
        goto out;
    }
    if (!(gw.redis = msp_redis_connect(gw.cfg.redis_url, errstr, sizeof(errstr))))
        MSP_WARN("redis.connect", NULL, "%s (will retry on use)", errstr);
    gw.cwtokens = msp_cwrmm_tokens_new(gw.base, gw.vendor, &gw.redis, &gw.key,
                                       CWRMM_TOKEN_MARGIN_MS);
    if (!gw.cwtokens) {
        MSP_ERROR("startup", NULL, "out of memory");
        goto out;
    }
    MSP_INFO("gateway.started", NULL, "listening on %s:%d", gw.cfg.http_bind, port);

    while (msp_lifecycle_running())
        event_base_dispatch(gw.base);

    MSP_INFO("gateway.stopping", NULL, "shutting down");
    rc = 0;

out:
    gw.stopping = 1;
    if (sock)
        evhttp_del_accept_socket(gw.http, sock);   /* stop accepting */
    msp_http_destroy(gw.vendor);                   /* callbacks answer 503 */
    gw.vendor = NULL;
    gw_kafka_stop(&gw, msp_lifecycle_budget_ms(SHUTDOWN_FLUSH_MS)); /* delivery reports answer the held requests */
    gw_held_fail_all(&gw, "the gateway is shutting down"); /* drops token waiters */
    msp_cwrmm_tokens_destroy(gw.cwtokens);
    gw.cwtokens = NULL;
    gw_secrets_forget_all(&gw);
    if (gw.base)
        event_base_loop(gw.base, EVLOOP_NONBLOCK); /* push the last replies out */
    if (tick)
        event_free(tick);
    if (gw.http)
        evhttp_free(gw.http);
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
