"""openid-client (Node, v6) against the gateway, with its default settings.

tests/e2e/node/clients.mjs runs the library (installed by `npm ci` from
tests/e2e/node/package-lock.json) and reports what it got and what it sent.
openid-client discovers the gateway from its RFC 8414 metadata (the
`algorithm: "oauth2"` discovery option; its default is OpenID Connect's
openid-configuration) and, for a confidential client given a string secret,
authenticates with client_secret_post. Its `dynamicClientRegistration`
(RFC 7591) sends an initial access token as Bearer; this gateway wants an
administrator's HTTP Basic instead, which the script adds with openid-client's
documented `customFetch` option. openid-client v6 refuses plain http
unless the documented `allowInsecureRequests` execute option is passed: the
demo listens on plain http on loopback, so the script passes it.
"""

import json
import os
import shutil
import subprocess

import pytest

import harness
from client import ADMIN, DEMO_APP, FULL_SCOPE, scope_set

NODE_DIR = harness.REPO / "tests" / "e2e" / "node"
SCRIPT = NODE_DIR / "clients.mjs"


@pytest.fixture(scope="module")
def served(upstream, tmp_path_factory):
    """The demo config behind a listener on a port known in advance, with the issuer set to
    the address openid-client discovers (RFC 8414 §3.3: they must match)."""
    port = harness.free_port()
    plugin = harness.with_changes(harness.demo_plugin_config(), issuer=f"http://127.0.0.1:{port}")
    config = harness.render_envoy_config(plugin, upstream.port, listener_port=port)
    with harness.Gateway("openid_client", tmp_path_factory.mktemp("openid_client"), config) as gw:
        yield gw


def run_node(command: dict, script: str = SCRIPT.name, env: dict | None = None) -> dict:
    """Runs tests/e2e/node/`script` with `command` as its JSON argument (and `env` added to the
    environment); returns what it printed."""
    node = shutil.which("node")
    assert node, "node is not installed"
    assert (NODE_DIR / "node_modules" / "openid-client").is_dir(), (
        "openid-client is not installed: cd tests/e2e/node && npm ci (make test-e2e does it)")
    done = subprocess.run([node, str(NODE_DIR / script), json.dumps(command)], cwd=NODE_DIR, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def issuer(gw) -> str:
    return f"http://127.0.0.1:{gw.port}"


def token_requests(outcome: dict) -> list[dict]:
    return [req for req in outcome["sent"] if req["url"].endswith("/token")]


def test_client_credentials_with_discovery(served):
    outcome = run_node({"action": "client_credentials", "issuer": issuer(served), "client_id": DEMO_APP[0],
                        "client_secret": DEMO_APP[1]})
    assert outcome["ok"], outcome
    result = outcome["result"]
    # "none" too, for the demo's public client (RFC 7591 §2).
    assert result["metadata_auth_methods"] == ["client_secret_basic", "client_secret_post", "none"]
    tokens = result["tokens"]
    assert tokens["token_type"].lower() == "bearer" and tokens["refresh_token"] is None
    assert scope_set(FULL_SCOPE)(tokens["scope"])
    # Its default for a confidential client: client_secret_post, no Authorization header.
    (sent,) = token_requests(outcome)
    assert sent["authorization_scheme"] is None
    assert {"grant_type", "client_id", "client_secret"} <= set(sent["form_parameters"])
    assert outcome["sent"][0]["url"].endswith("/.well-known/oauth-authorization-server")


def test_a_wrong_secret_is_invalid_client(served):
    outcome = run_node({"action": "client_credentials", "issuer": issuer(served), "client_id": DEMO_APP[0],
                        "client_secret": "wrong"})
    assert not outcome["ok"]
    # No challenge on a client_secret_post failure: openid-client reports the body's error.
    assert outcome["error"]["error"] == "invalid_client" and outcome["error"]["status"] == 401, outcome
    assert outcome["error"]["challenges"] is None, outcome


def test_dynamic_client_registration_then_client_credentials(served):
    """The metadata names the RFC 7591 endpoint, which takes openid-client's RFC 7591 metadata
    (WSO2's v0.17 endpoint would answer 400 `clientName is missing`)."""
    outcome = run_node({"action": "register", "issuer": issuer(served), "admin": list(ADMIN),
                        "metadata": {"client_name": "openid-client-app", "grant_types": ["client_credentials"],
                                     "scope": "orders:read"}})
    assert outcome["ok"], outcome
    registered = outcome["result"]["registered"]
    assert registered["client_name"] == "openid-client-app" and registered["client_secret"] == "(a string)"
    assert registered["grant_types"] == ["client_credentials"] and registered["scope"] == "orders:read"
    assert registered["registration_client_uri"] == f"{issuer(served)}/register/{registered['client_id']}"
    (registration,) = [req for req in outcome["sent"] if req["url"].endswith("/register")]
    assert registration["authorization_scheme"] == "Basic"
    tokens = outcome["result"]["tokens"]
    assert tokens["scope"] == "orders:read" and tokens["token_type"].lower() == "bearer"
    (sent,) = token_requests(outcome)
    assert sent["authorization_scheme"] is None and "client_secret" in sent["form_parameters"]


def test_dynamic_client_registration_refused_without_an_administrator(served):
    outcome = run_node({"action": "register", "issuer": issuer(served), "admin": ["admin", "wrong"],
                        "metadata": {"client_name": "nope"}})
    assert not outcome["ok"]
    # A 401 with a Basic challenge (the script used Basic) is openid-client's
    # WWWAuthenticateChallengeError rather than an error from the body.
    error = outcome["error"]
    assert (error["status"], error["code"], error["challenges"]) == (
        401, "OAUTH_WWW_AUTHENTICATE_CHALLENGE", ["basic"]), outcome
