/*
 * fetcher.h — shared state of the fetcher process.
 *
 * One event loop drives everything: the sync.jobs consumer (its queue signals a pipe), the
 * producer's delivery reports (same), libcurl multi (msp_http), the async Redis connection
 * (aredis.h: every command of the jobs and the scheduler), the job state machines and the
 * scheduler timer. A replica runs as many jobs at once as it has tenants assigned; one tenant's
 * jobs run one after the other (they share a partition and a cursor namespace).
 */
#ifndef MSPSYNC_FETCHER_H
#define MSPSYNC_FETCHER_H

#include <stdint.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/aredis.h"
#include "mspsync/crypto.h"
#include "mspsync/cwrmm.h"
#include "mspsync/http.h"
#include "mspsync/kafka.h"
#include "mspsync/offtrack.h"
#include "mspsync/ops.h"
#include "mspsync/svc.h"
#include "mspsync/vcall.h"

typedef struct fetcher_conf_s {
    msp_svc_conf_t svc; /* Kafka, Redis, logging, ops server */
    long long  cwrmm_page_size;
    long long  cwrmm_token_margin_ms;
    long long  schedule_interval_ms;
    long long schedule_minute_ms; /* a minute of sync_interval_minutes (60000; tests shrink it) */
    long long  schedule_check_ms;
    long long  max_jobs;
    long long  max_attempts;
    long long  backoff_base_ms;
    long long  backoff_cap_ms;
    long long  http_timeout_ms;
    long long  http_max_conns;
    int        schedule_enabled;
} fetcher_conf_t;

typedef struct job_s job_t;

typedef struct fetcher_s {
    fetcher_conf_t     conf;
    struct event_base *base;
    msp_http_t        *http;
    msp_vendor_auth_t auth; /* every vendor's auth state (ConnectWise RMM: the token cache) */
    msp_svc_worker_t   worker;     /* the Kafka side (svc.h): handles, rebalancing, polling */
    rd_kafka_t        *consumer;   /* borrowed from worker once it is open (NULL before) */
    rd_kafka_t        *producer;   /* borrowed, the same */
    msp_aredis_t *aredis;          /* the jobs', the scheduler's and /readyz's Redis */
    redisContext *redis;           /* blocking: the credential load and the token cache only */
    int sched_pending;             /* the scheduler's pass still waits for these answers */
    msp_offtrack_t    *offtrack;   /* borrowed, the same */
    msp_metrics_t     *metrics;
    msp_secret_key_t   key;
    char               replica_id[64];

    job_t *jobs;        /* every job this replica holds: running or waiting for its tenant */
    int    jobs_cnt;
    int    running_cnt;
    int    stopping;
    msp_vcall_env_t vcall; /* what every job's vendor calls share (job.c) */

    struct event *sched_ev;
} fetcher_t;

/* job.c */
void job_from_message(fetcher_t *f, const rd_kafka_message_t *msg);
void jobs_tick(fetcher_t *f);
void jobs_partition_revoked(fetcher_t *f, const char *topic, int32_t partition);
void jobs_destroy_all(fetcher_t *f);
void job_delivery_report(fetcher_t *f, const rd_kafka_message_t *msg);
/* A write on the async connection whose answer nothing waits for (argl NULL: strlen of each);
 * one that is lost (Redis down or stalled, an error answer) is logged as what, for tenant. */
void fetcher_write(fetcher_t *f, const char *tenant, const char *what, int argc, const char **argv,
                   const size_t *argl);

/* sched.c */
void sched_run(fetcher_t *f);
/* The next scheduled sync of tenant with v comes one interval after now (a job ended). */
void sched_push_back(fetcher_t *f, const char *tenant, const msp_vendor_t *v, const char *job_id);

#endif
