"""Envoy configurations for the benchmark: one listener, one route, one filter under test.

Every configuration answers with a `direct_response`, so no upstream is involved and the only
difference between two rows of the table is the HTTP filter in front of the router. The
configurations are plain dicts, dumped as JSON (which Envoy reads as YAML).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

# The resource every Bearer row requests, and the scope it needs.
API_PATH = "/api/orders"
API_SCOPE = "orders:read"
TOKEN_PATH = "/token"
# RFC 8707: the bench API's resource identifier, for the rows whose tokens are bound to it.
API_RESOURCE = "https://127.0.0.1/api"

# The bench application (client_credentials) and the bench user (password grant).
CLIENT_ID = "bench-app"
CLIENT_SECRET = "bench-secret-0123456789abcdef"  # high-entropy: tokengate keeps a fast hash of it
USERNAME = "bench-user"
PASSWORD = "bench-password"

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def basic_authorization(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def envoy_config(listener_port: int, admin_port: int, http_filters: list[dict], sandbox_route: bool = False) -> dict:
    """A single-listener Envoy whose only route is a small 200 `direct_response`; with
    `sandbox_route`, a route for requests tokengate marked for a sandbox upstream comes first
    (the demo's route table: Envoy picks the route again after the filter's header change)."""
    ok = {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}
    sandbox = {
        "match": {"prefix": "/", "headers": [{"name": "x-tokengate-upstream", "present_match": True}]},
        "direct_response": {"status": 200, "body": {"inline_string": "sandbox\n"}},
    }
    routes = [sandbox, ok] if sandbox_route else [ok]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener_port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": HCM,
                                        "stat_prefix": "bench",
                                        # The demo config's path hygiene, so "Envoy alone" pays
                                        # for the same header handling as the tokengate rows.
                                        "normalize_path": True,
                                        "merge_slashes": True,
                                        "path_with_escaped_slashes_action": "REJECT_REQUEST",
                                        "route_config": {
                                            "name": "bench",
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": routes,
                                                }
                                            ],
                                        },
                                        "http_filters": [*http_filters, ROUTER],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ]
        },
    }


# ---------------------------------------------------------------------------------------------
# Filters under test


def wasm_filter(wasm_path: str, root_id: str, plugin_config: str = "") -> dict:
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": root_id,
                "root_id": root_id,
                # As in envoy/envoy.yaml: tokengate pauses in on_http_request_headers to read
                # the /token form body; without this knob (Envoy >= 1.35) that pause never
                # delivers the body and the request hangs.
                "allow_on_headers_stop_iteration": True,
                "vm_config": {
                    "vm_id": root_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm_path}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin_config,
                },
            },
        },
    }


def pbkdf2_hash(password: str, iterations: int) -> str:
    """The config's `pbkdf2-sha256$<iterations>$<salt>$<digest>` format (see the README)."""
    salt = b"bench-salt-16byt"
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2-sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


# RFC 8037 Appendix A.1's Ed25519 key: published, for measuring only, never one to deploy.
RFC8037_TEST_KEY = {
    "kty": "OKP", "crv": "Ed25519", "kid": "rfc8037", "alg": "EdDSA",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
}


