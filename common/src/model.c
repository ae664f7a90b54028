/*
 * model.c — Syncro customers and assets to canonical records, and the canonical forms of MACs and
 * dates that every vendor's mapper uses.
 *
 * The mapper is total over optional facts: a missing, empty or wrongly typed optional field
 * becomes JSON null (macs: []), it never fails the record. Only a payload that is not an object
 * or has no usable vendor id fails, because without an id the record cannot be keyed; the caller
 * dead-letters it with errstr as the reason.
 *
 * Output keys are inserted in the documented order (jansson keeps insertion order), so the
 * canonical JSON reads like the example in model.h. The fingerprint sorts keys and so does not
 * depend on that order.
 */
#include "mspsync/model.h"
#include "mspsync/crypto.h"
#include "mspsync/errstr.h"
#include "mspsync/json_dump.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

/* A trimmed copy of a JSON string as a new JSON string; NULL when not a string or blank. */
static json_t *trimmed_string(const json_t *v) {
    if (!json_is_string(v)) return NULL;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    size_t b = 0, e = len;
    while (b < e && isspace((unsigned char)s[b])) b++;
    while (e > b && isspace((unsigned char)s[e - 1])) e--;
    if (b == e) return NULL;
    return json_stringn(s + b, e - b);
}

/* A string copied as given (not trimmed: it is a vendor timestamp); null when not a string or
 * empty. New reference. */
static json_t *copied_string(const json_t *v) {
    if (!json_is_string(v) || json_string_length(v) == 0) return json_null();
    return json_stringn(json_string_value(v), json_string_length(v));
}

/* json null when v is NULL (steals v). */
static json_t *or_null(json_t *v) { return v ? v : json_null(); }

static json_t *obj_get(const json_t *obj, const char *key) {
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

/*
 * A vendor id: a positive JSON integer, or a string of decimal digits whose value is a positive
 * int64. @returns 0 and the canonical decimal form in out, or -1.
 */
static int parse_vendor_id(const json_t *v, char out[24]) {
    int64_t id = 0;
    if (json_is_integer(v)) {
        id = (int64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 0 || len > 19) return -1;
        for (size_t i = 0; i < len; i++)
            if (s[i] < '0' || s[i] > '9') return -1;
        errno = 0;
        char *end = NULL;
        long long ll = strtoll(s, &end, 10);
        if (errno || *end) return -1;
        id = (int64_t)ll;
    } else {
        return -1;
    }
    if (id <= 0) return -1;
    snprintf(out, 24, "%" PRId64, id);
    return 0;
}

/* Describe what an id field held, for the dead-letter reason. */
static void describe_value(const json_t *v, char *buf, size_t size) {
    char tmp[64];
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        size_t n = 0;
        /* printable ASCII only, shortened: this text ends up in logs and DLQ headers */
        for (size_t i = 0; i < len && n < 40; i++)
            tmp[n++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
        tmp[n] = '\0';
        snprintf(buf, size, "got string \"%s\"%s", tmp, len > 40 ? "..." : "");
        break;
    }
    case JSON_INTEGER:
        snprintf(buf, size, "got integer %" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: snprintf(buf, size, "got real %g", json_real_value(v)); break;
    case JSON_TRUE: snprintf(buf, size, "got true"); break;
    case JSON_FALSE: snprintf(buf, size, "got false"); break;
    case JSON_NULL: snprintf(buf, size, "got null"); break;
    case JSON_OBJECT: snprintf(buf, size, "got object"); break;
    case JSON_ARRAY: snprintf(buf, size, "got array"); break;
    default: snprintf(buf, size, "got unknown"); break;
    }
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    default: return "unknown";
    }
}

