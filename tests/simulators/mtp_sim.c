/*
 * mtp_sim.c — a multi-tenant portal (MTP) vendor simulator that pushes signed incident webhooks
 * at the gateway, for integration tests and benchmarks.
 *
 * Unlike syncro-sim this one is the *sending* side: a client, not a server. It generates --count
 * incident events (new / refire / resolve, mixed by --mix, every choice drawn from --seed), signs
 * each one as the webhook contract asks, POSTs it to --url at --rate events per second with at
 * most --concurrency events unfinished, retries transient failures, and writes one JSON line per
 * event to --log once that event's outcome is final. A test reads the log to compute what the
 * gateway must hold afterwards (which incidents exist, the last accepted status of each, ...).
 *
 * Wire contract (the gateway's webhook endpoint implements it):
 *   POST {url}                      Content-Type: application/json
 *   X-MSPSync-Timestamp: <unix seconds>
 *   X-MSPSync-Signature: v1=<64 lowercase hex of HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 *   2xx: durably queued.  4xx except 429: bad input, final ("rejected").
 *   429, 5xx, connection errors, timeouts: transient, retried (backoff 100 ms doubling to 2 s).
 *
 * Invariants:
 *  - One thread, one curl multi handle driven by a curl_multi_poll loop. Pacing, retry backoff
 *    and the shutdown deadline share one timerfd handed to curl_multi_poll as an extra
 *    descriptor, so sends are spaced evenly (microsecond timer, not millisecond poll ticks) and
 *    nothing ever sleeps.
 *  - At most one event per incident is unfinished at any time: an event for incident X starts
 *    only after the previous event of X got its final answer (2xx, a final 4xx, or given up).
 *    Busy-incident policy: WAIT. When the drawn event targets a busy incident the generator
 *    holds that one event, and draws nothing else, until the incident is idle; in-flight
 *    requests and retries of other events carry on meanwhile. Because the generator never
 *    looks at which incidents happen to be busy, the sequence of (kind, incident, status) is a
 *    pure function of --seed and the options whenever every event is accepted, whatever the
 *    timing or the concurrency. The cost is a stall of one round trip (one backoff if that
 *    incident is being retried), visible as a lower achieved rate in the summary.
 *  - An unfinished event holds one of the --concurrency slots from its first attempt until its
 *    final answer, backoff included, so a failing gateway slows the sender down instead of
 *    piling up events.
 *  - Each incident keeps two states. `accepted` follows 2xx answers only: what the gateway
 *    holds. `projected` is what the generator draws from: the status of the last event sent,
 *    rolled back to `accepted` when that event ends rejected or failed. They differ only while
 *    an event of that incident is unfinished. "resolve" draws among projected-open incidents.
 *  - Retries resend the same body bytes with a fresh timestamp and signature.
 *  - The secret is never printed.
 *  - Everything allocated is freed on every exit path, signals included (ASan build leak-free).
 *
 * Usage: mtp-sim --url URL --secret S [--count N] [--rate R] [--concurrency C] ... (see --help)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/timerfd.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MTP_MAX_CONCURRENCY  1024
#define MTP_MAX_COUNT        INT64_C(10000000)
#define MTP_MAX_ORGS         1000000
#define MTP_MAX_PREFIX       64
#define MTP_RESP_CAP         4096   /* response bytes kept to quote the gateway's error */
#define MTP_ERROR_QUOTE      200    /* at most this much of it reaches the log */
#define MTP_BACKOFF_FIRST_MS 100
#define MTP_BACKOFF_MAX_MS   2000
#define MTP_LAG_MAX_US       10000  /* a pacing backlog older than this is dropped, not burst */
#define MTP_DRAIN_MAX_MS     5000   /* after a signal, in-flight requests get at most this long */
#define MTP_POLL_CAP_MS      100    /* bounds how late a signal is noticed */
#define MTP_SUBJECTS         200    /* subjects are user<k>@... or DEVICE-<k>, k in 1..200 */

/* ------------------------------------------------------------------------------------------ */
/* small utilities                                                                             */
/* ------------------------------------------------------------------------------------------ */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/** Formats epoch milliseconds as RFC 3339 UTC with millis, e.g. 2026-11-23T21:45:00.123Z. */
static void fmt_rfc3339_ms(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) { /* before 1970: floor, not truncate */
        frac += 1000;
        t -= 1;
    }
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", frac);
}

static void oom(void)
{
    fprintf(stderr, "mtp-sim: out of memory\n");
    abort();
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        oom();
    return p;
}

static void *xrealloc(void *p, size_t n, size_t sz)
{
    if (sz && n > SIZE_MAX / sz)
        oom();
    size_t bytes = n * sz;
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q)
        oom();
    return q;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

/** Returns a new string (caller frees) formatted like printf; aborts on out of memory. */
static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    return s;
}

/** Parses a whole decimal integer within [min, max]; returns 0 on success, -1 otherwise. */
static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/** splitmix64: tiny, fast, and good enough to make test traffic from a seed. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/** A uniform draw in [0, n); n > 0. The modulo bias (n / 2^64) does not matter here. */
static uint32_t rng_below(uint64_t *state, uint32_t n) { return (uint32_t)(rng_next(state) % n); }

/* ------------------------------------------------------------------------------------------ */
/* generated vocabulary: organisations, alert types                                            */
/* ------------------------------------------------------------------------------------------ */

static const char *const ORG_WORD_A[] = {
    "Acme",     "Northwind", "Bluebird", "Harbor",      "Summit",  "Redwood", "Lakeside", "Ironbridge",
    "Pioneer",  "Silverline", "Oakmont", "Riverside",   "Granite", "Brightwater", "Kestrel", "Meridian",
};
static const char *const ORG_WORD_B[] = {
    "Dental", "Logistics", "Legal",  "Accounting", "Engineering", "Media",
    "Health", "Construction", "Realty", "Bakery",  "Veterinary",  "Consulting",
};
static const char *const ORG_SUFFIX[] = {"Ltd", "LLC", "Inc.", "GmbH", "B.V.", "Pty Ltd"};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *const SEVERITIES[] = {"info", "low", "medium", "high", "critical"};
#define N_SEVERITIES NELEM(SEVERITIES)
#define SEV_NONE N_SEVERITIES /* --severities none=W: the incident carries "severity": null */

/* What the portal says about the alert types it knows; any other --alert-types entry gets a
 * generic title and a severity drawn per incident. */
typedef struct alert_info {
    const char *type;
    bool about_user;    /* subject is a user e-mail rather than a device name */
    int severity;       /* index into SEVERITIES */
    const char *title;
    const char *detail; /* follows the subject in the description */
} alert_info;

