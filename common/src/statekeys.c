/*
 * statekeys.c — the table of Redis keys by kind (statekeys.h).
 *
 * Rows are matched in order; a suffix ending in '*' matches every suffix that starts with the
 * text before it. Keep the exact rows before the families that would also match them.
 */
#include "mspsync/statekeys.h"

#include "mspsync/aredis.h"
#include "mspsync/redis.h"

#include <stdio.h>
#include <string.h>

static const msp_statekey_t TABLE[] = {
    /* configuration: journaled to the `config` topic, restored from it */
    {"tenant", MSP_STATE_CONFIG, "restored from the config topic"},
    {"integration:*", MSP_STATE_CONFIG, "restored from the config topic (sealed as stored)"},
    {"webhook:mtp", MSP_STATE_CONFIG, "restored from the config topic (sealed as stored)"},
    {"ticketing:config", MSP_STATE_CONFIG, "restored from the config topic"},
    {"ticketing:orgmap", MSP_STATE_CONFIG, "restored from the config topic"},
    {"billing:config", MSP_STATE_CONFIG, "restored from the config topic"},
    {"billing:tenants", MSP_STATE_CONFIG,
     "restored from the config topic (the tenants whose billing is enabled)"},
    {"keys", MSP_STATE_CONFIG, "restored from the config topic (hashes of the API keys)"},
    {"audit:*", MSP_STATE_CONFIG,
     "restored from the config topic (audit:seq and one record per entry, never overwritten)"},
    /* derived */
    {"tenants", MSP_STATE_DERIVED, "the ids of the restored tenant hashes"},
    {MSP_STATE_EPOCH_SUFFIX, MSP_STATE_DERIVED, "set when a restore (or a first start) ends"},
    {MSP_STATE_RESTORED_AT_SUFFIX, MSP_STATE_DERIVED,
     "set when a restore that found configuration ends (the time of the latest loss)"},
    {MSP_STATE_INVENTORY_SUFFIX, MSP_STATE_DERIVED,
     "set to the epoch by the normalizer that rebuilt the inventory for it"},
    {MSP_STATE_RESTORED_SUFFIX, MSP_STATE_DERIVED,
     "set to the epoch by a restore that found configuration (a replay is due)"},
    {"state:traces", MSP_STATE_DERIVED,
     "set to the epoch by the gateway that rebuilt the traces for it (trace_rebuild.c)"},
    {"traces:rebuild_lock", MSP_STATE_COORD, "the next traces rebuild's claim"},
    {"state:billing", MSP_STATE_DERIVED,
     "set to the epoch by the billing replica that replayed usage.events for it"},
    {"inv:rebuild_lock", MSP_STATE_COORD, "the next inventory rebuild's claim"},
    {"inv:dpending", MSP_STATE_DERIVED,
     "a date change parked until Kafka acknowledged it: not rebuilt, re-derived — its input is "
     "not committed before, and the merged asset reaches the assets topic only after the change "
     "reached date.changes, so the replay after the rebuild computes the change again"},
    {"inv:stats", MSP_STATE_COORD,
     "per type the last job whose end-of-type marker the normalizer committed (the gateway's "
     "\"still syncing\" reads it): the next job writes it again, and a job after a loss is a "
     "full sync; beside it, diagnostic counters (changed, unchanged, gone, last_record_at) that "
     "no route serves and that count from zero again"},
    {"inv:*", MSP_STATE_DERIVED,
     "rebuilt by a normalizer from the compacted customers, contacts, tickets, settings and "
     "assets topics (services/normalizer/rebuild.c); fingerprints and seen marks by the next "
     "sync"},
    {"ticketing:stats", MSP_STATE_DERIVED,
     "counters: recounted from the ticket-creator's trace steps in the traces topic (the entries "
     "made before the loss) by the traces rebuild; those since are counted live"},
    {"ticketing:unmapped*", MSP_STATE_DERIVED, "the next dead-lettered incident of the org"},
    {"state:held", MSP_STATE_DERIVED,
     "set to the epoch by the ticket-creator that rebuilt the held-incident index for it"},
    {"ticketing:held_rebuild_lock", MSP_STATE_COORD, "the next held-index rebuild's claim"},
    {"ticketing:held", MSP_STATE_DERIVED,
     "the index of a tenant's held incidents: rebuilt once per epoch by a ticket-creator from "
     "incidents.held (the held records after the tenant's last release mark)"},
    {"ticketing:holding", MSP_STATE_DERIVED, "the tenants with a held index (as above)"},
    {"ticketing:rescanned", MSP_STATE_DERIVED,
     "the Syncro customers whose tickets were searched for markers after the latest loss "
     "(customer -> epoch): lost with the records, so the next miss searches again"},
    {"billing:marks:*", MSP_STATE_DERIVED,
     "rebuilt by a billing replica replaying usage.events (kept 400 days) before the next push"},
    {"billing:seen", MSP_STATE_DERIVED, "as the marks"},
    {"billing:late", MSP_STATE_DERIVED, "as the marks"},
    {"billing:stats", MSP_STATE_DERIVED,
     "counters: recounted by the replay of usage.events (the reports received before the loss); "
     "those since are counted live"},
    {"billing:lines", MSP_STATE_CACHE, "the next push reads the recurring invoices again"},
    {"billing:pushed", MSP_STATE_CACHE,
     "the next push reads Syncro's quantities before it writes (nothing is written twice)"},
    {"billing:push", MSP_STATE_CACHE, "the last push's summary: shown again after the next one"},
    {"billing:history:*", MSP_STATE_DERIVED,
     "the history of quantities written: rebuilt with the traces from the traces topic (its "
     "journal, kept 91 days; services/gateway/trace_rebuild.c)"},
    {"history:*", MSP_STATE_DERIVED,
     "sync history (jobs, index) and the reader's positions: the gateway reads sync.events and "
     "dlq again from their start"},
    {"dlq", MSP_STATE_DERIVED, "as history:* (the tenant's dead letter index)"},
    {"dlq:*", MSP_STATE_DERIVED,
     "as history:*; a replay's mark (replayed_at, replayed_by) is lost: one more replay is "
     "allowed (harmless, consumers are idempotent)"},
    {"wb:wrote", MSP_STATE_DERIVED,
     "the echo guard: rebuilt with the inventory from date.changes (the last value per target "
     "and field its integration opted into)"},
    {"wb:*", MSP_STATE_DERIVED,
     "the per-asset states (wb:<asset>) and done sets (wb:<asset>:done): journaled per asset to "
     "the compacted wb.states topic, rebuilt from it once per epoch by a write-back "
     "replica (HSETNX/SADD: a state written since the loss stays) before any change is loaded "
     "(services/write-back/state.c)"},
    {"state:writeback", MSP_STATE_DERIVED,
     "set to the epoch by the write-back replica that rebuilt the states from wb.states"},
    {"writeback:rebuild_lock", MSP_STATE_COORD, "the next write-back state rebuild's claim"},
    /* coordination */
    {"status:*", MSP_STATE_COORD, "the next job writes it again"},
    {"cursor:*", MSP_STATE_COORD, "a job without its cursor restarts as a full sync"},
    {"mark:*", MSP_STATE_COORD,
     "an incremental pass without its high-water mark (tickets' updated_at) reads everything"},
    {"sched:*", MSP_STATE_COORD, "the scheduler's next lease"},
    {"rl", MSP_STATE_COORD, "a rate-limit bucket starts full (bounded by the vendor's own limit)"},
    {"restore:lock", MSP_STATE_COORD, "the next restore's claim"},
    {MSP_STATE_INVENTORY_PENDING_SUFFIX, MSP_STATE_COORD,
     "set by a restore that found configuration, deleted when the inventory is rebuilt"},
    {"billing:rebuild_lock", MSP_STATE_COORD, "the next billing replay's claim"},
    {"ticketing:release_lock", MSP_STATE_COORD, "the next releaser's claim"},
    {"ticketing:rescan_lock:*", MSP_STATE_COORD, "the next rescan's claim (one per customer)"},
    {"billing:sched_day", MSP_STATE_COORD, "the day's push may be requested again (harmless)"},
    {"replay:*", MSP_STATE_COORD,
     "a dead letter replay's claim on one id (expires after 300 s): lost, a concurrent replay "
     "of the same id may run twice (harmless, consumers are idempotent)"},
    /* cache */
    {"token:*", MSP_STATE_CACHE, "a new OAuth token is fetched"},
    {"cwrmm:defs", MSP_STATE_CACHE, "read again from ConnectWise RMM"},
    {"ticketing:orgs", MSP_STATE_CACHE, "the next incident of each org names it again"},
    {"tk:*", MSP_STATE_DERIVED,
     "ticket records: after a loss, the first miss of each Syncro customer rebuilds them from the "
     "markers of the customer's tickets (design.md \"Ticket records after a Redis loss\"); the "
     "events sets are not rebuilt: a rebuilt record checks the ticket's comments instead"},
    {"trace:*", MSP_STATE_DERIVED,
     "incident traces and asset histories (trace.h): every entry is journaled to the traces "
     "topic (kept 91 days); after a loss one gateway rebuilds the lists from it, merged with the "
     "entries written since, with the writers' caps (services/gateway/trace_rebuild.c)"},
};
#define TABLE_LEN (sizeof(TABLE) / sizeof(TABLE[0]))

