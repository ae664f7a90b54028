/*
 * job.c — one sync job: pull every page of each record type a vendor syncs (customers, then
 * assets), from one account of the vendor the job names. The vendor's row (vendor.h) knows the
 * rest: its credentials, how to authenticate, and per record type a pager that builds each
 * request, reads each answer and writes the cursor; this file hands each request to the
 * vendor-call engine (vcall.h: rate token, auth, send, classify, backoff, one re-auth on 401)
 * and moves the cursor, the same way for every vendor.
 *
 * States of a job, all driven by the event loop:
 *
 *   QUEUED ─► (tenant free) ─► TOKEN ─► HTTP ─► ACKS ─► TOKEN (next page) … ─► DONE / FAILED
 *                                 ▲        │ 429/5xx/timeout/bad JSON: wait (Retry-After or
 *                                 └────────┘ jittered backoff), then TOKEN again
 *
 * Invariants:
 * - Before every HTTP attempt the job takes one token from the GCRA bucket of its vendor
 *   account in Redis; every replica and the gateway share that bucket.
 * - The cursor (mspsync:{t}:cursor:<vendor>:<job>, in the format of the type's pager) moves to
 *   the next page only after Kafka has acknowledged every record of the page (delivery
 *   reports), and by compare-and-set, so a replica that lost the job in a rebalance cannot
 *   move it.
 * - The job's sync.jobs offset is stored only when the job is finished (done or failed for a
 *   reason retrying cannot fix): a kill -9 replays the job message and the cursor resumes it.
 * - A job struct is freed only when no HTTP request, delivery report or timer refers to it.
 * - Redis is asked on the service's async connection (aredis.h): a step that needs an answer
 *   sends its commands together and goes on in the last answer's callback (job_rq); writes whose
 *   answer nothing waits for go through fetcher_write. A missing answer (Redis down, stalled
 *   past the limit) takes the path a failed call always took: wait and retry, the offset
 *   unstored. Finishing or freeing a job cancels its answers still to come.
 */
#include "fetcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"
#include "mspsync/utf8.h"
#include "mspsync/vcall.h"
#include "mspsync/vendor.h"

typedef enum {
    JOB_QUEUED,
    JOB_STARTING, /* reading what its start needs from Redis (features, marks, cursor) */
    JOB_TOKEN,    /* checking the integration, waiting for a rate-limit token (or a retry delay) */
    JOB_HTTP,     /* request in flight */
    JOB_ACKS,     /* page records produced, waiting for delivery reports */
    JOB_CURSOR,   /* every record acknowledged: moving the cursor */
    JOB_FINISHED, /* done, failed or abandoned; freed once nothing refers to it */
} job_state_t;

/* A Redis step of a job (job_rq): one command's reader (r: an answer, never an error) and what
 * goes on once the step's last answer is in (why: NULL, or why an answer is missing). */
typedef void(job_reader_fn)(job_t *j, redisReply *r);
typedef void(job_then_fn)(job_t *j, const char *why);
#define JOB_RQ_MAX 6

struct job_s {
    fetcher_t  *f;
    job_t      *next;
    job_state_t state;
    int waiting_logged; /* the credentials could not be loaded yet: said once */
    int         abandoned;

    char tenant[80];
    char job_id[80];
    char reason[32];
    char mode[16];
    const msp_vendor_t *vendor;     /* names keys, events and records */
    int todo[MSP_VENDOR_TYPES_MAX]; /* indexes of vendor->types, in its order */
    int off[MSP_VENDOR_TYPES_MAX];  /* 1: the type's feature is off on the integration */
    int todo_cnt;
    int todo_idx;

    char   *src_topic;
    int32_t partition;
    int64_t offset;

    msp_vendor_cred_t cred; /* base URL, secret, bucket key */
    msp_vendor_cred_async_t cred_op; /* its load, while JOB_STARTING */
    msp_pager_t *pager;     /* the pager of todo[todo_idx]; NULL before the job runs */
    msp_pager_req_t req;    /* the last request sent (method, path for errors) */
    msp_vcall_t vc;         /* the call in progress and the job's timer (vcall.h) */
    msp_vcall_vendor_t va;  /* the row's auth with cred, for vc */

    int page;
    long type_records;
    long records_fetched[MSP_VENDOR_TYPES_MAX];
    int  pending_dr;
    int dr_failed;
    int type_done; /* the page just fetched was the type's last */
    int resumed;   /* the cursor was there before this run: a restart or a rebalance resumed it */
    int ack_due;   /* finished: its sync.jobs offset is stored once its events are in Kafka */
    char ended[8]; /* "done" / "failed": how an earlier run ended it (its cursor says so) */

    /* The Redis step in flight (job_rq): each command's reader, the step's continuation. */
    job_reader_fn *rq_read[JOB_RQ_MAX];
    job_then_fn *rq_then; /* set while the step's answers are awaited */
    int rq_sent, rq_got;
    char rq_why[256]; /* the first missing or failed answer */
    /* What the steps read. */
    int paused, exists, lost, cas_rc;
    char *features;                    /* integration:<vendor> "features"; NULL: none stored */
    char *marks[MSP_VENDOR_TYPES_MAX]; /* an incremental job's marks, by vendor type */
    char *cur_read;                    /* the cursor read; NULL: none */
    int from_start;                    /* the cursor is read for the start (else: followed) */
    msp_pager_t *made;                 /* a pager waiting for its cursor's compare-and-set */
    int made_idx;                      /* its index in todo */
};

static void job_step(job_t *j);
static void job_request(void *arg);
static void job_fail(job_t *j, const char *error, const char *hint, int pause);

/* ---------------------------------------------------------------- helpers */

/* ---- Redis steps: commands sent together, the last answer goes on ---------------------------- */

static void job_rq_begin(job_t *j, job_then_fn *then) {
    j->rq_then = then;
    j->rq_sent = j->rq_got = 0;
    j->rq_why[0] = '\0';
}

static void job_rq_miss(job_t *j, const char *why) {
    if (!j->rq_why[0])
        snprintf(j->rq_why, sizeof(j->rq_why), "%s", why && why[0] ? why : "no answer from Redis");
}

/* Every answer is in (or none will come): go on. */
static void job_rq_done(job_t *j) {
    job_then_fn *then = j->rq_then;
    j->rq_then = NULL;
    if (then)
        then(j, j->rq_why[0] ? j->rq_why : NULL);
}

static void job_rq_reply(void *arg, redisReply *r, const char *why) {
    job_t *j = arg;
    job_reader_fn *read = j->rq_read[j->rq_got++];
    if (!r)
        job_rq_miss(j, why);
    else if (r->type == REDIS_REPLY_ERROR)
        job_rq_miss(j, r->str);
    else if (!j->rq_why[0] && read)
        read(j, r);
    if (j->rq_got == j->rq_sent)
        job_rq_done(j);
}

/* Count a command handed to aredis (rc: what it returned), read by read (NULL: no value). A
 * refused one ends the step: the answers of those already sent are dropped. */
static void job_rq_sent(job_t *j, job_reader_fn *read, int rc) {
    if (j->rq_why[0])
        return;
    if (rc != 0) {
        msp_aredis_cancel(j->f->aredis, j);
        j->rq_got = j->rq_sent;
        job_rq_miss(j, "Redis is not connected");
        return;
    }
    j->rq_read[j->rq_sent++] = read;
}

