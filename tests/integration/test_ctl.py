#!/usr/bin/env python3
"""mspsyncctl, the command-line client, driven end to end against the real gateway, fetcher and
normalizer on the real broker and Redis with the Syncro simulator: a tenant is created, a refused
key shows the API's words (exit 1), a sync is watched to Connected in a pseudo-terminal (a bar
redrawn with carriage returns) and in a pipe (plain lines), the inventory read with --json equals
the API's answer, ticketing org mappings are set and read, and the exit codes a shell relies on
hold (1 refused, 2 usage, 3 unreachable or not the API, 4 sync ended in Error, 5 not found). The
token never appears in any output. A local HTTP server that answers like a broken API (not JSON,
cut short, huge, 5xx) checks that bad answers give a clear message and exit 3, never a crash."""
import http.server as http_server
import json
import os
import pty
import re
import select
import socket
import subprocess
import threading
import time

import cwrmm
import harness
import ticketing as T
from harness import StackTest

CTL = os.path.join(harness.BUILD, "tools/mspsyncctl/mspsyncctl")
PERM_ASSETS = "Assets - List/Search"
ALL_BUT_ASSETS = ["Customers - List/Search", "Customers - View Detail", "Assets - View Details",
                  "Tickets - List/Search"]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def sanitizer_clean(text):
    for mark in harness.SANITIZER_MARKS:
        assert mark not in text, "mspsyncctl sanitizer report: " + text


class Ctl:
    """Runs mspsyncctl with a private HOME (no stray config file), the URL and a token file in
    the environment; keeps every output so that a test can check the token never appeared."""

    def __init__(self, workdir, url, token, tenant=None):
        self.home = os.path.join(workdir, "ctl-home")
        os.makedirs(self.home, exist_ok=True)
        self.token = token
        self.token_file = os.path.join(self.home, "token")
        with open(os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(token + "\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MSPSYNC_")}
        self.env.update({"HOME": self.home, "XDG_CONFIG_HOME": os.path.join(self.home, "cfg"),
                         "MSPSYNC_URL": url, "MSPSYNC_TOKEN_FILE": self.token_file})
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
        if tenant:
            self.env["MSPSYNC_TENANT"] = tenant
        self.outputs = []

    def run(self, *args, stdin=None, env=None, timeout=120):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run([CTL] + list(args), input=stdin, capture_output=True, text=True,
                           env=e, timeout=timeout)
        sanitizer_clean(p.stderr)
        self.outputs.append(p.stdout + p.stderr)
        return p.returncode, p.stdout, p.stderr

    def json(self, *args):
        rc, out, err = self.run("--json", *args)
        assert rc == 0, (args, rc, out, err)
        return json.loads(out)

    def run_pty(self, *args, timeout=180):
        """Runs with stdout and stderr on a pseudo-terminal; @returns (rc, everything written)."""
        master, slave = pty.openpty()
        p = subprocess.Popen([CTL] + list(args), stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=slave, env=self.env, close_fds=True)
        os.close(slave)
        chunks, deadline = [], time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the slave side is closed, the program is done
                    break
                if not data:
                    break
                chunks.append(data)
            elif p.poll() is not None:
                break
        os.close(master)
        rc = p.wait(30)
        text = b"".join(chunks).decode("utf-8", "replace")
        sanitizer_clean(text)
        self.outputs.append(text)
        return rc, text

    def assert_token_never_shown(self, test):
        for text in self.outputs:
            test.assertNotIn(self.token, text)


