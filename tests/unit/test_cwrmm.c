/*
 * test_cwrmm.c — the ConnectWise RMM client's pure functions: URLs, the token request and
 * answer, device paging, error text, scopes, hints, dates and the mapping to canonical records.
 *
 * The error-message suite is a table (status, body → message) over the body shapes ConnectWise
 * answers with (OAuth errors, {"message"}, text/plain 429s, HTML from a proxy, nothing); add a
 * row when a new one shows up in the wild.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "mspsync/cwrmm.h"

/* ------------------------------------------------------------------ base URL and account */

static void test_regions_select_the_regional_hosts(void **state) {
    char out[256], err[256];
    (void)state;

    assert_int_equal(msp_cwrmm_base_url("na", NULL, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "https://openapi.service.itsupport247.net");
    assert_int_equal(msp_cwrmm_base_url("EU", "", out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "https://openapi.service.euplatform.connectwise.com");
    assert_int_equal(msp_cwrmm_base_url("Au", NULL, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "https://openapi.service.auplatform.connectwise.com");
}

static void test_explicit_base_url_drops_the_trailing_slash(void **state) {
    char out[256], err[256];
    (void)state;

    assert_int_equal(msp_cwrmm_base_url(NULL, "http://127.0.0.1:8089/", out, sizeof(out), err,
                                        sizeof(err)),
                     0);
    assert_string_equal(out, "http://127.0.0.1:8089");
    assert_int_equal(msp_cwrmm_base_url("", "https://proxy.example/cw", out, sizeof(out), err,
                                        sizeof(err)),
                     0);
    assert_string_equal(out, "https://proxy.example/cw");
}

static void test_bad_region_or_base_url_is_refused_with_a_reason(void **state) {
    char out[256], err[256];
    (void)state;

    assert_int_equal(msp_cwrmm_base_url("xx", NULL, out, sizeof(out), err, sizeof(err)), -1);
    assert_string_equal(err, "unknown region \"xx\": expected na, eu or au");
    assert_string_equal(out, "");

    assert_int_equal(msp_cwrmm_base_url(NULL, NULL, out, sizeof(out), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "region"));
    assert_int_equal(msp_cwrmm_base_url("na", "https://x.example", out, sizeof(out), err,
                                        sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "not both"));

    assert_int_equal(msp_cwrmm_base_url(NULL, "ftp://x.example", out, sizeof(out), err,
                                        sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "ConnectWise RMM base URL"));
    assert_null(strstr(err, "Syncro"));
    assert_int_equal(msp_cwrmm_base_url(NULL, "https://u:p@x.example", out, sizeof(out), err,
                                        sizeof(err)),
                     -1);
    assert_int_equal(msp_cwrmm_base_url(NULL, "https://x.example/?a=1", out, sizeof(out), err,
                                        sizeof(err)),
                     -1);
    assert_int_equal(msp_cwrmm_base_url(NULL, "https://", out, sizeof(out), err, sizeof(err)), -1);
}

static void test_account_id_is_stable_and_case_insensitive_in_the_url(void **state) {
    char a[64], b[64], c[64], d[64];
    (void)state;

    msp_cwrmm_account_id("https://openapi.service.itsupport247.net", "client-1", a, sizeof(a));
    msp_cwrmm_account_id("HTTPS://OpenAPI.service.itsupport247.net", "client-1", b, sizeof(b));
    msp_cwrmm_account_id("https://openapi.service.itsupport247.net", "client-2", c, sizeof(c));
    msp_cwrmm_account_id("https://openapi.service.euplatform.connectwise.com", "client-1", d,
                         sizeof(d));
    assert_int_equal(strlen(a), 3 + 16);
    assert_memory_equal(a, "cw:", 3);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    for (size_t i = 3; i < strlen(a); i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));

    /* "cw:" + the first 16 hex digits of SHA-256("https://x\nid") */
    msp_cwrmm_account_id("https://X", "id", a, sizeof(a));
    assert_string_equal(a, "cw:8adcbd0d3bf7b343");
}

/* ------------------------------------------------------------------ token body and answer */

static void test_token_body_is_a_client_credentials_json(void **state) {
    char *body;
    json_t *j;
    (void)state;

    body = msp_cwrmm_token_body("6500023", "s3cr\"et", NULL);
    assert_non_null(body);
    j = json_loads(body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "grant_type")), "client_credentials");
    assert_string_equal(json_string_value(json_object_get(j, "client_id")), "6500023");
    assert_string_equal(json_string_value(json_object_get(j, "client_secret")), "s3cr\"et");
    assert_string_equal(json_string_value(json_object_get(j, "scope")), MSP_CWRMM_SCOPES);
    assert_int_equal(json_object_size(j), 4);
    json_decref(j);
    free(body);

    body = msp_cwrmm_token_body("id", "secret", "platform.companies.read");
    j = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "scope")), "platform.companies.read");
    json_decref(j);
    free(body);
}

