/*
 * redis.c — connection handling, key names, the GCRA rate limiter and compare-and-set cursors.
 *
 * The two read-modify-write operations (GCRA take, cursor CAS) are Lua scripts so that they are
 * atomic on the server and every replica of every service sees one truth. Each script is a C
 * string constant; its SHA1 is computed once and the script is run by EVALSHA, falling back to
 * EVAL (which also caches it server-side) when Redis answers NOSCRIPT after a restart or a
 * SCRIPT FLUSH.
 *
 * GCRA keeps one integer per bucket: the theoretical arrival time (TAT, µs since the epoch, Redis
 * TIME clock). msp_gcra_decide() is the same arithmetic in C; keep the two in step. Lua numbers
 * are doubles, which hold µs timestamps (~1.8e15 < 2^53) exactly, so the script works in whole
 * microseconds throughout and the two implementations agree bit for bit.
 */
#include "mspsync/redis.h"
#include "mspsync/backoff.h"
#include "mspsync/config.h"
#include "mspsync/crypto.h"
#include "mspsync/errstr.h"
#include "mspsync/log.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <openssl/evp.h>

#define MSP_REDIS_CONNECT_TIMEOUT_SEC 2
#define MSP_REDIS_COMMAND_TIMEOUT_SEC 5


/* ---------------------------------------------------------------------------------------------
 * Connection
 * ------------------------------------------------------------------------------------------- */

/* The parts of a Redis URL. Strings point into buf. */
typedef struct {
    char buf[512];
    const char *host;
    int port;
    int db;
    const char *user;      /* NULL: AUTH <password> */
    const char *password;  /* NULL: no AUTH */
} redis_url_t;

static int parse_url(const char *url, redis_url_t *u, char *errstr, size_t errstr_size) {
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (!url || !*url) {
        msp_set_err(errstr, errstr_size, "empty Redis address");
        return -1;
    }
    if (strlen(url) >= sizeof(u->buf)) {
        msp_set_err(errstr, errstr_size, "Redis address too long");
        return -1;
    }
    /* Errors quote the address only masked (msp_url_mask): never a password, however the
     * address is broken. */
    char shown[600];
    msp_url_mask(url, shown, sizeof(shown));
    const char *s = url;
    if (strncasecmp(s, "redis://", 8) == 0) s += 8;
    else if (strstr(s, "://")) {
        msp_set_err(errstr, errstr_size, "unsupported Redis address \"%s\" (want host:port or "
                "redis://host:port[/db])", shown);
        return -1;
    }
    snprintf(u->buf, sizeof(u->buf), "%s", s);
    char *p = u->buf;

    /* database: "/<n>" after the authority (an empty path is allowed) */
    char *slash = strchr(p, '/');
    if (slash) {
        *slash = '\0';
        const char *dbs = slash + 1;
        if (*dbs) {
            char *end = NULL;
            errno = 0;
            long db = strtol(dbs, &end, 10);
            if (errno || *end || db < 0 || db > INT_MAX || end == dbs) {
                msp_set_err(errstr, errstr_size, "bad Redis database number in \"%s\"", shown);
                return -1;
            }
            u->db = (int)db;
        }
    }

    /* credentials: "[user]:password@" */
    char *at = strrchr(p, '@');
    if (at) {
        *at = '\0';
        char *colon = strchr(p, ':');
        if (colon) {
            *colon = '\0';
            u->user = *p ? p : NULL;
            u->password = colon + 1;
        } else {
            u->password = p;
        }
        p = at + 1;
    }

    /* host and port; "[v6]:port" */
    char *portstr = NULL;
    if (*p == '[') {
        char *close = strchr(p, ']');
        if (!close) {
            msp_set_err(errstr, errstr_size, "bad Redis address \"%s\" (unclosed '[')", shown);
            return -1;
        }
        *close = '\0';
        u->host = p + 1;
        if (close[1] == ':') portstr = close + 2;
        else if (close[1] != '\0') {
            msp_set_err(errstr, errstr_size, "bad Redis address \"%s\"", shown);
            return -1;
        }
    } else {
        char *colon = strrchr(p, ':');
        if (colon) {
            *colon = '\0';
            portstr = colon + 1;
        }
        u->host = p;
    }
    if (!*u->host) {
        msp_set_err(errstr, errstr_size, "no host in Redis address \"%s\"", shown);
        return -1;
    }
    if (portstr) {
        char *end = NULL;
        errno = 0;
        long port = strtol(portstr, &end, 10);
        if (errno || *end || end == portstr || port < 1 || port > 65535) {
            msp_set_err(errstr, errstr_size, "bad port in Redis address \"%s\"", shown);
            return -1;
        }
        u->port = (int)port;
    }
    return 0;
}

