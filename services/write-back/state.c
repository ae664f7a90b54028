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
 * the lease `{_}:writeback:rebuild_lock` reads the topic from its start and writes each asset's
 * last record with HSETNX and SADD, so that a state written since the loss (a change that was
 * running across it) is newer and stays. The rebuild runs on a thread of its own (task.h) with
 * its own blocking Redis connection and Kafka reader: seconds of work during which the loop goes
 * on answering /healthz and /readyz. The loop's side is asynchronous (wb->aredis): a look at the
 * epoch and the marker every 500 ms, which also keeps "Redis answered lately" (/readyz) true
 * while nothing else is sent. Until the marker names the current epoch no change is loaded (work.c LOAD) and no
 * state is journaled: a journal record read from a Redis that lost the asset's state would be
 * partial, and would replace the complete one in the topic.
 *
 * A change that was running across the loss wrote its states into the empty Redis; once the
 * rebuild is done it writes them again (wb_state_reassert, in work.c) before it journals, so its
 * outcome is neither lost nor overwritten by the older record the rebuild brought back.
 */
#include "wb.h"

#include <inttypes.h>
#include <stdatomic.h>
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

int wb_state_ready_send(wb_t *wb, msp_aredis_cb *cb, void *arg) {
    char ke[64], km[64];
    msp_key(ke, sizeof(ke), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(km, sizeof(km), "_", WB_STATE_MARK_SUFFIX);
    const char *argv[] = {"MGET", ke, km};
    return msp_aredis_cmdargv(wb->aredis, cb, arg, 3, argv, NULL);
}

int wb_state_ready_reply(const redisReply *r, char *epoch, size_t epoch_size) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return -1;
    const redisReply *e = r->element[0], *m = r->element[1];
    if (e->type != REDIS_REPLY_STRING)
        return 0; /* the gateway has not restored the configuration yet */
    if (epoch && epoch_size)
        snprintf(epoch, epoch_size, "%s", e->str);
    return m->type == REDIS_REPLY_STRING && !strcmp(m->str, e->str) ? 1 : 0;
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

int wb_state_journal_send(wb_t *wb, const char *tenant, const char *asset, msp_aredis_cb *cb,
                          void *arg) {
    char kh[KEYLEN], kd[KEYLEN], ke[64], km[64];
    msp_key(kh, sizeof(kh), tenant, "wb:%s", asset);
    msp_key(kd, sizeof(kd), tenant, "wb:%s:done", asset);
    msp_key(ke, sizeof(ke), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(km, sizeof(km), "_", WB_STATE_MARK_SUFFIX);
    /* One MULTI: the hash and the set of the same moment, and whether that moment had the whole
     * state (the marker names the epoch): a record read from a wiped Redis is never produced.
     * Only the EXEC's answer matters; a command that cannot be queued (only out of memory: the
     * connection does not change within a turn of the loop) discards the transaction. */
    const char *cmds[][3] = {{"MULTI"}, {"MGET", ke, km}, {"HGETALL", kh}, {"SMEMBERS", kd}};
    const int argc[] = {1, 3, 2, 2};
    for (int i = 0; i < 4; i++) {
        if (msp_aredis_cmdargv(wb->aredis, NULL, arg, argc[i], cmds[i], NULL) != 0) {
            if (i > 0)
                msp_aredis_cmd(wb->aredis, NULL, NULL, "DISCARD");
            return -1;
        }
    }
    if (msp_aredis_cmd(wb->aredis, cb, arg, "EXEC") != 0) {
        msp_aredis_cmd(wb->aredis, NULL, NULL, "DISCARD");
        return -1;
    }
    return 0;
}

int wb_state_journal_reply(wb_t *wb, const char *tenant, const char *asset, const redisReply *r,
                           void *opaque, char *epoch, size_t epoch_size) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2)
        return -1;
    const redisReply *e = r->element[0]->element[0], *m = r->element[0]->element[1];
    if (e->type != REDIS_REPLY_STRING || m->type != REDIS_REPLY_STRING || strcmp(e->str, m->str))
        return 1;
    snprintf(epoch, epoch_size, "%s", e->str);
    char *text = wb_state_record(tenant, asset, r->element[1], r->element[2]);
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

/* One rebuild: what the thread needs (copied or borrowed from the configuration, which outlives
 * it: wb_state_rebuild_close joins first), and its own Redis connection. */
struct wb_rebuild_s {
    const char *brokers, *redis_url;
    long long done_ttl_s;
    char epoch[64];
    redisContext *redis;
    msp_lease_t lease; /* renewed while reading */
    json_t *last;      /* "<tenant>/<asset>" -> the last record (null: a tombstone) */
    atomic_int stop;   /* set by the loop at shutdown */
};

static int scan_going(void *opaque) {
    struct wb_rebuild_s *job = opaque;
    return !atomic_load(&job->stop) && msp_lease_keep(&job->lease);
}

static int scan_record(const char *key, size_t key_len, const char *value, size_t value_len,
                       void *opaque) {
    struct wb_rebuild_s *job = opaque;
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
    json_object_set_new(job->last, k, rec);
    return 0;
}

/* Queue the writes of one asset's record. @returns the commands queued. */
static int record_cmds(redisContext *c, long long done_ttl_s, const json_t *rec) {
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
        redisAppendCommand(c, "HSETNX %s %s %s", kh, field, js), n++;
        free(js);
    }
    size_t i;
    json_t *id;
    int nd = 0;
    json_array_foreach(json_object_get(rec, "done"), i, id) {
        if (json_is_string(id))
            redisAppendCommand(c, "SADD %s %s", kd, json_string_value(id)), n++, nd++;
    }
    if (nd)
        redisAppendCommand(c, "EXPIRE %s %lld", kd, done_ttl_s), n++;
    return n;
}

