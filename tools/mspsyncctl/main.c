/*
 * main.c — mspsyncctl: global options, where the API is, and dispatch to the command table.
 *
 * Settings come from, highest first: flags (--url, --token, --token-file, --tenant), the
 * environment (MSPSYNC_URL, MSPSYNC_TOKEN, MSPSYNC_TOKEN_FILE, MSPSYNC_TENANT), the config file
 * (--config, else $XDG_CONFIG_HOME/mspsync/config or ~/.config/mspsync/config). Global options
 * may stand anywhere on the line; --help before a command is the global help, after it the
 * command's.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "mspsyncctl %s — command-line client of the mspsync admin API\n\n"
        "usage: mspsyncctl [global options] <command> [arguments] [options]\n\n"
        "global options:\n"
        "  --url URL            the gateway, e.g. http://127.0.0.1:8080 (MSPSYNC_URL)\n"
        "  --token-file FILE    file holding the admin token, - for stdin (MSPSYNC_TOKEN_FILE)\n"
        "  --token TOKEN        the admin token (MSPSYNC_TOKEN; visible to ps: prefer a file)\n"
        "  --tenant ID          the tenant of tenant commands (MSPSYNC_TENANT)\n"
        "  --config FILE        config file (default $XDG_CONFIG_HOME/mspsync/config or\n"
        "                       ~/.config/mspsync/config): url, token, token_file, tenant\n"
        "  --json               print the API's JSON answers unchanged\n"
        "  --verbose, -v        trace requests on stderr (never the token)\n"
        "  --timeout SECONDS    per request (default 30)\n"
        "  --max-answer BYTES   refuse answers larger than this (default 67108864)\n"
        "  --help, -h           this help; mspsyncctl <command> --help for a command's\n"
        "  --version\n\n"
        "exit codes: 0 ok, 1 the API refused (4xx), 2 usage error, 3 API unreachable or 5xx,\n"
        "            4 a watched sync ended in Error, 5 not found (404)\n\n",
        MSPSYNCCTL_VERSION);
    ctl_help(out);
}

typedef struct globals {
    const char *url, *token, *token_file, *tenant, *config, *timeout, *max_answer;
    int json, verbose, help, version;
} globals;

/* Moves the global options out of argv into g; what is left (the command) goes to rest.
 * @returns 0 or CTL_USAGE. */
static int take_globals(int argc, char **argv, globals *g, int *nrest, char **rest) {
    static const struct {
        const char *name;
        size_t off;
    } valued[] = {
        {"--url", offsetof(globals, url)},
        {"--token", offsetof(globals, token)},
        {"--token-file", offsetof(globals, token_file)},
        {"--tenant", offsetof(globals, tenant)},
        {"--config", offsetof(globals, config)},
        {"--timeout", offsetof(globals, timeout)},
        {"--max-answer", offsetof(globals, max_answer)},
    };
    int dashdash = 0;
    *nrest = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int taken = 0;
        if (!dashdash) {
            if (strcmp(arg, "--") == 0)
                dashdash = 1;
            for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
                size_t n = strlen(valued[k].name);
                if (strncmp(arg, valued[k].name, n) != 0 || (arg[n] != '\0' && arg[n] != '='))
                    continue;
                const char *v = arg[n] == '=' ? arg + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
                if (!v) {
                    fprintf(stderr, "mspsyncctl: %s needs a value\n", valued[k].name);
                    return CTL_USAGE;
                }
                *(const char **)((char *)g + valued[k].off) = v;
                taken = 1;
            }
            if (strcmp(arg, "--json") == 0)
                g->json = taken = 1;
            else if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0)
                g->verbose = taken = 1;
            else if (strcmp(arg, "--version") == 0)
                g->version = taken = 1;
            else if (*nrest == 0 && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0))
                g->help = taken = 1;
            else if (*nrest == 0 && arg[0] == '-' && !taken && !dashdash) {
                fprintf(stderr, "mspsyncctl: unknown option \"%s\"; see mspsyncctl --help\n", arg);
                return CTL_USAGE;
            }
        }
        if (!taken)
            rest[(*nrest)++] = argv[i];
    }
    rest[*nrest] = NULL;
    return 0;
}

static int set_field(char *dst, const char *src, const char *what) {
    if (!src)
        return 0;
    if (strlen(src) >= CTL_CONF_VALUE_MAX) {
        fprintf(stderr, "mspsyncctl: %s is longer than %d bytes\n", what, CTL_CONF_VALUE_MAX - 1);
        return CTL_USAGE;
    }
    strcpy(dst, src);
    return 0;
}

