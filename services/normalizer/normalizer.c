/*
 * normalizer.c — batch processing: mapping, change detection, sweep, commit order (normalizer.h).
 *
 * Memory: per batch the only allocations are jansson's (one tree per message, the canonical
 * record, its compact dump) and the growth of reusable buffers (items, outputs, the key/reason
 * arena, the Redis pipelines). Canonical dumps are produced without copy (librdkafka references
 * them) and freed once the commit saw every delivery report — they are also what a failed
 * delivery is re-produced from.
 */
#include "normalizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include <mspsync/backoff.h>
#include <mspsync/cwrmm.h>
#include <mspsync/incident.h>
#include <mspsync/json_dump.h>
#include <mspsync/kafka.h>
#include <mspsync/log.h>
#include <mspsync/model.h>
#include <mspsync/redis.h>
#include <mspsync/trace.h>
#include <mspsync/utf8.h>
#include <mspsync/vendor.h>

#include "coalesce.h"
#include "envelope.h"
#include "inventory.h"
#include "json_arena.h"
#include "par.h"
#include "rebuild.h"
#include "resp.h"

#define NZ_SERVICE      "normalizer"
#define NZ_KEY_MAX      512             /* tenant ≤ 128, canonical id ≤ NZ_ID_MAX, + fixed text */
#define NZ_ID_MAX       200
#define NZ_FLUSH_MS     30000
#define NZ_RETRY_BASE   200
#define NZ_RETRY_CAP    15000

#define M_RECORDS  "mspsync_normalizer_records_total"
#define M_BATCHES  "mspsync_normalizer_batches_total"
#define M_BATCH_S  "mspsync_normalizer_batch_seconds"
#define M_RETRIES  "mspsync_normalizer_retries_total"
#define M_STAGE_S  "mspsync_normalizer_stage_seconds_total"
#define M_RESTARTS "mspsync_normalizer_batch_restarts_total"

/* A step found that Redis lost its state since the batch's state check (nz_inv_fence): the
 * batch starts over once the state is back (batch_restart). */
#define NZ_LOST (-3)

/* Where a batch's time goes (M_STAGE_S): CPU stages and the waits on Redis and Kafka. */
enum { S_PREPARE, S_LOOKUP, S_INVENTORY, S_KAFKA, S_REDIS_WRITE, S_COUNT };
static const char *const stage_labels[S_COUNT] = {
    "stage=\"prepare\"", "stage=\"lookup\"", "stage=\"inventory\"", "stage=\"kafka_ack\"",
    "stage=\"redis_write\""};

enum { R_CHANGED, R_UNCHANGED, R_GONE, R_DEAD, R_COUNT };
static const char *const result_names[R_COUNT] = {"changed", "unchanged", "gone", "dead_lettered"};

typedef enum { IT_DEAD = 0, IT_RECORD, IT_SYNC, IT_INCIDENT, IT_EDIT, IT_REMOVED } nz_item_state_t;

typedef struct nz_item_s {
    rd_kafka_message_t *msg;
    nz_envelope_t       env;
    json_t             *canon;      /* owned */
    const char         *id;         /* borrowed from canon */
    nz_item_state_t     state;
    int                 stored_fp;  /* lookup: 0 none, 1 same as fp, 2 different */
    int                 was_gone;   /* lookup: member of inv:gone:<type> */
    int                 dup_of;     /* earlier item of the segment with the same key, or -1 */
    int failed;                     /* prepare: to be dead-lettered (type, reason below) */
    int dead_type;                  /* nz_type_t, or -1 when the envelope was unreadable */
    char *dead_reason;              /* owned (malloc); NULL when it could not be copied */
    char                fp[65];
} nz_item_t;

/* OUT_HELD: produced only once the batch's other outputs are acknowledged (drain_outputs). */
typedef enum { OUT_PENDING, OUT_DONE, OUT_FAILED, OUT_HELD } nz_out_state_t;

typedef struct nz_out_s {
    const rd_kafka_message_t *src;  /* dead letter: the message to copy; NULL for a record */
    const char     *topic;          /* record: full topic name (borrowed from msp_topic) */
    long            key_off;        /* record: key in the arena */
    size_t          key_len;
    long            reason_off;     /* dead letter: reason in the arena */
    char           *payload;        /* record: owned json_dumps output */
    size_t          payload_len;
    nz_out_state_t  state;
    rd_kafka_resp_err_t err;
} nz_out_t;

/* Redis counters of one (tenant, type) between two commits. */
typedef struct nz_stat_s {
    const char *tenant;             /* borrowed from an envelope of the batch */
    nz_type_t   type;
    long long   n[R_COUNT];
} nz_stat_t;

/* One tenant's queued writes: gathered per key (coalesce.h) into cmds, sent as MULTI cmds EXEC. */
typedef struct w_block_s {
    char       tenant[NZ_TENANT_MAX + 1];
    nz_pipe_t  cmds;
    nz_coal_t *wc;
} w_block_t;

struct nz_s {
    nz_conf_t     conf;
    rd_kafka_t   *consumer, *producer;
    redisContext *redis;
    nz_inv_t     *inv;                 /* the segment's changed asset records, applied together */
    nz_par_t *par;                     /* the prepare threads (par.h) */

    nz_item_t    *items;
    size_t        items_cap;

    nz_out_t     *outs;
    size_t        nouts, outs_cap;
    long          npending, nfailed;   /* delivery reports still due / failed since last look */
    long nouts_held;                   /* outputs OUT_HELD (drain_outputs sends them last) */

    nz_buf_t      arena;               /* output keys and dead-letter reasons, reset per commit */
    nz_pipe_t     reads, writes;
    w_block_t   **wb;                  /* the commit's writes, one MULTI/EXEC block per tenant */
    size_t        nwb, wb_cap;
    w_block_t    *w_cur;               /* block of the tenant being written, NULL = none */
    int           oom;

    nz_stat_t    *stats;
    size_t        nstats, stats_cap;
    long long     metric_n[NZ_TYPE_COUNT + 1][R_COUNT];  /* per batch; last row = unknown type */
    int64_t       stage_us[S_COUNT];   /* per batch */

    int          *dedup;               /* open-addressing table of item indexes, -1 = empty */
    size_t        dedup_cap;

    int          *lookup_idx;          /* items to look up, grouped by (tenant, type) */
    size_t        lookup_cap;
    int          *lookup_run;          /* start of each group in lookup_idx, then its end */
    size_t        lookup_run_cap;
    const char  **look_argv;           /* HMGET / SMISMEMBER arguments of one group */
    size_t       *look_lens;
    size_t        look_argv_cap, look_lens_cap;

    /* sweep scratch */
    nz_buf_t      sw_ids;              /* candidate ids, NUL-separated */
    long         *sw_off;              /* id offsets in sw_ids */
    long         *sw_json;             /* stored JSON offsets in sw_json_buf, -1 absent */
    int          *sw_gone;
    size_t        sw_n, sw_cap;
    nz_buf_t      sw_json_buf;
    const char   *sw_job;
    char          sw_prefix[40];       /* "<integration>:": a sweep only sees its own records */

    rd_kafka_message_t **held;
    size_t        nheld, held_cap;

    /* The deferred commit: the batch whose last segment waits for its delivery reports and its
     * Redis writes while the next batch is prepared (finish_pending). Its messages are owned. */
    rd_kafka_message_t **pend;
    size_t npend, pend_cap;
    int64_t pend_started; /* ms, when that batch started */
    int finishing;        /* finish_pending running (its waits may poll) */
    int in_rebalance;     /* inside nz_rebalance_cb: waits do not poll the consumer */
    int fatal;            /* a fatal error where no caller could be told (-2 next) */

    int           paused;
    int           joined;
    int64_t gate_at;                   /* when an idle loop last checked the state (ms) */
    char          degraded[256];       /* what failed last ("redis inventory"); "" when healthy */
    char epoch[64];                    /* the state epoch the last state check passed on */
};

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                                */

static int running(const nz_t *nz) { return *nz->conf.run; }

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Add the time since *since to stage s and restart the clock. */
static void stage_lap(nz_t *nz, int s, int64_t *since)
{
    int64_t now = now_us();
    nz->stage_us[s] += now - *since;
    *since = now;
}

static void metric_count(nz_t *nz, int type, int result)
{
    int row = (type >= 0 && type < NZ_TYPE_COUNT) ? type : NZ_TYPE_COUNT;
    nz->metric_n[row][result]++;
}

static nz_stat_t *stat_for(nz_t *nz, const char *tenant, nz_type_t type)
{
    for (size_t i = 0; i < nz->nstats; i++)
        if (nz->stats[i].type == type && strcmp(nz->stats[i].tenant, tenant) == 0)
            return &nz->stats[i];
    if (nz_grow((void **)&nz->stats, &nz->stats_cap, nz->nstats + 1, sizeof *nz->stats) < 0) {
        nz->oom = 1;
        return NULL;
    }
    nz_stat_t *s = &nz->stats[nz->nstats++];
    memset(s, 0, sizeof *s);
    s->tenant = tenant;
    s->type   = type;
    return s;
}

static void stat_add(nz_t *nz, const char *tenant, nz_type_t type, int result)
{
    nz_stat_t *s = stat_for(nz, tenant, type);
    if (s)
        s->n[result]++;
    metric_count(nz, (int)type, result);
}

/* ------------------------------------------------------------------------------------------ */
/* pausing and waiting: stay in the group while a retry waits                                   */

static void set_paused(nz_t *nz, int pause)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (!nz->consumer || nz->paused == pause)
        return;
    if (rd_kafka_assignment(nz->consumer, &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a) {
        if (a->cnt > 0) {
            if (pause)
                rd_kafka_pause_partitions(nz->consumer, a);
            else
                rd_kafka_resume_partitions(nz->consumer, a);
        }
        rd_kafka_topic_partition_list_destroy(a);
    }
    nz->paused = pause;
    if (!pause)
        nz->degraded[0] = '\0';
}

static void hold(nz_t *nz, rd_kafka_message_t *m)
{
    if (nz_grow((void **)&nz->held, &nz->held_cap, nz->nheld + 1, sizeof *nz->held) < 0) {
        /* Cannot keep it: dropping would lose it, so rewind the partition instead. */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
            m->offset;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(nz->consumer, l, 1000);
        if (e)
            rd_kafka_error_destroy(e);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_message_destroy(m);
        return;
    }
    nz->held[nz->nheld++] = m;
}

