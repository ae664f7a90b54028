#!/usr/bin/env python3
"""HTTP edge cases at the gateway's door, sent as raw bytes: an oversized or overfull header
section is refused with 431 before auth; a query flag without '=' no longer drops the other
parameters; conflicting Content-Length fields are refused and produce nothing; TRACE and unknown
methods get JSON errors like every other refusal (never libevent's HTML page)."""
import hashlib
import hmac
import json
import socket
import threading
import time
import unittest

import harness
from harness import Stack


def raw_request(port, data, timeout=60, attempts=3):
    """Send `data` on a fresh connection while reading the answer, and return
    (status, headers with lower-case names, body bytes).

    The server may answer and close before it has read everything (an 8 MB header section is
    refused after 16 KiB): the send runs in a thread and may fail, and the answer read before the
    close counts. Should the connection be reset before any answer arrived (a loaded machine),
    the request is tried again."""
    last = None
    for _ in range(attempts):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

        def send():
            try:
                sock.sendall(data)
            except OSError:
                pass  # refused early: the answer is already on its way

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        got = b""
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                b = sock.recv(65536)
                if not b:
                    break
                got += b
                if complete(got):
                    break
        except OSError as e:
            last = e
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        sender.join(timeout)
        if complete(got):
            return parse(got)
    raise AssertionError("no complete answer after %d attempts (last error: %r)" % (attempts, last))


def complete(got):
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    n = parse_headers(head).get("content-length")
    return n is not None and len(body) >= int(n)


def parse_headers(head):
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return hdrs


def parse(got):
    head, _, body = got.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n", 1)[0].split()[1])
    hdrs = parse_headers(head)
    return status, hdrs, body[: int(hdrs["content-length"])]


INCIDENT = {"org_id": "org-7", "org_name": "Contoso Ltd", "alert_type": "device_offline",
            "status": "open", "severity": "high", "title": "WS-01 offline", "subject": "WS-01",
            "occurred_at": "2026-11-23T21:45:00Z"}


