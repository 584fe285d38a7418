"""An MCP server protected by the gateway (docs/mcp.md), driven by the official MCP SDKs.

The demo MCP server (envoy/mcp_server.py, the Python `mcp` package's server, which knows
nothing of OAuth) runs behind the real Envoy with envoy/mcp.json, the plugin configuration
`make run CONFIG=envoy/mcp.json` uses, its issuer moved to this test's listener. The clients
are the SDKs' own OAuth clients, which nobody here wrote: the TypeScript SDK's
StreamableHTTPClientTransport with an OAuthClientProvider (tests/e2e/node/mcp_client.mjs) and
the Python SDK's OAuthClientProvider. Each starts from nothing but the server's URL: the 401's
`resource_metadata` (RFC 9728 §5.1), the protected resource metadata, the authorization
server's metadata (RFC 8414), open registration as a public client (RFC 7591), the code flow
with PKCE and `resource` (RFC 8707), then `initialize`, `tools/list` and tool calls through
Envoy. Only the user is played here: the login form is posted as a browser would.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.parse
from pathlib import Path

import anyio
import httpx2
import pytest
import requests
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

import harness
from client import ADMIN, TIMEOUT_S, parse_challenge
from test_openid_client import NODE_DIR, run_node

MCP_CONFIG = json.loads((harness.REPO / "envoy" / "mcp.json").read_text())
SCOPE = "mcp:tools"
# What the SDKs' examples register: http://localhost with a port of the client's choosing.
CALLBACK = "http://localhost:47811/callback"
HANDLE = re.compile(r'name="handle" value="([^"]+)"')


@pytest.fixture(scope="module")
def mcp_server():
    harness.require_artifacts()
    server = harness.McpServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(upstream, mcp_server, tmp_path_factory):
    """envoy/mcp.json behind a listener on a port known in advance, the issuer its address: the
    API's resource identifier derives from the issuer, and the SDKs check that the metadata's
    `resource` is the URL they were given."""
    port = harness.free_port()
    # A second API, so that a token bound to it can be shown to /mcp.
    other = {"name": "Other", "version": "1", "context": "/other",
             "resources": [{"methods": ["GET"], "path": "/", "scopes": [SCOPE]}]}
    plugin = harness.with_changes(MCP_CONFIG, issuer=f"http://127.0.0.1:{port}", apis=MCP_CONFIG["apis"] + [other])
    config = harness.render_envoy_config(plugin, upstream.port, listener_port=port, mcp_port=mcp_server.port)
    with harness.Gateway("mcp", tmp_path_factory.mktemp("mcp"), config) as gw:
        yield gw


@pytest.fixture(scope="module")
def served_over_tls(upstream, mcp_server, tmp_path_factory):
    """The demo's own shape: envoy/mcp.json as it is but for the port, an https issuer on the
    TLS listener, its self-signed certificate the one the clients trust (docs/mcp.md). Yields
    the MCP server's URL and the certificate."""
    workdir = tmp_path_factory.mktemp("mcp_tls")
    cert, key = harness.make_self_signed_certificate(workdir / "tls")
    port = harness.free_port()
    plugin = harness.with_changes(MCP_CONFIG, issuer=f"https://127.0.0.1:{port}")
    config = harness.render_envoy_config(plugin, upstream.port, tls=(cert, key), mcp_port=mcp_server.port)
    harness._listener(config, harness.TLS_LISTENER)["address"]["socket_address"]["port_value"] = port
    with harness.Gateway("mcp_tls", workdir / "envoy", config):
        yield f"https://127.0.0.1:{port}/mcp", cert


def resource_of(gw) -> str:
    return gw.url("/mcp")


def sign_in(authorization_url: str, cafile: Path | None = None) -> str:
    """The user's part: the login page, the form, and the redirect to the client's callback,
    read and not followed. Returns the callback URL."""
    verify = str(cafile) if cafile else True
    page = requests.get(authorization_url, timeout=TIMEOUT_S, allow_redirects=False, verify=verify)
    assert page.status_code == 200, page.text
    form = {"handle": HANDLE.search(page.text).group(1), "username": ADMIN[0], "password": ADMIN[1]}
    back = requests.post(urllib.parse.urljoin(authorization_url, "/authorize"), data=form, timeout=TIMEOUT_S,
                         allow_redirects=False, verify=verify)
    assert back.status_code == 302, back.text
    return back.headers["Location"]


