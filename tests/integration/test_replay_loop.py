#!/usr/bin/env python3
"""A dead letter replay runs off the gateway's event loop (api_history.c: a replay thread reads
the records back from dlq and produces them; the loop only claims, marks and answers). While a
replay of 300 dead letters runs, the webhook intake keeps answering promptly: the slowest
webhook during the replay is compared with the slowest before it. Two concurrent replays of the
same ids replay them once (the second is refused, 409), and a replay naming a dead letter whose
record is gone from Kafka answers 503 naming it, marks nothing and leaves no claim behind."""
import json
import subprocess
import threading
import time
import urllib.parse

import harness
import test_webhook_cache
from harness import StackTest, wait_until

N = 300
TENANT = "acme"
DURING_MAX_S = 1.5  # the slowest webhook during the replay; the loop used to stall for seconds
WEBHOOK_TIMEOUT_S = 30


class ReplayLoopTest(StackTest):

    make_stack = test_webhook_cache.WebhookCacheTest.make_stack  # Redis, broker, gateway

    def post(self, s, secret):
        """One webhook: its status, or the error when it was not answered in time."""
        try:
            return test_webhook_cache.WebhookCacheTest.post(self, s.gateway, TENANT, secret,
                                                            timeout=WEBHOOK_TIMEOUT_S)[0]
        except OSError as e:  # a timeout: the loop did not answer
            return repr(e)

    def dead_letters(self, s, **filters):
        """Every dead letter of the tenant (all pages)."""
        out, cursor = [], None
        while True:
            q = dict(filters, limit=200, **({"cursor": cursor} if cursor else {}))
            st, js, _ = s.api("GET", "/v1/tenants/%s/dead-letters?%s" %
                              (TENANT, urllib.parse.urlencode(q)))
            self.assertEqual(st, 200, js)
            out += js["dead_letters"]
            cursor = js["next_cursor"]
            if not cursor:
                return out

    def test_replay_of_many_does_not_stall_the_intake_and_runs_once(self):
        s = self.make_stack()
        s.add_tenant(TENANT)
        st, js, _ = s.api("POST", "/v1/tenants/%s/webhooks/mtp/secret" % TENANT, {})
        self.assertEqual(st, 201, js)
        secret = js["secret"]
        self.assertEqual(self.post(s, secret), 202)

        # N dead letters of the tenant, as a service writes them; their source is sync.events
        # (read only by the gateway's history reader, which skips what is not a job event)
        s.wait_topic("dlq")
        source = s.topic("sync.events")
        lines = "".join('k%d\t{"probe":%d}\n' % (i, i) for i in range(N))
        subprocess.run(["kcat", "-P", "-b", s.brokers, "-t", s.topic("dlq"), "-K", "\t",
                        "-H", "x-dlq-tenant=" + TENANT, "-H", "x-dlq-source-topic=" + source,
                        "-H", "x-dlq-service=probe", "-H", "x-dlq-reason=replay probe",
                        "-H", "x-dlq-failed-at=2026-11-23T10:00:00Z"],
                       input=lines, text=True, check=True, timeout=60)
        ids = wait_until(lambda: (lambda l: [d["id"] for d in l] if len(l) == N else None)(
            self.dead_letters(s)), 90, "%d dead letters indexed" % N)

        # webhooks flow all along; each one's (start, end)
        times, stop = [], threading.Event()
        statuses = []

        def intake():
            while not stop.is_set():
                t0 = time.monotonic()
                statuses.append(self.post(s, secret))
                times.append((t0, time.monotonic()))

        poster = threading.Thread(target=intake)
        poster.start()
        try:
            wait_until(lambda: len(times) >= 20, 60, "webhooks before the replay")
            before = max(b - a for a, b in times)
            # two replays of the same ids at once: one replays them, the other is refused
            answers = [None, None]

            def replay(i):
                try:
                    answers[i] = s.api("POST", "/v1/tenants/%s/dead-letters/replay" % TENANT,
                                       {"ids": ids})[:2]
                except OSError as e:
                    answers[i] = (repr(e), None)

            r0 = time.monotonic()
            threads = [threading.Thread(target=replay, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            r1 = time.monotonic()
        finally:
            stop.set()
            poster.join(WEBHOOK_TIMEOUT_S + 30)  # its last webhook, answered or timed out
        during = [b - a for a, b in times if a < r1 and b > r0]
        print("replay of %d: %.0f ms; webhooks: %d during it, slowest %.0f ms (before: %.0f ms)"
              % (N, (r1 - r0) * 1000, len(during), max(during) * 1000, before * 1000))
        self.assertLess(max(during), max(DURING_MAX_S, 5 * before),
                        "the intake stalled during the replay")
        self.assertEqual(set(statuses), {202})
        codes = sorted(str(a[0]) for a in answers)
        self.assertEqual(codes, ["200", "409"], answers)
        ok = [a[1] for a in answers if a[0] == 200][0]
        self.assertEqual((ok["replayed"], sorted(ok["ids"])), (N, sorted(ids)))
        # produced once, in Kafka when the answer came
        probes = [l for l in s.kcat("sync.events", fmt="%s\n") if '"probe"' in l]
        self.assertEqual(sorted(json.loads(p)["probe"] for p in probes), list(range(N)))
        self.assertEqual(len(self.dead_letters(s, replayed="true")), N)
        claims = s.redis("KEYS", "mspsync:{%s}:replay:*" % TENANT)
        self.assertIn(claims, ([], "(empty array)"))  # the claims are released

        # a dead letter whose record is gone from Kafka: 503 naming it, nothing marked, no claim
        gone = "0:999999999"
        s.redis("HSET", "mspsync:{%s}:dlq:%s" % (TENANT, gone), "id", gone, "reason", "x",
                "service", "probe", "source_topic", source, "failed_at", "2026-11-23T10:00:00Z")
        for _ in range(2):  # the second is refused the same way: the first released its claim
            st, js, _ = s.api("POST", "/v1/tenants/%s/dead-letters/replay" % TENANT,
                              {"ids": [gone, ids[0]], "force": True})
            self.assertEqual(st, 503, js)
            self.assertIn(gone, js["error"])
            self.assertNotIn(ids[0], js["error"])
        st, js, _ = s.api("GET", "/v1/tenants/%s/dead-letters/%s" % (TENANT, gone))
        self.assertEqual((st, js["replayed"]), (200, False), js)
        self.assertEqual(len([l for l in s.kcat("sync.events", fmt="%s\n") if '"probe"' in l]), N)


if __name__ == "__main__":
    harness.main()
