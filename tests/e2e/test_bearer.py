"""Bearer checks on every path but /token (RFC 6750; docs/resources.md).

Also checks what envoy/envoy.yaml's path normalisation buys: a path spelled
differently still meets the resource rule it really addresses.
"""

import http.client
import json
import re

import pytest

import harness
from client import (
    ADMIN, FULL_SCOPE, Expect, Req, Row, bearer_challenge, call, client_token, forwarded, invalid_token,
    password_grant, refresh, run_row, scope_set, token_error,
)

PLUGIN_CONFIG = harness.demo_plugin_config()
# A trailing `*` template: zero or more further segments.
PLUGIN_CONFIG["resources"].append({"methods": ["GET"], "path": "/api/files/*", "scopes": ["orders:read"]})
# A public wildcard: what a `..;` path would try to climb out of.
PLUGIN_CONFIG["resources"].append({"methods": ["GET"], "path": "/api/static/*", "public": True})

IDENTITY_HEADERS = ("x-tokengate-client-id", "x-tokengate-username", "x-tokengate-scope")
SPOOFED = {"X-TokenGate-Client-Id": "evil", "x-tokengate-username": "root", "X-TOKENGATE-SCOPE": "orders:read admin"}


@pytest.fixture(scope="module")
def tokens(gateway) -> dict[str, str]:
    """Tokens the rows refer to as $rw (all scopes), $ro (orders:read) and $user (admin's)."""
    return {
        "rw": client_token(gateway),
        "ro": client_token(gateway, scope="orders:read", scope_out="orders:read"),
        "user": password_grant(gateway, ADMIN)["access_token"],
    }


def allow(*methods: str):
    def match(value: str) -> bool:
        return {m.strip() for m in value.split(",")} == set(methods)

    match.__name__ = f"allow{methods}"
    return match


def identity(client: str | None, scope: str | None = None, username: str | None = None):
    """The upstream saw exactly these identity headers (None: header absent)."""

    def match(headers: dict) -> bool:
        want = {"x-tokengate-client-id": client, "x-tokengate-scope": scope, "x-tokengate-username": username}
        if set(headers) != {k for k, v in want.items() if v is not None}:
            return False
        return all(v is None or (scope_set(v)(headers[k]) if k.endswith("scope") else headers[k] == v) for k, v in want.items())

    match.__name__ = f"identity({client}, {scope}, {username})"
    return match


def upstream(path: str, headers=None, authorization_forwarded: bool = False) -> Expect:
    """Forwarded to the demo upstream with this path and these identity headers."""
    return Expect(200, {}, {"path": path, "headers": headers or identity(None), "authorization_forwarded": authorization_forwarded})


NOT_FOUND = Expect(404, {"Content-Type": re.compile(r"application/json.*")}, {"error": "not_found"})
NO_CREDENTIALS = Expect(401, {"WWW-Authenticate": bearer_challenge()})
MALFORMED = Expect(400, {"WWW-Authenticate": bearer_challenge(error="invalid_request")})
INVALID_TOKEN = invalid_token()
REFUSED_JSON = Expect(400, {"Content-Type": re.compile(r"application/json.*")}, {"error": "invalid_request"})
ENVOY_REJECTS = Expect(400)  # path_with_escaped_slashes_action: REJECT_REQUEST, before the filter
RW_IDENTITY = identity("demo-app", FULL_SCOPE)


def get(path: str, auth: str | None = None, method: str = "GET", **headers: str) -> Req:
    if auth is not None:
        headers["Authorization"] = auth
    return Req(method, path, headers)


