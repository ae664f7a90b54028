/*
 * trace_rebuild.c — traces, asset histories and billing's history of writes after a loss of
 * Redis, rebuilt from their journal, the `traces` topic (trace.h).
 *
 * When is a rebuild due: after a restore that found configuration (mspsync:{_}:state:restored
 * names the current epoch: Redis held state and lost it; a first start rebuilds nothing), until
 * mspsync:{_}:state:traces names that epoch too. Until then the gateway answers the reads of
 * these lists 503 with Retry-After (gw_traces_pending), as inventory reads are answered while
 * the inventory is rebuilt: an empty or partial history would be a wrong answer.
 *
 * Who rebuilds: the history reader thread of the gateway (history.c) whose lease on
 * mspsync:{_}:traces:rebuild_lock wins (msp_lease_t, renewed while it reads); the other gateways
 * wait for the mark. It reads the topic from its start to the end offsets it found when it began
 * (msp_kafka_read_to_end_msg), gathers the records per Redis key, and merges every
 * TRACE_BATCH records into Redis with one script per key (MERGE_LUA, pipelined), then sets the
 * mark. A
 * lease lost, a Redis or Kafka error: the whole rebuild runs again (every merge is idempotent).
 *
 * The merge, per list, keeps what a live write would have kept and never loses what was written
 * since the loss (the services go on appending while the rebuild runs; Lua runs atomically
 * between their writes):
 *   - union of the list as it is now and the journal's entries, each distinct text once (the
 *     journal holds every entry Redis had, and those written since the loss once more);
 *   - ordered by when they happened: trace lists oldest first by `at_ms` (as the readers order
 *     them), billing's history newest first by `at`; ties keep the order each came in;
 *   - capped as the writers cap them: MSP_TRACE_MAX entries (billing: the record's x-keep, its
 *     MSPSYNC_BILLING_HISTORY_MAX), the newest kept;
 *   - a trace list expires MSP_TRACE_TTL_S after its newest entry, as the writers' EXPIRE does:
 *     one whose newest entry is older than that is not brought back.
 * A trace:incid set gets its members again, expiring MSP_TRACE_TTL_S after the newest record.
 *
 * The ticketing counters (ticketing:stats) are recounted from the same records: every counted
 * outcome of the ticket-creator is a trace step (STAT_STEPS), so the incident entries made before
 * the loss (at_ms before state:restored_at_ms; the ticket-creator waits for the restore, so what
 * it did since is in the live counters already) are counted once per (event id, step) and added
 * to the tenant's counters in the same MULTI that sets the mark: a rebuild that fails adds
 * nothing, one that succeeds is not run again. The counters thus hold what happened within the
 * journal's retention before the loss and everything since; last_ticket_at comes back when the
 * live path did not set a newer one.
 * Only keys of a tenant that exists are written (an offboarded tenant's journal stays out), and
 * only the key families of trace.h: a record naming any other key is skipped.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"
#include "mspsync/trace.h"

#define TRACES_MARK_SUFFIX "state:traces"
#define TRACES_LOCK_SUFFIX "traces:rebuild_lock"
#define TRACES_LOCK_MS 10000 /* a lease the rebuilding gateway renews */
#define TRACES_READ_TIMEOUT_MS 600000
#define TRACE_BATCH 5000 /* records gathered before they are merged into Redis */

/*
 * KEYS[1] the list. ARGV: order ("asc": oldest first by at_ms; "desc": newest first by at), keep,
 * ttl seconds (0: none), now (ms), then the journal's entries in journal order.
 * @returns the list's length after the merge (0: deleted, expired).
 */