static void test_parse_token_reads_expires_in_as_integer_or_string(void **state) {
    char *token = NULL, err[256];
    int64_t exp = 0;
    const char *a = "{\"access_token\":\"o7-0jLH\",\"token_type\":\"Bearer\",\"expires_in\":1800}";
    const char *b = "{\"access_token\":\"tok\",\"expires_in\":\"900\"}";
    const char *c = "{\"access_token\":\"tok\"}";
    (void)state;

    assert_int_equal(msp_cwrmm_parse_token(a, strlen(a), &token, &exp, err, sizeof(err)), 0);
    assert_string_equal(token, "o7-0jLH");
    assert_int_equal(exp, 1800);
    free(token);

    assert_int_equal(msp_cwrmm_parse_token(b, strlen(b), &token, &exp, err, sizeof(err)), 0);
    assert_int_equal(exp, 900);
    free(token);

    assert_int_equal(msp_cwrmm_parse_token(c, strlen(c), &token, &exp, err, sizeof(err)), 0);
    assert_int_equal(exp, 3599);
    free(token);
}

static void test_parse_token_without_a_token_fails(void **state) {
    char *token = (char *)"x", err[256];
    int64_t exp = 0;
    const char *bodies[] = {"{\"token_type\":\"Bearer\",\"expires_in\":3599}",
                            "{\"access_token\":\"\"}", "{\"access_token\":5}", "not json", "[]",
                            ""};
    (void)state;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        err[0] = '\0';
        assert_int_equal(
            msp_cwrmm_parse_token(bodies[i], strlen(bodies[i]), &token, &exp, err, sizeof(err)),
            -1);
        assert_null(token);
        assert_true(err[0] != '\0');
    }
}

/* ------------------------------------------------------------------ devices */

