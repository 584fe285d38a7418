//! APIs, tiers and subscriptions (WSO2's model): the order of the checks, throttling tiers,
//! production and sandbox key pairs, sandbox routing, the key type in the scope (as older WSO2
//! clients send it) and the admin subscription endpoint, over [`SUBSCRIPTIONS`].

use super::*;
use crate::gateway::reply::UPSTREAM_HEADER;
use crate::host::metrics::ApiStat;

const ITEMS: &str = "/orders/1.0.0/items";

/// APIs, tiers and subscriptions (WSO2's model). Four applications, each subscribed to the Orders
/// API in its own way; none to the Stock API.
const SUBSCRIPTIONS: &str = r#"{
  "tiers": [ { "name": "Tiny", "requests": 2, "per": "minute" } ],
  "apis": [
    { "name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0", "sandbox_upstream": "sandbox", "resources": [
        { "methods": ["GET"], "path": "/items", "scopes": ["orders:read"] },
        { "methods": ["GET"], "path": "/ping", "public": true } ] },
    { "name": "Stock", "version": "2.0", "context": "/stock/2.0", "resources": [
        { "methods": ["GET"], "path": "/", "scopes": [] } ] }
  ],
  "applications": [
    { "consumer_key": "tiny", "consumer_secret": "s", "scopes": ["orders:read"],
      "sandbox": { "consumer_key": "tiny-sandbox", "consumer_secret": "s" },
      "subscriptions": [ { "api": "Orders", "tier": "Tiny" } ] },
    { "consumer_key": "unlimited", "consumer_secret": "s", "scopes": ["orders:read"],
      "sandbox": { "consumer_key": "unlimited-sandbox", "consumer_secret": "s" },
      "subscriptions": [ { "api": "Orders" }, { "api": "Stock" } ] },
    { "consumer_key": "blocked", "consumer_secret": "s", "scopes": ["orders:read"],
      "sandbox": { "consumer_key": "blocked-sandbox", "consumer_secret": "s" },
      "subscriptions": [ { "api": "Orders", "tier": "Gold", "state": "blocked" } ] },
    { "consumer_key": "prod-blocked", "consumer_secret": "s", "scopes": ["orders:read"],
      "sandbox": { "consumer_key": "prod-blocked-sandbox", "consumer_secret": "s" },
      "subscriptions": [ { "api": "Orders", "tier": "Bronze", "state": "prod_only_blocked" } ] },
    { "consumer_key": "noscope", "consumer_secret": "s",
      "subscriptions": [ { "api": "Orders", "tier": "Tiny" } ] }
  ],
  "resources": [ { "methods": ["GET"], "path": "/api/orders", "scopes": ["orders:read"] } ]
}"#;

fn app_token(rig: &Rig, key: &str) -> String {
    let reply = rig.post_as(key, "s", "/token", "grant_type=client_credentials");
    assert_eq!(reply.0.status, 200, "{}", reply.text());
    reply.field("access_token")
}

fn error_code(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Deny(Denial { response, .. }) => Reply(response.clone()).field("error"),
        Outcome::Forward(_) => String::new(),
    }
}

#[test]
fn subscriptions_are_checked_after_the_token_and_before_the_scope() {
    struct Case {
        name: &'static str,
        app: &'static str,
        path: &'static str,
        status: u16,
        error: &'static str,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "subscribed, Unlimited", app: "unlimited", path: "/orders/1.0.0/items", status: 200, error: "" },
        Case { name: "subscribed, rated", app: "tiny", path: "/orders/1.0.0/items", status: 200, error: "" },
        Case { name: "not subscribed", app: "tiny", path: "/stock/2.0", status: 403, error: "subscription_required" },
        Case { name: "blocked", app: "blocked", path: "/orders/1.0.0/items", status: 403, error: "subscription_blocked" },
        Case { name: "blocked for production keys", app: "prod-blocked", path: "/orders/1.0.0/items",
               status: 403, error: "subscription_blocked" },
        Case { name: "subscribed without the scope", app: "noscope", path: "/orders/1.0.0/items",
               status: 403, error: "insufficient_scope" },
        Case { name: "the flat list needs no subscription", app: "blocked", path: "/api/orders", status: 200, error: "" },
    ];
    let rig = Rig::with_config(SUBSCRIPTIONS);
    for Case { name, app, path, status, error } in table {
        let outcome = rig.call_with_token("GET", path, &app_token(&rig, app));
        assert_eq!(status_of(&outcome), status, "{name}");
        assert_eq!(error_code(&outcome), error, "{name}");
        // A subscription denial is no Bearer challenge: the token is fine.
        if error.starts_with("subscription") {
            assert_eq!(challenge_of(&outcome), "", "{name}");
        }
    }
    // An unknown token is 401 before any subscription is looked at.
    assert_eq!(status_of(&rig.call_with_token("GET", "/stock/2.0", "nope")), 401);
    // A public resource of an API needs neither token nor subscription.
    assert_eq!(status_of(&rig.call("GET", "/orders/1.0.0/ping", None)), 200);
    assert_eq!(rig.metrics.get(Metric::RequestsDenied(DenyReason::SubscriptionRequired)), 1);
    assert_eq!(rig.metrics.get(Metric::RequestsDenied(DenyReason::SubscriptionBlocked)), 2);
}

