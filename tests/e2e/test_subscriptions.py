"""APIs, tiers and subscriptions (docs/apis-tiers-subscriptions.md), against the real Envoy and its 2 workers.

Contract: a resource of an API needs a token (401), then that the token's application
is subscribed to the API and the subscription active (403 subscription_required or
subscription_blocked, no Bearer challenge), then the scope (403 insufficient_scope),
then the subscription's tier (429 with Retry-After, RateLimit-Policy, RateLimit and
X-RateLimit-*). Allowed requests carry x-tokengate-api and x-tokengate-tier upstream.
The tier's count is shared by both workers: requests over fresh connections (which the
kernel spreads over the workers) never get more than the tier plus one per other worker
twice over (see src/gateway/throttle.rs).
"""

import time

import requests

import pytest

import harness
from client import (
    ABSENT, FULL_SCOPE, Expect, bearer_req, call, client_token, expect, form, forwarded, on_every_worker, post_token,
    token_error, token_success,
)

TINY = 5
PLUGIN_CONFIG = harness.with_changes(
    harness.demo_plugin_config(),
    tiers=[{"name": "Tiny", "requests": TINY, "per": "second"}],
    apis=[
        {"name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0", "sandbox_upstream": "sandbox_upstream",
         "resources": [
            {"methods": ["GET"], "path": "/items", "scopes": ["orders:read"]},
            {"methods": ["GET"], "path": "/admin", "scopes": ["orders:write"]}]},
        {"name": "Stock", "version": "2.0", "context": "/stock/2.0", "resources": [
            {"methods": ["GET"], "path": "/", "scopes": []}]},
    ],
)
SUBSCRIBERS = {
    "tiny": [{"api": "Orders", "tier": "Tiny"}],
    "unlimited": [{"api": "Orders"}],
    "blocked": [{"api": "Orders", "tier": "Gold", "state": "blocked"}],
    "prod-blocked": [{"api": "Orders", "tier": "Bronze", "state": "prod_only_blocked"}],
}
PLUGIN_CONFIG["applications"] += [
    {"consumer_key": key, "consumer_secret": "s3cret", "scopes": ["orders:read"], "subscriptions": subscriptions,
     "sandbox": {"consumer_key": f"{key}-sandbox", "consumer_secret": "s3cret"}}
    for key, subscriptions in SUBSCRIBERS.items()
]
ROUTING_HEADER = "x-tokengate-upstream"


def token_of(gateway, key: str) -> str:
    return client_token(gateway, (key, "s3cret"), scope_out="orders:read")


def subscription_error(error: str) -> Expect:
    return Expect(403, {"WWW-Authenticate": ABSENT}, {"error": error})


