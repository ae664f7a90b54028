/*
 * test_dlq_tenant.c — which tenant a record belongs to (msp_kafka_tenant_of, kafka.h): the
 * x-dlq-tenant header of every new dead letter and the fallback for dead letters written before
 * it. The value's "tenant" wins over the key; a `<tenant>/<id>` key gives its prefix, a key of a
 * topic keyed by tenant the whole key; anything that cannot be a tenant id gives none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mspsync/kafka.h"

typedef struct {
    const char *value; /* NULL: no value (a tombstone) */
    const char *key;   /* NULL: no key */
    const char *want;  /* "" = none found (-1) */
} tenant_case_t;

static const tenant_case_t CASES[] = {
    /* the value names it: incidents are keyed by fingerprint, raw records by tenant */
    {"{\"tenant\":\"acme\",\"fingerprint\":\"f1\"}", "3f2a9c", "acme"},
    {"{\"tenant\":\"acme\"}", "other/1", "acme"},
    /* compacted topics and date changes: <tenant>/<id> */
    {"{\"kind\":\"asset\"}", "birch/syncro:42", "birch"},
    {NULL, "birch/syncro:42", "birch"},
    /* sync.jobs, raw.records, incidents.held: the key is the tenant */
    {"not json at all", "cedar", "cedar"},
    {"{\"tenant\":7}", "cedar", "cedar"},
    /* nothing that can be a tenant id */
    {"{\"tenant\":\"a b\"}", NULL, ""},
    {"[]", "has space/x", ""},
    {"{}", "", ""},
    {NULL, NULL, ""},
    {"{\"tenant\":\"0123456789012345678901234567890123456789012345678901234567890123\"}", NULL, ""},
};

static void tenant_of_every_case(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        const tenant_case_t *c = &CASES[i];
        rd_kafka_message_t m = {0};
        m.payload = (void *)c->value;
        m.len = c->value ? strlen(c->value) : 0;
        m.key = (void *)c->key;
        m.key_len = c->key ? strlen(c->key) : 0;
        char buf[64] = "x";
        int rc = msp_kafka_tenant_of(&m, buf, sizeof(buf));
        if (strcmp(buf, c->want) != 0 || rc != (c->want[0] ? 0 : -1))
            fail_msg("case %zu: got \"%s\" (%d), want \"%s\"", i, buf, rc, c->want);
    }
}

/* A buffer too small for the tenant gives none rather than a cut tenant id. */
static void a_small_buffer_gives_none(void **state) {
    (void)state;
    rd_kafka_message_t m = {0};
    m.key = "longtenant/1";
    m.key_len = strlen(m.key);
    char buf[5] = "x";
    assert_int_equal(msp_kafka_tenant_of(&m, buf, sizeof(buf)), -1);
    assert_string_equal(buf, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tenant_of_every_case),
        cmocka_unit_test(a_small_buffer_gives_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
