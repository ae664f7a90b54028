/*
 * vendor.h — the vendor table: one row of data and callbacks per vendor mspsync talks to.
 *
 * In the manner of Redis's dictType and hiredis's adapters, a vendor (Syncro, ConnectWise RMM,
 * the next one) is a row: its name and label, where its sealed credential lives, its rate-limit
 * settings and bucket, how to authenticate, how to describe a failed call and what to tell the
 * user, the permissions each feature needs, and the record types it syncs in dependency order,
 * each with the pager that walks the vendor's lists and the mapper that makes canonical records.
 * The rows live in common/src/vendor_<name>.c beside that vendor's client; the services look a
 * vendor up by name once (msp_vendor_find) and then call through the row — they never compare
 * vendor names and keep no vendor flags.
 *
 * The vendor clients (syncro.h, cwrmm.h, syncro_store.h) stay what they are: request builders
 * and response parsers. A row only wires them to the shape every service uses. Like the
 * clients, a row knows no event loop and no retry policy: a pager builds the next request and
 * reads its answer; the caller sends, waits, classifies and backs off.
 *
 * Ownership: rows, their strings and their tables are static (borrowed, never freed). A
 * msp_vendor_cred_t and a msp_pager_t are the caller's, released with their _clear / destroy.
 */
#ifndef MSPSYNC_VENDOR_H
#define MSPSYNC_VENDOR_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "mspsync/config.h"
#include "mspsync/crypto.h"
#include "mspsync/cwrmm.h"
#include "mspsync/http.h"

/**
 * A row's index, in the order of the registry (mspsync/vendors.def: one line per vendor). For
 * iterating (msp_vendor_at) and for arrays that hold a per-process value of every row (rates,
 * token caches: msp_vendor_rates_t, msp_vendor_auth_t); code never branches on it.
 */
typedef enum {
#define MSP_VENDOR(ID, name) MSP_VENDOR_##ID,
#include "mspsync/vendors.def"
    MSP_VENDOR_COUNT
} msp_vendor_id_t;

typedef struct msp_vendor_s msp_vendor_t;

#define MSP_VENDOR_TYPES_MAX 8 /**< record types one vendor syncs, at most (test_vendor checks) */
#define MSP_MARK_MAX 64        /**< bytes of a pager's high-water mark, NUL included */

/* ------------------------------------------------------------------------------------------ */
/* credentials                                                                                 */

/**
 * A tenant's stored integration with one vendor, loaded and opened: its base URL, its secret
 * (registered for log redaction) and its rate-limit bucket. impl is the vendor client's own
 * struct (msp_syncro_integration_t, msp_cwrmm_integration_t), for code of that vendor only.
 */
typedef struct msp_vendor_cred_s {
    const msp_vendor_t *vendor; /**< borrowed row; NULL = nothing loaded */
    void *impl;                 /**< owned; freed (secret zeroed) by msp_vendor_cred_clear */
} msp_vendor_cred_t;

/**
 * The answer of a load of the tenant's integration with a vendor (msp_vendor_cred_load_async):
 * rc 0 loaded; 1 no integration (or disabled: no sealed secret); 2 the secret cannot be opened;
 * -1 Redis error, out of memory, or no integration while Redis is being restored from Kafka
 * (the state marker is gone: try again later). err says which.
 */
typedef void(msp_vendor_cred_cb)(void *arg, int rc, const char *err);

/** One asynchronous load in flight; its owner embeds it and keeps it until answered. */
typedef struct msp_vendor_cred_async_s {
    const msp_vendor_t *v;
    struct msp_aredis_s *a;
    const msp_secret_key_t *key;
    msp_vendor_cred_t *out;
    msp_vendor_cred_cb *cb;
    void *arg;
    int rc;
    char tenant[128];
    char err[512];
} msp_vendor_cred_async_t;

/**
 * @brief Load and open the tenant's integration with vendor v into *out (cleared first), on the
 * async connection (aredis.h): the integration's HMGET and
 * the state marker's EXISTS go together, and cb(arg, rc, err) runs later on the loop, exactly
 * once, unless msp_vendor_cred_cancel(op) came first. A reply lost (Redis down or stalled) is
 * rc -1. @returns 0 started; -1 not started (not connected now, or the tenant is too long):
 * no callback comes, try again later.
 */
