/*
 * job.c — one sync job: pull every page of customers, then of assets, from one Syncro account
 * or one ConnectWise RMM partner (companies, then the devices of 4 companies per request, with
 * Link rel="next" paging and, when the partner has date custom fields, each device's values).
 *
 * States of a job, all driven by the event loop:
 *
 *   QUEUED ─► (tenant free) ─► TOKEN ─► HTTP ─► ACKS ─► TOKEN (next page) … ─► DONE / FAILED
 *                                 ▲        │ 429/5xx/timeout/bad JSON: wait (Retry-After or
 *                                 └────────┘ jittered backoff), then TOKEN again
 *
 * Invariants:
 * - Before every HTTP attempt the job takes one token from the GCRA bucket of its Syncro
 *   account in Redis; every replica and the gateway share that bucket.
 * - The cursor (mspsync:{t}:cursor:syncro:<job>) moves to the next page only after Kafka has
 *   acknowledged every record of the page (delivery reports), and by compare-and-set, so a
 *   replica that lost the job in a rebalance cannot move it.
 * - The job's sync.jobs offset is stored only when the job is finished (done or failed for a
 *   reason retrying cannot fix): a kill -9 replays the job message and the cursor resumes it.
 * - A job struct is freed only when no HTTP request, delivery report or timer refers to it.
 */
#include "fetcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "mspsync/backoff.h"
#include "mspsync/syncro_store.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/syncro.h"
#include "mspsync/utf8.h"

typedef enum {
    JOB_QUEUED,
    JOB_TOKEN,    /* waiting for a rate-limit token (or a retry delay) */
    JOB_HTTP,     /* request in flight */
    JOB_ACKS,     /* page records produced, waiting for delivery reports */
    JOB_FINISHED, /* done, failed or abandoned; freed once nothing refers to it */
} job_state_t;

typedef enum { T_CUSTOMER = 0, T_ASSET = 1 } rec_type_t;

static const struct {
    const char *type;     /* canonical type in messages */
    const char *resource; /* Syncro list resource */
    const char *list_key; /* array key in the list body */
    const char *plural;   /* sync.jobs "types" spelling */
} types[] = {
    {"customer", "customers", "customers", "customers"},
    {"asset", "customer_assets", "assets", "assets"},
};

struct job_s {
    fetcher_t  *f;
    job_t      *next;
    job_state_t state;
    int         abandoned;

    char tenant[80];
    char job_id[80];
    char reason[32];
    char mode[16];
    rec_type_t todo[2];
    int        todo_cnt;
    int        todo_idx;

    char   *src_topic;
    int32_t partition;
    int64_t offset;

    msp_syncro_integration_t syncro;   /* base URL, auth header, bucket key */
    int                      cw;       /* a ConnectWise RMM job (else Syncro) */
    const char              *integ;    /* "syncro" / "cwrmm": names keys, events, records */
    msp_cwrmm_integration_t  cwi;

    /* ConnectWise RMM: where the device pull stands */
    int     cw_step;          /* CW_LIST, CW_DEFS, CW_COMPANIES, CW_CF */
    int     group;            /* index of the group of 4 companies being listed */
    char   *vcursor;          /* vendor cursor of the current list request; NULL = first page */
    char   *next_vcursor;     /* Link rel="next" cursor of the last answer; NULL = group ended */
    json_t *companies;        /* company ids, NULL until known */
    int     defs_loaded;
    char    def_ids[2][MSP_CWRMM_ATTR_ID_SIZE]; /* msp_cwrmm_date_definitions */
    json_t *page_items;       /* devices of the page being completed */
    size_t  cf_idx;           /* next device whose custom fields are read */
    int     token_wait;       /* waiting for msp_cwrmm_token_get */
    int     auth_retries;     /* 401s on API calls in a row (a fresh token each time) */
    char    auth[4200];

    int  page;
    int  total_pages;
    long type_records;
    long records_fetched[2];
    int  attempt;
    int  pending_dr;
    int  dr_failed;
    int  http_inflight;
    int  type_done;      /* the page just fetched was the type's last */

    struct event *timer;
};

static void job_step(job_t *j);
static void job_request(job_t *j);
static void job_fail(job_t *j, const char *error, const char *hint, int pause);

/* ---------------------------------------------------------------- helpers */

int redis_ok(fetcher_t *f) { return msp_redis_ok(&f->redis, f->conf.svc.redis_url); }

enum { CW_LIST = 0, CW_DEFS, CW_COMPANIES, CW_CF };
#define CW_GROUP 4   /* companies per device-list request (resourceType company allows 4) */

static void cursor_key(const job_t *j, char *buf, size_t size) {
    msp_key(buf, size, j->tenant, "cursor:%s:%s", j->integ, j->job_id);
}

