"""The fleet rows of `make bench`: tokengate in fleet mode (src/fleet) against a real etcd.

Each Envoy is the local rows' Envoy (one worker, the same `direct_response` route, the same
plugin configuration) plus exactly what envoy/fleet/envoy.yaml adds for fleet mode, taken from
that file by envoy/fleet/replicas.py: the plugin configuration's "fleet" section, the `etcd`
cluster (HTTP/2) and the watcher's bootstrap singleton in the filter's vm_id. So a fleet row
and its local row differ by fleet mode only.

etcd is one member (envoy/fleet/etcd_cluster.py), on loopback, with its data under
target/bench/work, started fresh for every scenario and pass. One member commits a write with
one fsync and no peer round trip: a 3-member cluster's writes take longer, which moves the
latency of /token and of a first use, not Envoy's instructions. etcd runs on whichever core is
free (Envoy is pinned to one and the load generator to the other), and its own work is never
in an instruction count: callgrind runs Envoy only.

Scenarios (BENCH_ONLY names) and their rows:

- fleet_bearer_hit: a Bearer check whose bucket is in this Envoy's cache: the same 10,000
  live grants (80 % of the store) and pool of 256 tokens as tokengate_bearer_10k_hit; answered
  without etcd (checked: etcd calls per request are counted from Envoy's cluster stats).
- fleet_bearer_miss: the first use of a token on a replica that has never seen its bucket.
  Replica A hands out 10,000 grants; replica B starts afterwards (its watch starts from then, so
  what A wrote before is not in B's cache) and is sent one token per bucket, each once: one
  etcd Txn per request. Instructions on B (callgrind, BENCH_FIRST_USES requests) and, natively,
  the latency of 200 first uses timed one by one in Python, with the same 200 tokens timed
  again (now cached) as the reference for what the Python client itself adds.
- fleet_token_client_credentials: /token as tokengate_token_client_credentials (same store
  capacities), each grant committed by one etcd Txn (and a LeaseGrant per 10-second window).
- fleet_etcd_size: etcd's database size per live grant with BENCH_FLEET_GRANTS (100,000)
  client_credentials grants issued through one replica (h2load), as etcd reports it
  (dbSize, dbSizeInUse), then again after `etcdctl compact` + `defrag` (history excluded).

Knobs beyond bench.py's: BENCH_FIRST_USES (1000), BENCH_FLEET_GRANTS (100000).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import envoy_configs as cfg
from measure import BenchError, Client, Envoy, Instructions, LoadResult, free_port, free_port_pair
from workload import (
    CLIENT_CREDENTIALS,
    FILTER_WASM,
    OUT,
    POOL,
    REPO,
    REQUESTS,
    SMALL_TOKENS,
    WARMUP,
    bearer,
    bucket_of,
    capacity_for,
    fill_store,
    issue_tokens,
    log,
    wrk_row,
)

sys.path.insert(0, str(REPO / "envoy" / "fleet"))

import replicas  # noqa: E402  (envoy/fleet: renders a replica's config from envoy/fleet/envoy.yaml)
from etcd_cluster import EtcdCluster  # noqa: E402

WORK = OUT / "work"
# The deployment's key prefix in etcd: every key the bench's replicas write starts with it.
PREFIX = "bench/"
# First uses measured under callgrind (each needs a bucket of its own), after a few unmeasured.
FIRST_USES = int(os.environ.get("BENCH_FIRST_USES", "1000"))
FIRST_USES_WARMUP = 100
# First uses timed natively, after a few to warm Envoy's connection to etcd and V8 up.
FIRST_USES_TIMED = 200
FIRST_USES_TIMED_WARMUP = 50
# Tokens replica A issues one by one (so their text is known) after the bulk of the fill: more
# than the store has buckets, so that about 85 % of the buckets get one we can pick.
NAMED_TOKENS = 3000
BIG_GRANTS = int(os.environ.get("BENCH_FLEET_GRANTS", "100000"))
# Envoy's stat for requests on its etcd cluster: each unary gRPC call (Txn, LeaseGrant) is one;
# the watch, one long stream opened at start-up, does not count again per message.
ETCD_CALLS = "cluster.etcd.upstream_rq_total"
CONFLICTS = "wasmcustom.tokengate.fleet.conflicts"
FAILURES = "wasmcustom.tokengate.fleet.etcd_failures"

# Figures beyond the table's, by row (into details.json), and the etcd size (into summary.json).
DETAILS: dict = {}
ETCD_SIZE: dict = {}


class Record(Protocol):
    """Where figures go: bench.py's Recorder."""

    def load(self, name: str, result: LoadResult) -> None: ...
    def instructions(self, name: str, counted: Instructions) -> None: ...
    def extra(self, name: str, **figures: object) -> None: ...


