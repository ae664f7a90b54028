#!/usr/bin/env python3
"""
Held incidents come back after a lost Redis (issue 14; design.md "Held incidents").

The index of a tenant's held incidents (`ticketing:held`) and the set of holding tenants live in
Redis; the incidents themselves on `incidents.held`. After a FLUSHALL a ticket-creator rebuilds
the index from the topic: per tenant, the held records after its last release mark.
  1. "Tickets - Create" revoked in the Syncro simulator after the first tickets exist, so the
     rest (re-fires and resolves of those tickets among them) are held; FLUSHALL; the gateway
     restores; the permission granted again and the integration saved: every held incident is
     released, exactly as test_ticketing_hold expects (0 lost, 0 duplicates).
  2. Ticketing switched off with when_disabled=hold, switched on, and Redis wiped in the middle
     of the release: the rebuilt index starts after the released ones (their release marks), so
     nothing is applied twice, and the rest are released.

  3. A large incidents.held (200,000 records): the ticket-creator's /healthz keeps answering
     while it scans the topic (the scan runs off its event loop).

The old code lost the index with Redis: the held incidents were never released.
"""
import json
import re
import subprocess

import ticketing as T
from harness import SANITIZER_MARKS, StackTest, healthz_while, main, wait_until

SCAN_BACKLOG = 200000  # records on incidents.held: a scan that takes a while


def ticketing_status(s):
    st, js, _ = s.api("GET", "/v1/tenants/%s/ticketing" % T.TENANT)
    return js["status"] if st == 200 else None


def run_mtp(test, s, secret, count, rate, seed):
    args, log = T.mtp_args(s, secret, count=count, rate=rate, seed=seed)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=s.base_env())
    return proc, log


def finish_mtp(test, proc, log, count):
    out, err = proc.communicate(timeout=300)
    for mark in SANITIZER_MARKS:
        test.assertNotIn(mark, err)
    test.assertEqual(proc.returncode, 0, (out, err[-2000:]))
    events = sorted((e for e in T.read_log(log) if e.get("http_status") == 202),
                    key=lambda e: e["seq"])
    test.assertEqual(len(events), count)
    return events


def rebuilt(s):
    """The counts of the held.rebuilt log lines: [(held incidents, from offset)]."""
    out = []
    for line in s.ticket_creator.logtext().splitlines():
        if '"held.rebuilt"' in line:
            m = re.search(r"(\d+) held incidents from offset (\d+)", json.loads(line)["msg"])
            out.append((int(m.group(1)), int(m.group(2))))
    return out


def held_records(s):
    """Held incidents on incidents.held (release marks left out)."""
    return [l for l in s.kcat("incidents.held", fmt="%h\t%s\n") if "release-mark" not in l]


