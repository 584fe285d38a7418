"""Token revocation (RFC 7009) at /revoke, through the real Envoy with two workers.

RFC 7009 §2.1: the application authenticates as at /token; 200 for a revoked
token and also for an unknown one; a missing token is invalid_request; failed
client authentication is 401 invalid_client, with a Basic challenge when the
client used Basic; client_secret_post works too (RFC 6749 §2.3.1). An
application revokes only its own tokens: another's is refused and keeps
working. A wrong token_type_hint still finds the token. Revoking a refresh
token ends its whole grant, the access tokens issued from it included, and
revoking an access token leaves its refresh token working (§2.1 MAY). The
effect is immediate on every worker: each row checks what it killed, and
what it must not have, over fresh connections until both workers' VMs have
answered.
"""

import base64
from dataclasses import dataclass

import pytest

import harness
from client import (
    ABSENT, DEMO_APP, FULL_SCOPE, NO_STORE, Expect, Req, client_token, form, forwarded, invalid_client, invalid_token,
    on_every_worker, orders_call, password_grant, refresh, send, token_error, token_req, token_success,
)

OTHER_APP = ("other-app", "other-secret")

PLUGIN_CONFIG = harness.demo_plugin_config()
PLUGIN_CONFIG["applications"].append(
    {"consumer_key": OTHER_APP[0], "consumer_secret": OTHER_APP[1],
     "grant_types": ["client_credentials", "password", "refresh_token"], "scopes": ["orders:read", "orders:write"]}
)

REVOKE = "/revoke"
# client_secret_post failed: 401 without a Basic challenge (the client did not use Authorization).
POST_AUTH_FAILED = token_error(401, "invalid_client", **{"WWW-Authenticate": ABSENT})
REVOKED = Expect(200, NO_STORE, {})  # RFC 7009 §2.2: the body is not for the client; ours is {}
# Shaped like a token (base64url, 32 bytes) but never issued.
UNKNOWN_TOKEN = "AQAAAAB3aGF0LWEtbmljZS10b2tlbi10aGlzLWlzLW5vdA"
# The access tokens each row starts with; `dead` names those a row must end.
ACCESS_TOKENS = ("access", "access2", "cc", "other")


def revoke_req(body: str, auth=DEMO_APP, **kwargs) -> Req:
    return token_req(body, auth, path=REVOKE, **kwargs)


@dataclass(frozen=True)
class RevokeRow:
    id: str
    req: Req
    want: Expect
    dead: tuple[str, ...] = ()  # access tokens that must stop working (all others must keep working)
    refresh_dead: bool = False  # whether the grant's current refresh token must stop working


GRANT = ("access", "access2")
ROWS = [
    RevokeRow("access token", revoke_req("token=$access"), REVOKED, dead=("access",)),
    RevokeRow("access token, hinted as refresh_token", revoke_req("token=$access&token_type_hint=refresh_token"),
              REVOKED, dead=("access",)),
    RevokeRow("refresh token ends its grant", revoke_req("token=$refresh"), REVOKED, dead=GRANT, refresh_dead=True),
    RevokeRow("refresh token, hinted as access_token", revoke_req("token=$refresh&token_type_hint=access_token"),
              REVOKED, dead=GRANT, refresh_dead=True),
    # A refresh token is matched by its hash, not its grant id alone: a rotated or
    # forged one is unknown (as /introspect says), and the live grant keeps working.
    RevokeRow("refresh token already rotated away", revoke_req("token=$used_refresh"), REVOKED),
    RevokeRow("forged refresh token with the grant's id", revoke_req("token=$forged_refresh"), REVOKED),
    RevokeRow("client_credentials token, unknown hint", revoke_req("token=$cc&token_type_hint=id_token"), REVOKED,
              dead=("cc",)),
    RevokeRow("already revoked", revoke_req("token=$revoked"), REVOKED),
    RevokeRow("unknown token", revoke_req(f"token={UNKNOWN_TOKEN}"), REVOKED),
    RevokeRow("malformed token", revoke_req("token=not+a+token%21"), REVOKED),
    RevokeRow("another application's access token", revoke_req("token=$access", OTHER_APP),
              token_error(400, "unauthorized_client")),
    RevokeRow("another application's refresh token", revoke_req("token=$refresh", OTHER_APP),
              token_error(400, "unauthorized_client")),
    RevokeRow("no token", revoke_req("token_type_hint=access_token"), token_error(400, "invalid_request")),
    RevokeRow("empty token", revoke_req("token="), token_error(400, "invalid_request")),
    RevokeRow("token repeated", revoke_req("token=$access&token=$cc"), token_error(400, "invalid_request")),
    RevokeRow("wrong secret", revoke_req("token=$access", ("demo-app", "wrong-secret")), invalid_client()),
    RevokeRow("unknown client", revoke_req("token=$access", ("ghost-app", "demo-secret")), invalid_client()),
    RevokeRow("no client authentication", revoke_req("token=$access", None), invalid_client()),
    # client_secret_post is accepted (RFC 6749 §2.3.1), as at /token.
    RevokeRow("client secret in the body instead of Basic",
              revoke_req("token=$access&client_id=demo-app&client_secret=demo-secret", None), REVOKED,
              dead=("access",)),
    RevokeRow("client secret in the body, wrong",
              revoke_req("token=$access&client_id=demo-app&client_secret=wrong", None), POST_AUTH_FAILED),
    RevokeRow("client secret in the body as well as Basic",
              revoke_req("token=$access&client_id=demo-app&client_secret=demo-secret"),
              token_error(400, "invalid_request")),
    RevokeRow("Bearer instead of Basic", revoke_req("token=$access", None, Authorization="Bearer $cc"),
              invalid_client()),
    RevokeRow("GET", revoke_req("token=$access", method="GET"),
              token_error(405, "invalid_request", Allow="POST")),
    RevokeRow("JSON body", revoke_req('{"token": "$access"}', content_type="application/json"),
              token_error(400, "invalid_request")),
    RevokeRow("token in the URL", Req("POST", f"{REVOKE}?token=$access",
                                      revoke_req("token=$access").headers, "token=$access"),
              token_error(400, "invalid_request")),
]


