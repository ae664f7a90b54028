/*
 * test_model.c — Syncro payloads to canonical records.
 *
 * Data-driven part: $MSPSYNC_TEST_DATA/model/ holds one case per input file
 *   syncro_<customer|asset|contact|ticket|settings>_<case>.json  the vendor object (tenant "acme")
 *   syncro_<kind>_<case>.expected.json  the canonical record it must map to, or
 *   syncro_<kind>_<case>.error.txt      a substring the mapping error must contain.
 * Adding a case is adding files; every case is run and every failure is reported by name.
 * The API part below checks MAC normalization and fingerprints directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mspsync/json_pick.h"
#include "mspsync/model.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) fwrite(chunk, 1, n, m);
    fclose(m);
    fclose(f);
    /* strip the trailing newline(s) an editor adds */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = '\0';
    return buf;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/*
 * The normalizer builds only msp_syncro_asset_members of an asset (msp_json_pick): mapping that
 * must give the same record, or the same error, as mapping the whole payload. A member the
 * mapping starts to read without being listed fails here. @returns 1 on a difference.
 */
static int picked_maps_the_same(const char *base, const char *path, const json_t *full,
                                const char *full_err) {
    char *text = read_text(path);
    msp_json_pick_t pick = {msp_pick_names, (void *)msp_syncro_asset_members, NULL, 0};
    json_error_t jerr;
    json_t *raw = text ? msp_json_pick(text, strlen(text), &pick, &jerr) : NULL;
    char err[256] = "";
    json_t *out = raw ? msp_map_syncro_asset("acme", raw, err, sizeof(err)) : NULL;
    int differs = !raw || (full ? !out || !json_equal(full, out) : out || strcmp(err, full_err));
    if (differs)
        fprintf(stderr, "[case %s] mapping the picked members differs from the whole payload "
                "(%s)\n", base, raw ? err : "pick failed");
    json_decref(out);
    json_decref(raw);
    free(text);
    return differs;
}

/* Run one case; @returns 0 pass, 1 fail (reason printed). */
static int run_case(const char *dir, const char *input) {
    char base[512], path[2048], expected_path[2048], error_path[2048];
    snprintf(base, sizeof(base), "%.*s", (int)(strlen(input) - 5), input); /* minus ".json" */
    snprintf(path, sizeof(path), "%s/%s", dir, input);
    snprintf(expected_path, sizeof(expected_path), "%s/%s.expected.json", dir, base);
    snprintf(error_path, sizeof(error_path), "%s/%s.error.txt", dir, base);

    int has_expected = file_exists(expected_path), has_error = file_exists(error_path);
    if (has_expected == has_error) {
        fprintf(stderr, "[case %s] needs exactly one of .expected.json / .error.txt\n", base);
        return 1;
    }

    json_error_t jerr;
    json_t *raw = json_load_file(path, JSON_DECODE_ANY, &jerr);
    if (!raw) {
        fprintf(stderr, "[case %s] input does not parse: %s (line %d)\n", base, jerr.text,
                jerr.line);
        return 1;
    }
    char err[256] = "";
    json_t *out = NULL;
    /* the mappers without a member list: the case name's prefix picks one */
    static const struct {
        const char *prefix;
        json_t *(*map)(const char *, const json_t *, char *, size_t);
    } whole[] = {{"syncro_customer_", msp_map_syncro_customer},
                 {"syncro_contact_", msp_map_syncro_contact},
                 {"syncro_ticket_", msp_map_syncro_ticket},
                 {"syncro_settings_", msp_map_syncro_settings}};
    size_t w = 0;
    while (w < sizeof(whole) / sizeof(whole[0]) &&
           strncmp(base, whole[w].prefix, strlen(whole[w].prefix)) != 0)
        w++;
    if (w < sizeof(whole) / sizeof(whole[0])) {
        out = whole[w].map("acme", raw, err, sizeof(err));
    } else if (strncmp(base, "syncro_asset_", 13) == 0) {
        out = msp_map_syncro_asset("acme", raw, err, sizeof(err));
        if (picked_maps_the_same(base, path, out, err)) {
            json_decref(raw);
            json_decref(out);
            return 1;
        }
    } else {
        fprintf(stderr,
                "[case %s] name must start with syncro_<customer|asset|contact|ticket|"
                "settings>_\n",
                base);
        json_decref(raw);
        return 1;
    }
    json_decref(raw);

    int failed = 0;
    if (has_error) {
        char *want = read_text(error_path);
        if (out) {
            char *got = json_dumps(out, JSON_COMPACT);
            fprintf(stderr, "[case %s] expected error \"%s\", got record %s\n", base, want, got);
            free(got);
            failed = 1;
        } else if (!want || !strstr(err, want)) {
            fprintf(stderr, "[case %s] error \"%s\" does not contain \"%s\"\n", base, err,
                    want ? want : "(unreadable)");
            failed = 1;
        }
        free(want);
    } else {
        json_t *want = json_load_file(expected_path, 0, &jerr);
        if (!want) {
            fprintf(stderr, "[case %s] expected file does not parse: %s\n", base, jerr.text);
            failed = 1;
        } else if (!out) {
            fprintf(stderr, "[case %s] mapping failed: %s\n", base, err);
            failed = 1;
        } else if (!json_equal(out, want)) {
            char *got = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS);
            char *exp = json_dumps(want, JSON_INDENT(2) | JSON_SORT_KEYS);
            fprintf(stderr, "[case %s] mismatch\n--- expected\n%s\n--- got\n%s\n", base, exp, got);
            free(got);
            free(exp);
            failed = 1;
        }
        json_decref(want);
    }
    json_decref(out);
    return failed;
}

