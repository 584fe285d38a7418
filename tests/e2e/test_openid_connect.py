"""OpenID Connect on the code flow against the real Envoy, with two real relying parties.

openid-client (Node, v6; tests/e2e/node/clients.mjs) discovers the gateway from
/.well-known/openid-configuration, signs the user in with PKCE and a nonce, checks the ID
token's signature against jwks_uri (its documented `enableNonRepudiationChecks`) and its claims,
then calls UserInfo with the subject the ID token named. authlib's OAuth2Session does the same
flow and `authlib.jose` with `authlib.oidc.core.CodeIDToken` validates the ID token (signature,
iss, aud, exp, nonce, at_hash); PyJWT checks the signature against the JWKS once more.

The demo's key is Ed25519 (EdDSA): the clients are told so by `id_token_signed_response_alg`
(docs/openid-connect.md says why RS256 is not offered).
"""

import json
import re
import urllib.parse

import jwt as pyjwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt as authlib_jwt
from authlib.oidc.core import CodeIDToken

import harness
from client import ADMIN, TIMEOUT_S
from test_openid_client import run_node

CALLBACK = "http://127.0.0.1:8080/console/callback"
SPA = "demo-spa"
OPENID_SCOPES = ["openid", "profile", "email"]
HANDLE = re.compile(r'name="handle" value="([^"]+)"')


@pytest.fixture(scope="module")
def served(upstream, tmp_path_factory):
    """The demo config (with its demo-only Ed25519 key) with the issuer set to the address the
    clients use (Discovery §4.3: they must match), the OpenID scopes on demo-spa and admin, and
    admin's claims."""
    port = harness.free_port()
    plugin = harness.with_changes(harness.demo_plugin_config(), issuer=f"http://127.0.0.1:{port}")
    spa = next(app for app in plugin["applications"] if app["consumer_key"] == SPA)
    spa["scopes"] += OPENID_SCOPES
    admin = next(user for user in plugin["users"] if user["username"] == ADMIN[0])
    admin["scopes"] += OPENID_SCOPES
    admin.update(name="Ada Admin", given_name="Ada", email="admin@example.com", email_verified=True)
    config = harness.render_envoy_config(plugin, upstream.port, listener_port=port)
    with harness.Gateway("openid_connect", tmp_path_factory.mktemp("openid_connect"), config) as gw:
        yield gw


def issuer(gw) -> str:
    return f"http://127.0.0.1:{gw.port}"


def test_openid_client_discovers_signs_in_validates_the_id_token_and_reads_userinfo(served):
    outcome = run_node({"action": "oidc_sign_in", "issuer": issuer(served), "client_id": SPA, "alg": "EdDSA",
                        "redirect_uri": CALLBACK, "scope": "openid profile email", "user": list(ADMIN)})
    assert outcome["ok"], outcome
    result = outcome["result"]
    assert outcome["sent"][0]["url"].endswith("/.well-known/openid-configuration")
    metadata = result["metadata"]
    assert metadata["id_token_signing_alg_values_supported"] == ["EdDSA"]
    assert metadata["userinfo_endpoint"] == issuer(served) + "/oauth2/userinfo"
    claims = result["claims"]
    assert claims["iss"] == issuer(served) and claims["aud"] == SPA and claims["sub"] == ADMIN[0]
    assert result["nonce_matches"] and isinstance(claims["auth_time"], int)
    assert result["userinfo"] == {"sub": ADMIN[0], "name": "Ada Admin", "given_name": "Ada",
                                  "preferred_username": ADMIN[0], "email": "admin@example.com",
                                  "email_verified": True}
    # The JWKS fetched by openid-client for the signature check.
    assert any(sent["url"].endswith("/oauth2/jwks") for sent in outcome["sent"])


