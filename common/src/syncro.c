/*
 * syncro.c — the Syncro PSA REST client: URLs, auth header, list pages, error text, hints.
 *
 * Pure functions over strings and JSON; no I/O, no event loop, no retries (those live with the
 * caller, see http.h and backoff.h). The hard part is error text: Syncro answers errors in at
 * least eight shapes (NOTES.md), and what we extract ends up on a status page in front of an MSP
 * technician, so it must be short, one line, valid UTF-8 and never empty. Every message goes
 * through a small bounded writer (sb_t) that drops control characters, collapses whitespace,
 * replaces invalid UTF-8 with '?' and never cuts a character in half.
 *
 * Secrets: the API key only ever appears in the Authorization header built by
 * msp_syncro_auth_header(); msp_syncro_describe() sees the response and the resource path only,
 * and drops any query string from the path it prints.
 */
#include "mspsync/syncro.h"
#include "mspsync/errstr.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define MSP_SYNCRO_HOST_DOMAIN ".syncromsp.com"
#define MSP_SYNCRO_HOST_SUFFIX MSP_SYNCRO_HOST_DOMAIN "/api/v1"
#define MSP_SYNCRO_EXCERPT_CHARS 120

/* ------------------------------------------------------------------ bounded one-line writer */

typedef struct sb_s {
    char  *out;
    size_t size;
    size_t len;
    int    pending_space; /* whitespace seen; emitted only before the next visible character */
    int    full;          /* something did not fit */
} sb_t;

static void sb_init(sb_t *sb, char *out, size_t size) {
    sb->out = out;
    sb->size = size;
    sb->len = 0;
    sb->pending_space = 0;
    sb->full = 0;
    if (size)
        out[0] = '\0';
}

/* Append n raw bytes that form whole characters; all or nothing. */
static int sb_bytes(sb_t *sb, const char *s, size_t n) {
    if (sb->full || sb->size == 0 || sb->len + n >= sb->size) {
        sb->full = 1;
        return -1;
    }
    memcpy(sb->out + sb->len, s, n);
    sb->len += n;
    sb->out[sb->len] = '\0';
    return 0;
}

/* Separators and fixed text we write ourselves: no sanitising, resets whitespace state. */
static void sb_raw(sb_t *sb, const char *s) {
    sb->pending_space = 0;
    sb_bytes(sb, s, strlen(s));
}

static void sb_fmt(sb_t *sb, const char *fmt, long v) {
    char buf[64];
    snprintf(buf, sizeof(buf), fmt, v);
    sb_raw(sb, buf);
}

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    size_t len, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* Untrusted text: whitespace runs become one space, controls vanish, bad UTF-8 becomes '?'.
 * Stops after max_chars characters when max_chars > 0 (returns 1 if text was left over). */
static int sb_text_n(sb_t *sb, const char *s, size_t n, size_t max_chars) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t chars = 0;

    while (p < end && !sb->full) {
        size_t l;
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\f' || *p == '\v') {
            sb->pending_space = 1;
            p++;
            continue;
        }
        if (*p < 0x20 || *p == 0x7F) {
            p++;
            continue;
        }
        if (max_chars && chars == max_chars)
            return 1;
        if (sb->pending_space && sb->len > 0 && sb->out[sb->len - 1] != ' ' &&
            sb_bytes(sb, " ", 1) != 0)
            break;
        sb->pending_space = 0;
        l = utf8_len(p, (size_t)(end - p));
        if (l == 0) {
            sb_bytes(sb, "?", 1);
            p++;
        } else {
            if (l == 2 && p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) { /* C1 controls */
                p += 2;
                continue;
            }
            sb_bytes(sb, (const char *)p, l);
            p += l;
        }
        chars++;
    }
    return 0;
}

static void sb_text(sb_t *sb, const char *s) {
    sb_text_n(sb, s, strlen(s), 0);
}

/* ------------------------------------------------------------------ small helpers */

static const char *reason_phrase(long status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 425: return "Too Early";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    }
    return NULL;
}

static void sb_status(sb_t *sb, long status) {
    const char *reason = reason_phrase(status);
    sb_fmt(sb, "HTTP %ld", status);
    if (reason) {
        sb_raw(sb, " ");
        sb_raw(sb, reason);
    }
}

