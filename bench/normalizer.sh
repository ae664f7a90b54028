#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# normalizer.sh — normalizer throughput on a real broker, beside a consume->produce pass-through of
# the same bytes in the same run (the ceiling that Kafka and librdkafka set on this machine).
#
# Usage: bench/normalizer.sh [N]        N raw.records messages, default 200000
# Env:   BENCH_DISTINCT=1      every record its own machine (MACs of its own); by default the records
#                              made from one simulator template share its MACs, so every tenant
#                              sees a few MACs on hundreds of records (a dock's MAC, at scale)
#        BENCH_TENANTS=100     tenants the records are spread over (message key = tenant)
#        BENCH_UNCHANGED=1     also measure a second pass over the same records (all "unchanged")
#        BENCH_BATCH=500       batch size of the normalizer (MSPSYNC_BATCH_SIZE) and the pass-through
#        BENCH_REPLICAS=1      normalizer processes in the one consumer group (each takes a share of
#                              the 6 partitions; a tenant stays with one of them)
#        MSPSYNC_BUILD_DIR     build tree with the binaries (default <repo>/build, as made by tests/run.sh or deploy/local/demo.sh)
#        BENCH_KEEP=1          keep the work directory (logs, Kafka data) afterwards
#        BENCH_NICE=0          the normalizer's MSPSYNC_NICE (its default for the records lane is
#                              10); 0 gives it the pass-through's weight, so that on a machine
#                              other work loads, the two are measured under the same conditions
#
# Starts its own Kafka (deploy/local/kafka.sh) and Redis (deploy/local/redis.sh) on 127.0.0.1 in a
# temporary directory, and a syncro-sim only to take real /customer_assets items as templates.
# Everything it started is stopped on exit, also on failure or Ctrl-C.
#
# Prints (the block after "== results ==" is meant to be pasted into docs/benchmarks.md):
#   machine nproc=.. mem_gb=.. kernel=.. cpu=..
#   normalizer records=N seconds=S records_per_s=R peak_rss_mb=M          (first pass: all changed;
#                                                   "normalizer_distinct" with BENCH_DISTINCT=1)
#   passthrough records=N seconds=S records_per_s=R
#   ratio normalizer/passthrough=X.XX
#   normalizer_unchanged records=N seconds=S records_per_s=R peak_rss_mb=M (second pass, new group)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../deploy/local/lib.sh
. "$ROOT/deploy/local/lib.sh"

N=${1:-200000}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N]" >&2; exit 2; }
TENANTS=${BENCH_TENANTS:-100}
UNCHANGED=${BENCH_UNCHANGED:-1}
BATCH=${BENCH_BATCH:-500}
DISTINCT=${BENCH_DISTINCT:-0}
REPLICAS=${BENCH_REPLICAS:-1}
NICE=${BENCH_NICE:-0}
[[ "$REPLICAS" =~ ^[1-6]$ ]] || { echo "$0: BENCH_REPLICAS must be 1..6 (6 partitions)" >&2; exit 2; }
NZ_LABEL=normalizer GEN_ARGS=()
if [ "$DISTINCT" = 1 ]; then NZ_LABEL=normalizer_distinct GEN_ARGS=(--distinct); fi
BUILD=${MSPSYNC_BUILD_DIR:-$ROOT/build}
NZ_BIN=$BUILD/services/normalizer/mspsync-normalizer
SIM_BIN=$BUILD/tests/simulators/syncro-sim
PT_BIN=$BUILD/bench/mspsync-bench-passthrough
for b in "$NZ_BIN" "$SIM_BIN" "$PT_BIN"; do
    [ -x "$b" ] || { echo "$0: $b missing: build first (cmake --build $BUILD -j2)" >&2; exit 1; }
done
for c in kcat curl python3 redis-server java; do
    command -v "$c" >/dev/null || { echo "$0: $c not found (deploy/local/install-deps.sh)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/mspsync-bench-nz.XXXXXX")
. "$ROOT/bench/lib.sh"

RESULTS=$W/results.txt
machine_line | tee "$RESULTS" >&2
log "work dir $W; N=$N tenants=$TENANTS batch=$BATCH distinct=$DISTINCT replicas=$REPLICAS"

