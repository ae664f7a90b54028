/*
 * commands.c — the command table of mspsyncctl and its handlers.
 *
 * One row per command: its words ("ticketing orgs set"), its positional arguments, its options,
 * its help and its handler. Dispatch, per-command --help, option parsing and the global help are
 * generic over the table, so a route added to the API later (issue 13: keys, audit, traces, dead
 * letters, billing preview) is one row and one small handler here, and docs/cli.md.
 *
 * A handler builds the request, calls ctl_call() and prints the answer: under --json the body
 * exactly as the API sent it, else a table or a summary. Text from the API (names, vendor error
 * texts) is printed with control characters replaced, so an asset named with escape sequences
 * cannot drive the terminal.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define CTL_MAX_OPTS 10
#define CTL_MAX_POS 16 /* dlq replay takes several ids */

typedef struct ctl_opt {
    const char *name; /* without "--" */
    const char *arg;  /* NULL: a flag */
    const char *help;
} ctl_opt;

struct ctl_cmd;

typedef struct ctl_args {
    const struct ctl_cmd *cmd;
    int npos;
    const char *pos[CTL_MAX_POS];
    const char *val[CTL_MAX_OPTS]; /* by the row's option index; flags are "1" */
} ctl_args;

typedef int (*ctl_handler)(ctl_ctx *ctx, ctl_args *a);

typedef struct ctl_cmd {
    const char *name;  /* the command words */
    const char *usage; /* positional arguments, e.g. "<org-id> <customer-id>" */
    int min_pos, max_pos;
    const ctl_opt *opts; /* NULL-name terminated, or NULL */
    int tenant;          /* needs --tenant */
    const char *help;
    ctl_handler run;
} ctl_cmd;

/* ------------------------------------------------------------------ small helpers */

static const char *opt(const ctl_args *a, const char *name) {
    for (int i = 0; a->cmd->opts && a->cmd->opts[i].name; i++)
        if (strcmp(a->cmd->opts[i].name, name) == 0)
            return a->val[i];
    return NULL;
}

static int usage_error(ctl_ctx *ctx, const char *fmt, const char *arg) {
    fputs("mspsyncctl: ", ctx->err);
    fprintf(ctx->err, fmt, arg);
    fputc('\n', ctx->err);
    return CTL_USAGE;
}

/* Builds "/v1/tenants/<tenant><suffix>" with the tenant URL-encoded. @returns 0 or CTL_USAGE. */
static int tenant_path(ctl_ctx *ctx, char *out, size_t out_size, const char *suffix) {
    char enc[256];
    if (ctl_urlencode(ctx->conf.tenant, enc, sizeof(enc)) != 0)
        return usage_error(ctx, "the tenant id is too long (%s...)", "");
    int n = snprintf(out, out_size, "/v1/tenants/%s%s", enc, suffix);
    return n > 0 && (size_t)n < out_size ? 0 : usage_error(ctx, "an argument is too long%s", "");
}

/* suffix with one URL-encoded argument in place of its "%s". */
static int tenant_path1(ctl_ctx *ctx, char *out, size_t out_size, const char *fmt,
                        const char *arg) {
    char enc[1024], suffix[1200];
    if (ctl_urlencode(arg, enc, sizeof(enc)) != 0)
        return usage_error(ctx, "argument too long: %.40s...", arg);
    snprintf(suffix, sizeof(suffix), fmt, enc);
    return tenant_path(ctx, out, out_size, suffix);
}

/* A JSON value as table text: strings cleaned, null as "-". @returns new string. */
static char *cell_text(const json_t *v) {
    char *s = NULL;
    if (json_is_string(v)) {
        s = strdup(json_string_value(v));
        for (char *p = s; p && *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    } else if (json_is_integer(v)) {
        if (asprintf(&s, "%lld", (long long)json_integer_value(v)) < 0)
            s = NULL;
    } else if (json_is_real(v)) {
        if (asprintf(&s, "%.2f", json_real_value(v)) < 0)
            s = NULL;
    } else if (json_is_boolean(v)) {
        s = strdup(json_is_true(v) ? "yes" : "no");
    } else if (!v || json_is_null(v)) {
        s = strdup("-");
    } else {
        s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    return s ? s : strdup("?");
}

/* UTF-8 aware display width (one column per character; good enough for names). */
static size_t text_cols(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Prints rows (arrays of cell strings, row 0 the header) with aligned columns. */
static void print_table(FILE *out, json_t *rows) {
    size_t ncol = json_array_size(json_array_get(rows, 0));
    size_t width[16] = {0};
    if (ncol > 16)
        ncol = 16;
    size_t i, c;
    json_t *row;
    json_array_foreach(rows, i, row) {
        for (c = 0; c < ncol; c++) {
            size_t w = text_cols(json_string_value(json_array_get(row, c)));
            if (w > width[c])
                width[c] = w;
        }
    }
    json_array_foreach(rows, i, row) {
        for (c = 0; c < ncol; c++) {
            const char *s = json_string_value(json_array_get(row, c));
            fputs(s, out);
            if (c + 1 < ncol)
                fprintf(out, "%*s", (int)(width[c] - text_cols(s) + 2), "");
        }
        fputc('\n', out);
    }
}

/* Appends a row of the values at keys (dotted paths one level deep: "mapping.customer_id"). */
static void add_row(json_t *rows, const json_t *obj, const char *const *keys) {
    json_t *row = json_array();
    for (; *keys; keys++) {
        const char *dot = strchr(*keys, '.');
        const json_t *v;
        if (dot) {
            char head[64];
            snprintf(head, sizeof(head), "%.*s", (int)(dot - *keys), *keys);
            v = json_object_get(json_object_get(obj, head), dot + 1);
        } else {
            v = json_object_get(obj, *keys);
        }
        char *s = cell_text(v);
        json_t *js = json_string(s);
        json_array_append_new(row, js ? js : json_string("?"));
        free(s);
    }
    json_array_append_new(rows, row);
}

static json_t *header_row(const char *const *names) {
    json_t *rows = json_array();
    json_t *row = json_array();
    for (; *names; names++)
        json_array_append_new(row, json_string(*names));
    json_array_append_new(rows, row);
    return rows;
}

/* Prints an array of objects at key as a table. */
static void print_list(ctl_ctx *ctx, const json_t *arr, const char *const *heads,
                       const char *const *keys) {
    json_t *rows = header_row(heads);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) add_row(rows, v, keys);
    print_table(ctx->out, rows);
    json_decref(rows);
}

static void print_raw(ctl_ctx *ctx, const ctl_answer *ans) {
    if (ans->len == 0)
        return;
    fwrite(ans->body, 1, ans->len, ctx->out);
    if (ans->body[ans->len - 1] != '\n')
        fputc('\n', ctx->out);
}

/* "key: value" lines of an object, nested objects as "key.sub: value". */
static void print_fields(ctl_ctx *ctx, const json_t *obj, const char *prefix) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        if (json_is_object(v) && json_object_size(v) > 0) {
            char p[128];
            snprintf(p, sizeof(p), "%s%s.", prefix, k);
            print_fields(ctx, v, p);
            continue;
        }
        char *s = cell_text(v);
        fprintf(ctx->out, "%s", prefix);
        ctl_put_clean(ctx->out, k);
        fprintf(ctx->out, ": %s\n", s);
        free(s);
    }
}

static void print_page_meta(ctl_ctx *ctx, const json_t *meta, const char *what) {
    fprintf(ctx->out, "page %lld of %lld (%lld %s)\n",
            (long long)json_integer_value(json_object_get(meta, "page")),
            (long long)json_integer_value(json_object_get(meta, "total_pages")),
            (long long)json_integer_value(json_object_get(meta, "total_entries")), what);
}

/* How a handler shows a successful answer when --json is not given. */
typedef void (*ctl_show)(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans);

/* Sends the request (body borrowed, may be NULL) and shows the answer: under --json the body as
 * the API sent it, else through show (NULL: nothing). @returns an exit code. */
static int call_and_show(ctl_ctx *ctx, const ctl_args *a, const char *method, const char *path,
                         const json_t *body, ctl_show show) {
    ctl_answer ans;
    int rc = ctl_call(ctx, method, path, body, &ans);
    if (rc != CTL_OK)
        return rc;
    if (ctx->json)
        print_raw(ctx, &ans);
    else if (show)
        show(ctx, a, &ans);
    ctl_answer_free(&ans);
    return CTL_OK;
}

static void show_fields(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    print_fields(ctx, ans->json, "");
}

