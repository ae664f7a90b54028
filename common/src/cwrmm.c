/*
 * cwrmm.c — the ConnectWise RMM client's pure part: URLs, the token request and answer, device
 * paging, error text, scopes, the mapping to canonical records and the stored integration.
 *
 * Like syncro.c it knows the vendor's shapes (NOTES.md, "ConnectWise RMM") and nothing about
 * event loops or retries; the token cache that talks to the network is cwrmm_token.c.
 *
 * Error text ends up on a status page, so it must be one short line of valid UTF-8. Rather than
 * keep a second copy of Syncro's bounded one-line writer, the text of a body goes through
 * msp_syncro_error_message(): it already renders {"message"}, {"errors":[..]}, text/plain and
 * HTML bodies the way both vendors need. Only the shapes Syncro never sends (OAuth
 * {"error","error_description"}, {"title","detail"}, {"error","description"}) are assembled here
 * and then passed through the same writer as a {"message":...} object, which sanitises them.
 * msp_cwrmm_describe() reuses msp_syncro_describe() for transport failures in the same way.
 *
 * Secrets: the client secret appears only in msp_cwrmm_token_body()'s result; nothing here logs.
 */
#include "mspsync/cwrmm.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "mspsync/errstr.h"
#include "mspsync/log.h"
#include "mspsync/model.h"
#include "mspsync/redis.h"
#include "mspsync/syncro.h"

#define CW_MESSAGE_MAX 200 /* characters of an error message, about */
#define CW_DEFAULT_EXPIRES_S 3599
#define CW_DASH " \xE2\x80\x94 "

/* ------------------------------------------------------------------ small helpers */

/* First 2*nbytes hex digits of SHA-256(data) into out (size >= 2*nbytes + 1). */
static void sha256_hex_prefix(const void *data, size_t len, char *out, size_t nbytes) {
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    out[0] = '\0';
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < nbytes)
        return;
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[2 * nbytes] = '\0';
}

/* Append "%XX"-encoded s (RFC 3986 unreserved characters kept). @returns 0 or -1 (no room). */
static int url_encode_into(const char *s, char *out, size_t out_size, size_t *len) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (*len + need >= out_size)
            return -1;
        if (plain) {
            out[(*len)++] = (char)*p;
        } else {
            out[(*len)++] = '%';
            out[(*len)++] = hex[*p >> 4];
            out[(*len)++] = hex[*p & 0xf];
        }
    }
    out[*len] = '\0';
    return 0;
}

static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A sanitised single line from text we assembled out of JSON strings (valid UTF-8): it goes
 * through Syncro's writer as {"message": text}. */
static void clean_line(long status, const char *text, char *out, size_t out_size) {
    json_t *obj = json_pack("{s:s}", "message", text);
    char *dump = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    if (!dump) {
        snprintf(out, out_size, "HTTP %ld", status);
        return;
    }
    msp_syncro_error_message(status, dump, strlen(dump), out, out_size);
    msp_json_free(dump);
}

/* A trimmed string of a JSON value, or NULL when it is not a string or blank. New reference. */
static json_t *trimmed(const json_t *v) {
    const char *s, *e;
    if (!json_is_string(v))
        return NULL;
    s = json_string_value(v);
    e = s + json_string_length(v);
    while (s < e && isspace((unsigned char)*s)) s++;
    while (e > s && isspace((unsigned char)e[-1])) e--;
    return e > s ? json_stringn(s, (size_t)(e - s)) : NULL;
}

static json_t *null_if_none(json_t *v) { return v ? v : json_null(); }

/* A string value as given (a vendor timestamp), null when not a non-empty string. */
static json_t *as_given(const json_t *v) {
    if (!json_is_string(v) || json_string_length(v) == 0)
        return json_null();
    return json_stringn(json_string_value(v), json_string_length(v));
}

