/*
 * inventory.h — the asset side of the Redis inventory: source records, their links to merged
 * assets, edits and pending date changes (docs/design.md, "One asset per machine").
 *
 * Every function is idempotent: after a Redis failure (-1) the caller retries the same call and
 * gets the same result, so a batch replayed after a crash re-publishes what it had computed.
 * The view keys are written here at once (later records of the same batch must see them); the
 * change-detection keys (inv:fp, inv:srcgone, inv:seen) stay with the caller's commit, after
 * Kafka acknowledged the outputs. A date change is parked in inv:dpending until the caller,
 * after Kafka acknowledged it, deletes it (nz_inv_pending_done_cmd): a replay re-sends it.
 * Single writer per tenant: the tenant's raw.records partition has one consumer.
 */
#ifndef NZ_INVENTORY_H
#define NZ_INVENTORY_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

/** One asset to publish (and maybe a date change), in the order the changes happened. */
typedef struct nz_inv_pub_s {
    char *tenant;                     /**< malloc'd */
    char *asset_id;                   /**< malloc'd */
    char *merged;                     /**< json_dumps string; NULL = tombstone (asset deleted) */
    char *change;                     /**< date.changes JSON (malloc'd) or NULL */
    char  change_id[40];
} nz_inv_pub_t;

/** What calls ask the caller to publish: one entry per asset, the latest state of each. */
typedef struct nz_inv_out_s {
    nz_inv_pub_t *pub;
    size_t        n, cap;
    size_t *slot; /* open-addressing index of pub by tenant and asset: i + 1, 0 = free */
    size_t nslot; /* a power of two, more than twice n (0: none yet) */
} nz_inv_out_t;

/** A call found that Redis lost its state since the caller's check (nz_inv_fence). */
#define NZ_INV_LOST (-2)

/**
 * @brief Fence this thread's calls on a state epoch (statekeys.h; NULL or "": none): each call
 * WATCHes the epoch and inventory markers before its first read and checks they name epoch, so
 * that its writes (every one in a MULTI/EXEC) apply only while Redis keeps the state the reads
 * came from. A flush, a restore or a rebuild since then makes the call return NZ_INV_LOST having
 * written nothing more: the caller drops its outputs and the connection, waits for the rebuild
 * and processes the batch again (its outputs until then are from the checked state).
 */
void nz_inv_fence(const char *epoch);

/** @brief Free what out holds and zero it. */
void nz_inv_out_clear(nz_inv_out_t *out);

/*
 * Source upserts are batched: the normalizer queues the changed asset records of a segment
 * (nz_inv_queue) and applies them together (nz_inv_run), so that a record costs a share of a few
 * pipelines instead of its own round trips, and an asset touched by several records of the
 * batch is merged and written once.
 */
typedef struct nz_inv_s nz_inv_t;

/**
 * @brief A batch of upserts. max_shared: a match key carried by more source records than this
 * (per tenant) stops being an identity (MSPSYNC_IDENTITY_MAX_SHARED). @returns new or NULL.
 */
nz_inv_t *nz_inv_new(int max_shared);

/**
 * @brief Merge and dump on par's threads (par.h; borrowed, may be NULL: all on the caller).
 * The trees and strings made there live in those threads' JSON arenas.
 */
struct nz_par_s;
void nz_inv_set_par(nz_inv_t *inv, struct nz_par_s *par);

/** @brief Free the batch. NULL-safe. */
void nz_inv_destroy(nz_inv_t *inv);

/** @brief Drop the queued upserts (a batch given up: it is replayed from Kafka). */
void nz_inv_discard(nz_inv_t *inv);

/** @brief Upserts queued and not yet applied. */
size_t nz_inv_queued(const nz_inv_t *inv);

/**
 * @brief Queue a changed source asset record (canon borrowed until nz_inv_run returns 0).
 * @returns 0, -1 out of memory.
 */
int nz_inv_queue(nz_inv_t *inv, const char *tenant, const char *src_id, const json_t *canon);

/**
 * @brief Apply the queued upserts in order: link each source to its asset, count key holders and
 * demote keys over the threshold (splitting the asset such a key glued: its members go to the
 * assets their remaining keys give them, published, with no date change for the split), merge
 * every touched asset once and write it. On 0 the queue is empty. On -1 (Redis) out keeps what
 * was already written; the caller calls again with the same out and a fresh connection (every
 * step is idempotent, and out keeps one entry per asset).
 * @returns 0 / -1 / NZ_INV_LOST.
 */
int nz_inv_run(nz_inv_t *inv, redisContext *c, const char *at, nz_inv_out_t *out, char *err,
               size_t errsz);

/** @brief A source record is gone from its vendor. @returns 0, 1 unknown source, -1 Redis,
 * NZ_INV_LOST (as the two below). */
int nz_inv_source_gone(redisContext *c, const char *tenant, const char *src_id, const char *at,
                       nz_inv_out_t *out, char *err, size_t errsz);

/** @brief The integration was removed: forget this source. @returns 0, 1 unknown, -1 Redis. */
int nz_inv_source_remove(redisContext *c, const char *tenant, const char *src_id, const char *at,
                         nz_inv_out_t *out, char *err, size_t errsz);

/**
 * @brief Dates edited in the app: fields = {"purchase":"YYYY-MM-DD"|null, ...} (null removes the
 * edit: the policy decides again). @returns 0, 1 unknown or gone asset, -1 Redis.
 */
int nz_inv_edit(redisContext *c, const char *tenant, const char *asset_id, const json_t *fields,
                const char *edit_id, const char *at, nz_inv_out_t *out, char *err, size_t errsz);

/** @brief Lua (EVAL script 1 key change_id): HDEL inv:dpending <asset> if it still holds change_id. */
extern const char nz_inv_pending_done_lua[];

#endif