def forged(refresh_token: str) -> str:
    """The same kind, bucket and grant id, another secret: what a guesser could build."""
    raw = bytearray(base64.urlsafe_b64decode(refresh_token + "=" * (-len(refresh_token) % 4)))
    raw[-1] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def tokens(gw) -> dict[str, str]:
    """A fresh set for one row: a password grant refreshed once (two live
    access tokens, its current and its used refresh token), a client
    credentials token, another application's token, and a revoked token."""
    grant = password_grant(gw)
    second = token_success(FULL_SCOPE, refresh=True).check(refresh(gw, grant["refresh_token"]))
    revoked = client_token(gw)
    REVOKED.check(send(gw, revoke_req(form(token=revoked))))
    return {
        "access": grant["access_token"], "used_refresh": grant["refresh_token"],
        "access2": second["access_token"], "refresh": second["refresh_token"],
        "forged_refresh": forged(second["refresh_token"]),
        "cc": client_token(gw), "other": client_token(gw, OTHER_APP), "revoked": revoked,
    }


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_revocation(gateway, row):
    values = tokens(gateway)
    row.want.check(send(gateway, row.req.render(values)))
    for name in ACCESS_TOKENS:
        if name in row.dead:
            on_every_worker(gateway, orders_call(values[name]), invalid_token())
        else:
            on_every_worker(gateway, orders_call(values[name]), forwarded, per_worker=1)
    if row.refresh_dead:
        token_error(400, "invalid_grant").check(refresh(gateway, values["refresh"]))
    else:
        token_success(FULL_SCOPE, refresh=True).check(refresh(gateway, values["refresh"]))


def test_revocation_is_immediate_on_every_worker(gateway):
    """Revoke right after proving the token works on every worker; the next
    request on every worker must already fail, and introspection agrees."""
    token = client_token(gateway)
    on_every_worker(gateway, orders_call(token), forwarded, per_worker=5)
    REVOKED.check(send(gateway, revoke_req(form(token=token))))
    on_every_worker(gateway, orders_call(token), invalid_token(), per_worker=5)
    introspect = token_req(form(token=token), DEMO_APP, path="/introspect")
    on_every_worker(gateway, introspect, Expect(200, body={"active": False}, exact=True))


def test_revoking_one_access_token_leaves_its_siblings(gateway):
    """A grant holds several access tokens; revoking one is not revoking the grant."""
    values = tokens(gateway)
    REVOKED.check(send(gateway, revoke_req(form(token=values["access2"]))))
    invalid_token().check(send(gateway, orders_call(values["access2"])))
    forwarded(send(gateway, orders_call(values["access"])))
