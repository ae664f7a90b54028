#!/usr/bin/env python3
"""The gateway's admin routes never hold its loop on Redis.

- Every admin request runs on a coroutine of its own (admin.c) and its Redis calls go out on the
  async connection: with Redis stalled (SIGSTOP), admin requests of every kind wait — and are
  answered right once Redis is back, or 503 after the stall limit — while the loop goes on taking
  webhooks of a cached tenant and answering /healthz. The old code held the loop for each such
  request's blocking command (5 s).
- Routes that walk the whole Redis keyspace do it in rounds (store.c gw_redis_async_argv,
  integration_remove.c gw_unlink_prefix): deleting a tenant with a very large keyspace unlinks it
  in rounds of one SCAN and one UNLINK, and the loop answers /healthz (and the webhooks) between
  the rounds instead of being held for the whole walk. Another tenant's keys are untouched, and
  the deleted tenant is gone for good."""
import json
import signal
import socket
import threading
import time

import cwrmm
from harness import StackTest, healthz_while, http, wait_until
from test_webhook import INCIDENT, encode, sign

KEYS = 300000          # the deleted tenant's keys (one SCAN round reads 500 of the keyspace)
OTHER_KEYS = 2000      # another tenant's, which must survive
PROBE_LIMIT_S = 1.0    # the old code held the loop for the whole walk: 3 s and more here

FILL_LUA = ("for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do "
            "redis.call('SET', KEYS[1] .. i, 'x') end return 1")


STALL_LIMIT_S = 5.0  # tenant_cache.c LOAD_TIMEOUT_MS: the async connection's stall limit
WEBHOOK_LIMIT_S = 2.0  # the slowest webhook answer allowed during a stall


