/*
 * org_match.h — how alike an MTP organisation name and a Syncro customer name are.
 *
 * Pure functions (no I/O, no globals), so tests/unit/test_org_match.c can check them directly.
 * Used by GET /v1/tenants/{t}/ticketing/orgs to suggest a customer for an unmapped org.
 *
 * Normalisation: ASCII letters are lower-cased; apostrophes (' and U+2019) and periods are
 * dropped, so "O'Brien" is "obrien" and "B.V." is "bv"; every other byte that is not an ASCII
 * letter or digit separates words (bytes >= 0x80 — other UTF-8 letters — are kept as letters);
 * legal-form words (inc, llc, ltd, gmbh, co, corp, limited, plc, sa, bv, pty, ...) are removed,
 * unless that would leave no word at all.
 *
 * Score: 1.0 when the normalised names are equal; otherwise the Jaccard similarity of their word
 * sets (|A ∩ B| / |A ∪ B|); 0.0 when either has no word.
 */
#ifndef MSPSYNC_ORG_MATCH_H
#define MSPSYNC_ORG_MATCH_H

#include <stddef.h>

/** A normalised name: its words, sorted and de-duplicated. */
typedef struct org_match_name_s {
    char   *norm;     /* the words joined by single spaces, in their original order */
    char  **words;    /* sorted, unique; they point into store */
    size_t  n;
    char   *store;    /* the words' storage (internal) */
} org_match_name_t;

/**
 * @brief Normalise name (NULL counts as ""). @returns a new name (org_match_name_destroy), or
 * NULL when out of memory.
 */
org_match_name_t *org_match_name_new(const char *name);

/** @brief Free a name; NULL-safe. */
void org_match_name_destroy(org_match_name_t *n);

/** @brief The similarity in [0, 1] of two normalised names (see above). */
double org_match_score(const org_match_name_t *a, const org_match_name_t *b);

/**
 * @brief org_match_score of two raw names (normalises both). @returns -1 when out of memory.
 */
double org_match_score_str(const char *a, const char *b);

#endif
