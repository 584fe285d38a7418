//! Signed tokens: JWS compact serialization (RFC 7515 §7.1) of a JWT (RFC 7519), and the keys
//! that sign and verify them (JWK, RFC 7517; RFC 8037 for Ed25519). Pure: no host, no config.
//!
//! The whole API:
//!
//! | call | does |
//! |---|---|
//! | [`sign`]`(key, typ, claims)` | the compact JWT `header.claims.signature`, header `{"alg","kid","typ"}` |
//! | [`verify`]`(keys, token, accepted)` | a [`VerifiedJwt`] (header and claims) or a [`JwtError`] saying why not |
//! | [`decode_unverified`]`(token)` | header and claims of a token whose signature is **not** checked: for callers that only read |
//! | [`SigningKey::from_jwk`] / [`VerifyingKey::from_jwk`] | a key from its JWK (private with `d`, public without) |
//! | [`SigningKey::generate`] | a new key from 32 random bytes the caller draws |
//! | [`KeySet`] | the keys tokens are checked against, by `kid`; [`KeySet::to_jwks_json`] is the JWKS document |
//!
//! Algorithms: [`Algorithm`] lists them once, EdDSA (Ed25519, RFC 8037) and ES256 (ECDSA P-256
//! with SHA-256, RFC 7518 §3.4). Both sign deterministically (Ed25519 by construction, ES256
//! by RFC 6979), so signing needs no randomness from the host.
//!
//! [`verify`] is strict, so that a token has exactly one accepted spelling and one key:
//! - the token is at most [`MAX_TOKEN_BYTES`], three base64url parts without padding, each in
//!   its canonical form (no non-zero trailing bits);
//! - the header names a `kid` the key set holds, and an `alg` that is in the caller's accepted
//!   set **and** is the algorithm of that key (a key never verifies under another algorithm:
//!   no algorithm confusion); `alg: none` is refused by name; a `crit` header is refused
//!   (RFC 7515 §4.1.11: we understand no extension);
//! - the signature is the raw form of RFC 7518 §3.4 (64 bytes `R || S`, not DER) and, for
//!   ES256, in low-S form: [`sign`] only makes low-S signatures, so the high-S twin of one of
//!   ours (valid to plain ECDSA) is a re-encoding and is refused; Ed25519 checks follow
//!   RFC 8032 §5.1.7 strictly (canonical `S`, no small-order keys);
//! - header and claims are JSON objects without repeated member names.
//!
//! Nothing here checks `exp`, `iss` or `aud`: those are the caller's, who knows its clock and
//! its audience.

mod algorithm;
mod error;
mod jws;
mod keys;

pub use algorithm::Algorithm;
pub use error::{JwtError, KeyError};
pub use jws::{decode_unverified, sign, verify, JwtHeader, UnverifiedJwt, VerifiedJwt, MAX_TOKEN_BYTES};
pub use keys::{KeySet, PrivateJwk, PublicJwk, SigningKey, VerifyingKey};

#[cfg(test)]
mod tests;
