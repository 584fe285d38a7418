//! The backend JWT (WSO2's `X-JWT-Assertion`): its claims and signature, the client's copy
//! removed everywhere, and a warm Bearer hit that reuses the assertion instead of signing.

use super::*;
use crate::config::tests::rfc8037_signing_key;
use crate::gateway::backend_jwt::ASSERTION_HEADER;
use crate::jose::{verify, Algorithm};

/// Two APIs, Orders with a backend JWT and Stock without; demo-app is subscribed to both.
fn backend_jwt_rig() -> Rig {
    Rig::with_config(&config_with(&crate::config::tests::demo_with_lifecycle(), |v| {
        v["signing"] = serde_json::json!({"keys": [rfc8037_signing_key()]});
        v["apis"] = serde_json::json!([
            { "name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0", "backend_jwt": {},
              "resources": [
                { "methods": ["GET"], "path": "/items", "scopes": ["orders:read"] },
                { "methods": ["GET"], "path": "/ping", "public": true } ] },
            { "name": "Stock", "version": "2.0", "context": "/stock/2.0",
              "resources": [ { "methods": ["GET"], "path": "/", "scopes": [] } ] }
        ]);
        v["applications"][0]["subscriptions"] =
            serde_json::json!([{ "api": "Orders", "tier": "Gold" }, { "api": "Stock" }]);
    }))
}

const ITEMS: &str = "/orders/1.0.0/items";

/// The rig's tier windows with a token epoch, as Envoy's workers have one: without an epoch
/// nothing may be remembered (`state::remembered`), so the rig alone would sign every time.
struct WithEpoch<'r> {
    rig: &'r Rig,
    token_epoch: std::cell::Cell<u64>,
}

impl crate::host::Coordination for WithEpoch<'_> {
    fn window(&self, counter: usize) -> Option<u64> {
        self.rig.metrics.window(counter)
    }
    fn count_in_window(&self, counter: usize) {
        self.rig.metrics.count_in_window(counter)
    }
    fn restart_window(&self, counter: usize, value: u64) {
        self.rig.metrics.restart_window(counter, value)
    }
    fn token_epoch(&self) -> Option<u64> {
        Some(self.token_epoch.get())
    }
    fn tokens_changed(&self) {
        self.token_epoch.set(self.token_epoch.get().wrapping_add(1));
    }
    fn failure_epoch(&self) -> Option<u64> {
        None
    }
    fn failure_recorded(&self) {}
}

impl<'r> WithEpoch<'r> {
    fn new(rig: &'r Rig) -> Self {
        WithEpoch { rig, token_epoch: std::cell::Cell::new(0) }
    }

    fn gateway(&self) -> Gateway<'_> {
        Gateway::new(&self.rig.config, Host { coordination: self, ..self.rig.host() })
    }

    /// The assertion a GET of `path` with `token` is forwarded with.
    fn assertion(&self, path: &str, token: &str) -> Option<String> {
        let authorization = format!("Bearer {token}");
        let request = ApiRequest { method: "GET", path, authorization: Some(&authorization) };
        assertion_of(&forwarded(self.gateway().check_bearer(&request)))
    }

    fn revoke(&self, token: &str) -> u16 {
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
        let body = format!("token={token}");
        let request = EndpointRequest {
            client_address: None,
            method: "POST",
            path: "/revoke",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: body.as_bytes(),
        };
        self.gateway().serve(&Endpoint::Revocation, &request).status
    }
}

fn forwarded(outcome: Outcome) -> Forward {
    match outcome {
        Outcome::Forward(forward) => forward,
        Outcome::Deny(Denial { response, .. }) => panic!("not forwarded: {}", Reply(response).text()),
    }
}

fn assertion_of(forward: &Forward) -> Option<String> {
    forward.set_headers.iter().find(|(name, _)| *name == ASSERTION_HEADER).map(|(_, value)| value.clone())
}

/// The assertion's claims, once its signature verifies against the gateway's own key set.
fn verified_claims(rig: &Rig, assertion: &str) -> serde_json::Map<String, serde_json::Value> {
    let key_set = &rig.config.signing.as_ref().unwrap().key_set;
    let verified = verify(key_set, assertion, &Algorithm::ALL).expect("signed by the gateway's key");
    assert_eq!(verified.typ.as_deref(), Some("JWT"));
    assert_eq!(verified.kid, "rfc8037");
    verified.claims
}

