"""Authorization server metadata (RFC 8414) at /.well-known/oauth-authorization-server.

RFC 8414 §3: GET answers JSON with the configured issuer, which must be the
URL the document was fetched from minus the well-known suffix (§3.3, so the
gateway here listens on a port chosen before Envoy starts and the issuer names
it), the endpoints, grant_types_supported, scopes_supported and
token_endpoint_auth_methods_supported from the configuration, and the
required response_types_supported (["code"]: the demo's public client signs
in at the authorization endpoint). Other methods get 405. A client that follows the published URLs
reaches working endpoints.
"""

import re

import pytest
import requests

import harness
from client import (
    ANY, DEMO_APP, FORM, FULL_SCOPE, TIMEOUT_S, UNRESERVED, Expect, Req, basic, expect, form, is_token, send,
    token_success,
)

WELL_KNOWN = "/.well-known/oauth-authorization-server"
JSON = {"Content-Type": re.compile(r"application/json(;.*)?", re.I)}
# client_secret_post (RFC 6749 §2.3.1) is accepted at /token, /revoke and /introspect.
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
# The demo's public client (demo-spa) authenticates with none at /token and /revoke.
PUBLIC_AUTH_METHODS = AUTH_METHODS + ["none"]


@pytest.fixture(scope="module")
def served(upstream, tmp_path_factory):
    """The demo config behind a listener on a port known in advance, with the
    issuer set to the address the tests fetch from."""
    port = harness.free_port()
    plugin = harness.with_changes(harness.demo_plugin_config(), issuer=f"http://127.0.0.1:{port}")
    config = harness.render_envoy_config(plugin, upstream.port, listener_port=port)
    with harness.Gateway("metadata", tmp_path_factory.mktemp("metadata"), config) as gw:
        yield gw


def metadata(gw) -> dict:
    return expect(send(gw, Req("GET", WELL_KNOWN)), 200, JSON, {})


def test_metadata_document(served):
    doc = metadata(served)
    issuer = f"http://127.0.0.1:{served.port}"
    assert doc == {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        # RFC 7591's endpoint (the v0.17 one still works, unadvertised).
        "registration_endpoint": f"{issuer}/register",
        "grant_types_supported": ["client_credentials", "password", "refresh_token", "authorization_code"],
        "scopes_supported": ["orders:read", "orders:write"],
        "token_endpoint_auth_methods_supported": PUBLIC_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": PUBLIC_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        # The authorization endpoint (RFC 6749 §3.1, RFC 7636 §6.2, RFC 9207 §3).
        "authorization_endpoint": f"{issuer}/authorize",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        # The demo's signing keys' JWK Set (RFC 8414 §2).
        "jwks_uri": f"{issuer}/oauth2/jwks",
        # OpenID Connect Discovery §3: on with the issuer, the demo's key and the code flow.
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "claims_supported": ["iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "name",
                             "given_name", "family_name", "preferred_username", "email", "email_verified"],
    }
    # §3.3: the issuer plus the well-known suffix is where the document came from.
    assert served.url(WELL_KNOWN) == doc["issuer"] + WELL_KNOWN


def test_published_endpoints_work(served):
    """A client that knows only the issuer: fetch the metadata, then get,
    introspect and revoke a token at the URLs it names."""
    doc = metadata(served)
    headers = {"Authorization": basic(*DEMO_APP), "Content-Type": FORM}

    def post(url: str, body: str) -> requests.Response:
        return requests.post(url, data=body, headers=headers, timeout=TIMEOUT_S)

    token = token_success(FULL_SCOPE, refresh=False).check(post(doc["token_endpoint"], "grant_type=client_credentials"))
    assert is_token(token["access_token"])
    expect(post(doc["introspection_endpoint"], form(token=token["access_token"])), 200, body={"active": True})
    expect(post(doc["revocation_endpoint"], form(token=token["access_token"])), 200)
    expect(post(doc["introspection_endpoint"], form(token=token["access_token"])), 200, body={"active": False},
           exact=True)
    # The advertised endpoint takes RFC 7591 client metadata, as RFC 8414 clients expect.
    registered = requests.post(doc["registration_endpoint"], json={"client_name": "metadata-client",
                                                                    "grant_types": ["client_credentials"]},
                               headers={"Authorization": basic("admin", "admin")}, timeout=TIMEOUT_S)
    expect(registered, 201, body={"client_id": UNRESERVED, "client_secret": UNRESERVED})


