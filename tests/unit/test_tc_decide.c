/*
 * test_tc_decide.c — the ticket-creator's DECIDE table (services/ticket-creator/decide.c), one
 * case per row of the table in work.c's top comment: which Syncro call an incident event leads
 * to, given its ticket record, its status and the ticketing config.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "decide.h"

#define DAY_MS 86400000LL
#define NOW (1764979200000LL) /* 2025-12-06 00:00 UTC */

/* An event of a mapped org, auto-resolve off, a 7-day reopen window. */
static tc_facts_t facts(tk_state_t state, int open) {
    return (tc_facts_t){
        .state = state, .open = open, .mapped = 1, .now_ms = NOW, .reopen_window_ms = 7 * DAY_MS};
}

static void expect(const tc_facts_t *f, tc_action_t want) {
    assert_string_equal(tc_action_name(tc_decide(f)), tc_action_name(want));
}

static void no_ticket_open_event_creates_one(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_NONE, 1);
    expect(&f, TC_DO_CREATE);
}

static void no_ticket_unmapped_org_is_dead_lettered(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_NONE, 1);
    f.mapped = 0;
    expect(&f, TC_DO_UNMAPPED);
}

static void no_ticket_resolved_event_calls_nothing(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_NONE, 0);
    f.auto_resolve = 1;
    expect(&f, TC_DO_NOTHING);
    f.mapped = 0; /* nothing to create: the mapping does not matter */
    expect(&f, TC_DO_NOTHING);
}

static void a_claim_without_a_record_searches_before_creating(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_CREATING, 1);
    expect(&f, TC_DO_SEARCH);
    f = facts(TK_CREATING, 0);
    expect(&f, TC_DO_SEARCH);
    f.mapped = 0;
    expect(&f, TC_DO_SEARCH);
}

static void open_ticket_refired_incident_adds_a_comment(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_OPEN, 1);
    expect(&f, TC_DO_COMMENT);
}

static void open_ticket_replayed_comment_is_looked_for_first(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_OPEN, 1);
    f.pending_comment = 1;
    expect(&f, TC_DO_COMMENT_CHECK);
}

static void resolved_ticket_reopens_inside_the_window(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_RESOLVED, 1);
    f.resolved_at_ms = NOW - DAY_MS;
    expect(&f, TC_DO_REOPEN);
    f.resolved_at_ms = NOW - 7 * DAY_MS; /* the window's last millisecond still reopens */
    expect(&f, TC_DO_REOPEN);
}

static void resolved_ticket_after_the_window_gets_a_new_ticket(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_RESOLVED, 1);
    f.resolved_at_ms = NOW - 7 * DAY_MS - 1;
    expect(&f, TC_DO_CREATE);
    f.mapped = 0;
    expect(&f, TC_DO_UNMAPPED);
    f = facts(TK_RESOLVED, 1);
    f.reopen_window_ms = 0; /* reopen_window_days 0: never reopen */
    f.resolved_at_ms = NOW - 1;
    expect(&f, TC_DO_CREATE);
}

static void open_ticket_resolved_event_with_auto_resolve_checks_the_ticket(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_OPEN, 0);
    f.auto_resolve = 1;
    expect(&f, TC_DO_RESOLVE_CHECK);
    f.pending_comment = 1; /* a "left open" comment in flight is looked for by the check */
    expect(&f, TC_DO_RESOLVE_CHECK);
}

static void open_ticket_resolved_event_without_auto_resolve_calls_nothing(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_OPEN, 0);
    expect(&f, TC_DO_SKIP_DISABLED);
}

static void resolved_ticket_resolved_again_calls_nothing(void **state) {
    (void)state;
    tc_facts_t f = facts(TK_RESOLVED, 0);
    f.auto_resolve = 1;
    f.resolved_at_ms = NOW - DAY_MS;
    expect(&f, TC_DO_NOTHING);
}

/* ---- the GATE (severity and create: false) ---- */

