/*
 * test_syncro.c — the Syncro client's pure functions: URLs, pages, error text, hints, /me.
 *
 * The error-message suite is a table (status, body → message) covering every body shape seen
 * from Syncro (vendor-specs/NOTES.md); add a row when a new one shows up in the wild.
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

#include "mspsync/syncro.h"
#include "mspsync/vendor.h"

/* ------------------------------------------------------------------ base URL */

static void test_subdomain_builds_the_https_base_url(void **state) {
    char out[256], err[256];
    (void)state;

    assert_int_equal(msp_syncro_base_url("acme", NULL, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "https://acme.syncromsp.com/api/v1");
    assert_int_equal(msp_syncro_base_url("Acme-IT2", "", out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "https://acme-it2.syncromsp.com/api/v1");
}

/* The address as users copy it ("your Syncro domain name") is the same integration. */
static void test_hostname_forms_normalize_to_the_subdomain(void **state) {
    const char *forms[] = {"acme.syncromsp.com", "https://acme.syncromsp.com/",
                           "http://acme.syncromsp.com", "HTTPS://ACME.SyncroMSP.com//",
                           "Acme.syncromsp.com/"};
    char out[256], err[256];
    (void)state;

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        if (msp_syncro_base_url(forms[i], NULL, out, sizeof(out), err, sizeof(err)) != 0)
            fail_msg("\"%s\" refused: %s", forms[i], err);
        assert_string_equal(out, "https://acme.syncromsp.com/api/v1");
    }
    /* what cannot be a Syncro address keeps its hint */
    assert_int_equal(
        msp_syncro_base_url("https://acme.example.com", NULL, out, sizeof(out), err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "not a URL"));
    assert_int_equal(
        msp_syncro_base_url("acme.example.com", NULL, out, sizeof(out), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "first part of the address"));
}

static void test_bad_subdomains_are_rejected_with_a_reason(void **state) {
    char out[256], err[256], long64[65];
    const char *bad[] = {"ac me",
                         "a.b",
                         "acme.example.com",
                         "-acme",
                         "acme-",
                         "ac/me",
                         "https://acme.example.com/",
                         ".syncromsp.com",
                         "https://.syncromsp.com",
                         "a.b.syncromsp.com",
                         "ac\nme",
                         long64};
    size_t i;
    (void)state;

    memset(long64, 'a', 64);
    long64[64] = '\0';
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (msp_syncro_base_url(bad[i], NULL, out, sizeof(out), err, sizeof(err)) != -1)
            fail_msg("subdomain \"%s\" was accepted", bad[i]);
        assert_true(strlen(err) > 0);
    }
    /* 63 characters is the DNS limit and fine */
    long64[63] = '\0';
    assert_int_equal(msp_syncro_base_url(long64, NULL, out, sizeof(out), err, sizeof(err)), 0);

    assert_int_equal(msp_syncro_base_url("a.b", NULL, out, sizeof(out), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "\"acme\""));
}

