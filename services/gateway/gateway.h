/*
 * gateway.h — the state shared by the gateway's modules.
 *
 * One process, one libevent loop, one thread (plus history.c's reader, which shares nothing
 * with the loop but Redis and Kafka, and api_history.c's replay thread, which shares only its
 * job queue and a pipe that wakes the loop). main.c builds a gw_t and wires the modules:
 *   http_util.c        JSON replies (also for the requests libevent refuses itself), bearer
 *                      auth, body reading, request framing checks, held (asynchronously
 *                      answered) requests
 *   query.c            the URL query parser (pure, unit-tested)
 *   router.c           maps method + path to a handler, enforces auth and the route → role
 *                      table, counts requests
 *   access.c           the caller (operator token or tenant API key), roles, .../keys
 *   audit.c            the per-tenant audit log of changes, .../audit
 *   history.c          a thread folding sync.events and dlq into Redis (its own consumer
 *                      group and hiredis context): the sync history and per-tenant dead letters
 *   trace_rebuild.c    traces, asset histories and billing history rebuilt from the traces
 *                      topic after a loss of Redis (run by history.c's thread)
 *   api_history.c      .../integrations/{v}/jobs..., .../dead-letters... (list, get, replay)
 *   jobs.c             the Kafka producer glued to the loop; sync jobs and tombstones that are
 *                      answered only once their delivery reports arrive
 *   store.c            synchronous Redis helpers: inside an admin request on the async
 *                      connection, elsewhere one hiredis context, reconnected on demand
 *   admin.c            every admin request on a coroutine of its own (coro.h): its Redis
 *                      calls wait without holding the loop
 *   kept_secrets.c     the stored secrets registered for log redaction, forgotten on removal
 *   api_tenants.c      /v1/tenants...
 *   integrations.c     what every integration shares: the descriptor table, status rendering,
 *                      POST .../sync, PATCH (write-back opt-in), POST .../disable
 *   integration_remove.c DELETE of any integration (the row says purge or removal)
 *   integration_put.c  PUT of any integration: the row's body and proof (vendor.h), then seal,
 *                      store, queue a full sync
 *   api_dates.c        /v1/tenants/{t}/assets/{id}/dates (PUT) and .../writeback (GET)
 *   api_inventory.c    /v1/tenants/{t}/customers..., /assets..., /contacts..., /tickets...,
 *                      /ticket-settings
 *   api_webhooks.c     /v1/tenants/{t}/webhooks/mtp... (webhook secrets: create/rotate, revoke)
 *                      and the secret lookup the webhook verifies against
 *   webhook.c          POST /v1/webhooks/mtp/{t}: the HMAC-signed incident webhook (no bearer)
 *   tenant_cache.c     what the webhooks need of a tenant, cached; the async Redis connection
 *   api_ticketing.c    /v1/tenants/{t}/ticketing... (config, org → customer mappings) and the
 *                      ticketing block of the Syncro integration status
 *   ticket_settings.c  ticketing rules against the ticket settings synced from Syncro
 *   org_match.c        name similarity behind the mapping suggestions (pure, unit-tested)
 */
#ifndef MSPSYNC_GATEWAY_H
#define MSPSYNC_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/crypto.h"
#include "mspsync/http.h"
#include "mspsync/kafka.h"
#include "mspsync/ops.h"
#include "mspsync/svc.h"
#include "mspsync/vendor.h"

struct event_base;
struct event;
struct evhttp;
struct evhttp_request;

/** Settings, filled from the environment by the config table in main.c. */
typedef struct gw_config_s {
    msp_svc_conf_t svc; /* Kafka, logging, the port file (the shared rows of svc.h); the
                             gateway has no ops server of its own; its one consumer
                             group is the history reader's (history.c) */
    char     *http_bind;
    long long http_port;
    char     *admin_token;
    char     *redis_url;  /* the shared row too (MSP_SVC_REDIS_ROW), kept here where the
                             modules read it */
    long long max_body;
    long long vendor_timeout_ms;
    msp_vendor_put_settings_t put_settings; /* every row's PUT setting (vendor.h put.setting) */
    long long kafka_delivery_timeout_ms;
    long long kafka_linger_ms;
    long long webhook_max_body;
    long long webhook_tolerance_s;
    char *test_clock_file; /* MSPSYNC_TEST_CLOCK_FILE (billing.h), read through the environment */
    long long max_header_bytes;
    long long max_headers;
} gw_config_t;

typedef struct gw_held_s gw_held_t;
typedef struct gw_kept_s gw_kept_t;
typedef struct gw_journal_s gw_journal_t;
typedef struct gw_tcache_s gw_tcache_t;
struct msp_aredis_s;

typedef struct gw_audit_s gw_audit_t;
typedef struct gw_admin_s gw_admin_t;
typedef struct gw_history_s gw_history_t;
typedef struct gw_replayer_s gw_replayer_t;

