//! OpenID Connect on the code flow (docs/openid-connect.md): the ID token's claims (Core §2,
//! §3.1.3.6), `prompt` and `max_age` (§3.1.2.1), UserInfo (§5.3) and Discovery (§3, §4).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};

use super::*;
use crate::jose::{self, Algorithm};

/// RFC 7515 Appendix A.3's P-256 key: a published test key, never one to deploy.
fn rfc7515_signing_key() -> serde_json::Value {
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": "rfc7515", "alg": "ES256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
    })
}

/// The code-flow config with OpenID Connect on: a signing key of `alg`, the OpenID scopes on
/// demo-spa and alice, and alice's claims.
fn openid_rig(alg: Algorithm) -> Rig {
    let key = match alg {
        Algorithm::EdDSA => crate::config::tests::rfc8037_signing_key(),
        Algorithm::Es256 => rfc7515_signing_key(),
    };
    Rig::with_config(&config_with(CONFIG, |v| {
        v["signing"] = serde_json::json!({ "keys": [key], "id_token_lifetime_secs": 120 });
        v["applications"][0]["scopes"] = serde_json::json!(["orders:read", "openid", "profile", "email"]);
        v["users"][0]["scopes"] = serde_json::json!(["orders:read", "openid", "profile", "email"]);
        v["users"][0]["name"] = "Alice Liddell".into();
        v["users"][0]["email"] = "alice@example.com".into();
        v["users"][0]["email_verified"] = true.into();
    }))
}

fn query(scope: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id=demo-spa&redirect_uri={CALLBACK}&scope={scope}&state=s1\
         &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}"
    )
}

impl Rig {
    /// The token response of a whole sign-in by alice for `scope`, with `extra` parameters.
    fn openid_tokens(&self, scope: &str, extra: &str) -> serde_json::Value {
        let page = self.authorize(&query(scope, extra));
        assert_eq!(page.0.status, 200, "{}", page.text());
        let back = self.sign_in(&page.handle(), "alice", "wonderland");
        let code = back.callback().get("code").unwrap().to_owned();
        let tokens = self.exchange(&code, CALLBACK, VERIFIER);
        assert_eq!(tokens.0.status, 200, "{}", tokens.text());
        tokens.json()
    }

    fn userinfo(&self, method: &str, authorization: Option<&str>, body: &str) -> Reply {
        self.request(method, "/oauth2/userinfo", authorization, body)
    }
}

/// The ID token verified against the gateway's own JWKS, as a relying party would.
fn verified_claims(rig: &Rig, id_token: &str) -> serde_json::Map<String, serde_json::Value> {
    let signing = rig.config.signing.as_ref().unwrap();
    jose::verify(&signing.key_set, id_token, &Algorithm::ALL).unwrap().claims
}

#[test]
fn an_openid_code_yields_an_id_token_with_every_core_2_claim() {
    for alg in Algorithm::ALL {
        let rig = openid_rig(alg);
        let before = rig.gateway().now().unwrap() / 1000;
        let body = rig.openid_tokens("openid%20profile", "&nonce=n-0S6_WzA2Mj&max_age=0");
        let id_token = body["id_token"].as_str().expect("an ID token");
        let claims = verified_claims(&rig, id_token);
        let header = jose::decode_unverified(id_token).unwrap().header;
        assert_eq!(header.alg, alg.name(), "signed with the configured key's alg");
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"], "alice", "the username");
        assert_eq!(claims["aud"], "demo-spa");
        assert_eq!(claims["azp"], "demo-spa");
        assert_eq!(claims["nonce"], "n-0S6_WzA2Mj", "echoed from /authorize");
        let iat = claims["iat"].as_u64().unwrap();
        assert!(iat >= before, "{iat} {before}");
        assert_eq!(claims["exp"].as_u64().unwrap(), iat + 120, "id_token_lifetime_secs");
        let auth_time = claims["auth_time"].as_u64().expect("auth_time, required with max_age");
        assert!(auth_time >= before && auth_time <= iat, "when alice signed in");
        // Core §3.1.3.6, computed here from sha2 directly: the left half of the digest of the
        // access token's ASCII, SHA-256 for ES256 and SHA-512 for EdDSA.
        let access = body["access_token"].as_str().unwrap().as_bytes();
        let expected = match alg {
            Algorithm::Es256 => URL_SAFE_NO_PAD.encode(&Sha256::digest(access)[..16]),
            Algorithm::EdDSA => URL_SAFE_NO_PAD.encode(&Sha512::digest(access)[..32]),
        };
        assert_eq!(claims["at_hash"], expected.as_str(), "{}", alg.name());
    }
}

