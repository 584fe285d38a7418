"""Dynamic client registration as WSO2 API Manager's client-registration/v0.17
documents it, and the administrator's re-key and delete.

  POST   <endpoint>              register (JSON), 201 with the id and secret
  GET    <endpoint>/<id>         describe (no secret)
  POST   <endpoint>/<id>/secret  new secret: the application's tokens end
  DELETE <endpoint>/<id>         delete (204): the application's tokens end

Every call authenticates with HTTP Basic as a user the configuration marks
`admin`. An application is managed only by the administrator who registered
it or a `super_admin`; to other administrators it does not exist (404), and
only a super-admin registers for an `owner` other than itself. The seed's request gets the seed's response fields (clientId,
clientName, callBackURL, clientSecret, isSaasApplication, appOwner,
jsonString). The new application gets tokens at once from every worker; its
id and secret use only unreserved characters, so clients that send Basic
credentials raw and clients that form-encode them (RFC 6749 §2.3.1) agree.
"""

import base64
import json
from urllib.parse import quote, urlencode

import pytest

import harness
from client import (
    ADMIN, FULL_SCOPE, NO_STORE, UNRESERVED, Expect, Req, basic, form, forwarded, invalid_client,
    invalid_token, on_every_worker, orders_call, post_token, send, token_error, token_req, token_success,
)

VIEWER = ("viewer", "viewer")  # a user, but no administrator
OPS = ("ops", "ops-password")  # a second administrator
ROOT = ("root", "root-password")  # a super-admin: manages every application

PLUGIN_CONFIG = harness.demo_plugin_config()
PLUGIN_CONFIG["users"] += [
    {"username": VIEWER[0], "password": VIEWER[1], "scopes": ["orders:read"]},
    {"username": OPS[0], "password": OPS[1], "admin": True, "scopes": ["orders:read", "orders:write"]},
    {"username": ROOT[0], "password": ROOT[1], "super_admin": True},
]

ENDPOINT = PLUGIN_CONFIG["registration"]["endpoint"]  # /client-registration/v0.17/register
JSON_TYPE = "application/json"
# The seed's sample request, verbatim.
SEED_PAYLOAD = {
    "callbackUrl": "www.google.lk",
    "clientName": "rest_api_admin",
    "owner": "admin",
    "grantType": "password refresh_token",
    "saasApp": True,
}


def unreserved(min_chars: int):
    def match(value) -> bool:
        return isinstance(value, str) and len(value) >= min_chars and UNRESERVED.fullmatch(value) is not None

    match.__name__ = match.__qualname__ = f"unreserved(min_chars={min_chars})"
    return match


SECRET = unreserved(22)  # 128 bits or more in base64url
CLIENT_ID = unreserved(16)


def register_req(payload, who=ADMIN, content_type: str | None = JSON_TYPE, method: str = "POST") -> Req:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    headers = {"Authorization": basic(*who)} if who else {}
    if content_type:
        headers["Content-Type"] = content_type
    return Req(method, ENDPOINT, headers, body)


def admin_req(method: str, path: str, who=ADMIN) -> Req:
    return Req(method, path, {"Authorization": basic(*who)} if who else {})


def registered(payload: dict, owner: str = "admin") -> Expect:
    """The seed's response for `payload`."""
    return Expect(201, NO_STORE, {
        "clientId": CLIENT_ID,
        "clientName": payload["clientName"],
        "callBackURL": payload.get("callbackUrl", ""),
        "clientSecret": SECRET,
        "isSaasApplication": payload.get("saasApp", False),
        "appOwner": owner,
        "jsonString": lambda value: isinstance(value, str),
    }, exact=True)


def register(gw, payload: dict, who=ADMIN, owner: str = "admin") -> tuple[str, str]:
    data = registered(payload, owner).check(send(gw, register_req(payload, who)))
    return data["clientId"], data["clientSecret"]


def cc_app(gw, name: str) -> tuple[str, str]:
    return register(gw, {"clientName": name, "grantType": "client_credentials"})


def cc_token_req(app: tuple[str, str]) -> Req:
    return token_req("grant_type=client_credentials", app)


CC_OK = token_success(FULL_SCOPE, refresh=False)


