/*
 * work.c — one date change's way into the asset's sources.
 *
 * Per change (an item), in the order its asset's changes arrived:
 *
 *   LOAD     Redis: was this change id finished before (`wb:<asset>:done`)? Then nothing to do.
 *            For every target: the integration (its vendor row's credential load; Syncro also
 *            the integration hash's writeback_* flags) decides per changed field:
 *            write it (state "pending"), or skip it (not connected / not opted in: "skipped"
 *            with the reason; a secret that does not open: "failed"). One HSET of `wb:<asset>`
 *            records these states before any vendor call.
 *   TARGET   the targets one after the other:
 *              cwrmm:  token (msp_cwrmm_token_get) → the two datetime definitions (Redis
 *                      `cwrmm:defs`, else list them, create the missing ones; 409 = list again;
 *                      one change per tenant and process does this, the others wait for it)
 *                      → GET the endpoint's values of those attributes → fields already holding
 *                      the date are not written → ONE PUT of the rest.
 *              syncro: GET /customer_assets/{id} → properties already holding the date are not
 *                      written → PUT the whole properties hash with ours merged (NOTES.md).
 *            Every call takes a token from its account's GCRA bucket first.
 *   RECORD   per target, one MULTI: `wb:wrote` (<integration>:<id>|<field> → value, "" for a
 *            cleared field) for every field that now holds the value, and its `wb:<asset>`
 *            state (written / skipped / failed, with the change id and the time). Recorded per
 *            target, not per change, so the API shows a written target while another retries.
 *   HISTORY  every recorded outcome of a field is also an entry of the asset's history
 *            (trace.h, `trace:asset:<asset>`), queued with the states it tells of (LOAD's HSET,
 *            RECORD's MULTI): vendor, target, field, value, and written / unchanged / refused
 *            (skipped: not connected, not opted in) / dead_lettered (with the reason).
 *   FINISH   all targets recorded: no failure → one MULTI adds the change id to
 *            `wb:<asset>:done` (MSPSYNC_DONE_TTL_DAYS); a failure → the change goes to `dlq`
 *            with the reasons.
 *   JOURNAL  every step that records states (LOAD, RECORD, a retry's error, FINISH) also
 *            produces the asset's whole state to `wb.states` (state.c), the source the
 *            states are rebuilt from after a loss of Redis. The record after FINISH (or after the
 *            dead letter) is acknowledged by Kafka before the offset becomes committable (keyq)
 *            and the asset's next change runs; when Redis lost its state meanwhile, the change
 *            first writes its states again into the rebuilt hash (design.md "The write-back's
 *            state after a Redis loss").
 *
 * Redis: every command goes through the process's async connection (wb->aredis, aredis.h):
 * a step sends its commands and goes on in the callback of the last reply; what was a pipeline
 * of blocking calls is a MULTI ... EXEC on the connection (tx_* below), whose EXEC reply the step
 * reads. A missing reply (Redis down, or stalled past the limit: the connection is remade) or a
 * command that cannot be sent takes the path a Redis error always took: wait a second and do the
 * step again, the offset unstored. Commands carry the item (or its target) as their owner;
 * item_destroy cancels them, so no callback meets a freed item.
 *
 * Errors: 423/429/5xx/timeouts/transport errors (and 2xx bodies we cannot read) are retried
 * with jittered backoff, Retry-After winning, without limit: the offset stays unstored and the
 * fields stay "pending" with "error" = the description. A 401 on a ConnectWise RMM API call
 * forgets the token (msp_cwrmm_token_rejected) and tries once more with a fresh one. 401/403 from
 * the token endpoint, 403 (or a second 401) on a call, any other 4xx: the target's fields become
 * "failed", the remaining targets still run, and the change is dead-lettered (replay it with
 * `mspsync-dlq replay` after the fix; written targets are then found holding the value).
 *
 * ---------------------------------------------------------------------------------------------
 * Why a value is written at most once, also across SIGKILL
 *
 * (1) A PUT is only ever sent right after a GET of the same target, in the same attempt, showed
 *     that the field does not hold the wanted value. A failed or timed-out PUT (which may have
 *     landed) is never resent as such: the retry starts again at the GET (retry_from), so a PUT
 *     that landed is seen and not repeated.
 * (2) The offset of a change is stored only after its results are in Redis (RECORD, FINISH), so
 *     a crash anywhere before replays the change. The replay runs (1) again: a PUT that reached
 *     the vendor before the crash is found by the GET and not sent again (the field is recorded
 *     "written", because `wb:<asset>` still names this very change id).
 * (3) Changes of one asset never run concurrently within a replica (keyq), and a replica works
 *     only on partitions it owns; a revoked partition's work is abandoned at its next step.
 * (4) Offsets are committed every second in the background, so a crash can lose the stored
 *     offsets of several finished changes of one asset, say A (sets X) then B (sets Y). Without
 *     more, the replay of A would find Y, write X, and B would write Y again. The done set
 *     `wb:<asset>:done`, written in the same MULTI that finishes a change and before its offset is
 *     stored, makes the replay of A (and B) a no-op.
 * (5) A duplicate change message (same dates sent twice) finds the values in place: no PUT.
 * Remaining windows (no guarantee stronger than the vendor's): a PUT still travelling from a
 * killed process when its replacement GETs (the replacement needs seconds to rejoin the group,
 * the request was fully sent before the kill), and a partition revoked while a PUT is in flight
 * on the old owner (cooperative rebalancing makes it rare; MSPSYNC_GROUP_INSTANCE_ID avoids it).
 * ---------------------------------------------------------------------------------------------
 */
#include "wb.h"
#include "change.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/model.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"
#include "mspsync/syncro.h"
#include "mspsync/syncro_store.h"
#include "mspsync/trace.h"
#include "mspsync/vcall.h"

#define SERVICE        "write-back"
#define DEFS_ROUNDS    4

static const char *const CW_DEF_NAME[WB_NF] = {MSP_CWRMM_FIELD_PURCHASE, MSP_CWRMM_FIELD_WARRANTY};
_Static_assert(WB_NF == 2 && MSP_CWRMM_DATE_PURCHASE == 0 && MSP_CWRMM_DATE_WARRANTY == 1,
               "msp_cwrmm_date_definitions() fills the fields in wb_field_name's order");
static const char *const SY_PROP_NAME[WB_NF] = {"Purchase Date", "Warranty Expiration"};

/* What happens to one field of one target. */
typedef enum {
    R_NONE = 0,   /* the change does not touch this field */
    R_PENDING,    /* to be written */
    R_WRITTEN,    /* we wrote it (or found our own earlier write) */
    R_HELD,       /* the target already held the value: nothing written */
    R_SKIPPED,    /* not connected / not opted in */
    R_FAILED,
} res_t;

typedef struct target_s {
    const msp_vendor_t *vendor;
    char                     id[160];
    res_t                    res[WB_NF];
    int                      ours[WB_NF];  /* wb:<asset> said pending/written for this change */
    char                     why[700];         /* reason (skipped, failed) */
    struct wb_item_s *item;                    /* the change it belongs to */
    msp_vendor_cred_t cred; /* the loaded integration (owned; impl: the row's own struct) */
    msp_vendor_cred_async_t cred_op; /* its load in flight */
    int opt[WB_NF];                  /* Syncro: the integration opted into writing the field */
    msp_vcall_vendor_t cw_auth;      /* the token source of a ConnectWise RMM target */
} target_t;

typedef struct wb_item_s wb_item_t;

struct wb_item_s {
    msp_keyq_item_t kq;          /* first: keyq hands it back */
    wb_t           *wb;
    json_t         *chg;         /* the change, NULL when unreadable */
    const char     *tenant, *asset, *change_id;   /* borrowed from chg */
    int             has[WB_NF];
    char            val[WB_NF][11]; /* "YYYY-MM-DD", "" = clear */
    target_t       *tg;
    size_t          ntg, cur;
    int             nfailed;
    int waited_restore; /* logged once: the change waits for the state restore */
    char epoch[64];     /* the epoch whose Redis holds the states this change recorded */
    char jepoch[64];    /* the epoch the final journal record was read in */
    char            fail_reason[1000];
    int plan_left, plan_bad; /* LOAD: the targets' loads in flight, and whether one failed */

