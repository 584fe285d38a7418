"""envoy/docker-compose.yaml run for real: the README's session against one Envoy in a container,
on the plain listener and the TLS one."""

from __future__ import annotations

import rig

PLAIN = "http://127.0.0.1:8080"
TLS = "https://127.0.0.1:8243"


def test_the_readme_session_runs_on_the_compose_file(single):
    single.wait_until_serving([PLAIN])
    # A token for the demo application, with HTTP Basic.
    issued = rig.token(PLAIN, grant_type="client_credentials")
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "Bearer"
    assert issued.json()["scope"] == "orders:read orders:write"
    # The password grant with a narrower scope, on the TLS listener (verified against the demo's
    # certificate): the same token store is behind both listeners.
    narrow = rig.token(TLS, grant_type="password", username="admin", password="admin", scope="orders:read")
    assert narrow.status_code == 200, narrow.text
    access_token = narrow.json()["access_token"]
    # The API call: the demo upstream container echoes the identity headers the gateway set.
    called = rig.bearer(PLAIN, access_token)
    assert called.status_code == 200, called.text
    assert called.json()["headers"] == {"x-tokengate-client-id": "demo-app", "x-tokengate-username": "admin",
                                        "x-tokengate-scope": "orders:read"}
    assert called.json()["authorization_forwarded"] is False
    # Without orders:write: 403 insufficient_scope.
    refused = rig.bearer(PLAIN, access_token, method="POST", path="/api/orders")
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    # Revoked over TLS, then refused on both listeners.
    assert rig.revoke(TLS, access_token).status_code == 200
    for listener in (PLAIN, TLS):
        after = rig.bearer(listener, access_token)
        assert after.status_code == 401
        assert 'error="invalid_token"' in after.headers["www-authenticate"]
