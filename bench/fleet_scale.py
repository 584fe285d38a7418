"""`make fleet-scale`: a fleet replica started against a large existing state in etcd.

Not part of `make test` or `make bench`. One etcd member (envoy/fleet/etcd_cluster.py) and the
bench's fleet Envoys (bench/fleet_bench.py: one worker, envoy/fleet/envoy.yaml's fleet section,
etcd cluster and watcher):

1. replica A, its store sized for GATEWAY_GRANTS, issues that many client_credentials grants
   through /token (h2load, 32 connections), the last NAMED of them one by one so their tokens
   are known; the fill rate is measured. etcd's size per live grant as etcd reports it
   (dbSize, dbSizeInUse), then again after `etcdctl compact` at the current revision and
   `etcdctl defrag`: the history a real fill leaves (one revision per grant);
2. the buckets A wrote are copied, byte for byte, to further bucket keys until etcd holds
   GRANTS grants (copies through etcd's JSON gateway, 128 puts per Txn: /token filled at about 1,200 grants
   a second on a 2-core machine, so 1,000,000 would take some 14 minutes). A bucket's bytes hold
   no bucket number, so each copy is a bucket the filter itself could have written; its tokens
   are simply nobody's. etcd's size per grant again, before and after compaction;
3. A stops; replica B, a fresh Envoy, starts against the filled etcd. Measured from B's spawn:
   its first answer on the listener, its first 200 from /token, its first Bearer 200 for one of
   A's tokens; B's RSS then, and after REQUESTS more requests (Bearer uses of A's named tokens,
   each bucket's first use a miss that asks etcd, then hits). What B asked of etcd before it
   served (etcd's own gRPC counters by method, and B's `cluster.etcd.upstream_rq_total`) shows
   whether it read the table first: it must be a handful of calls, not one per bucket.

Figures go to target/fleet-scale/summary.json and are printed. Knobs (environment):
SCALE_GRANTS (1000000), SCALE_GATEWAY_GRANTS (50000), SCALE_NAMED (1000), SCALE_REQUESTS (10000).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleet_bench  # noqa: E402
from measure import BenchError, Client, Envoy, free_port  # noqa: E402
from workload import CLIENT_CREDENTIALS, REPO, bearer, bucket_of, capacity_for, fill_store, issue_tokens, log  # noqa: E402

from etcd_cluster import EtcdCluster  # noqa: E402  (envoy/fleet, on the path through fleet_bench)
from envoy_launcher import free_port_pair  # noqa: E402

GRANTS = int(os.environ.get("SCALE_GRANTS", "1000000"))
GATEWAY_GRANTS = int(os.environ.get("SCALE_GATEWAY_GRANTS", "50000"))
NAMED = int(os.environ.get("SCALE_NAMED", "1000"))
REQUESTS = int(os.environ.get("SCALE_REQUESTS", "10000"))
OUT = REPO / "target" / "fleet-scale"
PREFIX = fleet_bench.PREFIX
ETCD_METHODS = ("Range", "Txn", "LeaseGrant", "Watch")


def etcd_method_counts(etcd: EtcdCluster) -> dict[str, int]:
    """gRPC calls etcd has started, by method, from its /metrics (one member)."""
    (member,) = etcd.members
    with urllib.request.urlopen(f"{member.client_url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    counts = {}
    for method in ETCD_METHODS:
        pattern = rf'^grpc_server_started_total{{[^}}]*grpc_method="{method}"[^}}]*}} (\d+)$'
        counts[method] = sum(int(value) for value in re.findall(pattern, metrics, re.M))
    return counts


def etcd_size(etcd: EtcdCluster) -> dict[str, int]:
    (status,) = json.loads(etcd.etcdctl("endpoint", "status", "--write-out", "json"))
    keys = json.loads(etcd.etcdctl("get", "--prefix", f"{PREFIX}grants/", "--limit", "1", "--keys-only", "--write-out", "json"))
    return {"db_size": status["Status"]["dbSize"], "db_size_in_use": status["Status"]["dbSizeInUse"],
            "revision": status["Status"]["header"]["revision"], "grant_buckets": keys.get("count", 0)}


def per_grant(size: dict[str, int], grants: int) -> dict[str, float]:
    return {"bytes_per_grant": round(size["db_size"] / grants, 1),
            "in_use_bytes_per_grant": round(size["db_size_in_use"] / grants, 1)}


def compact_and_defragment(etcd: EtcdCluster, revision: int) -> float:
    started = time.monotonic()
    etcd.etcdctl("compact", str(revision), "--physical", timeout=600)
    etcd.etcdctl("defrag", "--command-timeout=600s", timeout=600)
    return round(time.monotonic() - started, 1)


# etcd's default --max-txn-ops: the most puts one Txn may carry.
PUTS_PER_TXN = 128
# SLOTS_PER_BUCKET in src/state/grants/mod.rs: a store of capacity C has ceil(C / 8) buckets.
SLOTS_PER_BUCKET = 8


def etcd_json(etcd: EtcdCluster, path: str, body: dict) -> dict:
    """One call to etcd's JSON gateway (keys and values base64)."""
    (member,) = etcd.members
    request = urllib.request.Request(f"{member.client_url}/v3/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def records_in(bucket: bytes) -> int:
    """Records in a bucket's bytes: `format ‖ (u16 length ‖ record)*` (src/state/buckets.rs)."""
    count, at = 0, 1
    while at + 2 <= len(bucket):
        at += 2 + int.from_bytes(bucket[at:at + 2], "big")
        count += 1
    return count


def copy_buckets(etcd: EtcdCluster, wanted: int, bucket_count: int) -> int:
    """Copies the grant buckets in etcd to the free bucket keys below `bucket_count` until etcd
    holds `wanted` grants; returns how many it holds."""
    prefix = f"{PREFIX}grants/".encode()
    answer = etcd_json(etcd, "kv/range", {"key": b64(prefix), "range_end": b64(prefix[:-1] + b"0")})
    templates = {base64.b64decode(kv["key"]): base64.b64decode(kv["value"]) for kv in answer.get("kvs", [])}
    total = sum(records_in(value) for value in templates.values())
    used = {int(key.removeprefix(prefix)) for key in templates}
    # The fuller half of the buckets, so that the table's bucket count holds `wanted` grants.
    values = sorted((value for value in templates.values() if records_in(value)), key=records_in, reverse=True)
    values = values[:max(1, len(values) // 2)]
    free = (index for index in range(bucket_count) if index not in used)
    puts: list[dict] = []
    for copied, index in enumerate(free):
        if total >= wanted:
            break
        value = values[copied % len(values)]
        puts.append({"requestPut": {"key": b64(prefix + str(index).encode()), "value": b64(value)}})
        total += records_in(value)
        if len(puts) == PUTS_PER_TXN:
            etcd_json(etcd, "kv/txn", {"success": puts})
            puts = []
    if puts:
        etcd_json(etcd, "kv/txn", {"success": puts})
    return total


def first_status(envoy: Envoy, request, want: int, spawned: float, seen: dict, timeout: float = 120) -> float:
    """Seconds from `spawned` to the first answer `want` to `request` (each try on a fresh
    connection, so whichever worker gets it); the answers before it are counted into `seen`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = Client(envoy.listener_port, timeout=10)
        try:
            status, _ = client.send(request)
        except OSError:
            status = 0
        finally:
            client.close()
        if status == want:
            return round(time.monotonic() - spawned, 3)
        seen[str(status)] = seen.get(str(status), 0) + 1
        time.sleep(0.005)
    raise BenchError(f"{envoy.name}: no {want} for {request.method} {request.path} within {timeout:.0f} s")


def fleet_stats(envoy: Envoy) -> dict[str, int]:
    wanted = r"^(wasmcustom\.tokengate\.fleet\..*|cluster\.etcd\.upstream_rq_total)$"
    return {name.removeprefix("wasmcustom.tokengate."): value
            for name, value in envoy.admin_api.stats(wanted).items() if not name.endswith("heartbeat_ms")}


def mib(value: int) -> float:
    return round(value / (1024 * 1024), 1)


def fill(etcd: EtcdCluster, summary: dict) -> list[str]:
    config = fleet_bench.plugin(capacity_for(GATEWAY_GRANTS), callgrind=False)
    with fleet_bench.replica("scale_a", etcd, config) as a:
        started = time.monotonic()
        issued, _ = fill_store(a.listener_port, GATEWAY_GRANTS - NAMED, timeout=3600)
        tokens = issue_tokens(a.listener_port, NAMED)
        seconds = time.monotonic() - started
        issued += len(tokens)
        summary["gateway_fill"] = {"grants": issued, "seconds": round(seconds, 1),
                                   "per_second": round(issued / seconds), "a_rss_mib": mib(a.memory()["rss"])}
        log(f"filled through /token: {issued} grants in {seconds:.1f} s ({issued / seconds:.0f}/s)")
        if issued < GATEWAY_GRANTS * 0.99:
            raise BenchError(f"only {issued} of {GATEWAY_GRANTS} grants issued")
    return tokens


def measure_size(etcd: EtcdCluster, grants: int, label: str, summary: dict) -> None:
    """etcd's size per grant as it is, then after compaction and defragmentation."""
    size = etcd_size(etcd)
    before = {**size, **per_grant(size, grants)}
    seconds = compact_and_defragment(etcd, size["revision"])
    size = etcd_size(etcd)
    after = {**size, **per_grant(size, grants)}
    summary[label] = {"grants": grants, "before_compaction": before, "after_compaction": after,
                      "compact_and_defrag_s": seconds}
    log(f"etcd at {grants} grants ({label}): {before} -> after compact+defrag {after}")


def first_served(b: Envoy, spawned: float, listener_s: float, etcd: EtcdCluster, before: dict,
                 token: str | None) -> dict:
    """B's first answers, counted from its spawn, and what it asked etcd until then."""
    refused: dict[str, dict] = {"token": {}, "bearer": {}}
    token_s = first_status(b, CLIENT_CREDENTIALS, 200, spawned, refused["token"])
    hit_s = first_status(b, bearer(token), 200, spawned, refused["bearer"]) if token else None
    served = etcd_method_counts(etcd)
    return {"first_listener_answer_s": round(listener_s, 3), "first_token_200_s": token_s,
            "first_bearer_200_s": hit_s, "answers_before_the_first_200": refused, "rss_mib": mib(b.memory()["rss"]),
            "etcd_calls_until_served": {m: served[m] - before[m] for m in ETCD_METHODS},
            "stats_when_served": fleet_stats(b)}


def start_replica(etcd: EtcdCluster, config: dict, name: str, summary: dict, tokens: list[str]) -> None:
    """Starts a fresh replica against what etcd holds; measures its first answers, then (with
    `tokens`) REQUESTS Bearer uses of them."""
    before = etcd_method_counts(etcd)
    b = Envoy(fleet_bench.WORK, name, fleet_bench.envoy_config(free_port(), free_port(), etcd, config))
    spawned = time.monotonic()
    listener_s = b.start(ready_timeout=120)
    try:
        startup = first_served(b, spawned, listener_s, etcd, before, tokens[0] if tokens else None)
        summary[name] = {"startup": startup}
        log(f"{name}: listener {listener_s:.3f} s, /token 200 at {startup['first_token_200_s']} s, Bearer 200 at "
            f"{startup['first_bearer_200_s']} s, RSS {startup['rss_mib']} MiB; "
            f"etcd calls until then {startup['etcd_calls_until_served']}")
        if not tokens:
            return
        served = etcd_method_counts(etcd)
        client = Client(b.listener_port, timeout=30)
        started = time.monotonic()
        # Pass by pass over the tokens: the first pass meets every bucket for the first time,
        # the later ones should be answered from the cache.
        txn_by_pass = []
        try:
            for first in range(0, REQUESTS, len(tokens)):
                before_pass = etcd_method_counts(etcd)["Txn"]
                client.run([bearer(token) for token in tokens], min(len(tokens), REQUESTS - first))
                txn_by_pass.append(etcd_method_counts(etcd)["Txn"] - before_pass)
        finally:
            client.close()
        after = etcd_method_counts(etcd)
        summary[name]["after_requests"] = {
            "requests": REQUESTS, "seconds": round(time.monotonic() - started, 1),
            "distinct_buckets_used": len({bucket_of(token) for token in tokens}),
            "rss_mib": mib(b.memory()["rss"]),
            "etcd_calls": {m: after[m] - served[m] for m in ETCD_METHODS}, "txn_by_pass": txn_by_pass,
            "stats": fleet_stats(b)}
        log(f"{name} after {REQUESTS} requests: {summary[name]['after_requests']}")
    finally:
        b.stop()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    fleet_bench.WORK.mkdir(parents=True, exist_ok=True)
    root = OUT / "etcd"
    shutil.rmtree(root, ignore_errors=True)
    etcd = EtcdCluster(root, 1, client_port=free_port_pair())
    capacity = capacity_for(GRANTS)
    summary: dict = {"grants_wanted": GRANTS, "store_capacity": capacity}
    try:
        etcd.start()
        # The same start against an empty etcd: what a start costs whatever the state.
        start_replica(etcd, fleet_bench.plugin(capacity, callgrind=False), "replica_on_empty_etcd", summary, [])
        tokens = fill(etcd, summary)
        measure_size(etcd, summary["gateway_fill"]["grants"], "etcd_gateway_fill", summary)
        started = time.monotonic()
        grants = copy_buckets(etcd, GRANTS, -(-capacity // SLOTS_PER_BUCKET))
        summary["copy"] = {"grants": grants, "seconds": round(time.monotonic() - started, 1)}
        log(f"copied buckets: etcd holds {grants} grants ({summary['copy']['seconds']} s)")
        summary["grants"] = grants
        measure_size(etcd, grants, "etcd_large", summary)
        start_replica(etcd, fleet_bench.plugin(capacity, callgrind=False), "replica_on_large_state", summary, tokens)
    finally:
        etcd.stop()
        (OUT / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