    /* the current ConnectWise RMM target */
    char attr[WB_NF][128];
    int  defs_cached, defs_rounds, defs_refreshed, defs_owner;
    unsigned defs_seen;          /* the owner's error this item last showed */

    msp_vcall_t vc; /* the call in progress (vcall.h), and the item's timer */
    msp_dead_letter_t dl;
};

/* Steps take the item as void *: the vendor-call engine's timer and calls hand it back so. */
static void item_load(void *arg);
static void run_target(wb_item_t *it);
static void target_done(void *arg);
static void cw_defs(void *arg);
static void cw_read(void *arg);
static void sy_read(void *arg);
static void journal_final(void *arg);

/*
 * What the write-back does per vendor, keyed by the row (vendor.h: a service's own per-vendor
 * table, never a branch on the vendor's id or name): load the target's integration and decide
 * its fields (plan), fill its call account (account), start writing (begin) — ConnectWise RMM's
 * custom fields or Syncro's asset properties. A vendor without an entry has no ops: its date
 * changes are skipped ("writing dates back to <label> is not supported").
 */
typedef struct wb_vendor_ops_s {
    int (*plan)(wb_item_t *it, target_t *t);
    void (*account)(wb_item_t *it, target_t *t, msp_vcall_account_t *a);
    void (*begin)(void *arg);
} wb_vendor_ops_t;

static int cw_plan(wb_item_t *it, target_t *t);
static int sy_plan(wb_item_t *it, target_t *t);
static void cw_account(wb_item_t *it, target_t *t, msp_vcall_account_t *a);
static void sy_account(wb_item_t *it, target_t *t, msp_vcall_account_t *a);
static void cw_begin(void *arg);

static const struct {
    const msp_vendor_t *vendor;
    wb_vendor_ops_t ops;
} VENDOR_OPS[] = {
    {&msp_vendor_syncro, {sy_plan, sy_account, sy_read}},
    {&msp_vendor_cwrmm, {cw_plan, cw_account, cw_begin}},
};

static const wb_vendor_ops_t *vendor_ops(const target_t *t) {
    static const wb_vendor_ops_t none = {NULL, NULL, NULL};
    for (size_t i = 0; i < sizeof(VENDOR_OPS) / sizeof(VENDOR_OPS[0]); i++)
        if (VENDOR_OPS[i].vendor == t->vendor)
            return &VENDOR_OPS[i].ops;
    return &none;
}

/* One item per tenant and process looks for (and creates) the definitions; the others wait for
 * the hash, so that 64 concurrent first changes do not race 64 POSTs into 63 conflicts. */
struct wb_busy_s {
    struct wb_busy_s *next;
    unsigned          seq;        /* bumped with every error the owner meets */
    char              why[700];   /* the owner's last error, shown by the waiters too */
    char              tenant[];
};

static struct wb_busy_s *defs_busy_of(const wb_item_t *it) {
    for (struct wb_busy_s *b = it->wb->defs_busy; b; b = b->next)
        if (!strcmp(b->tenant, it->tenant)) return b;
    return NULL;
}

/* ------------------------------------------------------------------ helpers */

static target_t *cur_target(wb_item_t *it) { return &it->tg[it->cur]; }

static void wb_key(const wb_item_t *it, char *buf, size_t size, const char *suffix) {
    msp_key(buf, size, it->tenant, "wb:%s%s", it->asset, suffix);
}

static const char *state_name(res_t r, int ours) {
    switch (r) {
    case R_PENDING: return "pending";
    case R_WRITTEN: return "written";
    case R_HELD: return ours ? "written" : "skipped";
    case R_SKIPPED: return "skipped";
    case R_FAILED: return "failed";
    default: return "none";
    }
}

/* The `wb:<asset>` value of one field: {"state","value","change_id","at"} plus "reason"
 * (skipped) or "error" (failed, or pending while retrying). @returns malloc'd JSON. */
static char *state_json(const wb_item_t *it, const target_t *t, int f, const char *error) {
    char at[32];
    msp_format_time(msp_wall_ms(), at, sizeof(at));
    json_t *o = json_object();
    json_object_set_new(o, "state", json_string(state_name(t->res[f], t->ours[f])));
    json_object_set_new(o, "value", it->val[f][0] ? json_string(it->val[f]) : json_null());
    json_object_set_new(o, "change_id", json_string(it->change_id));
    if (t->res[f] == R_SKIPPED) json_object_set_new(o, "reason", json_string(t->why));
    else if (t->res[f] == R_HELD && !t->ours[f])
        json_object_set_new(o, "reason", json_string("the target already holds the value"));
    else if (t->res[f] == R_FAILED) json_object_set_new(o, "error", json_string(t->why));
    else if (t->res[f] == R_PENDING && error) json_object_set_new(o, "error", json_string(error));
    json_object_set_new(o, "at", json_string(at));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ------------------------------------------------------------ Redis commands */

/*
 * A transaction of the item on the async connection: tx_begin sends MULTI, tx_cmd queues a
 * command (its QUEUED reply is not wanted), tx_end sends EXEC, whose reply goes to cb with the
 * item. A command that cannot be sent (not connected now; within one turn of the loop the
 * connection does not change, so in practice only out of memory) spoils the transaction: tx_end
 * then sends DISCARD instead and @returns -1 (cb will not run).
 */
typedef struct tx_s {
    wb_item_t *it;
    int bad;
} tx_t;

static void tx_argv(tx_t *tx, int argc, const char **argv) {
    if (!tx->bad && msp_aredis_cmdargv(tx->it->wb->aredis, NULL, tx->it, argc, argv, NULL) != 0)
        tx->bad = 1;
}

static void tx_begin(tx_t *tx, wb_item_t *it) {
    const char *argv[] = {"MULTI"};
    *tx = (tx_t){it, 0};
    tx_argv(tx, 1, argv);
    if (tx->bad)
        tx->bad = 2; /* not even the MULTI went: nothing to discard */
}

/* A command of argc strings (the arguments after argc). */
static void tx_cmd(tx_t *tx, int argc, ...) {
    const char *argv[8];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc && i < 8; i++)
        argv[i] = va_arg(ap, const char *);
    va_end(ap);
    tx_argv(tx, argc < 8 ? argc : 8, argv);
}

static int tx_end(tx_t *tx, msp_aredis_cb *cb) {
    msp_aredis_t *a = tx->it->wb->aredis;
    if (!tx->bad && msp_aredis_cmd(a, cb, tx->it, "EXEC") == 0)
        return 0;
    if (tx->bad != 2)
        msp_aredis_cmd(a, NULL, NULL, "DISCARD");
    return -1;
}

/* An EXEC reply that ran: an array (nil: aborted; NULL: no answer). */
static int exec_ran(const redisReply *r) { return r && r->type == REDIS_REPLY_ARRAY; }

/* The item's work is gone (revoked, stopping) when a reply comes: abandon it. @returns 1 gone. */
static int gone(wb_item_t *it) {
    if (!msp_vcall_gone(&it->vc))
        return 0;
    msp_vcall_abandon(&it->vc);
    return 1;
}

/* Queue "HSET wb:<asset> <integration>:<field> <state json> ..." for the fields of t in one of
 * the given results (mask of 1 << res_t) into tx, or (tx NULL) on its own, no answer wanted.
 * @returns the commands queued (0 or 1). */
