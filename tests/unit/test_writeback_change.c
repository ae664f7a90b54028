/*
 * test_writeback_change.c — reading date.changes messages and comparing vendor values with the
 * wanted date (services/write-back/change.c: the write-back is a program, not a library, so the
 * module is compiled into this test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/write-back/change.c"

static json_t *J(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) fail_msg("bad test JSON: %s", e.text);
    return j;
}

/* Parse text; @returns the rc, the reason in why. */
static int parse(const char *text, wb_change_t *out, char *why, size_t n) {
    json_t *j = J(text);
    why[0] = '\0';
    int rc = wb_change_parse(j, out, why, n);
    json_decref(j);   /* out's borrowed strings are not used after this by the callers below */
    return rc;
}

static void a_design_example_is_read_whole(void **state) {
    (void)state;
    json_t *j = J("{\"schema_version\":1,\"tenant\":\"acme\",\"asset_id\":\"syncro:123\","
                  "\"change_id\":\"ab12\",\"reason\":\"edit\","
                  "\"dates\":{\"purchase\":\"2024-03-01\",\"warranty\":null},"
                  "\"targets\":[{\"integration\":\"cwrmm\",\"id\":\"3f1c-77ab\","
                  "\"current\":{\"purchase\":null,\"warranty\":\"2026-01-01\"}},"
                  "{\"integration\":\"syncro\",\"id\":\"123\"}],\"at\":\"2026-11-24T00:00:00Z\"}");
    wb_change_t c;
    char why[200] = "";
    assert_int_equal(wb_change_parse(j, &c, why, sizeof(why)), 0);
    assert_string_equal(c.tenant, "acme");
    assert_string_equal(c.asset, "syncro:123");
    assert_string_equal(c.change_id, "ab12");
    assert_true(c.has[WB_F_PURCHASE] && c.has[WB_F_WARRANTY]);
    assert_string_equal(c.val[WB_F_PURCHASE], "2024-03-01");
    assert_string_equal(c.val[WB_F_WARRANTY], "");   /* null clears */
    assert_int_equal(c.ntargets, 2);
    assert_ptr_equal(c.targets[0].vendor, msp_vendor_find("cwrmm"));
    assert_string_equal(c.targets[0].id, "3f1c-77ab");
    assert_ptr_equal(c.targets[1].vendor, msp_vendor_find("syncro"));
    assert_string_equal(c.targets[1].id, "123");
    json_decref(j);
}

static void a_field_left_out_is_not_touched(void **state) {
    (void)state;
    wb_change_t c;
    char why[200];
    assert_int_equal(parse("{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\","
                           "\"dates\":{\"warranty\":\"03/01/2027\"},\"targets\":[]}",
                           &c, why, sizeof(why)), 0);
    assert_false(c.has[WB_F_PURCHASE]);
    assert_true(c.has[WB_F_WARRANTY]);
    assert_string_equal(c.val[WB_F_WARRANTY], "2027-03-01");   /* normalized */
    assert_int_equal(c.ntargets, 0);
}

static void malformed_changes_say_why(void **state) {
    (void)state;
    static const struct { const char *json, *why; } cases[] = {
        {"[1]", "value is not a JSON object"},
        {"{\"schema_version\":2,\"tenant\":\"t\"}", "unsupported schema_version"},
        {"{\"asset_id\":\"a\"}", "bad or missing tenant"},
        {"{\"tenant\":\"t\",\"change_id\":\"c\"}", "bad or missing asset_id"},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\"}", "bad or missing change_id"},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\"}", "bad or missing dates"},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\",\"dates\":{}}",
         "dates names neither purchase nor warranty"},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\",\"dates\":{\"purchase\":\"2024-02-30\"}}",
         "dates.purchase is not a date"},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\",\"dates\":{\"warranty\":5}}",
         "dates.warranty is not a date"},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\",\"dates\":{\"purchase\":null}}",
         "bad or missing targets"},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\",\"dates\":{\"purchase\":null},"
         "\"targets\":[{\"integration\":\"ninja\",\"id\":\"1\"}]}",
         "targets[0]: unknown integration \"ninja\""},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\",\"dates\":{\"purchase\":null},"
         "\"targets\":[{\"integration\":\"syncro\",\"id\":\"12/../x\"}]}",
         "targets[0]: bad or missing syncro id"},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\",\"dates\":{\"purchase\":null},"
         "\"targets\":[{\"integration\":\"cwrmm\",\"id\":\"a?b=c\"}]}",
         "targets[0]: bad or missing cwrmm id"},
        {"{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\",\"dates\":{\"purchase\":null},"
         "\"targets\":[{\"id\":\"1\"}]}",
         "targets[0]: missing integration"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wb_change_t c;
        char why[200];
        assert_int_equal(parse(cases[i].json, &c, why, sizeof(why)), -1);
        if (strcmp(why, cases[i].why) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, why, cases[i].why);
    }
}