def authlib_sign_in(gw, nonce: str) -> dict:
    """The code flow as authlib's OAuth2Session plays it, the user's part by `requests`."""
    with OAuth2Session(SPA, redirect_uri=CALLBACK, scope=" ".join(OPENID_SCOPES), code_challenge_method="S256",
                       token_endpoint_auth_method="none") as session:
        verifier = generate_token(48)
        url, _ = session.create_authorization_url(gw.url("/authorize"), code_verifier=verifier, nonce=nonce)
        page = requests.get(url, timeout=TIMEOUT_S, allow_redirects=False)
        assert page.status_code == 200, page.text
        handle = HANDLE.search(page.text).group(1)
        back = requests.post(gw.url("/authorize"), data={"handle": handle, "username": ADMIN[0],
                                                          "password": ADMIN[1]},
                             timeout=TIMEOUT_S, allow_redirects=False)
        assert back.status_code == 302, back.text
        return session.fetch_token(gw.url("/token"), authorization_response=back.headers["Location"],
                                   code_verifier=verifier)


def test_authlib_validates_the_id_token_and_pyjwt_verifies_it_against_the_jwks(served, monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    nonce = generate_token(20)
    token = authlib_sign_in(served, nonce)
    jwks = requests.get(served.url("/oauth2/jwks"), timeout=TIMEOUT_S).json()
    claims = authlib_jwt.decode(
        token["id_token"], JsonWebKey.import_key_set(jwks), claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": issuer(served)}},
        claims_params={"nonce": nonce, "client_id": SPA, "access_token": token["access_token"]})
    claims.validate()  # iss, aud, exp, iat, nonce, azp, at_hash (SHA-512 for EdDSA)
    assert claims["sub"] == ADMIN[0] and claims["nonce"] == nonce

    header = pyjwt.get_unverified_header(token["id_token"])
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    verified = pyjwt.decode(token["id_token"], pyjwt.PyJWK(jwk).key, algorithms=["EdDSA"], audience=SPA,
                            issuer=issuer(served))
    assert verified["at_hash"] == claims["at_hash"]

    # A tampered ID token is refused by both.
    head, body, signature = token["id_token"].split(".")
    forged = json.loads(pyjwt.utils.base64url_decode(body))
    forged["sub"] = "mallory"
    tampered = ".".join([head, pyjwt.utils.base64url_encode(json.dumps(forged).encode()).decode(), signature])
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(tampered, pyjwt.PyJWK(jwk).key, algorithms=["EdDSA"], audience=SPA)


def test_userinfo_by_get_and_post_and_without_openid(served, monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    token = authlib_sign_in(served, generate_token(20))
    userinfo = served.url("/oauth2/userinfo")
    get = requests.get(userinfo, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=TIMEOUT_S)
    post = requests.post(userinfo, data={"access_token": token["access_token"]}, timeout=TIMEOUT_S)
    assert get.status_code == post.status_code == 200
    assert get.json() == post.json() and get.json()["email"] == "admin@example.com"
    # A token of the password grant, without openid: RFC 6750 §3.1 insufficient_scope.
    plain = requests.post(served.url("/token"), auth=("demo-app", "demo-secret"),
                          data={"grant_type": "client_credentials"}, timeout=TIMEOUT_S).json()
    forbidden = requests.get(userinfo, headers={"Authorization": f"Bearer {plain['access_token']}"},
                             timeout=TIMEOUT_S)
    assert forbidden.status_code == 403
    assert 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]
    unknown = requests.get(userinfo, headers={"Authorization": "Bearer nope"}, timeout=TIMEOUT_S)
    assert unknown.status_code == 401 and 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]


def test_prompt_none_goes_back_with_login_required(served):
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": SPA, "redirect_uri": CALLBACK, "scope": "openid",
        "state": "s1", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256", "prompt": "none"})
    back = requests.get(served.url(f"/authorize?{query}"), timeout=TIMEOUT_S, allow_redirects=False)
    assert back.status_code == 302
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back.headers["Location"]).query))
    assert params["error"] == "login_required" and params["state"] == "s1" and params["iss"] == issuer(served)
