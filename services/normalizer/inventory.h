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

#define NZ_INV_MAX_OUT 2

/** What one call asks the caller to publish. */
typedef struct nz_inv_out_s {
    int    n;
    char  *asset_id[NZ_INV_MAX_OUT];  /**< malloc'd */
    char  *merged[NZ_INV_MAX_OUT];    /**< json_dumps string; NULL = tombstone (asset deleted) */
    char  *change;                    /**< date.changes JSON (malloc'd) or NULL */
    char  *change_asset;              /**< its asset id */
    char   change_id[40];
} nz_inv_out_t;

/** @brief Free what out holds and zero it. */
void nz_inv_out_clear(nz_inv_out_t *out);

/** @brief A source asset record changed (canon: its canonical record). @returns 0 / -1 Redis. */
int nz_inv_upsert(redisContext *c, const char *tenant, const char *src_id, const json_t *canon,
                  const char *at, nz_inv_out_t *out, char *err, size_t errsz);

/** @brief A source record is gone from its vendor. @returns 0, 1 unknown source, -1 Redis. */
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
