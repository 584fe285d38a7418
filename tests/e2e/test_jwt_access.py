"""JWT access tokens (RFC 9068) from the real Envoy, checked by tools that are not ours.

The demo application is switched to `token_format: jwt`. PyJWT verifies what `/token` issues
against the JWKS the gateway serves and reads its claims; the gateway takes the token as a
Bearer, introspects and revokes it, and refuses it at once once revoked. A second Envoy runs
Envoy's own `jwt_authn` filter with `remote_jwks` pointing at the gateway's JWKS: it accepts the
gateway's JWT and refuses a tampered one, an expired one and one signed by another issuer's key.
A key rotation (the old key retired, a new one active) leaves old tokens verifiable through the
JWKS and signs new ones with the new key's `kid`.
"""

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

import harness
from client import ANY, DEMO_APP, Req, call, client_token, expect, forwarded, form, invalid_token, send, token_req

ISSUER = "https://127.0.0.1:8243"
JWKS = "/oauth2/jwks"
# An application whose JWTs live one second: Envoy's jwt_authn must see one expire.
SHORT_LIVED = ("short-lived", "short-secret")
CLOCK_SKEW_S = 1


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    plugin = harness.demo_plugin_config()
    assert plugin["issuer"] == ISSUER
    plugin["applications"][0]["token_format"] = "jwt"
    # The JWT default lifetime, not the demo's opaque one.
    del plugin["applications"][0]["access_token_validity_secs"]
    plugin["applications"].append({
        "consumer_key": SHORT_LIVED[0], "consumer_secret": SHORT_LIVED[1], "token_format": "jwt",
        "access_token_validity_secs": 1, "scopes": ["orders:read"],
    })
    config = harness.render_envoy_config(plugin, upstream.port)
    with harness.Gateway("jwt-access", tmp_path_factory.mktemp("jwt-access"), config) as gw:
        yield gw


def verified(gw, token: str) -> dict:
    """The token's claims, once PyJWT verified it with the key the gateway's JWKS names."""
    served = send(gw, Req("GET", JWKS))
    expect(served, 200)
    key_set = jwt.PyJWKSet.from_dict(served.json())
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt", header
    key = key_set[header["kid"]]
    return jwt.decode(token, key.key, algorithms=[header["alg"]], audience="demo-app", issuer=ISSUER)


def test_pyjwt_verifies_the_token_against_the_jwks_and_reads_its_claims(gateway):
    token = client_token(gateway, scope_out="orders:read", scope="orders:read")
    claims = verified(gateway, token)
    assert {name: claims[name] for name in ("sub", "client_id", "azp", "scope", "aut")} == {
        "sub": "demo-app", "client_id": "demo-app", "azp": "demo-app", "scope": "orders:read",
        "aut": "APPLICATION",
    }
    assert claims["iat"] == claims["nbf"] and 0 < claims["exp"] - claims["iat"] <= 300
    assert abs(claims["iat"] - time.time()) < 60
    assert set(claims) == {"jti", "iss", "sub", "aud", "client_id", "azp", "iat", "nbf", "exp", "scope", "aut"}


def test_the_jwt_is_a_bearer_token_is_introspected_and_once_revoked_refused(gateway):
    token = client_token(gateway, scope_out="orders:read", scope="orders:read")
    forwarded(call(gateway, "/api/orders", token))
    introspect = token_req(form(token=token), auth=("orders-service", "orders-service-secret"), path="/introspect")
    expect(send(gateway, introspect), 200, body={"active": True, "client_id": "demo-app", "scope": "orders:read", "exp": ANY})
    expect(send(gateway, token_req(form(token=token), path="/revoke")), 200)
    invalid_token().check(call(gateway, "/api/orders", token))
    expect(send(gateway, introspect), 200, body={"active": False})


def test_a_tampered_jwt_is_refused_at_the_gateway(gateway):
    token = client_token(gateway, scope_out="orders:read", scope="orders:read")
    header, claims, signature = token.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    tampered["scope"] = "orders:read orders:write"
    forged = b64(json.dumps(tampered).encode())
    invalid_token().check(call(gateway, "/api/orders", f"{header}.{forged}.{signature}"))
    forwarded(call(gateway, "/api/orders", token))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cluster(name: str, port: int) -> dict:
    return {
        "name": name, "type": "STATIC", "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def jwt_authn_config(gateway_port: int, upstream_port: int) -> dict:
    """An Envoy that verifies JWTs itself: `jwt_authn` against the gateway's JWKS, then the
    upstream. One second of skew allowed, so a token is refused a second after its `exp`."""
    provider = {
        "issuer": ISSUER,
        "audiences": ["demo-app", SHORT_LIVED[0]],
        # 0 would mean "unset", which Envoy takes as its default of 60 s.
        "clock_skew_seconds": CLOCK_SKEW_S,
        "remote_jwks": {
            "http_uri": {"uri": f"http://127.0.0.1:{gateway_port}{JWKS}", "cluster": "tokengate", "timeout": "5s"},
            "cache_duration": "300s",
        },
    }
    jwt_authn = {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"tokengate": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "tokengate"}}],
        },
    }
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "mesh",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
        "http_filters": [jwt_authn, router],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": harness.PLAIN_LISTENER,
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}],
            }],
            "clusters": [cluster("tokengate", gateway_port), cluster("upstream", upstream_port)],
        },
    }


