/*
 * billing.h — what the gateway and the billing service share about usage billing: the tenant's
 * billing config (its validation, one definition for PUT /billing and the worker), the billing
 * period of an instant, Syncro's string quantities, and the clock both sides read.
 *
 * A billing period is the calendar month in the tenant's time zone, named "YYYY-MM". A mark is
 * the highest count reported for (org, product) with as_of inside the period; a report for a
 * period that ended more than grace_days before it reached the gateway is late: kept and shown,
 * never applied. Both the period and the lateness depend only on what the report message carries
 * (as_of_ms, received_at_ms) and the tenant's config, so replaying usage.events rebuilds the
 * same marks.
 *
 * Redis keys (mspsync:{t}:billing:*): see docs/design.md.
 */
#ifndef MSPSYNC_BILLING_H
#define MSPSYNC_BILLING_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "mspsync/config.h"

#define MSP_BILLING_TZ_DEFAULT "America/New_York"
#define MSP_BILLING_PUSH_TIME_DEFAULT "12:00"
#define MSP_BILLING_GRACE_DEFAULT 3
#define MSP_BILLING_MAX_PRODUCTS 500

/** One product's line: the fixed-quantity line of this name on the customer's schedule. */
typedef struct msp_billing_product_s {
    const char *product;   /**< borrowed from the config document */
    const char *line_name; /**< borrowed */
    int create;            /**< 1: add the line (POST add_line_item) where a customer lacks it */
    long long retail_cents;
} msp_billing_product_t;

typedef struct msp_billing_conf_s {
    json_t *doc; /**< the complete document (defaults filled in); owned */
    int enabled;
    const char *time_zone; /**< borrowed from doc */
    int push_hour, push_minute;
    int grace_days;
    msp_billing_product_t *products; /**< owned array */
    size_t nproducts;
} msp_billing_conf_t;

/**
 * @brief Validate a config document (BillingConfig in docs/openapi.yaml) and fill *out; missing
 * keys take their defaults. in is borrowed (copied). @returns 0, or -1 with err naming the key
 * (an unknown key, a wrong type, an unknown time zone, a push_time that is not HH:MM).
 */
int msp_billing_conf_parse(const json_t *in, msp_billing_conf_t *out, char *err, size_t err_size);

/** @brief Free what parse made. NULL-safe, idempotent. */
void msp_billing_conf_clear(msp_billing_conf_t *c);

/** @brief The product's mapping, or NULL (borrowed). */
const msp_billing_product_t *msp_billing_product(const msp_billing_conf_t *c, const char *product);

/** @brief The period ("YYYY-MM", out of 8 bytes) of the instant ms in zone. @returns 0 or -1. */
int msp_billing_period(const char *zone, int64_t ms, char out[8], char *err, size_t err_size);

/** @brief The first instant (ms) after period ("YYYY-MM") in zone. @returns 0 or -1. */
int msp_billing_period_end_ms(const char *zone, const char *period, int64_t *ms, char *err,
                              size_t err_size);

/**
 * @brief 1 when a report with as_of_ms that reached the gateway at received_ms is late: its
 * period ended more than grace_days before. @returns 1, 0, or -1 (err).
 */
int msp_billing_late(const msp_billing_conf_t *c, int64_t as_of_ms, int64_t received_ms, char *err,
                     size_t err_size);

/**
 * @brief A Syncro quantity ("9.99", "12.0", or a JSON number) as a number. @returns 0 or -1.
 */
int msp_billing_qty(const json_t *v, double *out);

/**
 * @brief The billing clock in ms: the wall clock, unless MSPSYNC_TEST_CLOCK_FILE (test-only)
 * names a file holding an epoch-ms number, which is then "now" (read again at most every 100 ms,
 * so a test moves time by rewriting the file). The gateway stamps usage reports with it and the
 * billing service computes periods and the daily push from it.
 */
int64_t msp_billing_now_ms(void);

/** @brief The config row of MSPSYNC_TEST_CLOCK_FILE (gateway, billing) into char *dest. */
#define MSP_BILLING_TEST_CLOCK_ROW(dest)                                                                \
    {                                                                                                   \
        "MSPSYNC_TEST_CLOCK_FILE", MSP_CFG_STR, "",                                                     \
            "Test only: a file holding epoch milliseconds that the billing clock reads instead of the " \
            "wall clock (the period of usage reports and pushes, the daily push time); empty = the "    \
            "wall clock",                                                                               \
            &(dest)                                                                                     \
    }

/** @brief The Redis hash field of (org, product): the compact JSON array ["org","product"].
 * @returns new text or NULL. */
char *msp_billing_field(const char *org, const char *product);

/**
 * @brief What a push of period would write for tenant, from Redis (marks of the period, the
 * ticketing org map, every (org, product) seen): {"period", "customers": {"<customer id>":
 * {"customer_name", "lines": {"<product>": {"line_name", "create", "retail_cents", "quantity",
 * "orgs"}}}}, "unmapped": [{"org_id", "org_name", "product", "count", "as_of", "mark", "why"}]}.
 * Orgs mapped to one customer add up on its line. c is a blocking context with nothing pending.
 * @returns new JSON, or NULL with err (Redis).
 */
json_t *msp_billing_plan(redisContext *c, const char *tenant, const msp_billing_conf_t *conf,
                         const char *period, char *err, size_t err_size);

/** @brief The three keys msp_billing_plan reads with HGETALL, in the order _of takes them. */
void msp_billing_plan_keys(const char *tenant, const char *period, char keys[3][300]);

/**
 * @brief msp_billing_plan from the replies already read (HGETALL of msp_billing_plan_keys, each
 * an array), for a caller with its own way to Redis. @returns new JSON or NULL (out of memory).
 */
json_t *msp_billing_plan_of(redisReply *const r[3], const msp_billing_conf_t *conf,
                            const char *period);

#endif
