//! PKCE (RFC 7636) with `S256` only: the verifier's grammar, the challenge's, and the check.
//!
//! `plain` is refused (RFC 9700 §2.1.1: it protects nothing an attacker who can read the
//! authorization request cannot undo). The comparison runs in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only `code_challenge_method` accepted.
pub const S256: &str = "S256";

/// Why an authorization request's PKCE parameters are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// No `code_challenge` (PKCE is required of every client).
    Missing,
    /// A method other than `S256` (`plain` included), or none.
    UnsupportedMethod,
    /// Not 43 base64url characters (the encoding of a SHA-256 digest).
    Malformed,
}

/// A validated `S256` code challenge, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Reads `code_challenge` and `code_challenge_method` (RFC 7636 §4.3). The method is
    /// required: RFC 7636 lets it default to `plain`, and `plain` is refused.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<CodeChallenge, ChallengeError> {
        let challenge = challenge.ok_or(ChallengeError::Missing)?;
        if method != Some(S256) {
            return Err(ChallengeError::UnsupportedMethod);
        }
        // base64url of 32 bytes, no padding: 43 characters, the last one of `AEIMQUYcgkosw048`.
        if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).map_or(true, |raw| raw.len() != 32) {
            return Err(ChallengeError::Malformed);
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }

    /// Rebuilds a challenge stored earlier (already validated when it was parsed).
    pub fn from_stored(challenge: String) -> CodeChallenge {
        CodeChallenge(challenge)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: `BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge`, for a
    /// verifier of the §4.1 grammar, compared in constant time.
    pub fn is_met_by(&self, verifier: &str) -> bool {
        if !is_valid_verifier(verifier) {
            return false;
        }
        s256(verifier).as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

/// The `S256` challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 Appendix B's verifier and its S256 challenge, for every test of the code flow.
#[cfg(test)]
pub(crate) const APPENDIX_B_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
#[cfg(test)]
pub(crate) const APPENDIX_B_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appendix_b_vector() {
        assert_eq!(s256(APPENDIX_B_VERIFIER), APPENDIX_B_CHALLENGE);
        let challenge = CodeChallenge::parse(Some(APPENDIX_B_CHALLENGE), Some("S256")).unwrap();
        assert!(challenge.is_met_by(APPENDIX_B_VERIFIER));
    }

    struct ParseCase {
        name: &'static str,
        challenge: Option<&'static str>,
        method: Option<&'static str>,
        expect: Result<(), ChallengeError>,
    }

    #[test]
    fn challenge_parameters_rfc7636_4_3() {
        let cases = [
            ParseCase {
                name: "S256",
                challenge: Some(APPENDIX_B_CHALLENGE),
                method: Some("S256"),
                expect: Ok(()),
            },
            ParseCase {
                name: "no challenge",
                challenge: None,
                method: Some("S256"),
                expect: Err(ChallengeError::Missing),
            },
            ParseCase {
                name: "nothing at all",
                challenge: None,
                method: None,
                expect: Err(ChallengeError::Missing),
            },
            ParseCase {
                name: "plain refused",
                challenge: Some(APPENDIX_B_VERIFIER),
                method: Some("plain"),
                expect: Err(ChallengeError::UnsupportedMethod),
            },
            ParseCase {
                name: "method omitted means plain: refused",
                challenge: Some(APPENDIX_B_CHALLENGE),
                method: None,
                expect: Err(ChallengeError::UnsupportedMethod),
            },
            ParseCase {
                name: "method is case-sensitive",
                challenge: Some(APPENDIX_B_CHALLENGE),
                method: Some("s256"),
                expect: Err(ChallengeError::UnsupportedMethod),
            },
            ParseCase {
                name: "too short",
                challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"),
                method: Some("S256"),
                expect: Err(ChallengeError::Malformed),
            },
            ParseCase {
                name: "padded",
                challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="),
                method: Some("S256"),
                expect: Err(ChallengeError::Malformed),
            },
            ParseCase {
                name: "standard base64 alphabet",
                challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"),
                method: Some("S256"),
                expect: Err(ChallengeError::Malformed),
            },
        ];
        for case in cases {
            let got = CodeChallenge::parse(case.challenge, case.method).map(|_| ());
            assert_eq!(got, case.expect, "{}", case.name);
        }
    }

    struct VerifierCase {
        name: &'static str,
        verifier: String,
        valid: bool,
    }

    #[test]
    fn verifier_grammar_rfc7636_4_1() {
        let cases = [
            VerifierCase { name: "appendix B", verifier: APPENDIX_B_VERIFIER.to_owned(), valid: true },
            VerifierCase { name: "43 characters", verifier: "a".repeat(43), valid: true },
            VerifierCase { name: "42 characters", verifier: "a".repeat(42), valid: false },
            VerifierCase { name: "128 characters", verifier: "~".repeat(128), valid: true },
            VerifierCase { name: "129 characters", verifier: "a".repeat(129), valid: false },
            VerifierCase {
                name: "unreserved marks",
                verifier: format!("{}-._~", "Z9".repeat(20)),
                valid: true,
            },
            VerifierCase { name: "a plus sign", verifier: format!("{}+", "a".repeat(43)), valid: false },
            VerifierCase { name: "a space", verifier: format!("{} ", "a".repeat(43)), valid: false },
            VerifierCase { name: "non-ASCII", verifier: format!("{}é", "a".repeat(43)), valid: false },
            VerifierCase { name: "empty", verifier: String::new(), valid: false },
        ];
        for case in cases {
            assert_eq!(is_valid_verifier(&case.verifier), case.valid, "{}", case.name);
        }
    }

    #[test]
    fn a_wrong_or_malformed_verifier_fails_rfc7636_4_6() {
        let challenge = CodeChallenge::parse(Some(APPENDIX_B_CHALLENGE), Some("S256")).unwrap();
        assert!(!challenge.is_met_by(&"a".repeat(43)), "another verifier");
        assert!(!challenge.is_met_by(APPENDIX_B_CHALLENGE), "the challenge itself");
        // A verifier whose digest matches but which breaks the grammar is still refused.
        let short = "abc";
        let short_challenge = CodeChallenge::from_stored(s256(short));
        assert!(!short_challenge.is_met_by(short), "too short a verifier");
    }
}
