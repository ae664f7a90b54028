#!/usr/bin/env python3
"""Tenant API keys with roles, the audit log and offboarding (issue 13 items 1-3), on the real
broker and Redis.

- Isolation, generated from docs/openapi.yaml: every operation names its least role
  (x-mspsync-role); each is called with a key of another tenant (404 as if absent, no Redis key
  changed, no Kafka record produced), with a key of each role of the right tenant (403 naming
  the role where the role does not cover it, never 401/403/404-unknown-tenant where it does),
  and the operator-only operations refuse every tenant key.
- Keys: the clear key is in the 201 answer only — not in the list, not in Redis, not in the
  gateway's log; a revoked key is refused by the very next request; an expired key is refused.
- Audit: each change leaves exactly one entry with the right actor, refused changes none,
  secrets read "[secret]", owners only, paged.
- Keys and audit are configuration: after a FLUSHALL they come back from the `config` topic, and
  meanwhile a key gets 503 (retry), never 401.
- mspsyncctl: keys create / list / revoke, audit list and tenants delete, end to end.
- Offboarding: DELETE /v1/tenants/{t} leaves no Redis key of the tenant, the last record of each
  of its keys on customers, assets and config is a tombstone, and the other tenant is untouched.
"""
import datetime
import json
import os
import subprocess
import time

import yaml

import harness
from harness import StackTest, wait_until
from test_ctl import Ctl

RULES = {"enabled": False, "auto_resolve": True,
         "rules": {"device_offline": {"priority": "1 High", "status": "New", "due_in_days": 2}}}
ROLES = ("viewer", "sync", "billing", "owner")
# a value for each path parameter; the tenant is filled in per call
PARAMS = {"integration": "syncro", "id": "syncro:1", "org_id": "org-1",
          "key_id": "0000000000000000"}


def covers(have, need):
    """The access rule of docs/openapi.yaml's description, independent of the gateway's code."""
    if need == "viewer":
        return True
    return have == "owner" or have == need


def operations():
    """[(method, path template, role)] of every operation of docs/openapi.yaml that takes a
    bearer token; an operation without x-mspsync-role fails here."""
    with open(os.path.join(harness.SOURCE, "docs/openapi.yaml")) as f:
        spec = yaml.safe_load(f)
    out, missing = [], []
    for path, item in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in item.items():
            if method == "parameters":
                continue
            role = op.get("x-mspsync-role")
            if role is None:
                missing.append("%s %s" % (method.upper(), path))
            elif role != "public":
                out.append((method.upper(), path, role))
    assert not missing, "operations without x-mspsync-role: %s" % missing
    return out


def fill(path, tenant):
    p = path.replace("{tenant}", tenant)
    for k, v in PARAMS.items():
        p = p.replace("{%s}" % k, v)
    return p


def utc(seconds_from_now):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def redis_state(s, pattern="*"):
    """{key: (type, value)} of every Redis key matching pattern."""
    keys = [k for k in s.redis_raw("--scan", "--pattern", pattern).split("\n") if k]
    out = {}
    for k in keys:
        t = s.redis_raw("TYPE", k).strip()
        cmd = {"hash": ["HGETALL", k], "string": ["GET", k], "set": ["SMEMBERS", k],
               "zset": ["ZRANGE", k, "0", "-1", "WITHSCORES"], "list": ["LRANGE", k, "0", "-1"]}.get(t)
        v = s.redis_raw(*cmd) if cmd else ""
        out[k] = (t, v if t not in ("set", "hash") else sorted(v.split("\n")))
    return out


def topic_ends(s):
    """{topic: {partition: end offset}} of every topic of this test."""
    out = subprocess.run(["kcat", "-L", "-J", "-b", s.brokers], capture_output=True, text=True,
                         timeout=60)
    names = [t["topic"] for t in json.loads(out.stdout)["topics"] if t["topic"].startswith(s.prefix)]
    assert names, "no topics of this test"
    return {n: s.topic_end_offsets(n[len(s.prefix):]) for n in sorted(names)}


