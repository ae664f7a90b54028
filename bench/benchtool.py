#!/usr/bin/env python3
"""
benchtool.py — helpers of bench/normalizer.sh and bench/fetcher.sh (standard library only).

  gen-raw           write N raw.records messages ("<tenant>\\t<envelope>" lines for kcat -K '\\t')
                    built from real /customer_assets items served by a running syncro-sim
  add-tenants       create T simulator accounts + tokens, then the tenants and their Syncro
                    integrations through the gateway admin API (one process, sequential)
  watch-normalizer  poll a normalizer's /metrics every 100 ms until it handled N records; print
                    the result line
  watch-fetcher     poll the simulator's /_sim/stats and the fetcher's /metrics every 100 ms until
                    the simulator served every expected page; print the result line
  setup-ticketing   (bench/tickets.sh) one synced tenant: webhook secret, ticketing on, orgs mapped;
                    prints the secret
  ticket-latency    (bench/tickets.sh) wait until the simulator created a ticket for every new
                    incident of an mtp-sim log, then print p50/p99/max of webhook accepted (202 at
                    the sender) → ticket POST received (simulator clock, same machine)

Timing rule of both watchers: polls every 10 ms until the count moves, every 100 ms after. The
clock starts when the last poll that still read 0 was answered (t0: the work began after it) and
stops at the first poll that reads the target C (t1); seconds = t1 - t0, rate = C / seconds. (If
not even the first poll read 0, t0 is the first poll and the count it read is not credited.) Both
print the CPU seconds that each named process used over the same window (utime+stime from
/proc/<pid>/stat) as a share of one core: on a small machine the broker, Redis and the simulator
compete with the service under test.
"""
import argparse
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request

ASSET_ID_BASE = 7_100_000_000   # above the simulator's own ids (7000000000 + index)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- small utilities
def http(method, url, body=None, headers=None, timeout=30):
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    txt = raw.decode("utf-8", "replace")
    try:
        return status, (json.loads(txt) if txt else None)
    except ValueError:
        return status, txt


def must(status_js, what, ok=(200, 201, 202, 204)):
    st, js = status_js
    if st not in ok:
        sys.exit("benchtool: %s -> HTTP %s %r" % (what, st, js))
    return js


def die(msg):
    print("benchtool: " + msg, file=sys.stderr)
    sys.exit(1)


def proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def cpu_seconds(pid):
    """utime + stime of a process (with its reaped children), seconds; None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(") ", 1)[1].split()
        # after "comm) ": state(0) ... utime(11) stime(12) cutime(13) cstime(14)
        return sum(int(x) for x in fields[11:15]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def vm_hwm_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


METRIC_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metrics(url):
    """{name: [(labels, value), ...]} of a Prometheus text page."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = METRIC_RE.match(line)
        if m:
            out.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(3))))
    return out


def parse_pids(spec):
    """'name=pid,name=pid' -> [(name, pid)]"""
    res = []
    for part in filter(None, (spec or "").split(",")):
        name, pid = part.split("=", 1)
        res.append((name, int(pid)))
    return res


class CpuWindow:
    def __init__(self, pids):
        self.pids = pids
        self.t0 = None
        self.c0 = {}

    def start(self, now):
        self.t0 = now
        self.c0 = {n: cpu_seconds(p) for n, p in self.pids}

    def line(self, label, now):
        wall = max(now - self.t0, 1e-9)
        parts = []
        for n, p in self.pids:
            c1, c0 = cpu_seconds(p), self.c0.get(n)
            if c1 is None or c0 is None:
                parts.append("%s=n/a" % n)
            else:
                parts.append("%s=%.0f%%" % (n, 100.0 * (c1 - c0) / wall))
        return "%s cpu_share_of_one_core %s (over %.2f s; %d cores)" % (
            label, " ".join(parts), wall, os.cpu_count() or 0)


