/*
 * usage.c — POST /v1/webhooks/mtp/{tenant}/usage: the portal's usage reports (how many users of
 * a product an org has), which the billing service turns into the month's high-water mark on
 * the customer's Syncro recurring invoice (services/billing).
 *
 * Signed and checked exactly like the incident webhook (gw_webhook_open: same secret, header,
 * replay window, size limit, order of checks). The body is one report (UsageReport in
 * docs/openapi.yaml) or a batch {"reports": [...]} of up to MAX_BATCH; every report is
 * validated before anything is produced, so a batch with one bad report is refused whole (400
 * naming reports[i].field) and nothing of it reaches Kafka. Each report becomes one message on
 * usage.events, key "<tenant>/<org_id>/<product>" so that one mark's reports are consumed in
 * order by one billing replica; the sender hears 202 once Kafka acknowledged every message of
 * the request, 503 otherwise (resending is harmless: a mark is a maximum).
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/billing.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/tzif.h"
#include "mspsync/utf8.h"

#define ROUTE "webhook_usage"
#define MAX_BATCH 1000
#define MAX_COUNT 1000000000LL

/* Validate one report in place (org_id given as an integer becomes a string). @returns 0 or -1
 * with err naming the field (prefixed by where, "" or "reports[3]."). */
static int validate_report(json_t *r, const char *where, int64_t *as_of_ms, char *err,
                           size_t err_size) {
    static const char *const known[] = {"org_id", "org_name",  "product", "count",
                                        "as_of",  "report_id", NULL};
    char e[400];
    const char *k;
    json_t *v;
    if (!json_is_object(r)) {
        snprintf(err, err_size, "%s must be an object (got %s)", where[0] ? where : "the report",
                 gw_json_kind(r));
        return -1;
    }
    json_object_foreach(r, k, v) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++)
            ok = !strcmp(k, known[i]);
        if (!ok) {
            snprintf(err, err_size,
                     "%sunknown field \"%.*s\" (known: org_id, org_name, product, "
                     "count, as_of, report_id)",
                     where, MSP_UTF8_CUT(k, 64));
            return -1;
        }
    }
    if (gw_webhook_check_str(r, "org_id", 1, 1, 256, 1, e, sizeof(e)) ||
        gw_webhook_check_str(r, "org_name", 0, 0, 512, 0, e, sizeof(e)) ||
        gw_webhook_check_str(r, "product", 1, 1, 128, 0, e, sizeof(e)) ||
        gw_webhook_check_str(r, "report_id", 0, 1, 256, 1, e, sizeof(e)) ||
        gw_webhook_check_str(r, "as_of", 1, 1, 64, 0, e, sizeof(e))) {
        snprintf(err, err_size, "%s%s", where, e);
        return -1;
    }
    json_t *c = json_object_get(r, "count");
    if (!json_is_integer(c) || json_integer_value(c) < 0 || json_integer_value(c) > MAX_COUNT) {
        snprintf(err, err_size, "%s\"count\" must be an integer from 0 to %lld (got %s)", where,
                 MAX_COUNT, c ? gw_json_kind(c) : "nothing");
        return -1;
    }
    const char *as_of = json_string_value(json_object_get(r, "as_of"));
    if (msp_rfc3339_parse(as_of, as_of_ms) != 0) {
        snprintf(err, err_size,
                 "%s\"as_of\" must be an RFC 3339 date-time such as "
                 "\"2026-11-23T21:45:00Z\" (got \"%.*s\")",
                 where, MSP_UTF8_CUT(as_of, 64));
        return -1;
    }
    return 0;
}

typedef struct usage_req_s {
    gw_held_t *held;
    char tenant[64];
    size_t n;
} usage_req_t;

static void delivered(gw_t *gw, void *arg, const char *error) {
    (void)gw;
    usage_req_t *u = arg;
    if (error) {
        MSP_WARN("usage.queue_failed", u->tenant, "%zu usage reports not queued: %s", u->n, error);
        gw_held_reply_error(u->held, 503, "could not queue the usage reports; try again");
    } else {
        MSP_INFO("usage.accepted", u->tenant, "%zu usage reports queued", u->n);
        gw_held_reply(u->held, 202,
                      json_pack("{s:s,s:s,s:I}", "status", "accepted", "tenant", u->tenant,
                                "accepted", (json_int_t)u->n));
    }
    free(u);
}

