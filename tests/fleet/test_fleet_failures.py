"""etcd failing under a running fleet: the documented answers, never a 5xx from a panic.

- One member of three down: no request fails (calls to it are re-sent to another member
  while Envoy's health check takes it out of the rotation).
- Every member down: `/token`, `/revoke` and registration answer 503 temporarily_unavailable
  and write nothing; a token a replica has seen keeps its answer for the staleness window,
  then gets 503, never 401; a token it has not seen gets 503.
- etcd back: the watch resumes by itself and answers are right again.
- The member a replica's watch sits on cut off from the quorum (and behind it): the replica
  stops trusting its cache once the staleness window has passed, though that member still
  answers the watch.
"""

from __future__ import annotations

import concurrent.futures
import time

from etcd_cluster import EtcdCluster
from rig import SHORT_LIVED, Fleet, bucket_of, unseen_token, wait_for_watch

STALENESS_S = 5  # envoy/fleet/envoy.yaml's staleness_ms
RECOVERY_S = 20


def test_one_member_down_fails_no_request(fleet):
    a, b = fleet.replicas
    # The leader, the worst one to lose: the others elect a new one first.
    member = fleet.etcd.leader()
    fleet.etcd.stop_member(member)
    try:
        def one(i: int) -> list[int]:
            replica = (a, b)[i % 2]
            token = replica.post("/token", {"grant_type": "client_credentials"})
            if token.status_code != 200:
                return [token.status_code]
            access = token.json()["access_token"]
            return [200, (b, a)[i % 2].status(access)]

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            statuses = [s for pair in pool.map(one, range(120)) for s in pair]
        assert set(statuses) == {200}, sorted(set(statuses))
    finally:
        fleet.etcd.start_member(member)


def test_etcd_away_gives_the_documented_503s_and_recovers(fleet):
    a, b = fleet.replicas
    for replica in (a, b):
        wait_for_watch(replica)  # both caches current when etcd goes
    seen = a.token(grant_type="client_credentials")["access_token"]
    assert a.status(seen) == 200 and b.status(seen) == 200
    log_offsets = [replica.log_size() for replica in (a, b)]
    for member in fleet.etcd.members:
        fleet.etcd.stop_member(member)
    try:
        down_at = time.monotonic()
        for replica in (a, b):
            assert replica.status(seen) == 200, "a seen token keeps its answer inside the staleness window"
        assert time.monotonic() - down_at < STALENESS_S, "the checks above took the whole window"
        for replica in (a, b):
            token = replica.post("/token", {"grant_type": "client_credentials"})
            assert token.status_code == 503 and token.json()["error"] == "temporarily_unavailable"
            revoke = replica.post("/revoke", {"token": seen})
            assert revoke.status_code == 503
            assert replica.status(unseen_token(seen)) == 503, "an unseen token is not called invalid"
        time.sleep(max(0.0, STALENESS_S + 1.5 - (time.monotonic() - down_at)))
        for replica in (a, b):
            assert replica.status(seen) == 503, "past the window: 503, never 401"
            assert replica.bearer("x", "/api/public/ping").status_code == 200, "public resources stay up"
    finally:
        fleet.etcd.start()
    for replica in (a, b):
        deadline = time.monotonic() + RECOVERY_S
        while replica.status(seen) != 200:
            assert time.monotonic() < deadline, f"{replica.name} did not recover"
            time.sleep(0.2)
        wait_for_watch(replica)
        # The revocation refused while etcd was away was not half-done: the token still works,
        # and revoking it now reaches the other replica.
    assert a.post("/revoke", {"token": seen}).status_code == 200
    deadline = time.monotonic() + 5
    while b.status(seen) != 401:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for replica, offset in zip((a, b), log_offsets):
        log = replica.log(offset)
        for sign in ("panicked", "Wasm VM failed", "Function: proxy_on", "wasm trap"):
            assert sign not in log, f"{replica.name}: {sign}"


def test_an_expired_grant_leaves_etcd_with_its_lease(fleet):
    a, _ = fleet.replicas
    short = (SHORT_LIVED["consumer_key"], SHORT_LIVED["consumer_secret"])
    token = a.token(short, grant_type="client_credentials")["access_token"]
    key = f"{fleet.prefix}grants/{bucket_of(token)}"
    assert key in fleet.keys()
    # Valid 2 s; its lease ends the bucket 10 to 20 s after (if nothing else lives in it). etcd
    # restarts a lease's countdown whenever leadership changes, so allow for one election.
    deadline = time.monotonic() + 60
    while key in fleet.keys():
        assert time.monotonic() < deadline, "the lease did not end the bucket"
        time.sleep(1)
    assert a.status(token) == 401


def test_etcd_down_from_the_very_start(upstream, tmp_path):
    """Envoys that start before any etcd member: the watcher's stream cannot open (a host
    call that once panicked in the SDK), requests get 503, and everything comes right once
    etcd starts."""
    cluster = EtcdCluster(tmp_path / "etcd", 3)
    with Fleet(cluster, upstream.port, tmp_path / "fleet", "test-down-from-start/") as late:
        a, b = late.replicas
        for replica in (a, b):
            reply = replica.post("/token", {"grant_type": "client_credentials"})
            assert reply.status_code == 503 and reply.json()["error"] == "temporarily_unavailable"
            # A replica that has never reached etcd (nor recorded its config there) still
            # serves a public resource, which needs nothing of etcd's.
            assert replica.bearer("x", "/api/public/ping").status_code == 200
        try:
            cluster.start()
            for replica in (a, b):
                wait_for_watch(replica, timeout=30)
            token = a.token(grant_type="client_credentials")["access_token"]
            assert b.status(token) == 200
        finally:
            cluster.stop()
        for replica in (a, b):
            for sign in ("panicked", "Wasm VM failed", "wasm trap"):
                assert sign not in replica.log(), f"{replica.name}: {sign}"


def test_a_watch_on_a_member_cut_off_from_the_quorum_keeps_no_revoked_token_alive(
        partitionable_etcd, upstream, tmp_path):
    """etcd answers a watch's progress requests from the member's own store, without asking the
    quorum, so a member partitioned away from its peers still says the watch is current while
    the fleet moves on. Replica A's etcd cluster is that one member; B revokes A's token through
    the other two. Once A's staleness window has passed, A must ask etcd about the token (503:
    its member cannot answer linearizably; 401 would be right too), never answer it with 200.

    (A member stopped with SIGSTOP would not do: it answers nothing, so the watch goes silent,
    and on SIGCONT it reads the raft messages its sockets buffered and learns the revocation.)"""
    etcd = partitionable_etcd
    leader = etcd.leader()
    cut_off = next(member for member in etcd.members if member is not leader)
    quorum = [member for member in etcd.members if member is not cut_off]
    with Fleet(etcd, upstream.port, tmp_path / "fleet", "test-cut-off-member/",
               members=[[cut_off], quorum]) as partitioned:
        a, b = partitioned.replicas
        token = a.token(grant_type="client_credentials")["access_token"]
        assert a.status(token) == 200 and b.status(token) == 200
        wait_for_watch(a)
        etcd.isolate(cut_off)
        isolated_at = time.monotonic()
        assert b.post("/revoke", {"token": token}).status_code == 200
        assert b.status(token) == 401
        time.sleep(max(0.0, STALENESS_S + 1.5 - (time.monotonic() - isolated_at)))
        statuses = []
        while time.monotonic() - isolated_at < STALENESS_S + 5:
            statuses.append(a.status(token))
            time.sleep(0.2)
        assert statuses and 200 not in statuses, statuses
