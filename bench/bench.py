"""`make bench`: tokengate against Envoy alone, a do-nothing wasm filter and Envoy's own auth
filters, side by side, in one run.

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

Fleet mode's rows (bench/fleet_bench.py: a Bearer hit on a replica's cache, the first use of a
token on another replica, /token, and etcd's database per grant at 100,000 grants) run the same
Envoy with fleet mode added, against a real 1-member etcd that each scenario starts and stops.

Scenarios, for BENCH_ONLY: envoy_alone, noop_wasm, noop_wasm_trimmed, api_key_auth_10k, lua_table_10k,
jwt_authn_hs256_cache, jwt_authn_hs256_no_cache, tokengate_bearer_10k, tokengate_bearer_tier_10k,
tokengate_bearer_sandbox_10k, tokengate_bearer_backend_jwt_10k, tokengate_bearer_jwt_10k,
tokengate_bearer_audience_10k, tokengate_token, tokengate_token_jwt, tokengate_token_resource,
tokengate_authorize (callgrind only),
tokengate_bearer_1m, fleet_bearer_hit, fleet_bearer_miss, fleet_token, fleet_etcd_size.

Environment knobs (all optional): BENCH_SECONDS (wrk duration, 5), BENCH_REQUESTS (callgrind
requests per row, 2000), BENCH_WARMUP (300), BENCH_BIG_TOKENS (1000000), BENCH_ONLY (comma-
separated scenario names), BENCH_NO_CALLGRIND=1, BENCH_NO_WRK=1, BENCH_NO_HOSTCALLS=1,
BENCH_NO_STARTUP_INSTRUCTIONS=1 (start-up under callgrind, a few minutes), and the
fleet rows' BENCH_FIRST_USES (1000) and BENCH_FLEET_GRANTS (100000).
"""

from __future__ import annotations

import json
import os
import re
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
import fleet_bench  # noqa: E402
from measure import (  # noqa: E402
    BenchError,
    Client,
    Envoy,
    Instructions,
    LoadResult,
    Request,
    dump_total,
    free_port,
)
from workload import (  # noqa: E402
    CLIENT_CREDENTIALS,
    CLIENT_CREDENTIALS_WITH_RESOURCE,
    CONNECTIONS,
    FILTER_WASM,
    OUT,
    POOL,
    REPO,
    REQUESTS,
    SECONDS,
    SMALL_TOKENS,
    TOKEN_HEADERS,
    WARMUP,
    bearer,
    bucket_of,
    capacity_for,
    fill_store,
    issue_tokens,
    log,
    wrk_row,
)

NOOP_WASM = REPO / "target/bench/noop-filter/wasm32-wasip1/release/noop_filter.wasm"
# The same module with only the exports a filter reading request headers needs (the Makefile's
# NOOP_EXPORTS), as tokengate's release build is trimmed: the floor for tokengate's rows.
NOOP_WASM_TRIMMED = REPO / "target/bench/noop-filter/noop_filter_trimmed.wasm"
PROBE_WASM = REPO / "target/bench/hostcall-probe/wasm32-wasip1/release/hostcall_probe.wasm"
# The browser build: the wasm-bindgen package if `make build-web` made it, else cargo's output.
WEB_WASM_CANDIDATES = [
    REPO / "pkg/tokengate_bg.wasm",
    REPO / "target/wasm32-unknown-unknown/web-release/tokengate.wasm",
    REPO / "target/wasm32-unknown-unknown/release/tokengate.wasm",
]

BIG_TOKENS = int(os.environ.get("BENCH_BIG_TOKENS", "1000000"))
# The password grant runs pbkdf2-sha256 with the README's example cost; each request is
# hundreds of millions of instructions, so callgrind measures only a few of them.
PBKDF2_ITERATIONS = int(os.environ.get("BENCH_PBKDF2_ITERATIONS", "100000"))

PASSWORD_GRANT = Request(
    "POST",
    cfg.TOKEN_PATH,
    TOKEN_HEADERS,
    f"grant_type=password&username={cfg.USERNAME}&password={cfg.PASSWORD}".encode(),
)

# ---------------------------------------------------------------------------------------------
# Scenarios: one Envoy configuration each, measured as one or more rows.


@dataclass
class Row:
    name: str
    requests: list[Request]
    warmup: int = WARMUP
    count: int = REQUESTS
    # wrk replays the same requests; a row whose every request is used once cannot be driven so.
    wrk: bool = True


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