/* One command of the step (argc strings). */
static void job_rq(job_t *j, job_reader_fn *read, int argc, const char **argv) {
    if (j->rq_why[0])
        return;
    if (j->rq_sent >= JOB_RQ_MAX) {
        job_rq_sent(j, NULL, -1);
        return;
    }
    job_rq_sent(j, read, msp_aredis_cmdargv(j->f->aredis, job_rq_reply, j, argc, argv, NULL));
}

static void job_read_cas(job_t *j, redisReply *r) { j->cas_rc = msp_cursor_cas_reply(r); }

/* The compare-and-set of the job's cursor key (msp_cursor_cas_async) as a command of the step. */
static void job_rq_cas(job_t *j, const char *key, const char *expected, const char *newval,
                       int64_t ttl_ms) {
    if (j->rq_why[0])
        return;
    j->cas_rc = -1;
    job_rq_sent(j, job_read_cas,
                msp_cursor_cas_async(j->f->aredis, key, expected, newval, ttl_ms, job_rq_reply, j));
}

/* The step's commands are out: when none is awaited (none sent, or one refused), go on now. */
static void job_rq_end(job_t *j) {
    if (j->rq_got == j->rq_sent)
        job_rq_done(j);
}

/* Forget the step in flight: its answers will not come here (the job finishes or is freed). */
static void job_rq_cancel(job_t *j) {
    msp_aredis_cancel(j->f->aredis, j);
    msp_vendor_cred_cancel(&j->cred_op);
    j->rq_then = NULL;
}

/* ---- writes nothing waits for ------------------------------------------------------------- */

typedef struct write_note_s {
    char tenant[128];
    char what[96];
} write_note_t;

static void write_answered(void *arg, redisReply *r, const char *why) {
    write_note_t *n = arg;
    if (!r || r->type == REDIS_REPLY_ERROR)
        MSP_WARN("redis.write_lost", n->tenant, "%s: %s", n->what, r ? r->str : why);
    free(n);
}

void fetcher_write(fetcher_t *f, const char *tenant, const char *what, int argc, const char **argv,
                   const size_t *argl) {
    write_note_t *n = calloc(1, sizeof(*n));
    if (n) {
        snprintf(n->tenant, sizeof(n->tenant), "%s", tenant);
        snprintf(n->what, sizeof(n->what), "%s", what);
    }
    if (msp_aredis_cmdargv(f->aredis, n ? write_answered : NULL, n, argc, argv, argl) != 0) {
        MSP_WARN("redis.write_lost", tenant, "%s: Redis is not connected", what);
        free(n);
    }
}

static void cursor_key(const job_t *j, char *buf, size_t size) {
    msp_key(buf, size, j->tenant, "cursor:%s:%s", j->vendor->name, j->job_id);
}

static const msp_vendor_type_t *job_type(const job_t *j) {
    return &j->vendor->types[j->todo[j->todo_idx]];
}

/* The job's calls go to its loaded integration, at this service's rate settings for the
 * vendor (MSP_SVC_VENDOR_RATE_ROWS reads a pair for every vendor row). */
static void job_use_cred(job_t *j) {
    const msp_vendor_rates_t *r = &j->f->conf.svc.rates;
    j->va = (msp_vcall_vendor_t){.auth = &j->f->auth, .cred = &j->cred};
    msp_vcall_vendor_account(&j->vc, &j->va, msp_vendor_rate_per_s(r, j->vendor),
                             msp_vendor_rate_burst(r, j->vendor));
}

