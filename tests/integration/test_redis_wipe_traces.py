#!/usr/bin/env python3
"""
Traces, asset histories and billing's history of writes survive a loss of Redis (issue 14).

One stack: incidents become tickets (created, re-fired into a comment, resolved), usage reports
are pushed into recurring-invoice lines, dates are edited in the app (the normalizer's
`date_changed`, the write-back's outcome in the asset's history). Everything the API shows is
recorded; Redis is wiped (FLUSHALL); right after the wipe new steps happen (a re-fire reopens the
resolved ticket, one more date edit). With no operator action every trace, every asset history
and every line's history answers what it answered before, with the new steps appended after it
and nothing twice: the services journaled every entry to the `traces` topic, and one gateway
rebuilt the lists from it, merged with what was written since the wipe. While the rebuild is
pending the reads answer 503 with Retry-After, never a short history. The ticketing counters
equal what the traces count, before and after (recounted from the journal); billing's counters
are what they were (recounted by the replay of usage.events at the next push).

The old code lost them all (kind `cache`): the histories started again empty, the counters at 0.
"""
import billing as B
import cwrmm
import ticketing as T
from harness import StackTest, main, wait_until


# The ticketing counter each trace step counts (the ticket-creator's): the model of the stats.
STEP_COUNTERS = {"ticket_created": ["tickets_created"], "commented": ["comments_added"],
                 "resolved": ["tickets_resolved"], "reopened": ["tickets_reopened"],
                 "resolve_skipped_touched": ["resolve_skipped_touched"],
                 "resolve_skipped_disabled": ["resolve_skipped_disabled"],
                 "skipped_severity": ["skipped_severity", "skipped"],
                 "skipped_rule": ["skipped_rule", "skipped"],
                 "skipped_disabled": ["skipped_disabled", "skipped"], "held": ["held_total"],
                 "released": ["released"], "dead_lettered": ["dead_lettered"]}


def counted(traces):
    """The ticketing counters the steps of these traces make."""
    out = {}
    for entries in traces.values():
        for e in (e for fp in entries for e in fp):
            for c in STEP_COUNTERS.get(e["step"], []):
                out[c] = out.get(c, 0) + 1
    return out


def inc(iid, status, minute, org="org-0001", subject="WS-01"):
    return {"id": iid, "org_id": org, "org_name": "Org", "alert_type": "device_offline",
            "severity": "high", "status": status, "subject": subject,
            "title": "%s offline" % subject, "occurred_at": "2026-11-30T10:%02d:00.000Z" % minute}


