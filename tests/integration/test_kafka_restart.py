#!/usr/bin/env python3
"""The Kafka broker restarts in the middle of a sync: every service rides it out (no crash),
the sync finishes, and the inventory is exact."""
import os
import subprocess
import time

import harness
from harness import StackTest

KAFKA_SH = os.path.join(harness.SOURCE, "deploy/local/kafka.sh")


class KafkaRestartTest(StackTest):

    def test_broker_restart_mid_sync(self):
        s = self.make_stack(sim_config={"rate_limit": 0, "latency_ms": 30})
        s.add_account("mike-msp", customers=25, assets=3000, token="mike-key-1234567")
        s.add_tenant("mike")
        st, js, _ = s.connect("mike", "mike-msp", "mike-key-1234567")
        self.assertEqual(st, 201, js)

        s.wait_asset_page("mike", 10)
        subprocess.run([KAFKA_SH, "stop", "--dir", harness.KAFKA_DIR], check=True, timeout=60)
        time.sleep(5)
        out = subprocess.run([KAFKA_SH, "start", "--dir", harness.KAFKA_DIR], check=True, timeout=180,
                             capture_output=True, text=True)
        self.assertEqual(out.stdout.strip(), s.brokers, "the broker came back on another port")
        s.wait_synced("mike", js["job_id"], assets=3000, timeout=240)
        for svc in s.services:
            self.assertIsNone(svc.proc.poll(), "%s died during the broker restart" % svc.name)
        assets = s.inventory("mike", "assets")
        self.assertEqual(len({a["id"] for a in assets}), 3000)
        self.assertEqual(len(assets), 3000)


if __name__ == "__main__":
    harness.main()
