#!/usr/bin/env python3
"""
Kafka over SASL_SSL, as managed Kafka offers it: a broker of this test's own with a SASL_SSL
listener (deploy/local/kafka.sh --sasl: SCRAM-SHA-512 over TLS with a CA of its own) beside the
PLAINTEXT one the test's tools use. Every service is given the SASL_SSL listener only and learns
how to log in solely from librdkafka properties: the properties file kafka.sh writes
(MSPSYNC_KAFKA_PROPERTIES_FILE) for some, MSPSYNC_KAFKA_PROP_* variables with the password in a
file (..._SASL_PASSWORD_FILE) for the others; the gateway reads its admin token and secret key
from files (MSPSYNC_ADMIN_TOKEN_FILE, MSPSYNC_SECRET_KEY_FILE). A full Syncro sync and an
incident → ticket must work through it; a wrong password must be told (log and /readyz) within
seconds, never a silent hang; a setting Kafka or librdkafka refuses must stop the service at start
with its name.
"""
import json
import os
import subprocess
import time

import harness
import ticketing as T
from harness import BIN, Stack, StackTest, http, wait_until


class KafkaSaslTest(StackTest):
    @classmethod
    def setUpClass(cls):
        cls.kafka_dir = os.path.join(harness.WORK, "kafka-sasl-" + harness.rand_id(6))
        os.makedirs(cls.kafka_dir, exist_ok=True)
        harness.broker_start(cls.kafka_dir, sasl=True)
        cls.sasl = os.path.join(cls.kafka_dir, "sasl")
        with open(os.path.join(cls.sasl, "bootstrap")) as f:
            cls.sasl_brokers = f.read().strip()
        with open(os.path.join(cls.sasl, "password")) as f:
            cls.password = f.read().strip()

    @classmethod
    def tearDownClass(cls):
        harness.broker_stop(cls.kafka_dir, purge=True)

    def sasl_stack(self):
        """A stack whose services reach Kafka on the SASL_SSL listener only, through the
        properties file unless a service's own variables say otherwise (prop_env)."""
        self.stack = Stack(self.id().split(".")[-1], kafka_dir=self.kafka_dir,
                           service_brokers=self.sasl_brokers,
                           kafka_env={"MSPSYNC_KAFKA_PROPERTIES_FILE":
                                      os.path.join(self.sasl, "client.properties")})
        self.addCleanup(self._teardown)
        return self.stack

    def prop_env(self, password=None):
        """The same login as MSPSYNC_KAFKA_PROP_* variables, the password in a file."""
        pw_file = os.path.join(self.stack.dir, "kafka-password-%s" % harness.rand_id(4))
        with open(pw_file, "w") as f:
            f.write((password or self.password) + "\n")
        return {"MSPSYNC_KAFKA_PROPERTIES_FILE": "",
                "MSPSYNC_KAFKA_PROP_SECURITY_PROTOCOL": "SASL_SSL",
                "MSPSYNC_KAFKA_PROP_SASL_MECHANISMS": "SCRAM-SHA-512",
                "MSPSYNC_KAFKA_PROP_SASL_USERNAME": "mspsync",
                "MSPSYNC_KAFKA_PROP_SASL_PASSWORD_FILE": pw_file,
                "MSPSYNC_KAFKA_PROP_SSL_CA_LOCATION": os.path.join(self.sasl, "ca.pem")}

    def secret_files(self):
        """The gateway's admin token and secret key as files (MSPSYNC_*_FILE), as Compose and
        Kubernetes mount secrets."""
        env = {}
        for name, value in (("ADMIN_TOKEN", self.stack.admin_token),
                            ("SECRET_KEY", self.stack.secret_key)):
            path = os.path.join(self.stack.dir, name.lower())
            with open(path, "w") as f:
                f.write(value + "\n")
            env.update({"MSPSYNC_" + name: "", "MSPSYNC_%s_FILE" % name: path})
        return env

    def test_sync_and_incident_to_ticket_over_sasl_ssl_only(self):
        s = self.sasl_stack()
        s.start_all(sim_config={"rate_limit": 0}, fetcher_env=self.prop_env(),
                    gateway_env=self.secret_files())
        secret = T.setup(s, orgs=2, customers=12, tc_env=self.prop_env())
        # the Syncro sync went gateway → fetcher → normalizer over SASL_SSL
        self.assertEqual(len(s.inventory(T.TENANT, "customers")), 12)
        wait_until(lambda: len(s.inventory(T.TENANT, "assets")) == 5, 60, "assets synced")
        inc = {"id": "inc-sasl-1", "org_id": "org-0001", "org_name": "Org One",
               "alert_type": "device_offline", "severity": "high", "status": "open",
               "subject": "WS-01", "title": "Disk full", "occurred_at": "2026-12-06T10:00:00.000Z"}
        st, js, _ = T.post_incident(s, secret, inc)
        self.assertEqual(st, 202, js)
        tickets = wait_until(lambda: T.sim_tickets(s), 60, "a ticket for the incident")
        self.assertEqual(len(tickets), 1)
        self.assertIn("Disk full", tickets[0]["subject"])
        for svc in s.services:
            self.assertNotIn(self.password, svc.logtext(), "%s logged the password" % svc.name)

    def test_wrong_password_is_reported_in_the_log_and_readyz(self):
        s = self.sasl_stack()
        s.start_redis()
        started = time.time()
        f = s.start_fetcher(**self.prop_env(password="not-the-password"))
        log = wait_until(lambda: "kafka.auth_failed" in f.logtext() and f.logtext(), 30,
                         "kafka.auth_failed in the fetcher's log")
        self.assertIn("SASL authentication error", log)
        st, js, _ = http("GET", f.url("/readyz"))
        self.assertEqual((st, js.get("reason")), (503, "kafka authentication failed"))
        self.assertLess(time.time() - started, 30)
        self.assertNotIn("not-the-password", log)
        self.assertIsNone(f.proc.poll(), "keeps retrying: the user may be created later")

    def test_settings_kafka_refuses_stop_the_service_at_start(self):
        s = self.sasl_stack()
        s.start_redis()
        cases = [
            ({"MSPSYNC_TOPIC_PREFIX": "bad prefix/"},
             "MSPSYNC_TOPIC_PREFIX: character 4 (' ') is not allowed in a Kafka topic name"),
            ({"MSPSYNC_KAFKA_PROP_SASL_MECHANISM_TYPO": "PLAIN"},
             'MSPSYNC_KAFKA_PROP_SASL_MECHANISM_TYPO: unknown librdkafka property '
             '"sasl.mechanism.typo"'),
            ({"MSPSYNC_KAFKA_PROP_SSL_CA_LOCATION": "/nonexistent/ca.pem"},
             "no Kafka client can be made with these properties: ssl.ca.location failed"),
            ({"MSPSYNC_KAFKA_TOPIC_REPLICATION": "2", "MSPSYNC_KAFKA_TOPIC_MIN_INSYNC": "3"},
             "MSPSYNC_KAFKA_TOPIC_MIN_INSYNC (3) must not exceed MSPSYNC_KAFKA_TOPIC_REPLICATION"),
        ]
        for extra, want in cases:
            for name in ("fetcher", "normalizer"):
                env = s.base_env()
                env.update({"MSPSYNC_METRICS_PORT": "0"})
                env.update(extra)
                out = subprocess.run([BIN[name]], env=env, capture_output=True, text=True,
                                     timeout=30)
                self.assertEqual(out.returncode, 2, (name, extra, out.stdout[-1500:]))
                errors = [l["msg"] for l in map(json.loads, out.stdout.splitlines())
                          if l["event"] == "config.invalid"]
                self.assertTrue(any(want in e for e in errors), (name, extra, errors))
                self.assertNotIn(self.password, out.stdout + out.stderr)


if __name__ == "__main__":
    harness.main()
