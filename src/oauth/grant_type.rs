//! The grant types tokengate serves (RFC 6749 §4) and the one rule that ties them together.
//!
//! Its own module because everything that names a grant imports it: the config, the stats, the
//! registry's records and the browser client. It imports nothing of the crate.

use std::fmt;

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

/// A set of grant types, one bit each (the registry's records store these bits as they are).
///
/// Iterated in [`GrantType::ALL`]'s order, which is the enum's: the order lists of grants are
/// written in (metadata, registration responses).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantTypes(u8);

impl GrantTypes {
    /// Bits of grants this version does not know are dropped.
    pub fn from_bits(bits: u8) -> Self {
        GrantType::ALL.into_iter().filter(|&grant| bits & GrantTypes::bit(grant) != 0).collect()
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    fn bit(grant: GrantType) -> u8 {
        1 << grant as u8
    }

    pub fn contains(self, grant: GrantType) -> bool {
        self.0 & GrantTypes::bit(grant) != 0
    }

    pub fn insert(&mut self, grant: GrantType) {
        self.0 |= GrantTypes::bit(grant);
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn iter(self) -> impl Iterator<Item = GrantType> {
        GrantType::ALL.into_iter().filter(move |&grant| self.contains(grant))
    }
}

impl FromIterator<GrantType> for GrantTypes {
    fn from_iter<I: IntoIterator<Item = GrantType>>(grants: I) -> Self {
        let mut set = GrantTypes::default();
        set.extend(grants);
        set
    }
}

impl Extend<GrantType> for GrantTypes {
    fn extend<I: IntoIterator<Item = GrantType>>(&mut self, grants: I) {
        for grant in grants {
            self.insert(grant);
        }
    }
}

impl<const N: usize> From<[GrantType; N]> for GrantTypes {
    fn from(grants: [GrantType; N]) -> Self {
        grants.into_iter().collect()
    }
}

impl fmt::Debug for GrantTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Refresh tokens come only from the password and authorization code grants, so
/// `refresh_token` without either is a grant nobody could ever use.
pub fn refresh_without_password(grants: GrantTypes) -> bool {
    grants.contains(GrantType::RefreshToken)
        && !grants.contains(GrantType::Password)
        && !grants.contains(GrantType::AuthorizationCode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bits_are_the_ones_registry_records_store() {
        let bits = GrantType::ALL.map(|grant| GrantTypes::from([grant]).bits());
        assert_eq!(bits, [1, 2, 4, 8]);
        assert_eq!(GrantTypes::from_bits(0xff).bits(), 0x0f, "unknown bits are dropped");
    }

    #[test]
    fn a_set_iterates_in_the_enums_order_whatever_the_insertion_order() {
        let grants = GrantTypes::from([
            GrantType::AuthorizationCode,
            GrantType::ClientCredentials,
            GrantType::Password,
        ]);
        let listed: Vec<GrantType> = grants.iter().collect();
        assert_eq!(listed, [GrantType::ClientCredentials, GrantType::Password, GrantType::AuthorizationCode]);
        assert_eq!(grants.len(), 3);
        assert!(grants.contains(GrantType::Password) && !grants.contains(GrantType::RefreshToken));
    }
}
