//! Revocation (RFC 7009), introspection (RFC 7662) and the server metadata (RFC 8414).

use super::*;

#[test]
fn revocation_follows_rfc_7009() {
    let rig = lifecycle_rig();
    let issued = rig.token("grant_type=password&username=admin&password=admin");
    let access = issued.field("access_token");
    let refresh = issued.field("refresh_token");
    let other_app = rig.access_token("grant_type=client_credentials");
    struct RevokeCase<'a> {
        caller: (&'a str, &'a str),
        body: String,
        status: u16,
        error: &'a str,
    }
    let table = [
        RevokeCase {
            caller: ("demo-app", "wrong"),
            body: format!("token={access}"),
            status: 401,
            error: "invalid_client",
        },
        RevokeCase {
            caller: ("demo-app", "demo-secret"),
            body: "token_type_hint=access_token".into(),
            status: 400,
            error: "invalid_request",
        },
        RevokeCase {
            caller: ("demo-app", "demo-secret"),
            body: "token=never-issued".into(),
            status: 200,
            error: "",
        },
        RevokeCase {
            caller: ("orders-service", "rs-secret"),
            body: format!("token={other_app}"),
            status: 400,
            error: "unauthorized_client",
        },
        // A wrong hint still finds the token.
        RevokeCase {
            caller: ("demo-app", "demo-secret"),
            body: format!("token={access}&token_type_hint=refresh_token"),
            status: 200,
            error: "",
        },
        RevokeCase {
            caller: ("demo-app", "demo-secret"),
            body: format!("token={access}"),
            status: 200,
            error: "",
        },
    ];
    for RevokeCase { caller: (key, secret), body, status, error } in table {
        let reply = rig.post_as(key, secret, "/revoke", &body);
        assert_eq!(reply.0.status, status, "{key} {body}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{key} {body}");
        assert_eq!(reply.0.header("cache-control"), Some("no-store"));
    }
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &access)), 401);
    // The other application's token was left working.
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &other_app)), 200);
    // Revoking the refresh token ends the grant: the access tokens refreshed from it too.
    let refreshed = rig.token(&format!("grant_type=refresh_token&refresh_token={refresh}"));
    let new_refresh = refreshed.field("refresh_token");
    assert_eq!(
        rig.post_as("demo-app", "demo-secret", "/revoke", &format!("token={new_refresh}")).0.status,
        200
    );
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &refreshed.field("access_token"))), 401);
    assert_eq!(
        rig.token(&format!("grant_type=refresh_token&refresh_token={new_refresh}")).field("error"),
        "invalid_grant"
    );
    assert_eq!(rig.metrics.get(Metric::Revocations), 2);
}

#[test]
fn introspection_follows_rfc_7662() {
    let rig = lifecycle_rig();
    let issued = rig.token("grant_type=password&username=admin&password=admin&scope=orders:read");
    let access = issued.field("access_token");
    // The owner and a resource server marked `introspect` see it; another application does not.
    for (key, secret) in [("demo-app", "demo-secret"), ("orders-service", "rs-secret")] {
        let reply = rig.post_as(key, secret, "/introspect", &format!("token={access}"));
        let body = reply.json();
        assert_eq!(body["active"], true, "{key}: {body}");
        assert_eq!(body["scope"], "orders:read");
        assert_eq!(body["client_id"], "demo-app");
        assert_eq!(body["username"], "admin");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["iat"], 1_700_000_000u64);
        assert_eq!(body["exp"], 1_700_003_600u64);
    }
    let rs_token = rig
        .post_as("orders-service", "rs-secret", "/token", "grant_type=client_credentials")
        .field("access_token");
    let foreign = rig.post_as("demo-app", "demo-secret", "/introspect", &format!("token={rs_token}"));
    assert_eq!(foreign.text(), r#"{"active":false}"#);
    // Unknown, malformed, revoked, expired: exactly {"active":false}.
    assert_eq!(
        rig.post_as("demo-app", "demo-secret", "/introspect", "token=garbage").text(),
        r#"{"active":false}"#
    );
    rig.post_as("demo-app", "demo-secret", "/revoke", &format!("token={access}"));
    assert_eq!(
        rig.post_as("demo-app", "demo-secret", "/introspect", &format!("token={access}")).text(),
        r#"{"active":false}"#
    );
    let short = rig.access_token("grant_type=client_credentials");
    rig.clock.advance(3600);
    assert_eq!(
        rig.post_as("demo-app", "demo-secret", "/introspect", &format!("token={short}")).text(),
        r#"{"active":false}"#
    );
    // Callers must authenticate; a missing token is a bad request.
    assert_eq!(rig.post_as("demo-app", "nope", "/introspect", "token=x").0.status, 401);
    assert_eq!(rig.post_as("demo-app", "demo-secret", "/introspect", "").field("error"), "invalid_request");
}

#[test]
fn metadata_follows_rfc_8414() {
    let rig = lifecycle_rig();
    let reply = rig.endpoint("GET", "/.well-known/oauth-authorization-server", None, None, "");
    assert_eq!(reply.0.status, 200);
    let body = reply.json();
    assert_eq!(body["issuer"], "http://127.0.0.1:8080");
    assert_eq!(body["token_endpoint"], "http://127.0.0.1:8080/token");
    assert_eq!(body["revocation_endpoint"], "http://127.0.0.1:8080/revoke");
    assert_eq!(body["introspection_endpoint"], "http://127.0.0.1:8080/introspect");
    // RFC 7591's endpoint: RFC 8414 clients expect it there (the v0.17 one works, unadvertised).
    assert_eq!(body["registration_endpoint"], "http://127.0.0.1:8080/register");
    assert_eq!(
        body["grant_types_supported"],
        serde_json::json!(["client_credentials", "password", "refresh_token"])
    );
    assert_eq!(body["scopes_supported"], serde_json::json!(["orders:read", "orders:write"]));
    // client_secret_post too (RFC 6749 §2.3.1), at every endpoint that authenticates an application.
    let methods = serde_json::json!(["client_secret_basic", "client_secret_post"]);
    assert_eq!(body["token_endpoint_auth_methods_supported"], methods);
    assert_eq!(body["revocation_endpoint_auth_methods_supported"], methods);
    assert_eq!(body["introspection_endpoint_auth_methods_supported"], methods);
    assert_eq!(body["response_types_supported"], serde_json::json!([]));
    assert_eq!(rig.endpoint("POST", "/.well-known/oauth-authorization-server", None, None, "").0.status, 405);
    // No issuer configured: no metadata.
    assert_eq!(
        Rig::demo().endpoint("GET", "/.well-known/oauth-authorization-server", None, None, "").0.status,
        404
    );
}
