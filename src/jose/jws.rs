//! The compact serialization (RFC 7515 §7.1): `BASE64URL(header) . BASE64URL(claims) .
//! BASE64URL(signature)`, signed and verified over the first two parts as they are written.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::algorithm::Algorithm;
use super::error::JwtError;
use super::keys::{KeySet, SigningKey};

/// The longest token [`verify`] and [`decode_unverified`] read (and [`sign`] makes): large
/// enough for any claims set the gateway issues, small enough that a hostile one costs little.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The JOSE header members this module reads (RFC 7515 §4.1), as a token spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtHeader {
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// A token whose signature verified with the key its `kid` names.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJwt {
    pub algorithm: Algorithm,
    pub kid: String,
    pub typ: Option<String>,
    pub claims: Map<String, Value>,
}

/// A token read without checking its signature: anyone could have written it. For callers
/// that only display or route on it, never for a decision that trusts it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedJwt {
    pub header: JwtHeader,
    pub claims: Map<String, Value>,
}

/// The compact JWT for `claims` (which must serialize to a JSON object), signed with `key`;
/// the header is `{"alg","kid"}` and `typ` when given (RFC 9068 §2.1: `at+jwt`).
pub fn sign<C: Serialize + ?Sized>(
    key: &SigningKey,
    typ: Option<&str>,
    claims: &C,
) -> Result<String, JwtError> {
    #[derive(Serialize)]
    struct Header<'a> {
        alg: &'static str,
        kid: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        typ: Option<&'a str>,
    }
    let header = Header { alg: key.algorithm().name(), kid: key.kid(), typ };
    let header = serde_json::to_vec(&header).map_err(|_| JwtError::ClaimsNotAnObject)?;
    let claims = serde_json::to_vec(claims).map_err(|_| JwtError::ClaimsNotAnObject)?;
    if claims.first() != Some(&b'{') {
        return Err(JwtError::ClaimsNotAnObject);
    }
    let mut token = String::with_capacity((header.len() + claims.len() + 64) * 4 / 3 + 3);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
    let signature = key.signature(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    // What `verify` would refuse is never issued.
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge);
    }
    Ok(token)
}

/// The token's header and claims if its signature verifies with the key of `keys` its `kid`
/// names, under an algorithm that is both in `accepted` and that key's own (see the module
/// docs for every check). The claims are parsed only once the signature holds.
pub fn verify(keys: &KeySet, token: &str, accepted: &[Algorithm]) -> Result<VerifiedJwt, JwtError> {
    let parts = Parts::split(token)?;
    let header = parts.header()?;
    let algorithm = match Algorithm::from_name(&header.alg) {
        Some(algorithm) => algorithm,
        None if header.alg == "none" => return Err(JwtError::AlgNone),
        None => return Err(JwtError::UnsupportedAlgorithm),
    };
    if !accepted.contains(&algorithm) {
        return Err(JwtError::AlgorithmNotAccepted);
    }
    let kid = header.kid.ok_or(JwtError::MissingKid)?;
    let key = keys.find(&kid).ok_or(JwtError::UnknownKid)?;
    if key.algorithm() != algorithm {
        return Err(JwtError::AlgorithmMismatch);
    }
    key.check(parts.signing_input.as_bytes(), &parts.signature()?)?;
    Ok(VerifiedJwt { algorithm, kid, typ: header.typ, claims: parts.claims()? })
}

/// The header and claims of `token` **without verifying its signature**: the same parsing
/// rules as [`verify`] (size, canonical base64url, JSON objects), and nothing more.
pub fn decode_unverified(token: &str) -> Result<UnverifiedJwt, JwtError> {
    let parts = Parts::split(token)?;
    let header = parts.header()?;
    parts.signature()?;
    Ok(UnverifiedJwt { header, claims: parts.claims()? })
}

/// A token cut at its two dots.
struct Parts<'t> {
    /// `header.claims`, as written: what the signature covers (RFC 7515 §5.1).
    signing_input: &'t str,
    header: &'t str,
    claims: &'t str,
    signature: &'t str,
}

impl<'t> Parts<'t> {
    fn split(token: &'t str) -> Result<Parts<'t>, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::TooLarge);
        }
        let (signing_input, signature) =
            token.rsplit_once('.').ok_or(JwtError::Malformed("a JWS has three parts"))?;
        let (header, claims) =
            signing_input.split_once('.').ok_or(JwtError::Malformed("a JWS has three parts"))?;
        if claims.contains('.') {
            return Err(JwtError::Malformed("a JWS has three parts"));
        }
        Ok(Parts { signing_input, header, claims, signature })
    }

    /// The protected header: a JSON object whose `alg` is a string, `kid` and `typ` strings
    /// when present, and no `crit`.
    fn header(&self) -> Result<JwtHeader, JwtError> {
        let mut header = json_object(self.header, "the header is not a JSON object")?;
        if header.contains_key("crit") {
            return Err(JwtError::CriticalHeader);
        }
        let text = |value: Value, what| match value {
            Value::String(text) => Ok(text),
            _ => Err(JwtError::Malformed(what)),
        };
        let alg = header.remove("alg").ok_or(JwtError::Malformed("the header has no alg"))?;
        Ok(JwtHeader {
            alg: text(alg, "the header's alg is not a string")?,
            kid: header.remove("kid").map(|kid| text(kid, "the header's kid is not a string")).transpose()?,
            typ: header.remove("typ").map(|typ| text(typ, "the header's typ is not a string")).transpose()?,
        })
    }

    fn claims(&self) -> Result<Map<String, Value>, JwtError> {
        json_object(self.claims, "the claims are not a JSON object")
    }

    fn signature(&self) -> Result<Vec<u8>, JwtError> {
        decode(self.signature)
    }
}

/// Unpadded base64url in its canonical form: padding, other alphabets and non-zero trailing
/// bits are refused, so one byte string has one spelling.
fn decode(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed("a part is not canonical unpadded base64url"))
}

/// A base64url part holding a JSON object whose members each appear once (RFC 7515 §5.2 and
/// RFC 7519 §4 let a reader refuse repeats; refusing them means no two readers can disagree
/// on which one counts).
fn json_object(part: &str, what: &'static str) -> Result<Map<String, Value>, JwtError> {
    let bytes = decode(part)?;
    serde_json::from_slice::<UniqueObject>(&bytes)
        .map(|object| object.0)
        .map_err(|_| JwtError::Malformed(what))
}

/// A JSON object, refused when a member name repeats.
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if map.insert(name, value).is_some() {
                        return Err(A::Error::custom("a member name repeats"));
                    }
                }
                Ok(UniqueObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}
