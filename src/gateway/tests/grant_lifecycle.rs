//! A grant from issue to end: expiry, refresh (RFC 6749 §6, RFC 9700 §4.14), grant types
//! an application may use, a config that changes credentials, and the store's limits.

use super::*;

#[test]
fn tokens_expire() {
    let rig = Rig::demo();
    let token = rig.access_token("grant_type=client_credentials");
    rig.clock.advance(3599);
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &token)), 200);
    rig.clock.advance(1);
    let outcome = rig.call_with_token("GET", "/api/orders", &token);
    assert_eq!(status_of(&outcome), 401);
    assert!(challenge_of(&outcome).contains("invalid_token"));
}

#[test]
fn never_expiring_tokens_have_no_expires_in() {
    let rig = Rig::demo_with(|v| v["applications"][0]["access_token_validity_secs"] = (-1).into());
    let reply = rig.token("grant_type=client_credentials");
    assert!(reply.json().get("expires_in").is_none(), "{}", reply.text());
    rig.clock.advance(10 * 365 * 86400);
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &reply.field("access_token"))), 200);
}

#[test]
fn refresh_keeps_the_grant_scope_and_narrows_only_the_access_token() {
    let rig = Rig::demo();
    let first = rig.token("grant_type=password&username=admin&password=admin");
    let refresh = first.field("refresh_token");
    let narrowed = rig.token(&format!("grant_type=refresh_token&refresh_token={refresh}&scope=orders:read"));
    assert_eq!(narrowed.0.status, 200, "{}", narrowed.text());
    assert_eq!(narrowed.field("scope"), "orders:read");
    assert_eq!(status_of(&rig.call_with_token("POST", "/api/orders", &narrowed.field("access_token"))), 403);
    // The rotated refresh token still carries the full grant.
    let full =
        rig.token(&format!("grant_type=refresh_token&refresh_token={}", narrowed.field("refresh_token")));
    assert_eq!(full.field("scope"), "orders:read orders:write");
    assert_eq!(status_of(&rig.call_with_token("POST", "/api/orders", &full.field("access_token"))), 200);
    // Asking for more than the grant holds is invalid_scope.
    let wider = rig.token(&format!(
        "grant_type=refresh_token&refresh_token={}&scope=orders:admin",
        full.field("refresh_token")
    ));
    assert_eq!(wider.field("error"), "invalid_scope");
}

#[test]
fn a_reused_refresh_token_kills_every_token_of_the_grant() {
    // With a reuse grace configured (the default is none: see the test below).
    let rig = Rig::demo_with(|v| v["refresh_token_reuse_grace_ms"] = 5000.into());
    let first = rig.token("grant_type=password&username=admin&password=admin");
    let old_refresh = first.field("refresh_token");
    let second = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(second.0.status, 200);
    // Right after the rotation the old token may be a parallel retry: refused, nothing revoked.
    let racing = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(racing.field("error"), "invalid_grant");
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &second.field("access_token"))), 200);
    // After the 5 s grace it is a reuse: every token of the grant dies.
    rig.clock.advance(5);
    let reuse = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(reuse.field("error"), "invalid_grant");
    assert_eq!(rig.metrics.get(Metric::RefreshReuseDetected), 1);
    for token in [first.field("access_token"), second.field("access_token")] {
        assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &token)), 401);
    }
    let newest =
        rig.token(&format!("grant_type=refresh_token&refresh_token={}", second.field("refresh_token")));
    assert_eq!(newest.field("error"), "invalid_grant");
}

/// RFC 9700 §4.14.2: by default there is no grace, so the refresh token just
/// replaced, presented at once (an attacker's refresh moments before the client's, or the
/// client's after the attacker's), revokes the grant: nobody keeps a stolen session.
#[test]
fn by_default_the_refresh_token_just_replaced_revokes_the_grant_at_once() {
    let rig = Rig::demo();
    assert_eq!(rig.config.refresh_reuse_grace_ms, 0);
    let first = rig.token("grant_type=password&username=admin&password=admin");
    let old_refresh = first.field("refresh_token");
    let winner = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(winner.0.status, 200);
    let replay = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(replay.field("error"), "invalid_grant");
    assert_eq!(rig.metrics.get(Metric::RefreshReuseDetected), 1);
    for token in [first.field("access_token"), winner.field("access_token")] {
        assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &token)), 401);
    }
    let newest =
        rig.token(&format!("grant_type=refresh_token&refresh_token={}", winner.field("refresh_token")));
    assert_eq!(newest.field("error"), "invalid_grant");
}

#[test]
fn applications_without_a_grant_type_are_unauthorized_for_it() {
    let rig =
        Rig::demo_with(|v| v["applications"][0]["grant_types"] = serde_json::json!(["client_credentials"]));
    let reply = rig.token("grant_type=password&username=admin&password=admin");
    assert_eq!((reply.0.status, reply.field("error")), (400, "unauthorized_client".to_owned()));
}

