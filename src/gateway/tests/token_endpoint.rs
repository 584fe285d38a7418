//! `/token`: RFC 6749 §5.2 errors, client authentication (RFC 6749 §2.3), the client
//! credentials and password grants.

use super::*;

#[test]
fn token_endpoint_errors_follow_rfc_6749() {
    let rig = Rig::demo();
    let good = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
    let wrong = format!("Basic {}", encode_basic_credentials("demo-app", "nope"));
    let unknown = format!("Basic {}", encode_basic_credentials("ghost", "demo-secret"));
    let cc = "grant_type=client_credentials";
    struct TokenCase<'a> {
        method: &'a str,
        query: Option<&'a str>,
        authorization: Option<&'a str>,
        content_type: Option<&'a str>,
        body: &'a str,
        status: u16,
        error: &'a str,
    }
    #[rustfmt::skip]
    let table = [
        TokenCase { method: "GET", query: None, authorization: Some(&good), content_type: Some(FORM), body: cc, status: 405, error: "invalid_request" },
        TokenCase { method: "PUT", query: None, authorization: Some(&good), content_type: Some(FORM), body: cc, status: 405, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some("application/json"), body: "{}", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some("multipart/form-data; boundary=x"), body: cc, status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: None, body: cc, status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: Some("client_secret=demo-secret"), authorization: Some(&good), content_type: Some(FORM), body: cc, status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: Some("client_id=demo-app"), authorization: Some(&good), content_type: Some(FORM), body: cc, status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=client_credentials&grant_type=client_credentials", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=client_credentials&scope=%FF", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=client_credentials&x=%G1", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: None, content_type: Some(FORM), body: cc, status: 401, error: "invalid_client" },
        TokenCase { method: "POST", query: None, authorization: Some(&wrong), content_type: Some(FORM), body: cc, status: 401, error: "invalid_client" },
        TokenCase { method: "POST", query: None, authorization: Some(&unknown), content_type: Some(FORM), body: cc, status: 401, error: "invalid_client" },
        TokenCase { method: "POST", query: None, authorization: Some("Bearer abc"), content_type: Some(FORM), body: cc, status: 401, error: "invalid_client" },
        TokenCase { method: "POST", query: None, authorization: Some("Basic !!!"), content_type: Some(FORM), body: cc, status: 401, error: "invalid_client" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=client_credentials&client_secret=demo-secret", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=client_credentials&client_id=other", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=authorization_code&code=x", status: 400, error: "unsupported_grant_type" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=client_credentials&scope=admin", status: 400, error: "invalid_scope" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=client_credentials&scope=orders:read%20%20orders:write", status: 400, error: "invalid_scope" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=password&password=admin", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=password&username=admin", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=password&username=admin&password=wrong", status: 400, error: "invalid_grant" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=password&username=nobody&password=admin", status: 400, error: "invalid_grant" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=refresh_token", status: 400, error: "invalid_request" },
        TokenCase { method: "POST", query: None, authorization: Some(&good), content_type: Some(FORM), body: "grant_type=refresh_token&refresh_token=garbage", status: 400, error: "invalid_grant" },
    ];
    for TokenCase { method, query, authorization, content_type, body, status, error } in table {
        let reply = rig.token_request(method, query, authorization, content_type, body);
        let context = format!(
            "{method} ?{query:?} {authorization:?} {content_type:?} {body:?} -> {} {}",
            reply.0.status,
            reply.text()
        );
        assert_eq!(reply.0.status, status, "{context}");
        assert_eq!(reply.field("error"), error, "{context}");
        assert_eq!(reply.0.header("cache-control"), Some("no-store"), "{context}");
        assert_eq!(reply.0.header("pragma"), Some("no-cache"), "{context}");
        let description = reply.field("error_description");
        assert!(
            description.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'),
            "{context}"
        );
        assert!(!description.contains("demo-secret") && !description.contains("nobody"), "{context}");
        match status {
            401 => {
                assert_eq!(reply.0.header("www-authenticate"), Some("Basic realm=\"tokengate\""), "{context}")
            }
            405 => assert_eq!(reply.0.header("allow"), Some("POST"), "{context}"),
            _ => assert_eq!(reply.0.header("www-authenticate"), None, "{context}"),
        }
    }
}

