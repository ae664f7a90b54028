#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# webhook_intake.sh — the gateway's incident webhook alone: requests/s and latency with wrk on
# loopback. Every request is a valid, signed incident that the gateway verifies (HMAC), validates,
# produces to raw.events and answers 202 only after Kafka's delivery report.
#
# Usage: bench/webhook_intake.sh [SECONDS] [CONNECTIONS]     defaults 20 and 32
# Env:   MSPSYNC_BUILD_DIR      build tree with the binaries (default <repo>/build)
#        BENCH_KEEP=1           keep the work directory afterwards
#
# Starts its own Kafka, Redis and gateway on 127.0.0.1 (no normalizer: intake only), one tenant
# with a webhook secret, and runs wrk -t1 -c CONNECTIONS for SECONDS with one signed body (its
# timestamp stays inside the 300 s replay window for runs up to 4 minutes). On 2 cores wrk, the
# gateway, the broker and Redis share the machine: the CPU line says who used what.
#
# Prints (the block after "== results ==" is meant for docs/benchmarks.md):
#   machine nproc=.. mem_gb=.. kernel=.. cpu=..
#   intake seconds=S connections=C requests=N requests_per_s=X p50_ms=.. p99_ms=.. non_2xx=..
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"

SECS=${1:-20}
CONNS=${2:-32}
[[ "$SECS" =~ ^[1-9][0-9]*$ && "$CONNS" =~ ^[1-9][0-9]*$ && "$SECS" -le 240 ]] || {
    echo "usage: $0 [SECONDS<=240] [CONNECTIONS]" >&2; exit 2; }
BUILD=${MSPSYNC_BUILD_DIR:-$ROOT/build}
GW_BIN=$BUILD/services/gateway/mspsync-gateway
[ -x "$GW_BIN" ] || { echo "$0: $GW_BIN missing: build first" >&2; exit 1; }
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
    "$GW_BIN" >"$W/gateway.log" 2>&1 &
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
log "wrk: $SECS s, $CONNS connections"
cpu0=$(awk '{print $14+$15}' "/proc/$GW_PID/stat")
run wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$W/post.lua" "$GW/v1/webhooks/mtp/wh" >"$W/wrk.out"
cpu1=$(awk '{print $14+$15}' "/proc/$GW_PID/stat")
cat "$W/wrk.out" >&2
python3 - "$W/wrk.out" "$SECS" "$CONNS" "$cpu0" "$cpu1" "$(getconf CLK_TCK)" >>"$RESULTS" <<'PY'
import re, sys
out, secs, conns, c0, c1, tck = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def ms(v):
    n, unit = float(re.match(r"([\d.]+)", v).group(1)), re.search(r"(us|ms|s)$", v).group(1)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)", out, re.M))
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print("intake seconds=%d connections=%d requests=%d requests_per_s=%.0f p50_ms=%.2f p99_ms=%.2f non_2xx=%s gateway_cpu_share=%.0f%%" % (
    secs, conns, reqs, rps, ms(pct["50"]), ms(pct["99"]), non2xx.group(1) if non2xx else 0, 100.0 * (c1 - c0) / tck / secs))
PY

echo
echo "== results =="
cat "$RESULTS"
OK=1