#[test]
fn allowed_requests_carry_the_api_and_tier_and_spoofed_copies_are_stripped() {
    let rig = Rig::with_config(SUBSCRIPTIONS);
    let Outcome::Forward(forward) =
        rig.call_with_token("GET", "/orders/1.0.0/items", &app_token(&rig, "unlimited"))
    else {
        panic!("not forwarded")
    };
    assert!(forward.set_headers.contains(&(API_HEADER, "Orders".to_owned())));
    assert!(forward.set_headers.contains(&(TIER_HEADER, "Unlimited".to_owned())));
    let Outcome::Forward(flat) = rig.call_with_token("GET", "/api/orders", &app_token(&rig, "unlimited"))
    else {
        panic!("not forwarded")
    };
    assert!(flat.set_headers.iter().all(|(name, _)| *name != API_HEADER && *name != TIER_HEADER));
    for forward in [forward, flat] {
        assert!(
            forward.remove_headers.contains(&API_HEADER) && forward.remove_headers.contains(&TIER_HEADER)
        );
    }
}

#[test]
fn a_tier_throttles_with_ratelimit_headers_until_its_window_ends() {
    let rig = Rig::with_config(SUBSCRIPTIONS);
    let token = app_token(&rig, "tiny");
    for _ in 0..2 {
        assert_eq!(status_of(&rig.call_with_token("GET", "/orders/1.0.0/items", &token)), 200);
    }
    let Outcome::Deny(Denial { response: throttled, .. }) =
        rig.call_with_token("GET", "/orders/1.0.0/items", &token)
    else {
        panic!("not throttled")
    };
    assert_eq!(throttled.status, 429);
    assert_eq!(Reply(throttled.clone()).field("error"), "throttled");
    let retry: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(throttled.header("ratelimit-policy"), Some("\"Tiny\";q=2;w=60"));
    assert_eq!(throttled.header("ratelimit"), Some(format!("\"Tiny\";r=0;t={retry}").as_str()));
    assert_eq!(throttled.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(throttled.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(challenge_of(&Outcome::Deny(Denial::new(DenyReason::Throttled, throttled))), "");
    assert_eq!(rig.metrics.get(Metric::RequestsDenied(DenyReason::Throttled)), 1);
    // Another application's subscription counts apart; an Unlimited one is never throttled.
    assert_eq!(
        status_of(&rig.call_with_token("GET", "/orders/1.0.0/items", &app_token(&rig, "unlimited"))),
        200
    );
    for _ in 0..50 {
        assert_eq!(
            status_of(&rig.call_with_token("GET", "/orders/1.0.0/items", &app_token(&rig, "unlimited"))),
            200
        );
    }
    rig.clock.advance(retry);
    assert_eq!(status_of(&rig.call_with_token("GET", "/orders/1.0.0/items", &token)), 200);
}

/// Older WSO2 clients put the key type in the scope (`scope=PRODUCTION`).
#[test]
fn production_in_the_scope_selects_the_key_type_and_is_not_granted() {
    struct Case {
        name: &'static str,
        scope: &'static str,
        status: u16,
        granted: &'static str,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "PRODUCTION alone asks for the default scope", scope: "PRODUCTION",
               status: 200, granted: "orders:read orders:write" },
        Case { name: "PRODUCTION next to a scope", scope: "PRODUCTION orders:read", status: 200, granted: "orders:read" },
        Case { name: "SANDBOX with the production pair", scope: "SANDBOX", status: 400, granted: "" },
        Case { name: "another unknown scope stays invalid", scope: "PRODUCTION admin", status: 400, granted: "" },
    ];
    let rig = Rig::demo();
    for Case { name, scope, status, granted } in table {
        let reply = rig.token(&format!("grant_type=password&username=admin&password=admin&scope={scope}"));
        assert_eq!(reply.0.status, status, "{name}: {}", reply.text());
        if status == 200 {
            assert_eq!(reply.field("scope"), granted, "{name}");
        } else {
            assert_eq!(reply.field("error"), "invalid_scope", "{name}");
        }
    }
}

fn forwarded(outcome: Outcome) -> Forward {
    match outcome {
        Outcome::Forward(forward) => forward,
        Outcome::Deny(Denial { response, .. }) => panic!("not forwarded: {}", Reply(response).text()),
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
        Case { name: "the flat list, sandbox", key: "blocked-sandbox", path: "/api/orders", status: 403,
               error: "sandbox_not_served", upstream: None, tier: None },
        Case { name: "the flat list, production", key: "blocked", path: "/api/orders", status: 200,
               error: "", upstream: None, tier: None },
    ];
    let rig = Rig::with_config(SUBSCRIPTIONS);
    let denied_on = |path: &str| usize::from(path.starts_with("/stock"));
    let mut denied = [0i64; 2];
    for Case { name, key, path, status, error, upstream, tier } in table {
        // Refusals outside every API count in the totals only.
        if status == 403 && !path.starts_with("/api/") {
            denied[denied_on(path)] += 1;
        }
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
    // Subscription denials by API (Orders 0, Stock 1), next to the totals.
    for (api, count) in denied.into_iter().enumerate() {
        assert_eq!(
            rig.metrics.get(Metric::Api { api, stat: ApiStat::SubscriptionDenied }),
            count,
            "API {api}"
        );
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
    // Stats by API: Orders is API 0.
    assert_eq!(rig.metrics.get(Metric::Api { api: 0, stat: ApiStat::Throttled }), 2);
    assert_eq!(rig.metrics.get(Metric::Api { api: 1, stat: ApiStat::Throttled }), 0);
}

/// The key type in the scope against the pair that authenticated, and refresh keeping the key type.
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

/// Registered applications subscribe through the admin endpoint.
const REGISTERED: &str = r#"{
  "tiers": [ { "name": "Tiny", "requests": 2, "per": "minute" } ],
  "apis": [ { "name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0", "sandbox_upstream": "sandbox",
              "resources": [ { "methods": ["GET"], "path": "/items", "scopes": [] } ] } ],
  "users": [ { "username": "admin", "password": "admin", "admin": true },
             { "username": "other", "password": "other", "admin": true } ],
  "applications": [ { "consumer_key": "demo-app", "consumer_secret": "demo-secret" } ],
  "registration": { "grant_types": ["client_credentials"] }
}"#;

const ADMIN: (&str, &str) = ("admin", "admin");

fn admin_call(rig: &Rig, who: (&str, &str), method: &str, path: &str, body: Option<&str>) -> Reply {
    let basic = format!("Basic {}", encode_basic_credentials(who.0, who.1));
    let content_type = body.map(|_| "application/json");
    rig.endpoint(method, path, Some(&basic), content_type, body.unwrap_or_default())
}

/// A registered application: its id, secret and subscriptions path.
fn registered_app(rig: &Rig) -> (String, String, String) {
    let reply =
        register(rig, ADMIN, "application/json", r#"{"clientName":"shop","grantType":"client_credentials"}"#);
    assert_eq!(reply.0.status, 201, "{}", reply.text());
    let (id, secret) = (reply.field("clientId"), reply.field("clientSecret"));
    let path = format!("{REGISTER}/{id}/subscriptions");
    (id, secret, path)
}

#[test]
fn a_registered_application_subscribes_changes_tier_is_blocked_and_unsubscribes() {
    let rig = Rig::with_config(REGISTERED);
    let (id, secret, path) = registered_app(&rig);
    let token = rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").field("access_token");
    let status = |rig: &Rig| error_code(&rig.call_with_token("GET", ITEMS, &token));
    assert_eq!(status(&rig), "subscription_required");
    let created = admin_call(&rig, ADMIN, "POST", &path, Some(r#"{"api":"Orders","tier":"Tiny"}"#));
    assert_eq!(created.0.status, 201, "{}", created.text());
    assert_eq!(
        created.json(),
        serde_json::json!({"api": "Orders", "version": "1.0.0", "context": "/orders/1.0.0", "tier": "Tiny", "status": "UNBLOCKED"})
    );
    let forward = forwarded(rig.call_with_token("GET", ITEMS, &token));
    assert_eq!(header(&forward, TIER_HEADER), Some("Tiny"));
    assert_eq!(status(&rig), "");
    assert_eq!(status(&rig), "throttled", "the Tiny tier's 2 requests are used up");
    let listed = admin_call(&rig, ADMIN, "GET", &path, None);
    assert_eq!(listed.json()["count"], 1);
    assert_eq!(listed.json()["list"][0]["tier"], "Tiny");
    let gold = admin_call(&rig, ADMIN, "PUT", &format!("{path}/Orders"), Some(r#"{"tier":"Gold"}"#));
    assert_eq!((gold.0.status, gold.field("tier")), (200, "Gold".to_owned()), "{}", gold.text());
    assert_eq!(status(&rig), "", "a new tier counts afresh");
    for (state, error) in [
        ("BLOCKED", "subscription_blocked"),
        ("PROD_ONLY_BLOCKED", "subscription_blocked"),
        ("UNBLOCKED", ""),
    ] {
        let body = format!(r#"{{"status":"{state}"}}"#);
        let changed = admin_call(&rig, ADMIN, "PUT", &format!("{path}/Orders"), Some(&body));
        assert_eq!(changed.field("status"), state);
        assert_eq!(status(&rig), error, "{state}");
    }
    assert_eq!(admin_call(&rig, ADMIN, "GET", &format!("{path}/Orders"), None).field("status"), "UNBLOCKED");
    assert_eq!(admin_call(&rig, ADMIN, "DELETE", &format!("{path}/Orders"), None).0.status, 204);
    assert_eq!(status(&rig), "subscription_required");
    assert_eq!(admin_call(&rig, ADMIN, "GET", &path, None).json()["count"], 0);
    // Deleting the application takes its subscriptions (and tokens) with it.
    admin_call(&rig, ADMIN, "POST", &path, Some(r#"{"api":"Orders"}"#));
    assert_eq!(status(&rig), "");
    assert_eq!(admin_call(&rig, ADMIN, "DELETE", &format!("{REGISTER}/{id}"), None).0.status, 204);
    assert_eq!(status(&rig), "invalid_token");
    assert_eq!(admin_call(&rig, ADMIN, "GET", &path, None).0.status, 404);
}

#[test]
fn subscription_requests_get_clear_4xx_errors() {
    struct Case {
        name: &'static str,
        who: (&'static str, &'static str),
        method: &'static str,
        /// After `<registration endpoint>/<client id>`.
        suffix: &'static str,
        body: Option<&'static str>,
        status: u16,
        error: &'static str,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "unknown API", who: ADMIN, method: "POST", suffix: "/subscriptions",
               body: Some(r#"{"api":"Nope"}"#), status: 400, error: "invalid_request" },
        Case { name: "unknown tier", who: ADMIN, method: "POST", suffix: "/subscriptions",
               body: Some(r#"{"api":"Orders","tier":"Platinum"}"#), status: 400, error: "invalid_request" },
        Case { name: "unknown status", who: ADMIN, method: "POST", suffix: "/subscriptions",
               body: Some(r#"{"api":"Orders","status":"active"}"#), status: 400, error: "invalid_request" },
        Case { name: "not JSON", who: ADMIN, method: "POST", suffix: "/subscriptions",
               body: Some("api=Orders"), status: 400, error: "invalid_request" },
        Case { name: "an unknown field", who: ADMIN, method: "POST", suffix: "/subscriptions",
               body: Some(r#"{"api":"Orders","tierr":"Gold"}"#), status: 400, error: "invalid_request" },
        Case { name: "subscribed twice", who: ADMIN, method: "POST", suffix: "/subscriptions",
               body: Some(r#"{"api":"Orders"}"#), status: 409, error: "subscription_exists" },
        Case { name: "a change of nothing", who: ADMIN, method: "PUT", suffix: "/subscriptions/Orders",
               body: Some("{}"), status: 400, error: "invalid_request" },
        Case { name: "a change to an unknown tier", who: ADMIN, method: "PUT", suffix: "/subscriptions/Orders",
               body: Some(r#"{"tier":"Nope"}"#), status: 400, error: "invalid_request" },
        Case { name: "not subscribed", who: ADMIN, method: "DELETE", suffix: "/subscriptions/Stock",
               body: None, status: 404, error: "not_found" },
        Case { name: "another admin's application", who: ("other", "other"), method: "GET", suffix: "/subscriptions",
               body: None, status: 404, error: "not_found" },
        Case { name: "a wrong password", who: ("admin", "wrong"), method: "GET", suffix: "/subscriptions",
               body: None, status: 401, error: "invalid_client" },
        Case { name: "not an admin's method", who: ADMIN, method: "PATCH", suffix: "/subscriptions",
               body: None, status: 405, error: "invalid_request" },
    ];
    let rig = Rig::with_config(REGISTERED);
    let (id, _, path) = registered_app(&rig);
    assert_eq!(admin_call(&rig, ADMIN, "POST", &path, Some(r#"{"api":"Orders"}"#)).0.status, 201);
    for Case { name, who, method, suffix, body, status, error } in table {
        let reply = admin_call(&rig, who, method, &format!("{REGISTER}/{id}{suffix}"), body);
        assert_eq!(reply.0.status, status, "{name}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{name}");
    }
    // No JSON content type: refused before the body is read.
    let basic = format!("Basic {}", encode_basic_credentials("admin", "admin"));
    let plain = rig.endpoint("POST", &path, Some(&basic), Some("text/plain"), r#"{"api":"Orders"}"#);
    assert_eq!(plain.0.status, 400);
    // Nothing refused changed the subscription.
    assert_eq!(admin_call(&rig, ADMIN, "GET", &path, None).json()["list"][0]["tier"], "Unlimited");
    // A configured application is no registered one.
    let configured = admin_call(&rig, ADMIN, "GET", &format!("{REGISTER}/demo-app/subscriptions"), None);
    assert_eq!(configured.0.status, 404);
}

#[test]
fn an_allowed_request_of_a_rated_tier_tells_the_client_what_is_left() {
    let rig = Rig::with_config(SUBSCRIPTIONS);
    let token = app_token(&rig, "tiny");
    let first = forwarded(rig.call_with_token("GET", ITEMS, &token));
    let find = |forward: &Forward, name: &str| {
        forward.response_headers.iter().find(|(n, _)| *n == name).map(|(_, value)| value.clone())
    };
    assert_eq!(find(&first, "ratelimit-policy").as_deref(), Some("\"Tiny\";q=2;w=60"));
    let left = find(&first, "ratelimit").unwrap();
    assert!(left.starts_with("\"Tiny\";r=1;t="), "{left}");
    let second = forwarded(rig.call_with_token("GET", ITEMS, &token));
    assert!(find(&second, "ratelimit").unwrap().starts_with("\"Tiny\";r=0;t="));
    // A window less than half used: nothing to tell yet (each header is a host call).
    let bronze = forwarded(rig.call_with_token("GET", ITEMS, &app_token(&rig, "prod-blocked-sandbox")));
    assert!(bronze.response_headers.is_empty(), "{:?}", bronze.response_headers);
    // Unlimited and the flat resources: nothing to tell, no response header (no host call).
    let unlimited = forwarded(rig.call_with_token("GET", ITEMS, &app_token(&rig, "unlimited")));
    assert!(unlimited.response_headers.is_empty());
    let flat = forwarded(rig.call_with_token("GET", "/api/orders", &app_token(&rig, "unlimited")));
    assert!(flat.response_headers.is_empty());
}
