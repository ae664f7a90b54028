/*
 * envelope.h — the raw.records envelope (docs/design.md, "raw.records") as the normalizer sees it.
 *
 * One json_loadb per message; everything else points into that one tree. A message that is not
 * an envelope we can act on gets a reason a human can act on (it becomes the x-dlq-reason
 * header), e.g. `unknown type "ticket" (expected "customer" or "asset")`.
 */
#ifndef NZ_ENVELOPE_H
#define NZ_ENVELOPE_H

#include <stddef.h>
#include <jansson.h>

typedef enum {
    NZ_KIND_RECORD = 0,
    NZ_KIND_SYNC_COMPLETE = 1,
    NZ_KIND_INCIDENT = 2,
    NZ_KIND_EDIT = 3,        /* dates edited in the app (the gateway): type asset, no job */
    NZ_KIND_REMOVED = 4,     /* "integration_removed": forget every record of an integration */
} nz_kind_t;
typedef enum {
    NZ_TYPE_CUSTOMER = 0,
    NZ_TYPE_ASSET = 1,
    NZ_TYPE_INCIDENT = 2, /* kind "incident" only: a webhook, not part of any sync job */
    NZ_TYPE_CONTACT = 3,  /* contacts, tickets, settings: one record per vendor record, kept */
    NZ_TYPE_TICKET = 4,   /* like customers (never merged, no asset path) */
    NZ_TYPE_SETTING = 5,
    NZ_TYPE_COUNT = 6
} nz_type_t;

/** Longest tenant id accepted: keys are built in fixed stack buffers. */
#define NZ_TENANT_MAX 128
/** Longest job id accepted. */
#define NZ_JOB_ID_MAX 128

typedef struct nz_envelope_s {
    json_t        *root;     /**< owned: the parsed message */
    nz_kind_t      kind;
    nz_type_t      type;
    const char    *tenant;   /**< borrowed from root */
    const char    *job_id;   /**< borrowed from root; NULL for incidents, edits, removals */
    const char    *integration; /**< borrowed; "syncro" when absent (envelopes before v0.4) */
    const char    *asset_id; /**< edits: the inventory asset */
    const char    *edit_id;  /**< edits */
    const json_t  *fields;   /**< edits: {"purchase":..., "warranty":...} */
    const json_t  *payload;  /**< borrowed from root; records and incidents */
    int partial;             /**< sync_complete of a pass that asked only for changes:
                                  what it did not see is not gone */
} nz_envelope_t;

/**
 * @brief Parse and validate one raw.records value.
 * On success env->root is a new reference the caller releases with nz_envelope_clear().
 * @returns 0 ok; -1 not usable, with the reason in `reason` (env->root is NULL).
 */
int nz_envelope_parse(nz_envelope_t *env, const void *value, size_t len, char *reason,
                      size_t reason_size);

/** @brief Release env->root and zero env. NULL-safe. */
void nz_envelope_clear(nz_envelope_t *env);

/** @brief "customer" / "asset" / "incident" / "contact" / "ticket" / "setting". */
const char *nz_type_name(nz_type_t type);

#endif
