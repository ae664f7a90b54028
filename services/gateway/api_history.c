/*
 * api_history.c — what happened to a tenant's syncs and dead letters, from the state history.c
 * folds out of `sync.events` and `dlq`:
 *
 *   GET  /v1/tenants/{t}/integrations/{vendor}/jobs[?limit=N]   the last N jobs, newest first
 *   GET  /v1/tenants/{t}/integrations/{vendor}/jobs/{job_id}    one job
 *   GET  /v1/tenants/{t}/dead-letters[?service&reason&source_topic&since&replayed&limit&cursor]
 *   GET  /v1/tenants/{t}/dead-letters/{id}                      one, with its value
 *   POST /v1/tenants/{t}/dead-letters/replay                    {"ids":[…]} or {"all":true,…}
 *
 * Only the tenant's own index is read, so an id of another tenant's dead letter answers 404 like
 * one that does not exist. A replay (at most GW_REPLAY_MAX records a call) runs on the replay
 * thread below, off the loop: it reads each record back from `dlq` by partition and offset (one
 * reader outside any group), produces it to its source topic as mspsync-dlq does
 * (msp_dlq_unwrap: key, value and headers without x-dlq-*) and waits until Kafka acknowledged
 * every one; then the loop marks them replayed (when, by whom) and answers. A dead letter already
 * replayed is refused (409) unless "force" is true, and so is one another replay has claimed.
 */
#include "gateway.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/tzif.h"

#define JOBS_DEFAULT 20
#define DLQ_PAGE_DEFAULT 50
#define PAGE_MAX 200

/* ---- sync history ------------------------------------------------------------------------- */

/* A job hash (HGETALL reply) as the API shows it: new. */
static json_t *job_render(const msp_vendor_t *v, const redisReply *r) {
    const char *started = gw_hget(r, "started_at"), *finished = gw_hget(r, "finished_at");
    const char *types = gw_hget(r, "types"), *trigger = gw_hget(r, "trigger");
    const char *error = gw_hget(r, "error"), *result = gw_hget(r, "result");
    json_t *tl = types ? json_loads(types, 0, NULL) : NULL;
    json_t *records = json_object();
    for (size_t i = 0; i < v->types_cnt; i++) {
        char f[80];
        snprintf(f, sizeof(f), "records:%s", v->types[i].type);
        const char *n = gw_hget(r, f);
        if (n)
            json_object_set_new(records, v->types[i].plural, json_integer(atoll(n)));
    }
    int64_t s = 0, e = 0;
    json_t *duration = started && finished && msp_rfc3339_parse(started, &s) == 0 &&
                               msp_rfc3339_parse(finished, &e) == 0 && e >= s
                           ? json_integer((json_int_t)(e - s))
                           : json_null();
    const char *starts = gw_hget(r, "starts");
    long long resumes = starts && atoll(starts) > 1 ? atoll(starts) - 1 : 0;
    const char *pages = gw_hget(r, "pages");
    return json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:I,s:o,s:s,s:o,s:I}", "job_id",
                     gw_hget(r, "job_id") ?: "", "integration", v->name, "trigger",
                     trigger && trigger[0] ? json_string(trigger) : json_null(), "types",
                     json_is_array(tl) ? tl : json_array(), "started_at",
                     started ? json_string(started) : json_null(), "finished_at",
                     finished ? json_string(finished) : json_null(), "duration_ms", duration,
                     "pages", (json_int_t)(pages ? atoll(pages) : 0), "records", records, "result",
                     result ? result : "running", "error",
                     error && error[0] ? json_string(error) : json_null(), "resumes",
                     (json_int_t)resumes);
}

void api_history_jobs(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *integ) {
    const char *route = "integration_jobs";
    const gw_integ_t *in = gw_integ_find(integ);
    long long limit = gw_query_int(gw, req, route, "limit", JOBS_DEFAULT, GW_HISTORY_KEEP);
    if (limit < 0)
        return;
    char index[200], err[256];
    msp_key(index, sizeof(index), tenant, "history:%s", integ);
    redisReply *ids = gw_redis(gw, err, sizeof(err), "ZREVRANGE %s 0 %lld", index, limit - 1);
    if (!ids) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    json_t *jobs = json_array();
    for (size_t i = 0; ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
        redisReply *r =
            gw_redis(gw, err, sizeof(err), "HGETALL %s:%s", index, ids->element[i]->str);
        if (!r) {
            freeReplyObject(ids);
            json_decref(jobs);
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements > 0)
            json_array_append_new(jobs, job_render(in->vendor, r));
        freeReplyObject(r);
    }
    freeReplyObject(ids);
    gw_reply(gw, req, route, 200, json_pack("{s:o}", "jobs", jobs));
}

