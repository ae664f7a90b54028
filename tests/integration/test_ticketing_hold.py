"""
Ticketing that holds instead of dropping (issue 11, part C; the gate is test_ticketing_gate.py):
- "Tickets - Create" revoked mid-stream: ticketing pauses (the integration shows Error naming
  the permission), every incident is kept (nothing dead-lettered), and after the key is fixed
  and the integration PATCHed everything is ticketed, in order, exactly once;
- when_disabled=hold keeps what arrives while ticketing is off, across SIGKILLs of the
  ticket-creator while holding and while releasing; when_disabled=skip counts and drops;
- a held incident that fails when released is dead-lettered and replays to `incidents`.
"""
import json
import subprocess

import ticketing as T
from harness import SANITIZER_MARKS, StackTest, main, wait_until

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
        # Released in the order they were held: the tickets were made in the order of each
        # incident's first open event on incidents.held (the tenant's one partition).
        first_open = []
        for line in s.kcat("incidents.held", fmt="%s\n"):
            inc = json.loads(line)
            if "released_to" in inc:  # a release mark, not a held incident
                continue
            if inc["status"] == "open" and inc["incident_id"] not in first_open:
                first_open.append(inc["incident_id"])
        made = [T.INCIDENT_RE.search(sorted(t["comments"], key=lambda c: c["id"])[0]["body"]).group(1)
                for t in sorted(T.sim_tickets(s), key=lambda t: t["id"])]
        self.assertEqual(made, [i for i in first_open if i in exp])
        # Each trace shows it: held, then released, then its ticket, once (design.md "Traces").
        diffs = T.trace_diffs(s, events, T.sim_tickets(s))
        self.assertEqual(diffs, [], diffs[:20])
        st, js, _ = s.api("GET", "/v1/tenants/%s/incidents/%s" % (T.TENANT, made[0]))
        steps = [e["step"] for e in js["incidents"][0]["entries"]]
        self.assertLess(steps.index("held"), steps.index("released"), steps)
        self.assertLess(steps.index("released"), steps.index("ticket_created"), steps)

        # when_disabled=skip: counted as skipped_disabled, never ticketed.
        put_config(s, dict(off, when_disabled="skip"))
        mtp, log = start_mtp(s, secret, count=50, rate=100, seed=47, prefix="skp")
        skipped = accepted(finish_mtp(self, mtp, log))
        T.wait_drained(s)
        status = ticketing_status(s)
        self.assertEqual(status["skipped_disabled"], len(skipped), status)
        st, js, _ = s.api("GET", "/v1/tenants/%s/incidents/%s" % (T.TENANT,
                                                                  skipped[0]["incident_id"]))
        self.assertEqual([e["step"] for e in js["incidents"][0]["entries"]][-1],
                         "skipped_disabled", js)
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
