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

/* state.c: the per-asset states journaled to wb.states and rebuilt from it */
/** Set to the epoch by the replica that rebuilt the write-back states for it. */
#define WB_STATE_MARK_SUFFIX "state:writeback"
/** The next rebuild's claim (a lease). */
#define WB_STATE_LOCK_SUFFIX "writeback:rebuild_lock"
/**
 * @brief Are the write-back states in Redis for the current epoch? epoch (may be NULL) gets the
 * epoch. @returns 1 yes, 0 not yet (or the configuration not restored), -1 Redis error.
 */
int wb_state_ready(wb_t *wb, char *epoch, size_t epoch_size);
/**
 * @brief Produce the asset's whole state (wb:<asset> and its done set, read in one MULTI) to
 * wb.states; opaque comes back in the delivery report (NULL: nobody waits for it). epoch
 * gets the epoch the state was read in.
 * @returns 0 produced, 1 not produced: the states are not rebuilt for the epoch (a loss), -1 Redis
 *          or Kafka failed (try again).
 */
int wb_state_journal(wb_t *wb, const char *tenant, const char *asset, void *opaque, char *epoch,
                     size_t epoch_size);
/** @brief The journal record of an HGETALL and an SMEMBERS reply. @returns new (free), or NULL. */
char *wb_state_record(const char *tenant, const char *asset, const redisReply *hash,
                      const redisReply *done);
/** @brief 1 when the delivery report is of a journal record. */
int wb_state_is_journal(const rd_kafka_message_t *m);
/** @brief Rebuild the states for the epoch if nobody did (the worker's tick; blocks meanwhile). */
void wb_state_rebuild_tick(wb_t *wb);

/** @brief 1 when Redis answers (reconnecting if needed). */
static inline int wb_redis_ok(wb_t *wb) {
    return msp_redis_ok(&wb->redis, wb->conf.svc.redis_url);
}

#endif
