#!/usr/bin/env python3
"""429, 5xx, timeouts, resets and malformed pages are retried; a record that can never be
parsed is dead-lettered with its reason; nothing is silently dropped."""
import json

import harness
from harness import StackTest


class FaultsTest(StackTest):

    def test_transient_faults_are_retried_and_poison_is_dead_lettered(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        s.add_account("golf-msp", customers=12, assets=500, token="golf-key-1234567")
        s.sim_admin("POST", "/_sim/accounts/golf-msp/poison")
        s.add_tenant("golf")
        # Validate the key first, then break the next requests in every way the vendor can.
        s.sim_config({"ratelimit_next": 2, "fail_next": 2, "fail_status": 503})
        st, js, _ = s.connect("golf", "golf-msp", "golf-key-1234567")
        if st == 502:  # the /me call itself met a fault: the gateway says so clearly; try again
            self.assertIn("Syncro", js["error"])
            s.sim_config({"ratelimit_next": 0, "fail_next": 0})
            st, js, _ = s.connect("golf", "golf-msp", "golf-key-1234567")
        self.assertEqual(st, 201, js)
        s.sim_config({"malformed_next": 2, "reset_next": 1, "hang_next": 1, "hang_ms": 5000,
                      "ratelimit_next": 2, "fail_next": 2, "fail_status": 500})
        s.wait_synced("golf", js["job_id"], assets=500, timeout=240)
        stats = s.sim_stats()
        self.assertGreaterEqual(stats["status"].get("429", 0), 2)
        self.assertGreaterEqual(stats["status"].get("500", 0) + stats["status"].get("503", 0), 2)
        s.wait_normalized()
        # Every record the fetcher saw is accounted for: 500 good assets + 1 poison.
        raw = [json.loads(l.split("\t", 1)[1]) for l in s.kcat("raw.records")]
        asset_ids = {json.dumps(r["payload"]["id"]) for r in raw if r.get("kind") == "record" and r["type"] == "asset"}
        self.assertEqual(len(asset_ids), 501)
        self.assertEqual(len(s.inventory("golf", "assets")), 500)
        dlq = s.kcat("dlq", fmt="%h\t%s\n")
        self.assertEqual(len(dlq), 1, dlq)
        headers, value = dlq[0].split("\t", 1)
        self.assertIn("x-dlq-reason=", headers)
        self.assertIn("not-a-number", headers)
        self.assertIn("x-dlq-service=normalizer", headers)
        self.assertEqual(json.loads(value)["payload"]["id"], "not-a-number")

        # The dead letter can be inspected and replayed to its source topic with one command;
        # the record still cannot be mapped, so the normalizer dead-letters it again.
        rc, out, err = s.dlq_tool("list")
        self.assertEqual(rc, 0, err)
        listed = [json.loads(l) for l in out.splitlines()]
        self.assertEqual(len(listed), 1)
        self.assertIn("not-a-number", listed[0]["reason"])
        self.assertEqual(listed[0]["source-topic"], s.topic("raw.records"))
        rc, out, err = s.dlq_tool("replay")
        self.assertEqual((rc, out.strip()), (0, "replayed=1 skipped=0"), err)
        harness.wait_until(lambda: len(s.kcat("dlq")) == 2, 60, "the replayed record dead-lettered again")
        # A second replay takes only what arrived since: never the same record twice.
        rc, out, err = s.dlq_tool("replay")
        self.assertEqual((rc, out.strip()), (0, "replayed=1 skipped=0"), err)
        harness.wait_until(lambda: len(s.kcat("dlq")) == 3, 60, "third dead letter")
        self.assertEqual(len(s.inventory("golf", "assets")), 500)


if __name__ == "__main__":
    harness.main()