#[test]
fn without_a_nonce_the_id_token_has_none_and_without_openid_there_is_no_id_token() {
    let rig = openid_rig(Algorithm::EdDSA);
    let body = rig.openid_tokens("openid", "");
    let claims = verified_claims(&rig, body["id_token"].as_str().unwrap());
    assert!(claims.get("nonce").is_none(), "{claims:?}");
    assert!(claims["auth_time"].is_u64(), "auth_time is always there");
    let plain = rig.openid_tokens("orders:read", "");
    assert!(plain.get("id_token").is_none(), "{plain}");
}

#[test]
fn without_signing_keys_openid_is_a_scope_like_any_other() {
    let rig = Rig::with_config(&config_with(CONFIG, |v| {
        v["applications"][0]["scopes"] = serde_json::json!(["orders:read", "openid"]);
        v["users"][0]["scopes"] = serde_json::json!(["orders:read", "openid"]);
    }));
    let body = rig.openid_tokens("openid", "");
    assert_eq!(body["scope"], "openid");
    assert!(body.get("id_token").is_none(), "{body}");
    assert!(rig.gateway().endpoint("/.well-known/openid-configuration").is_none());
}

#[test]
fn a_refresh_of_an_openid_grant_yields_a_new_id_token_without_nonce_core_12_2() {
    let rig = openid_rig(Algorithm::EdDSA);
    let body = rig.openid_tokens("openid", "&nonce=abc");
    let refresh = format!(
        "grant_type=refresh_token&client_id=demo-spa&refresh_token={}",
        body["refresh_token"].as_str().unwrap()
    );
    let refreshed = rig.request("POST", "/token", None, &refresh);
    assert_eq!(refreshed.0.status, 200, "{}", refreshed.text());
    let refreshed = refreshed.json();
    let claims = verified_claims(&rig, refreshed["id_token"].as_str().expect("a new ID token"));
    assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some("alice"), Some("demo-spa")));
    assert!(claims.get("nonce").is_none(), "Core §12.2: no nonce on a refresh");
    let access = refreshed["access_token"].as_str().unwrap().as_bytes();
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&Sha512::digest(access)[..32]).as_str());
}

#[test]
fn prompt_and_max_age_follow_core_3_1_2_1() {
    struct Case {
        name: &'static str,
        extra: &'static str,
        /// `None`: the login page; else the error the redirect carries.
        error: Option<&'static str>,
    }
    let cases = [
        Case { name: "prompt=login shows the page", extra: "&prompt=login", error: None },
        Case { name: "prompt=consent shows the page", extra: "&prompt=consent", error: None },
        Case { name: "prompt=none has no session", extra: "&prompt=none", error: Some("login_required") },
        Case { name: "none with login", extra: "&prompt=none%20login", error: Some("invalid_request") },
        Case { name: "unknown prompt", extra: "&prompt=later", error: Some("invalid_request") },
        Case { name: "max_age=0 shows the page", extra: "&max_age=0", error: None },
        Case { name: "max_age not a number", extra: "&max_age=soon", error: Some("invalid_request") },
        Case { name: "id_token_hint is ignored", extra: "&id_token_hint=eyJ.eyJ.sig", error: None },
    ];
    let rig = openid_rig(Algorithm::EdDSA);
    for case in cases {
        let reply = rig.authorize(&query("openid", case.extra));
        match case.error {
            None => assert_eq!(reply.0.status, 200, "{}: {}", case.name, reply.text()),
            Some(error) => {
                assert_eq!(reply.0.status, 302, "{}", case.name);
                let params = reply.callback();
                assert_eq!(params.get("error"), Some(error), "{}", case.name);
                assert_eq!(params.get("state"), Some("s1"), "{}", case.name);
                assert_eq!(params.get("iss"), Some(ISSUER), "{}", case.name);
            }
        }
    }
}

