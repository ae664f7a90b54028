#!/usr/bin/env python3
"""Billing marks come back after Redis is lost, without an operator.

Usage reports are applied and pushed; Redis is wiped (FLUSHALL); reports keep coming, some lower
than the month's marks so far. The next push writes the high-water marks of every report of the
month — before and after the wipe — because a billing replica replayed usage.events into the
marks for the new epoch before the push ran; lines whose mark did not move are not written again.
The replay also recounts the counters of the reports received before the loss (those since are
counted live), in the one MULTI that marks the epoch done.

The replay reads all of usage.events; with a large backlog that takes seconds, during which the
billing service's /healthz (and its timers) keep answering: the replay runs off its event loop.
A billing service SIGKILLed inside the replay leaves nothing half done: the next one replays again
(the lease of the killed one runs out), and the counters count every report once.
"""
import json
import random
import subprocess
import threading

import billing as B
import harness
from harness import StackTest, healthz_while, wait_until

BACKLOG = 40000  # usage reports in usage.events: a replay of a few seconds


class BillingRedisWipeTest(StackTest):

    def applied(self, seed, days):
        """A billing stack (six orgs mapped) with November reports of `days` days applied.
        @returns (stack, secret, customer ids by org, the reports)."""
        s = B.make_stack(self)
        secret, clock, by_org, custs = B.setup(s, B.local(2026, 11, 30, 17), customers=10,
                                               orgs=6, sim_config={"rate_limit": 0})
        rnd = random.Random(seed)
        first = [B.report("org-%04d" % o, p, rnd.randint(100, 400), B.local(2026, 11, day))
                 for o in range(1, 7) for p in B.PRODUCTS for day in range(1, days + 1)]
        B.send(s, secret, first)
        B.wait_applied(s, len(first))
        return s, secret, by_org, first

    def test_marks_replayed_after_flushall(self):
        s, secret, by_org, first = self.applied(14, 5)
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

    def backlog(self, s, first):
        """BACKLOG more reports in usage.events, as the gateway wrote them, again with lower
        counts (the marks stay those of `first`), applied."""
        key, value = s.kcat("usage.events")[0].split("\t", 1)
        report = json.loads(value)
        self.assertEqual(report["kind"], "usage", report)
        lines = []
        for i in range(BACKLOG):
            report.update(count=i % 50, report_id="backlog-%d" % i)
            lines.append("%s\t%s\n" % (key, json.dumps(report)))
        subprocess.run(["kcat", "-P", "-K", "\t", "-b", s.brokers, "-t", s.topic("usage.events")],
                       input="".join(lines), text=True, check=True, timeout=120)
        B.wait_applied(s, len(first) + BACKLOG, timeout=240)

    def wiped(self, s):
        s.redis("FLUSHALL")
        wait_until(lambda: s.api("GET", "/v1/tenants/%s/billing/status" % B.TENANT)[0] == 200,
                   90, "billing configuration restored")

    def assert_marks(self, s, by_org, first):
        want = B.expected_marks(first, "2026-11")
        lines = B.sim_lines(s)
        for (org, p), m in want.items():
            self.assertEqual(B.qty(lines[(by_org[org], B.PRODUCTS[p])]), m, (org, p))
        self.assertEqual(s.kcat("dlq"), [])

    def replay_due(self, seed):
        """A stack with a large backlog, Redis wiped, and a push requested on a thread (it waits
        for the marks: the replay begins). @returns (stack, by_org, first, thread, [push])."""
        s, secret, by_org, first = self.applied(seed, 3)
        self.backlog(s, first)
        self.wiped(s)
        pushed = []
        pusher = threading.Thread(target=lambda: pushed.append(B.push(s, timeout=300)))
        pusher.start()
        return s, by_org, first, pusher, pushed

    def test_healthz_answers_during_the_replay_of_a_large_backlog(self):
        s, by_org, first, pusher, pushed = self.replay_due(15)
        log = s.billing.logtext
        took = healthz_while(s.billing, lambda: '"billing.rebuild"' in log(),
                             lambda: '"billing.rebuilt"' in log() or
                             '"billing.rebuild_failed"' in log())
        pusher.join()
        print("/healthz during the replay: %d probes, slowest %.0f ms" % (
            len(took), 1000 * max(took or [0])))
        self.assertIn("billing marks rebuilt", log())
        self.assertGreaterEqual(len(took), 5, "the replay too short to be probed")
        self.assertLess(max(took), 0.2, "/healthz stalled during the replay")
        self.assertEqual(pushed[0]["state"], "done", pushed)
        self.assert_marks(s, by_org, first)

    def test_sigkill_inside_the_replay(self):
        s, by_org, first, pusher, pushed = self.replay_due(16)
        log = s.billing.logtext
        for k in range(2):
            # killed as soon as this process's replay has begun, long before its 40,000 reports
            # are applied (asserted: no replay had ended)
            wait_until(lambda: log().count('"billing.rebuild"') > k, 120,
                       "replay %d begun" % (k + 1), interval=0.02)
            s.billing.kill9()
            self.assertNotIn('"billing.rebuilt"', log(), "the kill came after the replay")
            s.restart(s.billing)
        pusher.join()
        self.assertEqual(pushed[0]["state"], "done", pushed)
        self.assertEqual(log().count('"billing.rebuilt"'), 1, "one replay completed")
        self.assert_marks(s, by_org, first)
        # the killed replays added nothing: every report before the loss counted exactly once
        st = B.status(s)["stats"]
        self.assertEqual(st.get("reports_applied", 0) + st.get("late_reports", 0),
                         len(first) + BACKLOG, st)


if __name__ == "__main__":
    harness.main()
