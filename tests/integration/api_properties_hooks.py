"""
api_properties_hooks.py — Schemathesis hooks for test_api_properties.py (loaded through
SCHEMATHESIS_HOOKS; the seeded ids arrive in the JSON file named by MSPSYNC_API_SEEDS).

Generated path parameters are random text, so almost every request would stop at "unknown
tenant". before_call (which sees the cases of every phase, the coverage phase's too) points most
of them at the resources the test seeded — tenant `acme` with a synced Syncro integration, its
customers and assets, mapped orgs — and keeps the generated value for the rest (chosen by a hash
of the value, so a run is reproducible from its seed), so the 404 paths stay covered too.
Operations that remove or replace what they address always go to a tenant of their own, so
`acme` and its webhook secret stay intact for the rest of the run: disable and new webhook
secrets to `beta`, removing Syncro to `gamma` (ConnectWise RMM shares its machines: 202), removing
ConnectWise RMM to `delta`, offboarding (DELETE /v1/tenants/{tenant}) to `zeta`. Org mappings
name a seeded customer for most cases, so a mapping is also made, not only refused.

The MTP webhook is authenticated by an HMAC of the raw body, which a generator cannot forge: the
before_call hook serializes the body itself, sends exactly those bytes, and signs most deliveries
correctly with the tenant's secret; the others get a wrong signature, a stale timestamp or the
generated headers, which the gateway must refuse with 401.
"""
import hashlib
import hmac
import json
import os
import time
import zlib

import schemathesis

with open(os.environ["MSPSYNC_API_SEEDS"]) as _f:
    SEEDS = json.load(_f)

WEBHOOK_PATH = "/v1/webhooks/mtp/{tenant}"
ORG_PATH = "/v1/tenants/{tenant}/ticketing/orgs/{org_id}"
DESTRUCTIVE = {("DELETE", "/v1/tenants/{tenant}/integrations/syncro"): "gamma",
               ("DELETE", "/v1/tenants/{tenant}/integrations/cwrmm"): "delta",
               ("POST", "/v1/tenants/{tenant}/integrations/{integration}/disable"): "beta",
               ("POST", "/v1/tenants/{tenant}/webhooks/mtp/secret"): "beta",
               ("DELETE", "/v1/tenants/{tenant}/webhooks/mtp/secret/previous"): "beta",
               ("DELETE", "/v1/tenants/{tenant}"): "zeta"}


def _bucket(value, n):
    return zlib.crc32(repr(value).encode("utf-8", "surrogatepass")) % n


def point_at_seeds(case):
    op = (case.method.upper(), case.operation.path)
    params = dict(case.path_parameters or {})
    if "tenant" in params:
        if op in DESTRUCTIVE:
            params["tenant"] = DESTRUCTIVE[op]
        elif _bucket(params["tenant"], 5) != 0:
            params["tenant"] = SEEDS["tenant"]
    if "id" in params and _bucket(params["id"], 5) != 0:
        pool = SEEDS["customers"] if "/customers/" in op[1] else SEEDS["assets"]
        params["id"] = pool[_bucket(params["id"], len(pool))]
    if "org_id" in params and _bucket(params["org_id"], 3) != 0:
        params["org_id"] = SEEDS["orgs"][_bucket(params["org_id"], len(SEEDS["orgs"]))]
    if params:
        case.path_parameters = params
    if op == ("PUT", ORG_PATH) and isinstance(case.body, dict) and _bucket(case.body, 3) != 0:
        cust = SEEDS["customers"][_bucket(case.body, len(SEEDS["customers"]))]
        case.body = {"customer_id": cust.split(":", 1)[1]}


def sign(secret, ts, raw):
    return "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()


def sign_webhook(case, kwargs):
    if case.body is None or type(case.body).__name__ == "NotSet":
        raw = b""
    elif isinstance(case.body, (bytes, str)):
        raw = case.body if isinstance(case.body, bytes) else case.body.encode("utf-8", "surrogatepass")
        kwargs["data"] = raw
    else:
        raw = json.dumps(case.body).encode()
        kwargs["data"] = raw  # exactly the bytes that are signed
    secret = SEEDS["webhook_secrets"].get(case.path_parameters.get("tenant"), SEEDS["webhook_secret"])
    mode = _bucket(raw, 10)
    if mode == 9:
        return  # the generated (random or missing) signature headers
    ts = str(int(time.time()) - (3600 if mode == 8 else 0))
    sig = sign(secret, ts, raw)
    if mode == 7:
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    headers = dict(case.headers or {})
    headers["X-MSPSync-Timestamp"] = ts
    headers["X-MSPSync-Signature"] = sig
    case.headers = headers


@schemathesis.hook
def before_call(context, case, kwargs):
    point_at_seeds(case)
    if case.operation.path == WEBHOOK_PATH and case.method.upper() == "POST":
        sign_webhook(case, kwargs)


def _error_text(response):
    try:
        return str(response.json().get("error") or response.json().get("reason") or "")
    except Exception:
        return ""


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but one that is not the gateway's fault: the shared Kafka broker of a
    developer machine may be restarted by another test, and the documented 503 naming Kafka is
    then the right answer (readiness, queued jobs, removals, edits, incidents)."""
    if response is None or response.status_code != 503 or type(failure).__name__ != "ServerError":
        return True  # only the "server error" verdict; the 503's body must still conform
    text = _error_text(response)
    if "kafka" in text.lower() or "could not queue" in text or "could not publish" in text:
        print("api_properties_hooks: a documented 503 while Kafka was away: %s %s: %s" % (
            case.method, case.formatted_path, text), flush=True)
        return False
    return True