static void test_exactly_one_of_subdomain_and_base_url(void **state) {
    char out[256], err[256];
    (void)state;

    assert_int_equal(msp_syncro_base_url("", "", out, sizeof(out), err, sizeof(err)), -1);
    assert_int_equal(msp_syncro_base_url(NULL, NULL, out, sizeof(out), err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(msp_syncro_base_url("acme", "https://x/api/v1", out, sizeof(out), err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "not both"));
}

static void test_base_url_accepts_http_and_https_and_strips_trailing_slash(void **state) {
    char out[256], err[256];
    (void)state;

    assert_int_equal(msp_syncro_base_url(NULL, "https://proxy.example.com/syncro/api/v1/", out,
                                         sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "https://proxy.example.com/syncro/api/v1");
    assert_int_equal(msp_syncro_base_url("", "http://127.0.0.1:8081//", out, sizeof(out), err,
                                         sizeof(err)), 0);
    assert_string_equal(out, "http://127.0.0.1:8081");

    assert_int_equal(msp_syncro_base_url(NULL, "ftp://x.example.com/api", out, sizeof(out), err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "https://"));
    assert_int_equal(msp_syncro_base_url(NULL, "https://", out, sizeof(out), err, sizeof(err)), -1);
    assert_int_equal(msp_syncro_base_url(NULL, "https://a b/", out, sizeof(out), err, sizeof(err)),
                     -1);
    assert_int_equal(msp_syncro_base_url(NULL, "https://x/api?api_key=k", out, sizeof(out), err,
                                         sizeof(err)), -1);
    assert_int_equal(msp_syncro_base_url(NULL, "https://user:pw@x/api", out, sizeof(out), err,
                                         sizeof(err)), -1);
    /* a password holding '/' is still user info, refused and not quoted */
    assert_int_equal(msp_syncro_base_url(NULL, "https://user:s3cret/pw@x/api", out, sizeof(out),
                                         err, sizeof(err)), -1);
    assert_null(strstr(err, "s3cret"));
    /* too small an output buffer is an error, not a truncated URL */
    assert_int_equal(msp_syncro_base_url("acme", NULL, out, 10, err, sizeof(err)), -1);
}

static void test_account_id_is_lowercase_without_trailing_slash(void **state) {
    char out[256];
    (void)state;

    msp_syncro_account_id("https://ACME.syncromsp.com/api/v1/", out, sizeof(out));
    assert_string_equal(out, "https://acme.syncromsp.com/api/v1");
    msp_syncro_account_id("http://127.0.0.1:8081", out, sizeof(out));
    assert_string_equal(out, "http://127.0.0.1:8081");
}

static void test_list_url_has_page_and_optional_per_page(void **state) {
    char out[256];
    const char *base = "https://acme.syncromsp.com/api/v1";
    (void)state;

    assert_int_equal(msp_syncro_list_url(base, "customers", 1, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "https://acme.syncromsp.com/api/v1/customers?page=1");
    assert_int_equal(msp_syncro_list_url(base, "customer_assets", 7, 100, out, sizeof(out)), 0);
    assert_string_equal(out, "https://acme.syncromsp.com/api/v1/customer_assets?page=7&per_page=100");
    assert_int_equal(msp_syncro_list_url(base, "/tickets?status=Open", 2, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "https://acme.syncromsp.com/api/v1/tickets?status=Open&page=2");
    assert_int_equal(msp_syncro_list_url(base, "customers", 0, 0, out, sizeof(out)), -1);
    assert_int_equal(msp_syncro_list_url(base, "customers", 1, 0, out, 20), -1);
}

/* syncro-openapi.json: the PUT /customer_assets/{id} body requires `name`; the write-back sends
 * the name it just read with the merged properties. */
static void test_asset_put_body_carries_the_name_read_and_the_properties(void **state) {
    char err[256] = "";
    json_t *asset, *body;
    (void)state;

    asset = json_loads("{\"asset\":{\"id\":7,\"name\":\"FRONT-DESK-01\",\"properties\":{}}}", 0,
                       NULL);
    body = msp_syncro_asset_put_body(asset, json_pack("{s:s}", "Purchase Date", "2024-03-01"),
                                     err, sizeof(err));
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "name")), "FRONT-DESK-01");
    assert_string_equal(json_string_value(json_object_get(json_object_get(body, "properties"),
                                                          "Purchase Date")),
                        "2024-03-01");
    assert_int_equal(json_object_size(body), 2);
    json_decref(body);
    json_decref(asset);

    /* the bare object (no "asset" wrapper) works the same */
    asset = json_loads("{\"id\":7,\"name\":\"NAS\"}", 0, NULL);
    body = msp_syncro_asset_put_body(asset, json_object(), err, sizeof(err));
    assert_string_equal(json_string_value(json_object_get(body, "name")), "NAS");
    json_decref(body);
    json_decref(asset);

    /* no name to send back: refused with a reason, never a request Syncro would 422 */
    asset = json_loads("{\"asset\":{\"id\":7,\"name\":\"\"}}", 0, NULL);
    assert_null(msp_syncro_asset_put_body(asset, json_object(), err, sizeof(err)));
    assert_non_null(strstr(err, "no name"));
    json_decref(asset);
}

static void test_auth_header_is_bearer_without_stray_whitespace(void **state) {
    char out[128];
    (void)state;

    msp_syncro_auth_header("T0ken-abc", out, sizeof(out));
    assert_string_equal(out, "Authorization: Bearer T0ken-abc");
    msp_syncro_auth_header("  T0ken-abc\r\n", out, sizeof(out));
    assert_string_equal(out, "Authorization: Bearer T0ken-abc");
    msp_syncro_auth_header("a\r\nX-Evil: 1", out, sizeof(out));
    assert_null(strchr(out, '\n'));
    assert_null(strchr(out, '\r'));
}

/* ------------------------------------------------------------------ pages */

#define PARSE(body, key, page, pg, err) \
    msp_syncro_parse_page((body), strlen(body), (key), (page), (pg), (err), sizeof(err))

static void test_customers_page_with_full_meta(void **state) {
    const char *body = "{\"customers\":[{\"id\":1,\"business_then_name\":\"A\"},{\"id\":2}],"
                       "\"meta\":{\"total_pages\":4,\"total_entries\":180,\"per_page\":50,"
                       "\"page\":2}}";
    msp_syncro_page_t pg;
    char err[256];
    (void)state;

    assert_int_equal(PARSE(body, "customers", 2, &pg, err), 0);
    assert_int_equal(json_array_size(pg.items), 2);
    assert_int_equal(pg.page, 2);
    assert_int_equal(pg.total_pages, 4);
    json_decref(pg.items);
}

static void test_assets_page_with_only_total_pages_and_page(void **state) {
    const char *body = "{\"assets\":[{\"id\":5560138523,\"name\":\"PC-01\"}],"
                       "\"meta\":{\"total_pages\":20,\"page\":3}}";
    msp_syncro_page_t pg;
    char err[256];
    (void)state;

    assert_int_equal(PARSE(body, "assets", 3, &pg, err), 0);
    assert_int_equal(pg.total_pages, 20);
    assert_int_equal(pg.page, 3);
    /* ids beyond 32 bits survive */
    assert_true(json_integer_value(json_object_get(json_array_get(pg.items, 0), "id")) ==
                (json_int_t)5560138523LL);
    json_decref(pg.items);
}

static void test_numeric_string_total_pages_and_missing_page(void **state) {
    const char *body = "{\"tickets\":[{\"id\":1}],\"meta\":{\"total_pages\":\"12\"}}";
    msp_syncro_page_t pg;
    char err[256];
    (void)state;

    assert_int_equal(PARSE(body, "tickets", 5, &pg, err), 0);
    assert_int_equal(pg.total_pages, 12);
    assert_int_equal(pg.page, 5); /* the requested page when meta.page is absent */
    json_decref(pg.items);
}

static void test_page_without_meta_stops_the_pager(void **state) {
    msp_syncro_page_t pg;
    char err[256];
    (void)state;

    assert_int_equal(PARSE("{\"customers\":[{\"id\":1}]}", "customers", 1, &pg, err), 0);
    assert_int_equal(pg.total_pages, 1);
    json_decref(pg.items);
    assert_int_equal(PARSE("{\"customers\":[{\"id\":1}]}", "customers", 3, &pg, err), 0);
    assert_int_equal(pg.total_pages, 3);
    json_decref(pg.items);
    assert_int_equal(PARSE("{\"customers\":[]}", "customers", 3, &pg, err), 0);
    assert_int_equal(pg.total_pages, 2);
    json_decref(pg.items);
    /* meta without a usable total_pages counts as absent */
    assert_int_equal(PARSE("{\"customers\":[],\"meta\":{\"total_pages\":null}}", "customers", 1,
                           &pg, err), 0);
    assert_int_equal(pg.total_pages, 0);
    json_decref(pg.items);
}

static void test_empty_array_past_the_end(void **state) {
    const char *body = "{\"customers\":[],\"meta\":{\"total_pages\":4,\"page\":5}}";
    msp_syncro_page_t pg;
    char err[256];
    (void)state;

    assert_int_equal(PARSE(body, "customers", 5, &pg, err), 0);
    assert_int_equal(json_array_size(pg.items), 0);
    assert_true(pg.page >= pg.total_pages);
    json_decref(pg.items);
}

static void test_bad_pages_are_errors(void **state) {
    msp_syncro_page_t pg;
    char err[256];
    (void)state;

    err[0] = '\0';
    assert_int_equal(PARSE("{\"meta\":{\"total_pages\":1}}", "customers", 1, &pg, err), -1);
    assert_null(pg.items);
    assert_non_null(strstr(err, "customers"));
    assert_int_equal(PARSE("{\"customers\":{\"id\":1}}", "customers", 1, &pg, err), -1);
    assert_non_null(strstr(err, "not a list"));
    assert_int_equal(PARSE("<html>502 Bad Gateway</html>", "customers", 1, &pg, err), -1);
    assert_non_null(strstr(err, "not JSON"));
    assert_int_equal(PARSE("[1,2]", "customers", 1, &pg, err), -1);
    assert_int_equal(msp_syncro_parse_page("", 0, "customers", 1, &pg, err, sizeof(err)), -1);
}

/* ------------------------------------------------------------------ error messages */

static void test_error_message_from_every_body_shape(void **state) {
    static const struct {
        long status;
        const char *body;
        const char *want;
    } cases[] = {
        /* {"error":"..."} — the missing-permission answer */
        {401, "{\"error\":\"Not authorized. Please ask account admin to update your group "
              "permissions.\"}",
         "Not authorized. Please ask account admin to update your group permissions."},
        /* {"error":[...]} */
        {422, "{\"error\":[\"Customer required field\",\"Subject can't be blank\"]}",
         "Customer required field; Subject can't be blank"},
        {422, "{\"error\":\"Customer required field\"}", "Customer required field"},
        /* {"errors":"..."} */
        {422, "{\"errors\":\"Name is taken\"}", "Name is taken"},
        /* {"errors":{"field":[...]}} */
        {422, "{\"errors\":{\"email\":[\"is invalid\",\"is too long\"],\"name\":[\"can't be blank\"]}}",
         "email is invalid; email is too long; name can't be blank"},
        {422, "{\"errors\":{\"base\":[\"Ticket is locked\"]}}", "Ticket is locked"},
        {422, "{\"errors\":{\"email\":\"is invalid\"}}", "email is invalid"},
        /* {"success":false,"message":[...],"params":{}} */
        {400, "{\"success\":false,\"message\":[\"Subject is required\",\"Body is required\"],"
              "\"params\":{}}",
         "Subject is required; Body is required"},
        {400, "{\"success\":false,\"message\":\"Bad things\"}", "Bad things"},
        /* {"record":{...},"errors":"a, b"} */
        {422, "{\"record\":{\"id\":5560138523,\"name\":\"x\"},\"errors\":\"Serial is taken, Name "
              "is blank\"}",
         "Serial is taken, Name is blank"},
        /* {"message":"Not found"} */
        {404, "{\"message\":\"Not found\"}", "Not found"},
        /* nested error object */
        {400, "{\"error\":{\"message\":\"bad cursor\",\"code\":12}}", "bad cursor"},
        /* empty bodies */
        {502, "", "HTTP 502 Bad Gateway (empty body)"},
        {404, " \r\n", "HTTP 404 Not Found (empty body)"},
        {599, "", "HTTP 599 (empty body)"},
        /* non-JSON text and HTML */
        {503, "<html><head><title>503 Service Temporarily Unavailable</title><style>body{color:red}"
              "</style></head>\n<body><center><h1>503 Service Temporarily Unavailable</h1>"
              "</center><hr><center>nginx</center></body></html>",
         "HTTP 503: 503 Service Temporarily Unavailable 503 Service Temporarily Unavailable nginx"},
        {500, "Internal error:\n\tplease   retry", "HTTP 500: Internal error: please retry"},
        {500, "<p>Fish &amp; chips &lt;3</p>", "HTTP 500: Fish & chips <3"},
        {502, "<html><body></body></html>", "HTTP 502 Bad Gateway (no text in body)"},
        /* JSON without any key we know */
        {500, "{\"status\":\"boom\"}", "HTTP 500 Internal Server Error: {\"status\":\"boom\"}"},
        {400, "{\"error\":\"\"}", "HTTP 400 Bad Request: {\"error\":\"\"}"},
        /* a bare JSON string or array */
        {400, "\"plain string\"", "plain string"},
        {400, "[\"a\",\"b\"]", "a; b"},
        /* control characters and whitespace in JSON text */
        {422, "{\"error\":\"line one\\nline\\u0007 two\\t \"}", "line one line two"},
    };
    size_t i;
    char out[512];
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msp_syncro_error_message(cases[i].status, cases[i].body, strlen(cases[i].body), out,
                                 sizeof(out));
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu (%ld %s):\n  want \"%s\"\n  got  \"%s\"", i, cases[i].status,
                     cases[i].body, cases[i].want, out);
    }
}

