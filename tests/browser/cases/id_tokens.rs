//! JWTs and ID tokens: decoding without trust, and verifying an ID token against a JWKS with
//! the gateway's own `jose` code. Tokens are signed here by the same crate's signer, with the
//! RFC 8037 Appendix A.1 Ed25519 key and the RFC 7515 Appendix A.3 P-256 key.

use super::*;
use serde_json::{json, Value};
use tokengate::browser::id_token::{
    decode_jwt_unverified, key_set_from_jwks, verify_id_token, IdTokenError, IdTokenExpectations,
};
use tokengate::jose::{self, PrivateJwk, SigningKey};

/// RFC 8037 Appendix A.1, with a `kid`.
pub const RFC8037_JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"rfc8037","alg":"EdDSA","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
/// RFC 7515 Appendix A.3's P-256 key, with a `kid`.
pub const RFC7515_A3_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"rfc7515-a3","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#;
/// Both keys' public halves, as the gateway's `/oauth2/jwks` writes them, and an RS256 key of
/// another provider that the package skips (RFC 7517 §5).
pub const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"rfc8037","alg":"EdDSA","use":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},{"kty":"EC","crv":"P-256","kid":"rfc7515-a3","alg":"ES256","use":"sig","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},{"kty":"RSA","kid":"other","alg":"RS256","use":"sig","n":"sXch","e":"AQAB"}]}"#;

pub const ID_ISSUER: &str = "https://127.0.0.1:8243/oauth2/token";
pub const CLIENT: &str = "demo-spa";
pub const NONCE: &str = "n-0S6_WzA2Mj";
/// Seconds since the epoch at which the cases check.
pub const NOW: u64 = 1_700_000_000;

/// The ID token of [`id_claims`] signed by the RFC 8037 key: Ed25519 is deterministic
/// (RFC 8032 §5.1.6), so this string is fixed, and a verifier anywhere must accept it.
pub const FIXED_ED25519_ID_TOKEN: &str = "eyJhbGciOiJFZERTQSIsImtpZCI6InJmYzgwMzciLCJ0eXAiOiJKV1QifQ.eyJhdWQiOiJkZW1vLXNwYSIsImF1dGhfdGltZSI6MTY5OTk5OTk4MCwiZW1haWwiOiJhZG1pbkBleGFtcGxlLmNvbSIsImV4cCI6MTcwMDAwMDMwMCwiaWF0IjoxNjk5OTk5OTkwLCJpc3MiOiJodHRwczovLzEyNy4wLjAuMTo4MjQzL29hdXRoMi90b2tlbiIsIm5hbWUiOiJBZGEgQWRtaW4iLCJub25jZSI6Im4tMFM2X1d6QTJNaiIsInN1YiI6ImFkbWluIn0.pgrAoM94jpr-BKd8sPqyCnfPgT2xW-nJJEv9T9q9BLWaxR0HLR9TIFXcz6kiW0xOPp1HeaKjETngS0WqEY9MBA";

pub fn signing_key(jwk: &str) -> SigningKey {
    let jwk: PrivateJwk = serde_json::from_str(jwk).unwrap();
    SigningKey::from_jwk(&jwk).unwrap()
}

/// A valid ID token's claims at [`NOW`], as OpenID Connect Core §2 lists them.
pub fn id_claims() -> Value {
    json!({
        "iss": ID_ISSUER,
        "sub": "admin",
        "aud": CLIENT,
        "exp": NOW + 300,
        "iat": NOW - 10,
        "auth_time": NOW - 20,
        "nonce": NONCE,
        "name": "Ada Admin",
        "email": "admin@example.com",
    })
}

pub fn expectations() -> IdTokenExpectations {
    IdTokenExpectations {
        issuer: ID_ISSUER.to_owned(),
        client_id: CLIENT.to_owned(),
        nonce: Some(NONCE.to_owned()),
        now: NOW,
        max_age: None,
        leeway: 0,
    }
}

pub fn signed(jwk: &str, claims: &Value) -> String {
    jose::sign(&signing_key(jwk), Some("JWT"), claims).unwrap()
}

fn id_code<T>(result: Result<T, IdTokenError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => error.code(),
    }
}

/// `claims` with `changes` merged in (`null` removes a claim).
pub fn with(changes: Value) -> Value {
    let mut claims = id_claims();
    for (name, value) in changes.as_object().unwrap() {
        let object = claims.as_object_mut().unwrap();
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.clone(), value.clone());
        }
    }
    claims
}

/// A row: claims changed from a valid token's, what the client expects changed, the result.
pub struct ClaimCase {
    pub name: &'static str,
    pub changes: fn() -> Value,
    pub expect: fn(&mut IdTokenExpectations),
    pub result: &'static str,
}

