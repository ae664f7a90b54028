/*
 * journal.c — configuration survives a lost Redis: every change is journaled to the compacted
 * `config` topic, and a Redis found without its epoch marker is restored from it.
 *
 * What is configuration is the statekeys.h table (MSP_STATE_CONFIG: tenants, integrations with
 * their sealed credentials, webhook secrets, ticketing configuration and org mappings). The
 * gateway is the only writer of those keys, and every write goes through store.c, which calls
 * gw_journal_note with the key it wrote. The key is marked dirty; a zero-delay timer then reads
 * each dirty key's whole value and produces it to `config` (key "<tenant>/<suffix>", value
 * {"schema_version":1,"tenant","key","type":"hash|string|set","value"}, a tombstone when the key
 * no longer exists). Several writes of one request coalesce into one record per key. A record
 * whose delivery fails marks its key dirty again (retried after 1 s): Kafka ends up with the last
 * value of every key, whatever the order of failures.
 *
 * The marker: mspsync:{_}:state:epoch holds a random id, set when a restore (or the very first
 * start) ends. A journal pass reads it before and after reading the values; if it is missing or
 * changed, Redis was wiped meanwhile: nothing is produced (an empty read must never become a
 * tombstone) and a restore starts.
 *
 * The restore: every /v1 route answers 503 "restoring" (the MTP retries a 503; a 404 for an
 * unknown tenant would be final), and a thread — the restore is blocking Kafka and Redis I/O —
 * claims mspsync:{_}:restore:lock (SET NX PX: one gateway restores, the others wait for the
 * marker), reads `config` from its start to its end (msp_kafka_read_to_end), keeps the last
 * value of each key, writes each (DEL, then HSET / SET / SADD; a tombstoned key is deleted),
 * adds every restored tenant to the tenants set, notes the time (state:restored_at_ms, when it
 * restored anything: the ticket-creator then looks in Syncro for its lost ticket records), and
 * sets a new epoch. The loop's 200 ms check
 * sees the marker and serves again. A gateway that starts on a Redis with the marker republishes
 * every configuration key once (a change whose record was lost to a crash of the gateway between
 * the write and its delivery reaches Kafka now; a deployment from before the journal fills it).
 *
 * Limits: a change accepted in the moment between a wipe and this gateway noticing it (at most
 * one check interval) is written to the empty Redis and then overwritten by the restore; the
 * fetcher and the ticket-creator wait for the marker (msp_state_lost) instead of treating a
 * missing key as missing.
 */
#include "gateway.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "mspsync/aredis.h"
#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"
#include "mspsync/vendor.h"

#define CHECK_MS 200   /* how often the marker is looked at while restoring */
#define WATCH_MS 1000  /* and while serving: how fast a wipe is noticed */
#define RETRY_MS 1000  /* a failed journal pass or delivery */
#define LOCK_MS 10000  /* a lease the restorer renews (msp_lease_t): one killed lets another go */
#define READ_TIMEOUT_MS 120000

struct gw_journal_s {
    gw_t *gw;
    json_t *dirty;          /* full key -> true */
    struct event *flush_ev; /* zero-delay (or RETRY_MS) journal pass */
    struct event *watch_ev; /* the marker check */
    char epoch[64];         /* the marker as last seen ("" = unknown) */
    int republish;          /* once the marker is seen: note every config key */
    int watching;           /* a marker read is in flight on the async connection */
    int passing;            /* a journal pass runs (on a coroutine, perhaps waiting on Redis) */
    pthread_t thread;
    int thread_started;
    atomic_int thread_done; /* the restore thread finished (joined by the loop) */
    atomic_int stop;        /* shutdown: abandon a restore */
    int restore_ok;
    char restore_err[256];
};

/* ---- journal ------------------------------------------------------------------------------- */

static void schedule_flush(gw_journal_t *j, int ms) {
    if (!j->flush_ev || evtimer_pending(j->flush_ev, NULL))
        return;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(j->flush_ev, &tv);
}

void gw_journal_note(gw_t *gw, const char *key) {
    gw_journal_t *j = gw->journal;
    if (!j || !key)
        return;
    const msp_statekey_t *row = msp_statekey_find(key, NULL, 0, NULL);
    if (!row || row->kind != MSP_STATE_CONFIG)
        return;
    json_object_set_new(j->dirty, key, json_true());
    schedule_flush(j, 0);
}

