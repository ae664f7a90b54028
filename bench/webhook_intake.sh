#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# webhook_intake.sh — the gateway's incident webhook beside its ceiling: requests/s and latency
# with wrk on loopback, the gateway and a minimal HTTP → Kafka server of our own
# (bench/intake_ceiling.c: same evhttp server, same producer settings and delivery-report wakeup,
# 202 after the ack, nothing else) measured back to back in one run on the same broker.
# Every gateway request is a valid, signed incident that the gateway verifies (HMAC), validates,
# produces to raw.events and answers 202 only after Kafka's delivery report; the ceiling gets
# the same bytes on the same topic.
#
# Usage: bench/webhook_intake.sh [SECONDS] [RUNS]     defaults 10 and 3
# Env:   MSPSYNC_BUILD_DIR      build tree with the binaries (default <repo>/build)
#        BENCH_CONNS            connection counts (default "32 256")
#        BENCH_KEEP=1           keep the work directory afterwards
#        BENCH_CALLGRIND=1      run both servers under valgrind's callgrind and add the user-space
#                               instructions per request (all threads; throughput is then
#                               meaningless): a figure the machine's load does not move
#
# Starts its own Kafka, Redis, gateway and ceiling server on 127.0.0.1, one tenant with a
# webhook secret. For each run and each connection count: wrk -t1 -cC for SECONDS against the
# gateway, then against the ceiling. The medians of RUNS runs are compared (ratio = gateway /
# ceiling). On 2 cores wrk, the server, the broker and Redis share the machine: the CPU share
# of the server under test and load1 (the machine's load, other users included) are printed.
#
# Prints (the block after "== results ==" is meant for docs/benchmarks.md):
#   machine nproc=.. mem_gb=.. kernel=.. cpu=.. load1=..
#   run=R server=gateway|ceiling connections=C requests_per_s=X p50_ms=.. p99_ms=.. non_2xx=.. cpu=..
#       cpu_us_per_req=.. [ir_per_req=..]
#   median connections=C gateway_rps=.. gateway_p99_ms=.. ceiling_rps=.. ceiling_p99_ms=.. ratio=..
#       gateway_cpu_us_per_req=.. ceiling_cpu_us_per_req=.. [gateway_ir_per_req=.. ceiling_ir_per_req=..]
# cpu_us_per_req is the server's CPU time (user + system, every thread) over the requests wrk
# completed: what a request costs, which the machine's load moves far less than requests/s.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"

SECS=${1:-10}
RUNS=${2:-3}
CONNS_LIST=${BENCH_CONNS:-32 256}
[[ "$SECS" =~ ^[1-9][0-9]*$ && "$RUNS" =~ ^[1-9][0-9]*$ && "$SECS" -le 60 ]] || {
    echo "usage: $0 [SECONDS<=60] [RUNS]" >&2; exit 2; }
BUILD=${MSPSYNC_BUILD_DIR:-$ROOT/build}
GW_BIN=$BUILD/services/gateway/mspsync-gateway
CEIL_BIN=$BUILD/bench/mspsync-bench-intake-ceiling
for b in "$GW_BIN" "$CEIL_BIN"; do
    [ -x "$b" ] || { echo "$0: $b missing: build first" >&2; exit 1; }
done
WRAP=()
if [ "${BENCH_CALLGRIND:-0}" = 1 ]; then
    command -v callgrind_control >/dev/null || { echo "$0: valgrind not found" >&2; exit 1; }
    WRAP=(valgrind --tool=callgrind --instr-atstart=no)
fi
for c in wrk curl python3 redis-server java; do
    command -v "$c" >/dev/null || { echo "$0: $c not found (deploy/local/install-deps.sh)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/mspsync-bench-wh.XXXXXX")
. "$ROOT/bench/lib.sh"
RESULTS=$W/results.txt
machine_line | tee "$RESULTS" >&2

