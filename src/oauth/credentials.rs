//! Client credentials: HTTP Basic decoding (RFC 6749 §2.3.1, RFC 7617) and secret verifiers.

use base64::alphabet;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::oauth::form::{decode_component, FormError};
use crate::oauth::scope::leading_u32;

/// Standard base64 that accepts input with or without `=` padding, so unpadded Basic
/// credentials are accepted consistently (RFC 7617 §2 leaves padding to the encoder).
const BASE64_PADDING_OPTIONAL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A consumer key and secret presented with HTTP Basic. Deliberately not `Debug`: the secret
/// must never reach a log line.
pub struct ClientCredentials {
    pub consumer_key: String,
    pub consumer_secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicError {
    /// The header uses another scheme (or is no scheme at all).
    NotBasic,
    /// The header says Basic but its credentials cannot be decoded.
    Malformed,
}

/// Why the credentials after `Basic ` cannot be decoded. The gateway folds all of these into
/// [`BasicError::Malformed`] (one answer for every failure); the browser package names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialsError {
    /// Not standard base64 (padding optional).
    BadBase64,
    /// The decoded text has no `:` between key and secret.
    NoColon,
    /// The decoded bytes, or a half after form-decoding, are not UTF-8.
    NotUtf8,
    /// A `%` in a half is not followed by two hex digits.
    BadPercentEncoding,
    EmptyKey,
    EmptySecret,
    /// A control character in the key or secret (RFC 7617 §2).
    ControlCharacter,
}

/// Decodes `Authorization: Basic base64(form-encode(key) ":" form-encode(secret))`.
///
/// The two halves are form-decoded after splitting at the first colon, as §2.3.1 requires;
/// clients that send them raw still work as long as ids and secrets avoid `+`, `%` and `:`.
pub fn parse_basic_authorization(header: &str) -> Result<ClientCredentials, BasicError> {
    let (scheme, rest) = header.split_once(' ').ok_or(BasicError::NotBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BasicError::NotBasic);
    }
    decode_basic_credentials(rest.trim_start_matches(' ')).map_err(|_| BasicError::Malformed)
}

/// Decodes what follows `Basic `: base64, split at the first colon, form-decode each half.
pub fn decode_basic_credentials(encoded: &str) -> Result<ClientCredentials, CredentialsError> {
    let decoded = BASE64_PADDING_OPTIONAL.decode(encoded).map_err(|_| CredentialsError::BadBase64)?;
    if decoded.is_empty() {
        return Err(CredentialsError::BadBase64);
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(CredentialsError::NotUtf8);
    }
    let colon = decoded.iter().position(|&b| b == b':').ok_or(CredentialsError::NoColon)?;
    let (raw_key, colon_and_secret) = decoded.split_at(colon);
    let raw_secret = colon_and_secret.get(1..).unwrap_or_default();
    let form_error = |error| match error {
        FormError::InvalidUtf8 => CredentialsError::NotUtf8,
        FormError::BadPercentEncoding | FormError::RepeatedParameter => CredentialsError::BadPercentEncoding,
    };
    let consumer_key = decode_component(raw_key).map_err(form_error)?;
    let consumer_secret = decode_component(raw_secret).map_err(form_error)?;
    if consumer_key.is_empty() {
        return Err(CredentialsError::EmptyKey);
    }
    if consumer_secret.is_empty() {
        return Err(CredentialsError::EmptySecret);
    }
    // RFC 7617 §2: user-id and password must not contain control characters.
    let has_control = |text: &str| text.chars().any(char::is_control);
    if has_control(&consumer_key) || has_control(&consumer_secret) {
        return Err(CredentialsError::ControlCharacter);
    }
    Ok(ClientCredentials { consumer_key, consumer_secret })
}

/// True when `token` is an RFC 6750 §2.1 b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`, the only token syntax a Bearer header may carry.
pub fn is_b64token(token: &str) -> bool {
    let body = token.as_bytes();
    let padding = body.iter().rev().take_while(|&&b| b == b'=').count();
    let body = body.get(..body.len() - padding).unwrap_or_default();
    // A table lookup per byte: every Bearer request checks its whole token.
    !body.is_empty() && body.iter().all(|&b| B64TOKEN_BYTES.get(usize::from(b)) == Some(&true))
}

