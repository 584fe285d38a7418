"""/token: request parsing, client authentication, grants and scope.

RFC 6749 §2.3.1, §3.2, §4, §5 and docs/token-endpoint.md, one table row per rule. Refresh-token lifecycles
are in test_tokens.py; the Basic header decoding table in test_basic_auth.py.
"""

import http.client
import socket
import time

import pytest
import requests

import harness
from client import (
    CC, DEMO_APP, FORM, FULL_SCOPE, NO_STORE, TIMEOUT_S, Expect, Req, Row, basic, client_token, form,
    call, describe, expect, invalid_client, padded_cc_body, post_token, run_row, token_error, token_req,
    token_success,
)

CC_ONLY = ("cc-only", "cc-only-secret")
READER = ("reader", "reader-pass")

PLUGIN_CONFIG = harness.demo_plugin_config()
# An app that may only use client_credentials and only read, and a user who may
# only read: the rows for unauthorized_client and for scope intersections.
PLUGIN_CONFIG["applications"].append({
    "consumer_key": CC_ONLY[0], "consumer_secret": CC_ONLY[1],
    "grant_types": ["client_credentials"], "scopes": ["orders:read"],
})
PLUGIN_CONFIG["users"].append({"username": READER[0], "password": READER[1], "scopes": ["orders:read"]})

MAX_BODY = PLUGIN_CONFIG["max_body_bytes"]


def ok(scope: str = FULL_SCOPE, refresh: bool = False) -> Expect:
    return token_success(scope, refresh)


def bad(error: str, status: int = 400) -> Expect:
    return token_error(status, error)


def cc_row(id: str, body: str, want: Expect, auth=DEMO_APP, **kw) -> Row:
    return Row(id, token_req(body, auth, **kw), want)