static void status_set(job_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* HSET on the integration status hash; fmt gives "field %s field %s ..." pairs. */
static void status_set(job_t *j, const char *fmt, ...) {
    fetcher_t *f = j->f;
    if (!redis_ok(f)) return;
    char key[256], cmd[2048];
    msp_key(key, sizeof(key), j->tenant, "status:%s", j->integ);
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
    redisReply *r = redisCommandArgv(f->redis, argc, argv, argl);
    if (r) freeReplyObject(r);
}

static void event_emit(job_t *j, const char *event, json_t *extra) {
    char at[40];
    msp_format_time(msp_wall_ms(), at, sizeof(at));
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "schema_version", 1, "tenant",
                          j->tenant, "integration", j->integ, "job_id", j->job_id, "event", event,
                          "at", at, "replica", j->f->replica_id);
    if (extra) {
        json_object_update(o, extra);
        json_decref(extra);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s) {
        msp_kafka_produce(j->f->producer, msp_topic(MSP_TOPIC_SYNC_EVENTS), j->tenant,
                          strlen(j->tenant), s, strlen(s), NULL, NULL);
        free(s);
    }
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
    if (j->timer) event_free(j->timer);
    msp_syncro_integration_clear(&j->syncro);
    msp_cwrmm_integration_clear(&j->cwi);
    free(j->vcursor);
    free(j->next_vcursor);
    json_decref(j->companies);
    json_decref(j->page_items);
    free(j->src_topic);
    free(j);
    msp_metric_set(f->metrics, "mspsync_fetcher_jobs", NULL, f->jobs_cnt);
}

/* Free a finished job once nothing refers to it. */
static void job_release_if_idle(job_t *j) {
    if (j->state == JOB_FINISHED && j->token_wait) {
        msp_cwrmm_token_cancel(j->f->cw_tokens, j);
        j->token_wait = 0;
    }
    if (j->state == JOB_FINISHED && !j->http_inflight && j->pending_dr == 0) job_free(j);
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
    if (j->timer) event_del(j->timer);
    j->state = JOB_FINISHED;
    if (was_running) {
        f->running_cnt--;
        msp_metric_set(f->metrics, "mspsync_fetcher_jobs_running", NULL, f->running_cnt);
    }
    if (!j->abandoned) job_ack_offset(j);
    job_release_if_idle(j);
    if (!f->stopping) start_next_for_tenant(f, tenant);
}

/* The next scheduled sync of this tenant is one interval after this one ended. */
static void sched_push_back(job_t *j) {
    char skey[256];
    msp_key(skey, sizeof(skey), j->tenant, "sched:%s", j->integ);
    redisReply *r = redisCommand(j->f->redis, "SET %s %s PX %lld", skey, j->job_id,
                                 j->f->conf.schedule_interval_ms);
    if (r) freeReplyObject(r);
}

static void job_done(job_t *j) {
    fetcher_t *f = j->f;
    char key[256], now[40];
    cursor_key(j, key, sizeof(key));
    if (redis_ok(f)) {
        redisReply *r = redisCommand(f->redis, "SET %s done PX %lld", key, 7LL * 86400 * 1000);
        if (r) freeReplyObject(r);
        sched_push_back(j);
    }
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    status_set(j, "state\x1f" "connected\x1f" "last_sync_at\x1f%s\x1f" "last_error\x1f\x1f" "hint\x1f\x1f"
               "progress_type\x1f" "done",
               now);
    event_emit(j, "job_done",
               json_pack("{s:I,s:I}", "customers", (json_int_t)j->records_fetched[T_CUSTOMER],
                         "assets", (json_int_t)j->records_fetched[T_ASSET]));
    MSP_INFO("job.done", j->tenant, "job=%s customers=%ld assets=%ld", j->job_id,
             j->records_fetched[T_CUSTOMER], j->records_fetched[T_ASSET]);
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
    if (redis_ok(f)) {
        char key[256];
        cursor_key(j, key, sizeof(key));
        redisReply *r = redisCommand(f->redis, "SET %s failed PX %lld", key, 7LL * 86400 * 1000);
        if (r) freeReplyObject(r);
        sched_push_back(j); /* a failed sync is tried again one interval later, not at once */
    }
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

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    job_request((job_t *)arg);
}

static void job_wait(job_t *j, int64_t ms) {
    if (!j->timer) j->timer = evtimer_new(j->f->base, timer_cb, j);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    j->state = JOB_TOKEN;
    evtimer_add(j->timer, &tv);
}

/* Retry the current page later: Retry-After when the vendor said, else jittered backoff. */
static void job_retry(job_t *j, int64_t retry_after_ms, const char *why) {
    fetcher_t *f = j->f;
    j->attempt++;
    if (j->attempt >= f->conf.max_attempts) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s (gave up after %d attempts; the next sync will try again)",
                 why, j->attempt);
        job_fail(j, msg, j->cw ? "ConnectWise RMM kept failing; check its status page or the network"
                              : "Syncro kept failing; check status.syncro.com or the network", 0);
        return;
    }
    int64_t d = msp_backoff_ms((unsigned)(j->attempt - 1), f->conf.backoff_base_ms,
                               f->conf.backoff_cap_ms, msp_rand01());
    if (retry_after_ms >= 0 && retry_after_ms > d) d = retry_after_ms;
    MSP_WARN("page.retry", j->tenant, "job=%s %s page=%d attempt=%d retry_in_ms=%lld: %s",
             j->job_id, types[j->todo[j->todo_idx]].type, j->page, j->attempt, (long long)d, why);
    msp_metric_add(f->metrics, "mspsync_fetcher_retries_total", NULL, 1);
    job_wait(j, d);
}

/* @returns 1 the integration exists, 0 it was removed, -1 Redis did not answer. */
static int integration_exists(job_t *j) {
    fetcher_t *f = j->f;
    char key[256];
    msp_key(key, sizeof(key), j->tenant, "integration:%s", j->integ);
    /* Disabling an integration discards its secret: that stops its jobs too. */
    redisReply *r = redisCommand(f->redis, "HEXISTS %s %s", key,
                                 j->cw ? "client_secret_sealed" : "api_key_sealed");
    int rc = r && r->type == REDIS_REPLY_INTEGER ? r->integer == 1 : -1;
    if (r) freeReplyObject(r);
    return rc;
}