/* The marker (new string) or NULL when absent; *err = 1 when Redis did not answer. */
static char *read_epoch(gw_t *gw, int *err) {
    char key[64], e[256];
    msp_key(key, sizeof(key), "_", MSP_STATE_EPOCH_SUFFIX);
    redisReply *r = gw_redis(gw, e, sizeof(e), "GET %s", key);
    *err = !r;
    char *v = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    if (r)
        freeReplyObject(r);
    return v;
}

json_t *gw_config_value(gw_t *gw, const char *key, int *ok) {
    char e[256];
    *ok = 1;
    redisReply *t = gw_redis(gw, e, sizeof(e), "TYPE %s", key);
    if (!t) {
        *ok = 0;
        return NULL;
    }
    const char *type = t->type == REDIS_REPLY_STATUS ? t->str : "none";
    const char *cmd = !strcmp(type, "hash")     ? "HGETALL"
                      : !strcmp(type, "string") ? "GET"
                      : !strcmp(type, "set")    ? "SMEMBERS"
                                                : NULL;
    json_t *value = NULL;
    if (cmd) {
        redisReply *r = gw_redis(gw, e, sizeof(e), "%s %s", cmd, key);
        if (!r) {
            *ok = 0;
        } else if (r->type == REDIS_REPLY_STRING) {
            value = json_stringn(r->str, r->len);
        } else if (r->type == REDIS_REPLY_ARRAY && !strcmp(type, "hash")) {
            value = json_object();
            for (size_t i = 0; i + 1 < r->elements; i += 2)
                json_object_set_new(value, r->element[i]->str,
                                    json_stringn(r->element[i + 1]->str, r->element[i + 1]->len));
        } else if (r->type == REDIS_REPLY_ARRAY) {
            value = json_array();
            for (size_t i = 0; i < r->elements; i++)
                json_array_append_new(value, json_stringn(r->element[i]->str, r->element[i]->len));
        }
        if (r)
            freeReplyObject(r);
    }
    freeReplyObject(t);
    if (!*ok) {
        json_decref(value);
        return NULL;
    }
    return value;
}

/* The record of one key: new JSON string, or NULL for a tombstone. *ok = 0 on a Redis error. */
static char *dump_key(gw_t *gw, const char *key, int *ok) {
    char tenant[128];
    const char *suffix = NULL;
    msp_statekey_find(key, tenant, sizeof(tenant), &suffix);
    json_t *value = gw_config_value(gw, key, ok);
    if (!value)
        return NULL;
    const char *type = json_is_object(value) ? "hash" : json_is_string(value) ? "string" : "set";
    json_t *rec = json_pack("{s:i, s:s, s:s, s:s, s:o}", "schema_version", 1, "tenant", tenant,
                            "key", suffix, "type", type, "value", value);
    char *out = rec ? json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(rec);
    return out;
}

typedef struct {
    gw_journal_t *j;
    json_t *keys; /* the keys of this pass, marked dirty again if it fails */
} pass_t;

static void pass_done(gw_t *gw, void *arg, const char *error) {
    pass_t *p = arg;
    gw_journal_t *j = gw->journal;
    if (error && j) {
        MSP_WARN("config.journal_failed", NULL, "%s; retrying in %d ms", error, RETRY_MS);
        const char *k;
        json_t *v;
        json_object_foreach(p->keys, k, v) json_object_set_new(j->dirty, k, json_true());
        schedule_flush(j, RETRY_MS);
    }
    json_decref(p->keys);
    free(p);
}

static void start_restore(gw_journal_t *j);

static void flush_pass(gw_journal_t *j);

/* One pass at a time, on a coroutine (admin.c): its reads wait without holding the loop. Keys
 * noted meanwhile wait in j->dirty for the next pass, started when this one ends. */
static void flush_task(gw_t *gw, void *arg) {
    gw_journal_t *j = arg;
    flush_pass(j);
    j->passing = 0;
    if (gw->restoring != 1 && !gw->stopping && json_object_size(j->dirty))
        schedule_flush(j, 0);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    gw_journal_t *j = arg;
    if (j->passing)
        return; /* the pass in progress schedules the next when it ends */
    j->passing = 1;
    gw_admin_call(j->gw, flush_task, j);
}

