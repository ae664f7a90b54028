#!/usr/bin/env python3
"""The ConnectWise RMM integration API, write-back opt-in, disable/remove, and date edits.

Runs the gateway against Redis, Kafka and the ConnectWise RMM simulator (cwrmm-sim); no workers:
what the gateway promises ends at Kafka (sync.jobs, raw.records) and Redis, and that is what these
tests read.
"""
import json
import os

import harness
from harness import Stack, http, wait_until
import cwrmm
import unittest

ALL_SCOPES = ["platform.companies.read", "platform.sites.read", "platform.devices.read",
              "platform.custom_fields_definitions.read", "platform.custom_fields_definitions.write",
              "platform.custom_fields_values.read", "platform.custom_fields_values.write"]


def add_partner(stack, partner, client_id, secret, scopes=None, **kw):
    body = {"partner": partner, "client_id": client_id, "client_secret": secret,
            "companies": kw.pop("companies", 2), "sites_per_company": 1, "devices": kw.pop("devices", 4)}
    if scopes is not None:
        body["scopes"] = scopes
    cwrmm.cw_admin(stack, "POST", "/_sim/partners", body)
    return stack.cw.url("/" + partner)


class CwrmmApiTest(unittest.TestCase):

    def setUp(self):
        self.s = Stack(self.id().split(".")[-1])
        self.s.start_redis()
        self.s.start_gateway()
        cwrmm.start_cwrmm_sim(self.s)
        self.addCleanup(self._teardown)

    def _teardown(self):
        problems = self.s.stop_all()
        if problems:
            self.fail("unclean shutdown: " + "; ".join(problems))

    def path(self, tenant, rest=""):
        return "/v1/tenants/%s/integrations/cwrmm%s" % (tenant, rest)

    def jobs(self):
        return [json.loads(l.split("\t", 1)[1]) for l in self.s.kcat("sync.jobs")]

    def raw_records(self):
        return [(l.split("\t", 1)[0], json.loads(l.split("\t", 1)[1])) for l in self.s.kcat("raw.records")]

    def test_saving_checks_credentials_seals_the_secret_and_queues_a_full_sync(self):
        s = self.s
        s.add_tenant("acme")
        secret = "cw-secret-" + harness.rand_id(20)
        base = add_partner(s, "acme-partner", "acme-client", secret)
        limited = add_partner(s, "limited", "lim-client", "lim-secret-123456",
                              scopes=["platform.companies.read", "platform.sites.read"])

        # Request validation: neither region nor base_url, an unknown region, unknown keys.
        st, js, _ = s.api("PUT", self.path("acme"), {"client_id": "x", "client_secret": "y"})
        self.assertEqual(st, 400, js)
        st, js, _ = s.api("PUT", self.path("acme"), {"region": "mars", "client_id": "x", "client_secret": "y"})
        self.assertEqual(st, 400, js)
        self.assertIn("mars", js["error"])
        st, js, _ = s.api("PUT", self.path("acme"), {"base_url": base, "client_id": "x", "secret": "y"})
        self.assertEqual(st, 400, js)
        st, js, _ = s.api("PUT", self.path("acme"), {"base_url": base, "client_id": "acme-client",
                                                     "client_secret": secret, "writeback": {"purchase": True}})
        self.assertEqual(st, 400, js)
        self.assertIn("writeback.purchase", js["error"])

        # A wrong secret: 422 with the vendor's status, nothing stored, nothing queued.
        st, js, _ = s.api("PUT", self.path("acme"), {"base_url": base, "client_id": "acme-client",
                                                     "client_secret": "wrong-secret-000"})
        self.assertEqual(st, 422, js)
        self.assertEqual(js["vendor_status"], 401)
        self.assertIn("/v1/token", js["error"])
        self.assertEqual(s.redis("EXISTS", "mspsync:{acme}:integration:cwrmm"), 0)
        self.assertEqual(s.redis("EXISTS", "mspsync:{acme}:status:cwrmm"), 0)
        self.assertEqual(s.api("GET", self.path("acme"))[0], 404)

        # An API client without the devices scope: 422 naming the scope.
        st, js, _ = s.api("PUT", self.path("acme"), {"base_url": limited, "client_id": "lim-client",
                                                     "client_secret": "lim-secret-123456"})
        self.assertEqual(st, 422, js)
        self.assertEqual(js["vendor_status"], 403)
        self.assertIn("platform.devices.read", js["error"])
        self.assertEqual(js.get("missing_scope"), "platform.devices.read")
        self.assertEqual(s.redis("EXISTS", "mspsync:{acme}:integration:cwrmm"), 0)
        self.assertEqual(self.jobs(), [])

        # Good credentials: 201 with the status body, the secret sealed, one full sync queued.
        st, js, _ = s.api("PUT", self.path("acme"), {"base_url": base, "client_id": "acme-client",
                                                     "client_secret": secret,
                                                     "writeback": {"warranty_expires": True}})
        self.assertEqual(st, 201, js)
        self.assertEqual(js["integration"], "cwrmm")
        self.assertEqual(js["state"], "Syncing")
        self.assertEqual(js["client_id"], "acme-client")
        self.assertEqual(js["base_url"], base)
        self.assertIsNone(js["region"])
        self.assertEqual(js["writeback"], {"purchase_date": False, "warranty_expires": True})
        job_id = js["job_id"]
        stored = s.redis_raw("HGETALL", "mspsync:{acme}:integration:cwrmm")
        self.assertNotIn(secret, stored)
        self.assertTrue(s.redis("HGET", "mspsync:{acme}:integration:cwrmm", "client_secret_sealed").startswith("v1:"))
        self.assertEqual(s.redis("HGET", "mspsync:{acme}:integration:cwrmm", "enabled"), "1")
        self.assertEqual(s.redis("HGET", "mspsync:{acme}:integration:cwrmm", "writeback_warranty"), "1")
        self.assertEqual(s.redis("HGET", "mspsync:{acme}:integration:cwrmm", "writeback_purchase"), "0")
        self.assertTrue(s.redis("HGET", "mspsync:{acme}:integration:cwrmm", "account_id").startswith("cw:"))
        jobs = self.jobs()
        self.assertEqual(len(jobs), 1, jobs)
        self.assertEqual({k: jobs[0][k] for k in ("integration", "types", "mode", "reason", "job_id", "tenant")},
                         {"integration": "cwrmm", "types": ["customers", "assets"], "mode": "full",
                          "reason": "integration_saved", "job_id": job_id, "tenant": "acme"})

        st, js, _ = s.api("GET", self.path("acme"))
        self.assertEqual(st, 200, js)
        self.assertNotIn(secret, json.dumps(js))
        self.assertEqual(js["state"], "Syncing")
        self.assertTrue(js["enabled"])
        self.assertEqual(js["counts"], {"customers": 0, "customers_gone": 0, "assets": 0, "assets_gone": 0})
        self.assertEqual(set(js["progress"]), {"type", "page", "total_pages", "customers_fetched", "assets_fetched"})

        # Saving again replaces (200) and keeps the write-back choice when none is sent.
        st, js, _ = s.api("PUT", self.path("acme"), {"base_url": base, "client_id": "acme-client",
                                                     "client_secret": secret})
        self.assertEqual(st, 200, js)
        self.assertEqual(js["writeback"], {"purchase_date": False, "warranty_expires": True})
        self.assertEqual(len(self.jobs()), 2)

        # Counts: the integration's own customers and source asset records.
        s.redis("ZADD", "mspsync:{acme}:inv:customers", 0, "cwrmm:c1", 0, "cwrmm:c2", 0, "syncro:9")
        s.redis("HSET", "mspsync:{acme}:inv:link", "cwrmm:d1", "cwrmm:d1", "cwrmm:d2", "syncro:5",
                "syncro:5", "syncro:5")
        s.redis("SADD", "mspsync:{acme}:inv:srcgone:asset", "cwrmm:d2")
        js = s.api("GET", self.path("acme"))[1]
        self.assertEqual(js["counts"], {"customers": 2, "customers_gone": 0, "assets": 2, "assets_gone": 1})

        # Completion per type uses the cwrmm_ markers of inv:stats.
        s.redis("HSET", "mspsync:{acme}:status:cwrmm", "state", "connected", "job_types", "customer,asset")
        cur = s.redis("HGET", "mspsync:{acme}:status:cwrmm", "job_id")
        s.redis("HSET", "mspsync:{acme}:inv:stats", "customer_complete_job", cur, "asset_complete_job", cur)
        js = s.api("GET", self.path("acme"))[1]
        self.assertEqual((js["state"], js["inventory_pending"]), ("Syncing", True))
        s.redis("HSET", "mspsync:{acme}:inv:stats", "cwrmm_customer_complete_job", cur,
                "cwrmm_asset_complete_job", cur)
        js = s.api("GET", self.path("acme"))[1]
        self.assertEqual((js["state"], js["inventory_pending"]), ("Connected", False))

        # Sync now.
        st, js, _ = s.api("POST", self.path("acme", "/sync"), {"types": ["assets"]})
        self.assertEqual(st, 202, js)
        last = self.jobs()[-1]
        self.assertEqual((last["integration"], last["types"], last["reason"], last["job_id"]),
                         ("cwrmm", ["assets"], "sync_now", js["job_id"]))

        # The secret never reached the gateway's log.
        self.assertNotIn(secret, s.gateway.logtext())

    def test_writeback_opt_in_disable_and_remove(self):
        s = self.s
        s.add_tenant("bravo")
        secret = "cw-secret-" + harness.rand_id(20)
        base = add_partner(s, "bravo-partner", "bravo-client", secret)
        st, js, _ = s.api("PUT", self.path("bravo"), {"base_url": base, "client_id": "bravo-client",
                                                      "client_secret": secret})
        self.assertEqual(st, 201, js)
        self.assertEqual(js["writeback"], {"purchase_date": False, "warranty_expires": False})

        # PATCH changes the opt-in only.
        st, js, _ = s.api("PATCH", self.path("bravo"), {"writeback": {"purchase_date": True}})
        self.assertEqual(st, 200, js)
        self.assertEqual(js["writeback"], {"purchase_date": True, "warranty_expires": False})
        self.assertEqual(s.redis("HGET", "mspsync:{bravo}:integration:cwrmm", "writeback_purchase"), "1")
        for bad in ({}, {"writeback": {}}, {"writeback": {"purchase_date": "yes"}},
                    {"writeback": {"colour": True}}, {"client_secret": "x"}, {"writeback": True}):
            st, js, _ = s.api("PATCH", self.path("bravo"), bad)
            self.assertEqual(st, 400, (bad, js))
        self.assertEqual(s.api("PATCH", "/v1/tenants/bravo/integrations/syncro",
                               {"writeback": {"purchase_date": True}})[0], 404)

        # Disable: the sealed secret and the cached token go, the settings and inventory stay.
        s.redis("SET", "mspsync:{bravo}:inv:customer:cwrmm:c1", "{}")
        self.assertEqual(s.redis("EXISTS", "mspsync:{bravo}:token:cwrmm"), 1)  # cached by the check
        st, js, _ = s.api("POST", self.path("bravo", "/disable"))
        self.assertEqual(st, 200, js)
        self.assertEqual(js["state"], "Disabled")
        self.assertFalse(js["enabled"])
        self.assertEqual(s.redis("HEXISTS", "mspsync:{bravo}:integration:cwrmm", "client_secret_sealed"), 0)
        self.assertEqual(s.redis("HGET", "mspsync:{bravo}:integration:cwrmm", "enabled"), "0")
        self.assertEqual(s.redis("EXISTS", "mspsync:{bravo}:token:cwrmm"), 0)
        self.assertEqual(s.redis("HGET", "mspsync:{bravo}:status:cwrmm", "state"), "disabled")
        self.assertEqual(s.redis("EXISTS", "mspsync:{bravo}:inv:customer:cwrmm:c1"), 1)
        st, js, _ = s.api("GET", self.path("bravo"))
        self.assertEqual((st, js["state"]), (200, "Disabled"))
        self.assertEqual(js["writeback"], {"purchase_date": True, "warranty_expires": False})
        # a disabled integration cannot sync; it can still be re-enabled with its credentials
        self.assertEqual(s.api("POST", self.path("bravo", "/sync"))[0], 409)
        st, js, _ = s.api("PUT", self.path("bravo"), {"base_url": base, "client_id": "bravo-client",
                                                      "client_secret": secret})
        self.assertEqual(st, 200, js)
        self.assertEqual(js["state"], "Syncing")
        self.assertTrue(js["enabled"])

        # Remove: 202 once the integration_removed envelope is in Kafka, keys gone.
        before = len(self.raw_records())
        st, js, _ = s.api("DELETE", self.path("bravo"))
        self.assertEqual(st, 202, js)
        recs = self.raw_records()[before:]
        self.assertEqual(len(recs), 1, recs)
        key, env = recs[0]
        self.assertEqual(key, "bravo")
        self.assertEqual(env, {"schema_version": 1, "kind": "integration_removed", "tenant": "bravo",
                               "integration": "cwrmm", "removed_at": js["removed_at"]})
        for k in ("integration:cwrmm", "status:cwrmm", "token:cwrmm", "cwrmm:defs"):
            self.assertEqual(s.redis("EXISTS", "mspsync:{bravo}:" + k), 0, k)
        self.assertEqual(s.api("GET", self.path("bravo"))[0], 404)
        self.assertEqual(s.api("DELETE", self.path("bravo"))[0], 404)
        self.assertNotIn(secret, s.gateway.logtext())

    def test_date_edits_go_to_raw_records_and_writeback_shows_the_targets(self):
        s = self.s
        s.add_tenant("delta")
        asset = "cwrmm:0f0e0d0c-1111-2222-3333-444455556666"
        s.redis("SET", "mspsync:{delta}:inv:asset:" + asset, json.dumps({"id": asset}))
        s.redis("ZADD", "mspsync:{delta}:inv:assets", 0, asset)
        s.redis("SET", "mspsync:{delta}:inv:asset:syncro:77", json.dumps({"id": "syncro:77"}))
        s.redis("SADD", "mspsync:{delta}:inv:gone:asset", "syncro:77")
        path = "/v1/tenants/delta/assets/%s/dates" % asset.replace(":", "%3A")

        for bad, field in (({}, "purchase_date"), ({"purchase_date": "2024-13-01"}, "purchase_date"),
                           ({"warranty_expires": "soon"}, "warranty_expires"),
                           ({"warranty_expires": 20270101}, "warranty_expires"),
                           ({"purchase_date": "2024-02-30"}, "purchase_date"),
                           ({"purchase_date": "2024-01-01", "colour": "red"}, "colour")):
            st, js, _ = s.api("PUT", path, bad)
            self.assertEqual(st, 400, (bad, js))
            self.assertIn(field, js["error"])
        self.assertEqual(s.api("PUT", path, b"[1]")[0], 400)
        self.assertEqual(s.api("PUT", "/v1/tenants/delta/assets/cwrmm:nope/dates",
                               {"purchase_date": "2024-01-01"})[0], 404)
        self.assertEqual(s.api("PUT", "/v1/tenants/delta/assets/syncro:77/dates",
                               {"purchase_date": "2024-01-01"})[0], 404)  # gone
        self.assertEqual(s.api("PUT", "/v1/tenants/nobody/assets/x/dates", {"purchase_date": "2024-01-01"})[0], 404)
        self.assertEqual(s.api("GET", path)[0], 405)
        self.assertEqual(self.raw_records(), [])  # nothing produced by the refusals

        st, js, _ = s.api("PUT", path, {"purchase_date": "2024-03-01", "warranty_expires": None})
        self.assertEqual(st, 202, js)
        self.assertEqual(js["asset_id"], asset)
        self.assertRegex(js["edit_id"], "^[0-9a-f]{32}$")
        recs = self.raw_records()
        self.assertEqual(len(recs), 1, recs)
        key, env = recs[0]
        self.assertEqual(key, "delta")
        requested_at = env.pop("requested_at")
        self.assertRegex(requested_at, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        self.assertEqual(env, {"schema_version": 1, "kind": "edit", "tenant": "delta", "integration": "mspsync",
                               "type": "asset", "asset_id": asset, "edit_id": js["edit_id"],
                               "fields": {"purchase": "2024-03-01", "warranty": None}})
        # only the fields sent
        st, js, _ = s.api("PUT", path, {"warranty_expires": "2027-03-01"})
        self.assertEqual(st, 202, js)
        self.assertEqual(self.raw_records()[-1][1]["fields"], {"warranty": "2027-03-01"})

        # Write-back state of the asset's targets.
        wpath = "/v1/tenants/delta/assets/%s/writeback" % asset
        st, js, _ = s.api("GET", wpath)
        self.assertEqual((st, js), (200, {"asset_id": asset, "targets": {}}))
        s.redis("HSET", "mspsync:{delta}:wb:" + asset, "cwrmm:purchase",
                json.dumps({"state": "written", "value": "2024-03-01", "change_id": "ab12", "at": "2026-11-24T00:00:00.000Z"}),
                "syncro:warranty", json.dumps({"state": "failed", "value": "2027-03-01", "change_id": "ab13",
                                               "error": "Syncro answered 401", "at": "2026-11-24T00:00:01.000Z"}))
        st, js, _ = s.api("GET", wpath)
        self.assertEqual(st, 200, js)
        self.assertEqual(js["targets"]["cwrmm:purchase"], {"state": "written", "value": "2024-03-01",
                                                           "change_id": "ab12", "error": None,
                                                           "at": "2026-11-24T00:00:00.000Z"})
        self.assertEqual(js["targets"]["syncro:warranty"]["error"], "Syncro answered 401")
        self.assertEqual(s.api("GET", "/v1/tenants/delta/assets/cwrmm:nope/writeback")[0], 404)

    def test_syncro_takes_writeback_settings_and_can_be_disabled(self):
        s = self.s
        s.start_sim()
        s.add_tenant("echo")
        s.add_account("echo-msp", customers=1, assets=1, token="echo-key-123456")
        st, js, _ = s.api("PUT", "/v1/tenants/echo/integrations/syncro",
                          {"base_url": s.sim_base_url("echo-msp"), "api_key": "echo-key-123456",
                           "writeback": {"purchase_date": True, "warranty_expires": False}})
        self.assertEqual(st, 201, js)
        self.assertEqual(s.redis("HGET", "mspsync:{echo}:integration:syncro", "writeback_purchase"), "1")
        st, js, _ = s.api("PATCH", "/v1/tenants/echo/integrations/syncro", {"writeback": {"warranty_expires": True}})
        self.assertEqual(st, 200, js)
        self.assertEqual(js["writeback"], {"purchase_date": True, "warranty_expires": True})
        self.assertEqual(js["integration"], "syncro")
        st, js, _ = s.api("POST", "/v1/tenants/echo/integrations/syncro/disable")
        self.assertEqual((st, js["state"]), (200, "Disabled"))
        self.assertEqual(s.redis("HEXISTS", "mspsync:{echo}:integration:syncro", "api_key_sealed"), 0)
        self.assertEqual(s.api("POST", "/v1/tenants/echo/integrations/syncro/sync")[0], 409)
        self.assertEqual(s.api("GET", "/v1/tenants/echo/integrations/other")[0], 404)


if __name__ == "__main__":
    harness.main()
