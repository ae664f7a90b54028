/*
 * test_fields.c — the canonical-record tables (mspsync/fields.h) against what uses them.
 *
 * A field added to a table must show up everywhere, or one of these fails by name:
 * - every vendor mapper's output has exactly its kind's fields, of their types: every input of
 *   $MSPSYNC_TEST_DATA/model/ (Syncro) and $MSPSYNC_TEST_DATA/fields/ (ConnectWise RMM, and a
 *   Syncro asset of the same machine) is mapped and checked, and every field of a table must get
 *   a value (not null) from at least one of them: a row no mapper fills fails;
 * - the normalizer's merged asset of one machine seen by both vendors has every field of the
 *   asset table, none null (the two records fill every field);
 * - docs/design.md shows exactly msp_record_defs_markdown() between its fields markers
 *   (`test_fields --markdown` prints the block to paste), and the Customer, Asset, Contact,
 *   Ticket and TicketSettings schemas of docs/openapi.yaml name exactly the table's fields;
 * - the merge's date names are the table's dates members.
 * The check itself is tested on records that break it in each way it knows.
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

#include "merge.h"
#include "mspsync/cwrmm.h"
#include "mspsync/fields.h"
#include "mspsync/model.h"

typedef json_t *(map_fn)(const char *tenant, const json_t *raw, char *errstr, size_t errstr_size);

/* Every vendor mapper, by the file-name prefix of its inputs. */
static const struct mapper {
    const char *prefix;
    const msp_record_def_t *def;
    map_fn *map;
} mappers[] = {
    {"syncro_customer_", &msp_record_customer, msp_map_syncro_customer},
    {"syncro_asset_", &msp_record_asset, msp_map_syncro_asset},
    {"cwrmm_company_", &msp_record_customer, msp_map_cwrmm_company},
    {"cwrmm_device_", &msp_record_asset, msp_map_cwrmm_device},
    {"syncro_contact_", &msp_record_contact, msp_map_syncro_contact},
    {"syncro_ticket_", &msp_record_ticket, msp_map_syncro_ticket},
    {"syncro_settings_", &msp_record_setting, msp_map_syncro_settings},
};
/* Every kind of canonical record, each checked for fields no mapper fills. */
static const msp_record_def_t *const kinds[] = {&msp_record_customer, &msp_record_asset,
                                                &msp_record_contact, &msp_record_ticket,
                                                &msp_record_setting};
#define NKINDS (sizeof kinds / sizeof kinds[0])
#define NMAPPERS (sizeof mappers / sizeof mappers[0])
#define MAX_FIELDS 64

/* What the mapped records showed: per mapper, records mapped; per kind, fields seen not null. */
typedef struct seen_s {
    int mapped[NMAPPERS];
    int filled[NKINDS][MAX_FIELDS];
    int failures;
} seen_t;

static const char *data_dir(void) {
    const char *d = getenv("MSPSYNC_TEST_DATA");
    if (!d || !*d)
        fail_msg("MSPSYNC_TEST_DATA is not set (ctest sets it)");
    return d;
}

static json_t *load_input(const char *sub, const char *name) {
    char path[1024];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/%s/%s", data_dir(), sub, name);
    json_t *j = json_load_file(path, JSON_DECODE_ANY, &jerr);
    if (!j)
        fail_msg("%s does not parse: %s", path, jerr.text);
    return j;
}

static json_t *map_input(const struct mapper *mp, const char *sub, const char *name) {
    json_t *raw = load_input(sub, name);
    char err[256] = "";
    json_t *rec = mp->map("acme", raw, err, sizeof err);
    json_decref(raw);
    return rec;
}

static const struct mapper *mapper_of(const char *name) {
    for (size_t i = 0; i < NMAPPERS; i++)
        if (strncmp(name, mappers[i].prefix, strlen(mappers[i].prefix)) == 0)
            return &mappers[i];
    return NULL;
}

/* Check one mapped record and note the fields it filled. */
static void note_record(seen_t *s, const struct mapper *mp, const char *name, const json_t *rec) {
    char err[256];
    if (msp_record_check(mp->def, rec, err, sizeof err) != 0) {
        fprintf(stderr, "[%s] %s\n", name, err);
        s->failures++;
    }
    size_t k = 0;
    while (k + 1 < NKINDS && kinds[k] != mp->def)
        k++;
    int *filled = s->filled[k];
    for (size_t f = 0; f < mp->def->n; f++) {
        const json_t *v = json_object_get(rec, mp->def->fields[f].name);
        filled[f] += v && !json_is_null(v);
    }
    s->mapped[mp - mappers]++;
}