static void http_cb(msp_http_response_t *res, void *opaque);
static void cw_send(job_t *j);
static void cw_http(job_t *j, msp_http_response_t *res);

/* Take a token, then send the request for the current page. */
static void job_request(job_t *j) {
    fetcher_t *f = j->f;
    if (f->stopping) j->abandoned = 1;
    if (j->abandoned) {
        job_finish(j);
        return;
    }
    if (!redis_ok(f)) {
        job_wait(j, 1000);
        return;
    }
    int exists = integration_exists(j);
    if (exists < 0) {
        /* Not knowing is not "removed": wait for Redis, never drop the job. */
        job_wait(j, 1000);
        return;
    }
    if (!exists) {
        job_skip(j, "integration removed");
        return;
    }
    int64_t wait_ms = 0;
    char err[256];
    int rc = j->cw ? msp_gcra_take(f->redis, j->cwi.bucket_key, f->conf.cwrmm_rate,
                                   (int)f->conf.cwrmm_burst, 1, &wait_ms, err, sizeof(err))
                   : msp_gcra_take(f->redis, j->syncro.bucket_key, f->conf.syncro_rate,
                                   (int)f->conf.syncro_burst, 1, &wait_ms, err, sizeof(err));
    if (rc < 0) {
        MSP_WARN("ratelimit.error", j->tenant, "%s", err);
        job_wait(j, 500);
        return;
    }
    if (rc == 0) {
        msp_metric_add(f->metrics, "mspsync_fetcher_ratelimit_waits_total", NULL, 1);
        /* A little jitter so that jobs sharing a bucket do not wake in lock-step. */
        job_wait(j, wait_ms + (int64_t)(msp_rand01() * 20));
        return;
    }
    if (j->cw) {
        cw_send(j);
        return;
    }
    const rec_type_t t = j->todo[j->todo_idx];
    char url[1024];
    msp_syncro_list_url(j->syncro.base_url, types[t].resource, j->page, 0, url, sizeof(url));
    const char *headers[] = {j->syncro.auth_header, "Accept: application/json", NULL};
    msp_http_request_t req = {.method = "GET", .url = url, .headers = headers,
                              .tenant = j->tenant};
    j->state = JOB_HTTP;
    j->http_inflight = 1;
    if (msp_http_request(f->http, &req, http_cb, j) != 0) {
        j->http_inflight = 0;
        job_retry(j, -1, "could not start the HTTP request");
    }
}

static void produce_record(job_t *j, rec_type_t t, json_t *item, const char *fetched_at) {
    fetcher_t *f = j->f;
    json_t *env = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "schema_version", 1, "kind",
                            "record", "tenant", j->tenant, "integration", j->integ, "type",
                            types[t].type, "job_id", j->job_id, "fetched_at", fetched_at,
                            "payload", item);
    json_t *id = json_object_get(item, "id");
    if (json_is_integer(id) && json_integer_value(id) > 0) {
        char sid[32];
        snprintf(sid, sizeof(sid), "%lld", (long long)json_integer_value(id));
        json_object_set_new(env, "source_id", json_string(sid));
    }
    const char *cid = json_string_value(json_object_get(item, t == T_ASSET ? "endpointID" : "id"));
    if (j->cw && cid && cid[0]) json_object_set_new(env, "source_id", json_string(cid));
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

static void produce_complete(job_t *j, rec_type_t t) {
    json_t *env = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:I}", "schema_version", 1, "kind",
                            "sync_complete", "tenant", j->tenant, "integration", j->integ, "type",
                            types[t].type, "job_id", j->job_id, "count",
                            (json_int_t)j->type_records);
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

static int job_resume(job_t *j);
static void job_done(job_t *j);

/* Continue the job from wherever its cursor stands. */
static void job_follow_cursor(job_t *j) {
    int rc = job_resume(j);
    if (rc < 0) {
        job_retry(j, 1000, "Redis error while reading the cursor");
    } else if (rc == 1) {
        job_finish(j); /* done or failed by another instance: nothing left to do */
    } else if (rc == 2) {
        job_done(j);
    } else {
        j->attempt = 0;
        j->type_done = 0;
        job_request(j);
    }
}

