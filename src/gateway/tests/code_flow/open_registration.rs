//! Open registration (RFC 7591 §3 without an initial access token), as MCP clients register:
//! the policy that bounds it, the quotas per source and in all, and expiry when unused.

use super::*;
use crate::host::memory::NoMetrics;
use crate::state::registry::ClientRegistry;

/// Registration with the code flow's grants and two scopes, one of them open to anyone.
const OPEN: &str = r#"{
  "issuer": "https://127.0.0.1:8243",
  "applications": [ { "consumer_key": "demo-app", "consumer_secret": "demo-secret", "scopes": ["orders:read"] } ],
  "users": [ { "username": "alice", "password": "wonderland", "admin": true, "scopes": ["orders:read", "orders:write"] },
             { "username": "root", "password": "root", "super_admin": true } ],
  "registration": { "grant_types": ["client_credentials", "authorization_code", "refresh_token"],
                    "scopes": ["orders:read", "orders:write"],
                    "open": { "scopes": ["orders:read"], "max_per_source": 2, "max_registrations": 3,
                              "expire_unused_after_secs": 86400 } }
}"#;

/// A minimal MCP client's registration (the TypeScript SDK's, less its optional names).
const MCP_CLIENT: &str = r#"{"client_name":"MCP client","token_endpoint_auth_method":"none",
    "grant_types":["authorization_code","refresh_token"],"response_types":["code"],
    "redirect_uris":["http://localhost:8090/callback"]}"#;

impl Rig {
    /// `POST /register` with no credentials, from `address` (Envoy's `source.address`).
    fn register_openly(&self, address: &str, json: &str) -> Reply {
        let gateway = self.gateway();
        let request = EndpointRequest {
            client_address: Some(address),
            method: "POST",
            path: "/register",
            authorization: None,
            content_type: Some("application/json"),
            body: json.as_bytes(),
        };
        Reply(gateway.serve(&gateway.endpoint("/register").unwrap(), &request))
    }

    /// When the registry last noted a use of an open registration, in seconds.
    fn last_used(&self, client_id: &str) -> u64 {
        let registry = ClientRegistry::new(&self.shared, &SystemRandomness, &NoMetrics, 1024);
        registry.find(client_id).unwrap().unwrap().open.unwrap().last_used_secs
    }

    /// A token request naming `client_id` alone, as a public client makes it.
    fn refresh_as_public(&self, client_id: &str) -> Reply {
        let body = format!("grant_type=refresh_token&refresh_token=unknown&client_id={client_id}");
        self.request("POST", "/token", None, &body)
    }
}

struct PolicyCase {
    name: &'static str,
    json: &'static str,
    status: u16,
    error: &'static str,
}

