/*
 * test_merge.c — one asset per machine: match keys, the merged record, the date policy and the
 * date.changes message (services/normalizer/merge.c, docs/design.md "One asset per machine").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "merge.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static json_t *J(const char *text)
{
    json_error_t e;
    json_t      *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (!v)
        fail_msg("bad test JSON (%s): %s", e.text, text);
    return v;
}

/* got must equal the JSON in want (exactly, object key order aside). Does not take got. */
#define assert_json(got, want) assert_json_at((got), (want), __FILE__, __LINE__)
static void assert_json_at(const json_t *got, const char *want, const char *file, int line)
{
    json_t *w  = J(want);
    int     eq = got && json_equal(got, w);
    if (!eq) {
        char *g  = got ? json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
        char *ws = json_dumps(w, JSON_SORT_KEYS | JSON_COMPACT);
        print_error("%s:%d: JSON differs\n  want: %s\n  got:  %s\n", file, line, ws,
                    g ? g : "(NULL)");
        free(g);
        free(ws);
    }
    json_decref(w);
    if (!eq)
        _fail(file, line);
}

/* A Syncro source record. purchase / warranty NULL -> JSON null. */
static json_t *syncro_rec(const char *id, const char *purchase, const char *warranty, int gone)
{
    return json_pack("{s:i,s:s,s:s+,s:s,s:[{s:s,s:s}],s:s,s:s,s:s,s:s,s:n,s:n,"
                     "s:{s:s,s:s},s:[s,s],s:s,s:s,s:{s:s?,s:s?},s:b}",
                     "schema_version", 1, "tenant", "acme", "id", "syncro:", id, "kind", "asset",
                     "sources", "integration", "syncro", "id", id, "name", "WS-01", "asset_type",
                     "Desktop", "serial", "ABC123", "manufacturer", "Dell Inc.", "model",
                     "form_factor", "os", "name", "Windows 11 Pro", "build", "22631", "macs",
                     "A8:BB:CC:DD:EE:02", "A8:BB:CC:DD:EE:01", "customer_ref", "syncro:42",
                     "updated_at", "2024-05-01T10:00:00Z", "dates", "purchase", purchase,
                     "warranty", warranty, "gone", gone);
}

/* A ConnectWise RMM source record. */
static json_t *cwrmm_rec(const char *id, const char *purchase, const char *warranty, int gone)
{
    return json_pack("{s:i,s:s,s:s+,s:s,s:[{s:s,s:s}],s:s,s:n,s:s,s:s,s:s,s:s,"
                     "s:n,s:[s,s],s:n,s:s,s:{s:s?,s:s?},s:b}",
                     "schema_version", 1, "tenant", "acme", "id", "cwrmm:", id, "kind", "asset",
                     "sources", "integration", "cwrmm", "id", id, "name", "CW-NAME", "asset_type",
                     "serial", "ABC123", "manufacturer", "Dell", "model", "OptiPlex 7090",
                     "form_factor", "Laptop", "os", "macs", "A8:BB:CC:DD:EE:03", "A8:BB:CC:DD:EE:01",
                     "customer_ref", "updated_at", "2024-06-01T00:00:00Z", "dates", "purchase",
                     purchase, "warranty", warranty, "gone", gone);
}

static nz_member_t member(const char *src_id, const json_t *rec)
{
    nz_member_t m = {.src_id = src_id, .rec = rec, .wrote = {NULL, NULL}};
    return m;
}

/* The merged "dates" of members (no edits unless given). */
static json_t *dates_of(const nz_member_t *m, size_t n, const json_t *edits, const json_t *prev)
{
    json_t *merged = nz_merge_asset("acme", "syncro:1", m, n, edits, prev);
    assert_non_null(merged);
    json_t *d = json_incref(json_object_get(merged, "dates"));
    json_decref(merged);
    return d;
}

/* ---- nz_match_keys ---------------------------------------------------------------------- */

static void match_keys_serial_then_macs(void **state)
{
    (void)state;
    json_t *r = J("{\"manufacturer\":\"Dell Inc.\",\"serial\":\"ABC 123\","
                  "\"macs\":[\"A8:BB:CC:DD:EE:01\",\"A8:BB:CC:DD:EE:02\"]}");
    char keys[NZ_MKEY_MAX][NZ_MKEY_LEN];
    assert_int_equal(nz_match_keys(r, keys, NZ_MKEY_MAX), 3);
    assert_string_equal(keys[0], "sn:DELL|ABC123");
    assert_string_equal(keys[1], "mac:A8:BB:CC:DD:EE:01");
    assert_string_equal(keys[2], "mac:A8:BB:CC:DD:EE:02");
    json_decref(r);

    /* case, punctuation and the company suffix do not matter */
    r = J("{\"manufacturer\":\"dell\",\"serial\":\"abc-123\",\"macs\":[]}");
    assert_int_equal(nz_match_keys(r, keys, NZ_MKEY_MAX), 1);
    assert_string_equal(keys[0], "sn:DELL|ABC123");
    json_decref(r);

    r = J("{\"manufacturer\":\"Microsoft Corporation\",\"serial\":\"MS-4711-42\"}");
    assert_int_equal(nz_match_keys(r, keys, NZ_MKEY_MAX), 1);
    assert_string_equal(keys[0], "sn:MICROSOFT|MS471142");
    json_decref(r);

    /* legal forms are whole words at the end: "Co." goes, the "co" inside "Cisco" stays */
    static const char *const makers[][2] = {{"Cisco", "sn:CISCO|X1"}, {"Costco", "sn:COSTCO|X1"},
                                            {"Acme Co. Ltd.", "sn:ACME|X1"},
                                            {"ACME", "sn:ACME|X1"},
                                            {"Hewlett-Packard Company", "sn:HEWLETTPACKARD|X1"}};
    for (size_t i = 0; i < sizeof makers / sizeof makers[0]; i++) {
        json_t *m = json_pack("{s:s,s:s}", "manufacturer", makers[i][0], "serial", "x1");
        assert_int_equal(nz_match_keys(m, keys, NZ_MKEY_MAX), 1);
        assert_string_equal(keys[0], makers[i][1]);
        json_decref(m);
    }
}

