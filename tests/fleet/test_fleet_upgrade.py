"""Two module builds at once: the previous release's module (`make previous-release`, pinned as
PREVIOUS_RELEASE in the Makefile) and the module under test, as two replicas on one etcd and as
an in-place module swap in one Envoy. A rolling upgrade and a rollback lose no grant, no sandbox
key type and no registered subscription (docs/upgrading.md).

The test also shows exactly what each build keeps of what a newer module wrote (a field
appended to a grant record, a record of a kind the reader does not know): the module under
test carries both through a rewrite of their bucket; the previous release, which predates that
guarantee, drops them when it rewrites the bucket, though never the grant itself."""

from __future__ import annotations

import base64
import copy
import contextlib
import os
import time
from pathlib import Path

import pytest
import requests

import harness
from rig import ADMIN, DEMO, ORDERS_API, REGISTER, Fleet, bucket_of, plugin_config, wait_for_watch

PREVIOUS = Path(os.environ.get("PREVIOUS_WASM") or harness.REPO / "target" / "previous" / "ab65911.wasm")
SANDBOX = ("demo-app-sandbox", "demo-sandbox-secret")
INTROSPECTOR = ("orders-service", "orders-service-secret")
ORDERS_ITEMS = "/orders/1.0.0/items"
# What a newer module might write: a field appended to a grant record, and a record of a kind
# no build so far knows (too short to be a grant).
NEWER_FIELD = b"\xf0newer-field"
UNKNOWN_KIND = b"\xf1kind"


def with_sandbox_keys(config: dict) -> dict:
    config = copy.deepcopy(config)
    (demo,) = [app for app in config["applications"] if app["consumer_key"] == DEMO[0]]
    demo["sandbox"] = {"consumer_key": SANDBOX[0], "consumer_secret": SANDBOX[1]}
    return config


@pytest.fixture(scope="module")
def previous_module() -> Path:
    if not PREVIOUS.is_file():
        raise FileNotFoundError(f"the previous release's module is not at {PREVIOUS}: make previous-release")
    return PREVIOUS


def fresh(method: str, url: str, **kwargs) -> requests.Response:
    """One request on a fresh connection. A 503 `temporarily_unavailable`, which writes nothing
    (docs/fleet.md), is retried as a client would, for up to 3 s: both builds answer some fleet
    registrations so on a fresh replica (all of them before its first `/token`), whichever
    module runs, so it says nothing about what an upgrade keeps."""
    headers = {"Connection": "close", **kwargs.pop("headers", {})}
    for _ in range(30):
        reply = requests.request(method, url, headers=headers, timeout=10, **kwargs)
        if reply.status_code != 503:
            return reply
        time.sleep(0.1)
    return reply


def token(gw, auth: tuple[str, str], **form: str) -> dict:
    reply = fresh("POST", gw.url("/token"), data=form, auth=auth)
    assert reply.status_code == 200, (reply.status_code, reply.text)
    return reply.json()


def bearer(gw, access: str, path: str = "/api/orders") -> requests.Response:
    return fresh("GET", gw.url(path), headers={"Authorization": f"Bearer {access}"})


def introspect(gw, access: str) -> dict:
    reply = fresh("POST", gw.url("/introspect"), data={"token": access}, auth=INTROSPECTOR)
    assert reply.status_code == 200, reply.text
    return reply.json()