int msp_vendor_cred_load_async(const msp_vendor_t *v, struct msp_aredis_s *a,
                               const msp_secret_key_t *key, const char *tenant,
                               msp_vendor_cred_t *out, msp_vendor_cred_async_t *op,
                               msp_vendor_cred_cb *cb, void *arg);

/** @brief The load's callback will not run (op may be freed; out is the owner's to clear). */
void msp_vendor_cred_cancel(msp_vendor_cred_async_t *op);

/** @brief Zero the secret and free it; *cred is empty afterwards. NULL-safe. */
void msp_vendor_cred_clear(msp_vendor_cred_t *cred);

/** @brief The API base URL of a loaded integration ("" when none). Borrowed from cred. */
const char *msp_vendor_cred_base_url(const msp_vendor_cred_t *cred);

/** @brief The key of the account's GCRA bucket, shared by every replica. Borrowed from cred. */
const char *msp_vendor_cred_bucket(const msp_vendor_cred_t *cred);

/* ------------------------------------------------------------------------------------------ */
/* authentication                                                                              */

/** What a row's per-process authentication state is made from (msp_vendor_auth_open). */
typedef struct msp_vendor_auth_env_s {
    struct event_base *base;     /**< the service's loop (borrowed) */
    msp_http_t *http;            /**< its vendor HTTP client (borrowed) */
    redisContext **redis;        /**< its Redis connection pointer (borrowed; the service
                                       reconnects it) */
    const msp_secret_key_t *key; /**< seals cached tokens (borrowed) */
    int64_t token_margin_ms;     /**< refresh a cached token this long before it expires */
    struct msp_aredis_s *aredis; /**< its async Redis connection, when it has one (borrowed):
                                      the token caches work on it without blocking the loop */
} msp_vendor_auth_env_t;

/**
 * What one process holds to authenticate with every vendor: row i's state at state[i], made by
 * its auth_new (NULL for a row without one: Syncro's key is the header itself; ConnectWise RMM's
 * is the OAuth token cache of cwrmm.h). The service owns it (msp_vendor_auth_open / _close) and
 * hands calls a pointer to it, never a copy, so that a call cancelled after the close sees no
 * state instead of a freed one.
 */
typedef struct msp_vendor_auth_s {
    void *state[MSP_VENDOR_COUNT];
} msp_vendor_auth_t;

/**
 * @brief Make every row's authentication state (*a cleared first). @returns 0, or -1 (out of
 * memory: nothing is left open).
 */
int msp_vendor_auth_open(msp_vendor_auth_t *a, const msp_vendor_auth_env_t *env);

/**
 * @brief Free every row's state (a deferred msp_vendor_auth_get's callback will not run) and
 * leave every slot NULL. NULL-safe.
 */
void msp_vendor_auth_close(msp_vendor_auth_t *a);

/** @brief v's state of a (msp_cwrmm_tokens_t * for ConnectWise RMM), or NULL. Borrowed. */
void *msp_vendor_auth_state(const msp_vendor_auth_t *a, const msp_vendor_t *v);

/**
 * Called once per deferred msp_vendor_auth_get, never from inside it: as msp_cwrmm_token_cb.
 * auth_header is "Authorization: …" (borrowed for the call) or NULL on failure; then status
 * 401/403 means the credentials are refused (fatal), anything else is retryable.
 */
typedef void(msp_vendor_auth_cb)(const char *auth_header, long status, int64_t retry_after_ms,
                                 const char *error, void *opaque);

/**
 * @brief The Authorization header for a call with cred.
 * @returns 0 the header is in header now (cb will not run); 1 cb will run later with it (a
 *          token is being fetched); -1 out of memory (cb will not run).
 */
int msp_vendor_auth_get(const msp_vendor_auth_t *a, const char *tenant,
                        const msp_vendor_cred_t *cred, char *header, size_t header_size,
                        msp_vendor_auth_cb *cb, void *opaque);