static void status_set(job_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* HSET on the integration status hash; fmt gives "field %s field %s ..." pairs. */
static void status_set(job_t *j, const char *fmt, ...) {
    char key[256], cmd[2048];
    msp_key(key, sizeof(key), j->tenant, "status:%s", j->vendor->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    /* Build an argv so that values may contain spaces: fields and values are separated by \x1f. */
    const char *argv[32];
    size_t argl[32];
    int argc = 0;
    argv[argc] = "HSET";
    argl[argc++] = 4;
    argv[argc] = key;
    argl[argc++] = strlen(key);
    char *p = cmd;
    while (*p && argc < 32) {
        char *sep = strchr(p, '\x1f');
        argv[argc] = p;
        argl[argc++] = sep ? (size_t)(sep - p) : strlen(p);
        if (!sep) break;
        p = sep + 1;
    }
    fetcher_write(j->f, j->tenant, "status", argc, argv, argl);
}

static void event_emit(job_t *j, const char *event, json_t *extra) {
    char at[40];
    msp_format_time(msp_wall_ms(), at, sizeof(at));
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "schema_version", 1, "tenant", j->tenant,
                          "integration", j->vendor->name, "job_id", j->job_id, "event", event, "at",
                          at, "replica", j->f->replica_id);
    if (extra) {
        json_object_update(o, extra);
        json_decref(extra);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    /* Counted with the page's records (pending_dr): the cursor moves past a page, and a
     * finished job's offset is stored, only once its events are in Kafka too, so a kill -9
     * never loses the event of a page the resumed job will not fetch again (the history would
     * miss its records) nor a job's last event. */
    j->pending_dr++;
    if (!s || msp_kafka_produce(j->f->producer, msp_topic(MSP_TOPIC_SYNC_EVENTS), j->tenant,
                                strlen(j->tenant), s, strlen(s), NULL, j) != 0)
        j->pending_dr--;
    free(s);
}

static void job_free(job_t *j) {
    fetcher_t *f = j->f;
    for (job_t **pp = &f->jobs; *pp; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    }
    f->jobs_cnt--;
    job_rq_cancel(j);
    msp_vcall_clear(&j->vc);
    if (j->made)
        j->vendor->types[j->todo[j->made_idx]].pager->destroy(j->made);
    if (j->pager)
        job_type(j)->pager->destroy(j->pager);
    free(j->features);
    free(j->cur_read);
    for (int k = 0; k < MSP_VENDOR_TYPES_MAX; k++)
        free(j->marks[k]);
    msp_vendor_cred_clear(&j->cred);
    free(j->src_topic);
    free(j);
    msp_metric_set(f->metrics, "mspsync_fetcher_jobs", NULL, f->jobs_cnt);
}

static void job_ack_offset(job_t *j);

/* Store a finished job's offset once its last events are delivered; free it once nothing
 * refers to it. */
static void job_release_if_idle(job_t *j) {
    if (j->state == JOB_FINISHED)
        msp_vcall_stop(&j->vc); /* a token wait is cancelled */
    if (j->state == JOB_FINISHED && j->ack_due && j->pending_dr == 0) {
        j->ack_due = 0;
        job_ack_offset(j);
    }
    if (j->state == JOB_FINISHED && !j->vc.http_inflight && j->pending_dr == 0)
        job_free(j);
}

static job_t *tenant_running(fetcher_t *f, const char *tenant, const job_t *except) {
    for (job_t *j = f->jobs; j; j = j->next)
        if (j != except && j->state != JOB_QUEUED && j->state != JOB_FINISHED &&
            !strcmp(j->tenant, tenant))
            return j;
    return NULL;
}

/* The job's sync.jobs message is dealt with: let its offset be committed (in order). */
static void job_ack_offset(job_t *j) {
    fetcher_t *f = j->f;
    int64_t next = msp_offtrack_done(f->offtrack, j->src_topic, j->partition, j->offset);
    if (next >= 0) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, j->src_topic, j->partition)->offset = next;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(f->consumer, l);
        if (err)
            MSP_DEBUG("offset.store_failed", j->tenant, "%s [%d] @%lld: %s", j->src_topic,
                      (int)j->partition, (long long)next, rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(l);
    }
}

/* Start the next queued job of the same tenant, if any (oldest first). */
static void start_next_for_tenant(fetcher_t *f, const char *tenant) {
    job_t *oldest = NULL;
    for (job_t *q = f->jobs; q; q = q->next)
        if (q->state == JOB_QUEUED && !strcmp(q->tenant, tenant) && !q->abandoned &&
            (!oldest || q->offset < oldest->offset))
            oldest = q;
    if (oldest) job_step(oldest);
}

static void job_finish(job_t *j) {
    fetcher_t *f = j->f;
    char tenant[80];
    snprintf(tenant, sizeof(tenant), "%s", j->tenant);
    int was_running = j->state != JOB_QUEUED;
    job_rq_cancel(j); /* nothing goes on after the end */
    msp_vcall_stop(&j->vc);
    j->state = JOB_FINISHED;
    if (was_running) {
        f->running_cnt--;
        msp_metric_set(f->metrics, "mspsync_fetcher_jobs_running", NULL, f->running_cnt);
    }
    if (!j->abandoned)
        j->ack_due = 1; /* stored by job_release_if_idle */
    job_release_if_idle(j);
    if (!f->stopping) start_next_for_tenant(f, tenant);
}

/* The job's cursor says how it ended (done, failed: kept a week), and the next scheduled sync
 * of the tenant is one interval after now. */
static void job_ended_write(job_t *j, const char *how) {
    char key[256];
    cursor_key(j, key, sizeof(key));
    const char *argv[] = {"SET", key, how, "PX", "604800000"};
    fetcher_write(j->f, j->tenant, "end of the job's cursor", 5, argv, NULL);
    sched_push_back(j->f, j->tenant, j->vendor, j->job_id);
}

static void job_done(job_t *j) {
    fetcher_t *f = j->f;
    char now[40];
    job_ended_write(j, "done");
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    status_set(j, "state\x1f" "connected\x1f" "last_sync_at\x1f%s\x1f" "last_error\x1f\x1f" "hint\x1f\x1f"
               "progress_type\x1f" "done",
               now);
    json_t *counts = json_object();
    char said[256] = "";
    for (size_t i = 0; i < j->vendor->types_cnt; i++) {
        const char *plural = j->vendor->types[i].plural;
        json_object_set_new(counts, plural, json_integer(j->records_fetched[i]));
        snprintf(said + strlen(said), sizeof(said) - strlen(said), " %s=%ld", plural,
                 j->records_fetched[i]);
    }
    event_emit(j, "job_done", counts);
    MSP_INFO("job.done", j->tenant, "job=%s%s", j->job_id, said);
    msp_metric_add(f->metrics, "mspsync_fetcher_jobs_total", "result=\"done\"", 1);
    job_finish(j);
}

/* A failure retrying cannot fix (or that kept failing): record it where users look. */
static void job_fail(job_t *j, const char *error, const char *hint, int pause) {
    fetcher_t *f = j->f;
    char now[40];
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    status_set(j, "state\x1f" "error\x1f" "last_error\x1f%s\x1f" "last_error_at\x1f%s\x1f" "hint\x1f%s\x1f"
               "paused\x1f%d",
               error, now, hint ? hint : "", pause ? 1 : 0);
    job_ended_write(j, "failed"); /* a failed sync is tried again one interval later, not at once */
    event_emit(j, "job_failed", json_pack("{s:s}", "error", error));
    MSP_ERROR("job.failed", j->tenant, "job=%s %s", j->job_id, error);
    msp_metric_add(f->metrics, "mspsync_fetcher_jobs_total", "result=\"failed\"", 1);
    job_finish(j);
}

/* Stop without storing the offset: another replica owns the job now (or we are stopping). */
static void job_abandon(job_t *j, const char *why) {
    MSP_WARN("job.abandoned", j->tenant, "job=%s %s", j->job_id, why);
    j->abandoned = 1;
    if (j->state != JOB_FINISHED) job_finish(j);
}

/* Stop and store the offset: there is nothing left to do for this job (integration removed). */
static void job_skip(job_t *j, const char *why) {
    MSP_INFO("job.skipped", j->tenant, "job=%s %s", j->job_id, why);
    if (j->state != JOB_FINISHED) job_finish(j);
}

/* ------------------------------------------------------------ the machine */

static void job_wait(job_t *j, int64_t ms) {
    j->state = JOB_TOKEN;
    msp_vcall_wait(&j->vc, ms, job_request);
}

/* Retry the current page later: Retry-After when the vendor said, else jittered backoff; after
 * max_attempts the job fails (job_gave_up). */
static void job_retry(job_t *j, int64_t retry_after_ms, const char *why) {
    msp_vcall_retry_with(&j->vc, &j->vc.attempt, retry_after_ms, why, job_request);
}

static void read_exists(job_t *j, redisReply *r) {
    j->exists = r->type == REDIS_REPLY_INTEGER ? r->integer == 1 : -1;
}

static void read_epoch(job_t *j, redisReply *r) {
    j->lost = r->type == REDIS_REPLY_INTEGER ? r->integer == 0 : -1;
}

static void produce_complete(job_t *j);
static void page_acked(job_t *j);
static void job_checked(job_t *j, const char *why);
static const msp_vcall_step_t job_call;

/* Check that the integration still exists (its answer comes to job_checked), then ask the pager
 * for its next request and send it through the engine (rate token, auth, request); its answer
 * comes to job_answer. */
static void job_request(void *arg) {
    job_t *j = arg;
    fetcher_t *f = j->f;
    if (f->stopping) j->abandoned = 1;
    if (j->abandoned) {
        job_finish(j);
        return;
    }
    j->state = JOB_TOKEN;
    char key[256], epoch[64];
    msp_key(key, sizeof(key), j->tenant, "integration:%s", j->vendor->name);
    msp_key(epoch, sizeof(epoch), "_", MSP_STATE_EPOCH_SUFFIX);
    /* Disabling an integration discards its secret: that stops its jobs too. */
    const char *exists[] = {"HEXISTS", key, j->vendor->sealed_field};
    const char *state[] = {"EXISTS", epoch};
    j->exists = j->lost = -1;
    job_rq_begin(j, job_checked);
    job_rq(j, read_exists, 3, exists);
    job_rq(j, read_epoch, 2, state);
    job_rq_end(j);
}

static void job_checked(job_t *j, const char *why) {
    /* Not knowing is not "removed", and missing because Redis lost its state (the restore has
     * not brought it back yet, statekeys.h) is not either: wait for Redis, never drop the job. */
    if (why || j->exists < 0 || (j->exists == 0 && j->lost != 0)) {
        job_wait(j, 1000);
        return;
    }
    if (!j->exists) {
        job_skip(j, "integration removed");
        return;
    }
    if (job_type(j)->pager->request(j->pager, &j->req) == 1) {
        /* Nothing (left) to ask: the type is complete. */
        j->type_done = 1;
        j->state = JOB_ACKS;
        produce_complete(j);
        if (j->pending_dr == 0)
            page_acked(j);
        return;
    }
    j->state = JOB_HTTP;
    msp_vcall_call_url(&j->vc, j->req.method, strdup(j->req.url), j->req.path, j->req.body,
                       &job_call);
    j->req.body = NULL; /* the engine's now */
}

/* One vendor object of type t to raw.records; derived_from names the type whose records it was
 * read from (an embedded record), else NULL. */
static void produce_record(job_t *j, const msp_vendor_type_t *t, json_t *item,
                           const char *fetched_at, const char *derived_from) {
    fetcher_t *f = j->f;
    json_t *env =
        json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "schema_version", 1, "kind", "record",
                  "tenant", j->tenant, "integration", j->vendor->name, "type", t->type, "job_id",
                  j->job_id, "fetched_at", fetched_at, "payload", item);
    if (derived_from)
        json_object_set_new(env, "derived_from", json_string(derived_from));
    json_t *id = json_object_get(item, "id");
    if (json_is_integer(id) && json_integer_value(id) > 0) {
        char sid[32];
        snprintf(sid, sizeof(sid), "%lld", (long long)json_integer_value(id));
        json_object_set_new(env, "source_id", json_string(sid));
    }
    const char *cid =
        t->string_id_key ? json_string_value(json_object_get(item, t->string_id_key)) : NULL;
    if (cid && cid[0])
        json_object_set_new(env, "source_id", json_string(cid));
    char *s = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    j->pending_dr++;
    if (!s || msp_kafka_produce(f->producer, msp_topic(MSP_TOPIC_RAW_RECORDS), j->tenant,
                                strlen(j->tenant), s, strlen(s), NULL, j) != 0) {
        j->pending_dr--;
        j->dr_failed++;
    }
    free(s);
}

