/*
 * billing.h — shared state of the billing process.
 *
 * The billing service consumes `usage.events`, which carries two kinds of message:
 *   usage  (key "<tenant>/<org>/<product>")  one usage report: raises the (org, product) mark
 *          of the report's billing period (common/include/mspsync/billing.h) in Redis;
 *   push   (key "<tenant>/push")             write the tenant's current marks into the
 *          quantities of the mapped lines of its customers' Syncro recurring invoices.
 * Push requests come from POST /v1/tenants/{t}/billing/push (gateway) and from this service's
 * daily schedule (sched.c), so that every push goes through the same keyed, crash-safe path:
 * one tenant's pushes run one after the other, and a push's offset is stored only when every
 * line it wrote is recorded (the argument is at the top of work.c).
 *
 * One libevent loop drives the consumer, the producer (push requests, dead letters), libcurl
 * multi and every item's state machine.
 */
#ifndef MSPSYNC_BILLING_SVC_H
#define MSPSYNC_BILLING_SVC_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "mspsync/crypto.h"
#include "mspsync/http.h"
#include "mspsync/keyq.h"
#include "mspsync/ops.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"
#include "mspsync/task.h"
#include "mspsync/vcall.h"

typedef struct bl_conf_s {
    msp_svc_conf_t svc; /* Kafka, Redis, logging, ops server */
    long long max_active;
    long long max_queued;
    long long backoff_base_ms;
    long long backoff_cap_ms;
    long long http_timeout_ms;
    long long schedule_check_ms;
    long long history_max;
    char *test_clock_file; /* read by msp_billing_now_ms through the environment */
} bl_conf_t;

typedef struct bl_s {
    bl_conf_t conf;
    struct event_base *base;
    msp_http_t *http;
    msp_svc_worker_t worker; /* consumer, producer, offsets, the queue */
    redisContext *redis;
    msp_metrics_t *metrics;
    msp_secret_key_t key;
    msp_vcall_env_t vcall;
    int64_t sched_checked_ms;
    int stopping;
    msp_task_t replay_task;     /* the replay of usage.events after a loss (work.c) */
    struct bl_replay_s *replay; /* its job while it runs (new, freed when reaped) */
} bl_t;

/* work.c */
/** @brief Take a consumed message (ownership passes). */
void bl_accept(bl_t *bl, rd_kafka_message_t *msg);
/** @brief The keyq callbacks. */
extern const msp_keyq_ops_t bl_keyq_ops;
/** @brief Fill bl->vcall once the loop, the HTTP client and the queue exist. */
void bl_vcall_env(bl_t *bl);
/** @brief Stop a replay of usage.events in progress and wait for its thread (shutdown). */
void bl_replay_stop(bl_t *bl);
/** @brief A delivery report of the producer (dead letters; push requests of the schedule). */
void bl_delivery_report(bl_t *bl, const rd_kafka_message_t *msg);

/* sched.c */
/** @brief The daily push: every MSPSYNC_BILLING_SCHEDULE_CHECK_MS, request the push of each
 * enabled tenant whose local push time has come today and was not requested yet. */
void bl_schedule_tick(bl_t *bl);

static inline int bl_redis_ok(bl_t *bl) { return msp_redis_ok(&bl->redis, bl->conf.svc.redis_url); }

#endif
