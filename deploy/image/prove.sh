#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# prove.sh — proves the image of deploy/Dockerfile on a machine without a Docker engine or a
# registry: rootful podman builds it on a Debian 13 base made with debootstrap, then every service
# and the simulators run from it against the project's local Kafka and Redis, a Syncro sync, a
# ConnectWise RMM sync and a signed incident → ticket go through them, and every container must
# exit 0 within 2 s of its SIGTERM. Too slow for CI (debootstrap, a compile under vfs): run by hand.
#
# Usage: deploy/image/prove.sh [--build-only | --no-build]
#   --build-only   stop after the image is built (its unit tests ran inside the build)
#   --no-build     use the image MSPSYNC_PROVE_IMAGE as it is (steps 4-7 only)
# Env:   MSPSYNC_PROVE_STATE   cache of the debootstrap base (default /var/tmp/mspsync-image-prove);
#                              reruns reuse it and podman's layer cache
#        MSPSYNC_PROVE_IMAGE   tag of the built image (default localhost/mspsync:prove)
#        MSPSYNC_PROVE_KEEP=1  keep the work directory (container logs) after success
#        MSPSYNC_PROVE_NO_CACHE=1  rebuild every layer, so that the log shows the unit tests run
#
# Steps:
#   1. podman, buildah, runc, debootstrap from apt if missing; /etc/containers/containers.conf
#      (runtime runc, nofile/nproc ulimits) and storage.conf (driver vfs) written when absent.
#   2. debootstrap --variant=minbase trixie into the state dir (once), imported as
#      docker.io/library/debian:trixie-slim, the Dockerfile's BASE_IMAGE, unless that exists.
#   3. podman build --network host --format docker (Docker format keeps the HEALTHCHECK).
#   4. deploy/local/kafka.sh and redis.sh start a broker and a Redis on loopback.
#   5. Containers with --network host, each bound to 127.0.0.1 on a free port through the env:
#      syncro-sim, cwrmm-sim, gateway (secret key as a 0600 file owned by 10001, mounted
#      read-only, MSPSYNC_SECRET_KEY_FILE), fetcher, normalizer (records), normalizer-events,
#      ticket-creator, write-back; all with --read-only and the image's uid 10001. The admin
#      token is a mounted file too once the gateway reads MSPSYNC_ADMIN_TOKEN_FILE (its --help
#      tells), else an environment variable. Each must pass the image's own HEALTHCHECK (podman
#      healthcheck run), which must fail against a closed port.
#   6. bench/benchtool.py setup-ticketing: a Syncro account synced through the fetcher and the
#      normalizer, ticketing configured, a webhook secret. A ConnectWise RMM partner on cwrmm-sim
#      connected to a second tenant and synced (state Connected, every device in the inventory).
#      mtp-sim, run from the image, sends signed incidents; benchtool.py ticket-latency checks
#      that the simulator received a ticket for every new one.
#   7. Each container gets SIGTERM (podman kill) in shutdown order; its exit code must be 0 and
#      its FinishedAt within 2 s of the signal.
#   8. docker-compose.yml through podman's Docker-compatible API (where docker-compose is
#      installed): `run secrets-init` makes the key and the token (0400, uid 10001), a second run
#      keeps them byte for byte; ps, logs and down -v work with an empty environment.
# Prints a summary with each step's seconds. Exit 0 only when every check held.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../local/lib.sh
. "$ROOT/deploy/local/lib.sh"
cd "$ROOT"

BUILD_ONLY=0 NO_BUILD=0
case "${1:-}" in
    --build-only) BUILD_ONLY=1 ;;
    --no-build) NO_BUILD=1 ;;
    "") ;;
    *) echo "usage: $0 [--build-only | --no-build]" >&2; exit 2 ;;
esac
STATE=${MSPSYNC_PROVE_STATE:-/var/tmp/mspsync-image-prove}
IMAGE=${MSPSYNC_PROVE_IMAGE:-localhost/mspsync:prove}
BASE=docker.io/library/debian:trixie-slim
STOP_LIMIT_S=2
[ "$(id -u)" = 0 ] || msp_die "run as root (rootful podman)"

W=$(mktemp -d "${TMPDIR:-/tmp}/mspsync-prove.XXXXXX")
chmod 0755 "$W"
TAG="p$$"                    # container names: mspsync-$TAG-<name>
CONTAINERS=()                # started containers, in start order
KAFKA_STARTED=0 REDIS_STARTED=0 OK=0
SUMMARY=()
T_START=$(date +%s.%N)

