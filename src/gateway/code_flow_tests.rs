//! The authorization code flow end to end over the in-memory host: `/authorize` (GET and
//! POST) and `/token` with `grant_type=authorization_code` (RFC 6749 §4.1, RFC 7636, RFC 9700).

use super::*;
use crate::host::metrics::Metric;
use crate::oauth::credentials::{encode_basic_credentials, SecretVerifier};
use crate::oauth::form::FormParams;
use crate::oauth::pkce::{APPENDIX_B_CHALLENGE as CHALLENGE, APPENDIX_B_VERIFIER as VERIFIER};

const FORM: &str = "application/x-www-form-urlencoded";
const CALLBACK: &str = "http://127.0.0.1:8080/console/callback";
const ISSUER: &str = "https://127.0.0.1:8243";

const CONFIG: &str = r#"{
  "issuer": "https://127.0.0.1:8243",
  "lockout": { "max_failures": 3, "window_secs": 60, "lockout_secs": 300 },
  "applications": [
    { "consumer_key": "demo-spa", "public": true, "name": "Demo <SPA>",
      "grant_types": ["authorization_code", "refresh_token"],
      "redirect_uris": ["http://127.0.0.1:8080/console/callback"],
      "scopes": ["orders:read", "orders:write"] },
    { "consumer_key": "web-app", "consumer_secret": "web-secret",
      "grant_types": ["authorization_code"],
      "redirect_uris": ["https://app.example/cb"], "scopes": ["orders:read"] },
    { "consumer_key": "demo-cli", "public": true, "application_type": "native",
      "grant_types": ["authorization_code"],
      "redirect_uris": ["http://127.0.0.1/callback"], "scopes": ["orders:read"] },
    { "consumer_key": "loopback-web", "public": true,
      "grant_types": ["authorization_code"],
      "redirect_uris": ["http://[::1]:8080/cb"], "scopes": ["orders:read"] },
    { "consumer_key": "demo-app", "consumer_secret": "demo-secret", "scopes": ["orders:read"] }
  ],
  "users": [ { "username": "alice", "password": "wonderland", "scopes": ["orders:read", "orders:write"] } ]
}"#;

/// The code flow's readings of a reply, next to the gateway tests' own.
impl Reply {
    fn location(&self) -> String {
        self.0.header("location").unwrap_or_default().to_owned()
    }
    /// The redirect's query parameters.
    fn callback(&self) -> FormParams {
        let location = self.location();
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
        FormParams::parse(query.as_bytes()).unwrap()
    }
    /// The login page's hidden handle.
    fn handle(&self) -> String {
        crate::gateway::login_handle_in(&self.text()).unwrap().to_owned()
    }
}

impl Rig {
    fn new() -> Rig {
        Rig::with_config(CONFIG)
    }

    fn request(&self, method: &str, path: &str, authorization: Option<&str>, body: &str) -> Reply {
        self.request_from(None, method, path, authorization, body)
    }

