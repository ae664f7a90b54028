"""
Traces (issue 13 item 4): "what happened to this incident / this asset?"
- an incident of an unmapped org shows `received`, `normalized`, `unmapped` and `dead_lettered`
  (with the reason); a mapped one shows its rule decision and its ticket, the simulator's; both
  are found by the portal's incident id and by the fingerprint, with a viewer key; another
  tenant's key gets 404 for them, and an unknown reference 404;
- an asset that a Syncro and a ConnectWise RMM record both join shows both joins (the second
  through the match key it shares); a date edit in the app shows the change with its source
  ("app"), and the write-back outcome for each vendor and field ("written"); the history pages.
"""
import hashlib

import cwrmm
import ticketing as T
from cwrmm import k
from harness import Stack, StackTest, main, wait_until

WB = {"purchase_date": True, "warranty_expires": True}


def fingerprint(tenant, source, alert_type, subject, incident_id):
    """incident.c: SHA-256 over the parts, each preceded by its length as 8 hex digits."""
    h = hashlib.sha256()
    for p in ("incident/v1", tenant, source, alert_type, subject, incident_id):
        b = p.encode()
        h.update(b"%08x" % len(b))
        h.update(b)
    return h.hexdigest()


class TracesTest(StackTest):
    def trace(self, s, ref, token=None, tenant=T.TENANT):
        return s.api("GET", "/v1/tenants/%s/incidents/%s" % (tenant, ref), token=token)

    def test_incident_trace_unmapped_dead_letter_ticket_and_isolation(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, orgs=3, unmapped=("org-0003",))
        bad = T.unmapped_incident()
        good = dict(bad, id="inc-mapped-1", org_id="org-0001", org_name="Org One")
        for inc in (bad, good):
            st, js, _ = T.post_incident(s, secret, inc)
            self.assertEqual(st, 202, js)
        wait_until(lambda: s.kcat("dlq"), 120, "the dead letter")
        wait_until(lambda: len(T.sim_tickets(s)) == 1, 60, "the mapped org's ticket")
        T.wait_drained(s)
        _, viewer = s.add_key(T.TENANT, "viewer")

        def steps_of(ref, want):
            st, js, _ = self.trace(s, ref, token=viewer)
            return js if st == 200 and want <= {e["step"] for i in js["incidents"]
                                                 for e in i["entries"]} else None

        js = wait_until(lambda: steps_of("inc-unmapped-1", {"dead_lettered", "normalized"}), 30,
                        "the unmapped incident's trace")
        self.assertEqual(len(js["incidents"]), 1, js)
        inc = js["incidents"][0]
        steps = [e["step"] for e in inc["entries"]]
        self.assertEqual(steps, ["received", "normalized", "unmapped", "dead_lettered"], inc)
        self.assertEqual(inc["incident_id"], "inc-unmapped-1")
        self.assertEqual(inc["org_id"], "org-0003")
        self.assertIsNone(inc["ticket"], inc)
        dl = inc["entries"][3]
        self.assertEqual(dl["service"], "ticket-creator")
        self.assertIn("no Syncro customer mapped for org org-0003 (Umbrella Corp)", dl["reason"])
        self.assertEqual(inc["entries"][2]["org_id"], "org-0003")
        self.assertRegex(inc["entries"][0]["raw"], r"raw\.events/\d+@\d+$")   # which delivery
        ats = [e["at_ms"] for e in inc["entries"]]
        self.assertEqual(ats, sorted(ats))
        # The event id ties the steps together; the fingerprint is the design's.
        self.assertEqual(len({e["event_id"] for e in inc["entries"]}), 1, inc)
        fp = fingerprint(T.TENANT, "mtp", "device_offline", "WS-07", "inc-unmapped-1")
        self.assertEqual(inc["fingerprint"], fp)
        st, by_fp, _ = self.trace(s, fp, token=viewer)
        self.assertEqual(st, 200, by_fp)
        self.assertEqual(by_fp["incidents"], js["incidents"])

        # The mapped one: the rule's decision, then its ticket — the simulator's.
        js = wait_until(lambda: steps_of("inc-mapped-1", {"ticket_created", "normalized"}), 30,
                        "the mapped incident's trace")
        inc = js["incidents"][0]
        self.assertEqual([e["step"] for e in inc["entries"]],
                         ["received", "normalized", "create", "ticket_created"], inc)
        ticket = T.sim_tickets(s)[0]
        self.assertEqual(inc["ticket"]["ticket_id"], ticket["id"], inc)
        self.assertEqual(inc["ticket"]["state"], "open")
        self.assertEqual(inc["entries"][3]["ticket_id"], ticket["id"])
        self.assertEqual(inc["entries"][3]["ticket_number"], int(ticket["number"]))
        self.assertEqual(str(inc["entries"][3]["customer_id"]), str(ticket["customer_id"]))

        # Another tenant's key learns nothing: 404, as for an unknown reference.
        s.add_tenant("other")
        _, other = s.add_key("other", "owner")
        for ref in ("inc-unmapped-1", fp, "inc-mapped-1"):
            st, js, _ = self.trace(s, ref, token=other)
            self.assertEqual(st, 404, js)
            st, js, _ = self.trace(s, ref, token=other, tenant="other")
            self.assertEqual(st, 404, js)
        st, js, _ = self.trace(s, "inc-never-sent", token=viewer)
        self.assertEqual(st, 404, js)
        st, js, _ = self.trace(s, "0" * 64, token=viewer)
        self.assertEqual(st, 404, js)


