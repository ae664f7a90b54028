/*
 * cwrmm.h — the ConnectWise RMM ("Asio" platform API) client: URLs, OAuth2 tokens, paging,
 * errors, and the mapping of companies and devices to canonical records.
 *
 * Facts this relies on are in shared/vendor-specs/NOTES.md ("ConnectWise RMM"):
 * - Regional hosts: na https://openapi.service.itsupport247.net, eu
 *   https://openapi.service.euplatform.connectwise.com, au
 *   https://openapi.service.auplatform.connectwise.com. Region is explicit configuration; an
 *   explicit base_url (the simulator, a proxy) replaces it.
 * - POST {base}/v1/token with a JSON client-credentials body → {"access_token","token_type",
 *   "expires_in","scope"}. Asking for many tokens at once locks the key (423): one token per
 *   credential set is cached (in memory and, sealed, in Redis, shared by every process) and
 *   refreshed single-flight before it expires.
 * - Companies: GET {base}/api/platform/v1/company/companies (a JSON array).
 * - Devices: POST {base}/api/platform/v2/device/categories/all/endpoints?limit=N[&cursor=C]
 *   &field=a,b,... (ONE comma-separated value: the document's `fieldV2WithLimit` is a string,
 *   style form) and the header X-Request-ID (http.c sends one on every request), with body {"resourceType":"company","resources":[<= 4 company ids]}; answer
 *   {"platform":[{"companyID","siteID","endpoints":[...]}]}; next page = Link rel="next"
 *   (msp_http_response_t.link_next), a 404 means "no (more) devices".
 * - Custom-field definitions: GET/POST {base}/api/platform/v1/custom-field/definitions;
 *   values: GET/PUT {base}/api/platform/v2/device/endpoints/{id}/custom-fields
 *   (PUT body [{"entityId","attributeId","value"}], value a string or null).
 * - 429 bodies may be text/plain; 423/429/5xx are retried honouring Retry-After.
 */
#ifndef MSPSYNC_CWRMM_H
#define MSPSYNC_CWRMM_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <hiredis/hiredis.h>

#include "mspsync/crypto.h"
#include "mspsync/http.h"
#include "mspsync/model.h"

struct event_base;

/** Scopes asked for: sync and write-back (NOTES.md). */
#define MSP_CWRMM_SCOPES                                                                         \
    "platform.companies.read platform.sites.read platform.devices.read "                         \
    "platform.custom_fields_definitions.read platform.custom_fields_definitions.write "          \
    "platform.custom_fields_values.read platform.custom_fields_values.write"

/**
 * Names of the device custom fields that carry the dates (datetime definitions): the labels of
 * fields.h, shared with Syncro. mspsync creates them with exactly these names; a partner's own
 * definition matches them by the rule of msp_cwrmm_field_name_is() (case-insensitive, trimmed),
 * everywhere a name is compared.
 */
#define MSP_CWRMM_FIELD_PURCHASE MSP_DATE_PURCHASE_LABEL
#define MSP_CWRMM_FIELD_WARRANTY MSP_DATE_WARRANTY_LABEL

/** Index of the date fields in msp_cwrmm_date_definitions()'s ids. */
#define MSP_CWRMM_DATE_PURCHASE 0
#define MSP_CWRMM_DATE_WARRANTY 1
#define MSP_CWRMM_ATTR_ID_SIZE  80 /**< room for an attribute id (a UUID) and its NUL */

/* ------------------------------------------------------------------------------------------ */
/* URLs and request bodies                                                                     */

/**
 * @brief The API base from a region ("na", "eu", "au", case-insensitive) or an explicit
 * base_url (http/https; a trailing '/' is dropped). Exactly one must be non-empty.
 * @returns 0, or -1 with a user-facing message ("unknown region \"xx\": expected na, eu or au").
 */
int msp_cwrmm_base_url(const char *region, const char *base_url, char *out, size_t out_size,
                       char *errstr, size_t errstr_size);

