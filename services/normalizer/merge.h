/*
 * merge.h — one inventory asset per machine: match keys, the merged record, the date policy.
 *
 * Pure functions (no Redis, no Kafka): inventory.c feeds them what Redis holds and writes back
 * what they return. docs/design.md ("One asset per machine") has the keys and the rules.
 */
#ifndef NZ_MERGE_H
#define NZ_MERGE_H

#include <stddef.h>
#include <jansson.h>

enum { NZ_F_PURCHASE = 0, NZ_F_WARRANTY = 1, NZ_F_COUNT = 2 };

/** "purchase" / "warranty": field names in dates, edits, date.changes and wb:* keys. */
extern const char *const nz_date_fields[NZ_F_COUNT];

#define NZ_MKEY_MAX  16     /* match keys kept per record: the serial key + up to 15 MACs */
#define NZ_MKEY_LEN  200

/** One source record of an asset. */
typedef struct nz_member_s {
    const char   *src_id;               /**< "syncro:123", "cwrmm:<uuid>" */
    const json_t *rec;                  /**< its canonical record (may carry "gone":true) */
    const char   *wrote[NZ_F_COUNT];    /**< what write-back wrote there (wb:wrote), or NULL */
} nz_member_t;

/**
 * @brief The match keys of a source asset record: "sn:<MANUFACTURER>|<SERIAL>" when both are
 * known and the serial is not a placeholder ("To Be Filled By O.E.M.", "Default string",
 * "System Serial Number", "0", "N/A", ...), then "mac:<MAC>" for each MAC. Manufacturer and
 * serial are upper-cased with every character that is not a letter or digit removed; the
 * manufacturer first loses its trailing legal-form words (Inc., Corp., Corporation, Ltd., LLC,
 * Co., GmbH, AG, ...), so "Dell Inc." and "DELL" match and "Cisco" stays "CISCO".
 * @returns the number of keys written (0..max).
 */
int nz_match_keys(const json_t *rec, char keys[][NZ_MKEY_LEN], int max);

/**
 * @brief The merged asset of members[0..n) (n >= 1): facts from the primary member (the first
 * non-gone Syncro one, else the first non-gone one, else the first), gaps filled from the others;
 * macs the sorted union; sources the non-gone members' sources (all of them when every member is
 * gone, with "gone":true); "dates" by the policy: an edit (edits = {"purchase":"YYYY-MM-DD",...})
 * wins with source "manual"; else purchase = the earliest and warranty = the latest value among
 * the non-gone members, skipping a member's value equal to what write-back wrote there (our own
 * echo); a tie keeps prev's source when it is among the tied, else the first in member order.
 * @returns new reference.
 */
json_t *nz_merge_asset(const char *tenant, const char *asset_id, const nz_member_t *m, size_t n,
                       const json_t *edits, const json_t *prev);

/**
 * @brief The date fields that need writing after a merge, as {"purchase":"…"|null,...}, or NULL:
 * a field whose manual value the edit changed (bit NZ_F_x of edit_mask); or a field whose
 * effective value changed from prev, or whose value the upserted member changed (upserted_old =
 * its record before, NULL when new), when some non-gone member holds a different non-null value
 * (a conflict the policy settled). @returns new reference or NULL.
 */
json_t *nz_merge_change(const json_t *prev, const json_t *merged, const nz_member_t *m, size_t n,
                        const char *upserted_src, const json_t *upserted_old, unsigned edit_mask);

/**
 * @brief The date.changes message (docs/design.md): dates = the nz_merge_change result
 * (borrowed), targets = every non-gone member with its current dates.
 * @returns new reference.
 */
json_t *nz_change_message(const char *tenant, const char *asset_id, const char *change_id,
                          const char *reason, const json_t *dates, const nz_member_t *m, size_t n,
                          const char *at);

/** @brief A member's value of a date field ("YYYY-MM-DD") or NULL. */
const char *nz_member_date(const json_t *rec, int field);

#endif
