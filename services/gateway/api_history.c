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
 * one that does not exist. A replay reads each record back from `dlq` by partition and offset
 * (a reader outside any group, synchronously: at most GW_REPLAY_MAX records a call, each within
 * REPLAY_READ_MS), produces it to its source topic as mspsync-dlq does (msp_dlq_unwrap: key,
 * value and headers without x-dlq-*), and answers once Kafka acknowledged every one; only then
 * are they marked replayed (when, by whom). A dead letter already replayed is refused (409)
 * unless "force" is true.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/tzif.h"

#define JOBS_DEFAULT 20
#define DLQ_PAGE_DEFAULT 50
#define PAGE_MAX 200
#define REPLAY_READ_MS 10000

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

/* ---- dead letters: replay ------------------------------------------------------------------- */

typedef struct {
    gw_held_t *held;
    char tenant[64];
    char by[160];
    json_t *ids; /* the ids produced (array of strings) */
    int more;    /* "all": more matched than GW_REPLAY_MAX */
} replay_t;

/* Every replayed record is in Kafka (or one failed): mark them and answer. */
static void replay_done(gw_t *gw, void *arg, const char *error) {
    replay_t *rp = arg;
    char err[256] = "", now[40];
    if (error) {
        gw_held_reply_error(rp->held, 503, "could not replay: %s (nothing marked replayed)", error);
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
    json_decref(rp->ids);
    free(rp);
}

/* Read dead letter <partition>:<offset> from dlq. @returns new message, or NULL (err). */
static rd_kafka_message_t *dlq_read(rd_kafka_t *rk, const char *id, char *err, size_t err_size) {
    int32_t part = (int32_t)atoi(id);
    int64_t off = atoll(strchr(id, ':') + 1);
    const char *topic = msp_topic(MSP_TOPIC_DLQ);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, part)->offset = off;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, err_size, "dlq %s: %s", id, rd_kafka_err2str(e));
        return NULL;
    }
    int64_t deadline = msp_now_ms() + REPLAY_READ_MS;
    while (msp_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err && m->partition == part && m->offset == off)
            return m;
        int gone = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->partition == part;
        rd_kafka_message_destroy(m);
        if (gone)
            break;
    }
    snprintf(err, err_size, "dead letter %s could not be read from Kafka (gone by retention?)", id);
    return NULL;
}

/* Produce each id's record back to its source topic into b. @returns 0, or -1 (err). */
static int replay_produce(gw_t *gw, gw_batch_t *b, const json_t *ids, char *err, size_t err_size) {
    char errstr[512];
    rd_kafka_t *rk =
        msp_kafka_reader_new(gw->cfg.svc.brokers, "mspsync-gateway-replay", errstr, sizeof(errstr));
    if (!rk) {
        snprintf(err, err_size, "%s", errstr);
        return -1;
    }
    size_t i;
    json_t *id;
    int rc = 0;
    json_array_foreach(ids, i, id) {
        rd_kafka_message_t *m = dlq_read(rk, json_string_value(id), err, err_size);
        char *topic = NULL;
        rd_kafka_headers_t *hdrs = NULL;
        if (!m || msp_dlq_unwrap(m, &topic, &hdrs) != 0) {
            if (m)
                snprintf(err, err_size, "dead letter %s names no source topic",
                         json_string_value(id));
            rc = -1;
        } else {
            gw_batch_produce_headers(b, topic, m->key, m->key ? m->key_len : 0, m->payload, m->len,
                                     hdrs);
        }
        free(topic);
        if (m)
            rd_kafka_message_destroy(m);
        if (rc)
            break;
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
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
        json_decref(rp->ids);
        free(rp);
        gw_reply_error(gw, req, route, code, code == 503 ? "redis unavailable: %s" : "%s", err);
        return;
    }
    gw_held_t *held = gw_hold(gw, req, route);
    rp->held = held;
    gw_batch_t *b = gw_batch_new(gw, replay_done, rp);
    if (!b) {
        json_decref(rp->ids);
        free(rp);
        gw_held_reply_error(held, 500, "out of memory");
        return;
    }
    if (replay_produce(gw, b, rp->ids, err, sizeof(err)) != 0) {
        /* what was produced already is harmless (consumers are idempotent); nothing is marked */
        gw_batch_fail(b, err);
    }
    gw_batch_seal(b);
}
