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
 * trimmed to MSP_TRACE_MAX entries and expire with the ticket record's events set.
 *
 * The journal: nothing here is Redis-only. Every entry a service appends to a trace list (and
 * every fingerprint it adds to a trace:incid set, and every change billing appends to a
 * billing:history list) is also produced, asynchronously, to the `traces` topic
 * (msp_trace_journal): key "<tenant>/<key suffix>" (so one list's entries stay in order on one
 * partition), value the entry's text exactly as Redis got it, kept 91 days. After a loss of Redis
 * the gateway rebuilds the lists from it (services/gateway/trace_rebuild.c). The produce never
 * blocks and never fails the step: a refused produce or a failed delivery is logged
 * (trace.journal_failed) and counted (mspsync_trace_journal_failed_total) — that entry would be
 * missing from a rebuild, nothing else. A service SIGKILLed between its Redis write and the
 * delivery loses the record unless the step is replayed (the consumed offset was not stored
 * yet); a replayed step journals its entry again, which the rebuild keeps once per text and the
 * readers once per (event id, step).
 */
#ifndef MSPSYNC_TRACE_H
#define MSPSYNC_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

struct msp_metrics_s;

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

/**
 * @brief The producer (borrowed, may be NULL: nothing is journaled) and the metrics registry
 * (borrowed, may be NULL) msp_trace_journal uses for the rest of the process. Call once at
 * start-up, before the first entry, and again with NULL before the producer is destroyed.
 */
void msp_trace_journal_init(rd_kafka_t *producer, struct msp_metrics_s *metrics);

/**
 * @brief Journal one element written to the Redis key `key` ("mspsync:{t}:trace:..." or
 * "mspsync:{t}:billing:history:..."): text is the list entry (or the set member) exactly as
 * written. keep: the list's cap when it is not MSP_TRACE_MAX (billing's history), else 0.
 * Asynchronous (copied); never blocks. @returns 0 produced, -1 not (logged and counted).
 */
int msp_trace_journal(const char *key, const char *text, long long keep);

/**
 * @brief For a service's delivery-report callback, first: 1 when m is a journal record (a failed
 * delivery is logged and counted here; the caller does nothing else with it), 0 when it is not.
 */
int msp_trace_journal_report(const rd_kafka_message_t *m);

/** Header of a journal record with the list's cap when it is not MSP_TRACE_MAX. */
#define MSP_TRACE_KEEP_HEADER "x-keep"

#endif