/**
 * @brief A stable id for (base_url, client_id): names the shared token and rate-limit bucket.
 * "cw:" + the first 16 hex digits of SHA-256(lowercased base_url + "\n" + client_id).
 */
void msp_cwrmm_account_id(const char *base_url, const char *client_id, char *out,
                          size_t out_size);

/** @brief The JSON body of POST /v1/token. @returns a malloc'd string (caller frees). */
char *msp_cwrmm_token_body(const char *client_id, const char *client_secret, const char *scope);

/**
 * @brief Parse a token answer. *token is malloc'd (caller frees and zeroes);
 * *expires_in_s is expires_in (integer or numeric string; 3599 when absent).
 * @returns 0, or -1 (errstr) when there is no non-empty access_token.
 */
int msp_cwrmm_parse_token(const char *body, size_t len, char **token, int64_t *expires_in_s,
                          char *errstr, size_t errstr_size);

/**
 * @brief "{base}/api/platform/v2/device/categories/all/endpoints?limit=N&field=a,b,..." (one
 * `field` parameter, comma-separated, as the document defines it)
 * with "&cursor=<urlencoded>" when cursor is non-NULL and non-empty. The fields are the ones the
 * device mapping reads (endpointID, friendlyName, deviceName, system, baseboard, os, macAddress,
 * modifiedAt). @returns 0 or -1 (out too small, limit outside 1..500).
 */
int msp_cwrmm_devices_url(const char *base_url, int limit, const char *cursor, char *out,
                          size_t out_size);

/** @brief {"resourceType":"company","resources":[ids...]} (n <= 4). malloc'd string. */
char *msp_cwrmm_devices_body(const char *const *company_ids, size_t n);

/**
 * @brief The cursor of a Link rel="next" URL (its "cursor" query parameter, URL-decoded), so a
 * job can store it and rebuild the URL. @returns malloc'd string or NULL when absent.
 */
char *msp_cwrmm_cursor_from_link(const char *link_next);

/* ------------------------------------------------------------------------------------------ */
/* the date custom fields                                                                      */

/**
 * @brief Does a custom-field name (a definition's or a value's "name") name the date field
 * `want` (MSP_CWRMM_FIELD_PURCHASE or MSP_CWRMM_FIELD_WARRANTY)? The one rule every reader and
 * writer uses: ASCII case-insensitive, surrounding whitespace ignored ("  purchase DATE " names
 * "Purchase Date"). Partners create these definitions by hand, and ConnectWise RMM's screens
 * show names as typed, so "Purchase date" must be the same field for the fetcher and the
 * write-back. @returns 1 or 0 (also for NULL).
 */
int msp_cwrmm_field_name_is(const char *name, const char *want);

/**
 * @brief The attribute ids of the two date definitions in a GET
 * /api/platform/v1/custom-field/definitions answer (an array): ids[MSP_CWRMM_DATE_PURCHASE] and
 * ids[MSP_CWRMM_DATE_WARRANTY], "" when there is none. Only definitions for endpoints count
 * (entityType "endpoint", or absent); names match by msp_cwrmm_field_name_is(). When several
 * match, one named exactly as mspsync creates it wins, else the first in the answer; an id that
 * does not fit MSP_CWRMM_ATTR_ID_SIZE is ignored.
 * @returns how many of the two were found (0..2); 0 when defs is not an array.
 */
int msp_cwrmm_date_definitions(const json_t *defs, char ids[2][MSP_CWRMM_ATTR_ID_SIZE]);

/* ------------------------------------------------------------------------------------------ */
/* errors                                                                                      */

/**
 * @brief A human message from any error body: {"message":..}, {"error":..,"error_description":..}
 * (OAuth), {"errors":[..]}, {"title","detail"}, text/plain, HTML, empty. One line of valid
 * UTF-8, never empty ("HTTP 502 (empty body)"), control characters removed, at most ~200 chars.
 */
void msp_cwrmm_error_message(long status, const char *body, size_t len, char *out,
                             size_t out_size);

