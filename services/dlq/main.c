/*
 * mspsync-dlq — inspect and replay dead letters.
 *
 *   mspsync-dlq list      print every record on the dlq topic as one JSON line (reason, service,
 *                         source topic/partition/offset, when, key, value), oldest first
 *   mspsync-dlq replay    produce every dead letter not replayed yet back to its source topic
 *                         (original key, value and headers, minus the x-dlq-* ones), e.g. after a
 *                         normalizer fix; a record that still fails is dead-lettered again by the
 *                         service, with its new reason
 *
 *   --tenant T            (either command) only the dead letters of tenant T: its x-dlq-tenant
 *                         header, else the tenant its key or value names (msp_dlq_tenant)
 *
 * replay reads the dlq in the consumer group MSPSYNC_DLQ_GROUP up to the end offsets it saw at
 * start, and commits a position only after the replayed records were acknowledged by Kafka, so
 * running it twice never replays a record twice, and a crash in the middle replays at most the
 * last batch again (harmless: every consumer of mspsync is idempotent).
 *
 * replay --tenant T reads in its own group, MSPSYNC_DLQ_GROUP + "-tenant-" + T, so the
 * all-tenants group does not move: the other tenants' dead letters stay due for it. Each run
 * skips what the other kind of run already replayed — an all-tenants replay a record whose
 * tenant's own group is past it, a --tenant replay a record the all-tenants group is past — so
 * a record is replayed once by this tool, whichever way it is run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "mspsync/config.h"
#include "mspsync/kafka.h"
#include "mspsync/log.h"
#include "mspsync/svc.h"

static struct {
    msp_svc_conf_t svc;   /* Kafka and logging: the rows every service shares (svc.h) */
    char *group;
} cfg;

static const char *only_tenant; /* --tenant T, or NULL: every tenant */

static const msp_config_entry_t config_table[] = {
    MSP_SVC_KAFKA_ROWS(cfg.svc),
    MSP_KAFKA_CLIENT_CONFIG(cfg.svc.kafka),
    {"MSPSYNC_DLQ_GROUP", MSP_CFG_STR, "mspsync-dlq-replay",
     "Consumer group that remembers what `replay` already replayed", &cfg.group},
    MSP_SVC_LOG_ROW(cfg.svc, "warn"),
    {NULL},
};

static char *header_str(rd_kafka_headers_t *h, const char *name) {
    const void *v = NULL;
    size_t n = 0;
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return NULL;
    char *s = malloc(n + 1);
    memcpy(s, v, n);
    s[n] = '\0';
    return s;
}

/* End offsets of every partition of topic (high watermarks), fetched once. */
static rd_kafka_topic_partition_list_t *end_offsets(rd_kafka_t *rk, const char *topic) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "mspsync-dlq: no metadata for %s: %s\n", topic,
                rd_kafka_err2str(err ? err : md->topics[0].err));
        if (md) rd_kafka_metadata_destroy(md);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) != 0) {
            rd_kafka_metadata_destroy(md);
            rd_kafka_topic_partition_list_destroy(l);
            return NULL;
        }
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = hi;
    }
    rd_kafka_metadata_destroy(md);
    return l;
}

static int reached_end(const rd_kafka_topic_partition_list_t *ends,
                       const rd_kafka_topic_partition_list_t *pos) {
    for (int i = 0; i < ends->cnt; i++) {
        int64_t want = ends->elems[i].offset;
        if (want <= 0) continue;
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find((rd_kafka_topic_partition_list_t *)pos,
                                               ends->elems[i].topic, ends->elems[i].partition);
        if (!p || p->offset < want) return 0;
    }
    return 1;
}

static void print_record(const rd_kafka_message_t *m) {
    rd_kafka_headers_t *h = NULL;
    rd_kafka_message_headers(m, &h);
    static const char *names[] = {"x-dlq-reason", "x-dlq-service", "x-dlq-source-topic",
                                  "x-dlq-source-partition", "x-dlq-source-offset",
                                  "x-dlq-failed-at"};
    char tenant[64];
    msp_dlq_tenant(m, tenant, sizeof(tenant));
    json_t *o = json_pack("{s:i,s:I}", "partition", (int)m->partition, "offset", (json_int_t)m->offset);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *v = header_str(h, names[i]);
        json_object_set_new(o, names[i] + 6, v ? json_string(v) : json_null());
        free(v);
    }
    json_object_set_new(o, "tenant", tenant[0] ? json_string(tenant) : json_null());
    json_object_set_new(o, "key", m->key ? json_stringn(m->key, m->key_len) : json_null());
    json_object_set_new(o, "value", m->payload ? json_stringn(m->payload, m->len) : json_null());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) puts(s);
    free(s);
    json_decref(o);
}

