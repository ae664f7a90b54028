#!/usr/bin/env bash
# tests/format_check.sh — do the C lines a change touches have the form of .clang-format?
#
# Only changed lines are checked (git clang-format over the diff against a base, as librdkafka's
# `make style-check-changed` does): the tree is not reformatted at once, so code written before
# .clang-format existed, or in another style (the normalizer, the simulators), passes until it is
# edited, and the edited lines then take the one form. On failure it prints the diff that would
# make the changed lines conform; apply it with `git clang-format <base>`.
#
# The base, first that applies:
#   1. $MSPSYNC_FORMAT_BASE (any revision);
#   2. the merge-base of HEAD with origin/main, else with main: a branch's commits and its
#      uncommitted changes are checked;
#   3. when HEAD is that base itself (CI runs in a fresh clone of main), the previous commit
#      (HEAD~1): what the last commit changed is checked;
#   4. no previous commit (a one-commit or shallow clone): nothing to compare, it passes and says so.
# Uncommitted changes to tracked files count; untracked files do not (git add them first).
#
# Exit 0 when every changed line conforms (or nothing can be compared), 1 with the diff when not,
# 2 when clang-format or git is missing (deploy/local/install-deps.sh installs clang-format).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v git-clang-format >/dev/null && command -v clang-format >/dev/null || {
    echo "format_check: clang-format (git-clang-format) not found: run deploy/local/install-deps.sh" >&2
    exit 2
}
if ! git rev-parse --verify -q HEAD >/dev/null; then
    echo "format_check: not a git checkout with a commit; nothing to compare"
    exit 0
fi

# The revision to compare with (empty when there is none), per the rules above.
find_base() {
    if [ -n "${MSPSYNC_FORMAT_BASE:-}" ]; then
        git rev-parse --verify "$MSPSYNC_FORMAT_BASE^{commit}"
        return
    fi
    local head main base=""
    head=$(git rev-parse HEAD)
    for main in origin/main main; do
        if git rev-parse --verify -q "$main^{commit}" >/dev/null; then
            base=$(git merge-base "$main" HEAD 2>/dev/null || true)
            [ -n "$base" ] && break
        fi
    done
    if [ -z "$base" ] || [ "$base" = "$head" ]; then
        base=$(git rev-parse --verify -q "HEAD~1^{commit}" || true)
    fi
    printf '%s\n' "$base"
}

base=$(find_base)
if [ -z "$base" ]; then
    echo "format_check: no base to compare with (a single or shallow commit); skipped"
    exit 0
fi

out=$(git clang-format --diff --extensions c,h "$base" -- 2>&1) || {
    printf '%s\n' "$out" >&2
    echo "format_check: git clang-format failed" >&2
    exit 2
}
if printf '%s\n' "$out" | grep -q '^diff --git'; then
    printf '%s\n' "$out"
    echo "format_check: lines changed since $(git rev-parse --short "$base") do not have the form" \
         "of .clang-format (the diff above fixes them: git clang-format $(git rev-parse --short "$base"))" >&2
    exit 1
fi
echo "format_check: the C lines changed since $(git rev-parse --short "$base") conform to .clang-format"
