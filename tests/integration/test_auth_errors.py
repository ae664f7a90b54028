#!/usr/bin/env python3
"""Invalid API key and missing permissions give clear errors, no crash, no retry storm."""
import time

import harness
from harness import StackTest, wait_until

PERM_ASSETS = "Assets - List/Search"
ALL_BUT_ASSETS = ["Customers - List/Search", "Customers - View Detail", "Assets - View Details",
                  "Tickets - List/Search"]


class AuthErrorsTest(StackTest):

    def setUp(self):
        self.s = self.make_stack(sim_config={"rate_limit": 0},
                                 fetcher_env={"MSPSYNC_SCHEDULE": "1", "MSPSYNC_SCHEDULE_CHECK_MS": "300",
                                              "MSPSYNC_SCHEDULE_INTERVAL_MS": "1000"})
        self.s.add_account("fox-msp", customers=5, assets=60, token="good-key-1234567")
        self.s.add_tenant("fox")

    def test_invalid_key_is_rejected_with_the_vendor_message(self):
        s = self.s
        st, js, _ = s.connect("fox", "fox-msp", "wrong-key-999999")
        self.assertEqual(st, 422, js)
        self.assertIn("Unauthorized: invalid API token", js["error"])  # Syncro's own text
        self.assertIn("invalid", js["error"].lower())
        self.assertEqual(js.get("vendor_status"), 401)
        st, js, _ = s.api("GET", "/v1/tenants/fox/integrations/syncro")
        self.assertEqual(st, 404)  # nothing stored
        self.assertEqual(s.sim_stats()["tokens"]["wrong-key-999999"]["requests"], 1)

    def test_missing_assets_permission_is_named_when_saving(self):
        s = self.s
        s.sim_admin("POST", "/_sim/tokens", {"subdomain": "fox-msp", "token": "no-assets-key-1",
                                             "permissions": ALL_BUT_ASSETS})
        # Asked for asset sync, a key without the asset list permission is refused, naming it.
        st, js, _ = s.api("PUT", "/v1/tenants/fox/integrations/syncro",
                          {"base_url": s.sim_base_url("fox-msp"), "api_key": "no-assets-key-1",
                           "features": ["assets", "customers"]})
        self.assertEqual(st, 422, js)
        self.assertIn(PERM_ASSETS, js["error"])
        self.assertEqual(js["missing_permissions"], [PERM_ASSETS])
        self.assertEqual(js["missing_by_feature"], {"assets": [PERM_ASSETS]})

    def test_key_revoked_after_saving_sets_error_and_stops(self):
        s = self.s
        st, js, _ = s.connect("fox", "fox-msp", "good-key-1234567")
        self.assertEqual(st, 201, js)
        # Any job: the scheduler queues one every second, so by the time the first is done the
        # status may already show the next (on a loaded machine it always did).
        s.wait_synced("fox", None, assets=60)
        # The permission is taken away in Syncro: the next sync names it.
        s.sim_admin("PUT", "/_sim/tokens/good-key-1234567", {"permissions": ALL_BUT_ASSETS})
        s.sync_now("fox")
        st = wait_until(lambda: (lambda x: x if x["state"] == "Error" else None)(s.status("fox")),
                        60, "status Error")
        self.assertIn(PERM_ASSETS, st["last_error"])
        self.assertIn("Not authorized", st["last_error"])  # Syncro's message is kept
        self.assertTrue(st["paused"])
        # No retry storm: with the scheduler checking every 300 ms, the paused integration is not
        # retried; the token sees no more requests.
        before = s.sim_stats()["tokens"]["good-key-1234567"]["requests"]
        time.sleep(3)
        after = s.sim_stats()["tokens"]["good-key-1234567"]["requests"]
        self.assertEqual(before, after)
        for f in s.fetchers:
            self.assertIsNone(f.proc.poll(), "fetcher died")
        # The key is then revoked altogether: "sync now" reports the invalid key.
        s.sim_admin("DELETE", "/_sim/tokens/good-key-1234567")
        s.sync_now("fox")
        st = wait_until(lambda: (lambda x: x if x["state"] == "Error" and "invalid" in x["last_error"].lower()
                                 else None)(s.status("fox")), 60, "status Error for revoked key")
        self.assertIn("Unauthorized", st["last_error"])
        self.assertEqual(len(s.inventory("fox", "assets")), 60)  # what we had stays


if __name__ == "__main__":
    harness.main()