static void match_keys_no_serial_key_for_placeholders(void **state)
{
    (void)state;
    static const char *const junk[] = {"To Be Filled By O.E.M.", "Default string", "0",
                                       "System Serial Number", "N/A", "", "  "};
    char keys[NZ_MKEY_MAX][NZ_MKEY_LEN];
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        json_t *r = json_pack("{s:s,s:s,s:[s]}", "manufacturer", "Dell Inc.", "serial", junk[i],
                              "macs", "A8:BB:CC:DD:EE:01");
        memset(keys, 0, sizeof keys);
        int n = nz_match_keys(r, keys, NZ_MKEY_MAX);
        if (n != 1 || strcmp(keys[0], "mac:A8:BB:CC:DD:EE:01") != 0)
            fail_msg("serial \"%s\": %d keys, first \"%s\"", junk[i], n, keys[0]);
        json_decref(r);
    }
    /* no manufacturer (or no serial) -> no sn key either */
    json_t *r = J("{\"manufacturer\":null,\"serial\":\"ABC123\",\"macs\":[\"A8:BB:CC:DD:EE:01\"]}");
    assert_int_equal(nz_match_keys(r, keys, NZ_MKEY_MAX), 1);
    assert_string_equal(keys[0], "mac:A8:BB:CC:DD:EE:01");
    json_decref(r);
    r = J("{\"manufacturer\":\"Dell Inc.\",\"macs\":[]}");
    assert_int_equal(nz_match_keys(r, keys, NZ_MKEY_MAX), 0);
    json_decref(r);
}

static void match_keys_respect_max(void **state)
{
    (void)state;
    json_t *r = J("{\"manufacturer\":\"Dell Inc.\",\"serial\":\"ABC123\","
                  "\"macs\":[\"A8:BB:CC:DD:EE:01\",\"A8:BB:CC:DD:EE:02\",\"A8:BB:CC:DD:EE:03\"]}");
    char keys[4][NZ_MKEY_LEN];
    memset(keys, 0, sizeof keys);
    strcpy(keys[2], "untouched");
    assert_int_equal(nz_match_keys(r, keys, 2), 2);
    assert_string_equal(keys[0], "sn:DELL|ABC123");
    assert_string_equal(keys[1], "mac:A8:BB:CC:DD:EE:01");
    assert_string_equal(keys[2], "untouched");

    strcpy(keys[1], "untouched");
    assert_int_equal(nz_match_keys(r, keys, 1), 1);
    assert_string_equal(keys[0], "sn:DELL|ABC123");
    assert_string_equal(keys[1], "untouched");

    strcpy(keys[0], "untouched");
    assert_int_equal(nz_match_keys(r, keys, 0), 0);
    assert_string_equal(keys[0], "untouched");
    json_decref(r);

    /* without a serial key the MACs fill the slots */
    r = J("{\"manufacturer\":\"Dell Inc.\",\"serial\":\"Default string\","
          "\"macs\":[\"A8:BB:CC:DD:EE:01\",\"A8:BB:CC:DD:EE:02\",\"A8:BB:CC:DD:EE:03\"]}");
    assert_int_equal(nz_match_keys(r, keys, 2), 2);
    assert_string_equal(keys[0], "mac:A8:BB:CC:DD:EE:01");
    assert_string_equal(keys[1], "mac:A8:BB:CC:DD:EE:02");
    json_decref(r);
}

/* ---- nz_merge_asset --------------------------------------------------------------------- */

