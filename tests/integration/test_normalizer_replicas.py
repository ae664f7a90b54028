"""
Two normalizer replicas in one consumer group (the way the records lane scales to both cores,
docs/design.md): each tenant's raw.records partition has one consumer, so each tenant has one
writer, and the inventory comes out exactly as one normalizer would make it — merges across
vendors, a shared dock MAC demoted, no asset lost or doubled — also when one replica is killed
(SIGKILL) mid-stream and its partitions move to the other, and when it comes back.
"""
import json
import re
import unittest
import urllib.request

from harness import Stack, http, wait_until
from cwrmm import all_assets, k
from test_identity import cwrmm, produce_raw, sources, syncro

TENANTS = ["rep%02d" % i for i in range(12)]   # over the 6 partitions: both replicas get tenants
LAPTOPS = 40


def tenant_records(t, n):
    """Laptops of tenant t (index n): each a Syncro asset; every 4th also in ConnectWise RMM
    (same serial and MAC: one asset, two sources); the first 5 share a dock MAC (more holders
    than MSPSYNC_IDENTITY_MAX_SHARED=3: no key)."""
    dock = "3C:18:A0:D1:%02X:01" % n
    recs, want = [], {}
    for i in range(LAPTOPS):
        num, serial = 10000 * (n + 1) + i, "RP%02d%04d" % (n, i)
        mac = "A4:BB:6D:%02X:%02X:%02X" % (n, i // 256, i % 256)
        recs.append(syncro(num, serial, [mac] + ([dock] if i < 5 else [])))
        members = ["syncro:%d" % num]
        if i % 4 == 0:
            uuid = "00000000-0000-4000-8000-%012d" % num
            recs.append(cwrmm(uuid, serial, [mac]))
            members.append("cwrmm:" + uuid)
        want["syncro:%d" % num] = sorted(members)
    return recs, want


def records_done(svc):
    text = urllib.request.urlopen(svc.url("/metrics"), timeout=5).read().decode()
    return sum(float(v) for v in re.findall(r'^mspsync_normalizer_records_total\{[^}]*\} (\S+)$',
                                            text, re.M))


class NormalizerReplicasTest(unittest.TestCase):
    def setUp(self):
        self.s = Stack("normalizer_replicas")
        self.s.start_redis()
        self.s.mark_state()  # no gateway here: the marker its first start sets
        env = dict(MSPSYNC_IDENTITY_MAX_SHARED=3, MSPSYNC_BATCH_SIZE=50)
        self.a = self.s.start_normalizer(**env)
        self.b = self.s.start_normalizer(name="normalizer-2", **env)
        self.env = env

    def tearDown(self):
        assert self.s.stop_all() == [], "a service failed; see %s" % self.s.dir

    def produce(self, by_tenant):
        produce_raw(self.s, by_tenant)

    def both_assigned(self):
        def assigned(svc):
            m = re.findall(r'"kafka.assigned","msg":"(\d+) partition', svc.logtext())
            return m and int(m[-1]) > 0
        wait_until(lambda: assigned(self.a) and assigned(self.b), 60, "both replicas own partitions")

    def test_two_replicas_one_killed_and_back_make_the_same_inventory(self):
        self.both_assigned()
        recs, want = {}, {}
        for n, t in enumerate(TENANTS):
            recs[t], want[t] = tenant_records(t, n)
        first = {t: r[:len(r) // 3] for t, r in recs.items()}
        second = {t: r[len(r) // 3:2 * len(r) // 3] for t, r in recs.items()}
        third = {t: r[2 * len(r) // 3:] for t, r in recs.items()}

        self.produce(first)
        self.s.wait_normalized()
        done = (records_done(self.a), records_done(self.b))
        self.assertTrue(all(d > 0 for d in done), "a replica did no work: %r" % (done,))

        # One replica dies mid-stream: its partitions move to the other after the session
        # timeout, and what it had not committed is replayed there.
        self.produce(second)
        wait_until(lambda: records_done(self.b) > done[1], 60, "replica 2 at work on the second third")
        self.b.kill9()
        self.s.services.remove(self.b)
        self.s.wait_normalized(timeout=180)

        self.b = self.s.start_normalizer(name="normalizer-2", **self.env)   # it comes back
        self.both_assigned()
        self.produce(third)
        self.s.wait_normalized(timeout=180)

        for t in TENANTS:
            got = {aid: sources(a) for aid, a in all_assets(self.s, t).items()}
            self.assertEqual(got, want[t], "tenant %s" % t)
            self.assertIsNone(self.s.redis("HGET", k(t, "inv:mkey"),
                                           "mac:3C:18:A0:D1:%02X:01" % TENANTS.index(t)))
        # What went out on `assets`: per asset the last record, the same members.
        last = {}
        for line in self.s.kcat("assets", fmt="%k\t%s\n"):
            key, _, val = line.partition("\t")
            last[key] = json.loads(val) if val else None
        for t in TENANTS:
            pub = {key.split("/", 1)[1]: sources(r) for key, r in last.items()
                   if key.startswith(t + "/") and r}
            self.assertEqual(pub, want[t], "published, tenant %s" % t)


class PausedPartitionsTest(unittest.TestCase):
    """librdkafka keeps a partition's pause across a revoke and a new assignment. A replica that
    paused its partitions (its batches waiting for the state) and lost half of them to a joining
    replica before it resumed had those half come back paused when the other replica died: it
    consumed nothing more from them, for good (the hang this file's first test met now and then
    when the rebuild at start retried while the second replica joined)."""

    def setUp(self):
        self.s = Stack("normalizer_paused")
        self.s.start_redis()
        self.s.mark_state()
        self.env = dict(MSPSYNC_BATCH_SIZE=50)
        self.a = self.s.start_normalizer(**self.env)

    def tearDown(self):
        assert self.s.stop_all() == [], "a service failed; see %s" % self.s.dir

    def batch(self, start):
        """A few laptops of every tenant (every partition of raw.records gets some)."""
        return {t: tenant_records(t, n)[0][start:start + 4] for n, t in enumerate(TENANTS)}

    def assigned_count(self, svc):
        m = re.findall(r'"kafka.assigned","msg":"(\d+) partition', svc.logtext())
        return int(m[-1]) if m else 0

    def readyz(self, svc):
        st, body, _ = http("GET", svc.url("/readyz"))
        return st, json.dumps(body) if not isinstance(body, str) else body

    def test_partitions_paused_before_a_rebalance_are_consumed_when_they_come_back(self):
        wait_until(lambda: self.assigned_count(self.a) == 12, 60, "replica 1 owns every partition")
        wait_until(lambda: self.readyz(self.a)[0] == 200, 60, "replica 1 ready (state checked)")
        self.s.redis("DEL", "mspsync:{_}:state:epoch")   # batches wait: partitions paused
        produce_raw(self.s, self.batch(0))
        wait_until(lambda: "configuration restore" in self.readyz(self.a)[1], 60,
                   "replica 1 waiting for the state, its partitions paused")

        b = self.s.start_normalizer(name="normalizer-2", **self.env)   # takes half of them
        wait_until(lambda: self.assigned_count(self.a) == 6 and self.assigned_count(b) == 6, 90,
                   "the partitions split between the replicas")
        self.s.mark_state()   # both go on: each resumes what it owns now
        self.s.wait_normalized(timeout=120)

        b.kill9()   # its half goes back to replica 1, which had paused it
        self.s.services.remove(b)
        produce_raw(self.s, self.batch(4))
        wait_until(lambda: self.assigned_count(self.a) == 12, 120, "replica 1 owns every partition")
        self.s.wait_normalized(timeout=120)


if __name__ == "__main__":
    unittest.main()
