#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# tickets.sh — incident → ticket latency: webhook accepted (the 202 the sender got) → ticket POST
# received by the Syncro simulator, with the services' shipped settings.
#
# Usage: bench/tickets.sh [SECONDS] [RATE ...]     defaults 30 and "50 200 500"
# Env:   MSPSYNC_BUILD_DIR      build tree with the binaries (default <repo>/build)
#        BENCH_PATTERNS         arrival patterns per rate (default "steady bursty"): steady = evenly
#                               spaced; bursty = BENCH_BURST events at once every BENCH_BURST/RATE s
#        BENCH_BURST            events per burst (default 50)
#        BENCH_SYNC_ASSETS      assets of the full sync during which incidents are measured at
#                               BENCH_SYNC_RATE/s (defaults 15000 and 200; 0 = no sync phase)
#        BENCH_SERVICE_ENV      extra VAR=value settings for every service (default none: the
#                               shipped defaults), e.g. "MSPSYNC_BATCH_MAX_WAIT_MS=0" to see the
#                               batching of before the deadline
#        BENCH_KEEP=1           keep the work directory (logs, Kafka data) afterwards
#
# Starts its own Kafka, Redis, syncro-sim (rate limit off) and the services the way
# docker-compose.yml runs them — gateway, fetcher, a records normalizer (raw.records), an events
# normalizer (raw.events), ticket-creator — with their default settings; the only override is the
# services' shared Syncro bucket, set to 10,000 requests/s so that it never delays a call: the
# figure is our pipeline (gateway → raw.events → normalizer → incidents → ticket-creator →
# Syncro), not Syncro's 180/min. Syncs one tenant, turns ticketing on, maps 50 orgs; then, per
# RATE and pattern, runs mtp-sim for SECONDS (70 % new, 20 % re-fires, 10 % resolves, one fresh id
# prefix per run) and measures, for every new incident, the time from its 202 (mtp-sim's clock) to
# the simulator receiving its ticket POST (the simulator's clock; same machine). A 5-second warm-up
# at 100/s runs first and is not measured. The sync phase adds BENCH_SYNC_ASSETS assets to the
# tenant's Syncro account, starts incidents at BENCH_SYNC_RATE/s, then "sync now" (assets: a full
# pull of every page); it counts the incidents accepted between the sync's start and the moment
# the normalizer had processed every asset of it. Everything it started is stopped on exit, also
# on failure.
#
# Prints (the block after "== results ==" is meant for docs/benchmarks.md):
#   machine nproc=.. mem_gb=.. kernel=.. cpu=..
#   tickets pattern=P rate=R sent_rate=.. events=.. new_tickets=.. latency_ms_p50=.. p99=.. max=..
#   tickets during_sync assets=N sync_s=.. rate=R ... (incidents accepted during the sync only)
#   normalizer batch closes (records lane / events lane): size=.. idle=.. deadline=.. fill_ms_avg=..
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"

SECS=${1:-30}
shift || true
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(50 200 500)
read -r -a PATTERNS <<<"${BENCH_PATTERNS:-steady bursty}"
BURST=${BENCH_BURST:-50}
SYNC_ASSETS=${BENCH_SYNC_ASSETS:-15000}
SYNC_RATE=${BENCH_SYNC_RATE:-200}
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECONDS] [RATE ...]" >&2; exit 2; }
BUILD=${MSPSYNC_BUILD_DIR:-$ROOT/build}
declare -A BIN=([gw]=services/gateway/mspsync-gateway [fe]=services/fetcher/mspsync-fetcher
                [nz]=services/normalizer/mspsync-normalizer [tc]=services/ticket-creator/mspsync-ticket-creator
                [sim]=tests/simulators/syncro-sim [mtp]=tests/simulators/mtp-sim)
for k in "${!BIN[@]}"; do
    BIN[$k]=$BUILD/${BIN[$k]}
    [ -x "${BIN[$k]}" ] || { echo "$0: ${BIN[$k]} missing: build first (cmake --build $BUILD -j2)" >&2; exit 1; }
done
for c in curl python3 redis-server java kcat; do
    command -v "$c" >/dev/null || { echo "$0: $c not found (deploy/local/install-deps.sh)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/mspsync-bench-tk.XXXXXX")
. "$ROOT/bench/lib.sh"
RESULTS=$W/results.txt
machine_line | tee "$RESULTS" >&2

start_syncro_stack "${BIN[sim]}"
common_env+=(MSPSYNC_SYNCRO_RATE_MILLI=10000000 MSPSYNC_SYNCRO_BURST=1000)
read -r -a extra_env <<<"${BENCH_SERVICE_ENV:-}"
common_env+=("${extra_env[@]}")

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
start fetcher "${BIN[fe]}" MSPSYNC_METRICS_PORT=0 MSPSYNC_SCHEDULE=0
start normalizer "${BIN[nz]}" MSPSYNC_METRICS_PORT=0 MSPSYNC_NORMALIZER_INPUT=records
start normalizer-events "${BIN[nz]}" MSPSYNC_METRICS_PORT=0 MSPSYNC_NORMALIZER_INPUT=events
start ticket-creator "${BIN[tc]}" MSPSYNC_METRICS_PORT=0
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

tickets_made() {
    curl -fsS "$SIM/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accounts"]["tk"]["tickets_created"])'
}
now_us() { date +%s%6N; }
incidents_dump() {   # the incidents topic with each record's timestamp: the stage split
    kcat -C -b "$BROKERS" -t "${PREFIX}incidents" -e -q -o beginning -f '%T\t%s\n' >"$W/incidents.tsv"
}

