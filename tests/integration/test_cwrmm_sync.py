"""
ConnectWise RMM asset sync through the fetcher and the normalizer, one asset per machine:
- 2 tenants x 2,000 devices; 300 machines of tenant a are also in its Syncro (600 assets) (250 found by serial
  and manufacturer, 50 by a shared MAC only) and merge into 300 assets with two sources;
- a second sync publishes nothing new (no canonical record, no date change);
- the token is fetched once per partner (the gateway's check and the fetcher share it);
- the token expires mid-sync (revoked on the simulator): one refresh, never a 423.
"""
import json
import time
import unittest

from harness import Stack, wait_until
import cwrmm
from cwrmm import k

NS = 600   # Syncro assets of tenant a


class CwrmmSyncTest(unittest.TestCase):
    def setUp(self):
        self.s = Stack(self.id().split(".")[-1])
        self.s.start_redis()
        self.s.start_sim()
        cwrmm.start_cwrmm_sim(self.s)
        self.s.start_gateway()
        self.s.start_normalizer()

    def tearDown(self):
        problems = self.s.stop_all()
        self.assertEqual(problems, [])

    def connect(self, tenant, partner, **kw):
        st, js, _ = cwrmm.connect_cwrmm(self.s, tenant, partner, **kw)
        self.assertIn(st, (200, 201), js)
        self.assertNotIn("sec-" + partner, json.dumps(js))
        return js["job_id"]

    def test_two_tenants_merge_and_resync(self):
        s = self.s
        s.start_fetcher()
        # Tenant a: 600 Syncro assets first.
        s.add_account("ta", 30, NS, "tok-ta")
        s.add_tenant("ta")
        st, js, _ = s.connect("ta", "ta", "tok-ta")
        self.assertIn(st, (200, 201, 202), js)
        s.wait_synced("ta", js["job_id"], assets=NS)

        # 300 of those machines (computers: serial, manufacturer and a MAC known) are also
        # managed by ConnectWise RMM.
        syncro_ids = sorted(cwrmm.redis_lines(s, "ZRANGE", k("ta", "inv:assets"), "0", "-1"))
        recs = [cwrmm.source_record(s, "ta", sid) for sid in syncro_ids]
        recs = [r for r in recs if r["serial"] and r["manufacturer"] and r["macs"]][:300]
        self.assertEqual(len(recs), 300)
        overlap, by_serial, by_mac = [], set(), set()
        for i, rec in enumerate(recs):
            sid = rec["id"]
            if i < 250:
                overlap.append({"serial": rec["serial"], "manufacturer": rec["manufacturer"],
                                "model": rec["model"] or "Model"})
                by_serial.add(sid)
            else:   # another serial, same network card
                overlap.append({"serial": "CW-ONLY-%04d" % i, "manufacturer": "Other Vendor",
                                "mac": rec["macs"][0].lower().replace(":", "-")})
                by_mac.add(sid)
        cwrmm.add_partner(s, "pa", 2000, overlap=overlap)
        cwrmm.add_partner(s, "pb", 2000)
        s.add_tenant("tb")
        ja = self.connect("ta", "pa")
        jb = self.connect("tb", "pb")
        cwrmm.wait_cw_synced(s, "ta", ja)
        cwrmm.wait_cw_synced(s, "tb", jb)

        a = cwrmm.all_assets(s, "ta")
        b = cwrmm.all_assets(s, "tb")
        self.assertEqual(len(b), 2000)
        self.assertEqual(len(a), NS + 2000 - 300)
        merged = {aid: r for aid, r in a.items() if len(r["sources"]) == 2}
        self.assertEqual(len(merged), 300)
        self.assertEqual(set(merged), by_serial | by_mac)
        for aid, r in merged.items():
            self.assertEqual(sorted(x["integration"] for x in r["sources"]), ["cwrmm", "syncro"])
            self.assertFalse(r["gone"])
            self.assertTrue(r["customer_ref"].startswith("syncro:"), r)   # Syncro is primary
        for aid, r in b.items():
            self.assertEqual(len(r["sources"]), 1)
            self.assertTrue(aid.startswith("cwrmm:"))
            self.assertTrue(r["serial"] and r["manufacturer"] and r["model"] and r["os"]["name"], r)
            self.assertTrue(r["macs"] and r["customer_ref"].startswith("cwrmm:") and r["site_ref"], r)
        self.assertEqual(s.redis("ZCARD", k("tb", "inv:customers")), 20)
        self.assertEqual(s.redis("ZCARD", k("ta", "inv:customers")), 30 + 20)
        for p in ("pa", "pb"):
            st = cwrmm.cw_partner_stats(s, p)
            # One token for the gateway's credential check and the whole sync: shared via Redis.
            self.assertEqual(st["tokens_issued"], 1, st)
            self.assertEqual(st["token_locks"], 0, st)

        # Each integration's status counts its own records: a merged machine counts in both.
        self.assertEqual(s.status("ta")["counts"]["assets"], NS)
        st, js, _ = s.api("GET", "/v1/tenants/ta/integrations/cwrmm")
        self.assertEqual((js["counts"]["assets"], js["counts"]["customers"]), (2000, 20), js)

        # The canonical records on the topic: 2,000 + 2,100 assets (the 300 merges may publish
        # the asset again when its second source joins, never a record with another key).
        keys = {l.split("\t")[0] for l in s.kcat("assets", "%k\t%S\n")}
        self.assertEqual(len(keys), 2000 + NS + 2000 - 300)   # every asset once as a key
        before = s.topic_end_offsets("assets")
        dc_before = s.topic_end_offsets("date.changes")

        # A second sync of both tenants changes nothing.
        ja2 = cwrmm.sync_now_cwrmm(s, "ta")
        jb2 = cwrmm.sync_now_cwrmm(s, "tb")
        cwrmm.wait_cw_synced(s, "ta", ja2)
        cwrmm.wait_cw_synced(s, "tb", jb2)
        s.wait_normalized()
        self.assertEqual(s.topic_end_offsets("assets"), before)
        self.assertEqual(s.topic_end_offsets("date.changes"), dc_before)
        self.assertEqual(len(cwrmm.all_assets(s, "ta")), NS + 2000 - 300)

        # A device removed from its company on the simulator would need an admin route; a
        # Syncro asset deleted keeps the merged asset alive through its ConnectWise RMM source.
        gone_sid = sorted(by_serial)[0]
        s.sim_admin("DELETE", "/_sim/accounts/ta/assets/%s" % gone_sid.split(":")[1])
        j3 = s.sync_now("ta", types=("assets",))
        s.wait_synced("ta", j3)
        s.wait_normalized()
        r = cwrmm.all_assets(s, "ta")[gone_sid]
        self.assertFalse(r["gone"], r)
        self.assertEqual([x["integration"] for x in r["sources"]], ["cwrmm"])

        # Removing Syncro from tenant a removes its records only: the 300 machines stay as
        # ConnectWise RMM assets; removing ConnectWise RMM from tenant b empties its inventory.
        st, js, _ = s.api("DELETE", "/v1/tenants/ta/integrations/syncro")
        self.assertEqual(st, 202, js)
        st, js, _ = s.api("DELETE", "/v1/tenants/tb/integrations/cwrmm")
        self.assertEqual(st, 202, js)
        wait_until(lambda: s.redis("ZCARD", k("ta", "inv:assets")) == 2000 and
                   s.redis("ZCARD", k("tb", "inv:assets")) == 0, 120, "removals applied")
        a = cwrmm.all_assets(s, "ta")
        self.assertTrue(all([x["integration"] for x in r["sources"]] == ["cwrmm"] for r in a.values()))
        self.assertEqual(len(set(a) & (by_serial | by_mac)), 300)   # the asset ids stay
        self.assertEqual(s.redis("ZCARD", k("ta", "inv:customers")), 20)
        self.assertEqual(s.redis("ZCARD", k("tb", "inv:customers")), 0)
        s.wait_normalized()
        last = {}
        for line in s.kcat("assets", "%k\t%S\n"):
            key, size = line.split("\t")
            last[key] = int(size)
        self.assertEqual(sum(1 for key, size in last.items() if key.startswith("tb/") and size > 0), 0)
        self.assertEqual(sum(1 for key, size in last.items() if key.startswith("ta/") and size > 0), 2000)

    def test_token_expires_mid_sync(self):
        s = self.s
        s.start_fetcher(MSPSYNC_CWRMM_PAGE_SIZE="50")
        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"latency_ms": 25})
        cwrmm.add_partner(s, "pt", 2000, companies=8)
        s.add_tenant("tt")
        job = self.connect("tt", "pt")

        def mid():
            p = s.redis("HGET", k("tt", "status:cwrmm"), "assets_fetched")
            return p is not None and int(p) >= 500
        wait_until(mid, 120, "mid-sync")
        self.assertEqual(cwrmm.cw_partner_stats(s, "pt")["tokens_issued"], 1)
        cwrmm.cw_admin(s, "POST", "/_sim/partners/pt/expire-tokens")
        cwrmm.wait_cw_synced(s, "tt", job)
        self.assertEqual(len(cwrmm.all_assets(s, "tt")), 2000)
        st = cwrmm.cw_partner_stats(s, "pt")
        self.assertEqual(st["tokens_issued"], 2, st)   # refreshed once
        self.assertEqual(st["token_locks"], 0, st)     # never a 423
        self.assertIn("token.rejected", s.fetchers[0].logtext())

    def test_scope_revoked_after_saving(self):
        s = self.s
        s.start_fetcher()
        cwrmm.add_partner(s, "pr", 300, companies=4)
        s.add_tenant("tr")
        cwrmm.wait_cw_synced(s, "tr", self.connect("tr", "pr"))
        # The partner's admin takes "platform.devices.read" away from the API client.
        kept = [x for x in cwrmm.cw_admin(s, "GET", "/_sim/partners/pr")["scopes"]
                if x != "platform.devices.read"]
        cwrmm.cw_admin(s, "PUT", "/_sim/partners/pr/scopes", {"scopes": kept})
        cwrmm.cw_admin(s, "POST", "/_sim/partners/pr/expire-tokens")
        job = cwrmm.sync_now_cwrmm(s, "tr")

        def failed():
            st, js, _ = s.api("GET", "/v1/tenants/tr/integrations/cwrmm")
            return js if js.get("state") == "Error" and js.get("job_id") == job else None
        js = wait_until(failed, 60, "the sync fails on the missing scope")
        self.assertIn("403", js["last_error"])
        self.assertIn("platform.devices.read", js["last_error"] + js.get("hint", ""))
        self.assertEqual(s.redis("HGET", k("tr", "status:cwrmm"), "paused"), "1")
        self.assertEqual(len(cwrmm.all_assets(s, "tr")), 300)   # nothing lost meanwhile
        # Granted again and synced now: connected.
        cwrmm.cw_admin(s, "PUT", "/_sim/partners/pr/scopes", {"scopes": kept + ["platform.devices.read"]})
        cwrmm.cw_admin(s, "POST", "/_sim/partners/pr/expire-tokens")
        cwrmm.wait_cw_synced(s, "tr", cwrmm.sync_now_cwrmm(s, "tr"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
