/*
 * decide.h — DECIDE, the ticket-creator's choice of the next Syncro call for one incident event,
 * as a pure function of what LOAD found (work.c's top comment is the table it implements).
 *
 * No I/O and no clock of its own: work.c gathers the facts (the ticket record's state, the
 * event's status, the org mapping, the config, the time) and carries the action out. Kept apart
 * so that every row of the table is unit-tested (tests/unit/test_tc_decide.c).
 */
#ifndef MSPSYNC_TC_DECIDE_H
#define MSPSYNC_TC_DECIDE_H

/* The state of the ticket record `tk:<fp>` (stored by name: work.c's state_names). */
typedef enum { TK_NONE = 0, TK_CREATING, TK_OPEN, TK_RESOLVED } tk_state_t;

typedef enum {
    TC_DO_NOTHING = 0,   /* finish: nothing to call Syncro for */
    TC_DO_SKIP_DISABLED, /* finish as resolve_skipped_disabled (auto-resolve is off) */
    TC_DO_SEARCH,        /* a claim without a record: find the ticket by its marker */
    TC_DO_UNMAPPED,      /* a ticket is needed but no Syncro customer is mapped: dead letter */
    TC_DO_CREATE,        /* claim (next generation), then POST /tickets */
    TC_DO_COMMENT,       /* POST a "fired again" comment */
    TC_DO_COMMENT_CHECK, /* GET the ticket first: a replay's comment may have landed */
    TC_DO_RESOLVE_CHECK, /* GET the ticket: untouched → resolve, touched → say why not */
    TC_DO_REOPEN,        /* PUT the rule's status back, then comment */
} tc_action_t;

typedef struct tc_facts_s {
    tk_state_t state;
    int open;            /* the event's status is "open" (else "resolved") */
    int mapped;          /* a Syncro customer is known (mapping or the record's) */
    int pending_comment; /* the record's pending marker is comment:<this event> */
    int auto_resolve;    /* the ticketing config's auto_resolve */
    long long now_ms, resolved_at_ms, reopen_window_ms;
} tc_facts_t;

/** @brief The next step for an event with these facts (the DECIDE table). */
tc_action_t tc_decide(const tc_facts_t *f);

/** @brief "create", "search", … (static string, for logs and tests). */
const char *tc_action_name(tc_action_t a);

/*
 * The GATE, before DECIDE: whether an event that would open a ticket from nothing (no ticket
 * record, status open) is ticketed at all. An event of an incident that already has a ticket is
 * never gated: its re-fire still comments, its resolve still resolves (the ticket exists; the
 * technician expects to hear about it whatever the severity).
 */
typedef enum {
    TC_GATE_PASS = 0, /* go on to DECIDE */
    TC_GATE_RULE,     /* the alert type's rule says create: false (stats: skipped_rule) */
    TC_GATE_SEVERITY, /* the severity is under the minimum (stats: skipped_severity) */
} tc_gate_t;

typedef struct tc_gate_facts_s {
    int new_ticket;           /* no ticket record and the event is open */
    int rule_create;          /* the rule's create (1 when no rule) */
    const char *severity;     /* the incident's; NULL = the portal gave none */
    const char *min_severity; /* the rule's, else the config's; NULL = no gate */
} tc_gate_facts_t;

/**
 * @brief The rank of a severity: info 0, low 1, medium 2, high 3, critical 4; -1 for NULL or a
 * word that is none of these.
 */
int tc_severity_rank(const char *severity);

/**
 * @brief The GATE. A severity under min_severity is skipped; an incident without a severity (or
 * with one the portal's list does not have) passes: an unknown grade is not a low one, and
 * dropping it silently by default could lose an actionable incident.
 */
tc_gate_t tc_gate(const tc_gate_facts_t *f);

#endif
