//! The browser package's test cases, run twice: natively (`native.rs`, part of `cargo test`) and
//! compiled to wasm in headless Chromium (`wasm.rs`, `make test-web`), like serde-wasm-bindgen's
//! one test body for two environments.
//!
//! The tables are data so that `wasm.rs` can also drive them through the JavaScript-facing
//! glue, where values come from JS (`JSON.parse`, strings, objects) instead of Rust.

#![allow(dead_code)] // each runner uses what applies to it

use tokengate::browser::challenge::{parse_challenges, NextStep};
use tokengate::browser::sign_in::{self, AuthorizationInput, Pkce, SignInError};
use tokengate::browser::{
    self, ClientError, GrantRequest, GrantRequestInput, ScopeInput, TokenSet, FORM_CONTENT_TYPE,
};
use tokengate::oauth::credentials::parse_basic_authorization;
use tokengate::oauth::form::FormParams;
use tokengate::oauth::pkce::{self, CodeChallenge};
use tokengate::oauth::scope::ScopeSet;

/// WSO2 API Manager's documented example pair and what `base64` of "key:secret" gives for it.
pub const SEED_KEY: &str = "wU62DjlyDBnq87GlBwplfqvmAbAa";
pub const SEED_SECRET: &str = "ksdSdoefDDP7wpaElfqvmjDue";
pub const SEED_BASE64: &str = "d1U2MkRqbHlEQm5xODdHbEJ3cGxmcXZtQWJBYTprc2RTZG9lZkREUDd3cGFFbGZxdm1qRHVl";

/// Encoded credentials and what decoding them gives: a pair or an error code.
pub const DECODE_TABLE: &[(&str, Result<(&str, &str), &str>)] = &[
    (SEED_BASE64, Ok((SEED_KEY, SEED_SECRET))),
    ("ZGVtby1hcHA6ZGVtby1zZWNyZXQ=", Ok(("demo-app", "demo-secret"))),
    // Split at the first colon: the secret keeps the rest.
    ("Y2xpZW50OnNlYzpyZXQ=", Ok(("client", "sec:ret"))),
    // Padding is optional.
    ("Y2xpZW50OnNlY3JldA", Ok(("client", "secret"))),
    // Each half is form-decoded: %3A is a colon, + a space, %2B a plus.
    ("bXklM0FjbGllbnQ6c2VjcmV0", Ok(("my:client", "secret"))),
    ("Y2xpZW50OmErYg==", Ok(("client", "a b"))),
    ("Y2xpZW50OmElMkJi", Ok(("client", "a+b"))),
    ("Y2xpK2VudCUyQjE6czNjciUzQWV0JTJCJTI1JTJGJTNE", Ok(("cli ent+1", "s3cr:et+%/="))),
    ("", Err("bad_base64")),
    ("!!!!", Err("bad_base64")),
    ("-_86Y2xpZW50Pw==", Err("bad_base64")),
    ("Y2xpZW50", Err("no_colon")),
    ("//46eA==", Err("not_utf8")),
    ("YTolRkY=", Err("not_utf8")),
    ("YTolWlo=", Err("bad_percent_encoding")),
    ("OnNlY3JldA==", Err("empty_consumer_key")),
    ("Y2xpZW50Og==", Err("empty_consumer_secret")),
    ("Y2xpZW50OnNlAGNyZXQ=", Err("control_character")),
    ("azphJTBBYg==", Err("control_character")),
];

/// What a `/token` response body should turn into at `NOW_MS`.
pub const NOW_MS: u64 = 1_700_000_000_000;

#[derive(Debug, Clone, Copy)]
pub struct ExpectedSet {
    pub access_token: &'static str,
    pub expires_in: Option<u64>,
    pub refresh_token: Option<&'static str>,
    pub scopes: &'static [&'static str],
}

pub const GATEWAY_PASSWORD_GRANT: &str = r#"{"access_token":"AQAAAAcAAAB4mX-_vK9.xY~z","token_type":"Bearer","expires_in":3600,"refresh_token":"AgAAAAcAAAB4","scope":"orders:read orders:write"}"#;