static int append_states(tx_t *tx, wb_item_t *it, const target_t *t, unsigned mask,
                         const char *error) {
    char k[400], names[WB_NF][32];
    const char *argv[2 + 2 * WB_NF];
    char *vals[WB_NF] = {0};
    int argc = 0, nv = 0;
    wb_key(it, k, sizeof(k), "");
    argv[argc++] = "HSET";
    argv[argc++] = k;
    for (int f = 0; f < WB_NF; f++) {
        if (!(mask & (1u << t->res[f])) || t->res[f] == R_NONE) continue;
        snprintf(names[f], sizeof(names[f]), "%s:%s", t->vendor->name, wb_field_name[f]);
        vals[nv] = state_json(it, t, f, error);
        argv[argc++] = names[f];
        argv[argc++] = vals[nv] ? vals[nv] : "{}";
        nv++;
    }
    if (nv && tx)
        tx_argv(tx, argc, argv);
    else if (nv)
        msp_aredis_cmdargv(it->wb->aredis, NULL, it, argc, argv, NULL);
    for (int i = 0; i < nv; i++) free(vals[i]);
    return nv ? 1 : 0;
}

/* The history outcome of a field's result (trace.h), or NULL for none yet. */
static const char *history_outcome(const target_t *t, int f) {
    switch (t->res[f]) {
    case R_WRITTEN: return "written";
    case R_HELD: return t->ours[f] ? "written" : "unchanged";
    case R_SKIPPED: return "refused";
    case R_FAILED: return "dead_lettered";
    default: return NULL;
    }
}

/*
 * Queue the asset's history entries (RPUSH, LTRIM, EXPIRE of trace:asset:<asset>) of the fields
 * of t in one of the results of mask into tx, beside the states that record them.
 * @returns the commands queued (0 or 3).
 */
static int append_history(tx_t *tx, wb_item_t *it, const target_t *t, unsigned mask) {
    char k[400];
    const char *argv[2 + WB_NF];
    char *texts[WB_NF] = {0};
    int argc = 0, nv = 0;
    msp_key(k, sizeof(k), it->tenant, "trace:asset:%s", it->asset);
    argv[argc++] = "RPUSH";
    argv[argc++] = k;
    for (int f = 0; f < WB_NF; f++) {
        const char *outcome = history_outcome(t, f);
        if (!(mask & (1u << t->res[f])) || !outcome)
            continue;
        json_t *facts = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "vendor", t->vendor->name, "target",
                                  t->id, "field", wb_field_name[f], "value",
                                  it->val[f][0] ? json_string(it->val[f]) : json_null(), "outcome",
                                  outcome, "change_id", it->change_id);
        if (t->res[f] == R_SKIPPED || t->res[f] == R_FAILED)
            json_object_set_new(facts, "reason", json_string(t->why));
        char *text = msp_trace_entry(msp_wall_ms(), "writeback", SERVICE, facts);
        if (!text)
            continue;
        texts[nv++] = text;
        argv[argc++] = text;
    }
    if (nv) {
        char from[16], ttl[16];
        snprintf(from, sizeof(from), "-%d", MSP_TRACE_MAX);
        snprintf(ttl, sizeof(ttl), "%d", MSP_TRACE_TTL_S);
        tx_argv(tx, argc, argv);
        tx_cmd(tx, 4, "LTRIM", k, from, "-1");
        tx_cmd(tx, 3, "EXPIRE", k, ttl);
    }
    for (int i = 0; i < nv; i++) {
        msp_trace_journal(k, texts[i], 0);
        msp_json_free(texts[i]);
    }
    return nv ? 3 : 0;
}

static void count_field(wb_item_t *it, const target_t *t, int f) {
    const char *result = t->res[f] == R_WRITTEN ? "written"
                       : t->res[f] == R_HELD ? (t->ours[f] ? "written" : "already_set")
                       : t->res[f] == R_SKIPPED ? "skipped"
                       : t->res[f] == R_FAILED ? "failed" : NULL;
    if (!result) return;
    char labels[96];
    snprintf(labels, sizeof(labels), "integration=\"%s\",result=\"%s\"", t->vendor->name, result);
    msp_metric_add(it->wb->metrics, "mspsync_write_back_writes_total", labels, 1);
}

/* ------------------------------------------------------------- lifecycle */

static void defs_release(wb_item_t *it);

static void item_destroy(msp_keyq_item_t *kit, void *opaque) {
    wb_item_t *it = (wb_item_t *)kit;
    wb_t *wb = opaque;
    defs_release(it);
    msp_vcall_clear(&it->vc);
    msp_aredis_cancel(wb->aredis, it); /* no reply may meet the freed item */
    for (size_t i = 0; i < it->ntg; i++) {
        msp_vendor_cred_cancel(&it->tg[i].cred_op);
        msp_aredis_cancel(wb->aredis, &it->tg[i]);
        msp_vendor_cred_clear(&it->tg[i].cred);
    }
    free(it->tg);
    json_decref(it->chg);
    msp_dead_letter_clear(&it->dl);
    free(it);
}

static void item_start(msp_keyq_item_t *kit, void *opaque) {
    (void)opaque;
    item_load(kit);
}

const msp_keyq_ops_t wb_keyq_ops = {item_start, item_destroy, NULL};

static void complete(wb_item_t *it) { msp_keyq_complete(it->wb->worker.kq, &it->kq); }

/* Run fn in ms; a revoked or stopping item is abandoned instead (vcall.h). */
static void wait_then(wb_item_t *it, int64_t ms, msp_vcall_step_fn *fn) {
    msp_vcall_wait(&it->vc, ms, fn);
}

/* ------------------------------------------------------------------ JOURNAL */

/* The best-effort record's read: produced, unless the states are lost (a partial record). */
static void journal_read(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    char epoch[64];
    (void)why;
    if (wb_state_journal_reply(it->wb, it->tenant, it->asset, r, NULL, epoch, sizeof(epoch)) < 0)
        MSP_WARN("wb.journal_failed", it->tenant, "asset=%s: the state goes with the next step",
                 it->asset);
}

/*
 * The asset's state to wb.states after a step that recorded some (best effort: the record
 * after FINISH covers a miss). Not while Redis lost its state: the record would be partial.
 * The read goes after the step's own commands on the connection, so it sees them.
 */
static void journal(wb_item_t *it) {
    wb_state_journal_send(it->wb, it->tenant, it->asset, journal_read, it);
}

/* Queue the change's states (and its done mark) again into tx: Redis lost them since they were
 * recorded, and the rebuild brought back the older ones. */
static void reassert(tx_t *tx, wb_item_t *it) {
    for (size_t i = 0; i < it->ntg; i++)
        append_states(tx, it, &it->tg[i], ~0u, NULL);
    if (!it->nfailed) {
        char k[400], ttl[32];
        wb_key(it, k, sizeof(k), ":done");
        snprintf(ttl, sizeof(ttl), "%lld", it->wb->conf.done_ttl_days * 86400LL);
        tx_cmd(tx, 3, "SADD", k, it->change_id);
        tx_cmd(tx, 3, "EXPIRE", k, ttl);
    }
}

/*
 * The record that ends the change: once the states are rebuilt for the epoch (its own written
 * again if the epoch changed), produced; its delivery report completes the change. In steps:
 * the epoch (journal_final → final_looked), the states again if it changed (final_reasserted),
 * the state read and produced (final_read). Like the delivery report that completes it, this
 * chain does not abandon a revoked change: the outcome is recorded, it only tells Kafka.
 */
static void final_looked(void *arg, redisReply *r, const char *why);
static void final_reasserted(void *arg, redisReply *r, const char *why);
static void final_read(void *arg, redisReply *r, const char *why);

static void journal_final(void *arg) {
    wb_item_t *it = arg;
    if (wb_state_ready_send(it->wb, final_looked, it) != 0)
        wait_then(it, 1000, journal_final);
}

static void final_produce(wb_item_t *it) {
    if (wb_state_journal_send(it->wb, it->tenant, it->asset, final_read, it) != 0)
        wait_then(it, 1000, journal_final);
}

static void final_looked(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    char epoch[64];
    (void)why;
    int ready = wb_state_ready_reply(r, epoch, sizeof(epoch));
    if (ready != 1) {
        wait_then(it, ready < 0 ? 1000 : 250, journal_final);
        return;
    }
    if (strcmp(epoch, it->epoch) == 0) {
        final_produce(it);
        return;
    }
    tx_t tx;
    tx_begin(&tx, it);
    reassert(&tx, it);
    snprintf(it->jepoch, sizeof(it->jepoch), "%s", epoch); /* what the reassert is for */
    if (tx_end(&tx, final_reasserted) != 0)
        wait_then(it, 1000, journal_final);
}

