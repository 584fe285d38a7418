//! The grant types tokengate serves (RFC 6749 §4) and the one rule that ties them together.
//!
//! Its own module because everything that names a grant imports it: the config, the stats, the
//! registry's records and the browser client. It imports nothing of the crate.

use std::collections::BTreeSet;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
    /// RFC 6749 §4.1 with PKCE (RFC 7636): the code `/authorize` hands out after a sign-in.
    AuthorizationCode,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::AuthorizationCode,
    ];

    /// The `grant_type` parameter value (RFC 6749).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::AuthorizationCode => "authorization_code",
        }
    }

    pub fn from_param(value: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|grant| grant.as_str() == value)
    }
}

/// Refresh tokens come only from the password and authorization code grants, so
/// `refresh_token` without either is a grant nobody could ever use.
pub fn refresh_without_password(grants: &BTreeSet<GrantType>) -> bool {
    grants.contains(&GrantType::RefreshToken)
        && !grants.contains(&GrantType::Password)
        && !grants.contains(&GrantType::AuthorizationCode)
}