static void merge_syncro_is_primary_even_listed_second(void **state)
{
    (void)state;
    json_t     *cw = cwrmm_rec("u1", "2022-01-01", "2026-06-30", 0);
    json_t     *sy = syncro_rec("1", "2021-01-01", "2025-01-01", 0);
    nz_member_t m[2] = {member("cwrmm:u1", cw), member("syncro:1", sy)};
    json_t     *merged = nz_merge_asset("acme", "cwrmm:u1", m, 2, NULL, NULL);
    assert_json(merged,
                "{\"schema_version\":1,\"tenant\":\"acme\",\"id\":\"cwrmm:u1\",\"kind\":\"asset\","
                "\"sources\":[{\"integration\":\"cwrmm\",\"id\":\"u1\"},"
                "{\"integration\":\"syncro\",\"id\":\"1\"}],"
                "\"name\":\"WS-01\",\"asset_type\":\"Desktop\",\"serial\":\"ABC123\","
                "\"manufacturer\":\"Dell Inc.\",\"model\":\"OptiPlex 7090\","
                "\"form_factor\":\"Laptop\","
                "\"os\":{\"name\":\"Windows 11 Pro\",\"build\":\"22631\"},"
                "\"customer_ref\":\"syncro:42\",\"site_ref\":null,"
                "\"updated_at\":\"2024-05-01T10:00:00Z\","
                "\"macs\":[\"A8:BB:CC:DD:EE:01\",\"A8:BB:CC:DD:EE:02\",\"A8:BB:CC:DD:EE:03\"],"
                "\"dates\":{\"purchase\":{\"value\":\"2021-01-01\",\"source\":\"syncro\"},"
                "\"warranty\":{\"value\":\"2026-06-30\",\"source\":\"cwrmm\"}},"
                "\"gone\":false}");
    json_decref(merged);
    json_decref(cw);
    json_decref(sy);
}

