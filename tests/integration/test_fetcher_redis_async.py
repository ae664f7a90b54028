#!/usr/bin/env python3
"""Redis stops answering (SIGSTOP) while the fetcher is mid-sync: the fetcher's loop never waits
for it — /healthz answers within 0.8 s throughout, /readyz says "redis unavailable" at once —
and after SIGCONT the sync finishes with exactly the simulator's assets, none lost, none twice."""
import collections
import signal
import time

import harness
from harness import StackTest, healthz_while, http, wait_until

STALL_S = 7.0  # past the async connection's 5 s stall limit: it is dropped and made again
ANSWER_LIMIT_S = 0.8  # the old loop: 1 s timeouts (each Redis call held it 5 s); 2-17 ms measured


class FetcherRedisAsyncTest(StackTest):

    def test_redis_stall_mid_sync_never_stalls_the_fetcher(self):
        # 40 ms per request makes the 61-page sync last a few seconds: the stall meets it mid-way.
        # The fetcher yields the CPU by default (MSPSYNC_NICE 10: a tenth of a normal process's
        # share on a loaded machine); what is measured here is whether its loop waits for Redis,
        # so it runs at the prober's priority and the machine's other work is not counted.
        s = self.make_stack(sim_config={"rate_limit": 0, "latency_ms": 40},
                            fetcher_env={"MSPSYNC_NICE": "0"})
        s.add_account("kilo-msp", customers=30, assets=3000, token="kilo-key-0123456789")
        s.add_tenant("kilo")
        st, js, _ = s.connect("kilo", "kilo-msp", "kilo-key-0123456789")
        self.assertEqual(st, 201, js)
        job = js["job_id"]
        fetcher = s.fetchers[0]

        s.wait_asset_page("kilo", 8)
        s.redis_proc.send_signal(signal.SIGSTOP)
        stalled = time.time()
        readyz = []
        try:
            def ended():
                # /readyz too: answered at once, and unready once Redis has been silent 3 s
                if time.time() > stalled + 4 and not readyz:
                    t0 = time.time()
                    try:
                        st, body, _ = http("GET", fetcher.url("/readyz"), timeout=1.0)
                    except OSError as e:  # no answer within the limit
                        st, body = None, repr(e)
                    readyz.append((st, body, time.time() - t0))
                return time.time() > stalled + STALL_S
            took = healthz_while(fetcher, lambda: True, ended, timeout=60, limit=1.0)
        finally:
            s.redis_proc.send_signal(signal.SIGCONT)

        print("fetcher /healthz during the stall: %d probes, slowest %.3f s"
              % (len(took), max(took)), flush=True)
        slow = [round(t, 3) for t in took if t > ANSWER_LIMIT_S]
        self.assertEqual(slow, [], "/healthz took longer than %.1f s while Redis was stopped "
                         "(slowest %.3f s of %d probes)" % (ANSWER_LIMIT_S, max(took), len(took)))
        self.assertGreater(len(took), 20, "too few /healthz probes during the stall")
        self.assertEqual(len(readyz), 1)
        st, body, secs = readyz[0]
        self.assertEqual(st, 503, body)
        self.assertIn("redis unavailable", str(body))
        self.assertLess(secs, ANSWER_LIMIT_S, "/readyz waited for Redis")
        self.assertIsNone(fetcher.proc.poll(), "the fetcher died during the Redis stall")

        st = s.wait_synced("kilo", job, assets=3000, timeout=240)
        self.assertEqual(st["counts"]["customers"], 30)
        assets = s.inventory("kilo", "assets")
        ids = [a["id"] for a in assets]
        self.assertEqual(len(ids), 3000)
        self.assertEqual(len(set(ids)), 3000)
        s.wait_normalized()
        keys = collections.Counter(l.split("\t")[0] for l in s.kcat("assets"))
        self.assertEqual(len(keys), 3000)
        self.assertEqual(max(keys.values()), 1, "an asset was published twice")
        # The job went on from where it was: one pull of the 61 asset pages, give or take the
        # pages retried around the stall.
        self.assertLess(s.sim_stats()["paths"]["/customer_assets"], 61 + 10)
        wait_until(lambda: http("GET", fetcher.url("/readyz"))[0] == 200, 30, "fetcher ready again")
        self.assertIn("redis.stalled", fetcher.logtext())


if __name__ == "__main__":
    harness.main()
