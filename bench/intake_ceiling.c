/*
 * intake_ceiling.c — the ceiling for the gateway's webhook intake: the least an HTTP → Kafka
 * server with the gateway's promise does. Every POST's body is produced as is to one topic (key
 * = the last path segment) and answered 202 only after Kafka's delivery report, 503 when Kafka
 * did not take it. Same libevent evhttp server, same producer settings (msp_kafka_producer_new:
 * idempotent, acks=all, the gateway's 2 ms linger), same delivery-report wakeup (msp_svc_wire:
 * the producer's queue signals a pipe watched by the loop). No signature, no JSON, no Redis.
 *
 * Usage: mspsync-bench-intake-ceiling BROKERS TOPIC PORT_FILE [LINGER_MS]
 * Listens on 127.0.0.1 on a free port, written to PORT_FILE; runs until SIGINT/SIGTERM.
 * A bench tool: a client that hangs up before its answer is not handled (wrk does not).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "mspsync/kafka.h"
#include "mspsync/lifecycle.h"
#include "mspsync/svc.h"

typedef struct {
    rd_kafka_t *rk;
    const char *topic;
} ceiling_t;

/* Kafka took the record (or did not): answer its request. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    (void)opaque;
    struct evhttp_request *req = msg->_private;
    struct evbuffer *out = evbuffer_new();
    if (out)
        evbuffer_add_printf(out, "{\"status\":\"%s\"}", msg->err ? "failed" : "accepted");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, msg->err ? 503 : 202, msg->err ? "Service Unavailable" : "Accepted",
                      out);
    if (out)
        evbuffer_free(out);
}

static void on_producer(void *arg) { rd_kafka_poll(((ceiling_t *)arg)->rk, 0); }

static void request_cb(struct evhttp_request *req, void *arg) {
    ceiling_t *c = arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_send_error(req, 405, NULL);
        return;
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    const char *key = path ? strrchr(path, '/') : NULL;
    key = key ? key + 1 : "";
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const void *body = len ? (const void *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
    if (msp_kafka_produce(c->rk, c->topic, key, strlen(key), body, len, NULL, req) != 0)
        evhttp_send_error(req, 503, NULL);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s BROKERS TOPIC PORT_FILE [LINGER_MS]\n", argv[0]);
        return 2;
    }
    msp_lifecycle_signals();
    msp_kafka_linger_set(argc > 4 ? atoi(argv[4]) : 2);
    char errstr[512];
    ceiling_t c = {.topic = argv[2]};
    c.rk =
        msp_kafka_producer_new(argv[1], "bench-intake-ceiling", dr_cb, &c, errstr, sizeof(errstr));
    if (!c.rk) {
        fprintf(stderr, "kafka: %s\n", errstr);
        return 1;
    }
    struct event_config *ecfg = event_config_new(); /* the gateway's loop settings (main.c) */
    if (ecfg)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = ecfg ? event_base_new_with_config(ecfg) : NULL;
    if (ecfg)
        event_config_free(ecfg);
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    struct evhttp_bound_socket *sock =
        http ? evhttp_bind_socket_with_handle(http, "127.0.0.1", 0) : NULL;
    msp_svc_t svc;
    if (!sock) {
        fprintf(stderr, "cannot listen\n");
        return 1;
    }
    msp_svc_init(&svc, base);
    if (msp_svc_wire(&svc, NULL, c.rk, 100, NULL, on_producer, on_producer, &c, errstr,
                     sizeof(errstr)) != 0) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    evhttp_set_gencb(http, request_cb, &c);
    struct sockaddr_storage ss;
    ev_socklen_t sl = sizeof(ss);
    getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (msp_svc_write_port_file(argv[3], port) != 0) {
        fprintf(stderr, "cannot write %s\n", argv[3]);
        return 1;
    }
    while (msp_lifecycle_running())
        event_base_dispatch(base);
    rd_kafka_flush(c.rk, 10000);
    evhttp_free(http);
    rd_kafka_destroy(c.rk);
    msp_svc_close(&svc);
    event_base_free(base);
    return 0;
}
