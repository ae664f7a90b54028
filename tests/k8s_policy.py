#!/usr/bin/env python3
"""k8s_policy.py — what the schema validator and checkov do not check in the rendered manifests.

Called by tests/k8s_validate.sh with rendered overlays (the output of `kubectl kustomize`):

    k8s_policy.py --secret secret-key=<value> --secret admin-token=<value> \
                  [--image REF] small.yaml large.yaml

For every file it asserts what a user of deploy/k8s relies on:
  - each mspsync service runs as its own Deployment with the right binary and lane;
  - its liveness (/healthz) and readiness (/readyz) probes point at a port the container declares,
    and that port is the one the service is told to listen on (MSPSYNC_HTTP_PORT or
    MSPSYNC_METRICS_PORT) on an address other than loopback;
  - every container runs non-root (uid 10001), read-only, without privilege escalation or
    capabilities, with the runtime's seccomp profile, with requests and limits; no service account
    token is mounted;
  - secrets reach the pods only as files (MSPSYNC_*_FILE) from the generated Secret, whose values
    are exactly the ones the test supplied (so no value is committed in the tree);
  - the only Ingress routes only the /v1/webhooks/ prefix, to the gateway, with TLS;
  - a PodDisruptionBudget covers each Deployment and lets at least one pod go;
  - the NetworkPolicies deny by default and open only the gateway's port and the workers'
    metrics port;
  - with --image, every container runs that image (the kustomize `images:` override works).

Prints one line per failure and a closing "k8s_policy: N passed, N failed"; exits 1 on any failure.
"""
import argparse
import base64
import ipaddress
import sys

import yaml

SERVICES = {
    # component: (binary, port env, secret files it must get, env that must be set)
    "gateway": ("mspsync-gateway", "MSPSYNC_HTTP_PORT",
                {"MSPSYNC_SECRET_KEY_FILE": "secret-key", "MSPSYNC_ADMIN_TOKEN_FILE": "admin-token"},
                {}),
    "fetcher": ("mspsync-fetcher", "MSPSYNC_METRICS_PORT",
                {"MSPSYNC_SECRET_KEY_FILE": "secret-key"}, {}),
    "normalizer": ("mspsync-normalizer", "MSPSYNC_METRICS_PORT", {},
                   {"MSPSYNC_NORMALIZER_INPUT": "records"}),
    "normalizer-events": ("mspsync-normalizer", "MSPSYNC_METRICS_PORT", {},
                          {"MSPSYNC_NORMALIZER_INPUT": "events"}),
    "ticket-creator": ("mspsync-ticket-creator", "MSPSYNC_METRICS_PORT",
                       {"MSPSYNC_SECRET_KEY_FILE": "secret-key"}, {}),
    "write-back": ("mspsync-write-back", "MSPSYNC_METRICS_PORT",
                   {"MSPSYNC_SECRET_KEY_FILE": "secret-key"}, {}),
    "billing": ("mspsync-billing", "MSPSYNC_METRICS_PORT",
                {"MSPSYNC_SECRET_KEY_FILE": "secret-key"}, {}),
}
BIND_ENV = {"MSPSYNC_HTTP_PORT": "MSPSYNC_HTTP_BIND", "MSPSYNC_METRICS_PORT": "MSPSYNC_METRICS_BIND"}
SECRET_ENV = {"MSPSYNC_SECRET_KEY", "MSPSYNC_ADMIN_TOKEN"}
IMAGE_UID = 10001
NAMESPACE = "mspsync"
WEBHOOK_PREFIX = "/v1/webhooks/"


