/*
 * tzif.c — the TZif reader behind tzif.h: version 2+ files (64-bit transition times) from the
 * system tz database, cached per zone name for the life of the process (a handful of zones per
 * deployment; the cache is bounded and a full cache reads the file again instead of growing).
 */
#include "mspsync/tzif.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_CACHE_MAX 64
#define TZ_FILE_MAX (1 << 20)
#define TZ_NAME_MAX 128

typedef struct tz_zone_s {
    char name[TZ_NAME_MAX];
    size_t n;     /* transitions */
    int64_t *at;  /* transition instants, ascending */
    int32_t *off; /* the offset in force from at[i] on */
    int32_t off0; /* before the first transition */
} tz_zone_t;

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static tz_zone_t *tz_cache[TZ_CACHE_MAX];
static int tz_cached;

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p) {
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static void zone_free(tz_zone_t *z) {
    if (!z)
        return;
    free(z->at);
    free(z->off);
    free(z);
}

int msp_tz_valid(const char *zone, char *err, size_t err_size) {
    size_t n = zone ? strlen(zone) : 0;
    if (n == 0 || n >= TZ_NAME_MAX || zone[0] == '/' || strstr(zone, "..") ||
        strspn(zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_-+") != n) {
        snprintf(err, err_size,
                 "\"%.64s\" is not a time zone name (an IANA name such as "
                 "\"America/New_York\")",
                 zone ? zone : "");
        return 0;
    }
    int off;
    return msp_tz_offset(zone, 0, &off, err, err_size) == 0;
}

/* Parse a TZif buffer into z. @returns 0 or -1. */
static int zone_parse(tz_zone_t *z, const unsigned char *d, size_t len) {
    if (len < 44 || memcmp(d, "TZif", 4) != 0 || d[4] < '2')
        return -1;
    /* skip the version 1 block: its six counts size it */
    uint32_t c[6];
    for (int i = 0; i < 6; i++)
        c[i] = be32(d + 20 + 4 * i);
    size_t v1 = (size_t)c[3] * 5 + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * 8 + c[1] + c[0];
    if (44 + v1 + 44 > len)
        return -1;
    const unsigned char *h = d + 44 + v1;
    if (memcmp(h, "TZif", 4) != 0)
        return -1;
    for (int i = 0; i < 6; i++)
        c[i] = be32(h + 20 + 4 * i);
    uint32_t timecnt = c[3], typecnt = c[4];
    const unsigned char *p = h + 44;
    if (typecnt == 0 || (size_t)(p - d) + (size_t)timecnt * 9 + (size_t)typecnt * 6 > len)
        return -1;
    const unsigned char *idx = p + (size_t)timecnt * 8, *types = idx + timecnt;
    z->n = timecnt;
    z->at = calloc(timecnt ? timecnt : 1, sizeof(*z->at));
    z->off = calloc(timecnt ? timecnt : 1, sizeof(*z->off));
    if (!z->at || !z->off)
        return -1;
    for (uint32_t i = 0; i < timecnt; i++) {
        if (idx[i] >= typecnt)
            return -1;
        z->at[i] = be64(p + 8 * (size_t)i);
        z->off[i] = (int32_t)be32(types + 6 * (size_t)idx[i]);
    }
    /* before the first transition: the first standard-time type (RFC 8536 3.2), else type 0 */
    z->off0 = (int32_t)be32(types);
    for (uint32_t t = 0; t < typecnt; t++)
        if (!types[6 * (size_t)t + 4]) {
            z->off0 = (int32_t)be32(types + 6 * (size_t)t);
            break;
        }
    return 0;
}

static tz_zone_t *zone_load(const char *zone, char *err, size_t err_size) {
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", zone);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "unknown time zone \"%.64s\" (not in the tz database)", zone);
        return NULL;
    }
    unsigned char *buf = malloc(TZ_FILE_MAX);
    size_t len = buf ? fread(buf, 1, TZ_FILE_MAX, f) : 0;
    fclose(f);
    tz_zone_t *z = buf ? calloc(1, sizeof(*z)) : NULL;
    if (!z || zone_parse(z, buf, len) != 0) {
        snprintf(err, err_size, "time zone \"%.64s\" is not a readable TZif file", zone);
        zone_free(z);
        free(buf);
        return NULL;
    }
    free(buf);
    snprintf(z->name, sizeof(z->name), "%s", zone);
    return z;
}

