/*
 * test_ctl.c — mspsyncctl's config files and its sync progress display (tools/mspsyncctl).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"

static int parse(const char *text, ctl_conf *c, char *err) {
    memset(c, 0, sizeof(*c));
    return ctl_conf_parse(text, strlen(text), c, err, 256);
}

static void config_lines_set_keys_with_comments_spaces_and_quotes(void **state) {
    (void)state;
    ctl_conf c;
    char err[256] = "";
    assert_int_equal(parse("# mspsync\n\n  url = http://gw:8080  \r\n"
                           "tenant=acme\n\ttoken = \"a b c\"\nurl = http://later\n",
                           &c, err),
                     0);
    assert_string_equal(c.url, "http://later"); /* a later line overrides */
    assert_string_equal(c.tenant, "acme");
    assert_string_equal(c.token, "a b c");
    assert_string_equal(c.token_file, "");
    assert_int_equal(parse("token_file = /run/secrets/mspsync", &c, err), 0); /* no final \n */
    assert_string_equal(c.token_file, "/run/secrets/mspsync");
    assert_int_equal(parse("tenant =\n", &c, err), 0);
    assert_string_equal(c.tenant, "");
}

static void config_errors_name_the_line(void **state) {
    (void)state;
    ctl_conf c;
    char err[256];
    assert_int_equal(parse("url = x\ntokn = y\n", &c, err), -1);
    assert_string_equal(err,
                        "line 2: unknown key \"tokn\" (known: url, token, token_file, tenant)");
    assert_int_equal(parse("\n\njust words\n", &c, err), -1);
    assert_string_equal(err, "line 3: expected `key = value`");
    char *long_line = malloc(CTL_CONF_VALUE_MAX + 16);
    strcpy(long_line, "url = ");
    memset(long_line + 6, 'x', CTL_CONF_VALUE_MAX);
    long_line[6 + CTL_CONF_VALUE_MAX] = '\0';
    assert_int_equal(parse(long_line, &c, err), -1);
    assert_non_null(strstr(err, "line 1: the value of url is longer than"));
    free(long_line);
    memset(&c, 0, sizeof(c));
    assert_int_equal(ctl_conf_parse("url = a\0b", 9, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "NUL"));
}

