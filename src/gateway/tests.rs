use super::*;
use crate::config::tests::DEMO;
use crate::host::memory::{ManualClock, MemoryStore, RecordedMetrics};
use crate::host::metrics::{DenyReason, Metric};
use crate::host::SystemRandomness;
use crate::oauth::credentials::encode_basic_credentials;
use crate::state::credential_changes::CredentialChanges;
use crate::state::login_handle::KeyMemory;

const FORM: &str = "application/x-www-form-urlencoded";

struct Rig {
    config: Config,
    shared: MemoryStore,
    clock: ManualClock,
    metrics: RecordedMetrics,
    changes: CredentialChanges,
    login_key: KeyMemory,
    /// The downstream connection of the requests this rig sends.
    connection: FakeConnection,
    config_generation: std::cell::Cell<u64>,
}

/// A connection whose id a test sets; `None`: the host cannot tell.
#[derive(Default)]
struct FakeConnection(std::cell::Cell<Option<u64>>);

impl crate::host::Connection for FakeConnection {
    fn id(&self) -> Option<u64> {
        self.0.get()
    }
}

impl Rig {
    fn demo() -> Rig {
        Rig::with_config(DEMO)
    }

    fn with_config(json: &str) -> Rig {
        let config = Config::from_json(json.as_bytes()).unwrap();
        let rig = Rig {
            config,
            shared: MemoryStore::default(),
            clock: ManualClock::at(1_700_000_000),
            metrics: RecordedMetrics::default(),
            changes: CredentialChanges::default(),
            login_key: KeyMemory::new(),
            connection: FakeConnection::default(),
            config_generation: std::cell::Cell::new(0),
        };
        rig.gateway().initialize_store().unwrap();
        rig
    }

    fn host(&self) -> Host<'_> {
        Host {
            shared: &self.shared,
            random: &SystemRandomness,
            clock: &self.clock,
            metrics: &self.metrics,
            credential_changes: &self.changes,
            process_shared: &self.shared,
            connection: &self.connection,
            config_generation: &self.config_generation,
            login_key: &self.login_key,
        }
    }

    fn gateway(&self) -> Gateway<'_> {
        Gateway::new(&self.config, self.host())
    }

    /// A gateway over this rig's store with another config and its credential changes.
    fn gateway_with<'a>(&'a self, (config, changes): &'a (Config, CredentialChanges)) -> Gateway<'a> {
        Gateway::new(config, Host { credential_changes: changes, ..self.host() })
    }

    fn token_request(
        &self,
        method: &str,
        query: Option<&str>,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let path = match query {
            Some(query) => format!("/token?{query}"),
            None => "/token".to_owned(),
        };
        self.endpoint(method, &path, authorization, content_type, body)
    }

    fn endpoint(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let gateway = self.gateway();
        let endpoint = gateway.endpoint(path).expect("an endpoint path");
        let request = EndpointRequest {
            client_address: None,
            method,
            path,
            authorization,
            content_type,
            body: body.as_bytes(),
        };
        Reply(gateway.serve(&endpoint, &request))
    }

    /// A form POST to one of the endpoints, authenticated as `key`/`secret`.
    fn post_as(&self, key: &str, secret: &str, path: &str, body: &str) -> Reply {
        let basic = format!("Basic {}", encode_basic_credentials(key, secret));
        self.endpoint("POST", path, Some(&basic), Some(FORM), body)
    }

    /// A well-formed POST /token as the demo app.
    fn token(&self, body: &str) -> Reply {
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
        self.token_request("POST", None, Some(&basic), Some(FORM), body)
    }

    fn access_token(&self, body: &str) -> String {
        let reply = self.token(body);
        assert_eq!(reply.0.status, 200, "{}", reply.text());
        reply.field("access_token")
    }

    fn call(&self, method: &str, path: &str, authorization: Option<&str>) -> Outcome {
        self.gateway().check_bearer(&ApiRequest { method, path, authorization })
    }

    fn call_with_token(&self, method: &str, path: &str, token: &str) -> Outcome {
        self.call(method, path, Some(&format!("Bearer {token}")))
    }
}

struct Reply(Response);

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.body).unwrap()
    }
    fn field(&self, name: &str) -> String {
        self.json()[name].as_str().unwrap_or_default().to_owned()
    }
}

fn status_of(outcome: &Outcome) -> u16 {
    match outcome {
        Outcome::Respond(response) => response.status,
        Outcome::Forward(_) => 200,
    }
}

fn challenge_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Respond(response) => response.header("www-authenticate").unwrap_or_default().to_owned(),
        Outcome::Forward(_) => String::new(),
    }
}

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
        options: &'static str,
        overrides_stripped: bool,
        authorization_stripped: bool,
    }
    let table = [
        Case { name: "defaults", options: "", overrides_stripped: true, authorization_stripped: true },
        Case {
            name: "forward_authorization",
            options: "\"forward_authorization\": true,",
            overrides_stripped: true,
            authorization_stripped: false,
        },
        Case {
            name: "forward_method_overrides",
            options: "\"forward_method_overrides\": true,",
            overrides_stripped: false,
            authorization_stripped: true,
        },
        Case {
            name: "both forwarded",
            options: "\"forward_authorization\": true, \"forward_method_overrides\": true,",
            overrides_stripped: false,
            authorization_stripped: false,
        },
    ];
    for Case { name, options, overrides_stripped, authorization_stripped } in table {
        let rig = Rig::with_config(&DEMO.replacen('{', &format!("{{ {options}"), 1));
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
    for (options, forwarded) in [("", false), ("\"forward_method_overrides\": true,", true)] {
        let rig = Rig::with_config(&DEMO.replacen('{', &format!("{{ {options}"), 1));
        let token = rig.access_token("grant_type=client_credentials");
        for Case { name, method, path, refused } in &table {
            let outcome = rig.call_with_token(method, path, &token);
            let refused = *refused && !forwarded;
            match outcome {
                Outcome::Respond(response) if refused => {
                    assert_eq!(response.status, 400, "{name} ({options})");
                    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
                    assert_eq!(body["error"], "invalid_request", "{name} ({options})");
                }
                Outcome::Forward(_) if !refused => {}
                other => panic!("{name} ({options}): {other:?}"),
            }
        }
    }
}

/// A public `/static/*` must not forward `/static/..;/api/orders`, which Tomcat,
/// Jetty and Spring serve as `/api/orders`.
#[test]
fn paths_with_dot_segments_or_semicolon_parameters_are_refused() {
    let json = DEMO.replacen(
        "\"resources\": [",
        "\"resources\": [ { \"methods\": [\"GET\"], \"path\": \"/static/*\", \"public\": true },",
        1,
    );
    let rig = Rig::with_config(&json);
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
        if let Outcome::Respond(response) = outcome {
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(body["error"], "invalid_request", "{name}");
            assert_eq!(response.header("content-type"), Some("application/json"), "{name}");
        }
    }
}

#[test]
fn tokens_expire() {
    let rig = Rig::demo();
    let token = rig.access_token("grant_type=client_credentials");
    rig.clock.advance(3599);
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &token)), 200);
    rig.clock.advance(1);
    let outcome = rig.call_with_token("GET", "/api/orders", &token);
    assert_eq!(status_of(&outcome), 401);
    assert!(challenge_of(&outcome).contains("invalid_token"));
}

#[test]
fn never_expiring_tokens_have_no_expires_in() {
    let json = DEMO.replace(
        "\"scopes\": [\"orders:read\", \"orders:write\"] }\n  ]",
        "\"scopes\": [\"orders:read\", \"orders:write\"], \"access_token_validity_secs\": -1 }\n  ]",
    );
    let rig = Rig::with_config(&json);
    let reply = rig.token("grant_type=client_credentials");
    assert!(reply.json().get("expires_in").is_none(), "{}", reply.text());
    rig.clock.advance(10 * 365 * 86400);
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &reply.field("access_token"))), 200);
}

#[test]
fn refresh_keeps_the_grant_scope_and_narrows_only_the_access_token() {
    let rig = Rig::demo();
    let first = rig.token("grant_type=password&username=admin&password=admin");
    let refresh = first.field("refresh_token");
    let narrowed = rig.token(&format!("grant_type=refresh_token&refresh_token={refresh}&scope=orders:read"));
    assert_eq!(narrowed.0.status, 200, "{}", narrowed.text());
    assert_eq!(narrowed.field("scope"), "orders:read");
    assert_eq!(status_of(&rig.call_with_token("POST", "/api/orders", &narrowed.field("access_token"))), 403);
    // The rotated refresh token still carries the full grant.
    let full =
        rig.token(&format!("grant_type=refresh_token&refresh_token={}", narrowed.field("refresh_token")));
    assert_eq!(full.field("scope"), "orders:read orders:write");
    assert_eq!(status_of(&rig.call_with_token("POST", "/api/orders", &full.field("access_token"))), 200);
    // Asking for more than the grant holds is invalid_scope.
    let wider = rig.token(&format!(
        "grant_type=refresh_token&refresh_token={}&scope=orders:admin",
        full.field("refresh_token")
    ));
    assert_eq!(wider.field("error"), "invalid_scope");
}

