#!/usr/bin/env python3
"""Syncro is down for longer than the retries last: the job fails with a clear error (Syncro's
status and text, not paused: this is not the user's fault), nothing is lost, and the next
scheduled sync, once Syncro is back, completes the inventory."""
import harness
from harness import StackTest, wait_until


class VendorOutageTest(StackTest):

    def test_outage_longer_than_retries_then_recovery_by_schedule(self):
        s = self.make_stack(sim_config={"rate_limit": 0},
                            fetcher_env={"MSPSYNC_MAX_ATTEMPTS": "4", "MSPSYNC_BACKOFF_BASE_MS": "100",
                                         "MSPSYNC_BACKOFF_CAP_MS": "300", "MSPSYNC_SCHEDULE": "1",
                                         "MSPSYNC_SCHEDULE_CHECK_MS": "300",
                                         "MSPSYNC_SCHEDULE_INTERVAL_MS": "3000"})
        s.add_account("oscar-msp", customers=10, assets=300, token="oscar-key-1234567")
        s.add_tenant("oscar")
        st, js, _ = s.connect("oscar", "oscar-msp", "oscar-key-1234567")  # /me answered
        self.assertEqual(st, 201, js)
        s.sim_config({"outage_status": 503, "outage_ms": 600000})
        err = wait_until(lambda: (lambda x: x if x["state"] == "Error" else None)(s.status("oscar")),
                         60, "status Error")
        self.assertIn("503", err["last_error"])
        self.assertIn("gave up after 4 attempts", err["last_error"])
        self.assertFalse(err["paused"])
        for svc in s.services:
            self.assertIsNone(svc.proc.poll(), "%s died during the outage" % svc.name)
        s.sim_config({"outage_ms": 0})
        def recovered():
            x = s.status("oscar")
            return x if x["state"] == "Connected" and x["counts"]["assets"] == 300 else None
        st = wait_until(recovered, 120, "a scheduled sync after the outage")
        self.assertEqual(st["counts"]["customers"], 10)
        self.assertEqual(st["last_error"], "")


if __name__ == "__main__":
    harness.main()
