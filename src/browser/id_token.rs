//! JWTs on the client's side: reading one without trusting it, and verifying an OpenID Connect
//! ID token against the issuer's JWKS with the gateway's own [`crate::jose`] code.
//!
//! [`decode_jwt_unverified`] says in its name what it does not do: anyone can write the header
//! and claims it returns. [`verify_id_token`] is what a front-end app trusts: the signature by
//! the JWKS key the header's `kid` names (EdDSA or ES256, the key's own algorithm, never
//! `alg: none`), then the claims as OpenID Connect Core 1.0 §3.1.3.7 lists them for a client:
//! `iss` exactly the issuer (item 2), `aud` containing the client id (item 3), `azp` the client
//! id when present and required when there are several audiences (items 4 and 5), `exp` not
//! passed (item 9), `iat` not in the future (item 10), `nonce` the one the client sent (item
//! 11), and `auth_time` within `max_age` when the client asked for one (item 13). Times
//! allow `leeway` seconds for clocks that disagree.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::jose::{self, Algorithm, JwtError, KeySet, PublicJwk, UnverifiedJwt, VerifyingKey};

/// The algorithms an ID token may be signed with here: those the gateway signs with.
pub const ACCEPTED_ALGORITHMS: &[Algorithm] = &[Algorithm::EdDSA, Algorithm::Es256];

/// The clock tolerance when the caller gives none: oauth4webapi's default `clockTolerance`.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;

/// The header and claims of `token`, **not verified**: for displaying or routing on a token
/// only, never for a decision that trusts it. The same parsing rules as the gateway's own
/// verifier (size, canonical base64url, JSON objects with each member once).
pub fn decode_jwt_unverified(token: &str) -> Result<UnverifiedJwt, IdTokenError> {
    jose::decode_unverified(token).map_err(IdTokenError::Jwt)
}

/// What the client expects of an ID token: who issued it, for whom, in answer to which request,
/// and when it is being checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenExpectations {
    /// The issuer identifier, compared as an exact string (OpenID Connect Core §3.1.3.7 item 2).
    pub issuer: String,
    pub client_id: String,
    /// The `nonce` sent in the authentication request; `None` when none was sent, and then a
    /// token carrying one is refused too (it answers some other request).
    pub nonce: Option<String>,
    /// Seconds since the Unix epoch.
    pub now: u64,
    /// The `max_age` sent in the authentication request, in seconds: `auth_time` is then
    /// required and must be at most that long ago.
    pub max_age: Option<u64>,
    pub leeway: u64,
}

/// Why an ID token (or the JWKS it is checked against) is refused. Never carries a part of a
/// token or a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenError {
    /// The JWS itself: its form, its `alg`, its `kid` or its signature.
    Jwt(JwtError),
    /// The JWKS is not a JSON object with a `keys` array, or no key in it can verify.
    InvalidJwks(&'static str),
    /// A claim the checks need is absent or of the wrong JSON type.
    MissingClaim(&'static str),
    WrongIssuer,
    WrongAudience,
    /// `azp` is not the client id, or absent while there are several audiences.
    WrongAuthorizedParty,
    Expired,
    IssuedInTheFuture,
    WrongNonce,
    /// `auth_time` is longer ago than `max_age` allows.
    AuthenticationTooOld,
}

impl IdTokenError {
    /// Stable, for programs; none is an RFC 6749 or RFC 6750 error code.
    pub fn code(&self) -> &'static str {
        match self {
            IdTokenError::Jwt(error) => match error {
                JwtError::TooLarge | JwtError::Malformed(_) | JwtError::ClaimsNotAnObject => "malformed_jwt",
                JwtError::AlgNone => "unsecured_jwt",
                JwtError::UnsupportedAlgorithm
                | JwtError::AlgorithmNotAccepted
                | JwtError::AlgorithmMismatch
                | JwtError::CriticalHeader => "unsupported_jwt_algorithm",
                JwtError::MissingKid | JwtError::UnknownKid => "unknown_signing_key",
                JwtError::BadSignature => "bad_jwt_signature",
            },
            IdTokenError::InvalidJwks(_) => "invalid_jwks",
            IdTokenError::MissingClaim(_) => "missing_claim",
            IdTokenError::WrongIssuer => "wrong_issuer",
            IdTokenError::WrongAudience => "wrong_audience",
            IdTokenError::WrongAuthorizedParty => "wrong_authorized_party",
            IdTokenError::Expired => "id_token_expired",
            IdTokenError::IssuedInTheFuture => "issued_in_the_future",
            IdTokenError::WrongNonce => "wrong_nonce",
            IdTokenError::AuthenticationTooOld => "authentication_too_old",
        }
    }

    /// A sentence for people.
    pub fn message(&self) -> String {
        match self {
            IdTokenError::Jwt(error) => error.to_string(),
            IdTokenError::InvalidJwks(what) => format!("the JWKS is not usable: {what}"),
            IdTokenError::MissingClaim(what) => format!("the ID token's {what}"),
            IdTokenError::WrongIssuer => "the ID token's iss is not the expected issuer".to_owned(),
            IdTokenError::WrongAudience => "the ID token's aud does not contain this client's id".to_owned(),
            IdTokenError::WrongAuthorizedParty => {
                "the ID token's azp is not this client's id, or absent with several audiences".to_owned()
            }
            IdTokenError::Expired => "the ID token has expired".to_owned(),
            IdTokenError::IssuedInTheFuture => "the ID token's iat is in the future".to_owned(),
            IdTokenError::WrongNonce => "the ID token's nonce is not the one this sign-in sent".to_owned(),
            IdTokenError::AuthenticationTooOld => {
                "the ID token's auth_time is longer ago than max_age allows".to_owned()
            }
        }
    }
}