static void flush_pass(gw_journal_t *j) {
    gw_t *gw = j->gw;
    if (gw->restoring == 1 || json_object_size(j->dirty) == 0)
        return; /* after the restore, the check schedules the pass again */
    int err = 0;
    char *before = read_epoch(gw, &err);
    if (err || !before || strcmp(before, j->epoch) != 0) {
        free(before);
        if (!err)
            start_restore(j); /* wiped (or restored by another gateway): keep the keys dirty */
        schedule_flush(j, RETRY_MS);
        return;
    }
    pass_t *p = calloc(1, sizeof(*p));
    json_t *records = json_object(); /* record key -> value or null */
    p->j = j;
    p->keys = j->dirty;
    j->dirty = json_object();
    const char *k;
    json_t *v;
    int ok = 1;
    json_object_foreach(p->keys, k, v) {
        char tenant[128];
        const char *suffix = NULL;
        msp_statekey_find(k, tenant, sizeof(tenant), &suffix);
        char *rec = dump_key(gw, k, &ok);
        if (!ok)
            break;
        char rkey[300];
        snprintf(rkey, sizeof(rkey), "%s/%s", tenant, suffix);
        json_object_set_new(records, rkey, rec ? json_string(rec) : json_null());
        free(rec);
    }
    char *after = ok ? read_epoch(gw, &err) : NULL;
    if (!ok || err || !after || strcmp(after, before) != 0) {
        /* Redis failed or was wiped while we read: an empty read must not become a tombstone */
        pass_done(gw, p, "Redis changed or failed during the journal pass");
        json_decref(records);
        free(before);
        free(after);
        return;
    }
    free(before);
    free(after);
    gw_batch_t *b = gw_batch_new(gw, pass_done, p);
    if (!b) {
        pass_done(gw, p, "out of memory");
        json_decref(records);
        return;
    }
    json_object_foreach(records, k, v) {
        const char *val = json_string_value(v);
        gw_batch_produce(b, msp_topic(MSP_TOPIC_CONFIG), k, val, val ? strlen(val) : 0);
    }
    gw_batch_seal(b);
    json_decref(records);
}

void gw_config_keys_each(const char *tenant,
                         void (*cb)(const char *key, const char *suffix, void *arg), void *arg) {
    char key[300];
    for (size_t r = 0; msp_statekey_at(r); r++) {
        const msp_statekey_t *row = msp_statekey_at(r);
        size_t len = strlen(row->suffix);
        if (row->kind != MSP_STATE_CONFIG)
            continue;
        if (row->suffix[len - 1] != '*') {
            msp_key(key, sizeof(key), tenant, "%s", row->suffix);
            cb(key, strchr(key, '}') + 2, arg);
            continue;
        }
        if (strncmp(row->suffix, "integration:", 12) != 0)
            continue; /* audit:<n>: entries are written once, never changed */
        for (size_t v = 0; msp_vendor_at(v); v++) { /* the one family: integration:<v> */
            msp_key(key, sizeof(key), tenant, "%.*s%s", (int)(len - 1), row->suffix,
                    msp_vendor_at(v)->name);
            if (msp_statekey_find(key, NULL, 0, NULL) == row)
                cb(key, strchr(key, '}') + 2, arg);
        }
    }
}

typedef struct {
    gw_t *gw;
    size_t n;
} republish_t;

static void note_one(const char *key, const char *suffix, void *arg) {
    republish_t *p = arg;
    (void)suffix;
    gw_journal_note(p->gw, key);
    p->n++;
}

/* Every configuration key of every tenant, once (see the file comment). */
static void republish_all(gw_journal_t *j) {
    gw_t *gw = j->gw;
    char set[64], e[256];
    msp_key(set, sizeof(set), "_", "tenants");
    redisReply *ts = gw_redis(gw, e, sizeof(e), "SMEMBERS %s", set);
    if (!ts) {
        j->republish = 1; /* next check */
        return;
    }
    republish_t p = {gw, 0};
    for (size_t i = 0; ts->type == REDIS_REPLY_ARRAY && i < ts->elements; i++)
        gw_config_keys_each(ts->element[i]->str, note_one, &p);
    freeReplyObject(ts);
    MSP_INFO("config.republish", NULL, "journaling %zu configuration keys", p.n);
}

static void republish_task(gw_t *gw, void *arg) {
    (void)gw;
    republish_all(arg);
}

/* ---- restore ------------------------------------------------------------------------------- */

typedef struct {
    gw_journal_t *j;
    json_t *last;       /* record key -> record (object) or null */
    msp_lease_t *lease; /* restore:lock, renewed while reading and writing */
} restore_t;

