/*
 * test_query.c — the gateway's URL query parser (services/gateway/query.c): a flag without '='
 * keeps the other parameters, escapes are decoded strictly, the first occurrence wins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "query.h"

/* The value of name in q, or "<absent>" / "<malformed>"; the string is static. */
static const char *get(const char *q, const char *name) {
    static char out[256];
    char *v = NULL, err[256] = "";
    int rc = gw_query_get(q, name, &v, err, sizeof(err));
    if (rc == 1)
        snprintf(out, sizeof(out), "%s", v);
    else
        snprintf(out, sizeof(out), "%s", rc == 0 ? "<absent>" : "<malformed>");
    if (rc == -1)
        assert_true(err[0] != '\0');
    else
        assert_true(rc == 1 || v == NULL);
    free(v);
    return out;
}

static void flag_without_equals_keeps_every_other_parameter(void **state) {
    (void)state;
    const char *q = "customer=syncro:1&include_gone&page=2";
    assert_string_equal(get(q, "customer"), "syncro:1");
    assert_string_equal(get(q, "include_gone"), "");
    assert_string_equal(get(q, "page"), "2");
    assert_string_equal(get("include_gone&customer=X", "customer"), "X");
    assert_string_equal(get("page=abc&x", "page"), "abc");
    assert_string_equal(get("page=abc&x", "x"), "");
    assert_int_equal(gw_query_check("page=abc&x", NULL, 0), 0);
}

static void empty_components_and_empty_values(void **state) {
    (void)state;
    assert_string_equal(get("a=1&&b=2&", "b"), "2");
    assert_string_equal(get("&a=", "a"), "");
    assert_string_equal(get("=v&a=1", ""), "v");
    assert_string_equal(get("a=1", "b"), "<absent>");
    assert_string_equal(get("", "a"), "<absent>");
    assert_string_equal(get(NULL, "a"), "<absent>");
    assert_string_equal(get("a=b=c", "a"), "b=c");
}

static void escapes_and_plus_are_decoded_in_keys_and_values(void **state) {
    (void)state;
    assert_string_equal(get("customer=syncro%3A1", "customer"), "syncro:1");
    assert_string_equal(get("serial=AB+12%2b3", "serial"), "AB 12+3");
    assert_string_equal(get("per%5Fpage=5", "per_page"), "5");
    assert_string_equal(get("t=%C3%A9", "t"), "\xc3\xa9");
    assert_string_equal(get("t=%26%3D", "t"), "&=");
}

static void bad_escapes_make_the_query_malformed(void **state) {
    (void)state;
    const char *bad[] = {"customer=%zz", "customer=syncro%3", "customer=%", "a=%00",
                         "x%G1=1", "ok=1&k%=v", "a=%0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char err[256] = "";
        assert_int_equal(gw_query_check(bad[i], err, sizeof(err)), -1);
        assert_non_null(strstr(err, "percent-encoding"));
    }
    char err[256];
    assert_int_equal(gw_query_check("ok=1&k%=v", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "\"k%=v\""));  /* names the component, not the whole query */
    assert_string_equal(get("customer=%zz", "customer"), "<malformed>");
    assert_int_equal(gw_query_check("a=%41&b=%e2%82%ac&c=+", err, sizeof(err)), 0);
}

static void first_occurrence_wins(void **state) {
    (void)state;
    assert_string_equal(get("page=1&page=2", "page"), "1");
    assert_string_equal(get("page&page=2", "page"), "");
}

static void a_long_component_is_quoted_cut_short(void **state) {
    (void)state;
    char q[400], err[512];
    memset(q, 'a', sizeof(q) - 1);
    q[sizeof(q) - 1] = '\0';
    q[300] = '%';
    q[301] = 'z';
    assert_int_equal(gw_query_check(q, err, sizeof(err)), -1);
    assert_true(strlen(err) < 250);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flag_without_equals_keeps_every_other_parameter),
        cmocka_unit_test(empty_components_and_empty_values),
        cmocka_unit_test(escapes_and_plus_are_decoded_in_keys_and_values),
        cmocka_unit_test(bad_escapes_make_the_query_malformed),
        cmocka_unit_test(first_occurrence_wins),
        cmocka_unit_test(a_long_component_is_quoted_cut_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