static int is_vendor(ctl_ctx *ctx, const char *v) {
    if (strcmp(v, "syncro") == 0 || strcmp(v, "cwrmm") == 0)
        return 1;
    usage_error(ctx, "unknown integration \"%s\" (syncro or cwrmm)", v);
    return 0;
}

/* Reads a JSON file ("-" stdin) as an object. @returns new object or NULL (message printed). */
static json_t *load_json_file(ctl_ctx *ctx, const char *path) {
    json_error_t e;
    json_t *js = strcmp(path, "-") == 0 ? json_loadf(stdin, 0, &e) : json_load_file(path, 0, &e);
    if (!js) {
        fprintf(ctx->err, "mspsyncctl: %s: not valid JSON: line %d, column %d: %s\n", path, e.line,
                e.column, e.text);
        return NULL;
    }
    if (!json_is_object(js)) {
        fprintf(ctx->err, "mspsyncctl: %s: expected a JSON object\n", path);
        json_decref(js);
        return NULL;
    }
    return js;
}

/* --writeback purchase_date,warranty_expires (or "none") as a WritebackSettingsInput. */
static int parse_writeback(ctl_ctx *ctx, const char *spec, json_t *body) {
    if (!spec)
        return 0;
    json_t *wb = json_pack("{s:b,s:b}", "purchase_date", 0, "warranty_expires", 0);
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "purchase_date") == 0 || strcmp(t, "warranty_expires") == 0) {
            json_object_set_new(wb, t, json_true());
        } else if (strcmp(t, "none") != 0) {
            json_decref(wb);
            return usage_error(ctx,
                               "--writeback takes purchase_date, warranty_expires or none "
                               "(got \"%s\")",
                               t);
        }
    }
    json_object_set_new(body, "writeback", wb);
    return 0;
}

/* --features a,b,c → "features": ["a","b","c"] (the API checks the names and the key). */
static int parse_features(ctl_ctx *ctx, const char *spec, json_t *body) {
    if (!spec)
        return 0;
    json_t *list = json_array();
    char buf[512];
    if (strlen(spec) >= sizeof(buf)) {
        json_decref(list);
        return usage_error(ctx, "--features: too long a list%s", "");
    }
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(list, json_string(t));
    json_object_set_new(body, "features", list);
    return 0;
}

/* The status' last_error and hint, when set, as "last error: ..." / "hint: ..." lines. */
static void print_error_hint(FILE *f, const json_t *status) {
    static const char *const keys[][2] = {{"last_error", "last error"}, {"hint", "hint"}};
    for (size_t i = 0; i < 2; i++) {
        const char *v = json_string_value(json_object_get(status, keys[i][0]));
        if (v && v[0]) {
            fprintf(f, "%s: ", keys[i][1]);
            ctl_put_clean(f, v);
            fputc('\n', f);
        }
    }
}

/* ------------------------------------------------------------------ watch */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) { interrupted = 1; }

static int term_width(FILE *f) {
    struct winsize ws;
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int n = c ? atoi(c) : 0;
    return n > 20 ? n : 80;
}

/*
 * Polls the integration's status until the job (job_id, or whatever job runs when NULL) is
 * Connected, Error or Disabled. If a newer job replaces the watched one (a scheduled sync), the
 * watch follows it. @returns 0 Connected, 4 Error/Disabled, or ctl_call's code.
 */
static int watch(ctl_ctx *ctx, const char *vendor, const char *job_id, long interval_ms) {
    char path[512], suffix[64], job[40] = "";
    snprintf(suffix, sizeof(suffix), "/integrations/%s", vendor);
    int rc = tenant_path(ctx, path, sizeof(path), suffix);
    if (rc)
        return rc;
    if (job_id)
        snprintf(job, sizeof(job), "%s", job_id);
    int tty = !ctx->json && isatty(fileno(ctx->out));
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigaction(SIGINT, &sa, &old);
    char last[512] = "", line[512];
    int seen = 0, drawn = 0;
    ctl_answer ans = {0};
    ctl_progress p;
    for (;;) {
        rc = ctl_call(ctx, "GET", path, NULL, &ans);
        if (rc != CTL_OK)
            break;
        ctl_progress_from_json(ans.json, &p);
        if (job[0] && strcmp(p.job_id, job) == 0) {
            seen = 1;
        } else if (job[0] && seen && p.job_id[0]) {
            snprintf(job, sizeof(job), "%s", p.job_id); /* a newer job replaced ours */
        } else if (job[0]) {
            /* The status shows the previous job until a fetcher takes ours. */
            snprintf(p.state, sizeof(p.state), "Queued");
            p.type[0] = '\0';
        }
        if (!ctx->json) {
            ctl_progress_render(&p, tty, tty ? term_width(ctx->out) : 0, line, sizeof(line));
            if (tty) {
                fprintf(ctx->out, "\r%s\033[K", line);
                drawn = 1;
            } else if (strcmp(line, last) != 0) {
                fprintf(ctx->out, "%s\n", line);
            }
            fflush(ctx->out);
            snprintf(last, sizeof(last), "%s", line);
        }
        if (ctl_progress_final(&p, job[0] ? job : NULL))
            break;
        ctl_answer_free(&ans);
        if (interrupted)
            break;
        struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted)
            ;
        if (interrupted)
            break;
    }
    sigaction(SIGINT, &old, NULL);
    if (drawn)
        fputc('\n', ctx->out);
    if (rc != CTL_OK)
        return rc;
    if (interrupted) {
        ctl_answer_free(&ans);
        fprintf(ctx->err, "mspsyncctl: interrupted; the sync goes on\n");
        return 130;
    }
    if (ctx->json)
        print_raw(ctx, &ans);
    const json_t *st = ans.json;
    if (strcmp(p.state, "Connected") == 0) {
        rc = CTL_OK;
        if (!ctx->json) {
            const json_t *counts = json_object_get(st, "counts");
            fprintf(ctx->out, "Connected: %lld customers, %lld assets in the inventory\n",
                    (long long)json_integer_value(json_object_get(counts, "customers")),
                    (long long)json_integer_value(json_object_get(counts, "assets")));
        }
    } else {
        rc = CTL_SYNC_ERROR;
        fprintf(ctx->err, "mspsyncctl: the sync ended in %s\n", p.state);
        print_error_hint(ctx->err, st);
    }
    ctl_answer_free(&ans);
    return rc;
}

static long interval_of(ctl_ctx *ctx, const ctl_args *a, int *bad) {
    const char *s = opt(a, "interval");
    if (!s)
        return 500;
    char *end;
    errno = 0;
    long ms = strtol(s, &end, 10);
    if (errno || *end || ms < 50 || ms > 60000) {
        *bad =
            usage_error(ctx, "--interval takes milliseconds between 50 and 60000 (got \"%s\")", s);
        return 0;
    }
    return ms;
}

/* ------------------------------------------------------------------ tenants */

static void show_tenants(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    static const char *const heads[] = {"ID", "NAME", "CREATED", NULL};
    static const char *const keys[] = {"id", "name", "created_at", NULL};
    print_list(ctx, json_object_get(ans->json, "tenants"), heads, keys);
}

/* ------------------------------------------------------------------ master-key rotation */

static int cmd_secrets_show(ctl_ctx *ctx, ctl_args *a) {
    return call_and_show(ctx, a, "GET", "/v1/secrets", NULL, show_fields);
}

static int cmd_secrets_reseal(ctl_ctx *ctx, ctl_args *a) {
    return call_and_show(ctx, a, "POST", "/v1/secrets/reseal", NULL, show_fields);
}

static int cmd_tenants_list(ctl_ctx *ctx, ctl_args *a) {
    return call_and_show(ctx, a, "GET", "/v1/tenants", NULL, show_tenants);
}

static void show_tenant_created(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    fputs("created tenant ", ctx->out);
    ctl_put_clean(ctx->out, json_string_value(json_object_get(ans->json, "id")) ?: "?");
    fputc('\n', ctx->out);
}

static int cmd_tenants_create(ctl_ctx *ctx, ctl_args *a) {
    json_t *body = json_pack("{s:s,s:s}", "id", a->pos[0], "name", a->pos[1]);
    if (!body)
        return usage_error(ctx, "the tenant id and name must be UTF-8 text%s", "");
    int rc = call_and_show(ctx, a, "POST", "/v1/tenants", body, show_tenant_created);
    json_decref(body);
    return rc;
}

static int cmd_tenants_show(ctl_ctx *ctx, ctl_args *a) {
    if (a->npos == 1)
        snprintf(ctx->conf.tenant, sizeof(ctx->conf.tenant), "%s", a->pos[0]);
    if (!ctx->conf.tenant[0])
        return usage_error(ctx, "tenants show needs a tenant id (argument or --tenant)%s", "");
    char path[512];
    int rc = tenant_path(ctx, path, sizeof(path), "");
    return rc ? rc : call_and_show(ctx, a, "GET", path, NULL, show_fields);
}

