#!/usr/bin/env bash
# redis.sh — a redis-server on 127.0.0.1 for local development and tests: throw-away by default
# (no persistence), or persistent with --persist.
#
# Usage: redis.sh start|stop|status [--dir DIR] [--port N] [--persist] [--purge]
#   --dir DIR   state dir (default $MSPSYNC_LOCAL_DIR/run/redis): redis.pid, redis.log, port, address
#   --port N    default: the port used last in DIR if still free, else a free loopback port
#   --persist   start only (or MSPSYNC_REDIS_PERSIST=1): keep the data in DIR across restarts, as
#               Compose runs Redis — an append-only file fsynced every second (appendonly.aof,
#               at most ~1 s of writes lost on a crash) plus an RDB snapshot (dump.rdb) every
#               5 minutes with a change; stop then saves before exiting. DIR/persist records the
#               mode, so a later start in the same DIR keeps it. Back up DIR/appendonlydir and
#               dump.rdb together with the secret key (docs/deploy.md, "Backup and restore").
#   --purge     stop only: delete DIR (data included) after the server has exited
#
# start   starts redis-server (daemonized), waits for PING -> PONG (MSPSYNC_REDIS_START_TIMEOUT,
#         default 10 s), writes "127.0.0.1:PORT" to DIR/address and prints it on stdout.
#         Already running: prints the address, exit 0.
# stop    SHUTDOWN NOSAVE (SHUTDOWN SAVE when persistent), waits for the process to exit (SIGTERM/SIGKILL after 10 s). Exit 0 when
#         stopped (also when it was not running).
# status  prints the address and exits 0 when running and answering PING; 1 when the process is
#         there but does not answer, 3 when not running.
# Errors go to stderr.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2; exit 2; }

cmd=${1:-}; [ $# -gt 0 ] && shift
dir="" port="" purge=0 persist=${MSPSYNC_REDIS_PERSIST:-0}
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=${2:?--dir needs a value}; shift 2 ;;
        --dir=*) dir=${1#*=}; shift ;;
        --port) port=${2:?--port needs a value}; shift 2 ;;
        --port=*) port=${1#*=}; shift ;;
        --purge) purge=1; shift ;;
        --persist) persist=1; shift ;;
        -h|--help) usage ;;
        *) msp_warn "unknown argument: $1"; usage ;;
    esac
done
case "$cmd" in start|stop|status) ;; *) usage ;; esac
[ -z "$port" ] || msp_check_port_arg "$port"
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    msp_die "redis-server/redis-cli not found (run deploy/local/install-deps.sh)"
fi

dir=${dir:-$MSPSYNC_LOCAL_DIR/run/redis}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
PIDFILE="$dir/redis.pid"
START_TIMEOUT=${MSPSYNC_REDIS_START_TIMEOUT:-10}

running_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    msp_pid_matches "$pid" redis-server || return 1
    echo "$pid"
}
current_port() { cat "$dir/port" 2>/dev/null; }
pong() { [ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

do_start() {
    local pid p i
    local -a durability
    exec 9>"$dir/.lock"
    flock -w 60 9 || msp_die "could not lock $dir/.lock"
    if pid=$(running_pid); then
        p=$(current_port)
        [ -z "$port" ] || [ "$port" = "$p" ] \
            || msp_die "already running in $dir on port $p (asked for $port); stop it first"
    else
        rm -f "$PIDFILE"
        p=$port
        if [ -z "$p" ] && [ -n "$(current_port)" ] && msp_port_free "$(current_port)"; then p=$(current_port); fi
        [ -n "$p" ] || p=$(msp_free_port 1)
        msp_port_free "$p" || msp_die "port $p on 127.0.0.1 is in use"
        echo "$p" >"$dir/port"
        [ "$persist" = 1 ] && touch "$dir/persist"
        if [ -f "$dir/persist" ]; then
            durability=(--save "300 1" --appendonly yes --appendfsync everysec)
        else
            durability=(--save "" --appendonly no)
        fi
        redis-server --bind 127.0.0.1 --port "$p" "${durability[@]}" --daemonize yes \
            --pidfile "$PIDFILE" --logfile "$dir/redis.log" --dir "$dir" 9>&- \
            || msp_die "redis-server failed; see $dir/redis.log"
        for ((i = 0; i < 50; i++)); do pid=$(running_pid) && break; sleep 0.05; done
        [ -n "${pid:-}" ] || { tail -n 20 "$dir/redis.log" >&2; msp_die "redis-server did not start"; }
    fi
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        pong "$p" && break
        msp_pid_alive "$pid" || { tail -n 20 "$dir/redis.log" >&2; msp_die "redis-server exited"; }
        sleep 0.1
    done
    pong "$p" || msp_die "redis-server (pid $pid) not answering on 127.0.0.1:$p after ${START_TIMEOUT}s"
    echo "127.0.0.1:$p" >"$dir/address"
    echo "127.0.0.1:$p"
}

do_stop() {
    local pid i
    exec 9>"$dir/.lock"
    flock -w 60 9 || msp_die "could not lock $dir/.lock"
    if pid=$(running_pid); then
        local how=nosave
        [ -f "$dir/persist" ] && how=save
        timeout 30 redis-cli -h 127.0.0.1 -p "$(current_port)" shutdown "$how" >/dev/null 2>&1 || true
        for ((i = 0; i < 100; i++)); do msp_pid_alive "$pid" || break; sleep 0.1; done
        if msp_pid_alive "$pid"; then
            msp_warn "redis-server (pid $pid) did not shut down: SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do msp_pid_alive "$pid" || break; sleep 0.1; done
            if msp_pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
            msp_pid_alive "$pid" && msp_die "redis-server (pid $pid) survived SIGKILL"
        fi
    fi
    rm -f "$PIDFILE"
    [ "$purge" = 1 ] && msp_purge_state_dir "$dir" redis.sh port
    return 0
}

do_status() {
    local pid p
    if ! pid=$(running_pid); then msp_warn "not running ($dir)"; exit 3; fi
    p=$(current_port)
    if pong "$p"; then echo "127.0.0.1:$p"; exit 0; fi
    msp_warn "pid $pid is running but 127.0.0.1:$p does not answer PING"
    exit 1
}

"do_$cmd"
