"""
test_lifecycle.py — start-up and stop of every long-running service, and what they log.

A container runs the service as PID 1: a SIGTERM it does not handle is ignored and the runtime
SIGKILLs it after the stop timeout. These tests hold every service to the contract of
docs/design.md ("Start-up and stop"):

  * with Kafka unreachable, the service stays alive (/healthz 200), says it is not ready
    (/readyz 503, "waiting for Kafka"), and a SIGTERM ends it with exit code 0 within 2 s;
  * a SIGTERM at any moment around start-up (random 0-3 s, real broker: joining the group,
    first assignment, steady state) ends every consumer service with 0 within 2 s. Two
    processes of each service cycle side by side in one group, so that members join while
    another is between JoinGroup and its first assignment (a SyncGroup that fails and a rejoin):
    on librdkafka < 2.3 a cooperative-sticky consumer destroyed there aborted
    (rd_kafka_sticky_assignor_state_destroy: Assertion `assignor_state' failed, librdkafka
    issue 4312; about one cycle in 40 with three normalizers in one group, ASan build);
  * every line on stdout is a JSON object, librdkafka's own lines included (event kafka.log),
    and nothing unformatted reaches stderr.

The processes are started here rather than through Stack so that stdout and stderr are captured
apart. Delays are random by design; every other wait is on a condition.
"""
import concurrent.futures
import json
import os
import random
import signal
import subprocess
import time
import unittest

import harness

from harness import (BIN, BUILD, KAFKA_DIR, SANITIZER_MARKS, WORK, free_port, http, rand_id,
                     wait_port_file, wait_until)

BIN.setdefault("write-back", os.path.join(BUILD, "services/write-back/mspsync-write-back"))

SERVICES = ("gateway", "fetcher", "normalizer", "ticket-creator", "write-back")
CONSUMERS = ("fetcher", "normalizer", "ticket-creator", "write-back")
STOP_LIMIT_S = 2.0
CYCLES = 50
LANES = 2          # processes of one service running side by side in its group
HANDLER_WAIT_S = 5


