"""envoy/fleet/docker-compose.yaml run for real: a 3-member etcd cluster and two replicas in
containers, driven as docs/fleet.md's session: a token from one replica works on the other,
and a revocation on one is seen by the other."""

from __future__ import annotations

import rig

REPLICA_1 = "http://127.0.0.1:8080"
REPLICA_2 = "http://127.0.0.1:8090"
REPLICA_2_TLS = "https://127.0.0.1:8253"
# The plugin configuration's fleet.staleness_ms (envoy/fleet/envoy.yaml): past it, a replica
# asks etcd before it answers a Bearer check, whatever its watch has delivered.
STALENESS_S = 5


def test_a_token_from_one_replica_works_and_dies_on_the_other(fleet):
    fleet.wait_until_serving([REPLICA_1, REPLICA_2])
    issued = rig.token(REPLICA_1, grant_type="password", username="admin", password="admin", scope="orders:read")
    assert issued.status_code == 200, issued.text
    access_token = issued.json()["access_token"]
    # Replica 2 never saw the token issued: it learns it from etcd.
    for listener in (REPLICA_2, REPLICA_2_TLS):
        called = rig.bearer(listener, access_token)
        assert called.status_code == 200, called.text
        assert called.json()["headers"]["x-tokengate-username"] == "admin"
    refused = rig.bearer(REPLICA_2, access_token, method="POST", path="/api/orders")
    assert refused.status_code == 403
    # Revoked on replica 2, refused by replica 1 (which has the token in its cache) once the
    # watch brings the change, within the staleness window at the latest.
    assert rig.revoke(REPLICA_2, access_token).status_code == 200
    after = rig.refused_within(REPLICA_1, access_token, STALENESS_S + 2)
    assert after.status_code == 401, after.text
    assert 'error="invalid_token"' in after.headers["www-authenticate"]

