/*
 * rebuild.c — the inventory view and the write-back's echo guard rebuilt from Kafka (rebuild.h).
 *
 * What is read: the compacted topics customers, contacts, tickets, settings and assets (key
 * "<tenant>/<canonical id>"; the last value of a key wins, a tombstone deletes it) and
 * date.changes (every change, in order per asset). Held in memory as one JSON tree per topic
 * while it is applied: the rebuild is rare and the topics hold one record per inventory item.
 *
 * What is written, per record (pipelined, two round trips for the whole rebuild):
 *   - customers, contacts, tickets, settings: inv:<kind>:<id>, the zset inv:<kind>s, and
 *     inv:gone:<kind> for a gone record;
 *   - assets (the merged records): inv:asset:<id>, inv:assets, inv:gone:asset; for each of its
 *     sources the link (inv:link), the members set, inv:srcgone:asset when every source is gone,
 *     and a stand-in source record inv:src:asset:<source id> = the merged facts under the
 *     source's own id (the topics hold only the merged asset; the stand-in keeps an incremental
 *     change of one member from dropping the others, and the next record of that source replaces
 *     it: no fingerprint is written, so every source record of the next sync is applied again);
 *     a date whose source is "manual" becomes the edit (inv:edit); the match keys of the merged
 *     record (nz_match_keys) go to inv:mkey / inv:ksrc when one asset carries them, and are
 *     written demoted ("!") when several assets do (a key that still identified one machine would
 *     have merged them);
 *   - wb:wrote, the echo guard: for every date change, for every target whose integration opted
 *     into the field (writeback_purchase / writeback_warranty of the restored integration), the
 *     value the change asked for, the last change winning — what the write-back records after a
 *     target holds the value.
 * JSON comes from jansson's allocator (the normalizer's per-batch arena, json_arena.h): dumps are
 * released with msp_json_free.
 * Fingerprints, seen marks and counters are not written: the next sync applies every record
 * again (its sweep then sees what is gone).
 *
 * Ordering: a record the normalizer wrote after the loss (a batch that was running when Redis was
 * wiped) is newer than the topic's value. The first round trip asks which inv:<kind>:<id> /
 * inv:asset:<id> exist and those records are left alone; the writes are SET NX, ZADD NX, HSETNX
 * and SADD, so nothing newer is overwritten. The normalizers wait for the marker before any batch,
 * so no other writer runs meanwhile.
 * A merged asset already in Redis still gets everything around its record: the batch that
 * stored it after the wipe wrote only what it changed (the one source it upserted: its record,
 * link and membership), not the edit or the other sources' links, stand-ins and membership, and
 * a rebuild killed inside its write round trip leaves assets half written. Its record was
 * acknowledged by Kafka before it reached Redis, so the topic's last value is that record (or a
 * newer one whose batch replays): what the NX writes add from it agrees with it. Without them the
 * next record of the machine was merged without the edit and without the echo guard of the
 * unlinked source, and the value our write-back had put at the vendor became the vendor's own
 * (test_redis_wipe_sync's test_a_batch_that_commits_after_the_wipe).
 */
#include "rebuild.h"
#include "merge.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <mspsync/backoff.h>
#include <mspsync/kafka.h>
#include <mspsync/log.h>
#include <mspsync/model.h>
#include <mspsync/redis.h>
#include <mspsync/statekeys.h>

#define READ_TIMEOUT_MS 120000
/* The rebuild lock is a lease (msp_lease_t): its holder renews it while it reads and applies, so
 * one that was killed lets another normalizer go within LOCK_MS (a fixed 120 s left the inventory
 * answering 503 for two minutes after a SIGKILL inside the rebuild). */
#define LOCK_MS 10000
#define KEYLEN 600

/* The gateway's "inventory pending" flag goes only when it names the epoch rebuilt for. */
static const char PENDING_DEL_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

