/*
 * sim_util.h — what the HTTP vendor simulators (syncro-sim, cwrmm-sim) share.
 *
 * Each simulator is one single-threaded libevent process serving a vendor API and a /_sim
 * control plane. The pieces below are the same in all of them, so they live here once:
 * clocks and hashes, allocation that aborts on OOM, date parsing, a string-keyed hash map, a
 * timestamp ring for sliding windows, per-status counters, a configuration table that serves
 * GET/PUT /_sim/config, replies that may be sent at once or after a delay, and the server
 * skeleton (argument parsing, listening, port file, signals, shutdown).
 *
 * Invariants:
 *  - Nothing here is thread-safe; everything runs on the simulator's one event loop.
 *  - Allocation failure is fatal (the x* functions print "<sim_name>: out of memory" and abort):
 *    a simulator is test tooling, a partial answer would only hide the problem.
 *  - Set sim_name before calling anything that may print.
 *
 * mtp-sim is a client (libcurl, no libevent) and keeps its own small helpers.
 */
#ifndef MSPSYNC_SIM_UTIL_H
#define MSPSYNC_SIM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>

#define SIM_MAX_BODY (1u << 20) /* request body limit (admin and vendor) */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Words that make plausible business names ("<A> <B>") in generated data. */
extern const char *const BIZ_A[16];
extern const char *const BIZ_B[12];

/* Windows editions agents report: the full product name ("Microsoft Windows 11 Pro") and build. */
typedef struct sim_os {
    const char *name, *build;
} sim_os;
extern const sim_os OS_WORKSTATION[4];
extern const sim_os OS_SERVER[3];

/** Program name used in messages ("syncro-sim"); borrowed, set once by main. */
extern const char *sim_name;

/* ------------------------------------------------------------------------------------------ */
/* clocks, hashes, allocation, parsing                                                         */
/* ------------------------------------------------------------------------------------------ */

int64_t mono_ms(void); /* CLOCK_MONOTONIC milliseconds */
int64_t wall_ms(void); /* CLOCK_REALTIME milliseconds */
int64_t wall_us(void); /* CLOCK_REALTIME microseconds */

/** splitmix64 finaliser: a good 64-bit bijective hash. */
uint64_t mix64(uint64_t x);
static inline uint64_t hash2(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }
uint64_t fnv1a(const char *s);

/** Advances a splitmix state. @returns a uniform double in [0, 1). */
double rng01(uint64_t *state);

/** base_ms plus a uniform draw in [0, jitter_ms] from rng (no draw when jitter_ms is 0). */
int64_t latency_draw(uint64_t *rng, int64_t base_ms, int64_t jitter_ms);

/** Formats epoch milliseconds as ISO-8601 UTC with millis, e.g. 2019-10-21T08:33:21.053Z. */
void fmt_iso(int64_t ms, char out[48]);

void *xcalloc(size_t n, size_t sz);     /* new; never NULL */
char *xstrdup(const char *s);           /* new; never NULL */
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* new */

/**
 * Makes room for one more element after the n used ones of a dynamic array (doubling).
 * @returns the (possibly moved) array; pointers into the old one are invalid afterwards.
 */
void *vec_grow(void *v, size_t *cap, size_t n, size_t elsz);

/** Parses a whole decimal string as int64; returns 0 on success. */
int parse_i64(const char *s, int64_t *out);

/**
 * Parses "YYYY-MM-DD" or an RFC 3339 date-time ("YYYY-MM-DDTHH:MM[:SS[.frac]]" then "Z",
 * "+HH:MM", "-HHMM" or nothing, which counts as UTC; a space may stand for the "T") into epoch
 * milliseconds. @returns 1 for a date alone, 2 for a date-time, 0 when s is neither.
 */
int parse_when(const char *s, int64_t *ms);

/* ------------------------------------------------------------------------------------------ */
/* string -> pointer hash map (chained, grows by doubling)                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct sm_entry {
    struct sm_entry *next;
    uint64_t hash;
    void *val;
    char key[];
} sm_entry;

typedef struct strmap {
    sm_entry **b;
    size_t nb, n;
} strmap;

/* A zeroed strmap is an empty map; sm_init only allocates the table ahead of time. */
void sm_init(strmap *m);
/** @returns the stored value (borrowed) or NULL. */
void *sm_get(const strmap *m, const char *key);
/** Inserts key (copied) -> val. @returns the previous value for key (caller frees) or NULL. */
void *sm_put(strmap *m, const char *key, void *val);
/** Removes key. @returns its value (caller frees) or NULL. */
void *sm_del(strmap *m, const char *key);
/** Removes every entry, calling free_val on each value (may be NULL). */
void sm_clear(strmap *m, void (*free_val)(void *));
/** sm_clear, then frees the table; a destroyed (or never initialised, zeroed) map is a no-op. */
void sm_destroy(strmap *m, void (*free_val)(void *));

