"""The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636, RFC 9700) in the real Envoy,
2 workers: a sign-in on one worker, its code redeemed on whichever the next connection meets.

authlib's OAuth2Session plays the public client demo-spa (token_endpoint_auth_method none,
code_challenge_method S256); `requests` posts the login form as a browser would, without
following the redirect (the callback URL is only read, never fetched).
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import re
import time
import urllib.parse

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

import harness
from client import ADMIN, TIMEOUT_S, forwarded

CALLBACK = "http://127.0.0.1:8080/console/callback"
SPA = "demo-spa"
CODE_LIFETIME_S = 2
LOCK_USER = ("lock-me", "right-password")

# Users whose passwords are PBKDF2 hashes of this many iterations; each worker may spend as many a
# second at the login form: one such check per worker per second.
PBKDF2_ITERATIONS = 1000
SLOW_USERS = [(f"slow{i}", f"slow-password-{i}") for i in range(3)]


def pbkdf2_hash(password: str) -> str:
    salt = b"e2e-salt-" + password.encode()
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"pbkdf2-sha256${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


PLUGIN_CONFIG = harness.with_changes(
    harness.demo_plugin_config(),
    authorization={"code_lifetime_secs": CODE_LIFETIME_S, "pbkdf2_iterations_per_sec": PBKDF2_ITERATIONS},
    lockout={"max_failures": 3, "window_secs": 60, "lockout_secs": 300},
)
PLUGIN_CONFIG["users"].append({"username": LOCK_USER[0], "password": LOCK_USER[1], "scopes": ["orders:read"]})
# A native app (RFC 8252): its loopback redirect URI may carry any port, unlike demo-spa's (a web client's).
NATIVE = "demo-cli"
NATIVE_CALLBACK = "http://[::1]/callback"
PLUGIN_CONFIG["applications"].append({"consumer_key": NATIVE, "public": True, "application_type": "native",
                                      "grant_types": ["authorization_code"], "redirect_uris": [NATIVE_CALLBACK],
                                      "scopes": ["orders:read"]})
# Three PBKDF2 users against two plaintext ones: unknown usernames are checked against a decoy as
# dear as the most common verifier, so here they cost a PBKDF2 check too.
PLUGIN_CONFIG["users"] += [{"username": name, "password_hash": pbkdf2_hash(password), "scopes": ["orders:read"]}
                           for name, password in SLOW_USERS]

HANDLE = re.compile(r'name="handle" value="([^"]+)"')


@pytest.fixture
def spa(monkeypatch):
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with OAuth2Session(SPA, redirect_uri=CALLBACK, scope="orders:read", code_challenge_method="S256",
                       token_endpoint_auth_method="none") as session:
        yield session


def login_page(gateway, session: OAuth2Session, verifier: str) -> tuple[str, str]:
    """GET /authorize as the browser would: the login page's handle, and the state."""
    url, state = session.create_authorization_url(gateway.url("/authorize"), code_verifier=verifier)
    page = requests.get(url, timeout=TIMEOUT_S, allow_redirects=False)
    assert page.status_code == 200, page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "<script" not in page.text and "Demo console" in page.text
    return HANDLE.search(page.text).group(1), state


def post_login(gateway, handle: str, username: str, password: str) -> requests.Response:
    return requests.post(gateway.url("/authorize"), data={"handle": handle, "username": username, "password": password},
                         timeout=TIMEOUT_S, allow_redirects=False)


def sign_in(gateway, session: OAuth2Session, verifier: str, user=ADMIN) -> str:
    """The whole browser part: the redirect back, with code, state and iss."""
    handle, state = login_page(gateway, session, verifier)
    back = post_login(gateway, handle, *user)
    assert back.status_code == 302, back.text
    location = back.headers["Location"]
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert location.startswith(CALLBACK + "?")
    assert params["state"] == state and params["iss"] == PLUGIN_CONFIG["issuer"]
    return location


def code_of(location: str) -> str:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]


