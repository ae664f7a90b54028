/*
 * work.c — one incident event's way to Syncro.
 *
 * Per event (an item), in the order its fingerprint's events arrived:
 *
 *   LOAD     Redis: ticketing config, the fingerprint's ticket record `tk:<fp>` (hash), whether
 *            this event id was handled already (`tk:<fp>:events`), the org mapping, the Syncro
 *            integration, whether the tenant holds incidents. Redis down → wait and LOAD again
 *            (never guess); Redis lost its state and the gateway has not restored it (the epoch
 *            marker, read first and last) → wait the same way.
 *   RESCAN   no record, but Redis was restored after a loss within the lookback and the org's
 *            Syncro customer was not rescanned under this epoch: list the customer's tickets,
 *            rebuild the records of those carrying our marker (`rebuilt`), LOAD again. A rebuilt
 *            record has no events set: comment, reopen and resolve read the ticket for the
 *            event's marker first.
 *   HOLD     ticketing paused (a 401/403 earlier), switched off with when_disabled=hold, or
 *            incidents of the tenant already held (they go first): the event is produced to
 *            `incidents.held` (key = tenant) and its offset committed once Kafka has it and the
 *            index `ticketing:held` says so (hold.c releases them, in order, through this same
 *            machine). Switched off with when_disabled=skip: counted as skipped_disabled.
 *   GATE     a new ticket only for an alert type whose rule creates and a severity at or above
 *            the minimum (decide.h tc_gate); skipped events are counted per reason.
 *   DECIDE   from (ticket record, event status, config), pick the next Syncro call (the table
 *            is decide.c, a pure function; this file carries its actions out):
 *              no ticket, open      → CREATE (claim first: state=creating, pending=create:<eid>)
 *              creating             → SEARCH (a crash came between claim and record: find the
 *                                     ticket by its marker before creating again)
 *              open ticket, open    → COMMENT (pending=comment:<eid>; a replay GETs the ticket
 *                                     and looks for the event marker first)
 *              resolved, open       → inside the reopen window: REOPEN (PUT status) + COMMENT;
 *                                     after it: a new ticket (generation + 1)
 *              open ticket, resolved → auto-resolve on: GET the ticket; untouched → PUT the
 *                                     resolve status, touched → a comment saying why not;
 *                                     auto-resolve off: nothing to call
 *   CALL     through the vendor-call engine (vcall.h): take a token from the account's GCRA
 *            bucket (shared with the fetcher), send;
 *            429/5xx/timeout → back off (Retry-After wins) and send again, offset not stored;
 *            401/403 → ticketing pauses for the tenant (status:syncro ticketing_paused, the
 *            missing permission as the hint) and the event is HELD like those after it;
 *            other 4xx → dead letter with Syncro's message; 404 on a known ticket → the ticket
 *            was deleted in Syncro: forget it and DECIDE again.
 *   FINISH   one MULTI: the ticket record, pending cleared, the event id added, counters, the
 *            event's trace entries; then the offset becomes committable (msp_keyq) and the
 *            fingerprint's next event runs.
 *
 * Trace (trace.h): each step the event takes is kept in the item (it->trace) and written with the
 * next Redis write the event makes anyway — the pending marker before a Syncro write, FINISH's
 * MULTI, the skip counters, the dead letter's counters, the held index — never in a round trip of
 * its own. What a crash can repeat is the same (event id, step): a step written with a pending
 * marker and taken again by the replay, a skip or a dead letter (not remembered as handled);
 * readers keep the first of each. An outcome (ticket_created, commented, resolved...) is written
 * only with FINISH, which also marks the event handled, so a replay never claims a second one.
 *
 * "Touched by a technician" = the ticket's status or assignee differ from what we last set, or
 * it carries a comment without one of our markers.
 */
#include "decide.h"
#include "tc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mspsync/backoff.h"
#include "mspsync/incident.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/model.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"
#include "mspsync/syncro.h"
#include "mspsync/syncro_store.h"
#include "mspsync/trace.h"
#include "mspsync/tzif.h"
#include "mspsync/utf8.h"
#include "mspsync/vcall.h"
#include "mspsync/vendor.h"

#define SERVICE        "ticket-creator"
#define VENDOR (&msp_vendor_syncro) /* tickets are Syncro's: the one vendor called here */
#define EVENTS_TTL_S   (90 * 86400)
#define SUBJECT_MAX    250
/* The gateway takes ticket statuses of up to 100 characters, 4 bytes each at the most: a
 * last_status that holds them whole still compares equal to what Syncro answers. */
#define STATUS_MAX     (100 * 4)

static const char *const state_names[] = {"none", "creating", "open", "resolved"};

typedef struct tc_item_s tc_item_t;

struct tc_item_s {
    msp_keyq_item_t     kq;          /* first: keyq hands it back; kq.msg is the event */
    tc_t               *tc;
    msp_vcall_t vc;                  /* the Syncro call in progress, and the item's timer */
    json_t             *inc;         /* canonical incident, NULL when unreadable */
    char                bad[512];    /* why inc is NULL */
    const char *tenant, *fp, *eid, *status;   /* borrowed from inc */
    msp_dead_letter_t   dl;
    msp_dead_letter_t hold; /* the produce to incidents.held in flight (reason = why) */
    int32_t held_partition;
    int64_t held_offset;
    int released; /* read from incidents.held by hold.c, not the keyq */

    unsigned unknown_tries; /* creates and comments whose outcome was unknown (write_unknown) */

    /* loaded */
    json_t                  *config;
    const json_t            *rule;
    msp_syncro_integration_t syncro;
    int                      have_syncro;
    char                     customer_id[32];
    char                     customer_name[256];

    /* the ticket record tk:<fp> */
    tk_state_t state;
    long long  gen;
    long long  ticket_id;
    long long  ticket_number;
    long long  resolved_at_ms;
    long long  claim_at_ms;
    long long  assignee;
    char       rec_customer[32];
    char       last_status[STATUS_MAX + 1];
    char       pending[128];
    int rebuilt; /* rebuilt from Syncro after a Redis loss: no events set behind it */

    /* the state marker as LOAD saw it (statekeys.h) */
    char epoch[64];
    long long restored_at_ms; /* when Redis was last restored after a loss; 0 = never */
    json_t *scan;             /* a rescan in progress: fingerprint -> {gen, ticket} */
    char scan_lock[33];

    /* result counters for FINISH */
    const char *outcome;
    int64_t outcome_ms; /* the wall clock of the outcome's trace entry (last_ticket_at is it) */
    int search_page;

    /* LOAD's answers kept across its second round trip (the rescan check) */
    char map_customer[32]; /* the org mapping's Syncro customer ("" none) */
    /* The customer seen rescanned under the epoch (rescan_checked): the LOAD after that sees
     * the records the rescan wrote, and decides on them. */
    char rescanned_customer[32];
    char rescanned_epoch[64];
    int syncro_rc; /* msp_syncro_integration_from_reply's answer */
    char syncro_err[512];
    msp_vcall_step_fn *after_write; /* what goes on once a write is answered (set_pending...) */
    const char *left_why;           /* why an auto-resolve leaves the ticket open (static) */

    json_t *trace;      /* the event's trace entries not written yet (JSON texts), or NULL */
    char last_err[512]; /* the last vendor error traced: a retry storm is one entry */
};

/* Steps take the item as void *: the vendor-call engine's timer and calls hand it back so. */
static void item_load(void *arg);
static void decide(void *arg);
static void unmapped(tc_item_t *it);

/* ------------------------------------------------------------------ helpers */

static void tk_key(const tc_item_t *it, char *buf, size_t size, const char *suffix) {
    msp_key(buf, size, it->tenant, "tk:%s%s", it->fp, suffix);
}

static const char *cfg_str(const json_t *o, const char *name, const char *def) {
    const char *s = json_string_value(json_object_get(o, name));
    return s && s[0] ? s : def;
}

static long long cfg_int(const json_t *o, const char *name, long long def) {
    const json_t *v = json_object_get(o, name);
    if (json_is_integer(v)) return json_integer_value(v);
    if (json_is_string(v)) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (*end == '\0' && end != json_string_value(v)) return x;
    }
    return def;
}

