"""`make bench`: tokengate against Envoy alone, a do-nothing wasm filter and Envoy's own auth
filters, side by side, in one run (issue 5).

For every scenario the real Envoy runs with one worker and a `direct_response` route, so the
HTTP filter is the only thing that differs between rows. Each row gets two figures:

- instructions per request under `valgrind --tool=callgrind` (the figure we steer by: on this
  noisy 2-core machine it repeats to within about 1 %), over a fixed count of requests after a
  warm-up, with instrumentation switched on only around the measured requests;
- requests per second and p50/p99 latency from `wrk`, for a bounded time, with Envoy pinned to
  one core and wrk to the other (these drift by 20-30 % from run to run).

It also measures Envoy's heap per live token with 1,000,000 tokens issued through /token (and
after they expire and the sweeper has passed), the start-up time to the first served request,
and the sizes of the .wasm files. Results: a table on stdout, `target/bench/summary.json` in
the issue's schema, and `target/bench/details.json` plus raw wrk/callgrind output beside it.

Environment knobs (all optional): BENCH_SECONDS (wrk duration, 5), BENCH_REQUESTS (callgrind
requests per row, 2000), BENCH_WARMUP (300), BENCH_BIG_TOKENS (1000000), BENCH_ONLY (comma-
separated scenario names), BENCH_NO_CALLGRIND=1, BENCH_NO_WRK=1, BENCH_NO_HOSTCALLS=1.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import envoy_configs as cfg  # noqa: E402
from measure import (  # noqa: E402
    BenchError,
    Client,
    Envoy,
    LoadResult,
    Request,
    free_port,
    run_h2load,
    run_wrk,
)

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "target" / "bench"
FILTER_WASM = Path(os.environ.get("TOKENGATE_WASM", REPO / "target/wasm32-wasip1/release/tokengate.wasm"))
NOOP_WASM = REPO / "target/bench/noop-filter/wasm32-wasip1/release/noop_filter.wasm"
PROBE_WASM = REPO / "target/bench/hostcall-probe/wasm32-wasip1/release/hostcall_probe.wasm"
# The browser build: the wasm-bindgen package if `make build-web` made it, else cargo's output.
WEB_WASM_CANDIDATES = [
    REPO / "pkg/tokengate_bg.wasm",
    REPO / "target/wasm32-unknown-unknown/web-release/tokengate.wasm",
    REPO / "target/wasm32-unknown-unknown/release/tokengate.wasm",
]

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "2000"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "300"))
SMALL_TOKENS = 10_000
BIG_TOKENS = int(os.environ.get("BENCH_BIG_TOKENS", "1000000"))
# The password grant runs pbkdf2-sha256 with the README's example cost; each request is
# hundreds of millions of instructions, so callgrind measures only a few of them.
PBKDF2_ITERATIONS = int(os.environ.get("BENCH_PBKDF2_ITERATIONS", "100000"))
CONNECTIONS = 16
# Distinct tokens each Bearer row cycles through, so the lookups spread over many buckets
# (each with whatever occupancy it has) instead of hitting one hot bucket.
POOL = 256

TOKEN_HEADERS = {
    "authorization": cfg.basic_authorization(cfg.CLIENT_ID, cfg.CLIENT_SECRET),
    "content-type": "application/x-www-form-urlencoded",
}
CLIENT_CREDENTIALS = Request("POST", cfg.TOKEN_PATH, TOKEN_HEADERS, b"grant_type=client_credentials")
PASSWORD_GRANT = Request(
    "POST",
    cfg.TOKEN_PATH,
    TOKEN_HEADERS,
    f"grant_type=password&username={cfg.USERNAME}&password={cfg.PASSWORD}".encode(),
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def capacity_for(tokens: int) -> int:
    """Store capacity for `tokens` live grants. New grants go to a random bucket with room
    (4 tries), so a store filled to the brim refuses issues long before the last slot; at
    80 % the fill goes through with few retries."""
    return tokens * 5 // 4


def bucket_of(token: str) -> int:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return int.from_bytes(raw[1:5], "big")


def bearer(token: str, expect_status: int = 200) -> Request:
    return Request("GET", cfg.API_PATH, {"authorization": f"Bearer {token}"}, expect_status=expect_status)


def issue_tokens(port: int, count: int) -> list[str]:
    """`count` access tokens through /token, sequentially (for the request pools)."""
    client = Client(port)
    tokens = []
    refused = 0
    try:
        while len(tokens) < count:
            status, body = client.send(CLIENT_CREDENTIALS)
            # 503: the random buckets tried were full (the store runs at 80 %); try again.
            if status == 503 and refused < count:
                refused += 1
                continue
            if status != 200:
                raise BenchError(f"/token answered {status}: {body[:200]!r}")
            tokens.append(json.loads(body)["access_token"])
    finally:
        client.close()
    return tokens


def fill_store(port: int, tokens: int, timeout: float) -> tuple[int, float]:
    """Issues `tokens` client_credentials grants through /token with h2load (32 concurrent
    connections); retries what the store refused (503 when the random buckets tried were
    full). Returns (grants issued, seconds taken)."""
    started = time.monotonic()
    issued = 0
    for _ in range(5):  # bounded top-ups
        remaining = tokens - issued
        if remaining <= 0:
            break
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            break
        counts = run_h2load(port, CLIENT_CREDENTIALS, remaining, clients=min(32, remaining), timeout=left)
        issued += counts["2xx"]
        if counts["4xx"]:
            raise BenchError(f"filling the store: {counts['4xx']} client errors from /token")
    return issued, time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# Scenarios: one Envoy configuration each, measured as one or more rows.


@dataclass
class Row:
    name: str
    requests: list[Request]
    warmup: int = WARMUP
    count: int = REQUESTS


@dataclass
class Scenario:
    name: str
    # (listener port, admin port, callgrind?) -> Envoy config
    config: Callable[[int, int, bool], dict]
    # (running Envoy, callgrind?) -> rows to measure
    prepare: Callable[[Envoy, bool], list[Row]]


def simple(name: str, filters: Callable[[], list[dict]], rows: Callable[[], list[Row]]) -> Scenario:
    return Scenario(name, lambda lp, ap, _cg: cfg.envoy_config(lp, ap, filters()), lambda _e, _cg: rows())


# Credentials the native filters check: built once, so every scenario and both passes agree.
STATIC_TOKENS = [cfg.b64url(os.urandom(29)) for _ in range(SMALL_TOKENS)]
JWKS, JWT = cfg.hs256_jwks_and_token(os.urandom(32))


def pool_of_static_tokens() -> list[Request]:
    return [bearer(token) for token in STATIC_TOKENS[:POOL]]


def tokengate_bearer(name: str, tokens: int) -> Scenario:
    """tokengate validating Bearer tokens with `tokens` live grants in the store.

    Natively the store really is filled with `tokens` grants through /token. Under callgrind,
    issuing runs at about 700 grants a second, so a million would take 24 minutes. For a big
    store the callgrind pass therefore runs a stand-in with what the hit path's instruction
    count depends on: a 10,000-grant store filled to the same 80 % (so each bucket scanned holds
    as many grants as in the big store), in a shared-data map with the big store's key count
    (client registration's bucket table, sized like the big store, lives in the same map and is
    never swept). Envoy's map lookup costs the same at any size; only cache misses, which
    callgrind does not count and wrk does see, grow with the real store.
    """
    stand_in = tokens > SMALL_TOKENS

    def config(listener_port: int, admin_port: int, callgrind: bool) -> dict:
        if callgrind and stand_in:
            plugin = cfg.tokengate_config(capacity_for(SMALL_TOKENS), extra_keys_capacity=capacity_for(tokens))
        else:
            validity = BIG_VALIDITY.get("secs", 3600) if stand_in else 3600
            plugin = cfg.tokengate_config(capacity_for(tokens), validity_secs=validity)
        return cfg.envoy_config(listener_port, admin_port, [cfg.wasm_filter(str(FILTER_WASM), "tokengate", plugin)])

    def prepare(envoy: Envoy, callgrind: bool) -> list[Row]:
        fill = SMALL_TOKENS if (callgrind or not stand_in) else tokens
        memory_before = None if callgrind else envoy.memory()
        issued, seconds = fill_store(envoy.listener_port, fill - POOL, timeout=1800)
        pool = issue_tokens(envoy.listener_port, POOL)
        issued += len(pool)
        pass_name = "callgrind" if callgrind else "native"
        FILLS[f"{name}/{pass_name}"] = {"tokens": issued, "seconds": round(seconds, 1),
                                       "per_second": round(issued / seconds) if seconds else None}
        log(f"{name} ({pass_name}): {issued} live tokens issued in {seconds:.1f} s")
        if issued < fill * 0.99:
            raise BenchError(f"{name}: only {issued} of {fill} tokens issued")
        if memory_before is not None and stand_in:
            BIG_MEMORY.update(before=memory_before, after_fill=envoy.memory(), tokens=issued,
                              fill_done=time.time())
        # Each miss names the bucket of a live token, so it reads and scans an occupied bucket.
        misses = [bearer(cfg.random_access_token(bucket_of(t)), 401) for t in pool]
        return [Row(f"{name}_hit", [bearer(t) for t in pool]), Row(f"{name}_miss", misses)]

    return Scenario(name, config, prepare)


# The big native store's token lifetime and memory readings (set while the run goes on).
BIG_VALIDITY: dict = {}
BIG_MEMORY: dict = {}
FILLS: dict = {}
CALLGRIND: dict = {}
HOSTCALLS: dict = {}


def token_endpoint() -> Scenario:
    def config(listener_port: int, admin_port: int, callgrind: bool) -> dict:
        # Room for every grant a 5 s wrk run issues, so no row measures a full store's 503.
        # Under callgrind a few thousand grants are issued: a small store keeps its sweeper's
        # background work (which scales with capacity) from drowning the measurement.
        capacity = capacity_for(SMALL_TOKENS) if callgrind else 400_000
        plugin = cfg.tokengate_config(capacity, password_iterations=PBKDF2_ITERATIONS)
        return cfg.envoy_config(listener_port, admin_port, [cfg.wasm_filter(str(FILTER_WASM), "tokengate", plugin)])

    def prepare(_envoy: Envoy, _cg: bool) -> list[Row]:
        return [
            Row("tokengate_token_client_credentials", [CLIENT_CREDENTIALS]),
            Row(f"tokengate_token_password_pbkdf2_{PBKDF2_ITERATIONS // 1000}k", [PASSWORD_GRANT], warmup=1, count=2),
        ]

    return Scenario("tokengate_token", config, prepare)


def envoy_alone_rows() -> list[Row]:
    return [
        Row("envoy_alone", pool_of_static_tokens()),
        # The /token rows send a form POST: this is Envoy alone answering the same request.
        Row("envoy_alone_post_form", [CLIENT_CREDENTIALS]),
    ]


SCENARIOS = [
    simple("envoy_alone", lambda: [], envoy_alone_rows),
    simple("noop_wasm", lambda: [cfg.wasm_filter(str(NOOP_WASM), "noop")],
           lambda: [Row("noop_wasm", pool_of_static_tokens())]),
    simple("api_key_auth_10k", lambda: [cfg.api_key_auth_filter(STATIC_TOKENS)],
           lambda: [Row("api_key_auth_10k", pool_of_static_tokens())]),
    simple("lua_table_10k", lambda: [cfg.lua_filter(STATIC_TOKENS)],
           lambda: [Row("lua_table_10k", pool_of_static_tokens())]),
    simple("jwt_authn_hs256_cache", lambda: [cfg.jwt_authn_filter(JWKS, cache=True)],
           lambda: [Row("jwt_authn_hs256_cache", [bearer(JWT)])]),
    simple("jwt_authn_hs256_no_cache", lambda: [cfg.jwt_authn_filter(JWKS, cache=False)],
           lambda: [Row("jwt_authn_hs256_no_cache", [bearer(JWT)])]),
    tokengate_bearer("tokengate_bearer_10k", SMALL_TOKENS),
    token_endpoint(),
    tokengate_bearer("tokengate_bearer_1m", BIG_TOKENS),
]


# ---------------------------------------------------------------------------------------------
# Passes


def start_envoy(scenario: Scenario, callgrind: bool, tag: str = "") -> Envoy:
    listener_port, admin_port = free_port(), free_port()
    config = scenario.config(listener_port, admin_port, callgrind)
    envoy = Envoy(OUT / "work", scenario.name + tag, config, callgrind=callgrind)
    envoy.start()
    return envoy


def native_pass(scenarios: list[Scenario], results: dict) -> Envoy | None:
    """wrk rows. Returns the big-store Envoy still running: it stays up so its tokens can expire
    and be swept while the callgrind pass runs."""
    kept = None
    for scenario in scenarios:
        big = scenario.name == "tokengate_bearer_1m"
        if big:
            # Tokens must outlive the fill and the measurements, then expire soon after, so the
            # memory can be read again once the sweeper has passed. Size the lifetime from the
            # 10k fill's rate.
            rate = FILLS.get("tokengate_bearer_10k/native", {}).get("per_second") or 10_000
            BIG_VALIDITY["secs"] = int(BIG_TOKENS / rate * 1.5) + 90
            log(f"{scenario.name}: access tokens live {BIG_VALIDITY['secs']} s")
        envoy = start_envoy(scenario, callgrind=False)
        try:
            rows = scenario.prepare(envoy, False)
            for row in rows:
                # A second of load first: connection pools, V8 tier-up, allocator caches.
                run_wrk(OUT / "work", row.name + ".warmup", envoy.listener_port, row.requests, 1, CONNECTIONS)
                result = run_wrk(OUT / "work", row.name, envoy.listener_port, row.requests, SECONDS, CONNECTIONS)
                if result.unexpected:
                    raise BenchError(f"{row.name}: {result.unexpected} responses with an unexpected status")
                results.setdefault(row.name, {})["wrk"] = result
                log(f"{row.name}: {result.rps:,.0f} rps, p50 {result.p50_us:,.0f} us, p99 {result.p99_us:,.0f} us")
            if big:
                kept, envoy = envoy, None
        finally:
            if envoy:
                envoy.stop()
    return kept


def callgrind_pass(scenarios: list[Scenario], results: dict) -> None:
    for scenario in scenarios:
        envoy = start_envoy(scenario, callgrind=True)
        try:
            rows = scenario.prepare(envoy, True)
            for row in rows:
                counted = envoy.count_instructions(row.requests, row.warmup, row.count)
                results.setdefault(row.name, {})["instructions"] = counted.per_request
                CALLGRIND[row.name] = {"requests": counted.requests, "seconds": round(counted.seconds, 1),
                                       "busy_total": counted.busy_total, "idle_total": counted.idle_total}
                keep_annotation(counted.dump, row.name)
                log(f"{row.name}: {counted.per_request:,.0f} instructions/request ({counted.requests} requests "
                    f"in {counted.seconds:.1f} s; idle {counted.idle_total / counted.requests:,.0f}/request subtracted)")
        finally:
            envoy.stop()


# Host calls a tokengate request makes, measured one kind at a time with bench/hostcall-probe.
HOSTCALL_KINDS = [
    "get_header", "get_headers", "set_header", "remove_absent_header",
    "get_shared_data", "set_shared_data", "get_current_time", "increment_metric",
]
HOSTCALLS_PER_REQUEST = 10


def hostcall_pass() -> dict:
    """Instructions per host call: the probe filter making 10 calls of one kind per request,
    against the same filter making none. What tokengate's request path costs beyond the
    do-nothing floor is mostly these calls (see the report in the README)."""
    requests = pool_of_static_tokens()

    def per_request(kind: str, count: int) -> float:
        scenario = simple(f"probe_{kind}_{count}",
                          lambda: [cfg.wasm_filter(str(PROBE_WASM), "probe", f"{kind} {count}")], lambda: [])
        envoy = start_envoy(scenario, callgrind=True)
        try:
            return envoy.count_instructions(requests, 200, 1000).per_request
        finally:
            envoy.stop()

    baseline = per_request("get_header", 0)
    costs = {}
    for kind in HOSTCALL_KINDS:
        costs[kind] = round((per_request(kind, HOSTCALLS_PER_REQUEST) - baseline) / HOSTCALLS_PER_REQUEST)
        log(f"host call {kind}: {costs[kind]:,} instructions")
    return {"probe_baseline_per_request": round(baseline), "instructions_per_call": costs}


def keep_annotation(dump: Path, row: str) -> None:
    """Keeps the row's callgrind dump and callgrind_annotate's top functions beside the summary.
    The pip wheel's Envoy is stripped and V8's generated code (the wasm itself) has no symbols,
    so this splits the cost by object (envoy, libc, generated code) more than by function."""
    target = OUT / f"{row}.callgrind"
    dump.replace(target)
    with open(OUT / f"{row}.annotate.txt", "w") as out:
        subprocess.run(["callgrind_annotate", "--threshold=99", str(target)], stdout=out,
                       stderr=subprocess.STDOUT, timeout=300, check=False)


def startup_times(runs: int = 7) -> dict:
    """Milliseconds from spawning Envoy to its first served request: Envoy alone vs Envoy with
    tokengate and the demo configuration (envoy/envoy.yaml's plugin JSON), median of `runs`."""

    def demo_plugin_config() -> str:
        import yaml  # PyYAML, from tests/requirements.txt

        demo = yaml.safe_load((REPO / "envoy/envoy.yaml").read_text())
        for listener in demo["static_resources"]["listeners"]:
            for chain in listener["filter_chains"]:
                for network_filter in chain["filters"]:
                    for http_filter in network_filter["typed_config"].get("http_filters", []):
                        if http_filter["name"] == "envoy.filters.http.wasm":
                            return http_filter["typed_config"]["config"]["configuration"]["value"]
        raise BenchError("no wasm filter in envoy/envoy.yaml")

    plugin = demo_plugin_config()
    setups = {
        "envoy_alone": lambda lp, ap: cfg.envoy_config(lp, ap, []),
        # The V8 floor: what loading any wasm filter adds to start-up.
        "noop_wasm": lambda lp, ap: cfg.envoy_config(lp, ap, [cfg.wasm_filter(str(NOOP_WASM), "noop")]),
        "tokengate_demo": lambda lp, ap: cfg.envoy_config(
            lp, ap, [cfg.wasm_filter(str(FILTER_WASM), "tokengate", plugin)]),
    }
    times: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(runs):
        for name, setup in setups.items():  # interleaved, so drift hits both alike
            envoy = Envoy(OUT / "work", f"startup_{name}", setup(free_port(), free_port()), pin=False)
            try:
                times[name].append(envoy.start() * 1000)
            finally:
                envoy.stop()
    return {name: {"median_ms": round(statistics.median(values), 1), "runs_ms": [round(v, 1) for v in values]}
            for name, values in times.items()}


def finish_memory(envoy: Envoy) -> None:
    """Reads the big store's heap again once every token has expired and the sweeper (each VM
    sweeps 1/600 of the table a second; with the main thread and one worker, a full pass takes
    about 300 s) has been over it."""
    if not BIG_MEMORY:
        return
    expiry = BIG_MEMORY["fill_done"] + BIG_VALIDITY["secs"]
    ready_at = expiry + 320
    wait = ready_at - time.time()
    if wait > 0:
        log(f"waiting {wait:.0f} s for the 1M tokens to expire and be swept")
        time.sleep(wait)
    # Then follow `allocated` until it stops falling (bounded): the sweeper works in slices.
    readings = [envoy.memory()]
    for _ in range(12):
        time.sleep(10)
        readings.append(envoy.memory())
        if readings[-1]["allocated"] >= readings[-2]["allocated"] * 0.999:
            break
    BIG_MEMORY["after_expiry"] = readings[-1]


# ---------------------------------------------------------------------------------------------
# Report


ORDER_LABELS = {
    "envoy_alone": "Envoy alone",
    "envoy_alone_post_form": "Envoy alone, POST form body",
    "api_key_auth_10k": "native api_key_auth (10k keys)",
    "lua_table_10k": "Lua filter, table lookup (10k)",
    "noop_wasm": "wasm filter that does nothing (V8)",
    "jwt_authn_hs256_cache": "native jwt_authn HS256, cache on",
    "jwt_authn_hs256_no_cache": "native jwt_authn HS256, no cache",
    "tokengate_bearer_10k_hit": "tokengate Bearer, 10k tokens, hit (200)",
    "tokengate_bearer_10k_miss": "tokengate Bearer, 10k tokens, miss (401)",
    "tokengate_bearer_1m_hit": "tokengate Bearer, 1M tokens, hit (200)",
    "tokengate_bearer_1m_miss": "tokengate Bearer, 1M tokens, miss (401)",
    "tokengate_token_client_credentials": "tokengate /token client_credentials",
}


def label(name: str) -> str:
    if name.startswith("tokengate_token_password"):
        return f"tokengate /token password (pbkdf2 {PBKDF2_ITERATIONS:,} it.)"
    return ORDER_LABELS.get(name, name)


def report(results: dict, startup: dict, sizes: dict) -> dict:
    base = results.get("envoy_alone", {}).get("instructions")
    floor = results.get("noop_wasm", {}).get("instructions")
    configurations = []
    lines = [
        f"| configuration | instructions / request | × Envoy alone | × wasm floor | rps | p50 µs | p99 µs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, figures in results.items():
        instructions = figures.get("instructions")
        load: LoadResult | None = figures.get("wrk")
        configurations.append({
            "name": name,
            "instructions_per_request": round(instructions) if instructions else None,
            "rps": round(load.rps) if load else None,
            "p50_us": round(load.p50_us) if load else None,
            "p99_us": round(load.p99_us) if load else None,
        })

        def number(value) -> str:
            return f"{value:,.0f}" if value else "–"

        def ratio(reference) -> str:
            return f"{instructions / reference:.2f}" if instructions and reference else "–"

        cells = [label(name), number(instructions), ratio(base), ratio(floor),
                 number(load and load.rps), number(load and load.p50_us), number(load and load.p99_us)]
        lines.append("| " + " | ".join(cells) + " |")
    summary = {"configurations": configurations}
    memory = memory_figures()
    summary["bytes_per_token"] = memory.get("bytes_per_token")
    summary["startup_ms"] = startup.get("tokengate_demo", {}).get("median_ms")
    summary["filter_wasm_bytes"] = sizes["filter_wasm_bytes"]
    if sizes.get("web_wasm_bytes"):
        summary["web_wasm_bytes"] = sizes["web_wasm_bytes"]

    print()
    print("\n".join(lines))
    print()
    if memory:
        print(f"Heap per live token at {memory['tokens']:,} tokens: {memory['bytes_per_token']} bytes allocated "
              f"({memory['rss_bytes_per_token']} bytes RSS); allocated before fill {memory['allocated_before']:,}, "
              f"after fill {memory['allocated_after_fill']:,}, after expiry+sweep "
              f"{memory.get('allocated_after_expiry', 0):,} ({memory.get('after_expiry_vs_before', '–')} × before)")
    for name, figures in startup.items():
        print(f"Start-up to first served request, {name}: {figures['median_ms']} ms (runs {figures['runs_ms']})")
    if HOSTCALLS:
        calls = HOSTCALLS["instructions_per_call"]
        print("Instructions per proxy-wasm host call (bench/hostcall-probe): "
              + ", ".join(f"{kind} {cost:,}" for kind, cost in calls.items()))
    print(f"Filter .wasm: {sizes['filter_wasm_bytes']:,} bytes; do-nothing .wasm: {sizes['noop_wasm_bytes']:,} bytes; "
          f"web .wasm: {sizes.get('web_wasm_bytes') or 'not built'}")
    return summary


def memory_figures() -> dict:
    if "after_fill" not in BIG_MEMORY:
        return {}
    before, after, tokens = BIG_MEMORY["before"], BIG_MEMORY["after_fill"], BIG_MEMORY["tokens"]
    figures = {
        "tokens": tokens,
        "bytes_per_token": round((after["allocated"] - before["allocated"]) / tokens, 1),
        "rss_bytes_per_token": round((after["rss"] - before["rss"]) / tokens, 1),
        "allocated_before": before["allocated"],
        "allocated_after_fill": after["allocated"],
        "rss_before": before["rss"],
        "rss_after_fill": after["rss"],
    }
    if "after_expiry" in BIG_MEMORY:
        expired = BIG_MEMORY["after_expiry"]
        figures.update(
            allocated_after_expiry=expired["allocated"],
            rss_after_expiry=expired["rss"],
            after_expiry_vs_before=round(expired["allocated"] / before["allocated"], 3),
        )
    return figures


def wasm_sizes() -> dict:
    web = next((path for path in WEB_WASM_CANDIDATES if path.exists()), None)
    return {
        "filter_wasm_bytes": FILTER_WASM.stat().st_size,
        "noop_wasm_bytes": NOOP_WASM.stat().st_size,
        "web_wasm_bytes": web.stat().st_size if web else None,
        "web_wasm_path": str(web.relative_to(REPO)) if web else None,
    }


def main() -> int:
    # A Ctrl-C or a SIGTERM unwinds through the `finally`s, so no Envoy is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    (OUT / "work").mkdir(parents=True, exist_ok=True)
    for path in (FILTER_WASM, NOOP_WASM, PROBE_WASM):
        if not path.exists():
            raise BenchError(f"{path} is missing: run `make bench`, which builds it")
    only = {name for name in os.environ.get("BENCH_ONLY", "").split(",") if name}
    scenarios = [s for s in SCENARIOS if not only or s.name in only]
    started = time.monotonic()
    results: dict = {}

    log("start-up times")
    startup = startup_times()
    kept = None
    try:
        if not os.environ.get("BENCH_NO_WRK"):
            log(f"native pass: wrk, {SECONDS} s per row, Envoy on CPU {os.environ.get('BENCH_ENVOY_CPU', '0')}")
            kept = native_pass(scenarios, results)
        if not os.environ.get("BENCH_NO_CALLGRIND"):
            log(f"callgrind pass: {REQUESTS} requests per row after {WARMUP} warm-up")
            callgrind_pass(scenarios, results)
        if not os.environ.get("BENCH_NO_CALLGRIND") and not os.environ.get("BENCH_NO_HOSTCALLS"):
            log("host call costs (callgrind)")
            HOSTCALLS.update(hostcall_pass())
        if kept:
            finish_memory(kept)
    finally:
        if kept:
            kept.stop()

    # Rows in the table's order: the references first, then ours.
    ordered = {name: results[name] for name in ORDER_LABELS if name in results}
    ordered.update({name: value for name, value in results.items() if name not in ordered})
    sizes = wasm_sizes()
    summary = report(ordered, startup, sizes)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    details = {
        "startup": startup,
        "memory": memory_figures(),
        "fills": FILLS,
        "callgrind": CALLGRIND,
        "hostcalls": HOSTCALLS,
        "big_token_validity_secs": BIG_VALIDITY.get("secs"),
        "wasm": sizes,
        "settings": {"wrk_seconds": SECONDS, "wrk_connections": CONNECTIONS, "callgrind_requests": REQUESTS,
                     "callgrind_warmup": WARMUP, "pbkdf2_iterations": PBKDF2_ITERATIONS},
        "wall_seconds": round(time.monotonic() - started),
    }
    (OUT / "details.json").write_text(json.dumps(details, indent=2) + "\n")
    log(f"wrote {OUT / 'summary.json'} and details.json in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