static const alert_info KNOWN_ALERTS[] = {
    {"locked_out_user", true, 3, "User account locked out",
     "was locked out after repeated failed sign-in attempts."},
    {"password_expiring", true, 1, "Password expiring soon",
     "has a password that expires within 7 days."},
    {"device_offline", false, 2, "Device offline",
     "has not checked in with the portal for more than 15 minutes."},
    {"backup_failed", false, 3, "Backup failed", "failed its last scheduled backup job."},
    {"disk_space_low", false, 2, "Low disk space",
     "has less than 10% free space on its system volume."},
};

static const alert_info *alert_known(const char *type)
{
    for (size_t i = 0; i < NELEM(KNOWN_ALERTS); i++)
        if (!strcmp(KNOWN_ALERTS[i].type, type))
            return &KNOWN_ALERTS[i];
    return NULL;
}

/** Unknown types are about a user when their name says so; otherwise about a device. */
static bool alert_about_user(const char *type)
{
    const alert_info *k = alert_known(type);
    if (k)
        return k->about_user;
    static const char *const USER_WORDS[] = {"user", "password", "login", "mfa", "account",
                                             "mailbox"};
    for (size_t i = 0; i < NELEM(USER_WORDS); i++)
        if (strstr(type, USER_WORDS[i]))
            return true;
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* configuration: one table serves getopt_long and --help                                      */
/* ------------------------------------------------------------------------------------------ */

typedef enum { KIND_NEW, KIND_REFIRE, KIND_RESOLVE, KIND__N } ev_kind;
static const char *const KIND_NAMES[KIND__N] = {"new", "refire", "resolve"};

typedef struct mtp_config {
    const char *url;       /* borrowed from argv */
    const char *secret;    /* borrowed from argv; never printed */
    const char *log_path;  /* borrowed from argv; NULL: no log */
    const char *id_prefix; /* borrowed from argv */
    int64_t count, concurrency, orgs, max_retries, timeout_ms;
    double rate;           /* events per second; 0: as fast as the concurrency allows */
    uint64_t seed;
    int mix[KIND__N];      /* percentages, sum 100 */
    char **alert_types;    /* owned */
    size_t n_alert_types;
    bool utf8_titles;      /* --titles utf8 */
    int64_t burst;         /* events started together; the bursts keep the average --rate */
    int sev_weight[N_SEVERITIES + 1]; /* --severities (and none); all 0: the types decide */
    int sev_total;
} mtp_config;

enum {
    OPT_URL = 256,
    OPT_SECRET,
    OPT_COUNT,
    OPT_RATE,
    OPT_CONCURRENCY,
    OPT_ORGS,
    OPT_MIX,
    OPT_SEED,
    OPT_LOG,
    OPT_ALERT_TYPES,
    OPT_ID_PREFIX,
    OPT_MAX_RETRIES,
    OPT_TIMEOUT_MS,
    OPT_TITLES,
    OPT_BURST,
    OPT_SEVERITIES,
    OPT_HELP,
};

typedef struct opt_def {
    const char *name;
    int id;
    const char *arg; /* NULL: takes no argument */
    const char *help;
} opt_def;

#define DEFAULT_ALERT_TYPES "locked_out_user,password_expiring,device_offline,backup_failed,disk_space_low"
#define DEFAULT_MIX         "new=70,refire=20,resolve=10"

static const opt_def OPTIONS[] = {
    {"url", OPT_URL, "URL",
     "webhook endpoint, e.g. http://127.0.0.1:PORT/v1/webhooks/mtp/acme (required)"},
    {"secret", OPT_SECRET, "S", "HMAC-SHA256 signing secret, used as given (required)"},
    {"count", OPT_COUNT, "N", "events to send (default 100)"},
    {"rate", OPT_RATE, "R",
     "events per second, evenly spaced; 0 = as fast as --concurrency allows (default 50)"},
    {"concurrency", OPT_CONCURRENCY, "C",
     "max unfinished events, retry backoff included (default 16)"},
    {"orgs", OPT_ORGS, "N", "organisations org-0001..org-N (default 50)"},
    {"mix", OPT_MIX, "SPEC", "kind percentages, sum 100 (default " DEFAULT_MIX ")"},
    {"seed", OPT_SEED, "N", "seed for every choice (default 1)"},
    {"log", OPT_LOG, "PATH", "write one JSON line per event once its outcome is final"},
    {"alert-types", OPT_ALERT_TYPES, "A,B,..", "alert types (default " DEFAULT_ALERT_TYPES ")"},
    {"id-prefix", OPT_ID_PREFIX, "P",
     "incident ids are P-1, P-2, ... ([A-Za-z0-9._-], default inc)"},
    {"max-retries", OPT_MAX_RETRIES, "N",
     "retries of a transient failure, backoff 100 ms doubling to 2 s (default 50)"},
    {"timeout-ms", OPT_TIMEOUT_MS, "MS", "per-request timeout (default 10000)"},
    {"titles", OPT_TITLES, "ascii|utf8",
     "utf8: titles of 240..260 bytes mixing Latin-1, euro, CJK "
     "and emoji characters, drawn from --seed (default ascii)"},
    {"burst", OPT_BURST, "N",
     "start events N at a time, every N / --rate seconds: the same average "
     "rate, bursty arrivals (default 1: evenly spaced)"},
    {"severities", OPT_SEVERITIES, "SPEC",
     "severity weights, e.g. info=10,low=20,medium=30,high=25,"
     "critical=10,none=5 (none: \"severity\": null); every incident's severity is drawn from them, "
     "known alert types included (default: the known types' own, a uniform draw for the others)"},
    {"help", OPT_HELP, NULL, "print this help"},
};
#define N_OPTIONS NELEM(OPTIONS)

static void usage(FILE *f)
{
    fprintf(f, "usage: mtp-sim --url URL --secret S [options]\n"
               "Sends signed MTP incident webhooks at a paced rate; see the top of mtp_sim.c.\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char left[48];
        snprintf(left, sizeof(left), "--%s%s%s", OPTIONS[i].name, OPTIONS[i].arg ? " " : "",
                 OPTIONS[i].arg ? OPTIONS[i].arg : "");
        fprintf(f, "  %-24s %s\n", left, OPTIONS[i].help);
    }
    fprintf(
        f,
        "Log line: {\"seq\",\"kind\",\"incident_id\",\"org_id\",\"severity\",\"alert_type\",\"subject\",\"title\","
        "\"status\",\"occurred_at\",\"http_status\",\"attempts\",\"sent_at_us\",\"accepted_at_us\",\"error\"}\n"
        "Stdout at the end: {\"sent\",\"accepted\",\"rejected\",\"failed\",\"elapsed_s\",\"rate\","
        "\"latency_ms\":{\"p50\",\"p99\",\"max\"}}\n"
        "Exit status: 0 when all --count events were accepted, 1 otherwise, 2 on bad usage.\n");
}

/** Parses "high=30,none=5"; severities left out weigh 0. Returns 0 or -1 (errstr set). */
static int parse_severities(const char *spec, mtp_config *c, char *errstr, size_t errstr_size) {
    char *copy = xstrdup(spec), *save = NULL;
    int rc = 0;
    memset(c->sev_weight, 0, sizeof(c->sev_weight));
    c->sev_total = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        int64_t v;
        int k = -1;
        if (eq) {
            *eq = '\0';
            for (int i = 0; i < (int)N_SEVERITIES; i++)
                if (!strcmp(tok, SEVERITIES[i]))
                    k = i;
            if (!strcmp(tok, "none"))
                k = SEV_NONE;
        }
        if (!eq || k < 0 || parse_i64(eq + 1, 0, 1000000, &v) != 0) {
            snprintf(errstr, errstr_size,
                     "bad --severities item '%s%s%s' (want "
                     "info|low|medium|high|critical|none=0..1000000)",
                     tok, eq ? "=" : "", eq ? eq + 1 : "");
            rc = -1;
            break;
        }
        c->sev_weight[k] = (int)v;
        c->sev_total += (int)v;
    }
    if (rc == 0 && c->sev_total <= 0) {
        snprintf(errstr, errstr_size, "--severities weights add up to 0");
        rc = -1;
    }
    free(copy);
    return rc;
}

