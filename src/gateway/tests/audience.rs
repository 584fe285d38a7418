//! Resource indicators (RFC 8707) at `/token`, audience-bound tokens at the Bearer check,
//! protected resource metadata (RFC 9728) and the challenges that point to it.

use super::*;

const ISSUER: &str = "https://127.0.0.1:8243";
const ORDERS: &str = "https://127.0.0.1:8243/orders";
const MCP: &str = "https://mcp.example/mcp";
const STRICT: &str = "https://127.0.0.1:8243/strict";

/// Three APIs: Orders (resource derived from the issuer), Mcp (its own resource) and Strict
/// (`require_audience`); one flat resource outside every API; the client subscribed to all.
const CONFIG: &str = r#"{
  "issuer": "https://127.0.0.1:8243",
  "applications": [
    { "consumer_key": "demo-app", "consumer_secret": "demo-secret",
      "grant_types": ["client_credentials", "password", "refresh_token"],
      "scopes": ["orders:read", "mcp:use"],
      "subscriptions": [ { "api": "Orders" }, { "api": "Mcp" }, { "api": "Strict" } ] },
    { "consumer_key": "rs", "consumer_secret": "rs-secret", "introspect": true }
  ],
  "users": [ { "username": "admin", "password": "admin", "scopes": ["orders:read", "mcp:use"] } ],
  "resources": [ { "methods": ["GET"], "path": "/flat", "scopes": ["orders:read"] } ],
  "apis": [
    { "name": "Orders", "version": "1.0.0", "context": "/orders",
      "resources": [ { "methods": ["GET"], "path": "/items", "scopes": ["orders:read"] } ] },
    { "name": "Mcp", "version": "1", "context": "/mcp", "resource": "https://mcp.example/mcp",
      "resources": [ { "methods": ["POST"], "path": "/", "scopes": ["mcp:use"] },
                     { "methods": ["GET"], "path": "/open", "public": true } ] },
    { "name": "Strict", "version": "1", "context": "/strict", "require_audience": true,
      "resources": [ { "methods": ["GET"], "path": "/", "scopes": ["orders:read"] } ] }
  ]
}"#;

fn rig() -> Rig {
    Rig::with_config(CONFIG)
}

/// `resource=…` for each of `resources`, form-encoded.
fn resources(resources: &[&str]) -> String {
    resources.iter().map(|uri| format!("&resource={}", uri.replace(':', "%3A").replace('#', "%23"))).collect()
}

fn introspected(rig: &Rig, token: &str) -> serde_json::Value {
    rig.post_as("rs", "rs-secret", "/introspect", &format!("token={token}")).json()
}

struct Target {
    name: &'static str,
    resources: &'static [&'static str],
    /// `None`: issued; `Some(description)`: 400 `invalid_target` saying so.
    refused: Option<&'static str>,
}

#[test]
fn token_requests_name_resources_the_gateway_serves_rfc8707_2() {
    let rig = rig();
    let cases = [
        Target { name: "one served resource", resources: &[ORDERS], refused: None },
        Target { name: "two, each served", resources: &[ORDERS, MCP], refused: None },
        Target { name: "the same one twice", resources: &[MCP, MCP], refused: None },
        Target {
            name: "a fragment",
            resources: &["https://127.0.0.1:8243/orders#x"],
            refused: Some("an absolute URI without a fragment"),
        },
        Target { name: "a relative URI", resources: &["/orders"], refused: Some("an absolute URI") },
        Target {
            name: "an unknown resource",
            resources: &["https://elsewhere.example/api"],
            refused: Some("not one this server protects"),
        },
        Target {
            name: "one served, one unknown",
            resources: &[ORDERS, "https://127.0.0.1:8243/flat"],
            refused: Some("not one this server protects"),
        },
    ];
    for grant in ["grant_type=client_credentials", "grant_type=password&username=admin&password=admin"] {
        for case in &cases {
            let reply = rig.token(&format!("{grant}{}", resources(case.resources)));
            match case.refused {
                None => assert_eq!(reply.0.status, 200, "{}: {}", case.name, reply.text()),
                Some(description) => {
                    assert_eq!(reply.0.status, 400, "{}: {}", case.name, reply.text());
                    assert_eq!(reply.field("error"), "invalid_target", "{}", case.name);
                    assert!(reply.field("error_description").contains(description), "{}", case.name);
                }
            }
        }
    }
}

#[test]
fn introspection_reports_the_audience_as_a_string_or_an_array_rfc7662_2_2() {
    let rig = rig();
    let one = rig.access_token(&format!("grant_type=client_credentials{}", resources(&[MCP])));
    let two = rig.access_token(&format!("grant_type=client_credentials{}", resources(&[MCP, ORDERS])));
    let none = rig.access_token("grant_type=client_credentials");
    assert_eq!(introspected(&rig, &one)["aud"], MCP);
    assert_eq!(introspected(&rig, &two)["aud"], serde_json::json!([ORDERS, MCP]));
    let unbound = introspected(&rig, &none);
    assert_eq!((unbound["active"].as_bool(), unbound.get("aud")), (Some(true), None));
}

