"""Token lifecycles across Envoy's workers: sharing, rotation, races, expiry.

RFC 6749 §6 (refreshing), RFC 9700 §4.14.2 (refresh rotation and reuse detection) and
docs/token-endpoint.md's refresh and expiry rules. Each request goes out on a fresh
connection, so with two workers a token is routinely issued by one wasm VM and
checked or refreshed by the other: the store must live in shared data.
"""

import threading
import time

import pytest

import harness
from client import (
    ABSENT, EXPIRY_WAIT_S, ADMIN, DEMO_APP, FULL_SCOPE, call, client_token, expect, forwarded, invalid_token, issue,
    bearer_req, on_every_worker, password_grant, refresh, token_error, token_success,
)

SHORT_APP = ("short-app", "short-secret")  # access tokens live 1 s
FOREVER_APP = ("forever-app", "forever-secret")  # access tokens never expire
OTHER_APP = ("other-app", "other-secret")  # a second client with refresh tokens

CONCURRENT_REFRESHES = 32
FRESH_CONNECTIONS = 20

PLUGIN_CONFIG = harness.demo_plugin_config()
PLUGIN_CONFIG["applications"] += [
    {"consumer_key": key, "consumer_secret": secret, "grant_types": ["client_credentials", "password", "refresh_token"],
     "scopes": ["orders:read", "orders:write"], **extra}
    for (key, secret), extra in (
        (SHORT_APP, {"access_token_validity_secs": 1}),
        (FOREVER_APP, {"access_token_validity_secs": -1}),
        (OTHER_APP, {}),
    )
]

# A refresh token just replaced counts as a lost race, not a reuse, for this long (the default
# is no grace; the grace tests need one, the reuse test waits it out).
REUSE_GRACE_S = 1.0
PLUGIN_CONFIG["refresh_token_reuse_grace_ms"] = int(REUSE_GRACE_S * 1000)

INVALID_GRANT = token_error(400, "invalid_grant")


def refreshed(gw, refresh_token: str, scope_out: str = FULL_SCOPE, auth=DEMO_APP, **params) -> dict:
    """A successful refresh: a new access token and a new (rotated) refresh token."""
    data = token_success(scope_out, refresh=True).check(refresh(gw, refresh_token, auth, **params))
    assert data["refresh_token"] != refresh_token, "refresh token was not rotated"
    return data


def assert_valid(gw, token: str, path: str = "/api/orders") -> dict:
    return forwarded(call(gw, path, token))


def assert_revoked(gw, token: str) -> None:
    invalid_token().check(call(gw, "/api/orders", token))