static void every_fixture_maps_to_its_expected_record_or_error(void **state) {
    (void)state;
    const char *data = getenv("MSPSYNC_TEST_DATA");
    if (!data || !*data) fail_msg("MSPSYNC_TEST_DATA is not set (ctest sets it)");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/model", data);
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);

    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".json") || ends_with(e->d_name, ".expected.json")) continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_names);

    int failures = 0, customers = 0, assets = 0, errors = 0;
    for (size_t i = 0; i < n; i++) {
        int f = run_case(dir, names[i]);
        failures += f;
        if (!f) fprintf(stderr, "[case %s] ok\n", names[i]);
        if (strncmp(names[i], "syncro_customer_", 16) == 0) customers++;
        else if (strncmp(names[i], "syncro_asset_", 13) == 0)
            assets++;
        char err_path[1024];
        snprintf(err_path, sizeof(err_path), "%s/%.*s.error.txt", dir,
                 (int)(strlen(names[i]) - 5), names[i]);
        errors += file_exists(err_path);
        free(names[i]);
    }
    free(names);
    /* guard against an empty or half-copied data directory passing silently */
    assert_true(customers >= 3);
    assert_true(assets >= 5);
    assert_true(errors >= 2);
    assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------------------------------- */

static void mac_formats_normalize_to_upper_colon_form(void **state) {
    (void)state;
    static const char *const same[] = {
        "aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "AABBCCDDEEFF",
        "  aa:bb:cc:dd:ee:ff\t", "Aa:bB:cC:Dd:eE:Ff",
    };
    char out[18];
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_int_equal(msp_normalize_mac(same[i], out), 0);
        assert_string_equal(out, "AA:BB:CC:DD:EE:FF");
    }
    assert_int_equal(msp_normalize_mac("0:1b:2:3c:4:d", out), 0);
    assert_string_equal(out, "00:1B:02:3C:04:0D");
    assert_int_equal(msp_normalize_mac("00:00:00:00:00:00", out), 0); /* valid format */
    assert_string_equal(out, "00:00:00:00:00:00");
}

static void malformed_macs_are_rejected(void **state) {
    (void)state;
    static const char *const bad[] = {
        "", "   ", "not-a-mac", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa:bb-cc:dd:ee:ff",
        "aa:bb:cc:dd:ee:fg", "aabbccddeef", "aabbccddeeff0", "aab.bccd.deeff", "aa::cc:dd:ee:ff",
        ":aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:", "aaa:bb:cc:dd:ee:f", "aa bb cc dd ee ff",
    };
    char out[18];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (msp_normalize_mac(bad[i], out) != -1) fail_msg("accepted \"%s\" as %s", bad[i], out);
        assert_string_equal(out, "");
    }
    assert_int_equal(msp_normalize_mac(NULL, out), -1);
}

/* ------------------------------------------------------------------------------------------- */

static json_t *sample_asset(const char *serial, const char *tail) {
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"schema_version\":1,\"tenant\":\"acme\",\"id\":\"syncro:1\",\"kind\":\"asset\","
             "\"sources\":[{\"integration\":\"syncro\",\"id\":\"1\"}],\"name\":\"WS\","
             "\"serial\":\"%s\",\"os\":{\"name\":\"Win\",\"build\":\"1\"},\"macs\":[]%s}",
             serial, tail);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static void fingerprint_ignores_key_order(void **state) {
    (void)state;
    json_t *a = sample_asset("S1", "");
    json_t *b = json_loads(
        "{\"macs\":[],\"os\":{\"build\":\"1\",\"name\":\"Win\"},\"serial\":\"S1\",\"name\":\"WS\","
        "\"sources\":[{\"id\":\"1\",\"integration\":\"syncro\"}],\"kind\":\"asset\","
        "\"id\":\"syncro:1\",\"tenant\":\"acme\",\"schema_version\":1}",
        0, NULL);
    assert_non_null(b);
    char fa[65], fb[65];
    msp_record_fingerprint(a, fa);
    msp_record_fingerprint(b, fb);
    assert_int_equal(strlen(fa), 64);
    assert_string_equal(fa, fb);
    json_decref(a);
    json_decref(b);
}

