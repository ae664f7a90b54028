/*
 * merge.c — match keys, merged assets and the date policy (see merge.h).
 *
 * The merged asset has the fields of the canonical asset's table (mspsync/fields.h), each made
 * by the rule its row names: no list of fields here, so a field added to the table is merged (or
 * test_fields fails because its rule is one the merge does not make).
 */
#include "merge.h"

#include "mspsync/fields.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mspsync/vendor.h>

const char *const nz_date_fields[NZ_F_COUNT] = {"purchase", "warranty"};

/* Upper-case letters and digits of s, nothing else. */
static void alnum_upper(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; s && *s && o + 1 < size; s++)
        if (isalnum((unsigned char)*s))
            out[o++] = (char)toupper((unsigned char)*s);
    out[o] = '\0';
}

int nz_serial_is_placeholder(const char *up)
{
    /* Firmware and vendor defaults left in the SMBIOS serial field (SMBIOS "To Be Filled By
     * O.E.M." of AMI boards, "Default string" and "System Serial Number" of other BIOSes, and the
     * usual fill-ins of imaging tools), compared without blanks and punctuation. */
    static const char *const junk[] = {
        "TOBEFILLEDBYOEM", "TOBEFILLED", "DEFAULTSTRING", "DEFAULT", "SYSTEMSERIALNUMBER",
        "CHASSISSERIALNUMBER", "BASEBOARDSERIALNUMBER", "SERIALNUMBER", "SERIAL", "NA", "NONE",
        "NULL", "EMPTY", "OEM", "123456789", "0123456789", "1234567890", "12345678", "1234567",
        "123456", "NOTAPPLICABLE", "NOTSPECIFIED", "NOTAVAILABLE", "UNKNOWN", "INVALID",
    };
    if (!up[0])
        return 1;
    size_t same = 1;
    while (up[same] == up[0])
        same++;
    if (!up[same])
        return 1;   /* "0", "00000000", "XXXXXXXX", "FFFFFFFF": one character repeated */
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        if (strcmp(up, junk[i]) == 0)
            return 1;
    return 0;
}