static void final_reasserted(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    (void)why;
    if (!exec_ran(r)) {
        wait_then(it, 1000, journal_final);
        return;
    }
    MSP_WARN("wb.state_reasserted", it->tenant,
             "asset=%s change=%s: Redis lost the states of this change; written again", it->asset,
             it->change_id);
    snprintf(it->epoch, sizeof(it->epoch), "%s", it->jepoch);
    final_produce(it);
}

static void final_read(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    (void)why;
    int rc = wb_state_journal_reply(it->wb, it->tenant, it->asset, r, it, it->jepoch,
                                    sizeof(it->jepoch));
    if (rc != 0)
        wait_then(it, rc < 0 ? 1000 : 250, journal_final);
}

/* After the final record's delivery: the epoch it was read in still the current one? */
static void delivered_looked(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    char epoch[64];
    (void)why;
    if (wb_state_ready_reply(r, epoch, sizeof(epoch)) != 1 || strcmp(epoch, it->jepoch) != 0) {
        wait_then(it, 250, journal_final);
        return;
    }
    complete(it);
}

/* The final record's delivery report: the change completes, unless Redis lost its state since
 * the record was read (the rebuild may have read the topic before it: write it again). */
static void journal_delivered(wb_item_t *it, const rd_kafka_message_t *m) {
    if (m->err) {
        MSP_WARN("wb.journal_failed", it->tenant, "asset=%s: %s; producing it again", it->asset,
                 rd_kafka_err2str(m->err));
        wait_then(it, 1000, journal_final);
        return;
    }
    if (wb_state_ready_send(it->wb, delivered_looked, it) != 0)
        wait_then(it, 250, journal_final);
}

/* ------------------------------------------------------------ dead letters */

static void dlq_send(void *arg) {
    wb_item_t *it = arg;
    if (msp_dead_letter_send(it->wb->worker.producer, &it->dl, it->kq.msg, SERVICE) != 0)
        wait_then(it, 1000, dlq_send);
}

static void dead_letter(wb_item_t *it, const char *reason) {
    MSP_WARN("change.dead_lettered", it->tenant, "partition=%d offset=%" PRId64 " reason=%s",
             (int)it->kq.msg->partition, it->kq.msg->offset, reason);
    msp_dead_letter_set(&it->dl, it, it->tenant, reason);
    msp_metric_add(it->wb->metrics, "mspsync_write_back_dead_lettered_total", NULL, 1);
    msp_metric_add(it->wb->metrics, "mspsync_write_back_changes_total",
                   "outcome=\"dead_lettered\"", 1);
    dlq_send(it);
}

void wb_delivery_report(wb_t *wb, const rd_kafka_message_t *m) {
    wb_item_t *it;
    (void)wb;
    if (wb_state_is_journal(m)) {
        if (m->_private)
            journal_delivered(m->_private, m);
        else if (m->err)
            MSP_WARN("wb.journal_failed", NULL,
                     "a state record was not delivered (%s); the "
                     "change's last record carries it",
                     rd_kafka_err2str(m->err));
        return;
    }
    int rc = msp_dead_letter_report(m, (void **)&it);
    if (rc > 0 && it->asset && it->tenant)
        journal_final(it); /* the failed states in Kafka before the offset */
    else if (rc > 0)
        complete(it);
    else if (rc < 0) wait_then(it, 1000, dlq_send);
}

/* ------------------------------------------------------------------ FINISH */

static void finish_recorded(void *arg, redisReply *r, const char *why);

static void finish(void *arg) {
    wb_item_t *it = arg;
    if (it->nfailed) {
        dead_letter(it, it->fail_reason);
        return;
    }
    char k[400], ttl[32];
    wb_key(it, k, sizeof(k), ":done");
    snprintf(ttl, sizeof(ttl), "%lld", it->wb->conf.done_ttl_days * 86400LL);
    tx_t tx;
    tx_begin(&tx, it);
    tx_cmd(&tx, 3, "SADD", k, it->change_id);
    tx_cmd(&tx, 3, "EXPIRE", k, ttl);
    if (tx_end(&tx, finish_recorded) != 0)
        wait_then(it, 1000, finish);
}

static void finish_recorded(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    wb_t *wb = it->wb;
    if (gone(it))
        return;
    if (!exec_ran(r)) {
        MSP_WARN("redis.finish_failed", it->tenant, "recording the change failed (%s); retrying",
                 why ? why : "an error answer");
        wait_then(it, 1000, finish);
        return;
    }
    msp_metric_add(wb->metrics, "mspsync_write_back_changes_total", "outcome=\"done\"", 1);
    MSP_DEBUG("change.done", it->tenant, "asset=%s change=%s", it->asset, it->change_id);
    journal_final(it);
}

/* ------------------------------------------------------------------ RECORD */

static void target_recorded(void *arg, redisReply *r, const char *why);

/* The current target is finished: one MULTI with wb:wrote and its wb:<asset> states. */
static void target_done(void *arg) {
    wb_item_t *it = arg;
    target_t *t = cur_target(it);
    defs_release(it);
    char kw[300];
    msp_key(kw, sizeof(kw), it->tenant, "wb:wrote");
    tx_t tx;
    tx_begin(&tx, it);
    for (int f = 0; f < WB_NF; f++) {
        if (t->res[f] != R_WRITTEN && t->res[f] != R_HELD) continue;
        char field[256];
        snprintf(field, sizeof(field), "%s:%s|%s", t->vendor->name, t->id, wb_field_name[f]);
        tx_cmd(&tx, 4, "HSET", kw, field, it->val[f]);
    }
    append_states(&tx, it, t, (1u << R_WRITTEN) | (1u << R_HELD) | (1u << R_FAILED), NULL);
    append_history(&tx, it, t, (1u << R_WRITTEN) | (1u << R_HELD) | (1u << R_FAILED));
    if (tx_end(&tx, target_recorded) != 0)
        wait_then(it, 1000, target_done);
}

static void target_recorded(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    target_t *t = cur_target(it);
    if (gone(it))
        return;
    if (!exec_ran(r)) {
        MSP_WARN("redis.record_failed", it->tenant, "recording a target failed (%s); retrying",
                 why ? why : "an error answer");
        wait_then(it, 1000, target_done);
        return;
    }
    char written[64] = "", held[64] = "";
    for (int f = 0; f < WB_NF; f++) {
        count_field(it, t, f);
        char *dst = t->res[f] == R_WRITTEN || (t->res[f] == R_HELD && t->ours[f]) ? written
                  : t->res[f] == R_HELD ? held : NULL;
        if (dst) {
            size_t l = strlen(dst);
            snprintf(dst + l, 64 - l, "%s%s=%s", l ? "," : "", wb_field_name[f],
                     it->val[f][0] ? it->val[f] : "null");
        }
    }
    if (written[0])
        MSP_INFO("wb.written", it->tenant, "asset=%s target=%s:%s fields=%s%s%s change=%s",
                 it->asset, t->vendor->name, t->id, written, held[0] ? " already_set=" : "", held,
                 it->change_id);
    else if (held[0])
        MSP_DEBUG("wb.already_set", it->tenant, "asset=%s target=%s:%s fields=%s", it->asset,
                  t->vendor->name, t->id, held);
    journal(it);
    it->cur++;
    run_target(it);
}

/* The current target cannot be written (4xx, credentials): its pending fields fail. */
static void target_fail(void *arg, const char *why) {
    wb_item_t *it = arg;
    target_t *t = cur_target(it);
    snprintf(t->why, sizeof(t->why), "%s", why);
    for (int f = 0; f < WB_NF; f++)
        if (t->res[f] == R_PENDING) t->res[f] = R_FAILED;
    if (!it->nfailed)
        snprintf(it->fail_reason, sizeof(it->fail_reason), "write-back to %s %s failed: %s",
                 t->vendor->name, t->id, why);
    it->nfailed++;
    MSP_WARN("wb.failed", it->tenant, "asset=%s target=%s:%s: %s", it->asset, t->vendor->name,
             t->id, why);
    target_done(it);
}