/** The severity of an incident as JSON: a string, or null for SEV_NONE (new reference). */
static json_t *severity_json(uint8_t sev) {
    return sev < N_SEVERITIES ? json_string(SEVERITIES[sev]) : json_null();
}

/** Parses "new=70,refire=20,resolve=10"; kinds left out are 0. Returns 0 or -1 (errstr set). */
static int parse_mix(const char *spec, int mix[KIND__N], char *errstr, size_t errstr_size)
{
    char *copy = xstrdup(spec), *save = NULL;
    int sum = 0, rc = 0;
    memset(mix, 0, sizeof(int) * KIND__N);
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        int64_t v;
        int k = -1;
        if (eq) {
            *eq = '\0';
            for (int i = 0; i < KIND__N; i++)
                if (!strcmp(tok, KIND_NAMES[i]))
                    k = i;
        }
        if (!eq || k < 0 || parse_i64(eq + 1, 0, 100, &v) != 0) {
            snprintf(errstr, errstr_size, "bad --mix item '%s%s%s' (want new|refire|resolve=0..100)",
                     tok, eq ? "=" : "", eq ? eq + 1 : "");
            rc = -1;
            break;
        }
        mix[k] = (int)v;
        sum += (int)v;
    }
    if (rc == 0 && sum != 100) {
        snprintf(errstr, errstr_size, "--mix percentages add up to %d, not 100", sum);
        rc = -1;
    }
    free(copy);
    return rc;
}

static void alert_types_free(mtp_config *c)
{
    for (size_t i = 0; i < c->n_alert_types; i++)
        free(c->alert_types[i]);
    free(c->alert_types);
    c->alert_types = NULL;
    c->n_alert_types = 0;
}

/** Splits a comma list into c->alert_types (replacing any). Returns 0 or -1 (errstr set). */
static int parse_alert_types(mtp_config *c, const char *list, char *errstr, size_t errstr_size)
{
    alert_types_free(c);
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 0) {
            snprintf(errstr, errstr_size, "empty entry in --alert-types");
            return -1;
        }
        c->alert_types = xrealloc(c->alert_types, c->n_alert_types + 1, sizeof(char *));
        c->alert_types[c->n_alert_types++] = strndup(p, n);
        if (!c->alert_types[c->n_alert_types - 1])
            oom();
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static bool prefix_valid(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > MTP_MAX_PREFIX)
        return false;
    for (; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    return true;
}

/**
 * Fills *c from argv. Returns 0 to run, 1 when --help was printed, -1 on a bad argument (errstr
 * set). c->alert_types is owned by c afterwards in every case (free with alert_types_free).
 */