static const json_t *member(const json_t *obj, const char *key) {
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

/* ------------------------------------------------------------------ URLs and bodies */

int msp_cwrmm_base_url(const char *region, const char *base_url, char *out, size_t out_size,
                       char *errstr, size_t errstr_size) {
    static const struct {
        const char *region, *url;
    } hosts[] = {
        {"na", "https://openapi.service.itsupport247.net"},
        {"eu", "https://openapi.service.euplatform.connectwise.com"},
        {"au", "https://openapi.service.auplatform.connectwise.com"},
    };
    int has_region = region && *region, has_base = base_url && *base_url;

    if (out && out_size)
        out[0] = '\0';
    if (!out || out_size == 0) {
        msp_set_err(errstr, errstr_size, "no room for the ConnectWise RMM base URL");
        return -1;
    }
    if (has_region == has_base) {
        msp_set_err(errstr, errstr_size, "%s",
                    has_region ? "set either the ConnectWise RMM region or a base URL, not both"
                               : "set the ConnectWise RMM region (na, eu or au) or a base URL");
        return -1;
    }
    if (has_region) {
        for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
            if (strcasecmp(region, hosts[i].region) != 0)
                continue;
            if ((size_t)snprintf(out, out_size, "%s", hosts[i].url) >= out_size) {
                out[0] = '\0';
                msp_set_err(errstr, errstr_size, "no room for the ConnectWise RMM base URL");
                return -1;
            }
            return 0;
        }
        char shown[16];
        size_t n = 0;
        for (const char *p = region; *p && n < sizeof(shown) - 1; p++)
            shown[n++] = (*p >= 0x20 && *p < 0x7f && *p != '"') ? *p : '?';
        shown[n] = '\0';
        msp_set_err(errstr, errstr_size, "unknown region \"%s%s\": expected na, eu or au", shown,
                    strlen(region) > n ? "..." : "");
        return -1;
    }

    return msp_vendor_base_url("ConnectWise RMM", base_url, out, out_size, errstr, errstr_size);
}

void msp_cwrmm_account_id(const char *base_url, const char *client_id, char *out,
                          size_t out_size) {
    const char *b = base_url ? base_url : "", *c = client_id ? client_id : "";
    size_t blen = strlen(b), clen = strlen(c);
    char *buf, hex[17];

    if (!out || out_size == 0)
        return;
    out[0] = '\0';
    buf = malloc(blen + 1 + clen + 1);
    if (!buf)
        return;
    for (size_t i = 0; i < blen; i++)
        buf[i] = (char)tolower((unsigned char)b[i]);
    buf[blen] = '\n';
    memcpy(buf + blen + 1, c, clen);
    sha256_hex_prefix(buf, blen + 1 + clen, hex, 8);
    free(buf);
    snprintf(out, out_size, "cw:%s", hex);
}

char *msp_cwrmm_token_body(const char *client_id, const char *client_secret, const char *scope) {
    json_t *obj;
    char *dump, *copy = NULL;

    obj = json_pack("{s:s, s:s, s:s, s:s}", "grant_type", "client_credentials", "client_id",
                    client_id ? client_id : "", "client_secret",
                    client_secret ? client_secret : "", "scope",
                    scope && *scope ? scope : MSP_CWRMM_SCOPES);
    if (!obj)
        return NULL;
    dump = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!dump)
        return NULL;
    /* The caller frees with free(); jansson's allocator may differ. The dump holds the secret. */
    copy = strdup(dump);
    msp_secure_zero(dump, strlen(dump));
    msp_json_free(dump);
    return copy;
}

/* expires_in from an integer, a whole real or a numeric string; -1 when unusable. */
static int64_t expires_value(const json_t *v) {
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : -1;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return d >= 1 && d < 9.0e15 ? (int64_t)d : -1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long long ll;
        while (isspace((unsigned char)*s)) s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        errno = 0;
        ll = strtoll(s, &end, 10);
        while (isspace((unsigned char)*end)) end++;
        return errno || *end || ll <= 0 ? -1 : (int64_t)ll;
    }
    return -1;
}

