#!/usr/bin/env bash
# local_redis.sh — deploy/local/redis.sh keeps data across a restart with --persist, and only then.
#
# Starts a throw-away server and a persistent one in temporary dirs, writes a key, restarts each
# (a clean stop, then a SIGKILL of the persistent one once the write is in its append-only file), and checks which
# kept the key. Exit 77 (skip) without redis-server.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { echo "skip: no redis-server"; exit 77; }
tmp=$(mktemp -d)
trap '"$src/deploy/local/redis.sh" stop --dir "$tmp/plain" --purge >/dev/null 2>&1 || true
      "$src/deploy/local/redis.sh" stop --dir "$tmp/kept" --purge >/dev/null 2>&1 || true
      rm -rf "$tmp"' EXIT
R="$src/deploy/local/redis.sh"
cli() { redis-cli -h 127.0.0.1 -p "${1##*:}" "${@:2}"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

plain=$("$R" start --dir "$tmp/plain")
kept=$("$R" start --dir "$tmp/kept" --persist)
cli "$plain" SET mspsync:{t}:tenant plain >/dev/null
cli "$kept" SET mspsync:{t}:tenant kept >/dev/null

# A clean stop and start: the throw-away server forgets, the persistent one (started again
# without the flag: the dir remembers the mode) keeps the key.
"$R" stop --dir "$tmp/plain" >/dev/null
"$R" stop --dir "$tmp/kept" >/dev/null
plain=$("$R" start --dir "$tmp/plain")
kept=$("$R" start --dir "$tmp/kept")
[ -z "$(cli "$plain" GET mspsync:{t}:tenant)" ] || fail "the throw-away server kept its data"
[ "$(cli "$kept" GET mspsync:{t}:tenant)" = kept ] || fail "the persistent server lost its data on a clean restart"

# A crash: a write that reached the append-only file survives a SIGKILL (the kernel holds it; the
# everysec fsync is what covers a power loss, which this cannot test).
cli "$kept" SET mspsync:{t}:after crash >/dev/null
for _ in $(seq 1 100); do
    grep -qs 'mspsync:{t}:after' "$tmp"/kept/appendonlydir/*.aof "$tmp"/kept/appendonly.aof && break
    sleep 0.05
done
grep -qs 'mspsync:{t}:after' "$tmp"/kept/appendonlydir/*.aof "$tmp"/kept/appendonly.aof \
    || fail "the write never reached the append-only file"
kill -KILL "$(cat "$tmp/kept/redis.pid")"
for _ in $(seq 1 50); do kill -0 "$(cat "$tmp/kept/redis.pid")" 2>/dev/null || break; sleep 0.1; done
kept=$("$R" start --dir "$tmp/kept")
[ "$(cli "$kept" GET mspsync:{t}:after)" = crash ] || fail "the persistent server lost an fsynced write to SIGKILL"
echo "ok: --persist keeps data across a clean restart and a SIGKILL; the default does not"