# podman without systemd says at every start and removal of a container with a HEALTHCHECK that it
# cannot set up the check's timer; the checks here are run by hand (podman healthcheck run).
pod() { podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
elapsed() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(date +%s.%N)"; }
CURRENT_STEP="" CURRENT_T0=""
step() {       # NAME FUNCTION...: run, time it, note it in the summary. Not in an `||` list, so
               # that set -e holds inside the function: its first failure ends the script, and
               # cleanup notes the step that failed.
    CURRENT_STEP=$1 CURRENT_T0=$(date +%s.%N)
    shift
    log "== $CURRENT_STEP"
    "$@"
    SUMMARY+=("$(printf '%-34s %7ss  ok' "$CURRENT_STEP" "$(elapsed "$CURRENT_T0")")")
    CURRENT_STEP=""
}

cleanup() {
    local rc=$? c
    set +e
    [ -n "$CURRENT_STEP" ] && SUMMARY+=("$(printf '%-34s %7ss  FAILED' "$CURRENT_STEP" "$(elapsed "$CURRENT_T0")")")
    for c in "${CONTAINERS[@]}"; do pod rm -f -t 0 "mspsync-$TAG-$c" >/dev/null 2>&1; done
    compose_cleanup
    [ "$REDIS_STARTED" = 1 ] && deploy/local/redis.sh stop --dir "$W/redis" >/dev/null 2>&1
    [ "$KAFKA_STARTED" = 1 ] && deploy/local/kafka.sh stop --dir "$W/kafka" --purge >/dev/null 2>&1
    echo
    echo "== summary ($(elapsed "$T_START") s in all)"
    printf '%s\n' "${SUMMARY[@]}"
    if [ "$OK" = 1 ]; then
        echo "RESULT: ok"
        [ "${MSPSYNC_PROVE_KEEP:-0}" = 1 ] && echo "work directory kept: $W" || rm -rf "$W"
    else
        echo "RESULT: FAILED (exit $rc); container logs in $W"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. tools and podman's configuration -------------------------------------------------------
tools() {
    local missing=() t
    for t in podman buildah runc debootstrap; do command -v "$t" >/dev/null || missing+=("$t"); done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            podman buildah runc debootstrap uidmap >/dev/null
    fi
    for t in curl python3 java redis-server; do
        command -v "$t" >/dev/null || deploy/local/install-deps.sh
    done
    mkdir -p /etc/containers
    local cc=/etc/containers/containers.conf sc=/etc/containers/storage.conf
    if [ ! -e "$cc" ]; then
        cat >"$cc" <<'EOF'
# Written by mspsync deploy/image/prove.sh: runc as the OCI runtime (crun is not installed) and
# explicit ulimits (the defaults ask for more than this sandbox grants).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
    elif ! grep -q '^ *runtime *= *"runc"' "$cc"; then
        msp_warn "$cc exists without runtime = \"runc\": left as it is"
    fi
    if [ ! -e "$sc" ]; then
        cat >"$sc" <<'EOF'
# Written by mspsync deploy/image/prove.sh: vfs needs no overlay or fuse support from the kernel.
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
    elif ! grep -q '^ *driver *= *"vfs"' "$sc"; then
        msp_warn "$sc exists without driver = \"vfs\": left as it is"
    fi
    podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}'
}

# ---- 2. the Debian 13 base image ---------------------------------------------------------------
base_image() {
    if podman image exists "$BASE"; then
        echo "$BASE present"
        return 0
    fi
    mkdir -p "$STATE"
    local tarball=$STATE/trixie-minbase.tar root=$STATE/trixie-root.partial
    if [ ! -s "$tarball" ]; then
        # A root left by an earlier run is reused if debootstrap completed (it removes its own
        # debootstrap/ folder last), else made anew.
        if [ -d "$root/debootstrap" ] || [ ! -x "$root/usr/bin/apt-get" ]; then
            rm -rf "$root"
            debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1 \
                || { tail -20 "$STATE/debootstrap.log"; return 1; }
        fi
        # The trixie sources live only inside this root: the host's apt is left alone.
        cat >"$root/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian trixie main
deb http://deb.debian.org/debian trixie-updates main
deb http://deb.debian.org/debian-security trixie-security main
EOF
        rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
        tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$root"
    fi
    podman import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$tarball" "$BASE" >/dev/null
    echo "$BASE imported from $tarball"
}

# ---- 3. the image ------------------------------------------------------------------------------
build_image() {
    local nocache=()
    [ "${MSPSYNC_PROVE_NO_CACHE:-0}" = 1 ] && nocache=(--no-cache)
    podman build "${nocache[@]}" --network host --format docker -f deploy/Dockerfile --build-arg BUILD_JOBS=2 \
        -t "$IMAGE" . >"$W/build.log" 2>&1 || { tail -60 "$W/build.log"; return 1; }
    # The unit tests' verdict, from the build's own log (a cached build shows none: say so).
    grep -E 'tests passed|tests failed' "$W/build.log" || echo "(compile and unit tests reused from the layer cache)"
    podman image inspect "$IMAGE" --format '{{.Id}} {{.Size}} {{.Config.User}}' \
        | awk '{ printf "image %.12s, %.0f MB, user %s\n", $1, $2 / 1e6, $3 }'
    # The Debian 13 libraries it was built and unit-tested against, and runs with.
    pod run --rm "$IMAGE" dpkg-query -W -f '${Package} ${Version}\n' \
        librdkafka1 libhiredis1.1.0 libjansson4 libevent-2.1-7t64 libcurl4t64 libssl3t64 | paste -sd ' ' \
        | sed 's/^/libraries: /'
    pod run --rm "$IMAGE" sh -c '. /etc/os-release; echo "base: $PRETTY_NAME"'

}

step "tools and podman configuration" tools
if [ $NO_BUILD = 0 ]; then
    step "debian 13 base (debootstrap)" base_image
    step "image build + unit tests" build_image
fi
if [ $BUILD_ONLY = 1 ]; then OK=1; exit 0; fi

# ---- 4. Kafka and Redis on the host's loopback -------------------------------------------------
backends() {
    KAFKA_STARTED=1
    BROKERS=$(deploy/local/kafka.sh start --dir "$W/kafka")
    REDIS_STARTED=1
    REDIS=$(deploy/local/redis.sh start --dir "$W/redis")
    echo "kafka $BROKERS, redis $REDIS"
}

# ---- 5. the services and simulators from the image ---------------------------------------------
ctr() {          # NAME [podman run options...] -- COMMAND...: start a container of the image
    local name=$1 opts=()
    shift
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    pod run -d --name "mspsync-$TAG-$name" --network host --read-only "${opts[@]}" "$IMAGE" "$@" >/dev/null
    CONTAINERS+=("$name")
}
wait_http() {    # NAME URL: until URL answers 200 while the container runs (60 s)
    local i
    for ((i = 0; i < 600; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$2" 2>/dev/null)" = 200 ] && return 0
        [ "$(podman inspect -f '{{.State.Running}}' "mspsync-$TAG-$1")" = true ] || break
        sleep 0.1
    done
    log "$1 did not answer $2"; podman logs --tail 30 "mspsync-$TAG-$1" >&2; return 1
}

start_all() {
    local p ports
    mapfile -t ports < <(msp_free_port 8)
    P_SYNCRO=${ports[0]} P_CWRMM=${ports[1]} P_GW=${ports[2]} P_FE=${ports[3]}
    P_NZ=${ports[4]} P_NZE=${ports[5]} P_TC=${ports[6]} P_WB=${ports[7]}
    SIM=http://127.0.0.1:$P_SYNCRO CW=http://127.0.0.1:$P_CWRMM GW=http://127.0.0.1:$P_GW

    # The key file as docs/deploy.md says: 0600, owned by the image's uid 10001, mounted read-only.
    mkdir -p "$W/secrets"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$W/secrets/secret.key"
    chown 10001:10001 "$W/secrets/secret.key"
    chmod 0600 "$W/secrets/secret.key"
    ADMIN=adm-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    local key=(-v "$W/secrets/secret.key:/run/secrets/mspsync_secret_key:ro"
               -e MSPSYNC_SECRET_KEY_FILE=/run/secrets/mspsync_secret_key)
    # The admin token as a file too where the gateway reads MSPSYNC_ADMIN_TOKEN_FILE (its --help
    # says so), else in the environment.
    local token=(-e MSPSYNC_ADMIN_TOKEN="$ADMIN") how="environment"
    if podman run --rm "$IMAGE" mspsync-gateway --help 2>/dev/null | grep -q MSPSYNC_ADMIN_TOKEN_FILE; then
        printf '%s' "$ADMIN" >"$W/secrets/admin.token"
        chown 10001:10001 "$W/secrets/admin.token"
        chmod 0600 "$W/secrets/admin.token"
        token=(-v "$W/secrets/admin.token:/run/secrets/mspsync_admin_token:ro"
               -e MSPSYNC_ADMIN_TOKEN_FILE=/run/secrets/mspsync_admin_token)
        how="file (MSPSYNC_ADMIN_TOKEN_FILE)"
    fi
    local env=(-e MSPSYNC_KAFKA_BROKERS="$BROKERS" -e MSPSYNC_REDIS_URL="$REDIS"
               -e MSPSYNC_TOPIC_PREFIX="prove$(date +%s)." -e MSPSYNC_LOG_LEVEL=info
               -e MSPSYNC_HTTP_BIND=127.0.0.1 -e MSPSYNC_METRICS_BIND=127.0.0.1)

    ctr syncro-sim -- syncro-sim --bind 127.0.0.1 --port "$P_SYNCRO" --seed 7
    ctr cwrmm-sim -- cwrmm-sim --bind 127.0.0.1 --port "$P_CWRMM" --seed 11
    ctr gateway "${env[@]}" "${key[@]}" -e MSPSYNC_HTTP_PORT="$P_GW" "${token[@]}" -- mspsync-gateway
    ctr fetcher "${env[@]}" "${key[@]}" -e MSPSYNC_METRICS_PORT="$P_FE" -- mspsync-fetcher
    ctr normalizer "${env[@]}" -e MSPSYNC_METRICS_PORT="$P_NZ" -e MSPSYNC_NORMALIZER_INPUT=records -- mspsync-normalizer
    ctr normalizer-events "${env[@]}" -e MSPSYNC_METRICS_PORT="$P_NZE" -e MSPSYNC_NORMALIZER_INPUT=events -- mspsync-normalizer
    ctr ticket-creator "${env[@]}" "${key[@]}" -e MSPSYNC_METRICS_PORT="$P_TC" -- mspsync-ticket-creator
    ctr write-back "${env[@]}" "${key[@]}" -e MSPSYNC_METRICS_PORT="$P_WB" -- mspsync-write-back

    wait_http syncro-sim "$SIM/_sim/stats"
    wait_http cwrmm-sim "$CW/_sim/stats"
    wait_http gateway "$GW/readyz"
    for p in fetcher:$P_FE normalizer:$P_NZ normalizer-events:$P_NZE ticket-creator:$P_TC write-back:$P_WB; do
        wait_http "${p%%:*}" "http://127.0.0.1:${p#*:}/readyz"
    done
    # The image's HEALTHCHECK, as Docker would run it, in every container.
    local c bad=0
    for c in "${CONTAINERS[@]}"; do
        podman healthcheck run "mspsync-$TAG-$c" >/dev/null 2>&1 || { log "healthcheck of $c failed"; bad=1; }
    done
    [ $bad = 0 ] || return 1
    # ... and it does fail where nothing answers.
    if podman exec -e MSPSYNC_HEALTH_URL=http://127.0.0.1:1/healthz "mspsync-$TAG-gateway" mspsync-healthcheck 2>/dev/null; then
        log "mspsync-healthcheck passed against a closed port"; return 1
    fi
    echo "${#CONTAINERS[@]} containers up, HEALTHCHECK healthy in each (and unhealthy against a closed port)"
    echo "uid in the containers: $(podman exec "mspsync-$TAG-gateway" id -u); secret key from a 0600 file owned by 10001; admin token from the $how"
}

# ---- 6. the work through them ------------------------------------------------------------------
syncro_sync() {  # a Syncro account synced, ticketing on, 5 organisations mapped (bench/benchtool.py)
    TK_SECRET=$(python3 bench/benchtool.py setup-ticketing --sim "$SIM" --gateway "$GW" --admin-token "$ADMIN" --orgs 5)
    curl -fsS -H "Authorization: Bearer $ADMIN" "$GW/v1/tenants/tk/integrations/syncro" | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["state"] == "Connected" and s["counts"]["customers"] == 15 and s["counts"]["assets"] == 5, s
print("syncro: state %s, customers %d, assets %d" % (s["state"], s["counts"]["customers"], s["counts"]["assets"]))'
}

cwrmm_sync() {   # a ConnectWise RMM partner on cwrmm-sim, connected to tenant "cw" and synced
    python3 - "$CW" "$GW" "$ADMIN" <<'PY'
import json, sys, time, urllib.request
cw, gw, token = sys.argv[1:4]
def call(method, url, body=None, auth=False):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    if auth:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")
devices = 40
call("POST", cw + "/_sim/partners", {"partner": "prove", "client_id": "cid-prove", "client_secret": "sec-prove",
                                      "companies": 4, "sites_per_company": 2, "devices": devices})
call("POST", gw + "/v1/tenants", {"id": "cw", "name": "ConnectWise RMM proof"}, auth=True)
call("PUT", gw + "/v1/tenants/cw/integrations/cwrmm",
     {"base_url": cw + "/prove", "client_id": "cid-prove", "client_secret": "sec-prove"}, auth=True)
deadline = time.time() + 240
while True:
    s = call("GET", gw + "/v1/tenants/cw/integrations/cwrmm", auth=True)
    if s["state"] == "Error":
        sys.exit("cwrmm sync failed: %r" % s)
    if s["state"] == "Connected" and s["counts"]["assets"] >= devices:
        break
    if time.time() > deadline:
        sys.exit("cwrmm sync not done after 240 s: %r" % s)
    time.sleep(0.5)
listed = call("GET", gw + "/v1/tenants/cw/assets?per_page=500", auth=True)["meta"]["total_entries"]
assert listed == devices, (listed, devices)
print("cwrmm: state %s, customers %d, assets %d (inventory lists %d)" % (
    s["state"], s["counts"]["customers"], s["counts"]["assets"], listed))
PY
}

incidents() {    # signed incidents from mtp-sim (in the image) → tickets at the Syncro simulator
    mkdir -p "$W/mtp" && chmod 0777 "$W/mtp"
    pod run --rm --network host --read-only -v "$W/mtp:/out" "$IMAGE" \
        mtp-sim --url "$GW/v1/webhooks/mtp/tk" --secret "$TK_SECRET" --count 10 --rate 10 --orgs 5 \
        --mix new=100 --seed 3 --id-prefix prove --log /out/mtp.jsonl >"$W/mtp/out.txt"
    python3 bench/benchtool.py ticket-latency --sim "$SIM" --log "$W/mtp/mtp.jsonl" --rate 10 --timeout 120
}

# ---- 7. SIGTERM, exit 0 within 2 s -------------------------------------------------------------
stop_all() {
    # Intake first, then the workers downstream of it, the simulators last (they answer the
    # workers' last calls).
    local order=(gateway fetcher normalizer normalizer-events ticket-creator write-back cwrmm-sim syncro-sim)
    local c name sent code fin secs bad=0
    # Memory of each container after the work (docs/deploy.md sizing); informative, not checked.
    podman stats --no-stream --format '{{.Name}} {{.MemUsage}}' "${order[@]/#/mspsync-$TAG-}" 2>/dev/null \
        | sed "s/^mspsync-$TAG-/  memory /" || true
    for c in "${order[@]}"; do
        name=mspsync-$TAG-$c
        sent=$(date +%s.%N)
        podman kill --signal TERM "$name" >/dev/null
        code=$(timeout 30 podman wait "$name") || code=timeout
        fin=$(podman inspect -f '{{.State.FinishedAt}}' "$name")
        secs=$(python3 - "$sent" "$fin" <<'PY'
import datetime, re, sys
sent = float(sys.argv[1])
m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))? ([+-]\d{4})", sys.argv[2])
t = datetime.datetime.strptime(m.group(1) + " " + m.group(3), "%Y-%m-%d %H:%M:%S %z").timestamp()
t += float("0." + (m.group(2) or "0"))
print("%.2f" % (t - sent))
PY
)
        if [ "$code" = 0 ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= $STOP_LIMIT_S else 1)" "$secs"; then
            printf '  %-18s exit %s after %ss\n' "$c" "$code" "$secs"
        else
            printf '  %-18s exit %s after %ss  <-- over %ss or not 0\n' "$c" "$code" "$secs" "$STOP_LIMIT_S"
            bad=1
        fi
        podman logs "$name" >"$W/$c.log" 2>&1
        SUMMARY+=("$(printf '  stop %-29s %7ss  exit %s' "$c" "$secs" "$code")")
    done
    for c in "${order[@]}"; do pod rm "mspsync-$TAG-$c" >/dev/null; done
    CONTAINERS=()
    return $bad
}

