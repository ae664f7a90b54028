#!/usr/bin/env python3
"""
Topic sizing for horizontal scaling: with MSPSYNC_KAFKA_TOPIC_PARTITIONS=12 (and
MSPSYNC_KAFKA_TOPIC_MIN_INSYNC=1) the services create their topics with 12 partitions (and that
min.insync.replicas), and 8 fetcher replicas in one group each own some of sync.jobs
and each run jobs: twelve tenants whose keys fall on the twelve partitions all sync.
"""
import re
import subprocess

import harness
from harness import Stack, StackTest, http, wait_until

PARTITIONS = 12
FETCHERS = 8


def metric(svc, name):
    """Sum of every series of a metric on svc's /metrics (0 when absent)."""
    st, text, _ = http("GET", svc.url("/metrics"))
    assert st == 200, st
    return sum(float(m.group(1)) for m in
               re.finditer(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M))


def tenants_on_every_partition():
    """One tenant name per partition of sync.jobs (the gateway keys jobs by tenant)."""
    by_part, i = {}, 0
    while len(by_part) < PARTITIONS:
        name = "tenant-%02d" % i
        by_part.setdefault(harness.kafka_partition(name, PARTITIONS), name)
        i += 1
    return sorted(by_part.values())


class KafkaPartitionsTest(StackTest):
    def test_twelve_partitions_spread_jobs_over_eight_fetchers(self):
        self.stack = s = Stack(self.id().split(".")[-1],
                               kafka_env={"MSPSYNC_KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
                                          "MSPSYNC_KAFKA_TOPIC_MIN_INSYNC": "1"})
        s.partitions = PARTITIONS
        self.addCleanup(self._teardown)
        s.start_all(sim_config={"rate_limit": 0}, fetchers=FETCHERS)
        s.wait_topic("sync.jobs")  # 12 partitions, each with a leader
        out = subprocess.run([harness.KAFKA_SH, "topics", "--dir", s.kafka_dir, "--", "--describe",
                              "--topic", s.topic("sync.jobs")], capture_output=True, text=True,
                             timeout=120)
        self.assertIn("PartitionCount: %d" % PARTITIONS, out.stdout, out.stderr)
        self.assertIn("min.insync.replicas=1", out.stdout)

        def spread():
            owned = [metric(f, "mspsync_fetcher_assigned_partitions") for f in s.fetchers]
            return all(n > 0 for n in owned) and sum(owned) == PARTITIONS and owned
        owned = wait_until(spread, 90, "every fetcher owning sync.jobs partitions")
        self.assertEqual(sum(owned), PARTITIONS)

        jobs = {}
        for i, tenant in enumerate(tenants_on_every_partition()):
            token = "sk-" + harness.rand_id(20)
            s.add_account("sub-%d" % i, customers=3, assets=10, token=token)
            s.add_tenant(tenant)
            st, js, _ = s.connect(tenant, "sub-%d" % i, token)
            self.assertEqual(st, 201, js)
            jobs[tenant] = js["job_id"]
        for tenant, job in jobs.items():
            s.wait_synced(tenant, job, assets=10)
        done = [metric(f, "mspsync_fetcher_jobs_total") for f in s.fetchers]
        self.assertEqual(sum(done), PARTITIONS, done)
        self.assertTrue(all(n > 0 for n in done), "a fetcher ran no job: %r" % done)


if __name__ == "__main__":
    harness.main()
