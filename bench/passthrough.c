/*
 * passthrough.c — the ceiling for the normalizer: consume a topic and produce the same bytes to
 * another topic, with the same consumer and producer settings as our services (common/kafka.c),
 * the same batch size and the same durability order (produce, flush, store offsets). It stops
 * when it has forwarded N messages and prints its rate.
 *
 * Usage: mspsync-bench-passthrough BROKERS GROUP IN_TOPIC OUT_TOPIC N [BATCH]
 * Prints: passthrough records=N seconds=S records_per_s=R   (timed from the first message)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s BROKERS GROUP IN_TOPIC OUT_TOPIC N [BATCH]\n", argv[0]);
        return 2;
    }
    const char *brokers = argv[1], *group = argv[2], *in = argv[3], *out = argv[4];
    long want = atol(argv[5]);
    int batch = argc > 6 ? atoi(argv[6]) : 500;
    char errstr[512];
    rd_kafka_t *p = msp_kafka_producer_new(brokers, "bench-passthrough", NULL, NULL, errstr, sizeof(errstr));
    const char *topics[] = {in, NULL};
    rd_kafka_t *c = p ? msp_kafka_consumer_new(brokers, group, "bench-passthrough", topics, NULL, NULL,
                                               errstr, sizeof(errstr))
                      : NULL;
    if (!c) {
        fprintf(stderr, "kafka: %s\n", errstr);
        return 1;
    }
    rd_kafka_message_t **msgs = calloc((size_t)batch, sizeof(*msgs));
    long done = 0;
    int64_t t0 = 0;
    while (done < want) {
        int n = 0;
        while (n < batch) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c, n ? 5 : 200);
            if (!m) break;
            if (m->err) {
                rd_kafka_message_destroy(m);
                continue;
            }
            msgs[n++] = m;
        }
        if (!n) continue;
        if (!t0) t0 = msp_now_ms();
        for (int i = 0; i < n; i++)
            msp_kafka_produce(p, out, msgs[i]->key, msgs[i]->key_len, msgs[i]->payload, msgs[i]->len,
                              NULL, NULL);
        rd_kafka_flush(p, 30000);
        rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++) {
            rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
                offs, rd_kafka_topic_name(msgs[i]->rkt), msgs[i]->partition);
            if (!tp)
                tp = rd_kafka_topic_partition_list_add(offs, rd_kafka_topic_name(msgs[i]->rkt),
                                                       msgs[i]->partition);
            tp->offset = msgs[i]->offset + 1;
            rd_kafka_message_destroy(msgs[i]);
        }
        rd_kafka_offsets_store(c, offs);
        rd_kafka_topic_partition_list_destroy(offs);
        done += n;
    }
    double secs = (double)(msp_now_ms() - t0) / 1000.0;
    printf("passthrough records=%ld seconds=%.3f records_per_s=%.0f\n", done, secs, done / secs);
    free(msgs);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    return 0;
}
