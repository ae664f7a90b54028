/*
 * webhook.c — POST /v1/webhooks/mtp/{tenant}: incidents pushed by the MTP monitoring platform.
 *
 * Not bearer-authenticated: the sender proves itself with an HMAC-SHA256 signature over
 * "<X-MSPSync-Timestamp>.<raw body>" keyed with the tenant's webhook secret (api_webhooks.c),
 * and the timestamp must lie within MSPSYNC_WEBHOOK_TOLERANCE_S of our clock, which bounds how
 * long a captured request can be replayed. During a rotation the previous secret is accepted
 * too until it expires or is revoked.
 *
 * Checks run in a fixed order and the first failure answers (JSON error, nothing produced):
 *   1. tenant syntax / unknown tenant / no secret configured        404
 *   2. body over MSPSYNC_WEBHOOK_MAX_BODY                            413
 *   3. timestamp and signature headers                              401
 *   4. JSON object with the incident fields (IncidentWebhook)       400
 * Only then is one record produced to raw.events (key = tenant, kind "incident"; its own topic,
 * so that an incident never queues behind a tenant's sync pages on raw.records); the sender
 * hears 202 after Kafka's delivery report, 503 when Kafka did not take it (the sender retries —
 * downstream, a retried event has the same event id and is handled once).
 *
 * The body is verified on its raw bytes, before parsing: an unauthenticated sender cannot make
 * us parse anything, and a re-serialised body could never match the signature anyway.
 *
 * No call blocks: the tenant and its secrets come from the tenant cache (tenant_cache.c; a miss
 * holds the request until the asynchronous load answers), the produce is answered by its
 * delivery report, and the org suggestion is written asynchronously (gw_tc_org_seen).
 *
 * The sender is not trusted until the signature checks out, so a failure of ours (Redis, Kafka,
 * an unreadable stored secret) answers a fixed phrase ("redis unavailable"); its details (error
 * text, addresses) go to the log only.
 */
#include "gateway.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/tzif.h"
#include "mspsync/utf8.h"

#define ROUTE "webhook_mtp"
#define HDR_TIMESTAMP "X-MSPSync-Timestamp"
#define HDR_SIGNATURE "X-MSPSync-Signature"

/* Answer an error and log why (the tenant field only once the tenant is known to exist). */
void gw_webhook_reject(gw_t *gw, struct evhttp_request *req, const char *route, const char *tenant,
                       int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    MSP_INFO("webhook.rejected", tenant, "%d: %s", code, msg);
    gw_reply_error(gw, req, route, code, "%s", msg);
}

#define reject(gw, req, tenant, ...) gw_webhook_reject(gw, req, ROUTE, tenant, __VA_ARGS__)

/* ---- field validation ---------------------------------------------------------------------- */

static int valid_rfc3339(const char *s) {
    int64_t ms;
    return msp_rfc3339_parse(s, &ms) == 0;
}

/*
 * A string of min..max characters, or (as_id) a non-negative integer, which is replaced in the
 * object by its decimal string. Absent or null: an error when required, else fine.
 * @returns 0 or -1 with err.
 */
int gw_webhook_check_str(json_t *body, const char *field, int required, size_t min, size_t max,
                         int as_id, char *err, size_t err_size) {
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        snprintf(err, err_size, "missing required field \"%s\"", field);
        return -1;
    }
    if (as_id && json_is_integer(v) && json_integer_value(v) >= 0) {
        char num[32];
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        json_object_set_new(body, field, json_string(num));
        return 0;
    }
    size_t n = json_is_string(v) ? msp_utf8_chars(json_string_value(v)) : 0;
    if (json_is_string(v) && n >= min && n <= max)
        return 0;
    char got[64];
    if (json_is_string(v))
        snprintf(got, sizeof(got), "a string of %zu characters", n);
    else if (json_is_integer(v) && as_id)
        snprintf(got, sizeof(got), "a negative integer");
    else
        snprintf(got, sizeof(got), "%s", gw_json_kind(v));
    if (min > 0)
        snprintf(err, err_size, "\"%s\" must be a string of 1 to %zu characters%s (got %s)",
                 field, max, as_id ? " or a non-negative integer" : "", got);
    else
        snprintf(err, err_size, "\"%s\" must be a string of at most %zu characters (got %s)",
                 field, max, got);
    return -1;
}

/* The value of field must be one of the NULL-terminated words. @returns 0 or -1 with err. */
static int check_enum(json_t *body, const char *field, int required, const char *const *words,
                      const char *list, char *err, size_t err_size) {
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        snprintf(err, err_size, "missing required field \"%s\"", field);
        return -1;
    }
    const char *s = json_string_value(v);
    for (int i = 0; s && words[i]; i++)
        if (strcmp(s, words[i]) == 0)
            return 0;
    if (s)
        snprintf(err, err_size, "\"%s\" must be one of %s (got \"%.*s\")", field, list,
                 MSP_UTF8_CUT(s, 64));
    else
        snprintf(err, err_size, "\"%s\" must be one of %s (got %s)", field, list, gw_json_kind(v));
    return -1;
}

