"""The benchmark's shared workload: where things are, the run's settings, the requests the
rows send and how tokens are issued. Used by bench/bench.py and bench/fleet_bench.py."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import envoy_configs as cfg
from measure import BenchError, Client, Envoy, LoadResult, Request, run_h2load, run_wrk

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "target" / "bench"
FILTER_WASM = Path(os.environ.get("TOKENGATE_WASM", REPO / "target/wasm32-wasip1/release/tokengate.wasm"))

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "2000"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "300"))
SMALL_TOKENS = 10_000
CONNECTIONS = 16
# Distinct tokens each Bearer row cycles through, so the lookups spread over many buckets
# (each with whatever occupancy it has) instead of hitting one hot bucket.
POOL = 256

TOKEN_HEADERS = {
    "authorization": cfg.basic_authorization(cfg.CLIENT_ID, cfg.CLIENT_SECRET),
    "content-type": "application/x-www-form-urlencoded",
}
CLIENT_CREDENTIALS = Request("POST", cfg.TOKEN_PATH, TOKEN_HEADERS, b"grant_type=client_credentials")
# The same grant bound by RFC 8707 §2 to the bench API's resource (an API configured `audience`).
CLIENT_CREDENTIALS_WITH_RESOURCE = Request(
    "POST", cfg.TOKEN_PATH, TOKEN_HEADERS,
    b"grant_type=client_credentials&resource=" + quote(cfg.API_RESOURCE, safe="").encode(),
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def capacity_for(tokens: int) -> int:
    """Store capacity for `tokens` live grants. New grants go to a random bucket with room
    (4 tries), so a store filled to the brim refuses issues long before the last slot; at
    80 % the fill goes through with few retries."""
    return tokens * 5 // 4


def bucket_of(token: str) -> int:
    """The bucket an opaque token names, or a JWT access token's `jti` (docs/tokens-and-keys.md)."""
    if "." in token:
        claims = token.split(".")[1]
        token = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["jti"]
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return int.from_bytes(raw[1:5], "big")


def bearer(token: str, expect_status: int = 200) -> Request:
    return Request("GET", cfg.API_PATH, {"authorization": f"Bearer {token}"}, expect_status=expect_status)


def issue_tokens(port: int, count: int, request: Request = CLIENT_CREDENTIALS) -> list[str]:
    """`count` access tokens through /token with `request`, sequentially (for the request pools)."""
    client = Client(port)
    tokens = []
    refused = 0
    try:
        while len(tokens) < count:
            status, body = client.send(request)
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


def fill_store(port: int, tokens: int, timeout: float,
               request: Request = CLIENT_CREDENTIALS) -> tuple[int, float]:
    """Issues `tokens` client_credentials grants (`request`) through /token with h2load (32 concurrent
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
        counts = run_h2load(port, request, remaining, clients=min(32, remaining), timeout=left)
        issued += counts["2xx"]
        if counts["4xx"]:
            raise BenchError(f"filling the store: {counts['4xx']} client errors from /token")
    return issued, time.monotonic() - started


def wrk_row(envoy: Envoy, name: str, requests: list[Request]) -> tuple[LoadResult, int]:
    """wrk over `requests` for SECONDS, after a second of load first (connection pools, V8
    tier-up, allocator caches). Returns the measured run and how many requests both runs
    completed. A row with responses of an unexpected status fails."""
    warmup = run_wrk(OUT / "work", name + ".warmup", envoy.listener_port, requests, 1, CONNECTIONS)
    result = run_wrk(OUT / "work", name, envoy.listener_port, requests, SECONDS, CONNECTIONS)
    if result.unexpected:
        raise BenchError(f"{name}: {result.unexpected} responses with an unexpected status")
    return result, warmup.requests + result.requests
