/*
 * org_match.c — name similarity for org → customer mapping suggestions (see org_match.h).
 *
 * Deliberately simple and predictable: an operator reads a suggestion's score and should be able
 * to tell why it is what it is. Word sets, not edit distance: "Contoso Ltd" and "Contoso" are the
 * same company, "Contoso Health" and "Contoso Legal" half the same.
 */
#include "mspsync/org_match.h"

#include <stdlib.h>
#include <string.h>

static const char *const LEGAL_WORDS[] = {
    "inc", "incorporated", "llc", "llp", "lp", "pllc", "ltd", "limited", "gmbh", "co", "corp",
    "corporation", "company", "plc", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "ag", "pty",
    "pc", NULL,
};

static int is_legal_word(const char *w, size_t len) {
    for (int i = 0; LEGAL_WORDS[i]; i++)
        if (strlen(LEGAL_WORDS[i]) == len && memcmp(LEGAL_WORDS[i], w, len) == 0)
            return 1;
    return 0;
}

static int cmp_words(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Split into lower-cased words separated by single spaces (out holds at least strlen(in)+1). */
static void to_words(const char *in, char *out) {
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    int in_word = 0;
    while (*p) {
        unsigned char c = *p;
        if (c == 0xE2 && p[1] == 0x80 && p[2] == 0x99) { /* U+2019 right single quote */
            p += 3;
            continue;
        }
        if (c == '\'' || c == '.') {
            p++;
            continue;
        }
        int letter = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c - 'A' + 'a');
            letter = 1;
        }
        if (letter) {
            if (!in_word && o > 0)
                out[o++] = ' ';
            out[o++] = (char)c;
            in_word = 1;
        } else {
            in_word = 0;
        }
        p++;
    }
    out[o] = '\0';
}

org_match_name_t *org_match_name_new(const char *name) {
    if (!name)
        name = "";
    size_t len = strlen(name);
    org_match_name_t *n = calloc(1, sizeof(*n));
    char *all = malloc(len + 1);
    if (!n || !all)
        goto oom;
    to_words(name, all);

    /* keep the words that are not legal forms, unless none would be left */
    size_t total = 0, kept = 0;
    for (const char *w = all; *w;) {
        size_t wl = strcspn(w, " ");
        total++;
        kept += !is_legal_word(w, wl);
        w += wl + (w[wl] == ' ');
    }
    int drop_legal = kept > 0;
    n->norm = malloc(len + 1);
    n->words = calloc(total + 1, sizeof(*n->words));
    if (!n->norm || !n->words)
        goto oom;
    size_t o = 0;
    for (const char *w = all; *w;) {
        size_t wl = strcspn(w, " ");
        if (!drop_legal || !is_legal_word(w, wl)) {
            if (o > 0)
                n->norm[o++] = ' ';
            memcpy(n->norm + o, w, wl);
            o += wl;
        }
        w += wl + (w[wl] == ' ');
    }
    n->norm[o] = '\0';
    free(all);
    all = NULL;

    /* the word set: a copy of norm cut at the spaces, sorted, duplicates dropped */
    if (o > 0) {
        char *store = strdup(n->norm);
        if (!store)
            goto oom;
        size_t count = 0;
        for (char *save = NULL, *w = strtok_r(store, " ", &save); w;
             w = strtok_r(NULL, " ", &save))
            n->words[count++] = w;
        qsort(n->words, count, sizeof(*n->words), cmp_words);
        size_t u = 0;
        for (size_t i = 0; i < count; i++)
            if (u == 0 || strcmp(n->words[u - 1], n->words[i]) != 0)
                n->words[u++] = n->words[i];
        n->n = u;
        n->store = store;
    }
    return n;

oom:
    free(all);
    org_match_name_destroy(n);
    return NULL;
}

void org_match_name_destroy(org_match_name_t *n) {
    if (!n)
        return;
    free(n->store);
    free(n->norm);
    free(n->words);
    free(n);
}

double org_match_score(const org_match_name_t *a, const org_match_name_t *b) {
    if (!a || !b || a->n == 0 || b->n == 0)
        return 0.0;
    if (strcmp(a->norm, b->norm) == 0)
        return 1.0;
    size_t i = 0, j = 0, common = 0;
    while (i < a->n && j < b->n) {
        int c = strcmp(a->words[i], b->words[j]);
        if (c == 0) {
            common++;
            i++;
            j++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    return (double)common / (double)(a->n + b->n - common);
}

double org_match_score_str(const char *a, const char *b) {
    org_match_name_t *na = org_match_name_new(a), *nb = org_match_name_new(b);
    double s = (na && nb) ? org_match_score(na, nb) : -1.0;
    org_match_name_destroy(na);
    org_match_name_destroy(nb);
    return s;
}