static void produce_complete(job_t *j) {
    json_t *env =
        json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:I}", "schema_version", 1, "kind", "sync_complete",
                  "tenant", j->tenant, "integration", j->vendor->name, "type", job_type(j)->type,
                  "job_id", j->job_id, "count", (json_int_t)j->type_records);
    /* a pass that asked only for changes saw only those: the normalizer sweeps nothing */
    const msp_pager_ops_t *o = job_type(j)->pager;
    if (o->partial && o->partial(j->pager))
        json_object_set_new(env, "partial", json_true());
    char *s = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    j->pending_dr++;
    if (!s || msp_kafka_produce(j->f->producer, msp_topic(MSP_TOPIC_RAW_RECORDS), j->tenant,
                                strlen(j->tenant), s, strlen(s), NULL, j) != 0) {
        j->pending_dr--;
        j->dr_failed++;
    }
    free(s);
}

static void job_resume_read(job_t *j);

/* An earlier run ended the job (its cursor says done or failed) but may have died before its
 * last event reached Kafka (its offset was not stored yet): say again how it ended, so that
 * the history does not show it running. The history keeps the first end it read. */
static void job_ended_again(job_t *j) {
    if (!strcmp(j->ended, "done"))
        event_emit(j, "job_done", json_pack("{s:b}", "again", 1));
    else if (!strcmp(j->ended, "failed"))
        event_emit(j, "job_failed", json_pack("{s:s,s:b}", "error", "", "again", 1));
}
static void job_done(job_t *j);

static void job_started(job_t *j);
static void job_start_failed(job_t *j, const char *why);

/* The cursor was read (job_resume_read): rc as job_resume_at. A start goes on (job_started) or
 * waits in the queue; a job that found its cursor moved continues from wherever it stands. */
static void job_resumed(job_t *j, int rc) {
    if (rc < 0) {
        if (j->from_start)
            job_start_failed(j, "Redis error while reading the cursor");
        else
            job_retry(j, 1000, "Redis error while reading the cursor");
    } else if (rc == 1) {
        job_ended_again(j);
        job_finish(j); /* done or failed by another instance: nothing left to do */
    } else if (rc == 2) {
        job_done(j);
    } else if (j->from_start) {
        job_started(j);
    } else {
        msp_vcall_reset(&j->vc);
        j->type_done = 0;
        job_request(j);
    }
}

/* Continue the job from wherever its cursor stands. */
static void job_follow_cursor(job_t *j) {
    j->from_start = 0;
    job_resume_read(j);
}

/* Where a type's high-water mark lives between passes: mspsync:{t}:mark:<vendor>:<type>. */
static void mark_key(const job_t *j, const msp_vendor_type_t *t, char *buf, size_t size) {
    msp_key(buf, size, j->tenant, "mark:%s:%s", j->vendor->name, t->type);
}

/* A new pager for todo[idx], after (and learning from) the current one; an incremental job
 * gives a type that keeps a mark the one its last pass left, as read when the job started
 * (job_read_start; none: a full pass, more than needed, never less). NULL: out of memory. */
static msp_pager_t *job_pager_new(job_t *j, int idx) {
    const msp_vendor_type_t *t = &j->vendor->types[j->todo[idx]];
    const msp_pager_conf_t conf = {msp_vendor_cred_base_url(&j->cred),
                                   (int)j->f->conf.cwrmm_page_size, j->marks[j->todo[idx]]};
    return t->pager->create(&conf, j->pager);
}

/* The type is complete and its records in Kafka: keep its mark for the next incremental pass.
 * Losing it (Redis down right now) only makes that pass ask for more. */
static void job_keep_mark(job_t *j) {
    const msp_vendor_type_t *t = job_type(j);
    char key[256], mark[MSP_MARK_MAX], what[96];
    if (!t->pager->mark || !t->pager->mark(j->pager, mark, sizeof(mark)))
        return;
    mark_key(j, t, key, sizeof(key));
    snprintf(what, sizeof(what), "mark of %s (the next incremental pass asks for more)", t->type);
    const char *argv[] = {"SET", key, mark};
    fetcher_write(j->f, j->tenant, what, 3, argv, NULL);
}

/* Free a pager of todo[idx] the job did not take. NULL-safe. */
static void job_pager_drop(job_t *j, int idx, msp_pager_t *p) {
    if (p)
        j->vendor->types[j->todo[idx]].pager->destroy(p);
}

/* Make pager (new, of todo[idx]) the job's, dropping the one it replaces. */
static void job_pager_set(job_t *j, int idx, msp_pager_t *pager) {
    if (j->pager && pager != j->pager)
        job_type(j)->pager->destroy(j->pager);
    j->pager = pager;
    j->todo_idx = idx;
}

/* Start the type after the current one (its pager is next). */
static void job_next_type(job_t *j, msp_pager_t *next) {
    job_pager_set(j, j->todo_idx + 1, next);
    j->page = 1;
    j->type_records = 0;
    j->type_done = 0;
    job_request(j);
}

/* The cursor after the page just acknowledged; *next gets the next type's pager (new) when the
 * type is done and another follows. @returns 0, or -1 (out of memory). */
static int job_next_cursor(job_t *j, char *nxt, size_t size, msp_pager_t **next) {
    *next = NULL;
    if (!j->type_done) {
        job_type(j)->pager->cursor(j->pager, 1, nxt, size);
    } else if (j->todo_idx + 1 < j->todo_cnt) {
        if (!(*next = job_pager_new(j, j->todo_idx + 1)))
            return -1;
        j->vendor->types[j->todo[j->todo_idx + 1]].pager->cursor(*next, 0, nxt, size);
    } else {
        snprintf(nxt, size, "complete");
    }
    return 0;
}

