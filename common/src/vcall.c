/*
 * vcall.c — the vendor-call engine (vcall.h): rate token → auth → send → classify → retry,
 * re-authenticate once, or fail with the vendor's words.
 *
 * The pieces follow the path of one attempt: msp_vcall_send takes the bucket's token, then
 * auth_then_request gets the header (fixed, or from the token source: msp_vcall_authed), then
 * request starts it and http_cb judges the answer (msp_vcall_judge is the pure part, tested on
 * its own). Every wait — Redis down, the bucket, a backoff — goes through the one timer of the
 * call, whose callback first checks that the work is still ours.
 */
#include "mspsync/vcall.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mspsync/backoff.h"
#include "mspsync/crypto.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"

/* ------------------------------------------------------------ lifecycle */

void msp_vcall_init(msp_vcall_t *c, const msp_vcall_env_t *env, const msp_vcall_ops_t *ops,
                    void *owner, msp_keyq_item_t *item) {
    memset(c, 0, sizeof(*c));
    c->env = env;
    c->ops = ops;
    c->owner = owner;
    c->item = item;
}

static void free_call(msp_vcall_t *c) {
    free(c->method);
    free(c->url);
    free(c->path);
    free(c->body);
    c->method = c->url = c->path = c->body = NULL;
}

void msp_vcall_stop(msp_vcall_t *c) {
    if (c->take_inflight)
        msp_gcra_cancel(&c->take);
    c->take_inflight = 0;
    if (c->token_wait && c->acct.auth && c->acct.auth->cancel)
        c->acct.auth->cancel(c->acct.auth_ctx, c);
    c->token_wait = 0;
    if (c->timer)
        event_del(c->timer);
}

void msp_vcall_clear(msp_vcall_t *c) {
    if (!c)
        return;
    msp_vcall_stop(c);
    if (c->timer)
        event_free(c->timer);
    c->timer = NULL;
    free_call(c);
    msp_secure_zero(c->auth, sizeof(c->auth));
}

void msp_vcall_account(msp_vcall_t *c, const msp_vcall_account_t *acct) { c->acct = *acct; }

void msp_vcall_reset(msp_vcall_t *c) {
    c->attempt = 0;
    c->reauthed = 0;
}

int msp_vcall_gone(const msp_vcall_t *c) {
    if (c->env->stopping && *c->env->stopping)
        return 1;
    if (c->item && c->item->revoked)
        return 1;
    return c->ops->gone && c->ops->gone(c->owner);
}

void msp_vcall_abandon(msp_vcall_t *c) {
    if (c->item)
        msp_keyq_abandon(c->env->kq, c->item);
    else if (c->ops->abandon)
        c->ops->abandon(c->owner);
}

/* ---------------------------------------------------------------- timer */

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    msp_vcall_t *c = arg;
    if (msp_vcall_gone(c)) {
        msp_vcall_abandon(c);
        return;
    }
    if (c->on_timer)
        c->on_timer(c->owner);
    else
        msp_vcall_send(c);
}

void msp_vcall_wait(msp_vcall_t *c, int64_t ms, msp_vcall_step_fn *fn) {
    if (!c->timer)
        c->timer = evtimer_new(c->env->base, timer_cb, c);
    c->on_timer = fn;
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(c->timer, &tv);
}

/* ---------------------------------------------------------------- retry */

static void count(const msp_vcall_t *c, const char *metric) {
    if (c->env->metrics && metric)
        msp_metric_add(c->env->metrics, metric, NULL, 1);
}

int64_t msp_vcall_delay_ms(const msp_vcall_env_t *env, unsigned attempt, int64_t retry_after_ms,
                           double rand01) {
    int64_t d = msp_backoff_ms(attempt, env->backoff_base_ms, env->backoff_cap_ms, rand01);
    return retry_after_ms > d ? retry_after_ms : d;
}

void msp_vcall_retry_with(msp_vcall_t *c, unsigned *attempt, int64_t retry_after_ms,
                          const char *why, msp_vcall_step_fn *next) {
    if (c->max_attempts && *attempt + 1 >= c->max_attempts) {
        (*attempt)++;
        if (c->ops->gave_up)
            c->ops->gave_up(c->owner, *attempt, why);
        else
            c->ops->fail(c->owner, MSP_VCALL_FAIL_REFUSED, why);
        return;
    }
    int64_t d = msp_vcall_delay_ms(c->env, *attempt, retry_after_ms, msp_rand01());
    (*attempt)++;
    count(c, c->env->metric_retries);
    if (c->ops->retrying)
        c->ops->retrying(c->owner, *attempt, d, why);
    msp_vcall_wait(c, d, next);
}

