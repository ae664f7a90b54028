/*
 * tc.h — shared state of the ticket-creator process.
 *
 * The ticket-creator consumes canonical incidents (topic `incidents`, key = fingerprint, so one
 * incident's events arrive in order on one partition) and turns them into Syncro tickets,
 * comments and status changes. One libevent loop drives the consumer, the producer (dead
 * letters), libcurl multi and every incident's state machine (work.c).
 *
 * Ordering: events of one fingerprint are handled one after the other (msp_keyq, key = the
 * fingerprint); different fingerprints run concurrently, up to max_active. An event's offset is
 * stored only when its effect is recorded in Redis (msp_offtrack gives the committable offset),
 * so a crash replays it, and the markers written into Syncro (incident.h) let the replay find
 * what the crashed attempt already did instead of doing it twice.
 */
#ifndef MSPSYNC_TC_H
#define MSPSYNC_TC_H

#include <stdint.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/crypto.h"
#include "mspsync/http.h"
#include "mspsync/keyq.h"
#include "mspsync/ops.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"
#include "mspsync/vcall.h"

typedef struct tc_conf_s {
    msp_svc_conf_t svc;           /* Kafka, Redis, logging, ops server */
    double     syncro_rate;       /* tokens per second of one Syncro account's bucket */
    long long  syncro_rate_milli;
    long long  syncro_burst;
    long long  max_active;
    long long  max_queued;
    long long  backoff_base_ms;
    long long  backoff_cap_ms;
    long long  http_timeout_ms;
    long long  search_max_pages;
} tc_conf_t;

typedef struct tc_s {
    tc_conf_t          conf;
    struct event_base *base;
    msp_http_t        *http;
    msp_svc_worker_t   worker;     /* consumer, producer (dead letters), offsets, the queue */
    redisContext      *redis;
    msp_metrics_t     *metrics;
    msp_secret_key_t   key;
    msp_vcall_env_t vcall; /* what every Syncro call shares (tc_vcall_env) */
    int                stopping;
} tc_t;

/* work.c */
/** @brief Take a consumed message (ownership passes to the ticket-creator). */
void tc_accept(tc_t *tc, rd_kafka_message_t *msg);
/** @brief The keyq callbacks (start an event, free one). */
extern const msp_keyq_ops_t tc_keyq_ops;
/** @brief Fill tc->vcall once the loop, the HTTP client and the queue exist. */
void tc_vcall_env(tc_t *tc);
/** @brief Delivery report of a dead letter. */
void tc_delivery_report(tc_t *tc, const rd_kafka_message_t *msg);

/** @brief 1 when Redis answers (reconnecting if needed). */
static inline int tc_redis_ok(tc_t *tc) {
    return msp_redis_ok(&tc->redis, tc->conf.svc.redis_url);
}

#endif