/* All records of the page (or the sync_complete marker) are in Kafka: move the cursor. */
static void job_cursor_moved(job_t *j, const char *why);

static void page_acked(job_t *j) {
    if (j->abandoned) {
        job_finish(j);
        return;
    }
    if (j->dr_failed) {
        j->dr_failed = 0;
        job_retry(j, -1, "Kafka did not acknowledge every record of the page");
        return;
    }
    const msp_vendor_type_t *t = job_type(j);
    char key[256], cur[1200], nxt[1200];
    msp_pager_t *next = NULL;
    cursor_key(j, key, sizeof(key));
    t->pager->cursor(j->pager, 0, cur, sizeof(cur));
    if (job_next_cursor(j, nxt, sizeof(nxt), &next) != 0) {
        job_retry(j, 1000, "out of memory while moving the cursor");
        return;
    }
    j->state = JOB_CURSOR;
    j->made = next;
    j->made_idx = j->todo_idx + 1;
    job_rq_begin(j, job_cursor_moved);
    job_rq_cas(j, key, cur, nxt, 0);
    job_rq_end(j);
}

/* The cursor's compare-and-set answered (or not): go on to the next page, type or the end. */
static void job_cursor_moved(job_t *j, const char *why) {
    const msp_vendor_type_t *t = job_type(j);
    msp_pager_t *next = j->made;
    j->made = NULL;
    int rc = why ? -1 : j->cas_rc;
    if (rc <= 0)
        job_pager_drop(j, j->todo_idx + 1, next);
    if (rc == 0) {
        /* The cursor is not where we left it: our own earlier CAS that went unanswered but ran
         * (a stalled Redis), or another instance of this job during a rebalance. Either way
         * the cursor is the truth: continue from what it says. */
        char cur[1200];
        t->pager->cursor(j->pager, 0, cur, sizeof(cur));
        MSP_WARN("cursor.moved", j->tenant, "job=%s expected %s; following the cursor", j->job_id,
                 cur);
        job_follow_cursor(j);
        return;
    }
    if (rc < 0) {
        /* Records are in Kafka; re-fetching the page later is harmless (idempotent downstream). */
        char msg[400];
        snprintf(msg, sizeof(msg), "Redis error while moving the cursor: %s",
                 why ? why : "unexpected answer");
        job_retry(j, 1000, msg);
        return;
    }
    msp_vcall_reset(&j->vc);
    if (!j->type_done) {
        j->page++;
        t->pager->advance(j->pager);
        job_request(j);
        return;
    }
    job_keep_mark(j);
    event_emit(j, "type_done",
               json_pack("{s:s,s:I}", "type", t->type, "records", (json_int_t)j->type_records));
    if (next)
        job_next_type(j, next);
    else
        job_done(j);
}

void job_delivery_report(fetcher_t *f, const rd_kafka_message_t *msg) {
    job_t *j = (job_t *)msg->_private;
    if (!j) return;
    if (msg->err) {
        j->dr_failed++;
        MSP_WARN("kafka.delivery_failed", j->tenant, "%s", rd_kafka_err2str(msg->err));
    }
    if (--j->pending_dr > 0) return;
    if (j->state == JOB_ACKS) {
        page_acked(j);
    } else {
        job_release_if_idle(j);
    }
}

/* A call cannot succeed: stop with the vendor's words and the row's hint (a missing
 * permission or refused credentials pause the integration until the user acts). */
static void job_call_failed(void *arg, msp_vcall_failure_t kind, const char *why) {
    job_t *j = arg;
    static const msp_vendor_hint_t hint_of[] = {[MSP_VCALL_FAIL_AUTH] = MSP_HINT_AUTH,
                                                [MSP_VCALL_FAIL_FORBIDDEN] = MSP_HINT_FORBIDDEN,
                                                [MSP_VCALL_FAIL_REFUSED] = MSP_HINT_REFUSED};
    char hint[300];
    msp_vendor_hint(j->vendor, hint_of[kind], j->req.method, j->req.path, hint, sizeof(hint));
    job_fail(j, why, hint, kind != MSP_VCALL_FAIL_REFUSED);
}

static void job_gave_up(void *arg, unsigned attempts, const char *why) {
    job_t *j = arg;
    char msg[1200], hint[300];
    snprintf(msg, sizeof(msg), "%s (gave up after %u attempts; the next sync will try again)", why,
             attempts);
    job_fail(j, msg,
             msp_vendor_hint(j->vendor, MSP_HINT_KEPT_FAILING, NULL, NULL, hint, sizeof(hint)), 0);
}

static void job_retrying(void *arg, unsigned attempt, int64_t delay_ms, const char *why) {
    job_t *j = arg;
    j->state = JOB_TOKEN;
    MSP_WARN("page.retry", j->tenant, "job=%s %s page=%d attempt=%u retry_in_ms=%lld: %s",
             j->job_id, job_type(j)->type, j->page, attempt, (long long)delay_ms, why);
}

static void job_answered(void *arg, msp_http_outcome_t out) {
    job_t *j = arg;
    char labels[64];
    snprintf(labels, sizeof(labels), "outcome=\"%s\"", msp_http_outcome_name(out));
    msp_metric_add(j->f->metrics, "mspsync_fetcher_requests_total", labels, 1);
}

static int job_gone(void *arg) {
    job_t *j = arg;
    return j->abandoned || j->state == JOB_FINISHED;
}

/* Unfinished: keep the offset for a replay; free the job once nothing refers to it. */
static void job_left(void *arg) {
    job_t *j = arg;
    if (j->f->stopping)
        j->abandoned = 1;
    if (j->state != JOB_FINISHED)
        job_finish(j);
    else
        job_release_if_idle(j);
}

static const msp_vcall_ops_t job_vcall_ops = {
    .fail = job_call_failed,
    .retrying = job_retrying,
    .gave_up = job_gave_up,
    .answered = job_answered,
    .gone = job_gone,
    .abandon = job_left,
};

/* The environment of every job's calls (the same values each time: set as jobs are made). */
static void fetcher_vcall_env(fetcher_t *f) {
    f->vcall = (msp_vcall_env_t){.base = f->base,
                                 .http = &f->http,
                                 .redis = &f->redis,
                                 .aredis = f->aredis,
                                 .redis_url = f->conf.svc.redis_url,
                                 .backoff_base_ms = f->conf.backoff_base_ms,
                                 .backoff_cap_ms = f->conf.backoff_cap_ms,
                                 .stopping = &f->stopping,
                                 .metrics = f->metrics,
                                 .metric_retries = "mspsync_fetcher_retries_total",
                                 .metric_throttled = "mspsync_fetcher_ratelimit_waits_total"};
}

/* A page is complete: produce its records (stolen) and wait for their acks. */
/*
 * The records a page's objects embed (t->embeds: Syncro's assets carry their customer), each
 * once per page, as records of their own type marked "derived_from" — only when that type's
 * feature is off: a key without the customer permissions still gets its assets' customers.
 */