typedef struct gw_s {
    gw_config_t         cfg;
    msp_secret_key_t    key;
    struct event_base  *base;
    struct evhttp      *http;
    rd_kafka_t         *rk;            /* its main queue wakes the loop (msp_svc_wire, main.c) */
    rd_kafka_topic_t   *rkt[5];        /* pin sync.jobs, customers, assets, raw.records, raw.events conf */
    redisContext       *redis;
    struct msp_aredis_s *aredis; /* the loop's own async connection (aredis.h; tenant_cache.c) */
    gw_tcache_t *tcache;         /* the webhooks' tenant cache (tenant_cache.c) */
    msp_http_t         *vendor;
    msp_vendor_auth_t auth; /* every vendor's auth state (ConnectWise RMM: its tokens, shared
                               with the workers via Redis) */
    msp_metrics_t      *metrics;
    gw_held_t          *held;          /* requests answered later (list head) */
    gw_kept_t          *kept;          /* secrets registered for log redaction (kept_secrets.c) */
    int                 stopping;      /* set on shutdown: no new async work */
    int64_t             kafka_checked_ms;
    int                 kafka_ok;
    gw_journal_t *journal; /* configuration journal and restore (journal.c) */
    gw_audit_t *audits;    /* changes in flight, awaiting their answer (audit.c) */
    gw_history_t *history; /* the sync.events and dlq reader (history.c) */
    gw_replayer_t *replayer; /* the dead letter replay thread (api_history.c) */
    gw_admin_t *admin;       /* admin requests on coroutines (admin.c) */
    int restoring;         /* 1 Redis lost its state: /v1 answers 503 meanwhile;
                                          0 serving; 2 not known yet (Redis never answered) */
} gw_t;

/* ---- admin.c: admin requests on coroutines, their Redis on the async connection ----------- */

/** Work for a coroutine: an admin request (arg: the evhttp request) or a loop task. */
typedef void(gw_task_fn)(gw_t *gw, void *arg);
/** @brief Make the coroutine pool (after the async connection). @returns 0 / -1 out of memory. */
int gw_admin_start(gw_t *gw);
/**
 * @brief Run fn(gw, req) on a coroutine of its own now, or when one is free (requests wait in
 * order); 503 when too many wait. Before gw_admin_start or once stopping: fn runs here.
 */
void gw_admin_serve(gw_t *gw, struct evhttp_request *req, gw_task_fn *fn);
/**
 * @brief Run fn(gw, arg) — loop work that calls gw_redis — on a coroutine: now, or after the
 * requests and tasks waiting; right here when already on one, stopping, or out of memory.
 */
void gw_admin_call(gw_t *gw, gw_task_fn *fn, void *arg);
/** @brief 1 when the code runs inside an admin request's coroutine (store.c goes async). */
int gw_admin_active(const gw_t *gw);
/**
 * @brief A formatted command on the async connection, the running coroutine waiting for its
 * reply (only when gw_admin_active). @returns the reply (the caller frees it), or NULL with
 * errstr (an error reply, no answer within the stall limit, not connected, shutting down).
 */
redisReply *gw_admin_redis(gw_t *gw, const char *cmd, size_t len, char *errstr, size_t errstr_size);
/** @brief After gw_tc_stop (the async connection answered all): fail waiters, free the pool. */
void gw_admin_stop(gw_t *gw);

/* ---- journal.c: configuration survives a lost Redis ---------------------------------------- */

/** @brief Start journaling and the marker check (after the producer and Redis). @returns 0/-1. */
int gw_journal_start(gw_t *gw);
/** @brief Stop (joins a running restore). */
void gw_journal_stop(gw_t *gw);
/**
 * @brief Look at the state marker now (a restore starts if Redis answers without it).
 * @returns 1 when restoring (answer 503), 0 otherwise (also when Redis did not answer).
 */
int gw_journal_check(gw_t *gw);
/**
 * @brief Whether the inventory view is being rebuilt after a loss of Redis (statekeys.h
 * MSP_STATE_INVENTORY_PENDING_SUFFIX): an inventory read answers 503 meanwhile.
 * @returns 1 pending, 0 not, -1 Redis did not answer.
 */
int gw_inventory_pending(gw_t *gw);
/** @brief Answer 503 with Retry-After: the inventory is being rebuilt. */
void gw_reply_rebuilding(gw_t *gw, struct evhttp_request *req, const char *route);

/* ---- trace_rebuild.c: traces, asset histories, billing history after a loss of Redis ------- */

/**
 * @brief Whether the traces must be rebuilt for the current epoch (a restore that found state
 * ended, state:traces does not name its epoch yet); epoch (may be NULL) gets the epoch.
 * @returns 1 due, 0 not, -1 Redis did not answer.
 */
int gw_traces_due(redisContext *c, char *epoch, size_t epoch_size);

/**
 * @brief Rebuild trace:*, billing:history:* from the traces topic for epoch when this gateway
 * wins the lease (*c: the caller's context, reconnected when needed). Blocking: the history
 * reader's thread calls it. @returns 1 rebuilt, 0 another gateway holds the lease, -1 failed.
 */
int gw_traces_rebuild(redisContext **c, const char *url, const char *brokers, const char *epoch);

/** @brief gw_traces_due on the loop's connection. @returns 1 pending, 0 not, -1 no answer. */
int gw_traces_pending(gw_t *gw);

/**
 * @brief Answer req 503 with Retry-After when the traces are being rebuilt.
 * @returns 1 answered, 0 not (go on).
 */
int gw_traces_reply_pending(gw_t *gw, struct evhttp_request *req, const char *route);
/** @brief key (a full Redis key) was written: journal it if it is configuration. */
void gw_journal_note(gw_t *gw, const char *key);
/**
 * @brief The state marker as read asynchronously (NULL: Redis answered without it): what
 * gw_journal_check does after its read (a restore starts when it is missing).
 */
void gw_journal_epoch(gw_t *gw, const char *epoch);
/** @brief The state marker (epoch) this gateway serves under, "" when unknown. Borrowed. */
const char *gw_journal_current(const gw_t *gw);

/**
 * @brief The whole value of a Redis key: a hash as an object, a string, a set as an array; NULL
 * when it does not exist or on a Redis error (*ok = 0). @returns new.
 */
json_t *gw_config_value(gw_t *gw, const char *key, int *ok);

