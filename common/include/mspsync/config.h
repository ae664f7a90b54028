/*
 * config.h — one table of settings per service, read from the environment.
 *
 * Each service declares a static array of msp_config_entry_t ending with {NULL}. The same table
 * feeds the environment parser, `--help` (name, type, default, description) and docs/configuration.md.
 * Values are validated (integers in [min,max], booleans 0/1/true/false/yes/no) and an invalid
 * value is an error naming the variable, never a silent default. An entry marked secret is also
 * read from NAME_FILE (a file holding the value, as Docker and Kubernetes mount secrets).
 */
#ifndef MSPSYNC_CONFIG_H
#define MSPSYNC_CONFIG_H

#include <stddef.h>

/**
 * MSP_CFG_EXPAND is no setting but a place holder for rows made at run time from data the table
 * cannot name statically (the rate settings of every vendor row: vendor.h): every function here
 * sees the rows expand(dest, …) gives in its place, as if the table listed them.
 */
typedef enum { MSP_CFG_STR, MSP_CFG_INT, MSP_CFG_BOOL, MSP_CFG_EXPAND } msp_cfg_type_t;

typedef struct msp_config_entry_s {
    const char    *name;        /**< environment variable, e.g. "MSPSYNC_KAFKA_BROKERS" */
    msp_cfg_type_t type;
    const char    *def;         /**< default as text; NULL = required (STR only) */
    const char    *help;        /**< one line for --help and the docs */
    void          *dest;        /**< STR: char ** (set to a heap copy), INT: long long *, BOOL: int * */
    long long      min, max;    /**< INT bounds (inclusive); ignored when min == max == 0 */
    int            secret;      /**< 1: value never printed (--help/Markdown show "(secret)");
                                     NAME_FILE is accepted as well (msp_config_load) */
    /** MSP_CFG_EXPAND only: write the rows it stands for (at most max, none when out is NULL)
     * and return how many there are; dest is passed along. Its rows expand no further. */
    size_t (*expand)(void *dest, struct msp_config_entry_s *out, size_t max);
} msp_config_entry_t;

/**
 * @brief Fill every entry's dest from the environment (or its default).
 * argv is scanned for "--help"/"-h": the table is printed to stdout and 1 is returned
 * ("--help-markdown": the same as a Markdown table, for docs/configuration.md).
 * An empty variable counts as unset. A secret entry's value may come from the file named by
 * NAME_FILE instead (msp_secret_file_read: one trailing newline dropped); NAME and NAME_FILE both
 * set is an error, and so is an unreadable or empty file (named in errstr). All-or-nothing: on
 * error no dest is written and nothing is allocated; errstr names every invalid variable, "; "-separated (e.g. "MSPSYNC_X: not an
 * integer: 'abc'", "MSPSYNC_X: must be between 1 and 100", "MSPSYNC_X is required"), never
 * quoting a secret entry's value. STR dests are overwritten without being freed: call
 * msp_config_free() before loading the same table again. A NULL dest validates only.
 * @returns 0 ok, 1 help printed (caller exits 0), -1 error (text in errstr).
 */
int msp_config_load(const char *service, const msp_config_entry_t *tbl, int argc, char **argv,
                    char *errstr, size_t errstr_size);

/**
 * @brief The contents of the secret file at path, without one trailing "\n" (or "\r\n"), for
 * the setting var (named in errors with the path, never with the contents). An unreadable, empty
 * or over-64-KiB file, or one holding a NUL byte, is an error.
 * @returns 0 and *out new (wipe with explicit_bzero before free), or -1 (*out NULL; appended to
 * errstr, "; "-separated).
 */
int msp_secret_file_read(const char *var, const char *path, char **out, char *errstr,
                         size_t errstr_size);

/** @brief Print the table as a Markdown table (used to generate docs/configuration.md). */
void msp_config_print_markdown(const char *service, const msp_config_entry_t *tbl);

/** @brief free() every STR dest the table filled (secret ones wiped first) and set it to NULL. */
void msp_config_free(const msp_config_entry_t *tbl);

/**
 * @brief url with its credentials masked, the only form in which an address setting (Redis URL,
 * Kafka bootstrap servers, any MSPSYNC_*_URL) may appear in a log line, an error string or an
 * answer. Everything between "scheme://" (or the start) and the last '@' is user info: it becomes
 * "<user>:***" ("***" without a ':', ":***" with an empty user name), however malformed the rest
 * is (a '/' or '@' inside a password, a missing host). A port that is not a number may be a
 * password whose '@' is missing ("redis://:s3cret") and becomes "***" too.
 * Examples: "redis://:pw@h:6379/0" → "redis://:***@h:6379/0", "u:p@h" → "u:***@h".
 * @returns out (always NUL-terminated, truncated to size - 1 bytes).
 */
char *msp_url_mask(const char *url, char *out, size_t size);

#endif
