"""
Dates edited in mspsync are written back to ConnectWise RMM (device custom fields), exactly once:
- 500 edits → exactly 500 custom-field PUTs with the right values, the two datetime definitions
  created once; the per-asset write-back state reads "written";
- a re-sync afterwards reads those values back and produces no date change and no write (no echo);
- the same edit sent twice → one write;
- write-back SIGKILLed 6 times mid-run and restarted → every edit written exactly once;
- ConnectWise RMM answers 503 for a minute → every edit written after recovery, none lost.
"""
import json
import random
import time
import unittest

from harness import Stack, wait_until
import cwrmm
from cwrmm import k

TENANT = "wb"
PARTNER = "pw"


def dates_for(i):
    return ("20%02d-%02d-%02d" % (18 + i % 6, 1 + i % 12, 1 + i % 28),
            "20%02d-%02d-%02d" % (27 + i % 4, 1 + (i * 7) % 12, 1 + (i * 3) % 28))


class WriteBackTest(unittest.TestCase):
    def setUp(self):
        self.s = Stack(self.id().split(".")[-1])
        s = self.s
        s.start_redis()
        s.start_sim()
        cwrmm.start_cwrmm_sim(s)
        s.start_gateway()
        s.start_normalizer()
        s.start_fetcher()
        cwrmm.add_partner(s, PARTNER, 600, companies=10)
        s.add_tenant(TENANT)
        st, js, _ = cwrmm.connect_cwrmm(s, TENANT, PARTNER,
                                        writeback={"purchase_date": True, "warranty_expires": True})
        self.assertIn(st, (200, 201), js)
        cwrmm.wait_cw_synced(s, TENANT, js["job_id"])
        self.assets = sorted(cwrmm.all_assets(s, TENANT))
        self.assertEqual(len(self.assets), 600)

    def tearDown(self):
        problems = self.s.stop_all()
        self.assertEqual(problems, [])

    def edit(self, aid, purchase, warranty):
        st, js, _ = self.s.api("PUT", "/v1/tenants/%s/assets/%s/dates" % (TENANT, aid),
                               {"purchase_date": purchase, "warranty_expires": warranty})
        self.assertEqual(st, 202, js)
        return js

    def writes(self):
        return cwrmm.cw_admin(self.s, "GET", "/_sim/partners/%s/writes" % PARTNER)

    def expect_written(self, edits, timeout=240):
        """Every edit's values are on its device, and each value was written exactly once."""
        def done():
            return len(self.writes()) >= 2 * len(edits)
        wait_until(done, timeout, "%d values written" % (2 * len(edits)), interval=1)
        time.sleep(1)
        w = self.writes()
        got = {}
        for x in w:
            got.setdefault((x["endpointID"], x["name"]), []).append(x["value"])
        for aid, (p, wr) in edits.items():
            eid = aid.split(":", 1)[1]
            self.assertEqual([v[:10] for v in got.get((eid, "Purchase Date"), [])], [p], aid)
            self.assertEqual([v[:10] for v in got.get((eid, "Warranty Expiration"), [])], [wr], aid)
        self.assertEqual(len(w), 2 * len(edits))
        return w

    def test_500_edits_resync_no_echo_duplicate_edit(self):
        s = self.s
        cwrmm.start_write_back(s)
        edits = {aid: dates_for(i) for i, aid in enumerate(self.assets[:500])}
        for aid, (p, w) in edits.items():
            self.edit(aid, p, w)
        self.expect_written(edits)
        st = cwrmm.cw_partner_stats(s, PARTNER)
        self.assertEqual(st["custom_field_puts"], 500, st)
        self.assertEqual(st["custom_field_definitions_created"], 2, st)
        one = self.assets[0]
        stt, js, _ = s.api("GET", "/v1/tenants/%s/assets/%s/writeback" % (TENANT, one))
        self.assertEqual(stt, 200, js)
        self.assertEqual(js["targets"]["cwrmm:purchase"]["state"], "written", js)
        self.assertEqual(js["targets"]["cwrmm:purchase"]["value"], edits[one][0], js)
        rec = cwrmm.all_assets(s, TENANT)[one]
        self.assertEqual(rec["dates"]["purchase"], {"value": edits[one][0], "source": "manual"})
        # Each edit is audited (a change through the API) without changing any setting.
        stt, js, _ = s.api("GET", "/v1/tenants/%s/audit?limit=200" % TENANT)
        self.assertEqual(stt, 200, js)
        dated = [e for e in js["entries"] if e["target"].endswith("/dates")]
        self.assertEqual(len(dated), 200, js["entries"][:2])
        self.assertEqual({(e["method"], e["status"], json.dumps(e["changes"]), e["actor"]["type"])
                          for e in dated}, {("PUT", 202, "{}", "operator")})
        self.assertEqual(dated[0]["target"], "/v1/tenants/%s/assets/%s/dates" % (TENANT, self.assets[499]))

        # A re-sync reads the 500 values back: our own writes, so no change and no write.
        dc = sum(s.topic_end_offsets("date.changes").values())
        job = cwrmm.sync_now_cwrmm(s, TENANT)
        cwrmm.wait_cw_synced(s, TENANT, job)
        s.wait_normalized()
        self.assertEqual(sum(s.topic_end_offsets("date.changes").values()), dc)
        st = cwrmm.cw_partner_stats(s, PARTNER)
        self.assertGreaterEqual(st["custom_field_gets"], 600)   # the values were read
        self.assertEqual(st["custom_field_puts"], 500, st)
        src = cwrmm.source_record(s, TENANT, one)
        self.assertEqual(src["dates"]["purchase"], edits[one][0])

        # The same edit twice: one write.
        aid = self.assets[550]
        self.edit(aid, "2021-06-15", "2026-06-15")
        self.edit(aid, "2021-06-15", "2026-06-15")
        wait_until(lambda: cwrmm.cw_partner_stats(s, PARTNER)["custom_field_puts"] == 501, 60,
                   "the edit written")
        time.sleep(3)
        s.wait_normalized()
        self.assertEqual(cwrmm.cw_partner_stats(s, PARTNER)["custom_field_puts"], 501)
        self.assertEqual(s.kcat("dlq"), [])

    def test_write_back_killed_mid_run(self):
        s = self.s
        # Slow enough that the run takes ~20 s: 100 ms per call, 4 assets at a time.
        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"latency_ms": 100})
        wb = cwrmm.start_write_back(s, MSPSYNC_MAX_ACTIVE=4)
        edits = {aid: dates_for(i) for i, aid in enumerate(self.assets[:500])}
        for aid, (p, w) in edits.items():
            self.edit(aid, p, w)
        rnd = random.Random(4)
        kills = 0
        while kills < 6 and len(self.writes()) < 2 * len(edits):
            time.sleep(rnd.uniform(0.5, 2.5))
            wb.kill9()
            kills += 1
            s.restart(wb)
        self.assertGreaterEqual(kills, 3)
        self.expect_written(edits)
        self.assertEqual(cwrmm.cw_partner_stats(s, PARTNER)["custom_field_puts"], 500)
        self.assertEqual(cwrmm.cw_partner_stats(s, PARTNER)["token_locks"], 0)
        self.assertEqual(s.kcat("dlq"), [])

    def test_vendor_503_for_a_minute(self):
        s = self.s
        cwrmm.start_write_back(s)
        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"outage_status": 503, "outage_ms": 60000})
        t0 = time.time()
        edits = {aid: dates_for(i) for i, aid in enumerate(self.assets[:100])}
        for aid, (p, w) in edits.items():
            self.edit(aid, p, w)
        # The first attempt met the outage: the state says pending, with the vendor's 503
        # (waited for: on a loaded machine the first attempt may come late).
        def met_the_outage():
            stt, js, _ = s.api("GET", "/v1/tenants/%s/assets/%s/writeback" % (TENANT, self.assets[0]))
            target = ((js or {}).get("targets") or {}).get("cwrmm:purchase") or {}
            return js if "503" in (target.get("error") or "") else None
        js = wait_until(met_the_outage, 50, "the write-back meeting the 503")
        self.assertEqual(js["targets"]["cwrmm:purchase"]["state"], "pending", js)
        self.assertEqual(self.writes(), [])
        self.expect_written(edits, timeout=200)
        self.assertGreater(time.time() - t0, 59)
        self.assertEqual(s.kcat("dlq"), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