# ----------------------------------------------------------------------------- gen-raw
def cmd_gen_raw(a):
    sim = a.sim.rstrip("/")
    sub, tok = "benchsrc", "benchsrc-token"
    must(http("POST", sim + "/_sim/accounts",
              {"subdomain": sub, "customers": a.sample_customers, "assets": a.samples}), "create account")
    must(http("POST", sim + "/_sim/tokens", {"subdomain": sub, "token": tok}), "create token")
    samples, page = [], 1
    while True:
        js = must(http("GET", "%s/%s/api/v1/customer_assets?page=%d&api_key=%s" % (sim, sub, page, tok)),
                  "GET customer_assets page %d" % page)
        samples.extend(js["assets"])
        if page >= js["meta"]["total_pages"]:
            break
        page += 1
    if not samples:
        die("the simulator served no assets")
    # Restore the simulator's counters: the fetcher benchmark reads them.
    http("POST", sim + "/_sim/stats/reset")

    fetched_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    tenants = ["bt%04d" % i for i in range(a.tenants)]
    job_ids = {t: "bench-%s-%08x" % (t, i) for i, t in enumerate(tenants)}
    total_bytes = 0
    with open(a.out, "w") as out:
        for i in range(a.count):
            src = samples[i % len(samples)]
            aid = ASSET_ID_BASE + i
            serial = "BN%010d" % i
            # Copy only what changes; the rest of the tree is shared (json.dumps reads it).
            p = dict(src)
            p["id"] = aid
            p["name"] = "%s-%d" % (src.get("name") or "ASSET", i)
            p["asset_serial"] = serial
            props = src.get("properties")
            if isinstance(props, dict) and isinstance(props.get("kabuto_information"), dict):
                ki = dict(props["kabuto_information"])
                if isinstance(ki.get("general"), dict):
                    ki["general"] = dict(ki["general"], serial_number=serial)
                if a.distinct and isinstance(ki.get("network_adapters"), list):
                    # Every record its own machine: MACs of its own (universally administered
                    # unicast, 3C:xx:..), so no two records share a match key.
                    ki["network_adapters"] = [
                        dict(ad, physical_address="3C:%02X:%02X:%02X:%02X:%02X" % (
                            j, (i >> 24) & 0xFF, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))
                        if isinstance(ad, dict) else ad
                        for j, ad in enumerate(ki["network_adapters"])]
                p["properties"] = dict(props, kabuto_information=ki)
            if isinstance(src.get("rmm_store"), dict):
                p["rmm_store"] = dict(src["rmm_store"], asset_id=aid, id=40_000_000_000 + i)
            tenant = tenants[i % len(tenants)]
            # Same member order as the fetcher's json_pack (services/fetcher/job.c produce_record).
            env = {"schema_version": 1, "kind": "record", "tenant": tenant, "integration": "syncro",
                   "type": "asset", "job_id": job_ids[tenant], "fetched_at": fetched_at,
                   "payload": p, "source_id": str(aid)}
            line = "%s\t%s\n" % (tenant, json.dumps(env, separators=(",", ":"), ensure_ascii=False))
            total_bytes += len(line)
            out.write(line)
    print("gen-raw: %d records, %d tenants, %.1f MB, %.0f bytes/record (from %d simulator assets)" % (
        a.count, a.tenants, total_bytes / 1e6, total_bytes / max(a.count, 1), len(samples)), file=sys.stderr)


# ----------------------------------------------------------------------------- add-tenants
def cmd_add_tenants(a):
    sim, gw = a.sim.rstrip("/"), a.gateway.rstrip("/")
    auth = {"Authorization": "Bearer " + a.admin_token}
    t0 = time.time()
    accounts = 1 if a.shared else a.count  # shared: every tenant's integration is account b0
    for i in range(accounts):
        sub = "b%d" % i
        must(http("POST", sim + "/_sim/accounts",
                  {"subdomain": sub, "customers": a.customers, "assets": a.assets}), "sim account " + sub)
    for i in range(a.count):
        sub = "b%d" % (0 if a.shared else i)
        must(http("POST", sim + "/_sim/tokens", {"subdomain": sub, "token": "tok%d" % i}), "sim token " + sub)
    t1 = time.time()
    for i in range(a.count):
        tenant, sub = "b%d" % i, "b%d" % (0 if a.shared else i)
        must(http("POST", gw + "/v1/tenants", {"id": tenant, "name": "Bench %d" % i}, auth), "tenant " + tenant)
        must(http("PUT", gw + "/v1/tenants/%s/integrations/syncro" % tenant,
                  {"base_url": "%s/%s/api/v1" % (sim, sub), "api_key": "tok%d" % i}, auth),
             "integration " + tenant)
    t2 = time.time()
    print("add-tenants: %d simulator accounts in %.1f s, %d tenants + integrations (PUT = GET /me + job) "
          "in %.1f s" % (accounts, t1 - t0, a.count, t2 - t1), file=sys.stderr)


