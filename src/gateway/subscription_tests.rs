//! Issue 12, second part: production and sandbox key pairs, sandbox routing, and the key
//! type selector of seed 003, over [`super::SUBSCRIPTIONS`].

use super::*;
use crate::gateway::reply::UPSTREAM_HEADER;

const ITEMS: &str = "/orders/1.0.0/items";

fn forwarded(outcome: Outcome) -> Forward {
    match outcome {
        Outcome::Forward(forward) => forward,
        Outcome::Respond(response) => panic!("not forwarded: {}", Reply(response).text()),
    }
}

fn header<'f>(forward: &'f Forward, name: &str) -> Option<&'f str> {
    forward.set_headers.iter().find(|(n, _)| *n == name).map(|(_, value)| value.as_str())
}

/// Subscription states × key types × tiers: what one request with a fresh token gets.
#[test]
fn states_key_types_and_tiers_decide_together() {
    struct Case {
        name: &'static str,
        key: &'static str,
        path: &'static str,
        status: u16,
        error: &'static str,
        /// The routing header the allowed request carries.
        upstream: Option<&'static str>,
        tier: Option<&'static str>,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "active, production, rated", key: "tiny", path: ITEMS, status: 200, error: "",
               upstream: None, tier: Some("Tiny") },
        Case { name: "active, sandbox, rated", key: "tiny-sandbox", path: ITEMS, status: 200, error: "",
               upstream: Some("sandbox"), tier: Some("Tiny") },
        Case { name: "active, production, Unlimited", key: "unlimited", path: ITEMS, status: 200, error: "",
               upstream: None, tier: Some("Unlimited") },
        Case { name: "active, sandbox, Unlimited", key: "unlimited-sandbox", path: ITEMS, status: 200, error: "",
               upstream: Some("sandbox"), tier: Some("Unlimited") },
        Case { name: "blocked, production", key: "blocked", path: ITEMS, status: 403,
               error: "subscription_blocked", upstream: None, tier: None },
        Case { name: "blocked, sandbox", key: "blocked-sandbox", path: ITEMS, status: 403,
               error: "subscription_blocked", upstream: None, tier: None },
        Case { name: "prod_only_blocked, production", key: "prod-blocked", path: ITEMS, status: 403,
               error: "subscription_blocked", upstream: None, tier: None },
        Case { name: "prod_only_blocked, sandbox", key: "prod-blocked-sandbox", path: ITEMS, status: 200,
               error: "", upstream: Some("sandbox"), tier: Some("Bronze") },
        Case { name: "not subscribed, sandbox", key: "tiny-sandbox", path: "/stock/2.0", status: 403,
               error: "subscription_required", upstream: None, tier: None },
        Case { name: "an API without a sandbox upstream, sandbox", key: "unlimited-sandbox", path: "/stock/2.0",
               status: 403, error: "sandbox_not_served", upstream: None, tier: None },
        Case { name: "an API without a sandbox upstream, production", key: "unlimited", path: "/stock/2.0",
               status: 200, error: "", upstream: None, tier: Some("Unlimited") },
        Case { name: "the flat list, sandbox", key: "blocked-sandbox", path: "/api/orders", status: 200,
               error: "", upstream: None, tier: None },
    ];
    let rig = Rig::with_config(SUBSCRIPTIONS);
    for Case { name, key, path, status, error, upstream, tier } in table {
        let outcome = rig.call_with_token("GET", path, &app_token(&rig, key));
        assert_eq!(status_of(&outcome), status, "{name}");
        assert_eq!(error_code(&outcome), error, "{name}");
        if let Outcome::Forward(forward) = outcome {
            assert_eq!(header(&forward, UPSTREAM_HEADER), upstream, "{name}");
            assert_eq!(header(&forward, TIER_HEADER), tier, "{name}");
            assert_eq!(header(&forward, CLIENT_ID_HEADER), Some(key), "{name}");
            assert!(forward.remove_headers.contains(&UPSTREAM_HEADER), "{name}: a client's copy is stripped");
        }
    }
}

/// Both key pairs of one application count in the same tier window (WSO2 throttles the
/// subscription, whichever key calls).
#[test]
fn both_key_pairs_share_the_subscription_tier() {
    let rig = Rig::with_config(SUBSCRIPTIONS);
    let production = app_token(&rig, "tiny");
    let sandbox = app_token(&rig, "tiny-sandbox");
    assert_eq!(status_of(&rig.call_with_token("GET", ITEMS, &production)), 200);
    assert_eq!(status_of(&rig.call_with_token("GET", ITEMS, &sandbox)), 200);
    assert_eq!(status_of(&rig.call_with_token("GET", ITEMS, &sandbox)), 429);
    assert_eq!(status_of(&rig.call_with_token("GET", ITEMS, &production)), 429);
}

