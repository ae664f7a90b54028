/*
 * test_log.c — JSON-lines logging: every line parses, carries its context, never leaks a secret,
 * and costs nothing below the level.
 *
 * Lines go to an open_memstream() buffer (msp_log_set_stream) and are parsed back with jansson,
 * the way a log shipper would read them.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "mspsync/log.h"

#define THREADS_CHURN 4

typedef struct {
    FILE *f;
    char *buf;
    size_t size;
} capture_t;

static int setup(void **state) {
    capture_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    c->f = open_memstream(&c->buf, &c->size);
    if (!c->f) {
        free(c);
        return -1;
    }
    msp_log_init("fetcher", "debug");
    msp_log_set_stream(c->f);
    *state = c;
    return 0;
}

static int teardown(void **state) {
    capture_t *c = *state;
    msp_log_set_stream(NULL);
    fclose(c->f);
    free(c->buf);
    free(c);
    return 0;
}

/* The captured output so far (msp_log_write flushes after each line). */
static const char *captured(capture_t *c) {
    fflush(c->f);
    return c->buf ? c->buf : "";
}

static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (*s == '\n')
            n++;
    return n;
}

/* Parse the only line captured so far; fails the test if it is not exactly one JSON object. */
static json_t *only_line(capture_t *c) {
    const char *s = captured(c);
    json_error_t jerr;
    assert_int_equal(count_lines(s), 1);
    assert_int_equal(s[strlen(s) - 1], '\n');
    json_t *j = json_loads(s, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, s);
    assert_true(json_is_object(j));
    return j;
}

static void line_is_json_with_context_fields(void **state) {
    capture_t *c = *state;
    MSP_INFO("sync.page", "acme", "fetched %d tickets from page %s", 50, "3");

    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "fetcher");
    assert_string_equal(json_string_value(json_object_get(j, "event")), "sync.page");
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "fetched 50 tickets from page 3");
    /* file/line only for warn and error */
    assert_null(json_object_get(j, "file"));
    assert_null(json_object_get(j, "line"));

    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24); /* 2026-11-23T21:45:00.123Z */
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    json_decref(j);
}

static void errors_carry_file_and_line(void **state) {
    capture_t *c = *state;
    int expected_line = __LINE__ + 1;
    MSP_ERROR("sync.failed", "acme", "boom");

    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "file")), "test_log.c");
    assert_int_equal(json_integer_value(json_object_get(j, "line")), expected_line);
    json_decref(j);
}

static void null_event_and_tenant_still_give_valid_json(void **state) {
    capture_t *c = *state;
    MSP_WARN(NULL, NULL, "no context");
    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "no context");
    assert_null(json_object_get(j, "tenant"));
    assert_null(json_object_get(j, "event"));
    json_decref(j);
}

static void awkward_strings_are_escaped(void **state) {
    capture_t *c = *state;
    /* quotes, backslash, newline (must not split the line), control chars, UTF-8, invalid UTF-8 */
    MSP_INFO("ev\"il", "ten\\ant\n",
             "say \"hi\"\\ \n\t\r\b\f\x01\x1f\x7f caf\xc3\xa9 bad\xff\xc3 end");

    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "event")), "ev\"il");
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "ten\\ant\n");
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "say \"hi\"\\ \n\t\r\b\f\x01\x1f\x7f caf\xc3\xa9 "
                        "bad\xef\xbf\xbd\xef\xbf\xbd end");
    json_decref(j);
    /* control characters are written as \u00XX, never raw */
    assert_non_null(strstr(captured(c), "\\u0001"));
    assert_non_null(strstr(captured(c), "\\u001f"));
}

static void registered_secret_never_appears(void **state) {
    capture_t *c = *state;
    msp_log_redact("hunter2-api-key");
    MSP_ERROR("auth.failed", "acme", "key=hunter2-api-key rejected; retried with hunter2-api-key");

    assert_null(strstr(captured(c), "hunter2-api-key"));
    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "key=[REDACTED] rejected; retried with [REDACTED]");
    json_decref(j);
}

static void longer_secret_containing_another_is_fully_redacted(void **state) {
    capture_t *c = *state;
    msp_log_redact("tok-1234");
    msp_log_redact("tok-123456789"); /* registered later, longer: must still win */
    MSP_INFO("x", NULL, "a tok-123456789 b tok-1234 c");
    assert_null(strstr(captured(c), "1234"));
    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "a [REDACTED] b [REDACTED] c");
    json_decref(j);
}

