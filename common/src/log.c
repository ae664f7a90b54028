/*
 * log.c — JSON-lines logging.
 *
 * Every line is one self-contained JSON object, built completely in memory and handed to stdio
 * with a single fwrite() followed by fflush(), both under the stream's lock (flockfile), so lines
 * written by different threads (librdkafka's log callback runs on its own threads) never
 * interleave, and a crash loses at most the line being built. Lines go to stdout, where
 * container runtimes collect them; the dlq CLI points them at stderr to keep its output clean.
 *
 * Strings are escaped per RFC 8259: '"', '\\' and every control character (as \n, \t, ... or
 * \u00XX). Bytes that are not valid UTF-8 become U+FFFD so that a vendor payload quoted in a
 * message can never make the line unparseable for the log shipper.
 *
 * Redaction is defence in depth, not a licence to log secrets: after formatting, every string
 * registered with msp_log_redact() is replaced by "[REDACTED]" in the message. The registry is
 * guarded by a mutex because holders register and forget while other threads log. It holds what
 * a holder keeps right now (a stored key, an opened credential, a live token), counted per holder:
 * msp_log_unredact() drops one count and the last one removes the string. So it stays as small as
 * the secrets in use, and a string nobody keeps (say, a key the vendor rejected, which may be an
 * ordinary word) does not hide that word from later lines. Longer secrets are replaced first so a
 * secret that contains another is not half-revealed.
 *
 * msp_log_min_level, the service name and the output stream are meant to be set once at start-up,
 * before threads are spawned.
 */
#include "mspsync/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mspsync/backoff.h"

#define MSP_LOG_MIN_SECRET   4
#define MSP_LOG_REDACTED     "[REDACTED]"
#define MSP_LOG_REDACTED_LEN (sizeof(MSP_LOG_REDACTED) - 1)

msp_log_level_t msp_log_min_level = MSP_LOG_INFO;

static char log_service[64] = "mspsync";
static FILE *log_stream; /* NULL: stdout (which is not a constant initializer) */

static pthread_mutex_t redact_lock = PTHREAD_MUTEX_INITIALIZER;
/* Sorted by length, longest first; redact_refs[i] holders keep redact_secrets[i]. Grows with
 * the credentials in use (one process may serve thousands of tenants), so it has no fixed cap. */
static char **redact_secrets;
static size_t *redact_lens;
static int *redact_refs;
static int redact_count, redact_cap;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* ---- growable buffer ------------------------------------------------------------------- */

/* Starts on the caller's stack; moves to the heap only for unusually long lines. On allocation
 * failure the buffer is marked failed and further appends are ignored. */
typedef struct {
    char *p;
    size_t len, cap;
    int on_heap, failed;
} logbuf_t;

static void lb_init(logbuf_t *b, char *stack, size_t size) {
    b->p       = stack;
    b->len     = 0;
    b->cap     = size;
    b->on_heap = 0;
    b->failed  = 0;
}

static int lb_reserve(logbuf_t *b, size_t extra) {
    size_t need, cap;
    char *np;

    if (b->failed)
        return -1;
    need = b->len + extra;
    if (need <= b->cap)
        return 0;
    cap = b->cap * 2;
    while (cap < need)
        cap *= 2;
    if (b->on_heap) {
        np = realloc(b->p, cap);
    } else {
        np = malloc(cap);
        if (np)
            memcpy(np, b->p, b->len);
    }
    if (!np) {
        b->failed = 1;
        return -1;
    }
    b->p       = np;
    b->cap     = cap;
    b->on_heap = 1;
    return 0;
}

