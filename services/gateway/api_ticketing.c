/*
 * api_ticketing.c — how incidents become Syncro tickets, as far as the admin API is concerned:
 *   GET/PUT    /v1/tenants/{t}/ticketing                 the ticketing config (+ its status)
 *   GET        /v1/tenants/{t}/ticketing/orgs            seen / mapped / unmapped MTP orgs, with
 *                                                        customer suggestions for unmapped ones
 *   PUT/DELETE /v1/tenants/{t}/ticketing/orgs/{org_id}   map an org to a synced Syncro customer
 * and gw_ticketing_summary, the "ticketing" block of GET .../integrations/syncro.
 *
 * Redis (ticketing:* of the tenant):
 *   config          string  the config document, always complete (defaults filled in on PUT)
 *   orgmap          hash    org_id → {"customer_id","customer_name","mapped_at"}   (gateway)
 *   orgs            hash    org_id → {"org_name","last_seen_at"}       (gateway, on webhooks)
 *   unmapped        hash    org_id → org_name                     (ticket-creator; gateway HDEL)
 *   unmapped_count  hash    org_id → incidents skipped for want of a mapping   (same)
 *   stats           hash    counters and last error                  (ticket-creator, read only)
 *   held            hash    the index of held incidents              (ticket-creator, read only)
 * and the ticketing_* fields of status:syncro (the pause after a 401/403), cleared by
 * gw_ticketing_resume when the integration is saved again or PATCHed.
 *
 * The config is validated strictly: an unknown key or a wrong type is a 400 naming its path
 * (rules.device_offline.due_in_days), so a typo never silently becomes a default.
 */
#include "gateway.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/org_match.h"
#include "mspsync/utf8.h"

#define MAX_RULES 1000
#define MAX_ORG_ID 256
#define CHUNK 500
#define MAX_SUGGESTIONS 3
#define MIN_SCORE 0.5

/* ---- small helpers ------------------------------------------------------------------------- */



/* A Redis string as JSON: an integer when the whole text is one, else a string. */
static json_t *int_or_string(const char *s) {
    if (s[0]) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!errno && *end == '\0' && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
            return json_integer(v);
    }
    return json_string(s);
}

static json_t *str_or_null(const char *s) { return s && s[0] ? json_string(s) : json_null(); }

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- the config document ------------------------------------------------------------------- */

/* Validation context: the first error wins. */
typedef struct {
    char *err;
    size_t size;
} verr_t;

static int fail(verr_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(verr_t *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->size, fmt, ap);
    va_end(ap);
    return -1;
}

/* "rules.<key>" — or rules["<key>"] when the key would make a dotted path ambiguous. */
static void rule_path(char *buf, size_t size, const char *key) {
    if (strpbrk(key, ".[]\" \t") == NULL) {
        snprintf(buf, size, "rules.%s", key);
        return;
    }
    json_t *k = json_string(key);
    char *quoted = k ? json_dumps(k, JSON_ENCODE_ANY) : NULL;
    snprintf(buf, size, "rules[%s]", quoted ? quoted : "?");
    free(quoted);
    json_decref(k);
}

/* Every key of obj must be in known (NULL-terminated); else one error listing the strays. */
static int check_keys(const json_t *obj, const char *const *known, const char *where, verr_t *e) {
    char list[512] = "";
    size_t used = 0;
    int strays = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++)
            ok = strcmp(k, known[i]) == 0;
        if (ok)
            continue;
        strays++;
        if (used < sizeof(list))
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s\"%.*s\"",
                                     strays > 1 ? ", " : "", MSP_UTF8_CUT(k, 64));
    }
    if (!strays)
        return 0;
    char names[256] = "";
    size_t nu = 0;
    for (int i = 0; known[i] && nu < sizeof(names); i++)
        nu += (size_t)snprintf(names + nu, sizeof(names) - nu, "%s%s", i ? ", " : "", known[i]);
    return fail(e, "unknown key%s in %s: %s (allowed: %s)", strays > 1 ? "s" : "", where, list,
                names);
}

/* Fetch field of in into out, or the default when absent. Each returns 0 or -1 (e). */
static int take_bool(const json_t *in, json_t *out, const char *field, int def,
                     const char *prefix, verr_t *e) {
    json_t *v = json_object_get(in, field);
    if (!v) {
        json_object_set_new(out, field, json_boolean(def));
        return 0;
    }
    if (!json_is_boolean(v))
        return fail(e, "%s%s must be true or false (got %s)", prefix, field, gw_json_kind(v));
    json_object_set(out, field, v);
    return 0;
}

