"""`make run`'s runner: the demo upstream, the demo MCP server, the API console's file server and Envoy with
envoy/envoy.yaml (web/envoy-console.yaml merged in), all at once, while the console's
browser package builds in the background.

    run_demo.py check-ports      exit 1 with "port N is in use (is tokengate already
                                 running?)" if a demo port is taken
    run_demo.py run [--envoy E] [--concurrency N] [--build-web CMD] [--config FILE]

`--config FILE` (make run CONFIG=FILE) runs another plugin configuration: envoy/envoy.yaml
with FILE's JSON in place of its own, written to target/run/envoy.yaml; envoy/ is not edited.

The first build of the console compiles wasm-bindgen-cli (about 10 minutes on 2 cores), so
it must not hold the gateway back: its output goes to target/console/build.log, and
web/serve_console.py shows a "being built" page until pkg/ is there (or a "failed" page
naming the log). Envoy's output passes through; when Envoy exits non-zero because the
plugin configuration is invalid, that one line is printed again last, with where it is.
Everything started here stops when Envoy does (or on Ctrl-C). Standard library only, so
the port check runs before anything is installed.
"""

from __future__ import annotations

import argparse
import shlex
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import envoy_launcher as launcher  # noqa: E402  (every runner's Envoy command and stop)
HOST = "127.0.0.1"
# Listener (plain), listener (TLS), admin, demo upstream, console server, sandbox upstream,
# demo MCP server.
PORTS = [(8080, "the gateway"), (8243, "the gateway's TLS listener"), (9901, "Envoy's admin"),
         (8081, "the demo upstream"), (8082, "the console server"), (8083, "the sandbox upstream"),
         (8084, "the demo MCP server")]
UPSTREAM_PORT, CONSOLE_PORT, SANDBOX_PORT, MCP_PORT = 8081, 8082, 8083, 8084
BUILD_LOG = REPO / "target" / "console" / "build.log"
INVALID = "invalid configuration:"
WHERE = "in the plugin configuration of envoy/envoy.yaml (the JSON under configuration.value)"


def say(text: str) -> None:
    print(f"run: {text}", flush=True)


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def check_ports(ports: list[tuple[int, str]] = PORTS) -> int:
    for port, what in ports:
        if port_in_use(port):
            print(f"run: port {port} ({what}) is in use (is tokengate already running?)", file=sys.stderr)
            return 1
    return 0


def start_console_build(command: str) -> subprocess.Popen | None:
    """`make build-web` in its own session (Ctrl-C stops it through us, not half-way by the
    terminal), its exit code written next to its log for web/serve_console.py."""
    if not command:
        return None
    BUILD_LOG.parent.mkdir(parents=True, exist_ok=True)
    exit_file = BUILD_LOG.with_name(BUILD_LOG.name + ".exit")
    exit_file.unlink(missing_ok=True)
    script = f"{command} > {shlex.quote(str(BUILD_LOG))} 2>&1; echo $? > {shlex.quote(str(exit_file))}"
    say(f"building the console in the background (log: {BUILD_LOG.relative_to(REPO)})")
    return subprocess.Popen(["bash", "-c", script], cwd=REPO, stdin=subprocess.DEVNULL, start_new_session=True)


def relay(lines, out) -> str | None:
    """Passes Envoy's output through; returns the last invalid-configuration message in it."""
    problem = None
    for line in lines:
        out.write(line)
        out.flush()
        if INVALID in line:
            problem = line[line.index(INVALID):].strip()
    return problem


def last_words(code: int, problem: str | None) -> list[str]:
    """What to print after Envoy exited with `code`: the configuration's problem last."""
    if code == 0:
        return []
    if problem is not None:
        return [f"Envoy refused to start: {problem}", f"  {WHERE}"]
    return [f"Envoy exited with {code} (its log is above)"]


RENDERED = REPO / "target" / "run" / "envoy.yaml"


