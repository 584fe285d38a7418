"""Fixtures for the fleet tier: a real 3-member etcd cluster on loopback (Debian's etcd) and
real Envoys in fleet mode (2 workers each), built from envoy/fleet/envoy.yaml.

Each test module gets its own key prefix, so modules never share token state. On a failed
test the report carries every Envoy's and etcd member's log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "envoy" / "fleet"))

import harness  # noqa: E402
from etcd_cluster import EtcdCluster, EtcdTls  # noqa: E402
from rig import Fleet  # noqa: E402

CLUSTERS: list[EtcdCluster] = []


@pytest.fixture(scope="session")
def upstream():
    harness.require_artifacts()
    server = harness.Upstream()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), 3)
    CLUSTERS.append(cluster)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        CLUSTERS.remove(cluster)


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory):
    """A cluster of its own that serves its clients and its peers over TLS and asks every client
    for a certificate from its CA (`--client-cert-auth`); the certificates are made for it in a
    temporary directory (EtcdTls)."""
    root = tmp_path_factory.mktemp("etcd-tls")
    cluster = EtcdCluster(root / "data", 3, tls=EtcdTls.make(root / "certificates"))
    CLUSTERS.append(cluster)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        CLUSTERS.remove(cluster)


@pytest.fixture
def partitionable_etcd(tmp_path_factory):
    """A cluster of its own whose members can be cut off from each other (EtcdCluster.isolate)."""
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), 3, partitionable=True)
    CLUSTERS.append(cluster)
    try:
        yield cluster.start()
    finally:
        cluster.heal()
        cluster.stop()
        CLUSTERS.remove(cluster)


@pytest.fixture(scope="module")
def fleet(request, etcd, upstream, tmp_path_factory):
    prefix = f"test-{request.module.__name__}/"
    with Fleet(etcd, upstream.port, tmp_path_factory.mktemp("fleet"), prefix) as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for envoy in harness.RUNNING:
            report.sections.append((f"Envoy log ({envoy.name})", envoy.log()[-20000:] or "(empty)"))
        for cluster in CLUSTERS:
            report.sections.append(("etcd logs", cluster.logs()))
    return report