class TestSubscriptions:
    ROWS = [
        # (name, application, path, expected)
        ("not subscribed", "tiny", "/stock/2.0", subscription_error("subscription_required")),
        ("blocked", "blocked", "/orders/1.0.0/items", subscription_error("subscription_blocked")),
        ("blocked for production keys", "prod-blocked", "/orders/1.0.0/items",
         subscription_error("subscription_blocked")),
        ("subscribed, scope missing", "unlimited", "/orders/1.0.0/admin",
         Expect(403, body={"error": "insufficient_scope"})),
        ("the demo app has no subscription", "demo-app", "/orders/1.0.0/items",
         subscription_error("subscription_required")),
    ]

    @pytest.mark.parametrize("name,app,path,want", ROWS, ids=[row[0] for row in ROWS])
    def test_denials(self, gateway, name, app, path, want):
        token = client_token(gateway) if app == "demo-app" else token_of(gateway, app)
        want.check(call(gateway, path, token))

    def test_subscribed_requests_carry_the_api_and_tier_upstream(self, gateway):
        token = token_of(gateway, "unlimited")
        spoofed = {"X-TokenGate-Api": "Stock", "x-tokengate-tier": "Gold"}
        echo = forwarded(call(gateway, "/orders/1.0.0/items", token, **spoofed))
        assert echo["headers"]["x-tokengate-api"] == "Orders"
        assert echo["headers"]["x-tokengate-tier"] == "Unlimited"
        # The demo's flat resources are the implicit API: no subscription, no tier headers.
        echo = forwarded(call(gateway, "/api/orders", client_token(gateway), **spoofed))
        assert "x-tokengate-api" not in echo["headers"] and "x-tokengate-tier" not in echo["headers"]

    def test_a_rated_tier_tells_the_client_what_is_left_once_half_is_used(self, gateway):
        token = token_of(gateway, "tiny-sandbox")  # Tiny: 5 a second, shared with "tiny"
        # Three requests within one second (a burst that straddles a second tries again).
        for _ in range(20):
            time.sleep(1.02 - time.time() % 1)
            second = int(time.time())
            responses = [call(gateway, "/orders/1.0.0/items", token) for _ in range(3)]
            if int(time.time()) == second:
                break
        else:
            raise AssertionError("no 3 requests fitted in one second in 20 tries")
        for response in responses:
            forwarded(response)
        # 4 and 3 left of 5: no header (each is a host call); 2 left: the IETF draft's pair.
        for response in responses[:2]:
            expect(response, 200, {"RateLimit": ABSENT, "RateLimit-Policy": ABSENT})
        expect(responses[2], 200, {"RateLimit-Policy": f'"Tiny";q={TINY};w=1', "RateLimit": '"Tiny";r=2;t=1'})
        unlimited = call(gateway, "/orders/1.0.0/items", token_of(gateway, "unlimited"))
        expect(unlimited, 200, {"RateLimit": ABSENT, "RateLimit-Policy": ABSENT})

    def test_unlimited_is_never_throttled(self, gateway):
        token = token_of(gateway, "unlimited")
        sent = on_every_worker(gateway, bearer_req("/orders/1.0.0/items", token), forwarded, per_worker=6)
        assert sent > TINY

    def test_a_tier_is_shared_by_both_workers_and_ends_with_its_window(self, gateway):
        token = token_of(gateway, "tiny")
        # A burst that straddles a second boundary proves nothing: try again (never skip).
        for _ in range(20):
            allowed, throttled, same_second = burst(gateway, token)
            if same_second:
                break
        else:
            raise AssertionError("no burst of requests fitted in one second in 20 tries")
        assert TINY <= allowed <= TINY + 2, allowed
        expect(throttled, 429, {
            "Retry-After": "1",
            "RateLimit-Policy": f'"Tiny";q={TINY};w=1',
            "RateLimit": '"Tiny";r=0;t=1',
            "X-RateLimit-Limit": str(TINY),
            "X-RateLimit-Remaining": "0",
            "WWW-Authenticate": ABSENT,
        }, {"error": "throttled"})
        time.sleep(1.05 - time.time() % 1)
        forwarded(call(gateway, "/orders/1.0.0/items", token))
        stats = gateway.stats(r"^wasmcustom\.tokengate\.requests_denied\.(throttled|subscription_\w+)$")
        assert stats["wasmcustom.tokengate.requests_denied.throttled"] >= 1
        # By API too: the APIs come from the config, so these stats are bounded.
        by_api = gateway.stats(r"^wasmcustom\.tokengate\.api\.")
        assert by_api["wasmcustom.tokengate.api.Orders.throttled"] >= 1, by_api
        assert by_api["wasmcustom.tokengate.api.Stock.throttled"] == 0, by_api
        # test_denials (run before this one) met a blocked Orders and an unsubscribed Stock.
        assert by_api["wasmcustom.tokengate.api.Orders.subscription_denied"] >= 2, by_api
        assert by_api["wasmcustom.tokengate.api.Stock.subscription_denied"] >= 1, by_api
        assert set(by_api) == {f"wasmcustom.tokengate.api.{api}.{stat}" for api in ("Orders", "Stock")
                               for stat in ("throttled", "subscription_denied")}, by_api


