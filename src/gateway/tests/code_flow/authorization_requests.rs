//! Bad authorization requests: a page for a bad client or redirect URI, a redirect with
//! `state` and `iss` for the rest (RFC 6749 §4.1.2.1), and loopback ports (RFC 8252 §7.3).

use super::*;

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
