/*
 * tc.h — shared state of the ticket-creator process.
 *
 * The ticket-creator consumes canonical incidents (topic `incidents`, key = fingerprint, so one
 * incident's events arrive in order on one partition) and turns them into Syncro tickets,
 * comments and status changes. One libevent loop drives the consumer, the producer (dead
 * letters), libcurl multi and every incident's state machine (work.c).
 *
 * Ordering: events of one fingerprint are handled one after the other (msp_keyq, key = the
 * fingerprint); different fingerprints run concurrently, up to max_active. An event's offset is
 * stored only when its effect is recorded in Redis (msp_offtrack gives the committable offset),
 * so a crash replays it, and the markers written into Syncro (incident.h) let the replay find
 * what the crashed attempt already did instead of doing it twice.
 */
#ifndef MSPSYNC_TC_H
#define MSPSYNC_TC_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "mspsync/aredis.h"
#include "mspsync/crypto.h"
#include "mspsync/http.h"
#include "mspsync/keyq.h"
#include "mspsync/ops.h"
#include "mspsync/redis.h"
#include "mspsync/svc.h"
#include "mspsync/task.h"
#include "mspsync/vcall.h"

typedef struct tc_conf_s {
    msp_svc_conf_t svc; /* Kafka, Redis, logging, ops server */
    long long  max_active;
    long long  max_queued;
    long long  backoff_base_ms;
    long long  backoff_cap_ms;
    long long  http_timeout_ms;
    long long  search_max_pages;
} tc_conf_t;

/*
 * The release of one tenant's held incidents (hold.c): incidents.held is read from the index's
 * `from` offset on the index's partition, the tenant's records are worked one at a time through
 * work.c's machine, `from` moves past each one once it is finished.
 */
typedef struct tc_release_s {
    rd_kafka_t *reader; /* a group-less consumer of incidents.held (NULL until needed) */
    struct event *timer;
    char tenant[129]; /* the tenant being released; "" when idle */
    char lock[33];    /* our token in ticketing:release_lock */
    int32_t partition;
    int64_t next; /* next offset of the partition to look at */
    void *item;   /* the released event in flight (work.c's), or NULL */
    int64_t lock_renewed_ms;
    int64_t released; /* events released in this run (logs) */
    struct event *rebuild_timer; /* rebuilds a lost held index once per epoch */
    msp_task_t rebuild_task;     /* the rebuild's thread (hold.c) */
    struct tc_held_job_s *rebuild; /* its job while it runs (new, freed when reaped) */
    int busy;           /* a Redis step of the releaser is out: its reply goes on, not the timer */
    int rebuild_asking; /* the rebuild timer's "index there for the epoch?" is out */
    json_t *tenants;    /* idle: the holding tenants still to look at (SMEMBERS, copied) */
    size_t tenant_at;   /* the next of them */
    int32_t cand_partition; /* idle: the candidate's index, while its lock is taken */
    int64_t cand_from;
    int64_t end_offset; /* a released event ended here: its `from` is being moved */
} tc_release_t;

/* The epoch for which the held-incident index was rebuilt (or found intact): `{_}:state:held`. */
#define TC_STATE_HELD_SUFFIX "state:held"

/* The header that tells a release mark from a held incident on incidents.held. */
#define TC_MARK_HEADER "x-mspsync-kind"
#define TC_MARK_KIND "release-mark"

/** How a released event ended (tc_release_item_end). */
typedef enum {
    TC_RELEASE_DONE = 0,  /* finished, skipped or dead-lettered: `from` moves past it */
    TC_RELEASE_STOP,      /* the tenant holds again (paused, switched off): it stays held */
    TC_RELEASE_ABANDONED, /* stopping: it stays held, a later run releases it */
} tc_release_end_t;

