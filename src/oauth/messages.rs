//! The JSON bodies the gateway sends: RFC 6749 §5.1 token responses and §5.2 errors.
//!
//! One definition serves both sides: the gateway serialises them, and clients (the browser
//! package) deserialise them, so the two cannot drift apart.

use serde::{Deserialize, Serialize};

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires; absent for tokens that never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// OpenID Connect Core §3.1.3.3: for a grant whose scope holds `openid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// Without the tokens, so that a debug print cannot leak them.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("scope", &self.scope)
            .field("has_id_token", &self.id_token.is_some())
            .finish_non_exhaustive()
    }
}

/// An error response (RFC 6749 §5.2, and RFC 6750 §3 for resource errors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// The scope a resource needs, with `insufficient_scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl ErrorResponse {
    /// The error in a sentence for people: its code, and its description when it has one.
    pub fn refusal(&self) -> String {
        match &self.error_description {
            Some(description) => format!("the server refused: {} ({description})", self.error),
            None => format!("the server refused: {}", self.error),
        }
    }

    pub fn new(error: &str, description: &str) -> Self {
        ErrorResponse {
            error: error.to_owned(),
            error_description: Some(description.to_owned()),
            scope: None,
        }
    }

    /// An error with no description (the error code says it all).
    pub fn bare(error: &str) -> Self {
        ErrorResponse { error: error.to_owned(), error_description: None, scope: None }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