# --- templates: real asset items from the simulator --------------------------------------------
"$SIM_BIN" --port 0 --port-file "$W/sim.port" --seed 7 >"$W/sim.log" 2>&1 &
SIM_PID=$!; PIDS+=("$SIM_PID")
wait_file "$W/sim.port" "$SIM_PID" 20
run python3 "$HERE/benchtool.py" gen-raw --sim "http://127.0.0.1:$(cat "$W/sim.port")" \
    --count "$N" --tenants "$TENANTS" --out "$W/raw.tsv" "${GEN_ARGS[@]}"
stop_pid "$SIM_PID"

# --- Kafka, Redis -------------------------------------------------------------------------------
log "starting Kafka and Redis"
KAFKA_STARTED=1
BROKERS=$("$ROOT/deploy/local/kafka.sh" start --dir "$W/kafka")
REDIS_STARTED=1
REDIS=$("$ROOT/deploy/local/redis.sh" start --dir "$W/redis")
KAFKA_PID=$(cat "$W/kafka/kafka.pid")
REDIS_PID=$(cat "$W/redis/redis.pid")
# no gateway runs here: set the state marker its first start sets (the normalizer waits without it)
redis-cli -h "${REDIS%:*}" -p "${REDIS##*:}" SET "mspsync:{_}:state:epoch" bench >/dev/null
PREFIX="bench$(date +%s)$$."
SECRET=$(python3 -c 'import os; print(os.urandom(32).hex())')
log "brokers $BROKERS redis $REDIS prefix $PREFIX"

nz_env() {       # GROUP PORTFILE
    echo MSPSYNC_KAFKA_BROKERS="$BROKERS" MSPSYNC_REDIS_URL="$REDIS" MSPSYNC_TOPIC_PREFIX="$PREFIX" \
        MSPSYNC_SECRET_KEY="$SECRET" MSPSYNC_METRICS_PORT=0 MSPSYNC_PORT_FILE="$2" \
        MSPSYNC_GROUP="$1" MSPSYNC_BATCH_SIZE="$BATCH" MSPSYNC_LOG_LEVEL=info MSPSYNC_NICE="$NICE"
}

# --- topics: a normalizer creates them at start (msp_kafka_ensure_topics, 6 partitions) ---------
# shellcheck disable=SC2046
env $(nz_env "${PREFIX}warmup" "$W/warmup.port") "$NZ_BIN" >"$W/warmup.log" 2>&1 &
WARM_PID=$!; PIDS+=("$WARM_PID")
for ((i = 0; i < 1200; i++)); do
    grep -q 'consuming' "$W/warmup.log" 2>/dev/null && break
    msp_pid_alive "$WARM_PID" || { log "warm-up normalizer exited"; cat "$W/warmup.log" >&2; exit 1; }
    sleep 0.1
done
grep -q 'consuming' "$W/warmup.log" || { log "warm-up normalizer did not start consuming"; exit 1; }
stop_pid "$WARM_PID"
"$ROOT/deploy/local/kafka.sh" topics --dir "$W/kafka" --create --topic "${PREFIX}bench.out" \
    --partitions 6 --replication-factor 1 >"$W/topics.log" 2>&1

# --- load raw.records ---------------------------------------------------------------------------
log "producing $N records to ${PREFIX}raw.records"
t=$(date +%s.%N)
run kcat -P -K $'\t' -b "$BROKERS" -t "${PREFIX}raw.records" -z lz4 -X linger.ms=20 -l "$W/raw.tsv"
end_offsets() {
    local args=() p
    for p in 0 1 2 3 4 5; do args+=(-t "$1:$p:-1"); done
    kcat -Q -b "$BROKERS" "${args[@]}" | awk '$3 == "offset" { s += $4 } END { print s + 0 }'
}
have=$(end_offsets "${PREFIX}raw.records")
log "produced in $(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; topic holds $have"
[ "$have" = "$N" ] || { log "raw.records holds $have messages, expected $N"; exit 1; }
rm -f "$W/raw.tsv"

# --- a) pass-through ----------------------------------------------------------------------------
log "pass-through"
"$PT_BIN" "$BROKERS" "${PREFIX}bench-passthrough" "${PREFIX}raw.records" "${PREFIX}bench.out" "$N" "$BATCH" \
    >"$W/passthrough.out" 2>"$W/passthrough.log" &