/// Seed 003's selector against the pair that authenticated, and refresh keeping the key type.
#[test]
fn the_scope_asserts_the_key_type_of_the_pair_that_authenticated() {
    struct Case {
        name: &'static str,
        key: &'static str,
        scope: &'static str,
        status: u16,
        description: &'static str,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "SANDBOX with the sandbox pair", key: "tiny-sandbox", scope: "SANDBOX", status: 200, description: "" },
        Case { name: "SANDBOX and a scope", key: "tiny-sandbox", scope: "SANDBOX orders:read", status: 200, description: "" },
        Case { name: "PRODUCTION with the production pair", key: "tiny", scope: "PRODUCTION", status: 200, description: "" },
        Case { name: "SANDBOX with the production pair", key: "tiny", scope: "SANDBOX", status: 400,
               description: "scope SANDBOX asks for sandbox keys: authenticate with the application's sandbox consumer key" },
        Case { name: "PRODUCTION with the sandbox pair", key: "tiny-sandbox", scope: "PRODUCTION", status: 400,
               description: "scope PRODUCTION asks for production keys: authenticate with the application's production consumer key" },
        Case { name: "both", key: "tiny-sandbox", scope: "PRODUCTION SANDBOX", status: 400,
               description: "ask for PRODUCTION or SANDBOX keys, not both" },
    ];
    let rig = Rig::with_config(SUBSCRIPTIONS);
    for Case { name, key, scope, status, description } in table {
        let reply = rig.post_as(key, "s", "/token", &format!("grant_type=client_credentials&scope={scope}"));
        assert_eq!(reply.0.status, status, "{name}: {}", reply.text());
        if status == 200 {
            assert_eq!(reply.field("scope"), "orders:read", "{name}: the key type is never granted");
        } else {
            assert_eq!(reply.field("error"), "invalid_scope", "{name}");
            assert_eq!(reply.field("error_description"), description, "{name}");
        }
    }
}

const REFRESHING: &str = r#"{
  "apis": [ { "name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0", "sandbox_upstream": "sandbox",
              "resources": [ { "methods": ["GET"], "path": "/items", "scopes": [] } ] } ],
  "users": [ { "username": "admin", "password": "admin" } ],
  "applications": [
    { "consumer_key": "app", "consumer_secret": "s", "grant_types": ["password", "refresh_token"],
      "sandbox": { "consumer_key": "app-sandbox", "consumer_secret": "t" },
      "subscriptions": [ { "api": "Orders" } ] } ]
}"#;

#[test]
fn a_refreshed_sandbox_grant_stays_sandbox_and_the_production_pair_cannot_refresh_it() {
    let rig = Rig::with_config(REFRESHING);
    let issued =
        rig.post_as("app-sandbox", "t", "/token", "grant_type=password&username=admin&password=admin");
    assert_eq!(issued.0.status, 200, "{}", issued.text());
    let refresh = issued.field("refresh_token");
    let stolen =
        rig.post_as("app", "s", "/token", &format!("grant_type=refresh_token&refresh_token={refresh}"));
    assert_eq!(stolen.field("error"), "invalid_grant");
    let renewed = rig.post_as(
        "app-sandbox",
        "t",
        "/token",
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    );
    assert_eq!(renewed.0.status, 200, "{}", renewed.text());
    let forward = forwarded(rig.call_with_token("GET", ITEMS, &renewed.field("access_token")));
    assert_eq!(header(&forward, UPSTREAM_HEADER), Some("sandbox"));
    assert_eq!(header(&forward, USERNAME_HEADER), Some("admin"));
    // The sandbox secret is the sandbox pair's own: the production secret does not open it.
    assert_eq!(
        rig.post_as("app-sandbox", "s", "/token", "grant_type=password&username=admin&password=admin")
            .0
            .status,
        401
    );
    // A production token of the same application goes to the route's own cluster.
    let production = rig.post_as("app", "s", "/token", "grant_type=password&username=admin&password=admin");
    let forward = forwarded(rig.call_with_token("GET", ITEMS, &production.field("access_token")));
    assert_eq!(header(&forward, UPSTREAM_HEADER), None);
}

#[test]
fn introspection_reports_the_key_type() {
    let rig = Rig::with_config(SUBSCRIPTIONS);
    for (key, key_type) in [("unlimited", "PRODUCTION"), ("unlimited-sandbox", "SANDBOX")] {
        let token = app_token(&rig, key);
        let reply = rig.post_as(key, "s", "/introspect", &format!("token={token}"));
        assert_eq!(reply.0.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["key_type"], key_type, "{key}");
    }
}
