"""Credential changes through Envoy's file-based dynamic configuration.

Envoy runs envoy/dynamic/envoy.yaml: its listener, with the tokengate filter
and so the applications and users, comes from an LDS file. The test issues
tokens, then renames a new LDS file into place (written next to it first, as
Envoy requires) in which demo-app's secret and the admin's password changed
and one application is gone. Once Envoy reports the update applied, with the
same process still running, tokens issued under the old credentials answer
401 invalid_token on fresh connections (and so on new wasm contexts of every
worker), while tokens of everything unchanged keep working: the token store
is shared data, which outlives the old listener's plugin and VMs.
"""

import contextlib
import copy
import json
import time

import pytest
import requests

import harness
from client import (
    ADMIN, CC, FULL_SCOPE, Expect, Req, basic, client_token, form, forwarded, invalid_client, invalid_token,
    on_every_worker, orders_call, password_grant, post_token, refresh, send, token_error, token_req, token_success,
)

KEEP_APP = ("keep-app", "keep-secret")  # unchanged by the update
GONE_APP = ("gone-app", "gone-secret")  # removed by the update
ORDERS_SERVICE = ("orders-service", "orders-service-secret")  # unchanged resource server
ALICE = ("alice", "alice-password")  # an unchanged user
NEW_DEMO_SECRET = "demo-secret-rotated"
NEW_ADMIN_PASSWORD = "admin-rotated"
REGISTER = "/client-registration/v0.17/register"

ALL_GRANTS = ["client_credentials", "password", "refresh_token"]
BEFORE = harness.demo_plugin_config()
BEFORE["applications"] += [
    {"consumer_key": KEEP_APP[0], "consumer_secret": KEEP_APP[1], "grant_types": ALL_GRANTS,
     "scopes": ["orders:read", "orders:write"]},
    {"consumer_key": GONE_APP[0], "consumer_secret": GONE_APP[1], "scopes": ["orders:read", "orders:write"]},
]
BEFORE["users"].append({"username": ALICE[0], "password": ALICE[1], "scopes": ["orders:read", "orders:write"]})


def after_rotation() -> dict:
    cfg = copy.deepcopy(BEFORE)
    apps = {app["consumer_key"]: app for app in cfg["applications"]}
    apps["demo-app"]["consumer_secret"] = NEW_DEMO_SECRET
    cfg["applications"] = [app for key, app in apps.items() if key != GONE_APP[0]]
    (admin,) = [user for user in cfg["users"] if user["username"] == "admin"]
    admin["password"] = NEW_ADMIN_PASSWORD
    return cfg


AFTER = after_rotation()


@pytest.fixture
def dynamic_gateway(upstream, tmp_path):
    """A running Envoy whose listener comes from an LDS file in tmp_path."""
    with contextlib.ExitStack() as stack:
        yield lambda plugin_config, name="dynamic": stack.enter_context(
            harness.DynamicGateway(name, tmp_path / name, plugin_config, upstream.port))


def introspect(token: str) -> Req:
    return token_req(form(token=token), ORDERS_SERVICE, path="/introspect")


def register(gw, name: str, admin=ADMIN) -> tuple[str, str]:
    req = Req("POST", REGISTER, {"Authorization": basic(*admin), "Content-Type": "application/json"},
              json.dumps({"clientName": name, "grantType": "client_credentials"}))
    data = Expect(201, body={}).check(send(gw, req))
    return data["clientId"], data["clientSecret"]


def issue_everything(gw) -> dict:
    """One token (or grant) per way a credential change can touch it."""
    demo_cc = client_token(gw)
    registered = register(gw, "survives-reload")
    return {
        "demo_cc": demo_cc,  # demo-app's secret changes
        "demo_alice": password_grant(gw, ALICE),  # ditto, though alice is unchanged
        "gone_cc": client_token(gw, GONE_APP),  # gone-app is removed
        "keep_admin": password_grant(gw, ADMIN, KEEP_APP),  # the admin's password changes
        "keep_cc": client_token(gw, KEEP_APP),  # unchanged
        "keep_alice": password_grant(gw, ALICE, KEEP_APP),  # unchanged
        "service_cc": Expect(200, body={}).check(
            send(gw, token_req("grant_type=client_credentials", ORDERS_SERVICE)))["access_token"],  # unchanged
        "registered": registered,
        "registered_cc": client_token(gw, registered),  # registered apps live in shared data too
    }


def access(value) -> str:
    return value["access_token"] if isinstance(value, dict) else value


