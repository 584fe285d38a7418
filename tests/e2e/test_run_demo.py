"""envoy/run_demo.py, `make run`'s runner: the port check a second `make run` meets, and the
invalid-configuration line it prints last when Envoy refuses the plugin configuration."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys

import harness

sys.path.insert(0, str(harness.REPO / "envoy"))
import run_demo  # noqa: E402

ENVOY_LINES = [
    "[2026-12-01 21:15:55.795][1][info][wasm] wasm log tokengate tokengate: #1 tokengate 0.1.0 starting\n",
    "[2026-12-01 21:15:55.796][1][error][wasm] wasm log tokengate tokengate: #1 invalid configuration: "
    "applications[0].scopes: missing field at line 3 column 5\n",
    "[2026-12-01 21:15:55.797][1][critical][main] error initializing config: Unable to create Wasm HTTP filter\n",
    "[2026-12-01 21:15:55.798][1][info][main] exiting\n",
]


def test_the_configuration_problem_comes_last_with_where_it_is():
    out = io.StringIO()
    problem = run_demo.relay(iter(ENVOY_LINES), out)
    assert out.getvalue() == "".join(ENVOY_LINES)
    assert problem == "invalid configuration: applications[0].scopes: missing field at line 3 column 5"
    words = run_demo.last_words(1, problem)
    assert words[0] == f"Envoy refused to start: {problem}"
    assert "envoy/envoy.yaml" in words[1] and "configuration.value" in words[1]


def test_a_clean_exit_adds_nothing_and_another_failure_points_at_the_log():
    assert run_demo.last_words(0, None) == []
    assert run_demo.last_words(1, None) == ["Envoy exited with 1 (its log is above)"]


def test_a_port_in_use_is_named(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_demo.check_ports([(port, "the gateway")]) == 1
    assert f"port {port} (the gateway) is in use (is tokengate already running?)" in capsys.readouterr().err
    assert run_demo.check_ports([(port, "the gateway")]) == 0


def test_check_ports_needs_nothing_installed():
    """`make run` checks the ports with the system python3, before any install."""
    result = subprocess.run(["python3", "-I", str(harness.REPO / "envoy" / "run_demo.py"), "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_make_run_config_puts_another_plugin_configuration_in_both_listeners(monkeypatch, tmp_path):
    """`make run CONFIG=file.json`: envoy/envoy.yaml with that JSON, envoy/ untouched."""
    monkeypatch.setattr(run_demo, "RENDERED", tmp_path / "envoy.yaml")
    plugin = harness.with_changes(harness.demo_plugin_config(), realm="elsewhere")
    rendered = harness.load_yaml(run_demo.with_plugin_config(json.dumps(plugin)))
    for name in (harness.PLAIN_LISTENER, harness.TLS_LISTENER):
        wasm = harness.listener_wasm_filter(harness._listener(rendered, name))
        assert json.loads(wasm["configuration"]["value"])["realm"] == "elsewhere", name
    assert json.loads(harness.wasm_filter(harness.load_demo_envoy_config())["configuration"]["value"])["realm"] == "tokengate"
