/*
 * backoff.c — retry timing: jittered exponential backoff, Retry-After, clocks.
 *
 * Every vendor call retries through msp_backoff_ms(). The schedule is "full jitter" (AWS
 * architecture blog, 2015) with a floor: the delay for retry n is drawn uniformly from
 * [base/2, min(cap, base * 2^n)), so many workers that failed together spread out instead of
 * hammering the vendor in lock-step, yet no retry is ever immediate. The random number is a
 * parameter so the schedule itself is a pure function the tests can pin down.
 *
 * msp_rand01() is a per-thread xorshift64* generator seeded once from getrandom(2). It is not
 * cryptographic and must never be used for keys or nonces (crypto.c uses RAND_bytes for that);
 * it only needs to be cheap, lock-free and different in every thread and process.
 *
 * Retry-After (RFC 9110 section 10.2.3) is either delta-seconds or an HTTP-date. Some vendors send
 * fractional seconds ("1.5"), which we accept; we round up to the next millisecond because the
 * header is a minimum wait. The three HTTP-date forms of RFC 9110 section 5.6.7 are accepted
 * (IMF-fixdate and the obsolete RFC 850 and asctime forms), always read as UTC.
 */
#include "mspsync/backoff.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* Largest number of seconds we convert to milliseconds without overflowing int64_t. */
#define MSP_MAX_SECONDS (INT64_MAX / 1000 - 1)

int64_t msp_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms, double rand01) {
    int64_t floor_ms, ceil_ms, exp_ms, span, r;

    if (base_ms <= 0 || cap_ms <= 0)
        return 0;

    /* base * 2^attempt, saturating: shifting by >= 63 or shifting a base that is already too
     * large would overflow (undefined behaviour on a signed type). */
    if (attempt >= 63 || base_ms > (INT64_MAX >> attempt))
        exp_ms = INT64_MAX;
    else
        exp_ms = base_ms << attempt;

    ceil_ms  = exp_ms < cap_ms ? exp_ms : cap_ms;
    floor_ms = base_ms / 2;
    if (floor_ms > ceil_ms) /* cap below base/2: the cap is the hard limit */
        floor_ms = ceil_ms;

    /* Out-of-contract values (including NaN, which fails every comparison) mean "no jitter". */
    if (!(rand01 >= 0.0 && rand01 < 1.0))
        rand01 = 0.0;

    span = ceil_ms - floor_ms;
    r    = floor_ms + (int64_t)(rand01 * (double)span);
    /* (double)span can round up for spans beyond 2^53; keep the documented bound. */
    if (r > ceil_ms)
        r = ceil_ms;
    if (r < floor_ms)
        r = floor_ms;
    return r;
}

static _Thread_local uint64_t rand_state;

static void rand_seed(void) {
    uint64_t seed = 0;
    struct timespec ts;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        /* No entropy yet (very early boot) or a seccomp filter: mix the clock and the address of
         * this thread's state, which differ between threads and processes. Jitter only needs to
         * decorrelate workers, not to be unpredictable. */
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
               (uint64_t)(uintptr_t)&rand_state;
    }
    if (seed == 0) /* xorshift's only fixed point */
        seed = 0x9E3779B97F4A7C15ULL;
    rand_state = seed;
}

double msp_rand01(void) {
    uint64_t x;

    if (rand_state == 0)
        rand_seed();

    /* xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators"). */
    x = rand_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rand_state = x;
    x *= 0x2545F4914F6CDD1DULL;

    /* Top 53 bits → a double in [0,1) with every value equally likely. */
    return (double)(x >> 11) * 0x1.0p-53;
}

/* Parse delta-seconds with an optional fraction: "120", "1.5". Whole string must be consumed
 * (s and end bound the trimmed value). Returns ms or -1. */
static int64_t parse_delta_seconds(const char *s, const char *end) {
    int64_t secs = 0, ms = 0;
    int ndigits = 0, frac_digits = 0, round_up = 0;

    while (s < end && isdigit((unsigned char)*s)) {
        if (secs < MSP_MAX_SECONDS) /* saturate: "wait forever" is still a valid answer */
            secs = secs * 10 + (*s - '0');
        if (secs > MSP_MAX_SECONDS)
            secs = MSP_MAX_SECONDS;
        s++;
        ndigits++;
    }
    if (ndigits == 0)
        return -1;

    if (s < end && *s == '.') {
        s++;
        while (s < end && isdigit((unsigned char)*s)) {
            if (frac_digits < 3)
                ms = ms * 10 + (*s - '0');
            else if (*s != '0')
                round_up = 1;
            frac_digits++;
            s++;
        }
        if (frac_digits == 0) /* "1." is not a number */
            return -1;
        while (frac_digits < 3) {
            ms *= 10;
            frac_digits++;
        }
    }
    if (s != end)
        return -1;

    return secs * 1000 + ms + round_up;
}

static int64_t parse_http_date(const char *s, const char *end, time_t now) {
    /* IMF-fixdate, RFC 850, asctime (RFC 9110 section 5.6.7). %a and %b match in the C locale,
     * which is the only locale mspsync processes run in. */
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT",
        "%a, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    };
    char buf[64];
    size_t len = (size_t)(end - s);
    size_t i;

    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';

    for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        struct tm tm;
        const char *rest;
        time_t t;

        memset(&tm, 0, sizeof(tm));
        rest = strptime(buf, formats[i], &tm);
        if (!rest || *rest != '\0')
            continue;
        t = timegm(&tm);
        if (t == (time_t)-1)
            continue;
        if (t <= now)
            return 0;
        if ((int64_t)(t - now) > MSP_MAX_SECONDS)
            return MSP_MAX_SECONDS * 1000;
        return (int64_t)(t - now) * 1000;
    }
    return -1;
}

int64_t msp_retry_after_ms(const char *value, time_t now) {
    const char *s, *end;

    if (!value)
        return -1;

    s   = value;
    end = value + strlen(value);
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (s == end)
        return -1;

    if (isdigit((unsigned char)*s))
        return parse_delta_seconds(s, end);
    return parse_http_date(s, end, now);
}

static int64_t clock_ms(clockid_t id) {
    struct timespec ts;

    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t msp_now_ms(void) {
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t msp_wall_ms(void) {
    return clock_ms(CLOCK_REALTIME);
}

void msp_format_time(int64_t wall_ms, char *buf, size_t size) {
    struct tm tm;
    time_t secs;
    int ms;

    if (!buf || size == 0)
        return;

    /* Floor division so that times before 1970 still get a millisecond in [0,999]. */
    secs = (time_t)(wall_ms / 1000);
    ms   = (int)(wall_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }

    if (!gmtime_r(&secs, &tm)) {
        buf[0] = '\0';
        return;
    }
    int year = tm.tm_year + 1900;
    if (size >= sizeof("YYYY-MM-DDTHH:MM:SS.mmmZ") && year >= 0 && year <= 9999) {
        /* every log line and record has one: the digits written directly, not by snprintf */
        const struct {
            int value, digits;
            char after;
        } parts[] = {{year, 4, '-'},       {tm.tm_mon + 1, 2, '-'}, {tm.tm_mday, 2, 'T'},
                     {tm.tm_hour, 2, ':'}, {tm.tm_min, 2, ':'},     {tm.tm_sec, 2, '.'},
                     {ms, 3, 'Z'}};
        char *p = buf;
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
            for (int d = parts[i].digits - 1, v = parts[i].value; d >= 0; d--, v /= 10)
                p[d] = (char)('0' + v % 10);
            p += parts[i].digits;
            *p++ = parts[i].after;
        }
        *p = '\0';
        return;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}
