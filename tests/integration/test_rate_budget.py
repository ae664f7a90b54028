#!/usr/bin/env python3
"""Two fetcher replicas syncing one Syncro account share its rate-limit bucket in Redis: the
fleet stays inside the budget (the simulator never answers 429) and both replicas do work."""
import re

import harness
from harness import StackTest, http, wait_until

PARTITIONS = 6
# Simulator: 30 requests per 3 s per account. Our bucket: 8/s, burst 2 → at most 2 + 24 = 26
# requests in any 3 s window, below the simulator's limit.
SIM_LIMIT, SIM_WINDOW_MS = 30, 3000


def tenants_covering_partitions(n_per_partition=1):
    """Tenant ids whose sync.jobs partitions cover every partition, so that whatever the
    assignment, each replica owns at least one tenant."""
    chosen, per = [], {}
    i = 0
    while len(chosen) < PARTITIONS * n_per_partition:
        t = "budget%d" % i
        p = harness.kafka_partition(t, PARTITIONS)
        if per.get(p, 0) < n_per_partition:
            per[p] = per.get(p, 0) + 1
            chosen.append(t)
        i += 1
    return chosen


def requests_of(fetcher):
    st, text, _ = http("GET", fetcher.url("/metrics"))
    total = 0
    for line in text.split("\n"):
        if line.startswith("mspsync_fetcher_requests_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class RateBudgetTest(StackTest):

    def test_two_replicas_share_one_account_budget(self):
        budget = {"MSPSYNC_SYNCRO_RATE_MILLI": "8000", "MSPSYNC_SYNCRO_BURST": "2"}
        s = self.make_stack(sim_config={"rate_limit": SIM_LIMIT, "rate_window_ms": SIM_WINDOW_MS,
                                        "retry_after": True},
                            fetchers=2, fetcher_env=budget, gateway_env=budget)
        # Both replicas must own partitions before the jobs are queued.
        for f in s.fetchers:
            wait_until(lambda f=f: http("GET", f.url("/readyz"))[0] == 200, 90, "%s ready" % f.name)
        s.add_account("shared-msp", customers=10, assets=300, token="shared-key-123456")
        tenants = tenants_covering_partitions()
        jobs = {}
        for t in tenants:
            s.add_tenant(t)
            st, js, _ = s.connect(t, "shared-msp", "shared-key-123456")
            self.assertEqual(st, 201, js)
            jobs[t] = js["job_id"]
        for t in tenants:
            s.wait_synced(t, jobs[t], assets=300, timeout=300)
        stats = s.sim_stats()
        acct = stats["accounts"]["shared-msp"]
        # 6 tenants x (1 customer page + 6 asset pages) + 6 /me checks
        self.assertGreaterEqual(acct["requests"], 6 * 7)
        self.assertEqual(stats["status"].get("429", 0), 0, stats)
        self.assertLessEqual(acct["max_in_window"], SIM_LIMIT)
        per_replica = [requests_of(f) for f in s.fetchers]
        self.assertTrue(all(n > 0 for n in per_replica), "a replica did no work: %r" % per_replica)


if __name__ == "__main__":
    harness.main()
