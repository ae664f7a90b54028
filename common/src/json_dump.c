/* json_dump.c — see json_dump.h. */
#include "mspsync/json_dump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/json_plain.h"
#include "mspsync/utf8.h"

#define DUMP_MAX_DEPTH 2048   /* deeper trees go to jansson (which refuses what it must) */

typedef struct {
    char  *b;
    size_t n, cap;
    int    failed;
    int    too_deep;   /* the tree is left to jansson */
    const char *skip;  /* a top-level member left out (msp_json_dump_view), or NULL */
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
        p += msp_json_plain_len(p, (size_t)(end - p)); /* written as it is */
        if (p >= end)
            break;
        unsigned char c = *p; /* '"', '\\', a control character or a non-ASCII byte */
        if (c >= 0x80) {
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
         it = json_object_iter_next((json_t *)v, it)) {
        const char *key = json_object_iter_key(it);
        size_t len = json_object_iter_key_len(it);
        if (depth == 0 && o->skip && len == strlen(o->skip) && memcmp(key, o->skip, len) == 0)
            continue; /* left out (msp_json_dump_view) */
        m[i].key = key;
        m[i].len = len;
        m[i].value = json_object_iter_value(it);
        i++;
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

/* "%lld" without snprintf: every record has a few integers. */
static void put_int(out_t *o, json_int_t v) {
    char tmp[24];
    int i = (int)sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    put(o, tmp + i, sizeof tmp - (size_t)i);
}

static void dump(out_t *o, const json_t *v, size_t flags, int depth) {
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
    case JSON_INTEGER: put_int(o, json_integer_value(v)); break;
    case JSON_REAL: dump_real(o, v); break;
    case JSON_TRUE: put(o, "true", 4); break;
    case JSON_FALSE: put(o, "false", 5); break;
    case JSON_NULL: put(o, "null", 4); break;
    }
}

static const size_t OURS = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;

/* Dump v into the scratch buffer. @returns 0, 1 (left to jansson: too deep) or -1. */
static int dump_scratch(const json_t *v, size_t flags, const char *skip) {
    out_t *o = &scratch;
    o->n = 0;
    o->failed = o->too_deep = 0;
    o->skip = skip;
    dump(o, v, flags, 0);
    o->skip = NULL;
    return o->too_deep ? 1 : o->failed ? -1 : 0;
}

/* Give back a huge one-off buffer. */
static void scratch_trim(void) {
    if (scratch.cap > (1u << 22)) {
        free(scratch.b);
        scratch = (out_t){0};
    }
}

const char *msp_json_dump_view(const json_t *v, size_t flags, const char *skip, size_t *len) {
    if (!v || !len || !(flags & JSON_COMPACT) || (flags & ~OURS))
        return NULL;
    if (!(flags & JSON_ENCODE_ANY) && !json_is_object(v) && !json_is_array(v))
        return NULL;
    scratch_trim(); /* the previous view is over */
    if (dump_scratch(v, flags, skip) != 0 || reserve(&scratch, 1) < 0)
        return NULL;
    scratch.b[scratch.n] = '\0';
    *len = scratch.n;
    return scratch.b;
}

char *msp_json_dumps(const json_t *v, size_t flags)
{
    if (!v || !(flags & JSON_COMPACT) || (flags & ~OURS))
        return json_dumps(v, flags);
    if (!(flags & JSON_ENCODE_ANY) && !json_is_object(v) && !json_is_array(v))
        return NULL;
    out_t *o = &scratch;
    if (dump_scratch(v, flags, NULL) == 1)
        return json_dumps(v, flags);
    json_malloc_t alloc = NULL;
    json_get_alloc_funcs(&alloc, NULL);
    char *s = o->failed ? NULL : alloc(o->n + 1);
    if (s) {
        memcpy(s, o->b, o->n);
        s[o->n] = '\0';
    }
    scratch_trim();
    return s;
}

void msp_json_dumps_thread_done(void) {
    free(scratch.b);
    scratch = (out_t){0};
}