/* Read the *n replies pipelined so far; *ok becomes 0 on an error reply. @returns 0 / -1. */
static int drain_replies(redisContext *c, int *n, int *ok) {
    for (; *n > 0; (*n)--) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r)
            return -1;
        *ok &= r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
    }
    return 0;
}

/* Write every asset's last record, then the marker. @returns assets written, or -1. */
static long rebuild_write(struct wb_rebuild_s *job) {
    long assets = 0;
    int n = 0, ok = 1;
    const char *k;
    json_t *rec;
    json_object_foreach(job->last, k, rec) {
        int c = json_is_object(rec) ? record_cmds(job->redis, job->done_ttl_s, rec) : 0;
        assets += c > 0;
        n += c;
        if (n >= 1000 && drain_replies(job->redis, &n, &ok) < 0) /* in batches: bounded buffers */
            return -1;
    }
    if (drain_replies(job->redis, &n, &ok) < 0 || !ok)
        return -1;
    return msp_state_mark(job->redis, WB_STATE_MARK_SUFFIX, job->epoch) == 1 ? assets : -1;
}

/* The thread: claim the rebuild for the epoch, read wb.states, write the states (logged). */
static void rebuild_main(void *arg) {
    struct wb_rebuild_s *job = arg;
    char lock[64], errstr[512];
    msp_key(lock, sizeof(lock), "_", WB_STATE_LOCK_SUFFIX);
    if (!msp_redis_ok(&job->redis, job->redis_url) ||
        msp_lease_take(&job->lease, job->redis, lock, REBUILD_LOCK_MS) != 1)
        goto out; /* another replica rebuilds; its marker ends the wait */
    MSP_WARN("wb.rebuild_start", NULL,
             "the write-back states of epoch %s are not in Redis: rebuilding them from %s",
             job->epoch, msp_topic(MSP_TOPIC_WB_STATES));
    int64_t t0 = msp_wall_ms();
    long long n = job->last ? msp_kafka_read_to_end(job->brokers, msp_topic(MSP_TOPIC_WB_STATES),
                                                    REBUILD_READ_MS, scan_record, scan_going, job,
                                                    errstr, sizeof(errstr))
                            : -1;
    long assets = -1;
    if (n < 0)
        MSP_WARN("wb.rebuild_failed", NULL, "reading %s: %s; trying again",
                 msp_topic(MSP_TOPIC_WB_STATES), job->last ? errstr : "out of memory");
    else if (!msp_lease_keep(&job->lease) || (assets = rebuild_write(job)) < 0)
        MSP_WARN("wb.rebuild_failed", NULL,
                 "writing the states failed (Redis, the lock lost, or lost again); trying again");
    else
        MSP_WARN("wb.rebuild_done", NULL,
                 "write-back states rebuilt: %ld assets from %lld records in %" PRId64 " ms",
                 assets, n, msp_wall_ms() - t0);
    msp_lease_release(&job->lease);
out:
    if (job->redis)
        redisFree(job->redis);
    job->redis = NULL;
}

static void rebuild_free(struct wb_rebuild_s *job) {
    if (job)
        json_decref(job->last);
    free(job);
}

/* Start the rebuild for epoch on its thread, unless one runs. */
static void rebuild_start(wb_t *wb, const char *epoch) {
    if (msp_task_busy(&wb->rebuild_task))
        return;
    struct wb_rebuild_s *job = calloc(1, sizeof(*job));
    if (!job)
        return;
    job->brokers = wb->conf.svc.brokers;
    job->redis_url = wb->conf.svc.redis_url;
    job->done_ttl_s = wb->conf.done_ttl_days * 86400LL;
    job->last = json_object();
    snprintf(job->epoch, sizeof(job->epoch), "%s", epoch);
    if (msp_task_start(&wb->rebuild_task, rebuild_main, job) == 1) {
        wb->rebuild = job;
    } else {
        MSP_WARN("wb.rebuild_failed", NULL, "no thread for the rebuild; trying again");
        rebuild_free(job);
    }
}

/* The look's answer: remember whether the state is lost (/readyz), rebuild when not done. */
static void rebuild_looked(void *arg, redisReply *r, const char *why) {
    wb_t *wb = arg;
    char epoch[64] = "";
    (void)why;
    wb->state_checking = 0;
    int ready = wb_state_ready_reply(r, epoch, sizeof(epoch));
    if (ready == 0 && epoch[0] && !wb->stopping)
        rebuild_start(wb, epoch);
}

void wb_state_rebuild_tick(wb_t *wb) {
    if (msp_task_reap(&wb->rebuild_task)) {
        rebuild_free(wb->rebuild);
        wb->rebuild = NULL;
    }
    int64_t now = msp_now_ms();
    if (wb->stopping || wb->state_checking || now - wb->state_look_ms < 500)
        return; /* the worker ticks every 100 ms: one look every 500 ms is enough */
    wb->state_look_ms = now;
    if (wb_state_ready_send(wb, rebuild_looked, wb) == 0)
        wb->state_checking = 1; /* else not connected now: the next tick tries again */
}

void wb_state_rebuild_close(wb_t *wb) {
    if (wb->rebuild)
        atomic_store(&wb->rebuild->stop, 1);
    msp_task_join(&wb->rebuild_task); /* its job borrows the configuration */
    rebuild_free(wb->rebuild);
    wb->rebuild = NULL;
    msp_aredis_cancel(wb->aredis, wb);
    wb->state_checking = 0;
}