void api_history_job(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *integ,
                     const char *job_id) {
    const char *route = "integration_job";
    const gw_integ_t *in = gw_integ_find(integ);
    char err[256], key[300];
    msp_key(key, sizeof(key), tenant, "history:%s:%s", integ, job_id);
    redisReply *r = strchr(job_id, ':') ? NULL : gw_redis(gw, err, sizeof(err), "HGETALL %s", key);
    if (!r && !strchr(job_id, ':')) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        if (r)
            freeReplyObject(r);
        gw_reply_error(gw, req, route, 404, "no job \"%s\" in the %s history", job_id,
                       in->vendor->label);
        return;
    }
    json_t *job = job_render(in->vendor, r);
    freeReplyObject(r);
    gw_reply(gw, req, route, 200, job);
}

/* ---- dead letters: reading ------------------------------------------------------------------ */

/* 1 when id has the form <partition>:<offset> (decimal). */
static int dlq_id_ok(const char *id) {
    const char *c = strchr(id, ':');
    if (!c || c == id || !c[1] || strlen(id) > 40)
        return 0;
    for (const char *p = id; *p; p++)
        if (p != c && (*p < '0' || *p > '9'))
            return 0;
    return 1;
}

/* A dead letter hash (HGETALL reply) as the API shows it: new. with_value adds the value. */
static json_t *dlq_render(const redisReply *r, int with_value) {
    const char *id = gw_hget(r, "id") ?: "";
    const char *c = strchr(id, ':');
    const char *ra = gw_hget(r, "replayed_at"), *rb = gw_hget(r, "replayed_by");
    const char *sp = gw_hget(r, "source_partition"), *so = gw_hget(r, "source_offset");
    json_t *o = json_pack(
        "{s:s,s:i,s:I,s:s,s:s,s:s,s:o,s:o,s:s,s:s,s:b,s:o,s:o}", "id", id, "partition", atoi(id),
        "offset", (json_int_t)(c ? atoll(c + 1) : 0), "reason", gw_hget(r, "reason") ?: "",
        "service", gw_hget(r, "service") ?: "", "source_topic", gw_hget(r, "source_topic") ?: "",
        "source_partition", sp && sp[0] ? json_integer(atoll(sp)) : json_null(), "source_offset",
        so && so[0] ? json_integer(atoll(so)) : json_null(), "failed_at",
        gw_hget(r, "failed_at") ?: "", "key", gw_hget(r, "key") ?: "", "replayed", ra != NULL,
        "replayed_at", ra ? json_string(ra) : json_null(), "replayed_by",
        rb ? json_string(rb) : json_null());
    if (with_value) {
        const char *v = gw_hget(r, "value");
        json_t *value = v ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
        const char *omitted = gw_hget(r, "value_omitted");
        json_object_set_new(o, "value", value ? value : json_null());
        json_object_set_new(o, "value_omitted", json_boolean(omitted && omitted[0] == '1'));
    }
    return o;
}

/* The list filters (query parameters or a replay body's members). */
typedef struct {
    char *service, *reason, *source_topic;
    int64_t since_ms; /* -1: none */
    int replayed;     /* -1 either, 0 not replayed, 1 replayed */
} dlq_filter_t;

static void filter_clear(dlq_filter_t *f) {
    free(f->service);
    free(f->reason);
    free(f->source_topic);
}

/* Check a since value. @returns 0 or -1 (err). */
static int since_parse(const char *s, int64_t *ms, char *err, size_t err_size) {
    if (msp_rfc3339_parse(s, ms) != 0) {
        snprintf(err, err_size, "\"since\" must be an RFC 3339 time such as 2026-11-23T21:45:00Z");
        return -1;
    }
    return 0;
}

/* 1 when the dead letter (HGETALL reply) passes f. */
static int filter_pass(const dlq_filter_t *f, const redisReply *r) {
    const char *service = gw_hget(r, "service") ?: "", *reason = gw_hget(r, "reason") ?: "";
    const char *topic = gw_hget(r, "source_topic") ?: "", *at = gw_hget(r, "failed_at");
    int replayed = gw_hget(r, "replayed_at") != NULL;
    int64_t ms = 0;
    if (f->service && strcmp(f->service, service) != 0)
        return 0;
    if (f->reason && !strstr(reason, f->reason))
        return 0;
    if (f->source_topic && strcmp(f->source_topic, topic) != 0 &&
        strcmp(msp_topic(f->source_topic), topic) != 0)
        return 0;
    if (f->since_ms >= 0 && (!at || msp_rfc3339_parse(at, &ms) != 0 || ms < f->since_ms))
        return 0;
    if (f->replayed >= 0 && replayed != f->replayed)
        return 0;
    return 1;
}

/*
 * The tenant's dead letters passing f, newest first, after cursor (an id; NULL = from the
 * newest), at most limit: rendered objects when render, else their ids (strings). *next gets
 * the id to continue after (new) when more pass, else NULL; *bad_cursor 1 when cursor is not in
 * the index. @returns new array, or NULL on a Redis error (err).
 */
