/*
 * api.c — one request to the admin API and the classification of its answer.
 *
 * Every command goes through ctl_call(), so the rules below hold for all of them:
 *  - the answer is read into memory up to ctx->max_answer bytes; a larger one is stopped and
 *    reported (exit 3) rather than grown without bound;
 *  - an answer cut short (connection closed before Content-Length), one that is not JSON where
 *    JSON is due, no answer, and 5xx are "the API is not there / not working": exit 3;
 *  - 404 is exit 5, any other 4xx exit 1, with the API's own `error` text and the vendor
 *    details of a VendorRejection (missing_permissions, missing_scope, vendor_status) as given;
 *  - the bearer token goes into one header and nowhere else: --verbose prints the method, URL,
 *    the request body with vendor secrets masked, and the status, never the headers.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

typedef struct sink {
    char *buf;
    size_t len, cap, max;
    int too_large;
} sink;

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata) {
    sink *s = userdata;
    size_t n = size * nmemb;
    if (s->len + n > s->max) {
        s->too_large = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb)
            return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

int ctl_exit_for_status(long status) {
    if (status >= 200 && status < 300)
        return CTL_OK;
    if (status == 404)
        return CTL_NOT_FOUND;
    if (status >= 400 && status < 500)
        return CTL_REFUSED;
    return CTL_UNREACHABLE;
}

int ctl_urlencode(const char *s, char *out, size_t out_size) {
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (j + (keep ? 1 : 3) >= out_size)
            return -1;
        if (keep) {
            out[j++] = (char)*p;
        } else {
            out[j++] = '%';
            out[j++] = hex[*p >> 4];
            out[j++] = hex[*p & 15];
        }
    }
    if (j >= out_size)
        return -1;
    out[j] = '\0';
    return 0;
}

void ctl_answer_free(ctl_answer *ans) {
    if (!ans)
        return;
    free(ans->body);
    json_decref(ans->json);
    memset(ans, 0, sizeof(*ans));
}

void ctl_put_clean(FILE *f, const char *s) {
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

/* The request body for --verbose, vendor secrets masked. */
static void trace_body(FILE *f, const json_t *body) {
    json_t *copy = json_deep_copy(body);
    if (!copy)
        return;
    static const char *const secret_keys[] = {"api_key", "client_secret", "token", "secret"};
    for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++)
        if (json_object_get(copy, secret_keys[i]))
            json_object_set_new(copy, secret_keys[i], json_string("***"));
    char *text = json_dumps(copy, JSON_COMPACT);
    if (text)
        fprintf(f, "> %s\n", text);
    free(text);
    json_decref(copy);
}

/* The API's words for a refusal: `error`, then what a VendorRejection adds. */
static void print_refusal(ctl_ctx *ctx, const ctl_answer *ans) {
    const char *error = json_string_value(json_object_get(ans->json, "error"));
    fprintf(ctx->err, "mspsyncctl: HTTP %ld: ", ans->status);
    if (error) {
        ctl_put_clean(ctx->err, error);
    } else {
        /* not the API's error shape (e.g. libevent's HTML 413 page): its first line, cut */
        char line[160];
        size_t n = 0;
        for (size_t i = 0; i < ans->len && n + 1 < sizeof(line) && ans->body[i] != '\n'; i++)
            line[n++] = ans->body[i];
        line[n] = '\0';
        ctl_put_clean(ctx->err, n ? line : "(no error text)");
    }
    fputc('\n', ctx->err);
    json_t *perms = json_object_get(ans->json, "missing_permissions");
    size_t i;
    json_t *v;
    json_array_foreach(perms, i, v) {
        if (json_is_string(v)) {
            fputs("  missing permission: ", ctx->err);
            ctl_put_clean(ctx->err, json_string_value(v));
            fputc('\n', ctx->err);
        }
    }
    const char *scope = json_string_value(json_object_get(ans->json, "missing_scope"));
    if (scope) {
        fputs("  missing scope: ", ctx->err);
        ctl_put_clean(ctx->err, scope);
        fputc('\n', ctx->err);
    }
    json_t *vs = json_object_get(ans->json, "vendor_status");
    if (json_is_integer(vs))
        fprintf(ctx->err, "  vendor answered: HTTP %lld\n", (long long)json_integer_value(vs));
}

