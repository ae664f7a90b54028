/*
 * trace.c — trace entries (trace.h): one shape for every service that writes them, one
 * de-duplication rule for every reader, one journal producer for all of them.
 */
#include "mspsync/trace.h"
#include "mspsync/json_dump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/ops.h"

#define JOURNAL_FAILED "mspsync_trace_journal_failed_total"

/* The process's journal producer and metrics (msp_trace_journal_init; borrowed). */
static rd_kafka_t *journal_rk;
static msp_metrics_t *journal_metrics;
/* The opaque of every journal record: its address tells a delivery report it is one. */
static char journal_marker;

char *msp_trace_entry(int64_t wall_ms, const char *step, const char *service, json_t *facts) {
    char at[32];
    msp_format_time(wall_ms, at, sizeof(at));
    json_t *e = json_object();
    if (!e || json_object_set_new_nocheck(e, "at", json_string_nocheck(at)) < 0 ||
        json_object_set_new_nocheck(e, "at_ms", json_integer((json_int_t)wall_ms)) < 0 ||
        json_object_set_new_nocheck(e, "step", json_string(step)) < 0 ||
        json_object_set_new_nocheck(e, "service", json_string(service)) < 0) {
        json_decref(e);
        json_decref(facts);
        return NULL;
    }
    if (json_is_object(facts))
        json_object_update_missing(e, facts);
    json_decref(facts);
    /* jansson keeps insertion order: the fast dump writes the members as they were set (the
     * normalizer writes an entry for every asset it creates) */
    char *text = msp_json_dumps(e, JSON_COMPACT);
    json_decref(e);
    return text;
}

int msp_trace_entry_key(const json_t *entry, char *buf, size_t size) {
    const char *eid = json_string_value(json_object_get(entry, "event_id"));
    const char *step = json_string_value(json_object_get(entry, "step"));
    const char *err = json_string_value(json_object_get(entry, "error"));
    int n;
    if (!eid || !step)
        n = snprintf(buf, size, "%s", "");
    else
        n = snprintf(buf, size, "%s\t%s\t%s", eid, step, !strcmp(step, "error") && err ? err : "");
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

void msp_trace_journal_init(rd_kafka_t *producer, msp_metrics_t *metrics) {
    journal_rk = producer;
    journal_metrics = metrics;
    if (metrics)
        msp_metric_declare(metrics, JOURNAL_FAILED, "counter",
                           "Trace, asset history and billing history entries the traces topic did "
                           "not take (a rebuild after a loss of Redis would miss them)");
}

static void journal_failed(const char *tenant, const char *why) {
    MSP_WARN("trace.journal_failed", tenant, "an entry did not reach the %s topic: %s",
             msp_topic(MSP_TOPIC_TRACES), why);
    if (journal_metrics)
        msp_metric_add(journal_metrics, JOURNAL_FAILED, NULL, 1);
}

int msp_trace_journal(const char *key, const char *text, long long keep) {
    static const char PREFIX[] = "mspsync:{";
    if (!journal_rk || !key || !text)
        return journal_rk ? -1 : 0;
    /* "mspsync:{t}:suffix" -> "t/suffix" */
    const char *t = strncmp(key, PREFIX, sizeof(PREFIX) - 1) ? NULL : key + sizeof(PREFIX) - 1;
    const char *close = t ? strstr(t, "}:") : NULL;
    char k[600];
    int n = close ? snprintf(k, sizeof(k), "%.*s/%s", (int)(close - t), t, close + 2) : -1;
    if (n < 0 || (size_t)n >= sizeof(k)) {
        journal_failed(NULL, "the key is not a tenant's");
        return -1;
    }
    rd_kafka_resp_err_t err;
    if (keep > 0 && keep != MSP_TRACE_MAX) {
        char kb[24];
        snprintf(kb, sizeof(kb), "%lld", keep);
        err = rd_kafka_producev(
            journal_rk, RD_KAFKA_V_TOPIC(msp_topic(MSP_TOPIC_TRACES)), RD_KAFKA_V_KEY(k, (size_t)n),
            RD_KAFKA_V_VALUE((void *)text, strlen(text)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER(MSP_TRACE_KEEP_HEADER, kb, -1), RD_KAFKA_V_OPAQUE(&journal_marker),
            RD_KAFKA_V_END);
    } else {
        err = rd_kafka_producev(
            journal_rk, RD_KAFKA_V_TOPIC(msp_topic(MSP_TOPIC_TRACES)), RD_KAFKA_V_KEY(k, (size_t)n),
            RD_KAFKA_V_VALUE((void *)text, strlen(text)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(&journal_marker), RD_KAFKA_V_END);
    }
    if (err) {
        char tenant[64];
        snprintf(tenant, sizeof(tenant), "%.*s", (int)(close - t), t);
        journal_failed(tenant, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int msp_trace_journal_report(const rd_kafka_message_t *m) {
    if (!m || m->_private != &journal_marker)
        return 0;
    if (m->err) {
        char tenant[64];
        msp_kafka_tenant_of(m, tenant, sizeof(tenant));
        journal_failed(tenant[0] ? tenant : NULL, rd_kafka_err2str(m->err));
    }
    return 1;
}
