"""
test_k8s_pods.py — the pods of deploy/k8s run as the manifests configure them.

tests/k8s_validate.sh checks the rendered manifests on paper; this test runs what they describe.
It renders overlays/small (from a copy with test secret files) and starts each of the seven
Deployments' container as Kubernetes would, on the shared test broker and a redis-server of its
own:

  * the command and environment of the pod (the ConfigMap through envFrom, then env), with only
    Kafka, Redis, the topic prefix and the port replaced by this test's (the port by a free one:
    the pods share this machine's network here);
  * the Secret's files mounted read-only where the pod mounts them, with the pod's items and
    defaultMode, owned by root and group fsGroup, as the kubelet writes them;
  * the pod's runAsUser, runAsGroup and fsGroup, no new privileges (allowPrivilegeEscalation:
    false), every file system read-only (readOnlyRootFilesystem), in a mount namespace of its own
    (unshare -m), so nothing of this machine changes.

It asserts that each one answers /healthz and then /readyz with 200 (the liveness and readiness
probes), that it runs as uid 10001 with no_new_privs and a read-only root, that it never met a
read-only file system error, and that SIGTERM stops it with 0. A setting the manifests give that a
service does not understand (an unsupported *_FILE, a missing required variable) shows here as a
service that exits at start-up.

Needs root (mount namespaces), unshare, setpriv and findmnt, kubectl with kustomize v5, and the
venv .local/venv-k8s (for its YAML parser); skipped without them.
"""
import base64
import json
import os
import shutil
import subprocess
import tarfile
import unittest

import harness
from harness import BUILD, SANITIZER_MARKS, SOURCE, Service, free_port, http, wait_until

LOCAL = os.environ.get("MSPSYNC_LOCAL_DIR", os.path.join(SOURCE, ".local"))
VENV_PY = os.path.join(LOCAL, "venv-k8s", "bin", "python")
POD_UID = 10001
BINARIES = {
    "mspsync-gateway": "services/gateway/mspsync-gateway",
    "mspsync-fetcher": "services/fetcher/mspsync-fetcher",
    "mspsync-normalizer": "services/normalizer/mspsync-normalizer",
    "mspsync-ticket-creator": "services/ticket-creator/mspsync-ticket-creator",
    "mspsync-write-back": "services/write-back/mspsync-write-back",
    "mspsync-billing": "services/billing/mspsync-billing",
}
# The mount namespace of one pod: $1 = source of the secret files, $2 = where the pod mounts them,
# $3 $4 $5 = uid, gid and supplementary group (fsGroup), then the environment and the command for
# env -i.
POD_SH = r"""
set -e
secrets=$1 mount_path=$2 uid=$3 gid=$4 fsgroup=$5; shift 5
mount -t tmpfs -o mode=755 tmpfs /run
if [ -n "$secrets" ]; then
    case "$mount_path" in /run/*) ;; *) echo "secret mount $mount_path is not under /run" >&2; exit 90 ;; esac
    mkdir -p "$mount_path"
    mount --bind -o ro "$secrets" "$mount_path"
fi
for m in $(findmnt -rn -o TARGET); do
    case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
    mount -o remount,bind,ro "$m" 2>/dev/null || true
done
exec setpriv --reuid="$uid" --regid="$gid" --groups="$fsgroup" --no-new-privs env -i "$@"
"""


def missing_tools():
    if os.geteuid() != 0:
        return "not root (mount namespaces)"
    for tool in ("unshare", "setpriv", "findmnt", "kubectl"):
        if not shutil.which(tool):
            return tool + " not installed"
    out = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True)
    if "Kustomize Version: v5" not in out.stdout:
        return "kubectl has no kustomize v5"
    if not os.path.exists(VENV_PY):
        return VENV_PY + " missing (deploy/local/install-deps.sh)"
    return None


def render_small(workdir, secret_values):
    """kubectl kustomize overlays/small from a copy of deploy/k8s holding our secret files;
    @returns the rendered objects (parsed by the venv's PyYAML)."""
    copy = os.path.join(workdir, "k8s")
    with tarfile.open(os.path.join(workdir, "k8s.tar"), "w") as t:
        t.add(os.path.join(SOURCE, "deploy/k8s"), arcname="k8s",
              filter=lambda ti: None if "/base/secrets/" in ti.name
              and not ti.name.endswith(("README.md", ".gitignore")) else ti)
    with tarfile.open(os.path.join(workdir, "k8s.tar")) as t:
        t.extractall(workdir)
    for name, value in secret_values.items():
        with open(os.path.join(copy, "base/secrets", name), "w") as f:
            f.write(value)
    yaml_text = subprocess.run(["kubectl", "kustomize", os.path.join(copy, "overlays/small")],
                               check=True, capture_output=True, text=True).stdout
    as_json = subprocess.run(
        [VENV_PY, "-c", "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)"],
        input=yaml_text, check=True, capture_output=True, text=True).stdout
    return json.loads(as_json)