static int matches(const char *pattern, const char *suffix) {
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*')
        return strncmp(pattern, suffix, n - 1) == 0;
    return strcmp(pattern, suffix) == 0;
}

const msp_statekey_t *msp_statekey_find(const char *key, char *tenant, size_t tenant_size,
                                        const char **suffix) {
    static const char PREFIX[] = "mspsync:{";
    if (!key || strncmp(key, PREFIX, sizeof(PREFIX) - 1) != 0)
        return NULL;
    const char *t = key + sizeof(PREFIX) - 1;
    const char *close = strstr(t, "}:");
    if (!close)
        return NULL;
    const char *s = close + 2;
    if (tenant && tenant_size)
        snprintf(tenant, tenant_size, "%.*s", (int)(close - t), t);
    if (suffix)
        *suffix = s;
    for (size_t i = 0; i < TABLE_LEN; i++)
        if (matches(TABLE[i].suffix, s))
            return &TABLE[i];
    return NULL;
}

const msp_statekey_t *msp_statekey_at(size_t i) { return i < TABLE_LEN ? &TABLE[i] : NULL; }

const char *msp_state_kind_name(msp_state_kind_t k) {
    switch (k) {
    case MSP_STATE_CONFIG: return "config";
    case MSP_STATE_DERIVED: return "derived";
    case MSP_STATE_COORD: return "coordination";
    case MSP_STATE_CACHE: return "cache";
    }
    return "?";
}