class RedisWipeHeldTest(StackTest):

    def journaled(self, s):
        wait_until(lambda: any("ticketing:orgmap" in l for l in s.kcat("config", fmt="%k\n")),
                   60, "the org mappings journaled")

    def test_flushall_while_paused_then_everything_released_once(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, tc_env={"MSPSYNC_GROUP_INSTANCE_ID": "tc-0"})
        self.journaled(s)
        perms = s.sim_admin("GET", "/_sim/tokens/%s" % T.TOKEN)["permissions"]
        mtp, log = run_mtp(self, s, secret, count=240, rate=80, seed=53)
        wait_until(lambda: len(T.sim_tickets(s)) >= 20, 120, "first tickets")
        s.sim_admin("PUT", "/_sim/tokens/%s" % T.TOKEN,
                    {"permissions": [p for p in perms if p != "Tickets - Create"]})
        events = finish_mtp(self, mtp, log, 240)
        T.wait_drained(s)
        held = wait_until(lambda: (lambda st: st if st and st["paused"] else None)(
            ticketing_status(s)), 60, "ticketing paused")["held"]
        self.assertGreaterEqual(held, 60)
        before = len(T.sim_tickets(s))
        exp = T.expected(events)
        # re-fires and resolves of tickets that existed before the pause are among the held
        held_ids = {json.loads(l.split("\t", 1)[1])["incident_id"] for l in held_records(s)}
        ticketed = {T.INCIDENT_RE.search(sorted(t["comments"], key=lambda c: c["id"])[0]["body"])
                    .group(1) for t in T.sim_tickets(s)}
        self.assertTrue(held_ids & ticketed, "no held event of a ticket made before the pause")

        s.redis("FLUSHALL")
        # The gateway restores the configuration; a ticket-creator rebuilds the index from the
        # topic (the pause flag is not derivable: the first release meets the 403 again).
        st = wait_until(lambda: (lambda x: x if x and x["held"] > 0 else None)(
            ticketing_status(s)), 90, "the held index rebuilt")
        self.assertGreaterEqual(st["held"], held)
        self.assertEqual(len(T.sim_tickets(s)), before)

        s.sim_admin("PUT", "/_sim/tokens/%s" % T.TOKEN, {"permissions": perms})
        st, js, _ = s.api("PATCH", "/v1/tenants/%s/integrations/syncro" % T.TENANT,
                          {"writeback": {"purchase_date": False}})
        self.assertEqual(st, 200, js)
        T.wait_exact(s, exp, timeout=180)
        wait_until(lambda: (ticketing_status(s) or {}).get("held") == 0, 60, "nothing held")
        self.assertEqual(T.compare(exp, T.actual(T.sim_tickets(s))), [])
        self.assertEqual(s.kcat("dlq"), [])
        print("held=%d tickets before the pause=%d after=%d rebuilt=%s" % (
            held, before, len(T.sim_tickets(s)), rebuilt(s)))

    def test_flushall_in_the_middle_of_a_release_applies_nothing_twice(self):
        s = self.make_stack(sim_config={"rate_limit": 0, "latency_ms": 25})
        off = dict(T.DEFAULT_CONFIG, enabled=False, when_disabled="hold")
        secret = T.setup(s, config=off, tc_env={"MSPSYNC_GROUP_INSTANCE_ID": "tc-0"})
        self.journaled(s)
        mtp, log = run_mtp(self, s, secret, count=160, rate=100, seed=59)
        events = finish_mtp(self, mtp, log, 160)
        T.wait_drained(s)
        wait_until(lambda: (ticketing_status(s) or {}).get("held", 0) >= 160, 60, "all held")
        self.assertEqual(T.sim_tickets(s), [])

        st, js, _ = s.api("PUT", "/v1/tenants/%s/ticketing" % T.TENANT, dict(off, enabled=True))
        self.assertEqual(st, 200, js)
        wait_until(lambda: (ticketing_status(s) or {}).get("released", 0) >= 60, 120,
                   "the release under way")
        s.redis("FLUSHALL")
        exp = T.expected(events)
        T.wait_exact(s, exp, timeout=180)
        wait_until(lambda: (ticketing_status(s) or {}).get("held") == 0, 60, "nothing held")
        self.assertEqual(T.compare(exp, T.actual(T.sim_tickets(s))), [])
        self.assertEqual(s.kcat("dlq"), [])
        # The rebuilt index began after the records released before the wipe.
        marks = [l for l in s.kcat("incidents.held", fmt="%h\t%s\n") if "release-mark" in l]
        rb = rebuilt(s)
        print("held=160 marks=%d rebuilt=%s" % (len(marks), rb))
        self.assertEqual(len(rb), 1, rb)
        self.assertGreaterEqual(rb[0][1], 60)
        self.assertLessEqual(rb[0][0], 100)

    def test_healthz_answers_during_the_scan_of_a_large_topic(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        T.setup(s, orgs=2)
        self.journaled(s)
        done = s.ticket_creator.logtext().count('"held.rebuild_done"')
        self.assertGreaterEqual(done, 1)  # the start's scan (of an empty topic)
        # Release marks of another tenant, fully released: the scan reads them all and the
        # rebuilt index holds nothing.
        mark = {"tenant": "bulk", "partition": 0, "released_to": 0}
        lines = []
        for i in range(SCAN_BACKLOG):
            mark["released_to"] = i
            lines.append("bulk\t%s\n" % json.dumps(mark))
        subprocess.run(["kcat", "-P", "-K", "\t", "-H", "x-mspsync-kind=release-mark", "-b",
                        s.brokers, "-t", s.topic("incidents.held")],
                       input="".join(lines), text=True, check=True, timeout=120)
        log = s.ticket_creator.logtext
        s.redis("FLUSHALL")
        took = healthz_while(
            s.ticket_creator,
            lambda: s.redis("EXISTS", "mspsync:{_}:ticketing:held_rebuild_lock") == 1,
            lambda: log().count('"held.rebuild_done"') > done or '"held.rebuild_failed"' in log())
        print("/healthz during the scan: %d probes, slowest %.0f ms" % (
            len(took), 1000 * max(took or [0])))
        self.assertNotIn('"held.rebuild_failed"', log())
        self.assertGreaterEqual(len(took), 5, "the scan too short to be probed")
        self.assertLess(max(took), 0.2, "/healthz stalled during the scan")
        self.assertEqual(rebuilt(s), [])  # nothing held
        self.assertEqual((ticketing_status(s) or {}).get("held"), 0)


if __name__ == "__main__":
    main()
