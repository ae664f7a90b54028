/*
 * wb.h — shared state of the write-back process.
 *
 * The write-back consumes `date.changes` (key `<tenant>/<asset id>`, so one asset's changes
 * arrive in order on one partition) and writes the changed purchase / warranty dates into the
 * asset's sources that opted in: ConnectWise RMM device custom fields and Syncro asset
 * properties. One libevent loop drives the consumer, the producer (dead letters), libcurl multi,
 * the ConnectWise RMM token cache and every change's state machine (work.c).
 *
 * Ordering: changes of one asset run one after the other (mspsync/keyq.h); different assets run
 * concurrently, up to max_active. A change's offset is stored only when every target's result
 * is recorded in Redis (or the change is dead-lettered), so a crash replays it; the read before
 * every write makes the replay write nothing twice (the argument is at the top of work.c).
 */
#ifndef MSPSYNC_WB_H
#define MSPSYNC_WB_H

#include <stdint.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/crypto.h"
#include "mspsync/cwrmm.h"
#include "mspsync/http.h"
#include "mspsync/keyq.h"
#include "mspsync/ops.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"
#include "mspsync/vcall.h"

typedef struct wb_conf_s {
    msp_svc_conf_t svc; /* Kafka, Redis, logging, ops server */
    long long  cwrmm_token_margin_ms;
    long long  max_active;
    long long  max_queued;
    long long  backoff_base_ms;
    long long  backoff_cap_ms;
    long long  http_timeout_ms;
    long long  done_ttl_days;
} wb_conf_t;

typedef struct wb_s {
    wb_conf_t           conf;
    struct event_base  *base;
    msp_http_t         *http;
    msp_svc_worker_t    worker;     /* consumer, producer (dead letters), offsets, the queue */
    redisContext       *redis;
    msp_vendor_auth_t auth; /* one per process: every vendor's auth state (the token caches) */
    msp_metrics_t      *metrics;
    msp_secret_key_t    key;
    struct wb_busy_s   *defs_busy;  /* tenants whose definitions an item is ensuring */
    msp_vcall_env_t vcall;          /* what every vendor call shares (wb_vcall_env) */
    int                 stopping;
} wb_t;

/* work.c */
/** @brief Take a consumed message (ownership passes to the write-back). */
void wb_accept(wb_t *wb, rd_kafka_message_t *msg);
/** @brief The keyq callbacks (start a change, free one). */
extern const msp_keyq_ops_t wb_keyq_ops;
/** @brief Fill wb->vcall once the loop, the HTTP client and the queue exist. */
void wb_vcall_env(wb_t *wb);
/** @brief Delivery report of a dead letter. */
void wb_delivery_report(wb_t *wb, const rd_kafka_message_t *msg);
/** @brief 1 when Redis answers (reconnecting if needed). */
static inline int wb_redis_ok(wb_t *wb) {
    return msp_redis_ok(&wb->redis, wb->conf.svc.redis_url);
}

#endif
