/*
 * test_config.c — the settings table: defaults, environment overrides, validation, --help, docs.
 *
 * Every test starts from a clean environment for the MSPSYNC_T_* variables it uses. Output of
 * --help and the Markdown is captured by pointing stdout's file descriptor at a temporary file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mspsync/config.h"
#include "mspsync/redis.h"

static char *brokers;
static char *api_key;
static long long batch;
static long long offset;
static int dry_run;

static const msp_config_entry_t table[] = {
    {"MSPSYNC_T_BROKERS", MSP_CFG_STR, "localhost:9092", "Kafka bootstrap servers", &brokers, 0, 0,
     0},
    {"MSPSYNC_T_API_KEY", MSP_CFG_STR, "dev-key-please-change", "Vendor API key", &api_key, 0, 0,
     1},
    {"MSPSYNC_T_BATCH", MSP_CFG_INT, "25", "Tickets per page", &batch, 1, 100, 0},
    {"MSPSYNC_T_OFFSET", MSP_CFG_INT, "-5", "Clock offset in seconds", &offset, 0, 0, 0},
    {"MSPSYNC_T_DRY_RUN", MSP_CFG_BOOL, "false", "Log writes | do not send them", &dry_run, 0, 0,
     0},
    {NULL},
};

static char *tenant;
static const msp_config_entry_t required_table[] = {
    {"MSPSYNC_T_TENANT", MSP_CFG_STR, NULL, "Tenant to sync", &tenant, 0, 0, 0},
    {"MSPSYNC_T_BATCH", MSP_CFG_INT, "25", "Tickets per page", &batch, 1, 100, 0},
    {NULL},
};

static const char *const all_vars[] = {
    "MSPSYNC_T_BROKERS", "MSPSYNC_T_API_KEY", "MSPSYNC_T_BATCH",        "MSPSYNC_T_OFFSET",
    "MSPSYNC_T_DRY_RUN", "MSPSYNC_T_TENANT",  "MSPSYNC_T_API_KEY_FILE", "MSPSYNC_T_BROKERS_FILE",
    "MSPSYNC_T_X_RATE",  "MSPSYNC_T_Y_RATE"};

static int clean_env(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
        unsetenv(all_vars[i]);
    brokers = api_key = tenant = NULL;
    batch = offset = 0;
    dry_run        = -1;
    return 0;
}

static int free_table(void **state) {
    (void)state;
    msp_config_free(table);
    msp_config_free(required_table);
    return clean_env(state);
}

static char *argv_none[] = {"mspsync-test", NULL};

static void defaults_apply_when_environment_is_empty(void **state) {
    (void)state;
    char err[512];
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), 0);
    assert_string_equal(brokers, "localhost:9092");
    assert_string_equal(api_key, "dev-key-please-change");
    assert_int_equal(batch, 25);
    assert_int_equal(offset, -5);
    assert_int_equal(dry_run, 0);
}

static void environment_overrides_defaults(void **state) {
    (void)state;
    char err[512];
    setenv("MSPSYNC_T_BROKERS", "kafka-1:9092,kafka-2:9092", 1);
    setenv("MSPSYNC_T_BATCH", " 100 ", 1);
    setenv("MSPSYNC_T_OFFSET", "-3600", 1);
    setenv("MSPSYNC_T_DRY_RUN", "yes", 1);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), 0);
    assert_string_equal(brokers, "kafka-1:9092,kafka-2:9092");
    assert_int_equal(batch, 100);
    assert_int_equal(offset, -3600);
    assert_int_equal(dry_run, 1);
}

static void empty_variable_counts_as_unset(void **state) {
    (void)state;
    char err[512];
    setenv("MSPSYNC_T_BATCH", "", 1);
    setenv("MSPSYNC_T_BROKERS", "", 1);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), 0);
    assert_int_equal(batch, 25);
    assert_string_equal(brokers, "localhost:9092");
}

static void non_integer_is_an_error_naming_the_variable(void **state) {
    (void)state;
    char err[512];
    const char *bad[] = {"abc", "12abc", "1.5", "0x10", "-", "1 2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("MSPSYNC_T_OFFSET", bad[i], 1);
        assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), -1);
        char want[128];
        snprintf(want, sizeof(want), "MSPSYNC_T_OFFSET: not an integer: '%s'", bad[i]);
        assert_string_equal(err, want);
    }
    /* nothing was published or allocated on error */
    assert_null(brokers);
    assert_null(api_key);
    assert_int_equal(dry_run, -1);

    setenv("MSPSYNC_T_OFFSET", "99999999999999999999999", 1);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "MSPSYNC_T_OFFSET"));
}

