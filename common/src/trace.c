/*
 * trace.c — trace entries (trace.h): one shape for every service that writes them, one
 * de-duplication rule for every reader.
 */
#include "mspsync/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mspsync/backoff.h"

char *msp_trace_entry(int64_t wall_ms, const char *step, const char *service, json_t *facts) {
    char at[32];
    msp_format_time(wall_ms, at, sizeof(at));
    json_t *e = json_pack("{s:s,s:I,s:s,s:s}", "at", at, "at_ms", (json_int_t)wall_ms, "step", step,
                          "service", service);
    if (!e) {
        json_decref(facts);
        return NULL;
    }
    if (json_is_object(facts))
        json_object_update_missing(e, facts);
    json_decref(facts);
    char *text = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(e);
    return text;
}

int msp_trace_entry_key(const json_t *entry, char *buf, size_t size) {
    const char *eid = json_string_value(json_object_get(entry, "event_id"));
    const char *step = json_string_value(json_object_get(entry, "step"));
    const char *err = json_string_value(json_object_get(entry, "error"));
    int n;
    if (!eid || !step)
        n = snprintf(buf, size, "%s", "");
    else
        n = snprintf(buf, size, "%s\t%s\t%s", eid, step, !strcmp(step, "error") && err ? err : "");
    return n < 0 || (size_t)n >= size ? -1 : 0;
}