PT_PID=$!; PIDS+=("$PT_PID")
wait "$PT_PID" || { log "pass-through failed"; cat "$W/passthrough.log" >&2; exit 1; }
PT_LINE=$(grep '^passthrough ' "$W/passthrough.out")
echo "$PT_LINE" >&2

# --- b) normalizer, first pass: empty Redis, every record changed ---------------------------------
# Redis commands the run sent (INFO commandstats since the last CONFIG RESETSTAT): calls and
# server time per record (EXEC's own time counts its commands again: left out of the sum), and
# calls/microseconds per command. Resets the counters for the next run.
redis_calls() {   # LABEL
    local host=${REDIS%:*} port=${REDIS##*:}
    redis-cli -h "$host" -p "$port" INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v n="$N" -v l="$1" '
        /^cmdstat_/ && $2 == "calls" { c = $3; u = $5; sub(/^cmdstat_/, "", $1)
            if ($1 != "info" && $1 !~ /^config/) { calls += c; if ($1 != "exec") usec += u; top[$1] = c "/" u "us" } }
        END { s = ""; for (k in top) s = s " " k "=" top[k]
              printf "%s redis_calls_per_record=%.2f redis_usec_per_record=%.1f calls:%s\n", l, calls / n, usec / n, s }'
    redis-cli -h "$host" -p "$port" CONFIG RESETSTAT >/dev/null
}

run_normalizer() {   # LABEL GROUP
    local label=$1 group=$2 r pids=() urls=() cpu
    for ((r = 1; r <= REPLICAS; r++)); do
        # shellcheck disable=SC2046
        env $(nz_env "$group" "$W/$label.$r.port") "$NZ_BIN" >"$W/$label.$r.log" 2>&1 &
        pids+=($!); PIDS+=($!)
    done
    for ((r = 1; r <= REPLICAS; r++)); do
        wait_file "$W/$label.$r.port" "${pids[r - 1]}" 30
        urls+=("http://127.0.0.1:$(cat "$W/$label.$r.port")")
    done
    cpu="$label=${pids[0]},kafka=$KAFKA_PID,redis=$REDIS_PID"
    for ((r = 2; r <= REPLICAS; r++)); do cpu+=",$label.$r=${pids[r - 1]}"; done
    run python3 "$HERE/benchtool.py" watch-normalizer --label "$label" --metrics "${urls[0]}" \
        --pid "${pids[0]}" --more-metrics "$(IFS=,; echo "${urls[*]:1}")" \
        --more-pids "$(IFS=,; echo "${pids[*]:1}")" --expect "$N" --rate-file "$W/$label.rate" \
        --cpu-pids "$cpu" >"$W/$label.out"
    redis_calls "$label" >>"$W/$label.out"
    cat "$W/$label.out" >&2
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
}
redis-cli -h "${REDIS%:*}" -p "${REDIS##*:}" CONFIG RESETSTAT >/dev/null
log "normalizer (changed)"
run_normalizer "$NZ_LABEL" "${PREFIX}bench-nz-1"
NZ_RATE=$(cat "$W/$NZ_LABEL.rate")
PT_RATE=$(sed -n 's/.*records_per_s=\([0-9.]*\).*/\1/p' <<<"$PT_LINE")
{
    grep "^$NZ_LABEL records=" "$W/$NZ_LABEL.out"
    echo "$PT_LINE"
    awk -v a="$NZ_RATE" -v b="$PT_RATE" 'BEGIN { printf "ratio normalizer/passthrough=%.2f\n", a / b }'
} >>"$RESULTS"

if [ "$UNCHANGED" = 1 ]; then
    log "normalizer (unchanged: same records, new group, same Redis)"
    run_normalizer normalizer_unchanged "${PREFIX}bench-nz-2"
    grep '^normalizer_unchanged records=' "$W/normalizer_unchanged.out" >>"$RESULTS"
fi
{
    grep -h 'cpu_share\|by_result\|stage_us\|redis_calls' "$W"/normalizer*.out
} >"$W/details.txt"

echo
echo "== results =="
cat "$RESULTS"
echo "== details =="
cat "$W/details.txt"
OK=1
