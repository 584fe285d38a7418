"""Fleet mode against an etcd that wants a user and a password (docs/fleet.md, "etcd users with
passwords"): 3 members with etcd's access control on and JWT tokens that live a few seconds, and
two Envoys configured with `etcd_user` and `etcd_password`. Each Envoy's watcher authenticates
before it watches and again every renewal period; every call (the Watch, Range, Txn and
LeaseGrant) carries the token; a worker whose token etcd refuses asks for a new one once and
sends again. A wrong password is the documented 503 and nothing worse, and neither the password
nor a token ever reaches Envoy's log.
"""

from __future__ import annotations

import subprocess
import time

import pytest

import harness
import replicas
from etcd_cluster import EtcdCluster
from rig import Fleet, Replica, heartbeat, plugin_config, unseen_token
from conftest import CLUSTERS

PREFIX = "test-auth/"
USER = "tokengate"
PASSWORD = "etcd-pw-7Qz9"
# etcd's JWT tokens end this long after they are made, however much they are used: a renewal
# that did not happen shows within seconds.
TOKEN_TTL_S = 4
RENEWAL_MS = 1500
# envoy/fleet/envoy.yaml's staleness_ms: a revocation seen sooner than half of it came by the watch.
STALENESS_S = 5
# The base64 of `{"alg":`, which every JWT etcd signs starts with.
JWT_HEADER = "eyJhbGciOi"


def stat(replica: Replica, name: str) -> int:
    full = f"wasmcustom.tokengate.fleet.{name}"
    return replica.stats(rf"^{full.replace('.', '[.]')}$").get(full, 0)


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory):
    root = tmp_path_factory.mktemp("etcd-auth")
    keys = root / "jwt"
    keys.mkdir()
    private, public = keys / "private.pem", keys / "public.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-out", str(public)], check=True,
                   capture_output=True)
    token_flag = f"jwt,pub-key={public},priv-key={private},sign-method=RS256,ttl={TOKEN_TTL_S}s"
    cluster = EtcdCluster(root / "data", 3, extra_flags=("--auth-token", token_flag))
    CLUSTERS.append(cluster)
    try:
        cluster.start()
        cluster.enable_password_auth(USER, PASSWORD, PREFIX)
        yield cluster
    finally:
        cluster.stop()
        CLUSTERS.remove(cluster)


@pytest.fixture(scope="module")
def auth_fleet(auth_etcd, upstream, tmp_path_factory):
    with Fleet(auth_etcd, upstream.port, tmp_path_factory.mktemp("fleet-auth"), PREFIX, etcd_user=USER,
               etcd_password=PASSWORD, etcd_token_renewal_ms=RENEWAL_MS) as running:
        yield running


def test_a_token_issued_on_one_replica_works_on_the_other(auth_fleet):
    a, b = auth_fleet.replicas
    for issuer, user in ((a, b), (b, a)) * 3:
        token = issuer.token(grant_type="client_credentials")["access_token"]
        assert user.status(token) == 200
    assert b.status(unseen_token(token)) == 401, "an unknown token is refused after etcd says so"
    assert any(key.startswith(f"{PREFIX}grants/") for key in auth_fleet.keys())
    assert [stat(replica, "etcd_failures") for replica in (a, b)] == [0, 0]


def test_a_revocation_on_one_replica_reaches_the_other_by_the_watch(auth_fleet):
    a, b = auth_fleet.replicas
    for _ in range(5):
        token = a.token(grant_type="client_credentials")["access_token"]
        assert a.status(token) == 200  # a now holds the grant in its cache
        assert b.post("/revoke", {"token": token}).status_code == 200
        revoked_at = time.monotonic()
        assert b.status(token) == 401
        while a.status(token) != 401:
            assert time.monotonic() - revoked_at < STALENESS_S / 2, "the watch never delivered the revocation"


