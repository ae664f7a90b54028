/*
 * sim_util.c — the pieces the HTTP vendor simulators share (see sim_util.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "sim_util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

const char *sim_name = "sim";

const char *const BIZ_A[16] = {
    "Acme", "Blue Ridge", "Summit", "Harbor", "Pinecrest", "Redwood", "Lakeside", "Granite",
    "Northwind", "Silverline", "Cedar", "Riverbend", "Oakmont", "Brightpath", "Ironclad", "Maple",
};
const char *const BIZ_B[12] = {
    "Dental",      "Law Group", "Accounting", "Logistics",    "Medical Center", "Realty",
    "Engineering", "Insurance", "Veterinary", "Construction", "Consulting",     "Foods",
};

const sim_os OS_WORKSTATION[4] = {
    {"Microsoft Windows 10 Pro", "10.0.19045"},
    {"Microsoft Windows 11 Pro", "10.0.22631"},
    {"Microsoft Windows 10 Enterprise", "10.0.19044"},
    {"Microsoft Windows 11 Business", "10.0.22621"},
};
const sim_os OS_SERVER[3] = {
    {"Microsoft Windows Server 2019 Standard", "10.0.17763"},
    {"Microsoft Windows Server 2022 Standard", "10.0.20348"},
    {"Microsoft Windows Server 2016 Standard", "10.0.14393"},
};

static void oom(void)
{
    fprintf(stderr, "%s: out of memory\n", sim_name);
    abort();
}

/* ------------------------------------------------------------------------------------------ */
/* clocks, hashes, allocation, parsing                                                         */
/* ------------------------------------------------------------------------------------------ */

int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t mix64(uint64_t x)
{
    /* splitmix64 finaliser: a good 64-bit bijective hash */
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

double rng01(uint64_t *state)
{
    *state = mix64(*state);
    return (double)(*state >> 11) * (1.0 / 9007199254740992.0);
}

int64_t latency_draw(uint64_t *rng, int64_t base_ms, int64_t jitter_ms)
{
    int64_t d = base_ms;
    if (jitter_ms > 0)
        d += (int64_t)(rng01(rng) * (double)(jitter_ms + 1));
    return d;
}

void fmt_iso(int64_t ms, char out[48])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p)
        oom();
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    return p;
}

void *vec_grow(void *v, size_t *cap, size_t n, size_t elsz)
{
    if (n < *cap)
        return v;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(v, c * elsz);
    if (!p)
        oom();
    *cap = c;
    return p;
}

int parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9')
            return false;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil) */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/**
 * Parses "YYYY-MM-DD" or an RFC 3339 date-time ("YYYY-MM-DDTHH:MM[:SS[.frac]]" then "Z",
 * "+HH:MM", "-HHMM" or nothing, which counts as UTC; a space may stand for the "T") into epoch
 * milliseconds. @returns 1 for a date alone, 2 for a date-time, 0 when s is neither.
 */
int parse_when(const char *s, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, kind = 1;
    int64_t off_min = 0;
    if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &mo) || *p++ != '-' ||
        !take_digits(&p, 2, &d))
        return 0;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return 0;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return 0;
        p++;
        if (!take_digits(&p, 2, &h) || *p++ != ':' || !take_digits(&p, 2, &mi))
            return 0;
        if (*p == ':' && (p++, !take_digits(&p, 2, &sec)))
            return 0;
        if (*p == '.') {
            int nd = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, nd++)
                if (nd < 3)
                    frac = frac * 10 + (*p - '0');
            if (nd == 0)
                return 0;
            for (; nd < 3; nd++)
                frac *= 10;
        }
        if (h > 23 || mi > 59 || sec > 60)
            return 0;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (!take_digits(&p, 2, &oh))
                return 0;
            if (*p == ':')
                p++;
            if (!take_digits(&p, 2, &om) || oh > 23 || om > 59)
                return 0;
            off_min = sign * (oh * 60 + om);
        }
        if (*p)
            return 0;
        kind = 2;
    }
    *ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi - off_min) * 60000 +
          (int64_t)sec * 1000 + frac;
    return kind;
}

