"""The filter's stats, as Envoy operators see them on the admin interface.

The filter defines its counters and gauges through proxy-wasm metrics
(src/host/metrics.rs). Envoy files them under its custom-stat namespace: in /stats
`tokengate.tokens_issued.password` is `wasmcustom.tokengate.tokens_issued.password`,
and /stats/prometheus drops the namespace and turns dots into underscores,
with no `envoy_` prefix: `tokengate_tokens_issued_password`. Counters and
gauges are process-wide (every worker's VM adds to the same stat), so after a
known sequence of requests every value is exact (the happy paths' stats once every
worker's timer has added its counts, within a second: see `settled_stats`).
"""

import re
import time

import requests

import harness
from client import (
    ADMIN, CC, Req, basic, call, client_token, expect, form, password_grant, post_token,
    refresh, send, token_req,
)

# name (as the filter defines it) → kind; docs/stats.md's table.
METRICS = {
    "tokengate.tokens_issued.client_credentials": "counter",
    "tokengate.tokens_issued.password": "counter",
    "tokengate.tokens_issued.refresh_token": "counter",
    "tokengate.token_errors": "counter",
    "tokengate.refresh_reuse_detected": "counter",
    "tokengate.requests_allowed": "counter",
    "tokengate.requests_denied.missing_token": "counter",
    "tokengate.requests_denied.invalid_request": "counter",
    "tokengate.requests_denied.invalid_token": "counter",
    "tokengate.requests_denied.insufficient_scope": "counter",
    "tokengate.requests_denied.no_such_resource": "counter",
    "tokengate.revocations": "counter",
    "tokengate.introspections": "counter",
    "tokengate.registrations": "counter",
    "tokengate.store_full": "counter",
    "tokengate.store_grants": "gauge",
    "tokengate.store_capacity": "gauge",
    "tokengate.registered_clients": "gauge",
    "tokengate.fleet.watch_heartbeat_ms": "gauge",
    "tokengate.fleet.etcd_failures": "counter",
    "tokengate.fleet.conflicts": "counter",
    "tokengate.fleet.etcd_token_refusals": "counter",
    "tokengate.tokens_issued.authorization_code": "counter",
    "tokengate.requests_denied.subscription_required": "counter",
    "tokengate.requests_denied.subscription_blocked": "counter",
    "tokengate.requests_denied.throttled": "counter",
    "tokengate.sign_in.slow_hashes": "counter",
    "tokengate.sign_in.busy": "counter",
}
STATS_PREFIX = "wasmcustom."  # Envoy's namespace for stats a wasm module defines


def stats_name(metric: str) -> str:
    return STATS_PREFIX + metric


def prometheus_name(metric: str) -> str:
    return metric.replace(".", "_")


# Declared as state gauges (StateGauge in src/host/metrics.rs), apart from Metric::ALL, and
# defined in src/filter/envoy_host.rs: gauges, so that the admin port's /reset_counters cannot
# send them back to values old worker memories were stored under.
EPOCHS = {"tokengate.token_epoch", "tokengate.failure_epoch"}


def filter_stats(gw) -> dict[str, int]:
    """The filter's stats from /stats, by the name the filter gave them."""
    found = gw.stats(r"^wasmcustom\.")
    return {name.removeprefix(STATS_PREFIX): value for name, value in found.items()}


