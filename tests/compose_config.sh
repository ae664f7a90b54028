#!/usr/bin/env bash
# The compose file runs unchanged: `docker-compose config` (no engine needed) must resolve it with an
# empty environment, and the resolved file must hold what docs/deploy.md promises — the secrets come
# from files in the `secrets` volume that a one-shot init fills once (never a plain secret in any
# service's environment), the image is built by one service only, every long-running service has a
# healthcheck (Kafka's without a JVM), every service's logs rotate, and images carry exact versions.
# Exit 77 (skipped) where docker-compose is not installed; deploy/local/install-deps.sh installs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v docker-compose >/dev/null || { echo "docker-compose not installed: skipped"; exit 77; }
# docker-compose (v1) is Python with PyYAML: its own interpreter reads the resolved file.
py=$(head -n 1 "$(command -v docker-compose)" | sed -n 's/^#! *//p' | cut -d' ' -f1)
"${py:-python3}" -c 'import yaml' 2>/dev/null || py=python3
"$py" -c 'import yaml' 2>/dev/null || { echo "no Python with PyYAML to read the resolved file: skipped"; exit 77; }

# An empty environment: `config` (like up, down -v, logs, ps) needs no variable.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
env -i PATH="$PATH" HOME="${HOME:-/root}" docker-compose -f docker-compose.yml config >"$out" \
    || { echo "docker-compose config failed with an empty environment"; exit 1; }

"$py" - "$out" <<'PY'
import re, sys, yaml

cfg = yaml.safe_load(open(sys.argv[1]))
svcs = cfg["services"]
fails = []
def check(ok, msg):
    if not ok:
        fails.append(msg)

ours = ["gateway", "fetcher", "normalizer", "normalizer-events", "ticket-creator", "write-back"]
need_key = ["gateway", "fetcher", "ticket-creator", "write-back"]
for name in ["kafka", "redis", "secrets-init"] + ours + ["syncro-sim", "cwrmm-sim"]:
    check(name in svcs, "service %s missing from the resolved compose file" % name)
if fails:
    sys.exit("\n".join(fails))

# Secrets: files in the `secrets` volume, written by secrets-init only when absent.
check("secrets" in (cfg.get("volumes") or {}), "no named volume 'secrets'")
init = svcs["secrets-init"]
script = " ".join(init.get("command") or [])
check("secrets:/var/lib/mspsync/secrets" in " ".join(init.get("volumes") or []), "secrets-init does not mount the secrets volume")
for f in ("secret.key", "admin.token"):
    check(re.search(r"\[ ! -s %s \]" % re.escape(f), script), "secrets-init does not make %s only when absent" % f)
    check("openssl rand" in script, "secrets-init does not use openssl rand")
check(init.get("restart") in (None, "no"), "secrets-init must be a one-shot (restart: no)")

for name, s in svcs.items():
    env = s.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    for var in ("MSPSYNC_SECRET_KEY", "MSPSYNC_ADMIN_TOKEN"):
        check(var not in env, "%s has a plain %s in its environment (use %s_FILE)" % (name, var, var))
    # Every service's logs rotate.
    log = s.get("logging") or {}
    check(log.get("driver") == "json-file" and "max-size" in (log.get("options") or {})
          and "max-file" in (log.get("options") or {}), "%s: logs do not rotate (json-file max-size/max-file)" % name)
    # Pinned images: an exact version, never latest or a bare name, for what is pulled.
    img = s.get("image", "")
    if not img.startswith("mspsync:"):
        check(re.search(r":\d+\.\d+\.\d+[^:/]*$|@sha256:[0-9a-f]{64}$", img), "%s: image %r is not pinned to an exact version" % (name, img))

for name in need_key:
    env = svcs[name].get("environment") or {}
    check(env.get("MSPSYNC_SECRET_KEY_FILE", "").startswith("/var/lib/mspsync/secrets/"), "%s: no MSPSYNC_SECRET_KEY_FILE from the secrets volume" % name)
    vols = " ".join(svcs[name].get("volumes") or [])
    check("secrets:/var/lib/mspsync/secrets:ro" in vols, "%s: the secrets volume is not mounted read-only" % name)
    dep = (svcs[name].get("depends_on") or {}).get("secrets-init") or {}
    check(dep.get("condition") == "service_completed_successfully", "%s does not wait for secrets-init" % name)
check((svcs["gateway"].get("environment") or {}).get("MSPSYNC_ADMIN_TOKEN_FILE", "").startswith("/var/lib/mspsync/secrets/"),
      "gateway: no MSPSYNC_ADMIN_TOKEN_FILE from the secrets volume")

# One build of the image, shared by name by every mspsync service and simulator.
builders = [n for n, s in svcs.items() if "build" in s]
check(len(builders) == 1, "the image is built by %d services (%s), not one" % (len(builders), ", ".join(builders) or "none"))
if len(builders) == 1:
    image = svcs[builders[0]].get("image")
    for name in ours + ["syncro-sim", "cwrmm-sim"]:
        check(svcs[name].get("image") == image, "%s does not use the one built image %s" % (name, image))

# Healthchecks: Kafka, Redis and every mspsync service; Kafka's starts no JVM.
for name in ["kafka", "redis"] + ours:
    hc = svcs[name].get("healthcheck") or {}
    check(hc.get("test") and not hc.get("disable"), "%s has no healthcheck" % name)
kafka_test = " ".join(svcs["kafka"].get("healthcheck", {}).get("test") or [])
check(not re.search(r"kafka-[a-z-]+\.sh|java", kafka_test), "the Kafka healthcheck starts a JVM: %s" % kafka_test)

if fails:
    sys.exit("\n".join(fails))
PY
echo "docker-compose config: ok (empty environment, secrets from the init volume, one build, healthchecks, log rotation, pinned images)"