for rate in "${RATES[@]}"; do
    for pattern in "${PATTERNS[@]}"; do
        case $pattern in
            steady) burst=1 ;;
            bursty) burst=$BURST ;;
            *) echo "$0: unknown pattern '$pattern' (steady, bursty)" >&2; exit 2 ;;
        esac
        before=$(tickets_made)
        log "rate $rate/s $pattern (burst $burst) for $SECS s"
        run "${BIN[mtp]}" --url "$GW/v1/webhooks/mtp/tk" --secret "$TK_SECRET" --count $((rate * SECS)) \
            --rate "$rate" --burst "$burst" --concurrency 64 --orgs 50 --mix new=70,refire=20,resolve=10 \
            --seed "$rate" --id-prefix "r$rate$pattern" --log "$W/mtp-$rate-$pattern.jsonl" >"$W/mtp-$rate-$pattern.out"
        incidents_dump
        python3 "$HERE/benchtool.py" ticket-latency --sim "$SIM" --log "$W/mtp-$rate-$pattern.jsonl" \
            --before "$before" --rate "$rate" --label "pattern=$pattern" --incidents "$W/incidents.tsv" \
            | tee -a "$RESULTS" >&2
        sleep 5   # let re-fires and resolves of this run drain before the next one starts
    done
done

if [ "$SYNC_ASSETS" -gt 0 ]; then
    NZ_METRICS=http://127.0.0.1:$(cat "$W/normalizer.port")/metrics
    assets_done() {
        python3 "$HERE/benchtool.py" metric-sum --url "$NZ_METRICS" --name mspsync_normalizer_records_total --match 'type="asset"'
    }
    total=$(curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"count\":$SYNC_ASSETS}" \
            "$SIM/_sim/accounts/tk/assets/generate" | python3 -c 'import json,sys; print(json.load(sys.stdin)["assets"])')
    done0=$(assets_done)
    before=$(tickets_made)
    secs=$((SECS > 60 ? SECS : 60))
    log "full sync of $total assets ($SYNC_ASSETS new) with incidents at $SYNC_RATE/s"
    "${BIN[mtp]}" --url "$GW/v1/webhooks/mtp/tk" --secret "$TK_SECRET" --count $((SYNC_RATE * secs)) \
        --rate "$SYNC_RATE" --concurrency 64 --orgs 50 --mix new=70,refire=20,resolve=10 --seed 77 \
        --id-prefix sync --log "$W/mtp-sync.jsonl" >"$W/mtp-sync.out" &
    MTP_PID=$!; PIDS+=("$MTP_PID")
    sleep 2   # the incident stream runs steadily before the sync starts
    t0=$(now_us)
    curl -fsS -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        -d '{"types":["assets"]}' "$GW/v1/tenants/tk/integrations/syncro/sync" >/dev/null
    until [ "$(assets_done)" -ge $((done0 + total)) ]; do
        msp_pid_alive "$MTP_PID" || { log "the incident stream ended before the sync: raise SECONDS"; exit 1; }
        sleep 0.2
    done
    t1=$(now_us)
    sync_s=$(python3 -c "print('%.1f' % (($t1 - $t0) / 1e6))")
    log "the sync was normalized after $sync_s s"
    wait "$MTP_PID"
    incidents_dump
    python3 "$HERE/benchtool.py" ticket-latency --sim "$SIM" --log "$W/mtp-sync.jsonl" --before "$before" \
        --incidents "$W/incidents.tsv" \
        --rate "$SYNC_RATE" --window-from-us "$t0" --window-to-us "$t1" \
        --label "during_sync assets=$total sync_s=$sync_s" | tee -a "$RESULTS" >&2
fi

# Where Redis time went (the lanes and the ticket-creator share one Redis): the costliest commands.
redis-cli -h 127.0.0.1 -p "${REDIS##*:}" info commandstats | python3 -c '
import re, sys
rows = []
for line in sys.stdin:
    m = re.match(r"cmdstat_(\S+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)", line)
    if m: rows.append((int(m.group(3)), m.group(1), int(m.group(2)), float(m.group(4))))
rows.sort(reverse=True)
print("redis_top " + " ".join("%s:calls=%d,ms=%d,us_per_call=%.0f" % (n, c, u / 1000, pc) for u, n, c, pc in rows[:5]))
' | tee -a "$RESULTS" >&2

for lane in normalizer normalizer-events; do
    curl -fsS "http://127.0.0.1:$(cat "$W/$lane.port")/metrics" | python3 -c '
import re, sys
closes, fill = {}, 0.0
for line in sys.stdin:
    m = re.match(r"mspsync_normalizer_batch_closes_total\{.*reason=\"(\w+)\".*\} (\S+)", line)
    if m: closes[m.group(1)] = int(float(m.group(2)))
    m = re.match(r"mspsync_normalizer_batch_fill_seconds_total(?:\{.*\})? (\S+)", line)
    if m: fill = float(m.group(1))
n = sum(closes.values())
print("batch_closes lane=%s %s fill_ms_avg=%.1f" % (sys.argv[1], " ".join("%s=%d" % kv for kv in sorted(closes.items())),
      1000 * fill / n if n else 0))' "$lane" | tee -a "$RESULTS" >&2
done

echo
echo "== results =="
cat "$RESULTS"
OK=1