static void test_long_text_body_is_cut_to_120_characters(void **state) {
    char body[1000], out[512];
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(body) - 1; i++)
        body[i] = (char)('a' + i % 26);
    body[sizeof(body) - 1] = '\0';
    msp_syncro_error_message(503, body, strlen(body), out, sizeof(out));
    assert_int_equal(strncmp(out, "HTTP 503: ", 10), 0);
    assert_int_equal(strlen(out), 10 + 120 + 3);
    assert_string_equal(out + 130, "...");

    /* multi-byte characters count as one and are never split */
    body[0] = '\0';
    for (i = 0; i < 200; i++)
        strcat(body, "\xC3\xA9"); /* é */
    msp_syncro_error_message(503, body, strlen(body), out, sizeof(out));
    assert_int_equal(strlen(out), 10 + 240 + 3);
}

static void test_error_message_never_overflows_or_breaks_utf8(void **state) {
    const char *body = "{\"error\":\"caf\xC3\xA9 caf\xC3\xA9 caf\xC3\xA9\"}";
    const char *bad = "bad \xFF\xFE bytes";
    char out[8];
    char big[128];
    (void)state;

    /* "café c" would need to split é; the writer stops before it */
    msp_syncro_error_message(400, body, strlen(body), out, sizeof(out));
    assert_string_equal(out, "caf\xC3\xA9 c");
    msp_syncro_error_message(400, bad, strlen(bad), big, sizeof(big));
    assert_string_equal(big, "HTTP 400: bad ?? bytes");
    msp_syncro_error_message(400, NULL, 0, big, sizeof(big));
    assert_string_equal(big, "HTTP 400 Bad Request (empty body)");
}

