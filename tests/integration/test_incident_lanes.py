#!/usr/bin/env python3
"""
Incidents do not wait behind a sync, and do not wait for a batch to fill.

- The webhook puts an incident on raw.events; the events normalizer consumes only that topic (its
  own group), so with the records normalizer stopped and the tenant's sync pages piling up on
  raw.records, the incident still becomes a ticket, and the events lane never read a sync page.
- A batch closes MSPSYNC_BATCH_MAX_WAIT_MS after its first message even while messages keep
  coming: with a batch size larger than the whole stream, incidents are normalized while the
  stream still runs (before, a batch closed only when full or after a 10 ms gap, so a dense
  stream waited for the batch to fill: seconds at a few hundred incidents per second).

No latency figure is asserted here (that is bench/tickets.sh); only orderings that a slow machine
cannot reverse.
"""
import os
import re
import signal
import subprocess

import ticketing as T
from harness import SANITIZER_MARKS, StackTest, http, main, wait_until


def metric(svc, name, label):
    st, text, _ = http("GET", svc.url("/metrics"))
    assert st == 200, (st, text)
    for line in text.splitlines():
        m = re.match(r"%s\{(.*)\} (\S+)$" % re.escape(name), line)
        if m and label in m.group(1):
            return float(m.group(2))
    return 0.0


class IncidentLanesTest(StackTest):
    def test_incident_becomes_a_ticket_while_sync_pages_wait(self):
        s = self.make_stack(sim_config={"rate_limit": 0}, lanes=True)
        secret = T.setup(s, orgs=2)
        records_nz = s.normalizer
        s.wait_normalized()

        # The records lane stops; a sync of 2,000 more assets piles up on raw.records.
        records_nz.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: records_nz.proc.poll() is None and records_nz.proc.send_signal(signal.SIGCONT))
        s.sim_admin("POST", "/_sim/accounts/%s/assets/generate" % T.SUB, {"count": 2000})
        before = sum(s.topic_end_offsets("raw.records").values())
        st, js, _ = s.api("POST", "/v1/tenants/%s/integrations/syncro/sync" % T.TENANT, {"types": ["assets"]})
        self.assertEqual(st, 202, js)
        wait_until(lambda: sum(s.topic_end_offsets("raw.records").values()) >= before + 2000, 180,
                   "the sync's pages on raw.records")

        inc = {"id": "lane-1", "org_id": "org-0001", "org_name": "Org One", "alert_type": "device_offline",
               "severity": "high", "status": "open", "subject": "WS-01", "title": "Device offline",
               "description": "WS-01 stopped reporting.", "occurred_at": "2026-12-06T06:00:00Z"}
        st, js, _ = T.post_incident(s, secret, inc)
        self.assertEqual(st, 202, js)
        wait_until(lambda: len(T.sim_tickets(s)) == 1, 120, "the incident's ticket")

        # The ticket did not need the records lane: the sync still waits there, untouched ...
        committed = s.group_committed("mspsync-normalizer", "raw.records") or 0
        self.assertLess(committed, before + 2000, "the records lane was stopped")
        # ... and the events lane never read a sync page (nor anything else on raw.records).
        self.assertIsNone(s.group_committed("mspsync-normalizer-events", "raw.records"))
        # (its offsets are committed by the consumer's 1 s auto-commit, after the ticket may exist)
        wait_until(lambda: (s.group_committed("mspsync-normalizer-events", "raw.events") or 0) > 0, 60,
                   "the events lane's commit on raw.events", interval=1.0)

        # Resumed, the records lane takes the whole sync; nothing was lost meanwhile.
        records_nz.proc.send_signal(signal.SIGCONT)
        s.wait_normalized(timeout=300)
        wait_until(lambda: len(s.inventory(T.TENANT, "assets")) == 2005, 120, "2,005 assets")
        self.assertEqual(s.kcat("dlq"), [])

    def test_dense_stream_is_normalized_while_it_runs(self):
        # One batch could take the whole stream: only the deadline closes it early.
        s = self.make_stack(sim_config={"rate_limit": 0}, lanes=True,
                            normalizer_env={"MSPSYNC_BATCH_SIZE": "100000"})
        secret = T.setup(s, orgs=5)
        events_nz = [svc for svc in s.services if svc.name == "normalizer-events"][0]
        args, log = T.mtp_args(s, secret, count=1200, rate=400, seed=5, orgs=5, concurrency=64)
        mtp = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=s.base_env())
        try:
            # While the stream still runs, incidents have already been normalized: several
            # batches closed on their deadline although the next message was always there.
            wait_until(lambda: mtp.poll() is not None or metric(
                events_nz, "mspsync_normalizer_batch_closes_total", 'reason="deadline"') >= 3,
                120, "deadline closes or the end of the stream")
            running = mtp.poll() is None
            normalized = sum(s.topic_end_offsets("incidents").values())
        finally:
            out, err = mtp.communicate(timeout=600)
        self.assertEqual(mtp.returncode, 0, (out, err[-2000:]))
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, err)
        self.assertTrue(running, "the stream ended before three batches closed on their deadline")
        self.assertGreater(normalized, 0, "nothing was normalized while the stream ran")
        # Every event still gets exactly the expected tickets.
        T.wait_exact(s, T.expected(T.read_log(log)), timeout=360)


if __name__ == "__main__":
    main()
