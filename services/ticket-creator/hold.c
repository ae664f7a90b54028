/*
 * hold.c — releasing the incidents a tenant's ticketing held, in the order they were held.
 *
 * work.c holds an event (ticketing paused by a 401/403, switched off with when_disabled=hold, or
 * incidents of the tenant already held) by producing it to `incidents.held`, key = tenant, so
 * that one tenant's held events sit in one partition in the order they were held; its offset on
 * `incidents` is committed once Kafka has it and the index says so:
 *
 *   mspsync:{t}:ticketing:held      hash   partition, from (first offset not yet released),
 *                                          to (last held offset), count (held, not released)
 *   mspsync:{_}:ticketing:holding   set    tenants with an index
 *
 * Nothing stays in memory while a tenant holds (days of "hold" cost a Kafka partition's disk,
 * not RAM), and a held tenant blocks nobody: its events leave `incidents` at once.
 *
 * Every 500 ms a replica looks at the holding tenants. One whose reason to hold is gone (the
 * pause flag cleared by a save of the integration, ticketing switched on, or when_disabled back
 * to skip) is released by the replica that wins `ticketing:release_lock` (SET NX PX, renewed
 * while it works): a group-less reader reads the partition from `from`; the tenant's records
 * are worked one at a time through work.c's machine (the same LOAD, GATE, DECIDE, CALL, FINISH,
 * the same exactly-once records), and `from` moves past each finished one. While the index
 * exists, the tenant's new events are held behind the old ones, so a fingerprint's events are
 * ticketed in arrival order. When `from` passes `to` the index is deleted and new events go
 * straight through again. A release that meets the reason again (a second 401, ticketing switched
 * off) stops where it is; the event it was on stays held.
 *
 * A crash anywhere replays: a held event whose index entry was not written is held again (its
 * copy in the topic is released twice, the second time found handled by its event id); a
 * released event whose `from` did not move is worked again and found handled, or its pending
 * marker makes the replay look before writing (design.md "No duplicate across a crash").
 *
 * While Redis has lost its state (msp_state_lost: the gateway restores it from Kafka) nothing is
 * released: the timer waits for the marker.
 *
 * The index is derived state: after each released record the releaser also produces a release
 * mark to incidents.held (key = tenant, header x-mspsync-kind: release-mark, value {"tenant",
 * "partition","released_to":<offset>}), Kafka's record of how far the tenant was released. Once
 * per epoch (`{_}:state:held`, one replica under `{_}:ticketing:held_rebuild_lock`) the topic is
 * read from its start; per tenant, the held records after its last mark's released_to make the
 * index again (from = the first, to = the last, count) and the tenant rejoins the holding set.
 * Until then nothing is released and work.c's events wait (a tenant whose index was lost would
 * otherwise let its new events overtake the held ones). Readers of held records skip the marks.
 * The scan reads a whole topic (a long hold leaves a large one), so it runs on a thread of its
 * own (msp_task_t) with its own Redis connection: the loop goes on answering /healthz and
 * /metrics and running its timers, and asks every 500 ms whether the scan ended.
 */
#include "tc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"

#define IDLE_MS 500
#define LOCK_MS 10000
#define RENEW_MS 2000
#define SCAN_PER_RUN 500 /* records of other tenants skipped per turn of the loop */
#define REBUILD_LOCK_MS                                                                            \
    10000 /* a lease renewed while scanning: a killed rebuilder lets another go */
#define REBUILD_READ_MS 90000 /* bounds the scan of incidents.held */

static void rel_arm(tc_t *tc, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(tc->rel.timer, &tv);
}

static void key_of(char *buf, size_t size, const char *tenant, const char *rest) {
    msp_key(buf, size, tenant, "%s", rest);
}

/* ---- the lock ---------------------------------------------------------------------------- */

static const char UNLOCK_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";
static const char RENEW_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/* The run's chain of Redis steps ended: the timer takes over again in ms. */
static void rel_rest(tc_t *tc, int ms) {
    tc->rel.busy = 0;
    rel_arm(tc, ms);
}

/* 1 when an EVAL of RENEW_LUA answered that the lock is still ours (and notes when). */
static int renewed(tc_t *tc, const redisReply *r) {
    int ok = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (ok)
        tc->rel.lock_renewed_ms = msp_wall_ms();
    return ok;
}