/* The usage.events message of report r (validated), received under the state marker epoch.
 * @returns new text or NULL. */
static char *report_message(const char *tenant, json_t *r, int64_t as_of_ms, int64_t now_ms,
                            const char *epoch, char *key, size_t key_size) {
    const char *org = json_string_value(json_object_get(r, "org_id"));
    const char *product = json_string_value(json_object_get(r, "product"));
    json_t *name = json_object_get(r, "org_name"), *rid = json_object_get(r, "report_id");
    snprintf(key, key_size, "%s/%s/%s", tenant, org, product);
    json_t *m =
        json_pack("{s:i,s:s,s:s,s:s,s:O,s:s,s:O,s:O,s:I,s:O,s:I,s:s}", "schema_version", 1, "kind",
                  "usage", "tenant", tenant, "org_id", org, "org_name", name ? name : json_null(),
                  "product", product, "count", json_object_get(r, "count"), "as_of",
                  json_object_get(r, "as_of"), "as_of_ms", (json_int_t)as_of_ms, "report_id",
                  rid ? rid : json_null(), "received_at_ms", (json_int_t)now_ms, "epoch", epoch);
    char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    return text;
}

/* A body that passed the shared checks (gw_webhook_open): validate every report, produce. */
static void usage_opened(gw_t *gw, struct evhttp_request *req, const char *tenant, json_t *body) {
    char err[700];
    json_t *list = json_object_get(body, "reports"), *one = NULL;
    if (list) {
        if (json_object_size(body) != 1 || !json_is_array(list) || json_array_size(list) == 0 ||
            json_array_size(list) > MAX_BATCH) {
            gw_webhook_reject(gw, req, ROUTE, tenant, 400,
                              "a batch is {\"reports\": [...]} with "
                              "1 to %d reports and nothing else",
                              MAX_BATCH);
            json_decref(body);
            return;
        }
    } else {
        one = json_array();
        json_array_append(one, body);
        list = one;
    }
    size_t n = json_array_size(list);
    int64_t *as_of = calloc(n, sizeof(*as_of));
    int bad = !as_of;
    if (!as_of)
        snprintf(err, sizeof(err), "out of memory");
    for (size_t i = 0; i < n && !bad; i++) {
        char where[48] = "";
        if (!one)
            snprintf(where, sizeof(where), "reports[%zu].", i);
        bad = validate_report(json_array_get(list, i), where, &as_of[i], err, sizeof(err)) != 0;
    }
    /* every message rendered before the first is produced: all of the request or none */
    char **text = bad ? NULL : calloc(n, sizeof(*text)),
         **key = text ? calloc(n, sizeof(*key)) : NULL;
    int64_t now_ms = msp_billing_now_ms(); /* the billing clock: tests move it */
    for (size_t i = 0; key && i < n; i++) {
        char k[700];
        text[i] = report_message(tenant, json_array_get(list, i), as_of[i], now_ms,
                                 gw_journal_current(gw), k, sizeof(k));
        key[i] = strdup(k);
        if (!text[i] || !key[i])
            bad = 2;
    }
    usage_req_t *u = bad || !key ? NULL : calloc(1, sizeof(*u));
    gw_batch_t *b = u ? gw_batch_new(gw, delivered, u) : NULL;
    gw_held_t *held = b ? gw_hold(gw, req, ROUTE) : NULL;
    if (bad == 1) {
        gw_webhook_reject(gw, req, ROUTE, tenant, 400, "%s", err);
    } else if (!held) {
        free(b);
        free(u);
        gw_reply_error(gw, req, ROUTE, 500, "out of memory");
    } else {
        u->held = held;
        u->n = n;
        snprintf(u->tenant, sizeof(u->tenant), "%s", tenant);
        for (size_t i = 0; i < n; i++)
            gw_batch_produce(b, msp_topic(MSP_TOPIC_USAGE_EVENTS), key[i], text[i],
                             strlen(text[i]));
        gw_batch_seal(b);
    }
    for (size_t i = 0; key && i < n; i++) {
        free(text[i]);
        free(key[i]);
    }
    free(text);
    free(key);
    free(as_of);
    json_decref(one);
    json_decref(body);
}

void api_webhook_usage(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    static const gw_webhook_then_t then = {.parsed = usage_opened};
    gw_webhook_open(gw, req, tenant, ROUTE, &then);
}