static int config_parse(mtp_config *c, int argc, char **argv, char *errstr, size_t errstr_size)
{
    memset(c, 0, sizeof(*c));
    c->count = 100;
    c->rate = 50;
    c->burst = 1;
    c->concurrency = 16;
    c->orgs = 50;
    c->seed = 1;
    c->id_prefix = "inc";
    c->max_retries = 50;
    c->timeout_ms = 10000;
    if (parse_mix(DEFAULT_MIX, c->mix, errstr, errstr_size) != 0 ||
        parse_alert_types(c, DEFAULT_ALERT_TYPES, errstr, errstr_size) != 0)
        return -1;

    struct option longopts[N_OPTIONS + 1];
    memset(longopts, 0, sizeof(longopts));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        longopts[i].name = OPTIONS[i].name;
        longopts[i].has_arg = OPTIONS[i].arg ? required_argument : no_argument;
        longopts[i].val = OPTIONS[i].id;
    }
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int64_t v;
        const char *a = optarg;
        bool bad = false;
        switch (opt) {
        case 'h':
        case OPT_HELP:
            return 1;
        case OPT_URL:
            c->url = a;
            bad = strncmp(a, "http://", 7) != 0 && strncmp(a, "https://", 8) != 0;
            break;
        case OPT_SECRET:
            c->secret = a;
            bad = !*a;
            break;
        case OPT_COUNT:
            bad = parse_i64(a, 0, MTP_MAX_COUNT, &c->count) != 0;
            break;
        case OPT_RATE: {
            char *end = NULL;
            errno = 0;
            c->rate = strtod(a, &end);
            bad = errno || !*a || *end || !(c->rate >= 0 && c->rate <= 1e6);
            break;
        }
        case OPT_CONCURRENCY:
            bad = parse_i64(a, 1, MTP_MAX_CONCURRENCY, &c->concurrency) != 0;
            break;
        case OPT_ORGS:
            bad = parse_i64(a, 1, MTP_MAX_ORGS, &c->orgs) != 0;
            break;
        case OPT_MIX:
            if (parse_mix(a, c->mix, errstr, errstr_size) != 0)
                return -1;
            break;
        case OPT_SEED:
            bad = parse_i64(a, 0, INT64_MAX, &v) != 0;
            c->seed = (uint64_t)v;
            break;
        case OPT_LOG:
            c->log_path = a;
            bad = !*a;
            break;
        case OPT_ALERT_TYPES:
            if (parse_alert_types(c, a, errstr, errstr_size) != 0)
                return -1;
            break;
        case OPT_ID_PREFIX:
            c->id_prefix = a;
            bad = !prefix_valid(a);
            break;
        case OPT_MAX_RETRIES:
            bad = parse_i64(a, 0, 1000000, &c->max_retries) != 0;
            break;
        case OPT_TIMEOUT_MS:
            bad = parse_i64(a, 1, 3600000, &c->timeout_ms) != 0;
            break;
        case OPT_BURST:
            bad = parse_i64(a, 1, MTP_MAX_CONCURRENCY, &c->burst) != 0;
            break;
        case OPT_SEVERITIES:
            if (parse_severities(a, c, errstr, errstr_size) != 0)
                return -1;
            break;
        case OPT_TITLES:
            c->utf8_titles = !strcmp(a, "utf8");
            bad = !c->utf8_titles && strcmp(a, "ascii") != 0;
            break;
        default:
            snprintf(errstr, errstr_size, "unknown option or missing value: %s",
                     argv[optind - 1 > 0 ? optind - 1 : 0]);
            return -1;
        }
        if (bad) {
            const char *name = "?";
            for (size_t i = 0; i < N_OPTIONS; i++)
                if (OPTIONS[i].id == opt)
                    name = OPTIONS[i].name;
            snprintf(errstr, errstr_size, "bad value for --%s: '%s'", name, a);
            return -1;
        }
    }
    if (optind < argc) {
        snprintf(errstr, errstr_size, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (!c->url || !c->secret) {
        snprintf(errstr, errstr_size, "--url and --secret are required");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* data model                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef enum { ST_NONE, ST_OPEN, ST_RESOLVED } inc_state;
typedef enum { OUT_ACCEPTED, OUT_REJECTED, OUT_FAILED } outcome;

typedef struct job job;

typedef struct incident {
    char *id, *subject, *title, *description; /* owned */
    uint32_t org;         /* index into the org tables */
    uint32_t type;        /* index into cfg.alert_types */
    uint8_t severity;     /* index into SEVERITIES */
    inc_state projected;  /* what the generator draws from (see the top comment) */
    inc_state accepted;   /* follows 2xx answers only */
    int64_t open_pos;     /* index in sim.open[], -1 unless projected open */
    job *busy;            /* borrowed: the unfinished event of this incident, or NULL */
} incident;

/* One unfinished event and the curl handle that carries it. Jobs are a fixed pool of
 * --concurrency; an easy handle is reused from event to event (keeps its options). */
struct job {
    CURL *easy;                 /* owned */
    struct curl_slist *headers; /* owned; rebuilt per attempt (fresh timestamp and signature) */
    bool used;                  /* holds an event */
    bool in_flight;             /* the easy handle is in the multi handle */
    uint64_t seq;
    ev_kind kind;
    uint32_t inc;               /* index into sim.inc */
    inc_state status;           /* ST_OPEN or ST_RESOLVED */
    char occurred_at[32];
    char *body;                 /* owned; the same bytes on every attempt */
    size_t body_len;
    int64_t attempts;
    int64_t sent_at_us;         /* CLOCK_REALTIME at the first attempt */
    int64_t attempt_mono_us;    /* CLOCK_MONOTONIC at the start of the current attempt */
    int64_t retry_at_mono_us;   /* when waiting for a retry */
    long http_status;           /* of the last answer, 0 when the last attempt got none */
    char *error;                /* owned; why the last attempt failed */
    size_t resp_len;
    char resp[MTP_RESP_CAP];
    char errbuf[CURL_ERROR_SIZE];
};

typedef struct mtp_sim {
    mtp_config cfg;
    char **org_ids, **org_names; /* owned, cfg.orgs each */

    incident *inc; /* owned; every incident generated so far, in creation order */
    size_t n_inc, cap_inc;
    uint32_t *open; /* owned; indices of projected-open incidents (order: swap-remove) */
    size_t n_open, cap_open;
    uint64_t rng;

    bool have_draw; /* a drawn event waits for its incident to be idle */
    ev_kind draw_kind;
    uint32_t draw_inc;

    job *jobs;       /* owned, cfg.concurrency */
    job **free_jobs; /* stack of unused jobs */
    size_t n_free;
    size_t n_waiting; /* jobs waiting for a retry */

    CURLM *multi;
    int tfd; /* timerfd: next send, next retry or the shutdown deadline */
    FILE *log;
    bool log_failed;

    uint64_t emitted, accepted, rejected, failed;
    double *lat_ms; /* owned; sent->accepted of each accepted event */
    size_t n_lat, cap_lat;

    int64_t interval_us, next_due_us;
    int64_t burst_started; /* events of the current burst started so far */
    bool stopping, fatal;
    int64_t drain_deadline_us;
    int64_t t_start_us, t_end_us;
} mtp_sim;

static volatile sig_atomic_t g_signals;

static void on_signal(int sig)
{
    (void)sig;
    if (g_signals < 2)
        g_signals++;
}

/* ------------------------------------------------------------------------------------------ */
/* generator                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/** Moves incident i to projected state st, keeping sim.open exactly the projected-open set. */
static void set_projected(mtp_sim *s, uint32_t i, inc_state st)
{
    incident *in = &s->inc[i];
    if (st == ST_OPEN && in->open_pos < 0) {
        if (s->n_open == s->cap_open) {
            s->cap_open = s->cap_open ? s->cap_open * 2 : 256;
            s->open = xrealloc(s->open, s->cap_open, sizeof(*s->open));
        }
        in->open_pos = (int64_t)s->n_open;
        s->open[s->n_open++] = i;
    } else if (st != ST_OPEN && in->open_pos >= 0) {
        uint32_t last = s->open[--s->n_open];
        s->open[in->open_pos] = last;
        s->inc[last].open_pos = in->open_pos;
        in->open_pos = -1;
    }
    in->projected = st;
}

/*
 * --titles utf8: "<the usual title> " filled with pieces drawn from a pool of 1- to 4-byte
 * characters up to a drawn length of 240..260 bytes (MTP_UTF8_TITLE_MIN..MAX), so that the
 * receiver's 250-byte subject cut falls at every offset inside every kind of character.
 */
#define MTP_UTF8_TITLE_MIN 240
#define MTP_UTF8_TITLE_MAX 260
static char *utf8_title(mtp_sim *s, const char *base)
{
    static const char *const PIECES[] = {
        "\xC3\xA9", "\xC3\x9C", "\xC3\x9F",             /* é Ü ß: Latin-1, 2 bytes */
        "\xE2\x82\xAC",                                /* €: 3 bytes */
        "\xE4\xB8\xAD", "\xE6\x96\x87", "\xE5\xAD\x97", /* 中文字: CJK, 3 bytes */
        "\xF0\x9F\x98\x80", "\xF0\x9F\x9A\x80",         /* 😀 🚀: emoji, 4 bytes */
        "a", "Z", " ",
    };
    size_t want = MTP_UTF8_TITLE_MIN +
                  rng_below(&s->rng, MTP_UTF8_TITLE_MAX - MTP_UTF8_TITLE_MIN + 1);
    char buf[MTP_UTF8_TITLE_MAX + 1];
    size_t len = (size_t)snprintf(buf, sizeof(buf), "%s ", base);
    if (len >= want) /* a base title that long (a custom alert type) is used as it is */
        return xstrdup(base);
    while (len < want) {
        const char *p = PIECES[rng_below(&s->rng, NELEM(PIECES))];
        size_t n = strlen(p);
        if (len + n > want) /* the last few bytes: ASCII, to land exactly on want */
            p = ".", n = 1;
        memcpy(buf + len, p, n);
        len += n;
    }
    buf[len] = '\0';
    return xstrdup(buf);
}

/** Creates the next incident from the RNG; returns its index (never busy, state none). */
static uint32_t incident_create(mtp_sim *s)
{
    if (s->n_inc == s->cap_inc) {
        s->cap_inc = s->cap_inc ? s->cap_inc * 2 : 256;
        s->inc = xrealloc(s->inc, s->cap_inc, sizeof(*s->inc));
    }
    uint32_t idx = (uint32_t)s->n_inc++;
    incident *in = &s->inc[idx];
    memset(in, 0, sizeof(*in));
    in->open_pos = -1;
    in->org = rng_below(&s->rng, (uint32_t)s->cfg.orgs);
    in->type = rng_below(&s->rng, (uint32_t)s->cfg.n_alert_types);
    uint32_t k = rng_below(&s->rng, MTP_SUBJECTS) + 1;
    /* drawn always: same consumption per type */
    uint32_t sev = s->cfg.sev_total ? rng_below(&s->rng, (uint32_t)s->cfg.sev_total)
                                    : rng_below(&s->rng, N_SEVERITIES);

    const char *type = s->cfg.alert_types[in->type];
    const char *org_id = s->org_ids[in->org];
    const alert_info *known = alert_known(type);
    if (s->cfg.sev_total) { /* --severities: the weights decide, whatever the type */
        int k = 0;
        while (k < (int)SEV_NONE && sev >= (uint32_t)s->cfg.sev_weight[k])
            sev -= (uint32_t)s->cfg.sev_weight[k++];
        in->severity = (uint8_t)k;
    } else {
        in->severity = (uint8_t)(known ? known->severity : (int)sev);
    }
    in->id = xasprintf("%s-%u", s->cfg.id_prefix, idx + 1);
    in->subject = alert_about_user(type) ? xasprintf("user%u@%s.example", k, org_id)
                                         : xasprintf("DEVICE-%u", k);
    if (known) {
        in->title = xasprintf("%s: %s", known->title, in->subject);
        in->description = xasprintf("%s %s Organisation: %s.", in->subject, known->detail,
                                    s->org_names[in->org]);
    } else {
        in->title = xasprintf("Alert %s: %s", type, in->subject);
        in->description = xasprintf("%s raised an alert of type %s. Organisation: %s.", in->subject,
                                    type, s->org_names[in->org]);
    }
    if (s->cfg.utf8_titles) { /* drawn last: the ascii runs' draws stay as they were */
        char *t = utf8_title(s, in->title);
        free(in->title);
        in->title = t;
    }
    return idx;
}

/**
 * Draws the next event: its kind by --mix, then its incident. Never looks at which incidents
 * are busy, so the draws depend on the seed and on earlier draws only.
 */
static void draw_event(mtp_sim *s)
{
    uint32_t r = rng_below(&s->rng, 100);
    ev_kind k = r < (uint32_t)s->cfg.mix[KIND_NEW] ? KIND_NEW
              : r < (uint32_t)(s->cfg.mix[KIND_NEW] + s->cfg.mix[KIND_REFIRE]) ? KIND_REFIRE
                                                                              : KIND_RESOLVE;
    s->have_draw = true;
    if (k == KIND_REFIRE && s->n_inc > 0) {
        s->draw_kind = KIND_REFIRE;
        s->draw_inc = rng_below(&s->rng, (uint32_t)s->n_inc);
    } else if (k == KIND_RESOLVE && s->n_open > 0) {
        s->draw_kind = KIND_RESOLVE;
        s->draw_inc = s->open[rng_below(&s->rng, (uint32_t)s->n_open)];
    } else {
        s->draw_kind = KIND_NEW; /* also the fallback when there is nothing to refire/resolve */
        s->draw_inc = incident_create(s);
    }
}

/**
 * True when the drawn event may start now: its incident is idle. A resolve whose incident is
 * no longer projected open (its unfinished event was just rejected or given up, rolling the
 * state back) draws another open incident, or becomes a new one if none is open.
 */
static bool draw_ready(mtp_sim *s)
{
    for (;;) {
        incident *in = &s->inc[s->draw_inc];
        if (in->busy)
            return false;
        if (s->draw_kind != KIND_RESOLVE || in->projected == ST_OPEN)
            return true;
        if (s->n_open == 0) {
            s->draw_kind = KIND_NEW;
            s->draw_inc = incident_create(s);
        } else {
            s->draw_inc = s->open[rng_below(&s->rng, (uint32_t)s->n_open)];
        }
    }
}

/** Returns the webhook body for job j as a new string (caller frees), or NULL on failure. */
static char *body_build(const mtp_sim *s, const job *j)
{
    const incident *in = &s->inc[j->inc];
    const char *org_id = s->org_ids[in->org];
    char *link = xasprintf("https://portal.mtp.example/orgs/%s/incidents/%s", org_id, in->id);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:s}", "id", in->id,
                          "org_id", org_id, "org_name", s->org_names[in->org], "alert_type",
                          s->cfg.alert_types[in->type], "severity", severity_json(in->severity),
                          "status", j->status == ST_RESOLVED ? "resolved" : "open", "subject",
                          in->subject, "title", in->title, "description", in->description,
                          "occurred_at", j->occurred_at, "link", link);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    free(link);
    return body;
}

/* ------------------------------------------------------------------------------------------ */
/* requests                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    job *j = userdata;
    size_t n = size * nmemb;
    size_t room = sizeof(j->resp) - 1 - j->resp_len;
    size_t take = n < room ? n : room;
    memcpy(j->resp + j->resp_len, ptr, take);
    j->resp_len += take;
    j->resp[j->resp_len] = '\0';
    return n; /* the rest is dropped, not an error */
}