/* Ask Redis to extend our lock; cb gets the answer. @returns 0 sent, -1 not connected. */
static int lock_renew_send(tc_t *tc, msp_aredis_cb *cb) {
    char k[256], ms[16];
    key_of(k, sizeof(k), tc->rel.tenant, "ticketing:release_lock");
    snprintf(ms, sizeof(ms), "%d", LOCK_MS);
    return msp_aredis_cmd(tc->aredis, cb, tc, "EVAL %s 1 %s %s %s", RENEW_LUA, k, tc->rel.lock, ms);
}

/* ---- release marks ----------------------------------------------------------------------- */

/* 1 when a record of incidents.held is a release mark, not a held incident. */
static int is_mark(const rd_kafka_message_t *m) {
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    return rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h &&
           rd_kafka_header_get_last(h, TC_MARK_HEADER, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
           n == strlen(TC_MARK_KIND) && !memcmp(v, TC_MARK_KIND, n);
}

/*
 * Kafka's record that the tenant is released up to offset (inclusive). Not waited for: a mark
 * that does not reach Kafka is covered by the next one; lost with a crash, the records after the
 * last mark are released again after a Redis loss and found handled (design.md).
 */
static void mark_produce(tc_t *tc, int64_t offset) {
    json_t *v = json_pack("{s:s,s:i,s:I}", "tenant", tc->rel.tenant, "partition",
                          (int)tc->rel.partition, "released_to", (json_int_t)offset);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    rd_kafka_headers_t *h = text ? rd_kafka_headers_new(1) : NULL;
    if (h)
        rd_kafka_header_add(h, TC_MARK_HEADER, -1, TC_MARK_KIND, -1);
    if (!h ||
        msp_kafka_produce(tc->worker.producer, msp_topic(MSP_TOPIC_INCIDENTS_HELD), tc->rel.tenant,
                          strlen(tc->rel.tenant), text, strlen(text), h, NULL) != 0) {
        if (h)
            rd_kafka_headers_destroy(h);
        MSP_WARN("held.mark_failed", tc->rel.tenant,
                 "the release mark for offset %" PRId64 " was not produced; the next one covers it",
                 offset);
    }
    free(text);
}

/* ---- a run ------------------------------------------------------------------------------- */

/* The run is over (finished, stopped or lost its lock): give the partition and the lock up. */
static void run_end(tc_t *tc, const char *why) {
    MSP_INFO("held.release_end", tc->rel.tenant, "%" PRId64 " released; %s", tc->rel.released, why);
    rd_kafka_assign(tc->rel.reader, NULL);
    char k[256]; /* not waited for: a lock left behind expires */
    key_of(k, sizeof(k), tc->rel.tenant, "ticketing:release_lock");
    msp_aredis_cmd(tc->aredis, NULL, NULL, "EVAL %s 1 %s %s", UNLOCK_LUA, k, tc->rel.lock);
    tc->rel.tenant[0] = '\0';
    tc->rel.item = NULL;
}

static int run_start(tc_t *tc, const char *tenant, int32_t partition, int64_t from) {
    char errstr[512];
    if (!tc->rel.reader) {
        tc->rel.reader = msp_kafka_reader_new(tc->conf.svc.brokers, "mspsync-ticket-creator-held",
                                              errstr, sizeof(errstr));
        if (!tc->rel.reader) {
            MSP_ERROR("kafka.init_failed", NULL, "held incidents reader: %s", errstr);
            return -1;
        }
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, msp_topic(MSP_TOPIC_INCIDENTS_HELD), partition)->offset =
        from;
    rd_kafka_resp_err_t err = rd_kafka_assign(tc->rel.reader, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        MSP_WARN("kafka.assign_failed", tenant, "held incidents: %s", rd_kafka_err2str(err));
        return -1;
    }
    snprintf(tc->rel.tenant, sizeof(tc->rel.tenant), "%s", tenant);
    tc->rel.partition = partition;
    tc->rel.next = from;
    tc->rel.released = 0;
    MSP_INFO("held.release_start", tenant, "releasing held incidents from %s [%d] offset %" PRId64,
             msp_topic(MSP_TOPIC_INCIDENTS_HELD), (int)partition, from);
    return 0;
}

/*
 * `from` moves past offset; the index goes when it passed `to`. @returns 1 more to release,
 * 0 the index is gone (all released), -1 Redis failed.
 */
static const char DONE_LUA[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
    "redis.call('HSET', KEYS[1], 'from', tonumber(ARGV[1]) + 1) "
    "if tonumber(redis.call('HGET', KEYS[1], 'count') or '0') > 0 then "
    "redis.call('HINCRBY', KEYS[1], 'count', -1) end "
    "redis.call('HINCRBY', KEYS[2], 'released', 1) "
    "if tonumber(redis.call('HGET', KEYS[1], 'to') or '-1') <= tonumber(ARGV[1]) then "
    "redis.call('DEL', KEYS[1]) return 0 end "
    "return 1";

/* The index moved past the released event (1), is gone (0), or Redis failed. */
static void end_done(void *arg, redisReply *r, const char *why) {
    tc_t *tc = arg;
    (void)why;
    if (tc->stopping)
        return;
    int rc = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    if (rc < 0) {
        /* The event is handled (its record says so); a later run finds it so and moves on. */
        run_end(tc, "recording the release failed (Redis); a later run goes on");
        rel_rest(tc, IDLE_MS);
        return;
    }
    int64_t offset = tc->rel.end_offset;
    mark_produce(tc, offset);
    tc->rel.released++;
    tc->rel.next = offset + 1;
    if (rc == 0)
        run_end(tc, "every held incident released");
    rel_rest(tc, 0);
}

/* A Redis loss meanwhile took the lock with the index: the rebuilt index is not moved by a run
 * of the old one (its `from` may be before this offset); the next run finds it handled. */
static void end_renewed(void *arg, redisReply *r, const char *why) {
    tc_t *tc = arg;
    (void)why;
    if (tc->stopping)
        return;
    char kh[256], ks[256], off[32];
    key_of(kh, sizeof(kh), tc->rel.tenant, "ticketing:held");
    key_of(ks, sizeof(ks), tc->rel.tenant, "ticketing:stats");
    snprintf(off, sizeof(off), "%" PRId64, tc->rel.end_offset);
    if (!renewed(tc, r) ||
        msp_aredis_cmd(tc->aredis, end_done, tc, "EVAL %s 2 %s %s %s", DONE_LUA, kh, ks, off) != 0)
        end_done(tc, NULL, "no answer");
}

void tc_release_item_end(tc_t *tc, int64_t offset, tc_release_end_t end) {
    tc->rel.item = NULL;
    if (end == TC_RELEASE_ABANDONED || tc->stopping) {
        run_end(tc, "stopping");
        return;
    }
    if (end == TC_RELEASE_STOP) {
        run_end(tc, "the tenant holds again; the rest stays held");
        rel_arm(tc, IDLE_MS);
        return;
    }
    /* `from` moves past it: renew the lock (still ours?), then the index (end_renewed). */
    tc->rel.busy = 1;
    tc->rel.end_offset = offset;
    if (lock_renew_send(tc, end_renewed) != 0)
        end_done(tc, NULL, "not connected");
}

static void run_poll(tc_t *tc);

/*
 * At the end of the partition: the index is deleted when it is gone or ends before ARGV[1] (its
 * `to`), in one script — a hold recorded between a read and a DEL would be lost with the index.
 * @returns 1 ended (deleted, or gone), 0 more is to come.
 */
static const char EOF_LUA[] = "local to = redis.call('HGET', KEYS[1], 'to') "
                              "if to and tonumber(to) >= tonumber(ARGV[1]) then return 0 end "
                              "redis.call('DEL', KEYS[1]) return 1";

static void eof_checked(void *arg, redisReply *r, const char *why) {
    tc_t *tc = arg;
    (void)why;
    if (tc->stopping)
        return;
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        rel_rest(tc, 50);
        return;
    }
    /* Everything the index names was read (copies of a crash-replayed hold, or records already
     * released): nothing left. */
    run_end(tc, "end of the held partition");
    rel_rest(tc, 0);
}

static void turn_renewed(void *arg, redisReply *r, const char *why) {
    tc_t *tc = arg;
    (void)why;
    if (tc->stopping)
        return;
    if (!renewed(tc, r)) {
        run_end(tc, "the release lock was lost");
        rel_rest(tc, IDLE_MS);
        return;
    }
    run_poll(tc);
}

/* One turn of a run: the lock renewed when due (turn_renewed), then run_poll. */
static void run_turn(tc_t *tc) {
    if (msp_wall_ms() - tc->rel.lock_renewed_ms < RENEW_MS) {
        run_poll(tc);
        return;
    }
    if (lock_renew_send(tc, turn_renewed) != 0)
        rel_rest(tc, IDLE_MS);
}

/* Read on from next, start the tenant's next record. */
static void run_poll(tc_t *tc) {
    for (int n = 0; n < SCAN_PER_RUN; n++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(tc->rel.reader, 0);
        if (!m) {
            rel_rest(tc, 10);
            return;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            int64_t at = m->offset;
            rd_kafka_message_destroy(m);
            char kh[256], off[32];
            key_of(kh, sizeof(kh), tc->rel.tenant, "ticketing:held");
            snprintf(off, sizeof(off), "%" PRId64, at > tc->rel.next ? at : tc->rel.next);
            if (msp_aredis_cmd(tc->aredis, eof_checked, tc, "EVAL %s 1 %s %s", EOF_LUA, kh, off) !=
                0)
                rel_rest(tc, 50);
            return;
        }
        if (m->err) {
            MSP_WARN("kafka.consume_error", tc->rel.tenant, "held incidents: %s",
                     rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            rel_rest(tc, 200);
            return;
        }
        int ours = m->offset >= tc->rel.next && m->key && m->key_len == strlen(tc->rel.tenant) &&
                   !memcmp(m->key, tc->rel.tenant, m->key_len) && !is_mark(m);
        if (!ours) {
            if (m->offset >= tc->rel.next)
                tc->rel.next = m->offset + 1;
            rd_kafka_message_destroy(m);
            continue;
        }
        tc->rel.busy = 0; /* the event's end goes on (tc_release_item_end) */
        if (tc_release_start(tc, m, tc->rel.tenant) != 0) {
            rd_kafka_message_destroy(m);
            run_end(tc, "out of memory");
            rel_rest(tc, IDLE_MS);
        }
        return;
    }
    rel_rest(tc, 0);
}

/* ---- looking for tenants to release ------------------------------------------------------ */

/*
 * The idle look at the holding tenants is a chain of Redis steps, one tenant at a time
 * (rel.tenants, rel.tenant_at): its index and its reasons to hold (idle_candidate), the lock
 * (idle_locked), then a run; the chain ends by arming the timer or starting the run.
 */
static void idle_next(tc_t *tc);

/* The chain is over: forget the tenants, the timer looks again in ms. */
static void idle_end(tc_t *tc, int ms) {
    json_decref(tc->rel.tenants);
    tc->rel.tenants = NULL;
    rel_rest(tc, ms);
}

static const char *idle_tenant(const tc_t *tc) {
    return json_string_value(json_array_get(tc->rel.tenants, tc->rel.tenant_at));
}

/* 1 when the tenant still has a reason to hold (the config and the pause flag as answered):
 * paused, or off with when_disabled=hold; unreadable answers keep it holding. */
static int still_holding(const redisReply *rc, const redisReply *rp) {
    if ((rc->type != REDIS_REPLY_STRING && rc->type != REDIS_REPLY_NIL) ||
        (rp->type != REDIS_REPLY_STRING && rp->type != REDIS_REPLY_NIL))
        return 1;
    json_t *cfg = rc->type == REDIS_REPLY_STRING ? json_loads(rc->str, 0, NULL) : NULL;
    const char *wd = json_string_value(json_object_get(cfg, "when_disabled"));
    int enabled = json_is_true(json_object_get(cfg, "enabled"));
    int paused = rp->type == REDIS_REPLY_STRING && !strcmp(rp->str, "1");
    int hold = paused || (!enabled && wd && !strcmp(wd, "hold"));
    json_decref(cfg);
    return hold;
}

/* The lock is ours (a run starts) or another replica's (the next tenant). */
static void idle_locked(void *arg, redisReply *r, const char *why) {
    tc_t *tc = arg;
    (void)why;
    if (tc->stopping)
        return;
    const char *tenant = idle_tenant(tc);
    if (!r || r->type != REDIS_REPLY_STATUS || !tenant) {
        tc->rel.tenant_at++;
        idle_next(tc);
        return;
    }
    if (run_start(tc, tenant, tc->rel.cand_partition, tc->rel.cand_from) != 0) {
        snprintf(tc->rel.tenant, sizeof(tc->rel.tenant), "%s", tenant);
        run_end(tc, "could not read the held partition");
        tc->rel.tenant_at++;
        idle_next(tc);
        return;
    }
    json_decref(tc->rel.tenants);
    tc->rel.tenants = NULL;
    run_turn(tc);
}

/*
 * A tenant of the holding set without an index left the set; it is put back when an index
 * appeared meanwhile (work.c writes the index before adding to the set, so one of the two
 * always sees the other).
 */
static void idle_forgot(void *arg, redisReply *r, const char *why) {
    tc_t *tc = arg;
    (void)why;
    if (tc->stopping)
        return;
    const char *tenant = idle_tenant(tc);
    if (tenant && r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        char kg[128];
        key_of(kg, sizeof(kg), "_", "ticketing:holding");
        msp_aredis_cmd(tc->aredis, NULL, NULL, "SADD %s %s", kg, tenant);
    }
    tc->rel.tenant_at++;
    idle_next(tc);
}

/* The tenant's index, config and pause flag: forget it, pass it, or take its lock. */
static void idle_candidate(void *arg, redisReply *x, const char *why) {
    tc_t *tc = arg;
    (void)why;
    if (tc->stopping)
        return;
    const char *tenant = idle_tenant(tc);
    const redisReply *h = tc_tx_ok(x, 3) ? x->element[0] : NULL;
    if (!tenant || !h || h->type != REDIS_REPLY_ARRAY || h->elements != 2) {
        idle_end(tc, IDLE_MS);
        return;
    }
    char kg[128], kh[256], k[256];
    if (h->element[0]->type != REDIS_REPLY_STRING || h->element[1]->type != REDIS_REPLY_STRING) {
        key_of(kg, sizeof(kg), "_", "ticketing:holding");
        key_of(kh, sizeof(kh), tenant, "ticketing:held");
        if (msp_aredis_cmd(tc->aredis, NULL, NULL, "SREM %s %s", kg, tenant) != 0 ||
            msp_aredis_cmd(tc->aredis, idle_forgot, tc, "EXISTS %s", kh) != 0)
            idle_end(tc, IDLE_MS);
        return;
    }
    tc->rel.cand_partition = (int32_t)strtol(h->element[0]->str, NULL, 10);
    tc->rel.cand_from = strtoll(h->element[1]->str, NULL, 10);
    if (still_holding(x->element[1], x->element[2]) || msp_random_hex(tc->rel.lock, 16) != 0) {
        tc->rel.tenant_at++;
        idle_next(tc);
        return;
    }
    key_of(k, sizeof(k), tenant, "ticketing:release_lock");
    tc->rel.lock_renewed_ms = msp_wall_ms();
    if (msp_aredis_cmd(tc->aredis, idle_locked, tc, "SET %s %s NX PX %d", k, tc->rel.lock,
                       LOCK_MS) != 0)
        idle_end(tc, IDLE_MS);
}

/* Ask about the next holding tenant, or end the look. */
static void idle_next(tc_t *tc) {
    const char *tenant = idle_tenant(tc);
    if (!tenant) {
        idle_end(tc, IDLE_MS);
        return;
    }
    char kh[256], kc[256], ks[256];
    key_of(kh, sizeof(kh), tenant, "ticketing:held");
    key_of(kc, sizeof(kc), tenant, "ticketing:config");
    key_of(ks, sizeof(ks), tenant, "status:syncro");
    tc_tx_t t = tc_tx_begin(tc->aredis);
    TC_TX(&t, "HMGET %s partition from", kh);
    TC_TX(&t, "GET %s", kc);
    TC_TX(&t, "HGET %s ticketing_paused", ks);
    if (tc_tx_exec(&t, idle_candidate, tc) != 0)
        idle_end(tc, IDLE_MS);
}

/* The holding set: kept (copied) and looked at one tenant at a time. */
static void idle_members(void *arg, redisReply *set, const char *why) {
    tc_t *tc = arg;
    (void)why;
    if (tc->stopping)
        return;
    if (!set || set->type != REDIS_REPLY_ARRAY) {
        rel_rest(tc, IDLE_MS);
        return;
    }
    json_decref(tc->rel.tenants);
    tc->rel.tenants = json_array();
    tc->rel.tenant_at = 0;
    for (size_t i = 0; i < set->elements; i++) {
        const redisReply *e = set->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len > 0 && e->len <= 128)
            json_array_append_new(tc->rel.tenants, json_stringn(e->str, e->len));
    }
    idle_next(tc);
}

/* Look at every holding tenant; start a run for the first one that may be released. */
static void idle_turn(tc_t *tc) {
    char kg[128];
    key_of(kg, sizeof(kg), "_", "ticketing:holding");
    if (msp_aredis_cmd(tc->aredis, idle_members, tc, "SMEMBERS %s", kg) != 0)
        rel_rest(tc, IDLE_MS);
}

/* ---- rebuilding the index after a Redis loss --------------------------------------------- */

/*
 * Whether the index is there for the current epoch, from the answer to MGET epoch state:held.
 * @returns 1 yes, 0 it must be rebuilt (epoch gets the epoch), -1 Redis lost its state (the
 * restore is pending) or did not answer.
 */
static int held_state(const redisReply *r, char *epoch, size_t size) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return -1;
    snprintf(epoch, size, "%s", r->element[0]->str);
    return r->element[1]->type == REDIS_REPLY_STRING && !strcmp(r->element[1]->str, epoch);
}