static void merge_macs_sorted_union_without_duplicates(void **state)
{
    (void)state;
    json_t *a = J("{\"sources\":[{\"integration\":\"syncro\",\"id\":\"1\"}],"
                  "\"macs\":[\"CC:00:00:00:00:03\",\"AA:00:00:00:00:01\",\"AA:00:00:00:00:01\"]}");
    json_t *b = J("{\"sources\":[{\"integration\":\"cwrmm\",\"id\":\"u1\"}],"
                  "\"macs\":[\"BB:00:00:00:00:02\",\"AA:00:00:00:00:01\",\"CC:00:00:00:00:03\"]}");
    json_t *c = J("{\"sources\":[{\"integration\":\"cwrmm\",\"id\":\"u2\"}]}"); /* no macs */
    nz_member_t m[3] = {member("syncro:1", a), member("cwrmm:u1", b), member("cwrmm:u2", c)};
    json_t     *merged = nz_merge_asset("acme", "syncro:1", m, 3, NULL, NULL);
    assert_json(json_object_get(merged, "macs"),
                "[\"AA:00:00:00:00:01\",\"BB:00:00:00:00:02\",\"CC:00:00:00:00:03\"]");
    json_decref(merged);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void merge_gone_member_left_out(void **state)
{
    (void)state;
    json_t     *sy = syncro_rec("1", "2019-01-01", "2030-01-01", 1); /* gone */
    json_t     *cw = cwrmm_rec("u1", "2022-01-01", "2026-06-30", 0);
    nz_member_t m[2] = {member("syncro:1", sy), member("cwrmm:u1", cw)};
    json_t     *merged = nz_merge_asset("acme", "syncro:1", m, 2, NULL, NULL);
    /* primary = cwrmm (the only live one); nothing of the gone Syncro record leaks in */
    assert_json(merged,
                "{\"schema_version\":1,\"tenant\":\"acme\",\"id\":\"syncro:1\",\"kind\":\"asset\","
                "\"sources\":[{\"integration\":\"cwrmm\",\"id\":\"u1\"}],"
                "\"name\":\"CW-NAME\",\"asset_type\":null,\"serial\":\"ABC123\","
                "\"manufacturer\":\"Dell\",\"model\":\"OptiPlex 7090\",\"form_factor\":\"Laptop\","
                "\"os\":null,\"customer_ref\":null,\"site_ref\":null,"
                "\"updated_at\":\"2024-06-01T00:00:00Z\","
                "\"macs\":[\"A8:BB:CC:DD:EE:01\",\"A8:BB:CC:DD:EE:03\"],"
                "\"dates\":{\"purchase\":{\"value\":\"2022-01-01\",\"source\":\"cwrmm\"},"
                "\"warranty\":{\"value\":\"2026-06-30\",\"source\":\"cwrmm\"}},"
                "\"gone\":false}");
    json_decref(merged);
    json_decref(sy);
    json_decref(cw);
}

static void merge_all_gone_is_gone_with_all_sources(void **state)
{
    (void)state;
    json_t     *cw = cwrmm_rec("u1", "2022-01-01", NULL, 1);
    json_t     *sy = syncro_rec("1", "2021-01-01", NULL, 1);
    nz_member_t m[2] = {member("cwrmm:u1", cw), member("syncro:1", sy)};
    json_t     *merged = nz_merge_asset("acme", "syncro:1", m, 2, NULL, NULL);
    assert_true(json_is_true(json_object_get(merged, "gone")));
    assert_json(json_object_get(merged, "sources"),
                "[{\"integration\":\"cwrmm\",\"id\":\"u1\"},{\"integration\":\"syncro\",\"id\":\"1\"}]");
    /* primary falls back to the first member */
    assert_json(json_object_get(merged, "name"), "\"CW-NAME\"");
    assert_json(json_object_get(merged, "os"), "{\"name\":\"Windows 11 Pro\",\"build\":\"22631\"}");
    assert_json(json_object_get(merged, "macs"),
                "[\"A8:BB:CC:DD:EE:01\",\"A8:BB:CC:DD:EE:02\",\"A8:BB:CC:DD:EE:03\"]");
    /* no live member -> no date candidates */
    assert_json(json_object_get(merged, "dates"), "{\"purchase\":null,\"warranty\":null}");
    json_decref(merged);
    json_decref(cw);
    json_decref(sy);
}

/* ---- the date policy -------------------------------------------------------------------- */

static void dates_purchase_earliest_warranty_latest(void **state)
{
    (void)state;
    json_t     *sy  = syncro_rec("1", "2021-03-01", "2025-01-01", 0);
    json_t     *cw1 = cwrmm_rec("u1", "2020-12-31", "2024-01-01", 0);
    json_t     *cw2 = cwrmm_rec("u2", "2022-01-01", "2027-02-28", 0);
    nz_member_t m[3] = {member("syncro:1", sy), member("cwrmm:u1", cw1), member("cwrmm:u2", cw2)};
    json_t     *d   = dates_of(m, 3, NULL, NULL);
    assert_json(d, "{\"purchase\":{\"value\":\"2020-12-31\",\"source\":\"cwrmm\"},"
                   "\"warranty\":{\"value\":\"2027-02-28\",\"source\":\"cwrmm\"}}");
    json_decref(d);
    /* a gone member's values are not candidates */
    json_object_set_new(cw2, "gone", json_true());
    json_object_set_new(cw1, "gone", json_true());
    d = dates_of(m, 3, NULL, NULL);
    assert_json(d, "{\"purchase\":{\"value\":\"2021-03-01\",\"source\":\"syncro\"},"
                   "\"warranty\":{\"value\":\"2025-01-01\",\"source\":\"syncro\"}}");
    json_decref(d);
    json_decref(sy);
    json_decref(cw1);
    json_decref(cw2);
}

static void dates_edit_wins_as_manual(void **state)
{
    (void)state;
    json_t     *sy    = syncro_rec("1", "2019-01-01", "2025-01-01", 0);
    json_t     *cw    = cwrmm_rec("u1", "2018-01-01", "2026-01-01", 0);
    nz_member_t m[2]  = {member("syncro:1", sy), member("cwrmm:u1", cw)};
    json_t     *edits = J("{\"purchase\":\"2020-01-01\"}");
    json_t     *prev  = J("{\"dates\":{\"purchase\":{\"value\":\"2018-01-01\",\"source\":\"cwrmm\"}}}");
    json_t     *d     = dates_of(m, 2, edits, prev);
    /* the edit beats the earlier member values; warranty still follows the policy */
    assert_json(d, "{\"purchase\":{\"value\":\"2020-01-01\",\"source\":\"manual\"},"
                   "\"warranty\":{\"value\":\"2026-01-01\",\"source\":\"cwrmm\"}}");
    json_decref(d);
    json_decref(edits);
    json_decref(prev);
    json_decref(sy);
    json_decref(cw);
}

static void dates_echo_is_not_a_candidate(void **state)
{
    (void)state;
    json_t     *sy = syncro_rec("1", "2021-01-01", NULL, 0);
    json_t     *cw = cwrmm_rec("u1", "2019-05-05", NULL, 0);
    nz_member_t m[2] = {member("syncro:1", sy), member("cwrmm:u1", cw)};
    m[1].wrote[NZ_F_PURCHASE] = "2019-05-05"; /* write-back put it there */
    json_t *d = dates_of(m, 2, NULL, NULL);
    assert_json(d, "{\"purchase\":{\"value\":\"2021-01-01\",\"source\":\"syncro\"},"
                   "\"warranty\":null}");
    json_decref(d);

    /* a different value than what was written is a real candidate again */
    m[1].wrote[NZ_F_PURCHASE] = "2019-05-06";
    d = dates_of(m, 2, NULL, NULL);
    assert_json(d, "{\"purchase\":{\"value\":\"2019-05-05\",\"source\":\"cwrmm\"},"
                   "\"warranty\":null}");
    json_decref(d);

    /* only echoes: the previous effective value stays */
    json_t *only = syncro_rec("1", "2018-08-08", NULL, 0);
    nz_member_t m1[1] = {member("syncro:1", only)};
    m1[0].wrote[NZ_F_PURCHASE] = "2018-08-08";
    json_t *prev = J("{\"dates\":{\"purchase\":{\"value\":\"2018-08-08\",\"source\":\"manual\"},"
                     "\"warranty\":null}}");
    d = dates_of(m1, 1, NULL, prev);
    assert_json(d, "{\"purchase\":{\"value\":\"2018-08-08\",\"source\":\"manual\"},"
                   "\"warranty\":null}");
    json_decref(d);
    json_decref(prev);
    json_decref(only);
    json_decref(sy);
    json_decref(cw);
}

static void dates_tie_keeps_prev_source(void **state)
{
    (void)state;
    json_t     *sy = syncro_rec("1", "2020-01-01", "2025-01-01", 0);
    json_t     *cw = cwrmm_rec("u1", "2020-01-01", "2025-01-01", 0);
    nz_member_t m[2] = {member("syncro:1", sy), member("cwrmm:u1", cw)};

    /* prev's source is among the tied -> kept (cwrmm, although listed second) */
    json_t *prev = J("{\"dates\":{\"purchase\":{\"value\":\"2020-01-01\",\"source\":\"cwrmm\"},"
                     "\"warranty\":{\"value\":\"2025-01-01\",\"source\":\"cwrmm\"}}}");
    json_t *d = dates_of(m, 2, NULL, prev);
    assert_json(d, "{\"purchase\":{\"value\":\"2020-01-01\",\"source\":\"cwrmm\"},"
                   "\"warranty\":{\"value\":\"2025-01-01\",\"source\":\"cwrmm\"}}");
    json_decref(d);
    json_decref(prev);

    /* no prev -> the first in member order */
    d = dates_of(m, 2, NULL, NULL);
    assert_json(d, "{\"purchase\":{\"value\":\"2020-01-01\",\"source\":\"syncro\"},"
                   "\"warranty\":{\"value\":\"2025-01-01\",\"source\":\"syncro\"}}");
    json_decref(d);

    /* prev's source not among the tied (manual, edit since removed) -> the first in order */
    prev = J("{\"dates\":{\"purchase\":{\"value\":\"2020-01-01\",\"source\":\"manual\"},"
             "\"warranty\":null}}");
    d = dates_of(m, 2, NULL, prev);
    assert_json(d, "{\"purchase\":{\"value\":\"2020-01-01\",\"source\":\"syncro\"},"
                   "\"warranty\":{\"value\":\"2025-01-01\",\"source\":\"syncro\"}}");
    json_decref(d);
    json_decref(prev);
    json_decref(sy);
    json_decref(cw);
}

static void dates_no_values_are_null(void **state)
{
    (void)state;
    json_t *sy = syncro_rec("1", NULL, NULL, 0);
    json_t *cw = J("{\"sources\":[{\"integration\":\"cwrmm\",\"id\":\"u1\"}],"
                   "\"dates\":{\"purchase\":\"\"}}");                       /* empty = none */
    json_t *c2 = J("{\"sources\":[{\"integration\":\"cwrmm\",\"id\":\"u2\"}]}"); /* not read */
    nz_member_t m[3] = {member("syncro:1", sy), member("cwrmm:u1", cw), member("cwrmm:u2", c2)};
    json_t     *d = dates_of(m, 3, NULL, NULL);
    assert_json(d, "{\"purchase\":null,\"warranty\":null}");
    json_decref(d);
    json_decref(sy);
    json_decref(cw);
    json_decref(c2);
}

/* ---- nz_merge_change -------------------------------------------------------------------- */

static void change_conflict_settled_by_policy(void **state)
{
    (void)state;
    json_t     *sy = syncro_rec("1", "2021-01-01", NULL, 0);
    json_t     *cw = cwrmm_rec("u1", "2022-01-01", NULL, 0);
    nz_member_t m[2] = {member("syncro:1", sy), member("cwrmm:u1", cw)};
    json_t     *prev   = J("{\"id\":\"syncro:1\"}"); /* no dates yet */
    json_t     *merged = nz_merge_asset("acme", "syncro:1", m, 2, NULL, prev);
    json_t     *ch     = nz_merge_change(prev, merged, m, 2, &(nz_upserted_t){"cwrmm:u1", NULL}, 1, 0);
    assert_json(ch, "{\"purchase\":\"2021-01-01\"}");
    json_decref(ch);

    /* the same state merged again (prev = what was stored) -> nothing new to write */
    ch = nz_merge_change(merged, merged, m, 2, NULL, 0, 0);
    assert_null(ch);
    json_decref(merged);
    json_decref(prev);
    json_decref(sy);
    json_decref(cw);
}

static void change_none_without_conflict(void **state)
{
    (void)state;
    json_t     *sy = syncro_rec("1", "2021-01-01", "2025-01-01", 0);
    json_t     *cw = cwrmm_rec("u1", NULL, NULL, 0);
    nz_member_t m[2] = {member("syncro:1", sy), member("cwrmm:u1", cw)};
    json_t     *prev   = J("{\"id\":\"syncro:1\"}");
    json_t     *merged = nz_merge_asset("acme", "syncro:1", m, 2, NULL, prev);
    assert_json(json_object_get(merged, "dates"),
                "{\"purchase\":{\"value\":\"2021-01-01\",\"source\":\"syncro\"},"
                "\"warranty\":{\"value\":\"2025-01-01\",\"source\":\"syncro\"}}");
    json_t *ch = nz_merge_change(prev, merged, m, 2, &(nz_upserted_t){"syncro:1", NULL}, 1, 0);
    assert_null(ch);
    json_decref(merged);
    json_decref(prev);

    /* a gone member's different value is no conflict either */
    json_t     *gone = cwrmm_rec("u2", "2010-01-01", "2030-01-01", 1);
    nz_member_t m3[3] = {m[0], m[1], member("cwrmm:u2", gone)};
    prev   = J("{\"id\":\"syncro:1\"}");
    merged = nz_merge_asset("acme", "syncro:1", m3, 3, NULL, prev);
    ch     = nz_merge_change(prev, merged, m3, 3, &(nz_upserted_t){"syncro:1", NULL}, 1, 0);
    assert_null(ch);
    json_decref(merged);
    json_decref(prev);
    json_decref(gone);
    json_decref(sy);
    json_decref(cw);
}

static void change_edit_mask_forces_field(void **state)
{
    (void)state;
    json_t     *sy = syncro_rec("1", NULL, "2025-01-01", 0);
    nz_member_t m[1] = {member("syncro:1", sy)};
    json_t     *prev  = J("{\"dates\":{\"purchase\":null,"
                          "\"warranty\":{\"value\":\"2025-01-01\",\"source\":\"syncro\"}}}");
    json_t     *edits = J("{\"purchase\":\"2020-01-01\"}");
    json_t     *merged = nz_merge_asset("acme", "syncro:1", m, 1, edits, prev);
    /* no member disagrees, still the edited field is written (and only that one) */
    json_t *ch = nz_merge_change(prev, merged, m, 1, NULL, 0, 1u << NZ_F_PURCHASE);
    assert_json(ch, "{\"purchase\":\"2020-01-01\"}");
    json_decref(ch);
    /* without the bit: no conflict -> nothing */
    ch = nz_merge_change(merged, merged, m, 1, NULL, 0, 0);
    assert_null(ch);
    json_decref(merged);
    json_decref(edits);

    /* an edit removed (bit set, no edit value, no member value) -> the field is cleared */
    json_t *wprev = J("{\"dates\":{\"purchase\":null,"
                      "\"warranty\":{\"value\":\"2027-01-01\",\"source\":\"manual\"}}}");
    json_t *sy2   = syncro_rec("1", NULL, NULL, 0);
    m[0]          = member("syncro:1", sy2);
    merged        = nz_merge_asset("acme", "syncro:1", m, 1, NULL, wprev);
    ch            = nz_merge_change(wprev, merged, m, 1, NULL, 0, 1u << NZ_F_WARRANTY);
    assert_json(ch, "{\"warranty\":null}");
    json_decref(ch);
    json_decref(merged);
    json_decref(wprev);
    json_decref(sy2);
    json_decref(prev);
    json_decref(sy);
}

static void change_upserted_member_changed_value(void **state)
{
    (void)state;
    json_t     *sy = syncro_rec("1", "2021-01-01", NULL, 0);
    json_t     *cw = cwrmm_rec("u1", "2022-01-01", NULL, 0);      /* now */
    json_t     *cw_old = cwrmm_rec("u1", "2023-01-01", NULL, 0);  /* before the upsert */
    nz_member_t m[2] = {member("syncro:1", sy), member("cwrmm:u1", cw)};
    json_t     *prev = J("{\"dates\":{\"purchase\":{\"value\":\"2021-01-01\",\"source\":\"syncro\"},"
                         "\"warranty\":null}}");
    json_t     *merged = nz_merge_asset("acme", "syncro:1", m, 2, NULL, prev);
    assert_json(json_object_get(merged, "dates"),
                "{\"purchase\":{\"value\":\"2021-01-01\",\"source\":\"syncro\"},\"warranty\":null}");

    /* effective unchanged, but cwrmm moved to another conflicting value -> re-assert ours */
    json_t *ch = nz_merge_change(prev, merged, m, 2, &(nz_upserted_t){"cwrmm:u1", cw_old}, 1, 0);
    assert_json(ch, "{\"purchase\":\"2021-01-01\"}");
    json_decref(ch);

    /* the same value again (replay / unrelated fact changed) -> nothing: no loop */
    json_t *cw_same = cwrmm_rec("u1", "2022-01-01", NULL, 0);
    ch = nz_merge_change(prev, merged, m, 2, &(nz_upserted_t){"cwrmm:u1", cw_same}, 1, 0);
    assert_null(ch);

    /* some other member upserted -> cwrmm's (unchanged) disagreement is not re-sent */
    ch = nz_merge_change(prev, merged, m, 2, &(nz_upserted_t){"syncro:1", sy}, 1, 0);
    assert_null(ch);
    json_decref(cw_same);
    json_decref(merged);
    json_decref(prev);
    json_decref(sy);
    json_decref(cw);
    json_decref(cw_old);
}

/* ---- nz_change_message ------------------------------------------------------------------ */

static void change_message_shape(void **state)
{
    (void)state;
    json_t     *sy  = syncro_rec("123", NULL, "2026-01-01", 0);
    json_t     *cwg = cwrmm_rec("dead-beef", "2015-01-01", NULL, 1); /* gone: no target */
    json_t     *cw  = cwrmm_rec("4f1c-9a", "2022-01-01", NULL, 0);
    nz_member_t m[3] = {member("syncro:123", sy), member("cwrmm:dead-beef", cwg),
                        member("cwrmm:4f1c-9a", cw)};
    json_t     *dates = J("{\"purchase\":\"2022-01-01\",\"warranty\":null}");
    json_t     *msg   = nz_change_message("acme", "syncro:123", "c0ffee", "edit", dates, m, 3,
                                          "2024-06-01T12:00:00Z");
    assert_json(msg,
                "{\"schema_version\":1,\"tenant\":\"acme\",\"asset_id\":\"syncro:123\","
                "\"change_id\":\"c0ffee\",\"reason\":\"edit\","
                "\"dates\":{\"purchase\":\"2022-01-01\",\"warranty\":null},"
                "\"targets\":["
                "{\"integration\":\"syncro\",\"id\":\"123\","
                "\"current\":{\"purchase\":null,\"warranty\":\"2026-01-01\"}},"
                "{\"integration\":\"cwrmm\",\"id\":\"4f1c-9a\","
                "\"current\":{\"purchase\":\"2022-01-01\",\"warranty\":null}}],"
                "\"at\":\"2024-06-01T12:00:00Z\"}");
    /* dates is borrowed, not stolen */
    assert_int_equal(dates->refcount, 2);
    json_decref(msg);
    assert_int_equal(dates->refcount, 1);
    json_decref(dates);
    json_decref(sy);
    json_decref(cwg);
    json_decref(cw);
}

/* ---- identities that are no identities ------------------------------------------------- */

static void mac_virtual_shared_and_local_are_no_keys(void **state)
{
    (void)state;
    static const char *const never[] = {
        "00:15:5D:01:02:03", /* Hyper-V */           "00:50:56:C0:00:08", /* VMware */
        "00:0C:29:AA:BB:CC", "00:05:69:00:00:01",    "00:1C:14:00:00:01",
        "08:00:27:12:34:56", /* VirtualBox */        "0A:00:27:00:00:00", /* host-only */
        "02:42:AC:11:00:02", /* Docker */            "00:1C:42:00:00:01", /* Parallels */
        "00:16:3E:00:00:01", /* Xen */               "52:54:00:12:34:56", /* QEMU/KVM */
        "00:05:9A:3C:7A:00", /* AnyConnect */        "20:41:53:59:4E:FF", /* RAS async */
        "50:50:54:50:30:30", /* PPTP miniport */     "00:03:FF:00:00:01", /* Virtual PC */
        "00:00:00:00:00:00", "FF:FF:FF:FF:FF:FF",    "01:00:5E:00:00:FB", /* multicast */
        "DA:A1:19:00:00:01", /* randomized Wi-Fi */  "not a mac",
    };
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (nz_mac_is_identity(never[i]))
            fail_msg("%s taken for a machine's identity", never[i]);
    static const char *const real[] = {"3C:18:A0:D0:C0:01", "A4:BB:6D:00:00:07",
                                       "00:05:9A:3C:7A:01", "00:15:5C:01:02:03",
                                       "F8:75:A4:12:34:56"};
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++)
        if (!nz_mac_is_identity(real[i]))
            fail_msg("%s (burnt-in, universally administered) is no identity", real[i]);

    json_t *r = J("{\"manufacturer\":\"Dell Inc.\",\"serial\":\"XXXXXXXX\","
                  "\"macs\":[\"00:15:5D:01:02:03\",\"02:42:AC:11:00:02\",\"3C:18:A0:D0:C0:01\"]}");
    char keys[NZ_MKEY_MAX][NZ_MKEY_LEN];
    assert_int_equal(nz_match_keys(r, keys, NZ_MKEY_MAX), 1);
    assert_string_equal(keys[0], "mac:3C:18:A0:D0:C0:01");
    json_decref(r);
}

