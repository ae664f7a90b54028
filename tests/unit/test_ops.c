/*
 * test_ops.c — the metrics registry behind every service's /metrics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mspsync/ops.h"

static void counter_add_accumulates_per_label_set(void **state) {
    msp_metrics_t *m = msp_metrics_new("s");
    msp_metric_declare(m, "x", "counter", "Requests.");
    msp_metric_add(m, "x", "route=\"a\"", 1);
    msp_metric_add(m, "x", "route=\"a\"", 2);
    msp_metric_add(m, "x", "route=\"b\"", 5);
    assert_true(msp_metric_get(m, "x", "route=\"a\"") == 3);
    assert_true(msp_metric_get(m, "x", "route=\"b\"") == 5);
    assert_true(msp_metric_get(m, "x", "route=\"c\"") == 0);
    assert_true(msp_metric_get(m, "absent", NULL) == 0);
    msp_metrics_destroy(m);
}

static void gauge_set_replaces_the_value(void **state) {
    msp_metrics_t *m = msp_metrics_new("s");
    msp_metric_declare(m, "g", "gauge", "Level.");
    msp_metric_set(m, "g", NULL, 7);
    msp_metric_set(m, "g", NULL, 4.5);
    assert_true(msp_metric_get(m, "g", NULL) == 4.5);
    msp_metrics_destroy(m);
}

static void render_prints_type_once_and_service_label_first(void **state) {
    msp_metrics_t *m = msp_metrics_new("s");
    msp_metric_declare(m, "x", "counter", "Requests.");
    msp_metric_add(m, "x", "route=\"b\"", 1);
    msp_metric_add(m, "x", "route=\"a\"", 3);
    msp_metric_set(m, "g", NULL, 2);  /* undeclared: gauge */
    char *text = msp_metrics_render(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "# HELP x Requests.\n"));
    assert_non_null(strstr(text, "# TYPE x counter\n"));
    assert_non_null(strstr(text, "x{service=\"s\",route=\"a\"} 3\n"));
    assert_non_null(strstr(text, "# TYPE g gauge\n"));
    assert_non_null(strstr(text, "g{service=\"s\"} 2\n"));
    /* once per name */
    const char *first = strstr(text, "# TYPE x counter");
    assert_null(strstr(first + 1, "# TYPE x counter"));
    /* stable order: by name, then labels */
    const char *g = strstr(text, "g{"), *xa = strstr(text, "route=\"a\""),
               *xb = strstr(text, "route=\"b\"");
    assert_true(g < xa && xa < xb);
    free(text);
    msp_metrics_destroy(m);
}

static void render_escapes_the_service_label(void **state) {
    msp_metrics_t *m = msp_metrics_new("we\"ird\\sv\nc");
    msp_metric_add(m, "c", NULL, 1);
    char *text = msp_metrics_render(m);
    assert_non_null(strstr(text, "c{service=\"we\\\"ird\\\\sv\\nc\"} 1\n"));
    free(text);
    msp_metrics_destroy(m);
}

static void invalid_names_are_ignored_and_null_is_safe(void **state) {
    msp_metrics_t *m = msp_metrics_new("s");
    msp_metric_add(m, "bad name", NULL, 1);
    msp_metric_add(m, "9lives", NULL, 1);
    char *text = msp_metrics_render(m);
    assert_string_equal(text, "");
    free(text);
    msp_metrics_destroy(m);
    msp_metrics_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_add_accumulates_per_label_set),
        cmocka_unit_test(gauge_set_replaces_the_value),
        cmocka_unit_test(render_prints_type_once_and_service_label_first),
        cmocka_unit_test(render_escapes_the_service_label),
        cmocka_unit_test(invalid_names_are_ignored_and_null_is_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