#define SM_FOREACH(m, e)                                                                       \
    for (size_t sm_i_ = 0; sm_i_ < (m)->nb; sm_i_++)                                           \
        for (sm_entry *e = (m)->b[sm_i_]; e; e = e->next)

/* ------------------------------------------------------------------------------------------ */
/* ring of timestamps (sliding windows)                                                        */
/* ------------------------------------------------------------------------------------------ */

typedef struct tsring {
    int64_t *v;
    size_t cap, head, len;
} tsring;

void tsring_push(tsring *r, int64_t t);
static inline int64_t tsring_at(const tsring *r, size_t i) { return r->v[(r->head + i) % r->cap]; }
/** Drops entries at or before cutoff (they left the window). */
void tsring_prune(tsring *r, int64_t cutoff);
static inline void tsring_clear(tsring *r) { r->head = r->len = 0; }
void tsring_free(tsring *r);

/**
 * Sliding-window admission: at most `limit` entries in the last `window_ms`.
 * @returns 0 when admitted (and records now), else the seconds until a slot frees (>= 1).
 */
int tsring_admit(tsring *r, int64_t now, int64_t window_ms, int64_t limit);

/* ------------------------------------------------------------------------------------------ */
/* status counters: a handful of distinct codes, kept in a tiny sparse list                    */
/* ------------------------------------------------------------------------------------------ */

#define STATUSC_MAX 24
typedef struct statusc {
    int len;
    int code[STATUSC_MAX];
    uint64_t n[STATUSC_MAX];
} statusc;

/* Requests and their answers, per whatever a simulator counts by (token, path class). */
typedef struct req_stats {
    uint64_t requests;
    statusc status;
} req_stats;

void statusc_add(statusc *sc, int code);
uint64_t statusc_get(const statusc *sc, int code);
/** Adds "<code>":n to obj for every seen code, and 0 for each code in always[]. */
void statusc_to_json(const statusc *sc, json_t *obj, const int *always, int nalways);

typedef struct reply reply;

/* ------------------------------------------------------------------------------------------ */
/* configuration table: one table serves GET and PUT /_sim/config                              */
/* ------------------------------------------------------------------------------------------ */

typedef enum {
    CT_INT,       /* int64_t in [min, max] */
    CT_RATE,      /* double in [0, 1] */
    CT_BOOL,      /* bool */
    CT_CHOICE,    /* bool shown as one of two strings: choice[0] (false) or choice[1] (true) */
    CT_OUTAGE_MS, /* int64_t monotonic deadline, shown and set as milliseconds from now */
} cfg_type;

typedef struct cfg_entry {
    const char *name;
    cfg_type type;
    size_t off;       /* offset of the field in the simulator's config struct */
    int64_t min, max; /* CT_INT and CT_OUTAGE_MS */
    const char *choice[2];
} cfg_entry;

/*
 * The switches every simulator's /_sim/config has: the rate limit, latency and one-shot or
 * timed failures.
 * A simulator embeds one as member `m` of its config struct and lists SIM_FAULT_ROWS(type, m)
 * in its table.
 */
typedef struct sim_faults {
    int64_t rate_limit; /* vendor requests per window (per account or partner); 0 = off */
    int64_t rate_window_ms;
    bool retry_after; /* 429 and 503 answers carry Retry-After */
    int64_t latency_ms, latency_jitter_ms;
    int64_t hang_ms; /* how long a hung request waits before it is answered */
    int64_t fail_next, fail_status;
    int64_t malformed_next, reset_next, hang_next, ratelimit_next;
    int64_t outage_status;
    int64_t outage_until_mono; /* exposed as outage_ms (time left) */
} sim_faults;

