"""The JWK Set (RFC 7517 §5) at /oauth2/jwks, read by a real JOSE library.

The demo configuration carries a demo-only Ed25519 key; here a P-256 key made by PyJWT (with
`cryptography`) is added as a retired key, so the set holds both algorithms. PyJWT's
`PyJWKSet` must parse what the gateway serves, each key must be the public half of the
configured private key (a token PyJWT signs with the private JWK verifies with the served one),
and PyJWT's `PyJWKClient` finds the keys by following the metadata's `jwks_uri`. No private
member is ever served.
"""

import re

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

import harness
from client import TIMEOUT_S, Expect, Req, expect, send

JWKS = "/oauth2/jwks"
JWKS_TYPE = {"Content-Type": re.compile(r"application/jwk-set\+json", re.I)}
CACHE = {"Cache-Control": "public, max-age=300"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def retired_p256_key() -> tuple[dict, ec.EllipticCurvePrivateKey]:
    """A P-256 key made by PyJWT's side, its public JWK as `retired_keys` takes it."""
    private = ec.generate_private_key(ec.SECP256R1())
    public_jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    public_jwk.update(kid="retired-p256", alg="ES256", use="sig")
    return public_jwk, private


@pytest.fixture(scope="module")
def keys():
    demo = harness.demo_plugin_config()
    retired, retired_private = retired_p256_key()
    signing = dict(demo["signing"], retired_keys=[retired])
    return {"signing": signing, "retired_private": retired_private}


@pytest.fixture(scope="module")
def served(upstream, keys, tmp_path_factory):
    port = harness.free_port()
    plugin = harness.with_changes(harness.demo_plugin_config(), issuer=f"http://127.0.0.1:{port}",
                                  signing=keys["signing"])
    config = harness.render_envoy_config(plugin, upstream.port, listener_port=port)
    with harness.Gateway("jwks", tmp_path_factory.mktemp("jwks"), config) as gw:
        yield gw


def test_pyjwt_reads_the_set_and_each_key_is_the_configured_ones_public_half(served, keys):
    doc = expect(send(served, Req("GET", JWKS)), 200, {**JWKS_TYPE, **CACHE}, {})
    assert all(PRIVATE_MEMBERS.isdisjoint(key) for key in doc["keys"]), doc
    key_set = jwt.PyJWKSet.from_dict(doc)
    demo_key = keys["signing"]["keys"][0]
    assert [key.key_id for key in key_set.keys] == [demo_key["kid"], "retired-p256"]
    assert [key.algorithm_name for key in key_set.keys] == ["EdDSA", "ES256"]

    # A token signed with the configured private JWK verifies with the served public one:
    # the set publishes the key that matches what the gateway holds.
    signer = jwt.PyJWK(demo_key)
    token = jwt.encode({"sub": "alice"}, signer.key, algorithm="EdDSA", headers={"kid": demo_key["kid"]})
    assert jwt.decode(token, key_set[demo_key["kid"]].key, algorithms=["EdDSA"]) == {"sub": "alice"}
    # And a retired key still verifies what it signed.
    old = jwt.encode({"sub": "bob"}, keys["retired_private"], algorithm="ES256", headers={"kid": "retired-p256"})
    assert jwt.decode(old, key_set["retired-p256"].key, algorithms=["ES256"]) == {"sub": "bob"}
    # A token signed with another key does not.
    stranger = jwt.encode({"sub": "mallory"}, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(stranger, key_set["retired-p256"].key, algorithms=["ES256"])


def test_a_client_finds_the_keys_through_the_metadatas_jwks_uri(served, keys):
    metadata = expect(send(served, Req("GET", "/.well-known/oauth-authorization-server")), 200, body={})
    assert metadata["jwks_uri"] == served.url(JWKS)
    client = jwt.PyJWKClient(metadata["jwks_uri"], cache_keys=False, timeout=TIMEOUT_S)
    demo_kid = keys["signing"]["keys"][0]["kid"]
    signer = jwt.PyJWK(keys["signing"]["keys"][0])
    token = jwt.encode({"sub": "alice"}, signer.key, algorithm="EdDSA", headers={"kid": demo_kid})
    assert client.get_signing_key_from_jwt(token).key_id == demo_kid


NOT_ALLOWED = Expect(405, {"Allow": "GET, HEAD"}, {"error": "method_not_allowed"})


@pytest.mark.parametrize("row", [
    ("HEAD", Req("HEAD", JWKS), Expect(200, CACHE)),
    ("GET with a query string", Req("GET", f"{JWKS}?x=1"), Expect(200, JWKS_TYPE, {"keys": lambda keys: len(keys) == 2})),
    ("POST", Req("POST", JWKS, {"Content-Type": "application/x-www-form-urlencoded"}, "x=1"), NOT_ALLOWED),
    ("DELETE", Req("DELETE", JWKS), NOT_ALLOWED),
], ids=lambda row: row[0])
def test_methods(served, row):
    _, req, want = row
    want.check(send(served, req))


def test_without_signing_keys_the_path_is_no_endpoint(upstream, tmp_path_factory):
    plugin = harness.demo_plugin_config()
    del plugin["signing"]
    config = harness.render_envoy_config(plugin, upstream.port)
    with harness.Gateway("no-jwks", tmp_path_factory.mktemp("no-jwks"), config) as gw:
        # A path the resource table does not list: the Bearer check's 404, not a JWK Set.
        response = expect(send(gw, Req("GET", JWKS)), 404, body={"error": "not_found"}, exact=True)
        assert "keys" not in response