ROWS = [
    # --- resource matching: 404 / 405 come before any token check.
    Row("unknown path", get("/nope"), NOT_FOUND),
    Row("unknown path with token", get("/nope", "Bearer $rw"), NOT_FOUND),
    Row("root", get("/"), NOT_FOUND),
    Row("{id} is one segment", get("/api/orders/1/items", "Bearer $rw"), NOT_FOUND),
    Row("prefix is not a segment", get("/api/ordersx", "Bearer $rw"), NOT_FOUND),
    Row("template prefix is not a segment", get("/api/filesx", "Bearer $rw"), NOT_FOUND),
    Row("method not allowed", get("/api/orders", method="DELETE"), Expect(405, {"Allow": allow("GET", "POST")})),
    Row("method not allowed on {id}", get("/api/orders/7", "Bearer $rw", method="POST"), Expect(405, {"Allow": allow("GET")})),
    Row("method not allowed on public", get("/api/public/ping", method="PUT"), Expect(405, {"Allow": allow("GET")})),
    # --- public resources need no token; client identity headers never pass.
    Row("public", get("/api/public/ping"), upstream("/api/public/ping")),
    Row("public with query", get("/api/public/ping?x=1"), upstream("/api/public/ping?x=1")),
    Row("public strips spoofed identity", get("/api/public/ping", **SPOOFED), upstream("/api/public/ping")),
    # --- B4: no credentials -> 401 challenge without error.
    Row("no authorization", get("/api/orders"), NO_CREDENTIALS),
    Row("basic scheme", get("/api/orders", "Basic ZGVtby1hcHA6ZGVtby1zZWNyZXQ="), NO_CREDENTIALS),
    Row("other scheme", get("/api/orders", "Token $rw"), NO_CREDENTIALS),
    # --- B1/B5: malformed -> 400 invalid_request.
    Row("bearer without token", get("/api/orders", "Bearer"), MALFORMED),
    Row("bearer with space only", get("/api/orders", "Bearer "), MALFORMED),
    Row("two tokens", get("/api/orders", "Bearer $rw $rw"), MALFORMED),
    Row("character outside b64token", get("/api/orders", "Bearer abc$def"), MALFORMED),
    Row("quoted token", get("/api/orders", 'Bearer "$rw"'), MALFORMED),
    Row("equals inside token", get("/api/orders", "Bearer ab=cd"), MALFORMED),
    Row("only padding", get("/api/orders", "Bearer =="), MALFORMED),
    Row("non-ascii token", get("/api/orders", "Bearer t\u00f6ken".encode().decode("latin-1")), MALFORMED),
    # --- B2/B3: tokens in the query string are refused.
    Row("token in query", get("/api/orders?access_token=$rw"), MALFORMED),
    Row("token in query and header", get("/api/orders?access_token=$rw", "Bearer $rw"), MALFORMED),
    # --- a `_method` in the query: Symfony, Laravel and Express's method-override would make
    # the upstream see this POST as a DELETE (forward_method_overrides is off here).
    Row("method override in query", get("/api/orders?_method=DELETE", "Bearer $rw", method="POST"), REFUSED_JSON),
    Row("method override in query, encoded", get("/api/orders?%5Fmethod=DELETE", "Bearer $rw", method="POST"), REFUSED_JSON),
    Row("method override in query, PHP's spelling", get("/api/public/ping?.method=DELETE"), REFUSED_JSON),
    Row("method as a plain parameter", get("/api/public/ping?method=DELETE"), upstream("/api/public/ping?method=DELETE")),
    # --- B1: scheme case-insensitive, 1*SP before the token (RFC 6750 §2.1).
    Row("lower-case scheme", get("/api/orders", "bearer $rw"), upstream("/api/orders", RW_IDENTITY)),
    Row("upper-case scheme", get("/api/orders", "BEARER $rw"), upstream("/api/orders", RW_IDENTITY)),
    Row("two spaces", get("/api/orders", "Bearer  $rw"), upstream("/api/orders", RW_IDENTITY)),
    # --- B5: unknown tokens -> 401 invalid_token with a description.
    Row("unknown token", get("/api/orders", "Bearer " + "A" * 43), INVALID_TOKEN),
    Row("unknown padded token", get("/api/orders", "Bearer abcdefghijklmnopqrstuvwxyz=="), INVALID_TOKEN),
    Row("token with a character appended", get("/api/orders", "Bearer ${rw}A"), INVALID_TOKEN),
    # --- B5: scope too narrow -> 403 naming the resource's scopes.
    Row("read token on write resource", get("/api/orders", "Bearer $ro", method="POST"),
        Expect(403, {"WWW-Authenticate": bearer_challenge(error="insufficient_scope", scope="orders:write")})),
    # --- success: identity headers in, Authorization out (B7).
    Row("client token", get("/api/orders", "Bearer $rw"), upstream("/api/orders", RW_IDENTITY)),
    Row("read token", get("/api/orders/42", "Bearer $ro"), upstream("/api/orders/42", identity("demo-app", "orders:read"))),
    Row("write token", get("/api/orders", "Bearer $rw", method="POST"), upstream("/api/orders", RW_IDENTITY)),
    Row("user token", get("/api/orders", "Bearer $user"), upstream("/api/orders", identity("demo-app", FULL_SCOPE, "admin"))),
    Row("query ignored for matching", get("/api/orders?page=2&sort=id", "Bearer $rw"), upstream("/api/orders?page=2&sort=id", RW_IDENTITY)),
    Row("spoofed identity replaced", get("/api/orders", "Bearer $rw", **SPOOFED), upstream("/api/orders", RW_IDENTITY)),
    Row("spoofed username removed", get("/api/orders/1", "Bearer $ro", **SPOOFED), upstream("/api/orders/1", identity("demo-app", "orders:read"))),
    Row("wildcard matches zero segments", get("/api/files", "Bearer $ro"), upstream("/api/files", identity("demo-app", "orders:read"))),
    Row("wildcard matches many segments", get("/api/files/a/b/c.txt", "Bearer $ro"), upstream("/api/files/a/b/c.txt", identity("demo-app", "orders:read"))),
    Row("wildcard needs a token", get("/api/files/a"), NO_CREDENTIALS),
    # --- envoy.yaml's normalisation: other spellings meet the same rule.
    Row("double slash", get("/api//orders"), NO_CREDENTIALS),
    Row("dot segment", get("/api/./orders"), NO_CREDENTIALS),
    Row("dot-dot out of public", get("/api/public/../orders"), NO_CREDENTIALS),
    Row("encoded dot-dot out of public", get("/api/public/%2e%2e/orders"), NO_CREDENTIALS),
    Row("encoded unreserved character", get("/api/%6Frders"), NO_CREDENTIALS),
    Row("normalised path forwarded", get("/api/public/../orders", "Bearer $rw"), upstream("/api/orders", RW_IDENTITY)),
    Row("encoded slash rejected", get("/api/orders%2F1", "Bearer $rw"), ENVOY_REJECTS),
    Row("encoded backslash rejected", get("/api/orders%5C1", "Bearer $rw"), ENVOY_REJECTS),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_bearer(gateway, tokens, row):
    run_row(gateway, row, tokens)


def test_no_credentials_body_has_no_error_code(gateway):
    """B4: a request without credentials learns nothing about error codes."""
    resp = call(gateway, "/api/orders")
    assert resp.status_code == 401
    assert "invalid_token" not in resp.text and "invalid_request" not in resp.text


def test_token_never_reaches_upstream(gateway, tokens):
    """B7: with forward_authorization off, the upstream never sees the token,
    in Authorization or in any echoed header."""
    echo = forwarded(call(gateway, "/api/orders", tokens["rw"]))
    assert echo["authorization_forwarded"] is False
    assert tokens["rw"] not in str(echo)


def test_identity_headers_are_single_valued(gateway, tokens):
    """A spoofed copy must not survive next to the real value (the upstream
    joins repeated headers with ', ')."""
    echo = forwarded(call(gateway, "/api/orders", tokens["user"], **SPOOFED))
    for name in IDENTITY_HEADERS:
        assert "," not in echo["headers"][name] and "evil" not in echo["headers"][name], echo
    assert echo["headers"]["x-tokengate-username"] == "admin"


# Headers that frameworks honour to change the method or path after our check.
METHOD_OVERRIDES = {
    "X-HTTP-Method-Override": "DELETE", "X-HTTP-Method": "DELETE", "X-Method-Override": "PUT",
    "X-Original-URL": "/api/admin", "X-Rewrite-URL": "/api/admin",
}
OVERRIDE_ROWS = [
    Row("read token with method overrides", get("/api/orders", "Bearer $ro", **METHOD_OVERRIDES),
        upstream("/api/orders", identity("demo-app", "orders:read"))),
    Row("public resource with method overrides", get("/api/public/ping", **METHOD_OVERRIDES),
        upstream("/api/public/ping")),
]


@pytest.mark.parametrize("row", OVERRIDE_ROWS, ids=lambda r: r.id)
def test_method_overrides_never_reach_the_upstream(gateway, tokens, row):
    echo = run_row(gateway, row, tokens)
    reached = set(echo["header_names"])
    assert not reached & {name.lower() for name in METHOD_OVERRIDES}, echo


# Sent byte for byte (requests would resolve dot segments itself). Envoy's
# normalize_path resolves `..;` and `.;` like a dot segment (as Tomcat would), but it decodes
# `%2e` only afterwards, so `%2e%2e;` reaches the filter as `..;`, which Tomcat, Jetty and
# Spring serve as the parent: /api/static/%2e%2e;/api/orders would be /api/orders upstream.
REFUSED = (400, "invalid_request")
AMBIGUOUS_PATHS = [
    ("encoded dot-dot semicolon", "/api/static/%2e%2e;/api/orders", REFUSED),
    ("upper-case encoded dot-dot semicolon", "/api/static/%2E%2E;/api/orders", REFUSED),
    ("encoded dot semicolon", "/api/static/%2e;/api/orders", REFUSED),
    ("encoded semicolon", "/api/static/..%3b/api/orders", REFUSED),
    ("upper-case encoded semicolon", "/api/static/..%3B/api/orders", REFUSED),
    ("matrix parameter in {id}", "/api/orders/1;x=1", REFUSED),
    ("matrix parameter in a public wildcard", "/api/static/app.js;jsessionid=1", REFUSED),
    # Resolved by Envoy before the filter runs: the rule of the resolved path applies.
    ("dot-dot semicolon, resolved by Envoy", "/api/static/..;/orders", (401, None)),
]


def raw_get(gw, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "gw")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body else {}
    finally:
        conn.close()


@pytest.mark.parametrize("path, want", [(p, w) for _, p, w in AMBIGUOUS_PATHS], ids=[n for n, _, _ in AMBIGUOUS_PATHS])
def test_dot_segments_and_semicolon_parameters_are_refused(gateway, path, want):
    status, body = raw_get(gateway, path)
    assert (status, body.get("error")) == want, (status, body)


def test_a_public_wildcard_still_serves_its_files(gateway):
    status, body = raw_get(gateway, "/api/static/app.min.js")
    assert (status, body.get("path")) == (200, "/api/static/app.min.js"), (status, body)


def test_access_token_is_not_a_refresh_token(gateway, tokens):
    """Token kinds don't mix: an access token cannot refresh (the reverse is
    in test_tokens.py)."""
    token_error(400, "invalid_grant").check(refresh(gateway, tokens["user"]))