/* Map every vendor input of one data directory (error cases map to nothing and are skipped). */
static void map_directory(seen_t *s, const char *sub) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", data_dir(), sub);
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".json") != 0 || strstr(e->d_name, ".expected."))
            continue;
        const struct mapper *mp = mapper_of(e->d_name);
        if (!mp)
            fail_msg("%s/%s: no mapper for its name", sub, e->d_name);
        json_t *rec = map_input(mp, sub, e->d_name);
        if (rec)
            note_record(s, mp, e->d_name, rec);
        json_decref(rec);
    }
    closedir(d);
}

static int unfilled_fields(const msp_record_def_t *def, const int *filled) {
    int missing = 0;
    for (size_t f = 0; f < def->n; f++) {
        if (filled[f] || (def->fields[f].flags & MSP_FIELD_ENVELOPE))
            continue; /* the normalizer sets an envelope field, no mapper */
        fprintf(stderr, "%s field \"%s\": no vendor mapper gives it a value\n", def->kind,
                def->fields[f].name);
        missing++;
    }
    return missing;
}

static void every_mapper_writes_exactly_the_table_and_every_field_gets_a_value(void **state) {
    (void)state;
    seen_t s;
    memset(&s, 0, sizeof s);
    for (size_t k = 0; k < NKINDS; k++)
        assert_true(kinds[k]->n <= MAX_FIELDS);
    map_directory(&s, "model");
    map_directory(&s, "fields");
    for (size_t i = 0; i < NMAPPERS; i++)
        if (s.mapped[i] < 2)
            fail_msg("only %d records of %s*", s.mapped[i], mappers[i].prefix);
    int missing = 0;
    for (size_t k = 0; k < NKINDS; k++)
        missing += unfilled_fields(kinds[k], s.filled[k]);
    assert_int_equal(s.failures, 0);
    assert_int_equal(missing, 0);
}

/* ------------------------------------------------------------------------------------------- */

static void merged_asset_of_both_vendors_has_every_field(void **state) {
    (void)state;
    json_t *sy = map_input(&mappers[1], "fields", "syncro_asset_same_machine.json");
    json_t *cw = map_input(&mappers[3], "fields", "cwrmm_device_full.json");
    assert_non_null(sy);
    assert_non_null(cw);
    nz_member_t m[2] = {{"cwrmm:7c9e6679-7425-40de-944b-e07fc1f90ae7", cw, {NULL, NULL}},
                        {"syncro:123", sy, {NULL, NULL}}};
    json_t *merged = nz_merge_asset("acme", "syncro:123", m, 2, NULL, NULL);
    char err[256] = "";
    if (msp_record_check(&msp_record_asset, merged, err, sizeof err) != 0)
        fail_msg("%s", err);
    for (size_t f = 0; f < msp_record_asset.n; f++) {
        const json_t *v = json_object_get(merged, msp_record_asset.fields[f].name);
        if (!v || json_is_null(v))
            fail_msg("merged asset lacks \"%s\" although a member has it (merge rule %d)",
                     msp_record_asset.fields[f].name, (int)msp_record_asset.fields[f].merge);
    }
    assert_int_equal(json_array_size(json_object_get(merged, "macs")), 2); /* the union */
    json_decref(merged);
    json_decref(sy);
    json_decref(cw);
}

static void merge_date_names_are_the_table_dates_members(void **state) {
    (void)state;
    const msp_field_t *dates = msp_record_field(&msp_record_asset, "dates");
    assert_non_null(dates);
    assert_non_null(dates->members);
    size_t n = 0;
    for (; dates->members[n]; n++) {
        assert_true(n < NZ_F_COUNT);
        assert_string_equal(dates->members[n], nz_date_fields[n]);
    }
    assert_int_equal(n, NZ_F_COUNT);
}

