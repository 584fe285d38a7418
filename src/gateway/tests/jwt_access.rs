//! JWT access tokens (RFC 9068): what `/token` issues for a `jwt` application, and the Bearer
//! check, introspection and revocation on them (see docs/tokens-and-keys.md).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::*;
use crate::jose::{decode_unverified, verify, Algorithm};

const CLIENT_CREDENTIALS: &str = "grant_type=client_credentials&scope=orders:read";
const PASSWORD: &str = "grant_type=password&username=admin&password=admin";

/// RFC 7515 Appendix A.3's P-256 key: a published test key, never one to deploy.
fn rfc7515_signing_key() -> serde_json::Value {
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": "rfc7515", "alg": "ES256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
    })
}

/// The lifecycle demo with the demo app on JWT access tokens, signed by `key`.
fn jwt_rig(key: serde_json::Value) -> Rig {
    Rig::with_config(&config_with(&crate::config::tests::demo_with_lifecycle(), |v| {
        v["signing"] = serde_json::json!({ "keys": [key] });
        v["applications"][0]["token_format"] = "jwt".into();
    }))
}

fn eddsa_rig() -> Rig {
    jwt_rig(crate::config::tests::rfc8037_signing_key())
}

/// The token's claims, once its signature verified with the configured keys.
fn verified_claims(rig: &Rig, token: &str) -> serde_json::Map<String, serde_json::Value> {
    let keys = &rig.config.signing.as_ref().unwrap().key_set;
    let verified = verify(keys, token, &[Algorithm::EdDSA, Algorithm::Es256]).unwrap();
    assert_eq!(verified.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1");
    verified.claims
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

#[test]
fn client_credentials_issue_a_signed_jwt_about_the_client() {
    let rig = eddsa_rig();
    let reply = rig.token(CLIENT_CREDENTIALS);
    assert_eq!(reply.0.status, 200, "{}", reply.text());
    let token = reply.field("access_token");
    assert_eq!(reply.json()["expires_in"], 300, "the JWT default lifetime, shorter than opaque tokens'");
    let header = decode_unverified(&token).unwrap().header;
    assert_eq!((header.alg.as_str(), header.kid.as_deref()), ("EdDSA", Some("rfc8037")));
    let claims = verified_claims(&rig, &token);
    let now = 1_700_000_000;
    let expected = serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "demo-app",
        "aud": "demo-app",
        "client_id": "demo-app",
        "azp": "demo-app",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "scope": "orders:read",
        "aut": "APPLICATION",
    });
    for (name, value) in expected.as_object().unwrap() {
        assert_eq!(claims.get(name), Some(value), "{name} in {claims:?}");
    }
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 39);
    assert!(claims.get("auth_time").is_none(), "no user authenticated");
    let claims_text = String::from_utf8(unb64(token.split('.').nth(1).unwrap())).unwrap();
    assert!(claims_text.starts_with(&format!(r#"{{"jti":"{jti}","#)), "the store reads jti at the start");
    assert_eq!(claims.len(), expected.as_object().unwrap().len() + 1, "nothing else, nothing secret");
    assert!(!token.contains("demo-secret"));
}

#[test]
fn password_grants_name_the_user_and_when_they_authenticated_and_refresh_tokens_stay_opaque() {
    let rig = eddsa_rig();
    let reply = rig.token(PASSWORD);
    assert_eq!(reply.0.status, 200, "{}", reply.text());
    let claims = verified_claims(&rig, &reply.field("access_token"));
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["aut"], "APPLICATION_USER");
    assert_eq!(claims["auth_time"], claims["iat"], "the password was checked by this request");
    assert_eq!(claims["scope"], "orders:read orders:write");
    let refresh = reply.field("refresh_token");
    assert!(!refresh.contains('.') && refresh.len() == 50, "an opaque refresh token");

    rig.clock.advance(5);
    let refreshed = rig.token(&format!("grant_type=refresh_token&refresh_token={refresh}&scope=orders:read"));
    assert_eq!(refreshed.0.status, 200, "{}", refreshed.text());
    let new_claims = verified_claims(&rig, &refreshed.field("access_token"));
    assert_eq!(new_claims["sub"], "admin");
    assert_eq!(new_claims["scope"], "orders:read", "the narrowed scope");
    assert_eq!(new_claims["iat"], claims["iat"].as_u64().unwrap() + 5);
    assert_ne!(new_claims["jti"], claims["jti"]);
    assert!(new_claims.get("auth_time").is_none(), "a refresh proves the grant, not the user");
    assert_eq!(rig.call_with_token("GET", "/api/orders", &refreshed.field("access_token")).status(), 200);
}

trait Status {
    fn status(&self) -> u16;
}

impl Status for Outcome {
    fn status(&self) -> u16 {
        status_of(self)
    }
}

#[test]
fn the_bearer_check_accepts_the_jwt_as_issued_and_nothing_else() {
    let rig = jwt_rig(rfc7515_signing_key());
    let token = rig.access_token(CLIENT_CREDENTIALS);
    assert_eq!(rig.call_with_token("GET", "/api/orders", &token).status(), 200);
    let [header, claims, signature] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let raw_signature = unb64(signature);
    let jti = verified_claims(&rig, &token)["jti"].as_str().unwrap().to_owned();
    let tampered_claims = {
        let text = String::from_utf8(unb64(claims)).unwrap().replace("orders:read", "orders:write");
        format!("{header}.{}.{signature}", b64(text.as_bytes()))
    };
    let none_header = b64(br#"{"alg":"none","typ":"at+jwt"}"#);
    let other_kid = {
        let text = String::from_utf8(unb64(header)).unwrap().replace("rfc7515", "rfc8037");
        format!("{}.{claims}.{signature}", b64(text.as_bytes()))
    };
    let high_s = [&raw_signature[..32], &negate_mod_p256_order(&raw_signature[32..])].concat();
    struct Case {
        name: &'static str,
        token: String,
    }
    let table = [
        Case { name: "a claim changed", token: tampered_claims },
        Case { name: "alg none without a signature", token: format!("{none_header}.{claims}.") },
        Case { name: "another kid", token: other_kid },
        Case {
            name: "the high-S twin of the signature",
            token: format!("{header}.{claims}.{}", b64(&high_s)),
        },
        Case { name: "a padded signature", token: format!("{token}=") },
        Case { name: "the jti alone", token: jti },
        Case { name: "header and claims without a signature", token: format!("{header}.{claims}") },
    ];
    for case in table {
        let outcome = rig.call_with_token("GET", "/api/orders", &case.token);
        assert_eq!(outcome.status(), 401, "{}", case.name);
        assert!(challenge_of(&outcome).contains("invalid_token"), "{}", case.name);
    }
    assert_eq!(rig.call_with_token("GET", "/api/orders", &token).status(), 200, "the original still works");
}

/// `n - s` for P-256's group order `n`: the other valid ECDSA `S` for the same `R`.
fn negate_mod_p256_order(s: &[u8]) -> Vec<u8> {
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc,
        0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ];
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut digit = i16::from(ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        out[i] = digit as u8;
    }
    out
}

#[test]
fn a_jwt_is_introspected_and_once_revoked_refused_at_once() {
    let rig = eddsa_rig();
    let token = rig.access_token(CLIENT_CREDENTIALS);
    assert_eq!(rig.call_with_token("GET", "/api/orders", &token).status(), 200, "remembered by the worker");
    let described =
        rig.post_as("orders-service", "rs-secret", "/introspect", &format!("token={token}")).json();
    assert_eq!(described["active"], true, "{described}");
    assert_eq!(described["client_id"], "demo-app");
    assert_eq!(described["scope"], "orders:read");
    let revoked = rig.post_as("demo-app", "demo-secret", "/revoke", &format!("token={token}"));
    assert_eq!(revoked.0.status, 200);
    assert_eq!(rig.call_with_token("GET", "/api/orders", &token).status(), 401);
    let after = rig.post_as("orders-service", "rs-secret", "/introspect", &format!("token={token}")).json();
    assert_eq!(after, serde_json::json!({"active": false}));
}

#[test]
fn opaque_applications_keep_opaque_tokens_next_to_jwt_ones() {
    let rig = eddsa_rig();
    let opaque = rig.post_as("orders-service", "rs-secret", "/token", "grant_type=client_credentials");
    assert_eq!(opaque.field("access_token").len(), 39);
    assert_eq!(opaque.json()["expires_in"], 3600);
}

#[test]
fn a_registered_application_takes_the_default_format_and_its_lifetime() {
    let rig = Rig::with_config(&config_with(&crate::config::tests::demo_with_lifecycle(), |v| {
        v["signing"] = serde_json::json!({ "keys": [crate::config::tests::rfc8037_signing_key()] });
        v["token_format"] = "jwt".into();
        v["jwt_access_token_validity_secs"] = 120.into();
    }));
    let body = r#"{"clientName":"mesh","owner":"admin","grantType":"client_credentials"}"#;
    let registered = register(&rig, ("admin", "admin"), "application/json", body);
    assert_eq!(registered.0.status, 201, "{}", registered.text());
    let (key, secret) = (registered.field("clientId"), registered.field("clientSecret"));
    let reply = rig.post_as(&key, &secret, "/token", "grant_type=client_credentials");
    assert_eq!(reply.0.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["expires_in"], 120);
    let claims = verified_claims(&rig, &reply.field("access_token"));
    assert_eq!(
        (claims["sub"].as_str(), claims["client_id"].as_str()),
        (Some(key.as_str()), Some(key.as_str()))
    );
}
