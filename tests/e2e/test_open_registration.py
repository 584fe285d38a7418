"""Public clients that register themselves (RFC 7591 §3 without an initial access token, the
way MCP clients do) and run the code flow with PKCE, through the real Envoy with two workers.

The registration is the JSON POST RFC 7591 §3.1 defines, found through the RFC 8414 metadata
(`registration_endpoint`, `token_endpoint_auth_methods_supported` with `none`); authlib's
OAuth2Session then plays the registered public client (token_endpoint_auth_method none,
code_challenge_method S256) through sign-in, token, refresh, a Bearer call and revocation;
`requests` posts the login form as a browser would, without following the redirect (the
callback URL is only read, never fetched). Its redirect URI is `http://localhost:<port>/…`,
the MCP SDKs' examples' kind: registered with one port, used with another (RFC 8252 §7.3).
"""

from __future__ import annotations

import re
import urllib.parse

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

import harness
from client import ADMIN, TIMEOUT_S, basic, forwarded
from test_openid_client import run_node

OPEN = {"scopes": ["orders:read"], "max_per_source": 20, "max_registrations": 50}
PLUGIN_CONFIG = harness.demo_plugin_config()
PLUGIN_CONFIG["registration"].update(
    grant_types=["client_credentials", "authorization_code", "refresh_token"], open=OPEN)
REGISTERED_CALLBACK = "http://localhost:8090/callback"
# The port the client could open this time: another than it registered.
CALLBACK = "http://localhost:47811/callback"
MCP_CLIENT = {"client_name": "MCP client", "redirect_uris": [REGISTERED_CALLBACK],
              "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
              "token_endpoint_auth_method": "none"}
HANDLE = re.compile(r'name="handle" value="([^"]+)"')


def register(gateway, metadata: dict, **headers: str) -> requests.Response:
    return requests.post(gateway.url("/register"), json=metadata, headers=headers, timeout=TIMEOUT_S)


@pytest.fixture
def public_client(gateway, monkeypatch):
    """A client registered openly, found through the metadata, as authlib's public client."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    metadata = requests.get(gateway.url("/.well-known/oauth-authorization-server"), timeout=TIMEOUT_S).json()
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    assert urllib.parse.urlsplit(metadata["registration_endpoint"]).path == "/register"
    reply = register(gateway, MCP_CLIENT)
    assert reply.status_code == 201, reply.text
    info = reply.json()
    assert info["token_endpoint_auth_method"] == "none" and info["scope"] == "orders:read"
    assert "client_secret" not in info and "client_secret_expires_at" not in info
    with OAuth2Session(info["client_id"], redirect_uri=CALLBACK, scope="orders:read",
                       code_challenge_method="S256", token_endpoint_auth_method="none") as session:
        yield session, info


def sign_in(gateway, session: OAuth2Session, verifier: str) -> str:
    """The browser part: the login page, the form, and the redirect back to the callback."""
    url, state = session.create_authorization_url(gateway.url("/authorize"), code_verifier=verifier)
    page = requests.get(url, timeout=TIMEOUT_S, allow_redirects=False)
    assert page.status_code == 200, page.text
    form = {"handle": HANDLE.search(page.text).group(1), "username": ADMIN[0], "password": ADMIN[1]}
    back = requests.post(gateway.url("/authorize"), data=form, timeout=TIMEOUT_S, allow_redirects=False)
    assert back.status_code == 302, back.text
    location = back.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["state"] == state
    return location


def test_a_self_registered_public_client_runs_the_code_flow_with_authlib(gateway, public_client):
    session, info = public_client
    verifier = generate_token(48)
    location = sign_in(gateway, session, verifier)
    token = session.fetch_token(gateway.url("/token"), authorization_response=location, code_verifier=verifier,
                                timeout=TIMEOUT_S)
    assert token["scope"] == "orders:read" and token["refresh_token"]
    echo = forwarded(session.get(gateway.url("/api/orders"), timeout=TIMEOUT_S))
    assert echo["headers"]["x-tokengate-client-id"] == info["client_id"]
    assert echo["headers"]["x-tokengate-username"] == ADMIN[0]
    renewed = session.refresh_token(gateway.url("/token"), timeout=TIMEOUT_S)
    assert renewed["refresh_token"] != token["refresh_token"]
    # authlib revokes as a public client: client_id in the body, no secret (RFC 7009 §2.1).
    revoked = session.revoke_token(gateway.url("/revoke"), renewed["refresh_token"], timeout=TIMEOUT_S)
    assert revoked.status_code == 200, revoked.text
    again = requests.post(gateway.url("/token"), timeout=TIMEOUT_S, data={
        "grant_type": "refresh_token", "refresh_token": renewed["refresh_token"], "client_id": info["client_id"]})
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize("path", ["/token", "/revoke"])
def test_a_public_client_presenting_a_secret_is_invalid_client(gateway, public_client, path):
    _, info = public_client
    body = {"grant_type": "refresh_token", "refresh_token": "x"} if path == "/token" else {"token": "x"}
    in_body = requests.post(gateway.url(path), timeout=TIMEOUT_S,
                            data={**body, "client_id": info["client_id"], "client_secret": "guess"})
    assert (in_body.status_code, in_body.json()["error"]) == (401, "invalid_client"), in_body.text
    with_basic = requests.post(gateway.url(path), data=body, timeout=TIMEOUT_S,
                               headers={"Authorization": basic(info["client_id"], "guess")})
    assert (with_basic.status_code, with_basic.json()["error"]) == (401, "invalid_client"), with_basic.text
    alone = requests.post(gateway.url(path), data={**body, "client_id": info["client_id"]}, timeout=TIMEOUT_S)
    assert alone.status_code == (400 if path == "/token" else 200), alone.text


def test_the_registration_access_token_manages_the_public_client(gateway, public_client):
    _, info = public_client
    bearer = {"Authorization": f"Bearer {info['registration_access_token']}"}
    uri = gateway.url(f"/register/{info['client_id']}")
    read = requests.get(uri, headers=bearer, timeout=TIMEOUT_S)
    assert read.status_code == 200 and read.json()["token_endpoint_auth_method"] == "none", read.text
    to_secret = requests.put(uri, headers=bearer, timeout=TIMEOUT_S, json={
        **MCP_CLIENT, "client_id": info["client_id"], "token_endpoint_auth_method": "client_secret_post"})
    assert (to_secret.status_code, to_secret.json()["error"]) == (400, "invalid_client_metadata")
    assert requests.delete(uri, headers=bearer, timeout=TIMEOUT_S).status_code == 204
    gone = requests.post(gateway.url("/revoke"), data={"token": "x", "client_id": info["client_id"]},
                         timeout=TIMEOUT_S)
    assert gone.status_code == 401


@pytest.mark.parametrize("name, metadata, status, error", [
    ("a confidential client", {**MCP_CLIENT, "token_endpoint_auth_method": "client_secret_basic"},
     400, "invalid_client_metadata"),
    ("client_credentials", {**MCP_CLIENT, "grant_types": ["client_credentials"]}, 400, "invalid_client_metadata"),
    ("a scope beyond the open set", {**MCP_CLIENT, "scope": "orders:write"}, 400, "invalid_client_metadata"),
    ("plain http elsewhere", {**MCP_CLIENT, "redirect_uris": ["http://app.example/callback"]},
     400, "invalid_redirect_uri"),
    ("a private-use scheme", {**MCP_CLIENT, "application_type": "native", "redirect_uris": ["com.example.app:/cb"]},
     400, "invalid_redirect_uri"),
    ("loopback IPv6", {**MCP_CLIENT, "redirect_uris": ["http://[::1]:47811/callback"]}, 201, None),
])
def test_open_registration_policy(gateway, name, metadata, status, error):
    reply = register(gateway, metadata)
    assert reply.status_code == status, f"{name}: {reply.text}"
    if error:
        assert reply.json()["error"] == error, name


def test_the_quota_per_source_and_an_admin_registration_beside_it(envoy_factory):
    """Every request here comes from 127.0.0.1: two open registrations, then 429; an
    administrator's registration is not counted against it."""
    plugin = harness.with_changes(PLUGIN_CONFIG)
    plugin["registration"]["open"] = {**OPEN, "max_per_source": 2}
    gw = envoy_factory.start(plugin)
    assert [register(gw, MCP_CLIENT).status_code for _ in range(2)] == [201, 201]
    third = register(gw, MCP_CLIENT)
    assert (third.status_code, third.json()["error"]) == (429, "access_denied"), third.text
    admin = register(gw, {"grant_types": ["client_credentials"]}, Authorization=basic(*ADMIN))
    assert admin.status_code == 201 and "client_secret" in admin.json(), admin.text