/* Check the payload and extract its id; errstr names the kind ("customer"/"asset"). */
static int payload_id(const char *kind, const char *tenant, const json_t *raw, char id[24],
                      char *errstr, size_t errstr_size) {
    if (!tenant || !*tenant) {
        msp_set_err(errstr, errstr_size, "%s mapping needs a tenant", kind);
        return -1;
    }
    if (!raw) {
        msp_set_err(errstr, errstr_size, "%s payload is missing", kind);
        return -1;
    }
    if (!json_is_object(raw)) {
        msp_set_err(errstr, errstr_size, "%s payload is not a JSON object (got %s)", kind,
                type_name(raw));
        return -1;
    }
    const json_t *v = json_object_get(raw, "id");
    if (!v) {
        msp_set_err(errstr, errstr_size, "%s payload has no usable integer id (no \"id\" field)",
                kind);
        return -1;
    }
    if (parse_vendor_id(v, id) != 0) {
        char what[96];
        describe_value(v, what, sizeof(what));
        msp_set_err(errstr, errstr_size, "%s payload has no usable integer id (%s)", kind, what);
        return -1;
    }
    return 0;
}

/* The common head of every canonical record. */
static json_t *record_head(const char *tenant, const char *kind, const char *vendor_id) {
    char cid[40];
    snprintf(cid, sizeof(cid), "syncro:%s", vendor_id);
    json_t *rec = json_object();
    json_t *sources = json_array();
    json_array_append_new(sources,
                          json_pack("{s:s, s:s}", "integration", "syncro", "id", vendor_id));
    json_object_set_new_nocheck(rec, "schema_version", json_integer(MSP_SCHEMA_VERSION));
    json_object_set_new_nocheck(rec, "tenant", json_string(tenant));
    json_object_set_new_nocheck(rec, "id", json_string(cid));
    json_object_set_new_nocheck(rec, "kind", json_string(kind));
    json_object_set_new_nocheck(rec, "sources", sources);
    return rec;
}

/* "syncro:<id>" for a vendor id v (another record's: customer_id, contact_id), else null. New. */
static json_t *syncro_ref(const json_t *v) {
    char ref[40];
    if (parse_vendor_id(v, ref + 7) != 0)
        return json_null();
    memcpy(ref, "syncro:", 7);
    return json_string(ref);
}

/* ---------------------------------------------------------------------------------------------
 * Customers
 * ------------------------------------------------------------------------------------------- */

static json_t *customer_name(const json_t *raw) {
    static const char *const order[] = {"business_then_name", "business_name", "fullname"};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        json_t *s = trimmed_string(json_object_get(raw, order[i]));
        if (s) return s;
    }
    json_t *first = trimmed_string(json_object_get(raw, "firstname"));
    json_t *last = trimmed_string(json_object_get(raw, "lastname"));
    json_t *name = NULL;
    if (first && last) {
        size_t n = json_string_length(first) + 1 + json_string_length(last);
        char *buf = malloc(n + 1);
        if (buf) {
            snprintf(buf, n + 1, "%s %s", json_string_value(first), json_string_value(last));
            name = json_stringn(buf, n);
            free(buf);
        }
    } else if (first) {
        name = json_incref(first);
    } else if (last) {
        name = json_incref(last);
    }
    json_decref(first);
    json_decref(last);
    return name;
}

/* true/false, also Syncro's string flags "true"/"false"; anything else null. */
static json_t *flag(const json_t *v) {
    if (json_is_boolean(v)) return json_boolean(json_is_true(v));
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "true") == 0) return json_true();
        if (strcmp(json_string_value(v), "false") == 0) return json_false();
    }
    return json_null();
}

json_t *msp_map_syncro_customer(const char *tenant, const json_t *raw, char *errstr,
                                size_t errstr_size) {
    char id[24];
    if (payload_id("customer", tenant, raw, id, errstr, errstr_size) != 0) return NULL;

    json_t *rec = record_head(tenant, "customer", id);
    json_object_set_new_nocheck(rec, "name", or_null(customer_name(raw)));
    json_object_set_new_nocheck(rec, "email",
                                or_null(trimmed_string(json_object_get(raw, "email"))));
    json_object_set_new_nocheck(rec, "phone",
                                or_null(trimmed_string(json_object_get(raw, "phone"))));
    json_object_set_new_nocheck(rec, "disabled", flag(json_object_get(raw, "disabled")));
    json_object_set_new_nocheck(rec, "updated_at",
                                copied_string(json_object_get(raw, "updated_at")));
    json_object_set_new_nocheck(rec, "gone", json_false());
    return rec;
}