def with_plugin_config(plugin_json: str) -> Path:
    """envoy/envoy.yaml with another plugin configuration in every tokengate filter, written to
    target/run/envoy.yaml (PyYAML comes with `make tools`, so it is imported here only)."""
    import json  # noqa: PLC0415
    import yaml  # noqa: PLC0415

    json.loads(plugin_json)  # a file that is no JSON fails here, with where
    cfg = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())

    def replace(node) -> None:
        if isinstance(node, dict):
            if node.get("name") == "tokengate" and "configuration" in node:
                node["configuration"]["value"] = plugin_json
            for value in node.values():
                replace(value)
        elif isinstance(node, list):
            for value in node:
                replace(value)

    replace(cfg)
    RENDERED.parent.mkdir(parents=True, exist_ok=True)
    RENDERED.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return RENDERED


def run_envoy(envoy: str, concurrency: str, envoy_yaml: str = "envoy/envoy.yaml") -> int:
    """Envoy in the foreground, its output passed through; the invalid-configuration line,
    if Envoy gives up on one, printed again last."""
    command = launcher.EnvoyCommand(Path(envoy_yaml), concurrency=int(concurrency), binary=Path(envoy),
                                    config_yaml=(REPO / "web" / "envoy-console.yaml").read_text(),
                                    log_level="warn", component_log_level="wasm:info")
    say(f"starting Envoy on http://{HOST}:8080 and https://{HOST}:8243 (admin http://{HOST}:9901)")
    say(f"API console: http://{HOST}:8080/console/   Ctrl-C stops everything")
    proc = command.start(log=None)
    try:
        problem = relay(proc.stdout or [], sys.stdout)
        code = proc.wait()
    except KeyboardInterrupt:
        launcher.stop(proc)
        return 0
    for line in last_words(code, problem):
        say(line)
    return code


def run(args: argparse.Namespace) -> int:
    if check_ports():
        return 1
    envoy_yaml = "envoy/envoy.yaml"
    if args.config:
        try:
            envoy_yaml = str(with_plugin_config(Path(args.config).read_text()))
        except (OSError, ValueError) as error:
            say(f"cannot use {args.config} as the plugin configuration: {error}")
            return 1
        say(f"plugin configuration: {args.config} (in {envoy_yaml})")
    python = sys.executable
    upstream = subprocess.Popen([python, str(REPO / "envoy" / "demo_upstream.py"), str(UPSTREAM_PORT)],
                                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    sandbox = subprocess.Popen([python, str(REPO / "envoy" / "demo_upstream.py"), str(SANDBOX_PORT), "sandbox"],
                               stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    # The MCP server needs the `mcp` package (.venv, `make tools`); it is protected only with a
    # plugin configuration that has an API at /mcp (make run CONFIG=envoy/mcp.json, docs/mcp.md).
    mcp = subprocess.Popen([python, str(REPO / "envoy" / "mcp_server.py"), str(MCP_PORT)],
                           stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    console = subprocess.Popen([python, str(REPO / "web" / "serve_console.py"), str(CONSOLE_PORT),
                                "--build-log", str(BUILD_LOG)], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    build = None
    try:
        build = start_console_build(args.build_web)
        return run_envoy(args.envoy, args.concurrency, envoy_yaml)
    except KeyboardInterrupt:
        return 0
    finally:
        if build is not None and build.poll() is None:
            say("stopping the console's build (the next `make run` picks it up where it stopped)")
        launcher.stop(build, group=True)
        for server in (console, mcp, sandbox, upstream):
            launcher.stop(server)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="run_demo.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check-ports")
    runner = sub.add_parser("run")
    runner.add_argument("--envoy", default=str(REPO / ".venv" / "bin" / "envoy"))
    runner.add_argument("--concurrency", default="2")
    runner.add_argument("--build-web", default="", help="the console's build command (empty: none)")
    runner.add_argument("--config", default="", help="a plugin configuration (JSON) instead of envoy.yaml's")
    args = parser.parse_args(argv[1:])
    if args.command == "check-ports":
        return check_ports()
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