static void customers_are_not_merged_and_every_asset_field_is(void **state) {
    (void)state;
    for (size_t f = 0; f < msp_record_customer.n; f++)
        assert_int_equal(msp_record_customer.fields[f].merge, MSP_MERGE_NONE);
    for (size_t f = 0; f < msp_record_asset.n; f++)
        if (msp_record_asset.fields[f].merge == MSP_MERGE_NONE)
            fail_msg("asset field \"%s\" has no merge rule", msp_record_asset.fields[f].name);
}

/* ------------------------------------------------------------------------------------------- */

static char *generated_markdown(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    msp_record_defs_markdown(f);
    fclose(f);
    return buf;
}

/* A file of the source tree ($MSPSYNC_SOURCE_DIR/rel) into path. */
static void source_path(const char *rel, char *path, size_t size) {
    const char *src = getenv("MSPSYNC_SOURCE_DIR");
    if (!src || !*src)
        fail_msg("MSPSYNC_SOURCE_DIR is not set (ctest sets it)");
    snprintf(path, size, "%s/%s", src, rel);
}

/* The whole text of path (new), or NULL. */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    fclose(f);
    return text;
}

/* The text of path between "<!-- fields:begin -->\n" and "<!-- fields:end -->" (new), or NULL. */
static char *documented_block(const char *path) {
    char *text = read_file(path);
    if (!text)
        return NULL;
    static const char begin[] = "<!-- fields:begin -->\n", end[] = "<!-- fields:end -->";
    char *b = strstr(text, begin);
    char *e = b ? strstr(b, end) : NULL;
    char *out = b && e ? strndup(b + strlen(begin), (size_t)(e - b) - strlen(begin)) : NULL;
    free(text);
    return out;
}

static void design_doc_shows_the_tables(void **state) {
    (void)state;
    char path[1024];
    source_path("docs/design.md", path, sizeof path);
    char *doc = documented_block(path);
    if (!doc)
        fail_msg("%s has no <!-- fields:begin --> ... <!-- fields:end --> block", path);
    char *want = generated_markdown();
    if (strcmp(doc, want) != 0)
        fprintf(stderr,
                "docs/design.md differs from the tables of common/src/fields.c; the block "
                "should read (test_fields --markdown):\n%s",
                want);
    int same = strcmp(doc, want) == 0;
    free(doc);
    free(want);
    assert_true(same);
}

/* The property names of components/schemas/<schema> in an OpenAPI YAML text: the keys indented
 * by 8 spaces under its "      properties:" line, one per line (the document's own layout). */
static int schema_properties(const char *yaml, const char *schema, char names[][64], int max) {
    char head[64];
    snprintf(head, sizeof head, "\n    %s:\n", schema);
    const char *p = strstr(yaml, head);
    p = p ? strstr(p + strlen(head), "\n      properties:\n") : NULL;
    int n = 0;
    for (p = p ? strchr(p + 1, '\n') : NULL; p && n < max; p = strchr(p + 1, '\n')) {
        const char *line = p + 1;
        size_t indent = strspn(line, " ");
        if (line[indent] != '\n' && indent <= 6)
            break; /* the schema's properties end */
        size_t len = strcspn(line + indent, ":\n");
        if (indent == 8 && line[indent + len] == ':' && len < 64)
            snprintf(names[n++], 64, "%.*s", (int)len, line + indent);
    }
    return n;
}

/* @returns the number of differences between a schema's properties and def's fields (printed). */
static int schema_differences(const char *yaml, const char *schema, const msp_record_def_t *def) {
    char names[MAX_FIELDS][64];
    int n = schema_properties(yaml, schema, names, MAX_FIELDS), diff = 0;
    for (int i = 0; i < n; i++)
        if (!msp_record_field(def, names[i])) {
            fprintf(stderr, "openapi.yaml %s has \"%s\", which the table lacks\n", schema,
                    names[i]);
            diff++;
        }
    for (size_t f = 0; f < def->n; f++) {
        int i = 0;
        while (i < n && strcmp(names[i], def->fields[f].name) != 0)
            i++;
        if (i == n) {
            fprintf(stderr, "openapi.yaml %s lacks \"%s\"\n", schema, def->fields[f].name);
            diff++;
        }
    }
    return diff;
}

