/* json_pick.c — see json_pick.h. */
#include "mspsync/json_pick.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/json_plain.h"
#include "mspsync/utf8.h"

#define PICK_MAX_DEPTH 2048   /* jansson's JSON_PARSER_MAX_DEPTH */
/* Containers deeper than this are built by jansson, whose frames are smaller: a fuzzer's
 * 2,000-deep member stays within a thread's stack. */
#define BUILD_MAX_DEPTH 32

typedef struct {
    const unsigned char *start, *p, *end;
    json_error_t        *err;
} scan_t;

/* Fill err for the byte at pos, with line and column counted as jansson counts them (1-based
 * line; column in characters, 0 before the first of a line). */
static int fail_at(scan_t *s, const unsigned char *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(scan_t *s, const unsigned char *pos, const char *fmt, ...)
{
    if (!s->err)
        return -1;
    int line = 1, column = 0;
    for (const unsigned char *q = s->start; q < pos && q < s->end; q++) {
        if (*q == '\n') {
            line++;
            column = 0;
        } else if ((*q & 0xC0) != 0x80) {
            column++;
        }
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err->text, sizeof s->err->text, fmt, ap);
    va_end(ap);
    snprintf(s->err->source, sizeof s->err->source, "<buffer>");
    s->err->line     = line;
    s->err->column   = column;
    s->err->position = (int)(pos - s->start);
    return -1;
}

static void skip_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* A string from its opening quote; leaves p after the closing one. *escaped: it had a '\'. */
static int skip_string(scan_t *s, int *escaped)
{
    const unsigned char *open = s->p++;
    *escaped = 0;
    while (s->p < s->end) {
        s->p += msp_json_plain_len(s->p, (size_t)(s->end - s->p)); /* the run of plain text */
        if (s->p >= s->end)
            break;
        unsigned char c = *s->p; /* '"', '\\', a control character or a non-ASCII byte */
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return fail_at(s, s->p, "control character 0x%x in string", c);
        if (c >= 0x80) {
            size_t n = msp_utf8_char_len(s->p, (size_t)(s->end - s->p));
            if (n == 0)
                return fail_at(s, s->p, "unable to decode byte 0x%x", c);
            s->p += n;
            continue;
        }
        *escaped = 1;
        if (s->end - s->p < 2)
            break;
        c = s->p[1];
        if (strchr("\"\\/bfnrt", c) && c) {
            s->p += 2;
            continue;
        }
        unsigned cp, lo;
        if (c != 'u' || s->end - s->p < 6 || hex4(s->p + 2, &cp) < 0)
            return fail_at(s, s->p, "invalid escape");
        if (cp == 0)
            return fail_at(s, s->p, "\\u0000 is not allowed without JSON_ALLOW_NUL");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail_at(s, s->p, "invalid Unicode '\\u%04X'", cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s->end - s->p < 12 || s->p[6] != '\\' || s->p[7] != 'u' ||
                hex4(s->p + 8, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                return fail_at(s, s->p, "invalid Unicode '\\u%04X'", cp);
            s->p += 12;
            continue;
        }
        s->p += 6;
    }
    return fail_at(s, open, "premature end of input");
}

static int digits(scan_t *s)
{
    const unsigned char *from = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > from ? 0 : -1;
}

/* RFC 8259's number grammar (the range is not checked: see json_pick.h). */
static int skip_number(scan_t *s)
{
    const unsigned char *from = s->p;
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (digits(s) < 0)
        return fail_at(s, from, "invalid token");
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digits(s) < 0)
            return fail_at(s, from, "invalid token");
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits(s) < 0)
            return fail_at(s, from, "invalid token");
    }
    /* "01", "1x": what follows a number must end it */
    if (s->p < s->end && ((*s->p >= '0' && *s->p <= '9') || (*s->p >= 'a' && *s->p <= 'z') ||
                          (*s->p >= 'A' && *s->p <= 'Z') || *s->p == '.' || *s->p == '_'))
        return fail_at(s, from, "invalid token");
    return 0;
}

