"""
Syncro answers 429 (for a minute) and then 503 (for another minute) while incidents arrive: the
ticket-creator backs off and retries without committing, nothing is dead-lettered, and once
Syncro recovers every incident is ticketed exactly as expected.
"""
import time

import ticketing as T
from harness import StackTest, main, wait_until


class TicketsOutageTest(StackTest):
    def test_two_minutes_of_429_and_503_then_everything_is_ticketed(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, tc_env={"MSPSYNC_BACKOFF_CAP_MS": "5000"})
        started = time.time()
        # 65 s: the switch to 503 below comes before it ends, however late the machine runs it
        s.sim_config({"outage_status": 429, "outage_ms": 65000})
        summary, events = T.run_mtp(s, secret, count=200, rate=20, seed=31)
        self.assertEqual(summary["accepted"], 200, summary)
        self.assertLess(time.time() - started, 55, "the webhooks took too long: %r" % summary)
        # Nothing got through while Syncro refused.
        self.assertEqual(T.sim_tickets(s), [])
        wait_until(lambda: time.time() - started >= 58, 90, "most of the first minute")
        switched = time.time()
        s.sim_config({"outage_status": 503, "outage_ms": 62000})
        # The retries show in the ticketing status, with Syncro's answer.
        wait_until(lambda: "503" in (s.api("GET", "/v1/tenants/%s/ticketing" % T.TENANT)[1]
                                     ["status"].get("last_error") or ""), 45, "503 in the status")
        self.assertEqual(T.sim_tickets(s), [])
        # checked well before the 503s end (62 s after the switch), not on their last second
        wait_until(lambda: time.time() - switched >= 55, 90, "the second minute")
        self.assertEqual(T.sim_tickets(s), [])
        exp = T.expected(events)
        T.wait_exact(s, exp, timeout=240)
        T.wait_drained(s)
        self.assertEqual(s.kcat("dlq"), [])
        retries = s.ticket_creator.logtext().count("syncro.retry")
        self.assertGreater(retries, 10)
        print("outage %.0f s, recovered after %.0f s, retries logged %d, tickets %d" % (
            120, time.time() - started, retries, len(exp)))


if __name__ == "__main__":
    main()