class CtlTest(StackTest):

    def test_ctl_drives_a_tenant_from_a_refused_key_to_a_watched_sync_and_mappings(self):
        s = self.make_stack(sim_config={"rate_limit": 0, "latency_ms": 40})
        ctl = Ctl(s.dir, s.gateway.url(""), s.admin_token, tenant="acme")
        s.add_account("acme-msp", customers=60, assets=300, token="acme-key-123456")
        s.sim_admin("POST", "/_sim/tokens", {"subdomain": "acme-msp", "token": "no-assets-key-1",
                                             "permissions": ALL_BUT_ASSETS})
        key_file = os.path.join(ctl.home, "syncro-key")
        bad_key_file = os.path.join(ctl.home, "syncro-bad-key")
        with open(key_file, "w") as f:
            f.write("acme-key-123456\n")
        with open(bad_key_file, "w") as f:
            f.write("no-assets-key-1\n")

        # Tenants: create, list (--json is the API's answer), show.
        rc, out, err = ctl.run("tenants", "create", "acme", "Acme MSP")
        self.assertEqual((rc, out), (0, "created tenant acme\n"), err)
        self.assertEqual(ctl.json("tenants", "list"), s.api("GET", "/v1/tenants")[1])
        rc, out, _ = ctl.run("tenants", "list")
        self.assertEqual(out.split("\n")[0].split(), ["ID", "NAME", "CREATED"])
        self.assertIn("Acme MSP", out)
        rc, out, err = ctl.run("tenants", "create", "acme", "Again")
        self.assertEqual(rc, 1, (out, err))
        self.assertIn('tenant "acme" already exists', err)

        # Asset sync asked of a key without the assets permission: the API's error and its
        # per-permission details as the API gives them, exit 1, nothing stored. (The API is
        # asked the same directly.)
        st, api_js, _ = s.api("PUT", "/v1/tenants/acme/integrations/syncro",
                              {"base_url": s.sim_base_url("acme-msp"), "api_key": "no-assets-key-1",
                               "features": ["assets", "customers"]})
        self.assertEqual(st, 422, api_js)
        rc, out, err = ctl.run("integration", "add", "syncro", "--base-url",
                               s.sim_base_url("acme-msp"), "--api-key-file", bad_key_file,
                               "--features", "assets,customers")
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("HTTP 422: " + api_js["error"], err)
        self.assertIn("missing permission: " + PERM_ASSETS, err)
        self.assertNotIn("no-assets-key-1", out + err)
        rc, out, err = ctl.run("--json", "integration", "add", "syncro", "--base-url",
                               s.sim_base_url("acme-msp"), "--api-key-file", bad_key_file,
                               "--features", "assets,customers")
        self.assertEqual(rc, 1)
        self.assertEqual(json.loads(out), api_js)
        self.assertEqual(ctl.run("integration", "status", "syncro")[0], 5)  # nothing stored

        # Saved and watched in a pseudo-terminal: the bar is redrawn in place with carriage
        # returns (page of total pages) and ends at Connected.
        rc, text = ctl.run_pty("integration", "add", "syncro", "--base-url",
                               s.sim_base_url("acme-msp"), "--api-key-file", key_file, "--watch",
                               "--interval", "100")
        self.assertEqual(rc, 0, text)
        frames = [f for f in text.split("\r") if f.strip()]
        # redraws: a carriage return not followed by a newline (the terminal turns "\n" into
        # "\r\n", which is not a redraw)
        self.assertGreaterEqual(len(re.findall("\r(?!\n)", text)), 3, text)
        self.assertTrue(any(re.search(r"Syncing +(customer|asset) +page +\d+/\d+ +\[#*-*\]", f)
                            for f in frames), text)
        self.assertIn("\x1b[K", text)  # each redraw clears the rest of the line
        self.assertRegex(text, r"Connected +\[#+\]")
        self.assertIn("Connected: 60 customers, 300 assets in the inventory", text)
        s.wait_synced("acme", None, assets=300)

        # Watched with stdout a pipe: plain lines, no control characters, one per change.
        rc, out, err = ctl.run("sync", "syncro", "--watch", "--interval", "100")
        self.assertEqual(rc, 0, (out, err))
        self.assertIsNone(CONTROL.search(out), repr(out))
        lines = out.strip().split("\n")
        self.assertTrue(any(re.match(r"Syncing (customer|asset) page \d+/\d+, customers \d+, "
                                     r"assets \d+$", l) for l in lines), out)
        self.assertEqual(len(lines), len(set(lines)), out)
        self.assertEqual(lines[-1], "Connected: 60 customers, 300 assets in the inventory")
        status = ctl.json("integration", "status", "syncro")
        self.assertEqual(status["state"], "Connected")

        # Inventory: --json is the API's answer, filters and paging included.
        self.assertEqual(ctl.json("assets", "list", "--page", "2", "--per-page", "7"),
                         s.api("GET", "/v1/tenants/acme/assets?page=2&per_page=7")[1])
        assets = s.inventory("acme")
        one = assets[123]
        found = ctl.json("assets", "search", "--serial", one["serial"].lower())
        self.assertEqual(found, s.api("GET", "/v1/tenants/acme/assets?serial=" +
                                      one["serial"].lower())[1])
        self.assertIn(one["id"], [a["id"] for a in found["assets"]])
        cust = one["customer_ref"]
        self.assertEqual(ctl.json("assets", "list", "--customer", cust, "--per-page", "500"),
                         s.api("GET", "/v1/tenants/acme/assets?customer=%s&per_page=500"
                               % cust.replace(":", "%3A"))[1])
        self.assertEqual(ctl.json("assets", "show", one["id"]), one)
        self.assertEqual(ctl.json("customers", "list", "--per-page", "500")["customers"],
                         s.inventory("acme", "customers"))
        rc, out, _ = ctl.run("assets", "list", "--per-page", "5")
        self.assertEqual(rc, 0)
        self.assertIn("page 1 of 60 (300 assets)", out)
        self.assertEqual(ctl.run("assets", "search")[0], 2)  # search needs a filter
        self.assertEqual(ctl.run("assets", "show", "syncro:999999999")[0], 5)

        # Ticketing org mappings: set, read (the API's answer), delete; a second delete is 404.
        customer = s.inventory("acme", "customers")[5]
        cid = customer["sources"][0]["id"]
        rc, out, err = ctl.run("ticketing", "orgs", "set", "org/7 x", cid)
        self.assertEqual(rc, 0, err)
        self.assertIn("mapped org org/7 x to customer %s" % cid, out)
        orgs = ctl.json("ticketing", "orgs", "list")
        self.assertEqual(orgs, s.api("GET", "/v1/tenants/acme/ticketing/orgs")[1])
        self.assertEqual([(o["org_id"], o["mapping"]["customer_id"]) for o in orgs["orgs"]],
                         [("org/7 x", cid)])
        rc, out, _ = ctl.run("ticketing", "orgs", "list")
        self.assertIn(customer["name"], out)
        rc, out, err = ctl.run("ticketing", "orgs", "set", "org-8", "123")
        self.assertEqual(rc, 1)
        self.assertIn("is not in the synced Syncro customers", err)
        self.assertEqual(ctl.run("ticketing", "orgs", "delete", "org/7 x")[0], 0)
        self.assertEqual(s.api("GET", "/v1/tenants/acme/ticketing/orgs")[1]["orgs"], [])
        rc, out, err = ctl.run("ticketing", "orgs", "delete", "org/7 x")
        self.assertEqual(rc, 5, err)
        self.assertIn('org "org/7 x" is not mapped', err)

        # Ticketing rules from a file: refused by the API (exit 1, its words), or not JSON
        # (exit 2, nothing sent), or stored (the answer is the stored config).
        rules = os.path.join(ctl.home, "rules.json")
        with open(rules, "w") as f:
            json.dump({"enabled": True, "colour": "red"}, f)
        rc, _, err = ctl.run("ticketing", "set-rules", rules)
        self.assertEqual(rc, 1)
        self.assertIn('unknown key in the ticketing config: "colour"', err)
        with open(rules, "w") as f:
            f.write('{"enabled": tru')
        rc, _, err = ctl.run("ticketing", "set-rules", rules)
        self.assertEqual(rc, 2)
        self.assertIn("not valid JSON", err)
        doc = {"enabled": True, "rules": {"device_offline": {"priority": "1 High"}}}
        rc, out, err = ctl.run("--json", "ticketing", "set-rules", "-", stdin=json.dumps(doc))
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["config"], s.api("GET", "/v1/tenants/acme/ticketing")[1]["config"])
        self.assertEqual(json.loads(out)["config"]["rules"]["device_offline"]["priority"], "1 High")

        # Exit codes: 404 -> 5, unreachable -> 3, usage -> 2, refused token -> 1.
        self.assertEqual(ctl.run("tenants", "show", "nobody")[0], 5)
        closed = harness.free_port()
        rc, _, err = ctl.run("--url", "http://127.0.0.1:%d" % closed, "tenants", "list")
        self.assertEqual(rc, 3)
        self.assertIn("cannot reach the API", err)
        self.assertEqual(ctl.run("assets", "list", "--bogus")[0], 2)
        self.assertEqual(ctl.run("frobnicate")[0], 2)
        self.assertEqual(ctl.run("integration", "status", "nosuchvendor")[0], 2)
        self.assertEqual(ctl.run("assets", "list", env={"MSPSYNC_TENANT": ""})[0], 2)
        rc, _, err = ctl.run("tenants", "list", env={"MSPSYNC_TOKEN_FILE": "", "MSPSYNC_TOKEN": "nope"})
        self.assertEqual(rc, 1)
        self.assertIn("missing or invalid bearer token", err)
        rc, _, err = ctl.run("--verbose", "tenants", "show", "acme")
        self.assertEqual(rc, 0)
        self.assertIn("> GET %s/v1/tenants/acme" % s.gateway.url(""), err)

        # Dates: a bad date is the API's 400 (exit 1); a good one is queued; write-back state.
        rc, _, err = ctl.run("assets", "dates", one["id"], "--purchase", "yesterday")
        self.assertEqual(rc, 1)
        self.assertIn('"purchase_date" must be a date', err)
        rc, out, err = ctl.run("--json", "assets", "dates", one["id"], "--purchase", "2024-03-01",
                               "--warranty", "none")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["asset_id"], one["id"])
        self.assertEqual(ctl.json("assets", "writeback", one["id"]),
                         s.api("GET", "/v1/tenants/acme/assets/%s/writeback" % one["id"])[1])

        # Webhook secret: shown once by create, never by show; the previous one can be dropped.
        rc, out, err = ctl.run("webhook", "secret", "create")
        self.assertEqual(rc, 0, err)
        secret = re.search(r"^secret: (whsec_[0-9a-f]{64})$", out, re.M).group(1)
        rc, out, _ = ctl.run("webhook", "show")
        self.assertIn("configured: yes", out)
        self.assertNotIn(secret, out)
        rc, out, _ = ctl.run("--json", "webhook", "secret", "create", "--previous-valid-seconds", "60")
        self.assertIsNotNone(json.loads(out)["previous_valid_until"])
        self.assertEqual(ctl.run("webhook", "secret", "drop-previous")[0], 0)
        self.assertIsNone(s.api("GET", "/v1/tenants/acme/webhooks/mtp")[1]["previous_valid_until"])

        # ConnectWise RMM on a second tenant: a missing scope is named as the API names it;
        # the secret comes from stdin; the watch (plain lines) reaches Connected.
        cwrmm.start_cwrmm_sim(s)
        cwrmm.add_partner(s, "beta-cw", devices=30, companies=3)
        cwrmm.add_partner(s, "beta-noscope", devices=3, companies=1,
                          scopes=["platform.companies.read", "platform.sites.read"])
        self.assertEqual(ctl.run("tenants", "create", "beta", "Beta IT")[0], 0)
        st, api_js, _ = s.api("PUT", "/v1/tenants/beta/integrations/cwrmm",
                              {"base_url": s.cw.url("/beta-noscope"), "client_id": "cid-beta-noscope",
                               "client_secret": "sec-beta-noscope"})
        self.assertEqual(st, 422, api_js)
        rc, out, err = ctl.run("--tenant", "beta", "integration", "add", "cwrmm", "--base-url",
                               s.cw.url("/beta-noscope"), "--client-id", "cid-beta-noscope",
                               "--client-secret-file", "-", stdin="sec-beta-noscope\n")
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("HTTP 422: " + api_js["error"], err)
        self.assertIn("missing scope: " + api_js["missing_scope"], err)
        self.assertNotIn("sec-beta-noscope", out + err)
        rc, out, err = ctl.run("--tenant", "beta", "integration", "add", "cwrmm", "--base-url",
                               s.cw.url("/beta-cw"), "--client-id", "cid-beta-cw",
                               "--client-secret-file", "-", "--watch", "--interval", "100",
                               stdin="sec-beta-cw\n")
        self.assertEqual(rc, 0, (out, err))
        self.assertIsNone(CONTROL.search(out), repr(out))
        self.assertRegex(out, r"Connected: \d+ customers, 30 assets in the inventory\n$")
        # --json on a watch: the final status, as the API gives it
        final = ctl.json("--tenant", "beta", "integration", "watch", "cwrmm")
        self.assertEqual(final["state"], "Connected")
        self.assertEqual(final, s.api("GET", "/v1/tenants/beta/integrations/cwrmm")[1])

        # A watched sync that ends in Error: exit 4 with the status' error and hint.
        s.sim_admin("PUT", "/_sim/tokens/acme-key-123456", {"permissions": ALL_BUT_ASSETS})
        rc, out, err = ctl.run("sync", "syncro", "--watch", "--interval", "100")
        self.assertEqual(rc, 4, (out, err))
        last_error = s.status("acme")["last_error"]
        self.assertIn(PERM_ASSETS, last_error)
        self.assertIn("the sync ended in Error\nlast error: " + last_error, err)

        # Disable keeps the inventory; remove takes it, after which the status is 404 (exit 5).
        rc, out, err = ctl.run("integration", "disable", "syncro")
        self.assertEqual(rc, 0, err)
        self.assertEqual(s.status("acme")["state"], "Disabled")
        self.assertEqual(len(s.inventory("acme")), 300)
        self.assertEqual(ctl.run("integration", "remove", "syncro")[0], 0)
        self.assertEqual(ctl.run("integration", "status", "syncro")[0], 5)
        self.assertEqual(s.api("GET", "/v1/tenants/acme/assets")[1]["meta"]["total_entries"], 0)
        ctl.assert_token_never_shown(self)

    def test_ctl_sync_history_and_replay_of_a_tenant_dead_letter(self):
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, orgs=3, customers=10, unmapped=("org-0003",))
        ctl = Ctl(s.dir, s.gateway.url(""), s.admin_token, tenant=T.TENANT)
        # the sync history: the full sync the save started
        jobs = harness.wait_until(lambda: (lambda j: j if j and j[0]["result"] == "done" else None)(
            ctl.json("sync", "history", "syncro")["jobs"]), 60, "the save's job in the history")
        self.assertEqual(jobs[0]["trigger"], "save")
        self.assertEqual(ctl.json("sync", "history", "syncro", "--limit", "1"),
                         s.api("GET", "/v1/tenants/acme/integrations/syncro/jobs?limit=1")[1])
        rc, out, err = ctl.run("sync", "history", "syncro")
        self.assertEqual(rc, 0, err)
        self.assertIn("TRIGGER", out)
        self.assertIn(jobs[0]["job_id"], out)
        self.assertIn("customers=10", out)
        self.assertEqual(ctl.run("sync", "history", "nosuchvendor")[0], 2)

        # a dead letter of the tenant: an incident of an unmapped org
        inc = T.unmapped_incident(id="inc-ctl-1")
        self.assertEqual(T.post_incident(s, secret, inc)[0], 202)
        dls = harness.wait_until(lambda: ctl.json("dlq", "list")["dead_letters"], 60, "dead letter")
        dl = dls[0]["id"]
        self.assertEqual(ctl.json("dlq", "list", "--service", "ticket-creator", "--replayed", "false"),
                         s.api("GET", "/v1/tenants/acme/dead-letters?service=ticket-creator&replayed=false")[1])
        rc, out, _ = ctl.run("dlq", "list", "--reason", "org-0003")
        self.assertIn(dl, out)
        self.assertIn("ticket-creator", out)
        self.assertEqual(ctl.json("dlq", "show", dl)["value"]["org_id"], "org-0003")
        self.assertEqual(ctl.run("dlq", "replay")[0], 2)  # ids or --all
        self.assertEqual(ctl.run("dlq", "list", "--replayed", "maybe")[0], 2)

        # fix the cause, replay it: its ticket appears; a second replay is refused
        cid = ctl.json("customers", "list", "--per-page", "500")["customers"][4]["id"].split(":")[1]
        self.assertEqual(ctl.run("ticketing", "orgs", "set", "org-0003", cid)[0], 0)
        rc, out, err = ctl.run("dlq", "replay", dl)
        self.assertEqual((rc, out.strip()), (0, "replayed 1 dead letter: " + dl), err)
        tickets = harness.wait_until(lambda: T.sim_tickets(s), 60, "the replayed incident's ticket")
        self.assertEqual([str(t["customer_id"]) for t in tickets], [cid])
        rc, out, err = ctl.run("dlq", "replay", dl)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("already replayed", err)
        self.assertEqual(ctl.json("dlq", "list", "--replayed", "true")["dead_letters"][0]["id"], dl)
        rc, out, err = ctl.run("dlq", "replay", "--all")
        self.assertEqual((rc, out.strip()), (0, "replayed 0 dead letters"), err)
        ctl.assert_token_never_shown(self)

    def test_incident_trace_and_asset_history_with_a_viewer_key(self):
        """`incident trace` shows the incident's steps and its ticket (the simulator's), by
        incident id and by fingerprint; --json is the API's answer; an unknown incident exits 5.
        `asset history` shows an asset's sources joining it."""
        s = self.make_stack(sim_config={"rate_limit": 0})
        secret = T.setup(s, orgs=2, customers=3)
        inc = {"id": "inc-ctl-1", "org_id": "org-0001", "org_name": "Org One",
               "alert_type": "device_offline", "severity": "high", "status": "open",
               "subject": "WS-01", "title": "Device offline",
               "occurred_at": "2026-11-23T10:00:00.000Z"}
        st, js, _ = T.post_incident(s, secret, inc)
        self.assertEqual(st, 202, js)
        harness.wait_until(lambda: len(T.sim_tickets(s)) == 1, 60, "the ticket")
        T.wait_drained(s)
        ticket = T.sim_tickets(s)[0]
        _, viewer = s.add_key(T.TENANT, "viewer")
        ctl = Ctl(s.dir, s.gateway.url(""), viewer, tenant=T.TENANT)

        def traced():
            rc, out, err = ctl.run("incident", "trace", "inc-ctl-1")
            return (rc, out, err) if rc == 0 and "ticket_created" in out and \
                "normalized" in out else None
        rc, out, err = harness.wait_until(traced, 30, "the trace")
        self.assertIn("incident: inc-ctl-1\n", out)
        self.assertIn("ticket: #%s (id %s), open, generation 1\n" % (ticket["number"],
                                                                     ticket["id"]), out)
        steps = [line.split()[1] for line in out.splitlines()
                 if re.match(r"\d{4}-\d\d-\d\dT", line)]
        self.assertEqual(steps, ["received", "normalized", "create", "ticket_created"], out)
        self.assertIn("ticket_id=%s" % ticket["id"], out)
        self.assertIsNone(CONTROL.search(out), repr(out))
        api = s.api("GET", "/v1/tenants/acme/incidents/inc-ctl-1", token=viewer)[1]
        self.assertEqual(ctl.json("incident", "trace", "inc-ctl-1"), api)
        fp = api["incidents"][0]["fingerprint"]
        self.assertEqual(ctl.json("incident", "trace", fp)["incidents"], api["incidents"])
        rc, out, err = ctl.run("incident", "trace", "inc-never-sent")
        self.assertEqual(rc, 5, (out, err))
        self.assertEqual(ctl.run("incident", "trace")[0], 2)

        aid = sorted(a["id"] for a in s.inventory(T.TENANT, "assets"))[0]
        rc, out, err = ctl.run("asset", "history", aid, "--limit", "10")
        self.assertEqual(rc, 0, (out, err))
        self.assertRegex(out, r"joined\s+normalizer\s+source=%s integration=syncro" % re.escape(aid))
        self.assertEqual(ctl.run("asset", "history", aid, "--limit", "x")[0], 2)
        ctl.assert_token_never_shown(self)

    def test_config_file_flags_and_environment(self):
        """Flags beat the environment, which beats the config file; a config file holding a
        token that others may read is refused (exit 2) and its token is not used."""
        s = harness.Stack("ctl_config")
        self.stack = s
        self.addCleanup(self._teardown)
        s.start_redis()
        s.start_gateway()
        ctl = Ctl(s.dir, "http://127.0.0.1:1", s.admin_token)
        cfgdir = os.path.join(ctl.home, "cfg", "mspsync")
        os.makedirs(cfgdir)
        cfg = os.path.join(cfgdir, "config")
        with open(os.open(cfg, os.O_WRONLY | os.O_CREAT, 0o644), "w") as f:
            f.write("# mspsync\nurl = %s\ntoken = %s\ntenant = acme\n" % (s.gateway.url(""), s.admin_token))
        no_env = {"MSPSYNC_URL": "", "MSPSYNC_TOKEN_FILE": ""}
        rc, _, err = ctl.run("tenants", "list", env=no_env)
        self.assertEqual(rc, 2)
        self.assertIn("readable by others", err)
        os.chmod(cfg, 0o600)
        rc, out, err = ctl.run("--json", "tenants", "list", env=no_env)
        self.assertEqual((rc, json.loads(out)), (0, {"tenants": []}), err)
        # the environment's URL beats the file's; the flag beats the environment's
        self.assertEqual(ctl.run("tenants", "list", env={"MSPSYNC_URL": "http://127.0.0.1:1",
                                                         "MSPSYNC_TOKEN_FILE": ""})[0], 3)
        self.assertEqual(ctl.run("--url", s.gateway.url(""), "tenants", "list",
                                 env={"MSPSYNC_URL": "http://127.0.0.1:1", "MSPSYNC_TOKEN_FILE": ""})[0], 0)
        # a token file others may read is refused too
        os.chmod(ctl.token_file, 0o644)
        rc, _, err = ctl.run("--url", s.gateway.url(""), "tenants", "list")
        self.assertEqual(rc, 2)
        self.assertIn("readable by others", err)
        with open(cfg, "a") as f:
            f.write("tokn = x\n")
        rc, _, err = ctl.run("tenants", "list", env=no_env)
        self.assertEqual(rc, 2)
        self.assertIn('line 5: unknown key "tokn"', err)
        # Help: global, per group, per command; all exit 0 and need no API.
        rc, out, _ = ctl.run("--help")
        self.assertEqual(rc, 0)
        for cmd in ("tenants create <id> <name>", "integration watch syncro|cwrmm",
                    "assets search", "ticketing orgs set <org-id> <customer-id>"):
            self.assertIn(cmd, out)
        rc, out, _ = ctl.run("ticketing", "--help")
        self.assertEqual(rc, 0)
        self.assertIn("mspsyncctl ticketing orgs delete <org-id>", out)
        rc, out, _ = ctl.run("integration", "add", "syncro", "--help")
        self.assertEqual(rc, 0)
        self.assertIn("--api-key-file FILE", out)
        self.assertEqual(ctl.run("tenants")[0], 2)
        ctl.assert_token_never_shown(self)

    def test_answers_that_are_not_the_api_give_exit_3_and_a_clear_message(self):
        """Not JSON, cut short, larger than --max-answer, 5xx: a message, exit 3, no crash."""
        class Broken(http_server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path == "/v1/tenants" and self.headers.get("X-Never"):
                    return
                mode = self.server.mode
                if mode == "html":
                    self._send(200, b"<html>hello</html>", "text/html")
                elif mode == "cut":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b'{"tenants": [')
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif mode == "huge":
                    self._send(200, b'{"tenants": [' + b'{"id":"x"},' * 200000 + b'{}]}')
                elif mode == "500":
                    self._send(500, b'{"error": "boom"}')
                elif mode == "503html":
                    self._send(503, b"<html>Service Unavailable</html>", "text/html")
                elif mode == "escape":
                    self._send(400, json.dumps({"error": "bad \x1b[31mred"}).encode())

            def _send(self, status, body, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        srv = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        workdir = os.path.join(harness.WORK, "ctl_broken-" + harness.rand_id(6))
        ctl = Ctl(workdir, "http://127.0.0.1:%d" % srv.server_address[1], "tok-" + harness.rand_id(20))
        for mode, rc_want, text in [("html", 3, "is not a JSON object"),
                                    ("cut", 3, "cut short"),
                                    ("huge", 3, "larger than 65536 bytes"),
                                    ("500", 3, "HTTP 500: boom"),
                                    ("503html", 3, "HTTP 503: <html>Service Unavailable</html>"),
                                    ("escape", 1, "HTTP 400: bad ?[31mred")]:
            with self.subTest(mode=mode):
                srv.mode = mode
                rc, out, err = ctl.run("--max-answer", "65536", "tenants", "list")
                self.assertEqual(rc, rc_want, (out, err))
                self.assertIn(text, err)
                self.assertNotIn("\x1b", out + err)
        ctl.assert_token_never_shown(self)


if __name__ == "__main__":
    harness.main()
