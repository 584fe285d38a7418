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
//!
//! A JWT access token (RFC 9068, see `docs/tokens-and-keys.md`) is found the same way: its
//! `jti` is `0x03 ‖ bucket ‖ 24 random bytes` in base64url, the first claim of every JWT the
//! gateway signs, so the bucket is read from a fixed 64-character prefix of the claims part
//! without parsing JSON. The store keys the **whole compact JWT** by its hash, as it keys an
//! opaque token: another encoding of the same signature (ECDSA's high-S twin, RFC 9068 §4) is
//! another string and is not found, and a `jti` alone is of another kind, never an access
//! token. A crafted `jti` only points the lookup at a bucket where the token's hash is absent.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::host::{RandomUnavailable, Randomness};

const ACCESS_KIND: u8 = 0x01;
const REFRESH_KIND: u8 = 0x02;
const JWT_ID_KIND: u8 = 0x03;
/// `{"jti":"` + the 39-character id + `"`: 48 bytes, so exactly the claims part's first 64
/// base64url characters (RFC 4648 §5) decode to it.
const JWT_ID_PREFIX_CHARS: usize = 64;
const JWT_ID_CLAIM_OPENING: &[u8] = b"{\"jti\":\"";
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
pub struct AccessToken<'t> {
    raw: AccessBytes<'t>,
    pub bucket: u32,
}

enum AccessBytes<'t> {
    Opaque([u8; ACCESS_LEN]),
    /// The whole compact JWT, as presented: its text is what the store's hash covers.
    Jwt(&'t str),
}

impl<'t> AccessToken<'t> {
    /// Decodes an access token string, opaque or JWT; `None` for anything else (refresh
    /// tokens and bare `jti`s included).
    pub fn decode(text: &'t str) -> Option<AccessToken<'t>> {
        if text.len() <= 64 {
            let raw: [u8; ACCESS_LEN] = decode_kind(text, ACCESS_KIND)?;
            return Some(AccessToken { bucket: bucket_of(&raw)?, raw: AccessBytes::Opaque(raw) });
        }
        if text.len() > crate::jose::MAX_TOKEN_BYTES {
            return None;
        }
        let mut parts = text.split('.');
        let (_header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let bucket = jwt_id_bucket(claims.get(..JWT_ID_PREFIX_CHARS)?)?;
        Some(AccessToken { bucket, raw: AccessBytes::Jwt(text) })
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.raw {
            AccessBytes::Opaque(raw) => raw,
            AccessBytes::Jwt(text) => text.as_bytes(),
        }
    }

    /// The store's key for this token.
    pub fn hash(&self) -> TokenHash {
        hash_prefix(b"token\0", self.bytes())
    }
}

/// The bucket named by the `jti` in the first 64 characters of a JWT's claims part.
fn jwt_id_bucket(claims_prefix: &str) -> Option<u32> {
    let mut opening = [0u8; 48];
    let len = URL_SAFE_NO_PAD.decode_slice(claims_prefix, &mut opening).ok()?;
    let id = opening.get(..len)?.strip_prefix(JWT_ID_CLAIM_OPENING)?.strip_suffix(b"\"")?;
    let raw: [u8; ACCESS_LEN] = decode_kind(std::str::from_utf8(id).ok()?, JWT_ID_KIND)?;
    bucket_of(&raw)
}

/// A JWT access token's id (its `jti`): a token of its own kind, so never a Bearer token.
pub fn mint_jwt_id(bucket: u32, random: &dyn Randomness) -> Result<String, RandomUnavailable> {
    let mut raw = [0u8; ACCESS_LEN];
    raw[0] = JWT_ID_KIND;
    raw[1..5].copy_from_slice(&bucket.to_be_bytes());
    random.fill(&mut raw[5..])?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

/// The token for a signed JWT: its text and the hash of the whole of it.
pub fn jwt_token(text: String) -> MintedToken {
    let hash = hash_prefix(b"token\0", text.as_bytes());
    MintedToken { text, hash }
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

    /// A JWT whose claims part starts with `{"jti":"<id>"`, as the gateway signs them; the
    /// header and signature are never read here (the whole text's hash is the store's key).
    fn jwt_with_id(id: &str) -> String {
        let claims = format!(r#"{{"jti":"{id}","iss":"https://gateway.example"}}"#);
        format!("eyJhbGciOiJFZERTQSJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn a_jwt_access_token_names_its_bucket_in_its_jti_and_is_keyed_by_its_whole_text() {
        let id = mint_jwt_id(1234, &SystemRandomness).unwrap();
        assert_eq!(id.len(), 39);
        let jwt = jwt_with_id(&id);
        let token = AccessToken::decode(&jwt).unwrap();
        assert_eq!(token.bucket, 1234);
        assert_eq!(token.hash(), jwt_token(jwt.clone()).hash);
        assert_eq!(ParsedToken::parse(&jwt), Some(ParsedToken::Access { bucket: 1234, hash: token.hash() }));
        let resigned = format!("{}.c2lo", jwt.rsplit_once('.').unwrap().0);
        assert_ne!(
            AccessToken::decode(&resigned).unwrap().hash(),
            token.hash(),
            "another spelling, another key"
        );
    }

    #[test]
    fn a_jti_is_not_an_access_token_nor_is_a_jwt_without_one_first() {
        let id = mint_jwt_id(5, &SystemRandomness).unwrap();
        let opaque = mint_access_token(5, &SystemRandomness).unwrap().text;
        let claims_without_id = URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"x","jti":"{id}"}}"#));
        for foreign in [
            id.clone(),
            jwt_with_id(&opaque),
            format!("eyJhbGciOiJFZERTQSJ9.{claims_without_id}.c2ln"),
            format!("{}.extra", jwt_with_id(&id)),
            jwt_with_id(&id).replace('.', ""),
            format!("{}{}", jwt_with_id(&id), "A".repeat(crate::jose::MAX_TOKEN_BYTES)),
        ] {
            assert!(AccessToken::decode(&foreign).is_none(), "{foreign:?}");
            assert_eq!(ParsedToken::parse(&foreign), None, "{foreign:?}");
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
