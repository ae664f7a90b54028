/*
 * test_keyq.c — the promises of mspsync/keyq.h, on real librdkafka messages.
 *
 * keyq works on consumed messages, a consumer it pauses and an offset store it writes, so the
 * test runs librdkafka's in-process mock cluster (no broker, no network beyond loopback): a
 * producer puts six keyed messages on topic "kq" (partition 0: offsets 0-3, partition 1: 0-1),
 * and each test reads them with its own consumer group, hands them to a queue and checks:
 * - messages of one key start one after the other, in arrival order;
 * - different keys run at once, never more than max_active;
 * - consumption pauses when max_queued messages are held and resumes below half;
 * - an offset is stored (and so committed) only when it and every lower offset of its partition
 *   are complete; an abandoned or revoked message never stores one;
 * - a redelivered offset is refused; a revoked partition's queued messages are dropped;
 * - after stop nothing starts, and destroy frees every held item.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "mspsync/keyq.h"
#include "mspsync/offtrack.h"

#define TOPIC "kq"
#define NP0 4 /* messages on partition 0 */
#define NP1 2 /* messages on partition 1 */

/* The caller's item: keyq's item first, as keyq.h asks. */
typedef struct item_s {
    msp_keyq_item_t base;
    int id;
} item_t;

/* One test's world: a consumer of its own group, the messages it read, what keyq did. */
typedef struct world_s {
    rd_kafka_t *consumer;
    msp_offtrack_t *offtrack;
    msp_keyq_t *kq;
    rd_kafka_message_t *p0[NP0], *p1[NP1]; /* not yet handed to the queue */
    item_t *started[16];                   /* in start order */
    int nstarted, destroyed;
} world_t;

static rd_kafka_t *producer; /* owns the mock cluster */
static char bootstraps[256];

static void on_start(msp_keyq_item_t *it, void *opaque) {
    world_t *w = opaque;
    w->started[w->nstarted++] = (item_t *)it;
}

static void on_destroy(msp_keyq_item_t *it, void *opaque) {
    world_t *w = opaque;
    w->destroyed++;
    free(it);
}

static void conf_set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK)
        fail_msg("%s: %s", name, err);
}

static void produce(int32_t partition, const char *key, int n) {
    for (int i = 0; i < n; i++)
        assert_int_equal(rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(TOPIC),
                                           RD_KAFKA_V_PARTITION(partition),
                                           RD_KAFKA_V_KEY(key, strlen(key)),
                                           RD_KAFKA_V_VALUE("v", 1), RD_KAFKA_V_END),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
}

static int start_cluster(void **state) {
    (void)state;
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "test.mock.num.brokers", "1");
    conf_set(conf, "log_level", "3");
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!producer)
        fail_msg("producer: %s", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(producer);
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, TOPIC, 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    snprintf(bootstraps, sizeof bootstraps, "%s", rd_kafka_mock_cluster_bootstraps(mc));
    produce(0, "a", NP0);
    produce(1, "b", NP1);
    assert_int_equal(rd_kafka_flush(producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    return 0;
}

static int stop_cluster(void **state) {
    (void)state;
    rd_kafka_destroy(producer);
    return 0;
}

/* A consumer of group `group`, assigned both partitions from offset 0. */
static rd_kafka_t *new_consumer(const char *group) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", bootstraps);
    conf_set(conf, "group.id", group);
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "enable.auto.offset.store", "false");
    conf_set(conf, "fetch.wait.max.ms", "5");
    conf_set(conf, "fetch.error.backoff.ms", "5");
    conf_set(conf, "reconnect.backoff.ms", "5");
    conf_set(conf, "retry.backoff.ms", "5");
    conf_set(conf, "log_level", "3");
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!c)
        fail_msg("consumer: %s", err);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, TOPIC, 0)->offset = 0;
    rd_kafka_topic_partition_list_add(l, TOPIC, 1)->offset = 0;
    assert_int_equal(rd_kafka_assign(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    return c;
}

/* Read all six messages into w->p0 / w->p1 by offset. */
static void read_all(world_t *w) {
    int got = 0;
    for (int tries = 0; got < NP0 + NP1 && tries < 200; tries++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 100);
        if (!m)
            continue;
        rd_kafka_message_t **slot = NULL;
        if (!m->err && m->partition == 0 && m->offset < NP0)
            slot = &w->p0[m->offset];
        if (!m->err && m->partition == 1 && m->offset < NP1)
            slot = &w->p1[m->offset];
        if (!slot || *slot) {
            rd_kafka_message_destroy(m);
            continue;
        }
        *slot = m;
        got++;
    }
    if (got < NP0 + NP1)
        fail_msg("read %d of %d messages from the mock cluster", got, NP0 + NP1);
}