static json_t *dlq_select(gw_t *gw, const char *tenant, const dlq_filter_t *f, const char *cursor,
                          long long limit, int render, char **next, int *bad_cursor, char *err,
                          size_t err_size) {
    char index[160];
    msp_key(index, sizeof(index), tenant, "dlq");
    *next = NULL;
    *bad_cursor = 0;
    redisReply *ids = gw_redis(gw, err, err_size, "ZREVRANGE %s 0 -1", index);
    if (!ids)
        return NULL;
    size_t i = 0;
    if (cursor) {
        while (i < ids->elements && strcmp(ids->element[i]->str, cursor) != 0)
            i++;
        if (i == ids->elements) {
            *bad_cursor = 1;
            freeReplyObject(ids);
            return json_array();
        }
        i++;
    }
    json_t *out = json_array();
    for (; i < ids->elements; i++) {
        redisReply *r = gw_redis(gw, err, err_size, "HGETALL %s:%s", index, ids->element[i]->str);
        if (!r) {
            freeReplyObject(ids);
            json_decref(out);
            return NULL;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && filter_pass(f, r)) {
            if ((long long)json_array_size(out) == limit) {
                json_t *last = json_array_get(out, json_array_size(out) - 1);
                const char *lid = json_is_string(last)
                                      ? json_string_value(last)
                                      : json_string_value(json_object_get(last, "id"));
                *next = strdup(lid);
                freeReplyObject(r);
                break;
            }
            json_array_append_new(out,
                                  render ? dlq_render(r, 0) : json_string(ids->element[i]->str));
        }
        freeReplyObject(r);
    }
    freeReplyObject(ids);
    return out;
}

void api_dead_letters_list(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "dead_letters";
    long long limit = gw_query_int(gw, req, route, "limit", DLQ_PAGE_DEFAULT, PAGE_MAX);
    if (limit < 0)
        return;
    dlq_filter_t f = {gw_query_param(req, "service"), gw_query_param(req, "reason"),
                      gw_query_param(req, "source_topic"), -1, -1};
    char *since = gw_query_param(req, "since"), *replayed = gw_query_param(req, "replayed");
    char *cursor = gw_query_param(req, "cursor");
    char err[256] = "";
    if (since && since_parse(since, &f.since_ms, err, sizeof(err)) != 0) {
        /* err says why */
    } else if (replayed && strcmp(replayed, "true") && strcmp(replayed, "false")) {
        snprintf(err, sizeof(err), "\"replayed\" must be true or false");
    } else if (replayed) {
        f.replayed = replayed[0] == 't';
    }
    if (err[0]) {
        gw_reply_error(gw, req, route, 400, "%s", err);
    } else {
        char *next = NULL;
        int bad = 0;
        json_t *list = dlq_select(gw, tenant, &f, cursor, limit, 1, &next, &bad, err, sizeof(err));
        if (!list)
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        else if (bad) {
            json_decref(list);
            gw_reply_error(gw, req, route, 400, "\"cursor\" is not a dead letter of this list");
        } else
            gw_reply(gw, req, route, 200,
                     json_pack("{s:o,s:o}", "dead_letters", list, "next_cursor",
                               next ? json_string(next) : json_null()));
        free(next);
    }
    free(since);
    free(replayed);
    free(cursor);
    filter_clear(&f);
}

/* The dead letter id of tenant: HGETALL reply (freeReplyObject), or NULL: *code 404 or 503. */
static redisReply *dlq_get(gw_t *gw, const char *tenant, const char *id, int *code, char *err,
                           size_t err_size) {
    char key[200];
    *code = 404;
    if (!dlq_id_ok(id)) {
        snprintf(err, err_size, "no dead letter \"%s\"", id);
        return NULL;
    }
    msp_key(key, sizeof(key), tenant, "dlq:%s", id);
    redisReply *r = gw_redis(gw, err, err_size, "HGETALL %s", key);
    if (!r) {
        *code = 503;
        return NULL;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject(r);
        snprintf(err, err_size, "no dead letter \"%s\"", id);
        return NULL;
    }
    return r;
}

void api_dead_letter_get(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *id) {
    const char *route = "dead_letter";
    char err[256];
    int code = 0;
    redisReply *r = dlq_get(gw, tenant, id, &code, err, sizeof(err));
    if (!r) {
        gw_reply_error(gw, req, route, code, code == 503 ? "redis unavailable: %s" : "%s", err);
        return;
    }
    json_t *o = dlq_render(r, 1);
    freeReplyObject(r);
    gw_reply(gw, req, route, 200, o);
}

