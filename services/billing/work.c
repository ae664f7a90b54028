/*
 * work.c — one message of usage.events: a usage report raises a mark, a push request writes
 * the marks into Syncro recurring-invoice lines.
 *
 * USAGE (an item per report, in the order of its (tenant, org, product) key):
 *   the tenant's config (time zone, grace days) names the report's period; a report whose
 *   period ended more than grace_days before it reached the gateway is LATE: appended to
 *   `billing:late` (shown by the status), not applied. Otherwise one Lua script raises
 *   `billing:marks:<period>`[org, product] to the count when higher (marks only rise within a
 *   period; a duplicate or an older, lower report changes nothing) and keeps the latest report
 *   per (org, product) in `billing:seen` (the status lists unmapped ones with their counts).
 *   Max and "latest by as_of" are order-free, so a replay of the topic rebuilds the same state.
 *
 * PUSH (an item per request, one tenant's pushes in order), per mapped customer of the plan
 * (msp_billing_plan: this period's marks, orgs mapped to customers, products mapped to lines):
 *   READ    GET /schedules?customer_id= (every page): the customer's recurring invoices with
 *           their `lines`.
 *   LINE    per product: the line named by the mapping (case-insensitive), else:
 *             none, `create`  → POST /schedules/{first}/add_line_item with the quantity;
 *             none            → state "no_line" with the reason (nothing written);
 *             counted type    → state "refused": Syncro computes a counted line's quantity
 *                               (recurring_type_id set) and ignores ours — map a fixed line;
 *             quantity equal  → nothing written; recorded "unchanged" (or "written" when our
 *                               own pending write is what made it equal, see below);
 *             quantity differs→ HSET the line's state "pending" with the wanted quantity, then
 *                               PUT /schedules/{id}/line_items/{line_id} {"quantity": n}.
 *   RECORD  after a write answered, the line's in-memory quantity becomes the wanted one and
 *           LINE runs again: it finds them equal and, seeing its own pending marker, records
 *           "written" and appends the change to `billing:history:<schedule>:<line>`.
 *   FINISH  `billing:push` gets the push's outcome; a push with failed lines (4xx other than
 *           429: Syncro's message is kept on the line) goes to the dlq topic with the reasons.
 *
 * Why every change is written once, also across SIGKILL (as the write-back, wb/work.c):
 * (1) a PUT or POST is sent only right after a GET of the same customer showed the line lacking
 *     the quantity; a failed or timed-out write is never resent as such: the retry starts again
 *     at the GET (retry_from), which sees a write that landed;
 * (2) the push's offset is stored only after FINISH, so a crash replays the push; the replay's
 *     GETs see every write that landed and do not repeat it (its pending marker turns it into
 *     "written" and its history entry);
 * (3) one tenant's pushes never run concurrently in a replica (keyq key "<tenant>/push"), and a
 *     replica works only on partitions it owns.
 * Marks only rise within a period, so a push that reads a newer mark writes a newer quantity:
 * that is a new change, not a repeat. Remaining window (as the write-back's): a write still
 * travelling from a killed process when its replacement reads.
 *
 * Errors: 423/429/5xx/timeouts are retried by the vendor-call engine with backoff, Retry-After
 * winning, without limit (the push waits; nothing is dead-lettered); the shared GCRA bucket of
 * the Syncro account paces every call.
 */
#include "billing.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "mspsync/backoff.h"
#include "mspsync/billing.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"
#include "mspsync/syncro_store.h"
#include "mspsync/trace.h"
#include "mspsync/vcall.h"
#include "mspsync/vendor.h"

#define SERVICE "billing"
#define VENDOR (&msp_vendor_syncro) /* recurring invoices are Syncro's: the one vendor called */
#define LATE_MAX 1000

/*
 * KEYS: marks hash, seen hash, stats hash. ARGV: field, count, seen JSON, as_of_ms, 1 = count it
 * in the stats (0: a replay, whose reports were counted when they first came).
 * @returns 1 when the mark rose.
 */
static const char APPLY_LUA[] =
    "local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')\n"
    "local raised = 0\n"
    "if tonumber(ARGV[2]) > cur then\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); raised = 1\n"
    "end\n"
    "local old = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "if (not old) or tonumber(cjson.decode(old)['as_of_ms']) <= tonumber(ARGV[4]) then\n"
    "  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
    "end\n"
    "if ARGV[5] == '1' then\n"
    "  redis.call('HINCRBY', KEYS[3], 'reports_applied', 1)\n"
    "  if raised == 1 then redis.call('HINCRBY', KEYS[3], 'marks_raised', 1) end\n"
    "end\n"
    "return raised\n";

typedef enum { PH_READ = 0, PH_WRITE } phase_t;

typedef struct bl_item_s {
    msp_keyq_item_t kq; /* first: keyq hands it back */
    bl_t *bl;
    json_t *msg;        /* the message, NULL when unreadable */
    const char *tenant; /* borrowed from msg */
    int push;
    char epoch[33]; /* the state marker as state_wait read it, when a restore found state
                       ("": none): a report received under another marker is counted by the
                       replay of this epoch, not by the live path */

    /* a push */
    msp_billing_conf_t conf;
    msp_syncro_integration_t sy;
    json_t *plan;     /* msp_billing_plan */
    json_t *cids;     /* the plan's customer ids, sorted */
    size_t ci;        /* the current customer */
    json_t *scheds;   /* its schedules, every page (owned) */
    json_t *products; /* its products, sorted */
    size_t li;        /* the current product */
    int page;
    phase_t phase;
    json_t *pushed; /* billing:pushed of the tenant, read at LOAD: the pending markers */
    unsigned written, unchanged, failed, refused;
    char fail_reason[1000];

    msp_vcall_t vc;
    msp_dead_letter_t dl;
} bl_item_t;

static void push_load(void *arg);
static void cust_next(bl_item_t *it);
static void cust_read(void *arg);
static void line_step(void *arg);

/* ------------------------------------------------------------------ lifecycle */

static void item_destroy(msp_keyq_item_t *kit, void *opaque) {
    bl_item_t *it = (bl_item_t *)kit;
    (void)opaque;
    msp_vcall_clear(&it->vc);
    msp_syncro_integration_clear(&it->sy);
    msp_billing_conf_clear(&it->conf);
    json_decref(it->plan);
    json_decref(it->cids);
    json_decref(it->scheds);
    json_decref(it->products);
    json_decref(it->pushed);
    json_decref(it->msg);
    msp_dead_letter_clear(&it->dl);
    free(it);
}

static void apply_usage(void *arg);