int ctl_call(ctl_ctx *ctx, const char *method, const char *path, const json_t *body,
             ctl_answer *ans) {
    memset(ans, 0, sizeof(*ans));
    if (!ctx->conf.url[0]) {
        fprintf(ctx->err, "mspsyncctl: no API URL: give --url, MSPSYNC_URL or `url =` in the "
                          "config file\n");
        return CTL_USAGE;
    }
    size_t ulen = strlen(ctx->conf.url);
    while (ulen > 0 && ctx->conf.url[ulen - 1] == '/')
        ulen--;
    size_t full_size = ulen + strlen(path) + 1;
    char *url = malloc(full_size);
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char *auth = NULL;
    CURL *curl = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    sink s = {.max = ctx->max_answer};
    int rc = CTL_UNREACHABLE;
    if (!url || !curl || (body && !payload)) {
        fprintf(ctx->err, "mspsyncctl: out of memory\n");
        goto out;
    }
    memcpy(url, ctx->conf.url, ulen);
    strcpy(url + ulen, path);
    if (ctx->conf.token[0]) {
        size_t alen = strlen(ctx->conf.token) + sizeof("Authorization: Bearer ");
        auth = malloc(alen);
        if (!auth)
            goto out;
        snprintf(auth, alen, "Authorization: Bearer %s", ctx->conf.token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (payload)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET") != 0 || payload) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload ? payload : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)(payload ? strlen(payload) : 0));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, ctx->timeout_s);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, ctx->timeout_s < 10 ? ctx->timeout_s : 10L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "mspsyncctl/" MSPSYNCCTL_VERSION);
    if (ctx->verbose) {
        fprintf(ctx->err, "> %s %s\n", method, url);
        if (body)
            trace_body(ctx->err, body);
    }
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
    CURLcode cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &ans->status);
    if (ctx->verbose)
        fprintf(ctx->err, "< %ld (%zu bytes)\n", ans->status, s.len);
    if (s.too_large) {
        fprintf(ctx->err,
                "mspsyncctl: the answer of %s %s is larger than %zu bytes (--max-answer); "
                "not read\n",
                method, path, ctx->max_answer);
        goto out;
    }
    if (cc != CURLE_OK) {
        if (cc == CURLE_PARTIAL_FILE || (ans->status != 0 && cc == CURLE_RECV_ERROR))
            fprintf(ctx->err, "mspsyncctl: the answer of %s %s was cut short: %s\n", method, path,
                    cerr[0] ? cerr : curl_easy_strerror(cc));
        else
            fprintf(ctx->err, "mspsyncctl: cannot reach the API at %s: %s\n", ctx->conf.url,
                    cerr[0] ? cerr : curl_easy_strerror(cc));
        goto out;
    }
    ans->body = s.buf ? s.buf : calloc(1, 1);
    ans->len = s.len;
    s.buf = NULL;
    if (!ans->body)
        goto out;
    if (ans->len > 0)
        ans->json = json_loadb(ans->body, ans->len, JSON_DECODE_ANY, NULL);
    rc = ctl_exit_for_status(ans->status);
    if (ctx->json && ans->len > 0 && ans->json && rc != CTL_OK) {
        fwrite(ans->body, 1, ans->len, ctx->out);
        if (ans->body[ans->len - 1] != '\n')
            fputc('\n', ctx->out);
    }
    if (rc == CTL_OK && ans->status != 204 && !json_is_object(ans->json)) {
        fprintf(ctx->err,
                "mspsyncctl: the answer of %s %s (HTTP %ld, %zu bytes) is not a JSON "
                "object; is %s the mspsync API?\n",
                method, path, ans->status, ans->len, ctx->conf.url);
        rc = CTL_UNREACHABLE;
    } else if (rc != CTL_OK) {
        print_refusal(ctx, ans);
    }
out:
    if (rc != CTL_OK)
        ctl_answer_free(ans);
    free(s.buf);
    if (auth) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    curl_slist_free_all(hdrs);
    if (curl)
        curl_easy_cleanup(curl);
    free(payload);
    free(url);
    return rc;
}