static void integer_outside_bounds_is_an_error(void **state) {
    (void)state;
    char err[512];
    const char *bad[] = {"0", "101", "-1", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("MSPSYNC_T_BATCH", bad[i], 1);
        assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), -1);
        assert_string_equal(err, "MSPSYNC_T_BATCH: must be between 1 and 100");
    }
    setenv("MSPSYNC_T_BATCH", "1", 1);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), 0);
    assert_int_equal(batch, 1);
}

static void booleans_accept_common_spellings_only(void **state) {
    (void)state;
    char err[512];
    static const struct {
        const char *text;
        int value;
    } ok[] = {{"1", 1},    {"0", 0},     {"true", 1}, {"false", 0},
              {"yes", 1},  {"no", 0},    {"TRUE", 1}, {"No", 0}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        setenv("MSPSYNC_T_DRY_RUN", ok[i].text, 1);
        assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), 0);
        assert_int_equal(dry_run, ok[i].value);
        msp_config_free(table);
    }
    const char *bad[] = {"maybe", "2", "y", "on"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("MSPSYNC_T_DRY_RUN", bad[i], 1);
        assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "MSPSYNC_T_DRY_RUN: not a boolean"));
    }
}

static void missing_required_setting_is_an_error(void **state) {
    (void)state;
    char err[512];
    assert_int_equal(msp_config_load("test", required_table, 1, argv_none, err, sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_T_TENANT is required");
    assert_null(tenant);

    setenv("MSPSYNC_T_TENANT", "acme", 1);
    assert_int_equal(msp_config_load("test", required_table, 1, argv_none, err, sizeof(err)), 0);
    assert_string_equal(tenant, "acme");
}

static void every_invalid_variable_is_reported_at_once(void **state) {
    (void)state;
    char err[512];
    setenv("MSPSYNC_T_BATCH", "500", 1);
    assert_int_equal(msp_config_load("test", required_table, 1, argv_none, err, sizeof(err)), -1);
    assert_string_equal(err,
                        "MSPSYNC_T_TENANT is required; MSPSYNC_T_BATCH: must be between 1 and 100");

    /* a tiny errstr is truncated, never overflowed */
    char small[8];
    assert_int_equal(msp_config_load("test", required_table, 1, argv_none, small, sizeof(small)),
                     -1);
    assert_int_equal(strlen(small), 7);
    assert_int_equal(msp_config_load("test", required_table, 1, argv_none, NULL, 0), -1);
}

static void secret_value_is_never_quoted_in_errors(void **state) {
    (void)state;
    char err[512];
    static long long pin;
    static const msp_config_entry_t secret_table[] = {
        {"MSPSYNC_T_BATCH", MSP_CFG_INT, "1", "PIN", &pin, 0, 0, 1},
        {NULL},
    };
    setenv("MSPSYNC_T_BATCH", "hunter2", 1);
    assert_int_equal(msp_config_load("test", secret_table, 1, argv_none, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "MSPSYNC_T_BATCH: not an integer"));
    assert_null(strstr(err, "hunter2"));
}

/* A file under /tmp holding text (len bytes); its path in path (caller unlinks). */
static void write_file(char *path, size_t size, const char *text, size_t len) {
    snprintf(path, size, "/tmp/mspsync-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void secret_setting_is_read_from_its_file_without_the_trailing_newline(void **state) {
    (void)state;
    char err[512], path[64];
    write_file(path, sizeof(path), "key from a file\n", 16);
    setenv("MSPSYNC_T_API_KEY_FILE", path, 1);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), 0);
    assert_string_equal(api_key, "key from a file");
    msp_config_free(table);
    unlink(path);
    write_file(path, sizeof(path), "crlf-key\r\n", 10);
    setenv("MSPSYNC_T_API_KEY_FILE", path, 1);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), 0);
    assert_string_equal(api_key, "crlf-key");
    unlink(path);
}

