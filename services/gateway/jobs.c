/*
 * jobs.c — the gateway's Kafka producer, driven by the libevent loop.
 *
 * main.c wires the producer to the loop with msp_svc_wire (svc.h): its main queue (delivery
 * reports) wakes the loop through a pipe, and the 100 ms tick polls as well, as a safety net.
 *
 * Messages are produced in batches (gw_batch_t): a batch counts its outstanding messages and
 * runs its done callback once, after the last delivery report (or at once when every produce
 * call failed). A sync job is a batch of one whose done callback answers the held HTTP request:
 * the client hears 201/202 only when the job is in Kafka. The batch holds one extra count while
 * it is being filled ("sealed" drops it), so reports served from inside msp_kafka_produce (it
 * polls when the local queue is full) cannot complete a batch early. gw_produce_reply is that
 * batch of one for any message (sync jobs, date edits, integration removals), with a hook that
 * runs on the delivery report before the answer.
 *
 * The topics the gateway writes (sync.jobs, the compacted customers / assets, and raw.records for
 * webhook incidents) get a topic-level message.timeout.ms of MSPSYNC_KAFKA_DELIVERY_TIMEOUT_MS,
 * so that a request waiting on a down cluster is answered 503 within that time instead of the
 * producer's default five minutes.
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "mspsync/backoff.h"
#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"

struct gw_batch_s {
    gw_t              *gw;
    int                outstanding;  /* messages in flight + 1 until sealed */
    char               error[256];   /* first failure, "" when none */
    gw_batch_done_cb  *done;
    void              *arg;
};

static void batch_done(gw_t *gw, void *arg) {
    gw_batch_t *b = arg;
    b->done(gw, b->arg, b->error[0] ? b->error : NULL);
    free(b);
}

/* The last release answers: on a coroutine (admin.c), as its answer may call gw_redis. */
static void batch_release(gw_batch_t *b) {
    if (--b->outstanding > 0)
        return;
    gw_admin_call(b->gw, batch_done, b);
}

gw_batch_t *gw_batch_new(gw_t *gw, gw_batch_done_cb *done, void *arg) {
    gw_batch_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->gw = gw;
    b->outstanding = 1;
    b->done = done;
    b->arg = arg;
    return b;
}

void gw_batch_produce(gw_batch_t *b, const char *topic, const char *key, const void *value,
                      size_t value_len) {
    gw_batch_produce_headers(b, topic, key, strlen(key), value, value_len, NULL);
}

void gw_batch_produce_headers(gw_batch_t *b, const char *topic, const void *key, size_t key_len,
                              const void *value, size_t value_len, rd_kafka_headers_t *headers) {
    b->outstanding++;
    if (msp_kafka_produce(b->gw->rk, topic, key, key_len, value, value ? value_len : 0, headers,
                          b) != 0) {
        if (headers)
            rd_kafka_headers_destroy(headers);
        gw_batch_fail(b, rd_kafka_err2str(rd_kafka_last_error()));
        batch_release(b);
    }
}

void gw_batch_fail(gw_batch_t *b, const char *error) {
    if (!b->error[0])
        snprintf(b->error, sizeof(b->error), "%s", error);
}

void gw_batch_seal(gw_batch_t *b) { batch_release(b); }

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    gw_batch_t *b = msg->_private;
    if (!b)
        return;
    if (msg->err && !b->error[0])
        snprintf(b->error, sizeof(b->error), "%s", rd_kafka_err2str(msg->err));
    batch_release(b);
}

/* ---- the producer ------------------------------------------------------------------------ */

int gw_kafka_start(gw_t *gw, char *errstr, size_t errstr_size) {
    gw->rk = msp_kafka_producer_new(gw->cfg.svc.brokers, "mspsync-gateway", dr_cb, gw, errstr,
                                    errstr_size);
    if (!gw->rk)
        return -1;

    static const char *const bases[5] = {MSP_TOPIC_SYNC_JOBS, MSP_TOPIC_CUSTOMERS, MSP_TOPIC_ASSETS,
                                         MSP_TOPIC_RAW_RECORDS, MSP_TOPIC_RAW_EVENTS};
    char timeout[32];
    snprintf(timeout, sizeof(timeout), "%lld", gw->cfg.kafka_delivery_timeout_ms);
    for (int i = 0; i < 5; i++) {
        rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new();
        if (rd_kafka_topic_conf_set(tconf, "message.timeout.ms", timeout, errstr, errstr_size) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_topic_conf_destroy(tconf);
            return -1;
        }
        gw->rkt[i] = rd_kafka_topic_new(gw->rk, msp_topic(bases[i]), tconf);
        if (!gw->rkt[i]) {
            snprintf(errstr, errstr_size, "topic %s: %s", msp_topic(bases[i]),
                     rd_kafka_err2str(rd_kafka_last_error()));
            return -1;
        }
    }
    return 0;
}