nz_state_t nz_state_check(redisContext *c, char *epoch, size_t epoch_size) {
    char ke[64], ki[64];
    msp_key(ke, sizeof ke, "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(ki, sizeof ki, "_", NZ_INVENTORY_MARK_SUFFIX);
    redisReply *r = c ? redisCommand(c, "MGET %s %s", ke, ki) : NULL;
    nz_state_t st = NZ_STATE_ERROR;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        const redisReply *e = r->element[0], *i = r->element[1];
        if (e->type != REDIS_REPLY_STRING)
            st = NZ_STATE_RESTORING;
        else {
            int ready = i->type == REDIS_REPLY_STRING && strcmp(i->str, e->str) == 0;
            st = ready ? NZ_STATE_READY : NZ_STATE_REBUILD;
            if (epoch && epoch_size)
                snprintf(epoch, epoch_size, "%s", e->str);
        }
    }
    if (r)
        freeReplyObject(r);
    return st;
}

/* ---- reading ------------------------------------------------------------------------------- */

typedef struct {
    json_t *last;    /* compacted topic: "<tenant>/<id>" -> record, or null (tombstone) */
    json_t *changes; /* date.changes: array of the changes in read order */
    int (*keep_going)(void *);
    void *opaque;       /* keep_going's */
    msp_lease_t *lease; /* renewed while reading */
} coll_t;

static int coll_going(void *arg) {
    const coll_t *co = arg;
    if (co->lease && !msp_lease_keep(co->lease))
        return 0;
    return !co->keep_going || co->keep_going(co->opaque);
}

static int collect(const char *key, size_t key_len, const char *value, size_t value_len,
                   void *opaque) {
    coll_t *co = opaque;
    if (co->changes) {
        json_t *chg = value ? json_loadb(value, value_len, 0, NULL) : NULL;
        if (json_is_object(chg))
            json_array_append_new(co->changes, chg);
        else
            json_decref(chg);
        return 0;
    }
    if (!key || key_len == 0 || key_len > 400)
        return 0;
    char k[401];
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    json_t *rec = value ? json_loadb(value, value_len, 0, NULL) : json_null();
    if (!rec) {
        MSP_WARN("rebuild.bad_record", NULL, "record %s is not JSON: skipped", k);
        return 0;
    }
    json_object_set_new(co->last, k, rec);
    return 0;
}

static int read_topic(const char *brokers, const char *base, coll_t *co, char *err, size_t errsz) {
    long long n = msp_kafka_read_to_end(brokers, msp_topic(base), READ_TIMEOUT_MS, collect,
                                        coll_going, co, err, errsz);
    if (n < 0)
        return -1;
    MSP_INFO("rebuild.read", NULL, "%s: %lld records", base, n);
    return 0;
}

/* ---- a pipeline of simple commands ---------------------------------------------------------- */

typedef struct {
    redisContext *c;
    long n;
    int failed;
} pl_t;

static void pl_cmd(pl_t *p, int argc, const char **argv) {
    size_t lens[16];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (redisAppendCommandArgv(p->c, argc, argv, lens) != REDIS_OK)
        p->failed = 1;
    p->n++;
}

#define PL(p, ...)                                                                                 \
    do {                                                                                           \
        const char *argv_[] = {__VA_ARGS__};                                                       \
        pl_cmd((p), (int)(sizeof argv_ / sizeof argv_[0]), argv_);                                 \
    } while (0)

/* Read the pipeline's replies; exists (may be NULL) gets one 0/1 per reply. @returns 0 / -1. */
static int pl_run(pl_t *p, char *exists, char *err, size_t errsz) {
    int rc = p->failed ? -1 : 0;
    for (long i = 0; i < p->n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(p->c, (void **)&r) != REDIS_OK || !r) {
            snprintf(err, errsz, "redis: %s", p->c->errstr[0] ? p->c->errstr : "no reply");
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errsz, "redis: %s", r->str);
            rc = -1;
        }
        if (exists)
            exists[i] = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
        freeReplyObject(r);
    }
    p->n = 0;
    return rc;
}