/* ------------------------------------------------------------------------------------------ */
/* string -> pointer hash map (chained, grows by doubling)                                     */
/* ------------------------------------------------------------------------------------------ */

void sm_init(strmap *m)
{
    m->nb = 64;
    m->n = 0;
    m->b = xcalloc(m->nb, sizeof(*m->b));
}

static void sm_grow(strmap *m)
{
    size_t nb = m->nb * 2;
    sm_entry **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < m->nb; i++) {
        sm_entry *e = m->b[i];
        while (e) {
            sm_entry *next = e->next;
            size_t j = e->hash & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

/** @returns the stored value (borrowed) or NULL. */
void *sm_get(const strmap *m, const char *key)
{
    if (!m->b)
        return NULL;
    uint64_t h = fnv1a(key);
    for (sm_entry *e = m->b[h & (m->nb - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e->val;
    return NULL;
}

/** Inserts key (copied) -> val. @returns the previous value for key (caller frees) or NULL. */
void *sm_put(strmap *m, const char *key, void *val)
{
    if (!m->b)
        sm_init(m);
    uint64_t h = fnv1a(key);
    for (sm_entry *e = m->b[h & (m->nb - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0) {
            void *old = e->val;
            e->val = val;
            return old;
        }
    if (m->n + 1 > m->nb)
        sm_grow(m);
    size_t len = strlen(key);
    sm_entry *e = xcalloc(1, sizeof(*e) + len + 1);
    memcpy(e->key, key, len + 1);
    e->hash = h;
    e->val = val;
    e->next = m->b[h & (m->nb - 1)];
    m->b[h & (m->nb - 1)] = e;
    m->n++;
    return NULL;
}

/** Removes key. @returns its value (caller frees) or NULL. */
void *sm_del(strmap *m, const char *key)
{
    if (!m->b)
        return NULL;
    uint64_t h = fnv1a(key);
    for (sm_entry **pe = &m->b[h & (m->nb - 1)]; *pe; pe = &(*pe)->next) {
        sm_entry *e = *pe;
        if (e->hash == h && strcmp(e->key, key) == 0) {
            void *v = e->val;
            *pe = e->next;
            free(e);
            m->n--;
            return v;
        }
    }
    return NULL;
}

/** Removes every entry, calling free_val on each value (may be NULL). */
void sm_clear(strmap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->nb; i++) {
        sm_entry *e = m->b[i];
        while (e) {
            sm_entry *next = e->next;
            if (free_val)
                free_val(e->val);
            free(e);
            e = next;
        }
        m->b[i] = NULL;
    }
    m->n = 0;
}

void sm_destroy(strmap *m, void (*free_val)(void *))
{
    if (!m->b)
        return;
    sm_clear(m, free_val);
    free(m->b);
    m->b = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* ring of timestamps (sliding windows)                                                        */
/* ------------------------------------------------------------------------------------------ */

void tsring_push(tsring *r, int64_t t)
{
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        int64_t *v = xcalloc(cap, sizeof(*v));
        for (size_t i = 0; i < r->len; i++)
            v[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    r->v[(r->head + r->len) % r->cap] = t;
    r->len++;
}

/** Drops entries at or before cutoff (they left the window). */
void tsring_prune(tsring *r, int64_t cutoff)
{
    while (r->len && r->v[r->head] <= cutoff) {
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
}

void tsring_free(tsring *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}

int tsring_admit(tsring *r, int64_t now, int64_t window_ms, int64_t limit)
{
    tsring_prune(r, now - window_ms);
    if ((int64_t)r->len >= limit) {
        /* the slot frees when the entry `len - limit` (0 = oldest) leaves the window */
        int64_t expiry = tsring_at(r, r->len - (size_t)limit) + window_ms;
        int secs = (int)((expiry - now + 999) / 1000);
        return secs < 1 ? 1 : secs;
    }
    tsring_push(r, now);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* status counters: a handful of distinct codes, kept in a tiny sparse list                    */
/* ------------------------------------------------------------------------------------------ */

void statusc_add(statusc *sc, int code)
{
    for (int i = 0; i < sc->len; i++)
        if (sc->code[i] == code) {
            sc->n[i]++;
            return;
        }
    if (sc->len < STATUSC_MAX) {
        sc->code[sc->len] = code;
        sc->n[sc->len++] = 1;
    }
}

uint64_t statusc_get(const statusc *sc, int code)
{
    for (int i = 0; i < sc->len; i++)
        if (sc->code[i] == code)
            return sc->n[i];
    return 0;
}

/** Adds "<code>":n to obj for every seen code, and 0 for each code in always[]. */
void statusc_to_json(const statusc *sc, json_t *obj, const int *always, int nalways)
{
    char key[16];
    for (int i = 0; i < nalways; i++) {
        snprintf(key, sizeof(key), "%d", always[i]);
        json_object_set_new(obj, key, json_integer((json_int_t)statusc_get(sc, always[i])));
    }
    for (int i = 0; i < sc->len; i++) {
        snprintf(key, sizeof(key), "%d", sc->code[i]);
        json_object_set_new(obj, key, json_integer((json_int_t)sc->n[i]));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* configuration table                                                                         */
/* ------------------------------------------------------------------------------------------ */

void sim_faults_defaults(sim_faults *f)
{
    memset(f, 0, sizeof(*f));
    f->rate_window_ms = 60000;
    f->retry_after = true;
    f->hang_ms = 30000;
    f->fail_status = 503;
    f->outage_status = 503;
}

fault_kind sim_faults_take(sim_faults *f, int64_t now_mono)
{
    if (f->outage_until_mono > now_mono)
        return F_OUTAGE;
    if (f->fail_next > 0) {
        f->fail_next--;
        return F_FAIL;
    }
    int64_t *next[] = {&f->ratelimit_next, &f->reset_next, &f->hang_next, &f->malformed_next};
    static const fault_kind kind[] = {F_RATELIMIT, F_RESET, F_HANG, F_MALFORMED};
    for (size_t i = 0; i < NELEM(next); i++)
        if (*next[i] > 0) {
            (*next[i])--;
            return kind[i];
        }
    return F_NONE;
}

int64_t sim_faults_finish(const sim_faults *f, fault_kind fk, reply *r, int64_t latency_ms)
{
    if (fk == F_MALFORMED) {
        struct evbuffer *half = evbuffer_new();
        evbuffer_remove_buffer(r->body, half, evbuffer_get_length(r->body) / 2);
        evbuffer_free(r->body);
        r->body = half;
        r->status = 200;
        r->ctype = "application/json; charset=utf-8";
        r->retry_after = -1;
        free(r->link);
        r->link = NULL;
    } else if (fk == F_HANG) {
        return latency_ms + f->hang_ms;
    }
    return latency_ms;
}

json_t *config_table_json(const cfg_entry *t, size_t n, const void *cfg)
{
    json_t *o = json_object();
    int64_t now = mono_ms();
    for (size_t i = 0; i < n; i++) {
        const cfg_entry *e = &t[i];
        const char *p = (const char *)cfg + e->off;
        switch (e->type) {
        case CT_INT: json_object_set_new(o, e->name, json_integer(*(const int64_t *)p)); break;
        case CT_RATE: json_object_set_new(o, e->name, json_real(*(const double *)p)); break;
        case CT_BOOL: json_object_set_new(o, e->name, json_boolean(*(const bool *)p)); break;
        case CT_CHOICE:
            json_object_set_new(o, e->name, json_string(e->choice[*(const bool *)p ? 1 : 0]));
            break;
        case CT_OUTAGE_MS: {
            int64_t left = *(const int64_t *)p - now;
            json_object_set_new(o, e->name, json_integer(left > 0 ? left : 0));
            break;
        }
        }
    }
    return o;
}

/* Sets one field of cfg from v. @returns 0, or -1 when v does not fit the entry. */
static int config_entry_set(const cfg_entry *e, char *p, json_t *v)
{
    switch (e->type) {
    case CT_INT:
    case CT_OUTAGE_MS: {
        int64_t x;
        if (json_is_integer(v))
            x = json_integer_value(v);
        else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
                 fabs(json_real_value(v)) < 9e15)
            x = (int64_t)json_real_value(v);
        else
            return -1;
        if (x < e->min || x > e->max)
            return -1;
        if (e->type == CT_OUTAGE_MS)
            *(int64_t *)p = x > 0 ? mono_ms() + x : 0;
        else
            *(int64_t *)p = x;
        return 0;
    }
    case CT_RATE: {
        if (!json_is_number(v))
            return -1;
        double d = json_number_value(v);
        if (!(d >= 0.0 && d <= 1.0))
            return -1;
        *(double *)p = d;
        return 0;
    }
    case CT_BOOL:
        if (!json_is_boolean(v))
            return -1;
        *(bool *)p = json_is_true(v);
        return 0;
    case CT_CHOICE:
        for (int k = 0; k < 2; k++)
            if (json_is_string(v) && strcmp(json_string_value(v), e->choice[k]) == 0) {
                *(bool *)p = k == 1;
                return 0;
            }
        return -1;
    }
    return -1;
}

/* Applies body to cfg, all or nothing. @returns 0, or -1 with err set. */
static int config_table_apply(const cfg_entry *t, size_t n, void *cfg, size_t cfg_size,
                              json_t *body, char *err, size_t errsz)
{
    char *next = xcalloc(1, cfg_size);
    memcpy(next, cfg, cfg_size);
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        const cfg_entry *e = NULL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(t[i].name, k) == 0)
                e = &t[i];
        if (!e) {
            snprintf(err, errsz, "unknown config key '%s'", k);
            free(next);
            return -1;
        }
        if (config_entry_set(e, next + e->off, v) == 0)
            continue;
        if (e->type == CT_INT || e->type == CT_OUTAGE_MS)
            snprintf(err, errsz, "%s must be an integer in [%" PRId64 ", %" PRId64 "]", k,
                     e->min, e->max);
        else if (e->type == CT_RATE)
            snprintf(err, errsz, "%s must be a number in [0, 1]", k);
        else if (e->type == CT_BOOL)
            snprintf(err, errsz, "%s must be a boolean", k);
        else
            snprintf(err, errsz, "%s must be \"%s\" or \"%s\"", k, e->choice[0], e->choice[1]);
        free(next);
        return -1;
    }
    memcpy(cfg, next, cfg_size);
    free(next);
    return 0;
}

void config_table_put(const cfg_entry *t, size_t n, void *cfg, size_t cfg_size, json_t *body,
                      reply *r)
{
    char err[200];
    if (config_table_apply(t, n, cfg, cfg_size, body, err, sizeof(err)) != 0)
        reply_error(r, 400, err);
    else
        reply_json(r, 200, config_table_json(t, n, cfg));
}

/* ------------------------------------------------------------------------------------------ */
/* replies: immediate or delayed through an evtimer                                            */
/* ------------------------------------------------------------------------------------------ */

struct sim_pending {
    sim_pending *prev, *next;
    sim_server *srv;
    struct event *ev;
    struct evhttp_request *req;
    reply r;
};

const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

static void free_text(const void *data, size_t len, void *arg)
{
    (void)len, (void)arg;
    free((void *)data);
}

void reply_take(reply *r, int status, const char *ctype, char *text, size_t len)
{
    r->status = status;
    r->ctype = ctype;
    r->body = evbuffer_new();
    r->retry_after = -1;
    /* one malloc'd string handed over by reference: evbuffer_add per token is slow */
    if (text && evbuffer_add_reference(r->body, text, len, free_text, NULL) != 0)
        free(text);
}

void reply_json(reply *r, int status, json_t *body)
{
    char *text = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12));
        json_decref(body);
    }
    reply_take(r, status, "application/json; charset=utf-8", text, text ? strlen(text) : 0);
}

void reply_text(reply *r, int status, const char *ctype, const char *text)
{
    reply_take(r, status, ctype, NULL, 0);
    evbuffer_add(r->body, text, strlen(text));
}

void reply_error(reply *r, int status, const char *msg)
{
    reply_json(r, status, json_pack("{s:s}", "error", msg));
}

static void send_now(struct evhttp_request *req, reply *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", r->ctype);
    if (r->retry_after >= 0) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%d", r->retry_after);
        evhttp_add_header(h, "Retry-After", buf);
    }
    if (r->link) {
        evhttp_add_header(h, "Link", r->link);
        free(r->link);
        r->link = NULL;
    }
    /* If the client went away meanwhile, libevent detached the request and frees it here. */
    evhttp_send_reply(req, r->status, reason_phrase(r->status), r->body);
    evbuffer_free(r->body);
    r->body = NULL;
}

static void pending_unlink(sim_server *srv, sim_pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        srv->pending_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void pending_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    sim_pending *p = arg;
    pending_unlink(p->srv, p);
    send_now(p->req, &p->r);
    event_free(p->ev);
    free(p);
}

void send_reply(sim_server *srv, struct evhttp_request *req, reply *r, int64_t delay_ms)
{
    if (delay_ms <= 0) {
        send_now(req, r);
        return;
    }
    sim_pending *p = xcalloc(1, sizeof(*p));
    p->srv = srv;
    p->req = req;
    p->r = *r;
    r->body = NULL;
    r->link = NULL;
    p->ev = evtimer_new(srv->base, pending_fire, p);
    p->next = srv->pending_head;
    if (p->next)
        p->next->prev = p;
    srv->pending_head = p;
    struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};
    evtimer_add(p->ev, &tv);
}

/* Answers every delayed reply now (shutdown path). */
static void pending_flush(sim_server *srv)
{
    while (srv->pending_head) {
        sim_pending *p = srv->pending_head;
        pending_unlink(srv, p);
        event_free(p->ev);
        send_now(p->req, &p->r);
        free(p);
    }
}

void reset_connection(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon) {
        evhttp_request_free(req);
        return;
    }
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    evhttp_connection_free(evcon);
}

/* ------------------------------------------------------------------------------------------ */
/* requests                                                                                     */
/* ------------------------------------------------------------------------------------------ */

json_t *read_json_body(struct evhttp_request *req, char *err, size_t errsz)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > SIM_MAX_BODY) {
        snprintf(err, errsz, "body larger than %u bytes", SIM_MAX_BODY);
        return NULL;
    }
    if (len == 0)
        return json_object();
    const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    json_error_t je;
    json_t *j = json_loadb(data, len, 0, &je);
    if (!j)
        snprintf(err, errsz, "invalid JSON: %s", je.text);
    return j;
}

/* ------------------------------------------------------------------------------------------ */
/* strict mode                                                                                  */
/* ------------------------------------------------------------------------------------------ */

bool sim_is_date(const char *s)
{
    int64_t ms;
    return s && strlen(s) == 10 && parse_when(s, &ms) == 1;
}

bool sim_is_date_time(const char *s)
{
    int64_t ms;
    size_t n = s ? strlen(s) : 0;
    if (n < 17 || n > 64 || (s[10] != 'T' && s[10] != 't') || parse_when(s, &ms) != 2)
        return false;
    /* parse_when also takes no zone (as UTC); RFC 3339 requires one */
    if (s[n - 1] == 'Z' || s[n - 1] == 'z')
        return true;
    return n >= 6 && (s[n - 6] == '+' || s[n - 6] == '-') && s[n - 3] == ':';
}

bool sim_is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static bool qp_value_ok(qp_type t, const char *v)
{
    int64_t x;
    switch (t) {
    case QP_INTEGER: return parse_i64(v, &x) == 0 && v[0] != '+' && !isspace((unsigned char)v[0]);
    case QP_BOOLEAN: return strcmp(v, "true") == 0 || strcmp(v, "false") == 0;
    case QP_DATE: return sim_is_date(v);
    case QP_DATE_TIME: return sim_is_date_time(v);
    default: return true;
    }
}

int sim_strict_query(const struct evkeyvalq *q, const sim_qparam *params, size_t n, char *err,
                     size_t errsz)
{
    static const char *const what[] = {
        [QP_STRING] = "a string", [QP_INTEGER] = "an integer", [QP_BOOLEAN] = "true or false",
        [QP_DATE] = "a date (YYYY-MM-DD)",
        [QP_DATE_TIME] = "a date-time (RFC 3339, e.g. 2024-03-01T00:00:00Z)", [QP_ARRAY] = "a list",
    };
    if (!q)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        const struct evkeyval *kv;
        TAILQ_FOREACH(kv, q, next)
        {
            if (strcmp(kv->key, params[i].name) != 0)
                continue;
            if (params[i].type != QP_ARRAY && ++seen > 1) {
                snprintf(err, errsz,
                         "query parameter '%s' must be given once (a single value; separate "
                         "several with commas)", params[i].name);
                return -1;
            }
            if (!qp_value_ok(params[i].type, kv->value)) {
                snprintf(err, errsz, "query parameter '%s' must be %s", params[i].name,
                         what[params[i].type]);
                return -1;
            }
        }
    }
    return 0;
}