int nz_mac_is_identity(const char *mac)
{
    /* MACs shared by many machines by design. OUIs from the IEEE registry
     * (https://standards-oui.ieee.org/oui/oui.txt) as the vendors document them:
     *   00:15:5D Microsoft, Hyper-V virtual NICs (Microsoft Learn, "Hyper-V MAC address pool");
     *   00:03:FF Microsoft, Virtual PC / Virtual Server;
     *   00:50:56, 00:0C:29, 00:05:69, 00:1C:14 VMware (VMware KB 219, "static MAC addresses");
     *   08:00:27 VirtualBox guests (VirtualBox manual, "Virtual networking hardware");
     *   00:1C:42 Parallels; 00:16:3E Xen / XenServer (Xen wiki, "Xen networking").
     * QEMU/KVM (52:54:00), Docker (02:42:..), VirtualBox host-only (0A:00:27) and Hyper-V or
     * Wi-Fi randomized MACs are locally administered, caught by the bit below. Whole MACs that
     * Windows reports for virtual adapters on every machine (ipconfig /all): Cisco AnyConnect's
     * virtual miniport 00:05:9A:3C:7A:00, the WAN Miniport / RAS async adapter 20:41:53:59:4E:FF
     * ("\x20ASYN\xFF") and the PPTP miniport 50:50:54:50:30:30 ("PPTP00"). */
    static const char *const ouis[] = {"00:15:5D", "00:03:FF", "00:50:56", "00:0C:29", "00:05:69",
                                       "00:1C:14", "08:00:27", "00:1C:42", "00:16:3E"};
    static const char *const macs[] = {"00:05:9A:3C:7A:00", "20:41:53:59:4E:FF",
                                       "50:50:54:50:30:30"};
    unsigned b[6];
    if (!mac || sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
        return 0;
    if (b[0] & 0x01u)
        return 0;   /* multicast (all-FF included) */
    if (b[0] & 0x02u)
        return 0;   /* locally administered: chosen by software, not burnt into a NIC */
    if ((b[0] | b[1] | b[2] | b[3] | b[4] | b[5]) == 0)
        return 0;
    for (size_t i = 0; i < sizeof ouis / sizeof ouis[0]; i++)
        if (strncasecmp(mac, ouis[i], 8) == 0)
            return 0;
    for (size_t i = 0; i < sizeof macs / sizeof macs[0]; i++)
        if (strcasecmp(mac, macs[i]) == 0)
            return 0;
    return 1;
}

/* The manufacturer without its legal-form words ("Dell Inc." → "DELL", "Acme Co. Ltd." →
 * "ACME"): words are split on anything not a letter or digit, legal forms dropped from the end. */
static void manufacturer_key(const char *s, char *out, size_t size)
{
    static const char *const forms[] = {"CORPORATION", "CORP", "INC", "LTD", "LLC", "GMBH", "CO",
                                        "AG", "BV", "SA", "LIMITED", "INCORPORATED", "COMPANY"};
    char   words[16][40];
    size_t nw = 0, len = 0;
    for (; s && nw < 16; s++) {
        if (*s && isalnum((unsigned char)*s)) {
            if (len + 1 < sizeof words[0])
                words[nw][len++] = (char)toupper((unsigned char)*s);
            continue;
        }
        if (len) {
            words[nw++][len] = '\0';
            len = 0;
        }
        if (!*s)
            break;
    }
    for (int dropped = 1; dropped && nw > 1;) {
        dropped = 0;
        for (size_t i = 0; i < sizeof forms / sizeof forms[0] && !dropped; i++)
            if (strcmp(words[nw - 1], forms[i]) == 0) {
                nw--;
                dropped = 1;
            }
    }
    size_t o = 0;
    for (size_t i = 0; i < nw && o + 1 < size; i++) {
        size_t l = strlen(words[i]);
        if (l > size - 1 - o)
            l = size - 1 - o;
        memcpy(out + o, words[i], l);
        o += l;
    }
    out[o] = '\0';
}

int nz_match_keys(const json_t *rec, char keys[][NZ_MKEY_LEN], int max)
{
    int  n = 0;
    char man[80], ser[100];
    manufacturer_key(json_string_value(json_object_get(rec, "manufacturer")), man, sizeof man);
    alnum_upper(json_string_value(json_object_get(rec, "serial")), ser, sizeof ser);
    if (n < max && man[0] && !nz_serial_is_placeholder(ser))
        snprintf(keys[n++], NZ_MKEY_LEN, "sn:%s|%s", man, ser);
    size_t  i;
    json_t *v;
    json_array_foreach(json_object_get(rec, "macs"), i, v) {
        if (n >= max)
            break;
        if (json_is_string(v) && nz_mac_is_identity(json_string_value(v)))
            snprintf(keys[n++], NZ_MKEY_LEN, "mac:%s", json_string_value(v));
    }
    return n;
}

int nz_key_holders_add(const char *stored, const char *src_id, int max_shared, char *out,
                       size_t outsz)
{
    if (stored && strcmp(stored, NZ_KEY_DEMOTED) == 0)
        return 0;
    int    count = 0;
    size_t idlen = strlen(src_id);
    for (const char *s = stored; s && *s;) {
        size_t l = strcspn(s, " ");
        if (l == idlen && strncmp(s, src_id, l) == 0)
            return 0;
        count += l > 0;
        s += l;
        s += *s == ' ';
    }
    if (count + 1 > max_shared || strlen(stored ? stored : "") + idlen + 2 > outsz) {
        snprintf(out, outsz, "%s", NZ_KEY_DEMOTED);
        return 2;
    }
    snprintf(out, outsz, "%s%s%s", stored && stored[0] ? stored : "", stored && stored[0] ? " " : "",
             src_id);
    return 1;
}

static size_t uf_find(size_t *parent, size_t i)
{
    while (parent[i] != i)
        i = parent[i] = parent[parent[i]];
    return i;
}

size_t nz_split_asset(const char *asset_id, const nz_member_t *m, size_t n, int max_shared,
                      int (*demoted)(const char *key, int holders, void *arg), void *arg,
                      const char **owner)
{
    size_t *parent = calloc(n ? n : 1, sizeof *parent);
    char (*keys)[NZ_MKEY_MAX][NZ_MKEY_LEN] = calloc(n ? n : 1, sizeof *keys);
    int    *nk     = calloc(n ? n : 1, sizeof *nk);
    if (!parent || !keys || !nk) {
        free(parent);
        free(keys);
        free(nk);
        for (size_t i = 0; i < n; i++)
            owner[i] = asset_id;   /* no memory: leave the asset whole */
        return n ? 1 : 0;
    }
    for (size_t i = 0; i < n; i++) {
        parent[i] = i;
        nk[i]     = nz_match_keys(m[i].rec, keys[i], NZ_MKEY_MAX);
    }
    /* Join the members that share a key that is still an identity. n is bounded by
     * NZ_ASSET_MAX_MEMBERS (or by an asset glued before the bound existed): quadratic is fine. */
    for (size_t i = 0; i < n; i++)
        for (int a = 0; a < nk[i]; a++) {
            const char *k = keys[i][a];
            size_t holders = 0, first = i;
            for (size_t j = 0; j < n; j++)
                for (int b = 0; b < nk[j]; b++)
                    if (strcmp(keys[j][b], k) == 0) {
                        if (holders++ == 0)
                            first = j;
                        break;
                    }
            if (first != i)
                continue;   /* counted at its first holder */
            int gone = (int)holders > max_shared;
            if (demoted && demoted(k, (int)holders, arg))
                gone = 1;
            if (gone)
                continue;
            for (size_t j = i + 1; j < n; j++)
                for (int b = 0; b < nk[j]; b++)
                    if (strcmp(keys[j][b], k) == 0) {
                        size_t r1 = uf_find(parent, i), r2 = uf_find(parent, j);
                        if (r1 != r2)   /* the root stays the smallest index */
                            parent[r1 > r2 ? r1 : r2] = r1 < r2 ? r1 : r2;
                        break;
                    }
        }
    size_t keep = n;
    for (size_t i = 0; i < n && keep == n; i++)
        if (strcmp(m[i].src_id, asset_id) == 0)
            keep = uf_find(parent, i);
    if (keep == n)
        keep = n ? uf_find(parent, 0) : 0;
    size_t comps = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = uf_find(parent, i);
        owner[i] = r == keep ? asset_id : m[r].src_id;
        comps += r == i;
    }
    free(parent);
    free(keys);
    free(nk);
    return comps;
}

