#!/usr/bin/env python3
"""Redis stops answering (SIGSTOP) while the write-back has date changes on their way: its loop
goes on answering — /healthz within 0.8 s every time (typically 20-140 ms), /readyz "redis unavailable" as promptly —
and once Redis is back (SIGCONT) every change is written exactly once to both vendors and reads
"written" in the API.

One tenant with Syncro and ConnectWise RMM integrations (cwrmm.DatesTenant), both opted into the
date write-back; both simulators answer slowly so that the changes are between vendor calls and
Redis steps when Redis stops. The write-back's Redis commands then wait for answers that do not
come (and are dropped after the stall limit, then sent again): with blocking Redis calls on the
loop, every probe waited behind them.
"""
import signal
import time
import unittest

from harness import healthz_while, http, wait_until
import cwrmm

T = cwrmm.DatesTenant.TENANT
STALL_S = 7          # longer than the async connection's stall limit (5 s): its drop is met too
PROBE_LIMIT_S = 0.8  # every /healthz answer within this (the old loop: 1 s timeouts, each call held 5 s)


class WriteBackRedisAsyncTest(cwrmm.DatesTenant, unittest.TestCase):
    def writeback(self, aid):
        st, js, _ = self.api("GET", "/v1/tenants/%s/assets/%s/writeback" % (T, aid))
        self.assertEqual(st, 200, js)
        return js["targets"]

    def test_loop_answers_while_redis_is_stopped_and_every_change_lands_once(self):
        s = self.s
        self.set_up_synced(40)   # machines 0..2 edited and written to both vendors
        wb = s.write_backs[0]
        wait_until(lambda: http("GET", wb.url("/readyz"))[0] == 200, 60, "the write-back ready")

        # Work in flight: slow vendors, six changes on their way.
        s.sim_config({"latency_ms": 800})
        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"latency_ms": 800})
        edited = self.machines[3:9]
        for i, aid in enumerate(edited):
            self.edit(aid, "2024-0%d-1%d" % (i + 1, i), "2032-0%d-1%d" % (i + 1, i))
        wait_until(lambda: any(v.get("state") == "pending" for aid in edited
                               for v in self.writeback(aid).values()),
                   60, "a change on its way", interval=0.1)

        s.redis_proc.send_signal(signal.SIGSTOP)
        stopped = time.time()
        ready_answer = None
        try:
            took = healthz_while(wb, lambda: True, lambda: time.time() > stopped + STALL_S,
                                 limit=1.0)
            # /readyz: Redis has not answered for seconds; said so at once, never waited on.
            t0 = time.time()
            try:
                st, body, _ = http("GET", wb.url("/readyz"), timeout=1.0)
                ready_answer = (st, body, time.time() - t0)
            except OSError:
                ready_answer = (None, "no answer within 1 s", time.time() - t0)
        finally:
            s.redis_proc.send_signal(signal.SIGCONT)
        s.sim_config({"latency_ms": 0})
        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"latency_ms": 0})

        slow = [round(x, 3) for x in took if x >= PROBE_LIMIT_S]
        print("\n/healthz during the %d s stall: %d probes, slowest %.3f s; /readyz %s in %.3f s"
              % (STALL_S, len(took), max(took), ready_answer[0], ready_answer[2]), flush=True)
        self.assertEqual(slow, [], "%d of %d /healthz probes slower than %s s during the stall"
                         % (len(slow), len(took), PROBE_LIMIT_S))
        self.assertGreater(len(took), 10, took)   # probed back to back all along
        self.assertEqual(ready_answer[0], 503, ready_answer)
        self.assertIn("redis unavailable", str(ready_answer[1]), ready_answer)
        self.assertLess(ready_answer[2], PROBE_LIMIT_S, ready_answer)

        # Every change written once to each vendor (and the earlier ones not again).
        self.wait_written()
        for aid in edited:
            want = self.edits[aid]
            got = wait_until(lambda aid=aid: (lambda t: t if len(t) == 4 and all(
                v.get("state") == "written" for v in t.values()) else None)(self.writeback(aid)),
                60, "%s written for both vendors" % aid, interval=0.3)
            for target, v in got.items():
                self.assertEqual(v["value"], want[0] if target.endswith("purchase") else want[1],
                                 (aid, target, v))
        time.sleep(1)   # a second write would come within the backoff; none does
        self.assertEqual(len(self.cw_writes()), 2 * len(self.edits))
        self.assertEqual(self.sy_updates(), len(self.edits))
        self.assertEqual(s.kcat("dlq"), [])
        self.assertIsNone(wb.proc.poll(), "the write-back died during the stall")
        wait_until(lambda: http("GET", wb.url("/readyz"))[0] == 200, 30, "the write-back ready")


if __name__ == "__main__":
    unittest.main(verbosity=2)
