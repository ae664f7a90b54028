/*
 * rebuild.h — the inventory view and the write-back's echo guard come back after a loss of Redis.
 *
 * After the gateway restored the configuration (statekeys.h: the epoch marker is back), one
 * normalizer — the one whose SET NX of mspsync:{_}:inv:rebuild_lock wins — reads the compacted
 * record topics (customers, contacts, tickets, settings, assets: the last value of each key,
 * tombstones delete) and date.changes to their end and writes the inv:* keys the normalizer keeps
 * and the wb:wrote echo guard, then sets mspsync:{_}:state:inventory to the epoch it rebuilt
 * for. Every normalizer waits for that marker before it processes a batch (rebuild.c says what
 * is written and why it never overwrites a newer value).
 */
#ifndef NZ_REBUILD_H
#define NZ_REBUILD_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include <mspsync/statekeys.h>

/** The marker suffix (tenant "_"): the epoch whose inventory was rebuilt (statekeys.h). */
#define NZ_INVENTORY_MARK_SUFFIX MSP_STATE_INVENTORY_SUFFIX
/** The rebuilding normalizer's claim (tenant "_"). */
#define NZ_REBUILD_LOCK_SUFFIX "inv:rebuild_lock"

/** Where the state stands for the normalizer. */
typedef enum {
    NZ_STATE_READY = 0,  /* configuration and inventory are there: process */
    NZ_STATE_RESTORING,  /* the gateway has not restored the configuration yet: wait */
    NZ_STATE_REBUILD,    /* configuration back, inventory not: rebuild (or wait for it) */
    NZ_STATE_ERROR = -1, /* Redis did not answer */
} nz_state_t;

/**
 * @brief One MGET of the epoch and the inventory marker. epoch (may be NULL) gets the epoch
 * when the answer is NZ_STATE_READY or NZ_STATE_REBUILD.
 */
nz_state_t nz_state_check(redisContext *c, char *epoch, size_t epoch_size);

/**
 * @brief Rebuild the inventory for epoch if this process wins the lock: read the topics, write
 * the keys (never over a key a newer record wrote since the loss), set the marker.
 * keep_going(opaque) (may be NULL) is asked while Kafka is read.
 * @returns 1 rebuilt, 0 another normalizer holds the lock (wait for the marker), -1 failure
 *          (err; the caller tries again).
 */
int nz_rebuild(redisContext *c, const char *brokers, const char *epoch, int max_shared,
               int (*keep_going)(void *), void *opaque, char *err, size_t errsz);

#endif
