#!/usr/bin/env bash
# demo.sh — the main job, locally and without Docker.
#
# Installs what is missing, builds, starts Redis, a single-node Kafka, the Syncro simulator
# seeded with three MSP accounts, the gateway, a fetcher and the normalizer; creates three tenants
# and adds their Syncro integrations through the admin API; waits for the full syncs; prints an
# inventory summary. Idempotent: a second run reuses the build, the jars, Kafka and Redis.
#
# Usage: deploy/local/demo.sh [--keep]
#   --keep   leave the services running (their logs and ports are in .local/run/demo/); without
#            it, the services, Kafka and Redis are stopped at the end.
# Env: MSPSYNC_DEMO_ASSETS (assets per tenant, default 250).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MSPSYNC_REPO"

keep=0
[ "${1:-}" = "--keep" ] && keep=1
assets=${MSPSYNC_DEMO_ASSETS:-250}
run="$MSPSYNC_LOCAL_DIR/run/demo"
mkdir -p "$run"

deploy/local/install-deps.sh
echo "== building (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMSPSYNC_TESTS=ON >/dev/null
cmake --build build -j "$(nproc)" >"$run/build.log" 2>&1 || { tail -40 "$run/build.log"; exit 1; }

# Stop what an earlier --keep run left behind.
for p in "$run"/*.pid; do
    [ -e "$p" ] || continue
    pid=$(cat "$p"); kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$p"
done

echo "== starting Kafka and Redis"
brokers=$(deploy/local/kafka.sh start --dir "$MSPSYNC_LOCAL_DIR/run/kafka")
redis=$(deploy/local/redis.sh start --dir "$MSPSYNC_LOCAL_DIR/run/redis")
# A fresh demo each run: its own topic prefix and an empty Redis database.
redis-cli -p "${redis##*:}" FLUSHALL >/dev/null
prefix="demo$(date +%s)."

secret_file="$run/secret.key"
[ -s "$secret_file" ] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file"; chmod 600 "$secret_file"; }
admin_token_file="$run/admin.token"
[ -s "$admin_token_file" ] || { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$admin_token_file"; chmod 600 "$admin_token_file"; }
admin_token=$(cat "$admin_token_file")

export MSPSYNC_KAFKA_BROKERS="$brokers" MSPSYNC_REDIS_URL="$redis" MSPSYNC_TOPIC_PREFIX="$prefix"
export MSPSYNC_SECRET_KEY_FILE="$secret_file"

start() { # name port_file command...
    local name=$1 pf=$2; shift 2
    rm -f "$pf"
    "$@" >"$run/$name.log" 2>&1 &
    echo $! >"$run/$name.pid"
    for _ in $(seq 1 300); do [ -s "$pf" ] && return 0; sleep 0.1; done
    msp_die "$name did not start; see $run/$name.log"
}

echo "== starting the Syncro simulator and the services"
start syncro-sim "$run/sim.port" build/tests/simulators/syncro-sim --port 0 --port-file "$run/sim.port"
sim="http://127.0.0.1:$(cat "$run/sim.port")"
MSPSYNC_HTTP_PORT=0 MSPSYNC_PORT_FILE="$run/gateway.port" MSPSYNC_ADMIN_TOKEN="$admin_token" \
    start gateway "$run/gateway.port" build/services/gateway/mspsync-gateway
gw="http://127.0.0.1:$(cat "$run/gateway.port")"
MSPSYNC_METRICS_PORT=0 MSPSYNC_PORT_FILE="$run/fetcher.port" \
    start fetcher "$run/fetcher.port" build/services/fetcher/mspsync-fetcher
MSPSYNC_METRICS_PORT=0 MSPSYNC_PORT_FILE="$run/normalizer.port" \
    start normalizer "$run/normalizer.port" build/services/normalizer/mspsync-normalizer

api() { curl -sS -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' "$@"; }

echo "== seeding three Syncro accounts ($assets assets each) and adding the integrations"
for t in acme globex initech; do
    curl -sS -X POST "$sim/_sim/accounts" -d "{\"subdomain\":\"$t\",\"customers\":12,\"assets\":$assets}" >/dev/null
    key="demo-$t-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    curl -sS -X POST "$sim/_sim/tokens" -d "{\"subdomain\":\"$t\",\"token\":\"$key\"}" >/dev/null
    api -X POST "$gw/v1/tenants" -d "{\"id\":\"$t\",\"name\":\"${t^} IT\"}" >/dev/null
    api -X PUT "$gw/v1/tenants/$t/integrations/syncro" \
        -d "{\"base_url\":\"$sim/$t/api/v1\",\"api_key\":\"$key\"}" >"$run/$t.add.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("   %-8s %s" % (sys.argv[2], d.get("state") or d))' "$run/$t.add.json" "$t"
done

echo "== waiting for the syncs"
python3 - "$gw" "$admin_token" "$assets" <<'PY'
import json, sys, time, urllib.request
gw, token, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
def get(path):
    req = urllib.request.Request(gw + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)
deadline = time.time() + 600
pending = {"acme", "globex", "initech"}
while pending and time.time() < deadline:
    for t in sorted(pending):
        s = get("/v1/tenants/%s/integrations/syncro" % t)
        p = s.get("progress") or {}
        print("   %-8s %-9s %s page %s/%s  customers=%s assets=%s" % (
            t, s["state"], p.get("type") or "-", p.get("page") or "-", p.get("total_pages") or "-",
            s["counts"]["customers"], s["counts"]["assets"]))
        if s["state"] == "Error":
            sys.exit("sync of %s failed: %s" % (t, s["last_error"]))
        if s["state"] == "Connected" and s["counts"]["assets"] >= want:
            pending.discard(t)
    if pending:
        time.sleep(1)
if pending:
    sys.exit("timed out waiting for " + ", ".join(sorted(pending)))

print("\n== inventory summary")
for t in ("acme", "globex", "initech"):
    assets, page = [], 1
    while True:
        d = get("/v1/tenants/%s/assets?page=%d&per_page=500" % (t, page))
        assets += d["assets"]
        if page >= d["meta"]["total_pages"]:
            break
        page += 1
    customers = get("/v1/tenants/%s/customers?per_page=1" % t)["meta"]["total_entries"]
    types, makers = {}, {}
    for a in assets:
        types[a.get("asset_type") or "?"] = types.get(a.get("asset_type") or "?", 0) + 1
        if a.get("manufacturer"):
            makers[a["manufacturer"]] = makers.get(a["manufacturer"], 0) + 1
    print("%-8s customers=%d assets=%d  by type: %s" % (t, customers, len(assets),
          ", ".join("%s %d" % kv for kv in sorted(types.items()))))
    print("%-8s top manufacturers: %s" % ("", ", ".join("%s %d" % kv for kv in
          sorted(makers.items(), key=lambda kv: -kv[1])[:3])))
PY

if [ $keep = 1 ]; then
    echo "== left running: gateway $gw (token in $admin_token_file), logs in $run"
    exit 0
fi
echo "== stopping"
for p in "$run"/*.pid; do
    pid=$(cat "$p"); kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$p"
done
deploy/local/kafka.sh stop --dir "$MSPSYNC_LOCAL_DIR/run/kafka" >/dev/null
deploy/local/redis.sh stop --dir "$MSPSYNC_LOCAL_DIR/run/redis" >/dev/null
echo "done"
