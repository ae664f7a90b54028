#!/usr/bin/env python3
"""The month rolls over (injected billing clock): the new period's mark starts from its first
report, a late report inside the grace window still counts for the closed period, one past it is
kept and shown but not applied, and the closed period's last pushed quantity stays in history."""
import time

import billing as B
import harness
from harness import StackTest, wait_until

ORGS = 4


class BillingRolloverTest(StackTest):

    def test_new_period_starts_from_its_first_report(self):
        s = B.make_stack(self)
        secret, clock, by_org, custs = B.setup(s, B.local(2026, 11, 20, 9), orgs=ORGS,
                                               sim_config={"rate_limit": 0},
                                               billing_env={"MSPSYNC_BILLING_SCHEDULE_CHECK_MS": "100"})
        nov = [B.report("org-%04d" % o, p, 100 * o + d, B.local(2026, 11, d))
               for o in range(1, ORGS + 1) for p in B.PRODUCTS for d in (1, 10, 20)]
        B.send(s, secret, nov)
        B.wait_applied(s, len(nov))
        self.assertEqual(B.push(s)["state"], "done")
        nov_marks = B.expected_marks(nov, "2026-11")
        lines = B.sim_lines(s)
        for (org, p), m in nov_marks.items():
            self.assertEqual(B.qty(lines[(by_org[org], B.PRODUCTS[p])]), m)

        # December, 2nd, 9:00: the first December reports are lower than November's marks; a
        # November report arrives late but inside the 3 grace days
        clock.set(B.local(2026, 12, 2, 9))
        dec = [B.report("org-%04d" % o, p, o, B.local(2026, 12, 1, 8)) for o in range(1, ORGS + 1)
               for p in B.PRODUCTS]
        in_grace = B.report("org-0001", "SKU-MAIL", 5000, B.local(2026, 11, 28))
        B.send(s, secret, dec + [in_grace])
        B.wait_applied(s, len(nov) + len(dec) + 1)
        st = B.status(s)
        self.assertEqual(st["period"], "2026-12")
        lp = B.push(s)
        self.assertEqual(lp["period"], "2026-12")
        dec_marks = B.expected_marks(dec, "2026-12")
        lines = B.sim_lines(s)
        for (org, p), m in dec_marks.items():
            self.assertEqual(B.qty(lines[(by_org[org], B.PRODUCTS[p])]), m, (org, p))
        nov_marks = B.expected_marks(nov + [in_grace], "2026-11")
        self.assertEqual(self.mark(s, "2026-11", "org-0001", "SKU-MAIL"), 5000)

        # past the grace window: kept and shown, not applied
        clock.set(B.local(2026, 12, 10, 9))
        late = B.report("org-0002", "SKU-BACKUP", 9999, B.local(2026, 11, 29))
        B.send(s, secret, [late])
        B.wait_applied(s, len(nov) + len(dec) + 2)
        st = B.status(s)
        self.assertEqual([(r["org_id"], r["count"], r["period"]) for r in st["late_reports"]],
                         [("org-0002", 9999, "2026-11")])
        self.assertEqual(st["stats"]["late_reports"], 1)
        for (org, p), m in nov_marks.items():
            self.assertEqual(self.mark(s, "2026-11", org, p), m, (org, p))
        before = len(B.changes(s))
        self.assertEqual(B.push(s)["written"], 0)
        self.assertEqual(len(B.changes(s)), before)

        # the line's history keeps November's last quantity under the December one
        line = B.sim_lines(s)[(by_org["org-0003"], B.PRODUCTS["SKU-ARCHIVE"])]
        st_, h, _ = s.api("GET", "/v1/tenants/%s/billing/history?schedule_id=%d&line_id=%d"
                          % (B.TENANT, line["schedule_id"], line["id"]))
        self.assertEqual(st_, 200, h)
        self.assertEqual([(c["period"], c["to"]) for c in h["changes"]],
                         [("2026-12", 3), ("2026-11", nov_marks[("org-0003", "SKU-ARCHIVE")])])

        # the daily push: not before the tenant's local push time (12:00 New York), then once
        clock.set(B.local(2026, 12, 11, 11, 59))
        time.sleep(1)  # an absence: ten schedule checks (every 100 ms) must request nothing
        self.assertNotIn("2026-12-11", s.billing.logtext())
        clock.set(B.local(2026, 12, 11, 12, 1))
        lp = wait_until(lambda: (lambda l: l if l.get("reason") == "schedule" else None)(
            B.status(s)["last_push"]), 30, "the scheduled push")
        self.assertEqual(lp["state"], "done", lp)
        time.sleep(1)  # an absence: the next ten checks must not request the day again
        self.assertEqual(s.billing.logtext().count("daily push"), 1)
        self.assertEqual(s.billing.logtext().count("for 2026-12-11"), 1)
        self.assertEqual(s.stop_all(), [])

    @staticmethod
    def mark(s, period, org, product):
        import json
        v = s.redis("HGET", "mspsync:{%s}:billing:marks:%s" % (B.TENANT, period),
                    json.dumps([org, product], separators=(",", ":")))
        return int(v)


if __name__ == "__main__":
    harness.main()