class World:
    """Everything a deployment stores, issued through one gateway, and the checks that none of
    it was lost."""

    def __init__(self, gw, name: str) -> None:
        self.production = [token(gw, DEMO, grant_type="client_credentials")["access_token"]]
        self.sandbox = [token(gw, SANDBOX, grant_type="client_credentials")["access_token"]]
        self.password = token(gw, DEMO, grant_type="password", username=ADMIN[0], password=ADMIN[1])
        self.subscribed: list[tuple[tuple[str, str], str]] = []
        self.subscribe(gw, name)

    def subscribe(self, gw, name: str) -> None:
        created = fresh("POST", gw.url(REGISTER), auth=ADMIN, headers={"Content-Type": "application/json"},
                        data=f'{{"clientName": "{name}", "grantType": "client_credentials"}}')
        assert created.status_code == 201, created.text
        app = (created.json()["clientId"], created.json()["clientSecret"])
        made = fresh("POST", gw.url(f"{REGISTER}/{app[0]}/subscriptions"), auth=ADMIN,
                     json={"api": ORDERS_API["name"], "tier": "Gold"})
        assert made.status_code == 201, made.text
        self.subscribed.append((app, token(gw, app, grant_type="client_credentials")["access_token"]))

    def write_through(self, gw, name: str) -> None:
        """Rewrites buckets through `gw`: a refresh (the grant's bucket), new grants of both key
        types, one more registered application with its subscription."""
        self.password = token(gw, DEMO, grant_type="refresh_token", refresh_token=self.password["refresh_token"])
        self.production.append(token(gw, DEMO, grant_type="client_credentials")["access_token"])
        self.sandbox.append(token(gw, SANDBOX, grant_type="client_credentials")["access_token"])
        self.subscribe(gw, name)

    def lost_on(self, gw) -> list[str]:
        """What `gw` no longer has, in words (empty: nothing lost)."""
        lost = []
        for access in [*self.production, self.password["access_token"]]:
            if bearer(gw, access).status_code != 200:
                lost.append(f"production grant {access[:8]}…")
        for access in self.sandbox:
            described = introspect(gw, access)
            if not described.get("active") or described.get("key_type") != "SANDBOX":
                lost.append(f"sandbox grant {access[:8]}…: {described}")
        for app, access in self.subscribed:
            reply = bearer(gw, access, ORDERS_ITEMS)
            if reply.status_code != 200 or reply.json()["headers"].get("x-tokengate-tier") != "Gold":
                lost.append(f"subscription of {app[0]}: {reply.status_code} {reply.text[:200]}")
        return lost

    def assert_kept_on(self, *gateways, timeout: float = 10) -> None:
        """Nothing lost on any of `gateways`, once the watch has delivered the last writes."""
        deadline = time.monotonic() + timeout
        while True:
            lost = {gw.name: self.lost_on(gw) for gw in gateways}
            if not any(lost.values()):
                return
            assert time.monotonic() < deadline, lost
            time.sleep(0.05)

    def assert_refresh_works(self, gw) -> None:
        self.password = token(gw, DEMO, grant_type="refresh_token", refresh_token=self.password["refresh_token"])


@pytest.fixture(scope="module")
def mixed_plugin(request) -> dict:
    return with_sandbox_keys(plugin_config(f"test-{request.module.__name__}/"))


def test_a_rolling_upgrade_and_a_rollback_between_the_two_builds_lose_nothing(
        etcd, upstream, tmp_path_factory, previous_module, mixed_plugin):
    current = harness.wasm_module()
    with Fleet(etcd, upstream.port, tmp_path_factory.mktemp("rolling"), mixed_plugin["fleet"]["prefix"],
               plugin=mixed_plugin, modules=[previous_module, previous_module]) as fleet:
        world = World(fleet.replicas[0], "issued-by-the-previous-release")
        world.assert_kept_on(*fleet.replicas)
        # Upgrade one replica, then write through both builds while they run side by side.
        for step, (index, module) in enumerate([(0, current), (1, current), (0, previous_module),
                                                (1, previous_module)]):
            fleet.restart(index, module=module)
            wait_for_watch(fleet.replicas[index])
            world.assert_kept_on(*fleet.replicas)
            for writer in fleet.replicas:
                world.write_through(writer, f"step{step}-{writer.name}")
            world.assert_kept_on(*fleet.replicas)
        world.assert_refresh_works(fleet.replicas[1])


def etcd_get(etcd, key: str) -> bytes:
    """A key's value, through etcd's JSON gateway (binary-safe, unlike etcdctl's arguments)."""
    reply = requests.post(f"{etcd.members[0].client_url}/v3/kv/range", timeout=10,
                          json={"key": base64.b64encode(key.encode()).decode()})
    reply.raise_for_status()
    (kv,) = reply.json()["kvs"]
    return base64.b64decode(kv.get("value", ""))