static void produce_embedded(job_t *j, const msp_vendor_type_t *t, const json_t *records,
                             const char *fetched_at) {
    const msp_vendor_type_t *et = t->embeds ? msp_vendor_type(j->vendor, t->embeds) : NULL;
    if (!et || !j->off[et - j->vendor->types])
        return;
    json_t *seen = json_object();
    size_t i;
    const json_t *item;
    json_array_foreach(records, i, item) {
        json_t *e = json_object_get(item, t->embeds);
        json_t *id = json_object_get(e, "id");
        char sid[32];
        if (!json_is_integer(id) || json_integer_value(id) <= 0)
            continue;
        snprintf(sid, sizeof(sid), "%lld", (long long)json_integer_value(id));
        if (json_object_get(seen, sid))
            continue;
        json_object_set_new(seen, sid, json_true());
        produce_record(j, et, e, fetched_at, t->plural);
    }
    json_decref(seen);
}

static void job_page(job_t *j, json_t *records, int last) {
    const msp_vendor_type_t *t = job_type(j);
    char fetched_at[40];
    msp_format_time(msp_wall_ms(), fetched_at, sizeof(fetched_at));
    size_t n = json_array_size(records);
    j->state = JOB_ACKS;
    for (size_t i = 0; i < n; i++)
        produce_record(j, t, json_array_get(records, i), fetched_at, NULL);
    produce_embedded(j, t, records, fetched_at);
    json_decref(records);
    j->type_records += (long)n;
    j->records_fetched[j->todo[j->todo_idx]] += (long)n;
    msp_metric_add(j->f->metrics, "mspsync_fetcher_records_total", NULL, (double)n);
    j->type_done = last;
    json_t *ev = json_pack("{s:s,s:i}", "type", t->type, "page", j->page);
    int total = t->pager->progress(j->pager, ev);
    json_object_set_new(ev, "records", json_integer((json_int_t)n));
    long fetched = j->records_fetched[j->todo[j->todo_idx]];
    if (total >= 0)
        status_set(j,
                   "progress_type\x1f%s\x1f"
                   "progress_page\x1f%d\x1f"
                   "progress_total_pages\x1f%d\x1f"
                   "%s_fetched\x1f%ld",
                   t->type, j->page, total, t->plural, fetched);
    else
        status_set(j,
                   "progress_type\x1f%s\x1f"
                   "%s_fetched\x1f%ld",
                   t->type, t->plural, fetched);
    event_emit(j, "page", ev);
    if (j->type_done)
        produce_complete(j);
    if (j->pending_dr == 0) page_acked(j);
}

static msp_http_outcome_t job_classify(void *arg, const msp_http_response_t *res) {
    job_t *j = arg;
    return job_type(j)->pager->classify(j->pager, res);
}

/* A 2xx: the pager reads it. */
static void job_answer(void *arg, msp_http_response_t *res, json_t *body) {
    job_t *j = arg;
    (void)body;
    json_t *records = NULL;
    int last = 0;
    char err[1024];
    switch (job_type(j)->pager->response(j->pager, res, &records, &last, err, sizeof(err))) {
    case MSP_PAGER_BAD: job_retry(j, -1, err); break;
    case MSP_PAGER_NEXT: /* a step of the vendor's plan: the next request, a fresh count */
        msp_vcall_reset(&j->vc);
        job_request(j);
        break;
    case MSP_PAGER_PAGE: job_page(j, records, last); break;
    }
}

/* Every page request: the pager classifies; a retry asks the pager again (job_request). */
static const msp_vcall_step_t job_call = {
    .classify = job_classify, .ok = job_answer, .retry_from = job_request};

/* ------------------------------------------------------------- job start */

/*
 * Keep only the job's types whose feature is enabled on the integration (j->features, read at
 * the start; none stored = saved before features existed: all), for scheduled jobs and "sync
 * now" alike; say in status:<vendor> and sync.events what was left out. @returns the types left.
 */
static int job_only_enabled(job_t *j) {
    char key[256], said[200] = "";
    const char *features = j->features;
    json_t *skipped = json_array();
    int n = 0;
    for (size_t k = 0; k < j->vendor->types_cnt && k < MSP_VENDOR_TYPES_MAX; k++)
        j->off[k] = !msp_vendor_type_enabled(&j->vendor->types[k], features);
    for (int i = 0; i < j->todo_cnt; i++) {
        const msp_vendor_type_t *t = &j->vendor->types[j->todo[i]];
        if (msp_vendor_type_enabled(t, features)) {
            j->todo[n++] = j->todo[i];
            continue;
        }
        json_array_append_new(skipped,
                              json_pack("{s:s,s:s}", "type", t->plural, "feature", t->feature));
        snprintf(said + strlen(said), sizeof(said) - strlen(said), "%s%s", said[0] ? "," : "",
                 t->plural);
    }
    j->todo_cnt = n;
    msp_key(key, sizeof(key), j->tenant, "status:%s", j->vendor->name);
    const char *argv[] = {"HSET", key, "skipped_types", said};
    fetcher_write(j->f, j->tenant, "status", 4, argv, NULL);
    if (json_array_size(skipped) > 0) {
        MSP_INFO("job.types_not_enabled", j->tenant, "job=%s skipped: %s", j->job_id, said);
        event_emit(j, "types_not_enabled",
                   json_pack("{s:o,s:s}", "skipped", skipped, "reason",
                             "the feature is not enabled on the integration"));
    } else {
        json_decref(skipped);
    }
    return n;
}

/* The readers of the start (job_read_start). */
static void read_paused(job_t *j, redisReply *r) {
    j->paused = r->type == REDIS_REPLY_STRING && !strcmp(r->str, "1");
}

static char *reply_dup(const redisReply *r) {
    return r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
}

static void read_features(job_t *j, redisReply *r) { j->features = reply_dup(r); }

static void read_cursor(job_t *j, redisReply *r) { j->cur_read = reply_dup(r); }

/* Whether the job reads type k's mark: an incremental job, a type that keeps one. */
static int job_wants_mark(const job_t *j, size_t k) {
    return j->vendor->types[k].pager->mark && strcmp(j->mode, "incremental") == 0;
}

static void read_marks(job_t *j, redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    size_t e = 0;
    for (size_t k = 0; k < j->vendor->types_cnt && k < MSP_VENDOR_TYPES_MAX; k++)
        if (job_wants_mark(j, k) && e < r->elements)
            j->marks[k] = reply_dup(r->element[e++]);
}

/* The cursor's GET as a command of the step (read_cursor). */
static void job_rq_cursor(job_t *j) {
    char key[256];
    cursor_key(j, key, sizeof(key));
    free(j->cur_read);
    j->cur_read = NULL;
    const char *argv[] = {"GET", key};
    job_rq(j, read_cursor, 2, argv);
}

static void job_cursor_created(job_t *j, const char *why);

/* Write the cursor of a job that has none: the first page of its first type (its answer comes
 * to job_cursor_created). */
static void job_cursor_create(job_t *j) {
    msp_pager_t *p = job_pager_new(j, 0);
    if (!p) {
        job_resumed(j, -1);
        return;
    }
    char key[256], first[1200];
    cursor_key(j, key, sizeof(key));
    j->vendor->types[j->todo[0]].pager->cursor(p, 0, first, sizeof(first));
    j->made = p;
    j->made_idx = 0;
    job_rq_begin(j, job_cursor_created);
    job_rq_cas(j, key, NULL, first, 7LL * 86400 * 1000);
    job_rq_end(j);
}