static void secret_setting_and_its_file_both_set_is_an_error(void **state) {
    (void)state;
    char err[512], path[64];
    write_file(path, sizeof(path), "from-the-file", 13);
    setenv("MSPSYNC_T_API_KEY", "from-the-env", 1);
    setenv("MSPSYNC_T_API_KEY_FILE", path, 1);
    brokers = NULL;
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), -1);
    assert_string_equal(err, "set only one of MSPSYNC_T_API_KEY and MSPSYNC_T_API_KEY_FILE");
    assert_null(brokers); /* all-or-nothing */
    unlink(path);
}

static void unreadable_or_empty_secret_file_is_an_error_naming_the_path(void **state) {
    (void)state;
    char err[512], path[64];
    setenv("MSPSYNC_T_API_KEY_FILE", "/nonexistent/mspsync/token", 1);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_T_API_KEY_FILE: cannot read /nonexistent/mspsync/token: "
                             "No such file or directory");
    write_file(path, sizeof(path), "\n", 1);
    setenv("MSPSYNC_T_API_KEY_FILE", path, 1);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "MSPSYNC_T_API_KEY_FILE: "));
    assert_non_null(strstr(err, " is empty"));
    unlink(path);
}

static void secret_file_errors_never_quote_the_contents(void **state) {
    (void)state;
    char err[512], path[64];
    static long long pin;
    static const msp_config_entry_t secret_table[] = {
        {"MSPSYNC_T_API_KEY", MSP_CFG_INT, "1", "PIN", &pin, 0, 0, 1},
        {NULL},
    };
    write_file(path, sizeof(path), "hunter2\n", 8);
    setenv("MSPSYNC_T_API_KEY_FILE", path, 1);
    assert_int_equal(msp_config_load("test", secret_table, 1, argv_none, err, sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_T_API_KEY: not an integer");
    unlink(path);
}

static void only_secret_settings_accept_a_file(void **state) {
    (void)state;
    char err[512];
    setenv("MSPSYNC_T_BROKERS_FILE", "/nonexistent/brokers", 1);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), 0);
    assert_string_equal(brokers, "localhost:9092");
}

/* Run fn with stdout redirected to a temporary file; return what it printed (caller frees). */
static char *capture_stdout(int (*fn)(void *), void *arg, int *ret) {
    fflush(stdout);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);

    int r = fn(arg);

    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    if (ret)
        *ret = r;

    assert_int_equal(fseek(tmp, 0, SEEK_END), 0);
    long size = ftell(tmp);
    assert_true(size >= 0);
    rewind(tmp);
    char *out = calloc(1, (size_t)size + 1);
    assert_non_null(out);
    if (size > 0)
        assert_int_equal(fread(out, 1, (size_t)size, tmp), (size_t)size);
    fclose(tmp);
    return out;
}

static int run_help(void *arg) {
    char *argv[] = {"mspsync-test", "--verbose", (char *)arg, NULL};
    char err[256];
    return msp_config_load("fetcher", table, 3, argv, err, sizeof(err));
}

static void help_prints_usage_and_table_and_returns_1(void **state) {
    (void)state;
    int r;
    char *out = capture_stdout(run_help, "--help", &r);
    assert_int_equal(r, 1);
    assert_memory_equal(out, "Usage: mspsync-fetcher [--help]\n", 32);
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "TYPE"));
    assert_non_null(strstr(out, "DEFAULT"));
    assert_non_null(strstr(out, "DESCRIPTION"));
    assert_non_null(strstr(out, "MSPSYNC_T_BROKERS"));
    assert_non_null(strstr(out, "localhost:9092"));
    assert_non_null(strstr(out, "Kafka bootstrap servers"));
    assert_non_null(strstr(out, "(1..100)"));
    /* the secret's default is hidden */
    assert_non_null(strstr(out, "(secret)"));
    assert_null(strstr(out, "dev-key-please-change"));
    free(out);

    out = capture_stdout(run_help, "-h", &r);
    assert_int_equal(r, 1);
    free(out);
    /* help does not load anything */
    assert_null(brokers);
}

static void help_is_printed_even_when_settings_are_invalid(void **state) {
    (void)state;
    int r;
    setenv("MSPSYNC_T_BATCH", "abc", 1);
    char *out = capture_stdout(run_help, "--help", &r);
    assert_int_equal(r, 1);
    free(out);
}

static int run_markdown(void *arg) {
    msp_config_print_markdown((const char *)arg, table);
    return 0;
}