static world_t *world_new(const char *group, int max_active, int max_queued) {
    world_t *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->consumer = new_consumer(group);
    w->offtrack = msp_offtrack_new();
    msp_keyq_ops_t ops = {on_start, on_destroy, w};
    w->kq = msp_keyq_new(w->consumer, w->offtrack, max_active, max_queued, &ops);
    assert_non_null(w->kq);
    read_all(w);
    return w;
}

static void world_destroy(world_t *w) {
    msp_keyq_stop(w->kq);
    msp_keyq_destroy(w->kq);
    for (int i = 0; i < NP0; i++)
        if (w->p0[i])
            rd_kafka_message_destroy(w->p0[i]);
    for (int i = 0; i < NP1; i++)
        if (w->p1[i])
            rd_kafka_message_destroy(w->p1[i]);
    msp_offtrack_destroy(w->offtrack);
    rd_kafka_consumer_close(w->consumer);
    rd_kafka_destroy(w->consumer);
    free(w);
}

/* Hand the message at *slot to the queue under key; @returns the item (held by the queue). */
static item_t *give(world_t *w, rd_kafka_message_t **slot, const char *key, int id) {
    item_t *it = calloc(1, sizeof *it);
    assert_non_null(it);
    it->id = id;
    assert_int_equal(msp_keyq_accept(w->kq, &it->base, *slot), 0);
    *slot = NULL;
    assert_int_equal(msp_keyq_push(w->kq, &it->base, key), 0);
    return it;
}

