//! The token format: what a token string carries and how the store finds it.
//!
//! A token is base64url (no padding) of `kind ‖ bucket ‖ random bytes`:
//! - access token:  `0x01 ‖ bucket (u32 BE) ‖ 24 random bytes` (39 characters, 192 random bits);
//! - refresh token: `0x02 ‖ bucket (u32 BE) ‖ grant id (16) ‖ 16 random bytes` (50 characters).
//!
//! The bucket index tells the store which shared-data key holds the token's grant, so a lookup
//! is one read. It is not secret: a forged index only points the lookup at another bucket,
//! where the token's hash is not found. The store keeps SHA-256 prefixes of tokens, never the
//! tokens. The refresh token carries its grant id so that presenting an old, rotated refresh
//! token of a live grant can be recognised as reuse (RFC 9700 §4.14.2) without remembering
//! every used token; only holders of one of the grant's refresh tokens ever see the grant id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::host::{RandomUnavailable, Randomness};

const ACCESS_KIND: u8 = 0x01;
const REFRESH_KIND: u8 = 0x02;
const ACCESS_RANDOM_BYTES: usize = 24;
const GRANT_ID_BYTES: usize = 16;
const REFRESH_SECRET_BYTES: usize = 16;
const ACCESS_LEN: usize = 1 + 4 + ACCESS_RANDOM_BYTES;
const REFRESH_LEN: usize = 1 + 4 + GRANT_ID_BYTES + REFRESH_SECRET_BYTES;

/// The store's key for a token: the first 16 bytes of SHA-256 of its decoded bytes.
pub type TokenHash = [u8; 16];
/// The store's key for a grant: the first 8 bytes of SHA-256 of its id.
pub type GrantTag = [u8; 8];
pub type GrantId = [u8; GRANT_ID_BYTES];

pub(crate) fn hash_prefix<const N: usize>(domain: &[u8], bytes: &[u8]) -> [u8; N] {
    let digest = Sha256::new().chain_update(domain).chain_update(bytes).finalize();
    let mut out = [0u8; N];
    for (slot, byte) in out.iter_mut().zip(digest.iter()) {
        *slot = *byte;
    }
    out
}

pub fn grant_tag(grant_id: &GrantId) -> GrantTag {
    hash_prefix(b"grant\0", grant_id)
}

/// A token string decoded into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedToken {
    Access { bucket: u32, hash: TokenHash },
    Refresh { bucket: u32, grant_id: GrantId, hash: TokenHash },
}

impl ParsedToken {
    /// Decodes a token string; `None` for anything this gateway did not issue.
    pub fn parse(text: &str) -> Option<ParsedToken> {
        if let Some(access) = AccessToken::decode(text) {
            return Some(ParsedToken::Access { bucket: access.bucket, hash: access.hash() });
        }
        let raw: [u8; REFRESH_LEN] = decode_kind(text, REFRESH_KIND)?;
        let grant_id: GrantId = raw.get(5..5 + GRANT_ID_BYTES)?.try_into().ok()?;
        Some(ParsedToken::Refresh { bucket: bucket_of(&raw)?, grant_id, hash: hash_prefix(b"token\0", &raw) })
    }
}

/// A token string's bytes when it decodes to `N` bytes of kind `kind`; `None` otherwise.
/// Hashing is left to the caller: garbage costs no SHA-256.
fn decode_kind<const N: usize>(text: &str, kind: u8) -> Option<[u8; N]> {
    // Reject long input before decoding: a bearer header can be large. 64 characters decode
    // to at most 48 bytes, and the decoder wants room for a whole last quantum.
    if text.len() > 64 {
        return None;
    }
    let mut buffer = [0u8; 48];
    let len = URL_SAFE_NO_PAD.decode_slice(text, &mut buffer).ok()?;
    let raw: [u8; N] = buffer.get(..len)?.try_into().ok()?;
    (raw.first() == Some(&kind)).then_some(raw)
}

/// The bucket a token's bytes name (after the kind byte).
fn bucket_of(raw: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(raw.get(1..5)?.try_into().ok()?))
}

/// An access token's decoded bytes, not yet hashed: a worker that remembers the token finds
/// it without the SHA-256 (see [`crate::state::remembered`]).
pub struct AccessToken {
    raw: [u8; ACCESS_LEN],
    pub bucket: u32,
}

