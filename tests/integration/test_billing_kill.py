#!/usr/bin/env python3
"""The billing worker is SIGKILLed 10 times while a push writes 150 lines: every line ends with
its mark, and the simulator's change log holds exactly one change per line (none repeated, none
missed)."""
import collections

import billing as B
import harness
from harness import StackTest, wait_until

ORGS = 50
KILLS = 10


class BillingKillTest(StackTest):

    def test_sigkill_during_pushes_writes_every_line_exactly_once(self):
        s = B.make_stack(self)
        env = {"MSPSYNC_GROUP_INSTANCE_ID": "billing-0"}
        secret, clock, by_org, custs = B.setup(
            s, B.local(2026, 11, 20, 12), orgs=ORGS, billing_env=env,
            sim_config={"rate_limit": 0, "latency_ms": 20})
        sent = [B.report("org-%04d" % o, p, 1 + (7 * o + 3 * i) % 97, B.local(2026, 11, 5))
                for o in range(1, ORGS + 1) for i, p in enumerate(B.PRODUCTS)]
        B.send(s, secret, sent)
        B.wait_applied(s, len(sent))
        st, js, _ = s.api("POST", "/v1/tenants/%s/billing/push" % B.TENANT)
        self.assertEqual(st, 202, js)
        pid = js["push_id"]
        for k in range(KILLS):
            seen = len(B.changes(s))
            # mid-push: some lines more were written since the last restart
            wait_until(lambda: len(B.changes(s)) >= min(seen + 5, 3 * ORGS - (KILLS - k)), 60,
                       "progress before kill %d" % (k + 1), interval=0.05)
            s.billing.kill9()
            s.restart(s.billing)
        lp = wait_until(lambda: (lambda l: l if l.get("push_id") == pid else None)(
            B.status(s)["last_push"]), 120, "the push finished")
        self.assertEqual((lp["state"], lp["failed"]), ("done", 0), lp)
        ch = B.changes(s)
        per_line = collections.Counter((c["schedule_id"], c["line_id"]) for c in ch)
        self.assertEqual(len(per_line), 3 * ORGS)
        self.assertEqual([k for k, v in per_line.items() if v != 1], [])
        marks = B.expected_marks(sent, "2026-11")
        lines = B.sim_lines(s)
        for (org, p), m in marks.items():
            self.assertEqual(B.qty(lines[(by_org[org], B.PRODUCTS[p])]), m)
        # every written line has its history entry, also those written just before a kill
        st = B.status(s)
        states = collections.Counter(l["state"] for c in st["customers"] for l in c["lines"])
        self.assertEqual(states, {"written": 3 * ORGS})
        self.assertEqual(lp["written"], 3 * ORGS)
        for (org, p), m in marks.items():
            line = lines[(by_org[org], B.PRODUCTS[p])]
            st_, h, _ = s.api("GET", "/v1/tenants/%s/billing/history?schedule_id=%d&line_id=%d"
                              % (B.TENANT, line["schedule_id"], line["id"]))
            self.assertEqual([(c["from"], c["to"]) for c in h["changes"]], [("0.0", m)], (org, p))
        self.assertEqual(s.billing.restarts, KILLS)
        self.assertEqual(s.kcat("dlq"), [])
        self.assertEqual(s.stop_all(), [])


if __name__ == "__main__":
    harness.main()
