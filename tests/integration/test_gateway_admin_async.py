#!/usr/bin/env python3
"""The gateway's admin routes that walk the whole Redis keyspace do it on the async connection
(store.c gw_redis_async_argv, integration_remove.c gw_unlink_prefix): deleting a tenant with a
very large keyspace unlinks it in rounds of one SCAN and one UNLINK, and the loop answers
/healthz (and the webhooks) between the rounds instead of being held for the whole walk. Another
tenant's keys are untouched, and the deleted tenant is gone for good."""
import threading
import time

from harness import StackTest, healthz_while

KEYS = 300000          # the deleted tenant's keys (one SCAN round reads 500 of the keyspace)
OTHER_KEYS = 2000      # another tenant's, which must survive
PROBE_LIMIT_S = 1.0    # the old code held the loop for the whole walk: 3 s and more here

FILL_LUA = ("for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do "
            "redis.call('SET', KEYS[1] .. i, 'x') end return 1")


class GatewayAdminAsyncTest(StackTest):


    def fill(self, s, prefix, n):
        for lo in range(0, n, 50000):
            s.redis("EVAL", FILL_LUA, 1, prefix, lo, min(n, lo + 50000) - 1)

    def count(self, s, prefix):
        keys, cursor = 0, "0"
        while True:
            out = s.redis_raw("SCAN", cursor, "MATCH", prefix + "*", "COUNT", 5000).split("\n")
            cursor = out[0].strip()
            keys += len([k for k in out[1:] if k.strip()])
            if cursor == "0":
                return keys

    def test_deleting_a_tenant_with_a_huge_keyspace_never_holds_the_loop(self):
        s = self.make_gateway_stack()  # nothing else reads these keys
        s.add_tenant("bulky")
        s.add_tenant("other")
        self.fill(s, "mspsync:{bulky}:inv:junk:", KEYS)
        self.fill(s, "mspsync:{other}:inv:junk:", OTHER_KEYS)
        self.assertGreaterEqual(self.count(s, "mspsync:{bulky}:"), KEYS)

        answer = {}

        def delete():
            t0 = time.time()
            answer["status"] = s.api("DELETE", "/v1/tenants/bulky")[0]
            answer["took"] = time.time() - t0

        th = threading.Thread(target=delete)
        started = []

        def begun():
            if not started:
                th.start()
                started.append(time.time())
            return True

        took = healthz_while(s.gateway, begun, lambda: not th.is_alive(), timeout=300,
                             limit=PROBE_LIMIT_S)
        th.join()
        self.assertEqual(answer.get("status"), 204, answer)
        # The walk took many round trips; /healthz was answered between them all along.
        self.assertGreaterEqual(len(took), 5,
                                "the delete took %.2f s: too short to show anything" % answer["took"])
        slow = [t for t in took if t >= PROBE_LIMIT_S]
        self.assertEqual(slow, [], "probes held for %s s during a delete of %.2f s (%d probes)" % (
            slow, answer["took"], len(took)))
        print("delete of %d keys: %.2f s, %d probes, slowest %.0f ms"
              % (KEYS, answer["took"], len(took), max(took) * 1000))

        self.assertEqual(self.count(s, "mspsync:{bulky}:"), 0)
        self.assertGreaterEqual(self.count(s, "mspsync:{other}:inv:junk:"), OTHER_KEYS)
        st, _, _ = s.api("GET", "/v1/tenants/bulky")
        self.assertEqual(st, 404)
        st, _, _ = s.api("GET", "/v1/tenants/other")
        self.assertEqual(st, 200)


if __name__ == "__main__":
    import harness
    harness.main()
