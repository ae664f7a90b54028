#!/usr/bin/env python3
"""The ticketing admin API: the config is validated strictly and stored complete; MTP orgs are
mapped to synced Syncro customers (with suggestions for the ones seen by webhook); the orgs the
ticket-creator could not place show in the ticketing and the integration status until mapped."""
import hashlib
import hmac
import json
import time

import harness
from harness import StackTest, http

DEFAULT_RULE = {"create": True, "problem_type": None, "priority": None, "status": "New",
                "due_in_days": None, "assignee_user_id": None, "min_severity": None}
DEFAULT_PRIORITIES = {"critical": "0 Urgent", "high": "1 High", "medium": "2 Normal",
                      "low": "3 Low", "info": "3 Low", "none": "2 Normal"}
DEFAULT_CONFIG = {"enabled": False, "auto_resolve": False, "resolve_status": "Resolved",
                  "reopen_window_days": 7, "rules": {"*": DEFAULT_RULE}, "min_severity": "high",
                  "priority_by_severity": DEFAULT_PRIORITIES, "when_disabled": "skip"}


def send_webhook(s, tenant, secret, body):
    """A correctly signed MTP webhook (helper local to this test: harness.py is shared)."""
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    sig = "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return http("POST", s.gateway.url("/v1/webhooks/mtp/%s" % tenant), raw,
                {"X-MSPSync-Timestamp": ts, "X-MSPSync-Signature": sig})