/* The credential load keeps the tenant in 128 bytes: a longer one would wait there forever. */
static void a_tenant_of_128_bytes_is_refused(void **state) {
    (void)state;
    char text[1024], tenant[129];
    for (int len = 127; len <= 128; len++) {
        memset(tenant, 't', (size_t)len);
        tenant[len] = '\0';
        snprintf(text, sizeof(text),
                 "{\"tenant\":\"%s\",\"asset_id\":\"a\",\"change_id\":\"c\","
                 "\"dates\":{\"purchase\":null},\"targets\":[]}",
                 tenant);
        wb_change_t c;
        char why[200] = "";
        assert_int_equal(parse(text, &c, why, sizeof(why)), len < 128 ? 0 : -1);
        if (len == 128)
            assert_string_equal(why, "bad or missing tenant");
    }
}

static void too_many_targets_are_refused(void **state) {
    (void)state;
    char text[8192];
    int n = snprintf(text, sizeof(text), "{\"tenant\":\"t\",\"asset_id\":\"a\",\"change_id\":\"c\","
                     "\"dates\":{\"purchase\":null},\"targets\":[");
    for (int i = 0; i <= WB_MAX_TARGETS; i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "%s{\"integration\":\"syncro\",\"id\":\"%d\"}",
                      i ? "," : "", i + 1);
    snprintf(text + n, sizeof(text) - (size_t)n, "]}");
    wb_change_t c;
    char why[200];
    assert_int_equal(parse(text, &c, why, sizeof(why)), -1);
    assert_string_equal(why, "more than 32 targets");
}

static void a_value_holds_the_same_calendar_date_in_any_vendor_form(void **state) {
    (void)state;
    json_t *iso = json_string("2024-03-01T00:00:00Z"), *us = json_string("03/01/2024");
    json_t *plain = json_string("2024-03-01"), *other = json_string("2024-03-02");
    assert_true(wb_value_holds(iso, "2024-03-01"));
    assert_true(wb_value_holds(us, "2024-03-01"));
    assert_true(wb_value_holds(plain, "2024-03-01"));
    assert_false(wb_value_holds(other, "2024-03-01"));
    assert_false(wb_value_holds(plain, ""));   /* a value is there, we want none: write null */
    json_decref(iso);
    json_decref(us);
    json_decref(plain);
    json_decref(other);
}

static void nothing_holds_a_clear_and_garbage_holds_nothing(void **state) {
    (void)state;
    json_t *null = json_null(), *empty = json_string(""), *junk = json_string("soon");
    assert_true(wb_value_holds(NULL, ""));    /* field absent from the vendor's answer */
    assert_true(wb_value_holds(null, ""));
    assert_true(wb_value_holds(empty, ""));
    assert_false(wb_value_holds(NULL, "2024-03-01"));
    assert_false(wb_value_holds(junk, "2024-03-01"));
    assert_false(wb_value_holds(junk, ""));   /* overwritten with null */
    json_decref(empty);
    json_decref(junk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_design_example_is_read_whole),
        cmocka_unit_test(a_field_left_out_is_not_touched),
        cmocka_unit_test(malformed_changes_say_why),
        cmocka_unit_test(too_many_targets_are_refused),
        cmocka_unit_test(a_tenant_of_128_bytes_is_refused),
        cmocka_unit_test(a_value_holds_the_same_calendar_date_in_any_vendor_form),
        cmocka_unit_test(nothing_holds_a_clear_and_garbage_holds_nothing),
    };
    return cmocka_run_group_tests_name("writeback_change", tests, NULL, NULL);
}