static int keep_going(void *opaque) {
    restore_t *r = opaque;
    return !atomic_load(&r->j->stop) && msp_lease_keep(r->lease);
}

static int collect(const char *key, size_t key_len, const char *value, size_t value_len,
                   void *opaque) {
    restore_t *r = opaque;
    if (!key || key_len == 0 || key_len > 400)
        return 0; /* not one of ours: skipped */
    char k[401];
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    json_t *rec = value ? json_loadb(value, value_len, 0, NULL) : json_null();
    if (!rec) {
        MSP_WARN("config.bad_record", NULL, "record %s of the config topic is not JSON: skipped",
                 k);
        return 0;
    }
    json_object_set_new(r->last, k, rec);
    return 0;
}

/* Write one key as its last record says. @returns 0 or -1 (Redis). */
static int apply(redisContext *c, const char *rkey, json_t *rec, json_t *tenants) {
    const char *slash = strchr(rkey, '/');
    if (!slash)
        return 0;
    char tenant[128], full[400];
    snprintf(tenant, sizeof(tenant), "%.*s", (int)(slash - rkey), rkey);
    msp_key(full, sizeof(full), tenant, "%s", slash + 1);
    const msp_statekey_t *row = msp_statekey_find(full, NULL, 0, NULL);
    if (!row || row->kind != MSP_STATE_CONFIG)
        return 0; /* a key this version does not know: left out */
    redisReply *r = redisCommand(c, "DEL %s", full);
    if (!r)
        return -1;
    freeReplyObject(r);
    const char *type = json_string_value(json_object_get(rec, "type"));
    json_t *v = json_object_get(rec, "value");
    if (!type || !v)
        return 0; /* tombstone */
    if (!strcmp(type, "string") && json_is_string(v)) {
        r = redisCommand(c, "SET %s %b", full, json_string_value(v), json_string_length(v));
    } else if ((!strcmp(type, "hash") && json_is_object(v) && json_object_size(v)) ||
               (!strcmp(type, "set") && json_is_array(v) && json_array_size(v))) {
        size_t n = json_is_object(v) ? 2 * json_object_size(v) : json_array_size(v);
        const char **argv = calloc(n + 2, sizeof(*argv));
        size_t *lens = calloc(n + 2, sizeof(*lens));
        if (!argv || !lens) {
            free(argv);
            free(lens);
            return -1;
        }
        size_t a = 0;
        argv[a] = json_is_object(v) ? "HSET" : "SADD", lens[a] = strlen(argv[a]), a++;
        argv[a] = full, lens[a] = strlen(full), a++;
        const char *f;
        json_t *x;
        size_t i;
        if (json_is_object(v)) {
            json_object_foreach(v, f, x) {
                argv[a] = f, lens[a] = strlen(f), a++;
                argv[a] = json_string_value(x) ? json_string_value(x) : "";
                lens[a] = json_string_value(x) ? json_string_length(x) : 0, a++;
            }
        } else {
            json_array_foreach(v, i, x) {
                argv[a] = json_string_value(x) ? json_string_value(x) : "";
                lens[a] = json_string_value(x) ? json_string_length(x) : 0, a++;
            }
        }
        r = redisCommandArgv(c, (int)a, argv, lens);
        free(argv);
        free(lens);
    } else {
        return 0;
    }
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    if (!strcmp(slash + 1, "tenant"))
        json_object_set_new(tenants, tenant, json_true());
    return 0;
}

