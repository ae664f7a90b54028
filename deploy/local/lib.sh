# shellcheck shell=bash
# lib.sh — helpers shared by the deploy/local scripts. Source it; it defines:
#   MSPSYNC_REPO       repository root (derived from this file's location)
#   MSPSYNC_LOCAL_DIR  local state/cache root (default: $MSPSYNC_REPO/.local, gitignored)
#   msp_die MSG...     print "<script>: MSG" to stderr and exit 1
#   msp_warn MSG...    print "<script>: MSG" to stderr
#   msp_free_port [N]  print N (default 1) distinct free loopback TCP ports, one per line
#   msp_port_free P    exit 0 when nothing listens on 127.0.0.1:P (bind test)
#   msp_pid_alive PID  exit 0 when PID is a live (non-zombie) process
#   msp_pid_matches PID WORD  exit 0 when PID is alive and its command line contains WORD
#   msp_purge_state_dir DIR NAME MARKER...  delete DIR, refusing one that is not ours (not empty
#                      and holding none of the MARKER files) or that is /, $HOME or the repo

MSPSYNC_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${MSPSYNC_LOCAL_DIR:=$MSPSYNC_REPO/.local}"
export MSPSYNC_LOCAL_DIR

msp_warn() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
msp_die()  { msp_warn "$@"; exit 1; }

msp_free_port() {
    python3 - "${1:-1}" <<'PY'
import socket, sys
n = int(sys.argv[1])
socks = []
for _ in range(n):          # keep every socket open until all are chosen: ports are distinct
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

msp_port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

msp_pid_alive() {
    local pid=$1 state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] && [ "$state" != X ]
}

msp_pid_matches() {
    local pid=$1 word=$2
    msp_pid_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$word"
}

msp_check_port_arg() {
    if ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then msp_die "invalid port: $1"; fi
}

msp_purge_state_dir() {
    local d=$1 name=$2 m ok=0
    shift 2
    case "$d" in /|"$HOME"|"$MSPSYNC_REPO"|"$MSPSYNC_LOCAL_DIR") msp_die "refusing to purge $d" ;; esac
    if [ -n "$(ls -A "$d")" ]; then
        for m in "$@"; do [ -f "$d/$m" ] && ok=1; done
        [ "$ok" = 1 ] || msp_die "refusing to purge $d: not a $name state dir"
    fi
    rm -rf "$d"
}