ROWS = [
    # --- RFC 6749 §3.2: POST only; 405 carries Allow (RFC 9110 §15.5.6).
    cc_row("GET", "", token_error(405, "invalid_request", Allow="POST"), method="GET", content_type=None),
    cc_row("PUT", CC, token_error(405, "invalid_request", Allow="POST"), method="PUT"),
    cc_row("DELETE", "", token_error(405, "invalid_request", Allow="POST"), method="DELETE", content_type=None),
    # --- RFC 6749 §3.2, Appendix B: form content type, case-insensitive, parameters allowed.
    cc_row("content type with charset", CC, ok(), content_type="application/x-www-form-urlencoded;charset=UTF-8"),
    cc_row("content type any case", CC, ok(), content_type="Application/X-WWW-Form-URLEncoded; Charset=utf-8"),
    cc_row("json body", '{"grant_type": "client_credentials"}', bad("invalid_request"), content_type="application/json"),
    cc_row("multipart body", "--b\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--b--\r\n",
           bad("invalid_request"), content_type="multipart/form-data; boundary=b"),
    cc_row("text/plain", CC, bad("invalid_request"), content_type="text/plain"),
    cc_row("no content type", CC, bad("invalid_request"), content_type=None),
    cc_row("form type prefix only", CC, bad("invalid_request"), content_type="application/x-www-form-urlencoded-evil"),
    # --- RFC 6749 §5.2: grant_type missing, empty, repeated, unknown, not allowed.
    cc_row("no grant_type", "scope=orders%3Aread", bad("invalid_request")),
    cc_row("empty body", "", bad("invalid_request")),
    cc_row("empty grant_type", "grant_type=", bad("invalid_request")),
    cc_row("grant_type twice", f"{CC}&{CC}", bad("invalid_request")),
    cc_row("unknown grant", "grant_type=magic", bad("unsupported_grant_type")),
    # The demo serves the code grant (demo-spa); demo-app may not use it (unauthorized_client).
    cc_row("authorization_code not allowed for app", "grant_type=authorization_code&code=x", bad("unauthorized_client")),
    cc_row("password not allowed for app", form(grant_type="password", username="admin", password="admin"),
           bad("unauthorized_client"), auth=CC_ONLY),
    cc_row("refresh not allowed for app", form(grant_type="refresh_token", refresh_token="x" * 43),
           bad("unauthorized_client"), auth=CC_ONLY),
    # --- RFC 6749 §3.1, §3.3: empty scope is the default, unknown params ignored, repeats rejected.
    cc_row("empty scope means default", f"{CC}&scope=", ok()),
    cc_row("unknown parameter ignored", f"{CC}&foo=bar&audience=x", ok()),
    cc_row("scope twice", f"{CC}&scope=orders%3Aread&scope=orders%3Aread", bad("invalid_request")),
    cc_row("unknown parameter twice", f"{CC}&foo=1&foo=2", bad("invalid_request")),
    # --- RFC 6749 Appendix B: percent-decoding then UTF-8; never a 5xx.
    cc_row("bad percent escape", f"{CC}&scope=%ZZ", bad("invalid_request")),
    cc_row("truncated percent escape", f"{CC}&scope=orders%3", bad("invalid_request")),
    cc_row("percent-encoded invalid utf-8", f"{CC}&scope=%FF", bad("invalid_request")),
    Row("raw invalid utf-8", Req("POST", "/token", {**token_req("").headers}, CC.encode() + b"&scope=\xff\xfe"),
        bad("invalid_request")),
    cc_row("plus is a space in a form", "grant_type=client_credentials&scope=orders%3Aread+orders%3Awrite", ok()),
    # --- RFC 6749 §2.3.1: client credentials never in the query string.
    cc_row("client_id in query", CC, bad("invalid_request"), path="/token?client_id=demo-app"),
    cc_row("client_secret in query", CC, bad("invalid_request"), path="/token?client_secret=demo-secret"),
    # --- body size limit (contract: 413 invalid_request).
    cc_row("body at the limit", padded_cc_body(MAX_BODY), ok()),
    cc_row("body over the limit", padded_cc_body(MAX_BODY + 1), bad("invalid_request", 413)),
    cc_row("body far over the limit", padded_cc_body(MAX_BODY * 8), bad("invalid_request", 413)),
    # --- RFC 6749 §2.3.1, §5.2: Basic authentication; every failure is 401 with a Basic challenge.
    cc_row("no credentials", CC, invalid_client(), auth=None),
    cc_row("unknown client", CC, invalid_client(), auth=("nobody", "demo-secret")),
    cc_row("wrong secret", CC, invalid_client(), auth=("demo-app", "wrong")),
    cc_row("secret differs in case", CC, invalid_client(), auth=("demo-app", "Demo-Secret")),
    cc_row("secret prefix", CC, invalid_client(), auth=("demo-app", "demo-secre")),
    cc_row("empty secret", CC, invalid_client(), auth=("demo-app", "")),
    cc_row("bearer scheme at /token", CC, invalid_client(), auth=None, Authorization="Bearer abcdefghijklmnopqrstuvwxyz"),
    # --- RFC 6749 §4.4.3: client_credentials: no refresh token; scope defaults to the app's.
    cc_row("client_credentials", CC, ok()),
    cc_row("client_credentials narrowed", f"{CC}&scope=orders%3Aread", ok("orders:read")),
    cc_row("scope order does not matter", form(grant_type="client_credentials", scope="orders:write orders:read"), ok()),
    cc_row("cc-only app default scope", CC, ok("orders:read"), auth=CC_ONLY),
    # --- 1.4: unknown, too broad or malformed scope -> invalid_scope.
    cc_row("unknown scope", form(grant_type="client_credentials", scope="orders:delete"), bad("invalid_scope")),
    cc_row("one scope too many", form(grant_type="client_credentials", scope="orders:read admin"), bad("invalid_scope")),
    cc_row("beyond app scopes", form(grant_type="client_credentials", scope="orders:write"), bad("invalid_scope"), auth=CC_ONLY),
    cc_row("scope is case-sensitive", form(grant_type="client_credentials", scope="Orders:Read"), bad("invalid_scope")),
    cc_row("double space", form(grant_type="client_credentials", scope="orders:read  orders:write"), bad("invalid_scope")),
    cc_row("quote in scope", form(grant_type="client_credentials", scope='orders:read"'), bad("invalid_scope")),
    cc_row("backslash in scope", form(grant_type="client_credentials", scope="orders:read\\"), bad("invalid_scope")),
    cc_row("tab in scope", form(grant_type="client_credentials", scope="orders:read\torders:write"), bad("invalid_scope")),
    cc_row("non-ascii scope", form(grant_type="client_credentials", scope="ordérs:read"), bad("invalid_scope")),
    # --- RFC 6749 §4.3: password grant.
    cc_row("password", form(grant_type="password", username="admin", password="admin"), ok(refresh=True)),
    cc_row("password narrowed", form(grant_type="password", username="admin", password="admin", scope="orders:write"),
           ok("orders:write", refresh=True)),
    cc_row("password default is app and user scopes", form(grant_type="password", username=READER[0], password=READER[1]),
           ok("orders:read", refresh=True)),
    cc_row("password beyond user scopes", form(grant_type="password", username=READER[0], password=READER[1],
                                                scope="orders:write"), bad("invalid_scope")),
    cc_row("password beyond app scopes", form(grant_type="password", username="admin", password="admin",
                                               scope="orders:read admin"), bad("invalid_scope")),
    cc_row("wrong password", form(grant_type="password", username="admin", password="nimda"), bad("invalid_grant")),
    cc_row("unknown user", form(grant_type="password", username="root", password="admin"), bad("invalid_grant")),
    cc_row("username is case-sensitive", form(grant_type="password", username="Admin", password="admin"), bad("invalid_grant")),
    cc_row("other user's password", form(grant_type="password", username="admin", password=READER[1]), bad("invalid_grant")),
    cc_row("missing username", form(grant_type="password", password="admin"), bad("invalid_request")),
    cc_row("missing password", form(grant_type="password", username="admin"), bad("invalid_request")),
    cc_row("empty password", form(grant_type="password", username="admin", password=""), bad("invalid_request")),
    # --- RFC 6749 §6: refresh_token grant basics (lifecycle in test_tokens.py).
    cc_row("missing refresh_token", "grant_type=refresh_token", bad("invalid_request")),
    cc_row("unknown refresh_token", form(grant_type="refresh_token", refresh_token="A" * 43), bad("invalid_grant")),
    cc_row("malformed refresh_token", form(grant_type="refresh_token", refresh_token="not a token!"), bad("invalid_grant")),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_token_endpoint(gateway, row):
    run_row(gateway, row)


def test_error_descriptions_never_echo_input(gateway):
    """RFC 6749 §5.2 (error_description's characters): whatever odd bytes a client sends, the description stays within
    RFC 6749 §5.2's character set (checked by token_error) and does not
    contain the input."""
    marker = 'zq"\\\x01é'
    want = bad("invalid_scope")
    data = run_row(gateway, cc_row("echo", form(grant_type="client_credentials", scope=marker), want))
    assert marker not in data["error_description"] and "zq" not in data["error_description"]


def test_tokens_are_distinct(gateway):
    """RFC 6749 §10.10 as far as a black box can tell: long enough for 128 bits (checked
    by token_success) and never repeated. Tokens may carry a structured
    prefix (a store slot, say), so only whole tokens are compared; the
    CSPRNG itself is the unit tests' business."""
    tokens = [client_token(gateway) for _ in range(20)]
    assert len(set(tokens)) == len(tokens)


def test_token_response_headers_on_405(gateway):
    """RFC 6749 §5.1 (`Cache-Control: no-store`) on the path least likely to go through the normal response code."""
    run_row(gateway, Row("HEAD", Req("HEAD", "/token"), Expect(405, {**NO_STORE, "Allow": "POST"})))



def raw_exchange(gw, head: bytes, body_parts: list[bytes], pause_s: float = 0.3) -> tuple[int, bytes]:
    """Send a request by hand: the head, then each body part after a pause,
    so the filter sees headers first and the body in later reads. Returns
    the status and the response body."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=TIMEOUT_S) as sock:
        try:
            sock.sendall(head)
            for part in body_parts:
                time.sleep(pause_s)
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway answered early (a body too large) and closed: read its answer
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


def token_head(extra: str) -> bytes:
    return (f"POST /token HTTP/1.1\r\nHost: tokengate\r\nAuthorization: {basic(*DEMO_APP)}\r\n"
            f"Content-Type: {FORM}\r\n{extra}\r\n").encode()


def test_body_arriving_after_the_headers(gateway):
    """The filter waits for the body it needs: headers, then the body in two
    late pieces, must still get a token."""
    body = f"{CC}&scope=orders%3Aread".encode()
    status, response = raw_exchange(gateway, token_head(f"Content-Length: {len(body)}\r\n"), [body[:10], body[10:]])
    assert status == 200 and b'"access_token"' in response, response


def test_chunked_body(gateway):
    """No Content-Length: the body ends with the last chunk."""
    chunks = [f"{len(p):x}\r\n{p}\r\n".encode() for p in (CC[:9], CC[9:])] + [b"0\r\n\r\n"]
    status, response = raw_exchange(gateway, token_head("Transfer-Encoding: chunked\r\n"), chunks)
    assert status == 200 and b'"access_token"' in response, response


def test_chunked_body_over_the_limit(gateway):
    """The limit holds without a Content-Length to check up front."""
    piece = "x" * 4096
    chunks = [f"{len(CC) + 5:x}\r\n{CC}&pad=\r\n".encode()]
    chunks += [f"{len(piece):x}\r\n{piece}\r\n".encode()] * 3 + [b"0\r\n\r\n"]
    status, response = raw_exchange(gateway, token_head("Transfer-Encoding: chunked\r\n"), chunks, pause_s=0.05)
    assert status == 413 and b"invalid_request" in response, response


def test_one_connection_hammering_the_token_endpoint_is_rate_limited_by_envoy(gateway):
    """envoy/envoy.yaml's local_ratelimit: 100 requests in a burst, then 50 a second, per
    connection, on the credential endpoints only (docs/token-endpoint.md). Another connection is unaffected."""
    with requests.Session() as session:
        statuses = []
        for _ in range(400):
            reply = session.post(gateway.url("/token"), data=CC, auth=DEMO_APP, timeout=TIMEOUT_S,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
            statuses.append(reply.status_code)
            if reply.status_code == 429:
                assert reply.text == "local_rate_limited", (describe(reply), len(statuses), dict(reply.headers))
                break
    assert statuses[-1] == 429 and len(statuses) > 100, statuses[-3:]
    assert set(statuses[:-1]) == {200}
    expect(post_token(gateway, CC), 200)
    expect(call(gateway, "/api/public/ping"), 200)
