#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# billing.sh — usage billing's two rates: usage reports/s the gateway accepts (signed batches,
# 202 after Kafka's ack) and marks/s the billing service computes (reports applied to Redis).
#
# Usage: bench/billing.sh [SECONDS] [CONNECTIONS] [BATCH]      defaults 5, 4 and 100
# Env:   MSPSYNC_BUILD_DIR   build tree with the binaries (default <repo>/build)
#        BENCH_KAFKA_DIR     state dir of a running broker (deploy/local/kafka.sh) to use instead
#                            of starting one
#        BENCH_KEEP=1        keep the work directory afterwards
#
# Phase 1 (intake): the gateway alone; wrk -t1 -c CONNECTIONS posts for SECONDS one signed batch
# of BATCH reports (BATCH distinct org × product marks of one tenant). Phase 2 (marks): then one
# billing service starts on the backlog and the clock runs until Redis counts every accepted report
# applied (billing:stats reports_applied), so marks/s is the drain rate of one replica, Kafka
# consume + one Lua script per report. On 2 cores wrk, the gateway, the broker and Redis share the
# machine in phase 1; the CPU line says who used what.
#
# Prints (the block after "== results ==" is meant for docs/benchmarks.md):
#   machine nproc=.. mem_gb=.. kernel=.. cpu=..
#   intake seconds=S connections=C batch=B requests_per_s=X reports_per_s=Y p50_ms=.. p99_ms=.. non_2xx=..
#   marks reports=N seconds=T marks_per_s=Z billing_cpu_share=..
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"

SECS=${1:-5}
CONNS=${2:-4}
BATCH=${3:-100}
[[ "$SECS" =~ ^[1-9][0-9]*$ && "$CONNS" =~ ^[1-9][0-9]*$ && "$BATCH" =~ ^[1-9][0-9]*$ &&
   "$SECS" -le 240 && "$BATCH" -le 1000 ]] || {
    echo "usage: $0 [SECONDS<=240] [CONNECTIONS] [BATCH<=1000]" >&2; exit 2; }
BUILD=${MSPSYNC_BUILD_DIR:-$ROOT/build}
GW_BIN=$BUILD/services/gateway/mspsync-gateway
BL_BIN=$BUILD/services/billing/mspsync-billing
for b in "$GW_BIN" "$BL_BIN"; do [ -x "$b" ] || { echo "$0: $b missing: build first" >&2; exit 1; }; done
for c in wrk curl python3 redis-server redis-cli java; do
    command -v "$c" >/dev/null || { echo "$0: $c not found (deploy/local/install-deps.sh)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/mspsync-bench-billing.XXXXXX")
. "$ROOT/bench/lib.sh"
RESULTS=$W/results.txt
machine_line | tee "$RESULTS" >&2

if [ -n "${BENCH_KAFKA_DIR:-}" ]; then
    BROKERS=$(cat "$BENCH_KAFKA_DIR/bootstrap")
else
    KAFKA_STARTED=1
    BROKERS=$("$ROOT/deploy/local/kafka.sh" start --dir "$W/kafka")
fi
REDIS_STARTED=1
REDIS=$("$ROOT/deploy/local/redis.sh" start --dir "$W/redis")
ADMIN=adm-$(python3 -c 'import os; print(os.urandom(12).hex())')
KEY=$(python3 -c 'import os; print(os.urandom(32).hex())')
COMMON=(MSPSYNC_KAFKA_BROKERS="$BROKERS" MSPSYNC_REDIS_URL="$REDIS" MSPSYNC_TOPIC_PREFIX="bench$$."
        MSPSYNC_SECRET_KEY="$KEY" MSPSYNC_LOG_LEVEL=warn)
env "${COMMON[@]}" MSPSYNC_HTTP_PORT=0 MSPSYNC_PORT_FILE="$W/gateway.port" \
    MSPSYNC_ADMIN_TOKEN="$ADMIN" "$GW_BIN" >"$W/gateway.log" 2>&1 &
