//! `signing`: the keys tokens are signed with, and the retired keys the JWKS still publishes.
//!
//! Each key is a JWK (RFC 7517), the format `tokengate keygen` prints: one JSON object, the
//! same members the JWKS publishes plus `d`, for Ed25519 and P-256 alike, and no ASN.1 (PKCS#8)
//! parser in the filter. Errors name the key and member (`signing.keys[0].x`), never a value.

use super::error::{problem, ConfigError};
use super::raw::RawSigning;
use crate::jose::{Algorithm, KeySet, SigningKey, VerifyingKey};

/// The validated `signing` section.
pub struct SigningConfig {
    /// The private keys, in the configuration's order: the first of each algorithm signs.
    pub keys: Vec<SigningKey>,
    /// What tokens are verified with: the active keys' public halves, then the retired keys.
    pub key_set: KeySet,
    /// The JWKS document (RFC 7517 §5), built once: every key of `key_set`, public members only.
    pub jwks: String,
    /// Where the JWKS is served.
    pub jwks_endpoint: String,
    /// Where OpenID Connect's UserInfo is served (Core §5.3).
    pub userinfo_endpoint: String,
    /// How long an ID token is good for, in seconds.
    pub id_token_lifetime_secs: u64,
}

impl SigningConfig {
    /// The key new tokens are signed with: the first one listed.
    pub fn active_key(&self) -> Option<&SigningKey> {
        self.keys.first()
    }

    /// The first key of `alg`, for a client that asks for that algorithm.
    pub fn key_for(&self, alg: Algorithm) -> Option<&SigningKey> {
        self.keys.iter().find(|key| key.algorithm() == alg)
    }
}

/// A day: an ID token is read once, at sign-in; a longer one only widens a stolen one's use.
const MAX_ID_TOKEN_LIFETIME_SECS: u64 = 86_400;

/// Every key parses, its public members are those of its `d`, no `kid` repeats across
/// active and retired keys, and at least one key can sign.
pub(super) fn signing(raw: RawSigning) -> Result<SigningConfig, ConfigError> {
    if raw.keys.is_empty() {
        return Err(problem("signing.keys", "must list at least one key (tokengate keygen makes one)"));
    }
    let keys = (raw.keys.iter().enumerate())
        .map(|(i, jwk)| {
            SigningKey::from_jwk(jwk)
                .map_err(|error| problem(format!("signing.keys[{i}].{}", error.member), error.problem))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let retired = (raw.retired_keys.iter().enumerate()).map(|(i, jwk)| {
        VerifyingKey::from_jwk(jwk)
            .map_err(|error| problem(format!("signing.retired_keys[{i}].{}", error.member), error.problem))
    });
    let verifying: Vec<VerifyingKey> = keys
        .iter()
        .map(|key| Ok(key.verifying_key().clone()))
        .chain(retired)
        .collect::<Result<_, ConfigError>>()?;
    for (i, key) in verifying.iter().enumerate() {
        if verifying.iter().take(i).any(|other| other.kid() == key.kid()) {
            let at = match i.checked_sub(keys.len()) {
                Some(retired) => format!("signing.retired_keys[{retired}].kid"),
                None => format!("signing.keys[{i}].kid"),
            };
            return Err(problem(at, "is the kid of another key"));
        }
    }
    let key_set = KeySet::new(verifying).map_err(|error| problem("signing", error))?;
    let jwks = key_set.to_jwks_json();
    if raw.id_token_lifetime_secs == 0 || raw.id_token_lifetime_secs > MAX_ID_TOKEN_LIFETIME_SECS {
        return Err(problem(
            "signing.id_token_lifetime_secs",
            format!("must be 1 to {MAX_ID_TOKEN_LIFETIME_SECS} seconds"),
        ));
    }
    Ok(SigningConfig {
        keys,
        key_set,
        jwks,
        jwks_endpoint: raw.jwks_endpoint,
        userinfo_endpoint: raw.userinfo_endpoint,
        id_token_lifetime_secs: raw.id_token_lifetime_secs,
    })
}
