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
 * @brief A stable id for the Syncro account behind base_url, used to name the shared rate-limit
 * bucket: lowercase scheme+host+path with any trailing '/' removed.
 */
void msp_syncro_account_id(const char *base_url, char *out, size_t out_size);

/** @brief "<base>/<resource>?page=<page>" (+ "&per_page=N" when per_page > 0). */
int msp_syncro_list_url(const char *base_url, const char *resource, int page, int per_page,
                        char *out, size_t out_size);

/** @brief "Authorization: Bearer <key>" into out. */
void msp_syncro_auth_header(const char *api_key, char *out, size_t out_size);

typedef struct msp_syncro_page_s {
    json_t *items;        /**< new reference: the array under the resource key */
    int     page;         /**< meta.page, or the requested page when absent */
    int     total_pages;  /**< meta.total_pages; 1 when meta is absent and items came back */
} msp_syncro_page_t;

/**
 * @brief Parse a list page {"<key>":[...],"meta":{...}}.
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
 * group lacks the permission \"Assets - List/Search\"", "... could not connect: <curl text>", or
 * for 404 on /me: "... — check the subdomain". @returns out.
 */
char *msp_syncro_describe(const msp_http_response_t *res, const char *method,
                          const char *resource_path, char *out, size_t out_size);

/**
 * @brief Check a GET /me body for the permissions that asset sync needs
 * (permissions.customer.read → "Customers - List/Search", permissions.asset.read →
 * "Assets - List/Search"). Writes the missing names, comma separated, into missing (""
 * when none). @returns 0, or -1 when the body is not a /me object (errstr).
 */
int msp_syncro_me_check(const char *body, size_t len, char *missing, size_t missing_size,
                        char *errstr, size_t errstr_size);

#endif