fn unchanged(_: &mut IdTokenExpectations) {}

pub const CLAIM_TABLE: &[ClaimCase] = &[
    ClaimCase { name: "valid", changes: || json!({}), expect: unchanged, result: "ok" },
    ClaimCase {
        name: "another issuer",
        changes: || json!({"iss": "https://evil.example"}),
        expect: unchanged,
        result: "wrong_issuer",
    },
    ClaimCase {
        name: "the issuer with a trailing slash is another string",
        changes: || json!({"iss": "https://127.0.0.1:8243/oauth2/token/"}),
        expect: unchanged,
        result: "wrong_issuer",
    },
    ClaimCase {
        name: "no issuer",
        changes: || json!({"iss": null}),
        expect: unchanged,
        result: "missing_claim",
    },
    ClaimCase {
        name: "for another client",
        changes: || json!({"aud": "other-app"}),
        expect: unchanged,
        result: "wrong_audience",
    },
    ClaimCase {
        name: "an audience list with the client and azp",
        changes: || json!({"aud": ["other-app", CLIENT], "azp": CLIENT}),
        expect: unchanged,
        result: "ok",
    },
    ClaimCase {
        name: "several audiences without azp",
        changes: || json!({"aud": ["other-app", CLIENT]}),
        expect: unchanged,
        result: "wrong_authorized_party",
    },
    ClaimCase {
        name: "azp names another client",
        changes: || json!({"azp": "other-app"}),
        expect: unchanged,
        result: "wrong_authorized_party",
    },
    ClaimCase {
        name: "aud a number",
        changes: || json!({"aud": 7}),
        expect: unchanged,
        result: "missing_claim",
    },
    ClaimCase {
        name: "expired",
        changes: || json!({"exp": NOW}),
        expect: unchanged,
        result: "id_token_expired",
    },
    ClaimCase {
        name: "expired, but within the leeway",
        changes: || json!({"exp": NOW - 5}),
        expect: |e| e.leeway = 10,
        result: "ok",
    },
    ClaimCase {
        name: "no exp",
        changes: || json!({"exp": null}),
        expect: unchanged,
        result: "missing_claim",
    },
    ClaimCase {
        name: "exp a string",
        changes: || json!({"exp": "1700000300"}),
        expect: unchanged,
        result: "missing_claim",
    },
    ClaimCase {
        name: "issued in the future",
        changes: || json!({"iat": NOW + 60}),
        expect: unchanged,
        result: "issued_in_the_future",
    },
    ClaimCase {
        name: "no iat",
        changes: || json!({"iat": null}),
        expect: unchanged,
        result: "missing_claim",
    },
    ClaimCase {
        name: "another sign-in's nonce",
        changes: || json!({"nonce": "replayed"}),
        expect: unchanged,
        result: "wrong_nonce",
    },
    ClaimCase {
        name: "no nonce where one was sent",
        changes: || json!({"nonce": null}),
        expect: unchanged,
        result: "wrong_nonce",
    },
    ClaimCase {
        name: "a nonce where none was sent",
        changes: || json!({}),
        expect: |e| e.nonce = None,
        result: "wrong_nonce",
    },
    ClaimCase { name: "max_age met", changes: || json!({}), expect: |e| e.max_age = Some(60), result: "ok" },
    ClaimCase {
        name: "max_age passed",
        changes: || json!({}),
        expect: |e| e.max_age = Some(10),
        result: "authentication_too_old",
    },
    ClaimCase {
        name: "max_age without auth_time",
        changes: || json!({"auth_time": null}),
        expect: |e| e.max_age = Some(60),
        result: "missing_claim",
    },
];

pub fn id_token_claims_follow_the_table() {
    for jwk in [RFC8037_JWK, RFC7515_A3_JWK] {
        for case in CLAIM_TABLE {
            let token = signed(jwk, &with((case.changes)()));
            let mut expected = expectations();
            (case.expect)(&mut expected);
            let result = verify_id_token(&token, JWKS, &expected);
            let message = result.as_ref().err().map(IdTokenError::message);
            assert_eq!(id_code(result), case.result, "{} ({jwk:.40}): {message:?}", case.name);
        }
    }
}

pub fn a_verified_id_token_gives_its_claims() {
    let token = signed(RFC7515_A3_JWK, &id_claims());
    let claims = verify_id_token(&token, JWKS, &expectations()).unwrap();
    assert_eq!(Value::Object(claims), id_claims());
}

pub fn the_fixed_ed25519_id_token_is_signed_and_verified_alike() {
    assert_eq!(signed(RFC8037_JWK, &id_claims()), FIXED_ED25519_ID_TOKEN);
    assert_eq!(id_code(verify_id_token(FIXED_ED25519_ID_TOKEN, JWKS, &expectations())), "ok");
}