static void item_start(msp_keyq_item_t *kit, void *opaque) {
    (void)opaque;
    bl_item_t *it = (bl_item_t *)kit;
    if (it->push)
        push_load(it);
    else
        apply_usage(it);
}

const msp_keyq_ops_t bl_keyq_ops = {item_start, item_destroy, NULL};

static void complete(bl_item_t *it) { msp_keyq_complete(it->bl->worker.kq, &it->kq); }

static void wait_then(bl_item_t *it, int64_t ms, msp_vcall_step_fn *fn) {
    msp_vcall_wait(&it->vc, ms, fn);
}

/* ------------------------------------------------------------------ dead letters */

static void dlq_send(void *arg) {
    bl_item_t *it = arg;
    if (msp_dead_letter_send(it->bl->worker.producer, &it->dl, it->kq.msg, SERVICE) != 0)
        wait_then(it, 1000, dlq_send);
}

static void dead_letter(bl_item_t *it, const char *reason) {
    MSP_WARN("billing.dead_lettered", it->tenant, "partition=%d offset=%" PRId64 " reason=%s",
             (int)it->kq.msg->partition, it->kq.msg->offset, reason);
    msp_dead_letter_set(&it->dl, it, it->tenant, reason);
    msp_metric_add(it->bl->metrics, "mspsync_billing_dead_lettered_total", NULL, 1);
    dlq_send(it);
}

void bl_delivery_report(bl_t *bl, const rd_kafka_message_t *m) {
    bl_item_t *it;
    (void)bl;
    int rc = msp_dead_letter_report(m, (void **)&it);
    if (rc > 0)
        complete(it);
    else if (rc < 0)
        wait_then(it, 1000, dlq_send);
    else if (m->err)
        MSP_WARN("billing.schedule_queue_failed", NULL,
                 "a scheduled push was not queued: %s "
                 "(the next check requests it again)",
                 rd_kafka_err2str(m->err));
}

/* ------------------------------------------------------------------ Redis helpers */

/* Read n pipelined replies of *c (freed and cleared when it broke); @returns 1 when all came and
 * none is an error. */
static int read_replies(redisContext **c, int n) {
    int ok = 1;
    for (int i = 0; i < n; i++) {
        void *p = NULL;
        if (redisGetReply(*c, &p) != REDIS_OK || !p) {
            ok = 0;
            break;
        }
        if (((redisReply *)p)->type == REDIS_REPLY_ERROR)
            ok = 0;
        freeReplyObject(p);
    }
    if (!ok && *c && (*c)->err) {
        redisFree(*c);
        *c = NULL;
    }
    return ok;
}

/* The tenant's billing config into *c. @returns 1 read, 0 a stored config that does not read
 * (err), -1 Redis. */
static int conf_load(redisContext *redis, const char *tenant, msp_billing_conf_t *c, char *err,
                     size_t err_size) {
    char key[200];
    msp_key(key, sizeof(key), tenant, "billing:config");
    redisReply *r = redisCommand(redis, "GET %s", key);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, err_size, "redis: %s", r ? r->str : redis->errstr);
        if (r)
            freeReplyObject(r);
        return -1;
    }
    json_t *doc =
        r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : json_object();
    freeReplyObject(r);
    int rc = msp_billing_conf_parse(doc, c, err, err_size);
    json_decref(doc);
    return rc == 0 ? 1 : 0;
}

/* ------------------------------------------------------------------ USAGE */

/*
 * What a report needs of its tenant's config (the zone and the grace days), cached for
 * ZONE_TTL_MS in a direct-mapped table: every report would otherwise read and parse the config,
 * a Redis round trip that halves the marks/s of a replica (docs/benchmarks.md). A changed zone
 * applies within the TTL. One table per thread: the event loop's, and the replay's
 * (usage_db_t).
 */
#define ZONE_SLOTS 256
#define ZONE_TTL_MS 1000

struct zone_slot_s {
    char tenant[64];
    char zone[128];
    int grace_days;
    int64_t at_ms;
};

static struct zone_slot_s zone_cache[ZONE_SLOTS]; /* the event loop's */

/* Where usage reports are applied: a Redis connection (freed and cleared when it breaks) and
 * the zone table of the thread that owns it. */
typedef struct {
    redisContext **redis;
    struct zone_slot_s *zones;
} usage_db_t;

/* c->time_zone (borrowed from the cache until the next call) and c->grace_days of tenant.
 * @returns 0, or -1 (Redis, err). */
static int zone_of(usage_db_t *db, const char *tenant, msp_billing_conf_t *c, char *err,
                   size_t err_size) {
    uint32_t h = 2166136261u;
    for (const char *p = tenant; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    struct zone_slot_s *z = &db->zones[h % ZONE_SLOTS];
    int64_t now = msp_wall_ms();
    if (strcmp(z->tenant, tenant) != 0 || now - z->at_ms > ZONE_TTL_MS || now < z->at_ms) {
        msp_billing_conf_t full;
        int rc = conf_load(*db->redis, tenant, &full, err, err_size);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            /* the stored config does not read: the defaults name the period, the report is kept */
            json_t *empty = json_object();
            msp_billing_conf_parse(empty, &full, err, err_size);
            json_decref(empty);
        }
        snprintf(z->tenant, sizeof(z->tenant), "%s", tenant);
        snprintf(z->zone, sizeof(z->zone), "%s", full.time_zone);
        z->grace_days = full.grace_days;
        z->at_ms = now;
        msp_billing_conf_clear(&full);
    }
    c->time_zone = z->zone;
    c->grace_days = z->grace_days;
    return 0;
}

/* Whether usage report m was received under state marker epoch (its "epoch"; a report from
 * before the gateway stamped it was received before any loss of this version). */
static int received_under(json_t *m, const char *epoch) {
    const char *e = json_string_value(json_object_get(m, "epoch"));
    return e && epoch && !strcmp(e, epoch);
}

/*
 * Apply one usage report m of tenant: a late one is kept in billing:late, any other raises its
 * period's mark (APPLY_LUA). Order-free (max, latest by as_of), so the live path and a replay of
 * usage.events (marks_rebuild) share it. replay: not counted in billing:stats (the replay, which
 * recounts in one MULTI at its end, or a live report received before the latest loss, which that
 * recount covers). *late says which; *raised (may be NULL) whether the mark rose. @returns 1
 * applied, 0 the report does not name a period (err: dead-letter it), -1 Redis (err; try again).
 */