static void *restore_main(void *arg) {
    gw_journal_t *j = arg;
    gw_t *gw = j->gw;
    char err[256] = "", lock[64], mark[64], set[64], epoch[33], restored_at[64];
    redisContext *c = msp_redis_connect(gw->cfg.redis_url, err, sizeof(err));
    msp_key(lock, sizeof(lock), "_", "restore:lock");
    msp_key(mark, sizeof(mark), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(set, sizeof(set), "_", "tenants");
    msp_key(restored_at, sizeof(restored_at), "_", MSP_STATE_RESTORED_AT_SUFFIX);
    restore_t r = {j, json_object(), NULL};
    long long n = -1;
    j->restore_ok = 0;
    if (!c)
        goto out;
    msp_lease_t lease;
    int mine = msp_lease_take(&lease, c, lock, LOCK_MS);
    if (mine != 1) {
        snprintf(err, sizeof(err), "%s",
                 mine == 0 ? "another gateway is restoring" : "Redis failed");
        goto out;
    }
    r.lease = &lease;
    redisReply *x;
    MSP_WARN("config.restore", NULL,
             "Redis has no state marker: restoring the configuration "
             "from the %s topic",
             msp_topic(MSP_TOPIC_CONFIG));
    n = msp_kafka_read_to_end(gw->cfg.svc.brokers, msp_topic(MSP_TOPIC_CONFIG), READ_TIMEOUT_MS,
                              collect, keep_going, &r, err, sizeof(err));
    if (n >= 0) {
        json_t *tenants = json_object();
        const char *k;
        json_t *v;
        size_t keys = 0;
        json_object_foreach(r.last, k, v) {
            if (!msp_lease_keep(&lease)) {
                snprintf(err, sizeof(err), "the restore lock expired while writing");
                n = -1;
                break;
            }
            if (apply(c, k, json_is_object(v) ? v : NULL, tenants) != 0) {
                snprintf(err, sizeof(err), "Redis: %s", c->err ? c->errstr : "error reply");
                n = -1;
                break;
            }
            keys++;
        }
        json_object_foreach(tenants, k, v) {
            x = redisCommand(c, "SADD %s %s", set, k);
            if (x)
                freeReplyObject(x);
        }
        int drawn = n >= 0 && msp_random_hex(epoch, 16) == 0;
        if (drawn && n > 0) {
            /* Redis held state before: the normalizers rebuild the inventory for this epoch (and
             * until then an inventory read answers 503, gw_inventory_pending); the time of the
             * loss lets the ticket-creator look in Syncro for its lost ticket records. All of it
             * goes in before the marker, so a worker that sees the marker sees it too. */
            char pending[64], restored[64], now[32];
            msp_key(pending, sizeof(pending), "_", MSP_STATE_INVENTORY_PENDING_SUFFIX);
            msp_key(restored, sizeof(restored), "_", MSP_STATE_RESTORED_SUFFIX);
            snprintf(now, sizeof(now), "%lld", (long long)msp_wall_ms());
            x = keys > 0 ? redisCommand(c, "MSET %s %s %s %s %s %s", pending, epoch, restored,
                                        epoch, restored_at, now)
                         : redisCommand(c, "MSET %s %s %s %s", pending, epoch, restored, epoch);
            if (!x || x->type == REDIS_REPLY_ERROR) {
                snprintf(err, sizeof(err), "Redis: %s", c->err ? c->errstr : "error reply");
                n = -1;
                drawn = 0;
            }
            if (x)
                freeReplyObject(x);
        }
        if (drawn && (x = redisCommand(c, "SET %s %s", mark, epoch)) != NULL) {
            freeReplyObject(x);
            j->restore_ok = 1;
            MSP_WARN("config.restored", NULL, "restored %zu keys of %zu tenants from %lld records",
                     keys, json_object_size(tenants), n);
        }
        json_decref(tenants);
    }
    msp_lease_release(&lease);
out:
    if (!j->restore_ok)
        snprintf(j->restore_err, sizeof(j->restore_err), "%s", err);
    json_decref(r.last);
    if (c)
        redisFree(c);
    atomic_store(&j->thread_done, 1);
    return NULL;
}

int gw_inventory_pending(gw_t *gw) {
    char key[64], err[256];
    msp_key(key, sizeof(key), "_", MSP_STATE_INVENTORY_PENDING_SUFFIX);
    redisReply *r = gw_redis(gw, err, sizeof(err), "EXISTS %s", key);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? r->integer > 0 : -1;
    if (r)
        freeReplyObject(r);
    return rc;
}

static void start_restore(gw_journal_t *j) {
    gw_t *gw = j->gw;
    if (gw->restoring != 1) {
        gw->restoring = 1;
        MSP_WARN("config.restoring", NULL,
                 "the state marker is gone: answering 503 until the "
                 "configuration is restored");
    }
    if (j->thread_started)
        return;
    atomic_store(&j->thread_done, 0);
    if (pthread_create(&j->thread, NULL, restore_main, j) == 0)
        j->thread_started = 1;
}

/* The restore thread finished: join it (the loop's side). */
static void reap_restore(gw_journal_t *j) {
    if (j->thread_started && atomic_load(&j->thread_done)) {
        pthread_join(j->thread, NULL);
        j->thread_started = 0;
        if (!j->restore_ok && strcmp(j->restore_err, "another gateway is restoring") != 0)
            MSP_ERROR("config.restore_failed", NULL, "%s; trying again", j->restore_err);
    }
}

const char *gw_journal_current(const gw_t *gw) { return gw->journal ? gw->journal->epoch : ""; }

void gw_journal_epoch(gw_t *gw, const char *epoch) {
    gw_journal_t *j = gw->journal;
    if (!j) {
        return;
    }
    reap_restore(j);
    if (!epoch) {
        start_restore(j);
        return;
    }
    if (gw->restoring == 1)
        MSP_INFO("config.serving", NULL, "state marker present: serving");
    gw->restoring = 0;
    int changed = strcmp(epoch, j->epoch) != 0;
    snprintf(j->epoch, sizeof(j->epoch), "%s", epoch);
    if (changed)
        gw_tc_invalidate_all(gw); /* restored: what the webhooks cached may be older */
    if (j->republish) {
        j->republish = 0;
        gw_admin_call(gw, republish_task, j);
    }
    if (changed && json_object_size(j->dirty))
        schedule_flush(j, 0);
}

int gw_journal_check(gw_t *gw) {
    gw_journal_t *j = gw->journal;
    if (!j)
        return gw->restoring == 1;
    reap_restore(j);
    int err = 0;
    char *epoch = read_epoch(gw, &err);
    if (!err)
        gw_journal_epoch(gw, epoch);
    /* else: Redis did not answer; the state stays as it was (requests say "redis unavailable") */
    free(epoch);
    return gw->restoring == 1;
}

static void watch_again(gw_journal_t *j) {
    int ms = j->gw->restoring == 1 ? CHECK_MS : WATCH_MS;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(j->watch_ev, &tv);
}

/* The marker as the async connection read it (NULL reply: no answer; the state stays). */
static void watch_reply(void *arg, redisReply *r, const char *why) {
    (void)why;
    gw_journal_t *j = arg;
    j->watching = 0;
    if (r && r->type != REDIS_REPLY_ERROR && !j->gw->stopping)
        gw_journal_epoch(j->gw, r->type == REDIS_REPLY_STRING ? r->str : NULL);
    if (!j->gw->stopping)
        watch_again(j);
}

/*
 * The marker check: every CHECK_MS while restoring, WATCH_MS while serving. It reads on the
 * async connection (tenant_cache.c), so a stalled Redis never stalls the loop: the next check
 * is armed when the answer comes. Without that connection (down, or not yet there) it waits
 * for the next interval.
 */
static void watch_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    gw_journal_t *j = arg;
    gw_t *gw = j->gw;
    char key[64];
    msp_key(key, sizeof(key), "_", MSP_STATE_EPOCH_SUFFIX);
    reap_restore(j);
    if (!j->watching && msp_aredis_cmd(gw->aredis, watch_reply, j, "GET %s", key) == 0) {
        j->watching = 1;
        return;
    }
    if (!j->watching)
        watch_again(j);
}