/* ------------------------------------------------------------------ integrations */

/* "/v1/tenants/<t>/integrations/<vendor><rest>" for the vendor of the first argument.
 * @returns 0 or CTL_USAGE (an unknown vendor). */
static int vendor_path(ctl_ctx *ctx, const ctl_args *a, const char *rest, char *out,
                       size_t out_size) {
    if (!is_vendor(ctx, a->pos[0]))
        return CTL_USAGE;
    char suffix[96];
    snprintf(suffix, sizeof(suffix), "/integrations/%s%s", a->pos[0], rest);
    return tenant_path(ctx, out, out_size, suffix);
}

/* The job of a 201/202 answer, then the watch when --watch was given. */
static int then_watch(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans, long interval,
                      const char *what) {
    char job[40];
    snprintf(job, sizeof(job), "%s", json_string_value(json_object_get(ans->json, "job_id")) ?: "");
    if (!opt(a, "watch")) {
        if (ctx->json)
            print_raw(ctx, ans);
        else
            fprintf(ctx->out, "%s; sync job %s queued\n", what, job);
        return CTL_OK;
    }
    if (!ctx->json)
        fprintf(ctx->out, "%s; watching sync job %s\n", what, job);
    return watch(ctx, a->pos[0], job[0] ? job : NULL, interval);
}

static int cmd_integration_add(ctl_ctx *ctx, ctl_args *a) {
    char path[512];
    int rc = vendor_path(ctx, a, "", path, sizeof(path));
    if (rc)
        return rc;
    int syncro = strcmp(a->pos[0], "syncro") == 0;
    const char *where = syncro ? opt(a, "subdomain") : opt(a, "region");
    const char *base = opt(a, "base-url");
    if (!!where == !!base)
        return usage_error(ctx, "give exactly one of --base-url and %s",
                           syncro ? "--subdomain" : "--region");
    const char *secret_file = syncro ? opt(a, "api-key-file") : opt(a, "client-secret-file");
    if (!secret_file)
        return usage_error(ctx, "%s is required (a file holding the secret, or - for stdin)",
                           syncro ? "--api-key-file" : "--client-secret-file");
    if (!syncro && !opt(a, "client-id"))
        return usage_error(ctx, "--client-id is required for cwrmm%s", "");
    int bad = 0;
    long interval = interval_of(ctx, a, &bad);
    if (bad)
        return bad;
    char secret[2048], err[512];
    if (ctl_read_secret_file(secret_file, syncro ? "API key" : "client secret", 0, secret,
                             sizeof(secret), err, sizeof(err)) != 0) {
        fprintf(ctx->err, "mspsyncctl: %s\n", err);
        return CTL_USAGE;
    }
    json_t *body = json_object();
    json_object_set_new(body, syncro ? "api_key" : "client_secret", json_string(secret));
    memset(secret, 0, sizeof(secret));
    if (where)
        json_object_set_new(body, syncro ? "subdomain" : "region", json_string(where));
    if (base)
        json_object_set_new(body, "base_url", json_string(base));
    if (!syncro)
        json_object_set_new(body, "client_id", json_string(opt(a, "client-id")));
    rc = parse_writeback(ctx, opt(a, "writeback"), body);
    if (rc == 0)
        rc = parse_features(ctx, opt(a, "features"), body);
    ctl_answer ans;
    if (rc == 0)
        rc = ctl_call(ctx, "PUT", path, body, &ans);
    json_decref(body);
    if (rc != CTL_OK)
        return rc;
    char what[64];
    snprintf(what, sizeof(what), "saved the %s integration", a->pos[0]);
    rc = then_watch(ctx, a, &ans, interval, what);
    ctl_answer_free(&ans);
    return rc;
}

static void show_integration(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    const json_t *st = ans->json;
    ctl_progress p;
    ctl_progress_from_json(st, &p);
    char line[256];
    ctl_progress_render(&p, 0, 0, line, sizeof(line));
    const json_t *counts = json_object_get(st, "counts");
    fputs("integration: ", ctx->out);
    ctl_put_clean(ctx->out, json_string_value(json_object_get(st, "integration")) ?: "?");
    fputs("\nbase_url: ", ctx->out);
    ctl_put_clean(ctx->out, json_string_value(json_object_get(st, "base_url")) ?: "-");
    fprintf(ctx->out, "\nstate: %s%s\nprogress: %s\n", p.state,
            json_is_true(json_object_get(st, "paused")) ? " (paused)" : "", line);
    fprintf(ctx->out, "customers: %lld (%lld gone)\nassets: %lld (%lld gone)\n",
            (long long)json_integer_value(json_object_get(counts, "customers")),
            (long long)json_integer_value(json_object_get(counts, "customers_gone")),
            (long long)json_integer_value(json_object_get(counts, "assets")),
            (long long)json_integer_value(json_object_get(counts, "assets_gone")));
    char *last = cell_text(json_object_get(st, "last_sync_at"));
    fprintf(ctx->out, "last sync: %s\njob: %s\n", last, p.job_id[0] ? p.job_id : "-");
    free(last);
    print_error_hint(ctx->out, st);
}

static int cmd_integration_status(ctl_ctx *ctx, ctl_args *a) {
    char path[512];
    int rc = vendor_path(ctx, a, "", path, sizeof(path));
    return rc ? rc : call_and_show(ctx, a, "GET", path, NULL, show_integration);
}

static int cmd_integration_sync(ctl_ctx *ctx, ctl_args *a) {
    char path[512];
    int rc = vendor_path(ctx, a, "/sync", path, sizeof(path));
    int bad = 0;
    long interval = rc ? 0 : interval_of(ctx, a, &bad);
    if (rc || bad)
        return rc ? rc : bad;
    json_t *body = NULL;
    if (opt(a, "types")) {
        body = json_pack("{s:[]}", "types");
        char buf[128];
        snprintf(buf, sizeof(buf), "%s", opt(a, "types"));
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(json_object_get(body, "types"), json_string(t));
    }
    ctl_answer ans;
    rc = ctl_call(ctx, "POST", path, body, &ans);
    json_decref(body);
    if (rc != CTL_OK)
        return rc;
    rc = then_watch(ctx, a, &ans, interval, "sync asked for");
    ctl_answer_free(&ans);
    return rc;
}

static int cmd_integration_watch(ctl_ctx *ctx, ctl_args *a) {
    if (!is_vendor(ctx, a->pos[0]))
        return CTL_USAGE;
    int bad = 0;
    long interval = interval_of(ctx, a, &bad);
    return bad ? bad : watch(ctx, a->pos[0], opt(a, "job"), interval);
}

static void show_disabled(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    fprintf(ctx->out, "disabled the %s integration (secret removed; settings and inventory kept)\n",
            a->pos[0]);
}

static int cmd_integration_disable(ctl_ctx *ctx, ctl_args *a) {
    char path[512];
    int rc = vendor_path(ctx, a, "/disable", path, sizeof(path));
    return rc ? rc : call_and_show(ctx, a, "POST", path, NULL, show_disabled);
}

static void show_removed(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    if (ans->status == 202)
        fprintf(ctx->out,
                "removal of the %s integration accepted; the normalizer removes its "
                "records\n",
                a->pos[0]);
    else
        fprintf(ctx->out, "removed the %s integration and its inventory\n", a->pos[0]);
}

static int cmd_integration_remove(ctl_ctx *ctx, ctl_args *a) {
    char path[512];
    int rc = vendor_path(ctx, a, "", path, sizeof(path));
    return rc ? rc : call_and_show(ctx, a, "DELETE", path, NULL, show_removed);
}

/* ------------------------------------------------------------------ inventory */

/* Appends "name=value" (URL-encoded value) to a query string. */
static int add_query(ctl_ctx *ctx, char *q, size_t q_size, const char *name, const char *value) {
    if (!value)
        return 0;
    char enc[1024];
    size_t n = strlen(q);
    if (ctl_urlencode(value, enc, sizeof(enc)) != 0 ||
        (size_t)snprintf(q + n, q_size - n, "%c%s=%s", n ? '&' : '?', name, enc) >= q_size - n)
        return usage_error(ctx, "--%s is too long", name);
    return 0;
}

static void show_customers(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    static const char *const heads[] = {"ID", "NAME", "EMAIL", "PHONE", "GONE", NULL};
    static const char *const keys[] = {"id", "name", "email", "phone", "gone", NULL};
    print_list(ctx, json_object_get(ans->json, "customers"), heads, keys);
    print_page_meta(ctx, json_object_get(ans->json, "meta"), "customers");
}

