"""
The vendor simulators run strict by default: they refuse what the vendors' official documents
refuse, with the vendor's error shape, so the requests mspsync sent before they followed the
documents fail here, and the ones it sends now are served:
- ConnectWise RMM device list: `field=` repeated (the document defines one comma-separated value)
  and a missing X-Request-ID (required) are 400 {"code","message"}; one comma-separated `field`
  with an X-Request-ID is served with the projected fields;
- ConnectWise RMM custom-field values: an attributeId that is not a uuid is 400 {"error",...};
- Syncro PUT /customer_assets/{id} without `name` (required) is 422; with it, 200;
- Syncro GET /tickets with a bare date for created_after (format date-time) or a repeated page is
  400; with a date-time, 200;
- "strict": false in /_sim/config brings back the old lenient behaviour.
"""
import unittest
import uuid

from harness import Stack, http
import cwrmm

FIELDS = ["endpointID", "friendlyName", "deviceName", "system", "baseboard", "os", "macAddress",
          "modifiedAt"]


class StrictSimulatorsTest(unittest.TestCase):
    def setUp(self):
        self.s = Stack(self.id().split(".")[-1])
        self.s.start_redis()   # the simulators' environment names it; they do not use it
        self.s.start_sim()
        cwrmm.start_cwrmm_sim(self.s)

    def tearDown(self):
        self.assertEqual(self.s.stop_all(), [])

    def cw_token(self, partner):
        st, js, _ = http("POST", self.s.cw.url("/%s/v1/token" % partner),
                         {"grant_type": "client_credentials", "client_id": "cid-" + partner,
                          "client_secret": "sec-" + partner,
                          "scope": "platform.devices.read platform.custom_fields_values.write"})
        self.assertEqual(st, 200, js)
        return js["access_token"]

    def test_cwrmm_device_list_and_values(self):
        s = self.s
        part = cwrmm.add_partner(s, "ps", 5, companies=1)
        company = part["company_list"][0]["id"]
        auth = {"Authorization": "Bearer " + self.cw_token("ps")}
        rid = dict(auth, **{"X-Request-ID": str(uuid.uuid4())})
        base = s.cw.url("/ps/api/platform/v2/device/categories/all/endpoints?limit=500")
        body = {"resourceType": "company", "resources": [company]}
        repeated = base + "".join("&field=" + f for f in FIELDS)
        one = base + "&field=" + ",".join(FIELDS)

        st, js, _ = http("POST", repeated, body, rid)           # c76cd58's request
        self.assertEqual(st, 400, js)
        self.assertEqual(js["code"], "400")
        self.assertIn("'field' must be given once", js["message"])
        st, js, _ = http("POST", one, body, auth)               # no X-Request-ID
        self.assertEqual((st, js["message"]), (400, "missing required header: X-Request-ID"))
        st, js, _ = http("POST", base + "&cursor=abc&field=os", body, rid)
        self.assertEqual(st, 400, js)                           # cursor is an integer
        st, js, _ = http("POST", one, body, rid)                # what mspsync sends now
        self.assertEqual(st, 200, js)
        dev = js["platform"][0]["endpoints"][0]
        for f in ("friendlyName", "system", "os", "macAddress"):
            self.assertIn(f, dev)

        vals = s.cw.url("/ps/api/platform/v2/device/endpoints/%s/custom-fields" % dev["endpointID"])
        st, js, _ = http("PUT", vals, [{"entityId": dev["endpointID"], "attributeId": "purchase",
                                        "value": "2024-01-01T00:00:00Z"}], auth)
        self.assertEqual(st, 400, js)
        self.assertEqual(js["error"], "Bad request")
        self.assertIn("attributeId must be a uuid", js["description"])

        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"strict": False})
        st, js, _ = http("POST", repeated, body, auth)           # lenient: served as before
        self.assertEqual(st, 200, js)

    def test_syncro_asset_put_and_ticket_search(self):
        s = self.s
        s.add_account("st", 3, 5, "tok-st")
        api = s.sim_base_url("st")
        auth = {"Authorization": "Bearer tok-st"}
        st, js, _ = http("GET", api + "/customer_assets?page=1", None, auth)
        self.assertEqual(st, 200, js)
        asset = js["assets"][0]
        url = api + "/customer_assets/%d" % asset["id"]
        props = dict(asset.get("properties") or {}, **{"Purchase Date": "2024-03-01"})

        st, js, _ = http("PUT", url, {"properties": props}, auth)  # c76cd58's write-back
        self.assertEqual(st, 422, js)
        self.assertEqual(js, {"success": False, "message": ["Name can't be blank"], "params": {}})
        st, js, _ = http("PUT", url, {"name": asset["name"], "properties": props}, auth)
        self.assertEqual(st, 200, js)

        st, js, _ = http("GET", api + "/tickets?customer_id=1&created_after=2026-01-01&page=1",
                         None, auth)                               # c76cd58's search
        self.assertEqual(st, 400, js)
        self.assertIn("created_after", js["error"])
        st, js, _ = http("GET", api + "/tickets?page=1&page=2", None, auth)
        self.assertEqual(st, 400, js)
        st, js, _ = http("GET", api + "/tickets?customer_id=1&created_after=2026-01-01T00:00:00Z"
                         "&page=1", None, auth)
        self.assertEqual(st, 200, js)

        s.sim_config({"strict": False})
        st, js, _ = http("PUT", url, {"properties": props}, auth)
        self.assertEqual(st, 200, js)


if __name__ == "__main__":
    unittest.main(verbosity=2)
