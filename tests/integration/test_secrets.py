#!/usr/bin/env python3
"""Secrets stay out of logs and answers, and log redaction hides only what is kept.

- An API key Syncro refused was never stored and may be an ordinary word ("queued"): later log
  lines keep that word. A stored key is redacted; once the integration is removed it is not.
"""
import harness
from harness import StackTest, wait_until


class SecretsTest(StackTest):

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