static int usage_apply(usage_db_t *db, const char *tenant, json_t *m, int replay, int *late,
                       int *raised, char *err, size_t err_size) {
    const char *org = json_string_value(json_object_get(m, "org_id"));
    const char *product = json_string_value(json_object_get(m, "product"));
    json_int_t count = json_integer_value(json_object_get(m, "count"));
    int64_t as_of = json_integer_value(json_object_get(m, "as_of_ms"));
    int64_t received = json_integer_value(json_object_get(m, "received_at_ms"));
    char period[8], kmarks[300], kseen[200], kstats[200], klate[200];
    msp_billing_conf_t c = {0};
    if (zone_of(db, tenant, &c, err, err_size) != 0)
        return -1;
    *late = msp_billing_late(&c, as_of, received, err, err_size);
    int prc = msp_billing_period(c.time_zone, as_of, period, err, err_size);
    if (*late < 0 || prc != 0)
        return 0;
    msp_key(kstats, sizeof(kstats), tenant, "billing:stats");
    json_t *seen = json_pack("{s:s,s:O,s:s,s:I,s:O,s:I,s:s,s:O}", "org_id", org, "org_name",
                             json_object_get(m, "org_name"), "product", product, "count", count,
                             "as_of", json_object_get(m, "as_of"), "as_of_ms", (json_int_t)as_of,
                             "period", period, "report_id", json_object_get(m, "report_id"));
    char *seen_text = seen ? json_dumps(seen, JSON_COMPACT) : NULL;
    json_decref(seen);
    char *field = msp_billing_field(org, product);
    if (!seen_text || !field) {
        free(seen_text);
        free(field);
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    int ok;
    if (*late) {
        /* kept and shown, never applied: a closed period's invoice is history */
        msp_key(klate, sizeof(klate), tenant, "billing:late");
        redisAppendCommand(*db->redis, "LPUSH %s %s", klate, seen_text);
        redisAppendCommand(*db->redis, "LTRIM %s 0 %d", klate, LATE_MAX - 1);
        if (!replay)
            redisAppendCommand(*db->redis, "HINCRBY %s late_reports 1", kstats);
        ok = read_replies(db->redis, replay ? 2 : 3);
        if (ok)
            MSP_INFO("billing.late_report", tenant,
                     "org=%s product=%s period=%s count=%lld "
                     "kept, not applied (its period closed)",
                     org, product, period, (long long)count);
    } else {
        msp_key(kmarks, sizeof(kmarks), tenant, "billing:marks:%s", period);
        msp_key(kseen, sizeof(kseen), tenant, "billing:seen");
        char cnt[32], asof[32];
        snprintf(cnt, sizeof(cnt), "%lld", (long long)count);
        snprintf(asof, sizeof(asof), "%lld", (long long)as_of);
        redisReply *x =
            redisCommand(*db->redis, "EVAL %s 3 %s %s %s %s %s %s %s %s", APPLY_LUA, kmarks, kseen,
                         kstats, field, cnt, seen_text, asof, replay ? "0" : "1");
        ok = x && x->type == REDIS_REPLY_INTEGER;
        if (ok && raised)
            *raised = x->integer == 1;
        if (x) {
            freeReplyObject(x);
        } else if (*db->redis && (*db->redis)->err) { /* unusable: connect again */
            redisFree(*db->redis);
            *db->redis = NULL;
        }
    }
    free(seen_text);
    free(field);
    if (!ok) {
        snprintf(err, err_size, "applying a usage report failed");
        return -1;
    }
    return 1;
}

/* ------------------------------------------------------------------ after a loss of Redis */

/*
 * The marks, the latest reports and the late list are derived from usage.events (kept 400
 * days): when Redis lost its state, every item waits until the gateway restored the
 * configuration (the epoch marker is back: the tenants' zones, grace days and mappings are
 * there again), and, when that restore found state (state:restored names the epoch; a first
 * start on an empty deployment replays nothing), a push waits until the marks of that epoch are
 * rebuilt. One replica — the one whose lease mspsync:{_}:billing:rebuild_lock it takes — reads
 * usage.events from its start to its end and applies every usage report with usage_apply (max
 * and latest-by-as_of are order-free: reports applied meanwhile by the live path, or twice,
 * change nothing), then adds the counters of the reports received before the loss (those whose
 * "epoch", the marker the gateway served under, is not this epoch; the live path counts the
 * others) and sets mspsync:{_}:state:billing to the epoch, in one MULTI. Push requests in the
 * topic are not replayed (their writes are in Syncro already; the next push reads Syncro before
 * it writes).
 *
 * The replay reads a whole topic (a large backlog takes minutes), so it runs on a thread of its
 * own (msp_task_t) with its own Redis connection and zone table: the event loop goes on serving
 * /healthz, /metrics, the schedule and the usage reports meanwhile, and each waiting push asks
 * again every second. The thread renews its lease between polls; a stop abandons the replay
 * (the next start's replica does it again).
 */
#define MARKS_MARK_SUFFIX "state:billing"
#define MARKS_LOCK_SUFFIX "billing:rebuild_lock"
#define MARKS_LOCK_MS 10000 /* a lease the replaying replica renews (msp_lease_t) */
#define REPLAY_TIMEOUT_MS 240000

static int parse_message(bl_item_t *it, char *why, size_t why_size);

/* One replay: set up by the loop, worked by the thread, read by the loop after the join. */
struct bl_replay_s {
    const char *brokers;   /* borrowed from bl->conf */
    const char *redis_url; /* borrowed from bl->conf */
    const char *topic;     /* usage.events' full name, resolved by the loop (msp_topic) */
    char epoch[64];
    redisContext *redis; /* the thread's */
    struct zone_slot_s zones[ZONE_SLOTS];
    msp_lease_t lease; /* billing:rebuild_lock, renewed while replaying */
    atomic_int stop;   /* set by the loop when the service stops */
    long long applied;
    char err[400];
    json_t *counts; /* tenant -> {reports_applied, marks_raised, late_reports} */
};

/* Add one to the tenant's recounted counter name. */
static void recount(struct bl_replay_s *r, const char *tenant, const char *name) {
    json_t *c = json_object_get(r->counts, tenant);
    if (!c) {
        c = json_object();
        json_object_set_new(r->counts, tenant, c);
    }
    json_object_set_new(c, name, json_integer(json_integer_value(json_object_get(c, name)) + 1));
}

static int replay_one(const char *key, size_t key_len, const char *value, size_t value_len,
                      void *opaque) {
    (void)key;
    (void)key_len;
    struct bl_replay_s *r = opaque;
    bl_item_t one = {0};
    char why[300];
    one.msg = value ? json_loadb(value, value_len, 0, NULL) : NULL;
    int rc = 0;
    if (json_is_object(one.msg) && parse_message(&one, why, sizeof(why)) == 0 && !one.push) {
        int late = 0, raised = 0;
        usage_db_t db = {&r->redis, r->zones};
        int a = r->redis ? usage_apply(&db, one.tenant, one.msg, 1, &late, &raised, r->err,
                                       sizeof(r->err))
                         : -1;
        if (a < 0)
            rc = -1; /* Redis: the whole replay is tried again */
        else
            r->applied += a;
        /* the counters of the reports received before the loss (those since are counted) */
        if (a == 1 && !received_under(one.msg, r->epoch)) {
            recount(r, one.tenant, late ? "late_reports" : "reports_applied");
            if (!late && raised)
                recount(r, one.tenant, "marks_raised");
        }
    }
    json_decref(one.msg);
    return rc;
}

static int replay_going(void *opaque) {
    struct bl_replay_s *r = opaque;
    r->lease.c = r->redis; /* NULL once it broke: the lease is then lost */
    return msp_lifecycle_running() && !atomic_load(&r->stop) && msp_lease_keep(&r->lease);
}

/* The thread: rebuild the marks for r->epoch when this replica takes the lease (logged). */
static void replay_main(void *arg) {
    struct bl_replay_s *r = arg;
    char lock[64], mark[64];
    msp_key(lock, sizeof(lock), "_", MARKS_LOCK_SUFFIX);
    msp_key(mark, sizeof(mark), "_", MARKS_MARK_SUFFIX);
    if (!msp_redis_ok(&r->redis, r->redis_url) ||
        msp_lease_take(&r->lease, r->redis, lock, MARKS_LOCK_MS) != 1)
        goto out; /* another replica replays (or Redis is away): asked again in a second */
    MSP_WARN("billing.rebuild", NULL,
             "the billing marks of epoch %s are not in Redis: "
             "replaying %s",
             r->epoch, r->topic);
    r->counts = json_object();
    long long n = r->counts
                      ? msp_kafka_read_to_end(r->brokers, r->topic, REPLAY_TIMEOUT_MS, replay_one,
                                              replay_going, r, r->err, sizeof(r->err))
                      : -1;
    int rc = -1;
    r->lease.c = r->redis;
    if (n >= 0 && r->redis && msp_lease_keep(&r->lease)) {
        /* the recounted counters and the mark in one MULTI: a replay that failed added nothing,
         * one that succeeded is not run again */
        int k = 0;
        const char *tenant;
        json_t *c;
        redisAppendCommand(r->redis, "MULTI"), k++;
        json_object_foreach(r->counts, tenant, c) {
            char ks[200];
            const char *f;
            json_t *v;
            msp_key(ks, sizeof(ks), tenant, "billing:stats");
            json_object_foreach(c, f, v) redisAppendCommand(r->redis, "HINCRBY %s %s %lld", ks, f,
                                                            (long long)json_integer_value(v)),
                k++;
        }
        redisAppendCommand(r->redis, "SET %s %s", mark, r->epoch), k++;
        redisAppendCommand(r->redis, "EXEC"), k++;
        rc = read_replies(&r->redis, k) ? 1 : -1;
    }
    json_decref(r->counts);
    r->counts = NULL;
    if (rc == 1)
        MSP_WARN("billing.rebuilt", NULL,
                 "billing marks rebuilt: %lld usage reports applied "
                 "from %lld records",
                 r->applied, n);
    else
        MSP_ERROR("billing.rebuild_failed", NULL, "%s; trying again",
                  r->err[0] ? r->err : "redis, or the lease lost");
    r->lease.c = r->redis;
    msp_lease_release(&r->lease);
out:
    if (r->redis)
        redisFree(r->redis);
    r->redis = NULL;
}

/* The loop's side: reap a replay that ended, and start one for epoch unless one runs. */
static void marks_rebuild(bl_t *bl, const char *epoch) {
    if (msp_task_reap(&bl->replay_task)) {
        free(bl->replay);
        bl->replay = NULL;
    }
    if (msp_task_busy(&bl->replay_task))
        return;
    struct bl_replay_s *r = calloc(1, sizeof(*r));
    if (!r)
        return;
    r->brokers = bl->conf.svc.brokers;
    r->redis_url = bl->conf.svc.redis_url;
    r->topic = msp_topic(MSP_TOPIC_USAGE_EVENTS);
    snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
    if (msp_task_start(&bl->replay_task, replay_main, r) == 1)
        bl->replay = r;
    else {
        MSP_ERROR("billing.rebuild_failed", NULL, "no thread for the replay; trying again");
        free(r);
    }
}

void bl_replay_stop(bl_t *bl) {
    if (bl->replay)
        atomic_store(&bl->replay->stop, 1);
    msp_task_join(&bl->replay_task);
    free(bl->replay);
    bl->replay = NULL;
}

/*
 * Whether item it must wait for the state (then fn runs again in a second): Redis down, Redis
 * lost its state (the restore is pending), or — need_marks, a push — the marks of this epoch
 * not rebuilt yet (a replay is started when none runs). @returns 1 waiting, 0 go on.
 */
static int state_wait(bl_item_t *it, int need_marks, msp_vcall_step_fn *fn) {
    bl_t *bl = it->bl;
    char ke[64], km[64], kr[64];
    msp_key(ke, sizeof(ke), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(km, sizeof(km), "_", MARKS_MARK_SUFFIX);
    msp_key(kr, sizeof(kr), "_", MSP_STATE_RESTORED_SUFFIX);
    redisReply *r = bl_redis_ok(bl) ? redisCommand(bl->redis, "MGET %s %s %s", ke, km, kr) : NULL;
    int wait = 1;
    char epoch[64] = "";
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(epoch, sizeof(epoch), "%s", r->element[0]->str);
        int restored =
            r->element[2]->type == REDIS_REPLY_STRING && strcmp(r->element[2]->str, epoch) == 0;
        snprintf(it->epoch, sizeof(it->epoch), "%s", restored ? epoch : "");
        /* a replay is due after a restore that found state, once per epoch */
        int due =
            r->element[2]->type == REDIS_REPLY_STRING && strcmp(r->element[2]->str, epoch) == 0 &&
            !(r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, epoch) == 0);
        wait = need_marks && due;
    }
    if (r)
        freeReplyObject(r);
    if (wait && epoch[0])
        marks_rebuild(bl, epoch);
    if (wait)
        wait_then(it, 1000, fn);
    return wait;
}

