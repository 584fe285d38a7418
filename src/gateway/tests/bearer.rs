//! The Bearer check at the edge (RFC 6750): challenges, forwarded identity, what is stripped,
//! and requests refused before any token is read.

use super::*;

#[test]
fn bearer_checks_follow_rfc_6750() {
    let rig = Rig::demo();
    let read_only = rig.access_token("grant_type=client_credentials&scope=orders:read");
    // The challenge must contain `challenge`.
    struct BearerCase<'a> {
        method: &'a str,
        path: &'a str,
        authorization: Option<&'a str>,
        status: u16,
        challenge: &'a str,
    }
    let bearer = format!("Bearer {read_only}");
    let lower = format!("bearer {read_only}");
    let table = [
        BearerCase {
            method: "GET",
            path: "/api/orders",
            authorization: Some(&bearer),
            status: 200,
            challenge: "",
        },
        BearerCase {
            method: "GET",
            path: "/api/orders?page=2",
            authorization: Some(&bearer),
            status: 200,
            challenge: "",
        },
        BearerCase {
            method: "GET",
            path: "/api/orders/42",
            authorization: Some(&lower),
            status: 200,
            challenge: "",
        },
        BearerCase {
            method: "GET",
            path: "/api/public/ping",
            authorization: None,
            status: 200,
            challenge: "",
        },
        BearerCase {
            method: "GET",
            path: "/api/orders",
            authorization: None,
            status: 401,
            challenge: "Bearer realm=\"tokengate\"",
        },
        BearerCase {
            method: "GET",
            path: "/api/orders",
            authorization: Some("Basic ZGVtby1hcHA6ZGVtby1zZWNyZXQ="),
            status: 401,
            challenge: "Bearer realm=\"tokengate\"",
        },
        BearerCase {
            method: "GET",
            path: "/api/orders",
            authorization: Some("Bearer"),
            status: 400,
            challenge: "error=\"invalid_request\"",
        },
        BearerCase {
            method: "GET",
            path: "/api/orders",
            authorization: Some("Bearer a b"),
            status: 400,
            challenge: "error=\"invalid_request\"",
        },
        BearerCase {
            method: "GET",
            path: "/api/orders",
            authorization: Some("Bearer t\u{f6}ken"),
            status: 400,
            challenge: "error=\"invalid_request\"",
        },
        BearerCase {
            method: "GET",
            path: "/api/orders",
            authorization: Some("Bearer AAAA"),
            status: 401,
            challenge: "error=\"invalid_token\"",
        },
        BearerCase {
            method: "GET",
            path: "/api/orders?access_token=x",
            authorization: None,
            status: 400,
            challenge: "error=\"invalid_request\"",
        },
        BearerCase {
            method: "POST",
            path: "/api/orders",
            authorization: Some(&bearer),
            status: 403,
            challenge: "scope=\"orders:write\"",
        },
        BearerCase {
            method: "DELETE",
            path: "/api/orders",
            authorization: Some(&bearer),
            status: 405,
            challenge: "",
        },
        BearerCase {
            method: "GET",
            path: "/api/unknown",
            authorization: Some(&bearer),
            status: 404,
            challenge: "",
        },
    ];
    for BearerCase { method, path, authorization, status, challenge } in table {
        let outcome = rig.call(method, path, authorization);
        assert_eq!(status_of(&outcome), status, "{method} {path} {authorization:?}: {outcome:?}");
        assert!(challenge_of(&outcome).contains(challenge), "{method} {path}: {outcome:?}");
    }
    // No credentials: the challenge carries no error attribute (RFC 6750 §3.1).
    assert!(!challenge_of(&rig.call("GET", "/api/orders", None)).contains("error"));
}

#[test]
fn forwarded_requests_carry_identity_and_lose_the_token() {
    let rig = Rig::demo();
    let token = rig.access_token("grant_type=password&username=admin&password=admin");
    let Outcome::Forward(forward) = rig.call_with_token("GET", "/api/orders/7", &token) else {
        panic!("not forwarded")
    };
    for header in ["authorization", CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER] {
        assert!(forward.remove_headers.contains(&header), "{header} is not stripped");
    }
    assert_eq!(
        forward.set_headers,
        vec![
            (CLIENT_ID_HEADER, "demo-app".to_owned()),
            (USERNAME_HEADER, "admin".to_owned()),
            (SCOPE_HEADER, "orders:read orders:write".to_owned())
        ]
    );
    // Public resources strip spoofed identity headers too, and set none.
    let Outcome::Forward(public) = rig.call("GET", "/api/public/ping", None) else { panic!("not forwarded") };
    assert!(public.remove_headers.contains(&CLIENT_ID_HEADER));
    assert!(public.set_headers.is_empty());
}

