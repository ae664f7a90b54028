/*
 * test_org_match.c — the name similarity behind org → customer mapping suggestions.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mspsync/org_match.h"

#define assert_score(a, b, want) assert_true(fabs(org_match_score_str((a), (b)) - (want)) < 1e-9)

static void same_name_after_normalising_scores_one(void **state) {
    (void)state;
    assert_score("Contoso", "Contoso", 1.0);
    assert_score("Contoso, Inc.", "contoso", 1.0);
    assert_score("CONTOSO LTD", "Contoso Limited", 1.0);
    assert_score("Fabrikam GmbH", "Fabrikam", 1.0);
    assert_score("Northwind Traders Pty. Ltd.", "Northwind Traders", 1.0);
    assert_score("Acme B.V.", "ACME", 1.0);
    assert_score("O'Brien Plumbing LLC", "OBrien Plumbing", 1.0);
    assert_score("O\xE2\x80\x99" "Brien Plumbing", "O'Brien Plumbing", 1.0); /* U+2019 */
}

static void punctuation_separates_words(void **state) {
    (void)state;
    org_match_name_t *n = org_match_name_new("  Smith-Jones & Sons,  Co. ");
    assert_non_null(n);
    assert_string_equal(n->norm, "smith jones sons");
    assert_int_equal(n->n, 3);
    assert_string_equal(n->words[0], "jones");
    assert_string_equal(n->words[1], "smith");
    assert_string_equal(n->words[2], "sons");
    org_match_name_destroy(n);
}

static void partial_overlap_is_token_jaccard(void **state) {
    (void)state;
    /* {contoso, health} vs {contoso, legal}: 1 common of 3 */
    assert_score("Contoso Health", "Contoso Legal", 1.0 / 3.0);
    /* {blue, river, dental} vs {blue, river}: 2 of 3 */
    assert_score("Blue River Dental", "Blue River LLC", 2.0 / 3.0);
    /* word order does not matter for the set, only for exact equality */
    assert_score("River Blue", "Blue River", 1.0);
    assert_score("Alpha", "Beta", 0.0);
}

static void repeated_words_count_once(void **state) {
    (void)state;
    assert_score("New New York", "New York Deli", 2.0 / 3.0);
}

static void only_legal_words_are_kept_rather_than_emptied(void **state) {
    (void)state;
    org_match_name_t *n = org_match_name_new("Co. Ltd");
    assert_non_null(n);
    assert_string_equal(n->norm, "co ltd");
    org_match_name_destroy(n);
    assert_score("Co Ltd", "co. ltd.", 1.0);
}

static void empty_or_missing_names_score_zero(void **state) {
    (void)state;
    assert_score("", "Contoso", 0.0);
    assert_score("...", "...", 0.0);
    assert_score(NULL, NULL, 0.0);
    assert_true(org_match_score(NULL, NULL) == 0.0);
    org_match_name_destroy(NULL);
}

static void non_ascii_letters_stay_in_words(void **state) {
    (void)state;
    assert_score("M\xC3\xBCller GmbH", "M\xC3\xBCller", 1.0);
    assert_score("M\xC3\xBCller Bau", "Muller Bau", 1.0 / 3.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_name_after_normalising_scores_one),
        cmocka_unit_test(punctuation_separates_words),
        cmocka_unit_test(partial_overlap_is_token_jaccard),
        cmocka_unit_test(repeated_words_count_once),
        cmocka_unit_test(only_legal_words_are_kept_rather_than_emptied),
        cmocka_unit_test(empty_or_missing_names_score_zero),
        cmocka_unit_test(non_ascii_letters_stay_in_words),
    };
    return cmocka_run_group_tests_name("org_match", tests, NULL, NULL);
}
