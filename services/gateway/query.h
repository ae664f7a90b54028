/*
 * query.h — the gateway's URL query parser (pure: no libevent, no allocation but the returned
 * value), shared by the router, which refuses a malformed query with 400 before any route runs,
 * and by the handlers, which look up their parameters.
 *
 * Grammar (the WHATWG application/x-www-form-urlencoded reading, strict about escapes):
 *   - components are separated by '&'; empty components ("a=1&&b=2", a trailing '&') are skipped;
 *   - a component without '=' is a key with an empty value: "include_gone" = "include_gone=";
 *   - keys and values are decoded: '+' is a space, %XX a byte; a '%' not followed by two hex
 *     digits, and an encoded NUL (%00), make the whole query malformed;
 *   - a parameter given twice: the first occurrence wins.
 * Before this parser the gateway used evhttp_parse_query_str, which fails on a component without
 * '=' and so made every parameter of such a query vanish (a filter silently ignored).
 */
#ifndef MSPSYNC_GATEWAY_QUERY_H
#define MSPSYNC_GATEWAY_QUERY_H

#include <stddef.h>

/**
 * @brief Check a raw query string (the part after '?', still encoded).
 * @returns 0, or -1 with a message naming the first malformed component in err.
 */
int gw_query_check(const char *query, char *err, size_t err_size);

/**
 * @brief Look up parameter `name` (compared after decoding) in a raw query string.
 * @returns 1 with *value set (new string, caller frees), 0 when absent (*value = NULL), or -1
 *          when a component up to the first `name` is malformed (*value = NULL; err as for
 *          gw_query_check). The router has checked the whole query before any handler asks.
 */
int gw_query_get(const char *query, const char *name, char **value, char *err,
                 size_t err_size);

#endif
