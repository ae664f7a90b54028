#!/usr/bin/env bash
# writeback.sh — date edits/s written back to ConnectWise RMM end to end, and the write-back's
# RSS. See bench/writeback.py for what is measured.
#
# Usage: bench/writeback.sh [EDITS] [DEVICES]     defaults 5000 and 5000
# Env:   MSPSYNC_BUILD_DIR   build tree with the binaries (default <repo>/build)
#        BENCH_KEEP=1        keep the work directory (logs, Kafka data) afterwards
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec python3 "$HERE/writeback.py" "$@"
