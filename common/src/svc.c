/*
 * svc.c — event-loop wiring shared by the Kafka workers, and the keyed workers' Kafka side
 * (see svc.h).
 */
#include "mspsync/svc.h"
#include "mspsync/trace.h"

#include "mspsync/priority.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/http.h>

#include "mspsync/backoff.h"
#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/log.h"
#include "mspsync/redis.h"
#include "mspsync/statekeys.h"

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
    if (!msp_lifecycle_running()) {
        MSP_INFO("shutdown", NULL, "stop requested (SIGINT/SIGTERM)");
        event_base_loopbreak(s->base);
        return;
    }
    s->on_tick(s->arg);
}

static int make_pipe(int p[2]) {
    if (pipe(p) != 0) return -1;
    for (int i = 0; i < 2; i++) fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
    return 0;
}

void msp_svc_init(msp_svc_t *s, struct event_base *base) {
    memset(s, 0, sizeof(*s));
    s->consumer_pipe[0] = s->consumer_pipe[1] = s->producer_pipe[0] = s->producer_pipe[1] = -1;
    s->base = base;
}

int msp_svc_wire(msp_svc_t *s, rd_kafka_t *consumer, rd_kafka_t *producer, int tick_ms,
                 void (*on_consumer)(void *), void (*on_producer)(void *),
                 void (*on_tick)(void *), void *arg, char *errstr, size_t errstr_size) {
    struct event_base *base = s->base;
    s->on_consumer = on_consumer;
    s->on_producer = on_producer;
    s->on_tick = on_tick;
    s->arg = arg;
    if ((consumer && make_pipe(s->consumer_pipe)) || make_pipe(s->producer_pipe)) {
        snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
        return -1;
    }
    if (consumer) {
        rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(consumer);
        rd_kafka_queue_io_event_enable(cq, s->consumer_pipe[1], "1", 1);
        rd_kafka_queue_destroy(cq);
        s->consumer_ev = event_new(base, s->consumer_pipe[0], EV_READ | EV_PERSIST, consumer_cb, s);
    }
    rd_kafka_queue_t *pq = rd_kafka_queue_get_main(producer);
    rd_kafka_queue_io_event_enable(pq, s->producer_pipe[1], "1", 1);
    rd_kafka_queue_destroy(pq);
    s->producer_ev = event_new(base, s->producer_pipe[0], EV_READ | EV_PERSIST, producer_cb, s);
    s->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, s);
    if ((consumer && !s->consumer_ev) || !s->producer_ev || !s->tick_ev) {
        snprintf(errstr, errstr_size, "event_new failed");
        return -1;
    }
    if (s->consumer_ev) event_add(s->consumer_ev, NULL);
    event_add(s->producer_ev, NULL);
    struct timeval tick = {tick_ms / 1000, (tick_ms % 1000) * 1000};
    event_add(s->tick_ev, &tick);
    return 0;
}

int msp_svc_write_port_file(const char *path, int port) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    int ok = fprintf(f, "%d\n", port) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int msp_svc_serve_http(msp_svc_t *s, struct evhttp *http, const char *bind, int port,
                       const char *port_file, msp_metrics_t *m, msp_ready_cb *ready,
                       void *opaque) {
    s->ops = http;
    s->ops_sock = msp_ops_bind(http, bind, port, &s->ops_port, m, ready, opaque);
    if (!s->ops_sock) {
        MSP_ERROR("init.failed", NULL, "cannot listen on %s:%d for /healthz /readyz /metrics: %s",
                  bind, port, strerror(errno));
        return -1;
    }
    if (port_file && port_file[0] && msp_svc_write_port_file(port_file, s->ops_port) != 0) {
        MSP_ERROR("init.failed", NULL, "cannot write MSPSYNC_PORT_FILE %s: %s", port_file,
                  strerror(errno));
        return -1;
    }
    return 0;
}

