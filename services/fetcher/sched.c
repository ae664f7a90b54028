/*
 * sched.c — scheduled incremental syncs.
 *
 * Every replica runs the same check, and for each tenant and each vendor row (vendor.h) the
 * tenant has an enabled integration with, tries to take the lease mspsync:{t}:sched:<vendor>
 * with SET NX PX <interval>, the interval being the integration's own sync_interval_minutes
 * (5 … 1440) or else MSPSYNC_SCHEDULE_INTERVAL_MS. Only the replica whose SET
 * wins queues the job, so two replicas never schedule the same tenant twice in one interval.
 * A finished or failed job resets the lease, so the next run is one interval after the last sync
 * ended (a failed one is not retried at once: its own retries are already spent).
 * Integrations paused by an auth or permission error are skipped until a user acts.
 * Every command goes on the async connection (aredis.h): a slow Redis delays a pass, never the
 * loop.
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
#include "mspsync/vendor.h"

/*
 * One tenant and vendor row of a pass, on the async connection: three reads sent together
 * (the integration's sealed secret, its status, its interval), the last answer decides, then the
 * lease. Each check owns itself and is freed with its last answer (a lost one included: the
 * next pass asks again); the pass is over when every check is.
 */
typedef struct sched_check_s {
    fetcher_t *f;
    const msp_vendor_t *v;
    int sent, got, failed;
    int exists, due;
    long long interval_ms;
    char tenant[128];
} sched_check_t;

/* Due (the status part): it has a status (a save in progress has none yet: the save queues its
 * own sync), is not syncing and is not paused by an auth or permission error. */
static int status_due(const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return 1;
    const redisReply *state = r->element[0], *paused = r->element[1];
    if (state->type != REDIS_REPLY_STRING || !strcmp(state->str, "syncing"))
        return 0;
    return !(paused->type == REDIS_REPLY_STRING && !strcmp(paused->str, "1"));
}

/* The interval between scheduled syncs, from the answer to HGET sync_interval_minutes: the
 * integration's own, or MSPSYNC_SCHEDULE_INTERVAL_MS when it has none. */
static long long interval_of(const fetcher_t *f, const redisReply *r) {
    long long minutes = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    return minutes > 0 ? minutes * f->conf.schedule_minute_ms : f->conf.schedule_interval_ms;
}

static void check_free(sched_check_t *c) {
    c->f->sched_pending--;
    free(c);
}

static void queue_job(fetcher_t *f, const char *tenant, const msp_vendor_t *v);

/* The lease's answer: only the replica whose SET NX won queues the job. */
static void check_leased(void *arg, redisReply *r, const char *why) {
    sched_check_t *c = arg;
    (void)why;
    if (r && r->type == REDIS_REPLY_STATUS && c->f->producer)
        queue_job(c->f, c->tenant, c->v);
    check_free(c);
}

static void check_read(void *arg, redisReply *r, const char *why) {
    sched_check_t *c = arg;
    (void)why;
    int i = c->got++;
    if (!r || r->type == REDIS_REPLY_ERROR)
        c->failed = 1;
    else if (i == 0)
        c->exists = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    else if (i == 1)
        c->due = status_due(r);
    else
        c->interval_ms = interval_of(c->f, r);
    if (c->got < c->sent)
        return;
    if (c->failed || !c->exists || !c->due) {
        check_free(c);
        return;
    }
    char lkey[256];
    msp_key(lkey, sizeof(lkey), c->tenant, "sched:%s", c->v->name);
    if (msp_aredis_cmd(c->f->aredis, check_leased, c, "SET %s %s NX PX %lld", lkey,
                       c->f->replica_id, c->interval_ms) != 0)
        check_free(c);
}

/* Start the check of tenant with v (its integration is due: sealed secret, status, no lease). */
static void check_start(fetcher_t *f, const char *tenant, const msp_vendor_t *v) {
    sched_check_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->f = f;
    c->v = v;
    snprintf(c->tenant, sizeof(c->tenant), "%s", tenant);
    f->sched_pending++;
    char ikey[256], skey[256];
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", v->name);
    msp_key(skey, sizeof(skey), tenant, "status:%s", v->name);
    /* Disabling an integration removes its secret, which stops its schedule. */
    int sent =
        msp_aredis_cmd(f->aredis, check_read, c, "HEXISTS %s %s", ikey, v->sealed_field) == 0;
    sent += sent && msp_aredis_cmd(f->aredis, check_read, c, "HMGET %s state paused", skey) == 0;
    sent += sent == 2 &&
            msp_aredis_cmd(f->aredis, check_read, c, "HGET %s sync_interval_minutes", ikey) == 0;
    if (sent == 3) {
        c->sent = 3;
        return;
    }
    /* Refused part-way (the connection went): the answers of what was sent still come. */
    c->failed = 1;
    c->sent = sent;
    if (sent == 0)
        check_free(c);
}