struct Use {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// The token's resources (empty: issued without `resource`).
    audience: &'static [&'static str],
    /// `None`: forwarded; `Some(description)`: 401 `invalid_token` saying so.
    refused: Option<&'static str>,
}

#[test]
fn a_bound_token_is_used_only_on_its_audience_and_require_audience_refuses_unbound_ones() {
    let rig = rig();
    let elsewhere = Some("the access token's audience does not include this resource");
    let cases = [
        Use {
            name: "bound to Orders, on Orders",
            method: "GET",
            path: "/orders/items",
            audience: &[ORDERS],
            refused: None,
        },
        Use {
            name: "bound to Orders, on Mcp",
            method: "POST",
            path: "/mcp",
            audience: &[ORDERS],
            refused: elsewhere,
        },
        Use {
            name: "bound to both, on Mcp",
            method: "POST",
            path: "/mcp",
            audience: &[ORDERS, MCP],
            refused: None,
        },
        Use {
            name: "bound, on a resource outside every API",
            method: "GET",
            path: "/flat",
            audience: &[ORDERS],
            refused: elsewhere,
        },
        Use {
            name: "unbound, on Orders (as before resources)",
            method: "GET",
            path: "/orders/items",
            audience: &[],
            refused: None,
        },
        Use {
            name: "unbound, on a flat resource",
            method: "GET",
            path: "/flat",
            audience: &[],
            refused: None,
        },
        Use {
            name: "unbound, on an API that requires an audience",
            method: "GET",
            path: "/strict",
            audience: &[],
            refused: Some("issued without a resource; this API requires its own"),
        },
        Use {
            name: "bound to Strict, on Strict",
            method: "GET",
            path: "/strict",
            audience: &[STRICT],
            refused: None,
        },
        Use {
            name: "bound to Orders, on Strict",
            method: "GET",
            path: "/strict",
            audience: &[ORDERS],
            refused: elsewhere,
        },
    ];
    for case in cases {
        let token = rig.access_token(&format!("grant_type=client_credentials{}", resources(case.audience)));
        let outcome = rig.call_with_token(case.method, case.path, &token);
        match case.refused {
            None => assert_eq!(status_of(&outcome), 200, "{}: {}", case.name, challenge_of(&outcome)),
            Some(description) => {
                assert_eq!(status_of(&outcome), 401, "{}", case.name);
                let challenge = challenge_of(&outcome);
                assert!(challenge.contains("error=\"invalid_token\""), "{}: {challenge}", case.name);
                assert!(challenge.contains(description), "{}: {challenge}", case.name);
            }
        }
    }
}

#[test]
fn challenges_on_an_api_point_to_its_metadata_and_name_its_scopes_rfc9728_5_1() {
    let rig = rig();
    let mcp_metadata = "resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\"";
    let no_token = challenge_of(&rig.call("POST", "/mcp", None));
    assert_eq!(no_token, format!("Bearer realm=\"tokengate\", {mcp_metadata}, scope=\"mcp:use\""));
    let orders_bound = rig.access_token(&format!("grant_type=client_credentials{}", resources(&[ORDERS])));
    let refused = challenge_of(&rig.call_with_token("POST", "/mcp", &orders_bound));
    assert!(
        refused.starts_with("Bearer realm=\"tokengate\", error=\"invalid_token\", error_description="),
        "{refused}"
    );
    assert!(refused.ends_with(&format!("{mcp_metadata}, scope=\"mcp:use\"")), "{refused}");
    let unknown = challenge_of(&rig.call_with_token("GET", "/orders/items", "bm90LWEtdG9rZW4"));
    assert!(
        unknown.ends_with(
            ", resource_metadata=\"https://127.0.0.1:8243/.well-known/oauth-protected-resource/orders\", scope=\"orders:read\""
        ),
        "{unknown}"
    );
    // Outside every API there is no metadata to point to: the challenge is as it was.
    assert_eq!(challenge_of(&rig.call("GET", "/flat", None)), "Bearer realm=\"tokengate\"");
    // A scope the token lacks is named once, by the 403's own scope parameter.
    let scopeless =
        rig.access_token(&format!("grant_type=client_credentials&scope=orders:read{}", resources(&[MCP])));
    let insufficient = challenge_of(&rig.call_with_token("POST", "/mcp", &scopeless));
    assert_eq!(insufficient.matches("scope=").count(), 1, "{insufficient}");
    assert!(insufficient.contains(mcp_metadata), "{insufficient}");
}

