#!/usr/bin/env python3
"""Scheduled incremental syncs: every tenant is synced again on its interval, and two fetcher
replicas never queue the same tenant twice in one interval."""
import collections
import json
import time

import harness
from harness import StackTest, http, wait_until

INTERVAL_MS = 4000


class ScheduleTest(StackTest):

    def test_two_replicas_schedule_each_tenant_once_per_interval(self):
        sched = {"MSPSYNC_SCHEDULE": "1", "MSPSYNC_SCHEDULE_CHECK_MS": "200",
                 "MSPSYNC_SCHEDULE_INTERVAL_MS": str(INTERVAL_MS)}
        s = self.make_stack(sim_config={"rate_limit": 0}, fetchers=2, fetcher_env=sched)
        tenants = ["india", "juliet", "kilo"]
        for t in tenants:
            s.add_account(t + "-msp", customers=3, assets=40, token=t + "-key-123456")
            s.add_tenant(t)
            st, js, _ = s.connect(t, t + "-msp", t + "-key-123456")
            self.assertEqual(st, 201, js)
            # Any job: with a schedule every few seconds a scheduled sync may finish (and become
            # the status's job) before this poll sees the saved integration's own job.
            s.wait_synced(t, None, assets=40)

        def scheduled_jobs():
            scheduled = collections.defaultdict(list)
            for l in s.kcat("sync.jobs"):
                j = json.loads(l.split("\t", 1)[1])
                if j["reason"] == "schedule":
                    scheduled[j["tenant"]].append(j)
            return scheduled
        # Every tenant re-synced on schedule, twice at least (waited for, not slept: a loaded
        # machine runs the syncs late, never early).
        scheduled = wait_until(lambda: (lambda x: x if all(len(x[t]) >= 2 for t in tenants) else None)
                               (scheduled_jobs()), 3 * INTERVAL_MS / 1000.0 + 120,
                               "every tenant re-synced twice on schedule", interval=1)
        for t in tenants:
            runs = scheduled[t]
            stamps = sorted(harness_ts(j["requested_at"]) for j in runs)
            gaps = [b - a for a, b in zip(stamps, stamps[1:])]
            self.assertTrue(all(g >= INTERVAL_MS / 1000.0 * 0.9 for g in gaps),
                            "tenant %s scheduled twice within one interval: gaps %r" % (t, gaps))
        # Each scheduled job was queued by exactly one replica (each logs what it queued),
        # and the scheduled syncs ran to completion.
        # (the logs and the topic are read one after the other: read again until they agree, for
        # a job queued in between)
        def agree():
            queued_by = [f.logtext().count('"schedule.queued"') for f in s.fetchers]
            return sum(queued_by) == sum(len(v) for v in scheduled_jobs().values())
        wait_until(agree, 60, "each scheduled job logged by exactly one replica", interval=0.5)
        for t in tenants:
            wait_until(lambda t=t: s.status(t)["state"] == "Connected", 60, "%s connected" % t)


def harness_ts(text):
    return time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + text[19:23])


if __name__ == "__main__":
    harness.main()
