#!/usr/bin/env python3
"""Per-feature Syncro tokens (issue 11): the token recipes MSPs follow save with the features they
serve, a recipe short of one permission is refused naming exactly that one, ticketing cannot be
switched on with a key that cannot create tickets, and the Syncro address is accepted the way
users copy it."""
import harness
from harness import StackTest, wait_until

# The recipes of docs/setup.md, verbatim (Syncro's permission names).
ASSET_LIFECYCLE = ["Assets - View Details", "Assets - List/Search"]
INCIDENT = ["Customers - List/Search", "Customers - View Detail", "Tickets - Create",
            "Tickets - Edit", "Tickets - List/Search"]
CLIENT_PORTAL = ["Assets - View Details", "Assets - List/Search", "Assets - Edit", "Assets - Create",
                 "Customers - List/Search", "Customers - View Detail",
                 "Customers - View Total Invoiced", "Contacts - Import", "Tickets - List/Search",
                 "Tickets - View Details",
                 "Tickets - View 'Their Ticket' Details (assigned to them)", "Tickets - Create",
                 "Tickets - Edit", "Invoices - List/Search", "Estimates - List/Search",
                 "Payments - View List", "Recurring Invoices - List", "Recurring Invoices - Edit"]
ALL_FEATURES = ["assets", "customers", "contacts", "tickets", "ticketing", "writeback", "billing"]
# What each feature needs (vendor_syncro.c); the test asserts the gateway answers the same.
NEEDS = {"assets": ["Assets - List/Search"], "customers": ["Customers - List/Search"],
         "contacts": ["Customers - View Detail"], "tickets": ["Tickets - List/Search"],
         "ticketing": INCIDENT, "auto_resolve": ["Tickets - View Details"],
         "writeback": ["Assets - View Details", "Assets - Edit"],
         "billing": ["Recurring Invoices - List", "Recurring Invoices - Edit",
                     "Customers - List/Search"]}


def enabled(features):
    return sorted(f for f, v in features.items() if v["enabled"] and "option_of" not in v)