static void apply_usage(void *arg) {
    bl_item_t *it = arg;
    bl_t *bl = it->bl;
    char err[400];
    if (state_wait(it, 0, apply_usage))
        return;
    int late = 0;
    usage_db_t db = {&bl->redis, zone_cache};
    /* after a restore that found state, counted live only when received under its marker: one
     * received before the loss (a redelivery after a crash) is counted by the replay's recount */
    int counted_by_replay = it->epoch[0] && !received_under(it->msg, it->epoch);
    int rc =
        usage_apply(&db, it->tenant, it->msg, counted_by_replay, &late, NULL, err, sizeof(err));
    if (rc == 0) {
        dead_letter(it, err);
        return;
    }
    if (rc < 0) {
        MSP_WARN("redis.apply_failed", it->tenant, "%s; retrying", err);
        wait_then(it, 1000, apply_usage);
        return;
    }
    msp_metric_add(bl->metrics, "mspsync_billing_reports_total",
                   late ? "outcome=\"late\"" : "outcome=\"applied\"", 1);
    complete(it);
}

/* ------------------------------------------------------------------ PUSH: records */

/* The field of the current line in billing:pushed: "<customer>\t<product>". */
static void pushed_field(const bl_item_t *it, char *buf, size_t size) {
    snprintf(buf, size, "%s\t%s", json_string_value(json_array_get(it->cids, it->ci)),
             json_string_value(json_array_get(it->products, it->li)));
}

