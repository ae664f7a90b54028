#!/usr/bin/env python3
"""Syncro contacts, tickets and ticket settings, end to end (issue 11, items 3 and 4): gateway →
sync.jobs → fetcher → raw.records → normalizer → the compacted topics and the inventory, on the
real broker and Redis, against the Syncro simulator; then the ticketing rules checked against
the synced settings.

The expected inventory is computed from the simulator's own records (its /_sim views), mapped
here independently of the C mappers."""
import collections
import json

import harness
from harness import StackTest, wait_until

TENANTS = {"alpha": "alpha-msp", "bravo": "bravo-msp", "charlie": "charlie-msp"}
TICKETS, CONTACTS, CUSTOMERS = 1000, 500, 40


def ref(v):
    return "syncro:%d" % v if v else None


def expected_tickets(sim_tickets):
    """The canonical ticket fields a sync must show, per canonical id."""
    return {"syncro:%d" % t["id"]: {
        "number": str(t["number"]), "subject": t["subject"], "status": t["status"],
        "problem_type": t["problem_type"], "priority": t["priority"],
        "customer_ref": ref(t["customer_id"]), "updated_at": t["updated_at"],
        "resolved_at": t["resolved_at"], "gone": False} for t in sim_tickets}


def expected_contacts(sim_contacts):
    return {"syncro:%d" % c["id"]: {
        "name": c["name"], "email": c["email"], "phone": c["phone"],
        "customer_ref": ref(c["customer_id"]), "updated_at": c["updated_at"], "gone": False}
        for c in sim_contacts}


def shown(records, fields):
    return {r["id"]: {f: r[f] for f in fields} for r in records}