/**
 * @brief Call cb with every configuration key (statekeys.h) a tenant can have — the key and its
 * suffix — except the audit entries (written once each). The keys need not exist.
 */
void gw_config_keys_each(const char *tenant,
                         void (*cb)(const char *key, const char *suffix, void *arg), void *arg);

/* ---- history.c and api_history.c: sync history, per-tenant dead letters -------------------- */

#define GW_HISTORY_KEEP 100    /**< jobs kept per integration */
#define GW_DLQ_KEEP 10000      /**< dead letters kept in a tenant's index */
#define GW_DLQ_VALUE_MAX 65536 /**< larger values are not kept (value_omitted) */
#define GW_REPLAY_MAX 500      /**< dead letters one replay call produces */

/**
 * @brief Start the thread that folds sync.events and dlq into Redis (after Redis and the
 * producer). @returns 0, or -1 (errstr).
 */
int gw_history_start(gw_t *gw, char *errstr, size_t errstr_size);
/** @brief Stop and join the thread (NULL-safe when never started). */
void gw_history_stop(gw_t *gw);
/**
 * @brief Start the thread that runs dead letter replays off the loop (after the loop's base).
 * @returns 0, or -1 (errstr).
 */
int gw_replayer_start(gw_t *gw, char *errstr, size_t errstr_size);
/** @brief Stop and join it (NULL-safe); the requests it held are left to gw_held_fail_all. */
void gw_replayer_stop(gw_t *gw);
/** @brief Replace the value of every member whose name says credential by "[secret]". */
void gw_dlq_value_scrub(json_t *v);

void api_history_jobs(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *integ);
void api_history_job(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *integ,
                     const char *job_id);
