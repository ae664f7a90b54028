/*
 * mspsync-fetcher — pulls vendor data for sync jobs and puts it on raw.records.
 *
 * Wiring only: configuration, the Kafka side (a worker without a keyed queue, svc.h), Redis (the
 * async connection every job, the scheduler and /readyz use, aredis.h), the HTTP client, the
 * scheduler's timer and the event loop. The job state machine is in job.c, the
 * scheduler in sched.c.
 */
#include "fetcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>

#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"

static fetcher_t F;

static const msp_config_entry_t config_table[] = {
    MSP_SVC_KAFKA_ROWS(F.conf.svc),
    MSP_SVC_REDIS_ROW(F.conf.svc),
    MSP_SVC_GROUP_ROW(F.conf.svc, "mspsync-fetcher", "Kafka consumer group of the fetchers"),
    MSP_SVC_LOG_ROW(F.conf.svc, "info"),
    MSP_SVC_NICE_ROW(F.conf.svc, "10",
                     "syncs are bulk work and yield the CPU to the incident path"),
    MSP_SVC_OPS_ROWS(F.conf.svc, "9100"),
    MSP_KAFKA_CONFIG(F.conf.svc.kafka),
    MSP_SVC_VENDOR_RATE_ROWS(F.conf.svc),
    {"MSPSYNC_CWRMM_PAGE_SIZE", MSP_CFG_INT, "500",
     "Devices per ConnectWise RMM list request (the API allows 500)", &F.conf.cwrmm_page_size, 1,
     500},
    MSP_SVC_CWRMM_TOKEN_MARGIN_ROW(F.conf.cwrmm_token_margin_ms),
    {"MSPSYNC_SCHEDULE", MSP_CFG_BOOL, "1", "Queue incremental syncs on a schedule",
     &F.conf.schedule_enabled},
    {"MSPSYNC_SCHEDULE_INTERVAL_MS", MSP_CFG_INT, "3600000",
     "Time between incremental syncs of a tenant", &F.conf.schedule_interval_ms, 1000,
     86400000LL * 30},
    {"MSPSYNC_SCHEDULE_MINUTE_MS", MSP_CFG_INT, "60000",
     "Length of a minute of an integration's own sync_interval_minutes (a test seam: tests shrink it)",
     &F.conf.schedule_minute_ms, 10, 60000},
    {"MSPSYNC_SCHEDULE_CHECK_MS", MSP_CFG_INT, "30000",
     "How often a replica looks for tenants due a sync", &F.conf.schedule_check_ms, 100, 3600000},
    {"MSPSYNC_MAX_JOBS", MSP_CFG_INT, "5000", "Jobs one replica runs at once", &F.conf.max_jobs, 1,
     1000000},
    {"MSPSYNC_MAX_ATTEMPTS", MSP_CFG_INT, "12",
     "Attempts at one page before the job fails (429, 5xx, timeouts, unreadable pages)",
     &F.conf.max_attempts, 1, 1000},
    MSP_SVC_BACKOFF_ROWS(F.conf.backoff_base_ms, F.conf.backoff_cap_ms, "60000"),
    MSP_SVC_HTTP_TIMEOUT_ROW(F.conf.http_timeout_ms),
    {"MSPSYNC_HTTP_MAX_HOST_CONNECTIONS", MSP_CFG_INT, "0",
     "Connections per vendor host (0 = unlimited)", &F.conf.http_max_conns, 0, 100000},
    {NULL},
};

/* The worker's callbacks (svc.h): a sync.jobs message starts or queues a job. */
static void on_message(void *arg, rd_kafka_message_t *msg) {
    job_from_message(arg, msg);
    rd_kafka_message_destroy(msg);
}

static void on_revoked(void *arg, const char *topic, int32_t partition) {
    jobs_partition_revoked(arg, topic, partition);
}

static void on_delivery(void *arg, const rd_kafka_message_t *msg) {
    job_delivery_report(arg, msg);
}

/* Housekeeping after every poll (the io-event only fires on empty → non-empty). */
static void on_tick(void *arg) {
    fetcher_t *f = arg;
    jobs_tick(f);
    msp_metric_set(f->metrics, "mspsync_fetcher_http_inflight", NULL, msp_http_inflight(f->http));
}

/* The producer is flushed: no delivery report needs a job any more. */
static void on_flushed(void *arg) { jobs_destroy_all(arg); }

static void sched_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sched_run((fetcher_t *)arg);
}

static void declare_metrics(msp_metrics_t *m) {
    msp_metric_declare(m, "mspsync_fetcher_requests_total", "counter", "Syncro requests by outcome");
    msp_metric_declare(m, "mspsync_fetcher_records_total", "counter", "Vendor records put on raw.records");
    msp_metric_declare(m, "mspsync_fetcher_retries_total", "counter", "Page retries");
    msp_metric_declare(m, "mspsync_fetcher_ratelimit_waits_total", "counter",
                       "Times a request waited for a rate-limit token");
    msp_metric_declare(m, "mspsync_fetcher_jobs_total", "counter", "Sync jobs by result");
    msp_metric_declare(m, "mspsync_fetcher_scheduled_total", "counter", "Jobs queued by the scheduler");
    msp_metric_declare(m, "mspsync_fetcher_jobs_running", "gauge", "Jobs running now");
    msp_metric_declare(m, "mspsync_fetcher_jobs", "gauge", "Jobs held (running or queued)");
    msp_metric_declare(m, "mspsync_fetcher_assigned_partitions", "gauge", "sync.jobs partitions owned");
    msp_metric_declare(m, "mspsync_fetcher_http_inflight", "gauge", "HTTP requests in flight");
}