def cmd_setup_ticketing(a):
    sim, gw = a.sim.rstrip("/"), a.gateway.rstrip("/")
    auth = {"Authorization": "Bearer " + a.admin_token}
    must(http("POST", sim + "/_sim/accounts", {"subdomain": "tk", "customers": a.orgs + 10, "assets": 5}), "account")
    must(http("POST", sim + "/_sim/tokens", {"subdomain": "tk", "token": "toktk"}), "token")
    must(http("POST", gw + "/v1/tenants", {"id": "tk", "name": "Tickets"}, auth), "tenant")
    must(http("PUT", gw + "/v1/tenants/tk/integrations/syncro",
              {"base_url": sim + "/tk/api/v1", "api_key": "toktk"}, auth), "integration")
    deadline = time.time() + 120
    while True:
        st, js = http("GET", gw + "/v1/tenants/tk/customers?per_page=500", None, auth)
        if st == 200 and len(js.get("customers", [])) == a.orgs + 10:
            break
        if time.time() > deadline:
            die("customers not synced: %r" % (js,))
        time.sleep(0.2)
    custs = sorted(c["id"].split(":", 1)[1] for c in js["customers"])
    # The whole initial sync normalized ("Connected") before measuring: the steady and bursty
    # figures are meant without a sync running (tickets.sh measures "during a sync" separately).
    while http("GET", gw + "/v1/tenants/tk/integrations/syncro", None, auth)[1].get("state") != "Connected":
        if time.time() > deadline:
            die("the sync did not finish")
        time.sleep(0.2)
    secret = must(http("POST", gw + "/v1/tenants/tk/webhooks/mtp/secret", {}, auth), "secret")["secret"]
    # min_severity null: every new incident gets its ticket, whatever its severity (the gate of
    # a new tenant, "high", would ticket a third of mtp-sim's incidents: the latency is measured
    # on every one, as before the gate existed).
    must(http("PUT", gw + "/v1/tenants/tk/ticketing",
              {"enabled": True, "auto_resolve": True, "reopen_window_days": 7, "min_severity": None,
               "rules": {"*": {"create": True, "priority": "2 Normal", "status": "New"}}}, auth), "config")
    for i in range(1, a.orgs + 1):
        must(http("PUT", gw + "/v1/tenants/tk/ticketing/orgs/org-%04d" % i,
                  {"customer_id": int(custs[i - 1])}, auth), "map org %d" % i)
    print(secret)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


