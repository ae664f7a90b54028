/*
 * trace.h — per-incident traces and per-asset histories (docs/design.md, "Traces").
 *
 * An operator asks "what happened to this incident / this asset?". Every service that moves an
 * incident or an asset appends a JSON entry to a capped Redis list, inside a round trip it makes
 * anyway (the normalizer's batch MULTI, the ticket-creator's FINISH MULTI, the write-back's
 * outcome write): a trace never costs a round trip of its own on a hot path.
 *
 *   mspsync:{t}:trace:inc:<fingerprint>   list, the incident's entries (oldest first)
 *   mspsync:{t}:trace:incid:<incident id> set, the fingerprints of a portal incident id
 *   mspsync:{t}:trace:asset:<asset id>    list, the asset's history (oldest first)
 *
 * Each entry is one compact JSON object: `at` (ISO 8601), `at_ms`, `step`, `service`, then the
 * step's facts. Incident entries carry `event_id`: a crash-replayed step writes the same
 * (event_id, step) again and readers keep the first of each (msp_trace_entry_key). Lists are
 * trimmed to MSP_TRACE_MAX entries and expire with the ticket record's events set. Traces are
 * history, kind `cache`: lost with Redis, never rebuilt.
 */
#ifndef MSPSYNC_TRACE_H
#define MSPSYNC_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/** Entries kept per list (LTRIM -MSP_TRACE_MAX -1: the newest). */
#define MSP_TRACE_MAX 200
#define MSP_TRACE_MAX_STR "200"
/** Lifetime of a trace after its last entry, as tk:<fp>:events (90 days). */
#define MSP_TRACE_TTL_S (90 * 86400)
#define MSP_TRACE_TTL_STR "7776000"
/** Longest incident id indexed (longer ones are found by fingerprint only). */
#define MSP_TRACE_INCID_MAX 200

/**
 * @brief One trace entry: `at`/`at_ms` (wall_ms), `step`, `service`, then every member of facts.
 * @param facts  stolen (may be NULL); its members come after the fixed ones.
 * @returns new compact JSON text (jansson's allocator: free with msp_json_free, model.h), or
 *          NULL when out of memory.
 */
char *msp_trace_entry(int64_t wall_ms, const char *step, const char *service, json_t *facts);

/**
 * @brief The identity of an entry for de-duplication: "<event_id>\t<step>\t<error>" (error only
 * for `error` steps, so each distinct vendor error stays). Writes "" for an entry without an
 * event id (never de-duplicated). @returns 0, or -1 when buf was too small.
 */
int msp_trace_entry_key(const json_t *entry, char *buf, size_t size);

#endif
