/*
 * redis.h — the small shared state: keys, GCRA rate limiting, cursors, idempotency keys.
 *
 * Every key is "mspsync:{<tenant>}:<rest>" — the {tenant} hash tag keeps a tenant's keys in one
 * Redis Cluster slot. Global keys use the pseudo-tenant "_" (rate-limit buckets use the vendor
 * account id as the tag: "mspsync:{syncro:<account>}:rl").
 *
 * Calls here are synchronous (hiredis blocking context, loopback latency): for work off an event
 * loop (a rebuild's thread) and the gateway's admin routes; an event loop uses its async
 * connection instead (aredis.h), which shares the scripts below. A redisContext whose err is
 * set is unusable: msp_redis_ensure() replaces it.
 */
#ifndef MSPSYNC_REDIS_H
#define MSPSYNC_REDIS_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "mspsync/aredis.h"

/**
 * @brief Connect to "host:port" or "redis://host:port[/db]" (timeout 2 s). @returns new or NULL.
 *
 * Also accepted (addition): a bare "host" or "redis://host" (port 6379), "[v6addr]:port", and
 * credentials "redis://[user]:password@host:port[/db]" (AUTH). Every command on the returned
 * context times out after 5 s (redisSetTimeout); a timeout sets c->err like any I/O error.
 */
redisContext *msp_redis_connect(const char *url, char *errstr, size_t errstr_size);

struct redisAsyncContext;
struct event_base;

/**
 * @brief Start a non-blocking connection to url (the forms msp_redis_connect accepts) on base's
 * libevent loop (hiredis async API). AUTH and SELECT are queued as its first commands, so every
 * later command runs authenticated in the right database; their failure is logged and closes the
 * connection. No command waits: replies arrive as callbacks on the loop. @returns the context
 * (connecting) or NULL with errstr (bad address, out of memory, refused at once).
 */
struct redisAsyncContext *msp_redis_async_connect(const char *url, struct event_base *base,
                                                  char *errstr, size_t errstr_size);

/** @brief Reconnect *c if it is NULL or in error. @returns 0 usable, -1 not (errstr). */
int msp_redis_ensure(redisContext **c, const char *url, char *errstr, size_t errstr_size);

/**
 * @brief 1 when c failed because the server closed or reset a connection that had been working
 * (EOF, ECONNRESET, EPIPE): Redis restarted, failed over or dropped idle clients. A command that
 * meets this on a connection that was idle was most likely never run, so one retry on a fresh
 * connection is what a caller should do; any other error (timeout, refused) is not retried.
 */
int msp_redis_stale(const redisContext *c);

/** @brief msp_redis_ensure, logging redis.unavailable when it fails. @returns 1 usable, 0 not. */
int msp_redis_ok(redisContext **c, const char *url);

