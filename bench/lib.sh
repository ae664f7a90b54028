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
