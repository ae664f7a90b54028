/*
 * http.h — asynchronous HTTP client: libcurl multi driven by a libevent loop (hiperfifo).
 *
 * One msp_http_t per event loop serves any number of concurrent requests. A request makes one
 * attempt; retry policy lives with the caller (msp_http_classify + backoff.h), because the caller
 * must take a rate-limit token before every attempt. TLS peer and host verification stay on;
 * only http and https are allowed; a response body over max_body bytes fails the request.
 *
 * The callback runs on the loop thread exactly once per request, also when msp_http_destroy()
 * cancels it (status 0, curl_code CURLE_ABORTED_BY_CALLBACK, errstr "cancelled"). It never runs
 * from inside msp_http_request(). A callback may start new requests and may call
 * msp_http_destroy() (the client is freed once the callback returns).
 *
 * Every request carries an X-Request-ID header: a fresh random UUID (v4) per request, or the
 * caller's own when it passed one. ConnectWise RMM's document requires the header on its device
 * operations and both vendors' support asks for the id of a failed call, so it goes on every
 * request, comes back in msp_http_response_t.request_id, and is logged with the outcome (one
 * info line "vendor.request" per finished request: method, URL without its query, status,
 * outcome, elapsed time, request id, tenant when the caller named it).
 *
 * Any failed transfer reports status 0 with errstr set, also when a response had begun (cut off,
 * or over max_body: errstr "response body larger than N bytes"), so a partial answer is never
 * classified OK. body is never NULL in the callback (an empty string on failure) unless stolen.
 */
#ifndef MSPSYNC_HTTP_H
#define MSPSYNC_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct msp_http_s msp_http_t;

typedef struct msp_http_opts_s {
    long   connect_timeout_ms;   /**< default 5000 when 0 */
    long   timeout_ms;           /**< whole request, default 30000 when 0 */
    size_t max_body;             /**< default 64 MiB when 0 */
    long   max_host_connections; /**< default 0 = unlimited */
} msp_http_opts_t;

typedef struct msp_http_request_s {
    const char  *method;      /**< "GET", "POST", "PUT", "DELETE" */
    const char  *url;
    const char **headers;     /**< NULL-terminated array of "Name: value" (copied) */
    const char  *body;        /**< may be NULL; copied */
    size_t       body_len;
    long         timeout_ms;  /**< 0 = client default */
    const char  *tenant;      /**< tenant named in the outcome log line; may be NULL (copied) */
} msp_http_request_t;

#define MSP_HTTP_REQUEST_ID_SIZE 65 /**< a UUID is 36 characters; a caller's own id is cut at 64 */

typedef struct msp_http_response_s {
    long     status;          /**< HTTP status, 0 when no response (transport error) */
    int      curl_code;       /**< CURLcode of the transfer (0 = CURLE_OK) */
    char     errstr[256];     /**< transport error text, "" when a response arrived */
    char    *body;            /**< NUL-terminated, owned by the response (see msp_http_steal_body) */
    size_t   body_len;
    int64_t  retry_after_ms;  /**< parsed Retry-After, -1 when absent */
    char    *content_type;    /**< owned, may be NULL */
    char    *link_next;       /**< URL of Link: <...>; rel="next", owned, may be NULL */
    int64_t  elapsed_ms;
    char     request_id[MSP_HTTP_REQUEST_ID_SIZE]; /**< the X-Request-ID this request sent */
} msp_http_response_t;

/** The response is borrowed: valid only during the callback. */
typedef void (msp_http_cb)(msp_http_response_t *res, void *opaque);

typedef enum {
    MSP_HTTP_OK = 0,          /**< 2xx */
    MSP_HTTP_RETRY,           /**< transport error, timeout, 408, 423, 425, 429, 5xx */
    MSP_HTTP_FATAL,           /**< 401, 403: credentials or permissions; retrying cannot help */
    MSP_HTTP_DEADLETTER,      /**< any other 4xx: this request is wrong, keep going without it */
} msp_http_outcome_t;

/** @brief New client on base (borrowed; must outlive the client). opts may be NULL. */
msp_http_t *msp_http_new(struct event_base *base, const msp_http_opts_t *opts);

/** @brief Cancel in-flight requests (their callbacks run) and free. NULL-safe. */
void msp_http_destroy(msp_http_t *h);

/** @brief Start a request. @returns 0, or -1 if it could not be started (cb not called). */
int msp_http_request(msp_http_t *h, const msp_http_request_t *req, msp_http_cb *cb, void *opaque);

/**
 * @brief A fresh random UUID (version 4, RFC 9562) in lower case, as sent in X-Request-ID.
 * @returns 0, or -1 when the system has no randomness to give (out is "").
 */
int msp_http_new_request_id(char out[MSP_HTTP_REQUEST_ID_SIZE]);

/** @brief Number of requests in flight. */
int msp_http_inflight(const msp_http_t *h);

/** @brief Take ownership of the body (caller frees); the response keeps NULL. */
char *msp_http_steal_body(msp_http_response_t *res);

/** @brief Generic classification of one attempt (see msp_http_outcome_t). */
msp_http_outcome_t msp_http_classify(const msp_http_response_t *res);

/** @brief "ok", "retry", "fatal", "deadletter" (static string). */
const char *msp_http_outcome_name(msp_http_outcome_t o);

/**
 * @brief The target of the first link with rel="next" in a Link header value (RFC 8288):
 * `<u1>; rel="prev", <u2>; rel=next` → "u2". rel is matched case-insensitively, quoted or not,
 * also inside a space-separated list (rel="last next"). Used for msp_http_response_t.link_next.
 * @returns a new string (caller frees), or NULL when there is none or value is NULL.
 */
char *msp_http_parse_link_next(const char *value);

#endif