/* All records of the page (or the sync_complete marker) are in Kafka: move the cursor. */
static void page_acked(job_t *j) {
    fetcher_t *f = j->f;
    if (j->abandoned) {
        job_finish(j);
        return;
    }
    if (j->dr_failed) {
        j->dr_failed = 0;
        job_retry(j, -1, "Kafka did not acknowledge every record of the page");
        return;
    }
    const rec_type_t t = j->todo[j->todo_idx];
    char key[256], cur[1200], nxt[1200];
    cursor_key(j, key, sizeof(key));
    const int type_done = j->type_done;
    int cw_next_group = 0;
    if (j->cw && t == T_ASSET) {
        /* asset:<group>:<vendor cursor or -> */
        snprintf(cur, sizeof(cur), "asset:%d:%s", j->group, j->vcursor ? j->vcursor : "-");
        cw_next_group = !j->next_vcursor;
        if (!type_done)
            snprintf(nxt, sizeof(nxt), "asset:%d:%s", j->group + cw_next_group,
                     j->next_vcursor ? j->next_vcursor : "-");
    } else {
        snprintf(cur, sizeof(cur), "%s:%d", types[t].type, j->page);
        if (!type_done) snprintf(nxt, sizeof(nxt), "%s:%d", types[t].type, j->page + 1);
    }
    if (!type_done) {
        /* set above */
    } else if (j->todo_idx + 1 < j->todo_cnt) {
        if (j->cw && j->todo[j->todo_idx + 1] == T_ASSET)
            snprintf(nxt, sizeof(nxt), "asset:0:-");
        else
            snprintf(nxt, sizeof(nxt), "%s:1", types[j->todo[j->todo_idx + 1]].type);
    } else {
        snprintf(nxt, sizeof(nxt), "complete");
    }
    if (!redis_ok(f)) {
        /* Records are in Kafka; re-fetching the page later is harmless (idempotent downstream). */
        job_retry(j, 1000, "Redis unavailable while moving the cursor");
        return;
    }
    int rc = msp_cursor_cas(f->redis, key, cur, nxt);
    if (rc == 0) {
        /* The cursor is not where we left it: our own earlier CAS that timed out client-side
         * but ran (a stalled Redis), or another instance of this job during a rebalance.
         * Either way the cursor is the truth: continue from what it says. */
        MSP_WARN("cursor.moved", j->tenant, "job=%s expected %s; following the cursor", j->job_id,
                 cur);
        job_follow_cursor(j);
        return;
    }
    if (rc < 0) {
        job_retry(j, 1000, "Redis error while moving the cursor");
        return;
    }
    j->attempt = 0;
    if (!type_done) {
        j->page++;
        if (j->cw && t == T_ASSET) {
            free(j->vcursor);
            j->vcursor = j->next_vcursor;
            j->next_vcursor = NULL;
            j->group += cw_next_group;
            j->cw_step = CW_LIST;
        }
        job_request(j);
        return;
    }
    event_emit(j, "type_done",
               json_pack("{s:s,s:I}", "type", types[t].type, "records",
                         (json_int_t)j->type_records));
    if (j->todo_idx + 1 < j->todo_cnt) {
        j->todo_idx++;
        j->page = 1;
        j->total_pages = 1;
        j->type_records = 0;
        j->type_done = 0;
        j->group = 0;
        j->cw_step = CW_LIST;
        job_request(j);
    } else {
        job_done(j);
    }
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

static void http_cb(msp_http_response_t *res, void *opaque) {
    job_t *j = opaque;
    fetcher_t *f = j->f;
    j->http_inflight = 0;
    if (f->stopping) j->abandoned = 1; /* unfinished: keep the offset for a replay */
    if (j->abandoned || f->stopping || j->state == JOB_FINISHED) {
        if (j->state != JOB_FINISHED) job_finish(j);
        else job_release_if_idle(j);
        return;
    }
    if (j->cw) {
        cw_http(j, res);
        return;
    }
    const rec_type_t t = j->todo[j->todo_idx];
    msp_http_outcome_t out = msp_http_classify(res);
    char labels[64];
    snprintf(labels, sizeof(labels), "outcome=\"%s\"", msp_http_outcome_name(out));
    msp_metric_add(f->metrics, "mspsync_fetcher_requests_total", labels, 1);
    char desc[1024];
    if (out != MSP_HTTP_OK) {
        msp_syncro_describe(res, "GET", types[t].resource, desc, sizeof(desc));
        if (out == MSP_HTTP_RETRY) {
            job_retry(j, res->retry_after_ms, desc);
        } else if (out == MSP_HTTP_FATAL) {
            const char *perm = msp_syncro_permission_for("GET", types[t].resource);
            char hint[256];
            snprintf(hint, sizeof(hint),
                     "update the API key or grant its group \"%s\" in Syncro, then save the "
                     "integration again",
                     perm ? perm : "the needed permission");
            job_fail(j, desc, hint, 1);
        } else {
            job_fail(j, desc, "Syncro refused the request; check the integration settings", 0);
        }
        return;
    }
    msp_syncro_page_t page;
    char err[256];
    if (msp_syncro_parse_page(res->body, res->body_len, types[t].list_key, j->page, &page, err,
                              sizeof(err)) != 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "Syncro GET /%s page %d: unreadable response: %s",
                 types[t].resource, j->page, err);
        job_retry(j, -1, msg);
        return;
    }
    char fetched_at[40];
    msp_format_time(msp_wall_ms(), fetched_at, sizeof(fetched_at));
    size_t n = json_array_size(page.items);
    j->total_pages = page.total_pages;
    j->state = JOB_ACKS;
    for (size_t i = 0; i < n; i++) produce_record(j, t, json_array_get(page.items, i), fetched_at);
    json_decref(page.items);
    j->type_records += (long)n;
    j->records_fetched[t] += (long)n;
    msp_metric_add(f->metrics, "mspsync_fetcher_records_total", NULL, (double)n);

    /* Loop on meta.total_pages; an empty page (past the end) also ends the type. */
    j->type_done = j->page >= j->total_pages || n == 0;
    status_set(j, "progress_type\x1f%s\x1f" "progress_page\x1f%d\x1f" "progress_total_pages\x1f%d\x1f"
               "%s_fetched\x1f%ld",
               types[t].type, j->page, j->total_pages, types[t].plural, j->records_fetched[t]);
    event_emit(j, "page",
               json_pack("{s:s,s:i,s:i,s:I}", "type", types[t].type, "page", j->page,
                         "total_pages", j->total_pages, "records", (json_int_t)n));
    if (j->type_done) produce_complete(j, t);
    if (j->pending_dr == 0) page_acked(j);
}


