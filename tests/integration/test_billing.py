#!/usr/bin/env python3
"""Usage billing end to end: signed usage reports → monthly high-water marks → Syncro
recurring-invoice line quantities, compared with an independent model of the marks."""
import collections
import json
import random

import billing as B
import harness
from harness import StackTest, http, wait_until


class BillingTest(StackTest):

    def test_shuffled_duplicated_reports_become_line_quantities_once(self):
        """50 orgs × 3 products × 30 days, shuffled, 10 % sent twice → after the push every
        mapped line holds the model's high-water mark, written once; a second push writes
        nothing; unmapped orgs and products are shown with their counts and applied once
        mapped; a counted line is refused with the reason."""
        s = B.make_stack(self)
        products = {p: {"line_name": n} for p, n in B.PRODUCTS.items()}
        products[B.COUNTED_PRODUCT] = {"line_name": B.COUNTED_LINE}
        secret, clock, by_org, custs = B.setup(s, B.local(2026, 11, 30, 17), orgs=52, mapped=50,
                                               products=products, sim_config={"rate_limit": 0})
        rnd = random.Random(12)
        sent = []
        for o in range(1, 53):
            org = "org-%04d" % o
            for p in B.PRODUCTS:
                for day in range(1, 31):
                    sent.append(B.report(org, p, rnd.randint(0, 400),
                                         B.local(2026, 11, day, rnd.randint(0, 23), rnd.randint(0, 59)),
                                         rid="%s-%s-%d" % (org, p, day)))
        for o in range(1, 6):  # the counted line's product
            sent.append(B.report("org-%04d" % o, B.COUNTED_PRODUCT, 7 * o, B.local(2026, 11, 3)))
        for o in range(1, 4):  # a product without a mapping yet
            for day in (2, 9):
                sent.append(B.report("org-%04d" % o, "SKU-NEW", 10 * o + day, B.local(2026, 11, day)))
        sent += [dict(r) for r in rnd.sample(sent, len(sent) // 10)]  # duplicates
        rnd.shuffle(sent)

        # a batch with one bad report is refused whole: nothing of it is produced
        bad = {"reports": [B.report("org-0001", "SKU-MAIL", 99999, B.local(2026, 11, 4)),
                           dict(B.report("org-0001", "SKU-MAIL", 1, B.local(2026, 11, 4)), count=-1)]}
        raw = json.dumps(bad).encode()
        st, js, _ = http("POST", s.gateway.url("/v1/webhooks/mtp/%s/usage" % B.TENANT), raw,
                         B.sign(secret, raw))
        self.assertEqual(st, 400, js)
        self.assertIn("reports[1].", js["error"])
        self.assertIn("count", js["error"])

        B.send(s, secret, sent)
        B.wait_applied(s, len(sent))
        marks = B.expected_marks(sent, "2026-11")

        # unmapped orgs and products: listed with their latest count and mark
        st = B.status(s)
        self.assertEqual(st["period"], "2026-11")
        unmapped = {(u["org_id"], u["product"]): u for u in st["unmapped"]}
        latest = {}
        for r in sent:
            k = (r["org_id"], r["product"])
            if k not in latest or r["as_of"] >= latest[k]["as_of"]:
                latest[k] = r
        want_unmapped = {k for k in marks if k[0] in ("org-0051", "org-0052") or k[1] == "SKU-NEW"}
        self.assertEqual(set(unmapped), want_unmapped)
        for k, u in unmapped.items():
            self.assertEqual(u["mark"], marks[k], k)
            self.assertEqual(u["count"], latest[k]["count"], k)
            self.assertIn("not mapped", u["why"])
            self.assertIsInstance(u["suggestions"], list)

        # preview: what the push would write, old quantity unknown yet
        st_, pv, _ = s.api("GET", "/v1/tenants/%s/billing/preview" % B.TENANT)
        self.assertEqual(st_, 200, pv)
        pv_lines = {(int(l["customer_id"]), l["product"]): l for l in pv["lines"]}
        for (org, p), m in marks.items():
            if org in by_org and p in B.PRODUCTS:
                self.assertEqual(pv_lines[(by_org[org], p)]["new_quantity"], m)

        lp = B.push(s)
        self.assertEqual(lp["state"], "done", lp)
        lines = B.sim_lines(s)
        want_written = 0
        for (org, p), m in marks.items():
            if org not in by_org or p not in B.PRODUCTS:
                continue
            self.assertEqual(B.qty(lines[(by_org[org], B.PRODUCTS[p])]), m, (org, p))
            want_written += m != 0
        for org in ("org-0051", "org-0052"):
            cid = custs[int(org[4:]) - 1]
            for n in B.PRODUCTS.values():
                self.assertEqual(B.qty(lines[(cid, n)]), 0, (org, n))
        ch = B.changes(s)
        per_line = collections.Counter((c["schedule_id"], c["line_id"]) for c in ch)
        self.assertEqual(len(ch), want_written)
        self.assertTrue(all(v == 1 for v in per_line.values()), per_line.most_common(3))
        self.assertEqual(lp["written"], want_written)

        # the counted line: refused with the reason, its quantity never written
        st = B.status(s)
        refused = [l for c in st["customers"] for l in c["lines"] if l["product"] == B.COUNTED_PRODUCT]
        self.assertEqual(len(refused), 5)
        for l in refused:
            self.assertEqual(l["state"], "refused", l)
            self.assertIn("counted line", l["error"])
            self.assertIn("fixed-quantity", l["error"])
        counted_ids = {lines[(by_org["org-%04d" % o], B.COUNTED_LINE)]["id"] for o in range(1, 6)}
        self.assertFalse([c for c in ch if c["line_id"] in counted_ids])
        # now that a push has seen the line, mapping a product to it is refused when saved
        st_, js, _ = s.api("PUT", "/v1/tenants/%s/billing" % B.TENANT,
                           {"enabled": True, "time_zone": B.TZ, "products": products})
        self.assertEqual(st_, 400, js)
        self.assertIn('products.%s.line_name: "%s" is a counted line' % (B.COUNTED_PRODUCT,
                                                                          B.COUNTED_LINE), js["error"])
        self.assertIn("map the product to a fixed-quantity line", js["error"])
        self.assertTrue(B.status(s)["customers"])  # the refused save changed nothing
        del products[B.COUNTED_PRODUCT]

        # a second push writes nothing
        lp2 = B.push(s)
        self.assertEqual((lp2["state"], lp2["written"]), ("done", 0), lp2)
        self.assertEqual(len(B.changes(s)), len(ch))

        # history of one written line
        k = next(k for k, m in marks.items() if k[0] in by_org and k[1] in B.PRODUCTS and m)
        line = lines[(by_org[k[0]], B.PRODUCTS[k[1]])]
        st_, h, _ = s.api("GET", "/v1/tenants/%s/billing/history?schedule_id=%d&line_id=%d"
                          % (B.TENANT, line["schedule_id"], line["id"]))
        self.assertEqual(st_, 200, h)
        self.assertEqual([(c["from"], c["to"]) for c in h["changes"]], [("0.0", marks[k])])

        # mapped now: org-0051 and SKU-NEW (a line created where missing) are applied, nothing lost
        B.map_org(s, "org-0051", custs[50])
        products["SKU-NEW"] = {"line_name": "New seats", "create": True, "retail_cents": 900}
        B.configure(s, products)
        lp3 = B.push(s)
        self.assertEqual(lp3["state"], "done", lp3)
        lines = B.sim_lines(s)
        for p, n in B.PRODUCTS.items():
            self.assertEqual(B.qty(lines[(custs[50], n)]), marks[("org-0051", p)])
        for o in range(1, 4):
            self.assertEqual(B.qty(lines[(by_org["org-%04d" % o], "New seats")]),
                             marks[("org-%04d" % o, "SKU-NEW")])
        new = B.changes(s)[len(ch):]
        self.assertEqual(len(new), sum(1 for p in B.PRODUCTS if marks[("org-0051", p)]) + 3)
        self.assertEqual({(c["from"] is None) for c in new if c["customer_id"] != custs[50]}, {True})
        unmapped = {(u["org_id"], u["product"]) for u in B.status(s)["unmapped"]}
        self.assertEqual(unmapped, {k for k in marks
                                    if k[0] == "org-0052" or k[1] == B.COUNTED_PRODUCT})
        self.assertEqual(s.stop_all(), [])


if __name__ == "__main__":
    harness.main()