static void openapi_schemas_name_the_table_fields(void **state) {
    (void)state;
    char path[1024];
    source_path("docs/openapi.yaml", path, sizeof path);
    char *yaml = read_file(path);
    if (!yaml)
        fail_msg("cannot read %s", path);
    int diff = schema_differences(yaml, "Customer", &msp_record_customer) +
               schema_differences(yaml, "Asset", &msp_record_asset) +
               schema_differences(yaml, "Contact", &msp_record_contact) +
               schema_differences(yaml, "Ticket", &msp_record_ticket) +
               schema_differences(yaml, "TicketSettings", &msp_record_setting);
    free(yaml);
    assert_int_equal(diff, 0);
}

/* ------------------------------------------------------------------------------------------- */

static json_t *valid_customer(void) {
    json_t *c = json_pack("{s:i, s:s, s:s, s:s, s:[{s:s, s:s}], s:s, s:n, s:n, s:b, s:n, s:b}",
                          "schema_version", 1, "tenant", "acme", "id", "syncro:1", "kind",
                          "customer", "sources", "integration", "syncro", "id", "1", "name", "Acme",
                          "email", "phone", "disabled", 0, "updated_at", "gone", 0);
    assert_non_null(c);
    return c;
}

/* Apply one change to a valid customer: @returns whether the check then fails. */
static int check_fails_after(const char *key, json_t *value) {
    json_t *c = valid_customer();
    char err[256] = "";
    if (value)
        json_object_set_new(c, key, value);
    else
        json_object_del(c, key);
    int rc = msp_record_check(&msp_record_customer, c, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "rejected as expected: %s\n", err);
    json_decref(c);
    return rc != 0;
}

static void check_rejects_each_kind_of_difference(void **state) {
    (void)state;
    json_t *c = valid_customer();
    char err[256] = "";
    assert_int_equal(msp_record_check(&msp_record_customer, c, err, sizeof err), 0);
    assert_int_not_equal(msp_record_check(&msp_record_asset, c, err, sizeof err), 0);
    json_decref(c);
    assert_true(check_fails_after("email", NULL));                         /* missing */
    assert_true(check_fails_after("nickname", json_string("x")));          /* not in the table */
    assert_true(check_fails_after("disabled", json_string("true")));       /* wrong type */
    assert_true(check_fails_after("gone", json_null()));                   /* null not allowed */
    assert_true(check_fails_after("sources", json_pack("[s]", "syncro"))); /* item not an object */
    assert_true(check_fails_after("sources", json_pack("[{s:s}]", "integration", "syncro")));
    assert_false(check_fails_after("name", json_null())); /* nullable */
    assert_int_not_equal(msp_record_check(&msp_record_customer, NULL, err, sizeof err), 0);
}

static void check_knows_optional_fields_and_members(void **state) {
    (void)state;
    json_t *raw = load_input("fields", "cwrmm_device_no_custom_fields.json");
    char err[256] = "";
    json_t *a = msp_map_cwrmm_device("acme", raw, err, sizeof err);
    assert_non_null(a);
    assert_null(json_object_get(a, "dates"));
    assert_int_equal(msp_record_check(&msp_record_asset, a, err, sizeof err), 0); /* optional */
    json_object_set_new(a, "os", json_pack("{s:s, s:s, s:s}", "name", "W", "build", "1", "x", "y"));
    assert_int_not_equal(msp_record_check(&msp_record_asset, a, err, sizeof err), 0);
    json_object_set_new(a, "os", json_null());
    json_object_set_new(a, "macs", json_pack("[i]", 1));
    assert_int_not_equal(msp_record_check(&msp_record_asset, a, err, sizeof err), 0);
    json_decref(a);
    json_decref(raw);
    assert_ptr_equal(msp_record_def("asset"), &msp_record_asset);
    assert_null(msp_record_def("incident"));
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--markdown") == 0) {
        msp_record_defs_markdown(stdout);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_mapper_writes_exactly_the_table_and_every_field_gets_a_value),
        cmocka_unit_test(merged_asset_of_both_vendors_has_every_field),
        cmocka_unit_test(merge_date_names_are_the_table_dates_members),
        cmocka_unit_test(customers_are_not_merged_and_every_asset_field_is),
        cmocka_unit_test(design_doc_shows_the_tables),
        cmocka_unit_test(openapi_schemas_name_the_table_fields),
        cmocka_unit_test(check_rejects_each_kind_of_difference),
        cmocka_unit_test(check_knows_optional_fields_and_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
