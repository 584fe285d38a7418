"""A request whose decision waits for etcd (a token this replica has not seen, a bucket it never
read, a cache past its staleness window) stays paused, headers, body and trailers, until the
decision is made: only then may it reach the upstream, and only with the gateway's identity
headers. With `allow_on_headers_stop_iteration`, a body or trailers callback that continues
resumes the whole request, so these tests send bodies and trailers on purpose."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
import requests

from rig import Fleet, unseen_token, wait_for_watch

NGHTTP = shutil.which("nghttp")
# What a client may claim to be: none of it may reach the upstream.
FORGED = {"x-tokengate-client-id": "spoofed-client", "x-tokengate-scope": "orders:write",
          "x-tokengate-username": "root"}
UPSTREAM_REQUESTS = "cluster.demo_upstream.upstream_rq_total"


@pytest.fixture(scope="module")
def fleet(etcd, upstream, tmp_path_factory):
    """conftest.py's fleet, with trailers sent on to the HTTP/1.1 upstream (Envoy drops them
    there unless told, and HTTP/1.1 carries them only after a chunked body), so the echo shows
    which trailers got through."""
    running = Fleet(etcd, upstream.port, tmp_path_factory.mktemp("fleet"), "test-paused-requests/")
    for replica in running.replicas:
        clusters = {c["name"]: c for c in replica.config["static_resources"]["clusters"]}
        clusters["demo_upstream"]["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}},
            }
        }
        for listener in replica.config["static_resources"]["listeners"]:
            hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
            for vhost in hcm["route_config"]["virtual_hosts"]:
                vhost["request_headers_to_remove"] = ["content-length"]
    with running:
        yield running


def upstream_requests(replica) -> int:
    """Requests this replica's Envoy sent to the demo upstream, by its own cluster counter."""
    # The counter moves when the request goes out, which would be before the client's answer:
    # a short wait lets a request that slipped through be counted.
    time.sleep(0.2)
    return replica.stats(rf"^{UPSTREAM_REQUESTS}$").get(UPSTREAM_REQUESTS, 0)


def post_order(replica, token: str) -> requests.Response:
    """A POST with a form body, a Bearer token and forged identity headers."""
    return requests.post(replica.url("/api/orders"), data={"item": "42"}, timeout=10,
                         headers={"Authorization": f"Bearer {token}", "Connection": "close", **FORGED})


def post_order_with_trailers(replica, token: str, tmp_path) -> dict:
    """The same over HTTP/2 (h2c) with forged identity trailers after the body: the JSON reply
    (the gateway's error, or the demo upstream's echo of what reached it)."""
    assert NGHTTP, "nghttp (Debian nghttp2-client) is installed by `make test-fleet`"
    body = tmp_path / "order"
    body.write_bytes(b"item=42")
    forged = [f"{name}: {value}" for name, value in FORGED.items()]
    args = [NGHTTP, "-H", ":method: POST", "-H", f"authorization: Bearer {token}",
            "-H", "content-type: application/x-www-form-urlencoded",
            *[arg for header in forged for arg in ("-H", header)], "-d", str(body),
            *[arg for header in [*forged, "x-harmless: 1"] for arg in ("--trailer", header)],
            replica.url("/api/orders")]
    out = subprocess.run(args, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return json.loads(out.stdout)


def test_an_unknown_token_with_a_body_never_reaches_the_upstream(fleet):
    a, _ = fleet.replicas
    token = a.token(grant_type="client_credentials")["access_token"]
    before = upstream_requests(a)
    for _ in range(5):
        # Well-formed, in a bucket a holds, issued by nobody: a's 401 must wait for etcd's word.
        reply = post_order(a, unseen_token(token))
        assert reply.status_code == 401, reply.text
    assert upstream_requests(a) == before


def test_an_unknown_token_with_trailers_never_reaches_the_upstream(fleet, tmp_path):
    a, _ = fleet.replicas
    token = a.token(grant_type="client_credentials")["access_token"]
    before = upstream_requests(a)
    for _ in range(3):
        reply = post_order_with_trailers(a, unseen_token(token), tmp_path)
        assert reply.get("error") == "invalid_token", reply
    assert upstream_requests(a) == before


def test_a_valid_token_on_a_cold_cache_reaches_the_upstream_with_the_gateways_identity(fleet, tmp_path):
    a, _ = fleet.replicas
    token = a.token(grant_type="client_credentials")["access_token"]

    def with_body(replica) -> dict:
        reply = post_order(replica, token)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def with_trailers(replica) -> dict:
        echo = post_order_with_trailers(replica, token, tmp_path)
        # The rig is live: a harmless trailer got through (the echo lists trailer names).
        assert echo.get("trailer_names") == ["x-harmless"], echo
        return echo

    for send in (with_body, with_trailers):
        # A restarted replica has never read the token's bucket: the decision waits for etcd.
        cold = fleet.restart(1)
        wait_for_watch(cold)
        before = upstream_requests(cold)
        echo = send(cold)
        assert echo.get("headers") == {"x-tokengate-client-id": "demo-app",
                                       "x-tokengate-scope": "orders:read orders:write"}, echo
        assert echo["authorization_forwarded"] is False, echo
        assert not echo.get("trailers"), echo
        assert upstream_requests(cold) == before + 1