static void serial_placeholders(void **state)
{
    (void)state;
    static const char *const junk[] = {"0123456789", "DEFAULTSTRING", "TOBEFILLEDBYOEM",
                                       "SYSTEMSERIALNUMBER", "NONE", "NOTSPECIFIED", "123456789",
                                       "XXXXXXXX", "00000000", "FFFFFFFFFFFF", "1", "",
                                       "1234567890", "CHASSISSERIALNUMBER"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        if (!nz_serial_is_placeholder(junk[i]))
            fail_msg("\"%s\" taken for a serial", junk[i]);
    static const char *const real[] = {"5CG1234XYZ", "PF1ABC23", "XX1XXXXX", "C02XK0AAJGH5", "001"};
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++)
        if (nz_serial_is_placeholder(real[i]))
            fail_msg("\"%s\" taken for a placeholder", real[i]);
}

static void key_holders_counted_then_demoted(void **state)
{
    (void)state;
    char out[NZ_MKEY_LEN];
    assert_int_equal(nz_key_holders_add(NULL, "syncro:1", 3, out, sizeof out), 1);
    assert_string_equal(out, "syncro:1");
    assert_int_equal(nz_key_holders_add("syncro:1", "syncro:1", 3, out, sizeof out), 0);
    assert_int_equal(nz_key_holders_add("syncro:1", "cwrmm:u1", 3, out, sizeof out), 1);
    assert_string_equal(out, "syncro:1 cwrmm:u1");
    assert_int_equal(nz_key_holders_add("syncro:1 cwrmm:u1", "syncro:2", 3, out, sizeof out), 1);
    assert_string_equal(out, "syncro:1 cwrmm:u1 syncro:2");
    /* a holder already counted is no new machine; the fourth is */
    char list[NZ_MKEY_LEN];
    snprintf(list, sizeof list, "%s", out);
    assert_int_equal(nz_key_holders_add(list, "cwrmm:u1", 3, out, sizeof out), 0);
    assert_int_equal(nz_key_holders_add("syncro:1 cwrmm:u1 syncro:2", "syncro:3", 3, out, sizeof out), 2);
    assert_string_equal(out, NZ_KEY_DEMOTED);
    /* demoted for good, whoever comes */
    assert_int_equal(nz_key_holders_add(NZ_KEY_DEMOTED, "syncro:1", 3, out, sizeof out), 0);
    /* "syncro:1" is not "syncro:10" */
    assert_int_equal(nz_key_holders_add("syncro:10", "syncro:1", 1, out, sizeof out), 2);
    /* threshold 1: any second machine demotes */
    assert_int_equal(nz_key_holders_add("syncro:1", "syncro:2", 1, out, sizeof out), 2);
}

