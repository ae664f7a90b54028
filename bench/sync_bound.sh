#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# sync_bound.sh — how close a full Syncro sync comes to the time the vendor's rate limit allows,
# with one or several fetcher replicas, tenants sharing one Syncro account or each its own.
#
# Usage: bench/sync_bound.sh [ASSETS] [TENANTS]          defaults 15000 and 1
# Env:   BENCH_REPLICAS=1        fetcher processes in one consumer group (1..8)
#        BENCH_ACCOUNTS=shared   shared: every tenant's integration is the same Syncro account (one
#                                bucket, one limit); separate: each tenant its own account
#        BENCH_SPEEDUP=10        the simulator's window is 60 s / SPEEDUP (180 requests per window,
#                                Syncro's limit, compressed in time) and the fetchers' rate setting
#                                is the shipped default scaled alike (MSPSYNC_SYNCRO_RATE_MILLI
#                                2900 x SPEEDUP, burst 3): the same ratios as real traffic, in a
#                                tenth of the time
#        BENCH_CUSTOMERS=5       customers per simulated account
#        MSPSYNC_BUILD_DIR, BENCH_KEEP=1 as the other scripts
#
# ASSETS are spread over the tenants (each tenant's account holds ASSETS / TENANTS; with shared
# accounts that one account holds them). The gateway adds the tenants and their integrations with
# the simulator's limit off (each PUT queues a full sync); then the limit goes on, the
# simulator's counters are reset and the replicas start. The window runs from the first vendor
# request to the last job done; the bound is the busiest account's served requests x window /
# limit (the simulator counts every request; a 429 is not served). ratio = seconds / bound.
# The shipped rate setting is 2,900 per 1,000 s against Syncro's 3,000, so 1.034 is the floor.
#
# Prints (after "== results =="):
#   sync replicas=R jobs=J accounts=A requests=N busiest_account_requests=B seconds=S bound_s=X
#        ratio=S/X http_429=K peak_rss_mb=..
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"

ASSETS=${1:-15000}
TENANTS=${2:-1}
[[ "$ASSETS" =~ ^[1-9][0-9]*$ && "$TENANTS" =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [ASSETS] [TENANTS]" >&2; exit 2; }
REPLICAS=${BENCH_REPLICAS:-1}
ACCOUNTS=${BENCH_ACCOUNTS:-shared}
SPEEDUP=${BENCH_SPEEDUP:-10}
CUSTOMERS=${BENCH_CUSTOMERS:-5}
[[ "$REPLICAS" =~ ^[1-8]$ ]] || { echo "$0: BENCH_REPLICAS must be 1..8" >&2; exit 2; }
[[ "$ACCOUNTS" = shared || "$ACCOUNTS" = separate ]] || { echo "$0: BENCH_ACCOUNTS: shared|separate" >&2; exit 2; }
[[ "$SPEEDUP" =~ ^[1-9][0-9]?$ ]] || { echo "$0: BENCH_SPEEDUP must be 1..99" >&2; exit 2; }
PER_TENANT=$(( (ASSETS + TENANTS - 1) / TENANTS ))
WINDOW_MS=$((60000 / SPEEDUP))
LIMIT=180
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

W=$(mktemp -d "${TMPDIR:-/tmp}/mspsync-bench-sync.XXXXXX")
. "$ROOT/bench/lib.sh"

RESULTS=$W/results.txt
machine_line | tee "$RESULTS" >&2
log "work dir $W; assets=$ASSETS tenants=$TENANTS ($ACCOUNTS accounts) replicas=$REPLICAS window=${WINDOW_MS}ms limit=$LIMIT"

start_syncro_stack "$SIM_BIN"

# The gateway's credential checks must not spend the measured bucket: its own rate is opened
# and the limit is off while it runs; the bucket (Redis) is deleted before the fetchers start.
start_setup_gateway "$GW_BIN"
shared=()
[ "$ACCOUNTS" = shared ] && shared=(--shared)
run python3 "$HERE/benchtool.py" add-tenants --sim "$SIM" --gateway "$GW" --admin-token "$ADMIN" \
    --count "$TENANTS" --customers "$CUSTOMERS" --assets "$PER_TENANT" "${shared[@]}"
stop_pid "$GW_PID"
redis-cli -u "redis://$REDIS" --scan --pattern 'mspsync:{syncro:*}:rl' | while read -r k; do
    redis-cli -u "redis://$REDIS" DEL "$k" >/dev/null
done
curl -fsS -X PUT -H 'Content-Type: application/json' \
    -d "{\"rate_limit\":$LIMIT,\"rate_window_ms\":$WINDOW_MS}" "$SIM/_sim/config" >/dev/null
curl -fsS -X POST "$SIM/_sim/stats/reset" >/dev/null

log "starting $REPLICAS fetcher(s)"
FE_PIDS=() FE_URLS=()
for ((r = 0; r < REPLICAS; r++)); do
    env "${common_env[@]}" MSPSYNC_METRICS_PORT=0 MSPSYNC_PORT_FILE="$W/fetcher$r.port" \
        MSPSYNC_GROUP="${PREFIX}bench-fetcher" MSPSYNC_SYNCRO_RATE_MILLI=$((2900 * SPEEDUP)) \
        MSPSYNC_SYNCRO_BURST=3 MSPSYNC_SCHEDULE=0 "$FE_BIN" >"$W/fetcher$r.log" 2>&1 &
    FE_PIDS+=("$!"); PIDS+=("$!")
done
for ((r = 0; r < REPLICAS; r++)); do
    wait_file "$W/fetcher$r.port" "${FE_PIDS[r]}" 30
    FE_URLS+=("http://127.0.0.1:$(cat "$W/fetcher$r.port")")
done
run python3 "$HERE/benchtool.py" watch-sync --sim "$SIM" --metrics "$(IFS=,; echo "${FE_URLS[*]}")" \
    --pids "$(IFS=,; echo "${FE_PIDS[*]}")" --jobs "$TENANTS" --limit "$LIMIT" --window-ms "$WINDOW_MS" \
    --label "sync accounts_$ACCOUNTS" >"$W/sync.out"
cat "$W/sync.out" >&2
cat "$W/sync.out" >>"$RESULTS"

echo
echo "== results =="
cat "$RESULTS"
OK=1
