#!/usr/bin/env python3
"""The master key rotates without orphaning a credential (MSPSYNC_SECRET_KEYS, a key ring).

Two tenants with a Syncro integration and a webhook secret, all sealed with key A. The services
restart on the ring "B,A": everything still opens (a sync runs, a signed incident is accepted) and
GET /v1/secrets reports every secret as sealed with an older key. POST /v1/secrets/reseal seals
them all with B; the services restart on "B" alone and everything still works. A credential
sealed only with the removed key A (put back from before the re-seal) is reported by tenant and
integration as needing to be saved again, and counted in the gauge mspsync_secrets.
"""
import hashlib
import hmac
import json
import os
import subprocess
import time

import harness
from harness import StackTest, http

INCIDENT = {"org_id": "org-7", "org_name": "Contoso Ltd", "alert_type": "device_offline",
            "status": "open", "severity": "high", "title": "WS-01 offline", "subject": "WS-01",
            "occurred_at": "2026-11-23T21:45:00Z"}


def signed(secret, body):
    ts = str(int(time.time()))
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-MSPSync-Timestamp": ts, "X-MSPSync-Signature": "v1=" + mac,
            "Content-Type": "application/json"}


class KeyRotationTest(StackTest):

    def restart_with(self, s, ring):
        """Every service again, with MSPSYNC_SECRET_KEYS=ring instead of MSPSYNC_SECRET_KEY."""
        for svc in s.services:
            if svc is s.sim:  # the vendor keeps its address
                continue
            self.assertEqual(svc.stop(), 0, svc.name)
            svc.env = dict(svc.env)
            svc.env.pop("MSPSYNC_SECRET_KEY", None)
            svc.env["MSPSYNC_SECRET_KEYS"] = ring
            s.restart(svc)

    def secrets(self, s):
        st, js, _ = s.api("GET", "/v1/secrets")
        self.assertEqual(st, 200, js)
        return js

    def post_incident(self, s, tenant, secret, n):
        body = json.dumps(dict(INCIDENT, id="inc-%d" % n, org_id="org-%d" % n)).encode()
        return http("POST", s.gateway.url("/v1/webhooks/mtp/%s" % tenant), body, signed(secret, body))

    def test_rotate_reseal_drop_the_old_key(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        key_a, key_b = s.secret_key, os.urandom(32).hex()
        hook = {}
        for t in ("north", "south"):
            s.add_synced_tenant(t, customers=3, assets=20)
            st, js, _ = s.api("POST", "/v1/tenants/%s/webhooks/mtp/secret" % t)
            self.assertEqual(st, 201, js)
            hook[t] = js["secret"]
        before = self.secrets(s)
        self.assertEqual((before["sealed_with_newest"], before["sealed_with_older"],
                          before["unreadable"], before["keys_in_ring"]), (4, 0, 0, 1), before)
        south_under_a = s.redis_raw("HGET", "mspsync:{south}:integration:syncro", "api_key_sealed").strip()

        # 1. The new key in front: everything sealed with A still opens.
        self.restart_with(s, "%s,%s" % (key_b, key_a))
        js = self.secrets(s)
        self.assertEqual((js["sealed_with_newest"], js["sealed_with_older"], js["unreadable"],
                          js["keys_in_ring"]), (0, 4, 0, 2), js)
        s.wait_synced("north", s.sync_now("north"), assets=20)
        st, js, _ = self.post_incident(s, "north", hook["north"], 1)
        self.assertEqual(st, 202, js)

        # 2. Re-seal: every secret now under B, and nothing in the answer is secret.
        st, js, _ = s.api("POST", "/v1/secrets/reseal")
        self.assertEqual(st, 200, js)
        self.assertEqual((js["resealed"], js["sealed_with_newest"], js["sealed_with_older"]), (4, 4, 0), js)
        for t in ("north", "south"):
            self.assertNotIn(hook[t], json.dumps(js))
        # The CLI drives the same routes: a second re-seal has nothing left to do.
        out = subprocess.run([os.path.join(harness.BUILD, "tools/mspsyncctl/mspsyncctl"), "--json",
                              "--url", s.gateway.url(""), "--token", s.admin_token, "secrets", "reseal"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        again = json.loads(out.stdout)
        self.assertEqual((again["resealed"], again["sealed_with_older"]), (0, 0), again)

        # 3. The old key removed: everything works on B alone.
        self.restart_with(s, key_b)
        js = self.secrets(s)
        self.assertEqual((js["sealed_with_newest"], js["sealed_with_older"], js["unreadable"]), (4, 0, 0), js)
        for t in ("north", "south"):
            s.wait_synced(t, s.sync_now(t), assets=20)
            self.assertEqual(self.post_incident(s, t, hook[t], 2)[0], 202)

        # 4. A credential only the removed key opens is named, with what to do, and counted.
        s.redis_raw("HSET", "mspsync:{south}:integration:syncro", "api_key_sealed", south_under_a)
        js = self.secrets(s)
        self.assertEqual(js["unreadable"], 1, js)
        self.assertEqual([(n["tenant"], n["secret"]) for n in js["needs_saving"]],
                         [("south", "integration:syncro")], js)
        self.assertIn("save the integration again", js["needs_saving"][0]["hint"])
        metrics = http("GET", s.gateway.url("/metrics"))[1]
        self.assertRegex(metrics, r'mspsync_secrets\{[^}]*key="unreadable"\} 1\n')
        # Saving it again (with the newest key) clears it.
        st, js, _ = s.connect("south", "south-msp", "south-key-123456")
        self.assertEqual(st, 201, js)
        js = self.secrets(s)
        self.assertEqual((js["unreadable"], js["needs_saving"]), (0, []), js)


if __name__ == "__main__":
    harness.main()