void gw_kafka_stop(gw_t *gw, int timeout_ms) {
    if (gw->rk) {
        /* delivery reports served here answer their held requests */
        rd_kafka_resp_err_t err = rd_kafka_flush(gw->rk, timeout_ms);
        if (err) {
            MSP_WARN("kafka.flush_timeout", NULL, "%d message(s) still queued after %d ms: purged",
                     rd_kafka_outq_len(gw->rk), timeout_ms);
            rd_kafka_purge(gw->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(gw->rk, 0);
        }
    }
    for (int i = 0; i < 5; i++) {
        if (gw->rkt[i])
            rd_kafka_topic_destroy(gw->rkt[i]);
        gw->rkt[i] = NULL;
    }
    if (gw->rk)
        rd_kafka_destroy(gw->rk);
    gw->rk = NULL;
}

int gw_kafka_ready(gw_t *gw, char *why, size_t why_size) {
    int64_t now = msp_now_ms();
    if (gw->kafka_checked_ms && now - gw->kafka_checked_ms < 2000) {
        if (!gw->kafka_ok)
            snprintf(why, why_size, "kafka unavailable");
        return gw->kafka_ok;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(gw->rk, 0, NULL, &md, 500);
    gw->kafka_ok = (err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0);
    if (md)
        rd_kafka_metadata_destroy(md);
    gw->kafka_checked_ms = msp_now_ms();
    if (!gw->kafka_ok) {
        /* the answer is for anyone (/readyz): the address and the error only go to the log */
        char brokers[512];
        MSP_WARN("kafka.unavailable", NULL, "no broker reachable at %s (%s)",
                 msp_url_mask(gw->cfg.svc.brokers, brokers, sizeof(brokers)),
                 rd_kafka_err2str(err));
        snprintf(why, why_size, "kafka unavailable");
    }
    return gw->kafka_ok;
}

/* ---- sync jobs ---------------------------------------------------------------------------- */

typedef struct job_s {
    char tenant[64];
    char integration[16];
    char job_id[33];
    char reason[32];
} job_t;

static int job_after(gw_t *gw, void *arg, const char *error, char *errstr, size_t errstr_size) {
    job_t *job = arg;
    if (!error) {
        msp_metric_add(gw->metrics, "mspsync_jobs_queued_total", NULL, 1);
        MSP_INFO("job.queued", job->tenant, "%s job %s queued (%s)", job->integration,
                 job->job_id, job->reason);
        return 0;
    }
    MSP_WARN("job.queue_failed", job->tenant, "job %s (%s) not queued: %s", job->job_id,
             job->reason, error);
    if (strcmp(job->reason, "integration_saved") == 0) {
        /* the status page must not claim a sync that will never run */
        char key[256], err[256], when[32], msg[400], hint[128];
        msp_format_time(msp_wall_ms(), when, sizeof(when));
        snprintf(msg, sizeof(msg), "could not queue the sync job: %s", error);
        snprintf(hint, sizeof(hint), "ask for a sync again (POST .../integrations/%s/sync)",
                 job->integration);
        msp_key(key, sizeof(key), job->tenant, "status:%s", job->integration);
        redisReply *r = gw_redis(gw, err, sizeof(err), "HSET %s state error last_error %s "
                                 "last_error_at %s hint %s", key, msg, when, hint);
        if (r)
            freeReplyObject(r);
    }
    return 0;
}

void gw_job_queue(gw_t *gw, gw_held_t *held, const char *tenant, const char *integration,
                  const char *job_id, const char *const *types, const char *mode,
                  const char *reason, int ok_code, json_t *ok_body) {
    char now[32];
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    json_t *jtypes = json_array();
    for (int i = 0; types[i]; i++)
        json_array_append_new(jtypes, json_string(types[i]));
    json_t *msg = json_pack("{s:i,s:s,s:s,s:s,s:o,s:s,s:s,s:s}", "schema_version", 1, "job_id",
                            job_id, "tenant", tenant, "integration", integration, "types", jtypes,
                            "mode", mode, "reason", reason, "requested_at", now);
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    job_t *job = calloc(1, sizeof(*job));
    if (job) {
        snprintf(job->tenant, sizeof(job->tenant), "%s", tenant);
        snprintf(job->integration, sizeof(job->integration), "%s", integration);
        snprintf(job->job_id, sizeof(job->job_id), "%s", job_id);
        snprintf(job->reason, sizeof(job->reason), "%s", reason);
    }
    gw_produce_reply(gw, held, msp_topic(MSP_TOPIC_SYNC_JOBS), tenant, job ? text : NULL,
                     "the sync job", ok_code, ok_body, job_after, job);
    free(text);
}

/* ---- one message, answered on delivery ---------------------------------------------------- */

typedef struct one_s {
    gw_held_t   *held;
    int          ok_code;
    json_t      *ok_body;
    gw_after_cb *after;
    void        *arg;
    char         what[64];
} one_t;

static void one_done(gw_t *gw, void *arg, const char *error) {
    one_t *o = arg;
    char err[256] = "";
    int rc = o->after ? o->after(gw, o->arg, error, err, sizeof(err)) : 0;
    if (error) {
        if (!o->after)
            MSP_WARN("produce.failed", NULL, "%s not queued: %s", o->what, error);
        json_decref(o->ok_body);
        gw_held_reply_error(o->held, 503, "could not queue %s: %s", o->what, error);
    } else if (rc != 0) {
        json_decref(o->ok_body);
        gw_held_reply_error(o->held, 503, "%s", err);
    } else {
        gw_held_reply(o->held, o->ok_code, o->ok_body);
    }
    free(o->arg);
    free(o);
}

void gw_produce_reply(gw_t *gw, gw_held_t *held, const char *topic, const char *key,
                      const char *text, const char *what, int ok_code, json_t *ok_body,
                      gw_after_cb *after, void *arg) {
    one_t *o = calloc(1, sizeof(*o));
    gw_batch_t *b = o && text ? gw_batch_new(gw, one_done, o) : NULL;
    if (!b) {
        free(o);
        free(arg);
        json_decref(ok_body);
        gw_held_reply_error(held, 500, "out of memory");
        return;
    }
    o->held = held;
    o->ok_code = ok_code;
    o->ok_body = ok_body;
    o->after = after;
    o->arg = arg;
    snprintf(o->what, sizeof(o->what), "%s", what);
    gw_batch_produce(b, topic, key, text, strlen(text));
    gw_batch_seal(b);
}