static const char MERGE_LUA[] =
    "local cur = redis.call('LRANGE', KEYS[1], 0, -1)\n"
    "local asc, keep, ttl, now = ARGV[1] == 'asc', tonumber(ARGV[2]), tonumber(ARGV[3]), "
    "tonumber(ARGV[4])\n"
    "local seen, all = {}, {}\n"
    "local function sortkey(e)\n"
    "  local ok, o = pcall(cjson.decode, e)\n"
    "  if not ok or type(o) ~= 'table' then return asc and 0 or '' end\n"
    "  if asc then return tonumber(o.at_ms) or 0 end\n"
    "  return type(o.at) == 'string' and o.at or ''\n"
    "end\n"
    "local function add(e, class, i)\n"
    "  if seen[e] then return end\n"
    "  seen[e] = true\n"
    "  all[#all + 1] = {e = e, k = sortkey(e), c = class, i = i}\n"
    "end\n"
    "for i, e in ipairs(cur) do add(e, 0, i) end\n"
    "local before = #all\n"
    "for j = 5, #ARGV do add(ARGV[j], 1, j) end\n"
    "if #all == before and #cur == before then return #cur end\n"
    /* in list order: asc — by key, the journal's (older) before the list's on a tie; desc — by
     * key descending, the list's (newer) first, the journal's newest first */
    "table.sort(all, function(a, b)\n"
    "  if a.k ~= b.k then if asc then return a.k < b.k else return a.k > b.k end end\n"
    "  if a.c ~= b.c then if asc then return a.c > b.c else return a.c < b.c end end\n"
    "  if asc or a.c == 0 then return a.i < b.i end\n"
    "  return a.i > b.i\n"
    "end)\n"
    "local first, last = 1, #all\n"
    "if #all > keep then if asc then first = #all - keep + 1 else last = keep end end\n"
    "local expire = 0\n"
    "if ttl > 0 then\n"
    "  local newest = 0\n"
    "  for n = first, last do if type(all[n].k) == 'number' and all[n].k > newest then "
    "newest = all[n].k end end\n"
    "  expire = ttl - math.floor((now - newest) / 1000)\n"
    "  if expire <= 0 then redis.call('DEL', KEYS[1]) return 0 end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "local chunk = {}\n" /* RPUSH 1000 at a time: Lua's unpack limit */
    "for n = first, last do\n"
    "  chunk[#chunk + 1] = all[n].e\n"
    "  if #chunk == 1000 or n == last then\n"
    "    redis.call('RPUSH', KEYS[1], unpack(chunk))\n"
    "    chunk = {}\n"
    "  end\n"
    "end\n"
    "if expire > 0 then redis.call('EXPIRE', KEYS[1], expire) end\n"
    "return last - first + 1\n";

/* What one rebuild holds while it reads. */
typedef struct {
    redisContext **c;
    const char *url;
    msp_lease_t *lease;
    json_t *lists;   /* Redis key -> {"asc":bool,"keep":n,"ttl":s,"e":[texts]} */
    json_t *sets;    /* Redis key -> {"m":{member:true},"ts":newest record ms} */
    json_t *tenants; /* tenant -> true (exists) / false */
    size_t gathered;
    long long kept, skipped;
    int64_t cutoff;  /* state:restored_at_ms: entries before it are recounted */
    json_t *counts;  /* tenant -> {counter: n, "last_ticket_at": at} */
    json_t *counted; /* "<tenant>\t<fingerprint>\t<entry key>" -> true: each step once */
    char sha[48];    /* MERGE_LUA's, loaded when the rebuild begins */
    char err[300];
} rebuild_t;

/* The ticketing:stats counter of each counted trace step (ticket-creator/work.c). */
static const char *const STAT_STEPS[][3] = {
    {"ticket_created", "tickets_created", NULL},
    {"commented", "comments_added", NULL},
    {"resolved", "tickets_resolved", NULL},
    {"reopened", "tickets_reopened", NULL},
    {"resolve_skipped_touched", "resolve_skipped_touched", NULL},
    {"resolve_skipped_disabled", "resolve_skipped_disabled", NULL},
    {"skipped_severity", "skipped_severity", "skipped"},
    {"skipped_rule", "skipped_rule", "skipped"},
    {"skipped_disabled", "skipped_disabled", "skipped"},
    {"held", "held_total", NULL},
    {"released", "released", NULL},
    {"dead_lettered", "dead_lettered", NULL},
};