#[test]
fn a_refresh_may_narrow_the_audience_never_widen_it_rfc8707_2_2() {
    let rig = rig();
    let password = "grant_type=password&username=admin&password=admin";
    let first = rig.token(&format!("{password}{}", resources(&[ORDERS, MCP])));
    let mut refresh = first.field("refresh_token");
    let mut refreshed = |extra: &str| {
        let reply = rig.token(&format!("grant_type=refresh_token&refresh_token={refresh}{extra}"));
        if reply.0.status == 200 {
            refresh = reply.field("refresh_token");
        }
        reply
    };
    let same = refreshed("");
    assert_eq!(introspected(&rig, &same.field("access_token"))["aud"], serde_json::json!([ORDERS, MCP]));
    let unknown = refreshed(&resources(&["https://elsewhere.example/"]));
    assert_eq!((unknown.0.status, unknown.field("error")), (400, "invalid_target".to_owned()));
    let narrowed = refreshed(&resources(&[MCP]));
    assert_eq!(narrowed.0.status, 200, "{}", narrowed.text());
    assert_eq!(introspected(&rig, &narrowed.field("access_token"))["aud"], MCP);
    let widened = refreshed(&resources(&[ORDERS]));
    assert_eq!((widened.0.status, widened.field("error")), (400, "invalid_target".to_owned()));
    assert!(widened.field("error_description").contains("outside the grant's audience"));
    // The narrowing stuck: asking for nothing keeps the narrower audience.
    let kept = refreshed("");
    assert_eq!(introspected(&rig, &kept.field("access_token"))["aud"], MCP);
    // An unbound grant may be bound by a refresh, as narrowing from every resource.
    let unbound = rig.token(password);
    let body = format!(
        "grant_type=refresh_token&refresh_token={}{}",
        unbound.field("refresh_token"),
        resources(&[ORDERS])
    );
    let bound = rig.token(&body);
    assert_eq!(introspected(&rig, &bound.field("access_token"))["aud"], ORDERS);
}

fn metadata(rig: &Rig, path: &str) -> Reply {
    rig.endpoint("GET", path, None, None, "")
}

#[test]
fn each_api_has_its_protected_resource_metadata_rfc9728_3() {
    let rig = rig();
    let mcp = metadata(&rig, "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(mcp.0.status, 200, "{}", mcp.text());
    assert_eq!(
        mcp.json(),
        serde_json::json!({
            "resource": MCP,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["mcp:use"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Mcp 1",
        })
    );
    let orders = metadata(&rig, "/.well-known/oauth-protected-resource/orders").json();
    assert_eq!(
        (orders["resource"].as_str(), orders["scopes_supported"].clone()),
        (Some(ORDERS), serde_json::json!(["orders:read"]))
    );
    // §3.1: the root form is for an identifier without a path, and no API has one here.
    assert_eq!(metadata(&rig, "/.well-known/oauth-protected-resource").0.status, 404);
    assert_eq!(metadata(&rig, "/.well-known/oauth-protected-resource/flat").0.status, 404);
    assert_eq!(metadata(&rig, "/.well-known/oauth-protected-resource/orders/items").0.status, 404);
    let post = rig.endpoint("POST", "/.well-known/oauth-protected-resource/mcp", None, Some(FORM), "");
    assert_eq!((post.0.status, post.0.header("allow")), (405, Some("GET, HEAD")));
    // The root form, for an API whose identifier has no path.
    let root =
        Rig::with_config(&config_with(CONFIG, |v| v["apis"][1]["resource"] = "https://mcp.example".into()));
    assert_eq!(
        metadata(&root, "/.well-known/oauth-protected-resource").json()["resource"],
        "https://mcp.example"
    );
    // Without any resource identifier (no issuer, none configured) the path is no endpoint.
    let without = Rig::with_config(&config_with(CONFIG, |v| {
        v.as_object_mut().unwrap().remove("issuer");
        v["apis"][1].as_object_mut().unwrap().remove("resource");
        v["apis"][2].as_object_mut().unwrap().remove("require_audience");
    }));
    assert!(without.gateway().endpoint("/.well-known/oauth-protected-resource/mcp").is_none());
}

#[test]
fn a_jwt_access_token_names_the_grants_resources_as_its_audience_rfc9068_3() {
    let rig = Rig::with_config(&config_with(CONFIG, |v| {
        v["signing"] = serde_json::json!({ "keys": [crate::config::tests::rfc8037_signing_key()] });
        v["token_format"] = "jwt".into();
    }));
    let audience_of = |resources_asked: &[&str]| {
        let token = rig.access_token(&format!("grant_type=client_credentials{}", resources(resources_asked)));
        crate::jose::decode_unverified(&token).unwrap().claims["aud"].clone()
    };
    assert_eq!(audience_of(&[ORDERS]), ORDERS);
    assert_eq!(audience_of(&[ORDERS, MCP]), serde_json::json!([ORDERS, MCP]));
    assert_eq!(audience_of(&[]), "demo-app", "unbound: the client, as WSO2 does");
}
