//! Keys as JWKs (RFC 7517): private ones from the configuration, public ones for the JWKS.
//!
//! One text format for both: the JWK, as RFC 8037 §2 (Ed25519: `kty OKP`, `crv Ed25519`, `x`,
//! and `d` when private) and RFC 7518 §6.2 (P-256: `kty EC`, `crv P-256`, `x`, `y`, `d`) spell
//! it, with `kid`, `alg` and `use`. A private key's public members are checked against its
//! `d`, so the JWKS can never publish a key that does not verify what the private one signs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::algorithm::Algorithm;
use super::error::{JwtError, KeyError};

/// The longest `kid` accepted: it goes into every token's header.
const MAX_KID_BYTES: usize = 128;
/// A P-256 point, uncompressed (SEC 1 §2.3.3): `04 || x || y`.
const SEC1_UNCOMPRESSED_TAG: u8 = 0x04;

/// A public key as a JWK: what the JWKS publishes, and how the configuration lists retired
/// keys (a `d` there is refused as an unknown member: a retired key signs nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub kid: String,
    pub alg: String,
    /// RFC 7517 §4.2: `sig`, the only use these keys have.
    #[serde(rename = "use", default = "signature_use")]
    pub key_use: String,
    pub x: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// A private key as a JWK: the public members and `d`. Deliberately not `Debug`: `d` must not
/// reach a log by a stray `{:?}`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateJwk {
    pub kty: String,
    pub crv: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use", default = "signature_use")]
    pub key_use: String,
    pub x: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    pub d: String,
}

fn signature_use() -> String {
    "sig".to_owned()
}

fn refused(member: &'static str, problem: &'static str) -> KeyError {
    KeyError { member, problem }
}

/// A public key that verifies tokens whose header names its `kid`.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    public: PublicKey,
}

#[derive(Clone)]
enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    Es256(p256::ecdsa::VerifyingKey),
}

/// A private key that signs tokens, with its public half.
pub struct SigningKey {
    secret: SecretKey,
    public: VerifyingKey,
}

enum SecretKey {
    Ed25519(ed25519_dalek::SigningKey),
    Es256(p256::ecdsa::SigningKey),
}

