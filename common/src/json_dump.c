/* json_dump.c — see json_dump.h. */
#include "mspsync/json_dump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/utf8.h"

#define DUMP_MAX_DEPTH 2048   /* deeper trees go to jansson (which refuses what it must) */

typedef struct {
    char  *b;
    size_t n, cap;
    int    failed;
    int    too_deep;   /* the tree is left to jansson */
} out_t;

/* One scratch buffer per thread, kept between calls: the result is copied out exactly sized. */
static __thread out_t scratch;

static int reserve(out_t *o, size_t more)
{
    if (o->failed)
        return -1;
    if (o->n + more <= o->cap)
        return 0;
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->n + more)
        cap *= 2;
    char *b = realloc(o->b, cap);
    if (!b) {
        o->failed = 1;
        return -1;
    }
    o->b   = b;
    o->cap = cap;
    return 0;
}

static void put(out_t *o, const char *s, size_t n)
{
    if (reserve(o, n) == 0) {
        memcpy(o->b + o->n, s, n);
        o->n += n;
    }
}

static void put_c(out_t *o, char c)
{
    if (reserve(o, 1) == 0)
        o->b[o->n++] = c;
}

/* jansson's dump_string: '"', '\\' and controls escaped (\b \f \n \r \t, else \u00XX upper-case),
 * everything else (valid UTF-8) as it is. */
static void put_string(out_t *o, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    put_c(o, '"');
    while (p < end) {
        unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\') {
            if (c < 0x80) {
                p++;
                continue;
            }
            size_t n = msp_utf8_char_len(p, (size_t)(end - p));
            if (n == 0) {
                o->failed = 1;   /* jansson refuses to dump invalid UTF-8 */
                return;
            }
            p += n;
            continue;
        }
        put(o, (const char *)run, (size_t)(p - run));
        char        seq[8];
        const char *t;
        switch (c) {
        case '"': t = "\\\""; break;
        case '\\': t = "\\\\"; break;
        case '\b': t = "\\b"; break;
        case '\f': t = "\\f"; break;
        case '\n': t = "\\n"; break;
        case '\r': t = "\\r"; break;
        case '\t': t = "\\t"; break;
        default: snprintf(seq, sizeof seq, "\\u%04X", (unsigned)c); t = seq; break;
        }
        put(o, t, strlen(t));
        run = ++p;
    }
    put(o, (const char *)run, (size_t)(p - run));
    put_c(o, '"');
}

typedef struct {
    const char *key;
    size_t      len;
    json_t     *value;
} member_t;

/* jansson 2.14's compare_keys: bytes, then length. */
static int cmp_member(const member_t *a, const member_t *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int    r = memcmp(a->key, b->key, n);
    return r ? r : (a->len > b->len) - (a->len < b->len);
}

static void dump(out_t *o, const json_t *v, size_t flags, int depth);

static void dump_object(out_t *o, const json_t *v, size_t flags, int depth)
{
    size_t    n = json_object_size(v), i = 0;
    member_t  small[32];
    member_t *m = n <= 32 ? small : malloc(n * sizeof *m);
    if (!m) {
        o->failed = 1;
        return;
    }
    for (void *it = json_object_iter((json_t *)v); it && i < n;
         it = json_object_iter_next((json_t *)v, it), i++) {
        m[i].key   = json_object_iter_key(it);
        m[i].len   = json_object_iter_key_len(it);
        m[i].value = json_object_iter_value(it);
    }
    n = i;
    if (flags & JSON_SORT_KEYS)   /* insertion sort: records have a few dozen members at most */
        for (size_t a = 1; a < n; a++) {
            member_t x = m[a];
            size_t   b = a;
            for (; b > 0 && cmp_member(&m[b - 1], &x) > 0; b--)
                m[b] = m[b - 1];
            m[b] = x;
        }
    put_c(o, '{');
    for (i = 0; i < n && !o->failed; i++) {
        if (i)
            put_c(o, ',');
        put_string(o, m[i].key, m[i].len);
        put_c(o, ':');
        dump(o, m[i].value, flags, depth + 1);
    }
    put_c(o, '}');
    if (m != small)
        free(m);
}

static void dump_real(out_t *o, const json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY);   /* jansson's own number formatting */
    if (!s) {
        o->failed = 1;
        return;
    }
    put(o, s, strlen(s));
    json_free_t f = NULL;
    json_get_alloc_funcs(NULL, &f);
    f(s);
}

static void dump(out_t *o, const json_t *v, size_t flags, int depth)
{
    char num[32];
    if (depth > DUMP_MAX_DEPTH) {
        o->failed = o->too_deep = 1;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: dump_object(o, v, flags, depth); break;
    case JSON_ARRAY:
        put_c(o, '[');
        for (size_t i = 0; i < json_array_size(v) && !o->failed; i++) {
            if (i)
                put_c(o, ',');
            dump(o, json_array_get(v, i), flags, depth + 1);
        }
        put_c(o, ']');
        break;
    case JSON_STRING: put_string(o, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER:
        put(o, num, (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                                     json_integer_value(v)));
        break;
    case JSON_REAL: dump_real(o, v); break;
    case JSON_TRUE: put(o, "true", 4); break;
    case JSON_FALSE: put(o, "false", 5); break;
    case JSON_NULL: put(o, "null", 4); break;
    }
}

char *msp_json_dumps(const json_t *v, size_t flags)
{
    const size_t ours = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
    if (!v || !(flags & JSON_COMPACT) || (flags & ~ours))
        return json_dumps(v, flags);
    if (!(flags & JSON_ENCODE_ANY) && !json_is_object(v) && !json_is_array(v))
        return NULL;
    out_t *o = &scratch;
    o->n      = 0;
    o->failed = o->too_deep = 0;
    dump(o, v, flags, 0);
    if (o->too_deep)
        return json_dumps(v, flags);
    json_malloc_t alloc = NULL;
    json_get_alloc_funcs(&alloc, NULL);
    char *s = o->failed ? NULL : alloc(o->n + 1);
    if (s) {
        memcpy(s, o->b, o->n);
        s[o->n] = '\0';
    }
    if (o->cap > (1u << 22)) {   /* don't keep a huge one-off buffer */
        free(o->b);
        *o = (out_t){0};
    }
    return s;
}

void msp_json_dumps_thread_done(void) {
    free(scratch.b);
    scratch = (out_t){0};
}
