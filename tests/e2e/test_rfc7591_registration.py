"""RFC 7591 dynamic client registration and RFC 7592 management,
through the real Envoy with two workers.

  POST   /register        client metadata (JSON), an administrator's HTTP Basic
                          (RFC 7591 §3 lets the server require authorization):
                          201 with client_id, client_secret, client_id_issued_at,
                          client_secret_expires_at 0, the metadata,
                          registration_access_token and registration_client_uri
  GET    /register/<id>   RFC 7592 read, Authorization: Bearer <registration access token>
  PUT    /register/<id>   RFC 7592 update (client_id must match; no new secret)
  DELETE /register/<id>   RFC 7592 delete (204): the client's tokens end

A wrong token and an unknown client get the same 401 invalid_token with a
Bearer challenge. WSO2's v0.17 endpoint keeps working beside it.
"""

import json

import pytest

import harness
from client import (
    ABSENT, ADMIN, NO_STORE, UNRESERVED, Expect, Req, basic, form, forwarded, invalid_token, on_every_worker,
    orders_call, send, token_error, token_req, token_success,
)

ENDPOINT = "/register"
JSON_TYPE = "application/json"
VIEWER = ("viewer", "viewer")

PLUGIN_CONFIG = harness.demo_plugin_config()
PLUGIN_CONFIG["users"].append({"username": VIEWER[0], "password": VIEWER[1], "scopes": ["orders:read"]})
V017 = PLUGIN_CONFIG["registration"]["endpoint"]

BAD_METADATA = token_error(400, "invalid_client_metadata")
BAD_TOKEN = token_error(401, "invalid_token", **{"WWW-Authenticate": 'Bearer realm="tokengate", error="invalid_token"'})


def register_req(payload, who=ADMIN, content_type: str | None = JSON_TYPE, method: str = "POST") -> Req:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    headers = {"Authorization": basic(*who)} if who else {}
    if content_type:
        headers["Content-Type"] = content_type
    return Req(method, ENDPOINT, headers, body)


def manage_req(method: str, client_id: str, token: str | None, payload=None) -> Req:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = None
    if payload is not None:
        headers["Content-Type"] = JSON_TYPE
        body = json.dumps(payload)
    return Req(method, f"{ENDPOINT}/{client_id}", headers, body)


def registered(gw, payload: dict) -> dict:
    return Expect(201, NO_STORE, {
        "client_id": UNRESERVED, "client_secret": UNRESERVED, "registration_access_token": UNRESERVED,
        "client_id_issued_at": lambda v: isinstance(v, int) and v > 1_600_000_000,
        "client_secret_expires_at": 0,
    }).check(send(gw, register_req(payload)))


def test_register_use_read_update_delete(gateway):
    payload = {"client_name": "rfc7591-shop", "grant_types": ["client_credentials"],
               "redirect_uris": ["https://shop.example/cb"], "scope": "orders:read",
               "token_endpoint_auth_method": "client_secret_post", "software_id": "ignored"}
    data = registered(gateway, payload)
    client_id, secret, token = data["client_id"], data["client_secret"], data["registration_access_token"]
    # Under the issuer: the demo names its TLS listener, whichever listener registered it.
    assert data["registration_client_uri"] == f"{PLUGIN_CONFIG['issuer']}{ENDPOINT}/{client_id}"
    assert {k: data[k] for k in ("client_name", "grant_types", "redirect_uris", "scope",
                                 "token_endpoint_auth_method")} == {k: v for k, v in payload.items()
                                                                    if k != "software_id"}
    assert "software_id" not in data
    # At once on every worker, with client_secret_post as it registered, and with Basic.
    post = token_req(f"grant_type=client_credentials&{form(client_id=client_id, client_secret=secret)}", None)
    on_every_worker(gateway, post, token_success("orders:read", refresh=False))
    access = token_success("orders:read", refresh=False).check(
        send(gateway, token_req("grant_type=client_credentials", (client_id, secret))))["access_token"]
    forwarded(send(gateway, orders_call(access)))

    read = Expect(200, NO_STORE, {"client_id": client_id, "client_name": "rfc7591-shop", "client_secret": ABSENT,
                                  "registration_access_token": ABSENT}).check(
        send(gateway, manage_req("GET", client_id, token)))
    assert read["registration_client_uri"] == data["registration_client_uri"]
    Expect(200, NO_STORE, {"client_name": "renamed", "scope": "orders:read",
                           "token_endpoint_auth_method": "client_secret_basic"}).check(
        send(gateway, manage_req("PUT", client_id, token, {"client_id": client_id, "client_name": "renamed",
                                                             "grant_types": ["client_credentials"]})))
    # The same secret, with the scope the administrator registered: leaving `scope` out of the
    # client's own update keeps it (a registration access token never widens a client).
    token_success("orders:read", refresh=False).check(
        send(gateway, token_req("grant_type=client_credentials", (client_id, secret))))

    Expect(204).check(send(gateway, manage_req("DELETE", client_id, token)))
    on_every_worker(gateway, orders_call(access), invalid_token())
    token_error(401, "invalid_client").check(send(gateway, post))
    BAD_TOKEN.check(send(gateway, manage_req("GET", client_id, token)))