# ---------------------------------------------------------------------------------------------
# etcd, and Envoys in fleet mode


@contextmanager
def etcd_member(name: str) -> Iterator[EtcdCluster]:
    """A fresh 1-member etcd on loopback, stopped on the way out whatever happened."""
    root = WORK / f"etcd-{name}"
    shutil.rmtree(root, ignore_errors=True)
    cluster = EtcdCluster(root, 1, client_port=free_port_pair())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def plugin(capacity: int, callgrind: bool) -> dict:
    """The local rows' plugin configuration (envoy_configs.tokengate_config: the bench
    application may hold the whole store) with envoy/fleet/envoy.yaml's "fleet" section."""
    config = json.loads(cfg.tokengate_config(capacity))
    fleet = dict(replicas.plugin_config(replicas.load())["fleet"], prefix=PREFIX)
    if callgrind:
        # Under valgrind Envoy runs some 50 times slower; a call timing out would answer 503
        # (and fail the row), never change what a successful request costs.
        fleet["timeout_ms"] = 10_000
    config["fleet"] = fleet
    return config


def envoy_config(listener_port: int, admin_port: int, etcd: EtcdCluster, plugin_config: dict) -> dict:
    """The local rows' Envoy plus what envoy/fleet/envoy.yaml adds for fleet mode: the etcd
    cluster (pointed at `etcd`) and the watcher singleton, with the filter's plugin config."""
    ports = [member.client_port for member in etcd.members]
    fleet = replicas.render(listener_port, admin_port, ports, FILTER_WASM, plugin_config)
    # One string for both, as replicas.render writes it: the filter and the watcher must agree.
    plugin_json = json.dumps(plugin_config)
    config = cfg.envoy_config(listener_port, admin_port,
                              [cfg.wasm_filter(str(FILTER_WASM), "tokengate", plugin_json)])
    cluster_name = plugin_config["fleet"]["cluster"]
    config["static_resources"]["clusters"] = [
        cluster for cluster in fleet["static_resources"]["clusters"] if cluster["name"] == cluster_name
    ]
    config["bootstrap_extensions"] = fleet["bootstrap_extensions"]
    return config


@contextmanager
def replica(name: str, etcd: EtcdCluster, plugin_config: dict, callgrind: bool = False) -> Iterator[Envoy]:
    """A fleet-mode Envoy whose watch has reported, stopped on the way out."""
    config = envoy_config(free_port(), free_port(), etcd, plugin_config)
    envoy = Envoy(WORK, name, config, callgrind=callgrind)
    envoy.start()  # stops it again if it never comes up
    try:
        wait_for_watch(envoy, timeout=240 if callgrind else 30)
        yield envoy
    finally:
        envoy.stop()


def stats(envoy: Envoy, pattern: str) -> dict[str, int]:
    """Counters and gauges from Envoy's admin whose names match the regex `pattern`."""
    return envoy.admin_api.stats(pattern)


def wait_for_watch(envoy: Envoy, timeout: float) -> None:
    """Until the Envoy's watcher has heard from etcd since now (its heartbeat gauge)."""
    if not envoy.admin_api.wait_for_watch(timeout, interval=0.2):
        raise BenchError(f"{envoy.name}: the etcd watch never reported; see {envoy.log_path}:\n{envoy.log_tail()}")