/* Run a command that must answer +OK. */
static int expect_ok(redisContext *c, redisReply *r, const char *what, char *errstr,
                     size_t errstr_size) {
    int rc = 0;
    if (!r) {
        msp_set_err(errstr, errstr_size, "Redis %s: %s", what, c->errstr);
        rc = -1;
    } else if (r->type == REDIS_REPLY_ERROR) {
        msp_set_err(errstr, errstr_size, "Redis %s: %s", what, r->str);
        rc = -1;
    }
    if (r) freeReplyObject(r);
    return rc;
}

redisContext *msp_redis_connect(const char *url, char *errstr, size_t errstr_size) {
    redis_url_t u;
    if (parse_url(url, &u, errstr, errstr_size) != 0) return NULL;

    struct timeval ct = {MSP_REDIS_CONNECT_TIMEOUT_SEC, 0};
    redisContext *c = redisConnectWithTimeout(u.host, u.port, ct);
    if (!c) {
        msp_set_err(errstr, errstr_size, "Redis %s:%d: out of memory", u.host, u.port);
        return NULL;
    }
    if (c->err) {
        msp_set_err(errstr, errstr_size, "Redis %s:%d: %s", u.host, u.port, c->errstr);
        redisFree(c);
        return NULL;
    }
    struct timeval cmdt = {MSP_REDIS_COMMAND_TIMEOUT_SEC, 0};
    if (redisSetTimeout(c, cmdt) != REDIS_OK) {
        msp_set_err(errstr, errstr_size, "Redis %s:%d: cannot set timeout: %s", u.host, u.port,
                c->errstr);
        redisFree(c);
        return NULL;
    }
    if (u.password) {
        redisReply *r = u.user ? redisCommand(c, "AUTH %s %s", u.user, u.password)
                               : redisCommand(c, "AUTH %s", u.password);
        /* the reply may echo nothing secret, but never put the password into errstr */
        if (expect_ok(c, r, "AUTH", errstr, errstr_size) != 0) {
            redisFree(c);
            return NULL;
        }
    }
    if (u.db != 0) {
        redisReply *r = redisCommand(c, "SELECT %d", u.db);
        if (expect_ok(c, r, "SELECT", errstr, errstr_size) != 0) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* The reply to an async AUTH or SELECT: an error closes the connection (its commands fail). */
static void async_setup_cb(redisAsyncContext *ac, void *reply, void *what) {
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        MSP_ERROR("redis.setup_failed", NULL, "Redis %s: %s", (const char *)what, r->str);
        /* Free, not disconnect: the commands queued behind AUTH/SELECT are already sent, and a
         * server without a password answers them — a disconnect would still deliver those
         * replies as if the connection were good (read from the wrong database, or from a
         * server the configured password does not open). Freed here (hiredis defers it past this
         * callback), every pending callback gets a NULL reply and the owner's disconnect callback
         * runs, as for a lost connection. */
        redisAsyncFree(ac);
    }
}

redisAsyncContext *msp_redis_async_connect(const char *url, struct event_base *base, char *errstr,
                                           size_t errstr_size) {
    redis_url_t u;
    if (parse_url(url, &u, errstr, errstr_size) != 0)
        return NULL;
    redisAsyncContext *ac = redisAsyncConnect(u.host, u.port);
    if (!ac) {
        msp_set_err(errstr, errstr_size, "Redis %s:%d: out of memory", u.host, u.port);
        return NULL;
    }
    if (ac->err || redisLibeventAttach(ac, base) != REDIS_OK) {
        msp_set_err(errstr, errstr_size, "Redis %s:%d: %s", u.host, u.port,
                    ac->err ? ac->errstr : "cannot attach to the event loop");
        redisAsyncFree(ac);
        return NULL;
    }
    /* the password goes as an argument only, never into errstr or the log */
    if (u.password && u.user)
        redisAsyncCommand(ac, async_setup_cb, "AUTH", "AUTH %s %s", u.user, u.password);
    else if (u.password)
        redisAsyncCommand(ac, async_setup_cb, "AUTH", "AUTH %s", u.password);
    if (u.db != 0)
        redisAsyncCommand(ac, async_setup_cb, "SELECT", "SELECT %d", u.db);
    msp_secure_zero(u.buf, sizeof(u.buf));
    return ac;
}

int msp_redis_ensure(redisContext **c, const char *url, char *errstr, size_t errstr_size) {
    if (!c) {
        msp_set_err(errstr, errstr_size, "no Redis context");
        return -1;
    }
    if (*c && !(*c)->err) return 0;
    if (*c) {
        redisFree(*c);
        *c = NULL;
    }
    *c = msp_redis_connect(url, errstr, errstr_size);
    return *c ? 0 : -1;
}

int msp_redis_stale(const redisContext *c) {
    if (!c)
        return 0;
    if (c->err == REDIS_ERR_EOF)
        return 1;
    /* hiredis keeps errno's text for I/O errors, not errno itself. */
    return c->err == REDIS_ERR_IO &&
           (strstr(c->errstr, "reset by peer") || strstr(c->errstr, "Broken pipe"));
}

int msp_redis_ok(redisContext **c, const char *url) {
    char err[256];
    if (msp_redis_ensure(c, url, err, sizeof(err)) == 0) return 1;
    MSP_WARN("redis.unavailable", NULL, "%s", err);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------------------------- */

/*
 * fmt with its arguments into out, for a format of plain text and "%s" (every key's): a copy,
 * where vsnprintf costs a parse of the format and a stream per call (keys are built for every
 * record the normalizer writes). @returns the length, -1 truncated, -2 another conversion.
 */
static int key_format(char *out, size_t size, const char *fmt, va_list ap) {
    size_t n = 0;
    for (const char *f = fmt; *f; f++) {
        const char *piece = f;
        size_t len = 1;
        if (*f == '%') {
            if (f[1] != 's')
                return -2;
            piece = va_arg(ap, const char *);
            if (!piece)
                return -2; /* vsnprintf's "(null)" */
            len = strlen(piece);
            f++;
        }
        if (len >= size - n)
            return -1;
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
    return (int)n;
}

int msp_vkey(char *buf, size_t size, const char *tenant, const char *fmt, va_list ap) {
    if (!buf || size == 0 || !tenant || !fmt) return -1;
    static const char open[] = "mspsync:{", close[] = "}:";
    size_t tl = strlen(tenant), n = sizeof(open) - 1 + tl + sizeof(close) - 1;
    if (n >= size) {
        buf[0] = '\0';
        return -1;
    }
    memcpy(buf, open, sizeof(open) - 1);
    memcpy(buf + sizeof(open) - 1, tenant, tl);
    memcpy(buf + sizeof(open) - 1 + tl, close, sizeof(close) - 1);
    va_list copy;
    va_copy(copy, ap);
    int m = key_format(buf + n, size - n, fmt, copy);
    va_end(copy);
    if (m == -2)
        m = vsnprintf(buf + n, size - n, fmt, ap);
    if (m < 0 || (size_t)m >= size - n) {
        buf[0] = '\0';
        return -1;
    }
    return (int)n + m;
}

int msp_key(char *buf, size_t size, const char *tenant, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = msp_vkey(buf, size, tenant, fmt, ap);
    va_end(ap);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Scripts
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *body;
    char sha[41];
} msp_script_t;

/*
 * GCRA take. KEYS[1] bucket; ARGV: rate (req/s, "%.17g"), burst, cost.
 * Returns {1, 0} allowed or {0, retry_after_us} limited. Mirrors msp_gcra_decide().
 */
static msp_script_t gcra_script = {
    "if redis.replicate_commands then redis.replicate_commands() end\n" /* TIME then write */
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local cost = tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local T = math.ceil(1000000 / rate)\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]))\n"
    "if tat == nil or tat < now then tat = now end\n"
    "local new_tat = tat + T * cost\n"
    "local allow_at = new_tat - T * burst\n"
    "if now < allow_at then\n"
    "  return {0, allow_at - now}\n"
    "end\n"
    "local ttl = math.floor((new_tat - now) / 1000) + 1000\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)\n"
    "return {1, 0}\n",
    {0}};

