/*
 * syncro_store.h — a tenant's stored Syncro integration, as the workers use it.
 *
 * The gateway writes `mspsync:{t}:integration:syncro` (base_url, account_id, api_key_sealed; see
 * docs/design.md). Every worker that calls Syncro for a tenant needs the same three things from
 * it: the base URL, the Authorization header (the key opened with MSPSYNC_SECRET_KEY, AAD
 * "<tenant>/syncro", and registered for log redaction) and the key of the account's shared GCRA
 * bucket `mspsync:{syncro:<account>}:rl`.
 */
#ifndef MSPSYNC_SYNCRO_STORE_H
#define MSPSYNC_SYNCRO_STORE_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "mspsync/crypto.h"

typedef struct msp_syncro_integration_s {
    char  base_url[512];
    char  account[256];
    char  bucket_key[600];
    char  auth_header[600];
    char *api_key;          /**< owned; zeroed and freed by msp_syncro_integration_clear */
    int   redacted;         /**< 1: load registered api_key with msp_log_redact, clear forgets it */
} msp_syncro_integration_t;

/**
 * @brief Load and open tenant's Syncro integration into *out (a loaded *out is cleared first).
 * @returns 0 loaded; 1 no integration; 2 the sealed key cannot be opened (err says why: was
 *          MSPSYNC_SECRET_KEY changed?); -1 Redis error (err).
 */
int msp_syncro_integration_load(redisContext *c, const msp_secret_key_t *key, const char *tenant,
                                msp_syncro_integration_t *out, char *err, size_t err_size);

/**
 * @brief The same in two halves, for a caller that pipelines it with other reads: append the
 * read to c's output buffer, then (after redisGetReply) open its reply. rerr: the context's error
 * text when the reply is missing. @returns as msp_syncro_integration_load; r stays the caller's.
 */
extern const char *const msp_syncro_integration_fields[]; /* the HMGET's, NULL-terminated */
void msp_syncro_integration_append(redisContext *c, const char *tenant);
int  msp_syncro_integration_from_reply(const redisReply *r, const char *rerr,
                                       const msp_secret_key_t *key, const char *tenant,
                                       msp_syncro_integration_t *out, char *err, size_t err_size);

/** @brief Zero the key material and free it. NULL-safe. */
void msp_syncro_integration_clear(msp_syncro_integration_t *in);

#endif