class EtcdCalls:
    """What an Envoy asked of etcd over a stretch of requests: all its calls from its own
    cluster stats, and by method (Txn, LeaseGrant) from etcd's metrics (so only the Envoy
    measured may be busy meanwhile)."""

    METHODS = ("Txn", "LeaseGrant", "Range")

    def __init__(self, envoy: Envoy, etcd: EtcdCluster):
        self.envoy = envoy
        self.etcd = etcd
        self.before = self.read()

    def read(self) -> dict[str, int]:
        names = "|".join(name.replace(".", r"\.") for name in (ETCD_CALLS, CONFLICTS, FAILURES))
        counts = stats(self.envoy, f"^({names})$")
        counts = {name: counts.get(name, 0) for name in (ETCD_CALLS, CONFLICTS, FAILURES)}
        (member,) = self.etcd.members
        with urllib.request.urlopen(f"{member.client_url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        for method in self.METHODS:
            pattern = rf'^grpc_server_started_total{{[^}}]*grpc_method="{method}"[^}}]*}} (\d+)$'
            found = re.findall(pattern, metrics, re.M)
            counts[method] = sum(int(value) for value in found)
        return counts

    def per_request(self, requests: int) -> dict:
        after = self.read()
        delta = {name: after[name] - self.before[name] for name in after}
        if delta[FAILURES]:
            raise BenchError(f"{self.envoy.name}: {delta[FAILURES]} etcd calls failed")
        return {
            "etcd_calls_per_request": round(delta[ETCD_CALLS] / requests, 4),
            **{f"{method}_per_request": round(delta[method] / requests, 4) for method in self.METHODS},
            # A first use runs its decision again once etcd has answered: counted as a conflict.
            "reruns_per_request": round(delta[CONFLICTS] / requests, 4),
            "requests": requests,
        }


def fill(envoy: Envoy, grants: int, named: int) -> list[str]:
    """Issues `grants` grants through `envoy`: h2load for the bulk, then the last `named` one by
    one so their tokens are known. Returns those tokens."""
    started = time.monotonic()
    issued, _ = fill_store(envoy.listener_port, grants - named, timeout=1800)
    tokens = issue_tokens(envoy.listener_port, named)
    issued += len(tokens)
    seconds = time.monotonic() - started
    DETAILS.setdefault("fills", {})[f"{envoy.name}/{'callgrind' if envoy.callgrind else 'native'}"] = {
        "grants": issued, "seconds": round(seconds, 1), "per_second": round(issued / seconds) if seconds else None}
    log(f"{envoy.name}: {issued} grants issued through etcd in {seconds:.1f} s")
    if issued < grants * 0.99:
        raise BenchError(f"{envoy.name}: only {issued} of {grants} grants issued")
    return tokens


# ---------------------------------------------------------------------------------------------
# Scenarios


@dataclass
class FleetScenario:
    name: str
    # (recorder, callgrind?) -> None: runs the scenario's pass and records its rows
    run: Callable[[Record, bool], None]
    # False for a scenario with no Envoy figure to count
    callgrind: bool = True


def bearer_hit(record: Record, callgrind: bool) -> None:
    row = "fleet_bearer_hit"
    config = plugin(capacity_for(SMALL_TOKENS), callgrind)
    with etcd_member(row) as etcd, replica(row, etcd, config, callgrind) as envoy:
        pool = [bearer(token) for token in fill(envoy, SMALL_TOKENS, POOL)]
        calls = EtcdCalls(envoy, etcd)
        if callgrind:
            record.instructions(row, envoy.count_instructions(pool, WARMUP, REQUESTS))
            sent = WARMUP + REQUESTS
        else:
            result, sent = wrk_row(envoy, row, pool)
            record.load(row, result)
        note(record, row, callgrind, calls.per_request(sent))


def token_endpoint(record: Record, callgrind: bool) -> None:
    row = "fleet_token_client_credentials"
    # As tokengate_token: room for every grant a wrk run issues; a small store under callgrind.
    capacity = capacity_for(SMALL_TOKENS) if callgrind else 400_000
    with etcd_member(row) as etcd, replica(row, etcd, plugin(capacity, callgrind), callgrind) as envoy:
        calls = EtcdCalls(envoy, etcd)
        if callgrind:
            record.instructions(row, envoy.count_instructions([CLIENT_CREDENTIALS], WARMUP, REQUESTS))
            sent = WARMUP + REQUESTS
        else:
            result, sent = wrk_row(envoy, row, [CLIENT_CREDENTIALS])
            record.load(row, result)
        note(record, row, callgrind, calls.per_request(sent))


def one_per_bucket(tokens: list[str]) -> list[str]:
    seen: set[int] = set()
    picked = []
    for token in tokens:
        if bucket_of(token) not in seen:
            seen.add(bucket_of(token))
            picked.append(token)
    return picked


def first_use(record: Record, callgrind: bool) -> None:
    row = "fleet_bearer_miss"
    capacity = capacity_for(SMALL_TOKENS)
    with etcd_member(row) as etcd, replica(f"{row}_a", etcd, plugin(capacity, False)) as a:
        fresh = one_per_bucket(fill(a, SMALL_TOKENS, NAMED_TOKENS))
        warmup, wanted = (FIRST_USES_WARMUP, FIRST_USES) if callgrind else (FIRST_USES_TIMED_WARMUP, FIRST_USES_TIMED)
        if len(fresh) < warmup + wanted:
            raise BenchError(f"{row}: only {len(fresh)} tokens in distinct buckets, {warmup + wanted} wanted")
        warm, measured = fresh[:warmup], [bearer(token) for token in fresh[warmup:warmup + wanted]]
        # B starts only now: its watch starts from etcd's current revision, so every bucket A
        # wrote is one B has never seen.
        with replica(f"{row}_b", etcd, plugin(capacity, callgrind), callgrind) as b:
            client = Client(b.listener_port, timeout=300)
            try:
                client.run([bearer(token) for token in warm], len(warm))
            finally:
                client.close()
            calls = EtcdCalls(b, etcd)
            if callgrind:
                record.instructions(row, b.count_instructions(measured, 0, len(measured)))
                note(record, row, callgrind, calls.per_request(len(measured)))
                return
            misses = summarize(timed(b, measured))
            note(record, row, callgrind, calls.per_request(len(measured)))
            cached = summarize(timed(b, measured))  # the same tokens again: now in B's cache
            record.extra(row, latency=misses, latency_method="python")
            DETAILS[row].update(first_use_latency_us=misses, same_tokens_cached_latency_us=cached)
            log(f"{row}: first use p50 {misses['p50_us']:,} us, p99 {misses['p99_us']:,} us; the same tokens "
                f"cached p50 {cached['p50_us']:,} us, p99 {cached['p99_us']:,} us (one by one from Python)")
            DETAILS[row]["first_use_while_watched"] = first_use_while_watched(etcd, a, b, fresh[:warmup + wanted])


def first_use_while_watched(etcd: EtcdCluster, a: Envoy, b: Envoy, used: list[str]) -> dict:
    """The first use on B of tokens A issued while B was running: B's watch heard A's writes,
    so these are hits (no etcd call) although B has never been asked about them."""
    read_by_b = {bucket_of(token) for token in used}
    tokens = [t for t in one_per_bucket(issue_tokens(a.listener_port, 200)) if bucket_of(t) not in read_by_b]
    time.sleep(1.0)  # more than one watch tick: B's watch has had the events
    wait_for_watch(b, timeout=30)
    calls = EtcdCalls(b, etcd)
    client = Client(b.listener_port)
    try:
        client.run([bearer(token) for token in tokens], len(tokens))
    finally:
        client.close()
    figures = calls.per_request(len(tokens))
    log(f"fleet_bearer_miss: first use of {len(tokens)} tokens issued while B watched: "
        f"{figures['etcd_calls_per_request']} etcd calls/request")
    return figures


def timed(envoy: Envoy, requests: list) -> list[float]:
    """Microseconds each request took, sent one by one on one keep-alive connection."""
    client = Client(envoy.listener_port)
    samples = []
    try:
        for request in requests:
            started = time.perf_counter()
            status, body = client.send(request)
            samples.append((time.perf_counter() - started) * 1e6)
            if status != request.expect_status:
                raise BenchError(f"{envoy.name}: expected {request.expect_status}, got {status}: {body[:200]!r}")
    finally:
        client.close()
    return samples


def summarize(samples: list[float]) -> dict:
    ordered = sorted(samples)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))])

    return {"samples": len(ordered), "p50_us": at(0.5), "p99_us": at(0.99), "max_us": round(ordered[-1])}


