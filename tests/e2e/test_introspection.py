"""Token introspection (RFC 7662) at /introspect, through the real Envoy.

RFC 7662 §2.1: callers authenticate (bad credentials → 401 with a Basic
challenge). An active token answers active, scope, client_id, username (only
where there is one), token_type, exp and iat, and nothing else; an unknown,
expired, revoked, malformed or foreign token answers exactly
{"active": false}. An application sees its own tokens; orders-service, marked
`"introspect": true` in the demo config (a resource server), sees everyone's,
while demo-app cannot introspect orders-service's tokens.
"""

import time

import pytest

import harness
from client import (
    ADMIN, DEMO_APP, EXPIRY_WAIT_S, NO_STORE, Expect, Req, client_token, form, invalid_client, is_token, issue,
    on_every_worker, password_grant, send, token_error, token_req,
)

ORDERS_SERVICE = ("orders-service", "orders-service-secret")  # the demo's resource server
SHORT_APP = ("short-app", "short-secret")  # access tokens live 1 s
OTHER_APP = ("other-app", "other-secret")  # an ordinary second application

PLUGIN_CONFIG = harness.demo_plugin_config()
PLUGIN_CONFIG["applications"] += [
    {"consumer_key": SHORT_APP[0], "consumer_secret": SHORT_APP[1], "scopes": ["orders:read"],
     "access_token_validity_secs": 1},
    {"consumer_key": OTHER_APP[0], "consumer_secret": OTHER_APP[1], "scopes": ["orders:read"]},
]

INTROSPECT = "/introspect"
ACCESS_VALIDITY = PLUGIN_CONFIG["access_token_validity_secs"]
REFRESH_VALIDITY = PLUGIN_CONFIG["refresh_token_validity_secs"]
INACTIVE = Expect(200, NO_STORE, {"active": False}, exact=True)


def introspect_req(body: str, auth=DEMO_APP, **kwargs) -> Req:
    return token_req(body, auth, path=INTROSPECT, **kwargs)


