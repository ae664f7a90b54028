"""
billing.py — shared pieces of the usage-billing tests: a synced Syncro tenant whose orgs are
mapped to customers (the ticketing org map), recurring invoices (schedules) in the simulator,
signed usage reports, the billing clock (MSPSYNC_TEST_CLOCK_FILE), pushes, and the independent
model of the expected quantities: per (org, product) the highest count reported with as_of in
the period (a calendar month in the tenant's zone), late reports excluded.
"""
import calendar
import datetime
import hashlib
import hmac
import json
import os
import time
import zoneinfo

import harness
from harness import http, wait_until

TENANT = "acme"
SUB = "acme"
TOKEN = "tok-acme-billing"
TZ = "America/New_York"
PRODUCTS = {"SKU-BACKUP": "Backup seats", "SKU-MAIL": "Email seats", "SKU-ARCHIVE": "Archive seats"}
COUNTED_PRODUCT, COUNTED_LINE = "SKU-DEVICES", "Managed devices"


def ms(dt):
    return int(dt.timestamp() * 1000)


def local(y, m, d, h=12, mi=0):
    return datetime.datetime(y, m, d, h, mi, tzinfo=zoneinfo.ZoneInfo(TZ))


def iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """The billing clock of the gateway and the billing service (a file of epoch ms)."""

    def __init__(self, stack):
        self.path = os.path.join(stack.dir, "clock")

    def set(self, dt):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(ms(dt)))
        os.replace(tmp, self.path)
        time.sleep(0.25)  # both sides read the file again at most every 100 ms


def make_stack(test):
    """A stack not started yet (setup starts it, with the clock file in its directory)."""
    test.stack = harness.Stack(test.id().split(".")[-1])
    test.addCleanup(test._teardown)
    return test.stack


def setup(stack, clock_at, customers=60, orgs=50, mapped=None, products=None, billing_env=None,
          sim_config=None):
    """Start the stack with the clock at clock_at, sync a tenant, map org-0001..org-<mapped> to
    the first customers, give each of the first `customers` customers a recurring invoice with
    the fixed lines of PRODUCTS (quantity 0) and a counted line, configure billing. @returns
    (secret, clock, customer ids by org, schedules)."""
    clock = Clock(stack)
    clock.set(clock_at)
    env = {"MSPSYNC_TEST_CLOCK_FILE": clock.path}
    stack.start_all(sim_config=sim_config, gateway_env=env)
    stack.add_account(SUB, customers, 5, TOKEN)
    stack.add_tenant(TENANT)
    st, js, _ = stack.connect(TENANT, SUB, TOKEN)
    assert st in (200, 201, 202), (st, js)
    stack.wait_synced(TENANT, js["job_id"])
    wait_until(lambda: len(stack.inventory(TENANT, "customers")) == customers, 60, "customers synced")
    custs = sorted(int(c["id"].split(":", 1)[1]) for c in stack.inventory(TENANT, "customers"))
    st, js, _ = stack.api("POST", "/v1/tenants/%s/webhooks/mtp/secret" % TENANT, {})
    assert st == 201, (st, js)
    secret = js["secret"]
    by_org = {}
    for i in range(1, (orgs if mapped is None else mapped) + 1):
        org = "org-%04d" % i
        by_org[org] = custs[i - 1]
        map_org(stack, org, custs[i - 1])
    scheds = {}
    for i, cid in enumerate(custs[:orgs + 5]):
        lines = [{"name": name, "quantity": 0, "retail_cents": 500} for name in PRODUCTS.values()]
        lines.append({"name": COUNTED_LINE, "recurring_type_id": 2, "retail_cents": 100})
        js = stack.sim_admin("POST", "/_sim/accounts/%s/schedules" % SUB,
                             {"customer_id": cid, "name": "Monthly services", "lines": lines})
        scheds[cid] = js["schedule"]
    configure(stack, products or {p: {"line_name": n} for p, n in PRODUCTS.items()})
    stack.start_billing(MSPSYNC_TEST_CLOCK_FILE=clock.path, **(billing_env or {}))
    return secret, clock, by_org, custs