static int skip_word(scan_t *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return fail_at(s, s->p, "invalid token");
    s->p += n;
    return 0;
}

static int skip_value(scan_t *s, int depth);

/* At a container's opening byte: checks the depth and steps in. @returns 1 when items follow,
 * 0 when it was empty (its close consumed), -1 (err set) too deep. */
static int enter(scan_t *s, int depth, unsigned char close) {
    if (depth >= PICK_MAX_DEPTH)
        return fail_at(s, s->p, "maximum parsing depth reached");
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    return 1;
}

/* enter() for a container c being built: on an error c is released and set to NULL (also when
 * it could not be made). @returns as enter(). */
static int enter_built(scan_t *s, json_t **c, int depth, unsigned char close) {
    int in = *c ? enter(s, depth, close) : -1;
    if (in < 0) {
        json_decref(*c);
        *c = NULL;
    }
    return in;
}

/* After a member or an element: 1 after a ',' (another follows), 0 after the container's close,
 * -1 (err set) at anything else. */
static int next_item(scan_t *s, unsigned char close) {
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
        s->p++;
        skip_ws(s);
        return 1;
    }
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    return fail_at(s, s->p, "',' or '%c' expected", close);
}

static int skip_container(scan_t *s, int depth) {
    unsigned char close = *s->p == '{' ? '}' : ']';
    int esc, in = enter(s, depth, close);
    if (in <= 0)
        return in;
    for (;;) {
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"')
                return fail_at(s, s->p, "string or '}' expected");
            if (skip_string(s, &esc) < 0)
                return -1;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return fail_at(s, s->p, "':' expected");
            s->p++;
        }
        if (skip_value(s, depth + 1) < 0)
            return -1;
        int more = next_item(s, close);
        if (more <= 0)
            return more;
    }
}

/* One value after optional white space. */
static int skip_value(scan_t *s, int depth)
{
    int esc;
    skip_ws(s);
    if (s->p >= s->end)
        return fail_at(s, s->p, "premature end of input");
    switch (*s->p) {
    case '{':
    case '[': return skip_container(s, depth);
    case '"': return skip_string(s, &esc);
    case 't': return skip_word(s, "true");
    case 'f': return skip_word(s, "false");
    case 'n': return skip_word(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return skip_number(s);
        return fail_at(s, s->p, "invalid token");
    }
}

/* jansson's verdict on bytes [from, to), with its error moved to where they sit in the text. */
static json_t *load_span(scan_t *s, const unsigned char *from, const unsigned char *to)
{
    json_error_t e;
    json_t      *v = json_loadb((const char *)from, (size_t)(to - from), JSON_DECODE_ANY, &e);
    if (!v)
        fail_at(s, from + (e.position > 0 ? e.position : 0), "%s", e.text);
    return v;
}

/*
 * The value at [from, to), which skip_value has already checked: strings without escapes,
 * integers and literals are made directly (the envelope and the picked members are mostly
 * those, and a json_loadb per member costs a lexer each); anything else goes to jansson.
 */
static json_t *load_value(scan_t *s, const unsigned char *from, const unsigned char *to) {
    size_t n = (size_t)(to - from);
    switch (*from) {
    case '"':
        /* skip_string checked the UTF-8 and the control characters: no escape, no decoding */
        if (!memchr(from + 1, '\\', n - 2))
            return json_stringn_nocheck((const char *)from + 1, n - 2);
        break;
    case 't': return json_true();
    case 'f': return json_false();
    case 'n': return json_null();
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': {
        char digits[24];
        if (n >= sizeof digits || memchr(from, '.', n) || memchr(from, 'e', n) ||
            memchr(from, 'E', n))
            break; /* a real, or an integer jansson refuses as too big */
        memcpy(digits, from, n);
        digits[n] = '\0';
        errno = 0;
        long long v = strtoll(digits, NULL, 10);
        if (errno == ERANGE)
            break; /* jansson's "too big integer" */
        return json_integer((json_int_t)v);
    }
    default: break; /* objects and arrays */
    }
    return load_span(s, from, to);
}