const char *sim_strict_missing_header(struct evhttp_request *req, const char *const *names)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    for (; names && *names; names++) {
        const char *v = evhttp_find_header(h, *names);
        while (v && (*v == ' ' || *v == '\t'))
            v++;
        if (!v || !*v)
            return *names;
    }
    return NULL;
}

bool sim_strict_json_content_type(struct evhttp_request *req)
{
    if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) == 0)
        return true;
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    return ct && strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* Splits a path into at most max segments (pointers into buf). @returns the count or -1. */
static int split_path(const char *path, char *buf, size_t bufsz, char **seg, int max)
{
    size_t len = strlen(path);
    if (len + 1 > bufsz)
        return -1;
    memcpy(buf, path, len + 1);
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        seg[n++] = t;
    }
    return n;
}

/*
 * libevent writes big bodies in 16 KiB pieces; with Nagle on, the last small piece waits for the
 * client's delayed ACK (~40 ms per page). evhttp 2.1 has no new-connection hook, so this runs
 * per request (one cheap setsockopt).
 */
static void tune_connection(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev)
        return;
    evutil_socket_t fd = bufferevent_getfd(bev);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bufferevent_set_max_single_write(bev, 256 * 1024);
}

/*
 * Tunes the connection and splits the decoded request path into at most max segments
 * (pointers into buf). @returns the count, -1 when the path is too long or too deep, or -2
 * when libevent handed over a broken request (already answered: return at once).
 */