@pytest.fixture(scope="module")
def victim(gateway) -> dict:
    data = registered(gateway, {"client_name": "victim"})
    return {"id": data["client_id"], "token": data["registration_access_token"], "secret": data["client_secret"]}


ERROR_ROWS = {
    "not JSON": (register_req("{nope"), BAD_METADATA),
    "grant_types as a string": (register_req({"grant_types": "client_credentials"}), BAD_METADATA),
    # The code grant redirects: it needs redirect URIs, by the configured ones' rules.
    "authorization_code without redirect_uris": (register_req({"grant_types": ["authorization_code"]}),
                                                 token_error(400, "invalid_redirect_uri")),
    "authorization_code to plain http": (register_req({"grant_types": ["authorization_code"],
                                                       "redirect_uris": ["http://shop.example/cb"]}),
                                         token_error(400, "invalid_redirect_uri")),
    "refresh_token without password": (register_req({"grant_types": ["client_credentials", "refresh_token"]}),
                                       BAD_METADATA),
    "scope beyond registration.scopes": (register_req({"scope": "admin"}), BAD_METADATA),
    # A public client (none) may use the code flow's grants only (docs/registration.md).
    "auth method none with client_credentials": (
        register_req({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}), BAD_METADATA),
    "auth method none without redirect_uris": (register_req({"token_endpoint_auth_method": "none"}),
                                               token_error(400, "invalid_redirect_uri")),
    "auth method private_key_jwt": (register_req({"token_endpoint_auth_method": "private_key_jwt"}), BAD_METADATA),
    "relative redirect URI": (register_req({"redirect_uris": ["/cb"]}), token_error(400, "invalid_redirect_uri")),
    "redirect URI with a fragment": (register_req({"redirect_uris": ["https://a.example/#x"]}),
                                     token_error(400, "invalid_redirect_uri")),
    "form body": (register_req("client_name=x", content_type="application/x-www-form-urlencoded"),
                  token_error(400, "invalid_request")),
    "no credentials": (register_req({}, None), token_error(401, "invalid_client")),
    "not an administrator": (register_req({}, VIEWER), token_error(401, "invalid_client")),
    "an initial access token (not supported: Basic only)": (
        Req("POST", ENDPOINT, {"Authorization": "Bearer abcdefabcdefabcdefabcdef", "Content-Type": JSON_TYPE}, "{}"),
        token_error(401, "invalid_client")),
    "GET the endpoint": (Req("GET", ENDPOINT, {"Authorization": basic(*ADMIN)}),
                         token_error(405, "invalid_request", Allow="POST")),
    "read without a token": (manage_req("GET", "$id", None), BAD_TOKEN),
    "read with a wrong token": (manage_req("GET", "$id", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), BAD_TOKEN),
    "read with the client secret": (manage_req("GET", "$id", "$secret"), BAD_TOKEN),
    "read with a non-administrator's Basic": (Req("GET", f"{ENDPOINT}/$id", {"Authorization": basic(*VIEWER)}),
                                              token_error(401, "invalid_client")),
    "read an unknown client": (manage_req("GET", "AAAAAAAAAAAAAAAAAAAAAA", "$token"), BAD_TOKEN),
    "update another client_id": (manage_req("PUT", "$id", "$token", {"client_id": "demo-app"}),
                                 token_error(400, "invalid_request")),
    "update with a wrong secret": (manage_req("PUT", "$id", "$token", {"client_id": "$id", "client_secret": "x"}),
                                   BAD_METADATA),
    "update to an unknown grant": (manage_req("PUT", "$id", "$token", {"client_id": "$id", "grant_types": ["x"]}),
                                   BAD_METADATA),
    "POST to the client": (manage_req("POST", "$id", "$token", {}),
                           token_error(405, "invalid_request", Allow="GET, PUT, DELETE")),
    "delete with a wrong token": (manage_req("DELETE", "$id", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), BAD_TOKEN),
}


@pytest.mark.parametrize("row", ERROR_ROWS)
def test_rfc7591_errors(gateway, victim, row):
    req, want = ERROR_ROWS[row]
    want.check(send(gateway, req.render(victim)))
    # The victim is untouched.
    Expect(200, body={"client_id": victim["id"], "client_name": "victim"}).check(
        send(gateway, manage_req("GET", victim["id"], victim["token"])))


def test_the_v017_endpoint_keeps_working(gateway):
    data = Expect(201, NO_STORE, {"clientId": UNRESERVED, "clientSecret": UNRESERVED}).check(send(gateway, Req(
        "POST", V017, {"Authorization": basic(*ADMIN), "Content-Type": JSON_TYPE},
        json.dumps({"clientName": "still-v017", "grantType": "client_credentials"}))))
    token_success("orders:read orders:write", refresh=False).check(
        send(gateway, token_req("grant_type=client_credentials", (data["clientId"], data["clientSecret"]))))
    # The administrator who registered an RFC 7591 client sees it at v0.17's endpoint too.
    rfc = registered(gateway, {"client_name": "seen-by-v017"})
    Expect(200, body={"clientId": rfc["client_id"], "clientName": "seen-by-v017"}).check(
        send(gateway, Req("GET", f"{V017}/{rfc['client_id']}", {"Authorization": basic(*ADMIN)})))