def test_no_token_gets_the_challenge_that_leads_to_the_metadata(served):
    """RFC 9728 §5.1: what every MCP client starts from."""
    reply = requests.post(served.url("/mcp"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                          timeout=TIMEOUT_S)
    assert reply.status_code == 401
    scheme, params = parse_challenge(reply.headers["WWW-Authenticate"])
    params = dict(params)
    assert scheme.lower() == "bearer"
    assert params["resource_metadata"] == served.url("/.well-known/oauth-protected-resource/mcp")
    assert params["scope"] == SCOPE
    metadata = requests.get(params["resource_metadata"], timeout=TIMEOUT_S).json()
    assert metadata["resource"] == resource_of(served)
    assert metadata["authorization_servers"] == [served.url("")]
    assert metadata["scopes_supported"] == [SCOPE]


def test_the_typescript_sdk_reaches_the_demo_over_tls(served_over_tls):
    """As docs/mcp.md tells a user to run a Node client against `make run`'s TLS listener."""
    server, cert = served_over_tls
    outcome = run_node({"server": server, "user": list(ADMIN), "redirect_uri": CALLBACK}, script="mcp_client.mjs",
                       env={"NODE_EXTRA_CA_CERTS": str(cert)})
    assert outcome["ok"], outcome
    assert outcome["result"]["echo"] == ["through the gateway"]
    assert outcome["result"]["authorization"]["resource"] == server


def test_the_python_sdk_reaches_the_demo_over_tls(served_over_tls):
    server, cert = served_over_tls
    seen = anyio.run(python_sdk_session, server, cert)
    assert seen["echo"] == ["through the gateway"]
    assert seen["authorization"]["resource"] == server


def test_the_typescript_sdk_registers_signs_in_and_calls_tools(served):
    assert (NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir(), (
        "@modelcontextprotocol/sdk is not installed: cd tests/e2e/node && npm ci (make test-e2e does it)")
    outcome = run_node({"server": resource_of(served), "user": list(ADMIN),
                        "redirect_uri": CALLBACK}, script="mcp_client.mjs")
    assert outcome["ok"], outcome
    result = outcome["result"]
    assert result["first_attempt"] == "unauthorized"
    assert result["registered"]["client_id"] and not result["registered"]["has_secret"]
    assert result["registered"]["token_endpoint_auth_method"] == "none"
    authorization = result["authorization"]
    assert authorization["resource"] == resource_of(served)
    assert authorization["code_challenge_method"] == "S256" and authorization["scope"] == SCOPE
    assert result["callback_state_matches"]
    assert result["tokens"] == {"has_access_token": True, "scope": SCOPE, "has_refresh_token": True}
    assert result["server"] == "tokengate demo MCP server"
    assert result["tools"] == ["echo", "time"]
    assert result["echo"] == ["through the gateway"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", result["time"][0]), result["time"]
    paths = [(urllib.parse.urlsplit(req["url"]).path, req["status"]) for req in outcome["sent"]]
    assert paths[0] == ("/mcp", 401)
    assert ("/.well-known/oauth-protected-resource/mcp", 200) in paths
    assert ("/.well-known/oauth-authorization-server", 200) in paths
    assert ("/register", 201) in paths
    (token_request,) = [req for req in outcome["sent"] if req["url"].endswith("/token")]
    assert token_request["status"] == 200 and token_request["resource"] == [resource_of(served)]
    assert {"client_id", "code", "code_verifier", "redirect_uri"} <= set(token_request["form_parameters"])
    assert "client_secret" not in token_request["form_parameters"]
    mcp_calls = [req for req in outcome["sent"] if req["url"] == resource_of(served) and req["bearer"]]
    assert mcp_calls and all(req["status"] in (200, 202) for req in mcp_calls), mcp_calls


class MemoryStorage:
    """The Python SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def python_sdk_session(server_url: str, cafile: Path | None = None) -> dict:
    """The Python SDK's OAuthClientProvider on its streamable HTTP client: the redirect
    handler plays the user, the callback handler hands back the code and state. With `cafile`,
    that certificate is the one trusted (the TLS listener's)."""
    storage = MemoryStorage()
    seen: dict = {"sent": []}

    async def redirect_handler(authorization_url: str) -> None:
        seen["authorization"] = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorization_url).query))
        seen["callback"] = await anyio.to_thread.run_sync(sign_in, authorization_url, cafile)

    async def callback_handler() -> AuthorizationCodeResult:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(seen["callback"]).query))
        # RFC 9207: the gateway names itself in the redirect, and the SDK checks it.
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def record(request: httpx2.Request) -> None:
        entry = {"method": request.method, "url": str(request.url),
                 "bearer": request.headers.get("authorization", "").startswith("Bearer ")}
        if request.url.path == "/token":
            entry["form"] = urllib.parse.parse_qs(request.content.decode())
        seen["sent"].append(entry)

    provider = OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name="tokengate e2e (MCP Python SDK)", redirect_uris=[CALLBACK],
            grant_types=["authorization_code", "refresh_token"], response_types=["code"],
            token_endpoint_auth_method="none"),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    verify = ssl.create_default_context(cafile=str(cafile)) if cafile else True
    async with httpx2.AsyncClient(auth=provider, timeout=TIMEOUT_S, verify=verify,
                                  event_hooks={"request": [record]}) as http:
        async with streamable_http_client(server_url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                initialized = await session.initialize()
                tools = await session.list_tools()
                echoed = await session.call_tool("echo", {"text": "through the gateway"})
    seen["server"] = initialized.server_info.name
    seen["tools"] = sorted(tool.name for tool in tools.tools)
    seen["echo"] = [part.text for part in echoed.content]
    seen["registered"] = storage.client
    seen["tokens"] = storage.tokens
    return seen


def test_the_python_sdk_registers_signs_in_and_calls_tools(served):
    seen = anyio.run(python_sdk_session, resource_of(served))
    assert seen["server"] == "tokengate demo MCP server"
    assert seen["tools"] == ["echo", "time"]
    assert seen["echo"] == ["through the gateway"]
    registered = seen["registered"]
    assert registered.client_id and registered.client_secret is None
    assert registered.token_endpoint_auth_method == "none"
    assert seen["authorization"]["resource"] == resource_of(served)
    assert seen["authorization"]["code_challenge_method"] == "S256"
    assert seen["tokens"].scope == SCOPE and seen["tokens"].refresh_token
    (token_request,) = [req for req in seen["sent"] if req["url"].endswith("/token")]
    assert token_request["form"]["resource"] == [resource_of(served)]
    assert "code_verifier" in token_request["form"] and "client_secret" not in token_request["form"]
    assert any(req["bearer"] and req["url"] == resource_of(served) for req in seen["sent"])


def test_a_token_for_another_resource_is_refused_on_mcp(served):
    """A token bound to another API (RFC 8707) is not taken at /mcp, even from the same user
    and client; nor one issued without `resource` (require_audience)."""
    plugin = json.loads(harness.wasm_filter(served.config)["configuration"]["value"])
    assert plugin["apis"][0]["require_audience"] is True
    registered = requests.post(served.url("/register"), json={
        "client_name": "other", "redirect_uris": [CALLBACK], "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "none"}, timeout=TIMEOUT_S).json()
    for resource, refusal in [
        (served.url("/other"), "the access token's audience does not include this resource"),
        (None, "the access token was issued without a resource; this API requires its own"),
    ]:
        token = code_flow_token(served, registered["client_id"], resource)
        reply = requests.post(served.url("/mcp"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                              headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S)
        assert reply.status_code == 401
        _, params = parse_challenge(reply.headers["WWW-Authenticate"])
        params = dict(params)
        assert (params["error"], params["error_description"]) == ("invalid_token", refusal)
        assert params["resource_metadata"] == served.url("/.well-known/oauth-protected-resource/mcp")


VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def code_flow_token(gw, client_id: str, resource: str | None) -> str:
    """An access token through the code flow (RFC 7636 Appendix B's verifier), bound to
    `resource` when there is one."""
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK, "scope": SCOPE,
             "state": "s", "code_challenge": CHALLENGE, "code_challenge_method": "S256"}
    if resource:
        query["resource"] = resource
    location = sign_in(gw.url("/authorize?" + urllib.parse.urlencode(query)))
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    form = {"grant_type": "authorization_code", "client_id": client_id, "code": code, "redirect_uri": CALLBACK,
            "code_verifier": VERIFIER, **({"resource": resource} if resource else {})}
    reply = requests.post(gw.url("/token"), data=form, timeout=TIMEOUT_S)
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]

