//! OpenID Connect's rules on top of the code flow (OpenID Connect Core 1.0), pure: the ID
//! token's claims and `at_hash`, the `prompt` parameter, and which user claims each scope
//! releases at `/userinfo`. Signing is [`crate::jose`]'s; the gateway decides when.
//!
//! - `sub` is the username: the configuration's usernames are unique, at most 255 bytes, and
//!   never reassigned to another person by the gateway (Core §2 asks for a locally unique,
//!   never reassigned identifier of at most 255 ASCII characters' length).
//! - `at_hash` (Core §3.1.3.6) is the left half of the hash of the access token's ASCII, with
//!   the hash of the ID token's `alg`: SHA-256 for ES256, SHA-512 for EdDSA with Ed25519 (the
//!   OpenID Connect working group's resolution for EdDSA, as OpenID Connect Core errata set 2
//!   words it).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};

use crate::config::UserClaims;
use crate::jose::Algorithm;
use crate::oauth::scope::ScopeSet;

/// The scope that makes a code-flow request an OpenID Connect one (Core §3.1.2.1).
pub const OPENID_SCOPE: &str = "openid";
/// Releases `name`, `given_name`, `family_name`, `preferred_username` (Core §5.4).
pub const PROFILE_SCOPE: &str = "profile";
/// Releases `email`, `email_verified` (Core §5.4).
pub const EMAIL_SCOPE: &str = "email";

/// The claims `/userinfo` and the ID token may carry, for Discovery's `claims_supported`.
pub const CLAIMS_SUPPORTED: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "email",
    "email_verified",
];

/// Whether a space-separated scope holds `openid`.
pub fn is_openid(scope: &str) -> bool {
    scope.split(' ').any(|name| name == OPENID_SCOPE)
}

/// The ID token's claims (Core §2), in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    /// The client, the only audience (Core §2: a single audience may be a string).
    pub aud: &'a str,
    /// Core §2: the party the token was issued to, the same client.
    pub azp: &'a str,
    pub exp: u64,
    pub iat: u64,
    /// When the user signed in; absent on a refresh, where the grant no longer knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// Echoed from the authorization request; never on a refresh (Core §12.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    pub at_hash: String,
}

/// Core §3.1.3.6: base64url of the left half of the hash of the access token's ASCII, with
/// the hash function of the ID token's `alg`.
pub fn at_hash(alg: Algorithm, access_token: &str) -> String {
    match alg {
        Algorithm::Es256 => left_half_b64(&Sha256::digest(access_token.as_bytes())),
        Algorithm::EdDSA => left_half_b64(&Sha512::digest(access_token.as_bytes())),
    }
}

fn left_half_b64(digest: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest.get(..digest.len() / 2).unwrap_or_default())
}

/// What `prompt` (Core §3.1.2.1) asks of a gateway that keeps no login session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// No `prompt`, or values the login page always satisfies (`login`, `consent`,
    /// `select_account`): the page asks for the password every time.
    ShowLoginPage,
    /// `none`: the user may not be asked, and there is no session to sign in from, so the
    /// answer is `login_required`.
    None,
}

/// Why a `prompt` is refused: `invalid_request` (Core §3.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptError(pub &'static str);

impl Prompt {
    /// Reads `prompt`: space-separated known values, `none` alone (Core §3.1.2.1).
    pub fn parse(value: Option<&str>) -> Result<Prompt, PromptError> {
        let Some(value) = value else { return Ok(Prompt::ShowLoginPage) };
        let mut has_none = false;
        let mut count = 0usize;
        for name in value.split(' ').filter(|name| !name.is_empty()) {
            count = count.saturating_add(1);
            match name {
                "none" => has_none = true,
                "login" | "consent" | "select_account" => {}
                _ => return Err(PromptError("prompt has a value this server does not know")),
            }
        }
        match (has_none, count) {
            (true, 1) => Ok(Prompt::None),
            (true, _) => Err(PromptError("prompt=none may not be combined with another value")),
            (false, _) => Ok(Prompt::ShowLoginPage),
        }
    }
}

/// `max_age` (Core §3.1.2.1): a non-negative number of seconds. The gateway always asks for the
/// password, so any value is met; it is read only to refuse a malformed one, and the ID token
/// always carries `auth_time`.
pub fn check_max_age(value: Option<&str>) -> Result<(), PromptError> {
    match value {
        Some(text) if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 19 => {
            Err(PromptError("max_age must be a non-negative number of seconds"))
        }
        _ => Ok(()),
    }
}

/// The UserInfo response (Core §5.3.2): `sub`, then what the token's scopes release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo<'a> {
    pub sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

