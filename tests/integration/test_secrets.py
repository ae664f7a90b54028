#!/usr/bin/env python3
"""Secrets stay out of logs and answers, and log redaction hides only what is kept.

- A Redis address with a password, broken in any of the usual ways (or simply refused), never
  shows that password: not in the gateway's log, not in /readyz, not in the webhook's 503 (both
  unauthenticated: they carry a fixed phrase only), not in an admin answer.
- An API key Syncro refused was never stored and may be an ordinary word ("queued"): later log
  lines keep that word. A stored key is redacted; once the integration is removed it is not.
"""
import os

import harness
from harness import BIN, Service, StackTest, Stack, http, wait_until

PASSWORD = "s3cretpw"


class SecretsTest(StackTest):

    def _gateway(self, s, name, redis_url):
        """A gateway on Redis address redis_url (it never becomes ready: no readiness wait)."""
        pf = os.path.join(s.dir, name + ".port")
        env = s.base_env()
        env.update({"MSPSYNC_HTTP_PORT": "0", "MSPSYNC_PORT_FILE": pf,
                    "MSPSYNC_ADMIN_TOKEN": s.admin_token, "MSPSYNC_REDIS_URL": redis_url})
        gw = Service(name, [BIN["gateway"]], env, s.dir, pf).start()
        s.services.append(gw)
        return gw

    def test_redis_password_is_never_shown_even_in_a_broken_address(self):
        s = Stack(self.id().split(".")[-1])
        self.stack = s
        self.addCleanup(self._teardown)
        s.start_redis()  # no password: a well-formed address with one is refused (AUTH)
        addresses = [
            "redis://:%s@127.0.0.1:notaport" % PASSWORD,
            "rediss://:%s@127.0.0.1:%d" % (PASSWORD, s.redis_port),
            "redis://:%s/x@127.0.0.1:%d" % (PASSWORD, s.redis_port),
            "redis://app:%s@127.0.0.1:%d/db" % (PASSWORD, s.redis_port),
            "redis://:%s" % PASSWORD,
            "redis://:%s@[::1" % PASSWORD,
            "redis://:%s@127.0.0.1:%d/0" % (PASSWORD, s.redis_port),  # well-formed, refused
        ]
        for i, url in enumerate(addresses):
            with self.subTest(url=url.replace(PASSWORD, "<password>")):
                gw = self._gateway(s, "gateway%d" % i, url)
                # /readyz (unauthenticated): a fixed phrase only. A loaded machine may still be
                # creating the topics ("waiting for kafka", also fixed); Redis is checked after.
                def past_kafka_wait():
                    st, js, _ = http("GET", gw.url("/readyz"))
                    return None if js == {"status": "not ready", "reason": "waiting for kafka"} \
                        else (st, js)
                st, js = wait_until(past_kafka_wait, 120, "the gateway past its Kafka wait")
                self.assertEqual(st, 503, js)
                self.assertEqual(js, {"status": "not ready", "reason": "redis unavailable"})
                self.assertEqual(http("GET", gw.url("/healthz"))[1], {"status": "ok"})
                # the webhook (unauthenticated until its signature is checked): a fixed phrase
                st, js, _ = http("POST", gw.url("/v1/webhooks/mtp/acme"), {"id": "i-1"},
                                 {"X-MSPSync-Timestamp": "1", "X-MSPSync-Signature": "v1=00"})
                self.assertEqual(st, 503, js)
                self.assertEqual(js, {"error": "redis unavailable"})
                # an admin answer may say more, but not the password
                st, js, _ = http("GET", gw.url("/v1/tenants"),
                                 headers={"Authorization": "Bearer " + s.admin_token})
                self.assertEqual(st, 503, js)
                self.assertNotIn(PASSWORD, str(js))
                self.assertEqual(gw.stop(), 0)
                log = gw.logtext()
                # the problem is logged ...
                self.assertIn("redis", log.lower())
                # ... without the password (the admin token is redacted as before)
                self.assertNotIn(PASSWORD, log)
                self.assertNotIn(s.admin_token, log)

    def test_only_a_stored_key_is_redacted_and_only_while_stored(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        s.add_tenant("acme")
        s.add_tenant("beta")
        s.add_account("acme-msp", customers=1, assets=2, token="acme-key-123456")
        # Syncro refuses the key "queued": nothing is stored, so nothing is registered.
        st, js, _ = s.connect("acme", "acme-msp", "queued")
        self.assertEqual(st, 422, js)
        self.assertEqual(js.get("vendor_status"), 401, js)
        mark = len(s.gateway.logtext())
        st, js, _ = s.connect("acme", "acme-msp", "acme-key-123456")
        self.assertEqual(st, 201, js)
        acme_job = js["job_id"]
        line = wait_until(lambda: job_line(s, mark, acme_job), 30, "job.queued line of acme")
        self.assertIn("queued", line)  # "syncro job … queued (integration_saved)"
        self.assertNotIn("[REDACTED]", line)

        # A stored key is redacted from every later line: this one is the word the job line ends
        # with, so that line shows it redacted.
        s.add_account("beta-msp", customers=1, assets=2, token="integration_saved")
        mark = len(s.gateway.logtext())
        st, js, _ = s.connect("beta", "beta-msp", "integration_saved")
        self.assertEqual(st, 201, js)
        line = wait_until(lambda: job_line(s, mark, js["job_id"]), 30, "job.queued line of beta")
        self.assertIn("[REDACTED]", line)
        self.assertNotIn("integration_saved", line)

        # Removed: forgotten. The next job line shows the word again.
        st, js, _ = s.api("DELETE", "/v1/tenants/beta/integrations/syncro")
        self.assertIn(st, (202, 204), js)
        mark = len(s.gateway.logtext())
        st, js, _ = s.connect("acme", "acme-msp", "acme-key-123456")
        self.assertIn(st, (200, 201), js)
        line = wait_until(lambda: job_line(s, mark, js["job_id"]), 30, "job.queued line after delete")
        self.assertIn("integration_saved", line)
        self.assertNotIn("[REDACTED]", line)
        # The key Syncro accepted never reached the log in clear.
        self.assertNotIn("acme-key-123456", s.gateway.logtext())


def job_line(s, mark, job_id):
    """The gateway's job.queued log line of job_id written after offset mark, or None."""
    for line in s.gateway.logtext()[mark:].splitlines():
        if '"event":"job.queued"' in line and job_id in line:
            return line
    return None


if __name__ == "__main__":
    harness.main()