@pytest.fixture(scope="module")
def served(upstream, tmp_path_factory):
    """This module's config behind a listener on a port known in advance, the issuer its
    address (openid-client checks RFC 8414 §3.3's issuer and RFC 9207's `iss` against it)."""
    port = harness.free_port()
    plugin = harness.with_changes(PLUGIN_CONFIG, issuer=f"http://127.0.0.1:{port}")
    config = harness.render_envoy_config(plugin, upstream.port, listener_port=port)
    with harness.Gateway("open_registration_node", tmp_path_factory.mktemp("open_registration_node"), config) as gw:
        yield gw


def test_openid_client_registers_as_a_public_client_and_runs_the_code_flow(served):
    """openid-client (Node, v6) as an MCP client would use it: `dynamicClientRegistration` with
    no initial access token and `client.None()`, then PKCE S256, the code, and a refresh, with
    `client_id` alone at /token (tests/e2e/node/clients.mjs)."""
    issuer = f"http://127.0.0.1:{served.port}"
    outcome = run_node({"action": "register_public_and_sign_in", "issuer": issuer, "user": list(ADMIN),
                        "metadata": MCP_CLIENT, "redirect_uri": CALLBACK, "scope": "orders:read"})
    assert outcome["ok"], outcome
    result = outcome["result"]
    assert result["registered"]["token_endpoint_auth_method"] == "none"
    assert not result["registered"]["has_secret"] and result["registered"]["scope"] == "orders:read"
    assert result["callback"] == CALLBACK
    assert result["tokens"]["scope"] == "orders:read" and result["tokens"]["refresh_token"]
    assert result["renewed"]["rotated"]
    (registration,) = [req for req in outcome["sent"] if req["url"].endswith("/register")]
    assert registration["authorization_scheme"] is None
    for sent in [req for req in outcome["sent"] if req["url"].endswith("/token")]:
        assert sent["authorization_scheme"] is None and "client_secret" not in sent["form_parameters"]
        assert "client_id" in sent["form_parameters"]
    bearer = {"Authorization": f"Bearer {result['renewed']['access_token']}"}
    echo = forwarded(requests.get(served.url("/api/orders"), headers=bearer, timeout=TIMEOUT_S))
    assert echo["headers"]["x-tokengate-client-id"] == result["registered"]["client_id"]
