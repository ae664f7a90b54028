"""
harness.py — integration-test harness: real Kafka, real Redis, the Syncro simulator over HTTP,
and the mspsync services as separate processes.

Each test gets its own redis-server (fast to start), its own Kafka topic prefix on the broker the
CTest fixture started (deploy/local/kafka.sh), its own simulator and services with logs under the
test's work directory. Nothing here mocks our own infrastructure.

Environment (set by tests/integration/CMakeLists.txt):
  MSPSYNC_BUILD_DIR       the build tree (binaries)
  MSPSYNC_SOURCE_DIR      the source tree
  MSPSYNC_TEST_KAFKA_DIR  state dir of the broker started by the fixture (holds 'bootstrap')
  MSPSYNC_TEST_WORK       where tests put logs and state
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import zlib

BUILD = os.environ.get("MSPSYNC_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE = os.environ.get("MSPSYNC_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
KAFKA_DIR = os.environ.get("MSPSYNC_TEST_KAFKA_DIR", os.path.join(SOURCE, ".local/run/kafka"))
WORK = os.environ.get("MSPSYNC_TEST_WORK", os.path.join(BUILD, "test-work"))
KAFKA_SH = os.path.join(SOURCE, "deploy/local/kafka.sh")

BIN = {
    "gateway": os.path.join(BUILD, "services/gateway/mspsync-gateway"),
    "fetcher": os.path.join(BUILD, "services/fetcher/mspsync-fetcher"),
    "normalizer": os.path.join(BUILD, "services/normalizer/mspsync-normalizer"),
    "syncro-sim": os.path.join(BUILD, "tests/simulators/syncro-sim"),
    "dlq": os.path.join(BUILD, "services/dlq/mspsync-dlq"),
    "ticket-creator": os.path.join(BUILD, "services/ticket-creator/mspsync-ticket-creator"),
    "mtp-sim": os.path.join(BUILD, "tests/simulators/mtp-sim"),
    "billing": os.path.join(BUILD, "services/billing/mspsync-billing"),
}

TOPIC_PARTITIONS = 6  # what the services create by default (MSPSYNC_KAFKA_TOPIC_PARTITIONS)

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_port():
    """A free loopback port below the kernel's ephemeral range, which no bind(0) and no outgoing
    connection takes: a broker stopped for a while finds it still free when it comes back."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    while True:
        port = random.randrange(max(1024, lo - 12000), lo)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def rand_id(n=10):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def wait_until(pred, timeout, what, interval=0.2):
    """Poll pred() until it returns a truthy value; fail the test with `what` on timeout."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = pred()
        except Exception as e:  # a service may not answer yet
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def healthz_while(svc, begun, ended, timeout=120, limit=1.0):
    """Probe svc's /healthz back to back from the moment begun() holds until ended() does (a
    service's loop answering while it works off the loop). @returns the answer times in seconds;
    a probe not answered with 200 within `limit` counts as `limit`."""
    wait_until(begun, timeout, "%s's work begun" % svc.name, interval=0.02)
    took = []
    deadline = time.time() + timeout
    while not ended():
        if time.time() > deadline:
            raise AssertionError("%s's work did not end within %ss" % (svc.name, timeout))
        t0 = time.time()
        try:
            ok = http("GET", svc.url("/healthz"), timeout=limit)[0] == 200
        except OSError:  # no answer within the limit
            ok = False
        took.append(time.time() - t0 if ok else limit)
        time.sleep(0.02)
    return took


def wait_port_file(path, proc, timeout=120):
    # 120 s: a service creates its topics before it listens, which a loaded broker answers slowly
    def ready():
        if proc.poll() is not None:
            raise AssertionError("%s exited with %s before listening" % (proc.args[0], proc.returncode))
        if os.path.exists(path):
            with open(path) as f:
                txt = f.read().strip()
            if txt:
                return int(txt)
        return None
    return wait_until(ready, timeout, "port file " + path)


def http(method, url, body=None, headers=None, timeout=30):
    """Returns (status, parsed JSON or text, headers)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        if isinstance(data, str):
            data = data.encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status, rh = r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw = e.read()
        status, rh = e.code, dict(e.headers)
    txt = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(txt) if txt else None, rh
    except ValueError:
        return status, txt, rh