/// Each rule of the policy, met and broken. Every row comes from its own address, so the
/// quota per source never decides one.
#[test]
fn open_registration_takes_public_code_flow_clients_within_the_policy() {
    let cases = [
        PolicyCase { name: "an MCP client", json: MCP_CLIENT, status: 201, error: "" },
        PolicyCase {
            name: "no token_endpoint_auth_method: none, by RFC 7591 §3.2.1 substitution",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["https://app.example/cb"]}"#,
            status: 201,
            error: "",
        },
        PolicyCase {
            name: "a confidential client",
            json: r#"{"token_endpoint_auth_method":"client_secret_basic","grant_types":["authorization_code"],
                      "redirect_uris":["https://app.example/cb"]}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        PolicyCase {
            name: "client_credentials",
            json: r#"{"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        PolicyCase {
            name: "a scope of the open set",
            json: r#"{"scope":"orders:read","redirect_uris":["https://app.example/cb"]}"#,
            status: 201,
            error: "",
        },
        PolicyCase {
            name: "a registration scope outside the open set",
            json: r#"{"scope":"orders:write","redirect_uris":["https://app.example/cb"]}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        PolicyCase {
            name: "loopback IPv4, any path",
            json: r#"{"redirect_uris":["http://127.0.0.1:51000/oauth/callback"]}"#,
            status: 201,
            error: "",
        },
        PolicyCase {
            name: "loopback IPv6",
            json: r#"{"redirect_uris":["http://[::1]:51000/callback"]}"#,
            status: 201,
            error: "",
        },
        PolicyCase {
            name: "localhost (RFC 8252 §8.3: not recommended, not forbidden)",
            json: r#"{"redirect_uris":["http://localhost/callback"]}"#,
            status: 201,
            error: "",
        },
        PolicyCase {
            name: "plain http elsewhere",
            json: r#"{"redirect_uris":["http://app.example/callback"]}"#,
            status: 400,
            error: "invalid_redirect_uri",
        },
        PolicyCase {
            name: "a localhost lookalike",
            json: r#"{"redirect_uris":["http://localhost.evil.example/callback"]}"#,
            status: 400,
            error: "invalid_redirect_uri",
        },
        PolicyCase {
            name: "a native client's private-use scheme",
            json: r#"{"application_type":"native","redirect_uris":["com.example.app:/cb"]}"#,
            status: 400,
            error: "invalid_redirect_uri",
        },
        PolicyCase { name: "no redirect URI", json: "{}", status: 400, error: "invalid_redirect_uri" },
    ];
    let rig =
        Rig::with_config(&config_with(OPEN, |v| v["registration"]["open"]["max_registrations"] = 100.into()));
    for (i, case) in cases.iter().enumerate() {
        let reply = rig.register_openly(&format!("192.0.2.{i}:40000"), case.json);
        assert_eq!(reply.0.status, case.status, "{}: {}", case.name, reply.text());
        if case.status == 201 {
            let info = reply.json();
            assert_eq!(info["token_endpoint_auth_method"], "none", "{}", case.name);
            assert!(info.get("client_secret").is_none(), "{}", case.name);
            assert_eq!(info["scope"], "orders:read", "{}: the open set, or within it", case.name);
            assert!(info["registration_access_token"].is_string(), "{}", case.name);
        } else {
            assert_eq!(reply.json()["error"], case.error, "{}", case.name);
        }
    }
}