def etcd_size(record: Record, _callgrind: bool) -> None:
    """etcd's database per live grant: not an Envoy figure, so it has no callgrind pass."""
    name = "fleet_etcd_size"
    capacity = capacity_for(BIG_GRANTS)
    with etcd_member(name) as etcd, replica(name, etcd, plugin(capacity, False)) as envoy:
        issued, seconds = fill_store(envoy.listener_port, BIG_GRANTS, timeout=1800)
        log(f"{name}: {issued:,} grants issued through etcd in {seconds:.1f} s ({issued / seconds:,.0f}/s)")
        if issued < BIG_GRANTS * 0.99:
            raise BenchError(f"{name}: only {issued} of {BIG_GRANTS} grants issued")
        keys, value_bytes = stored_values(etcd)
        before = db_status(etcd)
        etcd.etcdctl("compact", str(before["revision"]), "--physical", "--command-timeout=300s", timeout=310)
        etcd.etcdctl("defrag", "--command-timeout=300s", timeout=310)
        after = db_status(etcd)

    def per_grant(status: dict) -> dict:
        return {key.replace("_bytes", "_bytes_per_grant"): round(value / issued, 1)
                for key, value in status.items() if key.endswith("_bytes") and value is not None}

    ETCD_SIZE.update(
        grants=issued,
        keys=keys,
        value_bytes_per_grant=round(value_bytes / issued, 1),
        fill_seconds=round(seconds, 1),
        fill_per_second=round(issued / seconds),
        before_compaction={**before, **per_grant(before)},
        after_compaction_defrag={**after, **per_grant(after)},
    )
    log(f"{name}: {keys:,} keys; values {value_bytes / issued:,.0f} bytes/grant; db {per_grant(before)} "
        f"before compaction, {per_grant(after)} after compact + defrag")