int msp_cwrmm_parse_token(const char *body, size_t len, char **token, int64_t *expires_in_s,
                          char *errstr, size_t errstr_size) {
    json_t *root, *at;
    int64_t exp;

    if (token)
        *token = NULL;
    if (expires_in_s)
        *expires_in_s = CW_DEFAULT_EXPIRES_S;
    if (!token) {
        msp_set_err(errstr, errstr_size, "no place for the token");
        return -1;
    }
    root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    if (!json_is_object(root)) {
        msp_set_err(errstr, errstr_size, "the ConnectWise RMM token answer is not a JSON object");
        json_decref(root);
        return -1;
    }
    at = json_object_get(root, "access_token");
    if (!json_is_string(at) || json_string_length(at) == 0) {
        msp_set_err(errstr, errstr_size, "the ConnectWise RMM token answer has no access_token");
        json_decref(root);
        return -1;
    }
    *token = strndup(json_string_value(at), json_string_length(at));
    exp = expires_value(json_object_get(root, "expires_in"));
    if (expires_in_s && exp > 0)
        *expires_in_s = exp;
    json_decref(root);
    if (!*token) {
        msp_set_err(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

int msp_cwrmm_devices_url(const char *base_url, int limit, const char *cursor, char *out,
                          size_t out_size) {
    /* One `field` value, comma-separated: the document's fieldV2WithLimit is a string (style
     * form), so a server may read only one of repeated `field=` parameters; at most 15. */
    static const char fields[] =
        "endpointID,friendlyName,deviceName,system,baseboard,os,macAddress,modifiedAt";
    size_t len;
    int n;

    if (!out || out_size == 0)
        return -1;
    out[0] = '\0';
    if (!base_url || limit < 1 || limit > 500)
        return -1;
    /* ',' is a sub-delim RFC 3986 allows in a query; the document's example sends it plain. */
    n = snprintf(out, out_size,
                 "%s/api/platform/v2/device/categories/all/endpoints?limit=%d&field=%s", base_url,
                 limit, fields);
    if (n < 0 || (size_t)n >= out_size)
        goto too_small;
    len = (size_t)n;
    if (cursor && *cursor) {
        if (len + strlen("&cursor=") >= out_size)
            goto too_small;
        memcpy(out + len, "&cursor=", strlen("&cursor=") + 1);
        len += strlen("&cursor=");
        if (url_encode_into(cursor, out, out_size, &len) != 0)
            goto too_small;
    }
    return 0;
too_small:
    out[0] = '\0';
    return -1;
}

char *msp_cwrmm_devices_body(const char *const *company_ids, size_t n) {
    json_t *obj, *ids;
    char *dump, *copy;

    if (n > 4 || (n > 0 && !company_ids))
        return NULL;
    ids = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!company_ids[i] || json_array_append_new(ids, json_string(company_ids[i])) != 0) {
            json_decref(ids);
            return NULL;
        }
    }
    obj = json_pack("{s:s, s:o}", "resourceType", "company", "resources", ids);
    dump = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!dump)
        return NULL;
    copy = strdup(dump);
    msp_json_free(dump);
    return copy;
}

char *msp_cwrmm_cursor_from_link(const char *link_next) {
    const char *q, *end, *p;

    if (!link_next)
        return NULL;
    q = strchr(link_next, '?');
    if (!q)
        return NULL;
    end = q + strcspn(q, "#");
    for (p = q + 1; p < end;) {
        size_t plen = strcspn(p, "&#");
        if (p + plen > end)
            plen = (size_t)(end - p);
        if (plen > 7 && strncmp(p, "cursor=", 7) == 0) {
            const char *v = p + 7, *ve = p + plen;
            char *out = malloc((size_t)(ve - v) + 1);
            size_t n = 0;
            if (!out)
                return NULL;
            /* '+' stays '+': cursors are opaque tokens, not form fields */
            while (v < ve) {
                int hi, lo;
                if (*v == '%' && ve - v >= 3 && (hi = hex_value(v[1])) >= 0 &&
                    (lo = hex_value(v[2])) >= 0) {
                    out[n++] = (char)(hi * 16 + lo);
                    v += 3;
                } else {
                    out[n++] = *v++;
                }
            }
            out[n] = '\0';
            if (n == 0 || strlen(out) != n) { /* empty, or an encoded NUL */
                free(out);
                return NULL;
            }
            return out;
        }
        p += plen;
        if (p < end)
            p++;
    }
    return NULL;
}

/* ------------------------------------------------------------------ errors */

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            return 0;
    return 1;
}

static const char *nonempty_string(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) && !blank(json_string_value(v), json_string_length(v))
               ? json_string_value(v)
               : NULL;
}

/*
 * The shapes Syncro never sends, assembled into one text: OAuth {"error","error_description"}
 * → "description (error)", the spec's Error {"error","description"} likewise, RFC 7807
 * {"title","detail"} → "title: detail"; {"message","error"} → the message (Syncro's order would
 * pick the code). NULL when the object is none of them. New string.
 */
