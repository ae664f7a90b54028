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
            return scheduled_by_tenant(s)
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
        # Each scheduled job was queued by exactly one replica, and the scheduled syncs ran to
        # completion.
        wait_queued_once(s)
        for t in tenants:
            wait_until(lambda t=t: s.status(t)["state"] == "Connected", 60, "%s connected" % t)

    def test_an_integration_is_scheduled_by_its_own_interval(self):
        # MSPSYNC_SCHEDULE_MINUTE_MS shrinks a minute of sync_interval_minutes to a second, so
        # 5 "minutes" pass in 5 s; the global interval (an hour) would schedule nothing here.
        minute_ms = 1000
        sched = {"MSPSYNC_SCHEDULE": "1", "MSPSYNC_SCHEDULE_CHECK_MS": "200",
                 "MSPSYNC_SCHEDULE_INTERVAL_MS": "3600000",
                 "MSPSYNC_SCHEDULE_MINUTE_MS": str(minute_ms)}
        s = self.make_stack(sim_config={"rate_limit": 0}, fetchers=2, fetcher_env=sched)
        for t in ("lima", "mike"):
            s.add_account(t + "-msp", customers=2, assets=10, token=t + "-key-123456")
            s.add_tenant(t)
        st, js, _ = s.api("PUT", "/v1/tenants/lima/integrations/syncro",
                          {"base_url": s.sim_base_url("lima-msp"), "api_key": "lima-key-123456",
                           "sync_interval_minutes": 5})
        self.assertEqual(st, 201, js)
        st, js, _ = s.connect("mike", "mike-msp", "mike-key-123456")
        self.assertEqual(st, 201, js)
        self.assertEqual(s.status("lima")["sync_interval_minutes"], 5)
        self.assertIsNone(s.status("mike")["sync_interval_minutes"])  # the global setting
        st, js, _ = s.api("PATCH", "/v1/tenants/mike/integrations/syncro", {"sync_interval_minutes": 7})
        self.assertEqual(st, 400, js)  # not one of the allowed intervals
        self.assertIn("5, 15, 30", js["error"])

        def scheduled_jobs():
            return scheduled_by_tenant(s)
        interval = 5 * minute_ms / 1000.0
        scheduled = wait_until(lambda: (lambda x: x if len(x["lima"]) >= 3 else None)(scheduled_jobs()),
                               4 * interval + 90, "lima re-synced three times on its interval",
                               interval=1)
        stamps = sorted(harness_ts(j["requested_at"]) for j in scheduled["lima"])
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        self.assertTrue(all(g >= interval * 0.9 for g in gaps), "lima scheduled early: gaps %r" % gaps)
        self.assertEqual(scheduled["mike"], [])  # on the hour-long global interval
        # each scheduled job was queued by one replica only (both check every 200 ms)
        wait_queued_once(s)


def scheduled_by_tenant(s):
    """The scheduled jobs on sync.jobs, per tenant."""
    scheduled = collections.defaultdict(list)
    for l in s.kcat("sync.jobs"):
        j = json.loads(l.split("\t", 1)[1])
        if j["reason"] == "schedule":
            scheduled[j["tenant"]].append(j)
    return scheduled


def wait_queued_once(s):
    """Each scheduled job was queued by exactly one replica (each logs what it queued). The logs
    and the topic are read one after the other: read again until they agree, for a job queued in
    between."""
    def agree():
        queued_by = [f.logtext().count('"schedule.queued"') for f in s.fetchers]
        return sum(queued_by) == sum(len(v) for v in scheduled_by_tenant(s).values())
    wait_until(agree, 60, "each scheduled job logged by exactly one replica", interval=0.5)


def harness_ts(text):
    return time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + text[19:23])


if __name__ == "__main__":
    harness.main()
