//! The code exchange at `/token`: one use, the verifier (RFC 7636 §4.6), the same redirect
//! URI, the code's lifetime and its client.

use super::*;

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
