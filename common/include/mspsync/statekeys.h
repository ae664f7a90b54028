/*
 * statekeys.h — what each Redis key is: configuration, derived, coordination or cache.
 *
 * Redis holds mspsync's small shared state, but nothing in it may be Redis-only: a wiped Redis
 * (FLUSHALL, a disk loss, a failover to an empty replica) must come back without an operator.
 * Every key mspsync writes is one of four kinds:
 *   - CONFIG: what an operator or a tenant entered (tenants, integrations with their sealed
 *     credentials, webhook secrets, ticketing configuration and mappings). It cannot be derived,
 *     so every change is journaled to the compacted Kafka topic `config` (key
 *     "<tenant>/<suffix>", value the whole Redis value, a tombstone when the key is deleted) and
 *     a Redis found empty is restored from that topic before the gateway serves again;
 *   - DERIVED: computed from Kafka topics (the inventory view from the compacted customers /
 *     assets topics, counters, the tenants set from the tenant hashes);
 *   - COORD: coordination that is safe to lose (cursors: a job restarts as a full sync; leases,
 *     locks, rate-limit buckets: the next claim starts fresh);
 *   - CACHE: a copy of something the vendor holds (OAuth tokens, ticket records found again by
 *     their marker in Syncro, the org names webhooks mentioned).
 * The table is the one list (docs/design.md "Redis keys" shows it); a key suffix not in it is a
 * defect that test_statekeys catches for the keys the code base names.
 *
 * Keys are "mspsync:{<tenant>}:<suffix>" (redis.h). The pseudo-tenant "_" holds global keys.
 */
#ifndef MSPSYNC_STATEKEYS_H
#define MSPSYNC_STATEKEYS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

typedef enum {
    MSP_STATE_CONFIG,
    MSP_STATE_DERIVED,
    MSP_STATE_COORD,
    MSP_STATE_CACHE,
} msp_state_kind_t;

/** One family of keys: suffix, or a prefix of suffixes when it ends with ':' or '*'. */
typedef struct msp_statekey_s {
    const char *suffix; /**< "ticketing:config"; "integration:*" = any suffix starting so */
    msp_state_kind_t kind;
    const char *rebuilt; /**< how it comes back after a loss (for the docs) */
} msp_statekey_t;

/** The marker a restored (or never lost) Redis carries: mspsync:{_}:state:epoch. */
#define MSP_STATE_EPOCH_SUFFIX "state:epoch"

/**
 * When the last restore that found configuration in Kafka ended (ms since the epoch):
 * mspsync:{_}:state:restored_at_ms, written just before the epoch marker. Absent after a first
 * start (nothing was lost) and wiped with everything else, so it always names the latest loss.
 * The ticket-creator looks in Syncro for the lost ticket records while it is recent.
 */
#define MSP_STATE_RESTORED_AT_SUFFIX "state:restored_at_ms"

/**
 * The inventory view after a loss: the gateway's restore sets mspsync:{_}:state:inventory_pending
 * to the new epoch when the configuration it restored was not empty (a first start sets nothing);
 * the normalizer that rebuilt the inventory from the compacted topics sets
 * mspsync:{_}:state:inventory to that epoch and deletes the pending key. While it exists the
 * gateway answers an inventory read it cannot serve 503 (retry), never an empty list or a 404.
 */
#define MSP_STATE_INVENTORY_SUFFIX "state:inventory"
#define MSP_STATE_INVENTORY_PENDING_SUFFIX "state:inventory_pending"

/**
 * mspsync:{_}:state:restored holds the epoch of the last restore that found configuration (Redis
 * had state and lost it; never deleted). Derived state that only a replay rebuilds (the billing
 * marks) is rebuilt when it names the current epoch, not on a first start.
 */
#define MSP_STATE_RESTORED_SUFFIX "state:restored"

/**
 * @brief The table row of a full key ("mspsync:{acme}:integration:syncro"), or NULL when the key
 * is not one of mspsync's. tenant (may be NULL) gets the tenant, suffix (may be NULL) points into
 * key after the tenant's "}:".
 */
const msp_statekey_t *msp_statekey_find(const char *key, char *tenant, size_t tenant_size,
                                        const char **suffix);

/** @brief Row i of the table (iteration), or NULL past the end. */
const msp_statekey_t *msp_statekey_at(size_t i);

/**
 * @brief Whether Redis lost its state and the gateway has not restored it yet: the epoch marker
 * is missing. A worker that finds a configuration key missing asks this before it treats the
 * absence as real (a job of a tenant "without" an integration during a restore waits instead).
 * @returns 1 lost (restore pending), 0 the marker is there, -1 Redis did not answer.
 */
int msp_state_lost(redisContext *c);

struct msp_aredis_s;

/**
 * @brief msp_state_lost on the async connection (aredis.h): cb(arg, lost) runs later on the loop
 * (lost 1 / 0 / -1 no answer), unless msp_aredis_cancel(a, arg) came first.
 * @returns 0 started, -1 not connected now (no callback).
 */
int msp_state_lost_async(struct msp_aredis_s *a, void (*cb)(void *arg, int lost), void *arg);

/**
 * @brief A rebuild is over: SET {_}:<mark_suffix> to epoch, if {_}:state:epoch still is epoch (a
 * loss during the rebuild leaves the mark unset, so that the rebuild runs again for the new one).
 * @returns 1 set, 0 the epoch changed, -1 Redis did not answer.
 */
int msp_state_mark(redisContext *c, const char *mark_suffix, const char *epoch);

/** @brief "config", "derived", "coordination", "cache". */
const char *msp_state_kind_name(msp_state_kind_t k);

#endif