/*
 * Cursor compare-and-set. KEYS[1] cursor; ARGV: has_expected ("0"/"1"), expected,
 * has_newval ("0"/"1"), newval, ttl_ms. Returns 1 swapped, 0 differs.
 */
static msp_script_t cas_script = {
    "local cur = redis.call('GET', KEYS[1])\n"
    "if ARGV[1] == '1' then\n"
    "  if cur ~= ARGV[2] then return 0 end\n"
    "elseif cur then\n"
    "  return 0\n"
    "end\n"
    "if ARGV[3] == '1' then\n"
    "  local ttl = tonumber(ARGV[5])\n"
    "  if ttl and ttl > 0 then\n"
    "    redis.call('SET', KEYS[1], ARGV[4], 'PX', ttl)\n"
    "  else\n"
    "    redis.call('SET', KEYS[1], ARGV[4])\n"
    "  end\n"
    "else\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 1\n",
    {0}};

static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void sha1_hex(const char *s, char out[41]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    static const char hex[] = "0123456789abcdef";
    if (EVP_Digest(s, strlen(s), md, &len, EVP_sha1(), NULL) != 1 || len != 20) {
        out[0] = '\0'; /* EVALSHA "" answers NOSCRIPT → EVAL still works */
        return;
    }
    for (unsigned int i = 0; i < len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[40] = '\0';
}

static void scripts_init(void) {
    sha1_hex(gcra_script.body, gcra_script.sha);
    sha1_hex(cas_script.body, cas_script.sha);
}

/*
 * EVALSHA sha 1 key args...; on NOSCRIPT, EVAL body 1 key args... @returns the reply (caller
 * frees; may be an error reply) or NULL on I/O error (c->err set).
 */
static redisReply *run_script(redisContext *c, msp_script_t *sc, const char *key, int nargs,
                              const char **args) {
    pthread_once(&scripts_once, scripts_init);
    enum { MAXARGS = 8 };
    const char *argv[4 + MAXARGS];
    size_t argvlen[4 + MAXARGS];
    if (nargs > MAXARGS) return NULL;
    int argc = 0;
    argv[argc++] = "EVALSHA";
    argv[argc++] = sc->sha;
    argv[argc++] = "1";
    argv[argc++] = key;
    for (int i = 0; i < nargs; i++) argv[argc++] = args[i];
    for (int i = 0; i < argc; i++) argvlen[i] = strlen(argv[i]);

    redisReply *r = redisCommandArgv(c, argc, argv, argvlen);
    if (r && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = sc->body;
        argvlen[0] = 4;
        argvlen[1] = strlen(sc->body);
        r = redisCommandArgv(c, argc, argv, argvlen);
    }
    return r;
}

/* ---------------------------------------------------------------------------------------------
 * GCRA
 * ------------------------------------------------------------------------------------------- */

static int gcra_args_ok(double rate_per_sec, int burst, int cost) {
    return isfinite(rate_per_sec) && rate_per_sec > 0 && burst >= 1 && cost >= 1 &&
           cost <= burst && ceil(1e6 / rate_per_sec) * (double)burst < 9.0e15;
}

int msp_gcra_decide(int64_t now_us, int64_t tat_us, double rate_per_sec, int burst, int cost,
                    int64_t *new_tat_us, int64_t *retry_after_us) {
    if (!gcra_args_ok(rate_per_sec, burst, cost)) return -1;
    int64_t T = (int64_t)ceil(1e6 / rate_per_sec);
    int64_t tat = (tat_us < 0 || tat_us < now_us) ? now_us : tat_us;
    if (tat > INT64_MAX / 2) tat = INT64_MAX / 2; /* garbage TAT: limited, but no overflow */
    int64_t new_tat = tat + T * cost;
    int64_t allow_at = new_tat - T * burst;
    if (now_us < allow_at) {
        if (new_tat_us) *new_tat_us = tat_us;
        if (retry_after_us) *retry_after_us = allow_at - now_us;
        return 0;
    }
    if (new_tat_us) *new_tat_us = new_tat;
    if (retry_after_us) *retry_after_us = 0;
    return 1;
}

int msp_gcra_format(double rate_per_sec, int burst, int cost, char rate[40], char bs[16],
                    char cs[16]) {
    if (!gcra_args_ok(rate_per_sec, burst, cost))
        return -1;
    snprintf(rate, 40, "%.17g", rate_per_sec);
    snprintf(bs, 16, "%d", burst);
    snprintf(cs, 16, "%d", cost);
    return 0;
}

const char *msp_gcra_script_body(void) { return gcra_script.body; }

const char *msp_gcra_script_sha(void) {
    pthread_once(&scripts_once, scripts_init);
    return gcra_script.sha;
}

int msp_gcra_reply(const redisReply *r, const char *key, int64_t *retry_after_ms, char *errstr,
                   size_t errstr_size) {
    if (r->type == REDIS_REPLY_ERROR) {
        msp_set_err(errstr, errstr_size, "GCRA %s: %s", key, r->str);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        msp_set_err(errstr, errstr_size, "GCRA %s: unexpected script reply", key);
        return -1;
    }
    int rc = r->element[0]->integer ? 1 : 0;
    if (rc == 0 && retry_after_ms) {
        long long us = r->element[1]->integer;
        *retry_after_ms = us <= 0 ? 1 : (int64_t)((us + 999) / 1000);
    }
    return rc;
}

int msp_gcra_take(redisContext *c, const char *key, double rate_per_sec, int burst, int cost,
                  int64_t *retry_after_ms, char *errstr, size_t errstr_size) {
    if (retry_after_ms) *retry_after_ms = 0;
    if (!c || !key) {
        msp_set_err(errstr, errstr_size, "GCRA: no Redis context or key");
        return -1;
    }
    char rate[40], bs[16], cs[16];
    if (msp_gcra_format(rate_per_sec, burst, cost, rate, bs, cs) != 0) {
        msp_set_err(errstr, errstr_size, "GCRA: invalid bucket (rate %g/s, burst %d, cost %d)",
                rate_per_sec, burst, cost);
        return -1;
    }
    const char *args[] = {rate, bs, cs};

    redisReply *r = run_script(c, &gcra_script, key, 3, args);
    if (!r) {
        msp_set_err(errstr, errstr_size, "GCRA %s: %s", key, c->err ? c->errstr : "no reply");
        return -1;
    }
    int rc = msp_gcra_reply(r, key, retry_after_ms, errstr, errstr_size);
    freeReplyObject(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Strings, cursors, idempotency keys
 * ------------------------------------------------------------------------------------------- */

char *msp_redis_get(redisContext *c, const char *key, int *err) {
    if (err) *err = 0;
    if (!c || !key) {
        if (err) *err = -1;
        return NULL;
    }
    redisReply *r = redisCommand(c, "GET %s", key);
    if (!r) {
        if (err) *err = -1;
        return NULL;
    }
    char *out = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        out = malloc(r->len + 1);
        if (out) {
            memcpy(out, r->str, r->len);
            out[r->len] = '\0';
        } else if (err) {
            *err = -1;
        }
    } else if (r->type != REDIS_REPLY_NIL && err) {
        *err = -1; /* WRONGTYPE and friends */
    }
    freeReplyObject(r);
    return out;
}

int msp_cursor_cas_ex(redisContext *c, const char *key, const char *expected, const char *newval,
                      int64_t ttl_ms) {
    if (!c || !key) return -1;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 0));
    const char *args[] = {expected ? "1" : "0", expected ? expected : "",
                          newval ? "1" : "0",   newval ? newval : "", ttl};
    redisReply *r = run_script(c, &cas_script, key, 5, args);
    if (!r) return -1;
    int rc = (r->type == REDIS_REPLY_INTEGER) ? (r->integer ? 1 : 0) : -1;
    freeReplyObject(r);
    return rc;
}

