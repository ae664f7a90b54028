/*
 * integration_remove.c — DELETE /v1/tenants/{t}/integrations/{name}, for every vendor, and the
 * inventory tombstones an offboarding (api_tenants.c) shares with it.
 *
 * What a DELETE does is the row's data (vendor.h, msp_vendor_admin_t), not code per vendor:
 *   - a purge, for a row with delete_alone_purges whose integration is the tenant's only one
 *     (Syncro): a tombstone for every inventory id goes to the compacted record topics, and only
 *     once Kafka has them all are the Redis keys removed — integration:/status:<name>, the row's
 *     purge_keys (Syncro's ticketing org → customer mappings, whose customer ids would dangle, and
 *     its ticket marks) and every inv: key. A failed publish leaves everything in place so the
 *     delete can simply be retried. 204.
 *   - otherwise a removal: {"kind":"integration_removed"} goes to raw.records (the tenant's
 *     partition, so the normalizer removes the integration's records after every record fetched
 *     before it, keeping the assets another vendor still sees) and, once Kafka has it, the keys
 *     go: integration:/status:/sched:<name>, the row's extra_keys (what a disable drops) and
 *     removal_keys. A failed publish deletes nothing. 202.
 * Either way the stored secret is forgotten by the log redaction (gw_secret_keep with NULL).
 */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"

#define SCAN_CHUNK 500

/* ---- the purge ---------------------------------------------------------------------------- */

typedef struct purge_s {
    gw_held_t *held;
    const msp_vendor_t *vendor;
    char tenant[64];
    long long tombstones;
    char redis_error[256]; /* reading ids failed mid-way */
} purge_t;