static void show_assets(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    static const char *const heads[] = {"ID", "NAME", "TYPE", "SERIAL", "CUSTOMER", "GONE", NULL};
    static const char *const keys[] = {"id",           "name", "asset_type", "serial",
                                       "customer_ref", "gone", NULL};
    print_list(ctx, json_object_get(ans->json, "assets"), heads, keys);
    print_page_meta(ctx, json_object_get(ans->json, "meta"), "assets");
}

static int cmd_inventory_list(ctl_ctx *ctx, ctl_args *a) {
    int assets = strncmp(a->cmd->name, "assets", 6) == 0;
    if (strcmp(a->cmd->name, "assets search") == 0 && !opt(a, "customer") && !opt(a, "serial") &&
        !opt(a, "type"))
        return usage_error(ctx, "assets search needs --customer, --serial or --type%s", "");
    char q[4096] = "";
    int rc = add_query(ctx, q, sizeof(q), "page", opt(a, "page")) ||
             add_query(ctx, q, sizeof(q), "per_page", opt(a, "per-page"));
    if (!rc && assets)
        rc = add_query(ctx, q, sizeof(q), "customer", opt(a, "customer")) ||
             add_query(ctx, q, sizeof(q), "serial", opt(a, "serial")) ||
             add_query(ctx, q, sizeof(q), "type", opt(a, "type")) ||
             add_query(ctx, q, sizeof(q), "include_gone", opt(a, "include-gone"));
    if (rc)
        return CTL_USAGE;
    char suffix[4200], path[4800];
    snprintf(suffix, sizeof(suffix), "%s%s", assets ? "/assets" : "/customers", q);
    rc = tenant_path(ctx, path, sizeof(path), suffix);
    return rc ? rc
              : call_and_show(ctx, a, "GET", path, NULL, assets ? show_assets : show_customers);
}

/* GET of one record under the tenant: fmt holds one "%s" for the URL-encoded first argument. */
static int get_one(ctl_ctx *ctx, ctl_args *a, const char *fmt, ctl_show show) {
    char path[2048];
    int rc = tenant_path1(ctx, path, sizeof(path), fmt, a->pos[0]);
    return rc ? rc : call_and_show(ctx, a, "GET", path, NULL, show);
}

static int cmd_inventory_show(ctl_ctx *ctx, ctl_args *a) {
    return get_one(ctx, a, strncmp(a->cmd->name, "assets", 6) == 0 ? "/assets/%s" : "/customers/%s",
                   show_fields);
}

/* A date option: "none" clears (null), anything else is sent for the API to validate. */
static void set_date(json_t *body, const char *key, const char *v) {
    if (v)
        json_object_set_new(body, key, strcmp(v, "none") == 0 ? json_null() : json_string(v));
}

static void show_date_edit(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    fputs("date edit ", ctx->out);
    ctl_put_clean(ctx->out, json_string_value(json_object_get(ans->json, "edit_id")) ?: "?");
    fputs(" queued for ", ctx->out);
    ctl_put_clean(ctx->out, json_string_value(json_object_get(ans->json, "asset_id")) ?: "?");
    fputc('\n', ctx->out);
}

static int cmd_assets_dates(ctl_ctx *ctx, ctl_args *a) {
    if (!opt(a, "purchase") && !opt(a, "warranty"))
        return usage_error(ctx, "give --purchase and/or --warranty (a date, or none to clear)%s",
                           "");
    json_t *body = json_object();
    set_date(body, "purchase_date", opt(a, "purchase"));
    set_date(body, "warranty_expires", opt(a, "warranty"));
    char path[2048];
    int rc = tenant_path1(ctx, path, sizeof(path), "/assets/%s/dates", a->pos[0]);
    if (rc == 0)
        rc = call_and_show(ctx, a, "PUT", path, body, show_date_edit);
    json_decref(body);
    return rc;
}

/* Rows of an object of objects (writeback targets, ticketing rules), its key in column 0. */
static void print_keyed(ctl_ctx *ctx, const json_t *obj, const char *const *heads,
                        const char *const *keys) {
    json_t *rows = header_row(heads);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        json_t *o = json_deep_copy(v);
        json_object_set_new(o, keys[0], json_string(k));
        add_row(rows, o, keys);
        json_decref(o);
    }
    print_table(ctx->out, rows);
    json_decref(rows);
}

static void show_writeback(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    static const char *const heads[] = {"TARGET", "STATE", "VALUE", "AT", "ERROR", NULL};
    static const char *const keys[] = {"target", "state", "value", "at", "error", NULL};
    print_keyed(ctx, json_object_get(ans->json, "targets"), heads, keys);
}

static int cmd_assets_writeback(ctl_ctx *ctx, ctl_args *a) {
    return get_one(ctx, a, "/assets/%s/writeback", show_writeback);
}

/* ------------------------------------------------------------------ webhook secret */

/* A call on a fixed path under the tenant. */
static int tenant_call(ctl_ctx *ctx, ctl_args *a, const char *method, const char *suffix,
                       const json_t *body, ctl_show show) {
    char path[512];
    int rc = tenant_path(ctx, path, sizeof(path), suffix);
    return rc ? rc : call_and_show(ctx, a, method, path, body, show);
}

static int cmd_webhook_show(ctl_ctx *ctx, ctl_args *a) {
    return tenant_call(ctx, a, "GET", "/webhooks/mtp", NULL, show_fields);
}

static void show_secret(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    print_fields(ctx, ans->json, "");
    fputs("store the secret in MTP now: it cannot be shown again\n", ctx->out);
}

static int cmd_webhook_secret_create(ctl_ctx *ctx, ctl_args *a) {
    json_t *body = NULL;
    const char *pv = opt(a, "previous-valid-seconds");
    if (pv) {
        char *end;
        errno = 0;
        long long n = strtoll(pv, &end, 10);
        if (errno || *end || end == pv)
            return usage_error(ctx, "--previous-valid-seconds takes a number (got \"%s\")", pv);
        body = json_pack("{s:I}", "previous_valid_seconds", (json_int_t)n);
    }
    int rc = tenant_call(ctx, a, "POST", "/webhooks/mtp/secret", body, show_secret);
    json_decref(body);
    return rc;
}

static void show_dropped(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    fputs("the previous webhook secret is revoked\n", ctx->out);
}

static int cmd_webhook_secret_drop(ctl_ctx *ctx, ctl_args *a) {
    return tenant_call(ctx, a, "DELETE", "/webhooks/mtp/secret/previous", NULL, show_dropped);
}

/* ------------------------------------------------------------------ ticketing */

static void print_ticketing(ctl_ctx *ctx, const json_t *cfg, const json_t *status) {
    json_t *plain = json_deep_copy(cfg);
    json_object_del(plain, "rules");
    print_fields(ctx, plain, "");
    json_decref(plain);
    static const char *const heads[] = {"ALERT TYPE",   "CREATE",   "PRIORITY", "STATUS",
                                        "PROBLEM TYPE", "DUE DAYS", "ASSIGNEE", NULL};
    static const char *const keys[] = {"alert_type",   "create",      "priority",         "status",
                                       "problem_type", "due_in_days", "assignee_user_id", NULL};
    fputc('\n', ctx->out);
    print_keyed(ctx, json_object_get(cfg, "rules"), heads, keys);
    json_t *rest = json_deep_copy(status);
    json_object_del(rest, "unmapped_orgs");
    if (json_object_size(rest)) {
        fputs("\nstatus:\n", ctx->out);
        print_fields(ctx, rest, "  ");
    }
    json_decref(rest);
    size_t unmapped = json_array_size(json_object_get(status, "unmapped_orgs"));
    if (unmapped)
        fprintf(ctx->out, "\n%zu unmapped org(s): mspsyncctl ticketing unmapped\n", unmapped);
}

static void show_ticketing(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    print_ticketing(ctx, json_object_get(ans->json, "config"),
                    json_object_get(ans->json, "status"));
}

static int cmd_ticketing_show(ctl_ctx *ctx, ctl_args *a) {
    return tenant_call(ctx, a, "GET", "/ticketing", NULL, show_ticketing);
}

static void show_rules_stored(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    fputs("stored the ticketing config:\n", ctx->out);
    print_ticketing(ctx, json_object_get(ans->json, "config"), NULL);
}

static int cmd_ticketing_set_rules(ctl_ctx *ctx, ctl_args *a) {
    json_t *body = load_json_file(ctx, a->pos[0]);
    if (!body)
        return CTL_USAGE;
    int rc = tenant_call(ctx, a, "PUT", "/ticketing", body, show_rules_stored);
    json_decref(body);
    return rc;
}

