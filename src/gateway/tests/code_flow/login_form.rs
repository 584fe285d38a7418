//! The login page and its form: the sealed login handle, lockout per address, the hashing
//! budget, and what the metadata says of the flow.

use super::*;

#[test]
fn the_login_page_names_where_the_code_goes() {
    let page = Rig::new().authorize(&Rig::good_query("web-app", "https://app.example/cb"));
    assert_eq!(page.0.status, 200, "{}", page.text());
    assert!(page.text().contains("sent back to <strong>https://app.example</strong>"), "{}", page.text());
}

#[test]
fn the_login_handle_works_once_and_forgeries_do_nothing() {
    let rig = Rig::new();
    let page = rig.authorize(&Rig::good_query("demo-spa", CALLBACK));
    let handle = page.handle();
    assert_eq!(rig.sign_in(&handle, "alice", "wonderland").0.status, 302);
    let replay = rig.sign_in(&handle, "alice", "wonderland");
    assert_eq!((replay.0.status, replay.0.header("location")), (400, None));
    let forged = rig.sign_in("forged", "alice", "wonderland");
    assert_eq!((forged.0.status, forged.0.header("location")), (400, None));
}

#[test]
fn a_tampered_foreign_or_expired_handle_gets_the_expired_page() {
    let rig = Rig::new();
    let query = Rig::good_query("demo-spa", CALLBACK);
    let handle = rig.authorize(&query).handle();
    let mut tampered = handle.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    // Another deployment (its own store) seals under its own key.
    let foreign = Rig::new().authorize(&query).handle();
    struct Case {
        name: &'static str,
        handle: String,
        after_secs: u64,
    }
    let cases = [
        Case { name: "one character changed", handle: String::from_utf8(tampered).unwrap(), after_secs: 0 },
        Case { name: "sealed under another key", handle: foreign, after_secs: 0 },
        Case { name: "past the login lifetime (300 s)", handle: handle.clone(), after_secs: 300 },
    ];
    for case in cases {
        rig.clock.advance(case.after_secs);
        let reply = rig.sign_in(&case.handle, "alice", "wonderland");
        assert_eq!((reply.0.status, reply.0.header("location")), (400, None), "{}", case.name);
        assert!(reply.text().contains("expired or was already used"), "{}: {}", case.name, reply.text());
    }
}

#[test]
fn login_pages_store_nothing_so_no_caller_can_fill_a_table() {
    let rig = Rig::new();
    let query = Rig::good_query("demo-spa", CALLBACK);
    // The first page ever made the handles' key; every page after it stores nothing.
    assert_eq!(rig.authorize(&query).0.status, 200);
    let stored = (rig.shared.key_count(), rig.shared.stored_bytes());
    for method in ["GET", "HEAD"] {
        for _ in 0..1500 {
            let page = rig.request(method, &format!("/authorize?{query}"), None, "");
            assert_eq!(page.0.status, 200, "{method}: {}", page.text());
        }
    }
    assert_eq!((rig.shared.key_count(), rig.shared.stored_bytes()), stored);
    let page = rig.authorize(&query);
    assert_eq!(rig.sign_in(&page.handle(), "alice", "wonderland").0.status, 302, "sign-ins still work");
}

#[test]
fn a_wrong_password_shows_the_page_again_then_the_lockout_holds() {
    let rig = Rig::new();
    let page = rig.authorize(&Rig::good_query("demo-spa", CALLBACK));
    let mut handle = page.handle();
    for _ in 0..3 {
        let again = rig.sign_in(&handle, "alice", "nope");
        assert_eq!(again.0.status, 400);
        assert!(again.text().contains("wrong"), "{}", again.text());
        assert!(!again.text().contains("nope"), "the password is never echoed");
        assert_ne!(again.handle(), handle, "a new handle each time");
        handle = again.handle();
    }
    let locked = rig.sign_in(&handle, "alice", "wonderland");
    assert_eq!(locked.0.status, 429, "locked out even with the right password");
    assert!(locked.text().contains("Too many"));
}

