/*
 * syncro.h — the Syncro PSA REST client: builds requests and parses responses.
 *
 * It knows Syncro's shapes (NOTES.md) and nothing about event loops or retries. Base URL:
 * https://{subdomain}.syncromsp.com/api/v1, or an explicit base_url (self-hosted proxies, the
 * simulator). We always send "Authorization: Bearer <key>" (Syncro also accepts the bare token
 * and ?api_key=). Lists are paged by a 1-based `page` until meta.total_pages; never assume a
 * page size. Ids exceed 32 bits: always json_integer_value() into int64.
 */
#ifndef MSPSYNC_SYNCRO_H
#define MSPSYNC_SYNCRO_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "mspsync/http.h"

/**
 * @brief Build the API base URL from a subdomain (letters, digits, '-', 1..63) or a base_url
 * (http/https, no trailing slash kept). Exactly one of them must be non-empty.
 * @returns 0, or -1 with a user-facing message in errstr.
 */
int msp_syncro_base_url(const char *subdomain, const char *base_url, char *out, size_t out_size,
                        char *errstr, size_t errstr_size);

/**
 * @brief The explicit-base-URL check every vendor client shares: http/https, a host, no user
 * info, no spaces, query or fragment; trailing '/' dropped. Messages name the vendor
 * ("the ConnectWise RMM base URL must start with https:// or http://"). @returns 0 or -1.
 */
int msp_vendor_base_url(const char *vendor, const char *base_url, char *out, size_t out_size,
                        char *errstr, size_t errstr_size);

/**
 * @brief "<vendor> <METHOD> /<path> timed out: …" / "… could not connect: …" / "… was
 * cancelled" / "… failed: …" for a request that got no HTTP answer (res NULL or status 0); the
 * query string is never shown. Every vendor client words transport failures this way. @returns out.
 */
char *msp_vendor_describe_transport(const char *vendor, const msp_http_response_t *res,
                                    const char *method, const char *path, char *out,
                                    size_t out_size);

/**
 * @brief A stable id for the Syncro account behind base_url, used to name the shared rate-limit
 * bucket: lowercase scheme+host+path with any trailing '/' removed.
 */
void msp_syncro_account_id(const char *base_url, char *out, size_t out_size);

/**
 * @brief "<base>/<resource>?page=<page>" (+ "&per_page=N" when per_page > 0). A resource that
 * already has a query ("tickets?status=Open") gets "&page=". Leading '/' of resource ignored.
 * @returns 0, or -1 when page < 1 or out is too small.
 */
int msp_syncro_list_url(const char *base_url, const char *resource, int page, int per_page,
                        char *out, size_t out_size);

/**
 * @brief The body of PUT /customer_assets/{id}: {"name": <the asset's name>, "properties":
 * properties}. syncro-openapi.json requires `name` in it (a PUT without one answers 422 "Name
 * can't be blank"), so the name read with the asset goes back unchanged. asset is the
 * GET /customer_assets/{id} answer, {"asset":{...}} or the bare object (borrowed).
 * @returns a new reference, or NULL with errstr when the asset has no non-empty string name.
 * Steals properties (also on failure).
 */
json_t *msp_syncro_asset_put_body(const json_t *asset, json_t *properties, char *errstr,
                                  size_t errstr_size);

/** @brief "Authorization: Bearer <key>" into out (key trimmed, control characters dropped). */
void msp_syncro_auth_header(const char *api_key, char *out, size_t out_size);

typedef struct msp_syncro_page_s {
    json_t *items;        /**< new reference: the array under the resource key */
    int     page;         /**< meta.page, or the requested page when absent */
    int     total_pages;  /**< meta.total_pages (integer or numeric string). Without it the answer
                               is the whole list: requested_page when items came back, else
                               requested_page - 1 (min 0), so a pager looping while
                               page < total_pages stops either way */
} msp_syncro_page_t;