def cmd_ticket_latency(a):
    sim = a.sim.rstrip("/")
    with open(a.log) as f:
        events = [json.loads(l) for l in f if l.strip()]
    accepted = {}
    for e in sorted(events, key=lambda e: e["seq"]):
        if e["kind"] == "new" and e.get("accepted_at_us") and e["incident_id"] not in accepted:
            accepted[e["incident_id"]] = e["accepted_at_us"]
    want = a.before + len(accepted)
    deadline = time.time() + a.timeout
    while True:
        st, js = http("GET", sim + "/_sim/stats")
        made = js["accounts"]["tk"]["tickets_created"] if st == 200 else -1
        if made >= want:
            break
        if time.time() > deadline:
            die("only %d of %d tickets after %d s" % (made, want, a.timeout))
        time.sleep(0.5)
    st, js = http("GET", sim + "/_sim/accounts/tk/tickets", timeout=300)
    pat = re.compile(r"Incident (\S+) from the multi-tenant portal\.")
    # --incidents: "<timestamp ms>\t<canonical incident>" lines of the incidents topic (kcat
    # -f '%T\t%s\n'): the moment the normalizer produced each new incident, which splits the
    # latency into 202 → normalized and normalized → ticket POST.
    produced = {}
    if a.incidents:
        with open(a.incidents) as f:
            for line in f:
                ts, _, js_text = line.rstrip("\n").partition("\t")
                try:
                    inc = json.loads(js_text)
                except ValueError:
                    continue
                if inc.get("status") == "open":
                    produced.setdefault(inc.get("incident_id"), int(ts))
    lat, stage1, stage2 = [], [], []
    for t in js["tickets"]:
        first = min(t["comments"], key=lambda c: c["id"])
        m = pat.search(first["body"])
        if m and m.group(1) in accepted:
            at = accepted.pop(m.group(1))
            # --window: only incidents accepted while something else ran (e.g. a full sync)
            if a.window_from_us <= at <= a.window_to_us:
                lat.append((t["received_at_us"] - at) / 1000.0)
                if m.group(1) in produced:
                    stage1.append(produced[m.group(1)] - at / 1000.0)
                    stage2.append(t["received_at_us"] / 1000.0 - produced[m.group(1)])
    if accepted:
        die("%d new incidents have no ticket" % len(accepted))
    if not lat:
        die("no new incident was accepted inside the window")
    rate = sum(1 for e in events if e.get("accepted_at_us")) / max(
        1e-9, (max(e["accepted_at_us"] for e in events if e.get("accepted_at_us")) -
               min(e["sent_at_us"] for e in events)) / 1e6)
    print("tickets %srate=%d sent_rate=%.0f events=%d new_tickets=%d latency_ms_p50=%.1f p99=%.1f max=%.1f" % (
        a.label + " " if a.label else "", a.rate, rate, len(events), len(lat), percentile(lat, 50),
        percentile(lat, 99), max(lat)))
    if stage1:
        print("stages %s202_to_normalized_ms_p50=%.1f p99=%.1f normalized_to_ticket_ms_p50=%.1f p99=%.1f" % (
            a.label + " " if a.label else "", percentile(stage1, 50), percentile(stage1, 99),
            percentile(stage2, 50), percentile(stage2, 99)))


def cmd_metric_sum(a):
    """Sum of a metric's samples whose labels contain every --match string (0 when none)."""
    total = 0.0
    for labels, v in metrics(a.url).get(a.name, []):
        if all(x in labels for x in a.match):
            total += v
    print("%d" % total)


# ----------------------------------------------------------------------------- watchers
def wait_loop(poll, target, pid, interval, stall_timeout, what, start_interval=0.01):
    """Call poll() -> count every `start_interval` s until it is above 0, then every `interval` s.
    Yields ("zero", t, 0) for each poll that read 0 before the work began, ("start", t, count) at
    the first count above 0 and ("end", t, count) at the first count >= target; t is when the
    answer came (a 0 answered at t means no work was done before t)."""
    started = False
    last_c, last_change = -1, time.monotonic()
    err = None
    while True:
        sent = time.monotonic()
        try:
            c = poll()
        except (OSError, ValueError, KeyError) as e:
            c, err = None, e
        now = time.monotonic()
        if c is not None:
            if c != last_c:
                last_c, last_change = c, now
            if not started:
                if c == 0:
                    yield ("zero", now, 0)
                else:
                    started = True
                    yield ("start", now, c)
            if c >= target:
                yield ("end", now, c)
                return
        if not proc_alive(pid):
            die("%s: the process under test (pid %d) exited before the end (count %s of %d)" % (
                what, pid, last_c, target))
        if now - last_change > stall_timeout:
            die("%s: no progress for %d s (count %s of %d)%s" % (
                what, stall_timeout, last_c, target, "" if c is not None else "; last error: %r" % (err,)))
        step = interval if started else start_interval
        time.sleep(max(0.0, step - (time.monotonic() - sent)))


class Window:
    """Start of the measured window per the timing rule, with the CPU counters at that time."""

    def __init__(self, cpu):
        self.cpu = cpu
        self.t0 = None      # last poll that read 0
        self.base = 0       # count not credited (only when no poll read 0)
        self.first = 0      # count of the first non-zero poll (shown for information)

    def event(self, ev, t, c):
        if ev == "zero":
            self.t0 = t
            self.cpu.start(t)
        elif ev == "start":
            self.first = c
            if self.t0 is None:
                self.t0, self.base = t, c
                self.cpu.start(t)

    def rate(self, t1, c1):
        secs = t1 - self.t0
        return secs, ((c1 - self.base) / secs if secs > 0 else float("inf"))


