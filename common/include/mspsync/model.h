/*
 * model.h — canonical records and the mapping from vendor payloads to them.
 *
 * Canonical customer (schema_version 1):
 *   {"schema_version":1,"tenant":"acme","id":"syncro:5560138523","kind":"customer",
 *    "sources":[{"integration":"syncro","id":"5560138523"}],"name":"Acme Ltd",
 *    "email":..., "phone":..., "disabled":false, "updated_at":"...", "gone":false}
 * Canonical asset (schema_version 1):
 *   {"schema_version":1,"tenant":"acme","id":"syncro:123","kind":"asset",
 *    "sources":[{"integration":"syncro","id":"123"}],"name":"WS-01","asset_type":"Desktop",
 *    "serial":"ABC","manufacturer":"Dell Inc.","model":"OptiPlex 7090","form_factor":"Desktop",
 *    "os":{"name":"Windows 11 Pro","build":"22631"},"macs":["AA:BB:CC:DD:EE:FF"],
 *    "customer_ref":"syncro:42","updated_at":"...","gone":false}
 * Missing optional facts are JSON null (macs: []). Vendor ids are kept as decimal strings so that
 * 64-bit ids survive every JSON consumer. MACs are upper-case, colon-separated, de-duplicated.
 */
#ifndef MSPSYNC_MODEL_H
#define MSPSYNC_MODEL_H

#include <stddef.h>
#include <jansson.h>

#define MSP_SCHEMA_VERSION 1

/**
 * @brief Map a Syncro customer object (as listed by GET /customers) to a canonical customer.
 * @returns new reference, or NULL with errstr when the payload lacks an integer "id" or is not
 *          an object (unknown fields are ignored).
 */
json_t *msp_map_syncro_customer(const char *tenant, const json_t *raw, char *errstr,
                                size_t errstr_size);

/** @brief Same for a Syncro asset (GET /customer_assets item). */
json_t *msp_map_syncro_asset(const char *tenant, const json_t *raw, char *errstr,
                             size_t errstr_size);

/** @brief Normalize a MAC ("aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff", ...) into out[18]. @returns 0/-1. */
int msp_normalize_mac(const char *in, char out[18]);

/**
 * @brief A content fingerprint of a canonical record (SHA-256 hex of its compact, key-sorted
 * JSON without "gone"), used to skip unchanged records. out must hold 65 bytes.
 */
void msp_record_fingerprint(const json_t *canonical, char out[65]);

#endif
