/*
 * envelope.c — validation of raw.records envelopes (see envelope.h).
 *
 * Tenants become Redis hash tags and Kafka key prefixes, so a tenant id must be non-empty,
 * short, and free of the characters that would break either ('{', '}', '/', control bytes).
 */
#include "envelope.h"

#include <stdio.h>
#include <string.h>

#include <mspsync/json_pick.h>
#include <mspsync/model.h>
#include <mspsync/utf8.h>
#include <mspsync/vendor.h>

static const char *const type_names[NZ_TYPE_COUNT] = {"customer", "asset",  "incident",
                                                      "contact",  "ticket", "setting"};

const char *nz_type_name(nz_type_t type)
{
    return (unsigned)type < NZ_TYPE_COUNT ? type_names[type] : "unknown";
}

static const char *json_kind_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* The string member `name`, or NULL with a reason. */
static const char *need_string(const json_t *root, const char *name, size_t max, char *reason,
                               size_t reason_size)
{
    const json_t *v = json_object_get(root, name);
    if (!v) {
        snprintf(reason, reason_size, "envelope has no \"%s\"", name);
        return NULL;
    }
    if (!json_is_string(v)) {
        snprintf(reason, reason_size, "envelope \"%s\" is a JSON %s, not a string", name,
                 json_kind_name(v));
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t      n = json_string_length(v);
    if (n == 0) {
        snprintf(reason, reason_size, "envelope \"%s\" is empty", name);
        return NULL;
    }
    if (n > max) {
        snprintf(reason, reason_size, "envelope \"%s\" is longer than %zu bytes", name, max);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f || ch == '{' || ch == '}' || ch == '/') {
            snprintf(reason, reason_size,
                     "envelope \"%s\" contains a forbidden character (control, '{', '}' or '/')",
                     name);
            return NULL;
        }
    }
    return s;
}

/* How the envelope is picked: every member kept; the payload of a record whose vendor row lists
 * the members its mapping reads picked in the same pass, when kind, integration and type come
 * before it (they do in what the fetcher writes); any other payload's bytes handed back. */
typedef struct {
    msp_json_pick_t self;    /* the envelope's pick */
    msp_json_pick_t payload; /* its payload's (self.nested) */
    const char *const *list; /* the member list the payload was picked with, or NULL */
    int nest;                /* 0: never in the same pass */
} env_pick_t;

static msp_pick_t want_envelope(const char *name, void *arg)
{
    env_pick_t *e = arg;
    if (strcmp(name, "payload") != 0)
        return MSP_PICK_KEEP;
    e->list = NULL;
    const json_t *b = e->self.built;
    const char *kind = json_string_value(json_object_get(b, "kind"));
    const char *integ = json_string_value(json_object_get(b, "integration"));
    const char *type = json_string_value(json_object_get(b, "type"));
    const msp_vendor_type_t *vt =
        e->nest && kind && strcmp(kind, "record") == 0 && type
            ? msp_vendor_type(integ ? msp_vendor_find(integ) : msp_vendor_implied(), type)
            : NULL;
    if (!vt || !vt->pick)
        return MSP_PICK_SPAN;
    e->list = vt->pick;
    e->payload = (msp_json_pick_t){msp_pick_names, (void *)vt->pick, NULL, 0, NULL, NULL};
    e->self.nested = &e->payload;
    return MSP_PICK_NESTED;
}

/*
 * The payload of a record or incident, set into root (so env->payload is borrowed as before):
 * of a record type whose vendor row lists the members its mapping reads (Syncro's assets) only
 * those, of anything else all of it. NULL with reason[0] == '\0' when there is no payload; NULL
 * with a reason when it is not usable JSON.
 */