/**
 * @brief A call made with header was answered 401: drop the cached token so that the next
 * msp_vendor_auth_get fetches a fresh one. @returns 1 when a fresh header may help (OAuth), 0
 * when the vendor's credential is the header itself (Syncro: a 401 is final).
 */
int msp_vendor_auth_rejected(const msp_vendor_auth_t *a, const char *tenant,
                             const msp_vendor_cred_t *cred, const char *header);

/** @brief Forget a deferred msp_vendor_auth_get of opaque (its cb will not run). */
void msp_vendor_auth_cancel(const msp_vendor_auth_t *a, const msp_vendor_cred_t *cred,
                            void *opaque);

/* ------------------------------------------------------------------------------------------ */
/* errors and what to tell the user                                                            */

/** The situations a status page's hint is written for. */
typedef enum {
    MSP_HINT_FORBIDDEN,    /**< 401/403 on a call: a permission or scope is missing */
    MSP_HINT_REFUSED,      /**< another 4xx: the request was refused as it stands */
    MSP_HINT_KEPT_FAILING, /**< 429/5xx/timeouts until the attempts ran out */
    MSP_HINT_AUTH,         /**< the credentials themselves were refused */
    MSP_HINT_MISSING,      /**< no (enabled) integration for the tenant */
    MSP_HINT_SEALED,       /**< the stored secret does not open */
    MSP_HINT_COUNT
} msp_vendor_hint_t;

/**
 * @brief The hint for a situation, one line for the integration's status. For
 * MSP_HINT_FORBIDDEN it names the permission the call (method, path as in msp_pager_req_t)
 * needs; the other kinds ignore method and path. @returns out.
 */
char *msp_vendor_hint(const msp_vendor_t *v, msp_vendor_hint_t kind, const char *method,
                      const char *path, char *out, size_t out_size);

/**
 * @brief "<label> <METHOD> <path> answered 403: …" for a failed call (never a secret), as the
 * vendor client words it (msp_syncro_describe, msp_cwrmm_describe). @returns out.
 */
char *msp_vendor_describe(const msp_vendor_t *v, const msp_http_response_t *res, const char *method,
                          const char *path, char *out, size_t out_size);

/* ------------------------------------------------------------------------------------------ */
/* pagers: one per record type, owning its paging plan and its cursor format                    */

typedef struct msp_pager_s msp_pager_t;

/** What a pager needs to know of its job. Strings are borrowed for the pager's life. */
typedef struct msp_pager_conf_s {
    const char *base_url; /**< msp_vendor_cred_base_url */
    int page_size;        /**< items per list request where the vendor lets us choose */
    const char *since;    /**< an incremental job: the mark the type's last pass left (see
                               msp_pager_ops_t.mark); NULL for a full pass. A pager that takes
                               it asks only for what changed since (the pass is partial) */
} msp_pager_conf_t;

/** The next request of a pager. */
typedef struct msp_pager_req_s {
    const char *method; /**< "GET", "POST" (static) */
    char url[2048];     /**< the whole URL, query included */
    char path[300];     /**< what describe() and the hints print: no host, no query */
    char *body;         /**< malloc'd JSON body or NULL; the caller frees it */
} msp_pager_req_t;

/** What an answer did to the pager. */
typedef enum {
    MSP_PAGER_NEXT, /**< a step of the plan is done, nothing to produce: request again */
    MSP_PAGER_PAGE, /**< a page is complete: produce its records, then move the cursor */
    MSP_PAGER_BAD,  /**< unreadable answer: errstr says why; request the same again later */
} msp_pager_step_t;

