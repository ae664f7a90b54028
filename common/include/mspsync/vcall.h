/*
 * vcall.h — the vendor-call engine: one call to a vendor account, from the rate-limit token to
 * the answer the caller acts on, and the timer that paces a piece of work's retries.
 *
 * Every worker that calls a vendor does the same thing, so it is done here once:
 *
 *   take a token from the account's GCRA bucket (shared by every replica; Redis down → wait)
 *   → authenticate (a fixed header such as Syncro's API key, or a token source such as the
 *     ConnectWise RMM OAuth cache) → send (http.h) → classify (msp_http_classify):
 *       OK          the body is read as the call expects (object, array, anything); a body that
 *                   does not read is retried like a 5xx
 *       RETRY       back off (msp_backoff_ms; the vendor's Retry-After wins) and send again, or
 *                   start again at the step the call names (a write whose outcome is unknown
 *                   must be read back, not resent)
 *       401         with a token source: forget the token and send once more with a fresh one;
 *                   a second 401 (before any 2xx) is final
 *       FATAL, DEADLETTER: the call's own fail handler may take over (a 404 that means "gone",
 *                   a 409 that means "list again"); otherwise the owner's fail hook gets the
 *                   vendor's own description (the account's describe) and dead-letters.
 *
 * The engine never decides what a piece of work is: its owner (a ticket-creator event, a
 * write-back change's target, a fetcher job, a gateway check) embeds msp_vcall_t and answers
 * through msp_vcall_ops_t. "attempt" counts the retries of the owner's current unit of work;
 * the owner resets it (msp_vcall_reset) where its unit begins, so that a loop of calls that
 * keeps failing (a PUT retried from its GET) still backs off further each round.
 *
 * Keyed workers (msp_keyq): set msp_vcall_t.item and env->kq; a call, a token or a timer that
 * comes back after the item's partition was revoked or the service began stopping abandons the
 * item (its offset stays unstored, another owner replays it) instead of going on.
 *
 * Single-threaded (the event loop). Callbacks run on the loop, never from inside the function
 * that started the work.
 */
#ifndef MSPSYNC_VCALL_H
#define MSPSYNC_VCALL_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "mspsync/aredis.h"
#include "mspsync/cwrmm.h"
#include "mspsync/http.h"
#include "mspsync/keyq.h"
#include "mspsync/ops.h"
#include "mspsync/vendor.h"

typedef struct msp_vcall_s msp_vcall_t;

/** A step of the owner's work (owner = msp_vcall_t.owner). */
typedef void(msp_vcall_step_fn)(void *owner);
/** A 2xx answer; body is the parsed JSON the call expected (borrowed; NULL for BODY_ANY). */
typedef void(msp_vcall_ok_fn)(void *owner, msp_http_response_t *res, json_t *body);
/** A final 4xx answer, before the owner's fail hook: @returns 1 when it took over. */
typedef int(msp_vcall_fail_fn)(void *owner, const msp_http_response_t *res);
/**
 * A retryable answer (RETRY class, or a 2xx body that does not read); NULL = msp_vcall_retry.
 * For calls that must not be resent blindly (a create whose outcome is unknown).
 */
typedef void(msp_vcall_retry_fn)(void *owner, const msp_http_response_t *res,
                                 int64_t retry_after_ms, const char *why);
/** The vendor's description of a failed answer (msp_syncro_describe, msp_cwrmm_describe). */
typedef char *(msp_vcall_describe_fn)(const msp_http_response_t *res, const char *method,
                                      const char *path, char *out, size_t out_size);
/** Take `cost` tokens: 1 taken, 0 wait *wait_ms, -1 error (errstr). msp_gcra_take's shape. */
typedef int(msp_vcall_take_fn)(redisContext *c, const char *key, double rate_per_sec, int burst,
                               int cost, int64_t *wait_ms, char *errstr, size_t errstr_size);