static void test_devices_url_lists_fields_and_encodes_the_cursor(void **state) {
    char out[1024];
    (void)state;

    assert_int_equal(msp_cwrmm_devices_url("https://h", 500, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "https://h/api/platform/v2/device/categories/all/endpoints?limit=500"
                             "&field=endpointID,friendlyName,deviceName,system,baseboard,os,"
                             "macAddress,modifiedAt");
    assert_int_equal(msp_cwrmm_devices_url("https://h", 1, "", out, sizeof(out)), 0);
    assert_null(strstr(out, "cursor"));
    assert_int_equal(msp_cwrmm_devices_url("https://h", 100, "ab+c/d=&e f", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "?limit=100&"));
    assert_non_null(strstr(out, "&cursor=ab%2Bc%2Fd%3D%26e%20f"));
}

/* The document's fieldV2WithLimit is ONE string parameter (style form): "Comma separated fields
 * to be projected", at most 15. A server that reads one value of a repeated `field=` would send
 * devices back without name, serial, OS or MACs. */
static void test_devices_url_sends_one_comma_separated_field_parameter(void **state) {
    char out[1024];
    const char *cursors[] = {NULL, "17"};
    (void)state;

    for (size_t c = 0; c < 2; c++) {
        const char *q, *p;
        int fields = 0, commas = 0;
        char value[512] = "";

        assert_int_equal(msp_cwrmm_devices_url("https://h", 500, cursors[c], out, sizeof(out)), 0);
        q = strchr(out, '?');
        assert_non_null(q);
        for (p = q + 1; *p; p += strcspn(p, "&"), p += *p == '&') {
            if (strncmp(p, "field=", 6) == 0) {
                fields++;
                snprintf(value, sizeof(value), "%.*s", (int)strcspn(p + 6, "&"), p + 6);
            }
        }
        assert_int_equal(fields, 1);
        for (p = value; *p; p++)
            commas += *p == ',';
        assert_true(commas + 1 <= 15);
        /* every field the device mapping reads is projected */
        assert_non_null(strstr(value, "endpointID"));
        assert_non_null(strstr(value, "friendlyName"));
        assert_non_null(strstr(value, "system"));
        assert_non_null(strstr(value, "baseboard"));
        assert_non_null(strstr(value, "os"));
        assert_non_null(strstr(value, "macAddress"));
        assert_non_null(strstr(value, "modifiedAt"));
    }
}

static void test_devices_url_refuses_bad_limits_and_small_buffers(void **state) {
    char out[1024], tiny[40];
    (void)state;

    assert_int_equal(msp_cwrmm_devices_url("https://h", 0, NULL, out, sizeof(out)), -1);
    assert_int_equal(msp_cwrmm_devices_url("https://h", 501, NULL, out, sizeof(out)), -1);
    assert_int_equal(msp_cwrmm_devices_url("https://h", -3, NULL, out, sizeof(out)), -1);
    assert_int_equal(msp_cwrmm_devices_url("https://h", 10, NULL, tiny, sizeof(tiny)), -1);
    assert_string_equal(tiny, "");
}

static void test_devices_body_names_up_to_four_companies(void **state) {
    const char *ids[] = {"c1", "c2", "c3", "c4", "c5"};
    char *body;
    (void)state;

    body = msp_cwrmm_devices_body(ids, 2);
    assert_string_equal(body, "{\"resourceType\":\"company\",\"resources\":[\"c1\",\"c2\"]}");
    free(body);
    body = msp_cwrmm_devices_body(ids, 4);
    assert_non_null(body);
    free(body);
    assert_null(msp_cwrmm_devices_body(ids, 5));
}

static void test_cursor_is_taken_from_the_next_link(void **state) {
    char *c;
    (void)state;

    c = msp_cwrmm_cursor_from_link("https://h/api/platform/v2/device/categories/all/endpoints?"
                                   "limit=500&cursor=ab%2Bc%2F%3D&field=os");
    assert_string_equal(c, "ab+c/=");
    free(c);
    c = msp_cwrmm_cursor_from_link("https://h/x?cursor=plain");
    assert_string_equal(c, "plain");
    free(c);
    /* a round trip through devices_url gives the same cursor back */
    {
        char url[1024];
        assert_int_equal(msp_cwrmm_devices_url("https://h", 5, "e y/J+0=", url, sizeof(url)), 0);
        c = msp_cwrmm_cursor_from_link(url);
        assert_string_equal(c, "e y/J+0=");
        free(c);
    }
    assert_null(msp_cwrmm_cursor_from_link("https://h/x?limit=5&precursor=1"));
    assert_null(msp_cwrmm_cursor_from_link("https://h/x?cursor="));
    assert_null(msp_cwrmm_cursor_from_link("https://h/x#cursor=1"));
    assert_null(msp_cwrmm_cursor_from_link(NULL));
}

/* ------------------------------------------------------------------ errors */

static void test_error_message_over_the_body_shapes(void **state) {
    static const struct {
        long status;
        const char *body;
        const char *want;
    } rows[] = {
        {401, "{\"error\":\"invalid_client\",\"error_description\":\"Client authentication failed\"}",
         "Client authentication failed (invalid_client)"},
        {400, "{\"error\":\"invalid_scope\"}", "invalid_scope"},
        {400, "{\"error\":\"Bad Request\",\"description\":\"limit must be <= 500\"}",
         "limit must be <= 500 (Bad Request)"},
        {403, "{\"message\":\"Forbidden\"}", "Forbidden"},
        {404, "{\"error\":\"NOT_FOUND\",\"message\":\"no endpoints for the resources\"}",
         "no endpoints for the resources"},
        {401, "{\"error\":{\"message\":\"token expired\"},\"type\":\"auth\"}", "token expired"},
        {400, "{\"errors\":[{\"message\":\"companyID is invalid\"},\"too many resources\"]}",
         "companyID is invalid; too many resources"},
        {422, "{\"title\":\"Unprocessable\",\"detail\":\"value\\nmust be a date\"}",
         "Unprocessable: value must be a date"},
        {429, "Too Many Requests", "HTTP 429: Too Many Requests"},
        {502, "<html><head><title>x</title><style>p{}</style></head><body><h1>502 Bad Gateway"
              "</h1></body></html>",
         "HTTP 502: x 502 Bad Gateway"},
        {502, "", "HTTP 502 (empty body)"},
        {503, "  \r\n", "HTTP 503 (empty body)"},
    };
    char out[512];
    (void)state;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        msp_cwrmm_error_message(rows[i].status, rows[i].body, strlen(rows[i].body), out,
                                sizeof(out));
        assert_string_equal(out, rows[i].want);
    }
    msp_cwrmm_error_message(500, NULL, 0, out, sizeof(out));
    assert_string_equal(out, "HTTP 500 (empty body)");
}

static void test_error_message_is_one_short_line(void **state) {
    char body[2000], out[512];
    size_t n;
    (void)state;

    n = (size_t)snprintf(body, sizeof(body), "{\"message\":\"");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "\\u00e9");
    snprintf(body + n, sizeof(body) - n, "\\n\\u0001end\"}");
    msp_cwrmm_error_message(500, body, strlen(body), out, sizeof(out));
    assert_true(strlen(out) <= 200);
    assert_null(strchr(out, '\n'));
    assert_true(strlen(out) % 2 == 0); /* whole two-byte characters only */

    msp_cwrmm_error_message(500, "bad \xff byte\tand\ttabs", 19, out, sizeof(out));
    assert_string_equal(out, "HTTP 500: bad ? byte and tabs");
}