static int cfg_bool(const json_t *o, const char *name, int def) {
    const json_t *v = json_object_get(o, name);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static const char *inc_str(const tc_item_t *it, const char *name) {
    return json_string_value(json_object_get(it->inc, name));
}

static void stats_error(tc_item_t *it, const char *msg) {
    char k[256], at[32];
    msp_key(k, sizeof(k), it->tenant, "ticketing:stats");
    msp_format_time(msp_wall_ms(), at, sizeof(at));
    /* best effort: not waited for, lost when Redis is not there */
    msp_aredis_cmd(it->tc->aredis, NULL, NULL, "HSET %s last_error %s last_error_at %s", k, msg,
                   at);
}

/*
 * The start of every Redis reply's callback: a revoked or stopping item is abandoned (its
 * commands ran or not; the replay decides again). @returns 1 when it was.
 */
static int item_left(tc_item_t *it) {
    if (!msp_vcall_gone(&it->vc))
        return 0;
    msp_vcall_abandon(&it->vc);
    return 1;
}

/* Why a step's answer r (NULL: why) is not the one expected, for the log. */
static const char *answer_why(const redisReply *r, const char *why) {
    if (r && r->type == REDIS_REPLY_ERROR)
        return r->str;
    return why ? why : "unexpected answer";
}

/* 1 when no answer of EXEC's array r is an error. */
static int tx_clean(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ trace */

/*
 * Keep a trace entry of this event (written by the next Redis round trip that ends a step):
 * step with the event id and facts (stolen, may be NULL). Out of memory loses the entry only.
 */
static void trace_add_at(tc_item_t *it, int64_t wall_ms, const char *step, json_t *facts) {
    if (!it->inc) {
        json_decref(facts);
        return;
    }
    if (!facts)
        facts = json_object();
    json_object_set_new(facts, "event_id", json_string(it->eid));
    char *text = msp_trace_entry(wall_ms, step, SERVICE, facts);
    if (!text)
        return;
    if (!it->trace)
        it->trace = json_array();
    json_array_append_new(it->trace, json_string(text));
    msp_json_free(text);
}

static void trace_add(tc_item_t *it, const char *step, json_t *facts) {
    trace_add_at(it, msp_wall_ms(), step, facts);
}

/* The ticket's identity for an entry: ticket id, number, customer, generation. */
static json_t *ticket_facts(const tc_item_t *it) {
    return json_pack("{s:I,s:I,s:s,s:I}", "ticket_id", (json_int_t)it->ticket_id, "ticket_number",
                     (json_int_t)it->ticket_number, "customer_id", it->rec_customer, "gen",
                     (json_int_t)it->gen);
}

/*
 * Add the writes of the kept entries to the transaction t: RPUSH, LTRIM, EXPIRE.
 * @returns the number of commands added (0 when nothing is kept).
 */
static int append_trace(tc_item_t *it, tc_tx_t *t) {
    size_t n = json_array_size(it->trace);
    if (!n)
        return 0;
    char key[320];
    msp_key(key, sizeof(key), it->tenant, "trace:inc:%s", it->fp);
    const char **argv = calloc(n + 2, sizeof(*argv));
    size_t *lens = calloc(n + 2, sizeof(*lens));
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return 0;
    }
    argv[0] = "RPUSH";
    argv[1] = key;
    for (size_t i = 0; i < n; i++)
        argv[i + 2] = json_string_value(json_array_get(it->trace, i));
    for (size_t i = 0; i < n + 2; i++)
        lens[i] = strlen(argv[i]);
    tc_tx_argv(t, (int)(n + 2), argv, lens);
    free(argv);
    free(lens);
    TC_TX(t, "LTRIM %s -%d -1", key, MSP_TRACE_MAX);
    TC_TX(t, "EXPIRE %s %d", key, MSP_TRACE_TTL_S);
    return 3;
}

/* The kept entries were written: journal them (trace.h), then forget them. */
static void trace_written(tc_item_t *it) {
    char key[320];
    msp_key(key, sizeof(key), it->tenant, "trace:inc:%s", it->fp);
    for (size_t i = 0; i < json_array_size(it->trace); i++)
        msp_trace_journal(key, json_string_value(json_array_get(it->trace, i)), 0);
    json_decref(it->trace);
    it->trace = NULL;
}

/* ------------------------------------------------------------- lifecycle */

static void item_destroy(msp_keyq_item_t *kit, void *opaque) {
    tc_item_t *it = (tc_item_t *)kit;
    (void)opaque;
    msp_aredis_cancel(it->tc->aredis, it); /* no reply touches it after this */
    msp_vcall_clear(&it->vc);
    json_decref(it->inc);
    json_decref(it->config);
    json_decref(it->scan);
    json_decref(it->trace);
    msp_syncro_integration_clear(&it->syncro);
    msp_dead_letter_clear(&it->dl);
    msp_dead_letter_clear(&it->hold);
    free(it);
}

static void item_start(msp_keyq_item_t *kit, void *opaque) {
    (void)opaque;
    item_load(kit);
}

const msp_keyq_ops_t tc_keyq_ops = {item_start, item_destroy, NULL};

/* The event is finished (handled, skipped or dead-lettered and acknowledged): commit past it,
 * start the fingerprint's next event. */
static void item_complete(tc_item_t *it);

/* A released event's end (hold.c goes on from end): the item and its message are freed. */
static void released_end(tc_item_t *it, tc_release_end_t end) {
    tc_t *tc = it->tc;
    rd_kafka_message_t *m = it->kq.msg;
    int64_t offset = m->offset;
    item_destroy(&it->kq, NULL);
    rd_kafka_message_destroy(m);
    tc_release_item_end(tc, offset, end);
}

static void item_complete(tc_item_t *it) {
    tc_t *tc = it->tc;
    if (it->released) {
        released_end(it, TC_RELEASE_DONE);
        return;
    }
    msp_keyq_complete(tc->worker.kq, &it->kq);
    msp_svc_worker_gauges(&tc->worker);
}

/* Run fn in ms; a revoked or stopping item is abandoned instead (vcall.h). */
static void wait_then(tc_item_t *it, int64_t ms, msp_vcall_step_fn *fn) {
    msp_vcall_wait(&it->vc, ms, fn);
}

/*
 * No Redis connection right now (msp_aredis_cmd refused: it reconnects by itself): say so, and
 * run fn again in ms, as after any failed Redis step.
 */
static void redis_wait(tc_item_t *it, int64_t ms, msp_vcall_step_fn *fn) {
    MSP_WARN("redis.unavailable", it->tenant, "fp=%.12s: no Redis connection; retrying in %lld ms",
             it->fp ? it->fp : "-", (long long)ms);
    wait_then(it, ms, fn);
}

/* ------------------------------------------------------------ dead letters */

static void dlq_send(void *arg) {
    tc_item_t *it = arg;
    if (msp_dead_letter_send(it->tc->worker.producer, &it->dl, it->kq.msg, SERVICE) != 0)
        wait_then(it, 1000, dlq_send);
}

/*
 * Counters and the trace were written (or not: they are best effort): go on with
 * it->after_write (the dead letter itself, the skipped event's completion).
 */
static void counts_written(void *arg, redisReply *r, const char *why) {
    tc_item_t *it = arg;
    (void)why;
    if (item_left(it))
        return;
    if (tx_clean(r))
        trace_written(it);
    it->after_write(it);
}

static void dead_letter(void *arg, const char *reason) {
    tc_item_t *it = arg;
    MSP_WARN("incident.dead_lettered", it->tenant, "partition=%d offset=%" PRId64 " reason=%s",
             (int)it->kq.msg->partition, it->kq.msg->offset, reason);
    msp_dead_letter_set(&it->dl, it, it->tenant, reason);
    msp_metric_add(it->tc->metrics, "mspsync_ticket_creator_events_total",
                   "outcome=\"dead_lettered\"", 1);
    if (it->inc) {
        /* counters, the last error and the trace in one round trip (best effort, like the
         * counters: the dead letter itself is what must not be lost, and goes on either way) */
        char k[256], at[32];
        msp_key(k, sizeof(k), it->tenant, "ticketing:stats");
        msp_format_time(msp_wall_ms(), at, sizeof(at));
        trace_add(it, "dead_lettered", json_pack("{s:s}", "reason", reason));
        tc_tx_t t = tc_tx_begin(it->tc->aredis);
        TC_TX(&t, "HINCRBY %s dead_lettered 1", k);
        TC_TX(&t, "HSET %s last_error %s last_error_at %s", k, reason, at);
        append_trace(it, &t);
        it->after_write = dlq_send;
        if (tc_tx_exec(&t, counts_written, it) == 0)
            return;
    }
    dlq_send(it);
}

/* ------------------------------------------------------------------- HOLD */

static void hold_record(void *arg);

static void hold_send(void *arg) {
    tc_item_t *it = arg;
    const rd_kafka_message_t *m = it->kq.msg;
    rd_kafka_headers_t *orig = NULL, *h;
    if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig)
        h = rd_kafka_headers_copy(orig);
    else
        h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "x-held-reason", -1, it->hold.reason, -1);
    const void *v;
    size_t vlen;
    if (rd_kafka_header_get_last(h, "x-source-topic", &v, &vlen)) /* a dead letter replays here */
        rd_kafka_header_add(h, "x-source-topic", -1, rd_kafka_topic_name(m->rkt), -1);
    if (msp_kafka_produce(it->tc->worker.producer, msp_topic(MSP_TOPIC_INCIDENTS_HELD), it->tenant,
                          strlen(it->tenant), m->payload, m->len, h, &it->hold) != 0) {
        rd_kafka_headers_destroy(h);
        MSP_WARN("held.produce_failed", it->tenant, "retrying in 1 s");
        wait_then(it, 1000, hold_send);
        return;
    }
    it->hold.inflight = 1;
}

/*
 * Keep the event for later. A released event (already in incidents.held) stays where it is and
 * its release stops; an event from `incidents` is produced to incidents.held and completed once
 * the index records it (hold_record), so that its offset is committed only when Kafka keeps it.
 */
static void hold(tc_item_t *it, const char *why) {
    if (it->released) {
        MSP_INFO("incident.release_stopped", it->tenant, "fp=%.12s: %s", it->fp, why);
        released_end(it, TC_RELEASE_STOP);
        return;
    }
    MSP_DEBUG("incident.held", it->tenant, "fp=%.12s event=%.12s: %s", it->fp, it->eid, why);
    trace_add(it, "held", json_pack("{s:s}", "reason", why));
    msp_dead_letter_set(&it->hold, it, it->tenant, why);
    hold_send(it);
}

/*
 * The index of the tenant's held events (ticketing:held: partition, from, to, count) and the
 * set of holding tenants; a script so that `to` only grows and `from` is set by the first.
 */
static const char HOLD_LUA[] =
    "redis.call('HSETNX', KEYS[1], 'partition', ARGV[1]) "
    "redis.call('HSETNX', KEYS[1], 'from', ARGV[2]) "
    "local to = tonumber(redis.call('HGET', KEYS[1], 'to') or '-1') "
    "if tonumber(ARGV[2]) > to then redis.call('HSET', KEYS[1], 'to', ARGV[2]) end "
    "redis.call('HINCRBY', KEYS[1], 'count', 1) "
    "redis.call('HINCRBY', KEYS[2], 'held_total', 1) "
    "return 1";

/* The index has the held event (the script's 1 and the SADD's answer): it is done here. */
static void hold_recorded(void *arg, redisReply *r, const char *why) {
    tc_item_t *it = arg;
    if (item_left(it))
        return;
    /* the trace is best effort: only the index and the set must be there */
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        MSP_WARN("redis.held_failed", it->tenant, "recording a held incident failed (%s); retrying",
                 answer_why(r, why));
        wait_then(it, 1000, hold_record);
        return;
    }
    if (tx_clean(r))
        trace_written(it);
    msp_metric_add(it->tc->metrics, "mspsync_ticket_creator_events_total", "outcome=\"held\"", 1);
    item_complete(it);
}

static void hold_record(void *arg) {
    tc_item_t *it = arg;
    char kh[256], ks[256], kg[128], part[16], off[32];
    msp_key(kh, sizeof(kh), it->tenant, "ticketing:held");
    msp_key(ks, sizeof(ks), it->tenant, "ticketing:stats");
    msp_key(kg, sizeof(kg), "_", "ticketing:holding");
    snprintf(part, sizeof(part), "%d", (int)it->held_partition);
    snprintf(off, sizeof(off), "%lld", (long long)it->held_offset);
    /* the index before the set (hold.c's forget_tenant relies on that order) */
    tc_tx_t t = tc_tx_begin(it->tc->aredis);
    TC_TX(&t, "EVAL %s 2 %s %s %s %s", HOLD_LUA, kh, ks, part, off);
    TC_TX(&t, "SADD %s %s", kg, it->tenant);
    append_trace(it, &t);
    if (tc_tx_exec(&t, hold_recorded, it) != 0)
        redis_wait(it, 1000, hold_record);
}

void tc_delivery_report(tc_t *tc, const rd_kafka_message_t *m) {
    tc_item_t *it;
    (void)tc;
    const void *carrier = m->_private;
    int rc = msp_dead_letter_report(m, (void **)&it);
    if (rc == 0)
        return;
    int held = carrier == &it->hold;
    if (rc < 0) {
        wait_then(it, 1000, held ? hold_send : dlq_send);
    } else if (held) {
        it->held_partition = m->partition;
        it->held_offset = m->offset;
        hold_record(it);
    } else {
        item_complete(it);
    }
}

/* Add an HSET of the whole ticket record, pending marker included, to the transaction t. */
static void append_record(tc_item_t *it, tc_tx_t *t) {
    char k[300], gen[32], tid[32], num[32], res[32], asg[32], claim[32];
    tk_key(it, k, sizeof(k), "");
    snprintf(gen, sizeof(gen), "%lld", it->gen);
    snprintf(tid, sizeof(tid), "%lld", it->ticket_id);
    snprintf(num, sizeof(num), "%lld", it->ticket_number);
    snprintf(res, sizeof(res), "%lld", it->resolved_at_ms);
    snprintf(asg, sizeof(asg), "%lld", it->assignee);
    snprintf(claim, sizeof(claim), "%lld", it->claim_at_ms);
    TC_TX(t,
          "HSET %s state %s gen %s ticket_id %s ticket_number %s customer_id %s last_status %s "
          "resolved_at_ms %s assignee %s claim_at_ms %s pending %s rebuilt %s",
          k, state_names[it->state], gen, tid, num, it->rec_customer, it->last_status, res, asg,
          claim, it->pending, it->rebuilt ? "1" : "0");
}

