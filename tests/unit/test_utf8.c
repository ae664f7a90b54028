/*
 * test_utf8.c — cutting text on UTF-8 character boundaries (utf8.h) and the errstr writer that
 * relies on it: no cut ever ends inside a character, invalid input never comes out invalid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "mspsync/errstr.h"
#include "mspsync/utf8.h"

/* é (2 bytes), € (3), 中 (3), 😀 (4) after 0..3 ASCII bytes, cut at every byte budget: the
 * prefix is the whole characters that fit, and the copy writes exactly that prefix. */
static void cut_at_every_offset_keeps_whole_characters(void **state) {
    (void)state;
    static const char *const CHARS[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xE4\xB8\xAD",
                                        "\xF0\x9F\x98\x80"};
    for (size_t c = 0; c < sizeof(CHARS) / sizeof(CHARS[0]); c++) {
        size_t clen = strlen(CHARS[c]);
        for (size_t pad = 0; pad <= 3; pad++) {
            char s[64] = "";
            memset(s, 'a', pad);
            for (int i = 0; i < 5; i++) strcat(s, CHARS[c]);
            size_t len = strlen(s);
            for (size_t max = 0; max <= len + 2; max++) {
                size_t want = max <= pad ? max : pad + (max - pad) / clen * clen;
                if (want > len) want = len;
                size_t n = msp_utf8_prefix(s, max);
                assert_int_equal(n, want);
                char dst[64];
                assert_int_equal(msp_utf8_copy(dst, max + 1, s), want);
                assert_int_equal(strlen(dst), want);
                assert_memory_equal(dst, s, want);
                char printed[64];
                snprintf(printed, sizeof(printed), "%.*s", MSP_UTF8_CUT(s, max));
                assert_string_equal(printed, dst);
                json_t *j = json_string(dst);
                assert_non_null(j); /* what the ticket-creator and the gateway depend on */
                json_decref(j);
            }
        }
    }
}

static void empty_and_exact_fit(void **state) {
    (void)state;
    char dst[16] = "x";
    assert_int_equal(msp_utf8_prefix("", 10), 0);
    assert_int_equal(msp_utf8_prefix("abc", 0), 0);
    assert_int_equal(msp_utf8_copy(dst, 1, "abc"), 0);
    assert_string_equal(dst, "");
    assert_int_equal(msp_utf8_copy(dst, sizeof(dst), ""), 0);
    assert_string_equal(dst, "");
    dst[0] = 'x';
    assert_int_equal(msp_utf8_copy(dst, 0, "abc"), 0);
    assert_int_equal(dst[0], 'x'); /* size 0: nothing written */
    assert_int_equal(msp_utf8_copy(dst, sizeof(dst), NULL), 0);
    /* "a€é" is 6 bytes: fits a 7-byte buffer exactly, a 6-byte one loses the é whole */
    const char *s = "a\xE2\x82\xAC\xC3\xA9";
    assert_int_equal(msp_utf8_prefix(s, 6), 6);
    assert_int_equal(msp_utf8_copy(dst, 7, s), 6);
    assert_string_equal(dst, s);
    assert_int_equal(msp_utf8_copy(dst, 6, s), 4);
    assert_string_equal(dst, "a\xE2\x82\xAC");
    /* limits stated in characters count code points, not bytes */
    assert_int_equal(msp_utf8_chars(""), 0);
    assert_int_equal(msp_utf8_chars("a\xE2\x82\xAC\xC3\xA9\xF0\x9F\x98\x80"), 4);
}

/* The edges of RFC 3629: the smallest and largest of each length are characters. */
static void accepts_every_valid_edge(void **state) {
    (void)state;
    static const char *const VALID[] = {
        "\x7F", "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80",
        "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF",
    };
    for (size_t i = 0; i < sizeof(VALID) / sizeof(VALID[0]); i++) {
        assert_int_equal(msp_utf8_prefix(VALID[i], 8), strlen(VALID[i]));
        char dst[8];
        msp_utf8_copy(dst, sizeof(dst), VALID[i]);
        assert_string_equal(dst, VALID[i]);
    }
}

