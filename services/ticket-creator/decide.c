/*
 * decide.c — the DECIDE table (decide.h), row by row in the order work.c's top comment gives it.
 */
#include "decide.h"

#include <string.h>

/* No ticket (or one outside the reopen window): a new one when the org is mapped. */
static tc_action_t new_ticket(const tc_facts_t *f) {
    return f->mapped ? TC_DO_CREATE : TC_DO_UNMAPPED;
}

tc_action_t tc_decide(const tc_facts_t *f) {
    switch (f->state) {
    case TK_CREATING: return TC_DO_SEARCH;
    case TK_NONE: return f->open ? new_ticket(f) : TC_DO_NOTHING; /* resolved before any ticket */
    case TK_OPEN:
        if (!f->open)
            return f->auto_resolve ? TC_DO_RESOLVE_CHECK : TC_DO_SKIP_DISABLED;
        return f->pending_comment ? TC_DO_COMMENT_CHECK : TC_DO_COMMENT;
    case TK_RESOLVED:
        if (!f->open)
            return TC_DO_NOTHING;
        if (f->now_ms - f->resolved_at_ms <= f->reopen_window_ms)
            return TC_DO_REOPEN;
        return new_ticket(f); /* after the window: a new ticket, the next generation */
    }
    return TC_DO_NOTHING;
}

const char *tc_action_name(tc_action_t a) {
    static const char *const names[] = {"nothing",       "skip_disabled", "search",
                                        "unmapped",      "create",        "comment",
                                        "comment_check", "resolve_check", "reopen"};
    return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

int tc_severity_rank(const char *severity) {
    static const char *const names[] = {"info", "low", "medium", "high", "critical"};
    for (int i = 0; severity && i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (!strcmp(severity, names[i]))
            return i;
    return -1;
}

tc_gate_t tc_gate(const tc_gate_facts_t *f) {
    if (!f->new_ticket)
        return TC_GATE_PASS;
    if (!f->rule_create)
        return TC_GATE_RULE;
    int have = tc_severity_rank(f->severity), min = tc_severity_rank(f->min_severity);
    if (have >= 0 && min >= 0 && have < min)
        return TC_GATE_SEVERITY;
    return TC_GATE_PASS;
}