/* ---------------------------------------------------- ConnectWise RMM pages */

/*
 * A ConnectWise RMM job asks, in this order and each through job_request (a rate-limit token,
 * retries): the companies (customers; their ids are kept for the devices), then per group of 4
 * companies the device pages (Link rel="next"), and for each device of a page its custom-field
 * values when the partner has a "Purchase Date" or "Warranty Expiration" definition. A page's
 * records are produced once all of its devices are complete; the cursor moves after the acks.
 * A job resumed at an asset group first lists the definitions and the companies again.
 */

static void cw_token_cb(const char *auth, long status, int64_t retry_after_ms, const char *error,
                        void *opaque);

static void cw_send(job_t *j) {
    j->token_wait = 1;
    j->http_inflight = 1;   /* keeps the job alive until the token (and request) are done */
    j->state = JOB_HTTP;
    if (msp_cwrmm_token_get(j->f->cw_tokens, j->tenant, &j->cwi, cw_token_cb, j) != 0) {
        j->token_wait = 0;
        j->http_inflight = 0;
        job_retry(j, -1, "out of memory while asking for a ConnectWise RMM token");
    }
}

static size_t cw_group_count(const job_t *j) {
    size_t n = json_array_size(j->companies);
    return (n + CW_GROUP - 1) / CW_GROUP;
}

/* What the current step asks; path is printed in errors (no query). */
static void cw_target(const job_t *j, char *url, size_t size, const char **method, char *path,
                      size_t path_size, char **body) {
    const rec_type_t t = j->todo[j->todo_idx];
    const char *base = j->cwi.base_url;
    *body = NULL;
    *method = "GET";
    if (t == T_CUSTOMER || j->cw_step == CW_COMPANIES) {
        snprintf(path, path_size, "/api/platform/v1/company/companies");
        snprintf(url, size, "%s%s", base, path);
    } else if (j->cw_step == CW_DEFS) {
        /* No entityType filter: the document's values for it ("device", "company", "site")
         * differ from the definitions' own ("endpoint", "client"); msp_cwrmm_date_definitions
         * keeps the endpoint ones. */
        snprintf(path, path_size, "/api/platform/v1/custom-field/definitions");
        snprintf(url, size, "%s%s", base, path);
    } else if (j->cw_step == CW_CF) {
        const char *eid = json_string_value(
            json_object_get(json_array_get(j->page_items, j->cf_idx), "endpointID"));
        snprintf(path, path_size, "/api/platform/v2/device/endpoints/%s/custom-fields", eid ? eid : "");
        char ids[200] = "";
        for (int i = 0; i < 2; i++)
            if (j->def_ids[i][0])
                snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%s%s", ids[0] ? "," : "",
                         j->def_ids[i]);
        snprintf(url, size, "%s%s?attributeIDs=%s", base, path, ids);
    } else {
        *method = "POST";
        snprintf(path, path_size, "/api/platform/v2/device/categories/all/endpoints");
        msp_cwrmm_devices_url(base, (int)j->f->conf.cwrmm_page_size, j->vcursor, url, size);
        const char *ids[CW_GROUP];
        size_t n = 0;
        for (size_t i = (size_t)j->group * CW_GROUP;
             i < json_array_size(j->companies) && n < CW_GROUP; i++)
            ids[n++] = json_string_value(json_array_get(j->companies, i));
        *body = msp_cwrmm_devices_body(ids, n);
    }
}

static void cw_token_cb(const char *auth, long status, int64_t retry_after_ms, const char *error,
                        void *opaque) {
    job_t *j = opaque;
    fetcher_t *f = j->f;
    j->token_wait = 0;
    j->http_inflight = 0;
    if (f->stopping) j->abandoned = 1;
    if (j->abandoned || j->state == JOB_FINISHED) {
        if (j->state != JOB_FINISHED) job_finish(j);
        else job_release_if_idle(j);
        return;
    }
    if (!auth) {
        if (status == 401 || status == 403) {
            job_fail(j, error, "check the client id and secret (and their scopes) in ConnectWise "
                               "RMM, then save the integration again", 1);
        } else {
            job_retry(j, retry_after_ms, error);
        }
        return;
    }
    snprintf(j->auth, sizeof(j->auth), "%s", auth);
    const rec_type_t t = j->todo[j->todo_idx];
    if (t == T_ASSET && j->cw_step == CW_LIST && !j->defs_loaded) j->cw_step = CW_DEFS;
    else if (t == T_ASSET && j->cw_step == CW_LIST && !j->companies) j->cw_step = CW_COMPANIES;
    if (t == T_ASSET && j->cw_step == CW_LIST && (size_t)j->group >= cw_group_count(j)) {
        /* No company (left): the pull is complete. */
        j->type_done = 1;
        j->state = JOB_ACKS;
        produce_complete(j, t);
        if (j->pending_dr == 0) page_acked(j);
        return;
    }
    char url[2048], path[300];
    const char *method;
    char *body = NULL;
    cw_target(j, url, sizeof(url), &method, path, sizeof(path), &body);
    const char *headers[] = {j->auth, "Accept: application/json", "Content-Type: application/json",
                             NULL};
    msp_http_request_t req = {.method = method, .url = url, .headers = headers, .body = body,
                              .body_len = body ? strlen(body) : 0, .tenant = j->tenant};
    j->state = JOB_HTTP;
    j->http_inflight = 1;
    if (msp_http_request(f->http, &req, http_cb, j) != 0) {
        j->http_inflight = 0;
        job_retry(j, -1, "could not start the HTTP request");
    }
    free(body);
}