def test_wso2_documented_registration(gateway):
    """The request and response of WSO2 API Manager's documentation, and the application works at once, on
    every worker, with exactly the grants it registered."""
    data = registered(SEED_PAYLOAD).check(send(gateway, register_req(SEED_PAYLOAD)))
    assert json.loads(data["jsonString"]) == {
        "username": "admin", "redirect_uris": "www.google.lk", "client_name": "rest_api_admin",
        "grant_types": "password refresh_token",
    }
    app = (data["clientId"], data["clientSecret"])
    grant = token_req(form(grant_type="password", username="admin", password="admin"), app)
    on_every_worker(gateway, grant, token_success(FULL_SCOPE, refresh=True))
    token = token_success(FULL_SCOPE, refresh=True).check(send(gateway, grant))
    on_every_worker(gateway, orders_call(token["access_token"]), forwarded, per_worker=1)
    # It registered password and refresh_token, not client_credentials.
    token_error(400, "unauthorized_client").check(send(gateway, cc_token_req(app)))
    refreshed = post_token(gateway, form(grant_type="refresh_token", refresh_token=token["refresh_token"]), app)
    token_success(FULL_SCOPE, refresh=True).check(refreshed)


def java_urlencode(text: str) -> str:
    """java.net.URLEncoder: like application/x-www-form-urlencoded, but '~' becomes %7E."""
    return quote(text, safe="-._*").replace("%20", "+")


