"""The Rust `oauth2` crate (5.0, reqwest over rustls, its defaults) against the gateway: it
refuses to revoke over plain HTTP (RFC 7009 §2 wants TLS), so it meets the demo's TLS listener.
rustls will not take a self-signed certificate that is its own CA as a server's, so the test
makes a small CA and a server certificate signed by it, and the client trusts the CA.

The client is tests/e2e/rust-oauth2 (its own crate; the Makefile builds it before this tier)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

import harness

CLIENT = Path(os.environ.get(
    "RUST_OAUTH2_CLIENT", harness.REPO / "target" / "rust-oauth2" / "release" / "rust-oauth2-client"))
DEMO = ("demo-app", "demo-secret")


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca_signed_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "key.pem", directory / "server.csr", directory / "cert.pem"
    ext = directory / "server.ext"
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-days", "2", "-subj", "/CN=tokengate test CA",
            "-keyout", str(ca_key), "-out", str(ca_cert))
    openssl("req", *curve, "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    ext.write_text("basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                   "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return ca_cert, cert, key


@pytest.fixture(scope="module")
def tls_gateway(upstream, tmp_path_factory):
    if not CLIENT.is_file():
        raise FileNotFoundError(f"{CLIENT} is not built: make test-e2e builds it (target e2e-rust-client)")
    workdir = tmp_path_factory.mktemp("rust-oauth2")
    ca, cert, key = make_ca_signed_certificate(workdir / "tls")
    config = harness.render_envoy_config(harness.demo_plugin_config(), upstream.port, tls=(cert, key))
    with harness.Gateway("rust-oauth2", workdir / "envoy", config) as gateway:
        yield gateway, f"https://127.0.0.1:{gateway.tls_port()}", ca


def run_client(token_url: str, revocation_url: str, ca: Path, who: tuple[str, str]):
    return subprocess.run([str(CLIENT), token_url, revocation_url, str(ca), *who],
                          capture_output=True, text=True, timeout=60)


def test_client_credentials_and_revocation_with_the_oauth2_crate(tls_gateway):
    gateway, base, ca = tls_gateway
    done = run_client(f"{base}/token", f"{base}/revoke", ca, DEMO)
    assert done.returncode == 0, done.stderr
    token, revoked = done.stdout.split()
    assert revoked == "revoked"
    # The token it was given was real, and the revocation it sent took effect.
    api = requests.get(gateway.url("/api/orders"), headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert api.status_code == 401 and "invalid_token" in api.headers["www-authenticate"]


def test_the_crate_refuses_to_revoke_over_plain_http(tls_gateway):
    gateway, base, ca = tls_gateway
    done = run_client(f"{base}/token", gateway.url("/revoke"), ca, DEMO)
    assert done.returncode != 0
    assert "revocation refused by the crate" in done.stderr and "must be HTTPS" in done.stderr


def test_a_wrong_secret_is_the_crates_server_error(tls_gateway):
    _, base, ca = tls_gateway
    done = run_client(f"{base}/token", f"{base}/revoke", ca, ("demo-app", "wrong"))
    assert done.returncode != 0 and "invalid_client" in done.stderr