/** Writes "v1=<hex>" for HMAC-SHA256(secret, ts "." body) into out. Returns 0 or -1. */
static int sign_v1(const char *secret, const char *ts, const char *body, size_t body_len,
                   char out[68])
{
    size_t ts_len = strlen(ts);
    unsigned char *data = xcalloc(ts_len + 1 + body_len, 1);
    memcpy(data, ts, ts_len);
    data[ts_len] = '.';
    memcpy(data + ts_len + 1, body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    unsigned char *ok = HMAC(EVP_sha256(), secret, (int)strlen(secret), data,
                             ts_len + 1 + body_len, mac, &mac_len);
    free(data);
    if (!ok || mac_len != 32)
        return -1;
    static const char HEX[] = "0123456789abcdef";
    memcpy(out, "v1=", 3);
    for (unsigned int i = 0; i < mac_len; i++) {
        out[3 + 2 * i] = HEX[mac[i] >> 4];
        out[3 + 2 * i + 1] = HEX[mac[i] & 15];
    }
    out[3 + 2 * mac_len] = '\0';
    return 0;
}

static void job_finish(mtp_sim *s, job *j, outcome o, int64_t accepted_at_us);

/** Starts one attempt of job j: fresh timestamp and signature, same body. */
static void attempt_start(mtp_sim *s, job *j)
{
    char ts[24], sig[68], h_ts[64], h_sig[96];
    time_t now = time(NULL);
    snprintf(ts, sizeof(ts), "%lld", (long long)now);
    if (sign_v1(s->cfg.secret, ts, j->body, j->body_len, sig) != 0) {
        free(j->error);
        j->error = xstrdup("cannot compute the HMAC signature");
        s->fatal = true;
        job_finish(s, j, OUT_FAILED, 0);
        return;
    }
    snprintf(h_ts, sizeof(h_ts), "X-MSPSync-Timestamp: %s", ts);
    snprintf(h_sig, sizeof(h_sig), "X-MSPSync-Signature: %s", sig);
    curl_slist_free_all(j->headers);
    j->headers = NULL;
    const char *lines[] = {"Content-Type: application/json", h_ts, h_sig, "Expect:"};
    for (size_t i = 0; i < NELEM(lines); i++) {
        struct curl_slist *l = curl_slist_append(j->headers, lines[i]);
        if (!l)
            oom();
        j->headers = l;
    }
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body);
    j->resp_len = 0;
    j->resp[0] = '\0';
    j->errbuf[0] = '\0';
    j->attempts++;
    j->attempt_mono_us = mono_us();
    if (j->attempts == 1)
        j->sent_at_us = wall_us();
    CURLMcode mc = curl_multi_add_handle(s->multi, j->easy);
    if (mc != CURLM_OK) {
        free(j->error);
        j->error = xasprintf("curl_multi_add_handle: %s", curl_multi_strerror(mc));
        s->fatal = true;
        job_finish(s, j, OUT_FAILED, 0);
        return;
    }
    j->in_flight = true;
}

