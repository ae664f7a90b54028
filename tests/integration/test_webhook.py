#!/usr/bin/env python3
"""The signed MTP incident webhook: a good delivery lands on raw.events exactly once; every
kind of bad delivery is refused with the right status and a JSON error naming the cause, and
produces nothing; secret rotation keeps the old secret valid only as long as promised."""
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import unittest

import harness
from harness import Stack, http

INCIDENT = {
    "id": 918273,
    "org_id": "org-7",
    "org_name": "Contoso Ltd",
    "alert_type": "device_offline",
    "status": "open",
    "severity": "high",
    "title": "WS-01 has been offline for 15 minutes",
    "subject": "WS-01",
    "description": "Last heartbeat 21:30 UTC.",
    "link": "https://mtp.example/incidents/918273",
    "occurred_at": "2026-11-23T21:45:00.250+01:00",
    "x_vendor_extra": {"kept": [1, 2, 3]},
}


def sign(secret, ts, body):
    """v1=hex(hmac_sha256(secret, "<ts>.<body>"))."""
    mac = hmac.new(secret.encode(), str(ts).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def encode(body):
    return body if isinstance(body, bytes) else json.dumps(body).encode()


class WebhookTest(unittest.TestCase):
    """Redis and the gateway only: the webhook's whole effect is one record on raw.events."""

    def make_stack(self, own_broker=False, **gateway_env):
        self.stack = Stack(self.id().split(".")[-1], own_broker=own_broker)
        self.addCleanup(self._teardown)
        self.stack.start_redis()
        self.stack.start_gateway(**gateway_env)
        return self.stack

    def _teardown(self):
        problems = self.stack.stop_all()
        if problems:
            self.fail("unclean shutdown: " + "; ".join(problems))

    # ------------------------------------------------------------------ helpers
    def new_secret(self, tenant, **body):
        st, js, _ = self.stack.api("POST", "/v1/tenants/%s/webhooks/mtp/secret" % tenant,
                                   body if body else None)
        self.assertEqual(st, 201, js)
        self.assertRegex(js["secret"], r"^whsec_[0-9a-f]{64}$")
        self.assertEqual(js["webhook_path"], "/v1/webhooks/mtp/%s" % tenant)
        return js

    def post(self, tenant, body, secret, ts=None, sig=None, headers=None, drop=()):
        """POST a webhook; signed with secret unless sig is given. drop: header names to leave out."""
        raw = encode(body)
        ts = str(int(time.time())) if ts is None else str(ts)
        hdrs = {"X-MSPSync-Timestamp": ts,
                "X-MSPSync-Signature": sig if sig is not None else sign(secret, ts, raw)}
        for name in drop:
            hdrs.pop(name, None)
        hdrs.update(headers or {})
        return http("POST", self.stack.gateway.url("/v1/webhooks/mtp/%s" % tenant), raw, hdrs)

    def records(self):
        return [l.split("\t", 1) for l in self.stack.kcat("raw.events")]

    def assert_no_secret_in_logs(self, *secrets):
        text = self.stack.gateway.logtext()
        for s in secrets:
            self.assertNotIn(s, text)
            self.assertNotIn(s[len("whsec_"):], text)

    # ------------------------------------------------------------------ tests
    def test_signed_incident_is_acknowledged_after_kafka_has_exactly_that_record(self):
        s = self.make_stack()
        s.add_tenant("acme")
        secret = self.new_secret("acme")["secret"]
        before_ms = int(time.time() * 1000)
        st, js, _ = self.post("acme", INCIDENT, secret)
        after_ms = int(time.time() * 1000)
        self.assertEqual(st, 202, js)
        self.assertEqual(js, {"status": "accepted", "tenant": "acme", "incident_id": "918273"})

        recs = self.records()
        self.assertEqual(len(recs), 1, recs)
        key, value = recs[0]
        self.assertEqual(key, "acme")
        rec = json.loads(value)
        self.assertEqual(list(rec), ["schema_version", "kind", "tenant", "integration", "type",
                                     "source_id", "received_at", "received_at_ms", "payload"])
        self.assertEqual(rec["schema_version"], 1)
        self.assertEqual(rec["kind"], "incident")
        self.assertEqual(rec["tenant"], "acme")
        self.assertEqual(rec["integration"], "mtp")
        self.assertEqual(rec["type"], "incident")
        self.assertEqual(rec["source_id"], "918273")
        self.assertRegex(rec["received_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(before_ms - 1000 <= rec["received_at_ms"] <= after_ms + 1000)
        # The payload is the body as sent (unknown fields kept), ids as decimal strings.
        want = dict(INCIDENT, id="918273")
        self.assertEqual(rec["payload"], want)
        self.assertNotIn(" ", value.split('"payload":')[0])  # compact

        # The org is remembered for mapping suggestions.
        seen = json.loads(s.redis_raw("HGET", "mspsync:{acme}:ticketing:orgs", "org-7"))
        self.assertEqual(seen["org_name"], "Contoso Ltd")
        self.assertRegex(seen["last_seen_at"], r"^\d{4}-\d\d-\d\dT")
        # An integer org id and no org name: stored as a string; the last known name stays.
        st, js, _ = self.post("acme", dict(INCIDENT, id="inc-2", org_id=7), secret)
        self.assertEqual(st, 202, js)
        payload = json.loads(self.records()[1][1])["payload"]
        self.assertEqual(payload["org_id"], "7")
        body = dict(INCIDENT, id="inc-3")
        del body["org_name"]
        self.assertEqual(self.post("acme", body, secret)[0], 202)
        seen = json.loads(s.redis_raw("HGET", "mspsync:{acme}:ticketing:orgs", "org-7"))
        self.assertEqual(seen["org_name"], "Contoso Ltd")
        self.assertEqual(len(self.records()), 3)

        # Counted per route and code; no bearer token was needed; the secret never logged.
        st, text, _ = http("GET", s.gateway.url("/metrics"))
        self.assertIn('route="webhook_mtp",code="202"', text)
        self.assert_no_secret_in_logs(secret)

    def test_plain_bodies_are_produced_as_sent_and_refused_as_any_other(self):
        """What senders send — a flat object of plain strings — is the gateway's fast path (it is
        not built, webhook.c): its record carries the very bytes, its answer and its errors are
        those of any other body, character limits count characters (not bytes), and a body just
        outside that shape (an escape, a null, a name twice) is answered the same way."""
        s = self.make_stack()
        s.add_tenant("acme")
        secret = self.new_secret("acme")["secret"]
        plain = {"id": "inc-77", "org_id": "org-7", "org_name": "Caf\u00e9 \u20ac Ltd",
                 "alert_type": "disk_full", "status": "resolved", "severity": "low",
                 "title": "\u00e9" * 1000, "occurred_at": "2026-11-23T21:45:00Z",
                 "description": "d" * 65536, "link": "HTTPS://mtp.example/i/77",
                 "x_note": "kept", "subject": ""}
        # white space as a sender may lay it out (no line breaks: kcat prints one record a line)
        raw = (" {\t" + ", ".join("%s : %s" % (json.dumps(k), json.dumps(v, ensure_ascii=False))
                                  for k, v in plain.items()) + "}\t ").encode()
        st, js, _ = self.post("acme", raw, secret)
        self.assertEqual((st, js), (202, {"status": "accepted", "tenant": "acme",
                                          "incident_id": "inc-77"}))
        value = self.records()[-1][1]
        rec = json.loads(value)
        self.assertEqual(list(rec), ["schema_version", "kind", "tenant", "integration", "type",
                                     "source_id", "received_at", "received_at_ms", "payload"])
        self.assertEqual(rec["source_id"], "inc-77")
        self.assertEqual(value.encode().split(b'"payload":', 1)[1], raw + b"}")  # the very bytes
        # An id with an escape and a null subject: the same record and answer, parsed.
        esc = dict(plain, id='inc"78', subject=None)
        st, js, _ = self.post("acme", esc, secret)
        self.assertEqual((st, js["incident_id"]), (202, 'inc"78'))
        rec = json.loads(self.records()[-1][1])
        self.assertEqual((rec["source_id"], rec["payload"]), ('inc"78', esc))

        n = len(self.records())
        cases = [  # plain bodies (and a few just outside) that fail: the parsed path's own text
            (dict(plain, title="\u00e9" * 1001),
             '"title" must be a string of 1 to 1000 characters (got a string of 1001 characters)'),
            (dict(plain, status="closed"), '"status" must be one of "open", "resolved" (got "closed")'),
            (dict(plain, org_id=None), 'missing required field "org_id"'),
            (dict(plain, alert_type=""), '"alert_type" must be a string of 1 to 128 characters '
                                          '(got a string of 0 characters)'),
            (dict(plain, occurred_at="yesterday"), '"occurred_at" must be an RFC 3339 date-time '
                                                    'such as "2026-11-23T21:45:00Z" (got "yesterday")'),
            (dict(plain, link="mtp.example/i/77"),
             '"link" must start with http:// or https:// (got "mtp.example/i/77")'),
            (dict(plain, description="d" * 65537), '"description" must be a string of at most '
                                                   '65536 characters (got a string of 65537 characters)'),
            (b'{"id":"a","org_id":"b","id":"c"}',
             "malformed JSON at line 1, column 27: duplicate object key near '\"id\"'"),
        ]
        for body, error in cases:
            with self.subTest(error):
                st, js, _ = self.post("acme", body, secret)
                self.assertEqual((st, js), (400, {"error": error}))
        self.assertEqual(len(self.records()), n)

    def test_bad_deliveries_are_refused_with_the_cause_and_produce_nothing(self):
        s = self.make_stack()
        s.add_tenant("acme")
        s.add_tenant("nosecret")
        secret = self.new_secret("acme")["secret"]
        other = "whsec_" + "ab" * 32
        ends = s.topic_end_offsets("raw.events")
        self.assertEqual(len(ends), 6, ends)
        now = int(time.time())
        missing_title = dict(INCIDENT)
        del missing_title["title"]
        cases = [
            # (what, kwargs for post, status, text the error must contain)
            ("bad signature", dict(sig="v1=" + "0" * 64), 401, "signature does not match"),
            ("signature not v1=<hex>", dict(sig="sha256=" + "0" * 64), 401,
             "signature does not match"),
            ("signature too short", dict(sig="v1=abc"), 401, "signature does not match"),
            ("wrong secret", dict(secret=other), 401, "signature does not match"),
            ("timestamp too old", dict(ts=now - 1000), 401, "replay window is 300 s"),
            ("timestamp in the future", dict(ts=now + 1000), 401, "replay window is 300 s"),
            ("timestamp not an integer", dict(ts="2026-11-23T21:45:00Z"), 401,
             "X-MSPSync-Timestamp must be an integer"),
            ("no timestamp", dict(drop=["X-MSPSync-Timestamp"]), 401, "X-MSPSync-Timestamp"),
            ("no signature", dict(drop=["X-MSPSync-Signature"]), 401, "X-MSPSync-Signature"),
            ("no headers, bearer instead",
             dict(drop=["X-MSPSync-Timestamp", "X-MSPSync-Signature"],
                  headers={"Authorization": "Bearer " + s.admin_token}), 401, "missing"),
            ("malformed JSON", dict(body=b'{"id": "x",'), 400, "malformed JSON at line 1"),
            ("not an object", dict(body=[INCIDENT]), 400, "must be a JSON object"),
            ("empty body", dict(body=b""), 400, "must be a JSON object"),
            ("missing title", dict(body=missing_title), 400, '"title"'),
            ("bad status", dict(body=dict(INCIDENT, status="closed")), 400, '"status"'),
            ("empty id", dict(body=dict(INCIDENT, id="")), 400, '"id"'),
            ("negative id", dict(body=dict(INCIDENT, id=-1)), 400, '"id"'),
            ("org_id too long", dict(body=dict(INCIDENT, org_id="o" * 257)), 400, '"org_id"'),
            ("bad occurred_at", dict(body=dict(INCIDENT, occurred_at="2026-02-30T10:00:00Z")), 400,
             '"occurred_at"'),
            ("bad severity", dict(body=dict(INCIDENT, severity="urgent")), 400, '"severity"'),
            ("bad link", dict(body=dict(INCIDENT, link="ftp://x")), 400, '"link"'),
            ("title not a string", dict(body=dict(INCIDENT, title=5)), 400, '"title"'),
        ]
        for what, kw, code, text in cases:
            with self.subTest(what):
                kw = dict(kw)
                body = kw.pop("body", INCIDENT)
                st, js, hdrs = self.post("acme", body, kw.pop("secret", secret), **kw)
                self.assertEqual(st, code, (what, js))
                self.assertIn("application/json", hdrs.get("Content-Type", ""))
                self.assertIn(text, js["error"], what)

        # Oversized: above MSPSYNC_WEBHOOK_MAX_BODY (256 KiB) but below the hard cap: our JSON 413,
        # even when correctly signed.
        big = dict(INCIDENT, description="d" * 65536, x_pad="p" * 300000)
        st, js, _ = self.post("acme", big, secret)
        self.assertEqual(st, 413)
        self.assertIn("262144", js["error"])
        # Above the hard cap (MSPSYNC_MAX_BODY, 1 MiB): libevent refuses it before we run.
        st = harness.http_oversized(("127.0.0.1", s.gateway.port), "/v1/webhooks/mtp/acme", 2 << 20,
                                    {"X-MSPSync-Timestamp": str(now), "X-MSPSync-Signature": "v1=00"})
        self.assertEqual(st, 413)

        # Tenants: unknown, impossible, and one without a secret.
        st, js, _ = self.post("nobody", INCIDENT, secret)
        self.assertEqual(st, 404)
        self.assertIn('unknown tenant "nobody"', js["error"])
        st, js, _ = self.post("Bad%20Tenant", INCIDENT, secret)
        self.assertEqual(st, 404)
        self.assertIn("unknown tenant", js["error"])
        st, js, _ = self.post("nosecret", INCIDENT, secret)
        self.assertEqual(st, 404)
        self.assertIn('no MTP webhook secret configured for tenant "nosecret"', js["error"])
        self.assertIn("POST /v1/tenants/nosecret/webhooks/mtp/secret", js["error"])
        # Only POST.
        st, js, hdrs = http("GET", s.gateway.url("/v1/webhooks/mtp/acme"))
        self.assertEqual(st, 405)
        self.assertEqual(hdrs.get("Allow"), "POST")

        self.assertEqual(s.topic_end_offsets("raw.events"), ends)
        self.assertEqual(self.records(), [])
        self.assertEqual(s.redis("EXISTS", "mspsync:{acme}:ticketing:orgs"), 0)
        st, text, _ = http("GET", s.gateway.url("/metrics"))
        for code in (400, 401, 404, 405, 413):
            self.assertIn('route="webhook_mtp",code="%d"' % code, text)
        # And a good delivery still goes through afterwards.
        self.assertEqual(self.post("acme", INCIDENT, secret)[0], 202)
        self.assertEqual(len(self.records()), 1)
        self.assert_no_secret_in_logs(secret)

    def test_errors_echoing_non_ascii_input_keep_their_specific_message(self):
        """The echoed value is cut to 64 bytes on a character boundary, and bytes that are not
        UTF-8 are replaced, so the answer names the cause instead of a generic error."""
        s = self.make_stack()
        s.add_tenant("acme")
        secret = self.new_secret("acme")["secret"]

        def cut(text):  # 64 bytes of whole characters, computed independently of the gateway
            return text.encode()[:64].decode("utf-8", "ignore")
        severity = "a" + "\u00e9" * 40     # é: the 64-byte cut falls inside a 2-byte character
        link = "ftp://" + "\u20ac" * 30    # €: inside a 3-byte character
        status = "x" + "\U0001F600" * 20   # 😀: inside a 4-byte character
        cases = [
            ("severity", dict(INCIDENT, severity=severity),
             '"severity" must be one of "info", "low", "medium", "high", "critical" (got "%s")'
             % cut(severity)),
            ("link", dict(INCIDENT, link=link),
             '"link" must start with http:// or https:// (got "%s")' % cut(link)),
            ("status", dict(INCIDENT, status=status),
             '"status" must be one of "open", "resolved" (got "%s")' % cut(status)),
        ]
        for what, body, text in cases:
            with self.subTest(what):
                st, js, _ = self.post("acme", body, secret)
                self.assertEqual(st, 400, js)
                self.assertEqual(js["error"], text)
        # A body that is not UTF-8 at all: jansson's own message, the bad byte replaced.
        raw = json.dumps(dict(INCIDENT, title="Caf\u00e9"), ensure_ascii=False).encode()
        raw = raw.replace("\u00e9".encode(), b"\xe9")  # Latin-1, not UTF-8
        st, js, _ = self.post("acme", raw, secret)
        self.assertEqual(st, 400, js)
        self.assertIn("malformed JSON at line 1", js["error"])
        self.assertIn("0xe9", js["error"])
        self.assertEqual(self.records(), [])

    def test_rotation_keeps_the_old_secret_only_as_long_as_promised(self):
        s = self.make_stack()
        s.add_tenant("acme")
        path = "/v1/tenants/acme/webhooks/mtp"
        # The secret routes need the bearer token; the webhook does not.
        for method, p in (("GET", path), ("POST", path + "/secret"),
                          ("DELETE", path + "/secret/previous")):
            st, js, _ = http(method, s.gateway.url(p))
            self.assertEqual(st, 401, (method, p))
            self.assertIn("bearer", js["error"])
        st, js, _ = s.api("GET", path)
        self.assertEqual(st, 200, js)
        self.assertEqual(js["configured"], False)
        self.assertIsNone(js["created_at"])
        self.assertIsNone(js["previous_valid_until"])
        self.assertEqual(js["webhook_path"], "/v1/webhooks/mtp/acme")
        self.assertEqual(js["signature"], {
            "header": "X-MSPSync-Signature", "timestamp_header": "X-MSPSync-Timestamp",
            "scheme": 'v1=hex(hmac_sha256(secret, timestamp + "." + body))', "tolerance_s": 300})
        for bad in ({"previous_valid_seconds": -1}, {"previous_valid_seconds": 604801},
                    {"previous_valid_seconds": "60"}, {"previous_valid_secs": 60}):
            st, js, _ = s.api("POST", path + "/secret", bad)
            self.assertEqual(st, 400, bad)
            self.assertIn("previous_valid_seconds", js["error"])

        first = self.new_secret("acme")
        a = first["secret"]
        self.assertIsNone(first["previous_valid_until"])
        # Stored sealed, never in plain text.
        sealed = s.redis("HGET", "mspsync:{acme}:webhook:mtp", "current_sealed")
        self.assertTrue(sealed.startswith("v1:"), sealed)
        self.assertNotIn(a[6:], s.redis_raw("HGETALL", "mspsync:{acme}:webhook:mtp"))
        self.assertEqual(self.post("acme", dict(INCIDENT, id="a1"), a)[0], 202)

        # Rotate with the default grace period: both are accepted.
        second = self.new_secret("acme")
        b = second["secret"]
        self.assertNotEqual(a, b)
        self.assertIsNotNone(second["previous_valid_until"])
        st, js, _ = s.api("GET", path)
        self.assertTrue(js["configured"])
        self.assertEqual(js["created_at"], second["created_at"])
        self.assertEqual(js["previous_valid_until"], second["previous_valid_until"])
        self.assertEqual(self.post("acme", dict(INCIDENT, id="a2"), a)[0], 202)
        self.assertEqual(self.post("acme", dict(INCIDENT, id="b1"), b)[0], 202)

        # Revoke the previous one now: the old is refused, the new still works.
        st, _, _ = s.api("DELETE", path + "/secret/previous")
        self.assertEqual(st, 204)
        st, js, _ = self.post("acme", dict(INCIDENT, id="a3"), a)
        self.assertEqual(st, 401)
        self.assertIn("signature does not match", js["error"])
        self.assertEqual(self.post("acme", dict(INCIDENT, id="b2"), b)[0], 202)
        self.assertIsNone(s.api("GET", path)[1]["previous_valid_until"])
        self.assertEqual(s.api("DELETE", path + "/secret/previous")[0], 204)  # idempotent

        # Rotate with no grace period: the old one is refused at once.
        third = self.new_secret("acme", previous_valid_seconds=0)
        c = third["secret"]
        self.assertIsNone(third["previous_valid_until"])
        self.assertEqual(self.post("acme", dict(INCIDENT, id="b3"), b)[0], 401)
        self.assertEqual(self.post("acme", dict(INCIDENT, id="c1"), c)[0], 202)

        # A short grace period runs out by itself (5 s: room for the first post on a slow machine).
        fourth = self.new_secret("acme", previous_valid_seconds=5)
        d = fourth["secret"]
        self.assertEqual(self.post("acme", dict(INCIDENT, id="c2"), c)[0], 202)
        # Probe with a body that is refused after the signature check (400 while c is valid),
        # so that the probes store nothing.
        harness.wait_until(lambda: self.post("acme", {"id": "probe"}, c)[0] == 401, 30,
                           "the previous secret refused once its grace period is over")
        self.assertEqual(self.post("acme", dict(INCIDENT, id="c3"), c)[0], 401)
        self.assertEqual(self.post("acme", dict(INCIDENT, id="d1"), d)[0], 202)

        ids = [json.loads(v)["source_id"] for _, v in self.records()]
        self.assertEqual(ids, ["a1", "a2", "b1", "b2", "c1", "c2", "d1"])
        self.assert_no_secret_in_logs(a, b, c, d)

    def test_replay_window_and_body_limit_follow_the_settings(self):
        s = self.make_stack(MSPSYNC_WEBHOOK_TOLERANCE_S=30, MSPSYNC_WEBHOOK_MAX_BODY=4096)
        s.add_tenant("acme")
        secret = self.new_secret("acme")["secret"]
        self.assertEqual(s.api("GET", "/v1/tenants/acme/webhooks/mtp")[1]["signature"]["tolerance_s"], 30)
        st, js, _ = self.post("acme", INCIDENT, secret, ts=int(time.time()) - 60)
        self.assertEqual(st, 401)
        self.assertIn("the replay window is 30 s", js["error"])
        self.assertEqual(self.post("acme", INCIDENT, secret, ts=int(time.time()) - 20)[0], 202)
        st, js, _ = self.post("acme", dict(INCIDENT, description="d" * 5000), secret)
        self.assertEqual(st, 413)
        self.assertIn("4096", js["error"])
        self.assertEqual(len(self.records()), 1)

    def test_incident_kafka_did_not_take_is_answered_503_so_the_sender_retries(self):
        # The broker is stopped: a broker of this test's own, not the one the others share.
        s = self.make_stack(own_broker=True, MSPSYNC_KAFKA_DELIVERY_TIMEOUT_MS=3000)
        s.add_tenant("acme")
        secret = self.new_secret("acme")["secret"]
        self.assertEqual(self.post("acme", dict(INCIDENT, id="before"), secret)[0], 202)
        ends = s.topic_end_offsets("raw.events")
        s.stop_broker()
        st, js, _ = self.post("acme", dict(INCIDENT, id="during", org_id="org-down"), secret)
        self.assertEqual(st, 503, js)
        self.assertIn("could not queue the incident", js["error"])
        self.assertEqual(s.redis("HEXISTS", "mspsync:{acme}:ticketing:orgs", "org-down"), 0)
        self.start_broker()
        # The sender's retry goes through once the broker is back; the failed one was never stored.
        harness.wait_until(lambda: self.post("acme", dict(INCIDENT, id="during", org_id="org-down"),
                                             secret)[0] == 202, 120, "webhook accepted again")
        ids = [json.loads(v)["source_id"] for _, v in self.records()]
        self.assertEqual(ids[0], "before")
        self.assertEqual(ids[1:], ["during"] * (len(ids) - 1))
        self.assertEqual(sum(s.topic_end_offsets("raw.events").values()), sum(ends.values()) + len(ids) - 1)

    def start_broker(self):
        self.assertEqual(self.stack.start_broker(), self.stack.brokers,
                         "the broker came back on another port")

    def test_webhook_limit_must_stay_below_the_hard_body_cap(self):
        env = dict(os.environ, MSPSYNC_ADMIN_TOKEN="t" * 20, MSPSYNC_SECRET_KEY="00" * 32,
                   MSPSYNC_MAX_BODY="100000", MSPSYNC_WEBHOOK_MAX_BODY="100000",
                   MSPSYNC_KAFKA_BROKERS="127.0.0.1:1")
        out = subprocess.run([harness.BIN["gateway"]], env=env, capture_output=True, text=True,
                             timeout=30)
        self.assertNotEqual(out.returncode, 0)
        # logged as a config.invalid JSON line, on stdout like every log line
        self.assertIn("MSPSYNC_WEBHOOK_MAX_BODY", out.stdout)
        self.assertIn("MSPSYNC_MAX_BODY", out.stdout)


if __name__ == "__main__":
    harness.main()