KAFKA_STARTED=1
BROKERS=$("$ROOT/deploy/local/kafka.sh" start --dir "$W/kafka")
REDIS_STARTED=1
REDIS=$("$ROOT/deploy/local/redis.sh" start --dir "$W/redis")
ADMIN=adm-$(python3 -c 'import os; print(os.urandom(12).hex())')
env MSPSYNC_KAFKA_BROKERS="$BROKERS" MSPSYNC_REDIS_URL="$REDIS" MSPSYNC_TOPIC_PREFIX="bench$$." \
    MSPSYNC_SECRET_KEY="$(python3 -c 'import os; print(os.urandom(32).hex())')" MSPSYNC_LOG_LEVEL=warn \
    MSPSYNC_HTTP_PORT=0 MSPSYNC_PORT_FILE="$W/gateway.port" MSPSYNC_ADMIN_TOKEN="$ADMIN" \
    "${WRAP[@]}" ${WRAP:+--callgrind-out-file="$W/cg.gateway.%p"} "$GW_BIN" >"$W/gateway.log" 2>&1 &
GW_PID=$!; PIDS+=("$GW_PID")
wait_file "$W/gateway.port" "$GW_PID" 30
GW=http://127.0.0.1:$(cat "$W/gateway.port")
for ((i = 0; i < 600; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$GW/readyz")" = 200 ] && break
    sleep 0.1
done
auth=(-H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json')
curl -fsS "${auth[@]}" -d '{"id":"wh","name":"Webhook bench"}' "$GW/v1/tenants" >/dev/null
WH_SECRET=$(curl -fsS "${auth[@]}" -d '{}' "$GW/v1/tenants/wh/webhooks/mtp/secret" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')

# One signed request for wrk (Lua string escaping via json.dumps, which is valid for Lua here).
python3 - "$WH_SECRET" >"$W/post.lua" <<'PY'
import hashlib, hmac, json, sys, time
secret = sys.argv[1]
body = json.dumps({"id": "inc-bench", "org_id": "org-0001", "org_name": "Bench Org", "alert_type": "device_offline",
                   "severity": "high", "status": "open", "subject": "WS-01", "title": "Device offline",
                   "description": "x" * 400, "occurred_at": "2026-11-23T10:00:00.000Z",
                   "link": "https://mtp.example/i/1"}, separators=(",", ":"))
ts = str(int(time.time()))
sig = "v1=" + hmac.new(secret.encode(), (ts + ".").encode() + body.encode(), hashlib.sha256).hexdigest()
print('wrk.method = "POST"')
print("wrk.body = %s" % json.dumps(body))
print('wrk.headers["Content-Type"] = "application/json"')
print('wrk.headers["X-MSPSync-Timestamp"] = "%s"' % ts)
print('wrk.headers["X-MSPSync-Signature"] = "%s"' % sig)
PY
# The ceiling: same broker, same topic (the gateway created it), same producer settings.
"${WRAP[@]}" ${WRAP:+--callgrind-out-file="$W/cg.ceiling.%p"} \
    "$CEIL_BIN" "$BROKERS" "bench$$.raw.events" "$W/ceiling.port" >"$W/ceiling.log" 2>&1 &
CEIL_PID=$!; PIDS+=("$CEIL_PID")
wait_file "$W/ceiling.port" "$CEIL_PID" 30
CEIL=http://127.0.0.1:$(cat "$W/ceiling.port")

# One measurement: SERVER_NAME PID URL CONNS RUN → a line in $RESULTS
measure() {
    local name=$1 pid=$2 url=$3 conns=$4 r=$5 cpu0 cpu1 ir=""
    log "run $r: $name, $SECS s, $conns connections"
    if [ ${#WRAP[@]} -gt 0 ]; then  # count from here: instrumentation on, counters zeroed
        callgrind_control -i on "$pid" >/dev/null && callgrind_control -z "$pid" >/dev/null
    fi
    cpu0=$(awk '{print $14+$15}' "/proc/$pid/stat")
    run wrk -t1 -c"$conns" -d"${SECS}s" --latency -s "$W/post.lua" "$url" >"$W/wrk.out"
    cpu1=$(awk '{print $14+$15}' "/proc/$pid/stat")
    if [ ${#WRAP[@]} -gt 0 ]; then  # the dump it writes now holds this measurement only
        callgrind_control -d "$pid" >/dev/null
        ir=$(awk '/^totals:/ {print $2}' "$(ls -t "$W"/cg."$name"."$pid".* | head -1)")
    fi
    python3 - "$W/wrk.out" "$name" "$conns" "$r" "$SECS" "$cpu0" "$cpu1" "$(getconf CLK_TCK)" \
        "$(cut -d' ' -f1 /proc/loadavg)" "$ir" >>"$RESULTS" <<'PY'
import re, sys
out, name, conns, r, secs, c0, c1, tck, load = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), sys.argv[9]
ir = int(sys.argv[10]) if sys.argv[10] else None
def ms(v):
    n, unit = float(re.match(r"([\d.]+)", v).group(1)), re.search(r"(us|ms|s)$", v).group(1)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)", out, re.M))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
done = int(re.search(r"(\d+) requests in", out).group(1))
print("run=%d server=%s connections=%d requests_per_s=%.0f p50_ms=%.2f p99_ms=%.2f non_2xx=%s cpu=%.0f%% load1=%s cpu_us_per_req=%.1f%s" % (
    r, name, conns, rps, ms(pct["50"]), ms(pct["99"]), non2xx.group(1) if non2xx else 0,
    100.0 * (c1 - c0) / tck / secs, load, 1e6 * (c1 - c0) / tck / max(done, 1),
    "" if ir is None else " ir_per_req=%d" % (ir // max(done, 1))))
PY
    tail -1 "$RESULTS" >&2
}

log "warm-up: 2 s each (connections, the producer's first batches; not counted)"
for url in "$GW/v1/webhooks/mtp/wh" "$CEIL/v1/webhooks/mtp/wh"; do
    run wrk -t1 -c32 -d2s -s "$W/post.lua" "$url" >/dev/null
done
for ((r = 1; r <= RUNS; r++)); do
    for c in $CONNS_LIST; do
        measure gateway "$GW_PID" "$GW/v1/webhooks/mtp/wh" "$c" "$r"
        measure ceiling "$CEIL_PID" "$CEIL/v1/webhooks/mtp/wh" "$c" "$r"
    done
done
python3 - "$RESULTS" >>"$RESULTS.medians" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in open(sys.argv[1]) if l.startswith("run=")]
for c in sorted({int(r["connections"]) for r in rows}):
    def med(server, field):
        return statistics.median(float(r[field].rstrip("%")) for r in rows
                                 if r["server"] == server and int(r["connections"]) == c)
    g, k = med("gateway", "requests_per_s"), med("ceiling", "requests_per_s")
    ir = "ir_per_req" in rows[0]
    print("median connections=%d gateway_rps=%.0f gateway_p99_ms=%.2f ceiling_rps=%.0f ceiling_p99_ms=%.2f ratio=%.2f gateway_cpu_us_per_req=%.1f ceiling_cpu_us_per_req=%.1f%s" % (
        c, g, med("gateway", "p99_ms"), k, med("ceiling", "p99_ms"), g / k if k else 0,
        med("gateway", "cpu_us_per_req"), med("ceiling", "cpu_us_per_req"),
        " gateway_ir_per_req=%.0f ceiling_ir_per_req=%.0f" % (med("gateway", "ir_per_req"), med("ceiling", "ir_per_req")) if ir else ""))
PY
cat "$RESULTS.medians" >>"$RESULTS"
[ "$(grep -c 'non_2xx=0 ' "$RESULTS")" = "$(grep -c '^run=' "$RESULTS")" ] ||
    log "WARNING: some answers were not 2xx (see the non_2xx fields)"

echo
echo "== results =="
cat "$RESULTS"
OK=1
