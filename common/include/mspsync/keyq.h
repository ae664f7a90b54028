/*
 * keyq.h — consumed messages in per-key order, different keys concurrently, offsets in order.
 *
 * The shape every "one Kafka message = one piece of vendor work" worker needs: messages of one
 * key (an incident fingerprint, an asset) are worked on one after the other, in arrival order;
 * different keys run concurrently, up to max_active; consumption pauses when max_queued messages
 * are held and resumes at half. A message's offset is stored (rd_kafka_offsets_store) only when
 * it is completed and every lower offset of its partition is completed too (msp_offtrack), so a
 * crash replays whatever was not finished.
 *
 * The caller embeds msp_keyq_item_t as the FIRST member of its own item struct and gets it back
 * in the start/destroy callbacks. Single-threaded (the event loop).
 *
 * Used by the ticket-creator (key = incident fingerprint) and the write-back (key =
 * <tenant>/<asset id>); svc.h wires it to the consumer (rebalance, polling, pause).
 *
 * Shutdown: msp_keyq_stop, then close the consumer (its revoke callback still calls
 * msp_keyq_revoked), then msp_keyq_destroy.
 */
#ifndef MSPSYNC_KEYQ_H
#define MSPSYNC_KEYQ_H

#include <stdint.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/offtrack.h"

typedef struct msp_keyq_s msp_keyq_t;
typedef struct msp_keyq_key_s msp_keyq_key_t;
typedef struct msp_keyq_item_s msp_keyq_item_t;

struct msp_keyq_item_s {
    msp_keyq_item_t    *next_key;    /* same key, later */
    msp_keyq_item_t    *next_ready;
    msp_keyq_key_t     *q;           /* NULL: not queued (e.g. dead-lettered at intake) */
    rd_kafka_message_t *msg;         /* owned; destroyed with the item */
    int                 active;      /* started and not finished */
    int                 revoked;     /* its partition was revoked: abandon at the next step */
};

typedef struct msp_keyq_ops_s {
    /** The item became its key's head and got a slot: start working on it. */
    void (*start)(msp_keyq_item_t *it, void *opaque);
    /** Free the caller's item (the message is destroyed by the queue afterwards). */
    void (*destroy)(msp_keyq_item_t *it, void *opaque);
    void *opaque;
} msp_keyq_ops_t;

/** @brief New queue (NULL on out of memory). consumer and offtrack are borrowed. */
msp_keyq_t *msp_keyq_new(rd_kafka_t *consumer, msp_offtrack_t *offtrack, int max_active,
                         int max_queued, const msp_keyq_ops_t *ops);

/**
 * @brief Take a consumed message: it->msg = msg, the offset enters msp_offtrack.
 * @returns 0 (the item is held: complete or abandon it), or -1 when that offset is already in
 * flight (a redelivery): nothing is held, the caller frees its item and destroys msg.
 */
int msp_keyq_accept(msp_keyq_t *kq, msp_keyq_item_t *it, rd_kafka_message_t *msg);

/**
 * @brief Queue an accepted item behind its key (copied). @returns 0, or -1 out of memory (the
 * item is dropped without storing its offset: a restart replays it).
 */
int msp_keyq_push(msp_keyq_t *kq, msp_keyq_item_t *it, const char *key);

/** @brief The item is finished: store the committable offset, start the key's next, free. */
void msp_keyq_complete(msp_keyq_t *kq, msp_keyq_item_t *it);

/** @brief Give up without storing (revoked partition, shutdown): another owner replays it. */
void msp_keyq_abandon(msp_keyq_t *kq, msp_keyq_item_t *it);

/** @brief Start ready items while slots are free; pause/resume consumption by queue depth. */
void msp_keyq_pump(msp_keyq_t *kq);

/**
 * @brief A partition was revoked: queued items of it are freed, active ones are marked revoked
 * (the caller abandons them when their timer, call or delivery report comes back).
 */
void msp_keyq_revoked(msp_keyq_t *kq, const char *topic, int32_t partition);

int msp_keyq_held(const msp_keyq_t *kq);     /**< items held (queued + active) */
int msp_keyq_active(const msp_keyq_t *kq);   /**< items being worked on */
int msp_keyq_paused(const msp_keyq_t *kq);   /**< 1 while consumption is paused */
int msp_keyq_full(const msp_keyq_t *kq);     /**< 1 when the consumer should stop polling */

/** @brief Stop starting items (shutdown); pump becomes a no-op. NULL-safe. */
void msp_keyq_stop(msp_keyq_t *kq);
int msp_keyq_stopped(const msp_keyq_t *kq);   /**< 1 after msp_keyq_stop */

/** @brief Free every item (nothing stored for unfinished ones) and the queue. NULL-safe. */
void msp_keyq_destroy(msp_keyq_t *kq);

#endif