static const json_t *payload_load(const nz_envelope_t *env, json_t *root, const env_pick_t *ep,
                                  char *reason, size_t reason_size) {
    json_error_t    jerr;
    const msp_json_pick_t *pick = &ep->self;
    const msp_vendor_type_t *vt =
        env->kind == NZ_KIND_RECORD
            ? msp_vendor_type(msp_vendor_find(env->integration), nz_type_name(env->type))
            : NULL;
    msp_json_pick_t sel = {msp_pick_names, vt ? (void *)vt->pick : NULL, NULL, 0, NULL, NULL};
    int picked = vt && vt->pick;
    reason[0] = '\0';
    if (!pick->span)
        return NULL;
    /* picked with the envelope, by the members this row lists (not decided on a member that
     * came twice and changed after the payload) */
    if (ep->list && picked && ep->list == vt->pick)
        return json_object_get(root, "payload");
    json_t *payload = picked ? msp_json_pick(pick->span, pick->span_len, &sel, &jerr)
                             : json_loadb(pick->span, pick->span_len, JSON_DECODE_ANY, &jerr);
    if (!payload || json_object_set_new(root, "payload", payload) < 0) {
        snprintf(reason, reason_size, "payload is not usable JSON: %s", payload ? "out of memory"
                 : jerr.text);
        return NULL;
    }
    return payload;
}