def redeem(gateway, code: str, verifier: str, redirect_uri: str = CALLBACK) -> requests.Response:
    body = {"grant_type": "authorization_code", "client_id": SPA, "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    return requests.post(gateway.url("/token"), data=body, timeout=TIMEOUT_S)


def test_the_whole_flow_with_authlib(gateway, spa):
    verifier = generate_token(48)
    location = sign_in(gateway, spa, verifier)
    token = spa.fetch_token(gateway.url("/token"), authorization_response=location, code_verifier=verifier,
                            timeout=TIMEOUT_S)
    assert token["token_type"].lower() == "bearer" and token["refresh_token"] and token["scope"] == "orders:read"
    echo = forwarded(spa.get(gateway.url("/api/orders"), timeout=TIMEOUT_S))
    assert echo["headers"]["x-tokengate-username"] == ADMIN[0]
    assert echo["headers"]["x-tokengate-client-id"] == SPA
    renewed = spa.refresh_token(gateway.url("/token"), timeout=TIMEOUT_S)
    assert renewed["refresh_token"] != token["refresh_token"]


def test_a_reused_code_is_refused_and_revokes_what_it_issued(gateway, spa):
    verifier = generate_token(48)
    code = code_of(sign_in(gateway, spa, verifier))
    first = redeem(gateway, code, verifier)
    assert first.status_code == 200, first.text
    access = first.json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert requests.get(gateway.url("/api/orders"), headers=bearer, timeout=TIMEOUT_S).status_code == 200
    again = redeem(gateway, code, verifier)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    assert requests.get(gateway.url("/api/orders"), headers=bearer, timeout=TIMEOUT_S).status_code == 401


def test_a_wrong_verifier_is_invalid_grant(gateway, spa):
    code = code_of(sign_in(gateway, spa, generate_token(48)))
    reply = redeem(gateway, code, generate_token(48))
    assert (reply.status_code, reply.json()["error"]) == (400, "invalid_grant")


def test_another_redirect_uri_at_the_token_endpoint_is_invalid_grant(gateway, spa):
    verifier = generate_token(48)
    code = code_of(sign_in(gateway, spa, verifier))
    reply = redeem(gateway, code, verifier, redirect_uri="http://127.0.0.1:8080/console/other")
    assert (reply.status_code, reply.json()["error"]) == (400, "invalid_grant")


def test_an_unregistered_redirect_uri_gets_a_page_not_a_redirect(gateway):
    query = {"response_type": "code", "client_id": SPA, "redirect_uri": "https://evil.example/cb",
             "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
    reply = requests.get(gateway.url("/authorize"), params=query, timeout=TIMEOUT_S, allow_redirects=False)
    assert reply.status_code == 400 and "Location" not in reply.headers
    assert reply.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("client_id, redirect_uri, status", [
    (SPA, CALLBACK, 200),
    # A web client's loopback redirect URI keeps its port (RFC 9700 §4.1.3).
    (SPA, "http://127.0.0.1:9999/console/callback", 400),
    # A native client's may carry any port (RFC 8252 §7.3).
    (NATIVE, "http://[::1]:9999/callback", 200),
])
def test_only_a_native_clients_loopback_redirect_may_change_its_port(gateway, client_id, redirect_uri, status):
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
             "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
    reply = requests.get(gateway.url("/authorize"), params=query, timeout=TIMEOUT_S, allow_redirects=False)
    assert reply.status_code == status, reply.text
    assert "Location" not in reply.headers


def test_missing_pkce_goes_back_as_invalid_request(gateway):
    query = {"response_type": "code", "client_id": SPA, "redirect_uri": CALLBACK, "state": "s1"}
    reply = requests.get(gateway.url("/authorize"), params=query, timeout=TIMEOUT_S, allow_redirects=False)
    assert reply.status_code == 302
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(reply.headers["Location"]).query))
    assert (params["error"], params["state"], params["iss"]) == ("invalid_request", "s1", PLUGIN_CONFIG["issuer"])


def test_an_expired_code_is_invalid_grant(gateway, spa):
    verifier = generate_token(48)
    code = code_of(sign_in(gateway, spa, verifier))
    time.sleep(CODE_LIFETIME_S + 0.5)
    reply = redeem(gateway, code, verifier)
    assert (reply.status_code, reply.json()["error"]) == (400, "invalid_grant")


def test_the_login_handle_works_once(gateway, spa):
    handle, _ = login_page(gateway, spa, generate_token(48))
    assert post_login(gateway, handle, *ADMIN).status_code == 302
    replay = post_login(gateway, handle, *ADMIN)
    assert replay.status_code == 400 and "Location" not in replay.headers
    forged = post_login(gateway, "x" * 43, *ADMIN)
    assert forged.status_code == 400 and "Location" not in forged.headers


