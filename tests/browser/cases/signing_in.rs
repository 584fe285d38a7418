//! Signing in: PKCE, the authorization URL, the callback, the code's token request.

use super::*;

/// RFC 7636 Appendix B: these 32 octets, base64url, are its verifier; its challenge follows.
pub const APPENDIX_B_OCTETS: [u8; 32] = [
    116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214,
    191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
];
pub const APPENDIX_B_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const APPENDIX_B_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const SPA_REDIRECT: &str = "http://127.0.0.1:8080/console/callback";
pub const ISSUER: &str = "https://127.0.0.1:8243";

pub fn pkce_pairs_follow_rfc7636_appendix_b() {
    let pair = Pkce::from_random(&APPENDIX_B_OCTETS);
    assert_eq!(pair.verifier, APPENDIX_B_VERIFIER);
    assert_eq!(pair.challenge, APPENDIX_B_CHALLENGE);
    let own = Pkce::from_verifier(APPENDIX_B_VERIFIER).unwrap();
    assert_eq!(own.challenge, APPENDIX_B_CHALLENGE);
    assert_eq!(code(Pkce::from_verifier("short").map_err(ClientError::from)), "malformed_code_verifier");
    let plus = format!("{}+", "a".repeat(43));
    assert_eq!(code(Pkce::from_verifier(&plus).map_err(ClientError::from)), "malformed_code_verifier");
}