static void set_err(char *errstr, size_t errstr_size, const char *fmt, const char *arg) {
    if (errstr && errstr_size)
        snprintf(errstr, errstr_size, fmt, arg ? arg : "");
}

static int ci_contains(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ base URL and friends */

int msp_syncro_base_url(const char *subdomain, const char *base_url, char *out, size_t out_size,
                        char *errstr, size_t errstr_size) {
    int has_sub = subdomain && *subdomain, has_base = base_url && *base_url;
    const char *p;
    size_t len;

    if (out_size)
        out[0] = '\0';
    if (has_sub == has_base) {
        set_err(errstr, errstr_size, "%s",
                has_sub ? "set either the Syncro subdomain or a base URL, not both"
                        : "set the Syncro subdomain (e.g. \"acme\" for acme.syncromsp.com) or a "
                          "base URL");
        return -1;
    }

    if (has_sub) {
        /* The address as users copy it from their browser: "acme.syncromsp.com", with or
         * without "http(s)://" and a trailing '/', in any case, is the subdomain "acme". */
        char host[256];
        const char *h = subdomain;
        size_t sfx = strlen(MSP_SYNCRO_HOST_DOMAIN);
        if (strncasecmp(h, "https://", 8) == 0)
            h += 8;
        else if (strncasecmp(h, "http://", 7) == 0)
            h += 7;
        len = strlen(h);
        while (len > 0 && h[len - 1] == '/')
            len--;
        if (len > sfx && len < sizeof(host) &&
            strncasecmp(h + len - sfx, MSP_SYNCRO_HOST_DOMAIN, sfx) == 0) {
            memcpy(host, h, len - sfx);
            host[len - sfx] = '\0';
            subdomain = host;
        } else if (h != subdomain) {
            set_err(errstr, errstr_size, "%s",
                    "the Syncro subdomain is a name, not a URL: use \"acme\" for "
                    "https://acme.syncromsp.com");
            return -1;
        }
        len = strlen(subdomain);
        if (len == 0 || strchr(subdomain, '.')) {
            set_err(errstr, errstr_size, "%s",
                    "the Syncro subdomain is only the first part of the address: use \"acme\" "
                    "for acme.syncromsp.com");
            return -1;
        }
        if (len > 63) {
            set_err(errstr, errstr_size, "%s", "the Syncro subdomain is longer than 63 characters");
            return -1;
        }
        for (p = subdomain; *p; p++) {
            if (!isalnum((unsigned char)*p) && *p != '-') {
                set_err(errstr, errstr_size, "%s",
                        "the Syncro subdomain may contain only letters, digits and '-'");
                return -1;
            }
        }
        if (subdomain[0] == '-' || subdomain[len - 1] == '-') {
            set_err(errstr, errstr_size, "%s",
                    "the Syncro subdomain cannot start or end with '-'");
            return -1;
        }
        if (len + strlen("https://") + strlen(MSP_SYNCRO_HOST_SUFFIX) >= out_size) {
            set_err(errstr, errstr_size, "%s", "output buffer too small for the Syncro base URL");
            return -1;
        }
        /* Host names are case-insensitive; one spelling keeps account ids stable. */
        len = (size_t)snprintf(out, out_size, "https://");
        for (p = subdomain; *p; p++)
            out[len++] = (char)tolower((unsigned char)*p);
        out[len] = '\0';
        strcat(out, MSP_SYNCRO_HOST_SUFFIX);
        return 0;
    }

    return msp_vendor_base_url("Syncro", base_url, out, out_size, errstr, errstr_size);
}

int msp_vendor_base_url(const char *vendor, const char *base_url, char *out, size_t out_size,
                        char *errstr, size_t errstr_size) {
    const char *p, *host;
    size_t len;

    if (out_size)
        out[0] = '\0';
    if (strncasecmp(base_url, "https://", 8) == 0)
        host = base_url + 8;
    else if (strncasecmp(base_url, "http://", 7) == 0)
        host = base_url + 7;
    else {
        msp_set_err(errstr, errstr_size, "the %s base URL must start with https:// or http://", vendor);
        return -1;
    }
    if (*host == '\0' || *host == '/') {
        msp_set_err(errstr, errstr_size, "the %s base URL has no host name", vendor);
        return -1;
    }
    for (p = base_url; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7F || c >= 0x80 || c == '?' || c == '#' || c == '\\') {
            msp_set_err(errstr, errstr_size, "the %s base URL may not contain spaces, a query (?) or a fragment (#)", vendor);
            return -1;
        }
    }
    /* Anywhere, not only before the first '/': a password holding '/' ("user:p/w@host") would
     * otherwise pass and be shown wherever the base URL is. */
    if (strchr(host, '@')) {
        msp_set_err(errstr, errstr_size, "the %s base URL must not contain a user name or password", vendor);
        return -1;
    }
    len = strlen(base_url);
    while (len > 0 && base_url[len - 1] == '/')
        len--;
    if (len >= out_size) {
        msp_set_err(errstr, errstr_size, "the %s base URL is too long", vendor);
        return -1;
    }
    memcpy(out, base_url, len);
    out[len] = '\0';
    return 0;
}