/* The record with its pending marker is written: the Syncro write may go. */
static void pending_written(void *arg, redisReply *r, const char *why) {
    tc_item_t *it = arg;
    (void)why;
    if (item_left(it))
        return;
    if (!tx_clean(r) || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER) {
        wait_then(it, 1000, item_load); /* Redis failed: load again, decide again */
        return;
    }
    trace_written(it);
    it->after_write(it);
}

/*
 * Write the whole ticket record with its "pending" marker (op:<event id>) before a Syncro
 * write, so that a replay after a crash knows what may have happened and how to check; then
 * (once Redis has it) the write: then(it). When Redis fails the event waits and loads again.
 */
static void set_pending(tc_item_t *it, const char *op, msp_vcall_step_fn *then) {
    snprintf(it->pending, sizeof(it->pending), "%s:%s", op, it->eid);
    it->after_write = then;
    tc_tx_t t = tc_tx_begin(it->tc->aredis);
    append_record(it, &t);
    /* The steps kept so far go with the record: a crash after this write replays the event
     * from the record (a reopen's new state, say), and must find them written. */
    append_trace(it, &t);
    if (tc_tx_exec(&t, pending_written, it) != 0)
        redis_wait(it, 1000, item_load);
}

/* ------------------------------------------------------------------ FINISH */

/*
 * Record the event as handled: ticket fields, pending cleared, event id remembered, counters.
 * counter may be NULL. On a Redis error the whole FINISH is retried (it is idempotent: HSETs and
 * an SADD; the counter may then count twice, like the normalizer's stats).
 */
static void finish(void *arg);

static void finished(void *arg, redisReply *r, const char *why) {
    tc_item_t *it = arg;
    if (item_left(it))
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        MSP_WARN("redis.finish_failed", it->tenant, "recording the event failed (%s); retrying",
                 answer_why(r, why));
        wait_then(it, 1000, finish);
        return;
    }
    trace_written(it);
    msp_metric_add(it->tc->metrics, "mspsync_ticket_creator_events_total",
                   it->outcome ? "outcome=\"handled\"" : "outcome=\"no_action\"", 1);
    MSP_DEBUG("incident.done", it->tenant, "fp=%.12s event=%.12s state=%s ticket=%lld outcome=%s",
              it->fp, it->eid, state_names[it->state], it->ticket_id,
              it->outcome ? it->outcome : "none");
    item_complete(it);
}

static void finish(void *arg) {
    tc_item_t *it = arg;
    char k[300], ke[300], ks[256], at[32];
    tk_key(it, k, sizeof(k), "");
    tk_key(it, ke, sizeof(ke), ":events");
    msp_key(ks, sizeof(ks), it->tenant, "ticketing:stats");
    /* the time its trace entry says: a rebuild from the traces topic gives back the same */
    msp_format_time(it->outcome_ms ? it->outcome_ms : msp_wall_ms(), at, sizeof(at));

    tc_tx_t t = tc_tx_begin(it->tc->aredis);
    if (it->state == TK_NONE) {
        TC_TX(&t, "HDEL %s state ticket_id ticket_number", k);
    } else {
        it->pending[0] = '\0';
        append_record(it, &t);
    }
    TC_TX(&t, "HDEL %s pending", k);
    TC_TX(&t, "SADD %s %s", ke, it->eid);
    TC_TX(&t, "EXPIRE %s %d", ke, EVENTS_TTL_S);
    if (it->outcome) {
        TC_TX(&t, "HINCRBY %s %s 1", ks, it->outcome);
        if (!strcmp(it->outcome, "tickets_created"))
            TC_TX(&t, "HSET %s last_ticket_at %s", ks, at);
    }
    append_trace(it, &t);
    if (tc_tx_exec(&t, finished, it) != 0)
        redis_wait(it, 1000, finish);
}

/* The trace step of each FINISH outcome (NULL outcome: nothing to call Syncro for). */
static const char *outcome_step(const char *outcome) {
    static const char *const steps[][2] = {
        {"tickets_created", "ticket_created"},
        {"comments_added", "commented"},
        {"tickets_resolved", "resolved"},
        {"resolve_skipped_touched", "resolve_skipped_touched"},
        {"resolve_skipped_disabled", "resolve_skipped_disabled"}};
    for (size_t i = 0; outcome && i < sizeof(steps) / sizeof(steps[0]); i++)
        if (!strcmp(outcome, steps[i][0]))
            return steps[i][1];
    return "no_action";
}

static void finish_with(tc_item_t *it, const char *outcome) {
    it->outcome = outcome;
    it->outcome_ms = msp_wall_ms();
    json_t *f = it->ticket_id > 0 ? ticket_facts(it) : json_object();
    if (outcome && !strcmp(outcome, "tickets_resolved"))
        json_object_set_new(f, "ticket_status", json_string(it->last_status));
    trace_add_at(it, it->outcome_ms, outcome_step(outcome), f);
    finish(it);
}

/* 1 when the record's pending marker is op:<this event>. */
static int pending_is(const tc_item_t *it, const char *op) {
    size_t n = strlen(op);
    return !strncmp(it->pending, op, n) && it->pending[n] == ':' && !strcmp(it->pending + n + 1, it->eid);
}

/* ------------------------------------------------------------------- CALL */

static void write_retry(void *arg, const msp_http_response_t *res, int64_t retry_after_ms,
                        const char *why);

/* Start a Syncro call of the event (vcall.h): path and body are stolen; on_fail (may be NULL)
 * sees a final 4xx first. Retries are counted per call. A POST (a ticket, a comment) is never
 * resent blindly (write_retry); a PUT of a status is the same PUT again. */
static void call(tc_item_t *it, const char *method, char *path, json_t *body,
                 msp_vcall_ok_fn *on_ok, msp_vcall_fail_fn *on_fail) {
    msp_vcall_step_t step = {.ok = on_ok,
                             .expect = MSP_VCALL_BODY_OBJECT,
                             .fail = on_fail,
                             .retry = !strcmp(method, "POST") ? write_retry : NULL};
    msp_vcall_reset(&it->vc);
    msp_vcall_call(&it->vc, method, path, body, &step);
}

/*
 * A POST whose outcome is unknown — it timed out, the connection broke, Syncro answered 5xx or a
 * 2xx we cannot read — may have made the ticket or the comment. Sending it again would make a
 * second one, so the event starts over from its record, whose pending marker was written before
 * the POST: "create" (state "creating") has decide() look for the ticket by its marker, "comment"
 * has it read the ticket for the event's marker (TC_DO_COMMENT_CHECK; for a resolve, the resolve
 * check), and only what is not there is sent again. A 429 says the request was not taken, and
 * is retried as it is. Measured: under ASan on a loaded machine a create that took Syncro over
 * the 3 s timeout produced two tickets; a comment so, two comments.
 */
static void write_retry(void *arg, const msp_http_response_t *res, int64_t retry_after_ms,
                        const char *why) {
    tc_item_t *it = arg;
    if (res->status == 429) {
        msp_vcall_retry(&it->vc, retry_after_ms, why);
        return;
    }
    char msg[1100];
    snprintf(msg, sizeof(msg), "%s; %s", why,
             pending_is(it, "create")
                 ? "the ticket may exist: looking for it before creating again"
                 : "the comment may have landed: reading the ticket before commenting again");
    it->search_page = 0;
    msp_vcall_retry_with(&it->vc, &it->unknown_tries, retry_after_ms, msg, item_load);
}

/* ------------------------------------------------ the vendor-call engine's hooks */

static void on_retrying(void *arg, unsigned attempt, int64_t delay_ms, const char *why) {
    tc_item_t *it = arg;
    MSP_WARN("syncro.retry", it->tenant, "fp=%.12s attempt=%u retry_in_ms=%lld: %s", it->fp,
             attempt, (long long)delay_ms, why);
    if (strcmp(it->last_err, why) != 0) { /* once per distinct error, not per retry */
        msp_utf8_copy(it->last_err, sizeof(it->last_err), why);
        trace_add(it, "error",
                  json_pack("{s:s,s:s?,s:s?,s:I}", "error", it->last_err, "method", it->vc.method,
                            "path", it->vc.path, "attempt", (json_int_t)attempt));
    }
    if (attempt == 1 || attempt % 10 == 0) {
        char msg[700];
        snprintf(msg, sizeof(msg), "%s (retrying)", why);
        stats_error(it, msg);
    }
}

static void on_answered(void *arg, msp_http_outcome_t o) {
    tc_item_t *it = arg;
    msp_metric_add(it->tc->metrics, "mspsync_ticket_creator_requests_total",
                   o == MSP_HTTP_OK      ? "outcome=\"ok\""
                   : o == MSP_HTTP_RETRY ? "outcome=\"retry\""
                                         : "outcome=\"failed\"",
                   1);
}

/*
 * A 401/403: the key was revoked or lost a permission. Ticketing pauses for the tenant until the
 * integration is saved again (PUT) or PATCHed (the gateway clears the flag): the status shows
 * Error with Syncro's words and the permission this call needs, and the event is held. Syncro's
 * words wait in it->hold.reason while the flag is written; when Redis fails it is tried again.
 */
static void pause_retry(void *arg);

static void paused(void *arg, redisReply *r, const char *why) {
    tc_item_t *it = arg;
    (void)why;
    if (item_left(it))
        return;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        wait_then(it, 1000, pause_retry);
        return;
    }
    char hint[512];
    msp_vendor_hint(VENDOR, MSP_HINT_FORBIDDEN, it->vc.method ? it->vc.method : "POST",
                    it->vc.path ? it->vc.path : "/tickets", hint, sizeof(hint));
    const char *words = it->hold.reason ? it->hold.reason : "401/403";
    stats_error(it, words);
    MSP_WARN("ticketing.paused", it->tenant, "%s; %s", words, hint);
    hold(it, "ticketing paused: Syncro refused the key (401/403)");
}

static void pause_and_hold(tc_item_t *it, const char *why) {
    char k[256], hint[512], at[32];
    msp_vendor_hint(VENDOR, MSP_HINT_FORBIDDEN, it->vc.method ? it->vc.method : "POST",
                    it->vc.path ? it->vc.path : "/tickets", hint, sizeof(hint));
    msp_key(k, sizeof(k), it->tenant, "status:syncro");
    msp_format_time(msp_wall_ms(), at, sizeof(at));
    msp_dead_letter_set(&it->hold, it, it->tenant, why); /* keep the words for the reply */
    if (msp_aredis_cmd(it->tc->aredis, paused, it,
                       "HSET %s ticketing_paused 1 ticketing_state error ticketing_error %s "
                       "ticketing_hint %s ticketing_error_at %s",
                       k, why, hint, at) != 0)
        redis_wait(it, 1000, pause_retry);
}

