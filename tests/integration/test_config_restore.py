#!/usr/bin/env python3
"""Configuration survives a lost Redis: journaled to the compacted `config` topic, restored from it.

Two tenants with Syncro integrations, a webhook secret, ticketing rules and an org mapping; one
integration is then removed. Redis is wiped (FLUSHALL) under a running gateway: without any
operator action the configuration is back — the same answers from the admin API, the removed
integration still removed, the stored credential and webhook secret usable (a sync runs, a signed
incident is accepted). Then Redis is wiped while the gateway is down, and the gateway restores it
when it starts; a sync job that reaches the fetcher meanwhile waits for the restore. While restoring, the API answers 503 with Retry-After, never 404.
"""
import hashlib
import hmac
import json
import subprocess
import time

import harness
from harness import StackTest, http, wait_until

INCIDENT = {"id": "inc-1", "org_id": "org-42", "org_name": "Contoso Ltd",
            "alert_type": "device_offline", "status": "open", "severity": "high",
            "title": "WS-01 offline", "occurred_at": "2026-11-23T21:45:00Z"}
RULES = {"enabled": False, "auto_resolve": True,
         "rules": {"device_offline": {"priority": "1 High", "status": "New", "due_in_days": 2}}}
CONFIG_FIELDS = ("integration", "base_url", "account_id", "enabled", "created_at", "updated_at",
                 "writeback")


def post_incident(s, tenant, secret, inc_id):
    body = json.dumps(dict(INCIDENT, id=inc_id)).encode()
    ts = str(int(time.time()))
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return http("POST", s.gateway.url("/v1/webhooks/mtp/%s" % tenant), body,
                {"X-MSPSync-Timestamp": ts, "X-MSPSync-Signature": "v1=" + mac})


class ConfigRestoreTest(StackTest):

    def snapshot(self, s):
        """What an operator configured, as the API shows it."""
        out = {"tenants": s.api("GET", "/v1/tenants")[1]}
        for t in ("amber", "birch"):
            st, js, _ = s.api("GET", "/v1/tenants/%s/integrations/syncro" % t)
            out[t] = (st, {k: js.get(k) for k in CONFIG_FIELDS} if st == 200 else None)
        out["ticketing"] = s.api("GET", "/v1/tenants/amber/ticketing")[1]["config"]
        out["webhook"] = s.api("GET", "/v1/tenants/amber/webhooks/mtp")[1]
        out["orgmap"] = s.redis("HGETALL", "mspsync:{amber}:ticketing:orgmap")
        return out

    def wait_restored(self, s):
        def served():
            st, js, hdrs = s.api("GET", "/v1/tenants/amber")
            if st == 503:
                self.assertIn("restoring", js["error"])
                return None
            self.assertEqual(st, 200, js)  # never a 404 for a tenant that exists
            return js
        wait_until(served, 120, "the gateway serving again after the restore")

    def test_redis_wiped_under_and_before_the_gateway(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        for t in ("amber", "birch"):
            s.add_synced_tenant(t, customers=4, assets=6)
        secret = s.api("POST", "/v1/tenants/amber/webhooks/mtp/secret")[1]["secret"]
        self.assertEqual(s.api("PUT", "/v1/tenants/amber/ticketing", RULES)[0], 200)
        cid = s.inventory("amber", "customers")[0]["sources"][0]["id"]
        st, js, _ = s.api("PUT", "/v1/tenants/amber/ticketing/orgs/org-42", {"customer_id": int(cid)})
        self.assertEqual(st, 200, js)
        self.assertEqual(s.api("DELETE", "/v1/tenants/birch/integrations/syncro")[0], 204)
        before = self.snapshot(s)
        self.assertEqual(before["birch"][0], 404)
        self.assertTrue(before["orgmap"])

        # The journal is asynchronous: wait until it has the last change (birch's tombstone).
        def journaled():
            size = dict(line.split("\t") for line in s.kcat("config", fmt="%k\t%S\n"))  # last wins
            return size.get("birch/integration:syncro") == "-1" and "amber/ticketing:orgmap" in size
        wait_until(journaled, 60, "the configuration journaled to Kafka")

        # 1. Wiped under a running gateway.
        s.redis("FLUSHALL")
        self.wait_restored(s)
        self.assertEqual(self.snapshot(s), before)
        self.assertIn("config.restored", s.gateway.logtext())
        st, js, _ = post_incident(s, "amber", secret, "inc-2")
        self.assertEqual(st, 202, js)
        s.wait_synced("amber", s.sync_now("amber"), assets=6)  # the sealed API key still opens

        # 2. Wiped while the gateway is down: restored before it serves. A sync job that reaches
        # the fetcher meanwhile waits for the restore instead of failing as "no integration".
        self.assertEqual(s.gateway.stop(), 0)
        s.redis("FLUSHALL")
        job = {"schema_version": 1, "job_id": "job-during-restore", "tenant": "amber",
               "integration": "syncro", "types": ["customers", "assets"], "mode": "full",
               "reason": "sync_now", "requested_at": "2026-12-06T00:00:00.000Z"}
        subprocess.run(["kcat", "-P", "-K", "\t", "-b", s.brokers, "-t", s.topic("sync.jobs")],
                       input="amber\t%s\n" % json.dumps(job), text=True, check=True, timeout=60)
        wait_until(lambda: "Redis is being restored" in s.fetchers[0].logtext(), 60,
                   "the fetcher waiting for the restore")
        s.restart(s.gateway)
        self.wait_restored(s)
        s.wait_synced("amber", "job-during-restore", assets=6)
        after = self.snapshot(s)
        self.assertEqual(after, before)
        st, js, _ = post_incident(s, "amber", secret, "inc-3")
        self.assertEqual(st, 202, js)


if __name__ == "__main__":
    harness.main()