/**
 * @brief The scope a call needs: ("GET","/api/platform/v1/company/companies") →
 * "platform.companies.read", device list → "platform.devices.read", definitions GET/POST →
 * "platform.custom_fields_definitions.read"/".write", values GET/PUT →
 * "platform.custom_fields_values.read"/".write". NULL when unknown.
 */
const char *msp_cwrmm_scope_for(const char *method, const char *path);

/**
 * @brief Describe a failed call for status pages and logs (never a secret or token):
 * "ConnectWise RMM POST /v1/token answered 401: <message> — the client id or secret is wrong or
 * revoked", 423 on the token: "… — the API key is locked for asking for too many tokens; it
 * unlocks by itself", 403: "… — the API client lacks the scope \"platform.devices.read\"",
 * 429: "… — rate limited; it asked to wait N s", transport: "… could not connect: <curl>" /
 * "… timed out". path is printed without its query string. @returns out.
 */
char *msp_cwrmm_describe(const msp_http_response_t *res, const char *method, const char *path,
                         char *out, size_t out_size);

/* ------------------------------------------------------------------------------------------ */
/* mapping to canonical records (model.h has the shapes)                                       */

/**
 * @brief A canonical customer from a company: id "cwrmm:<id>", sources [{integration:"cwrmm",
 * id}], name = friendlyName, email/phone null, disabled = !activityStatus.activeFlag (null when
 * absent), updated_at = updatedDate. @returns new reference or NULL (errstr) without a string id.
 */
json_t *msp_map_cwrmm_company(const char *tenant, const json_t *raw, char *errstr,
                              size_t errstr_size);

/**
 * @brief A canonical asset from a device object as the fetcher sends it: the endpoint from the
 * list plus "companyID", "siteID" (copied from its group) and, when the fetcher read them,
 * "customFieldValues": the GET .../custom-fields answer (array of {attributeId,name,value}).
 * id "cwrmm:<endpointID>", name = friendlyName (else deviceName), asset_type null, serial =
 * system.serialNumber (else baseboard.serialNumber), manufacturer = baseboard.manufacturer,
 * model = system.model, form_factor null, os {name: os.product, build: os.version}, macs from
 * macAddress[] (normalized as model.h says), customer_ref "cwrmm:<companyID>", site_ref
 * "cwrmm:<siteID>" (or null), updated_at = modifiedAt, and
 * "dates": {"purchase": "YYYY-MM-DD"|null, "warranty": "YYYY-MM-DD"|null} from the values named
 * MSP_CWRMM_FIELD_PURCHASE / MSP_CWRMM_FIELD_WARRANTY (msp_date_normalize of model.h;
 * unparsable = null).
 * Without customFieldValues "dates" is absent (the dates were not read, not "empty").
 * @returns new reference or NULL (errstr) without a string endpointID.
 */
json_t *msp_map_cwrmm_device(const char *tenant, const json_t *raw, char *errstr,
                             size_t errstr_size);

/* ------------------------------------------------------------------------------------------ */
/* a tenant's stored integration                                                               */

typedef struct msp_cwrmm_integration_s {
    char  base_url[512];
    char  client_id[1024];      /**< up to 255 characters of UTF-8 (the gateway's limit) */
    char  account[64];          /**< msp_cwrmm_account_id */
    char  bucket_key[384];      /**< GCRA bucket of the account (msp_key("cwrmm:<account>","rl")) */
    char *client_secret;        /**< malloc'd; zeroed and freed by msp_cwrmm_integration_clear */
    int   writeback_purchase;   /**< opted in per field */
    int   writeback_warranty;
    int   redacted;             /**< 1: load registered client_secret with msp_log_redact, clear
                                     forgets it (a struct filled by hand leaves it 0) */
} msp_cwrmm_integration_t;

/**
 * @brief Load mspsync:{t}:integration:cwrmm (fields base_url, client_id, client_secret_sealed
 * sealed with AAD "<tenant>/cwrmm", writeback_purchase, writeback_warranty).
 * @returns 0 ok; 1 no integration (or disabled: no sealed secret); 2 the secret cannot be
 * decrypted; -1 Redis error. err says which.
 */
