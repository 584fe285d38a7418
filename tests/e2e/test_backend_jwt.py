"""The backend JWT (docs/backend-jwt.md): an upstream behind an API with `backend_jwt` verifies
`X-JWT-Assertion` with PyJWT against the gateway's JWKS and reads who called from the verified
claims; a client's own `X-JWT-Assertion` never reaches an upstream, on any API or route.

The upstream (tests/e2e/assertion_upstream.py) fetches the keys from the gateway's
`/oauth2/jwks` like any verifier, checks the signature, `iss`, `aud` and `exp`, and echoes the
claims it verified (or why it refused) and how many assertion headers arrived.
"""

from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import harness
from client import DEMO_APP, bearer_req, client_token, password_grant, send

ASSERTION_UPSTREAM = Path(__file__).with_name("assertion_upstream.py")
ORDERS = {"name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0", "backend_jwt": {},
          "resources": [{"methods": ["GET"], "path": "/items", "scopes": ["orders:read"]},
                        {"methods": ["GET"], "path": "/ping", "public": True}]}
STOCK = {"name": "Stock", "version": "2.0", "context": "/stock/2.0",
         "resources": [{"methods": ["GET"], "path": "/", "scopes": []}]}


def forged_assertion() -> str:
    """What a client could send: a well-formed JWT claiming to be someone else, signed by a key
    of its own under the gateway's `kid`."""
    key = ed25519.Ed25519PrivateKey.generate()
    claims = {"iss": "forger", "sub": "admin", "client_id": "someone-else", "aud": "anything", "exp": 4_000_000_000}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "demo-only-do-not-deploy"})


@dataclass
class Rig:
    gateway: harness.Gateway
    issuer: str
    audience: str


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    harness.require_artifacts()
    port = harness.free_port()
    issuer = f"http://127.0.0.1:{port}"
    audience = f"{issuer}/orders/1.0.0"  # the API's resource identifier, derived from the issuer
    upstream = harness.LoopbackServer(ASSERTION_UPSTREAM, f"{issuer}/oauth2/jwks", issuer, audience)
    plugin = harness.with_changes(harness.demo_plugin_config(), issuer=issuer, apis=[ORDERS, STOCK])
    plugin["applications"][0]["subscriptions"] = [{"api": "Orders", "tier": "Gold"}, {"api": "Stock"}]
    config = harness.render_envoy_config(plugin, upstream.port, listener_port=port)
    try:
        with harness.Gateway("backend-jwt", tmp_path_factory.mktemp("backend-jwt"), config) as gateway:
            yield Rig(gateway, issuer, audience)
    finally:
        upstream.stop()


def upstream_saw(rig: Rig, path: str, token: str | None = None, **headers: str) -> dict:
    response = send(rig.gateway, bearer_req(path, token, **headers))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("grant", ["client", "user"])
def test_the_upstream_verifies_the_assertion_with_pyjwt_and_reads_the_caller(rig, grant):
    if grant == "client":
        token, sub, user_type = client_token(rig.gateway, DEMO_APP, scope_out="orders:read", scope="orders:read"), "demo-app", "APPLICATION"
    else:
        granted = password_grant(rig.gateway, scope_out="orders:read", scope="orders:read")
        token, sub, user_type = granted["access_token"], "admin", "APPLICATION_USER"
    seen = upstream_saw(rig, "/orders/1.0.0/items", token, **{"X-JWT-Assertion": forged_assertion()})
    assert seen["assertions"] == 1, "the client's copy was removed, the gateway's set"
    assert "error" not in seen, seen
    claims = seen["claims"]
    assert seen["typ"] == "JWT"
    assert (claims["iss"], claims["aud"], claims["sub"], claims["client_id"]) == (rig.issuer, rig.audience, sub, "demo-app")
    assert claims["scope"] == "orders:read"
    wso2 = {name.removeprefix("http://wso2.org/claims/"): value for name, value in claims.items()
            if name.startswith("http://wso2.org/claims/")}
    expected = {"apiname": "Orders", "apicontext": "/orders/1.0.0", "version": "1.0.0", "tier": "Gold",
                "keytype": "PRODUCTION", "usertype": user_type}
    if grant == "user":
        expected["enduser"] = "admin"
    assert wso2 == expected
    assert claims["exp"] - claims["iat"] == 300
    assert token not in str(claims), "the access token never travels in the assertion"


def test_a_forged_assertion_never_reaches_an_upstream(rig):
    token = client_token(rig.gateway, DEMO_APP, scope_out="orders:read", scope="orders:read")
    forged = {"X-JWT-Assertion": forged_assertion()}
    public = upstream_saw(rig, "/orders/1.0.0/ping", None, **forged)
    assert public["assertions"] == 0, "a public route of a backend-JWT API: stripped, none set"
    other_api = upstream_saw(rig, "/stock/2.0", token, **forged)
    assert other_api["assertions"] == 0, "an API without backend_jwt: stripped, none set"
    flat = upstream_saw(rig, "/api/orders", token, **forged)
    assert flat["assertions"] == 0, "a resource outside every API: stripped"


def test_the_upstream_refuses_what_the_gateway_did_not_sign(rig):
    """The check above means something: the same upstream refuses a forged assertion."""
    key = jwt.PyJWKClient(f"{rig.issuer}/oauth2/jwks")
    with pytest.raises(jwt.PyJWTError):
        jwt.decode(forged_assertion(), key.get_signing_key_from_jwt(forged_assertion()), algorithms=["EdDSA"],
                   audience=rig.audience, issuer=rig.issuer)