typedef struct msp_pager_ops_s {
    /**
     * @brief A pager at the first page of its type. before is the pager of the type synced just
     * before in the same job (same vendor) or NULL; a pager may reuse what it learned
     * (ConnectWise RMM's devices take the company ids the company list read).
     * @returns new, or NULL (out of memory).
     */
    msp_pager_t *(*create)(const msp_pager_conf_t *conf, const msp_pager_t *before);
    /**
     * @brief Move to a cursor this pager's type wrote. @returns the page number to count from
     * (>= 1), or -1 when the cursor is not one of this type's (the pager is unchanged).
     */
    int (*seek)(msp_pager_t *p, const char *cursor);
    /** @brief The cursor of the current page (next = 0) or of the one after it (next = 1). */
    void (*cursor)(const msp_pager_t *p, int next, char *out, size_t out_size);
    /**
     * @brief Fill req with the next call. @returns 0 send it; 1 there is nothing (left) to ask:
     * the type is complete (req untouched).
     */
    int (*request)(msp_pager_t *p, msp_pager_req_t *req);
    /** @brief Classify the answer to the last request (a pager may read a 404 as "no more"). */
    msp_http_outcome_t (*classify)(const msp_pager_t *p, const msp_http_response_t *res);
    /**
     * @brief Read a successful answer (classify said OK). On MSP_PAGER_PAGE *records is a new
     * array of the page's vendor objects and *last says whether it ended the type.
     */
    msp_pager_step_t (*response)(msp_pager_t *p, const msp_http_response_t *res, json_t **records,
                                 int *last, char *errstr, size_t errstr_size);
    /**
     * @brief Add this pager's facts about the page just read to its "page" event (borrowed).
     * @returns the total page count for the status hash, or -1 when the pager shows none.
     */
    int (*progress)(const msp_pager_t *p, json_t *event);
    /** @brief The cursor moved past the current page (not the last): go on to the next. */
    void (*advance)(msp_pager_t *p);
    /** @brief Free. NULL-safe. */
    void (*destroy)(msp_pager_t *p);
    /**
     * @brief The high-water mark of the pass so far (the latest vendor change time read, never
     * below conf.since), for the fetcher to keep once the type completed and give the next
     * incremental pass as conf.since. @returns 1 with out set, 0 when there is none yet. NULL
     * for a type the vendor cannot list by change time: every pass is full (and gone-swept).
     */
    int (*mark)(const msp_pager_t *p, char *out, size_t out_size);
    /** @brief 1 when this pass asks only for changes (conf.since was taken): no gone-sweep. */
    int (*partial)(const msp_pager_t *p);
} msp_pager_ops_t;

/* ------------------------------------------------------------------------------------------ */
/* the row                                                                                     */

/** A record type a vendor can sync. */
typedef struct msp_vendor_type_s {
    const char *type;          /**< canonical type in messages: "customer", "asset" */
    const char *plural;        /**< spelling in sync.jobs "types" and events: "customers" */
    const char *feature;       /**< the feature (msp_vendor_feature_t) whose permissions the
                                    type's sync needs; a job syncs it only when that feature is
                                    enabled on the integration */
    const char *string_id_key; /**< member holding a string source id, or NULL (integer "id") */
    const char *const *pick;   /**< top-level members the mapper reads (msp_json_pick), or NULL
                                    when it needs the whole payload */
    /** @brief Canonical record from one vendor object: new, or NULL with errstr. */
    json_t *(*map)(const char *tenant, const json_t *raw, char *errstr, size_t errstr_size);
    const msp_pager_ops_t *pager;
    const char *embeds; /**< member of each record holding a record of the type of that name
                             ("customer": Syncro's assets carry their customer), or NULL. When
                             that type's feature is off, the fetcher produces these embedded
                             records as that type, marked "derived_from": <plural> */
} msp_vendor_type_t;

/**
 * The permissions (Syncro) or scopes (ConnectWise RMM) one feature needs. An integration is
 * saved with the features the user wants (integration:<name> "features", a comma list); a record
 * type is synced only when its feature is on. A row with option_of set is no feature of its own
 * but an option inside one (Syncro's "auto_resolve" inside "ticketing"): turning the option on
 * needs its permissions beside the feature's.
 */
typedef struct msp_vendor_feature_s {
    const char *feature;            /**< "customers", "assets", "writeback" */
    const char *const *permissions; /**< the names the vendor's screens show, NULL-terminated */
    const char *option_of;          /**< NULL: a feature users switch; else the feature this
                                         option belongs to */
} msp_vendor_feature_t;