/// The bytes of a b64token's body, by value. Built at compile time, where an index out of
/// bounds fails the build, not a request.
#[allow(clippy::indexing_slicing)]
const B64TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        byte += 1;
    }
    table
};

/// How a configured secret or password is checked. Only digests are kept in memory.
#[derive(Clone)]
pub enum SecretVerifier {
    /// SHA-256(salt ‖ secret). Fast: right for high-entropy application secrets.
    Sha256 { salt: Vec<u8>, digest: [u8; 32] },
    /// PBKDF2-HMAC-SHA256. Slow by design: right for user passwords.
    Pbkdf2Sha256 { iterations: u32, salt: Vec<u8>, digest: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashFormatError(pub &'static str);

/// PBKDF2 iteration bounds: below the floor a hash is not slow; above the ceiling one login
/// would stall an Envoy worker for seconds.
pub const PBKDF2_MIN_ITERATIONS: u32 = 1_000;
pub const PBKDF2_MAX_ITERATIONS: u32 = 1_000_000;

impl SecretVerifier {
    /// Keeps only the digest of a plaintext secret from the config.
    pub fn from_plaintext(secret: &str) -> Self {
        SecretVerifier::Sha256 { salt: Vec::new(), digest: Sha256::digest(secret.as_bytes()).into() }
    }

    /// Parses `sha256$<salt>$<digest>` or `pbkdf2-sha256$<iterations>$<salt>$<digest>`, with
    /// salt and digest in standard base64 (padding optional).
    pub fn parse(hash: &str) -> Result<Self, HashFormatError> {
        let parts: Vec<&str> = hash.split('$').collect();
        let b64 = |text: &str, what: &'static str| {
            BASE64_PADDING_OPTIONAL.decode(text).map_err(|_| HashFormatError(what))
        };
        match parts.as_slice() {
            ["sha256", salt, digest] => {
                let salt = b64(salt, "salt is not base64")?;
                let digest: [u8; 32] = b64(digest, "digest is not base64")?
                    .try_into()
                    .map_err(|_| HashFormatError("a sha256 digest has 32 bytes"))?;
                Ok(SecretVerifier::Sha256 { salt, digest })
            }
            ["pbkdf2-sha256", iterations, salt, digest] => {
                let iterations: u32 =
                    iterations.parse().map_err(|_| HashFormatError("iterations is not a number"))?;
                if !(PBKDF2_MIN_ITERATIONS..=PBKDF2_MAX_ITERATIONS).contains(&iterations) {
                    return Err(HashFormatError("iterations must be between 1000 and 1000000"));
                }
                let salt = b64(salt, "salt is not base64")?;
                let digest = b64(digest, "digest is not base64")?;
                if !(16..=64).contains(&digest.len()) {
                    return Err(HashFormatError("a pbkdf2 digest has 16 to 64 bytes"));
                }
                Ok(SecretVerifier::Pbkdf2Sha256 { iterations, salt, digest })
            }
            _ => Err(HashFormatError(
                "expected sha256$<salt>$<digest> or pbkdf2-sha256$<iterations>$<salt>$<digest>",
            )),
        }
    }

    /// A new `sha256` hash of `secret` under `salt` (for the config's `consumer_secret_hash`).
    pub fn hash_sha256(secret: &str, salt: &[u8]) -> Self {
        let digest = Sha256::new().chain_update(salt).chain_update(secret.as_bytes()).finalize().into();
        SecretVerifier::Sha256 { salt: salt.to_vec(), digest }
    }

    /// A new `pbkdf2-sha256` hash of `secret` (for `password_hash`), 32 bytes of digest.
    pub fn hash_pbkdf2(secret: &str, salt: &[u8], iterations: u32) -> Result<Self, HashFormatError> {
        if !(PBKDF2_MIN_ITERATIONS..=PBKDF2_MAX_ITERATIONS).contains(&iterations) {
            return Err(HashFormatError("iterations must be between 1000 and 1000000"));
        }
        let mut digest = vec![0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt, iterations, &mut digest);
        Ok(SecretVerifier::Pbkdf2Sha256 { iterations, salt: salt.to_vec(), digest })
    }

    /// The config's hash format, which [`SecretVerifier::parse`] reads back (standard base64).
    pub fn to_config_hash(&self) -> String {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        match self {
            SecretVerifier::Sha256 { salt, digest } => format!("sha256${}${}", b64(salt), b64(digest)),
            SecretVerifier::Pbkdf2Sha256 { iterations, salt, digest } => {
                format!("pbkdf2-sha256${iterations}${}${}", b64(salt), b64(digest))
            }
        }
    }

    /// A verifier that accepts nothing and costs what the most common of `configured` costs:
    /// checked for unknown names so that they take as long as a wrong secret (RFC 6749 §10.10).
    /// PBKDF2's cost is its iterations times one run per 32 bytes of digest, so both count.
    pub fn decoy_like<'v>(configured: impl Iterator<Item = &'v SecretVerifier>) -> SecretVerifier {
        let mut costs: Vec<(Option<(u32, usize)>, usize)> = Vec::new();
        for verifier in configured {
            let cost = match verifier {
                SecretVerifier::Sha256 { .. } => None,
                SecretVerifier::Pbkdf2Sha256 { iterations, digest, .. } => Some((*iterations, digest.len())),
            };
            match costs.iter_mut().find(|(known, _)| *known == cost) {
                Some((_, count)) => *count += 1,
                None => costs.push((cost, 1)),
            }
        }
        let salt = b"tokengate-decoy".to_vec();
        match costs.into_iter().max_by_key(|(_, count)| *count).and_then(|(cost, _)| cost) {
            Some((iterations, digest_len)) => {
                SecretVerifier::Pbkdf2Sha256 { iterations, salt, digest: vec![0; digest_len] }
            }
            None => SecretVerifier::Sha256 { salt, digest: [0; 32] },
        }
    }

    /// What one check costs, in PBKDF2 iterations: its iterations once per 32 bytes of digest
    /// (each 32 bytes is a run of its own). A SHA-256 digest costs next to nothing: 0.
    pub fn work(&self) -> u64 {
        match self {
            SecretVerifier::Sha256 { .. } => 0,
            SecretVerifier::Pbkdf2Sha256 { iterations, digest, .. } => {
                u64::from(*iterations).saturating_mul(digest.len().div_ceil(32) as u64)
            }
        }
    }

    /// Checks a presented secret in time independent of where it differs.
    pub fn verify(&self, presented: &str) -> bool {
        match self {
            SecretVerifier::Sha256 { salt, digest } => {
                let computed: [u8; 32] =
                    Sha256::new().chain_update(salt).chain_update(presented.as_bytes()).finalize().into();
                computed.ct_eq(digest).into()
            }
            SecretVerifier::Pbkdf2Sha256 { iterations, salt, digest } => {
                let mut computed = vec![0u8; digest.len()];
                pbkdf2::pbkdf2_hmac::<Sha256>(presented.as_bytes(), salt, *iterations, &mut computed);
                computed.ct_eq(digest).into()
            }
        }
    }

    /// A 32-bit fingerprint of (name, stored digest). Tokens remember the fingerprint of the
    /// credentials they were issued under, so a config that changes a secret or password
    /// invalidates them without touching the store.
    pub fn fingerprint(&self, name: &str) -> u32 {
        let mut hasher = Sha256::new().chain_update(b"tokengate-credential\0").chain_update(name.as_bytes());
        match self {
            SecretVerifier::Sha256 { salt, digest } => {
                hasher.update(b"\0sha256\0");
                hasher.update(salt);
                hasher.update(digest);
            }
            SecretVerifier::Pbkdf2Sha256 { iterations, salt, digest } => {
                hasher.update(b"\0pbkdf2\0");
                hasher.update(iterations.to_be_bytes());
                hasher.update(salt);
                hasher.update(digest);
            }
        }
        leading_u32(&hasher.finalize())
    }
}

/// Form-encodes and base64s a key and secret: what a client puts after `Basic `.
pub fn encode_basic_credentials(consumer_key: &str, consumer_secret: &str) -> String {
    let encoded = format!("{}:{}", form_encode(consumer_key), form_encode(consumer_secret));
    base64::engine::general_purpose::STANDARD.encode(encoded)
}

/// `application/x-www-form-urlencoded` encoding of one component: unreserved characters as
/// they are, space as `+`, everything else percent-encoded.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &str) -> Result<(String, String), BasicError> {
        parse_basic_authorization(header).map(|c| (c.consumer_key, c.consumer_secret))
    }

    fn ok(key: &str, secret: &str) -> Result<(String, String), BasicError> {
        Ok((key.to_owned(), secret.to_owned()))
    }

    #[test]
    fn basic_decoding_table() {
        use BasicError::*;
        let table: &[(&str, Result<(String, String), BasicError>)] = &[
            ("Basic Y2xpZW50OnNlYzpyZXQ=", ok("client", "sec:ret")),
            ("Basic Y2xpZW50", Err(Malformed)),
            ("Basic OnNlY3JldA==", Err(Malformed)),
            ("Basic Y2xpZW50Og==", Err(Malformed)),
            ("Basic Y2xpZW50OnNlY3JldA", ok("client", "secret")),
            ("Basic -_86Y2xpZW50Pw==", Err(Malformed)),
            ("Basic Y2xpZW50Ov/+", Err(Malformed)),
            ("Basic Y2xpZW50OnNlAGNyZXQ=", Err(Malformed)),
            ("Basic bXklM0FjbGllbnQ6c2VjcmV0", ok("my:client", "secret")),
            ("Basic Y2xpZW50OmErYg==", ok("client", "a b")),
            ("Basic Y2xpZW50OmElMkJi", ok("client", "a+b")),
            ("basic Y2xpZW50OnNlY3JldA==", ok("client", "secret")),
            ("BASIC Y2xpZW50OnNlY3JldA==", ok("client", "secret")),
            ("Basic  Y2xpZW50OnNlY3JldA==", ok("client", "secret")),
            ("Basic\tY2xpZW50OnNlY3JldA==", Err(NotBasic)),
            ("Basic", Err(NotBasic)),
            ("Basic ", Err(Malformed)),
            ("Bearer abc", Err(NotBasic)),
            // "client:%00" decodes to a NUL after form-decoding.
            ("Basic Y2xpZW50OiUwMA==", Err(Malformed)),
        ];
        for (header, expected) in table {
            assert_eq!(&parse(header), expected, "{header:?}");
        }
    }

    #[test]
    fn encoding_round_trips_through_parsing() {
        for (key, secret) in [("cli ent+1", "s3cr:et+%/="), ("demo-app", "a-b.c_d~e"), ("ключ", "пароль")]
        {
            let header = format!("Basic {}", encode_basic_credentials(key, secret));
            assert_eq!(parse(&header), ok(key, secret));
        }
    }

    #[test]
    fn unreserved_credentials_encode_like_plain_base64() {
        // WSO2's documented example pair: form-encoding changes nothing for unreserved characters.
        assert_eq!(
            encode_basic_credentials("wU62DjlyDBnq87GlBwplfqvmAbAa", "ksdSdoefDDP7wpaElfqvmjDue"),
            base64::engine::general_purpose::STANDARD
                .encode("wU62DjlyDBnq87GlBwplfqvmAbAa:ksdSdoefDDP7wpaElfqvmjDue")
        );
    }

    #[test]
    fn plaintext_verifier_accepts_only_the_secret() {
        let verifier = SecretVerifier::from_plaintext("demo-secret");
        assert!(verifier.verify("demo-secret"));
        assert!(!verifier.verify("demo-secreT"));
        assert!(!verifier.verify(""));
    }

    #[test]
    fn sha256_hash_format_verifies() {
        // salt "salt" (c2FsdA==), digest = sha256("salt" + "s3cret")
        let digest = Sha256::new().chain_update(b"salt").chain_update(b"s3cret").finalize();
        let hash = format!("sha256$c2FsdA==${}", base64::engine::general_purpose::STANDARD.encode(digest));
        let verifier = SecretVerifier::parse(&hash).unwrap();
        assert!(verifier.verify("s3cret"));
        assert!(!verifier.verify("s3cre"));
    }

    #[test]
    fn pbkdf2_hash_format_verifies() {
        // Computed with Python: hashlib.pbkdf2_hmac('sha256', b'admin', b'pepper-salt', 1000)
        let mut digest = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"admin", b"pepper-salt", 1000, &mut digest);
        let hash = format!(
            "pbkdf2-sha256$1000${}${}",
            base64::engine::general_purpose::STANDARD.encode(b"pepper-salt"),
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        let verifier = SecretVerifier::parse(&hash).unwrap();
        assert!(verifier.verify("admin"));
        assert!(!verifier.verify("Admin"));
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for bad in [
            "",
            "md5$x$y",
            "sha256$c2FsdA==",
            "sha256$c2FsdA==$AAAA",
            "sha256$!!$AAAA",
            "pbkdf2-sha256$10$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAA==",
            "pbkdf2-sha256$many$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAA==",
        ] {
            assert!(SecretVerifier::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprint_changes_with_the_secret_or_the_name() {
        let a = SecretVerifier::from_plaintext("one").fingerprint("app");
        assert_eq!(a, SecretVerifier::from_plaintext("one").fingerprint("app"));
        assert_ne!(a, SecretVerifier::from_plaintext("two").fingerprint("app"));
        assert_ne!(a, SecretVerifier::from_plaintext("one").fingerprint("app2"));
    }

    #[test]
    fn decoys_cost_what_the_most_common_configured_verifier_costs() {
        let fast = SecretVerifier::from_plaintext("a");
        let slow = SecretVerifier::Pbkdf2Sha256 { iterations: 5000, salt: vec![1], digest: vec![2; 32] };
        let decoy = SecretVerifier::decoy_like([&slow, &fast, &slow].into_iter());
        assert!(matches!(decoy, SecretVerifier::Pbkdf2Sha256 { iterations: 5000, .. }));
        assert!(matches!(SecretVerifier::decoy_like([&fast].into_iter()), SecretVerifier::Sha256 { .. }));
        assert!(matches!(SecretVerifier::decoy_like(std::iter::empty()), SecretVerifier::Sha256 { .. }));
        assert!(!decoy.verify("") && !decoy.verify("a"));
    }

    #[test]
    fn decoys_match_the_digest_length_too() {
        // A 64-byte PBKDF2 digest runs the iterations twice: a 32-byte decoy would answer an
        // unknown name in half the time of a wrong password, telling which names exist.
        let long = SecretVerifier::Pbkdf2Sha256 { iterations: 5000, salt: vec![1], digest: vec![2; 64] };
        let short = SecretVerifier::Pbkdf2Sha256 { iterations: 5000, salt: vec![1], digest: vec![2; 32] };
        let decoy = SecretVerifier::decoy_like([&long, &short, &long].into_iter());
        assert!(
            matches!(decoy, SecretVerifier::Pbkdf2Sha256 { iterations: 5000, ref digest, .. } if digest.len() == 64)
        );
    }

    #[test]
    fn work_counts_pbkdf2_iterations_per_32_bytes_of_digest() {
        let short = SecretVerifier::Pbkdf2Sha256 { iterations: 5000, salt: vec![1], digest: vec![2; 32] };
        let long = SecretVerifier::Pbkdf2Sha256 { iterations: 5000, salt: vec![1], digest: vec![2; 33] };
        assert_eq!((short.work(), long.work()), (5000, 10_000));
        assert_eq!(SecretVerifier::from_plaintext("x").work(), 0);
    }

    #[test]
    fn new_hashes_read_back_and_verify() {
        let sha = SecretVerifier::hash_sha256("s3cret", b"0123456789abcdef");
        let pbkdf2 = SecretVerifier::hash_pbkdf2("s3cret", b"0123456789abcdef", 1000).unwrap();
        for verifier in [sha, pbkdf2] {
            let text = verifier.to_config_hash();
            let parsed = SecretVerifier::parse(&text).unwrap();
            assert!(parsed.verify("s3cret") && !parsed.verify("s3cret "), "{text}");
            assert_eq!(parsed.fingerprint("x"), verifier.fingerprint("x"));
        }
        assert!(SecretVerifier::hash_sha256("s", b"salt").to_config_hash().starts_with("sha256$c2FsdA==$"));
        assert!(SecretVerifier::hash_pbkdf2("s", b"salt", 999).is_err());
    }
}