/* The scheduler's timer: every MSPSYNC_SCHEDULE_CHECK_MS a replica looks for tenants due. */
static int start_scheduler(fetcher_t *f) {
    f->sched_ev = event_new(f->base, -1, EV_PERSIST, sched_cb, f);
    struct timeval sch = {(time_t)(f->conf.schedule_check_ms / 1000),
                          (suseconds_t)((f->conf.schedule_check_ms % 1000) * 1000)};
    return f->sched_ev ? event_add(f->sched_ev, &sch) : -1;
}

int main(int argc, char **argv) {
    msp_lifecycle_signals();   /* first: SIGTERM must work at any moment, Kafka or not */
    int rc = msp_svc_configure("fetcher", config_table, argc, argv, &F.conf.svc, &F.key);
    if (rc >= 0) return rc;   /* --help, or a configuration error */
    int exit_code = 0;
    fetcher_t *f = &F;
    char host[64] = "fetcher";
    gethostname(host, sizeof(host) - 1);
    snprintf(f->replica_id, sizeof(f->replica_id), "%.40s-%d", host, (int)getpid());

    curl_global_init(CURL_GLOBAL_DEFAULT);
    f->base = event_base_new();
    f->metrics = msp_metrics_new("fetcher");
    f->aredis = msp_aredis_new(f->base, f->conf.svc.redis_url, 0);
    if (!f->aredis) {
        MSP_ERROR("init.failed", NULL, "out of memory");
        return 1;
    }
    declare_metrics(f->metrics);

    msp_svc_worker_t *w = &f->worker;
    *w = (msp_svc_worker_t){
        .conf = &f->conf.svc,
        .client_id = "mspsync-fetcher",
        .topic = MSP_TOPIC_SYNC_JOBS,
        .metrics = f->metrics,
        .redis = &f->redis,
        .aredis = f->aredis,
        .gauge_partitions = "mspsync_fetcher_assigned_partitions",
        .accept = on_message,
        .revoked = on_revoked,
        .flushed = on_flushed,
        .delivery_report = on_delivery,
        .tick = on_tick,
        .arg = f,
    };
    /* The ops server first: /healthz answers (and /readyz says why not) while Kafka is awaited. */
    msp_svc_t svc;
    int started = msp_svc_worker_start(w, &svc, f->base, 0, 0, NULL);
    if (started >= 0) {
        exit_code = started; /* 0 stopped while waiting for Kafka, 1 or 2 failed */
        goto stop;
    }
    f->consumer = w->consumer;
    f->producer = w->producer;
    f->offtrack = w->offtrack;
    msp_http_opts_t hopts = {.timeout_ms = f->conf.http_timeout_ms,
                             .max_host_connections = f->conf.http_max_conns};
    f->http = msp_http_new(f->base, &hopts);
    msp_vendor_auth_env_t aenv = {
        f->base, f->http, &f->redis, &f->key, f->conf.cwrmm_token_margin_ms, f->aredis};
    if (!f->http || msp_vendor_auth_open(&f->auth, &aenv) != 0) {
        MSP_ERROR("init.failed", NULL, "out of memory");
        return 1;
    }

    if (msp_svc_worker_serve(w, &svc) != 0) return 1;
    if (start_scheduler(f) != 0) {
        MSP_ERROR("init.failed", NULL, "cannot start the scheduler's timer");
        return 1;
    }
    char shown[512];
    MSP_INFO("started", NULL, "replica=%s metrics_port=%d brokers=%s", f->replica_id, svc.ops_port,
             msp_url_mask(f->conf.svc.brokers, shown, sizeof(shown)));

    if (msp_lifecycle_running()) event_base_dispatch(f->base);

stop:
    /* Shutdown: stop jobs where they are (cursors hold the progress, offsets of unfinished
     * jobs stay uncommitted so another replica resumes them), deliver what was produced. */
    f->stopping = 1;
    msp_http_destroy(f->http);   /* a token request in flight fails its waiters (stopping) */
    f->http = NULL;
    msp_vendor_auth_close(&f->auth);
    /* bounded (lifecycle.h): pages not acknowledged keep their cursor and are fetched again;
     * the jobs are freed once flushed, before the consumer closes */
    msp_svc_worker_close(w);
    f->consumer = f->producer = NULL;
    f->offtrack = NULL;
    msp_svc_close(&svc);
    if (f->sched_ev) event_free(f->sched_ev);
    /* after the jobs: what is still awaited is answered "shutting down" */
    msp_aredis_free(f->aredis);
    if (f->redis) redisFree(f->redis);
    msp_metrics_destroy(f->metrics);
    event_base_free(f->base);
    curl_global_cleanup();
    msp_secure_zero(&f->key, sizeof(f->key));
    MSP_INFO("stopped", NULL, "bye");
    msp_config_free(config_table);
    return exit_code;
}