static json_t *cur_plan_line(const bl_item_t *it) {
    json_t *cu = json_object_get(json_object_get(it->plan, "customers"),
                                 json_string_value(json_array_get(it->cids, it->ci)));
    return json_object_get(json_object_get(cu, "lines"),
                           json_string_value(json_array_get(it->products, it->li)));
}

/*
 * Record the current line's state (one MULTI: billing:pushed, and the history entry when
 * history is set). line may be NULL (no line). @returns 1, or 0 when Redis failed.
 */
static int record(bl_item_t *it, const char *state, json_t *line, json_int_t qty, const char *error,
                  json_int_t pending, json_t *history) {
    bl_t *bl = it->bl;
    if (!bl_redis_ok(bl))
        return 0;
    char kp[200], f[400], now[32];
    msp_key(kp, sizeof(kp), it->tenant, "billing:pushed");
    pushed_field(it, f, sizeof(f));
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    json_t *st = json_pack("{s:s,s:O,s:O,s:s,s:O,s:s}", "state", state, "line_name",
                           json_object_get(cur_plan_line(it), "line_name"), "period",
                           json_object_get(it->plan, "period"), "at", now, "push_id",
                           json_object_get(it->msg, "push_id"), "customer_id",
                           json_string_value(json_array_get(it->cids, it->ci)));
    if (line) {
        json_object_set(st, "schedule_id", json_object_get(line, "schedule_id"));
        json_object_set(st, "line_id", json_object_get(line, "id"));
    }
    json_object_set_new(st, "quantity", qty >= 0 ? json_integer(qty) : json_null());
    json_object_set_new(st, "error", error ? json_string(error) : json_null());
    if (pending >= 0) {
        json_object_set_new(st, "pending", json_integer(pending));
        json_t *from = line ? json_object_get(line, "quantity") : NULL;
        json_object_set(st, "from", from ? from : json_null());
    }
    /* the last time we wrote it survives the states that follow */
    json_t *prev = json_object_get(json_object_get(it->pushed, f), "last_written_at");
    if (history)
        json_object_set_new(st, "last_written_at", json_string(now));
    else if (prev)
        json_object_set(st, "last_written_at", prev);
    char *text = json_dumps(st, JSON_COMPACT);
    int n = 0;
    char kh[300], *h = NULL;
    redisAppendCommand(bl->redis, "MULTI"), n++;
    redisAppendCommand(bl->redis, "HSET %s %s %s", kp, f, text), n++;
    if (history && line) {
        msp_key(kh, sizeof(kh), it->tenant,
                "billing:history:%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT,
                json_integer_value(json_object_get(line, "schedule_id")),
                json_integer_value(json_object_get(line, "id")));
        json_object_set_new(history, "at", json_string(now));
        h = json_dumps(history, JSON_COMPACT);
        redisAppendCommand(bl->redis, "LPUSH %s %s", kh, h), n++;
        redisAppendCommand(bl->redis, "LTRIM %s 0 %lld", kh, bl->conf.history_max - 1), n++;
    }
    redisAppendCommand(bl->redis, "EXEC"), n++;
    free(text);
    int ok = read_replies(&bl->redis, n);
    /* keep our view of the hash in step (the pending marker is read from it) */
    if (ok)
        json_object_set(it->pushed, f, st);
    if (ok && h) /* journaled once written (trace.h): a retried write journals its own */
        msp_trace_journal(kh, h, bl->conf.history_max);
    free(h);
    json_decref(st);
    return ok;
}

/* ------------------------------------------------------------------ PUSH: calls */

static void call(bl_item_t *it, const char *method, char *path, json_t *body,
                 msp_vcall_body_t expect, msp_vcall_ok_fn *on_ok, msp_vcall_step_fn *retry_from) {
    msp_vcall_step_t step = {.ok = on_ok, .expect = expect, .retry_from = retry_from};
    msp_vcall_call(&it->vc, method, path, body, &step);
}

static void on_retrying(void *arg, unsigned attempt, int64_t delay_ms, const char *why) {
    bl_item_t *it = arg;
    MSP_WARN("billing.retry", it->tenant, "customer=%s attempt=%u retry_in_ms=%lld: %s",
             json_string_value(json_array_get(it->cids, it->ci)), attempt, (long long)delay_ms,
             why);
}

static void on_answered(void *arg, msp_http_outcome_t o) {
    bl_item_t *it = arg;
    char labels[96];
    snprintf(labels, sizeof(labels), "outcome=\"%s\"", msp_http_outcome_name(o));
    msp_metric_add(it->bl->metrics, "mspsync_billing_requests_total", labels, 1);
}

static void note_failure(bl_item_t *it, const char *why) {
    it->failed++;
    if (!it->fail_reason[0])
        snprintf(it->fail_reason, sizeof(it->fail_reason), "billing push to customer %s: %s",
                 json_string_value(json_array_get(it->cids, it->ci)), why);
}