int msp_svc_serve_ops(msp_svc_t *s, const char *bind, int port, const char *port_file,
                      msp_metrics_t *m, msp_ready_cb *ready, void *opaque) {
    struct evhttp *http = evhttp_new(s->base);
    if (!http) {
        MSP_ERROR("init.failed", NULL, "out of memory");
        return -1;
    }
    int rc = msp_svc_serve_http(s, http, bind, port, port_file, m, ready, opaque);
    s->ops_owned = 1;
    return rc;
}

void msp_svc_stop_accepting(msp_svc_t *s) {
    if (s->ops && s->ops_sock) evhttp_del_accept_socket(s->ops, s->ops_sock);
    s->ops_sock = NULL;
}

void msp_svc_close(msp_svc_t *s) {
    if (s->ops && s->ops_owned) evhttp_free(s->ops);
    struct event *evs[] = {s->consumer_ev, s->producer_ev, s->tick_ev};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i]) event_free(evs[i]);
    for (int i = 0; i < 2; i++) {
        if (s->consumer_pipe[i] >= 0) close(s->consumer_pipe[i]);
        if (s->producer_pipe[i] >= 0) close(s->producer_pipe[i]);
    }
    msp_svc_init(s, NULL);
}

/* ------------------------------------------------------------------- keyed workers */

int msp_svc_conf_apply(const char *service, const msp_svc_conf_t *conf) {
    char errstr[512];
    msp_log_init(service, conf->log_level);
    if (msp_kafka_configure(&conf->kafka, conf->topic_prefix, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("config.invalid", NULL, "%s", errstr);
        return -1;
    }
    msp_kafka_group_instance_set(conf->group_instance_id);
    return 0;
}

int msp_svc_configure(const char *service, const msp_config_entry_t *tbl, int argc, char **argv,
                      const msp_svc_conf_t *conf, msp_secret_key_t *key) {
    char errstr[512];
    int rc = msp_config_load(service, tbl, argc, argv, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "mspsync-%s: %s\n", service, errstr);
        return 2;
    }
    if (msp_svc_conf_apply(service, conf) != 0) {
        msp_config_free(tbl);
        return 2;
    }
    /* Before any thread starts: librdkafka's threads inherit it (priority.h). */
    /* 0 (also every service whose table has no MSPSYNC_NICE row) keeps the niceness the process
     * was started with: lowering it would need CAP_SYS_NICE and only log a warning. */
    if (conf->nice > 0)
        msp_priority_apply((int)conf->nice);
    if (key && msp_secret_key_load(key, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("config.invalid", NULL, "%s", errstr);
        msp_config_free(tbl);
        return 2;
    }
    return -1;
}

static void worker_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t *parts, void *opaque) {
    msp_svc_worker_t *w = opaque;
    /* parts is the change under COOPERATIVE, the whole assignment under EAGER (librdkafka
     * < 2.3, see msp_kafka_assignor): counting and revoking per partition is right for both. */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        msp_kafka_rebalance_apply(rk, err, parts);
        /* librdkafka keeps a partition's pause across a revoke and a new assignment: one paused
         * while this worker last had it and revoked before the resume would come back paused
         * for good. Every assigned partition gets the state of now. */
        if (w->kq && msp_keyq_paused(w->kq)) rd_kafka_pause_partitions(rk, parts);
        else if (parts->cnt > 0)
            rd_kafka_resume_partitions(rk, parts);
        w->assigned_partitions += parts->cnt;
    } else {
        for (int i = 0; i < parts->cnt; i++) {
            if (w->kq) msp_keyq_revoked(w->kq, parts->elems[i].topic, parts->elems[i].partition);
            if (w->revoked) w->revoked(w->arg, parts->elems[i].topic, parts->elems[i].partition);
        }
        msp_kafka_rebalance_apply(rk, err, parts);
        w->assigned_partitions -= parts->cnt;
        if (w->assigned_partitions < 0) w->assigned_partitions = 0;
    }
    MSP_INFO("kafka.rebalance", NULL, "%s %d partitions, now %d",
             err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked", parts->cnt,
             w->assigned_partitions);
    msp_metric_set(w->metrics, w->gauge_partitions, NULL, w->assigned_partitions);
}