def burst(gateway, token: str):
    """Requests over fresh connections from the start of a second until one is throttled:
    how many were allowed, the 429, and whether it all happened within that second."""
    time.sleep(1.02 - time.time() % 1)
    second = int(time.time())
    allowed = 0
    while True:
        response = call(gateway, "/orders/1.0.0/items", token, Connection="close")
        if response.status_code != 200:
            return allowed, response, int(time.time()) == second
        allowed += 1
        assert allowed <= 3 * TINY, "never throttled"


def test_production_in_the_scope_selects_the_key_type(gateway):
    """`scope=PRODUCTION` (older WSO2) is the key type, not a scope."""
    body = form(grant_type="password", username="admin", password="admin", scope="PRODUCTION")
    token_success(FULL_SCOPE, refresh=True).check(post_token(gateway, body))
    token_error(400, "invalid_scope").check(post_token(gateway, form(grant_type="client_credentials", scope="SANDBOX")))


class TestSandboxKeys:
    """Sandbox tokens reach the API's sandbox upstream, production tokens the production one.

    The local_ratelimit filter ahead of tokengate looks up its per-route config, so Envoy has
    picked a route before the wasm filter runs: a sandbox token reaching the sandbox upstream
    (and a spoofed header that the filter strips leaving the request on production) shows that
    Envoy picks the route again after the filter's header change."""

    def test_sandbox_and_production_tokens_reach_their_own_upstream(self, gateway):
        sandbox = token_of(gateway, "unlimited-sandbox")
        production = token_of(gateway, "unlimited")
        for _ in range(4):
            echo = forwarded(call(gateway, "/orders/1.0.0/items", sandbox, Connection="close"))
            assert echo.get("upstream") == "sandbox", echo
            assert echo["headers"]["x-tokengate-client-id"] == "unlimited-sandbox"
            echo = forwarded(call(gateway, "/orders/1.0.0/items", production, Connection="close"))
            assert "upstream" not in echo and ROUTING_HEADER not in echo["header_names"], echo

    def test_prod_only_blocked_blocks_production_tokens_only(self, gateway):
        subscription_error("subscription_blocked").check(
            call(gateway, "/orders/1.0.0/items", token_of(gateway, "prod-blocked")))
        echo = forwarded(call(gateway, "/orders/1.0.0/items", token_of(gateway, "prod-blocked-sandbox")))
        assert echo["upstream"] == "sandbox" and echo["headers"]["x-tokengate-tier"] == "Bronze"

    def test_a_sandbox_token_gets_no_api_without_a_sandbox_upstream(self, gateway):
        # Stock names no sandbox upstream (and the sandbox token's app is not subscribed to it).
        subscription_error("subscription_required").check(
            call(gateway, "/stock/2.0", token_of(gateway, "tiny-sandbox")))

    @pytest.mark.parametrize("spoofed", ["sandbox_upstream", "demo_upstream", "no_such_cluster"])
    def test_a_client_sent_routing_header_is_stripped(self, gateway, spoofed):
        production = token_of(gateway, "unlimited")
        for path, token in [("/orders/1.0.0/items", production), ("/api/public/ping", None)]:
            echo = forwarded(call(gateway, path, token, **{"X-TokenGate-Upstream": spoofed}))
            assert "upstream" not in echo and ROUTING_HEADER not in echo["header_names"], (path, echo)
        # A sandbox token's header replaces the client's copy: one value, the filter's.
        echo = forwarded(call(gateway, "/orders/1.0.0/items", token_of(gateway, "unlimited-sandbox"),
                              **{ROUTING_HEADER: "demo_upstream"}))
        assert echo["upstream"] == "sandbox" and echo["headers"][ROUTING_HEADER] == "sandbox_upstream"

    def test_the_key_type_selector_must_match_the_pair(self, gateway):
        sandbox_pair = ("tiny-sandbox", "s3cret")
        token_success("orders:read", refresh=False).check(
            post_token(gateway, form(grant_type="client_credentials", scope="SANDBOX"), sandbox_pair))
        token_error(400, "invalid_scope").check(
            post_token(gateway, form(grant_type="client_credentials", scope="PRODUCTION"), sandbox_pair))


