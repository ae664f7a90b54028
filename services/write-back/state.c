/*
 * state.c — the write-back's per-asset state kept in Kafka, and rebuilt from it after a loss of
 * Redis (wb.h, docs/design.md "The write-back's state after a Redis loss").
 *
 * What Redis holds per asset: the hash `wb:<asset>` (one field per target and date field, the
 * last outcome: pending / written / skipped / failed, with the value, the change id, the reason or
 * the error; `GET .../assets/{id}/writeback` answers it) and the done set `wb:<asset>:done` (the
 * change ids finished, work.c (4)). Neither can be derived from the vendors (a refusal's reason,
 * which change wrote a value), so each time work.c records a state it also journals the asset's
 * whole state — the hash and the done set, read back in the same MULTI — to the compacted topic
 * `wb.states`, key "<tenant>/<asset>", value
 *   {"schema_version":1,"tenant","asset","states":{"<integration>:<field>":{...}},"done":[ids]}
 * the last record of a key being the asset's state. The record that ends a change (finished or
 * dead-lettered) is acknowledged by Kafka before the change's offset is stored, so a change whose
 * offset is stored has its outcome in the topic.
 *
 * Rebuild: once per epoch (`{_}:state:writeback` names the epoch rebuilt for), one replica under
 * the lease `{_}:writeback:rebuild_lock` reads the topic from its start (blocking the loop, once
 * per loss: every change waits for it anyway) and writes each asset's last record with HSETNX and
 * SADD, so that a state written since the loss (a change that was running across it) is newer
 * and stays. Until the marker names the current epoch no change is loaded (work.c LOAD) and no
 * state is journaled: a journal record read from a Redis that lost the asset's state would be
 * partial, and would replace the complete one in the topic.
 *
 * A change that was running across the loss wrote its states into the empty Redis; once the
 * rebuild is done it writes them again (wb_state_reassert, in work.c) before it journals, so its
 * outcome is neither lost nor overwritten by the older record the rebuild brought back.
 */
#include "wb.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"

#define REBUILD_LOCK_MS 10000
#define REBUILD_READ_MS 120000
#define KEYLEN 600