/* The offset committed for partition 0 after committing what is stored (-1: none). */
static int64_t committed_p0(world_t *w) {
    rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, NULL, 0);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return -1;
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, TOPIC, 0);
    assert_int_equal(rd_kafka_committed(w->consumer, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    int64_t off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off < 0 ? -1 : off;
}

/* ------------------------------------------------------------------------------------------- */

static void one_key_runs_in_arrival_order_one_at_a_time(void **state) {
    (void)state;
    world_t *w = world_new("g-order", 8, 100);
    item_t *it[3];
    for (int i = 0; i < 3; i++)
        it[i] = give(w, &w->p0[i], "asset-1", i);
    msp_keyq_pump(w->kq);
    assert_int_equal(w->nstarted, 1); /* 8 slots free, but one key runs alone */
    assert_ptr_equal(w->started[0], it[0]);
    msp_keyq_complete(w->kq, &it[0]->base);
    assert_int_equal(w->nstarted, 2);
    assert_ptr_equal(w->started[1], it[1]);
    assert_int_equal(msp_keyq_active(w->kq), 1);
    msp_keyq_complete(w->kq, &it[1]->base);
    assert_int_equal(w->nstarted, 3);
    assert_ptr_equal(w->started[2], it[2]);
    msp_keyq_complete(w->kq, &it[2]->base);
    assert_int_equal(msp_keyq_held(w->kq), 0);
    assert_int_equal(w->destroyed, 3);
    world_destroy(w);
}

static void different_keys_run_at_once_up_to_max_active(void **state) {
    (void)state;
    world_t *w = world_new("g-active", 2, 100);
    item_t *a = give(w, &w->p0[0], "k-a", 0);
    item_t *b = give(w, &w->p0[1], "k-b", 1);
    item_t *c = give(w, &w->p0[2], "k-c", 2);
    msp_keyq_pump(w->kq);
    assert_int_equal(w->nstarted, 2);
    assert_int_equal(msp_keyq_active(w->kq), 2);
    assert_ptr_equal(w->started[0], a);
    assert_ptr_equal(w->started[1], b);
    msp_keyq_complete(w->kq, &b->base); /* a slot frees: the waiting key starts */
    assert_int_equal(w->nstarted, 3);
    assert_ptr_equal(w->started[2], c);
    assert_int_equal(msp_keyq_active(w->kq), 2);
    msp_keyq_complete(w->kq, &a->base);
    msp_keyq_complete(w->kq, &c->base);
    assert_int_equal(msp_keyq_active(w->kq), 0);
    world_destroy(w);
}

static void consumption_pauses_when_full_and_resumes_below_half(void **state) {
    (void)state;
    world_t *w = world_new("g-pause", 1, 4);
    item_t *it[4];
    for (int i = 0; i < 4; i++)
        it[i] = give(w, &w->p0[i], "same-key", i);
    msp_keyq_pump(w->kq);
    assert_int_equal(msp_keyq_held(w->kq), 4);
    assert_true(msp_keyq_full(w->kq));
    assert_true(msp_keyq_paused(w->kq));
    msp_keyq_complete(w->kq, &it[0]->base); /* 3 held: not below half of 4 */
    assert_false(msp_keyq_full(w->kq));
    assert_true(msp_keyq_paused(w->kq));
    msp_keyq_complete(w->kq, &it[1]->base); /* 2 held: still not below half */
    assert_true(msp_keyq_paused(w->kq));
    msp_keyq_complete(w->kq, &it[2]->base); /* 1 held: resumed */
    assert_false(msp_keyq_paused(w->kq));
    msp_keyq_complete(w->kq, &it[3]->base);
    world_destroy(w);
}

static void offset_is_stored_only_when_every_lower_one_is_complete(void **state) {
    (void)state;
    world_t *w = world_new("g-offsets", 8, 100);
    item_t *it[3];
    for (int i = 0; i < 3; i++)
        it[i] = give(w, &w->p0[i], i == 0 ? "x" : i == 1 ? "y" : "z", i);
    msp_keyq_pump(w->kq);
    assert_int_equal(w->nstarted, 3);
    msp_keyq_complete(w->kq, &it[2]->base);
    msp_keyq_complete(w->kq, &it[1]->base);
    assert_int_equal(committed_p0(w), -1); /* offset 0 still in flight: nothing committable */
    msp_keyq_complete(w->kq, &it[0]->base);
    assert_int_equal(committed_p0(w), 3); /* all of 0..2 done: the next to consume is 3 */
    world_destroy(w);
}

static void abandoned_message_stores_no_offset(void **state) {
    (void)state;
    world_t *w = world_new("g-abandon", 8, 100);
    item_t *a = give(w, &w->p0[0], "x", 0);
    item_t *b = give(w, &w->p0[1], "y", 1);
    msp_keyq_pump(w->kq);
    msp_keyq_abandon(w->kq, &a->base); /* e.g. shutdown: another owner replays it */
    msp_keyq_complete(w->kq, &b->base);
    assert_int_equal(committed_p0(w), -1);
    assert_int_equal(w->destroyed, 2);
    world_destroy(w);
}

static void redelivered_offset_is_refused(void **state) {
    (void)state;
    world_t *w = world_new("g-redeliver", 8, 100);
    rd_kafka_message_t *m = w->p0[0];
    item_t *first = give(w, &w->p0[0], "x", 0);
    item_t dup = {.id = 1};
    assert_int_equal(msp_keyq_accept(w->kq, &dup.base, m), -1);
    assert_int_equal(msp_keyq_held(w->kq), 1);
    msp_keyq_pump(w->kq);
    msp_keyq_complete(w->kq, &first->base);
    world_destroy(w);
}

static void revoked_partition_drops_queued_and_marks_active(void **state) {
    (void)state;
    world_t *w = world_new("g-revoke", 8, 100);
    item_t *a0 = give(w, &w->p0[0], "x", 0);
    give(w, &w->p0[1], "x", 1); /* queued behind a0 */
    item_t *b0 = give(w, &w->p1[0], "y", 2);
    msp_keyq_pump(w->kq);
    assert_int_equal(w->nstarted, 2);
    msp_keyq_revoked(w->kq, TOPIC, 0);
    assert_int_equal(w->destroyed, 1); /* the queued one */
    assert_true(a0->base.revoked);
    assert_false(b0->base.revoked);      /* another partition */
    msp_keyq_complete(w->kq, &a0->base); /* its owner comes back: nothing stored */
    assert_int_equal(committed_p0(w), -1);
    assert_int_equal(w->nstarted, 2); /* and nothing of the key starts after it */
    msp_keyq_complete(w->kq, &b0->base);
    assert_int_equal(msp_keyq_held(w->kq), 0);
    world_destroy(w);
}

static void after_stop_nothing_starts_and_destroy_frees_all(void **state) {
    (void)state;
    world_t *w = world_new("g-stop", 8, 100);
    item_t *a = give(w, &w->p0[0], "x", 0);
    give(w, &w->p0[1], "x", 1); /* behind a */
    give(w, &w->p0[2], "y", 2);
    msp_keyq_pump(w->kq);
    assert_int_equal(w->nstarted, 2);
    msp_keyq_stop(w->kq);
    assert_true(msp_keyq_stopped(w->kq));
    msp_keyq_complete(w->kq, &a->base); /* the work in hand finishes; its key's next stays */
    msp_keyq_pump(w->kq);
    assert_int_equal(w->nstarted, 2);
    assert_int_equal(msp_keyq_held(w->kq), 2);
    msp_keyq_destroy(w->kq);
    w->kq = NULL;
    assert_int_equal(w->destroyed, 3);
    world_destroy(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_key_runs_in_arrival_order_one_at_a_time),
        cmocka_unit_test(different_keys_run_at_once_up_to_max_active),
        cmocka_unit_test(consumption_pauses_when_full_and_resumes_below_half),
        cmocka_unit_test(offset_is_stored_only_when_every_lower_one_is_complete),
        cmocka_unit_test(abandoned_message_stores_no_offset),
        cmocka_unit_test(redelivered_offset_is_refused),
        cmocka_unit_test(revoked_partition_drops_queued_and_marks_active),
        cmocka_unit_test(after_stop_nothing_starts_and_destroy_frees_all),
    };
    return cmocka_run_group_tests(tests, start_cluster, stop_cluster);
}