void msp_syncro_account_id(const char *base_url, char *out, size_t out_size) {
    size_t i, len;

    if (!out_size)
        return;
    out[0] = '\0';
    if (!base_url)
        return;
    len = strcspn(base_url, "?#");
    while (len > 0 && base_url[len - 1] == '/')
        len--;
    if (len >= out_size)
        len = out_size - 1;
    for (i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)base_url[i]);
    out[len] = '\0';
}

int msp_syncro_list_url(const char *base_url, const char *resource, int page, int per_page,
                        char *out, size_t out_size) {
    int n;

    if (!base_url || !resource || !out || out_size == 0 || page < 1)
        return -1;
    while (*resource == '/')
        resource++;
    if (per_page > 0)
        n = snprintf(out, out_size, "%s/%s%cpage=%d&per_page=%d", base_url, resource,
                     strchr(resource, '?') ? '&' : '?', page, per_page);
    else
        n = snprintf(out, out_size, "%s/%s%cpage=%d", base_url, resource,
                     strchr(resource, '?') ? '&' : '?', page);
    if (n < 0 || (size_t)n >= out_size) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

void msp_syncro_auth_header(const char *api_key, char *out, size_t out_size) {
    const char *s = api_key ? api_key : "", *e;
    size_t len;
    int n;

    if (!out_size)
        return;
    /* A key pasted with a trailing newline must not end the header early (or inject one). */
    while (*s && isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    n = snprintf(out, out_size, "Authorization: Bearer ");
    if (n < 0 || (size_t)n >= out_size) {
        out[0] = '\0';
        return;
    }
    len = (size_t)n;
    for (; s < e && len + 1 < out_size; s++)
        if ((unsigned char)*s >= 0x20 && *s != 0x7F)
            out[len++] = *s;
    out[len] = '\0';
}

/* ------------------------------------------------------------------ list pages */

/* An int from a JSON integer, a whole real or a numeric string ("3"). */
static int json_to_int(const json_t *v, int *out) {
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < -2147483647 || i > 2147483647)
            return -1;
        *out = (int)i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= -2147483647.0 && d <= 2147483647.0) || d != (double)(int)d)
            return -1;
        *out = (int)d;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long l;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s)
            return -1;
        l = strtol(s, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (*end || l < -2147483647L || l > 2147483647L)
            return -1;
        *out = (int)l;
        return 0;
    }
    return -1;
}

int msp_syncro_parse_page(const char *body, size_t len, const char *key, int requested_page,
                          msp_syncro_page_t *out, char *errstr, size_t errstr_size) {
    json_t *root, *items, *meta;
    json_error_t jerr;
    int v;

    if (!out || !key)
        return -1;
    out->items = NULL;
    out->page = requested_page;
    out->total_pages = 0;
    if (!body || len == 0) {
        set_err(errstr, errstr_size, "Syncro answered an empty body where a list of %s was expected",
                key);
        return -1;
    }
    root = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
    if (!root) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "Syncro answered a body that is not JSON (%s)", jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        set_err(errstr, errstr_size, "Syncro answered JSON that is not an object where a list of %s "
                "was expected", key);
        json_decref(root);
        return -1;
    }
    items = json_object_get(root, key);
    if (!items) {
        set_err(errstr, errstr_size, "the Syncro answer has no \"%s\" list", key);
        json_decref(root);
        return -1;
    }
    if (!json_is_array(items)) {
        set_err(errstr, errstr_size, "\"%s\" in the Syncro answer is not a list", key);
        json_decref(root);
        return -1;
    }

    meta = json_object_get(root, "meta");
    if (json_is_object(meta) && json_to_int(json_object_get(meta, "total_pages"), &v) == 0) {
        out->total_pages = v < 0 ? 0 : v;
        if (json_to_int(json_object_get(meta, "page"), &v) == 0)
            out->page = v;
    } else {
        /* No paging information: treat the answer as the whole list. A non-empty page is the
         * last one (total_pages = requested_page); an empty one is past the end
         * (requested_page - 1). Either way a pager comparing page < total_pages stops. */
        out->total_pages = json_array_size(items) > 0 ? requested_page : requested_page - 1;
        if (out->total_pages < 0)
            out->total_pages = 0;
    }
    out->items = json_incref(items);
    json_decref(root);
    return 0;
}