/* ---- dead letters: replay, off the loop ------------------------------------------------------
 *
 * The loop checks the request, claims the ids (SET mspsync:{t}:replay:<id> NX EX: a concurrent
 * replay of the same ids, on this gateway or another, is refused with 409) and queues a job for
 * the replay thread. The thread reads the records back from dlq with one reader (every
 * partition assigned at its first wanted offset, read forward, a seek over long gaps), checks
 * that every one was read and names its source topic, produces them with its own producer and
 * waits for the acknowledgements; then it hands the job back to the loop through a pipe, where
 * the ids are marked replayed (or nothing is, on an error), the claims released and the request
 * answered. The loop never waits on Kafka. */

#define REPLAY_READ_MS 10000  /* the read gives up after this long without a record */
#define REPLAY_TOTAL_MS 60000 /* and after this long in all */
#define REPLAY_FLUSH_MS 30000 /* the acknowledgements of one job */
#define REPLAY_QUEUE_MAX 4    /* jobs waiting or running per gateway; more answer 503 */
#define REPLAY_SEEK_GAP 1000  /* a wanted offset this far ahead is sought, not read up to */
#define REPLAY_CLAIM_S 300    /* a claim outlives any job (REPLAY_TOTAL_MS + REPLAY_FLUSH_MS) */

typedef struct replay_s {
    struct replay_s *next;
    gw_held_t *held;
    char tenant[64];
    char by[160];
    json_t *ids; /* the ids to produce (array of strings), claimed */
    int more;    /* "all": more matched than GW_REPLAY_MAX */
    char *error; /* set by the thread: nothing was (completely) replayed */
} replay_t;

struct gw_replayer_s {
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int run;               /* under mu */
    replay_t *todo, *done; /* under mu: FIFO to run, and finished (any order) */
    int jobs;              /* the loop's: queued, running or finished and not yet answered */
    int pipe[2];           /* the thread writes a byte per finished job; the loop reads */
    struct event *ev;
    char *brokers;
    rd_kafka_t *producer; /* the thread's */
    int dr_failed;        /* the thread's: delivery reports in error since the job began */
};

/* One wanted record of a job. */
typedef struct {
    int32_t part;
    int64_t off;
    size_t idx;            /* in the job's ids */
    rd_kafka_message_t *m; /* read, or NULL */
    char *topic;           /* its source topic (msp_dlq_unwrap), new */
    rd_kafka_headers_t *hdrs;
} want_t;

static int want_cmp(const void *a, const void *b) {
    const want_t *x = a, *y = b;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static void replay_free(replay_t *rp) {
    json_decref(rp->ids);
    free(rp->error);
    free(rp);
}

/* Delete the claims of rp's ids (loop). */
static void claims_release(gw_t *gw, const char *tenant, const json_t *ids) {
    size_t i;
    json_t *id;
    char err[256], key[200];
    json_array_foreach(ids, i, id) {
        msp_key(key, sizeof(key), tenant, "replay:%s", json_string_value(id));
        redisReply *r = gw_redis(gw, err, sizeof(err), "DEL %s", key);
        if (r)
            freeReplyObject(r);
    }
}

/* Claim ids for a replay (loop). Ids another replay holds are dropped from ids when skip (an
 * "all" replay), else nothing is kept claimed and *busy names one. @returns 0, or -1 (err). */
static int claims_take(gw_t *gw, const char *tenant, json_t *ids, int skip, char *busy,
                       size_t busy_size, char *err, size_t err_size) {
    busy[0] = '\0';
    for (size_t i = 0; i < json_array_size(ids);) {
        const char *id = json_string_value(json_array_get(ids, i));
        char key[200];
        msp_key(key, sizeof(key), tenant, "replay:%s", id);
        redisReply *r = gw_redis(gw, err, err_size, "SET %s 1 NX EX %d", key, REPLAY_CLAIM_S);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (!r || (!ok && !skip)) {
            if (r) /* held by another replay */
                snprintf(busy, busy_size, "%s", id);
            if (r)
                freeReplyObject(r);
            json_t *mine = json_array();
            for (size_t k = 0; k < i; k++)
                json_array_append(mine, json_array_get(ids, k));
            claims_release(gw, tenant, mine);
            json_decref(mine);
            return r ? 0 : -1;
        }
        freeReplyObject(r);
        if (ok)
            i++;
        else
            json_array_remove(ids, i);
    }
    return 0;
}

/* The thread's delivery reports (served by its flush, on the thread): count the failures. A
 * report of an earlier job that timed out counts against the current one (which then says so
 * and marks nothing: the safe side); no report points at a job, which may be gone by then. */
static void replay_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    if (m->err)
        ((gw_replayer_t *)opaque)->dr_failed++;
}

/* 1 while the gateway runs (the thread polls it between short waits). */
static int replayer_running(gw_replayer_t *rr) {
    pthread_mutex_lock(&rr->mu);
    int run = rr->run;
    pthread_mutex_unlock(&rr->mu);
    return run;
}

