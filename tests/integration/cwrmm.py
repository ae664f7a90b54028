"""
cwrmm.py — shared pieces of the ConnectWise RMM tests: the simulator and the write-back service
as processes, partners on the simulator, connecting a tenant through the gateway, waiting for a
sync to be in the inventory, and reading the inventory straight from Redis.
"""
import json
import os

from harness import BIN, Service, Stack, http, wait_until

BIN.setdefault("cwrmm-sim", os.path.join(os.path.dirname(BIN["syncro-sim"]), "cwrmm-sim"))
BIN.setdefault("write-back", os.path.join(os.path.dirname(os.path.dirname(BIN["fetcher"])),
                                          "write-back/mspsync-write-back"))


def start_cwrmm_sim(stack, config=None):
    pf = os.path.join(stack.dir, "cwrmm-sim.port")
    sim = Service("cwrmm-sim", [BIN["cwrmm-sim"], "--port", "0", "--port-file", pf, "--seed", "11"],
                  stack.base_env(), stack.dir, pf).start()
    stack.services.append(sim)
    stack.cw = sim
    if config:
        cw_admin(stack, "PUT", "/_sim/config", config)
    return sim


def start_write_back(stack, **extra):
    idx = len(getattr(stack, "write_backs", []))
    pf = os.path.join(stack.dir, "write-back%d.port" % idx)
    env = stack.base_env()
    env.update({"MSPSYNC_METRICS_PORT": "0", "MSPSYNC_PORT_FILE": pf,
                "MSPSYNC_GROUP": stack.prefix + "mspsync-write-back",
                "MSPSYNC_SYNCRO_RATE_MILLI": "1000000", "MSPSYNC_SYNCRO_BURST": "50",
                "MSPSYNC_CWRMM_RATE_MILLI": "100000000", "MSPSYNC_CWRMM_BURST": "1000",
                "MSPSYNC_BACKOFF_BASE_MS": "100", "MSPSYNC_BACKOFF_CAP_MS": "2000",
                "MSPSYNC_HTTP_TIMEOUT_MS": "3000"})
    env.update({k: str(v) for k, v in extra.items()})
    wb = Service("write-back%d" % idx, [BIN["write-back"]], env, stack.dir, pf).start()
    stack.write_backs = getattr(stack, "write_backs", []) + [wb]
    stack.services.append(wb)
    return wb


def start_dates_stack(stack, **gateway_env):
    """Everything a date test needs: Redis, both simulators, gateway (gateway_env: its settings),
    normalizer, one fetcher and one write-back."""
    stack.start_redis()
    stack.start_sim()
    start_cwrmm_sim(stack)
    stack.start_gateway(**gateway_env)
    stack.start_normalizer()
    stack.start_fetcher()
    start_write_back(stack)


def cw_admin(stack, method, path, body=None):
    return stack.svc_admin(stack.cw, method, path, body)


def cw_partner_stats(stack, partner):
    return cw_admin(stack, "GET", "/_sim/stats")["partners"][partner]


def add_partner(stack, partner, devices, companies=20, sites_per_company=2, overlap=None,
                scopes=None, date_field_names=None):
    """date_field_names: the partner's own spelling of the date definitions, e.g.
    {"purchase": "Purchase date", "warranty": "warranty expiration"} (created with the partner)."""
    body = {"partner": partner, "client_id": "cid-" + partner, "client_secret": "sec-" + partner,
            "companies": companies, "sites_per_company": sites_per_company, "devices": devices}
    if overlap:
        body["seed_overlap"] = overlap
    if scopes is not None:
        body["scopes"] = scopes
    if date_field_names is not None:
        body["date_field_names"] = date_field_names
    return cw_admin(stack, "POST", "/_sim/partners", body)


def connect_cwrmm(stack, tenant, partner, writeback=None, secret=None):
    body = {"base_url": stack.cw.url("/" + partner), "client_id": "cid-" + partner,
            "client_secret": secret or ("sec-" + partner)}
    if writeback is not None:
        body["writeback"] = writeback
    return stack.api("PUT", "/v1/tenants/%s/integrations/cwrmm" % tenant, body)


def sync_now_cwrmm(stack, tenant, types=("customers", "assets")):
    st, js, _ = stack.api("POST", "/v1/tenants/%s/integrations/cwrmm/sync" % tenant,
                          {"types": list(types)})
    assert st == 202, (st, js)
    return js["job_id"]


def k(tenant, rest):
    return "mspsync:{%s}:%s" % (tenant, rest)


