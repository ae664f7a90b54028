"""
ticketing.py — shared pieces of the incident → ticket tests: the stack setup (a synced Syncro
tenant with ticketing configured and orgs mapped), the MTP simulator run, the expected outcome
computed from what the MTP simulator says it sent, and the comparison with the tickets the
Syncro simulator holds.
"""
import hashlib
import hmac
import json
import os
import re
import subprocess
import time

from harness import BIN, SANITIZER_MARKS, http, wait_until

TENANT = "acme"
SUB = "acme"
TOKEN = "tok-acme-tickets"
INCIDENT_RE = re.compile(r"Incident (\S+) from the multi-tenant portal\.")

# min_severity "info": these tests ticket every incident (the gate has its own test,
# test_ticketing_hold.py); a new tenant's default is "high".
DEFAULT_CONFIG = {
    "enabled": True, "auto_resolve": True, "resolve_status": "Resolved", "reopen_window_days": 7,
    "min_severity": "info",
    "rules": {"*": {"create": True, "problem_type": None, "priority": "2 Normal", "status": "New",
                    "due_in_days": 2, "assignee_user_id": None}},
}


def setup(stack, orgs=50, customers=60, unmapped=(), config=None, tc_env=None,
          ticket_statuses=None, permissions=None):
    """Sync a tenant, make its webhook secret, configure ticketing, map org-0001..org-<orgs>
    (except `unmapped`) to customers, start the ticket-creator. ticket_statuses: the Syncro
    account's, set before the sync (the rules are checked against the synced ones). permissions:
    the token's Syncro permissions (default: all).
    @returns the webhook secret."""
    stack.add_account(SUB, customers, 5, TOKEN, permissions=permissions)
    if ticket_statuses is not None:
        stack.sim_admin("PUT", "/_sim/accounts/%s" % SUB, {"ticket_statuses": ticket_statuses})
    stack.add_tenant(TENANT)
    st, js, _ = stack.connect(TENANT, SUB, TOKEN)
    assert st in (200, 201, 202), (st, js)
    stack.wait_synced(TENANT, js["job_id"])
    wait_until(lambda: len(stack.inventory(TENANT, "customers")) == customers, 60, "customers synced")
    custs = sorted(c["id"] for c in stack.inventory(TENANT, "customers"))

    st, js, _ = stack.api("POST", "/v1/tenants/%s/webhooks/mtp/secret" % TENANT, {})
    assert st == 201, (st, js)
    secret = js["secret"]
    st, js, _ = stack.api("PUT", "/v1/tenants/%s/ticketing" % TENANT, config or DEFAULT_CONFIG)
    assert st == 200, (st, js)
    for i in range(1, orgs + 1):
        org = "org-%04d" % i
        if org in unmapped:
            continue
        cid = custs[i - 1].split(":", 1)[1]
        st, js, _ = stack.api("PUT", "/v1/tenants/%s/ticketing/orgs/%s" % (TENANT, org),
                              {"customer_id": int(cid)})
        assert st == 200, (org, st, js)
    stack.start_ticket_creator(**(tc_env or {}))
    return secret


def mtp_args(stack, secret, count, rate, seed, orgs=50, log=None, prefix="inc", concurrency=16,
             titles="ascii"):
    log = log or os.path.join(stack.dir, "mtp-%d.jsonl" % seed)
    return [BIN["mtp-sim"], "--url", stack.gateway.url("/v1/webhooks/mtp/" + TENANT),
            "--secret", secret, "--count", str(count), "--rate", str(rate), "--orgs", str(orgs),
            "--mix", "new=70,refire=20,resolve=10", "--seed", str(seed), "--log", log,
            "--id-prefix", prefix, "--concurrency", str(concurrency), "--titles", titles], log


def run_mtp(stack, secret, count, rate, seed, **kw):
    args, log = mtp_args(stack, secret, count, rate, seed, **kw)
    out = subprocess.run(args, capture_output=True, text=True, timeout=900, env=stack.base_env())
    for mark in SANITIZER_MARKS:
        assert mark not in out.stderr, out.stderr
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1]), read_log(log)