static int failed_deliveries;
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    if (m->err) {
        failed_deliveries++;
        fprintf(stderr, "mspsync-dlq: delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
}

/* Produce one dead letter back to its source topic (msp_dlq_unwrap: original key, value and
 * headers without the x-dlq-* ones). @returns 0, or -1 (reason printed). */
static int replay_one(rd_kafka_t *producer, const rd_kafka_message_t *m) {
    char *src = NULL;
    rd_kafka_headers_t *out = NULL;
    if (msp_dlq_unwrap(m, &src, &out) != 0) {
        fprintf(stderr, "mspsync-dlq: dlq [%d] @%lld has no x-dlq-source-topic; left as it is\n",
                (int)m->partition, (long long)m->offset);
        return -1;
    }
    int rc = msp_kafka_produce(producer, src, m->key, m->key_len, m->payload, m->len, out, NULL);
    if (rc != 0 && out) rd_kafka_headers_destroy(out);
    free(src);
    return rc;
}

/* The group of replay: the all-tenants group, or its per-tenant sibling. */
static void group_name(const char *tenant, char *buf, size_t size) {
    if (tenant)
        snprintf(buf, size, "%s-tenant-%s", cfg.group, tenant);
    else
        snprintf(buf, size, "%s", cfg.group);
}

/* Replay groups asked about (a tenant's, or "" for the all-tenants group), with their
 * committed positions. */
typedef struct tenant_pos_s {
    struct tenant_pos_s *next;
    char tenant[64];
    rd_kafka_topic_partition_list_t *pos; /* committed positions of its group */
} tenant_pos_t;

/* 1 when the replay group of tenant ("" = the all-tenants group) already replayed m. */
static int replayed_by_group(tenant_pos_t **cache, const char *brokers, const char *tenant,
                             const rd_kafka_message_t *m,
                             const rd_kafka_topic_partition_list_t *ends) {
    tenant_pos_t *t = *cache;
    while (t && strcmp(t->tenant, tenant))
        t = t->next;
    if (!t) {
        t = calloc(1, sizeof(*t));
        if (!t)
            return 0;
        snprintf(t->tenant, sizeof(t->tenant), "%s", tenant);
        t->next = *cache;
        *cache = t;
        char group[300], errstr[512];
        group_name(tenant[0] ? tenant : NULL, group, sizeof(group));
        /* a member of that group that never polls: it only reads the committed offsets */
        const char *topics[] = {rd_kafka_topic_name(m->rkt), NULL};
        rd_kafka_t *rk = msp_kafka_consumer_new(brokers, group, "mspsync-dlq", topics, NULL, NULL,
                                                errstr, sizeof(errstr));
        t->pos = rd_kafka_topic_partition_list_copy(ends);
        for (int i = 0; i < t->pos->cnt; i++)
            t->pos->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        if (!rk || rd_kafka_committed(rk, t->pos, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            for (int i = 0; i < t->pos->cnt; i++)
                t->pos->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        if (rk) {
            rd_kafka_consumer_close(rk);
            rd_kafka_destroy(rk);
        }
    }
    rd_kafka_topic_partition_t *p =
        rd_kafka_topic_partition_list_find(t->pos, rd_kafka_topic_name(m->rkt), m->partition);
    return p && p->offset > m->offset;
}

static void tenant_pos_free(tenant_pos_t *t) {
    while (t) {
        tenant_pos_t *next = t->next;
        rd_kafka_topic_partition_list_destroy(t->pos);
        free(t);
        t = next;
    }
}

int main(int argc, char **argv) {
    char errstr[512];
    const char *cmd = argc > 1 ? argv[1] : "";
    msp_log_set_stream(stderr);   /* stdout carries the listing (and replay's summary) only */
    int rc = msp_svc_configure("dlq", config_table, argc, argv, &cfg.svc, NULL);
    if (rc == 0) {   /* --help */
        printf("\nCommands: list | replay   [--tenant T: only that tenant's dead letters]\n");
        return 0;
    }
    if (rc > 0)
        return rc;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--tenant") && i + 1 < argc && argv[i + 1][0]) {
            only_tenant = argv[++i];
        } else {
            fprintf(stderr, "mspsync-dlq: unknown argument \"%s\" (expected --tenant T)\n",
                    argv[i]);
            msp_config_free(config_table);
            return 2;
        }
    }
    if (strcmp(cmd, "list") != 0 && strcmp(cmd, "replay") != 0) {
        fprintf(stderr, "usage: mspsync-dlq list|replay [--tenant T]   (settings: mspsync-dlq "
                        "--help)\n");
        msp_config_free(config_table);
        return 2;
    }
    const char *dlq = msp_topic(MSP_TOPIC_DLQ);
    int listing = !strcmp(cmd, "list");

    /* list reads with a throw-away group id and never commits; replay uses the real group. */
    char group[256];
    if (listing) snprintf(group, sizeof(group), "mspsync-dlq-list-%d", (int)getpid());
    else
        group_name(only_tenant, group, sizeof(group));
    const char *brokers = cfg.svc.brokers;
    rd_kafka_t *producer = listing ? NULL
                                   : msp_kafka_producer_new(brokers, "mspsync-dlq", dr_cb, NULL,
                                                            errstr, sizeof(errstr));
    const char *topics[] = {dlq, NULL};
    rd_kafka_t *consumer = (listing || producer)
                               ? msp_kafka_consumer_new(brokers, group, "mspsync-dlq", topics,
                                                        NULL, NULL, errstr, sizeof(errstr))
                               : NULL;
    if (!consumer) {
        fprintf(stderr, "mspsync-dlq: %s\n", errstr);
        return 1;
    }
    rd_kafka_topic_partition_list_t *ends = end_offsets(consumer, dlq);
    if (!ends) return 1;
    /* Start from what the group already committed, so that partitions with nothing new count
     * as done without waiting for a message. */
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(ends);
    for (int i = 0; i < pos->cnt; i++) pos->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    if (rd_kafka_committed(consumer, pos, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        for (int i = 0; i < pos->cnt; i++) pos->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    long seen = 0, replayed = 0, skipped = 0, listed = 0;
    tenant_pos_t *tenants = NULL; /* what the other replay groups committed */
    int exit_code = 0;
    while (!reached_end(ends, pos)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 10000);
        if (!m) {
            /* Nothing for 10 s: either done (an empty dlq) or the group is still joining. */
            rd_kafka_topic_partition_list_t *asg = NULL;
            if (rd_kafka_assignment(consumer, &asg) == 0 && asg->cnt > 0) {
                rd_kafka_topic_partition_list_destroy(asg);
                break;
            }
            if (asg) rd_kafka_topic_partition_list_destroy(asg);
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "mspsync-dlq: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_topic_partition_t *end = rd_kafka_topic_partition_list_find(ends, dlq, m->partition);
        if (end && m->offset >= end->offset) { /* arrived after we started: the next run's */
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(pos, dlq, m->partition);
        if (!p) p = rd_kafka_topic_partition_list_add(pos, dlq, m->partition);
        p->offset = m->offset + 1;
        seen++;
        char tenant[64];
        msp_dlq_tenant(m, tenant, sizeof(tenant));
        if (only_tenant && strcmp(tenant, only_tenant) != 0) {
            /* another tenant's: not ours to show or replay (its position still counts as read
             * for our own group only) */
        } else if (listing) {
            print_record(m);
            listed++;
        } else if (tenant[0] &&
                   replayed_by_group(&tenants, brokers, only_tenant ? "" : tenant, m, ends)) {
            skipped++; /* the other kind of replay did it already */
        } else if (replay_one(producer, m) == 0) {
            replayed++;
        } else {
            skipped++;
        }
        rd_kafka_message_destroy(m);
    }
    if (!listing) {
        rd_kafka_flush(producer, 60000);
        if (failed_deliveries || rd_kafka_outq_len(producer) > 0) {
            fprintf(stderr, "mspsync-dlq: %d replayed records were not acknowledged; positions not "
                            "committed, run replay again\n", failed_deliveries);
            exit_code = 1;
        } else if (seen > 0) {
            for (int i = pos->cnt - 1; i >= 0; i--) /* commit only real positions */
                if (pos->elems[i].offset < 0) rd_kafka_topic_partition_list_del_by_idx(pos, i);
            rd_kafka_resp_err_t err = rd_kafka_commit(consumer, pos, 0);
            if (err) {
                fprintf(stderr, "mspsync-dlq: commit failed: %s\n", rd_kafka_err2str(err));
                exit_code = 1;
            }
        }
        printf("replayed=%ld skipped=%ld\n", replayed, skipped);
    } else {
        fprintf(stderr, "mspsync-dlq: %ld dead letters\n", listed);
    }
    tenant_pos_free(tenants);
    rd_kafka_topic_partition_list_destroy(pos);
    rd_kafka_topic_partition_list_destroy(ends);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    if (producer) rd_kafka_destroy(producer);
    msp_config_free(config_table);
    return exit_code;
}