class AssetHistoryTest(StackTest):
    def test_two_sources_join_an_edit_and_its_write_backs(self):
        s = Stack(self.id().split(".")[-1])
        self.stack = s
        self.addCleanup(self._teardown)
        cwrmm.start_dates_stack(s)
        s.add_account("ah", 2, 6, "tok-ah")
        s.add_tenant("ah")
        st, js, _ = s.api("PUT", "/v1/tenants/ah/integrations/syncro",
                          {"base_url": s.sim_base_url("ah"), "api_key": "tok-ah", "writeback": WB})
        self.assertIn(st, (200, 201), js)
        s.wait_synced("ah", js["job_id"], assets=6)
        ids = sorted(cwrmm.redis_lines(s, "ZRANGE", k("ah", "inv:assets"), "0", "-1"))
        recs = [cwrmm.source_record(s, "ah", i) for i in ids]
        rec = [r for r in recs if r["serial"] and r["manufacturer"]][0]
        aid = rec["id"]
        cwrmm.add_partner(s, "pah", 3, companies=1, overlap=[
            {"serial": rec["serial"], "manufacturer": rec["manufacturer"],
             "model": rec["model"] or "M"}])
        st, js, _ = cwrmm.connect_cwrmm(s, "ah", "pah", writeback=WB)
        self.assertIn(st, (200, 201), js)
        cwrmm.wait_cw_synced(s, "ah", js["job_id"])

        def history(**q):
            qs = "&".join("%s=%s" % kv for kv in q.items())
            st, js, _ = s.api("GET", "/v1/tenants/ah/assets/%s/history%s" % (
                aid, "?" + qs if qs else ""))
            self.assertEqual(st, 200, js)
            return js

        joins = [e for e in history()["entries"] if e["step"] == "joined"]
        self.assertEqual([j["integration"] for j in joins], ["syncro", "cwrmm"], joins)
        self.assertEqual(joins[0]["source"], aid)
        self.assertTrue(joins[1]["source"].startswith("cwrmm:"), joins)
        self.assertTrue(joins[1]["match_key"].startswith("sn:"), joins)
        self.assertIn("match key", joins[1]["why"])

        st, js, _ = s.api("PUT", "/v1/tenants/ah/assets/%s/dates" % aid,
                          {"purchase_date": "2023-02-03", "warranty_expires": "2028-02-03"})
        self.assertEqual(st, 202, js)

        def written():
            es = [e for e in history(limit=200)["entries"] if e["step"] == "writeback"]
            return es if len(es) == 4 else None
        wb = wait_until(written, 90, "four write-back outcomes in the history")
        self.assertEqual(sorted((e["vendor"], e["field"], e["value"], e["outcome"]) for e in wb),
                         [("cwrmm", "purchase", "2023-02-03", "written"),
                          ("cwrmm", "warranty", "2028-02-03", "written"),
                          ("syncro", "purchase", "2023-02-03", "written"),
                          ("syncro", "warranty", "2028-02-03", "written")])
        full = history(limit=200)["entries"]
        changes = [e for e in full if e["step"] == "date_changed" and e["source"] == "app"]
        self.assertEqual(len(changes), 1, full)
        self.assertEqual(changes[0]["dates"], {"purchase": "2023-02-03", "warranty": "2028-02-03"})
        self.assertEqual(changes[0]["sources"], {"purchase": "app", "warranty": "app"})
        self.assertEqual({e["change_id"] for e in wb}, {changes[0]["change_id"]})
        self.assertLess(full.index(changes[0]), full.index(wb[0]))

        # Paged: two at a time walks the same entries.
        walked, cursor = [], None
        while True:
            page = history(limit=2, **({"cursor": cursor} if cursor else {}))
            walked += page["entries"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(walked, history(limit=200)["entries"])
        st, js, _ = s.api("GET", "/v1/tenants/ah/assets/cwrmm:nope/history")
        self.assertEqual(st, 404, js)


if __name__ == "__main__":
    main()
