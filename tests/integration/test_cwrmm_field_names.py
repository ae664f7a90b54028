"""
A partner whose date definitions were made by a technician and spelled their own way
("Purchase date", "warranty expiration") has one pair of date fields for mspsync, whichever
service looks:
- the fetcher reads the dates the devices hold under those names into the inventory;
- an edit is written by the write-back into those same definitions (no second pair created);
- a re-sync reads the written values back: no date change, no second write (no echo).
Before one shared name rule, the write-back matched the names ignoring case and the fetcher did
not, so the dates were written but never read.
"""
import unittest

from harness import Stack, wait_until
import cwrmm

T = "fn"
P = "pfn"
NAMES = {"purchase": "Purchase date", "warranty": "warranty expiration"}
WB = {"purchase_date": True, "warranty_expires": True}


class FieldNamesTest(unittest.TestCase):
    def setUp(self):
        self.s = Stack(self.id().split(".")[-1])
        cwrmm.start_dates_stack(self.s)

    def tearDown(self):
        self.assertEqual(self.s.stop_all(), [])

    def writes(self):
        return cwrmm.cw_admin(self.s, "GET", "/_sim/partners/%s/writes" % P)

    def test_partner_spelled_definitions_are_read_and_written_consistently(self):
        s = self.s
        overlap = [{"serial": "FN-%d" % i, "manufacturer": "Dell Inc.",
                    "purchase": "2021-0%d-01T00:00:00Z" % (i + 1),
                    "warranty": "2026-0%d-01T00:00:00Z" % (i + 1)} for i in range(3)]
        part = cwrmm.add_partner(s, P, 12, companies=3, overlap=overlap, date_field_names=NAMES)
        held = part["seed_overlap_endpoint_ids"]
        s.add_tenant(T)
        st, js, _ = cwrmm.connect_cwrmm(s, T, P, writeback=WB)
        self.assertIn(st, (200, 201), js)
        cwrmm.wait_cw_synced(s, T, js["job_id"])
        s.wait_normalized()

        # The fetcher read the partner's fields.
        assets = cwrmm.all_assets(s, T)
        self.assertEqual(len(assets), 12)
        for i, eid in enumerate(held):
            d = assets["cwrmm:" + eid]["dates"]
            self.assertEqual(d["purchase"], {"value": "2021-0%d-01" % (i + 1), "source": "cwrmm"})
            self.assertEqual(d["warranty"], {"value": "2026-0%d-01" % (i + 1), "source": "cwrmm"})
        self.assertGreaterEqual(cwrmm.cw_partner_stats(s, P)["custom_field_gets"], 12)

        # The write-back writes into the same two definitions.
        aid = next(a for a in sorted(assets) if a.split(":", 1)[1] not in held)
        st, js, _ = s.api("PUT", "/v1/tenants/%s/assets/%s/dates" % (T, aid),
                          {"purchase_date": "2023-02-03", "warranty_expires": "2028-02-03"})
        self.assertEqual(st, 202, js)
        wait_until(lambda: len(self.writes()) >= 2, 60, "the edit written")
        w = self.writes()
        self.assertEqual(sorted((x["name"], x["value"][:10]) for x in w),
                         [("Purchase date", "2023-02-03"), ("warranty expiration", "2028-02-03")],
                         w)
        stats = cwrmm.cw_partner_stats(s, P)
        self.assertEqual(stats["custom_field_definitions_created"], 0, stats)
        defs = cwrmm.cw_admin(s, "GET", "/_sim/partners/%s" % P)["custom_field_definitions"]
        self.assertEqual(defs, 3)   # the vendor's Asset Tag and the partner's two

        # A re-sync reads the written values back under the partner's names: nothing moves.
        dc = sum(s.topic_end_offsets("date.changes").values())
        job = cwrmm.sync_now_cwrmm(s, T)
        cwrmm.wait_cw_synced(s, T, job)
        s.wait_normalized()
        src = cwrmm.source_record(s, T, aid)
        self.assertEqual(src["dates"], {"purchase": "2023-02-03", "warranty": "2028-02-03"})
        self.assertEqual(sum(s.topic_end_offsets("date.changes").values()), dc)
        self.assertEqual(len(self.writes()), 2)
        self.assertEqual(s.kcat("dlq"), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