static char *write_file(const char *text, mode_t mode) {
    char *path = strdup("/tmp/mspsyncctl-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
    return path;
}

static void a_token_in_a_file_others_can_read_is_refused(void **state) {
    (void)state;
    ctl_conf c;
    memset(&c, 0, sizeof(c));
    char err[512];
    char *path = write_file("url = http://gw\ntoken = s3cret\n", 0644);
    assert_int_equal(ctl_conf_load_file(path, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "readable by others (mode 644)"));
    assert_null(strstr(err, "s3cret"));
    assert_string_equal(c.token, ""); /* nothing taken from a refused file */
    assert_string_equal(c.url, "");
    chmod(path, 0600);
    assert_int_equal(ctl_conf_load_file(path, &c, err, sizeof(err)), 0);
    assert_string_equal(c.token, "s3cret");
    assert_string_equal(c.url, "http://gw");
    unlink(path);
    free(path);

    /* Without a token the mode does not matter. */
    memset(&c, 0, sizeof(c));
    path = write_file("url = http://gw\ntenant = acme\n", 0644);
    assert_int_equal(ctl_conf_load_file(path, &c, err, sizeof(err)), 0);
    assert_string_equal(c.tenant, "acme");
    unlink(path);
    assert_int_equal(ctl_conf_load_file(path, &c, err, sizeof(err)), 1); /* absent */
    free(path);

    char tok[64];
    path = write_file("  tok-123  \nsecond line\n", 0640);
    assert_int_equal(ctl_read_secret_file(path, "token", 1, tok, sizeof(tok), err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "readable by others"));
    assert_int_equal(ctl_read_secret_file(path, "token", 0, tok, sizeof(tok), err, sizeof(err)), 0);
    assert_string_equal(tok, "tok-123");
    unlink(path);
    free(path);
    path = write_file("\n", 0600);
    assert_int_equal(ctl_read_secret_file(path, "token", 1, tok, sizeof(tok), err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "is empty"));
    unlink(path);
    free(path);
}

static void default_path_honours_xdg_config_home(void **state) {
    (void)state;
    char path[256];
    setenv("XDG_CONFIG_HOME", "/x/cfg", 1);
    setenv("HOME", "/home/u", 1);
    assert_int_equal(ctl_conf_default_path(path, sizeof(path)), 0);
    assert_string_equal(path, "/x/cfg/mspsync/config");
    unsetenv("XDG_CONFIG_HOME");
    assert_int_equal(ctl_conf_default_path(path, sizeof(path)), 0);
    assert_string_equal(path, "/home/u/.config/mspsync/config");
    unsetenv("HOME");
    assert_int_equal(ctl_conf_default_path(path, sizeof(path)), -1);
}

static ctl_progress progress_of(const char *status_json) {
    json_t *js = json_loads(status_json, 0, NULL);
    assert_non_null(js);
    ctl_progress p;
    ctl_progress_from_json(js, &p);
    json_decref(js);
    return p;
}

static void plain_progress_is_one_line_of_text(void **state) {
    (void)state;
    char line[256];
    ctl_progress p = progress_of(
        "{\"state\":\"Syncing\",\"job_id\":\"abc\",\"inventory_pending\":false,\"progress\":"
        "{\"type\":\"asset\",\"page\":3,\"total_pages\":10,\"customers_fetched\":25,"
        "\"assets_fetched\":150}}");
    assert_string_equal(p.job_id, "abc");
    ctl_progress_render(&p, 0, 0, line, sizeof(line));
    assert_string_equal(line, "Syncing asset page 3/10, customers 25, assets 150");
    p = progress_of("{\"state\":\"Syncing\",\"inventory_pending\":true,\"progress\":{\"type\":"
                    "\"done\",\"page\":10,\"total_pages\":10,\"assets_fetched\":500}}");
    ctl_progress_render(&p, 0, 0, line, sizeof(line));
    assert_string_equal(line, "Syncing writing inventory, customers 0, assets 500");
    p = progress_of("{\"state\":\"Syncing\",\"progress\":{\"type\":null}}");
    ctl_progress_render(&p, 0, 0, line, sizeof(line));
    assert_string_equal(line, "Syncing queued, customers 0, assets 0");
    /* Whatever the answer holds, no control character reaches the line. */
    p = progress_of("{\"state\":\"Sync\\u001b[2Jing\",\"progress\":{\"type\":\"a\\r\\nb\","
                    "\"page\":\"x\",\"total_pages\":-4}}");
    ctl_progress_render(&p, 0, 0, line, sizeof(line));
    for (const char *c = line; *c; c++)
        assert_true(*c >= 0x20 && *c < 0x7f);
    p = progress_of("[]");
    ctl_progress_render(&p, 0, 0, line, sizeof(line));
    assert_string_equal(line, "unknown, customers 0, assets 0");
}

static void bar_fills_with_pages_and_fits_the_width(void **state) {
    (void)state;
    char line[512];
    ctl_progress p = progress_of(
        "{\"state\":\"Syncing\",\"progress\":{\"type\":\"asset\",\"page\":5,\"total_pages\":10,"
        "\"customers_fetched\":25,\"assets_fetched\":250}}");
    size_t n = ctl_progress_render(&p, 1, 200, line, sizeof(line));
    assert_int_equal(n, strlen(line));
    assert_non_null(strstr(line, "Syncing   asset      page 5/10     [####################"
                                 "--------------------]  customers 25  assets 250"));
    /* 80 columns: the bar shrinks so the line stays within width - 1. */
    n = ctl_progress_render(&p, 1, 80, line, sizeof(line));
    assert_true(n <= 79);
    assert_non_null(strstr(line, "[#"));
    assert_non_null(strstr(line, "assets 250"));
    /* A page past the total (a vendor that grew meanwhile) does not overflow the bar. */
    p.page = 12;
    ctl_progress_render(&p, 1, 120, line, sizeof(line));
    assert_null(strchr(line, '-') ? strstr(strchr(line, '['), "-") : NULL);
    /* Connected: full; Error: empty. */
    p = progress_of("{\"state\":\"Connected\",\"progress\":{\"type\":\"done\"}}");
    ctl_progress_render(&p, 1, 100, line, sizeof(line));
    assert_null(strstr(strchr(line, '['), "-"));
    p = progress_of("{\"state\":\"Error\",\"progress\":{\"type\":\"asset\",\"page\":2,"
                    "\"total_pages\":4}}");
    ctl_progress_render(&p, 1, 100, line, sizeof(line));
    assert_null(strstr(line, "#"));
    /* A long step on 80 columns: the bar shrinks or goes, the numbers stay whole. */
    p = progress_of("{\"state\":\"Syncing\",\"inventory_pending\":true,\"progress\":{\"type\":"
                    "\"done\",\"page\":6,\"total_pages\":6,\"customers_fetched\":60,"
                    "\"assets_fetched\":300}}");
    n = ctl_progress_render(&p, 1, 80, line, sizeof(line));
    assert_true(n <= 79);
    assert_non_null(strstr(line, "writing inventory"));
    assert_non_null(strstr(line, "  customers 60  assets 300"));
    assert_string_equal(line + n - strlen("assets 300"), "assets 300");
    n = ctl_progress_render(&p, 1, 60, line, sizeof(line));
    assert_null(strchr(line, '['));
    assert_string_equal(line + n - strlen("assets 300"), "assets 300");
    /* Tiny width and tiny buffer: cut, NUL-terminated, no overflow. */
    n = ctl_progress_render(&p, 1, 5, line, sizeof(line));
    assert_int_equal(n, 4);
    char tiny[8];
    n = ctl_progress_render(&p, 0, 0, tiny, sizeof(tiny));
    assert_int_equal(n, 7);
    assert_int_equal(strlen(tiny), 7);
}

static void the_watched_job_ends_at_connected_error_or_disabled(void **state) {
    (void)state;
    ctl_progress p = progress_of("{\"state\":\"Connected\",\"job_id\":\"old\"}");
    assert_true(ctl_progress_final(&p, NULL));
    assert_false(ctl_progress_final(&p, "new")); /* the previous job's Connected */
    p = progress_of("{\"state\":\"Syncing\",\"job_id\":\"new\"}");
    assert_false(ctl_progress_final(&p, "new"));
    p = progress_of("{\"state\":\"Error\",\"job_id\":\"new\"}");
    assert_true(ctl_progress_final(&p, "new"));
    p = progress_of("{\"state\":\"Disabled\",\"job_id\":null}");
    assert_true(ctl_progress_final(&p, NULL));
}

static void exit_codes_follow_the_status(void **state) {
    (void)state;
    assert_int_equal(ctl_exit_for_status(200), CTL_OK);
    assert_int_equal(ctl_exit_for_status(204), CTL_OK);
    assert_int_equal(ctl_exit_for_status(404), CTL_NOT_FOUND);
    assert_int_equal(ctl_exit_for_status(422), CTL_REFUSED);
    assert_int_equal(ctl_exit_for_status(401), CTL_REFUSED);
    assert_int_equal(ctl_exit_for_status(503), CTL_UNREACHABLE);
    assert_int_equal(ctl_exit_for_status(302), CTL_UNREACHABLE);
    char out[32];
    assert_int_equal(ctl_urlencode("org/7 x:é", out, sizeof(out)), 0);
    assert_string_equal(out, "org%2F7%20x%3A%C3%A9");
    assert_int_equal(ctl_urlencode("abcdef", out, 6), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_lines_set_keys_with_comments_spaces_and_quotes),
        cmocka_unit_test(config_errors_name_the_line),
        cmocka_unit_test(a_token_in_a_file_others_can_read_is_refused),
        cmocka_unit_test(default_path_honours_xdg_config_home),
        cmocka_unit_test(plain_progress_is_one_line_of_text),
        cmocka_unit_test(bar_fills_with_pages_and_fits_the_width),
        cmocka_unit_test(the_watched_job_ends_at_connected_error_or_disabled),
        cmocka_unit_test(exit_codes_follow_the_status),
    };
    return cmocka_run_group_tests_name("ctl", tests, NULL, NULL);
}