/* Position the job at cursor cur: the first type whose pager takes it (the job's own pager
 * when it is of that type, so what it learned is kept). @returns 0, or -1 none takes it. */
static int job_seek(job_t *j, const char *cur) {
    for (int i = 0; i < j->todo_cnt; i++) {
        const msp_pager_ops_t *o = j->vendor->types[j->todo[i]].pager;
        msp_pager_t *p = j->pager && i == j->todo_idx ? j->pager : job_pager_new(j, i);
        int page = p ? o->seek(p, cur) : -1;
        if (page >= 1) {
            job_pager_set(j, i, p);
            j->page = page;
            MSP_INFO("job.resumed", j->tenant, "job=%s at %s", j->job_id, cur);
            j->resumed = 1;
            return 0;
        }
        if (p != j->pager)
            job_pager_drop(j, i, p);
    }
    return -1;
}

/* Resume from the cursor read (j->cur_read), or create it. job_resumed goes on with 0 run, 1
 * already finished, 2 only job_done is left, -1 error. */
static void job_resume_at(job_t *j) {
    const char *cur = j->cur_read;
    if (!cur) {
        job_cursor_create(j);
        return;
    }
    int rc = 0;
    if (!strcmp(cur, "done") || !strcmp(cur, "failed")) {
        snprintf(j->ended, sizeof(j->ended), "%s", cur);
        rc = 1;
    } else if (!strcmp(cur, "complete")) {
        /* Every record is in Kafka; only the bookkeeping of job_done was lost. */
        rc = 2;
    } else if (job_seek(j, cur) != 0) {
        MSP_WARN("cursor.invalid", j->tenant, "job=%s cursor '%s' ignored", j->job_id, cur);
        rc = 1;
    }
    job_resumed(j, rc);
}

static void job_cursor_read(job_t *j, const char *why) {
    if (why)
        job_resumed(j, -1);
    else
        job_resume_at(j);
}

/* Read the cursor, then resume from it (job_resume_at). */
static void job_resume_read(job_t *j) {
    job_rq_begin(j, job_cursor_read);
    job_rq_cursor(j);
    job_rq_end(j);
}

static void job_cursor_created(job_t *j, const char *why) {
    msp_pager_t *p = j->made;
    j->made = NULL;
    int rc = why ? -1 : j->cas_rc;
    if (rc != 1) {
        job_pager_drop(j, 0, p);
        if (rc == 0)
            job_resume_read(j); /* somebody created it meanwhile: read it */
        else
            job_resumed(j, -1);
        return;
    }
    job_pager_set(j, 0, p);
    j->page = 1;
    j->resumed = 0; /* this run made the cursor: a first start */
    job_resumed(j, 0);
}

/* What asked for the job, as the sync history shows it: "save", "schedule" or "sync-now"
 * (the sync.jobs reason; an unknown reason is shown as it is). @returns borrowed. */