def etcd_put(etcd, key: str, value: bytes) -> None:
    reply = requests.post(f"{etcd.members[0].client_url}/v3/kv/put", timeout=10,
                          json={"key": base64.b64encode(key.encode()).decode(),
                                "value": base64.b64encode(value).decode()})
    reply.raise_for_status()


def records(bucket: bytes) -> list[bytes]:
    """A bucket's records: `format ‖ (u16 length ‖ record)*` (src/state/buckets.rs)."""
    assert bucket[:1] == b"\x01", bucket[:8]
    found, at = [], 1
    while at + 2 <= len(bucket):
        length = int.from_bytes(bucket[at:at + 2], "big")
        found.append(bucket[at + 2:at + 2 + length])
        at += 2 + length
    return found


def bucket(*items: bytes) -> bytes:
    return b"\x01" + b"".join(len(item).to_bytes(2, "big") + item for item in items)


def test_what_each_build_keeps_of_what_a_newer_module_wrote(
        etcd, upstream, tmp_path_factory, previous_module, mixed_plugin):
    plugin = copy.deepcopy(mixed_plugin)
    plugin["fleet"]["prefix"] = mixed_plugin["fleet"]["prefix"] + "newer/"
    with Fleet(etcd, upstream.port, tmp_path_factory.mktemp("newer"), plugin["fleet"]["prefix"],
               plugin=plugin, modules=[harness.wasm_module(), previous_module]) as fleet:
        current, previous = fleet.replicas
        grant = token(current, DEMO, grant_type="password", username=ADMIN[0], password=ADMIN[1])
        key = f"{plugin['fleet']['prefix']}grants/{bucket_of(grant['access_token'])}"
        etcd_put(etcd, key, bucket(*(record + NEWER_FIELD for record in records(etcd_get(etcd, key))), UNKNOWN_KIND))
        for replica in fleet.replicas:
            wait_for_watch(replica)
        assert bearer(previous, grant["access_token"]).status_code == 200, "the previous release reads it"
        assert bearer(current, grant["access_token"]).status_code == 200

        # The build under test rewrites the bucket: both are carried through.
        grant = token(current, DEMO, grant_type="refresh_token", refresh_token=grant["refresh_token"])
        rewritten = records(etcd_get(etcd, key))
        assert UNKNOWN_KIND in rewritten
        assert all(record.endswith(NEWER_FIELD) for record in rewritten if record != UNKNOWN_KIND)
        assert len(rewritten) >= 2

        # The previous release rewrites it: it drops both, and keeps the grant.
        for replica in fleet.replicas:
            wait_for_watch(replica)
        grant = token(previous, DEMO, grant_type="refresh_token", refresh_token=grant["refresh_token"])
        dropped = records(etcd_get(etcd, key))
        assert UNKNOWN_KIND not in dropped
        assert not any(record.endswith(NEWER_FIELD) for record in dropped)
        for replica in fleet.replicas:
            assert bearer(replica, grant["access_token"]).status_code == 200


def test_an_in_place_module_swap_and_back_loses_nothing(upstream, tmp_path, previous_module):
    """One Envoy, local mode: an LDS update swaps the module while the old VMs drain, both
    builds sharing the same shared data."""
    config = with_sandbox_keys(harness.demo_plugin_config())
    config["apis"] = [*config.get("apis", []), ORDERS_API]
    # The previous release refuses configuration sections it does not know, so during an
    # upgrade the configuration is one both builds accept (docs/upgrading.md, "Configuration").
    for newer_section in ("signing", "login_page"):
        config.pop(newer_section, None)
    with contextlib.ExitStack() as stack:
        gw = stack.enter_context(harness.DynamicGateway("swap", tmp_path / "swap", config, upstream.port,
                                                        module=previous_module))
        world = World(gw, "before-the-swap")
        for step, module in enumerate([harness.wasm_module(), previous_module]):
            gw.update(config, module=module)
            world.assert_kept_on(gw)
            world.write_through(gw, f"after-swap-{step}")
            world.assert_kept_on(gw)
        world.assert_refresh_works(gw)