def read_log(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


SUBJECT_MAX = 250  # bytes of a Syncro ticket subject


def cut_utf8(text, max_bytes):
    """The longest prefix of text that is at most max_bytes bytes of UTF-8 (whole characters)."""
    b = text.encode("utf-8")[:max_bytes]
    while True:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            b = b[:-1]


def ticket_subject(title, subject, org_id):
    """The subject the ticket-creator gives a ticket: "title - subject", cut to SUBJECT_MAX."""
    return cut_utf8(title if subject == org_id else "%s - %s" % (title, subject), SUBJECT_MAX)


def expected(events, auto_resolve=True):
    """Per incident id: tickets, comments and the status changes after creation that the
    ticket-creator must produce (auto-resolve on unless said, nobody touches the tickets, every
    re-fire inside the reopen window), and the ticket's subject when the log says the title. Only
    events the gateway accepted count. Without auto-resolve a resolve changes nothing."""
    per = {}
    for e in sorted((e for e in events if e.get("http_status") == 202), key=lambda e: e["seq"]):
        st = per.setdefault(e["incident_id"], {"state": "none", "tickets": 0, "comments": 0,
                                               "changes": []})
        if e["status"] == "open":
            if st["state"] == "none":
                st["tickets"] += 1
                st["state"] = "open"
                if "title" in e:
                    st["subject"] = ticket_subject(e["title"], e["subject"], e["org_id"])
            elif st["state"] == "open":
                st["comments"] += 1
            else:
                st["changes"].append("New")
                st["comments"] += 1
                st["state"] = "open"
        elif st["state"] == "open" and auto_resolve:
            st["changes"].append("Resolved")
            st["state"] = "resolved"
    return {k: v for k, v in per.items() if v["tickets"]}


def sim_tickets(stack):
    return stack.sim_admin("GET", "/_sim/accounts/%s/tickets" % SUB)["tickets"]


def actual(tickets):
    """Per incident id: the list of its tickets as (comments after the first, status changes)."""
    per = {}
    for t in tickets:
        comments = sorted(t.get("comments") or [], key=lambda c: c["id"])
        m = INCIDENT_RE.search(comments[0]["body"]) if comments else None
        key = m.group(1) if m else "?ticket-%s" % t["id"]
        hist = [h["status"] for h in t.get("status_history") or [] if h.get("by") != "create"]
        if hist and hist[0] == "New" and len(t.get("status_history")) and \
                t["status_history"][0].get("by") in (None, "api") and \
                t["status_history"][0].get("at_us") == t.get("received_at_us"):
            hist = hist[1:]
        per.setdefault(key, []).append({"id": t["id"], "comments": len(comments) - 1,
                                        "changes": hist, "status": t["status"],
                                        "subject": t.get("subject")})
    return per


def compare(exp, act):
    """@returns a list of human-readable differences (empty = exact)."""
    diffs = []
    for inc, e in sorted(exp.items()):
        got = act.get(inc)
        if not got:
            diffs.append("%s: no ticket (lost)" % inc)
            continue
        if len(got) != 1:
            diffs.append("%s: %d tickets (duplicates: %s)" % (inc, len(got), [g["id"] for g in got]))
            continue
        g = got[0]
        if g["comments"] != e["comments"]:
            diffs.append("%s: %d comments, expected %d" % (inc, g["comments"], e["comments"]))
        if g["changes"] != e["changes"]:
            diffs.append("%s: status changes %s, expected %s" % (inc, g["changes"], e["changes"]))
        if "subject" in e and g["subject"] != e["subject"]:
            diffs.append("%s: subject %r, expected %r" % (inc, g["subject"], e["subject"]))
    for inc in sorted(set(act) - set(exp)):
        diffs.append("%s: unexpected ticket(s) %s" % (inc, [g["id"] for g in act[inc]]))
    return diffs


def trace_diffs(stack, events, tickets, workers=4):
    """Compare each incident's trace (GET /v1/tenants/{t}/incidents/{incident id}) with what the
    Syncro simulator holds and what the MTP simulator sent: the trace's ticket is the simulator's
    ticket, there is one `ticket_created` per ticket (the same id), one `commented` per comment
    after the first, one `reopened` / `resolved` per status change, and one `received` and one
    `normalized` per accepted event. @returns a list of differences (empty = all match)."""
    from concurrent.futures import ThreadPoolExecutor
    sent = {}
    for e in events:
        if e.get("http_status") == 202:
            sent[e["incident_id"]] = sent.get(e["incident_id"], 0) + 1
    act = actual(tickets)

    def one(inc):
        diffs = []
        st, js, _ = stack.api("GET", "/v1/tenants/%s/incidents/%s" % (TENANT, inc))
        if st != 200:
            return ["%s: trace answers %s %r" % (inc, st, js)]
        if len(js["incidents"]) != 1:
            return ["%s: %d fingerprints" % (inc, len(js["incidents"]))]
        tr = js["incidents"][0]
        steps = [x["step"] for x in tr["entries"]]
        for step in ("received", "normalized"):
            if steps.count(step) != sent[inc]:
                diffs.append("%s: %d %s entries, %d events sent" % (inc, steps.count(step), step,
                                                                    sent[inc]))
        got = act.get(inc, [])
        created = [x for x in tr["entries"] if x["step"] == "ticket_created"]
        if len(got) != len(created):
            diffs.append("%s: %d ticket_created entries, the simulator holds %d tickets" % (
                inc, len(created), len(got)))
        if got:
            g = got[0]
            if (tr["ticket"] or {}).get("ticket_id") != g["id"]:
                diffs.append("%s: trace ticket %s, simulator ticket %s" % (
                    inc, (tr["ticket"] or {}).get("ticket_id"), g["id"]))
            if [x.get("ticket_id") for x in created] != [g["id"]]:
                diffs.append("%s: ticket_created %s, simulator ticket %s" % (
                    inc, [x.get("ticket_id") for x in created], g["id"]))
            if steps.count("commented") != g["comments"]:
                diffs.append("%s: %d commented entries, %d comments in the simulator" % (
                    inc, steps.count("commented"), g["comments"]))
            changes = [("New" if x["step"] == "reopened" else "Resolved")
                       for x in tr["entries"] if x["step"] in ("reopened", "resolved")]
            if changes != g["changes"]:
                diffs.append("%s: traced status changes %s, simulator %s" % (inc, changes,
                                                                              g["changes"]))
        if tr["incident_id"] != inc:
            diffs.append("%s: trace names incident %s" % (inc, tr["incident_id"]))
        return diffs
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [d for ds in pool.map(one, sorted(sent)) for d in ds]


def losses(exp, act):
    """(extra tickets, lost resolves, extra comments) of act against exp."""
    dup = sum(len(v) - 1 for v in act.values() if len(v) > 1)
    lost = extra = 0
    for inc, e in exp.items():
        got = act.get(inc) or []
        want = e["changes"].count("Resolved")
        have = sum(g["changes"].count("Resolved") for g in got)
        lost += max(0, want - have)
        extra += max(0, sum(g["comments"] for g in got) - e["comments"])
    return dup, lost, extra


def wait_exact(stack, exp, timeout):
    """Wait until the Syncro simulator's tickets match exp exactly; fail with the differences."""
    last = [None]

    def exact():
        last[0] = compare(exp, actual(sim_tickets(stack)))
        return not last[0]
    try:
        wait_until(exact, timeout, "tickets match the incidents", interval=1.0)
    except AssertionError:
        raise AssertionError("%d differences, first 20: %s" % (len(last[0]), last[0][:20]))


def wait_drained(stack, timeout=120):
    """Wait until the ticket-creator committed every incidents offset (nothing left to do)."""
    def drained():
        end = sum(stack.topic_end_offsets("incidents").values())
        done = stack.group_committed("mspsync-ticket-creator", "incidents")
        return end > 0 and done is not None and done >= end
    wait_until(drained, timeout, "ticket-creator drained incidents", interval=1.0)


def sign(secret, ts, body):
    return "v1=" + hmac.new(secret.encode(), ("%s." % ts).encode() + body, hashlib.sha256).hexdigest()


def unmapped_incident(**over):
    """An incident of org-0003, the org that setup(unmapped=("org-0003",)) leaves unmapped: the
    dead-letter, replay, trace and CLI tests post it (over: fields to change)."""
    inc = {"id": "inc-unmapped-1", "org_id": "org-0003", "org_name": "Umbrella Corp",
           "alert_type": "device_offline", "severity": "high", "status": "open",
           "subject": "WS-07", "title": "Device offline", "description": "no heartbeat",
           "occurred_at": "2026-11-23T10:00:00.000Z", "link": "https://mtp.example/i/1"}
    inc.update(over)
    return inc


def post_incident(stack, secret, incident, ts=None):
    body = json.dumps(incident).encode()
    ts = ts if ts is not None else int(time.time())
    hdrs = {"X-MSPSync-Timestamp": str(ts), "X-MSPSync-Signature": sign(secret, ts, body),
            "Content-Type": "application/json"}
    return http("POST", stack.gateway.url("/v1/webhooks/mtp/" + TENANT), body, hdrs)


def mtp_events(tc, mtp, log, count=1000):
    """The events of an MTP simulator run started with subprocess.Popen (mtp_args), once it
    ended cleanly with all `count` accepted (asserted on the TestCase tc)."""
    out, err = mtp.communicate(timeout=600)
    for mark in SANITIZER_MARKS:
        tc.assertNotIn(mark, err)
    tc.assertEqual(mtp.returncode, 0, (out, err[-2000:]))
    events = read_log(log)
    tc.assertEqual(sum(1 for e in events if e["http_status"] == 202), count)
    return events


def assert_exact_after_loss(tc, stack, events):
    """After a Redis loss in the middle of events (re-fires and resolves of open tickets among
    them): Syncro holds exactly the expected tickets, comments and status changes, the
    ticket-creator drained and rescanned Syncro, nothing went to the dead letters. Prints the
    duplicates, lost resolves and extra comments (the figures the old code failed with)."""
    exp = expected(events)
    kinds = [e["kind"] for e in events]
    tc.assertGreater(kinds.count("refire"), 150)
    tc.assertGreater(kinds.count("resolve"), 60)
    try:
        wait_exact(stack, exp, timeout=180)
    finally:
        print("duplicate_tickets=%d lost_resolves=%d extra_comments=%d"
              % losses(exp, actual(sim_tickets(stack))))
    wait_drained(stack, timeout=180)
    tc.assertEqual(compare(exp, actual(sim_tickets(stack))), [])
    tc.assertEqual(stack.kcat("dlq"), [])
    text = stack.ticket_creator.logtext()
    tc.assertIn("ticket.rescanned", text)
    print("rescans=%d" % text.count("ticket.rescanned"))