/* Count an incident entry made before the loss into rb->counts (once per event and step). */
static void count_step(rebuild_t *rb, const char *tenant, const char *fp, const char *text) {
    json_t *e = json_loads(text, 0, NULL);
    const char *step = json_string_value(json_object_get(e, "step"));
    json_int_t at_ms = json_integer_value(json_object_get(e, "at_ms"));
    char id[1200], seen[1800];
    size_t i = 0, n = sizeof(STAT_STEPS) / sizeof(STAT_STEPS[0]);
    while (step && i < n && strcmp(STAT_STEPS[i][0], step))
        i++;
    if (i == n || at_ms <= 0 || at_ms >= rb->cutoff ||
        msp_trace_entry_key(e, id, sizeof(id)) != 0 || !id[0]) {
        json_decref(e);
        return;
    }
    snprintf(seen, sizeof(seen), "%s\t%s\t%s", tenant, fp, id);
    if (json_object_get(rb->counted, seen)) {
        json_decref(e);
        return;
    }
    json_object_set_new(rb->counted, seen, json_true());
    json_t *c = json_object_get(rb->counts, tenant);
    if (!c) {
        c = json_object();
        json_object_set_new(rb->counts, tenant, c);
    }
    for (int k = 1; k <= 2 && STAT_STEPS[i][k]; k++)
        json_object_set_new(
            c, STAT_STEPS[i][k],
            json_integer(json_integer_value(json_object_get(c, STAT_STEPS[i][k])) + 1));
    const char *at = json_string_value(json_object_get(e, "at"));
    const char *last = json_string_value(json_object_get(c, "last_ticket_at"));
    if (i == 0 && at && (!last || strcmp(at, last) > 0))
        json_object_set_new(c, "last_ticket_at", json_string(at));
    json_decref(e);
}

/* 1 when the tenant has a tenant hash (cached for the rebuild), 0 not, -1 Redis error. */
static int tenant_known(rebuild_t *rb, const char *tenant) {
    json_t *v = json_object_get(rb->tenants, tenant);
    if (v)
        return json_is_true(v);
    char key[160];
    msp_key(key, sizeof(key), tenant, "tenant");
    redisReply *r = redisCommand(*rb->c, "EXISTS %s", key);
    int n = r && r->type == REDIS_REPLY_INTEGER ? r->integer > 0 : -1;
    if (r)
        freeReplyObject(r);
    if (n >= 0)
        json_object_set_new(rb->tenants, tenant, json_boolean(n));
    return n;
}

