/*
 * ops.h — what operators scrape and probe on every service: /healthz, /readyz, /metrics.
 *
 * A tiny metrics registry (counters and gauges, optional label sets, Prometheus text exposition
 * format 0.0.4) and the three endpoints mounted on an evhttp server — the gateway mounts them on
 * its API server, the workers on a small server of their own (MSPSYNC_METRICS_PORT).
 * Single-threaded: use from the event-loop thread only.
 *
 *   /healthz  200 {"status":"ok"} while the process runs its loop
 *   /readyz   200 {"status":"ready"} or 503 {"status":"not ready","reason":"..."} from ready_cb
 *             (a fixed phrase: these endpoints are not authenticated)
 *   /metrics  text/plain; version=0.0.4
 */
#ifndef MSPSYNC_OPS_H
#define MSPSYNC_OPS_H

#include <stddef.h>

struct event_base;
struct evhttp;
struct evhttp_bound_socket;

typedef struct msp_metrics_s msp_metrics_t;

/** @brief New registry; every series gets the label service="<service>". */
msp_metrics_t *msp_metrics_new(const char *service);
void msp_metrics_destroy(msp_metrics_t *m);  /**< NULL-safe */

/** @brief Declare a metric once: type is "counter" or "gauge". Undeclared names default to gauge. */
void msp_metric_declare(msp_metrics_t *m, const char *name, const char *type, const char *help);

/**
 * @brief Add v to a series (counter) / set a series (gauge). labels is the inside of the braces
 * without the service label, e.g. "route=\"assets\",code=\"200\"", or NULL.
 */
void msp_metric_add(msp_metrics_t *m, const char *name, const char *labels, double v);
void msp_metric_set(msp_metrics_t *m, const char *name, const char *labels, double v);

/** @brief Current value of a series (0 when absent). */
double msp_metric_get(const msp_metrics_t *m, const char *name, const char *labels);

/** @brief The exposition text. @returns a new string (caller frees). */
char *msp_metrics_render(const msp_metrics_t *m);

/**
 * Readiness: return 1 ready, 0 not ready with a reason in why. /readyz answers anyone, so why is
 * a fixed phrase ("redis unavailable", "no sync.jobs partitions assigned yet"): never error
 * text, an address or any other setting. The callback logs the details (addresses masked with
 * msp_url_mask).
 */
typedef int (msp_ready_cb)(void *opaque, char *why, size_t why_size);

/** @brief Mount /healthz, /readyz, /metrics on an existing server. @returns 0 or -1. */
int msp_ops_mount(struct evhttp *http, msp_metrics_t *m, msp_ready_cb *ready, void *opaque);

/**
 * @brief Bind http (a server of the caller's: the gateway's API, a worker's small ops server) to
 * bind:port (port 0 = any free port; the bound port is written to *bound_port when non-NULL) and
 * mount the endpoints on it. @returns the listening socket (borrowed: the server owns it; stop
 * accepting with evhttp_del_accept_socket) or NULL (errno from the bind, if it failed).
 */
struct evhttp_bound_socket *msp_ops_bind(struct evhttp *http, const char *bind, int port,
                                         int *bound_port, msp_metrics_t *m, msp_ready_cb *ready,
                                         void *opaque);

#endif
