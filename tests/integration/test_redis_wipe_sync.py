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
import subprocess

import unittest

from harness import http, wait_until
import cwrmm
from cwrmm import k

T = cwrmm.DatesTenant.TENANT
WB = cwrmm.DatesTenant.WB


class RedisWipeSyncTest(cwrmm.DatesTenant, unittest.TestCase):
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

    def test_a_batch_that_commits_after_the_wipe(self):
        """A normalizer batch in flight at the wipe (read before it, its Kafka outputs
        acknowledged, its Redis writes after it) stores an edited machine's merged record, its
        one source's record, link and membership in the empty Redis before the rebuild runs. The
        rebuild must still bring back what that batch did not write: the edit, the other source's
        link and stand-in, the membership — or the next syncs read the dates our write-back put
        at the vendors as the vendors' own (found by test_redis_wipe_all's kills: the edits of
        three machines came back as "cwrmm")."""
        s = self.s
        self.set_up_synced(40)
        before = self.inventory()
        aid = self.machines[0]  # edited and written before the loss
        src = "cwrmm:" + self.cw_of[aid]
        batch = {"inv:asset:" + aid: s.redis_raw("GET", k(T, "inv:asset:" + aid)).strip(),
                 "inv:src:asset:" + src: s.redis_raw("GET", k(T, "inv:src:asset:" + src)).strip()}
        self.assertIn('"manual"', batch["inv:asset:" + aid])
        self.assertEqual(s.normalizer.stop(), 0)  # no rebuild before the batch's writes
        s.redis("FLUSHALL")
        # What nz_inv_run commits for one upserted source record (inventory.c), after the wipe.
        s.redis("SET", k(T, "inv:src:asset:" + src), batch["inv:src:asset:" + src])
        s.redis("HSET", k(T, "inv:link"), src, aid)
        s.redis("SADD", k(T, "inv:members:" + aid), src)
        s.redis("SET", k(T, "inv:asset:" + aid), batch["inv:asset:" + aid])
        s.redis("ZADD", k(T, "inv:assets"), "0", aid)
        s.restart(s.normalizer)
        self.wait_served()
        self.wait_inventory(self.vendor_time_aside(self.expected(before)), "the inventory as before")
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
        s.replace_redis()  # an empty one on the same port (no persistence)
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
        self.wait_inventory(expected, "the inventory as before plus the edit")
        self.wait_written()
        self.resync_changes_nothing(self.expected(before))


if __name__ == "__main__":
    unittest.main(verbosity=2)