static int request_segments(struct evhttp_request *req, char *buf, size_t bufsz, char **seg,
                            int max)
{
    const char *uri = evhttp_request_get_uri(req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    if (!uri || !u) {
        /* libevent calls back with no URI after a broken request; it still wants a reply */
        int code = evhttp_request_get_response_code(req);
        evhttp_send_error(req, code >= 400 ? code : 400, NULL);
        return -2;
    }
    tune_connection(req);
    const char *raw_path = evhttp_uri_get_path(u);
    char *path = evhttp_uridecode(raw_path && *raw_path ? raw_path : "/", 0, NULL);
    int nseg = path ? split_path(path, buf, bufsz, seg, max) : -1;
    free(path);
    return nseg;
}

/*
 * Reads the JSON object body of an admin POST or PUT into *body (new reference; NULL for
 * other methods). @returns 0, or -1 with r set to the error answer (413 too large, 400).
 */
static int admin_body(struct evhttp_request *req, json_t **body, reply *r)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    char err[200];
    *body = NULL;
    if (m != EVHTTP_REQ_POST && m != EVHTTP_REQ_PUT)
        return 0;
    *body = read_json_body(req, err, sizeof(err));
    if (!*body) {
        bool big = evbuffer_get_length(evhttp_request_get_input_buffer(req)) > SIM_MAX_BODY;
        reply_error(r, big ? 413 : 400, err);
        return -1;
    }
    if (!json_is_object(*body)) {
        reply_error(r, 400, "body must be a JSON object");
        json_decref(*body);
        *body = NULL;
        return -1;
    }
    return 0;
}

