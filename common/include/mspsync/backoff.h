/*
 * backoff.h — retry timing shared by every vendor call.
 *
 * "Full jitter" exponential backoff (delay drawn uniformly from
 * [base/2, min(cap, base * 2^attempt)], the floor making sure a retry is never immediate) and
 * Retry-After parsing (delta-seconds or an HTTP-date). The vendor's Retry-After, when present,
 * wins over our own schedule.
 */
#ifndef MSPSYNC_BACKOFF_H
#define MSPSYNC_BACKOFF_H

#include <stdint.h>
#include <time.h>

/**
 * @brief Delay before retry number `attempt` (0 = first retry).
 * @param rand01 a uniform random number in [0,1) supplied by the caller (tests pass fixed values).
 *        Values outside [0,1) (including NaN) are treated as 0.
 * @returns milliseconds in [floor_ms, cap_ms] where floor_ms = base_ms / 2
 *          (floor_ms + rand01 * (min(cap_ms, base_ms * 2^attempt) - floor_ms); 2^attempt saturates
 *          instead of overflowing; if cap_ms < floor_ms the result is cap_ms; 0 when base_ms or
 *          cap_ms <= 0).
 */
int64_t msp_backoff_ms(unsigned attempt, int64_t base_ms, int64_t cap_ms, double rand01);

/**
 * @brief A uniform random number in [0,1) from a thread-local xorshift64* seeded once per thread
 *        from getrandom(2). Not cryptographic: for jitter only.
 */
double msp_rand01(void);

/**
 * @brief Parse a Retry-After header value: delta-seconds ("120", also fractional "1.5", rounded up
 *        to the millisecond) or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"; the obsolete RFC 850
 *        and asctime forms too). Surrounding whitespace is ignored.
 * @param now current Unix time, used for the HTTP-date form.
 * @returns milliseconds to wait (>= 0; a date in the past gives 0), or -1 when absent/unparseable.
 */
int64_t msp_retry_after_ms(const char *value, time_t now);

/** @brief Monotonic clock in milliseconds. */
int64_t msp_now_ms(void);

/** @brief Wall clock in milliseconds since the epoch. */
int64_t msp_wall_ms(void);

/**
 * @brief Format a wall-clock ms timestamp as RFC 3339 UTC with milliseconds
 *        ("2026-11-23T21:45:00.123Z") into buf (size >= 25; a smaller buf gets a truncated string).
 */
void msp_format_time(int64_t wall_ms, char *buf, size_t size);

#endif