/*
 * Validate an incident body (IncidentWebhook in docs/openapi.yaml) in place: "id" and "org_id"
 * given as integers become decimal strings; every other field, known or not, is kept as sent.
 * @returns 0 or -1 with err naming the field.
 */
#define check_str gw_webhook_check_str

static int validate_incident(json_t *body, char *err, size_t err_size) {
    static const char *const statuses[] = {"open", "resolved", NULL};
    static const char *const severities[] = {"info", "low", "medium", "high", "critical", NULL};
    if (check_str(body, "id", 1, 1, 256, 1, err, err_size) ||
        check_str(body, "org_id", 1, 1, 256, 1, err, err_size) ||
        check_str(body, "alert_type", 1, 1, 128, 0, err, err_size) ||
        check_enum(body, "status", 1, statuses, "\"open\", \"resolved\"", err, err_size) ||
        check_str(body, "title", 1, 1, 1000, 0, err, err_size) ||
        check_str(body, "occurred_at", 1, 1, 64, 0, err, err_size))
        return -1;
    if (!valid_rfc3339(json_string_value(json_object_get(body, "occurred_at")))) {
        snprintf(err, err_size, "\"occurred_at\" must be an RFC 3339 date-time such as "
                 "\"2026-11-23T21:45:00Z\" (got \"%.*s\")",
                 MSP_UTF8_CUT(json_string_value(json_object_get(body, "occurred_at")), 64));
        return -1;
    }
    if (check_str(body, "org_name", 0, 0, 512, 0, err, err_size) ||
        check_enum(body, "severity", 0, severities,
                   "\"info\", \"low\", \"medium\", \"high\", \"critical\"", err, err_size) ||
        check_str(body, "subject", 0, 0, 512, 0, err, err_size) ||
        check_str(body, "description", 0, 0, 65536, 0, err, err_size) ||
        check_str(body, "link", 0, 0, 2048, 0, err, err_size))
        return -1;
    const char *link = json_string_value(json_object_get(body, "link"));
    if (link && strncasecmp(link, "http://", 7) != 0 && strncasecmp(link, "https://", 8) != 0) {
        snprintf(err, err_size, "\"link\" must start with http:// or https:// (got \"%.*s\")",
                 MSP_UTF8_CUT(link, 64));
        return -1;
    }
    return 0;
}

/* ---- signature ----------------------------------------------------------------------------- */

/*
 * Check the timestamp window and the signature. @returns 0 when they hold, else -1 with msg.
 */
static int verify(gw_t *gw, struct evhttp_request *req, const gw_tc_view_t *secrets,
                  const char *body, size_t len, char *msg, size_t msg_size) {
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *ts = evhttp_find_header(h, HDR_TIMESTAMP);
    const char *sig = evhttp_find_header(h, HDR_SIGNATURE);
    if (!ts || !sig) {
        snprintf(msg, msg_size, "missing %s%s%s header%s", !ts ? HDR_TIMESTAMP : "",
                 !ts && !sig ? " and " : "", !sig ? HDR_SIGNATURE : "", !ts && !sig ? "s" : "");
        return -1;
    }
    size_t tslen = strlen(ts);
    size_t i = ts[0] == '-' ? 1 : 0;
    int numeric = tslen > i && tslen - i <= 18;
    for (; numeric && i < tslen; i++)
        numeric = ts[i] >= '0' && ts[i] <= '9';
    if (!numeric) {
        snprintf(msg, msg_size, "%s must be an integer (Unix time in seconds), got \"%.*s\"",
                 HDR_TIMESTAMP, MSP_UTF8_CUT(ts, 32));
        return -1;
    }
    long long skew = msp_wall_ms() / 1000 - strtoll(ts, NULL, 10);
    if (skew < 0)
        skew = -skew;
    if (skew > gw->cfg.webhook_tolerance_s) {
        snprintf(msg, msg_size, "timestamp is %lld s away from the gateway clock; the replay "
                 "window is %lld s", skew, gw->cfg.webhook_tolerance_s);
        return -1;
    }

    char given[65];
    int form_ok = strncmp(sig, "v1=", 3) == 0 && strlen(sig + 3) == 64;
    for (int k = 0; form_ok && k < 64; k++) {
        if (!isxdigit((unsigned char)sig[3 + k]))
            form_ok = 0;
        else
            given[k] = (char)tolower((unsigned char)sig[3 + k]);
    }
    if (!form_ok) {
        snprintf(msg, msg_size, "signature does not match (%s must be \"v1=\" followed by 64 "
                 "hex characters)", HDR_SIGNATURE);
        return -1;
    }
    given[64] = '\0';

    /* signed data: "<timestamp header value>.<raw body>" */
    char *data = malloc(tslen + 1 + len + 1);
    if (!data) {
        snprintf(msg, msg_size, "out of memory");
        return -1;
    }
    memcpy(data, ts, tslen);
    data[tslen] = '.';
    if (len)
        memcpy(data + tslen + 1, body, len);
    int match = 0;
    const char *keys[2] = {secrets->current, secrets->previous};
    for (int k = 0; k < 2; k++) {
        if (!keys[k])
            continue;
        char want[65];
        msp_hmac_sha256_hex(keys[k], strlen(keys[k]), data, tslen + 1 + len, want);
        match |= msp_consttime_streq(want, given);
        msp_secure_zero(want, sizeof(want));
    }
    free(data);
    if (!match) {
        snprintf(msg, msg_size, "signature does not match");
        return -1;
    }
    return 0;
}