static int32_t zone_offset(const tz_zone_t *z, int64_t t) {
    if (z->n == 0 || t < z->at[0])
        return z->off0;
    size_t lo = 0, hi = z->n; /* the last transition at or before t */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (z->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->off[lo];
}

int msp_tz_offset(const char *zone, int64_t utc_s, int *offset_s, char *err, size_t err_size) {
    if (!zone || !zone[0] || strlen(zone) >= TZ_NAME_MAX) {
        snprintf(err, err_size, "no time zone given");
        return -1;
    }
    pthread_mutex_lock(&tz_lock);
    tz_zone_t *z = NULL;
    for (int i = 0; i < tz_cached && !z; i++)
        if (!strcmp(tz_cache[i]->name, zone))
            z = tz_cache[i];
    int rc = 0;
    if (z) {
        *offset_s = zone_offset(z, utc_s);
    } else if ((z = zone_load(zone, err, err_size))) {
        *offset_s = zone_offset(z, utc_s);
        if (tz_cached < TZ_CACHE_MAX)
            tz_cache[tz_cached++] = z;
        else
            zone_free(z);
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&tz_lock);
    return rc;
}

int msp_tz_local(const char *zone, int64_t utc_s, struct tm *out, char *err, size_t err_size) {
    int off;
    if (msp_tz_offset(zone, utc_s, &off, err, err_size) != 0)
        return -1;
    time_t t = (time_t)(utc_s + off);
    if (!gmtime_r(&t, out)) {
        snprintf(err, err_size, "time out of range");
        return -1;
    }
    return 0;
}

int msp_tz_utc(const char *zone, const struct tm *local, int64_t *utc_s, char *err,
               size_t err_size) {
    struct tm tm = *local;
    tm.tm_isdst = 0;
    int64_t wall = (int64_t)timegm(&tm);
    int off1, off2;
    /* the offset in force one day earlier and at the first guess; try the earlier one first
     * (overlap: the earlier instant), then the other (gap: the later offset) */
    if (msp_tz_offset(zone, wall - 86400, &off1, err, err_size) != 0 ||
        msp_tz_offset(zone, wall - off1, &off2, err, err_size) != 0)
        return -1;
    int chk;
    if (msp_tz_offset(zone, wall - off1, &chk, err, err_size) == 0 && chk == off1) {
        *utc_s = wall - off1;
        return 0;
    }
    if (msp_tz_offset(zone, wall - off2, &chk, err, err_size) == 0 && chk == off2) {
        *utc_s = wall - off2;
        return 0;
    }
    *utc_s = wall - off2; /* in a gap: the wall time does not exist; the later offset */
    return 0;
}

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int msp_rfc3339_parse(const char *s, int64_t *ms) {
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec;
    if (!s || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    const char *p = s + 19;
    int frac_ms = 0;
    if (*p == '.') {
        const char *f = ++p;
        int scale = 100;
        while (*p >= '0' && *p <= '9') {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
        if (p == f)
            return -1;
    }
    int off = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off = 0;
    } else {
        int oh, om;
        if (!((*p == '+' || *p == '-') && !digits(p + 1, 2, &oh) && p[3] == ':' &&
              !digits(p + 4, 2, &om) && p[6] == '\0' && oh <= 23 && om <= 59))
            return -1;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    *ms = ((int64_t)timegm(&tm) - off) * 1000 + frac_ms;
    return 0;
}