#[test]
fn a_reused_refresh_token_kills_every_token_of_the_grant() {
    // With a reuse grace configured (the default is none: see the test below).
    let rig = Rig::with_config(&DEMO.replacen('{', "{ \"refresh_token_reuse_grace_ms\": 5000,", 1));
    let first = rig.token("grant_type=password&username=admin&password=admin");
    let old_refresh = first.field("refresh_token");
    let second = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(second.0.status, 200);
    // Right after the rotation the old token may be a parallel retry: refused, nothing revoked.
    let racing = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(racing.field("error"), "invalid_grant");
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &second.field("access_token"))), 200);
    // After the 5 s grace it is a reuse: every token of the grant dies.
    rig.clock.advance(5);
    let reuse = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(reuse.field("error"), "invalid_grant");
    assert_eq!(rig.metrics.get(Metric::RefreshReuseDetected), 1);
    for token in [first.field("access_token"), second.field("access_token")] {
        assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &token)), 401);
    }
    let newest =
        rig.token(&format!("grant_type=refresh_token&refresh_token={}", second.field("refresh_token")));
    assert_eq!(newest.field("error"), "invalid_grant");
}

/// RFC 9700 §4.14.2: by default there is no grace, so the refresh token just
/// replaced, presented at once (an attacker's refresh moments before the client's, or the
/// client's after the attacker's), revokes the grant: nobody keeps a stolen session.
#[test]
fn by_default_the_refresh_token_just_replaced_revokes_the_grant_at_once() {
    let rig = Rig::demo();
    assert_eq!(rig.config.refresh_reuse_grace_ms, 0);
    let first = rig.token("grant_type=password&username=admin&password=admin");
    let old_refresh = first.field("refresh_token");
    let winner = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(winner.0.status, 200);
    let replay = rig.token(&format!("grant_type=refresh_token&refresh_token={old_refresh}"));
    assert_eq!(replay.field("error"), "invalid_grant");
    assert_eq!(rig.metrics.get(Metric::RefreshReuseDetected), 1);
    for token in [first.field("access_token"), winner.field("access_token")] {
        assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &token)), 401);
    }
    let newest =
        rig.token(&format!("grant_type=refresh_token&refresh_token={}", winner.field("refresh_token")));
    assert_eq!(newest.field("error"), "invalid_grant");
}

#[test]
fn applications_without_a_grant_type_are_unauthorized_for_it() {
    let json = DEMO.replace(
        "\"grant_types\": [\"client_credentials\", \"password\", \"refresh_token\"]",
        "\"grant_types\": [\"client_credentials\"]",
    );
    let rig = Rig::with_config(&json);
    let reply = rig.token("grant_type=password&username=admin&password=admin");
    assert_eq!((reply.0.status, reply.field("error")), (400, "unauthorized_client".to_owned()));
}

#[test]
fn password_grant_without_refresh_permission_issues_no_refresh_token() {
    let json = DEMO.replace(
        "\"grant_types\": [\"client_credentials\", \"password\", \"refresh_token\"]",
        "\"grant_types\": [\"password\"]",
    );
    let rig = Rig::with_config(&json);
    let reply = rig.token("grant_type=password&username=admin&password=admin");
    assert_eq!(reply.0.status, 200);
    assert!(reply.json().get("refresh_token").is_none());
}

#[test]
fn a_config_that_changes_a_secret_or_password_ends_old_tokens() {
    let rig = Rig::demo();
    let app_token = rig.access_token("grant_type=client_credentials");
    let user_token = rig.access_token("grant_type=password&username=admin&password=admin");
    // A reloaded config over the same shared data, as after an Envoy config update.
    let status_under = |json: &str, token: &str| {
        let config = Config::from_json(json.as_bytes()).unwrap();
        let gateway = Gateway::new(&config, rig.host());
        let authorization = format!("Bearer {token}");
        status_of(&gateway.check_bearer(&ApiRequest {
            method: "GET",
            path: "/api/orders",
            authorization: Some(&authorization),
        }))
    };
    let new_password = DEMO.replace("\"password\": \"admin\"", "\"password\": \"changed\"");
    assert_eq!(status_under(&new_password, &app_token), 200);
    assert_eq!(status_under(&new_password, &user_token), 401);
    let new_secret = DEMO.replace("demo-secret", "rotated-secret");
    assert_eq!(status_under(&new_secret, &app_token), 401);
    let without_user = DEMO.replace("\"username\": \"admin\"", "\"username\": \"someone-else\"");
    assert_eq!(status_under(&without_user, &user_token), 401);
    assert_eq!(status_under(DEMO, &app_token), 200);
}

#[test]
fn a_full_store_answers_503_and_keeps_existing_tokens() {
    let json = DEMO.replacen('{', "{ \"store\": { \"capacity\": 8 },", 1);
    let rig = Rig::with_config(&json);
    let tokens: Vec<String> = (0..8).map(|_| rig.access_token("grant_type=client_credentials")).collect();
    let full = rig.token("grant_type=client_credentials");
    assert_eq!((full.0.status, full.field("error")), (503, "temporarily_unavailable".to_owned()));
    assert_eq!(full.0.header("cache-control"), Some("no-store"));
    for token in &tokens {
        assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", token)), 200);
    }
}

/// One client cannot fill the store (`store.max_grants_per_application`). With a share of 8 grants (one bucket), the
/// demo app's ninth grant is refused with a clear 503; its tokens, and everyone else's room,
/// stay.
#[test]
fn one_application_cannot_fill_the_store() {
    let mut value: serde_json::Value =
        serde_json::from_str(&crate::config::tests::demo_with_lifecycle()).unwrap();
    value["store"] = serde_json::json!({"capacity": 80, "max_grants_per_application": 8});
    let rig = Rig::with_config(&value.to_string());
    let tokens: Vec<String> = (0..8).map(|_| rig.access_token("grant_type=client_credentials")).collect();
    let refused = rig.token("grant_type=client_credentials");
    assert_eq!((refused.0.status, refused.field("error")), (503, "temporarily_unavailable".to_owned()));
    assert!(refused.field("error_description").contains("this client holds too many live tokens"));
    assert_eq!(rig.metrics.get(Metric::StoreFull), 1);
    for token in &tokens {
        assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", token)), 200);
    }
    // Another application still gets its own share (its name hashes to another bucket).
    for _ in 0..8 {
        let reply = rig.post_as("orders-service", "rs-secret", "/token", "grant_type=client_credentials");
        assert_eq!(reply.0.status, 200, "{}", reply.text());
    }
    // Revoking one of its tokens makes room for the demo app again.
    let revoked = rig.post_as("demo-app", "demo-secret", "/revoke", &format!("token={}", tokens[0]));
    assert_eq!(revoked.0.status, 200);
    assert_eq!(rig.token("grant_type=client_credentials").0.status, 200);
}

#[test]
fn the_share_per_application_defaults_to_1000_grants() {
    let rig = Rig::demo();
    assert_eq!(rig.config.max_grants_per_application, 1000);
}

#[test]
fn credentials_with_unreserved_punctuation_work_raw_and_form_encoded() {
    let json = DEMO.replace(
        "\"consumer_key\": \"demo-app\", \"consumer_secret\": \"demo-secret\"",
        "\"consumer_key\": \"my.app_1\", \"consumer_secret\": \"s-e.c_r~t\"",
    );
    let rig = Rig::with_config(&json);
    use base64::Engine;
    let raw = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("my.app_1:s-e.c_r~t"));
    let encoded = format!("Basic {}", encode_basic_credentials("my.app_1", "s-e.c_r~t"));
    for header in [raw, encoded] {
        let reply =
            rig.token_request("POST", None, Some(&header), Some(FORM), "grant_type=client_credentials");
        assert_eq!(reply.0.status, 200, "{header}: {}", reply.text());
    }
}

// ---------------------------------------------------------------------------------------------
// Revocation, introspection, metadata, registration

fn lifecycle_rig() -> Rig {
    Rig::with_config(&crate::config::tests::demo_with_lifecycle())
}