/** The same take on the async connection: msp_gcra_take_async's shape. */
typedef int(msp_vcall_take_async_fn)(msp_aredis_t *a, msp_gcra_async_t *t, const char *key,
                                     double rate_per_sec, int burst, int cost, msp_gcra_cb *cb,
                                     void *arg, char *err, size_t err_size);
/** Start one HTTP request: msp_http_request's shape. */
typedef int(msp_vcall_send_fn)(msp_http_t *h, const msp_http_request_t *req, msp_http_cb *cb,
                               void *opaque);

/** What the body of a 2xx answer must be. */
typedef enum {
    MSP_VCALL_BODY_ANY = 0, /**< not read (ok gets NULL) */
    MSP_VCALL_BODY_OBJECT,  /**< a JSON object */
    MSP_VCALL_BODY_ARRAY,   /**< a JSON array */
} msp_vcall_body_t;

/**
 * A token source (the vendor table's auth, the ConnectWise RMM OAuth cache). get writes an
 * "Authorization: …" header into header and @returns 0, or @returns 1 and answers later with
 * msp_vcall_authed (never from inside get), or @returns -1 (nothing will answer). rejected: an
 * API call answered 401 with that header; forget it and @return 1 when a fresh header may help
 * (0: the credential is the header itself, the 401 is final). cancel: the call is freed while
 * waiting (its answer must not come); may be NULL.
 */
typedef struct msp_vcall_auth_s {
    int (*get)(void *ctx, msp_vcall_t *c, char *header, size_t header_size);
    int (*rejected)(void *ctx, msp_vcall_t *c, const char *auth_header);
    void (*cancel)(void *ctx, msp_vcall_t *c);
} msp_vcall_auth_t;

/** A vendor row's auth (vendor.h) as a token source; ctx is a msp_vcall_vendor_t. */
extern const msp_vcall_auth_t msp_vcall_vendor_auth;
typedef struct msp_vcall_vendor_s {
    const msp_vendor_auth_t *auth; /* borrowed: the process's auth state (its slots are NULL
                                      once closed, so a call cancelled later touches nothing) */
    const msp_vendor_cred_t *cred; /* borrowed: the loaded integration */
} msp_vcall_vendor_t;

/** The vendor account a call goes to. Every pointer is borrowed for as long as the call runs. */
typedef struct msp_vcall_account_s {
    const char *base_url;   /**< the path is appended */
    const char *bucket_key; /**< the account's GCRA bucket */
    double rate;            /**< tokens per second */
    int burst;
    const char *auth_header;      /**< a fixed header; NULL: ask auth */
    const msp_vcall_auth_t *auth; /**< token source when auth_header is NULL */
    void *auth_ctx;
    const msp_vendor_t *vendor;      /**< its row describes failures (msp_vendor_describe) */
    msp_vcall_describe_fn *describe; /**< else this does */
} msp_vcall_account_t;

/**
 * @brief The account of a loaded vendor integration: base URL and bucket from va->cred, the
 * row's auth and words; rate and burst are the service's settings for that vendor. va is
 * borrowed (it must live as long as the calls).
 */
void msp_vcall_vendor_account(msp_vcall_t *c, msp_vcall_vendor_t *va, double rate, int burst);

/** Why a call cannot succeed (the owner's fail hook). */
typedef enum {
    MSP_VCALL_FAIL_AUTH = 0,    /**< the token endpoint refused the credentials */
    MSP_VCALL_FAIL_FORBIDDEN,   /**< 401/403 on the call: a permission or scope is missing */
    MSP_VCALL_FAIL_REFUSED,     /**< another 4xx: the request was refused as it stands */
    MSP_VCALL_FAIL_THROTTLED,   /**< opts.deadline_ms: the bucket frees only after the deadline
                                   (msp_vcall_t.wait_ms says when it would) */
    MSP_VCALL_FAIL_UNAVAILABLE, /**< opts.deadline_ms: Redis (the bucket) cannot be reached */
} msp_vcall_failure_t;