class SyncroTypesTest(StackTest):

    def sim_view(self, s, sub):
        tickets = s.sim_admin("GET", "/_sim/accounts/%s/tickets" % sub)["tickets"]
        contacts = s.sim_admin("GET", "/_sim/accounts/%s/contacts" % sub)["contacts"]
        return expected_tickets(tickets), expected_contacts(contacts)

    def assert_inventory_is_the_sims(self, s, tenant):
        want_t, want_c = self.sim_view(s, TENANTS[tenant])
        got_t = s.inventory(tenant, "tickets")
        got_c = s.inventory(tenant, "contacts")
        self.assertEqual(shown(got_t, next(iter(want_t.values())).keys()), want_t)
        self.assertEqual(shown(got_c, next(iter(want_c.values())).keys()), want_c)
        return got_t, got_c

    def topic_keys(self, s, base):
        return collections.Counter(l.split("\t")[0] for l in s.kcat(base))

    def test_tickets_and_contacts_sync_exactly_then_incrementally(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        keys = {}
        for tenant, sub in TENANTS.items():
            keys[tenant] = "sk-" + harness.rand_id(32)
            s.sim_admin("POST", "/_sim/accounts", {
                "subdomain": sub, "customers": CUSTOMERS, "assets": 0, "contacts": CONTACTS,
                "tickets": TICKETS})
            s.sim_admin("POST", "/_sim/tokens", {"subdomain": sub, "token": keys[tenant]})
            s.add_tenant(tenant)
        jobs = {}
        for tenant, sub in TENANTS.items():
            st, js, _ = s.connect(tenant, sub, keys[tenant])
            self.assertEqual(st, 201, js)
            jobs[tenant] = js["job_id"]
        for tenant in TENANTS:
            s.wait_synced(tenant, jobs[tenant])

        # Every ticket and contact of each account, exactly, in its own tenant only. The
        # simulator's accounts reuse ticket ids (separate databases), so one canonical id names
        # a different ticket in each tenant: each must show its own account's.
        ids = {}
        for tenant in TENANTS:
            got_t, got_c = self.assert_inventory_is_the_sims(s, tenant)
            self.assertEqual((len(got_t), len(got_c)), (TICKETS, CONTACTS))
            for r in got_t + got_c:
                self.assertEqual(r["tenant"], tenant)
                self.assertGreater(int(r["id"].split(":")[1]), 2 ** 31)  # 64-bit ids survive
            ids[tenant] = {r["id"] for r in got_t}
        self.assertLess(len(set.union(*ids.values())), 3 * TICKETS, "the case needs shared ids")
        s.wait_normalized()
        tickets_topic, contacts_topic = self.topic_keys(s, "tickets"), self.topic_keys(s, "contacts")
        self.assertEqual(len(tickets_topic), 3 * TICKETS)
        self.assertEqual(len(contacts_topic), 3 * CONTACTS)
        self.assertTrue(all(k.startswith(tuple(t + "/syncro:" for t in TENANTS))
                            for k in list(tickets_topic) + list(contacts_topic)))
        n_tickets, n_contacts = sum(tickets_topic.values()), sum(contacts_topic.values())
        self.assertEqual(len(self.topic_keys(s, "settings")), 3)
        # The first sync of a tenant is a full pass: no since_updated_at yet.
        stats = s.sim_stats()["accounts"]
        self.assertEqual(stats["alpha-msp"]["ticket_lists_since"], 0)
        self.assertEqual(stats["alpha-msp"]["ticket_lists"], TICKETS // 50)

        # Filtered reads.
        some = s.inventory("alpha", "tickets")[17]
        by_status = s.inventory("alpha", "tickets", status=some["status"].upper().replace(" ", "+"))
        self.assertIn(some["id"], {t["id"] for t in by_status})
        self.assertTrue(all(t["status"] == some["status"] for t in by_status))
        self.assertLess(len(by_status), TICKETS)
        by_cust = s.inventory("alpha", "tickets", customer=some["customer_ref"])
        self.assertEqual(len(by_cust), TICKETS // CUSTOMERS)
        since = sorted(t["updated_at"] for t in s.inventory("alpha", "tickets"))[-10]
        self.assertEqual(len(s.inventory("alpha", "tickets", updated_since=since)), 10)
        c = s.inventory("alpha", "contacts")[3]
        by_q = s.inventory("alpha", "contacts", q=c["email"].split("@")[0].upper())
        self.assertEqual([x["id"] for x in by_q], [c["id"]])
        self.assertTrue(all(x["customer_ref"] == c["customer_ref"]
                            for x in s.inventory("alpha", "contacts", customer=c["customer_ref"])))
        st, one, _ = s.api("GET", "/v1/tenants/alpha/tickets/%s" % some["id"])
        self.assertEqual((st, one), (200, some))
        st, other, _ = s.api("GET", "/v1/tenants/bravo/tickets/%s" % some["id"])
        self.assertEqual(st, 404, other)  # another tenant's ticket is not there

        # A second sync publishes nothing; its ticket pass asks only for recent changes.
        s.sim_admin("POST", "/_sim/stats/reset")
        job2 = s.sync_now("alpha", types=("customers", "contacts", "tickets", "settings"))
        s.wait_synced("alpha", job2)
        s.wait_normalized()
        self.assertEqual(sum(self.topic_keys(s, "tickets").values()), n_tickets)
        self.assertEqual(sum(self.topic_keys(s, "contacts").values()), n_contacts)
        stats = s.sim_stats()["accounts"]["alpha-msp"]
        self.assertGreaterEqual(stats["ticket_lists_since"], 1)
        self.assertEqual(stats["ticket_lists_since"], stats["ticket_lists"])
        self.assertLess(stats["ticket_lists"], TICKETS // 50)

        # A ticket changed and a contact deleted in Syncro: the next incremental sync shows both,
        # and nothing else is published.
        sim_t = s.sim_admin("GET", "/_sim/accounts/alpha-msp/tickets")["tickets"]
        changed = sim_t[5]
        new_status = "Waiting on Customer" if changed["status"] != "Waiting on Customer" else "New"
        s.sim_admin("PUT", "/_sim/accounts/alpha-msp/tickets/%d" % changed["id"],
                    {"status": new_status, "subject": "Escalated by the technician"})
        deleted = s.sim_admin("GET", "/_sim/accounts/alpha-msp/contacts")["contacts"][9]
        s.sim_admin("DELETE", "/_sim/accounts/alpha-msp/contacts/%d" % deleted["id"])
        s.sim_admin("POST", "/_sim/stats/reset")
        job3 = s.sync_now("alpha", types=("contacts", "tickets"))
        s.wait_synced("alpha", job3)
        s.wait_normalized()
        st, got, _ = s.api("GET", "/v1/tenants/alpha/tickets/syncro:%d" % changed["id"])
        self.assertEqual(st, 200)
        self.assertEqual((got["status"], got["subject"]), (new_status, "Escalated by the technician"))
        st, gone, _ = s.api("GET", "/v1/tenants/alpha/contacts/syncro:%d" % deleted["id"])
        self.assertEqual(st, 200)
        self.assertTrue(gone["gone"])
        stats = s.sim_stats()["accounts"]["alpha-msp"]
        self.assertEqual(stats["ticket_lists_since"], stats["ticket_lists"])
        got_t, got_c = self.assert_inventory_is_the_sims(s, "alpha")
        self.assertEqual((len(got_t), len(got_c)), (TICKETS, CONTACTS - 1))
        self.assertEqual(len(s.inventory("alpha", "contacts", include_gone=1)), CONTACTS)
        self.assertEqual(sum(self.topic_keys(s, "tickets").values()), n_tickets + 1)
        self.assertEqual(sum(self.topic_keys(s, "contacts").values()), n_contacts + 1)
        # The partial ticket pass marked nothing gone.
        self.assertEqual(len(s.inventory("alpha", "tickets", include_gone=1)), TICKETS)
        for tenant in ("bravo", "charlie"):
            self.assert_inventory_is_the_sims(s, tenant)

    def test_rules_are_checked_against_the_synced_ticket_settings(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        key = "sk-" + harness.rand_id(32)
        s.sim_admin("POST", "/_sim/accounts", {"subdomain": "echo-msp", "customers": 3,
                                               "assets": 0, "tickets": 5})
        s.sim_admin("POST", "/_sim/tokens", {"subdomain": "echo-msp", "token": key})
        s.add_tenant("echo")
        rule = {"enabled": True, "rules": {"device_offline": {"status": "Escalated"}}}

        # Nothing synced yet: accepted, and the answer says it could not be checked.
        st, js, _ = s.api("PUT", "/v1/tenants/echo/ticketing", rule)
        self.assertEqual(st, 200, js)
        self.assertFalse(js["settings_checked"])
        self.assertIn("not checked", js["note"])

        st, js, _ = s.connect("echo", "echo-msp", key)
        self.assertEqual(st, 201, js)
        s.wait_synced("echo", js["job_id"])
        statuses = s.sim_admin("GET", "/_sim/accounts/echo-msp")["ticket_statuses"]
        st, ts, _ = s.api("GET", "/v1/tenants/echo/ticket-settings")
        self.assertEqual(st, 200, ts)
        self.assertEqual([x["ticket_statuses"] for x in ts["ticket_settings"]], [statuses])

        # The stored rule now names a status the account does not have: the status shows it.
        st, tk, _ = s.api("GET", "/v1/tenants/echo/ticketing")
        self.assertEqual(st, 200, tk)
        self.assertTrue(tk["status"]["settings_synced"])
        self.assertEqual(tk["status"]["rules_invalid"], [
            {"alert_type": "device_offline", "field": "status", "value": "Escalated",
             "known": statuses}])

        # Saving a rule with an unknown status: 400 with the known statuses.
        st, js, _ = s.api("PUT", "/v1/tenants/echo/ticketing", rule)
        self.assertEqual(st, 400, js)
        self.assertIn('rules.device_offline.status "Escalated"', js["error"])
        for status in statuses:
            self.assertIn('"%s"' % status, js["error"])
        self.assertEqual(js["rules_invalid"][0]["known"], statuses)
        st, js, _ = s.api("PUT", "/v1/tenants/echo/ticketing",
                          {"enabled": True, "resolve_status": "Closed"})
        self.assertEqual(st, 400, js)
        self.assertEqual(js["rules_invalid"][0]["field"], "resolve_status")
        ok = {"enabled": True, "rules": {"device_offline": {"status": "Waiting on Customer"}}}
        st, js, _ = s.api("PUT", "/v1/tenants/echo/ticketing", ok)
        self.assertEqual(st, 200, js)
        self.assertTrue(js["settings_checked"])
        st, tk, _ = s.api("GET", "/v1/tenants/echo/ticketing")
        self.assertEqual(tk["status"]["rules_invalid"], [])

        # The status is renamed in Syncro; after a sync the rule shows as broken.
        renamed = [x if x != "Waiting on Customer" else "Waiting on Client" for x in statuses]
        s.sim_admin("PUT", "/_sim/accounts/echo-msp", {"ticket_statuses": renamed})
        job = s.sync_now("echo", types=("settings",))
        s.wait_synced("echo", job)

        def broken():
            st, tk, _ = s.api("GET", "/v1/tenants/echo/ticketing")
            return tk["status"]["rules_invalid"] or None
        self.assertEqual(wait_until(broken, 60, "the renamed status in the ticketing status"), [
            {"alert_type": "device_offline", "field": "status", "value": "Waiting on Customer",
             "known": renamed}])
        st, js, _ = s.api("PUT", "/v1/tenants/echo/ticketing", ok)
        self.assertEqual(st, 400, js)
        self.assertIn('"Waiting on Client"', js["error"])


if __name__ == "__main__":
    harness.main()