/* Read the wanted records (sorted by partition and offset) from dlq into w[i].m. @returns the
 * number not read. */
static size_t replay_read(gw_replayer_t *rr, rd_kafka_t *rk, want_t *w, size_t n) {
    const char *topic = msp_topic(MSP_TOPIC_DLQ);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    size_t *next = calloc(n, sizeof(*next)); /* per w index of a partition's first: its cursor */
    if (!l || !next) {
        if (l)
            rd_kafka_topic_partition_list_destroy(l);
        free(next);
        return n;
    }
    for (size_t i = 0; i < n; i++)
        if (i == 0 || w[i].part != w[i - 1].part)
            rd_kafka_topic_partition_list_add(l, topic, w[i].part)->offset = w[i].off;
    rd_kafka_resp_err_t ae = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (ae != RD_KAFKA_RESP_ERR_NO_ERROR) {
        free(next);
        return n;
    }
    size_t left = n;
    for (size_t i = 0; i < n; i++)
        next[i] = i;
    int64_t start = msp_now_ms(), idle = start;
    while (left > 0 && msp_now_ms() - idle < REPLAY_READ_MS &&
           msp_now_ms() - start < REPLAY_TOTAL_MS) {
        if (!replayer_running(rr))
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        size_t first = 0; /* the partition's first index in w */
        while (first < n && w[first].part != m->partition)
            first++;
        if (first == n || (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
            rd_kafka_message_destroy(m);
            continue;
        }
        size_t *c = &next[first];
        int64_t upto = m->err ? INT64_MAX : m->offset; /* at the end: every one left is gone */
        while (*c < n && w[*c].part == m->partition && w[*c].off < upto) {
            (*c)++; /* not there (compacted, deleted, or past the end): stays unread */
            idle = msp_now_ms();
        }
        if (!m->err && *c < n && w[*c].part == m->partition && w[*c].off == m->offset) {
            w[*c].m = m;
            m = NULL;
            (*c)++;
            left--;
            idle = msp_now_ms();
        }
        if (*c < n && w[*c].part == w[first].part && m && !m->err &&
            w[*c].off > m->offset + REPLAY_SEEK_GAP) {
            rd_kafka_topic_partition_list_t *s = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(s, topic, w[*c].part)->offset = w[*c].off;
            rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, s, 2000);
            if (e)
                rd_kafka_error_destroy(e);
            rd_kafka_topic_partition_list_destroy(s);
        }
        if (m)
            rd_kafka_message_destroy(m);
        /* a partition whose wanted records are all resolved no longer counts */
        size_t unresolved = 0;
        for (size_t i = 0; i < n; i++)
            if ((i == 0 || w[i].part != w[i - 1].part) && next[i] < n &&
                w[next[i]].part == w[i].part)
                unresolved++;
        if (!unresolved)
            break;
    }
    free(next);
    size_t unread = 0;
    for (size_t i = 0; i < n; i++)
        unread += w[i].m == NULL;
    return unread;
}

/* Run one job on the thread: read, check, produce, wait for the acknowledgements. Sets
 * rp->error when nothing (or not everything) was replayed. */
