/*
 * model.h — canonical records and the mapping from vendor payloads to them.
 *
 * The fields of the canonical customer and asset, their types, and how the inventory merges an
 * asset, are the tables of fields.h (shown in docs/design.md, "Canonical records"); every mapper's
 * output has exactly those fields. Vendor ids are kept as decimal strings so that 64-bit ids
 * survive every JSON consumer. MACs are upper-case, colon-separated, de-duplicated, sorted; dates
 * are "YYYY-MM-DD" (msp_date_normalize). Missing optional facts are JSON null (macs: []).
 *
 * Syncro mapping rules (the normalizer and the tests rely on them):
 * - Vendor ids ("id", "customer_id"): a positive JSON integer or a string of decimal digits that
 *   fits a positive int64; anything else is no id. customer_ref is "syncro:<customer_id>" or null.
 * - Strings are trimmed; empty or non-string values become null (never an error). updated_at is
 *   copied as given (not trimmed).
 * - Customer name: business_then_name, else business_name, else fullname, else
 *   "firstname lastname" (either alone when the other is missing), else null.
 *   disabled: a JSON boolean, or Syncro's string flags "true"/"false"; else null.
 * - Asset: name, asset_type from the top level. From properties.kabuto_information (an object,
 *   or a JSON-encoded string of one): serial = general.serial_number, falling back to the
 *   top-level asset_serial; manufacturer, model, form_factor from general; os = {name, build}
 *   from os (null when both are missing); macs from network_adapters[].physical_address,
 *   normalized, invalid ones and the placeholders 00:00:00:00:00:00 and FF:FF:FF:FF:FF:FF
 *   dropped, de-duplicated and sorted; dates.purchase / dates.warranty from the properties named
 *   MSP_DATE_PURCHASE_LABEL / MSP_DATE_WARRANTY_LABEL (msp_date_normalize; unparsable = null).
 *
 * model.h depends on fields.h only; vendor clients (cwrmm.h) depend on it, never the reverse.
 */
#ifndef MSPSYNC_MODEL_H
#define MSPSYNC_MODEL_H

#include <stddef.h>
#include <jansson.h>

#include "mspsync/fields.h"

#define MSP_SCHEMA_VERSION 1

/**
 * @brief Map a Syncro customer object (as listed by GET /customers) to a canonical customer.
 * @returns new reference, or NULL with errstr when the payload lacks an integer "id" or is not
 *          an object (unknown fields are ignored). The errstr reads like
 *          `asset payload has no usable integer id (got string "not-a-number")`; tenant must be
 *          non-empty. raw is borrowed.
 */
json_t *msp_map_syncro_customer(const char *tenant, const json_t *raw, char *errstr,
                                size_t errstr_size);

/** @brief Same for a Syncro asset (GET /customer_assets item). */
json_t *msp_map_syncro_asset(const char *tenant, const json_t *raw, char *errstr,
                             size_t errstr_size);

/** @brief Same for a Syncro contact (GET /contacts item): kind "contact". */
json_t *msp_map_syncro_contact(const char *tenant, const json_t *raw, char *errstr,
                               size_t errstr_size);

/** @brief Same for a Syncro ticket (GET /tickets item): kind "ticket". */
json_t *msp_map_syncro_ticket(const char *tenant, const json_t *raw, char *errstr,
                              size_t errstr_size);

/**
 * The vendor id of an account's ticket settings: there is one settings object per account and
 * it has no id of its own, so its canonical id is "syncro:" MSP_SYNCRO_SETTINGS_ID.
 */
#define MSP_SYNCRO_SETTINGS_ID "tickets"

/**
 * @brief Map the answer of GET /tickets/settings to the canonical "setting" record: the ticket
 * statuses (ticket_status_list, required: without it the answer is refused), problem_types when
 * present, ticket type names. @returns new, or NULL with errstr. raw is borrowed.
 */
json_t *msp_map_syncro_settings(const char *tenant, const json_t *raw, char *errstr,
                                size_t errstr_size);

/**
 * The top-level members of a Syncro asset that msp_map_syncro_asset reads (NULL-terminated):
 * a reader that builds only these (msp_json_pick) maps to the same record. Keep it beside the
 * mapping: tests/unit/test_model.c maps every fixture both ways and fails on a member missing.
 */
extern const char *const msp_syncro_asset_members[];

/**
 * @brief Normalize a MAC ("aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff", ...) into out[18]. @returns 0/-1.
 * Accepted: six groups of 1-2 hex digits separated by one kind of ':' or '-', three groups of 4
 * separated by '.', or 12 bare hex digits; surrounding whitespace is ignored. All-zero is a valid
 * format here (the asset mapper drops it). On -1, out is "".
 */
int msp_normalize_mac(const char *in, char out[18]);

/**
 * @brief A calendar date from "YYYY-MM-DD", "YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)" (the date part
 * as written), "MM/DD/YYYY", with surrounding whitespace; checks month/day ranges (leap years).
 * @returns 0 with out = "YYYY-MM-DD", or -1 (out "").
 */
int msp_date_normalize(const char *in, char out[11]);

/**
 * @brief A content fingerprint of a canonical record (SHA-256 hex of its compact, key-sorted
 * JSON without "gone"), used to skip unchanged records. out must hold 65 bytes (lower-case hex;
 * "" only if canonical is NULL or cannot be serialized).
 */
void msp_record_fingerprint(const json_t *canonical, char out[65]);

/**
 * @brief Free memory that jansson handed out (a json_dumps() result) with the free function
 * jansson is configured with (json_set_alloc_funcs), never with plain free().
 */
void msp_json_free(void *p);

#endif
