"""Fixtures for the e2e tier: real Envoy, real tokengate module, demo upstream.

A test module picks its plugin configuration by defining PLUGIN_CONFIG (a dict;
default: the demo configuration from envoy/envoy.yaml). The `gateway` fixture
starts one Envoy per module with it, so modules never share token state.

When a test fails, the report gets the log Envoy wrote while that test ran
(the whole log for an Envoy started during the test), so a failure shows the
filter's side of the story. Envoy and the upstream are always stopped.
"""

from __future__ import annotations

import contextlib

import pytest

import harness

_LOG_OFFSETS = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def upstream():
    harness.require_artifacts()
    server = harness.Upstream()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sandbox_upstream():
    """The demo's sandbox upstream: the same echo, with "upstream": "sandbox"."""
    harness.require_artifacts()
    server = harness.Upstream("sandbox")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def plugin_config(request) -> dict:
    return getattr(request.module, "PLUGIN_CONFIG", None) or harness.demo_plugin_config()


@pytest.fixture(scope="module")
def gateway(request, upstream, sandbox_upstream, plugin_config, tmp_path_factory):
    name = request.module.__name__
    config = harness.render_envoy_config(plugin_config, upstream.port, sandbox_port=sandbox_upstream.port)
    with harness.Gateway(name, tmp_path_factory.mktemp(name), config) as gw:
        yield gw


@pytest.fixture
def envoy_factory(upstream, tmp_path):
    """Envoys with a plugin config of the test's choosing, stopped after it.

    make(cfg) only builds one, for tests that watch it refuse a config
    (`.run_to_exit()`); start(cfg) returns a running gateway.
    """
    with contextlib.ExitStack() as stack:

        def make(plugin_config, name: str = "envoy", cls=harness.Envoy):
            envoy = cls(name, tmp_path / name, harness.render_envoy_config(plugin_config, upstream.port))
            stack.callback(envoy.stop)
            return envoy

        def start(plugin_config, name: str = "gateway") -> harness.Gateway:
            return stack.enter_context(make(plugin_config, name, harness.Gateway))

        make.start = start
        yield make


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_LOG_OFFSETS] = {id(e): e.log_size() for e in harness.RUNNING}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        offsets = item.stash.get(_LOG_OFFSETS, {})
        for envoy in harness.RUNNING:
            text = envoy.log(offsets.get(id(envoy), 0))
            report.sections.append((f"Envoy log ({envoy.name}, {envoy.log_path})", text or "(nothing logged while this test ran)"))
    return report