/**
 * Rate limits: the two settings every service reads for every row (msp_vendor_rate_rows), as
 * config.h rows — name, default (text), upper bound, the line of --help — and the bucket.
 */
typedef struct msp_vendor_rate_s {
    const char *rate_env;   /**< "MSPSYNC_SYNCRO_RATE_MILLI": requests per 1000 s */
    const char *rate_def;   /**< its default, "2900" */
    long long rate_max;     /**< its upper bound (the lower is 1) */
    const char *rate_help;  /**< its --help line */
    const char *burst_env;  /**< "MSPSYNC_SYNCRO_BURST" */
    const char *burst_def;  /**< its default, "3" */
    long long burst_max;    /**< its upper bound (the lower is 1) */
    const char *burst_help; /**< its --help line */
    const char *bucket_tag; /**< hash tag of the account's bucket: "<bucket_tag><account>" */
} msp_vendor_rate_t;

/** How the gateway's GET body shows a field of integration:<name> (msp_vendor_shown_t). */
typedef enum {
    MSP_SHOWN_NULL = 0,  /**< the stored string, null when absent */
    MSP_SHOWN_EMPTY,     /**< the stored string, "" when absent */
    MSP_SHOWN_NULL_EMPTY /**< the stored string, null when absent or empty */
} msp_vendor_shown_as_t;

/** Keys extra_keys and removal_keys name together (or purge_keys alone), at most (test_vendor). */
#define MSP_VENDOR_DROP_KEYS_MAX 5

/** A field of integration:<name> that the gateway's GET body shows under the same name. */
typedef struct msp_vendor_shown_s {
    const char *field;
    msp_vendor_shown_as_t as;
} msp_vendor_shown_t;

/**
 * The gateway's part of a row, data only: what its GET /v1/tenants/{t}/integrations/<name> shows
 * besides the status every integration has, and what its DELETE removes. The gateway's generic
 * handlers (services/gateway/integrations.c, integration_remove.c) read it; no vendor code.
 */
typedef struct msp_vendor_admin_s {
    const msp_vendor_shown_t *shown; /**< fields the GET body shows, in order; ends with {NULL} */
    int show_ticketing;              /**< the GET body has the tenant's "ticketing" block (the
                                          vendor is where incidents become tickets) */
    /**
     * 1: a DELETE while this is the tenant's only integration removes everything at once —
     * tombstones for the whole inventory, then integration:/status:<name>, purge_keys and every
     * inv: key — and answers 204. 0, or with another integration beside it: the removal
     * (integration_removed through the normalizer, then the keys), 202.
     */
    int delete_alone_purges;
    const char *const *purge_keys;   /**< keys (after the tenant) a purge also drops, or NULL */
    const char *const *removal_keys; /**< keys (after the tenant) a removal also drops besides
                                          sched:<name> and extra_keys, or NULL */
} msp_vendor_admin_t;

/* ------------------------------------------------------------------------------------------ */
/* the gateway's PUT: the body a vendor's integration is saved with, and the proof of it        */

struct msp_vcall_env_s;

/** How the generic PUT checks a member of the body (msp_vendor_put_field_t). */
typedef enum {
    MSP_PUT_TEXT = 0,  /**< a string of 1..max characters without NUL: "\"<name>\" must be a
                            non-empty string of at most <max> characters" */
    MSP_PUT_WHERE,     /**< an optional string saying where the account is (Syncro's subdomain
                            or base_url); consecutive ones are checked together — strings, then
                            not empty — and validate reads them */
    MSP_PUT_WRITEBACK, /**< the write-back opt-in object (purchase_date, warranty_expires) */
    MSP_PUT_FEATURES,  /**< the features wanted (the row's feature names; absent: all the
                            credentials serve). Needs chooses_features */
    MSP_PUT_INTERVAL,  /**< sync_interval_minutes */
} msp_vendor_put_kind_t;

/** A member of the PUT body. */
typedef struct msp_vendor_put_field_s {
    const char *name;
    msp_vendor_put_kind_t kind;
    size_t max; /**< MSP_PUT_TEXT: characters at most */
    int secret; /**< MSP_PUT_TEXT: the credential the proof proves and the gateway seals into
                     sealed_field (one per row); wiped from the parsed body */
} msp_vendor_put_field_t;

