//! The browser package in headless Chromium (`make test-web`): the shared cases compiled to
//! wasm, then the JavaScript-facing glue (`tokengate::browser::web`) with values that come from JS.
//!
//! Run by wasm-bindgen-test-runner through chromedriver; see the Makefile's browser section.

#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::type_complexity
)]

use js_sys::{Function, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

use tokengate::browser::web;
use tokengate::host::{Randomness, SystemRandomness};

wasm_bindgen_test_configure!(run_in_browser);

#[macro_use]
mod cases;

use cases::{
    ExpectedSet, APPENDIX_B_CHALLENGE, APPENDIX_B_VERIFIER, CALLBACK_TABLE, CHALLENGE_TABLE, DECODE_TABLE,
    ISSUER, NOW_MS, PACKAGE_CODES, SPA_REDIRECT, TOKEN_RESPONSE_TABLE,
};
use tokengate::oauth::pkce;

shared_cases!(wasm_bindgen_test);

// ---------------------------------------------------------------------------------------------
// Helpers

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap()
}

fn get_string(target: &JsValue, key: &str) -> Option<String> {
    get(target, key).as_string()
}

/// The `code` of what a glue function threw, after checking it is a real `Error` named
/// `TokengateError` with a message and a code the package documents (or a server code).
fn thrown<T>(result: Result<T, web::Error>) -> String {
    let Err(error) = result else { panic!("expected a throw") };
    let error = JsValue::from(error);
    assert!(error.is_instance_of::<js_sys::Error>(), "not an Error: {error:?}");
    assert_eq!(get_string(&error, "name").as_deref(), Some("TokengateError"));
    let message = get_string(&error, "message").unwrap();
    assert!(!message.is_empty());
    get_string(&error, "code").unwrap()
}

fn s(text: &str) -> JsValue {
    JsValue::from_str(text)
}