pub const TOKEN_RESPONSE_TABLE: &[(&str, Result<ExpectedSet, &str>)] = &[
    (
        GATEWAY_PASSWORD_GRANT,
        Ok(ExpectedSet {
            access_token: "AQAAAAcAAAB4mX-_vK9.xY~z",
            expires_in: Some(3600),
            refresh_token: Some("AgAAAAcAAAB4"),
            scopes: &["orders:read", "orders:write"],
        }),
    ),
    // A never-expiring token (negative validity in the config) has no expires_in; the token type
    // is case-insensitive; unknown members are ignored (RFC 6749 §5.1).
    (
        r#"{"access_token":"abc==","token_type":"bearer","scope":"a","x-extra":[1,{"b":null}]}"#,
        Ok(ExpectedSet { access_token: "abc==", expires_in: None, refresh_token: None, scopes: &["a"] }),
    ),
    // null counts as absent, as for serde's Option.
    (
        r#"{"access_token":"t","token_type":"Bearer","expires_in":null,"refresh_token":null,"scope":null}"#,
        Ok(ExpectedSet { access_token: "t", expires_in: None, refresh_token: None, scopes: &[] }),
    ),
    (
        r#"{"access_token":"t","token_type":"Bearer","expires_in":0}"#,
        Ok(ExpectedSet { access_token: "t", expires_in: Some(0), refresh_token: None, scopes: &[] }),
    ),
    // RFC 6749 §5.2 errors carry the server's code, whatever else is there.
    (r#"{"error":"invalid_grant","error_description":"the refresh token is unknown"}"#, Err("invalid_grant")),
    (r#"{"error":"invalid_client"}"#, Err("invalid_client")),
    (r#"{"error":"invalid_scope","access_token":"t","token_type":"Bearer"}"#, Err("invalid_scope")),
    ("", Err("not_json")),
    ("<html>502 Bad Gateway</html>", Err("not_json")),
    (r#"{"access_token":"t","#, Err("not_json")),
    ("[]", Err("invalid_token_response")),
    ("\"Bearer\"", Err("invalid_token_response")),
    ("null", Err("invalid_token_response")),
    ("{}", Err("invalid_token_response")),
    (r#"{"error":42}"#, Err("invalid_token_response")),
    (r#"{"token_type":"Bearer"}"#, Err("invalid_token_response")),
    (r#"{"access_token":"t"}"#, Err("invalid_token_response")),
    (r#"{"access_token":7,"token_type":"Bearer"}"#, Err("invalid_token_response")),
    // expires_in must be a JSON number (G5) of whole, non-negative seconds.
    (r#"{"access_token":"t","token_type":"Bearer","expires_in":"3600"}"#, Err("invalid_token_response")),
    (r#"{"access_token":"t","token_type":"Bearer","expires_in":-1}"#, Err("invalid_token_response")),
    (r#"{"access_token":"t","token_type":"Bearer","expires_in":1.5}"#, Err("invalid_token_response")),
    (r#"{"access_token":"t","token_type":"Bearer","expires_in":1e300}"#, Err("invalid_token_response")),
    (r#"{"access_token":"t","token_type":"Bearer","scope":"a  b"}"#, Err("invalid_token_response")),
    (r#"{"access_token":"t","token_type":"Bearer","scope":["a"]}"#, Err("invalid_token_response")),
    (r#"{"access_token":"has space","token_type":"Bearer"}"#, Err("invalid_token_response")),
    (r#"{"access_token":"t","token_type":"Bearer","refresh_token":""}"#, Err("invalid_token_response")),
    (r#"{"access_token":"t","token_type":"mac"}"#, Err("unsupported_token_type")),
];

/// `WWW-Authenticate` values and what a client should make of the first challenge: scheme,
/// realm, error, scope names, next step; or an error.
pub type ExpectedChallenge =
    (&'static str, Option<&'static str>, Option<&'static str>, &'static [&'static str], &'static str);

pub const CHALLENGE_TABLE: &[(&str, Result<ExpectedChallenge, ()>)] = &[
    // The gateway's own challenges (RFC 6750 §3).
    (r#"Bearer realm="tokengate""#, Ok(("Bearer", Some("tokengate"), None, &[], "authenticate"))),
    (
        r#"Bearer realm="tokengate", error="invalid_token", error_description="the access token expired""#,
        Ok(("Bearer", Some("tokengate"), Some("invalid_token"), &[], "refresh")),
    ),
    (
        r#"Bearer realm="tokengate", error="insufficient_scope", error_description="the access token lacks a required scope", scope="orders:write""#,
        Ok(("Bearer", Some("tokengate"), Some("insufficient_scope"), &["orders:write"], "request_scope")),
    ),
    (
        r#"Bearer realm="tokengate", error="invalid_request", error_description="the Authorization header is malformed""#,
        Ok(("Bearer", Some("tokengate"), Some("invalid_request"), &[], "fix_request")),
    ),
    (r#"Basic realm="tokengate""#, Ok(("Basic", Some("tokengate"), None, &[], "authenticate"))),
    // Scheme and parameter names are case-insensitive; tokens need no quotes; spaces around `=`.
    (
        r#"bearer REALM=api , Error = "insufficient_scope", scope="b a""#,
        Ok(("bearer", Some("api"), Some("insufficient_scope"), &["a", "b"], "request_scope")),
    ),
    (r#"Bearer error="something_new""#, Ok(("Bearer", None, Some("something_new"), &[], "unknown"))),
    (r#"Newauth realm="apps""#, Ok(("Newauth", Some("apps"), None, &[], "unknown"))),
    ("Bearer", Ok(("Bearer", None, None, &[], "authenticate"))),
    ("", Err(())),
    ("   ,  ", Err(())),
    (r#"Bearer realm="tokengate"#, Err(())),
    (r#"Bearer realm="a", realm="b""#, Err(())),
    (r#"Bearer realm="a", REALM="b""#, Err(())),
    (r#"Bearer realm="a" error="b""#, Err(())),
    (r#"Bearer scope="a  b""#, Err(())),
    ("Bearer scope=\"caf\u{e9}\"", Err(())),
    // A lone word after the scheme is a token68 (RFC 9110 §11.2), not a parameter.
    ("Bearer realm", Ok(("Bearer", None, None, &[], "authenticate"))),
    (r#"Bearer realm="a", error="#, Err(())),
    ("Bearer a b", Err(())),
    (r#"Bearer realm="a\"#, Err(())),
    ("Bearer realm=\"a\u{1}b\"", Err(())),
    (r#"="x""#, Err(())),
];

/// Every code the package itself throws. None is an RFC 6749 §5.2 or RFC 6750 §3.1 code, so a
/// code from that list always means the server said it.
pub const PACKAGE_CODES: &[&str] = &[
    "bad_base64",
    "no_colon",
    "not_utf8",
    "bad_percent_encoding",
    "empty_consumer_key",
    "empty_consumer_secret",
    "control_character",
    "malformed_bearer_token",
    "missing_parameter",
    "unexpected_parameter",
    "unknown_grant_type",
    "unknown_token_type_hint",
    "malformed_scope",
    "not_json",
    "invalid_token_response",
    "unsupported_token_type",
    "malformed_challenge",
    "invalid_argument",
    "malformed_code_verifier",
    "malformed_redirect_uri",
    "malformed_endpoint",
    "malformed_callback",
    "state_mismatch",
    "issuer_mismatch",
    "randomness_unavailable",
    "malformed_jwt",
    "unsecured_jwt",
    "unsupported_jwt_algorithm",
    "unknown_signing_key",
    "bad_jwt_signature",
    "invalid_jwks",
    "missing_claim",
    "wrong_issuer",
    "wrong_audience",
    "wrong_authorized_party",
    "id_token_expired",
    "issued_in_the_future",
    "wrong_nonce",
    "authentication_too_old",
];

pub const OAUTH_CODES: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
    "server_error",
    "temporarily_unavailable",
    "invalid_token",
    "insufficient_scope",
    "unsupported_response_type",
    "invalid_redirect_uri",
    "invalid_client_metadata",
];

fn code<T>(result: Result<T, ClientError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(error) => error.code().to_owned(),
    }
}

fn request(input: GrantRequestInput) -> Result<GrantRequest, ClientError> {
    GrantRequest::from_input(&input)
}

// ---------------------------------------------------------------------------------------------
// Credentials

pub fn seed_pair_encodes_exactly_like_base64_of_key_colon_secret() {
    assert_eq!(browser::encode_credentials(SEED_KEY, SEED_SECRET).unwrap(), SEED_BASE64);
    assert_eq!(browser::basic_authorization(SEED_KEY, SEED_SECRET).unwrap(), format!("Basic {SEED_BASE64}"));
}

pub fn reserved_characters_are_form_encoded_before_base64() {
    // RFC 6749 §2.3.1: "cli ent+1" / "s3cr:et+%/=" go on the wire as
    // base64("cli+ent%2B1:s3cr%3Aet%2B%25%2F%3D"), as openid-client and the oauth2 crate send it.
    assert_eq!(
        browser::encode_credentials("cli ent+1", "s3cr:et+%/=").unwrap(),
        "Y2xpK2VudCUyQjE6czNjciUzQWV0JTJCJTI1JTJGJTNE"
    );
}

pub fn decoding_follows_the_table() {
    for (encoded, expected) in DECODE_TABLE {
        let got = browser::decode_credentials(encoded);
        match expected {
            Ok((key, secret)) => match got {
                Ok((k, s)) => assert_eq!((k.as_str(), s.as_str()), (*key, *secret), "{encoded:?}"),
                Err(error) => panic!("{encoded:?}: {}", error.code()),
            },
            Err(expected_code) => assert_eq!(code(got), *expected_code, "{encoded:?}"),
        }
    }
}

pub fn encoding_round_trips_and_the_gateway_reads_it() {
    for (key, secret) in [
        ("demo-app", "demo-secret"),
        ("a-b.c_d~e", "s-e.c_r~t"),
        ("cli ent+1", "s3cr:et+%/="),
        ("ключ", "пароль 🔑"),
        ("a", ":"),
    ] {
        let encoded = browser::encode_credentials(key, secret).unwrap();
        let (k, s) = browser::decode_credentials(&encoded).unwrap();
        assert_eq!((k.as_str(), s.as_str()), (key, secret));
        // The gateway's own header parser agrees.
        let header = browser::basic_authorization(key, secret).unwrap();
        let parsed = parse_basic_authorization(&header).map_err(|_| ()).unwrap();
        assert_eq!((parsed.consumer_key.as_str(), parsed.consumer_secret.as_str()), (key, secret));
    }
}

pub fn encoding_refuses_what_the_gateway_would_refuse() {
    assert_eq!(code(browser::encode_credentials("", "secret")), "empty_consumer_key");
    assert_eq!(code(browser::encode_credentials("key", "")), "empty_consumer_secret");
    assert_eq!(code(browser::encode_credentials("k\ney", "secret")), "control_character");
    assert_eq!(code(browser::encode_credentials("key", "sec\u{7f}ret")), "control_character");
    assert_eq!(code(browser::basic_authorization("", "")), "empty_consumer_key");
}

pub fn bearer_headers_carry_only_b64tokens() {
    assert_eq!(browser::bearer_authorization("AQAA-_.~+/9==").unwrap(), "Bearer AQAA-_.~+/9==");
    for bad in ["", "=", "a b", " a", "a\"b", "a=b", "tök", "a\n"] {
        assert_eq!(code(browser::bearer_authorization(bad)), "malformed_bearer_token", "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Token requests

pub fn token_request_bodies_are_what_the_gateway_parses() {
    let plain = request(GrantRequestInput { grant_type: Some("client_credentials"), ..Default::default() });
    assert_eq!(plain.unwrap().form_body(), "grant_type=client_credentials");

    let scoped = request(GrantRequestInput {
        grant_type: Some("client_credentials"),
        scope: Some(ScopeInput::Text("orders:read")),
        ..Default::default()
    });
    assert_eq!(scoped.unwrap().form_body(), "grant_type=client_credentials&scope=orders%3Aread");

    let password = request(GrantRequestInput {
        grant_type: Some("password"),
        username: Some("admin"),
        password: Some("p@ss w+rd&x=1"),
        scope: Some(ScopeInput::Text("orders:write orders:read")),
        ..Default::default()
    })
    .unwrap()
    .form_body();
    let params = FormParams::parse(password.as_bytes()).unwrap();
    assert_eq!(params.get("grant_type"), Some("password"));
    assert_eq!(params.get("username"), Some("admin"));
    assert_eq!(params.get("password"), Some("p@ss w+rd&x=1"));
    assert_eq!(params.get("scope"), Some("orders:read orders:write"));

    let refresh = request(GrantRequestInput {
        grant_type: Some("refresh_token"),
        refresh_token: Some("AgAA+/=="),
        ..Default::default()
    })
    .unwrap()
    .form_body();
    assert_eq!(refresh, "grant_type=refresh_token&refresh_token=AgAA%2B%2F%3D%3D");
    assert_eq!(FORM_CONTENT_TYPE, "application/x-www-form-urlencoded");
}

pub fn incomplete_token_requests_are_refused_before_sending() {
    let cases: &[(GrantRequestInput, &str, &str)] = &[
        (GrantRequestInput::default(), "missing_parameter", "grant type"),
        (GrantRequestInput { grant_type: Some(""), ..Default::default() }, "missing_parameter", "grant type"),
        (
            GrantRequestInput { grant_type: Some("implicit"), ..Default::default() },
            "unknown_grant_type",
            "password",
        ),
        (
            GrantRequestInput { grant_type: Some("password"), password: Some("x"), ..Default::default() },
            "missing_parameter",
            "password grant needs a username",
        ),
        (
            GrantRequestInput {
                grant_type: Some("password"),
                username: Some("admin"),
                password: Some(""),
                ..Default::default()
            },
            "missing_parameter",
            "needs a password",
        ),
        (
            GrantRequestInput { grant_type: Some("refresh_token"), ..Default::default() },
            "missing_parameter",
            "needs a refresh token",
        ),
        (
            GrantRequestInput {
                grant_type: Some("client_credentials"),
                password: Some("x"),
                ..Default::default()
            },
            "unexpected_parameter",
            "does not take a password",
        ),
        (
            GrantRequestInput {
                grant_type: Some("refresh_token"),
                refresh_token: Some("r"),
                username: Some("u"),
                ..Default::default()
            },
            "unexpected_parameter",
            "does not take a username",
        ),
        (
            GrantRequestInput {
                grant_type: Some("client_credentials"),
                scope: Some(ScopeInput::Text("a  b")),
                ..Default::default()
            },
            "malformed_scope",
            "single spaces",
        ),
    ];
    for (input, expected_code, in_message) in cases {
        match request(*input) {
            Ok(_) => panic!("accepted: {expected_code}"),
            Err(error) => {
                assert_eq!(error.code(), *expected_code);
                assert!(error.message().contains(in_message), "{:?} lacks {in_message:?}", error.message());
            }
        }
    }
    let names = ["a b".to_owned()];
    let listed = request(GrantRequestInput {
        grant_type: Some("client_credentials"),
        scope: Some(ScopeInput::Names(&names)),
        ..Default::default()
    });
    assert_eq!(code(listed), "malformed_scope");
}

pub fn empty_scopes_mean_the_servers_default() {
    let none: [String; 0] = [];
    for scope in [ScopeInput::Text(""), ScopeInput::Names(&none)] {
        let body = request(GrantRequestInput {
            grant_type: Some("client_credentials"),
            scope: Some(scope),
            ..Default::default()
        })
        .unwrap()
        .form_body();
        assert_eq!(body, "grant_type=client_credentials");
    }
}

// ---------------------------------------------------------------------------------------------
// Token responses

pub fn check_token_set(set: &TokenSet, expected: &ExpectedSet, context: &str) {
    assert_eq!(set.access_token, expected.access_token, "{context}");
    assert!(set.token_type.eq_ignore_ascii_case("bearer"), "{context}");
    assert_eq!(set.expires_in, expected.expires_in, "{context}");
    assert_eq!(set.expires_at_ms, expected.expires_in.map(|secs| NOW_MS + secs * 1000), "{context}");
    assert_eq!(set.refresh_token.as_deref(), expected.refresh_token, "{context}");
    let scopes: Vec<&str> = set.scope.iter().flat_map(ScopeSet::iter).collect();
    assert_eq!(scopes, expected.scopes, "{context}");
}

pub fn token_responses_follow_the_table() {
    for (json, expected) in TOKEN_RESPONSE_TABLE {
        let got = browser::parse_token_response(json, NOW_MS);
        match expected {
            Ok(expected) => match got {
                Ok(set) => check_token_set(&set, expected, json),
                Err(error) => panic!("{json}: {}", error.code()),
            },
            Err(expected_code) => assert_eq!(code(got), *expected_code, "{json}"),
        }
    }
}

pub fn server_errors_keep_code_description_and_scope() {
    let json = r#"{"error":"insufficient_scope","error_description":"needs more","scope":"orders:write"}"#;
    match browser::parse_token_response(json, NOW_MS) {
        Err(error @ ClientError::Server(_)) => {
            assert_eq!(error.code(), "insufficient_scope");
            assert!(error.message().contains("needs more"));
            let ClientError::Server(response) = error else { unreachable!() };
            assert_eq!(response.scope.as_deref(), Some("orders:write"));
        }
        _ => panic!("not a server error"),
    }
}

pub fn expiry_and_scopes_answer_questions() {
    let set = browser::parse_token_response(GATEWAY_PASSWORD_GRANT, NOW_MS).unwrap();
    let expires_at = NOW_MS + 3_600_000;
    assert!(!set.is_expired(NOW_MS, 0));
    assert!(!set.is_expired(expires_at - 1, 0));
    assert!(set.is_expired(expires_at, 0));
    assert!(set.is_expired(expires_at - 30_000, 30_000), "skew makes it expire early");
    assert!(!set.is_expired(expires_at - 30_001, 30_000));
    assert_eq!(set.remaining_ms(NOW_MS + 1_000), Some(3_599_000));
    assert_eq!(set.remaining_ms(expires_at + 5), Some(0));

    assert!(set.has_scopes(&ScopeSet::parse("orders:read").unwrap()));
    assert!(set.has_scopes(&ScopeSet::parse("orders:write orders:read").unwrap()));
    assert!(!set.has_scopes(&ScopeSet::parse("orders:read admin").unwrap()));
    assert!(!set.has_scopes(&ScopeSet::parse("Orders:read").unwrap()), "scopes are case-sensitive");
    assert!(set.has_scopes(&ScopeSet::default()));

    let forever =
        browser::parse_token_response(r#"{"access_token":"t","token_type":"Bearer"}"#, NOW_MS).unwrap();
    assert!(!forever.is_expired(u64::MAX, u64::MAX));
    assert_eq!(forever.remaining_ms(NOW_MS), None);
    // No scope listed: only an empty requirement is known to be met.
    assert!(!forever.has_scopes(&ScopeSet::parse("a").unwrap()));
}

pub fn refresh_requests_come_from_the_token_set() {
    let set = browser::parse_token_response(GATEWAY_PASSWORD_GRANT, NOW_MS).unwrap();
    let request = set.refresh_request(Some(ScopeSet::parse("orders:read").unwrap())).unwrap();
    assert_eq!(
        request.form_body(),
        "grant_type=refresh_token&refresh_token=AgAAAAcAAAB4&scope=orders%3Aread"
    );
}

pub fn revocation_bodies_name_the_token_and_hint() {
    assert_eq!(browser::revocation_body("AQAA+/==", None).unwrap(), "token=AQAA%2B%2F%3D%3D");
    assert_eq!(browser::revocation_body("r", Some("")).unwrap(), "token=r");
    assert_eq!(
        browser::revocation_body("r", Some("refresh_token")).unwrap(),
        "token=r&token_type_hint=refresh_token"
    );
    let body = browser::revocation_body("a-b", Some("access_token")).unwrap();
    let params = FormParams::parse(body.as_bytes()).unwrap();
    assert_eq!(params.get("token"), Some("a-b"));
    assert_eq!(params.get("token_type_hint"), Some("access_token"));
    assert_eq!(code(browser::revocation_body("a b", None)), "malformed_bearer_token");
    assert_eq!(code(browser::revocation_body("t", Some("id_token"))), "unknown_token_type_hint");
}

pub fn package_codes_never_collide_with_oauth_codes() {
    for package_code in PACKAGE_CODES {
        assert!(!OAUTH_CODES.contains(package_code), "{package_code}");
    }
}

// ---------------------------------------------------------------------------------------------
// Challenges

pub fn challenges_follow_the_table() {
    for (value, expected) in CHALLENGE_TABLE {
        let got = parse_challenges(value);
        match (expected, got) {
            (Ok((scheme, realm, error, scopes, step)), Ok(all)) => {
                let first = &all[0];
                assert_eq!(first.scheme, *scheme, "{value}");
                assert_eq!(first.realm(), *realm, "{value}");
                assert_eq!(first.error(), *error, "{value}");
                assert_eq!(first.scopes().iter().collect::<Vec<_>>(), *scopes, "{value}");
                assert_eq!(first.next_step().as_str(), *step, "{value}");
            }
            (Err(()), Err(_)) => {}
            (expected, got) => panic!("{value:?}: expected {expected:?}, got {got:?}"),
        }
    }
}

pub fn several_challenges_in_one_header() {
    // RFC 9110 §11.6.1's own example.
    let all =
        parse_challenges(r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#)
            .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].scheme, "Newauth");
    assert_eq!(all[0].param("type"), Some("1"));
    assert_eq!(all[0].param("TITLE"), Some(r#"Login to "apps""#));
    assert_eq!(all[1].scheme, "Basic");
    assert_eq!(all[1].realm(), Some("simple"));
    assert_eq!(all[1].next_step(), NextStep::Authenticate);

    let three = parse_challenges(r#"Basic realm="a", Bearer, Negotiate abc+/=="#).unwrap();
    let schemes: Vec<&str> = three.iter().map(|c| c.scheme.as_str()).collect();
    assert_eq!(schemes, ["Basic", "Bearer", "Negotiate"]);
    assert_eq!(three[2].token68.as_deref(), Some("abc+/=="));
    assert_eq!(three[1].params, []);
}

pub fn error_descriptions_are_unescaped() {
    let all =
        parse_challenges(r#"Bearer error="invalid_token", error_description="say \"hi\" \\ bye""#).unwrap();
    assert_eq!(all[0].error_description(), Some(r#"say "hi" \ bye"#));
}

mod id_tokens;
mod signing_in;
pub use id_tokens::*;
pub use signing_in::*;

/// Runs every case above as a test, with the attribute of the runner (`test` natively,
/// `wasm_bindgen_test` in the browser). One list, so the two runs cannot drift apart.
macro_rules! shared_cases {
    ($attr:meta) => {
        shared_cases!(@each $attr;
            seed_pair_encodes_exactly_like_base64_of_key_colon_secret,
            reserved_characters_are_form_encoded_before_base64,
            decoding_follows_the_table,
            encoding_round_trips_and_the_gateway_reads_it,
            encoding_refuses_what_the_gateway_would_refuse,
            bearer_headers_carry_only_b64tokens,
            token_request_bodies_are_what_the_gateway_parses,
            incomplete_token_requests_are_refused_before_sending,
            empty_scopes_mean_the_servers_default,
            token_responses_follow_the_table,
            server_errors_keep_code_description_and_scope,
            expiry_and_scopes_answer_questions,
            refresh_requests_come_from_the_token_set,
            revocation_bodies_name_the_token_and_hint,
            package_codes_never_collide_with_oauth_codes,
            challenges_follow_the_table,
            several_challenges_in_one_header,
            error_descriptions_are_unescaped,
            pkce_pairs_follow_rfc7636_appendix_b,
            pkce_from_random_bytes_meets_the_gateways_check,
            authorization_urls_carry_every_parameter,
            authorization_urls_keep_the_endpoints_query,
            authorization_input_is_checked_before_leaving,
            callbacks_follow_the_table,
            code_token_requests_are_what_the_gateway_parses,
            incomplete_code_token_requests_are_refused,
            id_token_claims_follow_the_table,
            a_verified_id_token_gives_its_claims,
            the_fixed_ed25519_id_token_is_signed_and_verified_alike,
            forged_id_tokens_are_refused,
            unusable_jwks_are_refused,
            decoding_without_verifying_reads_any_signer,
            a_token_response_keeps_its_id_token,
        );
    };
    (@each $attr:meta; $($name:ident),* $(,)?) => {
        $(
            #[$attr]
            fn $name() {
                cases::$name()
            }
        )*
    };
}