static char *paired_message(const json_t *root) {
    const char *code = nonempty_string(root, "error");
    const char *desc = nonempty_string(root, "error_description");
    const char *title = nonempty_string(root, "title");
    const char *detail = nonempty_string(root, "detail");
    const char *message = nonempty_string(root, "message");
    char *out = NULL;

    if (!desc)
        desc = nonempty_string(root, "description");
    if (message && code) { /* {"message","error":"<code>"}: the sentence, not the code */
        out = strdup(message);
    } else if (code && desc && !message) {
        if (asprintf(&out, "%s (%s)", desc, code) < 0)
            out = NULL;
    } else if (title && detail && !message) {
        if (asprintf(&out, "%s: %s", title, detail) < 0)
            out = NULL;
    } else if (title && !message && !code && !json_object_get(root, "errors")) {
        out = strdup(title);
    }
    return out;
}

void msp_cwrmm_error_message(long status, const char *body, size_t len, char *out,
                             size_t out_size) {
    size_t cap;
    json_t *root;
    char *paired = NULL;

    if (!out || out_size == 0)
        return;
    out[0] = '\0';
    /* ~200 characters: a longer message is cut at a character boundary by the writer */
    cap = out_size < CW_MESSAGE_MAX + 1 ? out_size : CW_MESSAGE_MAX + 1;
    if (!body || len == 0 || blank(body, len)) {
        snprintf(out, out_size, "HTTP %ld (empty body)", status);
        return;
    }
    root = json_loadb(body, len, 0, NULL);
    if (json_is_object(root))
        paired = paired_message(root);
    json_decref(root);
    if (paired) {
        clean_line(status, paired, out, cap);
        free(paired);
    } else {
        msp_syncro_error_message(status, body, len, out, cap);
    }
    if (!out[0])
        snprintf(out, out_size, "HTTP %ld", status);
}

#define CW_MAX_SEGMENTS 12

/* Path segments of "/a/b/c?x" without the query: up to CW_MAX_SEGMENTS. @returns the count. */
static size_t split_path(const char *path, const char *seg[CW_MAX_SEGMENTS],
                         size_t seglen[CW_MAX_SEGMENTS]) {
    size_t n = 0, end;
    const char *p = path;

    while (*p == '/')
        p++;
    end = strcspn(p, "?#");
    while (end > 0 && n < CW_MAX_SEGMENTS) {
        size_t l = 0;
        while (l < end && p[l] != '/')
            l++;
        if (l > 0) {
            seg[n] = p;
            seglen[n++] = l;
        }
        if (l >= end)
            break;
        p += l + 1;
        end -= l + 1;
    }
    return n;
}

const char *msp_cwrmm_scope_for(const char *method, const char *path) {
    const char *seg[CW_MAX_SEGMENTS];
    size_t seglen[CW_MAX_SEGMENTS], n;
    int get, post, put;

    if (!method || !path)
        return NULL;
    n = split_path(path, seg, seglen);
    get = strcasecmp(method, "GET") == 0;
    post = strcasecmp(method, "POST") == 0;
    put = strcasecmp(method, "PUT") == 0 || strcasecmp(method, "PATCH") == 0;

#define SEG(i, lit) ((i) < n && seglen[i] == sizeof(lit) - 1 && strncmp(seg[i], lit, seglen[i]) == 0)
    if (n < 4 || !SEG(0, "api") || !SEG(1, "platform"))
        return NULL;
    if (SEG(2, "v1") && SEG(3, "company") && SEG(4, "companies")) {
        if (n == 5 && get)
            return "platform.companies.read";
        if (n == 6 && get)
            return "platform.companies.read";
        if (n == 7 && get && SEG(6, "sites"))
            return "platform.sites.read";
        return NULL;
    }
    if (SEG(2, "v1") && SEG(3, "custom-field") && SEG(4, "definitions") && n <= 6) {
        if (get)
            return "platform.custom_fields_definitions.read";
        if (post || put || strcasecmp(method, "DELETE") == 0)
            return "platform.custom_fields_definitions.write";
        return NULL;
    }
    if (SEG(2, "v2") && SEG(3, "device")) {
        /* POST .../device/categories/{cat}/endpoints: the device list */
        if (n == 7 && post && SEG(4, "categories") && SEG(6, "endpoints"))
            return "platform.devices.read";
        /* GET .../device/companies/{c}/sites/{s}/endpoints/{id}: one device */
        if (n == 10 && get && SEG(4, "companies") && SEG(6, "sites") && SEG(8, "endpoints"))
            return "platform.devices.read";
        /* .../device/endpoints/{id}/custom-fields: values */
        if (n == 7 && SEG(4, "endpoints") && SEG(6, "custom-fields")) {
            if (get)
                return "platform.custom_fields_values.read";
            if (put)
                return "platform.custom_fields_values.write";
        }
    }
#undef SEG
    return NULL;
}

