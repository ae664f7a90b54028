"""
cwrmm.py — shared pieces of the ConnectWise RMM tests: the simulator and the write-back service
as processes, partners on the simulator, connecting a tenant through the gateway, waiting for a
sync to be in the inventory, and reading the inventory straight from Redis.
"""
import json
import os

from harness import BIN, Service, wait_until

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


def start_dates_stack(stack):
    """Everything a date test needs: Redis, both simulators, gateway, normalizer, one fetcher and
    one write-back."""
    stack.start_redis()
    stack.start_sim()
    start_cwrmm_sim(stack)
    stack.start_gateway()
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