/* ------------------------------------------------------------------- CALL */

/* Start a vendor call of the current target (vcall.h). path is stolen, body is stolen (may be
 * NULL). on_fail (may be NULL) sees final 4xx answers first and returns 1 when it took over.
 * retry_from (may be NULL = send this call again) is where a retry starts. */
static void call(wb_item_t *it, const char *method, char *path, json_t *body,
                 msp_vcall_body_t expect, msp_vcall_ok_fn *on_ok, msp_vcall_fail_fn *on_fail,
                 msp_vcall_step_fn *retry_from) {
    msp_vcall_step_t step = {
        .ok = on_ok, .expect = expect, .fail = on_fail, .retry_from = retry_from};
    msp_vcall_call(&it->vc, method, path, body, &step);
}

/* ------------------------------------------------ the vendor-call engine's hooks */

static void on_retrying(void *arg, unsigned attempt, int64_t delay_ms, const char *why) {
    wb_item_t *it = arg;
    target_t *t = cur_target(it);
    MSP_WARN("wb.retry", it->tenant, "asset=%s target=%s:%s attempt=%u retry_in_ms=%lld: %s",
             it->asset, t->vendor->name, t->id, attempt, (long long)delay_ms, why);
    struct wb_busy_s *busy = it->defs_owner ? defs_busy_of(it) : NULL;
    if (busy) {
        snprintf(busy->why, sizeof(busy->why), "%s", why);
        busy->seq++;
    }
    if (attempt == 1 || attempt % 10 == 0) {
        /* Keep "pending", say why it is taking long (no answer awaited: the journal's read comes
         * after it on the connection). */
        if (append_states(NULL, it, t, 1u << R_PENDING, why))
            journal(it);
    }
}

static void on_answered(void *arg, msp_http_outcome_t o) {
    wb_item_t *it = arg;
    char labels[96];
    snprintf(labels, sizeof(labels), "integration=\"%s\",outcome=\"%s\"",
             cur_target(it)->vendor->name, msp_http_outcome_name(o));
    msp_metric_add(it->wb->metrics, "mspsync_write_back_requests_total", labels, 1);
}

/* A final answer (a refused token, 403, a second 401, another 4xx) fails the target. */
static void call_failed(void *arg, msp_vcall_failure_t kind, const char *why) {
    (void)kind;
    target_fail(arg, why);
}

static const msp_vcall_ops_t vcall_ops = {
    .fail = call_failed,
    .retrying = on_retrying,
    .answered = on_answered,
};

void wb_vcall_env(wb_t *wb) {
    wb->vcall = (msp_vcall_env_t){.base = wb->base,
                                  .http = &wb->http,
                                  .redis = &wb->redis,
                                  .aredis = wb->aredis,
                                  .redis_url = wb->conf.svc.redis_url,
                                  .backoff_base_ms = wb->conf.backoff_base_ms,
                                  .backoff_cap_ms = wb->conf.backoff_cap_ms,
                                  .stopping = &wb->stopping,
                                  .kq = wb->worker.kq,
                                  .metrics = wb->metrics,
                                  .metric_retries = "mspsync_write_back_retries_total",
                                  .metric_throttled = "mspsync_write_back_ratelimit_waits_total"};
}

/* A ConnectWise RMM target's account: its client's bucket, the token cache. */
static void cw_account(wb_item_t *it, target_t *t, msp_vcall_account_t *a) {
    const wb_conf_t *conf = &it->wb->conf;
    t->cw_auth = (msp_vcall_vendor_t){&it->wb->auth, &t->cred};
    a->base_url = msp_vendor_cred_base_url(&t->cred);
    a->bucket_key = msp_vendor_cred_bucket(&t->cred);
    a->rate = msp_vendor_rate_per_s(&conf->svc.rates, t->vendor);
    a->burst = msp_vendor_rate_burst(&conf->svc.rates, t->vendor);
    a->auth = &msp_vcall_vendor_auth;
    a->auth_ctx = &t->cw_auth;
}

/* A Syncro target's account: the account's bucket, the API key's header. */
static void sy_account(wb_item_t *it, target_t *t, msp_vcall_account_t *a) {
    const wb_conf_t *conf = &it->wb->conf;
    const msp_syncro_integration_t *sy = t->cred.impl;
    a->base_url = msp_vendor_cred_base_url(&t->cred);
    a->bucket_key = msp_vendor_cred_bucket(&t->cred);
    a->rate = msp_vendor_rate_per_s(&conf->svc.rates, t->vendor);
    a->burst = msp_vendor_rate_burst(&conf->svc.rates, t->vendor);
    a->auth_header = sy->auth_header;
}

/* ------------------------------------------------------------ ConnectWise RMM */

static int defs_claim(wb_item_t *it) {
    if (it->defs_owner) return 1;
    struct wb_busy_s *b = defs_busy_of(it);
    if (b) {
        /* Waiting: show why the owner is taking long on this change's fields too. */
        if (b->seq != it->defs_seen && b->why[0])
            append_states(NULL, it, cur_target(it), 1u << R_PENDING, b->why);
        it->defs_seen = b->seq;
        return 0;
    }
    size_t n = strlen(it->tenant);
    b = calloc(1, sizeof(*b) + n + 1);
    if (!b) return 1;   /* no single flight then; a 409 is handled anyway */
    memcpy(b->tenant, it->tenant, n + 1);
    b->next = it->wb->defs_busy;
    it->wb->defs_busy = b;
    it->defs_owner = 1;
    return 1;
}

static void defs_release(wb_item_t *it) {
    if (!it->defs_owner) return;
    it->defs_owner = 0;
    for (struct wb_busy_s **pp = &it->wb->defs_busy; *pp; pp = &(*pp)->next) {
        if (!strcmp((*pp)->tenant, it->tenant)) {
            struct wb_busy_s *b = *pp;
            *pp = b->next;
            free(b);
            return;
        }
    }
}

static int cw_wants(const wb_item_t *it, int f) { return it->tg[it->cur].res[f] == R_PENDING; }

static void cw_begin(void *arg) {
    wb_item_t *it = arg;
    it->defs_rounds = 0;
    it->defs_refreshed = 0;
    cw_defs(it);
}

/* Remember a definition's id (no answer awaited: the next read of the hash comes after it). */
static void defs_store(wb_item_t *it, const char *name, const char *id) {
    char k[300];
    msp_key(k, sizeof(k), it->tenant, "cwrmm:defs");
    const char *argv[] = {"HSET", k, name, id};
    msp_aredis_cmdargv(it->wb->aredis, NULL, it, 4, argv, NULL);
}

static void cw_defs_list(wb_item_t *it);

static void cw_def_created(void *arg, msp_http_response_t *res, json_t *d) {
    wb_item_t *it = arg;
    (void)res;
    const char *id = json_string_value(json_object_get(d, "id"));
    const char *name = json_string_value(json_object_get(d, "name"));
    for (int f = 0; f < WB_NF; f++)
        if (id && msp_cwrmm_field_name_is(name, CW_DEF_NAME[f]))
            defs_store(it, CW_DEF_NAME[f], id);
    MSP_INFO("cwrmm.definition_created", it->tenant, "name=\"%s\" id=%s", name ? name : "?",
             id ? id : "?");
    cw_defs(it);   /* the hash now has it (or we list again) */
}

static int cw_def_conflict(void *arg, const msp_http_response_t *res) {
    wb_item_t *it = arg;
    if (res->status != 409) return 0;
    cw_defs_list(it);   /* another process created it meanwhile */
    return 1;
}

