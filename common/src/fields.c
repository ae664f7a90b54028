/*
 * fields.c — the tables of the canonical customer and asset (see fields.h), their check and their
 * Markdown form.
 *
 * A row says what a field holds for every vendor at once, so its doc line names each vendor's
 * source where they differ. Both kinds start with the same five fields and end with updated_at and
 * gone; those rows are written once (RECORD_HEAD, and the tail rows per kind because the asset's
 * merge rules differ). Rows are in the order the mappers write the fields: test_model checks a
 * Syncro asset's key order against the documented order, and the docs list them in this order.
 */
#include "mspsync/fields.h"

#include <string.h>

#include "mspsync/errstr.h"

static const char *const source_members[] = {"integration", "id", NULL};
static const char *const os_members[] = {"name", "build", NULL};
static const char *const date_members[] = {MSP_DATE_PURCHASE, MSP_DATE_WARRANTY, NULL};

/* The identity every canonical record starts with; own/src: the asset's merge rules. (clang-format
 * would indent the rows of a macro as one expression.) */
/* clang-format off */
#define RECORD_HEAD(own, src)                                                                     \
    {"schema_version", MSP_FT_INTEGER, 0, own, NULL, "`1` (MSP_SCHEMA_VERSION)"},                   \
    {"tenant", MSP_FT_STRING, 0, own, NULL, "the tenant id"},                                     \
    {"id", MSP_FT_STRING, 0, own, NULL,                                                           \
     "`<integration>:<vendor id>`; a merged asset keeps the id of one of its sources"},         \
    {"kind", MSP_FT_STRING, 0, own, NULL,                                                         \
     "`customer`, `asset`, `contact`, `ticket` or `setting`"},                                  \
    {"sources", MSP_FT_ARRAY, 0, src, source_members,                                             \
     "the vendor records it comes from; ids as decimal strings when numeric (64-bit safe)"}
/* clang-format on */

static const msp_field_t customer_fields[] = {
    RECORD_HEAD(MSP_MERGE_NONE, MSP_MERGE_NONE),
    {"name", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "Syncro: business_then_name, business_name, fullname, \"firstname lastname\"; "
     "ConnectWise RMM: friendlyName"},
    {"email", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "Syncro: email; ConnectWise RMM: null"},
    {"phone", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "Syncro: phone; ConnectWise RMM: null"},
    {"disabled", MSP_FT_BOOLEAN, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "Syncro: disabled (also \"true\"/\"false\"); ConnectWise RMM: not activityStatus.activeFlag"},
    {"updated_at", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "the vendor's last change, as given (Syncro updated_at, ConnectWise RMM updatedDate)"},
    {"gone", MSP_FT_BOOLEAN, 0, MSP_MERGE_NONE, NULL,
     "true once it disappeared from the vendor (re-published, not deleted)"},
    {"derived_from", MSP_FT_STRING, MSP_FIELD_OPTIONAL | MSP_FIELD_ENVELOPE, MSP_MERGE_NONE, NULL,
     "only on a customer read from another type's records while the integration's `customers` "
     "feature is off: `assets` (Syncro assets carry their customer)"},
};

