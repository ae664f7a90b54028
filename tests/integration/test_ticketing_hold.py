"""
The high-priority gate and ticketing that holds instead of dropping (issue 11, part C):
- a mixed 1,000-event stream with known severities is ticketed exactly for the incidents at or
  above the gate (the rule's minimum wins over the config's; an incident without a severity
  passes), with the priority its severity maps to, and the skipped events counted per reason;
- "Tickets - Create" revoked mid-stream: ticketing pauses (the integration shows Error naming
  the permission), every incident is kept (nothing dead-lettered), and after the key is fixed
  and the integration PATCHed everything is ticketed, in order, exactly once;
- when_disabled=hold keeps what arrives while ticketing is off, across SIGKILLs of the
  ticket-creator while holding and while releasing; when_disabled=skip counts and drops.
"""
import subprocess

import ticketing as T
from harness import SANITIZER_MARKS, StackTest, main, wait_until

RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
PRIORITIES = {"critical": "0 Urgent", "high": "1 High", "medium": "2 Normal", "low": "3 Low",
              "info": "3 Low", None: "2 Normal"}


def accepted(events):
    return sorted((e for e in events if e.get("http_status") == 202), key=lambda e: e["seq"])


def ticketing_status(s):
    st, js, _ = s.api("GET", "/v1/tenants/%s/ticketing" % T.TENANT)
    assert st == 200, (st, js)
    return js["status"]


def put_config(s, cfg):
    st, js, _ = s.api("PUT", "/v1/tenants/%s/ticketing" % T.TENANT, cfg)
    assert st == 200, (st, js)


def start_mtp(s, secret, count, rate, seed, prefix="inc", extra=()):
    args, log = T.mtp_args(s, secret, count=count, rate=rate, seed=seed, prefix=prefix)
    return subprocess.Popen(args + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=s.base_env()), log


def finish_mtp(test, proc, log):
    out, err = proc.communicate(timeout=300)
    for mark in SANITIZER_MARKS:
        test.assertNotIn(mark, err)
    test.assertEqual(proc.returncode, 0, (out, err[-2000:]))
    return T.read_log(log)