static int member_gone(const nz_member_t *m) { return json_is_true(json_object_get(m->rec, "gone")); }

const char *nz_member_date(const json_t *rec, int field)
{
    const char *v = json_string_value(json_object_get(json_object_get(rec, "dates"),
                                                      nz_date_fields[field]));
    return v && v[0] ? v : NULL;
}

static const char *integration_of(const char *src_id, char *buf, size_t size)
{
    size_t l = strcspn(src_id, ":");
    snprintf(buf, size, "%.*s", (int)l, src_id);
    return buf;
}

/* The member of a vendor whose asset wins the merge (the PSA's: vendor.h merge_primary). */
static int is_primary(const char *integration) {
    const msp_vendor_t *v = msp_vendor_find(integration);
    return v && v->merge_primary;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The dates object: the edit, else the policy over the members. */
static json_t *merged_dates(const nz_member_t *m, size_t n, const json_t *edits, const json_t *prev)
{
    json_t *dates     = json_object();
    const json_t *pd  = json_object_get(prev, "dates");
    for (int f = 0; f < NZ_F_COUNT; f++) {
        const char *name = nz_date_fields[f];
        const char *ev   = json_string_value(json_object_get(edits, name));
        if (ev && ev[0]) {
            json_object_set_new_nocheck(dates, name,
                                        json_pack("{s:s,s:s}", "value", ev, "source", "manual"));
            continue;
        }
        const char *prev_src = json_string_value(json_object_get(json_object_get(pd, name), "source"));
        const char *best = NULL, *best_src = NULL;
        char        ibuf[32], best_buf[32] = "";
        for (size_t i = 0; i < n; i++) {
            if (member_gone(&m[i]))
                continue;
            const char *v = nz_member_date(m[i].rec, f);
            if (!v || (m[i].wrote[f] && strcmp(m[i].wrote[f], v) == 0))
                continue;       /* nothing, or the value write-back put there */
            const char *src = integration_of(m[i].src_id, ibuf, sizeof ibuf);
            int c = best ? strcmp(v, best) : 0;
            int better = !best || (f == NZ_F_PURCHASE ? c < 0 : c > 0) ||
                         (c == 0 && prev_src && strcmp(src, prev_src) == 0 &&
                          strcmp(best_src, prev_src) != 0);
            if (better) {
                best = v;
                snprintf(best_buf, sizeof best_buf, "%s", src);
                best_src = best_buf;
            }
        }
        if (best) {
            json_object_set_new_nocheck(dates, name,
                                        json_pack("{s:s,s:s}", "value", best, "source", best_src));
        } else {
            /* Only echoes (or nothing): keep what we had, unless no member holds anything. */
            const json_t *keep = json_object_get(pd, name);
            int held = 0;
            for (size_t i = 0; i < n && json_is_object(keep); i++)
                if (!member_gone(&m[i]) && nz_member_date(m[i].rec, f))
                    held = 1;
            json_object_set_new_nocheck(
                dates, name, held && json_is_object(keep) ? json_deep_copy(keep) : json_null());
        }
    }
    return dates;
}

/* An MSP_MERGE_FIRST field: the primary's value, else the first other live member's not null. */
static json_t *merged_first(const nz_member_t *m, size_t n, size_t primary, int all_gone,
                            const char *name) {
    json_t *v = json_object_get(m[primary].rec, name);
    for (size_t i = 0; i < n && (!v || json_is_null(v)); i++)
        if (!member_gone(&m[i]) || all_gone)
            v = json_object_get(m[i].rec, name);
    return v ? json_deep_copy(v) : json_null();
}

/* An MSP_MERGE_UNION field: the sorted union of the live members' strings. */
static json_t *merged_union(const nz_member_t *m, size_t n, int all_gone, const char *name) {
    const char **strs = NULL;
    size_t ns = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (!all_gone && member_gone(&m[i]))
            continue;
        size_t k;
        json_t *v;
        json_array_foreach(json_object_get(m[i].rec, name), k, v) {
            if (!json_is_string(v))
                continue;
            if (ns == cap) {
                cap = cap ? 2 * cap : 8;
                const char **g = realloc(strs, cap * sizeof *strs);
                if (!g)
                    break;
                strs = g;
            }
            strs[ns++] = json_string_value(v);
        }
    }
    if (ns)
        qsort(strs, ns, sizeof *strs, cmp_str);
    json_t *out = json_array();
    for (size_t i = 0; i < ns; i++)
        if (i == 0 || strcmp(strs[i], strs[i - 1]) != 0)
            json_array_append_new(out, json_string(strs[i]));
    free(strs);
    return out;
}

