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
 * The fast path (incident_raw): a body that is a flat object of plain strings — what a sender
 * sends — and passes every check is produced from its bytes without being built (msp_json_flat),
 * and the signature uses the key prepared when the secret was loaded. Any other body, valid or
 * not, goes the parsed path (incident_opened), which names the first failure; both read one
 * table of the fields, so they accept the same bodies with the same record and answer.
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
#include "mspsync/json_pick.h"
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
 * The incident's fields (IncidentWebhook in docs/openapi.yaml) in the order they are checked:
 * the first that fails is the one the answer names. Both paths read this table: the parsed body
 * (validate_incident) and the fast path (incident_raw).
 */
static const char *const statuses[] = {"open", "resolved", NULL};
static const char *const severities[] = {"info", "low", "medium", "high", "critical", NULL};
static const struct field_s {
    const char *name;
    int required, as_id; /* as_id: a non-negative integer is taken too (made a string) */
    size_t min, max;     /* characters, when words is NULL; min is 0 or 1 (incident_raw) */
    const char *const *words, *list;
} fields[] = {
    {"id", 1, 1, 1, 256, NULL, NULL},
    {"org_id", 1, 1, 1, 256, NULL, NULL},
    {"alert_type", 1, 0, 1, 128, NULL, NULL},
    {"status", 1, 0, 0, 0, statuses, "\"open\", \"resolved\""},
    {"title", 1, 0, 1, 1000, NULL, NULL},
    {"occurred_at", 1, 0, 1, 64, NULL, NULL}, /* and an RFC 3339 date-time */
    {"org_name", 0, 0, 0, 512, NULL, NULL},
    {"severity", 0, 0, 0, 0, severities, "\"info\", \"low\", \"medium\", \"high\", \"critical\""},
    {"subject", 0, 0, 0, 512, NULL, NULL},
    {"description", 0, 0, 0, 65536, NULL, NULL},
    {"link", 0, 0, 0, 2048, NULL, NULL}, /* and http:// or https:// */
};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))
enum { F_ID, F_ORG_ID, F_OCCURRED_AT = 5, F_ORG_NAME, F_LINK = 10 };

/* The checks beyond a field's row: occurred_at a date-time, link a web address. */
static int valid_link(const char *s, size_t len) {
    return (len >= 7 && strncasecmp(s, "http://", 7) == 0) ||
           (len >= 8 && strncasecmp(s, "https://", 8) == 0);
}

/*
 * Validate an incident body in place: "id" and "org_id" given as integers become decimal
 * strings; every other field, known or not, is kept as sent.
 * @returns 0 or -1 with err naming the field.
 */
static int validate_incident(json_t *body, char *err, size_t err_size) {
    for (size_t i = 0; i < N_FIELDS; i++) {
        const struct field_s *f = &fields[i];
        if (f->words ? check_enum(body, f->name, f->required, f->words, f->list, err, err_size)
                     : gw_webhook_check_str(body, f->name, f->required, f->min, f->max, f->as_id,
                                            err, err_size))
            return -1;
        const char *v = json_string_value(json_object_get(body, f->name));
        if (i == F_OCCURRED_AT && !valid_rfc3339(v)) {
            snprintf(err, err_size,
                     "\"occurred_at\" must be an RFC 3339 date-time such as "
                     "\"2026-11-23T21:45:00Z\" (got \"%.*s\")",
                     MSP_UTF8_CUT(v, 64));
            return -1;
        }
        if (i == F_LINK && v && !valid_link(v, strlen(v))) {
            snprintf(err, err_size, "\"link\" must start with http:// or https:// (got \"%.*s\")",
                     MSP_UTF8_CUT(v, 64));
            return -1;
        }
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

    /* signed data: "<timestamp header value>.<raw body>"; the timestamp is at most 19 bytes */
    char head[24];
    memcpy(head, ts, tslen);
    head[tslen] = '.';
    int match = 0;
    const char *keys[2] = {secrets->current, secrets->previous};
    msp_hmac_key_t *prepared[2] = {secrets->current_key, secrets->previous_key};
    for (int k = 0; k < 2; k++) {
        if (!keys[k])
            continue;
        /* the cache prepares each key once; prepare it here when it had no memory for that */
        msp_hmac_key_t *once = prepared[k] ? NULL : msp_hmac_key_new(keys[k], strlen(keys[k]));
        char want[65];
        msp_hmac_key_hex(prepared[k] ? prepared[k] : once, head, tslen + 1, body, len, want);
        match |= want[0] && msp_consttime_streq(want, given);
        msp_secure_zero(want, sizeof(want));
        msp_hmac_key_free(once);
    }
    if (!match) {
        snprintf(msg, msg_size, "signature does not match");
        return -1;
    }
    return 0;
}

/* ---- accepted: produce and answer after the delivery report -------------------------------- */

/* A string of an accepted incident: its bytes (not NUL-terminated) and, for the id, its JSON
 * text with the quotes (the record's source_id and the answer's incident_id). */
typedef struct {
    const char *s;
    size_t len;
} span_t;

typedef struct wh_s {
    gw_held_t *held;
    char tenant[64];
    const char *incident_id, *id_json, *org_id;
    const char *org_name; /* NULL when the webhook had none */
    char text[];          /* the four, NUL-terminated, one allocation */
} wh_t;

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
        /* tenant ids need no escaping; the id's JSON text is at most 256 characters of up to 6
         * bytes each (\u001f) and its quotes */
        char text[2048];
        int n = snprintf(text, sizeof(text),
                         "{\"status\":\"accepted\",\"tenant\":\"%s\",\"incident_id\":%s}",
                         w->tenant, w->id_json);
        gw_held_reply_text(w->held, 202, text, (size_t)n);
    }
    free(w);
}

