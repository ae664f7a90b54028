#!/usr/bin/env python3
"""The sync history of an integration, folded from sync.events by the gateway: a full sync on
save and a sync-now show as two jobs with their trigger, types, pages, records and result; a
vendor 401 shows as a failed job with the vendor's error; a fetcher SIGKILLed mid-sync and
restarted shows as ONE job with its resume counted, finished done, its pages and records not
counted twice."""
import time

import harness
from harness import StackTest, wait_until

TENANT, SUB, TOKEN = "hist", "hist-msp", "hist-key-1234567"
CUSTOMERS, ASSETS = 30, 1500
# The simulator's page sizes: customers_per_page 25 (add_account), assets always 50.
PAGES_CUSTOMERS_ASSETS = -(-CUSTOMERS // 25) + -(-ASSETS // 50)


class HistoryTest(StackTest):

    def jobs(self, s, limit=None, token=None):
        q = "" if limit is None else "?limit=%d" % limit
        st, js, _ = s.api("GET", "/v1/tenants/%s/integrations/syncro/jobs%s" % (TENANT, q),
                          token=token)
        self.assertEqual(st, 200, js)
        return js["jobs"]

    def wait_job(self, s, job_id, result):
        def there():
            for j in self.jobs(s):
                if j["job_id"] == job_id and j["result"] == result:
                    return j
            return None
        return wait_until(there, 60, "job %s %s in the history" % (job_id, result))

    def test_history_shows_triggers_failures_and_one_job_per_resumed_sync(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        s.add_account(SUB, customers=CUSTOMERS, assets=ASSETS, token=TOKEN)
        s.add_tenant(TENANT)
        _, viewer = s.add_key(TENANT, "viewer")

        # 1. the full sync a save starts
        st, js, _ = s.connect(TENANT, SUB, TOKEN)
        self.assertEqual(st, 201, js)
        saved = js["job_id"]
        s.wait_synced(TENANT, saved, assets=ASSETS)
        j1 = self.wait_job(s, saved, "done")
        self.assertEqual(j1["trigger"], "save")
        self.assertTrue({"customers", "assets"} <= set(j1["types"]), j1)
        self.assertEqual(j1["records"]["customers"], CUSTOMERS)
        self.assertEqual(j1["records"]["assets"], ASSETS)
        self.assertGreaterEqual(j1["pages"], PAGES_CUSTOMERS_ASSETS)
        self.assertEqual(j1["resumes"], 0)
        self.assertIsNone(j1["error"])
        self.assertGreaterEqual(j1["duration_ms"], 0)

        # 2. a sync-now
        now = s.sync_now(TENANT)
        s.wait_synced(TENANT, now, assets=ASSETS)
        j2 = self.wait_job(s, now, "done")
        self.assertEqual((j2["trigger"], j2["types"]), ("sync-now", ["customers", "assets"]))
        self.assertEqual(j2["pages"], PAGES_CUSTOMERS_ASSETS)
        self.assertEqual(j2["records"], {"customers": CUSTOMERS, "assets": ASSETS})
        self.assertEqual(j2["resumes"], 0)
        ids = [j["job_id"] for j in self.jobs(s, token=viewer)]
        self.assertEqual(ids, [now, saved])  # newest first, a viewer may read it

        # 3. a sync killed mid-way (SIGKILL) and resumed by the restarted fetcher
        s.sim_config({"latency_ms": 120})
        killed = s.sync_now(TENANT)
        s.wait_asset_page(TENANT, 5)
        fetcher = s.fetchers[0]
        fetcher.kill9()
        s.restart(fetcher)
        s.wait_synced(TENANT, killed, assets=ASSETS, timeout=120)
        s.sim_config({"latency_ms": 0})
        j3 = self.wait_job(s, killed, "done")
        self.assertGreaterEqual(j3["resumes"], 1, j3)
        self.assertEqual(j3["pages"], PAGES_CUSTOMERS_ASSETS, j3)  # the page fetched again counts once
        self.assertEqual(j3["records"], {"customers": CUSTOMERS, "assets": ASSETS}, j3)
        self.assertEqual([j["job_id"] for j in self.jobs(s)].count(killed), 1)

        # 4. the key is revoked in Syncro: the next sync fails with the vendor's 401
        s.sim_admin("DELETE", "/_sim/tokens/" + TOKEN)
        failing = s.sync_now(TENANT)
        j4 = self.wait_job(s, failing, "failed")
        self.assertEqual(j4["trigger"], "sync-now")
        self.assertIn("nauthorized", j4["error"])  # Syncro's own 401 text
        self.assertEqual(j4["error"], s.status(TENANT)["last_error"])
        self.assertIsNotNone(j4["finished_at"])

        # the list, its limit and one job
        self.assertEqual([j["job_id"] for j in self.jobs(s)], [failing, killed, now, saved])
        self.assertEqual([j["job_id"] for j in self.jobs(s, limit=2)], [failing, killed])
        st, js, _ = s.api("GET", "/v1/tenants/%s/integrations/syncro/jobs/%s" % (TENANT, killed))
        self.assertEqual((st, js), (200, j3))
        st, js, _ = s.api("GET", "/v1/tenants/%s/integrations/syncro/jobs/nope" % TENANT)
        self.assertEqual(st, 404, js)
        st, js, _ = s.api("GET", "/v1/tenants/%s/integrations/syncro/jobs?limit=0" % TENANT)
        self.assertEqual(st, 400, js)

        # derived state: without Redis' copy, the reader folds the topic again to the same jobs
        before = self.jobs(s)
        for key in s.redis_raw("KEYS", "mspsync:{%s}:history:*" % TENANT).split():
            s.redis("DEL", key)
        events = sum(s.topic_end_offsets("sync.events").values())
        started = time.monotonic()
        s.redis("DEL", "mspsync:{_}:history:pos")
        wait_until(lambda: self.jobs(s) == before, 60, "history rebuilt from sync.events")
        print("history rebuilt from %d sync.events records in %.2f s" % (
            events, time.monotonic() - started))


if __name__ == "__main__":
    harness.main()
