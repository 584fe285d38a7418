#!/usr/bin/env python3
"""Soak: a million short-lived tokens through the real Envoy, and Envoy's memory
before, during and after.

The token store is a fixed table of shared-data buckets; expired grants are
dropped whenever their bucket is rewritten (a new grant landing in it, or the
sweep every VM runs each second over 1/600 of the table). So memory must
follow the live tokens, not the history: after a million tokens that each
lived 2 s, Envoy should hold what it held before, give or take allocator
slack, and the store_grants gauge should be back to 0.

What it does (loopback only, bounded in count and time):
  1. starts Envoy (2 workers) with the demo config plus `soak-app`, whose
     access tokens live --validity seconds, and a store sized for the rate;
  2. samples Envoy's VmRSS (/proc/<pid>/status), the admin /memory figures
     and the filter's stats for a few seconds (before);
  3. issues --tokens client_credentials tokens as fast as Envoy answers:
     h2load (nghttp2-client) over cleartext HTTP/2, or, without it, Python
     processes on keep-alive HTTP/1.1 connections; sampling throughout;
  4. keeps sampling until every grant has expired and been swept (the gauge
     reads 0) or --settle-seconds pass (after);
  5. prints a summary table and writes target/soak/summary.json (every
     sample included). Exits 1 if a token request failed, fewer tokens were
     issued than asked, or grants were left over after the settle time.

    make soak                                   # the defaults below
    .venv/bin/python soak/soak.py --tokens 200000 --settle-seconds 60
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import harness  # noqa: E402  (the e2e tier's Envoy runner: same config, same module)

SOAK_APP = ("soak-app", "soak-secret-7c2f9a41d0b5e8c3")
BODY = b"grant_type=client_credentials"
AUTHORIZATION = "Basic " + base64.b64encode(f"{SOAK_APP[0]}:{SOAK_APP[1]}".encode()).decode()
FORM = "application/x-www-form-urlencoded"
STATS = {  # the filter's stats the soak follows, by their /stats names
    "store_grants": "wasmcustom.tokengate.store_grants",
    "issued": "wasmcustom.tokengate.tokens_issued.client_credentials",
    "store_full": "wasmcustom.tokengate.store_full",
    "token_errors": "wasmcustom.tokengate.token_errors",
}
MIB = 1024 * 1024


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=1_000_000, help="client_credentials tokens to issue")
    p.add_argument("--validity", type=int, default=2, help="access token lifetime, seconds")
    p.add_argument("--capacity", type=int, default=1 << 19,
                   help="store capacity in grants (default 524288: ~4x the live and not yet swept grants at "
                        "40,000 tokens/s and 2 s validity)")
    p.add_argument("--rounds", type=int, default=1,
                   help="load and settle this many times: memory after round 2 should equal memory after round 1")
    p.add_argument("--client", choices=["auto", "h2load", "python"], default="auto")
    p.add_argument("--connections", type=int, default=4, help="client connections")
    p.add_argument("--streams", type=int, default=32, help="concurrent streams per connection (h2load)")
    p.add_argument("--sample-every", type=float, default=2.0, help="seconds between samples")
    p.add_argument("--before-seconds", type=float, default=4.0, help="idle sampling before the load")
    p.add_argument("--settle-seconds", type=float, default=420.0,
                   help="after the load, the longest wait for expiry and a full sweep (the table takes 600 s "
                        "for one VM; the two workers and the main thread share the work)")
    p.add_argument("--load-seconds", type=float, default=900.0, help="the longest the load may take")
    p.add_argument("--out", type=Path, default=REPO / "target" / "soak" / "summary.json")
    return p.parse_args()


# ---------------------------------------------------------------- measuring


def proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Sampler:
    """Samples Envoy's memory and the filter's stats on a timer, tagged with the phase."""

    def __init__(self, envoy: harness.Envoy, every: float) -> None:
        self.envoy, self.every = envoy, every
        self.samples: list[dict] = []
        self.phase = "before"
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict:
        pid = self.envoy.proc.pid
        memory = requests.get(f"{self.envoy.admin}/memory", timeout=5).json()
        stats = self.envoy.stats(r"^wasmcustom\.tokengate\.")
        row = {
            "t": round(time.monotonic() - self.started, 2),
            "phase": self.phase,
            "rss_kib": proc_status_kib(pid, "VmRSS"),
            "rss_peak_kib": proc_status_kib(pid, "VmHWM"),
            "allocated": int(memory["allocated"]),
            "heap_size": int(memory["heap_size"]),
            **{key: stats.get(name, 0) for key, name in STATS.items()},
        }
        self.samples.append(row)
        return row

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            row = self.sample()
            print(f"  {row['t']:7.1f}s {row['phase']:<6} RSS {row['rss_kib'] / 1024:7.1f} MiB  "
                  f"allocated {row['allocated'] / MIB:7.1f} MiB  grants {row['store_grants']:>8}  "
                  f"issued {row['issued']:>9}", flush=True)

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# ---------------------------------------------------------------- load


def h2load_binary() -> str | None:
    return shutil.which("h2load")


def run_h2load(url: str, tokens: int, args: argparse.Namespace, workdir: Path) -> dict:
    """h2load over cleartext HTTP/2 (Envoy's listener detects the preface)."""
    body = workdir / "body"
    body.write_bytes(BODY)
    threads = max(1, min(2, args.connections))
    command = [h2load_binary(), "-n", str(tokens), "-c", str(args.connections), "-m", str(args.streams),
               "-t", str(threads), "-d", str(body), "-H", f"authorization: {AUTHORIZATION}",
               "-H", f"content-type: {FORM}", url]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=args.load_seconds)
    elapsed = time.monotonic() - started
    out = proc.stdout
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored, (\d+) timeout", out)
    if proc.returncode != 0 or not codes or not done:
        raise RuntimeError(f"h2load failed ({proc.returncode}):\n{out}\n{proc.stderr}")
    ok, c3, c4, c5 = map(int, codes.groups())
    return {"client": "h2load (HTTP/2, cleartext)", "seconds": round(elapsed, 2), "ok": ok,
            "non_2xx": c3 + c4 + c5, "status_4xx": c4, "status_5xx": c5,
            "failed": int(done.group(5)) + int(done.group(6)) + int(done.group(7)),
            "command": " ".join(command).replace(AUTHORIZATION, "Basic <soak-app>")}


