/*
 * change.c — reading a date.changes message (see change.h).
 */
#include "change.h"

#include <stdio.h>
#include <string.h>

#include "mspsync/cwrmm.h"
#include "mspsync/utf8.h"

const char *const wb_field_name[WB_NF] = {"purchase", "warranty"};
static int id_ok(const msp_vendor_t *v, const char *s) {
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= 128 && v->id_valid(s);
}

#define BAD(...) return snprintf(why, why_size, __VA_ARGS__), -1

int wb_change_parse(const json_t *c, wb_change_t *out, char *why, size_t why_size) {
    memset(out, 0, sizeof(*out));
    if (!json_is_object(c)) BAD("value is not a JSON object");
    const json_t *sv = json_object_get(c, "schema_version");
    if (sv && (!json_is_integer(sv) || json_integer_value(sv) != 1)) BAD("unsupported schema_version");
    out->tenant = json_string_value(json_object_get(c, "tenant"));
    out->asset = json_string_value(json_object_get(c, "asset_id"));
    out->change_id = json_string_value(json_object_get(c, "change_id"));
    /* under 128 bytes: the credential load keeps the tenant (vendor.h msp_vendor_cred_async_t) */
    if (!out->tenant || !out->tenant[0] || strlen(out->tenant) > 127)
        BAD("bad or missing tenant");
    if (!out->asset || !out->asset[0] || strlen(out->asset) > 200) BAD("bad or missing asset_id");
    if (!out->change_id || !out->change_id[0] || strlen(out->change_id) > 128)
        BAD("bad or missing change_id");
    const json_t *dates = json_object_get(c, "dates");
    if (!json_is_object(dates)) BAD("bad or missing dates");
    int any = 0;
    for (int f = 0; f < WB_NF; f++) {
        const json_t *v = json_object_get(dates, wb_field_name[f]);
        if (!v) continue;
        out->has[f] = 1;
        any = 1;
        if (json_is_null(v)) continue;
        if (!json_is_string(v) || msp_date_normalize(json_string_value(v), out->val[f]) != 0)
            BAD("dates.%s is not a date", wb_field_name[f]);
    }
    if (!any) BAD("dates names neither purchase nor warranty");
    const json_t *targets = json_object_get(c, "targets");
    if (!json_is_array(targets)) BAD("bad or missing targets");
    if (json_array_size(targets) > WB_MAX_TARGETS) BAD("more than %d targets", WB_MAX_TARGETS);
    size_t i;
    const json_t *t;
    json_array_foreach(targets, i, t) {
        const char *integ = json_string_value(json_object_get(t, "integration"));
        const char *id = json_string_value(json_object_get(t, "id"));
        wb_change_target_t *o = &out->targets[i];
        if (!integ) BAD("targets[%zu]: missing integration", i);
        if (!(o->vendor = msp_vendor_find(integ)))
            BAD("targets[%zu]: unknown integration \"%.*s\"", i, MSP_UTF8_CUT(integ, 40));
        if (!id_ok(o->vendor, id))
            BAD("targets[%zu]: bad or missing %s id", i, integ);
        snprintf(o->id, sizeof(o->id), "%s", id);
    }
    out->ntargets = json_array_size(targets);
    return 0;
}

int wb_value_holds(const json_t *cur, const char *want) {
    const char *s = json_string_value(cur);
    if (!s || !s[0]) return want[0] == '\0';
    char norm[11];
    if (msp_date_normalize(s, norm) != 0) return 0;   /* garbage there: overwrite it */
    return strcmp(norm, want) == 0;
}