/* Merge what was gathered into Redis. @returns 0, -1 Redis error (rb->err). */
static int flush(rebuild_t *rb) {
    const char *key;
    json_t *v;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)msp_wall_ms());
    /* one EVALSHA per list, pipelined: the batch costs a round trip, not one per key */
    size_t sent = 0;
    json_object_foreach(rb->lists, key, v) {
        json_t *e = json_object_get(v, "e");
        size_t n = json_array_size(e), argc = 8 + n;
        const char **argv = calloc(argc, sizeof(*argv));
        size_t *lens = calloc(argc, sizeof(*lens));
        char keep[24], ttl[24];
        if (!argv || !lens) {
            free(argv);
            free(lens);
            snprintf(rb->err, sizeof(rb->err), "out of memory");
            break;
        }
        snprintf(keep, sizeof(keep), "%lld",
                 (long long)json_integer_value(json_object_get(v, "keep")));
        snprintf(ttl, sizeof(ttl), "%lld",
                 (long long)json_integer_value(json_object_get(v, "ttl")));
        argv[0] = "EVALSHA";
        argv[1] = rb->sha;
        argv[2] = "1";
        argv[3] = key;
        argv[4] = json_is_true(json_object_get(v, "asc")) ? "asc" : "desc";
        argv[5] = keep;
        argv[6] = ttl;
        argv[7] = now;
        for (size_t i = 0; i < n; i++)
            argv[8 + i] = json_string_value(json_array_get(e, i));
        for (size_t i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        int rc = redisAppendCommandArgv(*rb->c, (int)argc, argv, lens);
        free(argv);
        free(lens);
        if (rc != REDIS_OK) {
            snprintf(rb->err, sizeof(rb->err), "merging %s: out of memory", key);
            break;
        }
        sent++;
    }
    int ok = !rb->err[0];
    for (size_t i = 0; i < sent; i++) { /* every reply is read: the pipe stays in step */
        redisReply *r = NULL;
        if (redisGetReply(*rb->c, (void **)&r) != REDIS_OK || !r) {
            snprintf(rb->err, sizeof(rb->err), "merging: %s", (*rb->c)->errstr);
            return -1;
        }
        if (ok && r->type != REDIS_REPLY_INTEGER) {
            snprintf(rb->err, sizeof(rb->err), "merging: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
            ok = 0;
        }
        freeReplyObject(r);
    }
    if (!ok)
        return -1;
    json_object_foreach(rb->sets, key, v) {
        const char *m;
        json_t *x;
        json_object_foreach(json_object_get(v, "m"), m, x) {
            redisReply *r = redisCommand(*rb->c, "SADD %s %s", key, m);
            int ok = r && r->type == REDIS_REPLY_INTEGER;
            if (r)
                freeReplyObject(r);
            if (!ok) {
                snprintf(rb->err, sizeof(rb->err), "SADD %s failed", key);
                return -1;
            }
        }
        long long left =
            MSP_TRACE_TTL_S - (msp_wall_ms() - json_integer_value(json_object_get(v, "ts"))) / 1000;
        redisReply *r = left > 0 ? redisCommand(*rb->c, "EXPIRE %s %lld", key, left)
                                 : redisCommand(*rb->c, "DEL %s", key);
        if (r)
            freeReplyObject(r);
    }
    json_object_clear(rb->lists);
    json_object_clear(rb->sets);
    rb->gathered = 0;
    return 0;
}

/* One journal record: gathered under its Redis key (or skipped). @returns 0, -1 to stop. */
static int gather(const rd_kafka_message_t *m, void *opaque) {
    rebuild_t *rb = opaque;
    char tenant[64], suffix[512], key[600];
    const char *slash = m->key ? memchr(m->key, '/', m->key_len) : NULL;
    size_t tl = slash ? (size_t)(slash - (const char *)m->key) : 0;
    size_t sl = slash ? m->key_len - tl - 1 : 0;
    json_t *text = m->payload ? json_stringn(m->payload, m->len) : NULL; /* NULL: not UTF-8 */
    if (!slash || !tl || tl >= sizeof(tenant) || !sl || sl >= sizeof(suffix) || !text) {
        json_decref(text);
        rb->skipped++;
        return 0;
    }
    memcpy(tenant, m->key, tl);
    tenant[tl] = '\0';
    memcpy(suffix, slash + 1, sl);
    suffix[sl] = '\0';
    int set = !strncmp(suffix, "trace:incid:", 12);
    int billing = !strncmp(suffix, "billing:history:", 16);
    int list = !set && (billing || !strncmp(suffix, "trace:inc:", 10) ||
                        !strncmp(suffix, "trace:asset:", 12) || !strncmp(suffix, "trace:rej:", 10));
    if (!gw_valid_tenant_id(tenant) || (!set && !list) || strchr(suffix, ' ')) {
        json_decref(text);
        rb->skipped++;
        return 0;
    }
    int known = tenant_known(rb, tenant);
    if (known <= 0) {
        json_decref(text);
        if (known < 0)
            snprintf(rb->err, sizeof(rb->err), "Redis did not answer");
        else
            rb->skipped++;
        return known < 0 ? -1 : 0;
    }
    msp_key(key, sizeof(key), tenant, "%s", suffix);
    if (set) {
        json_t *s = json_object_get(rb->sets, key);
        if (!s) {
            s = json_pack("{s:{},s:I}", "m", "ts", (json_int_t)0);
            json_object_set_new(rb->sets, key, s);
        }
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        if (ts > json_integer_value(json_object_get(s, "ts")))
            json_object_set_new(s, "ts", json_integer(ts));
        json_object_set_new(json_object_get(s, "m"), json_string_value(text), json_true());
        json_decref(text);
    } else {
        json_t *l = json_object_get(rb->lists, key);
        if (!l) {
            long long keep = MSP_TRACE_MAX;
            rd_kafka_headers_t *hd = NULL;
            const void *hv = NULL;
            size_t hn = 0;
            if (rd_kafka_message_headers(m, &hd) == RD_KAFKA_RESP_ERR_NO_ERROR && hd &&
                rd_kafka_header_get_last(hd, MSP_TRACE_KEEP_HEADER, &hv, &hn) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR &&
                hv && hn && hn < 12) {
                char kb[16];
                memcpy(kb, hv, hn);
                kb[hn] = '\0';
                long long k = atoll(kb);
                if (k > 0 && k <= 100000)
                    keep = k;
            }
            l = json_pack("{s:b,s:I,s:I,s:[]}", "asc", !billing, "keep", (json_int_t)keep, "ttl",
                          (json_int_t)(billing ? 0 : MSP_TRACE_TTL_S), "e");
            json_object_set_new(rb->lists, key, l);
        }
        if (!strncmp(suffix, "trace:inc:", 10))
            count_step(rb, tenant, suffix + 10, json_string_value(text));
        json_array_append_new(json_object_get(l, "e"), text);
    }
    rb->kept++;
    if (++rb->gathered >= TRACE_BATCH)
        return flush(rb);
    return 0;
}

/* The recounted counters and the mark, in one MULTI (all or nothing). @returns 1, -1 failed. */
static int commit(rebuild_t *rb, const char *mark, const char *epoch) {
    redisContext *c = *rb->c;
    int n = 0;
    const char *tenant;
    json_t *counts;
    redisAppendCommand(c, "MULTI"), n++;
    json_object_foreach(rb->counts, tenant, counts) {
        char key[160];
        const char *f;
        json_t *v;
        msp_key(key, sizeof(key), tenant, "ticketing:stats");
        json_object_foreach(counts, f, v) {
            if (json_is_integer(v))
                redisAppendCommand(c, "HINCRBY %s %s %lld", key, f,
                                   (long long)json_integer_value(v)),
                    n++;
            else
                redisAppendCommand(c, "HSETNX %s %s %s", key, f, json_string_value(v)), n++;
        }
    }
    redisAppendCommand(c, "SET %s %s", mark, epoch), n++;
    redisAppendCommand(c, "EXEC"), n++;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            ok = 0;
            break;
        }
        if (i == n - 1 && r->type != REDIS_REPLY_ARRAY)
            ok = 0;
        freeReplyObject(r);
    }
    if (!ok)
        snprintf(rb->err, sizeof(rb->err), "writing the counters and the mark failed");
    return ok ? 1 : -1;
}

