#!/usr/bin/env bash
# tests/run.sh — the whole test suite, from a fresh Debian machine.
#
#   1. installs what it needs (deploy/local/install-deps.sh: Debian packages, Kafka jars, the
#      Python test tools in .local/venv), then checks that the C lines changed against the base
#      have the form of .clang-format (tests/format_check.sh: a branch against its merge-base with
#      main, main itself against its previous commit; a failure fails the run at the end);
#   2. builds twice: a normal build (build/) and an AddressSanitizer+UBSan build (build-asan/);
#   3. runs, in each build, the unit tests (ctest -L unit);
#   4. then the integration tests of every build at the same time (ctest -L integration, each
#      build with its own Kafka broker started by its CTest fixture, a redis-server per test, the
#      vendor simulators over HTTP), MSPSYNC_IT_JOBS tests at once in each build: they mostly
#      wait (on simulated latency, outages, a broker restart), so running them side by side
#      divides the wall time; each prints its output once done, in build order.
#
# Idempotent. Env: MSPSYNC_TEST_BUILDS="release asan" (which builds to test), CTEST_ARGS,
# MSPSYNC_IT_JOBS (integration tests at once per build; default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

deploy/local/install-deps.sh

builds=${MSPSYNC_TEST_BUILDS:-"release asan"}
jobs=$(nproc 2>/dev/null || echo 2)
it_jobs=${MSPSYNC_IT_JOBS:-2}
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=66"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=67"
status=0
echo "== format of the changed lines (tests/format_check.sh)"
tests/format_check.sh || status=1
dirs=()
for b in $builds; do
    case "$b" in
        release) dir=build;      opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DMSPSYNC_SANITIZE=OFF) ;;
        asan)    dir=build-asan; opts=(-DCMAKE_BUILD_TYPE=Debug -DMSPSYNC_SANITIZE=ON) ;;
        *) echo "tests/run.sh: unknown build '$b'" >&2; exit 2 ;;
    esac
    echo "== $b build ($dir)"
    cmake -S "$repo" -B "$dir" -DMSPSYNC_TESTS=ON "${opts[@]}" >/dev/null
    cmake --build "$dir" -j "$jobs" >"$dir/build.log" 2>&1 || { tail -50 "$dir/build.log"; exit 1; }
    echo "== $b: unit tests"
    (cd "$dir" && ctest -L unit --output-on-failure ${CTEST_ARGS:-}) || status=1
    dirs+=("$b:$dir")
done

pids=()
for bd in "${dirs[@]}"; do
    b=${bd%%:*} dir=${bd#*:}
    echo "== $b: integration tests (ctest -j $it_jobs, log $dir/integration.log)"
    (cd "$dir" && ctest -L integration -j "$it_jobs" --output-on-failure ${CTEST_ARGS:-}) \
        >"$dir/integration.log" 2>&1 &
    pids+=($!)
done
for i in "${!dirs[@]}"; do
    bd=${dirs[$i]}
    b=${bd%%:*} dir=${bd#*:}
    rc=0
    wait "${pids[$i]}" || rc=$?
    echo "== $b: integration tests (exit $rc)"
    cat "$dir/integration.log"
    [ "$rc" -eq 0 ] || status=1
done
exit $status