class TicketingHoldTest(StackTest):

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

    def test_revoked_permission_pauses_keeps_every_incident_and_resumes_in_order(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s)
        token = s.sim_admin("GET", "/_sim/tokens/%s" % T.TOKEN)
        perms = token["permissions"]
        self.assertIn("Tickets - Create", perms)
        mtp, log = start_mtp(s, secret, count=500, rate=60, seed=41)
        wait_until(lambda: len(T.sim_tickets(s)) >= 25, 120, "first tickets")
        s.sim_admin("PUT", "/_sim/tokens/%s" % T.TOKEN,
                    {"permissions": [p for p in perms if p != "Tickets - Create"]})
        events = accepted(finish_mtp(self, mtp, log))
        self.assertEqual(len(events), 500)

        # Paused: Error naming the permission, incidents kept, nothing dead-lettered.
        integ = wait_until(lambda: (lambda st: st if st["state"] == "Error" else None)(
            s.status(T.TENANT)), 60, "integration in Error")
        self.assertIn('"Tickets - Create"', integ["hint"])
        self.assertIn("Tickets - Create", integ["last_error"])  # Syncro's own words
        T.wait_drained(s)
        status = ticketing_status(s)
        self.assertTrue(status["paused"], status)
        self.assertGreater(status["held"], 100, status)
        self.assertIn("Tickets - Create", status["hint"])
        before = len(T.sim_tickets(s))
        self.assertEqual(s.kcat("dlq"), [])

        # Fixed key, integration PATCHed: everything ticketed, in order, exactly once.
        s.sim_admin("PUT", "/_sim/tokens/%s" % T.TOKEN, {"permissions": perms})
        st, js, _ = s.api("PATCH", "/v1/tenants/%s/integrations/syncro" % T.TENANT,
                          {"writeback": {"purchase_date": False}})
        self.assertEqual(st, 200, js)
        self.assertNotEqual(js["state"], "Error", js)
        T.wait_exact(s, T.expected(events), timeout=180)
        wait_until(lambda: ticketing_status(s)["held"] == 0, 60, "nothing held")
        self.assertEqual(T.compare(T.expected(events), T.actual(T.sim_tickets(s))), [])
        self.assertEqual(s.kcat("dlq"), [])
        status = ticketing_status(s)
        self.assertFalse(status["paused"])
        self.assertNotIn("dead_lettered", status)
        print("tickets before the pause=%d, held=%d, released=%d, tickets after=%d" % (
            before, status.get("held_total", 0), status.get("released", 0), len(T.sim_tickets(s))))

    def test_when_disabled_hold_survives_sigkills_and_skip_drops(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        off = dict(T.DEFAULT_CONFIG, enabled=False, when_disabled="hold")
        secret = T.setup(s, config=off, tc_env={"MSPSYNC_GROUP_INSTANCE_ID": "tc-0"})
        # Held while off; the ticket-creator SIGKILLed while it holds.
        mtp, log = start_mtp(s, secret, count=300, rate=60, seed=43)
        wait_until(lambda: ticketing_status(s)["held"] >= 60, 120, "incidents held")
        s.ticket_creator.kill9()
        s.restart(s.ticket_creator)
        events = accepted(finish_mtp(self, mtp, log))
        self.assertEqual(len(events), 300)
        T.wait_drained(s)
        self.assertGreaterEqual(ticketing_status(s)["held"], 300)
        self.assertEqual(T.sim_tickets(s), [])

        # Switched on: released in order; SIGKILLed again in the middle of the release.
        put_config(s, dict(off, enabled=True))
        wait_until(lambda: len(T.sim_tickets(s)) >= 20, 120, "release under way")
        s.ticket_creator.kill9()
        s.restart(s.ticket_creator)
        exp = T.expected(events)
        T.wait_exact(s, exp, timeout=180)
        wait_until(lambda: ticketing_status(s)["held"] == 0, 60, "nothing held")
        self.assertEqual(T.compare(exp, T.actual(T.sim_tickets(s))), [])
        self.assertEqual(s.kcat("dlq"), [])

        # when_disabled=skip: counted as skipped_disabled, never ticketed.
        put_config(s, dict(off, when_disabled="skip"))
        mtp, log = start_mtp(s, secret, count=50, rate=100, seed=47, prefix="skp")
        skipped = accepted(finish_mtp(self, mtp, log))
        T.wait_drained(s)
        status = ticketing_status(s)
        self.assertEqual(status["skipped_disabled"], len(skipped), status)
        self.assertEqual(status["held"], 0, status)
        self.assertEqual(T.compare(exp, T.actual(T.sim_tickets(s))), [])

    def test_released_incident_of_an_unmapped_org_is_dead_lettered_and_replays_to_incidents(self):
        """A held incident that fails when released is dead-lettered like any other, and its
        replay goes back to `incidents` (where it is ticketed), not to `incidents.held`."""
        s = self.make_stack(sim_config={"rate_limit": 0})
        off = dict(T.DEFAULT_CONFIG, enabled=False, when_disabled="hold")
        secret = T.setup(s, orgs=3, unmapped=("org-0003",), config=off)
        inc = {"id": "inc-unmapped-1", "org_id": "org-0003", "org_name": "Umbrella Corp",
               "alert_type": "device_offline", "severity": "high", "status": "open",
               "subject": "WS-07", "title": "Device offline", "occurred_at": "2026-11-23T10:00:00Z"}
        for body in (inc, dict(inc, id="inc-mapped-1", org_id="org-0001", org_name="Org One")):
            st, js, _ = T.post_incident(s, secret, body)
            self.assertEqual(st, 202, js)
        wait_until(lambda: ticketing_status(s)["held"] == 2, 60, "both held")
        put_config(s, dict(off, enabled=True))
        dl = wait_until(lambda: s.kcat("dlq", fmt="%h\t%s\n"), 120, "dead letter")
        self.assertEqual(len(dl), 1, dl)
        self.assertIn("no Syncro customer mapped for org org-0003", dl[0])
        self.assertIn("x-dlq-source-topic=%s," % s.topic("incidents"), dl[0])
        wait_until(lambda: len(T.sim_tickets(s)) == 1, 60, "the mapped org's ticket")
        wait_until(lambda: ticketing_status(s)["held"] == 0, 60, "nothing held")

        cust = sorted(c["id"] for c in s.inventory(T.TENANT, "customers"))[5].split(":")[1]
        st, js, _ = s.api("PUT", "/v1/tenants/%s/ticketing/orgs/org-0003" % T.TENANT,
                          {"customer_id": int(cust)})
        self.assertEqual(st, 200, js)
        rc, out, err = s.dlq_tool("replay")
        self.assertEqual((rc, out.strip()), (0, "replayed=1 skipped=0"), err)
        wait_until(lambda: len(T.sim_tickets(s)) == 2, 60, "the replayed incident's ticket")
        T.wait_drained(s)
        self.assertEqual(len(T.sim_tickets(s)), 2)


if __name__ == "__main__":
    main()