static void replay_run(gw_replayer_t *rr, replay_t *rp) {
    char errstr[512];
    size_t n = json_array_size(rp->ids);
    want_t *w = calloc(n ? n : 1, sizeof(*w));
    rd_kafka_t *rk =
        w ? msp_kafka_reader_new(rr->brokers, "mspsync-gateway-replay", errstr, sizeof(errstr))
          : NULL;
    if (!rk) {
        rp->error = strdup(w ? errstr : "out of memory");
        free(w);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(rp->ids, i));
        w[i].part = (int32_t)atoi(id);
        w[i].off = atoll(strchr(id, ':') + 1);
        w[i].idx = i;
    }
    qsort(w, n, sizeof(*w), want_cmp);
    size_t unread = replay_read(rr, rk, w, n);
    /* every record read, and each names its source topic, or nothing is produced */
    json_t *bad = json_array();
    for (size_t i = 0; i < n; i++)
        if (!w[i].m || msp_dlq_unwrap(w[i].m, &w[i].topic, &w[i].hdrs) != 0)
            json_array_append(bad, json_array_get(rp->ids, w[i].idx));
    if (json_array_size(bad)) {
        char *list = json_dumps(bad, JSON_COMPACT);
        size_t len = list ? strlen(list) : 0;
        char msg[600];
        snprintf(msg, sizeof(msg),
                 unread ? "%zu dead letters could not be read from Kafka (gone by retention?) or "
                          "name no source topic: %.400s%s"
                        : "%zu dead letters name no source topic: %.400s%s",
                 json_array_size(bad), list ? list : "", len > 400 ? "…" : "");
        free(list);
        rp->error = strdup(msg);
    } else {
        /* produced in the order asked */
        rr->dr_failed = 0;
        want_t **by = calloc(n ? n : 1, sizeof(*by));
        for (size_t i = 0; by && i < n; i++)
            by[w[i].idx] = &w[i];
        for (size_t i = 0; by && i < n && !rp->error; i++) {
            want_t *x = by[i];
            if (msp_kafka_produce(rr->producer, x->topic, x->m->key, x->m->key ? x->m->key_len : 0,
                                  x->m->payload, x->m->len, x->hdrs, NULL) == 0)
                x->hdrs = NULL; /* the producer's now */
            else
                rp->error = strdup("the replay could not be queued to Kafka");
        }
        if (!by)
            rp->error = strdup("out of memory");
        free(by);
        /* serves replay_dr; every job waits for its own and any earlier job's records, in
         * short slices so that a stopping gateway is not held */
        int64_t until = msp_now_ms() + REPLAY_FLUSH_MS;
        while (rd_kafka_outq_len(rr->producer) > 0 && msp_now_ms() < until && replayer_running(rr))
            rd_kafka_flush(rr->producer, 100);
        if (rd_kafka_outq_len(rr->producer) > 0 && !rp->error)
            rp->error = strdup("Kafka did not acknowledge the replayed records in time");
        if (rr->dr_failed && !rp->error) {
            snprintf(errstr, sizeof(errstr), "Kafka refused %d of the replayed records",
                     rr->dr_failed);
            rp->error = strdup(errstr);
        }
    }
    json_decref(bad);
    for (size_t i = 0; i < n; i++) {
        if (w[i].m)
            rd_kafka_message_destroy(w[i].m);
        if (w[i].hdrs)
            rd_kafka_headers_destroy(w[i].hdrs);
        free(w[i].topic);
    }
    free(w);
    /* after the messages: closing waits for every message of the reader to be destroyed */
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void *replayer_main(void *arg) {
    gw_replayer_t *rr = arg;
    pthread_mutex_lock(&rr->mu);
    while (rr->run) {
        replay_t *rp = rr->todo;
        if (!rp) {
            pthread_cond_wait(&rr->cv, &rr->mu);
            continue;
        }
        rr->todo = rp->next;
        pthread_mutex_unlock(&rr->mu);
        replay_run(rr, rp);
        pthread_mutex_lock(&rr->mu);
        rp->next = rr->done;
        rr->done = rp;
        char one = 1;
        if (write(rr->pipe[1], &one, 1) < 0) { /* the pipe holds far more than REPLAY_QUEUE_MAX */
        }
    }
    pthread_mutex_unlock(&rr->mu);
    return NULL;
}

/* A finished job (loop): mark its ids replayed, release the claims, answer. */
static void replay_finish(gw_t *gw, replay_t *rp) {
    char err[256] = "", now[40];
    if (rp->error) {
        gw_held_reply_error(rp->held, 503, "could not replay: %s (nothing marked replayed)",
                            rp->error);
    } else {
        msp_format_time(msp_wall_ms(), now, sizeof(now));
        size_t i;
        json_t *id;
        int failed = 0;
        json_array_foreach(rp->ids, i, id) {
            char key[200];
            msp_key(key, sizeof(key), rp->tenant, "dlq:%s", json_string_value(id));
            redisReply *r = gw_redis(gw, err, sizeof(err), "HSET %s replayed_at %s replayed_by %s",
                                     key, now, rp->by);
            if (r)
                freeReplyObject(r);
            else
                failed = 1;
        }
        if (failed)
            MSP_WARN("dlq.mark_failed", rp->tenant, "replayed, but not all marked: %s", err);
        MSP_INFO("dlq.replayed", rp->tenant, "%zu dead letters replayed by %s",
                 json_array_size(rp->ids), rp->by);
        gw_held_reply(rp->held, 200,
                      json_pack("{s:I,s:O,s:b}", "replayed", (json_int_t)json_array_size(rp->ids),
                                "ids", rp->ids, "more", rp->more));
    }
    claims_release(gw, rp->tenant, rp->ids);
    replay_free(rp);
}

static void replay_finish_task(gw_t *gw, void *arg) { replay_finish(gw, arg); }

/* The pipe is readable (loop): answer every finished job (on coroutines: it calls gw_redis). */
static void replayer_wake(evutil_socket_t fd, short what, void *arg) {
    gw_t *gw = arg;
    gw_replayer_t *rr = gw->replayer;
    char buf[64];
    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    pthread_mutex_lock(&rr->mu);
    replay_t *done = rr->done;
    rr->done = NULL;
    pthread_mutex_unlock(&rr->mu);
    while (done) {
        replay_t *rp = done;
        done = rp->next;
        rr->jobs--;
        gw_admin_call(gw, replay_finish_task, rp);
    }
}