/* One replica opens the credentials of thousands of tenants: every one of them stays redacted. */
static void thousands_of_secrets_are_all_redacted(void **state) {
    capture_t *c = *state;
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "tenant-key-%05d", i);
        msp_log_redact(key);
        msp_log_redact(key);   /* a second holder of the same key: still one entry */
    }
    MSP_INFO("x", NULL, "first tenant-key-00000 last tenant-key-02999");
    assert_null(strstr(captured(c), "tenant-key-"));
    assert_null(strstr(captured(c), "redact_full"));
    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "first [REDACTED] last [REDACTED]");
    json_decref(j);
}

static void secret_that_needs_escaping_is_redacted(void **state) {
    capture_t *c = *state;
    msp_log_redact("pa\"ss\\word");
    MSP_INFO("x", NULL, "p=pa\"ss\\word");
    assert_null(strstr(captured(c), "ss\\\\word"));
    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "p=[REDACTED]");
    json_decref(j);
}

static void short_strings_are_not_treated_as_secrets(void **state) {
    capture_t *c = *state;
    msp_log_redact("abc");
    msp_log_redact(NULL);
    MSP_INFO("x", NULL, "abc");
    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "abc");
    json_decref(j);
}

static void long_message_is_complete_and_redacted(void **state) {
    capture_t *c = *state;
    size_t n = 5000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    msp_log_redact("long-secret-value");
    MSP_INFO("x", "acme", "%s\"%s", big, "long-secret-value");

    assert_null(strstr(captured(c), "long-secret-value"));
    json_t *j = only_line(c);
    const char *msg = json_string_value(json_object_get(j, "msg"));
    assert_int_equal(strlen(msg), n + 1 + strlen("[REDACTED]"));
    assert_string_equal(msg + n, "\"[REDACTED]");
    json_decref(j);
    free(big);
}

/* A holder that lets go (integration removed, token replaced) takes the secret off the list:
 * the word is an ordinary word again. */
static void forgotten_secret_is_shown_again(void **state) {
    capture_t *c = *state;
    msp_log_redact("queued-key-1");
    MSP_INFO("x", NULL, "a queued-key-1 b");
    msp_log_unredact("queued-key-1");
    MSP_INFO("x", NULL, "c queued-key-1 d");
    const char *s = captured(c);
    assert_non_null(strstr(s, "\"a [REDACTED] b\""));
    assert_non_null(strstr(s, "\"c queued-key-1 d\""));
}

/* Two holders of one secret (two jobs of one tenant): it stays redacted until both let go. */
static void secret_stays_redacted_while_any_holder_keeps_it(void **state) {
    capture_t *c = *state;
    size_t before = msp_log_redact_count();
    msp_log_redact("shared-key-77");
    msp_log_redact("shared-key-77");
    assert_int_equal(msp_log_redact_count(), before + 1);
    msp_log_unredact("shared-key-77");
    MSP_INFO("x", NULL, "one shared-key-77");
    msp_log_unredact("shared-key-77");
    MSP_INFO("x", NULL, "two shared-key-77");
    msp_log_unredact("shared-key-77");  /* one too many: ignored */
    msp_log_unredact("never-registered");
    assert_int_equal(msp_log_redact_count(), before);
    const char *s = captured(c);
    assert_non_null(strstr(s, "\"one [REDACTED]\""));
    assert_non_null(strstr(s, "\"two shared-key-77\""));
}

/* Keys saved and rejected, tokens issued and replaced: the registry holds only what is kept. */
static void registry_does_not_grow_with_secrets_let_go(void **state) {
    capture_t *c = *state;
    char key[32];
    size_t before = msp_log_redact_count();
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "token-%05d", i);
        msp_log_redact(key);
        if (i > 0) {
            snprintf(key, sizeof(key), "token-%05d", i - 1);
            msp_log_unredact(key);  /* the token it replaces */
        }
    }
    assert_int_equal(msp_log_redact_count(), before + 1);
    MSP_INFO("x", NULL, "token-04998 token-04999");
    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "token-04998 [REDACTED]");
    json_decref(j);
    msp_log_unredact("token-04999");
    assert_int_equal(msp_log_redact_count(), before);
}

/* Forgetting while other threads log and register: every line is whole, nothing crashes. */
static void *redact_churn(void *arg) {
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "churn-%d-%d", (int)(intptr_t)arg, i % 7);
        msp_log_redact(key);
        MSP_INFO("x", NULL, "line %s", key);
        msp_log_unredact(key);
    }
    return NULL;
}