static int is_token_path(const char *path) {
    const char *seg[CW_MAX_SEGMENTS];
    size_t seglen[CW_MAX_SEGMENTS];
    size_t n = split_path(path, seg, seglen);
    return n == 2 && seglen[0] == 2 && strncmp(seg[0], "v1", 2) == 0 && seglen[1] == 5 &&
           strncmp(seg[1], "token", 5) == 0;
}

char *msp_cwrmm_describe(const msp_http_response_t *res, const char *method, const char *path,
                         char *out, size_t out_size) {
    const char *p = path ? path : "";
    char msg[CW_MESSAGE_MAX + 8];
    size_t len;
    int n;

    if (!out || out_size == 0)
        return out;
    out[0] = '\0';
    while (*p == '/')
        p++;

    if (!res || res->status == 0)
        return msp_vendor_describe_transport("ConnectWise RMM", res, method, p, out, out_size);

    msp_cwrmm_error_message(res->status, res->body, res->body ? res->body_len : 0, msg,
                            sizeof(msg));
    n = snprintf(out, out_size, "ConnectWise RMM %s /%.*s answered %ld: %s",
                 method ? method : "?", (int)strcspn(p, "?#"), p, res->status, msg);
    if (n < 0 || (size_t)n >= out_size)
        return out;
    len = (size_t)n;

    if (res->status == 401 && is_token_path(p)) {
        snprintf(out + len, out_size - len, CW_DASH "the client id or secret is wrong or revoked");
    } else if (res->status == 401) {
        snprintf(out + len, out_size - len, CW_DASH "the token was rejected (expired or revoked)");
    } else if (res->status == 423 && is_token_path(p)) {
        snprintf(out + len, out_size - len,
                 CW_DASH "the API key is locked for asking for too many tokens; it unlocks by "
                         "itself");
    } else if (res->status == 403) {
        const char *scope = msp_cwrmm_scope_for(method, p);
        if (scope)
            snprintf(out + len, out_size - len, CW_DASH "the API client lacks the scope \"%s\"",
                     scope);
        else
            snprintf(out + len, out_size - len,
                     CW_DASH "the API client lacks a scope this call needs");
    } else if (res->status == 429) {
        if (res->retry_after_ms >= 0)
            snprintf(out + len, out_size - len, CW_DASH "rate limited; it asked to wait %lld s",
                     (long long)((res->retry_after_ms + 999) / 1000));
        else
            snprintf(out + len, out_size - len, CW_DASH "rate limited");
    }
    return out;
}

/* ------------------------------------------------------------------ mapping */

/* A non-empty (trimmed) string id, else -1 with errstr naming what was there. */
static int string_id(const char *kind, const char *field, const char *tenant, const json_t *raw,
                     char *id, size_t id_size, char *errstr, size_t errstr_size) {
    json_t *v;
    if (!tenant || !*tenant) {
        msp_set_err(errstr, errstr_size, "%s mapping needs a tenant", kind);
        return -1;
    }
    if (!json_is_object(raw)) {
        msp_set_err(errstr, errstr_size, "%s payload is not a JSON object", kind);
        return -1;
    }
    v = trimmed(json_object_get(raw, field));
    if (!v) {
        msp_set_err(errstr, errstr_size, "%s payload has no usable string id (\"%s\" is %s)", kind,
                    field, json_object_get(raw, field) ? "not a non-empty string" : "missing");
        return -1;
    }
    if (json_string_length(v) >= id_size) {
        msp_set_err(errstr, errstr_size, "%s payload has an id longer than %zu characters", kind,
                    id_size - 1);
        json_decref(v);
        return -1;
    }
    snprintf(id, id_size, "%s", json_string_value(v));
    json_decref(v);
    return 0;
}