static const msp_field_t asset_fields[] = {
    RECORD_HEAD(MSP_MERGE_OWN, MSP_MERGE_SOURCES),
    {"name", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_FIRST, NULL,
     "Syncro: name; ConnectWise RMM: friendlyName, else deviceName"},
    {"asset_type", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_FIRST, NULL,
     "Syncro: asset_type; ConnectWise RMM: null"},
    {"serial", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_FIRST, NULL,
     "Syncro: kabuto general.serial_number, else asset_serial; ConnectWise RMM: "
     "system.serialNumber, else baseboard.serialNumber"},
    {"manufacturer", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_FIRST, NULL,
     "Syncro: kabuto general.manufacturer; ConnectWise RMM: baseboard.manufacturer"},
    {"model", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_FIRST, NULL,
     "Syncro: kabuto general.model; ConnectWise RMM: system.model"},
    {"form_factor", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_FIRST, NULL,
     "Syncro: kabuto general.form_factor; ConnectWise RMM: null"},
    {"os", MSP_FT_OBJECT, MSP_FIELD_NULL, MSP_MERGE_FIRST, os_members,
     "Syncro: kabuto os.name, os.build; ConnectWise RMM: os.product, os.version; null when "
     "both are missing"},
    {"macs", MSP_FT_ARRAY, 0, MSP_MERGE_UNION, NULL,
     "upper-case, colon-separated, placeholders dropped, sorted, unique; `[]` when none"},
    {"customer_ref", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_FIRST, NULL,
     "the canonical id of its customer (`syncro:<customer_id>`, `cwrmm:<companyID>`)"},
    {"site_ref", MSP_FT_STRING, MSP_FIELD_NULL | MSP_FIELD_OPTIONAL, MSP_MERGE_FIRST, NULL,
     "ConnectWise RMM: `cwrmm:<siteID>`; absent from Syncro records (no sites)"},
    {"updated_at", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_FIRST, NULL,
     "the vendor's last change, as given (Syncro updated_at, ConnectWise RMM modifiedAt)"},
    {"dates", MSP_FT_OBJECT, MSP_FIELD_OPTIONAL, MSP_MERGE_DATES, date_members,
     "`YYYY-MM-DD` or null, from the custom fields \"" MSP_DATE_PURCHASE_LABEL
     "\" and \"" MSP_DATE_WARRANTY_LABEL "\"; absent when ConnectWise RMM's were not read"},
    {"gone", MSP_FT_BOOLEAN, 0, MSP_MERGE_GONE, NULL,
     "true once it disappeared from the vendor (re-published, not deleted)"},
};

/* Contacts and tickets are one record per vendor record, like customers: never merged. */
static const msp_field_t contact_fields[] = {
    RECORD_HEAD(MSP_MERGE_NONE, MSP_MERGE_NONE),
    {"name", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL, "Syncro: name"},
    {"email", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL, "Syncro: email"},
    {"phone", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL, "Syncro: phone"},
    {"mobile", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL, "Syncro: mobile"},
    {"customer_ref", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "the canonical id of its customer (`syncro:<customer_id>`)"},
    {"updated_at", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "the vendor's last change, as given (Syncro updated_at)"},
    {"gone", MSP_FT_BOOLEAN, 0, MSP_MERGE_NONE, NULL,
     "true once it disappeared from the vendor (re-published, not deleted)"},
};

static const msp_field_t ticket_fields[] = {
    RECORD_HEAD(MSP_MERGE_NONE, MSP_MERGE_NONE),
    {"number", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "Syncro: number (the one users see; not the id), as a decimal string"},
    {"subject", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL, "Syncro: subject"},
    {"status", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "Syncro: status (one of the account's ticket_status_list)"},
    {"problem_type", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL, "Syncro: problem_type"},
    {"priority", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL, "Syncro: priority"},
    {"customer_ref", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "the canonical id of its customer (`syncro:<customer_id>`)"},
    {"contact_ref", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "the canonical id of its contact (`syncro:<contact_id>`) or null"},
    {"created_at", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL, "Syncro: created_at"},
    {"resolved_at", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL, "Syncro: resolved_at"},
    {"updated_at", MSP_FT_STRING, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "the vendor's last change, as given (Syncro updated_at)"},
    {"gone", MSP_FT_BOOLEAN, 0, MSP_MERGE_NONE, NULL,
     "true once it disappeared from the vendor (re-published, not deleted)"},
};

/* The account's ticket settings: one record per integration, what ticketing rules refer to. */
static const msp_field_t setting_fields[] = {
    RECORD_HEAD(MSP_MERGE_NONE, MSP_MERGE_NONE),
    {"ticket_statuses", MSP_FT_ARRAY, 0, MSP_MERGE_NONE, NULL,
     "Syncro GET /tickets/settings: ticket_status_list (strings, in the vendor's order)"},
    {"problem_types", MSP_FT_ARRAY, MSP_FIELD_NULL, MSP_MERGE_NONE, NULL,
     "Syncro: problem_types when the answer has them, else null (the document's example has "
     "none; a rule's problem_type is then not checked)"},
    {"ticket_types", MSP_FT_ARRAY, 0, MSP_MERGE_NONE, NULL, "Syncro: ticket_types[].name"},
    {"gone", MSP_FT_BOOLEAN, 0, MSP_MERGE_NONE, NULL,
     "true once it disappeared from the vendor (re-published, not deleted)"},
};