/* Invalid input: the prefix stops before the first bad byte, the copy replaces each bad byte
 * with U+FFFD and carries on. */
static void invalid_sequences_stop_the_prefix_and_are_replaced_in_copies(void **state) {
    (void)state;
    static const struct {
        const char *in;
        size_t prefix;
        const char *copy;
    } CASES[] = {
        {"ab\x80" "cd", 2, "ab\xEF\xBF\xBD" "cd"},                   /* lone continuation */
        {"\xC0\xAF", 0, "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong '/' */
        {"\xE0\x80\xAF", 0, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong, 3 bytes */
        {"x\xED\xA0\x80", 1, "x\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate U+D800 */
        {"\xF4\x90\x80\x80", 0,
         "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},          /* above U+10FFFF */
        {"\xF5" "a", 0, "\xEF\xBF\xBD" "a"},
        {"\xFF", 0, "\xEF\xBF\xBD"},
        {"\xE2\x82" "A", 0, "\xEF\xBF\xBD\xEF\xBF\xBD" "A"},           /* cut short by 'A' */
        {"a\xE2\x82", 1, "a\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* cut short by the end */
        {"\xF0\x9F\x98", 0, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        assert_int_equal(msp_utf8_prefix(CASES[i].in, 64), CASES[i].prefix);
        char dst[64];
        assert_int_equal(msp_utf8_copy(dst, sizeof(dst), CASES[i].in), strlen(CASES[i].copy));
        assert_string_equal(dst, CASES[i].copy);
    }
    /* a replacement that does not fit is left out whole */
    char dst[8];
    assert_int_equal(msp_utf8_copy(dst, 3, "\x80"), 0);
    assert_int_equal(msp_utf8_copy(dst, 5, "a\x80"), 4);
}

/* Random bytes, every budget: the prefix and the copy are always text jansson accepts. */
static void random_bytes_never_come_out_invalid(void **state) {
    (void)state;
    uint64_t x = 88172645463325252ULL;
    for (int round = 0; round < 2000; round++) {
        unsigned char s[24];
        for (size_t i = 0; i < sizeof(s) - 1; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* mostly high bytes, so that valid and invalid sequences both occur */
            s[i] = (unsigned char)(x % 4 ? 0x80 + x % 0x78 : 1 + x % 0x7F);
        }
        s[sizeof(s) - 1] = '\0';
        for (size_t max = 0; max < sizeof(s); max++) {
            size_t n = msp_utf8_prefix((const char *)s, max);
            assert_true(n <= max);
            json_t *j = json_stringn((const char *)s, n);
            assert_non_null(j);
            json_decref(j);
            char dst[80];
            msp_utf8_copy(dst, max + 1, (const char *)s);
            assert_true(strlen(dst) <= max);
            j = json_string(dst);
            assert_non_null(j);
            json_decref(j);
        }
    }
}

/* msp_set_err cuts a long message on a boundary and cleans what it echoes. */
static void error_text_is_cut_on_a_boundary_and_cleaned(void **state) {
    (void)state;
    char err[7];
    msp_set_err(err, sizeof(err), "got %s", "\xE2\x82\xAC");
    assert_string_equal(err, "got "); /* "got €" is 7 bytes, one too many */
    msp_set_err(err, sizeof(err), "%s", "a\xFF" "b");
    assert_string_equal(err, "a\xEF\xBF\xBD" "b");
    char big[600];
    char arg[520];
    memset(arg, 'e', sizeof(arg) - 1);
    arg[sizeof(arg) - 1] = '\0';
    msp_set_err(big, sizeof(big), "%s!", arg);
    assert_int_equal(strlen(big), sizeof(arg)); /* long messages are not cut short */
    msp_set_err(NULL, 10, "x");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cut_at_every_offset_keeps_whole_characters),
        cmocka_unit_test(empty_and_exact_fit),
        cmocka_unit_test(accepts_every_valid_edge),
        cmocka_unit_test(invalid_sequences_stop_the_prefix_and_are_replaced_in_copies),
        cmocka_unit_test(random_bytes_never_come_out_invalid),
        cmocka_unit_test(error_text_is_cut_on_a_boundary_and_cleaned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
