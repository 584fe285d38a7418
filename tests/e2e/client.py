"""HTTP side of the e2e tests: request rows, expectations, token helpers.

A test row is a request plus what must come back: a status, some headers and
some JSON body fields. Values in a row may carry `$name` placeholders (for a
token obtained at run time); `Req.render` fills them in.

Every request goes out on a fresh connection (one throwaway requests session
each), so consecutive requests land on different Envoy workers, and therefore
on different wasm VMs, as often as the kernel spreads them.
"""

from __future__ import annotations

import base64
import re
import string
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

import requests

TIMEOUT_S = 10
FORM = "application/x-www-form-urlencoded"
DEMO_APP = ("demo-app", "demo-secret")
ADMIN = ("admin", "admin")
FULL_SCOPE = "orders:read orders:write"
CC = "grant_type=client_credentials"
# How long to wait for a token configured to live 1 s to be dead: the
# validity, plus a whole second for a clock kept in seconds, plus slack.
EXPIRY_WAIT_S = 2.5

# RFC 6750 §2.1 b64token; tokens must also carry at least 128 bits (RFC 6749
# §10.10), which is at least 22 characters in any of these alphabets.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MIN_TOKEN_CHARS = 22
# RFC 3986 unreserved characters: what generated client ids and secrets use,
# so that raw and form-encoded HTTP Basic credentials are the same bytes.
UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]+")
# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
ERROR_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class Req:
    method: str = "GET"
    path: str = "/"
    headers: dict = field(default_factory=dict)
    body: bytes | str | None = None

    def render(self, values: dict[str, str]) -> "Req":
        def fill(text: str) -> str:
            return string.Template(text).safe_substitute(values)

        body = fill(self.body) if isinstance(self.body, str) else self.body
        return Req(self.method, fill(self.path), {k: fill(v) for k, v in self.headers.items()}, body)


def send(gw, req: Req) -> requests.Response:
    body = req.body.encode() if isinstance(req.body, str) else req.body
    # Default headers are dropped so a row states every header that matters
    # (requests would otherwise add Accept-Encoding and friends, harmless, but
    # never Content-Type, which rows must set themselves).
    with requests.Session() as session:
        session.headers.clear()
        return session.request(req.method, gw.url(req.path), headers=req.headers, data=body, timeout=TIMEOUT_S)


def form(**params: str) -> str:
    """A form body, encoded the way a browser or client library would."""
    return urlencode(params)


def padded_cc_body(size: int) -> str:
    """A client_credentials form of exactly `size` bytes (padded with an
    ignored parameter), for the body size limit."""
    prefix = f"{CC}&pad="
    return prefix + "x" * (size - len(prefix))


def basic(client_id: str, secret: str, scheme: str = "Basic") -> str:
    """Authorization value with the id and secret sent raw (as authlib does)."""
    return f"{scheme} {base64.b64encode(f'{client_id}:{secret}'.encode()).decode()}"


def token_req(body: str | bytes, auth: tuple[str, str] | None = DEMO_APP, content_type: str | None = FORM,
              path: str = "/token", method: str = "POST", **headers: str) -> Req:
    """A /token request: Basic auth for `auth`, form content type, given body."""
    hdrs = dict(headers)
    if auth is not None:
        hdrs["Authorization"] = basic(*auth)
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    return Req(method, path, hdrs, body)


def bearer_req(path: str, token: str | None = None, method: str = "GET", **headers: str) -> Req:
    hdrs = dict(headers)
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    return Req(method, path, hdrs)


def orders_call(token: str) -> Req:
    """GET /api/orders with `token`: the demo's resource that any orders:read token may call."""
    return bearer_req("/api/orders", token)


# ---------------------------------------------------------------- expectations

ABSENT = object()  # header or JSON field must not be there
ANY = object()  # header or JSON field must be there, any value

Matcher = Any  # str | int | re.Pattern | Callable[[Any], bool] | ABSENT | ANY


def _matches(expected: Matcher, actual: Any) -> bool:
    if expected is ANY:
        return True
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.fullmatch(actual) is not None
    if callable(expected):
        return bool(expected(actual))
    if isinstance(expected, int) and not isinstance(expected, bool):
        # JSON numbers: 1 and 1.0 are the same, True is not a number.
        return isinstance(actual, (int, float)) and not isinstance(actual, bool) and actual == expected
    return actual == expected


def _clip(body: Any, limit: int = 2000) -> str:
    text = repr(body)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def describe(resp: requests.Response) -> str:
    req = resp.request
    return (
        f"\n> {req.method} {req.url}\n> " + "\n> ".join(f"{k}: {v}" for k, v in req.headers.items())
        + f"\n> {_clip(req.body)}\n< {resp.status_code}\n< "
        + "\n< ".join(f"{k}: {v}" for k, v in resp.headers.items()) + f"\n< {_clip(resp.text)}"
    )