/* Escape the glob specials of SCAN MATCH (* ? [ ] \); braces are literal. */
static void glob_escape(const char *in, char *out, size_t size) {
    size_t o = 0;
    for (; *in && o + 2 < size; in++) {
        if (strchr("*?[]\\", *in))
            out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = '\0';
}

/* One gw_unlink_prefix in progress: SCAN, UNLINK what it found, SCAN again from its cursor. */
typedef struct unlink_s {
    char pattern[300];
    char cursor[32];
    int last; /* the SCAN that found these keys returned cursor 0 */
    gw_unlink_done_cb *done;
    void *arg;
    char err[256]; /* "" = done without error */
} unlink_t;

static void unlink_scan(gw_t *gw, unlink_t *u);

static void unlink_end_task(gw_t *gw, void *arg) {
    unlink_t *u = arg;
    u->done(gw, u->arg, u->err[0] ? u->err : NULL);
    free(u);
}

/* The walk ended (err NULL: every key unlinked): its owner goes on, on a coroutine (admin.c),
 * since what it does next — the answer's audit entry — calls gw_redis. */
static void unlink_end(gw_t *gw, unlink_t *u, const char *err) {
    snprintf(u->err, sizeof(u->err), "%s", err ? err : "");
    gw_admin_call(gw, unlink_end_task, u);
}

static void unlinked(gw_t *gw, void *arg, redisReply *r, const char *err) {
    (void)r;
    unlink_t *u = arg;
    if (err)
        unlink_end(gw, u, err);
    else if (u->last)
        unlink_end(gw, u, NULL);
    else
        unlink_scan(gw, u);
}

static void scanned(gw_t *gw, void *arg, redisReply *r, const char *err) {
    unlink_t *u = arg;
    if (err) {
        unlink_end(gw, u, err);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        unlink_end(gw, u, "unexpected SCAN reply");
        return;
    }
    snprintf(u->cursor, sizeof(u->cursor), "%s", r->element[0]->str);
    u->last = strcmp(u->cursor, "0") == 0;
    redisReply *keys = r->element[1];
    if (keys->elements == 0) {
        unlinked(gw, u, NULL, NULL);
        return;
    }
    size_t n = keys->elements + 1;
    const char **argv = malloc(n * sizeof(*argv));
    size_t *argvlen = malloc(n * sizeof(*argvlen));
    if (!argv || !argvlen) {
        free(argv);
        free(argvlen);
        unlink_end(gw, u, "out of memory");
        return;
    }
    argv[0] = "UNLINK";
    argvlen[0] = 6;
    for (size_t i = 0; i < keys->elements; i++) {
        argv[i + 1] = keys->element[i]->str;
        argvlen[i + 1] = keys->element[i]->len;
    }
    gw_redis_async_argv(gw, unlinked, u, (int)n, argv, argvlen); /* copies the keys */
    free(argv);
    free(argvlen);
}

static void unlink_scan(gw_t *gw, unlink_t *u) {
    char count[16];
    snprintf(count, sizeof(count), "%d", SCAN_CHUNK);
    const char *argv[] = {"SCAN", u->cursor, "MATCH", u->pattern, "COUNT", count};
    gw_redis_async_argv(gw, scanned, u, 6, argv, NULL);
}

void gw_unlink_prefix(gw_t *gw, const char *prefix, gw_unlink_done_cb *done, void *arg) {
    unlink_t *u = calloc(1, sizeof(*u));
    if (!u) {
        done(gw, arg, "out of memory");
        return;
    }
    glob_escape(prefix, u->pattern, sizeof(u->pattern) - 1);
    strcat(u->pattern, "*");
    snprintf(u->cursor, sizeof(u->cursor), "0");
    u->done = done;
    u->arg = arg;
    unlink_scan(gw, u);
}

/* keys one DEL of a removal or purge names, at most: integration:/status:/sched:<name> and the
 * row's */
#define KEYS_MAX (3 + MSP_VENDOR_DROP_KEYS_MAX)

/* Add tenant's keys of list (after the tenant; NULL = none) to argv. */
static void add_keys(const char *tenant, const char *const *list, char keys[][128], int *nk,
                     const char **argv, int *argc) {
    for (int i = 0; list && list[i] && *nk < KEYS_MAX; i++) {
        msp_key(keys[*nk], sizeof(keys[*nk]), tenant, "%s", list[i]);
        argv[(*argc)++] = keys[(*nk)++];
    }
}

/* Add integration:<name>, status:<name> and, with sched, sched:<name> to argv. */
static void add_own_keys(const char *tenant, const char *name, int sched, char keys[][128], int *nk,
                         const char **argv, int *argc) {
    static const char *const own[] = {"integration:", "status:", "sched:"};
    for (int i = 0; i < (sched ? 3 : 2); i++) {
        msp_key(keys[*nk], sizeof(keys[*nk]), tenant, "%s%s", own[i], name);
        argv[(*argc)++] = keys[(*nk)++];
    }
}

/* The purge's keys: integration:/status:, the row's purge_keys (the inv: keys follow). */
static int purge_keys(gw_t *gw, const char *tenant, const msp_vendor_t *v, char *err,
                      size_t err_size) {
    char keys[KEYS_MAX][128];
    const char *argv[KEYS_MAX + 1];
    int argc = 0, nk = 0;
    argv[argc++] = "DEL";
    add_own_keys(tenant, v->name, 0, keys, &nk, argv, &argc);
    add_keys(tenant, v->admin->purge_keys, keys, &nk, argv, &argc);
    redisReply *r = gw_redis_argv(gw, err, err_size, argc, argv, NULL);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* Every inv: key is gone too (or could not be): the answer. */
static void purge_unlinked(gw_t *gw, void *arg, const char *err) {
    purge_t *d = arg;
    if (err) {
        gw_held_reply_error(d->held, 503, "redis unavailable: %s", err);
    } else {
        gw_secret_keep(gw, d->tenant, d->vendor->name, NULL);
        MSP_INFO("integration.deleted", d->tenant, "%s integration removed, %lld tombstones",
                 d->vendor->name, d->tombstones);
        gw_held_reply(d->held, 204, NULL);
    }
    free(d);
}

static void purge_delivered(gw_t *gw, void *arg, const char *error) {
    purge_t *d = arg;
    char err[256];
    if (d->redis_error[0]) {
        gw_held_reply_error(d->held, 503, "redis unavailable: %s", d->redis_error);
    } else if (error) {
        MSP_WARN("integration.delete_failed", d->tenant, "tombstones not delivered: %s", error);
        gw_held_reply_error(d->held, 503,
                            "could not publish the tombstones: %s; nothing was deleted, try again",
                            error);
    } else if (purge_keys(gw, d->tenant, d->vendor, err, sizeof(err)) != 0) {
        gw_held_reply_error(d->held, 503, "redis unavailable: %s", err);
    } else {
        char prefix[128];
        msp_key(prefix, sizeof(prefix), d->tenant, "inv:");
        gw_unlink_prefix(gw, prefix, purge_unlinked, d); /* answers and frees d */
        return;
    }
    free(d);
}

/* Tombstones for every id of one inventory zset. @returns 0 or -1 (err). */
static int tombstone_zset(gw_t *gw, gw_batch_t *b, const char *tenant, const char *zset,
                          const char *topic, long long *count, char *err, size_t err_size) {
    char key[128];
    msp_key(key, sizeof(key), tenant, "%s", zset);
    for (long long off = 0;; off += SCAN_CHUNK) {
        redisReply *r =
            gw_redis(gw, err, err_size, "ZRANGE %s %lld %lld", key, off, off + SCAN_CHUNK - 1);
        if (!r)
            return -1;
        size_t n = r->elements;
        for (size_t i = 0; i < n; i++) {
            char mkey[512];
            snprintf(mkey, sizeof(mkey), "%s/%s", tenant, r->element[i]->str);
            gw_batch_produce(b, topic, mkey, NULL, 0);
            (*count)++;
        }
        freeReplyObject(r);
        if (n < SCAN_CHUNK)
            return 0;
    }
}

int gw_tombstone_inventory(gw_t *gw, gw_batch_t *b, const char *tenant, long long *count, char *err,
                           size_t err_size) {
    /* every compacted record topic: the id sets of the inventory view name their keys */
    static const char *const inv[][2] = {{"inv:customers", MSP_TOPIC_CUSTOMERS},
                                         {"inv:assets", MSP_TOPIC_ASSETS},
                                         {"inv:contacts", MSP_TOPIC_CONTACTS},
                                         {"inv:tickets", MSP_TOPIC_TICKETS},
                                         {"inv:settings", MSP_TOPIC_SETTINGS}};
    for (size_t i = 0; i < sizeof(inv) / sizeof(inv[0]); i++)
        if (tombstone_zset(gw, b, tenant, inv[i][0], msp_topic(inv[i][1]), count, err, err_size) !=
            0)
            return -1;
    return 0;
}

/* Tombstone the whole inventory, then purge_delivered. Answers. */
static void purge(gw_t *gw, struct evhttp_request *req, const char *tenant, const msp_vendor_t *v) {
    purge_t *d = calloc(1, sizeof(*d));
    gw_batch_t *b = d ? gw_batch_new(gw, purge_delivered, d) : NULL;
    gw_held_t *held = b ? gw_hold(gw, req, "integration") : NULL;
    if (!held) {
        free(b);
        free(d);
        gw_reply_error(gw, req, "integration", 500, "out of memory");
        return;
    }
    d->held = held;
    d->vendor = v;
    snprintf(d->tenant, sizeof(d->tenant), "%s", tenant);
    gw_tombstone_inventory(gw, b, tenant, &d->tombstones, d->redis_error, sizeof(d->redis_error));
    gw_batch_seal(b); /* may answer right away (no ids) */
}

/* ---- the removal -------------------------------------------------------------------------- */

/* Delete the integration's keys: integration:, status:, sched:, the vendor's cached state (the
 * keys a disable drops) and the row's removal_keys. */
static int removal_keys(gw_t *gw, const char *tenant, const msp_vendor_t *v, char *err,
                        size_t err_size) {
    char keys[KEYS_MAX][128];
    const char *argv[KEYS_MAX + 1];
    int argc = 0, nk = 0;
    argv[argc++] = "DEL";
    add_own_keys(tenant, v->name, 1, keys, &nk, argv, &argc);
    add_keys(tenant, v->extra_keys, keys, &nk, argv, &argc);
    add_keys(tenant, v->admin->removal_keys, keys, &nk, argv, &argc);
    redisReply *r = gw_redis_argv(gw, err, err_size, argc, argv, NULL);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

typedef struct removal_s {
    char tenant[64];
    const msp_vendor_t *vendor;
} removal_t;

/* After the integration_removed envelope's delivery report: delete the keys. */
static int removed_after(gw_t *gw, void *arg, const char *error, char *err, size_t err_size) {
    removal_t *rm = arg;
    char why[200];
    int rc = 0;
    if (error) {
        MSP_WARN("integration.delete_failed", rm->tenant,
                 "integration_removed not delivered: %s; nothing deleted", error);
    } else if (removal_keys(gw, rm->tenant, rm->vendor, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "redis unavailable: %s", why);
        rc = -1;
    } else {
        gw_secret_keep(gw, rm->tenant, rm->vendor->name, NULL);
        MSP_INFO("integration.deleted", rm->tenant,
                 "%s integration removed; the normalizer removes its records", rm->vendor->name);
    }
    return rc; /* rm is freed by gw_produce_reply */
}

/* Publish integration_removed for v and, after Kafka's ack, delete its keys: 202. Answers. */
static void removal(gw_t *gw, struct evhttp_request *req, const char *tenant,
                    const msp_vendor_t *v) {
    const char *route = "integration", *integ = v->name;
    char now[32];
    msp_format_time(msp_wall_ms(), now, sizeof(now));
    json_t *msg =
        json_pack("{s:i,s:s,s:s,s:s,s:s}", "schema_version", 1, "kind", "integration_removed",
                  "tenant", tenant, "integration", integ, "removed_at", now);
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    removal_t *arg = calloc(1, sizeof(*arg));
    gw_held_t *held = text && arg ? gw_hold(gw, req, route) : NULL;
    if (!held) {
        free(text);
        free(arg);
        gw_reply_error(gw, req, route, 500, "out of memory");
        return;
    }
    snprintf(arg->tenant, sizeof(arg->tenant), "%s", tenant);
    arg->vendor = v;
    gw_produce_reply(gw, held, msp_topic(MSP_TOPIC_RAW_RECORDS), tenant, text, "the removal", 202,
                     json_pack("{s:s,s:s}", "integration", integ, "removed_at", now), removed_after,
                     arg);
    free(text);
}

/* ---- DELETE ------------------------------------------------------------------------------- */

void api_integration_delete(gw_t *gw, struct evhttp_request *req, const char *tenant,
                            const gw_integ_t *in) {
    const char *route = "integration";
    const msp_vendor_t *v = in->vendor;
    if (!gw_integ_require(gw, req, route, tenant, in, 0))
        return;
    /* With another vendor's integration beside it, only this one's records leave (through the
     * normalizer, which keeps the assets the other vendor still sees): 202. Alone, a purging
     * row's everything goes now: 204. */
    int shared = 1;
    if (v->admin->delete_alone_purges) {
        char err[256];
        shared = gw_integ_others(gw, tenant, v, err, sizeof(err));
        if (shared < 0) {
            gw_reply_error(gw, req, route, 503, "redis unavailable: %s", err);
            return;
        }
    }
    if (shared)
        removal(gw, req, tenant, v);
    else
        purge(gw, req, tenant, v);
}
