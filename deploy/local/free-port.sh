#!/usr/bin/env bash
# free-port.sh [N] — print N (default 1) distinct free TCP ports on 127.0.0.1, one per line.
# The ports are free when printed; nothing reserves them afterwards.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
n=${1:-1}
[[ "$n" =~ ^[1-9][0-9]*$ ]] || msp_die "usage: free-port.sh [COUNT]"
msp_free_port "$n"