static int keep_going(void *opaque) {
    rebuild_t *rb = opaque;
    rb->lease->c = *rb->c;
    return msp_lifecycle_running() && msp_lease_keep(rb->lease);
}

/* The MGET of the epoch, the last restore and the mark (fmt args for gw_redis/redisCommand). */
#define DUE_KEYS(ke, kr, km)                                                                       \
    msp_key(ke, sizeof(ke), "_", MSP_STATE_EPOCH_SUFFIX);                                          \
    msp_key(kr, sizeof(kr), "_", MSP_STATE_RESTORED_SUFFIX);                                       \
    msp_key(km, sizeof(km), "_", TRACES_MARK_SUFFIX)

/* Whether the reply of that MGET says a rebuild is due (epoch gets the epoch); frees r.
 * @returns 1 due, 0 not, -1 no answer. */
static int due_of(redisReply *r, char *epoch, size_t epoch_size) {
    int due = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        const redisReply *e = r->element[0], *rs = r->element[1], *mk = r->element[2];
        due = e->type == REDIS_REPLY_STRING && rs->type == REDIS_REPLY_STRING &&
              !strcmp(e->str, rs->str) &&
              !(mk->type == REDIS_REPLY_STRING && !strcmp(mk->str, e->str));
        if (epoch && epoch_size)
            snprintf(epoch, epoch_size, "%s", e->type == REDIS_REPLY_STRING ? e->str : "");
    }
    if (r)
        freeReplyObject(r);
    return due;
}

int gw_traces_due(redisContext *c, char *epoch, size_t epoch_size) {
    char ke[64], kr[64], km[64];
    DUE_KEYS(ke, kr, km);
    return due_of(c ? redisCommand(c, "MGET %s %s %s", ke, kr, km) : NULL, epoch, epoch_size);
}