impl<'a> UserInfo<'a> {
    /// The claims `scopes` release about `username` (Core §5.4): `profile` the names,
    /// `email` the address and whether it is verified; claims the configuration does not set
    /// are left out (Core §5.3.2).
    pub fn released(username: &'a str, claims: &'a UserClaims, scopes: &ScopeSet) -> UserInfo<'a> {
        let profile = scopes.contains(PROFILE_SCOPE);
        let email = scopes.contains(EMAIL_SCOPE) && claims.email.is_some();
        UserInfo {
            sub: username,
            name: claims.name.as_deref().filter(|_| profile),
            given_name: claims.given_name.as_deref().filter(|_| profile),
            family_name: claims.family_name.as_deref().filter(|_| profile),
            preferred_username: profile.then_some(username),
            email: claims.email.as_deref().filter(|_| email),
            email_verified: email.then_some(claims.email_verified),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The access token of OpenID Connect Core §A.3's example, whose `at_hash` the spec gives
    /// for RS256 (SHA-256): `77QmUPtjPfzWtF2AnpK9RQ`. ES256 uses the same hash.
    const CORE_A3_ACCESS_TOKEN: &str = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";

    #[test]
    fn at_hash_uses_sha256_for_es256_as_core_a3_computes_it() {
        assert_eq!(at_hash(Algorithm::Es256, CORE_A3_ACCESS_TOKEN), "77QmUPtjPfzWtF2AnpK9RQ");
    }

    /// For EdDSA, SHA-512's left half (32 bytes), computed outside this crate with Python's
    /// `hashlib`: `base64.urlsafe_b64encode(hashlib.sha512(token).digest()[:32])`, unpadded.
    #[test]
    fn at_hash_uses_the_left_half_of_sha512_for_eddsa() {
        assert_eq!(
            at_hash(Algorithm::EdDSA, CORE_A3_ACCESS_TOKEN),
            "q7nS86GgvvFaZkzALLWqJYaJIKw2wCDAVfCAsm5CrBM"
        );
    }

    #[test]
    fn prompt_values_follow_core_3_1_2_1() {
        struct Case {
            name: &'static str,
            prompt: Option<&'static str>,
            expect: Result<Prompt, ()>,
        }
        let cases = [
            Case { name: "absent", prompt: None, expect: Ok(Prompt::ShowLoginPage) },
            Case { name: "login", prompt: Some("login"), expect: Ok(Prompt::ShowLoginPage) },
            Case { name: "login consent", prompt: Some("login consent"), expect: Ok(Prompt::ShowLoginPage) },
            Case {
                name: "select_account",
                prompt: Some("select_account"),
                expect: Ok(Prompt::ShowLoginPage),
            },
            Case { name: "none", prompt: Some("none"), expect: Ok(Prompt::None) },
            Case { name: "none with login", prompt: Some("none login"), expect: Err(()) },
            Case { name: "unknown", prompt: Some("maybe"), expect: Err(()) },
            Case { name: "case matters", prompt: Some("Login"), expect: Err(()) },
        ];
        for case in cases {
            assert_eq!(Prompt::parse(case.prompt).map_err(|_| ()), case.expect, "{}", case.name);
        }
    }

    #[test]
    fn max_age_is_a_non_negative_integer() {
        for good in [None, Some("0"), Some("3600")] {
            assert!(check_max_age(good).is_ok(), "{good:?}");
        }
        for bad in [Some(""), Some("-1"), Some("1.5"), Some("ten"), Some("99999999999999999999")] {
            assert!(check_max_age(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_release_claims_as_core_5_4_says() {
        let claims = UserClaims {
            name: Some("Alice Liddell".into()),
            given_name: Some("Alice".into()),
            family_name: None,
            email: Some("alice@example.com".into()),
            email_verified: true,
        };
        let scopes = |text: &str| ScopeSet::parse(text).unwrap();
        let openid = UserInfo::released("alice", &claims, &scopes("openid"));
        assert_eq!(serde_json::to_string(&openid).unwrap(), r#"{"sub":"alice"}"#);
        let profile = UserInfo::released("alice", &claims, &scopes("openid profile"));
        assert_eq!(
            serde_json::to_string(&profile).unwrap(),
            r#"{"sub":"alice","name":"Alice Liddell","given_name":"Alice","preferred_username":"alice"}"#,
            "family_name is not configured, so it is left out"
        );
        let email = UserInfo::released("alice", &claims, &scopes("openid email"));
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            r#"{"sub":"alice","email":"alice@example.com","email_verified":true}"#
        );
        let nothing = UserClaims::default();
        let no_address = UserInfo::released("bob", &nothing, &scopes("openid email"));
        assert_eq!(
            serde_json::to_string(&no_address).unwrap(),
            r#"{"sub":"bob"}"#,
            "no email_verified alone"
        );
    }
}