const msp_record_def_t msp_record_customer = {"customer", customer_fields,
                                              sizeof customer_fields / sizeof customer_fields[0]};
const msp_record_def_t msp_record_asset = {"asset", asset_fields,
                                           sizeof asset_fields / sizeof asset_fields[0]};

const msp_record_def_t msp_record_contact = {"contact", contact_fields,
                                             sizeof contact_fields / sizeof contact_fields[0]};
const msp_record_def_t msp_record_ticket = {"ticket", ticket_fields,
                                            sizeof ticket_fields / sizeof ticket_fields[0]};
const msp_record_def_t msp_record_setting = {"setting", setting_fields,
                                             sizeof setting_fields / sizeof setting_fields[0]};

/* Every kind, in the order the docs show them. */
static const msp_record_def_t *const all_defs[] = {&msp_record_customer, &msp_record_asset,
                                                   &msp_record_contact, &msp_record_ticket,
                                                   &msp_record_setting};

const msp_record_def_t *msp_record_def(const char *kind) {
    for (size_t i = 0; kind && i < sizeof all_defs / sizeof all_defs[0]; i++)
        if (strcmp(kind, all_defs[i]->kind) == 0)
            return all_defs[i];
    return NULL;
}

const msp_field_t *msp_record_field(const msp_record_def_t *def, const char *name) {
    for (size_t i = 0; def && name && i < def->n; i++)
        if (strcmp(def->fields[i].name, name) == 0)
            return &def->fields[i];
    return NULL;
}

const char *msp_field_type_name(msp_field_type_t type) {
    switch (type) {
    case MSP_FT_STRING: return "string";
    case MSP_FT_INTEGER: return "integer";
    case MSP_FT_BOOLEAN: return "boolean";
    case MSP_FT_OBJECT: return "object";
    case MSP_FT_ARRAY: return "array";
    }
    return "unknown";
}

/* ---------------------------------------------------------------------------------------------
 * The check
 * ------------------------------------------------------------------------------------------- */

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

static int is_type(const json_t *v, msp_field_type_t type) {
    switch (type) {
    case MSP_FT_STRING: return json_is_string(v);
    case MSP_FT_INTEGER: return json_is_integer(v);
    case MSP_FT_BOOLEAN: return json_is_boolean(v);
    case MSP_FT_OBJECT: return json_is_object(v);
    case MSP_FT_ARRAY: return json_is_array(v);
    }
    return 0;
}

/* obj has exactly the members listed (values not typed). @returns NULL, or the odd name. */
static const char *odd_member(const json_t *obj, const char *const *members) {
    size_t n = 0;
    for (; members[n]; n++)
        if (!json_object_get(obj, members[n]))
            return members[n];
    if (json_object_size(obj) == n)
        return NULL;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        size_t i = 0;
        while (members[i] && strcmp(members[i], key) != 0)
            i++;
        if (!members[i])
            return key;
    }
    return NULL;
}

