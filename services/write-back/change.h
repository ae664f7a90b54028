/*
 * change.h — the `date.changes` message as the write-back reads it, and the one date comparison
 * every target uses. Pure functions (no I/O), unit-tested in tests/unit/test_writeback_change.c.
 */
#ifndef MSPSYNC_WB_CHANGE_H
#define MSPSYNC_WB_CHANGE_H

#include <stddef.h>
#include <jansson.h>

#include "mspsync/vendor.h"

#define WB_NF          2    /* fields: purchase, warranty */
#define WB_F_PURCHASE  0
#define WB_F_WARRANTY  1
#define WB_MAX_TARGETS 32

extern const char *const wb_field_name[WB_NF]; /* "purchase", "warranty" */

typedef struct wb_change_target_s {
    const msp_vendor_t *vendor; /* the target's "integration", a vendor row (borrowed) */
    char id[160];               /* one the row's id_valid accepts (safe in a URL path) */
} wb_change_target_t;

typedef struct wb_change_s {
    const char        *tenant, *asset, *change_id;   /* borrowed from the parsed JSON */
    int                has[WB_NF];                   /* the change names this field */
    char               val[WB_NF][11];               /* "YYYY-MM-DD", "" = clear */
    size_t             ntargets;
    wb_change_target_t targets[WB_MAX_TARGETS];
} wb_change_t;

/**
 * @brief Check and unpack a date.changes value (design.md): schema_version 1 (or absent),
 * tenant (under 128 bytes), asset_id, change_id, dates with purchase and/or warranty (a date msp_date_normalize
 * reads, or null = clear), targets [{integration <a vendor's name>, id}] (at most
 * WB_MAX_TARGETS).
 * @returns 0, or -1 with the reason in why ("targets[1]: unknown integration \"ninja\"").
 * out's strings borrow from c: keep c alive.
 */
int wb_change_parse(const json_t *c, wb_change_t *out, char *why, size_t why_size);

/**
 * @brief 1 when a target's current value (a JSON string, null, or absent = NULL) is the wanted
 * date ("YYYY-MM-DD", "" = none): compared as dates (msp_date_normalize), so
 * "2024-03-01T00:00:00Z" and "03/01/2024" hold "2024-03-01"; "", null and absent hold "". A
 * non-empty value that is not a date holds nothing (it gets overwritten).
 */
int wb_value_holds(const json_t *cur, const char *want);

#endif