class TicketingApiTest(StackTest):

    def test_config_is_validated_strictly_and_stored_complete(self):
        s = self.make_stack(fetchers=0)
        s.add_tenant("acme")
        path = "/v1/tenants/acme/ticketing"
        self.assertEqual(http("GET", s.gateway.url(path))[0], 401)
        self.assertEqual(http("PUT", s.gateway.url(path), {"enabled": True})[0], 401)
        self.assertEqual(s.api("GET", "/v1/tenants/nobody/ticketing")[0], 404)

        # Nothing stored: the defaults, and an empty status (no ticket settings synced: no rule
        # can be found invalid).
        st, js, _ = s.api("GET", path)
        self.assertEqual(st, 200, js)
        self.assertEqual(js["config"], DEFAULT_CONFIG)
        self.assertEqual(js["status"], {"unmapped_orgs": [], "held": 0, "paused": False,
                                        "state": "ok", "error": None, "hint": None,
                                        "settings_synced": False, "rules_invalid": []})

        bad = [
            ({"enabled": True, "colour": "red"}, '"colour"'),
            # A long non-ASCII key is echoed cut on a character boundary (the 64-byte cut falls
            # inside the 21st euro sign), not replaced by a generic "not UTF-8" answer.
            ({"xy" + "\u20ac" * 30: 1}, 'unknown key in the ticketing config: "xy%s" (allowed: '
             % ("\u20ac" * 20)),
            ({"rules": {"device_offline": {"priority": "1 High", "owner": 3}}}, "rules.device_offline"),
            ({"rules": {"device_offline": {"due_in_days": "3"}}}, "rules.device_offline.due_in_days"),
            ({"rules": {"device_offline": {"due_in_days": 3651}}}, "rules.device_offline.due_in_days"),
            ({"rules": {"disk.full": {"create": "yes"}}}, 'rules["disk.full"].create'),
            ({"rules": {"*": {"status": ""}}}, "rules.*.status"),
            ({"rules": {"x": {"assignee_user_id": 0}}}, "rules.x.assignee_user_id"),
            ({"rules": {"x": {"problem_type": "p" * 101}}}, "rules.x.problem_type"),
            ({"rules": {"x": 1}}, "rules.x must be an object"),
            ({"rules": {"": {}}}, "rules keys"),
            ({"rules": []}, "rules must be an object"),
            ({"enabled": "yes"}, "enabled must be true or false"),
            ({"reopen_window_days": 2.5}, "reopen_window_days"),
            ({"reopen_window_days": -1}, "reopen_window_days"),
            ({"resolve_status": None}, "resolve_status"),
            ({"min_severity": "urgent"}, 'min_severity must be one of info, low, medium, high, '
             'critical, or null (got "urgent")'),
            ({"rules": {"x": {"min_severity": 3}}}, "rules.x.min_severity"),
            ({"when_disabled": "keep"}, 'when_disabled must be "skip" or "hold"'),
            ({"priority_by_severity": {"severe": "1 High"}}, '"severe"'),
            ({"priority_by_severity": {"high": 1}}, "priority_by_severity.high"),
        ]
        for body, text in bad:
            with self.subTest(body=body):
                st, js, _ = s.api("PUT", path, body)
                self.assertEqual(st, 400, (body, js))
                self.assertIn(text, js["error"])
        st, js, _ = s.api("PUT", path, b'{"enabled": tru')
        self.assertEqual(st, 400)
        self.assertIn("malformed JSON", js["error"])
        self.assertEqual(s.redis("EXISTS", "mspsync:{acme}:ticketing:config"), 0)

        # A partial document is completed with the defaults; "*" is added when omitted.
        st, js, _ = s.api("PUT", path, {"enabled": True, "rules": {
            "device_offline": {"priority": "1 High", "due_in_days": 1,
                               "assignee_user_id": 9007199254740993},
            "backup_failed": {"create": False, "priority": None}}})
        self.assertEqual(st, 200, js)
        want = {"enabled": True, "auto_resolve": False, "resolve_status": "Resolved",
                "reopen_window_days": 7, "min_severity": "high",
                "priority_by_severity": DEFAULT_PRIORITIES, "when_disabled": "skip", "rules": {
                    "device_offline": dict(DEFAULT_RULE, priority="1 High", due_in_days=1,
                                           assignee_user_id=9007199254740993),
                    "backup_failed": dict(DEFAULT_RULE, create=False, priority=None),
                    "*": DEFAULT_RULE}}
        self.assertEqual(js["config"], want)
        self.assertEqual(s.api("GET", path)[1]["config"], want)
        self.assertEqual(json.loads(s.redis_raw("GET", "mspsync:{acme}:ticketing:config")), want)
        # A full document with its own "*" is stored as given.
        full = {"enabled": False, "auto_resolve": True, "resolve_status": "Closed",
                "reopen_window_days": 0, "min_severity": None, "when_disabled": "hold",
                "priority_by_severity": dict(DEFAULT_PRIORITIES, none=None),
                "rules": {"*": dict(DEFAULT_RULE, create=False, problem_type="Monitoring",
                                    min_severity="critical")}}
        self.assertEqual(s.api("PUT", path, full)[1]["config"], full)
        self.assertEqual(s.api("GET", path)[1]["config"], full)

    def test_orgs_are_mapped_to_synced_customers_and_unmapped_ones_show_until_mapped(self):
        s = self.make_stack()
        s.add_tenant("acme")
        s.add_account("acme-msp", customers=8, assets=4, token="acme-key-123456")
        st, js, _ = s.connect("acme", "acme-msp", "acme-key-123456")
        self.assertEqual(st, 201, js)
        s.wait_synced("acme", js["job_id"], assets=4)
        customers = s.inventory("acme", "customers")
        self.assertEqual(len(customers), 8)
        names = [c["name"] for c in customers]
        # A customer whose name no other customer shares.
        target = next(c for c in customers if c["name"] and names.count(c["name"]) == 1)
        cid = target["sources"][0]["id"]
        st, js, _ = s.api("PUT", "/v1/tenants/acme/ticketing", {"enabled": True})
        self.assertEqual(st, 200, js)

        # An org seen by webhook, named like the customer plus a legal suffix.
        secret = s.api("POST", "/v1/tenants/acme/webhooks/mtp/secret")[1]["secret"]
        st, js, _ = send_webhook(s, "acme", secret, {
            "id": "inc-1", "org_id": "org-42", "org_name": target["name"] + ", Inc.",
            "alert_type": "device_offline", "status": "open", "title": "WS-01 offline",
            "occurred_at": "2026-11-23T21:45:00Z"})
        self.assertEqual(st, 202, js)
        st, js, _ = s.api("GET", "/v1/tenants/acme/ticketing/orgs")
        self.assertEqual(st, 200, js)
        self.assertEqual([o["org_id"] for o in js["orgs"]], ["org-42"])
        org = js["orgs"][0]
        self.assertEqual(org["org_name"], target["name"] + ", Inc.")
        self.assertIsNone(org["mapping"])
        self.assertEqual(org["unmapped_incidents"], 0)
        self.assertGreaterEqual(len(org["suggestions"]), 1)
        self.assertLessEqual(len(org["suggestions"]), 3)
        self.assertEqual(org["suggestions"][0], {"customer_id": cid, "name": target["name"],
                                                 "score": 1.0})
        scores = [x["score"] for x in org["suggestions"]]
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertTrue(all(x >= 0.5 for x in scores))

        # The ticket-creator's view: two orgs it could not place, and its counters.
        s.redis("HSET", "mspsync:{acme}:ticketing:unmapped", "org-42", target["name"] + ", Inc.",
                "org-9", "Other Org")
        s.redis("HSET", "mspsync:{acme}:ticketing:unmapped_count", "org-42", "3", "org-9", "1")
        s.redis("HSET", "mspsync:{acme}:ticketing:stats", "tickets_created", "4", "dead_lettered",
                "2", "last_error", "Syncro POST /tickets answered 422: Problem type is invalid",
                "last_error_at", "2026-11-23T21:50:00.000Z")
        unmapped = [{"org_id": "org-42", "org_name": target["name"] + ", Inc.", "incidents": 3},
                    {"org_id": "org-9", "org_name": "Other Org", "incidents": 1}]
        status = s.api("GET", "/v1/tenants/acme/ticketing")[1]["status"]
        self.assertEqual(status["tickets_created"], 4)
        self.assertEqual(status["dead_lettered"], 2)
        self.assertEqual(status["last_error"], "Syncro POST /tickets answered 422: Problem type is invalid")
        self.assertEqual(status["unmapped_orgs"], unmapped)
        tk = s.status("acme")["ticketing"]
        self.assertEqual(tk, {"enabled": True, "unmapped_orgs": unmapped, "dead_lettered": 2,
                              "last_error": "Syncro POST /tickets answered 422: Problem type is invalid",
                              "last_error_at": "2026-11-23T21:50:00.000Z"})
        orgs = {o["org_id"]: o for o in s.api("GET", "/v1/tenants/acme/ticketing/orgs")[1]["orgs"]}
        self.assertEqual(sorted(orgs), ["org-42", "org-9"])
        self.assertEqual(orgs["org-42"]["unmapped_incidents"], 3)
        self.assertEqual(orgs["org-9"]["org_name"], "Other Org")
        self.assertIsNone(orgs["org-9"]["mapping"])

        # Mapping errors: no such customer, not an id, unknown key, no bearer.
        opath = "/v1/tenants/acme/ticketing/orgs/org-42"
        st, js, _ = s.api("PUT", opath, {"customer_id": 999999999})
        self.assertEqual(st, 400)
        self.assertIn('customer 999999999 is not in the synced Syncro customers of tenant "acme"',
                      js["error"])
        for body in ({"customer_id": "abc"}, {"customer_id": -5}, {}, {"customer_id": 1.5}):
            st, js, _ = s.api("PUT", opath, body)
            self.assertEqual(st, 400, body)
            self.assertIn("customer_id", js["error"])
        st, js, _ = s.api("PUT", opath, {"customer_id": int(cid), "note": "x"})
        self.assertEqual(st, 400)
        self.assertIn('"note"', js["error"])
        self.assertEqual(http("PUT", s.gateway.url(opath), {"customer_id": int(cid)})[0], 401)
        self.assertEqual(s.redis("HEXISTS", "mspsync:{acme}:ticketing:unmapped", "org-42"), 1)

        # Map org-42 (integer id): stored, and gone from the unmapped hashes and both statuses.
        st, js, _ = s.api("PUT", opath, {"customer_id": int(cid)})
        self.assertEqual(st, 200, js)
        self.assertEqual(js["org_id"], "org-42")
        self.assertEqual(js["customer_id"], cid)
        self.assertEqual(js["customer_name"], target["name"])
        self.assertRegex(js["mapped_at"], r"^\d{4}-\d\d-\d\dT")
        stored = json.loads(s.redis_raw("HGET", "mspsync:{acme}:ticketing:orgmap", "org-42"))
        self.assertEqual(stored, {k: js[k] for k in ("customer_id", "customer_name", "mapped_at")})
        self.assertEqual(s.redis("HEXISTS", "mspsync:{acme}:ticketing:unmapped", "org-42"), 0)
        self.assertEqual(s.redis("HEXISTS", "mspsync:{acme}:ticketing:unmapped_count", "org-42"), 0)
        self.assertEqual(s.api("GET", "/v1/tenants/acme/ticketing")[1]["status"]["unmapped_orgs"],
                         unmapped[1:])
        self.assertEqual(s.status("acme")["ticketing"]["unmapped_orgs"], unmapped[1:])
        orgs = {o["org_id"]: o for o in s.api("GET", "/v1/tenants/acme/ticketing/orgs")[1]["orgs"]}
        self.assertEqual(orgs["org-42"]["mapping"]["customer_id"], cid)
        self.assertEqual(orgs["org-42"]["suggestions"], [])
        self.assertEqual(orgs["org-42"]["unmapped_incidents"], 0)

        # A decimal-string id works too; unmapping answers 204, then 404.
        other = next(c for c in customers if c is not target)["sources"][0]["id"]
        st, js, _ = s.api("PUT", "/v1/tenants/acme/ticketing/orgs/org-9", {"customer_id": other})
        self.assertEqual(st, 200, js)
        self.assertEqual(js["customer_id"], other)
        self.assertEqual(s.status("acme")["ticketing"]["unmapped_orgs"], [])
        self.assertEqual(s.api("DELETE", "/v1/tenants/acme/ticketing/orgs/org-9")[0], 204)
        st, js, _ = s.api("DELETE", "/v1/tenants/acme/ticketing/orgs/org-9")
        self.assertEqual(st, 404)
        self.assertIn('org "org-9" is not mapped', js["error"])

        # Removing the integration drops the mappings (their customers are gone) but keeps the
        # ticketing config and the webhook secret.
        self.assertEqual(s.api("DELETE", "/v1/tenants/acme/integrations/syncro")[0], 204)
        self.assertEqual(s.redis("EXISTS", "mspsync:{acme}:ticketing:orgmap"), 0)
        self.assertEqual(s.redis("EXISTS", "mspsync:{acme}:ticketing:config"), 1)
        self.assertTrue(s.api("GET", "/v1/tenants/acme/webhooks/mtp")[1]["configured"])
        self.assertEqual(s.api("GET", "/v1/tenants/acme/ticketing")[1]["config"]["enabled"], True)


if __name__ == "__main__":
    harness.main()