static void cw_defs_listed(void *arg, msp_http_response_t *res, json_t *a) {
    wb_item_t *it = arg;
    (void)res;
    /* The fetcher reads them by the same rule (msp_cwrmm_field_name_is). */
    char found[WB_NF][MSP_CWRMM_ATTR_ID_SIZE];
    msp_cwrmm_date_definitions(a, found);
    if (!msp_aredis_up(it->wb->aredis)) {
        wait_then(it, 1000, cw_defs);
        return;
    }
    for (int f = 0; f < WB_NF; f++)
        if (found[f][0]) defs_store(it, CW_DEF_NAME[f], found[f]);
    for (int f = 0; f < WB_NF; f++) {
        if (found[f][0]) continue;
        if (++it->defs_rounds > DEFS_ROUNDS) {
            target_fail(it, "the ConnectWise RMM custom field definitions could not be created");
            return;
        }
        json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "name", CW_DEF_NAME[f], "entityType",
                                 "endpoint", "attributeType", "datetime", "description",
                                 "Written by mspsync");
        call(it, "POST", strdup("/api/platform/v1/custom-field/definitions"), body,
             MSP_VCALL_BODY_OBJECT, cw_def_created, cw_def_conflict, NULL);
        return;
    }
    cw_defs(it);
}

static void cw_defs_list(wb_item_t *it) {
    /* All of them, unfiltered: see the fetcher's CW_DEFS (the entityType words disagree). */
    call(it, "GET", strdup("/api/platform/v1/custom-field/definitions"), NULL, MSP_VCALL_BODY_ARRAY,
         cw_defs_listed, NULL, NULL);
}

static void cw_defs_read(void *arg, redisReply *r, const char *why);

/* The attribute ids of both definitions: Redis, else list (and create) them. */
static void cw_defs(void *arg) {
    wb_item_t *it = arg;
    char k[300];
    msp_key(k, sizeof(k), it->tenant, "cwrmm:defs");
    const char *argv[] = {"HMGET", k, CW_DEF_NAME[0], CW_DEF_NAME[1]};
    if (msp_aredis_cmdargv(it->wb->aredis, cw_defs_read, it, 4, argv, NULL) != 0)
        wait_then(it, 1000, cw_defs);
}

static void cw_defs_read(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    (void)why;
    if (gone(it))
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != WB_NF) {
        wait_then(it, 1000, cw_defs);
        return;
    }
    int have = 0;
    for (int f = 0; f < WB_NF; f++) {
        it->attr[f][0] = '\0';
        if (r->element[f]->type == REDIS_REPLY_STRING && r->element[f]->len > 0 &&
            r->element[f]->len < sizeof(it->attr[f])) {
            memcpy(it->attr[f], r->element[f]->str, r->element[f]->len + 1);
            have++;
        }
    }
    if (have == WB_NF) {
        it->defs_cached = !it->defs_owner;
        defs_release(it);
        cw_read(it);
        return;
    }
    if (!defs_claim(it)) {
        wait_then(it, 250, cw_defs);   /* another change of this tenant is on it */
        return;
    }
    it->defs_cached = 0;
    cw_defs_list(it);
}

static int cw_put_fail(void *arg, const msp_http_response_t *res) {
    wb_item_t *it = arg;
    /* A definition deleted in ConnectWise RMM leaves a stale id in Redis: find them again once. */
    char k[300];
    msp_key(k, sizeof(k), it->tenant, "cwrmm:defs");
    const char *argv[] = {"DEL", k};
    /* (no answer awaited: cw_defs's read comes after the DEL on the connection) */
    if ((res->status == 400 || res->status == 422) && it->defs_cached && !it->defs_refreshed &&
        msp_aredis_cmdargv(it->wb->aredis, NULL, it, 2, argv, NULL) == 0) {
        it->defs_refreshed = 1;
        MSP_WARN("cwrmm.definitions_stale", it->tenant, "PUT answered %ld; listing the "
                 "definitions again", res->status);
        cw_defs(it);
        return 1;
    }
    return 0;
}

/* A PUT (either vendor) succeeded: every field still pending is written. */
static void put_ok(void *arg, msp_http_response_t *res, json_t *body) {
    wb_item_t *it = arg;
    (void)res;
    (void)body;
    target_t *t = cur_target(it);
    for (int f = 0; f < WB_NF; f++)
        if (t->res[f] == R_PENDING) t->res[f] = R_WRITTEN;
    target_done(it);
}

static void cw_read_ok(void *arg, msp_http_response_t *res, json_t *a) {
    wb_item_t *it = arg;
    (void)res;
    target_t *t = cur_target(it);
    json_t *body = json_array();
    for (int f = 0; f < WB_NF; f++) {
        if (t->res[f] != R_PENDING) continue;
        const json_t *cur = NULL;
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) {
            const char *aid = json_string_value(json_object_get(v, "attributeId"));
            if (aid && !strcmp(aid, it->attr[f])) cur = json_object_get(v, "value");
        }
        if (wb_value_holds(cur, it->val[f])) {
            t->res[f] = R_HELD;
            continue;
        }
        char dt[32];
        snprintf(dt, sizeof(dt), "%sT00:00:00Z", it->val[f]);
        json_array_append_new(body, json_pack("{s:s, s:s, s:o}", "entityId", t->id,
                                              "attributeId", it->attr[f], "value",
                                              it->val[f][0] ? json_string(dt) : json_null()));
    }
    if (json_array_size(body) == 0) {
        json_decref(body);
        target_done(it);
        return;
    }
    char path[300];
    snprintf(path, sizeof(path), "/api/platform/v2/device/endpoints/%s/custom-fields", t->id);
    /* A failed PUT may have landed: its retry starts again with the GET (see the top). */
    call(it, "PUT", strdup(path), body, MSP_VCALL_BODY_ANY, put_ok, cw_put_fail, cw_read);
}

static void cw_read(void *arg) {
    wb_item_t *it = arg;
    target_t *t = cur_target(it);
    char path[600];
    int n = snprintf(path, sizeof(path),
                     "/api/platform/v2/device/endpoints/%s/custom-fields?attributeIDs=", t->id);
    int first = 1;
    for (int f = 0; f < WB_NF; f++) {
        if (!cw_wants(it, f)) continue;
        n += snprintf(path + n, sizeof(path) - (size_t)n, "%s%s", first ? "" : ",", it->attr[f]);
        first = 0;
    }
    call(it, "GET", strdup(path), NULL, MSP_VCALL_BODY_ARRAY, cw_read_ok, NULL, NULL);
}

/* ------------------------------------------------------------------- Syncro */

static void sy_read_ok(void *arg, msp_http_response_t *res, json_t *b) {
    wb_item_t *it = arg;
    (void)res;
    target_t *t = cur_target(it);
    json_t *asset = json_object_get(b, "asset");
    if (!json_is_object(asset)) asset = b;
    json_t *props = json_object_get(asset, "properties");
    json_t *merged = json_is_object(props) ? json_deep_copy(props) : json_object();
    int left = 0;
    for (int f = 0; f < WB_NF; f++) {
        if (t->res[f] != R_PENDING) continue;
        if (wb_value_holds(json_object_get(merged, SY_PROP_NAME[f]), it->val[f])) {
            t->res[f] = R_HELD;
            continue;
        }
        json_object_set_new(merged, SY_PROP_NAME[f],
                            it->val[f][0] ? json_string(it->val[f]) : json_null());
        left++;
    }
    if (!left) {
        json_decref(merged);
        target_done(it);
        return;
    }
    /* The whole hash goes back (PUT may replace it) with the name just read (the document
     * requires it); a failed PUT retries from the GET. */
    char err[200];
    json_t *put = msp_syncro_asset_put_body(asset, merged, err, sizeof(err));
    if (!put) {
        target_fail(it, err);
        return;
    }
    char path[300];
    snprintf(path, sizeof(path), "/customer_assets/%s", t->id);
    call(it, "PUT", strdup(path), put, MSP_VCALL_BODY_ANY, put_ok, NULL, sy_read);
}

static void sy_read(void *arg) {
    wb_item_t *it = arg;
    char path[300];
    snprintf(path, sizeof(path), "/customer_assets/%s", cur_target(it)->id);
    call(it, "GET", strdup(path), NULL, MSP_VCALL_BODY_OBJECT, sy_read_ok, NULL, NULL);
}

/* ------------------------------------------------------------------ TARGET */

