"""Two (or more) tokengate replicas in fleet mode against one etcd cluster, and the requests
the fleet tests make. Every request goes out on a fresh connection, so Envoy hands it to
either worker."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import requests

import harness
import replicas

DEMO = ("demo-app", "demo-secret")
ADMIN = ("admin", "admin")
REGISTER = "/client-registration/v0.17/register"
# A second application whose tokens live two seconds: for watching leases end them.
SHORT_LIVED = {
    "consumer_key": "short-lived",
    "consumer_secret": "short-lived-secret",
    "grant_types": ["client_credentials"],
    "scopes": ["orders:read"],
    "access_token_validity_secs": 2,
}


ORDERS_API = {"name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0",
              "resources": [{"methods": ["GET"], "path": "/items", "scopes": []}]}


def plugin_config(prefix: str, **fleet: object) -> dict:
    config = replicas.plugin_config(replicas.load())
    config["fleet"] = {**config["fleet"], "prefix": prefix, **fleet}
    config["applications"].append(SHORT_LIVED)
    # An API for subscriptions of registered applications.
    config["apis"] = [*config.get("apis", []), ORDERS_API]
    return config


class Replica(harness.Gateway):
    def post(self, path: str, data: dict | str, auth: tuple[str, str] | None = DEMO, **headers: str):
        return requests.post(self.url(path), data=data, auth=auth, timeout=10,
                             headers={"Connection": "close", **headers})

    def token(self, auth: tuple[str, str] = DEMO, **form: str) -> dict:
        reply = self.post("/token", form, auth)
        assert reply.status_code == 200, (reply.status_code, reply.text)
        return reply.json()

    def bearer(self, token: str, path: str = "/api/orders", method: str = "GET") -> requests.Response:
        return requests.request(method, self.url(path), timeout=10,
                                headers={"Authorization": f"Bearer {token}", "Connection": "close"})

    def status(self, token: str) -> int:
        return self.bearer(token).status_code


class Fleet:
    """Replicas started on enter, stopped on exit; `restart(i)` stops one and starts it again.

    `members`: the etcd members each replica's `etcd` cluster lists (default: every member for
    every replica), to pin a replica's watch to one member. Against a TLS etcd, every replica's
    `etcd` cluster presents the rig's client certificate (envoy/fleet/etcd-tls.yaml). `modules`:
    each replica's tokengate module (default: the module under test for every replica), to run
    two builds side by side."""

    def __init__(self, etcd, upstream_port: int, workdir: Path, prefix: str, count: int = 2,
                 members: list[list] | None = None, plugin: dict | None = None,
                 modules: list[Path] | None = None, **fleet: object):
        self.etcd = etcd
        self.etcd_transport = etcd_transport(etcd.tls) if etcd.tls else None
        self.prefix = prefix
        self.upstream_port = upstream_port
        self.workdir = workdir
        self.plugin = plugin or plugin_config(prefix, **fleet)
        self.members = members or [etcd.members] * count
        self.modules = modules or [harness.wasm_module()] * count
        self.replicas = [self._replica(i) for i in range(count)]

    def _replica(self, index: int, plugin: dict | None = None) -> Replica:
        config = replicas.render(0, 0, [m.client_port for m in self.members[index]], self.modules[index],
                                 plugin or self.plugin, self.upstream_port, etcd_transport=self.etcd_transport)
        return Replica(f"replica{index}", self.workdir / f"replica{index}", config)

    def __enter__(self) -> "Fleet":
        for replica in self.replicas:
            replica.__enter__()
        if self.etcd.running():
            for replica in self.replicas:
                wait_for_watch(replica)
        return self

    def __exit__(self, *exc: object) -> None:
        for replica in self.replicas:
            replica.__exit__(*exc)

    def restart(self, index: int, plugin: dict | None = None, module: Path | None = None) -> Replica:
        """Kills replica `index` (SIGKILL: nothing is flushed, as in a crash) and starts it again,
        with the plugin configuration `plugin` and the tokengate module `module` if given."""
        old = self.replicas[index]
        if old.proc is not None:
            old.proc.kill()
            old.proc.wait()
        old.__exit__(None, None, None)
        if module is not None:
            self.modules[index] = module
        config = old.config if plugin is None and module is None else self._replica(index, plugin).config
        fresh = Replica(old.name, self.workdir / f"{old.name}-{time.monotonic_ns()}", config)
        fresh.__enter__()
        self.replicas[index] = fresh
        return fresh

    def keys(self) -> list[str]:
        """The fleet's keys in etcd, by etcdctl."""
        out = self.etcd.etcdctl("get", "--prefix", self.prefix, "--keys-only")
        return [line for line in out.splitlines() if line.strip()]


def etcd_transport(tls, client: str | None = "client", server_name: str | None = None) -> dict:
    """The `etcd` cluster's TLS with the rig's certificates (`tls`: an EtcdTls): the client
    certificate named `client` (None: none), and the server name checked (None: the real one)."""
    certificate, key = (tls.cert(client), tls.key(client)) if client else (None, None)
    return replicas.etcd_transport_socket(tls.ca, certificate, key, server_name)


def heartbeat(replica: Replica) -> int:
    return replica.stats(r"^wasmcustom\.tokengate\.fleet\.watch_heartbeat_ms$").get(
        "wasmcustom.tokengate.fleet.watch_heartbeat_ms", 0)


def wait_for_watch(replica: Replica, timeout: float = 20) -> None:
    """Until the replica's watcher has heard from etcd since now (tools/envoy_launcher.py)."""
    replica.wait_for_watch(timeout)


def bucket_of(token: str) -> int:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return int.from_bytes(raw[1:5], "big")


def unseen_token(like: str) -> str:
    """A token of the right shape, in the same bucket as `like`, that nobody issued."""
    raw = bytearray(base64.urlsafe_b64decode(like + "=" * (-len(like) % 4)))
    raw[5:] = os.urandom(len(raw) - 5)
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def record(name: str, figures: dict) -> None:
    """Keeps a measured figure in target/fleet/<name>.json for docs/fleet.md."""
    out = harness.REPO / "target" / "fleet"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2))
    print(f"{name}: {figures}")