def test_two_thousand_login_pages_then_a_sign_in_still_succeeds(gateway, spa):
    """The pending request travels sealed in the page's handle, so pages store nothing: asking
    for more pages than the code table holds (1024) crowds no real sign-in out."""
    url, _ = spa.create_authorization_url(gateway.url("/authorize"), code_verifier=generate_token(48))

    def page(_: int) -> int:
        # A fresh connection each: the demo's rate limit is per connection, and a flood that
        # wants to fill a table opens as many as it needs.
        return requests.get(url, timeout=TIMEOUT_S, allow_redirects=False,
                            headers={"Connection": "close"}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(page, range(2000)))
    assert statuses == [200] * 2000, sorted(set(statuses))
    handle, _ = login_page(gateway, spa, generate_token(48))
    assert post_login(gateway, handle, *ADMIN).status_code == 302


def test_a_head_of_the_login_page_writes_nothing(envoy_factory, spa):
    """authorization.capacity 1 leaves room for 8 records: 50 HEADs that each stored a pending
    sign-in would leave none for the sign-in that follows."""
    config = harness.with_changes(PLUGIN_CONFIG, authorization={"capacity": 1, "code_lifetime_secs": CODE_LIFETIME_S})
    small = envoy_factory.start(config, "small-table")
    url, _ = spa.create_authorization_url(small.url("/authorize"), code_verifier=generate_token(48))
    with requests.Session() as session:
        for _ in range(50):
            head = session.head(url, timeout=TIMEOUT_S, allow_redirects=False)
            assert (head.status_code, head.content) == (200, b""), head.headers
    handle, _ = login_page(small, spa, generate_token(48))
    assert post_login(small, handle, *ADMIN).status_code == 302


