//! The signature algorithms, declared once.

/// A signature algorithm (RFC 7518 §7.1's registry names), declared once: its name, and the
/// JWK key type and curve its keys have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037 §3.1): fast and small in wasm, the default for new keys.
    EdDSA,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4): for verifiers without Ed25519.
    Es256,
}

impl Algorithm {
    /// Every algorithm, in the order `keygen` offers them.
    pub const ALL: [Algorithm; 2] = [Algorithm::EdDSA, Algorithm::Es256];

    /// Its `alg` name (RFC 7518 §7.1, RFC 8037 §5).
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::Es256 => "ES256",
        }
    }

    /// The JWK `kty` and `crv` of its keys (RFC 8037 §2, RFC 7518 §6.2.1.1).
    pub const fn key_type(self) -> (&'static str, &'static str) {
        match self {
            Algorithm::EdDSA => ("OKP", "Ed25519"),
            Algorithm::Es256 => ("EC", "P-256"),
        }
    }

    /// The algorithm an `alg` names, exactly (names are case-sensitive, RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|alg| alg.name() == name)
    }
}
