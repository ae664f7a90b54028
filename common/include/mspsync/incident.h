/*
 * incident.h — the canonical incident and the markers that make ticketing idempotent.
 *
 * An MTP webhook (docs/openapi.yaml, IncidentWebhook) reaches the normalizer inside a raw.records
 * envelope of kind "incident"; msp_map_mtp_incident turns its payload into the canonical incident
 * published on topic `incidents` (key = fingerprint):
 *
 *   {"schema_version":1,"tenant":"acme","source":"mtp","fingerprint":"<64 hex>",
 *    "event_id":"<64 hex>","incident_id":"inc-1","org_id":"org-7","org_name":"Contoso",
 *    "alert_type":"device_offline","severity":"high","status":"open","subject":"WS-01",
 *    "title":"…","description":"…"|null,"occurred_at":"…","link":"…"|null,
 *    "received_at":"…"|null}
 *
 * fingerprint = SHA-256 over (tenant, source, alert_type, subject, incident_id), each part
 *   length-prefixed so that no two tuples share a text. subject defaults to org_id when the
 *   webhook has none. Every event of one incident shares it: it names "the ticket".
 * event_id    = SHA-256 over (fingerprint, status, occurred_at): one delivery of one event. A
 *   sender's retry of the same event has the same id (handled once); a re-fire has a new
 *   occurred_at and so a new id.
 *
 * Markers written into Syncro (ticket-creator) so that a crash between Syncro's answer and our
 * bookkeeping is resolved by reading the ticket back, never by creating twice:
 *   first comment of a ticket:  "mspsync-incident: <fingerprint>/<generation>", then
 *                               the event marker of the event that created it
 *   every later comment:        the event marker of its event
 * The event marker is "mspsync-event: <event_id> occurred_at=<occurred_at>" (comments written
 * before the occurred_at part existed end after the id). After a Redis loss the occurred_at tells
 * a replayed resolve that a later event, already on the ticket, undid (ticket-creator, RESCAN).
 */
#ifndef MSPSYNC_INCIDENT_H
#define MSPSYNC_INCIDENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define MSP_INCIDENT_MARKER "mspsync-incident: "
#define MSP_EVENT_MARKER    "mspsync-event: "
#define MSP_EVENT_OCCURRED " occurred_at="

/**
 * @brief Map a webhook payload (the validated body the gateway stored) to a canonical incident.
 * received_at may be NULL. Unknown payload fields are ignored.
 * @returns new reference, or NULL with errstr naming the bad field (the gateway validated the
 * payload, so this only fires for records that did not come through it).
 */
json_t *msp_map_mtp_incident(const char *tenant, const json_t *payload, const char *received_at,
                             char *errstr, size_t errstr_size);

/** @brief The fingerprint of (tenant, source, alert_type, subject, incident_id); out[65] hex. */
void msp_incident_fingerprint(const char *tenant, const char *source, const char *alert_type,
                              const char *subject, const char *incident_id, char out[65]);

/** @brief The event id of (fingerprint, status, occurred_at); out[65] hex. */
void msp_incident_event_id(const char *fingerprint, const char *status, const char *occurred_at,
                           char out[65]);

/**
 * @brief The event marker of event_id: "mspsync-event: <event_id>", then " occurred_at=<occurred_at>"
 * when occurred_at is an RFC 3339 date-time of at most 64 bytes (as the gateway accepts it).
 * @returns the length written (snprintf's: >= size means it was cut).
 */
int msp_event_marker(char *buf, size_t size, const char *event_id, const char *occurred_at);

/**
 * @brief The latest occurred_at of the event markers in text (a comment's body), in Unix ms.
 * Markers without an occurred_at, or with one that is not an RFC 3339 date-time, are skipped.
 * @returns 1 with *ms set when some marker had one, else 0.
 */
int msp_event_marker_latest(const char *text, int64_t *ms);

#endif