/// `client_secret_post` (RFC 6749 §2.3.1) at every endpoint that authenticates an
/// application; one method per request; a failure is 401 `invalid_client` without a Basic
/// challenge, since the client did not use the Authorization header.
#[test]
fn client_secret_post_is_accepted_at_token_revoke_and_introspect() {
    let rig = lifecycle_rig();
    let good = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
    let other = format!("Basic {}", encode_basic_credentials("orders-service", "rs-secret"));
    let post = "client_id=demo-app&client_secret=demo-secret";
    struct Case {
        name: &'static str,
        path: &'static str,
        query: &'static str,
        authorization: Option<String>,
        body: String,
        status: u16,
        error: &'static str,
        challenge: Option<&'static str>,
    }
    let cc = "grant_type=client_credentials";
    let row = |name, path, authorization: Option<&String>, body: String, status, error, challenge| Case {
        name,
        path,
        query: "",
        authorization: authorization.cloned(),
        body,
        status,
        error,
        challenge,
    };
    let basic_challenge = Some("Basic realm=\"tokengate\"");
    let table = [
        row("token, post", "/token", None, format!("{cc}&{post}"), 200, "", None),
        row(
            "token, post, secret first",
            "/token",
            None,
            format!("client_secret=demo-secret&{cc}&client_id=demo-app"),
            200,
            "",
            None,
        ),
        row(
            "token, post, wrong secret",
            "/token",
            None,
            format!("{cc}&client_id=demo-app&client_secret=nope"),
            401,
            "invalid_client",
            None,
        ),
        row(
            "token, post, unknown client",
            "/token",
            None,
            format!("{cc}&client_id=ghost&client_secret=demo-secret"),
            401,
            "invalid_client",
            None,
        ),
        row(
            "token, post, empty secret",
            "/token",
            None,
            format!("{cc}&client_id=demo-app&client_secret="),
            401,
            "invalid_client",
            None,
        ),
        row(
            "token, post, secret without id",
            "/token",
            None,
            format!("{cc}&client_secret=demo-secret"),
            401,
            "invalid_client",
            None,
        ),
        row(
            "token, client_id alone",
            "/token",
            None,
            format!("{cc}&client_id=demo-app"),
            401,
            "invalid_client",
            basic_challenge,
        ),
        row("token, no credentials", "/token", None, cc.to_owned(), 401, "invalid_client", basic_challenge),
        row(
            "token, Basic and post",
            "/token",
            Some(&good),
            format!("{cc}&{post}"),
            400,
            "invalid_request",
            None,
        ),
        row(
            "token, Basic and an empty client_secret",
            "/token",
            Some(&good),
            format!("{cc}&client_id=demo-app&client_secret="),
            400,
            "invalid_request",
            None,
        ),
        row(
            "token, Basic and another client_id",
            "/token",
            Some(&other),
            format!("{cc}&client_id=demo-app"),
            400,
            "invalid_request",
            None,
        ),
        row(
            "token, Basic and the same client_id",
            "/token",
            Some(&good),
            format!("{cc}&client_id=demo-app"),
            200,
            "",
            None,
        ),
        row(
            "token, post, id repeated",
            "/token",
            None,
            format!("{cc}&{post}&client_id=demo-app"),
            400,
            "invalid_request",
            None,
        ),
        row(
            "token, post, password grant",
            "/token",
            None,
            format!("grant_type=password&username=admin&password=admin&{post}"),
            200,
            "",
            None,
        ),
        row("revoke, post", "/revoke", None, format!("token=never-issued&{post}"), 200, "", None),
        row(
            "revoke, post, wrong secret",
            "/revoke",
            None,
            "token=x&client_id=demo-app&client_secret=nope".into(),
            401,
            "invalid_client",
            None,
        ),
        row("introspect, post", "/introspect", None, format!("token=garbage&{post}"), 200, "", None),
        row(
            "introspect, post, wrong secret",
            "/introspect",
            None,
            "token=x&client_id=demo-app&client_secret=nope".into(),
            401,
            "invalid_client",
            None,
        ),
        Case {
            query: "client_secret=demo-secret",
            ..row(
                "token, secret in the query",
                "/token",
                None,
                format!("{cc}&client_id=demo-app"),
                400,
                "invalid_request",
                None,
            )
        },
        Case {
            query: "client_id=demo-app",
            ..row(
                "token, id in the query",
                "/token",
                None,
                format!("{cc}&client_secret=demo-secret"),
                400,
                "invalid_request",
                None,
            )
        },
    ];
    for case in table {
        let path = match case.query {
            "" => case.path.to_owned(),
            query => format!("{}?{query}", case.path),
        };
        let reply = rig.endpoint("POST", &path, case.authorization.as_deref(), Some(FORM), &case.body);
        assert_eq!(reply.0.status, case.status, "{}: {}", case.name, reply.text());
        assert_eq!(reply.field("error"), case.error, "{}", case.name);
        assert_eq!(reply.0.header("www-authenticate"), case.challenge, "{}", case.name);
        assert_eq!(reply.0.header("cache-control"), Some("no-store"), "{}", case.name);
        assert!(!reply.text().contains("demo-secret"), "{}", case.name);
    }
}