/** The owner's side, one static table per kind of owner. NULL entries are skipped. */
typedef struct msp_vcall_ops_s {
    /** Retrying cannot help: dead-letter (or fail the target) with why (the vendor's words). */
    void (*fail)(void *owner, msp_vcall_failure_t kind, const char *why);
    /** A retry is scheduled: log, count, show progress. attempt counts from 1. */
    void (*retrying)(void *owner, unsigned attempt, int64_t delay_ms, const char *why);
    /** max_attempts reached: the owner gives up (NULL: fail, kind REFUSED, with why). */
    void (*gave_up)(void *owner, unsigned attempts, const char *why);
    /** Every answer, classified (request metrics). */
    void (*answered)(void *owner, msp_http_outcome_t outcome);
    /** 1 when the owner's work is gone (besides a revoked item or stopping). */
    int (*gone)(void *owner);
    /** Leave the work unfinished (owners without a keyq item). */
    void (*abandon)(void *owner);
} msp_vcall_ops_t;

/** The process's parts, borrowed (they outlive every call). */
typedef struct msp_vcall_env_s {
    struct event_base *base;
    msp_http_t **http;    /**< the service's client pointer (NULL once stopping) */
    redisContext **redis; /**< the service's connection, reconnected through redis_url */
    msp_aredis_t *aredis; /**< when set, tokens are taken on it without blocking the loop */
    const char *redis_url;
    long long backoff_base_ms, backoff_cap_ms;
    const int *stopping;     /**< non-zero: every call abandons its work */
    msp_keyq_t *kq;          /**< keyed workers: where items are abandoned */
    msp_vcall_take_fn *take; /**< NULL = msp_gcra_take (tests pass their own) */
    msp_vcall_take_async_fn *take_async; /**< NULL = msp_gcra_take_async (with aredis) */
    msp_vcall_send_fn *send; /**< NULL = msp_http_request (tests pass their own) */
    int (*redis_ok)(redisContext **c, const char *url); /**< NULL = msp_redis_ok */
    msp_metrics_t *metrics;                             /**< may be NULL */
    const char *metric_retries;                         /**< counter of retries scheduled */
    const char *metric_throttled;                       /**< counter of waits for the bucket */
} msp_vcall_env_t;

/** How one call goes on (copied by msp_vcall_call). */
typedef struct msp_vcall_step_s {
    /** The classification of an answer (NULL = msp_http_classify; a pager may read a 404 as
     * "no more"). */
    msp_http_outcome_t (*classify)(void *owner, const msp_http_response_t *res);
    msp_vcall_ok_fn *ok;
    msp_vcall_body_t expect;
    msp_vcall_fail_fn *fail;       /**< may be NULL */
    msp_vcall_step_fn *retry_from; /**< NULL: a retry sends this call again */
    msp_vcall_retry_fn *retry;     /**< NULL: msp_vcall_retry */
} msp_vcall_step_t;

/**
 * A call's options beyond the engine's defaults (all zero: the workers' behaviour). Set after
 * msp_vcall_init; a one-shot check that answers a waiting client (the gateway's proof of
 * credentials, vendor.h) uses them, the fetcher, the ticket-creator and the write-back do not.
 */
typedef struct msp_vcall_opts_s {
    /** msp_now_ms() time (0: none). A wait for the bucket that would end after it, or Redis
     * unreachable, is not waited out: the fail hook gets MSP_VCALL_FAIL_THROTTLED (wait_ms set)
     * or MSP_VCALL_FAIL_UNAVAILABLE ("redis unavailable: …"). */
    int64_t deadline_ms;
    /** Each request's timeout (0: the HTTP client's own). With a deadline: the time left to it,
     * but at least this. */
    long timeout_ms;
    /** A token source's failure, whatever its status, goes to the fail hook (kind AUTH; status
     * set; why NULL when the source gave no words) instead of being retried. */
    int token_final;
    /** A 401 is final even with a token source that could refresh: no second send. The token
     * a 401 or 403 was answered to is forgotten all the same (rejected), so that a later call
     * — the credentials fixed at the vendor — asks for a fresh one. */
    int no_reauth;
} msp_vcall_opts_t;