# Tokens for the cold-memory row: each used once, more than a worker remembers
# (src/state/remembered.rs), so every request reads the store. Its Envoy is warm from the rows
# before it, so the row has no warm-up of its own (which would reuse tokens).
COLD_TOKENS = REQUESTS


def tokengate_bearer(name: str, tokens: int, tier: bool = False, sandbox: bool = False, cold: bool = False,
                     backend_jwt: bool = False, jwt: bool = False, audience: bool = False) -> Scenario:
    """tokengate validating Bearer tokens with `tokens` live grants in the store.

    Natively the store really is filled with `tokens` grants through /token. Under callgrind,
    issuing runs at about 700 grants a second, so a million would take 24 minutes. For a big
    store the callgrind pass therefore runs a stand-in with what the hit path's instruction
    count depends on: a 10,000-grant store filled to the same 80 % (so each bucket scanned holds
    as many grants as in the big store), in a shared-data map with the big store's key count
    (client registration's bucket table, sized like the big store, lives in the same map and is
    never swept). Envoy's map lookup costs the same at any size; only cache misses, which
    callgrind does not count and wrk does see, grow with the real store.

    `audience` (with `tier`): the API requires its own audience and every token is issued with
    `resource` naming it (RFC 8707), so each hit also checks the token's audience.
    """
    grant = CLIENT_CREDENTIALS_WITH_RESOURCE if audience else CLIENT_CREDENTIALS
    stand_in = tokens > SMALL_TOKENS

    def config(listener_port: int, admin_port: int, callgrind: bool) -> dict:
        if callgrind and stand_in:
            plugin = cfg.tokengate_config(capacity_for(SMALL_TOKENS), extra_keys_capacity=capacity_for(tokens))
        else:
            validity = BIG_VALIDITY.get("secs", 3600) if stand_in else 3600
            plugin = cfg.tokengate_config(capacity_for(tokens), validity_secs=validity, tier=tier or sandbox,
                                          sandbox=sandbox, backend_jwt=backend_jwt, jwt=jwt, audience=audience)
        filters = [cfg.wasm_filter(str(FILTER_WASM), "tokengate", plugin)]
        return cfg.envoy_config(listener_port, admin_port, filters, sandbox_route=sandbox)

    def prepare(envoy: Envoy, callgrind: bool) -> list[Row]:
        fill = SMALL_TOKENS if (callgrind or not stand_in) else tokens
        memory_before = None if callgrind else envoy.memory()
        cold_pool = COLD_TOKENS if cold else 0
        issued, seconds = fill_store(envoy.listener_port, fill - POOL - cold_pool, timeout=1800, request=grant)
        pool = issue_tokens(envoy.listener_port, POOL, grant)
        cold_tokens = issue_tokens(envoy.listener_port, cold_pool) if cold else []
        issued += len(pool) + len(cold_tokens)
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
        # The hit row repeats POOL tokens, so after the warm-up each worker remembers them all.
        rows = [Row(f"{name}_hit", [bearer(t) for t in pool]), Row(f"{name}_miss", misses)]
        if cold:
            rows.append(Row(f"{name}_hit_cold", [bearer(t) for t in cold_tokens], warmup=0))
        return rows

    return Scenario(name, config, prepare)


# The big native store's token lifetime and memory readings (set while the run goes on).
BIG_VALIDITY: dict = {}
BIG_MEMORY: dict = {}
FILLS: dict = {}
CALLGRIND: dict = {}
HOSTCALLS: dict = {}
STARTUP_INSTRUCTIONS: dict = {}


def token_endpoint(jwt: bool = False) -> Scenario:
    """/token; with `jwt`, the application's access tokens are signed JWTs (RFC 9068)."""
    suffix = "_jwt" if jwt else ""
    def config(listener_port: int, admin_port: int, callgrind: bool) -> dict:
        # Room for every grant a 5 s wrk run issues, so no row measures a full store's 503.
        # Under callgrind a few thousand grants are issued: a small store keeps its sweeper's
        # background work (which scales with capacity) from drowning the measurement.
        capacity = capacity_for(SMALL_TOKENS) if callgrind else 400_000
        plugin = cfg.tokengate_config(capacity, password_iterations=PBKDF2_ITERATIONS, jwt=jwt)
        return cfg.envoy_config(listener_port, admin_port, [cfg.wasm_filter(str(FILTER_WASM), "tokengate", plugin)])

    def prepare(_envoy: Envoy, _cg: bool) -> list[Row]:
        if jwt:  # the password grant's cost is PBKDF2's, measured once by the opaque rows
            return [Row("tokengate_token_client_credentials_jwt", [CLIENT_CREDENTIALS])]
        return [
            Row("tokengate_token_client_credentials", [CLIENT_CREDENTIALS]),
            Row(f"tokengate_token_password_pbkdf2_{PBKDF2_ITERATIONS // 1000}k", [PASSWORD_GRANT], warmup=1, count=2),
        ]

    return Scenario("tokengate_token" + suffix, config, prepare)


