"""Fixtures for the compose tier: a private Docker daemon (started here, stopped here even when a
test fails), the images built on this machine, and one compose project per test.

`make test-compose` runs this tier: it builds the filter and the TLS listener's certificate
(the compose files mount the repository and read both from target/), installs Debian's
docker.io and docker-compose when missing, and passes COMPOSE_SUDO (`sudo -n` unless root).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import images
from daemon import DockerDaemon
from rig import ComposeRun

REPO = Path(__file__).resolve().parents[2]
DAEMON_ROOT = REPO / "target" / "compose" / "docker"
IMAGE_PREFIX = "tokengate-compose-test"
TLS_CERT = REPO / "target" / "tls" / "cert.pem"


@pytest.fixture(scope="session")
def daemon():
    for artifact, make in ((REPO / "target/wasm32-wasip1/release/tokengate.wasm", "make build"), (TLS_CERT, "make tls")):
        if not artifact.is_file():
            raise FileNotFoundError(f"{artifact} is missing: the compose files mount it; run `{make}`")
    started = DockerDaemon(DAEMON_ROOT, os.environ.get("COMPOSE_SUDO", "")).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def local_images(daemon) -> dict[str, str]:
    """Each stand-in's image name, built once for the session."""
    built = {}
    for key, recipe in images.recipes(IMAGE_PREFIX).items():
        images.build(daemon.docker, recipe)
        built[key] = recipe.name
    return built


@pytest.fixture(autouse=True)
def demo_certificate(monkeypatch):
    """requests verifies the TLS listener against the demo's self-signed certificate.
    REQUESTS_CA_BUNDLE wins over a call's default `verify`, and is set machine-wide here,
    so it is the one to point at the certificate."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(TLS_CERT))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def compose_run(request, daemon, local_images, tmp_path, file: Path):
    """Runs `file` with the local images until the test is over; on a failed test the report
    carries every service's log."""
    run = ComposeRun(daemon.compose, file, f"tokengate-{request.node.name}".lower().replace("_", "-"),
                     tmp_path / "local-images.yaml")
    run.write_override(local_images)
    try:
        run.up()
        yield run
    finally:
        started = getattr(request.node, "report_setup", None)
        called = getattr(request.node, "report_call", None)
        if (started and started.failed) or (called and called.failed):
            print(run.logs())
        run.down()


@pytest.fixture
def single(request, daemon, local_images, tmp_path):
    """envoy/docker-compose.yaml: one Envoy and the demo upstreams."""
    yield from compose_run(request, daemon, local_images, tmp_path, REPO / "envoy" / "docker-compose.yaml")


@pytest.fixture
def fleet(request, daemon, local_images, tmp_path):
    """envoy/fleet/docker-compose.yaml: 3 etcd members, two replicas and the demo upstreams."""
    yield from compose_run(request, daemon, local_images, tmp_path, REPO / "envoy" / "fleet" / "docker-compose.yaml")