/// The claims of `token` once its signature verifies with a key of `jwks_json` and its claims
/// meet `expected` (see the module docs for each check, in order).
pub fn verify_id_token(
    token: &str,
    jwks_json: &str,
    expected: &IdTokenExpectations,
) -> Result<Map<String, Value>, IdTokenError> {
    let keys = key_set_from_jwks(jwks_json)?;
    let verified = jose::verify(&keys, token, ACCEPTED_ALGORITHMS).map_err(IdTokenError::Jwt)?;
    check_claims(&verified.claims, expected)?;
    Ok(verified.claims)
}

/// The keys of a JWK Set document (RFC 7517 §5) that this package can verify with. A key of
/// another algorithm (RS256 from another provider, say) or with members the gateway never
/// writes is left out rather than failing the whole set (RFC 7517 §5: "implementations SHOULD
/// ignore JWKs within a JWK Set that use kty values that are not understood"); a token naming
/// it is then refused as an unknown key.
pub fn key_set_from_jwks(jwks_json: &str) -> Result<KeySet, IdTokenError> {
    #[derive(Deserialize)]
    struct JwkSet {
        keys: Vec<Value>,
    }
    let set: JwkSet = serde_json::from_str(jwks_json)
        .map_err(|_| IdTokenError::InvalidJwks("it is not a JSON object with a keys array"))?;
    let usable: Vec<VerifyingKey> = set
        .keys
        .into_iter()
        .filter_map(|jwk| serde_json::from_value::<PublicJwk>(jwk).ok())
        .filter_map(|jwk| VerifyingKey::from_jwk(&jwk).ok())
        .collect();
    if usable.is_empty() {
        return Err(IdTokenError::InvalidJwks("it holds no EdDSA or ES256 signing key"));
    }
    KeySet::new(usable).map_err(|_| IdTokenError::InvalidJwks("two keys share a kid"))
}

fn check_claims(claims: &Map<String, Value>, expected: &IdTokenExpectations) -> Result<(), IdTokenError> {
    let issuer = string_claim(claims, "iss", "iss is missing or not a string")?;
    if issuer != Some(expected.issuer.as_str()) {
        return Err(match issuer {
            None => IdTokenError::MissingClaim("iss is missing or not a string"),
            Some(_) => IdTokenError::WrongIssuer,
        });
    }
    check_audience(claims, &expected.client_id)?;
    let expires = time_claim(claims, "exp", "exp is missing or not a number of seconds")?
        .ok_or(IdTokenError::MissingClaim("exp is missing or not a number of seconds"))?;
    if expected.now >= expires.saturating_add(expected.leeway) {
        return Err(IdTokenError::Expired);
    }
    let issued = time_claim(claims, "iat", "iat is missing or not a number of seconds")?
        .ok_or(IdTokenError::MissingClaim("iat is missing or not a number of seconds"))?;
    if issued > expected.now.saturating_add(expected.leeway) {
        return Err(IdTokenError::IssuedInTheFuture);
    }
    let nonce = string_claim(claims, "nonce", "nonce is not a string")?;
    if nonce != expected.nonce.as_deref() {
        return Err(IdTokenError::WrongNonce);
    }
    if let Some(max_age) = expected.max_age {
        let authenticated =
            time_claim(claims, "auth_time", "auth_time is missing or not a number of seconds")?
                .ok_or(IdTokenError::MissingClaim("auth_time is missing or not a number of seconds"))?;
        let deadline = authenticated.saturating_add(max_age).saturating_add(expected.leeway);
        if expected.now > deadline {
            return Err(IdTokenError::AuthenticationTooOld);
        }
    }
    Ok(())
}

/// `aud` is the client id or an array containing it (RFC 7519 §4.1.3); `azp`, when present,
/// is the client id, and is required when there are several audiences.
fn check_audience(claims: &Map<String, Value>, client_id: &str) -> Result<(), IdTokenError> {
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(audience)) => vec![audience.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(IdTokenError::MissingClaim("aud is missing or not a string or array")),
    };
    if !audiences.contains(&client_id) {
        return Err(IdTokenError::WrongAudience);
    }
    match string_claim(claims, "azp", "azp is not a string")? {
        Some(party) if party != client_id => Err(IdTokenError::WrongAuthorizedParty),
        None if audiences.len() > 1 => Err(IdTokenError::WrongAuthorizedParty),
        _ => Ok(()),
    }
}

/// A claim that must be a string when present.
fn string_claim<'c>(
    claims: &'c Map<String, Value>,
    name: &str,
    wrong_type: &'static str,
) -> Result<Option<&'c str>, IdTokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(IdTokenError::MissingClaim(wrong_type)),
    }
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, a non-negative integer here (a
/// fractional part is dropped; the gateway writes whole seconds).
fn time_claim(
    claims: &Map<String, Value>,
    name: &str,
    wrong_type: &'static str,
) -> Result<Option<u64>, IdTokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => match (number.as_u64(), number.as_f64()) {
            (Some(seconds), _) => Ok(Some(seconds)),
            (None, Some(seconds)) if seconds.is_finite() && seconds >= 0.0 => Ok(Some(seconds as u64)),
            _ => Err(IdTokenError::MissingClaim(wrong_type)),
        },
        Some(_) => Err(IdTokenError::MissingClaim(wrong_type)),
    }
}