class RedisWipeTracesTest(StackTest):

    def get(self, path, ok=(200,)):
        """GET path until it answers one of ok (503 + Retry-After while restoring or
        rebuilding); @returns the body."""
        seen = {}

        def once():
            st, js, hdrs = self.s.api("GET", path)
            seen["last"] = (st, js)
            if st == 503:
                self.assertTrue(hdrs.get("Retry-After"), (path, js))
                self.rebuilding_503 += "rebuilt" in str(js)
            return js if st in ok else None
        try:
            return wait_until(once, 90, "GET %s" % path, interval=0.2)
        except AssertionError:
            raise AssertionError("GET %s: %s" % (path, seen.get("last")))

    def snapshot(self, incs, assets, lines):
        t = "/v1/tenants/%s" % T.TENANT
        stats = self.get("%s/ticketing" % t)["status"]
        return {
            "ticketing_stats": {k: int(v) for k, v in stats.items() if k in {
                c for cs in STEP_COUNTERS.values() for c in cs}},
            "last_ticket_at": stats.get("last_ticket_at"),
            "billing_stats": B.status(self.s)["stats"],
            "incidents": {i: [x["entries"] for x in self.get("%s/incidents/%s" % (t, i))
                              ["incidents"]] for i in incs},
            "assets": {a: self.get("%s/assets/%s/history?limit=200" % (t, a))["entries"]
                       for a in assets},
            "lines": {l: self.get("%s/billing/history?schedule_id=%s&line_id=%s" % ((t,) + l))
                      ["changes"] for l in lines},
        }

    def test_traces_histories_and_billing_history_rebuilt_after_flushall(self):
        self.rebuilding_503 = 0
        s = self.s = B.make_stack(self)
        secret, clock, by_org, custs = B.setup(s, B.local(2026, 11, 30, 17), customers=6, orgs=3,
                                               sim_config={"rate_limit": 0})
        st, js, _ = s.api("PUT", "/v1/tenants/%s/ticketing" % T.TENANT, T.DEFAULT_CONFIG)
        self.assertEqual(st, 200, js)
        s.start_ticket_creator()
        cwrmm.start_write_back(s)

        # Incidents: created, re-fired (a comment), resolved; a second one stays open.
        for i in (inc("inc-a", "open", 1), inc("inc-a", "open", 2), inc("inc-b", "open", 1,
                                                                          "org-0002", "WS-02"),
                  inc("inc-a", "resolved", 3)):
            self.assertEqual(T.post_incident(s, secret, i)[0], 202)
            T.wait_drained(s)

        # Billing: two pushes, so a line has two changes.
        B.send(s, secret, [B.report("org-%04d" % o, p, 10 * o, B.local(2026, 11, 2))
                           for o in (1, 2) for p in B.PRODUCTS])
        B.wait_applied(s, 2 * len(B.PRODUCTS))
        self.assertEqual(B.push(s)["state"], "done")
        B.send(s, secret, [B.report("org-0001", p, 99, B.local(2026, 11, 3)) for p in B.PRODUCTS])
        B.wait_applied(s, 3 * len(B.PRODUCTS))
        self.assertEqual(B.push(s)["state"], "done")
        lines = [(sc["id"], l["id"]) for sc in
                 s.sim_admin("GET", "/_sim/accounts/%s/schedules" % B.SUB)["schedules"]
                 for l in sc["lines"] if float(l.get("quantity") or 0) > 0]
        self.assertEqual(len(lines), 2 * len(B.PRODUCTS), lines)

        # Dates edited in the app: the normalizer's date_changed, the write-back's outcome.
        assets = sorted(a["id"] for a in s.inventory(T.TENANT, "assets"))[:2]
        for n, a in enumerate(assets):
            st, js, _ = s.api("PUT", "/v1/tenants/%s/assets/%s/dates" % (T.TENANT, a),
                              {"purchase_date": "2023-02-0%d" % (n + 1)})
            self.assertEqual(st, 202, js)
        t = "/v1/tenants/%s" % T.TENANT
        wait_until(lambda: all({"date_changed", "writeback"} <= {
            e["step"] for e in self.get("%s/assets/%s/history?limit=200" % (t, a))["entries"]}
            for a in assets) or None, 60, "the edits' history entries")
        T.wait_drained(s)

        before = self.snapshot(["inc-a", "inc-b"], assets, lines)
        steps = [e["step"] for e in before["incidents"]["inc-a"][0]]
        for want in ("ticket_created", "commented", "resolved"):
            self.assertIn(want, steps, before["incidents"]["inc-a"])
        # org-0001's lines were written twice, org-0002's once
        self.assertEqual(sorted(len(v) for v in before["lines"].values()),
                         [1] * len(B.PRODUCTS) + [2] * len(B.PRODUCTS), before["lines"])
        # The journal is asynchronous: what is in Redis reaches the topic within a moment.
        listed = sum(int(s.redis("LLEN", k)) for k in s.redis("KEYS", "mspsync:{acme}:trace:*")
                     + s.redis("KEYS", "mspsync:{acme}:billing:history:*")
                     if ":trace:incid:" not in k)
        wait_until(lambda: sum(1 for l in s.kcat("traces", fmt="%k\n") if ":incid:" not in l)
                   >= listed or None, 30, "every entry journaled")

        s.redis("FLUSHALL")
        # New steps while the state comes back: a re-fire reopens the resolved ticket, one more
        # date edit.
        wait_until(lambda: T.post_incident(s, secret, inc("inc-a", "open", 5))[0] == 202, 60,
                   "the re-fire accepted")
        wait_until(lambda: s.api("PUT", "/v1/tenants/%s/assets/%s/dates" % (T.TENANT, assets[0]),
                                 {"warranty_expires": "2029-01-01"})[0] == 202, 60,
                   "the edit accepted")
        wait_until(lambda: "traces rebuilt" in s.gateway.logtext() or None, 60,
                   "the traces rebuilt")
        wait_until(lambda: "reopened" in [e["step"] for e in self.get(
            "%s/incidents/inc-a" % t)["incidents"][0]["entries"]] or None, 60, "the reopen")
        wait_until(lambda: sum(e["step"] == "date_changed" for e in self.get(
            "%s/assets/%s/history?limit=200" % (t, assets[0]))["entries"]) >= 2 or None, 60,
            "the new edit in the history")
        T.wait_drained(s)
        # The next push replays usage.events (the marks, and the counters of the reports before
        # the loss); it writes nothing: no mark moved.
        self.assertEqual(B.push(s)["state"], "done")
        after = self.snapshot(["inc-a", "inc-b"], assets, lines)

        # Every trace: what it was, then the new steps; nothing twice.
        for i in ("inc-a", "inc-b"):
            b, a = before["incidents"][i][0], after["incidents"][i][0]
            self.assertEqual(a[:len(b)], b, (i, b, a))
            self.assertEqual(len({(e.get("event_id"), e["step"], e.get("error")) for e in a}),
                             len(a), a)
        new = [e["step"] for e in after["incidents"]["inc-a"][0][len(
            before["incidents"]["inc-a"][0]):]]
        self.assertIn("reopened", new, new)
        self.assertEqual(after["incidents"]["inc-b"], before["incidents"]["inc-b"])
        for a in assets:
            b, x = before["assets"][a], after["assets"][a]
            self.assertEqual(x[:len(b)], b, (a, b, x))
            self.assertEqual(len({str(sorted(e.items())) for e in x}), len(x), x)
        self.assertGreater(len(after["assets"][assets[0]]), len(before["assets"][assets[0]]))
        self.assertEqual(after["assets"][assets[1]], before["assets"][assets[1]])
        self.assertEqual(after["lines"], before["lines"])

        # The counters: recounted from the journal for what happened before the loss, live
        # since — what the traces say, before and after.
        self.assertEqual(before["ticketing_stats"], counted(before["incidents"]), before)
        self.assertEqual(after["ticketing_stats"], counted(after["incidents"]), after)
        self.assertEqual(after["last_ticket_at"], before["last_ticket_at"])
        self.assertEqual(after["billing_stats"], before["billing_stats"])
        self.assertEqual(before["billing_stats"]["reports_applied"], 3 * len(B.PRODUCTS))
        print("503 while rebuilding: %d" % self.rebuilding_503)
        self.assertEqual(s.kcat("dlq"), [])


if __name__ == "__main__":
    main()