struct msp_vcall_s {
    /* Set by msp_vcall_init. */
    const msp_vcall_env_t *env;
    const msp_vcall_ops_t *ops;
    void *owner;
    msp_keyq_item_t *item; /* keyed workers: the owner's item, else NULL */
    const char *tenant;    /* borrowed: logs, the token cache; may be NULL */
    unsigned max_attempts; /* 0 = retry without limit */
    msp_vcall_opts_t opts; /* zero unless the owner sets them */

    /* Set by msp_vcall_account (copied). */
    msp_vcall_account_t acct;

    /* The call in progress (owned). url NULL: acct.base_url + path. */
    char *method, *url, *path, *body;
    msp_vcall_step_t step;
    unsigned attempt; /* retries of the current unit of work */
    int reauthed;     /* a 401 already led to a fresh token */
    int http_inflight, token_wait, take_inflight;
    msp_gcra_async_t take; /* the rate-limit token being taken (env->aredis) */
    char auth[4096]; /* a token's header, zeroed after the call */
    long status;     /* the status of the last failure the fail hook got (token or call) */
    int64_t wait_ms; /* MSP_VCALL_FAIL_THROTTLED: when the bucket would have a token */

    struct event *timer;
    msp_vcall_step_fn *on_timer;
};

/** @brief Set up c (zeroed first) for owner; env and ops are borrowed. */
void msp_vcall_init(msp_vcall_t *c, const msp_vcall_env_t *env, const msp_vcall_ops_t *ops,
                    void *owner, msp_keyq_item_t *item);

/**
 * @brief Cancel a token wait and stop the timer (the work is finished elsewhere); an HTTP
 * request in flight still answers, and finds the work gone.
 */
void msp_vcall_stop(msp_vcall_t *c);

/** @brief msp_vcall_stop, then free the timer and the call's strings, zero the token. NULL-safe. */
void msp_vcall_clear(msp_vcall_t *c);

/** @brief The account of the calls that follow (copied; its pointers stay borrowed). */
void msp_vcall_account(msp_vcall_t *c, const msp_vcall_account_t *acct);

/** @brief A new unit of work begins: attempts count from 0, a 401 may re-authenticate again. */
void msp_vcall_reset(msp_vcall_t *c);

/**
 * @brief Start a call: path is stolen (malloc'd), body is stolen (may be NULL, sent compact),
 * step is copied. step->ok, step->fail / the fail hook, a retry or the abandon follows; only the
 * abandon of a work already gone may run from inside this function.
 */
void msp_vcall_call(msp_vcall_t *c, const char *method, char *path, json_t *body,
                    const msp_vcall_step_t *step);

/**
 * @brief msp_vcall_call with the whole URL (stolen) and a body already serialised (stolen, may
 * be NULL); path (copied) is only what failures print (no host, no query).
 */
void msp_vcall_call_url(msp_vcall_t *c, const char *method, char *url, const char *path, char *body,
                        const msp_vcall_step_t *step);

/** @brief Send the current call again (rate token, auth, request). */
void msp_vcall_send(msp_vcall_t *c);

/**
 * @brief Back off and go on: delay = msp_backoff_ms(attempt), the Retry-After (ms, -1 none)
 * when longer; attempt counts up; after max_attempts the owner gives up instead. Then the
 * call's retry_from step, or the call again.
 */
void msp_vcall_retry(msp_vcall_t *c, int64_t retry_after_ms, const char *why);

/** @brief msp_vcall_retry with the owner's own counter and next step (NULL: send again). */
void msp_vcall_retry_with(msp_vcall_t *c, unsigned *attempt, int64_t retry_after_ms,
                          const char *why, msp_vcall_step_fn *next);

/** @brief The delay msp_vcall_retry waits before retry number attempt (0 = first). */
int64_t msp_vcall_delay_ms(const msp_vcall_env_t *env, unsigned attempt, int64_t retry_after_ms,
                           double rand01);