/* Ask for held_state's answer (cb). @returns 0 sent, -1 not connected. */
static int held_state_send(tc_t *tc, msp_aredis_cb *cb) {
    char ke[64], kd[64];
    msp_key(ke, sizeof(ke), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(kd, sizeof(kd), "_", TC_STATE_HELD_SUFFIX);
    return msp_aredis_cmd(tc->aredis, cb, tc, "MGET %s %s", ke, kd);
}

/*
 * One record of the scan: tenant -> {"partition", "released_to", "offsets": [held], "skip": the
 * released ones at the front of offsets}.
 */
struct tc_held_job_s {
    const char *brokers;   /* borrowed from tc->conf */
    const char *redis_url; /* borrowed from tc->conf */
    const char *topic;     /* incidents.held's full name, resolved by the loop (msp_topic) */
    char epoch[64];
    redisContext *redis; /* the thread's */
    json_t *tenants;     /* tenant -> what the scan found */
    msp_lease_t lease;   /* held_rebuild_lock, renewed while scanning */
    atomic_int stop;     /* set by the loop when the service stops */
};

static int scan_going(void *opaque) {
    struct tc_held_job_s *job = opaque;
    return msp_lifecycle_running() && !atomic_load(&job->stop) && msp_lease_keep(&job->lease);
}

static int scan_record(const rd_kafka_message_t *m, void *opaque) {
    json_t *tenants = ((struct tc_held_job_s *)opaque)->tenants;
    char tenant[129];
    if (!m->key || m->key_len == 0 || m->key_len >= sizeof(tenant))
        return 0; /* not a tenant's record: work.c never produces one */
    memcpy(tenant, m->key, m->key_len);
    tenant[m->key_len] = '\0';
    json_t *t = json_object_get(tenants, tenant);
    if (!t) {
        t = json_pack("{s:i,s:I,s:[],s:i}", "partition", (int)m->partition, "released_to",
                      (json_int_t)-1, "offsets", "skip", 0);
        if (!t || json_object_set_new(tenants, tenant, t) != 0)
            return -1;
    }
    json_t *offsets = json_object_get(t, "offsets");
    if (!is_mark(m)) {
        json_object_set_new(t, "partition", json_integer(m->partition));
        return json_array_append_new(offsets, json_integer(m->offset));
    }
    json_t *v = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    json_t *to = json_object_get(v, "released_to");
    json_int_t upto = json_is_integer(to) ? json_integer_value(to) : -1;
    json_decref(v);
    if (upto <= json_integer_value(json_object_get(t, "released_to")))
        return 0;
    json_object_set_new(t, "released_to", json_integer(upto));
    /* offsets ascend within the partition: the released ones are at the front; they are
     * skipped, and dropped once they are most of the array (not one by one: quadratic) */
    size_t skip = (size_t)json_integer_value(json_object_get(t, "skip"));
    while (skip < json_array_size(offsets) &&
           json_integer_value(json_array_get(offsets, skip)) <= upto)
        skip++;
    if (skip > 1024 && skip * 2 > json_array_size(offsets)) {
        json_t *rest = json_array();
        for (size_t i = skip; rest && i < json_array_size(offsets); i++)
            json_array_append(rest, json_array_get(offsets, i));
        if (!rest || json_object_set_new(t, "offsets", rest) != 0)
            return -1;
        skip = 0;
    }
    return json_object_set_new(t, "skip", json_integer((json_int_t)skip));
}

/*
 * The tenant's index from the scan, unless one exists (written since the restore by a hold: it is
 * kept, the scan's records are before it only by a hold in flight across the loss).
 */
static const char REBUILT_LUA[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
    "redis.call('HSET', KEYS[1], 'partition', ARGV[1], 'from', ARGV[2], 'to', ARGV[3], "
    "'count', ARGV[4]) "
    "return 1";

/* Write the scanned tenants' indexes and the holding set, then state:held. @returns 0 or -1. */
static int rebuild_write(redisContext *c, json_t *tenants, const char *epoch) {
    const char *tenant;
    json_t *t;
    char kh[256], kg[128];
    int64_t n = 0;
    msp_key(kg, sizeof(kg), "_", "ticketing:holding");
    json_object_foreach(tenants, tenant, t) {
        json_t *offsets = json_object_get(t, "offsets");
        size_t skip = (size_t)json_integer_value(json_object_get(t, "skip"));
        size_t end = json_array_size(offsets), count = end > skip ? end - skip : 0;
        if (count == 0)
            continue;
        char part[16], from[32], to[32], cnt[32];
        snprintf(part, sizeof(part), "%d",
                 (int)json_integer_value(json_object_get(t, "partition")));
        snprintf(from, sizeof(from), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_array_get(offsets, skip)));
        snprintf(to, sizeof(to), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_array_get(offsets, end - 1)));
        snprintf(cnt, sizeof(cnt), "%zu", count);
        key_of(kh, sizeof(kh), tenant, "ticketing:held");
        redisReply *r =
            redisCommand(c, "EVAL %s 1 %s %s %s %s %s", REBUILT_LUA, kh, part, from, to, cnt);
        int ok = r && r->type == REDIS_REPLY_INTEGER;
        if (r)
            freeReplyObject(r);
        r = ok ? redisCommand(c, "SADD %s %s", kg, tenant) : NULL;
        ok = r && r->type == REDIS_REPLY_INTEGER;
        if (r)
            freeReplyObject(r);
        if (!ok)
            return -1;
        MSP_INFO("held.rebuilt", tenant, "%zu held incidents from offset %s to %s of [%s]", count,
                 from, to, part);
        n++;
    }
    int done = msp_state_mark(c, TC_STATE_HELD_SUFFIX, epoch) == 1;
    if (done)
        MSP_INFO("held.rebuild_done", NULL, "held-incident index rebuilt: %" PRId64 " tenants hold",
                 n);
    return done ? 0 : -1;
}