static void markdown_table_documents_every_setting(void **state) {
    (void)state;
    char *out = capture_stdout(run_markdown, "fetcher", NULL);
    assert_non_null(strstr(out, "| Variable | Type | Default | Description |"));
    assert_non_null(strstr(out, "| `MSPSYNC_T_BATCH` | int | `25` | Tickets per page (1..100) |"));
    assert_non_null(strstr(out, "| `MSPSYNC_T_API_KEY` | string | (secret) | Vendor API key (or "
                                "MSPSYNC_T_API_KEY_FILE: a file holding it) |"));
    /* a '|' in the help text must not break the row */
    assert_non_null(strstr(out, "Log writes \\| do not send them"));
    assert_null(strstr(out, "dev-key-please-change"));
    free(out);
}

static void free_is_null_safe_and_resets_destinations(void **state) {
    (void)state;
    char err[512];
    msp_config_free(NULL);
    assert_int_equal(msp_config_load("test", table, 1, argv_none, err, sizeof(err)), 0);
    assert_non_null(brokers);
    msp_config_free(table);
    assert_null(brokers);
    assert_null(api_key);
    msp_config_free(table); /* twice is fine */
}

/* ---- rows made at run time (MSP_CFG_EXPAND) ----------------------------------------------- */

static long long expanded[2];

/* Two rows a table cannot name statically (as vendor.h's rate rows for every vendor). */
static size_t two_rows(void *dest, msp_config_entry_t *out, size_t max) {
    long long *v = dest;
    const msp_config_entry_t rows[2] = {
        {"MSPSYNC_T_X_RATE", MSP_CFG_INT, "7", "Rate of x", &v[0], 1, 10, 0, NULL},
        {"MSPSYNC_T_Y_RATE", MSP_CFG_INT, "9", "Rate of y", &v[1], 1, 10, 0, NULL},
    };
    for (size_t i = 0; out && i < 2 && i < max; i++)
        out[i] = rows[i];
    return 2;
}

static const msp_config_entry_t expand_table[] = {
    {"MSPSYNC_T_BATCH", MSP_CFG_INT, "25", "Tickets per page", &batch, 1, 100, 0},
    {"(rates)", MSP_CFG_EXPAND, NULL, NULL, expanded, 0, 0, 0, two_rows},
    {"MSPSYNC_T_BROKERS", MSP_CFG_STR, "localhost:9092", "Kafka bootstrap servers", &brokers, 0, 0,
     0},
    {NULL},
};

static int run_expand_markdown(void *arg) {
    msp_config_print_markdown((const char *)arg, expand_table);
    return 0;
}

static void expanded_rows_are_read_validated_and_documented_in_place(void **state) {
    (void)state;
    char err[512];
    setenv("MSPSYNC_T_Y_RATE", "3", 1);
    assert_int_equal(msp_config_load("test", expand_table, 1, argv_none, err, sizeof(err)), 0);
    assert_int_equal(expanded[0], 7);
    assert_int_equal(expanded[1], 3);
    assert_int_equal(batch, 25);
    assert_string_equal(brokers, "localhost:9092");
    msp_config_free(expand_table);
    assert_null(brokers);
    /* an expanded row is validated like any other, all-or-nothing */
    setenv("MSPSYNC_T_X_RATE", "11", 1);
    setenv("MSPSYNC_T_BATCH", "5", 1);
    assert_int_equal(msp_config_load("test", expand_table, 1, argv_none, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "MSPSYNC_T_X_RATE: must be between 1 and 10"));
    assert_int_equal(batch, 25);
    unsetenv("MSPSYNC_T_X_RATE");
    unsetenv("MSPSYNC_T_Y_RATE");
    /* documented where the entry stands, never under its place-holder name */
    char *out = capture_stdout(run_expand_markdown, "fetcher", NULL);
    const char *b = strstr(out, "`MSPSYNC_T_BATCH`"), *x = strstr(out, "`MSPSYNC_T_X_RATE`"),
               *y = strstr(out, "`MSPSYNC_T_Y_RATE` | int | `9` | Rate of y (1..10) |"),
               *k = strstr(out, "`MSPSYNC_T_BROKERS`");
    assert_true(b && x && y && k && b < x && x < y && y < k);
    assert_null(strstr(out, "(rates)"));
    free(out);
}

/* ---- addresses with credentials ----------------------------------------------------------- */