/*
 * Sleep ms while serving what must keep running: consumer polls (group membership, rebalances),
 * delivery reports, the ops HTTP server. A message the consumer still returns (a partition
 * assigned during the wait) is held for the next batch and the assignment paused again.
 * @returns 0, or -1 when shutdown was asked.
 */
static int wait_serving(nz_t *nz, int64_t ms)
{
    int64_t until = msp_now_ms() + ms;
    for (;;) {
        if (!running(nz))
            return -1;
        int64_t left = until - msp_now_ms();
        if (left <= 0)
            return 0;
        if (nz->in_rebalance) {
            /* librdkafka is inside a consumer poll already: wait on the producer instead */
            rd_kafka_poll(nz->producer, left > 100 ? 100 : (int)left);
            continue;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(nz->consumer, left > 100 ? 100 : (int)left);
        if (m) {
            if (m->err) {
                MSP_DEBUG("kafka.consumer_event", NULL, "%s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
            } else {
                hold(nz, m);
                nz->paused = 0;           /* force a pause of the whole, new assignment */
                set_paused(nz, 1);
            }
        }
        rd_kafka_poll(nz->producer, 0);
        if (nz->conf.base)
            event_base_loop(nz->conf.base, EVLOOP_NONBLOCK);
    }
}

static int retry_wait(nz_t *nz, unsigned attempt, const char *what, const char *err)
{
    int64_t ms = msp_backoff_ms(attempt, NZ_RETRY_BASE, NZ_RETRY_CAP, msp_rand01());
    snprintf(nz->degraded, sizeof nz->degraded, "%s", what);  /* err is for the log only */
    MSP_WARN("normalizer.retry", NULL, "%s failed (attempt %u), retrying in %lld ms: %s", what,
             attempt + 1, (long long)ms, err);
    msp_metric_add(nz->conf.metrics, M_RETRIES, what[0] == 'k' ? "stage=\"kafka\""
                                                                : "stage=\"redis\"", 1);
    set_paused(nz, 1);
    return wait_serving(nz, ms);
}

static int keep_going(void *arg) { return running(arg); }

/* One state check (nz_state_check), reconnecting first as needed; on NZ_STATE_ERROR err[512]
 * says why and the connection is dropped. */
static nz_state_t state_read(nz_t *nz, char epoch[64], char err[512]) {
    if (msp_redis_ensure(&nz->redis, nz->conf.redis_url, err, 512) < 0)
        return NZ_STATE_ERROR;
    nz_state_t st = nz_state_check(nz->redis, epoch, 64);
    if (st == NZ_STATE_ERROR) {
        snprintf(err, 512, "%s", nz->redis->errstr[0] ? nz->redis->errstr : "error");
        redisFree(nz->redis);
        nz->redis = NULL;
    }
    return st;
}

/*
 * Before a batch: wait while Redis lost its state (the gateway restores the configuration; the
 * epoch marker is missing), then until the inventory of this epoch is rebuilt (rebuild.h: this
 * process rebuilds it when it wins the lock, else waits for the marker). Nothing of the batch is
 * processed and no offset stored meanwhile; the assignment is paused and /readyz says why.
 * One MGET when all is well. @returns 0, or -1 on shutdown.
 */
static int state_gate(nz_t *nz) {
    char err[512], epoch[64];
    for (unsigned attempt = 0;; attempt++) {
        nz_state_t st = state_read(nz, epoch, err);
        if (st == NZ_STATE_ERROR) {
            if (retry_wait(nz, attempt, "redis state check", err) < 0)
                return -1;
            continue;
        }
        if (st == NZ_STATE_READY) {
            /* the batch's inventory writes apply only while Redis keeps this state */
            snprintf(nz->epoch, sizeof nz->epoch, "%s", epoch);
            nz_inv_fence(epoch);
            if (attempt) {
                MSP_INFO("normalizer.state_ready", NULL, "state restored: processing again");
                set_paused(nz, 0);
                nz->degraded[0] = '\0'; /* also when the rebuild ran without pausing */
            }
            return 0;
        }
        int rc = 0;
        if (st == NZ_STATE_RESTORING) {
            snprintf(nz->degraded, sizeof nz->degraded, "waiting for the configuration restore");
        } else {
            snprintf(nz->degraded, sizeof nz->degraded, "waiting for the inventory rebuild");
            rc = nz_rebuild(nz->redis, nz->conf.brokers, epoch, nz->conf.identity_max_shared,
                            keep_going, nz, err, sizeof err);
            if (rc == 1)
                continue; /* the marker is set: the next check passes */
        }
        if (rc < 0) {
            if (retry_wait(nz, attempt, "inventory rebuild", err) < 0)
                return -1;
            continue;
        }
        if (attempt == 0)
            MSP_WARN("normalizer.state_wait", NULL, "%s: batches wait", nz->degraded);
        set_paused(nz, 1);
        if (wait_serving(nz, 250) < 0)
            return -1;
    }
}

/*
 * Redis still holds the state the batch's state check passed on: what was read since comes from
 * it (the inventory's own calls check this themselves, nz_inv_fence). @returns 0, NZ_LOST, -1
 * on shutdown.
 */
static int state_holds(nz_t *nz) {
    char err[512], epoch[64];
    for (unsigned attempt = 0;; attempt++) {
        nz_state_t st = state_read(nz, epoch, err);
        if (st == NZ_STATE_READY && strcmp(epoch, nz->epoch) == 0)
            return 0;
        if (st != NZ_STATE_ERROR) {
            MSP_WARN("normalizer.state_lost", NULL, "Redis lost its state during the batch");
            return NZ_LOST;
        }
        if (retry_wait(nz, attempt, "redis state check", err) < 0)
            return -1;
    }
}

/* Run a pipeline until it succeeds (reconnecting as needed). @returns 0 or -1 on shutdown. */
static int redis_run(nz_t *nz, const nz_pipe_t *p, nz_reply_cb *cb, void *opaque,
                     const char *what)
{
    char err[512];
    for (unsigned attempt = 0;; attempt++) {
        if (msp_redis_ensure(&nz->redis, nz->conf.redis_url, err, sizeof err) == 0 &&
            nz_pipe_run(nz->redis, p, cb, opaque, err, sizeof err) == 0) {
            if (attempt)
                MSP_INFO("normalizer.recovered", NULL, "%s succeeded after %u retries", what,
                         attempt);
            return 0;
        }
        if (retry_wait(nz, attempt, what, err) < 0)
            return -1;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* outputs: produce, delivery reports, re-produce                                                */

void nz_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    nz_t     *nz  = opaque;
    uintptr_t idx = (uintptr_t)m->_private;
    if (msp_trace_journal_report(m))
        return; /* a trace journal record (trace.h) */
    if (!nz || idx == 0 || idx > nz->nouts)
        return;                     /* not ours, or from a batch abandoned at shutdown */
    nz_out_t *o = &nz->outs[idx - 1];
    if (o->state != OUT_PENDING)
        return;
    nz->npending--;
    if (m->err) {
        o->state = OUT_FAILED;
        o->err   = m->err;
        nz->nfailed++;
    } else {
        o->state = OUT_DONE;
    }
}

static void out_send(nz_t *nz, size_t idx)
{
    nz_out_t *o      = &nz->outs[idx];
    void     *opaque = (void *)(uintptr_t)(idx + 1);
    rd_kafka_resp_err_t err;

    if (o->src) {
        err = msp_kafka_dead_letter(nz->producer, o->src, NZ_SERVICE, nz->arena.p + o->reason_off,
                                    opaque) == 0
                  ? RD_KAFKA_RESP_ERR_NO_ERROR
                  : RD_KAFKA_RESP_ERR__FAIL;
    } else {
        for (;;) {
            /* Flags 0: librdkafka references the payload until the delivery report; the key is
             * always copied. */
            err = rd_kafka_producev(nz->producer, RD_KAFKA_V_TOPIC(o->topic),
                                    RD_KAFKA_V_KEY(nz->arena.p + o->key_off, o->key_len),
                                    RD_KAFKA_V_VALUE(o->payload, o->payload_len),
                                    RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_OPAQUE(opaque),
                                    RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            rd_kafka_poll(nz->producer, 100);   /* serve delivery reports to make room */
        }
    }
    if (err) {
        o->state = OUT_FAILED;
        o->err   = err;
        nz->nfailed++;
    } else {
        o->state = OUT_PENDING;
        nz->npending++;
    }
}

static nz_out_t *out_new(nz_t *nz)
{
    if (nz_grow((void **)&nz->outs, &nz->outs_cap, nz->nouts + 1, sizeof *nz->outs) < 0) {
        nz->oom = 1;
        return NULL;
    }
    nz_out_t *o = &nz->outs[nz->nouts++];
    memset(o, 0, sizeof *o);
    o->key_off = o->reason_off = -1;
    return o;
}

/*
 * Produce a canonical record; takes ownership of payload (a json_dumps result). Customers and
 * assets are keyed "<tenant>/<id>"; incidents by their fingerprint (id), which already names the
 * tenant, so that one incident's events stay in order in one partition.
 */
static void out_keyed(nz_t *nz, const char *topic, int keyed_by_id, const char *tenant,
                      const char *id, char *payload);
static void out_keyed_held(nz_t *nz, const char *topic, const char *tenant, const char *id,
                           char *payload, int held);

static void out_record(nz_t *nz, nz_type_t type, const char *tenant, const char *id,
                       char *payload)
{
    static const char *const topics[NZ_TYPE_COUNT] = {
        [NZ_TYPE_CUSTOMER] = MSP_TOPIC_CUSTOMERS, [NZ_TYPE_ASSET] = MSP_TOPIC_ASSETS,
        [NZ_TYPE_INCIDENT] = MSP_TOPIC_INCIDENTS, [NZ_TYPE_CONTACT] = MSP_TOPIC_CONTACTS,
        [NZ_TYPE_TICKET] = MSP_TOPIC_TICKETS,     [NZ_TYPE_SETTING] = MSP_TOPIC_SETTINGS};
    /* an asset after a held one waits with it (drain_outputs: no overtaking) */
    out_keyed_held(nz, topics[type], type == NZ_TYPE_INCIDENT ? NULL : tenant, id, payload,
                   type == NZ_TYPE_ASSET && nz->nouts_held > 0);
}

/* Produce payload (NULL = a tombstone) to topic, keyed "<tenant>/<id>" or by id alone. */
static void out_keyed(nz_t *nz, const char *topic, int keyed_by_id, const char *tenant,
                      const char *id, char *payload)
{
    out_keyed_held(nz, topic, keyed_by_id ? NULL : tenant, id, payload, 0);
}

/* out_keyed (tenant NULL: keyed by id alone); held: queued as OUT_HELD, produced by
 * drain_outputs after every other output of the batch was acknowledged. */
static void out_keyed_held(nz_t *nz, const char *topic, const char *tenant, const char *id,
                           char *payload, int held) {
    int keyed_by_id = tenant == NULL;
    nz_out_t *o = out_new(nz);
    if (!o) {
        msp_json_free(payload);
        return;
    }
    size_t tl = keyed_by_id ? 0 : strlen(tenant), il = strlen(id);
    long   off = nz_buf_append(&nz->arena, tenant, tl);
    if (off < 0 || (!keyed_by_id && nz_buf_append(&nz->arena, "/", 1) < 0) ||
        nz_buf_append(&nz->arena, id, il) < 0) {
        nz->oom = 1;
        nz->nouts--;
        msp_json_free(payload);
        return;
    }
    o->topic       = msp_topic(topic);
    o->key_off     = off;
    o->key_len     = keyed_by_id ? il : tl + 1 + il;
    o->payload     = payload;
    o->payload_len = payload ? strlen(payload) : 0;
    if (held) {
        o->state = OUT_HELD;
        nz->nouts_held++;
        return;
    }
    out_send(nz, nz->nouts - 1);
}

static void dead_letter(nz_t *nz, nz_item_t *it, int type, const char *reason)
{
    const char *tenant = it->env.tenant;
    it->state          = IT_DEAD;
    metric_count(nz, type, R_DEAD);
    MSP_WARN("record.dead_lettered", tenant, "partition=%d offset=%lld type=%s reason=%s",
             (int)it->msg->partition, (long long)it->msg->offset,
             type >= 0 ? nz_type_name((nz_type_t)type) : "unknown", reason);
    nz_out_t *o = out_new(nz);
    if (!o)
        return;
    o->src        = it->msg;
    o->reason_off = nz_buf_append_str(&nz->arena, reason);
    if (o->reason_off < 0) {
        nz->oom = 1;
        nz->nouts--;
        return;
    }
    out_send(nz, nz->nouts - 1);
}

/*
 * Wait until every output has its delivery report; re-produce the failed ones with backoff. The
 * held outputs (the merged assets whose date changes the batch made) are produced after all the
 * others were acknowledged, and waited for in turn: the compacted assets topic never holds a
 * merged record whose date change is not in date.changes, so a rebuild after a loss of Redis
 * (which takes the inventory from that topic) re-derives a change that never reached Kafka
 * (design.md "The parked date change after a Redis loss").
 * @returns 0, -1 shutdown, -2 fatal producer error.
 */
static int drain_sent(nz_t *nz);

static int drain_outputs(nz_t *nz) {
    int rc = drain_sent(nz);
    if (rc != 0 || nz->nouts_held == 0)
        return rc;
    for (size_t i = 0; i < nz->nouts; i++)
        if (nz->outs[i].state == OUT_HELD)
            out_send(nz, i);
    nz->nouts_held = 0;
    return drain_sent(nz);
}

/* drain_outputs of the outputs sent so far. @returns 0, -1 shutdown, -2 fatal. */
static int drain_sent(nz_t *nz) {
    char errstr[512];
    for (unsigned attempt = 0;;) {
        while (nz->npending > 0) {
            rd_kafka_flush(nz->producer, NZ_FLUSH_MS);
            if (rd_kafka_fatal_error(nz->producer, errstr, sizeof errstr)) {
                MSP_ERROR("kafka.fatal", NULL, "producer fatal error: %s", errstr);
                return -2;
            }
            if (nz->npending > 0) {
                MSP_WARN("kafka.flush_slow", NULL, "%ld deliveries still outstanding after %d ms",
                         nz->npending, NZ_FLUSH_MS);
                if (wait_serving(nz, 10) < 0)
                    return -1;
            }
        }
        if (nz->nfailed == 0)
            return 0;

        rd_kafka_resp_err_t first = RD_KAFKA_RESP_ERR_NO_ERROR;
        for (size_t i = 0; i < nz->nouts; i++)
            if (nz->outs[i].state == OUT_FAILED) {
                first = nz->outs[i].err;
                break;
            }
        snprintf(errstr, sizeof errstr, "%ld of %zu deliveries failed (first: %s)", nz->nfailed,
                 nz->nouts, rd_kafka_err2str(first));
        if (retry_wait(nz, attempt++, "kafka produce", errstr) < 0)
            return -1;
        nz->nfailed = 0;
        for (size_t i = 0; i < nz->nouts; i++)
            if (nz->outs[i].state == OUT_FAILED)
                out_send(nz, i);
    }
}

static void outputs_reset(nz_t *nz)
{
    for (size_t i = 0; i < nz->nouts; i++)
        msp_json_free(nz->outs[i].payload);
    nz->nouts    = 0;
    nz->npending = 0;
    nz->nfailed  = 0;
    nz->nouts_held = 0;
    nz_buf_reset(&nz->arena);
}

/* ------------------------------------------------------------------------------------------ */
/* queued Redis writes: MULTI/EXEC per run of one tenant's commands                              */

/* A block's coalescer writes into the block's own commands. */
static int w_emit(void *arg, int argc, const char **argv, const size_t *lens)
{
    return nz_pipe_cmdv(arg, argc, argv, lens);
}

/*
 * Make tenant's block the current one. Writes are grouped per tenant for the whole commit (a
 * batch interleaves its tenants record by record), so that each tenant's writes are one
 * MULTI/EXEC and one command per key.
 */
static void w_tenant(nz_t *nz, const char *tenant)
{
    if (nz->w_cur && strcmp(nz->w_cur->tenant, tenant) == 0)
        return;
    for (size_t i = 0; i < nz->nwb; i++)
        if (strcmp(nz->wb[i]->tenant, tenant) == 0) {
            nz->w_cur = nz->wb[i];
            return;
        }
    if (nz->nwb == nz->wb_cap) {
        w_block_t **wb = nz_grow((void **)&nz->wb, &nz->wb_cap, nz->nwb + 1, sizeof *nz->wb) < 0
                             ? NULL : nz->wb;
        if (!wb) {
            nz->oom = 1;
            nz->w_cur = NULL;
            return;
        }
        for (size_t i = nz->nwb; i < nz->wb_cap; i++)
            nz->wb[i] = NULL;
    }
    w_block_t *b = nz->wb[nz->nwb];
    if (!b && (b = calloc(1, sizeof *b)) != NULL && !(b->wc = nz_coal_new(w_emit, &b->cmds))) {
        free(b);
        b = NULL;
    }
    if (!b) {
        nz->oom = 1;
        nz->w_cur = NULL;
        return;
    }
    nz->wb[nz->nwb++] = b;
    snprintf(b->tenant, sizeof b->tenant, "%s", tenant);
    nz->w_cur = b;
}

/* A write of the current tenant's block, gathered per key (W(nz, "HSET", key, field, value)). */
#define W(nz, ...)                                                                         \
    do {                                                                                   \
        if (!(nz)->w_cur || nz_coal_cmd((nz)->w_cur->wc, __VA_ARGS__, NULL) < 0)            \
            (nz)->oom = 1;                                                                 \
    } while (0)

/* Every block into the write pipeline, MULTI ... EXEC each. */
static void w_close(nz_t *nz)
{
    for (size_t i = 0; i < nz->nwb; i++) {
        w_block_t *b = nz->wb[i];
        if (nz_coal_flush(b->wc) < 0 || (b->cmds.ncmds && (
                nz_pipe_cmd(&nz->writes, "MULTI", NULL) < 0 ||
                nz_buf_append(&nz->writes.buf, b->cmds.buf.p, b->cmds.buf.len) < 0 ||
                nz_pipe_cmd(&nz->writes, "EXEC", NULL) < 0)))
            nz->oom = 1;
        nz->writes.ncmds += b->cmds.ncmds;
        nz_pipe_reset(&b->cmds);
    }
    nz->nwb   = 0;
    nz->w_cur = NULL;
}

static void w_reset(nz_t *nz)
{
    for (size_t i = 0; i < nz->nwb; i++) {
        nz_coal_discard(nz->wb[i]->wc);
        nz_pipe_reset(&nz->wb[i]->cmds);
    }
    nz->nwb   = 0;
    nz->w_cur = NULL;
    nz_pipe_reset(&nz->writes);
}

/* The queued writes of a changed record (canonical JSON `json`, content fingerprint `fp`). */
static void w_record(nz_t *nz, const char *tenant, nz_type_t type, const char *id,
                     const char *json, const char *fp)
{
    char        k[NZ_KEY_MAX];
    const char *tn = nz_type_name(type);

    w_tenant(nz, tenant);
    msp_key(k, sizeof k, tenant, "inv:%s:%s", tn, id);
    W(nz, "SET", k, json);
    msp_key(k, sizeof k, tenant, "inv:%ss", tn);
    W(nz, "ZADD", k, "0", id);
    if (fp) {
        msp_key(k, sizeof k, tenant, "inv:fp:%s", tn);
        W(nz, "HSET", k, id, fp);
        msp_key(k, sizeof k, tenant, "inv:gone:%s", tn);
        W(nz, "SREM", k, id);
    } else {    /* marked gone */
        msp_key(k, sizeof k, tenant, "inv:gone:%s", tn);
        W(nz, "SADD", k, id);
    }
}

static void w_stats(nz_t *nz)
{
    char k[NZ_KEY_MAX], now[32], num[24];
    msp_format_time(msp_wall_ms(), now, sizeof now);
    for (size_t i = 0; i < nz->nstats; i++) {
        const nz_stat_t *s = &nz->stats[i];
        w_tenant(nz, s->tenant);
        msp_key(k, sizeof k, s->tenant, "inv:stats");
        for (int r = R_CHANGED; r <= R_GONE; r++) {
            if (!s->n[r])
                continue;
            char field[32];
            snprintf(field, sizeof field, "%s_%s", nz_type_name(s->type), result_names[r]);
            snprintf(num, sizeof num, "%lld", s->n[r]);
            W(nz, "HINCRBY", k, field, num);
        }
        if (s->n[R_CHANGED] || s->n[R_UNCHANGED])
            W(nz, "HSET", k, "last_record_at", now);
    }
    nz->nstats = 0;
}

/*
 * Append a trace entry (trace.h; text stolen, NULL = out of memory) to the list `key` of the
 * current tenant's block: it rides the commit's MULTI, after Kafka acknowledged the batch.
 */
static void w_trace(nz_t *nz, const char *key, char *text) {
    if (!text) {
        nz->oom = 1;
        return;
    }
    W(nz, "RPUSH", key, text);
    W(nz, "LTRIM", key, "-" MSP_TRACE_MAX_STR, "-1");
    W(nz, "EXPIRE", key, MSP_TRACE_TTL_STR);
    msp_trace_journal(key, text, 0);
    msp_json_free(text);
}

/* Where the raw message came from: "<topic>/<partition>@<offset>" (the delivery's identity). */
static void raw_origin(const rd_kafka_message_t *m, char *buf, size_t size) {
    snprintf(buf, size, "%s/%d@%lld", m->rkt ? rd_kafka_topic_name(m->rkt) : "?", (int)m->partition,
             (long long)m->offset);
}

/*
 * The incident's first two trace entries: `received` (when the gateway accepted it, which raw
 * message carried it) and `normalized`; the index from the portal's incident id.
 */
static void w_trace_incident(nz_t *nz, const nz_item_t *it) {
    char k[NZ_KEY_MAX], origin[300];
    const json_t *c = it->canon, *root = it->env.root;
    const char *eid = json_string_value(json_object_get(c, "event_id"));
    const char *incid = json_string_value(json_object_get(c, "incident_id"));
    json_int_t rx_ms = json_integer_value(json_object_get(root, "received_at_ms"));
    raw_origin(it->msg, origin, sizeof origin);
    w_tenant(nz, it->env.tenant);
    msp_key(k, sizeof k, it->env.tenant, "trace:inc:%s", it->id);
    json_t *rx = json_pack("{s:s?,s:s?,s:s}", "event_id", eid, "received_at",
                           json_string_value(json_object_get(root, "received_at")), "raw", origin);
    w_trace(nz, k, msp_trace_entry(rx_ms > 0 ? rx_ms : msp_wall_ms(), "received", "gateway", rx));
    json_t *nf = json_pack("{s:s?,s:s?,s:s?,s:s?,s:s?,s:s?}", "event_id", eid, "incident_id", incid,
                           "status", json_string_value(json_object_get(c, "status")), "severity",
                           json_string_value(json_object_get(c, "severity")), "alert_type",
                           json_string_value(json_object_get(c, "alert_type")), "org_id",
                           json_string_value(json_object_get(c, "org_id")));
    w_trace(nz, k, msp_trace_entry(msp_wall_ms(), "normalized", NZ_SERVICE, nf));
    if (incid && incid[0] && strlen(incid) <= MSP_TRACE_INCID_MAX) {
        msp_key(k, sizeof k, it->env.tenant, "trace:incid:%s", incid);
        W(nz, "SADD", k, it->id);
        W(nz, "EXPIRE", k, MSP_TRACE_TTL_STR);
        msp_trace_journal(k, it->id, 0);
    }
}

/*
 * An incident the normalizer could not map has no fingerprint: its `rejected` entry goes to
 * trace:rej:<incident id> (found by the incident id), when the webhook body names one.
 */
static void w_trace_rejected(nz_t *nz, const nz_item_t *it, const char *reason) {
    char k[NZ_KEY_MAX], origin[300];
    const char *incid = json_string_value(json_object_get(it->env.payload, "id"));
    if (!it->env.tenant || !incid || !incid[0] || strlen(incid) > MSP_TRACE_INCID_MAX)
        return;
    raw_origin(it->msg, origin, sizeof origin);
    w_tenant(nz, it->env.tenant);
    msp_key(k, sizeof k, it->env.tenant, "trace:rej:%s", incid);
    json_t *f = json_pack("{s:s,s:s,s:s?}", "incident_id", incid, "raw", origin, "reason", reason);
    w_trace(nz, k, msp_trace_entry(msp_wall_ms(), "rejected", NZ_SERVICE, f));
}

/*
 * The asset's history entry of a date change (before its message is handed to Kafka): which
 * dates, to what, and where the new values came from — "app" (an edit in the app, with its edit
 * id) or the integration whose record the policy chose ("syncro", "cwrmm").
 */
static void w_history_change(nz_t *nz, const nz_inv_pub_t *e, const char *edit_id) {
    char k[NZ_KEY_MAX];
    json_t *ch = json_loads(e->change, 0, NULL);
    json_t *merged = e->merged ? json_loads(e->merged, 0, NULL) : NULL;
    if (!ch) {
        json_decref(merged);
        return;
    }
    const char *reason = json_string_value(json_object_get(ch, "reason"));
    int edit = reason && !strcmp(reason, "edit");
    json_t *dates = json_object(), *sources = json_object();
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(ch, "dates"), name, v) {
        json_object_set(dates, name, v);
        const char *src = json_string_value(
            json_object_get(json_object_get(json_object_get(merged, "dates"), name), "source"));
        json_object_set_new(sources, name,
                            edit || (src && !strcmp(src, "manual")) ? json_string("app")
                            : src                                   ? json_string(src)
                                                                    : json_null());
    }
    json_t *f = json_pack("{s:s?,s:s?,s:o,s:o,s:s}", "change_id",
                          json_string_value(json_object_get(ch, "change_id")), "reason", reason,
                          "dates", dates, "sources", sources, "source", edit ? "app" : "sync");
    if (edit && edit_id)
        json_object_set_new(f, "edit_id", json_string(edit_id));
    json_decref(ch);
    json_decref(merged);
    w_tenant(nz, e->tenant);
    msp_key(k, sizeof k, e->tenant, "trace:asset:%s", e->asset_id);
    w_trace(nz, k, msp_trace_entry(msp_wall_ms(), "date_changed", NZ_SERVICE, f));
}

/* Where "gone" is kept for change detection: assets per source record, the others per record. */
static const char *gone_set(nz_type_t type)
{
    static const char *const sets[NZ_TYPE_COUNT] = {[NZ_TYPE_CUSTOMER] = "inv:gone:customer",
                                                    [NZ_TYPE_ASSET] = "inv:srcgone:asset",
                                                    [NZ_TYPE_CONTACT] = "inv:gone:contact",
                                                    [NZ_TYPE_TICKET] = "inv:gone:ticket",
                                                    [NZ_TYPE_SETTING] = "inv:gone:setting"};
    return sets[type];
}

typedef enum { INV_RUN, INV_GONE, INV_REMOVE, INV_EDIT } inv_op_t;

/*
 * One inventory.c call, repeated until Redis answers (each is idempotent); then its merged
 * assets go to `assets`, its date changes to `date.changes`, and the deletion of each parked
 * change is queued for the commit (after Kafka acknowledged it). INV_RUN applies the queued
 * upserts (nz_inv_run); the others first apply what is queued, so the inventory sees the
 * batch in order.
 * @returns 0, 1 (unknown source or asset), -1 shutdown, NZ_LOST.
 */
static int inv_apply(nz_t *nz, inv_op_t op, const char *tenant, const char *id, const json_t *j,
                     const char *edit_id)
{
    char         err[512], at[40];
    nz_inv_out_t out;
    int          rc;
    msp_format_time(msp_wall_ms(), at, sizeof at);
    memset(&out, 0, sizeof out);
    if (op != INV_RUN && nz_inv_queued(nz->inv) && (rc = inv_apply(nz, INV_RUN, NULL, NULL, NULL, NULL)) < 0)
        return rc;
    if (op == INV_RUN && !nz_inv_queued(nz->inv))
        return 0;
    for (unsigned attempt = 0;; attempt++) {
        err[0] = '\0';
        if (msp_redis_ensure(&nz->redis, nz->conf.redis_url, err, sizeof err) == 0) {
            switch (op) {
            /* a run keeps in out what it wrote before a failure; the single calls start over */
            case INV_RUN: rc = nz_inv_run(nz->inv, nz->redis, at, &out, err, sizeof err); break;
            case INV_GONE: rc = nz_inv_source_gone(nz->redis, tenant, id, at, &out, err, sizeof err); break;
            case INV_REMOVE: rc = nz_inv_source_remove(nz->redis, tenant, id, at, &out, err, sizeof err); break;
            default: rc = nz_inv_edit(nz->redis, tenant, id, j, edit_id, at, &out, err, sizeof err); break;
            }
            if (rc >= 0)
                break;
            if (op != INV_RUN)
                nz_inv_out_clear(&out);
            /* A failed pipeline may leave replies unread (or a WATCH armed): start on a fresh
             * connection. */
            redisFree(nz->redis);
            nz->redis = NULL;
            if (rc == NZ_INV_LOST) {
                /* what the call wrote before went with the state: none of it is published */
                MSP_WARN("normalizer.state_lost", NULL, "%s", err);
                nz_inv_out_clear(&out);
                nz_inv_discard(nz->inv);
                return NZ_LOST;
            }
        }
        if (retry_wait(nz, attempt, "redis inventory", err[0] ? err : "redis error") < 0) {
            nz_inv_out_clear(&out);   /* shutdown: the batch replays */
            return -1;
        }
    }
    for (size_t i = 0; i < out.n; i++) {
        nz_inv_pub_t *e = &out.pub[i];
        /* with a date change: the asset after the change is acknowledged (drain_outputs); after
         * one held, every later asset of the batch too (a later record of the same asset must
         * not overtake it) */
        out_keyed_held(nz, MSP_TOPIC_ASSETS, e->tenant, e->asset_id, e->merged,
                       e->change != NULL || nz->nouts_held > 0);
        e->merged = NULL;
        if (e->change) {
            char k[NZ_KEY_MAX];
            w_history_change(nz, e, edit_id);
            out_keyed(nz, MSP_TOPIC_DATE_CHANGES, 0, e->tenant, e->asset_id, e->change);
            e->change = NULL;
            w_tenant(nz, e->tenant);
            msp_key(k, sizeof k, e->tenant, "inv:dpending");
            const char *const keys[] = {k};
            const char       *av[]   = {"EVAL", nz_inv_pending_done_lua, "1", k, e->asset_id,
                                        e->change_id};
            size_t            lens[6];
            for (int a = 0; a < 6; a++)
                lens[a] = strlen(av[a]);
            if (!nz->w_cur || nz_coal_other(nz->w_cur->wc, 6, av, lens, 1, keys) < 0)
                nz->oom = 1;
            msp_metric_add(nz->conf.metrics, "mspsync_normalizer_date_changes_total", NULL, 1);
        }
    }
    nz_inv_out_clear(&out);
    return rc;
}

/*
 * Commit point: every output delivered, then the queued Redis writes applied.
 * @returns 0, -1 shutdown, -2 fatal.
 */
static int commit(nz_t *nz)
{
    int64_t t  = now_us();
    int     rc = drain_outputs(nz);
    stage_lap(nz, S_KAFKA, &t);
    if (rc < 0)
        return rc;
    w_stats(nz);
    w_close(nz);
    if (nz->oom) {
        MSP_ERROR("normalizer.oom", NULL, "out of memory while building a batch");
        return -2;
    }
    rc = redis_run(nz, &nz->writes, NULL, NULL, "redis write");
    stage_lap(nz, S_REDIS_WRITE, &t);
    if (rc < 0)
        return -1;
    set_paused(nz, 0);
    w_reset(nz);
    outputs_reset(nz);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* records                                                                                      */

/* dropped: the JSON arena is about to be reset, which releases the item's trees at once (a
 * decref would walk every object of them only to free nothing). */
static void item_clear(nz_item_t *it, int dropped) {
    free(it->dead_reason);
    if (!dropped) {
        json_decref(it->canon);
        nz_envelope_clear(&it->env);
    }
    memset(it, 0, sizeof *it);
}

/* Mark it to be dead-lettered for reason once the batch's prepare is over (prepare_fail). */
static void item_fail(nz_item_t *it, int type, const char *reason) {
    it->state = IT_DEAD;
    it->failed = 1;
    it->dead_type = type;
    it->dead_reason = strdup(reason);
}

/*
 * Parse, map, fingerprint one message. Runs on prepare helper threads (par.h): touches only
 * the item — a failure is recorded on it, dead-lettered by prepare_failures afterwards.
 */
static void item_prepare(nz_item_t *it, rd_kafka_message_t *m) {
    char reason[512];

    memset(it, 0, sizeof *it);
    it->msg    = m;
    it->dup_of = -1;
    if (nz_envelope_parse(&it->env, m->payload, m->len, reason, sizeof reason) < 0) {
        item_fail(it, -1, reason);
        return;
    }
    if (it->env.kind == NZ_KIND_SYNC_COMPLETE) {
        it->state = IT_SYNC;
        return;
    }
    if (it->env.kind == NZ_KIND_REMOVED) {
        it->state = IT_REMOVED;
        return;
    }
    if (it->env.kind == NZ_KIND_EDIT) {
        it->state = IT_EDIT;
        return;
    }

    char        err[400] = "";
    nz_type_t   type     = it->env.type;
    if (it->env.kind == NZ_KIND_INCIDENT) {
        const char *received = json_string_value(json_object_get(it->env.root, "received_at"));
        it->canon = msp_map_mtp_incident(it->env.tenant, it->env.payload, received, err, sizeof err);
        if (!it->canon) {
            item_fail(it, (int)type, err);
            return;
        }
        it->id    = json_string_value(json_object_get(it->canon, "fingerprint"));
        it->state = IT_INCIDENT;
        return;
    }
    const msp_vendor_t *vendor = msp_vendor_find(it->env.integration);
    const msp_vendor_type_t *vtype = msp_vendor_type(vendor, nz_type_name(type));
    if (!vendor) {
        char names[64];
        snprintf(reason, sizeof reason, "unknown integration \"%.*s\" (expected %s)",
                 MSP_UTF8_CUT(it->env.integration, 32), msp_vendor_names(names, sizeof names));
        item_fail(it, (int)type, reason);
        return;
    }
    it->canon = vtype ? vtype->map(it->env.tenant, it->env.payload, err, sizeof err) : NULL;
    if (!it->canon) {
        snprintf(reason, sizeof reason, "%s", err[0] ? err : "payload could not be mapped");
        item_fail(it, (int)type, reason);
        return;
    }
    /* a customer the fetcher read from its assets (the key may not list customers) says so */
    const char *derived = json_string_value(json_object_get(it->env.root, "derived_from"));
    if (derived && type == NZ_TYPE_CUSTOMER)
        json_object_set_new(it->canon, "derived_from", json_string(derived));
    it->id = json_string_value(json_object_get(it->canon, "id"));
    if (!it->id || !it->id[0] || strlen(it->id) > NZ_ID_MAX) {
        snprintf(reason, sizeof reason, "%s mapping produced %s canonical id", nz_type_name(type),
                 it->id && it->id[0] ? "an over-long" : "no");
        item_fail(it, (int)type, reason);
        return;
    }
    msp_record_fingerprint(it->canon, it->fp);
    it->state = IT_RECORD;
}

typedef struct {
    nz_item_t *items;
    rd_kafka_message_t **msgs;
} prep_job_t;

static void prepare_share(void *arg, size_t from, size_t to) {
    prep_job_t *j = arg;
    for (size_t i = from; i < to; i++)
        item_prepare(&j->items[i], j->msgs[i]);
}

/* Smallest share worth handing to a helper thread: a hand-over costs tens of microseconds. */
#define PREP_MIN_SHARE 32

/* Prepare every message of the batch (on the prepare threads): touches only the items. */
static void prepare_batch(nz_t *nz, rd_kafka_message_t **msgs, size_t n) {
    prep_job_t j = {nz->items, msgs};
    nz_par_run(nz->par, n, PREP_MIN_SHARE, prepare_share, &j);
}

/* Dead-letter what prepare_batch could not prepare (outputs and writes of the batch). */
static void prepare_failures(nz_t *nz, size_t n) {
    for (size_t i = 0; i < n; i++) {
        nz_item_t *it = &nz->items[i];
        if (!it->failed)
            continue;
        const char *why =
            it->dead_reason ? it->dead_reason : "could not be prepared (out of memory)";
        dead_letter(nz, it, it->dead_type, why);
        if (it->env.root && it->env.kind == NZ_KIND_INCIDENT)
            w_trace_rejected(nz, it, why);
    }
}

static uint64_t key_hash(const nz_item_t *it)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = it->env.tenant; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h = (h ^ 0xffu) * 1099511628211ULL;
    h = (h ^ (unsigned)it->env.type) * 1099511628211ULL;
    for (const char *s = it->id; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Link each record to an earlier record of the segment with the same (tenant, type, id). */
static int find_duplicates(nz_t *nz, size_t a, size_t b)
{
    size_t need = 16;
    while (need < 2 * (b - a))
        need *= 2;
    if (nz->dedup_cap < need) {
        int *d = realloc(nz->dedup, need * sizeof *d);
        if (!d)
            return -1;
        nz->dedup     = d;
        nz->dedup_cap = need;
    }
    size_t mask = need - 1;
    memset(nz->dedup, 0xff, need * sizeof *nz->dedup);
    for (size_t i = a; i < b; i++) {
        nz_item_t *it = &nz->items[i];
        if (it->state != IT_RECORD)
            continue;
        for (size_t s = (size_t)key_hash(it) & mask;; s = (s + 1) & mask) {
            int j = nz->dedup[s];
            if (j < 0) {
                nz->dedup[s] = (int)i;
                break;
            }
            const nz_item_t *o = &nz->items[j];
            if (o->env.type == it->env.type && strcmp(o->id, it->id) == 0 &&
                strcmp(o->env.tenant, it->env.tenant) == 0) {
                it->dup_of   = j;
                nz->dedup[s] = (int)i;   /* later duplicates compare with the latest */
                break;
            }
        }
    }
    return 0;
}

/* Replies 2g and 2g+1 answer group g: HMGET of the stored fingerprints, SMISMEMBER of gone. */
static int lookup_reply(int index, redisReply *r, void *opaque)
{
    nz_t *nz   = opaque;
    int   g    = index / 2;
    int   from = nz->lookup_run[g], to = nz->lookup_run[g + 1];
    if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)(to - from))
        return -1;
    for (int i = from; i < to; i++) {
        nz_item_t  *it = &nz->items[nz->lookup_idx[i]];
        redisReply *e  = r->element[i - from];
        if (index % 2 == 0)
            it->stored_fp = e->type != REDIS_REPLY_STRING ? 0
                            : (e->len == 64 && memcmp(e->str, it->fp, 64) == 0) ? 1 : 2;
        else
            it->was_gone = e->type == REDIS_REPLY_INTEGER && e->integer == 1;
    }
    return 0;
}

static nz_t *sort_nz;   /* qsort has no context argument; single-threaded */

/* (tenant, type), then position: groups keep the batch order inside them. */
static int cmp_lookup(const void *x, const void *y)
{
    const nz_item_t *a = &sort_nz->items[*(const int *)x], *b = &sort_nz->items[*(const int *)y];
    int c = strcmp(a->env.tenant, b->env.tenant);
    if (c == 0)
        c = (int)a->env.type - (int)b->env.type;
    return c ? c : *(const int *)x - *(const int *)y;
}

/* One command over a group: argv[0] cmd, argv[1] key, then the ids of lookup_idx[from, to). */
static int lookup_cmd(nz_t *nz, const char *cmd, const char *key, int from, int to)
{
    size_t argc = (size_t)(to - from) + 2;
    if (nz_grow((void **)&nz->look_argv, &nz->look_argv_cap, argc, sizeof *nz->look_argv) < 0 ||
        nz_grow((void **)&nz->look_lens, &nz->look_lens_cap, argc, sizeof *nz->look_lens) < 0)
        return -1;
    nz->look_argv[0] = cmd;
    nz->look_argv[1] = key;
    for (int i = from; i < to; i++)
        nz->look_argv[2 + i - from] = nz->items[nz->lookup_idx[i]].id;
    for (size_t i = 0; i < argc; i++)
        nz->look_lens[i] = strlen(nz->look_argv[i]);
    return nz_pipe_cmdv(&nz->reads, (int)argc, nz->look_argv, nz->look_lens);
}

/*
 * The change-detection reads of the segment: per (tenant, type), one HMGET of the stored
 * fingerprints and one SMISMEMBER of the gone set (Redis 6.2+), whatever the number of records.
 */
static int lookup(nz_t *nz, size_t nlook)
{
    char k[NZ_KEY_MAX];
    int  ng = 0;
    sort_nz = nz;
    qsort(nz->lookup_idx, nlook, sizeof *nz->lookup_idx, cmp_lookup);
    if (nz_grow((void **)&nz->lookup_run, &nz->lookup_run_cap, nlook + 1,
                sizeof *nz->lookup_run) < 0)
        return -2;
    nz_pipe_reset(&nz->reads);
    for (size_t i = 0; i < nlook;) {
        const nz_item_t *first = &nz->items[nz->lookup_idx[i]];
        size_t           j     = i + 1;
        while (j < nlook && nz->items[nz->lookup_idx[j]].env.type == first->env.type &&
               strcmp(nz->items[nz->lookup_idx[j]].env.tenant, first->env.tenant) == 0)
            j++;
        nz->lookup_run[ng++] = (int)i;
        msp_key(k, sizeof k, first->env.tenant, "inv:fp:%s", nz_type_name(first->env.type));
        if (lookup_cmd(nz, "HMGET", k, (int)i, (int)j) < 0)
            return -2;
        msp_key(k, sizeof k, first->env.tenant, "%s", gone_set(first->env.type));
        if (lookup_cmd(nz, "SMISMEMBER", k, (int)i, (int)j) < 0)
            return -2;
        i = j;
    }
    nz->lookup_run[ng] = (int)nlook;
    return redis_run(nz, &nz->reads, lookup_reply, nz, "redis lookup") < 0 ? -1 : 0;
}

/* Change detection, produce and queued writes for the records of items[a, b). */
static int do_segment(nz_t *nz, size_t a, size_t b)
{
    char   k[NZ_KEY_MAX];
    size_t nlook = 0;

    nz_inv_discard(nz->inv);   /* what an aborted segment queued */
    if (nz_grow((void **)&nz->lookup_idx, &nz->lookup_cap, b - a + 1, sizeof *nz->lookup_idx) < 0 ||
        find_duplicates(nz, a, b) < 0)
        return -2;

    int64_t t = now_us();
    for (size_t i = a; i < b; i++) {
        nz_item_t *it = &nz->items[i];
        if (it->state == IT_RECORD && it->dup_of < 0)
            nz->lookup_idx[nlook++] = (int)i;
    }
    int lrc = nlook ? lookup(nz, nlook) : 0;
    if (lrc < 0)
        return lrc;
    stage_lap(nz, S_LOOKUP, &t);

    for (size_t i = a; i < b; i++) {
        nz_item_t *it = &nz->items[i];
        if (it->state == IT_EDIT) {
            int rc = inv_apply(nz, INV_EDIT, it->env.tenant, it->env.asset_id, it->env.fields,
                               it->env.edit_id);
            if (rc < 0)
                return rc;
            if (rc == 1) {
                char reason[400];
                snprintf(reason, sizeof reason, "asset \"%s\" does not exist or is gone; the "
                         "edit %s was not applied", it->env.asset_id, it->env.edit_id);
                dead_letter(nz, it, NZ_TYPE_ASSET, reason);
            }
            continue;
        }
        if (it->state == IT_INCIDENT) {
            /* No inventory state: every event goes on, the ticket-creator deduplicates. */
            char *json = msp_json_dumps(it->canon, JSON_COMPACT);
            if (!json)
                return -2;
            out_record(nz, NZ_TYPE_INCIDENT, it->env.tenant, it->id, json);   /* takes json */
            metric_count(nz, NZ_TYPE_INCIDENT, R_CHANGED);
            w_trace_incident(nz, it);
            continue;
        }
        if (it->state != IT_RECORD)
            continue;
        const char *tenant = it->env.tenant, *tn = nz_type_name(it->env.type);
        int changed = it->dup_of >= 0 ? strcmp(nz->items[it->dup_of].fp, it->fp) != 0
                                      : it->stored_fp != 1 || it->was_gone;
        if (changed && it->env.type == NZ_TYPE_ASSET) {
            /* A source record: the merged asset is what gets stored and published. */
            if (nz_inv_queue(nz->inv, tenant, it->id, it->canon) < 0)
                return -2;
            w_tenant(nz, tenant);
            msp_key(k, sizeof k, tenant, "inv:fp:asset");
            W(nz, "HSET", k, it->id, it->fp);
            msp_key(k, sizeof k, tenant, "inv:srcgone:asset");
            W(nz, "SREM", k, it->id);
        } else if (changed) {
            char *json = msp_json_dumps(it->canon, JSON_COMPACT);
            if (!json)
                return -2;
            w_record(nz, tenant, it->env.type, it->id, json, it->fp);
            out_record(nz, it->env.type, tenant, it->id, json);   /* takes json */
        } else {
            w_tenant(nz, tenant);
        }
        stat_add(nz, tenant, it->env.type, changed ? R_CHANGED : R_UNCHANGED);
        msp_key(k, sizeof k, tenant, "inv:seen:%s", tn);
        W(nz, "HSET", k, it->id, it->env.job_id);
    }
    stage_lap(nz, S_INVENTORY, &t);   /* the records' queueing is the inventory's CPU */
    int rc = inv_apply(nz, INV_RUN, NULL, NULL, NULL, NULL);
    stage_lap(nz, S_INVENTORY, &t);
    if (rc < 0)
        return rc;
    return nz->oom ? -2 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* sweep: what the finished job did not see is gone                                              */

static int sweep_seen_reply(int index, redisReply *r, void *opaque)
{
    nz_t *nz = opaque;
    nz_buf_reset(&nz->sw_ids);
    nz->sw_n = 0;
    if (r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (nz->sw_job && strlen(nz->sw_job) == v->len && memcmp(v->str, nz->sw_job, v->len) == 0)
            continue;   /* seen by the job that just completed */
        if (strncmp(f->str, nz->sw_prefix, strlen(nz->sw_prefix)) != 0)
            continue;   /* another integration's record */
        if (f->len > NZ_ID_MAX)
            continue;
        if (nz_grow((void **)&nz->sw_off, &nz->sw_cap, nz->sw_n + 1, sizeof *nz->sw_off) < 0)
            return -1;
        long off = nz_buf_append(&nz->sw_ids, f->str, f->len);
        if (off < 0 || nz_buf_append(&nz->sw_ids, "", 1) < 0)
            return -1;
        nz->sw_off[nz->sw_n++] = off;
    }
    return 0;
}

static int sweep_load_reply(int index, redisReply *r, void *opaque)
{
    nz_t  *nz = opaque;
    size_t c  = (size_t)index / 2;
    if (index == 0)
        nz_buf_reset(&nz->sw_json_buf);
    if (r->type == REDIS_REPLY_ERROR)
        return -1;
    if (index % 2 == 0) {
        nz->sw_gone[c] = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    } else {
        nz->sw_json[c] = -1;
        if (r->type == REDIS_REPLY_STRING) {
            long off = nz_buf_append(&nz->sw_json_buf, r->str, r->len);
            if (off < 0 || nz_buf_append(&nz->sw_json_buf, "", 1) < 0)
                return -1;
            nz->sw_json[c] = off;
        }
    }
    return 0;
}

static int sweep(nz_t *nz, const nz_item_t *sc)
{
    const char *tenant = sc->env.tenant, *tn = nz_type_name(sc->env.type);
    char        k[NZ_KEY_MAX];
    int         marked = 0;

    int is_asset = sc->env.type == NZ_TYPE_ASSET;
    nz->sw_job = sc->env.job_id;
    snprintf(nz->sw_prefix, sizeof nz->sw_prefix, "%s:", sc->env.integration);
    nz_pipe_reset(&nz->reads);
    nz->sw_n = 0;
    msp_key(k, sizeof k, tenant, "inv:seen:%s", tn);
    /* A partial pass (only what changed since its mark) says nothing of what it did not see. */
    if (!sc->env.partial && nz_pipe_cmd(&nz->reads, "HGETALL", k, NULL) < 0)
        return -2;
    if (!sc->env.partial && redis_run(nz, &nz->reads, sweep_seen_reply, nz, "redis sweep") < 0)
        return -1;

    size_t n = nz->sw_n;
    if (n) {
        size_t cap = nz->sw_cap;   /* sw_off already holds n; size the parallel arrays alike */
        long  *j   = realloc(nz->sw_json, cap * sizeof *j);
        if (!j)
            return -2;
        nz->sw_json = j;
        int *g = realloc(nz->sw_gone, cap * sizeof *g);
        if (!g)
            return -2;
        nz->sw_gone = g;

        nz_pipe_reset(&nz->reads);
        for (size_t c = 0; c < n; c++) {
            const char *id = nz->sw_ids.p + nz->sw_off[c];
            msp_key(k, sizeof k, tenant, "%s", gone_set(sc->env.type));
            if (nz_pipe_cmd(&nz->reads, "SISMEMBER", k, id, NULL) < 0)
                return -2;
            msp_key(k, sizeof k, tenant, is_asset ? "inv:src:asset:%s" : "inv:%s:%s",
                    is_asset ? id : tn, id);
            if (nz_pipe_cmd(&nz->reads, "GET", k, NULL) < 0)
                return -2;
        }
        if (redis_run(nz, &nz->reads, sweep_load_reply, nz, "redis sweep") < 0)
            return -1;
        /* what is marked gone below must not come from a Redis wiped since the batch began */
        int rc = state_holds(nz);
        if (rc < 0)
            return rc;

        for (size_t c = 0; c < n; c++) {
            const char *id = nz->sw_ids.p + nz->sw_off[c];
            if (nz->sw_gone[c])
                continue;
            if (is_asset && nz->sw_json[c] >= 0) {
                /* Re-merge its asset; srcgone is set at the commit, after Kafka acknowledged
                 * the merged record, so that a replay does this again. */
                int rc = inv_apply(nz, INV_GONE, tenant, id, NULL, NULL);
                if (rc < 0)
                    return rc;
                w_tenant(nz, tenant);
                msp_key(k, sizeof k, tenant, "inv:srcgone:asset");
                W(nz, "SADD", k, id);
                stat_add(nz, tenant, sc->env.type, R_GONE);
                marked++;
                continue;
            }
            if (nz->sw_json[c] < 0) {
                MSP_WARN("sweep.missing", tenant, "type=%s id=%s is in inv:seen but has no stored "
                         "record; not marked gone", tn, id);
                continue;
            }
            json_error_t jerr;
            json_t *rec = json_loads(nz->sw_json_buf.p + nz->sw_json[c], 0, &jerr);
            if (!json_is_object(rec)) {
                MSP_WARN("sweep.corrupt", tenant, "type=%s id=%s stored record is not a JSON "
                         "object (%s); not marked gone", tn, id, rec ? "wrong type" : jerr.text);
                json_decref(rec);
                continue;
            }
            json_object_set_new(rec, "gone", json_true());
            char *json = json_dumps(rec, JSON_COMPACT);
            json_decref(rec);
            if (!json)
                return -2;
            w_record(nz, tenant, sc->env.type, id, json, NULL);
            out_record(nz, sc->env.type, tenant, id, json);
            stat_add(nz, tenant, sc->env.type, R_GONE);
            marked++;
        }
    }
    /* The inventory now reflects this job for this type: the gateway reports the integration
     * Connected only once every type of the job got here (committed with the gone marks). */
    char field[80];
    const msp_vendor_t *vendor = msp_vendor_find(sc->env.integration);
    if (vendor)
        snprintf(field, sizeof field, "%s%s_complete_job", vendor->stats_prefix, tn);
    else
        snprintf(field, sizeof field, "%s_%s_complete_job", sc->env.integration, tn);
    w_tenant(nz, tenant);
    msp_key(k, sizeof k, tenant, "inv:stats");
    W(nz, "HSET", k, field, sc->env.job_id);
    MSP_INFO("sweep.done", tenant, "type=%s job=%s candidates=%zu marked_gone=%d%s", tn,
             sc->env.job_id, n, marked, sc->env.partial ? " (partial pass: no sweep)" : "");
    return nz->oom ? -2 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* removal of an integration: its records leave the inventory                                  */

static int collect_ids_reply(int index, redisReply *r, void *opaque)
{
    nz_t *nz = opaque;
    nz_buf_reset(&nz->sw_ids);
    nz->sw_n = 0;
    if (r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len > NZ_ID_MAX ||
            strncmp(e->str, nz->sw_prefix, strlen(nz->sw_prefix)) != 0)
            continue;
        if (nz_grow((void **)&nz->sw_off, &nz->sw_cap, nz->sw_n + 1, sizeof *nz->sw_off) < 0)
            return -1;
        long off = nz_buf_append(&nz->sw_ids, e->str, e->len);
        if (off < 0 || nz_buf_append(&nz->sw_ids, "", 1) < 0)
            return -1;
        nz->sw_off[nz->sw_n++] = off;
    }
    return 0;
}

/*
 * The gateway removed an integration: its customers, contacts, tickets and settings get
 * tombstones and leave the view; its source asset records are unlinked (an asset another
 * integration still sees stays, re-merged; one left without sources gets a tombstone).
 * Idempotent: a replay finds nothing left to remove.
 */
static int remove_integration(nz_t *nz, const nz_item_t *it)
{
    static const nz_type_t kept[] = {NZ_TYPE_CUSTOMER, NZ_TYPE_CONTACT, NZ_TYPE_TICKET,
                                     NZ_TYPE_SETTING};
    const char *tenant = it->env.tenant;
    char        k[NZ_KEY_MAX];
    size_t records = 0, sources = 0;

    snprintf(nz->sw_prefix, sizeof nz->sw_prefix, "%s:", it->env.integration);
    for (size_t t = 0; t < sizeof kept / sizeof kept[0]; t++) {
        const char *tn = nz_type_name(kept[t]);
        nz_pipe_reset(&nz->reads);
        msp_key(k, sizeof k, tenant, "inv:%ss", tn);
        if (nz_pipe_cmd(&nz->reads, "ZRANGE", k, "0", "-1", NULL) < 0)
            return -2;
        if (redis_run(nz, &nz->reads, collect_ids_reply, nz, "redis removal") < 0)
            return -1;
        for (size_t c = 0; c < nz->sw_n; c++) {
            const char *id = nz->sw_ids.p + nz->sw_off[c];
            w_tenant(nz, tenant);
            msp_key(k, sizeof k, tenant, "inv:%s:%s", tn, id);
            W(nz, "DEL", k);
            msp_key(k, sizeof k, tenant, "inv:%ss", tn);
            W(nz, "ZREM", k, id);
            msp_key(k, sizeof k, tenant, "inv:fp:%s", tn);
            W(nz, "HDEL", k, id);
            msp_key(k, sizeof k, tenant, "inv:seen:%s", tn);
            W(nz, "HDEL", k, id);
            msp_key(k, sizeof k, tenant, "%s", gone_set(kept[t]));
            W(nz, "SREM", k, id);
            out_record(nz, kept[t], tenant, id, NULL);
            records++;
        }
    }

    nz_pipe_reset(&nz->reads);
    msp_key(k, sizeof k, tenant, "inv:link");
    if (nz_pipe_cmd(&nz->reads, "HKEYS", k, NULL) < 0)
        return -2;
    if (redis_run(nz, &nz->reads, collect_ids_reply, nz, "redis removal") < 0)
        return -1;
    for (size_t c = 0; c < nz->sw_n; c++) {
        char id[NZ_ID_MAX + 1];
        snprintf(id, sizeof id, "%s", nz->sw_ids.p + nz->sw_off[c]);
        int rc = inv_apply(nz, INV_REMOVE, tenant, id, NULL, NULL);
        if (rc < 0)
            return rc;
        sources++;
    }
    MSP_INFO("integration.removed", tenant, "integration=%s records=%zu asset_sources=%zu",
             it->env.integration, records, sources);
    return nz->oom ? -2 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the batch                                                                                    */

static void store_offsets(nz_t *nz, rd_kafka_message_t **msgs, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < n; i++) {
        const char *topic = rd_kafka_topic_name(msgs[i]->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(l, topic, msgs[i]->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(l, topic, msgs[i]->partition);
        if (msgs[i]->offset + 1 > p->offset)
            p->offset = msgs[i]->offset + 1;
    }
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(nz->consumer, l);
    if (err) {
        for (int i = 0; i < l->cnt; i++)
            if (l->elems[i].err)
                MSP_INFO("kafka.offset_not_stored", NULL, "%s[%d]@%lld: %s (partition revoked? "
                         "the new owner replays it)", l->elems[i].topic,
                         (int)l->elems[i].partition, (long long)l->elems[i].offset,
                         rd_kafka_err2str(l->elems[i].err));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void publish_metrics(nz_t *nz, int64_t started_ms)
{
    char labels[96];
    for (int t = 0; t <= NZ_TYPE_COUNT; t++)
        for (int r = 0; r < R_COUNT; r++) {
            if (!nz->metric_n[t][r])
                continue;
            snprintf(labels, sizeof labels, "type=\"%s\",result=\"%s\"",
                     t < NZ_TYPE_COUNT ? nz_type_name((nz_type_t)t) : "unknown", result_names[r]);
            msp_metric_add(nz->conf.metrics, M_RECORDS, labels, (double)nz->metric_n[t][r]);
        }
    msp_metric_add(nz->conf.metrics, M_BATCHES, NULL, 1);
    msp_metric_set(nz->conf.metrics, M_BATCH_S, NULL, (double)(msp_now_ms() - started_ms) / 1e3);
    for (int s = 0; s < S_COUNT; s++)
        msp_metric_add(nz->conf.metrics, M_STAGE_S, stage_labels[s], (double)nz->stage_us[s] / 1e6);
}

static void destroy_messages(rd_kafka_message_t **msgs, size_t n) {
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
}

/* The end of a batch whose commit is done (rc 0) or abandoned: its offsets, metrics, log. */
static void batch_end(nz_t *nz, rd_kafka_message_t **msgs, size_t n, int64_t started, int rc) {
    if (rc == 0) {
        store_offsets(nz, msgs, n);
        publish_metrics(nz, started);
        long long dead = 0;
        for (int t = 0; t <= NZ_TYPE_COUNT; t++)
            dead += nz->metric_n[t][R_DEAD];
        MSP_DEBUG("batch.done", NULL, "messages=%zu dead_lettered=%lld ms=%lld", n, dead,
                  (long long)(msp_now_ms() - started));
    } else {
        /* Nothing stored: the batch replays. Outputs already handed to librdkafka stay owned by
         * nz until their delivery reports (nz_destroy after the producer is destroyed). */
        w_reset(nz);
        nz->nstats = 0;
        MSP_WARN("batch.aborted", NULL, "batch of %zu messages abandoned (%s); it will be replayed",
                 n, rc == -1 ? "shutdown" : "fatal error");
    }
}

/*
 * Commit the deferred batch: wait for its delivery reports, apply its Redis writes, store its
 * offsets. next_made: the next batch is already being made in the other arena generation (only
 * the deferred batch's is emptied); otherwise both are. @returns 0, -1 shutdown, -2 fatal.
 */
static int finish_pending(nz_t *nz, int next_made) {
    if (nz->npend == 0)
        return 0;
    nz->finishing = 1;
    int rc = commit(nz);
    nz->finishing = 0;
    batch_end(nz, nz->pend, nz->npend, nz->pend_started, rc);
    destroy_messages(nz->pend, nz->npend);
    nz->npend = 0;
    /* After an abort librdkafka may still hold payloads, and the process is stopping anyway:
     * keep the memory. */
    if (rc == 0)
        next_made ? nz_json_arena_release() : nz_json_arena_reset();
    return rc;
}

int nz_finish_pending(nz_t *nz) { return finish_pending(nz, 0); }

int nz_has_pending(const nz_t *nz) { return nz->npend > 0; }

/*
 * Redis lost its state during the batch (NZ_LOST). The outputs of its steps before the loss go
 * out: they come from the state the batch began on, as if the loss had come after the batch.
 * Everything else it did is dropped — its queued writes, the step that found the loss — and the
 * batch is processed again from its first message once the state is back (the caller waits in
 * state_gate). A message dead-lettered before the loss is dead-lettered again, as after a crash.
 * @returns 0, -1 shutdown, -2 fatal.
 */
static int batch_restart(nz_t *nz, size_t n) {
    MSP_WARN("batch.restart", NULL,
             "Redis lost its state during a batch of %zu messages: the "
             "batch is processed again once the state is restored",
             n);
    msp_metric_add(nz->conf.metrics, M_RESTARTS, NULL, 1);
    int rc = drain_outputs(nz);
    if (rc < 0)
        return rc;
    nz_inv_discard(nz->inv);
    w_reset(nz);
    nz->nstats = 0;
    outputs_reset(nz);
    for (size_t i = 0; i < n; i++)
        item_clear(&nz->items[i], 0);
    return 0;
}

int nz_process_batch(nz_t *nz, rd_kafka_message_t **msgs, size_t n)
{
    int64_t started = msp_now_ms();
    int     rc      = 0;
    /* A batch's last commit waits for the next batch's prepare when the JSON arena can keep
     * both batches' trees apart (two generations, json_arena.h). */
    int defer = nz_json_arena_enabled();

    if (nz->fatal) {
        destroy_messages(msgs, n);
        return -2;
    }
    if (n == 0) {
        if (nz->npend)
            return finish_pending(nz, 0);
        /* idle: a lost state is still noticed (the rebuild does not wait for a record) */
        if (msp_now_ms() - nz->gate_at < 1000)
            return 0;
        nz->gate_at = msp_now_ms();
        return state_gate(nz) < 0 ? -1 : 0;
    }
    if (nz_grow((void **)&nz->items, &nz->items_cap, n, sizeof *nz->items) < 0) {
        destroy_messages(msgs, n);
        return -2;
    }

    /* Prepare first: pure CPU on the items, while the deferred batch's deliveries and Redis
     * writes are still under way; then commit that batch before anything reads Redis. */
    int next_made = nz->npend > 0;
    if (next_made)
        nz_json_arena_next();
again:;
    int64_t t = now_us();
    prepare_batch(nz, msgs, n);
    int64_t prepare_us = now_us() - t;
    if ((rc = finish_pending(nz, next_made)) < 0)
        goto abandon;
    if (state_gate(nz) < 0) {
        rc = -1;
        goto abandon;
    }
    memset(nz->metric_n, 0, sizeof nz->metric_n);
    memset(nz->stage_us, 0, sizeof nz->stage_us);
    nz->stage_us[S_PREPARE] = prepare_us;
    nz->oom = 0;
    prepare_failures(nz, n);

    size_t seg = 0;
    for (size_t i = 0; i <= n && rc == 0; i++) {
        if (i < n && nz->items[i].state != IT_SYNC && nz->items[i].state != IT_REMOVED)
            continue;
        if ((rc = do_segment(nz, seg, i)) < 0)
            break;
        if (i == n && defer)
            break; /* the last commit: finish_pending, after the next batch's prepare */
        if ((rc = commit(nz)) < 0)
            break;
        if (i < n) {
            /* The sweep reads what the commit just wrote; its gone records are committed at the
             * next sync_complete or at the end of the batch. */
            rc = nz->items[i].state == IT_SYNC ? sweep(nz, &nz->items[i])
                                               : remove_integration(nz, &nz->items[i]);
            if (rc < 0)
                break;
        }
        seg = i + 1;
    }
    if (rc == NZ_LOST) {
        if ((rc = batch_restart(nz, n)) == 0) {
            next_made = 0;
            goto again;
        }
        goto abandon;
    }

    if (rc == 0 && defer) {
        if (nz_grow((void **)&nz->pend, &nz->pend_cap, n, sizeof *nz->pend) < 0) {
            rc = -2;
            goto abandon;
        }
        memcpy(nz->pend, msgs, n * sizeof *msgs);
        nz->npend = n;
        /* Send the outputs now rather than after linger.ms: a flush ignores the linger while
         * it runs and wakes the broker threads (1 ms is enough for them to start sending). */
        rd_kafka_flush(nz->producer, 1);
        nz->pend_started = started;
        /* the trees stay in this generation of the arena until finish_pending */
        for (size_t i = 0; i < n; i++)
            item_clear(&nz->items[i], 1);
        return 0;
    }
abandon:
    /* Committed here only without the arena (nothing to empty); with it, an abort: librdkafka
     * may still hold payloads and the process is stopping anyway, so the memory stays. */
    batch_end(nz, msgs, n, started, rc);
    for (size_t i = 0; i < n; i++)
        item_clear(&nz->items[i], 0);
    destroy_messages(msgs, n);
    return rc;
}

size_t nz_take_held(nz_t *nz, rd_kafka_message_t **msgs, size_t max)
{
    size_t k = nz->nheld < max ? nz->nheld : max;
    if (k == 0)
        return 0;
    memcpy(msgs, nz->held, k * sizeof *msgs);
    memmove(nz->held, nz->held + k, (nz->nheld - k) * sizeof *nz->held);
    nz->nheld -= k;
    return k;
}

/* ------------------------------------------------------------------------------------------ */
/* group membership and readiness                                                               */

void nz_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                     rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    nz_t             *nz    = opaque;
    int coop = msp_kafka_cooperative(rk);
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && nz->npend && !nz->finishing) {
        /* The deferred batch is committed while its partitions are still ours: its offsets
         * stored, no other replica replays it. Waits here cannot poll the consumer. */
        nz->in_rebalance = 1;
        if (finish_pending(nz, 0) == -2)
            nz->fatal = 1;
        nz->in_rebalance = 0;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        nz->joined = 1;
        MSP_INFO("kafka.assigned", NULL, "%d partition(s) assigned", parts->cnt);
        if (coop)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
        /* librdkafka keeps a partition's pause across a revoke and a new assignment: one this
         * replica paused while it last had it (a retry) and lost before the resume would stay
         * paused for good once it came back. Every assigned partition gets the state of now. */
        if (nz->paused && parts->cnt > 0)
            rd_kafka_pause_partitions(rk, parts);   /* a retry is waiting: don't fetch yet */
        else if (parts->cnt > 0)
            rd_kafka_resume_partitions(rk, parts);
    } else {
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            MSP_INFO("kafka.revoked", NULL, "%d partition(s) revoked", parts->cnt);
        else
            MSP_WARN("kafka.rebalance_error", NULL, "%s", rd_kafka_err2str(err));
        if (coop)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ret = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        MSP_ERROR("kafka.assign_failed", NULL, "%s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        MSP_ERROR("kafka.assign_failed", NULL, "%s", rd_kafka_err2str(ret));
    }
}

int nz_ready(void *opaque, char *why, size_t why_size)
{
    nz_t *nz = opaque;
    char  err[256];

    if (nz->degraded[0]) {
        int waiting = strncmp(nz->degraded, "waiting", 7) == 0; /* the state gate's phrases */
        snprintf(why, why_size, "%s%s", waiting ? "" : "retrying ", nz->degraded);
        return 0;
    }
    /* /readyz is not authenticated: why is a fixed phrase, the details go to the log */
    if (msp_redis_ensure(&nz->redis, nz->conf.redis_url, err, sizeof err) < 0) {
        MSP_WARN("redis.unavailable", NULL, "%s", err);
        snprintf(why, why_size, "redis unavailable");
        return 0;
    }
    redisReply *r = redisCommand(nz->redis, "PING");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (!ok) {
        MSP_WARN("redis.unavailable", NULL, "PING: %s", r && r->type == REDIS_REPLY_ERROR
                                                            ? r->str : nz->redis->errstr);
        snprintf(why, why_size, "redis unavailable");
    }
    if (r)
        freeReplyObject(r);
    if (!ok)
        return 0;

    if (!nz->joined) {
        rd_kafka_topic_partition_list_t *a = NULL;
        int assigned = 0;
        if (nz->consumer && rd_kafka_assignment(nz->consumer, &a) == 0 && a) {
            assigned = a->cnt > 0;
            rd_kafka_topic_partition_list_destroy(a);
        }
        if (!assigned) {
            snprintf(why, why_size, "not yet joined consumer group (no partitions assigned)");
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* life cycle                                                                                   */

nz_t *nz_new(const nz_conf_t *conf)
{
    nz_t *nz = calloc(1, sizeof *nz);
    if (!nz)
        return NULL;
    nz->conf = *conf;
    nz->inv  = nz_inv_new(conf->identity_max_shared);
    /* jansson seeds its hash function on first use: do it here, before the helpers exist. */
    json_object_seed(0);
    nz->par = nz_par_new(conf->prepare_threads);
    if (!nz->inv || !nz->par ||
        nz_grow((void **)&nz->items, &nz->items_cap, conf->batch_size, sizeof *nz->items) < 0) {
        nz_par_destroy(nz->par);
        nz_inv_destroy(nz->inv);
        free(nz);
        return NULL;
    }
    nz_inv_set_par(nz->inv, nz->par);
    msp_metric_declare(conf->metrics, M_RECORDS, "counter",
                       "Records handled, by type and result (changed, unchanged, gone, "
                       "dead_lettered).");
    msp_metric_declare(conf->metrics, M_BATCHES, "counter", "Batches committed.");
    msp_metric_declare(conf->metrics, M_BATCH_S, "gauge", "Duration of the last batch, seconds.");
    msp_metric_declare(conf->metrics, M_STAGE_S, "counter",
                       "Seconds committed batches spent per stage: prepare (parse, map, "
                       "fingerprint), lookup (change detection in Redis), inventory (merges and "
                       "their Redis round trips), kafka_ack (waiting for the outputs' delivery), "
                       "redis_write (the commit's writes).");
    msp_metric_declare(conf->metrics, M_RETRIES, "counter",
                       "Retries after a Redis or Kafka failure, by stage.");
    msp_metric_declare(conf->metrics, M_RESTARTS, "counter",
                       "Batches processed again because Redis lost its state while they were "
                       "processed.");
    msp_metric_declare(conf->metrics, "mspsync_normalizer_date_changes_total", "counter",
                       "Date changes sent to date.changes (edits and settled conflicts).");
    return nz;
}

void nz_set_kafka(nz_t *nz, rd_kafka_t *consumer, rd_kafka_t *producer)
{
    nz->consumer = consumer;
    nz->producer = producer;
}

void nz_destroy(nz_t *nz)
{
    if (!nz)
        return;
    nz_par_destroy(nz->par);
    outputs_reset(nz);
    destroy_messages(nz->held, nz->nheld);
    free(nz->held);
    destroy_messages(nz->pend, nz->npend);
    free(nz->pend);
    nz_inv_destroy(nz->inv);
    free(nz->items);
    free(nz->outs);
    free(nz->stats);
    free(nz->dedup);
    free(nz->lookup_idx);
    free(nz->lookup_run);
    free(nz->look_argv);
    free(nz->look_lens);
    free(nz->sw_off);
    free(nz->sw_json);
    free(nz->sw_gone);
    nz_buf_free(&nz->sw_ids);
    nz_buf_free(&nz->sw_json_buf);
    nz_buf_free(&nz->arena);
    nz_pipe_free(&nz->reads);
    nz_pipe_free(&nz->writes);
    for (size_t i = 0; i < nz->wb_cap && nz->wb; i++)
        if (nz->wb[i]) {
            nz_coal_free(nz->wb[i]->wc);
            nz_pipe_free(&nz->wb[i]->cmds);
            free(nz->wb[i]);
        }
    free(nz->wb);
    if (nz->redis)
        redisFree(nz->redis);
    free(nz);
}
