/*
 * keyq.c — per-key ordering over a Kafka consumer (see keyq.h).
 *
 * Keys hash into a fixed table of queues; a queue exists while it holds items and its head is
 * the only item of that key that may be active. Ready heads wait in one FIFO for a slot.
 */
#include "mspsync/keyq.h"

#include <stdlib.h>
#include <string.h>

#include "mspsync/log.h"

#define KEYQ_BUCKETS 4096

struct msp_keyq_key_s {
    msp_keyq_key_t  *next;
    msp_keyq_item_t *head, *tail;
    char             key[];
};

struct msp_keyq_s {
    rd_kafka_t      *consumer;
    msp_offtrack_t  *offtrack;
    msp_keyq_ops_t   ops;
    int              max_active, max_queued;
    msp_keyq_key_t  *buckets[KEYQ_BUCKETS];
    msp_keyq_item_t *ready_head, *ready_tail;
    int              nitems, nactive, paused, stopping;
};

static unsigned key_bucket(const char *k) {
    unsigned h = 2166136261u;
    for (const char *p = k; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return h % KEYQ_BUCKETS;
}

msp_keyq_t *msp_keyq_new(rd_kafka_t *consumer, msp_offtrack_t *offtrack, int max_active,
                         int max_queued, const msp_keyq_ops_t *ops) {
    msp_keyq_t *kq = calloc(1, sizeof(*kq));
    if (!kq) return NULL;
    kq->consumer = consumer;
    kq->offtrack = offtrack;
    kq->ops = *ops;
    kq->max_active = max_active;
    kq->max_queued = max_queued;
    return kq;
}

static void item_free(msp_keyq_t *kq, msp_keyq_item_t *it) {
    rd_kafka_message_t *msg = it->msg;
    kq->ops.destroy(it, kq->ops.opaque);
    if (msg) rd_kafka_message_destroy(msg);
    kq->nitems--;
}

int msp_keyq_accept(msp_keyq_t *kq, msp_keyq_item_t *it, rd_kafka_message_t *msg) {
    if (msp_offtrack_begin(kq->offtrack, rd_kafka_topic_name(msg->rkt), msg->partition,
                           msg->offset) != 0)
        return -1;
    it->msg = msg;
    kq->nitems++;
    return 0;
}

static void ready_push(msp_keyq_t *kq, msp_keyq_item_t *it) {
    it->next_ready = NULL;
    if (kq->ready_tail) kq->ready_tail->next_ready = it;
    else kq->ready_head = it;
    kq->ready_tail = it;
}

int msp_keyq_push(msp_keyq_t *kq, msp_keyq_item_t *it, const char *key) {
    unsigned b = key_bucket(key);
    msp_keyq_key_t *q = kq->buckets[b];
    while (q && strcmp(q->key, key) != 0) q = q->next;
    if (!q) {
        size_t n = strlen(key);
        q = calloc(1, sizeof(*q) + n + 1);
        if (!q) {
            MSP_ERROR("oom", NULL, "cannot queue a message of key %s", key);
            msp_offtrack_forget(kq->offtrack, rd_kafka_topic_name(it->msg->rkt),
                                it->msg->partition);
            item_free(kq, it);
            return -1;
        }
        memcpy(q->key, key, n + 1);
        q->next = kq->buckets[b];
        kq->buckets[b] = q;
    }
    it->q = q;
    if (q->tail) {
        q->tail->next_key = it;
    } else {
        q->head = it;
        ready_push(kq, it);
    }
    q->tail = it;
    return 0;
}

/* Remove it (the head of its queue) and make the key's next item ready. */
static void key_pop(msp_keyq_t *kq, msp_keyq_item_t *it) {
    msp_keyq_key_t *q = it->q;
    if (!q) return;
    q->head = it->next_key;
    if (!q->head) {
        msp_keyq_key_t **pp = &kq->buckets[key_bucket(q->key)];
        while (*pp && *pp != q) pp = &(*pp)->next;
        if (*pp) *pp = q->next;
        free(q);
    } else if (!kq->stopping) {
        ready_push(kq, q->head);
    }
    it->q = NULL;
}

void msp_keyq_complete(msp_keyq_t *kq, msp_keyq_item_t *it) {
    if (!it->revoked) {
        const rd_kafka_message_t *m = it->msg;
        int64_t next = msp_offtrack_done(kq->offtrack, rd_kafka_topic_name(m->rkt), m->partition,
                                         m->offset);
        if (next >= 0) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
                next;
            rd_kafka_resp_err_t err = rd_kafka_offsets_store(kq->consumer, l);
            if (err) MSP_WARN("kafka.offset_store", NULL, "%s", rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(l);
        }
    }
    if (it->active) kq->nactive--;
    it->active = 0;
    key_pop(kq, it);
    item_free(kq, it);
    msp_keyq_pump(kq);
}

void msp_keyq_abandon(msp_keyq_t *kq, msp_keyq_item_t *it) {
    if (it->active) kq->nactive--;
    it->active = 0;
    key_pop(kq, it);
    item_free(kq, it);
}

static void set_paused(msp_keyq_t *kq, int pause) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(kq->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts) return;
    if (pause) rd_kafka_pause_partitions(kq->consumer, parts);
    else rd_kafka_resume_partitions(kq->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    kq->paused = pause;
    MSP_INFO(pause ? "consumer.paused" : "consumer.resumed", NULL, "%d messages held",
             kq->nitems);
}

void msp_keyq_pump(msp_keyq_t *kq) {
    while (!kq->stopping && kq->ready_head && kq->nactive < kq->max_active) {
        msp_keyq_item_t *it = kq->ready_head;
        kq->ready_head = it->next_ready;
        if (!kq->ready_head) kq->ready_tail = NULL;
        it->next_ready = NULL;
        it->active = 1;
        kq->nactive++;
        kq->ops.start(it, kq->ops.opaque);
    }
    if (kq->stopping) return;
    if (!kq->paused && kq->nitems >= kq->max_queued) set_paused(kq, 1);
    else if (kq->paused && kq->nitems < kq->max_queued / 2) set_paused(kq, 0);
}

static void ready_unlink(msp_keyq_t *kq, msp_keyq_item_t *it) {
    msp_keyq_item_t **pp = &kq->ready_head, *prev = NULL;
    while (*pp && *pp != it) {
        prev = *pp;
        pp = &(*pp)->next_ready;
    }
    if (*pp) {
        *pp = it->next_ready;
        if (kq->ready_tail == it) kq->ready_tail = prev;
    }
    it->next_ready = NULL;
}

static void drop_queue(msp_keyq_t *kq, msp_keyq_key_t *q, const char *topic, int32_t partition) {
    msp_keyq_item_t *it = q->head;
    if (!it || it->msg->partition != partition ||
        strcmp(rd_kafka_topic_name(it->msg->rkt), topic) != 0)
        return;
    /* Every message of one key is on one partition: the queue goes as a whole. */
    msp_keyq_item_t *rest = it->next_key;
    it->next_key = NULL;
    q->tail = it;
    while (rest) {
        msp_keyq_item_t *n = rest->next_key;
        rest->q = NULL;
        item_free(kq, rest);
        rest = n;
    }
    it->revoked = 1;
    if (!it->active) {
        ready_unlink(kq, it);
        msp_keyq_abandon(kq, it);
    }
    /* active: abandoned by its owner when its timer, call or delivery report comes back */
}

void msp_keyq_revoked(msp_keyq_t *kq, const char *topic, int32_t partition) {
    for (int b = 0; b < KEYQ_BUCKETS; b++) {
        msp_keyq_key_t *q = kq->buckets[b];
        while (q) {
            msp_keyq_key_t *next = q->next;   /* drop_queue may free q */
            drop_queue(kq, q, topic, partition);
            q = next;
        }
    }
    msp_offtrack_forget(kq->offtrack, topic, partition);
}

int msp_keyq_held(const msp_keyq_t *kq) { return kq->nitems; }
int msp_keyq_active(const msp_keyq_t *kq) { return kq->nactive; }
int msp_keyq_paused(const msp_keyq_t *kq) { return kq->paused; }
int msp_keyq_full(const msp_keyq_t *kq) { return kq->nitems >= kq->max_queued; }
int msp_keyq_stopped(const msp_keyq_t *kq) { return kq->stopping; }

void msp_keyq_stop(msp_keyq_t *kq) {
    if (!kq) return;
    kq->stopping = 1;
    kq->ready_head = kq->ready_tail = NULL;
}

void msp_keyq_destroy(msp_keyq_t *kq) {
    if (!kq) return;
    kq->stopping = 1;
    kq->ready_head = kq->ready_tail = NULL;
    for (int b = 0; b < KEYQ_BUCKETS; b++) {
        msp_keyq_key_t *q = kq->buckets[b];
        while (q) {
            msp_keyq_key_t *next = q->next;
            msp_keyq_item_t *it = q->head;
            while (it) {
                msp_keyq_item_t *n = it->next_key;
                item_free(kq, it);
                it = n;
            }
            free(q);
            q = next;
        }
        kq->buckets[b] = NULL;
    }
    free(kq);
}