def pod_plan(dep, configmaps, secrets):
    """What Kubernetes would give the Deployment's container: (command, env, port env name,
    secret files {name: (bytes, mode)}, mount path, (uid, gid, fsGroup))."""
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    ids = (csc.get("runAsUser", psc.get("runAsUser")), csc.get("runAsGroup", psc.get("runAsGroup")),
           psc.get("fsGroup"))
    env = {}
    for ef in c.get("envFrom") or []:
        env.update(configmaps[ef["configMapRef"]["name"]])
    for e in c.get("env") or []:
        env[e["name"]] = e["value"]
    port_env = "MSPSYNC_HTTP_PORT" if "MSPSYNC_HTTP_PORT" in env else "MSPSYNC_METRICS_PORT"
    files, mount_path = {}, ""
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        sec = volumes[m["name"]].get("secret")
        if sec is None:
            continue
        data = secrets[sec["secretName"]]
        items = sec.get("items") or [{"key": k, "path": k} for k in data]
        files = {i["path"]: (base64.b64decode(data[i["key"]]), i.get("mode", sec.get("defaultMode", 0o644)))
                 for i in items}
        mount_path = m["mountPath"]
    return c["command"], env, port_env, files, mount_path, ids


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def root_read_only(pid):
    with open("/proc/%d/mountinfo" % pid) as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/":
                return "ro" in fields[5].split(",")
    return False


class K8sPods(unittest.TestCase):
    def setUp(self):
        why = missing_tools()
        if why:
            self.skipTest(why)
        self.stack = harness.Stack("k8s_pods")
        self.stack.start_redis()

    def tearDown(self):
        if hasattr(self, "stack"):
            self.stack.stop_all()

    def test_every_deployment_starts_ready_read_only_as_uid_10001(self):
        st = self.stack
        values = {"secret-key": os.urandom(32).hex(), "admin-token": os.urandom(16).hex()}
        docs = render_small(st.dir, values)
        configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
        secrets = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "Secret"}
        deps = [d for d in docs if d["kind"] == "Deployment"]
        self.assertEqual(len(deps), 7, [d["metadata"]["name"] for d in deps])
        pods = {}
        for dep in deps:
            name = dep["metadata"]["name"]
            command, env, port_env, files, mount_path, ids = pod_plan(dep, configmaps, secrets)
            self.assertEqual(ids, (POD_UID, POD_UID, POD_UID), "%s: uid, gid, fsGroup" % name)
            sdir = ""
            if files:
                sdir = os.path.join(st.dir, "secrets-" + name)
                os.makedirs(sdir)
                os.chmod(sdir, 0o755)
                for fname, (content, mode) in files.items():
                    p = os.path.join(sdir, fname)
                    with open(p, "wb") as f:
                        f.write(content)
                    os.chown(p, 0, ids[2])
                    os.chmod(p, mode)
            port = free_port()
            env.update({"MSPSYNC_KAFKA_BROKERS": st.brokers,
                        "MSPSYNC_REDIS_URL": "127.0.0.1:%d" % st.redis_port,
                        "MSPSYNC_TOPIC_PREFIX": st.prefix, port_env: str(port)})
            for sanitizer in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
                if sanitizer in os.environ:
                    env[sanitizer] = os.environ[sanitizer]
            argv = (["unshare", "-m", "--propagation", "private", "sh", "-c", POD_SH, "pod",
                     sdir, mount_path] + [str(i) for i in ids] + ["%s=%s" % kv for kv in sorted(env.items())]
                    + [os.path.join(BUILD, BINARIES[command[0]])] + command[1:])
            svc = Service("pod-" + name, argv, {"PATH": os.environ["PATH"]}, st.dir)
            svc.port = port
            st.services.append(svc)
            pods[name] = svc.start(wait_port=False)

        def answers_200(svc, path):
            """Wait for 200 on path; fail at once, with its log, if the service exited."""
            got = wait_until(lambda: "exited" if svc.proc.poll() is not None
                             else http("GET", svc.url(path), timeout=2)[0] == 200,
                             120, "%s %s 200" % (svc.name, path))
            self.assertNotEqual(got, "exited", "%s exited with %s at start-up:\n%s"
                                % (svc.name, svc.proc.returncode, svc.logtext()[-1500:]))

        for name, svc in pods.items():
            answers_200(svc, "/healthz")
        for name, svc in pods.items():
            answers_200(svc, "/readyz")
            status = proc_status(svc.proc.pid)
            self.assertEqual(status["Uid"].split()[:2], [str(POD_UID)] * 2, name)
            self.assertEqual(status["Gid"].split()[:2], [str(POD_UID)] * 2, name)
            self.assertEqual(status["NoNewPrivs"], "1", name)
            self.assertEqual(status["CapEff"], "0000000000000000", name)
            self.assertTrue(root_read_only(svc.proc.pid), "%s: / is writable" % name)
        for name, svc in pods.items():
            self.assertEqual(svc.stop(), 0, name)
            text = svc.logtext()
            self.assertNotIn("Read-only file system", text, name)
            for mark in SANITIZER_MARKS:
                self.assertNotIn(mark, text, name)


if __name__ == "__main__":
    unittest.main()