/* The value of one present field. @returns 0 or -1 (errstr). */
static int check_value(const char *kind, const msp_field_t *f, const json_t *v, char *errstr,
                       size_t errstr_size) {
    if (json_is_null(v) && (f->flags & MSP_FIELD_NULL))
        return 0;
    if (!is_type(v, f->type)) {
        msp_set_err(errstr, errstr_size, "%s field \"%s\" is %s, expected %s%s", kind, f->name,
                    json_type_name(v), msp_field_type_name(f->type),
                    f->flags & MSP_FIELD_NULL ? " or null" : "");
        return -1;
    }
    const char *odd = f->type == MSP_FT_OBJECT && f->members ? odd_member(v, f->members) : NULL;
    size_t i;
    const json_t *item;
    json_array_foreach(f->type == MSP_FT_ARRAY ? v : NULL, i, item) {
        int ok = f->members ? json_is_object(item) : json_is_string(item);
        odd = ok && f->members ? odd_member(item, f->members) : ok ? NULL : "(item type)";
        if (odd)
            break;
    }
    if (odd) {
        msp_set_err(errstr, errstr_size,
                    "%s field \"%s\" does not have exactly its members "
                    "(\"%s\" is missing or extra)",
                    kind, f->name, odd);
        return -1;
    }
    return 0;
}

int msp_record_check(const msp_record_def_t *def, const json_t *rec, char *errstr,
                     size_t errstr_size) {
    if (!def || !json_is_object(rec)) {
        msp_set_err(errstr, errstr_size, "not a record: %s", rec ? json_type_name(rec) : "NULL");
        return -1;
    }
    for (size_t i = 0; i < def->n; i++) {
        const msp_field_t *f = &def->fields[i];
        const json_t *v = json_object_get(rec, f->name);
        if (!v && !(f->flags & MSP_FIELD_OPTIONAL)) {
            msp_set_err(errstr, errstr_size, "%s field \"%s\" is missing", def->kind, f->name);
            return -1;
        }
        if (v && check_value(def->kind, f, v, errstr, errstr_size) != 0)
            return -1;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)rec, key, v) {
        if (!msp_record_field(def, key)) {
            msp_set_err(errstr, errstr_size, "%s has a field \"%s\" that fields.c does not define",
                        def->kind, key);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Markdown
 * ------------------------------------------------------------------------------------------- */

static const char *merge_text(msp_merge_rule_t rule) {
    switch (rule) {
    case MSP_MERGE_NONE: return "–";
    case MSP_MERGE_OWN: return "the asset's own";
    case MSP_MERGE_SOURCES: return "the live members' sources";
    case MSP_MERGE_FIRST: return "the primary's, else the first other not null";
    case MSP_MERGE_UNION: return "sorted union";
    case MSP_MERGE_DATES: return "per date: the edit, else the date policy ({value, source})";
    case MSP_MERGE_GONE: return "every member gone";
    }
    return "?";
}

/* "object {name, build}", "array of strings", "array of {integration, id}". */
static void type_text(const msp_field_t *f, FILE *out) {
    if (f->type == MSP_FT_ARRAY)
        fputs(f->members ? "array of " : "array of strings", out);
    else
        fputs(msp_field_type_name(f->type), out);
    for (size_t i = 0; f->members && f->members[i]; i++)
        fprintf(out, "%s%s", i ? ", " : (f->type == MSP_FT_OBJECT ? " {" : "{"), f->members[i]);
    if (f->members)
        fputc('}', out);
    if (f->flags & MSP_FIELD_NULL)
        fputs(" or null", out);
    if (f->flags & MSP_FIELD_OPTIONAL)
        fputs(", may be absent", out);
}

static void def_markdown(const msp_record_def_t *def, FILE *out) {
    int merged = def->fields[0].merge != MSP_MERGE_NONE;
    fprintf(out, "Canonical %s (`\"kind\":\"%s\"`):\n\n", def->kind, def->kind);
    fprintf(out, merged ? "| field | type | merged asset | holds |\n|---|---|---|---|\n"
                        : "| field | type | holds |\n|---|---|---|\n");
    for (size_t i = 0; i < def->n; i++) {
        const msp_field_t *f = &def->fields[i];
        fprintf(out, "| `%s` | ", f->name);
        type_text(f, out);
        if (merged)
            fprintf(out, " | %s", merge_text(f->merge));
        fprintf(out, " | %s |\n", f->doc);
    }
}

void msp_record_defs_markdown(FILE *out) {
    for (size_t i = 0; i < sizeof all_defs / sizeof all_defs[0]; i++) {
        if (i)
            fputc('\n', out);
        def_markdown(all_defs[i], out);
    }
}