void msp_vcall_retry(msp_vcall_t *c, int64_t retry_after_ms, const char *why) {
    msp_vcall_retry_with(c, &c->attempt, retry_after_ms, why, c->step.retry_from);
}

/* ----------------------------------------------------------------- send */

static void http_cb(msp_http_response_t *res, void *opaque);

/* A request's timeout under the call's options (0: the client's own). */
static long timeout_ms(const msp_vcall_t *c) {
    if (!c->opts.deadline_ms)
        return c->opts.timeout_ms;
    int64_t left = c->opts.deadline_ms - msp_now_ms();
    return left < c->opts.timeout_ms ? c->opts.timeout_ms : (long)left;
}

static void request(msp_vcall_t *c, const char *auth_header) {
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", c->url ? "" : c->acct.base_url, c->url ? c->url : c->path);
    const char *headers[] = {auth_header, "Accept: application/json",
                             "Content-Type: application/json", NULL};
    msp_http_request_t req = {.method = c->method,
                              .url = url,
                              .headers = headers,
                              .body = c->body,
                              .body_len = c->body ? strlen(c->body) : 0,
                              .tenant = c->tenant,
                              .timeout_ms = timeout_ms(c)};
    msp_vcall_send_fn *send = c->env->send ? c->env->send : msp_http_request;
    c->http_inflight = 1;
    if (send(*c->env->http, &req, http_cb, c) != 0) {
        c->http_inflight = 0;
        msp_secure_zero(c->auth, sizeof(c->auth));
        msp_vcall_retry(c, -1, "could not start the HTTP request");
    }
}

static void auth_then_request(msp_vcall_t *c) {
    if (c->acct.auth_header || !c->acct.auth) {
        request(c, c->acct.auth_header);
        return;
    }
    c->token_wait = 1;
    int rc = c->acct.auth->get(c->acct.auth_ctx, c, c->auth, sizeof(c->auth));
    if (rc == 0) {
        c->token_wait = 0;
        request(c, c->auth);
    } else if (rc < 0) {
        c->token_wait = 0;
        msp_vcall_retry(c, -1, "out of memory asking for a token");
    }
}

void msp_vcall_authed(msp_vcall_t *c, const char *auth_header, long status, int64_t retry_after_ms,
                      const char *error) {
    c->token_wait = 0;
    if (msp_vcall_gone(c)) {
        msp_vcall_abandon(c);
        return;
    }
    if (!auth_header) {
        c->status = status;
        if (c->opts.token_final)
            c->ops->fail(c->owner, MSP_VCALL_FAIL_AUTH, error);
        else if (status == 401 || status == 403)
            c->ops->fail(c->owner, MSP_VCALL_FAIL_AUTH, error ? error : "token refused");
        else
            msp_vcall_retry(c, retry_after_ms, error ? error : "no token");
        return;
    }
    snprintf(c->auth, sizeof(c->auth), "%s", auth_header);
    request(c, c->auth);
}

/* opts.deadline_ms: the bucket cannot be read, and the caller will not wait for it. */
static void unavailable(msp_vcall_t *c, const char *err) {
    char why[700];
    snprintf(why, sizeof(why), "redis unavailable: %s", err);
    c->status = 0;
    c->ops->fail(c->owner, MSP_VCALL_FAIL_UNAVAILABLE, why);
}

/* Send the call again in ms (a NULL step is the engine's own: msp_vcall_send). */
static void wait_send(msp_vcall_t *c, int64_t ms) { msp_vcall_wait(c, ms, NULL); }