/* The set of tenants: check each with each vendor row. */
static void sched_tenants(void *arg, redisReply *r, const char *why) {
    fetcher_t *f = arg;
    (void)why;
    f->sched_pending--;
    if (!r || r->type != REDIS_REPLY_ARRAY || f->stopping)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *t = r->element[i];
        if (t->type != REDIS_REPLY_STRING || t->len >= sizeof(((sched_check_t *)0)->tenant))
            continue;
        for (size_t in = 0; in < MSP_VENDOR_COUNT; in++)
            check_start(f, t->str, msp_vendor_at(in));
    }
}

/* After the interval's read: the lease (SET PX, whoever holds it) starts a new interval. */
typedef struct push_back_s {
    fetcher_t *f;
    const msp_vendor_t *v;
    char tenant[128], job_id[80];
} push_back_t;

static void push_back_read(void *arg, redisReply *r, const char *why) {
    push_back_t *p = arg;
    char skey[256], px[24];
    msp_key(skey, sizeof(skey), p->tenant, "sched:%s", p->v->name);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        MSP_WARN("redis.write_lost", p->tenant, "schedule of %s: %s", p->v->name, r ? r->str : why);
    } else {
        snprintf(px, sizeof(px), "%lld", interval_of(p->f, r));
        const char *argv[] = {"SET", skey, p->job_id, "PX", px};
        fetcher_write(p->f, p->tenant, "schedule", 5, argv, NULL);
    }
    free(p);
}

void sched_push_back(fetcher_t *f, const char *tenant, const msp_vendor_t *v, const char *job_id) {
    push_back_t *p = calloc(1, sizeof(*p));
    if (!p)
        return;
    p->f = f;
    p->v = v;
    snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
    snprintf(p->job_id, sizeof(p->job_id), "%s", job_id);
    char ikey[256];
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", v->name);
    if (msp_aredis_cmd(f->aredis, push_back_read, p, "HGET %s sync_interval_minutes", ikey) != 0) {
        MSP_WARN("redis.write_lost", tenant, "schedule of %s: Redis is not connected", v->name);
        free(p);
    }
}

/* An incremental job of every record type the vendor syncs. */
static void queue_job(fetcher_t *f, const char *tenant, const msp_vendor_t *v) {
    char job_id[33], now[40];
    msp_random_hex(job_id, 16);
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    json_t *types = json_array();
    for (size_t i = 0; i < v->types_cnt; i++)
        json_array_append_new(types, json_string(v->types[i].plural));
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:o,s:s,s:s,s:s}", "schema_version", 1, "job_id",
                          job_id, "tenant", tenant, "integration", v->name, "types", types, "mode",
                          "incremental", "reason", "schedule", "requested_at", now);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s && msp_kafka_produce(f->producer, msp_topic(MSP_TOPIC_SYNC_JOBS), tenant, strlen(tenant),
                               s, strlen(s), NULL, NULL) == 0) {
        MSP_INFO("schedule.queued", tenant, "job=%s integration=%s", job_id, v->name);
        msp_metric_add(f->metrics, "mspsync_fetcher_scheduled_total", NULL, 1);
    } else {
        MSP_WARN("schedule.produce_failed", tenant, "job=%s", job_id);
    }
    free(s);
}

/* A pass: every replica asks, the lease decides (sched_tenants, check_read). A pass still
 * waiting for answers (a slow Redis) is not doubled. */
void sched_run(fetcher_t *f) {
    if (!f->conf.schedule_enabled || f->sched_pending || !msp_aredis_up(f->aredis))
        return;
    char tkey[64];
    msp_key(tkey, sizeof(tkey), "_", "tenants");
    if (msp_aredis_cmd(f->aredis, sched_tenants, f, "SMEMBERS %s", tkey) == 0)
        f->sched_pending++;
}
