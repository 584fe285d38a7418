"""The built filter exports only the proxy-wasm callbacks it uses (Envoy enters V8 for every exported callback), and still frees
every request it served.

Envoy enters V8 for every callback a module exports, on every request, whether or not the
callback does anything; the release build (`make build`) drops the SDK's unused exports
after linking. What must stay: `proxy_on_delete`, where the SDK frees a request's context
(without it each request leaks its context until the VM traps), the memory allocator the
host copies headers and bodies through, and the callbacks fleet mode's gRPC calls and
watch stream answer to.
"""

import http.client

import pytest

import harness
from client import client_token

EXPECTED_EXPORTS = {
    "memory",
    "_initialize",
    "proxy_abi_version_0_2_1",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_delete",
    "proxy_on_memory_allocate",
    "proxy_on_tick",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    # A rated tier's RateLimit headers go on the upstream's response.
    "proxy_on_response_headers",
    "proxy_on_grpc_receive",
    "proxy_on_grpc_close",
    "proxy_on_grpc_receive_initial_metadata",
    "proxy_on_grpc_receive_trailing_metadata",
}

EXPORT_SECTION = 7


def leb128(data: bytes, at: int) -> tuple[int, int]:
    """An unsigned LEB128 number at `at`: (value, offset after it)."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def export_names(module: bytes) -> list[str]:
    """The names in a wasm binary's export section (WebAssembly core spec, 5.5.10)."""
    assert module[:8] == b"\0asm\x01\0\0\0", "not a wasm 1.0 binary"
    at, names = 8, []
    while at < len(module):
        section, at = module[at], at + 1
        size, at = leb128(module, at)
        if section == EXPORT_SECTION:
            count, cursor = leb128(module, at)
            for _ in range(count):
                length, cursor = leb128(module, cursor)
                names.append(module[cursor:cursor + length].decode())
                _kind, cursor = leb128(module, cursor + length)
                _index, cursor = leb128(module, cursor)
        at += size
    return names


def test_the_module_exports_exactly_the_callbacks_it_uses():
    harness.require_artifacts()
    names = export_names(harness.wasm_module().read_bytes())
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED_EXPORTS, (
        f"missing {sorted(EXPECTED_EXPORTS - set(names))}, unexpected {sorted(set(names) - EXPECTED_EXPORTS)}")


def test_the_parser_reads_a_known_export_list():
    """The check above could pass on a parser that finds nothing: a module built by hand with
    two exports reads back as those two."""
    func_type = b"\x01\x05\x01\x60\x00\x00"  # type section: one () -> ()
    functions = b"\x03\x02\x01\x00"  # function section: one function of type 0
    exports = b"\x07\x1a\x02" + b"\x0cproxy_on_log\x00\x00" + b"\x07_dummy_\x00\x00"
    code = b"\x0a\x04\x01\x02\x00\x0b"
    module = b"\0asm\x01\0\0\0" + func_type + functions + exports + code
    assert export_names(module) == ["proxy_on_log", "_dummy_"]


REQUESTS_PER_ROUND = 10_000
CONNECTIONS = 4


def serve_round(gateway, token: str) -> None:
    """REQUESTS_PER_ROUND Bearer hits and misses on CONNECTIONS keep-alive connections."""
    connections = [http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10) for _ in range(CONNECTIONS)]
    try:
        for n in range(REQUESTS_PER_ROUND):
            connection = connections[n % CONNECTIONS]
            presented = token if n % 4 else "not-a-live-token"
            connection.request("GET", "/api/orders", headers={"Authorization": f"Bearer {presented}"})
            response = connection.getresponse()
            response.read()
            assert response.status == (200 if n % 4 else 401)
    finally:
        for connection in connections:
            connection.close()


def memory(gateway) -> int:
    return int(harness.requests.get(f"{gateway.admin}/memory", timeout=5).json()["allocated"])


def rss_kib(gateway) -> int:
    status = open(f"/proc/{gateway.proc.pid}/status").read()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def test_envoys_memory_stays_flat_over_many_requests(gateway):
    """A leak of the SDK's per-request context (tens of bytes a request) would add about a
    megabyte over 20,000 requests; the wasm VM's linear memory is in Envoy's RSS, its
    bookkeeping in `allocated`."""
    token = client_token(gateway)
    serve_round(gateway, token)  # warm: every worker's VM has grown to its working size
    allocated_before, rss_before = memory(gateway), rss_kib(gateway)
    for _ in range(2):
        serve_round(gateway, token)
    allocated_growth = memory(gateway) - allocated_before
    rss_growth_kib = rss_kib(gateway) - rss_before
    assert allocated_growth < 256 * 1024, f"Envoy's heap grew {allocated_growth:,} bytes over 20,000 requests"
    assert rss_growth_kib < 512, f"Envoy's RSS grew {rss_growth_kib:,} KiB over 20,000 requests"
