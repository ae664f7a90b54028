/*
 * progress.c — the sync progress display of `sync --watch` / `integration watch`.
 *
 * The fetcher writes its step into the integration status (progress.type, page, total_pages,
 * customers_fetched, assets_fetched) and the gateway answers it on GET .../integrations/<v>.
 * This module turns one such answer into one line of text: with a bar for a terminal, which the
 * caller redraws in place with a carriage return, or as plain text for a pipe or a log, which
 * the caller prints once per change. Rendering is pure (no I/O) and never emits a control
 * character itself: vendor-supplied text never reaches it, only numbers and the state names.
 */
#include <string.h>

#include "ctl.h"

static void copy_str(const json_t *obj, const char *key, char *out, size_t out_size) {
    const char *s = json_string_value(json_object_get(obj, key));
    out[0] = '\0';
    if (!s)
        return;
    /* Only printable ASCII: the value is shown on a terminal. */
    size_t j = 0;
    for (size_t i = 0; s[i] && j + 1 < out_size; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[j] = '\0';
}

static long long get_int(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return json_integer_value(v) < 0 ? 0 : json_integer_value(v);
    return 0;
}

void ctl_progress_from_json(const json_t *status, ctl_progress *p) {
    memset(p, 0, sizeof(*p));
    copy_str(status, "state", p->state, sizeof(p->state));
    copy_str(status, "job_id", p->job_id, sizeof(p->job_id));
    p->pending = json_is_true(json_object_get(status, "inventory_pending"));
    const json_t *pr = json_object_get(status, "progress");
    if (!json_is_object(pr))
        return;
    copy_str(pr, "type", p->type, sizeof(p->type));
    p->page = get_int(pr, "page");
    p->total_pages = get_int(pr, "total_pages");
    p->customers = get_int(pr, "customers_fetched");
    p->assets = get_int(pr, "assets_fetched");
}

int ctl_progress_final(const ctl_progress *p, const char *job_id) {
    if (job_id && strcmp(p->job_id, job_id) != 0)
        return 0;
    return strcmp(p->state, "Connected") == 0 || strcmp(p->state, "Error") == 0 ||
           strcmp(p->state, "Disabled") == 0;
}

/* The step in words: the fetcher's type while fetching, what follows once every page is in. */
static const char *step_of(const ctl_progress *p) {
    if (strcmp(p->state, "Syncing") != 0)
        return "";
    if (p->pending)
        return "writing inventory";
    if (p->type[0] == '\0')
        return "queued";
    return p->type;
}

size_t ctl_progress_render(const ctl_progress *p, int bar, int width, char *out, size_t out_size) {
    if (out_size == 0)
        return 0;
    const char *state = p->state[0] ? p->state : "unknown";
    const char *step = step_of(p);
    int fetching = strcmp(p->state, "Syncing") == 0 && !p->pending && p->total_pages > 0;
    char pages[48] = "";
    if (fetching)
        snprintf(pages, sizeof(pages), "page %lld/%lld", p->page, p->total_pages);
    int n = 0, tty = bar;
    if (bar) {
        /* "Syncing   asset      page 3/10     [####------]  customers 25  assets 150": the bar
         * takes what the rest of the line leaves of the terminal's width (at most 40 cells); when
         * that is under 5 cells the line is the plain one, so that the numbers are never cut. */
        char head[96], tail[64];
        snprintf(head, sizeof(head), "%-9s %-10s %-13s", state, step, pages);
        snprintf(tail, sizeof(tail), "  customers %lld  assets %lld", p->customers, p->assets);
        int cells = width - 1 - (int)strlen(head) - (int)strlen(tail) - 3;
        if (cells > 40)
            cells = 40;
        if (cells >= 5) {
            long long done = 0;
            if (strcmp(p->state, "Connected") == 0 || p->pending)
                done = cells;
            else if (fetching)
                done =
                    (p->page > p->total_pages ? p->total_pages : p->page) * cells / p->total_pages;
            char cellbuf[48];
            for (int i = 0; i < cells; i++)
                cellbuf[i] = i < done ? '#' : '-';
            cellbuf[cells] = '\0';
            n = snprintf(out, out_size, "%s [%s]%s", head, cellbuf, tail);
        } else {
            bar = 0;
        }
    }
    if (!bar) {
        n = snprintf(out, out_size, "%s%s%s%s%s, customers %lld, assets %lld", state,
                     step[0] ? " " : "", step, pages[0] ? " " : "", pages, p->customers, p->assets);
    }
    if (n < 0)
        n = 0;
    size_t len = (size_t)n >= out_size ? out_size - 1 : (size_t)n;
    if (tty && width > 1 && len > (size_t)(width - 1)) { /* a wrapped line would not redraw */
        len = (size_t)(width - 1);
        out[len] = '\0';
    }
    return len;
}