/* ------------------------------------------------------------------ error messages */

static void render(sb_t *sb, json_t *v, const char *key);

/* "; " between parts that rendered something; an empty part leaves no separator behind. */
static void render_part(sb_t *sb, json_t *v, const char *key) {
    size_t before = sb->len;
    int full_before = sb->full;

    if (before > 0)
        sb_raw(sb, "; ");
    {
        size_t after_sep = sb->len;
        render(sb, v, key);
        if (sb->len == after_sep) {
            sb->len = before;
            sb->full = full_before;
            if (sb->size)
                sb->out[before] = '\0';
        }
    }
}

/* A message with an optional field name in front ("email is invalid"); Rails' "base" errors
 * concern the whole record and carry no field name. */
static void render_leaf(sb_t *sb, const char *text, const char *key) {
    if (!*text)
        return;
    if (key && *key && strcmp(key, "base") != 0) {
        sb_text(sb, key);
        sb->pending_space = 1;
    }
    sb_text(sb, text);
}

static void render(sb_t *sb, json_t *v, const char *key) {
    char buf[64];

    switch (json_typeof(v)) {
    case JSON_STRING:
        render_leaf(sb, json_string_value(v), key);
        break;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        render_leaf(sb, buf, key);
        break;
    case JSON_REAL:
        snprintf(buf, sizeof(buf), "%g", json_real_value(v));
        render_leaf(sb, buf, key);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        break; /* flags like "success":false say nothing a human needs */
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        size_t start = sb->len;
        json_array_foreach(v, i, e) {
            /* parts of one list join with "; " only among themselves */
            if (sb->len > start)
                render_part(sb, e, key);
            else
                render(sb, e, key);
        }
        break;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        size_t start = sb->len;
        /* {"field":"email","message":"is invalid"} reads best as one phrase */
        json_t *msg = json_object_get(v, "message");
        if (json_is_string(msg)) {
            json_t *field = json_object_get(v, "field");
            render_leaf(sb, json_string_value(msg),
                        json_is_string(field) ? json_string_value(field) : key);
            break;
        }
        json_object_foreach(v, k, e) {
            if (sb->len > start)
                render_part(sb, e, k);
            else
                render(sb, e, k);
        }
        break;
    }
    }
}

/* Text of an HTML or plain body: tags, comments, <script> and <style> removed, common entities
 * decoded, whitespace collapsed; at most max_chars characters, "..." when cut. */
static void render_text_body(sb_t *sb, const char *s, size_t n, size_t max_chars) {
    static const struct {
        const char *name;
        const char *text;
    } entities[] = {{"&amp;", "&"},  {"&lt;", "<"},  {"&gt;", ">"},   {"&quot;", "\""},
                    {"&#39;", "'"},  {"&apos;", "'"}, {"&nbsp;", " "}, {"&#x27;", "'"}};
    char *plain = malloc(n + 1);
    size_t i = 0, k = 0, e;

    if (!plain)
        return;
    while (i < n) {
        char c = s[i];
        if (c == '<' && i + 1 < n &&
            (isalpha((unsigned char)s[i + 1]) || s[i + 1] == '/' || s[i + 1] == '!' ||
             s[i + 1] == '?')) {
            const char *close = NULL;
            if (n - i >= 4 && strncmp(s + i, "<!--", 4) == 0)
                close = "-->";
            else if (n - i >= 7 && strncasecmp(s + i, "<script", 7) == 0)
                close = "</script";
            else if (n - i >= 6 && strncasecmp(s + i, "<style", 6) == 0)
                close = "</style";
            if (close) { /* skip the whole block */
                size_t cl = strlen(close);
                i++;
                while (i < n && !(n - i >= cl && strncasecmp(s + i, close, cl) == 0))
                    i++;
                i += cl < n - i ? cl : n - i;
            }
            while (i < n && s[i] != '>')
                i++;
            i++;
            plain[k++] = ' '; /* <td>a</td><td>b</td> must not read "ab" */
            continue;
        }
        if (c == '&') {
            for (e = 0; e < sizeof(entities) / sizeof(entities[0]); e++) {
                size_t el = strlen(entities[e].name);
                if (n - i >= el && strncasecmp(s + i, entities[e].name, el) == 0) {
                    plain[k++] = entities[e].text[0];
                    i += el;
                    break;
                }
            }
            if (e < sizeof(entities) / sizeof(entities[0]))
                continue;
        }
        plain[k++] = c == '\0' ? ' ' : c;
        i++;
    }
    if (sb_text_n(sb, plain, k, max_chars))
        sb_raw(sb, "...");
    free(plain);
}

