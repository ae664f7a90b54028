/*
 * test_kafka_props.c — the operator's librdkafka properties: how MSPSYNC_KAFKA_PROP_* names map
 * to property names, the properties file, which source wins, errors that name the variable or
 * the line and never a secret value, and the topic prefix check of msp_kafka_configure.
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

#include "mspsync/kafka.h"
#include "mspsync/kafka_props.h"

/* A file under /tmp holding text; its path in path (caller unlinks). */
static void write_file(char *path, size_t size, const char *text) {
    snprintf(path, size, "/tmp/mspsync-test-kprops-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void variable_names_map_to_lower_case_dotted_properties(void **state) {
    (void)state;
    char name[128];
    int file = -1;
    assert_int_equal(msp_kafka_prop_name("MSPSYNC_KAFKA_PROP_SECURITY_PROTOCOL", name,
                                         sizeof(name), &file), 0);
    assert_string_equal(name, "security.protocol");
    assert_int_equal(file, 0);
    assert_int_equal(msp_kafka_prop_name("MSPSYNC_KAFKA_PROP_LOG__LEVEL", name, sizeof(name),
                                         &file), 0);
    assert_string_equal(name, "log_level");
    assert_int_equal(msp_kafka_prop_name("MSPSYNC_KAFKA_PROP_SASL_PASSWORD_FILE", name,
                                         sizeof(name), &file), 0);
    assert_string_equal(name, "sasl.password");
    assert_int_equal(file, 1);
    assert_int_equal(msp_kafka_prop_name("MSPSYNC_KAFKA_PROP_", name, sizeof(name), NULL), -1);
    assert_int_equal(msp_kafka_prop_name("MSPSYNC_KAFKA_PROP__X", name, sizeof(name), NULL), -1);
    assert_int_equal(msp_kafka_prop_name("MSPSYNC_KAFKA_PROP_A-B", name, sizeof(name), NULL), -1);
    assert_int_equal(msp_kafka_prop_name("MSPSYNC_KAFKA_BROKERS", name, sizeof(name), NULL), -1);
}

static void secret_properties_are_recognised(void **state) {
    (void)state;
    assert_true(msp_kafka_prop_secret("sasl.password"));
    assert_true(msp_kafka_prop_secret("ssl.key.password"));
    assert_true(msp_kafka_prop_secret("ssl.keystore.password"));
    assert_true(msp_kafka_prop_secret("ssl.key.pem"));
    assert_true(msp_kafka_prop_secret("sasl.oauthbearer.client.secret"));
    assert_false(msp_kafka_prop_secret("sasl.username"));
    assert_false(msp_kafka_prop_secret("ssl.ca.location"));
}

static void file_lines_are_read_and_later_sources_win(void **state) {
    (void)state;
    char path[64], err[512] = "";
    write_file(path, sizeof(path),
               "# managed Kafka\n"
               "security.protocol = SASL_SSL\n"
               "\n"
               "  ! another comment\n"
               "sasl.mechanisms=SCRAM-SHA-512\r\n"
               "sasl.username=mspsync\n"
               "sasl.password=pw=with=equals \n"
               "sasl.username=svc-mspsync\n");
    msp_kafka_props_t *p = msp_kafka_props_new();
    assert_int_equal(msp_kafka_props_load_file(p, path, err, sizeof(err)), 0);
    char *envp[] = {"PATH=/bin", "MSPSYNC_KAFKA_PROP_SASL_MECHANISMS=PLAIN",
                    "MSPSYNC_KAFKA_PROP_CLIENT_RACK=", NULL};
    assert_int_equal(msp_kafka_props_load_env(p, envp, err, sizeof(err)), 0);
    assert_int_equal(msp_kafka_props_count(p), 4);
    assert_string_equal(msp_kafka_props_get(p, "security.protocol"), "SASL_SSL");
    assert_string_equal(msp_kafka_props_get(p, "sasl.mechanisms"), "PLAIN");
    assert_string_equal(msp_kafka_props_get(p, "sasl.username"), "svc-mspsync");
    assert_string_equal(msp_kafka_props_get(p, "sasl.password"), "pw=with=equals");
    assert_null(msp_kafka_props_get(p, "client.rack")); /* empty = unset */

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "sasl.mechanisms", "GSSAPI", err, sizeof(err)), 0);
    assert_int_equal(msp_kafka_props_apply(p, conf, err, sizeof(err)), 0);
    char v[64];
    size_t vs = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(conf, "sasl.mechanisms", v, &vs), RD_KAFKA_CONF_OK);
    assert_string_equal(v, "PLAIN"); /* the operator's value over ours */
    rd_kafka_conf_destroy(conf);
    msp_kafka_props_destroy(p);
    unlink(path);
}