def expect(resp: requests.Response, status: int, headers: dict[str, Matcher] | None = None,
           body: dict[str, Matcher] | None = None, exact: bool = False) -> dict | None:
    """Assert status, headers (case-insensitive names) and JSON body fields.

    With `exact`, the body must have no fields besides those in `body`.
    Returns the parsed JSON body when `body` was given. All mismatches are
    reported together, with the full exchange.
    """
    problems = []
    if resp.status_code != status:
        problems.append(f"status {resp.status_code}, expected {status}")
    for name, want in (headers or {}).items():
        got = resp.headers.get(name)
        if want is ABSENT:
            if got is not None:
                problems.append(f"header {name} should be absent, got {got!r}")
        elif got is None:
            problems.append(f"header {name} missing")
        elif not _matches(want, got):
            problems.append(f"header {name}: {got!r} does not match {want!r}")
    data = None
    if body is not None:
        try:
            data = resp.json()
        except ValueError:
            problems.append("body is not JSON")
        else:
            if not isinstance(data, dict):
                problems.append("body is not a JSON object")
            else:
                for key, want in body.items():
                    if want is ABSENT:
                        if key in data:
                            problems.append(f"field {key} should be absent, got {data[key]!r}")
                    elif key not in data:
                        problems.append(f"field {key} missing")
                    elif not _matches(want, data[key]):
                        problems.append(f"field {key}: {data[key]!r} does not match {want!r}")
                extra = sorted(set(data) - set(body))
                if exact and extra:
                    problems.append(f"unexpected fields {extra}")
    assert not problems, "; ".join(problems) + describe(resp)
    return data


@dataclass(frozen=True)
class Expect:
    status: int
    headers: dict = field(default_factory=dict)
    body: dict | None = None
    exact: bool = False  # the body has exactly the fields of `body`

    def check(self, resp: requests.Response) -> dict | None:
        return expect(resp, self.status, self.headers, self.body, self.exact)


@dataclass(frozen=True)
class Row:
    """One line of a table: a request and what it must get back."""

    id: str
    req: Req
    want: Expect


def run_row(gw, row: Row, values: dict[str, str] | None = None) -> dict | None:
    return row.want.check(send(gw, row.req.render(values or {})))


# Fresh connections until every worker has served this many of them.
PER_WORKER = 3
MAX_CONNECTIONS = 200


def on_every_worker(gw, req: Req, want: "Expect | Callable[[requests.Response], Any]",
                    per_worker: int = PER_WORKER) -> int:
    """Send `req` on fresh connections until each Envoy worker has served at
    least `per_worker` of them, checking every response; returns how many
    were sent.

    Each worker runs its own wasm VM, so this proves a token (or its
    revocation, or a new application) is seen by every VM, not just the one
    that issued it. Which worker takes a connection is the kernel's choice;
    Envoy's per-worker listener stats say who did.
    """
    check = want.check if isinstance(want, Expect) else want
    before = gw.worker_connections()
    sent = 0
    while True:
        check(send(gw, Req(req.method, req.path, {**req.headers, "Connection": "close"}, req.body)))
        sent += 1
        served = [now - then for now, then in zip(gw.worker_connections(), before)]
        if min(served) >= per_worker:
            return sent
        assert sent < MAX_CONNECTIONS, f"{sent} fresh connections, yet the workers served {served}"


# --- challenges (RFC 9110 §11.6.1, RFC 6750 §3)

_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_challenge(value: str) -> tuple[str, list[tuple[str, str]]]:
    """Split `Scheme a="x", b="y"` into the scheme and its (name, value) pairs.

    Raises ValueError on anything that is not scheme + quoted auth-params, so
    a sloppy header fails the test instead of half-matching.
    """
    scheme, _, rest = value.partition(" ")
    params, pos = [], 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m:
            raise ValueError(f"cannot parse challenge params at {rest[pos:]!r}")
        params.append((m.group(1).lower(), re.sub(r"\\(.)", r"\1", m.group(2))))
        pos = m.end()
    return scheme, params


def challenge(scheme: str, optional: tuple[str, ...] = (), **required: Matcher) -> Callable[[str], bool]:
    """Matcher for a WWW-Authenticate value: scheme (any case), the required
    params with matching values, no other params except `optional`, and no
    param twice (RFC 6750 §3)."""

    def match(value: str) -> bool:
        try:
            got_scheme, params = parse_challenge(value)
        except ValueError:
            return False
        names = [n for n, _ in params]
        values = dict(params)
        return (
            got_scheme.lower() == scheme.lower()
            and len(names) == len(set(names))
            and set(required) <= set(names) <= set(required) | set(optional)
            and all(_matches(want, values[name]) for name, want in required.items())
            and ERROR_DESCRIPTION.fullmatch(values.get("error_description", "")) is not None
        )

    match.__name__ = match.__qualname__ = f"challenge({scheme}, {required}, optional={optional})"
    return match