# ---- 8. Compose: the secrets made once and kept; ps, logs, down -v with an empty environment ----
# docker-compose (v1) talks to podman's Docker-compatible API. Kafka and Redis are not started
# (their images come from a registry); secrets-init needs neither.
compose_secrets() {
    command -v docker-compose >/dev/null || { echo "docker-compose not installed: skipped"; return 0; }
    local sock=$W/podman.sock i out vol k1 k2 stat
    # podman itself, not the pod() function: a function in the background is a subshell of this
    # script, with its traps (a SIGTERM to it would run cleanup there).
    podman system service --time=0 "unix://$sock" >"$W/podman-service.log" 2>&1 &
    PODMAN_SERVICE=$!
    for ((i = 0; i < 100; i++)); do [ -S "$sock" ] && break; sleep 0.1; done
    COMPOSE_PROJECT=mspsync-prove-$$
    COMPOSE_TAG=prove-$$
    podman tag "$IMAGE" "docker.io/library/mspsync:$COMPOSE_TAG"
    # Nothing from this shell: only the engine's address (and, for `run`, the image's tag).
    dc() { env -i PATH="$PATH" HOME="${HOME:-/root}" DOCKER_HOST="unix://$sock" "$@"; }
    out=$(dc MSPSYNC_IMAGE_TAG="$COMPOSE_TAG" docker-compose -p "$COMPOSE_PROJECT" run --rm secrets-init 2>&1)
    grep -q "secret.key generated" <<<"$out" && grep -q "admin.token generated" <<<"$out" \
        || { echo "$out"; return 1; }
    vol=$(podman volume inspect "${COMPOSE_PROJECT}_secrets" --format '{{.Mountpoint}}')
    stat=$(stat -c '%n %a %u:%g' "$vol/secret.key" "$vol/admin.token" | sed "s|$vol/||" | paste -sd ' ')
    [ "$stat" = "secret.key 400 10001:10001 admin.token 400 10001:10001" ] || { echo "modes: $stat"; return 1; }
    k1=$(cat "$vol/secret.key" "$vol/admin.token" | sha256sum)
    out=$(dc MSPSYNC_IMAGE_TAG="$COMPOSE_TAG" docker-compose -p "$COMPOSE_PROJECT" run --rm secrets-init 2>&1)
    k2=$(cat "$vol/secret.key" "$vol/admin.token" | sha256sum)
    grep -q "secret.key kept" <<<"$out" && [ "$k1" = "$k2" ] || { echo "$out"; echo "the secrets changed"; return 1; }
    echo "secrets-init: generated on the first run ($stat), kept byte for byte on the second"
    dc docker-compose -p "$COMPOSE_PROJECT" ps >/dev/null
    dc docker-compose -p "$COMPOSE_PROJECT" logs >/dev/null
    dc docker-compose -p "$COMPOSE_PROJECT" down -v >/dev/null 2>&1
    ! podman volume exists "${COMPOSE_PROJECT}_secrets" || { echo "down -v left the secrets volume"; return 1; }
    echo "docker-compose ps, logs, down -v with an empty environment: ok (down -v removed the volumes)"
    compose_cleanup
}
compose_cleanup() {
    [ -n "${PODMAN_SERVICE:-}" ] || return 0
    if [ -n "${COMPOSE_PROJECT:-}" ] && podman volume exists "${COMPOSE_PROJECT}_secrets" 2>/dev/null; then
        env -i PATH="$PATH" HOME="${HOME:-/root}" DOCKER_HOST="unix://$W/podman.sock" \
            docker-compose -p "$COMPOSE_PROJECT" down -v >/dev/null 2>&1
    fi
    # untag with a name removes that name only (without one, podman removes every tag)
    podman untag "$IMAGE" "docker.io/library/mspsync:$COMPOSE_TAG" 2>/dev/null
    kill "$PODMAN_SERVICE" 2>/dev/null && wait "$PODMAN_SERVICE" 2>/dev/null
    PODMAN_SERVICE=""
    return 0
}

step "kafka + redis (deploy/local)" backends
step "containers up (8, --network host)" start_all
step "syncro sync + ticketing setup" syncro_sync
step "connectwise rmm sync" cwrmm_sync
step "signed incidents -> tickets" incidents
step "SIGTERM, exit 0 within ${STOP_LIMIT_S}s" stop_all
step "compose: secrets once, empty env" compose_secrets
OK=1
