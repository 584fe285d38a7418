"""A full token store refuses new grants and keeps the ones it has.

Contract: the store holds at most `capacity` live grants, rounded up to a
multiple of 8. When it is full, /token answers 503 temporarily_unavailable
instead of evicting (an eviction would silently log someone out), and every
token already issued keeps working. Refreshing rotates tokens within a grant,
so it still works; a revoked grant is no longer live and frees its place.
"""

import pytest

import harness
from client import (
    CC, FULL_SCOPE, call, client_token, form, forwarded, password_grant, post_token, refresh, token_error,
    token_success,
)

EFFECTIVE_CAPACITY = 8
FULL = token_error(503, "temporarily_unavailable")


def assert_full(gateway) -> None:
    FULL.check(post_token(gateway, CC))
    FULL.check(post_token(gateway, form(grant_type="password", username="admin", password="admin")))


@pytest.mark.parametrize("configured", [8, 5], ids=["capacity 8", "capacity 5 rounds up to 8"])
def test_full_store(envoy_factory, configured):
    # No reuse grace: the old refresh token below counts as reuse at once.
    plugin_config = harness.with_changes(
        harness.demo_plugin_config(), store={"capacity": configured}, refresh_token_reuse_grace_ms=0)
    gateway = envoy_factory.start(plugin_config, f"store-{configured}")
    grant = password_grant(gateway)
    tokens = [client_token(gateway) for _ in range(EFFECTIVE_CAPACITY - 1)]
    assert_full(gateway)

    rotated = token_success(FULL_SCOPE, refresh=True).check(refresh(gateway, grant["refresh_token"]))
    for token in [*tokens, rotated["access_token"]]:
        forwarded(call(gateway, "/api/orders", token))
    assert_full(gateway)

    # Reusing the old refresh token revokes the grant, which frees one place.
    token_error(400, "invalid_grant").check(refresh(gateway, grant["refresh_token"]))
    client_token(gateway)
    assert_full(gateway)