static int all_space(const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            return 0;
    return 1;
}

void msp_syncro_error_message(long status, const char *body, size_t len, char *out,
                              size_t out_size) {
    static const char *const keys[] = {"error", "errors", "message", "detail", "msg"};
    sb_t sb;
    json_t *root;
    size_t i;

    if (!out || out_size == 0)
        return;
    sb_init(&sb, out, out_size);
    if (!body)
        len = 0;

    if (len == 0 || all_space(body, len)) {
        sb_status(&sb, status);
        sb_raw(&sb, " (empty body)");
        return;
    }

    root = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    if (root) {
        if (json_is_object(root)) {
            for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && sb.len == 0; i++) {
                json_t *v = json_object_get(root, keys[i]);
                if (v)
                    render(&sb, v, NULL);
            }
        } else {
            render(&sb, root, NULL);
        }
        json_decref(root);
        if (sb.len > 0)
            return;
        /* JSON, but nothing we recognise: show it as text. */
        sb_init(&sb, out, out_size);
        sb_status(&sb, status);
        sb_raw(&sb, ": ");
        render_text_body(&sb, body, len, MSP_SYNCRO_EXCERPT_CHARS);
        return;
    }

    sb_fmt(&sb, "HTTP %ld: ", status);
    {
        size_t prefix = sb.len;
        render_text_body(&sb, body, len, MSP_SYNCRO_EXCERPT_CHARS);
        if (sb.len == prefix) { /* markup without any text */
            sb_init(&sb, out, out_size);
            sb_status(&sb, status);
            sb_raw(&sb, " (no text in body)");
        }
    }
}

/* ------------------------------------------------------------------ permissions and hints */

