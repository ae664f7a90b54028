#!/usr/bin/env python3
"""kill -9 of the normalizer while it works through a sync, then restart: the inventory ends
exact — every asset once, none missing, none wrongly marked gone — because a batch's offsets
are stored only after its outputs are in Kafka and its writes in Redis."""
import collections
import json
import time

import harness
from harness import StackTest, wait_until


def processed(normalizer):
    return harness.metric_total(normalizer, "mspsync_normalizer_records_total")


class NormalizerKillTest(StackTest):

    def test_kill9_mid_stream_then_restart_keeps_the_inventory_exact(self):
        s, js = self.make_backlog(4000)  # raw.records piles up, so the kills land mid-stream
        # Every page is in Kafka but nothing is in the inventory yet: the status says so
        # instead of claiming Connected.
        st = wait_until(lambda: (lambda x: x if x["inventory_pending"] else None)(s.status("lima")),
                        120, "fetch finished, inventory pending")
        self.assertEqual(st["state"], "Syncing")
        self.assertEqual(st["counts"]["assets"], 0)
        total = sum(s.topic_end_offsets("raw.records").values())
        mid_stream = 0
        for round_ in range(3):
            s.restart(s.normalizer)
            wait_until(lambda: processed(s.normalizer) >= 300, 60, "normalizer started working",
                       interval=0.05)
            s.normalizer.kill9()
            committed = s.group_committed("mspsync-normalizer", "raw.records") or 0
            if committed < total:
                mid_stream += 1
        self.assertGreater(mid_stream, 0, "no kill landed before the end of raw.records")
        s.restart(s.normalizer)
        st = s.wait_synced("lima", js["job_id"], assets=4000, timeout=180)
        self.assertEqual(st["counts"]["customers"], 20)
        self.assertEqual(st["counts"]["assets_gone"], 0)
        s.wait_normalized()
        assets = s.inventory("lima", "assets", include_gone=1)
        self.assertEqual(len(assets), 4000)
        self.assertEqual(len({a["id"] for a in assets}), 4000)
        self.assertFalse(any(a["gone"] for a in assets))
        keys = collections.Counter(l.split("\t")[0] for l in s.kcat("assets"))
        self.assertEqual(len(keys), 4000)  # re-produced after a kill is allowed, lost is not
        self.assertEqual(s.kcat("dlq"), [])


if __name__ == "__main__":
    harness.main()