int gw_replayer_start(gw_t *gw, char *errstr, size_t errstr_size) {
    gw_replayer_t *rr = calloc(1, sizeof(*rr));
    if (!rr || pipe(rr->pipe) != 0) {
        snprintf(errstr, errstr_size, "replay thread: %s", rr ? strerror(errno) : "out of memory");
        free(rr);
        return -1;
    }
    for (int i = 0; i < 2; i++)
        evutil_make_socket_nonblocking(rr->pipe[i]);
    pthread_mutex_init(&rr->mu, NULL);
    pthread_cond_init(&rr->cv, NULL);
    rr->brokers = strdup(gw->cfg.svc.brokers);
    rr->producer = rr->brokers ? msp_kafka_producer_new(rr->brokers, "mspsync-gateway-replay",
                                                        replay_dr, rr, errstr, errstr_size)
                               : NULL;
    rr->ev = event_new(gw->base, rr->pipe[0], EV_READ | EV_PERSIST, replayer_wake, gw);
    rr->run = 1;
    gw->replayer = rr;
    if (!rr->producer || !rr->ev || event_add(rr->ev, NULL) != 0 ||
        pthread_create(&rr->th, NULL, replayer_main, rr) != 0) {
        if (!errstr[0])
            snprintf(errstr, errstr_size, "replay thread: out of memory");
        gw_replayer_stop(gw);
        return -1;
    }
    rr->started = 1;
    return 0;
}

void gw_replayer_stop(gw_t *gw) {
    gw_replayer_t *rr = gw->replayer;
    if (!rr)
        return;
    pthread_mutex_lock(&rr->mu);
    rr->run = 0;
    pthread_cond_signal(&rr->cv);
    pthread_mutex_unlock(&rr->mu);
    if (rr->started)
        pthread_join(rr->th, NULL);
    /* the held requests of unfinished jobs are answered by gw_held_fail_all; their claims
     * expire (REPLAY_CLAIM_S) */
    for (replay_t *l = rr->todo; l;) {
        replay_t *rp = l;
        l = l->next;
        replay_free(rp);
    }
    for (replay_t *l = rr->done; l;) {
        replay_t *rp = l;
        l = l->next;
        replay_free(rp);
    }
    if (rr->ev)
        event_free(rr->ev);
    if (rr->producer) {
        rd_kafka_flush(rr->producer, 500);
        rd_kafka_destroy(rr->producer);
    }
    close(rr->pipe[0]);
    close(rr->pipe[1]);
    pthread_cond_destroy(&rr->cv);
    pthread_mutex_destroy(&rr->mu);
    free(rr->brokers);
    free(rr);
    gw->replayer = NULL;
}

/* Queue rp for the thread (loop). @returns 0, or -1: too many jobs. */
static int replay_queue(gw_t *gw, replay_t *rp) {
    gw_replayer_t *rr = gw->replayer;
    if (!rr || rr->jobs >= REPLAY_QUEUE_MAX)
        return -1;
    rr->jobs++;
    pthread_mutex_lock(&rr->mu);
    replay_t **t = &rr->todo;
    while (*t)
        t = &(*t)->next;
    *t = rp;
    pthread_cond_signal(&rr->cv);
    pthread_mutex_unlock(&rr->mu);
    return 0;
}