#define SIM_FAULT_ROWS(type, m)                                                                \
    {"rate_limit", CT_INT, offsetof(type, m.rate_limit), 0, 100000000, {0}},                   \
    {"rate_window_ms", CT_INT, offsetof(type, m.rate_window_ms), 1, 86400000, {0}},            \
    {"retry_after", CT_BOOL, offsetof(type, m.retry_after), 0, 0, {0}},                        \
    {"latency_ms", CT_INT, offsetof(type, m.latency_ms), 0, 600000, {0}},                      \
    {"latency_jitter_ms", CT_INT, offsetof(type, m.latency_jitter_ms), 0, 600000, {0}},        \
    {"fail_next", CT_INT, offsetof(type, m.fail_next), 0, INT64_C(1000000000), {0}},           \
    {"fail_status", CT_INT, offsetof(type, m.fail_status), 400, 599, {0}},                     \
    {"hang_ms", CT_INT, offsetof(type, m.hang_ms), 0, 3600000, {0}},                           \
    {"malformed_next", CT_INT, offsetof(type, m.malformed_next), 0, INT64_C(1000000000), {0}}, \
    {"reset_next", CT_INT, offsetof(type, m.reset_next), 0, INT64_C(1000000000), {0}},         \
    {"hang_next", CT_INT, offsetof(type, m.hang_next), 0, INT64_C(1000000000), {0}},           \
    {"ratelimit_next", CT_INT, offsetof(type, m.ratelimit_next), 0, INT64_C(1000000000), {0}}, \
    {"outage_status", CT_INT, offsetof(type, m.outage_status), 400, 599, {0}},                 \
    {"outage_ms", CT_OUTAGE_MS, offsetof(type, m.outage_until_mono), 0, 86400000, {0}}

/** No rate limit (60 s window, Retry-After on), no latency, no faults; injected failures
 * answer 503, a hang lasts 30 s. */
void sim_faults_defaults(sim_faults *f);

typedef enum { F_NONE, F_FAIL, F_RATELIMIT, F_RESET, F_HANG, F_MALFORMED, F_OUTAGE } fault_kind;

/**
 * The fault the next vendor request gets from f: an outage in progress, else the first
 * one-shot counter above zero, in the order fail, ratelimit, reset, hang, malformed (each
 * consumed by one request). @returns F_NONE when none.
 */
fault_kind sim_faults_take(sim_faults *f, int64_t now_mono);

/**
 * Applies a hang or malformed fault to the handler's answer r: F_MALFORMED turns it into a 200
 * whose JSON body is cut in half, F_HANG adds f->hang_ms. @returns the delay to send r after
 * (latency included).
 */
int64_t sim_faults_finish(const sim_faults *f, fault_kind fk, reply *r, int64_t latency_ms);

/** The config struct at cfg as a JSON object. @returns new. */
json_t *config_table_json(const cfg_entry *t, size_t n, const void *cfg);

/**
 * PUT /_sim/config: applies the partial update body to cfg, all or nothing (cfg_size is the
 * size of the config struct), and sets r to the new config (200) or the complaint (400).
 */
void config_table_put(const cfg_entry *t, size_t n, void *cfg, size_t cfg_size, json_t *body,
                      reply *r);

/* ------------------------------------------------------------------------------------------ */
/* replies: immediate or delayed through an evtimer                                            */
/* ------------------------------------------------------------------------------------------ */

/* A reply under construction. Zero-initialise it; the reply_* setters fill status, type, body
 * and retry_after but leave link alone, so a handler may set link before or after them. */
struct reply {
    int status;
    const char *ctype;
    struct evbuffer *body; /* owned */
    int retry_after;       /* seconds; <0: no header */
    char *link;            /* owned; NULL: no Link header */
};

typedef struct sim_pending sim_pending;

/* The HTTP server of a simulator: its loop, the delayed replies, the signal handlers. */
typedef struct sim_server {
    struct event_base *base;
    struct evhttp *http;
    struct event *sig_term, *sig_int;
    sim_pending *pending_head;
    bool stopping;
} sim_server;

const char *reason_phrase(int status);

/** Sets r to an answer of type ctype; text (malloc'd, len bytes, may be NULL) is taken over. */
void reply_take(reply *r, int status, const char *ctype, char *text, size_t len);
/** Sets r to a JSON answer; steals body (NULL: empty body). */
void reply_json(reply *r, int status, json_t *body);
/** Sets r to an answer of type ctype with a copy of text. */
void reply_text(reply *r, int status, const char *ctype, const char *text);
/** {"error": msg} */
void reply_error(reply *r, int status, const char *msg);

/** Sends r (taking its body and link) now or after delay_ms, using an evtimer. */
void send_reply(sim_server *srv, struct evhttp_request *req, reply *r, int64_t delay_ms);

/**
 * Drops the connection without an answer. SO_LINGER 0 makes the close an RST; libevent's
 * shutdown(SHUT_WR) may still deliver a FIN first, so a client sees either "connection reset"
 * or "empty reply". Freeing the connection here is safe: libevent touches neither the
 * connection nor the request after the request callback of an incoming connection returns.
 */
void reset_connection(struct evhttp_request *req);

/* ------------------------------------------------------------------------------------------ */
/* requests                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** @returns the request body parsed as JSON (new reference; {} when empty) or NULL with err set. */
json_t *read_json_body(struct evhttp_request *req, char *err, size_t errsz);