#[test]
fn failures_at_the_form_lock_neither_the_password_grant_nor_other_addresses_rfc6819_5_1_4_2_3() {
    let config = CONFIG.replace(
        r#""consumer_secret": "demo-secret","#,
        r#""consumer_secret": "demo-secret", "grant_types": ["password"],"#,
    );
    let rig = Rig::with_config(&config);
    let attacker = Some("203.0.113.7:40000");
    let mut handle = rig.fresh_handle();
    // Far more than lockout.max_failures (3), anonymously, at the form.
    for _ in 0..10 {
        let again = rig.sign_in_from(attacker, &handle, "alice", "nope");
        assert!(matches!(again.0.status, 400 | 429), "{}", again.0.status);
        handle = again.handle();
    }
    // The attacker's address is held back, on any of its ports, and told for how long.
    let held = rig.sign_in_from(Some("203.0.113.7:40001"), &handle, "alice", "wonderland");
    assert_eq!((held.0.status, held.0.header("retry-after")), (429, Some("300")));
    // The password grant (which needs the client's secret first) is not locked...
    let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
    let grant =
        rig.request("POST", "/token", Some(&basic), "grant_type=password&username=alice&password=wonderland");
    assert_eq!(grant.0.status, 200, "{}", grant.text());
    // ...nor is the form for alice anywhere else.
    let elsewhere = rig.sign_in_from(Some("198.51.100.2:5555"), &rig.fresh_handle(), "alice", "wonderland");
    assert_eq!(elsewhere.0.status, 302, "{}", elsewhere.text());
    // And once the attacker's lockout is over, the right password works from there too.
    rig.clock.advance(301);
    let later = rig.sign_in_from(attacker, &rig.fresh_handle(), "alice", "wonderland");
    assert_eq!(later.0.status, 302, "{}", later.text());
}

/// CONFIG with alice's password as a PBKDF2 hash of 1,000 iterations, demo-app allowed the
/// password grant, and a login form budget of `per_second` iterations.
fn pbkdf2_config(per_second: u64) -> String {
    let hash =
        SecretVerifier::hash_pbkdf2("wonderland", b"alice-salt-16byt", 1_000).unwrap().to_config_hash();
    CONFIG
        .replace(r#""password": "wonderland""#, &format!(r#""password_hash": "{hash}""#))
        .replace(r#""consumer_secret": "demo-secret","#, r#""consumer_secret": "demo-secret", "grant_types": ["password"],"#)
        .replace(
            r#""issuer": "https://127.0.0.1:8243","#,
            &format!(r#""issuer": "https://127.0.0.1:8243", "authorization": {{ "pbkdf2_iterations_per_sec": {per_second} }},"#),
        )
}

#[test]
fn the_form_hashes_within_its_budget_then_is_busy_without_hashing() {
    // Two PBKDF2 checks of 1,000 iterations a second per worker.
    let rig = Rig::with_config(&pbkdf2_config(2_000));
    let from = Some("203.0.113.7:40000");
    // An unknown username runs the decoy, as dear as alice's hash: it is counted too.
    for (username, expected) in [("nobody", 400), ("alice", 400)] {
        let reply = rig.sign_in_from(from, &rig.fresh_handle(), username, "nope");
        assert_eq!(reply.0.status, expected, "{username}");
    }
    assert_eq!(rig.metrics.get(Metric::SignInSlowHashes), 2);
    // The budget is spent: fresh names and even the right password wait, and nothing is hashed.
    for (username, password) in [("fresh1", "x"), ("fresh2", "x"), ("alice", "wonderland")] {
        let busy = rig.sign_in_from(from, &rig.fresh_handle(), username, password);
        assert_eq!((busy.0.status, busy.0.header("retry-after")), (503, Some("1")), "{username}");
        assert!(busy.text().contains("busy"), "{}", busy.text());
    }
    assert_eq!(rig.metrics.get(Metric::SignInSlowHashes), 2, "no hashing past the budget");
    assert_eq!(rig.metrics.get(Metric::SignInBusy), 3);
    // A busy form counts no failure: alice is not held back once the next second comes. And the
    // password grant, behind its client secret, never waits for the form's budget.
    let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
    let grant =
        rig.request("POST", "/token", Some(&basic), "grant_type=password&username=alice&password=wonderland");
    assert_eq!(grant.0.status, 200, "{}", grant.text());
    rig.clock.advance(1);
    assert_eq!(rig.sign_in_from(from, &rig.fresh_handle(), "alice", "wonderland").0.status, 302);
    assert_eq!(rig.metrics.get(Metric::SignInSlowHashes), 3);
}

#[test]
fn metadata_names_the_code_flow() {
    let rig = Rig::new();
    let reply = rig.request("GET", "/.well-known/oauth-authorization-server", None, "");
    let metadata = reply.json();
    assert_eq!(metadata["authorization_endpoint"], format!("{ISSUER}/authorize"));
    assert_eq!(metadata["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(metadata["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(metadata["authorization_response_iss_parameter_supported"], true);
    let methods = metadata["token_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(methods.contains(&serde_json::json!("none")));
}
