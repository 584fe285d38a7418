"""Basic client authentication header decoding (RFC 6749 §2.3.1).

Expectations follow docs/token-endpoint.md: every failure is 401
invalid_client with a Basic challenge, never a 5xx.

Ids and secrets are decoded as RFC 6749 §2.3.1 says: base64, split at the
first ':', then form-url-decode each half. The apps below make each step
observable:
  client/secret        a plain client
  my-client/secret     `my%2Dclient` must decode to `my-client`
  plus-client/a+b      only `a%2Bb` means `a+b`; a raw `+` is a space
  tg.app_1-x~/...      id and secret from the safe set [A-Za-z0-9-._~], which
                       raw (authlib) and form-encoding (oauth2 crate,
                       openid-client) clients send identically
"""

import base64
from urllib.parse import quote

import pytest

import harness
from client import CC, Row, basic, invalid_client, run_row, send, token_req, token_success

CLIENT = ("client", "secret")
MY_CLIENT = ("my-client", "secret")
PLUS_CLIENT = ("plus-client", "a+b")
TILDE_APP = ("tg.app_1-x~", "s3cr3t-._~X")

PLUGIN_CONFIG = harness.demo_plugin_config()
PLUGIN_CONFIG["applications"] += [
    {"consumer_key": key, "consumer_secret": secret, "grant_types": ["client_credentials"], "scopes": ["orders:read"]}
    for key, secret in (CLIENT, MY_CLIENT, PLUS_CLIENT, TILDE_APP)
]

ACCEPTED = token_success("orders:read", refresh=False)
REJECTED = invalid_client()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def every_byte_escaped(text: str) -> str:
    """Percent-encode every byte, even unreserved ones: still the same value."""
    return "".join(f"%{b:02X}" for b in text.encode())


def row(id: str, authorization: str, want=REJECTED) -> Row:
    return Row(id, token_req(CC, auth=None, Authorization=authorization), want)


ROWS = [
    # --- the decoding steps
    row("split at first colon", "Basic Y2xpZW50OnNlYzpyZXQ="),  # client / sec:ret, not client:sec / ret
    row("no colon", "Basic Y2xpZW50"),
    row("empty id", "Basic OnNlY3JldA=="),
    row("empty secret", "Basic Y2xpZW50Og=="),
    row("base64url alphabet", "Basic -_86Y2xpZW50Pw=="),
    row("secret not utf-8", "Basic Y2xpZW50Ov/+"),
    row("NUL in secret", "Basic Y2xpZW50OnNlAGNyZXQ="),
    row("encoded colon in id is part of the id", "Basic bXklM0FjbGllbnQ6c2VjcmV0"),  # my:client: no such app
    # `client:a+b` / `client:a%2Bb`, for an app whose secret is a+b.
    row("raw plus is a space", f"Basic {b64('plus-client:a+b')}"),
    row("encoded plus is a plus", f"Basic {b64('plus-client:a%2Bb')}", ACCEPTED),
    row("lower-case scheme", f"basic {b64('client:secret')}", ACCEPTED),
    row("upper-case scheme", f"BASIC {b64('client:secret')}", ACCEPTED),
    row("two spaces", f"Basic  {b64('client:secret')}", ACCEPTED),
    row("tab after scheme", f"Basic\t{b64('client:secret')}"),
    row("scheme only", "Basic"),
    row("scheme and space", "Basic "),
    # --- more of the same rules
    row("control", basic(*CLIENT), ACCEPTED),
    row("encoded id", f"Basic {b64('my%2Dclient:secret')}", ACCEPTED),
    row("trailing garbage", f"Basic {b64('client:secret')} extra"),
    row("not base64", "Basic !!!!"),
    row("other scheme", f"Digest {b64('client:secret')}"),
    row("id with trailing space", basic("client ", "secret")),
    row("secret with trailing newline", basic("client", "secret\n")),
    # --- the safe set: raw and form-encoded credentials are the same bytes
    row("safe set raw", basic(*TILDE_APP), ACCEPTED),
    row("safe set form-encoded", basic(quote(TILDE_APP[0], safe=""), quote(TILDE_APP[1], safe="")), ACCEPTED),
    row("safe set every byte escaped", basic(every_byte_escaped(TILDE_APP[0]), every_byte_escaped(TILDE_APP[1])), ACCEPTED),
    row("safe set wrong secret", basic(TILDE_APP[0], TILDE_APP[1].upper())),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_basic_decoding(gateway, row):
    run_row(gateway, row)


def test_missing_padding_is_handled_consistently(gateway):
    """`client:secret` without base64 padding: accept or reject, but always
    the same way, and a rejection is a proper 401."""
    unpadded = row("no padding", "Basic Y2xpZW50OnNlY3JldA")
    assert unpadded.req.headers["Authorization"] == f"Basic {b64('client:secret').rstrip('=')}"
    statuses = {send(gateway, unpadded.req).status_code for _ in range(6)}
    assert len(statuses) == 1, statuses
    (status,) = statuses
    run_row(gateway, Row("no padding", unpadded.req, ACCEPTED if status == 200 else REJECTED))