static void run_target(wb_item_t *it) {
    while (it->cur < it->ntg) {
        target_t *t = cur_target(it);
        int pending = 0;
        for (int f = 0; f < WB_NF; f++) pending += t->res[f] == R_PENDING;
        if (pending) break;
        it->cur++;
    }
    if (it->cur >= it->ntg) {
        finish(it);
        return;
    }
    target_t *t = cur_target(it);
    const wb_vendor_ops_t *ops = vendor_ops(t);
    msp_vcall_account_t a = {.vendor = t->vendor};
    ops->account(it, t, &a); /* the row words its failures */
    msp_vcall_account(&it->vc, &a);
    msp_vcall_reset(&it->vc);
    ops->begin(it);
}

/* ------------------------------------------------------------------- LOAD */

/* Every field the change names ends as r (skipped / failed) for the reason why. */
static void skip_fields(target_t *t, const wb_item_t *it, res_t r, const char *why) {
    for (int f = 0; f < WB_NF; f++)
        if (it->has[f]) t->res[f] = r;
    snprintf(t->why, sizeof(t->why), "%s", why);
}

static int flag_on(const redisReply *e) {
    return e && e->type == REDIS_REPLY_STRING &&
           (!strcmp(e->str, "1") || !strcasecmp(e->str, "true"));
}

/*
 * LOAD in steps, each going on in the callback of its reply:
 *   item_load      the epoch and the marker (are the states in Redis?)   → load_looked
 *   load_looked    the done set and this change's fields in wb:<asset>   → load_read
 *   load_read      every target's integration (plan_target, concurrently) → plan_done
 *   load_planned   one MULTI records the plan                             → load_recorded
 * Any missing answer: a second later, item_load again (nothing was decided yet).
 */
static void load_planned(wb_item_t *it);

/* One target's plan is decided (ok 0: Redis failed); the last one goes on. */
static void plan_done(wb_item_t *it, int ok) {
    if (!ok)
        it->plan_bad = 1;
    if (--it->plan_left > 0)
        return;
    if (gone(it))
        return;
    if (it->plan_bad) {
        wait_then(it, 1000, item_load);
        return;
    }
    load_planned(it);
}

/* Start loading t's integration with the row's loader; cb gets t. @returns 0 started, -1 not. */
static int cred_load(wb_item_t *it, target_t *t, msp_vendor_cred_cb *cb) {
    return msp_vendor_cred_load_async(t->vendor, it->wb->aredis, &it->wb->key, it->tenant, &t->cred,
                                      &t->cred_op, cb, t);
}

/*
 * Decide per target and field: pending, skipped (no integration, not opted in) or failed (the
 * secret does not open). @returns 0 decided or started (plan_done follows, once per start), -1
 * not started (Redis not connected: the caller waits and loads again).
 */
static int plan_target(wb_item_t *it, target_t *t) {
    for (int f = 0; f < WB_NF; f++) t->res[f] = it->has[f] ? R_PENDING : R_NONE;
    t->why[0] = '\0';
    const wb_vendor_ops_t *ops = vendor_ops(t);
    if (!ops->plan) { /* a vendor without an entry in VENDOR_OPS: nothing to write with */
        char why[200];
        snprintf(why, sizeof(why), "writing dates back to %s is not supported", t->vendor->label);
        skip_fields(t, it, R_SKIPPED, why);
        return 0;
    }
    it->plan_left++;
    if (ops->plan(it, t) == 0)
        return 0;
    it->plan_left--;
    return -1;
}

/* The loaded integration decides: rc as msp_vendor_cred_load. @returns 0, or -1 (Redis). */
static int cred_decides(target_t *t, int rc, const char *err) {
    if (rc < 0)
        return -1;
    if (rc == 1 || rc == 2)
        skip_fields(t, t->item, rc == 1 ? R_SKIPPED : R_FAILED, err ? err : "");
    return 0;
}

/* A ConnectWise RMM target's integration is loaded: its per-field opt-ins. */
static void cw_planned(void *arg, int rc, const char *err) {
    target_t *t = arg;
    if (cred_decides(t, rc, err) != 0 || rc != 0) {
        plan_done(t->item, rc >= 0);
        return;
    }
    const msp_cwrmm_integration_t *cw = t->cred.impl;
    if (!cw->writeback_purchase && t->res[WB_F_PURCHASE] == R_PENDING) {
        t->res[WB_F_PURCHASE] = R_SKIPPED;
        snprintf(t->why, sizeof(t->why),
                 "the ConnectWise RMM integration did not opt into "
                 "writing back the purchase date");
    }
    if (!cw->writeback_warranty && t->res[WB_F_WARRANTY] == R_PENDING) {
        t->res[WB_F_WARRANTY] = R_SKIPPED;
        snprintf(t->why, sizeof(t->why),
                 "the ConnectWise RMM integration did not opt into "
                 "writing back the warranty expiration");
    }
    plan_done(t->item, 1);
}

/* plan_target of a ConnectWise RMM target: its integration, its per-field opt-ins. */
static int cw_plan(wb_item_t *it, target_t *t) { return cred_load(it, t, cw_planned); }

/* A Syncro target's integration is loaded: the opt-ins read before decide. */
static void sy_planned(void *arg, int rc, const char *err) {
    target_t *t = arg;
    if (rc == 1)
        err = "no Syncro integration";
    if (cred_decides(t, rc, err) != 0 || rc != 0) {
        plan_done(t->item, rc >= 0);
        return;
    }
    for (int f = 0; f < WB_NF; f++) {
        if (t->opt[f] || t->res[f] != R_PENDING)
            continue;
        t->res[f] = R_SKIPPED;
        snprintf(t->why, sizeof(t->why),
                 "the Syncro integration did not opt into writing back the %s",
                 f == WB_F_PURCHASE ? "purchase date" : "warranty expiration");
    }
    plan_done(t->item, 1);
}

/* A Syncro target's opt-ins (the integration hash's writeback_* flags); then its integration. */
static void sy_flags_read(void *arg, redisReply *r, const char *why) {
    target_t *t = arg;
    (void)why;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        plan_done(t->item, 0);
        return;
    }
    t->opt[WB_F_PURCHASE] = flag_on(r->element[0]);
    t->opt[WB_F_WARRANTY] = flag_on(r->element[1]);
    if (cred_load(t->item, t, sy_planned) != 0)
        plan_done(t->item, 0);
}

/* plan_target of a Syncro target: its integration, its per-field opt-ins. */
static int sy_plan(wb_item_t *it, target_t *t) {
    char k[300];
    msp_key(k, sizeof(k), it->tenant, "integration:%s", t->vendor->name);
    const char *argv[] = {"HMGET", k, "writeback_purchase", "writeback_warranty"};
    return msp_aredis_cmdargv(it->wb->aredis, sy_flags_read, t, 4, argv, NULL);
}

/* Which fields wb:<asset> shows pending or written for this very change (a crash came mid-way):
 * a value found there then is our own write, recorded as "written". hm: the HMGET of every
 * target's fields, in load_looked's order. @returns 0, or -1 when hm is not that answer. */
static int load_ours(wb_item_t *it, const redisReply *hm) {
    size_t n = 0;
    for (size_t i = 0; i < it->ntg; i++)
        for (int f = 0; f < WB_NF; f++)
            n += it->has[f] != 0;
    if (!hm || hm->type != REDIS_REPLY_ARRAY || hm->elements != n)
        return -1;
    size_t e = 0;
    for (size_t i = 0; i < it->ntg; i++) {
        target_t *t = &it->tg[i];
        for (int f = 0; f < WB_NF; f++) {
            t->ours[f] = 0;
            if (!it->has[f]) continue;
            const redisReply *r = hm->element[e++];
            if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)
                return -1;
            if (r->type == REDIS_REPLY_STRING) {
                json_t *s = json_loads(r->str, 0, NULL);
                const char *st = json_string_value(json_object_get(s, "state"));
                const char *cid = json_string_value(json_object_get(s, "change_id"));
                t->ours[f] = st && cid && (!strcmp(st, "pending") || !strcmp(st, "written")) &&
                         !strcmp(cid, it->change_id);
                json_decref(s);
            }
        }
    }
    return 0;
}