/* The thread: claim the rebuild for the epoch, scan incidents.held, write the index (logged). */
static void rebuild_main(void *arg) {
    struct tc_held_job_s *job = arg;
    char kl[64], errstr[512];
    msp_key(kl, sizeof(kl), "_", "ticketing:held_rebuild_lock");
    if (!msp_redis_ok(&job->redis, job->redis_url) ||
        msp_lease_take(&job->lease, job->redis, kl, REBUILD_LOCK_MS) != 1)
        goto out; /* another replica rebuilds; its state:held ends the wait */
    int64_t t0 = msp_wall_ms();
    long long n = job->tenants ? msp_kafka_read_to_end_msg(job->brokers, job->topic,
                                                           REBUILD_READ_MS, scan_record, scan_going,
                                                           job, errstr, sizeof(errstr))
                               : -1;
    if (n < 0)
        MSP_WARN("held.rebuild_failed", NULL, "reading %s: %s; trying again", job->topic,
                 job->tenants ? errstr : "out of memory");
    else if (!msp_lease_keep(&job->lease) ||
             rebuild_write(job->redis, job->tenants, job->epoch) != 0)
        MSP_WARN("held.rebuild_failed", NULL,
                 "writing the index failed (Redis, the lock lost, or lost again); trying again");
    else
        MSP_INFO("held.rebuild_read", NULL, "%lld records of %s read in %" PRId64 " ms", n,
                 job->topic, msp_wall_ms() - t0);
    msp_lease_release(&job->lease);
out:
    if (job->redis)
        redisFree(job->redis);
    job->redis = NULL;
}