class FeaturesTest(StackTest):

    def setUp(self):
        self.s = self.make_stack(sim_config={"rate_limit": 0})
        self.n = 0

    def token(self, sub, perms):
        self.n += 1
        tok = "%s-token-%04d" % (sub, self.n)
        self.s.sim_admin("POST", "/_sim/tokens", {"subdomain": sub, "token": tok, "permissions": perms})
        return tok

    def put(self, tenant, sub, tok, **extra):
        body = {"base_url": self.s.sim_base_url(sub), "api_key": tok}
        body.update(extra)
        return self.s.api("PUT", "/v1/tenants/%s/integrations/syncro" % tenant, body)

    def save_recipe(self, tenant, perms, customers, assets):
        """A tenant and its Syncro account; the integration saved (201) with a token of perms."""
        sub = tenant + "-msp"
        self.s.add_account(sub, customers=customers, assets=assets, token=tenant + "-unused-1234")
        self.s.add_tenant(tenant)
        tok = self.token(sub, perms)
        st, js, _ = self.put(tenant, sub, tok)
        self.assertEqual(st, 201, js)
        return tok, js

    def test_asset_lifecycle_token_syncs_assets_only(self):
        s = self.s
        tok, js = self.save_recipe("lc", ASSET_LIFECYCLE, customers=4, assets=30)
        self.assertEqual(enabled(js["features"]), ["assets"], js["features"])
        self.assertEqual(js["features"]["customers"]["missing_permissions"], ["Customers - List/Search"])
        self.assertIn("lacks", js["features"]["customers"]["reason"])
        before = s.sim_stats()["tokens"][tok]
        s.wait_synced("lc", js["job_id"], assets=30)
        st = s.status("lc")
        self.assertEqual(st["state"], "Connected")
        # every type but assets: customers, contacts, tickets and the ticket settings (feature tickets)
        self.assertEqual(st["skipped_types"], ["customers", "contacts", "tickets", "settings"])
        self.assertFalse(st["features"]["customers"]["enabled"])
        # The sync asked the key for nothing it lacks: no 401 after the save's check.
        after = s.sim_stats()["tokens"][tok]
        self.assertGreater(before["401"], 0)  # the save's probes found what the key lacks
        self.assertEqual(after["401"], before["401"], (before, after))
        # The sync read its pages with this key (wait_synced saw its 30 assets): `before` is
        # taken after the save answered, when the job may have read them already.
        self.assertGreaterEqual(after["200"], before["200"])
        # Customers come from the assets' own customer fields, marked as derived.
        assets = s.inventory("lc", "assets")
        refs = {a["customer_ref"] for a in assets}
        self.assertTrue(refs and None not in refs, refs)
        s.wait_normalized()
        customers = {c["id"]: c for c in s.inventory("lc", "customers")}
        self.assertEqual(set(customers), refs)
        for c in customers.values():
            self.assertEqual(c["derived_from"], "assets", c)
            self.assertTrue(c["name"], c)
        # "sync now" of a type whose feature is off says why.
        code, js, _ = s.api("POST", "/v1/tenants/lc/integrations/syncro/sync", {"types": ["customers"]})
        self.assertEqual(code, 409, js)
        self.assertIn('"customers" feature is not enabled', js["error"])

    def test_incident_token_serves_ticketing_not_asset_sync(self):
        s = self.s
        tok, js = self.save_recipe("inc", INCIDENT, customers=4, assets=10)
        self.assertEqual(enabled(js["features"]), ["contacts", "customers", "ticketing", "tickets"])
        self.assertFalse(js["features"]["assets"]["enabled"])
        self.assertEqual(js["features"]["assets"]["missing_permissions"], ["Assets - List/Search"])
        s.wait_synced("inc", js["job_id"])
        st = s.status("inc")
        self.assertFalse(st["features"]["assets"]["enabled"])
        self.assertEqual(st["skipped_types"], ["assets"])
        self.assertEqual(st["counts"]["customers"], 4)
        # read from Syncro's customer list: not derived
        self.assertTrue(all("derived_from" not in c for c in s.inventory("inc", "customers")))
        # Ticketing is switched on with it; auto-resolve needs what the recipe does not give.
        code, js, _ = s.api("PUT", "/v1/tenants/inc/ticketing", {"enabled": True})
        self.assertEqual(code, 200, js)
        code, js, _ = s.api("PUT", "/v1/tenants/inc/ticketing", {"enabled": True, "auto_resolve": True})
        self.assertEqual(code, 422, js)
        self.assertEqual(js["missing_permissions"], ["Tickets - View Details"])
        self.assertEqual(js["missing_by_feature"], {"auto_resolve": ["Tickets - View Details"]})

    def test_client_portal_token_serves_every_feature(self):
        s = self.s
        tok, js = self.save_recipe("cp", CLIENT_PORTAL, customers=3, assets=10)
        self.assertEqual(enabled(js["features"]), sorted(ALL_FEATURES))
        for f, needs in NEEDS.items():
            self.assertEqual(js["features"][f]["permissions"], needs, f)
            self.assertEqual(js["features"][f]["missing_permissions"], [], f)
        s.wait_synced("cp", js["job_id"], assets=10)

    def test_each_recipe_short_of_one_permission_names_exactly_that_one(self):
        s = self.s
        s.add_account("short-msp", customers=2, assets=2, token="short-unused-1234")
        s.add_tenant("short")
        for recipe, features in ((ASSET_LIFECYCLE, ["assets"]), (INCIDENT, ["customers", "ticketing"]),
                                 (CLIENT_PORTAL, ALL_FEATURES)):
            needed = {p for f in features for p in NEEDS[f]}
            checked = 0
            for perm in recipe:
                if perm not in needed:
                    continue
                tok = self.token("short-msp", [p for p in recipe if p != perm])
                st, js, _ = self.put("short", "short-msp", tok, features=features)
                self.assertEqual(st, 422, (perm, js))
                self.assertEqual(js["missing_permissions"], [perm], js)
                self.assertIn(perm, js["error"])
                for f, missing in js["missing_by_feature"].items():
                    self.assertIn(f, features)
                    self.assertEqual(missing, [perm])
                self.assertEqual(sorted(js["missing_by_feature"]),
                                 sorted(f for f in features if perm in NEEDS[f]))
                checked += 1
            self.assertEqual(checked, len(needed & set(recipe)))
            # the whole recipe saves with the features it asked for
            st, js, _ = self.put("short", "short-msp", self.token("short-msp", recipe), features=features)
            self.assertEqual(st, 201, js)
            self.assertEqual(enabled(js["features"]), sorted(features))
        code, js, _ = s.api("GET", "/v1/tenants/short/integrations/syncro")
        self.assertEqual(code, 200, js)

    def test_ticketing_needs_a_key_that_can_create_tickets(self):
        s = self.s
        s.add_account("tk-msp", customers=2, assets=2, token="tk-unused-1234")
        s.add_tenant("tk")
        tok = self.token("tk-msp", [p for p in INCIDENT if p != "Tickets - Create"])
        st, js, _ = self.put("tk", "tk-msp", tok)
        self.assertEqual(st, 201, js)
        self.assertFalse(js["features"]["ticketing"]["enabled"])
        code, js, _ = s.api("PUT", "/v1/tenants/tk/ticketing", {"enabled": True})
        self.assertEqual(code, 422, js)
        self.assertEqual(js["missing_permissions"], ["Tickets - Create"])
        self.assertIn("Tickets - Create", js["error"])
        code, cfg, _ = s.api("GET", "/v1/tenants/tk/ticketing")
        self.assertFalse(cfg["config"]["enabled"], cfg)  # nothing was stored
        # The same check guards PATCH: the feature cannot be switched on either.
        code, js, _ = s.api("PATCH", "/v1/tenants/tk/integrations/syncro", {"features": ["ticketing"]})
        self.assertEqual(code, 422, js)
        self.assertEqual(js["missing_permissions"], ["Tickets - Create"])
        # Switched off, it may be saved.
        code, js, _ = s.api("PUT", "/v1/tenants/tk/ticketing", {"enabled": False})
        self.assertEqual(code, 200, js)