def basic_challenge(realm: str = "tokengate"):
    return challenge("Basic", optional=("charset",), realm=realm)


def bearer_challenge(realm: str = "tokengate", error: str | None = None, **params: Matcher):
    if error is None:
        # RFC 6750 §3.1: a request without credentials gets no error code.
        return challenge("Bearer", realm=realm)
    return challenge("Bearer", optional=("error_description", "error_uri", "scope"), realm=realm, error=error, **params)


# --- /token responses (RFC 6749 §5)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": re.compile(r"application/json(;.*)?", re.I)}


def token_error(status: int, error: str, **headers: Matcher) -> Expect:
    """An error from /token: the no-store headers, JSON error and a safe description."""
    return Expect(status, {**NO_STORE, **headers}, {"error": error, "error_description": ERROR_DESCRIPTION})


def invalid_client(realm: str = "tokengate") -> Expect:
    return token_error(401, "invalid_client", **{"WWW-Authenticate": basic_challenge(realm)})


def scope_set(expected: str) -> Callable[[str], bool]:
    """Scope strings compare as sets (RFC 6749 §3.3: order does not matter),
    but must be single-space separated tokens."""

    def match(actual: str) -> bool:
        return isinstance(actual, str) and actual.split(" ") == actual.split() and set(actual.split()) == set(expected.split())

    match.__name__ = match.__qualname__ = f"scope_set({expected!r})"
    return match


def is_token(value: Any) -> bool:
    return isinstance(value, str) and len(value) >= MIN_TOKEN_CHARS and B64TOKEN.fullmatch(value) is not None


def positive_number(value: Any) -> bool:
    # RFC 6749 §5.1: expires_in is a JSON number (not a string, not a bool).
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def token_success(scope: str, refresh: bool, expires_in: Matcher = positive_number) -> Expect:
    return Expect(200, NO_STORE, {
        "access_token": is_token,
        "token_type": lambda t: isinstance(t, str) and t.lower() == "bearer",
        "expires_in": expires_in,
        "scope": scope_set(scope),
        "refresh_token": is_token if refresh else ABSENT,
    })


# ---------------------------------------------------------------- token helpers


def post_token(gw, body: str, auth: tuple[str, str] | None = DEMO_APP, **headers: str) -> requests.Response:
    """POST a form to the gateway's token endpoint (wherever its config puts it)."""
    return send(gw, token_req(body, auth, path=gw.token_path, **headers))


def issue(gw, auth: tuple[str, str] = DEMO_APP, *, scope_out: str = FULL_SCOPE, expires_in: Matcher = positive_number,
          **params: str) -> dict:
    """Obtain a token (asserting a well-formed 200) and return the JSON body.

    `params` is the form (grant_type=..., username=...); a refresh token is
    expected exactly for the password and refresh_token grants.
    """
    refresh = params.get("grant_type") in ("password", "refresh_token")
    want = token_success(scope_out, refresh, expires_in)
    return want.check(post_token(gw, form(**params), auth))


def client_token(gw, auth: tuple[str, str] = DEMO_APP, scope_out: str = FULL_SCOPE, **params: str) -> str:
    return issue(gw, auth, scope_out=scope_out, grant_type="client_credentials", **params)["access_token"]


def password_grant(gw, user: tuple[str, str] = ADMIN, auth: tuple[str, str] = DEMO_APP,
                   scope_out: str = FULL_SCOPE, **params: str) -> dict:
    return issue(gw, auth, scope_out=scope_out, grant_type="password", username=user[0], password=user[1], **params)


def refresh(gw, refresh_token: str, auth: tuple[str, str] = DEMO_APP, headers: dict | None = None,
            **params: str) -> requests.Response:
    return post_token(gw, form(grant_type="refresh_token", refresh_token=refresh_token, **params), auth, **(headers or {}))


def call(gw, path: str, token: str | None = None, method: str = "GET", **headers: str) -> requests.Response:
    return send(gw, bearer_req(path, token, method, **headers))


def forwarded(resp: requests.Response) -> dict:
    """Assert the request reached the demo upstream; return its echo."""
    return expect(resp, 200, body={"method": ANY, "path": ANY, "headers": ANY, "authorization_forwarded": ANY})


def invalid_token(realm: str = "tokengate") -> Expect:
    return Expect(401, {"WWW-Authenticate": bearer_challenge(realm, "invalid_token", error_description=ERROR_DESCRIPTION)})
