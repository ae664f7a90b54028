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

/**
 * Most source records one asset holds. A machine is one record per integration, plus the odd
 * stale duplicate of a re-enrolled agent; an asset near this size is keys gone wrong, not a
 * machine. A record whose keys name a full asset starts its own asset, so loading and merging an
 * asset costs at most this many records, whatever the data.
 */
#define NZ_ASSET_MAX_MEMBERS 8

/** The default of MSPSYNC_IDENTITY_MAX_SHARED (see nz_key_holders_add). */
#define NZ_IDENTITY_MAX_SHARED_DEFAULT 3

/** inv:ksrc value of a key seen on more machines than the threshold: no longer an identity. */
#define NZ_KEY_DEMOTED "!"

/** One source record of an asset. */
typedef struct nz_member_s {
    const char   *src_id;               /**< "syncro:123", "cwrmm:<uuid>" */
    const json_t *rec;                  /**< its canonical record (may carry "gone":true) */
    const char   *wrote[NZ_F_COUNT];    /**< what write-back wrote there (wb:wrote), or NULL */
} nz_member_t;

/**
 * @brief Whether a MAC ("AA:BB:CC:DD:EE:FF", as msp_normalize_mac writes it) can tell one
 * machine from another: not multicast, not locally administered (Docker, VirtualBox host-only,
 * Hyper-V dynamic, randomized Wi-Fi MACs), not all-zero / all-FF / a Teredo or WAN Miniport
 * pattern, and not from a virtualization or VPN vendor's OUI (Hyper-V, VMware, VirtualBox,
 * Parallels, Xen, QEMU/KVM, Cisco AnyConnect), whose MACs repeat across machines.
 * @returns 1 identity, 0 never a match key.
 */
int nz_mac_is_identity(const char *mac);

/**
 * @brief Whether a serial (upper-cased letters and digits only) is a placeholder: empty, one
 * character repeated ("00000000", "XXXXXXXX"), or a firmware/vendor default ("To Be Filled By
 * O.E.M.", "Default string", "System Serial Number", "0123456789", "None", "Not Specified", ...).
 */
int nz_serial_is_placeholder(const char *up);

/**
 * @brief The holders of a match key after src_id carried it: stored is the inv:ksrc value
 * (space-separated source ids, NZ_KEY_DEMOTED, or NULL for a key never seen). Holders are
 * counted over the key's life (a dock moves from laptop to laptop; every laptop counts), and a
 * key carried by more than max_shared distinct source records is demoted for good.
 * @returns 0 nothing to write (src_id already counted, or the key already demoted), 1 out holds
 *          the new list, 2 the key is demoted now (out = NZ_KEY_DEMOTED).
 */
int nz_key_holders_add(const char *stored, const char *src_id, int max_shared, char *out,
                       size_t outsz);

/**
 * @brief Split an asset whose members no longer share identities. m[0..n) are the members sorted
 * by source id. A key joins the members that carry it unless it is demoted: carried by more than
 * max_shared of these members (assets glued before demotion existed), or demoted(key, holders,
 * arg) says so (NULL = no other rule); demoted is called once for every distinct key, in member
 * order, with the number of members carrying it. The component holding asset_id's own source
 * (else the smallest source id) keeps asset_id; every other component gets the id of its smallest
 * source.
 * @returns the number of components; owner[i] (borrowed from asset_id or m[].src_id) is the
 *          asset of m[i].
 */
size_t nz_split_asset(const char *asset_id, const nz_member_t *m, size_t n, int max_shared,
                      int (*demoted)(const char *key, int holders, void *arg), void *arg,
                      const char **owner);

/**
 * @brief The match keys of a source asset record: "sn:<MANUFACTURER>|<SERIAL>" when both are
 * known and the serial is not a placeholder (nz_serial_is_placeholder), then "mac:<MAC>" for each
 * MAC that nz_mac_is_identity accepts. Manufacturer and
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

/** A member that changed since the asset was last merged, with its record before (NULL = new). */
typedef struct nz_upserted_s {
    const char   *src_id;
    const json_t *old;
} nz_upserted_t;

/**
 * @brief The date fields that need writing after a merge, as {"purchase":"…"|null,...}, or NULL:
 * a field whose manual value the edit changed (bit NZ_F_x of edit_mask); or a field whose
 * effective value changed from prev, or whose value one of the upserted members up[0..nup)
 * changed, when some non-gone member holds a different non-null value (a conflict the policy
 * settled). @returns new reference or NULL.
 */
json_t *nz_merge_change(const json_t *prev, const json_t *merged, const nz_member_t *m, size_t n,
                        const nz_upserted_t *up, size_t nup, unsigned edit_mask);

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