int msp_cursor_cas(redisContext *c, const char *key, const char *expected, const char *newval) {
    return msp_cursor_cas_ex(c, key, expected, newval, 0);
}

int msp_cursor_cas_async(msp_aredis_t *a, const char *key, const char *expected, const char *newval,
                         int64_t ttl_ms, msp_aredis_cb *cb, void *arg) {
    if (!a || !key)
        return -1;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 0));
    const char *argv[] = {"EVAL",
                          cas_script.body,
                          "1",
                          key,
                          expected ? "1" : "0",
                          expected ? expected : "",
                          newval ? "1" : "0",
                          newval ? newval : "",
                          ttl};
    return msp_aredis_cmdargv(a, cb, arg, 9, argv, NULL);
}

int msp_cursor_cas_reply(const redisReply *reply) {
    return reply && reply->type == REDIS_REPLY_INTEGER ? (reply->integer ? 1 : 0) : -1;
}

int msp_idem_claim(redisContext *c, const char *key, const char *value, int64_t ttl_ms,
                   char **existing) {
    if (existing) *existing = NULL;
    if (!c || !key || !value) return -1;
    redisReply *r = ttl_ms > 0
        ? redisCommand(c, "SET %s %s NX PX %lld", key, value, (long long)ttl_ms)
        : redisCommand(c, "SET %s %s NX", key, value);
    if (!r) return -1;
    int rc;
    if (r->type == REDIS_REPLY_STATUS) rc = 1;
    else if (r->type == REDIS_REPLY_NIL) rc = 0;
    else rc = -1;
    freeReplyObject(r);
    if (rc == 0 && existing) {
        int err = 0;
        /* NULL when the holder expired in between; the caller may simply claim again */
        *existing = msp_redis_get(c, key, &err);
        if (err) return -1;
    }
    return rc;
}

