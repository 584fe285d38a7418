"""A filter block without `allow_on_headers_stop_iteration: true`: Envoy never hands /token
its body, so the request hangs. It must not hang in silence: the filter logs one line naming
the setting once a request has waited far longer than any client would (10 s)."""

from __future__ import annotations

import socket
import time

import requests

import harness

SETTING = "allow_on_headers_stop_iteration"
WAIT_S = 30


def test_a_hung_token_request_names_the_missing_setting(upstream, tmp_path):
    config = harness.render_envoy_config(harness.demo_plugin_config(), upstream.port)
    del harness.wasm_filter(config)[SETTING]
    with harness.Gateway("no-setting", tmp_path / "envoy", config) as gateway:
        body = b"grant_type=client_credentials"
        request = (b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Authorization: Basic ZGVtby1hcHA6ZGVtby1zZWNyZXQ=\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT_S) as client:
            client.sendall(request)
            client.settimeout(2)
            try:
                answered = client.recv(1024)
            except socket.timeout:
                answered = b""
            assert answered == b"", "the request was answered: Envoy delivered the body after all"
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline and SETTING not in gateway.log():
                time.sleep(0.5)
        lines = [line for line in gateway.log().splitlines() if SETTING in line]
        assert len(lines) == 1, gateway.log()
        assert "true" in lines[0]


def test_with_the_setting_nothing_is_logged(gateway):
    """The demo's filter block has it: a /token request is answered and no such line appears."""
    response = requests.post(gateway.url("/token"), auth=("demo-app", "demo-secret"),
                             data={"grant_type": "client_credentials"}, timeout=10)
    assert response.status_code == 200
    assert SETTING not in gateway.log()
