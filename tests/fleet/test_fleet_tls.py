"""Fleet mode against a secured etcd: 3 members that serve their clients (and each other) over
TLS and refuse a client without a certificate from their CA (`--client-cert-auth`), and two
Envoys whose `etcd` cluster carries envoy/fleet/etcd-tls.yaml's transport socket. Everything
fleet mode sends to etcd goes through that TLS: the Watch stream (a revocation travels by it),
the Range, Txn and LeaseGrant calls (tokens, registrations). An Envoy that etcd refuses, or that
cannot trust etcd, answers the documented 503 `temporarily_unavailable` and nothing worse.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import pytest
import requests

import harness
import replicas
from etcd_cluster import ETCDCTL, EtcdTls
from rig import ADMIN, REGISTER, Fleet, Replica, etcd_transport, heartbeat, unseen_token, wait_for_watch

PREFIX = "test-tls/"
# envoy/fleet/envoy.yaml's staleness_ms: past it a replica asks etcd about every token, so a
# revocation seen sooner than that came by the watch.
STALENESS_S = 5


@pytest.fixture(scope="module")
def tls_fleet(tls_etcd, upstream, tmp_path_factory):
    # etcd's access control on: the replicas' certificate names a user who may touch the
    # prefix only, as an operator would set it up.
    tls_etcd.enable_auth(EtcdTls.CLIENT_USER, PREFIX)
    with Fleet(tls_etcd, upstream.port, tmp_path_factory.mktemp("fleet-tls"), PREFIX) as running:
        yield running


def etcd_failures(replica: Replica) -> int:
    name = "wasmcustom.tokengate.fleet.etcd_failures"
    return replica.stats(rf"^{name}$").get(name, 0)


def cluster_stat(replica: Replica, name: str) -> int:
    """One of Envoy's stats of the `etcd` cluster."""
    full = f"cluster.etcd.{name}"
    return replica.stats(rf"^{full}$").get(full, 0)


def test_a_token_issued_on_one_replica_works_on_the_other(tls_fleet):
    a, b = tls_fleet.replicas
    for _ in range(5):
        token = a.token(grant_type="client_credentials")["access_token"]
        assert b.status(token) == 200
        assert a.status(token) == 200
    assert b.status(unseen_token(token)) == 401, "an unknown token is refused after etcd says so"
    assert any(key.startswith(f"{PREFIX}grants/") for key in tls_fleet.keys())
    for replica in (a, b):
        assert etcd_failures(replica) == 0
        assert cluster_stat(replica, "ssl.handshake") > 0


def test_the_health_check_finds_every_member_up_over_tls(tls_fleet):
    members = len(tls_fleet.etcd.members)
    for replica in tls_fleet.replicas:
        deadline = time.monotonic() + 5
        while cluster_stat(replica, "health_check.healthy") != members:
            assert time.monotonic() < deadline, f"{replica.name}: members healthy by the health check " \
                f"{cluster_stat(replica, 'health_check.healthy')} of {members}"
            time.sleep(0.1)


def test_a_revocation_on_one_replica_reaches_the_other_by_the_watch(tls_fleet):
    a, b = tls_fleet.replicas
    for _ in range(5):
        token = a.token(grant_type="client_credentials")["access_token"]
        assert a.status(token) == 200  # a now holds the grant in its cache
        assert b.post("/revoke", {"token": token}).status_code == 200
        revoked_at = time.monotonic()
        assert b.status(token) == 401
        while a.status(token) != 401:
            assert time.monotonic() - revoked_at < STALENESS_S / 2, "the watch never delivered the revocation"
    assert [etcd_failures(replica) for replica in (a, b)] == [0, 0]


