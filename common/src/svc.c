/*
 * svc.c — event-loop wiring shared by the Kafka workers (see svc.h).
 */
#include "mspsync/svc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/http.h>

#include "mspsync/kafka.h"
#include "mspsync/log.h"

int msp_svc_ensure_topics(const char *brokers) {
    char errstr[512];
    for (int attempt = 0;; attempt++) {
        if (msp_kafka_ensure_topics(brokers, 6, 10000, errstr, sizeof(errstr)) == 0) return 0;
        if (attempt >= 30) {
            MSP_ERROR("kafka.unavailable", NULL, "%s", errstr);
            return -1;
        }
        MSP_WARN("kafka.unavailable", NULL, "%s (retrying)", errstr);
        sleep(1);
    }
}

static void drain_pipe(int fd) {
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void consumer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    msp_svc_t *s = arg;
    drain_pipe(fd);
    s->on_consumer(s->arg);
}

static void producer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    msp_svc_t *s = arg;
    drain_pipe(fd);
    s->on_producer(s->arg);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    msp_svc_t *s = arg;
    s->on_tick(s->arg);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    MSP_INFO("shutdown", NULL, "signal %d", (int)sig);
    event_base_loopbreak((struct event_base *)arg);
}

static int make_pipe(int p[2]) {
    if (pipe(p) != 0) return -1;
    for (int i = 0; i < 2; i++) fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
    return 0;
}

int msp_svc_wire(msp_svc_t *s, struct event_base *base, rd_kafka_t *consumer,
                 rd_kafka_t *producer, int tick_ms, void (*on_consumer)(void *),
                 void (*on_producer)(void *), void (*on_tick)(void *), void *arg, char *errstr,
                 size_t errstr_size) {
    memset(s, 0, sizeof(*s));
    s->consumer_pipe[0] = s->consumer_pipe[1] = s->producer_pipe[0] = s->producer_pipe[1] = -1;
    s->base = base;
    s->on_consumer = on_consumer;
    s->on_producer = on_producer;
    s->on_tick = on_tick;
    s->arg = arg;
    if (make_pipe(s->consumer_pipe) || make_pipe(s->producer_pipe)) {
        snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
        return -1;
    }
    rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(consumer);
    rd_kafka_queue_io_event_enable(cq, s->consumer_pipe[1], "1", 1);
    rd_kafka_queue_destroy(cq);
    rd_kafka_queue_t *pq = rd_kafka_queue_get_main(producer);
    rd_kafka_queue_io_event_enable(pq, s->producer_pipe[1], "1", 1);
    rd_kafka_queue_destroy(pq);
    s->consumer_ev = event_new(base, s->consumer_pipe[0], EV_READ | EV_PERSIST, consumer_cb, s);
    s->producer_ev = event_new(base, s->producer_pipe[0], EV_READ | EV_PERSIST, producer_cb, s);
    s->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, s);
    if (!s->consumer_ev || !s->producer_ev || !s->tick_ev) {
        snprintf(errstr, errstr_size, "event_new failed");
        return -1;
    }
    event_add(s->consumer_ev, NULL);
    event_add(s->producer_ev, NULL);
    struct timeval tick = {tick_ms / 1000, (tick_ms % 1000) * 1000};
    event_add(s->tick_ev, &tick);
    return 0;
}

int msp_svc_serve_ops(msp_svc_t *s, const char *bind, int port, const char *port_file,
                      msp_metrics_t *m, msp_ready_cb *ready, void *opaque) {
    s->ops = msp_ops_listen(s->base, bind, port, &s->ops_port, m, ready, opaque);
    if (!s->ops) {
        MSP_ERROR("init.failed", NULL, "cannot listen on %s:%d", bind, port);
        return -1;
    }
    if (port_file && port_file[0]) {
        FILE *pf = fopen(port_file, "w");
        if (pf) {
            fprintf(pf, "%d\n", s->ops_port);
            fclose(pf);
        }
    }
    s->sigint = evsignal_new(s->base, SIGINT, signal_cb, s->base);
    s->sigterm = evsignal_new(s->base, SIGTERM, signal_cb, s->base);
    event_add(s->sigint, NULL);
    event_add(s->sigterm, NULL);
    return 0;
}

void msp_svc_close(msp_svc_t *s) {
    if (s->ops) evhttp_free(s->ops);
    struct event *evs[] = {s->consumer_ev, s->producer_ev, s->tick_ev, s->sigint, s->sigterm};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i]) event_free(evs[i]);
    for (int i = 0; i < 2; i++) {
        if (s->consumer_pipe[i] >= 0) close(s->consumer_pipe[i]);
        if (s->producer_pipe[i] >= 0) close(s->producer_pipe[i]);
    }
    memset(s, 0, sizeof(*s));
}
