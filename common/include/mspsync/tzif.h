/*
 * tzif.h — local calendar time in a named time zone (IANA, "America/New_York"), safe to call
 * from any thread, for the billing period (a calendar month in the tenant's zone) and the daily
 * push time.
 *
 * Why not localtime_r: it reads the zone from the process-wide TZ, so a per-tenant zone would
 * mean setenv("TZ") + tzset() around every call, which races with every other thread that
 * formats a time (librdkafka's threads, libcurl's resolver) and is undefined behaviour by POSIX.
 * Instead the zone's TZif file is read from the system tz database (/usr/share/zoneinfo, or
 * $TZDIR) once, kept in a small cache behind a mutex, and the UTC offset of an instant is looked
 * up in its transition table. Debian installs "fat" TZif files whose tables run to 2037; an
 * instant after the last transition keeps the last offset (the POSIX footer rule is not
 * evaluated — a documented limit well past any billing period we compute).
 */
#ifndef MSPSYNC_TZIF_H
#define MSPSYNC_TZIF_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/**
 * @brief 1 when zone names a readable zone of the tz database (letters, digits, '/', '_', '-',
 * '+'; no "..", no leading '/'), else 0 with err saying why.
 */
int msp_tz_valid(const char *zone, char *err, size_t err_size);

/**
 * @brief The offset east of UTC, in seconds, of zone at the UTC instant utc_s.
 * @returns 0, or -1 with err (unknown or unreadable zone).
 */
int msp_tz_offset(const char *zone, int64_t utc_s, int *offset_s, char *err, size_t err_size);

/**
 * @brief The local calendar time of utc_s in zone (tm_year, tm_mon, tm_mday, tm_hour, tm_min,
 * tm_sec, tm_wday, tm_yday filled; tm_isdst 0). @returns 0 or -1 with err.
 */
int msp_tz_local(const char *zone, int64_t utc_s, struct tm *out, char *err, size_t err_size);

/**
 * @brief The UTC instant of the local wall time `local` (year, mon, mday, hour, min, sec, out of
 * range fields normalised as timegm does) in zone. In a gap (spring forward) the later offset is
 * used; in an overlap the earlier instant is returned. @returns 0 or -1 with err.
 */
int msp_tz_utc(const char *zone, const struct tm *local, int64_t *utc_s, char *err,
               size_t err_size);

/**
 * @brief Parse an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), T and Z
 * in any case) into milliseconds since the epoch (fraction cut to ms). @returns 0, or -1 when s
 * is not one (a day that does not exist, a leap day of a common year included).
 */
int msp_rfc3339_parse(const char *s, int64_t *ms);

#endif
