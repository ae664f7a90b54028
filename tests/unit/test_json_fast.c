/*
 * test_json_fast.c — msp_json_pick, msp_json_flat and msp_json_dumps against jansson itself.
 *
 * Both are shortcuts whose contract is "what jansson would do": the same verdict on any text
 * (valid or not, cut anywhere, bytes flipped), the same members where kept, the same bytes when
 * dumping (fingerprints are hashes of dumps). So every case here is checked against jansson on
 * the same input, over generated trees and thousands of mutated texts from a fixed seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/json_dump.h"
#include "mspsync/json_pick.h"
#include "mspsync/json_plain.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Strings that exercise escaping: controls, quotes, backslash, slash, DEL, 2-4 byte UTF-8. */
static json_t *rand_string(void)
{
    static const char *const parts[] = {"a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\x01",
                                        "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80", "\b", "\f", "\r", "key", "0"};
    char buf[64] = "";
    for (unsigned i = 0, n = rnd(8); i < n; i++)
        strcat(buf, parts[rnd(sizeof parts / sizeof *parts)]);
    return json_string(buf);
}

static json_t *rand_tree(int depth)
{
    switch (rnd(depth > 3 ? 6 : 8)) {
    case 0: return rand_string();
    case 1: {
        static const json_int_t ints[] = {0, 1, -1, 42, INT64_MAX, INT64_MIN, 1234567890123LL};
        return json_integer(ints[rnd(7)]);
    }
    case 2: {
        static const double reals[] = {0.5, -2.25, 1e300, 1.0, 3.14159, -0.0, 1e-7};
        return json_real(reals[rnd(7)]);
    }
    case 3: return json_true();
    case 4: return json_false();
    case 5: return json_null();
    case 6: {
        json_t *a = json_array();
        for (unsigned i = 0, n = rnd(5); i < n; i++)
            json_array_append_new(a, rand_tree(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = 0, n = rnd(7); i < n; i++) {
            json_t *k = rand_string();
            json_object_set_new(o, json_string_value(k), rand_tree(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

/* The eight-at-a-time search finds what a byte loop finds, at every length and alignment, with
 * the special byte anywhere and plain bytes next to every threshold (0x1f/0x20, 0x7f/0x80). */
static void plain_len_agrees_with_the_byte_rule(void **state) {
    (void)state;
    static const unsigned char edge[] = {0x00, 0x1f, 0x20, 0x21, '"',  '#',  '[',  '\\',
                                         ']',  0x7e, 0x7f, 0x80, 0xa0, 0xc3, 0xff, 'a'};
    unsigned char buf[64];
    for (int i = 0; i < 200000; i++) {
        size_t off = rnd(8), n = rnd(40);
        for (size_t k = 0; k < off + n; k++)
            buf[k] = rnd(4) ? (unsigned char)(0x20 + rnd(0x60)) : edge[rnd(sizeof edge)];
        size_t want = 0;
        while (want < n && buf[off + want] >= 0x20 && buf[off + want] < 0x80 &&
               buf[off + want] != '"' && buf[off + want] != '\\')
            want++;
        size_t got = msp_json_plain_len(buf + off, n);
        if (got != want)
            fail_msg("case %d: %zu plain bytes, found %zu", i, want, got);
    }
}

static void dumps_are_byte_identical_to_jansson(void **state)
{
    (void)state;
    static const size_t flags[] = {JSON_COMPACT, JSON_COMPACT | JSON_SORT_KEYS,
                                   JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY,
                                   JSON_COMPACT | JSON_ENCODE_ANY, JSON_INDENT(2)};
    for (int i = 0; i < 3000; i++) {
        json_t *t = rand_tree(0);
        for (size_t f = 0; f < sizeof flags / sizeof *flags; f++) {
            char *want = json_dumps(t, flags[f]), *got = msp_json_dumps(t, flags[f]);
            if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0))
                fail_msg("tree %d flags %zx: jansson %s, ours %s", i, flags[f],
                         want ? want : "(null)", got ? got : "(null)");
            free(want);
            free(got);
        }
        json_decref(t);
    }
}

static void dumps_refuse_what_jansson_refuses(void **state)
{
    (void)state;
    json_t *bad = json_object();
    json_object_set_new(bad, "k", json_stringn_nocheck("\xc3(", 2));   /* invalid UTF-8 */
    assert_null(json_dumps(bad, JSON_COMPACT));
    assert_null(msp_json_dumps(bad, JSON_COMPACT));
    json_decref(bad);
    json_t *s = json_string("x");   /* a scalar needs JSON_ENCODE_ANY */
    assert_null(msp_json_dumps(s, JSON_COMPACT));
    char *d = msp_json_dumps(s, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_string_equal(d, "\"x\"");
    free(d);
    json_decref(s);
}

/* The view leaves out the named member at the top only: jansson's dump of a copy without it. */
static void dump_view_leaves_out_the_named_top_member(void **state) {
    (void)state;
    const size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
    for (int i = 0; i < 2000; i++) {
        json_t *t = rand_tree(0);
        if (json_is_object(t) && rnd(2)) {
            json_object_set_new(t, "gone", json_true());
            json_t *inner = json_object(); /* a nested "gone" is content */
            json_object_set_new(inner, "gone", json_false());
            json_object_set_new(t, "inner", inner);
        }
        json_t *copy = json_is_object(t) ? json_copy(t) : json_incref(t);
        if (json_is_object(copy))
            json_object_del(copy, "gone");
        char *want = json_dumps(copy, flags);
        size_t len = 0;
        const char *got = msp_json_dump_view(t, flags, json_is_object(t) ? "gone" : NULL, &len);
        if ((want == NULL) != (got == NULL) || (want && (strlen(want) != len || strcmp(want, got))))
            fail_msg("tree %d: jansson %s, view %s", i, want ? want : "(null)",
                     got ? got : "(null)");
        free(want);
        json_decref(copy);
        json_decref(t);
    }
    size_t len = 0;
    assert_null(msp_json_dump_view(NULL, flags, NULL, &len));
    json_t *s = json_string("x");
    assert_null(msp_json_dump_view(s, JSON_COMPACT, NULL, &len));   /* a scalar needs ENCODE_ANY */
    assert_null(msp_json_dump_view(s, JSON_INDENT(2), NULL, &len)); /* not our flags */
    json_decref(s);
}

/* jansson's errors that a skipped member cannot cause (json_pick.h: ranges are not checked). */
static int range_error(const char *text)
{
    return strstr(text, "too big") || strstr(text, "overflow");
}

static json_t *subset(const json_t *obj, const char *const *names)
{
    json_t *out = json_object();
    for (const char *const *n = names; *n; n++)
        if (json_object_get(obj, *n))
            json_object_set(out, *n, json_object_get(obj, *n));
    return out;
}

/* One text: ours and jansson's verdicts agree; kept members equal jansson's. */
static void check_text(const char *text, size_t len, const char *const *names, const char *what)
{
    json_error_t    je, pe;
    json_t         *want = json_loadb(text, len, JSON_DECODE_ANY, &je);
    msp_json_pick_t pick = {names ? msp_pick_names : NULL, (void *)names, NULL, 0};
    json_t         *got  = msp_json_pick(text, len, &pick, &pe);
    if (!want && got && !(names && range_error(je.text)))
        fail_msg("%s: jansson refuses (%s) but pick accepts: %.*s", what, je.text, (int)len, text);
    if (want && !got)
        fail_msg("%s: jansson accepts but pick refuses (%s at %d): %.*s", what, pe.text,
                 pe.position, (int)len, text);
    if (want && got) {
        json_t *exp = names && json_is_object(want) ? subset(want, names) : json_incref(want);
        if (!json_equal(exp, got))
            fail_msg("%s: members differ: %.*s", what, (int)len, text);
        json_decref(exp);
    }
    json_decref(want);
    json_decref(got);
}

static const char *const keep[] = {"a", "\"", "key", "\xc3\xa9", NULL};
static const char *const keep_none[] = {"not there", NULL};   /* every member only checked */

/* MSP_PICK_NESTED for "a", kept members of it by `keep`, every other member kept. */
static msp_json_pick_t nested_keep = {msp_pick_names, (void *)keep, NULL, 0, NULL, NULL};

static msp_pick_t want_a_nested(const char *name, void *arg) {
    msp_json_pick_t *self = arg;
    if (strcmp(name, "a") != 0)
        return MSP_PICK_KEEP;
    self->nested = &nested_keep;
    return MSP_PICK_NESTED;
}

/* One text picked with a nested member: verdicts agree with jansson's; "a", when an object, has
 * only the kept members of jansson's, anything else is jansson's; span is the bytes of "a". */
static void check_nested(const char *text, size_t len, const char *what) {
    json_error_t je, pe;
    json_t *want = json_loadb(text, len, JSON_DECODE_ANY, &je);
    msp_json_pick_t pick = {want_a_nested, NULL, NULL, 0, NULL, NULL};
    pick.arg = &pick;
    json_t *got = msp_json_pick(text, len, &pick, &pe);
    if (!want && got && !range_error(je.text))
        fail_msg("%s: jansson refuses (%s) but pick accepts: %.*s", what, je.text, (int)len, text);
    if (want && !got)
        fail_msg("%s: jansson accepts but pick refuses (%s at %d): %.*s", what, pe.text,
                 pe.position, (int)len, text);
    if (want && got) {
        json_t *exp = json_deep_copy(want);
        json_t *a = json_object_get(want, "a");
        if (json_is_object(exp) && json_is_object(a))
            json_object_set_new(exp, "a", subset(a, keep));
        if (!json_equal(exp, got))
            fail_msg("%s: members differ: %.*s", what, (int)len, text);
        if (json_is_object(want) && a) {
            json_t *span =
                pick.span ? json_loadb(pick.span, pick.span_len, JSON_DECODE_ANY, NULL) : NULL;
            if (!span || !json_equal(span, a))
                fail_msg("%s: span is not the bytes of \"a\": %.*s", what, (int)len, text);
            json_decref(span);
        }
        json_decref(exp);
    }
    json_decref(want);
    json_decref(got);
}

static void pick_agrees_with_jansson_on_valid_texts(void **state)
{
    (void)state;
    for (int i = 0; i < 2000; i++) {
        json_t *t = rand_tree(0);
        char   *s = json_dumps(t, JSON_ENCODE_ANY | (i % 2 ? JSON_INDENT(1) : JSON_COMPACT));
        check_text(s, strlen(s), NULL, "valid, all kept");
        check_text(s, strlen(s), keep, "valid, some kept");
        check_text(s, strlen(s), keep_none, "valid, none kept");
        check_nested(s, strlen(s), "valid, nested");
        json_t *w = json_pack("{s:O,s:i}", "a", t, "z", 1); /* "a" an object half the time */
        char *ws = json_dumps(w, i % 2 ? JSON_INDENT(1) : JSON_COMPACT);
        check_nested(ws, strlen(ws), "valid, nested in a");
        free(ws);
        json_decref(w);
        free(s);
        json_decref(t);
    }
}

/* Break a text one way of `ways` (the last ways - 3 leave it whole): cut it anywhere (also inside
 * a character), overwrite or insert one byte of noise. buf has room for one more byte. */
static size_t mutate(char *buf, size_t len, const char *noise, unsigned ways) {
    size_t nn = strlen(noise);
    switch (rnd(ways)) {
    case 0: return rnd((unsigned)len + 1);
    case 1: buf[rnd((unsigned)len)] = noise[rnd((unsigned)nn)]; return len;
    case 2: {
        unsigned at = rnd((unsigned)len + 1);
        memmove(buf + at + 1, buf + at, len - at);
        buf[at] = noise[rnd((unsigned)nn)];
        return len + 1;
    }
    default: return len;
    }
}

static void pick_agrees_with_jansson_on_broken_texts(void **state)
{
    (void)state;
    static const char noise[] = "{}[]\",:\\u0123456789eE+-.tfn \x01\x80\xc3\xed\xf4\xff";
    char buf[4096];
    for (int i = 0; i < 20000; i++) {
        json_t *t = rand_tree(0);
        if (!json_is_object(t) || i % 2) { /* "a" takes the nested pick */
            json_t *o = json_object();
            json_object_set_new(o, "a", t);
            t = o;
        }
        char  *s   = json_dumps(t, JSON_COMPACT);
        size_t len = strlen(s);
        json_decref(t);
        if (len >= sizeof buf - 8) {
            free(s);
            continue;
        }
        memcpy(buf, s, len);
        free(s);
        len = mutate(buf, len, noise, 4);
        check_text(buf, len, NULL, "mutated, all kept");
        check_text(buf, len, keep, "mutated, some kept");
        check_text(buf, len, keep_none, "mutated, none kept");
        check_nested(buf, len, "mutated, nested");
    }
}

/* Values at the edges of the grammar, in a skipped member and in a kept one. */
static void hard_values_get_jansson_verdicts(void **state)
{
    (void)state;
    static const char *const hard[] = {
        "01", "1.", "-", "1e", "1e+", "-0.0e-0", "0.5E7", ".5", "+1", "1x", "tru", "nul", "nulll",
        "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud83d\\ude00\"",
        "\"\\x\"", "\"\\u12\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\xf4\x90\x80\x80\"",
        "\"\xe2\x82\"", "\"\x7f\"", "\"a\x01\"", "1e999", "99999999999999999999",
        "-9223372036854775808", "[1,]", "[,1]", "{\"a\"1}", "{\"a\":}", "{,}", "[]", "{}", "[[[]]]",
        "\"\\/\"", "true false", "\"\xef\xbb\xbf\"",
        /* the kept members made without jansson (json_pick.c load_value) */
        "-0", "0", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
        "12345678901234567890123", "true", "false", "null", "\"\"", "\"plain\"", "\"\xc3\xa9\"",
        "\"a\\\\b\"", "\"\\\"\"", "0e1", "1E2", "-1.5"};
    static const char *const forms[] = {
        "{\"skip\":%s,\"a\":1}", "{\"a\":1,\"skip\":[%s]}", "{\"a\":%s}",
        "{\"skip\":{\"x\":%s}}", "{\"a\":{\"key\":%s}}",    "{\"a\":{\"skip\":[%s],\"key\":1}}"};
    char text[256];
    for (size_t h = 0; h < sizeof hard / sizeof *hard; h++)
        for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
            snprintf(text, sizeof text, forms[f], hard[h]);
            check_text(text, strlen(text), NULL, "hard, all kept");
            check_text(text, strlen(text), keep, "hard, some kept");
            check_text(text, strlen(text), keep_none, "hard, none kept");
            check_nested(text, strlen(text), "hard, nested");
        }
}

static void non_objects_are_built_whole(void **state)
{
    (void)state;
    static const char *const texts[] = {"[1, {\"a\": 2}]", " \"x\" ", "5", "null", "", "  "};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        check_text(texts[i], strlen(texts[i]), keep, "not an object");
}

static msp_pick_t want_payload_span(const char *name, void *arg)
{
    (void)arg;
    return strcmp(name, "payload") == 0 ? MSP_PICK_SPAN : MSP_PICK_KEEP;
}

static void span_member_is_handed_back_not_built(void **state)
{
    (void)state;
    const char     *t    = "{\"kind\":\"record\", \"payload\" : {\"id\": 5, \"x\": [1, 2]} ,\"z\":1}";
    msp_json_pick_t pick = {want_payload_span, NULL, NULL, 0};
    json_error_t    e;
    json_t         *env  = msp_json_pick(t, strlen(t), &pick, &e);
    assert_non_null(env);
    assert_null(json_object_get(env, "payload"));
    assert_string_equal(json_string_value(json_object_get(env, "kind")), "record");
    assert_int_equal(pick.span_len, strlen("{\"id\": 5, \"x\": [1, 2]}"));
    assert_memory_equal(pick.span, "{\"id\": 5, \"x\": [1, 2]}", pick.span_len);
    json_decref(env);
}

static void errors_say_where(void **state)
{
    (void)state;
    const char  *t = "{\"a\": 1,\n \"b\": \"x\x01\"}";
    json_error_t e;
    assert_null(msp_json_pick(t, strlen(t), NULL, &e));
    assert_int_equal(e.line, 2);
    assert_non_null(strstr(e.text, "control character"));
    const char *deep_open = "[";
    char       *deep      = malloc(3000);
    for (int i = 0; i < 2999; i++)
        deep[i] = deep_open[0];
    deep[2999] = '\0';
    char *wrapped = malloc(3010);
    snprintf(wrapped, 3010, "{\"a\":%s", deep);
    assert_null(msp_json_pick(wrapped, strlen(wrapped), NULL, &e));   /* depth, not a crash */
    free(deep);
    free(wrapped);
    /* closed, 2049 and 2047 deep, in a skipped member and in a kept one: jansson's limit is 2048 */
    for (int depth = 2047; depth <= 2049; depth += 2) {
        char *text = malloc(2 * (size_t)depth + 32);
        int   n    = sprintf(text, "{\"skip\":");
        for (int i = 0; i < depth - 1; i++)
            text[n++] = '[';
        for (int i = 0; i < depth - 1; i++)
            text[n++] = ']';
        text[n++] = '}';
        check_text(text, (size_t)n, keep_none, "deep");
        check_text(text, (size_t)n, NULL, "deep, kept");
        free(text);
    }
}

/* Kept members around the depth where our builder hands containers to jansson: same values. */
static void kept_members_deep_and_shallow_equal_janssons(void **state) {
    (void)state;
    for (int depth = 28; depth <= 36; depth++) {
        char text[1024];
        int n = sprintf(text, "{\"a\":");
        for (int i = 0; i < depth; i++)
            n += sprintf(text + n, i % 2 ? "[1,\"x\"," : "{\"k%d\":\"v\",\"in\":", i);
        n += sprintf(text + n, "\"leaf\\n\"");
        for (int i = depth - 1; i >= 0; i--)
            n += sprintf(text + n, i % 2 ? ",2.5]" : ",\"z\":null}");
        n += sprintf(text + n, ",\"b\":[[],{},[{}]]}");
        check_text(text, (size_t)n, NULL, "nested, kept");
        check_text(text, (size_t)n, keep, "nested, some kept");
        text[n - 3] = ','; /* "[{},}": broken at the end */
        check_text(text, (size_t)n, NULL, "nested, broken");
    }
}

/* ---- msp_json_flat: never accepts what jansson (with JSON_REJECT_DUPLICATES) refuses ----- */

/* One text: when flat takes it, jansson accepts it with exactly those members. @returns r. */
static int check_flat(const char *text, size_t len, const char *what) {
    msp_json_member_t m[16];
    json_error_t je;
    int r = msp_json_flat(text, len, m, 16);
    json_t *want = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (r >= 0 && !want)
        fail_msg("%s: jansson refuses (%s) but flat accepts: %.*s", what, je.text, (int)len, text);
    if (r >= 0 && (size_t)r != json_object_size(want))
        fail_msg("%s: %d members, jansson has %zu: %.*s", what, r, json_object_size(want), (int)len,
                 text);
    for (int i = 0; i < r; i++) {
        char name[256];
        assert_true(m[i].name_len < sizeof name);
        memcpy(name, m[i].name, m[i].name_len);
        name[m[i].name_len] = '\0';
        json_t *v = json_object_get(want, name);
        if (!v || (m[i].value ? !json_is_string(v) || json_string_length(v) != m[i].value_len ||
                                    memcmp(json_string_value(v), m[i].value, m[i].value_len)
                              : !json_is_null(v)))
            fail_msg("%s: member \"%s\" differs: %.*s", what, name, (int)len, text);
    }
    json_decref(want);
    return r;
}

/* A flat object: plain strings mostly, now and then an escape, a null, a number, a name twice. */
static size_t rand_flat(char *buf, size_t size) {
    static const char *const names[] = {"id", "org_id", "title", "x", "\xc3\xa9", "a\\\"b"};
    static const char *const values[] = {"\"v\"",
                                         "\"\"",
                                         "null",
                                         "\"caf\xc3\xa9 \xe2\x82\xac\"",
                                         "\"a\\nb\"",
                                         "1",
                                         "\"\xf0\x9f\x98\x80\"",
                                         "true",
                                         "\"x x x\""};
    size_t n = (size_t)snprintf(buf, size, "{");
    for (unsigned i = 0, k = rnd(6); i < k; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s\"%s\"%s:%s%s", i ? "," : "",
                              names[rnd(sizeof names / sizeof *names)], rnd(4) ? "" : " ",
                              rnd(4) ? "" : "\n", values[rnd(sizeof values / sizeof *values)]);
    n += (size_t)snprintf(buf + n, size - n, "}");
    return n;
}

static void flat_takes_only_what_jansson_takes(void **state) {
    (void)state;
    static const char noise[] = "{}[]\",:\\un01 \x01\x80\xc3\xed\xf4\xff";
    char buf[1024];
    int taken = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = rand_flat(buf, sizeof buf - 8);
        len = mutate(buf, len, noise, 5);
        taken += check_flat(buf, len, "flat") >= 0;
    }
    assert_true(taken > 2000); /* the shape is common enough that the check is not vacuous */
}

static void flat_declines_the_rest(void **state) {
    (void)state;
    msp_json_member_t m[2];
    static const char *const declined[] = {"{\"a\":\"x\",\"a\":\"y\"}",
                                           "{\"a\":\"\\u0041\"}",
                                           "{\"a\":1}",
                                           "{\"a\":{}}",
                                           "{\"\\u0061\":\"x\"}",
                                           "{\"a\":\"x\"} x",
                                           "[]",
                                           "",
                                           "{\"a\":\"x\",\"b\":\"y\",\"c\":\"z\"}",
                                           "{\"a\":nul}",
                                           "{\"a\":\"\xc0\xaf\"}",
                                           "{\"a\":\"x\",}"};
    for (size_t i = 0; i < sizeof declined / sizeof *declined; i++)
        if (msp_json_flat(declined[i], strlen(declined[i]), m, 2) != -1)
            fail_msg("taken: %s", declined[i]);
    const char *t = " {\"a\" : null ,\"b\":\"\xc3\xa9\"}\n";
    assert_int_equal(msp_json_flat(t, strlen(t), m, 2), 2);
    assert_null(m[0].value);
    assert_int_equal(m[1].value_len, 2);
    assert_memory_equal(m[1].value, "\xc3\xa9", 2);
    assert_int_equal(msp_json_flat("{}", 2, m, 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_len_agrees_with_the_byte_rule),
        cmocka_unit_test(dumps_are_byte_identical_to_jansson),
        cmocka_unit_test(dumps_refuse_what_jansson_refuses),
        cmocka_unit_test(dump_view_leaves_out_the_named_top_member),
        cmocka_unit_test(pick_agrees_with_jansson_on_valid_texts),
        cmocka_unit_test(pick_agrees_with_jansson_on_broken_texts),
        cmocka_unit_test(hard_values_get_jansson_verdicts),
        cmocka_unit_test(non_objects_are_built_whole),
        cmocka_unit_test(span_member_is_handed_back_not_built),
        cmocka_unit_test(errors_say_where),
        cmocka_unit_test(kept_members_deep_and_shallow_equal_janssons),
        cmocka_unit_test(flat_takes_only_what_jansson_takes),
        cmocka_unit_test(flat_declines_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
