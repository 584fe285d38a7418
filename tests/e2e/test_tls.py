"""The demo's TLS listener (envoy/envoy.yaml, 127.0.0.1:8243 under `make run`): the same
filters and routes as the plain one, behind a self-signed certificate made for the test
the way `make tls` makes one. One token store: a token issued over TLS works on plain HTTP."""

from __future__ import annotations

import pytest
import requests

import harness

DEMO = ("demo-app", "demo-secret")


@pytest.fixture(scope="module")
def tls_gateway(upstream, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tls")
    cert, key = harness.make_self_signed_certificate(workdir / "tls")
    config = harness.render_envoy_config(harness.demo_plugin_config(), upstream.port, tls=(cert, key))
    with harness.Gateway("tls", workdir / "envoy", config) as gateway:
        yield gateway, f"https://127.0.0.1:{gateway.tls_port()}", str(cert)


def test_token_over_tls(tls_gateway):
    gateway, base, cert = tls_gateway
    response = requests.post(f"{base}/token", auth=DEMO, data={"grant_type": "client_credentials"},
                             verify=cert, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["access_token"]
    # The same store behind both listeners.
    api = requests.get(gateway.url("/api/orders"), headers={"Authorization": f"Bearer {body['access_token']}"},
                       timeout=10)
    assert api.status_code == 200, api.text


def test_metadata_names_the_https_issuer_on_both_listeners(tls_gateway):
    gateway, base, cert = tls_gateway
    over_tls = requests.get(f"{base}/.well-known/oauth-authorization-server", verify=cert, timeout=10).json()
    plain = requests.get(gateway.url("/.well-known/oauth-authorization-server"), timeout=10).json()
    assert over_tls == plain
    assert over_tls["issuer"] == "https://127.0.0.1:8243"


def test_plain_http_to_the_tls_port_is_refused(tls_gateway):
    _, base, _ = tls_gateway
    with pytest.raises(requests.ConnectionError):
        requests.post(base.replace("https://", "http://") + "/token", timeout=10)
