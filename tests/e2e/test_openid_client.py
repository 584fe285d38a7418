"""openid-client (Node, v6) against the gateway, with its default settings.

tests/e2e/node/clients.mjs runs the library (installed by `npm ci` from
tests/e2e/node/package-lock.json) and reports what it got and what it sent.
openid-client discovers the gateway from its RFC 8414 metadata (the
`algorithm: "oauth2"` discovery option; its default is OpenID Connect's
openid-configuration) and, for a confidential client given a string secret,
authenticates with client_secret_post. openid-client v6 refuses plain http
unless the documented `allowInsecureRequests` execute option is passed: the
demo listens on plain http on loopback, so the script passes it.
"""

import json
import shutil
import subprocess

import pytest

import harness
from client import DEMO_APP, FULL_SCOPE, scope_set

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


def run_node(command: dict) -> dict:
    node = shutil.which("node")
    assert node, "node is not installed"
    assert (NODE_DIR / "node_modules" / "openid-client").is_dir(), (
        "openid-client is not installed: cd tests/e2e/node && npm ci (make test-e2e does it)")
    done = subprocess.run([node, str(SCRIPT), json.dumps(command)], cwd=NODE_DIR, capture_output=True,
                          text=True, timeout=60)
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
    assert result["metadata_auth_methods"] == ["client_secret_basic", "client_secret_post"]
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
    assert outcome["error"]["error"] == "invalid_client" and outcome["error"]["status"] == 401, outcome