GW_PID=$!; PIDS+=("$GW_PID")
wait_file "$W/gateway.port" "$GW_PID" 30
GW=http://127.0.0.1:$(cat "$W/gateway.port")
for ((i = 0; i < 600; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$GW/readyz")" = 200 ] && break
    sleep 0.1
done
auth=(-H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json')
curl -fsS "${auth[@]}" -d '{"id":"bl","name":"Billing bench"}' "$GW/v1/tenants" >/dev/null
curl -fsS "${auth[@]}" -X PUT -d '{"enabled":true}' "$GW/v1/tenants/bl/billing" >/dev/null
WH_SECRET=$(curl -fsS "${auth[@]}" -d '{}' "$GW/v1/tenants/bl/webhooks/mtp/secret" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')

python3 - "$WH_SECRET" "$BATCH" >"$W/post.lua" <<'PY'
import datetime, hashlib, hmac, json, sys, time
secret, n = sys.argv[1], int(sys.argv[2])
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
reports = [{"org_id": "org-%04d" % (i // 3 + 1), "org_name": "Bench Org %d" % (i // 3 + 1),
            "product": "SKU-%d" % (i % 3), "count": 10 + i, "as_of": now} for i in range(n)]
body = json.dumps({"reports": reports} if n > 1 else reports[0], separators=(",", ":"))
ts = str(int(time.time()))
sig = "v1=" + hmac.new(secret.encode(), (ts + ".").encode() + body.encode(), hashlib.sha256).hexdigest()
print('wrk.method = "POST"')
print("wrk.body = %s" % json.dumps(body))
print('wrk.headers["Content-Type"] = "application/json"')
print('wrk.headers["X-MSPSync-Timestamp"] = "%s"' % ts)
print('wrk.headers["X-MSPSync-Signature"] = "%s"' % sig)
PY
log "intake: wrk $SECS s, $CONNS connections, $BATCH reports per request"
cpu0=$(awk '{print $14+$15}' "/proc/$GW_PID/stat")
run wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$W/post.lua" "$GW/v1/webhooks/mtp/bl/usage" >"$W/wrk.out"
cpu1=$(awk '{print $14+$15}' "/proc/$GW_PID/stat")
cat "$W/wrk.out" >&2
ACCEPTED=$(curl -fsS "$GW/metrics" | awk '/^mspsync_http_requests_total\{.*route="webhook_usage".*code="202"/ { s += $2 } END { printf "%d", s }')
TOTAL=$((ACCEPTED * BATCH))
python3 - "$W/wrk.out" "$SECS" "$CONNS" "$BATCH" "$cpu0" "$cpu1" "$(getconf CLK_TCK)" "$ACCEPTED" >>"$RESULTS" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
secs, conns, batch, c0, c1, tck, acc = (int(x) for x in sys.argv[2:9])
def ms(v):
    n, unit = float(re.match(r"([\d.]+)", v).group(1)), re.search(r"(us|ms|s)$", v).group(1)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)", out, re.M))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print("intake seconds=%d connections=%d batch=%d requests_per_s=%.0f reports_per_s=%.0f p50_ms=%.2f p99_ms=%.2f non_2xx=%s gateway_cpu_share=%.0f%%" % (
    secs, conns, batch, acc / secs, acc * batch / secs, ms(pct["50"]), ms(pct["99"]),
    non2xx.group(1) if non2xx else 0, 100.0 * (c1 - c0) / tck / secs))
PY

log "marks: one billing service drains $TOTAL reports"
REDIS_PORT=${REDIS##*:}
t0=$(date +%s.%N)
env "${COMMON[@]}" MSPSYNC_METRICS_PORT=0 MSPSYNC_PORT_FILE="$W/billing.port" \
    MSPSYNC_GROUP="bench$$-billing" MSPSYNC_BILLING_SCHEDULE_CHECK_MS=0 "$BL_BIN" >"$W/billing.log" 2>&1 &
BL_PID=$!; PIDS+=("$BL_PID")
done_n=0
for ((i = 0; i < 6000; i++)); do
    done_n=$(redis-cli -p "$REDIS_PORT" HGET 'mspsync:{bl}:billing:stats' reports_applied)
    [ "${done_n:-0}" -ge "$TOTAL" ] && break
    msp_pid_alive "$BL_PID" || { log "billing exited"; exit 1; }
    sleep 0.1
done
t1=$(date +%s.%N)
bcpu=$(awk '{print $14+$15}' "/proc/$BL_PID/stat")
python3 - "$TOTAL" "${done_n:-0}" "$t0" "$t1" "$bcpu" "$(getconf CLK_TCK)" >>"$RESULTS" <<'PY'
import sys
total, done = int(sys.argv[1]), int(sys.argv[2])
t0, t1, cpu, tck = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
secs = t1 - t0
print("marks reports=%d applied=%d seconds=%.1f marks_per_s=%.0f billing_cpu_share=%.0f%% (start-up included)" % (
    total, done, secs, done / secs, 100.0 * cpu / tck / secs))
PY
echo
echo "== results =="
cat "$RESULTS"
OK=1