class Checker:
    def __init__(self, label):
        self.label = label
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {self.label}: {what}")
        return ok


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def labels_match(selector, labels):
    """True when a label selector (matchLabels and matchExpressions In/NotIn/Exists) selects labels."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def container_env(c, configmaps):
    """The environment a container gets: envFrom ConfigMaps first, env entries over them."""
    env = {}
    for ef in c.get("envFrom") or []:
        ref = (ef.get("configMapRef") or {}).get("name")
        if ref is not None:
            env.update(configmaps.get(ref, {}))
    for e in c.get("env") or []:
        env[e["name"]] = e.get("value") if "value" in e else e.get("valueFrom")
    return env


def check_pod_security(ck, name, pod):
    ck.check(pod.get("automountServiceAccountToken") is False,
             f"{name}: automountServiceAccountToken is not false")
    psc = pod.get("securityContext") or {}
    ck.check(psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot is not true")
    ck.check(psc.get("runAsUser") == IMAGE_UID, f"{name}: pod runAsUser is not {IMAGE_UID}")
    ck.check((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
             f"{name}: pod seccompProfile is not RuntimeDefault")
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        ck.check(not pod.get(flag), f"{name}: {flag} is set")
    for c in (pod.get("initContainers") or []) + pod["containers"]:
        cn = f"{name}/{c['name']}"
        sc = c.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        ck.check(non_root is True and uid not in (None, 0), f"{cn}: may run as root")
        ck.check(sc.get("readOnlyRootFilesystem") is True, f"{cn}: root file system is writable")
        ck.check(sc.get("allowPrivilegeEscalation") is False,
                 f"{cn}: allowPrivilegeEscalation is not false")
        ck.check(not sc.get("privileged"), f"{cn}: privileged")
        caps = sc.get("capabilities") or {}
        ck.check("ALL" in (caps.get("drop") or []) and not caps.get("add"),
                 f"{cn}: capabilities not dropped (drop ALL, add none)")
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                ck.check(r in (res.get(kind) or {}), f"{cn}: no {kind}.{r}")


def check_probes(ck, name, comp, c, env):
    binary, port_env, _, _ = SERVICES[comp]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
    numbers = set(ports.values())
    listen = env.get(port_env)
    listen = int(listen) if isinstance(listen, str) and listen.isdigit() else None
    ck.check(listen in numbers,
             f"{name}: {port_env}={listen!r} is not a port the container declares {sorted(numbers)}")
    bind = env.get(BIND_ENV[port_env])
    ck.check(bind is not None and not ipaddress.ip_address(bind).is_loopback,
             f"{name}: {BIND_ENV[port_env]}={bind!r}: the kubelet cannot reach a loopback address")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        p = c.get(probe)
        if not ck.check(p is not None and "httpGet" in p, f"{name}: no HTTP {probe}"):
            continue
        get = p["httpGet"]
        ck.check(get.get("path") == path, f"{name}: {probe} path is {get.get('path')!r}, not {path}")
        port = get.get("port")
        number = ports.get(port) if isinstance(port, str) else port
        ck.check(number is not None and number in numbers,
                 f"{name}: {probe} port {port!r} is not declared by the container")
        ck.check(listen is not None and number == listen,
                 f"{name}: {probe} port {port!r} is not where the service listens ({port_env}={listen})")


def check_secrets_as_files(ck, name, comp, pod, c, env, secrets):
    _, _, files, _ = SERVICES[comp]
    for var, value in env.items():
        if isinstance(value, dict):
            ck.check("secretKeyRef" not in value, f"{name}: {var} comes from a Secret as a variable")
    for var in SECRET_ENV:
        ck.check(var not in env, f"{name}: {var} is set in the environment (use {var}_FILE)")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = {m["mountPath"].rstrip("/"): m for m in c.get("volumeMounts") or []}
    for var, key in files.items():
        path = env.get(var)
        if not ck.check(isinstance(path, str), f"{name}: {var} is not set"):
            continue
        d, _, fname = path.rpartition("/")
        m = mounts.get(d)
        if not ck.check(m is not None, f"{name}: {var}={path}: nothing is mounted at {d}"):
            continue
        vol = volumes.get(m["name"], {}).get("secret")
        if not ck.check(vol is not None and vol.get("secretName") in secrets,
                        f"{name}: {d} is not a volume of a rendered Secret"):
            continue
        items = {i["path"]: i["key"] for i in vol.get("items") or []}
        got = items.get(fname, fname if not items else None)
        ck.check(got == key, f"{name}: {path} is not the Secret's key {key}")


def check_deployments(ck, docs, configmaps, secrets, image):
    deps = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    ck.check(set(deps) == set(SERVICES),
             f"Deployments are {sorted(deps)}, expected {sorted(SERVICES)}")
    for comp, (binary, _, _, want_env) in SERVICES.items():
        d = deps.get(comp)
        if d is None:
            continue
        pod = d["spec"]["template"]["spec"]
        labels = d["spec"]["template"]["metadata"].get("labels") or {}
        ck.check(labels_match(d["spec"]["selector"], labels), f"{comp}: selector misses its pods")
        check_pod_security(ck, comp, pod)
        if not ck.check(len(pod["containers"]) == 1, f"{comp}: expected one container"):
            continue
        c = pod["containers"][0]
        ck.check((c.get("command") or [None])[0] == binary, f"{comp}: does not run {binary}")
        if image:
            ck.check(c.get("image") == image, f"{comp}: image {c.get('image')!r}, expected {image}")
        env = container_env(c, configmaps)
        for var, val in want_env.items():
            ck.check(env.get(var) == val, f"{comp}: {var} is {env.get(var)!r}, expected {val!r}")
        for var in ("MSPSYNC_KAFKA_BROKERS", "MSPSYNC_REDIS_URL"):
            ck.check(bool(env.get(var)), f"{comp}: {var} is not set")
        for ef in c.get("envFrom") or []:
            ref = (ef.get("configMapRef") or {}).get("name")
            ck.check(ref in configmaps, f"{comp}: envFrom ConfigMap {ref!r} is not rendered")
        check_probes(ck, comp, comp, c, env)
        check_secrets_as_files(ck, comp, comp, pod, c, env, secrets)
    return deps


def check_secret_values(ck, docs, want):
    secrets = by_kind(docs, "Secret")
    ck.check(len(secrets) == 1, f"expected one Secret (the generated one), found {len(secrets)}")
    out = {}
    for s in secrets:
        name = s["metadata"]["name"]
        out[name] = s
        ck.check("stringData" not in s, f"Secret {name}: stringData in the manifests")
        data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        ck.check(data == want, f"Secret {name}: holds {sorted(data)} with values other than the "
                               f"files the operator supplied (a committed value?)")
    return out


def check_ingress(ck, docs):
    ings = by_kind(docs, "Ingress")
    if not ck.check(len(ings) == 1, f"expected one Ingress, found {len(ings)}"):
        return
    spec = ings[0]["spec"]
    ck.check("defaultBackend" not in spec, "Ingress has a defaultBackend: every path would reach it")
    hosts = set()
    for rule in spec.get("rules") or []:
        hosts.add(rule.get("host"))
        ck.check(bool(rule.get("host")), "an Ingress rule without a host")
        for p in (rule.get("http") or {}).get("paths") or []:
            ck.check(p.get("pathType") == "Prefix",
                     f"Ingress path {p.get('path')!r}: pathType {p.get('pathType')!r} (only Prefix "
                     f"has one meaning on every controller)")
            path = p.get("path") or ""
            ck.check(path == WEBHOOK_PREFIX.rstrip("/") or path.startswith(WEBHOOK_PREFIX),
                     f"Ingress routes {p.get('path')!r}: only {WEBHOOK_PREFIX} may be public")
            svc = (p.get("backend") or {}).get("service") or {}
            ck.check(svc.get("name") == "gateway", f"Ingress path {p.get('path')!r} is not the gateway")
    tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
    ck.check(hosts and hosts <= tls_hosts, f"Ingress hosts {sorted(map(str, hosts))} without TLS")


def check_services(ck, docs):
    for s in by_kind(docs, "Service"):
        ck.check(s["spec"].get("type", "ClusterIP") == "ClusterIP",
                 f"Service {s['metadata']['name']} is {s['spec'].get('type')}: only the Ingress is public")


def replica_floor(dep, hpas):
    """The fewest pods a Deployment runs: its HPA's minReplicas, else spec.replicas (default 1)."""
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]
        if ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"]:
            return h["spec"].get("minReplicas", 1)
    return dep["spec"].get("replicas", 1)