static void show_orgs(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    static const char *const heads[] = {
        "ORG", "NAME", "CUSTOMER", "CUSTOMER NAME", "UNMAPPED INCIDENTS", "LAST SEEN", NULL};
    static const char *const keys[] = {"org_id",
                                       "org_name",
                                       "mapping.customer_id",
                                       "mapping.customer_name",
                                       "unmapped_incidents",
                                       "last_seen_at",
                                       NULL};
    print_list(ctx, json_object_get(ans->json, "orgs"), heads, keys);
}

static int cmd_ticketing_orgs_list(ctl_ctx *ctx, ctl_args *a) {
    return tenant_call(ctx, a, "GET", "/ticketing/orgs", NULL, show_orgs);
}

static void show_mapped(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    fputs("mapped org ", ctx->out);
    ctl_put_clean(ctx->out, a->pos[0]);
    fputs(" to customer ", ctx->out);
    ctl_put_clean(ctx->out, json_string_value(json_object_get(ans->json, "customer_id")) ?: "?");
    const char *name = json_string_value(json_object_get(ans->json, "customer_name"));
    if (name) {
        fputs(" (", ctx->out);
        ctl_put_clean(ctx->out, name);
        fputc(')', ctx->out);
    }
    fputc('\n', ctx->out);
}

static int cmd_ticketing_orgs_set(ctl_ctx *ctx, ctl_args *a) {
    /* The customer id goes as a string: the API takes both, and a string keeps 64-bit ids
     * exact and leaves their validation to the API. */
    json_t *body = json_pack("{s:s}", "customer_id", a->pos[1]);
    if (!body)
        return usage_error(ctx, "the customer id must be UTF-8 text%s", "");
    char path[2048];
    int rc = tenant_path1(ctx, path, sizeof(path), "/ticketing/orgs/%s", a->pos[0]);
    if (rc == 0)
        rc = call_and_show(ctx, a, "PUT", path, body, show_mapped);
    json_decref(body);
    return rc;
}

static void show_unmapped_done(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    fputs("the org's mapping is removed\n", ctx->out);
}

static int cmd_ticketing_orgs_delete(ctl_ctx *ctx, ctl_args *a) {
    char path[2048];
    int rc = tenant_path1(ctx, path, sizeof(path), "/ticketing/orgs/%s", a->pos[0]);
    return rc ? rc : call_and_show(ctx, a, "DELETE", path, NULL, show_unmapped_done);
}

static void show_unmapped(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    static const char *const heads[] = {"ORG", "NAME", "INCIDENTS", NULL};
    static const char *const keys[] = {"org_id", "org_name", "incidents", NULL};
    print_list(ctx, json_object_get(json_object_get(ans->json, "status"), "unmapped_orgs"), heads,
               keys);
}

static int cmd_ticketing_unmapped(ctl_ctx *ctx, ctl_args *a) {
    /* --json prints the whole GET .../ticketing answer (the API's document, unchanged). */
    return tenant_call(ctx, a, "GET", "/ticketing", NULL, show_unmapped);
}

/* ------------------------------------------------------------------ keys, audit, offboarding */

static void show_key_created(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    print_fields(ctx, ans->json, "");
    fputs("store the key now: it cannot be shown again\n", ctx->out);
}

static int cmd_keys_create(ctl_ctx *ctx, ctl_args *a) {
    const char *role = opt(a, "role"), *exp = opt(a, "expires-at");
    if (!role)
        return usage_error(ctx, "keys create needs --role owner|sync|billing|viewer%s", "");
    json_t *body = json_pack("{s:s,s:s}", "name", a->pos[0], "role", role);
    if (body && exp)
        json_object_set_new(body, "expires_at", json_string(exp));
    if (!body)
        return usage_error(ctx, "the key name and role must be UTF-8 text%s", "");
    int rc = tenant_call(ctx, a, "POST", "/keys", body, show_key_created);
    json_decref(body);
    return rc;
}

static void show_keys(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    static const char *const heads[] = {"ID", "NAME", "ROLE", "CREATED", "EXPIRES", NULL};
    static const char *const keys[] = {"id", "name", "role", "created_at", "expires_at", NULL};
    print_list(ctx, json_object_get(ans->json, "keys"), heads, keys);
}

static int cmd_keys_list(ctl_ctx *ctx, ctl_args *a) {
    return tenant_call(ctx, a, "GET", "/keys", NULL, show_keys);
}

static void show_revoked(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    fputs("revoked key ", ctx->out);
    ctl_put_clean(ctx->out, a->pos[0]);
    fputc('\n', ctx->out);
}

static int cmd_keys_revoke(ctl_ctx *ctx, ctl_args *a) {
    char path[2048];
    int rc = tenant_path1(ctx, path, sizeof(path), "/keys/%s", a->pos[0]);
    return rc ? rc : call_and_show(ctx, a, "DELETE", path, NULL, show_revoked);
}

/* One line per entry: seq, time, actor, method, target, the settings it changed. */
static void show_audit(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    json_t *rows = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(ans->json, "entries"), i, e) {
        const json_t *actor = json_object_get(e, "actor");
        const char *who = json_string_value(json_object_get(actor, "name"))
                              ?: json_string_value(json_object_get(actor, "type"));
        json_t *what = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(e, "changes"), k, v)
            json_array_append_new(what, json_string(k));
        json_t *row = json_pack("{s:O,s:O,s:s,s:O,s:O,s:o}", "seq", json_object_get(e, "seq"), "at",
                                json_object_get(e, "at"), "actor", who ?: "?", "method",
                                json_object_get(e, "method"), "target",
                                json_object_get(e, "target"), "changed", what);
        if (row)
            json_array_append_new(rows, row);
    }
    static const char *const heads[] = {"SEQ", "AT", "ACTOR", "METHOD", "TARGET", "CHANGED", NULL};
    static const char *const keys[] = {"seq", "at", "actor", "method", "target", "changed", NULL};
    print_list(ctx, rows, heads, keys);
    json_decref(rows);
    const json_t *next = json_object_get(ans->json, "next_before");
    if (json_is_integer(next))
        fprintf(ctx->out, "more: --before %lld\n", (long long)json_integer_value(next));
}

/* 1 when s is a number of 1 to 18 digits (the API checks its range). */
static int digits(const char *s) {
    size_t n = strspn(s, "0123456789");
    return n > 0 && n < 19 && s[n] == '\0';
}

static int cmd_audit_list(ctl_ctx *ctx, ctl_args *a) {
    const char *limit = opt(a, "limit"), *before = opt(a, "before");
    if (limit && !digits(limit))
        return usage_error(ctx, "--limit takes a number (got \"%s\")", limit);
    if (before && !digits(before))
        return usage_error(ctx, "--before takes an entry number (got \"%s\")", before);
    char suffix[128];
    snprintf(suffix, sizeof(suffix), "/audit?limit=%s%s%s", limit ? limit : "50",
             before ? "&before=" : "", before ? before : "");
    return tenant_call(ctx, a, "GET", suffix, NULL, show_audit);
}

static void show_offboarded(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    fputs("offboarded tenant ", ctx->out);
    ctl_put_clean(ctx->out, a->pos[0]);
    fputc('\n', ctx->out);
}

static int cmd_tenants_delete(ctl_ctx *ctx, ctl_args *a) {
    snprintf(ctx->conf.tenant, sizeof(ctx->conf.tenant), "%s", a->pos[0]);
    if (!opt(a, "yes"))
        return usage_error(ctx, "tenants delete removes everything of the tenant: add --yes%s", "");
    char path[512];
    int rc = tenant_path(ctx, path, sizeof(path), "");
    return rc ? rc : call_and_show(ctx, a, "DELETE", path, NULL, show_offboarded);
}

/* ------------------------------------------------------------------ sync history, dead letters */

/* records {"customers":30,"assets":1500} as "customers=30 assets=1500": new string. */
static char *records_text(const json_t *records) {
    char buf[512] = "";
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)records, k, v) {
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof(buf) - n, "%s%s=%lld", n ? " " : "", k,
                 (long long)json_integer_value(v));
    }
    return strdup(buf[0] ? buf : "-");
}