#[test]
fn userinfo_releases_claims_by_scope_by_get_and_post() {
    struct Case {
        name: &'static str,
        scope: &'static str,
        expect: serde_json::Value,
    }
    let cases = [
        Case { name: "openid alone", scope: "openid", expect: serde_json::json!({"sub": "alice"}) },
        Case {
            name: "profile",
            scope: "openid%20profile",
            expect: serde_json::json!({"sub": "alice", "name": "Alice Liddell", "preferred_username": "alice"}),
        },
        Case {
            name: "email",
            scope: "openid%20email",
            expect: serde_json::json!({"sub": "alice", "email": "alice@example.com", "email_verified": true}),
        },
    ];
    let rig = openid_rig(Algorithm::EdDSA);
    for case in cases {
        let body = rig.openid_tokens(case.scope, "");
        let token = body["access_token"].as_str().unwrap();
        let get = rig.userinfo("GET", Some(&format!("Bearer {token}")), "");
        assert_eq!(get.0.status, 200, "{}: {}", case.name, get.text());
        assert_eq!(get.json(), case.expect, "{}", case.name);
        assert_eq!(get.0.header("cache-control"), Some("no-store"));
        let post = rig.userinfo("POST", None, &format!("access_token={token}"));
        assert_eq!(post.json(), case.expect, "{} by POST form (RFC 6750 §2.2)", case.name);
        let id_token = verified_claims(&rig, body["id_token"].as_str().unwrap());
        assert_eq!(id_token["sub"], case.expect["sub"], "the same sub as the ID token (Core §5.3.2)");
    }
}

#[test]
fn userinfo_errors_are_rfc6750s() {
    let rig = openid_rig(Algorithm::EdDSA);
    let without_openid = rig.openid_tokens("orders:read", "");
    let token = without_openid["access_token"].as_str().unwrap();
    let forbidden = rig.userinfo("GET", Some(&format!("Bearer {token}")), "");
    assert_eq!(forbidden.0.status, 403, "{}", forbidden.text());
    assert_eq!(forbidden.json()["error"], "insufficient_scope");
    let challenge = forbidden.0.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"openid\""));

    let unknown = rig.userinfo("GET", Some("Bearer made-up-token"), "");
    assert_eq!(unknown.0.status, 401);
    assert!(unknown.0.header("www-authenticate").unwrap().contains("error=\"invalid_token\""));

    let bare = rig.userinfo("GET", None, "");
    assert_eq!(bare.0.status, 401);
    let challenge = bare.0.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer ") && !challenge.contains("error="), "{challenge}");

    let refresh = rig.openid_tokens("openid", "")["refresh_token"].as_str().unwrap().to_owned();
    let not_access = rig.userinfo("GET", Some(&format!("Bearer {refresh}")), "");
    assert_eq!(not_access.0.status, 401, "a refresh token is not an access token");

    let put = rig.userinfo("PUT", None, "");
    assert_eq!((put.0.status, put.0.header("allow")), (405, Some("GET, POST")));
}

#[test]
fn discovery_has_every_required_field_and_the_issuer_of_the_id_tokens() {
    let rig = openid_rig(Algorithm::Es256);
    let reply = rig.request("GET", "/.well-known/openid-configuration", None, "");
    assert_eq!(reply.0.status, 200, "{}", reply.text());
    let doc = reply.json();
    // Discovery §3's REQUIRED fields.
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["authorization_endpoint"], format!("{ISSUER}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(doc["userinfo_endpoint"], format!("{ISSUER}/oauth2/userinfo"));
    assert_eq!(doc["jwks_uri"], format!("{ISSUER}/oauth2/jwks"));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(doc["subject_types_supported"], serde_json::json!(["public"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    // And the RECOMMENDED and OPTIONAL ones clients read.
    for scope in ["openid", "profile", "email"] {
        assert!(doc["scopes_supported"].as_array().unwrap().iter().any(|s| s == scope), "{scope}");
    }
    for claim in ["sub", "auth_time", "nonce", "at_hash", "email", "email_verified"] {
        assert!(doc["claims_supported"].as_array().unwrap().iter().any(|c| c == claim), "{claim}");
    }
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert!(doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "client_secret_post"));
    assert!(doc["grant_types_supported"].as_array().unwrap().iter().any(|g| g == "authorization_code"));
    let rfc8414 = rig.request("GET", "/.well-known/oauth-authorization-server", None, "").json();
    assert_eq!(rfc8414, doc, "one document at both well-known paths");
}