def test_token_valid_on_fresh_connections(gateway):
    """A token issued on one connection works on fresh ones until every worker's VM has
    checked it several times (Envoy's per-worker listener stats say which worker took each)."""
    token = client_token(gateway)

    def forwarded_as_demo_app(resp):
        expect(resp, 200)
        assert resp.json()["headers"]["x-tokengate-client-id"] == "demo-app"

    on_every_worker(gateway, bearer_req("/api/orders", token), forwarded_as_demo_app, per_worker=FRESH_CONNECTIONS // 2)


def test_refresh_rotation_and_reuse_revokes_grant(gateway):
    grant = password_grant(gateway, ADMIN)
    first_access, first_refresh = grant["access_token"], grant["refresh_token"]
    second = refreshed(gateway, first_refresh)
    assert second["access_token"] != first_access
    assert_valid(gateway, second["access_token"])

    # Right after the rotation the old token may be a parallel retry that lost:
    # refused, and the winner's tokens stay.
    INVALID_GRANT.check(refresh(gateway, first_refresh))
    assert_valid(gateway, second["access_token"])

    # After the grace, presenting it again is reuse (RFC 9700 §4.14.2) and
    # revokes the whole grant: every access token and the live refresh token.
    time.sleep(REUSE_GRACE_S + 0.2)
    INVALID_GRANT.check(refresh(gateway, first_refresh))
    assert_revoked(gateway, first_access)
    assert_revoked(gateway, second["access_token"])
    INVALID_GRANT.check(refresh(gateway, second["refresh_token"]))


def test_refresh_keeps_grant_scope_while_access_narrows(gateway):
    """RFC 6749 §6: the access token may narrow; the new refresh token keeps the
    presented one's scope, so a later refresh can widen back to it."""
    grant = password_grant(gateway, ADMIN)
    narrowed = refreshed(gateway, grant["refresh_token"], scope_out="orders:read", scope="orders:read")
    expect(call(gateway, "/api/orders", narrowed["access_token"], method="POST"), 403)
    assert_valid(gateway, narrowed["access_token"])

    widened = refreshed(gateway, narrowed["refresh_token"])  # no scope: the grant's scope
    assert_valid(gateway, widened["access_token"])
    forwarded(call(gateway, "/api/orders", widened["access_token"], method="POST"))

    write_only = refreshed(gateway, widened["refresh_token"], scope_out="orders:write", scope="orders:write")
    token_error(400, "invalid_scope").check(refresh(gateway, write_only["refresh_token"], scope="orders:read admin"))


def test_refresh_scope_cannot_exceed_grant(gateway):
    grant = password_grant(gateway, ADMIN, scope="orders:read", scope_out="orders:read")
    token_error(400, "invalid_scope").check(refresh(gateway, grant["refresh_token"], scope="orders:write"))
    # A refused request is not a use: the token still refreshes.
    refreshed(gateway, grant["refresh_token"], scope_out="orders:read")


def test_refresh_token_bound_to_client(gateway):
    """RFC 6749 §6: another client's refresh token is invalid_grant, and that attempt
    neither uses nor revokes it (else any client could kill others' grants)."""
    grant = password_grant(gateway, ADMIN)
    INVALID_GRANT.check(refresh(gateway, grant["refresh_token"], auth=OTHER_APP))
    assert_valid(gateway, grant["access_token"])
    refreshed(gateway, grant["refresh_token"])


def test_refresh_token_is_not_an_access_token(gateway):
    grant = password_grant(gateway, ADMIN)
    assert_revoked(gateway, grant["refresh_token"])


def race_refreshes(gw, refresh_token: str) -> dict:
    """32 clients race to refresh one token on separate connections (and so on both
    workers): exactly one 200, all others 400 invalid_grant. Returns the winner's tokens."""
    barrier = threading.Barrier(CONCURRENT_REFRESHES)
    results: list = [None] * CONCURRENT_REFRESHES

    def race(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = refresh(gw, refresh_token, headers={"Connection": "close"})
        except Exception as exc:  # reported below with the others
            results[i] = exc

    threads = [threading.Thread(target=race, args=(i,)) for i in range(CONCURRENT_REFRESHES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    errors = [r for r in results if isinstance(r, Exception) or r is None]
    assert not errors, errors
    winners = [r for r in results if r.status_code == 200]
    losers = [r for r in results if r.status_code != 200]
    assert len(winners) == 1, [(r.status_code, r.text) for r in results]
    for resp in losers:
        INVALID_GRANT.check(resp)
    return token_success(FULL_SCOPE, refresh=True).check(winners[0])


def test_concurrent_refreshes_have_one_winner_who_keeps_the_grant_within_the_grace(gateway):
    """With refresh_token_reuse_grace_ms set, the losers lost a race: the winner's tokens live."""
    winner = race_refreshes(gateway, password_grant(gateway, ADMIN)["refresh_token"])
    assert_valid(gateway, winner["access_token"])
    refreshed(gateway, winner["refresh_token"])


def test_concurrent_refreshes_by_default_have_one_winner_and_revoke_the_grant(envoy_factory):
    """RFC 9700 §4.14.2: with no grace (the default) a loser presents the token the
    winner just replaced, which is reuse: the grant ends, the winner's tokens included."""
    config = {k: v for k, v in PLUGIN_CONFIG.items() if k != "refresh_token_reuse_grace_ms"}
    gw = envoy_factory.start(config, "no-grace")
    winner = race_refreshes(gw, password_grant(gw, ADMIN)["refresh_token"])
    assert_revoked(gw, winner["access_token"])
    INVALID_GRANT.check(refresh(gw, winner["refresh_token"]))


def test_access_token_expires(gateway):
    data = issue(gateway, SHORT_APP, grant_type="client_credentials", expires_in=1)
    assert_valid(gateway, data["access_token"])
    time.sleep(EXPIRY_WAIT_S)
    assert_revoked(gateway, data["access_token"])


def test_expired_access_token_can_be_refreshed(gateway):
    """Access expiry does not end the grant: the refresh token still works."""
    grant = issue(gateway, SHORT_APP, grant_type="password", username="admin", password="admin", expires_in=1)
    time.sleep(EXPIRY_WAIT_S)
    assert_revoked(gateway, grant["access_token"])
    fresh = refreshed(gateway, grant["refresh_token"], auth=SHORT_APP)
    assert_valid(gateway, fresh["access_token"])


def test_never_expiring_token(gateway):
    """Negative validity: no expires_in in the response, and the token works."""
    data = issue(gateway, FOREVER_APP, grant_type="client_credentials", expires_in=ABSENT)
    assert_valid(gateway, data["access_token"])


@pytest.mark.parametrize("grant_type", ["client_credentials", "password"])
def test_expires_in_matches_configuration(gateway, grant_type):
    params = {"username": "admin", "password": "admin"} if grant_type == "password" else {}
    issue(gateway, DEMO_APP, grant_type=grant_type, expires_in=3600, **params)