impl VerifyingKey {
    /// The key a public JWK describes, checked: `alg` known, `kty` and `crv` those of `alg`,
    /// `use` `sig`, the coordinates canonical base64url of a point on the curve.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<VerifyingKey, KeyError> {
        let alg = check_header_members(&jwk.kty, &jwk.crv, &jwk.kid, &jwk.alg, &jwk.key_use)?;
        let public = match alg {
            Algorithm::EdDSA => {
                if jwk.y.is_some() {
                    return Err(refused("y", "has no place in an OKP key (RFC 8037 §2)"));
                }
                PublicKey::Ed25519(ed25519_public(&jwk.x)?)
            }
            Algorithm::Es256 => {
                let y = jwk.y.as_deref().ok_or(refused("y", "is required for a P-256 key"))?;
                PublicKey::Es256(p256_public(&jwk.x, y)?)
            }
        };
        Ok(VerifyingKey { kid: jwk.kid.clone(), public })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.public {
            PublicKey::Ed25519(_) => Algorithm::EdDSA,
            PublicKey::Es256(_) => Algorithm::Es256,
        }
    }

    /// The public JWK, as the JWKS publishes it (RFC 7517 §4, RFC 8037 §2).
    pub fn to_jwk(&self) -> PublicJwk {
        let alg = self.algorithm();
        let (kty, crv) = alg.key_type();
        let (x, y) = self.coordinates();
        PublicJwk {
            kty: kty.to_owned(),
            crv: crv.to_owned(),
            kid: self.kid.clone(),
            alg: alg.name().to_owned(),
            key_use: signature_use(),
            x,
            y,
        }
    }

    /// The JWK thumbprint (RFC 7638 §3): base64url SHA-256 of the required members in
    /// lexicographic order. `keygen` uses it as the default `kid`.
    pub fn thumbprint(&self) -> String {
        let (kty, crv) = self.algorithm().key_type();
        let (x, y) = self.coordinates();
        // The values are base64url and fixed names: nothing to escape.
        let members = match y {
            Some(y) => format!(r#"{{"crv":"{crv}","kty":"{kty}","x":"{x}","y":"{y}"}}"#),
            None => format!(r#"{{"crv":"{crv}","kty":"{kty}","x":"{x}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes()))
    }

    /// `x` (and `y` for P-256), base64url.
    fn coordinates(&self) -> (String, Option<String>) {
        match &self.public {
            PublicKey::Ed25519(key) => (URL_SAFE_NO_PAD.encode(key.as_bytes()), None),
            PublicKey::Es256(key) => {
                let point = key.to_sec1_point(false);
                let bytes = point.as_bytes();
                let x = bytes.get(1..33).unwrap_or_default();
                let y = bytes.get(33..65).unwrap_or_default();
                (URL_SAFE_NO_PAD.encode(x), Some(URL_SAFE_NO_PAD.encode(y)))
            }
        }
    }

    /// Whether `signature` is this key's signature of `signing_input`, in the one encoding
    /// [`super::sign`] makes: 64 raw bytes; for ES256 low-S; for Ed25519 RFC 8032's strict
    /// checks.
    pub(super) fn check(&self, signing_input: &[u8], signature: &[u8]) -> Result<(), JwtError> {
        match &self.public {
            PublicKey::Ed25519(key) => {
                let signature =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| JwtError::BadSignature)?;
                key.verify_strict(signing_input, &signature).map_err(|_| JwtError::BadSignature)
            }
            PublicKey::Es256(key) => {
                let signature =
                    p256::ecdsa::Signature::from_slice(signature).map_err(|_| JwtError::BadSignature)?;
                if signature.normalize_s().to_bytes() != signature.to_bytes() {
                    return Err(JwtError::BadSignature);
                }
                key.verify(signing_input, &signature).map_err(|_| JwtError::BadSignature)
            }
        }
    }
}

impl SigningKey {
    /// The key a private JWK describes, checked as [`VerifyingKey::from_jwk`] checks the
    /// public members, and `x` (and `y`) must be the public key of `d`.
    pub fn from_jwk(jwk: &PrivateJwk) -> Result<SigningKey, KeyError> {
        let public = VerifyingKey::from_jwk(&PublicJwk {
            kty: jwk.kty.clone(),
            crv: jwk.crv.clone(),
            kid: jwk.kid.clone(),
            alg: jwk.alg.clone(),
            key_use: jwk.key_use.clone(),
            x: jwk.x.clone(),
            y: jwk.y.clone(),
        })?;
        let secret =
            decode_exact::<32>(&jwk.d).ok_or(refused("d", "is not 32 bytes of canonical base64url"))?;
        let key = SigningKey::from_secret(public.algorithm(), &jwk.kid, &secret)?;
        if key.public.coordinates() != public.coordinates() {
            return Err(refused("x", "is not the public key of d"));
        }
        Ok(key)
    }

    /// A new key from 32 random bytes (the caller draws them from the OS). `kid`: the JWK
    /// thumbprint when `None`. For ES256, 32 bytes that are not a scalar below the group order
    /// (about one draw in 2^32) are refused: draw again.
    pub fn generate(alg: Algorithm, kid: Option<&str>, random: &[u8; 32]) -> Result<SigningKey, KeyError> {
        let key = SigningKey::from_secret(alg, kid.unwrap_or("pending"), random)?;
        match kid {
            Some(kid) => {
                check_kid(kid)?;
                Ok(key)
            }
            None => {
                let kid = key.public.thumbprint();
                Ok(SigningKey { public: VerifyingKey { kid, ..key.public }, ..key })
            }
        }
    }

    fn from_secret(alg: Algorithm, kid: &str, secret: &[u8; 32]) -> Result<SigningKey, KeyError> {
        let (secret, public) = match alg {
            Algorithm::EdDSA => {
                let key = ed25519_dalek::SigningKey::from_bytes(secret);
                let public = PublicKey::Ed25519(key.verifying_key());
                (SecretKey::Ed25519(key), public)
            }
            Algorithm::Es256 => {
                let key = p256::ecdsa::SigningKey::from_slice(secret)
                    .map_err(|_| refused("d", "is not a P-256 private key"))?;
                let public = PublicKey::Es256(*key.verifying_key());
                (SecretKey::Es256(key), public)
            }
        };
        Ok(SigningKey { secret, public: VerifyingKey { kid: kid.to_owned(), public } })
    }

    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    /// Its public half, for the key set and the JWKS.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// The private JWK, as `tokengate keygen` prints it for the configuration.
    pub fn to_private_jwk(&self) -> PrivateJwk {
        let public = self.public.to_jwk();
        let d = match &self.secret {
            SecretKey::Ed25519(key) => URL_SAFE_NO_PAD.encode(key.as_bytes()),
            SecretKey::Es256(key) => URL_SAFE_NO_PAD.encode(key.to_bytes()),
        };
        PrivateJwk {
            kty: public.kty,
            crv: public.crv,
            kid: public.kid,
            alg: public.alg,
            key_use: public.key_use,
            x: public.x,
            y: public.y,
            d,
        }
    }

    /// The raw signature of `signing_input` (RFC 8037 §3.1; RFC 7518 §3.4 `R || S`, low-S).
    pub(super) fn signature(&self, signing_input: &[u8]) -> [u8; 64] {
        match &self.secret {
            SecretKey::Ed25519(key) => key.sign(signing_input).to_bytes(),
            SecretKey::Es256(key) => {
                // RFC 6979 deterministic nonce: no randomness needed from the host.
                let signature: p256::ecdsa::Signature = key.sign(signing_input);
                let mut raw = [0u8; 64];
                raw.copy_from_slice(&signature.normalize_s().to_bytes());
                raw
            }
        }
    }
}

/// The keys tokens are verified with, by `kid`: the active keys' public halves and the
/// retired keys, each `kid` once.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// The set of `keys`; two with one `kid` are refused (a token's `kid` must name one key).
    pub fn new(keys: Vec<VerifyingKey>) -> Result<KeySet, KeyError> {
        for (i, key) in keys.iter().enumerate() {
            if keys.iter().take(i).any(|other| other.kid == key.kid) {
                return Err(refused("kid", "is the kid of another key"));
            }
        }
        Ok(KeySet { keys })
    }

    pub fn find(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// The JWK Set document (RFC 7517 §5): `{"keys":[…]}`, public members only.
    pub fn to_jwks_json(&self) -> String {
        #[derive(Serialize)]
        struct JwkSet {
            keys: Vec<PublicJwk>,
        }
        let set = JwkSet { keys: self.keys.iter().map(VerifyingKey::to_jwk).collect() };
        serde_json::to_string(&set).unwrap_or_default()
    }
}

/// The members every key has: `alg` known, `kty`/`crv` those of `alg`, `use` `sig`, `kid`
/// well-formed.
fn check_header_members(
    kty: &str,
    crv: &str,
    kid: &str,
    alg: &str,
    key_use: &str,
) -> Result<Algorithm, KeyError> {
    let alg = Algorithm::from_name(alg).ok_or(refused("alg", "must be EdDSA or ES256"))?;
    let (expected_kty, expected_crv) = alg.key_type();
    if kty != expected_kty {
        return Err(refused("kty", "is not the key type of alg (OKP for EdDSA, EC for ES256)"));
    }
    if crv != expected_crv {
        return Err(refused("crv", "is not the curve of alg (Ed25519 for EdDSA, P-256 for ES256)"));
    }
    if key_use != "sig" {
        return Err(refused("use", "must be \"sig\""));
    }
    check_kid(kid)?;
    Ok(alg)
}

/// A `kid` is 1 to 128 printable ASCII characters without `"` or `\`: it travels in every
/// token's header and in logs of verifiers.
fn check_kid(kid: &str) -> Result<(), KeyError> {
    let printable = kid.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if kid.is_empty() || kid.len() > MAX_KID_BYTES || !printable {
        return Err(refused("kid", "must be 1 to 128 printable ASCII characters without '\"' or '\\'"));
    }
    Ok(())
}

fn ed25519_public(x: &str) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
    let bytes = decode_exact::<32>(x).ok_or(refused("x", "is not 32 bytes of canonical base64url"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| refused("x", "is not an Ed25519 public key"))?;
    // One encoding per key: a non-canonical point encoding is refused, not reduced.
    if key.as_bytes() != &bytes || key.is_weak() {
        return Err(refused("x", "is not an Ed25519 public key"));
    }
    Ok(key)
}

fn p256_public(x: &str, y: &str) -> Result<p256::ecdsa::VerifyingKey, KeyError> {
    let x = decode_exact::<32>(x).ok_or(refused("x", "is not 32 bytes of canonical base64url"))?;
    let y = decode_exact::<32>(y).ok_or(refused("y", "is not 32 bytes of canonical base64url"))?;
    let point = [[SEC1_UNCOMPRESSED_TAG].as_slice(), &x, &y].concat();
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
        .map_err(|_| refused("y", "is not, with x, a point on P-256"))
}

/// `text` decoded as exactly `N` bytes of unpadded, canonical base64url.
fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    bytes.try_into().ok()
}