int gw_journal_start(gw_t *gw) {
    gw_journal_t *j = calloc(1, sizeof(*j));
    if (!j)
        return -1;
    j->gw = gw;
    j->dirty = json_object();
    j->republish = 1;
    j->flush_ev = evtimer_new(gw->base, flush_cb, j);
    j->watch_ev = evtimer_new(gw->base, watch_cb, j);
    if (!j->dirty || !j->flush_ev || !j->watch_ev) {
        gw->journal = j;
        gw_journal_stop(gw);
        return -1;
    }
    gw->journal = j;
    gw->restoring = 2; /* not known until Redis answers (route_cb asks again) */
    watch_cb(-1, 0, j);
    return 0;
}

void gw_journal_stop(gw_t *gw) {
    gw_journal_t *j = gw->journal;
    if (!j)
        return;
    atomic_store(&j->stop, 1);
    if (j->thread_started)
        pthread_join(j->thread, NULL);
    if (gw->restoring == 0 && json_object_size(j->dirty))
        flush_cb(-1, 0, j); /* the producer's flush at shutdown delivers it */
    if (json_object_size(j->dirty))
        MSP_WARN("config.journal_pending", NULL,
                 "%zu configuration keys not journaled at exit; "
                 "the next start republishes them",
                 json_object_size(j->dirty));
    if (j->flush_ev)
        event_free(j->flush_ev);
    if (j->watch_ev)
        event_free(j->watch_ev);
    json_decref(j->dirty);
    free(j);
    gw->journal = NULL;
}
