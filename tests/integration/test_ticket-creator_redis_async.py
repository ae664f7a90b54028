"""
Redis stops answering (SIGSTOP) for longer than the ticket-creator's stall limit while it has
incidents in flight — Syncro calls out, records being written: its loop goes on. /healthz, probed
back to back through the whole stall, answers every time within 0.8 s (its Redis commands are
async: a stalled Redis delays events, never the loop); /readyz, answered as fast, says "redis
unavailable" once Redis has been silent a while, and ready again after SIGCONT. Then every
incident is ticketed exactly as the portal sent it: no duplicate, no loss, nothing dead-lettered.
"""
import signal
import subprocess
import time

import ticketing as T
from harness import StackTest, healthz_while, http, main, wait_until

STALL_S = 7.0  # past the async connection's 5 s stall limit: its commands are dropped, retried
PROBE_LIMIT = 1.0
ANSWER_MAX = 0.8  # the old loop: 1 s timeouts (each Redis call held it 5 s); 7-82 ms measured


class TicketCreatorRedisAsyncTest(StackTest):
    def test_a_stalled_redis_never_stalls_the_loop_and_loses_nothing(self):
        # Syncro answers slowly and few events run at once: incidents are in flight for a while.
        s = self.make_stack(sim_config={"rate_limit": 0, "latency_ms": 300})
        secret = T.setup(s, tc_env={"MSPSYNC_MAX_ACTIVE": "4"})
        tc = s.ticket_creator
        args, log = T.mtp_args(s, secret, count=160, rate=40, seed=47)
        mtp = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=s.base_env())
        try:
            # Work in flight: tickets are being made, far from all of them.
            wait_until(lambda: len(T.sim_tickets(s)) >= 5, 60, "the first tickets")
            events = T.mtp_events(self, mtp, log, count=160)
        finally:
            if mtp.poll() is None:
                mtp.kill()
        exp = T.expected(events)
        self.assertGreater(len(exp) - len(T.sim_tickets(s)), 20, "the backlog ended too soon")

        s.redis_proc.send_signal(signal.SIGSTOP)
        stopped = time.time()
        try:
            readyz = []

            def probe_ready():
                t0 = time.time()
                try:
                    st, body, _ = http("GET", tc.url("/readyz"), timeout=PROBE_LIMIT)
                except OSError:  # no answer within the limit
                    st, body = None, "no answer"
                readyz.append((time.time() - t0, st, str(body)))

            def stall_over():
                # Redis silent for over 3 s (MSP_SVC_REDIS_ANSWER_MS): not ready
                if time.time() - stopped > 4.5 and len(readyz) < 3:
                    probe_ready()
                return time.time() - stopped >= STALL_S

            # back to back, from the stop to the end of the stall
            took = healthz_while(tc, lambda: True, stall_over, timeout=STALL_S + 30,
                                 limit=PROBE_LIMIT)
        finally:
            s.redis_proc.send_signal(signal.SIGCONT)
        slow = [round(t, 3) for t in took if t > ANSWER_MAX]
        self.assertEqual(slow, [], "/healthz answered slower than %.0f ms during the stall "
                         "(%d probes, worst %.3f s)" % (ANSWER_MAX * 1000, len(took), max(took)))
        self.assertGreater(len(took), 20, took)
        self.assertTrue(readyz, "no /readyz probe")
        for t, st, body in readyz:
            self.assertLess(t, ANSWER_MAX, readyz)
            self.assertEqual(st, 503, readyz)
            self.assertIn("redis unavailable", body, readyz)
        # The stall was seen: commands in flight were dropped and retried, not waited on.
        wait_until(lambda: "redis.stalled" in tc.logtext(), 30, "the stall noticed")

        # Everything completes, exactly once.
        T.wait_exact(s, exp, timeout=120)
        T.wait_drained(s)
        self.assertEqual(s.kcat("dlq"), [])
        wait_until(lambda: http("GET", tc.url("/readyz"))[0] == 200, 30, "ready again")
        diffs = T.trace_diffs(s, events, T.sim_tickets(s))
        self.assertEqual(diffs, [], "%d differences, first 20: %s" % (len(diffs), diffs[:20]))
        print("stall %.1f s: %d /healthz probes, worst %.1f ms; tickets %d" % (
            STALL_S, len(took), max(took) * 1000, len(exp)))


if __name__ == "__main__":
    main()