static void pause_retry(void *arg) {
    tc_item_t *it = arg;
    char why[1100];
    snprintf(why, sizeof(why), "%s", it->hold.reason ? it->hold.reason : "401/403");
    pause_and_hold(it, why);
}

/* A final answer: 401/403 pauses ticketing and holds the event; another 4xx dead-letters it
 * with Syncro's own words. */
static void call_failed(void *arg, msp_vcall_failure_t kind, const char *why) {
    if (kind == MSP_VCALL_FAIL_FORBIDDEN || kind == MSP_VCALL_FAIL_AUTH) {
        pause_and_hold(arg, why);
        return;
    }
    dead_letter(arg, why);
}

static void released_abandon(void *arg) { released_end(arg, TC_RELEASE_ABANDONED); }

static const msp_vcall_ops_t vcall_ops = {
    .fail = call_failed,
    .retrying = on_retrying,
    .answered = on_answered,
};

/* A released event has no keyq item: the engine abandons it through the owner. */
static const msp_vcall_ops_t released_vcall_ops = {
    .fail = call_failed,
    .retrying = on_retrying,
    .answered = on_answered,
    .abandon = released_abandon,
};

void tc_vcall_env(tc_t *tc) {
    tc->vcall =
        (msp_vcall_env_t){.base = tc->base,
                          .http = &tc->http,
                          .aredis = tc->aredis, /* the token without blocking the loop */
                          .redis_url = tc->conf.svc.redis_url,
                          .backoff_base_ms = tc->conf.backoff_base_ms,
                          .backoff_cap_ms = tc->conf.backoff_cap_ms,
                          .stopping = &tc->stopping,
                          .kq = tc->worker.kq,
                          .metrics = tc->metrics,
                          .metric_retries = "mspsync_ticket_creator_retries_total",
                          .metric_throttled = "mspsync_ticket_creator_ratelimit_waits_total"};
}

/* The Syncro account of the event's integration (loaded by item_load). */
static void use_syncro(tc_item_t *it) {
    const tc_conf_t *conf = &it->tc->conf;
    msp_vcall_account_t acct = {.base_url = it->syncro.base_url,
                                .bucket_key = it->syncro.bucket_key,
                                .rate = msp_vendor_rate_per_s(&conf->svc.rates, VENDOR),
                                .burst = msp_vendor_rate_burst(&conf->svc.rates, VENDOR),
                                .auth_header = it->syncro.auth_header,
                                .describe = msp_syncro_describe};
    msp_vcall_account(&it->vc, &acct);
}

/* --------------------------------------------------------- ticket content */

static char *id_path(const char *fmt, long long id) {
    char buf[128];
    snprintf(buf, sizeof(buf), fmt, id);
    return strdup(buf);
}

static void set_opt_str(json_t *o, const char *key, const char *v) {
    if (v && v[0]) json_object_set_new(o, key, json_string(v));
}

static char *incident_details(const tc_item_t *it) {
    const char *desc = inc_str(it, "description"), *link = inc_str(it, "link");
    const char *org_name = inc_str(it, "org_name"), *sev = inc_str(it, "severity");
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    fprintf(f, "Incident %s from the multi-tenant portal.\n", inc_str(it, "incident_id"));
    fprintf(f, "Organization: %s (%s)\n", org_name ? org_name : "-", inc_str(it, "org_id"));
    fprintf(f, "Alert type: %s\nSeverity: %s\nSubject: %s\nOccurred at: %s\n",
            inc_str(it, "alert_type"), sev ? sev : "-", inc_str(it, "subject"),
            inc_str(it, "occurred_at"));
    if (desc) fprintf(f, "\n%s\n", desc);
    if (link) fprintf(f, "\nLink: %s\n", link);
    fprintf(f, "\n%s%s/%lld\n", MSP_INCIDENT_MARKER, it->fp, it->gen);
    /* The creating event too: after a Redis loss its replay finds it here (a rebuilt record has
     * no events set to tell it by) instead of commenting on its own ticket. */
    char marker[200];
    msp_event_marker(marker, sizeof(marker), it->eid, inc_str(it, "occurred_at"));
    fprintf(f, "%s\n", marker);
    fclose(f);
    return out;
}

/*
 * The rule's fixed priority when it has one, else the config's priority for the incident's
 * severity (priority_by_severity), else none (Syncro's default).
 */
static const char *ticket_priority(const tc_item_t *it) {
    const char *fixed = cfg_str(it->rule, "priority", NULL);
    if (fixed)
        return fixed;
    const char *sev = inc_str(it, "severity");
    const json_t *map = json_object_get(it->config, "priority_by_severity");
    return sev ? cfg_str(map, sev, NULL) : cfg_str(map, "none", NULL);
}

static json_t *ticket_body(const tc_item_t *it) {
    const json_t *rule = it->rule;
    /* Syncro takes SUBJECT_MAX bytes; the cut must end on a character boundary, or jansson
     * refuses the subject, the ticket goes without one and Syncro answers 422 for good. */
    char subject[SUBJECT_MAX + 1], *full = NULL;
    const char *title = inc_str(it, "title"), *subj = inc_str(it, "subject");
    int n = subj && strcmp(subj, inc_str(it, "org_id")) != 0
                ? asprintf(&full, "%s - %s", title, subj)
                : asprintf(&full, "%s", title);
    msp_utf8_copy(subject, sizeof(subject), n >= 0 ? full : title);
    if (n >= 0) free(full);

    json_t *t = json_object();
    json_object_set_new(t, "customer_id", json_integer(strtoll(it->rec_customer, NULL, 10)));
    json_object_set_new(t, "subject", json_string(subject));
    json_object_set_new(t, "status", json_string(cfg_str(rule, "status", "New")));
    set_opt_str(t, "priority", ticket_priority(it));
    set_opt_str(t, "problem_type", cfg_str(rule, "problem_type", NULL));
    if (it->assignee > 0) json_object_set_new(t, "user_id", json_integer(it->assignee));
    long long due = cfg_int(rule, "due_in_days", -1);
    if (due >= 0) {
        time_t when = (time_t)(msp_wall_ms() / 1000) + (time_t)due * 86400;
        struct tm tm;
        char d[16];
        gmtime_r(&when, &tm);
        strftime(d, sizeof(d), "%Y-%m-%d", &tm);
        json_object_set_new(t, "due_date", json_string(d));
    }
    char *details = incident_details(it);
    json_t *c = json_object();
    json_object_set_new(c, "subject", json_string("Incident details"));
    json_object_set_new(c, "body", json_string(details ? details : ""));
    json_object_set_new(c, "hidden", json_true());
    json_object_set_new(c, "do_not_email", json_true());
    free(details);
    json_object_set_new(t, "comments_attributes", json_pack("[o]", c));
    return t;
}

static json_t *comment_body(const tc_item_t *it, const char *subject, const char *text) {
    char body[4096], marker[200];
    msp_event_marker(marker, sizeof(marker), it->eid, inc_str(it, "occurred_at"));
    snprintf(body, sizeof(body), "%s\n\n%s", text, marker);
    return json_pack("{s:s, s:s, s:b, s:b}", "subject", subject, "body", body, "hidden", 1,
                     "do_not_email", 1);
}

/* The ticket object of a {"ticket":{...}} answer. */
static const json_t *ticket_of(const json_t *body) {
    const json_t *t = json_object_get(body, "ticket");
    return json_is_object(t) ? t : NULL;
}

static long long json_id(const json_t *v) {
    if (json_is_integer(v)) return json_integer_value(v);
    if (json_is_string(v)) return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

/*
 * 1 when ticket t carries the marker of an event that occurred after this one. Only asked of a
 * rebuilt record (after a Redis loss): events of an incident are handled in order, so a resolve
 * older than an event whose effect is on the ticket is one that was applied before the loss and
 * then undone by that event (a reopen), replayed now from uncommitted offsets or sent again.
 */
static int later_event_on(const tc_item_t *it, const json_t *t) {
    int64_t mine, latest;
    if (!t || msp_rfc3339_parse(inc_str(it, "occurred_at"), &mine) != 0)
        return 0;
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(t, "comments"), i, c) {
        if (msp_event_marker_latest(json_string_value(json_object_get(c, "body")), &latest) &&
            latest > mine)
            return 1;
    }
    return 0;
}

/* 1 when some comment body of ticket t contains needle. */
static int has_comment_with(const json_t *t, const char *needle) {
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(t, "comments"), i, c) {
        const char *b = json_string_value(json_object_get(c, "body"));
        if (b && strstr(b, needle)) return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ steps */

static void record_ticket(tc_item_t *it, const json_t *t) {
    it->ticket_id = json_id(json_object_get(t, "id"));
    it->ticket_number = json_id(json_object_get(t, "number"));
    const char *st = json_string_value(json_object_get(t, "status"));
    msp_utf8_copy(it->last_status, sizeof(it->last_status),
                  st ? st : cfg_str(it->rule, "status", "New"));
    it->state = TK_OPEN;
    it->resolved_at_ms = 0;
}

static void created_ok(void *arg, msp_http_response_t *res, json_t *body) {
    tc_item_t *it = arg;
    (void)res;
    const json_t *t = ticket_of(body);
    if (!t || json_id(json_object_get(t, "id")) <= 0) {
        /* The ticket may exist; never create blindly again: look for it by its marker. */
        MSP_WARN("ticket.no_id", it->tenant, "fp=%.12s: the create answer has no ticket id; "
                 "searching for the ticket", it->fp);
        it->search_page = 1;
        it->state = TK_CREATING;
        wait_then(it, 1000, decide);
        return;
    }
    record_ticket(it, t);
    MSP_INFO("ticket.created", it->tenant, "fp=%.12s ticket=%lld number=%lld customer=%s", it->fp,
             it->ticket_id, it->ticket_number, it->rec_customer);
    finish_with(it, "tickets_created");
}

static void create_send(void *arg) {
    tc_item_t *it = arg;
    call(it, "POST", strdup("/tickets"), ticket_body(it), created_ok, NULL);
}

static void do_create(tc_item_t *it) { set_pending(it, "create", create_send); }

static void search_page(tc_item_t *it);

static void search_ok(void *arg, msp_http_response_t *res, json_t *body) {
    tc_item_t *it = arg;
    (void)res;
    char marker[128];
    snprintf(marker, sizeof(marker), "%s%s/%lld", MSP_INCIDENT_MARKER, it->fp, it->gen);
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(body, "tickets"), i, t) {
        if (has_comment_with(t, marker) ||
            (json_string_value(json_object_get(t, "subject")) &&
             strstr(json_string_value(json_object_get(t, "subject")), marker))) {
            record_ticket(it, t);
            MSP_INFO("ticket.recovered", it->tenant,
                     "fp=%.12s ticket=%lld: created before a crash, found by its marker", it->fp,
                     it->ticket_id);
            msp_metric_add(it->tc->metrics, "mspsync_ticket_creator_recovered_total", NULL, 1);
            if (!strcmp(it->status, "open") && pending_is(it, "create")) {
                finish_with(it, "tickets_created");   /* this very event created it */
                return;
            }
            it->pending[0] = '\0';
            decide(it);
            return;
        }
    }
    int total = (int)cfg_int(json_object_get(body, "meta"), "total_pages", 1);
    size_t n = json_array_size(json_object_get(body, "tickets"));
    if (n > 0 && it->search_page < total && it->search_page < it->tc->conf.search_max_pages) {
        it->search_page++;
        search_page(it);
        return;
    }
    /* Not there: the crashed attempt never reached Syncro. */
    MSP_INFO("ticket.not_found", it->tenant, "fp=%.12s: no ticket with our marker; creating", it->fp);
    if (!strcmp(it->status, "open")) {
        do_create(it);
        return;
    }
    it->state = TK_NONE; /* a resolve for an incident whose ticket never came to be */
    finish_with(it, NULL);
}

