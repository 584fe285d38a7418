"""Fleet mode with two real Envoys (2 workers each) and a real 3-member etcd cluster: what one
replica does, the other sees (RFC 6749, 7009 and 7662 behaviour unchanged), and tokens
outlive the Envoys."""

from __future__ import annotations

import concurrent.futures
import copy
import re
import time
import urllib.parse

import requests

from rig import (ADMIN, REGISTER, Fleet, heartbeat, percentile, plugin_config, record, unseen_token,
                 wait_for_watch)

TRIALS = 30


def test_a_token_issued_on_one_replica_works_on_the_other_at_once(fleet):
    a, b = fleet.replicas
    for _ in range(10):
        token = a.token(grant_type="client_credentials")["access_token"]
        # The very next request, on a fresh connection to the other Envoy (either worker).
        assert b.status(token) == 200
        assert a.status(token) == 200
    assert b.status(unseen_token(token)) == 401


def test_every_replica_refuses_a_revoked_token_within_a_bounded_delay(fleet):
    a, b = fleet.replicas
    delays_ms = []
    for _ in range(TRIALS):
        token = a.token(grant_type="client_credentials")["access_token"]
        assert a.status(token) == 200  # a's cache now holds the grant
        assert b.post("/revoke", {"token": token}).status_code == 200
        revoked_at = time.monotonic()
        assert b.status(token) == 401, "the revoking replica refuses it at once"
        while a.status(token) != 401:
            assert time.monotonic() - revoked_at < 5, "a never heard of the revocation"
        delays_ms.append((time.monotonic() - revoked_at) * 1000)
    record("propagation", {
        "trials": TRIALS,
        "p50_ms": round(percentile(delays_ms, 0.5), 1),
        "p99_ms": round(percentile(delays_ms, 0.99), 1),
        "max_ms": round(max(delays_ms), 1),
    })


def status_and_worker(replica, token: str) -> tuple[int, int]:
    """A Bearer request on a fresh connection, and which of the replica's workers took it."""
    before = replica.worker_connections()
    status = replica.status(token)
    after = replica.worker_connections()
    moved = [worker for worker, (now, then) in enumerate(zip(after, before)) if now != then]
    assert len(moved) == 1, (before, after)
    return status, moved[0]


def test_every_worker_forgets_a_remembered_token_at_its_next_request_after_the_watch(fleet):
    """Each worker answers a token it validated from its memory, trusted while the Envoy's token
    epoch stands; the watch moves it when it applies another replica's revocation. Once the
    watch has delivered (the heartbeat is stamped by a quorum read sent after the revocation,
    which the watch has reached), the very next request on each worker is refused."""
    a, b = fleet.replicas
    token = a.token(grant_type="client_credentials")["access_token"]
    served = [0] * len(a.worker_connections())
    for _ in range(200):
        if min(served) >= 2:
            break
        status, worker = status_and_worker(a, token)
        assert status == 200
        served[worker] += 1
    assert min(served) >= 2, f"the requests did not reach every worker twice: {served}"
    assert b.post("/revoke", {"token": token}).status_code == 200
    revoked_at_ms = time.time() * 1000
    deadline = time.monotonic() + 5
    while heartbeat(a) < revoked_at_ms:
        assert time.monotonic() < deadline, "a's watch never reached the revocation"
        time.sleep(0.01)
    first = {}
    for _ in range(200):
        if len(first) == len(served):
            break
        status, worker = status_and_worker(a, token)
        first.setdefault(worker, status)
    assert first == {worker: 401 for worker in range(len(served))}, first


def token_epoch(replica) -> int:
    return replica.stats(r"^wasmcustom\.tokengate\.token_epoch$").get("wasmcustom.tokengate.token_epoch", 0)


def wait_for_watch_past(replica, since_ms: float) -> None:
    """Until the replica's heartbeat is stamped by a quorum read sent after `since_ms`, which its
    watch has reached: every change committed before then is in its cache."""
    deadline = time.monotonic() + 5
    while heartbeat(replica) < since_ms:
        assert time.monotonic() < deadline, "the watch never reached the change"
        time.sleep(0.01)