#define MSP_PUT_STORED_MAX 5  /**< fields a row stores as given, at most (test_vendor checks) */
#define MSP_PUT_FIELDS_MAX 15 /**< members of a PUT body, at most (test_vendor checks) */

typedef struct msp_vendor_put_s msp_vendor_put_t;

/**
 * One PUT in flight, shared by the gateway (its generic handler) and the row's put part. The
 * gateway sets its half, the row's validate fills the row's half from the checked body, then the
 * row's prove runs the vendor's checks through the vendor-call engine (vcall.h) and ends with
 * done. Strings are borrowed for as long as the PUT lives.
 */
struct msp_vendor_put_s {
    /* the gateway's, before validate */
    const msp_vendor_t *vendor;
    const char *tenant;
    const char *setting;                        /**< the gateway's value of put->setting */
    int writeback_purchase, writeback_warranty; /**< -1 not given, 0, 1 */
    /* the gateway's, before prove */
    const struct msp_vcall_env_s *env; /**< the gateway's engine environment */
    const msp_vendor_auth_t *auth;     /**< the gateway's auth state (token caches) */
    double rate;                       /**< the gateway's rate settings for the row */
    int burst;
    int64_t deadline_ms; /**< msp_now_ms() time the whole proof must end by */
    /** @brief Count an outcome of a vendor call ("ok", "retry", …, "rate_limited"). */
    void (*answered)(msp_vendor_put_t *p, const char *outcome);
    /**
     * @brief The proof's end, exactly once: code 0 proven (body NULL), else the answer the
     * client gets (body stolen). May run from inside prove; p may be freed in it, so the row
     * touches nothing of p after calling it.
     */
    void (*done)(msp_vendor_put_t *p, int code, json_t *body);
    void *owner; /**< the gateway's */
    /* the row's: validate fills them (borrowed from impl), prove may add to granted */
    void *impl;
    const char *secret; /**< the plaintext credential (zeroed by free) */
    const char *base_url, *account_id;
    const char *stored[2 * MSP_PUT_STORED_MAX + 1]; /**< name, value pairs the gateway stores as
                                                         given, NULL-ended */
    char granted[512]; /**< chooses_features: the permissions the proof found, comma list */
};

/**
 * A row's PUT: the body's members and the proof. The gateway's one handler (services/gateway/
 * integration_put.c) checks the body against fields, holds the request, runs validate and
 * prove, and then seals, stores, journals, audits and queues the full sync for every vendor.
 */
typedef struct msp_vendor_put_part_s {
    const msp_vendor_put_field_t *fields; /**< in the order they are checked; ends with {NULL} */
    int closed;                           /**< a member not in fields is refused (400 naming it) */
    int chooses_features; /**< the proof fills granted: the features asked for (or all it
                               serves) are chosen from it, 422 naming what is lacking, and stored
                               as "features" and "granted" */
    int answer_full; /**< 1: the answer is the GET body, 201 new / 200 replaced; 0: {integration,
                          base_url, state, job_id, features}, 201 */
    const char *const *account_keys; /**< keys (after the tenant) dropped when the integration
                                          is saved with another account_id, or NULL */
    /** A gateway setting validate reads (p->setting), as a config.h row without dest; its name
     * NULL: none. The gateway lists every row's (msp_vendor_put_setting_rows). */
    msp_config_entry_t setting;
    /**
     * @brief The body passed the field checks: make p->impl and fill secret, base_url,
     * account_id and stored (validation a field table cannot say: where the account is).
     * @returns 0; -1 with err (400); -2 out of memory. The body is borrowed for the call.
     */
    int (*validate)(msp_vendor_put_t *p, const json_t *body, char *err, size_t err_size);
    /** @brief Prove the credentials through the vendor-call engine, then p->done. */
    void (*prove)(msp_vendor_put_t *p);
    /** @brief Stop the proof (a token wait, a timer): done will not run. The gateway's
     * shutdown while the proof waits. */
    void (*stop)(msp_vendor_put_t *p);
    /** @brief Zero the secret and free impl (impl NULL afterwards). NULL impl: nothing. */
    void (*free)(msp_vendor_put_t *p);
} msp_vendor_put_part_t;