def handles_sigterm(pid):
    """True once the process has a SIGTERM handler (SigCgt in /proc): before that no program can
    react to the signal (exec, the dynamic loader), so the random delays count from there."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return (int(line.split()[1], 16) >> (signal.SIGTERM - 1)) & 1 == 1
    except FileNotFoundError:
        pass
    return False


def sigterm_timed(proc):
    """SIGTERM; returns (exit code, seconds to exit), or (None, seconds) when it was still running
    STOP_LIMIT_S + 3 s later (then SIGKILLed)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(STOP_LIMIT_S + 3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, time.monotonic() - t0
    return rc, time.monotonic() - t0


class Proc:
    """One service process with stdout and stderr in separate files."""

    def __init__(self, name, env, workdir, tag):
        self.name = name
        self.out_path = os.path.join(workdir, "%s-%s.stdout" % (name, tag))
        self.err_path = os.path.join(workdir, "%s-%s.stderr" % (name, tag))
        self.port_file = os.path.join(workdir, "%s-%s.port" % (name, tag))
        env = dict(env)
        env["MSPSYNC_PORT_FILE"] = self.port_file
        if name == "gateway":
            env["MSPSYNC_HTTP_PORT"] = "0"
        else:
            env["MSPSYNC_METRICS_PORT"] = "0"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([BIN[name]], env=env, stdout=out, stderr=err)
        self.started = time.monotonic()
        self.port = None

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def json_lines(self):
        return [json.loads(l) for l in self.stdout().splitlines() if l.strip()]

    def sigterm(self):
        return sigterm_timed(self.proc)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def problems(self):
        """Sanitizer reports, aborts and unformatted lines, from both streams."""
        found = []
        text = self.stdout() + self.stderr()
        for mark in SANITIZER_MARKS + ("Assertion", "*** "):
            if mark in text:
                found.append("%s: %r in its output" % (self.name, mark))
        for line in self.stdout().splitlines():
            if not line.strip():
                continue
            try:
                if not isinstance(json.loads(line), dict):
                    raise ValueError
            except ValueError:
                found.append("%s: stdout line is not a JSON object: %r" % (self.name, line[:200]))
        return found


class LifecycleTest(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.join(WORK, "lifecycle-%s-%s" % (self.id().split(".")[-1], rand_id(6)))
        os.makedirs(self.dir, exist_ok=True)
        self.procs = []
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self._cleanup)
        with open(os.path.join(KAFKA_DIR, "bootstrap")) as f:
            self.brokers = f.read().strip()
        self.prefix = "t%s." % rand_id(8)

    def _cleanup(self):
        for p in self.procs:
            p.kill()
        self.redis.terminate()
        self.redis.wait(10)

    def env(self, brokers):
        env = dict(os.environ)
        env.update({
            "MSPSYNC_KAFKA_BROKERS": brokers,
            "MSPSYNC_REDIS_URL": "127.0.0.1:%d" % self.redis_port,
            "MSPSYNC_TOPIC_PREFIX": self.prefix,
            "MSPSYNC_SECRET_KEY": os.urandom(32).hex(),
            "MSPSYNC_ADMIN_TOKEN": "adm-" + rand_id(24),
            "MSPSYNC_LOG_LEVEL": "info",
            "MSPSYNC_SCHEDULE": "0",
        })
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
        return env

    def start(self, name, env, tag):
        p = Proc(name, env, self.dir, tag)
        self.procs.append(p)
        return p

    def start_unreachable(self):
        """Every service with the bootstrap server on a closed loopback port."""
        env = self.env("127.0.0.1:%d" % free_port())
        return [self.start(name, env, "unreachable") for name in SERVICES]

    def kafka_logged(self, p):
        return any(l.get("event") == "kafka.log" for l in p.json_lines())

    # -------------------------------------------------------------------------------------------
    def test_kafka_gone_after_start_every_service_still_stops_within_2s(self):
        """The broker goes away while everything runs, with a webhook held for its ack: the stop
        must not wait out a producer flush or a consumer close (each 10-30 s)."""
        import threading
        import cwrmm
        import ticketing
        stack = harness.Stack("lifecycle-kafka-gone-" + rand_id(4), own_broker=True)
        self.addCleanup(stack.stop_all)
        stack.start_all()
        stack.start_ticket_creator()
        cwrmm.start_write_back(stack)
        stack.add_tenant(ticketing.TENANT)
        st, body, _ = stack.api("POST", "/v1/tenants/%s/webhooks/mtp/secret" % ticketing.TENANT, {})
        self.assertEqual(st, 201, body)
        # every consumer holds its assignment: the close would have a group to leave
        ours = [svc for svc in stack.services if not svc.name.endswith("-sim")]
        for svc in ours:
            wait_until(lambda: harness.http("GET", svc.url("/readyz"), timeout=5)[0] == 200, 180,
                       "%s ready" % svc.name)
        stack.stop_broker()
        incident = {"id": 4711, "org_id": "org-7", "org_name": "Contoso Ltd",
                    "alert_type": "device_offline", "status": "open", "severity": "high",
                    "title": "WS-01 offline", "subject": "WS-01", "description": "held",
                    "link": "https://mtp.example/incidents/4711",
                    "occurred_at": "2026-11-23T21:45:00Z"}
        answered = []

        def hold():
            try:  # held until Kafka acknowledges: the stop answers it (503) or cuts it
                answered.append(ticketing.post_incident(stack, body["secret"], incident)[0])
            except OSError as e:
                answered.append(repr(e))
        held = threading.Thread(target=hold, daemon=True)
        held.start()
        held.join(1.0)
        self.assertEqual(answered, [], "the incident must be held, waiting for the broker")
        slow = {}
        for svc in reversed(ours):
            rc, took = sigterm_timed(svc.proc)
            if rc != 0 or took > STOP_LIMIT_S:
                slow[svc.name] = (rc, round(took, 2))
        self.assertEqual(slow, {}, "services that did not exit 0 within %s s of SIGTERM with the "
                         "broker gone: {name: (exit code, seconds)}" % STOP_LIMIT_S)

    # -------------------------------------------------------------------------------------------
    def test_kafka_unreachable_service_is_alive_not_ready_and_stops_on_sigterm_within_2s(self):
        procs = self.start_unreachable()
        for p in procs:
            try:
                p.port = wait_port_file(p.port_file, p.proc, timeout=15)
            except Exception as e:
                self.fail("%s opened no ops port while Kafka was unreachable: %s" % (p.name, e))
        for p in procs:
            wait_until(lambda: http("GET", p.url("/healthz"), timeout=5)[0] == 200, 10,
                       "%s /healthz 200 while waiting for Kafka" % p.name)
            st, body, _ = http("GET", p.url("/readyz"), timeout=5)
            self.assertEqual(st, 503, "%s /readyz while waiting for Kafka" % p.name)
            self.assertEqual(body.get("status"), "not ready", body)
            # /readyz answers anyone: a fixed phrase, never the configured address
            self.assertEqual(body.get("reason"), "waiting for kafka", body)
        # SIGTERM one second into the wait, as `docker stop` during a Kafka outage would.
        for p in procs:
            wait_until(lambda: time.monotonic() - p.started >= 1.0, 5, "1 s of waiting", 0.05)
            self.assertIsNone(p.proc.poll(), "%s gave up waiting for Kafka" % p.name)
        timings = {}
        for p in procs:
            rc, took = p.sigterm()
            timings[p.name] = round(took, 3)
            self.assertEqual(rc, 0, "%s exit code after SIGTERM (%.2f s)" % (p.name, took))
            self.assertLess(took, STOP_LIMIT_S, "%s took %.2f s to stop" % (p.name, took))
        print("\n  exit after SIGTERM with Kafka unreachable (s):", timings)
        for p in procs:
            self.assertEqual(p.problems(), [])

    def test_sigterm_at_random_moments_around_startup_exits_0_every_time(self):
        env = self.env(self.brokers)
        rng = random.Random()
        plan = [(i, CONSUMERS[i % len(CONSUMERS)], rng.uniform(0, 3)) for i in range(CYCLES)]

        def cycle(item):
            i, name, delay = item
            e = dict(env)
            e["MSPSYNC_GROUP"] = self.prefix + name
            p = Proc(name, e, self.dir, "cycle%02d" % i)
            self.procs.append(p)
            # The moment counts from the start; one before the handler exists (exec, the loader:
            # no program can react there) moves to the moment it does.
            wait_until(lambda: handles_sigterm(p.proc.pid) or p.proc.poll() is not None,
                       HANDLER_WAIT_S, "%s installs its SIGTERM handler" % name, 0.005)
            time.sleep(max(0.0, p.started + delay - time.monotonic()))   # the random moment
            rc, took = p.sigterm()
            return name, delay, rc, took, p.problems()

        def lane(items):
            out = []
            for it in items:
                try:
                    out.append(cycle(it))
                except AssertionError as e:
                    out.append((it[1], it[2], None, 0.0, [str(e)]))
            return out

        results = []
        lanes = [[it for j, it in enumerate(p for p in plan if p[1] == n) if j % LANES == k]
                 for n in CONSUMERS for k in range(LANES)]
        with concurrent.futures.ThreadPoolExecutor(len(lanes)) as pool:
            for f in [pool.submit(lane, items) for items in lanes]:
                results.extend(f.result())

        bad = ["%s after %.2f s: exit %s in %.2f s %s" % (n, d, rc, t, pr)
               for n, d, rc, t, pr in results
               if rc != 0 or t >= STOP_LIMIT_S or pr]
        slowest = sorted(results, key=lambda r: -r[3])[:3]
        print("\n  %d cycles, %d clean; slowest exits: %s" %
              (len(results), len(results) - len(bad),
               ", ".join("%s %.3f s (SIGTERM at %.2f s)" % (n, t, d) for n, d, _, t, _ in slowest)))
        self.assertEqual(len(results), CYCLES)
        self.assertFalse(bad, "\n" + "\n".join(bad))

    def test_stdout_is_json_lines_with_librdkafka_relayed(self):
        procs = self.start_unreachable()
        for p in procs:
            # An unreachable bootstrap server makes librdkafka log connection failures.
            wait_until(lambda: self.kafka_logged(p) or p.proc.poll() is not None, 15,
                       "%s relays a librdkafka log line as JSON on stdout" % p.name)
        for p in procs:
            rc, _ = p.sigterm()
            self.assertEqual(rc, 0, p.name)
        for p in procs:
            self.assertEqual(p.problems(), [])
            lines = p.json_lines()
            kafka = [l for l in lines if l.get("event") == "kafka.log"]
            self.assertTrue(kafka, "%s: no kafka.log line on stdout" % p.name)
            for l in lines:
                for key in ("ts", "level", "service", "msg"):
                    self.assertIn(key, l, "%s: %r" % (p.name, l))
                self.assertEqual(l["service"], p.name)
            # the facility (e.g. FAIL, CONNECT) is in the message, librdkafka's "%3|" form is not
            self.assertTrue(any("FAIL" in l["msg"] or "ERROR" in l["msg"] for l in kafka), kafka)
            self.assertFalse(any(l["msg"].startswith("%") for l in kafka), kafka)
            err = p.stderr()
            self.assertEqual(err.strip(), "", "%s wrote to stderr: %r" % (p.name, err[:300]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