def tokengate_config(
    capacity: int, password_iterations: int = 0, validity_secs: int = 3600, extra_keys_capacity: int = 0,
    tier: bool = False,
    sandbox: bool = False,
    backend_jwt: bool = False,
    jwt: bool = False,
    audience: bool = False,
) -> str:
    """Plugin JSON for the tokengate rows.

    The application's secret is given in plaintext, which tokengate keeps as an unsalted SHA-256
    (the fast check the issue asks for on high-entropy secrets). The user's password is a
    pbkdf2 hash when `password_iterations` is set, as the README recommends for passwords.

    `extra_keys_capacity` turns on client registration with that capacity: its bucket table
    lives in the same shared-data map as the token store (one map per vm_id) and is never swept,
    so it gives the map a big store's key count without a big store's sweeping.

    `tier` puts the orders resources (same paths) in an API with context `/api` that the
    application is subscribed to with a rated tier too big to throttle: the subscription and
    tier checks on top of a Bearer hit. `sandbox` (with `tier`) makes CLIENT_ID the
    application's sandbox pair and gives the API a sandbox upstream: the tokens the bench issues
    are sandbox tokens, and every hit sets the routing header. `backend_jwt` (with `tier`) turns
    on the API's backend JWT: every hit also carries a signed `X-JWT-Assertion` (a warm hit
    reuses the one its worker signed), signed with RFC 8037's published Ed25519 test key.
    `audience` (with `tier`) gives the API the resource identifier API_RESOURCE and
    `require_audience`: the Bearer check then compares the token's audience (RFC 8707) with it.
    """
    user = {"username": USERNAME, "scopes": [API_SCOPE, "orders:write"]}
    if extra_keys_capacity:
        user["admin"] = True  # registration needs an admin
    if password_iterations:
        user["password_hash"] = pbkdf2_hash(PASSWORD, password_iterations)
    else:
        user["password"] = PASSWORD
    registration = {"registration": {"capacity": extra_keys_capacity, "scopes": [API_SCOPE]}} if extra_keys_capacity else {}
    orders = [
        {"methods": ["GET"], "path": API_PATH, "scopes": [API_SCOPE]},
        {"methods": ["GET"], "path": API_PATH + "/{id}", "scopes": [API_SCOPE]},
        {"methods": ["POST"], "path": API_PATH, "scopes": ["orders:write"]},
    ]
    subscribed = {}
    if tier:
        api_orders = [{**resource, "path": resource["path"].removeprefix("/api")} for resource in orders]
        subscribed = {
            "tiers": [{"name": "Bench", "requests": 4_000_000_000, "per": "day"}],
            "apis": [{"name": "Orders", "version": "1", "context": "/api", "resources": api_orders,
                      **({"sandbox_upstream": "sandbox"} if sandbox else {}),
                      **({"backend_jwt": {}} if backend_jwt else {}),
                      **({"resource": API_RESOURCE, "require_audience": True} if audience else {})}],
        }
        if backend_jwt:
            subscribed["issuer"] = "http://127.0.0.1"
            subscribed["signing"] = {"keys": [RFC8037_TEST_KEY]}
        orders = []
    # `jwt`: the application's access tokens are JWTs (RFC 9068) signed with a published test key.
    signed = {"issuer": "http://127.0.0.1", "signing": {"keys": [RFC8037_TEST_KEY]}, "token_format": "jwt",
              "jwt_access_token_validity_secs": validity_secs} if jwt else {}
    return json.dumps(
        {
            **registration,
            **subscribed,
            **signed,
            "access_token_validity_secs": validity_secs,
            "store": {"capacity": capacity, "max_grants_per_application": capacity},
            "applications": [
                {
                    "consumer_key": CLIENT_ID + "-production" if sandbox else CLIENT_ID,
                    "consumer_secret": CLIENT_SECRET,
                    **({"sandbox": {"consumer_key": CLIENT_ID, "consumer_secret": CLIENT_SECRET}} if sandbox else {}),
                    "grant_types": ["client_credentials", "password", "refresh_token"],
                    "scopes": [API_SCOPE, "orders:write"],
                    **({"subscriptions": [{"api": "Orders", "tier": "Bench"}]} if tier else {}),
                }
            ],
            "users": [user],
            "resources": [
                *orders,
                {"methods": ["GET"], "path": "/api/public/ping", "public": True},
            ],
        }
    )


def lua_filter(tokens: list[str]) -> dict:
    """A Lua filter that looks the Bearer token up in a Lua table of `len(tokens)` entries and
    sets an identity header, the closest Lua equivalent of tokengate's check."""
    entries = ",\n".join(f'["{token}"]="{CLIENT_ID}"' for token in tokens)
    code = f"""
local tokens = {{
{entries}
}}
function envoy_on_request(handle)
  local headers = handle:headers()
  local authorization = headers:get("authorization")
  local client = authorization and tokens[string.sub(authorization, 8)]
  if client == nil then
    handle:respond({{[":status"] = "401", ["www-authenticate"] = 'Bearer realm="bench"'}}, "")
    return
  end
  headers:remove("authorization")
  headers:replace("x-tokengate-client-id", client)
end
"""
    return {
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": code},
        },
    }


def api_key_auth_filter(tokens: list[str]) -> dict:
    """Envoy's native API key check over `len(tokens)` keys, read from `Authorization: Bearer`."""
    return {
        "name": "envoy.filters.http.api_key_auth",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
            "credentials": [{"key": token, "client": CLIENT_ID} for token in tokens],
            "key_sources": [{"header": "authorization"}],
        },
    }


# ---------------------------------------------------------------------------------------------
# jwt_authn with an HS256 key: the JWKS and the token are made here with the standard library.

JWT_ISSUER = "https://bench.tokengate.invalid"
JWT_AUDIENCE = "bench-api"


def hs256_jwks_and_token(secret: bytes) -> tuple[str, str]:
    jwks = json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": "bench", "k": b64url(secret)}]})
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "bench"}).encode())
    now = int(time.time())
    claims = {
        "iss": JWT_ISSUER,
        "sub": CLIENT_ID,
        "aud": JWT_AUDIENCE,
        "scope": API_SCOPE,
        "iat": now,
        "exp": now + 86400,
    }
    payload = b64url(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return jwks, f"{header}.{payload}.{b64url(signature)}"


def jwt_authn_filter(jwks: str, cache: bool) -> dict:
    provider = {
        "issuer": JWT_ISSUER,
        "audiences": [JWT_AUDIENCE],
        "local_jwks": {"inline_string": jwks},
        # Like tokengate: the credential does not go upstream, the identity does.
        "forward": False,
        "claim_to_headers": [{"header_name": "x-tokengate-client-id", "claim_name": "sub"}],
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 100}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }


def random_access_token(bucket: int) -> str:
    """A token in tokengate's access-token shape (kind 1, `bucket`, 24 random bytes) that was
    never issued: the miss rows send it, so they pay for reading and scanning a real bucket,
    not for a parse error."""
    return b64url(b"\x01" + bucket.to_bytes(4, "big") + os.urandom(24))