/* What the bucket said: go on, wait for it, or wait for Redis. */
static void after_take(msp_vcall_t *c, int rc, int64_t wait_ms, const char *err) {
    if (rc < 0 && c->opts.deadline_ms) {
        unavailable(c, err);
        return;
    }
    if (rc == 0 && c->opts.deadline_ms && msp_now_ms() + wait_ms > c->opts.deadline_ms) {
        c->wait_ms = wait_ms < 1 ? 1 : wait_ms;
        c->status = 0;
        c->ops->fail(c->owner, MSP_VCALL_FAIL_THROTTLED, "the account's rate limit is exhausted");
        return;
    }
    if (rc < 0) {
        MSP_WARN("ratelimit.error", c->tenant, "%s", err);
        wait_send(c, 500);
        return;
    }
    if (rc == 0) {
        count(c, c->env->metric_throttled);
        /* A little jitter so that calls sharing a bucket do not wake in lock-step. */
        wait_send(c, wait_ms + (int64_t)(msp_rand01() * 20));
        return;
    }
    auth_then_request(c);
}

static void took(void *arg, int rc, int64_t wait_ms, const char *err) {
    msp_vcall_t *c = arg;
    c->take_inflight = 0;
    if (msp_vcall_gone(c)) {
        msp_vcall_abandon(c);
        return;
    }
    after_take(c, rc, wait_ms, err);
}

/* The token on the async connection: the loop goes on while Redis answers (or does not). */
static void take_async(msp_vcall_t *c) {
    const msp_vcall_env_t *env = c->env;
    msp_vcall_take_async_fn *take = env->take_async ? env->take_async : msp_gcra_take_async;
    char err[600];
    c->take_inflight = 1;
    int rc = take(env->aredis, &c->take, c->acct.bucket_key, c->acct.rate, c->acct.burst, 1, took,
                  c, err, sizeof(err));
    if (rc == 0)
        return;
    c->take_inflight = 0;
    if (rc == -2 && c->opts.deadline_ms) {
        unavailable(c, err);
        return;
    }
    if (rc == -2) { /* not connected now: it reconnects by itself */
        MSP_WARN("redis.unavailable", c->tenant, "%s", err);
        wait_send(c, 1000);
        return;
    }
    after_take(c, -1, 0, err);
}

void msp_vcall_send(msp_vcall_t *c) {
    const msp_vcall_env_t *env = c->env;
    if (msp_vcall_gone(c)) {
        msp_vcall_abandon(c);
        return;
    }
    if (env->aredis) {
        take_async(c);
        return;
    }
    char err[256] = "no connection";
    int up = env->redis_ok ? env->redis_ok(env->redis, env->redis_url)
             : c->opts.deadline_ms
                 ? msp_redis_ensure(env->redis, env->redis_url, err, sizeof(err)) == 0
                 : msp_redis_ok(env->redis, env->redis_url);
    if (!up && c->opts.deadline_ms) {
        unavailable(c, err);
        return;
    }
    if (!up) {
        wait_send(c, 1000);
        return;
    }
    int64_t wait_ms = 0;
    msp_vcall_take_fn *take = env->take ? env->take : msp_gcra_take;
    int rc = take(*env->redis, c->acct.bucket_key, c->acct.rate, c->acct.burst, 1, &wait_ms, err,
                  sizeof(err));
    after_take(c, rc, wait_ms, err);
}

void msp_vcall_call(msp_vcall_t *c, const char *method, char *path, json_t *body,
                    const msp_vcall_step_t *step) {
    free_call(c);
    c->method = strdup(method);
    c->path = path;
    c->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    c->step = *step;
    msp_vcall_send(c);
}

void msp_vcall_call_url(msp_vcall_t *c, const char *method, char *url, const char *path, char *body,
                        const msp_vcall_step_t *step) {
    free_call(c);
    c->method = strdup(method);
    c->url = url;
    c->path = strdup(path);
    c->body = body;
    c->step = *step;
    msp_vcall_send(c);
}

/* --------------------------------------------------------------- answer */

msp_vcall_action_t msp_vcall_judge(const msp_vcall_t *c, const msp_http_response_t *res,
                                   msp_http_outcome_t o) {
    if (o == MSP_HTTP_OK)
        return MSP_VCALL_DONE;
    if (res->status == 401 && !c->acct.auth_header && c->acct.auth && c->acct.auth->rejected &&
        !c->reauthed && !c->opts.no_reauth)
        return MSP_VCALL_REAUTH;
    return o == MSP_HTTP_RETRY ? MSP_VCALL_RETRY : MSP_VCALL_FAIL;
}