def _python_worker(port: int, count: int, results) -> None:
    """One process: `count` tokens on one keep-alive HTTP/1.1 connection."""
    ok = other = failed = 0
    headers = {"Authorization": AUTHORIZATION, "Content-Type": FORM}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(count):
        try:
            conn.request("POST", "/token", BODY, headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                ok += 1
            else:
                other += 1
        except (OSError, http.client.HTTPException):
            failed += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    results.put((ok, other, failed))


def run_python(port: int, tokens: int, args: argparse.Namespace) -> dict:
    """Several processes on keep-alive connections, for machines without h2load."""
    n = args.connections
    shares = [tokens // n + (1 if i < tokens % n else 0) for i in range(n)]
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_python_worker, args=(port, share, results)) for share in shares]
    started = time.monotonic()
    for p in procs:
        p.start()
    totals = [results.get(timeout=args.load_seconds) for _ in procs]
    for p in procs:
        p.join()
    ok, other, failed = (sum(column) for column in zip(*totals))
    return {"client": f"python http.client (HTTP/1.1 keep-alive, {n} processes)",
            "seconds": round(time.monotonic() - started, 2), "ok": ok, "non_2xx": other, "failed": failed}


# ---------------------------------------------------------------- the run


def plugin_config(args: argparse.Namespace) -> dict:
    cfg = harness.demo_plugin_config()
    cfg["store"] = {"capacity": args.capacity, "max_grants_per_application": args.capacity}
    cfg["applications"].append({
        "consumer_key": SOAK_APP[0], "consumer_secret": SOAK_APP[1], "scopes": ["orders:read"],
        "access_token_validity_secs": args.validity,
    })
    return cfg


def without_rate_limit(cfg: dict) -> dict:
    """The soak measures the store, not the credential endpoints' per-connection rate limit
    (envoy/envoy.yaml), which would refuse most of its keep-alive load: drop it."""
    name = "envoy.filters.http.local_ratelimit"
    for listener in cfg["static_resources"]["listeners"]:
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != name]
        for host in hcm["route_config"]["virtual_hosts"]:
            for route in host["routes"]:
                route.get("typed_per_filter_config", {}).pop(name, None)
    return cfg