/* A string of min..max characters; nullable allows null. def NULL = null default. */
static int take_string(const json_t *in, json_t *out, const char *field, const char *def,
                       size_t min, size_t max, int nullable, const char *prefix, verr_t *e) {
    json_t *v = json_object_get(in, field);
    if (!v) {
        json_object_set_new(out, field, def ? json_string(def) : json_null());
        return 0;
    }
    if (nullable && json_is_null(v)) {
        json_object_set_new(out, field, json_null());
        return 0;
    }
    size_t n = json_is_string(v) ? msp_utf8_chars(json_string_value(v)) : 0;
    if (!json_is_string(v) || n < min || n > max) {
        char got[64];
        if (json_is_string(v))
            snprintf(got, sizeof(got), "a string of %zu characters", n);
        else
            snprintf(got, sizeof(got), "%s", gw_json_kind(v));
        return fail(e, "%s%s must be a string of %zu to %zu characters%s (got %s)", prefix, field,
                    min, max, nullable ? ", or null" : "", got);
    }
    json_object_set(out, field, v);
    return 0;
}

/* An integer in [min, max]; def < 0 with nullable = null default. */
static int take_int(const json_t *in, json_t *out, const char *field, long long def,
                    long long min, long long max, int nullable, const char *prefix, verr_t *e) {
    json_t *v = json_object_get(in, field);
    if (!v) {
        json_object_set_new(out, field, def < 0 && nullable ? json_null() : json_integer(def));
        return 0;
    }
    if (nullable && json_is_null(v)) {
        json_object_set_new(out, field, json_null());
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        char got[64];
        if (json_is_integer(v))
            snprintf(got, sizeof(got), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else
            snprintf(got, sizeof(got), "%s", gw_json_kind(v));
        return fail(e, "%s%s must be an integer between %lld and %lld%s (got %s)", prefix, field,
                    min, max, nullable ? ", or null" : "", got);
    }
    json_object_set(out, field, v);
    return 0;
}

/* ---- the high-priority gate and the held incidents (issue 11 part C) ---------------------- */

static const char *const SEVERITIES[] = {"info", "low", "medium", "high", "critical", NULL};

/* The minimum severity of a new config: the portals' guides ticket "high priority actionable
 * incidents". An incident without a severity is not gated (the ticket-creator's tc_gate). */
#define DEFAULT_MIN_SEVERITY "high"

/* A severity of the portal's list, or null; def NULL = null default. @returns 0 or -1 (e). */
static int take_severity(const json_t *in, json_t *out, const char *field, const char *def,
                         const char *prefix, verr_t *e) {
    json_t *v = json_object_get(in, field);
    if (!v) {
        json_object_set_new(out, field, def ? json_string(def) : json_null());
        return 0;
    }
    for (int i = 0; json_is_string(v) && SEVERITIES[i]; i++)
        if (!strcmp(json_string_value(v), SEVERITIES[i])) {
            json_object_set(out, field, v);
            return 0;
        }
    if (json_is_null(v)) {
        json_object_set_new(out, field, json_null());
        return 0;
    }
    return fail(e, "%s%s must be one of info, low, medium, high, critical, or null (got %s%.*s%s)",
                prefix, field, json_is_string(v) ? "\"" : "",
                MSP_UTF8_CUT(json_is_string(v) ? json_string_value(v) : gw_json_kind(v), 64),
                json_is_string(v) ? "\"" : "");
}

/*
 * The gate's part of the config: min_severity (default high), priority_by_severity (a Syncro
 * priority per severity and for "none", the incidents without one; used when the rule has no
 * fixed priority) and when_disabled ("skip": incidents that arrive while ticketing is off are
 * counted and dropped; "hold": kept and ticketed once it is on). @returns 0 or -1 (e).
 */
static int take_gate(const json_t *in, json_t *out, verr_t *e) {
    static const char *const defaults[][2] = {{"critical", "0 Urgent"}, {"high", "1 High"},
                                              {"medium", "2 Normal"},   {"low", "3 Low"},
                                              {"info", "3 Low"},        {"none", "2 Normal"}};
    static const char *const known[] = {"critical", "high", "medium", "low", "info", "none", NULL};
    if (take_severity(in, out, "min_severity", DEFAULT_MIN_SEVERITY, "", e) ||
        take_string(in, out, "when_disabled", "skip", 1, 16, 0, "", e))
        return -1;
    const char *wd = json_string_value(json_object_get(out, "when_disabled"));
    if (strcmp(wd, "skip") != 0 && strcmp(wd, "hold") != 0)
        return fail(e, "when_disabled must be \"skip\" or \"hold\" (got \"%s\")", wd);
    const json_t *map_in = json_object_get(in, "priority_by_severity");
    if (map_in && !json_is_object(map_in))
        return fail(e,
                    "priority_by_severity must be an object of severity → Syncro priority "
                    "(got %s)",
                    gw_json_kind(map_in));
    if (map_in && check_keys(map_in, known, "priority_by_severity", e))
        return -1;
    json_t *map = json_object();
    json_object_set_new(out, "priority_by_severity", map);
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (take_string(map_in ? map_in : map, map, defaults[i][0], defaults[i][1], 0, 100, 1,
                        "priority_by_severity.", e))
            return -1;
    return 0;
}

/* The held incidents and the pause, for GET .../ticketing. @returns new object or NULL (err). */
static json_t *held_object(gw_t *gw, const char *tenant, char *err, size_t err_size) {
    char kh[128], ks[128];
    msp_key(kh, sizeof(kh), tenant, "ticketing:held");
    msp_key(ks, sizeof(ks), tenant, "status:syncro");
    redisReply *h = gw_redis(gw, err, err_size, "HGET %s count", kh);
    redisReply *p = h ? gw_redis(gw, err, err_size,
                                 "HMGET %s ticketing_paused ticketing_error ticketing_hint", ks)
                      : NULL;
    if (!p) {
        if (h)
            freeReplyObject(h);
        return NULL;
    }
    const char *count = h->type == REDIS_REPLY_STRING ? h->str : "0";
    int paused = p->type == REDIS_REPLY_ARRAY && p->elements == 3 &&
                 p->element[0]->type == REDIS_REPLY_STRING && !strcmp(p->element[0]->str, "1");
    const char *why =
        paused && p->element[1]->type == REDIS_REPLY_STRING ? p->element[1]->str : NULL;
    const char *hint =
        paused && p->element[2]->type == REDIS_REPLY_STRING ? p->element[2]->str : NULL;
    json_t *o = json_pack("{s:I,s:b,s:s,s:o,s:o}", "held", (json_int_t)strtoll(count, NULL, 10),
                          "paused", paused, "state", paused ? "error" : "ok", "error",
                          str_or_null(why), "hint", str_or_null(hint));
    freeReplyObject(h);
    freeReplyObject(p);
    return o;
}

int gw_ticketing_resume(gw_t *gw, const char *tenant, const char *vendor, char *err,
                        size_t err_size) {
    char k[128];
    msp_key(k, sizeof(k), tenant, "status:%s", vendor);
    redisReply *r = gw_redis(gw, err, err_size, "HSET %s ticketing_paused 0 ticketing_state ok", k);
    if (r) {
        freeReplyObject(r);
        r = gw_redis(gw, err, err_size, "HDEL %s ticketing_error ticketing_hint ticketing_error_at",
                     k);
    }
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

static json_t *validate_rule(const json_t *in, const char *path, verr_t *e) {
    static const char *const known[] = {"create",      "problem_type",     "priority",     "status",
                                        "due_in_days", "assignee_user_id", "min_severity", NULL};
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s.", path);
    if (!json_is_object(in)) {
        fail(e, "%s must be an object (got %s)", path, gw_json_kind(in));
        return NULL;
    }
    json_t *out = json_object();
    if (check_keys(in, known, path, e) || take_bool(in, out, "create", 1, prefix, e) ||
        take_string(in, out, "problem_type", NULL, 0, 100, 1, prefix, e) ||
        take_string(in, out, "priority", NULL, 0, 100, 1, prefix, e) ||
        take_string(in, out, "status", "New", 1, 100, 0, prefix, e) ||
        take_int(in, out, "due_in_days", -1, 0, 3650, 1, prefix, e) ||
        take_int(in, out, "assignee_user_id", -1, 1, INT64_MAX, 1, prefix, e) ||
        take_severity(in, out, "min_severity", NULL, prefix, e)) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/*
 * Validate a config document and fill in every omitted key with its default (an empty object
 * gives the default config). @returns a new complete document, or NULL with e.
 */
static json_t *config_complete(const json_t *in, verr_t *e) {
    static const char *const known[] = {
        "enabled", "auto_resolve", "resolve_status",       "reopen_window_days",
        "rules",   "min_severity", "priority_by_severity", "when_disabled",
        NULL};
    json_t *out = json_object();
    if (check_keys(in, known, "the ticketing config", e) ||
        take_bool(in, out, "enabled", 0, "", e) || take_bool(in, out, "auto_resolve", 0, "", e) ||
        take_string(in, out, "resolve_status", "Resolved", 1, 100, 0, "", e) ||
        take_int(in, out, "reopen_window_days", 7, 0, 3650, 0, "", e) || take_gate(in, out, e)) {
        json_decref(out);
        return NULL;
    }
    json_t *rules_in = json_object_get(in, "rules");
    if (rules_in && !json_is_object(rules_in)) {
        fail(e, "rules must be an object of alert type → rule (got %s)", gw_json_kind(rules_in));
        json_decref(out);
        return NULL;
    }
    if (rules_in && json_object_size(rules_in) > MAX_RULES) {
        fail(e, "rules has %zu entries; at most %d are allowed", json_object_size(rules_in),
             MAX_RULES);
        json_decref(out);
        return NULL;
    }
    json_t *rules = json_object();
    json_object_set_new(out, "rules", rules);
    const char *k;
    json_t *v;
    json_object_foreach(rules_in, k, v) {
        size_t n = msp_utf8_chars(k);
        if (n < 1 || n > 128) {
            fail(e, "rules keys must be alert types of 1 to 128 characters or \"*\" (got a key "
                 "of %zu characters)", n);
            json_decref(out);
            return NULL;
        }
        char path[300];
        rule_path(path, sizeof(path), k);
        json_t *rule = validate_rule(v, path, e);
        if (!rule) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(rules, k, rule);
    }
    if (!json_object_get(rules, "*")) {
        json_t *empty = json_object();
        json_object_set_new(rules, "*", validate_rule(empty, "rules.*", e));
        json_decref(empty);
    }
    return out;
}

static void config_key(char *buf, size_t size, const char *tenant) {
    msp_key(buf, size, tenant, "ticketing:config");
}

/*
 * The tenant's config: the stored document completed with defaults, or the defaults when none is
 * stored. @returns new object, or NULL with err on a Redis error.
 */
static json_t *config_load(gw_t *gw, const char *tenant, char *err, size_t err_size) {
    char key[128], verr[512];
    verr_t e = {verr, sizeof(verr)};
    config_key(key, sizeof(key), tenant);
    redisReply *r = gw_redis(gw, err, err_size, "GET %s", key);
    if (!r)
        return NULL;
    json_t *stored = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    int had = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (had && !json_is_object(stored))
        MSP_WARN("ticketing.config_unreadable", tenant, "stored ticketing config is not a JSON "
                 "object; showing the defaults");
    json_t *empty = json_object();
    json_t *out = config_complete(json_is_object(stored) ? stored : empty, &e);
    if (!out) {
        /* written by hand and no longer valid: show it as it is rather than hide it */
        MSP_WARN("ticketing.config_invalid", tenant, "stored ticketing config: %s", verr);
        out = json_incref(stored);
    }
    json_decref(empty);
    json_decref(stored);
    return out;
}

/* ---- unmapped orgs and stats --------------------------------------------------------------- */

/*
 * [{"org_id","org_name","incidents"}] from the unmapped hashes, sorted by org_id.
 * @returns new array, or NULL with err.
 */
static json_t *unmapped_list(gw_t *gw, const char *tenant, char *err, size_t err_size) {
    char knames[128], kcounts[128];
    msp_key(knames, sizeof(knames), tenant, "ticketing:unmapped");
    msp_key(kcounts, sizeof(kcounts), tenant, "ticketing:unmapped_count");
    redisReply *rn = gw_redis(gw, err, err_size, "HGETALL %s", knames);
    redisReply *rc = rn ? gw_redis(gw, err, err_size, "HGETALL %s", kcounts) : NULL;
    if (!rc) {
        if (rn)
            freeReplyObject(rn);
        return NULL;
    }
    size_t cap = rn->elements / 2 + rc->elements / 2 + 1, n = 0;
    const char **ids = calloc(cap, sizeof(*ids));
    json_t *arr = json_array();
    const redisReply *src[2] = {rn, rc};
    for (int s = 0; ids && s < 2; s++)
        for (size_t i = 0; i + 1 < src[s]->elements; i += 2)
            if (src[s]->element[i]->type == REDIS_REPLY_STRING)
                ids[n++] = src[s]->element[i]->str;
    if (n)
        qsort(ids, n, sizeof(*ids), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(ids[i], ids[i - 1]) == 0)
            continue;
        const char *name = gw_hget(rn, ids[i]), *count = gw_hget(rc, ids[i]);
        json_array_append_new(arr, json_pack("{s:s,s:o,s:I}", "org_id", ids[i], "org_name",
                                             str_or_null(name), "incidents",
                                             (json_int_t)(count ? strtoll(count, NULL, 10) : 0)));
    }
    free(ids);
    freeReplyObject(rn);
    freeReplyObject(rc);
    return arr;
}

/* The ticket-creator's stats hash as an object (integers where they parse). NULL: err. */
static json_t *stats_object(gw_t *gw, const char *tenant, char *err, size_t err_size) {
    char key[128];
    msp_key(key, sizeof(key), tenant, "ticketing:stats");
    redisReply *r = gw_redis(gw, err, err_size, "HGETALL %s", key);
    if (!r)
        return NULL;
    json_t *o = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            json_object_set_new(o, r->element[i]->str, int_or_string(r->element[i + 1]->str));
    freeReplyObject(r);
    return o;
}

json_t *gw_ticketing_summary(gw_t *gw, const char *tenant, char *errstr, size_t errstr_size) {
    json_t *cfg = config_load(gw, tenant, errstr, errstr_size);
    json_t *stats = cfg ? stats_object(gw, tenant, errstr, errstr_size) : NULL;
    json_t *unmapped = stats ? unmapped_list(gw, tenant, errstr, errstr_size) : NULL;
    json_t *out = NULL;
    if (unmapped) {
        json_t *dl = json_object_get(stats, "dead_lettered");
        const char *le = json_string_value(json_object_get(stats, "last_error"));
        const char *lea = json_string_value(json_object_get(stats, "last_error_at"));
        out = json_pack("{s:b,s:O,s:I,s:o,s:o}", "enabled",
                        json_is_true(json_object_get(cfg, "enabled")), "unmapped_orgs", unmapped,
                        "dead_lettered", (json_int_t)(json_is_integer(dl) ? json_integer_value(dl)
                                                                          : 0),
                        "last_error", str_or_null(le), "last_error_at", str_or_null(lea));
        if (!out)
            snprintf(errstr, errstr_size, "out of memory");
    }
    json_decref(cfg);
    json_decref(stats);
    json_decref(unmapped);
    return out;
}

/* ---- GET / PUT .../ticketing ---------------------------------------------------------------- */

void api_ticketing_get(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "ticketing";
    char err[256];
    json_t *cfg = config_load(gw, tenant, err, sizeof(err));
    json_t *status = cfg ? stats_object(gw, tenant, err, sizeof(err)) : NULL;
    json_t *unmapped = status ? unmapped_list(gw, tenant, err, sizeof(err)) : NULL;
    json_t *held = unmapped ? held_object(gw, tenant, err, sizeof(err)) : NULL;
    if (!held) {
        json_decref(cfg);
        json_decref(status);
        json_decref(unmapped);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    json_object_set_new(status, "unmapped_orgs", unmapped);
    json_object_update(status, held);
    json_decref(held);
    json_t *invalid = NULL;
    int synced = 0;
    if (gw_ticket_settings_check(gw, tenant, cfg, &invalid, &synced, err, sizeof(err)) != 0) {
        json_decref(cfg);
        json_decref(status);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    json_object_set_new(status, "settings_synced", json_boolean(synced));
    json_object_set_new(status, "rules_invalid", invalid);
    gw_reply(gw, req, route, 200, json_pack("{s:o,s:o}", "config", cfg, "status", status));
}

void api_ticketing_put(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "ticketing";
    json_t *in;
    if (gw_read_json(gw, req, route, 0, &in) != 0)
        return;
    char verr[600], err[256], key[128];
    verr_t e = {verr, sizeof(verr)};
    json_t *cfg = config_complete(in, &e);
    json_decref(in);
    if (!cfg) {
        gw_reply_error(gw, req, route, 400, "%s", verr);
        return;
    }
    json_t *invalid = NULL;
    int synced = 0;
    if (gw_ticket_settings_check(gw, tenant, cfg, &invalid, &synced, err, sizeof(err)) != 0) {
        json_decref(cfg);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    if (json_array_size(invalid) > 0) {
        json_decref(cfg);
        gw_reply(gw, req, route, 400,
                 json_pack("{s:s,s:o}", "error",
                           gw_ticket_settings_text(invalid, verr, sizeof(verr)), "rules_invalid",
                           invalid));
        return;
    }
    json_decref(invalid);
    if (json_is_true(json_object_get(cfg, "enabled"))) {
        /* the Syncro key must be able to make tickets (and, for auto-resolve, read them) now,
         * not when the first incident is dead-lettered */
        json_t *missing = NULL;
        int ar = json_is_true(json_object_get(cfg, "auto_resolve"));
        if (gw_integ_check_features(gw, tenant, &msp_vendor_syncro,
                                    ar ? "ticketing,auto_resolve" : "ticketing",
                                    "grant the permissions to the API key's group in Syncro and "
                                    "save the Syncro integration again, then enable ticketing",
                                    &missing, err, sizeof(err)) < 0) {
            json_decref(cfg);
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
        if (missing) {
            json_decref(cfg);
            gw_reply(gw, req, route, 422, missing);
            return;
        }
    }
    char *text = json_dumps(cfg, JSON_COMPACT);
    if (!text) {
        json_decref(cfg);
        gw_reply_error(gw, req, route, 500, "out of memory");
        return;
    }
    config_key(key, sizeof(key), tenant);
    redisReply *r = gw_redis(gw, err, sizeof(err), "SET %s %s", key, text);
    free(text);
    if (!r) {
        json_decref(cfg);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    freeReplyObject(r);
    MSP_INFO("ticketing.config_saved", tenant, "ticketing %s, %zu rule(s)",
             json_is_true(json_object_get(cfg, "enabled")) ? "enabled" : "disabled",
             json_object_size(json_object_get(cfg, "rules")));
    json_t *ok = json_pack("{s:o,s:b}", "config", cfg, "settings_checked", synced);
    if (!synced)
        json_object_set_new(ok, "note",
                            json_string("no ticket settings have been synced from Syncro yet: "
                                        "the statuses and problem types were not checked"));
    gw_reply(gw, req, route, 200, ok);
}

/* ---- org mappings --------------------------------------------------------------------------- */

/* The path's org_id: 1..256 characters of UTF-8. @returns 1 ok, else answered 400. */
static int org_id_ok(gw_t *gw, struct evhttp_request *req, const char *route, const char *org) {
    json_t *j = json_string(org);  /* NULL unless valid UTF-8 */
    size_t n = j ? msp_utf8_chars(org) : 0;
    json_decref(j);
    if (n >= 1 && n <= MAX_ORG_ID)
        return 1;
    gw_reply_error(gw, req, route, 400, "the org id must be 1 to %d characters of UTF-8",
                   MAX_ORG_ID);
    return 0;
}

/* A positive integer or a decimal string of one (fits int64) into out. @returns 0 or -1. */
static int parse_customer_id(const json_t *v, char *out, size_t size) {
    if (json_is_integer(v)) {
        if (json_integer_value(v) <= 0)
            return -1;
        snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !s[0] || strlen(s) > 19 || strspn(s, "0123456789") != strlen(s))
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || n <= 0)
        return -1;
    snprintf(out, size, "%lld", n);
    return 0;
}

void api_ticketing_org_put(gw_t *gw, struct evhttp_request *req, const char *tenant,
                           const char *org_id) {
    const char *route = "ticketing_org";
    if (!org_id_ok(gw, req, route, org_id))
        return;
    json_t *in;
    if (gw_read_json(gw, req, route, 0, &in) != 0)
        return;
    char verr[512], cid[32];
    verr_t e = {verr, sizeof(verr)};
    static const char *const known[] = {"customer_id", NULL};
    json_t *jcid = json_object_get(in, "customer_id");
    int bad = check_keys(in, known, "the mapping", &e) != 0;
    if (!bad && (!jcid || parse_customer_id(jcid, cid, sizeof(cid)) != 0)) {
        snprintf(verr, sizeof(verr), "\"customer_id\" must be a Syncro customer id: a positive "
                 "integer or a string of its decimal digits");
        bad = 1;
    }
    json_decref(in);
    if (bad) {
        gw_reply_error(gw, req, route, 400, "%s", verr);
        return;
    }

    char ckey[160], err[256];
    msp_key(ckey, sizeof(ckey), tenant, "inv:customer:syncro:%s", cid);
    redisReply *r = gw_redis(gw, err, sizeof(err), "GET %s", ckey);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    json_t *cust = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    int found = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (!found) {
        gw_reply_error(gw, req, route, 400, "customer %s is not in the synced Syncro customers "
                       "of tenant \"%s\"", cid, tenant);
        return;
    }
    if (json_is_true(json_object_get(cust, "gone"))) {
        json_decref(cust);
        gw_reply_error(gw, req, route, 400, "customer %s of tenant \"%s\" is gone from Syncro "
                       "(deleted there); map the org to a current customer", cid, tenant);
        return;
    }
    char now[32];
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    json_t *mapping = json_pack("{s:s,s:o,s:s}", "customer_id", cid, "customer_name",
                                str_or_null(json_string_value(json_object_get(cust, "name"))),
                                "mapped_at", now);
    json_decref(cust);
    char *text = mapping ? json_dumps(mapping, JSON_COMPACT) : NULL;
    if (!text) {
        json_decref(mapping);
        gw_reply_error(gw, req, route, 500, "out of memory");
        return;
    }
    char kmap[128], knames[128], kcounts[128];
    msp_key(kmap, sizeof(kmap), tenant, "ticketing:orgmap");
    msp_key(knames, sizeof(knames), tenant, "ticketing:unmapped");
    msp_key(kcounts, sizeof(kcounts), tenant, "ticketing:unmapped_count");
    redisReply *w[3] = {0};
    int ok = (w[0] = gw_redis(gw, err, sizeof(err), "HSET %s %s %s", kmap, org_id, text)) &&
             (w[1] = gw_redis(gw, err, sizeof(err), "HDEL %s %s", knames, org_id)) &&
             (w[2] = gw_redis(gw, err, sizeof(err), "HDEL %s %s", kcounts, org_id));
    for (int i = 0; i < 3; i++)
        if (w[i])
            freeReplyObject(w[i]);
    free(text);
    if (!ok) {
        json_decref(mapping);
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    MSP_INFO("ticketing.org_mapped", tenant, "org %s mapped to Syncro customer %s", org_id, cid);
    json_object_set_new(mapping, "org_id", json_string(org_id));
    gw_reply(gw, req, route, 200, mapping);
}

void api_ticketing_org_delete(gw_t *gw, struct evhttp_request *req, const char *tenant,
                              const char *org_id) {
    const char *route = "ticketing_org";
    if (!org_id_ok(gw, req, route, org_id))
        return;
    char key[128], err[256];
    msp_key(key, sizeof(key), tenant, "ticketing:orgmap");
    redisReply *r = gw_redis(gw, err, sizeof(err), "HDEL %s %s", key, org_id);
    if (!r) {
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
        return;
    }
    long long removed = r->integer;
    freeReplyObject(r);
    if (removed == 0) {
        gw_reply_error(gw, req, route, 404, "org \"%s\" is not mapped", org_id);
        return;
    }
    MSP_INFO("ticketing.org_unmapped", tenant, "org %s mapping removed", org_id);
    gw_reply(gw, req, route, 204, NULL);
}

/* ---- GET .../ticketing/orgs ----------------------------------------------------------------- */

typedef struct cust_s {
    char             *id;    /* Syncro customer id (decimal) */
    char             *name;
    org_match_name_t *norm;
} cust_t;

typedef struct custs_s {
    cust_t *v;
    size_t  n, cap;
} custs_t;

static void custs_free(custs_t *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].id);
        free(c->v[i].name);
        org_match_name_destroy(c->v[i].norm);
    }
    free(c->v);
}

static int custs_add(custs_t *c, const char *canon_id, const char *name) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        cust_t *v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return -1;
        c->v = v;
        c->cap = cap;
    }
    const char *id = strncmp(canon_id, "syncro:", 7) == 0 ? canon_id + 7 : canon_id;
    cust_t *e = &c->v[c->n];
    e->id = strdup(id);
    e->name = strdup(name);
    e->norm = org_match_name_new(name);
    if (!e->id || !e->name || !e->norm) {
        free(e->id);
        free(e->name);
        org_match_name_destroy(e->norm);
        return -1;
    }
    c->n++;
    return 0;
}

/* Every synced, not gone, named customer of the tenant. @returns 0 or -1 (err). */
static int load_customers(gw_t *gw, const char *tenant, custs_t *out, char *err,
                          size_t err_size) {
    char zkey[128];
    msp_key(zkey, sizeof(zkey), tenant, "inv:customers");
    for (long long off = 0;; off += CHUNK) {
        redisReply *ids = gw_redis(gw, err, err_size, "ZRANGE %s %lld %lld", zkey, off,
                                   off + CHUNK - 1);
        if (!ids)
            return -1;
        size_t n = ids->elements;
        const char **argv = calloc(n + 1, sizeof(*argv));
        char **keys = calloc(n, sizeof(*keys));
        int rc = argv && keys ? 0 : -1;
        if (argv)
            argv[0] = "MGET";
        for (size_t i = 0; rc == 0 && i < n; i++) {
            char k[512];
            if (msp_key(k, sizeof(k), tenant, "inv:customer:%s", ids->element[i]->str) < 0 ||
                !(keys[i] = strdup(k)))
                rc = -1;
            else
                argv[i + 1] = keys[i];
        }
        redisReply *vals = NULL;
        if (rc == 0 && n > 0 && !(vals = gw_redis_argv(gw, err, err_size, (int)n + 1, argv, NULL)))
            rc = -2;
        for (size_t i = 0; vals && rc == 0 && i < vals->elements && i < n; i++) {
            redisReply *v = vals->element[i];
            if (v->type != REDIS_REPLY_STRING)
                continue;  /* removed since the ZRANGE */
            json_t *c = json_loadb(v->str, v->len, 0, NULL);
            const char *name = json_string_value(json_object_get(c, "name"));
            if (name && name[0] && !json_is_true(json_object_get(c, "gone")) &&
                custs_add(out, ids->element[i]->str, name) != 0)
                rc = -1;
            json_decref(c);
        }
        if (rc == -1)
            snprintf(err, err_size, "out of memory");
        if (vals)
            freeReplyObject(vals);
        for (size_t i = 0; keys && i < n; i++)
            free(keys[i]);
        free(keys);
        free(argv);
        freeReplyObject(ids);
        if (rc != 0)
            return -1;
        if (n < CHUNK)
            return 0;
    }
}

typedef struct scored_s {
    const cust_t *c;
    double        score;
} scored_t;

static int cmp_scored(const void *a, const void *b) {
    const scored_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    int c = strcmp(x->c->name, y->c->name);
    return c ? c : strcmp(x->c->id, y->c->id);
}

/* Up to MAX_SUGGESTIONS customers whose name scores >= MIN_SCORE against org_name. */
static json_t *suggestions(const custs_t *cs, const char *org_name) {
    json_t *arr = json_array();
    org_match_name_t *org = org_name ? org_match_name_new(org_name) : NULL;
    scored_t *s = org && cs->n ? calloc(cs->n, sizeof(*s)) : NULL;
    size_t n = 0;
    for (size_t i = 0; s && i < cs->n; i++) {
        double score = org_match_score(org, cs->v[i].norm);
        if (score >= MIN_SCORE)
            s[n++] = (scored_t){&cs->v[i], score};
    }
    if (n)
        qsort(s, n, sizeof(*s), cmp_scored);
    for (size_t i = 0; i < n && i < MAX_SUGGESTIONS; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:f}", "customer_id", s[i].c->id, "name",
                                             s[i].c->name, "score",
                                             round(s[i].score * 1000.0) / 1000.0));
    free(s);
    org_match_name_destroy(org);
    return arr;
}