impl AccessToken {
    /// Decodes an access token string; `None` for anything else (refresh tokens included).
    pub fn decode(text: &str) -> Option<AccessToken> {
        let raw: [u8; ACCESS_LEN] = decode_kind(text, ACCESS_KIND)?;
        Some(AccessToken { bucket: bucket_of(&raw)?, raw })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The store's key for this token.
    pub fn hash(&self) -> TokenHash {
        hash_prefix(b"token\0", &self.raw)
    }
}

/// A freshly minted token: the string for the client, the hash for the store.
pub struct MintedToken {
    pub text: String,
    pub hash: TokenHash,
}

fn mint(raw: &[u8]) -> MintedToken {
    MintedToken { text: URL_SAFE_NO_PAD.encode(raw), hash: hash_prefix(b"token\0", raw) }
}

pub fn mint_access_token(bucket: u32, random: &dyn Randomness) -> Result<MintedToken, RandomUnavailable> {
    let mut raw = [0u8; ACCESS_LEN];
    raw[0] = ACCESS_KIND;
    raw[1..5].copy_from_slice(&bucket.to_be_bytes());
    random.fill(&mut raw[5..])?;
    Ok(mint(&raw))
}

pub fn mint_refresh_token(
    bucket: u32,
    grant_id: &GrantId,
    random: &dyn Randomness,
) -> Result<MintedToken, RandomUnavailable> {
    let mut raw = [0u8; REFRESH_LEN];
    raw[0] = REFRESH_KIND;
    raw[1..5].copy_from_slice(&bucket.to_be_bytes());
    raw[5..5 + GRANT_ID_BYTES].copy_from_slice(grant_id);
    random.fill(&mut raw[5 + GRANT_ID_BYTES..])?;
    Ok(mint(&raw))
}

pub fn new_grant_id(random: &dyn Randomness) -> Result<GrantId, RandomUnavailable> {
    let mut id = [0u8; GRANT_ID_BYTES];
    random.fill(&mut id)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::SystemRandomness;

    #[test]
    fn access_tokens_round_trip_and_are_url_safe() {
        let token = mint_access_token(7, &SystemRandomness).unwrap();
        assert_eq!(token.text.len(), 39);
        assert!(token.text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(
            ParsedToken::parse(&token.text),
            Some(ParsedToken::Access { bucket: 7, hash: token.hash })
        );
    }

    #[test]
    fn refresh_tokens_carry_their_grant() {
        let grant = new_grant_id(&SystemRandomness).unwrap();
        let token = mint_refresh_token(u32::MAX, &grant, &SystemRandomness).unwrap();
        assert_eq!(
            ParsedToken::parse(&token.text),
            Some(ParsedToken::Refresh { bucket: u32::MAX, grant_id: grant, hash: token.hash })
        );
    }

    #[test]
    fn an_access_token_decodes_without_hashing_to_what_parse_finds() {
        let minted = mint_access_token(77, &SystemRandomness).unwrap();
        let token = AccessToken::decode(&minted.text).unwrap();
        assert_eq!(token.bucket, 77);
        assert_eq!(token.hash(), minted.hash);
        assert_eq!(
            ParsedToken::parse(&minted.text),
            Some(ParsedToken::Access { bucket: 77, hash: minted.hash })
        );
        let refresh = mint_refresh_token(77, &[9; GRANT_ID_BYTES], &SystemRandomness).unwrap();
        for foreign in [
            &refresh.text,
            "",
            "AQ",
            &minted.text[1..],
            &format!("{}A", minted.text),
            "a".repeat(200).as_str(),
        ] {
            assert!(AccessToken::decode(foreign).is_none(), "{foreign:?}");
        }
    }

    #[test]
    fn two_tokens_differ() {
        let a = mint_access_token(0, &SystemRandomness).unwrap();
        let b = mint_access_token(0, &SystemRandomness).unwrap();
        assert_ne!(a.text, b.text);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn foreign_strings_are_not_tokens() {
        let access = mint_access_token(1, &SystemRandomness).unwrap().text;
        let truncated = &access[..access.len() - 1];
        let long = "A".repeat(200);
        for text in [
            "",
            "abc",
            "not a token",
            truncated,
            long.as_str(),
            "AQAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "AwAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(ParsedToken::parse(text), None, "{text:?}");
        }
    }
}