static void load_looked(void *arg, redisReply *r, const char *why);
static void load_read(void *arg, redisReply *r, const char *why);
static void load_recorded(void *arg, redisReply *r, const char *why);

static void item_load(void *arg) {
    wb_item_t *it = arg;
    if (wb_state_ready_send(it->wb, load_looked, it) != 0)
        wait_then(it, 1000, item_load);
}

static void load_looked(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    (void)why;
    if (gone(it))
        return;
    /* Redis lost its state: the integrations come back with the restore, the states and done
     * sets with the rebuild (state.c); until then nothing is decided, nothing written, the
     * offset not stored. */
    int ready = wb_state_ready_reply(r, it->epoch, sizeof(it->epoch));
    if (ready != 1) {
        if (ready == 0 && !it->waited_restore)
            MSP_WARN("change.waiting_restore", it->tenant,
                     "asset=%s change=%s waits: Redis is being restored from Kafka", it->asset,
                     it->change_id);
        it->waited_restore = 1;
        wait_then(it, 1000, item_load);
        return;
    }
    char kd[400], kh[400];
    wb_key(it, kd, sizeof(kd), ":done");
    wb_key(it, kh, sizeof(kh), "");
    size_t nf = 2;
    for (size_t i = 0; i < it->ntg; i++)
        for (int f = 0; f < WB_NF; f++)
            nf += it->has[f] != 0;
    const char **argv = calloc(nf, sizeof(*argv));
    char(*names)[32] = calloc(nf, sizeof(*names));
    tx_t tx;
    tx_begin(&tx, it);
    tx_cmd(&tx, 3, "SISMEMBER", kd, it->change_id);
    if (argv && names && nf > 2) {
        size_t n = 0;
        argv[n++] = "HMGET";
        argv[n++] = kh;
        for (size_t i = 0; i < it->ntg; i++)
            for (int f = 0; f < WB_NF; f++) {
                if (!it->has[f])
                    continue;
                snprintf(names[n], sizeof(names[n]), "%s:%s", it->tg[i].vendor->name,
                         wb_field_name[f]);
                argv[n] = names[n];
                n++;
            }
        tx_argv(&tx, (int)n, argv);
    } else if (nf > 2) {
        tx.bad = 1; /* out of memory */
    }
    free(argv);
    free(names);
    if (tx_end(&tx, load_read) != 0)
        wait_then(it, 1000, item_load);
}

static void load_read(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    (void)why;
    if (gone(it))
        return;
    int targets = it->ntg > 0;
    if (!exec_ran(r) || r->elements != (size_t)(1 + targets) ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        wait_then(it, 1000, item_load);
        return;
    }
    if (r->element[0]->integer == 1) {
        msp_metric_add(it->wb->metrics, "mspsync_write_back_changes_total", "outcome=\"duplicate\"",
                       1);
        complete(it);
        return;
    }
    if (targets && load_ours(it, r->element[1]) < 0) {
        wait_then(it, 1000, item_load);
        return;
    }
    /* Every target's integration at once; plan_done goes on after the last. The extra count
     * holds the last plan_done back until every load was started. */
    it->plan_left = 1;
    it->plan_bad = 0;
    for (size_t i = 0; i < it->ntg && !it->plan_bad; i++)
        if (plan_target(it, &it->tg[i]) < 0)
            it->plan_bad = 1;
    plan_done(it, 1);
}

/* Record the plan: pending fields, and the final state of those skipped or failed here. */
static void load_planned(wb_item_t *it) {
    tx_t tx;
    tx_begin(&tx, it);
    for (size_t i = 0; i < it->ntg; i++) {
        append_states(&tx, it, &it->tg[i], (1u << R_PENDING) | (1u << R_SKIPPED) | (1u << R_FAILED),
                      NULL);
        append_history(&tx, it, &it->tg[i], (1u << R_SKIPPED) | (1u << R_FAILED));
    }
    if (tx_end(&tx, load_recorded) != 0)
        wait_then(it, 1000, item_load);
}

static void load_recorded(void *arg, redisReply *r, const char *why) {
    wb_item_t *it = arg;
    (void)why;
    if (gone(it))
        return;
    int ok = exec_ran(r);
    for (size_t i = 0; ok && i < r->elements; i++)
        ok = r->element[i]->type != REDIS_REPLY_ERROR;
    if (!ok) {
        wait_then(it, 1000, item_load);
        return;
    }
    if (r->elements)
        journal(it);
    for (size_t i = 0; i < it->ntg; i++) {
        target_t *t = &it->tg[i];
        for (int f = 0; f < WB_NF; f++) {
            if (t->res[f] != R_SKIPPED && t->res[f] != R_FAILED) continue;
            count_field(it, t, f);
            if (t->res[f] == R_FAILED) {
                if (!it->nfailed)
                    snprintf(it->fail_reason, sizeof(it->fail_reason),
                             "write-back to %s %s failed: %s", t->vendor->name, t->id, t->why);
                it->nfailed++;
            }
        }
    }
    it->cur = 0;
    run_target(it);
}

/* ------------------------------------------------------------------ intake */

/* Unpack a date.changes value into the item. @returns 0, or -1 with the reason in why. */
static int parse_change(wb_item_t *it, char *why, size_t why_size) {
    wb_change_t *ch = malloc(sizeof(*ch));
    if (!ch) return snprintf(why, why_size, "out of memory"), -1;
    if (wb_change_parse(it->chg, ch, why, why_size) != 0) {
        free(ch);
        return -1;
    }
    it->tenant = ch->tenant;
    it->asset = ch->asset;
    it->change_id = ch->change_id;
    memcpy(it->has, ch->has, sizeof(it->has));
    memcpy(it->val, ch->val, sizeof(it->val));
    it->ntg = ch->ntargets;
    it->tg = calloc(it->ntg ? it->ntg : 1, sizeof(target_t));
    for (size_t i = 0; it->tg && i < it->ntg; i++) {
        it->tg[i].item = it;
        it->tg[i].vendor = ch->targets[i].vendor;
        memcpy(it->tg[i].id, ch->targets[i].id, sizeof(it->tg[i].id));
    }
    free(ch);
    if (!it->tg) return snprintf(why, why_size, "out of memory"), -1;
    return 0;
}

void wb_accept(wb_t *wb, rd_kafka_message_t *msg) {
    wb_item_t *it = calloc(1, sizeof(*it));
    if (!it) {
        MSP_ERROR("oom", NULL, "the message stays uncommitted");
        rd_kafka_message_destroy(msg);
        return;
    }
    it->wb = wb;
    msp_vcall_init(&it->vc, &wb->vcall, &vcall_ops, it, &it->kq);
    if (msp_keyq_accept(wb->worker.kq, &it->kq, msg) != 0) {
        MSP_WARN("kafka.redelivered", NULL, "partition=%d offset=%" PRId64 " already in flight",
                 (int)msg->partition, msg->offset);
        free(it);
        rd_kafka_message_destroy(msg);
        return;
    }
    char why[300];
    json_error_t jerr;
    it->chg = msg->len ? json_loadb(msg->payload, msg->len, 0, &jerr) : NULL;
    int bad;
    if (!it->chg) {
        snprintf(why, sizeof(why), "value is not JSON%s%s", msg->len ? ": " : " (empty)",
                 msg->len ? jerr.text : "");
        bad = 1;
    } else {
        bad = parse_change(it, why, sizeof(why)) != 0;
    }
    if (bad) {
        char reason[400];
        snprintf(reason, sizeof(reason), "not a date change: %s", why);
        it->tenant = NULL;   /* may point into a rejected value; logs say only the offset */
        dead_letter(it, reason);   /* not queued: it has no asset to wait behind */
        return;
    }
    it->vc.tenant = it->tenant;
    char key[400];
    snprintf(key, sizeof(key), "%s/%s", it->tenant, it->asset);
    msp_keyq_push(wb->worker.kq, &it->kq, key);
}
