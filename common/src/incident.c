/*
 * incident.c — canonical incidents (see incident.h).
 */
#include "mspsync/incident.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "mspsync/model.h"
#include "mspsync/tzif.h"
#include "mspsync/utf8.h"

static const char *const SEVERITIES[] = {"info", "low", "medium", "high", "critical", NULL};

/* SHA-256 over parts, each preceded by its length as 8 hex digits. */
static void digest_parts(const char *const *parts, int n, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (int i = 0; ok && i < n; i++) {
        const char *p = parts[i] ? parts[i] : "";
        char hdr[16];
        int hl = snprintf(hdr, sizeof(hdr), "%08zx", strlen(p));
        ok = EVP_DigestUpdate(ctx, hdr, (size_t)hl) == 1 && EVP_DigestUpdate(ctx, p, strlen(p)) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        out[0] = '\0';
        return;
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void msp_incident_fingerprint(const char *tenant, const char *source, const char *alert_type,
                              const char *subject, const char *incident_id, char out[65]) {
    const char *parts[] = {"incident/v1", tenant, source, alert_type, subject, incident_id};
    digest_parts(parts, 6, out);
}

void msp_incident_event_id(const char *fingerprint, const char *status, const char *occurred_at,
                           char out[65]) {
    const char *parts[] = {"event/v1", fingerprint, status, occurred_at};
    digest_parts(parts, 4, out);
}

/* A string member (trimmed of nothing: the gateway validated it) or an integer as decimal text.
 * @returns 1 set (*out new reference), 0 absent/null, -1 wrong type. */
static int text_member(const json_t *o, const char *name, json_t **out) {
    const json_t *v = json_object_get(o, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0)
            return 0;
        *out = json_stringn(json_string_value(v), json_string_length(v));
        return *out ? 1 : -1;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = json_string(buf);
        return *out ? 1 : -1;
    }
    return -1;
}

json_t *msp_map_mtp_incident(const char *tenant, const json_t *payload, const char *received_at,
                             char *errstr, size_t errstr_size) {
    static const char *const required[] = {"id", "org_id", "alert_type", "status", "title",
                                           "occurred_at"};
    static const char *const optional[] = {"org_name", "severity", "subject", "description",
                                           "link"};
    if (!tenant || !tenant[0]) {
        snprintf(errstr, errstr_size, "incident has no tenant");
        return NULL;
    }
    if (!json_is_object(payload)) {
        snprintf(errstr, errstr_size, "incident payload is not a JSON object");
        return NULL;
    }
    json_t *c = json_object();
    if (!c) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    json_object_set_new(c, "schema_version", json_integer(MSP_SCHEMA_VERSION));
    json_object_set_new(c, "tenant", json_string(tenant));
    json_object_set_new(c, "source", json_string("mtp"));
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        json_t *v;
        if (text_member(payload, required[i], &v) != 1) {
            snprintf(errstr, errstr_size, "incident payload has no usable \"%s\"", required[i]);
            json_decref(c);
            return NULL;
        }
        json_object_set_new(c, strcmp(required[i], "id") == 0 ? "incident_id" : required[i], v);
    }
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
        json_t *v;
        if (text_member(payload, optional[i], &v) < 0) {
            snprintf(errstr, errstr_size, "incident payload \"%s\" is not a string", optional[i]);
            json_decref(c);
            return NULL;
        }
        json_object_set_new(c, optional[i], v ? v : json_null());
    }
    const char *status = json_string_value(json_object_get(c, "status"));
    if (strcmp(status, "open") != 0 && strcmp(status, "resolved") != 0) {
        snprintf(errstr, errstr_size, "incident status \"%.*s\" is neither \"open\" nor \"resolved\"",
                 MSP_UTF8_CUT(status, 32));
        json_decref(c);
        return NULL;
    }
    const char *sev = json_string_value(json_object_get(c, "severity"));
    if (sev) {
        int known = 0;
        for (int i = 0; SEVERITIES[i]; i++)
            known |= strcmp(sev, SEVERITIES[i]) == 0;
        if (!known)
            json_object_set_new(c, "severity", json_null());
    }
    if (json_is_null(json_object_get(c, "subject")))
        json_object_set(c, "subject", json_object_get(c, "org_id"));
    json_object_set_new(c, "received_at", received_at ? json_string(received_at) : json_null());

    char fp[65], ev[65];
    msp_incident_fingerprint(tenant, "mtp", json_string_value(json_object_get(c, "alert_type")),
                             json_string_value(json_object_get(c, "subject")),
                             json_string_value(json_object_get(c, "incident_id")), fp);
    msp_incident_event_id(fp, status, json_string_value(json_object_get(c, "occurred_at")), ev);
    if (!fp[0] || !ev[0]) {
        snprintf(errstr, errstr_size, "could not compute the incident fingerprint");
        json_decref(c);
        return NULL;
    }
    json_object_set_new(c, "fingerprint", json_string(fp));
    json_object_set_new(c, "event_id", json_string(ev));
    return c;
}

int msp_event_marker(char *buf, size_t size, const char *event_id, const char *occurred_at) {
    /* Only a date-time that reads back (ASCII, short): a cut marker could split a character. */
    int64_t t;
    int plain = !occurred_at || strlen(occurred_at) > 64 || msp_rfc3339_parse(occurred_at, &t) != 0;
    if (plain)
        return snprintf(buf, size, "%s%s", MSP_EVENT_MARKER, event_id ? event_id : "");
    return snprintf(buf, size, "%s%s%s%s", MSP_EVENT_MARKER, event_id ? event_id : "",
                    MSP_EVENT_OCCURRED, occurred_at);
}

int msp_event_marker_latest(const char *text, int64_t *ms) {
    const size_t mlen = strlen(MSP_EVENT_MARKER), olen = strlen(MSP_EVENT_OCCURRED);
    int found = 0;
    for (const char *p = text ? strstr(text, MSP_EVENT_MARKER) : NULL; p;
         p = strstr(p, MSP_EVENT_MARKER)) {
        p += mlen;
        size_t hex = strspn(p, "0123456789abcdef");
        if (hex != 64 || strncmp(p + hex, MSP_EVENT_OCCURRED, olen) != 0)
            continue;
        const char *v = p + hex + olen;
        size_t n = strcspn(v, " \t\r\n");
        char when[72];
        int64_t t;
        if (n == 0 || n >= sizeof(when))
            continue;
        memcpy(when, v, n);
        when[n] = '\0';
        if (msp_rfc3339_parse(when, &t) != 0)
            continue;
        if (!found || t > *ms)
            *ms = t;
        found = 1;
    }
    return found;
}