/* A final 4xx (or a refused key): a failed write fails its line, a failed read the customer. */
static void call_failed(void *arg, msp_vcall_failure_t kind, const char *why) {
    bl_item_t *it = arg;
    (void)kind;
    MSP_WARN("billing.failed", it->tenant, "customer=%s: %s",
             json_string_value(json_array_get(it->cids, it->ci)), why);
    if (it->phase == PH_WRITE) {
        note_failure(it, why);
        if (!record(it, "failed", NULL, -1, why, -1, NULL)) {
            wait_then(it, 1000, cust_read);
            return;
        }
        it->li++;
        line_step(it);
        return;
    }
    for (it->li = 0; it->li < json_array_size(it->products); it->li++) {
        note_failure(it, why);
        if (!record(it, "failed", NULL, -1, why, -1, NULL)) {
            wait_then(it, 1000, cust_read);
            return;
        }
    }
    it->ci++;
    cust_next(it);
}

static const msp_vcall_ops_t vcall_ops = {
    .fail = call_failed,
    .retrying = on_retrying,
    .answered = on_answered,
};

void bl_vcall_env(bl_t *bl) {
    bl->vcall = (msp_vcall_env_t){.base = bl->base,
                                  .http = &bl->http,
                                  .redis = &bl->redis,
                                  .redis_url = bl->conf.svc.redis_url,
                                  .backoff_base_ms = bl->conf.backoff_base_ms,
                                  .backoff_cap_ms = bl->conf.backoff_cap_ms,
                                  .stopping = &bl->stopping,
                                  .kq = bl->worker.kq,
                                  .metrics = bl->metrics,
                                  .metric_retries = "mspsync_billing_retries_total",
                                  .metric_throttled = "mspsync_billing_ratelimit_waits_total"};
}

/* ------------------------------------------------------------------ PUSH: LINE */

/* The line of the current product among the customer's schedules (borrowed), or NULL. */
static json_t *find_line(bl_item_t *it, const char *name) {
    size_t i, j;
    json_t *sc, *l;
    json_array_foreach(it->scheds, i, sc) {
        json_array_foreach(json_object_get(sc, "lines"), j, l) {
            const char *n = json_string_value(json_object_get(l, "name"));
            if (n && !strcasecmp(n, name)) {
                if (!json_object_get(l, "schedule_id"))
                    json_object_set(l, "schedule_id", json_object_get(sc, "id"));
                return l;
            }
        }
    }
    return NULL;
}

static void write_ok(void *arg, msp_http_response_t *res, json_t *body) {
    bl_item_t *it = arg;
    (void)res;
    json_t *want = cur_plan_line(it);
    json_int_t qty = json_integer_value(json_object_get(want, "quantity"));
    char q[32];
    snprintf(q, sizeof(q), "%lld.0", (long long)qty);
    json_t *l = find_line(it, json_string_value(json_object_get(want, "line_name")));
    if (l) {
        json_object_set_new(l, "quantity", json_string(q));
    } else {
        /* a created line: the answer's schedule_line_item, into the first schedule */
        json_t *created = json_object_get(body, "schedule_line_item");
        json_t *nl = json_is_object(created) ? json_deep_copy(created) : json_object();
        json_object_set_new(nl, "name", json_copy(json_object_get(want, "line_name")));
        json_object_set_new(nl, "quantity", json_string(q));
        json_object_set(nl, "schedule_id", json_object_get(json_array_get(it->scheds, 0), "id"));
        json_array_append_new(json_object_get(json_array_get(it->scheds, 0), "lines"), nl);
    }
    line_step(it); /* finds it equal now, with our pending marker: records "written" */
}

static void line_step(void *arg) {
    bl_item_t *it = arg;
    it->phase = PH_READ;
    for (; it->li < json_array_size(it->products); it->li++) {
        json_t *want = cur_plan_line(it);
        const char *lname = json_string_value(json_object_get(want, "line_name"));
        json_int_t qty = json_integer_value(json_object_get(want, "quantity"));
        char f[400], why[600];
        pushed_field(it, f, sizeof(f));
        json_t *prev = json_object_get(it->pushed, f);
        json_t *pend = json_object_get(prev, "pending");
        json_t *l = find_line(it, lname);
        if (!l && !json_is_true(json_object_get(want, "create"))) {
            snprintf(why, sizeof(why),
                     "no line named \"%s\" on the customer's recurring "
                     "invoices (map another line, or set \"create\": true)",
                     lname);
            if (!record(it, "no_line", NULL, -1, why, -1, NULL))
                goto redis_down;
            continue;
        }
        if (l && !json_is_null(json_object_get(l, "recurring_type_id")) &&
            json_object_get(l, "recurring_type_id")) {
            snprintf(why, sizeof(why),
                     "line \"%s\" (id %" JSON_INTEGER_FORMAT ") is a counted "
                     "line (recurring_type_id %" JSON_INTEGER_FORMAT "): Syncro computes its "
                     "quantity and ignores ours; map the product to a fixed-quantity line",
                     lname, json_integer_value(json_object_get(l, "id")),
                     json_integer_value(json_object_get(l, "recurring_type_id")));
            it->refused++;
            if (!record(it, "refused", l, -1, why, -1, NULL))
                goto redis_down;
            continue;
        }
        double have = -1;
        if (l && msp_billing_qty(json_object_get(l, "quantity"), &have) == 0 &&
            fabs(have - (double)qty) < 1e-9) {
            int ours = json_is_integer(pend) && json_integer_value(pend) == qty;
            /* written by this very push before a crash: still "written", its history is in */
            const char *pst = json_string_value(json_object_get(prev, "state"));
            int again =
                !ours && pst && !strcmp(pst, "written") &&
                json_equal(json_object_get(prev, "push_id"), json_object_get(it->msg, "push_id")) &&
                json_integer_value(json_object_get(prev, "quantity")) == qty;
            json_t *hist = NULL;
            if (ours) {
                json_t *from = json_object_get(prev, "from");
                hist = json_pack("{s:O,s:I,s:O,s:O}", "from", from ? from : json_null(), "to", qty,
                                 "period", json_object_get(it->plan, "period"), "push_id",
                                 json_object_get(it->msg, "push_id"));
            }
            int ok = record(it, ours || again ? "written" : "unchanged", l, qty, NULL, -1, hist);
            json_decref(hist);
            if (!ok)
                goto redis_down;
            if (ours || again)
                it->written++;
            else
                it->unchanged++;
            if (ours)
                MSP_INFO("billing.written", it->tenant, "customer=%s line=%s quantity=%lld",
                         json_string_value(json_array_get(it->cids, it->ci)), lname,
                         (long long)qty);
            continue;
        }
        /* differs (or missing and to be created): mark it pending, then write */
        if (!l && !json_array_size(it->scheds)) {
            snprintf(why, sizeof(why),
                     "the customer has no recurring invoice to add line \"%s\" "
                     "to",
                     lname);
            if (!record(it, "no_line", NULL, -1, why, -1, NULL))
                goto redis_down;
            continue;
        }
        if (!record(it, "pending", l, -1, NULL, qty, NULL))
            goto redis_down;
        char path[200];
        it->phase = PH_WRITE;
        msp_vcall_reset(&it->vc);
        if (l) {
            snprintf(path, sizeof(path),
                     "/schedules/%" JSON_INTEGER_FORMAT "/line_items/%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(l, "schedule_id")),
                     json_integer_value(json_object_get(l, "id")));
            call(it, "PUT", strdup(path), json_pack("{s:I}", "quantity", qty), MSP_VCALL_BODY_ANY,
                 write_ok, cust_read);
        } else {
            snprintf(path, sizeof(path), "/schedules/%" JSON_INTEGER_FORMAT "/add_line_item",
                     json_integer_value(json_object_get(json_array_get(it->scheds, 0), "id")));
            call(it, "POST", strdup(path),
                 json_pack("{s:s,s:I,s:I,s:b}", "name", lname, "quantity", qty, "retail_cents",
                           json_integer_value(json_object_get(want, "retail_cents")), "taxable", 0),
                 MSP_VCALL_BODY_OBJECT, write_ok, cust_read);
        }
        return;
    }
    it->ci++;
    cust_next(it);
    return;
redis_down:
    MSP_WARN("redis.record_failed", it->tenant, "recording a line failed; reading again");
    wait_then(it, 1000, cust_read);
}

