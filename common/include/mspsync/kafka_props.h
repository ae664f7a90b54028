/*
 * kafka_props.h — the operator's librdkafka properties (security.protocol, sasl.*, ssl.*, any
 * other), applied on top of mspsync's own settings to every Kafka client a service makes.
 *
 * Two sources, read once at start-up, in this order (a later one wins for the same property):
 *   1. MSPSYNC_KAFKA_PROPERTIES_FILE: "key=value" lines, '#' or '!' comments, blank lines; key
 *      and value trimmed. The exact librdkafka name, so no spelling question arises.
 *   2. MSPSYNC_KAFKA_PROP_<NAME> variables: NAME lower-cased, "_" read as "." and "__" as "_"
 *      (MSPSYNC_KAFKA_PROP_SASL_MECHANISMS → sasl.mechanisms, MSPSYNC_KAFKA_PROP_LOG__LEVEL →
 *      log_level). MSPSYNC_KAFKA_PROP_<NAME>_FILE takes the value from a file instead (one
 *      trailing newline dropped), e.g. MSPSYNC_KAFKA_PROP_SASL_PASSWORD_FILE.
 * Every property is checked against librdkafka when loaded: an unknown name or a bad value is an
 * error naming the variable (or file and line). Values of secret properties (passwords, client
 * secrets, private keys) never appear in an error and are registered with msp_log_redact.
 */
#ifndef MSPSYNC_KAFKA_PROPS_H
#define MSPSYNC_KAFKA_PROPS_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>

#define MSP_KAFKA_PROP_ENV "MSPSYNC_KAFKA_PROP_"

typedef struct msp_kafka_props_s msp_kafka_props_t;

/** @brief An empty list. @returns new, or NULL (out of memory). */
msp_kafka_props_t *msp_kafka_props_new(void);

/** @brief Free the list, values wiped, secrets unregistered from the log redaction. NULL-safe. */
void msp_kafka_props_destroy(msp_kafka_props_t *p);

/**
 * @brief The librdkafka property a MSPSYNC_KAFKA_PROP_* variable name stands for, into out;
 * *from_file (may be NULL) is set when the name ends in "_FILE".
 * @returns 0, or -1 when var is not such a name or NAME is empty or not [A-Z0-9_].
 */
int msp_kafka_prop_name(const char *var, char *out, size_t size, int *from_file);

/** @brief 1 when a property's value must never be shown (passwords, secrets, private keys). */
int msp_kafka_prop_secret(const char *name);

/**
 * @brief Add the lines of the properties file at path (checked against librdkafka).
 * @returns 0 or -1 (errstr: "MSPSYNC_KAFKA_PROPERTIES_FILE: <path>:<line>: ...").
 */
int msp_kafka_props_load_file(msp_kafka_props_t *p, const char *path, char *errstr,
                              size_t errstr_size);

/**
 * @brief Add every MSPSYNC_KAFKA_PROP_* variable of envp (NULL-terminated "NAME=value" strings,
 * e.g. environ), in the order given; empty ones count as unset.
 * @returns 0 or -1 (errstr names the variable).
 */
int msp_kafka_props_load_env(msp_kafka_props_t *p, char **envp, char *errstr,
                             size_t errstr_size);

/** @brief How many properties the list holds. */
int msp_kafka_props_count(const msp_kafka_props_t *p);

/** @brief The value of a property (NULL when not set). @returns borrowed. */
const char *msp_kafka_props_get(const msp_kafka_props_t *p, const char *name);

/**
 * @brief Set every property on conf, in the order loaded. p may be NULL (nothing to do).
 * @returns 0 or -1 (errstr names where the property came from, never a secret value).
 */
int msp_kafka_props_apply(const msp_kafka_props_t *p, rd_kafka_conf_t *conf, char *errstr,
                          size_t errstr_size);

#endif
