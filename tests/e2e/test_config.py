"""The shipped envoy/ files, and Envoy refusing an invalid plugin configuration.

Contract: an invalid configuration makes on_configure return false, Envoy
refuses the config (at startup: it exits), and the log says
"invalid configuration: <problem>" without ever printing a secret.
"""

import json
import subprocess

import pytest
import yaml

import harness

SECRET = "do-not-log-this-secret-7f3a"  # distinctive, so a leak anywhere in the log is found


def config_with(**changes) -> dict:
    """The demo config with a secret we can search the log for."""
    cfg = harness.demo_plugin_config()
    cfg["applications"][0]["consumer_secret"] = SECRET
    cfg.update(changes)
    return cfg


def duplicate_app() -> dict:
    cfg = config_with()
    cfg["applications"].append(dict(cfg["applications"][0], consumer_secret=SECRET + "-2"))
    return cfg


def empty_secret() -> dict:
    cfg = config_with()
    cfg["applications"].append({**cfg["applications"][0], "consumer_key": "second-app", "consumer_secret": ""})
    return cfg


def unknown_nested_field() -> dict:
    cfg = config_with()
    cfg["applications"][0]["bogus"] = True
    return cfg


ORDERS_API = {"name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0",
              "resources": [{"methods": ["GET"], "path": "/items", "scopes": ["orders:read"]}]}


def with_subscription(api: str = "Orders", tier: str = "Unlimited", sandbox_key: str | None = None) -> dict:
    """For subscription config errors: the demo app subscribed to `api` with `tier`, and a sandbox pair."""
    cfg = config_with(apis=[ORDERS_API])
    app = cfg["applications"][0]
    app["subscriptions"] = [{"api": api, "tier": tier}]
    if sandbox_key is not None:
        app["sandbox"] = {"consumer_key": sandbox_key, "consumer_secret": SECRET + "-sandbox"}
    return cfg


INVALID = {
    "subscription to an unknown API": (with_subscription(api="Nope"), "applications[0].subscriptions[0].api"),
    "subscription to an unknown tier": (with_subscription(tier="Platinum"), "applications[0].subscriptions[0].tier"),
    "sandbox pair reusing the production key": (with_subscription(sandbox_key="demo-app"),
                                                "applications[0].sandbox.consumer_key: is the production"),
    "sandbox pair reusing another application's key": (with_subscription(sandbox_key="orders-service"),
                                                       "applications[0].sandbox.consumer_key: is another"),
    "unknown field": (config_with(bogus=1), "bogus"),
    "unknown field in an application": (unknown_nested_field(), "bogus"),
    "bad json": (json.dumps(config_with())[:-20], None),
    "duplicate consumer_key": (duplicate_app(), None),
    "empty secret": (empty_secret(), None),
}


@pytest.mark.parametrize("name", INVALID)
def test_invalid_configuration_refused(envoy_factory, name):
    plugin_config, named_in_log = INVALID[name]
    envoy = envoy_factory(plugin_config, name.replace(" ", "-"))
    code = envoy.run_to_exit()
    log = envoy.log()
    assert code != 0, log
    lines = [line for line in log.splitlines() if "invalid configuration:" in line]
    assert lines, f"no 'invalid configuration:' line in:\n{log}"
    if named_in_log:
        assert any(named_in_log in line for line in lines), lines
        assert len(lines) == 1, lines
    assert SECRET not in log, "the log contains a client secret"