/*
 * One page (it->search_page) of the customer's tickets created since since_ms, to on_ok. The
 * filter is at 00:00 UTC of that day (its granularity is disputed, so a whole day), written as
 * the date-time the document's format asks for.
 */
static void list_page(tc_item_t *it, const char *customer, long long since_ms,
                      msp_vcall_ok_fn *on_ok) {
    time_t since = (time_t)(since_ms / 1000);
    struct tm tm;
    char d[32], path[256];
    gmtime_r(&since, &tm);
    strftime(d, sizeof(d), "%Y-%m-%dT00:00:00Z", &tm);
    snprintf(path, sizeof(path), "/tickets?customer_id=%s&created_after=%s&page=%d", customer, d,
             it->search_page);
    call(it, "GET", strdup(path), NULL, on_ok, NULL);
}

/* The marker search after a crash between claim and record: from a day before the claim. */
static void search_page(tc_item_t *it) {
    list_page(it, it->rec_customer, it->claim_at_ms - 86400000LL, search_ok);
}

/* A 404 on a known ticket: it was deleted in Syncro; forget it and DECIDE again. */
static int gone_404(void *arg, const msp_http_response_t *res) {
    tc_item_t *it = arg;
    if (res->status != 404)
        return 0;
    MSP_WARN("ticket.deleted", it->tenant,
             "fp=%.12s ticket=%lld answers 404: deleted in Syncro; starting over", it->fp,
             it->ticket_id);
    trace_add(it, "ticket_deleted", ticket_facts(it));
    it->state = TK_NONE;
    it->ticket_id = 0;
    it->rebuilt = 0;
    it->pending[0] = '\0';
    decide(it);
    return 1;
}

static void commented_ok(void *arg, msp_http_response_t *res, json_t *body) {
    tc_item_t *it = arg;
    (void)res;
    (void)body;
    finish_with(it, "comments_added");
}

static void comment_send(void *arg) {
    tc_item_t *it = arg;
    char text[1500];
    snprintf(text, sizeof(text), "The incident fired again at %s.", inc_str(it, "occurred_at"));
    call(it, "POST", id_path("/tickets/%lld/comment", it->ticket_id),
         comment_body(it, "Incident fired again", text), commented_ok, gone_404);
}

static void do_comment(tc_item_t *it) { set_pending(it, "comment", comment_send); }

/* The ticket of a GET /tickets?number= answer: the one with our ticket id (or NULL). */
static const json_t *listed_ticket(const tc_item_t *it, const json_t *body) {
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(body, "tickets"), i, t) {
        if (json_id(json_object_get(t, "id")) == it->ticket_id)
            return t;
    }
    return NULL;
}

static void comment_check_of(tc_item_t *it, const json_t *t) {
    char marker[128];
    snprintf(marker, sizeof(marker), "%s%s", MSP_EVENT_MARKER, it->eid);
    if (t && has_comment_with(t, marker)) {
        finish_with(it, "comments_added");
        return;
    }
    do_comment(it);
}

/*
 * Did our comment land before a crash? Read through the ticket list filtered by number, which
 * "Tickets - List/Search" allows — the portals' incident token has no "Tickets - View Details"
 * (GET /tickets/{id}), and ticketing must work with exactly that token (docs/setup.md).
 */
static void comment_check_ok(void *arg, msp_http_response_t *res, json_t *body) {
    (void)res;
    comment_check_of(arg, listed_ticket(arg, body));
}

static void comment_check_one_ok(void *arg, msp_http_response_t *res, json_t *body) {
    (void)res;
    comment_check_of(arg, ticket_of(body));
}

static void reopened_ok(void *arg, msp_http_response_t *res, json_t *body) {
    tc_item_t *it = arg;
    (void)res;
    const json_t *t = ticket_of(body);
    const char *st = t ? json_string_value(json_object_get(t, "status")) : NULL;
    msp_utf8_copy(it->last_status, sizeof(it->last_status),
                  st ? st : cfg_str(it->rule, "status", "New"));
    it->state = TK_OPEN;
    it->resolved_at_ms = 0;
    char k[256];
    msp_key(k, sizeof(k), it->tenant, "ticketing:stats");
    /* best effort, like the other counters */
    msp_aredis_cmd(it->tc->aredis, NULL, NULL, "HINCRBY %s tickets_reopened 1", k);
    MSP_INFO("ticket.reopened", it->tenant, "fp=%.12s ticket=%lld", it->fp, it->ticket_id);
    json_t *f = ticket_facts(it);
    json_object_set_new(f, "ticket_status", json_string(it->last_status));
    trace_add(it, "reopened", f);
    do_comment(it);
}

static void resolved_ok(void *arg, msp_http_response_t *res, json_t *body) {
    tc_item_t *it = arg;
    (void)res;
    (void)body;
    it->state = TK_RESOLVED;
    it->resolved_at_ms = msp_wall_ms();
    msp_utf8_copy(it->last_status, sizeof(it->last_status),
                  cfg_str(it->config, "resolve_status", "Resolved"));
    MSP_INFO("ticket.resolved", it->tenant, "fp=%.12s ticket=%lld", it->fp, it->ticket_id);
    finish_with(it, "tickets_resolved");
}

static void left_open_ok(void *arg, msp_http_response_t *res, json_t *body) {
    tc_item_t *it = arg;
    (void)res;
    (void)body;
    finish_with(it, "resolve_skipped_touched");
}

/* The "left open" comment (it->left_why says why), once its pending marker is written. */
static void left_open_send(void *arg) {
    tc_item_t *it = arg;
    char text[600];
    snprintf(text, sizeof(text),
             "The incident was resolved in the portal at %s. The ticket was left as it is "
             "because %s since mspsync last updated it.",
             inc_str(it, "occurred_at"), it->left_why);
    call(it, "POST", id_path("/tickets/%lld/comment", it->ticket_id),
         comment_body(it, "Incident resolved", text), left_open_ok, gone_404);
}

/* The resolve itself, once its pending marker is written. */
static void resolve_send(void *arg) {
    tc_item_t *it = arg;
    call(it, "PUT", id_path("/tickets/%lld", it->ticket_id),
         json_pack("{s:s}", "status", cfg_str(it->config, "resolve_status", "Resolved")),
         resolved_ok, gone_404);
}

/* GET before auto-resolving: resolve only an untouched ticket. */
static void resolve_check_ok(void *arg, msp_http_response_t *res, json_t *body) {
    tc_item_t *it = arg;
    (void)res;
    const json_t *t = ticket_of(body);
    const char *target = cfg_str(it->config, "resolve_status", "Resolved");
    const char *st = t ? json_string_value(json_object_get(t, "status")) : NULL;
    if (st && !strcmp(st, target) && (pending_is(it, "resolve") || it->rebuilt)) {
        resolved_ok(it, NULL, NULL); /* our own PUT landed before a crash */
        return;
    }
    char marker[128];
    snprintf(marker, sizeof(marker), "%s%s", MSP_EVENT_MARKER, it->eid);
    if (t && (pending_is(it, "comment") || it->rebuilt) && has_comment_with(t, marker)) {
        left_open_ok(it, NULL, NULL); /* our "left open" comment landed before a crash */
        return;
    }
    if (t && it->rebuilt && later_event_on(it, t)) {
        MSP_INFO("ticket.resolve_superseded", it->tenant,
                 "fp=%.12s ticket=%lld: an event that occurred after this resolve is on the "
                 "ticket; the resolve was applied before Redis lost its state, nothing to do",
                 it->fp, it->ticket_id);
        finish_with(it, NULL);
        return;
    }
    const char *why = NULL;
    if (!t) why = "the ticket could not be read";
    else if (!st || strcmp(st, it->last_status) != 0) why = "its status was changed";
    else if (it->assignee > 0 && json_id(json_object_get(t, "user_id")) != it->assignee)
        why = "it was reassigned";
    else if (it->assignee <= 0 && json_id(json_object_get(t, "user_id")) > 0)
        why = "it was assigned to a technician";
    else {
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(t, "comments"), i, c) {
            const char *b = json_string_value(json_object_get(c, "body"));
            if (!b || (!strstr(b, MSP_INCIDENT_MARKER) && !strstr(b, MSP_EVENT_MARKER))) {
                why = "a technician commented on it";
                break;
            }
        }
    }
    if (why) {
        MSP_INFO("ticket.left_open", it->tenant, "fp=%.12s ticket=%lld: %s", it->fp, it->ticket_id,
                 why);
        it->left_why = why;
        set_pending(it, "comment", left_open_send);
        return;
    }
    set_pending(it, "resolve", resolve_send);
}

/* ----------------------------------------------------------------- DECIDE */

/* Claim a new ticket (the next generation) in the record, then create it. */
static void claim_and_create(tc_item_t *it) {
    it->gen++;
    it->state = TK_CREATING;
    it->rebuilt = 0;
    it->ticket_id = it->ticket_number = it->resolved_at_ms = 0;
    it->claim_at_ms = msp_wall_ms();
    if (it->customer_id[0])
        snprintf(it->rec_customer, sizeof(it->rec_customer), "%s", it->customer_id);
    it->assignee = cfg_int(it->rule, "assignee_user_id", 0);
    msp_utf8_copy(it->last_status, sizeof(it->last_status), cfg_str(it->rule, "status", "New"));
    trace_add(it, "create",
              json_pack("{s:s,s:I,s:s?,s:s?}", "customer_id", it->rec_customer, "gen",
                        (json_int_t)it->gen, "priority", ticket_priority(it), "status",
                        it->last_status));
    do_create(it);
}

static void reopen_send(void *arg) {
    tc_item_t *it = arg;
    call(it, "PUT", id_path("/tickets/%lld", it->ticket_id),
         json_pack("{s:s}", "status", cfg_str(it->rule, "status", "New")), reopened_ok, gone_404);
}

static void reopen(tc_item_t *it) { set_pending(it, "reopen", reopen_send); }

/*
 * A rebuilt record (no events set) about to be reopened: an event whose comment is on the ticket
 * was handled before the loss (the reopen comes before its comment), and a later one resolved it
 * again; nothing to do. Otherwise reopen.
 */
static void reopen_check_ok(void *arg, msp_http_response_t *res, json_t *body) {
    tc_item_t *it = arg;
    (void)res;
    char marker[128];
    snprintf(marker, sizeof(marker), "%s%s", MSP_EVENT_MARKER, it->eid);
    const json_t *t = listed_ticket(it, body);
    if (t && has_comment_with(t, marker)) {
        finish_with(it, NULL);
        return;
    }
    reopen(it);
}