pub fn pkce_from_random_bytes_meets_the_gateways_check() {
    for seed in [0u8, 1, 0x7f, 0xff] {
        let pair = Pkce::from_random(&[seed; sign_in::RANDOM_BYTES]);
        assert_eq!(pair.verifier.len(), 43);
        assert!(pkce::is_valid_verifier(&pair.verifier), "{seed}");
        // The gateway's own parser takes the challenge, and its check takes the verifier.
        let challenge = CodeChallenge::parse(Some(&pair.challenge), Some("S256")).unwrap();
        assert!(challenge.is_met_by(&pair.verifier), "{seed}");
        assert!(!challenge.is_met_by(APPENDIX_B_VERIFIER), "{seed}");
    }
    let state = sign_in::state_from_random(&[9; sign_in::RANDOM_BYTES]);
    assert_eq!(state.len(), 43);
    assert!(state.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
}

fn spa_input(scope: Option<&'static str>) -> AuthorizationInput<'static> {
    AuthorizationInput {
        authorization_endpoint: Some("http://127.0.0.1:8080/authorize"),
        client_id: Some("demo-spa"),
        redirect_uri: Some(SPA_REDIRECT),
        scope,
        nonce: None,
    }
}

/// The query of `url` as the gateway's `/authorize` reads it.
pub fn query_of(url: &str) -> FormParams {
    FormParams::parse(url.split_once('?').unwrap().1.as_bytes()).unwrap()
}

pub fn authorization_urls_carry_every_parameter() {
    let pair = Pkce::from_random(&APPENDIX_B_OCTETS);
    let request = sign_in::authorization_request(
        &spa_input(Some("orders:write orders:read")),
        pair,
        "s-1~x".to_owned(),
    )
    .unwrap();
    assert!(request
        .url
        .starts_with("http://127.0.0.1:8080/authorize?response_type=code&client_id=demo-spa&"));
    let query = query_of(&request.url);
    assert_eq!(query.get("response_type"), Some("code"));
    assert_eq!(query.get("client_id"), Some("demo-spa"));
    assert_eq!(query.get("redirect_uri"), Some(SPA_REDIRECT));
    assert_eq!(query.get("scope"), Some("orders:read orders:write"));
    assert_eq!(query.get("state"), Some("s-1~x"));
    assert_eq!(query.get("code_challenge"), Some(APPENDIX_B_CHALLENGE));
    assert_eq!(query.get("code_challenge_method"), Some("S256"));
    assert_eq!(request.state, "s-1~x");
    assert_eq!(request.code_verifier, APPENDIX_B_VERIFIER);
    assert_eq!(request.redirect_uri, SPA_REDIRECT);
    // No scope: the parameter is left out (the application's default applies).
    let pair = Pkce::from_random(&APPENDIX_B_OCTETS);
    let bare = sign_in::authorization_request(&spa_input(Some("")), pair, "s".to_owned()).unwrap();
    assert!(!query_of(&bare.url).was_sent("scope"));
    assert!(!query_of(&bare.url).was_sent("nonce"));
    // OpenID Connect's nonce goes along when given, encoded as any other value.
    let input = AuthorizationInput { nonce: Some("n 1+&"), ..spa_input(None) };
    let with_nonce =
        sign_in::authorization_request(&input, Pkce::from_random(&APPENDIX_B_OCTETS), "s".to_owned())
            .unwrap();
    assert_eq!(query_of(&with_nonce.url).get("nonce"), Some("n 1+&"));
}

pub fn authorization_urls_keep_the_endpoints_query() {
    for (endpoint, prefix) in [
        ("/authorize", "/authorize?response_type=code&"),
        ("/authorize?tenant=a", "/authorize?tenant=a&response_type=code&"),
        ("/authorize?", "/authorize?response_type=code&"),
        ("/authorize?tenant=a&", "/authorize?tenant=a&response_type=code&"),
    ] {
        let input = AuthorizationInput { authorization_endpoint: Some(endpoint), ..spa_input(None) };
        let pair = Pkce::from_random(&APPENDIX_B_OCTETS);
        let request = sign_in::authorization_request(&input, pair, "s".to_owned()).unwrap();
        assert!(request.url.starts_with(prefix), "{endpoint}: {}", request.url);
        assert_eq!(query_of(&request.url).get("client_id"), Some("demo-spa"), "{endpoint}");
    }
}

pub fn authorization_input_is_checked_before_leaving() {
    let cases: &[(AuthorizationInput, &str)] = &[
        (AuthorizationInput { authorization_endpoint: None, ..spa_input(None) }, "missing_parameter"),
        (AuthorizationInput { authorization_endpoint: Some(""), ..spa_input(None) }, "missing_parameter"),
        (AuthorizationInput { client_id: None, ..spa_input(None) }, "missing_parameter"),
        (AuthorizationInput { redirect_uri: None, ..spa_input(None) }, "missing_parameter"),
        (
            AuthorizationInput { authorization_endpoint: Some("/authorize#x"), ..spa_input(None) },
            "malformed_endpoint",
        ),
        (
            AuthorizationInput { redirect_uri: Some("http://app.example/cb"), ..spa_input(None) },
            "malformed_redirect_uri",
        ),
        (
            AuthorizationInput { redirect_uri: Some("https://app.example/cb#top"), ..spa_input(None) },
            "malformed_redirect_uri",
        ),
        (spa_input(Some("a  b")), "malformed_scope"),
    ];
    for (input, expected) in cases {
        let pair = Pkce::from_random(&APPENDIX_B_OCTETS);
        let got = sign_in::authorization_request(input, pair, "s".to_owned()).map_err(ClientError::from);
        assert_eq!(code(got), *expected);
    }
}

/// A callback URL, the issuer expected (if any), and the code or error code it gives for the
/// state `"st"`.
pub const CALLBACK_TABLE: &[(&str, Option<&str>, Result<&str, &str>)] = &[
    (
        "http://127.0.0.1:8080/console/callback?code=c-1&state=st&iss=https%3A%2F%2F127.0.0.1%3A8243",
        Some(ISSUER),
        Ok("c-1"),
    ),
    // Without an expected issuer, iss is not checked.
    ("http://127.0.0.1:8080/console/callback?code=c-1&state=st", None, Ok("c-1")),
    ("/console/callback?state=st&code=c%2B2&iss=other", None, Ok("c+2")),
    // A fragment is not part of the query.
    ("/cb?code=c-1&state=st#code=evil", None, Ok("c-1")),
    // RFC 9207 §2.4: with an expected issuer, a missing or other iss is refused.
    ("/cb?code=c-1&state=st", Some(ISSUER), Err("issuer_mismatch")),
    ("/cb?code=c-1&state=st&iss=https%3A%2F%2Fevil.example", Some(ISSUER), Err("issuer_mismatch")),
    // RFC 6749 §10.12: the state must be the one sent; nothing else is believed without it.
    ("/cb?code=c-1&state=other", None, Err("state_mismatch")),
    ("/cb?code=c-1", None, Err("state_mismatch")),
    ("/cb?error=access_denied&state=other", None, Err("state_mismatch")),
    ("/cb", None, Err("state_mismatch")),
    // Errors redirected back (§4.1.2.1) carry the server's code.
    ("/cb?error=access_denied&error_description=the+user+said+no&state=st", None, Err("access_denied")),
    (
        "/cb?error=invalid_scope&state=st&iss=https%3A%2F%2F127.0.0.1%3A8243",
        Some(ISSUER),
        Err("invalid_scope"),
    ),
    ("/cb?state=st", None, Err("missing_parameter")),
    ("/cb?code=a&code=b&state=st", None, Err("malformed_callback")),
    ("/cb?code=%ZZ&state=st", None, Err("malformed_callback")),
];

pub fn callbacks_follow_the_table() {
    for (url, issuer, expected) in CALLBACK_TABLE {
        let got = sign_in::parse_callback(url, "st", *issuer);
        match (expected, got) {
            (Ok(code), Ok(callback)) => {
                assert_eq!(callback.code, *code, "{url}");
                assert_eq!(callback.state, "st", "{url}");
            }
            (Err(expected), Err(error)) => assert_eq!(error.code(), *expected, "{url}"),
            (expected, Err(error)) => panic!("{url}: expected {expected:?}, got {}", error.code()),
            (expected, Ok(_)) => panic!("{url}: expected {expected:?}, got a code"),
        }
    }
    let Err(SignInError::Server(response)) = sign_in::parse_callback(
        "/cb?error=access_denied&error_description=the+user+said+no&state=st",
        "st",
        None,
    ) else {
        panic!("not a server error")
    };
    assert_eq!(response.error_description.as_deref(), Some("the user said no"));
    // An empty expected state never matches, not even an empty one sent back.
    assert_eq!(
        sign_in::parse_callback("/cb?code=c&state=", "", None).err().unwrap().code(),
        "state_mismatch"
    );
    let with_iss = sign_in::parse_callback(CALLBACK_TABLE[0].0, "st", None).unwrap();
    assert_eq!(with_iss.issuer.as_deref(), Some(ISSUER));
}

fn code_input(verifier: &'static str) -> GrantRequestInput<'static> {
    GrantRequestInput {
        grant_type: Some("authorization_code"),
        code: Some("c+1/="),
        redirect_uri: Some(SPA_REDIRECT),
        code_verifier: Some(verifier),
        client_id: Some("demo-spa"),
        ..Default::default()
    }
}

pub fn code_token_requests_are_what_the_gateway_parses() {
    let body = request(code_input(APPENDIX_B_VERIFIER)).unwrap().form_body();
    assert!(body.starts_with("grant_type=authorization_code&code=c%2B1%2F%3D&"), "{body}");
    let params = FormParams::parse(body.as_bytes()).unwrap();
    assert_eq!(params.get("grant_type"), Some("authorization_code"));
    assert_eq!(params.get("code"), Some("c+1/="));
    assert_eq!(params.get("redirect_uri"), Some(SPA_REDIRECT));
    assert_eq!(params.get("code_verifier"), Some(APPENDIX_B_VERIFIER));
    assert_eq!(params.get("client_id"), Some("demo-spa"));
    // A public client refreshes with its client_id in the body too.
    let refresh = request(GrantRequestInput {
        grant_type: Some("refresh_token"),
        refresh_token: Some("r"),
        client_id: Some("demo-spa"),
        ..Default::default()
    })
    .unwrap()
    .form_body();
    assert_eq!(refresh, "grant_type=refresh_token&refresh_token=r&client_id=demo-spa");
}

pub fn incomplete_code_token_requests_are_refused() {
    let cases: &[(GrantRequestInput, &str)] = &[
        (GrantRequestInput { code: None, ..code_input(APPENDIX_B_VERIFIER) }, "missing_parameter"),
        (
            GrantRequestInput { redirect_uri: Some(""), ..code_input(APPENDIX_B_VERIFIER) },
            "missing_parameter",
        ),
        (GrantRequestInput { code_verifier: None, ..code_input(APPENDIX_B_VERIFIER) }, "missing_parameter"),
        (code_input("too-short"), "malformed_code_verifier"),
        (
            GrantRequestInput { password: Some("x"), ..code_input(APPENDIX_B_VERIFIER) },
            "unexpected_parameter",
        ),
        (
            GrantRequestInput {
                scope: Some(ScopeInput::Text("orders:read")),
                ..code_input(APPENDIX_B_VERIFIER)
            },
            "unexpected_parameter",
        ),
        (
            GrantRequestInput {
                grant_type: Some("client_credentials"),
                code: Some("c"),
                ..Default::default()
            },
            "unexpected_parameter",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(code(request(*input)), *expected);
    }
}
