/*
 * sched.c — the daily push: once a day per tenant, at its local push time (billing config
 * push_time in its time_zone; the anchor product pushes at noon US Eastern), a push request is
 * produced to usage.events like the one POST /billing/push makes.
 *
 * Every replica checks every MSPSYNC_BILLING_SCHEDULE_CHECK_MS; the tenant's day is claimed in
 * Redis with one compare-and-set (`billing:sched_day` = the local date), so one replica requests
 * the push even when several check at once. A claim whose produce call fails is released, so the
 * next check tries again. The clock is msp_billing_now_ms (test-only MSPSYNC_TEST_CLOCK_FILE).
 */
#include "billing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mspsync/backoff.h"
#include "mspsync/billing.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/tzif.h"

/* KEYS[1] the day key; ARGV[1] today. @returns 1 when claimed now. */
static const char CLAIM_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end\n"
                                "redis.call('SET', KEYS[1], ARGV[1])\n"
                                "return 1\n";

static void request_push(bl_t *bl, const char *tenant, const char *today, const char *kday) {
    char id[33], key[200];
    if (msp_random_hex(id, 16) != 0)
        return;
    json_t *msg = json_pack("{s:i,s:s,s:s,s:s,s:s,s:I,s:s}", "schema_version", 1, "kind", "push",
                            "tenant", tenant, "push_id", id, "reason", "schedule",
                            "requested_at_ms", (json_int_t)msp_billing_now_ms(), "day", today);
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    snprintf(key, sizeof(key), "%s/push", tenant);
    if (!text || msp_kafka_produce(bl->worker.producer, msp_topic(MSP_TOPIC_USAGE_EVENTS), key,
                                   strlen(key), text, strlen(text), NULL, NULL) != 0) {
        MSP_WARN("billing.schedule_failed", tenant,
                 "could not request the daily push; the next "
                 "check tries again");
        redisReply *r = redisCommand(bl->redis, "DEL %s", kday);
        if (r)
            freeReplyObject(r);
    } else {
        MSP_INFO("billing.push_scheduled", tenant, "daily push %s for %s", id, today);
    }
    free(text);
}

/* One tenant: due today and not requested yet → request. */
static void check_tenant(bl_t *bl, const char *tenant, int64_t now_ms) {
    char key[200], err[400], kday[200];
    msp_key(key, sizeof(key), tenant, "billing:config");
    redisReply *r = redisCommand(bl->redis, "GET %s", key);
    json_t *doc = r && r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    if (r)
        freeReplyObject(r);
    msp_billing_conf_t c;
    if (!doc || msp_billing_conf_parse(doc, &c, err, sizeof(err)) != 0) {
        json_decref(doc);
        return;
    }
    json_decref(doc);
    struct tm tm;
    if (c.enabled && msp_tz_local(c.time_zone, now_ms / 1000, &tm, err, sizeof(err)) == 0 &&
        tm.tm_hour * 60 + tm.tm_min >= c.push_hour * 60 + c.push_minute) {
        char today[32];
        snprintf(today, sizeof(today), "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday);
        msp_key(kday, sizeof(kday), tenant, "billing:sched_day");
        r = redisCommand(bl->redis, "EVAL %s 1 %s %s", CLAIM_LUA, kday, today);
        int claimed = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        if (r)
            freeReplyObject(r);
        if (claimed)
            request_push(bl, tenant, today, kday);
    }
    msp_billing_conf_clear(&c);
}

void bl_schedule_tick(bl_t *bl) {
    int64_t wall = msp_wall_ms();
    if (bl->conf.schedule_check_ms <= 0 || wall - bl->sched_checked_ms < bl->conf.schedule_check_ms)
        return;
    bl->sched_checked_ms = wall;
    if (!bl->worker.producer || !bl_redis_ok(bl))
        return;
    char set[200];
    msp_key(set, sizeof(set), "_", "billing:tenants");
    redisReply *r = redisCommand(bl->redis, "SMEMBERS %s", set);
    if (!r) {
        redisFree(bl->redis);
        bl->redis = NULL;
        return;
    }
    int64_t now = msp_billing_now_ms();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && bl->redis; i++)
        check_tenant(bl, r->element[i]->str, now);
    freeReplyObject(r);
}