def is_time(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 1_600_000_000


def active(client_id: str, scope: str, username: str | None = None, token_type: str = "Bearer") -> Expect:
    fields = {"active": True, "scope": scope, "client_id": client_id, "token_type": token_type,
              "exp": is_time, "iat": is_time, "key_type": "PRODUCTION"}
    if username is not None:
        fields["username"] = username
    return Expect(200, NO_STORE, fields, exact=True)


@pytest.fixture(scope="module")
def tokens(gateway) -> dict[str, str]:
    """Tokens of every kind, issued once for the module; `issued` brackets their iat."""
    started = int(time.time())
    user = password_grant(gateway, ADMIN, scope="orders:read", scope_out="orders:read")
    revoked = client_token(gateway)
    Expect(200).check(send(gateway, token_req(form(token=revoked), path="/revoke")))
    service = send(gateway, token_req("grant_type=client_credentials", ORDERS_SERVICE))
    expired = issue(gateway, SHORT_APP, scope_out="orders:read", grant_type="client_credentials")
    values = {
        "user_access": user["access_token"], "user_refresh": user["refresh_token"], "cc": client_token(gateway),
        "service": Expect(200, body={"access_token": is_token}).check(service)["access_token"],
        "other": client_token(gateway, OTHER_APP, scope_out="orders:read"),
        "revoked": revoked, "expired": expired["access_token"],
    }
    values["issued"] = (started, int(time.time()) + 1)
    time.sleep(EXPIRY_WAIT_S)  # `expired` is dead from here on
    return values


DEMO_ACTIVE = active("demo-app", "orders:read orders:write")
USER_ACTIVE = active("demo-app", "orders:read", username="admin")

ROWS = {
    # caller, token → answer
    "own password-grant access token": (DEMO_APP, "user_access", USER_ACTIVE),
    "own refresh token": (DEMO_APP, "user_refresh", active("demo-app", "orders:read", "admin", "refresh_token")),
    "own client_credentials token (no username)": (DEMO_APP, "cc", DEMO_ACTIVE),
    "resource server, demo-app's token": (ORDERS_SERVICE, "user_access", USER_ACTIVE),
    "resource server, demo-app's client_credentials token": (ORDERS_SERVICE, "cc", DEMO_ACTIVE),
    "resource server, own token": (ORDERS_SERVICE, "service", active("orders-service", "")),
    "demo-app, the resource server's token": (DEMO_APP, "service", INACTIVE),
    "demo-app, another application's token": (DEMO_APP, "other", INACTIVE),
    "another application, demo-app's token": (OTHER_APP, "user_access", INACTIVE),
    "revoked token": (DEMO_APP, "revoked", INACTIVE),
    "resource server, revoked token": (ORDERS_SERVICE, "revoked", INACTIVE),
    "expired token, by its owner": (SHORT_APP, "expired", INACTIVE),
    "resource server, expired token": (ORDERS_SERVICE, "expired", INACTIVE),
}

LITERAL_ROWS = {
    "unknown token": ("AQAAAAB3aGF0LWEtbmljZS10b2tlbi10aGlzLWlzLW5vdA", INACTIVE),
    "refresh-shaped unknown token": ("AgAAAAB3aGF0LWEtbmljZS10b2tlbi10aGlzLWlzLW5vdA", INACTIVE),
    "malformed token": ("not a token!", INACTIVE),
    "one character": ("x", INACTIVE),
    "very long token": ("A" * 4000, INACTIVE),
}


@pytest.mark.parametrize("row", ROWS)
def test_introspection(gateway, tokens, row):
    caller, token_name, want = ROWS[row]
    data = want.check(send(gateway, introspect_req(form(token=tokens[token_name]), caller)))
    if data["active"]:
        low, high = tokens["issued"]
        assert low <= data["iat"] <= high, data
        validity = REFRESH_VALIDITY if data["token_type"] == "refresh_token" else ACCESS_VALIDITY
        assert data["exp"] == data["iat"] + validity, data


@pytest.mark.parametrize("row", LITERAL_ROWS)
@pytest.mark.parametrize("caller", [DEMO_APP, ORDERS_SERVICE], ids=["owner-only caller", "resource server"])
def test_introspection_of_strings_that_are_no_tokens(gateway, row, caller):
    token, want = LITERAL_ROWS[row]
    want.check(send(gateway, introspect_req(form(token=token), caller)))


ERROR_ROWS = {
    "wrong secret": (introspect_req("token=$cc", ("orders-service", "wrong")), invalid_client()),
    "unknown client": (introspect_req("token=$cc", ("ghost", "orders-service-secret")), invalid_client()),
    "no client authentication": (introspect_req("token=$cc", None), invalid_client()),
    "a token instead of client credentials": (introspect_req("token=$cc", None, Authorization="Bearer $cc"),
                                              invalid_client()),
    "a user instead of an application": (introspect_req("token=$cc", ADMIN), invalid_client()),
    "no token": (introspect_req("token_type_hint=access_token"), token_error(400, "invalid_request")),
    "empty token": (introspect_req("token="), token_error(400, "invalid_request")),
    "GET": (introspect_req("token=$cc", method="GET"), token_error(405, "invalid_request", Allow="POST")),
    "JSON body": (introspect_req('{"token":"$cc"}', content_type="application/json"),
                  token_error(400, "invalid_request")),
    "token in the URL": (Req("POST", f"{INTROSPECT}?token=$cc", introspect_req("").headers, "token=$cc"),
                         token_error(400, "invalid_request")),
}


@pytest.mark.parametrize("row", ERROR_ROWS)
def test_introspection_errors(gateway, tokens, row):
    req, want = ERROR_ROWS[row]
    want.check(send(gateway, req.render(tokens)))


def test_same_answer_on_every_worker(gateway, tokens):
    """Every worker's VM reads the same store: active and inactive alike."""
    on_every_worker(gateway, introspect_req(form(token=tokens["user_access"]), ORDERS_SERVICE), USER_ACTIVE)
    on_every_worker(gateway, introspect_req(form(token=tokens["revoked"]), ORDERS_SERVICE), INACTIVE)


def test_introspection_follows_revocation(gateway):
    token = client_token(gateway)
    DEMO_ACTIVE.check(send(gateway, introspect_req(form(token=token), ORDERS_SERVICE)))
    Expect(200).check(send(gateway, token_req(form(token=token), path="/revoke")))
    on_every_worker(gateway, introspect_req(form(token=token), ORDERS_SERVICE), INACTIVE)