int msp_vcall_refused(long status) {
    msp_http_response_t r = {.status = status};
    return status >= 400 && status < 500 && msp_http_classify(&r) != MSP_HTTP_RETRY;
}

static void retry_answer(msp_vcall_t *c, const msp_http_response_t *res, const char *why) {
    if (c->step.retry)
        c->step.retry(c->owner, res, res->retry_after_ms, why);
    else
        msp_vcall_retry(c, res->retry_after_ms, why);
}

/* A 2xx: hand the body over as the call expects it; a body that does not read is retried. */
static void answer_ok(msp_vcall_t *c, msp_http_response_t *res) {
    c->reauthed = 0; /* the token worked: a later 401 may be a new expiry */
    json_t *j = NULL;
    if (c->step.expect != MSP_VCALL_BODY_ANY) {
        int arr = c->step.expect == MSP_VCALL_BODY_ARRAY;
        json_error_t jerr;
        j = res->body_len ? json_loadb(res->body, res->body_len, 0, &jerr) : NULL;
        if (arr ? !json_is_array(j) : !json_is_object(j)) {
            json_decref(j);
            char why[600];
            snprintf(why, sizeof(why), "%s %s answered %ld with a body that is not a JSON %s",
                     c->method, c->path, res->status, arr ? "array" : "object");
            msp_http_response_t unread = *res;
            unread.retry_after_ms = -1;
            retry_answer(c, &unread, why);
            return;
        }
    }
    c->step.ok(c->owner, res, j);
    json_decref(j);
}

/* @returns 0 when the token source says a fresh header cannot help (the 401 is final). */
static int reauth(msp_vcall_t *c, const char *desc) {
    int fresh = c->acct.auth->rejected(c->acct.auth_ctx, c, c->auth);
    msp_secure_zero(c->auth, sizeof(c->auth));
    if (!fresh)
        return 0;
    c->reauthed = 1;
    /* A rejected request changed nothing, so this very call may be sent again. */
    MSP_WARN("token.rejected", c->tenant, "%s; retrying with a fresh token", desc);
    msp_vcall_send(c);
    return 1;
}

static void describe(const msp_vcall_t *c, const msp_http_response_t *res, char *out, size_t size) {
    if (c->acct.vendor)
        msp_vendor_describe(c->acct.vendor, res, c->method, c->path, out, size);
    else
        c->acct.describe(res, c->method, c->path, out, size);
}

static void http_cb(msp_http_response_t *res, void *opaque) {
    msp_vcall_t *c = opaque;
    c->http_inflight = 0;
    if (msp_vcall_gone(c)) {
        msp_secure_zero(c->auth, sizeof(c->auth));
        msp_vcall_abandon(c);
        return;
    }
    msp_http_outcome_t o =
        c->step.classify ? c->step.classify(c->owner, res) : msp_http_classify(res);
    if (c->ops->answered)
        c->ops->answered(c->owner, o);
    msp_vcall_action_t a = msp_vcall_judge(c, res, o);
    if (a == MSP_VCALL_DONE) {
        msp_secure_zero(c->auth, sizeof(c->auth));
        answer_ok(c, res);
        return;
    }
    char desc[1024];
    describe(c, res, desc, sizeof(desc));
    if (a == MSP_VCALL_REAUTH && reauth(c, desc))
        return;
    if (a == MSP_VCALL_RETRY) {
        msp_secure_zero(c->auth, sizeof(c->auth));
        c->status = res->status;
        retry_answer(c, res, desc);
        return;
    }
    if (c->opts.no_reauth && (res->status == 401 || res->status == 403) && !c->acct.auth_header &&
        c->acct.auth && c->acct.auth->rejected)
        c->acct.auth->rejected(c->acct.auth_ctx, c, c->auth); /* forgotten, not fetched again */
    msp_secure_zero(c->auth, sizeof(c->auth));
    c->status = res->status;
    if (c->step.fail && c->step.fail(c->owner, res))
        return;
    c->ops->fail(c->owner, o == MSP_HTTP_FATAL ? MSP_VCALL_FAIL_FORBIDDEN : MSP_VCALL_FAIL_REFUSED,
                 desc);
}

/* -------------------------------------------------------- a vendor row */

