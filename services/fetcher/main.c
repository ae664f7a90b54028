/*
 * mspsync-fetcher — pulls vendor data for sync jobs and puts it on raw.records.
 *
 * Wiring only: configuration, the Kafka handles, Redis, the HTTP client and the event loop.
 * The job state machine is in job.c, the scheduler in sched.c.
 */
#include "fetcher.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>

#include "mspsync/backoff.h"
#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/priority.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"

static fetcher_t F;

static const msp_config_entry_t config_table[] = {
    {"MSPSYNC_KAFKA_BROKERS", MSP_CFG_STR, "127.0.0.1:9092", "Kafka bootstrap servers",
     &F.conf.brokers},
    {"MSPSYNC_REDIS_URL", MSP_CFG_STR, "127.0.0.1:6379", "Redis address (host:port or redis://host:port/db)",
     &F.conf.redis_url},
    {"MSPSYNC_TOPIC_PREFIX", MSP_CFG_STR, "", "Prefix of every Kafka topic name", &F.conf.topic_prefix},
    {"MSPSYNC_GROUP", MSP_CFG_STR, "mspsync-fetcher", "Kafka consumer group of the fetchers",
     &F.conf.group},
    {"MSPSYNC_LOG_LEVEL", MSP_CFG_STR, "info", "debug, info, warn or error", &F.conf.log_level},
    {"MSPSYNC_NICE", MSP_CFG_INT, "10",
     "CPU niceness taken at start, 0-19 (priority.h): syncs are bulk work and yield the CPU to "
     "the incident path", &F.conf.nice, 0, 19},
    {"MSPSYNC_METRICS_BIND", MSP_CFG_STR, "127.0.0.1", "Address of /healthz, /readyz, /metrics",
     &F.conf.metrics_bind},
    {"MSPSYNC_METRICS_PORT", MSP_CFG_INT, "9100", "Port of /healthz, /readyz, /metrics (0 = any free port)",
     &F.conf.metrics_port, 0, 65535},
    {"MSPSYNC_PORT_FILE", MSP_CFG_STR, "", "If set, the bound metrics port is written to this file",
     &F.conf.port_file},
    MSP_KAFKA_CONFIG(F.conf.kafka),
    {"MSPSYNC_SYNCRO_RATE_MILLI", MSP_CFG_INT, "2900",
     "Syncro requests per 1000 s for one account, shared with every replica and the gateway: set it the same in every service (Syncro allows 180/min = 3000)",
     &F.conf.syncro_rate_milli, 1, 10000000},
    {"MSPSYNC_SYNCRO_BURST", MSP_CFG_INT, "3", "Requests a Syncro account's bucket allows at once",
     &F.conf.syncro_burst, 1, 10000},
    {"MSPSYNC_CWRMM_RATE_MILLI", MSP_CFG_INT, "10000",
     "ConnectWise RMM requests per 1000 s for one API client (client id), shared by every replica",
     &F.conf.cwrmm_rate_milli, 1, 100000000},
    {"MSPSYNC_CWRMM_BURST", MSP_CFG_INT, "10", "Requests a ConnectWise RMM client's bucket allows at once",
     &F.conf.cwrmm_burst, 1, 100000},
    {"MSPSYNC_CWRMM_PAGE_SIZE", MSP_CFG_INT, "500", "Devices per ConnectWise RMM list request (the API allows 500)",
     &F.conf.cwrmm_page_size, 1, 500},
    {"MSPSYNC_CWRMM_TOKEN_MARGIN_MS", MSP_CFG_INT, "300000",
     "Refresh a ConnectWise RMM token this long before it expires (at most a quarter of its life)",
     &F.conf.cwrmm_token_margin_ms, 0, 3600000},
    {"MSPSYNC_SCHEDULE", MSP_CFG_BOOL, "1", "Queue incremental syncs on a schedule", &F.conf.schedule_enabled},
    {"MSPSYNC_SCHEDULE_INTERVAL_MS", MSP_CFG_INT, "3600000", "Time between incremental syncs of a tenant",
     &F.conf.schedule_interval_ms, 1000, 86400000LL * 30},
    {"MSPSYNC_SCHEDULE_CHECK_MS", MSP_CFG_INT, "30000", "How often a replica looks for tenants due a sync",
     &F.conf.schedule_check_ms, 100, 3600000},
    {"MSPSYNC_MAX_JOBS", MSP_CFG_INT, "5000", "Jobs one replica runs at once", &F.conf.max_jobs, 1, 1000000},
    {"MSPSYNC_MAX_ATTEMPTS", MSP_CFG_INT, "12",
     "Attempts at one page before the job fails (429, 5xx, timeouts, unreadable pages)",
     &F.conf.max_attempts, 1, 1000},
    {"MSPSYNC_BACKOFF_BASE_MS", MSP_CFG_INT, "500", "First retry delay (doubles, full jitter)",
     &F.conf.backoff_base_ms, 1, 600000},
    {"MSPSYNC_BACKOFF_CAP_MS", MSP_CFG_INT, "60000", "Longest retry delay", &F.conf.backoff_cap_ms, 1, 3600000},
    {"MSPSYNC_HTTP_TIMEOUT_MS", MSP_CFG_INT, "30000", "Timeout of one vendor request",
     &F.conf.http_timeout_ms, 100, 600000},
    {"MSPSYNC_HTTP_MAX_HOST_CONNECTIONS", MSP_CFG_INT, "0",
     "Connections per vendor host (0 = unlimited)", &F.conf.http_max_conns, 0, 100000},
    {NULL},
};

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    fetcher_t *f = opaque;
    /* parts: the change (COOPERATIVE) or the whole assignment (EAGER, librdkafka < 2.3). */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        msp_kafka_rebalance_apply(rk, err, parts);
        f->assigned_partitions += parts->cnt;
    } else {
        for (int i = 0; i < parts->cnt; i++)
            jobs_partition_revoked(f, parts->elems[i].topic, parts->elems[i].partition);
        msp_kafka_rebalance_apply(rk, err, parts);
        f->assigned_partitions -= parts->cnt;
        if (f->assigned_partitions < 0) f->assigned_partitions = 0;
    }
    MSP_INFO("kafka.rebalance", NULL, "%s %d partitions, now %d",
             err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked", parts->cnt,
             f->assigned_partitions);
    msp_metric_set(f->metrics, "mspsync_fetcher_assigned_partitions", NULL, f->assigned_partitions);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    job_delivery_report((fetcher_t *)opaque, msg);
}