int opt_int(json_t *o, const char *k, int64_t dflt, int64_t min, int64_t max, int64_t *out,
            char *err, size_t errsz)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, errsz, "%s must be an integer in [%" PRId64 ", %" PRId64 "]", k, min, max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the server skeleton                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* @returns -1 to go on, else the exit code (0 after --help, 2 on a bad argument). */
static void usage(FILE *f, const char *more)
{
    fprintf(f,
            "usage: %s [--port N] [--port-file PATH] [--bind ADDR] [--seed N]\n"
            "  --port N         TCP port, 0 picks a free one (default 0)\n"
            "  --port-file PATH write the bound port there once listening\n"
            "  --bind ADDR      listen address (default 127.0.0.1)\n"
            "  --seed N         seed for generated data and every pseudo-random draw (default 1)\n"
            "%s",
            sim_name, more);
}

static int parse_args(int argc, char **argv, sim_opts *o, const char *more)
{
    o->port = 0;
    o->port_file = NULL;
    o->bind_addr = "127.0.0.1";
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, more);
            return 0;
        } else if (!strcmp(a, "--port") && v && parse_i64(v, &x) == 0 && x >= 0 && x < 65536) {
            o->port = (int)x;
            i++;
        } else if (!strcmp(a, "--port-file") && v) {
            o->port_file = v;
            i++;
        } else if (!strcmp(a, "--bind") && v) {
            o->bind_addr = v;
            i++;
        } else if (!strcmp(a, "--seed") && v && parse_i64(v, &x) == 0) {
            o->seed = (uint64_t)x;
            i++;
        } else {
            fprintf(stderr, "%s: bad argument '%s'\n", sim_name, a);
            usage(stderr, more);
            return 2;
        }
    }
    return -1;
}