class GatewayAdminAsyncTest(StackTest):

    def post(self, s, secret, n):
        raw = encode(dict(INCIDENT, id="stall-%d" % n, org_id="org-%d" % n))
        ts = str(int(time.time()))
        hdrs = {"X-MSPSync-Timestamp": ts, "X-MSPSync-Signature": sign(secret, ts, raw)}
        return http("POST", s.gateway.url("/v1/webhooks/mtp/acme"), raw, hdrs, timeout=15)

    def admin_calls(self, s, owner):
        """Admin requests of several kinds: (what, method, path, body, token)."""
        return [
            ("tenants", "GET", "/v1/tenants", None, None),
            ("tenant", "GET", "/v1/tenants/acme", None, None),
            ("assets", "GET", "/v1/tenants/acme/assets", None, None),
            ("keys by a key", "GET", "/v1/tenants/acme/keys", None, owner),
            ("audit", "GET", "/v1/tenants/acme/audit", None, None),
            ("ticketing put", "PUT", "/v1/tenants/acme/ticketing", {"enabled": True}, None),
            ("webhook config", "GET", "/v1/tenants/acme/webhooks/mtp", None, None),
        ]

    def stall(self, s, secret, calls, stall_s):
        """Stop Redis for stall_s while the calls wait in threads and webhooks keep coming.
        @returns ({what: (status, body, seconds)}, webhooks accepted, slowest webhook, slowest
        /healthz)."""
        answers = {}

        def call(what, method, path, body, token):
            t0 = time.time()
            hdrs = {"Authorization": "Bearer " + (token or s.admin_token)}
            st, js, _ = http(method, s.gateway.url(path), body, hdrs, timeout=60)
            answers[what] = (st, js, time.time() - t0)

        def state():
            with open("/proc/%d/stat" % s.redis_proc.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0]

        s.redis_proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: state() == "T", 10, "redis-server stopped", interval=0.01)
            # Clients that leave while their request waits on Redis: the answer, when it comes,
            # goes to a request libevent detached from its connection (replying frees it).
            for path in ("/v1/tenants/acme/assets", "/v1/tenants"):
                with socket.create_connection(("127.0.0.1", s.gateway.port), timeout=5) as sk:
                    sk.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                                % (path, s.admin_token)).encode())
            threads = [threading.Thread(target=call, args=c) for c in calls]
            for t in threads:
                t.start()
            states = set()
            n, slowest, probe = self.intake(s, secret, stall_s, lambda: states.add(state()))
            waiting = [c[0] for c, t in zip(calls, threads) if t.is_alive()]
            self.assertEqual(states, {"T"}, "redis-server did not stay stopped")
        finally:
            s.redis_proc.send_signal(signal.SIGCONT)
        for t in threads:
            t.join(60)
        return answers, waiting, n, slowest, probe

    def intake(self, s, secret, seconds, each=lambda: None):
        """Webhooks and /healthz one after the other for seconds (each() before every round).
        @returns (webhooks accepted, slowest webhook, slowest /healthz)."""
        end = time.time() + seconds
        n, slowest, probe = 0, 0.0, 0.0
        while time.time() < end:
            each()
            t0 = time.time()
            st, js, _ = self.post(s, secret, n)
            slowest = max(slowest, time.time() - t0)
            self.assertEqual(st, 202, js)
            n += 1
            t0 = time.time()
            self.assertEqual(http("GET", s.gateway.url("/healthz"), timeout=15)[0], 200)
            probe = max(probe, time.time() - t0)
        return n, slowest, probe

    def blocking_commands(self, s):
        """mspsync_redis_blocking_commands_total: gw_redis calls made on the loop's stack."""
        st, text, _ = http("GET", s.gateway.url("/metrics"))
        self.assertEqual(st, 200)
        for line in text.splitlines():
            if line.startswith("mspsync_redis_blocking_commands_total"):
                return float(line.split()[-1])
        self.fail("no mspsync_redis_blocking_commands_total in /metrics")

    def test_a_stalled_redis_holds_admin_requests_never_the_loop(self):
        s = self.make_gateway_stack()
        s.add_tenant("acme")
        _, owner = s.add_key("acme", "owner")
        secret = s.api("POST", "/v1/tenants/acme/webhooks/mtp/secret")[1]["secret"]
        self.assertEqual(self.post(s, secret, 0)[0], 202)  # acme is cached from here on
        calls = self.admin_calls(s, owner)
        before = {c[0]: http(c[1], s.gateway.url(c[2]), c[3], {
            "Authorization": "Bearer " + (c[4] or s.admin_token)}) for c in calls}
        for what, (st, js, _) in before.items():
            self.assertEqual(st, 200, (what, js))

        # A stall shorter than the limit: every request waits, then gets the answer it would
        # have got without the stall.
        answers, waiting, n, slowest, probe = self.stall(s, secret, calls, STALL_LIMIT_S - 2.0)
        print("short stall: %d webhooks accepted, slowest %.3f s, slowest /healthz %.3f s; "
              "admin answers after %s" % (n, slowest, probe, {
                  k: round(v[2], 2) for k, v in answers.items()}))
        self.assertEqual(sorted(waiting), sorted(c[0] for c in calls),
                         "every admin request waited on Redis for the whole stall: %r" % answers)
        self.assertLess(slowest, WEBHOOK_LIMIT_S)
        self.assertLess(probe, WEBHOOK_LIMIT_S)
        self.assertGreaterEqual(n, 5)
        for what, (st, js, _) in answers.items():
            self.assertEqual(st, 200, (what, js))
            if what != "ticketing put" and what != "audit":
                self.assertEqual(js, before[what][1], what)
        self.assertEqual(len(answers), len(calls))

        # A stall past the limit: the requests are answered 503 at the limit, the loop never
        # held; afterwards the same requests work.
        answers, _, n, slowest, probe = self.stall(s, secret, calls, STALL_LIMIT_S + 3.0)
        print("long stall: %d webhooks accepted, slowest %.3f s, slowest /healthz %.3f s; "
              "admin answers %s" % (n, slowest, probe, {
                  k: (v[0], round(v[2], 2)) for k, v in answers.items()}))
        self.assertLess(slowest, WEBHOOK_LIMIT_S)
        self.assertLess(probe, WEBHOOK_LIMIT_S)
        for what, (st, js, took) in answers.items():
            self.assertEqual(st, 503, (what, js))
            self.assertIn("redis unavailable", js["error"], what)
            self.assertLess(took, STALL_LIMIT_S + 3.0, what)
        for what, method, path, body, token in calls:
            st, js, _ = http(method, s.gateway.url(path), body,
                             {"Authorization": "Bearer " + (token or s.admin_token)})
            self.assertEqual(st, 200, (what, js))
        # No Redis command of all these requests, of their audit entries or of the journal's
        # passes ran on the loop's own stack.
        self.assertEqual(self.blocking_commands(s), 0)
        # The webhooks of both stalls are all in Kafka: the loop took them, nothing lost.
        wait_until(lambda: len([l for l in s.kcat("raw.events") if l.startswith("acme\t")]) >= n,
                   60, "the stalls' incidents in raw.events")

    def test_a_connectwise_proof_stores_its_token_without_holding_the_loop(self):
        """A PUT of a ConnectWise RMM integration proves the credentials: the token it gets is
        stored in Redis by the token cache. Redis stalls while the vendor answers the token
        request: the store waits on the async connection; the old code stored it through the
        blocking context, holding the loop (webhooks, /healthz) until Redis came back."""
        s = self.make_gateway_stack()
        cwrmm.start_cwrmm_sim(s)
        cwrmm.add_partner(s, "acme-cw", devices=1, companies=1)
        s.add_tenant("acme")
        secret = s.api("POST", "/v1/tenants/acme/webhooks/mtp/secret")[1]["secret"]
        self.assertEqual(self.post(s, secret, 0)[0], 202)  # acme is cached from here on
        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"latency_ms": 1500})
        answer = {}

        def put():
            t0 = time.time()
            answer["put"] = cwrmm.connect_cwrmm(s, "acme", "acme-cw") + (time.time() - t0,)

        th = threading.Thread(target=put)
        th.start()
        # the token request has reached the vendor, which answers in 1.5 s: stall Redis then
        wait_until(lambda: cwrmm.cw_partner_stats(s, "acme-cw")["requests"] >= 1, 30,
                   "the proof's token request at the vendor", interval=0.01)
        s.redis_proc.send_signal(signal.SIGSTOP)
        try:
            n, slowest, probe = self.intake(s, secret, 3.5)
        finally:
            s.redis_proc.send_signal(signal.SIGCONT)
        th.join(60)
        print("proof during a stall: %d webhooks, slowest %.3f s, slowest /healthz %.3f s; "
              "PUT %r" % (n, slowest, probe, answer.get("put", (None,))[0]))
        self.assertLess(slowest, WEBHOOK_LIMIT_S)
        self.assertLess(probe, WEBHOOK_LIMIT_S)
        self.assertGreaterEqual(cwrmm.cw_partner_stats(s, "acme-cw")["tokens_issued"], 1)
        self.assertIn(answer["put"][0], (200, 201, 503), answer["put"])
        # afterwards the integration is connected (again, when the stall made the first fail)
        cwrmm.cw_admin(s, "PUT", "/_sim/config", {"latency_ms": 0})
        st, js, _ = cwrmm.connect_cwrmm(s, "acme", "acme-cw")
        self.assertEqual(st, 200, js)

    def test_a_long_base_url_gets_the_vendors_answer_not_a_redis_error(self):
        """The proof's rate-limit token is taken on the async connection; its bucket names the
        base URL, ~500 bytes here (the API accepts it): the take must not refuse the key."""
        s = self.make_gateway_stack()
        s.add_tenant("acme")
        base = "https://" + "0" * 480 + ".invalid"
        st, js, _ = s.api("PUT", "/v1/tenants/acme/integrations/syncro",
                          {"base_url": base, "api_key": "k" * 20})
        self.assertNotEqual(st, 503, js)
        self.assertNotIn("GCRA", json.dumps(js))
        self.assertNotIn("redis", json.dumps(js).lower())

    def test_a_deeply_nested_admin_body_is_refused_not_a_crash(self):
        """jansson parses nesting recursively, on the request's coroutine stack: its own depth
        limit (2048) is reached long before the stack's end."""
        s = self.make_gateway_stack()
        s.add_tenant("acme")
        for depth in (2000, 2100, 20000):
            body = ('{"a":' * depth + "1" + "}" * depth).encode()
            st, js, _ = http("PUT", s.gateway.url("/v1/tenants/acme/ticketing"), body,
                             {"Authorization": "Bearer " + s.admin_token,
                              "Content-Type": "application/json"})
            self.assertEqual(st, 400, (depth, js))
            # within jansson's limit the handler reads it (and refuses the key); past it, the
            # parser refuses the nesting
            self.assertIn("unknown key" if depth < 2048 else "malformed JSON", js["error"], depth)
        self.assertEqual(http("GET", s.gateway.url("/healthz"))[0], 200)
        self.assertEqual(s.api("GET", "/v1/tenants/acme")[0], 200)


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
