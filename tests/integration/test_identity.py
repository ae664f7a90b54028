"""
One asset per machine, with identities that stay identities (docs/design.md, "One asset per
machine"): the normalizer alone on a real broker and Redis, fed raw.records envelopes directly.
- 100 laptops that share one USB-Ethernet dock MAC stay 100 assets; the one laptop that is also in
  ConnectWise RMM (same serial and manufacturer, same MAC) is still one asset with both sources;
- MACs of virtual adapters (Hyper-V, VMware, Docker) and placeholder serials merge nothing;
- an asset glued by a key that later crosses the threshold (MSPSYNC_IDENTITY_MAX_SHARED=3) is split
  into exactly the assets the members' remaining keys give, published on `assets`, and the split
  sends nothing to date.changes (no write-back).
"""
import json
import subprocess
import unittest

from harness import Stack, wait_until
from cwrmm import all_assets, k

DOCK = "3C:18:A0:D0:C0:01"   # a real (universally administered) vendor MAC on every laptop


def syncro(num, serial, macs, manufacturer="Dell Inc.", purchase=None):
    props = {"kabuto_information": {
        "general": {"serial_number": serial, "manufacturer": manufacturer, "model": "Latitude 7440"},
        "network_adapters": [{"physical_address": m} for m in macs]}}
    if purchase:
        props["Purchase Date"] = purchase
    return ("syncro", str(num), {"id": num, "name": "LT-%d" % num, "customer_id": 1,
                                 "asset_type": "Laptop", "asset_serial": serial,
                                 "properties": props, "updated_at": "2026-01-01T00:00:00Z"})


def cwrmm(uuid, serial, macs, manufacturer="Dell Inc.", purchase=None):
    cfv = [{"name": "Purchase Date", "value": purchase}] if purchase else []
    return ("cwrmm", uuid, {"endpointID": uuid, "friendlyName": "cw-" + uuid[:8],
                            "system": {"serialNumber": serial, "model": "Latitude 7440"},
                            "baseboard": {"manufacturer": manufacturer},
                            "macAddress": [m.replace(":", "-").lower() for m in macs],
                            "companyID": "c1", "siteID": "s1", "modifiedAt": "2026-01-01T00:00:00Z",
                            "customFieldValues": cfv})


def produce_raw(stack, by_tenant):
    """The (integration, source id, payload) records of each tenant on raw.records, as the fetcher
    wraps them (one job per tenant)."""
    lines = []
    for tenant, records in by_tenant.items():
        for integration, sid, payload in records:
            env = {"schema_version": 1, "kind": "record", "tenant": tenant, "integration": integration,
                   "type": "asset", "job_id": "job-" + tenant, "fetched_at": "2026-01-02T00:00:00.000Z",
                   "payload": payload, "source_id": sid}
            lines.append("%s\t%s" % (tenant, json.dumps(env, separators=(",", ":"))))
    subprocess.run(["kcat", "-P", "-K", "\t", "-b", stack.brokers, "-t", stack.topic("raw.records")],
                   input="\n".join(lines) + "\n", text=True, check=True, timeout=60)


def sources(asset):
    return sorted("%s:%s" % (s["integration"], s["id"]) if isinstance(s, dict) else s
                  for s in asset["sources"])


class IdentityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack("identity")
        cls.s.start_redis()
        cls.s.mark_state()  # no gateway here: the marker its first start sets
        cls.s.start_normalizer(MSPSYNC_IDENTITY_MAX_SHARED=3, MSPSYNC_BATCH_SIZE=50)

    @classmethod
    def tearDownClass(cls):
        assert cls.s.stop_all() == [], "a service failed; see %s" % cls.s.dir

    def produce(self, tenant, records):
        produce_raw(self.s, {tenant: records})
        self.s.wait_normalized()

    def date_changes(self, tenant):
        return [l for l in self.s.kcat("date.changes") if l.startswith(tenant + "/")]

    def published(self, tenant):
        """The last record of each asset on the `assets` topic (None = tombstone)."""
        last = {}
        for line in self.s.kcat("assets", fmt="%k\t%s\n"):
            key, _, val = line.partition("\t")
            if key.startswith(tenant + "/"):
                last[key.split("/", 1)[1]] = json.loads(val) if val else None
        return last

    def members(self, tenant):
        return {aid: sources(a) for aid, a in all_assets(self.s, tenant).items()}

    def test_hundred_laptops_on_one_dock_stay_hundred_assets(self):
        t = "dock"
        recs = [syncro(1000 + i, "DK%05d" % i, ["A4:BB:6D:00:%02X:%02X" % (i // 256, i % 256), DOCK])
                for i in range(100)]
        # Laptop 7 is also in ConnectWise RMM: same serial (its maker spelled otherwise) and MAC.
        cw = cwrmm("7f1c0a52-0000-4000-8000-000000000007", "DK00007",
                   ["A4:BB:6D:00:00:07", DOCK], manufacturer="DELL")
        self.produce(t, recs[:50] + [cw] + recs[50:])
        got = self.members(t)
        self.assertEqual(len(got), 100, got)
        self.assertEqual(got["syncro:1007"], sorted(["syncro:1007", "cwrmm:" + cw[1]]))
        for i in range(100):
            if i != 7:
                self.assertEqual(got["syncro:%d" % (1000 + i)], ["syncro:%d" % (1000 + i)])
        self.assertIsNone(self.s.redis("HGET", k(t, "inv:mkey"), "mac:" + DOCK))
        self.assertEqual(self.s.redis("HGET", k(t, "inv:ksrc"), "mac:" + DOCK), "!")
        pub = self.published(t)
        self.assertEqual({a: sources(r) for a, r in pub.items() if r}, got)
        self.assertEqual(self.date_changes(t), [])

    def test_virtual_adapter_macs_and_placeholder_serials_merge_nothing(self):
        t = "virt"
        recs = [
            syncro(2001, "XXXXXXXXXX", ["00:15:5D:0A:0B:01"]),               # Hyper-V vNIC
            syncro(2002, "XXXXXXXXXX", ["00:15:5D:0A:0B:01"]),
            syncro(2003, "1234567890", ["00:50:56:C0:00:08"]),               # VMware host adapter
            syncro(2004, "1234567890", ["00:50:56:C0:00:08"]),
            syncro(2005, "Default string", ["02:42:AC:11:00:02"]),           # Docker bridge
            syncro(2006, "Default string", ["02:42:AC:11:00:02"]),
            cwrmm("00000000-0000-4000-8000-000000002007", "1111111111", ["00:05:9A:3C:7A:00"]),
            cwrmm("00000000-0000-4000-8000-000000002008", "1111111111", ["00:05:9A:3C:7A:00"]),
        ]
        self.produce(t, recs)
        got = self.members(t)
        self.assertEqual(len(got), 8, got)
        self.assertTrue(all(len(m) == 1 for m in got.values()), got)
        self.assertEqual(self.s.redis("HLEN", k(t, "inv:mkey")), 0)

    def test_key_crossing_the_threshold_splits_the_asset_without_writeback(self):
        t = "split"
        b_cw = "00000000-0000-4000-8000-00000000b0b0"
        # A, B and B' (B in ConnectWise RMM) carry the dock MAC: two holders, still a key, so
        # all three are one asset. A's and B''s purchase dates disagree: a settled conflict.
        self.produce(t, [syncro(3001, "SPLITA", ["A4:BB:6D:01:00:0A", DOCK], purchase="2020-01-01"),
                         syncro(3002, "SPLITB", ["A4:BB:6D:01:00:0B", DOCK]),
                         cwrmm(b_cw, "SPLITB", ["A4:BB:6D:01:00:0B"], purchase="2021-06-01")])
        self.assertEqual(self.members(t), {"syncro:3001": ["cwrmm:" + b_cw, "syncro:3001", "syncro:3002"]})
        wait_until(lambda: len(self.date_changes(t)) >= 1, 30, "the settled conflict on date.changes")
        changes = self.date_changes(t)
        self.assertEqual(len(changes), 1, changes)

        # C is the third holder (joins); E the fourth: the dock MAC is no key any more and the
        # asset it glued falls apart into what the remaining keys hold together.
        self.produce(t, [syncro(3003, "SPLITC", ["A4:BB:6D:01:00:0C", DOCK]),
                         syncro(3005, "SPLITE", ["A4:BB:6D:01:00:0E", DOCK])])
        want = {"syncro:3001": ["syncro:3001"],
                "cwrmm:" + b_cw: ["cwrmm:" + b_cw, "syncro:3002"],
                "syncro:3003": ["syncro:3003"],
                "syncro:3005": ["syncro:3005"]}
        self.assertEqual(self.members(t), want)
        for aid, m in want.items():
            self.assertEqual(sorted(self.s.redis_raw("SMEMBERS", k(t, "inv:members:" + aid)).split()), m)
            for src in m:
                self.assertEqual(self.s.redis("HGET", k(t, "inv:link"), src), aid)
        pub = self.published(t)
        self.assertEqual({a: sources(r) for a, r in pub.items() if r}, want)
        assets = all_assets(self.s, t)
        self.assertEqual(assets["syncro:3001"]["dates"]["purchase"], {"value": "2020-01-01", "source": "syncro"})
        self.assertEqual(assets["cwrmm:" + b_cw]["dates"]["purchase"], {"value": "2021-06-01", "source": "cwrmm"})
        self.assertEqual(self.date_changes(t), changes)   # the split wrote back nothing


if __name__ == "__main__":
    unittest.main(verbosity=2)
