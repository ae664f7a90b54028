"""
The high-priority gate (issue 11, part C): a mixed 1,000-event stream with known severities is
ticketed exactly for the incidents at or above the gate (the rule's minimum wins over the
config's; an incident without a severity passes), each ticket with the priority its severity
maps to, and the skipped events counted per reason (skipped_severity, skipped_rule).
"""
import subprocess

import ticketing as T
from harness import StackTest, main
from test_ticketing_hold import accepted, ticketing_status

RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
PRIORITIES = {"critical": "0 Urgent", "high": "1 High", "medium": "2 Normal", "low": "3 Low",
              "info": "3 Low", None: "2 Normal"}


class TicketingGateTest(StackTest):

    def test_severity_gate_tickets_exactly_the_incidents_at_or_above_it(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        cfg = dict(T.DEFAULT_CONFIG, min_severity="high", rules={
            "*": {"create": True, "status": "New", "priority": None},
            "password_expiring": {"create": False},
            "device_offline": {"min_severity": "medium", "priority": None},
        })
        secret = T.setup(s, config=cfg)
        args, log = T.mtp_args(s, secret, count=1000, rate=250, seed=31)
        args += ["--severities", "info=15,low=15,medium=20,high=20,critical=15,none=15"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=300, env=s.base_env())
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        events = accepted(T.read_log(log))
        self.assertEqual(len(events), 1000)

        # The model: an incident's open events are skipped while it has no ticket when its
        # rule does not create, or its severity is under the rule's minimum (else the
        # config's); an incident without a severity passes.
        def minimum(e):
            return "medium" if e["alert_type"] == "device_offline" else "high"
        skipped = {"skipped_rule": 0, "skipped_severity": 0}
        gated = set()
        for e in events:
            if e["alert_type"] == "password_expiring":
                gated.add(e["incident_id"])
                skipped["skipped_rule"] += e["status"] == "open"
            elif e["severity"] is not None and RANK[e["severity"]] < RANK[minimum(e)]:
                gated.add(e["incident_id"])
                skipped["skipped_severity"] += e["status"] == "open"
        sevs = {e["incident_id"]: e["severity"] for e in events}
        self.assertGreater(skipped["skipped_severity"], 100)
        self.assertGreater(skipped["skipped_rule"], 50)
        self.assertTrue(any(v is None for k, v in sevs.items() if k not in gated))
        exp = T.expected([e for e in events if e["incident_id"] not in gated])
        T.wait_exact(s, exp, timeout=180)
        T.wait_drained(s)
        act = T.actual(T.sim_tickets(s))
        self.assertEqual(T.compare(exp, act), [])
        # Each ticket's priority is its incident's severity mapped (no rule fixes one).
        priority = {t["id"]: t["priority"] for t in T.sim_tickets(s)}
        for inc, tickets in act.items():
            self.assertEqual(priority[tickets[0]["id"]], PRIORITIES[sevs[inc]], inc)
        status = ticketing_status(s)
        self.assertEqual(status.get("skipped_severity", 0), skipped["skipped_severity"], status)
        self.assertEqual(status.get("skipped_rule", 0), skipped["skipped_rule"], status)
        self.assertEqual(status.get("skipped", 0), sum(skipped.values()), status)
        self.assertEqual(status["tickets_created"], len(exp))
        self.assertEqual(s.kcat("dlq"), [])
        print("tickets=%d skipped=%s" % (len(exp), skipped))


if __name__ == "__main__":
    main()
