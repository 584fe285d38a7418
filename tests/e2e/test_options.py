"""Non-default plugin options: realm, token endpoint, forwarding, validities, body limit.

Every other module runs with the demo defaults; this one changes each
optional top-level field at once and checks that each shows up where the
contract says.
"""

import time

import harness
from client import (
    CC, EXPIRY_WAIT_S, Expect, bearer_challenge, call, client_token, form, forwarded, invalid_client, invalid_token,
    padded_cc_body, password_grant, post_token, send, token_error, token_req, token_success,
)

REALM = "acme"
TOKEN_PATH = "/oauth2/token"
MAX_BODY = 512

PLUGIN_CONFIG = harness.with_changes(
    harness.demo_plugin_config(),
    realm=REALM,
    token_endpoint=TOKEN_PATH,
    forward_authorization=True,
    forward_method_overrides=True,
    refresh_token_validity_secs=1,
    max_body_bytes=MAX_BODY,
)

CC_OK = token_success("orders:read orders:write", refresh=False)


def test_realm_in_challenges(gateway):
    invalid_client(REALM).check(post_token(gateway, CC, auth=None))
    Expect(401, {"WWW-Authenticate": bearer_challenge(REALM)}).check(call(gateway, "/api/orders"))
    invalid_token(REALM).check(call(gateway, "/api/orders", "A" * 43))


def test_token_endpoint_moves(gateway):
    assert gateway.token_path == TOKEN_PATH
    CC_OK.check(post_token(gateway, CC))
    # /token is now an ordinary path, and no resource is configured there.
    Expect(404, body={"error": "not_found"}).check(send(gateway, token_req(CC, path="/token")))


def test_authorization_forwarded(gateway):
    token = client_token(gateway)
    echo = forwarded(call(gateway, "/api/orders", token))
    assert echo["authorization_forwarded"] is True
    assert echo["headers"]["x-tokengate-client-id"] == "demo-app"


def test_method_overrides_forwarded(gateway):
    token = client_token(gateway)
    echo = forwarded(call(gateway, "/api/orders", token, **{"X-HTTP-Method-Override": "DELETE"}))
    assert "x-http-method-override" in echo["header_names"], echo


def test_method_override_parameter_forwarded(gateway):
    """With forward_method_overrides the operator vouches for the upstream: `_method` passes."""
    token = client_token(gateway)
    echo = forwarded(call(gateway, "/api/orders?_method=DELETE", token, method="POST"))
    assert (echo["method"], echo["path"]) == ("POST", "/api/orders?_method=DELETE"), echo


def test_body_limit(gateway):
    CC_OK.check(post_token(gateway, padded_cc_body(MAX_BODY)))
    token_error(413, "invalid_request").check(post_token(gateway, padded_cc_body(MAX_BODY + 1)))


def test_refresh_token_expires(gateway):
    grant = password_grant(gateway)
    time.sleep(EXPIRY_WAIT_S)
    token_error(400, "invalid_grant").check(
        post_token(gateway, form(grant_type="refresh_token", refresh_token=grant["refresh_token"])))
