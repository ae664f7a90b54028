/*
 * test_incident.c — canonical incidents: mapping, fingerprint and event id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "mspsync/incident.h"

static json_t *payload(void) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", "inc-1", "org_id",
                     "org-7", "org_name", "Contoso", "alert_type", "device_offline", "severity",
                     "high", "status", "open", "title", "Device offline", "occurred_at",
                     "2026-11-23T10:00:00.000Z", "subject", "WS-01");
}

static const char *s(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void maps_every_field(void **state) {
    (void)state;
    char err[256];
    json_t *p = payload();
    json_object_set_new(p, "unknown_field", json_string("kept out"));
    json_t *c = msp_map_mtp_incident("acme", p, "2026-11-23T10:00:01.000Z", err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(s(c, "incident_id"), "inc-1");
    assert_string_equal(s(c, "org_name"), "Contoso");
    assert_string_equal(s(c, "subject"), "WS-01");
    assert_string_equal(s(c, "source"), "mtp");
    assert_string_equal(s(c, "received_at"), "2026-11-23T10:00:01.000Z");
    assert_true(json_is_null(json_object_get(c, "description")));
    assert_null(json_object_get(c, "unknown_field"));
    assert_int_equal(strlen(s(c, "fingerprint")), 64);
    assert_int_equal(strlen(s(c, "event_id")), 64);
    json_decref(c);
    json_decref(p);
}

static void refire_keeps_fingerprint_changes_event(void **state) {
    (void)state;
    char err[256];
    json_t *p = payload();
    json_t *a = msp_map_mtp_incident("acme", p, NULL, err, sizeof(err));
    json_object_set_new(p, "occurred_at", json_string("2026-11-23T11:00:00.000Z"));
    json_object_set_new(p, "title", json_string("another title"));
    json_t *b = msp_map_mtp_incident("acme", p, NULL, err, sizeof(err));
    json_object_set_new(p, "status", json_string("resolved"));
    json_t *r = msp_map_mtp_incident("acme", p, NULL, err, sizeof(err));
    assert_string_equal(s(a, "fingerprint"), s(b, "fingerprint"));
    assert_string_equal(s(a, "fingerprint"), s(r, "fingerprint"));
    assert_string_not_equal(s(a, "event_id"), s(b, "event_id"));
    assert_string_not_equal(s(b, "event_id"), s(r, "event_id"));
    /* Same event delivered twice: same id. */
    json_t *b2 = msp_map_mtp_incident("acme", p, "later", err, sizeof(err));
    assert_string_equal(s(r, "event_id"), s(b2, "event_id"));
    /* Another tenant, alert type or subject: another incident. */
    json_t *t = msp_map_mtp_incident("other", p, NULL, err, sizeof(err));
    assert_string_not_equal(s(t, "fingerprint"), s(a, "fingerprint"));
    json_object_set_new(p, "subject", json_string("WS-02"));
    json_t *u = msp_map_mtp_incident("acme", p, NULL, err, sizeof(err));
    assert_string_not_equal(s(u, "fingerprint"), s(a, "fingerprint"));
    json_decref(a); json_decref(b); json_decref(r); json_decref(b2); json_decref(t); json_decref(u);
    json_decref(p);
}

static void fingerprint_parts_cannot_run_together(void **state) {
    (void)state;
    char a[65], b[65];
    msp_incident_fingerprint("t", "mtp", "ab", "c", "1", a);
    msp_incident_fingerprint("t", "mtp", "a", "bc", "1", b);
    assert_string_not_equal(a, b);
    /* Stable across releases: tickets created by an older version must still be found. */
    msp_incident_fingerprint("acme", "mtp", "device_offline", "WS-01", "inc-1", a);
    msp_incident_fingerprint("acme", "mtp", "device_offline", "WS-01", "inc-1", b);
    assert_string_equal(a, b);
}