#[test]
fn the_assertion_says_who_called_which_api_signed_by_the_active_key() {
    let rig = backend_jwt_rig();
    struct Case {
        name: &'static str,
        grant: &'static str,
        sub: &'static str,
        user_type: &'static str,
        end_user: Option<&'static str>,
    }
    let table = [
        Case {
            name: "a client's own token",
            grant: "grant_type=client_credentials&scope=orders:read",
            sub: "demo-app",
            user_type: "APPLICATION",
            end_user: None,
        },
        Case {
            name: "a user's token",
            grant: "grant_type=password&username=admin&password=admin&scope=orders:read",
            sub: "admin",
            user_type: "APPLICATION_USER",
            end_user: Some("admin"),
        },
    ];
    for Case { name, grant, sub, user_type, end_user } in table {
        let token = rig.token(grant).field("access_token");
        let forward = forwarded(rig.call_with_token("GET", ITEMS, &token));
        let assertion = assertion_of(&forward).unwrap_or_else(|| panic!("{name}: no assertion"));
        assert!(!assertion.contains(&token), "{name}: the access token never travels in it");
        let claims = verified_claims(&rig, &assertion);
        let text = |claim: &str| claims.get(claim).and_then(|value| value.as_str()).map(str::to_owned);
        assert_eq!(text("iss").as_deref(), Some("http://127.0.0.1:8080"), "{name}");
        assert_eq!(text("sub").as_deref(), Some(sub), "{name}");
        assert_eq!(
            text("aud").as_deref(),
            Some("http://127.0.0.1:8080/orders/1.0.0"),
            "{name}: the API's resource"
        );
        assert_eq!(text("client_id").as_deref(), Some("demo-app"), "{name}");
        assert_eq!(text("scope").as_deref(), Some("orders:read"), "{name}");
        assert_eq!(text("http://wso2.org/claims/apiname").as_deref(), Some("Orders"), "{name}");
        assert_eq!(text("http://wso2.org/claims/apicontext").as_deref(), Some("/orders/1.0.0"), "{name}");
        assert_eq!(text("http://wso2.org/claims/version").as_deref(), Some("1.0.0"), "{name}");
        assert_eq!(text("http://wso2.org/claims/tier").as_deref(), Some("Gold"), "{name}");
        assert_eq!(text("http://wso2.org/claims/keytype").as_deref(), Some("PRODUCTION"), "{name}");
        assert_eq!(text("http://wso2.org/claims/usertype").as_deref(), Some(user_type), "{name}");
        assert_eq!(text("http://wso2.org/claims/enduser").as_deref(), end_user, "{name}");
        let now = 1_700_000_000;
        assert_eq!(claims["iat"], now, "{name}");
        assert_eq!(claims["exp"], now + 300, "{name}: the default lifetime");
        assert!(claims.get("jti").is_none(), "{name}: reused across requests, so no per-request id");
    }
}

#[test]
fn a_clients_assertion_header_is_removed_on_every_api_and_only_the_gateways_is_set() {
    let rig = backend_jwt_rig();
    let token = rig.token("grant_type=client_credentials&scope=orders:read").field("access_token");
    let public = forwarded(rig.call("GET", "/orders/1.0.0/ping", None));
    let without = forwarded(rig.call_with_token("GET", "/stock/2.0", &token));
    let flat = forwarded(rig.call_with_token("GET", "/api/orders", &token));
    let with = forwarded(rig.call_with_token("GET", ITEMS, &token));
    for (name, forward) in
        [("public route", &public), ("API without it", &without), ("flat resources", &flat)]
    {
        assert!(forward.remove_headers.contains(&ASSERTION_HEADER), "{name}: a forged one is stripped");
        assert_eq!(assertion_of(forward), None, "{name}: the gateway sets none");
    }
    assert!(with.remove_headers.contains(&ASSERTION_HEADER));
    assert!(assertion_of(&with).is_some());
    for (forward_authorization, forward_method_overrides) in [(true, false), (false, true), (true, true)] {
        let rig = Rig::with_config(&config_with(&serde_json::to_string(&demo_json()).unwrap(), |v| {
            v["forward_authorization"] = forward_authorization.into();
            v["forward_method_overrides"] = forward_method_overrides.into();
        }));
        let forward = forwarded(rig.call("GET", "/api/public/ping", None));
        assert!(forward.remove_headers.contains(&ASSERTION_HEADER), "whatever else is kept");
    }
}

fn demo_json() -> serde_json::Value {
    serde_json::from_str(DEMO).unwrap()
}

#[test]
fn a_warm_hit_reuses_the_assertion_until_it_nears_its_expiry() {
    let rig = backend_jwt_rig();
    let host = WithEpoch::new(&rig);
    let token = rig.token("grant_type=client_credentials&scope=orders:read").field("access_token");
    let first = host.assertion(ITEMS, &token).unwrap();
    // A signature made now would carry a later `iat`: the same bytes mean no signing.
    rig.clock.advance(10);
    assert_eq!(host.assertion(ITEMS, &token).unwrap(), first, "the second hit signs nothing");
    rig.clock.advance(259); // 269 s in: more than 30 s of its 300 left
    assert_eq!(host.assertion(ITEMS, &token).unwrap(), first, "still reused");
    rig.clock.advance(2); // 271 s in: less than 30 s left
    let renewed = host.assertion(ITEMS, &token).unwrap();
    assert_ne!(renewed, first, "signed afresh before it expires");
    assert_eq!(verified_claims(&rig, &renewed)["iat"], 1_700_000_271u64);
    rig.clock.advance(10);
    assert_eq!(host.assertion(ITEMS, &token).unwrap(), renewed, "and the new one is reused");
}

