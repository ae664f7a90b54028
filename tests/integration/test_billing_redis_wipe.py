#!/usr/bin/env python3
"""Billing marks come back after Redis is lost, without an operator.

Usage reports are applied and pushed; Redis is wiped (FLUSHALL); reports keep coming, some lower
than the month's marks so far. The next push writes the high-water marks of every report of the
month — before and after the wipe — because a billing replica replayed usage.events into the
marks for the new epoch before the push ran; lines whose mark did not move are not written again.
The replay leaves the counters alone: they count the reports that came after the wipe.
"""
import random

import billing as B
import harness
from harness import StackTest, wait_until


class BillingRedisWipeTest(StackTest):

    def test_marks_replayed_after_flushall(self):
        s = B.make_stack(self)
        secret, clock, by_org, custs = B.setup(s, B.local(2026, 11, 30, 17), customers=10,
                                               orgs=6, sim_config={"rate_limit": 0})
        rnd = random.Random(14)
        first = [B.report("org-%04d" % o, p, rnd.randint(100, 400), B.local(2026, 11, day))
                 for o in range(1, 7) for p in B.PRODUCTS for day in range(1, 6)]
        B.send(s, secret, first)
        B.wait_applied(s, len(first))
        self.assertEqual(B.push(s)["state"], "done")
        marks = B.expected_marks(first, "2026-11")
        written_before = len(B.changes(s))

        s.redis("FLUSHALL")
        wait_until(lambda: s.api("GET", "/v1/tenants/%s/billing/status" % B.TENANT)[0] == 200,
                   90, "billing configuration restored")
        # After the wipe: lower counts everywhere, and one higher count.
        later = [B.report("org-%04d" % o, p, 50, B.local(2026, 11, 20))
                 for o in range(1, 7) for p in B.PRODUCTS]
        later.append(B.report("org-0001", "SKU-MAIL", 999, B.local(2026, 11, 21)))
        B.send(s, secret, later)
        B.wait_applied(s, len(later))   # the replay does not count again
        lp = B.push(s)
        self.assertEqual(lp["state"], "done", lp)
        want = B.expected_marks(first + later, "2026-11")
        self.assertEqual(want[("org-0001", "SKU-MAIL")], 999)
        lines = B.sim_lines(s)
        for (org, p), m in want.items():
            self.assertEqual(B.qty(lines[(by_org[org], B.PRODUCTS[p])]), m, (org, p))
        # Only the one mark that rose was written again.
        self.assertEqual(len(B.changes(s)), written_before + 1)
        self.assertEqual(lp["written"], 1, lp)
        self.assertIn("billing marks rebuilt", s.billing.logtext())
        self.assertEqual(s.kcat("dlq"), [])


if __name__ == "__main__":
    harness.main()
