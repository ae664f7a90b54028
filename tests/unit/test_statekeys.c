/*
 * test_statekeys.c — every Redis key the code base names is one of the table's kinds.
 *
 * The table (common/src/statekeys.c) decides what is journaled and restored after a loss of
 * Redis; a key missing from it would be silently Redis-only. This test reads every C file under
 * services/ and common/src/, finds each msp_key(buf, size, tenant, "<format>", ...) call with a
 * literal format, turns the format into a key (every conversion becomes "x"), and asks the table.
 * A format that starts with a conversion ("%s": the caller composes the suffix) is skipped.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mspsync/redis.h"
#include "mspsync/statekeys.h"

static void test_rows_classify_known_keys(void **state) {
    (void)state;
    char t[64];
    const char *suffix = NULL;
    const msp_statekey_t *r =
        msp_statekey_find("mspsync:{acme}:integration:cwrmm", t, sizeof(t), &suffix);
    assert_non_null(r);
    assert_int_equal(r->kind, MSP_STATE_CONFIG);
    assert_string_equal(t, "acme");
    assert_string_equal(suffix, "integration:cwrmm");
    assert_int_equal(msp_statekey_find("mspsync:{acme}:inv:asset:syncro:1", NULL, 0, NULL)->kind,
                     MSP_STATE_DERIVED);
    assert_int_equal(msp_statekey_find("mspsync:{syncro:acct}:rl", NULL, 0, NULL)->kind,
                     MSP_STATE_COORD);
    assert_int_equal(msp_statekey_find("mspsync:{acme}:ticketing:orgs", NULL, 0, NULL)->kind,
                     MSP_STATE_CACHE);
    assert_int_equal(msp_statekey_find("mspsync:{acme}:ticketing:orgmap", NULL, 0, NULL)->kind,
                     MSP_STATE_CONFIG);
    assert_null(msp_statekey_find("mspsync:{acme}:nothing-like-it", NULL, 0, NULL));
    assert_null(msp_statekey_find("other:{acme}:tenant", NULL, 0, NULL));
    assert_null(msp_statekey_find("mspsync:{acme", NULL, 0, NULL));
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

/* Check every msp_key call of one file. @returns the number of literal formats checked. */
static int check_file(const char *path) {
    char *text = slurp(path);
    int checked = 0;
    assert_non_null(text);
    for (const char *p = strstr(text, "msp_key("); p; p = strstr(p + 1, "msp_key(")) {
        if (p > text && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z')))
            continue; /* another function's name ending in msp_key */
        /* the fourth argument: skip three commas at depth 0 */
        const char *a = p + strlen("msp_key(");
        int commas = 0, depth = 0;
        for (; *a && commas < 3; a++) {
            if (*a == '(')
                depth++;
            else if (*a == ')' && depth-- == 0)
                break;
            else if (*a == ',' && depth == 0)
                commas++;
        }
        while (*a == ' ' || *a == '\n' || *a == '\t')
            a++;
        if (commas < 3 || *a != '"')
            continue; /* the declaration, or a format in a variable */
        char fmt[200], key[300];
        size_t n = 0;
        for (a++; *a && *a != '"' && n + 1 < sizeof(fmt); a++)
            fmt[n++] = *a;
        fmt[n] = '\0';
        if (fmt[0] == '%')
            continue; /* the caller composes the suffix */
        size_t k = (size_t)snprintf(key, sizeof(key), "mspsync:{t}:");
        for (const char *f = fmt; *f && k + 2 < sizeof(key); f++) {
            if (*f == '%') {
                while (f[1] && !strchr("sdiuxc", f[1]))
                    f++;
                if (f[1])
                    f++;
                key[k++] = 'x';
            } else {
                key[k++] = *f;
            }
        }
        key[k] = '\0';
        if (!msp_statekey_find(key, NULL, 0, NULL))
            fail_msg("%s: msp_key format \"%s\" (key %s) is in no row of common/src/statekeys.c",
                     path, fmt, key);
        checked++;
    }
    free(text);
    return checked;
}

static int check_dir(const char *dir) {
    DIR *d = opendir(dir);
    int checked = 0;
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t n = strlen(e->d_name);
        if (n > 2 && strcmp(e->d_name + n - 2, ".c") == 0)
            checked += check_file(path);
        else if (!strchr(e->d_name, '.'))
            checked += check_dir(path); /* a service's directory */
    }
    closedir(d);
    return checked;
}

static void test_every_key_the_code_names_has_a_row(void **state) {
    (void)state;
    const char *src = getenv("MSPSYNC_SOURCE_DIR");
    if (!src)
        fail_msg("MSPSYNC_SOURCE_DIR is not set (ctest sets it)");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/services", src);
    int n = check_dir(dir);
    snprintf(dir, sizeof(dir), "%s/common/src", src);
    n += check_dir(dir);
    assert_true(n > 40); /* the scan found the calls (today: over 60) */
}

/* msp_key copies plain text and "%s" itself (redis.c key_format): the same bytes as printf. */
static void test_msp_key_is_printf(void **state) {
    (void)state;
    char got[64], want[64];
    assert_int_equal(msp_key(got, sizeof(got), "acme", "inv:asset:%s", "syncro:17"),
                     (int)strlen("mspsync:{acme}:inv:asset:syncro:17"));
    assert_string_equal(got, "mspsync:{acme}:inv:asset:syncro:17");
    assert_true(msp_key(got, sizeof(got), "acme", "trace:%s:%s", "asset", "a|b") > 0);
    assert_string_equal(got, "mspsync:{acme}:trace:asset:a|b");
    /* other conversions, "%%" and a NULL string go to vsnprintf */
    assert_true(msp_key(got, sizeof(got), "t", "stats:%d:%%:%s", 42, "x") > 0);
    snprintf(want, sizeof(want), "mspsync:{t}:stats:%d:%%:%s", 42, "x");
    assert_string_equal(got, want);
    /* every length around the buffer's end: the key, or -1 and "" */
    for (size_t size = 1; size <= 40; size++) {
        int n = msp_key(got, size, "tenant", "inv:src:asset:%s", "syncro:123");
        int w = snprintf(want, sizeof(want), "mspsync:{tenant}:inv:src:asset:%s", "syncro:123");
        if ((size_t)w < size) {
            assert_int_equal(n, w);
            assert_string_equal(got, want);
        } else {
            assert_int_equal(n, -1);
            assert_string_equal(got, "");
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_classify_known_keys),
        cmocka_unit_test(test_every_key_the_code_names_has_a_row),
        cmocka_unit_test(test_msp_key_is_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