/* ---- writing -------------------------------------------------------------------------------- */

static const struct {
    const char *topic, *kind;
} TYPES[] = {{MSP_TOPIC_CUSTOMERS, "customer"},
             {MSP_TOPIC_CONTACTS, "contact"},
             {MSP_TOPIC_TICKETS, "ticket"},
             {MSP_TOPIC_SETTINGS, "setting"},
             {MSP_TOPIC_ASSETS, "asset"}};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

/* "<tenant>/<id>" split into tenant and id. @returns 0, -1 not one of ours. */
static int split_key(const char *k, char *tenant, size_t tsz, const char **id) {
    const char *slash = strchr(k, '/');
    if (!slash || slash == k || (size_t)(slash - k) >= tsz || !slash[1])
        return -1;
    snprintf(tenant, tsz, "%.*s", (int)(slash - k), k);
    *id = slash + 1;
    return 0;
}

/* "<integration>:<id>" of one entry of a record's sources, or -1. */
static int source_id(const json_t *s, char *out, size_t outsz) {
    const char *in = json_string_value(json_object_get(s, "integration"));
    const char *id = json_string_value(json_object_get(s, "id"));
    if (!in || !id)
        return -1;
    return snprintf(out, outsz, "%s:%s", in, id) < (int)outsz ? 0 : -1;
}

/* The stand-in source record of src in merged asset rec (new string, or NULL). */
static char *stand_in(const json_t *rec, const json_t *source, const char *src) {
    json_t *s = json_deep_copy(rec);
    if (!s)
        return NULL;
    json_object_set_new(s, "id", json_string(src));
    json_t *one = json_array();
    json_array_append_new(one, json_deep_copy(source));
    json_object_set_new(s, "sources", one);
    json_t *d = json_object_get(rec, "dates");
    if (json_is_object(d)) {
        json_t *own = json_object();
        static const char *const F[] = {"purchase", "warranty"};
        for (int f = 0; f < 2; f++) {
            json_t *v = json_object_get(json_object_get(d, F[f]), "value");
            json_object_set_new(own, F[f], json_is_string(v) ? json_incref(v) : json_null());
        }
        json_object_set_new(s, "dates", own);
    }
    char *out = json_dumps(s, JSON_COMPACT);
    json_decref(s);
    return out;
}

/* Count, per "<tenant>\t<match key>", how many merged assets carry the key. */
static void count_keys(json_t *assets, json_t *counts) {
    const char *k;
    json_t *rec;
    json_object_foreach(assets, k, rec) {
        char tenant[160], mk[16][NZ_MKEY_LEN], ck[160 + sizeof mk];
        const char *id;
        if (!json_is_object(rec) || split_key(k, tenant, sizeof tenant, &id) < 0)
            continue;
        int n = nz_match_keys(rec, mk, 16);
        for (int i = 0; i < n; i++) {
            snprintf(ck, sizeof ck, "%s\t%s", tenant, mk[i]);
            json_t *c = json_object_get(counts, ck);
            json_object_set_new(counts, ck, json_integer(json_integer_value(c) + 1));
        }
    }
}