static void lb_append(logbuf_t *b, const char *s, size_t n) {
    if (lb_reserve(b, n) == 0) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void lb_puts(logbuf_t *b, const char *s) {
    lb_append(b, s, strlen(s));
}

static void lb_free(logbuf_t *b) {
    if (b->on_heap)
        free(b->p);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes available), or 0 if invalid.
 * Rejects overlong forms, surrogates and code points above U+10FFFF (RFC 3629). */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];

    if (c >= 0xC2 && c <= 0xDF)
        return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0) /* overlong */
            return 0;
        if (c == 0xED && s[1] >= 0xA0) /* UTF-16 surrogate */
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) /* overlong */
            return 0;
        if (c == 0xF4 && s[1] >= 0x90) /* above U+10FFFF */
            return 0;
        return 4;
    }
    return 0;
}

/* Append s (n bytes) as the body of a JSON string (no surrounding quotes). */
static void lb_json_escaped(logbuf_t *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    char esc[8];

    while (p < end) {
        const unsigned char *run = p;
        /* copy printable ASCII in one go */
        while (p < end && *p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            lb_append(b, (const char *)run, (size_t)(p - run));
        if (p >= end)
            break;

        switch (*p) {
        case '"':  lb_append(b, "\\\"", 2); p++; continue;
        case '\\': lb_append(b, "\\\\", 2); p++; continue;
        case '\n': lb_append(b, "\\n", 2); p++; continue;
        case '\r': lb_append(b, "\\r", 2); p++; continue;
        case '\t': lb_append(b, "\\t", 2); p++; continue;
        case '\b': lb_append(b, "\\b", 2); p++; continue;
        case '\f': lb_append(b, "\\f", 2); p++; continue;
        default: break;
        }
        if (*p < 0x20 || *p == 0x7F) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            lb_append(b, esc, 6);
            p++;
        } else {
            size_t l = utf8_seq_len(p, (size_t)(end - p));
            if (l) {
                lb_append(b, (const char *)p, l);
                p += l;
            } else {
                lb_append(b, "\\ufffd", 6);
                p++;
            }
        }
    }
}

static void lb_json_field(logbuf_t *b, const char *key, const char *val) {
    lb_append(b, ",\"", 2);
    lb_puts(b, key);
    lb_append(b, "\":\"", 3);
    lb_json_escaped(b, val, strlen(val));
    lb_append(b, "\"", 1);
}

/* ---- configuration --------------------------------------------------------------------- */

static int parse_level(const char *s, msp_log_level_t *out) {
    if (!strcasecmp(s, "debug"))
        *out = MSP_LOG_DEBUG;
    else if (!strcasecmp(s, "info"))
        *out = MSP_LOG_INFO;
    else if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        *out = MSP_LOG_WARN;
    else if (!strcasecmp(s, "error"))
        *out = MSP_LOG_ERROR;
    else
        return -1;
    return 0;
}

void msp_log_init(const char *service, const char *level) {
    msp_log_level_t lvl = MSP_LOG_INFO;
    int bad_level       = 0;

    snprintf(log_service, sizeof(log_service), "%s", service && *service ? service : "mspsync");

    if (level && *level && parse_level(level, &lvl) == -1)
        bad_level = 1;
    msp_log_min_level = lvl;

    /* A typo in the level must not silently hide (or flood) logs: say so, once. */
    if (bad_level)
        msp_log_write(MSP_LOG_WARN, __FILE__, __LINE__, "log.bad_level", NULL,
                      "unknown log level '%s' (use debug, info, warn or error); using info", level);
}

void msp_log_set_stream(FILE *f) {
    log_stream = f;
}

/* Index of secret in the registry or -1. Must be called with redact_lock held. */
static int redact_find(const char *secret, size_t len) {
    for (int i = 0; i < redact_count; i++)
        if (redact_lens[i] == len && memcmp(redact_secrets[i], secret, len) == 0)
            return i;
    return -1;
}