/* Produce the records of a completed device page and wait for their acks. */
static void cw_page_complete(job_t *j) {
    const rec_type_t t = T_ASSET;
    char fetched_at[40];
    msp_format_time(msp_wall_ms(), fetched_at, sizeof(fetched_at));
    size_t n = json_array_size(j->page_items);
    j->state = JOB_ACKS;
    for (size_t i = 0; i < n; i++) produce_record(j, t, json_array_get(j->page_items, i), fetched_at);
    json_decref(j->page_items);
    j->page_items = NULL;
    j->type_records += (long)n;
    j->records_fetched[t] += (long)n;
    msp_metric_add(j->f->metrics, "mspsync_fetcher_records_total", NULL, (double)n);
    j->type_done = !j->next_vcursor && (size_t)j->group + 1 >= cw_group_count(j);
    status_set(j, "progress_type\x1f%s\x1f" "progress_page\x1f%d\x1f" "progress_total_pages\x1f%d\x1f"
               "%s_fetched\x1f%ld",
               types[t].type, j->page, (int)cw_group_count(j), types[t].plural, j->records_fetched[t]);
    event_emit(j, "page", json_pack("{s:s,s:i,s:i,s:I}", "type", types[t].type, "page", j->page,
                                    "group", j->group, "records", (json_int_t)n));
    if (j->type_done) produce_complete(j, t);
    if (j->pending_dr == 0) page_acked(j);
}

static void cw_http(job_t *j, msp_http_response_t *res) {
    fetcher_t *f = j->f;
    const rec_type_t t = j->todo[j->todo_idx];
    char url[2048], path[300];
    const char *method;
    char *body = NULL;
    cw_target(j, url, sizeof(url), &method, path, sizeof(path), &body);
    free(body);
    int list_end = j->cw_step == CW_LIST && t == T_ASSET && res->status == 404;
    msp_http_outcome_t out = list_end ? MSP_HTTP_OK : msp_http_classify(res);
    char labels[64], desc[1024];
    snprintf(labels, sizeof(labels), "outcome=\"%s\"", msp_http_outcome_name(out));
    msp_metric_add(f->metrics, "mspsync_fetcher_requests_total", labels, 1);
    if (out != MSP_HTTP_OK) {
        msp_cwrmm_describe(res, method, path, desc, sizeof(desc));
        if (res->status == 401 && j->auth_retries < 3) {
            /* The token expired or was revoked early: drop it (once for all the jobs that saw
             * the same token) and ask again. */
            j->auth_retries++;
            msp_cwrmm_token_rejected(f->cw_tokens, j->tenant, &j->cwi, j->auth);
            MSP_WARN("token.rejected", j->tenant, "job=%s %s", j->job_id, desc);
            job_request(j);
        } else if (out == MSP_HTTP_RETRY) {
            job_retry(j, res->retry_after_ms, desc);
        } else if (out == MSP_HTTP_FATAL) {
            const char *scope = msp_cwrmm_scope_for(method, path);
            char hint[300];
            snprintf(hint, sizeof(hint), "grant the API client the scope \"%s\" in ConnectWise RMM "
                     "(or fix its credentials), then save the integration again",
                     scope ? scope : "needed");
            job_fail(j, desc, hint, 1);
        } else {
            job_fail(j, desc, "ConnectWise RMM refused the request; check the integration settings", 0);
        }
        return;
    }
    j->auth_retries = 0;
    json_error_t jerr;
    json_t *doc = list_end ? NULL : json_loadb(res->body, res->body_len, 0, &jerr);
    if (!list_end && !doc) {
        char msg[512];
        snprintf(msg, sizeof(msg), "ConnectWise RMM %s %s: unreadable response: %s", method, path,
                 jerr.text);
        job_retry(j, -1, msg);
        return;
    }
    if (t == T_CUSTOMER || j->cw_step == CW_COMPANIES) {
        if (!json_is_array(doc)) {
            json_decref(doc);
            job_retry(j, -1, "ConnectWise RMM GET /api/platform/v1/company/companies: not a JSON array");
            return;
        }
        json_t *ids = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(doc, i, c) {
            const char *id = json_string_value(json_object_get(c, "id"));
            if (id && id[0]) json_array_append_new(ids, json_string(id));
        }
        json_decref(j->companies);
        j->companies = ids;
        if (j->cw_step == CW_COMPANIES) {   /* only the ids were needed */
            json_decref(doc);
            j->cw_step = CW_LIST;
            j->attempt = 0;
            job_request(j);
            return;
        }
        char fetched_at[40];
        msp_format_time(msp_wall_ms(), fetched_at, sizeof(fetched_at));
        size_t n = json_array_size(doc);
        j->state = JOB_ACKS;
        json_array_foreach(doc, i, c) produce_record(j, t, c, fetched_at);
        json_decref(doc);
        j->type_records += (long)n;
        j->records_fetched[t] += (long)n;
        j->type_done = 1;
        status_set(j, "progress_type\x1f%s\x1f" "customers_fetched\x1f%ld", types[t].type,
                   j->records_fetched[t]);
        event_emit(j, "page", json_pack("{s:s,s:i,s:I}", "type", types[t].type, "page", 1,
                                        "records", (json_int_t)n));
        produce_complete(j, t);
        if (j->pending_dr == 0) page_acked(j);
        return;
    }
    if (j->cw_step == CW_DEFS) {
        /* The same rule as the write-back's: a partner's "Purchase date" is read too. */
        msp_cwrmm_date_definitions(doc, j->def_ids);
        json_decref(doc);
        j->defs_loaded = 1;
        j->cw_step = CW_LIST;
        j->attempt = 0;
        job_request(j);
        return;
    }
    if (j->cw_step == CW_CF) {
        json_object_set_new(json_array_get(j->page_items, j->cf_idx), "customFieldValues",
                            json_is_array(doc) ? doc : json_array());
        if (!json_is_array(doc)) json_decref(doc);
        j->attempt = 0;
        if (++j->cf_idx < json_array_size(j->page_items)) {
            job_request(j);
        } else {
            j->cw_step = CW_LIST;
            cw_page_complete(j);
        }
        return;
    }
    /* A device page: {"platform":[{"companyID","siteID","endpoints":[...]}]}; 404 = no more. */
    json_t *items = json_array();
    size_t gi;
    json_t *g;
    json_array_foreach(json_object_get(doc, "platform"), gi, g) {
        size_t ei;
        json_t *e;
        json_array_foreach(json_object_get(g, "endpoints"), ei, e) {
            json_t *d = json_deep_copy(e);
            json_object_set(d, "companyID", json_object_get(g, "companyID"));
            json_object_set(d, "siteID", json_object_get(g, "siteID"));
            json_array_append_new(items, d);
        }
    }
    json_decref(doc);
    free(j->next_vcursor);
    j->next_vcursor = list_end ? NULL : msp_cwrmm_cursor_from_link(res->link_next);
    json_decref(j->page_items);
    j->page_items = items;
    j->attempt = 0;
    if (json_array_size(items) && (j->def_ids[0][0] || j->def_ids[1][0])) {
        j->cw_step = CW_CF;
        j->cf_idx = 0;
        job_request(j);
        return;
    }
    cw_page_complete(j);
}

