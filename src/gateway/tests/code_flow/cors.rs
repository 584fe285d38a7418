//! CORS at `/token` and `/revoke` for the origins of registered redirect URIs only.

use super::*;

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
