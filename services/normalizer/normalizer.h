/*
 * normalizer.h — raw.records → canonical customers/assets + the Redis inventory view.
 *
 * The normalizer processes one batch of consumed messages at a time (nz_process_batch). A batch
 * is cut into segments at every sync_complete message, because a sweep (gone detection) must see
 * the seen-marks of every record before it. Per segment:
 *
 *   1. parse each envelope (one json_loadb), map the payload to a canonical record, fingerprint it;
 *      anything unusable is dead-lettered with its reason;
 *   2. read the stored fingerprints and gone-flags of the segment in one Redis pipeline;
 *   3. produce the changed records to `customers` / `assets` (asynchronously, zero-copy) and queue
 *      their Redis writes;
 *   4. at a sync_complete, or at the end of the batch, commit: wait for every delivery report
 *      (re-producing whatever failed), then apply the queued Redis writes in one pipeline
 *      (MULTI/EXEC per run of one tenant's commands); then sweep.
 *
 * Only after the last commit of a batch are its offsets stored (offset + 1 of the last message per
 * partition), so a crash anywhere replays the batch: re-produced records are identical and the
 * fingerprints make the Redis writes idempotent (the inv:stats counters may count a replayed
 * record twice). While Redis or Kafka fails, the batch is retried with jittered backoff and the
 * assigned partitions are paused, so the consumer keeps polling and stays in its group.
 *
 * Single-threaded: every function runs on the main thread, including the callbacks librdkafka
 * serves from rd_kafka_poll/flush/consumer_poll.
 */
#ifndef NZ_NORMALIZER_H
#define NZ_NORMALIZER_H

#include <signal.h>
#include <stddef.h>
#include <librdkafka/rdkafka.h>

#include <mspsync/ops.h>

struct event_base;

typedef struct nz_s nz_t;

typedef struct nz_conf_s {
    const char              *redis_url;   /**< borrowed for the lifetime of the nz_t */
    const char *brokers; /**< borrowed; the inventory rebuild reads the topics (rebuild.h) */
    size_t                   batch_size;  /**< most messages per batch */
    int                      identity_max_shared; /**< a match key on more source records than
                                                       this (per tenant) is no identity */
    int prepare_threads;                          /**< threads preparing a batch's messages (par.h),
                                                   the batch loop's own included; 1 = none */
    msp_metrics_t           *metrics;     /**< borrowed; the normalizer declares its series */
    struct event_base       *base;        /**< borrowed; served while waiting between retries */
    volatile sig_atomic_t   *run;         /**< cleared by the signal handler */
} nz_conf_t;

/** @brief A normalizer with its own Redis connection (made lazily). @returns new or NULL. */
nz_t *nz_new(const nz_conf_t *conf);

/**
 * @brief Give the normalizer its Kafka handles (borrowed). Separate from nz_new because the
 * handles are created with the nz_t as their opaque (nz_dr_cb, nz_rebalance_cb).
 */
void nz_set_kafka(nz_t *nz, rd_kafka_t *consumer, rd_kafka_t *producer);

/**
 * @brief Free everything. Destroy the producer first: outputs of an aborted batch stay
 * referenced by librdkafka until their delivery reports; call nz_finish_pending before the
 * consumer is destroyed (a deferred batch holds consumed messages). NULL-safe.
 */
void nz_destroy(nz_t *nz);

/** @brief Delivery-report callback for the producer (opaque = the nz_t). */
void nz_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/** @brief Rebalance callback for the consumer (opaque = the nz_t); eager and cooperative. */
void nz_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t *parts, void *opaque);

/** @brief msp_ready_cb: Redis answers PING and the consumer has joined its group. */
int nz_ready(void *opaque, char *why, size_t why_size);

/**
 * @brief Process a batch; the messages are the normalizer's from now on (it destroys them).
 * With the JSON arena on, the batch's last commit — waiting for its delivery reports, then its
 * Redis writes, then storing its offsets — is deferred: it runs in the next call, once that
 * batch's messages are prepared (the CPU overlaps the wait), before anything reads Redis; in
 * a call with n = 0 (an idle poll); in the rebalance callback before partitions are revoked;
 * or in nz_finish_pending.
 * @returns 0 done (offsets stored, or the batch deferred); -1 aborted because *run was cleared
 *          (nothing stored, the batch replays after restart); -2 fatal (idempotent producer
 *          fatal error, out of memory).
 */
int nz_process_batch(nz_t *nz, rd_kafka_message_t **msgs, size_t n);

/** @brief Commit the deferred batch now, if there is one (before the consumer closes).
 * @returns as nz_process_batch; either way its messages are destroyed. */
int nz_finish_pending(nz_t *nz);

/** @brief 1 while a batch's commit is deferred. */
int nz_has_pending(const nz_t *nz);

/**
 * @brief Messages the consumer returned while a batch was waiting to retry (the partitions were
 * being paused). They belong at the head of the next batch: moves up to max of them into msgs.
 * @returns how many were moved (the caller now owns them).
 */
size_t nz_take_held(nz_t *nz, rd_kafka_message_t **msgs, size_t max);

#endif