/* First signal: answer delayed replies now and give the writes 200 ms; a second one stops. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what;
    sim_server *srv = arg;
    if (srv->stopping) {
        event_base_loopbreak(srv->base);
        return;
    }
    srv->stopping = true;
    pending_flush(srv);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    event_base_loopexit(srv->base, &tv);
}

static evutil_socket_t listen_on(const char *bind_addr, int port, int *bound_port)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(bind_addr, portstr, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "%s: bad bind address %s: %s\n", sim_name, bind_addr, gai_strerror(rc));
        return -1;
    }
    evutil_socket_t fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd < 0) {
        fprintf(stderr, "%s: socket: %s\n", sim_name, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        fprintf(stderr, "%s: cannot listen on %s:%d: %s\n", sim_name, bind_addr, port,
                strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    evutil_make_socket_nonblocking(fd);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Writes the port atomically (temp file + rename) so a poller never reads half a number. */
static int write_port_file(const char *path, int port)
{
    char *tmp = xprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", sim_name, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    fprintf(f, "%d\n", port);
    int bad = fclose(f) != 0 || rename(tmp, path) != 0;
    if (bad)
        fprintf(stderr, "%s: cannot write %s: %s\n", sim_name, path, strerror(errno));
    free(tmp);
    return bad ? -1 : 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    const sim_app *app = arg;
    char buf[2048], *seg[16];
    int nseg = request_segments(req, buf, sizeof(buf), seg, 16);
    if (nseg == -2)
        return;
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    bool have_q = query && evhttp_parse_query_str(query, &q) == 0;
    if (nseg >= 1 && strcmp(seg[0], "_sim") == 0) {
        reply r = {0};
        json_t *body;
        if (admin_body(req, &body, &r) == 0)
            app->admin(app->arg, evhttp_request_get_command(req), seg, nseg,
                       have_q ? &q : NULL, body, &r);
        json_decref(body);
        send_reply(app->srv, req, &r, 0);
    } else
        app->vendor(app->arg, req, seg, nseg < 0 ? 0 : nseg, have_q ? &q : NULL);
    evhttp_clear_headers(&q);
}