void msp_log_redact(const char *secret) {
    size_t len;
    char *copy;
    int i;

    if (!secret)
        return;
    len = strlen(secret);
    /* Very short strings would redact ordinary words and numbers all over the logs. */
    if (len < MSP_LOG_MIN_SECRET)
        return;

    pthread_mutex_lock(&redact_lock);
    if ((i = redact_find(secret, len)) >= 0) {
        redact_refs[i]++; /* one more holder */
        pthread_mutex_unlock(&redact_lock);
        return;
    }
    if (redact_count == redact_cap) {
        int cap = redact_cap ? redact_cap * 2 : 64;
        char **ns = realloc(redact_secrets, (size_t)cap * sizeof(*ns));
        if (ns)
            redact_secrets = ns;
        size_t *nl = ns ? realloc(redact_lens, (size_t)cap * sizeof(*nl)) : NULL;
        if (nl)
            redact_lens = nl;
        int *nr = nl ? realloc(redact_refs, (size_t)cap * sizeof(*nr)) : NULL;
        if (nr)
            redact_refs = nr;
        if (!ns || !nl || !nr) {
            pthread_mutex_unlock(&redact_lock);
            return;
        }
        redact_cap = cap;
    }
    copy = malloc(len + 1);
    if (!copy) {
        pthread_mutex_unlock(&redact_lock);
        return;
    }
    memcpy(copy, secret, len + 1);

    /* insertion keeping longest first */
    for (i = redact_count; i > 0 && redact_lens[i - 1] < len; i--) {
        redact_secrets[i] = redact_secrets[i - 1];
        redact_lens[i]    = redact_lens[i - 1];
        redact_refs[i]    = redact_refs[i - 1];
    }
    redact_secrets[i] = copy;
    redact_lens[i]    = len;
    redact_refs[i]    = 1;
    redact_count++;
    pthread_mutex_unlock(&redact_lock);
}

void msp_log_unredact(const char *secret) {
    size_t len;
    int i;

    if (!secret)
        return;
    len = strlen(secret);
    if (len < MSP_LOG_MIN_SECRET)
        return; /* never registered */

    pthread_mutex_lock(&redact_lock);
    i = redact_find(secret, len);
    if (i >= 0 && --redact_refs[i] == 0) {
        char *gone = redact_secrets[i];
        /* close the gap; the order (longest first) is kept */
        memmove(redact_secrets + i, redact_secrets + i + 1,
                (size_t)(redact_count - i - 1) * sizeof(*redact_secrets));
        memmove(redact_lens + i, redact_lens + i + 1,
                (size_t)(redact_count - i - 1) * sizeof(*redact_lens));
        memmove(redact_refs + i, redact_refs + i + 1,
                (size_t)(redact_count - i - 1) * sizeof(*redact_refs));
        redact_count--;
        memset(gone, 0, len);
        free(gone);
    }
    pthread_mutex_unlock(&redact_lock);
}

size_t msp_log_redact_count(void) {
    size_t n;
    pthread_mutex_lock(&redact_lock);
    n = (size_t)redact_count;
    pthread_mutex_unlock(&redact_lock);
    return n;
}

/* Replace every registered secret in msg (len bytes) and return the result in out.
 * Must be called with redact_lock held. */
static void redact_into(logbuf_t *out, const char *msg, size_t len) {
    logbuf_t tmp;
    char tmp_stack[1024];
    const char *src;
    size_t src_len;
    int i;

    lb_append(out, msg, len);
    for (i = 0; i < redact_count; i++) {
        const char *s = redact_secrets[i], *hit;
        size_t sl     = redact_lens[i];
        size_t pos    = 0;

        if (!memmem(out->p, out->len, s, sl))
            continue;

        /* copy out → tmp with replacements, then tmp → out */
        lb_init(&tmp, tmp_stack, sizeof(tmp_stack));
        src     = out->p;
        src_len = out->len;
        while ((hit = memmem(src + pos, src_len - pos, s, sl)) != NULL) {
            size_t off = (size_t)(hit - src);
            lb_append(&tmp, src + pos, off - pos);
            lb_append(&tmp, MSP_LOG_REDACTED, MSP_LOG_REDACTED_LEN);
            pos = off + sl;
        }
        lb_append(&tmp, src + pos, src_len - pos);
        out->len = 0;
        lb_append(out, tmp.p, tmp.len);
        if (tmp.failed)
            out->failed = 1;
        lb_free(&tmp);
    }
}