int msp_state_lost(redisContext *c) {
    char key[64];
    if (!c)
        return -1;
    msp_key(key, sizeof(key), "_", MSP_STATE_EPOCH_SUFFIX);
    redisReply *r = redisCommand(c, "EXISTS %s", key);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? r->integer == 0 : -1;
    if (r)
        freeReplyObject(r);
    return rc;
}

static void lost_reply(void *arg, void (*fn)(void), redisReply *r, const char *why) {
    (void)why;
    void (*cb)(void *, int) = (void (*)(void *, int))fn;
    cb(arg, r && r->type == REDIS_REPLY_INTEGER ? r->integer == 0 : -1);
}

int msp_state_lost_async(msp_aredis_t *a, void (*cb)(void *arg, int lost), void *arg) {
    char key[64];
    msp_key(key, sizeof(key), "_", MSP_STATE_EPOCH_SUFFIX);
    return msp_aredis_cmd_fn(a, lost_reply, arg, (void (*)(void))cb, "EXISTS %s", key);
}

/* The mark is set only while the epoch it names is the current one. */
static const char MARK_LUA[] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
                               "redis.call('SET', KEYS[2], ARGV[1]) return 1";

int msp_state_mark(redisContext *c, const char *mark_suffix, const char *epoch) {
    char ke[64], km[128];
    if (!c)
        return -1;
    msp_key(ke, sizeof(ke), "_", MSP_STATE_EPOCH_SUFFIX);
    msp_key(km, sizeof(km), "_", "%s", mark_suffix);
    redisReply *r = redisCommand(c, "EVAL %s 2 %s %s %s", MARK_LUA, ke, km, epoch);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? r->integer == 1 : -1;
    if (r)
        freeReplyObject(r);
    return rc;
}
