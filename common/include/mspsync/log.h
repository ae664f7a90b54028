/*
 * log.h — JSON-lines logging for every mspsync process.
 *
 * One line per event on stdout (flushed per line): {"ts":"2026-11-23T21:45:00.123Z","level":"info",
 * "service":"fetcher","event":"sync.page","tenant":"acme","msg":"...","file":"x.c","line":12}
 * ("file"/"line" only for warn and error). The MSP_LOG macro checks the level before
 * evaluating its arguments, so a debug line costs nothing in production.
 *
 * Secrets: callers never pass secrets. As defence in depth, every string registered with
 * msp_log_redact() is replaced by "[REDACTED]" in the formatted message before it is written.
 */
#ifndef MSPSYNC_LOG_H
#define MSPSYNC_LOG_H

#include <stdio.h>

typedef enum {
    MSP_LOG_DEBUG = 0,
    MSP_LOG_INFO  = 1,
    MSP_LOG_WARN  = 2,
    MSP_LOG_ERROR = 3,
} msp_log_level_t;

extern msp_log_level_t msp_log_min_level;

/**
 * @brief Set the service name (copied, max 63 chars) and minimum level ("debug", "info", "warn"
 *        or "warning", "error"; case-insensitive; NULL or "" = info). The caller reads
 *        MSPSYNC_LOG_LEVEL. An unknown level selects info and logs a "log.bad_level" warning.
 *        Call once at start-up, before other threads log.
 */
void msp_log_init(const char *service, const char *level);

/**
 * @brief Send log lines to f (borrowed; must outlive its use) instead of stdout; NULL = stdout.
 *        For tests, and for a CLI whose stdout is its output (mspsync-dlq: stderr). Call before
 *        other threads log.
 */
void msp_log_set_stream(FILE *f);

/**
 * @brief Register a secret string to scrub from every later log line (copied). Thread-safe.
 *
 * Register what is kept (a stored key, opened credentials, a live token), after it is kept,
 * never a candidate that may still be refused: a registered string is hidden from every line,
 * so a refused "key" that is an ordinary word would hide that word. Registrations are counted:
 * every call must be matched by one msp_log_unredact() of the same string when the holder lets
 * go of it (removed, disabled, rotated, expired, freed); the string stays redacted while any
 * holder keeps it. Strings shorter than 4 bytes are ignored (they would redact ordinary words):
 * no secret mspsync stores is that short, and such a string is not protected by redaction.
 */
void msp_log_redact(const char *secret);

/**
 * @brief Forget one registration of secret (see msp_log_redact); the last one removes it from the
 *        registry. A string that is not registered is ignored. Thread-safe.
 */
void msp_log_unredact(const char *secret);

/** @brief How many distinct strings are registered now (for tests and metrics). Thread-safe. */
size_t msp_log_redact_count(void);

/**
 * @brief Write one JSON line. tenant, event and file may be NULL. Use MSP_LOG instead (direct
 *        calls are for relaying other loggers: librdkafka's, kafka.c). Thread-safe.
 */
void msp_log_write(msp_log_level_t level, const char *file, int line, const char *event,
                   const char *tenant, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#define MSP_LOG(level, event, tenant, ...)                                           \
    do {                                                                             \
        if ((level) >= msp_log_min_level)                                            \
            msp_log_write((level), __FILE__, __LINE__, (event), (tenant), __VA_ARGS__); \
    } while (0)

#define MSP_DEBUG(ev, t, ...) MSP_LOG(MSP_LOG_DEBUG, ev, t, __VA_ARGS__)
#define MSP_INFO(ev, t, ...)  MSP_LOG(MSP_LOG_INFO, ev, t, __VA_ARGS__)
#define MSP_WARN(ev, t, ...)  MSP_LOG(MSP_LOG_WARN, ev, t, __VA_ARGS__)
#define MSP_ERROR(ev, t, ...) MSP_LOG(MSP_LOG_ERROR, ev, t, __VA_ARGS__)

#endif
