#!/usr/bin/env python3
"""The inventory, the write-back's echo guard and the configuration come back after Redis is lost,
without an operator, while syncs and date edits flow.

One tenant with Syncro and ConnectWise RMM integrations (ten machines in both, merged into one
asset each), both opted into the date write-back; dates edited in the app are written to both
vendors. Then Redis is lost:
- wiped (FLUSHALL) under the running services, edits made while the configuration is restored;
- replaced by an empty server on the same port in the middle of a full sync of Syncro.
Afterwards, each time: the inventory the API answers equals the one before plus the edits (the
normalizer rebuilt it from the compacted topics), the sync job completes and new syncs of both
integrations succeed (configuration and sealed credentials restored), and every date was written
to each vendor exactly once — re-syncing reads our own writes back and changes nothing (the echo
guard was rebuilt from date.changes; an edit from before the loss is not written again).
"""
import json
import os
import subprocess

import unittest

import harness
from harness import Stack, http, wait_until
import cwrmm
from cwrmm import k

T = "wz"
PARTNER = "pwz"
WB = {"purchase_date": True, "warranty_expires": True}


class RedisWipeSyncTest(unittest.TestCase):
    def setUp(self):
        self.s = Stack(self.id().split(".")[-1])
        cwrmm.start_dates_stack(self.s)
        self.edits = {}

    def tearDown(self):
        self.assertEqual(self.s.stop_all(), [])

    # ---- helpers ---------------------------------------------------------------------------

    def api(self, method, path, body=None, timeout=90):
        """The answer of a call, asked again while the gateway answers 503 (restoring)."""
        def go():
            st, js, h = self.s.api(method, path, body)
            return None if st == 503 else (st, js, h)
        return wait_until(go, timeout, "%s %s answered" % (method, path), interval=0.3)

    def edit(self, aid, purchase, warranty):
        st, js, _ = self.api("PUT", "/v1/tenants/%s/assets/%s/dates" % (T, aid),
                             {"purchase_date": purchase, "warranty_expires": warranty})
        self.assertEqual(st, 202, js)
        self.edits[aid] = (purchase, warranty)

    def inventory(self):
        out = {}
        for kind in ("customers", "assets"):
            items, page = [], 1
            while True:
                st, js, _ = self.api("GET", "/v1/tenants/%s/%s?page=%d&per_page=500" % (T, kind, page))
                self.assertEqual(st, 200, js)
                items += js[kind]
                if page >= js["meta"]["total_pages"]:
                    break
                page += 1
            out[kind] = sorted(items, key=lambda r: r["id"])
        return out

    def expected(self, before):
        """before with the edits' dates."""
        exp = json.loads(json.dumps(before))
        for a in exp["assets"]:
            if a["id"] in self.edits:
                p, w = self.edits[a["id"]]
                a["dates"] = {"purchase": {"value": p, "source": "manual"},
                              "warranty": {"value": w, "source": "manual"}}
        return exp

    def vendor_time_aside(self, inv):
        """inv without the edited assets' updated_at: our writes moved it in Syncro (a real
        vendor change), which a sync after them reads."""
        inv = json.loads(json.dumps(inv))
        for a in inv["assets"]:
            if a["id"] in self.edits:
                a.pop("updated_at")
        return inv

    def diff(self, got, expected):
        """The records that differ (for the failure message)."""
        e = {(kind, r["id"]): r for kind in expected for r in expected[kind]}
        g = {(kind, r["id"]): r for kind in got for r in got[kind]}
        return [(key, g.get(key), e.get(key)) for key in sorted(set(e) | set(g))
                if g.get(key) != e.get(key)][:3]

    def cw_writes(self):
        return cwrmm.cw_admin(self.s, "GET", "/_sim/partners/%s/writes" % PARTNER)

    def sy_updates(self):
        return self.s.sim_stats()["accounts"]["wz-msp"]["asset_updates"]

    def wait_written(self):
        """Every edit on both vendors, each value written once (one Syncro PUT per edit)."""
        n = len(self.edits)
        wait_until(lambda: len(self.cw_writes()) >= 2 * n and self.sy_updates() >= n, 90,
                   "%d edits written to both vendors" % n, interval=0.5)
        self.s.wait_normalized()
        got = {}
        for x in self.cw_writes():
            got.setdefault((x["endpointID"], x["name"]), []).append(x["value"][:10])
        self.assertEqual(len(self.cw_writes()), 2 * n, got)
        self.assertEqual(self.sy_updates(), n)
        for aid, (p, w) in self.edits.items():
            eid = self.cw_of[aid]
            self.assertEqual(got.get((eid, "Purchase Date")), [p], aid)
            self.assertEqual(got.get((eid, "Warranty Expiration")), [w], aid)
            props = self.s.sim_admin("GET", "/wz-msp/api/v1/customer_assets/%s?api_key=wz-key-123456"
                                     % aid.split(":")[1])["asset"]["properties"]
            self.assertEqual((props["Purchase Date"][:10], props["Warranty Expiration"][:10]), (p, w))

    def wait_served(self):
        st, js, _ = self.api("GET", "/v1/tenants/%s" % T, timeout=120)
        self.assertEqual(st, 200, js)

    def set_up_synced(self, assets):
        """Both integrations synced, ten machines merged, three edits written."""
        s = self.s
        s.add_account("wz-msp", 4, assets, "wz-key-123456")
        s.add_tenant(T)
        st, js, _ = s.api("PUT", "/v1/tenants/%s/integrations/syncro" % T,
                          {"base_url": s.sim_base_url("wz-msp"), "api_key": "wz-key-123456",
                           "writeback": WB})
        self.assertIn(st, (200, 201), js)
        s.wait_synced(T, js["job_id"], assets=assets)
        ids = sorted(cwrmm.redis_lines(s, "ZRANGE", k(T, "inv:assets"), "0", "-1"))
        recs = [cwrmm.source_record(s, T, i) for i in ids]
        recs = [r for r in recs if r["serial"] and r["manufacturer"] and r["macs"]][:10]
        self.assertEqual(len(recs), 10)
        cwrmm.add_partner(s, PARTNER, 20, companies=2,
                          overlap=[{"serial": r["serial"], "manufacturer": r["manufacturer"],
                                    "model": r["model"] or "M"} for r in recs])
        st, js, _ = cwrmm.connect_cwrmm(s, T, PARTNER, writeback=WB)
        self.assertIn(st, (200, 201), js)
        cwrmm.wait_cw_synced(s, T, js["job_id"])
        s.wait_normalized()
        merged = cwrmm.all_assets(s, T)
        self.cw_of = {}
        for r in recs:
            src = [x for x in merged[r["id"]]["sources"] if x["integration"] == "cwrmm"]
            self.assertEqual(len(src), 1, merged[r["id"]])
            self.cw_of[r["id"]] = src[0]["id"]
        self.machines = [r["id"] for r in recs]
        # ready after its first start's (empty) rebuild
        wait_until(lambda: http("GET", s.normalizer.url("/readyz"))[0] == 200, 30,
                   "the normalizer ready")
        for i, aid in enumerate(self.machines[:3]):
            self.edit(aid, "2021-0%d-1%d" % (i + 1, i), "2029-0%d-2%d" % (i + 1, i))
        self.wait_written()

    def resync_changes_nothing(self, expected):
        """Both integrations synced again: nothing changes, nothing is written."""
        s = self.s
        dc = sum(s.topic_end_offsets("date.changes").values())
        cw, sy = len(self.cw_writes()), self.sy_updates()
        j1 = s.sync_now(T)
        s.wait_synced(T, j1)
        j2 = cwrmm.sync_now_cwrmm(s, T)
        cwrmm.wait_cw_synced(s, T, j2)
        s.wait_normalized()
        self.assertEqual(self.vendor_time_aside(self.inventory()),
                         self.vendor_time_aside(expected))
        self.assertEqual(sum(s.topic_end_offsets("date.changes").values()), dc)
        self.assertEqual((len(self.cw_writes()), self.sy_updates()), (cw, sy))
        self.assertEqual(s.kcat("dlq"), [])

    # ---- the two losses --------------------------------------------------------------------

    def test_flushall_while_edits_flow(self):
        s = self.s
        self.set_up_synced(40)
        before = self.inventory()
        s.redis("FLUSHALL")
        # Edits keep coming while the configuration and the inventory come back.
        self.edit(self.machines[3], "2022-04-04", "2030-04-04")
        self.edit(self.machines[4], "2022-05-05", "2030-05-05")
        self.wait_served()
        self.assertIn("inventory rebuilt", s.normalizer.logtext())
        expected = self.expected(before)
        wait_until(lambda: self.inventory() == expected, 60, "the inventory as before plus the edits")
        self.wait_written()
        self.resync_changes_nothing(expected)

    def test_workers_wait_for_the_restore(self):
        """Wiped while the gateway is down: nothing restores the configuration, so the normalizer,
        the write-back and billing wait (their /readyz says why) and a sync job waits; the
        gateway's start restores, the normalizer rebuilds, and everything goes on."""
        s = self.s
        self.set_up_synced(40)
        before = self.inventory()
        s.start_billing()
        self.assertEqual(s.gateway.stop(), 0)
        s.redis("FLUSHALL")
        job = {"schema_version": 1, "job_id": "job-while-lost", "tenant": T,
               "integration": "syncro", "types": ["customers", "assets"], "mode": "full",
               "reason": "sync_now", "requested_at": "2026-12-06T00:00:00.000Z"}
        subprocess.run(["kcat", "-P", "-K", "\t", "-b", s.brokers, "-t", s.topic("sync.jobs")],
                       input="%s\t%s\n" % (T, json.dumps(job)), text=True, check=True, timeout=60)
        for svc, why in ((s.normalizer, "waiting for the configuration restore"),
                         (s.write_backs[0], "waiting for the restore"),
                         (s.billing, "waiting for the restore")):
            wait_until(lambda svc=svc, why=why: (lambda r: r[0] == 503 and why in str(r[1]))(
                http("GET", svc.url("/readyz"))), 30, "%s saying it waits" % svc.name)
        wait_until(lambda: "Redis is being restored" in s.fetchers[0].logtext(), 60,
                   "the fetcher waiting for the restore")
        self.assertEqual(s.redis_raw("KEYS", "*inv:*").strip(), "")  # nothing normalized
        s.restart(s.gateway)
        self.wait_served()
        # (the queued full sync may already have read the edited assets' new updated_at)
        self.assertEqual(self.vendor_time_aside(self.inventory()),
                         self.vendor_time_aside(self.expected(before)))
        def job_done():
            st, js, _ = s.api("GET", "/v1/tenants/%s/integrations/syncro" % T)
            return st == 200 and js.get("state") == "Connected" and \
                s.redis("HGET", k(T, "inv:stats"), "asset_complete_job") == "job-while-lost"
        wait_until(job_done, 120, "the job queued while Redis was lost completed", interval=0.5)
        for svc in (s.normalizer, s.write_backs[0], s.billing):
            wait_until(lambda svc=svc: http("GET", svc.url("/readyz"))[0] == 200, 30,
                       "%s ready again" % svc.name)
        self.edit(self.machines[3], "2022-04-04", "2030-04-04")
        self.wait_written()
        self.resync_changes_nothing(self.expected(before))

    def test_empty_server_during_a_full_sync(self):
        s = self.s
        self.set_up_synced(300)
        before = self.inventory()
        s.sim_admin("PUT", "/_sim/config", {"latency_ms": 120})
        st, js, _ = s.api("PUT", "/v1/tenants/%s/integrations/syncro" % T,
                          {"base_url": s.sim_base_url("wz-msp"), "api_key": "wz-key-123456",
                           "writeback": WB})
        self.assertIn(st, (200, 201), js)   # saved again: a full sync
        job = js["job_id"]
        s.wait_asset_page(T, 3)
        # The server is replaced by an empty one on the same port (no persistence).
        s.redis_proc.terminate()
        s.redis_proc.wait(timeout=30)
        rdir = os.path.join(s.dir, "redis2")
        os.makedirs(rdir, exist_ok=True)
        with open(os.path.join(s.dir, "redis2.log"), "ab") as log:
            s.redis_proc = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(s.redis_port), "--save", "",
                 "--appendonly", "no", "--dir", rdir], stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: s.redis_raw("PING").strip() == "PONG", 60, "the new redis-server")
        self.edit(self.machines[3], "2022-04-04", "2030-04-04")
        self.wait_served()
        s.sim_admin("PUT", "/_sim/config", {"latency_ms": 0})
        # The job completes (its status hash went with Redis: the inventory's end-of-job mark
        # and the state say so).
        def job_done():
            st, js, _ = s.api("GET", "/v1/tenants/%s/integrations/syncro" % T)
            return st == 200 and js.get("state") == "Connected" and \
                s.redis("HGET", k(T, "inv:stats"), "asset_complete_job") == job
        wait_until(job_done, 120, "the full sync job completed", interval=0.5)
        self.assertIn("job=%s customers=" % job, s.fetchers[0].logtext())
        # Its cursor went with Redis: it went on from a new cursor at its first page (a full
        # pass), not from nowhere.
        self.assertIn("job=%s expected" % job, s.fetchers[0].logtext())
        expected = self.vendor_time_aside(self.expected(before))
        # The full sync after the loss read the edited assets' new updated_at.
        try:
            wait_until(lambda: self.vendor_time_aside(self.inventory()) == expected, 60,
                       "the inventory as before plus the edit")
        except AssertionError:
            raise AssertionError(self.diff(self.vendor_time_aside(self.inventory()), expected))
        self.wait_written()
        self.resync_changes_nothing(self.expected(before))


if __name__ == "__main__":
    unittest.main(verbosity=2)