def test_demo_config_validates(tmp_path):
    """`envoy --mode validate` accepts envoy/envoy.yaml as shipped, except for
    the module path (absolute, so TOKENGATE_WASM is honoured). Validation runs
    on_configure, so this also checks the demo plugin config."""
    harness.require_artifacts()
    cfg = harness.load_demo_envoy_config()
    harness.wasm_filter(cfg)["vm_config"]["code"]["local"]["filename"] = str(harness.wasm_module())
    harness.point_at_test_certificate(cfg, tmp_path)
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = subprocess.run([str(harness.envoy_binary()), "--mode", "validate", "-c", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr


def test_demo_config_shape():
    """What `make run` and docs/getting-started.md rely on in envoy/envoy.yaml."""
    cfg = harness.load_demo_envoy_config()
    listener = cfg["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    assert cfg["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9901}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["normalize_path"] is True and hcm["merge_slashes"] is True
    assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
    # The credential endpoints' per-connection rate limit runs before the filter (docs/token-endpoint.md).
    assert [f["name"] for f in hcm["http_filters"]] == [
        "envoy.filters.http.local_ratelimit", harness.WASM_FILTER_NAME, "envoy.filters.http.router"]
    wasm = harness.wasm_filter(cfg)
    assert wasm["root_id"] == "tokengate" and wasm["vm_config"]["vm_id"] == "tokengate"
    # Without it Envoy never calls on_http_request_body after the filter's pause: /token hangs.
    assert wasm["allow_on_headers_stop_iteration"] is True
    assert wasm["vm_config"]["runtime"] == "envoy.wasm.runtime.v8"
    assert wasm["vm_config"]["code"]["local"]["filename"] == harness.DEMO_WASM_PATH
    assert wasm["configuration"]["@type"] == "type.googleapis.com/google.protobuf.StringValue"
    cluster = harness.demo_cluster(cfg)
    assert [c["name"] for c in cfg["static_resources"]["clusters"]] == ["demo_upstream", "sandbox_upstream", "mcp_upstream"]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert address == {"address": "127.0.0.1", "port_value": 8081}
    plugin = harness.demo_plugin_config()
    apps = {a["consumer_key"]: a for a in plugin["applications"]}
    assert apps["demo-app"]["consumer_secret"] == "demo-secret"
    assert apps["demo-app"]["grant_types"] == ["client_credentials", "password", "refresh_token"]
    # The resource server of the introspection demo.
    assert apps["orders-service"]["introspect"] is True
    assert [(u["username"], u["password"]) for u in plugin["users"]] == [("admin", "admin")]
    assert len(plugin["resources"]) == 4


def test_docker_compose_runs_the_same_demo():
    """envoy/docker-compose.yaml (for Docker users) runs the same files."""
    compose = yaml.safe_load((harness.REPO / "envoy" / "docker-compose.yaml").read_text())
    envoy, upstream = compose["services"]["envoy"], compose["services"]["demo_upstream"]
    assert envoy["image"].startswith("envoyproxy/envoy:v1.40")
    assert envoy["command"][:3] == ["envoy", "-c", "envoy/envoy.yaml"]
    assert "..:/tokengate:ro" in envoy["volumes"] and envoy["working_dir"] == "/tokengate"
    assert "./demo_upstream.py:/demo_upstream.py:ro" in upstream["volumes"]
    assert upstream["command"][-2:] == ["/demo_upstream.py", "8081"]
    # Host networking keeps envoy.yaml's loopback addresses valid unchanged.
    assert envoy["network_mode"] == upstream["network_mode"] == "host"


def credential_route_regex(cfg: dict) -> str:
    """The regex of the route that turns on the per-connection local_ratelimit."""
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]][:2] == [
        "envoy.filters.http.local_ratelimit", harness.WASM_FILTER_NAME]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    (limited,) = [r for r in routes if "envoy.filters.http.local_ratelimit" in r.get("typed_per_filter_config", {})]
    return limited["match"]["safe_regex"]["regex"]


@pytest.mark.parametrize("envoy_file", ["envoy.yaml", "fleet/envoy.yaml"])
def test_every_endpoint_that_checks_a_password_is_rate_limited_per_connection(envoy_file):
    """Each endpoint that checks a client secret or a user password (the login form and RFC 7591
    registration included: both take passwords from anyone) sits under the demo's
    per-connection rate limit, in the single-Envoy demo and in fleet mode alike. Envoy's
    safe_regex must match the whole path (without its query), as re.fullmatch does."""
    import re

    cfg = yaml.safe_load((harness.REPO / "envoy" / envoy_file).read_text())
    regex = re.compile(credential_route_regex(cfg))
    plugin = json.loads(harness.wasm_filter(cfg)["configuration"]["value"])
    registration = plugin["registration"]
    limited = [plugin["token_endpoint"], plugin["revocation_endpoint"], plugin["introspection_endpoint"],
               plugin.get("authorization", {}).get("endpoint", "/authorize"),
               registration["endpoint"], registration["endpoint"] + "/some-client/secret",
               registration.get("rfc7591_endpoint", "/register"),
               registration.get("rfc7591_endpoint", "/register") + "/some-client"]
    for path in limited:
        assert regex.fullmatch(path), (envoy_file, path)
    for path in ["/api/orders", "/api/public/ping", "/registered", "/authorized", "/.well-known/oauth-authorization-server"]:
        assert not regex.fullmatch(path), (envoy_file, path)
