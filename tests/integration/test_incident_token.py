#!/usr/bin/env python3
"""The multi-tenant portal's incident token, verbatim, serves ticketing: 1,000 incidents exact.

The token MSPs create for the portal's Syncro integration has exactly Customers - List/Search,
Customers - View Detail, Tickets - Create, Tickets - Edit and Tickets - List/Search. Saved as is,
asset sync is reported as not enabled; ticketing (without auto-resolve, which needs "Tickets -
View Details") turns 1,000 incidents over 50 orgs (re-fires and resolves included) into exactly
the expected tickets and comments, with no 401 from Syncro and nothing dead-lettered. Enabling
usage billing with it is refused at once, naming the recurring-invoice permissions it lacks.
"""
import ticketing as T
from harness import StackTest, main

INCIDENT_TOKEN = ["Customers - List/Search", "Customers - View Detail", "Tickets - Create",
                  "Tickets - Edit", "Tickets - List/Search"]


class IncidentTokenTest(StackTest):
    def test_thousand_incidents_with_the_incident_token(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        config = dict(T.DEFAULT_CONFIG, auto_resolve=False)
        secret = T.setup(s, config=config, permissions=INCIDENT_TOKEN)
        st = s.status(T.TENANT)
        self.assertFalse(st["features"]["assets"]["enabled"], st["features"])
        self.assertEqual(st["features"]["assets"]["missing_permissions"], ["Assets - List/Search"])
        self.assertTrue(st["features"]["ticketing"]["enabled"], st["features"])
        # Billing needs the recurring-invoice permissions this token does not have: said at once.
        code, js, _ = s.api("PUT", "/v1/tenants/%s/billing" % T.TENANT, {"enabled": True})
        self.assertEqual(code, 422, js)
        self.assertEqual(js["missing_permissions"],
                         ["Recurring Invoices - List", "Recurring Invoices - Edit"], js)
        self.assertEqual(s.api("GET", "/v1/tenants/%s/billing" % T.TENANT)[1].get("enabled"), False)
        before = s.sim_stats()["tokens"][T.TOKEN]

        summary, events = T.run_mtp(s, secret, count=1000, rate=200, seed=23)
        self.assertEqual(summary["accepted"], 1000, summary)
        exp = T.expected(events, auto_resolve=False)
        self.assertGreater(len(exp), 300)
        T.wait_exact(s, exp, timeout=240)
        T.wait_drained(s)
        self.assertEqual(T.compare(exp, T.actual(T.sim_tickets(s))), [])
        self.assertEqual(s.kcat("dlq"), [])
        after = s.sim_stats()["tokens"][T.TOKEN]
        self.assertEqual(after.get("401", 0), before.get("401", 0), (before, after))


if __name__ == "__main__":
    main()
