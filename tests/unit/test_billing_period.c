/*
 * test_billing_period.c — the billing clock's pure parts: zone offsets from the tz database
 * (tzif.h), RFC 3339 parsing, the period of an instant and its end, lateness, the billing
 * config's validation and Syncro's string quantities (billing.h). Cases are tables: input,
 * expected output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <cmocka.h>

#include "mspsync/billing.h"
#include "mspsync/tzif.h"

static int64_t at(const char *iso) {
    int64_t ms;
    assert_int_equal(msp_rfc3339_parse(iso, &ms), 0);
    return ms;
}

static void zone_offsets_follow_daylight_saving(void **state) {
    (void)state;
    static const struct {
        const char *zone, *when;
        int offset;
    } cases[] = {
        {"America/New_York", "2026-07-01T12:00:00Z", -4 * 3600},
        {"America/New_York", "2026-12-01T12:00:00Z", -5 * 3600},
        {"America/New_York", "2026-03-08T06:59:59Z", -5 * 3600}, /* 01:59:59 EST */
        {"America/New_York", "2026-03-08T07:00:00Z", -4 * 3600}, /* 03:00 EDT */
        {"Europe/Berlin", "2026-01-15T00:00:00Z", 3600},
        {"Asia/Kolkata", "2026-01-15T00:00:00Z", 19800},
        {"UTC", "2026-01-15T00:00:00Z", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int off;
        char err[200];
        assert_int_equal(
            msp_tz_offset(cases[i].zone, at(cases[i].when) / 1000, &off, err, sizeof(err)), 0);
        assert_int_equal(off, cases[i].offset);
    }
}