static void worker_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    msp_svc_worker_t *w = opaque;
    if (msp_trace_journal_report(msg))
        return; /* a trace journal record (trace.h): nothing of the worker's */
    w->delivery_report(w->arg, msg);
}

int msp_svc_worker_open(msp_svc_worker_t *w, int max_active, int max_queued,
                        const msp_keyq_ops_t *ops) {
    char errstr[512];
    w->producer = msp_kafka_producer_new(w->conf->brokers, w->client_id, worker_dr_cb, w, errstr,
                                         sizeof(errstr));
    const char *topics[] = {msp_topic(w->topic), NULL};
    w->consumer = w->producer ? msp_kafka_consumer_new(w->conf->brokers, w->conf->group,
                                                       w->client_id, topics, worker_rebalance_cb,
                                                       w, errstr, sizeof(errstr))
                              : NULL;
    if (!w->producer || !w->consumer) {
        MSP_ERROR("kafka.init_failed", NULL, "%s", errstr);
        return -1;
    }
    msp_trace_journal_init(w->producer, w->metrics); /* the entries this worker appends */
    w->offtrack = msp_offtrack_new();
    w->kq = w->offtrack && ops ? msp_keyq_new(w->consumer, w->offtrack, max_active, max_queued,
                                              ops)
                               : NULL;
    if (!w->offtrack || (ops && !w->kq)) {
        MSP_ERROR("init.failed", NULL, "out of memory");
        return -1;
    }
    return 0;
}

void msp_svc_worker_gauges(msp_svc_worker_t *w) {
    if (!w->kq) return;
    msp_metric_set(w->metrics, w->gauge_held, NULL, msp_keyq_held(w->kq));
    msp_metric_set(w->metrics, w->gauge_active, NULL, msp_keyq_active(w->kq));
}

/* Whether the worker takes messages now: a keyed worker's queue may be stopped or full. */
static int worker_taking(msp_svc_worker_t *w) {
    return !w->kq || (!msp_keyq_stopped(w->kq) && !msp_keyq_paused(w->kq));
}

/* The consumer queue became non-empty (or the tick): take messages until the queue is full. */
static void worker_consume(msp_svc_worker_t *w) {
    rd_kafka_message_t *m;
    int budget = 1000;
    while (worker_taking(w) && budget-- > 0 &&
           (m = rd_kafka_consumer_poll(w->consumer, 0))) {
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                MSP_WARN("kafka.consumer_error", NULL, "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        w->accept(w->arg, m);   /* takes m */
        if (w->kq && msp_keyq_full(w->kq)) break;
    }
    if (w->kq) msp_keyq_pump(w->kq);
    msp_svc_worker_gauges(w);
}

static void worker_on_consumer(void *arg) { worker_consume(arg); }

static void worker_on_producer(void *arg) {
    rd_kafka_poll(((msp_svc_worker_t *)arg)->producer, 0);
}

/* The answer of the probe: Redis answered (aredis notes when), and whether its state is lost. */
static void worker_probed(void *arg, int lost) {
    msp_svc_worker_t *w = arg;
    w->aredis_probing = 0;
    if (lost >= 0)
        w->aredis_lost = lost;
}

/* Probe the async connection once a second (is the state lost? statekeys.h). */
static void worker_probe(msp_svc_worker_t *w) {
    int64_t now = msp_now_ms();
    if (!w->aredis || w->aredis_probing || now - w->aredis_probe_ms < 1000)
        return;
    w->aredis_probe_ms = now;
    w->aredis_probing = msp_state_lost_async(w->aredis, worker_probed, w) == 0;
}

/* Safety net: the io-event only fires on empty → non-empty; a paused consumer still polls
 * (rebalances and errors are served from rd_kafka_consumer_poll). */
static void worker_on_tick(void *arg) {
    msp_svc_worker_t *w = arg;
    rd_kafka_poll(w->producer, 0);
    if (w->kq && msp_keyq_paused(w->kq)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 0);
        if (m) {
            if (m->err) rd_kafka_message_destroy(m);
            else w->accept(w->arg, m);
        }
        msp_keyq_pump(w->kq);
        msp_svc_worker_gauges(w);
    } else {
        worker_consume(w);
    }
    worker_probe(w);
    if (w->tick) w->tick(w->arg);
}