def summarize(samples: list[dict], rounds: list[dict], args: argparse.Namespace) -> dict:
    """The samples that tell the story: before, then for each round the peaks
    during the load, the end of the load, and the settled state after it."""
    phases = {"before": [s for s in samples if s["phase"] == "before"][-1]}
    for r in rounds:
        during = [s for s in samples if s["phase"] == r["load_phase"]]
        after = [s for s in samples if s["phase"] == r["after_phase"]]
        suffix = f" {r['round']}" if len(rounds) > 1 else ""
        phases[f"load{suffix}, peak RSS"] = max(during, key=lambda s: s["rss_kib"])
        phases[f"load{suffix}, peak grants"] = max(during + after, key=lambda s: s["store_grants"])
        phases[f"end of load{suffix}"] = during[-1]
        phases[f"after{suffix}"] = after[-1]
    ok = sum(r["load"]["ok"] for r in rounds)
    seconds = sum(r["load"]["seconds"] for r in rounds)
    return {
        "tokens_requested": args.tokens * len(rounds),
        "rounds": len(rounds),
        "validity_secs": args.validity,
        "store_capacity": args.capacity,
        "envoy_concurrency": harness.CONCURRENCY,
        "tokens_issued_ok": ok,
        "tokens_per_second": round(ok / seconds) if seconds else None,
        "round_results": rounds,
        "phases": phases,
        "samples": samples,
    }


def print_table(summary: dict) -> None:
    print()
    print(f"{'phase':<24}{'t (s)':>8}{'tokens issued':>15}{'store grants':>14}{'RSS MiB':>10}"
          f"{'peak RSS':>10}{'allocated MiB':>15}{'heap MiB':>10}")
    for name, s in summary["phases"].items():
        print(f"{name:<24}{s['t']:>8.1f}{s['issued']:>15,}{s['store_grants']:>14,}{s['rss_kib'] / 1024:>10.1f}"
              f"{s['rss_peak_kib'] / 1024:>10.1f}{s['allocated'] / MIB:>15.1f}{s['heap_size'] / MIB:>10.1f}")
    print()
    for r in summary["round_results"]:
        load = r["load"]
        drained = r["grants_swept_to_zero_after_s"]
        print(f"round {r['round']}: {load['ok']:,} tokens in {load['seconds']} s "
              f"({round(load['ok'] / load['seconds']):,}/s) with {load['client']}; non-2xx {load['non_2xx']}, "
              f"failed {load['failed']}; store_grants back to 0 "
              + (f"{drained} s after the load" if drained is not None else "NOT reached"))
    last = list(summary["phases"].values())[-1]
    print(f"store full (503): {last['store_full']}")


def main() -> int:
    args = parse_args()
    harness.require_artifacts()
    client = args.client if args.client != "auto" else ("h2load" if h2load_binary() else "python")
    if client == "h2load" and not h2load_binary():
        raise SystemExit("h2load not found: apt-get install nghttp2-client, or use --client python")
    workdir = Path(tempfile.mkdtemp(prefix="tokengate-soak-"))
    # The demo cluster is never used: /token is answered by the filter.
    envoy = harness.Envoy("soak", workdir, without_rate_limit(harness.render_envoy_config(plugin_config(args), upstream_port=9)))
    print(f"soak: {args.tokens:,} tokens valid {args.validity} s, store capacity {args.capacity:,}, "
          f"{client}; Envoy log {envoy.log_path}", flush=True)
    rounds: list[dict] = []
    try:
        envoy.start()
        sampler = Sampler(envoy, args.sample_every)
        sampler.start()
        time.sleep(args.before_seconds)
        for number in range(1, args.rounds + 1):
            suffix = f" {number}" if args.rounds > 1 else ""
            sampler.phase = "load" + suffix
            if client == "h2load":
                load = run_h2load(envoy.url("/token"), args.tokens, args, workdir)
            else:
                load = run_python(envoy.port, args.tokens, args)
            sampler.sample()
            sampler.phase = "after" + suffix
            load_ended = time.monotonic()
            drained_after = None
            while time.monotonic() < load_ended + args.settle_seconds:
                if sampler.sample()["store_grants"] == 0:
                    drained_after = round(time.monotonic() - load_ended, 1)
                    break
                time.sleep(1)
            time.sleep(args.sample_every * 2)  # a couple more samples of the settled state
            sampler.sample()
            rounds.append({"round": number, "load_phase": "load" + suffix, "after_phase": "after" + suffix,
                           "load": load, "grants_swept_to_zero_after_s": drained_after})
        sampler.stop()
    finally:
        envoy.stop()
    summary = summarize(sampler.samples, rounds, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print_table(summary)
    print(f"samples: {args.out}")
    last = list(summary["phases"].values())[-1]
    problems = []
    for r in rounds:
        if r["load"]["non_2xx"] or r["load"]["failed"]:
            problems.append(f"round {r['round']}: {r['load']['non_2xx']} non-2xx answers, "
                            f"{r['load']['failed']} failed requests")
    if last["issued"] < args.tokens * args.rounds:
        problems.append(f"only {last['issued']:,} tokens issued")
    if last["store_grants"] != 0:
        problems.append(f"{last['store_grants']} grants left {args.settle_seconds} s after the load")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
