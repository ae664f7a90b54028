/*
 * history.c — the reader behind the sync history and the per-tenant dead letters.
 *
 * One thread of the gateway consumes `sync.events` and `dlq` in the consumer group
 * mspsync-gateway-history (several gateways share the partitions) and folds each record into
 * Redis, with its own hiredis context (the loop's context is not thread-safe):
 *
 *   sync.events → mspsync:{t}:history:<vendor>:<job_id>  one hash per job (below), and
 *                 mspsync:{t}:history:<vendor>           its index: job ids by start time,
 *                                                        the last GW_HISTORY_KEEP kept
 *   dlq         → mspsync:{t}:dlq:<partition>:<offset>   one hash per dead letter, and
 *                 mspsync:{t}:dlq                        its index: ids by failure time
 *
 * Everything here is derived state: it is rebuilt by reading both topics from their start. That
 * is why the read positions are kept in Redis (mspsync:{_}:history:pos, "<topic>:<partition>" →
 * next offset), not in the group's committed offsets: a Redis that lost them (a wipe, a new
 * instance) makes the reader start again from the first offset, on the next assignment or when
 * the periodic check sees the hash gone. Every fold is idempotent, so reading a record twice
 * (a position written after its fold, a crash in between) changes nothing:
 *   - a job's pages are kept per "<type>:<page>", so the page a resumed job fetches again after
 *     a kill replaces its earlier count instead of adding to it;
 *   - its starts are kept per event offset ("s:<partition>:<offset>"), so `resumes` (= starts
 *     - 1: every job_started after the first is a restart that resumed the cursor) counts each
 *     event once;
 *   - a dead letter's hash is written whole, except what a replay adds (replayed_at,
 *     replayed_by), which the reader never touches.
 * Records of a tenant that does not exist (offboarded) are skipped, so a re-read does not bring
 * an offboarded tenant's keys back; while Redis has lost its state and the gateway restores the
 * configuration (journal.c), the reader waits, so that no tenant is taken for offboarded.
 *
 * The same thread rebuilds the traces, asset histories and billing's history after a loss
 * (trace_rebuild.c), from the `traces` topic, when it is due and its gateway wins the lease.
 *
 * A dead letter keeps its value for GET .../dead-letters/{id} only up to GW_DLQ_VALUE_MAX bytes,
 * with every member whose name says it is a credential (gw_dlq_value_scrub) replaced by
 * "[secret]": no mspsync message carries a credential today, but a dead letter shows whatever
 * the failed message held, and this keeps a future one from reaching an answer.
 */
#include "gateway.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"
#include "mspsync/tzif.h"
#include "mspsync/utf8.h"

#define HISTORY_GROUP "mspsync-gateway-history"
#define POS_CHECK_MS 2000 /* how often the reader checks that its positions are still in Redis */

struct gw_history_s {
    pthread_t th;
    int started;
    volatile int run;
    char *brokers;
    char *redis_url;
    rd_kafka_t *rk;
    redisContext *redis;
    int wrote_pos; /* a position was written: its disappearance means Redis lost it */
};

/* ---- Redis helpers of the thread ---------------------------------------------------------- */

/* One command on the thread's context; a broken connection is dropped (hiredis: unusable after
 * an error) and made again on the next call. @returns the reply (new), or NULL. */
static redisReply *hv(gw_history_t *h, const char *fmt, va_list ap) {
    if (!msp_redis_ok(&h->redis, h->redis_url))
        return NULL;
    redisReply *r = redisvCommand(h->redis, fmt, ap);
    if (!r) {
        redisFree(h->redis);
        h->redis = NULL;
    }
    return r;
}