/* The strings the delivery report needs, copied into one allocation. @returns new or NULL. */
static wh_t *wh_new(const char *tenant, span_t id, span_t id_json, span_t org_id, span_t org_name) {
    wh_t *w = malloc(sizeof(*w) + id.len + id_json.len + org_id.len + org_name.len + 4);
    if (!w)
        return NULL;
    memset(w, 0, sizeof(*w));
    snprintf(w->tenant, sizeof(w->tenant), "%s", tenant);
    char *p = w->text;
    const span_t parts[4] = {id, id_json, org_id, org_name};
    const char **to[4] = {&w->incident_id, &w->id_json, &w->org_id, &w->org_name};
    for (int i = 0; i < 4; i++) {
        if (!parts[i].s)
            continue; /* org_name: none */
        memcpy(p, parts[i].s, parts[i].len);
        p[parts[i].len] = '\0';
        *to[i] = p;
        p += parts[i].len + 1;
    }
    return w;
}

/*
 * Produce the raw.events record of an accepted incident and answer after its delivery report.
 * The record is the envelope, then "payload": the body's raw bytes when validation changed
 * nothing (ids sent as strings: the common case; the bytes were accepted as one valid object),
 * else the validated body's text. Written directly: the tenant id and the time need no
 * escaping, and the id comes as JSON text (id_json).
 */
static void produce(gw_t *gw, struct evhttp_request *req, const char *tenant, span_t id,
                    span_t id_json, span_t org_id, span_t org_name, span_t payload) {
    char now[32], head[256];
    int64_t now_ms = msp_wall_ms();
    msp_format_time(now_ms, now, sizeof(now));
    int hl = snprintf(head, sizeof(head),
                      "{\"schema_version\":1,\"kind\":\"incident\",\"tenant\":\"%s\","
                      "\"integration\":\"mtp\",\"type\":\"incident\",\"source_id\":",
                      tenant);
    char tail[96];
    int tl = snprintf(tail, sizeof(tail),
                      ",\"received_at\":\"%s\",\"received_at_ms\":%lld,"
                      "\"payload\":",
                      now, (long long)now_ms);
    size_t len = (size_t)hl + id_json.len + (size_t)tl + payload.len + 1;
    char *text = malloc(len);
    if (text) {
        char *p = text;
        memcpy(p, head, (size_t)hl);
        memcpy(p += hl, id_json.s, id_json.len);
        memcpy(p += id_json.len, tail, (size_t)tl);
        memcpy(p += tl, payload.s, payload.len);
        p[payload.len] = '}';
    }
    wh_t *w = text ? wh_new(tenant, id, id_json, org_id, org_name) : NULL;
    gw_batch_t *b = w ? gw_batch_new(gw, wh_delivered, w) : NULL;
    gw_held_t *held = b ? gw_hold(gw, req, ROUTE) : NULL;
    if (!held) {
        free(b);
        free(w);
        free(text);
        gw_reply_error(gw, req, ROUTE, 500, "out of memory");
        return;
    }
    w->held = held;
    gw_batch_produce(b, msp_topic(MSP_TOPIC_RAW_EVENTS), tenant, text, len);
    free(text);
    gw_batch_seal(b);
}

static span_t span_of(const char *s) { return (span_t){s, s ? strlen(s) : 0}; }