DEAD = ("demo_cc", "demo_alice", "gone_cc", "keep_admin")
# orders-service has no scopes: its valid token gets 403 insufficient_scope.
NO_SCOPE = Expect(403, {"WWW-Authenticate": lambda value: 'error="insufficient_scope"' in value})
ALIVE = {"keep_cc": forwarded, "keep_alice": forwarded, "service_cc": NO_SCOPE, "registered_cc": forwarded}
INACTIVE = Expect(200, body={"active": False}, exact=True)


def test_credential_changes_through_lds_end_old_tokens(dynamic_gateway):
    gw = dynamic_gateway(BEFORE)
    issued = issue_everything(gw)
    for name in DEAD:
        on_every_worker(gw, orders_call(access(issued[name])), forwarded, per_worker=1)
    for name, works in ALIVE.items():
        on_every_worker(gw, orders_call(access(issued[name])), works, per_worker=1)
    pid = gw.proc.pid

    gw.update(AFTER)

    assert gw.proc.poll() is None and gw.proc.pid == pid, "Envoy restarted"
    assert gw.stats(r"^listener_manager\.lds\.version_text$") == {"listener_manager.lds.version_text": "2"}
    # Access tokens: the old credentials' are dead everywhere, the others live.
    for name in DEAD:
        on_every_worker(gw, orders_call(access(issued[name])), invalid_token())
        INACTIVE.check(send(gw, introspect(access(issued[name]))))
    for name, works in ALIVE.items():
        on_every_worker(gw, orders_call(access(issued[name])), works, per_worker=1)
        Expect(200, body={"active": True}).check(send(gw, introspect(access(issued[name]))))
    # Refresh tokens follow their grant.
    for name, auth in [("demo_alice", ("demo-app", NEW_DEMO_SECRET)), ("keep_admin", KEEP_APP)]:
        token_error(400, "invalid_grant").check(refresh(gw, issued[name]["refresh_token"], auth))
    token_success(FULL_SCOPE, refresh=True).check(refresh(gw, issued["keep_alice"]["refresh_token"], KEEP_APP))

    # The /token side of the same change.
    cc = "grant_type=client_credentials"
    invalid_client().check(post_token(gw, cc, ("demo-app", "demo-secret")))
    invalid_client().check(post_token(gw, cc, GONE_APP))
    client_token(gw, ("demo-app", NEW_DEMO_SECRET))
    token_error(400, "invalid_grant").check(post_token(gw, form(grant_type="password", username="admin",
                                                                password="admin"), KEEP_APP))
    password_grant(gw, ("admin", NEW_ADMIN_PASSWORD), KEEP_APP)
    # Registration follows the admin's new password.
    invalid_client().check(send(gw, Req("POST", REGISTER, {"Authorization": basic(*ADMIN),
                                                           "Content-Type": "application/json"}, "{}")))
    register(gw, "after-reload", ("admin", NEW_ADMIN_PASSWORD))
    client_token(gw, issued["registered"])


# Restoring a config exactly may let Envoy reuse the earlier plugin without
# calling on_configure; its VMs then see the recorded credential changes on
# their next timer tick (src/state/credential_changes.rs). One tick is a second; allow two.
STALE_VIEW_S = 2


def test_restoring_old_credentials_does_not_revive_tokens(dynamic_gateway):
    """Rotating a leaked secret and then rolling the config back (or removing
    an application and adding it again later) must not bring back tokens the
    change ended, even though the old credentials work again for new tokens."""
    gw = dynamic_gateway(BEFORE)
    ended = {"demo-app": client_token(gw), "gone-app": client_token(gw, GONE_APP)}
    gw.update(AFTER)
    for token in ended.values():
        on_every_worker(gw, orders_call(token), invalid_token())
    gw.update(BEFORE)
    time.sleep(STALE_VIEW_S)
    fresh = {"demo-app": client_token(gw), "gone-app": client_token(gw, GONE_APP)}
    for app, token in ended.items():
        on_every_worker(gw, orders_call(token), invalid_token())
        INACTIVE.check(send(gw, introspect(token)))
        on_every_worker(gw, orders_call(fresh[app]), forwarded, per_worker=1)


def local_port(resp: requests.Response) -> int:
    """The local port of the connection an answer came through. After an answer that says
    `connection: close`, http.client lets go of the socket, which the unread answer still
    reads from."""
    sock = resp.raw.connection.sock if resp.raw.connection else None
    if sock is None:
        sock = resp.raw._fp.fp.raw._sock
    return sock.getsockname()[1]