/** Starts the drawn event on a free job. The caller checked capacity and draw_ready(). */
static void emit(mtp_sim *s)
{
    job *j = s->free_jobs[--s->n_free];
    j->used = true;
    j->seq = ++s->emitted;
    j->kind = s->draw_kind;
    j->inc = s->draw_inc;
    j->status = j->kind == KIND_RESOLVE ? ST_RESOLVED : ST_OPEN;
    fmt_rfc3339_ms(wall_us() / 1000, j->occurred_at);
    s->have_draw = false;
    s->inc[j->inc].busy = j;
    set_projected(s, j->inc, j->status);
    j->body = body_build(s, j);
    if (!j->body) {
        j->error = xstrdup("cannot build the JSON body");
        s->fatal = true;
        job_finish(s, j, OUT_FAILED, 0);
        return;
    }
    j->body_len = strlen(j->body);
    attempt_start(s, j);
}

/** Connection trouble and timeouts are worth retrying; a bad URL or option is not. */
static bool curl_transient(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_FUNCTION_NOT_FOUND:
        return false;
    default:
        return true;
    }
}

/** Returns a new string saying why an attempt did not get a 2xx (quotes {"error": ...}). */
static char *describe_failure(const job *j, CURLcode rc, long status)
{
    if (rc != CURLE_OK)
        return j->errbuf[0] ? xasprintf("%s (%s)", curl_easy_strerror(rc), j->errbuf)
                            : xstrdup(curl_easy_strerror(rc));
    json_t *root = json_loadb(j->resp, j->resp_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(root, "error"));
    char *out = msg ? xasprintf("http %ld: %.*s", status, MTP_ERROR_QUOTE, msg)
                    : xasprintf("http %ld", status);
    json_decref(root);
    return out;
}