int gw_traces_rebuild(redisContext **c, const char *url, const char *brokers, const char *epoch) {
    char lock[64], mark[64];
    msp_key(lock, sizeof(lock), "_", TRACES_LOCK_SUFFIX);
    msp_key(mark, sizeof(mark), "_", TRACES_MARK_SUFFIX);
    if (!msp_redis_ok(c, url))
        return -1;
    msp_lease_t lease;
    int mine = msp_lease_take(&lease, *c, lock, TRACES_LOCK_MS);
    if (mine != 1)
        return mine;
    MSP_WARN("traces.rebuild", NULL,
             "the traces of epoch %s are not in Redis: rebuilding them from %s", epoch,
             msp_topic(MSP_TOPIC_TRACES));
    int64_t t0 = msp_now_ms(), cutoff = 0;
    char kat[64];
    msp_key(kat, sizeof(kat), "_", MSP_STATE_RESTORED_AT_SUFFIX);
    redisReply *x = redisCommand(*c, "GET %s", kat);
    if (x && x->type == REDIS_REPLY_STRING)
        cutoff = atoll(x->str); /* absent: nothing was restored, nothing is recounted */
    if (x)
        freeReplyObject(x);
    rebuild_t rb = {.c = c,
                    .url = url,
                    .lease = &lease,
                    .lists = json_object(),
                    .sets = json_object(),
                    .tenants = json_object(),
                    .cutoff = cutoff,
                    .counts = json_object(),
                    .counted = json_object()};
    x = redisCommand(*c, "SCRIPT LOAD %s", MERGE_LUA);
    if (x && x->type == REDIS_REPLY_STRING)
        snprintf(rb.sha, sizeof(rb.sha), "%s", x->str);
    else
        snprintf(rb.err, sizeof(rb.err), "loading the merge script failed");
    if (x)
        freeReplyObject(x);
    long long n = rb.sha[0] && rb.lists && rb.sets && rb.tenants && rb.counts && rb.counted
                      ? msp_kafka_read_to_end_msg(brokers, msp_topic(MSP_TOPIC_TRACES),
                                                  TRACES_READ_TIMEOUT_MS, gather, keep_going, &rb,
                                                  rb.err, sizeof(rb.err))
                      : -1;
    int rc = -1;
    if (n >= 0 && flush(&rb) == 0 && keep_going(&rb)) {
        /* the mark only if the epoch is still the one rebuilt for (no second loss meanwhile) */
        char now_epoch[64] = "";
        if (gw_traces_due(*c, now_epoch, sizeof(now_epoch)) >= 0 && !strcmp(now_epoch, epoch))
            rc = commit(&rb, mark, epoch);
    }
    if (rc == 1)
        MSP_WARN("traces.rebuilt", NULL,
                 "traces rebuilt in %lld ms: %lld entries from %lld records (%lld skipped)",
                 (long long)(msp_now_ms() - t0), rb.kept, n, rb.skipped);
    else
        MSP_ERROR("traces.rebuild_failed", NULL, "%s; trying again",
                  rb.err[0] ? rb.err : "Redis or the lease");
    json_decref(rb.lists);
    json_decref(rb.sets);
    json_decref(rb.tenants);
    json_decref(rb.counts);
    json_decref(rb.counted);
    lease.c = *c;
    if (lease.c)
        msp_lease_release(&lease);
    return rc;
}

int gw_traces_pending(gw_t *gw) {
    char ke[64], kr[64], km[64], err[256];
    DUE_KEYS(ke, kr, km);
    return due_of(gw_redis(gw, err, sizeof(err), "MGET %s %s %s", ke, kr, km), NULL, 0);
}

int gw_traces_reply_pending(gw_t *gw, struct evhttp_request *req, const char *route) {
    if (gw_traces_pending(gw) != 1)
        return 0;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "2");
    gw_reply_error(gw, req, route, 503,
                   "traces and histories are being rebuilt from Kafka after a loss of Redis; "
                   "retry");
    return 1;
}