/* The facts of the event as LOAD left them, then the table's action (decide.h). */
static void decide(void *arg) {
    tc_item_t *it = arg;
    tc_facts_t f = {.state = it->state,
                    .open = !strcmp(it->status, "open"),
                    .mapped = it->customer_id[0] || it->rec_customer[0],
                    .pending_comment = pending_is(it, "comment") || it->rebuilt,
                    .auto_resolve = cfg_bool(it->config, "auto_resolve", 0),
                    .now_ms = msp_wall_ms(),
                    .resolved_at_ms = it->resolved_at_ms,
                    .reopen_window_ms = cfg_int(it->config, "reopen_window_days", 7) * 86400000LL};
    switch (tc_decide(&f)) {
    case TC_DO_NOTHING: finish_with(it, NULL); return;
    case TC_DO_SKIP_DISABLED: finish_with(it, "resolve_skipped_disabled"); return;
    case TC_DO_SEARCH:
        if (!it->search_page) it->search_page = 1;
        search_page(it);
        return;
    case TC_DO_UNMAPPED: unmapped(it); return;
    case TC_DO_CREATE: claim_and_create(it); return;
    case TC_DO_COMMENT: do_comment(it); return;
    case TC_DO_COMMENT_CHECK:
        if (it->ticket_number > 0)
            call(it, "GET", id_path("/tickets?number=%lld&all_comments=true", it->ticket_number),
                 NULL, comment_check_ok, gone_404);
        else /* a record without the number: only the ticket itself tells */
            call(it, "GET", id_path("/tickets/%lld", it->ticket_id), NULL, comment_check_one_ok,
                 gone_404);
        return;
    case TC_DO_RESOLVE_CHECK:
        call(it, "GET", id_path("/tickets/%lld", it->ticket_id), NULL, resolve_check_ok, gone_404);
        return;
    case TC_DO_REOPEN:
        if (it->rebuilt && it->ticket_number > 0) /* a replay may have reopened it already */
            call(it, "GET", id_path("/tickets?number=%lld&all_comments=true", it->ticket_number),
                 NULL, reopen_check_ok, gone_404);
        else
            reopen(it);
        return;
    }
}

/* ------------------------------------------------------------ RESCAN */

/*
 * After a Redis loss the ticket records are gone, and a miss no longer means "no ticket". While
 * the loss is recent (within the lookback), the first miss of a Syncro customer lists that
 * customer's tickets created within the lookback and rebuilds a record for each one whose first
 * comment carries our incident marker (the highest generation per fingerprint), then notes the
 * customer as rescanned for this epoch: later misses of that customer are new incidents. The
 * lock only spares a second replica the same calls; two scans write the same records.
 */
#define RESCAN_LOCK_MS 15000

/* How far back a lost record can matter: the reopen window or the events' lifetime. */
static long long lookback_ms(const tc_item_t *it) {
    long long reopen = cfg_int(it->config, "reopen_window_days", 7) * 86400000LL;
    return reopen > EVENTS_TTL_S * 1000LL ? reopen : EVENTS_TTL_S * 1000LL;
}

static void rescan_key(const tc_item_t *it, char *buf, size_t size) {
    msp_key(buf, size, it->tenant, "ticketing:rescan_lock:%s", it->customer_id);
}

static void rescan_page(tc_item_t *it);

/* fp and generation of an "mspsync-incident: <fp>/<gen>" marker in text. @returns 1 or 0. */
static int marker_of(const char *text, char fp[65], long long *gen) {
    const char *p = text ? strstr(text, MSP_INCIDENT_MARKER) : NULL;
    if (!p)
        return 0;
    p += strlen(MSP_INCIDENT_MARKER);
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", p[i]) || !p[i])
            return 0;
    if (p[64] != '/')
        return 0;
    char *end;
    *gen = strtoll(p + 65, &end, 10);
    if (end == p + 65 || *gen <= 0)
        return 0;
    memcpy(fp, p, 64);
    fp[64] = '\0';
    return 1;
}

/* The time a rebuilt resolved ticket was resolved: resolved_at, else updated_at, else now. */
static long long resolved_time(const json_t *t) {
    int64_t ms;
    const char *at = json_string_value(json_object_get(t, "resolved_at"));
    if (at && msp_rfc3339_parse(at, &ms) == 0)
        return ms;
    at = json_string_value(json_object_get(t, "updated_at"));
    if (at && msp_rfc3339_parse(at, &ms) == 0)
        return ms;
    return msp_wall_ms();
}

/* Write the record of a rebuilt ticket unless the fingerprint has one (written since the loss). */
static const char REBUILD_LUA[] =
    "if redis.call('HEXISTS', KEYS[1], 'state') == 1 then return 0 end "
    "redis.call('HSET', KEYS[1], 'state', ARGV[1], 'gen', ARGV[2], 'ticket_id', ARGV[3], "
    "'ticket_number', ARGV[4], 'customer_id', ARGV[5], 'last_status', ARGV[6], "
    "'resolved_at_ms', ARGV[7], 'assignee', ARGV[8], 'claim_at_ms', '0', 'pending', '', "
    "'rebuilt', '1') "
    "return 1";

static const char UNLOCK_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1";

static void rescan_write(void *arg);

static void rescan_written(void *arg, redisReply *r, const char *why) {
    tc_item_t *it = arg;
    if (item_left(it))
        return;
    size_t n = json_object_size(it->scan);
    if (!tx_clean(r) || r->elements != n + 2) {
        MSP_WARN("redis.rescan_failed", it->tenant,
                 "writing rebuilt ticket records failed (%s); retrying", answer_why(r, why));
        wait_then(it, 1000, rescan_write);
        return;
    }
    int rebuilt = 0;
    for (size_t i = 0; i < n; i++)
        if (r->element[i]->type == REDIS_REPLY_INTEGER)
            rebuilt += (int)r->element[i]->integer;
    MSP_INFO("ticket.rescanned", it->tenant,
             "customer=%s pages=%d tickets_with_marker=%zu records_rebuilt=%d (Redis lost its "
             "state; records written since were kept)",
             it->customer_id, it->search_page, n, rebuilt);
    json_decref(it->scan);
    it->scan = NULL;
    it->search_page = 0;
    wait_then(it, 0, item_load);
}

/* The scan is complete: the records, the customer's mark, the lock; then LOAD again. */
static void rescan_write(void *arg) {
    tc_item_t *it = arg;
    const char *target = cfg_str(it->config, "resolve_status", "Resolved");
    const char *fp;
    json_t *e;
    tc_tx_t tx = tc_tx_begin(it->tc->aredis);
    json_object_foreach(it->scan, fp, e) {
        const json_t *t = json_object_get(e, "ticket");
        const char *st = json_string_value(json_object_get(t, "status"));
        int resolved = st && !strcmp(st, target);
        char k[300], gen[32], tid[32], num[32], cust[32], res[32], asg[32], status[STATUS_MAX + 1];
        msp_key(k, sizeof(k), it->tenant, "tk:%s", fp);
        snprintf(gen, sizeof(gen), "%lld",
                 (long long)json_integer_value(json_object_get(e, "gen")));
        snprintf(tid, sizeof(tid), "%lld", json_id(json_object_get(t, "id")));
        snprintf(num, sizeof(num), "%lld", json_id(json_object_get(t, "number")));
        snprintf(cust, sizeof(cust), "%lld", json_id(json_object_get(t, "customer_id")));
        snprintf(res, sizeof(res), "%lld", resolved ? resolved_time(t) : 0LL);
        snprintf(asg, sizeof(asg), "%lld", json_id(json_object_get(t, "user_id")));
        msp_utf8_copy(status, sizeof(status), st ? st : "");
        TC_TX(&tx, "EVAL %s 1 %s %s %s %s %s %s %s %s %s", REBUILD_LUA, k,
              state_names[resolved ? TK_RESOLVED : TK_OPEN], gen, tid, num, cust, status, res, asg);
    }
    char km[256], kl[300];
    msp_key(km, sizeof(km), it->tenant, "ticketing:rescanned");
    rescan_key(it, kl, sizeof(kl));
    TC_TX(&tx, "HSET %s %s %s", km, it->customer_id, it->epoch);
    TC_TX(&tx, "EVAL %s 1 %s %s", UNLOCK_LUA, kl, it->scan_lock);
    if (tc_tx_exec(&tx, rescan_written, it) != 0)
        redis_wait(it, 1000, rescan_write);
}

static void rescan_ok(void *arg, msp_http_response_t *res, json_t *body) {
    tc_item_t *it = arg;
    (void)res;
    long long cust = strtoll(it->customer_id, NULL, 10);
    size_t i, j;
    json_t *t;
    const json_t *c;
    json_array_foreach(json_object_get(body, "tickets"), i, t) {
        if (json_id(json_object_get(t, "customer_id")) != cust)
            continue;
        char fp[65];
        long long gen = 0;
        int found = 0;
        json_array_foreach(json_object_get(t, "comments"), j, c) {
            if ((found = marker_of(json_string_value(json_object_get(c, "body")), fp, &gen)))
                break;
        }
        if (!found)
            continue;
        json_t *have = json_object_get(it->scan, fp);
        if (have && json_integer_value(json_object_get(have, "gen")) >= gen)
            continue; /* a later generation of the incident, or the same ticket again */
        json_object_set_new(it->scan, fp,
                            json_pack("{s:I, s:O}", "gen", (json_int_t)gen, "ticket", t));
    }
    int total = (int)cfg_int(json_object_get(body, "meta"), "total_pages", 1);
    size_t n = json_array_size(json_object_get(body, "tickets"));
    if (n > 0 && it->search_page < total) {
        if (it->search_page < it->tc->conf.search_max_pages) {
            it->search_page++;
            rescan_page(it);
            return;
        }
        MSP_WARN("ticket.rescan_truncated", it->tenant,
                 "customer=%s: %d pages of tickets, searched %lld (MSPSYNC_SEARCH_MAX_PAGES); "
                 "an incident whose ticket is older may get a second one",
                 it->customer_id, total, it->tc->conf.search_max_pages);
    }
    rescan_write(it);
}

static void rescan_page(tc_item_t *it) {
    char k[300];
    rescan_key(it, k, sizeof(k));
    /* renewed per page, not waited for; lost: harmless */
    msp_aredis_cmd(it->tc->aredis, NULL, NULL, "SET %s %s XX PX %d", k, it->scan_lock,
                   RESCAN_LOCK_MS);
    list_page(it, it->customer_id, it->restored_at_ms - lookback_ms(it), rescan_ok);
}

static void rescan_locked(void *arg, redisReply *r, const char *why) {
    tc_item_t *it = arg;
    (void)why;
    if (item_left(it))
        return;
    if (!r || r->type != REDIS_REPLY_STATUS) { /* another holder, or no answer */
        wait_then(it, 250, item_load);
        return;
    }
    MSP_INFO("ticket.rescan", it->tenant,
             "customer=%s: Redis lost its ticket records; looking for this customer's tickets "
             "by their markers before deciding",
             it->customer_id);
    json_decref(it->scan);
    it->scan = json_object();
    it->search_page = 1;
    rescan_page(it);
}