static void held_job_free(struct tc_held_job_s *job) {
    if (job)
        json_decref(job->tenants);
    free(job);
}

/* The loop's side: reap a rebuild that ended, and start one for epoch unless one runs. */
static void rebuild(tc_t *tc, const char *epoch) {
    if (msp_task_busy(&tc->rel.rebuild_task))
        return;
    struct tc_held_job_s *job = calloc(1, sizeof(*job));
    if (!job)
        return;
    job->brokers = tc->conf.svc.brokers;
    job->redis_url = tc->conf.svc.redis_url;
    job->topic = msp_topic(MSP_TOPIC_INCIDENTS_HELD);
    job->tenants = json_object();
    snprintf(job->epoch, sizeof(job->epoch), "%s", epoch);
    if (msp_task_start(&tc->rel.rebuild_task, rebuild_main, job) == 1)
        tc->rel.rebuild = job;
    else {
        MSP_WARN("held.rebuild_failed", NULL, "no thread for the scan; trying again");
        held_job_free(job);
    }
}

/* Reap the rebuild's thread when it ended (free its job). */
static void rebuild_reap(tc_t *tc) {
    if (msp_task_reap(&tc->rel.rebuild_task)) {
        held_job_free(tc->rel.rebuild);
        tc->rel.rebuild = NULL;
    }
}