static int parse_size(const char *s, const char *what, long long lo, long long hi, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "mspsyncctl: %s takes a number between %lld and %lld (got \"%s\")\n", what,
                lo, hi, s);
        return CTL_USAGE;
    }
    *out = v;
    return 0;
}

/* An environment variable; set but empty counts as not set. */
static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* Fills ctx->conf from the three sources. @returns 0 or CTL_USAGE (message printed). */
static int resolve(ctl_ctx *ctx, const globals *g) {
    char path[CTL_CONF_VALUE_MAX], err[CTL_CONF_VALUE_MAX + 256];
    ctl_conf file;
    memset(&file, 0, sizeof(file));
    int have_path = g->config ? (snprintf(path, sizeof(path), "%s", g->config), 1)
                              : ctl_conf_default_path(path, sizeof(path)) == 0;
    if (have_path) {
        int rc = ctl_conf_load_file(path, &file, err, sizeof(err));
        if (rc < 0 || (rc == 1 && g->config)) {
            fprintf(stderr, "mspsyncctl: %s\n", rc < 0 ? err : "the config file does not exist");
            memset(&file, 0, sizeof(file));
            return CTL_USAGE;
        }
    }
    /* Each setting from the highest source that has it. */
    const char *url = g->url ? g->url : env("MSPSYNC_URL") ? env("MSPSYNC_URL") : file.url;
    const char *tenant = g->tenant               ? g->tenant
                         : env("MSPSYNC_TENANT") ? env("MSPSYNC_TENANT")
                                                 : file.tenant;
    const char *token = NULL, *token_file = NULL;
    if (g->token || g->token_file)
        token = g->token, token_file = g->token_file;
    else if (env("MSPSYNC_TOKEN") || env("MSPSYNC_TOKEN_FILE"))
        token = env("MSPSYNC_TOKEN"), token_file = env("MSPSYNC_TOKEN_FILE");
    else
        token = file.token[0] ? file.token : NULL,
        token_file = file.token_file[0] ? file.token_file : NULL;
    if (token && token_file) {
        fprintf(stderr, "mspsyncctl: give a token or a token file, not both\n");
        memset(&file, 0, sizeof(file));
        return CTL_USAGE;
    }
    int rc = set_field(ctx->conf.url, url, "the URL") ||
             set_field(ctx->conf.tenant, tenant, "the tenant") ||
             set_field(ctx->conf.token, token, "the token");
    if (!rc && token_file &&
        ctl_read_secret_file(token_file, "token", strcmp(token_file, "-") != 0, ctx->conf.token,
                             sizeof(ctx->conf.token), err, sizeof(err)) != 0) {
        fprintf(stderr, "mspsyncctl: %s\n", err);
        rc = CTL_USAGE;
    }
    memset(&file, 0, sizeof(file));
    long long v;
    if (!rc && g->timeout) {
        rc = parse_size(g->timeout, "--timeout", 1, 3600, &v);
        ctx->timeout_s = (long)v;
    }
    if (!rc && g->max_answer) {
        rc = parse_size(g->max_answer, "--max-answer", 1024, 1LL << 32, &v);
        ctx->max_answer = (size_t)v;
    }
    return rc ? CTL_USAGE : 0;
}

/* A command's --help needs no API, so a broken config file must not stand in its way. */
static int wants_help(int n, char **args) {
    for (int i = 0; i < n && strcmp(args[i], "--") != 0; i++)
        if (strcmp(args[i], "--help") == 0 || strcmp(args[i], "-h") == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv) {
    static ctl_ctx ctx; /* static: the conf buffers are large */
    ctx.timeout_s = 30;
    ctx.max_answer = 64u << 20;
    ctx.out = stdout;
    ctx.err = stderr;
    globals g = {0};
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    if (!rest)
        return CTL_UNREACHABLE;
    int nrest = 0;
    int rc = take_globals(argc, argv, &g, &nrest, rest);
    if (rc == 0 && g.version) {
        printf("mspsyncctl %s\n", MSPSYNCCTL_VERSION);
    } else if (rc == 0 && (g.help || nrest == 0)) {
        usage(g.help ? stdout : stderr);
        rc = g.help ? CTL_OK : CTL_USAGE;
    } else if (rc == 0 && (wants_help(nrest, rest) || (rc = resolve(&ctx, &g)) == 0)) {
        ctx.json = g.json;
        ctx.verbose = g.verbose;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = ctl_dispatch(&ctx, nrest, rest);
        curl_global_cleanup();
    }
    memset(ctx.conf.token, 0, sizeof(ctx.conf.token));
    free(rest);
    if (fflush(stdout) != 0 && rc == CTL_OK)
        rc = CTL_UNREACHABLE;
    return rc;
}