/* ------------------------------------------------------------------ PUSH: READ */

/*
 * Remember the names of the lines read (`billing:lines`: name → whether Syncro counts it), so the
 * gateway can refuse mapping a product to a counted line when the config is saved and suggest
 * lines for unmapped products. Best effort: a failure costs a suggestion, not a push.
 */
static void note_lines(bl_item_t *it, json_t *sc) {
    bl_t *bl = it->bl;
    size_t j;
    json_t *l;
    char key[200];
    msp_key(key, sizeof(key), it->tenant, "billing:lines");
    json_array_foreach(json_object_get(sc, "lines"), j, l) {
        const char *name = json_string_value(json_object_get(l, "name"));
        json_t *rt = json_object_get(l, "recurring_type_id");
        if (!name || !name[0] || !bl_redis_ok(bl))
            continue;
        json_t *v = json_pack("{s:b,s:O}", "counted", json_is_integer(rt), "recurring_type_id",
                              json_is_integer(rt) ? rt : json_null());
        char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
        json_decref(v);
        if (text)
            redisAppendCommand(bl->redis, "HSET %s %s %s", key, name, text);
        free(text);
        if (text && !read_replies(&bl->redis, 1))
            return;
    }
}

static void cust_read_ok(void *arg, msp_http_response_t *res, json_t *b) {
    bl_item_t *it = arg;
    (void)res;
    json_t *list = json_object_get(b, "schedules");
    size_t i;
    json_t *sc;
    json_array_foreach(list, i, sc) {
        if (!json_is_array(json_object_get(sc, "lines")))
            json_object_set_new(sc, "lines", json_array());
        json_array_append(it->scheds, sc);
        note_lines(it, sc);
    }
    json_int_t pages =
        json_integer_value(json_object_get(json_object_get(b, "meta"), "total_pages"));
    if (it->page < pages && it->page < 100) {
        it->page++;
        char path[200];
        snprintf(path, sizeof(path), "/schedules?customer_id=%s&page=%d",
                 json_string_value(json_array_get(it->cids, it->ci)), it->page);
        call(it, "GET", strdup(path), NULL, MSP_VCALL_BODY_OBJECT, cust_read_ok, cust_read);
        return;
    }
    it->li = 0;
    line_step(it);
}

/* GET the current customer's schedules from page 1 (also where every retry starts). */
static void cust_read(void *arg) {
    bl_item_t *it = arg;
    json_decref(it->scheds);
    it->scheds = json_array();
    it->page = 1;
    it->phase = PH_READ;
    char path[200];
    snprintf(path, sizeof(path), "/schedules?customer_id=%s",
             json_string_value(json_array_get(it->cids, it->ci)));
    call(it, "GET", strdup(path), NULL, MSP_VCALL_BODY_OBJECT, cust_read_ok, NULL);
}