def http_oversized(url_host_port, path, size, headers):
    """POST a body of `size` bytes over a raw socket and return the status the server answered
    (a server may refuse after reading only the headers, so a client library's broken pipe must
    not hide the answer)."""
    host, port = url_host_port
    sock = socket.create_connection((host, port), timeout=30)
    head = "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        path, host, port, size)
    head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "Connection: close\r\n\r\n"
    try:
        sock.sendall(head.encode())
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            sock.sendall(chunk[: min(len(chunk), size - sent)])
            sent += len(chunk)
    except OSError:
        pass  # the server answered and closed early: read what it said
    data = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    sock.close()
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    return int(line.split()[1]) if line.startswith("HTTP/") else None


def kafka_partition(key, partitions):
    """librdkafka's default partitioner (consistent_random): CRC32 of the key."""
    return zlib.crc32(key.encode()) % partitions


def broker_start(kafka_dir, sasl=False):
    """Start (or restart) the broker of kafka_dir with kafka.sh; on the first start its ports
    are chosen below the ephemeral range (a restart keeps them while free). sasl: also the
    SASL_SSL listener (kafka.sh --sasl: kafka_dir/sasl/ has its bootstrap and client.properties).
    @returns the PLAINTEXT bootstrap ("127.0.0.1:PORT")."""
    env = dict(os.environ)
    env.setdefault("MSPSYNC_KAFKA_START_TIMEOUT", "240")  # a loaded machine starts a JVM slowly
    args = []
    if not os.path.exists(os.path.join(kafka_dir, "ports")):  # first start
        ports = set()
        while len(ports) < 3:
            ports.add(quiet_port())
        port, cport, sport = sorted(ports)
        args = ["--port", str(port), "--controller-port", str(cport)]
        if sasl:
            args += ["--sasl", "--sasl-port", str(sport)]
    out = subprocess.run([KAFKA_SH, "start", "--dir", kafka_dir] + args, env=env,
                         timeout=300, capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError("kafka.sh start --dir %s failed: %s" % (kafka_dir, out.stderr[-2000:]))
    return out.stdout.strip()


def broker_stop(kafka_dir, purge=False):
    subprocess.run([KAFKA_SH, "stop", "--dir", kafka_dir] + (["--purge"] if purge else []),
                   check=True, timeout=120)


class Service:
    def __init__(self, name, args, env, logdir, port_file=None):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.port_file = port_file
        self.args = args
        self.env = env
        self.proc = None
        self.port = None
        self.restarts = 0

    def start(self, wait_port=True):
        if self.port_file and os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        if self.port_file and wait_port:
            self.port = wait_port_file(self.port_file, self.proc)
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.log.close()
            raise AssertionError("%s did not stop within %ss of SIGTERM" % (self.name, timeout))
        self.log.close()
        return self.proc.returncode

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Stack:
    """Redis + simulator + services for one test, on the shared Kafka broker (or, with
    own_broker, on a broker of its own: for tests that stop and restart the broker, which would
    pull the shared one from under the tests running beside them; or on the broker of kafka_dir,
    started by the test). kafka_env goes into every service's environment: librdkafka
    properties (MSPSYNC_KAFKA_PROP_*), topic sizing; with service_brokers the services use those
    bootstrap servers (a SASL_SSL listener) while the test's own tools keep self.brokers."""

    def __init__(self, test_name, own_broker=False, kafka_dir=None, kafka_env=None,
                 service_brokers=None):
        self.name = test_name
        self.dir = os.path.join(WORK, test_name + "-" + rand_id(6))
        os.makedirs(self.dir, exist_ok=True)
        self.prefix = "t%s." % rand_id(8)
        self.admin_token = "adm-" + rand_id(24)
        self.secret_key = os.urandom(32).hex()
        self.services = []
        self.redis_proc = None
        self.redis_port = None
        self.sim = None
        self.gateway = None
        self.fetchers = []
        self.normalizer = None
        self.kafka_dir = kafka_dir or KAFKA_DIR
        self.own_broker = own_broker
        self.partitions = TOPIC_PARTITIONS
        self.kafka_env = dict(kafka_env or {})
        if own_broker:
            self.kafka_dir = os.path.join(self.dir, "kafka")
            self.start_broker()
        with open(os.path.join(self.kafka_dir, "bootstrap")) as f:
            self.brokers = f.read().strip()
        self.service_brokers = service_brokers or self.brokers

    # ------------------------------------------------------------ own broker
    def start_broker(self):
        """(Re)start this stack's own broker; @returns its bootstrap ("127.0.0.1:PORT"); a
        restart keeps the port when it is still free."""
        assert self.own_broker, "only a stack's own broker may be stopped and started"
        return broker_start(self.kafka_dir)

    def stop_broker(self):
        assert self.own_broker, "only a stack's own broker may be stopped and started"
        broker_stop(self.kafka_dir)

    # ------------------------------------------------------------ processes
    def start_redis(self):
        """A redis-server of our own. The port is only free when chosen: by the time redis binds
        it another test may hold it (redis then exits), or another test's redis may answer on it;
        so the server that answers must report our process id, else we try another port."""
        rdir = os.path.join(self.dir, "redis")
        os.makedirs(rdir, exist_ok=True)
        for attempt in range(5):
            self.redis_port = free_port()
            with open(os.path.join(self.dir, "redis.log"), "ab") as log:
                self.redis_proc = subprocess.Popen(
                    ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
                     "--appendonly", "no", "--dir", rdir],
                    stdout=log, stderr=subprocess.STDOUT)

            def ours():
                if self.redis_proc.poll() is not None:
                    return "exited"
                pid = re.search(r"^process_id:(\d+)", self.redis_raw("INFO", "server"), re.M)
                if not pid:
                    return None
                return "ours" if int(pid.group(1)) == self.redis_proc.pid else "foreign"
            got = wait_until(ours, 60, "redis-server on port %d" % self.redis_port)
            if got == "ours":
                return
            if got == "foreign":
                self.redis_proc.kill()
            self.redis_proc.wait()
        raise AssertionError("could not start a redis-server of our own; see %s/redis.log" % self.dir)

    def base_env(self):
        env = dict(os.environ)
        env.update({
            "MSPSYNC_KAFKA_BROKERS": self.service_brokers,
            "MSPSYNC_REDIS_URL": "127.0.0.1:%d" % self.redis_port,
            "MSPSYNC_TOPIC_PREFIX": self.prefix,
            "MSPSYNC_SECRET_KEY": self.secret_key,
            "MSPSYNC_LOG_LEVEL": "info",
        })
        env.update(self.kafka_env)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
        return env

    def start_sim(self, config=None):
        pf = os.path.join(self.dir, "sim.port")
        self.sim = Service("syncro-sim", [BIN["syncro-sim"], "--port", "0", "--port-file", pf, "--seed", "7"],
                           self.base_env(), self.dir, pf).start()
        self.services.append(self.sim)
        if config:
            self.sim_config(config)
        return self.sim

    def start_gateway(self, **extra):
        pf = os.path.join(self.dir, "gateway.port")
        env = self.base_env()
        env.update({"MSPSYNC_HTTP_PORT": "0", "MSPSYNC_PORT_FILE": pf,
                    "MSPSYNC_ADMIN_TOKEN": self.admin_token,
                    "MSPSYNC_SYNCRO_RATE_MILLI": "1000000", "MSPSYNC_SYNCRO_BURST": "50"})
        env.update({k: str(v) for k, v in extra.items()})
        self.gateway = Service("gateway", [BIN["gateway"]], env, self.dir, pf).start()
        self.services.append(self.gateway)
        wait_until(lambda: http("GET", self.gateway.url("/readyz"))[0] == 200, 60, "gateway ready")
        return self.gateway

    def start_fetcher(self, **extra):
        idx = len(self.fetchers)
        pf = os.path.join(self.dir, "fetcher%d.port" % idx)
        env = self.base_env()
        env.update({"MSPSYNC_METRICS_PORT": "0", "MSPSYNC_PORT_FILE": pf,
                    "MSPSYNC_GROUP": self.prefix + "mspsync-fetcher",
                    "MSPSYNC_SYNCRO_RATE_MILLI": "1000000", "MSPSYNC_SYNCRO_BURST": "50",
                    "MSPSYNC_SCHEDULE": "0", "MSPSYNC_BACKOFF_BASE_MS": "100",
                    "MSPSYNC_BACKOFF_CAP_MS": "2000", "MSPSYNC_HTTP_TIMEOUT_MS": "3000"})
        env.update({k: str(v) for k, v in extra.items()})
        f = Service("fetcher%d" % idx, [BIN["fetcher"]], env, self.dir, pf).start()
        self.fetchers.append(f)
        self.services.append(f)
        return f

    def restart(self, svc):
        svc.restarts += 1
        svc.start()
        return svc

    def start_normalizer(self, name="normalizer", **extra):
        """The normalizer (MSPSYNC_NORMALIZER_INPUT=all unless extra says otherwise); a second
        one (another name, e.g. the events lane) is returned but not kept as self.normalizer."""
        pf = os.path.join(self.dir, name + ".port")
        env = self.base_env()
        env.update({"MSPSYNC_METRICS_PORT": "0", "MSPSYNC_PORT_FILE": pf, "MSPSYNC_BATCH_SIZE": "100",
                    "MSPSYNC_GROUP": self.prefix + "mspsync-normalizer"})
        env.update({k: str(v) for k, v in extra.items()})
        svc = Service(name, [BIN["normalizer"]], env, self.dir, pf).start()
        if name == "normalizer":
            self.normalizer = svc
        self.services.append(svc)
        return svc

    def start_event_normalizer(self, **extra):
        """The events lane the way docker-compose.yml runs it: raw.events only, its own group."""
        extra.setdefault("MSPSYNC_NORMALIZER_INPUT", "events")
        extra.setdefault("MSPSYNC_GROUP", self.prefix + "mspsync-normalizer-events")
        return self.start_normalizer("normalizer-events", **extra)

    def start_ticket_creator(self, **extra):
        pf = os.path.join(self.dir, "ticket-creator.port")
        env = self.base_env()
        env.update({"MSPSYNC_METRICS_PORT": "0", "MSPSYNC_PORT_FILE": pf,
                    "MSPSYNC_GROUP": self.prefix + "mspsync-ticket-creator",
                    "MSPSYNC_SYNCRO_RATE_MILLI": "1000000", "MSPSYNC_SYNCRO_BURST": "50",
                    "MSPSYNC_BACKOFF_BASE_MS": "100", "MSPSYNC_BACKOFF_CAP_MS": "2000",
                    "MSPSYNC_HTTP_TIMEOUT_MS": "3000"})
        env.update({k: str(v) for k, v in extra.items()})
        self.ticket_creator = Service("ticket-creator", [BIN["ticket-creator"]], env, self.dir, pf).start()
        self.services.append(self.ticket_creator)
        return self.ticket_creator

    def start_billing(self, **extra):
        pf = os.path.join(self.dir, "billing.port")
        env = self.base_env()
        env.update({"MSPSYNC_METRICS_PORT": "0", "MSPSYNC_PORT_FILE": pf,
                    "MSPSYNC_GROUP": self.prefix + "mspsync-billing",
                    "MSPSYNC_SYNCRO_RATE_MILLI": "1000000", "MSPSYNC_SYNCRO_BURST": "50",
                    "MSPSYNC_BACKOFF_BASE_MS": "100", "MSPSYNC_BACKOFF_CAP_MS": "2000",
                    "MSPSYNC_HTTP_TIMEOUT_MS": "3000", "MSPSYNC_BILLING_SCHEDULE_CHECK_MS": "0"})
        env.update({k: str(v) for k, v in extra.items()})
        self.billing = Service("billing", [BIN["billing"]], env, self.dir, pf).start()
        self.services.append(self.billing)
        return self.billing

    def start_all(self, sim_config=None, fetchers=1, fetcher_env=None, gateway_env=None,
                  normalizer_env=None, lanes=False):
        """lanes: a records normalizer and an events normalizer (as docker-compose.yml runs
        them) instead of one normalizer consuming both topics."""
        self.start_redis()
        self.start_sim(sim_config)
        self.start_gateway(**(gateway_env or {}))
        for _ in range(fetchers):
            self.start_fetcher(**(fetcher_env or {}))
        if lanes:
            self.start_normalizer(MSPSYNC_NORMALIZER_INPUT="records", **(normalizer_env or {}))
            self.start_event_normalizer(**(normalizer_env or {}))
        else:
            self.start_normalizer(**(normalizer_env or {}))
        return self

    def stop_all(self):
        """Stop every service with SIGTERM; returns a list of problems (exit codes, sanitizer
        reports) so that a test can assert a clean shutdown."""
        problems = []
        for svc in reversed(self.services):
            try:
                rc = svc.stop()
            except AssertionError as e:
                problems.append(str(e))
                continue
            if rc not in (0, None):
                problems.append("%s exited with %s" % (svc.name, rc))
            text = svc.logtext()
            for mark in SANITIZER_MARKS:
                if mark in text:
                    problems.append("%s log has a sanitizer report: %s" % (svc.name, mark))
        if self.redis_proc:
            self.redis_proc.terminate()
            self.redis_proc.wait(10)
        if self.own_broker:
            try:
                self.stop_broker()
                shutil.rmtree(os.path.join(self.kafka_dir, "data"), ignore_errors=True)
            except (subprocess.SubprocessError, OSError) as e:
                problems.append("own broker did not stop: %s" % e)
        return problems

    def replace_redis(self, while_down=None):
        """Redis replaced by an EMPTY server on the same port (no persistence): the old one
        SIGKILLed, a fresh one started in a directory of its own. while_down (may be None) is
        called between the two: what must happen while no Redis answers."""
        self.redis_proc.kill()
        self.redis_proc.wait()
        if while_down:
            while_down()
        rdir = os.path.join(self.dir, "redis2")
        os.makedirs(rdir, exist_ok=True)
        with open(os.path.join(self.dir, "redis2.log"), "ab") as logf:
            self.redis_proc = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                 "--save", "", "--appendonly", "no", "--dir", rdir],
                stdout=logf, stderr=subprocess.STDOUT)
        wait_until(lambda: self.redis_raw("PING").strip() == "PONG", 60, "the empty Redis")

    # ------------------------------------------------------------ clients
    def redis(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.redis_port), "--no-raw"] + [str(a) for a in args],
                             capture_output=True, text=True, timeout=30)
        return self._parse_redis(out.stdout)

    def mark_state(self):
        """Set the state marker a gateway's first start sets (mspsync:{_}:state:epoch): a stack
        without a gateway runs workers that wait while it is missing (Redis lost its state)."""
        self.redis("SET", "mspsync:{_}:state:epoch", "test")

    def redis_raw(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.redis_port), "--raw"] + [str(a) for a in args],
                             capture_output=True, text=True, timeout=60)
        return out.stdout

    @staticmethod
    def _parse_redis(text):
        text = text.strip()
        if text.startswith("(integer) "):
            return int(text[10:])
        if text == "(nil)":
            return None
        if text.startswith('"') and text.endswith('"') and "\n" not in text:
            return json.loads(text) if False else text[1:-1]
        return text

    def api(self, method, path, body=None, token=None):
        hdrs = {"Authorization": "Bearer " + (token if token is not None else self.admin_token)}
        return http(method, self.gateway.url(path), body, hdrs)

    @staticmethod
    def svc_admin(svc, method, path, body=None):
        """A control-plane call to a simulator; anything but 2xx fails the test."""
        st, js, _ = http(method, svc.url(path), body)
        if st >= 300:
            raise AssertionError("%s %s %s -> %s %r" % (svc.name, method, path, st, js))
        return js

    def sim_admin(self, method, path, body=None):
        return self.svc_admin(self.sim, method, path, body)

    def sim_config(self, cfg):
        return self.sim_admin("PUT", "/_sim/config", cfg)

    def sim_stats(self):
        return self.sim_admin("GET", "/_sim/stats")

    def sim_base_url(self, subdomain):
        return self.sim.url("/%s/api/v1" % subdomain)

    # ------------------------------------------------------------ domain helpers
    def add_tenant(self, tenant):
        st, js, _ = self.api("POST", "/v1/tenants", {"id": tenant, "name": tenant.title()})
        assert st == 201, (st, js)

    def add_key(self, tenant, role, name=None, expires_at=None, token=None):
        """A new API key of tenant with role, issued by token (default: the operator token).
        @returns (key id, the bearer token shown once)."""
        body = {"name": name or "%s %s key" % (tenant, role), "role": role}
        if expires_at is not None:
            body["expires_at"] = expires_at
        st, js, _ = self.api("POST", "/v1/tenants/%s/keys" % tenant, body, token=token)
        assert st == 201, (st, js)
        return js["id"], js["key"]

    def add_account(self, subdomain, customers, assets, token, permissions=None, customers_per_page=25):
        self.sim_admin("POST", "/_sim/accounts", {"subdomain": subdomain, "customers": customers,
                                                  "assets": assets, "customers_per_page": customers_per_page})
        body = {"subdomain": subdomain, "token": token}
        if permissions is not None:
            body["permissions"] = permissions
        self.sim_admin("POST", "/_sim/tokens", body)

    def connect(self, tenant, subdomain, token):
        return self.api("PUT", "/v1/tenants/%s/integrations/syncro" % tenant,
                        {"base_url": self.sim_base_url(subdomain), "api_key": token})

    def add_synced_tenant(self, tenant, customers, assets):
        """Tenant <tenant> with a Syncro account "<tenant>-msp" (key "<tenant>-key-123456")
        connected and its first sync finished."""
        self.add_account(tenant + "-msp", customers=customers, assets=assets, token=tenant + "-key-123456")
        self.add_tenant(tenant)
        st, js, _ = self.connect(tenant, tenant + "-msp", tenant + "-key-123456")
        assert st == 201, (st, js)
        self.wait_synced(tenant, js["job_id"], assets=assets)

    def status(self, tenant):
        st, js, _ = self.api("GET", "/v1/tenants/%s/integrations/syncro" % tenant)
        assert st == 200, (st, js)
        return js

    def wait_synced(self, tenant, job_id, assets=None, timeout=180):
        """Wait until the job finished (job_id None: any job) and, when given, the inventory
        holds `assets` live assets."""
        def done():
            s = self.status(tenant)
            if s.get("state") == "Error":
                raise AssertionError("sync failed: %r" % s)
            if (job_id is not None and s.get("job_id") != job_id) or s.get("state") != "Connected":
                return None
            if assets is not None and s["counts"]["assets"] - s["counts"].get("assets_gone", 0) != assets:
                return None
            return s
        return wait_until(done, timeout, "tenant %s job %s synced" % (tenant, job_id), interval=0.5)

    def wait_normalized(self, timeout=120):
        """Wait until the normalizer consumed everything on raw.records (group lag 0)."""
        def caught_up():
            end = self.topic_end_offsets("raw.records")
            consumed = self.group_committed("mspsync-normalizer", "raw.records")
            return consumed is not None and consumed >= sum(end.values())
        return wait_until(caught_up, timeout, "normalizer caught up", interval=0.5)

    def wait_asset_page(self, tenant, page, timeout=120):
        """Wait until the running sync of tenant is at least at asset page `page` (mid-sync)."""
        def there():
            p = self.status(tenant).get("progress") or {}
            return p.get("type") == "asset" and int(p.get("page") or 0) >= page
        return wait_until(there, timeout, "%s at asset page %d" % (tenant, page))

    def sync_now(self, tenant, types=("customers", "assets")):
        st, js, _ = self.api("POST", "/v1/tenants/%s/integrations/syncro/sync" % tenant, {"types": list(types)})
        assert st == 202, (st, js)
        return js["job_id"]

    def inventory(self, tenant, kind="assets", **params):
        items, page = [], 1
        while True:
            q = "&".join(["page=%d" % page, "per_page=500"] + ["%s=%s" % kv for kv in params.items()])
            st, js, _ = self.api("GET", "/v1/tenants/%s/%s?%s" % (tenant, kind, q))
            assert st == 200, (st, js)
            items.extend(js[kind])
            if page >= js["meta"]["total_pages"]:
                return items
            page += 1

    def dlq_tool(self, command, *args):
        """Run mspsync-dlq list|replay [args...] (e.g. "--tenant", "acme"); returns (exit code,
        stdout, stderr)."""
        env = self.base_env()
        env["MSPSYNC_DLQ_GROUP"] = self.prefix + "mspsync-dlq-replay"
        out = subprocess.run([BIN["dlq"], command] + list(args), env=env, capture_output=True, text=True, timeout=120)
        for mark in SANITIZER_MARKS:
            if mark in out.stderr:
                raise AssertionError("mspsync-dlq sanitizer report: " + out.stderr)
        return out.returncode, out.stdout, out.stderr

    # ------------------------------------------------------------ kafka
    def topic(self, base):
        return self.prefix + base

    def topic_ready(self, topic_base):
        """True once the broker lists the topic with all its partitions, each with a leader."""
        out = subprocess.run(["kcat", "-L", "-J", "-b", self.brokers, "-t", self.topic(topic_base)],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return False
        try:
            topics = json.loads(out.stdout)["topics"]
        except (ValueError, KeyError):
            return False
        parts = topics[0].get("partitions") or [] if topics else []
        return (len(parts) == self.partitions and not topics[0].get("error") and
                all(p.get("leader", -1) >= 0 and not p.get("error") for p in parts))

    def wait_topic(self, topic_base, timeout=90):
        """Wait until the topic exists with its partitions led. The services create the topics
        before they start, but the broker answers CreateTopics before every partition has a
        leader: a read in between sees no topic (on a loaded machine for seconds)."""
        wait_until(lambda: self.topic_ready(topic_base), timeout,
                   "topic %s with %d led partitions" % (self.topic(topic_base), self.partitions))

    def kcat(self, topic_base, fmt="%k\t%s\n", timeout=120):
        """Every record of the topic, from the beginning. A failed read fails the test (an
        unreadable topic must not pass for an empty one)."""
        self.wait_topic(topic_base)
        out = subprocess.run(["kcat", "-C", "-b", self.brokers, "-t", self.topic(topic_base), "-e", "-q",
                              "-o", "beginning", "-f", fmt], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError("kcat -C %s failed (%d): %s" % (self.topic(topic_base), out.returncode,
                                                                 out.stderr.strip()))
        return [l for l in out.stdout.split("\n") if l]

    def topic_end_offsets(self, topic_base, timeout=90):
        """{partition: end offset} for every partition of the topic; waits until the broker
        answers for all of them (a partial answer would read as "nothing there")."""
        def query():
            if not self.topic_ready(topic_base):
                return None
            out = subprocess.run(["kcat", "-Q", "-b", self.brokers] +
                                 sum([["-t", "%s:%d:-1" % (self.topic(topic_base), p)]
                                      for p in range(self.partitions)], []),
                                 capture_output=True, text=True, timeout=30)
            ends = {}
            for line in out.stdout.split("\n"):
                parts = line.split()
                # "<topic> [<p>] offset <n>"
                if len(parts) >= 4 and parts[2] == "offset":
                    ends[int(parts[1].strip("[]"))] = int(parts[3])
            if out.returncode != 0 or len(ends) != self.partitions:
                raise AssertionError("kcat -Q: %r %s" % (ends, out.stderr.strip()))
            return ends
        return wait_until(query, timeout, "end offsets of %s" % self.topic(topic_base), interval=0.5)

    def group_committed(self, group, topic_base):
        """Sum of committed offsets of a group on a topic, via the gateway-independent
        kafka-consumer-groups tool shipped in the broker jars."""
        libs = os.path.join(os.path.dirname(os.path.dirname(KAFKA_DIR.rstrip("/"))), "kafka", "libs")
        if not os.path.isdir(libs):
            libs = os.path.join(SOURCE, ".local/kafka/libs")
        out = subprocess.run(["java", "-cp", libs + "/*", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                              "--bootstrap-server", self.brokers, "--describe", "--group", self.prefix + group],
                             capture_output=True, text=True, timeout=120)  # a JVM, on a loaded machine
        total, seen = 0, False
        for line in out.stdout.split("\n"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == self.topic(topic_base) and parts[3].isdigit():
                total += int(parts[3])
                seen = True
        return total if seen else None


def metric_total(service, name):
    """The sum of every series of metric name on service's /metrics."""
    st, text, _ = http("GET", service.url("/metrics"))
    assert st == 200, st
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.split("\n")
               if l.startswith(name) and (l[len(name):len(name) + 1] in ("{", " ")))


class StackTest(unittest.TestCase):
    """Base class: a Stack per test, stopped at the end with a clean-shutdown check."""

    def make_stack(self, own_broker=False, **kw):
        self.stack = Stack(self.id().split(".")[-1], own_broker=own_broker)
        self.addCleanup(self._teardown)
        self.stack.start_all(**kw)
        return self.stack

    def make_backlog(self, assets=4000):
        """A stack whose normalizer is down while tenant "lima" makes its first full sync of
        `assets` assets (and 20 customers): raw.records piles up, so that the normalizer, once
        started, works in full batches. @returns (stack, the connect's answer)."""
        s = self.make_stack(sim_config={"rate_limit": 0})
        s.add_account("lima-msp", customers=20, assets=assets, token="lima-key-1234567")
        s.add_tenant("lima")
        s.normalizer.kill9()
        st, js, _ = s.connect("lima", "lima-msp", "lima-key-1234567")
        self.assertEqual(st, 201, js)
        return s, js

    def make_gateway_stack(self):
        """Redis, the broker and the gateway only (for tests of the gateway alone)."""
        self.stack = Stack(self.id().split(".")[-1])
        self.addCleanup(self._teardown)
        self.stack.start_redis()
        self.stack.start_gateway()
        return self.stack

    def _teardown(self):
        problems = self.stack.stop_all()
        if problems and not getattr(self, "_outcome_failed", False):
            self.fail("unclean shutdown: " + "; ".join(problems))


def main():
    unittest.main(verbosity=2)