#[test]
fn revocation_follows_rfc_7009() {
    let rig = lifecycle_rig();
    let issued = rig.token("grant_type=password&username=admin&password=admin");
    let access = issued.field("access_token");
    let refresh = issued.field("refresh_token");
    let other_app = rig.access_token("grant_type=client_credentials");
    struct RevokeCase<'a> {
        caller: (&'a str, &'a str),
        body: String,
        status: u16,
        error: &'a str,
    }
    let table = [
        RevokeCase {
            caller: ("demo-app", "wrong"),
            body: format!("token={access}"),
            status: 401,
            error: "invalid_client",
        },
        RevokeCase {
            caller: ("demo-app", "demo-secret"),
            body: "token_type_hint=access_token".into(),
            status: 400,
            error: "invalid_request",
        },
        RevokeCase {
            caller: ("demo-app", "demo-secret"),
            body: "token=never-issued".into(),
            status: 200,
            error: "",
        },
        RevokeCase {
            caller: ("orders-service", "rs-secret"),
            body: format!("token={other_app}"),
            status: 400,
            error: "unauthorized_client",
        },
        // A wrong hint still finds the token.
        RevokeCase {
            caller: ("demo-app", "demo-secret"),
            body: format!("token={access}&token_type_hint=refresh_token"),
            status: 200,
            error: "",
        },
        RevokeCase {
            caller: ("demo-app", "demo-secret"),
            body: format!("token={access}"),
            status: 200,
            error: "",
        },
    ];
    for RevokeCase { caller: (key, secret), body, status, error } in table {
        let reply = rig.post_as(key, secret, "/revoke", &body);
        assert_eq!(reply.0.status, status, "{key} {body}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{key} {body}");
        assert_eq!(reply.0.header("cache-control"), Some("no-store"));
    }
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &access)), 401);
    // The other application's token was left working.
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &other_app)), 200);
    // Revoking the refresh token ends the grant: the access tokens refreshed from it too.
    let refreshed = rig.token(&format!("grant_type=refresh_token&refresh_token={refresh}"));
    let new_refresh = refreshed.field("refresh_token");
    assert_eq!(
        rig.post_as("demo-app", "demo-secret", "/revoke", &format!("token={new_refresh}")).0.status,
        200
    );
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &refreshed.field("access_token"))), 401);
    assert_eq!(
        rig.token(&format!("grant_type=refresh_token&refresh_token={new_refresh}")).field("error"),
        "invalid_grant"
    );
    assert_eq!(rig.metrics.get(Metric::Revocations), 2);
}

#[test]
fn introspection_follows_rfc_7662() {
    let rig = lifecycle_rig();
    let issued = rig.token("grant_type=password&username=admin&password=admin&scope=orders:read");
    let access = issued.field("access_token");
    // The owner and a resource server marked `introspect` see it; another application does not.
    for (key, secret) in [("demo-app", "demo-secret"), ("orders-service", "rs-secret")] {
        let reply = rig.post_as(key, secret, "/introspect", &format!("token={access}"));
        let body = reply.json();
        assert_eq!(body["active"], true, "{key}: {body}");
        assert_eq!(body["scope"], "orders:read");
        assert_eq!(body["client_id"], "demo-app");
        assert_eq!(body["username"], "admin");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["iat"], 1_700_000_000u64);
        assert_eq!(body["exp"], 1_700_003_600u64);
    }
    let rs_token = rig
        .post_as("orders-service", "rs-secret", "/token", "grant_type=client_credentials")
        .field("access_token");
    let foreign = rig.post_as("demo-app", "demo-secret", "/introspect", &format!("token={rs_token}"));
    assert_eq!(foreign.text(), r#"{"active":false}"#);
    // Unknown, malformed, revoked, expired: exactly {"active":false}.
    assert_eq!(
        rig.post_as("demo-app", "demo-secret", "/introspect", "token=garbage").text(),
        r#"{"active":false}"#
    );
    rig.post_as("demo-app", "demo-secret", "/revoke", &format!("token={access}"));
    assert_eq!(
        rig.post_as("demo-app", "demo-secret", "/introspect", &format!("token={access}")).text(),
        r#"{"active":false}"#
    );
    let short = rig.access_token("grant_type=client_credentials");
    rig.clock.advance(3600);
    assert_eq!(
        rig.post_as("demo-app", "demo-secret", "/introspect", &format!("token={short}")).text(),
        r#"{"active":false}"#
    );
    // Callers must authenticate; a missing token is a bad request.
    assert_eq!(rig.post_as("demo-app", "nope", "/introspect", "token=x").0.status, 401);
    assert_eq!(rig.post_as("demo-app", "demo-secret", "/introspect", "").field("error"), "invalid_request");
}

#[test]
fn metadata_follows_rfc_8414() {
    let rig = lifecycle_rig();
    let reply = rig.endpoint("GET", "/.well-known/oauth-authorization-server", None, None, "");
    assert_eq!(reply.0.status, 200);
    let body = reply.json();
    assert_eq!(body["issuer"], "http://127.0.0.1:8080");
    assert_eq!(body["token_endpoint"], "http://127.0.0.1:8080/token");
    assert_eq!(body["revocation_endpoint"], "http://127.0.0.1:8080/revoke");
    assert_eq!(body["introspection_endpoint"], "http://127.0.0.1:8080/introspect");
    // RFC 7591's endpoint: RFC 8414 clients expect it there (the v0.17 one works, unadvertised).
    assert_eq!(body["registration_endpoint"], "http://127.0.0.1:8080/register");
    assert_eq!(
        body["grant_types_supported"],
        serde_json::json!(["client_credentials", "password", "refresh_token"])
    );
    assert_eq!(body["scopes_supported"], serde_json::json!(["orders:read", "orders:write"]));
    // client_secret_post too (RFC 6749 §2.3.1), at every endpoint that authenticates an application.
    let methods = serde_json::json!(["client_secret_basic", "client_secret_post"]);
    assert_eq!(body["token_endpoint_auth_methods_supported"], methods);
    assert_eq!(body["revocation_endpoint_auth_methods_supported"], methods);
    assert_eq!(body["introspection_endpoint_auth_methods_supported"], methods);
    assert_eq!(body["response_types_supported"], serde_json::json!([]));
    assert_eq!(rig.endpoint("POST", "/.well-known/oauth-authorization-server", None, None, "").0.status, 405);
    // No issuer configured: no metadata.
    assert_eq!(
        Rig::demo().endpoint("GET", "/.well-known/oauth-authorization-server", None, None, "").0.status,
        404
    );
}

const REGISTER: &str = "/client-registration/v0.17/register";

fn register(rig: &Rig, who: (&str, &str), content_type: &str, body: &str) -> Reply {
    let basic = format!("Basic {}", encode_basic_credentials(who.0, who.1));
    rig.endpoint("POST", REGISTER, Some(&basic), Some(content_type), body)
}

#[test]
fn registration_answers_like_wso2_and_the_application_works_at_once() {
    let rig = lifecycle_rig();
    let payload = r#"{"callbackUrl":"www.google.lk","clientName":"rest_api_admin","owner":"admin","grantType":"password refresh_token","saasApp":true}"#;
    let reply = register(&rig, ("admin", "admin"), "application/json", payload);
    assert_eq!(reply.0.status, 201, "{}", reply.text());
    assert_eq!(reply.0.header("cache-control"), Some("no-store"));
    let body = reply.json();
    let (client_id, secret) = (body["clientId"].as_str().unwrap(), body["clientSecret"].as_str().unwrap());
    assert_eq!(body["clientName"], "rest_api_admin");
    assert_eq!(body["callBackURL"], "www.google.lk");
    assert_eq!(body["isSaasApplication"], true);
    assert_eq!(body["appOwner"], "admin");
    let inner: serde_json::Value = serde_json::from_str(body["jsonString"].as_str().unwrap()).unwrap();
    assert_eq!(inner["grant_types"], "password refresh_token");
    assert_eq!(inner["client_name"], "rest_api_admin");
    for id in [client_id, secret] {
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)), "{id}");
    }
    // The new application gets tokens at once, with the registration's scopes and grants.
    let token = rig.post_as(client_id, secret, "/token", "grant_type=password&username=admin&password=admin");
    assert_eq!(token.0.status, 200, "{}", token.text());
    assert_eq!(token.field("scope"), "orders:read");
    let access = token.field("access_token");
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &access)), 200);
    let cc = rig.post_as(client_id, secret, "/token", "grant_type=client_credentials");
    assert_eq!(cc.field("error"), "unauthorized_client");

    // A new secret ends the old tokens and the old secret.
    let basic = format!("Basic {}", encode_basic_credentials("admin", "admin"));
    let rekeyed = rig.endpoint("POST", &format!("{REGISTER}/{client_id}/secret"), Some(&basic), None, "");
    assert_eq!(rekeyed.0.status, 200, "{}", rekeyed.text());
    let new_secret = rekeyed.field("clientSecret");
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &access)), 401);
    assert_eq!(
        rig.post_as(client_id, secret, "/token", "grant_type=password&username=admin&password=admin")
            .0
            .status,
        401
    );
    let fresh =
        rig.post_as(client_id, &new_secret, "/token", "grant_type=password&username=admin&password=admin");
    assert_eq!(fresh.0.status, 200);

    // Deleting ends the application and its tokens.
    let described = rig.endpoint("GET", &format!("{REGISTER}/{client_id}"), Some(&basic), None, "");
    assert_eq!(described.field("clientName"), "rest_api_admin");
    assert!(described.json().get("clientSecret").is_none());
    assert_eq!(
        rig.endpoint("DELETE", &format!("{REGISTER}/{client_id}"), Some(&basic), None, "").0.status,
        204
    );
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &fresh.field("access_token"))), 401);
    assert_eq!(rig.post_as(client_id, &new_secret, "/token", "grant_type=client_credentials").0.status, 401);
    assert_eq!(
        rig.endpoint("DELETE", &format!("{REGISTER}/{client_id}"), Some(&basic), None, "").0.status,
        404
    );
    assert_eq!(rig.metrics.get(Metric::RegisteredClients), 0);
    assert_eq!(rig.metrics.get(Metric::Registrations), 1);
}