/**
 * @brief Parse a list page {"<key>":[...],"meta":{...}}. out->page is meta.page when present.
 * @returns 0 (out->items set, release with json_decref), or -1 when the body is not JSON or the
 *          key is missing / not an array (errstr says which).
 */
int msp_syncro_parse_page(const char *body, size_t len, const char *key, int requested_page,
                          msp_syncro_page_t *out, char *errstr, size_t errstr_size);

/**
 * @brief A human message from any Syncro error body (NOTES.md lists the shapes):
 * {"error":"x"}, {"error":[..]}, {"errors":"x"}, {"errors":{"f":[..]}}, {"message":"x"},
 * {"message":[..]} (with "success":false), {"record":{..},"errors":"a, b"}, empty, non-JSON text.
 * Never empty: falls back to "HTTP <status>" (+ a short text excerpt). Control chars removed.
 * Arrays join with "; "; {"errors":{"name":["a","b"]}} → "name a; name b" (Rails "base" errors
 * carry no field name); empty → "HTTP 502 Bad Gateway (empty body)"; non-JSON or HTML →
 * "HTTP 503: <text, tags/script/style removed, whitespace collapsed, first 120 characters>"
 * ("..." when cut). Output is one line of valid UTF-8 (bad bytes become '?').
 */
void msp_syncro_error_message(long status, const char *body, size_t len, char *out,
                              size_t out_size);

/**
 * @brief The permission name a Syncro user sees for a call, e.g. ("GET","customer_assets") →
 * "Assets - List/Search", ("GET","customer_assets/123") → "Assets - View Details",
 * ("PUT","customer_assets/1") → "Assets - Edit", ("GET","customers") → "Customers - List/Search",
 * ("POST","tickets") → "Tickets - Create". NULL when unknown.
 */
const char *msp_syncro_permission_for(const char *method, const char *resource_path);

/**
 * @brief Describe a failed call for status pages and logs (never includes the key):
 * "Syncro GET /customer_assets answered 401: Not authorized. Please ask ... — the API key's
 * group lacks the permission \"Assets - List/Search\"", "... could not connect: <curl text>",
 * "... timed out: <curl text>", "... was cancelled", 401 without a permission text:
 * "... — the API key is invalid, expired or revoked", 404 on /me: "... — check the Syncro
 * subdomain", 429: "... — Syncro's rate limit (180 requests per minute) was hit; it asked to wait
 * N s". The query string of resource_path is never printed. @returns out.
 */
char *msp_syncro_describe(const msp_http_response_t *res, const char *method,
                          const char *resource_path, char *out, size_t out_size);

/**
 * How to find out whether an API key holds one permission. GET /me answers coarse flags
 * (permissions.<area>.<flag>: customer.read, asset.read, ticket.read, ...) that name only the
 * list permissions; the others are learned from a harmless call the permission guards, on an id
 * that does not exist (Syncro's ids start far above 0): 401 means the key lacks it, any other
 * answer (404, 422) that it holds it. msp_syncro_permission_for(method, path) gives back the
 * permission for every probe (test_syncro checks).
 */
typedef struct msp_syncro_probe_s {
    const char *me_area, *me_flag; /**< GET /me permissions.<area>.<flag> tells; or NULL */
    const char *method;            /**< else this call: "GET", "PUT", "POST" */
    const char *path;              /**< below the base URL, no leading '/': "customers/0" */
    const char *body;              /**< its JSON body, or NULL */
} msp_syncro_probe_t;

/** @brief How permission (Syncro's name) is checked. @returns 0, or -1 when it is unknown. */
int msp_syncro_probe_for(const char *permission, msp_syncro_probe_t *out);

/**
 * @brief The permissions object of a GET /me body. @returns new, or NULL when the body is not
 * a /me object (errstr says why).
 */
json_t *msp_syncro_me_permissions(const char *body, size_t len, char *errstr, size_t errstr_size);

/** @brief 1 when /me's perms (msp_syncro_me_permissions) grant area.flag, else 0. */
int msp_syncro_me_grants(const json_t *perms, const char *area, const char *flag);

#endif
