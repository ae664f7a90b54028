/*
 * ctl.h — mspsyncctl, the command-line client of the gateway's admin API (docs/cli.md).
 *
 * mspsyncctl is a client, not a service: it talks HTTP to the gateway and nothing else (no
 * Kafka, no Redis, no svc skeleton), so it lives in tools/ rather than services/. It is split
 * so that the parts with rules of their own can be tested without a gateway:
 *   conf.c      where the URL, token and tenant come from (flags > environment > config file)
 *               and the ssh-like refusal of a token file others can read;
 *   progress.c  the sync progress display: a status answer read into a ctl_progress, rendered
 *               as one redrawn bar line on a terminal or as plain lines in a pipe;
 *   api.c       one request to the API (libcurl), its answer bounded in size, classified into
 *               the exit codes below;
 *   commands.c  the command table (one row per command) and the handlers;
 *   main.c      global options and dispatch.
 *
 * Invariant: the token is never written anywhere (stdout, stderr, --verbose traces); request
 * bodies shown by --verbose have their vendor secrets (api_key, client_secret) masked.
 */
#ifndef MSPSYNCCTL_CTL_H
#define MSPSYNCCTL_CTL_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* Exit codes a shell can use (docs/cli.md, "Exit codes"). */
enum ctl_exit {
    CTL_OK = 0,
    CTL_REFUSED = 1,     /* the API answered 4xx (other than 404) */
    CTL_USAGE = 2,       /* the command line, a config file or an input file is wrong */
    CTL_UNREACHABLE = 3, /* no answer, 5xx, or an answer that is not the API's (not JSON, cut) */
    CTL_SYNC_ERROR = 4,  /* a watched sync ended in state Error (or Disabled) */
    CTL_NOT_FOUND = 5,   /* the API answered 404 */
};

/* ------------------------------------------------------------------ configuration (conf.c) */

#define CTL_CONF_VALUE_MAX 4096

/** Where mspsyncctl finds the API. Each field is "" when not set. */
typedef struct ctl_conf {
    char url[CTL_CONF_VALUE_MAX];
    char token[CTL_CONF_VALUE_MAX];
    char token_file[CTL_CONF_VALUE_MAX];
    char tenant[CTL_CONF_VALUE_MAX];
} ctl_conf;

/**
 * @brief Parse the text of a config file: lines `key = value` (keys url, token, token_file,
 *        tenant), blank lines and `#` comments; spaces around key and value are dropped, a value
 *        may be put in double quotes. A later line overrides an earlier one.
 *
 * Only fields the text sets are written. On error nothing is guaranteed about conf.
 * @returns 0, or -1 with "line N: ..." in err (unknown key, no '=', value too long, NUL byte).
 */
int ctl_conf_parse(const char *text, size_t len, ctl_conf *conf, char *err, size_t err_size);

/**
 * @brief Read and parse the config file at path into conf.
 *
 * A file that sets `token` and that group or others may read (mode & 077) is refused, as ssh
 * refuses a private key others can read: the token would already be exposed.
 * @returns 0; 1 when the file does not exist (conf untouched); -1 with err set.
 */
int ctl_conf_load_file(const char *path, ctl_conf *conf, char *err, size_t err_size);

/**
 * @brief Read a token from a file (first line, surrounding whitespace dropped); "-" reads stdin.
 *        Like a config file with a token, a token file group or others may read is refused.
 * @returns 0 with the token in out, or -1 with err set.
 */
int ctl_read_secret_file(const char *path, const char *what, int check_mode, char *out,
                         size_t out_size, char *err, size_t err_size);

/**
 * @brief The default config path: $XDG_CONFIG_HOME/mspsync/config, else
 *        $HOME/.config/mspsync/config. @returns 0, or -1 when neither variable is set.
 */
int ctl_conf_default_path(char *out, size_t out_size);

/* ------------------------------------------------------------------ progress (progress.c) */

/** What the display needs from an integration status answer. */
typedef struct ctl_progress {
    char state[16];  /* Connected, Syncing, Error, Disabled, or "" when absent */
    char type[32];   /* the fetcher's step: customer, asset, done, or "" */
    char job_id[40]; /* "" when null */
    long long page, total_pages, customers, assets;
    int pending; /* inventory_pending: every page fetched, the normalizer still writing */
} ctl_progress;

/**
 * @brief Read the fields of a SyncroIntegrationStatus / CwrmmIntegrationStatus answer.
 *        Missing or mistyped fields read as "" or 0 (a display never fails on them).
 */
void ctl_progress_from_json(const json_t *status, ctl_progress *p);

/**
 * @brief One line of progress, no control characters, at most width-1 columns (ASCII only):
 *        a bar when `bar` is set (terminal), else plain text (a pipe).
 *
 * e.g. bar: "Syncing   asset      page 3/10     [#######-------]  customers 25  assets 150"
 *    plain: "Syncing asset page 3/10, customers 25, assets 150"
 * A terminal too narrow for a bar of 5 cells gets the plain text, cut at width - 1 only when
 * even that does not fit (a wrapped line could not be redrawn in place).
 * @returns the length written (always NUL-terminated when out_size > 0).
 */
size_t ctl_progress_render(const ctl_progress *p, int bar, int width, char *out, size_t out_size);

/** @returns 1 when p is the end of the watched job: state Connected, Error or Disabled and, when
 *           job_id is not NULL, p belongs to that job. */
int ctl_progress_final(const ctl_progress *p, const char *job_id);

/* ------------------------------------------------------------------ API calls (api.c) */

typedef struct ctl_ctx {
    ctl_conf conf;
    int json;       /* --json: print the API's answers unchanged */
    int verbose;    /* --verbose: trace requests on stderr (never the token) */
    long timeout_s; /* per request */
    size_t max_answer;
    FILE *out, *err;
} ctl_ctx;

/** One answer. body is NUL-terminated (len excludes the NUL); json is NULL when the body is not
 *  JSON (or empty). */
typedef struct ctl_answer {
    long status;
    char *body;
    size_t len;
    json_t *json;
} ctl_answer;

/**
 * @brief Send method path (path already URL-encoded, starting with "/") with an optional JSON
 *        body (borrowed) to the API and classify the answer.
 *
 * On anything other than a 2xx JSON answer (or 204), prints a one-line reason on ctx->err — with
 * the API's own `error` text and, for vendor rejections, its details — and, under --json, the
 * answer body unchanged on ctx->out.
 * @returns CTL_OK with ans filled (free with ctl_answer_free), or the exit code to return.
 */
int ctl_call(ctl_ctx *ctx, const char *method, const char *path, const json_t *body,
             ctl_answer *ans);

/** Prints s with control characters (an ESC sequence in a name or a vendor's error text) as '?',
 *  so that text from the API cannot drive the terminal. */
void ctl_put_clean(FILE *f, const char *s);

/** Frees what ctl_call put in ans; NULL-safe, idempotent. */
void ctl_answer_free(ctl_answer *ans);

/** @returns the exit code for an HTTP status (2xx 0, 404 5, other 4xx 1, else 3). */
int ctl_exit_for_status(long status);

/** Writes s URL-encoded (RFC 3986 unreserved kept) to out. @returns 0, -1 if it did not fit. */
int ctl_urlencode(const char *s, char *out, size_t out_size);

/* ------------------------------------------------------------------ commands (commands.c) */

/**
 * @brief Find the command named by argv and run it; prints usage on CTL_USAGE.
 * @returns an exit code.
 */
int ctl_dispatch(ctl_ctx *ctx, int argc, char **argv);

/** Prints the global help (every command with its synopsis) on out. */
void ctl_help(FILE *out);

#endif
