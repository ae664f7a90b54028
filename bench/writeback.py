#!/usr/bin/env python3
"""
writeback.py — date edits written back to ConnectWise RMM, end to end, and the write-back's RSS.

Usage: bench/writeback.sh [EDITS] [DEVICES]      (defaults 5000 and 5000)

Starts its own Kafka broker (deploy/local/kafka.sh, temporary directory), and through the
integration-test harness a Redis, the ConnectWise RMM simulator (rate limit off: the default), the
gateway, fetcher, normalizer and write-back, all on 127.0.0.1. One tenant with DEVICES devices is
synced with write-back on for both dates. Then two measurements:

  end_to_end  EDITS edits sent to the gateway (PUT …/assets/{id}/dates, 16 client threads) while
              the write-back runs: from the first request to the simulator holding the last value
              (its custom_field_values_written counter): edits/s.
  drain       the write-back stopped, EDITS more edits queued on date.changes (through the same
              gateway → normalizer path), then the write-back started: from its start to the last
              value written: what one write-back process writes per second when it has a backlog.

The write-back's peak RSS (VmHWM) is read from /proc after each run. Prints the results block
meant for docs/benchmarks.md. Everything it started is stopped on exit, also on failure.
"""
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("MSPSYNC_BUILD_DIR", os.path.join(ROOT, "build"))
KDIR = tempfile.mkdtemp(prefix="mspsync-bench-wb-")
os.environ["MSPSYNC_BUILD_DIR"] = BUILD
os.environ["MSPSYNC_SOURCE_DIR"] = ROOT
os.environ["MSPSYNC_TEST_KAFKA_DIR"] = os.path.join(KDIR, "kafka")
os.environ["MSPSYNC_TEST_WORK"] = os.path.join(KDIR, "work")
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))

import harness  # noqa: E402
from harness import Stack, wait_until  # noqa: E402
import cwrmm  # noqa: E402

TENANT, PARTNER = "bench", "pbench"


def vm_hwm_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def machine_line():
    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1024 / 1024
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return "machine nproc=%d mem_gb=%.0f kernel=%s cpu=%s" % (os.cpu_count(), mem,
                                                             os.uname().release, cpu)


def send_edits(s, ids, base_year):
    errors = []

    def worker(chunk):
        for i, aid in chunk:
            st, js, _ = s.api("PUT", "/v1/tenants/%s/assets/%s/dates" % (TENANT, aid),
                              {"purchase_date": "%d-%02d-%02d" % (base_year, 1 + i % 12, 1 + i % 28),
                               "warranty_expires": "%d-%02d-%02d" % (base_year + 5, 1 + i % 12,
                                                                     1 + i % 28)})
            if st != 202:
                errors.append((st, js))
    items = list(enumerate(ids))
    threads = [threading.Thread(target=worker, args=(items[t::16],)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("edits refused: %r" % errors[:3])


def values_written(s):
    return cwrmm.cw_partner_stats(s, PARTNER)["custom_field_values_written"]


def main():
    edits = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    devices = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    if edits > devices:
        raise SystemExit("EDITS must not exceed DEVICES (one edit per device and run)")
    subprocess.run([os.path.join(ROOT, "deploy/local/kafka.sh"), "start", "--dir",
                    os.environ["MSPSYNC_TEST_KAFKA_DIR"]], check=True, stdout=subprocess.DEVNULL)
    s = Stack("bench-writeback")
    try:
        s.start_redis()
        s.start_sim()
        cwrmm.start_cwrmm_sim(s)
        s.start_gateway()
        s.start_normalizer(MSPSYNC_BATCH_SIZE="1000")
        s.start_fetcher()
        cwrmm.add_partner(s, PARTNER, devices, companies=max(4, devices // 100))
        s.add_tenant(TENANT)
        st, js, _ = cwrmm.connect_cwrmm(s, TENANT, PARTNER,
                                        writeback={"purchase_date": True, "warranty_expires": True})
        assert st in (200, 201), (st, js)
        cwrmm.wait_cw_synced(s, TENANT, js["job_id"], timeout=600)
        ids = sorted(cwrmm.all_assets(s, TENANT))
        results = [machine_line()]

        wb = cwrmm.start_write_back(s)
        wait_until(lambda: harness.http("GET", wb.url("/readyz"))[0] == 200, 60, "write-back ready")
        t0 = time.time()
        send_edits(s, ids[:edits], 2019)
        sent = time.time() - t0
        wait_until(lambda: values_written(s) >= 2 * edits, 900, "end-to-end edits written",
                   interval=0.2)
        e2e = time.time() - t0
        results.append("writeback end_to_end edits=%d send_s=%.2f total_s=%.2f edits_per_s=%.0f "
                       "rss_mb=%.1f" % (edits, sent, e2e, edits / e2e, vm_hwm_mb(wb.proc.pid)))

        wb.stop()
        before = values_written(s)
        dc = sum(s.topic_end_offsets("date.changes").values())
        send_edits(s, ids[:edits], 2020)
        wait_until(lambda: sum(s.topic_end_offsets("date.changes").values()) >= dc + edits, 600,
                   "edits on date.changes", interval=0.2)
        s.restart(wb)
        t1 = time.time()
        wait_until(lambda: values_written(s) >= before + 2 * edits, 900, "backlog written",
                   interval=0.1)
        drain = time.time() - t1
        st = cwrmm.cw_partner_stats(s, PARTNER)
        results.append("writeback drain edits=%d total_s=%.2f edits_per_s=%.0f rss_mb=%.1f "
                       "puts=%d tokens=%d" % (edits, drain, edits / drain, vm_hwm_mb(wb.proc.pid),
                                              st["custom_field_puts"], st["tokens_issued"]))
        print("== results ==")
        print("\n".join(results))
    finally:
        problems = s.stop_all()
        subprocess.run([os.path.join(ROOT, "deploy/local/kafka.sh"), "stop", "--dir",
                        os.environ["MSPSYNC_TEST_KAFKA_DIR"], "--purge"], stdout=subprocess.DEVNULL)
        if problems:
            print("problems: %r" % problems, file=sys.stderr)
        if not os.environ.get("BENCH_KEEP"):
            subprocess.run(["rm", "-rf", KDIR])


if __name__ == "__main__":
    main()
