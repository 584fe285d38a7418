"""What a forwarded Bearer request's headers become when the filter writes as few as it can
(each write is a host call): a header about to be set is not removed first (the write replaces every copy),
and an empty identity header is not written, yet nothing a client sent under an identity
header's name ever reaches the upstream.
"""

import http.client
import json

import harness
from client import CC, client_token, post_token

PLUGIN_CONFIG = harness.demo_plugin_config()
PLUGIN_CONFIG["applications"].append(
    {"consumer_key": "no-scope-app", "consumer_secret": "no-scope-secret", "grant_types": ["client_credentials"],
     "scopes": []})
PLUGIN_CONFIG["resources"].append({"methods": ["GET"], "path": "/api/any-token", "scopes": []})


def upstream_headers(gateway, path: str, headers: list[tuple[str, str]]) -> dict:
    """The headers the demo upstream saw, sending `headers` as given (repeats included)."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.putrequest("GET", path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body
        return json.loads(body)["headers"]
    finally:
        connection.close()


def test_every_copy_of_a_spoofed_identity_header_is_replaced(gateway):
    token = client_token(gateway)
    seen = upstream_headers(gateway, "/api/orders", [
        ("Authorization", f"Bearer {token}"),
        ("X-TokenGate-Client-Id", "evil"), ("x-tokengate-client-id", "evil-too"),
        ("x-tokengate-scope", "admin"), ("X-Tokengate-Scope", "admin2"),
        ("x-tokengate-username", "root"),
    ])
    assert seen["x-tokengate-client-id"] == "demo-app", seen
    assert set(seen["x-tokengate-scope"].split()) == {"orders:read", "orders:write"}, seen
    assert "x-tokengate-username" not in seen, seen
    assert "authorization" not in seen, seen


def test_a_token_without_scopes_sends_no_scope_header_and_strips_the_clients(gateway):
    issued = post_token(gateway, CC, ("no-scope-app", "no-scope-secret"))
    assert issued.status_code == 200 and not issued.json().get("scope"), issued.text
    token = issued.json()["access_token"]
    seen = upstream_headers(gateway, "/api/any-token", [
        ("Authorization", f"Bearer {token}"), ("x-tokengate-scope", "admin"), ("x-tokengate-scope", "more"),
    ])
    assert seen["x-tokengate-client-id"] == "no-scope-app", seen
    assert "x-tokengate-scope" not in seen, seen
    plain = upstream_headers(gateway, "/api/any-token", [("Authorization", f"Bearer {token}")])
    assert set(plain) & {"x-tokengate-scope", "x-tokengate-username", "authorization"} == set(), plain
