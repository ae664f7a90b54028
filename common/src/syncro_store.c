/*
 * syncro_store.c — loading a tenant's stored Syncro integration (see syncro_store.h).
 */
#include "mspsync/syncro_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/syncro.h"

void msp_syncro_integration_clear(msp_syncro_integration_t *in) {
    if (!in) return;
    if (in->api_key) {
        if (in->redacted)
            msp_log_unredact(in->api_key);
        msp_secure_zero(in->api_key, strlen(in->api_key));
        free(in->api_key);
    }
    msp_secure_zero(in, sizeof(*in));
}

const char *const msp_syncro_integration_fields[] = {"base_url", "account_id", "api_key_sealed",
                                                     NULL};

void msp_syncro_integration_append(redisContext *c, const char *tenant) {
    char k[256];
    msp_key(k, sizeof(k), tenant, "integration:syncro");
    const char *argv[6] = {"HMGET", k};
    int argc = 2;
    for (const char *const *f = msp_syncro_integration_fields; *f; f++)
        argv[argc++] = *f;
    redisAppendCommandArgv(c, argc, argv, NULL);
}

int msp_syncro_integration_from_reply(const redisReply *r, const char *rerr,
                                      const msp_secret_key_t *key, const char *tenant,
                                      msp_syncro_integration_t *out, char *err, size_t err_size) {
    msp_syncro_integration_clear(out);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        snprintf(err, err_size, "redis: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : rerr && rerr[0] ? rerr : "no reply");
        return -1;
    }
    if (r->element[0]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING) {
        snprintf(err, err_size, "tenant \"%s\" has no Syncro integration", tenant);
        return 1;
    }
    snprintf(out->base_url, sizeof(out->base_url), "%s", r->element[0]->str);
    if (r->element[1]->type == REDIS_REPLY_STRING)
        snprintf(out->account, sizeof(out->account), "%s", r->element[1]->str);
    else
        msp_syncro_account_id(out->base_url, out->account, sizeof(out->account));
    char tag[300];
    snprintf(tag, sizeof(tag), "syncro:%s", out->account);
    msp_key(out->bucket_key, sizeof(out->bucket_key), tag, "rl");
    char aad[200];
    snprintf(aad, sizeof(aad), "%s/syncro", tenant);
    size_t klen = 0;
    out->api_key = msp_secret_open(key, aad, r->element[2]->str, &klen);
    if (!out->api_key) {
        snprintf(err, err_size,
                 "the stored Syncro API key cannot be decrypted (was MSPSYNC_SECRET_KEY changed?)");
        return 2;
    }
    msp_log_redact(out->api_key);  /* while this copy is kept: clear forgets it */
    out->redacted = 1;
    msp_syncro_auth_header(out->api_key, out->auth_header, sizeof(out->auth_header));
    return 0;
}

int msp_syncro_integration_load(redisContext *c, const msp_secret_key_t *key, const char *tenant,
                                msp_syncro_integration_t *out, char *err, size_t err_size) {
    redisReply *r = NULL;
    if (c) {
        msp_syncro_integration_append(c, tenant);
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            r = NULL;
    }
    int rc = msp_syncro_integration_from_reply(r, c ? c->errstr : NULL, key, tenant, out, err,
                                               err_size);
    if (r) freeReplyObject(r);
    return rc;
}