/* Claim the customer's rescan; another holder: wait, LOAD again (its mark ends the wait). */
static void rescan_start(tc_item_t *it) {
    char k[300];
    rescan_key(it, k, sizeof(k));
    if (msp_random_hex(it->scan_lock, 16) != 0 ||
        msp_aredis_cmd(it->tc->aredis, rescan_locked, it, "SET %s %s NX PX %d", k, it->scan_lock,
                       RESCAN_LOCK_MS) != 0)
        redis_wait(it, 250, item_load);
}

/* ------------------------------------------------------------------- LOAD */

static void complete_step(void *arg) { item_complete(arg); }

/*
 * Count a skipped event: `skipped` (every reason, as before) and the reason's own counter; then
 * the event is complete. A Redis error loses the count, not the event (the counters are best
 * effort, like the normalizer's stats).
 */
static void skip_finish(tc_item_t *it, const char *reason) {
    char ks[256];
    msp_key(ks, sizeof(ks), it->tenant, "ticketing:stats");
    trace_add(it, reason,
              json_pack("{s:s?,s:s?}", "severity", inc_str(it, "severity"), "alert_type",
                        inc_str(it, "alert_type")));
    tc_tx_t t = tc_tx_begin(it->tc->aredis);
    TC_TX(&t, "HINCRBY %s skipped 1", ks);
    TC_TX(&t, "HINCRBY %s %s 1", ks, reason);
    append_trace(it, &t);
    it->after_write = complete_step;
    if (tc_tx_exec(&t, counts_written, it) != 0)
        item_complete(it); /* the count is lost, not the event */
}

static int hash_field(const redisReply *r, size_t i, char *out, size_t size) {
    out[0] = '\0';
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_STRING) return 0;
    msp_utf8_copy(out, size, r->element[i]->str);
    return 1;
}

static void unmapped(tc_item_t *it) {
    char k1[256], k2[256];
    const char *org = inc_str(it, "org_id"), *name = inc_str(it, "org_name");
    msp_key(k1, sizeof(k1), it->tenant, "ticketing:unmapped");
    msp_key(k2, sizeof(k2), it->tenant, "ticketing:unmapped_count");
    /* the org's suggestion and count: best effort, not waited for */
    msp_aredis_cmd(it->tc->aredis, NULL, NULL, "HSET %s %s %s", k1, org, name ? name : "");
    msp_aredis_cmd(it->tc->aredis, NULL, NULL, "HINCRBY %s %s 1", k2, org);
    char reason[600];
    snprintf(reason, sizeof(reason),
             "no Syncro customer mapped for org %s (%s); map it with PUT "
             "/v1/tenants/%s/ticketing/orgs/%s, then replay this dead letter",
             org, name ? name : "no name", it->tenant, org);
    trace_add(it, "unmapped", json_pack("{s:s,s:s?}", "org_id", org, "org_name", name));
    dead_letter(it, reason);
}

/* The answers of item_load's one transaction, in the order they were asked for. */
enum {
    LD_EPOCH,
    LD_SEEN,
    LD_CONFIG,
    LD_TICKET,
    LD_ORGMAP,
    LD_HELD,
    LD_PAUSED,
    LD_SYNCRO,
    LD_STATE,
    LD_N
};

/* The mapped Syncro customer of an org mapping reply (out "" when none). */
static void orgmap_customer(const redisReply *r, char *out, size_t size) {
    json_t *m = r->type == REDIS_REPLY_STRING ? json_loads(r->str, 0, NULL) : NULL;
    long long cid = m ? cfg_int(m, "customer_id", 0) : 0;
    out[0] = '\0';
    if (cid > 0)
        snprintf(out, size, "%lld", cid);
    json_decref(m);
}

/*
 * The state marker, read first and last in LOAD's transaction: the same epoch both times means
 * every read between was of a restored (or never lost) Redis. Missing: Redis lost its state and
 * the gateway has not restored it; nothing is decided (every read would be an empty one).
 * A loss, seen as a missing or a changed marker, first commits the offsets of the events finished
 * before it: their records in Redis are gone, and a restart must not replay them against the
 * rebuilt ones. The event also waits until the held-incident index is rebuilt for the epoch
 * (the third reply). @returns 1 when the event must wait, 0 (it->epoch, it->restored_at_ms set).
 */
static int state_wait(tc_item_t *it, const redisReply *first, const redisReply *last) {
    tc_t *tc = it->tc;
    const redisReply *e = last->element[0], *at = last->element[1], *held = last->element[2];
    int lost = first->type != REDIS_REPLY_STRING || e->type != REDIS_REPLY_STRING ||
               strcmp(first->str, e->str) != 0;
    int changed = !lost && tc->epoch_seen[0] && strcmp(tc->epoch_seen, e->str) != 0;
    if ((lost || changed) && !tc->lost_noted) {
        tc->lost_noted = 1;
        if (tc->worker.consumer)
            rd_kafka_commit(tc->worker.consumer, NULL, 1);
        MSP_WARN("redis.state_lost", NULL,
                 "Redis lost its state: incidents wait for the gateway's restore, then lost "
                 "ticket records are looked for in Syncro");
    }
    if (lost)
        return 1;
    tc->lost_noted = 0;
    snprintf(tc->epoch_seen, sizeof(tc->epoch_seen), "%s", e->str);
    snprintf(it->epoch, sizeof(it->epoch), "%s", e->str);
    it->restored_at_ms = at->type == REDIS_REPLY_STRING ? strtoll(at->str, NULL, 10) : 0;
    /* The held-incident index is not rebuilt for this epoch yet (hold.c): a tenant whose index
     * was lost would let this event overtake its held ones. */
    return held->type != REDIS_REPLY_STRING || strcmp(held->str, e->str) != 0;
}

/* LOAD's facts are in the item: the GATE, then DECIDE (or what the record says instead). */
static void load_decide(tc_item_t *it) {
    tc_t *tc = it->tc;
    const int open = !strcmp(it->status, "open");
    tc_gate_facts_t gf = {.new_ticket = it->state == TK_NONE && open,
                          .rule_create = !it->rule || cfg_bool(it->rule, "create", 1),
                          .severity = inc_str(it, "severity"),
                          .min_severity = cfg_str(it->rule, "min_severity",
                                                  cfg_str(it->config, "min_severity", NULL))};
    tc_gate_t gate = tc_gate(&gf);
    if (gate != TC_GATE_PASS) {
        const int by_rule = gate == TC_GATE_RULE;
        msp_metric_add(tc->metrics, "mspsync_ticket_creator_events_total",
                       by_rule ? "outcome=\"rule_off\"" : "outcome=\"under_severity\"", 1);
        skip_finish(it, by_rule ? "skipped_rule" : "skipped_severity");
        return;
    }

    /* Nothing to call Syncro for? Then neither mapping nor integration matters. */
    if (it->state == TK_NONE && !open) {
        finish_with(it, NULL);
        return;
    }
    if ((it->state == TK_RESOLVED && !open) ||
        (it->state == TK_OPEN && !open && !cfg_bool(it->config, "auto_resolve", 0))) {
        decide(it);
        return;
    }

    if (it->state == TK_NONE || (it->state == TK_RESOLVED && open)) {
        /* A new ticket may be needed: the org must be mapped (now, not when first seen). */
        snprintf(it->customer_id, sizeof(it->customer_id), "%s", it->map_customer);
        if (!it->customer_id[0] && it->state == TK_NONE) {
            unmapped(it);
            return;
        }
        if (!it->customer_id[0])
            snprintf(it->customer_id, sizeof(it->customer_id), "%s", it->rec_customer);
    }

    if (it->syncro_rc < 0) {
        wait_then(it, 1000, item_load);
        return;
    }
    if (it->syncro_rc > 0) {
        char reason[700];
        snprintf(reason, sizeof(reason), "cannot ticket: %s", it->syncro_err);
        dead_letter(it, reason);
        return;
    }
    use_syncro(it);
    decide(it);
}

/*
 * The answer whether the customer was rescanned under this epoch: not yet (or by an older
 * epoch) → RESCAN; yes → on to the GATE; no answer → wait and LOAD again.
 */
static void rescan_checked(void *arg, redisReply *r, const char *why) {
    tc_item_t *it = arg;
    (void)why;
    if (item_left(it))
        return;
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        wait_then(it, 1000, item_load);
        return;
    }
    if (r->type == REDIS_REPLY_STRING && !strcmp(r->str, it->epoch)) {
        /* The LOAD that found no record may be older than the rescan's records (other events
         * run meanwhile): LOAD again, and decide on what it finds. */
        snprintf(it->rescanned_customer, sizeof(it->rescanned_customer), "%s", it->customer_id);
        snprintf(it->rescanned_epoch, sizeof(it->rescanned_epoch), "%s", it->epoch);
        wait_then(it, 0, item_load);
        return;
    }
    if (it->syncro_rc < 0) {
        wait_then(it, 1000, item_load);
    } else if (it->syncro_rc > 0) {
        char reason[700];
        snprintf(reason, sizeof(reason), "cannot ticket: %s", it->syncro_err);
        dead_letter(it, reason);
    } else {
        use_syncro(it);
        rescan_start(it);
    }
}

/*
 * No record: after a recent Redis loss that may only mean it was lost. Whether a miss of the
 * customer must first look in Syncro: Redis was restored within the lookback and the customer
 * was not rescanned since (asked of Redis: rescan_checked goes on). A LOAD made after the
 * customer was seen rescanned under this epoch decides at once: the rescan's records and its
 * mark are written in one transaction, so that LOAD saw them.
 */
static void load_rescan(tc_item_t *it) {
    if (it->state != TK_NONE || !it->map_customer[0] || it->restored_at_ms <= 0 ||
        msp_wall_ms() - it->restored_at_ms > lookback_ms(it) ||
        (!strcmp(it->rescanned_customer, it->map_customer) &&
         !strcmp(it->rescanned_epoch, it->epoch))) {
        load_decide(it);
        return;
    }
    snprintf(it->customer_id, sizeof(it->customer_id), "%s", it->map_customer);
    char k[256];
    msp_key(k, sizeof(k), it->tenant, "ticketing:rescanned");
    if (msp_aredis_cmd(it->tc->aredis, rescan_checked, it, "HGET %s %s", k, it->customer_id) != 0)
        redis_wait(it, 1000, item_load);
}