def token_endpoint_with_resource() -> Scenario:
    """/token client_credentials on a config whose API has a resource identifier, with and
    without RFC 8707's `resource`: the same Envoy, so the two rows differ only by the parameter
    (checked against the APIs' resources, remembered in the grant)."""
    def config(listener_port: int, admin_port: int, callgrind: bool) -> dict:
        capacity = capacity_for(SMALL_TOKENS) if callgrind else 400_000  # as token_endpoint's
        plugin = cfg.tokengate_config(capacity, tier=True, audience=True)
        return cfg.envoy_config(listener_port, admin_port, [cfg.wasm_filter(str(FILTER_WASM), "tokengate", plugin)])

    def prepare(_envoy: Envoy, _cg: bool) -> list[Row]:
        return [Row("tokengate_token_client_credentials_api", [CLIENT_CREDENTIALS]),
                Row("tokengate_token_client_credentials_resource", [CLIENT_CREDENTIALS_WITH_RESOURCE])]

    return Scenario("tokengate_token_resource", config, prepare)


AUTHORIZE_QUERY = (
    "/authorize?response_type=code&client_id=bench-spa&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb"
    "&scope=orders%3Aread&state=bench-state&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    "&code_challenge_method=S256"
)
LOGIN_HANDLE = re.compile(rb'name="handle" value="([^"]+)"')


def authorize_endpoint() -> Scenario:
    """The authorization code flow's browser side: GET /authorize (checks, the request sealed
    into the page's handle, the login page) and POST /authorize (the handle taken,
    the password checked, a code stored, the 302 back). The user's password is plaintext here:
    PBKDF2's cost is the password grant row's. Each POST spends a handle, fetched beforehand
    with GETs, so the rows are callgrind only (wrk would replay spent handles)."""

    def config(listener_port: int, admin_port: int, _callgrind: bool) -> dict:
        plugin = json.loads(cfg.tokengate_config(capacity_for(SMALL_TOKENS)))
        plugin["applications"].append({
            "consumer_key": "bench-spa", "public": True, "grant_types": ["authorization_code"],
            "redirect_uris": ["http://127.0.0.1/cb"], "scopes": [cfg.API_SCOPE],
        })
        # Room for every ticket both rows leave behind (they live the whole run).
        plugin["authorization"] = {"capacity": 4 * (WARMUP + REQUESTS) * 2, "login_lifetime_secs": 600}
        return cfg.envoy_config(listener_port, admin_port,
                                [cfg.wasm_filter(str(FILTER_WASM), "tokengate", json.dumps(plugin))])

    def prepare(envoy: Envoy, _cg: bool) -> list[Row]:
        page = Request("GET", AUTHORIZE_QUERY)
        client = Client(envoy.listener_port, timeout=300)
        handles = []
        try:
            for _ in range(WARMUP + REQUESTS):
                status, body = client.send(page)
                found = LOGIN_HANDLE.search(body)
                if status != 200 or not found:
                    raise BenchError(f"GET /authorize answered {status}: {body[:200]!r}")
                handles.append(found.group(1).decode())
        finally:
            client.close()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        posts = [Request("POST", "/authorize", form,
                         f"handle={handle}&username={cfg.USERNAME}&password={cfg.PASSWORD}".encode(), 302)
                 for handle in handles]
        # The row's own warm-up would start the list over (spent handles): warm up here, with
        # handles of its own, and measure the rest once each.
        client = Client(envoy.listener_port, timeout=300)
        try:
            client.run(posts[:WARMUP], WARMUP)
        finally:
            client.close()
        return [Row("tokengate_authorize_get", [page], wrk=False),
                Row("tokengate_authorize_post", posts[WARMUP:], warmup=0, wrk=False)]

    return Scenario("tokengate_authorize", config, prepare)


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
    simple("noop_wasm_trimmed", lambda: [cfg.wasm_filter(str(NOOP_WASM_TRIMMED), "noop")],
           lambda: [Row("noop_wasm_trimmed", pool_of_static_tokens())]),
    simple("api_key_auth_10k", lambda: [cfg.api_key_auth_filter(STATIC_TOKENS)],
           lambda: [Row("api_key_auth_10k", pool_of_static_tokens())]),
    simple("lua_table_10k", lambda: [cfg.lua_filter(STATIC_TOKENS)],
           lambda: [Row("lua_table_10k", pool_of_static_tokens())]),
    simple("jwt_authn_hs256_cache", lambda: [cfg.jwt_authn_filter(JWKS, cache=True)],
           lambda: [Row("jwt_authn_hs256_cache", [bearer(JWT)])]),
    simple("jwt_authn_hs256_no_cache", lambda: [cfg.jwt_authn_filter(JWKS, cache=False)],
           lambda: [Row("jwt_authn_hs256_no_cache", [bearer(JWT)])]),
    tokengate_bearer("tokengate_bearer_10k", SMALL_TOKENS, cold=True),
    tokengate_bearer("tokengate_bearer_tier_10k", SMALL_TOKENS, tier=True),
    tokengate_bearer("tokengate_bearer_sandbox_10k", SMALL_TOKENS, sandbox=True),
    tokengate_bearer("tokengate_bearer_backend_jwt_10k", SMALL_TOKENS, tier=True, backend_jwt=True),
    tokengate_bearer("tokengate_bearer_jwt_10k", SMALL_TOKENS, jwt=True),
    tokengate_bearer("tokengate_bearer_audience_10k", SMALL_TOKENS, tier=True, audience=True),
    token_endpoint(),
    token_endpoint(jwt=True),
    token_endpoint_with_resource(),
    authorize_endpoint(),
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


