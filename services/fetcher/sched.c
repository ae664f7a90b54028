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

/* Due: the integration has its sealed secret (disabling it removes the secret, which stops its
 * schedule), has a status (a save in progress has none yet), is not syncing and is not paused. */
static int tenant_due(fetcher_t *f, const char *tenant, const msp_vendor_t *v) {
    char ikey[256], skey[256];
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", v->name);
    msp_key(skey, sizeof(skey), tenant, "status:%s", v->name);
    redisReply *r = redisCommand(f->redis, "HEXISTS %s %s", ikey, v->sealed_field);
    int exists = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r) freeReplyObject(r);
    if (!exists) return 0;
    r = redisCommand(f->redis, "HMGET %s state paused", skey);
    int due = 1;
    /* no state yet: the gateway is saving it right now, and the save queues its own sync */
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type != REDIS_REPLY_STRING)
        due = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        if (r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "syncing"))
            due = 0;
        if (r->element[1]->type == REDIS_REPLY_STRING && !strcmp(r->element[1]->str, "1"))
            due = 0;
    }
    if (r) freeReplyObject(r);
    return due;
}

long long sched_interval_ms(fetcher_t *f, const char *tenant, const msp_vendor_t *v) {
    char ikey[256];
    msp_key(ikey, sizeof(ikey), tenant, "integration:%s", v->name);
    redisReply *r = redisCommand(f->redis, "HGET %s sync_interval_minutes", ikey);
    long long minutes = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    if (r)
        freeReplyObject(r);
    return minutes > 0 ? minutes * f->conf.schedule_minute_ms : f->conf.schedule_interval_ms;
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

void sched_run(fetcher_t *f) {
    if (!f->conf.schedule_enabled || !redis_ok(f)) return;
    char tkey[64];
    msp_key(tkey, sizeof(tkey), "_", "tenants");
    redisReply *r = redisCommand(f->redis, "SMEMBERS %s", tkey);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r) freeReplyObject(r);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) continue;
        const char *tenant = r->element[i]->str;
        for (size_t in = 0; in < MSP_VENDOR_COUNT; in++) {
            const msp_vendor_t *v = msp_vendor_at(in);
            if (!tenant_due(f, tenant, v))
                continue;
            char lkey[256];
            msp_key(lkey, sizeof(lkey), tenant, "sched:%s", v->name);
            redisReply *l = redisCommand(f->redis, "SET %s %s NX PX %lld", lkey, f->replica_id,
                                         sched_interval_ms(f, tenant, v));
            int won = l && l->type == REDIS_REPLY_STATUS;
            if (l) freeReplyObject(l);
            if (won)
                queue_job(f, tenant, v);
        }
    }
    freeReplyObject(r);
}
