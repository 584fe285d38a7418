//! Failed logins lock a name out for a while (RFC 6819 §5.1.4.2.3), made-up names cannot
//! lock known ones out, and the sweep drops grants whose owner can never stand again.

use super::*;

#[test]
fn repeated_failures_lock_a_client_or_user_out_for_a_while() {
    let rig = Rig::demo();
    for _ in 0..10 {
        assert_eq!(rig.post_as("demo-app", "guess", "/token", "grant_type=client_credentials").0.status, 401);
    }
    // Locked: even the right secret is refused, and no secret is checked.
    let locked = rig.post_as("demo-app", "demo-secret", "/token", "grant_type=client_credentials");
    assert_eq!((locked.0.status, locked.field("error")), (429, "temporarily_unavailable".to_owned()));
    assert_eq!(locked.0.header("retry-after"), Some("300"));
    assert_eq!(locked.0.header("cache-control"), Some("no-store"));
    // While the client is locked every request it makes is refused; the lock ends after lockout_secs.
    for _ in 0..10 {
        let reply = rig.token("grant_type=password&username=nobody&password=guess");
        assert_eq!(reply.0.status, 429, "{}", reply.text());
    }
    rig.clock.advance(300);
    assert_eq!(rig.token("grant_type=client_credentials").0.status, 200);
    // The password grant counts per username, known or not.
    for _ in 0..10 {
        assert_eq!(
            rig.token("grant_type=password&username=admin&password=guess").field("error"),
            "invalid_grant"
        );
    }
    assert_eq!(rig.token("grant_type=password&username=admin&password=admin").0.status, 429);
}

/// With never-expiring tokens, grants of a removed, re-keyed or deleted owner would keep
/// their slots for ever; the sweep drops them, and only them.
#[test]
fn the_sweep_drops_grants_whose_owner_can_never_stand_again() {
    // Never-expiring tokens, and two applications that the next config changes.
    let config_with = |leaving: &str, rekeyed_secret: &str| {
        let mut value: serde_json::Value =
            serde_json::from_str(&crate::config::tests::demo_with_lifecycle()).unwrap();
        value["access_token_validity_secs"] = (-1).into();
        let apps = value["applications"].as_array_mut().unwrap();
        apps.push(
            serde_json::json!({"consumer_key": leaving, "consumer_secret": "x", "scopes": ["orders:read"]}),
        );
        apps.push(serde_json::json!({"consumer_key": "rekeyed", "consumer_secret": rekeyed_secret, "scopes": ["orders:read"]}));
        value.to_string()
    };
    let with_apps = config_with("leaving", "x");
    let rig = Rig::with_config(&with_apps);
    let load = |json: &str| {
        rig.clock.advance(10);
        let config = Config::from_json(json.as_bytes()).unwrap();
        let now = rig.clock.now_millis().unwrap();
        let changes = CredentialChanges::record(&rig.shared, &config.credentials(), now).unwrap();
        (config, changes)
    };
    let first = load(&with_apps);
    let issue = |key: &str, secret: &str| {
        let basic = format!("Basic {}", encode_basic_credentials(key, secret));
        let request = EndpointRequest {
            client_address: None,
            method: "POST",
            path: "/token",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: b"grant_type=client_credentials",
        };
        let reply = Reply(rig.gateway_with(&first).serve(&Endpoint::Token, &request));
        assert_eq!(reply.0.status, 200, "{key}: {}", reply.text());
    };
    let payload = r#"{"clientName":"short-lived","owner":"admin","grantType":"client_credentials"}"#;
    let registered = register(&rig, ("admin", "admin"), "application/json", payload).json();
    let (client_id, secret) =
        (registered["clientId"].as_str().unwrap(), registered["clientSecret"].as_str().unwrap());
    for (key, secret) in
        [("demo-app", "demo-secret"), ("leaving", "x"), ("rekeyed", "x"), (client_id, secret)]
    {
        issue(key, secret);
    }
    let grants = || rig.metrics.get(Metric::StoreGrants);
    assert_eq!(grants(), 4);
    // A sweep under a config that knows everyone keeps everything.
    rig.gateway_with(&first).sweep_step(1, 1).unwrap();
    assert_eq!(grants(), 4);
    // A config without "leaving" and with "rekeyed" under a new secret: both grants go.
    let second = load(&config_with("someone-else", "y"));
    rig.gateway_with(&second).sweep_step(1, 1).unwrap();
    assert_eq!(grants(), 2);
    // An older config's VM, still sweeping during an update, drops nothing it merely does
    // not know: "someone-else" was configured by another config, so it is no registered client.
    let basic = format!("Basic {}", encode_basic_credentials("someone-else", "x"));
    let request = EndpointRequest {
        client_address: None,
        method: "POST",
        path: "/token",
        authorization: Some(&basic),
        content_type: Some(FORM),
        body: b"grant_type=client_credentials",
    };
    assert_eq!(rig.gateway_with(&second).serve(&Endpoint::Token, &request).status, 200);
    let stale =
        (Config::from_json(with_apps.as_bytes()).unwrap(), CredentialChanges::read(&rig.shared).unwrap());
    rig.gateway_with(&stale).sweep_step(1, 1).unwrap();
    assert_eq!(grants(), 3);
    // Deleting the registered client ends its grant at the next sweep.
    let admin = format!("Basic {}", encode_basic_credentials("admin", "admin"));
    let deleted = rig.endpoint("DELETE", &format!("{REGISTER}/{client_id}"), Some(&admin), None, "");
    assert_eq!(deleted.0.status, 204);
    rig.gateway_with(&second).sweep_step(1, 1).unwrap();
    assert_eq!(grants(), 2, "demo-app's and someone-else's grants are left");
}

/// These names share demo-app's lockout bucket under an unkeyed hash, where eight failures
/// under them would lock demo-app out without its secret; under the keyed hash they do not.
#[test]
fn made_up_names_cannot_lock_a_known_client_out() {
    let rig = Rig::demo();
    for name in [
        "spray2161",
        "spray2162",
        "spray2193",
        "spray2507",
        "spray2658",
        "spray4148",
        "spray5053",
        "spray5958",
    ] {
        assert_eq!(rig.post_as(name, "x", "/token", "grant_type=client_credentials").0.status, 401);
    }
    let reply = rig.post_as("demo-app", "demo-secret", "/token", "grant_type=client_credentials");
    assert_eq!(reply.0.status, 200, "{}", reply.text());
}

/// Junk names fill the table of unknown names, never the slots of names that exist.
#[test]
fn filling_the_table_of_unknown_names_leaves_known_names_alone() {
    let rig = Rig::demo_with(|v| v["lockout"] = serde_json::json!({ "tracked_names": 8 }));
    for i in 0..50 {
        rig.post_as(&format!("junk{i}"), "x", "/token", "grant_type=client_credentials");
        rig.token(&format!("grant_type=password&username=junk{i}&password=x"));
    }
    // Fail closed for a name the full table cannot count...
    assert_eq!(rig.post_as("made-up", "x", "/token", "grant_type=client_credentials").0.status, 429);
    // ...while the application and the user that exist still log in.
    assert_eq!(rig.token("grant_type=client_credentials").0.status, 200);
    assert_eq!(rig.token("grant_type=password&username=admin&password=admin").0.status, 200);
}