/* Demoted keys for the split tests: the ones listed in arg (NULL-terminated). */
static int listed(const char *key, int holders, void *arg)
{
    (void)holders;
    for (const char *const *k = arg; *k; k++)
        if (strcmp(*k, key) == 0)
            return 1;
    return 0;
}

static void split_by_the_remaining_keys(void **state)
{
    (void)state;
    /* A, B and B' (B in ConnectWise RMM) were glued by the dock MAC D; C by D too. */
    json_t *a  = J("{\"manufacturer\":\"Dell\",\"serial\":\"SA\",\"macs\":[\"3C:18:A0:00:00:0A\",\"3C:18:A0:D0:C0:01\"]}");
    json_t *b  = J("{\"manufacturer\":\"Dell\",\"serial\":\"SB\",\"macs\":[\"3C:18:A0:00:00:0B\",\"3C:18:A0:D0:C0:01\"]}");
    json_t *bc = J("{\"manufacturer\":\"DELL\",\"serial\":\"SB\",\"macs\":[]}");
    json_t *c  = J("{\"manufacturer\":\"Dell\",\"serial\":\"SC\",\"macs\":[\"3C:18:A0:D0:C0:01\"]}");
    nz_member_t m[] = {{"cwrmm:u1", bc, {NULL, NULL}}, {"syncro:1", a, {NULL, NULL}},
                       {"syncro:2", b, {NULL, NULL}}, {"syncro:3", c, {NULL, NULL}}};
    const char *owner[4];
    const char *dock[] = {"mac:3C:18:A0:D0:C0:01", NULL};
    assert_int_equal(nz_split_asset("syncro:1", m, 4, 3, listed, dock, owner), 3);
    assert_string_equal(owner[0], "cwrmm:u1");   /* B and B' by the serial, named by the smallest */
    assert_string_equal(owner[1], "syncro:1");   /* the creator keeps the asset id */
    assert_string_equal(owner[2], "cwrmm:u1");
    assert_string_equal(owner[3], "syncro:3");

    /* nothing demoted, D on 3 members (within the threshold): one asset stays */
    const char *none[] = {NULL};
    assert_int_equal(nz_split_asset("syncro:1", m, 4, 3, listed, none, owner), 1);
    for (int i = 0; i < 4; i++)
        assert_string_equal(owner[i], "syncro:1");
    /* an asset glued before demotion existed: D on 3 members > threshold 2 splits on its own */
    assert_int_equal(nz_split_asset("syncro:1", m, 4, 2, NULL, NULL, owner), 3);
    assert_string_equal(owner[1], "syncro:1");
    assert_string_equal(owner[3], "syncro:3");
    /* the creator gone from the asset: the component of the smallest source keeps the id */
    assert_int_equal(nz_split_asset("syncro:9", m, 4, 3, listed, dock, owner), 3);
    assert_string_equal(owner[0], "syncro:9");
    assert_string_equal(owner[2], "syncro:9");
    assert_string_equal(owner[1], "syncro:1");
    json_decref(a);
    json_decref(b);
    json_decref(bc);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(match_keys_serial_then_macs),
        cmocka_unit_test(match_keys_no_serial_key_for_placeholders),
        cmocka_unit_test(match_keys_respect_max),
        cmocka_unit_test(merge_syncro_is_primary_even_listed_second),
        cmocka_unit_test(merge_macs_sorted_union_without_duplicates),
        cmocka_unit_test(merge_gone_member_left_out),
        cmocka_unit_test(merge_all_gone_is_gone_with_all_sources),
        cmocka_unit_test(dates_purchase_earliest_warranty_latest),
        cmocka_unit_test(dates_edit_wins_as_manual),
        cmocka_unit_test(dates_echo_is_not_a_candidate),
        cmocka_unit_test(dates_tie_keeps_prev_source),
        cmocka_unit_test(dates_no_values_are_null),
        cmocka_unit_test(change_conflict_settled_by_policy),
        cmocka_unit_test(change_none_without_conflict),
        cmocka_unit_test(change_edit_mask_forces_field),
        cmocka_unit_test(change_upserted_member_changed_value),
        cmocka_unit_test(change_message_shape),
        cmocka_unit_test(mac_virtual_shared_and_local_are_no_keys),
        cmocka_unit_test(serial_placeholders),
        cmocka_unit_test(key_holders_counted_then_demoted),
        cmocka_unit_test(split_by_the_remaining_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