def map_org(stack, org, cid):
    st, js, _ = stack.api("PUT", "/v1/tenants/%s/ticketing/orgs/%s" % (TENANT, org),
                          {"customer_id": cid})
    assert st == 200, (org, st, js)


def configure(stack, products, **kw):
    body = {"enabled": True, "time_zone": TZ, "push_time": "12:00", "grace_days": 3,
            "products": products}
    body.update(kw)
    st, js, _ = stack.api("PUT", "/v1/tenants/%s/billing" % TENANT, body)
    assert st == 200, (st, js)
    return js


def sign(secret, raw):
    ts = str(int(time.time()))
    return {"X-MSPSync-Timestamp": ts, "Content-Type": "application/json",
            "X-MSPSync-Signature": "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + raw,
                                                    hashlib.sha256).hexdigest()}


def send(stack, secret, reports, batch=250):
    """POST the reports in batches (signed); every batch must be accepted."""
    url = stack.gateway.url("/v1/webhooks/mtp/%s/usage" % TENANT)
    for i in range(0, len(reports), batch):
        chunk = reports[i:i + batch]
        body = chunk[0] if len(chunk) == 1 else {"reports": chunk}
        raw = json.dumps(body).encode()
        st, js, _ = http("POST", url, raw, sign(secret, raw))
        assert st == 202, (st, js)
        assert js["accepted"] == len(chunk), js


def report(org, product, count, as_of, rid=None):
    r = {"org_id": org, "org_name": "Org " + org, "product": product, "count": count,
         "as_of": iso(as_of)}
    if rid:
        r["report_id"] = rid
    return r


def status(stack):
    st, js, _ = stack.api("GET", "/v1/tenants/%s/billing/status" % TENANT)
    assert st == 200, (st, js)
    return js


def wait_applied(stack, n, timeout=90):
    """Wait until the billing service took n reports (applied or late)."""
    def done():
        s = status(stack)["stats"]
        got = s.get("reports_applied", 0) + s.get("late_reports", 0)
        assert got <= n, (got, n)
        return got == n or None
    return wait_until(done, timeout, "%d usage reports applied" % n, interval=0.3)


def push(stack, timeout=120):
    """Request a push and wait until it is finished; @returns the last_push record."""
    st, js, _ = stack.api("POST", "/v1/tenants/%s/billing/push" % TENANT)
    assert st == 202, (st, js)
    pid = js["push_id"]

    def done():
        lp = status(stack)["last_push"]
        return lp if lp.get("push_id") == pid else None
    return wait_until(done, timeout, "push %s finished" % pid, interval=0.3)


def changes(stack):
    return stack.sim_admin("GET", "/_sim/accounts/%s/quantity_changes" % SUB)["changes"]


def sim_lines(stack):
    """{(customer_id, line name): line} of every schedule in the simulator."""
    out = {}
    for sc in stack.sim_admin("GET", "/_sim/accounts/%s/schedules" % SUB)["schedules"]:
        for l in sc["lines"]:
            out[(sc["customer_id"], l["name"])] = l
    return out


def expected_marks(sent, period, late=()):
    """The model: per (org, product) the highest count with as_of in period (YYYY-MM in TZ),
    reports listed in `late` left out."""
    marks = {}
    skip = {id(r) for r in late}
    for r in sent:
        if id(r) in skip:
            continue
        as_of = datetime.datetime.strptime(r["as_of"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).astimezone(zoneinfo.ZoneInfo(TZ))
        if as_of.strftime("%Y-%m") != period:
            continue
        k = (r["org_id"], r["product"])
        marks[k] = max(marks.get(k, -1), r["count"])
    return marks


def qty(line):
    return float(line["quantity"])