def post_login_from(gateway, source_ip: str, handle: str, username: str, password: str):
    """post_login from another loopback address (Linux routes all of 127/8 to lo), which the
    filter reads as Envoy's `source.address`: (status, Location, page)."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=TIMEOUT_S,
                                            source_address=(source_ip, 0))
    try:
        body = urllib.parse.urlencode({"handle": handle, "username": username, "password": password})
        connection.request("POST", "/authorize", body, {"Content-Type": "application/x-www-form-urlencoded"})
        reply = connection.getresponse()
        return reply.status, reply.getheader("Location", ""), reply.read().decode()
    finally:
        connection.close()


def test_the_login_page_locks_out_one_address_never_the_user(gateway, spa):
    """Failures at the form lock the (user, client address) pair only: anyone may post the
    form, so a per-user lock would let anyone lock a user out (RFC 6819 §5.1.4.2.3)."""
    handle, _ = login_page(gateway, spa, generate_token(48))
    for _ in range(3):
        again = post_login(gateway, handle, LOCK_USER[0], "wrong-password")
        assert again.status_code == 400 and "wrong-password" not in again.text
        handle = HANDLE.search(again.text).group(1)
    locked = post_login(gateway, handle, *LOCK_USER)
    assert locked.status_code == 429 and "Location" not in locked.headers
    assert locked.headers["Retry-After"] == "300"
    # Not the password grant's counter: the user's right password still works there...
    body = {"grant_type": "password", "username": LOCK_USER[0], "password": LOCK_USER[1]}
    grant = requests.post(gateway.url("/token"), data=body, auth=("demo-app", "demo-secret"), timeout=TIMEOUT_S)
    assert grant.status_code == 200, grant.text
    # ...and at the form, from another address.
    handle, _ = login_page(gateway, spa, generate_token(48))
    status, location, page = post_login_from(gateway, "127.0.0.2", handle, *LOCK_USER)
    assert status == 302 and location.startswith(CALLBACK + "?code="), page


def sign_in_stats(gateway) -> tuple[int, int]:
    stats = gateway.stats(r"sign_in\.")
    return (stats.get("wasmcustom.tokengate.sign_in.slow_hashes", 0),
            stats.get("wasmcustom.tokengate.sign_in.busy", 0))


def test_a_burst_of_fresh_usernames_gets_503_without_hashing_past_the_budget(gateway, spa):
    """Each worker runs at most `pbkdf2_iterations_per_sec` PBKDF2 iterations a second at the
    form, unknown usernames' decoys included; past that the form answers 503 with Retry-After
    before hashing, so an anonymous flood cannot hold the workers."""
    handles = [login_page(gateway, spa, generate_token(48))[0] for _ in range(30)]
    hashes_before, busy_before = sign_in_stats(gateway)
    first_second = int(time.time())
    statuses = []
    for i, handle in enumerate(handles):
        reply = post_login(gateway, handle, f"fresh-{i}-{generate_token(8)}", "guess")
        statuses.append(reply.status_code)
        if reply.status_code == 503:
            assert reply.headers["Retry-After"] == "1" and "busy" in reply.text, reply.text
    seconds = int(time.time()) - first_second + 1
    hashes, busy = sign_in_stats(gateway)
    hashes, busy = hashes - hashes_before, busy - busy_before
    # Every post either hashed (a wrong password: 400) or was refused before hashing (503).
    assert set(statuses) <= {400, 503} and (hashes, busy) == (statuses.count(400), statuses.count(503)), statuses
    # One PBKDF2 check per worker in each second the burst touched, and no more.
    assert 1 <= hashes <= harness.CONCURRENCY * seconds, (hashes, seconds, statuses)
    # The budget refuses nobody for long: a slow user's right password works a second later.
    time.sleep(1.1)
    assert sign_in(gateway, spa, generate_token(48), user=SLOW_USERS[0]).startswith(CALLBACK)


@pytest.mark.parametrize("path", ["/token", "/revoke"])
def test_cors_for_registered_origins_only(gateway, path):
    allowed = "http://127.0.0.1:8080"
    preflight = requests.options(gateway.url(path), timeout=TIMEOUT_S, headers={
        "Origin": allowed, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    post = requests.post(gateway.url(path), data={"grant_type": "refresh_token", "client_id": SPA, "token": "x",
                                                  "refresh_token": "x"}, headers={"Origin": allowed}, timeout=TIMEOUT_S)
    assert post.headers["Access-Control-Allow-Origin"] == allowed
    # A native client's loopback redirect URI may carry any port (RFC 8252 §7.3): so may its app's origin.
    other_port = requests.options(gateway.url(path), timeout=TIMEOUT_S, headers={
        "Origin": "http://[::1]:9999", "Access-Control-Request-Method": "POST"})
    assert other_port.headers["Access-Control-Allow-Origin"] == "http://[::1]:9999"
    # A web client's keeps its port (RFC 9700 §4.1.3): demo-spa's origin on another port is refused.
    for other in ["https://evil.example", "http://localhost:8080", "http://[::2]:8080", "http://127.0.0.1:9999"]:
        refused = requests.options(gateway.url(path), headers={"Origin": other, "Access-Control-Request-Method": "POST"},
                                   timeout=TIMEOUT_S)
        assert "Access-Control-Allow-Origin" not in refused.headers
        post = requests.post(gateway.url(path), data={"client_id": SPA}, headers={"Origin": other}, timeout=TIMEOUT_S)
        assert "Access-Control-Allow-Origin" not in post.headers


def test_a_registered_client_signs_a_user_in_and_calls_the_api(gateway, monkeypatch):
    """RFC 7591 registration with the code grant (the demo config allows it), then authlib as that
    confidential client: the login page, the code redeemed with the registered secret, the API."""
    shop_callback = "https://shop.example/cb"
    registered = requests.post(gateway.url("/register"), auth=ADMIN, timeout=TIMEOUT_S, json={
        "client_name": "Shop", "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [shop_callback], "scope": "orders:read"})
    assert registered.status_code == 201, registered.text
    client = registered.json()
    assert client["redirect_uris"] == [shop_callback] and client["application_type"] == "web"
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with OAuth2Session(client["client_id"], client["client_secret"], redirect_uri=shop_callback, scope="orders:read",
                       code_challenge_method="S256") as shop:
        verifier = generate_token(48)
        url, state = shop.create_authorization_url(gateway.url("/authorize"), code_verifier=verifier)
        page = requests.get(url, timeout=TIMEOUT_S, allow_redirects=False)
        assert page.status_code == 200 and "Shop" in page.text, page.text
        assert "form-action 'self' https://shop.example;" in page.headers["Content-Security-Policy"]
        assert "sent back to <strong>https://shop.example</strong>" in page.text
        back = post_login(gateway, HANDLE.search(page.text).group(1), *ADMIN)
        assert back.status_code == 302 and back.headers["Location"].startswith(shop_callback + "?code=")
        token = shop.fetch_token(gateway.url("/token"), authorization_response=back.headers["Location"],
                                 code_verifier=verifier, timeout=TIMEOUT_S)
        assert token["scope"] == "orders:read" and token["refresh_token"]
        echo = forwarded(shop.get(gateway.url("/api/orders"), timeout=TIMEOUT_S))
        assert echo["headers"]["x-tokengate-client-id"] == client["client_id"]
        assert echo["headers"]["x-tokengate-username"] == ADMIN[0]
    # Another redirect URI than the registered one: a page, never a redirect.
    wrong = requests.get(url.replace(urllib.parse.quote(shop_callback, safe=""),
                                     urllib.parse.quote("https://evil.example/cb", safe="")),
                         timeout=TIMEOUT_S, allow_redirects=False)
    assert wrong.status_code == 400 and "Location" not in wrong.headers