/**
 * @brief Run fn(owner) in ms milliseconds (one timer per call; a new wait replaces it); a NULL fn
 * sends the current call again. A work gone meanwhile is abandoned instead.
 */
void msp_vcall_wait(msp_vcall_t *c, int64_t ms, msp_vcall_step_fn *fn);

/** @brief 1 when the work is gone: stopping, its item revoked, or the owner says so. */
int msp_vcall_gone(const msp_vcall_t *c);

/** @brief Leave the work unfinished: msp_keyq_abandon of the item, or the owner's abandon. */
void msp_vcall_abandon(msp_vcall_t *c);

/**
 * @brief The answer of a token source's get: auth_header (borrowed, copied) or NULL with the
 * token endpoint's status (401/403 = the credentials are refused: fail; else retry), its
 * Retry-After and error text.
 */
void msp_vcall_authed(msp_vcall_t *c, const char *auth_header, long status, int64_t retry_after_ms,
                      const char *error);

/**
 * @brief 1 when a 4xx with this status is the request's own fault, which retrying cannot help
 * (every 4xx but the RETRY class's 408/423/425/429). One-shot checks (the gateway's credential
 * checks) answer those 422 and the rest 502.
 */
int msp_vcall_refused(long status);

/** What an answer leads to (msp_vcall_judge). */
typedef enum {
    MSP_VCALL_DONE = 0, /**< a 2xx: the caller's ok */
    MSP_VCALL_RETRY,    /**< back off, send again */
    MSP_VCALL_REAUTH,   /**< forget the token, send once more */
    MSP_VCALL_FAIL,     /**< the call's fail handler, then the owner's fail hook */
} msp_vcall_action_t;

/**
 * @brief The pure decision on one answer classified o: plus one re-authentication on a 401 when
 * the account has a token source and c has not re-authenticated since its last 2xx.
 */
msp_vcall_action_t msp_vcall_judge(const msp_vcall_t *c, const msp_http_response_t *res,
                                   msp_http_outcome_t o);

/* ------------------------------------------------------------------------------------------ */
/* a one-shot check: the proof of a vendor.h PUT                                              */

typedef struct msp_vcall_proof_s msp_vcall_proof_t;

/** A token source's failure during a proof: status of the token endpoint (0: none), why (NULL
 * when the source gave no words). The row answers it (msp_vcall_proof_end). */
typedef void(msp_vcall_proof_fail_fn)(msp_vcall_proof_t *pr, long status, const char *why);

/**
 * A row's proof of credentials (vendor.h msp_vendor_put_part_t.prove) runs its calls through
 * this: the engine with the options of a client that waits — the put's deadline on bucket waits
 * and Redis, each request's timeout the time left (at least 1 s), a token failure handed back,
 * no re-auth on 401, no retries. A row's calls take every answer over in their steps (ok, fail,
 * retry); what is left is answered here the same for every vendor: the bucket past the deadline
 * 502 "the <label> API rate limit for this account is exhausted; try again in N s" (counted as
 * "rate_limited"), Redis 503, the gateway stopping 503 (done's body NULL), a request that could
 * not start 502. The row embeds it in its put state (owner = the proof).
 */
struct msp_vcall_proof_s {
    msp_vcall_t call;
    msp_vendor_put_t *put;
    msp_vcall_proof_fail_fn *token_failed; /**< NULL: the row's account has a fixed header */
};

/**
 * @brief Set pr up for put (its env, deadline, tenant): the row then sets the call's account
 * (msp_vcall_account or msp_vcall_vendor_account) and starts its first call.
 */
void msp_vcall_proof_init(msp_vcall_proof_t *pr, msp_vendor_put_t *put,
                          msp_vcall_proof_fail_fn *token_failed);

/** @brief End the proof: put->done(code, body) (body stolen). pr may be freed in it. */
void msp_vcall_proof_end(msp_vcall_proof_t *pr, int code, json_t *body);

/** @brief msp_vcall_proof_end with {"error": <printf text>}. */
void msp_vcall_proof_error(msp_vcall_proof_t *pr, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