static void show_jobs(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    json_t *rows = json_array();
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(ans->json, "jobs"), i, j) {
        json_t *row = json_deep_copy(j);
        char *rec = records_text(json_object_get(j, "records"));
        json_object_set_new(row, "records", json_string(rec));
        free(rec);
        json_array_append_new(rows, row);
    }
    static const char *const heads[] = {"JOB",   "TRIGGER", "RESULT",  "STARTED", "DURATION MS",
                                        "PAGES", "RECORDS", "RESUMES", "ERROR",   NULL};
    static const char *const keys[] = {"job_id", "trigger", "result",  "started_at", "duration_ms",
                                       "pages",  "records", "resumes", "error",      NULL};
    print_list(ctx, rows, heads, keys);
    json_decref(rows);
}

static int cmd_sync_history(ctl_ctx *ctx, ctl_args *a) {
    const char *limit = opt(a, "limit");
    if (!is_vendor(ctx, a->pos[0]))
        return CTL_USAGE;
    if (limit && !digits(limit))
        return usage_error(ctx, "--limit takes a number (got \"%s\")", limit);
    char suffix[128];
    snprintf(suffix, sizeof(suffix), "/integrations/%s/jobs?limit=%s", a->pos[0],
             limit ? limit : "20");
    return tenant_call(ctx, a, "GET", suffix, NULL, show_jobs);
}

static void show_dead_letters(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    static const char *const heads[] = {"ID",     "FAILED AT", "SERVICE", "SOURCE TOPIC",
                                        "REASON", "REPLAYED",  NULL};
    static const char *const keys[] = {"id",     "failed_at", "service", "source_topic",
                                       "reason", "replayed",  NULL};
    print_list(ctx, json_object_get(ans->json, "dead_letters"), heads, keys);
    const char *next = json_string_value(json_object_get(ans->json, "next_cursor"));
    if (next) {
        fputs("more: --cursor ", ctx->out);
        ctl_put_clean(ctx->out, next);
        fputc('\n', ctx->out);
    }
}

/* The list filters of dlq list (query) and dlq replay --all (body members). */
static const struct {
    const char *opt, *name;
} dlq_filters[] = {{"service", "service"},
                   {"reason", "reason"},
                   {"source-topic", "source_topic"},
                   {"since", "since"}};

static int cmd_dlq_list(ctl_ctx *ctx, ctl_args *a) {
    const char *replayed = opt(a, "replayed");
    if (replayed && strcmp(replayed, "true") != 0 && strcmp(replayed, "false") != 0)
        return usage_error(ctx, "--replayed takes true or false (got \"%s\")", replayed);
    char q[4096] = "";
    int rc = 0;
    for (size_t i = 0; i < sizeof(dlq_filters) / sizeof(dlq_filters[0]) && !rc; i++)
        rc = add_query(ctx, q, sizeof(q), dlq_filters[i].name, opt(a, dlq_filters[i].opt));
    rc = rc || add_query(ctx, q, sizeof(q), "replayed", replayed) ||
         add_query(ctx, q, sizeof(q), "limit", opt(a, "limit")) ||
         add_query(ctx, q, sizeof(q), "cursor", opt(a, "cursor"));
    if (rc)
        return CTL_USAGE;
    char suffix[4200];
    snprintf(suffix, sizeof(suffix), "/dead-letters%s", q);
    return tenant_call(ctx, a, "GET", suffix, NULL, show_dead_letters);
}

static int cmd_dlq_show(ctl_ctx *ctx, ctl_args *a) {
    return get_one(ctx, a, "/dead-letters/%s", show_fields);
}

static void show_replayed(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    json_int_t n = json_integer_value(json_object_get(ans->json, "replayed"));
    fprintf(ctx->out, "replayed %lld dead letter%s", (long long)n, n == 1 ? "" : "s");
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(ans->json, "ids"), i, id) {
        fputs(i ? ", " : ": ", ctx->out);
        ctl_put_clean(ctx->out, json_string_value(id) ?: "?");
    }
    fputc('\n', ctx->out);
    if (json_is_true(json_object_get(ans->json, "more")))
        fputs("more match: run dlq replay --all again\n", ctx->out);
}

static int cmd_dlq_replay(ctl_ctx *ctx, ctl_args *a) {
    int all = opt(a, "all") != NULL;
    if (all == (a->npos > 0))
        return usage_error(ctx, "dlq replay takes dead letter ids or --all (not both)%s", "");
    json_t *body = json_object();
    if (all) {
        json_object_set_new(body, "all", json_true());
        for (size_t i = 0; i < sizeof(dlq_filters) / sizeof(dlq_filters[0]); i++)
            if (opt(a, dlq_filters[i].opt))
                json_object_set_new(body, dlq_filters[i].name,
                                    json_string(opt(a, dlq_filters[i].opt)));
    } else {
        for (size_t i = 0; i < sizeof(dlq_filters) / sizeof(dlq_filters[0]); i++)
            if (opt(a, dlq_filters[i].opt)) {
                json_decref(body);
                return usage_error(ctx, "--%s goes with --all", dlq_filters[i].opt);
            }
        json_t *ids = json_array();
        for (int i = 0; i < a->npos; i++)
            json_array_append_new(ids, json_string(a->pos[i]));
        json_object_set_new(body, "ids", ids);
    }
    if (opt(a, "force"))
        json_object_set_new(body, "force", json_true());
    int rc = tenant_call(ctx, a, "POST", "/dead-letters/replay", body, show_replayed);
    json_decref(body);
    return rc;
}

/* ------------------------------------------------------------------ traces */

/* The facts of a trace entry as one cell: "key=value ..." without the fixed members. */
static char *trace_detail(const json_t *e) {
    static const char *const fixed[] = {"at", "at_ms", "step", "service", "event_id", NULL};
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return strdup("?");
    const char *k;
    json_t *v;
    int n = 0;
    json_object_foreach((json_t *)e, k, v) {
        int skip = 0;
        for (int i = 0; fixed[i] && !skip; i++)
            skip = strcmp(k, fixed[i]) == 0;
        if (skip || json_is_null(v))
            continue;
        char *t = cell_text(v);
        fprintf(f, "%s%s=%s", n++ ? " " : "", k, t);
        free(t);
    }
    fclose(f);
    for (char *p = out; p && *p; p++) /* keys too reach the terminal cleaned */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return out ? out : strdup("?");
}

/* Trace entries as a table: AT, STEP, SERVICE, DETAIL. */
static void print_entries(ctl_ctx *ctx, const json_t *entries) {
    json_t *rows = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        char *d = trace_detail(e);
        json_t *row = json_pack("{s:O,s:O,s:O,s:s}", "at", json_object_get(e, "at"), "step",
                                json_object_get(e, "step"), "service",
                                json_object_get(e, "service"), "detail", d);
        free(d);
        if (row)
            json_array_append_new(rows, row);
    }
    static const char *const heads[] = {"AT", "STEP", "SERVICE", "DETAIL", NULL};
    static const char *const keys[] = {"at", "step", "service", "detail", NULL};
    print_list(ctx, rows, heads, keys);
    json_decref(rows);
}

static void show_incident_trace(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    (void)a;
    size_t i;
    json_t *inc;
    json_array_foreach(json_object_get(ans->json, "incidents"), i, inc) {
        if (i)
            fputc('\n', ctx->out);
        static const char *const facts[][2] = {{"fingerprint", "fingerprint"},
                                               {"incident_id", "incident"},
                                               {"org_id", "org"},
                                               {"alert_type", "alert type"}};
        for (size_t f = 0; f < sizeof(facts) / sizeof(facts[0]); f++) {
            char *t = cell_text(json_object_get(inc, facts[f][0]));
            fprintf(ctx->out, "%s: %s\n", facts[f][1], t);
            free(t);
        }
        const json_t *tk = json_object_get(inc, "ticket");
        if (json_is_object(tk)) {
            char *id = cell_text(json_object_get(tk, "ticket_id"));
            char *num = cell_text(json_object_get(tk, "ticket_number"));
            char *st = cell_text(json_object_get(tk, "state"));
            char *gen = cell_text(json_object_get(tk, "gen"));
            fprintf(ctx->out, "ticket: #%s (id %s), %s, generation %s\n", num, id, st, gen);
            free(id);
            free(num);
            free(st);
            free(gen);
        } else {
            fprintf(ctx->out, "ticket: none\n");
        }
        print_entries(ctx, json_object_get(inc, "entries"));
    }
    const json_t *rej = json_object_get(ans->json, "rejected");
    if (json_array_size(rej)) {
        fprintf(ctx->out, "%srejected before a fingerprint could be made:\n",
                json_array_size(json_object_get(ans->json, "incidents")) ? "\n" : "");
        print_entries(ctx, rej);
    }
}

static int cmd_incident_trace(ctl_ctx *ctx, ctl_args *a) {
    return get_one(ctx, a, "/incidents/%s", show_incident_trace);
}