def test_a_registration_outlives_the_replica_it_was_made_on(tls_fleet):
    a, b = tls_fleet.replicas
    created = a.post(REGISTER, '{"clientName": "tls-shop", "grantType": "client_credentials"}', ADMIN,
                     **{"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    app = (created.json()["clientId"], created.json()["clientSecret"])
    assert b.status(b.token(app, grant_type="client_credentials")["access_token"]) == 200
    assert any(key.startswith(f"{PREFIX}clients/") for key in tls_fleet.keys())
    restarted = tls_fleet.restart(0)
    wait_for_watch(restarted)
    assert restarted.status(restarted.token(app, grant_type="client_credentials")["access_token"]) == 200


@dataclass(frozen=True)
class Misfit:
    name: str
    client: str | None  # the rig's client certificate the Envoy presents (None: none)
    server_name: str | None  # the name it expects in etcd's certificate (None: the right one)
    envoy_stat: str  # the cluster's stat that says which side refused
    etcd_says: str | None  # what the members log about it, if they see it


MISFITS = [
    Misfit("no client certificate", client=None, server_name=None,
           envoy_stat="ssl.connection_error", etcd_says="client didn't provide a certificate"),
    Misfit("a client certificate from a CA etcd does not trust", client="untrusted", server_name=None,
           envoy_stat="ssl.connection_error", etcd_says="certificate signed by unknown authority"),
    Misfit("expects another server name than etcd's certificate has", client="client",
           server_name=f"not-{EtcdTls.SERVER_NAME}", envoy_stat="ssl.fail_verify_san", etcd_says=None),
]


@pytest.mark.parametrize("misfit", MISFITS, ids=lambda misfit: misfit.name)
def test_an_envoy_that_etcd_refuses_or_cannot_trust_answers_503_and_keeps_running(misfit, tls_fleet, tmp_path):
    issued = tls_fleet.replicas[0].token(grant_type="client_credentials")["access_token"]
    transport = etcd_transport(tls_fleet.etcd.tls, misfit.client, misfit.server_name)
    config = replicas.render(0, 0, [m.client_port for m in tls_fleet.etcd.members], harness.wasm_module(),
                             tls_fleet.plugin, tls_fleet.upstream_port, etcd_transport=transport)
    started_ms = int(time.time() * 1000)
    with Replica("misfit", tmp_path / "misfit", config) as misfit_replica:
        replies = {
            "token": misfit_replica.post("/token", {"grant_type": "client_credentials"}),
            "a token issued elsewhere": misfit_replica.bearer(issued),
            "revoke": misfit_replica.post("/revoke", {"token": issued}),
            "register": misfit_replica.post(REGISTER, '{"clientName": "misfit", "grantType": "client_credentials"}',
                                            ADMIN, **{"Content-Type": "application/json"}),
        }
        for what, reply in replies.items():
            assert reply.status_code == 503, (what, reply.status_code, reply.text)
        assert replies["token"].json()["error"] == "temporarily_unavailable"
        assert misfit_replica.bearer("x", "/api/public/ping").status_code == 200, "public resources stay up"
        assert heartbeat(misfit_replica) < started_ms, "its watch never heard from etcd"
        assert etcd_failures(misfit_replica) > 0
        assert misfit_replica.proc.poll() is None, "Envoy still runs"
        assert cluster_stat(misfit_replica, misfit.envoy_stat) > 0
        assert cluster_stat(misfit_replica, "health_check.failure") > 0, "the health check went through TLS too"
    if misfit.etcd_says:
        assert misfit.etcd_says in tls_fleet.etcd.logs(tail=200)
    # The fleet beside it never noticed.
    assert tls_fleet.replicas[1].status(issued) == 200


def test_etcd_itself_refuses_a_client_without_a_certificate(tls_etcd):
    """What the 503s above rest on: the members really ask for a client certificate."""
    member = tls_etcd.members[0]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{member.client_url}/version", verify=str(tls_etcd.tls.ca), timeout=5)
    certificate = (str(tls_etcd.tls.cert("client")), str(tls_etcd.tls.key("client")))
    assert requests.get(f"{member.client_url}/version", verify=str(tls_etcd.tls.ca), cert=certificate,
                        timeout=5).status_code == 200


def test_the_replicas_etcd_user_may_write_under_the_prefix_only(tls_fleet):
    """etcd's access control was on for every test above: the replicas worked with a user
    confined to their prefix, and that confinement is real."""
    tls = tls_fleet.etcd.tls
    as_tokengate = [ETCDCTL, "--endpoints", tls_fleet.etcd.endpoints, "--command-timeout=3s", "--cacert", str(tls.ca),
                    "--cert", str(tls.cert("client")), "--key", str(tls.key("client"))]
    for key, allowed in ((f"{PREFIX}probe", True), ("elsewhere/probe", False)):
        done = subprocess.run([*as_tokengate, "put", key, "1"], capture_output=True, text=True, timeout=10,
                              env={"ETCDCTL_API": "3"})
        assert (done.returncode == 0) == allowed, (key, done.stderr[-500:])
        if not allowed:
            assert "permission denied" in done.stderr
