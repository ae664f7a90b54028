/*
 * offtrack.h — commit order for out-of-order completion.
 *
 * A worker may finish messages of one partition out of order (a short sync job overtakes a long
 * one). Kafka commits one offset per partition meaning "everything below is done", so the offset
 * we may store is the lowest offset still in flight, or last done + 1 when none is. This module
 * keeps, per (topic, partition), the set of in-flight offsets and answers that question.
 */
#ifndef MSPSYNC_OFFTRACK_H
#define MSPSYNC_OFFTRACK_H

#include <stdint.h>

typedef struct msp_offtrack_s msp_offtrack_t;

/** @brief New empty tracker (NULL on out of memory). Not thread-safe: one owner or a lock. */
msp_offtrack_t *msp_offtrack_new(void);
void msp_offtrack_destroy(msp_offtrack_t *t);   /**< NULL-safe */

/**
 * @brief A message at offset entered processing. Offsets of a partition arrive ascending
 * (an out-of-order begin is still kept sorted). topic is copied.
 * @returns 0, or -1 when the offset is already in flight, negative, or out of memory.
 */
int msp_offtrack_begin(msp_offtrack_t *t, const char *topic, int32_t partition, int64_t offset);

/**
 * @brief The message at offset is done. @returns the offset that may now be stored for this
 * partition (next offset to consume), or -1 when the committable position did not move
 * (a lower offset is still in flight, or the offset was not begun / already done).
 */
int64_t msp_offtrack_done(msp_offtrack_t *t, const char *topic, int32_t partition, int64_t offset);

/** @brief Forget a partition (revoked): its in-flight offsets are dropped; a later done() for
 * them returns -1. */
void msp_offtrack_forget(msp_offtrack_t *t, const char *topic, int32_t partition);

/** @brief Number of offsets begun and not yet done, across partitions (0 = all work finished,
 * everything committable has been reported). */
int msp_offtrack_inflight(const msp_offtrack_t *t);

#endif
