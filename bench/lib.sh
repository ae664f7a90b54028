# shellcheck shell=bash
# bench/lib.sh — what the benchmark scripts share: a work dir, the processes they start (stopped
# in reverse order on exit, also on failure or a signal), Kafka and Redis stopped if started,
# logging, waiting, and the machine line that heads every result block.
# Source it after setting W (the work dir). Set BENCH_CLEANUP_EXTRA to a function name to run
# extra clean-up on success (e.g. removing large data files).
PIDS=()          # processes this script started (besides Kafka and Redis), stopped in reverse order
KAFKA_STARTED=0 REDIS_STARTED=0 OK=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

our_child() {    # PID is alive and a child of this script (a pid that exited may be reused)
    msp_pid_alive "$1" && [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ]
}

stop_pid() {     # SIGTERM, up to 30 s, then SIGKILL; only our own children
    local pid=$1 i
    our_child "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do our_child "$pid" || return 0; sleep 0.1; done
    log "pid $pid ignored SIGTERM for 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    trap - INT TERM
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    wait 2>/dev/null
    [ "$REDIS_STARTED" = 1 ] && "$ROOT/deploy/local/redis.sh" stop --dir "$W/redis" >/dev/null 2>&1
    [ "$KAFKA_STARTED" = 1 ] && "$ROOT/deploy/local/kafka.sh" stop --dir "$W/kafka" >/dev/null 2>&1
    if [ "$OK" = 1 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
        rm -rf "$W"
    else
        rm -f "$W/raw.tsv"
        [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W/kafka/data"
        log "logs kept in $W"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run() {          # run a step in the background and wait for it, so that a signal stops it at once
    "$@" &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid"
}

wait_file() {    # FILE PID TIMEOUT_S: wait until FILE is non-empty while PID lives
    local f=$1 pid=$2 i
    for ((i = 0; i < $3 * 10; i++)); do
        [ -s "$f" ] && return 0
        msp_pid_alive "$pid" || { log "pid $pid exited before writing $f"; return 1; }
        sleep 0.1
    done
    log "timed out waiting for $f"; return 1
}

machine_line() {
    local mem cpu
    mem=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "machine nproc=$(nproc) mem_gb=$mem kernel=$(uname -r) cpu=\"${cpu:-unknown}\" load1=$(cut -d' ' -f1 /proc/loadavg)"
}

start_syncro_stack() {  # SIM_BIN: Kafka, Redis and the Syncro simulator (rate limit off) in $W;
    # sets SIM_PID SIM BROKERS REDIS PREFIX SECRET ADMIN and common_env (every service's settings)
    log "starting Kafka, Redis, simulator"
    "$1" --port 0 --port-file "$W/sim.port" --seed 7 >"$W/sim.log" 2>&1 &
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
                MSPSYNC_SECRET_KEY="$SECRET" MSPSYNC_LOG_LEVEL=info)
}

start_setup_gateway() {  # GW_BIN: a gateway to add tenants through, ready; sets GW_PID and GW.
    # Its own Syncro bucket is opened: the credential checks (each tenant's GET /me) must not
    # wait on the measured limit.
    env "${common_env[@]}" MSPSYNC_HTTP_PORT=0 MSPSYNC_PORT_FILE="$W/gateway.port" MSPSYNC_ADMIN_TOKEN="$ADMIN" \
        MSPSYNC_SYNCRO_RATE_MILLI=10000000 MSPSYNC_SYNCRO_BURST=1000 "$1" >"$W/gateway.log" 2>&1 &
    GW_PID=$!; PIDS+=("$GW_PID")
    wait_file "$W/gateway.port" "$GW_PID" 30
    GW=http://127.0.0.1:$(cat "$W/gateway.port")
    local i
    for ((i = 0; i < 1200; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$GW/readyz")" = 200 ] && return 0
        msp_pid_alive "$GW_PID" || { log "gateway exited"; tail -5 "$W/gateway.log" >&2; exit 1; }
        sleep 0.1
    done
    log "gateway not ready"; exit 1
}