/// The registration endpoint is no password oracle: a right password of a user who is
/// not an admin, a wrong one and an unknown name get the same reply.
#[test]
fn the_registration_endpoint_says_nothing_about_passwords() {
    let rig = lifecycle_rig();
    struct Case {
        name: &'static str,
        caller: (&'static str, &'static str),
    }
    let table = [
        Case { name: "right password, not an admin", caller: ("viewer", "viewer") },
        Case { name: "wrong password, not an admin", caller: ("viewer", "wrong") },
        Case { name: "wrong password, admin", caller: ("admin", "wrong") },
        Case { name: "unknown user", caller: ("nobody", "viewer") },
    ];
    let good = r#"{"clientName":"shop","grantType":"client_credentials"}"#;
    let replies: Vec<(u16, String)> = table
        .iter()
        .map(|case| {
            let reply = register(&rig, case.caller, "application/json", good);
            (reply.0.status, reply.text())
        })
        .collect();
    for (case, reply) in table.iter().zip(&replies) {
        assert_eq!(reply.0, 401, "{}: {}", case.name, reply.1);
        assert_eq!(reply, &replies[0], "{}", case.name);
    }
}

/// Failed admin logins count apart from the same user's password grant.
#[test]
fn failed_admin_logins_do_not_lock_the_password_grant() {
    let rig = lifecycle_rig();
    let good = r#"{"clientName":"shop","grantType":"client_credentials"}"#;
    for user in ["admin", "viewer"] {
        for _ in 0..10 {
            register(&rig, (user, "wrong"), "application/json", good);
        }
        // The admin login is locked...
        assert_eq!(register(&rig, (user, "wrong"), "application/json", good).0.status, 429, "{user}");
        // ...the password grant is not.
        let reply = rig.token(&format!("grant_type=password&username={user}&password={user}"));
        assert_eq!(reply.0.status, 200, "{user}: {}", reply.text());
    }
}

/// An application is managed only by the admin who registered it or a super-admin;
/// to another admin it does not exist. Only a super-admin registers for another owner.
#[test]
fn only_the_registering_admin_or_a_super_admin_manages_an_application() {
    let json = crate::config::tests::demo_with_lifecycle().replacen(
        "\"users\":[",
        r#""users": [{"username": "ops", "password": "ops", "admin": true},
                    {"username": "root", "password": "root", "super_admin": true},"#,
        1,
    );
    let rig = Rig::with_config(&json);
    let reply = register(
        &rig,
        ("admin", "admin"),
        "application/json",
        r#"{"clientName":"shop","grantType":"client_credentials"}"#,
    );
    assert_eq!(reply.0.status, 201, "{}", reply.text());
    let id = reply.field("clientId");
    struct Case {
        name: &'static str,
        caller: (&'static str, &'static str),
        method: &'static str,
        path: String,
        body: &'static str,
        status: u16,
    }
    let app = format!("{REGISTER}/{id}");
    let secret = format!("{app}/secret");
    let table = [
        Case {
            name: "another admin reads",
            caller: ("ops", "ops"),
            method: "GET",
            path: app.clone(),
            body: "",
            status: 404,
        },
        Case {
            name: "another admin re-keys",
            caller: ("ops", "ops"),
            method: "POST",
            path: secret.clone(),
            body: "",
            status: 404,
        },
        Case {
            name: "another admin deletes",
            caller: ("ops", "ops"),
            method: "DELETE",
            path: app.clone(),
            body: "",
            status: 404,
        },
        Case {
            name: "an admin registers for another owner",
            caller: ("ops", "ops"),
            method: "POST",
            path: REGISTER.into(),
            body: r#"{"clientName":"x","owner":"admin","grantType":"client_credentials"}"#,
            status: 400,
        },
        Case {
            name: "an admin registers for itself",
            caller: ("ops", "ops"),
            method: "POST",
            path: REGISTER.into(),
            body: r#"{"clientName":"x","owner":"ops","grantType":"client_credentials"}"#,
            status: 201,
        },
        Case {
            name: "a super-admin registers for anyone",
            caller: ("root", "root"),
            method: "POST",
            path: REGISTER.into(),
            body: r#"{"clientName":"x","owner":"someone","grantType":"client_credentials"}"#,
            status: 201,
        },
        Case {
            name: "the registering admin reads",
            caller: ("admin", "admin"),
            method: "GET",
            path: app.clone(),
            body: "",
            status: 200,
        },
        Case {
            name: "a super-admin reads",
            caller: ("root", "root"),
            method: "GET",
            path: app.clone(),
            body: "",
            status: 200,
        },
        Case {
            name: "a super-admin re-keys",
            caller: ("root", "root"),
            method: "POST",
            path: secret.clone(),
            body: "",
            status: 200,
        },
        Case {
            name: "the registering admin re-keys",
            caller: ("admin", "admin"),
            method: "POST",
            path: secret.clone(),
            body: "",
            status: 200,
        },
        Case {
            name: "a super-admin deletes",
            caller: ("root", "root"),
            method: "DELETE",
            path: app.clone(),
            body: "",
            status: 204,
        },
    ];
    for case in table {
        let basic = format!("Basic {}", encode_basic_credentials(case.caller.0, case.caller.1));
        let content_type = (!case.body.is_empty()).then_some("application/json");
        let reply = rig.endpoint(case.method, &case.path, Some(&basic), content_type, case.body);
        assert_eq!(reply.0.status, case.status, "{}: {}", case.name, reply.text());
        if case.status == 404 {
            assert_eq!(reply.field("error"), "not_found", "{}", case.name);
        }
        if case.status == 400 {
            assert_eq!(reply.field("error"), "invalid_client_metadata", "{}", case.name);
        }
    }
}

#[test]
fn bad_registrations_get_clear_4xx_errors() {
    let rig = lifecycle_rig();
    let good = r#"{"clientName":"shop","grantType":"client_credentials"}"#;
    assert_eq!(register(&rig, ("admin", "admin"), "application/json", good).0.status, 201);
    struct RegisterCase<'a> {
        caller: (&'a str, &'a str),
        content_type: &'a str,
        body: &'a str,
        status: u16,
        error: &'a str,
    }
    let table = [
        RegisterCase {
            caller: ("admin", "wrong"),
            content_type: "application/json",
            body: good,
            status: 401,
            error: "invalid_client",
        },
        // A user who is not an admin is refused like a wrong password: a 403 would confirm the password.
        RegisterCase {
            caller: ("viewer", "viewer"),
            content_type: "application/json",
            body: good,
            status: 401,
            error: "invalid_client",
        },
        RegisterCase {
            caller: ("demo-app", "demo-secret"),
            content_type: "application/json",
            body: good,
            status: 401,
            error: "invalid_client",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/x-www-form-urlencoded",
            body: good,
            status: 400,
            error: "invalid_request",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: "{not json",
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"grantType":"password"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"clientName":"x","grantType":"implicit"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"clientName":"x","grantType":""}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"clientName":"x","grantType":"client_credentials refresh_token"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"clientName":"x\u0000","grantType":"password"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: good,
            status: 409,
            error: "invalid_client_metadata",
        },
    ];
    for RegisterCase { caller: who, content_type, body, status, error } in table {
        let reply = register(&rig, who, content_type, body);
        assert_eq!(reply.0.status, status, "{who:?} {body}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{who:?} {body}");
    }
}

fn register_rfc7591(rig: &Rig, who: (&str, &str), body: &str) -> Reply {
    let basic = format!("Basic {}", encode_basic_credentials(who.0, who.1));
    rig.endpoint("POST", "/register", Some(&basic), Some("application/json"), body)
}

fn manage(rig: &Rig, method: &str, uri: &str, token: &str, body: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    let content_type = (!body.is_empty()).then_some("application/json");
    rig.endpoint(method, uri, Some(&bearer), content_type, body)
}