def test_the_replicas_keep_working_past_several_token_lifetimes_without_a_refusal(auth_fleet):
    """The watcher renews the token inside its TTL: not one call in 3 TTLs finds it ended (which
    the workers would survive, one refusal each, so the counter is what tells)."""
    a, b = auth_fleet.replicas
    refusals = [stat(replica, "etcd_token_refusals") for replica in (a, b)]
    watched = [heartbeat(replica) for replica in (a, b)]
    ends = time.monotonic() + 3 * TOKEN_TTL_S + 1
    rounds = 0
    while time.monotonic() < ends:
        issuer, user = (a, b) if rounds % 2 == 0 else (b, a)
        token = issuer.token(grant_type="client_credentials")["access_token"]
        assert user.status(token) == 200
        assert user.post("/revoke", {"token": token}).status_code == 200
        assert issuer.status(unseen_token(token)) == 401
        rounds += 1
        time.sleep(0.2)
    assert rounds > 10
    assert [stat(replica, "etcd_token_refusals") for replica in (a, b)] == refusals
    assert [stat(replica, "etcd_failures") for replica in (a, b)] == [0, 0]
    now_ms = int(time.time() * 1000)
    for replica, before in zip((a, b), watched):
        # The heartbeat's reads carry the token too: they kept being answered.
        assert before < heartbeat(replica) and now_ms - heartbeat(replica) < STALENESS_S * 1000


def test_a_change_of_etcd_roles_under_running_replicas_is_recovered_from(auth_fleet):
    """Any change to etcd's users or roles makes every older token fail with status 3
    ("revision of auth store is old"): the first call to meet it gets a new token and is sent
    again, and the request it serves never sees it."""
    a, b = auth_fleet.replicas
    refusals = sum(stat(replica, "etcd_token_refusals") for replica in (a, b))
    for change in range(3):
        auth_fleet.etcd.etcdctl("role", "grant-permission", USER, "--prefix=true", "read", f"elsewhere-{change}/")
        reply = a.post("/token", {"grant_type": "client_credentials"})
        assert reply.status_code == 200, (change, reply.status_code, reply.text)
        assert b.status(reply.json()["access_token"]) == 200
    assert sum(stat(replica, "etcd_token_refusals") for replica in (a, b)) > refusals, \
        "the old tokens were refused, and recovered from"
    assert [stat(replica, "etcd_failures") for replica in (a, b)] == [0, 0]


def test_a_wrong_password_is_503_and_envoy_keeps_running(auth_fleet, tmp_path):
    issued = auth_fleet.replicas[0].token(grant_type="client_credentials")["access_token"]
    plugin = plugin_config(PREFIX, etcd_user=USER, etcd_password="not-" + PASSWORD, etcd_token_renewal_ms=RENEWAL_MS)
    config = replicas.render(0, 0, [m.client_port for m in auth_fleet.etcd.members], harness.wasm_module(), plugin,
                             auth_fleet.upstream_port)
    started_ms = int(time.time() * 1000)
    with Replica("wrong-password", tmp_path / "wrong-password", config) as refused:
        reply = refused.post("/token", {"grant_type": "client_credentials"})
        assert reply.status_code == 503, (reply.status_code, reply.text)
        assert reply.json()["error"] == "temporarily_unavailable"
        assert refused.status(issued) == 503, "a valid token cannot be checked without etcd"
        assert refused.bearer("x", "/api/public/ping").status_code == 200, "public resources stay up"
        assert heartbeat(refused) < started_ms, "it never watched"
        assert stat(refused, "etcd_failures") > 0
        assert refused.proc.poll() is None, "Envoy still runs"
        # etcd's answer to a wrong password: INVALID_ARGUMENT, "authentication failed".
        said = f"etcd did not authenticate user \"{USER}\" (grpc status 3)"
        deadline = time.monotonic() + 10
        while said not in refused.log():
            assert time.monotonic() < deadline, refused.log()[-3000:]
            time.sleep(0.1)
        assert PASSWORD not in refused.log()
    assert auth_fleet.replicas[1].status(issued) == 200, "the fleet beside it never noticed"


def test_neither_the_password_nor_an_etcd_token_reaches_envoys_log(auth_fleet):
    """Last in the module: the log holds every test above (renewals, refusals, a role change)."""
    for replica in auth_fleet.replicas:
        log = replica.log()
        assert "fleet watcher" in log, "the log is the replica's"
        assert PASSWORD not in log
        assert JWT_HEADER not in log