/* The writes of one merged asset that is not in Redis yet. */
static void asset_cmds(pl_t *p, const char *tenant, const char *aid, const json_t *rec,
                       const char *js, json_t *counts, int max_shared) {
    char k[KEYLEN], k2[KEYLEN];
    int gone = json_is_true(json_object_get(rec, "gone"));
    msp_key(k, sizeof k, tenant, "inv:asset:%s", aid);
    PL(p, "SET", k, js, "NX");
    msp_key(k, sizeof k, tenant, "inv:assets");
    PL(p, "ZADD", k, "NX", "0", aid);
    if (gone) {
        msp_key(k, sizeof k, tenant, "inv:gone:asset");
        PL(p, "SADD", k, aid);
    }
    char holders[KEYLEN] = "";
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(rec, "sources"), i, s) {
        char src[KEYLEN], tmp[KEYLEN];
        if (source_id(s, src, sizeof src) < 0)
            continue;
        msp_key(k, sizeof k, tenant, "inv:link");
        PL(p, "HSETNX", k, src, aid);
        msp_key(k, sizeof k, tenant, "inv:members:%s", aid);
        PL(p, "SADD", k, src);
        if (gone) {
            msp_key(k, sizeof k, tenant, "inv:srcgone:asset");
            PL(p, "SADD", k, src);
        }
        char *sj = stand_in(rec, s, src);
        if (sj) {
            msp_key(k, sizeof k, tenant, "inv:src:asset:%s", src);
            PL(p, "SET", k, sj, "NX");
            msp_json_free(sj);
        }
        if (nz_key_holders_add(holders[0] ? holders : NULL, src, max_shared, tmp, sizeof tmp) > 0)
            snprintf(holders, sizeof holders, "%s", tmp);
    }
    json_t *d = json_object_get(rec, "dates");
    static const char *const F[] = {"purchase", "warranty"};
    for (int f = 0; f < 2 && json_is_object(d); f++) {
        json_t *x = json_object_get(d, F[f]);
        const char *src = json_string_value(json_object_get(x, "source"));
        const char *v = json_string_value(json_object_get(x, "value"));
        if (src && v && strcmp(src, "manual") == 0) {
            msp_key(k, sizeof k, tenant, "inv:edit:%s", aid);
            PL(p, "HSETNX", k, F[f], v);
        }
    }
    char mk[16][NZ_MKEY_LEN], ck[160 + sizeof mk];
    int n = nz_match_keys(rec, mk, 16);
    msp_key(k, sizeof k, tenant, "inv:mkey");
    msp_key(k2, sizeof k2, tenant, "inv:ksrc");
    for (int j = 0; j < n; j++) {
        snprintf(ck, sizeof ck, "%s\t%s", tenant, mk[j]);
        if (json_integer_value(json_object_get(counts, ck)) > 1 ||
            strcmp(holders, NZ_KEY_DEMOTED) == 0) {
            PL(p, "HSETNX", k2, mk[j], NZ_KEY_DEMOTED);
        } else {
            PL(p, "HSETNX", k, mk[j], aid);
            if (holders[0])
                PL(p, "HSETNX", k2, mk[j], holders);
        }
    }
}

/* The writes of one customer / contact / ticket / setting not in Redis yet. */
static void record_cmds(pl_t *p, const char *tenant, const char *kind, const char *id,
                        const json_t *rec, const char *js) {
    char k[KEYLEN];
    msp_key(k, sizeof k, tenant, "inv:%s:%s", kind, id);
    PL(p, "SET", k, js, "NX");
    msp_key(k, sizeof k, tenant, "inv:%ss", kind);
    PL(p, "ZADD", k, "NX", "0", id);
    if (json_is_true(json_object_get(rec, "gone"))) {
        msp_key(k, sizeof k, tenant, "inv:gone:%s", kind);
        PL(p, "SADD", k, id);
    }
}

/* Apply the last values of every type: one round trip to learn which records are newer in
 * Redis, one to write the others. @returns records written, or -1. */