/// RFC 7591 registration and RFC 7592 read, update and delete.
#[test]
fn rfc7591_registration_and_rfc7592_management() {
    let rig = lifecycle_rig();
    let reply = register_rfc7591(
        &rig,
        ("admin", "admin"),
        r#"{"client_name":"shop","grant_types":["client_credentials"],"redirect_uris":["https://shop.example/cb"],
            "scope":"orders:read","token_endpoint_auth_method":"client_secret_post","logo_uri":"ignored"}"#,
    );
    assert_eq!(reply.0.status, 201, "{}", reply.text());
    assert_eq!(reply.0.header("cache-control"), Some("no-store"));
    let body = reply.json();
    let id = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let token = body["registration_access_token"].as_str().unwrap().to_owned();
    assert_eq!(body["client_id_issued_at"], 1_700_000_000u64);
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(body["client_name"], "shop");
    assert_eq!(body["grant_types"], serde_json::json!(["client_credentials"]));
    assert_eq!(body["redirect_uris"], serde_json::json!(["https://shop.example/cb"]));
    assert_eq!(body["scope"], "orders:read");
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_post");
    let uri = format!("/register/{id}");
    assert_eq!(body["registration_client_uri"], format!("http://127.0.0.1:8080{uri}"));
    assert!(body.get("logo_uri").is_none());
    for value in [&id, &secret, &token] {
        assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)), "{value}");
    }
    // It works at once, with either method, within the scope it registered.
    let post = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let issued = rig.endpoint("POST", "/token", None, Some(FORM), &post);
    assert_eq!(
        (issued.0.status, issued.field("scope")),
        (200, "orders:read".to_owned()),
        "{}",
        issued.text()
    );
    assert_eq!(rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").0.status, 200);
    let wider = rig.post_as(&id, &secret, "/token", "grant_type=client_credentials&scope=orders:write");
    assert_eq!(wider.field("error"), "invalid_scope");

    // RFC 7592 read: the metadata, never the secret or the token.
    let read = manage(&rig, "GET", &uri, &token, "");
    assert_eq!(read.0.status, 200, "{}", read.text());
    assert_eq!(read.field("client_name"), "shop");
    assert!(
        read.json().get("client_secret").is_none() && read.json().get("registration_access_token").is_none()
    );
    // Update: the id must match; the secret, if sent, must be its own.
    let update =
        format!(r#"{{"client_id":"{id}","client_name":"shop-2","grant_types":["client_credentials"]}}"#);
    let updated = manage(&rig, "PUT", &uri, &token, &update);
    assert_eq!(updated.0.status, 200, "{}", updated.text());
    assert_eq!(updated.field("client_name"), "shop-2");
    // PUT replaces: the scope, no longer asked for, is what the administrator registered.
    assert_eq!(updated.field("scope"), "orders:read");
    assert_eq!(updated.field("token_endpoint_auth_method"), "client_secret_basic");
    assert_eq!(rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").0.status, 200);
    struct Case {
        name: &'static str,
        method: &'static str,
        token: String,
        body: String,
        status: u16,
        error: &'static str,
    }
    let case = |name, method, token: &str, body: String, status, error| Case {
        name,
        method,
        token: token.to_owned(),
        body,
        status,
        error,
    };
    let table = [
        case("read with a wrong token", "GET", "AAAAwrongtoken", String::new(), 401, "invalid_token"),
        case("read with the client secret", "GET", &secret, String::new(), 401, "invalid_token"),
        case(
            "update, another client_id",
            "PUT",
            &token,
            update.replace(&id, "someone-else"),
            400,
            "invalid_request",
        ),
        case("update, no client_id", "PUT", &token, r#"{"client_name":"x"}"#.into(), 400, "invalid_request"),
        case(
            "update, a wrong client_secret",
            "PUT",
            &token,
            update.replace("\"client_name\"", "\"client_secret\":\"nope\",\"client_name\""),
            400,
            "invalid_client_metadata",
        ),
        case(
            "update, its own client_secret",
            "PUT",
            &token,
            update.replace("\"client_name\"", &format!("\"client_secret\":\"{secret}\",\"client_name\"")),
            200,
            "",
        ),
        case(
            "update, bad grant",
            "PUT",
            &token,
            update.replace("client_credentials", "implicit"),
            400,
            "invalid_client_metadata",
        ),
        case("POST to the client", "POST", &token, update.clone(), 405, "invalid_request"),
        case("delete with a wrong token", "DELETE", "AAAAwrongtoken", String::new(), 401, "invalid_token"),
    ];
    for Case { name, method, token, body, status, error } in table {
        let reply = manage(&rig, method, &uri, &token, &body);
        assert_eq!(reply.0.status, status, "{name}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{name}");
        if status == 401 {
            assert_eq!(
                reply.0.header("www-authenticate"),
                Some("Bearer realm=\"tokengate\", error=\"invalid_token\""),
                "{name}"
            );
        }
        if status == 405 {
            assert_eq!(reply.0.header("allow"), Some("GET, PUT, DELETE"), "{name}");
        }
    }
    // No token at all: the same 401.
    let anonymous = rig.endpoint("GET", &uri, None, None, "");
    assert_eq!((anonymous.0.status, anonymous.field("error")), (401, "invalid_token".to_owned()));
    // Delete: 204, then the client and its token are gone: 401 as for an unknown client.
    let access = rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").field("access_token");
    assert_eq!(manage(&rig, "DELETE", &uri, &token, "").0.status, 204);
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &access)), 401);
    assert_eq!(rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").0.status, 401);
    assert_eq!(manage(&rig, "GET", &uri, &token, "").0.status, 401);
    assert_eq!(rig.metrics.get(Metric::Registrations), 1);
}

/// The lifecycle demo with a second admin (`ops`), a super-admin (`root`) and two registration
/// scopes, so that a client can be registered with less than registration allows.
fn registration_rig(change: impl FnOnce(&mut serde_json::Value)) -> Rig {
    let mut v: serde_json::Value =
        serde_json::from_str(&crate::config::tests::demo_with_lifecycle()).unwrap();
    v["registration"]["scopes"] = serde_json::json!(["orders:read", "orders:write"]);
    let users = v["users"].as_array_mut().unwrap();
    users.push(serde_json::json!({"username": "ops", "password": "ops", "admin": true}));
    users.push(serde_json::json!({"username": "root", "password": "root", "super_admin": true}));
    change(&mut v);
    Rig::with_config(&v.to_string())
}

/// An RFC 7592 request to the client URI with an administrator's HTTP Basic.
fn manage_as(rig: &Rig, method: &str, uri: &str, who: (&str, &str), body: &str) -> Reply {
    let basic = format!("Basic {}", encode_basic_credentials(who.0, who.1));
    let content_type = (!body.is_empty()).then_some("application/json");
    rig.endpoint(method, uri, Some(&basic), content_type, body)
}

/// An RFC 7591 registration by `admin` that must succeed: (client URI, client id, token).
fn registered_rfc7591(rig: &Rig, body: &str) -> (String, String, String) {
    let reply = register_rfc7591(rig, ("admin", "admin"), body);
    assert_eq!(reply.0.status, 201, "{}", reply.text());
    let id = reply.field("client_id");
    (format!("/register/{id}"), id, reply.field("registration_access_token"))
}

/// RFC 7592 §2.2 lets the server refuse any change (`invalid_client_metadata`): with its
/// registration access token alone, a client keeps or narrows the grant types and scope its
/// administrator registered; its name and redirect URIs may change within registration policy.
#[test]
fn a_registration_access_token_cannot_widen_what_the_administrator_registered() {
    let rig = registration_rig(|_| {});
    let (uri, id, token) = registered_rfc7591(
        &rig,
        r#"{"client_name":"shop","grant_types":["client_credentials"],"scope":"orders:read"}"#,
    );
    struct Case {
        name: &'static str,
        fields: &'static str,
        status: u16,
        error: &'static str,
    }
    let table = [
        Case {
            name: "adds the password grant",
            fields: r#""grant_types":["client_credentials","password"],"scope":"orders:read""#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "adds the password and refresh grants, scope omitted",
            fields: r#""grant_types":["password","refresh_token"]"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "adds a scope registration allows",
            fields: r#""grant_types":["client_credentials"],"scope":"orders:read orders:write""#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "swaps its scope for another",
            fields: r#""scope":"orders:write""#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "renames itself and redirects within registration policy",
            fields: r#""client_name":"Demo console","redirect_uris":["https://evil.example/cb"]"#,
            status: 200,
            error: "",
        },
    ];
    for Case { name, fields, status, error } in table {
        let body = format!(r#"{{"client_id":"{id}",{fields}}}"#);
        let reply = manage(&rig, "PUT", &uri, &token, &body);
        assert_eq!(reply.0.status, status, "{name}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{name}");
        // Whatever the answer, the client has no more than it was registered with.
        let read = manage(&rig, "GET", &uri, &token, "").json();
        assert_eq!(read["grant_types"], serde_json::json!(["client_credentials"]), "{name}");
        assert_eq!(read["scope"], "orders:read", "{name}");
    }
    // Omitted grant_types and scope keep what the administrator registered.
    let renamed = manage(&rig, "GET", &uri, &token, "");
    assert_eq!(renamed.field("client_name"), "Demo console");
    assert_eq!(renamed.json()["redirect_uris"], serde_json::json!(["https://evil.example/cb"]));
}

/// Narrowing is not a new ceiling: the client may widen back to its administrator's grant.
#[test]
fn a_client_that_narrowed_itself_may_widen_back_to_its_administrators_grant_only() {
    let rig = registration_rig(|_| {});
    let (uri, id, token) = registered_rfc7591(
        &rig,
        r#"{"client_name":"shop","grant_types":["client_credentials","password","refresh_token"],"scope":"orders:read orders:write"}"#,
    );
    let put =
        |fields: &str| manage(&rig, "PUT", &uri, &token, &format!(r#"{{"client_id":"{id}",{fields}}}"#));
    let narrowed = put(r#""grant_types":["client_credentials"],"scope":"orders:read""#);
    assert_eq!(narrowed.0.status, 200, "{}", narrowed.text());
    assert_eq!(narrowed.json()["grant_types"], serde_json::json!(["client_credentials"]));
    let back = put(
        r#""grant_types":["client_credentials","password","refresh_token"],"scope":"orders:read orders:write""#,
    );
    assert_eq!(back.0.status, 200, "{}", back.text());
    assert_eq!(back.field("scope"), "orders:read orders:write");
    // Omitted: the administrator's grant, not the narrowed one.
    let omitted = put(r#""client_name":"shop""#);
    assert_eq!(
        omitted.json()["grant_types"],
        serde_json::json!(["client_credentials", "password", "refresh_token"])
    );
}

/// Widening is for an administrator who manages the client (its registering admin or a
/// super-admin, HTTP Basic as at registration); the reply carries a new registration access
/// token (RFC 7592 §3 allows it) and the old one stops working.
#[test]
fn an_administrator_widens_a_client_and_hands_it_a_new_registration_access_token() {
    let rig = registration_rig(|_| {});
    let (uri, id, token) = registered_rfc7591(
        &rig,
        r#"{"client_name":"shop","grant_types":["client_credentials"],"scope":"orders:read"}"#,
    );
    let wider = format!(
        r#"{{"client_id":"{id}","client_name":"shop","grant_types":["client_credentials","password","refresh_token"],"scope":"orders:read orders:write"}}"#
    );
    // Another admin: the client does not exist for it; a wrong password: the admin 401.
    assert_eq!(manage_as(&rig, "PUT", &uri, ("ops", "ops"), &wider).0.status, 404);
    assert_eq!(manage_as(&rig, "GET", &uri, ("ops", "ops"), "").0.status, 404);
    let wrong = manage_as(&rig, "PUT", &uri, ("admin", "wrong"), &wider);
    assert_eq!((wrong.0.status, wrong.field("error")), (401, "invalid_client".to_owned()));
    let read = manage_as(&rig, "GET", &uri, ("admin", "admin"), "");
    assert_eq!(read.0.status, 200, "{}", read.text());
    assert!(read.json().get("registration_access_token").is_none(), "a read changes nothing");

    let widened = manage_as(&rig, "PUT", &uri, ("admin", "admin"), &wider);
    assert_eq!(widened.0.status, 200, "{}", widened.text());
    assert_eq!(
        widened.json()["grant_types"],
        serde_json::json!(["client_credentials", "password", "refresh_token"])
    );
    assert_eq!(widened.field("scope"), "orders:read orders:write");
    let new_token = widened.field("registration_access_token");
    assert!(!new_token.is_empty() && new_token != token);
    assert_eq!(manage(&rig, "GET", &uri, &token, "").0.status, 401, "the old token stops working");
    assert_eq!(manage(&rig, "GET", &uri, &new_token, "").0.status, 200);
    // The administrator's update is the new ceiling of the client's own updates.
    let narrower =
        wider.replace(r#","refresh_token""#, "").replace(r#""password""#, r#""client_credentials""#);
    assert_eq!(manage(&rig, "PUT", &uri, &new_token, &narrower).0.status, 200);
    assert_eq!(manage(&rig, "PUT", &uri, &new_token, &wider).0.status, 200);
    // A super-admin manages it too.
    assert_eq!(manage_as(&rig, "PUT", &uri, ("root", "root"), &wider).0.status, 200);
    // An application registered at v0.17 is managed there, not here.
    let v017 = register(
        &rig,
        ("admin", "admin"),
        "application/json",
        r#"{"clientName":"old","grantType":"client_credentials"}"#,
    );
    let v017_uri = format!("/register/{}", v017.field("clientId"));
    assert_eq!(manage_as(&rig, "GET", &v017_uri, ("admin", "admin"), "").0.status, 404);
}

/// Whoever held the old secret may hold the registration access token too: a v0.17 re-key
/// rotates it. v0.17 has no field for a new one; an administrator's RFC 7592 update hands it out.
#[test]
fn a_v017_re_key_ends_the_registration_access_token() {
    let rig = registration_rig(|_| {});
    let (uri, id, token) = registered_rfc7591(
        &rig,
        r#"{"client_name":"shop","grant_types":["client_credentials"],"scope":"orders:read"}"#,
    );
    let update = format!(r#"{{"client_id":"{id}","client_name":"shop"}}"#);
    assert_eq!(manage(&rig, "PUT", &uri, &token, &update).0.status, 200);
    let rekeyed = rig.post_as("admin", "admin", &format!("{REGISTER}/{id}/secret"), "");
    assert_eq!(rekeyed.0.status, 200, "{}", rekeyed.text());
    for method in ["GET", "PUT", "DELETE"] {
        let body = if method == "PUT" { update.as_str() } else { "" };
        let reply = manage(&rig, method, &uri, &token, body);
        assert_eq!((reply.0.status, reply.field("error")), (401, "invalid_token".to_owned()), "{method}");
    }
    let handed = manage_as(&rig, "PUT", &uri, ("admin", "admin"), &update);
    assert_eq!(handed.0.status, 200, "{}", handed.text());
    let new_token = handed.field("registration_access_token");
    assert_eq!(manage(&rig, "GET", &uri, &new_token, "").0.status, 200);
    // The new secret works; the re-key did not change the client's metadata.
    let secret = rekeyed.field("clientSecret");
    assert_eq!(rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").0.status, 200);
}

/// One administrator may not fill the registry for everyone: past `registration.max_per_owner`
/// its registrations are refused (403 `access_denied`: its metadata is fine, and waiting does
/// not help) until it deletes one. Others, and super-admins, are not held back.
#[test]
fn registrations_past_max_per_owner_are_refused_until_one_is_deleted() {
    let rig = registration_rig(|v| v["registration"]["max_per_owner"] = 2.into());
    let v017 = |who, name: &str| {
        let body = format!(r#"{{"clientName":"{name}","grantType":"client_credentials"}}"#);
        register(&rig, who, "application/json", &body)
    };
    let rfc7591 = |who, name: &str| register_rfc7591(&rig, who, &format!(r#"{{"client_name":"{name}"}}"#));
    let admin = ("admin", "admin");
    let first = v017(admin, "one");
    assert_eq!(first.0.status, 201, "{}", first.text());
    assert_eq!(rfc7591(admin, "two").0.status, 201);
    for (name, reply) in [("v0.17", v017(admin, "three")), ("RFC 7591", rfc7591(admin, "three"))] {
        assert_eq!(reply.0.status, 403, "{name}: {}", reply.text());
        assert_eq!(reply.field("error"), "access_denied", "{name}");
    }
    // Another admin has its own quota; a super-admin has none, even registering for `admin`.
    assert_eq!(v017(("ops", "ops"), "one").0.status, 201);
    for name in ["a", "b", "c"] {
        assert_eq!(rfc7591(("root", "root"), name).0.status, 201, "{name}");
    }
    let for_admin = r#"{"clientName":"four","owner":"admin","grantType":"client_credentials"}"#;
    assert_eq!(register(&rig, ("root", "root"), "application/json", for_admin).0.status, 201);
    assert_eq!(v017(admin, "three").0.status, 403);
    // Deleting one frees a place.
    let gone = rig.endpoint(
        "DELETE",
        &format!("{REGISTER}/{}", first.field("clientId")),
        Some(&format!("Basic {}", encode_basic_credentials("admin", "admin"))),
        None,
        "",
    );
    assert_eq!(gone.0.status, 204);
    assert_eq!(v017(admin, "three").0.status, 201);
    assert_eq!(rig.metrics.get(Metric::Registrations), 8);
}

/// RFC 7591 §3.2.2 errors, and who may register.
#[test]
fn rfc7591_registration_errors() {
    let rig = lifecycle_rig();
    struct Case {
        name: &'static str,
        caller: (&'static str, &'static str),
        body: &'static str,
        status: u16,
        error: &'static str,
    }
    let admin = ("admin", "admin");
    let table = [
        Case {
            name: "no client_name is fine",
            caller: admin,
            body: r#"{"grant_types":["client_credentials"]}"#,
            status: 201,
            error: "",
        },
        Case { name: "no metadata at all is fine", caller: admin, body: "{}", status: 201, error: "" },
        Case {
            name: "the same name twice is fine",
            caller: admin,
            body: r#"{"client_name":"twin"}"#,
            status: 201,
            error: "",
        },
        Case {
            name: "the same name twice is fine, again",
            caller: admin,
            body: r#"{"client_name":"twin"}"#,
            status: 201,
            error: "",
        },
        Case {
            name: "password and refresh",
            caller: admin,
            body: r#"{"grant_types":["password","refresh_token"]}"#,
            status: 201,
            error: "",
        },
        Case {
            name: "not JSON",
            caller: admin,
            body: "{nope",
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "not an object",
            caller: admin,
            body: "[]",
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "grant_types not an array",
            caller: admin,
            body: r#"{"grant_types":"client_credentials"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "authorization_code",
            caller: admin,
            body: r#"{"grant_types":["authorization_code"]}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "empty grant_types",
            caller: admin,
            body: r#"{"grant_types":[]}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "refresh alone",
            caller: admin,
            body: r#"{"grant_types":["client_credentials","refresh_token"]}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "scope beyond registration.scopes",
            caller: admin,
            body: r#"{"scope":"orders:write"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "malformed scope",
            caller: admin,
            body: r#"{"scope":"orders:read  x"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "auth method none",
            caller: admin,
            body: r#"{"token_endpoint_auth_method":"none"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "auth method private_key_jwt",
            caller: admin,
            body: r#"{"token_endpoint_auth_method":"private_key_jwt"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "control character in the name",
            caller: admin,
            body: r#"{"client_name":"a\nb"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "relative redirect URI",
            caller: admin,
            body: r#"{"redirect_uris":["/cb"]}"#,
            status: 400,
            error: "invalid_redirect_uri",
        },
        Case {
            name: "redirect URI with a fragment",
            caller: admin,
            body: r#"{"redirect_uris":["https://a.example/cb#x"]}"#,
            status: 400,
            error: "invalid_redirect_uri",
        },
        Case {
            name: "redirect URI with a space",
            caller: admin,
            body: r#"{"redirect_uris":["https://a.example/c b"]}"#,
            status: 400,
            error: "invalid_redirect_uri",
        },
        Case {
            name: "redirect_uris not an array",
            caller: admin,
            body: r#"{"redirect_uris":"https://a.example/cb"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "wrong admin password",
            caller: ("admin", "wrong"),
            body: "{}",
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "not an admin",
            caller: ("viewer", "viewer"),
            body: "{}",
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "an application",
            caller: ("demo-app", "demo-secret"),
            body: "{}",
            status: 401,
            error: "invalid_client",
        },
    ];
    for Case { name, caller, body, status, error } in table {
        let reply = register_rfc7591(&rig, caller, body);
        assert_eq!(reply.0.status, status, "{name}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{name}");
        assert!(!reply.field("error_description").contains("orders:write"), "{name}");
    }
    let basic = format!("Basic {}", encode_basic_credentials("admin", "admin"));
    let form = rig.endpoint("POST", "/register", Some(&basic), Some(FORM), "client_name=x");
    assert_eq!(form.field("error"), "invalid_request");
    let get = rig.endpoint("GET", "/register", Some(&basic), None, "");
    assert_eq!((get.0.status, get.0.header("allow")), (405, Some("POST")));
    // Registration off: no RFC 7591 endpoint.
    assert_eq!(Rig::with_config(DEMO).gateway().endpoint("/register"), None);
}

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
    let rig = Rig::with_config(&DEMO.replacen(
        "\"applications\"",
        "\"lockout\": {\"tracked_names\": 8}, \"applications\"",
        1,
    ));
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

#[test]
fn restoring_old_credentials_does_not_revive_ended_tokens() {
    let rig = Rig::demo();
    // Each load records its credentials, as every VM does in on_configure; the clock moves
    // between loads as it would between config updates.
    let load = |json: &str| {
        rig.clock.advance(10);
        let config = Config::from_json(json.as_bytes()).unwrap();
        let changes =
            CredentialChanges::record(&rig.shared, &config.credentials(), rig.clock.now_millis().unwrap())
                .unwrap();
        (config, changes)
    };
    let status_under = |loaded: &(Config, CredentialChanges), token: &str| {
        let authorization = format!("Bearer {token}");
        let request = ApiRequest { method: "GET", path: "/api/orders", authorization: Some(&authorization) };
        status_of(&rig.gateway_with(loaded).check_bearer(&request))
    };
    let issue_under = |loaded: &(Config, CredentialChanges)| {
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
        let request = EndpointRequest {
            client_address: None,
            method: "POST",
            path: "/token",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: b"grant_type=client_credentials",
        };
        Reply(rig.gateway_with(loaded).serve(&Endpoint::Token, &request)).field("access_token")
    };
    let original = load(DEMO);
    let token = issue_under(&original);
    assert_eq!(status_under(&original, &token), 200);
    // Reloading the same config changes nothing.
    assert_eq!(status_under(&load(DEMO), &token), 200);
    let rotated = load(&DEMO.replace("demo-secret", "rotated"));
    assert_eq!(status_under(&rotated, &token), 401);
    assert_eq!(status_under(&load(DEMO), &token), 401, "rolling back revived the token");
    // Envoy may reuse the very first config's root without on_configure: its timer re-reads
    // the changes, and with them the token stays dead.
    let reused = (Config::from_json(DEMO.as_bytes()).unwrap(), CredentialChanges::read(&rig.shared).unwrap());
    assert_eq!(status_under(&reused, &token), 401, "a reused root revived the token");
    // Removing the application and adding it back later does not revive its tokens either.
    let fresh = issue_under(&load(DEMO));
    rig.clock.advance(1);
    let with_another_app = DEMO.replacen(
        "\"applications\": [",
        "\"applications\": [ { \"consumer_key\": \"other\", \"consumer_secret\": \"x\", \"scopes\": [\"orders:read\"] },",
        1,
    );
    let without_demo_app =
        with_another_app.replace("\"consumer_key\": \"demo-app\"", "\"consumer_key\": \"renamed\"");
    assert_eq!(status_under(&load(&with_another_app), &fresh), 200);
    load(&without_demo_app);
    assert_eq!(
        status_under(&load(&with_another_app), &fresh),
        401,
        "re-adding the application revived its token"
    );
    // Tokens issued after the last change work.
    let latest = load(&with_another_app);
    assert_eq!(status_under(&latest, &issue_under(&latest)), 200);
}

/// After a config update Envoy keeps serving the connections it drains with the old config's
/// VMs (for up to 600 s by default): once they re-read the credential record, the old secret
/// and password no longer authenticate there, and no token issued under them stands, not even
/// one they minted after the change while their view was still a timer tick old.
#[test]
fn an_old_configs_vm_refuses_credentials_a_later_config_changed() {
    // keep-app stays as it is, so the admin's password is checked on its own.
    let before = DEMO.replacen(
        "\"applications\": [",
        "\"applications\": [ { \"consumer_key\": \"keep-app\", \"consumer_secret\": \"keep\", \"grant_types\": [\"client_credentials\", \"password\"], \"scopes\": [\"orders:read\"] },",
        1,
    );
    let after =
        before.replace("demo-secret", "rotated").replace("\"password\": \"admin\"", "\"password\": \"new\"");
    let rig = Rig::with_config(&before);
    let load = |json: &str| {
        rig.clock.advance(10);
        let config = Config::from_json(json.as_bytes()).unwrap();
        let now = rig.clock.now_millis().unwrap();
        let changes = CredentialChanges::record(&rig.shared, &config.credentials(), now).unwrap();
        (config, changes)
    };
    let post = |loaded: &(Config, CredentialChanges), (key, secret): (&str, &str), body: &str| {
        let basic = format!("Basic {}", encode_basic_credentials(key, secret));
        let request = EndpointRequest {
            method: "POST",
            path: "/token",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: body.as_bytes(),
            client_address: None,
        };
        Reply(rig.gateway_with(loaded).serve(&Endpoint::Token, &request))
    };
    let status_under = |loaded: &(Config, CredentialChanges), token: &str| {
        let authorization = format!("Bearer {token}");
        let request = ApiRequest { method: "GET", path: "/api/orders", authorization: Some(&authorization) };
        status_of(&rig.gateway_with(loaded).check_bearer(&request))
    };
    const CC: &str = "grant_type=client_credentials";
    const OLD_PASSWORD: &str = "grant_type=password&username=admin&password=admin";
    let (old_app, keep_app, new_app) =
        (("demo-app", "demo-secret"), ("keep-app", "keep"), ("demo-app", "rotated"));
    let old = load(&before);
    let kept_admin = post(&old, keep_app, OLD_PASSWORD).field("access_token");
    let rotated = load(&after);
    // The old config's VM before its timer re-reads the record (at most one tick): it still
    // takes the old credentials.
    let minted_stale = post(&old, old_app, CC);
    assert_eq!(minted_stale.0.status, 200, "{}", minted_stale.text());
    let minted_stale = minted_stale.field("access_token");
    let old_reread =
        (Config::from_json(before.as_bytes()).unwrap(), CredentialChanges::read(&rig.shared).unwrap());
    let refused = post(&old_reread, old_app, CC);
    assert_eq!((refused.0.status, refused.field("error").as_str()), (401, "invalid_client"));
    let refused = post(&old_reread, keep_app, OLD_PASSWORD);
    assert_eq!((refused.0.status, refused.field("error").as_str()), (400, "invalid_grant"));
    assert_eq!(status_under(&old_reread, &minted_stale), 401, "a token minted with the old secret stands");
    assert_eq!(status_under(&old_reread, &kept_admin), 401, "a token of the old password stands");
    assert_eq!(status_under(&rotated, &minted_stale), 401);
    // What the change left alone still works on the old config's VM.
    assert_eq!(status_under(&old_reread, &post(&old_reread, keep_app, CC).field("access_token")), 200);
    // The new config's VM is never refused because of its own change.
    assert_eq!(status_under(&rotated, &post(&rotated, new_app, CC).field("access_token")), 200);
    let password = post(&rotated, keep_app, "grant_type=password&username=admin&password=new");
    assert_eq!(status_under(&rotated, &password.field("access_token")), 200, "{}", password.text());
}

/// A config restored exactly while its old plugin still exists: Envoy reuses that plugin's
/// VMs without `on_configure`, so they look like the draining ones of the old config. The
/// connection ids tell them apart: a VM of the newest config fixes the boundary on its first
/// request; below it a superseded VM refuses, at or above it the VM is current again.
#[test]
fn connection_ids_tell_a_restored_configs_vm_from_a_draining_one() {
    let before = DEMO.to_owned();
    let after = before.replace("demo-secret", "rotated");
    let rig = Rig::with_config(&before);
    struct Vm {
        config: Config,
        generation: std::cell::Cell<u64>,
    }
    let load = |json: &str| {
        rig.clock.advance(10);
        let config = Config::from_json(json.as_bytes()).unwrap();
        let now = rig.clock.now_millis().unwrap();
        let changes = CredentialChanges::record(&rig.shared, &config.credentials(), now).unwrap();
        Vm { config, generation: std::cell::Cell::new(changes.generation()) }
    };
    // Each request: the VM's view as its timer last read it, on a connection of this id.
    let token = |vm: &Vm, connection: u64, secret: &str| {
        rig.connection.0.set(Some(connection));
        let changes = CredentialChanges::read(&rig.shared).unwrap();
        let host = Host { credential_changes: &changes, config_generation: &vm.generation, ..rig.host() };
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", secret));
        let request = EndpointRequest {
            method: "POST",
            path: "/token",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: b"grant_type=client_credentials",
            client_address: None,
        };
        Reply(Gateway::new(&vm.config, host).serve(&Endpoint::Token, &request))
    };
    let bearer = |vm: &Vm, connection: u64, token: &str| {
        rig.connection.0.set(Some(connection));
        let changes = CredentialChanges::read(&rig.shared).unwrap();
        let host = Host { credential_changes: &changes, config_generation: &vm.generation, ..rig.host() };
        let authorization = format!("Bearer {token}");
        let request = ApiRequest { method: "GET", path: "/api/orders", authorization: Some(&authorization) };
        status_of(&Gateway::new(&vm.config, host).check_bearer(&request))
    };
    let old = load(&before);
    let new = load(&after);
    let old_generation = old.generation.get();
    // No request reached the new config yet: the old secret is refused everywhere.
    assert_eq!(token(&old, 60, "demo-secret").0.status, 401, "the old secret worked before any boundary");
    let minted_new = token(&new, 40, "rotated");
    assert_eq!(minted_new.0.status, 200, "{}", minted_new.text());
    let minted_new = minted_new.field("access_token");
    // The old config's VM on a connection accepted before the change (below 40) is draining.
    let refused = token(&old, 30, "demo-secret");
    assert_eq!((refused.0.status, refused.field("error").as_str()), (401, "invalid_client"));
    assert_eq!(old.generation.get(), old_generation, "a refusal moved the VM's generation");
    // The same VM on a connection accepted after it is a restored config's: it serves.
    let restored = token(&old, 50, "demo-secret");
    assert_eq!(restored.0.status, 200, "{}", restored.text());
    assert!(old.generation.get() > new.generation.get(), "the restored VM did not re-assert its config");
    assert_eq!(bearer(&old, 55, &restored.field("access_token")), 200);
    // The new config's VM, now draining, refuses its secret and its tokens.
    let refused = token(&new, 45, "rotated");
    assert_eq!((refused.0.status, refused.field("error").as_str()), (401, "invalid_client"));
    assert_eq!(bearer(&new, 45, &minted_new), 401, "a token of the superseded secret stands");
    // With no connection id to go by, a superseded credential is refused.
    rig.connection.0.set(None);
    let changes = CredentialChanges::read(&rig.shared).unwrap();
    let host = Host { credential_changes: &changes, config_generation: &new.generation, ..rig.host() };
    let unknown = Gateway::new(&new.config, host);
    assert!(unknown.configured_application("demo-app").is_none());
}

/// A host whose clock call fails.
struct StoppedClock;

impl crate::host::Clock for StoppedClock {
    fn now_millis(&self) -> Option<u64> {
        None
    }
}

#[test]
fn a_failed_clock_refuses_requests_and_erases_nothing() {
    let rig = Rig::demo();
    let token = rig.access_token("grant_type=client_credentials");
    let stopped = Gateway::new(&rig.config, Host { clock: &StoppedClock, ..rig.host() });

    let check = stopped.check_bearer(&ApiRequest {
        method: "GET",
        path: "/api/orders",
        authorization: Some(&format!("Bearer {token}")),
    });
    assert_eq!(status_of(&check), 503);
    let endpoint = stopped.endpoint("/token").unwrap();
    let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
    let body = b"grant_type=client_credentials";
    let request = EndpointRequest {
        client_address: None,
        method: "POST",
        path: "/token",
        authorization: Some(&basic),
        content_type: Some(FORM),
        body,
    };
    assert_eq!(stopped.serve(&endpoint, &request).status, 503);
    // A sweep with no time skips its slice rather than prune against a made-up time.
    assert_eq!(stopped.sweep_step(1, 1), Err(StoreError::Unavailable));

    // With the clock back, the token issued before still works.
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &token)), 200);
}

/// Passes through to a store, but fails every read of the registry after the first `allowed`.
struct RegistryReadsFailAfter<'s> {
    inner: &'s MemoryStore,
    allowed: std::cell::Cell<u32>,
}

impl crate::host::SharedStore for RegistryReadsFailAfter<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        if key.starts_with("tokengate/clients/") {
            let left = self.allowed.get();
            if left == 0 {
                return Err(StoreError::Unavailable);
            }
            self.allowed.set(left - 1);
        }
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        self.inner.set(key, value, cas)
    }
}

#[test]
fn refreshing_a_registered_clients_grant_reads_the_registry_once() {
    let rig = lifecycle_rig();
    let payload = r#"{"callbackUrl":"","clientName":"mobile","owner":"admin","grantType":"password refresh_token","saasApp":false}"#;
    let registered = register(&rig, ("admin", "admin"), "application/json", payload);
    let (client_id, secret) = (registered.field("clientId"), registered.field("clientSecret"));
    let issued =
        rig.post_as(&client_id, &secret, "/token", "grant_type=password&username=admin&password=admin");
    let refresh = issued.field("refresh_token");

    // Authentication reads the client's record; a second read failing must not matter, and
    // above all must not answer invalid_grant (the client would drop a good refresh token).
    let shared = RegistryReadsFailAfter { inner: &rig.shared, allowed: std::cell::Cell::new(1) };
    let gateway = Gateway::new(&rig.config, Host { shared: &shared, ..rig.host() });
    let basic = format!("Basic {}", encode_basic_credentials(&client_id, &secret));
    let body = format!("grant_type=refresh_token&refresh_token={refresh}");
    let request = EndpointRequest {
        client_address: None,
        method: "POST",
        path: "/token",
        authorization: Some(&basic),
        content_type: Some(FORM),
        body: body.as_bytes(),
    };
    let reply = Reply(gateway.serve(&gateway.endpoint("/token").unwrap(), &request));
    assert_eq!(reply.0.status, 200, "{}", reply.text());
    assert!(!reply.field("refresh_token").is_empty());
}

#[path = "subscription_tests.rs"]
mod subscription_tests;

#[path = "code_flow_tests.rs"]
mod code_flow_tests;
