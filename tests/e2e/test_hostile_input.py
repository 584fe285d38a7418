"""Input that once took the filter down or around it, kept as regression rows.

- A header value that is not UTF-8: the proxy-wasm SDK's string getter panics on it, and a
  panic kills that worker's VM for good (every later request on it would get 503).
- HTTP/2 trailers on a request to one of the gateway's endpoints: the body callback never
  sees end-of-stream, and without a trailers callback the buffered body, credentials and
  all, would go on to the upstream.
- Identity headers sent as trailers of a forwarded request: an upstream that merges trailers
  into headers would read a forged identity.
"""

import shutil
import socket
import subprocess

import json

import pytest

import harness
from client import Expect, Req, basic, client_token, on_every_worker

NGHTTP = shutil.which("nghttp")
PUBLIC = Req("GET", "/api/public/ping")


def raw_request(gw, request: bytes) -> bytes:
    """Sends bytes as they are (requests would refuse a non-UTF-8 header) and returns the reply."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as conn:
        conn.sendall(request)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return reply


@pytest.mark.parametrize("path, status", [("/api/orders", b"400"), ("/token", b"401")])
def test_non_utf8_headers_get_a_clear_error_and_every_worker_survives(gateway, path, status):
    method = b"GET" if path.startswith("/api") else b"POST"
    request = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
               b"Authorization: Bearer \xff\xfe\r\nContent-Type: application/x-www-form-urlencoded\r\n"
               b"Content-Length: 29\r\n\r\ngrant_type=client_credentials")
    # Fresh connections until every worker has met the bad bytes.
    before = gateway.worker_connections()
    for sent in range(1, 201):
        reply = raw_request(gateway, request)
        assert reply.split(b" ", 2)[1] == status, reply[:300]
        if min(now - then for now, then in zip(gateway.worker_connections(), before)) >= 2:
            break
    else:
        raise AssertionError(f"{sent} connections did not reach every worker")
    # No worker lost its VM: every one still answers.
    on_every_worker(gateway, PUBLIC, Expect(200))


def nghttp(gw, path: str, body: bytes, tmp_path, *headers: str) -> bytes:
    """POSTs `body` over HTTP/2 (h2c) with a trailer after it; returns the response body."""
    assert NGHTTP, "nghttp (Debian nghttp2-client) is installed by `make test-e2e`"
    body_file = tmp_path / "body"
    body_file.write_bytes(body)
    args = [NGHTTP, "-H", ":method: POST", *[a for h in headers for a in ("-H", h)], "-d", str(body_file),
            "--trailer", "x-trailer: 1", gw.url(path)]
    out = subprocess.run(args, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout


def test_a_token_request_with_trailers_is_answered_not_forwarded(gateway, tmp_path):
    auth = basic("demo-app", "demo-secret")
    out = nghttp(gateway, "/token", b"grant_type=client_credentials", tmp_path,
                    "content-type: application/x-www-form-urlencoded", f"authorization: {auth}",
                    "x-tokengate-client-id: spoofed")
    assert b'"access_token"' in out and b'"token_type":"Bearer"' in out, out[:500]
    # The demo upstream echoes what reached it; nothing did.
    assert b"x-tokengate" not in out and b"authorization_forwarded" not in out, out[:500]


def test_a_large_body_with_trailers_is_refused(gateway, tmp_path):
    auth = basic("demo-app", "demo-secret")
    body = b"grant_type=client_credentials&pad=" + b"x" * 20_000
    out = nghttp(gateway, "/token", body, tmp_path,
                    "content-type: application/x-www-form-urlencoded", f"authorization: {auth}")
    assert b'"error":"invalid_request"' in out and b"too large" in out, out[:500]


@pytest.fixture
def trailers_gateway(upstream, tmp_path):
    """The demo gateway with trailers sent on to the HTTP/1.1 upstream (Envoy drops them
    there unless told), as an HTTP/2 upstream would get them."""
    cfg = harness.render_envoy_config(harness.demo_plugin_config(), upstream.port)
    cluster = harness.demo_cluster(cfg)
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}},
        }
    }
    # HTTP/1.1 carries trailers only after a chunked body: drop the client's content-length.
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for vhost in hcm["route_config"]["virtual_hosts"]:
        vhost["request_headers_to_remove"] = ["content-length"]
    with harness.Gateway("trailers", tmp_path / "trailers", cfg) as gw:
        yield gw


def test_identity_trailers_never_reach_the_upstream(trailers_gateway, tmp_path):
    gw = trailers_gateway
    token = client_token(gw)
    body_file = tmp_path / "order"
    body_file.write_bytes(b'{"item": 1}')
    args = [NGHTTP, "-H", ":method: POST", "-H", f"authorization: Bearer {token}", "-d", str(body_file),
            "--trailer", "x-tokengate-client-id: spoofed", "--trailer", "x-tokengate-username: root",
            "--trailer", "x-tokengate-anything: forged", "--trailer", "x-http-method-override: DELETE",
            "--trailer", "x-harmless: 1", gw.url("/api/orders")]
    assert NGHTTP, "nghttp (Debian nghttp2-client) is installed by `make test-e2e`"
    out = subprocess.run(args, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    echo = json.loads(out.stdout)
    assert echo["headers"]["x-tokengate-client-id"] == "demo-app", echo
    assert "trailers" not in echo or not echo["trailers"], echo
    # The rig is live: a harmless trailer did reach the upstream (it echoes trailer names too).
    assert "x-harmless" in echo.get("trailer_names", []), echo