msp_pick_t msp_pick_names(const char *name, void *arg)
{
    for (const char *const *n = arg; n && *n; n++)
        if (strcmp(*n, name) == 0)
            return MSP_PICK_KEEP;
    return MSP_PICK_SKIP;
}

/* The member name of the string [from, to) (quotes included), NUL-terminated, in buf or
 * malloc'd (*heap). NULL when out of memory. */
static const char *member_name(scan_t *s, const unsigned char *from, const unsigned char *to,
                               int escaped, char *buf, size_t size, char **heap)
{
    *heap = NULL;
    if (escaped) {
        json_t *str = load_span(s, from, to);
        if (!str)
            return NULL;
        *heap = strdup(json_string_value(str));
        json_decref(str);
        return *heap;
    }
    size_t n = (size_t)(to - from) - 2;
    char  *d = n < size ? buf : (*heap = malloc(n + 1));
    if (!d)
        return NULL;
    memcpy(d, from + 1, n);
    d[n] = '\0';
    return d;
}

static json_t *pick_object(scan_t *s, msp_json_pick_t *pick, int depth);

static json_t *build_value(scan_t *s, int depth);

/* The array from its '[' at depth, built whole, as skip_container checks it. */
static json_t *build_array(scan_t *s, int depth) {
    json_t *arr = json_array();
    if (enter_built(s, &arr, depth, ']') <= 0)
        return arr; /* empty, or NULL */
    for (;;) {
        json_t *v = build_value(s, depth + 1);
        if (!v || json_array_append_new(arr, v) < 0)
            break;
        int more = next_item(s, ']');
        if (more == 0)
            return arr;
        if (more < 0)
            break;
    }
    json_decref(arr);
    return NULL;
}

/*
 * One value after optional white space, built whole: containers by our scanner (jansson's lexer
 * costs ~100 instructions a byte, most of a record's parse when a kept member is an object),
 * scalars by load_value. Same checks, same errors as skip_value.
 */
static json_t *build_value(scan_t *s, int depth) {
    skip_ws(s);
    if (s->p >= s->end) {
        fail_at(s, s->p, "premature end of input");
        return NULL;
    }
    if (*s->p == '{' && depth < BUILD_MAX_DEPTH)
        return pick_object(s, NULL, depth);
    if (*s->p == '[' && depth < BUILD_MAX_DEPTH)
        return build_array(s, depth);
    const unsigned char *from = s->p;
    return skip_value(s, depth) < 0 ? NULL : load_value(s, from, s->p);
}

/* The object from its '{' at depth (0: the text's): members picked, others checked; with pick
 * NULL, every member kept. */