void api_dead_letters_list(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_dead_letter_get(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *id);
void api_dead_letters_replay(gw_t *gw, struct evhttp_request *req, const char *tenant);

/* ---- kept_secrets.c ---------------------------------------------------------------------- */

/**
 * @brief Make secret (copied; NULL = none) the one registered for log redaction as
 * "<tenant>/<what>" (a vendor's name, or "webhook:mtp"), forgetting the one it replaces. Call
 * only after the secret was stored, and with NULL when it is removed or disabled.
 */
void gw_secret_keep(gw_t *gw, const char *tenant, const char *what, const char *secret);

/** @brief Move the secret kept as <tenant>/<from> to <tenant>/<to> (forgetting <to>'s). */
void gw_secret_rename(gw_t *gw, const char *tenant, const char *from, const char *to);

/** @brief Forget every kept secret (shutdown). */
void gw_secrets_forget_all(gw_t *gw);

/* ---- http_util.c ------------------------------------------------------------------------- */

/** @brief Send a JSON reply (body stolen; NULL = no body, e.g. 204) and count it per route. */
void gw_reply(gw_t *gw, struct evhttp_request *req, const char *route, int code, json_t *body);
/** @brief gw_reply with the body's JSON text already written (len bytes; text NULL: none). */
void gw_reply_text(gw_t *gw, struct evhttp_request *req, const char *route, int code,
                   const char *text, size_t len);

/** @brief {"error": msg} with printf formatting. */
void gw_reply_error(gw_t *gw, struct evhttp_request *req, const char *route, int code,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/** @brief 1 when the request carries "Authorization: Bearer <admin token>" (constant time). */
int gw_auth_ok(const gw_t *gw, struct evhttp_request *req);
/** @brief The bearer token of req's Authorization header (borrowed), or NULL when none. */
const char *gw_bearer(struct evhttp_request *req);

/**
 * @brief Parse the request body as JSON. An empty body gives *out = NULL and 0 when
 * optional, else an error. On error the reply (400/413) has been sent. @returns 0 or -1.
 */
int gw_read_json(gw_t *gw, struct evhttp_request *req, const char *route, int optional,
                 json_t **out);

/**
 * @brief Query parameter value (new string, caller frees) or NULL when absent. "?flag" without
 * '=' gives "" (see query.h for the grammar).
 */
char *gw_query_param(struct evhttp_request *req, const char *name);

/**
 * @brief A query parameter that must be an integer from 1 to max; def when absent.
 * @returns the value, or -1 (replied 400 naming it).
 */
long long gw_query_int(gw_t *gw, struct evhttp_request *req, const char *route, const char *name,
                       long long def, long long max);

/** @brief Refuse a malformed query string with 400 naming it. @returns 0, or -1 (replied). */
int gw_check_query(gw_t *gw, struct evhttp_request *req, const char *route);

/**
 * @brief Refuse, before auth and routing, a request whose header section cannot be trusted:
 * more than MSPSYNC_MAX_HEADERS fields → 431; conflicting Content-Length fields, or
 * Content-Length with Transfer-Encoding → 400. Both close the connection.
 * @returns 0, or -1 (replied).
 */
int gw_check_framing(gw_t *gw, struct evhttp_request *req, const char *route);

/**
 * @brief Route the refusals libevent makes before any callback (oversized header section or
 * body, malformed request, unknown method) through gw_reply, as JSON; call once before serving.
 */
void gw_http_install(gw_t *gw);

/** @brief "an object", "a string", ... for validation messages. */
const char *gw_json_kind(const json_t *j);

/** @brief 1 when s matches ^[a-z0-9][a-z0-9_-]{0,62}$. */
int gw_valid_tenant_id(const char *s);

/**
 * @brief Check that a request object has no key outside allowed (NULL-terminated).
 * @returns 0, or -1 with "unknown key \"k\" (expected a, b, ...)" in err.
 */
int gw_json_only_keys(const json_t *obj, const char *const *allowed, char *err,
                      size_t err_size);

/** @brief 1 when s can be an inventory id: 1..256 bytes, no control characters or spaces. */
int gw_valid_record_id(const char *s);

/**
 * A request answered later (after a vendor call or a Kafka delivery report). The record stays
 * valid until gw_held_reply; if libevent frees the request first (server teardown), the record
 * forgets it and the reply is dropped. A client that hangs up merely detaches the request
 * (libevent 2.1): replying then frees it, so every held request is replied to exactly once.
 */
gw_held_t *gw_hold(gw_t *gw, struct evhttp_request *req, const char *route);
void gw_held_reply(gw_held_t *h, int code, json_t *body);
/** @brief gw_held_reply with the body's JSON text (len bytes, the answer adds the newline). */
void gw_held_reply_text(gw_held_t *h, int code, const char *text, size_t len);
void gw_held_reply_error(gw_held_t *h, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/**
 * @brief Let the owner of a held request clean up at shutdown: gw_held_fail_all calls
 * cancel(arg) instead of answering itself; cancel must answer the request (gw_held_reply*) and
 * free its own state. cancel NULL = answer 503 directly (the default).
 */
void gw_held_on_shutdown(gw_held_t *h, void (*cancel)(void *arg), void *arg);
/**
 * @brief Stop holding h without answering: @returns its request (the caller answers it), or
 * NULL when libevent freed it meanwhile.
 */
struct evhttp_request *gw_held_release(gw_held_t *h);
/** @brief Answer 503 to every held request (shutdown). */
void gw_held_fail_all(gw_t *gw, const char *why);

/* ---- access.c: callers and roles ---------------------------------------------------------- */

/** Roles, least first; sync and billing do not cover each other (gw_role_allows). */
typedef enum {
    GW_ROLE_UNSET = 0, /* no rule: refused */
    GW_ROLE_PUBLIC,    /* no bearer token (the HMAC-signed webhook) */
    GW_ROLE_VIEWER,
    GW_ROLE_SYNC,
    GW_ROLE_BILLING,
    GW_ROLE_OWNER,
    GW_ROLE_OPERATOR, /* the operator token */
} gw_role_t;

/** The caller of a request. */
typedef struct gw_actor_s {
    gw_role_t role;
    char tenant[64]; /* a key's tenant ("" for the operator) */
    char id[17];     /* a key's id */
    char name[128];  /* a key's name, or "operator" */
} gw_actor_t;

/**
 * @brief Identify the bearer of req: the operator token, or a tenant key that exists, matches
 * its hash and has not expired. @returns 1 (a filled), 0 no valid token, -1 Redis error (err).
 */
int gw_actor_identify(gw_t *gw, struct evhttp_request *req, gw_actor_t *a, char *err,
                      size_t err_size);
/** @brief 1 when a caller with role have may call a route that needs need. */
int gw_role_allows(gw_role_t have, gw_role_t need);
/** @brief "owner", "sync", ... (borrowed, static). */
const char *gw_role_name(gw_role_t r);
/** @brief A stored key record with its hash shown as "[secret]": new (a string if unreadable). */
json_t *gw_key_redacted(const char *stored);

void api_keys_create(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_keys_list(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_key_delete(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *id);

/* ---- audit.c ------------------------------------------------------------------------------- */

/**
 * @brief Open the audit record of a change (not GET) of tenant's data; actor copied. settings 0:
 * the route changes no setting (a date edit): no snapshots, the entry's changes are {}.
 */
void gw_audit_begin(gw_t *gw, struct evhttp_request *req, const gw_actor_t *actor,
                    const char *route, const char *tenant, int settings);
/** @brief req is answered with code (gw_reply): a 2xx writes its entry. No record: nothing. */
void gw_audit_end(gw_t *gw, struct evhttp_request *req, int code);
/** @brief Drop the records still open (shutdown). */
void gw_audit_free_all(gw_t *gw);
/** @brief The actor of req's open audit record (borrowed), or NULL when none is open. */
const gw_actor_t *gw_audit_actor(gw_t *gw, struct evhttp_request *req);
void api_audit_list(gw_t *gw, struct evhttp_request *req, const char *tenant);

/* ---- router.c ------------------------------------------------------------------------------ */

/** @brief The catch-all evhttp callback (arg = gw). */
void gw_route(struct evhttp_request *req, void *arg);

/* ---- store.c ------------------------------------------------------------------------------- */

/**
 * @brief Run one Redis command (argv form). @returns a reply to freeReplyObject, or NULL with
 * errstr on a connection error or an error reply.
 */
redisReply *gw_redis(gw_t *gw, char *errstr, size_t errstr_size, const char *fmt, ...);
redisReply *gw_redis_argv(gw_t *gw, char *errstr, size_t errstr_size, int argc,
                          const char **argv, const size_t *argvlen);

/**
 * The answer of gw_redis_async_argv: the reply (borrowed; an error reply comes as err, reply
 * NULL) or NULL with err (not connected, no answer within the stall limit, shutting down).
 */
typedef void(gw_redis_cb)(gw_t *gw, void *arg, redisReply *reply, const char *err);

/**
 * @brief gw_redis_argv on the loop's async connection (aredis.h): the loop goes on while Redis
 * answers. A write is journaled and noted to the tenant cache when it succeeded, as gw_redis's
 * are. cb runs later, exactly once (also when the command cannot be sent: err "not connected
 * to Redis"), never from inside this call.
 */
void gw_redis_async_argv(gw_t *gw, gw_redis_cb *cb, void *arg, int argc, const char **argv,
                         const size_t *argvlen);

/** @brief 1 exists, 0 not, -1 Redis error (errstr). */
int gw_tenant_exists(gw_t *gw, const char *tenant, char *errstr, size_t errstr_size);

/** @brief Value of field in a flat HGETALL reply (borrowed from r), or NULL. */
const char *gw_hget(const redisReply *r, const char *field);

/* ---- jobs.c ------------------------------------------------------------------------------- */

/** @brief Create the producer and its topic handles (main.c hooks its main queue to the loop:
 * msp_svc_wire). @returns 0 or -1. */
int gw_kafka_start(gw_t *gw, char *errstr, size_t errstr_size);
/** @brief Flush (up to timeout_ms) and destroy the producer. */
void gw_kafka_stop(gw_t *gw, int timeout_ms);
/** @brief Readiness: some broker known (metadata cached for 2 s). */
int gw_kafka_ready(gw_t *gw, char *why, size_t why_size);

/**
 * @brief Produce a sync job of integration (a vendor's name) for tenant and answer held with
 * ok_code + ok_body once Kafka has it, or 503 {"error":"could not queue the sync job: <reason>"}
 * (and, for reason "integration_saved", status:<integration> says so). ok_body is stolen.
 * types: NULL-terminated. job_id: 33 bytes, chosen by the caller.
 */
void gw_job_queue(gw_t *gw, gw_held_t *held, const char *tenant, const char *integration,
                  const char *job_id, const char *const *types, const char *mode,
                  const char *reason, int ok_code, json_t *ok_body);

/**
 * Runs after the delivery report of a gw_produce_reply message, before the answer: error is
 * NULL when Kafka has the message. Return 0 to answer as usual, or -1 (after a successful
 * delivery) to answer 503 with err instead. arg is the caller's, freed with free() afterwards.
 */
typedef int (gw_after_cb)(gw_t *gw, void *arg, const char *error, char *err, size_t err_size);

/**
 * @brief Produce one message (text copied) and answer held with ok_code + ok_body after its
 * delivery report, or 503 {"error":"could not queue <what>: <reason>"}. ok_body and arg are
 * stolen; after may be NULL.
 */
void gw_produce_reply(gw_t *gw, gw_held_t *held, const char *topic, const char *key,
                      const char *text, const char *what, int ok_code, json_t *ok_body,
                      gw_after_cb *after, void *arg);

/**
 * @brief A group of messages whose delivery is awaited together. done runs once, after the
 * last report, with error NULL when every message is in Kafka.
 */
typedef struct gw_batch_s gw_batch_t;
typedef void (gw_batch_done_cb)(gw_t *gw, void *arg, const char *error);
gw_batch_t *gw_batch_new(gw_t *gw, gw_batch_done_cb *done, void *arg);
/** @brief value NULL = tombstone. */
void gw_batch_produce(gw_batch_t *b, const char *topic, const char *key, const void *value,
                      size_t value_len);
/**
 * @brief gw_batch_produce with any key bytes (key_len) and headers (may be NULL; stolen, also on
 * failure).
 */
void gw_batch_produce_headers(gw_batch_t *b, const char *topic, const void *key, size_t key_len,
                              const void *value, size_t value_len, rd_kafka_headers_t *headers);
/** @brief Make done see error (copied) even if every message is delivered (the first counts). */
void gw_batch_fail(gw_batch_t *b, const char *error);
/** @brief No more messages; done may run now (or later, after the last report). */
void gw_batch_seal(gw_batch_t *b);

/* ---- handlers ----------------------------------------------------------------------------- */

/* Path segments after "/v1/tenants": seg[0] = tenant (decoded), seg[1..]. */
void api_tenants_create(gw_t *gw, struct evhttp_request *req);
void api_tenants_list(gw_t *gw, struct evhttp_request *req);

/* ---- api_secrets.c: master-key rotation (operator) ---------------------------------------- */
void api_secrets_get(gw_t *gw, struct evhttp_request *req);
void api_secrets_reseal(gw_t *gw, struct evhttp_request *req);
void api_tenant_get(gw_t *gw, struct evhttp_request *req, const char *tenant);
/** DELETE /v1/tenants/{t}: offboarding (api_tenants.c). */
void api_tenant_delete(gw_t *gw, struct evhttp_request *req, const char *tenant);

/* ---- integration_remove.c: DELETE of an integration, and what it shares with an offboarding */

/**
 * @brief Produce to b a tombstone for every id of the tenant's inventory (inv:customers on the
 * customers topic, inv:assets on assets); *count += their number. @returns 0, or -1 with err
 * (Redis).
 */
int gw_tombstone_inventory(gw_t *gw, gw_batch_t *b, const char *tenant, long long *count, char *err,
                           size_t err_size);
/** The end of gw_unlink_prefix: err NULL when every key is gone. */
typedef void(gw_unlink_done_cb)(gw_t *gw, void *arg, const char *err);

/**
 * @brief UNLINK every key that starts with prefix: SCAN ... MATCH in rounds of 500 keys on the
 * async connection, each round's keys unlinked (and journaled) before the next SCAN, so the loop
 * serves other requests between the round trips however large the keyspace. done runs later,
 * once, never from inside this call.
 */
void gw_unlink_prefix(gw_t *gw, const char *prefix, gw_unlink_done_cb *done, void *arg);

/* integrations.c: name is the path segment (a vendor's name, checked by the router). */
void api_integration_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                         const char *name);
void api_integration_sync(gw_t *gw, struct evhttp_request *req, const char *tenant,
                          const char *name);
void api_integration_patch(gw_t *gw, struct evhttp_request *req, const char *tenant,
                           const char *name);
void api_integration_disable(gw_t *gw, struct evhttp_request *req, const char *tenant,
                             const char *name);

void api_asset_dates_put(gw_t *gw, struct evhttp_request *req, const char *tenant,
                         const char *id);
void api_asset_writeback_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                             const char *id);

/* ---- api_traces.c ------------------------------------------------------------------------ */

/** @brief GET /v1/tenants/{t}/incidents/{ref}: the trace of an incident (fingerprint or id). */
void api_incident_trace_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                            const char *ref);
/** @brief GET /v1/tenants/{t}/assets/{id}/history: the asset's history, paged. */
void api_asset_history_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                           const char *id);

/* ticket_settings.c: ticketing rules against the ticket settings synced from Syncro */

/**
 * @brief Compare a complete ticketing config (borrowed) with the tenant's synced ticket
 * settings: *invalid gets a new array of {alert_type (null for resolve_status), field, value,
 * known} for each status / problem type the account does not have (empty when none), *synced
 * whether settings have been synced at all (0: nothing could be checked).
 * @returns 0, or -1 with err (Redis).
 */
int gw_ticket_settings_check(gw_t *gw, const char *tenant, const json_t *cfg, json_t **invalid,
                             int *synced, char *err, size_t err_size);

/** @brief The 400 text for the first entry of a non-empty invalid list. @returns out. */
char *gw_ticket_settings_text(const json_t *invalid, char *out, size_t out_size);

void api_inventory_list(gw_t *gw, struct evhttp_request *req, const char *tenant,
                        const char *type /* "customer", "asset", "contact", "ticket", "setting" */);
void api_inventory_get(gw_t *gw, struct evhttp_request *req, const char *tenant,
                       const char *type, const char *id);

void api_webhook_secret_create(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_webhook_get(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_webhook_previous_delete(gw_t *gw, struct evhttp_request *req, const char *tenant);

/* webhook.c: tenant is the raw path segment (not yet checked, may be anything). */
void api_webhook_mtp(gw_t *gw, struct evhttp_request *req, const char *tenant);

/** What a webhook route does with a body that passed gw_webhook_open. */
typedef struct {
    /**
     * A shortcut on the verified raw bytes (len > 0), or NULL: answer and return 1, or return 0
     * to have the body parsed and parsed() called. It answers only what parsed() would answer
     * the same way (the webhook's fast path: webhook.c).
     */
    int (*raw)(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *body,
               size_t len);
    /** The body as a JSON object (owned by it). */
    void (*parsed)(gw_t *gw, struct evhttp_request *req, const char *tenant, json_t *body);
} gw_webhook_then_t;
/**
 * @brief The checks every MTP webhook route shares, in their order (webhook.c): tenant and
 * secret (404), body size (413), timestamp window and signature (401), a JSON object (400).
 * Once they pass, then->raw and then->parsed run — at once when the tenant is cached, else when
 * its load arrives (tenant_cache.c); otherwise the request is answered. No call blocks.
 */
void gw_webhook_open(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *route,
                     const gw_webhook_then_t *then);
/** @brief Answer code with the message and log it as webhook.rejected. */
void gw_webhook_reject(gw_t *gw, struct evhttp_request *req, const char *route, const char *tenant,
                       int code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/**
 * @brief body[field]: a string of min..max characters or (as_id) a non-negative integer, made
 * a decimal string in place; absent or null is an error only when required. @returns 0 or -1
 * with err naming the field.
 */
int gw_webhook_check_str(json_t *body, const char *field, int required, size_t min, size_t max,
                         int as_id, char *err, size_t err_size);

/* usage.c */
void api_webhook_usage(gw_t *gw, struct evhttp_request *req, const char *tenant);

/* api_billing.c */
void api_billing_get(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_billing_put(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_billing_push(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_billing_status(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_billing_preview(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_billing_history(gw_t *gw, struct evhttp_request *req, const char *tenant);

void api_ticketing_get(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_ticketing_put(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_ticketing_orgs_list(gw_t *gw, struct evhttp_request *req, const char *tenant);
void api_ticketing_org_put(gw_t *gw, struct evhttp_request *req, const char *tenant,
                           const char *org_id);
void api_ticketing_org_delete(gw_t *gw, struct evhttp_request *req, const char *tenant,
                              const char *org_id);

/* ---- api_webhooks.c: the secrets the webhook verifies against ------------------------------ */

/** The plaintext secrets of a tenant's MTP webhook that are valid now. */
typedef struct gw_webhook_secrets_s {
    char *current;    /* NULL when none is configured */
    char *previous;   /* NULL when none, or expired */
} gw_webhook_secrets_t;

/**
 * @brief Unseal the tenant's webhook secrets as stored (the HMGET fields current_sealed,
 * previous_sealed, previous_valid_until_ms; NULL when absent). The previous one is opened only
 * while valid; *previous_until_ms is its end (0: none). @returns 0 (s filled, fields may be
 * NULL) or -2 when a stored secret does not open (wrong MSPSYNC_SECRET_KEY?), errstr saying so.
 * Free with gw_webhook_secrets_clear (wipes the plaintext).
 */
int gw_webhook_secrets_open(gw_t *gw, const char *tenant, const char *current_sealed,
                            const char *previous_sealed, const char *previous_valid,
                            gw_webhook_secrets_t *s, long long *previous_until_ms, char *errstr,
                            size_t errstr_size);
void gw_webhook_secrets_clear(gw_webhook_secrets_t *s);

/* ---- tenant_cache.c: what the webhooks need of a tenant, without blocking ---------------- */

/** A tenant as the webhook sees it (valid during the callback only). */
typedef struct {
    const char *tenant;
    int rc; /* 0 known; -1 Redis did not answer (err); -2 secret unreadable;
                              -3 Redis lost its state: restoring */
    const char *err;
    int exists;
    const char *current;  /* NULL: no secret configured */
    const char *previous; /* NULL: none valid now */
    msp_hmac_key_t *current_key, *previous_key; /* prepared from them, or NULL (no memory) */
} gw_tc_view_t;
typedef void gw_tc_cb_t(gw_t *gw, struct evhttp_request *req, const gw_tc_view_t *v,
                        const char *route, const gw_webhook_then_t *then);

/** @brief Connect the async Redis connection and start the cache's tick. @returns 0 or -1. */
int gw_tc_start(gw_t *gw);
/** @brief Answer held requests (503), close the connection, wipe and free every entry. */
void gw_tc_stop(gw_t *gw);
/** @brief cb(view) now when tenant is cached, else once loaded (the request held meanwhile). */
void gw_tc_lookup(gw_t *gw, struct evhttp_request *req, const char *tenant, const char *route,
                  gw_tc_cb_t *cb, const gw_webhook_then_t *then);
/** @brief key (a full Redis key) was written here: drop the cached values it changes. */
void gw_tc_note(gw_t *gw, const char *key);
/** @brief Drop every cached value (a restore, a tenant added or removed). */
void gw_tc_invalidate_all(gw_t *gw);
/** @brief Record the org as seen for mapping suggestions, asynchronously (coalesced). */
void gw_tc_org_seen(gw_t *gw, const char *tenant, const char *org_id, const char *org_name);

/* ---- integrations.c: what the integrations share ----------------------------------------- */

/**
 * An integration as the gateway sees it: the vendor's row (vendor.h: name, label, sealed field,
 * stats prefix, keys a disable drops, its admin part — what GET shows, what DELETE removes — and
 * its put part — the PUT body and the proof of the credentials). GET, PUT and DELETE are generic
 * (gw_integ_render, api_integration_put, api_integration_delete). Keys:
 * mspsync:{t}:integration:<name> (the settings and the sealed secret) and
 * mspsync:{t}:status:<name> (written by the fetcher). One descriptor per row of the registry
 * (vendors.def), at the vendor's id (integrations.c).
 */
typedef struct gw_integ_s {
    const msp_vendor_t *vendor;
} gw_integ_t;

/* ---- integration_put.c: PUT of any integration ------------------------------------------- */

/** @brief PUT /v1/tenants/{t}/integrations/<name>: check, prove, seal, store, queue a sync. */
void api_integration_put(gw_t *gw, struct evhttp_request *req, const char *tenant,
                         const gw_integ_t *integ);

/** @brief The descriptor of an integration name, or NULL. Borrowed (static). */
const gw_integ_t *gw_integ_find(const char *name);

/** @brief The descriptor of vendor v. Borrowed (static). */
const gw_integ_t *gw_integ_of(const msp_vendor_t *v);

/** @brief Does the tenant have an integration (enabled or not) with v? @returns 1, 0, -1 (err). */
int gw_integ_exists(gw_t *gw, const char *tenant, const msp_vendor_t *v, char *err,
                    size_t err_size);

/**
 * @brief Does the tenant have an integration (enabled or not) with a vendor other than
 * except (NULL: with any)? @returns 1, 0, or -1 with err (Redis).
 */
int gw_integ_others(gw_t *gw, const char *tenant, const msp_vendor_t *except, char *err,
                    size_t err_size);

/**
 * @brief The job types of every record type v syncs ("customers", "assets"), in its dependency
 * order, into out (MSP_VENDOR_TYPES_MAX + 1 slots; NULL-terminated; borrowed strings).
 */
void gw_integ_all_types(const msp_vendor_t *v, const char **out);

#define GW_FEATURES_MAX 512 /**< a feature or permission comma list, with its '\0' */

/** @brief Append item to the comma list out (out_size bytes) unless it holds it already. */
void gw_list_add(char *out, size_t out_size, const char *item);

/**
 * @brief Parse a request's "features" (an array of v's feature names, not options) into a comma
 * list in the row's order. @returns 0, or -1 with the 400 text in err.
 */
int gw_integ_parse_features(const msp_vendor_t *v, const json_t *arr, char *out, size_t out_size,
                            char *err, size_t err_size);

/**
 * @brief The 422 body when the permissions granted (comma list) do not serve every feature or
 * option of the comma list wanted: {"error", "missing_permissions" (each once, in the row's
 * order), "missing_by_feature": {feature: [permission, ...]}}. @returns new, or NULL when
 * nothing is missing.
 */
json_t *gw_integ_missing_json(const msp_vendor_t *v, const char *wanted, const char *granted);

/**
 * @brief {feature: {"enabled", "permissions", "missing_permissions"[, "reason"]}} for each of v's
 * features (options included) of an integration saved with features and granted (comma lists;
 * NULL features = saved before features existed: every feature on, nothing known missing).
 * @returns new.
 */
json_t *gw_integ_features_json(const msp_vendor_t *v, const char *features, const char *granted);

/**
 * @brief Check the tenant's integration with v against the features (and options) of the comma
 * list wanted, with the permissions its key showed when it was saved. *missing gets the 422 body
 * (gw_integ_missing_json, with hint) or NULL. @returns 0 checked; 1 nothing known to check (no
 * such integration, or saved before features existed); -1 with err (Redis).
 */
int gw_integ_check_features(gw_t *gw, const char *tenant, const msp_vendor_t *v, const char *wanted,
                            const char *hint, json_t **missing, char *err, size_t err_size);

/** The per-integration sync intervals allowed (minutes). */
#define GW_SYNC_INTERVALS "5, 15, 30, 60, 120, 240, 720 or 1440"

/**
 * @brief Parse "sync_interval_minutes" (NULL = not given: *minutes untouched). @returns 0, or
 * -1 with the 400 text in err.
 */
int gw_integ_parse_interval(const json_t *v, int *minutes, char *err, size_t err_size);

/**
 * @brief 1 when the tenant has the integration (and, with need_enabled, it is not disabled);
 * else the answer (404, 409 disabled, 503 Redis) has been sent and 0 is returned.
 */
int gw_integ_require(gw_t *gw, struct evhttp_request *req, const char *route, const char *tenant,
                     const gw_integ_t *in, int need_enabled);

/**
 * @brief Parse {"purchase_date":bool,"warranty_expires":bool} (v may be NULL = nothing given).
 * Absent fields leave *purchase / *warranty untouched. @returns number of fields given, or -1
 * with a 400 message in err (not an object, unknown key, not a boolean).
 */
int gw_integ_parse_writeback(const json_t *v, int *purchase, int *warranty, char *err,
                             size_t err_size);

/**
 * @brief The fields of integration:<name> that store write-back flags given by a request
 * (purchase/warranty: 0, 1, or -1 = not given: keep, "0" on a new integration). @returns 0 / -1.
 */
int gw_integ_store_writeback(gw_t *gw, const char *ikey, int purchase, int warranty, char *err,
                             size_t err_size);

/**
 * @brief Store a proven integration: HSET integration:<name> with fields (name, value pairs,
 * NULL-terminated, borrowed: the vendor's settings, its sealed secret, "enabled", "updated_at"),
 * "created_at" = now when new, "generation" + 1, "sync_interval_minutes" when interval > 0, the
 * write-back opt-ins (gw_integ_store_writeback) and the status reset for job_id
 * (gw_integ_mark_syncing). *created = 1 when the hash was new. @returns 0, or -1 with err (Redis).
 */
int gw_integ_store(gw_t *gw, const char *tenant, const gw_integ_t *in, const char *const *fields,
                   int interval, int wb_purchase, int wb_warranty, const char *job_id,
                   const char *now, int *created, char *err, size_t err_size);

/**
 * @brief After a successful save: status:<name> = syncing with job_id, errors and pause
 * cleared. @returns 0 or -1 (err).
 */
int gw_integ_mark_syncing(gw_t *gw, const char *tenant, const gw_integ_t *in, const char *job_id,
                          const char *now, char *err, size_t err_size);

/**
 * @brief {"customers","customers_gone","assets","assets_gone"} of one integration's records
 * (its source records: a machine two integrations see counts in each). @returns new or NULL (err).
 */
json_t *gw_integ_counts(gw_t *gw, const char *tenant, const char *integ, char *err,
                        size_t err_size);

/**
 * @brief The status part every integration GET shows, from the HGETALL replies of
 * integration:<name> (ri), status:<name> (rs) and inv:stats (rst): state (Connected, Syncing,
 * Error, Disabled), enabled, last_error, hint, last_sync_at, job_id, paused, progress,
 * inventory_pending, writeback, created_at, updated_at. @returns a new object or NULL.
 */
json_t *gw_integ_status_json(const gw_integ_t *in, const redisReply *ri, const redisReply *rs,
                             const redisReply *rst);

/**
 * @brief HGETALL integration:<name>, status:<name> and inv:stats. Replies are new (free with
 * freeReplyObject; NULL-safe on error). @returns 0, or -1 with err (Redis).
 */
int gw_integ_load(gw_t *gw, const char *tenant, const gw_integ_t *in, redisReply **ri,
                  redisReply **rs, redisReply **rst, char *err, size_t err_size);

/** @brief Free the replies of gw_integ_load (NULL-safe). */
void gw_integ_free(redisReply *ri, redisReply *rs, redisReply *rst);

/**
 * @brief The GET body of the tenant's integration: its status (gw_integ_status_json), the
 * "integration" name, the fields the row's admin part shows, "counts" and, where the row says
 * so, the tenant's "ticketing" block. @returns new, or NULL with *code (404 none, 503 Redis,
 * 500) and the answer's text in err.
 */
json_t *gw_integ_render(gw_t *gw, const char *tenant, const gw_integ_t *in, int *code, char *err,
                        size_t err_size);

/* integration_remove.c */
/**
 * DELETE /v1/tenants/{t}/integrations/{name}: the tenant's only integration of a row with
 * admin->delete_alone_purges is purged at once (tombstones, then its keys and the inventory:
 * 204); otherwise the removal: integration_removed to the normalizer, then its keys (202).
 */
void api_integration_delete(gw_t *gw, struct evhttp_request *req, const char *tenant,
                            const gw_integ_t *in);

/** @brief mspsync_vendor_requests_total{vendor,outcome} += 1. */
void gw_vendor_metric(gw_t *gw, const char *vendor, const char *outcome);

/* ---- api_ticketing.c ---------------------------------------------------------------------- */

/**
 * @brief The "ticketing" block of GET .../integrations/syncro: enabled, unmapped_orgs,
 * dead_lettered, last_error, last_error_at. @returns a new object, or NULL with errstr (Redis).
 */
json_t *gw_ticketing_summary(gw_t *gw, const char *tenant, char *errstr, size_t errstr_size);
/**
 * @brief Resume ticketing paused by a 401/403 (the ticket-creator's ticketing_paused in
 * status:<vendor>): the integration was saved again or PATCHed. @returns 0 or -1 (err).
 */
int gw_ticketing_resume(gw_t *gw, const char *tenant, const char *vendor, char *err,
                        size_t err_size);

#endif
