/*
 * ticket_settings.c — ticketing rules against the ticket settings synced from Syncro.
 *
 * A rule names a ticket status (and the config a resolve status) and may name a problem type;
 * Syncro refuses a ticket whose status its account does not have, so a rule with a status the
 * account lacks would only fail at the first incident. The fetcher syncs GET /tickets/settings
 * as the canonical "setting" record syncro:tickets (inv:setting:syncro:tickets of the tenant:
 * ticket_statuses, problem_types or null when Syncro's answer has none), and this file compares
 * a complete ticketing config (api_ticketing.c, config_complete) with it:
 * - on save, a status or problem type the account does not have is refused (400) with the ones
 *   it has; while no settings have been synced yet the config is accepted, and the answer says
 *   that nothing could be checked;
 * - on read, the rules that a later settings change (a status renamed in Syncro, then a sync)
 *   broke are listed in the ticketing status as rules_invalid.
 * Only reads Redis; the config and the settings record stay what they are.
 */
#include "gateway.h"

#include <stdio.h>
#include <string.h>

#include "mspsync/model.h"
#include "mspsync/redis.h"

/* value is one of the strings of known (a JSON array). */
static int listed(const json_t *known, const char *value) {
    size_t i;
    const json_t *s;
    json_array_foreach(known, i, s) {
        if (json_is_string(s) && strcmp(json_string_value(s), value) == 0)
            return 1;
    }
    return 0;
}

/* Append {alert_type, field, value, known} to invalid when obj's field names no known entry. */
static void check_field(json_t *invalid, const char *alert_type, const json_t *obj,
                        const char *field, const json_t *known) {
    const char *v = json_string_value(json_object_get(obj, field));
    if (!v || !json_is_array(known) || listed(known, v))
        return;
    json_array_append_new(invalid, json_pack("{s:s?,s:s,s:s,s:O}", "alert_type", alert_type,
                                             "field", field, "value", v, "known", known));
}

int gw_ticket_settings_check(gw_t *gw, const char *tenant, const json_t *cfg, json_t **invalid,
                             int *synced, char *err, size_t err_size) {
    char key[256];
    msp_key(key, sizeof(key), tenant, "inv:setting:syncro:%s", MSP_SYNCRO_SETTINGS_ID);
    redisReply *r = gw_redis(gw, err, err_size, "GET %s", key);
    if (!r)
        return -1;
    json_t *set = r->type == REDIS_REPLY_STRING ? json_loadb(r->str, r->len, 0, NULL) : NULL;
    freeReplyObject(r);
    *invalid = json_array();
    *synced = json_is_object(set) && !json_is_true(json_object_get(set, "gone"));
    if (*synced) {
        const json_t *statuses = json_object_get(set, "ticket_statuses");
        const json_t *problems = json_object_get(set, "problem_types"); /* null: not checked */
        const char *alert;
        const json_t *rule;
        check_field(*invalid, NULL, cfg, "resolve_status", statuses);
        json_object_foreach((json_t *)json_object_get(cfg, "rules"), alert, rule) {
            check_field(*invalid, alert, rule, "status", statuses);
            check_field(*invalid, alert, rule, "problem_type", problems);
        }
    }
    json_decref(set);
    return 0;
}

char *gw_ticket_settings_text(const json_t *invalid, char *out, size_t out_size) {
    const json_t *first = json_array_get(invalid, 0);
    const char *alert = json_string_value(json_object_get(first, "alert_type"));
    const char *field = json_string_value(json_object_get(first, "field"));
    int n =
        snprintf(out, out_size,
                 "%s%s%s \"%s\" is not a ticket %s of the Syncro account; "
                 "known: ",
                 alert ? "rules." : "", alert ? alert : "",
                 alert ? (strcmp(field, "status") ? ".problem_type" : ".status") : "resolve_status",
                 json_string_value(json_object_get(first, "value")),
                 strcmp(field, "problem_type") ? "status" : "problem type");
    size_t i;
    const json_t *k;
    json_array_foreach(json_object_get(first, "known"), i, k) {
        if (n < 0 || (size_t)n >= out_size)
            break;
        n += snprintf(out + n, out_size - (size_t)n, "%s\"%s\"", i ? ", " : "",
                      json_string_value(k));
    }
    return out;
}