def settled(s):
    """Topic end offsets once the journal is done writing (two reads alike)."""
    last = [None]

    def same():
        now = topic_ends(s)
        ok = now == last[0]
        last[0] = now
        return now if ok else None
    return wait_until(same, 60, "the topics to stop growing", interval=0.5)


class AccessTest(StackTest):

    def setUp(self):
        self.s = self.make_stack(sim_config={"rate_limit": 0})

    def test_every_route_checks_the_tenant_and_the_role_from_openapi(self):
        s = self.s
        s.add_tenant("amber")
        s.add_tenant("birch")
        keys = {r: s.add_key("amber", r)[1] for r in ROLES}
        birch_owner = s.add_key("birch", "owner")[1]
        ops = operations()
        self.assertGreater(len(ops), 30)
        # each role of the right tenant: 403 naming the role exactly where it does not cover it
        for method, path, need in ops:
            body = {} if method in ("POST", "PUT", "PATCH") else None
            for role in ROLES:
                url = fill(path, "amber")
                st, js, _ = s.api(method, url, body, token=keys[role])
                what = "%s %s as %s (needs %s): %s %r" % (method, url, role, need, st, js)
                if need == "operator":
                    self.assertEqual(st, 403, what)
                    self.assertIn("operator token", js["error"], what)
                elif covers(role, need):
                    self.assertNotIn(st, (401, 403), what)
                    self.assertFalse(st == 404 and "unknown tenant" in js["error"], what)
                else:
                    self.assertEqual(st, 403, what)
                    self.assertIn("needs the %s role" % need, js["error"], what)
        # another tenant's key: 404 as if absent, nothing changed, nothing produced
        before_redis, before_topics = redis_state(s), settled(s)
        for method, path, need in ops:
            if "{tenant}" not in path:
                continue
            body = {} if method in ("POST", "PUT", "PATCH") else None
            url = fill(path, "amber")
            st, js, _ = s.api(method, url, body, token=birch_owner)
            self.assertEqual(st, 404, "%s %s with birch's key: %s %r" % (method, url, st, js))
            self.assertEqual(js, {"error": 'unknown tenant "amber"'})
            # the same answer as for a tenant that does not exist at all
            st2, js2, _ = s.api(method, fill(path, "nosuch"), body, token=birch_owner)
            self.assertEqual((st2, js2["error"].replace("nosuch", "amber")), (st, js["error"]))
        self.assertEqual(redis_state(s), before_redis)
        self.assertEqual(topic_ends(s), before_topics)
        # the operator token still reaches every tenant (bootstrap and support)
        st, js, _ = s.api("GET", "/v1/tenants/amber/keys")
        self.assertEqual((st, len(js["keys"])), (200, 4))

    def test_keys_are_shown_once_hashed_revocable_and_expire(self):
        s = self.s
        s.add_tenant("amber")
        st, created, _ = s.api("POST", "/v1/tenants/amber/keys", {"name": "ops", "role": "owner"})
        self.assertEqual(st, 201, created)
        token, kid = created["key"], created["id"]
        secret = token.rsplit("_", 1)[1]
        self.assertTrue(token.startswith("msk_amber_%s_" % kid), token)
        self.assertEqual(len(secret), 64)
        st, js, _ = s.api("GET", "/v1/tenants/amber", token=token)
        self.assertEqual(st, 200, js)
        # listed without the key or its hash
        st, js, _ = s.api("GET", "/v1/tenants/amber/keys", token=token)
        self.assertEqual(st, 200)
        self.assertEqual(js["keys"], [{"id": kid, "name": "ops", "role": "owner",
                                       "created_at": created["created_at"], "expires_at": None}])
        self.assertNotIn(secret, json.dumps(js))
        # nowhere in Redis in clear (nor the whole token)
        dump = json.dumps(redis_state(s))
        self.assertIn(kid, dump)
        self.assertNotIn(secret, dump)
        # refused inputs, each with a clear message
        for body, word in (({"name": "x", "role": "admin"}, "role"),
                           ({"name": "", "role": "owner"}, "name"),
                           ({"name": "x", "role": "owner", "expires_at": "tomorrow"}, "expires_at"),
                           ({"name": "x", "role": "owner", "expires_at": utc(-60)}, "past"),
                           ({"name": "x", "role": "owner", "scope": "all"}, "scope")):
            st, js, _ = s.api("POST", "/v1/tenants/amber/keys", body, token=token)
            self.assertEqual(st, 400, (body, js))
            self.assertIn(word, js["error"])
        # a wrong secret with a real id, a key of a tenant that has no such key: 401
        forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
        self.assertEqual(s.api("GET", "/v1/tenants/amber", token=forged)[0], 401)
        self.assertEqual(s.api("GET", "/v1/tenants/amber",
                               token=token.replace("msk_amber_", "msk_birch_"))[0], 401)
        # an expiring key works, then is refused once its time has passed
        _, short = s.add_key("amber", "viewer", expires_at=utc(3), token=token)
        self.assertEqual(s.api("GET", "/v1/tenants/amber", token=short)[0], 200)
        wait_until(lambda: s.api("GET", "/v1/tenants/amber", token=short)[0] == 401, 30,
                   "the expired key refused")
        # a revoked key is refused by the very next request
        vid, viewer = s.add_key("amber", "viewer", token=token)
        self.assertEqual(s.api("GET", "/v1/tenants/amber", token=viewer)[0], 200)
        self.assertEqual(s.api("DELETE", "/v1/tenants/amber/keys/" + vid, token=token)[0], 204)
        st, js, _ = s.api("GET", "/v1/tenants/amber", token=viewer)
        self.assertEqual(st, 401, js)
        self.assertEqual(s.api("DELETE", "/v1/tenants/amber/keys/" + vid, token=token)[0], 404)
        # never in the gateway's log
        log = s.gateway.logtext()
        for k in (token, viewer, short):
            self.assertNotIn(k.rsplit("_", 1)[1], log)

    def test_each_change_leaves_one_audit_entry_with_its_actor(self):
        s = self.s
        s.add_tenant("amber")
        expected = []  # (actor id or "operator", method, target)
        oid, owner = s.add_key("amber", "owner", name="alice")
        expected.append(("operator", "POST", "/v1/tenants/amber/keys"))
        sid, sync = s.add_key("amber", "sync", name="sync-bot", token=owner)
        expected.append((oid, "POST", "/v1/tenants/amber/keys"))
        vid, viewer = s.add_key("amber", "viewer", name="auditor", token=owner)
        expected.append((oid, "POST", "/v1/tenants/amber/keys"))
        st, js, _ = s.api("PUT", "/v1/tenants/amber/ticketing", RULES, token=sync)
        self.assertEqual(st, 200, js)
        expected.append((sid, "PUT", "/v1/tenants/amber/ticketing"))
        # refused or failed changes leave nothing
        self.assertEqual(s.api("PUT", "/v1/tenants/amber/ticketing", RULES, token=viewer)[0], 403)
        self.assertEqual(s.api("PUT", "/v1/tenants/amber/ticketing", {"bogus": 1}, token=sync)[0], 400)
        st, js, _ = s.api("POST", "/v1/tenants/amber/webhooks/mtp/secret", None, token=owner)
        self.assertEqual(st, 201, js)
        webhook_secret = js["secret"]
        expected.append((oid, "POST", "/v1/tenants/amber/webhooks/mtp/secret"))
        self.assertEqual(s.api("DELETE", "/v1/tenants/amber/keys/" + vid, token=owner)[0], 204)
        expected.append((oid, "DELETE", "/v1/tenants/amber/keys/" + vid))
        # owners only
        self.assertEqual(s.api("GET", "/v1/tenants/amber/audit", token=sync)[0], 403)
        entries, before = [], None
        while True:
            q = "?limit=2" + ("&before=%d" % before if before else "")
            st, js, _ = s.api("GET", "/v1/tenants/amber/audit" + q, token=owner)
            self.assertEqual(st, 200, js)
            self.assertLessEqual(len(js["entries"]), 2)
            entries += js["entries"]
            before = js["next_before"]
            if before is None:
                break
        entries.reverse()
        self.assertEqual([e["seq"] for e in entries], list(range(1, len(expected) + 1)))
        got = [(e["actor"].get("id", e["actor"]["type"]), e["method"], e["target"]) for e in entries]
        self.assertEqual(got, expected)
        self.assertEqual(entries[1]["actor"], {"type": "key", "id": oid, "name": "alice",
                                               "role": "owner"})
        # before/after of the settings; secrets as "[secret]"
        tk = entries[3]["changes"]["ticketing:config"]
        self.assertIsNone(tk["before"])
        rule = json.loads(tk["after"])["rules"]["device_offline"]
        self.assertEqual((rule["priority"], rule["due_in_days"]), ("1 High", 2))
        self.assertEqual(list(entries[3]["changes"]), ["ticketing:config"])
        wh = entries[4]["changes"]["webhook:mtp"]["after"]
        self.assertIn("[secret]", json.dumps(wh))
        self.assertEqual(entries[0]["changes"]["keys"]["after"][oid]["hash"], "[secret]")
        text = json.dumps(entries)
        self.assertNotIn(webhook_secret, text)
        for t in (owner, sync, viewer):
            self.assertNotIn(t.rsplit("_", 1)[1], text)

    def test_keys_and_audit_survive_a_lost_redis(self):
        s = self.s
        s.add_tenant("amber")
        oid, owner = s.add_key("amber", "owner")
        self.assertEqual(s.api("PUT", "/v1/tenants/amber/ticketing", RULES, token=owner)[0], 200)
        st, audit, _ = s.api("GET", "/v1/tenants/amber/audit", token=owner)
        self.assertEqual((st, len(audit["entries"])), (200, 2))
        settled(s)  # the journal has produced the key and the entries
        s.redis("FLUSHALL")
        seen = set()

        def back():
            st, js, _ = s.api("GET", "/v1/tenants/amber/audit", token=owner)
            seen.add(st)
            return js if st == 200 else None
        self.assertEqual(wait_until(back, 60, "the key and the audit log restored"), audit)
        self.assertEqual(seen - {503}, {200})  # never 401: the key was only not back yet

    def test_offboarding_removes_every_key_and_tombstones_every_record(self):
        s = self.s
        s.add_synced_tenant("amber", customers=3, assets=5)
        s.add_synced_tenant("birch", customers=2, assets=4)
        _, owner = s.add_key("amber", "owner")
        self.assertEqual(s.api("PUT", "/v1/tenants/amber/ticketing", RULES, token=owner)[0], 200)
        self.assertEqual(s.api("POST", "/v1/tenants/amber/webhooks/mtp/secret", None,
                               token=owner)[0], 201)
        s.wait_normalized()
        birch_before = redis_state(s, "mspsync:{birch}:*")
        self.assertTrue(redis_state(s, "mspsync:{amber}:*"))
        # a tenant key cannot offboard, not even its owner
        st, js, _ = s.api("DELETE", "/v1/tenants/amber", token=owner)
        self.assertEqual(st, 403, js)
        st, js, _ = s.api("DELETE", "/v1/tenants/amber")
        self.assertEqual(st, 204, js)
        self.assertEqual(redis_state(s, "mspsync:{amber}:*"), {})
        self.assertNotIn("amber", s.redis_raw("SMEMBERS", "mspsync:{_}:tenants").split())
        self.assertEqual(s.api("GET", "/v1/tenants/amber")[0], 404)
        self.assertEqual(s.api("GET", "/v1/tenants/amber", token=owner)[0], 401)

        def last_records(topic):
            last = {}
            for line in s.kcat(topic, fmt="%k\t%S\n"):
                k, n = line.rsplit("\t", 1)
                last[k] = int(n)
            return last

        def all_tombstoned():
            for topic in ("customers", "assets", "config"):
                last = last_records(topic)
                amber = {k: n for k, n in last.items() if k.startswith("amber/")}
                if not amber or any(n != -1 for n in amber.values()):
                    return None
                if not any(k.startswith("birch/") and n > 0 for k, n in last.items()):
                    raise AssertionError("birch lost its records on %s" % topic)
            return True
        wait_until(all_tombstoned, 60, "a tombstone as amber's last record of every key")
        self.assertEqual(redis_state(s, "mspsync:{birch}:*"), birch_before)
        st, js, _ = s.api("GET", "/v1/tenants/birch/assets")
        self.assertEqual((st, js["total"] if "total" in js else len(js["assets"])), (200, 4))

    def test_ctl_keys_audit_and_tenants_delete(self):
        s = self.s
        op = Ctl(s.dir, s.gateway.url(""), s.admin_token, tenant="amber")
        rc, out, err = op.run("tenants", "create", "amber", "Amber MSP")
        self.assertEqual(rc, 0, err)
        created = op.json("keys", "create", "nightly", "--role", "owner")
        self.assertEqual((created["name"], created["role"]), ("nightly", "owner"))
        rc, out, err = op.run("keys", "create", "reader", "--role", "viewer")
        self.assertEqual(rc, 0, err)
        self.assertIn("cannot be shown again", out)
        self.assertEqual(op.run("keys", "create", "x")[0], 2)  # --role is required
        self.assertEqual(op.run("keys", "create", "x", "--role", "admin")[0], 1)  # the API refuses
        owner = Ctl(os.path.join(s.dir, "owner"), s.gateway.url(""), created["key"], tenant="amber")
        listed = owner.json("keys", "list")["keys"]
        self.assertEqual(sorted(k["name"] for k in listed), ["nightly", "reader"])
        rc, out, err = owner.run("keys", "list")
        self.assertEqual(rc, 0, err)
        self.assertIn("nightly", out)
        self.assertNotIn(created["key"], out)
        reader = [k["id"] for k in listed if k["name"] == "reader"][0]
        rc, out, err = owner.run("keys", "revoke", reader)
        self.assertEqual((rc, out.strip()), (0, "revoked key " + reader), err)
        self.assertEqual(owner.run("keys", "revoke", reader)[0], 5)  # gone: not found
        audit = owner.json("audit", "list", "--limit", "2")
        self.assertEqual([e["method"] for e in audit["entries"]], ["DELETE", "POST"])
        self.assertEqual(audit["next_before"], 2)
        rc, out, err = owner.run("audit", "list")
        self.assertEqual(rc, 0, err)
        self.assertIn("/v1/tenants/amber/keys/" + reader, out)
        self.assertIn("operator", out)
        self.assertEqual(owner.run("audit", "list", "--limit", "ten")[0], 2)
        # offboarding: confirmed, and by the operator only
        self.assertEqual(op.run("tenants", "delete", "amber")[0], 2)
        self.assertEqual(owner.run("tenants", "delete", "amber", "--yes")[0], 1)
        rc, out, err = op.run("tenants", "delete", "amber", "--yes")
        self.assertEqual((rc, out.strip()), (0, "offboarded tenant amber"), err)
        self.assertEqual(op.run("keys", "list")[0], 5)
        self.assertEqual(owner.run("keys", "list")[0], 1)  # the key died with its tenant
        for text in op.outputs + owner.outputs:
            self.assertNotIn(s.admin_token, text)


if __name__ == "__main__":
    harness.main()