static int cmp_json_str(const void *a, const void *b) {
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* A sorted array of the object's keys (new). */
static json_t *sorted_keys(json_t *obj) {
    size_t n = json_object_size(obj), i = 0;
    json_t **v = calloc(n ? n : 1, sizeof(*v));
    const char *k;
    json_t *x;
    json_object_foreach(obj, k, x) v[i++] = json_string(k);
    qsort(v, n, sizeof(*v), cmp_json_str);
    json_t *a = json_array();
    for (i = 0; i < n; i++)
        json_array_append_new(a, v[i]);
    free(v);
    return a;
}

static void push_finish(void *arg) {
    bl_item_t *it = arg;
    bl_t *bl = it->bl;
    if (!bl_redis_ok(bl)) {
        wait_then(it, 1000, push_finish);
        return;
    }
    char kp[200], now[32];
    msp_key(kp, sizeof(kp), it->tenant, "billing:push");
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    redisAppendCommand(
        bl->redis,
        "HSET %s push_id %s state %s finished_at %s period %s written "
        "%u unchanged %u failed %u refused %u reason %s",
        kp, json_string_value(json_object_get(it->msg, "push_id")), it->failed ? "failed" : "done",
        now, json_string_value(json_object_get(it->plan, "period")), it->written, it->unchanged,
        it->failed, it->refused, json_string_value(json_object_get(it->msg, "reason")));
    if (!read_replies(&bl->redis, 1)) {
        wait_then(it, 1000, push_finish);
        return;
    }
    MSP_INFO("billing.pushed", it->tenant,
             "push=%s period=%s written=%u unchanged=%u failed=%u "
             "refused=%u",
             json_string_value(json_object_get(it->msg, "push_id")),
             json_string_value(json_object_get(it->plan, "period")), it->written, it->unchanged,
             it->failed, it->refused);
    msp_metric_add(bl->metrics, "mspsync_billing_pushes_total",
                   it->failed ? "outcome=\"failed\"" : "outcome=\"done\"", 1);
    if (it->failed)
        dead_letter(it, it->fail_reason);
    else
        complete(it);
}

static void cust_next(bl_item_t *it) {
    if (it->ci >= json_array_size(it->cids)) {
        push_finish(it);
        return;
    }
    json_t *cu = json_object_get(json_object_get(it->plan, "customers"),
                                 json_string_value(json_array_get(it->cids, it->ci)));
    json_decref(it->products);
    it->products = sorted_keys(json_object_get(cu, "lines"));
    msp_vcall_reset(&it->vc);
    cust_read(it);
}

/* ------------------------------------------------------------------ PUSH: LOAD */

static void push_load(void *arg) {
    bl_item_t *it = arg;
    bl_t *bl = it->bl;
    char err[600], period[8], kp[200];
    if (state_wait(it, 1, push_load))
        return;
    msp_billing_conf_clear(&it->conf);
    int rc = conf_load(bl->redis, it->tenant, &it->conf, err, sizeof(err));
    if (rc < 0) {
        wait_then(it, 1000, push_load);
        return;
    }
    if (rc == 0) {
        dead_letter(it, err);
        return;
    }
    if (!it->conf.enabled) {
        MSP_INFO("billing.push_skipped", it->tenant, "billing is not enabled");
        complete(it);
        return;
    }
    rc = msp_syncro_integration_load(bl->redis, &bl->key, it->tenant, &it->sy, err, sizeof(err));
    if (rc < 0) {
        wait_then(it, 1000, push_load);
        return;
    }
    if (rc > 0) {
        char reason[800];
        snprintf(reason, sizeof(reason), "billing push: %s",
                 rc == 1 ? "no Syncro integration for this tenant" : err);
        dead_letter(it, reason);
        return;
    }
    if (msp_billing_period(it->conf.time_zone, msp_billing_now_ms(), period, err, sizeof(err)) !=
        0) {
        dead_letter(it, err);
        return;
    }
    json_decref(it->plan);
    it->plan = msp_billing_plan(bl->redis, it->tenant, &it->conf, period, err, sizeof(err));
    msp_key(kp, sizeof(kp), it->tenant, "billing:pushed");
    redisReply *r = it->plan ? redisCommand(bl->redis, "HGETALL %s", kp) : NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        else if (bl->redis->err) {
            redisFree(bl->redis);
            bl->redis = NULL;
        }
        wait_then(it, 1000, push_load);
        return;
    }
    json_decref(it->pushed);
    it->pushed = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        json_t *v = json_loads(r->element[i + 1]->str, 0, NULL);
        if (v)
            json_object_set_new(it->pushed, r->element[i]->str, v);
    }
    freeReplyObject(r);
    json_decref(it->cids);
    it->cids = sorted_keys(json_object_get(it->plan, "customers"));
    it->ci = 0;
    it->written = it->unchanged = it->failed = it->refused = 0;
    it->fail_reason[0] = '\0';
    msp_vcall_account_t a = {
        .base_url = it->sy.base_url,
        .bucket_key = it->sy.bucket_key,
        .rate = msp_vendor_rate_per_s(&bl->conf.svc.rates, VENDOR),
        .burst = msp_vendor_rate_burst(&bl->conf.svc.rates, VENDOR),
        .auth_header = it->sy.auth_header,
        .vendor = VENDOR,
    };
    msp_vcall_account(&it->vc, &a);
    MSP_INFO("billing.push_started", it->tenant, "push=%s period=%s customers=%zu",
             json_string_value(json_object_get(it->msg, "push_id")), period,
             json_array_size(it->cids));
    cust_next(it);
}

/* ------------------------------------------------------------------ intake */

/* Check a message's shape. @returns 0, or -1 with why. */
static int parse_message(bl_item_t *it, char *why, size_t why_size) {
    json_t *m = it->msg;
    const char *kind = json_string_value(json_object_get(m, "kind"));
    it->tenant = json_string_value(json_object_get(m, "tenant"));
    if (!it->tenant || !it->tenant[0] || !kind) {
        snprintf(why, why_size, "no \"tenant\" or \"kind\"");
        return -1;
    }
    if (!strcmp(kind, "push")) {
        it->push = 1;
        if (!json_is_string(json_object_get(m, "push_id"))) {
            snprintf(why, why_size, "a push request without \"push_id\"");
            return -1;
        }
        return 0;
    }
    if (strcmp(kind, "usage") != 0) {
        snprintf(why, why_size, "unknown kind \"%.32s\"", kind);
        return -1;
    }
    if (!json_is_string(json_object_get(m, "org_id")) ||
        !json_is_string(json_object_get(m, "product")) ||
        !json_is_integer(json_object_get(m, "count")) ||
        json_integer_value(json_object_get(m, "count")) < 0 ||
        !json_is_integer(json_object_get(m, "as_of_ms")) ||
        !json_is_integer(json_object_get(m, "received_at_ms"))) {
        snprintf(why, why_size,
                 "a usage report needs org_id, product, count >= 0, as_of_ms and "
                 "received_at_ms");
        return -1;
    }
    return 0;
}

void bl_accept(bl_t *bl, rd_kafka_message_t *msg) {
    bl_item_t *it = calloc(1, sizeof(*it));
    if (!it) {
        MSP_ERROR("oom", NULL, "the message stays uncommitted");
        rd_kafka_message_destroy(msg);
        return;
    }
    it->bl = bl;
    msp_vcall_init(&it->vc, &bl->vcall, &vcall_ops, it, &it->kq);
    if (msp_keyq_accept(bl->worker.kq, &it->kq, msg) != 0) {
        MSP_WARN("kafka.redelivered", NULL, "partition=%d offset=%" PRId64 " already in flight",
                 (int)msg->partition, msg->offset);
        free(it);
        rd_kafka_message_destroy(msg);
        return;
    }
    char why[300];
    json_error_t jerr;
    it->msg = msg->len ? json_loadb(msg->payload, msg->len, 0, &jerr) : NULL;
    int bad = !json_is_object(it->msg);
    if (bad)
        snprintf(why, sizeof(why), "value is not a JSON object%s%s", it->msg ? "" : ": ",
                 it->msg ? "" : (msg->len ? jerr.text : "empty"));
    else
        bad = parse_message(it, why, sizeof(why)) != 0;
    if (bad) {
        char reason[400];
        snprintf(reason, sizeof(reason), "not a usage report or push request: %s", why);
        it->tenant = NULL;
        dead_letter(it, reason); /* not queued: no key to wait behind */
        return;
    }
    it->vc.tenant = it->tenant;
    char key[800];
    if (it->push)
        snprintf(key, sizeof(key), "%s/push", it->tenant);
    else
        snprintf(key, sizeof(key), "%s/%s/%s", it->tenant,
                 json_string_value(json_object_get(it->msg, "org_id")),
                 json_string_value(json_object_get(it->msg, "product")));
    msp_keyq_push(bl->worker.kq, &it->kq, key);
}
