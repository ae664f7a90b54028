/*
 * aredis.h — a service's asynchronous Redis connection: hiredis async on the libevent loop,
 * kept up by itself, with a limit on how long a command may go unanswered.
 *
 * Every service whose work runs on an event loop (gateway, fetcher, ticket-creator, write-back)
 * sends its commands through one of these, so a slow or stopped Redis delays that work and
 * never stalls the loop: /healthz, timers, HTTP answers and Kafka callbacks go on.
 *
 *   - msp_aredis_cmd() queues a command and returns at once; its callback runs later on the
 *     loop with the reply, or with reply NULL and a reason (not connected, connection lost, no
 *     answer within the stall limit, shutting down). It never runs from inside msp_aredis_cmd().
 *     A command that cannot be queued (no connection at the moment) returns -1 and no callback
 *     comes: the caller waits and tries again, as it would after a failed reply.
 *   - The connection is made at once and, when lost or refused, again every 500 ms. AUTH and
 *     SELECT from the URL go first (msp_redis_async_connect).
 *   - Stall limit: when commands wait and no reply has come for stall_ms since the oldest of
 *     them was sent (replies still arriving are progress: a busy loop drains a long backlog a
 *     buffer at a time), the connection is dropped — every command in flight is answered with a NULL reply, which is what a blocking
 *     context's command timeout did — and made again. Redis runs commands of one connection in
 *     order, so one late reply means all later ones are late too.
 *   - A callback's owner that goes away first calls msp_aredis_cancel(arg): its pending
 *     callbacks are then dropped (the commands themselves still run on the server).
 *
 * Replies are hiredis's and are freed after the callback returns: copy what is kept. A reply of
 * type REDIS_REPLY_ERROR is a reply (the command ran and failed), not a lost connection.
 *
 * Single-threaded: every function is called on the loop's thread.
 */
#ifndef MSPSYNC_AREDIS_H
#define MSPSYNC_AREDIS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

typedef struct msp_aredis_s msp_aredis_t;

/** A command's answer: reply (borrowed) or NULL with why (static or borrowed text). */
typedef void(msp_aredis_cb)(void *arg, redisReply *reply, const char *why);

/**
 * @brief Connect to url (the forms msp_redis_connect accepts) on base's loop. stall_ms <= 0 =
 * 5000 (the blocking contexts' command timeout). @returns the connection (connecting, or
 * retrying by itself when the first attempt failed) or NULL when out of memory.
 */
msp_aredis_t *msp_aredis_new(struct event_base *base, const char *url, int stall_ms);

/** @brief Answer every pending command with NULL ("shutting down") and free a. NULL-safe. */
void msp_aredis_free(msp_aredis_t *a);

/**
 * @brief Queue a command (printf-like, as redisAsyncCommand; %b for binary). cb may be NULL (the
 * reply is not wanted). @returns 0 queued (cb will run), -1 not connected now (cb will not).
 */
int msp_aredis_cmd(msp_aredis_t *a, msp_aredis_cb *cb, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** @brief msp_aredis_cmd with an argument vector (argvlen NULL: strlen of each). */
int msp_aredis_cmdargv(msp_aredis_t *a, msp_aredis_cb *cb, void *arg, int argc, const char **argv,
                       const size_t *argvlen);

/** @brief msp_aredis_cmd with a command already in Redis's protocol (redisFormatCommand*). */
int msp_aredis_cmdformatted(msp_aredis_t *a, msp_aredis_cb *cb, void *arg, const char *cmd,
                            size_t len);

/**
 * A reply handler that also gets a function of its caller's: for helpers that read a reply for a
 * callback of their own type without allocating (msp_state_lost_async). arg is the owner, as for
 * msp_aredis_cmd (msp_aredis_cancel(a, arg) drops it).
 */
typedef void(msp_aredis_fn_cb)(void *arg, void (*fn)(void), redisReply *reply, const char *why);
int msp_aredis_cmd_fn(msp_aredis_t *a, msp_aredis_fn_cb *cb, void *arg, void (*fn)(void),
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/** @brief Drop every pending callback whose arg is arg (it is freed, or no longer waits). */
void msp_aredis_cancel(msp_aredis_t *a, const void *arg);

/** @brief 1 when a command can be queued now (connected or connecting). */
int msp_aredis_up(const msp_aredis_t *a);

/** @brief Monotonic ms of the last reply (0: none yet): readiness checks ask "lately?". */
int64_t msp_aredis_answered_ms(const msp_aredis_t *a);

/** @brief Commands queued and not yet answered. */
size_t msp_aredis_pending(const msp_aredis_t *a);

/* ---- the GCRA bucket, asynchronously ---------------------------------------------------------- */

/** The answer of a take: msp_gcra_take's 1 taken / 0 wait retry_after_ms / -1 error (err). */
typedef void(msp_gcra_cb)(void *arg, int rc, int64_t retry_after_ms, const char *err);

/** One take in flight; the caller owns it (embedded in its work) and keeps it until answered. */
typedef struct msp_gcra_async_s {
    msp_aredis_t *a;
    msp_gcra_cb *cb;
    void *arg;
    int evalsha; /* 1 while the EVALSHA is out; a NOSCRIPT answer resends as EVAL */
    char key[1024]; /* a Syncro bucket names its base URL: up to ~700 bytes */
    char rate[40], burst[16], cost[16];
} msp_gcra_async_t;

/**
 * @brief msp_gcra_take (redis.h) on the async connection: the same script, EVALSHA with one
 * EVAL after NOSCRIPT, the same decision. cb(arg, ...) runs later on the loop, exactly once,
 * unless msp_gcra_cancel came first. @returns 0 started; not started (cb will not run, err
 * says why): -1 invalid bucket or key too long, -2 not connected now.
 */
int msp_gcra_take_async(msp_aredis_t *a, msp_gcra_async_t *t, const char *key, double rate_per_sec,
                        int burst, int cost, msp_gcra_cb *cb, void *arg, char *err,
                        size_t err_size);

/** @brief Forget a take in flight: its callback will not run (t may be freed after). */
void msp_gcra_cancel(msp_gcra_async_t *t);

#endif