def wait_cw_synced(stack, tenant, job_id, timeout=240):
    """The job is done and the normalizer committed the end of its assets."""
    def done():
        st = stack.redis("HGET", k(tenant, "status:cwrmm"), "state")
        if st == "error":
            raise AssertionError("sync failed: %r" % stack.redis("HGETALL", k(tenant, "status:cwrmm")))
        return st == "connected" and \
            stack.redis("HGET", k(tenant, "inv:stats"), "cwrmm_asset_complete_job") == job_id
    wait_until(done, timeout, "tenant %s cwrmm job %s in the inventory" % (tenant, job_id),
               interval=0.5)


def redis_lines(stack, *args):
    """A multi-line redis-cli answer as a list of strings."""
    out = stack.redis_raw(*args)
    return [l for l in out.split("\n") if l]


def all_assets(stack, tenant):
    """Every merged asset record of the tenant (from the Redis view)."""
    ids = redis_lines(stack, "ZRANGE", k(tenant, "inv:assets"), "0", "-1")
    out = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        vals = redis_lines(stack, "MGET", *[k(tenant, "inv:asset:" + a) for a in chunk])
        for a, v in zip(chunk, vals):
            out[a] = json.loads(v)
    return out


def source_record(stack, tenant, src_id):
    return json.loads(stack.redis_raw("GET", k(tenant, "inv:src:asset:" + src_id)))


