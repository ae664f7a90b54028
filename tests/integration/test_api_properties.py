#!/usr/bin/env python3
"""The admin API and the MTP webhook keep the promises of docs/openapi.yaml for generated
requests: Schemathesis (installed by deploy/local/install-deps.sh into .local/venv) sends
requests derived from the document to a gateway with real Redis, Kafka and the vendor simulators,
and every answer must be a documented status with a documented content type, headers and body,
and never a 5xx. The document itself must be a valid OpenAPI 3.0 document.

Path parameters are pointed at seeded resources by api_properties_hooks.py, which also signs
webhook deliveries. The run is bounded (examples per operation and a wall-clock deadline) so it
fits a loaded 2-core machine; sanitizer reports of the gateway fail the test at shutdown.
"""
import collections
import glob
import json
import os
import subprocess
import sys
import time
import urllib.parse

import harness
from harness import StackTest
import cwrmm

# where deploy/local/install-deps.sh puts it
VENV = os.path.join(os.environ.get("MSPSYNC_LOCAL_DIR") or os.path.join(harness.SOURCE, ".local"),
                    "venv")
DOC = os.path.join(harness.SOURCE, "docs/openapi.yaml")
HERE = os.path.dirname(os.path.abspath(__file__))
HOOKS = os.path.join(HERE, "api_properties_hooks.py")
CONFIG = os.path.join(HERE, "api_properties.toml")

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")
MAX_EXAMPLES = int(os.environ.get("MSPSYNC_API_MAX_EXAMPLES", "25"))
# the whole Schemathesis run; it stops generating a minute before (--max-time)
DEADLINE_S = int(os.environ.get("MSPSYNC_API_DEADLINE_S", "300"))
SEED = os.environ.get("MSPSYNC_API_SEED", "20261206")

TOKEN = "tok-acme-properties"
TICKETING = {
    "enabled": True, "auto_resolve": True, "resolve_status": "Resolved", "reopen_window_days": 7,
    "rules": {"*": {"priority": "2 Normal"}, "device_offline": {"priority": "1 High", "due_in_days": 1},
              "disk.full": {"create": False}},
}


def answers(report_dir):
    """{(method, path template): Counter(status)} of every request the run sent (NDJSON report)."""
    seen = collections.defaultdict(collections.Counter)
    for path in glob.glob(os.path.join(report_dir, "*.ndjson")):
        with open(path) as f:
            for line in f:
                done = json.loads(line).get("ScenarioFinished")
                for it in ((done or {}).get("recorder", {}).get("interactions") or {}).values():
                    if it.get("response"):
                        op = done["recorder"]["label"].split(" ", 1)
                        seen[(op[0], op[1])][it["response"]["status_code"]] += 1
    return seen


def tool(name):
    """The venv's tool, or a failed test naming the install step (never a silent skip)."""
    path = os.path.join(VENV, "bin", name)
    if not os.access(path, os.X_OK):
        raise AssertionError("%s not found: run deploy/local/install-deps.sh (it installs schemathesis "
                             "and openapi-spec-validator into %s)" % (path, VENV))
    return path