void api_dead_letters_replay(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "dead_letters_replay";
    json_t *body = NULL;
    if (gw_read_json(gw, req, route, 0, &body) != 0)
        return;
    static const char *const allowed[] = {"ids",    "all",          "force", "service",
                                          "reason", "source_topic", "since", NULL};
    char err[512] = "";
    json_t *ids = json_object_get(body, "ids"), *all = json_object_get(body, "all");
    json_t *force = json_object_get(body, "force");
    dlq_filter_t f = {NULL, NULL, NULL, -1, -1};
    if (!json_is_object(body)) {
        snprintf(err, sizeof(err), "the body must be an object, not %s", gw_json_kind(body));
    } else if (gw_json_only_keys(body, allowed, err, sizeof(err)) != 0) {
        /* err says which */
    } else if (force && !json_is_boolean(force)) {
        snprintf(err, sizeof(err), "\"force\" must be a boolean");
    } else if (!ids == !all) {
        snprintf(err, sizeof(err),
                 "give either \"ids\" (a list of dead letter ids) or "
                 "\"all\": true (with optional filters)");
    } else if (all && !json_is_true(all)) {
        snprintf(err, sizeof(err), "\"all\" must be true");
    } else if (ids && (!json_is_array(ids) || json_array_size(ids) == 0 ||
                       json_array_size(ids) > GW_REPLAY_MAX)) {
        snprintf(err, sizeof(err), "\"ids\" must be a list of 1 to %d dead letter ids",
                 GW_REPLAY_MAX);
    } else if (ids && json_object_size(body) > 1 + (force != NULL)) {
        snprintf(err, sizeof(err), "filters go with \"all\", not with \"ids\"");
    } else {
        static const char *const names[] = {"service", "reason", "source_topic", "since"};
        for (int i = 0; i < 4 && !err[0]; i++) {
            json_t *v = json_object_get(body, names[i]);
            if (v && (!json_is_string(v) || !json_string_length(v)))
                snprintf(err, sizeof(err), "\"%s\" must be a non-empty string", names[i]);
            else if (v && i == 3)
                since_parse(json_string_value(v), &f.since_ms, err, sizeof(err));
            else if (v)
                *(i == 0   ? &f.service
                  : i == 1 ? &f.reason
                           : &f.source_topic) = strdup(json_string_value(v));
        }
    }
    size_t i;
    json_t *id;
    if (!err[0] && ids)
        json_array_foreach(ids, i, id) if (!json_is_string(id) && !err[0])
            snprintf(err, sizeof(err), "\"ids\" must hold strings such as \"0:12\"");
    if (err[0]) {
        filter_clear(&f);
        json_decref(body);
        gw_reply_error(gw, req, route, 400, "%s", err);
        return;
    }
    int forced = json_is_true(force);
    replay_t *rp = calloc(1, sizeof(*rp));
    if (!rp) {
        filter_clear(&f);
        json_decref(body);
        gw_reply_error(gw, req, route, 500, "out of memory");
        return;
    }
    snprintf(rp->tenant, sizeof(rp->tenant), "%s", tenant);
    const gw_actor_t *actor = gw_audit_actor(gw, req);
    if (actor && actor->role == GW_ROLE_OPERATOR)
        snprintf(rp->by, sizeof(rp->by), "operator");
    else if (actor)
        snprintf(rp->by, sizeof(rp->by), "%s (%s)", actor->name, actor->id);
    else
        snprintf(rp->by, sizeof(rp->by), "unknown");
    int code = 0;
    if (all) {
        char *next = NULL;
        int bad = 0;
        f.replayed = forced ? -1 : 0;
        rp->ids = dlq_select(gw, tenant, &f, NULL, GW_REPLAY_MAX, 0, &next, &bad, err, sizeof(err));
        rp->more = next != NULL;
        free(next);
        code = rp->ids ? 0 : 503;
    } else {
        rp->ids = json_array();
        json_t *refused = json_array();
        json_array_foreach(ids, i, id) {
            redisReply *r = dlq_get(gw, tenant, json_string_value(id), &code, err, sizeof(err));
            if (!r)
                break;
            if (gw_hget(r, "replayed_at") && !forced)
                json_array_append(refused, id);
            int dup = 0; /* an id named twice is replayed once */
            for (size_t k = 0; k < json_array_size(rp->ids) && !dup; k++)
                dup = json_equal(json_array_get(rp->ids, k), id);
            if (!dup)
                json_array_append(rp->ids, id);
            freeReplyObject(r);
            code = 0;
        }
        if (!code && json_array_size(refused)) {
            char *list = json_dumps(refused, JSON_COMPACT);
            snprintf(err, sizeof(err),
                     "already replayed: %s (give \"force\": true to replay them again)",
                     list ? list : "");
            free(list);
            code = 409;
        }
        json_decref(refused);
    }
    filter_clear(&f);
    json_decref(body);
    if (code) {
        replay_free(rp);
        gw_reply_error(gw, req, route, code, code == 503 ? "redis unavailable: %s" : "%s", err);
        return;
    }
    char busy[48];
    if (claims_take(gw, tenant, rp->ids, all != NULL, busy, sizeof(busy), err, sizeof(err)) != 0)
        code = 503;
    else if (busy[0]) {
        snprintf(err, sizeof(err),
                 "dead letter %s is being replayed by another request: try again when it is done",
                 busy);
        code = 409;
    }
    if (code) {
        replay_free(rp);
        gw_reply_error(gw, req, route, code, code == 503 ? "redis unavailable: %s" : "%s", err);
        return;
    }
    if (json_array_size(rp->ids) == 0) { /* "all": nothing (left) to replay */
        json_t *none = rp->ids;
        rp->ids = NULL;
        gw_reply(gw, req, route, 200,
                 json_pack("{s:i,s:o,s:b}", "replayed", 0, "ids", none, "more", rp->more));
        replay_free(rp);
        return;
    }
    rp->held = gw_hold(gw, req, route);
    if (replay_queue(gw, rp) != 0) {
        claims_release(gw, rp->tenant, rp->ids);
        gw_held_reply_error(rp->held, 503,
                            "%d replays are running on this gateway: try again when one is done",
                            REPLAY_QUEUE_MAX);
        replay_free(rp);
    }
}