class IncidentTokenTicketingTest(StackTest):

    def test_a_replayed_comment_is_checked_with_the_incident_token(self):
        """The ticketing feature is the incident recipe: every call the ticket-creator makes for
        it must be one that token allows. Killed after sending a re-fire's comment, the
        ticket-creator replays the event and checks whether the comment landed before sending
        it again — through the ticket list (Tickets - List/Search), not GET /tickets/{id}, which
        needs Tickets - View Details the recipe does not have."""
        import ticketing as T
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, orgs=1, config=dict(T.DEFAULT_CONFIG, auto_resolve=False))
        # from now on the key is the portals' incident token, exactly
        s.sim_admin("PUT", "/_sim/tokens/" + T.TOKEN, {"permissions": INCIDENT})
        inc = {"id": "cmt-1", "org_id": "org-0001", "org_name": "Org One",
               "alert_type": "device_offline", "severity": "high", "status": "open",
               "subject": "WS-01", "title": "Device offline", "description": "WS-01 stopped.",
               "occurred_at": "2026-12-06T06:00:00Z"}
        self.assertEqual(T.post_incident(s, secret, inc)[0], 202)
        wait_until(lambda: T.sim_tickets(s), 60, "the ticket")
        T.wait_drained(s)
        before = s.sim_stats()["tokens"][T.TOKEN]["401"]
        # The re-fire's comment (the next Syncro call) is made at once and answered 20 s later:
        # the ticket-creator is killed while it waits, its comment pending in its record.
        s.sim_config({"hang_next": 1, "hang_ms": 20000})
        self.assertEqual(T.post_incident(s, secret, dict(inc, occurred_at="2026-12-06T06:10:00Z"))[0], 202)
        wait_until(lambda: len(T.sim_tickets(s)[0]["comments"]) == 2, 60, "the comment made",
                   interval=0.05)
        s.ticket_creator.kill9()
        s.restart(s.ticket_creator)
        T.wait_drained(s)
        tickets = T.sim_tickets(s)
        self.assertEqual(len(tickets), 1)
        self.assertEqual(len(tickets[0]["comments"]), 2, tickets[0]["comments"])  # not sent twice
        self.assertEqual(s.sim_stats()["tokens"][T.TOKEN]["401"], before)  # nothing refused
        self.assertEqual(s.kcat("dlq"), [])


class HostnameTest(StackTest):

    def test_the_address_as_users_copy_it_saves_the_same_integration(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        # the simulator's port is known only now: restart the gateway with subdomains on it
        self.assertEqual(s.gateway.stop(), 0)
        s.gateway.env["MSPSYNC_SYNCRO_SUBDOMAIN_URL"] = s.sim_base_url("{subdomain}")
        s.restart(s.gateway)
        wait_until(lambda: harness.http("GET", s.gateway.url("/readyz"))[0] == 200, 60, "gateway ready")
        s.add_account("acme", customers=2, assets=3, token="acme-key-123456")
        s.add_tenant("host")
        seen = set()
        for form in ("acme.syncromsp.com", "https://acme.syncromsp.com/", "acme", "HTTP://ACME.SyncroMSP.com"):
            st, js, _ = s.api("PUT", "/v1/tenants/host/integrations/syncro",
                              {"subdomain": form, "api_key": "acme-key-123456"})
            self.assertEqual(st, 201, (form, js))
            seen.add(js["base_url"])
            s.wait_synced("host", js["job_id"], assets=3)
        self.assertEqual(seen, {s.sim_base_url("acme")})
        self.assertEqual(s.redis("HGET", "mspsync:{host}:integration:syncro", "base_url"),
                         s.sim_base_url("acme"))
        # what cannot be a Syncro address keeps its hint
        for bad, hint in (("https://acme.example.com", "not a URL"),
                          ("acme.example.com", "first part of the address")):
            st, js, _ = s.api("PUT", "/v1/tenants/host/integrations/syncro",
                              {"subdomain": bad, "api_key": "acme-key-123456"})
            self.assertEqual(st, 400, js)
            self.assertIn(hint, js["error"])


if __name__ == "__main__":
    harness.main()