/* ---------------------------------------------------------------------------------------------
 * Dates
 * ------------------------------------------------------------------------------------------- */

static int days_in_month(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* n decimal digits at s into *v. */
static int digits(const char *s, int n, int *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* "hh:mm[:ss[.fff]][Z|±hh:mm|±hhmm]" exactly from s to e. */
static int valid_time(const char *s, const char *e) {
    int h, m, sec;
    if (e - s < 5 || digits(s, 2, &h) || s[2] != ':' || digits(s + 3, 2, &m) || h > 23 || m > 59)
        return 0;
    s += 5;
    if (s < e && *s == ':') {
        if (e - s < 3 || digits(s + 1, 2, &sec) || sec > 60)
            return 0;
        s += 3;
        if (s < e && *s == '.') {
            const char *f = ++s;
            while (s < e && isdigit((unsigned char)*s))
                s++;
            if (s == f)
                return 0;
        }
    }
    if (s == e)
        return 1;
    if ((*s == 'Z' || *s == 'z') && s + 1 == e)
        return 1;
    if (*s == '+' || *s == '-') {
        int zh, zm;
        s++;
        if (e - s == 5 && !digits(s, 2, &zh) && s[2] == ':' && !digits(s + 3, 2, &zm))
            return zh <= 23 && zm <= 59;
        if (e - s == 4 && !digits(s, 2, &zh) && !digits(s + 2, 2, &zm))
            return zh <= 23 && zm <= 59;
    }
    return 0;
}

int msp_date_normalize(const char *in, char out[11]) {
    const char *s, *e;
    int y, m, d;

    if (!out)
        return -1;
    out[0] = '\0';
    if (!in)
        return -1;
    s = in;
    e = in + strlen(in);
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;

    if (e - s >= 10 && s[4] == '-' && s[7] == '-') {
        if (digits(s, 4, &y) || digits(s + 5, 2, &m) || digits(s + 8, 2, &d))
            return -1;
        if (e - s > 10 &&
            !((s[10] == 'T' || s[10] == 't' || s[10] == ' ') && valid_time(s + 11, e)))
            return -1;
    } else if (e - s == 10 && s[2] == '/' && s[5] == '/') {
        if (digits(s, 2, &m) || digits(s + 3, 2, &d) || digits(s + 6, 4, &y))
            return -1;
    } else {
        return -1;
    }
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return -1;
    /* y < 10000, m, d < 100: digits() read at most 4 and 2 of them */
    out[0] = (char)('0' + y / 1000), out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10), out[3] = (char)('0' + y % 10), out[4] = '-';
    out[5] = (char)('0' + m / 10), out[6] = (char)('0' + m % 10), out[7] = '-';
    out[8] = (char)('0' + d / 10), out[9] = (char)('0' + d % 10), out[10] = '\0';
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Assets
 * ------------------------------------------------------------------------------------------- */

int msp_normalize_mac(const char *in, char out[18]) {
    unsigned char b[6];
    if (!out) return -1;
    out[0] = '\0';
    if (!in) return -1;
    while (isspace((unsigned char)*in)) in++;
    size_t len = strlen(in);
    while (len > 0 && isspace((unsigned char)in[len - 1])) len--;
    if (len == 0 || len > 17) return -1;

    char sep = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        if (isxdigit((unsigned char)ch)) continue;
        if (ch != ':' && ch != '-' && ch != '.') return -1;
        if (sep && ch != sep) return -1; /* mixed separators */
        sep = ch;
    }

    int groups, width_min, width_max;
    if (sep == 0) {
        groups = 1, width_min = width_max = 12;    /* aabbccddeeff */
    } else if (sep == '.') {
        groups = 3, width_min = width_max = 4;     /* aabb.ccdd.eeff */
    } else {
        groups = 6, width_min = 1, width_max = 2;  /* aa:bb:.. / aa-bb-.. (0:1b:.. too) */
    }

    char hex[13];
    size_t nhex = 0;
    int g = 0;
    size_t i = 0;
    while (g < groups) {
        size_t start = i;
        while (i < len && in[i] != sep) i++;
        size_t w = i - start;
        if ((int)w < width_min || (int)w > width_max) return -1;
        if (w == 1) hex[nhex++] = '0';
        memcpy(hex + nhex, in + start, w);
        nhex += w;
        g++;
        if (i < len) i++; /* skip separator */
        else break;
    }
    if (g != groups || i < len || nhex != 12 || (sep && in[len - 1] == sep)) return -1;
    for (int k = 0; k < 6; k++) {
        char pair[3] = {hex[2 * k], hex[2 * k + 1], '\0'};
        b[k] = (unsigned char)strtoul(pair, NULL, 16);
    }
    snprintf(out, 18, "%02X:%02X:%02X:%02X:%02X:%02X", b[0], b[1], b[2], b[3], b[4], b[5]);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, de-duplicated, normalized MACs of the kabuto network adapters. */
static json_t *asset_macs(const json_t *adapters) {
    json_t *out = json_array();
    if (!json_is_array(adapters)) return out;
    size_t n = json_array_size(adapters), count = 0;
    if (n == 0) return out;
    char (*macs)[18] = calloc(n, sizeof(*macs));
    const char **sorted = calloc(n, sizeof(*sorted));
    if (!macs || !sorted) goto done;
    for (size_t i = 0; i < n; i++) {
        const json_t *pa = obj_get(json_array_get(adapters, i), "physical_address");
        if (!json_is_string(pa)) continue;
        if (msp_normalize_mac(json_string_value(pa), macs[count]) != 0) continue;
        /* placeholders, not hardware: tunnel adapters report zeros */
        if (strcmp(macs[count], "00:00:00:00:00:00") == 0 ||
            strcmp(macs[count], "FF:FF:FF:FF:FF:FF") == 0)
            continue;
        sorted[count] = macs[count];
        count++;
    }
    qsort(sorted, count, sizeof(*sorted), cmp_str);
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0) continue;
        json_array_append_new(out, json_string(sorted[i]));
    }
done:
    free(macs);
    free(sorted);
    return out;
}

