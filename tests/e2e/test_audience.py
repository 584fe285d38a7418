"""Resources and audience (docs/resources-and-audience.md), against the real Envoy.

Contract: each API has a resource identifier (by default the issuer's origin and its
context); `resource` at /token (RFC 8707) binds a token to the APIs it names, and such a
token is refused with 401 invalid_token on any other API; a refresh may narrow the audience
but not widen it (invalid_target); introspection reports `aud`; every challenge on an API
carries resource_metadata (RFC 9728 §5.1), whose URL serves the API's metadata document.
"""

from urllib.parse import urlencode, urlsplit

import harness
from client import ANY, Expect, Req, call, expect, forwarded, parse_challenge, post_token, send, token_error, token_req

ISSUER = harness.demo_plugin_config()["issuer"]
ORDERS = f"{ISSUER}/orders"
MCP = "https://mcp.example/mcp"
PLUGIN_CONFIG = harness.with_changes(
    harness.demo_plugin_config(),
    apis=[
        {"name": "Orders", "version": "1.0.0", "context": "/orders", "resources": [
            {"methods": ["GET"], "path": "/items", "scopes": ["orders:read"]}]},
        {"name": "Mcp", "version": "1", "context": "/mcp", "resource": MCP, "resources": [
            {"methods": ["GET"], "path": "/", "scopes": ["orders:write"]}]},
    ],
)
for app in PLUGIN_CONFIG["applications"]:
    if app["consumer_key"] == "demo-app":
        app["subscriptions"] = [{"api": "Orders"}, {"api": "Mcp"}]
RESOURCE_SERVER = ("orders-service", "orders-service-secret")
PASSWORD_GRANT = [("grant_type", "password"), ("username", "admin"), ("password", "admin")]
CLIENT_CREDENTIALS = [("grant_type", "client_credentials")]


def token_for(gw, *resources: str, grant: list = CLIENT_CREDENTIALS) -> dict:
    """A token response for `grant` with each of `resources` as a `resource` parameter."""
    body = urlencode(grant + [("resource", uri) for uri in resources])
    return expect(post_token(gw, body), 200, body={"access_token": ANY})


def introspected(gw, token: str) -> dict:
    reply = send(gw, token_req(urlencode({"token": token}), RESOURCE_SERVER, path="/introspect"))
    return expect(reply, 200, body={"active": True})


def audience_refusal(value: str) -> bool:
    _, params = parse_challenge(value)
    params = dict(params)
    return (params.get("error") == "invalid_token"
            and params.get("error_description") == "the access token's audience does not include this resource")


class TestAudience:
    def test_a_token_for_one_api_is_refused_on_another(self, gateway):
        orders_only = token_for(gateway, ORDERS)["access_token"]
        forwarded(call(gateway, "/orders/items", orders_only))
        Expect(401, {"WWW-Authenticate": audience_refusal}).check(call(gateway, "/mcp", orders_only))
        # A token issued without `resource` keeps today's behaviour on both.
        unbound = token_for(gateway)["access_token"]
        forwarded(call(gateway, "/mcp", unbound))
        forwarded(call(gateway, "/orders/items", unbound))

    def test_resource_values_that_are_malformed_or_unknown_are_invalid_target(self, gateway):
        for uri in (f"{ORDERS}#x", "/orders", "https://elsewhere.example/api"):
            body = urlencode(CLIENT_CREDENTIALS + [("resource", uri)])
            token_error(400, "invalid_target").check(post_token(gateway, body))

    def test_introspection_reports_the_audience_and_a_refresh_narrows_it_never_widens_it(self, gateway):
        first = token_for(gateway, ORDERS, MCP, grant=PASSWORD_GRANT)
        assert introspected(gateway, first["access_token"])["aud"] == sorted([ORDERS, MCP])
        narrowing = [("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"]), ("resource", MCP)]
        narrowed = expect(post_token(gateway, urlencode(narrowing)), 200, body={"refresh_token": ANY})
        assert introspected(gateway, narrowed["access_token"])["aud"] == MCP
        widening = [("grant_type", "refresh_token"), ("refresh_token", narrowed["refresh_token"]), ("resource", ORDERS)]
        token_error(400, "invalid_target").check(post_token(gateway, urlencode(widening)))

    def test_the_challenge_points_to_metadata_that_names_the_api(self, gateway):
        no_token = call(gateway, "/mcp")
        expect(no_token, 401)
        _, params = parse_challenge(no_token.headers["WWW-Authenticate"])
        params = dict(params)
        assert params["scope"] == "orders:write"
        url = urlsplit(params["resource_metadata"])
        assert (url.scheme, url.netloc, url.path) == ("https", "mcp.example", "/.well-known/oauth-protected-resource/mcp")
        # The identifier names another host; here this Envoy answers for it.
        expect(send(gateway, Req("GET", url.path, {"Host": url.netloc})), 200, exact=True, body={
            "resource": MCP,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["orders:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Mcp 1",
        })
        expect(call(gateway, "/.well-known/oauth-protected-resource/orders"), 200, body={"resource": ORDERS})
        expect(call(gateway, "/.well-known/oauth-protected-resource/nothing-here"), 404)