static void show_asset_history(ctl_ctx *ctx, const ctl_args *a, const ctl_answer *ans) {
    (void)a;
    print_entries(ctx, json_object_get(ans->json, "entries"));
    const json_t *next = json_object_get(ans->json, "next_cursor");
    if (json_is_integer(next))
        fprintf(ctx->out, "more: --cursor %lld\n", (long long)json_integer_value(next));
}

static int cmd_asset_history(ctl_ctx *ctx, ctl_args *a) {
    const char *limit = opt(a, "limit"), *cursor = opt(a, "cursor");
    if (limit && !digits(limit))
        return usage_error(ctx, "--limit takes a number (got \"%s\")", limit);
    if (cursor && !digits(cursor))
        return usage_error(ctx, "--cursor takes a position (got \"%s\")", cursor);
    char fmt[128];
    snprintf(fmt, sizeof(fmt), "/assets/%%s/history?limit=%s&cursor=%s", limit ? limit : "50",
             cursor ? cursor : "0");
    return get_one(ctx, a, fmt, show_asset_history);
}

/* ------------------------------------------------------------------ the table */

#define WATCH_OPTS                                                                                 \
    {"watch", NULL, "follow the sync job to Connected or Error with a progress display"}, {        \
        "interval", "MS", "poll the status every MS milliseconds (default 500)"                    \
    }
#define PAGE_OPTS                                                                                  \
    {"page", "N", "page number (default 1)"}, {                                                    \
        "per-page", "N", "entries per page (1-500, default 50)"                                    \
    }

static const ctl_opt add_opts[] = {
    {"subdomain", "NAME", "syncro: the account's subdomain (https://NAME.syncromsp.com/api/v1)"},
    {"region", "na|eu|au", "cwrmm: the ConnectWise RMM region"},
    {"base-url", "URL", "an explicit API base (a proxy, a simulator) instead"},
    {"api-key-file", "FILE", "syncro: file holding the API key (- reads stdin)"},
    {"client-id", "ID", "cwrmm: the API client id"},
    {"client-secret-file", "FILE", "cwrmm: file holding the client secret (- reads stdin)"},
    {"writeback", "LIST", "write-back opt-in: purchase_date,warranty_expires or none"},
    {"features", "LIST",
     "syncro: the features to enable, e.g. assets,customers (default: every "
     "feature the key serves; docs/setup.md)"},
    WATCH_OPTS,
    {NULL, NULL, NULL}};
static const ctl_opt sync_opts[] = {
    {"types", "LIST", "customers,assets (default both)"}, WATCH_OPTS, {NULL, NULL, NULL}};
static const ctl_opt watch_opts[] = {
    {"job", "ID", "the job to follow (default: whatever job runs now)"},
    {"interval", "MS", "poll the status every MS milliseconds (default 500)"},
    {NULL, NULL, NULL}};
static const ctl_opt page_opts[] = {PAGE_OPTS, {NULL, NULL, NULL}};
static const ctl_opt asset_opts[] = {
    PAGE_OPTS,
    {"customer", "ID", "only assets of this customer (canonical id, e.g. syncro:42)"},
    {"serial", "SERIAL", "only assets with this serial (case-insensitive)"},
    {"type", "TYPE", "only assets of this asset_type (case-insensitive)"},
    {"include-gone", "0|1", "include assets gone from the vendor"},
    {NULL, NULL, NULL}};
static const ctl_opt date_opts[] = {
    {"purchase", "DATE", "purchase date YYYY-MM-DD, or none to clear the edit"},
    {"warranty", "DATE", "warranty expiration YYYY-MM-DD, or none to clear the edit"},
    {NULL, NULL, NULL}};
static const ctl_opt secret_opts[] = {
    {"previous-valid-seconds", "N", "keep accepting the old secret N seconds (default 86400)"},
    {NULL, NULL, NULL}};

static const ctl_opt key_opts[] = {
    {"role", "ROLE", "owner, sync, billing or viewer"},
    {"expires-at", "TIME", "UTC expiry, e.g. 2030-01-31T23:59:59Z (default: none)"},
    {NULL, NULL, NULL}};
static const ctl_opt audit_opts[] = {
    {"limit", "N", "entries per page (1-200, default 50)"},
    {"before", "SEQ", "entries older than SEQ (the \"more:\" line of the previous page)"},
    {NULL, NULL, NULL}};
static const ctl_opt history_opts[] = {{"limit", "N", "jobs to show (1-100, default 20)"},
                                       {NULL, NULL, NULL}};
#define DLQ_FILTER_OPTS                                                                            \
    {"service", "NAME", "only those a service dead-lettered (normalizer, ticket-creator, ...)"},   \
        {"reason", "TEXT", "only those whose reason contains TEXT"},                               \
        {"source-topic", "TOPIC", "only those from TOPIC (e.g. incidents)"}, {                     \
        "since", "TIME", "only those dead-lettered at or after TIME (RFC 3339)"                    \
    }
static const ctl_opt dlq_list_opts[] = {
    DLQ_FILTER_OPTS,
    {"replayed", "true|false", "only those replayed (or not) already"},
    {"limit", "N", "entries per page (1-200, default 50)"},
    {"cursor", "ID", "the page after ID (the \"more:\" line of the previous page)"},
    {NULL, NULL, NULL}};
static const ctl_opt dlq_replay_opts[] = {
    {"all", NULL, "every dead letter of the tenant not replayed yet (with the filters below)"},
    DLQ_FILTER_OPTS,
    {"force", NULL, "replay also those replayed already"},
    {NULL, NULL, NULL}};
static const ctl_opt asset_history_opts[] = {
    {"limit", "N", "entries per page (1-200, default 50)"},
    {"cursor", "N", "start at entry N (the \"more:\" line of the previous page)"},
    {NULL, NULL, NULL}};
static const ctl_opt yes_opts[] = {{"yes", NULL, "confirm: nothing of the tenant is kept"},
                                   {NULL, NULL, NULL}};