static void test_scope_for_names_the_scope_of_each_call(void **state) {
    (void)state;

    assert_string_equal(msp_cwrmm_scope_for("GET", "/api/platform/v1/company/companies"),
                        "platform.companies.read");
    assert_string_equal(msp_cwrmm_scope_for("GET", "/api/platform/v1/company/companies/c1/sites"),
                        "platform.sites.read");
    assert_string_equal(
        msp_cwrmm_scope_for("POST", "/api/platform/v2/device/categories/all/endpoints?limit=5"),
        "platform.devices.read");
    assert_string_equal(msp_cwrmm_scope_for("GET", "/api/platform/v1/custom-field/definitions"),
                        "platform.custom_fields_definitions.read");
    assert_string_equal(msp_cwrmm_scope_for("POST", "api/platform/v1/custom-field/definitions/"),
                        "platform.custom_fields_definitions.write");
    assert_string_equal(
        msp_cwrmm_scope_for("GET", "/api/platform/v2/device/endpoints/e-1/custom-fields"),
        "platform.custom_fields_values.read");
    assert_string_equal(
        msp_cwrmm_scope_for("PUT", "/api/platform/v2/device/endpoints/e-1/custom-fields"),
        "platform.custom_fields_values.write");
    assert_null(msp_cwrmm_scope_for("DELETE", "/api/platform/v1/company/companies"));
    assert_null(msp_cwrmm_scope_for("GET", "/v1/token"));
    assert_null(msp_cwrmm_scope_for("GET", "/api/platform/v2/device/endpoints"));
    assert_null(msp_cwrmm_scope_for(NULL, "/x"));
}

static msp_http_response_t response(long status, const char *body, int64_t retry_after_ms) {
    msp_http_response_t r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.body = (char *)body;
    r.body_len = body ? strlen(body) : 0;
    r.retry_after_ms = retry_after_ms;
    return r;
}

/* One row per hint: the status, body and Retry-After of an answer to method + path. */
static void test_describe_explains_what_to_do(void **state) {
    static const struct {
        long status;
        const char *body;
        int64_t retry_after_ms;
        const char *method, *path, *want;
    } rows[] = {
        {401, "{\"error\":\"invalid_client\"}", -1, "POST", "/v1/token",
         "ConnectWise RMM POST /v1/token answered 401: invalid_client \xE2\x80\x94 the client id "
         "or secret is wrong or revoked"},
        {423, "{\"message\":\"Locked\"}", -1, "POST", "/v1/token",
         "ConnectWise RMM POST /v1/token answered 423: Locked \xE2\x80\x94 the API key is locked "
         "for asking for too many tokens; it unlocks by itself"},
        {403, "{\"message\":\"Forbidden\"}", -1, "POST",
         "/api/platform/v2/device/categories/all/endpoints?limit=500&cursor=SECRET",
         "ConnectWise RMM POST /api/platform/v2/device/categories/all/endpoints answered 403: "
         "Forbidden \xE2\x80\x94 the API client lacks the scope \"platform.devices.read\""},
        {403, "", -1, "GET", "/api/platform/v1/rate_limits",
         "ConnectWise RMM GET /api/platform/v1/rate_limits answered 403: HTTP 403 (empty body) "
         "\xE2\x80\x94 the API client lacks a scope this call needs"},
        {429, "Too Many Requests", 2500, "GET", "/api/platform/v1/company/companies",
         "ConnectWise RMM GET /api/platform/v1/company/companies answered 429: HTTP 429: Too Many "
         "Requests \xE2\x80\x94 rate limited; it asked to wait 3 s"},
        {500, "{\"message\":\"boom\"}", -1, "PUT",
         "/api/platform/v2/device/endpoints/e-1/custom-fields",
         "ConnectWise RMM PUT /api/platform/v2/device/endpoints/e-1/custom-fields answered 500: "
         "boom"},
    };
    char out[1024];
    (void)state;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        msp_http_response_t r = response(rows[i].status, rows[i].body, rows[i].retry_after_ms);
        assert_ptr_equal(msp_cwrmm_describe(&r, rows[i].method, rows[i].path, out, sizeof(out)),
                         out);
        assert_string_equal(out, rows[i].want);
        assert_null(strstr(out, "SECRET"));
    }
}