/* Opens the server; @returns 0 or -1 (printed). Call server_close in both cases. */
static int server_open(sim_server *srv, const sim_opts *o, const sim_app *app)
{
    memset(srv, 0, sizeof(*srv));
    signal(SIGPIPE, SIG_IGN);
    srv->base = event_base_new();
    if (!srv->base) {
        fprintf(stderr, "%s: event_base_new failed\n", sim_name);
        return -1;
    }
    srv->http = evhttp_new(srv->base);
    if (!srv->http) {
        fprintf(stderr, "%s: evhttp_new failed\n", sim_name);
        return -1;
    }
    evhttp_set_max_body_size(srv->http, SIM_MAX_BODY);
    evhttp_set_max_headers_size(srv->http, 64 * 1024);
    evhttp_set_timeout(srv->http, 3600); /* idle keep-alive and long hangs */
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                              EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(srv->http, on_request, (void *)app);

    int bound = 0;
    evutil_socket_t fd = listen_on(o->bind_addr, o->port, &bound);
    if (fd < 0)
        return -1;
    if (!evhttp_accept_socket_with_handle(srv->http, fd)) {
        fprintf(stderr, "%s: cannot accept on socket\n", sim_name);
        close(fd);
        return -1;
    }
    srv->sig_term = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    srv->sig_int = evsignal_new(srv->base, SIGINT, on_signal, srv);
    evsignal_add(srv->sig_term, NULL);
    evsignal_add(srv->sig_int, NULL);

    if (o->port_file && write_port_file(o->port_file, bound) != 0)
        return -1;
    printf("%s listening on %s:%d\n", sim_name, o->bind_addr, bound);
    fflush(stdout);
    return 0;
}

/* Answers every delayed reply now and frees the server (NULL-safe members). */
static void server_close(sim_server *srv)
{
    pending_flush(srv);
    if (srv->http)
        evhttp_free(srv->http);
    if (srv->sig_term)
        event_free(srv->sig_term);
    if (srv->sig_int)
        event_free(srv->sig_int);
    if (srv->base)
        event_base_free(srv->base);
    memset(srv, 0, sizeof(*srv));
}

int sim_main(int argc, char **argv, const sim_app *app)
{
    sim_name = app->name;
    sim_opts o;
    int rc = parse_args(argc, argv, &o, app->usage);
    if (rc >= 0)
        return rc;
    json_object_seed(1); /* before any object exists; output order is insertion order anyway */
    app->init(app->arg, &o);
    rc = server_open(app->srv, &o, app) == 0 ? 0 : 1;
    if (rc == 0)
        event_base_dispatch(app->srv->base);
    server_close(app->srv);
    app->destroy(app->arg);
    libevent_global_shutdown();
    return rc;
}