class ApiPropertiesTest(StackTest):

    def test_document_is_valid_openapi(self):
        out = subprocess.run([tool("python"), "-c",
                              "import sys, yaml\n"
                              "from openapi_spec_validator import validate\n"
                              "validate(yaml.safe_load(open(sys.argv[1])))\n", DOC],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-4000:])

    def seed(self, s):
        """acme: a synced Syncro integration, ConnectWise RMM beside it, a webhook secret,
        ticketing rules, mapped orgs. beta, gamma (both integrations) and delta (ConnectWise RMM)
        for the operations that remove or replace (api_properties_hooks.DESTRUCTIVE)."""
        s.add_account("acme", customers=4, assets=6, token=TOKEN)
        s.add_tenant("acme")
        st, js, _ = s.connect("acme", "acme", TOKEN)
        self.assertEqual(st, 201, js)
        s.wait_synced("acme", js["job_id"], assets=6)
        customers = [c["id"] for c in s.inventory("acme", "customers")]
        assets = [a["id"] for a in s.inventory("acme", "assets")]
        st, js, _ = s.api("POST", "/v1/tenants/acme/webhooks/mtp/secret", {})
        self.assertEqual(st, 201, js)
        secrets = {"acme": js["secret"]}
        st, js, _ = s.api("PUT", "/v1/tenants/acme/ticketing", TICKETING)
        self.assertEqual(st, 200, js)
        orgs = ["org-1", "org 2 ü"]  # a space and a non-ASCII letter, sent percent-encoded
        for org, cust in zip(orgs, customers):
            st, js, _ = s.api("PUT", "/v1/tenants/acme/ticketing/orgs/%s" % urllib.parse.quote(org, safe=""),
                              {"customer_id": cust.split(":", 1)[1]})
            self.assertEqual(st, 200, js)

        s.add_tenant("zeta")  # offboarded by the run (api_properties_hooks.DESTRUCTIVE)
        cwrmm.start_cwrmm_sim(s)
        for tenant in ("acme", "beta", "gamma", "delta"):
            cwrmm.add_partner(s, tenant + "-cw", devices=4, companies=2, sites_per_company=1)
            if tenant != "acme":
                s.add_tenant(tenant)
            if tenant in ("beta", "gamma"):
                s.add_account(tenant, customers=2, assets=3, token=TOKEN + "-" + tenant)
                st, js, _ = s.connect(tenant, tenant, TOKEN + "-" + tenant)
                self.assertEqual(st, 201, js)
            st, js, _ = cwrmm.connect_cwrmm(s, tenant, tenant + "-cw")
            self.assertEqual(st, 201, js)
        return {"tenant": "acme", "customers": customers, "assets": assets, "orgs": orgs,
                "webhook_secret": secrets["acme"], "webhook_secrets": secrets}

    def test_generated_requests_get_documented_answers(self):
        st_bin = tool("st")
        # Vendor calls to hosts other than the simulators (a generated subdomain, region or
        # base_url) go to a closed proxy port: they fail at once instead of reaching the internet.
        s = self.make_stack(sim_config={"rate_limit": 0}, gateway_env={
            # the shared broker may be restarted by another test: answer 503 well within the
            # request timeout below instead of holding requests for 30 s
            "MSPSYNC_KAFKA_DELIVERY_TIMEOUT_MS": "8000",
            "MSPSYNC_VENDOR_TIMEOUT_MS": "3000", "ALL_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost"})
        seeds = self.seed(s)
        seeds_path = os.path.join(s.dir, "api-seeds.json")
        with open(seeds_path, "w") as f:
            json.dump(seeds, f)
        report = os.path.join(s.dir, "schemathesis")
        env = dict(os.environ, SCHEMATHESIS_HOOKS="api_properties_hooks", MSPSYNC_API_SEEDS=seeds_path,
                   PYTHONPATH=os.path.dirname(HOOKS), NO_COLOR="1")
        cmd = [st_bin, "--config-file", CONFIG, "run", DOC, "--url", s.gateway.url(""),
               "-H", "Authorization: Bearer " + s.admin_token,
               "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", SEED,
               "--phases", "examples,coverage,fuzzing", "--workers", "1",
               "--request-timeout", "30", "--max-time", str(DEADLINE_S - 60),
               "--suppress-health-check", "all", "--no-shrink",
               "--report", "junit,ndjson", "--report-dir", report]
        t0 = time.time()
        try:
            out = subprocess.run(cmd, env=env, cwd=s.dir, capture_output=True, text=True,
                                 timeout=DEADLINE_S)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("schemathesis ran past the %ss deadline; work dir %s\n%s" % (
                DEADLINE_S, s.dir, (e.stdout or b"")[-6000:]))
        took = time.time() - t0
        with open(os.path.join(s.dir, "schemathesis.out"), "w") as f:
            f.write(out.stdout + out.stderr)
        print("schemathesis: exit %d in %.0f s; output in %s" % (out.returncode, took, s.dir),
              file=sys.stderr)
        print(out.stdout[-1500:], file=sys.stderr)
        self.assertEqual(out.returncode, 0, "schemathesis found failures (work dir %s):\n%s" % (
            s.dir, (out.stdout + out.stderr)[-20000:]))
        # The seeds and the signing hook did their job: the run reached past 404 and 401.
        seen = answers(report)
        with open(os.path.join(s.dir, "answers.txt"), "w") as f:
            for op, codes in sorted(seen.items()):
                f.write("%s %s %s\n" % (op[0], op[1], dict(sorted(codes.items()))))
        print("%d requests" % sum(sum(c.values()) for c in seen.values()), file=sys.stderr)
        webhook = seen[("POST", "/v1/webhooks/mtp/{tenant}")]
        self.assertGreater(webhook[202], 0, "no signed delivery was accepted: %r" % webhook)
        self.assertGreater(webhook[401], 0, "no badly signed delivery was refused: %r" % webhook)
        for op, code in ((("GET", "/v1/tenants/{tenant}/assets/{id}"), 200),
                         (("GET", "/v1/tenants/{tenant}/customers/{id}"), 200),
                         (("GET", "/v1/tenants/{tenant}/integrations/cwrmm"), 200),
                         (("PUT", "/v1/tenants/{tenant}/ticketing/orgs/{org_id}"), 200),
                         (("POST", "/v1/tenants/{tenant}/integrations/{integration}/disable"), 200),
                         (("DELETE", "/v1/tenants/{tenant}/integrations/syncro"), 202)):
            self.assertGreater(seen[op][code], 0, "%s %s never reached a seeded resource: %r" % (
                op[0], op[1], seen[op]))
        # the gateway is still healthy after all of it
        self.assertEqual(harness.http("GET", s.gateway.url("/healthz"))[0], 200)


if __name__ == "__main__":
    harness.main()