static void test_describe_transport_failures(void **state) {
    char out[1024];
    msp_http_response_t r = response(0, "", -1);
    (void)state;

    r.curl_code = CURLE_COULDNT_CONNECT;
    snprintf(r.errstr, sizeof(r.errstr), "Failed to connect to 127.0.0.1 port 9");
    msp_cwrmm_describe(&r, "POST", "/v1/token", out, sizeof(out));
    assert_string_equal(out, "ConnectWise RMM POST /v1/token could not connect: Failed to connect "
                             "to 127.0.0.1 port 9");
    r.curl_code = CURLE_OPERATION_TIMEDOUT;
    snprintf(r.errstr, sizeof(r.errstr), "Operation timed out after 10000 milliseconds");
    msp_cwrmm_describe(&r, "POST", "/v1/token", out, sizeof(out));
    assert_non_null(strstr(out, "ConnectWise RMM POST /v1/token timed out"));
}

/* ------------------------------------------------------------------ dates */

static void test_date_normalize_accepts_the_documented_forms(void **state) {
    char d[11];
    (void)state;

    assert_int_equal(msp_date_normalize("2024-03-01", d), 0);
    assert_string_equal(d, "2024-03-01");
    assert_int_equal(msp_date_normalize("  2024-02-29\n", d), 0); /* leap day */
    assert_string_equal(d, "2024-02-29");
    assert_int_equal(msp_date_normalize("2000-02-29", d), 0);
    assert_int_equal(msp_date_normalize("2024-03-01T23:30:00+05:00", d), 0); /* as written */
    assert_string_equal(d, "2024-03-01");
    assert_int_equal(msp_date_normalize("2024-12-31T00:00:00.123Z", d), 0);
    assert_string_equal(d, "2024-12-31");
    assert_int_equal(msp_date_normalize("2024-01-05T08:00:00-0800", d), 0);
    assert_string_equal(d, "2024-01-05");
    assert_int_equal(msp_date_normalize("03/15/2024", d), 0);
    assert_string_equal(d, "2024-03-15");
}

static void test_date_normalize_refuses_impossible_dates(void **state) {
    char d[11];
    const char *bad[] = {"2024-02-30", "2023-02-29", "1900-02-29", "2024-13-01", "2024-00-10",
                         "2024-04-31", "15/03/2024", "2024-3-1",   "2024-03-01T25:00:00Z",
                         "2024-03-01Tjunk", "", "   ", "yesterday", "0000-01-01",
                         "2024-03-01 and more"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(d, "x");
        assert_int_equal(msp_date_normalize(bad[i], d), -1);
        assert_string_equal(d, "");
    }
    assert_int_equal(msp_date_normalize(NULL, d), -1);
}

/* ------------------------------------------------------------------ mapping */