/* The consumer queue became non-empty (or the safety tick): take every message there is. */
static void consume_ready(fetcher_t *f) {
    rd_kafka_message_t *m;
    int budget = 1000;
    while (!f->stopping && budget-- > 0 && (m = rd_kafka_consumer_poll(f->consumer, 0))) {
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                MSP_WARN("kafka.consumer_error", NULL, "%s", rd_kafka_message_errstr(m));
        } else {
            job_from_message(f, m);
        }
        rd_kafka_message_destroy(m);
    }
}

static void on_consumer(void *arg) { consume_ready((fetcher_t *)arg); }

static void on_producer(void *arg) { rd_kafka_poll(((fetcher_t *)arg)->producer, 0); }

/* Safety net and housekeeping: the io-event only fires on empty → non-empty. */
static void on_tick(void *arg) {
    fetcher_t *f = arg;
    rd_kafka_poll(f->producer, 0);
    consume_ready(f);
    jobs_tick(f);
    msp_metric_set(f->metrics, "mspsync_fetcher_http_inflight", NULL, msp_http_inflight(f->http));
}

static void sched_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sched_run((fetcher_t *)arg);
}

static int ready_cb(void *opaque, char *why, size_t why_size) {
    fetcher_t *f = opaque;
    if (!f->consumer) {
        snprintf(why, why_size, "%s", msp_kafka_waiting_why());
        return 0;
    }
    if (!redis_ok(f)) {
        snprintf(why, why_size, "redis unavailable");
        return 0;
    }
    if (f->assigned_partitions == 0) {
        snprintf(why, why_size, "no sync.jobs partitions assigned yet");
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    msp_lifecycle_signals();   /* first: SIGTERM must work at any moment, Kafka or not */
    char errstr[512];
    int exit_code = 0;
    int rc = msp_config_load("fetcher", config_table, argc, argv, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "mspsync-fetcher: %s\n", errstr);
        return 2;
    }
    fetcher_t *f = &F;
    f->conf.syncro_rate = (double)f->conf.syncro_rate_milli / 1000.0;
    f->conf.cwrmm_rate = (double)f->conf.cwrmm_rate_milli / 1000.0;
    msp_log_init("fetcher", f->conf.log_level);
    msp_priority_apply((int)f->conf.nice);
    if (msp_kafka_configure(&f->conf.kafka, f->conf.topic_prefix, errstr, sizeof(errstr)) != 0 ||
        msp_secret_key_load(&f->key, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("config.invalid", NULL, "%s", errstr);
        msp_config_free(config_table);
        return 2;
    }
    char host[64] = "fetcher";
    gethostname(host, sizeof(host) - 1);
    snprintf(f->replica_id, sizeof(f->replica_id), "%.40s-%d", host, (int)getpid());

    curl_global_init(CURL_GLOBAL_DEFAULT);
    f->base = event_base_new();
    f->metrics = msp_metrics_new("fetcher");
    msp_metric_declare(f->metrics, "mspsync_fetcher_requests_total", "counter", "Syncro requests by outcome");
    msp_metric_declare(f->metrics, "mspsync_fetcher_records_total", "counter", "Vendor records put on raw.records");
    msp_metric_declare(f->metrics, "mspsync_fetcher_retries_total", "counter", "Page retries");
    msp_metric_declare(f->metrics, "mspsync_fetcher_ratelimit_waits_total", "counter",
                       "Times a request waited for a rate-limit token");
    msp_metric_declare(f->metrics, "mspsync_fetcher_jobs_total", "counter", "Sync jobs by result");
    msp_metric_declare(f->metrics, "mspsync_fetcher_scheduled_total", "counter", "Jobs queued by the scheduler");
    msp_metric_declare(f->metrics, "mspsync_fetcher_jobs_running", "gauge", "Jobs running now");
    msp_metric_declare(f->metrics, "mspsync_fetcher_jobs", "gauge", "Jobs held (running or queued)");
    msp_metric_declare(f->metrics, "mspsync_fetcher_assigned_partitions", "gauge", "sync.jobs partitions owned");
    msp_metric_declare(f->metrics, "mspsync_fetcher_http_inflight", "gauge", "HTTP requests in flight");

    /* The ops server first: /healthz answers (and /readyz says why not) while Kafka is awaited. */
    msp_svc_t svc;
    msp_svc_init(&svc, f->base);
    if (msp_svc_serve_ops(&svc, f->conf.metrics_bind, (int)f->conf.metrics_port, f->conf.port_file,
                          f->metrics, ready_cb, f) != 0)
        return 1;
    int made = msp_lifecycle_ensure_topics(f->conf.brokers, f->base);
    if (made != 0) {
        exit_code = made == -2 ? 2 : 0; /* a configuration error, or stopped before Kafka */
        goto stop;
    }
    f->producer = msp_kafka_producer_new(f->conf.brokers, "mspsync-fetcher", dr_cb, f, errstr,
                                         sizeof(errstr));
    const char *topics[] = {msp_topic(MSP_TOPIC_SYNC_JOBS), NULL};
    f->consumer = f->producer ? msp_kafka_consumer_new(f->conf.brokers, f->conf.group,
                                                       "mspsync-fetcher", topics, rebalance_cb, f,
                                                       errstr, sizeof(errstr))
                              : NULL;
    if (!f->producer || !f->consumer) {
        MSP_ERROR("kafka.init_failed", NULL, "%s", errstr);
        return 1;
    }
    f->offtrack = msp_offtrack_new();
    msp_http_opts_t hopts = {.timeout_ms = f->conf.http_timeout_ms,
                             .max_host_connections = f->conf.http_max_conns};
    f->http = msp_http_new(f->base, &hopts);
    f->cw_tokens = msp_cwrmm_tokens_new(f->base, f->http, &f->redis, &f->key,
                                        f->conf.cwrmm_token_margin_ms);
    if (!redis_ok(f)) MSP_WARN("redis.unavailable", NULL, "starting anyway; will retry");

    if (msp_svc_wire(&svc, f->consumer, f->producer, 100, on_consumer, on_producer, on_tick, f,
                     errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("init.failed", NULL, "%s", errstr);
        return 1;
    }
    f->sched_ev = event_new(f->base, -1, EV_PERSIST, sched_cb, f);
    struct timeval sch = {(time_t)(f->conf.schedule_check_ms / 1000),
                          (suseconds_t)((f->conf.schedule_check_ms % 1000) * 1000)};
    event_add(f->sched_ev, &sch);
    char shown[512];
    MSP_INFO("started", NULL, "replica=%s metrics_port=%d brokers=%s", f->replica_id, svc.ops_port,
             msp_url_mask(f->conf.brokers, shown, sizeof(shown)));

    if (msp_lifecycle_running()) event_base_dispatch(f->base);

stop:
    /* Shutdown: stop jobs where they are (cursors hold the progress, offsets of unfinished
     * jobs stay uncommitted so another replica resumes them), deliver what was produced. */
    f->stopping = 1;
    msp_http_destroy(f->http);   /* a token request in flight fails its waiters (stopping) */
    f->http = NULL;
    msp_cwrmm_tokens_destroy(f->cw_tokens);
    f->cw_tokens = NULL;
    /* bounded (lifecycle.h): pages not acknowledged keep their cursor and are fetched again */
    if (f->producer) rd_kafka_flush(f->producer, msp_lifecycle_budget_ms(10000));
    jobs_destroy_all(f);
    if (f->consumer) {
        rd_kafka_consumer_close(f->consumer);
        rd_kafka_destroy(f->consumer);
    }
    if (f->producer) rd_kafka_destroy(f->producer);
    msp_offtrack_destroy(f->offtrack);
    msp_svc_close(&svc);
    if (f->sched_ev) event_free(f->sched_ev);
    if (f->redis) redisFree(f->redis);
    msp_metrics_destroy(f->metrics);
    event_base_free(f->base);
    curl_global_cleanup();
    msp_secure_zero(&f->key, sizeof(f->key));
    MSP_INFO("stopped", NULL, "bye");
    msp_config_free(config_table);
    return exit_code;
}