class DatesTenant:
    """A TestCase mixin: one tenant (TENANT) with Syncro (account "wz-msp") and ConnectWise RMM
    (partner PARTNER) integrations, both opted into the date write-back, with ten machines in both;
    dates edited through the API (self.edits) and what each vendor was written. Needs self.s (a
    Stack started with start_dates_stack: setUp does, unless the test case has its own)."""

    TENANT = "wz"
    PARTNER = "pwz"
    WB = {"purchase_date": True, "warranty_expires": True}

    def setUp(self):
        self.s = Stack(self.id().split(".")[-1])
        start_dates_stack(self.s)
        self.edits = {}

    def tearDown(self):
        self.assertEqual(self.s.stop_all(), [])

    def api(self, method, path, body=None, timeout=90):
        """The answer of a call, asked again while the gateway answers 503 (restoring)."""
        def go():
            st, js, h = self.s.api(method, path, body)
            return None if st == 503 else (st, js, h)
        return wait_until(go, timeout, "%s %s answered" % (method, path), interval=0.3)

    def edit(self, aid, purchase, warranty, check=True):
        """Dates edited through the API; check=False: the answer is returned, not asserted (an
        edit that was not accepted is not expected anywhere)."""
        st, js, _ = self.api("PUT", "/v1/tenants/%s/assets/%s/dates" % (self.TENANT, aid),
                             {"purchase_date": purchase, "warranty_expires": warranty})
        if check:
            self.assertEqual(st, 202, js)
        if st == 202:
            self.edits[aid] = (purchase, warranty)
        return st, js

    def inventory(self):
        out = {}
        for kind in ("customers", "assets"):
            items, page = [], 1
            while True:
                st, js, _ = self.api("GET", "/v1/tenants/%s/%s?page=%d&per_page=500" % (self.TENANT, kind, page))
                self.assertEqual(st, 200, js)
                items += js[kind]
                if page >= js["meta"]["total_pages"]:
                    break
                page += 1
            out[kind] = sorted(items, key=lambda r: r["id"])
        return out

    def expected(self, before):
        """before with the edits' dates."""
        exp = json.loads(json.dumps(before))
        for a in exp["assets"]:
            if a["id"] in self.edits:
                p, w = self.edits[a["id"]]
                a["dates"] = {"purchase": {"value": p, "source": "manual"},
                              "warranty": {"value": w, "source": "manual"}}
        return exp

    def vendor_time_aside(self, inv):
        """inv without the edited assets' updated_at: our writes moved it in Syncro (a real
        vendor change), which a sync after them reads."""
        inv = json.loads(json.dumps(inv))
        for a in inv["assets"]:
            if a["id"] in self.edits:
                a.pop("updated_at")
        return inv

    def diff(self, got, expected):
        """The records that differ (for the failure message)."""
        e = {(kind, r["id"]): r for kind in expected for r in expected[kind]}
        g = {(kind, r["id"]): r for kind in got for r in got[kind]}
        return [(key, g.get(key), e.get(key)) for key in sorted(set(e) | set(g))
                if g.get(key) != e.get(key)][:3]

    def wait_inventory(self, expected, what):
        """Wait until the API's inventory, vendor times aside, is expected; fail with the first
        records that differ."""
        try:
            wait_until(lambda: self.vendor_time_aside(self.inventory()) == expected, 60, what)
        except AssertionError:
            raise AssertionError(self.diff(self.vendor_time_aside(self.inventory()), expected))

    def cw_writes(self):
        return cw_admin(self.s, "GET", "/_sim/partners/%s/writes" % self.PARTNER)

    def sy_updates(self):
        return self.s.sim_stats()["accounts"]["wz-msp"]["asset_updates"]

    def wait_written(self):
        """Every edit on both vendors, each value written once (one Syncro PUT per edit)."""
        n = len(self.edits)
        wait_until(lambda: len(self.cw_writes()) >= 2 * n and self.sy_updates() >= n, 90,
                   "%d edits written to both vendors" % n, interval=0.5)
        self.s.wait_normalized()
        got = {}
        for x in self.cw_writes():
            got.setdefault((x["endpointID"], x["name"]), []).append(x["value"][:10])
        self.assertEqual(len(self.cw_writes()), 2 * n, got)
        self.assertEqual(self.sy_updates(), n)
        for aid, (p, w) in self.edits.items():
            eid = self.cw_of[aid]
            self.assertEqual(got.get((eid, "Purchase Date")), [p], aid)
            self.assertEqual(got.get((eid, "Warranty Expiration")), [w], aid)
            props = self.s.sim_admin("GET", "/wz-msp/api/v1/customer_assets/%s?api_key=wz-key-123456"
                                     % aid.split(":")[1])["asset"]["properties"]
            self.assertEqual((props["Purchase Date"][:10], props["Warranty Expiration"][:10]), (p, w))

    def wait_served(self):
        st, js, _ = self.api("GET", "/v1/tenants/%s" % self.TENANT, timeout=120)
        self.assertEqual(st, 200, js)

    def set_up_synced(self, assets):
        """Both integrations synced, ten machines merged, three edits written."""
        s = self.s
        s.add_account("wz-msp", 4, assets, "wz-key-123456")
        s.add_tenant(self.TENANT)
        st, js, _ = s.api("PUT", "/v1/tenants/%s/integrations/syncro" % self.TENANT,
                          {"base_url": s.sim_base_url("wz-msp"), "api_key": "wz-key-123456",
                           "writeback": self.WB})
        self.assertIn(st, (200, 201), js)
        s.wait_synced(self.TENANT, js["job_id"], assets=assets)
        ids = sorted(redis_lines(s, "ZRANGE", k(self.TENANT, "inv:assets"), "0", "-1"))
        recs = [source_record(s, self.TENANT, i) for i in ids]
        recs = [r for r in recs if r["serial"] and r["manufacturer"] and r["macs"]][:10]
        self.assertEqual(len(recs), 10)
        add_partner(s, self.PARTNER, 20, companies=2,
                          overlap=[{"serial": r["serial"], "manufacturer": r["manufacturer"],
                                    "model": r["model"] or "M"} for r in recs])
        st, js, _ = connect_cwrmm(s, self.TENANT, self.PARTNER, writeback=self.WB)
        self.assertIn(st, (200, 201), js)
        wait_cw_synced(s, self.TENANT, js["job_id"])
        s.wait_normalized()
        merged = all_assets(s, self.TENANT)
        self.cw_of = {}
        for r in recs:
            src = [x for x in merged[r["id"]]["sources"] if x["integration"] == "cwrmm"]
            self.assertEqual(len(src), 1, merged[r["id"]])
            self.cw_of[r["id"]] = src[0]["id"]
        self.machines = [r["id"] for r in recs]
        # ready after its first start's (empty) rebuild
        wait_until(lambda: http("GET", s.normalizer.url("/readyz"))[0] == 200, 30,
                   "the normalizer ready")
        for i, aid in enumerate(self.machines[:3]):
            self.edit(aid, "2021-0%d-1%d" % (i + 1, i), "2029-0%d-2%d" % (i + 1, i))
        self.wait_written()

    def resync_changes_nothing(self, expected):
        """Both integrations synced again: nothing changes, nothing is written."""
        s = self.s
        dc = sum(s.topic_end_offsets("date.changes").values())
        cw, sy = len(self.cw_writes()), self.sy_updates()
        j1 = s.sync_now(self.TENANT)
        s.wait_synced(self.TENANT, j1)
        j2 = sync_now_cwrmm(s, self.TENANT)
        wait_cw_synced(s, self.TENANT, j2)
        s.wait_normalized()
        self.assertEqual(self.vendor_time_aside(self.inventory()),
                         self.vendor_time_aside(expected))
        self.assertEqual(sum(s.topic_end_offsets("date.changes").values()), dc)
        self.assertEqual((len(self.cw_writes()), self.sy_updates()), (cw, sy))
        self.assertEqual(s.kcat("dlq"), [])
