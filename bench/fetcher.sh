#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# fetcher.sh — fetcher requests/s and memory against the Syncro simulator (its rate limit off), with
# many tenants whose full-sync jobs all wait in sync.jobs when the fetcher starts.
#
# Usage: bench/fetcher.sh [TENANTS] [ASSETS_PER_TENANT]     defaults 1000 and 100
# Env:   BENCH_CUSTOMERS=5      customers per simulated account (one /customers page up to 25)
#        MSPSYNC_BUILD_DIR      build tree with the binaries (default <repo>/build, as made by tests/run.sh or deploy/local/demo.sh)
#        BENCH_KEEP=1           keep the work directory (logs, Kafka data) afterwards
#
# Starts its own Kafka (deploy/local/kafka.sh), Redis (deploy/local/redis.sh), syncro-sim and
# gateway on 127.0.0.1; creates TENANTS simulator accounts and adds each tenant's Syncro
# integration through the gateway (each PUT checks GET /me and queues a full-sync job); stops the
# gateway; only then starts one fetcher, so that the measurement is the fetcher alone draining the
# queued jobs. No normalizer runs. Everything it started is stopped on exit, also on failure.
#
# Expected vendor requests: TENANTS * (1 customers page + ceil(ASSETS_PER_TENANT / 50) asset pages),
# counted by the simulator (/_sim/stats "paths": /customers + /customer_assets; the gateway's /me
# checks are not counted).
#
# Prints (the block after "== results ==" is meant to be pasted into docs/benchmarks.md):
#   machine nproc=.. mem_gb=.. kernel=.. cpu=..
#   fetcher tenants=T requests=R seconds=S requests_per_s=X peak_rss_mb=M max_concurrent_jobs=J
#   fetcher jobs_done=.. all_jobs_done_after_s=.. records=.. sim_status=..
#   fetcher cpu_share_of_one_core fetcher=..% sim=..% kafka=..% redis=..%
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"

TENANTS=${1:-1000}
ASSETS=${2:-100}
[[ "$TENANTS" =~ ^[1-9][0-9]*$ && "$ASSETS" =~ ^[0-9]+$ ]] || {
    echo "usage: $0 [TENANTS] [ASSETS_PER_TENANT]" >&2; exit 2; }
CUSTOMERS=${BENCH_CUSTOMERS:-5}
if [ "$CUSTOMERS" -lt 1 ] || [ "$CUSTOMERS" -gt 25 ]; then echo "$0: BENCH_CUSTOMERS must be 1..25" >&2; exit 2; fi
BUILD=${MSPSYNC_BUILD_DIR:-$ROOT/build}
GW_BIN=$BUILD/services/gateway/mspsync-gateway
FE_BIN=$BUILD/services/fetcher/mspsync-fetcher
SIM_BIN=$BUILD/tests/simulators/syncro-sim
for b in "$GW_BIN" "$FE_BIN" "$SIM_BIN"; do
    [ -x "$b" ] || { echo "$0: $b missing: build first (cmake --build $BUILD -j2)" >&2; exit 1; }
done
for c in kcat curl python3 redis-server java; do
    command -v "$c" >/dev/null || { echo "$0: $c not found (deploy/local/install-deps.sh)" >&2; exit 1; }
done
EXPECT=$((TENANTS * (1 + (ASSETS + 49) / 50)))

W=$(mktemp -d "${TMPDIR:-/tmp}/mspsync-bench-fe.XXXXXX")
. "$ROOT/bench/lib.sh"

RESULTS=$W/results.txt
machine_line | tee "$RESULTS" >&2
log "work dir $W; tenants=$TENANTS assets/tenant=$ASSETS customers/tenant=$CUSTOMERS expected requests=$EXPECT"

# --- Kafka, Redis, simulator --------------------------------------------------------------------
start_syncro_stack "$SIM_BIN"
KAFKA_PID=$(cat "$W/kafka/kafka.pid")
REDIS_PID=$(cat "$W/redis/redis.pid")
log "brokers $BROKERS redis $REDIS simulator $SIM prefix $PREFIX"

# --- gateway: tenants + integrations, one queued full-sync job each -------------------------------
start_setup_gateway "$GW_BIN"
log "adding $TENANTS tenants"
run python3 "$HERE/benchtool.py" add-tenants --sim "$SIM" --gateway "$GW" --admin-token "$ADMIN" \
    --count "$TENANTS" --customers "$CUSTOMERS" --assets "$ASSETS"
stop_pid "$GW_PID"

# --- fetcher: drains the queued jobs -------------------------------------------------------------
# RATE_MILLI is at its maximum (10000000 = 10,000 requests/s per account) and BURST high, so the
# shared GCRA bucket is still consulted on every request but never makes one wait.
log "starting the fetcher"
env "${common_env[@]}" MSPSYNC_METRICS_PORT=0 MSPSYNC_PORT_FILE="$W/fetcher.port" \
    MSPSYNC_GROUP="${PREFIX}bench-fetcher" MSPSYNC_SYNCRO_RATE_MILLI=10000000 MSPSYNC_SYNCRO_BURST=1000 \
    MSPSYNC_SCHEDULE=0 "$FE_BIN" >"$W/fetcher.log" 2>&1 &
FE_PID=$!; PIDS+=("$FE_PID")
wait_file "$W/fetcher.port" "$FE_PID" 30
run python3 "$HERE/benchtool.py" watch-fetcher --sim "$SIM" --metrics "http://127.0.0.1:$(cat "$W/fetcher.port")" \
    --pid "$FE_PID" --expect "$EXPECT" --tenants "$TENANTS" \
    --cpu-pids "fetcher=$FE_PID,sim=$SIM_PID,kafka=$KAFKA_PID,redis=$REDIS_PID" >"$W/fetcher.out"
cat "$W/fetcher.out" >&2
grep '^fetcher tenants=' "$W/fetcher.out" >>"$RESULTS"
grep -v '^fetcher tenants=' "$W/fetcher.out" >"$W/details.txt"
sim_cpu=$(ps -o %cpu= -p "$SIM_PID" | tr -d ' ')
echo "simulator ps_%cpu_since_start=$sim_cpu" >>"$W/details.txt"

echo
echo "== results =="
cat "$RESULTS"
echo "== details =="
cat "$W/details.txt"
OK=1
