/*
 * wb.h — shared state of the write-back process.
 *
 * The write-back consumes `date.changes` (key `<tenant>/<asset id>`, so one asset's changes
 * arrive in order on one partition) and writes the changed purchase / warranty dates into the
 * asset's sources that opted in: ConnectWise RMM device custom fields and Syncro asset
 * properties. One libevent loop drives the consumer, the producer (dead letters), libcurl multi,
 * the ConnectWise RMM token cache and every change's state machine (work.c).
 *
 * Redis: every command of the loop goes through the one async connection wb->aredis (aredis.h):
 * a step sends, and goes on in the reply's callback, so a slow or stopped Redis delays changes
 * and never the loop (/healthz, /metrics, Kafka). Every command carries its owner (the item, or
 * one of its targets) and the owner's destructor cancels them. Two blocking contexts remain, off
 * the loop's hot path: the rebuild of the states after a loss of Redis runs on a thread of its
 * own with its own connection (state.c), and the ConnectWise RMM token cache still reads and
 * stores tokens on wb->redis (common/src/cwrmm_token.c; made async separately).
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

#include "mspsync/aredis.h"
#include "mspsync/crypto.h"
#include "mspsync/cwrmm.h"
#include "mspsync/http.h"
#include "mspsync/keyq.h"
#include "mspsync/ops.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"
#include "mspsync/task.h"
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
    msp_aredis_t *aredis;           /* every Redis command of the loop */
    redisContext *redis;            /* blocking: the ConnectWise RMM token cache only */
    msp_vendor_auth_t auth; /* one per process: every vendor's auth state (the token caches) */
    msp_metrics_t      *metrics;
    msp_secret_key_t    key;
    struct wb_busy_s   *defs_busy;  /* tenants whose definitions an item is ensuring */
    msp_vcall_env_t vcall;          /* what every vendor call shares (wb_vcall_env) */
    int                 stopping;

    /* state.c: the look at the epoch every 500 ms (also what keeps "Redis answered lately"
     * meaningful when idle), and the rebuild's thread */
    int state_checking; /* a look is in flight */
    int64_t state_look_ms;
    msp_task_t rebuild_task;
    struct wb_rebuild_s *rebuild; /* the running rebuild's job (NULL: none) */
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
 * @brief Ask whether the write-back states are in Redis for the current epoch: MGET of the epoch
 * and the marker on wb->aredis; cb(arg, reply) reads it with wb_state_ready_reply.
 * @returns 0 sent (cb will run), -1 not connected now (it will not).
 */
int wb_state_ready_send(wb_t *wb, msp_aredis_cb *cb, void *arg);
/**
 * @brief The answer of wb_state_ready_send (r may be NULL: no answer). epoch (may be NULL) gets
 * the epoch. @returns 1 yes, 0 not yet (or the configuration not restored), -1 Redis error.
 */
int wb_state_ready_reply(const redisReply *r, char *epoch, size_t epoch_size);
/**
 * @brief Read the asset's whole state (wb:<asset> and its done set, in one MULTI with the epoch
 * and the marker) on wb->aredis; cb(arg, the EXEC reply) hands it to wb_state_journal_reply.
 * @returns 0 sent (cb will run), -1 not sent (it will not).
 */
int wb_state_journal_send(wb_t *wb, const char *tenant, const char *asset, msp_aredis_cb *cb,
                          void *arg);
/**
 * @brief Produce the state read by wb_state_journal_send (exec: its EXEC reply, NULL when none
 * came) to wb.states; opaque comes back in the delivery report (NULL: nobody waits for it).
 * epoch gets the epoch the state was read in.
 * @returns 0 produced, 1 not produced: the states are not rebuilt for the epoch (a loss), -1 Redis
 *          or Kafka failed (try again).
 */
int wb_state_journal_reply(wb_t *wb, const char *tenant, const char *asset, const redisReply *exec,
                           void *opaque, char *epoch, size_t epoch_size);
/** @brief The journal record of an HGETALL and an SMEMBERS reply. @returns new (free), or NULL. */
char *wb_state_record(const char *tenant, const char *asset, const redisReply *hash,
                      const redisReply *done);
/** @brief 1 when the delivery report is of a journal record. */
int wb_state_is_journal(const rd_kafka_message_t *m);
/**
 * @brief The worker's tick: every 500 ms look at the epoch (async); when the states are not
 * rebuilt for it, start the rebuild on its thread (one at a time; reaped here).
 */
void wb_state_rebuild_tick(wb_t *wb);
/** @brief Stop and join a rebuild in progress (shutdown, before the configuration is freed). */
void wb_state_rebuild_close(wb_t *wb);

#endif