static tc_gate_facts_t gate(const char *sev, const char *min) {
    return (tc_gate_facts_t){
        .new_ticket = 1, .rule_create = 1, .severity = sev, .min_severity = min};
}

static void severity_under_the_minimum_is_skipped(void **state) {
    (void)state;
    const char *below[] = {"info", "low", "medium"};
    for (int i = 0; i < 3; i++) {
        tc_gate_facts_t f = gate(below[i], "high");
        assert_int_equal(tc_gate(&f), TC_GATE_SEVERITY);
    }
    tc_gate_facts_t f = gate("high", "critical");
    assert_int_equal(tc_gate(&f), TC_GATE_SEVERITY);
}

static void severity_at_or_above_the_minimum_passes(void **state) {
    (void)state;
    tc_gate_facts_t f = gate("high", "high");
    assert_int_equal(tc_gate(&f), TC_GATE_PASS);
    f = gate("critical", "high");
    assert_int_equal(tc_gate(&f), TC_GATE_PASS);
    f = gate("info", "info");
    assert_int_equal(tc_gate(&f), TC_GATE_PASS);
    f = gate("low", NULL); /* no minimum: no gate */
    assert_int_equal(tc_gate(&f), TC_GATE_PASS);
}

static void incident_without_a_severity_passes_the_gate(void **state) {
    (void)state;
    tc_gate_facts_t f = gate(NULL, "critical");
    assert_int_equal(tc_gate(&f), TC_GATE_PASS);
    f = gate("catastrophic", "critical"); /* not a word of the portal's list: unknown */
    assert_int_equal(tc_gate(&f), TC_GATE_PASS);
}

static void incident_with_a_ticket_is_never_gated(void **state) {
    (void)state;
    tc_gate_facts_t f = gate("info", "critical");
    f.new_ticket = 0; /* a re-fire or a resolve of a ticketed incident */
    f.rule_create = 0;
    assert_int_equal(tc_gate(&f), TC_GATE_PASS);
}

static void rule_create_false_is_skipped_before_severity(void **state) {
    (void)state;
    tc_gate_facts_t f = gate("critical", "info");
    f.rule_create = 0;
    assert_int_equal(tc_gate(&f), TC_GATE_RULE);
}

static void severity_ranks_in_the_portals_order(void **state) {
    (void)state;
    assert_int_equal(tc_severity_rank("info"), 0);
    assert_int_equal(tc_severity_rank("low"), 1);
    assert_int_equal(tc_severity_rank("medium"), 2);
    assert_int_equal(tc_severity_rank("high"), 3);
    assert_int_equal(tc_severity_rank("critical"), 4);
    assert_int_equal(tc_severity_rank("High"), -1);
    assert_int_equal(tc_severity_rank(NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_ticket_open_event_creates_one),
        cmocka_unit_test(no_ticket_unmapped_org_is_dead_lettered),
        cmocka_unit_test(no_ticket_resolved_event_calls_nothing),
        cmocka_unit_test(a_claim_without_a_record_searches_before_creating),
        cmocka_unit_test(open_ticket_refired_incident_adds_a_comment),
        cmocka_unit_test(open_ticket_replayed_comment_is_looked_for_first),
        cmocka_unit_test(resolved_ticket_reopens_inside_the_window),
        cmocka_unit_test(resolved_ticket_after_the_window_gets_a_new_ticket),
        cmocka_unit_test(open_ticket_resolved_event_with_auto_resolve_checks_the_ticket),
        cmocka_unit_test(open_ticket_resolved_event_without_auto_resolve_calls_nothing),
        cmocka_unit_test(resolved_ticket_resolved_again_calls_nothing),
        cmocka_unit_test(severity_under_the_minimum_is_skipped),
        cmocka_unit_test(severity_at_or_above_the_minimum_passes),
        cmocka_unit_test(incident_without_a_severity_passes_the_gate),
        cmocka_unit_test(incident_with_a_ticket_is_never_gated),
        cmocka_unit_test(rule_create_false_is_skipped_before_severity),
        cmocka_unit_test(severity_ranks_in_the_portals_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