class Recorder:
    """Where both passes put their figures: `results` (the table's rows, by name) and the
    callgrind details beside them. The fleet rows (bench/fleet_bench.py) record through it too."""

    def __init__(self, results: dict):
        self.results = results

    def load(self, name: str, result: LoadResult) -> None:
        self.results.setdefault(name, {})["wrk"] = result
        log(f"{name}: {result.rps:,.0f} rps, p50 {result.p50_us:,.0f} us, p99 {result.p99_us:,.0f} us")

    def instructions(self, name: str, counted: Instructions) -> None:
        self.results.setdefault(name, {})["instructions"] = counted.per_request
        CALLGRIND[name] = {"requests": counted.requests, "seconds": round(counted.seconds, 1),
                           "busy_total": counted.busy_total, "idle_total": counted.idle_total}
        keep_annotation(counted.dump, name)
        log(f"{name}: {counted.per_request:,.0f} instructions/request ({counted.requests} requests "
            f"in {counted.seconds:.1f} s; idle {counted.idle_total / counted.requests:,.0f}/request subtracted)")

    def extra(self, name: str, **figures: object) -> None:
        self.results.setdefault(name, {}).update(figures)


def native_pass(scenarios: list[Scenario], record: Recorder) -> Envoy | None:
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
            for row in (row for row in rows if row.wrk):
                result, _ = wrk_row(envoy, row.name, row.requests)
                record.load(row.name, result)
            if big:
                kept, envoy = envoy, None
        finally:
            if envoy:
                envoy.stop()
    return kept


def callgrind_pass(scenarios: list[Scenario], record: Recorder) -> None:
    for scenario in scenarios:
        envoy = start_envoy(scenario, callgrind=True)
        try:
            rows = scenario.prepare(envoy, True)
            for row in rows:
                record.instructions(row.name, envoy.count_instructions(row.requests, row.warmup, row.count))
        finally:
            envoy.stop()


def fleet_pass(scenarios: list[fleet_bench.FleetScenario], record: Recorder, callgrind: bool) -> None:
    """The fleet rows: each scenario starts (and stops) its own etcd and Envoys."""
    for scenario in scenarios:
        if callgrind and not scenario.callgrind:
            continue
        log(f"{scenario.name} ({'callgrind' if callgrind else 'native'})")
        scenario.run(record, callgrind)


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
        "noop_wasm_trimmed": lambda lp, ap: cfg.envoy_config(
            lp, ap, [cfg.wasm_filter(str(NOOP_WASM_TRIMMED), "noop")]),
        "tokengate_demo": lambda lp, ap: cfg.envoy_config(
            lp, ap, [cfg.wasm_filter(str(FILTER_WASM), "tokengate", plugin)]),
    }
    STARTUP_SETUPS.update(setups)
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