/** Reads an optional integer member k of o (absent or null: dflt). @returns 0, or -1 with err. */
int opt_int(json_t *o, const char *k, int64_t dflt, int64_t min, int64_t max, int64_t *out,
            char *err, size_t errsz);

/* ------------------------------------------------------------------------------------------ */
/* strict mode: reject what the official document rejects                                      */
/* ------------------------------------------------------------------------------------------ */

/*
 * Each simulator has a `strict` switch in /_sim/config, ON by default (the tests run with it):
 * a request the vendor's official document does not allow is answered with the vendor's error
 * shape instead of being served. The helpers below check the parts both documents share; what
 * an operation declares (its query parameters, required headers, required body fields) is
 * written next to its handler, copied from the document.
 */

/* A query parameter's schema, as the document declares it. */
typedef enum {
    QP_STRING,    /* type string: any text, ONE value (style form: a list is "a,b,c") */
    QP_INTEGER,   /* type integer: an optional '-' and decimal digits */
    QP_BOOLEAN,   /* type boolean: true or false */
    QP_DATE,      /* format date: YYYY-MM-DD */
    QP_DATE_TIME, /* format date-time: RFC 3339 with seconds optional and a zone (Z or +hh:mm) */
    QP_ARRAY,     /* type array (explode): may repeat, each value unchecked */
} qp_type;

typedef struct sim_qparam {
    const char *name;
    qp_type type;
} sim_qparam;

/**
 * Checks q (may be NULL) against an operation's declared parameters: a single-valued one
 * appears at most once and has its type's format. Undeclared parameters are left alone (the
 * documents do not say they are refused). @returns 0, or -1 with err naming the parameter.
 */
int sim_strict_query(const struct evkeyvalq *q, const sim_qparam *params, size_t n, char *err,
                     size_t errsz);

/** @returns the first of the NULL-terminated header names that is missing or blank on req,
 * or NULL when all are there. */
const char *sim_strict_missing_header(struct evhttp_request *req, const char *const *names);

/** @returns whether a request body, if it has one, is declared application/json. */
bool sim_strict_json_content_type(struct evhttp_request *req);

/** @returns whether s is YYYY-MM-DD (a real calendar day). */
bool sim_is_date(const char *s);
/** @returns whether s is an RFC 3339 date-time with a zone ("2024-03-01T00:00:00Z"). */
bool sim_is_date_time(const char *s);
/** @returns whether s is a UUID (8-4-4-4-12 hex digits, any case). */
bool sim_is_uuid(const char *s);

/* ------------------------------------------------------------------------------------------ */
/* the server skeleton                                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct sim_opts {
    int port;              /* 0: any free port */
    const char *port_file; /* NULL: none */
    const char *bind_addr;
    uint64_t seed;
} sim_opts;

/* A vendor request handler: seg[0..nseg) are the decoded path segments, q the query (NULL:
 * none). It answers through send_reply. */
typedef void (*sim_handler)(void *arg, struct evhttp_request *req, char **seg, int nseg,
                            const struct evkeyvalq *q);

/* An admin request handler: as sim_handler but given the method m, plus the JSON object body
 * of a POST or PUT (borrowed; NULL for other methods). It sets r, which is sent at once. */
typedef void (*sim_admin_handler)(void *arg, enum evhttp_cmd_type m, char **seg, int nseg,
                                  const struct evkeyvalq *q, json_t *body, reply *r);

/* What a simulator program plugs into sim_main. */
typedef struct sim_app {
    const char *name;         /* program name for messages, e.g. "cwrmm-sim" */
    const char *usage;        /* what --help says after the common options */
    void *arg;                /* the simulator, handed to every callback */
    sim_server *srv;          /* inside arg */
    void (*init)(void *arg, const sim_opts *o); /* before the server opens */
    void (*destroy)(void *arg);                 /* after the server closed (frees the data) */
    sim_admin_handler admin;  /* paths under /_sim (never counted, limited or faulted) */
    sim_handler vendor;       /* everything else; nseg 0 for a path too long or too deep */
} sim_app;

/**
 * The whole program: parses --port/--port-file/--bind/--seed (--help prints usage), calls
 * init, listens (port 0: any free one), installs SIGTERM/SIGINT handlers (first signal: answer
 * delayed replies now and give the writes 200 ms; a second one stops), writes the port file,
 * prints "<name> listening on ADDR:PORT", runs the loop until a signal, then closes the server,
 * calls destroy and shuts libevent down. @returns the exit code.
 */
int sim_main(int argc, char **argv, const sim_app *app);

#endif