/** The gateway's values of every row's put setting (msp_vendor_put_setting_rows). */
typedef struct msp_vendor_put_settings_s {
    char *value[MSP_VENDOR_COUNT];
} msp_vendor_put_settings_t;

/**
 * @brief A config.h expander (MSP_CFG_EXPAND) of a msp_vendor_put_settings_t: the put setting of
 * every row that has one, in registry order. @returns the number of rows there are.
 */
size_t msp_vendor_put_setting_rows(void *settings, msp_config_entry_t *out, size_t max);

struct msp_vendor_s {
    msp_vendor_id_t id;
    const char *name;              /**< "syncro": key suffix (integration:<name>, status:<name>,
                                       cursor:<name>:…), sync jobs' and records' "integration" */
    const char *label;             /**< "Syncro": in messages */
    const char *sealed_field;      /**< field of integration:<name> holding the sealed secret;
                                       absent = disabled */
    const char *stats_prefix;      /**< inv:stats "<prefix><type>_complete_job" */
    const char *const *extra_keys; /**< keys (after the tenant) a disable also drops, or NULL */
    int merge_primary;             /**< its asset wins a merge of one machine's assets (the PSA) */
    msp_vendor_rate_t rate;
    const msp_vendor_feature_t *features; /**< ends with {NULL, NULL} */
    const msp_vendor_type_t *types;       /**< in dependency order (customers before assets) */
    size_t types_cnt;
    const msp_vendor_admin_t *admin;   /**< the gateway's GET and DELETE of it */
    const msp_vendor_put_part_t *put;  /**< the gateway's PUT of it: body and proof */
    const char *hints[MSP_HINT_COUNT]; /**< fixed hints; FORBIDDEN comes from forbidden() */

    /* callbacks: the client's functions, wrapped (vendor_<name>.c) */
    char *(*describe)(const msp_http_response_t *res, const char *method, const char *path,
                      char *out, size_t out_size);
    char *(*forbidden)(const char *method, const char *path, char *out, size_t out_size);
    void *(*cred_new)(void);
    /** the fields of integration:<name> a load reads (one HMGET), NULL-terminated */
    const char *const *cred_fields;
    /** open that HMGET's reply (NULL: none, rerr says why) into impl: the load's rc */
    int (*cred_from_reply)(const redisReply *r, const char *rerr, const msp_secret_key_t *key,
                           const char *tenant, void *impl, char *err, size_t err_size);
    void (*cred_free)(void *impl);
    const char *(*cred_base_url)(const void *impl);
    const char *(*cred_bucket)(const void *impl);
    /** @brief 1 when id can be one of the vendor's record ids (safe in a URL path). */
    int (*id_valid)(const char *id);
    /* authentication: state is the row's slot of msp_vendor_auth_t (NULL: none, or closed) */
    int (*auth_get)(void *state, const char *tenant, const void *impl, char *header,
                    size_t header_size, msp_vendor_auth_cb *cb, void *opaque);
    void (*auth_rejected)(void *state, const char *tenant, const void *impl,
                          const char *header);      /**< NULL: a 401 is final */
    void (*auth_cancel)(void *state, void *opaque); /**< NULL: never deferred */
    /** @brief The row's per-process state (new), or NULL (out of memory). NULL: it has none. */
    void *(*auth_new)(const msp_vendor_auth_env_t *env);
    void (*auth_free)(void *state); /**< frees what auth_new made (with auth_new) */
    /** @brief How many tokens the state asked the vendor for (a metric), or NULL. */
    uint64_t (*auth_requested)(const void *state);
};

/** The rows (vendor_<name>.c), one per line of vendors.def. Services reach them through
 * msp_vendor_find / msp_vendor_at. */
#define MSP_VENDOR(ID, name) extern const msp_vendor_t msp_vendor_##name;
#include "mspsync/vendors.def"