class KeptConnections:
    """Keep-alive connections, opened before a reload: Envoy keeps serving them with the old
    filter chain, and so the old config's VMs, until it drains them (600 s by default,
    `--drain-time-s`). With the default gradual drain strategy Envoy ends each connection at a
    moment of its choosing within that time, by answering one request with `connection:
    close` (that answer still comes from the old chain); so several are opened, and each
    request goes on the first one still open. Every answer must come through the socket its
    connection opened before the reload: none was silently opened anew (on the new chain)."""

    def __init__(self, gw, count: int = 8) -> None:
        self.gw = gw
        self.sessions = [requests.Session() for _ in range(count)]
        for session in self.sessions:
            session.headers.clear()
        self.ports: list[int | None] = [None] * count
        self.closed = [False] * count

    def _send_on(self, at: int, req: Req) -> requests.Response:
        body = req.body.encode() if isinstance(req.body, str) else req.body
        resp = self.sessions[at].request(req.method, self.gw.url(req.path), headers=req.headers, data=body,
                                         timeout=10, stream=True)
        port = local_port(resp)
        resp.content  # read to the end, so the connection goes back to the session's pool
        if self.ports[at] is None:
            self.ports[at] = port
        assert port == self.ports[at], "a kept connection was closed and opened anew"
        self.closed[at] = resp.headers.get("connection", "").lower() == "close"
        return resp

    def open_all(self, req: Req) -> list[requests.Response]:
        """Opens every connection with `req`, before the reload."""
        return [self._send_on(at, req) for at in range(len(self.sessions))]

    def send(self, req: Req) -> requests.Response:
        still_open = [at for at, closed in enumerate(self.closed) if not closed]
        assert still_open, "Envoy closed every kept connection"
        return self._send_on(still_open[0], req)

    def close(self) -> None:
        for session in self.sessions:
            session.close()


def test_a_connection_opened_before_a_rotation_loses_the_old_credentials(dynamic_gateway):
    """A rotated secret must stop working everywhere, also on keep-alive connections that the
    old filter chain still serves: their VMs learn from the shared credential record, within a
    timer tick, that demo-app's secret and the admin's password changed after their own config
    was loaded. The old secret and password are refused there, and so are the tokens minted
    under them."""
    gw = dynamic_gateway(BEFORE)
    kept = KeptConnections(gw)
    try:
        old_token = client_token(gw)
        for resp in kept.open_all(orders_call(old_token)):
            forwarded(resp)
        gw.update(AFTER)
        deadline = time.monotonic() + STALE_VIEW_S
        while (status := kept.send(token_req(CC)).status_code) == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 401, f"the old secret still gets tokens {STALE_VIEW_S} s after the rotation"
        invalid_client().check(kept.send(token_req(CC)))
        invalid_token().check(kept.send(orders_call(old_token)))
        token_error(400, "invalid_grant").check(
            kept.send(token_req(form(grant_type="password", username="admin", password="admin"), KEEP_APP)))
        # What the rotation left alone still works on the old connections.
        kept_token = Expect(200, body={}).check(kept.send(token_req(CC, KEEP_APP)))["access_token"]
        forwarded(kept.send(orders_call(kept_token)))
    finally:
        kept.close()
    client_token(gw, ("demo-app", NEW_DEMO_SECRET))


def test_rejected_update_keeps_the_running_configuration(dynamic_gateway):
    """An invalid plugin config in a new LDS file is refused (the log says
    why, without the secret), and the running listener keeps serving its
    tokens and credentials."""
    gw = dynamic_gateway(BEFORE)
    token = client_token(gw)
    broken = copy.deepcopy(AFTER)
    broken["applications"][0]["consumer_secret"] = "leak-me-not-4c1d"
    broken["applications"][0]["grant_types"] = ["implicit"]
    with pytest.raises(harness.ListenerUpdateError):
        gw.update(broken, timeout=15)
    assert "applications[0].grant_types[0]" in gw.log()
    assert "leak-me-not-4c1d" not in gw.log()
    on_every_worker(gw, orders_call(token), forwarded, per_worker=1)
    client_token(gw)  # demo-app's old secret still works


def test_lowering_the_registry_capacity_below_its_applications_is_refused(dynamic_gateway):
    """Registered applications cannot be issued again, so 1024 → 64 → 1024 must not lose them. An update whose smaller
    registry would drop some is refused, and every registered application keeps working."""
    gw = dynamic_gateway(BEFORE)
    registered = [register(gw, f"app-{i}") for i in range(50)]
    smaller = copy.deepcopy(BEFORE)
    smaller["registration"]["capacity"] = 64
    with pytest.raises(harness.ListenerUpdateError):
        gw.update(smaller, timeout=15)
    assert "registration.capacity is lower than before" in gw.log()
    for app in registered:
        client_token(gw, app)