/* ------------------------------------------------------------- job start */

/* Load the integration (base URL, sealed key). @returns as msp_syncro_integration_load. */
static int job_load(job_t *j, char *err, size_t err_size) {
    if (j->cw)
        return msp_cwrmm_integration_load(j->f->redis, &j->f->key, j->tenant, &j->cwi, err,
                                          err_size);
    return msp_syncro_integration_load(j->f->redis, &j->f->key, j->tenant, &j->syncro, err,
                                       err_size);
}

/* Paused after an auth or permission error: only a user's action (save, sync now) resumes. */
static int integration_paused(job_t *j) {
    char key[256];
    msp_key(key, sizeof(key), j->tenant, "status:%s", j->integ);
    redisReply *r = redisCommand(j->f->redis, "HGET %s paused", key);
    int paused = r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "1");
    if (r) freeReplyObject(r);
    return paused;
}

static int type_index(const char *type) {
    for (int i = 0; i < 2; i++)
        if (!strcmp(types[i].type, type)) return i;
    return -1;
}

/* Resume from the cursor, or create it. @returns 0 run, 1 already finished, -1 error. */
static int job_resume(job_t *j) {
    fetcher_t *f = j->f;
    char key[256];
    cursor_key(j, key, sizeof(key));
    int err = 0;
    char *cur = msp_redis_get(f->redis, key, &err);
    if (err) return -1;
    if (!cur) {
        char first[64];
        if (j->cw && j->todo[0] == T_ASSET)
            snprintf(first, sizeof(first), "asset:0:-");
        else
            snprintf(first, sizeof(first), "%s:1", types[j->todo[0]].type);
        int rc = msp_cursor_cas_ex(f->redis, key, NULL, first, 7LL * 86400 * 1000);
        if (rc < 0) return -1;
        if (rc == 0) return job_resume(j); /* somebody created it meanwhile: read it */
        j->todo_idx = 0;
        j->page = 1;
        return 0;
    }
    if (!strcmp(cur, "done") || !strcmp(cur, "failed")) {
        free(cur);
        return 1;
    }
    if (!strcmp(cur, "complete")) {
        /* Every record is in Kafka; only the bookkeeping of job_done was lost. */
        free(cur);
        j->todo_idx = j->todo_cnt - 1;
        return 2;
    }
    char tname[32];
    int page = 0, group = 0, used = 0;
    if (j->cw && sscanf(cur, "asset:%d:%n", &group, &used) == 1 && used > 0 && group >= 0) {
        for (int i = 0; i < j->todo_cnt; i++) {
            if (j->todo[i] == T_ASSET) {
                j->todo_idx = i;
                j->group = group;
                free(j->vcursor);
                j->vcursor = strcmp(cur + used, "-") ? strdup(cur + used) : NULL;
                j->page = 1;
                MSP_INFO("job.resumed", j->tenant, "job=%s at asset group %d", j->job_id, group);
                free(cur);
                return 0;
            }
        }
    }
    if (sscanf(cur, "%31[a-z]:%d", tname, &page) == 2 && page >= 1) {
        int ti = type_index(tname);
        for (int i = 0; i < j->todo_cnt; i++) {
            if ((int)j->todo[i] == ti) {
                j->todo_idx = i;
                j->page = page;
                free(cur);
                MSP_INFO("job.resumed", j->tenant, "job=%s at %s page %d", j->job_id, tname, page);
                return 0;
            }
        }
    }
    MSP_WARN("cursor.invalid", j->tenant, "job=%s cursor '%s' ignored", j->job_id, cur);
    free(cur);
    return 1;
}