@pytest.fixture(scope="module")
def mesh(gateway, upstream, tmp_path_factory):
    envoy = harness.Envoy("jwt-authn", tmp_path_factory.mktemp("jwt-authn"), jwt_authn_config(gateway.port, upstream.port))
    envoy.start()
    harness.RUNNING.append(envoy)
    try:
        yield envoy
    finally:
        envoy.stop()
        harness.RUNNING.remove(envoy)


def test_envoys_jwt_authn_accepts_the_gateways_jwt(gateway, mesh):
    token = client_token(gateway, scope_out="orders:read", scope="orders:read")
    forwarded(call(mesh, "/api/orders", token))
    assert call(mesh, "/api/orders").status_code == 401, "jwt_authn requires a token on this route"


def test_envoys_jwt_authn_refuses_tampered_other_issuer_and_expired_jwts(gateway, mesh):
    token = client_token(gateway, scope_out="orders:read", scope="orders:read")
    header, claims, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    tampered = f"{header}.{b64(json.dumps(dict(payload, sub='admin')).encode())}.{signature}"
    # Same claims, same kid, but signed by a key that is not the gateway's.
    stranger = ed25519.Ed25519PrivateKey.generate()
    kid = jwt.get_unverified_header(token)["kid"]
    other_issuer = jwt.encode(dict(payload, iss="https://elsewhere.example"), stranger, algorithm="EdDSA",
                              headers={"kid": kid, "typ": "at+jwt"})
    other_key = jwt.encode(payload, stranger, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})
    for name, forged in [("tampered claim", tampered), ("another issuer", other_issuer), ("another key", other_key)]:
        assert call(mesh, "/api/orders", forged).status_code == 401, name
    forwarded(call(mesh, "/api/orders", token))

    short = send(gateway, token_req(form(grant_type="client_credentials"), auth=SHORT_LIVED))
    short_token = expect(short, 200, body={"access_token": ANY, "expires_in": 1})["access_token"]
    expires_at = jwt.decode(short_token, options={"verify_signature": False})["exp"]
    forwarded(call(mesh, "/api/orders", short_token))  # good until exp: what ends it is time
    # Wait for the clock to pass exp (not an assertion: the refusal below is).
    time.sleep(max(0.0, expires_at + CLOCK_SKEW_S + 1.1 - time.time()))
    assert call(mesh, "/api/orders", short_token).status_code == 401, "expired"


def new_ed25519_jwk(kid: str) -> dict:
    """A private Ed25519 JWK made by PyJWT's side, as `signing.keys` takes it."""
    jwk = OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate(), as_dict=True)
    jwk.update(kid=kid, alg="EdDSA", use="sig")
    return jwk


def test_a_key_rotation_keeps_old_tokens_verifiable_and_signs_new_ones_with_the_new_key(upstream, tmp_path):
    before = harness.demo_plugin_config()
    before["applications"][0]["token_format"] = "jwt"
    old_key = before["signing"]["keys"][0]
    new_key = new_ed25519_jwk("rotated-in")
    after = harness.with_changes(before, signing={
        "keys": [new_key],
        "retired_keys": [{name: value for name, value in old_key.items() if name != "d"}],
    })
    with harness.DynamicGateway("jwt-rotation", tmp_path, before, upstream.port) as gw:
        old_token = client_token(gw, scope_out="orders:read", scope="orders:read")
        assert jwt.get_unverified_header(old_token)["kid"] == old_key["kid"]
        gw.update(after)
        new_token = client_token(gw, scope_out="orders:read", scope="orders:read")
        assert jwt.get_unverified_header(new_token)["kid"] == "rotated-in"
        # Both verify against the JWKS served after the rotation: the retired key is still in it.
        assert verified(gw, old_token)["sub"] == verified(gw, new_token)["sub"] == "demo-app"
        forwarded(call(gw, "/api/orders", old_token))
        forwarded(call(gw, "/api/orders", new_token))