/// A wrong secret and an unknown client look alike in the body as in Basic (RFC 6749 §10.10),
/// and both count towards the lockout of that name.
#[test]
fn client_secret_post_failures_are_uniform_and_locked_out_like_basic() {
    let rig = Rig::demo();
    let post = |id: &str, secret: &str| {
        let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
        rig.token_request("POST", None, None, Some(FORM), &body)
    };
    // One failure for demo-app here, eight in the loop, the tenth with Basic.
    assert_eq!(post("demo-app", "nope").0, post("ghost", "nope").0);
    for _ in 0..8 {
        assert_eq!(post("demo-app", "guess").0.status, 401);
    }
    // Basic and post failures count under the same name.
    assert_eq!(rig.post_as("demo-app", "guess", "/token", "grant_type=client_credentials").0.status, 401);
    let locked = post("demo-app", "demo-secret");
    assert_eq!((locked.0.status, locked.field("error")), (429, "temporarily_unavailable".to_owned()));
    assert_eq!(rig.token("grant_type=client_credentials").0.status, 429);
    rig.clock.advance(300);
    assert_eq!(post("demo-app", "demo-secret").0.status, 200);
}

#[test]
fn unknown_client_and_wrong_secret_get_identical_replies() {
    let rig = Rig::demo();
    let wrong = format!("Basic {}", encode_basic_credentials("demo-app", "nope"));
    let unknown = format!("Basic {}", encode_basic_credentials("ghost", "nope"));
    let a = rig.token_request("POST", None, Some(&wrong), Some(FORM), "grant_type=client_credentials");
    let b = rig.token_request("POST", None, Some(&unknown), Some(FORM), "grant_type=client_credentials");
    let c = rig.token_request("POST", None, None, Some(FORM), "grant_type=client_credentials");
    assert_eq!(a.0, b.0);
    assert_eq!(a.0, c.0);
}

#[test]
fn content_type_is_matched_case_insensitively_with_parameters() {
    let rig = Rig::demo();
    let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
    for content_type in [
        "application/x-www-form-urlencoded;charset=UTF-8",
        "Application/X-WWW-Form-Urlencoded ; charset=utf-8",
    ] {
        let reply = rig.token_request(
            "POST",
            None,
            Some(&basic),
            Some(content_type),
            "grant_type=client_credentials",
        );
        assert_eq!(reply.0.status, 200, "{content_type}: {}", reply.text());
    }
}

#[test]
fn client_credentials_issue_an_access_token_without_refresh() {
    let rig = Rig::demo();
    let reply = rig.token("grant_type=client_credentials&unknown_param=ignored");
    assert_eq!(reply.0.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "orders:read orders:write");
    assert!(body.get("refresh_token").is_none());
    assert_eq!(reply.0.header("cache-control"), Some("no-store"));
    assert_eq!(reply.0.header("pragma"), Some("no-cache"));
    assert!(body["access_token"].as_str().unwrap().len() >= 32);
}

#[test]
fn the_wso2_password_grant_issues_a_refresh_token_with_narrowed_scope() {
    let rig = Rig::demo();
    let reply = rig.token("grant_type=password&username=admin&password=admin&scope=orders:read");
    assert_eq!(reply.0.status, 200, "{}", reply.text());
    assert_eq!(reply.field("scope"), "orders:read");
    assert!(!reply.field("refresh_token").is_empty());
}
