"""client_secret_post (RFC 6749 §2.3.1): client_id and client_secret in
the form body at /token, /revoke and /introspect, through the real Envoy.

One method per request: Basic plus a body client_secret is 400
invalid_request, and so is a body client_id that is not Basic's. Credentials
in the URL query are 400. A failed body authentication is 401 invalid_client
like Basic's, but without a Basic challenge: RFC 6749 §5.2 requires
WWW-Authenticate only when the client used the Authorization header. A
request with no credentials at all still gets the Basic challenge. Failures
are counted towards the same lockout as Basic's, under the body's client_id.
"""

import pytest

import harness
from client import (
    ABSENT, CC, DEMO_APP, FULL_SCOPE, NO_STORE, Expect, Row, client_token, form, invalid_client, run_row,
    send, token_error, token_req, token_success,
)

PLUGIN_CONFIG = harness.demo_plugin_config()
# A second application, only for the lockout test, so the rows' app never gets locked.
LOCKED_APP = ("lockout-app", "lockout-secret")
PLUGIN_CONFIG["applications"].append(
    {"consumer_key": LOCKED_APP[0], "consumer_secret": LOCKED_APP[1], "scopes": ["orders:read"]})

POST = form(client_id=DEMO_APP[0], client_secret=DEMO_APP[1])
POST_AUTH_FAILED = token_error(401, "invalid_client", **{"WWW-Authenticate": ABSENT})
BAD_REQUEST = token_error(400, "invalid_request")
OK = token_success(FULL_SCOPE, refresh=False)


def post_row(id: str, body: str, want: Expect, path: str = "/token", auth=None, **headers) -> Row:
    return Row(id, token_req(body, auth, path=path, **headers), want)


ROWS = [
    post_row("client_credentials", f"{CC}&{POST}", OK),
    post_row("credentials before the grant", f"{POST}&{CC}", OK),
    post_row("password grant", f"{form(grant_type='password', username='admin', password='admin')}&{POST}",
             token_success(FULL_SCOPE, refresh=True)),
    post_row("charset parameter", f"{CC}&{POST}", OK, content_type="application/x-www-form-urlencoded;charset=UTF-8"),
    post_row("wrong secret", f"{CC}&{form(client_id='demo-app', client_secret='wrong')}", POST_AUTH_FAILED),
    post_row("unknown client", f"{CC}&{form(client_id='ghost', client_secret='demo-secret')}", POST_AUTH_FAILED),
    post_row("empty secret", f"{CC}&client_id=demo-app&client_secret=", POST_AUTH_FAILED),
    post_row("secret without client_id", f"{CC}&client_secret=demo-secret", POST_AUTH_FAILED),
    post_row("client_id alone: no credentials", f"{CC}&client_id=demo-app", invalid_client()),
    post_row("client_id repeated", f"{CC}&{POST}&client_id=demo-app", BAD_REQUEST),
    post_row("Basic and client_secret", f"{CC}&{POST}", BAD_REQUEST, auth=DEMO_APP),
    post_row("Basic and another client_id", f"{CC}&client_id=other", BAD_REQUEST, auth=DEMO_APP),
    post_row("client_secret in the query", f"{CC}&client_id=demo-app", BAD_REQUEST,
             path="/token?client_secret=demo-secret"),
    post_row("client_id in the query", f"{CC}&client_secret=demo-secret", BAD_REQUEST, path="/token?client_id=demo-app"),
    post_row("both in the query", CC, BAD_REQUEST, path=f"/token?{POST}"),
    post_row("revoke an unknown token", f"token=never-issued&{POST}", Expect(200, NO_STORE, {}), path="/revoke"),
    post_row("revoke, wrong secret", "token=x&client_id=demo-app&client_secret=wrong", POST_AUTH_FAILED,
             path="/revoke"),
    post_row("introspect an unknown token", f"token=never-issued&{POST}", Expect(200, NO_STORE, {"active": False},
                                                                                 exact=True), path="/introspect"),
    post_row("introspect, wrong secret", "token=x&client_id=demo-app&client_secret=wrong", POST_AUTH_FAILED,
             path="/introspect"),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_client_secret_post(gateway, row):
    data = run_row(gateway, row)
    assert "demo-secret" not in str(data)


def test_a_post_token_works_and_is_revoked_and_introspected_with_post(gateway):
    token = OK.check(send(gateway, token_req(f"{CC}&{POST}", None)))["access_token"]
    Expect(200, body={"active": True, "client_id": "demo-app"}).check(
        send(gateway, token_req(f"token={token}&{POST}", None, path="/introspect")))
    Expect(200).check(send(gateway, token_req(f"token={token}&{POST}", None, path="/revoke")))
    Expect(200, body={"active": False}, exact=True).check(
        send(gateway, token_req(f"token={token}", DEMO_APP, path="/introspect")))
    # A Basic token and a post token are the same application's.
    basic_token = client_token(gateway)
    Expect(200, body={"active": True, "client_id": "demo-app"}).check(
        send(gateway, token_req(f"token={basic_token}&{POST}", None, path="/introspect")))


def test_post_failures_count_towards_the_lockout(gateway):
    wrong = f"{CC}&{form(client_id=LOCKED_APP[0], client_secret='guess')}"
    for _ in range(10):
        POST_AUTH_FAILED.check(send(gateway, token_req(wrong, None)))
    right = f"{CC}&{form(client_id=LOCKED_APP[0], client_secret=LOCKED_APP[1])}"
    token_error(429, "temporarily_unavailable", **{"Retry-After": "300"}).check(
        send(gateway, token_req(right, None)))
    # Basic for the same name is locked too.
    token_error(429, "temporarily_unavailable").check(send(gateway, token_req(CC, LOCKED_APP)))