def sign(secret, ts, body):
    mac = hmac.new(secret.encode(), str(ts).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


class HttpEdgesTest(unittest.TestCase):
    """Redis and the gateway only, one stack for the class (every test leaves it as it was)."""

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack("http_edges")
        try:
            cls.stack.start_redis()
            cls.stack.start_gateway()
        except BaseException:
            cls.stack.stop_all()
            raise
        cls.port = cls.stack.gateway.port
        cls.auth = "Authorization: Bearer %s\r\n" % cls.stack.admin_token

    @classmethod
    def tearDownClass(cls):
        problems = cls.stack.stop_all()
        if problems:
            raise AssertionError("unclean shutdown: " + "; ".join(problems))

    def send(self, data):
        return raw_request(self.port, data if isinstance(data, bytes) else data.encode())

    def assert_json_error(self, answer, status, *words):
        st, hdrs, body = answer
        self.assertEqual(st, status, body[:300])
        self.assertEqual(hdrs.get("content-type"), "application/json", hdrs)
        err = json.loads(body)["error"]
        for w in words:
            self.assertIn(w, err)
        return hdrs

    def assert_still_serving(self):
        self.assertEqual(self.stack.api("GET", "/v1/tenants")[0], 200)

    # ------------------------------------------------------------------ header section
    def test_oversized_or_overfull_header_section_is_refused_with_431_before_auth(self):
        # One 8 MB header field: refused once 16 KiB have arrived, without a bearer token.
        big = "GET /v1/tenants HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * (8 << 20) + "\r\n\r\n"
        self.assert_json_error(self.send(big), 431, "16384 bytes")
        # 100,000 small fields: the byte limit trips long before the last one is read.
        many = ("GET /v1/tenants HTTP/1.1\r\nHost: x\r\n" +
                "".join("X-F%d: v\r\n" % i for i in range(100000)) + "\r\n")
        self.assert_json_error(self.send(many), 431)
        # 150 fields in under 2 KiB, with a valid token: the count limit (100).
        few = ("GET /v1/tenants HTTP/1.1\r\nHost: x\r\n" + self.auth +
               "".join("X-%d: v\r\n" % i for i in range(150)) + "\r\n")
        self.assert_json_error(self.send(few), 431, "header fields")
        # A request line over the limit is refused the same way.
        self.assert_json_error(self.send("GET /v1/tenants?x=" + "a" * 20000 + " HTTP/1.1\r\n\r\n"),
                               431)
        # 100 fields (Host, Authorization, 97 more, Connection) are fine.
        ok = ("GET /v1/tenants HTTP/1.1\r\nHost: x\r\n" + self.auth +
              "".join("X-%d: v\r\n" % i for i in range(97)) + "Connection: close\r\n\r\n")
        self.assertEqual(self.send(ok)[0], 200)
        self.assert_still_serving()

    def test_oversized_body_is_refused_with_413_in_json(self):
        body = b"x" * (2 << 20)
        head = ("POST /v1/tenants HTTP/1.1\r\nHost: x\r\n" + self.auth +
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        self.assert_json_error(self.send(head.encode() + body), 413, "1048576 bytes")
        self.assert_still_serving()

    # ------------------------------------------------------------------ query strings
    def seed_assets(self, tenant):
        """Four assets straight into the normalizer's Redis layout: two live and one gone of
        syncro:1, one of syncro:2."""
        st, js, _ = self.stack.api("POST", "/v1/tenants", {"id": tenant, "name": tenant})
        self.assertEqual(st, 201, js)
        assets = [("syncro:a1", "syncro:1", False), ("syncro:a2", "syncro:1", False),
                  ("syncro:a3", "syncro:1", True), ("syncro:b1", "syncro:2", False)]
        for aid, cust, gone in assets:
            rec = {"id": aid, "customer_ref": cust, "gone": gone, "serial": "S-" + aid,
                   "asset_type": "Laptop"}
            self.stack.redis_raw("SET", "mspsync:{%s}:inv:asset:%s" % (tenant, aid), json.dumps(rec))
            self.stack.redis_raw("ZADD", "mspsync:{%s}:inv:assets" % tenant, "0", aid)

    def ids(self, tenant, query):
        st, js, _ = self.stack.api("GET", "/v1/tenants/%s/assets?%s" % (tenant, query))
        self.assertEqual(st, 200, (query, js))
        return sorted(a["id"] for a in js["assets"])

    def test_query_flag_without_value_keeps_the_other_parameters(self):
        self.seed_assets("qflags")
        self.assertEqual(self.ids("qflags", "customer=syncro:1"), ["syncro:a1", "syncro:a2"])
        # A bare flag is the flag set, and the customer filter still applies (it used to be
        # dropped with every other parameter: all four assets came back).
        want = ["syncro:a1", "syncro:a2", "syncro:a3"]
        self.assertEqual(self.ids("qflags", "customer=syncro:1&include_gone"), want)
        self.assertEqual(self.ids("qflags", "include_gone&customer=syncro%3A1"), want)
        self.assertEqual(self.ids("qflags", "customer=syncro:1&include_gone=0&"), want[:2])
        self.assertEqual(self.ids("qflags", "customer=syncro:2&&unknown_flag"), ["syncro:b1"])
        # A bad value next to a flag is refused, not ignored.
        st, js, _ = self.stack.api("GET", "/v1/tenants/qflags/assets?page=abc&x")
        self.assertEqual(st, 400, js)
        self.assertIn('"page"', js["error"])
        st, js, _ = self.stack.api("GET", "/v1/tenants/qflags/assets?per_page=0&include_gone")
        self.assertEqual(st, 400, js)
        # Invalid percent-encoding is refused, naming the component.
        for bad in ("customer=%zz", "customer=syncro%3", "customer=a%00b", "x%G1=1&customer=y"):
            st, js, _ = self.stack.api("GET", "/v1/tenants/qflags/assets?" + bad)
            self.assertEqual(st, 400, (bad, js))
            self.assertIn("percent-encoding", js["error"])
        st, js, _ = self.stack.api("GET", "/v1/tenants/qflags/customers?page=1&per_page=%")
        self.assertEqual(st, 400, js)

    # ------------------------------------------------------------------ body framing
    def test_conflicting_content_length_is_400_and_produces_nothing(self):
        tenant = "clen"
        st, js, _ = self.stack.api("POST", "/v1/tenants", {"id": tenant, "name": tenant})
        self.assertEqual(st, 201, js)
        st, js, _ = self.stack.api("POST", "/v1/tenants/%s/webhooks/mtp/secret" % tenant)
        self.assertEqual(st, 201, js)
        secret = js["secret"]

        def webhook(incident_id, framing):
            body = json.dumps(dict(INCIDENT, id=incident_id)).encode()
            ts = str(int(time.time()))
            head = ("POST /v1/webhooks/mtp/%s HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/json\r\nX-MSPSync-Timestamp: %s\r\n"
                    "X-MSPSync-Signature: %s\r\n" % (tenant, ts, sign(secret, ts, body)))
            head += framing(len(body)) + "\r\n"
            return self.send(head.encode() + body)

        # Two different lengths: libevent reads the body by the first; which one is meant is
        # ambiguous (request smuggling), so nothing is accepted.
        hdrs = self.assert_json_error(
            webhook("smuggle-1", lambda n: "Content-Length: %d\r\nContent-Length: %d\r\n" % (n, n + 40)),
            400, "Content-Length")
        self.assertEqual(hdrs.get("connection"), "close")
        hdrs = self.assert_json_error(
            webhook("smuggle-2", lambda n: "Content-Length: %d\r\nContent-Length: 0\r\n" % n), 400)
        # Content-Length with Transfer-Encoding: refused too (libevent's own refusal, in JSON).
        self.assert_json_error(
            webhook("smuggle-3", lambda n: "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % n),
            400)
        # The same delivery with one Content-Length (repeating the same value is harmless) is
        # accepted: so the refusals above were about the framing alone.
        st, _, body = webhook("fine-1", lambda n: "Content-Length: %d\r\nContent-Length: %d\r\n" % (n, n))
        self.assertEqual(st, 202, body)
        recs = [json.loads(l.split("\t", 1)[1]) for l in self.stack.kcat("raw.events")]
        self.assertEqual([r["source_id"] for r in recs], ["fine-1"])

    # ------------------------------------------------------------------ methods
    def test_trace_and_unknown_methods_get_json_errors(self):
        # A method HTTP knows, on a route that does not take it: 405 with Allow.
        st, hdrs, body = self.send("TRACE /v1/tenants HTTP/1.1\r\nHost: x\r\n" + self.auth +
                                   "Connection: close\r\n\r\n")
        self.assert_json_error((st, hdrs, body), 405, "GET, POST")
        self.assertEqual(hdrs.get("allow"), "GET, POST")
        # Without the token the answer says no more than 401 (as for every /v1 route).
        self.assert_json_error(self.send("TRACE /v1/tenants HTTP/1.1\r\nHost: x\r\n\r\n"), 401)
        # A method token nobody defines: 501, in JSON.
        self.assert_json_error(self.send("FOO /v1/tenants HTTP/1.1\r\nHost: x\r\n" + self.auth +
                                         "\r\n"), 501, "method")
        # A request line that is not HTTP at all: 400, in JSON.
        self.assert_json_error(self.send("GET\r\n\r\n"), 400)
        self.assert_still_serving()


if __name__ == "__main__":
    harness.main()
