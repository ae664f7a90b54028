/*
 * fields.h — the one definition of the canonical records: a table of fields per record kind.
 *
 * Every canonical customer and asset, whichever vendor it came from, has exactly the fields of its
 * kind's table (msp_record_customer, msp_record_asset), in that order as far as the mapper writes
 * them. The table is where a field is added, and everything that knows the shape comes from it:
 * - the mapping checks: msp_record_check() tells whether a record has the table's fields with the
 *   table's types; tests/unit/test_fields.c runs it over every vendor mapper's output and fails
 *   when a field of the table is produced by no mapper;
 * - the inventory's merged asset: the normalizer's merge (services/normalizer/merge.c) makes each
 *   asset field by the rule its row names (msp_merge_rule_t), not from a list of its own, so a new
 *   row with an existing rule is merged without touching the merge, and test_fields fails when a
 *   field is missing from the merged asset;
 * - the documented shape: msp_record_defs_markdown() writes the tables that docs/design.md shows
 *   ("Canonical records"); test_fields fails when the page differs from it, and when the Customer
 *   and Asset schemas of docs/openapi.yaml do not name exactly the table's fields.
 *
 * Field names of the date fields (MSP_DATE_*) and the names of the vendor custom fields that carry
 * them (MSP_DATE_*_LABEL) are defined here too, because every vendor mapper, the merge and the
 * write-back use them. Pure data: no allocation, no state.
 */
#ifndef MSPSYNC_FIELDS_H
#define MSPSYNC_FIELDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/** The members of the asset's "dates" object (source records and the merged asset alike). */
#define MSP_DATE_PURCHASE "purchase"
#define MSP_DATE_WARRANTY "warranty"

/**
 * The names of the vendor custom fields that carry the dates: a Syncro asset's
 * properties["<name>"], a ConnectWise RMM device custom field (datetime definition). mspsync
 * creates them with exactly these names.
 */
#define MSP_DATE_PURCHASE_LABEL "Purchase Date"
#define MSP_DATE_WARRANTY_LABEL "Warranty Expiration"

/** The JSON type of a field's value (null aside: see MSP_FIELD_NULL). */
typedef enum {
    MSP_FT_STRING,
    MSP_FT_INTEGER,
    MSP_FT_BOOLEAN,
    MSP_FT_OBJECT, /**< with exactly the members listed in the row */
    MSP_FT_ARRAY,  /**< of strings, or of objects with exactly the members listed in the row */
} msp_field_type_t;

/** How the normalizer's merge makes an asset field from the source records of one machine. */
typedef enum {
    MSP_MERGE_NONE,    /**< not merged (customers: one record per source) */
    MSP_MERGE_OWN,     /**< the merged asset's own: schema_version, tenant, id, kind */
    MSP_MERGE_SOURCES, /**< the sources of the live members, in member order */
    MSP_MERGE_FIRST,   /**< the primary member's value, else the first other one not null */
    MSP_MERGE_UNION,   /**< the sorted union of the members' strings, without duplicates */
    MSP_MERGE_DATES,   /**< per date: the edit, else the date policy: {value, source} or null */
    MSP_MERGE_GONE,    /**< true when every member is gone */
} msp_merge_rule_t;

#define MSP_FIELD_NULL 1u     /**< the value may be JSON null */
#define MSP_FIELD_OPTIONAL 2u /**< may be absent: a vendor without the fact, or it was not read */
#define MSP_FIELD_ENVELOPE                                                                         \
    4u /**< set by the normalizer from the raw.records envelope, not by a
                                   vendor's mapper (a customer's derived_from) */

/** One field of a canonical record. Every pointer is static. */
typedef struct msp_field_s {
    const char *name;
    msp_field_type_t type;
    unsigned flags;             /**< MSP_FIELD_* */
    msp_merge_rule_t merge;     /**< MSP_MERGE_NONE for customer fields */
    const char *const *members; /**< NULL-terminated member names of an object, or of each object
                                     of an array; NULL otherwise */
    const char *doc;            /**< one line for the docs: what it holds */
} msp_field_t;

/** The fields of one kind of canonical record, in the order the mappers write them. */
typedef struct msp_record_def_s {
    const char *kind; /**< the record's "kind": "customer", "asset" */
    const msp_field_t *fields;
    size_t n;
} msp_record_def_t;

extern const msp_record_def_t msp_record_customer;
extern const msp_record_def_t msp_record_asset;
extern const msp_record_def_t msp_record_contact; /**< Syncro contacts (never merged) */
extern const msp_record_def_t msp_record_ticket;  /**< Syncro tickets (never merged) */
extern const msp_record_def_t msp_record_setting; /**< a vendor account's ticket settings */

/**
 * @brief The definition of a kind ("customer", "asset", "contact", "ticket", "setting").
 * @returns borrowed, or NULL.
 */
const msp_record_def_t *msp_record_def(const char *kind);

/** @brief A field of def by name. @returns borrowed, or NULL when def has no such field. */
const msp_field_t *msp_record_field(const msp_record_def_t *def, const char *name);

/**
 * @brief Does rec have exactly def's fields: every field not MSP_FIELD_OPTIONAL present, none
 * that def lacks, each of its type (or null when MSP_FIELD_NULL), objects with exactly their
 * members, arrays of strings or of objects with exactly their members? Member values are not
 * typed (the merged asset's dates hold objects where a source record holds strings).
 * @returns 0, or -1 with the first difference in errstr ("asset field \"os\" is a string,
 * expected object or null").
 */
int msp_record_check(const msp_record_def_t *def, const json_t *rec, char *errstr,
                     size_t errstr_size);

/** @brief The name of a field type ("string", "object", ...) as the docs write it. */
const char *msp_field_type_name(msp_field_type_t type);

/**
 * @brief Write every kind's table as Markdown (the block docs/design.md shows between
 * its "fields:begin" and "fields:end" markers), one row per field.
 */
void msp_record_defs_markdown(FILE *out);

#endif