NOT_ALLOWED = Expect(405, {"Allow": "GET, HEAD", **JSON}, {"error": "method_not_allowed"})
ROWS = {
    "GET with a query string": (Req("GET", f"{WELL_KNOWN}?x=1"), Expect(200, JSON, {"issuer": ANY})),
    "GET with credentials (ignored)": (Req("GET", WELL_KNOWN, {"Authorization": "Basic !!"}),
                                       Expect(200, JSON, {"issuer": ANY})),
    "POST": (Req("POST", WELL_KNOWN, {"Content-Type": FORM}, "x=1"), NOT_ALLOWED),
    "PUT": (Req("PUT", WELL_KNOWN, {"Content-Type": "application/json"}, "{}"), NOT_ALLOWED),
    "DELETE": (Req("DELETE", WELL_KNOWN), NOT_ALLOWED),
    "a path below it": (Req("GET", f"{WELL_KNOWN}/tenant"), Expect(404)),
}


@pytest.mark.parametrize("row", ROWS)
def test_metadata_requests(served, row):
    req, want = ROWS[row]
    want.check(send(served, req))


def test_head(served):
    resp = send(served, Req("HEAD", WELL_KNOWN))
    expect(resp, 200, JSON)
    assert resp.content == b""


def test_metadata_follows_the_configuration(envoy_factory):
    """Other endpoint paths, an https issuer, no registration, and fewer grants
    and scopes: the document says so, and the token endpoint is where it says."""
    plugin = harness.demo_plugin_config()
    del plugin["registration"]
    plugin.update(issuer="https://auth.example.com/tenant", token_endpoint="/oauth2/token",
                  revocation_endpoint="/oauth2/revoke", introspection_endpoint="/oauth2/introspect")
    plugin["applications"] = [
        {"consumer_key": "demo-app", "consumer_secret": "demo-secret", "scopes": ["orders:read"]},
    ]
    plugin["resources"] = [r for r in plugin["resources"] if "orders:write" not in r.get("scopes", [])]
    gw = envoy_factory.start(plugin)
    issuer = "https://auth.example.com/tenant"
    assert metadata(gw) == {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth2/token",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["orders:read"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "response_types_supported": [],
        # The demo's signing keys, at the JWKS's default path under the issuer.
        "jwks_uri": f"{issuer}/oauth2/jwks",
    }
    token_success("orders:read", refresh=False).check(
        send(gw, Req("POST", "/oauth2/token", {"Authorization": basic(*DEMO_APP), "Content-Type": FORM},
                     "grant_type=client_credentials")))


def test_no_issuer_no_metadata(envoy_factory):
    plugin = harness.demo_plugin_config()
    del plugin["issuer"]
    gw = envoy_factory.start(plugin)
    Expect(404, JSON, {"error": "not_found"}).check(send(gw, Req("GET", WELL_KNOWN)))


def test_demo_issuer_is_the_demo_listener():
    """envoy/envoy.yaml publishes an issuer that is where `make run` listens over TLS (RFC 8414:
    an issuer is an https URL; the plain listener names the same issuer)."""
    cfg = harness.load_demo_envoy_config()
    address = harness._listener(cfg, harness.TLS_LISTENER)["address"]["socket_address"]
    assert harness.demo_plugin_config()["issuer"] == f"https://{address['address']}:{address['port_value']}"