#[test]
fn without_a_token_epoch_every_hit_signs_afresh() {
    let rig = backend_jwt_rig();
    let token = rig.token("grant_type=client_credentials&scope=orders:read").field("access_token");
    let first = assertion_of(&forwarded(rig.call_with_token("GET", ITEMS, &token))).unwrap();
    rig.clock.advance(10);
    let second = assertion_of(&forwarded(rig.call_with_token("GET", ITEMS, &token))).unwrap();
    assert_eq!(verified_claims(&rig, &second)["iat"], 1_700_000_010u64, "nothing tells it when to forget");
    assert_ne!(second, first);
}

#[test]
fn a_revoked_token_gets_no_assertion_and_an_ended_token_moves_every_remembered_one() {
    let rig = backend_jwt_rig();
    let host = WithEpoch::new(&rig);
    let kept = rig.token("grant_type=client_credentials&scope=orders:read").field("access_token");
    let revoked = rig.token("grant_type=client_credentials&scope=orders:read").field("access_token");
    let first = host.assertion(ITEMS, &kept).unwrap();
    assert!(host.assertion(ITEMS, &revoked).is_some());
    rig.clock.advance(5);
    assert_eq!(host.revoke(&revoked), 200);
    let authorization = format!("Bearer {revoked}");
    let request = ApiRequest { method: "GET", path: ITEMS, authorization: Some(&authorization) };
    assert!(matches!(host.gateway().check_bearer(&request), Outcome::Deny(_)), "refused, nothing signed");
    // The epoch moved: the kept token's remembered assertion is not trusted, it is signed again.
    let after = host.assertion(ITEMS, &kept).unwrap();
    assert_ne!(after, first);
    assert_eq!(verified_claims(&rig, &after)["iat"], 1_700_000_005u64);
}

#[test]
fn another_token_with_the_same_claims_gets_its_own_signature() {
    let rig = backend_jwt_rig();
    let host = WithEpoch::new(&rig);
    let token = rig.token("grant_type=client_credentials&scope=orders:read").field("access_token");
    let first = host.assertion(ITEMS, &token).unwrap();
    rig.clock.advance(10);
    let other = rig.token("grant_type=client_credentials&scope=orders:read").field("access_token");
    let others = host.assertion(ITEMS, &other).unwrap();
    assert_eq!(verified_claims(&rig, &others)["iat"], 1_700_000_010u64, "another token: its own signature");
    assert_ne!(others, first);
}

#[test]
fn a_backend_jwt_needs_keys_an_issuer_and_a_short_lifetime() {
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let json = config_with(&crate::config::tests::demo_with_lifecycle(), |v| {
            v["signing"] = serde_json::json!({"keys": [rfc8037_signing_key()]});
            v["apis"] = serde_json::json!([{ "name": "Orders", "version": "1", "context": "/orders",
                "backend_jwt": {}, "resources": [] }]);
            change(v);
        });
        Config::from_json(json.as_bytes()).err().map(|error| error.to_string())
    };
    assert_eq!(with(&|_| {}), None);
    let disabled = with(&|v| {
        v.as_object_mut().unwrap().remove("signing");
        v["apis"][0]["backend_jwt"]["enabled"] = false.into();
    });
    assert_eq!(disabled, None, "turned off, it needs nothing");
    let cases: [(&str, &dyn Fn(&mut serde_json::Value), &str); 5] = [
        ("no signing keys", &|v| drop(v.as_object_mut().unwrap().remove("signing")), "apis[0].backend_jwt"),
        ("no issuer", &|v| drop(v.as_object_mut().unwrap().remove("issuer")), "apis[0].backend_jwt"),
        ("too short", &|v| v["apis"][0]["backend_jwt"]["lifetime_seconds"] = 59.into(), "lifetime_seconds"),
        ("too long", &|v| v["apis"][0]["backend_jwt"]["lifetime_seconds"] = 3601.into(), "lifetime_seconds"),
        ("unknown field", &|v| v["apis"][0]["backend_jwt"]["header"] = "x-other".into(), "header"),
    ];
    for (name, change, mentions) in cases {
        let error = with(change).unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(error.contains(mentions), "{name}: {error}");
    }
}