void api_ticketing_orgs_list(gw_t *gw, struct evhttp_request *req, const char *tenant) {
    const char *route = "ticketing_orgs";
    static const char *const rest[4] = {"ticketing:orgs", "ticketing:orgmap",
                                        "ticketing:unmapped", "ticketing:unmapped_count"};
    redisReply *h[4] = {0};
    char err[256], key[128];
    int ok = 1;
    for (int i = 0; ok && i < 4; i++) {
        msp_key(key, sizeof(key), tenant, "%s", rest[i]);
        ok = (h[i] = gw_redis(gw, err, sizeof(err), "HGETALL %s", key)) != NULL;
    }
    custs_t cs = {0};
    size_t cap = 1, n = 0;
    for (int i = 0; ok && i < 4; i++)
        cap += h[i]->elements / 2;
    const char **ids = ok ? calloc(cap, sizeof(*ids)) : NULL;
    if (ok && !ids) {
        snprintf(err, sizeof(err), "out of memory");
        ok = 0;
    }
    for (int i = 0; ok && i < 4; i++)
        for (size_t j = 0; j + 1 < h[i]->elements; j += 2)
            if (h[i]->element[j]->type == REDIS_REPLY_STRING)
                ids[n++] = h[i]->element[j]->str;
    if (n)
        qsort(ids, n, sizeof(*ids), cmp_str);

    /* customers are loaded only when some unmapped org has a name to compare */
    int need_customers = 0;
    for (size_t i = 0; ok && i < n && !need_customers; i++)
        need_customers = !gw_hget(h[1], ids[i]);
    if (ok && need_customers && load_customers(gw, tenant, &cs, err, sizeof(err)) != 0)
        ok = 0;

    json_t *orgs = ok ? json_array() : NULL;
    for (size_t i = 0; ok && i < n; i++) {
        if (i > 0 && strcmp(ids[i], ids[i - 1]) == 0)
            continue;
        const char *seen = gw_hget(h[0], ids[i]), *map = gw_hget(h[1], ids[i]);
        const char *uname = gw_hget(h[2], ids[i]), *ucount = gw_hget(h[3], ids[i]);
        json_t *jseen = seen ? json_loads(seen, 0, NULL) : NULL;
        const char *name = json_string_value(json_object_get(jseen, "org_name"));
        if (!name && uname && uname[0])
            name = uname;
        json_t *mapping = json_null();
        if (map) {
            json_t *m = json_loads(map, 0, NULL);
            mapping = m ? m : json_string(map);
        }
        json_t *o = json_pack("{s:s,s:o,s:o,s:o,s:I,s:o}", "org_id", ids[i], "org_name",
                              str_or_null(name), "last_seen_at",
                              str_or_null(json_string_value(json_object_get(jseen,
                                                                            "last_seen_at"))),
                              "mapping", mapping, "unmapped_incidents",
                              (json_int_t)(ucount ? strtoll(ucount, NULL, 10) : 0),
                              "suggestions", map ? json_array() : suggestions(&cs, name));
        json_decref(jseen);
        if (o)
            json_array_append_new(orgs, o);
    }
    free(ids);
    custs_free(&cs);
    for (int i = 0; i < 4; i++)
        if (h[i])
            freeReplyObject(h[i]);
    if (!ok)
        gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
    else
        gw_reply(gw, req, route, 200, json_pack("{s:o}", "orgs", orgs));
}