/*
 * properties.kabuto_information as an object (new reference) or NULL. Some accounts deliver it as
 * a JSON-encoded string (as rmm_store.general.info is); decode that form too.
 */
static json_t *kabuto_info(const json_t *raw) {
    const json_t *k = obj_get(json_object_get(raw, "properties"), "kabuto_information");
    if (json_is_object(k)) return json_incref((json_t *)k);
    if (json_is_string(k)) {
        json_t *parsed = json_loadb(json_string_value(k), json_string_length(k), 0, NULL);
        if (json_is_object(parsed)) return parsed;
        json_decref(parsed);
    }
    return NULL;
}

const char *const msp_syncro_asset_members[] = {
    "id", "name", "asset_type", "asset_serial", "customer_id", "updated_at", "properties", NULL};

json_t *msp_map_syncro_asset(const char *tenant, const json_t *raw, char *errstr,
                             size_t errstr_size) {
    char id[24];
    if (payload_id("asset", tenant, raw, id, errstr, errstr_size) != 0) return NULL;

    json_t *kabuto = kabuto_info(raw);
    const json_t *general = obj_get(kabuto, "general");
    const json_t *os = obj_get(kabuto, "os");

    json_t *serial = trimmed_string(obj_get(general, "serial_number"));
    if (!serial) serial = trimmed_string(json_object_get(raw, "asset_serial"));

    json_t *os_rec = json_null();
    json_t *os_name = trimmed_string(obj_get(os, "name"));
    json_t *os_build = trimmed_string(obj_get(os, "build"));
    if (os_name || os_build) {
        json_decref(os_rec);
        os_rec = json_object();
        json_object_set_new_nocheck(os_rec, "name", or_null(os_name));
        json_object_set_new_nocheck(os_rec, "build", or_null(os_build));
    }

    json_t *customer_ref = syncro_ref(json_object_get(raw, "customer_id"));

    json_t *rec = record_head(tenant, "asset", id);
    json_object_set_new_nocheck(rec, "name", or_null(trimmed_string(json_object_get(raw, "name"))));
    json_object_set_new_nocheck(rec, "asset_type",
                                or_null(trimmed_string(json_object_get(raw, "asset_type"))));
    json_object_set_new_nocheck(rec, "serial", or_null(serial));
    json_object_set_new_nocheck(rec, "manufacturer",
                                or_null(trimmed_string(obj_get(general, "manufacturer"))));
    json_object_set_new_nocheck(rec, "model", or_null(trimmed_string(obj_get(general, "model"))));
    json_object_set_new_nocheck(rec, "form_factor",
                                or_null(trimmed_string(obj_get(general, "form_factor"))));
    json_object_set_new_nocheck(rec, "os", os_rec);
    json_object_set_new_nocheck(rec, "macs", asset_macs(obj_get(kabuto, "network_adapters")));
    json_object_set_new_nocheck(rec, "customer_ref", customer_ref);
    json_object_set_new_nocheck(rec, "updated_at",
                                copied_string(json_object_get(raw, "updated_at")));
    /* Asset custom fields appear as properties["<display name>"] (NOTES.md). */
    json_t *dates = json_object();
    const json_t *props = json_object_get(raw, "properties");
    static const char *const names[][2] = {{MSP_DATE_PURCHASE, MSP_DATE_PURCHASE_LABEL},
                                           {MSP_DATE_WARRANTY, MSP_DATE_WARRANTY_LABEL}};
    for (size_t i = 0; i < 2; i++) {
        char d[11];
        const char *v = json_string_value(obj_get(props, names[i][1]));
        json_object_set_new(dates, names[i][0],
                            v && msp_date_normalize(v, d) == 0 ? json_string(d) : json_null());
    }
    json_object_set_new_nocheck(rec, "dates", dates);
    json_object_set_new_nocheck(rec, "gone", json_false());
    json_decref(kabuto);
    return rec;
}

