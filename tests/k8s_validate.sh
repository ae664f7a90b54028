#!/usr/bin/env bash
# The Kubernetes manifests (deploy/k8s) stay deployable and locked down, checked offline:
#  1. both overlays render with kustomize, from a copy of deploy/k8s given test secret files (the
#     operator's own files in base/secrets/ are never read), and refuse to render without them;
#  2. the rendered objects validate against Kubernetes' schemas (kubernetes-validate --strict, for
#     the oldest and the newest Kubernetes version we support);
#  3. checkov's Kubernetes policies pass with deploy/k8s/checkov.yaml, whose every skipped check
#     must give its reason on its line;
#  4. tests/k8s_policy.py asserts what neither tool knows: probes on the port each service listens
#     on, non-root read-only pods, a webhook-only Ingress, secrets as files with only the values
#     the operator supplied, PodDisruptionBudgets, NetworkPolicies, the kustomize image override;
#  5. no secret file is committed under deploy/k8s.
# Exit 77 (skipped) only where kustomize (kubectl) or the venv $MSPSYNC_LOCAL_DIR/venv-k8s with
# kubernetes-validate and checkov is missing; deploy/local/install-deps.sh provides the venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
: "${MSPSYNC_LOCAL_DIR:=$repo/.local}"
venv="$MSPSYNC_LOCAL_DIR/venv-k8s"
k8s_versions=(1.30.0 1.37.0)   # oldest and newest supported Kubernetes; docs/kubernetes.md

# ---- tools -------------------------------------------------------------------------------------
# kustomize v5 features (labels, patches with targets) are used: kubectl 1.27+ embeds v5.
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1 \
        && kubectl version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([5-9]|[1-9][0-9])'; then
    kustomize=(kubectl kustomize)
elif command -v kustomize >/dev/null && kustomize version 2>/dev/null | grep -Eq 'v([5-9]|[1-9][0-9])'; then
    kustomize=(kustomize build)
else
    echo "kubectl with kustomize v5 (or kustomize v5) not installed: skipped"; exit 77
fi
for tool in kubernetes-validate checkov python; do
    [ -x "$venv/bin/$tool" ] || { echo "$venv/bin/$tool missing (run deploy/local/install-deps.sh): skipped"; exit 77; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }
t0=$(date +%s.%N)
step() {  # step NAME: print the time since the previous step
    local now; now=$(date +%s.%N)
    awk -v n="$1" -v a="$t0" -v b="$now" 'BEGIN { printf "%-30s %5.1f s\n", n, b - a }'
    t0=$now
}

# ---- 1. render ---------------------------------------------------------------------------------
# A copy without whatever secret files the operator keeps in base/secrets/.
mkdir "$tmp/k8s" "$tmp/out"
tar -C deploy/k8s --exclude='./base/secrets/*' -cf - . | tar -C "$tmp/k8s" -xf -
cp deploy/k8s/base/secrets/README.md deploy/k8s/base/secrets/.gitignore "$tmp/k8s/base/secrets/"

if "${kustomize[@]}" "$tmp/k8s/overlays/small" >"$tmp/nosecret.out" 2>&1; then
    fail "overlays/small rendered without the secret files: a Secret value must come from somewhere"
elif ! grep -q 'secret-key' "$tmp/nosecret.out"; then
    fail "rendering without the secret files failed, but not naming secret-key:"; cat "$tmp/nosecret.out"
fi

secret_key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
admin_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s' "$secret_key" >"$tmp/k8s/base/secrets/secret-key"
printf '%s' "$admin_token" >"$tmp/k8s/base/secrets/admin-token"

# An overlay that only sets the image, as an operator's would.
mkdir "$tmp/k8s/overlays/test-image"
cat >"$tmp/k8s/overlays/test-image/kustomization.yaml" <<'EOF'
resources: [../small]
images:
  - name: mspsync
    newName: registry.test/mspsync
    newTag: 9.9.9-test
EOF

for o in small large test-image; do
    if ! "${kustomize[@]}" "$tmp/k8s/overlays/$o" >"$tmp/out/$o.yaml" 2>"$tmp/$o.err"; then
        fail "overlays/$o does not render:"; cat "$tmp/$o.err"
    fi
done
step "render (kustomize)"
[ "$failed" = 0 ] || { echo "k8s_validate: failed"; exit 1; }

# ---- 2. schemas --------------------------------------------------------------------------------
for v in "${k8s_versions[@]}"; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$tmp/out/small.yaml" "$tmp/out/large.yaml" \
        || fail "the rendered manifests do not validate against Kubernetes $v"
done
step "schemas (kubernetes-validate)"

# ---- 3. checkov --------------------------------------------------------------------------------
if grep -nE '^[[:space:]]*-[[:space:]]*CKV' deploy/k8s/checkov.yaml | grep -vE '#[[:space:]]*[^[:space:]]+[[:space:]]+[^[:space:]]+'; then
    fail "deploy/k8s/checkov.yaml skips the checks above without a reason on their line"
fi
mkdir "$tmp/checkov"
cp "$tmp/out/small.yaml" "$tmp/out/large.yaml" "$tmp/checkov/"
(cd "$tmp" && "$venv/bin/checkov" --config-file "$repo/deploy/k8s/checkov.yaml" -d "$tmp/checkov") \
    >"$tmp/checkov.out" 2>&1 || { fail "checkov:"; cat "$tmp/checkov.out"; }
grep -E 'Passed checks' "$tmp/checkov.out" || true
step "policies (checkov)"

# ---- 4. our own assertions ---------------------------------------------------------------------
"$venv/bin/python" tests/k8s_policy.py --secret "secret-key=$secret_key" \
    --secret "admin-token=$admin_token" "$tmp/out/small.yaml" "$tmp/out/large.yaml" \
    || fail "tests/k8s_policy.py"
"$venv/bin/python" tests/k8s_policy.py --secret "secret-key=$secret_key" \
    --secret "admin-token=$admin_token" --image registry.test/mspsync:9.9.9-test \
    "$tmp/out/test-image.yaml" || fail "tests/k8s_policy.py (image override)"
step "assertions (k8s_policy.py)"

# ---- 5. nothing secret committed ---------------------------------------------------------------
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    committed=$(git -C "$repo" ls-files -- deploy/k8s | grep '/secrets/' \
        | grep -vE '/secrets/(README\.md|\.gitignore)$' || true)
    [ -z "$committed" ] || fail "secret files are committed: $committed"
    for f in secret-key admin-token; do
        git -C "$repo" check-ignore -q "deploy/k8s/base/secrets/$f" \
            || fail "deploy/k8s/base/secrets/$f is not ignored by git"
    done
    tracked_secret=$(git -C "$repo" ls-files -z -- deploy/k8s | xargs -0 grep -lE '^kind:[[:space:]]*Secret' || true)
    [ -z "$tracked_secret" ] || fail "a Secret object is committed: $tracked_secret"
    step "committed files (git)"
else
    echo "not a git checkout: the committed-files check is left out"
fi

[ "$failed" = 0 ] || { echo "k8s_validate: failed"; exit 1; }
echo "k8s_validate: ok"
