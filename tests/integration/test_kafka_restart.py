#!/usr/bin/env python3
"""The Kafka broker restarts in the middle of a sync: every service rides it out (no crash),
the sync finishes, and the inventory is exact."""
import time

import harness
from harness import StackTest


class KafkaRestartTest(StackTest):

    def test_broker_restart_mid_sync(self):
        # The broker is stopped: a broker of this test's own, not the one the others share.
        s = self.make_stack(own_broker=True, sim_config={"rate_limit": 0, "latency_ms": 30})
        s.add_account("mike-msp", customers=25, assets=3000, token="mike-key-1234567")
        s.add_tenant("mike")
        st, js, _ = s.connect("mike", "mike-msp", "mike-key-1234567")
        self.assertEqual(st, 201, js)

        s.wait_asset_page("mike", 10)
        s.stop_broker()
        time.sleep(5)  # the outage: the services see the broker gone for a while
        self.assertEqual(s.start_broker(), s.brokers, "the broker came back on another port")
        s.wait_synced("mike", js["job_id"], assets=3000, timeout=240)
        for svc in s.services:
            self.assertIsNone(svc.proc.poll(), "%s died during the broker restart" % svc.name)
        assets = s.inventory("mike", "assets")
        self.assertEqual(len({a["id"] for a in assets}), 3000)
        self.assertEqual(len(assets), 3000)


if __name__ == "__main__":
    harness.main()