static void value_from_a_file_drops_the_trailing_newline(void **state) {
    (void)state;
    char path[64], err[512] = "", var[128];
    write_file(path, sizeof(path), "s3cret-from-file\n");
    snprintf(var, sizeof(var), "MSPSYNC_KAFKA_PROP_SASL_PASSWORD_FILE=%s", path);
    char *envp[] = {var, NULL};
    msp_kafka_props_t *p = msp_kafka_props_new();
    assert_int_equal(msp_kafka_props_load_env(p, envp, err, sizeof(err)), 0);
    assert_string_equal(msp_kafka_props_get(p, "sasl.password"), "s3cret-from-file");
    msp_kafka_props_destroy(p);
    unlink(path);
}

static void unknown_property_is_an_error_naming_the_variable(void **state) {
    (void)state;
    char err[512] = "";
    char *envp[] = {"MSPSYNC_KAFKA_PROP_SASL_PASSWROD=hunter22", NULL};
    msp_kafka_props_t *p = msp_kafka_props_new();
    assert_int_equal(msp_kafka_props_load_env(p, envp, err, sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_KAFKA_PROP_SASL_PASSWROD: unknown librdkafka property "
                             "\"sasl.passwrod\"");
    msp_kafka_props_destroy(p);
}

static void bad_line_is_an_error_naming_file_and_line(void **state) {
    (void)state;
    char path[64], err[512] = "", want[256];
    write_file(path, sizeof(path), "security.protocol=SASL_SSL\nsasl.password hunter22\n");
    msp_kafka_props_t *p = msp_kafka_props_new();
    assert_int_equal(msp_kafka_props_load_file(p, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "MSPSYNC_KAFKA_PROPERTIES_FILE: %s:2: expected key=value", path);
    assert_string_equal(err, want);
    msp_kafka_props_destroy(p);
    unlink(path);
    p = msp_kafka_props_new();
    assert_int_equal(msp_kafka_props_load_file(p, "/nonexistent/kafka.properties", err,
                                               sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_KAFKA_PROPERTIES_FILE: cannot read "
                             "/nonexistent/kafka.properties: No such file or directory");
    msp_kafka_props_destroy(p);
}

static void invalid_secret_value_is_never_quoted(void **state) {
    (void)state;
    char err[512] = "";
    /* librdkafka quotes refused values: "Invalid value "..." for configuration property" */
    msp_kafka_props_t *p = msp_kafka_props_new();
    char *bad[] = {"MSPSYNC_KAFKA_PROP_SECURITY_PROTOCOL=hunter22", NULL};
    assert_int_equal(msp_kafka_props_load_env(p, bad, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "MSPSYNC_KAFKA_PROP_SECURITY_PROTOCOL: "));
    assert_non_null(strstr(err, "hunter22")); /* not a secret: the value helps */
    /* refused values of secret properties: named, not quoted */
    char *ptr[] = {"MSPSYNC_KAFKA_PROP_SSL__KEY=hunter22", NULL};
    assert_int_equal(msp_kafka_props_load_env(p, ptr, err, sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_KAFKA_PROP_SSL__KEY: invalid value for \"ssl_key\"");
    char *oauth[] = {"MSPSYNC_KAFKA_PROP_SASL_OAUTHBEARER_CLIENT_SECRET=hunter22", NULL};
    if (msp_kafka_props_load_env(p, oauth, err, sizeof(err)) != 0)
        assert_null(strstr(err, "hunter22"));
    char *secret[] = {"MSPSYNC_KAFKA_PROP_SASL_PASSWORD_FILE=/nonexistent/hunter22", NULL};
    assert_int_equal(msp_kafka_props_load_env(p, secret, err, sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_KAFKA_PROP_SASL_PASSWORD_FILE: cannot read "
                             "/nonexistent/hunter22: No such file or directory");
    msp_kafka_props_destroy(p);
}

static void topic_prefix_with_characters_kafka_refuses_is_an_error(void **state) {
    (void)state;
    char err[512] = "", longp[300];
    assert_int_equal(msp_topic_prefix_check("", err, sizeof(err)), 0);
    assert_int_equal(msp_topic_prefix_check("prod-eu_1.", err, sizeof(err)), 0);
    assert_int_equal(msp_topic_prefix_check("prod/eu.", err, sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_TOPIC_PREFIX: character 5 ('/') is not allowed in a Kafka "
                             "topic name (only A-Z a-z 0-9 . _ -)");
    /* 249 minus the longest base name, "incidents.held" (14) */
    memset(longp, 'a', 235);
    longp[235] = '\0';
    assert_int_equal(msp_topic_prefix_check(longp, err, sizeof(err)), 0);
    longp[235] = 'a';
    longp[236] = '\0';
    assert_int_equal(msp_topic_prefix_check(longp, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "MSPSYNC_TOPIC_PREFIX: 236 characters; at most 235"));
}

static void configure_refuses_min_insync_above_replication(void **state) {
    (void)state;
    char err[512] = "";
    msp_kafka_conf_t k = {.properties_file = "", .topic_partitions = 12,
                          .topic_replication = 2, .topic_min_insync = 3};
    assert_int_equal(msp_kafka_configure(&k, "t.", err, sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_KAFKA_TOPIC_MIN_INSYNC (3) must not exceed "
                             "MSPSYNC_KAFKA_TOPIC_REPLICATION (2)");
    k.topic_min_insync = 2;
    setenv("MSPSYNC_KAFKA_PROP_CLIENT_RACK", "eu-1a", 1);
    assert_int_equal(msp_kafka_configure(&k, "t.", err, sizeof(err)), 0);
    assert_string_equal(msp_topic("dlq"), "t.dlq");
    setenv("MSPSYNC_KAFKA_PROP_CLIENT_RACKK", "eu-1a", 1);
    assert_int_equal(msp_kafka_configure(&k, "u.", err, sizeof(err)), -1);
    assert_string_equal(err, "MSPSYNC_KAFKA_PROP_CLIENT_RACKK: unknown librdkafka property "
                             "\"client.rackk\"");
    assert_string_equal(msp_topic("dlq"), "t.dlq"); /* nothing applied on error */
    unsetenv("MSPSYNC_KAFKA_PROP_CLIENT_RACK");
    unsetenv("MSPSYNC_KAFKA_PROP_CLIENT_RACKK");
    assert_int_equal(msp_kafka_configure(&k, "", err, sizeof(err)), 0);
}

/* No group membership: rd_kafka_rebalance_protocol() is NULL (as for a consumer closed before it
 * ever joined, which UBSan caught at the gateway's shutdown): not cooperative, and no crash. */
static void cooperative_without_a_group_is_no(void **state) {
    (void)state;
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof err),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    assert_null(rd_kafka_rebalance_protocol(rk));
    assert_int_equal(msp_kafka_cooperative(rk), 0);
    rd_kafka_destroy(rk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cooperative_without_a_group_is_no),
        cmocka_unit_test(variable_names_map_to_lower_case_dotted_properties),
        cmocka_unit_test(secret_properties_are_recognised),
        cmocka_unit_test(file_lines_are_read_and_later_sources_win),
        cmocka_unit_test(value_from_a_file_drops_the_trailing_newline),
        cmocka_unit_test(unknown_property_is_an_error_naming_the_variable),
        cmocka_unit_test(bad_line_is_an_error_naming_file_and_line),
        cmocka_unit_test(invalid_secret_value_is_never_quoted),
        cmocka_unit_test(topic_prefix_with_characters_kafka_refuses_is_an_error),
        cmocka_unit_test(configure_refuses_min_insync_above_replication),
    };
    return cmocka_run_group_tests_name("kafka_props", tests, NULL, NULL);
}
