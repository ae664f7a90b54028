#!/usr/bin/env bash
# install-deps.sh — everything a developer or CI needs to build mspsync and run its tests locally.
#
#  1. Debian packages (compilers, -dev libraries, redis-server, kcat, a JRE, maven, ...): installed
#     with apt-get only when `dpkg -s` reports one missing (sudo is used when not root).
#  2. The Apache Kafka broker jars (version in deploy/local/kafka-pom.xml) copied from Maven Central
#     into $MSPSYNC_LOCAL_DIR/kafka/libs (default <repo>/.local/kafka/libs); skipped when the marker
#     $MSPSYNC_LOCAL_DIR/kafka/installed matches the pom.
#  3. A Python venv at $MSPSYNC_LOCAL_DIR/venv with the pinned test tools from PyPI (Schemathesis
#     and openapi-spec-validator, used by tests/integration/test_api_properties.py); skipped when
#     the marker $MSPSYNC_LOCAL_DIR/venv/installed matches the pins.
#
# Idempotent. Prints nothing but errors and one summary line. Exit 0 on success.
# Env: MSPSYNC_LOCAL_DIR, MSPSYNC_SKIP_APT=1 (don't touch Debian packages), MVN (maven command).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(build-essential cmake pkg-config librdkafka-dev libjansson-dev libhiredis-dev
          libevent-dev libcurl4-openssl-dev libssl-dev redis-server kcat libcmocka-dev python3
          python3-venv default-jre-headless maven curl docker-compose wrk)
# Test tools from PyPI, pinned: a new Schemathesis release may change what it generates or checks.
PY_TOOLS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
VENV="$MSPSYNC_LOCAL_DIR/venv"
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

# ---- 3. Python test tools -----------------------------------------------------------------------
want_py="${PY_TOOLS[*]}"
if [ -f "$VENV/installed" ] && [ "$(cat "$VENV/installed")" = "$want_py" ] && [ -x "$VENV/bin/st" ]; then
    py_summary="python tools present in $VENV"
else
    if [ ! -x "$VENV/bin/python" ] && ! python3 -m venv "$VENV" >"$tmplog" 2>&1; then
        cat "$tmplog" >&2; msp_die "could not create the venv $VENV (python3-venv missing?)"
    fi
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_TOOLS[@]}" \
            >"$tmplog" 2>&1; then
        cat "$tmplog" >&2; msp_die "pip could not install ${PY_TOOLS[*]} into $VENV"
    fi
    printf '%s\n' "$want_py" >"$VENV/installed"
    py_summary="installed ${PY_TOOLS[*]} into $VENV"
fi

echo "install-deps: debian: $apt_summary; $kafka_summary; $py_summary"