static void job_step(job_t *j) {
    fetcher_t *f = j->f;
    if (j->state != JOB_QUEUED) return;
    if (tenant_running(f, j->tenant, j)) return; /* starts when that one finishes */
    if (f->running_cnt >= f->conf.max_jobs) return; /* jobs_tick starts it later */
    if (!redis_ok(f)) return;                       /* jobs_tick retries */
    char err[512];
    int rc = job_load(j, err, sizeof(err));
    if (rc < 0) return;
    j->state = JOB_TOKEN;
    f->running_cnt++;
    msp_metric_set(f->metrics, "mspsync_fetcher_jobs_running", NULL, f->running_cnt);
    if (rc == 1) {
        job_skip(j, j->cw ? "no enabled ConnectWise RMM integration for this tenant"
                          : "no Syncro integration for this tenant (removed?)");
        return;
    }
    if (rc == 2) {
        job_fail(j, err, j->cw ? "save the integration again with its client secret"
                               : "save the integration again with its API key", 1);
        return;
    }
    if (!strcmp(j->reason, "schedule") && integration_paused(j)) {
        job_skip(j, "integration paused after an authentication or permission error");
        return;
    }
    rc = job_resume(j);
    if (rc < 0) {
        j->state = JOB_QUEUED;
        f->running_cnt--;
        return;
    }
    if (rc == 1) {
        job_finish(j);
        return;
    }
    if (rc == 2) {
        job_done(j);
        return;
    }
    char now[40];
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    char tlist[32] = "";
    for (int i = 0; i < j->todo_cnt; i++)
        snprintf(tlist + strlen(tlist), sizeof(tlist) - strlen(tlist), "%s%s", i ? "," : "",
                 types[j->todo[i]].type);
    /* job_types lets the gateway tell "fetched" from "in the inventory" (normalizer marks). */
    status_set(j, "state\x1f" "syncing\x1f" "job_id\x1f%s\x1f" "job_started_at\x1f%s\x1f" "job_types\x1f%s",
               j->job_id, now, tlist);
    json_t *tl = json_array();
    for (int i = 0; i < j->todo_cnt; i++) json_array_append_new(tl, json_string(types[j->todo[i]].plural));
    event_emit(j, "job_started", json_pack("{s:o,s:s,s:s}", "types", tl, "reason", j->reason,
                                           "mode", j->mode));
    MSP_INFO("job.started", j->tenant, "job=%s reason=%s replica=%s", j->job_id, j->reason,
             f->replica_id);
    job_request(j);
}

/* A sync.jobs message arrived. Bad jobs are dead-lettered with the reason. */
void job_from_message(fetcher_t *f, const rd_kafka_message_t *msg) {
    const char *topic = rd_kafka_topic_name(msg->rkt);
    msp_offtrack_begin(f->offtrack, topic, msg->partition, msg->offset);
    json_error_t jerr;
    json_t *o = json_loadb(msg->payload, msg->len, 0, &jerr);
    const char *tenant = NULL, *job_id = NULL, *integration = NULL;
    json_t *tl = NULL;
    char reason[256] = "";
    if (!o || !json_is_object(o)) {
        snprintf(reason, sizeof(reason), "sync job is not a JSON object: %s",
                 o ? "wrong type" : jerr.text);
    } else if (json_unpack_ex(o, &jerr, 0, "{s:s,s:s,s:s,s:o}", "tenant", &tenant, "job_id",
                              &job_id, "integration", &integration, "types", &tl) != 0) {
        snprintf(reason, sizeof(reason), "sync job lacks a field: %s", jerr.text);
    } else if (strcmp(integration, "syncro") != 0 && strcmp(integration, "cwrmm") != 0) {
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
        j->cw = strcmp(integration, "cwrmm") == 0;
        j->integ = j->cw ? "cwrmm" : "syncro";
        snprintf(j->tenant, sizeof(j->tenant), "%s", tenant);
        snprintf(j->job_id, sizeof(j->job_id), "%s", job_id);
        snprintf(j->reason, sizeof(j->reason), "%s",
                 json_string_value(json_object_get(o, "reason")) ?: "unknown");
        snprintf(j->mode, sizeof(j->mode), "%s",
                 json_string_value(json_object_get(o, "mode")) ?: "full");
        int want[2] = {0, 0};
        size_t i;
        json_t *v;
        json_array_foreach(tl, i, v) {
            const char *s = json_string_value(v);
            if (s && !strcmp(s, "customers")) want[T_CUSTOMER] = 1;
            else if (s && !strcmp(s, "assets")) want[T_ASSET] = 1;
            else {
                snprintf(reason, sizeof(reason), "unknown sync type \"%.*s\"",
                         MSP_UTF8_CUT(s ? s : "(not a string)", 64));
                break;
            }
        }
        /* Customers before assets: assets reference customers. */
        if (want[T_CUSTOMER]) j->todo[j->todo_cnt++] = T_CUSTOMER;
        if (want[T_ASSET]) j->todo[j->todo_cnt++] = T_ASSET;
        j->page = 1;
        j->total_pages = 1;
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
            if (j->timer) event_del(j->timer);
            if (j->state != JOB_QUEUED) f->running_cnt--;
            j->state = JOB_FINISHED;
        }
        /* http and delivery callbacks were drained by the caller before this */
        j->http_inflight = 0;
        j->pending_dr = 0;
        job_free(j);
    }
}
