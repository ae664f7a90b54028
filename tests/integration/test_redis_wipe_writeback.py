#!/usr/bin/env python3
"""The write-back's per-asset state (what `GET /v1/tenants/{t}/assets/{id}/writeback` answers) comes
back after Redis is lost, and no date is written twice.

One tenant with Syncro and ConnectWise RMM integrations (ten machines in both), both opted into the
date write-back. Edits are written to both vendors; one edit meets a Syncro 422 (its Syncro fields
"failed" with the vendor's error, its ConnectWise RMM fields "written", the change dead-lettered).
Then Redis is wiped (FLUSHALL) at two moments:
- between changes: afterwards every asset's write-back answer equals the one before — states,
  values, change ids, errors — rebuilt from the wb.states topic;
- while changes are on their way: one change with its ConnectWise RMM call in flight (the
  simulator answers slowly), one waiting in date.changes while the write-back is stopped. Each is
  written exactly once and its answer reads "written" for both vendors (the change in flight
  wrote its states into the wiped Redis and writes them again after the rebuild).
Each value reaches each vendor exactly once over the whole run.
"""
import time
import unittest

from harness import http, wait_until
import cwrmm

T = cwrmm.DatesTenant.TENANT


class RedisWipeWriteBackTest(cwrmm.DatesTenant, unittest.TestCase):
    def writeback(self, aid):
        st, js, _ = self.api("GET", "/v1/tenants/%s/assets/%s/writeback" % (T, aid))
        self.assertEqual(st, 200, js)
        return js["targets"]

    def answers(self):
        return {aid: self.writeback(aid) for aid in self.machines}

    def wait_state(self, aid, target, state, timeout=60):
        return wait_until(lambda: (lambda t: t if (t.get(target) or {}).get("state") == state
                                   else None)(self.writeback(aid)),
                          timeout, "%s %s %s" % (aid, target, state), interval=0.3)

    def written_once(self, failed_syncro):
        """Every edit's values on ConnectWise RMM exactly once; on Syncro once, except the edits
        whose Syncro write failed (never)."""
        got = {}
        for x in self.cw_writes():
            got.setdefault((x["endpointID"], x["name"]), []).append(x["value"][:10])
        for aid, (p, w) in self.edits.items():
            eid = self.cw_of[aid]
            self.assertEqual(got.get((eid, "Purchase Date")), [p], aid)
            self.assertEqual(got.get((eid, "Warranty Expiration")), [w], aid)
        self.assertEqual(len(self.cw_writes()), 2 * len(self.edits))
        self.assertEqual(self.sy_updates(), len(self.edits) - len(failed_syncro))
        for aid, (p, w) in self.edits.items():
            props = self.s.sim_admin("GET", "/wz-msp/api/v1/customer_assets/%s?api_key=wz-key-123456"
                                     % aid.split(":")[1])["asset"]["properties"]
            got = (props.get("Purchase Date", "")[:10], props.get("Warranty Expiration", "")[:10])
            self.assertEqual(got == (p, w), aid not in failed_syncro, (aid, props))

    def test_states_come_back_and_nothing_is_written_twice(self):
        s = self.s
        self.set_up_synced(40)   # machines 0..2 edited and written to both vendors
        failed = self.machines[3]
        s.sim_config({"fail_next": 1, "fail_status": 422})
        self.edit(failed, "2023-03-03", "2031-03-03")
        t = self.wait_state(failed, "syncro:purchase", "failed")
        self.assertIn("422", t["syncro:purchase"]["error"], t)
        self.wait_state(failed, "cwrmm:warranty", "written")
        s.sim_config({"fail_next": 0})
        wait_until(lambda: len(s.kcat("dlq")) == 1, 60, "the failed change dead-lettered")
        before = self.answers()
        for aid in self.machines[:3]:
            self.assertEqual({v["state"] for v in before[aid].values()}, {"written"}, before[aid])
            self.assertEqual(len(before[aid]), 4, before[aid])
        self.assertEqual(before[self.machines[5]], {})

        # 1. Wiped between changes: every answer as before.
        s.redis("FLUSHALL")
        self.wait_served()
        wait_until(lambda: self.answers() == before, 60, "every write-back answer as before")
        self.assertIn("write-back states rebuilt", s.write_backs[0].logtext())

        # 2. Wiped while a change's ConnectWise RMM call is in flight...
        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"latency_ms": 1500})
        inflight = self.machines[4]
        self.edit(inflight, "2024-04-04", "2032-04-04")
        self.wait_state(inflight, "cwrmm:purchase", "pending", 30)
        s.redis("FLUSHALL")
        # ... and while one waits in date.changes for a stopped write-back.
        self.wait_served()
        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"latency_ms": 0})
        wb = s.write_backs[0]
        wait_until(lambda: "wb.state_reasserted" in wb.logtext(), 60,
                   "the change in flight writing its states again after the rebuild")
        self.assertEqual(wb.stop(), 0)
        waiting = self.machines[5]
        dc = sum(s.topic_end_offsets("date.changes").values())
        self.edit(waiting, "2025-05-05", "2033-05-05")
        wait_until(lambda: sum(s.topic_end_offsets("date.changes").values()) > dc, 60,
                   "the change in date.changes")
        s.redis("FLUSHALL")
        self.wait_served()
        s.restart(wb)
        for aid in (inflight, waiting):
            want = self.edits[aid]
            for target in ("cwrmm:purchase", "cwrmm:warranty", "syncro:purchase",
                           "syncro:warranty"):
                got = self.wait_state(aid, target, "written")[target]
                self.assertEqual(got["value"], want[0] if target.endswith("purchase") else want[1])
        # every earlier answer still as before (two more losses since)
        after = self.answers()
        for aid in self.machines:
            if aid not in (inflight, waiting):
                self.assertEqual(after[aid], before[aid], aid)
        s.wait_normalized()
        time.sleep(1)   # a second write would come within the backoff; none does
        self.written_once({failed})
        self.assertEqual(len(s.kcat("dlq")), 1)
        wait_until(lambda: http("GET", wb.url("/readyz"))[0] == 200, 30, "the write-back ready")


if __name__ == "__main__":
    unittest.main(verbosity=2)
