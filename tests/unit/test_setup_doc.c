/*
 * test_setup_doc.c — docs/setup.md says, per feature, the permissions (Syncro) and scopes
 * (ConnectWise RMM) to tick; the vendor rows (vendor_<name>.c) are where mspsync checks them. The
 * two must agree: for each vendor row, the table between "<!-- features:<name> -->" and
 * "<!-- /features:<name> -->" in setup.md is exactly the table this test renders from the row, so
 * a permission added to a row but not to the guide (or the other way round) fails here. On a
 * mismatch the expected table is printed, ready to paste.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mspsync/vendor.h"

/* The whole of $MSPSYNC_SOURCE_DIR/docs/setup.md: new, NUL-terminated. */
static char *read_setup_md(void) {
    const char *src = getenv("MSPSYNC_SOURCE_DIR");
    char path[1024];
    if (!src)
        fail_msg("MSPSYNC_SOURCE_DIR is not set (ctest sets it)");
    snprintf(path, sizeof(path), "%s/docs/setup.md", src);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The table of v's features as setup.md shows it, into out. */
static void render_table(const msp_vendor_t *v, char *out, size_t out_size) {
    size_t len = (size_t)snprintf(out, out_size, "| feature | %s %s to tick |\n|---|---|\n",
                                  v->label, v->id == MSP_VENDOR_CWRMM ? "scopes" : "permissions");
    for (const msp_vendor_feature_t *f = v->features; f->feature && len < out_size; f++) {
        if (f->option_of)
            len += (size_t)snprintf(out + len, out_size - len, "| `%s` (option of `%s`) |",
                                    f->feature, f->option_of);
        else
            len += (size_t)snprintf(out + len, out_size - len, "| `%s` |", f->feature);
        for (const char *const *p = f->permissions; *p && len < out_size; p++)
            len += (size_t)snprintf(out + len, out_size - len, "%s%s",
                                    p == f->permissions ? " " : ", ", *p);
        if (len < out_size)
            len += (size_t)snprintf(out + len, out_size - len, " |\n");
    }
}

static void test_setup_md_lists_each_rows_permissions(void **state) {
    (void)state;
    char *doc = read_setup_md();
    for (size_t i = 0; msp_vendor_at(i); i++) {
        const msp_vendor_t *v = msp_vendor_at(i);
        char open[64], close[64], want[4096];
        snprintf(open, sizeof(open), "<!-- features:%s -->\n", v->name);
        snprintf(close, sizeof(close), "<!-- /features:%s -->", v->name);
        const char *a = strstr(doc, open), *b = a ? strstr(a, close) : NULL;
        if (!a || !b)
            fail_msg("docs/setup.md has no \"%s\" ... \"%s\" block", open, close);
        a += strlen(open);
        render_table(v, want, sizeof(want));
        if (strlen(want) != (size_t)(b - a) || strncmp(a, want, strlen(want)) != 0)
            fail_msg("docs/setup.md's %s table differs from vendor_%s.c; it should read:\n%s",
                     v->label, v->name, want);
    }
    free(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setup_md_lists_each_rows_permissions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