json_t *nz_merge_asset(const char *tenant, const char *asset_id, const nz_member_t *m, size_t n,
                       const json_t *edits, const json_t *prev)
{
    size_t primary = n;
    char   ibuf[32];
    for (size_t i = 0; i < n && primary == n; i++)
        if (!member_gone(&m[i]) && is_primary(integration_of(m[i].src_id, ibuf, sizeof ibuf)))
            primary = i;
    for (size_t i = 0; i < n && primary == n; i++)
        if (!member_gone(&m[i]))
            primary = i;
    int all_gone = primary == n;
    if (all_gone)
        primary = 0;

    json_t *o = json_object();
    json_object_set_new_nocheck(o, "schema_version", json_integer(1));
    json_object_set_new_nocheck(o, "tenant", json_string(tenant));
    json_object_set_new_nocheck(o, "id", json_string(asset_id));
    json_object_set_new_nocheck(o, "kind", json_string("asset"));

    json_t *sources = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!all_gone && member_gone(&m[i]))
            continue;
        size_t  k;
        json_t *s;
        json_array_foreach(json_object_get(m[i].rec, "sources"), k, s)
            json_array_append(sources, s);
    }
    json_object_set_new_nocheck(o, "sources", sources);

    /* The table's fields by rule: every MSP_MERGE_FIRST field in table order, then every
     * MSP_MERGE_UNION one (the key order of the merged asset, which the inventory stores). */
    const msp_field_t *fields = msp_record_asset.fields;
    for (size_t f = 0; f < msp_record_asset.n; f++)
        if (fields[f].merge == MSP_MERGE_FIRST)
            json_object_set_new_nocheck(o, fields[f].name,
                                        merged_first(m, n, primary, all_gone, fields[f].name));
    for (size_t f = 0; f < msp_record_asset.n; f++)
        if (fields[f].merge == MSP_MERGE_UNION)
            json_object_set_new_nocheck(o, fields[f].name,
                                        merged_union(m, n, all_gone, fields[f].name));
    json_object_set_new_nocheck(o, "dates", merged_dates(m, n, edits, prev));
    json_object_set_new_nocheck(o, "gone", json_boolean(all_gone));
    return o;
}