STARTUP_SETUPS: dict = {}
STARTUP_WASM = {"noop_wasm": NOOP_WASM, "noop_wasm_trimmed": NOOP_WASM_TRIMMED, "tokengate_demo": FILTER_WASM}


def startup_instructions() -> dict:
    """Instructions from Envoy's first to its first served request, under callgrind, for each
    start-up setup; and for each wasm one, what it adds to Envoy alone per KB of its .wasm.
    proxy-wasm starts V8 with its baseline compiler off, so TurboFan compiles every function
    of the module before the first request: this figure follows the module's size."""
    totals = {}
    for name, setup in STARTUP_SETUPS.items():
        envoy = Envoy(OUT / "work", f"startup_cg_{name}", setup(free_port(), free_port()),
                      callgrind=True, count_startup=True)
        try:
            envoy.start()
            dump = envoy.dump()
            totals[name] = dump_total(dump)
            dump.unlink()
        finally:
            envoy.stop()
        log(f"start-up under callgrind, {name}: {totals[name]:,} instructions")
    figures: dict = {"instructions": totals}
    alone = totals.get("envoy_alone")
    if alone:
        figures["added_per_kb"] = {
            name: round((totals[name] - alone) / (path.stat().st_size / 1024))
            for name, path in STARTUP_WASM.items() if name in totals}
    return figures


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
    "noop_wasm_trimmed": "wasm filter that does nothing, only the exports it needs",
    "jwt_authn_hs256_cache": "native jwt_authn HS256, cache on",
    "jwt_authn_hs256_no_cache": "native jwt_authn HS256, no cache",
    "tokengate_bearer_10k_hit": "tokengate Bearer, 10k tokens, hit (200), warm worker memory",
    "tokengate_bearer_10k_hit_cold": "tokengate Bearer, 10k tokens, hit (200), cold worker memory",
    "fleet_bearer_hit": "fleet Bearer, 10k tokens, cached (200)",
    "fleet_bearer_miss": "fleet Bearer, first use on another replica (200)",
    "tokengate_bearer_10k_miss": "tokengate Bearer, 10k tokens, miss (401)",
    "tokengate_bearer_tier_10k_hit": "tokengate Bearer, subscribed, rated tier, 10k tokens, hit (200)",
    "tokengate_bearer_tier_10k_miss": "tokengate Bearer, subscribed, rated tier, 10k tokens, miss (401)",
    "tokengate_bearer_sandbox_10k_hit": "tokengate Bearer, sandbox token, rated tier, 10k tokens, hit (200)",
    "tokengate_bearer_sandbox_10k_miss": "tokengate Bearer, sandbox token, rated tier, 10k tokens, miss (401)",
    "tokengate_bearer_audience_10k_hit": "tokengate Bearer, audience-bound token (RFC 8707), rated tier, 10k tokens, hit (200)",
    "tokengate_bearer_audience_10k_miss": "tokengate Bearer, audience required, rated tier, 10k tokens, miss (401)",
    "tokengate_bearer_1m_hit": "tokengate Bearer, 1M tokens, hit (200)",
    "tokengate_bearer_1m_miss": "tokengate Bearer, 1M tokens, miss (401)",
    "tokengate_token_client_credentials": "tokengate /token client_credentials",
    "tokengate_token_client_credentials_api": "tokengate /token client_credentials, API with a resource, no `resource`",
    "tokengate_token_client_credentials_resource": "tokengate /token client_credentials with `resource` (RFC 8707)",
    "fleet_token_client_credentials": "fleet /token client_credentials",
}
# Each fleet row beside the local row it is compared with.
FLEET_COUNTERPARTS = {
    "fleet_bearer_hit": "tokengate_bearer_10k_hit",
    "fleet_bearer_miss": "tokengate_bearer_10k_hit",
    "fleet_token_client_credentials": "tokengate_token_client_credentials",
}


def label(name: str) -> str:
    if name.startswith("tokengate_token_password"):
        return f"tokengate /token password (pbkdf2 {PBKDF2_ITERATIONS:,} it.)"
    return ORDER_LABELS.get(name, name)


