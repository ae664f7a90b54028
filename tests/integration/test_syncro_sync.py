#!/usr/bin/env python3
"""Syncro asset sync, end to end: gateway → sync.jobs → fetcher → raw.records → normalizer →
inventory, on the real broker and Redis, against the Syncro simulator over HTTP."""
import collections
import json

import harness
from harness import StackTest, wait_until


class SyncroSyncTest(StackTest):

    def test_full_sync_three_tenants_then_incremental_changes(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        tenants = {"alpha": "alpha-msp", "bravo": "bravo-msp", "charlie": "charlie-msp"}
        keys = {}
        for tenant, sub in tenants.items():
            keys[tenant] = "sk-" + harness.rand_id(32)
            s.add_account(sub, customers=40, assets=1000, token=keys[tenant])
            s.add_tenant(tenant)
        jobs = {}
        for tenant, sub in tenants.items():
            st, js, _ = s.connect(tenant, sub, keys[tenant])
            self.assertEqual(st, 201, js)
            self.assertEqual(js["state"], "Syncing")
            jobs[tenant] = js["job_id"]

        # A full sync puts exactly 3 x 1000 assets and their customers in the inventory.
        for tenant in tenants:
            st = s.wait_synced(tenant, jobs[tenant], assets=1000)
            self.assertEqual(st["counts"]["customers"], 40)
            self.assertEqual(st["last_error"] or "", "")
            self.assertTrue(st["last_sync_at"])
        all_ids = []
        for tenant in tenants:
            assets = s.inventory(tenant, "assets")
            customers = s.inventory(tenant, "customers")
            self.assertEqual(len(assets), 1000)
            self.assertEqual(len(customers), 40)
            ids = [a["id"] for a in assets]
            self.assertEqual(len(set(ids)), 1000, "duplicate assets")
            all_ids.extend((tenant, i) for i in ids)
            cust_ids = {c["id"] for c in customers}
            for a in assets:
                self.assertEqual(a["schema_version"], 1)
                self.assertIn(a["customer_ref"], cust_ids)  # customers synced before assets
                self.assertFalse(a["gone"])
                self.assertTrue(a["id"].startswith("syncro:"))
                self.assertGreater(int(a["id"].split(":")[1]), 2 ** 32)  # 64-bit ids survive
            agents = [a for a in assets if a["manufacturer"]]
            self.assertTrue(agents, "no asset carried kabuto hardware facts")
            self.assertTrue(all(a["serial"] for a in agents))
            self.assertTrue(any(a["macs"] for a in agents))
        self.assertEqual(len(set(all_ids)), 3000)
        # Inventory filters: by serial, by customer, by type.
        some = s.inventory("alpha", "assets")[7]
        by_serial = s.inventory("alpha", "assets", serial=some["serial"].lower())
        self.assertEqual([a["id"] for a in by_serial], [some["id"]])
        by_cust = s.inventory("alpha", "assets", customer=some["customer_ref"])
        self.assertTrue(by_cust and all(a["customer_ref"] == some["customer_ref"] for a in by_cust))
        self.assertIn(some["id"], {a["id"] for a in by_cust})
        by_type = s.inventory("alpha", "assets", type=some["asset_type"])
        self.assertTrue(all(a["asset_type"] == some["asset_type"] for a in by_type))
        self.assertLess(len(by_type), 1000)
        # Progress went to sync.events: started, pages, done — for every job.
        events = [json.loads(l.split("\t", 1)[1]) for l in s.kcat("sync.events")]
        for tenant in tenants:
            mine = [e for e in events if e["job_id"] == jobs[tenant]]
            kinds = [e["event"] for e in mine]
            self.assertEqual(kinds[0], "job_started")
            self.assertEqual(kinds[-1], "job_done")
            pages = collections.Counter(e["type"] for e in mine if e["event"] == "page")
            # 40 customers = 2 pages of 25; 1000 assets = 20 pages of 50; no contacts or tickets
            # (one empty page each) and the ticket settings (one answer)
            self.assertEqual(pages, {"customer": 2, "asset": 20, "contact": 1, "ticket": 1,
                                     "setting": 1})
        s.wait_normalized()
        keyed = collections.Counter(l.split("\t")[0] for l in s.kcat("assets"))
        self.assertEqual(len(keyed), 3000, "the compacted assets topic should hold 3000 keys")
        assets_msgs = sum(keyed.values())

        # A second sync changes nothing: no new canonical record, same inventory.
        stats_before = s.redis("HGET", "mspsync:{alpha}:inv:stats", "asset_changed")
        job2 = s.sync_now("alpha")
        s.wait_synced("alpha", job2, assets=1000)
        s.wait_normalized()
        self.assertEqual(len(s.kcat("assets")), assets_msgs, "an unchanged re-sync produced assets")
        self.assertEqual(s.redis("HGET", "mspsync:{alpha}:inv:stats", "asset_changed"), stats_before)

        # An asset changed on Syncro is updated by the next incremental sync;
        # an asset deleted there is marked gone.
        sim_assets = s.sim_admin("GET", "/alpha-msp/api/v1/customer_assets?page=1&api_key=" + keys["alpha"])
        changed, deleted = sim_assets["assets"][0], sim_assets["assets"][1]
        s.sim_admin("PUT", "/_sim/accounts/alpha-msp/assets/%d" % changed["id"],
                    {"name": "RENAMED-PC", "asset_serial": "NEW-SERIAL-1"})
        s.sim_admin("DELETE", "/_sim/accounts/alpha-msp/assets/%d" % deleted["id"])
        job3 = s.sync_now("alpha")
        s.wait_synced("alpha", job3, assets=999)
        s.wait_normalized()
        st, got, _ = s.api("GET", "/v1/tenants/alpha/assets/syncro:%d" % changed["id"])
        self.assertEqual(st, 200)
        self.assertEqual(got["name"], "RENAMED-PC")
        st, gone, _ = s.api("GET", "/v1/tenants/alpha/assets/syncro:%d" % deleted["id"])
        self.assertEqual(st, 200)
        self.assertTrue(gone["gone"])
        live = s.inventory("alpha", "assets")
        self.assertEqual(len(live), 999)
        self.assertNotIn("syncro:%d" % deleted["id"], {a["id"] for a in live})
        self.assertEqual(len(s.inventory("alpha", "assets", include_gone=1)), 1000)
        # Only the two touched assets produced new canonical records.
        self.assertEqual(len(s.kcat("assets")), assets_msgs + 2)
        # The other tenants were not touched.
        self.assertEqual(len(s.inventory("bravo", "assets")), 1000)

        # The API key appears nowhere in logs or in Redis in plain text.
        problems = s.stop_all()
        s.services = []
        self.assertEqual(problems, [])
        for svc in [s.sim, s.gateway, s.normalizer] + s.fetchers:
            text = svc.logtext() if svc is not s.sim else ""
            for tenant, key in keys.items():
                self.assertNotIn(key, text, "API key of %s found in %s log" % (tenant, svc.name))
            self.assertNotIn(s.admin_token, text, "admin token found in %s log" % svc.name)
            self.assertNotIn(s.secret_key, text, "secret key found in %s log" % svc.name)

    def test_api_key_is_sealed_in_redis(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        key = "sk-" + harness.rand_id(40)
        s.add_account("delta-msp", customers=3, assets=10, token=key)
        s.add_tenant("delta")
        st, js, _ = s.connect("delta", "delta-msp", key)
        self.assertEqual(st, 201, js)
        s.wait_synced("delta", js["job_id"], assets=10)
        dump = []
        for k in s.redis_raw("--scan").split():
            t = s.redis_raw("TYPE", k).strip()
            if t == "string":
                dump.append(s.redis_raw("GET", k))
            elif t == "hash":
                dump.append(s.redis_raw("HGETALL", k))
            elif t in ("set",):
                dump.append(s.redis_raw("SMEMBERS", k))
            elif t == "zset":
                dump.append(s.redis_raw("ZRANGE", k, 0, -1))
        blob = "\n".join(dump)
        self.assertIn("v1:", blob)  # the sealed form is there
        self.assertNotIn(key, blob)
        sealed = s.redis_raw("HGET", "mspsync:{delta}:integration:syncro", "api_key_sealed").strip()
        self.assertTrue(sealed.startswith("v1:"))
        st, status, _ = s.api("GET", "/v1/tenants/delta/integrations/syncro")
        self.assertNotIn(key, json.dumps(status))
        self.assertNotIn(sealed, json.dumps(status))


if __name__ == "__main__":
    harness.main()
