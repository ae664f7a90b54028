#!/usr/bin/env python3
"""The admin API answers bad requests with the right status and a clear JSON error."""
import harness
from harness import StackTest, http


class GatewayApiTest(StackTest):

    def test_errors_are_clear_and_nothing_is_queued(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        # No or wrong bearer token.
        st, js, _ = http("GET", s.gateway.url("/v1/tenants"))
        self.assertEqual(st, 401)
        self.assertIn("bearer", js["error"])
        st, js, _ = s.api("GET", "/v1/tenants", token="nope")
        self.assertEqual(st, 401)
        # Malformed JSON names the problem.
        st, js, _ = s.api("POST", "/v1/tenants", b'{"id": "x",')
        self.assertEqual(st, 400)
        self.assertTrue(js["error"])
        # Invalid tenant id; duplicate tenant.
        st, js, _ = s.api("POST", "/v1/tenants", {"id": "Bad Id!", "name": "x"})
        self.assertEqual(st, 400)
        s.add_tenant("hotel")
        st, js, _ = s.api("POST", "/v1/tenants", {"id": "hotel", "name": "again"})
        self.assertEqual(st, 409)
        # Unknown tenant and unknown route.
        st, js, _ = s.api("GET", "/v1/tenants/nobody/assets")
        self.assertEqual(st, 404)
        self.assertIn("error", js)
        st, js, _ = s.api("GET", "/v1/nothing-here")
        self.assertEqual(st, 404)
        # Oversized body.
        st = harness.http_oversized(("127.0.0.1", s.gateway.port), "/v1/tenants", 2 << 20,
                                    {"Authorization": "Bearer " + s.admin_token})
        self.assertEqual(st, 413)
        self.assertEqual(s.api("GET", "/v1/tenants/big")[0], 404)
        # Neither subdomain nor base_url; a subdomain with bad characters.
        st, js, _ = s.api("PUT", "/v1/tenants/hotel/integrations/syncro", {"api_key": "k"})
        self.assertEqual(st, 400)
        st, js, _ = s.api("PUT", "/v1/tenants/hotel/integrations/syncro", {"subdomain": "a b", "api_key": "k"})
        self.assertEqual(st, 400)
        # A wrong subdomain on the simulator → a hint about the subdomain.
        st, js, _ = s.api("PUT", "/v1/tenants/hotel/integrations/syncro",
                          {"base_url": s.sim_base_url("no-such-msp"), "api_key": "k"})
        self.assertEqual(st, 422, js)
        self.assertIn("subdomain", js["error"])
        # Sync now without an integration; unknown type.
        st, js, _ = s.api("POST", "/v1/tenants/hotel/integrations/syncro/sync", {"types": ["assets"]})
        self.assertEqual(st, 404)
        self.assertEqual(s.kcat("sync.jobs"), [])  # nothing reached Kafka
        s.add_account("hotel-msp", customers=2, assets=5, token="hotel-key-123456")
        st, js, _ = s.connect("hotel", "hotel-msp", "hotel-key-123456")
        self.assertEqual(st, 201, js)
        st, js, _ = s.api("POST", "/v1/tenants/hotel/integrations/syncro/sync", {"types": ["printers"]})
        self.assertEqual(st, 400)
        self.assertEqual(len(s.kcat("sync.jobs")), 1)
        s.wait_synced("hotel", js_job(s, "hotel"), assets=5)
        # Operators' endpoints.
        self.assertEqual(http("GET", s.gateway.url("/healthz"))[0], 200)
        st, text, _ = http("GET", s.gateway.url("/metrics"))
        self.assertEqual(st, 200)
        self.assertIn("mspsync_http_requests_total", text)
        # Removing the integration deletes its data.
        st, js, _ = s.api("DELETE", "/v1/tenants/hotel/integrations/syncro")
        self.assertEqual(st, 204)
        self.assertEqual(s.api("GET", "/v1/tenants/hotel/integrations/syncro")[0], 404)
        self.assertEqual(s.inventory("hotel", "assets"), [])
        self.assertEqual(s.redis_raw("--scan", "--pattern", "mspsync:{hotel}:inv:*").split(), [])


def js_job(s, tenant):
    return s.status(tenant)["job_id"]


if __name__ == "__main__":
    harness.main()