int nz_envelope_parse(nz_envelope_t *env, const void *value, size_t len, char *reason,
                      size_t reason_size)
{
    json_error_t jerr;

    memset(env, 0, sizeof *env);
    if (!value || len == 0) {
        snprintf(reason, reason_size, "message has no value (empty or tombstone)");
        return -1;
    }
    /* The payload is built knowing what reads it: with the envelope, or last (payload_load). */
    env_pick_t ep = {.nest = 1};
    ep.self = (msp_json_pick_t){want_envelope, &ep, NULL, 0, NULL, NULL};
    json_t *root = msp_json_pick(value, len, &ep.self, &jerr);
    if (!root) {
        /* again without the payload in the same pass: its faults then get their own reason */
        ep.nest = 0;
        root = msp_json_pick(value, len, &ep.self, &jerr);
    }
    if (!root) {
        snprintf(reason, reason_size, "value is not JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(reason, reason_size, "value is a JSON %s, not an object", json_kind_name(root));
        goto fail;
    }

    const json_t *sv = json_object_get(root, "schema_version");
    if (sv && (!json_is_integer(sv) || json_integer_value(sv) < 1 ||
               json_integer_value(sv) > MSP_SCHEMA_VERSION)) {
        if (json_is_integer(sv))
            snprintf(reason, reason_size, "unsupported schema_version %" JSON_INTEGER_FORMAT
                     " (this normalizer knows 1..%d)", json_integer_value(sv), MSP_SCHEMA_VERSION);
        else
            snprintf(reason, reason_size, "schema_version is a JSON %s, not an integer",
                     json_kind_name(sv));
        goto fail;
    }

    const json_t *kind = json_object_get(root, "kind");
    const char   *ks   = json_string_value(kind);
    if (!ks) {
        snprintf(reason, reason_size, kind ? "envelope \"kind\" is a JSON %s, not a string"
                                           : "envelope has no \"kind\"%.0s",
                 kind ? json_kind_name(kind) : "");
        goto fail;
    }
    if (strcmp(ks, "record") == 0)
        env->kind = NZ_KIND_RECORD;
    else if (strcmp(ks, "sync_complete") == 0)
        env->kind = NZ_KIND_SYNC_COMPLETE;
    else if (strcmp(ks, "incident") == 0)
        env->kind = NZ_KIND_INCIDENT;
    else if (strcmp(ks, "edit") == 0)
        env->kind = NZ_KIND_EDIT;
    else if (strcmp(ks, "integration_removed") == 0)
        env->kind = NZ_KIND_REMOVED;
    else {
        snprintf(reason, reason_size, "unknown kind \"%.*s\" (expected \"record\", "
                 "\"sync_complete\", \"incident\", \"edit\" or \"integration_removed\")",
                 MSP_UTF8_CUT(ks, 64));
        goto fail;
    }
    env->integration = msp_vendor_implied()->name;
    if (json_object_get(root, "integration") &&
        !(env->integration = need_string(root, "integration", 32, reason, reason_size)))
        goto fail;
    if (env->kind == NZ_KIND_REMOVED) {
        if (!(env->tenant = need_string(root, "tenant", NZ_TENANT_MAX, reason, reason_size)))
            goto fail;
        env->type = NZ_TYPE_ASSET;
        env->root = root;
        return 0;
    }

    const json_t *type = json_object_get(root, "type");
    const char   *ts   = json_string_value(type);
    if (!ts) {
        snprintf(reason, reason_size, type ? "envelope \"type\" is a JSON %s, not a string"
                                           : "envelope has no \"type\"%.0s",
                 type ? json_kind_name(type) : "");
        goto fail;
    }
    int t = 0;
    while (t < NZ_TYPE_COUNT && (t == NZ_TYPE_INCIDENT || strcmp(ts, type_names[t]) != 0))
        t++;
    if (t < NZ_TYPE_COUNT && env->kind != NZ_KIND_INCIDENT)
        env->type = (nz_type_t)t;
    else if (strcmp(ts, "incident") == 0 && env->kind == NZ_KIND_INCIDENT)
        env->type = NZ_TYPE_INCIDENT;
    else if (env->kind == NZ_KIND_INCIDENT) {
        snprintf(reason, reason_size, "an incident envelope has type \"%.*s\" (expected "
                 "\"incident\")", MSP_UTF8_CUT(ts, 64));
        goto fail;
    } else {
        snprintf(reason, reason_size,
                 "unknown type \"%.*s\" (expected \"customer\", \"asset\", "
                 "\"contact\", \"ticket\" or \"setting\")",
                 MSP_UTF8_CUT(ts, 64));
        goto fail;
    }

    if (!(env->tenant = need_string(root, "tenant", NZ_TENANT_MAX, reason, reason_size)))
        goto fail;
    if (env->kind == NZ_KIND_EDIT) {
        if (env->type != NZ_TYPE_ASSET) {
            snprintf(reason, reason_size, "an edit envelope has type \"%.*s\" (expected \"asset\")",
                     MSP_UTF8_CUT(ts, 64));
            goto fail;
        }
        if (!(env->asset_id = need_string(root, "asset_id", 200, reason, reason_size)) ||
            !(env->edit_id = need_string(root, "edit_id", 64, reason, reason_size)))
            goto fail;
        env->fields = json_object_get(root, "fields");
        if (!json_is_object(env->fields)) {
            snprintf(reason, reason_size, "an edit envelope has no \"fields\" object");
            goto fail;
        }
        env->root = root;
        return 0;
    }
    if (env->kind != NZ_KIND_INCIDENT &&
        !(env->job_id = need_string(root, "job_id", NZ_JOB_ID_MAX, reason, reason_size)))
        goto fail;
    if (env->kind == NZ_KIND_SYNC_COMPLETE)
        env->partial = json_is_true(json_object_get(root, "partial"));

    if (env->kind == NZ_KIND_RECORD || env->kind == NZ_KIND_INCIDENT) {
        const json_t *payload = payload_load(env, root, &ep, reason, reason_size);
        if (!payload && reason[0])
            goto fail;
        if (!json_is_object(payload)) {
            snprintf(reason, reason_size, payload ? "record payload is a JSON %s, not an object"
                                                  : "record has no \"payload\"%.0s",
                     payload ? json_kind_name(payload) : "");
            goto fail;
        }
        env->payload = payload;
    }
    env->root = root;
    return 0;

fail:
    json_decref(root);
    memset(env, 0, sizeof *env);
    return -1;
}

void nz_envelope_clear(nz_envelope_t *env)
{
    if (!env)
        return;
    json_decref(env->root);
    memset(env, 0, sizeof *env);
}