def basic_variants(client_id: str, secret: str) -> dict[str, str]:
    def b64(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    every_byte = lambda s: "".join(f"%{b:02X}" for b in s.encode())  # noqa: E731
    return {
        "raw": b64(f"{client_id}:{secret}"),
        "form-encoded": b64(f"{urlencode({'': client_id})[1:]}:{urlencode({'': secret})[1:]}"),
        "as Java's URLEncoder": b64(f"{java_urlencode(client_id)}:{java_urlencode(secret)}"),
        "every byte percent-encoded": b64(f"{every_byte(client_id)}:{every_byte(secret)}"),
    }


def test_generated_credentials_work_raw_and_form_encoded(gateway):
    client_id, secret = cc_app(gateway, "encoding-check")
    variants = basic_variants(client_id, secret)
    # Only unreserved characters: encoding them changes nothing...
    assert variants["raw"] == variants["form-encoded"] == variants["as Java's URLEncoder"]
    # ...and a client that escapes them anyway is decoded per RFC 6749 §2.3.1.
    for name, authorization in variants.items():
        req = token_req("grant_type=client_credentials", None, Authorization=authorization)
        data = CC_OK.check(send(gateway, req))
        forwarded(send(gateway, orders_call(data["access_token"])))
    invalid_client().check(send(gateway, cc_token_req((client_id, secret[:-1]))))


def test_registered_application_on_every_worker(gateway):
    """No worker may miss a registration: the first /token on each is a 200."""
    app = cc_app(gateway, "every-worker")
    on_every_worker(gateway, cc_token_req(app), CC_OK, per_worker=5)


def test_new_secret_ends_old_tokens(gateway):
    client_id, old_secret = cc_app(gateway, "rekeyed")
    old_token = CC_OK.check(send(gateway, cc_token_req((client_id, old_secret))))["access_token"]
    on_every_worker(gateway, orders_call(old_token), forwarded, per_worker=1)

    data = Expect(200, NO_STORE, {"clientId": client_id, "clientName": "rekeyed", "clientSecret": SECRET,
                                  "appOwner": "admin"}).check(
        send(gateway, admin_req("POST", f"{ENDPOINT}/{client_id}/secret")))
    new_secret = data["clientSecret"]
    assert new_secret != old_secret

    on_every_worker(gateway, orders_call(old_token), invalid_token())
    invalid_client().check(send(gateway, cc_token_req((client_id, old_secret))))
    new_token = CC_OK.check(send(gateway, cc_token_req((client_id, new_secret))))["access_token"]
    on_every_worker(gateway, orders_call(new_token), forwarded, per_worker=1)


def test_delete_ends_the_application(gateway):
    app = cc_app(gateway, "deleted")
    client_id = app[0]
    token = CC_OK.check(send(gateway, cc_token_req(app)))["access_token"]
    described = Expect(200, NO_STORE, {"clientId": client_id, "clientName": "deleted", "appOwner": "admin"}).check(
        send(gateway, admin_req("GET", f"{ENDPOINT}/{client_id}")))
    assert "clientSecret" not in described, "the secret is shown once, at registration"

    resp = send(gateway, admin_req("DELETE", f"{ENDPOINT}/{client_id}"))
    Expect(204).check(resp)
    assert resp.content == b""
    on_every_worker(gateway, orders_call(token), invalid_token())
    invalid_client().check(send(gateway, cc_token_req(app)))
    for method, path in [("GET", f"{ENDPOINT}/{client_id}"), ("DELETE", f"{ENDPOINT}/{client_id}"),
                         ("POST", f"{ENDPOINT}/{client_id}/secret")]:
        token_error(404, "not_found").check(send(gateway, admin_req(method, path)))


def test_a_name_is_unique_per_owner(gateway):
    payload = {"clientName": "shared-name", "grantType": "client_credentials"}
    register(gateway, payload)  # owner defaults to the administrator who registers
    token_error(409, "invalid_client_metadata").check(send(gateway, register_req(payload)))
    token_error(409, "invalid_client_metadata").check(send(gateway, register_req({**payload, "owner": "admin"})))
    # Another owner may use the name: another administrator for itself, a super-admin for anyone
    # (an administrator registering for another owner is refused).
    register(gateway, payload, OPS, owner="ops")
    register(gateway, {**payload, "owner": "someone"}, ROOT, owner="someone")


GOOD = {"clientName": "error-rows", "grantType": "client_credentials"}
INVALID_METADATA = token_error(400, "invalid_client_metadata")
ERROR_ROWS = {
    "malformed JSON": (register_req('{"clientName": "x", '), INVALID_METADATA),
    "JSON that is not an object": (register_req("[]"), INVALID_METADATA),
    "unknown grant type": (register_req({**GOOD, "grantType": "client_credentials implicit"}), INVALID_METADATA),
    "the seed's response's grant list": (register_req({**GOOD, "grantType": (
        "authorization_code password refresh_token iwa:ntlm urn:ietf:params:oauth:grant-type:saml2-bearer "
        "client_credentials")}), INVALID_METADATA),
    "no grant type": (register_req({**GOOD, "grantType": ""}), INVALID_METADATA),
    "no clientName": (register_req({"grantType": "client_credentials"}), INVALID_METADATA),
    "empty clientName": (register_req({**GOOD, "clientName": ""}), INVALID_METADATA),
    "control character in clientName": (register_req({**GOOD, "clientName": "a\nb"}), INVALID_METADATA),
    "clientName over 255 bytes": (register_req({**GOOD, "clientName": "n" * 256}), INVALID_METADATA),
    "form body": (register_req(urlencode(GOOD), content_type="application/x-www-form-urlencoded"),
                  token_error(400, "invalid_request")),
    "no content type": (register_req(GOOD, content_type=None), token_error(400, "invalid_request")),
    # A user who is not an administrator gets what a wrong password gets (a different answer
    # would tell a right password).
    "not an administrator": (register_req(GOOD, VIEWER), invalid_client()),
    "wrong administrator password": (register_req(GOOD, ("admin", "wrong")), invalid_client()),
    "unknown user": (register_req(GOOD, ("nobody", "admin")), invalid_client()),
    "an application's credentials": (register_req(GOOD, ("demo-app", "demo-secret")), invalid_client()),
    "no credentials": (register_req(GOOD, None), invalid_client()),
    "Bearer instead of Basic": (Req("POST", ENDPOINT, {"Authorization": "Bearer x", "Content-Type": JSON_TYPE},
                                    json.dumps(GOOD)), invalid_client()),
    # Management of applications: the same gate, and only registered ones.
    "describe, not an administrator": (admin_req("GET", f"{ENDPOINT}/$id", VIEWER), invalid_client()),
    "new secret, not an administrator": (admin_req("POST", f"{ENDPOINT}/$id/secret", VIEWER), invalid_client()),
    # Only the administrator who registered it (or a super-admin) sees it.
    "describe, another administrator": (admin_req("GET", f"{ENDPOINT}/$id", OPS), token_error(404, "not_found")),
    "new secret, another administrator": (admin_req("POST", f"{ENDPOINT}/$id/secret", OPS),
                                          token_error(404, "not_found")),
    "delete, another administrator": (admin_req("DELETE", f"{ENDPOINT}/$id", OPS), token_error(404, "not_found")),
    "register for another owner": (register_req({**GOOD, "owner": "admin"}, OPS), INVALID_METADATA),
    "delete, wrong password": (admin_req("DELETE", f"{ENDPOINT}/$id", ("admin", "nope")), invalid_client()),
    "delete, no credentials": (admin_req("DELETE", f"{ENDPOINT}/$id", None), invalid_client()),
    "delete a configured application": (admin_req("DELETE", f"{ENDPOINT}/demo-app"), token_error(404, "not_found")),
    "new secret for an unknown id": (admin_req("POST", f"{ENDPOINT}/AAAAAAAAAAAAAAAAAAAAAA/secret"),
                                     token_error(404, "not_found")),
}


@pytest.fixture(scope="module")
def victim(gateway) -> dict[str, str]:
    """A registered application the error rows aim at; they must leave it working."""
    client_id, secret = cc_app(gateway, "victim")
    return {"id": client_id, "secret": secret, "token": CC_OK.check(send(gateway, cc_token_req((client_id, secret))))[
        "access_token"]}


@pytest.mark.parametrize("row", ERROR_ROWS)
def test_registration_errors(gateway, victim, row):
    req, want = ERROR_ROWS[row]
    want.check(send(gateway, req.render(victim)))
    forwarded(send(gateway, orders_call(victim["token"])))
    CC_OK.check(send(gateway, cc_token_req((victim["id"], victim["secret"]))))


def test_error_rows_registered_nothing(gateway):
    """No error row left an application behind: its name is still free."""
    register(gateway, GOOD)


METHOD_ROWS = {
    # resource: method → Allow must list what that resource accepts
    "register with GET": (Req("GET", ENDPOINT, {"Authorization": basic(*ADMIN)}), "POST"),
    "register with DELETE": (Req("DELETE", ENDPOINT, {"Authorization": basic(*ADMIN)}), "POST"),
    "an application with POST": (Req("POST", f"{ENDPOINT}/$id", {"Authorization": basic(*ADMIN),
                                                                  "Content-Type": JSON_TYPE}, "{}"), "GET, DELETE"),
    "its secret with GET": (Req("GET", f"{ENDPOINT}/$id/secret", {"Authorization": basic(*ADMIN)}), "POST"),
}


@pytest.mark.parametrize("row", METHOD_ROWS)
def test_wrong_method(gateway, victim, row):
    """405 with the Allow of the resource asked for (RFC 9110 §15.5.6)."""
    req, allow = METHOD_ROWS[row]
    req = req.render(victim)
    resp = send(gateway, req)
    Expect(405, body={"error": "invalid_request"}).check(resp)
    assert sorted(resp.headers["Allow"].split(", ")) == sorted(allow.split(", ")), (
        f"Allow: {resp.headers['Allow']!r} for {req.method} {req.path}; that resource accepts {allow}")


def test_registry_full(envoy_factory):
    """Registered applications live in a bounded table: past its capacity,
    503 temporarily_unavailable, and the registered ones keep working."""
    plugin = harness.demo_plugin_config()
    plugin["registration"]["capacity"] = 8  # one bucket of eight
    gw = envoy_factory.start(plugin)
    apps = [cc_app(gw, f"app-{i}") for i in range(8)]
    token_error(503, "temporarily_unavailable").check(send(gw, register_req({**GOOD, "clientName": "one-more"})))
    for app in apps:
        CC_OK.check(send(gw, cc_token_req(app)))
    # Deleting one makes room for one.
    Expect(204).check(send(gw, admin_req("DELETE", f"{ENDPOINT}/{apps[0][0]}")))
    cc_app(gw, "one-more")


def test_registry_holds_its_capacity(envoy_factory):
    """`registration.capacity` applications fit, whatever their names."""
    plugin = harness.demo_plugin_config()
    plugin["registration"]["capacity"] = 64
    gw = envoy_factory.start(plugin)
    answers = [send(gw, register_req({**GOOD, "clientName": f"app-{i}"})).status_code for i in range(64)]
    assert answers == [201] * 64, f"refused: {[i for i, a in enumerate(answers) if a != 201]}"


def test_a_super_admin_manages_every_application(gateway):
    """A super-admin reads, re-keys and deletes an application another administrator registered."""
    client_id, _ = register(gateway, {"clientName": "ops-app", "grantType": "client_credentials"}, OPS, owner="ops")
    Expect(200, body={"clientId": client_id, "appOwner": "ops"}).check(
        send(gateway, admin_req("GET", f"{ENDPOINT}/{client_id}", ROOT)))
    token_error(404, "not_found").check(send(gateway, admin_req("GET", f"{ENDPOINT}/{client_id}", ADMIN)))
    new_secret = Expect(200, body={"clientSecret": SECRET}).check(
        send(gateway, admin_req("POST", f"{ENDPOINT}/{client_id}/secret", ROOT)))["clientSecret"]
    CC_OK.check(send(gateway, cc_token_req((client_id, new_secret))))
    Expect(204).check(send(gateway, admin_req("DELETE", f"{ENDPOINT}/{client_id}", ROOT)))