static int64_t backoff_ms(int64_t attempts_done)
{
    int64_t ms = MTP_BACKOFF_FIRST_MS;
    for (int64_t i = 1; i < attempts_done && ms < MTP_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < MTP_BACKOFF_MAX_MS ? ms : MTP_BACKOFF_MAX_MS;
}

/** Handles the answer (or failure) of job j's current attempt. */
static void attempt_done(mtp_sim *s, job *j, CURLcode rc)
{
    curl_multi_remove_handle(s->multi, j->easy);
    j->in_flight = false;
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    j->http_status = status;
    int64_t now = mono_us();
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        if (s->n_lat == s->cap_lat) {
            s->cap_lat = s->cap_lat ? s->cap_lat * 2 : 1024;
            s->lat_ms = xrealloc(s->lat_ms, s->cap_lat, sizeof(*s->lat_ms));
        }
        s->lat_ms[s->n_lat++] = (double)(now - j->attempt_mono_us) / 1000.0;
        free(j->error);
        j->error = NULL;
        job_finish(s, j, OUT_ACCEPTED, wall_us());
        return;
    }
    char *why = describe_failure(j, rc, status);
    free(j->error);
    j->error = NULL;
    bool transient = rc != CURLE_OK ? curl_transient(rc) : status == 429 || status >= 500;
    if (!transient) {
        j->error = why;
        job_finish(s, j, rc == CURLE_OK ? OUT_REJECTED : OUT_FAILED, 0);
    } else if (s->stopping) {
        j->error = xasprintf("interrupted after %" PRId64 " attempts: %s", j->attempts, why);
        free(why);
        job_finish(s, j, OUT_FAILED, 0);
    } else if (j->attempts > s->cfg.max_retries) {
        j->error = xasprintf("gave up after %" PRId64 " attempts: %s", j->attempts, why);
        free(why);
        job_finish(s, j, OUT_FAILED, 0);
    } else {
        j->error = why;
        j->retry_at_mono_us = now + backoff_ms(j->attempts) * 1000;
        s->n_waiting++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* outcome: log line, counters, job release                                                    */
/* ------------------------------------------------------------------------------------------ */

static void log_write(mtp_sim *s, const job *j, int64_t accepted_at_us)
{
    if (!s->log || s->log_failed)
        return;
    const incident *in = &s->inc[j->inc];
    json_t *o = json_pack(
        "{s:I, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:o, s:o}", "seq",
        (json_int_t)j->seq, "kind", KIND_NAMES[j->kind], "incident_id", in->id, "org_id",
        s->org_ids[in->org], "severity", severity_json(in->severity), "alert_type",
        s->cfg.alert_types[in->type], "subject", in->subject, "title", in->title, "status",
        j->status == ST_RESOLVED ? "resolved" : "open", "occurred_at", j->occurred_at,
        "http_status", j->http_status ? json_integer(j->http_status) : json_null(), "attempts",
        (json_int_t)j->attempts, "sent_at_us", (json_int_t)j->sent_at_us, "accepted_at_us",
        accepted_at_us ? json_integer(accepted_at_us) : json_null(), "error",
        j->error ? json_string(j->error) : json_null());
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!line || fputs(line, s->log) == EOF || fputc('\n', s->log) == EOF) {
        fprintf(stderr, "mtp-sim: cannot write the log %s: %s\n", s->cfg.log_path,
                line ? strerror(errno) : "cannot encode a line");
        s->log_failed = true;
    }
    free(line);
}

/** Records the final outcome of job j, writes its log line and returns the job to the pool. */
static void job_finish(mtp_sim *s, job *j, outcome o, int64_t accepted_at_us)
{
    incident *in = &s->inc[j->inc];
    if (o == OUT_ACCEPTED) {
        in->accepted = j->status;
        s->accepted++;
    } else {
        set_projected(s, j->inc, in->accepted); /* the gateway did not take this state */
        if (o == OUT_REJECTED)
            s->rejected++;
        else
            s->failed++;
    }
    log_write(s, j, accepted_at_us);
    in->busy = NULL;
    free(j->body);
    free(j->error);
    j->body = j->error = NULL;
    j->body_len = 0;
    j->used = false;
    j->attempts = 0;
    j->http_status = 0;
    s->free_jobs[s->n_free++] = j;
}

/* ------------------------------------------------------------------------------------------ */
/* the loop                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static size_t active_jobs(const mtp_sim *s) { return (size_t)s->cfg.concurrency - s->n_free; }

/** First signal: send nothing new, drop the retries, give in-flight requests a bounded time. */
static void begin_stop(mtp_sim *s, int64_t now)
{
    s->stopping = true;
    s->have_draw = false; /* only a refire/resolve can be held back, and it was never sent */
    int64_t grace = s->cfg.timeout_ms < MTP_DRAIN_MAX_MS ? s->cfg.timeout_ms : MTP_DRAIN_MAX_MS;
    s->drain_deadline_us = now + grace * 1000;
    for (int64_t i = 0; i < s->cfg.concurrency; i++) {
        job *j = &s->jobs[i];
        if (j->used && !j->in_flight) {
            char *e = xasprintf("interrupted before retry %" PRId64 ": %s", j->attempts,
                                j->error ? j->error : "");
            free(j->error);
            j->error = e;
            s->n_waiting--;
            job_finish(s, j, OUT_FAILED, 0);
        }
    }
}

/** Ends every in-flight request without an answer (shutdown deadline, second signal, fatal). */
static void abort_in_flight(mtp_sim *s)
{
    for (int64_t i = 0; i < s->cfg.concurrency; i++) {
        job *j = &s->jobs[i];
        if (!j->used)
            continue;
        if (j->in_flight) {
            curl_multi_remove_handle(s->multi, j->easy);
            j->in_flight = false;
            j->http_status = 0;
            free(j->error);
            j->error = xasprintf("interrupted during attempt %" PRId64 ": outcome unknown",
                                 j->attempts);
        } else {
            s->n_waiting--;
        }
        job_finish(s, j, OUT_FAILED, 0);
    }
}

static void start_due_retries(mtp_sim *s, int64_t now)
{
    for (int64_t i = 0; s->n_waiting > 0 && i < s->cfg.concurrency; i++) {
        job *j = &s->jobs[i];
        if (j->used && !j->in_flight && j->retry_at_mono_us <= now) {
            s->n_waiting--;
            attempt_start(s, j);
        }
    }
}

/** Starts new events while the pacing, the concurrency and the busy-incident rule allow. */
static void start_new_events(mtp_sim *s, int64_t now)
{
    while (!s->stopping && !s->fatal && s->emitted < (uint64_t)s->cfg.count && s->n_free > 0) {
        if (s->interval_us > 0) {
            if (now < s->next_due_us)
                return;
            if (now - s->next_due_us > MTP_LAG_MAX_US)
                s->next_due_us = now; /* stalled: start evenly again rather than burst */
        }
        if (!s->have_draw)
            draw_event(s);
        if (!draw_ready(s))
            return; /* WAIT: the incident's unfinished event ends first */
        emit(s);
        if (++s->burst_started < s->cfg.burst)
            continue; /* the rest of this burst is due now too */
        s->burst_started = 0;
        s->next_due_us += s->interval_us * s->cfg.burst;
    }
}

/** The next time the loop must act without socket activity, or INT64_MAX. */
static int64_t next_deadline(const mtp_sim *s)
{
    int64_t d = INT64_MAX;
    bool can_send = !s->stopping && !s->fatal && s->emitted < (uint64_t)s->cfg.count &&
                    s->n_free > 0 && !(s->have_draw && s->inc[s->draw_inc].busy);
    if (can_send && s->interval_us > 0)
        d = s->next_due_us;
    for (int64_t i = 0; s->n_waiting > 0 && i < s->cfg.concurrency; i++) {
        const job *j = &s->jobs[i];
        if (j->used && !j->in_flight && j->retry_at_mono_us < d)
            d = j->retry_at_mono_us;
    }
    if (s->stopping && s->drain_deadline_us < d)
        d = s->drain_deadline_us;
    return d;
}

static void arm_timer(mtp_sim *s, int64_t deadline_us)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    if (deadline_us != INT64_MAX) {
        if (deadline_us < 1)
            deadline_us = 1; /* an all-zero it_value would disarm */
        its.it_value.tv_sec = (time_t)(deadline_us / 1000000);
        its.it_value.tv_nsec = (long)(deadline_us % 1000000) * 1000;
    }
    timerfd_settime(s->tfd, TFD_TIMER_ABSTIME, &its, NULL); /* also clears a pending expiry */
}

static void read_completions(mtp_sim *s)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result; /* m is gone once the handle is removed */
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        attempt_done(s, (job *)priv, rc);
    }
}