def cmd_watch_normalizer(a):
    # Replicas (same consumer group) are watched together: counts summed, the first pid's
    # liveness checked by the wait loop and every other one in each poll.
    urls = [a.metrics.rstrip("/") + "/metrics"] + [
        u.rstrip("/") + "/metrics" for u in a.more_metrics.split(",") if u]
    pids = [a.pid] + [int(p) for p in a.more_pids.split(",") if p]
    cpu = CpuWindow(parse_pids(a.cpu_pids))
    by_result = {}

    def poll():
        tot = 0.0
        by_result.clear()
        for p in pids[1:]:
            if not proc_alive(p):
                die("%s: replica pid %d exited before the end" % (a.label, p))
        for url in urls:
            m = metrics(url)
            for labels, v in m.get("mspsync_normalizer_records_total", []):
                tot += v
                r = re.search(r'result="([^"]*)"', labels)
                key = r.group(1) if r else labels
                by_result[key] = by_result.get(key, 0) + v
        return int(tot)

    win = Window(cpu)
    for ev, now, c in wait_loop(poll, a.expect, a.pid, a.interval, a.stall_timeout, a.label):
        win.event(ev, now, c)
        if ev == "end":
            t1, c1 = now, c
    secs, rate = win.rate(t1, c1)
    rss = [vm_hwm_mb(p) for p in pids]
    print("%s records=%d seconds=%.2f records_per_s=%.0f peak_rss_mb=%.1f%s" % (
        a.label, c1, secs, rate, max(rss),
        " replicas=%d rss_sum_mb=%.1f" % (len(pids), sum(rss)) if len(pids) > 1 else ""))
    print("%s by_result %s (first sample %d records, then %d ms polls)" % (
        a.label, " ".join("%s=%d" % kv for kv in sorted(by_result.items())), win.first, int(a.interval * 1000)))
    print(cpu.line(a.label, t1))
    # Where the time went (mspsync_normalizer_stage_seconds_total), per record, all replicas.
    stages = {}
    for url in urls:
        try:
            for labels, v in metrics(url).get("mspsync_normalizer_stage_seconds_total", []):
                st = re.search(r'stage="([^"]*)"', labels)
                if st:
                    stages[st.group(1)] = stages.get(st.group(1), 0.0) + v
        except (OSError, ValueError):
            pass
    if stages and c1:
        print("%s stage_us_per_record %s (summed over replicas)" % (a.label, " ".join(
            "%s=%.1f" % (k, v * 1e6 / c1) for k, v in sorted(stages.items()))))
    if a.rate_file:
        with open(a.rate_file, "w") as f:
            f.write("%.3f\n" % rate)


