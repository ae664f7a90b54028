/*
 * query.c — the URL query parser described in query.h.
 *
 * One walk over the components serves both the check and the lookup, so the router's verdict
 * ("this query is well formed") and the handlers' reading of it cannot disagree.
 */
#include "query.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ECHO_MAX 64 /* bytes of a bad component quoted back in the error */

/* The byte a "%XX" escape at s (n bytes left) stands for, or -1 when it is not one. */
static int escape_byte(const char *s, size_t n) {
    if (n < 3 || !isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
        return -1;
    char hex[3] = {s[1], s[2], '\0'};
    return (int)strtol(hex, NULL, 16);
}

/* Decode s[0..n) into out (room for n + 1 bytes). @returns 0, or -1 on a bad escape or NUL. */
static int decode(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int b = escape_byte(s + i, n - i);
            if (b <= 0)  /* not an escape, or an encoded NUL that would cut the C string */
                return -1;
            c = (char)b;
            i += 2;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/*
 * Walk the components; for each one decode key and value into buf (room for the whole query)
 * and, when `name` is given and matches, copy the value out and stop.
 * @returns 1 found, 0 not found (or checked), -1 malformed (err set).
 */
static int walk(const char *query, const char *name, char **value, char *err,
                size_t err_size) {
    if (value)
        *value = NULL;
    if (!query || !*query)
        return 0;
    size_t qlen = strlen(query);
    char *key = malloc(qlen + 1), *val = malloc(qlen + 1);
    int rc = 0;
    if (!key || !val) {
        snprintf(err, err_size, "out of memory");
        rc = -1;
        goto out;
    }
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            if (decode(p, klen, key) != 0 ||
                decode(eq ? eq + 1 : p + len, eq ? len - klen - 1 : 0, val) != 0) {
                snprintf(err, err_size,
                         "malformed query parameter \"%.*s\": invalid percent-encoding (a '%%' "
                         "must be followed by two hex digits, and %%00 is not allowed)",
                         (int)(len < ECHO_MAX ? len : ECHO_MAX), p);
                rc = -1;
                goto out;
            }
            if (name && strcmp(key, name) == 0) {
                *value = strdup(val);
                if (!*value) {
                    snprintf(err, err_size, "out of memory");
                    rc = -1;
                } else {
                    rc = 1;
                }
                goto out;
            }
        }
        p += len;
        if (*p == '&')
            p++;
    }
out:
    free(key);
    free(val);
    return rc;
}

int gw_query_check(const char *query, char *err, size_t err_size) {
    return walk(query, NULL, NULL, err, err_size) < 0 ? -1 : 0;
}

int gw_query_get(const char *query, const char *name, char **value, char *err,
                 size_t err_size) {
    return walk(query, name, value, err, err_size);
}