def check_pdbs_and_hpas(ck, docs, deps):
    pdbs = by_kind(docs, "PodDisruptionBudget")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    for name, d in deps.items():
        labels = d["spec"]["template"]["metadata"].get("labels") or {}
        mine = [p for p in pdbs if labels_match(p["spec"]["selector"], labels)]
        if not ck.check(len(mine) == 1, f"{name}: {len(mine)} PodDisruptionBudgets, expected 1"):
            continue
        spec = mine[0]["spec"]
        floor = replica_floor(d, hpas)
        if "minAvailable" in spec:
            ck.check(isinstance(spec["minAvailable"], int) and spec["minAvailable"] < floor,
                     f"{name}: PDB minAvailable {spec['minAvailable']} with {floor} replicas "
                     f"blocks every drain")
        else:
            ck.check(spec.get("maxUnavailable") not in (None, 0, "0%"),
                     f"{name}: PDB lets no pod go (maxUnavailable {spec.get('maxUnavailable')})")
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]
        dep = deps.get(ref["name"])
        if not ck.check(dep is not None, f"HPA {h['metadata']['name']} scales a missing {ref['name']}"):
            continue
        ck.check("replicas" not in dep["spec"],
                 f"{ref['name']}: spec.replicas is set while an HPA owns the count (apply resets it)")
        ck.check(1 <= h["spec"].get("minReplicas", 1) <= h["spec"]["maxReplicas"],
                 f"HPA {h['metadata']['name']}: minReplicas above maxReplicas")