/* Redis for /readyz, without waiting: the async connection answered lately (and its state is
 * not lost), or the blocking one of a service without it. @returns 1, or 0 with why. */
static int worker_redis_ready(msp_svc_worker_t *w, char *why, size_t why_size) {
    if (w->aredis) {
        worker_probe(w);
        int64_t answered = msp_aredis_answered_ms(w->aredis);
        if (!answered || msp_now_ms() - answered > MSP_SVC_REDIS_ANSWER_MS) {
            snprintf(why, why_size, "redis unavailable");
            return 0;
        }
        if (w->aredis_lost) {
            snprintf(why, why_size, "redis lost its state: waiting for the restore from kafka");
            return 0;
        }
        return 1;
    }
    if (!msp_redis_ok(w->redis, w->conf->redis_url)) {
        snprintf(why, why_size, "redis unavailable");
        return 0;
    }
    if (msp_state_lost(*w->redis) == 1) {
        /* the workers wait for the gateway's restore */
        snprintf(why, why_size, "redis lost its state: waiting for the restore from kafka");
        return 0;
    }
    return 1;
}

static int worker_ready(void *opaque, char *why, size_t why_size) {
    msp_svc_worker_t *w = opaque;
    if (!w->consumer) {
        snprintf(why, why_size, "%s", msp_kafka_waiting_why());
        return 0;
    }
    if (!worker_redis_ready(w, why, why_size))
        return 0;
    if (w->assigned_partitions == 0) {
        snprintf(why, why_size, "no %s partitions assigned yet", w->topic);
        return 0;
    }
    return 1;
}

static int worker_listen(msp_svc_worker_t *w, msp_svc_t *svc, struct event_base *base) {
    msp_svc_init(svc, base);
    return msp_svc_serve_ops(svc, w->conf->metrics_bind, (int)w->conf->metrics_port,
                             w->conf->port_file, w->metrics, worker_ready, w);
}

int msp_svc_worker_start(msp_svc_worker_t *w, msp_svc_t *svc, struct event_base *base,
                         int max_active, int max_queued, const msp_keyq_ops_t *ops) {
    if (worker_listen(w, svc, base) != 0) return 1;
    int made = msp_lifecycle_ensure_topics(w->conf->brokers, base);
    if (made != 0) return made == -2 ? 2 : 0; /* a configuration error, or stopped */
    return msp_svc_worker_open(w, max_active, max_queued, ops) != 0 ? 1 : -1;
}

int msp_svc_worker_serve(msp_svc_worker_t *w, msp_svc_t *svc) {
    char errstr[512];
    if (msp_svc_wire(svc, w->consumer, w->producer, 100, worker_on_consumer, worker_on_producer,
                     worker_on_tick, w, errstr, sizeof(errstr)) != 0) {
        MSP_ERROR("init.failed", NULL, "%s", errstr);
        return -1;
    }
    return 0;
}

void msp_svc_worker_close(msp_svc_worker_t *w) {
    msp_aredis_cancel(w->aredis, w); /* the probe's answer no longer comes here */
    w->aredis_probing = 0;
    /* the stop is bounded (lifecycle.h): what does not make it replays from uncommitted offsets */
    if (w->producer) rd_kafka_flush(w->producer, msp_lifecycle_budget_ms(10000));
    if (w->flushed) w->flushed(w->arg);
    if (w->consumer) rd_kafka_consumer_close(w->consumer); /* its revoke callback uses the queue */
    msp_keyq_destroy(w->kq);
    w->kq = NULL;
    if (w->consumer) rd_kafka_destroy(w->consumer);
    if (w->producer) {
        msp_trace_journal_init(NULL, NULL);
        rd_kafka_destroy(w->producer);
    }
    w->consumer = w->producer = NULL;
    msp_offtrack_destroy(w->offtrack);
    w->offtrack = NULL;
}