/* ------------------------------------------------------------------ permissions, describe */

static void test_permission_names_for_calls(void **state) {
    static const struct {
        const char *method, *path, *want;
    } cases[] = {
        {"GET", "customers", "Customers - List/Search"},
        {"GET", "/customers?page=2", "Customers - List/Search"},
        {"GET", "customers/5560138523", "Customers - View Detail"},
        {"GET", "customer_assets", "Assets - List/Search"},
        {"GET", "customer_assets?page=3&per_page=100", "Assets - List/Search"},
        {"GET", "customer_assets/123", "Assets - View Details"},
        {"PUT", "customer_assets/1", "Assets - Edit"},
        {"put", "/customer_assets/1/", "Assets - Edit"},
        {"GET", "tickets", "Tickets - List/Search"},
        {"POST", "tickets", "Tickets - Create"},
        {"PUT", "tickets/77", "Tickets - Edit"},
        {"POST", "tickets/77/comment", "Tickets - Edit"},
        {"PUT", "schedules/9", "Recurring Invoices - Edit"},
        {"PUT", "schedules/9/line_items/10", "Recurring Invoices - Edit"},
        {"GET", "me", NULL},
        {"DELETE", "customers/1", NULL},
        {"GET", "invoices", NULL},
        {"GET", "", NULL},
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = msp_syncro_permission_for(cases[i].method, cases[i].path);
        if ((got == NULL) != (cases[i].want == NULL) ||
            (got && strcmp(got, cases[i].want) != 0))
            fail_msg("%s %s: want %s, got %s", cases[i].method, cases[i].path,
                     cases[i].want ? cases[i].want : "(null)", got ? got : "(null)");
    }
    assert_null(msp_syncro_permission_for(NULL, "customers"));
}