static void fingerprint_ignores_gone_flag(void **state) {
    (void)state;
    json_t *plain = sample_asset("S1", "");
    json_t *live = sample_asset("S1", ",\"gone\":false");
    json_t *gone = sample_asset("S1", ",\"gone\":true");
    char f1[65], f2[65], f3[65];
    msp_record_fingerprint(plain, f1);
    msp_record_fingerprint(live, f2);
    msp_record_fingerprint(gone, f3);
    assert_string_equal(f1, f2);
    assert_string_equal(f1, f3);
    /* the input is not modified */
    assert_true(json_is_true(json_object_get(gone, "gone")));
    json_decref(plain);
    json_decref(live);
    json_decref(gone);
}

/* Stored fingerprints stay valid: SHA-256 of jansson's sorted compact form without "gone". */
static void fingerprint_is_sha256_of_the_sorted_form(void **state) {
    (void)state;
    json_t *gone = sample_asset("S1", ",\"gone\":true");
    json_t *copy = json_copy(gone);
    json_object_del(copy, "gone");
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL), 1);
    char want[65];
    for (unsigned i = 0; i < n; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    char got[65];
    msp_record_fingerprint(gone, got);
    assert_string_equal(got, want);
    free(text);
    json_decref(copy);
    json_decref(gone);
}

static void fingerprint_changes_with_content(void **state) {
    (void)state;
    json_t *a = sample_asset("S1", "");
    json_t *b = sample_asset("S2", "");
    char fa[65], fb[65];
    msp_record_fingerprint(a, fa);
    msp_record_fingerprint(b, fb);
    assert_string_not_equal(fa, fb);
    json_decref(a);
    json_decref(b);
}

static void mapped_record_fingerprint_is_stable_across_runs(void **state) {
    (void)state;
    json_t *raw = json_loads("{\"id\":5560138523,\"name\":\"SRV\",\"customer_id\":1,"
                             "\"asset_serial\":\"X1\",\"properties\":{}}", 0, NULL);
    char err[128];
    json_t *r1 = msp_map_syncro_asset("acme", raw, err, sizeof(err));
    json_t *r2 = msp_map_syncro_asset("acme", raw, err, sizeof(err));
    assert_non_null(r1);
    assert_non_null(r2);
    char f1[65], f2[65];
    msp_record_fingerprint(r1, f1);
    msp_record_fingerprint(r2, f2);
    assert_string_equal(f1, f2);
    /* another tenant's copy of the same vendor record is different content */
    json_t *r3 = msp_map_syncro_asset("globex", raw, err, sizeof(err));
    char f3[65];
    msp_record_fingerprint(r3, f3);
    assert_string_not_equal(f1, f3);
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
    json_decref(raw);
}

static void canonical_keys_come_in_documented_order(void **state) {
    (void)state;
    json_t *raw = json_loads("{\"id\":1,\"name\":\"WS\"}", 0, NULL);
    char err[128];
    json_t *rec = msp_map_syncro_asset("acme", raw, err, sizeof(err));
    assert_non_null(rec);
    char *text = json_dumps(rec, JSON_COMPACT);
    assert_string_equal(text,
        "{\"schema_version\":1,\"tenant\":\"acme\",\"id\":\"syncro:1\",\"kind\":\"asset\","
        "\"sources\":[{\"integration\":\"syncro\",\"id\":\"1\"}],\"name\":\"WS\","
        "\"asset_type\":null,\"serial\":null,\"manufacturer\":null,\"model\":null,"
        "\"form_factor\":null,\"os\":null,\"macs\":[],\"customer_ref\":null,"
        "\"updated_at\":null,\"dates\":{\"purchase\":null,\"warranty\":null},\"gone\":false}");
    free(text);
    json_decref(rec);
    json_decref(raw);
}

static void missing_tenant_or_payload_is_an_error(void **state) {
    (void)state;
    json_t *raw = json_loads("{\"id\":1}", 0, NULL);
    char err[128] = "";
    assert_null(msp_map_syncro_customer(NULL, raw, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    err[0] = '\0';
    assert_null(msp_map_syncro_asset("acme", NULL, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    /* errstr is optional */
    assert_null(msp_map_syncro_asset("acme", json_object_get(raw, "nope"), NULL, 0));
    json_decref(raw);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_fixture_maps_to_its_expected_record_or_error),
        cmocka_unit_test(mac_formats_normalize_to_upper_colon_form),
        cmocka_unit_test(malformed_macs_are_rejected),
        cmocka_unit_test(fingerprint_ignores_key_order),
        cmocka_unit_test(fingerprint_ignores_gone_flag),
        cmocka_unit_test(fingerprint_is_sha256_of_the_sorted_form),
        cmocka_unit_test(fingerprint_changes_with_content),
        cmocka_unit_test(mapped_record_fingerprint_is_stable_across_runs),
        cmocka_unit_test(canonical_keys_come_in_documented_order),
        cmocka_unit_test(missing_tenant_or_payload_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