def cmd_watch_fetcher(a):
    stats_url = a.sim.rstrip("/") + "/_sim/stats"
    murl = a.metrics.rstrip("/") + "/metrics"
    cpu = CpuWindow(parse_pids(a.cpu_pids))
    state = {"max_running": 0, "jobs_done": 0, "records": 0, "statuses": {}}
    stop = threading.Event()

    def sample_fetcher():
        # Its own thread: a busy fetcher may answer /metrics late, which must not delay the
        # simulator polls that time the run.
        while not stop.is_set():
            try:
                m = metrics(murl)
                for _, v in m.get("mspsync_fetcher_jobs_running", []):
                    state["max_running"] = max(state["max_running"], int(v))
                state["jobs_done"] = int(sum(v for l, v in m.get("mspsync_fetcher_jobs_total", [])
                                             if 'result="done"' in l))
                state["records"] = int(sum(v for _, v in m.get("mspsync_fetcher_records_total", [])))
            except (OSError, ValueError):
                pass
            stop.wait(a.interval)

    def poll():
        st = must(http("GET", stats_url, timeout=5), "sim stats")
        state["statuses"] = st.get("status", {})
        paths = st["paths"]
        return int(paths.get("/customers", 0) + paths.get("/customer_assets", 0))

    sampler = threading.Thread(target=sample_fetcher, daemon=True)
    sampler.start()
    win = Window(cpu)
    for ev, now, c in wait_loop(poll, a.expect, a.pid, a.interval, a.stall_timeout, "fetcher"):
        win.event(ev, now, c)
        if ev == "end":
            t1, c1 = now, c
    secs, rate = win.rate(t1, c1)
    # Jobs finish after their last page was acknowledged by Kafka: wait (bounded) for all of them.
    deadline = time.monotonic() + a.stall_timeout
    while state["jobs_done"] < a.tenants and time.monotonic() < deadline and proc_alive(a.pid):
        time.sleep(a.interval / 4)
    t_done = time.monotonic()
    stop.set()
    sampler.join(10)
    print("fetcher tenants=%d requests=%d seconds=%.2f requests_per_s=%.0f peak_rss_mb=%.1f "
          "max_concurrent_jobs=%d" % (a.tenants, c1, secs, rate, vm_hwm_mb(a.pid), state["max_running"]))
    print("fetcher jobs_done=%d/%d all_jobs_done_after_s=%.2f records=%d sim_status=%s (first sample %d "
          "requests, then %d ms polls)" % (state["jobs_done"], a.tenants, t_done - win.t0, state["records"],
                                      ",".join("%s:%s" % kv for kv in sorted(state["statuses"].items())),
                                      win.first, int(a.interval * 1000)))
    print(cpu.line("fetcher", t1))
    if state["jobs_done"] < a.tenants:
        die("only %d of %d jobs finished" % (state["jobs_done"], a.tenants))