#[test]
fn password_grant_without_refresh_permission_issues_no_refresh_token() {
    let rig = Rig::demo_with(|v| v["applications"][0]["grant_types"] = serde_json::json!(["password"]));
    let reply = rig.token("grant_type=password&username=admin&password=admin");
    assert_eq!(reply.0.status, 200);
    assert!(reply.json().get("refresh_token").is_none());
}

#[test]
fn a_config_that_changes_a_secret_or_password_ends_old_tokens() {
    let rig = Rig::demo();
    let app_token = rig.access_token("grant_type=client_credentials");
    let user_token = rig.access_token("grant_type=password&username=admin&password=admin");
    // A reloaded config over the same shared data, as after an Envoy config update.
    let status_under = |json: &str, token: &str| {
        let config = Config::from_json(json.as_bytes()).unwrap();
        let gateway = Gateway::new(&config, rig.host());
        let authorization = format!("Bearer {token}");
        status_of(&gateway.check_bearer(&ApiRequest {
            method: "GET",
            path: "/api/orders",
            authorization: Some(&authorization),
        }))
    };
    let new_password = demo_with(|v| v["users"][0]["password"] = "changed".into());
    assert_eq!(status_under(&new_password, &app_token), 200);
    assert_eq!(status_under(&new_password, &user_token), 401);
    let new_secret = demo_with(|v| v["applications"][0]["consumer_secret"] = "rotated-secret".into());
    assert_eq!(status_under(&new_secret, &app_token), 401);
    let without_user = demo_with(|v| v["users"][0]["username"] = "someone-else".into());
    assert_eq!(status_under(&without_user, &user_token), 401);
    assert_eq!(status_under(DEMO, &app_token), 200);
}

#[test]
fn a_full_store_answers_503_and_keeps_existing_tokens() {
    let rig = Rig::demo_with(|v| v["store"] = serde_json::json!({ "capacity": 8 }));
    let tokens: Vec<String> = (0..8).map(|_| rig.access_token("grant_type=client_credentials")).collect();
    let full = rig.token("grant_type=client_credentials");
    assert_eq!((full.0.status, full.field("error")), (503, "temporarily_unavailable".to_owned()));
    assert_eq!(full.0.header("cache-control"), Some("no-store"));
    for token in &tokens {
        assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", token)), 200);
    }
}

/// One client cannot fill the store (`store.max_grants_per_application`). With a share of 8 grants (one bucket), the
/// demo app's ninth grant is refused with a clear 503; its tokens, and everyone else's room,
/// stay.
#[test]
fn one_application_cannot_fill_the_store() {
    let mut value: serde_json::Value =
        serde_json::from_str(&crate::config::tests::demo_with_lifecycle()).unwrap();
    value["store"] = serde_json::json!({"capacity": 80, "max_grants_per_application": 8});
    let rig = Rig::with_config(&value.to_string());
    let tokens: Vec<String> = (0..8).map(|_| rig.access_token("grant_type=client_credentials")).collect();
    let refused = rig.token("grant_type=client_credentials");
    assert_eq!((refused.0.status, refused.field("error")), (503, "temporarily_unavailable".to_owned()));
    assert!(refused.field("error_description").contains("this client holds too many live tokens"));
    assert_eq!(rig.metrics.get(Metric::StoreFull), 1);
    for token in &tokens {
        assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", token)), 200);
    }
    // Another application still gets its own share (its name hashes to another bucket).
    for _ in 0..8 {
        let reply = rig.post_as("orders-service", "rs-secret", "/token", "grant_type=client_credentials");
        assert_eq!(reply.0.status, 200, "{}", reply.text());
    }
    // Revoking one of its tokens makes room for the demo app again.
    let revoked = rig.post_as("demo-app", "demo-secret", "/revoke", &format!("token={}", tokens[0]));
    assert_eq!(revoked.0.status, 200);
    assert_eq!(rig.token("grant_type=client_credentials").0.status, 200);
}

#[test]
fn the_share_per_application_defaults_to_1000_grants() {
    let rig = Rig::demo();
    assert_eq!(rig.config.max_grants_per_application, 1000);
}

#[test]
fn credentials_with_unreserved_punctuation_work_raw_and_form_encoded() {
    let rig = Rig::demo_with(|v| {
        v["applications"][0]["consumer_key"] = "my.app_1".into();
        v["applications"][0]["consumer_secret"] = "s-e.c_r~t".into();
    });
    use base64::Engine;
    let raw = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("my.app_1:s-e.c_r~t"));
    let encoded = format!("Basic {}", encode_basic_credentials("my.app_1", "s-e.c_r~t"));
    for header in [raw, encoded] {
        let reply =
            rig.token_request("POST", None, Some(&header), Some(FORM), "grant_type=client_credentials");
        assert_eq!(reply.0.status, 200, "{header}: {}", reply.text());
    }
}