    /// [`Rig::request`] from a client address (Envoy's `source.address`).
    fn request_from(
        &self,
        client_address: Option<&str>,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> Reply {
        let gateway = self.gateway();
        let endpoint = gateway.endpoint(path).expect("an endpoint path");
        let request = EndpointRequest {
            client_address,
            method,
            path,
            authorization,
            content_type: Some(FORM),
            body: body.as_bytes(),
        };
        Reply(gateway.serve(&endpoint, &request))
    }

    fn authorize(&self, query: &str) -> Reply {
        self.request("GET", &format!("/authorize?{query}"), None, "")
    }

    fn good_query(client_id: &str, redirect_uri: &str) -> String {
        format!(
            "response_type=code&client_id={client_id}&redirect_uri={redirect_uri}&scope=orders:read\
             &state=st%26ate&code_challenge={CHALLENGE}&code_challenge_method=S256"
        )
    }

    fn sign_in(&self, handle: &str, username: &str, password: &str) -> Reply {
        self.sign_in_from(None, handle, username, password)
    }

    fn sign_in_from(&self, address: Option<&str>, handle: &str, username: &str, password: &str) -> Reply {
        let body = format!("handle={handle}&username={username}&password={password}");
        self.request_from(address, "POST", "/authorize", None, &body)
    }

    /// A fresh login page's handle for demo-spa.
    fn fresh_handle(&self) -> String {
        self.authorize(&Rig::good_query("demo-spa", CALLBACK)).handle()
    }

    /// A code for demo-spa, signed in as alice.
    fn code(&self) -> String {
        let page = self.authorize(&Rig::good_query("demo-spa", CALLBACK));
        assert_eq!(page.0.status, 200, "{}", page.text());
        let back = self.sign_in(&page.handle(), "alice", "wonderland");
        assert_eq!(back.0.status, 302, "{}", back.text());
        back.callback().get("code").unwrap().to_owned()
    }

    fn exchange(&self, code: &str, redirect_uri: &str, verifier: &str) -> Reply {
        let body = format!(
            "grant_type=authorization_code&client_id=demo-spa&code={code}&redirect_uri={redirect_uri}\
             &code_verifier={verifier}"
        );
        self.request("POST", "/token", None, &body)
    }
}

#[test]
fn the_whole_flow_issues_tokens_for_the_signed_in_user() {
    let rig = Rig::new();
    let page = rig.authorize(&Rig::good_query("demo-spa", CALLBACK));
    assert_eq!(page.0.status, 200);
    let html = page.text();
    assert!(html.contains("Demo &lt;SPA&gt;") && html.contains("orders:read"), "{html}");
    assert_eq!(page.0.header("cache-control"), Some("no-store"));
    assert!(page.0.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    let back = rig.sign_in(&page.handle(), "alice", "wonderland");
    assert_eq!(back.0.status, 302);
    assert!(back.location().starts_with(&format!("{CALLBACK}?code=")), "{}", back.location());
    let params = back.callback();
    assert_eq!(params.get("state"), Some("st&ate"));
    assert_eq!(params.get("iss"), Some(ISSUER), "RFC 9207");
    let tokens = rig.exchange(params.get("code").unwrap(), CALLBACK, VERIFIER);
    assert_eq!(tokens.0.status, 200, "{}", tokens.text());
    let body = tokens.json();
    assert_eq!(body["scope"], "orders:read");
    assert!(body["refresh_token"].is_string());
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let introspect = rig.gateway().store.find_access(&bearer[7..], rig.gateway().now().unwrap()).unwrap();
    assert_eq!(introspect.owner.user.map(|(name, _)| name).as_deref(), Some("alice"));
    // Refresh rotates as for the password grant; the public client names itself only.
    let refresh = format!(
        "grant_type=refresh_token&client_id=demo-spa&refresh_token={}",
        body["refresh_token"].as_str().unwrap()
    );
    assert_eq!(rig.request("POST", "/token", None, &refresh).0.status, 200);
}

#[test]
fn a_reused_code_is_refused_and_revokes_its_tokens_rfc6749_4_1_2() {
    let rig = Rig::new();
    let code = rig.code();
    let first = rig.exchange(&code, CALLBACK, VERIFIER).json();
    let access = first["access_token"].as_str().unwrap().to_owned();
    let now = rig.gateway().now().unwrap();
    assert!(rig.gateway().store.find_access(&access, now).is_ok());
    let again = rig.exchange(&code, CALLBACK, VERIFIER);
    assert_eq!((again.0.status, again.json()["error"].as_str()), (400, Some("invalid_grant")));
    assert!(rig.gateway().store.find_access(&access, now).is_err(), "the first grant is revoked");
}

#[test]
fn a_code_presented_without_its_verifier_is_neither_burnt_nor_replayed_rfc7636_4_6() {
    let rig = Rig::new();
    let code = rig.code();
    let stolen = |rig: &Rig| rig.exchange(&code, CALLBACK, "a0123456789a0123456789a0123456789a0123456789");
    assert_eq!(stolen(&rig).json()["error"], "invalid_grant");
    let first = rig.exchange(&code, CALLBACK, VERIFIER);
    assert_eq!(first.0.status, 200, "the client still redeems its code: {}", first.text());
    let access = first.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(stolen(&rig).json()["error"], "invalid_grant");
    let now = rig.gateway().now().unwrap();
    assert!(rig.gateway().store.find_access(&access, now).is_ok(), "a stranger's replay revokes nothing");
}

struct ExchangeCase {
    name: &'static str,
    redirect_uri: &'static str,
    verifier: &'static str,
    error: &'static str,
}

#[test]
fn the_exchange_needs_the_same_redirect_uri_and_the_verifier_rfc7636_4_6() {
    let cases = [
        ExchangeCase {
            name: "wrong verifier",
            redirect_uri: CALLBACK,
            verifier: "a0123456789a0123456789a0123456789a0123456789",
            error: "invalid_grant",
        },
        ExchangeCase {
            name: "the challenge as verifier (plain)",
            redirect_uri: CALLBACK,
            verifier: CHALLENGE,
            error: "invalid_grant",
        },
        ExchangeCase {
            name: "another port, even on loopback",
            redirect_uri: "http://127.0.0.1:9999/console/callback",
            verifier: VERIFIER,
            error: "invalid_grant",
        },
        ExchangeCase { name: "no verifier", redirect_uri: CALLBACK, verifier: "", error: "invalid_request" },
    ];
    for case in cases {
        let rig = Rig::new();
        let reply = rig.exchange(&rig.code(), case.redirect_uri, case.verifier);
        assert_eq!(reply.0.status, 400, "{}", case.name);
        assert_eq!(reply.json()["error"], case.error, "{}", case.name);
    }
}

#[test]
fn a_code_lives_at_most_its_lifetime() {
    let rig = Rig::new();
    let code = rig.code();
    rig.clock.advance(61);
    assert_eq!(rig.exchange(&code, CALLBACK, VERIFIER).json()["error"], "invalid_grant");
}

#[test]
fn another_client_cannot_redeem_the_code() {
    let rig = Rig::new();
    let code = rig.code();
    let basic = format!("Basic {}", encode_basic_credentials("web-app", "web-secret"));
    let body =
        format!("grant_type=authorization_code&code={code}&redirect_uri={CALLBACK}&code_verifier={VERIFIER}");
    assert_eq!(rig.request("POST", "/token", Some(&basic), &body).json()["error"], "invalid_grant");
}

#[test]
fn a_public_client_with_a_secret_or_another_grant_is_refused() {
    let rig = Rig::new();
    let basic = format!("Basic {}", encode_basic_credentials("demo-spa", ""));
    let reply = rig.request("POST", "/token", Some(&basic), "grant_type=client_credentials");
    assert_eq!(reply.0.status, 401);
    let reply = rig.request("POST", "/token", None, "grant_type=client_credentials&client_id=demo-spa");
    assert_eq!(reply.json()["error"], "unauthorized_client");
    let reply = rig.request("POST", "/token", None, "grant_type=client_credentials&client_id=demo-app");
    assert_eq!(reply.0.status, 401, "a confidential client still needs its secret");
}

struct PageCase {
    name: &'static str,
    query: String,
}

#[test]
fn a_bad_client_or_redirect_uri_is_a_page_never_a_redirect_rfc6749_4_1_2_1() {
    let cases = [
        PageCase { name: "unknown client", query: Rig::good_query("nobody", CALLBACK) },
        PageCase { name: "client without the code grant", query: Rig::good_query("demo-app", CALLBACK) },
        PageCase {
            name: "unregistered redirect URI",
            query: Rig::good_query("demo-spa", "https://evil.example/cb"),
        },
        PageCase {
            name: "another path on loopback",
            query: Rig::good_query("demo-spa", "http://127.0.0.1:8080/other"),
        },
        PageCase {
            name: "repeated parameter",
            query: format!("{}&client_id=demo-spa", Rig::good_query("demo-spa", CALLBACK)),
        },
        PageCase { name: "no client", query: "response_type=code".to_owned() },
    ];
    for case in cases {
        let reply = Rig::new().authorize(&case.query);
        assert_eq!(reply.0.status, 400, "{}", case.name);
        assert_eq!(reply.0.header("location"), None, "{}", case.name);
        assert!(reply.0.header("content-type").unwrap().starts_with("text/html"), "{}", case.name);
    }
}

struct RedirectCase {
    name: &'static str,
    query: String,
    error: &'static str,
}

#[test]
fn other_errors_go_back_with_state_and_iss() {
    let good = Rig::good_query("demo-spa", CALLBACK);
    let cases = [
        RedirectCase {
            name: "no PKCE",
            query: good.replace(&format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"), ""),
            error: "invalid_request",
        },
        RedirectCase { name: "plain PKCE", query: good.replace("S256", "plain"), error: "invalid_request" },
        RedirectCase {
            name: "no method",
            query: good.replace("&code_challenge_method=S256", ""),
            error: "invalid_request",
        },
        RedirectCase {
            name: "token response type",
            query: good.replace("response_type=code", "response_type=token"),
            error: "unsupported_response_type",
        },
        RedirectCase {
            name: "no response type",
            query: good.replace("response_type=code&", ""),
            error: "invalid_request",
        },
        RedirectCase {
            name: "scope beyond the client",
            query: good.replace("scope=orders:read", "scope=admin"),
            error: "invalid_scope",
        },
        RedirectCase {
            name: "malformed scope",
            query: good.replace("scope=orders:read", "scope=a%22b"),
            error: "invalid_scope",
        },
    ];
    for case in cases {
        let reply = Rig::new().authorize(&case.query);
        assert_eq!(reply.0.status, 302, "{}", case.name);
        assert!(reply.location().starts_with(CALLBACK), "{}", case.name);
        let params = reply.callback();
        assert_eq!(params.get("error"), Some(case.error), "{}", case.name);
        assert_eq!(params.get("state"), Some("st&ate"), "{}", case.name);
        assert_eq!(params.get("iss"), Some(ISSUER), "{}", case.name);
    }
}

#[test]
fn a_native_clients_loopback_redirect_may_change_its_port_rfc8252_7_3() {
    let rig = Rig::new();
    let other_port = "http://127.0.0.1:51000/callback";
    let page = rig.authorize(&Rig::good_query("demo-cli", other_port));
    assert_eq!(page.0.status, 200, "{}", page.text());
    let back = rig.sign_in(&page.handle(), "alice", "wonderland");
    assert!(back.location().starts_with(other_port));
    let code = back.callback().get("code").unwrap().to_owned();
    let body = format!(
        "grant_type=authorization_code&client_id=demo-cli&code={code}&redirect_uri={other_port}\
         &code_verifier={VERIFIER}"
    );
    assert_eq!(rig.request("POST", "/token", None, &body).0.status, 200);
}

/// RFC 9700 §4.1.3 keeps the port exception to native apps: for a web client (the default),
/// another port on the loopback address is another origin, perhaps another program.
#[test]
fn a_web_clients_loopback_redirect_keeps_its_port_rfc9700_4_1_3() {
    let rig = Rig::new();
    for (client, other_port) in
        [("demo-spa", "http://127.0.0.1:51000/console/callback"), ("loopback-web", "http://[::1]:51000/cb")]
    {
        let page = rig.authorize(&Rig::good_query(client, other_port));
        assert_eq!((page.0.status, page.0.header("location")), (400, None), "{client}: {}", page.text());
    }
    let page = rig.authorize(&Rig::good_query("demo-spa", CALLBACK));
    assert_eq!(page.0.status, 200, "the registered port still works");
}

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

struct CorsCase {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    origin: Option<&'static str>,
    status: u16,
    allow_origin: Option<&'static str>,
}

#[test]
fn cors_only_for_the_origins_of_registered_redirect_uris() {
    let cases = [
        CorsCase {
            name: "preflight, allowed",
            method: "OPTIONS",
            path: "/token",
            origin: Some("http://127.0.0.1:8080"),
            status: 204,
            allow_origin: Some("http://127.0.0.1:8080"),
        },
        CorsCase {
            name: "preflight at /revoke",
            method: "OPTIONS",
            path: "/revoke",
            origin: Some("https://app.example"),
            status: 204,
            allow_origin: Some("https://app.example"),
        },
        CorsCase {
            name: "preflight, other origin",
            method: "OPTIONS",
            path: "/token",
            origin: Some("https://evil.example"),
            status: 405,
            allow_origin: None,
        },
        CorsCase {
            name: "preflight, no origin",
            method: "OPTIONS",
            path: "/token",
            origin: None,
            status: 405,
            allow_origin: None,
        },
        CorsCase {
            name: "post, allowed",
            method: "POST",
            path: "/token",
            origin: Some("http://127.0.0.1:8080"),
            status: 400,
            allow_origin: Some("http://127.0.0.1:8080"),
        },
        CorsCase {
            name: "post, a web client's loopback origin",
            method: "POST",
            path: "/token",
            origin: Some("http://[::1]:8080"),
            status: 400,
            allow_origin: Some("http://[::1]:8080"),
        },
        CorsCase {
            name: "post, a web client's loopback origin on another port (RFC 9700 §4.1.3)",
            method: "POST",
            path: "/token",
            origin: Some("http://[::1]:9999"),
            status: 400,
            allow_origin: None,
        },
        CorsCase {
            name: "post, a native client's loopback origin on another port (RFC 8252 §7.3)",
            method: "POST",
            path: "/token",
            origin: Some("http://127.0.0.1:9999"),
            status: 400,
            allow_origin: Some("http://127.0.0.1:9999"),
        },
        CorsCase {
            name: "post, other origin",
            method: "POST",
            path: "/token",
            origin: Some("https://app.example:8443"),
            status: 400,
            allow_origin: None,
        },
        CorsCase {
            name: "post, localhost is not the loopback literal",
            method: "POST",
            path: "/token",
            origin: Some("http://localhost:8080"),
            status: 400,
            allow_origin: None,
        },
        CorsCase {
            name: "post, a loopback origin with a path is no origin",
            method: "POST",
            path: "/token",
            origin: Some("http://127.0.0.1:8080/x"),
            status: 400,
            allow_origin: None,
        },
        CorsCase {
            name: "not at /introspect",
            method: "OPTIONS",
            path: "/introspect",
            origin: Some("http://127.0.0.1:8080"),
            status: 405,
            allow_origin: None,
        },
    ];
    let rig = Rig::new();
    for case in cases {
        let gateway = rig.gateway();
        let endpoint = gateway.endpoint(case.path).unwrap();
        let request = EndpointRequest {
            client_address: None,
            method: case.method,
            path: case.path,
            authorization: None,
            content_type: Some(FORM),
            body: b"grant_type=authorization_code&client_id=demo-spa",
        };
        let response = gateway.serve_with_origin(&endpoint, &request, case.origin);
        assert_eq!(response.status, case.status, "{}", case.name);
        assert_eq!(response.header("access-control-allow-origin"), case.allow_origin, "{}", case.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Registered clients (RFC 7591 `redirect_uris`, WSO2 v0.17 `callbackUrl`)

const REGISTERING: &str = r#"{
  "issuer": "https://127.0.0.1:8243",
  "applications": [ { "consumer_key": "demo-app", "consumer_secret": "demo-secret", "scopes": ["orders:read"] } ],
  "users": [ { "username": "alice", "password": "wonderland", "admin": true, "scopes": ["orders:read", "orders:write"] } ],
  "registration": { "grant_types": ["client_credentials", "authorization_code", "refresh_token"],
                    "scopes": ["orders:read", "orders:write"] }
}"#;

impl Rig {
    fn register(&self, path: &str, json: &str) -> Reply {
        let gateway = self.gateway();
        let endpoint = gateway.endpoint(path).unwrap();
        let admin = format!("Basic {}", encode_basic_credentials("alice", "wonderland"));
        let request = EndpointRequest {
            client_address: None,
            method: "POST",
            path,
            authorization: Some(&admin),
            content_type: Some("application/json"),
            body: json.as_bytes(),
        };
        Reply(gateway.serve(&endpoint, &request))
    }
}

struct RegistrationCase {
    name: &'static str,
    path: &'static str,
    json: &'static str,
    status: u16,
    error: Option<&'static str>,
}

#[test]
fn registrations_with_the_code_grant_need_good_redirect_uris() {
    let cases = [
        RegistrationCase {
            name: "RFC 7591, https",
            path: "/register",
            json: r#"{"client_name":"Shop","grant_types":["authorization_code"],"redirect_uris":["https://shop.example/cb"]}"#,
            status: 201,
            error: None,
        },
        RegistrationCase {
            name: "RFC 7591, no redirect URI",
            path: "/register",
            json: r#"{"client_name":"Shop","grant_types":["authorization_code"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, plain http elsewhere than loopback",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["https://shop.example/cb","http://shop.example/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, a wildcard",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["https://*.example/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, client_credentials: a web client's URIs follow the same rules",
            path: "/register",
            json: r#"{"grant_types":["client_credentials"],"redirect_uris":["myapp:cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, javascript: is refused whatever the grants",
            path: "/register",
            json: r#"{"grant_types":["client_credentials"],"redirect_uris":["javascript:alert(1)"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, data: is refused even for a native client",
            path: "/register",
            json: r#"{"application_type":"native","redirect_uris":["data:text/html,hi"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, https without a host",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["https://:443/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, the same URI twice (RFC 7591 §3.2.2)",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["https://shop.example/cb","https://shop.example/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, a native client's private-use scheme (RFC 8252 §7.1)",
            path: "/register",
            json: r#"{"application_type":"native","grant_types":["authorization_code"],"redirect_uris":["com.example.app:/cb"]}"#,
            status: 201,
            error: None,
        },
        RegistrationCase {
            name: "RFC 7591, a web client may not have one",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["com.example.app:/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, an unknown application_type",
            path: "/register",
            json: r#"{"application_type":"desktop","redirect_uris":["https://shop.example/cb"]}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "v0.17, a javascript: callbackUrl without the code grant",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"js","callbackUrl":"javascript:alert(1)","grantType":"client_credentials"}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "v0.17, the same callbackUrl twice",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"twice","callbackUrl":"https://shop.example/cb https://shop.example/cb","grantType":"authorization_code"}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "v0.17, https without a host",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"hostless","callbackUrl":"https://:443/cb","grantType":"authorization_code"}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "v0.17, the docs' callbackUrl without the code grant is only stored",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"docs-cc","callbackUrl":"www.google.lk","grantType":"client_credentials"}"#,
            status: 201,
            error: None,
        },
        RegistrationCase {
            name: "v0.17, loopback callbackUrl",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"cli","callbackUrl":"http://127.0.0.1:9000/cb","grantType":"authorization_code refresh_token"}"#,
            status: 201,
            error: None,
        },
        RegistrationCase {
            name: "v0.17, the docs' callbackUrl is no redirect URI",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"docs","callbackUrl":"www.google.lk","grantType":"authorization_code"}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
    ];
    let rig = Rig::with_config(REGISTERING);
    for case in cases {
        let reply = rig.register(case.path, case.json);
        assert_eq!(reply.0.status, case.status, "{}: {}", case.name, reply.text());
        if let Some(error) = case.error {
            assert_eq!(reply.json()["error"], error, "{}", case.name);
        }
    }
}

#[test]
fn a_registered_client_signs_a_user_in_and_redeems_the_code_with_its_secret() {
    let rig = Rig::with_config(REGISTERING);
    let registered = rig.register(
        "/register",
        r#"{"client_name":"Shop <1>","grant_types":["authorization_code","refresh_token"],
            "redirect_uris":["https://shop.example/cb","https://shop.example/other"],"scope":"orders:read"}"#,
    );
    assert_eq!(registered.0.status, 201, "{}", registered.text());
    let client_id = registered.json()["client_id"].as_str().unwrap().to_owned();
    let secret = registered.json()["client_secret"].as_str().unwrap().to_owned();

    // An unregistered redirect URI: the error page, never a redirect.
    let wrong = rig.authorize(&Rig::good_query(&client_id, "https://shop.example/elsewhere"));
    assert_eq!((wrong.0.status, wrong.0.header("location")), (400, None));
    // The login page names the application by its registered name, escaped.
    let page = rig.authorize(&Rig::good_query(&client_id, "https://shop.example/other"));
    assert_eq!(page.0.status, 200, "{}", page.text());
    assert!(page.text().contains("Shop &lt;1&gt;"));
    assert!(page
        .0
        .header("content-security-policy")
        .unwrap()
        .contains("form-action 'self' https://shop.example;"));
    let back = rig.sign_in(&page.handle(), "alice", "wonderland");
    assert_eq!(back.0.status, 302, "{}", back.text());
    assert!(back.location().starts_with("https://shop.example/other?code="));
    let code = back.callback().get("code").unwrap().to_owned();

    // A confidential client: the code needs its secret (Basic), then gives the user's tokens.
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fshop.example%2Fother&code_verifier={VERIFIER}"
    );
    let anonymous = rig.request("POST", "/token", None, &format!("{body}&client_id={client_id}"));
    assert_eq!(anonymous.0.status, 401, "a registered client is not public: {}", anonymous.text());
    let basic = format!("Basic {}", encode_basic_credentials(&client_id, &secret));
    let tokens = rig.request("POST", "/token", Some(&basic), &body);
    assert_eq!(tokens.0.status, 200, "{}", tokens.text());
    assert_eq!(tokens.json()["scope"], "orders:read");
    assert!(tokens.json()["refresh_token"].is_string());

    // A client registered without the code grant may not start a sign-in.
    let other = rig.register(
        "/register",
        r#"{"grant_types":["client_credentials"],"redirect_uris":["https://shop.example/cb"]}"#,
    );
    let other_id = other.json()["client_id"].as_str().unwrap().to_owned();
    let refused = rig.authorize(&Rig::good_query(&other_id, "https://shop.example/cb"));
    assert_eq!((refused.0.status, refused.0.header("location")), (400, None));
}

/// RFC 7591 `application_type`: echoed, kept with the client (RFC 7592 reads it back), and
/// deciding whether a loopback redirect URI's port may change (native only, RFC 8252 §7.3).
#[test]
fn a_registered_clients_application_type_decides_the_loopback_port() {
    let rig = Rig::with_config(REGISTERING);
    let register = |json: &str| {
        let reply = rig.register("/register", json);
        assert_eq!(reply.0.status, 201, "{}", reply.text());
        reply.json()
    };
    let native = register(
        r#"{"application_type":"native","grant_types":["authorization_code"],"redirect_uris":["http://127.0.0.1/cb"]}"#,
    );
    let web =
        register(r#"{"grant_types":["authorization_code"],"redirect_uris":["http://127.0.0.1:9000/cb"]}"#);
    assert_eq!(
        (native["application_type"].as_str(), web["application_type"].as_str()),
        (Some("native"), Some("web"))
    );

    let read = rig.gateway();
    let path = format!("/register/{}", native["client_id"].as_str().unwrap());
    let bearer = format!("Bearer {}", native["registration_access_token"].as_str().unwrap());
    let request = EndpointRequest {
        client_address: None,
        method: "GET",
        path: &path,
        authorization: Some(&bearer),
        content_type: None,
        body: b"",
    };
    let stored = Reply(read.serve(&read.endpoint(&path).unwrap(), &request));
    assert_eq!(stored.json()["application_type"], "native", "{}", stored.text());

    let native_id = native["client_id"].as_str().unwrap();
    let page = rig.authorize(&Rig::good_query(native_id, "http://127.0.0.1:51000/cb"));
    assert_eq!(page.0.status, 200, "{}", page.text());
    let web_id = web["client_id"].as_str().unwrap();
    let refused = rig.authorize(&Rig::good_query(web_id, "http://127.0.0.1:51000/cb"));
    assert_eq!((refused.0.status, refused.0.header("location")), (400, None));
    assert_eq!(rig.authorize(&Rig::good_query(web_id, "http://127.0.0.1:9000/cb")).0.status, 200);
}