def settled_stats(gw, expected: dict[str, int], seconds: float = 5) -> dict[str, int]:
    """The filter's stats once they show `expected` (or after `seconds`): each worker adds
    allowed requests and issued tokens on its timer, every second
    (EnvoyMetrics::flush in src/filter/envoy_host.rs)."""
    deadline = time.monotonic() + seconds
    while True:
        stats = filter_stats(gw)
        if all(stats.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            return stats
        time.sleep(0.1)


def prometheus(gw) -> tuple[dict[str, float], dict[str, str]]:
    """Samples and types from /stats/prometheus."""
    text = requests.get(f"{gw.admin}/stats/prometheus", timeout=5).text
    values, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            sample, value = line.rsplit(" ", 1)
            values[re.sub(r"\{.*\}$", "", sample)] = float(value)
    return values, types


# No reuse grace: the reused refresh token below counts as reuse at once.
PLUGIN_CONFIG = harness.with_changes(harness.demo_plugin_config(), refresh_token_reuse_grace_ms=0)


def test_metrics_table_matches_the_source():
    """Every metric src/host/metrics.rs defines is in this module's table, so none
    goes without an end-to-end check (or out of docs/stats.md)."""
    source = (harness.REPO / "src" / "host" / "metrics.rs").read_text()
    defined = set(re.findall(r'=> \{?\s*"(tokengate\.[a-z_.]+)"', source))
    assert defined == set(METRICS) | EPOCHS


def test_stats_after_known_traffic(gateway):
    # Each VM's configuration moves both epochs once (it proves Envoy keeps them and makes
    # older memories stale): the traffic below is counted from here.
    at_start = filter_stats(gateway)
    # /token: 4 client_credentials, 2 password, 1 refresh; 3 errors, one of
    # them a reused refresh token (which revokes its grant).
    cc = [client_token(gateway) for _ in range(3)]
    read_only = client_token(gateway, scope="orders:read", scope_out="orders:read")
    first = password_grant(gateway)
    password_grant(gateway)
    expect(refresh(gateway, first["refresh_token"]), 200)
    expect(refresh(gateway, first["refresh_token"]), 400, body={"error": "invalid_grant"})
    expect(post_token(gateway, CC, ("demo-app", "wrong")), 401)
    expect(post_token(gateway, "grant_type=implicit"), 400)

    # Resources: 3 allowed (the public one too), 7 denied for 5 reasons.
    for resp, status in [
        (call(gateway, "/api/orders", cc[1]), 200),
        (call(gateway, "/api/orders/7", cc[2]), 200),
        (call(gateway, "/api/public/ping"), 200),
        (call(gateway, "/api/orders"), 401),
        (call(gateway, "/api/orders", "a b"), 400),
        (call(gateway, "/api/orders", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 401),
        (call(gateway, "/api/orders", first["access_token"]), 401),  # its grant was revoked
        (call(gateway, "/api/orders", read_only, method="POST"), 403),
        (call(gateway, "/api/nothing", cc[1]), 404),
        (call(gateway, "/api/orders", cc[1], method="DELETE"), 405),
    ]:
        expect(resp, status)

    # One revocation counts; an unknown token and a refused one do not.
    expect(send(gateway, token_req(form(token=cc[0]), path="/revoke")), 200)
    expect(send(gateway, token_req(form(token="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), path="/revoke")), 200)
    orders_service = ("orders-service", "orders-service-secret")
    expect(send(gateway, token_req(form(token=cc[1]), orders_service, path="/revoke")), 400)
    # Two introspections count; an unauthenticated one does not.
    expect(send(gateway, token_req(form(token=cc[1]), path="/introspect")), 200, body={"active": True})
    expect(send(gateway, token_req(form(token=cc[0]), path="/introspect")), 200, body={"active": False})
    expect(send(gateway, token_req(form(token=cc[1]), None, path="/introspect")), 401)
    # Two registrations, one deleted.
    register = "/client-registration/v0.17/register"
    ids = []
    for name in ("stats-a", "stats-b"):
        req = Req("POST", register, {"Authorization": basic(*ADMIN), "Content-Type": "application/json"},
                  f'{{"clientName": "{name}", "grantType": "client_credentials"}}')
        ids.append(expect(send(gateway, req), 201, body={})["clientId"])
    expect(send(gateway, Req("DELETE", f"{register}/{ids[0]}", {"Authorization": basic(*ADMIN)})), 204)

    expected = {
        "tokengate.tokens_issued.client_credentials": 4,
        "tokengate.tokens_issued.password": 2,
        "tokengate.tokens_issued.refresh_token": 1,
        "tokengate.token_errors": 3,
        "tokengate.refresh_reuse_detected": 1,
        "tokengate.requests_allowed": 3,
        "tokengate.requests_denied.missing_token": 1,
        "tokengate.requests_denied.invalid_request": 1,
        "tokengate.requests_denied.invalid_token": 2,
        "tokengate.requests_denied.insufficient_scope": 1,
        "tokengate.requests_denied.no_such_resource": 2,
        "tokengate.revocations": 1,
        "tokengate.introspections": 2,
        "tokengate.registrations": 2,
        "tokengate.store_full": 0,
        # 4 client_credentials grants, one revoked; 2 password grants, one revoked.
        "tokengate.store_grants": 4,
        "tokengate.store_capacity": 10000,
        "tokengate.registered_clients": 1,
        # Not in fleet mode: nothing to report.
        "tokengate.fleet.watch_heartbeat_ms": 0,
        # The token epoch (src/state/remembered.rs, a gauge defined beside the stats in
        # src/filter/envoy_host.rs): one refresh rotation, one reuse, one revocation.
        "tokengate.token_epoch": at_start["tokengate.token_epoch"] + 3,
        # The failure epoch (src/state/lockout.rs, beside it): the one wrong secret.
        "tokengate.failure_epoch": at_start["tokengate.failure_epoch"] + 1,
        "tokengate.fleet.etcd_failures": 0,
        "tokengate.fleet.conflicts": 0,
        "tokengate.fleet.etcd_token_refusals": 0,
        "tokengate.tokens_issued.authorization_code": 0,
        # The demo has no APIs: nothing needs a subscription or a tier.
        "tokengate.requests_denied.subscription_required": 0,
        "tokengate.requests_denied.subscription_blocked": 0,
        "tokengate.requests_denied.throttled": 0,
        # No sign-in at the login form (test_authorization_code.py counts those).
        "tokengate.sign_in.slow_hashes": 0,
        "tokengate.sign_in.busy": 0,
    }
    assert settled_stats(gateway, expected) == expected

    values, types = prometheus(gateway)
    for metric, value in expected.items():
        name = prometheus_name(metric)
        kind = "gauge" if metric in EPOCHS else METRICS.get(metric, "counter")
        assert types.get(name) == kind, (name, types.get(name))
        assert values.get(name) == value, (name, values.get(name), value)


VALIDITY_S = 3


def test_store_full_and_sweep_show_in_stats(envoy_factory):
    """A store of 8 grants whose tokens live 3 s (time enough to fill it
    before any expires): 8 issued, 3 refused (store full), then the sweep
    reclaims the expired grants, the gauge follows them down to 0, and the
    store takes 8 again."""
    plugin = harness.demo_plugin_config()
    plugin["store"] = {"capacity": 8}
    plugin["applications"][0]["access_token_validity_secs"] = VALIDITY_S
    gw = envoy_factory.start(plugin)
    for _ in range(8):
        client_token(gw)
    for _ in range(3):
        expect(post_token(gw, CC), 503, body={"error": "temporarily_unavailable"})
    assert {k: v for k, v in filter_stats(gw).items() if k.startswith("tokengate.store")} == {
        "tokengate.store_full": 3, "tokengate.store_grants": 8, "tokengate.store_capacity": 8,
    }
    # One bucket, swept by every VM every second: expiry plus a few ticks.
    deadline = time.monotonic() + VALIDITY_S + 1 + 5
    while filter_stats(gw)["tokengate.store_grants"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert filter_stats(gw)["tokengate.store_grants"] == 0, "expired grants were not swept"
    for _ in range(8):
        client_token(gw)
    refilled = {"tokengate.store_grants": 8, "tokengate.tokens_issued.client_credentials": 16}
    stats = settled_stats(gw, refilled)
    assert (stats["tokengate.store_grants"], stats["tokengate.tokens_issued.client_credentials"]) == (8, 16)