/* ------------------------------------------------------------------------------------------ */
/* rate settings: defined once, read by every service for every row                             */

/** One service's rate settings, a pair per row (its msp_svc_conf_t holds them). */
typedef struct msp_vendor_rates_s {
    long long milli[MSP_VENDOR_COUNT]; /**< requests per 1000 s of one account */
    long long burst[MSP_VENDOR_COUNT]; /**< requests one account's bucket allows at once */
} msp_vendor_rates_t;

/**
 * @brief A config.h expander (MSP_CFG_EXPAND) of a msp_vendor_rates_t (rates): the two rows of
 * every vendor (row.rate: names, defaults, bounds, help), in registry order, into out (at most
 * max; out may be NULL with max 0). @returns the number of rows there are.
 */
size_t msp_vendor_rate_rows(void *rates, msp_config_entry_t *out, size_t max);

/** @brief v's rate of r in tokens per second, for a bucket (msp_vcall_account_t.rate). */
double msp_vendor_rate_per_s(const msp_vendor_rates_t *r, const msp_vendor_t *v);

/** @brief v's burst of r (msp_vcall_account_t.burst). */
int msp_vendor_rate_burst(const msp_vendor_rates_t *r, const msp_vendor_t *v);

/** @brief The row named name ("syncro", "cwrmm"), or NULL (also for NULL). Borrowed. */
const msp_vendor_t *msp_vendor_find(const char *name);

/** @brief Row i for i < MSP_VENDOR_COUNT (iteration), else NULL. Borrowed. */
const msp_vendor_t *msp_vendor_at(size_t i);

/**
 * @brief The vendor of records that name none: envelopes before v0.4 were all Syncro's.
 * Borrowed.
 */
const msp_vendor_t *msp_vendor_implied(void);

/** @brief "\"syncro\" or \"cwrmm\"": the names, quoted, for "expected …" messages. @returns out. */
char *msp_vendor_names(char *out, size_t out_size);

/**
 * @brief "\"customers\" <last> \"assets\"": v's job type names for messages (last: " or ",
 * " and/or "). @returns out.
 */
char *msp_vendor_type_names(const msp_vendor_t *v, const char *last, char *out, size_t out_size);

/** @brief The record type of v named type ("customer") or plural ("customers"), or NULL. */
const msp_vendor_type_t *msp_vendor_type(const msp_vendor_t *v, const char *type);

/**
 * @brief The record types a list of job type names ("customers", …, a JSON array, borrowed)
 * asks for, as indexes of v->types in v's dependency order (whatever the list's order): idx has
 * MSP_VENDOR_TYPES_MAX slots, *n gets the count. @returns -1 when every element names one of v's
 * types, else the index of the first element that does not (or is no string).
 */
int msp_vendor_types_wanted(const msp_vendor_t *v, const json_t *names, int *idx, size_t *n);

/** @brief The permission names feature needs with v (NULL-terminated), or NULL. Borrowed. */
const char *const *msp_vendor_permissions(const msp_vendor_t *v, const char *feature);

/** @brief The feature (or option) of v named name, or NULL. Borrowed. */
const msp_vendor_feature_t *msp_vendor_feature(const msp_vendor_t *v, const char *name);

/**
 * @brief 1 when the comma list list ("assets,customers") holds item exactly, else 0. A NULL
 * list holds nothing.
 */
int msp_vendor_list_has(const char *list, const char *item);

/** @brief Append item to the comma list list (list_size bytes) unless it holds it already. */
void msp_vendor_list_add(char *list, size_t list_size, const char *item);

/**
 * @brief 1 when a job may sync type t of an integration saved with the feature list features
 * (integration:<name> "features"). NULL features — an integration saved before features
 * existed — enables every type.
 */
int msp_vendor_type_enabled(const msp_vendor_type_t *t, const char *features);

/**
 * @brief The permissions of feature f that the comma list granted lacks, in the row's order:
 * out (max slots) gets borrowed names. @returns their count (more than max are not counted).
 */
size_t msp_vendor_missing(const msp_vendor_feature_t *f, const char *granted, const char **out,
                          size_t max);

#endif
