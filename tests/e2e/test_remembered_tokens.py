"""Each worker remembers the access tokens it validated (src/state/remembered.rs), and a token
ended on one worker is refused by every worker's very next request (docs/token-store.md, docs/performance.md).

Every row first makes both workers' VMs validate the token several times over fresh
connections (so each holds it in its memory), then ends it through one connection, then
sends it again on fresh connections until both workers have answered: each answer must be
a 401. The process-wide token epoch (`tokengate.token_epoch`) is what tells the other
worker its memory is stale.
"""

import harness
from client import (
    DEMO_APP, forwarded, invalid_token, on_every_worker, orders_call, password_grant, refresh, send, token_req,
)

# A reused refresh token ends its grant at once (no grace for racing retries).
PLUGIN_CONFIG = harness.with_changes(harness.demo_plugin_config(), refresh_token_reuse_grace_ms=0)


def revoke(gateway, token: str) -> None:
    response = send(gateway, token_req(f"token={token}", DEMO_APP, path="/revoke"))
    assert response.status_code == 200, response.text


def remembered_everywhere(gateway, token: str) -> None:
    on_every_worker(gateway, orders_call(token), forwarded, per_worker=4)


def refused_everywhere(gateway, token: str) -> None:
    on_every_worker(gateway, orders_call(token), invalid_token(), per_worker=2)


def test_a_revoked_access_token_is_refused_by_every_worker_at_once(gateway):
    tokens = password_grant(gateway)
    remembered_everywhere(gateway, tokens["access_token"])
    revoke(gateway, tokens["access_token"])
    refused_everywhere(gateway, tokens["access_token"])


def test_revoking_the_refresh_token_ends_the_remembered_access_token_everywhere(gateway):
    tokens = password_grant(gateway)
    remembered_everywhere(gateway, tokens["access_token"])
    revoke(gateway, tokens["refresh_token"])
    refused_everywhere(gateway, tokens["access_token"])


def test_a_reused_refresh_token_ends_the_remembered_access_tokens_everywhere(gateway):
    first = password_grant(gateway)
    rotated = refresh(gateway, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["access_token"]
    remembered_everywhere(gateway, second)
    # The replaced refresh token again: the grant ends.
    reused = refresh(gateway, first["refresh_token"])
    assert reused.status_code == 400, reused.text
    refused_everywhere(gateway, second)


def test_the_token_epoch_moves_only_when_tokens_end(gateway):
    def epoch() -> int:
        return gateway.stats(r"tokengate\.token_epoch$").get("wasmcustom.tokengate.token_epoch", 0)

    before = epoch()
    tokens = password_grant(gateway)
    remembered_everywhere(gateway, tokens["access_token"])
    assert epoch() == before, "issuing and validating tokens must leave every worker's memory valid"
    revoke(gateway, tokens["access_token"])
    assert epoch() > before


# Envoy's stats_matcher can reject the filter's stats: the epochs then always read 0 and
# never move, and a worker trusting them would keep revoked tokens for ever.
NO_TOKENGATE_STATS = {"stats_matcher": {"exclusion_list": {"patterns": [{"prefix": "wasmcustom.tokengate."}]}}}


def test_without_its_gauges_no_worker_remembers_a_token(upstream, tmp_path):
    config = harness.render_envoy_config(PLUGIN_CONFIG, upstream.port)
    config["stats_config"] = NO_TOKENGATE_STATS
    with harness.Gateway("no-stats", tmp_path / "no-stats", config) as gateway:
        tokens = password_grant(gateway)
        remembered_everywhere(gateway, tokens["access_token"])
        revoke(gateway, tokens["access_token"])
        refused_everywhere(gateway, tokens["access_token"])
        assert "workers will not remember validated tokens" in gateway.log()


def run_rated_tier_config(upstream, tmp_path, name: str, stats_config: dict) -> tuple[int, str]:
    """Envoy with a Bronze-rated subscription under `stats_config`, run until it exits: its exit
    code and log."""
    plugin = harness.with_changes(
        PLUGIN_CONFIG,
        apis=[{"name": "Orders", "version": "1", "context": "/orders/1",
               "resources": [{"methods": ["GET"], "path": "/items", "scopes": []}]}],
    )
    plugin["applications"][0]["subscriptions"] = [{"api": "Orders", "tier": "Bronze"}]
    config = harness.render_envoy_config(plugin, upstream.port)
    config["stats_config"] = stats_config
    envoy = harness.Envoy(name, tmp_path / name, config)
    try:
        code = envoy.run_to_exit()
    finally:
        envoy.stop()
    return code, envoy.log()


def test_without_its_gauges_rated_tiers_are_refused(upstream, tmp_path):
    code, log = run_rated_tier_config(upstream, tmp_path, "no-stats-tier", NO_TOKENGATE_STATS)
    assert code != 0, log
    assert any("invalid configuration:" in line and "stats_matcher" in line for line in log.splitlines()), log


# Excludes only the tier windows: the epochs get through, so a probe of the epochs alone would
# take the gauges for kept while every tier silently admitted everything.
NO_TIER_WINDOWS = {"stats_matcher": {"exclusion_list": {"patterns": [{"prefix": "wasmcustom.tokengate.tier_window."}]}}}


def test_a_stats_matcher_rejecting_only_tier_windows_is_refused(upstream, tmp_path):
    code, log = run_rated_tier_config(upstream, tmp_path, "no-tier-windows", NO_TIER_WINDOWS)
    assert code != 0, log
    refusals = [line for line in log.splitlines() if "invalid configuration:" in line]
    assert any("stats_matcher" in line and "wasmcustom.tokengate.tier_window.0" in line for line in refusals), log
    assert "workers will not remember validated tokens" not in log, "the epochs were taken for rejected"
