"""A real OAuth client library against the gateway: authlib's OAuth2Session.

authlib authenticates with client_secret_basic, sending id and secret raw
(clients disagree on whether to form-encode Basic credentials, RFC 6749 §2.3.1), and posts
`application/x-www-form-urlencoded;charset=UTF-8`.
"""

import pytest
from authlib.integrations.requests_client import OAuth2Session

from client import ADMIN, DEMO_APP, FULL_SCOPE, TIMEOUT_S, forwarded, scope_set


@pytest.fixture
def session(gateway, monkeypatch):
    # The demo listens on plain HTTP on loopback; authlib insists on https
    # unless told this is a test.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with OAuth2Session(DEMO_APP[0], DEMO_APP[1], token_endpoint_auth_method="client_secret_basic",
                       scope=FULL_SCOPE) as s:
        yield s


def test_client_credentials(gateway, session):
    token = session.fetch_token(gateway.url(gateway.token_path), grant_type="client_credentials", timeout=TIMEOUT_S)
    assert token["token_type"].lower() == "bearer" and "refresh_token" not in token
    assert scope_set(FULL_SCOPE)(token["scope"])
    echo = forwarded(session.get(gateway.url("/api/orders"), timeout=TIMEOUT_S))
    assert echo["headers"]["x-tokengate-client-id"] == "demo-app"
    assert "x-tokengate-username" not in echo["headers"]


def test_password_and_refresh(gateway, session):
    token = session.fetch_token(gateway.url(gateway.token_path), username=ADMIN[0], password=ADMIN[1], timeout=TIMEOUT_S)
    assert token["refresh_token"]
    echo = forwarded(session.get(gateway.url("/api/orders"), timeout=TIMEOUT_S))
    assert echo["headers"]["x-tokengate-username"] == "admin"

    renewed = session.refresh_token(gateway.url(gateway.token_path), timeout=TIMEOUT_S)
    assert renewed["access_token"] != token["access_token"]
    assert renewed["refresh_token"] != token["refresh_token"]
    forwarded(session.post(gateway.url("/api/orders"), json={"item": 1}, timeout=TIMEOUT_S))