/** Runs until every event is final or a signal's drain ends. Returns 0, or -1 on a curl error. */
static int run(mtp_sim *s)
{
    s->t_start_us = mono_us();
    s->next_due_us = s->t_start_us;
    int rc = 0;
    for (;;) {
        int64_t now = mono_us();
        if (g_signals && !s->stopping)
            begin_stop(s, now);
        if ((s->stopping && (g_signals > 1 || now >= s->drain_deadline_us)) || s->fatal)
            abort_in_flight(s);
        start_due_retries(s, now);
        start_new_events(s, now);
        if (active_jobs(s) == 0 &&
            (s->stopping || s->fatal || s->emitted == (uint64_t)s->cfg.count))
            break;

        arm_timer(s, next_deadline(s));
        struct curl_waitfd wfd = {.fd = s->tfd, .events = CURL_WAIT_POLLIN, .revents = 0};
        CURLMcode mc = curl_multi_poll(s->multi, &wfd, 1, MTP_POLL_CAP_MS, NULL);
        if (mc == CURLM_OK) {
            uint64_t expirations;
            if (wfd.revents && read(s->tfd, &expirations, sizeof(expirations)) < 0 &&
                errno != EAGAIN)
                fprintf(stderr, "mtp-sim: timerfd read: %s\n", strerror(errno));
            int running = 0;
            mc = curl_multi_perform(s->multi, &running);
        }
        if (mc != CURLM_OK) {
            fprintf(stderr, "mtp-sim: curl multi: %s\n", curl_multi_strerror(mc));
            s->fatal = true;
            rc = -1;
            continue; /* abort_in_flight() at the top, then leave */
        }
        read_completions(s);
    }
    s->t_end_us = mono_us();
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* setup, summary, teardown                                                                    */
/* ------------------------------------------------------------------------------------------ */

/** Prepares everything run() needs. Returns 0, or -1 with errstr set (then call sim_destroy). */
static int sim_init(mtp_sim *s, char *errstr, size_t errstr_size)
{
    const mtp_config *c = &s->cfg;
    s->tfd = -1;
    s->rng = c->seed ^ 0x6D7470ULL; /* "mtp": differs from syncro-sim's streams for one seed */
    s->interval_us = c->rate > 0 ? (int64_t)(1e6 / c->rate) : 0;
    if (c->rate > 0 && s->interval_us < 1)
        s->interval_us = 1;

    s->org_ids = xcalloc((size_t)c->orgs, sizeof(char *));
    s->org_names = xcalloc((size_t)c->orgs, sizeof(char *));
    for (int64_t i = 0; i < c->orgs; i++) {
        unsigned n = (unsigned)i + 1;
        s->org_ids[i] = xasprintf("org-%04u", n);
        s->org_names[i] = xasprintf("%s %s %04u %s", ORG_WORD_A[i % NELEM(ORG_WORD_A)],
                                    ORG_WORD_B[(i / NELEM(ORG_WORD_A)) % NELEM(ORG_WORD_B)], n,
                                    ORG_SUFFIX[i % NELEM(ORG_SUFFIX)]);
    }

    if (c->log_path) {
        s->log = fopen(c->log_path, "w");
        if (!s->log) {
            snprintf(errstr, errstr_size, "cannot open the log %s: %s", c->log_path, strerror(errno));
            return -1;
        }
        setvbuf(s->log, NULL, _IOFBF, 1 << 16);
    }

    s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->tfd < 0) {
        snprintf(errstr, errstr_size, "timerfd_create: %s", strerror(errno));
        return -1;
    }
    s->multi = curl_multi_init();
    if (!s->multi) {
        snprintf(errstr, errstr_size, "curl_multi_init failed");
        return -1;
    }
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)c->concurrency);

    s->jobs = xcalloc((size_t)c->concurrency, sizeof(job));
    s->free_jobs = xcalloc((size_t)c->concurrency, sizeof(job *));
    for (int64_t i = c->concurrency - 1; i >= 0; i--) {
        job *j = &s->jobs[i];
        j->easy = curl_easy_init();
        if (!j->easy) {
            snprintf(errstr, errstr_size, "curl_easy_init failed");
            return -1;
        }
        CURL *e = j->easy;
        CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, c->url);
#if LIBCURL_VERSION_NUM >= 0x075500
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        if (rc != CURLE_OK) {
            snprintf(errstr, errstr_size, "bad --url: %s", curl_easy_strerror(rc));
            return -1;
        }
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)j);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "mtp-sim/1");
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
        s->free_jobs[s->n_free++] = j;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/** Nearest-rank percentile of a sorted, non-empty array. */
static double percentile(const double *v, size_t n, double p)
{
    size_t rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

static void print_summary(mtp_sim *s)
{
    double elapsed = (double)(s->t_end_us - s->t_start_us) / 1e6;
    double rate = elapsed > 0 ? (double)s->emitted / elapsed : 0;
    printf("{\"sent\":%" PRIu64 ",\"accepted\":%" PRIu64 ",\"rejected\":%" PRIu64
           ",\"failed\":%" PRIu64 ",\"elapsed_s\":%.3f,\"rate\":%.1f,",
           s->emitted, s->accepted, s->rejected, s->failed, elapsed, rate);
    if (s->n_lat == 0) {
        printf("\"latency_ms\":{\"p50\":null,\"p99\":null,\"max\":null}}\n");
    } else {
        qsort(s->lat_ms, s->n_lat, sizeof(double), cmp_double);
        printf("\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n",
               percentile(s->lat_ms, s->n_lat, 0.50), percentile(s->lat_ms, s->n_lat, 0.99),
               s->lat_ms[s->n_lat - 1]);
    }
    fflush(stdout);
}

/** Frees everything s owns (NULL-safe members; fine after a failed sim_init). Returns -1 when
 *  the log could not be written completely, 0 otherwise. */
static int sim_destroy(mtp_sim *s)
{
    int rc = s->log_failed ? -1 : 0;
    if (s->log && fclose(s->log) != 0) {
        fprintf(stderr, "mtp-sim: cannot write the log %s: %s\n", s->cfg.log_path, strerror(errno));
        rc = -1;
    }
    s->log = NULL;
    for (int64_t i = 0; s->jobs && i < s->cfg.concurrency; i++) {
        job *j = &s->jobs[i];
        if (j->in_flight)
            curl_multi_remove_handle(s->multi, j->easy);
        if (j->easy)
            curl_easy_cleanup(j->easy);
        curl_slist_free_all(j->headers);
        free(j->body);
        free(j->error);
    }
    free(s->jobs);
    free(s->free_jobs);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    if (s->tfd >= 0)
        close(s->tfd);
    for (size_t i = 0; i < s->n_inc; i++) {
        free(s->inc[i].id);
        free(s->inc[i].subject);
        free(s->inc[i].title);
        free(s->inc[i].description);
    }
    free(s->inc);
    free(s->open);
    free(s->lat_ms);
    for (int64_t i = 0; i < s->cfg.orgs; i++) {
        if (s->org_ids)
            free(s->org_ids[i]);
        if (s->org_names)
            free(s->org_names[i]);
    }
    free(s->org_ids);
    free(s->org_names);
    alert_types_free(&s->cfg);
    return rc;
}

int main(int argc, char **argv)
{
    mtp_sim s_storage;
    mtp_sim *s = &s_storage;
    memset(s, 0, sizeof(*s));
    s->tfd = -1;
    char err[512] = "";
    int prc = config_parse(&s->cfg, argc, argv, err, sizeof(err));
    if (prc != 0) {
        alert_types_free(&s->cfg);
        if (prc > 0) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "mtp-sim: %s\n", err);
        usage(stderr);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: the poll returns at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "mtp-sim: curl_global_init failed\n");
        alert_types_free(&s->cfg);
        return 1;
    }
    int rc = 1;
    if (sim_init(s, err, sizeof(err)) != 0) {
        fprintf(stderr, "mtp-sim: %s\n", err);
    } else {
        int run_rc = run(s);
        print_summary(s);
        rc = run_rc == 0 && !s->fatal && s->accepted == (uint64_t)s->cfg.count ? 0 : 1;
    }
    if (sim_destroy(s) != 0)
        rc = 1;
    curl_global_cleanup();
    return rc;
}