/* ---- writing --------------------------------------------------------------------------- */

void msp_log_write(msp_log_level_t level, const char *file, int line, const char *event,
                   const char *tenant, const char *fmt, ...) {
    char msg_stack[1024], red_stack[1024], line_stack[2048], ts[32], num[24];
    char *msg = msg_stack;
    logbuf_t red, out;
    const char *base;
    FILE *stream;
    va_list ap;
    int n;

    if ((int)level < MSP_LOG_DEBUG || (int)level > MSP_LOG_ERROR)
        level = MSP_LOG_ERROR;

    /* 1. the caller's message */
    va_start(ap, fmt);
    n = vsnprintf(msg_stack, sizeof(msg_stack), fmt ? fmt : "", ap);
    va_end(ap);
    if (n < 0) {
        snprintf(msg_stack, sizeof(msg_stack), "(log format error)");
        n = (int)strlen(msg_stack);
    } else if ((size_t)n >= sizeof(msg_stack)) {
        msg = malloc((size_t)n + 1);
        if (msg) {
            va_start(ap, fmt);
            vsnprintf(msg, (size_t)n + 1, fmt, ap);
            va_end(ap);
        } else {
            msg = msg_stack; /* keep the truncated text rather than nothing */
            n   = (int)sizeof(msg_stack) - 1;
        }
    }

    /* 2. scrub secrets */
    lb_init(&red, red_stack, sizeof(red_stack));
    pthread_mutex_lock(&redact_lock);
    redact_into(&red, msg, (size_t)n);
    pthread_mutex_unlock(&redact_lock);
    if (msg != msg_stack) {
        /* the unredacted copy may hold a secret */
        memset(msg, 0, (size_t)n);
        free(msg);
    }
    memset(msg_stack, 0, sizeof(msg_stack));

    /* 3. the JSON line */
    msp_format_time(msp_wall_ms(), ts, sizeof(ts));
    lb_init(&out, line_stack, sizeof(line_stack));
    lb_append(&out, "{\"ts\":\"", 7);
    lb_puts(&out, ts);
    lb_append(&out, "\"", 1);
    lb_json_field(&out, "level", level_names[level]);
    lb_json_field(&out, "service", log_service);
    if (event)
        lb_json_field(&out, "event", event);
    if (tenant)
        lb_json_field(&out, "tenant", tenant);
    if (red.failed) {
        lb_json_field(&out, "msg", "(log line dropped: out of memory)");
    } else {
        lb_append(&out, ",\"msg\":\"", 8);
        lb_json_escaped(&out, red.p, red.len);
        lb_append(&out, "\"", 1);
    }
    if (level >= MSP_LOG_WARN && file) {
        base = strrchr(file, '/');
        lb_json_field(&out, "file", base ? base + 1 : file);
        snprintf(num, sizeof(num), ",\"line\":%d", line);
        lb_puts(&out, num);
    }
    lb_append(&out, "}\n", 2);

    /* 4. one write, flushed at once: librdkafka's threads log here too (kafka.log), and a line
     * must reach the container's log collector whole and without delay. */
    stream = log_stream ? log_stream : stdout;
    flockfile(stream);
    if (!out.failed) {
        fwrite(out.p, 1, out.len, stream);
    } else {
        /* Still emit a valid line so the failure itself is visible. */
        fprintf(stream, "{\"ts\":\"%s\",\"level\":\"error\",\"service\":\"mspsync\","
                        "\"event\":\"log.oom\",\"msg\":\"log line dropped: out of memory\"}\n",
                ts);
    }
    fflush(stream);
    funlockfile(stream);

    /* Before redaction these buffers held the raw message; do not leave it on the stack. */
    memset(red.p, 0, red.cap);
    if (red.on_heap)
        memset(red_stack, 0, sizeof(red_stack));
    lb_free(&red);
    lb_free(&out);
}