def check_network_policies(ck, docs, deps):
    pols = by_kind(docs, "NetworkPolicy")
    deny = [p for p in pols if p["spec"].get("podSelector") == {}
            and set(p["spec"].get("policyTypes") or []) >= {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    ck.check(len(deny) == 1, "no default-deny NetworkPolicy (empty podSelector, Ingress and Egress)")
    for name, d in deps.items():
        labels = d["spec"]["template"]["metadata"].get("labels") or {}
        c = d["spec"]["template"]["spec"]["containers"][0]
        declared = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
        allowed = set(declared.values())
        for p in pols:
            if not labels_match(p["spec"]["podSelector"], labels):
                continue
            pname = p["metadata"]["name"]
            for rule in p["spec"].get("ingress") or []:
                ck.check(bool(rule.get("from")), f"{pname}: an ingress rule for {name} from anywhere")
                ports = rule.get("ports") or []
                ck.check(bool(ports), f"{pname}: an ingress rule for {name} on every port")
                for port in ports:
                    num = declared.get(port.get("port"), port.get("port"))
                    ck.check(num in allowed, f"{pname}: opens port {port.get('port')} of {name}, "
                                             f"which it does not declare")
                if name != "gateway":
                    ck.check(all(set(f) == {"namespaceSelector"} for f in rule.get("from") or []),
                             f"{pname}: {name} accepts traffic other than metrics scraping")
            for rule in p["spec"].get("egress") or []:
                ck.check(bool(rule.get("to")) or bool(rule.get("ports")),
                         f"{pname}: an egress rule for {name} to anywhere on any port")


def check_namespace(ck, docs):
    nss = by_kind(docs, "Namespace")
    ck.check(len(nss) == 1 and nss[0]["metadata"]["name"] == NAMESPACE, f"no Namespace {NAMESPACE}")
    for ns in nss:
        ck.check((ns["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce")
                 == "restricted", f"Namespace {NAMESPACE} does not enforce the restricted profile")
    for d in docs:
        if d["kind"] != "Namespace":
            ck.check(d["metadata"].get("namespace") == NAMESPACE,
                     f"{d['kind']} {d['metadata']['name']} is not in namespace {NAMESPACE}")


def check_file(path, want_secrets, image):
    ck = Checker(path)
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    configmaps = {c["metadata"]["name"]: c.get("data") or {} for c in by_kind(docs, "ConfigMap")}
    check_namespace(ck, docs)
    secrets = check_secret_values(ck, docs, want_secrets)
    deps = check_deployments(ck, docs, configmaps, secrets, image)
    check_pdbs_and_hpas(ck, docs, deps)
    check_ingress(ck, docs)
    check_services(ck, docs)
    check_network_policies(ck, docs, deps)
    return ck


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE",
                    help="a key of the generated Secret and the value the test wrote for it")
    ap.add_argument("--image", help="the image every container must run")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    want = dict(s.split("=", 1) for s in args.secret)
    passed = failed = 0
    for path in args.files:
        ck = check_file(path, want, args.image)
        passed += ck.passed
        failed += ck.failed
    print(f"k8s_policy: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