static const char *job_trigger(const job_t *j) {
    static const struct {
        const char *reason, *trigger;
    } names[] = {{"integration_saved", "save"}, {"schedule", "schedule"}, {"sync_now", "sync-now"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(j->reason, names[i].reason))
            return names[i].trigger;
    return j->reason;
}

/* The job runs: say so where users look, then send its first request. job_started says whether
 * this run resumed a cursor an earlier run left (killed replica, rebalance), so that the history
 * counts one job with its resumes, not several jobs. */
static void job_started(job_t *j) {
    fetcher_t *f = j->f;
    char now[40];
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    char tlist[160] = "";
    json_t *tl = json_array();
    for (int i = 0; i < j->todo_cnt; i++) {
        const msp_vendor_type_t *t = &j->vendor->types[j->todo[i]];
        snprintf(tlist + strlen(tlist), sizeof(tlist) - strlen(tlist), "%s%s", i ? "," : "",
                 t->type);
        json_array_append_new(tl, json_string(t->plural));
    }
    /* job_types lets the gateway tell "fetched" from "in the inventory" (normalizer marks). */
    status_set(j,
               "state\x1f"
               "syncing\x1f"
               "job_id\x1f%s\x1f"
               "job_started_at\x1f%s\x1f"
               "job_types\x1f%s",
               j->job_id, now, tlist);
    event_emit(j, "job_started",
               json_pack("{s:o,s:s,s:s,s:s,s:b,s:i}", "types", tl, "reason", j->reason, "mode",
                         j->mode, "trigger", job_trigger(j), "resumed", j->resumed, "page",
                         j->page));
    MSP_INFO("job.started", j->tenant, "job=%s reason=%s replica=%s", j->job_id, j->reason,
             f->replica_id);
    job_request(j);
}

static void job_start_read(job_t *j, const char *why);

/* What a start reads, in one round trip: whether the integration is paused (scheduled jobs), its
 * enabled features, an incremental job's marks, the cursor. Its answers come to job_start_read. */
static void job_read_start(job_t *j) {
    char skey[256], ikey[256], mkeys[MSP_VENDOR_TYPES_MAX][256];
    const char *mget[1 + MSP_VENDOR_TYPES_MAX] = {"MGET"};
    int n = 1;
    msp_key(skey, sizeof(skey), j->tenant, "status:%s", j->vendor->name);
    msp_key(ikey, sizeof(ikey), j->tenant, "integration:%s", j->vendor->name);
    free(j->features);
    j->features = NULL;
    for (size_t k = 0; k < j->vendor->types_cnt && k < MSP_VENDOR_TYPES_MAX; k++) {
        free(j->marks[k]);
        j->marks[k] = NULL;
        if (job_wants_mark(j, k)) {
            mark_key(j, &j->vendor->types[k], mkeys[k], sizeof(mkeys[k]));
            mget[n++] = mkeys[k];
        }
    }
    const char *paused[] = {"HGET", skey, "paused"};
    const char *features[] = {"HGET", ikey, "features"};
    j->paused = 0;
    job_rq_begin(j, job_start_read);
    /* Paused after an auth or permission error: only a user's action (save, sync now) resumes. */
    if (!strcmp(j->reason, "schedule"))
        job_rq(j, read_paused, 3, paused);
    job_rq(j, read_features, 3, features);
    if (n > 1)
        job_rq(j, read_marks, n, mget);
    job_rq_cursor(j);
    job_rq_end(j);
}

/* Redis did not answer the start: back in the queue, jobs_tick tries again. */
static void job_start_failed(job_t *j, const char *why) {
    fetcher_t *f = j->f;
    if (!j->waiting_logged++)
        MSP_WARN("job.waiting", j->tenant, "%s job %s waits: %s", j->vendor->label, j->job_id, why);
    j->state = JOB_QUEUED;
    f->running_cnt--;
    msp_metric_set(f->metrics, "mspsync_fetcher_jobs_running", NULL, f->running_cnt);
}

static void job_start_read(job_t *j, const char *why) {
    if (why) {
        job_start_failed(j, why);
        return;
    }
    if (j->paused) {
        job_skip(j, "integration paused after an authentication or permission error");
        return;
    }
    if (job_only_enabled(j) == 0) {
        job_done(j); /* nothing this integration syncs is asked for: done, as an empty sync */
        return;
    }
    j->from_start = 1;
    job_resume_at(j);
}

/* The credentials are loaded (or not): rc as msp_vendor_cred_cb's. */
static void job_cred_loaded(void *arg, int rc, const char *err) {
    job_t *j = arg;
    char hint[300];
    if (rc < 0) { /* Redis failed or is being restored: jobs_tick tries again */
        job_start_failed(j, err);
        return;
    }
    job_use_cred(j);
    if (rc == 1) {
        job_skip(j, msp_vendor_hint(j->vendor, MSP_HINT_MISSING, NULL, NULL, hint, sizeof(hint)));
        return;
    }
    if (rc == 2) {
        job_fail(j, err,
                 msp_vendor_hint(j->vendor, MSP_HINT_SEALED, NULL, NULL, hint, sizeof(hint)), 1);
        return;
    }
    job_read_start(j);
}

static void job_step(job_t *j) {
    fetcher_t *f = j->f;
    if (j->state != JOB_QUEUED)
        return;
    if (tenant_running(f, j->tenant, j))
        return; /* starts when that one finishes */
    if (f->running_cnt >= f->conf.max_jobs)
        return; /* jobs_tick starts it later */
    if (msp_vendor_cred_load_async(j->vendor, f->aredis, &f->key, j->tenant, &j->cred, &j->cred_op,
                                   job_cred_loaded, j) != 0)
        return; /* not connected now: jobs_tick retries */
    j->state = JOB_STARTING;
    f->running_cnt++;
    msp_metric_set(f->metrics, "mspsync_fetcher_jobs_running", NULL, f->running_cnt);
}

/* Take the job's "types" (plural names) in the vendor's order: customers before assets, as
 * assets reference customers. An unknown name leaves its reason in reason. */
static void job_want_types(job_t *j, const json_t *tl, char *reason, size_t reason_size) {
    size_t n = 0;
    int bad = msp_vendor_types_wanted(j->vendor, tl, j->todo, &n);
    if (bad >= 0) {
        const char *s = json_string_value(json_array_get(tl, (size_t)bad));
        snprintf(reason, reason_size, "unknown sync type \"%.*s\"",
                 MSP_UTF8_CUT(s ? s : "(not a string)", 64));
        return;
    }
    j->todo_cnt = (int)n;
}

/* A sync.jobs message arrived. Bad jobs are dead-lettered with the reason. */
void job_from_message(fetcher_t *f, const rd_kafka_message_t *msg) {
    const char *topic = rd_kafka_topic_name(msg->rkt);
    msp_offtrack_begin(f->offtrack, topic, msg->partition, msg->offset);
    json_error_t jerr;
    json_t *o = json_loadb(msg->payload, msg->len, 0, &jerr);
    const char *tenant = NULL, *job_id = NULL, *integration = NULL;
    const msp_vendor_t *vendor = NULL;
    json_t *tl = NULL;
    char reason[256] = "";
    if (!o || !json_is_object(o)) {
        snprintf(reason, sizeof(reason), "sync job is not a JSON object: %s",
                 o ? "wrong type" : jerr.text);
    } else if (json_unpack_ex(o, &jerr, 0, "{s:s,s:s,s:s,s:o}", "tenant", &tenant, "job_id",
                              &job_id, "integration", &integration, "types", &tl) != 0) {
        snprintf(reason, sizeof(reason), "sync job lacks a field: %s", jerr.text);
    } else if (!(vendor = msp_vendor_find(integration))) {
        snprintf(reason, sizeof(reason), "unknown integration \"%.*s\"",
                 MSP_UTF8_CUT(integration, 64));
    } else if (!json_is_array(tl) || json_array_size(tl) == 0) {
        snprintf(reason, sizeof(reason), "sync job \"types\" must be a non-empty array");
    } else if (strlen(tenant) >= 80 || strlen(job_id) >= 80 || strchr(tenant, '}') ||
               strchr(tenant, '{')) {
        snprintf(reason, sizeof(reason), "sync job tenant or job_id is invalid");
    }
    job_t *j = NULL;
    if (!reason[0]) {
        j = calloc(1, sizeof(*j));
        j->f = f;
        j->vendor = vendor;
        snprintf(j->tenant, sizeof(j->tenant), "%s", tenant);
        fetcher_vcall_env(f);
        msp_vcall_init(&j->vc, &f->vcall, &job_vcall_ops, j, NULL);
        j->vc.tenant = j->tenant;
        j->vc.max_attempts = (unsigned)f->conf.max_attempts;
        snprintf(j->job_id, sizeof(j->job_id), "%s", job_id);
        snprintf(j->reason, sizeof(j->reason), "%s",
                 json_string_value(json_object_get(o, "reason")) ?: "unknown");
        snprintf(j->mode, sizeof(j->mode), "%s",
                 json_string_value(json_object_get(o, "mode")) ?: "full");
        job_want_types(j, tl, reason, sizeof(reason));
        j->page = 1;
    }
    if (reason[0]) {
        MSP_WARN("job.dead_lettered", tenant, "%s", reason);
        msp_kafka_dead_letter(f->producer, msg, "fetcher", reason, NULL);
        msp_metric_add(f->metrics, "mspsync_fetcher_jobs_total", "result=\"dead_lettered\"", 1);
        free(j);
        json_decref(o);
        /* The dead letter is produced asynchronously by the idempotent producer; the offset is
         * stored right away, as the record is in the producer's queue (flushed on shutdown). */
        int64_t next = msp_offtrack_done(f->offtrack, topic, msg->partition, msg->offset);
        if (next >= 0) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, topic, msg->partition)->offset = next;
            rd_kafka_offsets_store(f->consumer, l);
            rd_kafka_topic_partition_list_destroy(l);
        }
        return;
    }
    json_decref(o);
    j->src_topic = strdup(topic);
    j->partition = msg->partition;
    j->offset = msg->offset;
    j->state = JOB_QUEUED;
    j->next = f->jobs;
    f->jobs = j;
    f->jobs_cnt++;
    msp_metric_set(f->metrics, "mspsync_fetcher_jobs", NULL, f->jobs_cnt);
    job_step(j);
}

/* Periodic: start queued jobs that could not start (capacity, Redis down). */
void jobs_tick(fetcher_t *f) {
    for (job_t *j = f->jobs; j; j = j->next)
        if (j->state == JOB_QUEUED && !j->abandoned) job_step(j);
}

/* A partition was taken away: its jobs now belong to another replica. */
void jobs_partition_revoked(fetcher_t *f, const char *topic, int32_t partition) {
    job_t *j = f->jobs;
    while (j) {
        job_t *next = j->next;
        if (j->state != JOB_FINISHED && j->partition == partition && !strcmp(j->src_topic, topic))
            job_abandon(j, "partition revoked");
        j = next;
    }
    msp_offtrack_forget(f->offtrack, topic, partition);
}

/* Shutdown: stop every job where it is (cursors keep the progress). */
void jobs_destroy_all(fetcher_t *f) {
    f->stopping = 1;
    while (f->jobs) {
        job_t *j = f->jobs;
        if (j->state != JOB_FINISHED) {
            j->abandoned = 1;
            msp_vcall_stop(&j->vc);
            if (j->state != JOB_QUEUED) f->running_cnt--;
            j->state = JOB_FINISHED;
        }
        /* http and delivery callbacks were drained by the caller before this */
        j->vc.http_inflight = 0;
        j->vc.token_wait = 0;
        j->pending_dr = 0;
        job_free(j);
    }
}