/// What an attacker can do to a token without the key, each refused before any claim counts.
pub fn forged_id_tokens_are_refused() {
    let token = signed(RFC8037_JWK, &id_claims());
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = signing_input.split_once('.').unwrap();
    let b64 = |value: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let admin_claims = b64(&with(json!({"sub": "root"})));
    let tampered = format!("{header}.{admin_claims}.{signature}");
    let unsecured = format!("{}.{}.", b64(&json!({"alg": "none", "kid": "rfc8037"})), b64(&id_claims()));
    let unknown_kid = signed_with_kid("rotated-away");
    let other_providers_key = signed_with_kid("other");
    let no_kid = format!("{}.{}.{signature}", b64(&json!({"alg": "EdDSA"})), b64(&id_claims()));
    // The Ed25519 key's kid with ES256 in the header: a key verifies under its own algorithm only.
    let confused =
        format!("{}.{}.{signature}", b64(&json!({"alg": "ES256", "kid": "rfc8037"})), b64(&id_claims()));
    let hs256 =
        format!("{}.{}.{signature}", b64(&json!({"alg": "HS256", "kid": "rfc8037"})), b64(&id_claims()));
    let rows: &[(&str, &str, &str)] = &[
        ("a claim changed after signing", &tampered, "bad_jwt_signature"),
        ("alg none", &unsecured, "unsecured_jwt"),
        ("a kid the JWKS does not hold", &unknown_kid, "unknown_signing_key"),
        ("the kid of a key the package skipped", &other_providers_key, "unknown_signing_key"),
        ("no kid", &no_kid, "unknown_signing_key"),
        ("another algorithm for the key", &confused, "unsupported_jwt_algorithm"),
        ("HS256 with the public key as secret", &hs256, "unsupported_jwt_algorithm"),
        ("two parts", signing_input, "malformed_jwt"),
        ("not base64url", "a.b!.c", "malformed_jwt"),
    ];
    for (name, token, code) in rows {
        assert_eq!(id_code(verify_id_token(token, JWKS, &expectations())), *code, "{name}");
    }
}

fn signed_with_kid(kid: &str) -> String {
    let jwk = RFC8037_JWK.replace("\"rfc8037\"", &format!("\"{kid}\""));
    signed(&jwk, &id_claims())
}

pub fn unusable_jwks_are_refused() {
    let token = signed(RFC8037_JWK, &id_claims());
    let rows: &[(&str, &str)] = &[
        ("not JSON", "keys"),
        ("no keys member", r#"{"jwks":[]}"#),
        ("an empty set", r#"{"keys":[]}"#),
        ("only keys of other algorithms", r#"{"keys":[{"kty":"RSA","kid":"a","n":"sXch","e":"AQAB"}]}"#),
        (
            "x not on the curve",
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"EdDSA","x":"AA"}]}"#,
        ),
    ];
    for (name, jwks) in rows {
        assert_eq!(id_code(verify_id_token(&token, jwks, &expectations())), "invalid_jwks", "{name}");
    }
    let twice = format!(r#"{{"keys":[{0},{0}]}}"#, &JWKS[9..JWKS.find("},{").unwrap() + 1]);
    assert_eq!(id_code(key_set_from_jwks(&twice)), "invalid_jwks");
}

pub fn decoding_without_verifying_reads_any_signer() {
    // A token no key of ours signed still decodes: the function's name says what it skips.
    let token = signed_with_kid("someone-else");
    let decoded = decode_jwt_unverified(&token).unwrap();
    assert_eq!(decoded.header.alg, "EdDSA");
    assert_eq!(decoded.header.kid.as_deref(), Some("someone-else"));
    assert_eq!(decoded.header.typ.as_deref(), Some("JWT"));
    assert_eq!(Value::Object(decoded.claims), id_claims());
    for bad in ["", "a.b", "e30.e30", "W10.e30.", "e30.W10.", "e30.e30.!"] {
        assert_eq!(id_code(decode_jwt_unverified(bad)), "malformed_jwt", "{bad:?}");
    }
}

pub fn a_token_response_keeps_its_id_token() {
    let body = r#"{"access_token":"a","token_type":"Bearer","id_token":"h.c.s"}"#;
    let set = browser::parse_token_response(body, 0).unwrap();
    assert_eq!(set.id_token.as_deref(), Some("h.c.s"));
    let without = browser::parse_token_response(r#"{"access_token":"a","token_type":"Bearer"}"#, 0).unwrap();
    assert_eq!(without.id_token, None);
    let wrong = r#"{"access_token":"a","token_type":"Bearer","id_token":7}"#;
    assert_eq!(code(browser::parse_token_response(wrong, 0)), "invalid_token_response");
}