fn parse(json: &str) -> JsValue {
    JSON::parse(json).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Credentials from JavaScript

#[wasm_bindgen_test]
fn seed_pair_matches_the_browsers_own_btoa() {
    let btoa: Function = get(&js_sys::global(), "btoa").dyn_into().unwrap();
    let expected =
        btoa.call1(&JsValue::NULL, &s(&format!("{}:{}", cases::SEED_KEY, cases::SEED_SECRET))).unwrap();
    let encoded = web::encode_credentials(s(cases::SEED_KEY), s(cases::SEED_SECRET)).ok().unwrap();
    assert_eq!(Some(encoded.clone()), expected.as_string());
    assert_eq!(encoded, cases::SEED_BASE64);
    let header = web::basic_authorization(s(cases::SEED_KEY), s(cases::SEED_SECRET)).ok().unwrap();
    assert_eq!(header, format!("Basic {}", cases::SEED_BASE64));
}

#[wasm_bindgen_test]
fn decoding_follows_the_table_through_js() {
    for (encoded, expected) in DECODE_TABLE {
        let result = web::decode_credentials(s(encoded));
        match expected {
            Ok((key, secret)) => {
                let object = JsValue::from(result.ok().unwrap());
                assert_eq!(get_string(&object, "consumerKey").as_deref(), Some(*key), "{encoded}");
                assert_eq!(get_string(&object, "consumerSecret").as_deref(), Some(*secret), "{encoded}");
            }
            Err(code) => assert_eq!(thrown(result), *code, "{encoded}"),
        }
    }
}

#[wasm_bindgen_test]
fn arguments_of_the_wrong_type_throw_instead_of_becoming_text() {
    // Without the check, undefined would be encoded as the text "undefined".
    assert_eq!(thrown(web::encode_credentials(JsValue::UNDEFINED, s("x"))), "invalid_argument");
    assert_eq!(thrown(web::encode_credentials(s("x"), JsValue::from_f64(42.0))), "invalid_argument");
    assert_eq!(thrown(web::basic_authorization(JsValue::NULL, s("x"))), "invalid_argument");
    assert_eq!(thrown(web::decode_credentials(JsValue::TRUE)), "invalid_argument");
    assert_eq!(thrown(web::bearer_authorization(JsValue::UNDEFINED)), "invalid_argument");
    assert_eq!(thrown(web::parse_challenge(JsValue::UNDEFINED)), "invalid_argument");
    assert_eq!(thrown(web::parse_token_response(JsValue::from_f64(1.0), None)), "invalid_token_response");
    assert_eq!(thrown(web::parse_token_response(s("{}"), Some(f64::NAN))), "invalid_argument");
    assert_eq!(thrown(web::parse_token_response(s("{}"), Some(-1.0))), "invalid_argument");
}

#[wasm_bindgen_test]
fn revocation_request_from_js() {
    let out = JsValue::from(
        web::revocation_request(s("AQAA"), s("access_token"), JsValue::UNDEFINED).ok().unwrap(),
    );
    assert_eq!(get_string(&out, "body").as_deref(), Some("token=AQAA&token_type_hint=access_token"));
    assert_eq!(get_string(&out, "contentType").as_deref(), Some("application/x-www-form-urlencoded"));
    let out = JsValue::from(
        web::revocation_request(s("AQAA"), JsValue::UNDEFINED, JsValue::UNDEFINED).ok().unwrap(),
    );
    assert_eq!(get_string(&out, "body").as_deref(), Some("token=AQAA"));
    assert_eq!(
        thrown(web::revocation_request(s("AQAA"), s("id_token"), JsValue::UNDEFINED)),
        "unknown_token_type_hint"
    );
    assert_eq!(
        thrown(web::revocation_request(JsValue::UNDEFINED, JsValue::UNDEFINED, JsValue::UNDEFINED)),
        "invalid_argument"
    );
}

#[wasm_bindgen_test]
fn bearer_header_from_js() {
    assert_eq!(web::bearer_authorization(s("AQAA-_.~+/9==")).ok(), Some("Bearer AQAA-_.~+/9==".to_owned()));
    assert_eq!(thrown(web::bearer_authorization(s("not a token"))), "malformed_bearer_token");
}

// ---------------------------------------------------------------------------------------------
// tokenRequest with JavaScript objects

fn token_request(json: &str) -> Result<web::TokenRequestBody, web::Error> {
    web::token_request(&parse(json).unchecked_into())
}

#[wasm_bindgen_test]
fn token_request_builds_the_form_body_and_content_type() {
    let out = JsValue::from(
        token_request(r#"{"grantType":"password","username":"admin","password":"a&b=c d","scope":["orders:write","orders:read"]}"#)
            .ok()
            .unwrap(),
    );
    assert_eq!(
        get_string(&out, "body").as_deref(),
        Some("grant_type=password&username=admin&password=a%26b%3Dc+d&scope=orders%3Aread+orders%3Awrite")
    );
    assert_eq!(get_string(&out, "contentType").as_deref(), Some("application/x-www-form-urlencoded"));

    let out = JsValue::from(
        token_request(
            r#"{"grantType":"client_credentials","scope":"orders:read","username":"","password":null}"#,
        )
        .ok()
        .unwrap(),
    );
    assert_eq!(
        get_string(&out, "body").as_deref(),
        Some("grant_type=client_credentials&scope=orders%3Aread")
    );
}

#[wasm_bindgen_test]
fn token_request_refuses_incomplete_or_mistyped_input() {
    let table: &[(&str, &str)] = &[
        (r#"{"grantType":"password","username":"admin"}"#, "missing_parameter"),
        (r#"{"grantType":"password","password":"admin"}"#, "missing_parameter"),
        (r#"{"grantType":"refresh_token"}"#, "missing_parameter"),
        (r#"{}"#, "missing_parameter"),
        (r#"{"grantType":"implicit"}"#, "unknown_grant_type"),
        (r#"{"grantType":"client_credentials","password":"x"}"#, "unexpected_parameter"),
        (r#"{"grantType":"client_credentials","scope":"a  b"}"#, "malformed_scope"),
        (r#"{"grantType":"client_credentials","scope":["a b"]}"#, "malformed_scope"),
        // Snake case is the wire's spelling, not the package's: caught, not ignored.
        (r#"{"grantType":"refresh_token","refresh_token":"r"}"#, "invalid_argument"),
        (r#"{"grantType":7}"#, "invalid_argument"),
        (r#"{"grantType":"client_credentials","scope":7}"#, "invalid_argument"),
        (r#"{"grantType":"client_credentials","scope":["a",7]}"#, "invalid_argument"),
        (r#""password""#, "invalid_argument"),
        (r#"null"#, "invalid_argument"),
    ];
    for (json, code) in table {
        assert_eq!(thrown(token_request(json)), *code, "{json}");
    }
}

// ---------------------------------------------------------------------------------------------
// parseTokenResponse: the browser's JSON.parse feeds the same reader

fn check_js_set(set: &web::TokenSet, expected: &ExpectedSet, context: &str) {
    assert_eq!(set.access_token(), expected.access_token, "{context}");
    assert!(set.token_type().eq_ignore_ascii_case("bearer"), "{context}");
    assert_eq!(set.expires_in(), expected.expires_in.map(|secs| secs as f64), "{context}");
    assert_eq!(set.expires_at(), expected.expires_in.map(|secs| (NOW_MS + secs * 1000) as f64), "{context}");
    assert_eq!(set.refresh_token().as_deref(), expected.refresh_token, "{context}");
    assert_eq!(set.scopes(), expected.scopes, "{context}");
}

#[wasm_bindgen_test]
fn token_responses_follow_the_table_through_json_parse() {
    for (json, expected) in TOKEN_RESPONSE_TABLE {
        // As text, and (where the text is a JSON object or array) as the value
        // `response.json()` would give. A JSON string value would be taken for text again.
        let mut inputs = vec![s(json)];
        if let Ok(value) = JSON::parse(json) {
            if value.is_object() {
                inputs.push(value);
            }
        }
        for input in inputs {
            let result = web::parse_token_response(input, Some(NOW_MS as f64));
            match expected {
                Ok(expected) => check_js_set(&result.ok().unwrap(), expected, json),
                Err(code) => assert_eq!(thrown(result), *code, "{json}"),
            }
        }
    }
}

#[wasm_bindgen_test]
fn server_errors_become_errors_with_the_servers_code() {
    let json = r#"{"error":"insufficient_scope","error_description":"needs more","scope":"orders:write"}"#;
    let Err(error) = web::parse_token_response(s(json), None) else { panic!("no throw") };
    let error = JsValue::from(error);
    assert_eq!(get_string(&error, "code").as_deref(), Some("insufficient_scope"));
    assert_eq!(get_string(&error, "errorDescription").as_deref(), Some("needs more"));
    assert_eq!(get_string(&error, "scope").as_deref(), Some("orders:write"));
    assert!(get_string(&error, "message").unwrap().contains("insufficient_scope"));
}

#[wasm_bindgen_test]
fn token_set_methods_answer_from_js_values() {
    let before = js_sys::Date::now();
    let set = web::parse_token_response(s(cases::GATEWAY_PASSWORD_GRANT), None).ok().unwrap();
    let after = js_sys::Date::now();
    // nowMs defaults to Date.now().
    let expires_at = set.expires_at().unwrap();
    assert!(expires_at >= before + 3_600_000.0 && expires_at <= after + 3_600_000.0);
    assert_eq!(set.is_expired(None, None).ok(), Some(false));
    assert_eq!(set.is_expired(Some(expires_at), None).ok(), Some(true));
    assert_eq!(set.is_expired(Some(expires_at - 60_000.0), Some(60_000.0)).ok(), Some(true));
    assert_eq!(set.remaining_ms(Some(expires_at - 1_500.0)).ok(), Some(Some(1_500.0)));
    assert_eq!(set.scope().as_deref(), Some("orders:read orders:write"));

    assert_eq!(set.has_scopes(s("orders:read")).ok(), Some(true));
    assert_eq!(set.has_scopes(parse(r#"["orders:write","orders:read"]"#)).ok(), Some(true));
    assert_eq!(set.has_scopes(parse(r#"["admin"]"#)).ok(), Some(false));
    assert_eq!(set.has_scopes(s("")).ok(), Some(true));
    assert_eq!(thrown(set.has_scopes(s("a  b"))), "malformed_scope");
    assert_eq!(thrown(set.has_scopes(JsValue::UNDEFINED)), "invalid_argument");

    let refresh = JsValue::from(set.refresh_request(s("orders:read"), JsValue::UNDEFINED).ok().unwrap());
    assert_eq!(
        get_string(&refresh, "body").as_deref(),
        Some("grant_type=refresh_token&refresh_token=AgAAAAcAAAB4&scope=orders%3Aread")
    );
    let forever =
        web::parse_token_response(s(r#"{"access_token":"t","token_type":"Bearer"}"#), None).ok().unwrap();
    assert_eq!(forever.expires_at(), None);
    assert_eq!(forever.is_expired(Some(9e15), Some(9e15)).ok(), Some(false));
    assert_eq!(thrown(forever.refresh_request(JsValue::UNDEFINED, JsValue::UNDEFINED)), "missing_parameter");
}

// ---------------------------------------------------------------------------------------------
// Challenges from JavaScript

#[wasm_bindgen_test]
fn challenges_follow_the_table_through_js() {
    for (value, expected) in CHALLENGE_TABLE {
        let result = web::parse_challenge(s(value));
        match expected {
            Ok((scheme, realm, error, scopes, step)) => {
                let challenge = result.ok().unwrap();
                assert_eq!(challenge.scheme(), *scheme, "{value}");
                assert_eq!(challenge.realm().as_deref(), *realm, "{value}");
                assert_eq!(challenge.error().as_deref(), *error, "{value}");
                assert_eq!(challenge.scopes(), *scopes, "{value}");
                assert_eq!(challenge.next_step(), *step, "{value}");
            }
            Err(()) => assert_eq!(thrown(result), "malformed_challenge", "{value}"),
        }
    }
    let all =
        web::parse_challenges(s(r#"Basic realm="a", Bearer realm="b", error="invalid_token""#)).ok().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].param("ERROR").as_deref(), Some("invalid_token"));
    assert_eq!(all[1].next_step(), "refresh");
}

#[wasm_bindgen_test]
fn every_thrown_code_is_documented() {
    // Collect what the glue throws for a spread of bad input; each code must be one the
    // package documents (PACKAGE_CODES), so apps can switch on them.
    let codes = [
        thrown(web::decode_credentials(s("Y2xpZW50"))),
        thrown(web::encode_credentials(s(""), s("x"))),
        thrown(web::bearer_authorization(s(" "))),
        thrown(token_request(r#"{"grantType":"password"}"#)),
        thrown(web::parse_token_response(s("nope"), None)),
        thrown(web::parse_challenge(s("Bearer realm=\"x"))),
        thrown(web::encode_credentials(JsValue::NULL, s("x"))),
        thrown(web::parse_callback(s("/cb?code=c&state=x"), s("st"), JsValue::UNDEFINED)),
        thrown(web::parse_callback(s("/cb?code=c&state=st"), s("st"), s(ISSUER))),
        thrown(web::parse_callback(s("/cb?code=c&code=d&state=st"), s("st"), JsValue::UNDEFINED)),
        thrown(authorize_url(
            r#"{"authorizationEndpoint":"/a","clientId":"c","redirectUri":"http://x.example/"}"#,
        )),
        thrown(authorize_url(
            r#"{"authorizationEndpoint":"/a#b","clientId":"c","redirectUri":"https://x.example/"}"#,
        )),
        thrown(authorize_url(
            r#"{"authorizationEndpoint":"/a","clientId":"c","redirectUri":"https://x.example/","codeVerifier":"x"}"#,
        )),
    ];
    for code in codes {
        assert!(PACKAGE_CODES.contains(&code.as_str()), "{code}");
    }
    assert_eq!(web::version(), env!("CARGO_PKG_VERSION"));
}

// ---------------------------------------------------------------------------------------------
// Signing in from JavaScript

fn authorize_url(json: &str) -> Result<web::AuthorizationRequestObject, web::Error> {
    web::authorize_url(&parse(json).unchecked_into())
}

const SPA_INPUT: &str = r#"{"authorizationEndpoint":"http://127.0.0.1:8080/authorize","clientId":"demo-spa","redirectUri":"http://127.0.0.1:8080/console/callback","scope":["orders:read"]}"#;

#[wasm_bindgen_test]
fn create_pkce_draws_from_the_browser_and_meets_the_gateways_check() {
    let a = JsValue::from(web::create_pkce().ok().unwrap());
    let b = JsValue::from(web::create_pkce().ok().unwrap());
    let verifier = get_string(&a, "codeVerifier").unwrap();
    assert_ne!(Some(verifier.clone()), get_string(&b, "codeVerifier"), "two pairs, two verifiers");
    assert!(pkce::is_valid_verifier(&verifier));
    assert_eq!(verifier.len(), 43);
    let challenge = get_string(&a, "codeChallenge").unwrap();
    assert_eq!(challenge, pkce::s256(&verifier));
    assert!(pkce::CodeChallenge::parse(Some(&challenge), Some("S256")).unwrap().is_met_by(&verifier));
    assert_eq!(get_string(&a, "codeChallengeMethod").as_deref(), Some("S256"));
}

#[wasm_bindgen_test]
fn authorize_url_from_js_objects() {
    let first = JsValue::from(authorize_url(SPA_INPUT).ok().unwrap());
    let second = JsValue::from(authorize_url(SPA_INPUT).ok().unwrap());
    let url = get_string(&first, "url").unwrap();
    let state = get_string(&first, "state").unwrap();
    let verifier = get_string(&first, "codeVerifier").unwrap();
    assert_eq!(state.len(), 43, "a random state of 256 bits");
    assert_ne!(Some(state.clone()), get_string(&second, "state"));
    assert_ne!(Some(verifier.clone()), get_string(&second, "codeVerifier"));
    let query = cases::query_of(&url);
    assert_eq!(query.get("state"), Some(state.as_str()));
    assert_eq!(query.get("code_challenge"), Some(pkce::s256(&verifier).as_str()));
    assert_eq!(query.get("scope"), Some("orders:read"));
    assert_eq!(query.get("redirect_uri"), Some(SPA_REDIRECT));
    assert_eq!(get_string(&first, "redirectUri").as_deref(), Some(SPA_REDIRECT));

    // The app's own state and verifier are used as given.
    let given = JsValue::from(
        authorize_url(&format!(
            r#"{{"authorizationEndpoint":"/authorize","clientId":"demo-spa","redirectUri":"{SPA_REDIRECT}","state":"mine","codeVerifier":"{APPENDIX_B_VERIFIER}"}}"#
        ))
        .ok()
        .unwrap(),
    );
    let url = get_string(&given, "url").unwrap();
    assert!(url.starts_with("/authorize?response_type=code&"));
    assert_eq!(cases::query_of(&url).get("code_challenge"), Some(APPENDIX_B_CHALLENGE));
    assert_eq!(get_string(&given, "state").as_deref(), Some("mine"));

    let table: &[(&str, &str)] = &[
        (
            r#"{"authorizationEndpoint":"/authorize","redirectUri":"https://a.example/cb"}"#,
            "missing_parameter",
        ),
        (
            r#"{"authorizationEndpoint":"/authorize","clientId":"c","redirect_uri":"https://a.example/cb"}"#,
            "invalid_argument",
        ),
        (
            r#"{"authorizationEndpoint":"/authorize","clientId":7,"redirectUri":"https://a.example/cb"}"#,
            "invalid_argument",
        ),
        (
            r#"{"authorizationEndpoint":"/authorize","clientId":"c","redirectUri":"https://a.example/cb","scope":"a  b"}"#,
            "malformed_scope",
        ),
        (
            r#"{"authorizationEndpoint":"/authorize","clientId":"c","redirectUri":"http://a.example/cb"}"#,
            "malformed_redirect_uri",
        ),
        (r#""/authorize""#, "invalid_argument"),
    ];
    for (json, code) in table {
        assert_eq!(thrown(authorize_url(json)), *code, "{json}");
    }
}

#[wasm_bindgen_test]
fn parse_callback_from_js() {
    for (url, issuer, expected) in CALLBACK_TABLE {
        let issuer = issuer.map_or(JsValue::UNDEFINED, s);
        let result = web::parse_callback(s(url), s("st"), issuer);
        match expected {
            Ok(code) => {
                let callback = JsValue::from(result.ok().unwrap());
                assert_eq!(get_string(&callback, "code").as_deref(), Some(*code), "{url}");
                assert_eq!(get_string(&callback, "state").as_deref(), Some("st"), "{url}");
            }
            Err(code) => assert_eq!(thrown(result), *code, "{url}"),
        }
    }
    let Err(error) = web::parse_callback(
        s("/cb?error=access_denied&error_description=the+user+said+no&state=st"),
        s("st"),
        JsValue::UNDEFINED,
    ) else {
        panic!("no throw")
    };
    let error = JsValue::from(error);
    assert_eq!(get_string(&error, "code").as_deref(), Some("access_denied"));
    assert_eq!(get_string(&error, "errorDescription").as_deref(), Some("the user said no"));
    let callback =
        JsValue::from(web::parse_callback(s(CALLBACK_TABLE[0].0), s("st"), s(ISSUER)).ok().unwrap());
    assert_eq!(get_string(&callback, "iss").as_deref(), Some(ISSUER));
    assert_eq!(
        thrown(web::parse_callback(JsValue::UNDEFINED, s("st"), JsValue::UNDEFINED)),
        "invalid_argument"
    );
}

#[wasm_bindgen_test]
fn code_token_requests_from_js() {
    let out = JsValue::from(
        token_request(&format!(
            r#"{{"grantType":"authorization_code","code":"c-1","redirectUri":"{SPA_REDIRECT}","codeVerifier":"{APPENDIX_B_VERIFIER}","clientId":"demo-spa"}}"#
        ))
        .ok()
        .unwrap(),
    );
    assert_eq!(
        get_string(&out, "body").as_deref(),
        Some(
            "grant_type=authorization_code&code=c-1&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fconsole%2Fcallback\
             &code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk&client_id=demo-spa"
        )
    );
    assert_eq!(
        thrown(token_request(
            r#"{"grantType":"authorization_code","code":"c","redirectUri":"x","codeVerifier":"short"}"#
        )),
        "malformed_code_verifier"
    );
    assert_eq!(
        thrown(token_request(r#"{"grantType":"authorization_code","code_verifier":"x"}"#)),
        "invalid_argument"
    );
    // A public client's refresh and revocation name it in the body.
    let set = web::parse_token_response(s(cases::GATEWAY_PASSWORD_GRANT), None).ok().unwrap();
    let refresh = JsValue::from(set.refresh_request(JsValue::UNDEFINED, s("demo-spa")).ok().unwrap());
    assert_eq!(
        get_string(&refresh, "body").as_deref(),
        Some("grant_type=refresh_token&refresh_token=AgAAAAcAAAB4&client_id=demo-spa")
    );
    let revoke =
        JsValue::from(web::revocation_request(s("AQAA"), JsValue::UNDEFINED, s("demo-spa")).ok().unwrap());
    assert_eq!(get_string(&revoke, "body").as_deref(), Some("token=AQAA&client_id=demo-spa"));
}

// ---------------------------------------------------------------------------------------------
// Randomness

#[wasm_bindgen_test]
fn randomness_comes_from_crypto_get_random_values() {
    // getrandom's wasm_js backend: 32 bytes twice, different, and not all zero.
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    SystemRandomness.fill(&mut a).map_err(|_| "no randomness").unwrap();
    SystemRandomness.fill(&mut b).map_err(|_| "no randomness").unwrap();
    assert_ne!(a, b);
    assert!(a.iter().any(|&byte| byte != 0));
    // It is the browser's: crypto.getRandomValues exists here.
    let crypto = get(&js_sys::global(), "crypto");
    assert!(get(&crypto, "getRandomValues").is_function());
}

// ---------------------------------------------------------------------------------------------
// JWTs and ID tokens from JavaScript

fn verify_options(json: &str) -> web::VerifyIdTokenOptions {
    parse(json).unchecked_into()
}

/// The options matching `cases::expectations()`, with `nowMs` in milliseconds.
fn valid_options() -> String {
    format!(
        r#"{{"issuer":"{}","clientId":"{}","nonce":"{}","nowMs":{},"leewaySeconds":0}}"#,
        cases::ID_ISSUER,
        cases::CLIENT,
        cases::NONCE,
        cases::NOW * 1000
    )
}

#[wasm_bindgen_test]
fn verify_id_token_gives_the_claims_as_a_plain_object() {
    let token = s(cases::FIXED_ED25519_ID_TOKEN);
    // The JWKS as text and as the object `response.json()` gives.
    for jwks in [s(cases::JWKS), parse(cases::JWKS)] {
        let claims = JsValue::from(
            web::verify_id_token(token.clone(), jwks, &verify_options(&valid_options())).ok().unwrap(),
        );
        assert_eq!(
            JSON::stringify(&claims).unwrap(),
            JSON::stringify(&parse(&cases::id_claims().to_string())).unwrap()
        );
        assert_eq!(get_string(&claims, "sub").as_deref(), Some("admin"));
        assert_eq!(get(&claims, "exp").as_f64(), Some((cases::NOW + 300) as f64));
    }
}

#[wasm_bindgen_test]
fn verify_id_token_throws_the_documented_codes() {
    let token = || s(cases::FIXED_ED25519_ID_TOKEN);
    let jwks = || s(cases::JWKS);
    // A repeated member: JSON.parse keeps the last, so the row's value counts.
    let with = |field: &str| verify_options(&format!("{},{field}}}", valid_options().trim_end_matches('}')));
    let rows: &[(&str, web::VerifyIdTokenOptions, &str)] = &[
        ("another nonce", with(r#""nonce":"other""#), "wrong_nonce"),
        ("another client", with(r#""clientId":"other-app""#), "wrong_audience"),
        ("another issuer", with(r#""issuer":"https://evil.example""#), "wrong_issuer"),
        ("an hour later", with(&format!(r#""nowMs":{}"#, (cases::NOW + 3600) * 1000)), "id_token_expired"),
        (
            "the clock now, years after the token",
            verify_options(&valid_options().replace(r#""nowMs":1700000000000,"#, "")),
            "id_token_expired",
        ),
        ("max_age passed", with(r#""maxAge":5"#), "authentication_too_old"),
    ];
    for (name, options, code) in rows {
        assert_eq!(thrown(web::verify_id_token(token(), jwks(), options)), *code, "{name}");
    }
    let options = verify_options(&valid_options());
    assert_eq!(thrown(web::verify_id_token(token(), s("{}"), &options)), "invalid_jwks");
    assert_eq!(thrown(web::verify_id_token(s("a.b"), jwks(), &options)), "malformed_jwt");
    assert_eq!(thrown(web::verify_id_token(JsValue::UNDEFINED, jwks(), &options)), "invalid_argument");
    for bad in [
        r#"{"issuer":"x"}"#,
        r#"{"issuer":"x","clientId":"y","client_id":"y"}"#,
        r#"{"issuer":"x","clientId":"y","maxAge":-1}"#,
        r#"{"issuer":"x","clientId":"y","leewaySeconds":1.5}"#,
    ] {
        assert_eq!(
            thrown(web::verify_id_token(token(), jwks(), &verify_options(bad))),
            "invalid_argument",
            "{bad}"
        );
    }
}

#[wasm_bindgen_test]
fn decode_jwt_unverified_gives_header_and_claims() {
    let decoded = JsValue::from(web::decode_jwt_unverified(s(cases::FIXED_ED25519_ID_TOKEN)).ok().unwrap());
    let header = get(&decoded, "header");
    assert_eq!(get_string(&header, "alg").as_deref(), Some("EdDSA"));
    assert_eq!(get_string(&header, "kid").as_deref(), Some("rfc8037"));
    assert_eq!(get_string(&header, "typ").as_deref(), Some("JWT"));
    assert_eq!(get_string(&get(&decoded, "claims"), "email").as_deref(), Some("admin@example.com"));
    assert_eq!(thrown(web::decode_jwt_unverified(s("e30.e30"))), "malformed_jwt");
    assert_eq!(thrown(web::decode_jwt_unverified(JsValue::NULL)), "invalid_argument");
}

#[wasm_bindgen_test]
fn a_token_set_from_js_keeps_its_id_token() {
    let body = r#"{"access_token":"a","token_type":"Bearer","id_token":"h.c.s"}"#;
    let set = web::parse_token_response(s(body), Some(0.0)).ok().unwrap();
    assert_eq!(set.id_token().as_deref(), Some("h.c.s"));
}

#[wasm_bindgen_test]
fn authorize_url_always_sends_a_nonce_and_returns_it() {
    let base = r#""authorizationEndpoint":"/authorize","clientId":"demo-spa","redirectUri":"http://127.0.0.1:8080/console/callback""#;
    let drawn = JsValue::from(authorize_url(&format!("{{{base}}}")).ok().unwrap());
    let nonce = get_string(&drawn, "nonce").unwrap();
    assert_eq!(nonce.len(), 43, "256 random bits, base64url");
    let url = get_string(&drawn, "url").unwrap();
    assert_eq!(cases::query_of(&url).get("nonce"), Some(nonce.as_str()));
    let again = JsValue::from(authorize_url(&format!("{{{base}}}")).ok().unwrap());
    assert_ne!(get_string(&again, "nonce"), Some(nonce));
    let given = JsValue::from(authorize_url(&format!(r#"{{{base},"nonce":"mine"}}"#)).ok().unwrap());
    assert_eq!(get_string(&given, "nonce").as_deref(), Some("mine"));
    assert_eq!(cases::query_of(&get_string(&given, "url").unwrap()).get("nonce"), Some("mine"));
}