def test_tokens_issued_anywhere_leave_every_workers_memory_and_a_revocation_does_not(fleet):
    """The token epoch moves only for a change that may end or alter a token a worker
    remembers: tokens issued on either replica (the other's through its watch, this one's
    own write echoed back) keep it; a revocation on the other replica moves it."""
    a, b = fleet.replicas
    revoked = b.token(grant_type="client_credentials")["access_token"]
    wait_for_watch_past(a, time.time() * 1000)
    before = token_epoch(a)
    for replica in (a, b, a, b):
        replica.token(grant_type="client_credentials")
    wait_for_watch_past(a, time.time() * 1000)
    assert token_epoch(a) == before, "issued tokens moved the epoch"
    assert b.post("/revoke", {"token": revoked}).status_code == 200
    wait_for_watch_past(a, time.time() * 1000)
    assert token_epoch(a) > before, "the revocation did not move it"


def test_refresh_rotation_is_exactly_once_across_the_fleet(fleet):
    a, b = fleet.replicas
    issued = a.token(grant_type="password", username="admin", password="admin")
    form = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        replies = list(pool.map(lambda i: (a, b)[i % 2].post("/token", form), range(32)))
    statuses = sorted(reply.status_code for reply in replies)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) == {200, 400}, statuses
    assert all(r.json()["error"] == "invalid_grant" for r in replies if r.status_code == 400)
    winner = next(r.json() for r in replies if r.status_code == 200)
    # No reuse grace by default (RFC 9700 §4.14.2): the losers' reuse ended the grant everywhere.
    for replica in (a, b):
        wait_until(lambda: replica.status(winner["access_token"]) == 401, event="concurrent refresh reuse")
        assert replica.status(issued["access_token"]) == 401