/* ---- accepted: produce and answer after the delivery report -------------------------------- */

typedef struct wh_s {
    gw_held_t *held;
    char       tenant[64];
    char      *incident_id;
    char      *org_id;
    char      *org_name;   /* NULL when the webhook had none */
} wh_t;

static void wh_free(wh_t *w) {
    if (!w)
        return;
    free(w->incident_id);
    free(w->org_id);
    free(w->org_name);
    free(w);
}

static void wh_delivered(gw_t *gw, void *arg, const char *error) {
    wh_t *w = arg;
    if (error) {
        MSP_WARN("webhook.queue_failed", w->tenant, "incident %s not queued: %s",
                 w->incident_id, error);
        gw_held_reply_error(w->held, 503, "could not queue the incident; try again");
    } else {
        MSP_INFO("webhook.accepted", w->tenant, "incident %s of org %s queued", w->incident_id,
                 w->org_id);
        gw_tc_org_seen(gw, w->tenant, w->org_id, w->org_name); /* mapping suggestions */
        gw_held_reply(w->held, 202, json_pack("{s:s,s:s,s:s}", "status", "accepted", "tenant",
                                              w->tenant, "incident_id", w->incident_id));
    }
    wh_free(w);
}

/*
 * The raw.events record: the envelope, then "payload". When validation changed nothing (ids
 * sent as strings: the common case) the payload is the body's raw bytes, which json_loadb has
 * just accepted as one valid object — the record holds the body exactly as sent and the body
 * is not serialised again. Otherwise the validated body is. @returns new text or NULL.
 */
static char *incident_record(const char *tenant, json_t *body, const char *raw, size_t raw_len) {
    char now[32];
    int64_t now_ms = msp_wall_ms();
    msp_format_time(now_ms, now, sizeof(now));
    json_t *msg = json_object();
    json_object_set_new(msg, "schema_version", json_integer(1));
    json_object_set_new(msg, "kind", json_string("incident"));
    json_object_set_new(msg, "tenant", json_string(tenant));
    json_object_set_new(msg, "integration", json_string("mtp"));
    json_object_set_new(msg, "type", json_string("incident"));
    json_object_set(msg, "source_id", json_object_get(body, "id"));
    json_object_set_new(msg, "received_at", json_string(now));
    json_object_set_new(msg, "received_at_ms", json_integer(now_ms));
    if (!raw)
        json_object_set(msg, "payload", body);
    char *head = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!raw || !head)
        return head;
    /* head is {...}: replace its closing brace by ,"payload":<raw>} */
    static const char PAYLOAD[] = ",\"payload\":";
    size_t hl = strlen(head) - 1;
    char *text = malloc(hl + sizeof(PAYLOAD) - 1 + raw_len + 2);
    if (text) {
        memcpy(text, head, hl);
        memcpy(text + hl, PAYLOAD, sizeof(PAYLOAD) - 1);
        memcpy(text + hl + sizeof(PAYLOAD) - 1, raw, raw_len);
        memcpy(text + hl + sizeof(PAYLOAD) - 1 + raw_len, "}", 2);
    }
    free(head);
    return text;
}