static void unknown_or_unsafe_zones_are_refused(void **state) {
    (void)state;
    char err[200];
    static const char *const bad[] = {
        "Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "America", "a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(msp_tz_valid(bad[i], err, sizeof(err)), 0);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(msp_tz_valid("America/New_York", err, sizeof(err)), 1);
}

static void rfc3339_offsets_fractions_and_impossible_days(void **state) {
    (void)state;
    int64_t ms;
    assert_int_equal(msp_rfc3339_parse("2026-11-23T21:45:00.5-05:00", &ms), 0);
    assert_int_equal(ms, at("2026-11-24T02:45:00Z") + 500);
    assert_int_equal(msp_rfc3339_parse("2026-02-29T00:00:00Z", &ms), -1);
    assert_int_equal(msp_rfc3339_parse("2026-11-23 21:45:00Z", &ms), -1);
    assert_int_equal(msp_rfc3339_parse("yesterday", &ms), -1);
}

static void the_period_is_the_month_in_the_tenants_zone(void **state) {
    (void)state;
    static const struct {
        const char *zone, *when, *period, *end;
    } cases[] = {
        /* 23:30 on Nov 30 in New York is already December in UTC */
        {"America/New_York", "2026-12-01T04:30:00Z", "2026-11", "2026-12-01T05:00:00Z"},
        {"America/New_York", "2026-12-01T05:00:00Z", "2026-12", "2027-01-01T05:00:00Z"},
        {"Europe/Berlin", "2026-03-31T22:30:00Z", "2026-04", "2026-04-30T22:00:00Z"},
        {"UTC", "2026-02-28T23:59:59Z", "2026-02", "2026-03-01T00:00:00Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char period[8], err[200];
        int64_t end;
        assert_int_equal(
            msp_billing_period(cases[i].zone, at(cases[i].when), period, err, sizeof(err)), 0);
        assert_string_equal(period, cases[i].period);
        assert_int_equal(msp_billing_period_end_ms(cases[i].zone, period, &end, err, sizeof(err)),
                         0);
        assert_int_equal(end, at(cases[i].end));
    }
}

static void local_wall_times_in_gaps_and_overlaps(void **state) {
    (void)state;
    char err[200];
    int64_t s;
    /* fall back: 01:30 happens twice; the earlier (EDT) instant */
    struct tm overlap = {.tm_year = 126, .tm_mon = 10, .tm_mday = 1, .tm_hour = 1, .tm_min = 30};
    assert_int_equal(msp_tz_utc("America/New_York", &overlap, &s, err, sizeof(err)), 0);
    assert_int_equal(s * 1000, at("2026-11-01T05:30:00Z"));
    struct tm plain = {.tm_year = 126, .tm_mon = 11, .tm_mday = 6, .tm_hour = 12};
    assert_int_equal(msp_tz_utc("America/New_York", &plain, &s, err, sizeof(err)), 0);
    assert_int_equal(s * 1000, at("2026-12-06T17:00:00Z"));
}

static void a_report_is_late_after_the_grace_days(void **state) {
    (void)state;
    msp_billing_conf_t c;
    char err[300];
    json_t *in = json_pack("{s:s,s:i}", "time_zone", "America/New_York", "grace_days", 3);
    assert_int_equal(msp_billing_conf_parse(in, &c, err, sizeof(err)), 0);
    int64_t nov = at("2026-11-28T12:00:00Z");
    assert_int_equal(msp_billing_late(&c, nov, at("2026-12-04T04:59:59Z"), err, sizeof(err)), 0);
    assert_int_equal(msp_billing_late(&c, nov, at("2026-12-04T05:00:01Z"), err, sizeof(err)), 1);
    msp_billing_conf_clear(&c);
    json_decref(in);
}

static void the_config_is_validated_and_completed(void **state) {
    (void)state;
    static const struct {
        const char *doc, *error; /* error NULL: valid */
    } cases[] = {
        {"{}", NULL},
        {"{\"enabled\":true,\"products\":{\"SKU\":{\"line_name\":\"Seats\"}}}", NULL},
        {"{\"colour\":1}", "unknown key \"colour\""},
        {"{\"time_zone\":\"Mars/Olympus\"}", "unknown time zone"},
        {"{\"push_time\":\"24:00\"}", "push_time"},
        {"{\"push_time\":\"7:00\"}", "push_time"},
        {"{\"grace_days\":-1}", "grace_days"},
        {"{\"products\":{\"SKU\":{}}}", "products.SKU.line_name"},
        {"{\"products\":{\"SKU\":{\"line_name\":\"x\",\"create\":1}}}", "products.SKU.create"},
        {"{\"products\":{\"SKU\":{\"line_name\":\"x\",\"qty\":1}}}", "unknown key \"qty\""},
        {"{\"products\":{\"A\":{\"line_name\":\"Seats\"},\"B\":{\"line_name\":\"seats\"}}}",
         "already the line of product \"A\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msp_billing_conf_t c;
        char err[300] = "";
        json_t *in = json_loads(cases[i].doc, 0, NULL);
        int rc = msp_billing_conf_parse(in, &c, err, sizeof(err));
        if (!cases[i].error) {
            assert_int_equal(rc, 0);
            assert_string_equal(c.time_zone, "America/New_York");
            assert_int_equal(c.push_hour, 12);
            assert_int_equal(c.grace_days, 3);
            assert_non_null(json_object_get(c.doc, "products"));
        } else {
            assert_int_equal(rc, -1);
            if (!strstr(err, cases[i].error))
                fail_msg("%s: \"%s\" does not say %s", cases[i].doc, err, cases[i].error);
        }
        msp_billing_conf_clear(&c);
        json_decref(in);
    }
}

static void syncro_quantities_are_strings(void **state) {
    (void)state;
    double q;
    json_t *v = json_string("9.99");
    assert_int_equal(msp_billing_qty(v, &q), 0);
    assert_true(q > 9.98 && q < 10.0);
    json_decref(v);
    v = json_string("12.0x");
    assert_int_equal(msp_billing_qty(v, &q), -1);
    json_decref(v);
    v = json_integer(7);
    assert_int_equal(msp_billing_qty(v, &q), 0);
    assert_true(q == 7.0);
    json_decref(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zone_offsets_follow_daylight_saving),
        cmocka_unit_test(unknown_or_unsafe_zones_are_refused),
        cmocka_unit_test(rfc3339_offsets_fractions_and_impossible_days),
        cmocka_unit_test(the_period_is_the_month_in_the_tenants_zone),
        cmocka_unit_test(local_wall_times_in_gaps_and_overlaps),
        cmocka_unit_test(a_report_is_late_after_the_grace_days),
        cmocka_unit_test(the_config_is_validated_and_completed),
        cmocka_unit_test(syncro_quantities_are_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