static const ctl_cmd commands[] = {
    {"tenants list", "", 0, 0, NULL, 0, "list tenants", cmd_tenants_list},
    {"tenants create", "<id> <name>", 2, 2, NULL, 0, "create a tenant", cmd_tenants_create},
    {"tenants show", "[<id>]", 0, 1, NULL, 0, "a tenant and its integrations", cmd_tenants_show},
    {"integration add", "syncro|cwrmm", 1, 1, add_opts, 1,
     "save an integration (credentials checked by the API) and start a full sync",
     cmd_integration_add},
    {"integration status", "syncro|cwrmm", 1, 1, NULL, 1, "state, progress, counts, last error",
     cmd_integration_status},
    {"integration sync", "syncro|cwrmm", 1, 1, sync_opts, 1, "ask for a sync now",
     cmd_integration_sync},
    {"sync", "syncro|cwrmm", 1, 1, sync_opts, 1, "same as integration sync", cmd_integration_sync},
    {"integration watch", "syncro|cwrmm", 1, 1, watch_opts, 1,
     "follow the running sync to Connected or Error", cmd_integration_watch},
    {"integration disable", "syncro|cwrmm", 1, 1, NULL, 1,
     "drop the secret (settings and inventory stay)", cmd_integration_disable},
    {"integration remove", "syncro|cwrmm", 1, 1, NULL, 1,
     "remove the integration and its inventory", cmd_integration_remove},
    {"customers list", "", 0, 0, page_opts, 1, "synced customers, by id", cmd_inventory_list},
    {"customers show", "<id>", 1, 1, NULL, 1, "one customer", cmd_inventory_show},
    {"assets list", "", 0, 0, asset_opts, 1, "synced assets, by id, filtered", cmd_inventory_list},
    {"assets search", "", 0, 0, asset_opts, 1, "assets list with at least one filter",
     cmd_inventory_list},
    {"assets show", "<id>", 1, 1, NULL, 1, "one asset (also when gone)", cmd_inventory_show},
    {"assets dates", "<id>", 1, 1, date_opts, 1, "edit an asset's purchase / warranty date",
     cmd_assets_dates},
    {"assets writeback", "<id>", 1, 1, NULL, 1, "what write-back did with the asset's dates",
     cmd_assets_writeback},
    {"webhook show", "", 0, 0, NULL, 1, "the MTP webhook config (never the secret)",
     cmd_webhook_show},
    {"webhook secret create", "", 0, 0, secret_opts, 1,
     "create or rotate the webhook secret (shown once)", cmd_webhook_secret_create},
    {"webhook secret drop-previous", "", 0, 0, NULL, 1, "revoke the previous secret now",
     cmd_webhook_secret_drop},
    {"ticketing show", "", 0, 0, NULL, 1, "the ticketing config, rules and status",
     cmd_ticketing_show},
    {"ticketing set-rules", "<file.json|->", 1, 1, NULL, 1,
     "replace the ticketing config with a JSON document", cmd_ticketing_set_rules},
    {"ticketing orgs list", "", 0, 0, NULL, 1, "MTP orgs, their mappings and suggestions",
     cmd_ticketing_orgs_list},
    {"ticketing orgs set", "<org-id> <customer-id>", 2, 2, NULL, 1,
     "map an MTP org to a synced Syncro customer", cmd_ticketing_orgs_set},
    {"ticketing orgs delete", "<org-id>", 1, 1, NULL, 1, "remove an org's mapping",
     cmd_ticketing_orgs_delete},
    {"ticketing unmapped", "", 0, 0, NULL, 1, "orgs whose incidents wait for a mapping",
     cmd_ticketing_unmapped},
    {"secrets show", "", 0, 0, NULL, 0,
     "which key of MSPSYNC_SECRET_KEYS seals the stored secrets; what needs saving again",
     cmd_secrets_show},
    {"secrets reseal", "", 0, 0, NULL, 0, "re-seal every secret with the newest key (rotation)",
     cmd_secrets_reseal},
    {"tenants delete", "<id>", 1, 1, yes_opts, 0,
     "offboard a tenant: every key and record removed, tombstones in Kafka (operator)",
     cmd_tenants_delete},
    {"keys create", "<name>", 1, 1, key_opts, 1, "issue an API key of the tenant (shown once)",
     cmd_keys_create},
    {"keys list", "", 0, 0, NULL, 1, "the tenant's API keys (never their secrets)", cmd_keys_list},
    {"keys revoke", "<id>", 1, 1, NULL, 1, "revoke an API key now", cmd_keys_revoke},
    {"audit list", "", 0, 0, audit_opts, 1, "the tenant's audit log, newest first", cmd_audit_list},
    {"sync history", "syncro|cwrmm", 1, 1, history_opts, 1,
     "the integration's last sync jobs: trigger, pages, records, result", cmd_sync_history},
    {"dlq list", "", 0, 0, dlq_list_opts, 1, "the tenant's dead letters, newest first, filtered",
     cmd_dlq_list},
    {"dlq show", "<id>", 1, 1, NULL, 1, "one dead letter with its value", cmd_dlq_show},
    {"dlq replay", "[<id>...]", 0, CTL_MAX_POS, dlq_replay_opts, 1,
     "replay dead letters (ids, or --all) to their source topics", cmd_dlq_replay},
    {"incident trace", "<ref>", 1, 1, NULL, 1,
     "what happened to an incident (its fingerprint or the portal's incident id)",
     cmd_incident_trace},
    {"asset history", "<id>", 1, 1, asset_history_opts, 1,
     "an asset's history: sources joining and leaving, date changes, write-backs",
     cmd_asset_history},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static size_t word_count(const char *name) {
    size_t n = 1;
    for (; *name; name++)
        n += *name == ' ';
    return n;
}

/* @returns 1 when argv[0..words) spells name. */
static int words_match(const char *name, int argc, char **argv) {
    size_t words = word_count(name);
    if ((size_t)argc < words)
        return 0;
    const char *p = name;
    for (size_t i = 0; i < words; i++) {
        size_t len = strcspn(p, " ");
        if (strlen(argv[i]) != len || strncmp(argv[i], p, len) != 0)
            return 0;
        p += len + (p[len] == ' ');
    }
    return 1;
}

static void cmd_help(FILE *out, const ctl_cmd *c) {
    fprintf(out, "usage: mspsyncctl [global options] %s%s%s%s\n\n%s\n", c->name,
            c->usage[0] ? " " : "", c->usage, c->opts ? " [options]" : "", c->help);
    if (c->tenant)
        fprintf(out,
                "The tenant comes from --tenant, MSPSYNC_TENANT or `tenant =` in the config.\n");
    if (c->opts) {
        fprintf(out, "\noptions:\n");
        for (int i = 0; c->opts[i].name; i++) {
            char head[64];
            snprintf(head, sizeof(head), "--%s%s%s", c->opts[i].name, c->opts[i].arg ? " " : "",
                     c->opts[i].arg ? c->opts[i].arg : "");
            fprintf(out, "  %-28s %s\n", head, c->opts[i].help);
        }
    }
    fprintf(out, "\nGlobal options: mspsyncctl --help. Exit codes: docs/cli.md.\n");
}

void ctl_help(FILE *out) {
    fprintf(out, "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char head[80];
        snprintf(head, sizeof(head), "%s%s%s", commands[i].name, commands[i].usage[0] ? " " : "",
                 commands[i].usage);
        fprintf(out, "  %-42s %s\n", head, commands[i].help);
    }
    fprintf(out, "\n`mspsyncctl <command> --help` shows a command's options.\n");
}

int ctl_dispatch(ctl_ctx *ctx, int argc, char **argv) {
    const ctl_cmd *c = NULL;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (words_match(commands[i].name, argc, argv) &&
            (!c || word_count(commands[i].name) > word_count(c->name)))
            c = &commands[i];
    if (!c) {
        /* A group with --help (`mspsyncctl ticketing --help`) lists the group's commands and is
         * not an error; anything else unknown is a usage error that lists them on stderr. */
        size_t in_group = 0;
        for (size_t i = 0; i < NCOMMANDS; i++)
            in_group += argc > 0 && strncmp(commands[i].name, argv[0], strlen(argv[0])) == 0 &&
                        commands[i].name[strlen(argv[0])] == ' ';
        int help =
            in_group && argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        FILE *f = help ? ctx->out : ctx->err;
        if (!help) {
            fprintf(f, "mspsyncctl: unknown command \"");
            for (int i = 0; i < argc && i < 3; i++) {
                ctl_put_clean(f, argv[i]);
                if (i + 1 < argc && i < 2)
                    fputc(' ', f);
            }
            fprintf(f, "\"\n");
        }
        for (size_t i = 0; i < NCOMMANDS; i++)
            if (argc > 0 && strncmp(commands[i].name, argv[0], strlen(argv[0])) == 0 &&
                commands[i].name[strlen(argv[0])] == ' ')
                fprintf(f, "  mspsyncctl %s%s%s\n", commands[i].name,
                        commands[i].usage[0] ? " " : "", commands[i].usage);
        fprintf(f, "mspsyncctl --help lists every command\n");
        return help ? CTL_OK : CTL_USAGE;
    }
    ctl_args a = {.cmd = c};
    int i = (int)word_count(c->name);
    int dashdash = 0;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (!dashdash && strcmp(arg, "--") == 0) {
            dashdash = 1;
            continue;
        }
        if (!dashdash && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            cmd_help(ctx->out, c);
            return CTL_OK;
        }
        if (!dashdash && arg[0] == '-' && arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
            int k = -1;
            for (int j = 0; c->opts && c->opts[j].name; j++)
                if (strlen(c->opts[j].name) == nlen && strncmp(c->opts[j].name, name, nlen) == 0)
                    k = j;
            if (k < 0) {
                fprintf(ctx->err, "mspsyncctl: %s: unknown option \"", c->name);
                ctl_put_clean(ctx->err, arg);
                fprintf(ctx->err, "\"; see mspsyncctl %s --help\n", c->name);
                return CTL_USAGE;
            }
            if (!c->opts[k].arg) {
                if (eq)
                    return usage_error(ctx, "--%s takes no value", c->opts[k].name);
                a.val[k] = "1";
            } else if (eq) {
                a.val[k] = eq + 1;
            } else if (i + 1 < argc) {
                a.val[k] = argv[++i];
            } else {
                return usage_error(ctx, "--%s needs a value", c->opts[k].name);
            }
            continue;
        }
        if (a.npos >= c->max_pos || a.npos >= CTL_MAX_POS) {
            fprintf(ctx->err, "mspsyncctl: %s: unexpected argument \"", c->name);
            ctl_put_clean(ctx->err, arg);
            fprintf(ctx->err, "\"; usage: mspsyncctl %s %s\n", c->name, c->usage);
            return CTL_USAGE;
        }
        a.pos[a.npos++] = arg;
    }
    if (a.npos < c->min_pos) {
        fprintf(ctx->err, "mspsyncctl: %s needs %s\n", c->name, c->usage);
        return CTL_USAGE;
    }
    if (c->tenant && !ctx->conf.tenant[0])
        return usage_error(ctx,
                           "%s needs a tenant: --tenant, MSPSYNC_TENANT or `tenant =` in the "
                           "config file",
                           c->name);
    return c->run(ctx, &a);
}