/// Method and URL override headers would turn an allowed GET into a write in
/// frameworks that honour them; they are stripped unless `forward_method_overrides`.
#[test]
fn method_override_headers_are_stripped_unless_configured() {
    const OVERRIDES: [&str; 5] =
        ["x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url"];
    struct Case {
        name: &'static str,
        /// Top-level settings turned on.
        options: &'static [&'static str],
        overrides_stripped: bool,
        authorization_stripped: bool,
    }
    let table = [
        Case { name: "defaults", options: &[], overrides_stripped: true, authorization_stripped: true },
        Case {
            name: "forward_authorization",
            options: &["forward_authorization"],
            overrides_stripped: true,
            authorization_stripped: false,
        },
        Case {
            name: "forward_method_overrides",
            options: &["forward_method_overrides"],
            overrides_stripped: false,
            authorization_stripped: true,
        },
        Case {
            name: "both forwarded",
            options: &["forward_authorization", "forward_method_overrides"],
            overrides_stripped: false,
            authorization_stripped: false,
        },
    ];
    for Case { name, options, overrides_stripped, authorization_stripped } in table {
        let rig = Rig::demo_with(|v| options.iter().for_each(|option| v[option] = true.into()));
        let token = rig.access_token("grant_type=client_credentials&scope=orders:read");
        let protected = rig.call_with_token("GET", "/api/orders", &token);
        let public = rig.call("GET", "/api/public/ping", None);
        for outcome in [protected, public] {
            let Outcome::Forward(forward) = outcome else { panic!("{name}: not forwarded") };
            for header in OVERRIDES {
                assert_eq!(forward.remove_headers.contains(&header), overrides_stripped, "{name}: {header}");
            }
            assert_eq!(forward.remove_headers.contains(&"authorization"), authorization_stripped, "{name}");
            for header in [CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER] {
                assert!(forward.remove_headers.contains(&header), "{name}: {header}");
            }
        }
    }
}

/// Symfony, Laravel and Express's method-override read `_method` from the query of a POST: a
/// write allowed with `orders:write` would reach the upstream as a DELETE. Unlike the headers it
/// cannot be stripped, so such a request is refused unless `forward_method_overrides`.
#[test]
fn a_method_override_in_the_query_is_refused_unless_configured() {
    struct Case {
        name: &'static str,
        method: &'static str,
        path: &'static str,
        refused: bool,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "a POST turned into a DELETE", method: "POST", path: "/api/orders?_method=DELETE", refused: true },
        Case { name: "percent-encoded", method: "POST", path: "/api/orders?%5fmethod=DELETE", refused: true },
        Case { name: "as PHP spells it", method: "POST", path: "/api/orders?a=1&.method=PUT", refused: true },
        Case { name: "on a public resource", method: "GET", path: "/api/public/ping?_method=DELETE", refused: true },
        Case { name: "another parameter", method: "GET", path: "/api/orders/7?method=DELETE", refused: false },
        Case { name: "in a value", method: "GET", path: "/api/orders?q=_method", refused: false },
    ];
    for forwarded in [false, true] {
        let rig = Rig::demo_with(|v| v["forward_method_overrides"] = forwarded.into());
        let token = rig.access_token("grant_type=client_credentials");
        for Case { name, method, path, refused } in &table {
            let outcome = rig.call_with_token(method, path, &token);
            let refused = *refused && !forwarded;
            match outcome {
                Outcome::Deny(Denial { response, .. }) if refused => {
                    assert_eq!(response.status, 400, "{name} (forward_method_overrides: {forwarded})");
                    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
                    assert_eq!(
                        body["error"], "invalid_request",
                        "{name} (forward_method_overrides: {forwarded})"
                    );
                }
                Outcome::Forward(_) if !refused => {}
                other => panic!("{name} (forward_method_overrides: {forwarded}): {other:?}"),
            }
        }
    }
}

/// A public `/static/*` must not forward `/static/..;/api/orders`, which Tomcat,
/// Jetty and Spring serve as `/api/orders`.
#[test]
fn paths_with_dot_segments_or_semicolon_parameters_are_refused() {
    let rig = Rig::demo_with(|v| {
        let statics = serde_json::json!({ "methods": ["GET"], "path": "/static/*", "public": true });
        v["resources"].as_array_mut().unwrap().insert(0, statics);
    });
    let token = rig.access_token("grant_type=client_credentials");
    struct Case {
        name: &'static str,
        path: &'static str,
        token: bool,
        status: u16,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "a static file", path: "/static/app.js", token: false, status: 200 },
        Case { name: "dot-dot semicolon out of static", path: "/static/..;/api/orders", token: false, status: 400 },
        Case { name: "dot semicolon", path: "/static/.;/api/orders", token: false, status: 400 },
        Case { name: "encoded dots", path: "/static/%2e%2e;/api/orders", token: false, status: 400 },
        Case { name: "upper-case encoded dots", path: "/static/%2E%2E;/api/orders", token: false, status: 400 },
        Case { name: "encoded semicolon", path: "/static/..%3b/api/orders", token: false, status: 400 },
        Case { name: "upper-case encoded semicolon", path: "/static/..%3B/api/orders", token: false, status: 400 },
        Case { name: "parameter in an {id}", path: "/api/orders/1;x=..", token: true, status: 400 },
        Case { name: "with a query", path: "/static/..;/api/orders?a=b", token: false, status: 400 },
        Case { name: "a dot in the query is fine", path: "/static/app.js?v=1.2", token: false, status: 200 },
    ];
    for Case { name, path, token: with_token, status } in table {
        let outcome =
            if with_token { rig.call_with_token("GET", path, &token) } else { rig.call("GET", path, None) };
        assert_eq!(status_of(&outcome), status, "{name}: {path}");
        if let Outcome::Deny(Denial { response, .. }) = outcome {
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(body["error"], "invalid_request", "{name}");
            assert_eq!(response.header("content-type"), Some("application/json"), "{name}");
        }
    }
}
