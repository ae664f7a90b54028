#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# tickets.sh — incident → ticket latency: webhook accepted (the 202 the sender got) → ticket POST
# received by the Syncro simulator, at a steady webhook rate.
#
# Usage: bench/tickets.sh [SECONDS] [RATE ...]     defaults 30 and "200 500"
# Env:   MSPSYNC_BUILD_DIR      build tree with the binaries (default <repo>/build)
#        BENCH_KEEP=1           keep the work directory (logs, Kafka data) afterwards
#
# Starts its own Kafka, Redis, syncro-sim (rate limit off), gateway, fetcher, normalizer and
# ticket-creator on 127.0.0.1; syncs one tenant, turns ticketing on, maps 50 orgs; then, per RATE,
# runs mtp-sim for SECONDS at RATE events/s (70 % new, 20 % re-fires, 10 % resolves, one fresh
# id prefix per run) and measures, for every new incident, the time from its 202 (mtp-sim's clock)
# to the simulator receiving its ticket POST (the simulator's clock; same machine). A 5-second warm-up
# at 100/s runs first and is not measured. The services'
# shared Syncro bucket is set to 10,000 requests/s so it never delays a call: the figure is our
# pipeline (gateway → raw.records → normalizer → incidents → ticket-creator → Syncro), not
# Syncro's 180/min. Everything it started is stopped on exit, also on failure.
#
# Prints (the block after "== results ==" is meant for docs/benchmarks.md):
#   machine nproc=.. mem_gb=.. kernel=.. cpu=..
#   tickets rate=R sent_rate=.. events=.. new_tickets=.. latency_ms_p50=.. p99=.. max=..
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"

SECS=${1:-30}
shift || true
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(200 500)
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECONDS] [RATE ...]" >&2; exit 2; }
BUILD=${MSPSYNC_BUILD_DIR:-$ROOT/build}
declare -A BIN=([gw]=services/gateway/mspsync-gateway [fe]=services/fetcher/mspsync-fetcher
                [nz]=services/normalizer/mspsync-normalizer [tc]=services/ticket-creator/mspsync-ticket-creator
                [sim]=tests/simulators/syncro-sim [mtp]=tests/simulators/mtp-sim)
for k in "${!BIN[@]}"; do
    BIN[$k]=$BUILD/${BIN[$k]}
    [ -x "${BIN[$k]}" ] || { echo "$0: ${BIN[$k]} missing: build first (cmake --build $BUILD -j2)" >&2; exit 1; }
done
for c in curl python3 redis-server java; do
    command -v "$c" >/dev/null || { echo "$0: $c not found (deploy/local/install-deps.sh)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/mspsync-bench-tk.XXXXXX")
. "$ROOT/bench/lib.sh"
RESULTS=$W/results.txt
machine_line | tee "$RESULTS" >&2

log "starting Kafka, Redis, simulator"
"${BIN[sim]}" --port 0 --port-file "$W/sim.port" --seed 7 >"$W/sim.log" 2>&1 &
SIM_PID=$!; PIDS+=("$SIM_PID")
KAFKA_STARTED=1
BROKERS=$("$ROOT/deploy/local/kafka.sh" start --dir "$W/kafka")
REDIS_STARTED=1
REDIS=$("$ROOT/deploy/local/redis.sh" start --dir "$W/redis")
wait_file "$W/sim.port" "$SIM_PID" 20
SIM=http://127.0.0.1:$(cat "$W/sim.port")
curl -fsS -X PUT -H 'Content-Type: application/json' -d '{"rate_limit":0}' "$SIM/_sim/config" >/dev/null
PREFIX="bench$(date +%s)$$."
SECRET=$(python3 -c 'import os; print(os.urandom(32).hex())')
ADMIN=adm-$(python3 -c 'import os; print(os.urandom(12).hex())')
common_env=(MSPSYNC_KAFKA_BROKERS="$BROKERS" MSPSYNC_REDIS_URL="$REDIS" MSPSYNC_TOPIC_PREFIX="$PREFIX"
            MSPSYNC_SECRET_KEY="$SECRET" MSPSYNC_LOG_LEVEL=info
            MSPSYNC_SYNCRO_RATE_MILLI=10000000 MSPSYNC_SYNCRO_BURST=1000)

start() {        # NAME BINARY [ENV...]: start a service with a port file, wait for it
    local name=$1 bin=$2
    shift 2
    env "${common_env[@]}" "$@" MSPSYNC_PORT_FILE="$W/$name.port" "$bin" >"$W/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_file "$W/$name.port" "$pid" 30
}
start gateway "${BIN[gw]}" MSPSYNC_HTTP_PORT=0 MSPSYNC_ADMIN_TOKEN="$ADMIN"
GW=http://127.0.0.1:$(cat "$W/gateway.port")
start fetcher "${BIN[fe]}" MSPSYNC_METRICS_PORT=0 MSPSYNC_GROUP="${PREFIX}fetcher" MSPSYNC_SCHEDULE=0
start normalizer "${BIN[nz]}" MSPSYNC_METRICS_PORT=0 MSPSYNC_GROUP="${PREFIX}normalizer"
start ticket-creator "${BIN[tc]}" MSPSYNC_METRICS_PORT=0 MSPSYNC_GROUP="${PREFIX}ticket-creator"
for ((i = 0; i < 600; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$GW/readyz")" = 200 ] && break
    sleep 0.1
done
log "syncing one tenant, configuring ticketing"
TK_SECRET=$(python3 "$HERE/benchtool.py" setup-ticketing --sim "$SIM" --gateway "$GW" --admin-token "$ADMIN")

# Warm-up, not measured: the broker's JIT, first-use metadata and connections would otherwise land
# in the first rate's tail.
log "warm-up: 5 s at 100/s"
run "${BIN[mtp]}" --url "$GW/v1/webhooks/mtp/tk" --secret "$TK_SECRET" --count 500 --rate 100 \
    --concurrency 64 --orgs 50 --seed 1 --id-prefix warm --log "$W/mtp-warm.jsonl" >/dev/null
python3 "$HERE/benchtool.py" ticket-latency --sim "$SIM" --log "$W/mtp-warm.jsonl" --rate 100 >/dev/null
sleep 3

for rate in "${RATES[@]}"; do
    before=$(curl -fsS "$SIM/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accounts"]["tk"]["tickets_created"])')
    log "rate $rate/s for $SECS s"
    run "${BIN[mtp]}" --url "$GW/v1/webhooks/mtp/tk" --secret "$TK_SECRET" --count $((rate * SECS)) \
        --rate "$rate" --concurrency 64 --orgs 50 --mix new=70,refire=20,resolve=10 --seed "$rate" \
        --id-prefix "r$rate" --log "$W/mtp-$rate.jsonl" >"$W/mtp-$rate.out"
    python3 "$HERE/benchtool.py" ticket-latency --sim "$SIM" --log "$W/mtp-$rate.jsonl" \
        --before "$before" --rate "$rate" | tee -a "$RESULTS" >&2
    sleep 5   # let re-fires and resolves of this run drain before the next rate starts
done

echo
echo "== results =="
cat "$RESULTS"
OK=1