static void produce(gw_t *gw, struct evhttp_request *req, const char *tenant, json_t *body,
                    int as_sent) {
    const char *id = json_string_value(json_object_get(body, "id"));
    const char *org_id = json_string_value(json_object_get(body, "org_id"));
    const char *org_name = json_string_value(json_object_get(body, "org_name"));
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = as_sent ? evbuffer_get_length(in) : 0;
    const char *raw = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : NULL;
    char *text = incident_record(tenant, body, raw, len);

    wh_t *w = calloc(1, sizeof(*w));
    if (w) {
        snprintf(w->tenant, sizeof(w->tenant), "%s", tenant);
        w->incident_id = strdup(id);
        w->org_id = strdup(org_id);
        w->org_name = org_name ? strdup(org_name) : NULL;
    }
    gw_batch_t *b = (text && w && w->incident_id && w->org_id && (!org_name || w->org_name))
                        ? gw_batch_new(gw, wh_delivered, w)
                        : NULL;
    gw_held_t *held = b ? gw_hold(gw, req, ROUTE) : NULL;
    if (!held) {
        free(b);
        wh_free(w);
        free(text);
        gw_reply_error(gw, req, ROUTE, 500, "out of memory");
        return;
    }
    w->held = held;
    gw_batch_produce(b, msp_topic(MSP_TOPIC_RAW_EVENTS), tenant, text, strlen(text));
    free(text);
    gw_batch_seal(b);
}

/* ---- the handler ---------------------------------------------------------------------------- */

/* Our own failure: details to the log, a fixed phrase to the (unauthenticated) sender. */
static void unavailable(gw_t *gw, struct evhttp_request *req, const char *route, const char *err) {
    MSP_WARN("webhook.redis_unavailable", NULL, "%s", err);
    gw_reply_error(gw, req, route, 503, "redis unavailable");
}

/* The checks after the tenant lookup (tenant_cache.c): the file comment's order. */
static void checked_tenant(gw_t *gw, struct evhttp_request *req, const gw_tc_view_t *t,
                           const char *route, gw_webhook_then_t *then) {
    char err[512];
    const char *tenant = t->tenant;
    if (t->rc == -1) {
        unavailable(gw, req, route, t->err);
        return;
    }
    if (t->rc == -3 || (t->rc == 0 && !t->exists && gw->restoring == 1)) {
        /* Redis wiped: the sender retries a 503 */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "2");
        gw_reply_error(gw, req, route, 503, "restoring; retry");
        return;
    }
    if (!t->exists) {
        gw_webhook_reject(gw, req, route, NULL, 404, "unknown tenant \"%.*s\"",
                          MSP_UTF8_CUT(tenant, 64));
        return;
    }
    if (t->rc == -2) {
        gw_reply_error(gw, req, route, 500, "the tenant's webhook secret cannot be read");
        return;
    }
    if (!t->current) {
        gw_webhook_reject(gw, req, route, tenant, 404,
                          "no MTP webhook secret configured for "
                          "tenant \"%s\"; create one with POST /v1/tenants/%s/webhooks/mtp/secret",
                          tenant, tenant);
        return;
    }

    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = in ? evbuffer_get_length(in) : 0;
    if ((long long)len > gw->cfg.webhook_max_body) {
        gw_webhook_reject(gw, req, route, tenant, 413,
                          "request body is %zu bytes; the webhook "
                          "accepts at most %lld bytes",
                          len, gw->cfg.webhook_max_body);
        return;
    }
    const char *data = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
    if (verify(gw, req, t, data, len, err, sizeof(err)) != 0) {
        gw_webhook_reject(gw, req, route, tenant, 401, "%s", err);
        return;
    }

    if (len == 0) {
        gw_webhook_reject(gw, req, route, tenant, 400,
                          "the webhook body must be a JSON object "
                          "(got an empty body)");
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        gw_webhook_reject(gw, req, route, tenant, 400, "malformed JSON at line %d, column %d: %s",
                          jerr.line, jerr.column, jerr.text);
        return;
    }
    if (!json_is_object(body)) {
        gw_webhook_reject(gw, req, route, tenant, 400,
                          "the webhook body must be a JSON object "
                          "(got %s)",
                          gw_json_kind(body));
        json_decref(body);
        return;
    }
    then(gw, req, tenant, body);
}

void gw_webhook_open(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *route,
                     gw_webhook_then_t *then) {
    if (!gw_valid_tenant_id(tenant)) {
        gw_webhook_reject(gw, req, route, NULL, 404, "unknown tenant \"%.*s\"",
                          MSP_UTF8_CUT(tenant, 64));
        return;
    }
    gw_tc_lookup(gw, req, tenant, route, checked_tenant, then);
}

/* An incident that passed the shared checks: validate its fields, produce it. */
static void incident_opened(gw_t *gw, struct evhttp_request *req, const char *tenant,
                            json_t *body) {
    char err[512];
    /* ids sent as integers become strings: then the record carries the validated body */
    int as_sent = json_is_string(json_object_get(body, "id")) &&
                  json_is_string(json_object_get(body, "org_id"));
    if (validate_incident(body, err, sizeof(err)) != 0)
        reject(gw, req, tenant, 400, "%s", err);
    else
        produce(gw, req, tenant, body, as_sent);
    json_decref(body);
}

void api_webhook_mtp(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    gw_webhook_open(gw, req, tenant, ROUTE, incident_opened);
}