/** @brief msp_key with a va_list. */
int msp_vkey(char *buf, size_t size, const char *tenant, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/** @brief "mspsync:{tenant}:" + printf(fmt, ...) into buf. @returns length (truncated → -1). */
int msp_key(char *buf, size_t size, const char *tenant, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * @brief Take `cost` tokens from a GCRA bucket (one Lua script; the clock is Redis TIME, so every
 * replica agrees). The bucket allows `rate_per_sec` on average and bursts of up to `burst`.
 * The script runs by EVALSHA and falls back to EVAL on NOSCRIPT (after a Redis restart/flush).
 * @returns 1 allowed; 0 limited (*retry_after_ms = wait before trying again); -1 error (errstr).
 */
int msp_gcra_take(redisContext *c, const char *key, double rate_per_sec, int burst, int cost,
                  int64_t *retry_after_ms, char *errstr, size_t errstr_size);

/**
 * @brief The pure GCRA decision that msp_gcra_take's Lua script performs inside Redis (addition;
 * the two use the same integer arithmetic, so this is what the tests check).
 *
 * Emission interval T = ceil(1e6 / rate_per_sec) µs. tat = max(tat_us, now_us) (tat_us = -1: no
 * bucket yet); new_tat = tat + T*cost; allow_at = new_tat - T*burst. now < allow_at → limited,
 * *retry_after_us = allow_at - now, the bucket is unchanged (*new_tat_us = tat_us). Otherwise
 * allowed, *retry_after_us = 0 and *new_tat_us = new_tat is the value to store. An idle bucket
 * therefore allows exactly `burst` immediate requests, then one per T.
 * @returns 1 allowed, 0 limited, -1 invalid arguments (rate not > 0 and finite, burst < 1,
 *          cost < 1, cost > burst — such a request could never pass). Out pointers may be NULL.
 */
int msp_gcra_decide(int64_t now_us, int64_t tat_us, double rate_per_sec, int burst, int cost,
                    int64_t *new_tat_us, int64_t *retry_after_us);

/*
 * The pieces of msp_gcra_take that the asynchronous take (aredis.h) shares with it: the
 * arguments checked and formatted (0, or -1 for a bucket msp_gcra_decide calls invalid), the
 * script and its SHA-1, and the reading of its reply (1 / 0 with *retry_after_ms / -1 errstr).
 */
int msp_gcra_format(double rate_per_sec, int burst, int cost, char rate[40], char bs[16],
                    char cs[16]);
const char *msp_gcra_script_body(void);
const char *msp_gcra_script_sha(void);
int msp_gcra_reply(const redisReply *r, const char *key, int64_t *retry_after_ms, char *errstr,
                   size_t errstr_size);

/** @brief GET key. @returns new string (caller frees) or NULL when absent; *err = -1 on error. */
char *msp_redis_get(redisContext *c, const char *key, int *err);

/**
 * @brief Compare-and-set in one Lua script: set key to newval (NULL = delete) only if its current
 * value equals expected (NULL = the key must not exist).
 * @returns 1 swapped, 0 current value differs, -1 error.
 */
int msp_cursor_cas(redisContext *c, const char *key, const char *expected, const char *newval);

/**
 * @brief msp_cursor_cas that also sets a TTL on the new value (addition). ttl_ms > 0: the new
 * value expires after ttl_ms; ttl_ms <= 0: it does not expire (a TTL the key had is removed).
 * Ignored when newval is NULL. msp_cursor_cas(...) is msp_cursor_cas_ex(..., 0).
 */
int msp_cursor_cas_ex(redisContext *c, const char *key, const char *expected, const char *newval,
                      int64_t ttl_ms);

/**
 * @brief msp_cursor_cas_ex on an async connection (aredis.h; addition): the same script, sent
 * with EVAL, answered later on the loop through cb(arg, reply, why) — an aredis callback, so the
 * owner's msp_aredis_cancel(a, arg) drops it too. Read the answer with msp_cursor_cas_reply.
 * @returns 0 sent (cb will run), -1 not connected now or bad arguments (cb will not).
 */
int msp_cursor_cas_async(msp_aredis_t *a, const char *key, const char *expected, const char *newval,
                         int64_t ttl_ms, msp_aredis_cb *cb, void *arg);

/** @brief The answer of msp_cursor_cas_async: 1 swapped, 0 differs, -1 error (reply NULL). */
int msp_cursor_cas_reply(const redisReply *reply);

/**
 * @brief Claim an idempotency key: SET key value NX PX ttl_ms (ttl 0 = no expiry).
 * @returns 1 claimed; 0 already held (*existing = new copy of the holder's value when non-NULL);
 *          -1 error.
 */
int msp_idem_claim(redisContext *c, const char *key, const char *value, int64_t ttl_ms,
                   char **existing);

/**
 * A lease: a lock key (SET NX PX) that its holder renews while it works, so a holder that was
 * killed lets another process go within one time to live instead of a long fixed one. Used by
 * the one-per-deployment rebuilds after a loss of Redis (the gateway's restore, the normalizer's
 * inventory, billing's replay). Only the holder (a random token) renews or releases it.
 */
typedef struct msp_lease_s {
    redisContext *c;
    char key[128];
    char me[40];
    int ttl_ms;
    int64_t renewed_ms;
} msp_lease_t;

/** @brief Claim key for ttl_ms. @returns 1 taken, 0 another holds it, -1 Redis error. */
int msp_lease_take(msp_lease_t *l, redisContext *c, const char *key, int ttl_ms);

/**
 * @brief Renew the lease when a fifth of its time to live passed since the last renewal (cheap
 * to call often). @returns 1 still held, 0 lost (expired and taken by another, or Redis failed).
 */
int msp_lease_keep(msp_lease_t *l);

/** @brief Release the lease if this holder still has it. */
void msp_lease_release(msp_lease_t *l);

#endif