static void rebuild_state(void *arg, redisReply *r, const char *why) {
    tc_t *tc = arg;
    char epoch[64];
    (void)why;
    tc->rel.rebuild_asking = 0;
    if (!tc->stopping && held_state(r, epoch, sizeof(epoch)) == 0)
        rebuild(tc, epoch);
}

/*
 * Every 500 ms: is the index there for the epoch (rebuild_state)? If not, rebuild it (on the
 * rebuild's thread, once per loss). Its own timer: a released event in flight waits for
 * state:held too, and the release timer waits for that event. One question out at a time.
 */
static void rebuild_timer_cb(evutil_socket_t fd, short what, void *arg) {
    tc_t *tc = arg;
    (void)fd;
    (void)what;
    if (tc->stopping)
        return;
    rebuild_reap(tc);
    if (!tc->rel.rebuild_asking && held_state_send(tc, rebuild_state) == 0)
        tc->rel.rebuild_asking = 1;
    struct timeval tv = {IDLE_MS / 1000, (IDLE_MS % 1000) * 1000};
    evtimer_add(tc->rel.rebuild_timer, &tv);
}

/*
 * Redis lost its state and the gateway has not restored it, or the index is not rebuilt for the
 * epoch yet: an index or a lock read now would be an empty one. Wait (a run in progress then
 * finds its lock gone and ends; the next starts from the rebuilt `from`).
 */