static msp_http_response_t response(long status, const char *body) {
    msp_http_response_t res;
    memset(&res, 0, sizeof(res));
    res.status = status;
    res.body = (char *)body;
    res.body_len = body ? strlen(body) : 0;
    res.retry_after_ms = -1;
    return res;
}

static void test_describe_names_the_missing_permission(void **state) {
    msp_http_response_t res = response(
        401, "{\"error\":\"Not authorized. Please ask account admin to update your group "
             "permissions.\"}");
    char out[512];
    (void)state;

    msp_syncro_describe(&res, "GET", "customer_assets?page=1", out, sizeof(out));
    assert_string_equal(out, "Syncro GET /customer_assets answered 401: Not authorized. Please "
                             "ask account admin to update your group permissions. \xE2\x80\x94 "
                             "the API key's group lacks the permission \"Assets - List/Search\"");
}

static void test_describe_401_without_permission_text_blames_the_key(void **state) {
    msp_http_response_t res = response(401, "{\"error\":\"Invalid token\"}");
    char out[512];
    (void)state;

    msp_syncro_describe(&res, "GET", "me", out, sizeof(out));
    assert_string_equal(out, "Syncro GET /me answered 401: Invalid token \xE2\x80\x94 the API key "
                             "is invalid, expired or revoked");
    res = response(401, "");
    msp_syncro_describe(&res, "GET", "/customers", out, sizeof(out));
    assert_non_null(strstr(out, "HTTP 401 Unauthorized (empty body)"));
    assert_non_null(strstr(out, "invalid, expired or revoked"));
}