static json_t *load(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static const char *str(const json_t *rec, const char *key) {
    return json_string_value(json_object_get(rec, key));
}

static void test_device_maps_to_a_canonical_asset(void **state) {
    char err[256];
    json_t *raw, *rec, *macs;
    const char *keys[] = {"schema_version", "tenant", "id", "kind", "sources", "name",
                          "asset_type", "serial", "manufacturer", "model", "form_factor", "os",
                          "macs", "customer_ref", "site_ref", "updated_at", "gone"};
    (void)state;

    raw = load("{\"endpointID\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\",\"companyID\":\"c-1\","
               "\"siteID\":\"s-9\",\"friendlyName\":\" WS-01 \",\"deviceName\":\"DESKTOP-1\","
               "\"system\":{\"serialNumber\":\"ABC123\",\"model\":\"OptiPlex 7090\"},"
               "\"baseboard\":{\"serialNumber\":\"BB-1\",\"manufacturer\":\"Dell Inc.\"},"
               "\"os\":{\"product\":\"Windows 11 Pro\",\"version\":\"22631\"},"
               "\"macAddress\":[\"aa-bb-cc-dd-ee-ff\",\"00:00:00:00:00:00\",\"AABBCCDDEEFF\","
               "\"01:02:03:04:05:06\",\"junk\",7],\"modifiedAt\":\"2026-01-02T03:04:05Z\"}");
    rec = msp_map_cwrmm_device("acme", raw, err, sizeof(err));
    assert_non_null(rec);
    assert_int_equal(json_object_size(rec), sizeof(keys) / sizeof(keys[0]));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_non_null(json_object_get(rec, keys[i]));
    assert_int_equal(json_integer_value(json_object_get(rec, "schema_version")), 1);
    assert_string_equal(str(rec, "tenant"), "acme");
    assert_string_equal(str(rec, "id"), "cwrmm:7c9e6679-7425-40de-944b-e07fc1f90ae7");
    assert_string_equal(str(rec, "kind"), "asset");
    assert_string_equal(
        str(json_array_get(json_object_get(rec, "sources"), 0), "integration"), "cwrmm");
    assert_string_equal(str(json_array_get(json_object_get(rec, "sources"), 0), "id"),
                        "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    assert_string_equal(str(rec, "name"), "WS-01");
    assert_true(json_is_null(json_object_get(rec, "asset_type")));
    assert_string_equal(str(rec, "serial"), "ABC123");
    assert_string_equal(str(rec, "manufacturer"), "Dell Inc.");
    assert_string_equal(str(rec, "model"), "OptiPlex 7090");
    assert_true(json_is_null(json_object_get(rec, "form_factor")));
    assert_string_equal(str(json_object_get(rec, "os"), "name"), "Windows 11 Pro");
    assert_string_equal(str(json_object_get(rec, "os"), "build"), "22631");
    macs = json_object_get(rec, "macs");
    assert_int_equal(json_array_size(macs), 2);
    assert_string_equal(json_string_value(json_array_get(macs, 0)), "01:02:03:04:05:06");
    assert_string_equal(json_string_value(json_array_get(macs, 1)), "AA:BB:CC:DD:EE:FF");
    assert_string_equal(str(rec, "customer_ref"), "cwrmm:c-1");
    assert_string_equal(str(rec, "site_ref"), "cwrmm:s-9");
    assert_string_equal(str(rec, "updated_at"), "2026-01-02T03:04:05Z");
    assert_true(json_is_false(json_object_get(rec, "gone")));
    assert_null(json_object_get(rec, "dates")); /* custom fields not read */
    json_decref(rec);
    json_decref(raw);
}

static void test_device_falls_back_to_device_name_and_baseboard_serial(void **state) {
    char err[256];
    json_t *raw, *rec;
    (void)state;

    raw = load("{\"endpointID\":\"e-2\",\"companyID\":\"c-1\",\"friendlyName\":\"  \","
               "\"deviceName\":\"DESKTOP-2\",\"system\":{\"serialNumber\":\"\"},"
               "\"baseboard\":{\"serialNumber\":\" BB-2 \"}}");
    rec = msp_map_cwrmm_device("acme", raw, err, sizeof(err));
    assert_non_null(rec);
    assert_string_equal(str(rec, "name"), "DESKTOP-2");
    assert_string_equal(str(rec, "serial"), "BB-2");
    assert_true(json_is_null(json_object_get(rec, "manufacturer")));
    assert_true(json_is_null(json_object_get(rec, "os")));
    assert_true(json_is_null(json_object_get(rec, "site_ref")));
    assert_true(json_is_null(json_object_get(rec, "updated_at")));
    assert_int_equal(json_array_size(json_object_get(rec, "macs")), 0);
    json_decref(rec);
    json_decref(raw);
}

static void test_device_dates_come_from_the_custom_fields(void **state) {
    char err[256];
    json_t *raw, *rec, *dates;
    (void)state;

    raw = load("{\"endpointID\":\"e-3\",\"companyID\":\"c-1\",\"customFieldValues\":["
               "{\"attributeId\":\"a1\",\"name\":\"Purchase Date\",\"value\":\"2024-03-01T00:00:00Z\"},"
               "{\"attributeId\":\"a2\",\"name\":\"Warranty Expiration\",\"value\":\"2024-02-30\"},"
               "{\"attributeId\":\"a3\",\"name\":\"Owner\",\"value\":\"Bob\"}]}");
    rec = msp_map_cwrmm_device("acme", raw, err, sizeof(err));
    dates = json_object_get(rec, "dates");
    assert_true(json_is_object(dates));
    assert_string_equal(str(dates, "purchase"), "2024-03-01");
    assert_true(json_is_null(json_object_get(dates, "warranty"))); /* unparsable */
    json_decref(rec);
    json_decref(raw);

    /* read, but neither field holds a value: present with nulls */
    raw = load("{\"endpointID\":\"e-4\",\"customFieldValues\":["
               "{\"attributeId\":\"a1\",\"name\":\"Purchase Date\",\"value\":null}]}");
    rec = msp_map_cwrmm_device("acme", raw, err, sizeof(err));
    dates = json_object_get(rec, "dates");
    assert_true(json_is_object(dates));
    assert_true(json_is_null(json_object_get(dates, "purchase")));
    assert_true(json_is_null(json_object_get(dates, "warranty")));
    json_decref(rec);
    json_decref(raw);
}

/* One rule for "is this the Purchase Date / Warranty Expiration field": the fetcher, the
 * write-back and the device mapping all use it, so a hand-made "Purchase date" is one field. */
static void test_field_name_rule_is_case_insensitive_and_trimmed(void **state) {
    (void)state;
    assert_true(msp_cwrmm_field_name_is("Purchase Date", MSP_CWRMM_FIELD_PURCHASE));
    assert_true(msp_cwrmm_field_name_is("Purchase date", MSP_CWRMM_FIELD_PURCHASE));
    assert_true(msp_cwrmm_field_name_is("  PURCHASE DATE\t", MSP_CWRMM_FIELD_PURCHASE));
    assert_true(msp_cwrmm_field_name_is("warranty expiration", MSP_CWRMM_FIELD_WARRANTY));
    assert_false(msp_cwrmm_field_name_is("Purchase Dates", MSP_CWRMM_FIELD_PURCHASE));
    assert_false(msp_cwrmm_field_name_is("Purchase-Date", MSP_CWRMM_FIELD_PURCHASE));
    assert_false(msp_cwrmm_field_name_is("Warranty Expiration", MSP_CWRMM_FIELD_PURCHASE));
    assert_false(msp_cwrmm_field_name_is("", MSP_CWRMM_FIELD_PURCHASE));
    assert_false(msp_cwrmm_field_name_is(NULL, MSP_CWRMM_FIELD_PURCHASE));
}

static void test_date_definitions_are_found_by_the_shared_rule(void **state) {
    char ids[2][MSP_CWRMM_ATTR_ID_SIZE];
    json_t *defs;
    (void)state;

    /* a partner's own spelling is found; other entity types and fields are not */
    defs = load("[{\"id\":\"c-1\",\"name\":\"Purchase date\",\"entityType\":\"client\"},"
                "{\"id\":\"d-1\",\"name\":\"Purchase date\",\"entityType\":\"endpoint\"},"
                "{\"id\":\"d-2\",\"name\":\" warranty expiration \",\"entityType\":\"endpoint\"},"
                "{\"id\":\"d-3\",\"name\":\"Owner\",\"entityType\":\"endpoint\"}]");
    assert_int_equal(msp_cwrmm_date_definitions(defs, ids), 2);
    assert_string_equal(ids[MSP_CWRMM_DATE_PURCHASE], "d-1");
    assert_string_equal(ids[MSP_CWRMM_DATE_WARRANTY], "d-2");
    json_decref(defs);

    /* several candidates: the exact name wins over an earlier variant, else the first */
    defs = load("[{\"id\":\"d-1\",\"name\":\"PURCHASE DATE\"},"
                "{\"id\":\"d-2\",\"name\":\"Purchase Date\",\"entityType\":\"endpoint\"},"
                "{\"id\":\"d-3\",\"name\":\"purchase date\"},"
                "{\"id\":\"d-4\",\"name\":\"warranty expiration\"},"
                "{\"id\":\"d-5\",\"name\":\"Warranty expiration\"}]");
    assert_int_equal(msp_cwrmm_date_definitions(defs, ids), 2);
    assert_string_equal(ids[MSP_CWRMM_DATE_PURCHASE], "d-2");
    assert_string_equal(ids[MSP_CWRMM_DATE_WARRANTY], "d-4");
    json_decref(defs);

    /* nothing usable */
    defs = load("[{\"name\":\"Purchase Date\"},{\"id\":\"d-9\",\"name\":\"Warranty\"}]");
    assert_int_equal(msp_cwrmm_date_definitions(defs, ids), 0);
    assert_string_equal(ids[0], "");
    assert_string_equal(ids[1], "");
    json_decref(defs);
    defs = load("{\"id\":\"d-1\",\"name\":\"Purchase Date\"}");
    assert_int_equal(msp_cwrmm_date_definitions(defs, ids), 0);
    json_decref(defs);
}

/* The values the fetcher read under a partner's spelling map to the dates (the same rule). */
static void test_device_dates_are_read_under_a_partners_spelling(void **state) {
    char err[256];
    json_t *raw, *rec, *dates;
    (void)state;

    raw = load("{\"endpointID\":\"e-5\",\"customFieldValues\":["
               "{\"attributeId\":\"a1\",\"name\":\"Purchase date\",\"value\":\"2023-05-04\"},"
               "{\"attributeId\":\"a2\",\"name\":\"warranty expiration\","
               "\"value\":\"2027-05-04T00:00:00Z\"}]}");
    rec = msp_map_cwrmm_device("acme", raw, err, sizeof(err));
    dates = json_object_get(rec, "dates");
    assert_string_equal(str(dates, "purchase"), "2023-05-04");
    assert_string_equal(str(dates, "warranty"), "2027-05-04");
    json_decref(rec);
    json_decref(raw);
}

static void test_device_without_endpoint_id_is_refused(void **state) {
    char err[256];
    json_t *raw;
    const char *bad[] = {"{\"friendlyName\":\"x\"}", "{\"endpointID\":5}", "{\"endpointID\":\"\"}",
                         "[]"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        raw = load(bad[i]);
        err[0] = '\0';
        assert_null(msp_map_cwrmm_device("acme", raw, err, sizeof(err)));
        assert_true(err[0] != '\0');
        json_decref(raw);
    }
    raw = load("{\"endpointID\":\"e\"}");
    assert_null(msp_map_cwrmm_device("", raw, err, sizeof(err)));
    json_decref(raw);
}

static void test_company_maps_to_a_canonical_customer(void **state) {
    char err[256];
    json_t *raw, *rec;
    const char *keys[] = {"schema_version", "tenant",   "id",         "kind",
                          "sources",        "name",     "email",      "phone",
                          "disabled",       "updated_at", "gone"};
    (void)state;

    raw = load("{\"id\":\"c-1\",\"friendlyName\":\"Acme Ltd\",\"activityStatus\":"
               "{\"activeFlag\":false},\"updatedDate\":\"2026-01-01T00:00:00Z\"}");
    rec = msp_map_cwrmm_company("acme", raw, err, sizeof(err));
    assert_non_null(rec);
    assert_int_equal(json_object_size(rec), sizeof(keys) / sizeof(keys[0]));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_non_null(json_object_get(rec, keys[i]));
    assert_string_equal(str(rec, "id"), "cwrmm:c-1");
    assert_string_equal(str(rec, "kind"), "customer");
    assert_string_equal(str(rec, "name"), "Acme Ltd");
    assert_true(json_is_null(json_object_get(rec, "email")));
    assert_true(json_is_null(json_object_get(rec, "phone")));
    assert_true(json_is_true(json_object_get(rec, "disabled")));
    assert_string_equal(str(rec, "updated_at"), "2026-01-01T00:00:00Z");
    assert_true(json_is_false(json_object_get(rec, "gone")));
    json_decref(rec);
    json_decref(raw);

    raw = load("{\"id\":\"c-2\",\"activityStatus\":{\"activeFlag\":true}}");
    rec = msp_map_cwrmm_company("acme", raw, err, sizeof(err));
    assert_true(json_is_false(json_object_get(rec, "disabled")));
    assert_true(json_is_null(json_object_get(rec, "name")));
    json_decref(rec);
    json_decref(raw);

    raw = load("{\"id\":\"c-3\"}");
    rec = msp_map_cwrmm_company("acme", raw, err, sizeof(err));
    assert_true(json_is_null(json_object_get(rec, "disabled")));
    json_decref(rec);
    json_decref(raw);

    raw = load("{\"id\":42}");
    assert_null(msp_map_cwrmm_company("acme", raw, err, sizeof(err)));
    json_decref(raw);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regions_select_the_regional_hosts),
        cmocka_unit_test(test_explicit_base_url_drops_the_trailing_slash),
        cmocka_unit_test(test_bad_region_or_base_url_is_refused_with_a_reason),
        cmocka_unit_test(test_account_id_is_stable_and_case_insensitive_in_the_url),
        cmocka_unit_test(test_token_body_is_a_client_credentials_json),
        cmocka_unit_test(test_parse_token_reads_expires_in_as_integer_or_string),
        cmocka_unit_test(test_parse_token_without_a_token_fails),
        cmocka_unit_test(test_devices_url_lists_fields_and_encodes_the_cursor),
        cmocka_unit_test(test_devices_url_sends_one_comma_separated_field_parameter),
        cmocka_unit_test(test_devices_url_refuses_bad_limits_and_small_buffers),
        cmocka_unit_test(test_devices_body_names_up_to_four_companies),
        cmocka_unit_test(test_cursor_is_taken_from_the_next_link),
        cmocka_unit_test(test_error_message_over_the_body_shapes),
        cmocka_unit_test(test_error_message_is_one_short_line),
        cmocka_unit_test(test_scope_for_names_the_scope_of_each_call),
        cmocka_unit_test(test_describe_explains_what_to_do),
        cmocka_unit_test(test_describe_transport_failures),
        cmocka_unit_test(test_date_normalize_accepts_the_documented_forms),
        cmocka_unit_test(test_date_normalize_refuses_impossible_dates),
        cmocka_unit_test(test_device_maps_to_a_canonical_asset),
        cmocka_unit_test(test_device_falls_back_to_device_name_and_baseboard_serial),
        cmocka_unit_test(test_device_dates_come_from_the_custom_fields),
        cmocka_unit_test(test_field_name_rule_is_case_insensitive_and_trimmed),
        cmocka_unit_test(test_date_definitions_are_found_by_the_shared_rule),
        cmocka_unit_test(test_device_dates_are_read_under_a_partners_spelling),
        cmocka_unit_test(test_device_without_endpoint_id_is_refused),
        cmocka_unit_test(test_company_maps_to_a_canonical_customer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