static void subject_defaults_to_org_and_ids_may_be_integers(void **state) {
    (void)state;
    char err[256];
    json_t *p = payload();
    json_object_del(p, "subject");
    json_object_set_new(p, "id", json_integer(5560138523LL));
    json_object_set_new(p, "severity", json_string("apocalyptic"));
    json_t *c = msp_map_mtp_incident("acme", p, NULL, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(s(c, "subject"), "org-7");
    assert_string_equal(s(c, "incident_id"), "5560138523");
    assert_true(json_is_null(json_object_get(c, "severity")));
    json_decref(c);
    json_decref(p);
}

static void rejects_what_cannot_be_an_incident(void **state) {
    (void)state;
    char err[256];
    json_t *p = payload();
    json_object_set_new(p, "status", json_string("closed"));
    assert_null(msp_map_mtp_incident("acme", p, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "closed"));
    json_object_set_new(p, "status", json_string("open"));
    json_object_del(p, "alert_type");
    assert_null(msp_map_mtp_incident("acme", p, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "alert_type"));
    json_object_set_new(p, "alert_type", json_integer(-3));
    assert_null(msp_map_mtp_incident("acme", p, NULL, err, sizeof(err)));
    json_object_set_new(p, "alert_type", json_string("x"));
    json_object_set_new(p, "description", json_true());
    assert_null(msp_map_mtp_incident("acme", p, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "description"));
    json_decref(p);
    p = payload();
    assert_null(msp_map_mtp_incident("", p, NULL, err, sizeof(err)));
    json_decref(p);
}

#define EID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void event_marker_carries_occurred_at(void **state) {
    (void)state;
    char m[256];
    msp_event_marker(m, sizeof(m), EID, "2026-12-06T10:02:00.000Z");
    assert_string_equal(m, "mspsync-event: " EID " occurred_at=2026-12-06T10:02:00.000Z");
    /* The id alone is a prefix: a search for it finds old and new markers. */
    assert_non_null(strstr(m, MSP_EVENT_MARKER EID));
    msp_event_marker(m, sizeof(m), EID, NULL);
    assert_string_equal(m, "mspsync-event: " EID);
    msp_event_marker(m, sizeof(m), EID, "2026-12-06 10:02");
    assert_string_equal(m, "mspsync-event: " EID); /* a text with a space would not read back */
    msp_event_marker(m, sizeof(m), EID, "2026-12-06T10:02:00Z\xc3\xa9");
    assert_string_equal(m, "mspsync-event: " EID); /* nor would anything but a date-time */
    msp_event_marker(m, sizeof(m), EID, "");
    assert_string_equal(m, "mspsync-event: " EID);
    assert_true(msp_event_marker(m, 8, EID, "2026-12-06T10:02:00Z") >= 8);
}

static void latest_event_marker_of_a_comment(void **state) {
    (void)state;
    int64_t ms = -1;
    assert_int_equal(msp_event_marker_latest(NULL, &ms), 0);
    assert_int_equal(msp_event_marker_latest("no marker here", &ms), 0);
    /* An old marker (no occurred_at), a cut one, a bad date: none counts. */
    assert_int_equal(msp_event_marker_latest("mspsync-event: " EID "\n", &ms), 0);
    assert_int_equal(
        msp_event_marker_latest("mspsync-event: 0123 occurred_at=2026-12-06T10:02:00Z", &ms), 0);
    assert_int_equal(
        msp_event_marker_latest("mspsync-event: " EID " occurred_at=2026-02-30T10:02:00Z", &ms), 0);
    assert_int_equal(msp_event_marker_latest("mspsync-event: " EID " occurred_at=", &ms), 0);
    assert_int_equal(ms, -1);
    /* The first comment of a ticket: incident marker, then the event marker; text after it. */
    assert_int_equal(msp_event_marker_latest("Incident inc-1\n\nmspsync-incident: " EID "/1\n"
                                             "mspsync-event: " EID
                                             " occurred_at=2026-12-06T10:02:00.250+01:00\nend",
                                             &ms),
                     1);
    assert_int_equal(ms, 1796547720250LL);
    /* Several markers: the latest wins, whatever their order. */
    assert_int_equal(
        msp_event_marker_latest("mspsync-event: " EID " occurred_at=2026-12-06T10:05:00Z "
                                "mspsync-event: " EID " occurred_at=2026-12-06T10:01:00Z",
                                &ms),
        1);
    assert_int_equal(ms, 1796551500000LL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(maps_every_field),
        cmocka_unit_test(refire_keeps_fingerprint_changes_event),
        cmocka_unit_test(fingerprint_parts_cannot_run_together),
        cmocka_unit_test(subject_defaults_to_org_and_ids_may_be_integers),
        cmocka_unit_test(rejects_what_cannot_be_an_incident),
        cmocka_unit_test(event_marker_carries_occurred_at),
        cmocka_unit_test(latest_event_marker_of_a_comment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