def test_reusing_a_rotated_refresh_token_revokes_the_grant_on_every_replica(fleet):
    a, b = fleet.replicas
    issued = a.token(grant_type="password", username="admin", password="admin")
    rotated = b.token(grant_type="refresh_token", refresh_token=issued["refresh_token"])
    # Past the reuse grace the old refresh token is reuse, wherever it is presented.
    time.sleep(fleet.plugin.get("refresh_token_reuse_grace_ms", 0) / 1000 + 0.5)
    reuse = a.post("/token", {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    for replica in (a, b):
        wait_until(lambda: replica.status(rotated["access_token"]) == 401, event="refresh reuse")
    assert b.post("/token", {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}).status_code == 400


def register(replica, request: str) -> tuple[str, str]:
    """Registers an application (WSO2 v0.17) on `replica` as the admin: its key and secret."""
    created = replica.post(REGISTER, request, ADMIN, **{"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    return created.json()["clientId"], created.json()["clientSecret"]


def test_registration_re_key_and_delete_reach_every_replica(fleet):
    a, b = fleet.replicas
    app = register(a, '{"clientName": "fleet-shop", "owner": "admin", "grantType": "client_credentials"}')
    token = b.token(app, grant_type="client_credentials")["access_token"]
    assert a.status(token) == 200

    rekeyed = b.post(f"{REGISTER}/{app[0]}/secret", "", ADMIN)
    assert rekeyed.status_code == 200, rekeyed.text
    new_app = (app[0], rekeyed.json()["clientSecret"])
    wait_until(lambda: a.status(token) == 401, event="registration re-key")
    assert a.post("/token", {"grant_type": "client_credentials"}, app).status_code == 401
    fresh = a.token(new_app, grant_type="client_credentials")["access_token"]

    gone = requests.delete(a.url(f"{REGISTER}/{app[0]}"), auth=ADMIN, headers={"Connection": "close"}, timeout=10)
    assert gone.status_code == 204
    wait_until(lambda: b.status(fresh) == 401, event="registration delete")
    assert b.post("/token", {"grant_type": "client_credentials"}, new_app).status_code == 401


def test_a_fresh_replicas_first_registrations_are_answered_at_once(etcd, upstream, tmp_path):
    """Each worker of a replica that has just started carries the credential-change record in
    its passes until one holds (docs/fleet.md); an admin with a quota (registration.max_per_owner)
    has every registry bucket compared, 128 at the default capacity, and etcd refuses a Txn of
    more than 128 compares (its default --max-txn-ops). Every worker's first registrations, on
    both replicas, are 201 at once: no retry, no etcd failure."""
    with Fleet(etcd, upstream.port, tmp_path, "test-fresh-registrations/") as fresh:
        for replica in fresh.replicas:
            before = replica.worker_connections()
            served = [0] * len(before)
            for n in range(20):
                body = f'{{"clientName": "fresh-{replica.name}-{n}", "grantType": "client_credentials"}}'
                created = replica.post(REGISTER, body, ADMIN, **{"Content-Type": "application/json"})
                assert created.status_code == 201, (replica.name, n, created.text)
                served = [now - then for now, then in zip(replica.worker_connections(), before)]
                if min(served) >= 2:
                    break
            assert min(served) >= 2, f"{replica.name}: its registrations did not reach every worker: {served}"
            assert replica.stats(r"fleet\.etcd_failures$") == {"wasmcustom.tokengate.fleet.etcd_failures": 0}


def test_a_subscription_made_on_one_replica_is_effective_on_the_other(fleet):
    a, b = fleet.replicas
    app = register(a, '{"clientName": "fleet-subscriber", "grantType": "client_credentials"}')
    token = b.token(app, grant_type="client_credentials")["access_token"]
    assert b.bearer(token, "/orders/1.0.0/items").json()["error"] == "subscription_required"
    subscriptions = a.url(f"{REGISTER}/{app[0]}/subscriptions")
    made = requests.post(subscriptions, json={"api": "Orders", "tier": "Gold"}, auth=ADMIN, timeout=10,
                         headers={"Connection": "close"})
    assert made.status_code == 201, made.text
    wait_until(lambda: b.bearer(token, "/orders/1.0.0/items").status_code == 200)
    assert b.bearer(token, "/orders/1.0.0/items").json()["headers"]["x-tokengate-tier"] == "Gold"
    blocked = requests.put(f"{subscriptions}/Orders", json={"status": "BLOCKED"}, auth=ADMIN, timeout=10,
                           headers={"Connection": "close"})
    assert blocked.status_code == 200, blocked.text
    wait_until(lambda: b.bearer(token, "/orders/1.0.0/items").status_code == 403)
    assert b.bearer(token, "/orders/1.0.0/items").json()["error"] == "subscription_blocked"


def test_tokens_survive_an_envoy_restart(fleet):
    a, b = fleet.replicas
    token = a.token(grant_type="client_credentials")["access_token"]
    refresh = a.token(grant_type="password", username="admin", password="admin")["refresh_token"]
    restarted = fleet.restart(0)
    wait_for_watch(restarted)
    assert restarted.status(token) == 200
    assert b.status(token) == 200
    assert restarted.post("/token", {"grant_type": "refresh_token", "refresh_token": refresh}).status_code == 200


def test_a_secret_rolled_back_across_restarts_does_not_revive_the_tokens_its_change_ended(
        etcd, upstream, tmp_path):
    """A token ended by a secret change stays ended when a later config restores the old
    secret, though every replica restarted (empty shared data) in between: the record of
    when the secret changed lives in etcd with the grants."""
    prefix = "test-rollback/"
    first = plugin_config(prefix)
    first["applications"].append({"consumer_key": "rolled", "consumer_secret": "first-secret",
                                  "grant_types": ["client_credentials"], "scopes": ["orders:read"]})
    second = copy.deepcopy(first)
    second["applications"][-1]["consumer_secret"] = "second-secret"
    with Fleet(etcd, upstream.port, tmp_path, prefix, plugin=first) as fleet:
        token = fleet.replicas[0].token(("rolled", "first-secret"), grant_type="client_credentials")
        assert [replica.status(token["access_token"]) for replica in fleet.replicas] == [200, 200]
        for config, name in ((second, "the new secret"), (first, "the old secret again")):
            for index in range(len(fleet.replicas)):
                fleet.restart(index, config)
            for replica in fleet.replicas:
                wait_for_watch(replica)
            statuses = [replica.status(token["access_token"]) for replica in fleet.replicas]
            assert statuses == [401, 401], f"under {name}: {statuses}"
        fresh = fleet.replicas[1].token(("rolled", "first-secret"), grant_type="client_credentials")
        assert [replica.status(fresh["access_token"]) for replica in fleet.replicas] == [200, 200]


def test_introspection_on_one_replica_sees_tokens_of_the_other(fleet):
    a, b = fleet.replicas
    token = a.token(grant_type="client_credentials")["access_token"]
    seen = b.post("/introspect", {"token": token}, ("orders-service", "orders-service-secret"))
    assert seen.status_code == 200 and seen.json()["active"] is True
    assert b.post("/revoke", {"token": token}).status_code == 200
    gone = a.post("/introspect", {"token": token}, ("orders-service", "orders-service-secret"))
    assert gone.json() == {"active": False}


DELAYS_MS: dict[str, list[float]] = {}


def wait_until(condition, timeout: float = 10, event: str = "") -> None:
    """Polls `condition` until it holds; with `event`, the time it took is kept for the record."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "not within the staleness window"
        time.sleep(0.005)
    if event:
        DELAYS_MS.setdefault(event, []).append(round((time.monotonic() - start) * 1000, 1))


SPA_CALLBACK = "http://127.0.0.1:8080/console/callback"
PKCE_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
PKCE_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_sign_in_started_on_one_replica_finishes_on_the_other(fleet):
    """The code flow's tables live in etcd: the login page from replica 1, its form posted to
    replica 2, the code redeemed on replica 1, the token used on replica 2; the code replayed
    on replica 2 revokes the tokens on both."""
    a, b = fleet.replicas
    page = requests.get(a.url("/authorize"), timeout=10, allow_redirects=False, headers={"Connection": "close"},
                        params={"response_type": "code", "client_id": "demo-spa", "redirect_uri": SPA_CALLBACK,
                                "state": "fleet-state", "code_challenge": PKCE_CHALLENGE,
                                "code_challenge_method": "S256"})
    assert page.status_code == 200, page.text
    handle = re.search(r'name="handle" value="([^"]+)"', page.text).group(1)
    form = {"handle": handle, "username": ADMIN[0], "password": ADMIN[1]}
    back = requests.post(b.url("/authorize"), data=form, timeout=10, allow_redirects=False,
                         headers={"Connection": "close"})
    assert back.status_code == 302, back.text
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back.headers["Location"]).query))
    assert query["state"] == "fleet-state"
    again = requests.post(a.url("/authorize"), data=form, timeout=10, allow_redirects=False,
                          headers={"Connection": "close"})
    assert again.status_code == 400, "the handle is spent fleet-wide"
    redeem = {"grant_type": "authorization_code", "client_id": "demo-spa", "code": query["code"],
              "redirect_uri": SPA_CALLBACK, "code_verifier": PKCE_VERIFIER}
    tokens = a.post("/token", redeem, auth=None)
    assert tokens.status_code == 200, tokens.text
    access = tokens.json()["access_token"]
    assert b.status(access) == 200
    assert a.status(access) == 200
    replay = b.post("/token", redeem, auth=None)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert b.status(access) == 401
    replayed_at = time.monotonic()
    while a.status(access) != 401:
        assert time.monotonic() - replayed_at < 5, "replica 1 never heard of the revocation"


def test_zz_record_the_other_propagation_delays():
    """Runs last in this module: what the other tests measured."""
    assert DELAYS_MS, "the tests above recorded nothing"
    record("propagation_events", DELAYS_MS)


def test_token_and_revoke_answer_a_registered_origin_with_cors(fleet):
    """A browser app (the console's Sign in, oauth4webapi) reaches a fleet as it reaches one
    Envoy: the same endpoint answer, CORS headers included."""
    a, _ = fleet.replicas
    origin = "http://127.0.0.1:8080"  # demo-spa's redirect URI's origin
    for path in ("/token", "/revoke"):
        preflight = requests.options(a.url(path), timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST", "Connection": "close"})
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == origin
        post = a.post(path, {"grant_type": "client_credentials", "token": "x"}, Origin=origin)
        assert post.headers.get("Access-Control-Allow-Origin") == origin, (path, post.headers)
        refused = a.post(path, {"grant_type": "client_credentials", "token": "x"}, Origin="https://evil.example")
        assert "Access-Control-Allow-Origin" not in refused.headers