static json_t *cw_record_head(const char *tenant, const char *kind, const char *id) {
    char cid[160];
    json_t *rec = json_object();

    snprintf(cid, sizeof(cid), "cwrmm:%s", id);
    json_object_set_new(rec, "schema_version", json_integer(MSP_SCHEMA_VERSION));
    json_object_set_new(rec, "tenant", json_string(tenant));
    json_object_set_new(rec, "id", json_string(cid));
    json_object_set_new(rec, "kind", json_string(kind));
    json_object_set_new(rec, "sources",
                        json_pack("[{s:s, s:s}]", "integration", "cwrmm", "id", id));
    return rec;
}

/* "cwrmm:<trimmed string or positive integer>" or null. */
static json_t *cw_ref(const json_t *v) {
    char buf[160];
    json_t *t;
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        snprintf(buf, sizeof(buf), "cwrmm:%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(buf);
    }
    t = trimmed(v);
    if (!t)
        return json_null();
    if (json_string_length(t) + 7 > sizeof(buf)) {
        json_decref(t);
        return json_null();
    }
    snprintf(buf, sizeof(buf), "cwrmm:%s", json_string_value(t));
    json_decref(t);
    return json_string(buf);
}

json_t *msp_map_cwrmm_company(const char *tenant, const json_t *raw, char *errstr,
                              size_t errstr_size) {
    char id[128];
    const json_t *active;
    json_t *rec;

    if (string_id("company", "id", tenant, raw, id, sizeof(id), errstr, errstr_size) != 0)
        return NULL;
    active = member(json_object_get(raw, "activityStatus"), "activeFlag");
    rec = cw_record_head(tenant, "customer", id);
    json_object_set_new(rec, "name", null_if_none(trimmed(json_object_get(raw, "friendlyName"))));
    json_object_set_new(rec, "email", json_null());
    json_object_set_new(rec, "phone", json_null());
    json_object_set_new(rec, "disabled",
                        json_is_boolean(active) ? json_boolean(!json_is_true(active)) : json_null());
    json_object_set_new(rec, "updated_at", as_given(json_object_get(raw, "updatedDate")));
    json_object_set_new(rec, "gone", json_false());
    return rec;
}

static int mac_cmp(const void *a, const void *b) { return strcmp(a, b); }

/* macAddress[] normalized, placeholders dropped, sorted, unique (model.h). */
static json_t *cw_macs(const json_t *list) {
    json_t *out = json_array();
    size_t n = json_array_size(list), count = 0;
    char (*macs)[18];

    if (n == 0)
        return out;
    macs = calloc(n, sizeof(*macs));
    if (!macs)
        return out;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(list, i);
        if (json_is_string(v) && msp_normalize_mac(json_string_value(v), macs[count]) == 0 &&
            strcmp(macs[count], "00:00:00:00:00:00") != 0 &&
            strcmp(macs[count], "FF:FF:FF:FF:FF:FF") != 0)
            count++;
    }
    qsort(macs, count, sizeof(*macs), mac_cmp);
    for (size_t i = 0; i < count; i++)
        if (i == 0 || strcmp(macs[i], macs[i - 1]) != 0)
            json_array_append_new(out, json_string(macs[i]));
    free(macs);
    return out;
}

/* ------------------------------------------------------------------ the date custom fields */