static int is_id(const char *s, size_t n) {
    size_t i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

const char *msp_syncro_permission_for(const char *method, const char *resource_path) {
    const char *seg[4] = {0};
    size_t seglen[4] = {0};
    size_t nseg = 0, end;
    const char *p;
    int get, put, post;

    if (!method || !resource_path)
        return NULL;
    p = resource_path;
    while (*p == '/')
        p++;
    end = strcspn(p, "?#");
    while (end > 0 && p[end - 1] == '/')
        end--;
    while (end > 0 && nseg < 4) {
        size_t l = 0;
        while (l < end && p[l] != '/')
            l++;
        seg[nseg] = p;
        seglen[nseg++] = l;
        if (l == end)
            break;
        p += l + 1;
        end -= l + 1;
        while (end > 0 && *p == '/') {
            p++;
            end--;
        }
    }
    if (nseg == 0)
        return NULL;

    get = strcasecmp(method, "GET") == 0;
    put = strcasecmp(method, "PUT") == 0 || strcasecmp(method, "PATCH") == 0;
    post = strcasecmp(method, "POST") == 0;

#define SEG_IS(i, lit) (seglen[i] == sizeof(lit) - 1 && strncmp(seg[i], lit, sizeof(lit) - 1) == 0)
    if (SEG_IS(0, "customers")) {
        if (nseg == 1 && get)
            return "Customers - List/Search";
        if (nseg == 2 && get && is_id(seg[1], seglen[1]))
            return "Customers - View Detail";
    } else if (SEG_IS(0, "customer_assets")) {
        if (nseg == 1 && get)
            return "Assets - List/Search";
        if (nseg == 2 && is_id(seg[1], seglen[1])) {
            if (get)
                return "Assets - View Details";
            if (put)
                return "Assets - Edit";
        }
    } else if (SEG_IS(0, "contacts")) {
        if (nseg <= 2 && get)
            return "Customers - View Detail";
    } else if (SEG_IS(0, "tickets")) {
        if (nseg == 1 && get)
            return "Tickets - List/Search";
        if (nseg == 1 && post)
            return "Tickets - Create";
        if (nseg == 2 && get && is_id(seg[1], seglen[1]))
            return "Tickets - View Details";
        if (nseg == 2 && put && is_id(seg[1], seglen[1]))
            return "Tickets - Edit";
        if (nseg == 3 && post && is_id(seg[1], seglen[1]) &&
            (SEG_IS(2, "comment") || SEG_IS(2, "comments")))
            return "Tickets - Edit";
    } else if (SEG_IS(0, "schedules")) {
        if (get && (nseg == 1 || (nseg == 2 && is_id(seg[1], seglen[1]))))
            return "Recurring Invoices - List";
        /* PUT schedules/ID, PUT schedules/ID/line_items/LID, POST schedules/ID/add_line_item */
        if (nseg >= 2 && is_id(seg[1], seglen[1]) && (put || (post && nseg >= 3)))
            return "Recurring Invoices - Edit";
    }
#undef SEG_IS
    return NULL;
}

static int is_connect_error(int code) {
    switch (code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return 1;
    }
    return 0;
}

/*
 * "<vendor> GET /customer_assets" (the query string is never shown), then, when res is not an
 * HTTP answer, how the transport failed. @returns 1 when the description is complete (a
 * transport failure or no response), 0 when an HTTP answer follows.
 */
static int describe_head(sb_t *sb, const char *vendor, const msp_http_response_t *res,
                         const char *method, const char *path) {
    while (*path == '/')
        path++;
    sb_text(sb, vendor);
    sb_raw(sb, " ");
    sb_text(sb, method ? method : "?");
    sb_raw(sb, " /");
    sb_text_n(sb, path, strcspn(path, "?#"), 0);
    if (!res) {
        sb_raw(sb, " failed");
        return 1;
    }
    if (res->status != 0)
        return 0;
    const char *err = res->errstr[0] ? res->errstr : curl_easy_strerror((CURLcode)res->curl_code);
    if (res->curl_code == CURLE_OPERATION_TIMEDOUT)
        sb_raw(sb, " timed out: ");
    else if (res->curl_code == CURLE_ABORTED_BY_CALLBACK && strcmp(err, "cancelled") == 0) {
        sb_raw(sb, " was cancelled");
        return 1;
    } else if (is_connect_error(res->curl_code))
        sb_raw(sb, " could not connect: ");
    else
        sb_raw(sb, " failed: ");
    sb_text(sb, err);
    return 1;
}

char *msp_vendor_describe_transport(const char *vendor, const msp_http_response_t *res,
                                    const char *method, const char *path, char *out,
                                    size_t out_size) {
    sb_t sb;
    if (!out || out_size == 0)
        return out;
    sb_init(&sb, out, out_size);
    describe_head(&sb, vendor, res, method, path ? path : "");
    return out;
}

char *msp_syncro_describe(const msp_http_response_t *res, const char *method,
                          const char *resource_path, char *out, size_t out_size) {
    sb_t sb;
    const char *path = resource_path ? resource_path : "";
    char msg[512];

    if (!out || out_size == 0)
        return out;
    sb_init(&sb, out, out_size);
    while (*path == '/')
        path++;

    if (describe_head(&sb, "Syncro", res, method, path))
        return out;

    msp_syncro_error_message(res->status, res->body, res->body ? res->body_len : 0, msg,
                             sizeof(msg));
    sb_fmt(&sb, " answered %ld: ", res->status);
    sb_raw(&sb, msg);

    if (res->status == 401 || res->status == 403) {
        const char *perm = msp_syncro_permission_for(method, path);
        if (ci_contains(msg, "permission")) {
            if (perm) {
                sb_raw(&sb, " \xE2\x80\x94 the API key's group lacks the permission \"");
                sb_raw(&sb, perm);
                sb_raw(&sb, "\"");
            } else {
                sb_raw(&sb, " \xE2\x80\x94 the API key's group lacks a permission this call needs");
            }
        } else if (res->status == 401) {
            sb_raw(&sb, " \xE2\x80\x94 the API key is invalid, expired or revoked");
        } else {
            sb_raw(&sb, " \xE2\x80\x94 access denied; check the API key's group permissions");
            if (perm) {
                sb_raw(&sb, " (\"");
                sb_raw(&sb, perm);
                sb_raw(&sb, "\")");
            }
        }
    } else if (res->status == 404 && strncmp(path, "me", 2) == 0 &&
               (path[2] == '\0' || path[2] == '?' || path[2] == '/')) {
        sb_raw(&sb, " \xE2\x80\x94 check the Syncro subdomain");
    } else if (res->status == 429) {
        sb_raw(&sb, " \xE2\x80\x94 Syncro's rate limit (180 requests per minute) was hit");
        if (res->retry_after_ms >= 0)
            sb_fmt(&sb, "; it asked to wait %ld s", (long)((res->retry_after_ms + 999) / 1000));
    }
    return out;
}

/* ------------------------------------------------------------------ PUT /customer_assets/{id} */

json_t *msp_syncro_asset_put_body(const json_t *asset, json_t *properties, char *errstr,
                                  size_t errstr_size) {
    const json_t *a = json_object_get(asset, "asset");
    const json_t *name;
    json_t *body;

    if (!json_is_object(a))
        a = asset;
    name = json_object_get(a, "name");
    if (!json_is_string(name) || json_string_length(name) == 0) {
        json_decref(properties);
        msp_set_err(errstr, errstr_size, "%s",
                    "the Syncro asset has no name, and Syncro requires one to update an asset");
        return NULL;
    }
    body = json_pack("{s:O, s:o}", "name", name, "properties",
                     properties ? properties : json_object());
    if (!body)
        msp_set_err(errstr, errstr_size, "%s", "out of memory");
    return body;
}

/* ------------------------------------------------------------------ GET /me */

int msp_syncro_me_grants(const json_t *perms, const char *area, const char *flag) {
    json_t *v = json_object_get(json_object_get(perms, area), flag);
    if (json_is_true(v))
        return 1;
    if (json_is_string(v)) /* Syncro sends some flags as "true"/"false" */
        return strcmp(json_string_value(v), "true") == 0;
    if (json_is_integer(v))
        return json_integer_value(v) != 0;
    return 0;
}

json_t *msp_syncro_me_permissions(const char *body, size_t len, char *errstr, size_t errstr_size) {
    json_t *root = body && len ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;
    json_t *perms = json_object_get(root, "permissions");
    if (!json_is_object(root))
        set_err(errstr, errstr_size, "%s", "the Syncro /me answer is not a JSON object");
    else if (!json_is_object(perms))
        set_err(errstr, errstr_size, "%s", "the Syncro /me answer has no permissions object");
    perms = json_is_object(perms) ? json_incref(perms) : NULL;
    json_decref(root);
    return perms;
}

int msp_syncro_probe_for(const char *permission, msp_syncro_probe_t *out) {
    static const struct {
        const char *permission;
        msp_syncro_probe_t probe;
    } probes[] = {
        {"Customers - List/Search", {"customer", "read", NULL, NULL, NULL}},
        {"Assets - List/Search", {"asset", "read", NULL, NULL, NULL}},
        {"Tickets - List/Search", {"ticket", "read", NULL, NULL, NULL}},
        {"Customers - View Detail", {NULL, NULL, "GET", "customers/0", NULL}},
        {"Assets - View Details", {NULL, NULL, "GET", "customer_assets/0", NULL}},
        {"Assets - Edit", {NULL, NULL, "PUT", "customer_assets/0", "{}"}},
        {"Tickets - Create", {NULL, NULL, "POST", "tickets", "{}"}},
        {"Tickets - Edit", {NULL, NULL, "PUT", "tickets/0", "{}"}},
        {"Tickets - View Details", {NULL, NULL, "GET", "tickets/0", NULL}},
        {"Recurring Invoices - List", {NULL, NULL, "GET", "schedules/0", NULL}},
        {"Recurring Invoices - Edit", {NULL, NULL, "PUT", "schedules/0", "{}"}},
    };
    for (size_t i = 0; permission && i < sizeof(probes) / sizeof(probes[0]); i++)
        if (!strcmp(probes[i].permission, permission)) {
            *out = probes[i].probe;
            return 0;
        }
    return -1;
}