/* A command whose reply is used. @returns it (freeReplyObject), or NULL on any error. */
static redisReply *hcmd(gw_history_t *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = hv(h, fmt, ap);
    va_end(ap);
    if (r && r->type == REDIS_REPLY_ERROR) {
        MSP_WARN("history.redis", NULL, "%s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* A command whose reply is not needed. @returns 0 or -1. */
static int hdo(gw_history_t *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = hv(h, fmt, ap);
    va_end(ap);
    int rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (r)
        freeReplyObject(r);
    return rc;
}

/* A command with an integer reply (EXISTS, HSETNX, ...). @returns it, or -1 on error. */
static long long hint_reply(gw_history_t *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = hv(h, fmt, ap);
    va_end(ap);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return n;
}

/* @returns 1 the tenant exists, 0 not, -1 Redis error. */
static int tenant_exists(gw_history_t *h, const char *tenant) {
    char key[160];
    msp_key(key, sizeof(key), tenant, "tenant");
    long long n = hint_reply(h, "EXISTS %s", key);
    return n < 0 ? -1 : n > 0;
}

static int64_t time_ms(const char *at) {
    int64_t ms = 0;
    return at && msp_rfc3339_parse(at, &ms) == 0 ? ms : msp_wall_ms();
}

/* Keep the last keep members of index (a sorted set), deleting the hashes <prefix>:<member> of
 * the ones dropped. @returns 0 or -1. */
static int trim_index(gw_history_t *h, const char *index, const char *prefix, long keep) {
    long long n = hint_reply(h, "ZCARD %s", index);
    if (n < 0)
        return -1;
    if (n <= keep)
        return 0;
    redisReply *r = hcmd(h, "ZRANGE %s 0 %lld", index, n - keep - 1);
    if (!r)
        return -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        hdo(h, "UNLINK %s:%s", prefix, r->element[i]->str);
    freeReplyObject(r);
    return hdo(h, "ZREMRANGEBYRANK %s 0 %lld", index, n - keep - 1);
}

/* ---- sync.events ---------------------------------------------------------------------------- */

/* Fold one sync.events record. @returns 0 (done, or nothing to do), -1 Redis error: retry. */
static int fold_event(gw_history_t *h, const rd_kafka_message_t *m) {
    json_t *o = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    const char *tenant = json_string_value(json_object_get(o, "tenant"));
    const char *integ = json_string_value(json_object_get(o, "integration"));
    const char *job = json_string_value(json_object_get(o, "job_id"));
    const char *ev = json_string_value(json_object_get(o, "event"));
    const char *at = json_string_value(json_object_get(o, "at"));
    int rc = 0;
    if (!tenant || !integ || !job || !ev || !at || !gw_valid_tenant_id(tenant) ||
        !gw_integ_find(integ) || !gw_valid_record_id(job) || strchr(job, ':')) {
        json_decref(o); /* not ours to show (an old or foreign record): skipped */
        return 0;
    }
    int exists = tenant_exists(h, tenant);
    if (exists <= 0) {
        json_decref(o);
        return exists;
    }
    char index[200], key[300];
    msp_key(index, sizeof(index), tenant, "history:%s", integ);
    snprintf(key, sizeof(key), "%s:%s", index, job);
    /* every event places the job in the index (the first one seen gives its time) */
    if (hdo(h, "ZADD %s NX %lld %s", index, (long long)time_ms(at), job) != 0 ||
        hdo(h, "HSET %s job_id %s integration %s", key, job, integ) != 0 ||
        hint_reply(h, "HSETNX %s started_at %s", key, at) < 0 ||
        hint_reply(h, "HSETNX %s result running", key) < 0) {
        json_decref(o);
        return -1;
    }
    if (!strcmp(ev, "job_started")) {
        const char *trigger = json_string_value(json_object_get(o, "trigger"));
        const char *reason = json_string_value(json_object_get(o, "reason"));
        char *types = json_dumps(json_object_get(o, "types"), JSON_COMPACT | JSON_ENCODE_ANY);
        long long first =
            hint_reply(h, "HSETNX %s s:%d:%lld 1", key, (int)m->partition, (long long)m->offset);
        rc = first < 0 ||
                     hdo(h, "HSET %s trigger %s types %s", key,
                         trigger  ? trigger
                         : reason ? reason
                                  : "",
                         types ? types : "[]") != 0 ||
                     (first == 1 && hdo(h, "HINCRBY %s starts 1", key) != 0)
                 ? -1
                 : 0;
        free(types);
    } else if (!strcmp(ev, "page")) {
        const char *type = json_string_value(json_object_get(o, "type"));
        json_int_t page = json_integer_value(json_object_get(o, "page"));
        json_int_t n = json_integer_value(json_object_get(o, "records"));
        if (type && !strchr(type, ' ') && page > 0) {
            redisReply *r = hcmd(h, "HGET %s p:%s:%lld", key, type, (long long)page);
            if (!r) {
                rc = -1;
            } else {
                int had = r->type == REDIS_REPLY_STRING;
                long long old = had ? atoll(r->str) : 0;
                freeReplyObject(r);
                rc = hdo(h, "HSET %s p:%s:%lld %lld", key, type, (long long)page, (long long)n) ||
                             hdo(h, "HINCRBY %s records:%s %lld", key, type, (long long)n - old) ||
                             (!had && hdo(h, "HINCRBY %s pages 1", key))
                         ? -1
                         : 0;
            }
        }
    } else if (!strcmp(ev, "job_done") || !strcmp(ev, "job_failed")) {
        /* the first end read wins: a job replayed after its end says it again ("again") */
        const char *error = json_string_value(json_object_get(o, "error"));
        long long first = hint_reply(h, "HSETNX %s finished_at %s", key, at);
        rc = first < 0    ? -1
             : first == 0 ? 0
                          : hdo(h, "HSET %s result %s error %s", key,
                                ev[4] == 'd' ? "done" : "failed", error ? error : "");
    } else if (!strcmp(ev, "types_not_enabled")) {
        char *skipped = json_dumps(json_object_get(o, "skipped"), JSON_COMPACT | JSON_ENCODE_ANY);
        rc = skipped ? hdo(h, "HSET %s skipped %s", key, skipped) : 0;
        free(skipped);
    }
    if (rc == 0) {
        char prefix[200];
        snprintf(prefix, sizeof(prefix), "%s", index);
        rc = trim_index(h, index, prefix, GW_HISTORY_KEEP);
    }
    json_decref(o);
    return rc;
}

/* ---- dlq ------------------------------------------------------------------------------------ */

/* n bytes of src as valid UTF-8 text (each stray byte U+FFFD), so that the API can show it
 * (jansson refuses anything else): new string, NULL when out of memory. */
static char *text_dup(const void *src, size_t n) {
    char *raw = strndup(src ? src : "", src ? n : 0);
    char *out = raw ? malloc(strlen(raw) * 3 + 1) : NULL;
    if (out)
        msp_utf8_copy(out, strlen(raw) * 3 + 1, raw);
    free(raw);
    return out;
}

/* Header name of m as text (text_dup), "" when absent: new, NULL when out of memory. */
static char *header_dup(const rd_kafka_message_t *m, const char *name) {
    rd_kafka_headers_t *hd = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(m, &hd) != RD_KAFKA_RESP_ERR_NO_ERROR || !hd ||
        rd_kafka_header_get_last(hd, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return text_dup("", 0);
    return text_dup(v, n);
}

/* 1 when a JSON member named name may hold a credential. */
static int secret_name(const char *name) {
    static const char *const words[] = {"secret", "password",      "passwd",     "token", "api_key",
                                        "apikey", "authorization", "credential", "sealed"};
    char low[128];
    size_t i = 0;
    for (; name[i] && i < sizeof(low) - 1; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[i] = '\0';
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
        if (strstr(low, words[w]))
            return 1;
    return 0;
}

void gw_dlq_value_scrub(json_t *v) {
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            if (secret_name(k) && !json_is_null(x))
                json_object_set_new(v, k, json_string("[secret]"));
            else
                gw_dlq_value_scrub(x);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) gw_dlq_value_scrub(x);
    }
}

/* Fold one dead letter. @returns 0 (done, or not a tenant's), -1 Redis error: retry. */
static int fold_dead_letter(gw_history_t *h, const rd_kafka_message_t *m) {
    char tenant[64];
    if (msp_dlq_tenant(m, tenant, sizeof(tenant)) != 0 || !gw_valid_tenant_id(tenant))
        return 0; /* names no tenant: only mspsync-dlq shows it */
    int exists = tenant_exists(h, tenant);
    if (exists <= 0)
        return exists;
    char index[160], key[220], id[48];
    snprintf(id, sizeof(id), "%d:%lld", (int)m->partition, (long long)m->offset);
    msp_key(index, sizeof(index), tenant, "dlq");
    snprintf(key, sizeof(key), "%s:%s", index, id);
    char *reason = header_dup(m, "x-dlq-reason"), *service = header_dup(m, "x-dlq-service");
    char *topic = header_dup(m, "x-dlq-source-topic");
    char *spart = header_dup(m, "x-dlq-source-partition");
    char *soff = header_dup(m, "x-dlq-source-offset");
    char *failed_at = header_dup(m, "x-dlq-failed-at");
    /* the value as the API shows it: JSON scrubbed of credentials, else the text */
    char *shown = NULL;
    int too_big = m->len > GW_DLQ_VALUE_MAX;
    if (m->payload && !too_big) {
        json_t *v = json_loadb(m->payload, m->len, 0, NULL);
        if (v) {
            gw_dlq_value_scrub(v);
            shown = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
            json_decref(v);
        } else {
            json_t *s = json_stringn(m->payload, m->len); /* NULL when not UTF-8 */
            shown = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            json_decref(s);
        }
    }
    char *k = text_dup(m->key, m->key_len);
    int rc;
    if (!reason || !service || !topic || !spart || !soff || !failed_at || !k) {
        MSP_ERROR("history.oom", tenant, "dead letter %s not indexed: out of memory", id);
        rc = 0; /* nothing to retry: skipped, logged */
        goto out;
    }
    const char *argv[] = {"HSET",
                          key,
                          "id",
                          id,
                          "reason",
                          reason,
                          "service",
                          service,
                          "source_topic",
                          topic,
                          "source_partition",
                          spart,
                          "source_offset",
                          soff,
                          "failed_at",
                          failed_at,
                          "key",
                          k,
                          "value",
                          shown ? shown : "null",
                          "value_omitted",
                          too_big || (m->payload && !shown) ? "1" : "0"};
    size_t argl[sizeof(argv) / sizeof(argv[0])];
    for (size_t i = 0; i < sizeof(argv) / sizeof(argv[0]); i++)
        argl[i] = strlen(argv[i]);
    rc = -1;
    if (msp_redis_ok(&h->redis, h->redis_url)) {
        redisReply *r =
            redisCommandArgv(h->redis, (int)(sizeof(argv) / sizeof(argv[0])), argv, argl);
        rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -1;
        if (r)
            freeReplyObject(r);
        else {
            redisFree(h->redis);
            h->redis = NULL;
        }
    }
    if (rc == 0)
        rc = hdo(h, "ZADD %s %lld %s", index, (long long)time_ms(failed_at[0] ? failed_at : NULL),
                 id);
    if (rc == 0)
        rc = trim_index(h, index, index, GW_DLQ_KEEP);
out:
    free(reason);
    free(service);
    free(topic);
    free(spart);
    free(soff);
    free(failed_at);
    free(k);
    free(shown);
    return rc;
}

/* ---- positions and the loop ----------------------------------------------------------------- */

static void pos_key(char *buf, size_t size) { msp_key(buf, size, "_", "history:pos"); }

/* Each newly assigned partition starts at its position in Redis, or at its first offset. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    gw_history_t *h = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        char key[64];
        pos_key(key, sizeof(key));
        for (int i = 0; i < parts->cnt; i++) {
            redisReply *r = hcmd(h, "HGET %s %s:%d", key, parts->elems[i].topic,
                                 (int)parts->elems[i].partition);
            parts->elems[i].offset =
                r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : RD_KAFKA_OFFSET_BEGINNING;
            if (r)
                freeReplyObject(r);
        }
    }
    msp_kafka_rebalance_apply(rk, err, parts);
}

/* Redis lost the positions (a wipe): read every assigned partition again from its start. */
static void pos_check(gw_history_t *h) {
    char key[64];
    pos_key(key, sizeof(key));
    if (!h->wrote_pos || hint_reply(h, "EXISTS %s", key) != 0)
        return;
    rd_kafka_topic_partition_list_t *asg = NULL;
    if (rd_kafka_assignment(h->rk, &asg) == 0 && asg) {
        for (int i = 0; i < asg->cnt; i++)
            asg->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(h->rk, asg, 5000);
        if (e)
            rd_kafka_error_destroy(e);
        MSP_INFO("history.rebuild", NULL, "positions gone from Redis: reading %d partitions again",
                 asg->cnt);
        rd_kafka_topic_partition_list_destroy(asg);
    }
    h->wrote_pos = 0;
}

/* Fold m until it is done (Redis back) or the gateway stops. */
static void fold(gw_history_t *h, const rd_kafka_message_t *m) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    int is_dlq = !strcmp(topic, msp_topic(MSP_TOPIC_DLQ));
    char key[64];
    pos_key(key, sizeof(key));
    for (int attempt = 0; h->run; attempt++) {
        /* While Redis is being restored (journal.c), a tenant may not be back yet: folding
         * now would skip its records as an offboarded tenant's. Wait for the restore. */
        int lost = msp_redis_ok(&h->redis, h->redis_url) ? msp_state_lost(h->redis) : -1;
        int rc = lost != 0 ? -1 : is_dlq ? fold_dead_letter(h, m) : fold_event(h, m);
        if (rc == 0 && hdo(h, "HSET %s %s:%d %lld", key, topic, (int)m->partition,
                           (long long)m->offset + 1) == 0) {
            h->wrote_pos = 1;
            return;
        }
        if (attempt == 0)
            MSP_WARN("history.redis", NULL, "cannot fold %s [%d] @%lld yet; retrying", topic,
                     (int)m->partition, (long long)m->offset);
        usleep(500 * 1000);
    }
}

/* After a loss of Redis, the traces' rebuild (trace_rebuild.c): once per epoch, by the gateway
 * whose lease wins; this thread's reads wait meanwhile (its records are not traces). */
static void traces_check(gw_history_t *h) {
    char epoch[64];
    if (msp_redis_ok(&h->redis, h->redis_url) && gw_traces_due(h->redis, epoch, sizeof(epoch)) == 1)
        gw_traces_rebuild(&h->redis, h->redis_url, h->brokers, epoch);
}

static void *history_main(void *arg) {
    gw_history_t *h = arg;
    int64_t checked = msp_now_ms();
    while (h->run) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(h->rk, 200);
        if (m && !m->err)
            fold(h, m);
        else if (m && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            MSP_WARN("history.kafka", NULL, "%s", rd_kafka_message_errstr(m));
        if (m)
            rd_kafka_message_destroy(m);
        if (msp_now_ms() - checked >= POS_CHECK_MS) {
            checked = msp_now_ms();
            pos_check(h);
            traces_check(h);
        }
    }
    return NULL;
}

int gw_history_start(gw_t *gw, char *errstr, size_t errstr_size) {
    gw_history_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    h->brokers = strdup(gw->cfg.svc.brokers);
    h->redis_url = strdup(gw->cfg.redis_url);
    const char *topics[] = {msp_topic(MSP_TOPIC_SYNC_EVENTS), msp_topic(MSP_TOPIC_DLQ), NULL};
    h->rk = h->brokers && h->redis_url
                ? msp_kafka_consumer_new(h->brokers, HISTORY_GROUP, "mspsync-gateway-history",
                                         topics, rebalance_cb, h, errstr, errstr_size)
                : NULL;
    h->run = 1;
    if (!h->rk || pthread_create(&h->th, NULL, history_main, h) != 0) {
        if (h->rk)
            rd_kafka_destroy(h->rk);
        else if (!errstr[0])
            snprintf(errstr, errstr_size, "out of memory");
        free(h->brokers);
        free(h->redis_url);
        free(h);
        return -1;
    }
    h->started = 1;
    gw->history = h;
    return 0;
}

void gw_history_stop(gw_t *gw) {
    gw_history_t *h = gw->history;
    if (!h)
        return;
    h->run = 0;
    if (h->started)
        pthread_join(h->th, NULL);
    rd_kafka_consumer_close(h->rk);
    rd_kafka_destroy(h->rk);
    if (h->redis)
        redisFree(h->redis);
    free(h->brokers);
    free(h->redis_url);
    free(h);
    gw->history = NULL;
}