def report(results: dict, startup: dict, sizes: dict) -> dict:
    base = results.get("envoy_alone", {}).get("instructions")
    # The floor: the do-nothing filter trimmed to the exports it needs, as tokengate is.
    floor = (results.get("noop_wasm_trimmed") or results.get("noop_wasm", {})).get("instructions")
    configurations = []
    lines = [
        "| configuration | instructions / request | × Envoy alone | × wasm floor | rps | p50 µs | p99 µs "
        "| etcd calls / request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    python_timed = False
    for name, figures in results.items():
        instructions = figures.get("instructions")
        load: LoadResult | None = figures.get("wrk")
        # A row wrk cannot drive (each request a token used once) is timed one by one in Python.
        latency = {"p50_us": load.p50_us, "p99_us": load.p99_us} if load else figures.get("latency", {})
        calls = figures.get("etcd_calls_per_request")
        entry = {
            "name": name,
            "instructions_per_request": round(instructions) if instructions else None,
            "rps": round(load.rps) if load else None,
            "p50_us": round(latency["p50_us"]) if latency else None,
            "p99_us": round(latency["p99_us"]) if latency else None,
        }
        if calls is not None:
            entry["etcd_calls_per_request"] = calls
        if figures.get("latency_method"):
            entry["latency_method"] = figures["latency_method"]
            python_timed = True
        configurations.append(entry)

        def number(value) -> str:
            return f"{value:,.0f}" if value else "–"

        def ratio(reference) -> str:
            return f"{instructions / reference:.2f}" if instructions and reference else "–"

        mark = " †" if figures.get("latency_method") else ""
        cells = [label(name), number(instructions), ratio(base), ratio(floor), number(load and load.rps),
                 number(latency.get("p50_us")) + mark, number(latency.get("p99_us")) + mark,
                 "–" if calls is None else f"{calls:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    summary = {"configurations": configurations}
    if fleet_bench.ETCD_SIZE:
        summary["fleet_etcd"] = fleet_bench.ETCD_SIZE
    memory = memory_figures()
    summary["bytes_per_token"] = memory.get("bytes_per_token")
    summary["startup_ms"] = startup.get("tokengate_demo", {}).get("median_ms")
    summary["filter_wasm_bytes"] = sizes["filter_wasm_bytes"]
    if sizes.get("web_wasm_bytes"):
        summary["web_wasm_bytes"] = sizes["web_wasm_bytes"]

    print()
    print("\n".join(lines))
    print()
    if python_timed:
        print("† one request at a time from Python on a keep-alive connection (each token used once), "
              "not wrk; see details.json for the same tokens timed again once cached")
    for fleet_row, local_row in FLEET_COUNTERPARTS.items():
        ours, theirs = (results.get(row, {}).get("instructions") for row in (fleet_row, local_row))
        if ours and theirs:
            print(f"{label(fleet_row)}: {ours / theirs:.2f} × {label(local_row)} in instructions "
                  f"({ours - theirs:+,.0f} per request)")
    if fleet_bench.ETCD_SIZE:
        size = fleet_bench.ETCD_SIZE
        before, after = size["before_compaction"], size["after_compaction_defrag"]
        print(f"etcd per live grant at {size['grants']:,} grants ({size['keys']:,} keys, values "
              f"{size['value_bytes_per_grant']} bytes/grant): dbSize {before['db_size_bytes_per_grant']} bytes, "
              f"dbSizeInUse {before.get('db_size_in_use_bytes_per_grant', '–')} bytes with history; after compact "
              f"+ defrag dbSize {after['db_size_bytes_per_grant']} bytes, dbSizeInUse "
              f"{after.get('db_size_in_use_bytes_per_grant', '–')} bytes (filled at {size['fill_per_second']:,}/s)")
    if memory:
        print(f"Heap per live token at {memory['tokens']:,} tokens: {memory['bytes_per_token']} bytes allocated "
              f"({memory['rss_bytes_per_token']} bytes RSS); allocated before fill {memory['allocated_before']:,}, "
              f"after fill {memory['allocated_after_fill']:,}, after expiry+sweep "
              f"{memory.get('allocated_after_expiry', 0):,} ({memory.get('after_expiry_vs_before', '–')} × before)")
    for name, figures in startup.items():
        print(f"Start-up to first served request, {name}: {figures['median_ms']} ms (runs {figures['runs_ms']})")
    if startup.get("noop_wasm_trimmed") and startup.get("tokengate_demo"):
        ratio = startup["tokengate_demo"]["median_ms"] / startup["noop_wasm_trimmed"]["median_ms"]
        summary["startup_vs_noop_trimmed"] = round(ratio, 2)
        print(f"Start-up, tokengate / trimmed do-nothing filter: {ratio:.2f} ×")
    if STARTUP_INSTRUCTIONS:
        totals, per_kb = STARTUP_INSTRUCTIONS["instructions"], STARTUP_INSTRUCTIONS.get("added_per_kb", {})
        summary["startup_instructions"] = totals
        summary["startup_instructions_added_per_wasm_kb"] = per_kb
        print("Start-up instructions (callgrind, spawn to first served request): "
              + ", ".join(f"{name} {count:,}" for name, count in totals.items()))
        print("  added to Envoy alone per KB of .wasm: "
              + ", ".join(f"{name} {count:,}" for name, count in per_kb.items()))
    if HOSTCALLS:
        calls = HOSTCALLS["instructions_per_call"]
        print("Instructions per proxy-wasm host call (bench/hostcall-probe): "
              + ", ".join(f"{kind} {cost:,}" for kind, cost in calls.items()))
    print(f"Filter .wasm: {sizes['filter_wasm_bytes']:,} bytes; do-nothing .wasm: {sizes['noop_wasm_bytes']:,} bytes "
          f"({sizes['noop_wasm_trimmed_bytes']:,} trimmed); "
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
        "noop_wasm_trimmed_bytes": NOOP_WASM_TRIMMED.stat().st_size,
        "web_wasm_bytes": web.stat().st_size if web else None,
        "web_wasm_path": str(web.relative_to(REPO)) if web else None,
    }


def main() -> int:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return 0
    # A Ctrl-C or a SIGTERM unwinds through the `finally`s, so no Envoy is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    (OUT / "work").mkdir(parents=True, exist_ok=True)
    for path in (FILTER_WASM, NOOP_WASM, NOOP_WASM_TRIMMED, PROBE_WASM):
        if not path.exists():
            raise BenchError(f"{path} is missing: run `make bench`, which builds it")
    only = {name for name in os.environ.get("BENCH_ONLY", "").split(",") if name}
    known = {s.name for s in SCENARIOS} | {s.name for s in fleet_bench.SCENARIOS}
    if only - known:
        raise BenchError(f"BENCH_ONLY names no scenario: {', '.join(sorted(only - known))} "
                         f"(scenarios: {', '.join(sorted(known))})")
    scenarios = [s for s in SCENARIOS if not only or s.name in only]
    fleet = [s for s in fleet_bench.SCENARIOS if not only or s.name in only]
    started = time.monotonic()
    results: dict = {}
    record = Recorder(results)

    log("start-up times")
    startup = startup_times()
    kept = None
    try:
        if not os.environ.get("BENCH_NO_WRK"):
            log(f"native pass: wrk, {SECONDS} s per row, Envoy on CPU {os.environ.get('BENCH_ENVOY_CPU', '0')}")
            kept = native_pass(scenarios, record)
            fleet_pass(fleet, record, callgrind=False)
        if not os.environ.get("BENCH_NO_CALLGRIND"):
            log(f"callgrind pass: {REQUESTS} requests per row after {WARMUP} warm-up")
            callgrind_pass(scenarios, record)
            fleet_pass(fleet, record, callgrind=True)
        if not os.environ.get("BENCH_NO_CALLGRIND") and not os.environ.get("BENCH_NO_STARTUP_INSTRUCTIONS"):
            log("start-up instructions (callgrind)")
            STARTUP_INSTRUCTIONS.update(startup_instructions())
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
        "startup_instructions": STARTUP_INSTRUCTIONS,
        "memory": memory_figures(),
        "fills": FILLS,
        "callgrind": CALLGRIND,
        "hostcalls": HOSTCALLS,
        "fleet": {**fleet_bench.DETAILS, "etcd_size": fleet_bench.ETCD_SIZE},
        "big_token_validity_secs": BIG_VALIDITY.get("secs"),
        "wasm": sizes,
        "settings": {"wrk_seconds": SECONDS, "wrk_connections": CONNECTIONS, "callgrind_requests": REQUESTS,
                     "callgrind_warmup": WARMUP, "pbkdf2_iterations": PBKDF2_ITERATIONS,
                     "fleet_first_uses": fleet_bench.FIRST_USES, "fleet_grants": fleet_bench.BIG_GRANTS},
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