def cmd_watch_sync(a):
    """The window runs from the last simulator poll that saw no vendor request to the moment every
    job is done (its last page acknowledged by Kafka): the whole sync as a user waits for it. The
    bound is the time the vendor's limit alone allows for the requests the simulator served (429s
    are not served): per account, requests x window / limit; accounts sync in parallel, so the
    busiest one's."""
    stats_url = a.sim.rstrip("/") + "/_sim/stats"
    urls = [u.rstrip("/") + "/metrics" for u in a.metrics.split(",") if u]
    pids = [int(p) for p in a.pids.split(",") if p]

    def stats():
        return must(http("GET", stats_url, timeout=5), "sim stats")

    def jobs_done():
        n = 0
        for u in urls:
            try:
                m = metrics(u)
            except (OSError, ValueError):
                return -1
            n += int(sum(v for l, v in m.get("mspsync_fetcher_jobs_total", []) if 'result="done"' in l))
        return n

    t0, start = None, time.monotonic()
    while True:
        st = stats()
        now = time.monotonic()
        if st["requests"] > 0:
            if t0 is None:
                t0 = now
            break
        t0 = now
        if now - start > a.stall_timeout or not all(proc_alive(p) for p in pids):
            die("%s: no vendor request within %d s" % (a.label, a.stall_timeout))
        time.sleep(a.interval)
    deadline = time.monotonic() + a.timeout
    while jobs_done() < a.jobs:
        if time.monotonic() > deadline or not all(proc_alive(p) for p in pids):
            die("%s: only %d of %d jobs finished" % (a.label, max(jobs_done(), 0), a.jobs))
        time.sleep(a.interval)
    t1 = time.monotonic()
    st = stats()
    secs = t1 - t0
    served = {sub: int(ac["requests"]) - int(ac.get("429", 0)) for sub, ac in st["accounts"].items()
              if int(ac["requests"]) > 0}
    busiest = max(served.values())
    bound = busiest * a.window_ms / a.limit / 1000.0
    rl = int(st["status"].get("429", 0))
    print("%s replicas=%d jobs=%d accounts=%d requests=%d busiest_account_requests=%d seconds=%.2f "
          "bound_s=%.2f ratio=%.3f http_429=%d peak_rss_mb=%s" % (
              a.label, len(pids), a.jobs, len(served), sum(served.values()), busiest, secs, bound,
              secs / bound, rl, "/".join("%.1f" % vm_hwm_mb(p) for p in pids)))


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)

    g = sp.add_parser("gen-raw")
    g.add_argument("--sim", required=True, help="simulator base URL, http://127.0.0.1:PORT")
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--tenants", type=int, default=100)
    g.add_argument("--samples", type=int, default=500, help="simulator assets used as templates")
    g.add_argument("--sample-customers", type=int, default=40)
    g.add_argument("--out", required=True)
    g.add_argument("--distinct", action="store_true",
                   help="every record its own machine (own MACs); default: the templates' MACs "
                        "repeat across the records made from one template")
    g.set_defaults(fn=cmd_gen_raw)

    t = sp.add_parser("add-tenants")
    t.add_argument("--sim", required=True)
    t.add_argument("--gateway", required=True)
    t.add_argument("--admin-token", required=True)
    t.add_argument("--count", type=int, required=True)
    t.add_argument("--customers", type=int, default=5)
    t.add_argument("--assets", type=int, default=100)
    t.add_argument("--shared", action="store_true", help="one simulator account for every tenant")
    t.set_defaults(fn=cmd_add_tenants)

    ws = sp.add_parser("watch-sync")
    ws.add_argument("--sim", required=True)
    ws.add_argument("--metrics", required=True, help="http://127.0.0.1:PORT,... of every fetcher replica")
    ws.add_argument("--pids", required=True, help="pid,... of every fetcher replica")
    ws.add_argument("--jobs", type=int, required=True)
    ws.add_argument("--limit", type=int, required=True, help="the simulator's requests per window")
    ws.add_argument("--window-ms", type=int, required=True, help="the simulator's window")
    ws.add_argument("--label", default="sync")
    ws.add_argument("--interval", type=float, default=0.02)
    ws.add_argument("--stall-timeout", type=float, default=60)
    ws.add_argument("--timeout", type=float, default=1800)
    ws.set_defaults(fn=cmd_watch_sync)

    st = sp.add_parser("setup-ticketing")
    st.add_argument("--sim", required=True)
    st.add_argument("--gateway", required=True)
    st.add_argument("--admin-token", required=True)
    st.add_argument("--orgs", type=int, default=50)
    st.set_defaults(fn=cmd_setup_ticketing)

    tl = sp.add_parser("ticket-latency")
    tl.add_argument("--sim", required=True)
    tl.add_argument("--log", required=True, help="the mtp-sim --log file of one run")
    tl.add_argument("--before", type=int, default=0, help="tickets the simulator held before the run")
    tl.add_argument("--rate", type=int, required=True)
    tl.add_argument("--timeout", type=int, default=300)
    tl.add_argument("--incidents", help="kcat -f '%%T\\t%%s\\n' dump of the incidents topic (stage split)")
    tl.add_argument("--label", default="", help="printed after 'tickets', e.g. pattern=bursty")
    tl.add_argument("--window-from-us", type=int, default=0, help="count only incidents accepted from (wall us)")
    tl.add_argument("--window-to-us", type=int, default=2 ** 62, help="... until (wall us)")
    tl.set_defaults(fn=cmd_ticket_latency)

    ms = sp.add_parser("metric-sum")
    ms.add_argument("--url", required=True, help="http://127.0.0.1:PORT/metrics")
    ms.add_argument("--name", required=True)
    ms.add_argument("--match", action="append", default=[], help='a label text that must appear, e.g. type="asset"')
    ms.set_defaults(fn=cmd_metric_sum)

    for name, fn in (("watch-normalizer", cmd_watch_normalizer), ("watch-fetcher", cmd_watch_fetcher)):
        w = sp.add_parser(name)
        w.add_argument("--metrics", required=True, help="http://127.0.0.1:PORT of the service")
        w.add_argument("--pid", type=int, required=True, help="the service's pid (peak RSS, liveness)")
        w.add_argument("--expect", type=int, required=True)
        w.add_argument("--interval", type=float, default=0.1)
        w.add_argument("--stall-timeout", type=float, default=180)
        w.add_argument("--cpu-pids", default="", help="name=pid,... whose CPU share to report")
        w.set_defaults(fn=fn)
        if name == "watch-normalizer":
            w.add_argument("--label", default="normalizer")
            w.add_argument("--more-metrics", default="", help="replicas: URL,... beside --metrics")
            w.add_argument("--more-pids", default="", help="replicas: pid,... beside --pid")
            w.add_argument("--rate-file")
        else:
            w.add_argument("--sim", required=True)
            w.add_argument("--tenants", type=int, required=True)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