typedef struct tc_s {
    tc_conf_t          conf;
    struct event_base *base;
    msp_http_t        *http;
    msp_svc_worker_t   worker;     /* consumer, producer (dead letters), offsets, the queue */
    /* Every Redis command of the loop goes through it (made at start, freed at stop): a stalled
     * Redis delays an event, never the loop. Only the held index's rebuild thread (hold.c) keeps a
     * blocking context of its own. */
    msp_aredis_t *aredis;
    msp_metrics_t     *metrics;
    msp_secret_key_t   key;
    msp_vcall_env_t vcall; /* what every Syncro call shares (tc_vcall_env) */
    int                stopping;
    tc_release_t rel;
    /* The epoch marker (statekeys.h) as last seen: a change means Redis was lost and restored.
     * lost_noted: the loss was acted on (offsets committed, logged) until the marker is back. */
    char epoch_seen[64];
    int lost_noted;
} tc_t;

/* work.c */
/** @brief Take a consumed message (ownership passes to the ticket-creator). */
void tc_accept(tc_t *tc, rd_kafka_message_t *msg);
/** @brief The keyq callbacks (start an event, free one). */
extern const msp_keyq_ops_t tc_keyq_ops;
/** @brief Fill tc->vcall once the loop, the HTTP client and the queue exist. */
void tc_vcall_env(tc_t *tc);
/** @brief Delivery report of a dead letter or of a held incident. */
void tc_delivery_report(tc_t *tc, const rd_kafka_message_t *msg);
/**
 * @brief Work a released event (msg, a record of incidents.held; stolen) of tenant through the
 * same machine as a consumed one; its end comes back as tc_release_item_end, never from inside
 * this call. @returns 0, or -1 out of memory (msg is not taken).
 */
int tc_release_start(tc_t *tc, rd_kafka_message_t *msg, const char *tenant);
/** @brief Free a released event still in flight at shutdown (item: tc->rel.item). */
void tc_release_item_free(void *item);

/* hold.c */
/** @brief Start the releaser's timer (after tc_vcall_env). @returns 0 or -1. */
int tc_release_init(tc_t *tc);
/** @brief A released event ended at offset (work.c calls it; the item is freed). */
void tc_release_item_end(tc_t *tc, int64_t offset, tc_release_end_t end);
/** @brief Shutdown: free an event in flight, the reader and the timer. */
void tc_release_close(tc_t *tc);

/*
 * A transaction on the async connection: MULTI, the commands (replies not wanted), then EXEC
 * whose one reply holds every command's answer. Sent back to back from the loop's thread, so no
 * other command comes between; a command that cannot be queued halfway DISCARDs what was.
 */
typedef struct tc_tx_s {
    msp_aredis_t *a;
    int begun, failed;
} tc_tx_t;

/** @brief MULTI on a (failed already when not connected). */
static inline tc_tx_t tc_tx_begin(msp_aredis_t *a) {
    tc_tx_t t = {a, 0, 0};
    t.begun = msp_aredis_cmd(a, NULL, NULL, "MULTI") == 0;
    t.failed = !t.begun;
    return t;
}

/** One command of the transaction (printf-like, as msp_aredis_cmd). */
#define TC_TX(t, ...)                                                                              \
    do {                                                                                           \
        if (!(t)->failed && msp_aredis_cmd((t)->a, NULL, NULL, __VA_ARGS__) != 0)                  \
            (t)->failed = 1;                                                                       \
    } while (0)

/** @brief One command of the transaction as an argument vector. */
static inline void tc_tx_argv(tc_tx_t *t, int argc, const char **argv, const size_t *lens) {
    if (!t->failed && msp_aredis_cmdargv(t->a, NULL, NULL, argc, argv, lens) != 0)
        t->failed = 1;
}

/**
 * @brief EXEC: cb(arg, the array of answers or NULL/an error, why) runs later, once.
 * @returns 0, or -1 nothing was sent (not connected): no callback, the caller retries later.
 */
static inline int tc_tx_exec(tc_tx_t *t, msp_aredis_cb *cb, void *arg) {
    if (!t->failed && msp_aredis_cmd(t->a, cb, arg, "EXEC") == 0)
        return 0;
    if (t->begun)
        msp_aredis_cmd(t->a, NULL, NULL, "DISCARD");
    return -1;
}

/** @brief 1 when r is EXEC's array of n answers. */
static inline int tc_tx_ok(const redisReply *r, size_t n) {
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == n;
}

#endif