REGISTER = "/client-registration/v0.17/register"
ADMIN_AUTH = ("admin", "admin")


def admin(gateway, method: str, path: str, body: dict | None = None) -> "requests.Response":
    return requests.request(method, gateway.url(path), json=body, auth=ADMIN_AUTH, timeout=10,
                            headers={"Connection": "close"})


def every_worker_sees(gateway, token: str, want) -> None:
    """The change is effective at once on both workers: fresh connections reach each."""
    on_every_worker(gateway, bearer_req("/orders/1.0.0/items", token), want, per_worker=2)


def tier_is(name: str):
    def check(response) -> None:
        assert forwarded(response)["headers"]["x-tokengate-tier"] == name

    return check


def allowed_or_throttled(response) -> None:
    """The Tiny tier (5 a second) lets these through or throttles them, nothing else."""
    if response.status_code == 429:
        expect(response, 429, {"RateLimit-Policy": f'"Tiny";q={TINY};w=1'}, {"error": "throttled"})
    else:
        tier_is("Tiny")(response)


def test_a_registered_application_subscribes_through_the_admin_endpoint(gateway):
    created = requests.post(gateway.url(REGISTER), auth=ADMIN_AUTH, timeout=10,
                            json={"clientName": "e2e-shop", "grantType": "client_credentials"})
    assert created.status_code == 201, created.text
    client_id, secret = created.json()["clientId"], created.json()["clientSecret"]
    token = client_token(gateway, (client_id, secret), scope_out=FULL_SCOPE)
    subscriptions = f"{REGISTER}/{client_id}/subscriptions"
    every_worker_sees(gateway, token, subscription_error("subscription_required"))

    made = admin(gateway, "POST", subscriptions, {"api": "Orders", "tier": "Gold"})
    assert made.status_code == 201 and made.json()["status"] == "UNBLOCKED", made.text
    every_worker_sees(gateway, token, tier_is("Gold"))
    assert admin(gateway, "GET", subscriptions).json()["list"][0]["tier"] == "Gold"

    blocked = admin(gateway, "PUT", f"{subscriptions}/Orders", {"status": "BLOCKED"})
    assert blocked.status_code == 200 and blocked.json()["status"] == "BLOCKED", blocked.text
    every_worker_sees(gateway, token, subscription_error("subscription_blocked"))

    tier = admin(gateway, "PUT", f"{subscriptions}/Orders", {"tier": "Tiny", "status": "UNBLOCKED"})
    assert tier.json()["tier"] == "Tiny", tier.text
    every_worker_sees(gateway, token, allowed_or_throttled)

    for body, status in [({"api": "Nope"}, 400), ({"api": "Orders"}, 409), ({"api": "Stock", "tier": "Platinum"}, 400)]:
        refused = admin(gateway, "POST", subscriptions, body)
        assert refused.status_code == status and "error_description" in refused.json(), refused.text

    assert admin(gateway, "DELETE", f"{subscriptions}/Orders").status_code == 204
    every_worker_sees(gateway, token, subscription_error("subscription_required"))
    assert admin(gateway, "POST", subscriptions, {"api": "Orders"}).status_code == 201
    every_worker_sees(gateway, token, forwarded)
    # Deleting the application ends its subscriptions with it.
    assert admin(gateway, "DELETE", f"{REGISTER}/{client_id}").status_code == 204
    assert admin(gateway, "GET", subscriptions).status_code == 404
    every_worker_sees(gateway, token, Expect(401))