def admin_req(method: str, client_id: str, payload=None, who=ADMIN) -> Req:
    req = manage_req(method, client_id, None, payload)
    req.headers["Authorization"] = basic(*who)
    return req


def test_a_client_keeps_or_narrows_what_its_administrator_registered(gateway):
    """RFC 7592 §2.2 lets the server refuse a change: the registration access token alone may
    not add grant types or scopes; the registering administrator (HTTP Basic) may, and its
    update hands the client a new registration access token (§3)."""
    data = registered(gateway, {"client_name": "console", "grant_types": ["client_credentials"],
                                "scope": "orders:read"})
    client_id, token = data["client_id"], data["registration_access_token"]
    wider = {"client_id": client_id, "client_name": "Demo console",
             "grant_types": ["client_credentials", "password", "refresh_token"],
             "redirect_uris": ["https://evil.example/cb"], "scope": "orders:read orders:write"}
    # The password grant (scope kept), then the wider scope (grants kept): both refused.
    for fields in ({"scope": "orders:read"}, {"grant_types": ["client_credentials"]}):
        BAD_METADATA.check(send(gateway, manage_req("PUT", client_id, token, {**wider, **fields})))
    Expect(200, body={"grant_types": ["client_credentials"], "scope": "orders:read"}).check(
        send(gateway, manage_req("GET", client_id, token)))
    # A new name and redirect URI within registration policy are the client's to change.
    Expect(200, body={"client_name": "Demo console", "redirect_uris": ["https://evil.example/cb"],
                      "grant_types": ["client_credentials"], "scope": "orders:read"}).check(
        send(gateway, manage_req("PUT", client_id, token, {"client_id": client_id, "client_name": "Demo console",
                                                           "redirect_uris": ["https://evil.example/cb"]})))

    widened = Expect(200, NO_STORE, {"grant_types": wider["grant_types"], "scope": "orders:read orders:write",
                                     "registration_access_token": UNRESERVED}).check(
        send(gateway, admin_req("PUT", client_id, wider)))
    BAD_TOKEN.check(send(gateway, manage_req("GET", client_id, token)))
    on_every_worker(gateway, manage_req("GET", client_id, widened["registration_access_token"]),
                    Expect(200, body={"scope": "orders:read orders:write"}))


def test_a_v017_re_key_ends_the_registration_access_token(gateway):
    data = registered(gateway, {"client_name": "rekeyed"})
    client_id, token = data["client_id"], data["registration_access_token"]
    rekeyed = Expect(200, NO_STORE, {"clientSecret": UNRESERVED}).check(send(gateway, Req(
        "POST", f"{V017}/{client_id}/secret", {"Authorization": basic(*ADMIN)})))
    on_every_worker(gateway, manage_req("GET", client_id, token), BAD_TOKEN)
    BAD_TOKEN.check(send(gateway, manage_req("DELETE", client_id, token)))
    # The administrator hands the client a new one with an RFC 7592 update.
    handed = Expect(200, NO_STORE, {"registration_access_token": UNRESERVED}).check(
        send(gateway, admin_req("PUT", client_id, {"client_id": client_id, "client_name": "rekeyed"})))
    Expect(200, body={"client_id": client_id}).check(
        send(gateway, manage_req("GET", client_id, handed["registration_access_token"])))
    token_success("orders:read orders:write", refresh=False).check(
        send(gateway, token_req("grant_type=client_credentials", (client_id, rekeyed["clientSecret"]))))


def test_registrations_stop_at_max_per_owner(envoy_factory):
    """One administrator cannot fill the registry for every other: 403 access_denied past
    registration.max_per_owner, whichever endpoint, until it deletes one."""
    plugin = harness.demo_plugin_config()
    plugin["registration"]["max_per_owner"] = 3
    plugin["users"].append({"username": "ops", "password": "ops", "admin": True})
    gw = envoy_factory.start(plugin)
    ids = [registered(gw, {"client_name": f"app{i}"})["client_id"] for i in range(3)]
    denied = token_error(403, "access_denied")
    denied.check(send(gw, register_req({"client_name": "app3"})))
    denied.check(send(gw, Req("POST", V017, {"Authorization": basic(*ADMIN), "Content-Type": JSON_TYPE},
                              json.dumps({"clientName": "app3", "grantType": "client_credentials"}))))
    Expect(201).check(send(gw, register_req({"client_name": "ops-app"}, who=("ops", "ops"))))
    Expect(204).check(send(gw, Req("DELETE", f"{V017}/{ids[0]}", {"Authorization": basic(*ADMIN)})))
    Expect(201).check(send(gw, register_req({"client_name": "app3"})))
