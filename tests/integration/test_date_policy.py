"""
The date policy end to end, with both integrations opted into write-back:
- a machine whose purchase date Syncro and ConnectWise RMM disagree on gets the earliest, from
  Syncro, and only ConnectWise RMM is written (Syncro already holds it);
- a warranty date only ConnectWise RMM holds is not copied into Syncro (no conflict, no edit);
- an edit is written to both: the ConnectWise RMM custom fields and the Syncro asset properties,
  read-merge-write (the agent data in the other properties survives);
- re-syncing both integrations afterwards changes and writes nothing (no echo).
"""
import unittest

from harness import Stack, wait_until
import cwrmm
from cwrmm import k

T = "dp"
WB = {"purchase_date": True, "warranty_expires": True}


class DatePolicyTest(unittest.TestCase):
    def setUp(self):
        self.s = Stack(self.id().split(".")[-1])
        cwrmm.start_dates_stack(self.s)

    def tearDown(self):
        self.assertEqual(self.s.stop_all(), [])

    def syncro_asset(self, aid):
        return self.s.sim_admin("GET", "/dp/api/v1/customer_assets/%s?api_key=tok-dp" % aid)["asset"]

    def test_policy_conflict_edit_and_no_echo(self):
        s = self.s
        s.add_account("dp", 10, 60, "tok-dp")
        s.add_tenant(T)
        st, js, _ = s.api("PUT", "/v1/tenants/%s/integrations/syncro" % T,
                          {"base_url": s.sim_base_url("dp"), "api_key": "tok-dp", "writeback": WB})
        self.assertIn(st, (200, 201), js)
        s.wait_synced(T, js["job_id"], assets=60)
        ids = sorted(cwrmm.redis_lines(s, "ZRANGE", k(T, "inv:assets"), "0", "-1"))
        recs = [cwrmm.source_record(s, T, i) for i in ids]
        recs = [r for r in recs if r["serial"] and r["manufacturer"] and r["macs"]][:10]
        self.assertEqual(len(recs), 10)
        # Syncro holds a purchase date on the first five machines.
        for r in recs[:5]:
            num = r["id"].split(":")[1]
            props = self.syncro_asset(num)["properties"]
            props["Purchase Date"] = "2020-01-15"
            s.sim_admin("PUT", "/_sim/accounts/dp/assets/%s" % num, {"properties": props})
        job = s.sync_now(T, types=("assets",))
        s.wait_synced(T, job)
        # ConnectWise RMM holds other dates for the same five, nothing for the other five.
        overlap = []
        for i, r in enumerate(recs):
            o = {"serial": r["serial"], "manufacturer": r["manufacturer"], "model": r["model"] or "M"}
            if i < 5:
                o.update({"purchase": "2022-05-05T00:00:00Z", "warranty": "2027-05-05T00:00:00Z"})
            overlap.append(o)
        cwrmm.add_partner(s, "pdp", 40, companies=4, overlap=overlap)
        st, js, _ = cwrmm.connect_cwrmm(s, T, "pdp", writeback=WB)
        self.assertIn(st, (200, 201), js)
        cwrmm.wait_cw_synced(s, T, js["job_id"])

        writes = lambda: cwrmm.cw_admin(s, "GET", "/_sim/partners/pdp/writes")
        wait_until(lambda: len(writes()) >= 5, 60, "the five conflicts written")
        s.wait_normalized()
        w = writes()
        self.assertEqual(len(w), 5, w)
        self.assertTrue(all(x["name"] == "Purchase Date" and x["value"].startswith("2020-01-15")
                            for x in w), w)
        assets = cwrmm.all_assets(s, T)
        for r in recs[:5]:
            d = assets[r["id"]]["dates"]
            self.assertEqual(d["purchase"], {"value": "2020-01-15", "source": "syncro"})
            self.assertEqual(d["warranty"], {"value": "2027-05-05", "source": "cwrmm"})
            props = self.syncro_asset(r["id"].split(":")[1])["properties"]
            self.assertNotIn("Warranty Expiration", props)   # not copied without a conflict
        self.assertEqual(assets[recs[5]["id"]]["dates"], {"purchase": None, "warranty": None})

        # An edit goes to both vendors.
        aid = recs[5]["id"]
        st, js, _ = s.api("PUT", "/v1/tenants/%s/assets/%s/dates" % (T, aid),
                          {"purchase_date": "2023-02-03", "warranty_expires": "2028-02-03"})
        self.assertEqual(st, 202, js)
        num = aid.split(":")[1]
        wait_until(lambda: self.syncro_asset(num)["properties"].get("Warranty Expiration"), 60,
                   "Syncro properties written")
        props = self.syncro_asset(num)["properties"]
        self.assertEqual(props["Purchase Date"][:10], "2023-02-03")
        self.assertEqual(props["Warranty Expiration"][:10], "2028-02-03")
        self.assertIn("kabuto_information", props)   # read, merge, write: nothing lost
        wait_until(lambda: len(writes()) == 7, 60, "the edit written to ConnectWise RMM")
        stt, state, _ = s.api("GET", "/v1/tenants/%s/assets/%s/writeback" % (T, aid))
        self.assertEqual(stt, 200, state)
        for key in ("cwrmm:purchase", "cwrmm:warranty", "syncro:purchase", "syncro:warranty"):
            self.assertEqual(state["targets"][key]["state"], "written", state)

        # Both integrations again: everything they read back is ours; nothing moves.
        dc = sum(s.topic_end_offsets("date.changes").values())
        props_before = {r["id"]: self.syncro_asset(r["id"].split(":")[1])["properties"] for r in recs}
        j1 = s.sync_now(T)
        s.wait_synced(T, j1)
        j2 = cwrmm.sync_now_cwrmm(s, T)
        cwrmm.wait_cw_synced(s, T, j2)
        s.wait_normalized()
        self.assertEqual(sum(s.topic_end_offsets("date.changes").values()), dc)
        self.assertEqual(len(writes()), 7)
        for r in recs:
            self.assertEqual(self.syncro_asset(r["id"].split(":")[1])["properties"],
                             props_before[r["id"]])
        self.assertEqual(s.kcat("dlq"), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