/* The answer of a deferred token (msp_vendor_auth_cb). */
static void token_answer(const char *auth_header, long status, int64_t retry_after_ms,
                         const char *error, void *opaque) {
    msp_vcall_authed(opaque, auth_header, status, retry_after_ms, error);
}

static int vendor_get(void *ctx, msp_vcall_t *c, char *header, size_t header_size) {
    msp_vcall_vendor_t *va = ctx;
    return msp_vendor_auth_get(va->auth, c->tenant, va->cred, header, header_size, token_answer, c);
}

static int vendor_rejected(void *ctx, msp_vcall_t *c, const char *auth_header) {
    msp_vcall_vendor_t *va = ctx;
    return msp_vendor_auth_rejected(va->auth, c->tenant, va->cred, auth_header);
}

static void vendor_cancel(void *ctx, msp_vcall_t *c) {
    msp_vcall_vendor_t *va = ctx;
    msp_vendor_auth_cancel(va->auth, va->cred, c);
}

const msp_vcall_auth_t msp_vcall_vendor_auth = {vendor_get, vendor_rejected, vendor_cancel};

void msp_vcall_vendor_account(msp_vcall_t *c, msp_vcall_vendor_t *va, double rate, int burst) {
    msp_vcall_account_t a = {.base_url = msp_vendor_cred_base_url(va->cred),
                             .bucket_key = msp_vendor_cred_bucket(va->cred),
                             .rate = rate,
                             .burst = burst,
                             .auth = &msp_vcall_vendor_auth,
                             .auth_ctx = va,
                             .vendor = va->cred->vendor};
    msp_vcall_account(c, &a);
}

/* ------------------------------------------------------------- a proof */

void msp_vcall_proof_end(msp_vcall_proof_t *pr, int code, json_t *body) {
    msp_vendor_put_t *put = pr->put;
    put->done(put, code, body);
}

void msp_vcall_proof_error(msp_vcall_proof_t *pr, int code, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    msp_vcall_proof_end(pr, code, json_pack("{s:s}", "error", text));
}

static void proof_fail(void *owner, msp_vcall_failure_t kind, const char *why) {
    msp_vcall_proof_t *pr = owner;
    msp_vendor_put_t *put = pr->put;
    if (kind == MSP_VCALL_FAIL_THROTTLED) {
        put->answered(put, "rate_limited");
        msp_vcall_proof_error(pr, 502,
                              "the %s API rate limit for this account is exhausted; try again in "
                              "%lld s",
                              put->vendor->label, (long long)(pr->call.wait_ms + 999) / 1000);
    } else if (kind == MSP_VCALL_FAIL_UNAVAILABLE) {
        msp_vcall_proof_error(pr, 503, "%s", why);
    } else if (kind == MSP_VCALL_FAIL_AUTH && pr->token_failed) {
        pr->token_failed(pr, pr->call.status, why);
    } else {
        msp_vcall_proof_error(pr, 502, "%s", why ? why : "the vendor call failed");
    }
}

static void proof_answered(void *owner, msp_http_outcome_t outcome) {
    msp_vcall_proof_t *pr = owner;
    pr->put->answered(pr->put, msp_http_outcome_name(outcome));
}

/* max_attempts is 1: a request that could not start, or a token that could not be asked for */
static void proof_gave_up(void *owner, unsigned attempts, const char *why) {
    (void)attempts;
    msp_vcall_proof_error(owner, 502, "%s", why);
}

static void proof_abandon(void *owner) { msp_vcall_proof_end(owner, 503, NULL); }

static const msp_vcall_ops_t PROOF_OPS = {.fail = proof_fail,
                                          .answered = proof_answered,
                                          .gave_up = proof_gave_up,
                                          .abandon = proof_abandon};

void msp_vcall_proof_init(msp_vcall_proof_t *pr, msp_vendor_put_t *put,
                          msp_vcall_proof_fail_fn *token_failed) {
    msp_vcall_init(&pr->call, put->env, &PROOF_OPS, pr, NULL);
    pr->put = put;
    pr->token_failed = token_failed;
    pr->call.tenant = put->tenant;
    pr->call.max_attempts = 1;
    pr->call.opts = (msp_vcall_opts_t){
        .deadline_ms = put->deadline_ms, .timeout_ms = 1000, .token_final = 1, .no_reauth = 1};
}