def db_status(etcd: EtcdCluster) -> dict:
    """The member's revision and database sizes (`etcdctl endpoint status`)."""
    (status,) = json.loads(etcd.etcdctl("endpoint", "status", "-w", "json"))
    fields = status["Status"]
    return {
        "revision": fields["header"]["revision"],
        "db_size_bytes": fields["dbSize"],
        # etcd 3.4 and later: the bytes in use, without the pages free inside the file.
        "db_size_in_use_bytes": fields.get("dbSizeInUse"),
    }


def stored_values(etcd: EtcdCluster) -> tuple[int, int]:
    """Keys under the prefix and the bytes of their current values (what the grants need)."""
    import base64

    out = json.loads(etcd.etcdctl("get", PREFIX, "--prefix", "-w", "json", "--command-timeout=120s", timeout=130))
    kvs = out.get("kvs", [])
    return len(kvs), sum(len(base64.b64decode(kv.get("value", ""))) for kv in kvs)


def note(record: Record, row: str, callgrind: bool, figures: dict) -> None:
    """Keeps a row's etcd calls per request (the callgrind pass's, else the native one's)."""
    DETAILS.setdefault(row, {})[f"etcd_calls_{'callgrind' if callgrind else 'native'}"] = figures
    record.extra(row, etcd_calls_per_request=figures["etcd_calls_per_request"])
    log(f"{row}: {figures['etcd_calls_per_request']} etcd calls/request (Txn {figures['Txn_per_request']}, "
        f"LeaseGrant {figures['LeaseGrant_per_request']}), {figures['reruns_per_request']} re-runs/request "
        f"over {figures['requests']} requests")


SCENARIOS = [
    FleetScenario("fleet_bearer_hit", bearer_hit),
    FleetScenario("fleet_bearer_miss", first_use),
    FleetScenario("fleet_token", token_endpoint),
    FleetScenario("fleet_etcd_size", etcd_size, callgrind=False),
]
