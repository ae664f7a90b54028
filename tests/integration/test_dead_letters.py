#!/usr/bin/env python3
"""Dead letters per tenant through the API: two tenants each with dead letters (an incident of
an unmapped org, a malformed Syncro record); a tenant lists only its own (another tenant's key
gets 404 on its ids), the filters select, a replay after fixing the cause (mapping the org)
makes the ticket, marks the dead letter replayed and is refused a second time, the other
tenant's stays untouched; `mspsync-dlq list --tenant` prints one tenant's only, and `replay
--tenant` moves neither the other tenants' dead letters nor the all-tenants replay's position."""
import json
import time
import urllib.parse

import harness
import ticketing as T
from harness import StackTest, wait_until

A, B = T.TENANT, "bravo"
B_SUB, B_TOKEN = "bravo-msp", "bravo-key-1234567"


class DeadLettersTest(StackTest):

    def listing(self, s, tenant, token, **filters):
        q = urllib.parse.urlencode(filters)
        st, js, _ = s.api("GET", "/v1/tenants/%s/dead-letters%s" % (tenant, "?" + q if q else ""),
                          token=token)
        self.assertEqual(st, 200, js)
        return js

    def test_tenant_dead_letters_listed_filtered_replayed_and_isolated(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, orgs=3, customers=10, unmapped=("org-0003",))
        _, a_view = s.add_key(A, "viewer")
        _, a_sync = s.add_key(A, "sync", name="acme ops")
        # tenant B: a Syncro account with a record that cannot be mapped (id "not-a-number")
        s.add_account(B_SUB, customers=3, assets=20, token=B_TOKEN)
        s.sim_admin("POST", "/_sim/accounts/%s/poison" % B_SUB)
        s.add_tenant(B)
        _, b_view = s.add_key(B, "viewer")
        st, js, _ = s.connect(B, B_SUB, B_TOKEN)
        self.assertEqual(st, 201, js)
        # tenant A: the same kind of malformed record, and an incident of an unmapped org
        s.sim_admin("POST", "/_sim/accounts/%s/poison" % T.SUB)
        s.sync_now(A)
        inc = T.unmapped_incident()
        st, js, _ = T.post_incident(s, secret, inc)
        self.assertEqual(st, 202, js)

        a_list = wait_until(lambda: (lambda l: l if len(l) == 2 else None)(
            self.listing(s, A, a_view)["dead_letters"]), 90, "A's two dead letters")
        b_list = wait_until(lambda: (lambda l: l if len(l) == 1 else None)(
            self.listing(s, B, b_view)["dead_letters"]), 60, "B's dead letter")
        # every dead letter carries its tenant; the API shows each tenant exactly its own
        dlq = [l.split("\t", 2) for l in s.kcat("dlq", fmt="%p:%o\t%h\t%s\n")]
        by_tenant = {}
        for pid, headers, _value in dlq:
            tenant = [h.split("=", 1)[1] for h in headers.split(",") if h.startswith("x-dlq-tenant=")]
            self.assertEqual(len(tenant), 1, headers)
            by_tenant.setdefault(tenant[0], set()).add(pid)
        self.assertEqual(by_tenant, {A: {d["id"] for d in a_list}, B: {d["id"] for d in b_list}})
        inc_dl = [d for d in a_list if d["service"] == "ticket-creator"][0]
        rec_dl = [d for d in a_list if d["service"] == "normalizer"][0]
        self.assertIn("no Syncro customer mapped for org org-0003", inc_dl["reason"])
        self.assertEqual(inc_dl["source_topic"], s.topic("incidents"))
        self.assertIn("not-a-number", rec_dl["reason"])
        self.assertFalse(inc_dl["replayed"])

        # isolation: B's key learns nothing of A's dead letters
        for path in ("/v1/tenants/%s/dead-letters" % A,
                     "/v1/tenants/%s/dead-letters/%s" % (A, inc_dl["id"])):
            st, js, _ = s.api("GET", path, token=b_view)
            self.assertEqual(st, 404, js)
        st, js, _ = s.api("GET", "/v1/tenants/%s/dead-letters/%s" % (B, inc_dl["id"]), token=b_view)
        self.assertEqual(st, 404, js)
        st, js, _ = s.api("POST", "/v1/tenants/%s/dead-letters/replay" % B, {"ids": [inc_dl["id"]]})
        self.assertEqual(st, 404, js)

        # filters and paging
        ids = lambda js: [d["id"] for d in js["dead_letters"]]
        self.assertEqual(ids(self.listing(s, A, a_view, service="normalizer")), [rec_dl["id"]])
        self.assertEqual(ids(self.listing(s, A, a_view, reason="org-0003")), [inc_dl["id"]])
        self.assertEqual(ids(self.listing(s, A, a_view, source_topic="incidents")), [inc_dl["id"]])
        self.assertEqual(len(ids(self.listing(s, A, a_view, replayed="false"))), 2)
        self.assertEqual(ids(self.listing(s, A, a_view, replayed="true")), [])
        self.assertEqual(ids(self.listing(s, A, a_view, since="2100-01-01T00:00:00Z")), [])
        page1 = self.listing(s, A, a_view, limit=1)
        page2 = self.listing(s, A, a_view, limit=1, cursor=page1["next_cursor"])
        self.assertEqual(ids(page1) + ids(page2), ids(self.listing(s, A, a_view)))
        self.assertIsNone(page2["next_cursor"])
        for bad in ({"replayed": "maybe"}, {"since": "yesterday"}, {"limit": "0"},
                    {"cursor": "9:999999"}):
            st, js, _ = s.api("GET", "/v1/tenants/%s/dead-letters?%s" % (A, urllib.parse.urlencode(bad)),
                              token=a_view)
            self.assertEqual(st, 400, (bad, js))

        # one dead letter with its value, and never a secret in it
        st, one, _ = s.api("GET", "/v1/tenants/%s/dead-letters/%s" % (A, inc_dl["id"]), token=a_view)
        self.assertEqual(st, 200, one)
        self.assertEqual(one["value"]["org_id"], "org-0003")
        text = json.dumps(one)
        for secret_text in (secret, T.TOKEN, B_TOKEN):
            self.assertNotIn(secret_text, text)

        # replay: a viewer may not; a sync key may, once the cause is fixed
        st, js, _ = s.api("POST", "/v1/tenants/%s/dead-letters/replay" % A, {"ids": [inc_dl["id"]]},
                          token=a_view)
        self.assertEqual(st, 403, js)
        self.assertIn("sync", js["error"])
        cust = sorted(c["id"] for c in s.inventory(A, "customers"))[5].split(":")[1]
        st, js, _ = s.api("PUT", "/v1/tenants/%s/ticketing/orgs/org-0003" % A,
                          {"customer_id": int(cust)})
        self.assertEqual(st, 200, js)
        self.assertEqual(T.sim_tickets(s), [])
        started = time.monotonic()
        st, js, _ = s.api("POST", "/v1/tenants/%s/dead-letters/replay" % A, {"ids": [inc_dl["id"]]},
                          token=a_sync)
        print("replay of one dead letter answered in %.0f ms" % ((time.monotonic() - started) * 1000))
        self.assertEqual(st, 200, js)
        self.assertEqual((js["replayed"], js["ids"]), (1, [inc_dl["id"]]))
        tickets = wait_until(lambda: T.sim_tickets(s), 60, "the replayed incident's ticket")
        self.assertEqual([str(t["customer_id"]) for t in tickets], [cust])
        st, one, _ = s.api("GET", "/v1/tenants/%s/dead-letters/%s" % (A, inc_dl["id"]), token=a_view)
        self.assertTrue(one["replayed"], one)
        self.assertIn("acme ops", one["replayed_by"])
        self.assertIsNotNone(one["replayed_at"])
        st, js, _ = s.api("POST", "/v1/tenants/%s/dead-letters/replay" % A, {"ids": [inc_dl["id"]]},
                          token=a_sync)
        self.assertEqual(st, 409, js)
        self.assertIn(inc_dl["id"], js["error"])
        self.assertEqual(ids(self.listing(s, A, a_view, replayed="true")), [inc_dl["id"]])
        self.assertFalse(self.listing(s, B, b_view)["dead_letters"][0]["replayed"])
        T.wait_drained(s)
        self.assertEqual(len(T.sim_tickets(s)), 1)  # the replay made one ticket, not two
        # the replay is in A's audit log, with its actor
        st, js, _ = s.api("GET", "/v1/tenants/%s/audit" % A)
        entries = [e for e in js["entries"] if e["route"] == "dead_letters_replay"]
        self.assertEqual(len(entries), 1, js)
        self.assertEqual(entries[0]["actor"]["name"], "acme ops")

        # mspsync-dlq filters by tenant too
        rc, out, err = s.dlq_tool("list", "--tenant", A)
        self.assertEqual(rc, 0, err)
        listed = [json.loads(l) for l in out.splitlines()]
        self.assertEqual(sorted("%d:%d" % (d["partition"], d["offset"]) for d in listed),
                         sorted(d["id"] for d in a_list))
        self.assertEqual({d["tenant"] for d in listed}, {A})

        # mspsync-dlq replay --tenant B replays B's only, in B's own group: the all-tenants
        # group does not move, and the all-tenants replay then skips what B's group replayed
        dl_count = len(s.kcat("dlq"))
        rc, out, err = s.dlq_tool("replay", "--tenant", B)
        self.assertEqual((rc, out.strip()), (0, "replayed=1 skipped=0"), err)
        wait_until(lambda: len(s.kcat("dlq")) == dl_count + 1, 60, "B's record dead-lettered again")
        rc, out, err = s.dlq_tool("replay")
        # A's two, and B's new dead letter (after B's group's position); B's first one skipped
        self.assertEqual((rc, out.strip()), (0, "replayed=3 skipped=1"), err)
        # A's malformed record and B's are dead-lettered again; then B's replay takes only the
        # newest: the one before it the all-tenants replay did
        wait_until(lambda: len(s.kcat("dlq")) == dl_count + 3, 60, "dead-lettered again")
        rc, out, err = s.dlq_tool("replay", "--tenant", B)
        self.assertEqual((rc, out.strip()), (0, "replayed=1 skipped=1"), err)
        T.wait_drained(s)
        self.assertEqual(len(T.sim_tickets(s)), 1)  # replayed three times, still one ticket


if __name__ == "__main__":
    harness.main()