int msp_cwrmm_integration_load(redisContext *c, const msp_secret_key_t *key, const char *tenant,
                               msp_cwrmm_integration_t *out, char *err, size_t err_size);

/** The fields of integration:cwrmm the load reads, in the order of an HMGET (NULL-terminated). */
extern const char *const msp_cwrmm_integration_fields[];

/**
 * @brief msp_cwrmm_integration_load's reading of an HMGET reply of msp_cwrmm_integration_fields
 * (r NULL: no reply, rerr says why); r stays the caller's. @returns as the load.
 */
int msp_cwrmm_integration_from_reply(const redisReply *r, const char *rerr,
                                     const msp_secret_key_t *key, const char *tenant,
                                     msp_cwrmm_integration_t *out, char *err, size_t err_size);

/** @brief Zero and free the secret (forgetting load's msp_log_redact registration). NULL-safe. */
void msp_cwrmm_integration_clear(msp_cwrmm_integration_t *in);

/* ------------------------------------------------------------------------------------------ */
/* the token cache                                                                             */

typedef struct msp_cwrmm_tokens_s msp_cwrmm_tokens_t;

/**
 * Called once per msp_cwrmm_token_get, never from inside it. On success auth_header is
 * "Authorization: Bearer <token>" (borrowed for the call). On failure auth_header is NULL,
 * error describes it (msp_cwrmm_describe of the token call, or the Redis problem), status is the
 * token endpoint's HTTP status (0 = transport or Redis) and retry_after_ms its Retry-After (-1).
 * A caller treats status 401/403 as fatal (credentials), anything else as retryable.
 */
typedef void(msp_cwrmm_token_cb)(const char *auth_header, long status, int64_t retry_after_ms,
                                 const char *error, void *opaque);

/**
 * @brief A cache serving every tenant of one process. redis points at the caller's connection
 * pointer (the caller reconnects it; NULL or a broken connection = memory only).
 * A token is refreshed when less than min(margin_ms, lifetime / 4) of its life is left.
 */
msp_cwrmm_tokens_t *msp_cwrmm_tokens_new(struct event_base *base, msp_http_t *http,
                                         redisContext **redis, const msp_secret_key_t *key,
                                         int64_t margin_ms);

/**
 * @brief Get a valid token for (tenant, integration): memory, else Redis (sealed,
 * key mspsync:{t}:token:cwrmm, AAD "<tenant>/cwrmm-token", bound to account + a fingerprint of
 * the secret so a changed secret never reuses an old token), else one POST /v1/token. Only one
 * request per credential set is in flight in a process, and across processes a
 * SET NX PX lock (mspsync:{t}:token:cwrmm:lock) makes the others wait for the stored token.
 * @returns 0 (cb will run), -1 (out of memory; cb will not run).
 */
int msp_cwrmm_token_get(msp_cwrmm_tokens_t *t, const char *tenant,
                        const msp_cwrmm_integration_t *in, msp_cwrmm_token_cb *cb, void *opaque);

/**
 * @brief An API call answered 401 with this auth header: forget that token (memory and Redis)
 * unless a newer one already replaced it, so that N concurrent 401s cause one refresh.
 */
void msp_cwrmm_token_rejected(msp_cwrmm_tokens_t *t, const char *tenant,
                              const msp_cwrmm_integration_t *in, const char *auth_header);

/** @brief Forget every waiter with this opaque (its cb will not run). */
void msp_cwrmm_token_cancel(msp_cwrmm_tokens_t *t, void *opaque);

/** @brief POST /v1/token calls this cache made (tests and metrics). */
uint64_t msp_cwrmm_tokens_requested(const msp_cwrmm_tokens_t *t);

/** @brief Free (pending waiters are dropped without callback). NULL-safe. */
void msp_cwrmm_tokens_destroy(msp_cwrmm_tokens_t *t);

#endif
