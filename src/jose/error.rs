//! Why a token or a key is refused. Neither error ever carries a part of a token or a key.

/// Why a token is refused. None of them carries a part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Longer than [`super::MAX_TOKEN_BYTES`].
    TooLarge,
    /// Not three canonical base64url parts, or a header or claims set that is not a JSON
    /// object with each member once; the reason says which.
    Malformed(&'static str),
    /// `alg: none` (RFC 7518 §3.6): an unsecured token, never accepted.
    AlgNone,
    /// An `alg` this module does not implement.
    UnsupportedAlgorithm,
    /// An `alg` that is not in the caller's accepted set.
    AlgorithmNotAccepted,
    /// A `crit` header (RFC 7515 §4.1.11): no extension is understood.
    CriticalHeader,
    /// No `kid`, so no key to check with.
    MissingKid,
    /// A `kid` the key set does not hold.
    UnknownKid,
    /// The `alg` is not the algorithm of the key the `kid` names (algorithm confusion).
    AlgorithmMismatch,
    /// The signature is not the key's signature of the header and claims, or not in the one
    /// encoding accepted (raw `R || S`, low-S; canonical Ed25519).
    BadSignature,
    /// [`sign`]: the claims do not serialize to a JSON object.
    ClaimsNotAnObject,
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            JwtError::TooLarge => "the token is too large",
            JwtError::Malformed(reason) => reason,
            JwtError::AlgNone => "unsecured tokens (alg none) are not accepted",
            JwtError::UnsupportedAlgorithm => "the token's alg is not supported",
            JwtError::AlgorithmNotAccepted => "the token's alg is not accepted here",
            JwtError::CriticalHeader => "the token has a crit header",
            JwtError::MissingKid => "the token names no kid",
            JwtError::UnknownKid => "the token's kid is not a known key",
            JwtError::AlgorithmMismatch => "the token's alg is not its key's algorithm",
            JwtError::BadSignature => "the token's signature does not verify",
            JwtError::ClaimsNotAnObject => "the claims are not a JSON object",
        };
        f.write_str(text)
    }
}

/// Why a JWK is refused: the member at fault and what is wrong with it, never its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyError {
    /// The JWK member (`alg`, `x`, `d`, ...).
    pub member: &'static str,
    pub problem: &'static str,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.member, self.problem)
    }
}