static void forgetting_is_safe_across_threads(void **state) {
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    msp_log_set_stream(f);
    size_t before = msp_log_redact_count();
    pthread_t t[THREADS_CHURN];
    for (int i = 0; i < THREADS_CHURN; i++)
        assert_int_equal(pthread_create(&t[i], NULL, redact_churn, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS_CHURN; i++)
        pthread_join(t[i], NULL);
    msp_log_set_stream(NULL);
    assert_int_equal(msp_log_redact_count(), before);
    rewind(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        /* each line logged its own key while it was registered */
        assert_non_null(strstr(line, "line [REDACTED]"));
        n++;
    }
    assert_int_equal(n, THREADS_CHURN * 2000);
    fclose(f);
}

static int evaluations;
static int counted(void) {
    evaluations++;
    return 42;
}

static void arguments_below_level_are_not_evaluated(void **state) {
    capture_t *c = *state;
    msp_log_init("fetcher", "warn");
    evaluations = 0;
    MSP_DEBUG("x", NULL, "%d", counted());
    MSP_INFO("x", NULL, "%d", counted());
    assert_int_equal(evaluations, 0);
    assert_int_equal(count_lines(captured(c)), 0);

    MSP_WARN("x", NULL, "%d", counted());
    assert_int_equal(evaluations, 1);
    assert_int_equal(count_lines(captured(c)), 1);
}

static void level_names_parse(void **state) {
    (void)state;
    msp_log_init("svc", "debug");
    assert_int_equal(msp_log_min_level, MSP_LOG_DEBUG);
    msp_log_init("svc", "INFO");
    assert_int_equal(msp_log_min_level, MSP_LOG_INFO);
    msp_log_init("svc", "warn");
    assert_int_equal(msp_log_min_level, MSP_LOG_WARN);
    msp_log_init("svc", "Warning");
    assert_int_equal(msp_log_min_level, MSP_LOG_WARN);
    msp_log_init("svc", "error");
    assert_int_equal(msp_log_min_level, MSP_LOG_ERROR);
    msp_log_init("svc", NULL);
    assert_int_equal(msp_log_min_level, MSP_LOG_INFO);
}

static void unknown_level_falls_back_to_info_and_says_so(void **state) {
    capture_t *c = *state;
    msp_log_init("svc", "verbose");
    assert_int_equal(msp_log_min_level, MSP_LOG_INFO);
    json_t *j = only_line(c);
    assert_string_equal(json_string_value(json_object_get(j, "event")), "log.bad_level");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "svc");
    assert_non_null(strstr(json_string_value(json_object_get(j, "msg")), "verbose"));
    json_decref(j);
}

#define THREADS 4
#define LINES_PER_THREAD 300

static void *log_many(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < LINES_PER_THREAD; i++)
        MSP_INFO("thread.line", "acme", "thread %d line %d %s", id, i,
                 "padding padding padding padding padding padding padding padding");
    return NULL;
}

static void lines_from_threads_do_not_interleave(void **state) {
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    msp_log_set_stream(f);

    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_many, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    msp_log_set_stream(NULL);

    rewind(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        if (!j)
            fail_msg("line %d not JSON: %s", n, line);
        json_decref(j);
        n++;
    }
    assert_int_equal(n, THREADS * LINES_PER_THREAD);
    fclose(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(line_is_json_with_context_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_carry_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(null_event_and_tenant_still_give_valid_json, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(awkward_strings_are_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(registered_secret_never_appears, setup, teardown),
        cmocka_unit_test_setup_teardown(longer_secret_containing_another_is_fully_redacted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(secret_that_needs_escaping_is_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(thousands_of_secrets_are_all_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(short_strings_are_not_treated_as_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(long_message_is_complete_and_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(forgotten_secret_is_shown_again, setup, teardown),
        cmocka_unit_test_setup_teardown(secret_stays_redacted_while_any_holder_keeps_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(registry_does_not_grow_with_secrets_let_go, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(forgetting_is_safe_across_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(arguments_below_level_are_not_evaluated, setup, teardown),
        cmocka_unit_test(level_names_parse),
        cmocka_unit_test_setup_teardown(unknown_level_falls_back_to_info_and_says_so, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(lines_from_threads_do_not_interleave, setup, teardown),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
