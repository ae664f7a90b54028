#!/usr/bin/env bash
# The compose file stays valid: `docker-compose config` must accept it (no engine needed).
# Exit 77 (skipped) where docker-compose is not installed; deploy/local/install-deps.sh installs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v docker-compose >/dev/null || { echo "docker-compose not installed: skipped"; exit 77; }
export MSPSYNC_ADMIN_TOKEN=ci-token MSPSYNC_SECRET_KEY=0000000000000000000000000000000000000000000000000000000000000000
out=$(docker-compose -f docker-compose.yml config)
for svc in kafka redis gateway fetcher normalizer normalizer-events; do
    grep -q "^  $svc:" <<<"$out" || { echo "service $svc missing from the resolved compose file"; exit 1; }
done
# Without the required secrets the file must refuse to resolve, naming the variable.
if env -u MSPSYNC_ADMIN_TOKEN docker-compose -f docker-compose.yml config >/dev/null 2>/tmp/compose.err.$$; then
    echo "compose resolved without MSPSYNC_ADMIN_TOKEN"; rm -f /tmp/compose.err.$$; exit 1
fi
grep -q MSPSYNC_ADMIN_TOKEN /tmp/compose.err.$$ || { cat /tmp/compose.err.$$; rm -f /tmp/compose.err.$$; exit 1; }
rm -f /tmp/compose.err.$$
echo "docker-compose config: ok"