static void test_describe_404_on_me_points_at_the_subdomain(void **state) {
    msp_http_response_t res = response(404, "{\"message\":\"Not found\"}");
    char out[512];
    (void)state;

    msp_syncro_describe(&res, "GET", "/me", out, sizeof(out));
    assert_string_equal(out, "Syncro GET /me answered 404: Not found \xE2\x80\x94 check the Syncro "
                             "subdomain");
    msp_syncro_describe(&res, "GET", "customers/12", out, sizeof(out));
    assert_null(strstr(out, "subdomain"));
}

static void test_describe_429_mentions_the_rate_limit(void **state) {
    msp_http_response_t res = response(429, NULL);
    char out[512];
    (void)state;

    res.retry_after_ms = 2500;
    msp_syncro_describe(&res, "GET", "customers", out, sizeof(out));
    assert_non_null(strstr(out, "answered 429: HTTP 429 Too Many Requests (empty body)"));
    assert_non_null(strstr(out, "rate limit"));
    assert_non_null(strstr(out, "wait 3 s"));
}

static void test_describe_transport_errors(void **state) {
    msp_http_response_t res = response(0, "");
    char out[512];
    (void)state;

    res.curl_code = CURLE_COULDNT_CONNECT;
    snprintf(res.errstr, sizeof(res.errstr), "Failed to connect to acme.syncromsp.com port 443");
    msp_syncro_describe(&res, "GET", "/customers", out, sizeof(out));
    assert_string_equal(out, "Syncro GET /customers could not connect: Failed to connect to "
                             "acme.syncromsp.com port 443");

    res.curl_code = CURLE_OPERATION_TIMEDOUT;
    snprintf(res.errstr, sizeof(res.errstr), "Operation timed out after 30000 milliseconds");
    msp_syncro_describe(&res, "GET", "customers", out, sizeof(out));
    assert_string_equal(out, "Syncro GET /customers timed out: Operation timed out after 30000 "
                             "milliseconds");

    res.curl_code = CURLE_ABORTED_BY_CALLBACK;
    snprintf(res.errstr, sizeof(res.errstr), "cancelled");
    msp_syncro_describe(&res, "GET", "customers", out, sizeof(out));
    assert_string_equal(out, "Syncro GET /customers was cancelled");

    res.curl_code = CURLE_WRITE_ERROR;
    snprintf(res.errstr, sizeof(res.errstr), "response body larger than 1000 bytes");
    msp_syncro_describe(&res, "GET", "customers", out, sizeof(out));
    assert_string_equal(out, "Syncro GET /customers failed: response body larger than 1000 bytes");

    /* no errstr: curl's text for the code */
    res.curl_code = CURLE_COULDNT_RESOLVE_HOST;
    res.errstr[0] = '\0';
    msp_syncro_describe(&res, "GET", "customers", out, sizeof(out));
    assert_non_null(strstr(out, "could not connect: "));
}

static void test_describe_never_prints_the_query_string(void **state) {
    msp_http_response_t res = response(500, "{\"error\":\"boom\"}");
    char out[512];
    (void)state;

    msp_syncro_describe(&res, "GET", "customers?api_key=SECRETKEY&page=2", out, sizeof(out));
    assert_null(strstr(out, "SECRETKEY"));
    assert_string_equal(out, "Syncro GET /customers answered 500: boom");
    /* small buffers are cut, never overrun */
    msp_syncro_describe(&res, "GET", "customers", out, 12);
    assert_string_equal(out, "Syncro GET"); /* " /" did not fit: nothing half-written */
}

/* ------------------------------------------------------------------ GET /me */

#define ME(perms) \
    "{\"user_id\":1,\"user_name\":\"Joe\",\"subdomain\":\"acme\",\"permissions\":" perms "}"