static const char *effective(const json_t *rec, int f)
{
    const char *v = json_string_value(
        json_object_get(json_object_get(json_object_get(rec, "dates"), nz_date_fields[f]), "value"));
    return v && v[0] ? v : NULL;
}

static int str_eq(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

json_t *nz_merge_change(const json_t *prev, const json_t *merged, const nz_member_t *m, size_t n,
                        const nz_upserted_t *up, size_t nup, unsigned edit_mask)
{
    json_t *out = NULL;
    for (int f = 0; f < NZ_F_COUNT; f++) {
        const char *now = effective(merged, f);
        int include     = (edit_mask >> f) & 1u;
        if (!include && now) {
            int moved = !str_eq(effective(prev, f), now);
            for (size_t u = 0; u < nup && !moved; u++)
                for (size_t i = 0; i < n && !moved; i++)
                    if (strcmp(m[i].src_id, up[u].src_id) == 0)
                        moved = !str_eq(nz_member_date(m[i].rec, f),
                                        up[u].old ? nz_member_date(up[u].old, f) : NULL);
            for (size_t i = 0; i < n && moved && !include; i++) {
                const char *v = member_gone(&m[i]) ? NULL : nz_member_date(m[i].rec, f);
                include       = v && strcmp(v, now) != 0;
            }
        }
        if (!include)
            continue;
        if (!out)
            out = json_object();
        json_object_set_new_nocheck(out, nz_date_fields[f], now ? json_string(now) : json_null());
    }
    return out;
}

json_t *nz_change_message(const char *tenant, const char *asset_id, const char *change_id,
                          const char *reason, const json_t *dates, const nz_member_t *m, size_t n,
                          const char *at)
{
    json_t *targets = json_array();
    char    ibuf[32];
    for (size_t i = 0; i < n; i++) {
        if (member_gone(&m[i]))
            continue;
        const char *integ = integration_of(m[i].src_id, ibuf, sizeof ibuf);
        if (!strchr(m[i].src_id, ':'))
            continue;   /* not a source id */
        json_t     *cur   = json_object();
        for (int f = 0; f < NZ_F_COUNT; f++) {
            const char *v = nz_member_date(m[i].rec, f);
            json_object_set_new_nocheck(cur, nz_date_fields[f], v ? json_string(v) : json_null());
        }
        json_array_append_new(targets, json_pack("{s:s,s:s,s:o}", "integration", integ, "id",
                                                 m[i].src_id + strlen(integ) + 1, "current", cur));
    }
    return json_pack("{s:i,s:s,s:s,s:s,s:s,s:O,s:o,s:s}", "schema_version", 1, "tenant", tenant,
                     "asset_id", asset_id, "change_id", change_id, "reason", reason, "dates",
                     dates, "targets", targets, "at", at);
}