static void rel_state(void *arg, redisReply *r, const char *why) {
    tc_t *tc = arg;
    char epoch[64];
    (void)why;
    if (tc->stopping)
        return;
    if (held_state(r, epoch, sizeof(epoch)) != 1) {
        rel_rest(tc, IDLE_MS);
        return;
    }
    if (tc->rel.tenant[0])
        run_turn(tc);
    else
        idle_turn(tc);
}

static void rel_timer_cb(evutil_socket_t fd, short what, void *arg) {
    tc_t *tc = arg;
    (void)fd;
    (void)what;
    if (tc->stopping || tc->rel.item || tc->rel.busy)
        return; /* an event in flight, or a Redis step, calls back itself */
    tc->rel.busy = 1;
    if (held_state_send(tc, rel_state) != 0)
        rel_rest(tc, IDLE_MS);
}

int tc_release_init(tc_t *tc) {
    tc->rel.timer = evtimer_new(tc->base, rel_timer_cb, tc);
    tc->rel.rebuild_timer = evtimer_new(tc->base, rebuild_timer_cb, tc);
    if (!tc->rel.timer || !tc->rel.rebuild_timer)
        return -1;
    rel_arm(tc, IDLE_MS);
    struct timeval now = {0, 0};
    evtimer_add(tc->rel.rebuild_timer, &now);
    return 0;
}

void tc_release_close(tc_t *tc) {
    msp_aredis_cancel(tc->aredis, tc); /* the releaser's replies (this file's owner is tc) */
    json_decref(tc->rel.tenants);
    tc->rel.tenants = NULL;
    if (tc->rel.rebuild)
        atomic_store(&tc->rel.rebuild->stop, 1);
    msp_task_join(&tc->rel.rebuild_task); /* its job borrows the configuration */
    held_job_free(tc->rel.rebuild);
    tc->rel.rebuild = NULL;
    if (tc->rel.item) {
        tc_release_item_free(tc->rel.item);
        tc->rel.item = NULL;
    }
    if (tc->rel.timer)
        event_free(tc->rel.timer);
    tc->rel.timer = NULL;
    if (tc->rel.rebuild_timer)
        event_free(tc->rel.rebuild_timer);
    tc->rel.rebuild_timer = NULL;
    if (tc->rel.reader) {
        rd_kafka_consumer_close(tc->rel.reader);
        rd_kafka_destroy(tc->rel.reader);
        tc->rel.reader = NULL;
    }
}