static long apply_records(redisContext *c, json_t *const last[NTYPES], int max_shared, char *err,
                          size_t errsz) {
    pl_t p = {.c = c};
    size_t total = 0;
    for (size_t t = 0; t < NTYPES; t++)
        total += json_object_size(last[t]);
    char *exists = calloc(total + 1, 1);
    json_t *counts = json_object();
    if (!exists || !counts) {
        free(exists);
        json_decref(counts);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    for (size_t t = 0; t < NTYPES; t++) {
        const char *k;
        json_t *rec;
        json_object_foreach(last[t], k, rec) {
            char tenant[160], key[KEYLEN];
            const char *id;
            if (!json_is_object(rec) || split_key(k, tenant, sizeof tenant, &id) < 0)
                snprintf(key, sizeof key, "mspsync:{_}:none"); /* a placeholder reply */
            else
                msp_key(key, sizeof key, tenant, "inv:%s:%s", TYPES[t].kind, id);
            PL(&p, "EXISTS", key);
        }
    }
    long written = -1;
    if (pl_run(&p, exists, err, errsz) == 0) {
        count_keys(last[NTYPES - 1], counts);
        size_t x = 0;
        written = 0;
        for (size_t t = 0; t < NTYPES; t++) {
            const char *k;
            json_t *rec;
            json_object_foreach(last[t], k, rec) {
                char tenant[160];
                const char *id;
                int asset = !strcmp(TYPES[t].kind, "asset"), in_redis = exists[x++];
                if ((in_redis && !asset) || !json_is_object(rec) ||
                    split_key(k, tenant, sizeof tenant, &id) < 0)
                    continue;
                char *js = json_dumps(rec, JSON_COMPACT);
                if (!js)
                    continue;
                if (asset) /* also one in Redis already: its edit, links, members (above) */
                    asset_cmds(&p, tenant, id, rec, js, counts, max_shared);
                else
                    record_cmds(&p, tenant, TYPES[t].kind, id, rec, js);
                msp_json_free(js);
                written += !in_redis;
            }
        }
        if (pl_run(&p, NULL, err, errsz) < 0)
            written = -1;
    }
    free(exists);
    json_decref(counts);
    return written;
}

/* Whether the tenant's integration opted into writing field f (cache: "<t>/<integ>" -> [p,w]). */
static int opted_in(redisContext *c, json_t *cache, const char *tenant, const char *integ, int f) {
    char ck[KEYLEN], k[KEYLEN];
    snprintf(ck, sizeof ck, "%s/%s", tenant, integ);
    json_t *o = json_object_get(cache, ck);
    if (!o) {
        msp_key(k, sizeof k, tenant, "integration:%s", integ);
        redisReply *r = redisCommand(c, "HMGET %s writeback_purchase writeback_warranty", k);
        o = json_array();
        for (int i = 0; i < 2; i++)
            json_array_append_new(o, json_boolean(r && r->type == REDIS_REPLY_ARRAY &&
                                                  r->element[i]->type == REDIS_REPLY_STRING &&
                                                  !strcmp(r->element[i]->str, "1")));
        if (r)
            freeReplyObject(r);
        json_object_set_new(cache, ck, o);
    }
    return json_is_true(json_array_get(o, (size_t)f));
}

/* The echo guard from every date change, the last value per target and field winning.
 * @returns entries written, or -1. */
static long apply_echo_guard(redisContext *c, json_t *changes, char *err, size_t errsz) {
    static const char *const F[] = {"purchase", "warranty"};
    json_t *wrote = json_object(); /* "<tenant>\t<integration>:<id>|<field>" -> value */
    json_t *cache = json_object();
    size_t i;
    json_t *chg;
    json_array_foreach(changes, i, chg) {
        const char *tenant = json_string_value(json_object_get(chg, "tenant"));
        json_t *dates = json_object_get(chg, "dates");
        if (!tenant || !json_is_object(dates))
            continue;
        size_t j;
        json_t *t;
        json_array_foreach(json_object_get(chg, "targets"), j, t) {
            const char *integ = json_string_value(json_object_get(t, "integration"));
            const char *id = json_string_value(json_object_get(t, "id"));
            for (int f = 0; f < 2 && integ && id; f++) {
                json_t *v = json_object_get(dates, F[f]);
                if (!v || !opted_in(c, cache, tenant, integ, f))
                    continue;
                char k[KEYLEN];
                snprintf(k, sizeof k, "%s\t%s:%s|%s", tenant, integ, id, F[f]);
                json_object_set_new(wrote, k,
                                    json_string(json_is_string(v) ? json_string_value(v) : ""));
            }
        }
    }
    pl_t p = {.c = c};
    const char *k;
    json_t *v;
    json_object_foreach(wrote, k, v) {
        const char *tab = strchr(k, '\t');
        char tenant[160], key[KEYLEN];
        snprintf(tenant, sizeof tenant, "%.*s", (int)(tab - k), k);
        msp_key(key, sizeof key, tenant, "wb:wrote");
        PL(&p, "HSETNX", key, tab + 1, json_string_value(v));
    }
    long n = (long)json_object_size(wrote);
    if (pl_run(&p, NULL, err, errsz) < 0)
        n = -1;
    json_decref(wrote);
    json_decref(cache);
    return n;
}

int nz_rebuild(redisContext *c, const char *brokers, const char *epoch, int max_shared,
               int (*keep_going)(void *), void *opaque, char *err, size_t errsz) {
    char lock[64], mark[64];
    msp_key(lock, sizeof lock, "_", NZ_REBUILD_LOCK_SUFFIX);
    msp_key(mark, sizeof mark, "_", NZ_INVENTORY_MARK_SUFFIX);
    msp_lease_t lease;
    int taken = msp_lease_take(&lease, c, lock, LOCK_MS);
    if (taken < 0) {
        snprintf(err, errsz, "redis: %s", c->err ? c->errstr : "taking the rebuild lock failed");
        return -1;
    }
    if (!taken)
        return 0;
    MSP_WARN("rebuild.start", NULL,
             "the inventory of epoch %s is not in Redis: rebuilding it "
             "from the compacted topics",
             epoch);
    json_t *last[NTYPES] = {0};
    coll_t ch = {NULL, json_array(), keep_going, opaque, &lease};
    int rc = ch.changes ? 0 : -1;
    for (size_t t = 0; t < NTYPES && rc == 0; t++) {
        coll_t co = {json_object(), NULL, keep_going, opaque, &lease};
        last[t] = co.last;
        rc = co.last ? read_topic(brokers, TYPES[t].topic, &co, err, errsz) : -1;
    }
    if (rc == 0)
        rc = read_topic(brokers, MSP_TOPIC_DATE_CHANGES, &ch, err, errsz);
    long records = -1, guards = -1;
    if (rc == 0 && !msp_lease_keep(&lease)) {
        snprintf(err, errsz, "the rebuild lock expired while reading");
        rc = -1;
    }
    if (rc == 0 && (records = apply_records(c, last, max_shared, err, errsz)) >= 0 &&
        (guards = apply_echo_guard(c, ch.changes, err, errsz)) >= 0) {
        /* the marker names the epoch rebuilt for: a wipe meanwhile leaves the epoch different */
        redisReply *x = redisCommand(c, "SET %s %s", mark, epoch);
        rc = x && x->type == REDIS_REPLY_STATUS ? 0 : -1;
        if (x)
            freeReplyObject(x);
        char pending[64];
        msp_key(pending, sizeof pending, "_", MSP_STATE_INVENTORY_PENDING_SUFFIX);
        x = rc == 0 ? redisCommand(c, "EVAL %s 1 %s %s", PENDING_DEL_LUA, pending, epoch) : NULL;
        if (x)
            freeReplyObject(x);
        if (rc == 0)
            MSP_WARN("rebuild.done", NULL, "inventory rebuilt: %ld records, %ld echo guards",
                     records, guards);
        else
            snprintf(err, errsz, "redis: setting the marker failed");
    } else {
        rc = -1;
    }
    msp_lease_release(&lease);
    for (size_t t = 0; t < NTYPES; t++)
        json_decref(last[t]);
    json_decref(ch.changes);
    return rc == 0 ? 1 : -1;
}