int msp_cwrmm_field_name_is(const char *name, const char *want) {
    const char *e;
    size_t n;

    if (!name || !want)
        return 0;
    while (isspace((unsigned char)*name))
        name++;
    e = name + strlen(name);
    while (e > name && isspace((unsigned char)e[-1]))
        e--;
    n = (size_t)(e - name);
    return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

int msp_cwrmm_date_definitions(const json_t *defs, char ids[2][MSP_CWRMM_ATTR_ID_SIZE]) {
    static const char *const names[2] = {[MSP_CWRMM_DATE_PURCHASE] = MSP_CWRMM_FIELD_PURCHASE,
                                         [MSP_CWRMM_DATE_WARRANTY] = MSP_CWRMM_FIELD_WARRANTY};
    int exact[2] = {0, 0}, found = 0;
    size_t i;
    const json_t *d;

    if (!ids)
        return 0;
    ids[0][0] = ids[1][0] = '\0';
    json_array_foreach(defs, i, d) {
        const char *name = json_string_value(member(d, "name"));
        const char *id = json_string_value(member(d, "id"));
        const json_t *et = member(d, "entityType");

        if (!name || !id || !*id || strlen(id) >= MSP_CWRMM_ATTR_ID_SIZE)
            continue;
        if (et && !(json_is_string(et) && strcmp(json_string_value(et), "endpoint") == 0))
            continue;
        for (int f = 0; f < 2; f++) {
            if (exact[f] || !msp_cwrmm_field_name_is(name, names[f]))
                continue;
            if (ids[f][0] && strcmp(name, names[f]) != 0)
                continue; /* a first match stays unless this one is named exactly */
            snprintf(ids[f], MSP_CWRMM_ATTR_ID_SIZE, "%s", id);
            exact[f] = strcmp(name, names[f]) == 0;
        }
    }
    for (int f = 0; f < 2; f++)
        found += ids[f][0] != '\0';
    return found;
}

/* The date a custom field named `name` (msp_cwrmm_field_name_is) holds in customFieldValues,
 * or null. */
static json_t *cw_field_date(const json_t *values, const char *name) {
    size_t i;
    const json_t *item;

    json_array_foreach(values, i, item) {
        int match = msp_cwrmm_field_name_is(json_string_value(member(item, "name")), name);
        const json_t *v = member(item, "value");
        char date[11];
        if (match && json_is_string(v) && msp_date_normalize(json_string_value(v), date) == 0)
            return json_string(date);
        if (match)
            return json_null();
    }
    return json_null();
}

json_t *msp_map_cwrmm_device(const char *tenant, const json_t *raw, char *errstr,
                             size_t errstr_size) {
    char id[128];
    const json_t *sys, *board, *os, *cfv;
    json_t *rec, *name, *serial, *os_rec = json_null(), *os_name, *os_build;

    if (string_id("device", "endpointID", tenant, raw, id, sizeof(id), errstr, errstr_size) != 0)
        return NULL;
    sys = json_object_get(raw, "system");
    board = json_object_get(raw, "baseboard");
    os = json_object_get(raw, "os");

    name = trimmed(json_object_get(raw, "friendlyName"));
    if (!name)
        name = trimmed(json_object_get(raw, "deviceName"));
    serial = trimmed(member(sys, "serialNumber"));
    if (!serial)
        serial = trimmed(member(board, "serialNumber"));
    os_name = trimmed(member(os, "product"));
    os_build = trimmed(member(os, "version"));
    if (os_name || os_build)
        os_rec = json_pack("{s:o, s:o}", "name", null_if_none(os_name), "build",
                           null_if_none(os_build));

    rec = cw_record_head(tenant, "asset", id);
    json_object_set_new(rec, "name", null_if_none(name));
    json_object_set_new(rec, "asset_type", json_null());
    json_object_set_new(rec, "serial", null_if_none(serial));
    json_object_set_new(rec, "manufacturer", null_if_none(trimmed(member(board, "manufacturer"))));
    json_object_set_new(rec, "model", null_if_none(trimmed(member(sys, "model"))));
    json_object_set_new(rec, "form_factor", json_null());
    json_object_set_new(rec, "os", os_rec ? os_rec : json_null());
    json_object_set_new(rec, "macs", cw_macs(json_object_get(raw, "macAddress")));
    json_object_set_new(rec, "customer_ref", cw_ref(json_object_get(raw, "companyID")));
    json_object_set_new(rec, "site_ref", cw_ref(json_object_get(raw, "siteID")));
    json_object_set_new(rec, "updated_at", as_given(json_object_get(raw, "modifiedAt")));
    json_object_set_new(rec, "gone", json_false());

    /* customFieldValues absent (or not a list) = the dates were not read: no "dates" at all */
    cfv = json_object_get(raw, "customFieldValues");
    if (json_is_array(cfv))
        json_object_set_new(rec, "dates",
                            json_pack("{s:o, s:o}", "purchase",
                                      cw_field_date(cfv, MSP_CWRMM_FIELD_PURCHASE), "warranty",
                                      cw_field_date(cfv, MSP_CWRMM_FIELD_WARRANTY)));
    return rec;
}

/* ------------------------------------------------------------------ stored integration */

void msp_cwrmm_integration_clear(msp_cwrmm_integration_t *in) {
    if (!in)
        return;
    if (in->client_secret) {
        if (in->redacted)
            msp_log_unredact(in->client_secret);
        msp_secure_zero(in->client_secret, strlen(in->client_secret));
        free(in->client_secret);
    }
    msp_secure_zero(in, sizeof(*in));
}

static const char *reply_str(const redisReply *r) {
    return r && r->type == REDIS_REPLY_STRING && r->len > 0 ? r->str : NULL;
}

const char *const msp_cwrmm_integration_fields[] = {
    "base_url",   "client_id", "client_secret_sealed", "writeback_purchase", "writeback_warranty",
    "account_id", NULL};

int msp_cwrmm_integration_load(redisContext *c, const msp_secret_key_t *key, const char *tenant,
                               msp_cwrmm_integration_t *out, char *err, size_t err_size) {
    char k[256];
    if (!out)
        return -1;
    msp_cwrmm_integration_clear(out);
    if (!tenant || !*tenant || msp_key(k, sizeof(k), tenant, "integration:cwrmm") < 0) {
        msp_set_err(err, err_size, "invalid tenant");
        return -1;
    }
    const char *argv[8] = {"HMGET", k};
    int argc = 2;
    for (const char *const *f = msp_cwrmm_integration_fields; *f; f++)
        argv[argc++] = *f;
    redisReply *r = c ? redisCommandArgv(c, argc, argv, NULL) : NULL;
    int rc = msp_cwrmm_integration_from_reply(r, c && c->errstr[0] ? c->errstr : NULL, key, tenant,
                                              out, err, err_size);
    if (r)
        freeReplyObject(r);
    return rc;
}

int msp_cwrmm_integration_from_reply(const redisReply *r, const char *rerr,
                                     const msp_secret_key_t *key, const char *tenant,
                                     msp_cwrmm_integration_t *out, char *err, size_t err_size) {
    char aad[256], tag[96];
    const char *base, *cid, *sealed, *acct;
    size_t slen = 0;
    msp_cwrmm_integration_clear(out);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 6) {
        msp_set_err(err, err_size, "redis: %s",
                    r && r->type == REDIS_REPLY_ERROR ? r->str
                    : rerr && rerr[0]                 ? rerr
                                                      : "no reply");
        return -1;
    }
    base = reply_str(r->element[0]);
    cid = reply_str(r->element[1]);
    sealed = reply_str(r->element[2]);
    acct = reply_str(r->element[5]);
    if (!base || !cid || !sealed) {
        msp_set_err(err, err_size, "tenant \"%s\" has no ConnectWise RMM integration", tenant);
        return 1;
    }
    snprintf(out->base_url, sizeof(out->base_url), "%s", base);
    snprintf(out->client_id, sizeof(out->client_id), "%s", cid);
    if (acct)
        snprintf(out->account, sizeof(out->account), "%s", acct);
    else
        msp_cwrmm_account_id(out->base_url, out->client_id, out->account, sizeof(out->account));
    snprintf(tag, sizeof(tag), "cwrmm:%s", out->account);
    msp_key(out->bucket_key, sizeof(out->bucket_key), tag, "rl");
    out->writeback_purchase = reply_str(r->element[3]) && strcmp(r->element[3]->str, "1") == 0;
    out->writeback_warranty = reply_str(r->element[4]) && strcmp(r->element[4]->str, "1") == 0;

    snprintf(aad, sizeof(aad), "%s/cwrmm", tenant);
    out->client_secret = msp_secret_open(key, aad, sealed, &slen);
    if (!out->client_secret) {
        msp_set_err(err, err_size,
                    "the stored ConnectWise RMM client secret cannot be decrypted (was "
                    "MSPSYNC_SECRET_KEY changed?)");
        return 2;
    }
    msp_log_redact(out->client_secret);  /* while this copy is kept: clear forgets it */
    out->redacted = 1;
    return 0;
}