/* LOAD's one answer: EXEC's array (the order of LD_*). */
static void loaded(void *arg, redisReply *x, const char *why) {
    tc_item_t *it = arg;
    tc_t *tc = it->tc;
    (void)why;
    if (item_left(it))
        return;
    if (!tc_tx_ok(x, LD_N) || !tx_clean(x)) {
        wait_then(it, 1000, item_load);
        return;
    }
    redisReply **rep = x->element, *r;
    if ((rep[LD_EPOCH]->type != REDIS_REPLY_STRING && rep[LD_EPOCH]->type != REDIS_REPLY_NIL) ||
        rep[LD_STATE]->type != REDIS_REPLY_ARRAY || rep[LD_STATE]->elements != 3 ||
        rep[LD_SEEN]->type != REDIS_REPLY_INTEGER ||
        (rep[LD_CONFIG]->type != REDIS_REPLY_STRING && rep[LD_CONFIG]->type != REDIS_REPLY_NIL) ||
        rep[LD_TICKET]->type != REDIS_REPLY_ARRAY || rep[LD_TICKET]->elements != 11 ||
        (rep[LD_ORGMAP]->type != REDIS_REPLY_STRING && rep[LD_ORGMAP]->type != REDIS_REPLY_NIL) ||
        (rep[LD_HELD]->type != REDIS_REPLY_STRING && rep[LD_HELD]->type != REDIS_REPLY_NIL) ||
        (rep[LD_PAUSED]->type != REDIS_REPLY_STRING && rep[LD_PAUSED]->type != REDIS_REPLY_NIL)) {
        wait_then(it, 1000, item_load);
        return;
    }
    if (state_wait(it, rep[LD_EPOCH], rep[LD_STATE])) {
        wait_then(it, 1000, item_load);
        return;
    }

    /* Handled before (a replay after the offset commit was lost)? */
    if (rep[LD_SEEN]->integer == 1) {
        msp_metric_add(tc->metrics, "mspsync_ticket_creator_events_total", "outcome=\"duplicate\"", 1);
        item_complete(it);
        return;
    }

    json_decref(it->config);
    it->config = rep[LD_CONFIG]->type == REDIS_REPLY_STRING ? json_loads(rep[LD_CONFIG]->str, 0, NULL)
                                                            : NULL;
    if (!it->config) it->config = json_object();   /* never configured: disabled */

    /* HOLD: paused, switched off with "hold", or (from incidents) others of the tenant wait. */
    const int enabled = cfg_bool(it->config, "enabled", 0);
    const char *hold_why = NULL;
    if (rep[LD_PAUSED]->type == REDIS_REPLY_STRING && !strcmp(rep[LD_PAUSED]->str, "1"))
        hold_why = "ticketing paused: Syncro refused the key (401/403)";
    else if (!enabled && !strcmp(cfg_str(it->config, "when_disabled", "skip"), "hold"))
        hold_why = "ticketing switched off (when_disabled: hold)";
    else if (!it->released && rep[LD_HELD]->type == REDIS_REPLY_STRING)
        hold_why = "incidents of the tenant held before this one are not released yet";
    if (hold_why) {
        hold(it, hold_why);
        return;
    }
    if (!enabled) {
        it->state = TK_NONE;
        msp_metric_add(tc->metrics, "mspsync_ticket_creator_events_total", "outcome=\"disabled\"", 1);
        skip_finish(it, "skipped_disabled");
        return;
    }
    const json_t *rules = json_object_get(it->config, "rules");
    it->rule = json_object_get(rules, inc_str(it, "alert_type"));
    if (!it->rule) it->rule = json_object_get(rules, "*");

    /* The ticket record. */
    r = rep[LD_TICKET];
    char v[256];
    it->state = TK_NONE;
    if (hash_field(r, 0, v, sizeof(v)))
        for (int s = 0; s < 4; s++)
            if (!strcmp(v, state_names[s])) it->state = (tk_state_t)s;
    it->gen = hash_field(r, 1, v, sizeof(v)) ? strtoll(v, NULL, 10) : 0;
    it->ticket_id = hash_field(r, 2, v, sizeof(v)) ? strtoll(v, NULL, 10) : 0;
    it->ticket_number = hash_field(r, 3, v, sizeof(v)) ? strtoll(v, NULL, 10) : 0;
    hash_field(r, 4, it->rec_customer, sizeof(it->rec_customer));
    hash_field(r, 5, it->last_status, sizeof(it->last_status));
    it->resolved_at_ms = hash_field(r, 6, v, sizeof(v)) ? strtoll(v, NULL, 10) : 0;
    it->assignee = hash_field(r, 7, v, sizeof(v)) ? strtoll(v, NULL, 10) : 0;
    it->claim_at_ms = hash_field(r, 8, v, sizeof(v)) ? strtoll(v, NULL, 10) : 0;
    hash_field(r, 9, it->pending, sizeof(it->pending));
    it->rebuilt = hash_field(r, 10, v, sizeof(v)) && !strcmp(v, "1");
    if ((it->state == TK_OPEN || it->state == TK_RESOLVED) && it->ticket_id <= 0)
        it->state = TK_NONE;

    /* What the rest may need, kept: the answers are gone once this callback returns. */
    orgmap_customer(rep[LD_ORGMAP], it->map_customer, sizeof(it->map_customer));
    it->syncro_rc =
        msp_syncro_integration_from_reply(rep[LD_SYNCRO], "no answer", &tc->key, it->tenant,
                                          &it->syncro, it->syncro_err, sizeof(it->syncro_err));
    load_rescan(it);
}

/*
 * Everything an event may need, read in one transaction (it used to be five round trips, then
 * one blocking pipeline; now the loop goes on while Redis answers): whether the event id was
 * handled, the ticketing config, the ticket record, the org mapping and the Syncro integration,
 * between two reads of the state marker. What this event turns out not to need is not used.
 */
static void item_load(void *arg) {
    tc_item_t *it = arg;
    char k[300], ks[64], ka[64], kd[64];
    msp_key(ks, sizeof(ks), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(ka, sizeof(ka), "_", MSP_STATE_RESTORED_AT_SUFFIX);
    msp_key(kd, sizeof(kd), "_", TC_STATE_HELD_SUFFIX);
    tc_tx_t t = tc_tx_begin(it->tc->aredis);
    TC_TX(&t, "GET %s", ks);
    tk_key(it, k, sizeof(k), ":events");
    TC_TX(&t, "SISMEMBER %s %s", k, it->eid);
    msp_key(k, sizeof(k), it->tenant, "ticketing:config");
    TC_TX(&t, "GET %s", k);
    tk_key(it, k, sizeof(k), "");
    TC_TX(&t,
          "HMGET %s state gen ticket_id ticket_number customer_id last_status resolved_at_ms "
          "assignee claim_at_ms pending rebuilt",
          k);
    msp_key(k, sizeof(k), it->tenant, "ticketing:orgmap");
    TC_TX(&t, "HGET %s %s", k, inc_str(it, "org_id"));
    msp_key(k, sizeof(k), it->tenant, "ticketing:held");
    TC_TX(&t, "HGET %s to", k);
    msp_key(k, sizeof(k), it->tenant, "status:syncro");
    TC_TX(&t, "HGET %s ticketing_paused", k);
    msp_key(k, sizeof(k), it->tenant, "integration:syncro");
    const char *argv[8] = {"HMGET", k};
    int argc = 2;
    for (const char *const *f = msp_syncro_integration_fields; *f && argc < 8; f++)
        argv[argc++] = *f;
    tc_tx_argv(&t, argc, argv, NULL);
    TC_TX(&t, "MGET %s %s %s", ks, ka, kd);
    if (tc_tx_exec(&t, loaded, it) != 0)
        redis_wait(it, 1000, item_load);
}

/* ------------------------------------------------------------------ intake */

/*
 * Read the incident of msg into it (tenant, fingerprint, event id, status borrowed from it).
 * @returns 0, or -1 with it->bad saying why it is not a canonical incident (it->inc NULL).
 */
static int item_parse(tc_item_t *it, const rd_kafka_message_t *msg) {
    json_error_t jerr;
    it->inc = msg->len ? json_loadb(msg->payload, msg->len, 0, &jerr) : NULL;
    const char *why = NULL;
    if (!it->inc) {
        snprintf(it->bad, sizeof(it->bad), "value is not JSON%s%s", msg->len ? ": " : " (empty)",
                 msg->len ? jerr.text : "");
    } else {
        it->tenant = json_string_value(json_object_get(it->inc, "tenant"));
        it->fp = json_string_value(json_object_get(it->inc, "fingerprint"));
        it->eid = json_string_value(json_object_get(it->inc, "event_id"));
        it->status = json_string_value(json_object_get(it->inc, "status"));
        if (!it->tenant || !it->tenant[0] || strlen(it->tenant) > 128) why = "tenant";
        else if (!it->fp || strlen(it->fp) != 64) why = "fingerprint";
        else if (!it->eid || strlen(it->eid) != 64) why = "event_id";
        else if (!it->status || (strcmp(it->status, "open") && strcmp(it->status, "resolved")))
            why = "status";
        else if (!inc_str(it, "org_id") || !inc_str(it, "incident_id") ||
                 !inc_str(it, "alert_type") || !inc_str(it, "title") ||
                 !inc_str(it, "occurred_at") || !inc_str(it, "subject"))
            why = "incident fields";
        if (why) {
            snprintf(it->bad, sizeof(it->bad), "not a canonical incident: bad or missing %s", why);
            json_decref(it->inc);
            it->inc = NULL;
            it->tenant = it->fp = it->eid = it->status = NULL;   /* pointed into inc */
        }
    }
    it->vc.tenant = it->tenant;
    return it->inc ? 0 : -1;
}

int tc_release_start(tc_t *tc, rd_kafka_message_t *msg, const char *tenant) {
    tc_item_t *it = calloc(1, sizeof(*it));
    if (!it)
        return -1;
    it->tc = tc;
    it->released = 1;
    it->kq.msg = msg;
    msp_vcall_init(&it->vc, &tc->vcall, &released_vcall_ops, it, NULL);
    if (item_parse(it, msg) != 0 || strcmp(it->tenant, tenant) != 0) {
        /* It entered incidents.held as a canonical incident of this tenant; anything else is
         * not ours to release (another tenant's key hashing alike is filtered before). */
        char reason[600];
        snprintf(reason, sizeof(reason), "%s",
                 it->inc ? "a held incident of another tenant" : it->bad);
        tc->rel.item = it;
        dead_letter(it, reason);
        return 0;
    }
    tc->rel.item = it;
    trace_add(it, "released", NULL);
    wait_then(it, 0, item_load);
    return 0;
}

void tc_release_item_free(void *item) {
    tc_item_t *it = item;
    rd_kafka_message_t *m = it->kq.msg;
    item_destroy(&it->kq, NULL);
    rd_kafka_message_destroy(m);
}

void tc_accept(tc_t *tc, rd_kafka_message_t *msg) {
    tc_item_t *it = calloc(1, sizeof(*it));
    if (!it) {
        MSP_ERROR("oom", NULL, "dropping nothing: the message stays uncommitted");
        rd_kafka_message_destroy(msg);
        return;
    }
    it->tc = tc;
    msp_vcall_init(&it->vc, &tc->vcall, &vcall_ops, it, &it->kq);
    if (msp_keyq_accept(tc->worker.kq, &it->kq, msg) != 0) {
        MSP_WARN("kafka.redelivered", NULL, "partition=%d offset=%" PRId64 " already in flight",
                 (int)msg->partition, msg->offset);
        free(it);
        rd_kafka_message_destroy(msg);
        return;
    }
    if (item_parse(it, msg) != 0) {
        /* Dead-letter right away; it has no fingerprint to queue behind. */
        char reason[600];
        snprintf(reason, sizeof(reason), "%s", it->bad);
        dead_letter(it, reason);
        return;
    }
    msp_keyq_push(tc->worker.kq, &it->kq, it->fp);
}