/* Renew (ARGV[2] > 0) or release (ARGV[2] == 0) KEYS[1] only while ARGV[1] holds it. */
static const char LEASE_LUA[] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
                                "if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end "
                                "return redis.call('PEXPIRE', KEYS[1], ARGV[2])";

int msp_lease_take(msp_lease_t *l, redisContext *c, const char *key, int ttl_ms) {
    memset(l, 0, sizeof(*l));
    l->c = c;
    l->ttl_ms = ttl_ms;
    snprintf(l->key, sizeof(l->key), "%s", key);
    if (!c || msp_random_hex(l->me, 16) != 0)
        return -1;
    redisReply *r = redisCommand(c, "SET %s %s NX PX %d", l->key, l->me, ttl_ms);
    if (!r)
        return -1;
    int rc = r->type == REDIS_REPLY_STATUS ? 1 : r->type == REDIS_REPLY_NIL ? 0 : -1;
    freeReplyObject(r);
    if (rc == 1)
        l->renewed_ms = msp_now_ms();
    return rc;
}

static int lease_eval(msp_lease_t *l, int ttl_ms) {
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    redisReply *r =
        l->c ? redisCommand(l->c, "EVAL %s 1 %s %s %s", LEASE_LUA, l->key, l->me, ttl) : NULL;
    int held = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r)
        freeReplyObject(r);
    return held;
}

int msp_lease_keep(msp_lease_t *l) {
    int64_t now = msp_now_ms();
    if (now - l->renewed_ms < l->ttl_ms / 5)
        return 1;
    if (!lease_eval(l, l->ttl_ms))
        return 0;
    l->renewed_ms = now;
    return 1;
}

void msp_lease_release(msp_lease_t *l) {
    if (l->me[0])
        lease_eval(l, 0);
    l->me[0] = '\0';
}
