/*
 * tc.h — shared state of the ticket-creator process.
 *
 * The ticket-creator consumes canonical incidents (topic `incidents`, key = fingerprint, so one
 * incident's events arrive in order on one partition) and turns them into Syncro tickets,
 * comments and status changes. One libevent loop drives the consumer, the producer (dead
 * letters), libcurl multi and every incident's state machine (work.c).
 *
 * Ordering: events of one fingerprint are handled one after the other (a queue per
 * fingerprint); different fingerprints run concurrently, up to max_active. An event's offset is
 * stored only when its effect is recorded in Redis (msp_offtrack gives the committable offset),
 * so a crash replays it, and the markers written into Syncro (incident.h) let the replay find
 * what the crashed attempt already did instead of doing it twice.
 */
#ifndef MSPSYNC_TC_H
#define MSPSYNC_TC_H

#include <stdint.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "mspsync/crypto.h"
#include "mspsync/http.h"
#include "mspsync/offtrack.h"
#include "mspsync/ops.h"

typedef struct tc_conf_s {
    char      *brokers;
    char      *redis_url;
    char      *topic_prefix;
    char      *group;
    char      *group_instance_id;
    char      *log_level;
    char      *metrics_bind;
    long long  metrics_port;
    char      *port_file;
    double     syncro_rate;       /* tokens per second of one Syncro account's bucket */
    long long  syncro_rate_milli;
    long long  syncro_burst;
    long long  max_active;
    long long  max_queued;
    long long  backoff_base_ms;
    long long  backoff_cap_ms;
    long long  http_timeout_ms;
    long long  search_max_pages;
} tc_conf_t;

typedef struct tc_item_s tc_item_t;
typedef struct tc_fpq_s tc_fpq_t;

#define TC_FPQ_BUCKETS 4096

typedef struct tc_s {
    tc_conf_t          conf;
    struct event_base *base;
    msp_http_t        *http;
    rd_kafka_t        *consumer;
    rd_kafka_t        *producer;
    redisContext      *redis;
    msp_offtrack_t    *offtrack;
    msp_metrics_t     *metrics;
    msp_secret_key_t   key;

    tc_fpq_t   *fpq[TC_FPQ_BUCKETS];   /* fingerprint → its queued events, in arrival order */
    tc_item_t  *ready_head, *ready_tail; /* heads of their queues, waiting for a slot */
    int         nitems;                 /* events held (queued + active) */
    int         nactive;
    int         assigned_partitions;
    int         paused;
    int         stopping;
} tc_t;

/* work.c */
/** @brief Take a consumed message (ownership passes to the ticket-creator). */
void tc_accept(tc_t *tc, rd_kafka_message_t *msg);
/** @brief Start ready events while slots are free; pause/resume consumption by queue depth. */
void tc_pump(tc_t *tc);
/** @brief A partition was revoked: drop its queued events, abandon its active ones. */
void tc_partition_revoked(tc_t *tc, const char *topic, int32_t partition);
/** @brief Delivery report of a dead letter. */
void tc_delivery_report(tc_t *tc, const rd_kafka_message_t *msg);
/** @brief Free every event (shutdown; nothing is committed for unfinished ones). */
void tc_destroy_all(tc_t *tc);
/** @brief 1 when Redis answers (reconnecting if needed). */
int tc_redis_ok(tc_t *tc);

#endif
