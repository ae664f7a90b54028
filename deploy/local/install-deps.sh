#!/usr/bin/env bash
# install-deps.sh — everything a developer or CI needs to build mspsync and run its tests locally.
#
#  1. Debian packages (compilers, -dev libraries, redis-server, kcat, a JRE, maven, clang-format
#     for tests/format_check.sh, ...): installed
#     with apt-get only when `dpkg -s` reports one missing (sudo is used when not root).
#  2. The Apache Kafka broker jars (version in deploy/local/kafka-pom.xml) copied from Maven Central
#     into $MSPSYNC_LOCAL_DIR/kafka/libs (default <repo>/.local/kafka/libs); skipped when the marker
#     $MSPSYNC_LOCAL_DIR/kafka/installed matches the pom.
#  3. A Python venv at $MSPSYNC_LOCAL_DIR/venv with the pinned test tools from PyPI (Schemathesis
#     and openapi-spec-validator, used by tests/integration/test_api_properties.py); skipped when
#     the marker $MSPSYNC_LOCAL_DIR/venv/installed matches the pins.
#  4. A second venv at $MSPSYNC_LOCAL_DIR/venv-k8s with the pinned manifest checkers
#     (kubernetes-validate and checkov, used by tests/k8s_validate.sh): checkov pins some eighty
#     packages of its own and would move ones the first venv's tools rely on, so it lives apart;
#     skipped when the marker $MSPSYNC_LOCAL_DIR/venv-k8s/installed matches the pins.
#     The same test needs kubectl with kustomize v5 (kubectl 1.27 or later), which is not taken
#     from Debian: bookworm's kubernetes-client is 1.20 (kustomize v2, too old for the manifests)
#     and its /usr/bin/kubectl clashes with the kubectl package the machines come with.
#
# Idempotent. Prints nothing but errors and one summary line. Exit 0 on success.
# Env: MSPSYNC_LOCAL_DIR, MSPSYNC_SKIP_APT=1 (don't touch Debian packages), MVN (maven command).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(build-essential cmake pkg-config librdkafka-dev libjansson-dev libhiredis-dev
          libevent-dev libcurl4-openssl-dev libssl-dev redis-server kcat libcmocka-dev python3
          python3-venv default-jre-headless maven curl docker-compose wrk clang-format)
# Test tools from PyPI, pinned: a new Schemathesis release may change what it generates or checks.
PY_TOOLS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
VENV="$MSPSYNC_LOCAL_DIR/venv"
# Kubernetes manifest checkers, pinned: a new checkov release adds policies that may fail.
K8S_PY_TOOLS=(kubernetes-validate==1.37.0 checkov==3.3.30)
K8S_VENV="$MSPSYNC_LOCAL_DIR/venv-k8s"
POM="$MSPSYNC_REPO/deploy/local/kafka-pom.xml"
KAFKA_HOME="$MSPSYNC_LOCAL_DIR/kafka"
LIBS="$KAFKA_HOME/libs"
MARKER="$KAFKA_HOME/installed"

tmplog=$(mktemp)
trap 'rm -f "$tmplog"' EXIT

# ---- 1. Debian packages ------------------------------------------------------------------------
apt_summary="skipped"
if [ "${MSPSYNC_SKIP_APT:-0}" != 1 ]; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        apt_summary="all ${#PACKAGES[@]} packages present"
    else
        SUDO=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null || msp_die "not root and no sudo: install ${missing[*]}"
            SUDO=(sudo)
        fi
        export DEBIAN_FRONTEND=noninteractive
        if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$tmplog" 2>&1; then
            cat "$tmplog" >&2; msp_die "apt-get update failed"
        fi
        if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends "${missing[@]}" >"$tmplog" 2>&1; then
            cat "$tmplog" >&2; msp_die "apt-get install failed: ${missing[*]}"
        fi
        apt_summary="installed ${missing[*]}"
    fi
fi

# ---- 2. Kafka broker jars ----------------------------------------------------------------------
[ -f "$POM" ] || msp_die "missing $POM"
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)
[ -n "$kafka_version" ] || msp_die "no <kafka.version> in $POM"
want="kafka $kafka_version pom-sha256 $(sha256sum "$POM" | cut -d' ' -f1)"

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want" ] \
        && [ -f "$LIBS/kafka_2.13-$kafka_version.jar" ]; then
    kafka_summary="kafka $kafka_version jars present in $LIBS"
else
    command -v "${MVN:-mvn}" >/dev/null || msp_die "maven (mvn) not found"
    mkdir -p "$KAFKA_HOME"
    tmp_libs="$KAFKA_HOME/libs.tmp.$$"
    rm -rf "$tmp_libs"
    # -B: no colours/progress; -q: errors only. The pom has packaging "pom": nothing is built.
    if ! (cd "$KAFKA_HOME" && "${MVN:-mvn}" -B -q -f "$POM" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp_libs") >"$tmplog" 2>&1; then
        rm -rf "$tmp_libs"
        cat "$tmplog" >&2; msp_die "maven could not fetch the Kafka $kafka_version jars"
    fi
    [ -f "$tmp_libs/kafka_2.13-$kafka_version.jar" ] || { rm -rf "$tmp_libs"; msp_die "kafka_2.13-$kafka_version.jar not among the fetched jars"; }
    rm -rf "$LIBS" "$KAFKA_HOME/target"
    mv "$tmp_libs" "$LIBS"
    printf '%s\n' "$want" >"$MARKER"
    kafka_summary="kafka $kafka_version: fetched $(find "$LIBS" -name '*.jar' | wc -l) jars into $LIBS"
fi

# ---- 3. and 4. Python tools, one venv each -----------------------------------------------------
# py_venv DIR CHECK_BIN TOOL...: make the venv DIR with the pinned TOOLs unless its marker names
# exactly those pins and DIR/bin/CHECK_BIN exists; sets py_venv_summary.
py_venv() {
    local dir=$1 check=$2; shift 2
    local want="$*"
    if [ -f "$dir/installed" ] && [ "$(cat "$dir/installed")" = "$want" ] && [ -x "$dir/bin/$check" ]; then
        py_venv_summary="present in $dir"
        return
    fi
    if [ ! -x "$dir/bin/python" ] && ! python3 -m venv "$dir" >"$tmplog" 2>&1; then
        cat "$tmplog" >&2; msp_die "could not create the venv $dir (python3-venv missing?)"
    fi
    if ! "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@" >"$tmplog" 2>&1; then
        cat "$tmplog" >&2; msp_die "pip could not install $* into $dir"
    fi
    printf '%s\n' "$want" >"$dir/installed"
    py_venv_summary="installed $* into $dir"
}
py_venv "$VENV" st "${PY_TOOLS[@]}"
py_summary="python tools $py_venv_summary"
py_venv "$K8S_VENV" checkov "${K8S_PY_TOOLS[@]}"
k8s_summary="manifest checkers $py_venv_summary"

echo "install-deps: debian: $apt_summary; $kafka_summary; $py_summary; $k8s_summary"