int wb_state_ready(wb_t *wb, char *epoch, size_t epoch_size) {
    char ke[64], km[64];
    msp_key(ke, sizeof(ke), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(km, sizeof(km), "_", WB_STATE_MARK_SUFFIX);
    redisReply *r = wb->redis ? redisCommand(wb->redis, "MGET %s %s", ke, km) : NULL;
    int rc = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        const redisReply *e = r->element[0], *m = r->element[1];
        if (e->type != REDIS_REPLY_STRING)
            rc = 0; /* the gateway has not restored the configuration yet */
        else {
            if (epoch && epoch_size)
                snprintf(epoch, epoch_size, "%s", e->str);
            rc = m->type == REDIS_REPLY_STRING && !strcmp(m->str, e->str) ? 1 : 0;
        }
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

/* ---- journal ------------------------------------------------------------------------------- */

char *wb_state_record(const char *tenant, const char *asset, const redisReply *hash,
                      const redisReply *done) {
    json_t *states = json_object(), *ids = json_array();
    for (size_t i = 0; hash && hash->type == REDIS_REPLY_ARRAY && i + 1 < hash->elements; i += 2) {
        const redisReply *f = hash->element[i], *v = hash->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        json_t *o = json_loadb(v->str, v->len, 0, NULL);
        if (json_is_object(o))
            json_object_set_new(states, f->str, o);
        else
            json_decref(o);
    }
    for (size_t i = 0; done && done->type == REDIS_REPLY_ARRAY && i < done->elements; i++)
        if (done->element[i]->type == REDIS_REPLY_STRING)
            json_array_append_new(ids, json_string(done->element[i]->str));
    json_t *rec = json_pack("{s:i,s:s,s:s,s:o,s:o}", "schema_version", 1, "tenant", tenant, "asset",
                            asset, "states", states, "done", ids);
    char *s = rec ? json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(rec);
    return s;
}

int wb_state_journal(wb_t *wb, const char *tenant, const char *asset, void *opaque, char *epoch,
                     size_t epoch_size) {
    char kh[KEYLEN], kd[KEYLEN], ke[64], km[64];
    msp_key(kh, sizeof(kh), tenant, "wb:%s", asset);
    msp_key(kd, sizeof(kd), tenant, "wb:%s:done", asset);
    msp_key(ke, sizeof(ke), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(km, sizeof(km), "_", WB_STATE_MARK_SUFFIX);
    /* One MULTI: the hash and the set of the same moment, and whether that moment had the whole
     * state (the marker names the epoch): a record read from a wiped Redis is never produced. */
    redisAppendCommand(wb->redis, "MULTI");
    redisAppendCommand(wb->redis, "MGET %s %s", ke, km);
    redisAppendCommand(wb->redis, "HGETALL %s", kh);
    redisAppendCommand(wb->redis, "SMEMBERS %s", kd);
    redisAppendCommand(wb->redis, "EXEC");
    redisReply *r = NULL;
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        if (r)
            freeReplyObject(r);
        r = NULL;
        if (redisGetReply(wb->redis, (void **)&r) != REDIS_OK || !r)
            return -1;
        if (r->type == REDIS_REPLY_ERROR)
            ok = 0;
    }
    if (!ok || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2) {
        freeReplyObject(r);
        return -1;
    }
    const redisReply *e = r->element[0]->element[0], *m = r->element[0]->element[1];
    if (e->type != REDIS_REPLY_STRING || m->type != REDIS_REPLY_STRING || strcmp(e->str, m->str)) {
        freeReplyObject(r);
        return 1;
    }
    snprintf(epoch, epoch_size, "%s", e->str);
    char *text = wb_state_record(tenant, asset, r->element[1], r->element[2]);
    freeReplyObject(r);
    if (!text)
        return -1;
    char key[KEYLEN];
    int kl = snprintf(key, sizeof(key), "%s/%s", tenant, asset);
    int rc = msp_kafka_produce(wb->worker.producer, msp_topic(MSP_TOPIC_WB_STATES), key, (size_t)kl,
                               text, strlen(text), NULL, opaque);
    free(text);
    return rc == 0 ? 0 : -1;
}

int wb_state_is_journal(const rd_kafka_message_t *m) {
    return m->rkt && !strcmp(rd_kafka_topic_name(m->rkt), msp_topic(MSP_TOPIC_WB_STATES));
}

/* ---- rebuild ------------------------------------------------------------------------------- */

typedef struct {
    json_t *last;       /* "<tenant>/<asset>" -> the last record (null: a tombstone) */
    msp_lease_t *lease; /* renewed while reading */
} scan_t;

static int scan_going(void *opaque) { return msp_lease_keep(((scan_t *)opaque)->lease); }

static int scan_record(const char *key, size_t key_len, const char *value, size_t value_len,
                       void *opaque) {
    scan_t *sc = opaque;
    if (!key || key_len == 0 || key_len >= KEYLEN)
        return 0;
    char k[KEYLEN];
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    json_t *rec = value ? json_loadb(value, value_len, 0, NULL) : json_null();
    if (!rec) {
        MSP_WARN("wb.rebuild_bad_record", NULL, "record %s of %s is not JSON: skipped", k,
                 msp_topic(MSP_TOPIC_WB_STATES));
        return 0;
    }
    json_object_set_new(sc->last, k, rec);
    return 0;
}

/* Queue the writes of one asset's record. @returns the commands queued. */
static int record_cmds(wb_t *wb, const json_t *rec) {
    const char *tenant = json_string_value(json_object_get(rec, "tenant"));
    const char *asset = json_string_value(json_object_get(rec, "asset"));
    if (!tenant || !asset)
        return 0;
    char kh[KEYLEN], kd[KEYLEN];
    msp_key(kh, sizeof(kh), tenant, "wb:%s", asset);
    msp_key(kd, sizeof(kd), tenant, "wb:%s:done", asset);
    int n = 0;
    const char *field;
    json_t *st;
    json_object_foreach(json_object_get(rec, "states"), field, st) {
        char *js = json_dumps(st, JSON_COMPACT);
        if (!js)
            continue;
        redisAppendCommand(wb->redis, "HSETNX %s %s %s", kh, field, js), n++;
        free(js);
    }
    size_t i;
    json_t *id;
    int nd = 0;
    json_array_foreach(json_object_get(rec, "done"), i, id) {
        if (json_is_string(id))
            redisAppendCommand(wb->redis, "SADD %s %s", kd, json_string_value(id)), n++, nd++;
    }
    if (nd)
        redisAppendCommand(wb->redis, "EXPIRE %s %lld", kd, wb->conf.done_ttl_days * 86400LL), n++;
    return n;
}

/* Read the *n replies pipelined so far; *ok becomes 0 on an error reply. @returns 0 / -1. */
static int drain_replies(wb_t *wb, int *n, int *ok) {
    for (; *n > 0; (*n)--) {
        redisReply *r = NULL;
        if (redisGetReply(wb->redis, (void **)&r) != REDIS_OK || !r)
            return -1;
        *ok &= r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
    }
    return 0;
}

/* Write every asset's last record, then the marker. @returns assets written, or -1. */
static long rebuild_write(wb_t *wb, json_t *last, const char *epoch) {
    long assets = 0;
    int n = 0, ok = 1;
    const char *k;
    json_t *rec;
    json_object_foreach(last, k, rec) {
        int c = json_is_object(rec) ? record_cmds(wb, rec) : 0;
        assets += c > 0;
        n += c;
        if (n >= 1000 && drain_replies(wb, &n, &ok) < 0) /* in batches: bounded buffers */
            return -1;
    }
    if (drain_replies(wb, &n, &ok) < 0 || !ok)
        return -1;
    return msp_state_mark(wb->redis, WB_STATE_MARK_SUFFIX, epoch) == 1 ? assets : -1;
}

void wb_state_rebuild_tick(wb_t *wb) {
    char epoch[64], lock[64], errstr[512];
    static int64_t last_ms;
    int64_t now = msp_wall_ms();
    if (now - last_ms < 500)
        return; /* the worker ticks every 100 ms: one look every 500 ms is enough */
    last_ms = now;
    epoch[0] = '\0';
    if (wb->stopping || !wb_redis_ok(wb) || wb_state_ready(wb, epoch, sizeof(epoch)) != 0 ||
        !epoch[0])
        return; /* rebuilt, or the configuration not restored yet */
    msp_key(lock, sizeof(lock), "_", WB_STATE_LOCK_SUFFIX);
    msp_lease_t lease;
    if (msp_lease_take(&lease, wb->redis, lock, REBUILD_LOCK_MS) != 1)
        return; /* another replica rebuilds; its marker ends the wait */
    MSP_WARN("wb.rebuild_start", NULL,
             "the write-back states of epoch %s are not in Redis: rebuilding them from %s", epoch,
             msp_topic(MSP_TOPIC_WB_STATES));
    int64_t t0 = msp_wall_ms();
    scan_t sc = {json_object(), &lease};
    long long n = sc.last
                      ? msp_kafka_read_to_end(wb->conf.svc.brokers, msp_topic(MSP_TOPIC_WB_STATES),
                                              REBUILD_READ_MS, scan_record, scan_going, &sc, errstr,
                                              sizeof(errstr))
                      : -1;
    long assets = -1;
    if (n < 0)
        MSP_WARN("wb.rebuild_failed", NULL, "reading %s: %s; trying again",
                 msp_topic(MSP_TOPIC_WB_STATES), sc.last ? errstr : "out of memory");
    else if (!wb_redis_ok(wb) || !(lease.c = wb->redis, msp_lease_keep(&lease)) ||
             (assets = rebuild_write(wb, sc.last, epoch)) < 0)
        MSP_WARN("wb.rebuild_failed", NULL,
                 "writing the states failed (Redis, the lock lost, or lost again); trying again");
    else
        MSP_WARN("wb.rebuild_done", NULL,
                 "write-back states rebuilt: %ld assets from %lld records in %" PRId64 " ms",
                 assets, n, msp_wall_ms() - t0);
    json_decref(sc.last);
    if (wb_redis_ok(wb)) {
        lease.c = wb->redis; /* wb_redis_ok may have connected again */
        msp_lease_release(&lease);
    }
}