/* An incident that passed the shared checks, parsed: validate its fields, produce it. */
static void incident_opened(gw_t *gw, struct evhttp_request *req, const char *tenant,
                            json_t *body) {
    char err[512];
    /* ids sent as integers become strings: then the record carries the validated body */
    int as_sent = json_is_string(json_object_get(body, "id")) &&
                  json_is_string(json_object_get(body, "org_id"));
    if (validate_incident(body, err, sizeof(err)) != 0) {
        reject(gw, req, tenant, 400, "%s", err);
        json_decref(body);
        return;
    }
    json_t *id = json_object_get(body, "id");
    char *id_json = json_dumps(id, JSON_ENCODE_ANY);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *dumped = as_sent ? NULL : json_dumps(body, JSON_COMPACT);
    span_t payload = as_sent ? (span_t){(const char *)evbuffer_pullup(in, (ev_ssize_t)len), len}
                             : span_of(dumped);
    if (!id_json || !payload.s)
        gw_reply_error(gw, req, ROUTE, 500, "out of memory");
    else
        produce(gw, req, tenant, span_of(json_string_value(id)), span_of(id_json),
                span_of(json_string_value(json_object_get(body, "org_id"))),
                span_of(json_string_value(json_object_get(body, "org_name"))), payload);
    free(id_json);
    free(dumped);
    json_decref(body);
}

/*
 * The fast path (gw_webhook_then_t.raw): a body that is one flat object of plain strings
 * (msp_json_flat: no escapes, no numbers, no nesting — what a sender sends) and passes every row
 * of the field table is produced from its bytes, without building it. Any other body, valid or
 * not, is declined (0) and incident_opened answers it as it always has. Both read the one
 * table, so a body taken here is one incident_opened would take with the same record and answer.
 */
#define FAST_MEMBERS 32

static int incident_raw(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *body,
                        size_t len) {
    msp_json_member_t m[FAST_MEMBERS];
    span_t v[N_FIELDS] = {{0}}; /* .s NULL: absent or null */
    int n = msp_json_flat(body, len, m, FAST_MEMBERS);
    if (n < 0)
        return 0;
    for (int i = 0; i < n; i++)
        for (size_t f = 0; f < N_FIELDS; f++)
            if (strlen(fields[f].name) == m[i].name_len &&
                memcmp(fields[f].name, m[i].name, m[i].name_len) == 0) {
                v[f] = (span_t){m[i].value, m[i].value_len};
                break;
            }
    for (size_t f = 0; f < N_FIELDS; f++) {
        const struct field_s *row = &fields[f];
        if (!v[f].s) {
            if (row->required)
                return 0;
            continue;
        }
        int ok = 0;
        if (row->words) {
            for (int k = 0; !ok && row->words[k]; k++)
                ok = strlen(row->words[k]) == v[f].len &&
                     memcmp(row->words[k], v[f].s, v[f].len) == 0;
        } else { /* characters <= bytes: counted only when the bytes pass the limit */
            ok = v[f].len >= row->min &&
                 (v[f].len <= row->max || msp_utf8_chars_n(v[f].s, v[f].len) <= row->max);
        }
        if (ok && f == F_OCCURRED_AT) {
            char at[4 * 64 + 1]; /* 64 characters */
            ok = v[f].len < sizeof(at);
            if (ok) {
                memcpy(at, v[f].s, v[f].len);
                at[v[f].len] = '\0';
                ok = valid_rfc3339(at);
            }
        }
        if (ok && f == F_LINK)
            ok = valid_link(v[f].s, v[f].len);
        if (!ok)
            return 0;
    }
    /* the id's JSON text is its bytes with their quotes: a plain string needs no escaping */
    span_t id_json = {v[F_ID].s - 1, v[F_ID].len + 2};
    produce(gw, req, tenant, v[F_ID], id_json, v[F_ORG_ID], v[F_ORG_NAME], (span_t){body, len});
    return 1;
}

/* ---- the handler ---------------------------------------------------------------------------- */

/* Our own failure: details to the log, a fixed phrase to the (unauthenticated) sender. */
static void unavailable(gw_t *gw, struct evhttp_request *req, const char *route, const char *err) {
    MSP_WARN("webhook.redis_unavailable", NULL, "%s", err);
    gw_reply_error(gw, req, route, 503, "redis unavailable");
}

/* The checks after the tenant lookup (tenant_cache.c): the file comment's order. */
static void checked_tenant(gw_t *gw, struct evhttp_request *req, const gw_tc_view_t *t,
                           const char *route, const gw_webhook_then_t *then) {
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
    if (then->raw && then->raw(gw, req, tenant, data, len))
        return;
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
    then->parsed(gw, req, tenant, body);
}

void gw_webhook_open(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *route,
                     const gw_webhook_then_t *then) {
    if (!gw_valid_tenant_id(tenant)) {
        gw_webhook_reject(gw, req, route, NULL, 404, "unknown tenant \"%.*s\"",
                          MSP_UTF8_CUT(tenant, 64));
        return;
    }
    gw_tc_lookup(gw, req, tenant, route, checked_tenant, then);
}

void api_webhook_mtp(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    static const gw_webhook_then_t then = {.raw = incident_raw, .parsed = incident_opened};
    gw_webhook_open(gw, req, tenant, ROUTE, &then);
}