/* url → what logs, errors and answers may show of it. */
static const struct {
    const char *url, *shown;
} masks[] = {
    /* well-formed */
    {"127.0.0.1:6379", "127.0.0.1:6379"},
    {"redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"},
    {"redis://:s3cretpw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"},
    {"redis://app:s3cretpw@redis.internal:6380", "redis://app:***@redis.internal:6380"},
    {"redis://s3cretpw@[::1]:6379", "redis://***@[::1]:6379"},
    {"s3cretpw@127.0.0.1", "***@127.0.0.1"},
    {"https://user:s3cretpw@api.example.com/v1", "https://user:***@api.example.com/v1"},
    {"broker-1:9092,broker-2:9092", "broker-1:9092,broker-2:9092"},
    {"SASL_SSL://u:s3cretpw@b1:9093", "SASL_SSL://u:***@b1:9093"},
    /* malformed: the password is masked however the rest breaks */
    {"redis://:s3cretpw@127.0.0.1:notaport", "redis://:***@127.0.0.1:***"},
    {"rediss://:s3cretpw@host:6379", "rediss://:***@host:6379"},
    {"redis://:s3cret/pw@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"},
    {"redis://:s3cret@pw@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"},
    {"redis://:s3cretpw@", "redis://:***@"},
    {"redis://:s3cretpw@[::1", "redis://:***@[::1"},
    {"redis://:s3cretpw", "redis://:***"},
    {"redis:/:s3cretpw@host", "redis:***@host"},
    {"", ""},
};

static void url_passwords_are_masked_well_formed_or_not(void **state) {
    (void)state;
    char out[256];
    for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
        msp_url_mask(masks[i].url, out, sizeof(out));
        if (strcmp(out, masks[i].shown) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", masks[i].url, out, masks[i].shown);
        assert_null(strstr(out, "s3cret"));
    }
    /* truncation keeps a terminated string, NULL gives "" */
    assert_string_equal(msp_url_mask("redis://:s3cretpw@host:6379", out, 12), "redis://:**");
    assert_string_equal(msp_url_mask(NULL, out, sizeof(out)), "");
}

/* MSPSYNC_REDIS_URL: every way of getting it wrong names the problem, never the password. */
static void redis_address_errors_never_quote_the_password(void **state) {
    (void)state;
    static const char *const bad[] = {
        "redis://:s3cretpw@127.0.0.1:notaport", "rediss://:s3cretpw@127.0.0.1:6379",
        "http://user:s3cretpw@127.0.0.1:6379",  "redis://:s3cret/pw@127.0.0.1:6379",
        "redis://:s3cretpw@127.0.0.1:6379/x",   "redis://:s3cretpw@",
        "redis://:s3cretpw@[::1",               "redis://:s3cretpw@[::1]x",
        "redis://:s3cretpw",                    "s3cretpw@:6379",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[512] = "";
        redisContext *c = msp_redis_connect(bad[i], err, sizeof(err));
        assert_null(c);
        assert_true(err[0] != '\0');
        if (strstr(err, "s3cret"))
            fail_msg("%s: error quotes the password: %s", bad[i], err);
    }
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, clean_env, free_table)
    const struct CMUnitTest tests[] = {
        T(defaults_apply_when_environment_is_empty),
        T(environment_overrides_defaults),
        T(empty_variable_counts_as_unset),
        T(non_integer_is_an_error_naming_the_variable),
        T(integer_outside_bounds_is_an_error),
        T(booleans_accept_common_spellings_only),
        T(missing_required_setting_is_an_error),
        T(every_invalid_variable_is_reported_at_once),
        T(secret_value_is_never_quoted_in_errors),
        T(secret_setting_is_read_from_its_file_without_the_trailing_newline),
        T(secret_setting_and_its_file_both_set_is_an_error),
        T(unreadable_or_empty_secret_file_is_an_error_naming_the_path),
        T(secret_file_errors_never_quote_the_contents),
        T(only_secret_settings_accept_a_file),
        T(help_prints_usage_and_table_and_returns_1),
        T(help_is_printed_even_when_settings_are_invalid),
        T(markdown_table_documents_every_setting),
        T(free_is_null_safe_and_resets_destinations),
        T(expanded_rows_are_read_validated_and_documented_in_place),
        cmocka_unit_test(url_passwords_are_masked_well_formed_or_not),
        cmocka_unit_test(redis_address_errors_never_quote_the_password),
    };
#undef T
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
