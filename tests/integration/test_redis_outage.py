#!/usr/bin/env python3
"""Redis stops answering for a while in the middle of a sync (SIGSTOP, then SIGCONT: the data
stays, the connections hang, as with a stalled or failing-over server): every service rides it
out, the sync finishes, and the inventory is exact."""
import signal
import time

import harness
from harness import StackTest, http, wait_until


class RedisOutageTest(StackTest):

    def test_redis_stall_mid_sync(self):
        s = self.make_stack(sim_config={"rate_limit": 0, "latency_ms": 30})
        s.add_account("nova-msp", customers=25, assets=3000, token="nova-key-1234567")
        s.add_tenant("nova")
        st, js, _ = s.connect("nova", "nova-msp", "nova-key-1234567")
        self.assertEqual(st, 201, js)

        s.wait_asset_page("nova", 10)
        s.redis_proc.send_signal(signal.SIGSTOP)
        stalled = time.time()
        try:
            # While Redis is away the gateway says so instead of hanging or crashing (once its
            # Redis timeout has run out: waited for, a loaded machine takes longer).
            st, js2, _ = wait_until(
                lambda: (lambda r: r if r[0] != 200 else None)(s.api("GET", "/v1/tenants/nova/integrations/syncro")),
                60, "the gateway noticing the Redis stall")
            self.assertEqual(st, 503, js2)
            self.assertIn("redis", js2["error"].lower())
            # The stall lasts 8 s at least, so that every service meets it mid-sync.
            time.sleep(max(0.0, stalled + 8 - time.time()))
        finally:
            s.redis_proc.send_signal(signal.SIGCONT)
        s.wait_synced("nova", js["job_id"], assets=3000, timeout=240)
        for svc in s.services:
            self.assertIsNone(svc.proc.poll(), "%s died during the Redis stall" % svc.name)
        assets = s.inventory("nova", "assets")
        self.assertEqual(len(assets), 3000)
        self.assertEqual(len({a["id"] for a in assets}), 3000)
        for f in s.fetchers:
            wait_until(lambda f=f: http("GET", f.url("/readyz"))[0] == 200, 30, "fetcher ready again")

    def test_first_request_after_the_server_dropped_the_connection(self):
        # Redis restarted, failed over or dropped idle clients: the gateway's connection is dead
        # but it only learns so from the next command. That request is answered (the command is
        # sent once more on a new connection), not failed with 503 "Server closed the connection".
        s = self.make_stack(sim_config={"rate_limit": 0})
        s.add_tenant("oslo")

        def drop_every_client():
            killed = int(s.redis_raw("CLIENT", "KILL", "TYPE", "normal").strip())
            self.assertGreaterEqual(killed, 1)  # the gateway's connection among them

        for _ in range(3):
            self.assertEqual(s.api("GET", "/v1/tenants/oslo")[0], 200)
            drop_every_client()
            st, js, _ = s.api("GET", "/v1/tenants/oslo")
            self.assertEqual(st, 200, js)
        # A write too: the secret is created once and stored.
        drop_every_client()
        st, js, _ = s.api("POST", "/v1/tenants/oslo/webhooks/mtp/secret", {})
        self.assertEqual(st, 201, js)
        self.assertEqual(s.redis_raw("EXISTS", "mspsync:{oslo}:webhook:mtp").strip(), "1")

if __name__ == "__main__":
    harness.main()