static void test_me_flags_read_as_syncro_sends_them(void **state) {
    const char *body = ME("{\"asset\":{\"read\":\"true\",\"write\":1},"
                          "\"customer\":{\"read\":\"false\"},\"ticket\":{\"read\":true}}");
    char err[256];
    (void)state;

    json_t *perms = msp_syncro_me_permissions(body, strlen(body), err, sizeof(err));
    assert_non_null(perms);
    assert_int_equal(msp_syncro_me_grants(perms, "asset", "read"), 1);
    assert_int_equal(msp_syncro_me_grants(perms, "asset", "write"), 1);
    assert_int_equal(msp_syncro_me_grants(perms, "customer", "read"), 0);
    assert_int_equal(msp_syncro_me_grants(perms, "ticket", "read"), 1);
    assert_int_equal(msp_syncro_me_grants(perms, "invoice", "read"), 0);
    json_decref(perms);
}

static void test_me_that_is_not_an_object_is_an_error(void **state) {
    const char *bodies[] = {"[1,2]", "<html>login</html>", "{\"user_id\":1}", ""};
    char err[256];
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        err[0] = '\0';
        assert_null(msp_syncro_me_permissions(bodies[i], strlen(bodies[i]), err, sizeof(err)));
        assert_true(strlen(err) > 0);
    }
}

/* Every permission a feature of the row needs can be checked, and each probe is a call that
 * very permission guards (so a 401 to it names the right one). */
static void test_every_feature_permission_has_a_probe_guarded_by_it(void **state) {
    (void)state;
    for (const msp_vendor_feature_t *f = msp_vendor_syncro.features; f->feature; f++)
        for (const char *const *p = f->permissions; *p; p++) {
            msp_syncro_probe_t probe;
            if (msp_syncro_probe_for(*p, &probe) != 0)
                fail_msg("no probe for \"%s\" (feature %s)", *p, f->feature);
            if (probe.me_area)
                continue;
            const char *guard = msp_syncro_permission_for(probe.method, probe.path);
            if (!guard || strcmp(guard, *p) != 0)
                fail_msg("%s %s is guarded by \"%s\", not \"%s\"", probe.method, probe.path,
                         guard ? guard : "(nothing)", *p);
        }
    msp_syncro_probe_t probe;
    assert_int_equal(msp_syncro_probe_for("Global Admin", &probe), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subdomain_builds_the_https_base_url),
        cmocka_unit_test(test_bad_subdomains_are_rejected_with_a_reason),
        cmocka_unit_test(test_hostname_forms_normalize_to_the_subdomain),
        cmocka_unit_test(test_exactly_one_of_subdomain_and_base_url),
        cmocka_unit_test(test_base_url_accepts_http_and_https_and_strips_trailing_slash),
        cmocka_unit_test(test_account_id_is_lowercase_without_trailing_slash),
        cmocka_unit_test(test_list_url_has_page_and_optional_per_page),
        cmocka_unit_test(test_asset_put_body_carries_the_name_read_and_the_properties),
        cmocka_unit_test(test_auth_header_is_bearer_without_stray_whitespace),
        cmocka_unit_test(test_customers_page_with_full_meta),
        cmocka_unit_test(test_assets_page_with_only_total_pages_and_page),
        cmocka_unit_test(test_numeric_string_total_pages_and_missing_page),
        cmocka_unit_test(test_page_without_meta_stops_the_pager),
        cmocka_unit_test(test_empty_array_past_the_end),
        cmocka_unit_test(test_bad_pages_are_errors),
        cmocka_unit_test(test_error_message_from_every_body_shape),
        cmocka_unit_test(test_long_text_body_is_cut_to_120_characters),
        cmocka_unit_test(test_error_message_never_overflows_or_breaks_utf8),
        cmocka_unit_test(test_permission_names_for_calls),
        cmocka_unit_test(test_describe_names_the_missing_permission),
        cmocka_unit_test(test_describe_401_without_permission_text_blames_the_key),
        cmocka_unit_test(test_describe_404_on_me_points_at_the_subdomain),
        cmocka_unit_test(test_describe_429_mentions_the_rate_limit),
        cmocka_unit_test(test_describe_transport_errors),
        cmocka_unit_test(test_describe_never_prints_the_query_string),
        cmocka_unit_test(test_me_flags_read_as_syncro_sends_them),
        cmocka_unit_test(test_me_that_is_not_an_object_is_an_error),
        cmocka_unit_test(test_every_feature_permission_has_a_probe_guarded_by_it),
    };
    return cmocka_run_group_tests_name("syncro", tests, NULL, NULL);
}