static json_t *pick_object(scan_t *s, msp_json_pick_t *pick, int depth) {
    json_t *obj = json_object();
    char    small[256];
    if (enter_built(s, &obj, depth, '}') <= 0)
        return obj; /* empty, or NULL */
    for (;;) {
        const unsigned char *kfrom = s->p, *vfrom;
        char                *heap;
        int                  esc;
        if (s->p >= s->end || *s->p != '"') {
            fail_at(s, s->p, "string or '}' expected");
            goto fail;
        }
        if (skip_string(s, &esc) < 0)
            goto fail;
        const unsigned char *kto = s->p;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':') {
            fail_at(s, s->p, "':' expected");
            goto fail;
        }
        s->p++;
        skip_ws(s);
        vfrom = s->p;
        const char *name = member_name(s, kfrom, kto, esc, small, sizeof small, &heap);
        if (!name)
            goto fail;
        msp_pick_t want = MSP_PICK_KEEP;
        if (pick && pick->want) {
            pick->built = obj;
            want = pick->want(name, pick->arg);
        }
        json_t *v = NULL;
        if (want == MSP_PICK_NESTED && vfrom < s->end && *vfrom == '{') {
            v = pick_object(s, pick->nested, depth + 1);
            if (!v) {
                free(heap);
                goto fail;
            }
            pick->span     = (const char *)vfrom;
            pick->span_len = (size_t)(s->p - vfrom);
        } else if (want == MSP_PICK_KEEP) {
            if (!(v = build_value(s, depth + 1))) {
                free(heap);
                goto fail;
            }
        } else {
            if (skip_value(s, depth + 1) < 0) {
                free(heap);
                goto fail;
            }
            if (want == MSP_PICK_SPAN || want == MSP_PICK_NESTED) {
                pick->span = (const char *)vfrom;
                pick->span_len = (size_t)(s->p - vfrom);
            }
            if (want == MSP_PICK_NESTED) {
                if (!(v = load_value(s, vfrom, s->p))) {
                    free(heap);
                    goto fail;
                }
            }
        }
        /* the name's UTF-8 was checked by skip_string (or jansson, escaped): no second check */
        if (v && json_object_setn_new_nocheck(obj, name, strlen(name), v) < 0) {
            free(heap);
            goto fail;
        }
        free(heap);
        int more = next_item(s, '}');
        if (more == 0)
            return obj;
        if (more < 0)
            goto fail;
    }
fail:
    json_decref(obj);
    return NULL;
}

json_t *msp_json_pick(const char *buf, size_t len, msp_json_pick_t *pick, json_error_t *err)
{
    scan_t s = {(const unsigned char *)buf, (const unsigned char *)buf,
                (const unsigned char *)buf + len, err};
    if (pick) {
        pick->span     = NULL;
        pick->span_len = 0;
    }
    if (!buf) {
        fail_at(&s, s.p, "wrong arguments");
        return NULL;
    }
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return load_span(&s, s.start, s.end);   /* not an object: jansson whole */
    json_t *v = pick_object(&s, pick, 0);
    if (!v)
        return NULL;
    skip_ws(&s);
    if (s.p < s.end) {
        fail_at(&s, s.p, "end of file expected");
        json_decref(v);
        return NULL;
    }
    return v;
}

int msp_json_flat(const char *buf, size_t len, msp_json_member_t *out, int max) {
    scan_t s = {(const unsigned char *)buf, (const unsigned char *)buf,
                (const unsigned char *)buf + len, NULL}; /* no err: a decline, not an error */
    int n = 0, esc;
    if (!buf)
        return -1;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return -1;
    s.p++;
    skip_ws(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
        goto end;
    }
    for (;;) {
        const unsigned char *from = s.p;
        if (n == max || s.p >= s.end || *s.p != '"' || skip_string(&s, &esc) < 0 || esc)
            return -1;
        out[n].name = (const char *)from + 1;
        out[n].name_len = (size_t)(s.p - from) - 2;
        for (int i = 0; i < n; i++) /* JSON_REJECT_DUPLICATES; max is small */
            if (out[i].name_len == out[n].name_len &&
                memcmp(out[i].name, out[n].name, out[n].name_len) == 0)
                return -1;
        skip_ws(&s);
        if (s.p >= s.end || *s.p != ':')
            return -1;
        s.p++;
        skip_ws(&s);
        from = s.p;
        if (s.p < s.end && *s.p == 'n') {
            if (skip_word(&s, "null") < 0)
                return -1;
            out[n].value = NULL;
            out[n].value_len = 0;
        } else {
            if (s.p >= s.end || *s.p != '"' || skip_string(&s, &esc) < 0 || esc)
                return -1;
            out[n].value = (const char *)from + 1;
            out[n].value_len = (size_t)(s.p - from) - 2;
        }
        n++;
        skip_ws(&s);
        if (s.p < s.end && *s.p == ',') {
            s.p++;
            skip_ws(&s);
            continue;
        }
        if (s.p < s.end && *s.p == '}') {
            s.p++;
            break;
        }
        return -1;
    }
end:
    skip_ws(&s);
    return s.p == s.end ? n : -1;
}
