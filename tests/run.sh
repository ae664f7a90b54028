#!/usr/bin/env bash
# tests/run.sh — the whole test suite, from a fresh Debian machine.
#
#   1. installs what it needs (deploy/local/install-deps.sh: Debian packages, Kafka jars, the
#      Python test tools in .local/venv);
#   2. builds twice: a normal build (build/) and an AddressSanitizer+UBSan build (build-asan/);
#   3. runs, in each build, the unit tests (ctest -L unit) and the integration tests
#      (ctest -L integration: a real Kafka broker started by the CTest fixture, a redis-server
#      per test, the vendor simulators over HTTP).
#
# Idempotent. Env: MSPSYNC_TEST_BUILDS="release asan" (which builds to test), CTEST_ARGS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

deploy/local/install-deps.sh

builds=${MSPSYNC_TEST_BUILDS:-"release asan"}
jobs=$(nproc 2>/dev/null || echo 2)
status=0
for b in $builds; do
    case "$b" in
        release) dir=build;      opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DMSPSYNC_SANITIZE=OFF) ;;
        asan)    dir=build-asan; opts=(-DCMAKE_BUILD_TYPE=Debug -DMSPSYNC_SANITIZE=ON) ;;
        *) echo "tests/run.sh: unknown build '$b'" >&2; exit 2 ;;
    esac
    echo "== $b build ($dir)"
    cmake -S "$repo" -B "$dir" -DMSPSYNC_TESTS=ON "${opts[@]}" >/dev/null
    cmake --build "$dir" -j "$jobs" >"$dir/build.log" 2>&1 || { tail -50 "$dir/build.log"; exit 1; }
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=66"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=67"
    echo "== $b: unit tests"
    (cd "$dir" && ctest -L unit --output-on-failure ${CTEST_ARGS:-}) || status=1
    echo "== $b: integration tests"
    (cd "$dir" && ctest -L integration --output-on-failure ${CTEST_ARGS:-}) || status=1
done
exit $status
