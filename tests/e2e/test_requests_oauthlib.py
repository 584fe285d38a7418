"""requests-oauthlib (on oauthlib) against the gateway, with its default settings.

Its documented pattern: `fetch_token` for the password grant (a
LegacyApplicationClient; given a client_secret, requests-oauthlib sends the
credentials as HTTP Basic), then `OAuth2Session.refresh_token(token_url,
client_id=..., client_secret=...)`, which puts both in the form body:
client_secret_post (RFC 6749 §2.3.1). oauthlib refuses plain http unless
OAUTHLIB_INSECURE_TRANSPORT=1 is in the environment; the demo listens on plain
http on loopback, so the test sets it.
"""

import pytest
from oauthlib.oauth2 import LegacyApplicationClient
from requests_oauthlib import OAuth2Session

from client import ADMIN, DEMO_APP, FULL_SCOPE, TIMEOUT_S, forwarded, scope_set


@pytest.fixture
def session(gateway, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    sent = []
    with OAuth2Session(client=LegacyApplicationClient(client_id=DEMO_APP[0])) as s:
        # Record what each request carried (the header's scheme, the body's parameter names),
        # never the credentials themselves.
        s.hooks["response"].append(lambda resp, **_: sent.append(resp.request))
        s.sent = sent
        yield s


def body_names(request) -> set[str]:
    body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
    return {pair.split("=", 1)[0] for pair in body.split("&") if pair}


def test_password_grant_then_documented_refresh(gateway, session):
    token_url = gateway.url(gateway.token_path)
    token = session.fetch_token(token_url, username=ADMIN[0], password=ADMIN[1], client_id=DEMO_APP[0],
                                client_secret=DEMO_APP[1], timeout=TIMEOUT_S)
    assert token["refresh_token"] and scope_set(FULL_SCOPE)(" ".join(token["scope"]))
    fetched = session.sent[-1]
    assert fetched.headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in body_names(fetched)
    echo = forwarded(session.get(gateway.url("/api/orders"), timeout=TIMEOUT_S))
    assert echo["headers"]["x-tokengate-username"] == "admin"

    renewed = session.refresh_token(token_url, client_id=DEMO_APP[0], client_secret=DEMO_APP[1], timeout=TIMEOUT_S)
    refreshed = session.sent[-1]
    # client_secret_post: the credentials in the body, no Authorization header.
    assert "Authorization" not in refreshed.headers
    assert {"grant_type", "refresh_token", "client_id", "client_secret"} <= body_names(refreshed)
    assert renewed["access_token"] != token["access_token"]
    assert renewed["refresh_token"] != token["refresh_token"]
    echo = forwarded(session.post(gateway.url("/api/orders"), json={"item": 1}, timeout=TIMEOUT_S))
    assert echo["headers"]["x-tokengate-client-id"] == "demo-app"

    # The replaced refresh token is dead (RFC 9700 §4.14.2), through the library too.
    with pytest.raises(Exception) as failure:
        session.refresh_token(token_url, refresh_token=token["refresh_token"], client_id=DEMO_APP[0],
                              client_secret=DEMO_APP[1], timeout=TIMEOUT_S)
    assert "invalid_grant" in str(failure.value)


def test_refresh_with_a_wrong_secret_is_invalid_client(gateway, session):
    token_url = gateway.url(gateway.token_path)
    token = session.fetch_token(token_url, username=ADMIN[0], password=ADMIN[1], client_id=DEMO_APP[0],
                                client_secret=DEMO_APP[1], timeout=TIMEOUT_S)
    with pytest.raises(Exception) as failure:
        session.refresh_token(token_url, refresh_token=token["refresh_token"], client_id=DEMO_APP[0],
                              client_secret="wrong", timeout=TIMEOUT_S)
    assert "invalid_client" in str(failure.value)
    refused = session.sent[-1]
    assert "Authorization" not in refused.headers