/// Off by default: without `registration.open` a registration without credentials is the
/// 401 it always was, and an administrator's registration is unchanged when it is on.
#[test]
fn open_registration_is_off_by_default_and_leaves_admin_registration_alone() {
    let closed = Rig::with_config(&config_with(OPEN, |v| {
        v["registration"].as_object_mut().unwrap().remove("open");
    }));
    let refused = closed.register_openly("192.0.2.1:40000", MCP_CLIENT);
    assert_eq!(refused.0.status, 401, "{}", refused.text());

    let rig = Rig::with_config(OPEN);
    let admin = rig.register("/register", r#"{"grant_types":["client_credentials"],"scope":"orders:write"}"#);
    assert_eq!(admin.0.status, 201, "{}", admin.text());
    assert!(admin.json()["client_secret"].is_string());
}

/// `max_per_source` per address (an IPv6 one by its /64, the port never), `max_registrations`
/// in all; a deleted registration frees its slot. The refusals are 429 `access_denied`.
#[test]
fn open_registrations_are_bounded_per_source_and_in_all() {
    let rig = Rig::with_config(OPEN);
    let from = |address: &str| rig.register_openly(address, MCP_CLIENT);
    assert_eq!(from("192.0.2.1:40000").0.status, 201);
    let second = from("192.0.2.1:40001");
    assert_eq!(second.0.status, 201, "another port is the same source");
    let third = from("192.0.2.1:40002");
    assert_eq!((third.0.status, third.field("error")), (429, "access_denied".to_owned()), "{}", third.text());
    assert_eq!(from("[2001:db8::1]:40000").0.status, 201);
    // The registry holds max_registrations = 3 open ones: a new address is refused too.
    let full = from("198.51.100.7:40000");
    assert_eq!((full.0.status, full.field("error")), (429, "access_denied".to_owned()), "{}", full.text());
    // The client deletes itself (RFC 7592 §2.3): its slot is free again, for its address too.
    let uri = format!("/register/{}", second.field("client_id"));
    let gateway = rig.gateway();
    let bearer = format!("Bearer {}", second.field("registration_access_token"));
    let delete = EndpointRequest {
        client_address: None,
        method: "DELETE",
        path: &uri,
        authorization: Some(&bearer),
        content_type: None,
        body: b"",
    };
    assert_eq!(gateway.serve(&gateway.endpoint(&uri).unwrap(), &delete).status, 204);
    assert_eq!(from("192.0.2.1:40003").0.status, 201);
    assert_eq!(from("[2001:db8::2]:40000").0.status, 429, "the same /64, and the registry full");
}

/// Unused for `expire_unused_after_secs`, an open registration is refused at `/token`,
/// `/revoke` and `/authorize`, and its slot goes to a new one; each use is written down at
/// most once a day, and keeps it alive.
#[test]
fn an_open_registration_expires_when_unused_and_its_slot_is_reclaimed() {
    let rig =
        Rig::with_config(&config_with(OPEN, |v| v["registration"]["open"]["max_registrations"] = 2.into()));
    let used = rig.register_openly("192.0.2.1:40000", MCP_CLIENT).field("client_id");
    let idle = rig.register_openly("192.0.2.2:40000", MCP_CLIENT).field("client_id");
    assert_eq!(rig.register_openly("192.0.2.3:40000", MCP_CLIENT).0.status, 429);
    // Known, public: a made-up refresh token is invalid_grant, not invalid_client.
    assert_eq!(rig.refresh_as_public(&used).field("error"), "invalid_grant");

    // Day 0.9: the one used is used again, and that is written down (more than a quarter of
    // its lifetime went by); used again at once, nothing is.
    let registered_at = rig.last_used(&used);
    rig.clock.advance(77_760);
    assert_eq!(rig.refresh_as_public(&used).field("error"), "invalid_grant");
    assert_eq!(rig.last_used(&used), registered_at + 77_760, "the use was written down");
    rig.clock.advance(60);
    assert_eq!(rig.refresh_as_public(&used).field("error"), "invalid_grant");
    assert_eq!(rig.last_used(&used), registered_at + 77_760, "not written down at every request");
    assert_eq!(rig.last_used(&idle), registered_at);

    // Day 1.2: the idle one expired; the used one lives on.
    rig.clock.advance(25_860);
    let expired = rig.refresh_as_public(&idle);
    assert_eq!((expired.0.status, expired.field("error")), (401, "invalid_client".to_owned()));
    let revoke = rig.request("POST", "/revoke", None, &format!("token=x&client_id={idle}"));
    assert_eq!(revoke.0.status, 401);
    let page = rig.authorize(&Rig::good_query(&idle, "http://localhost:8090/callback"));
    assert_eq!((page.0.status, page.0.header("location")), (400, None));
    assert_eq!(rig.refresh_as_public(&used).field("error"), "invalid_grant");
    // Its slot is free: a new registration fits.
    assert_eq!(rig.register_openly("192.0.2.3:40000", MCP_CLIENT).0.status, 201);
}

/// A public client's `http://localhost` redirect URI takes any port at `/authorize` (RFC 8252
/// §7.3's loopback exception), its path exact; the code it gets redeems with PKCE and the
/// `client_id` alone.
#[test]
fn an_open_registrations_localhost_redirect_uri_takes_any_port() {
    let rig = Rig::with_config(OPEN);
    let client_id = rig.register_openly("192.0.2.1:40000", MCP_CLIENT).field("client_id");
    for (presented, status) in [
        ("http://localhost:8090/callback", 200),
        ("http://localhost:51234/callback", 200),
        ("http://localhost/callback", 200),
        ("http://localhost:8090/other", 400),
        ("http://127.0.0.1:8090/callback", 400),
    ] {
        let page = rig.authorize(&Rig::good_query(&client_id, presented));
        assert_eq!(page.0.status, status, "{presented}: {}", page.text());
    }
    let page = rig.authorize(&Rig::good_query(&client_id, "http://localhost:51234/callback"));
    let back = rig.sign_in(&page.handle(), "alice", "wonderland");
    assert!(back.location().starts_with("http://localhost:51234/callback?code="), "{}", back.location());
    let code = back.callback().get("code").unwrap().to_owned();
    let body = format!(
        "grant_type=authorization_code&client_id={client_id}&code={code}\
         &redirect_uri=http%3A%2F%2Flocalhost%3A51234%2Fcallback&code_verifier={VERIFIER}"
    );
    let tokens = rig.request("POST", "/token", None, &body);
    assert_eq!(tokens.0.status, 200, "{}", tokens.text());
    assert_eq!(tokens.json()["scope"], "orders:read");
}

/// An MCP server's API that open registrations are subscribed to by the policy, at /mcp.
fn with_mcp_api(subscriptions: serde_json::Value) -> String {
    config_with(OPEN, |v| {
        v["apis"] = serde_json::json!([{ "name": "Mcp", "version": "1", "context": "/mcp",
            "require_audience": true,
            "resources": [{ "methods": ["POST"], "path": "/", "scopes": ["orders:read"] }] }]);
        v["registration"]["open"]["subscriptions"] = subscriptions;
    })
}

/// An openly registered client's token for the MCP API, through the code flow with
/// `resource` (what an MCP client does once it has registered).
fn mcp_token(rig: &Rig) -> String {
    let client_id = rig.register_openly("192.0.2.1:40000", MCP_CLIENT).field("client_id");
    let resource = "resource=https%3A%2F%2F127.0.0.1%3A8243%2Fmcp";
    let redirect_uri = "http://localhost:8090/callback";
    let page = rig.authorize(&format!("{}&{resource}", Rig::good_query(&client_id, redirect_uri)));
    let back = rig.sign_in(&page.handle(), "alice", "wonderland");
    let code = back.callback().get("code").unwrap().to_owned();
    let body = format!(
        "grant_type=authorization_code&client_id={client_id}&code={code}\
         &redirect_uri=http%3A%2F%2Flocalhost%3A8090%2Fcallback&code_verifier={VERIFIER}&{resource}"
    );
    let tokens = rig.request("POST", "/token", None, &body);
    assert_eq!(tokens.0.status, 200, "{}", tokens.text());
    tokens.field("access_token")
}

/// An open registration has no administrator to subscribe it to an API, so without
/// `registration.open.subscriptions` its token is refused on every API (403
/// subscription_required); with it, the token reaches the APIs the policy names.
#[test]
fn open_registrations_are_subscribed_to_the_apis_the_policy_names() {
    let unsubscribed = Rig::with_config(&with_mcp_api(serde_json::json!([])));
    let refused = unsubscribed.call_with_token("POST", "/mcp", &mcp_token(&unsubscribed));
    assert_eq!(status_of(&refused), 403);

    let subscribed = Rig::with_config(&with_mcp_api(serde_json::json!([{ "api": "Mcp", "tier": "Gold" }])));
    let outcome = subscribed.call_with_token("POST", "/mcp", &mcp_token(&subscribed));
    assert_eq!(status_of(&outcome), 200, "{outcome:?}");
}

/// The policy's subscriptions are for open registrations only: an application an
/// administrator registered is subscribed by an administrator, as before.
#[test]
fn an_administrators_registration_is_not_given_the_open_subscriptions() {
    let rig = Rig::with_config(&with_mcp_api(serde_json::json!([{ "api": "Mcp" }])));
    let basic = format!("Basic {}", encode_basic_credentials("alice", "wonderland"));
    let metadata =
        r#"{"client_name":"batch job","grant_types":["client_credentials"],"scope":"orders:read"}"#;
    let registered = rig.endpoint("POST", "/register", Some(&basic), Some("application/json"), metadata);
    assert_eq!(registered.0.status, 201, "{}", registered.text());
    let body = "grant_type=client_credentials&resource=https%3A%2F%2F127.0.0.1%3A8243%2Fmcp";
    let tokens =
        rig.post_as(&registered.field("client_id"), &registered.field("client_secret"), "/token", body);
    assert_eq!(tokens.0.status, 200, "{}", tokens.text());
    let refused = rig.call_with_token("POST", "/mcp", &tokens.field("access_token"));
    assert_eq!(status_of(&refused), 403);
}