/* ---------------------------------------------------------------------------------------------
 * Fingerprint
 * ------------------------------------------------------------------------------------------- */

void msp_record_fingerprint(const json_t *canonical, char out[65]) {
    static const char hex[] = "0123456789abcdef";
    out[0] = '\0';
    if (!canonical) return;
    /* the sorted form without the top-level "gone", hashed where it was written */
    size_t len = 0;
    const char *text =
        msp_json_dump_view(canonical, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY,
                           json_is_object(canonical) ? "gone" : NULL, &len);
    char *own = NULL;
    if (!text) { /* a tree deeper than ours (or a dump that fails): a copy without "gone" */
        json_t *copy = json_is_object(canonical) ? json_copy((json_t *)canonical)
                                                 : json_incref((json_t *)canonical);
        if (!copy) return;
        if (json_is_object(copy))
            json_object_del(copy, "gone");
        own = msp_json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        json_decref(copy);
        if (!own)
            return;
        text = own;
        len = strlen(own);
    }
    unsigned char md[32];
    int ok = msp_sha256(text, len, md) == 0;
    msp_json_free(own);
    if (!ok) return;
    for (unsigned int i = 0; i < sizeof md; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[64] = '\0';
}

void msp_json_free(void *p) {
    json_free_t f = NULL;
    json_get_alloc_funcs(NULL, &f);
    if (p) f(p);
}

/* ---------------------------------------------------------------------------------------------
 * Contacts, tickets and ticket settings (never merged: one canonical record per vendor record)
 * ------------------------------------------------------------------------------------------- */

json_t *msp_map_syncro_contact(const char *tenant, const json_t *raw, char *errstr,
                               size_t errstr_size) {
    char id[24];
    if (payload_id("contact", tenant, raw, id, errstr, errstr_size) != 0)
        return NULL;
    json_t *rec = record_head(tenant, "contact", id);
    static const char *const strs[] = {"name", "email", "phone", "mobile"};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        json_object_set_new(rec, strs[i], or_null(trimmed_string(json_object_get(raw, strs[i]))));
    json_object_set_new_nocheck(rec, "customer_ref",
                                syncro_ref(json_object_get(raw, "customer_id")));
    json_object_set_new_nocheck(rec, "updated_at",
                                copied_string(json_object_get(raw, "updated_at")));
    json_object_set_new_nocheck(rec, "gone", json_false());
    return rec;
}

json_t *msp_map_syncro_ticket(const char *tenant, const json_t *raw, char *errstr,
                              size_t errstr_size) {
    char id[24], number[24];
    if (payload_id("ticket", tenant, raw, id, errstr, errstr_size) != 0)
        return NULL;
    json_t *rec = record_head(tenant, "ticket", id);
    const json_t *n = json_object_get(raw, "number");
    json_object_set_new_nocheck(rec, "number",
                                parse_vendor_id(n, number) == 0 ? json_string(number)
                                                                : or_null(trimmed_string(n)));
    static const char *const strs[] = {"subject", "status", "problem_type", "priority"};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        json_object_set_new(rec, strs[i], or_null(trimmed_string(json_object_get(raw, strs[i]))));
    json_object_set_new_nocheck(rec, "customer_ref",
                                syncro_ref(json_object_get(raw, "customer_id")));
    json_object_set_new_nocheck(rec, "contact_ref", syncro_ref(json_object_get(raw, "contact_id")));
    static const char *const times[] = {"created_at", "resolved_at", "updated_at"};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        json_object_set_new(rec, times[i], copied_string(json_object_get(raw, times[i])));
    json_object_set_new_nocheck(rec, "gone", json_false());
    return rec;
}

/* The trimmed, non-empty strings of arr (or of member key of its objects), de-duplicated in
 * order; NULL when arr is not an array. New. */
static json_t *string_list(const json_t *arr, const char *key) {
    if (!json_is_array(arr))
        return NULL;
    json_t *out = json_array();
    size_t i, k;
    const json_t *item, *have;
    json_array_foreach(arr, i, item) {
        json_t *s = trimmed_string(key ? obj_get(item, key) : item);
        int dup = 0;
        json_array_foreach(out, k, have) dup |= s && json_equal(s, have);
        if (s && !dup)
            json_array_append_new(out, s);
        else
            json_decref(s);
    }
    return out;
}

json_t *msp_map_syncro_settings(const char *tenant, const json_t *raw, char *errstr,
                                size_t errstr_size) {
    if (!tenant || !*tenant || !json_is_object(raw)) {
        msp_set_err(errstr, errstr_size, "ticket settings payload is %s",
                    !tenant || !*tenant ? "without a tenant" : "not a JSON object");
        return NULL;
    }
    json_t *statuses = string_list(json_object_get(raw, "ticket_status_list"), NULL);
    if (!statuses) {
        msp_set_err(errstr, errstr_size,
                    "ticket settings payload has no \"ticket_status_list\" array");
        return NULL;
    }
    json_t *rec = record_head(tenant, "setting", MSP_SYNCRO_SETTINGS_ID);
    json_object_set_new_nocheck(rec, "ticket_statuses", statuses);
    json_object_set_new_nocheck(rec, "problem_types",
                                or_null(string_list(json_object_get(raw, "problem_types"), NULL)));
    json_t *types = string_list(json_object_get(raw, "ticket_types"), "name");
    json_object_set_new_nocheck(rec, "ticket_types", types ? types : json_array());
    json_object_set_new_nocheck(rec, "gone", json_false());
    return rec;
}
