//! The grant types tokengate serves (RFC 6749 §4), declared once.
//!
//! Each row of `grant_types!` below is a grant: its `grant_type` value, the `/token`
//! parameters it requires and the ones it refuses, and whether it hands a client its first
//! refresh token. The enum, [`GrantType::ALL`], [`GrantType::as_str`], [`GrantType::from_param`]
//! and [`GrantType::spec`] are generated from the rows, so a grant cannot exist without its row.
//! The gateway's required-parameter checks at `/token` and the browser client's "this grant
//! needs / does not take" checks both read [`GrantSpec`].
//!
//! Its own module because everything that names a grant imports it: the config, the stats, the
//! registry's records and the browser client. It imports nothing of the crate.

use std::fmt;

use serde::Deserialize;

/// A `/token` request parameter that some grant requires or refuses (RFC 6749 §4.1.3, §4.3.2,
/// §6; RFC 7636 §4.5). The parameters every grant shares (`grant_type`, `client_id`) are not
/// here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenParam {
    Username,
    Password,
    RefreshToken,
    Code,
    RedirectUri,
    CodeVerifier,
    Scope,
}

impl TokenParam {
    /// The form field's name, its name in a sentence (the browser client's messages) and the
    /// gateway's `invalid_request` description when a grant needs it and it is missing.
    const fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            TokenParam::Username => ("username", "a username", "username is missing"),
            TokenParam::Password => ("password", "a password", "password is missing"),
            TokenParam::RefreshToken => ("refresh_token", "a refresh token", "refresh_token is missing"),
            TokenParam::Code => ("code", "a code", "code is missing"),
            TokenParam::RedirectUri => ("redirect_uri", "a redirect URI", "redirect_uri is missing"),
            TokenParam::CodeVerifier => ("code_verifier", "a code verifier", "code_verifier is missing"),
            TokenParam::Scope => ("scope", "a scope", "scope is missing"),
        }
    }

    /// The form field's name.
    pub const fn name(self) -> &'static str {
        self.describe().0
    }

    /// The parameter in a sentence: "a grant needs a code".
    pub const fn label(self) -> &'static str {
        self.describe().1
    }

    /// The gateway's description of its absence (RFC 6749 §5.2 `invalid_request`).
    pub const fn missing(self) -> &'static str {
        self.describe().2
    }
}

/// What a grant type takes at `/token`: one row of `grant_types!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantSpec {
    /// The `grant_type` parameter value (RFC 6749).
    pub param: &'static str,
    /// Parameters a request of this grant must carry, checked in this order.
    pub requires: &'static [TokenParam],
    /// Parameters a request of this grant must not carry (the browser client refuses them
    /// before sending; the gateway ignores them), checked in this order.
    pub refuses: &'static [TokenParam],
    /// Whether the grant hands a refresh token to a client that holds none (RFC 6749 §1.5):
    /// an application whose grants have no such one could never use `refresh_token`.
    pub issues_first_refresh_token: bool,
}

impl GrantSpec {
    pub fn refuses(&self, param: TokenParam) -> bool {
        self.refuses.contains(&param)
    }
}

/// Declares [`GrantType`] and its table from rows of
/// `Variant = "grant_type value" { requires: [..], refuses: [..], issues_first_refresh_token: bool }`.
macro_rules! grant_types {
    ($(
        $(#[$meta:meta])*
        $variant:ident = $param:literal {
            requires: [$($required:ident),* $(,)?],
            refuses: [$($refused:ident),* $(,)?],
            issues_first_refresh_token: $first_refresh:literal $(,)?
        }
    )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        pub enum GrantType {
            $(
                $(#[$meta])*
                #[serde(rename = $param)]
                $variant,
            )*
        }

        impl GrantType {
            /// Every grant, in the rows' order: the order lists of grants are written in.
            pub const ALL: [GrantType; [$($param),*].len()] = [$(GrantType::$variant),*];

            /// The grant's row.
            pub const fn spec(self) -> GrantSpec {
                match self {
                    $(GrantType::$variant => GrantSpec {
                        param: $param,
                        requires: &[$(TokenParam::$required),*],
                        refuses: &[$(TokenParam::$refused),*],
                        issues_first_refresh_token: $first_refresh,
                    },)*
                }
            }
        }
    };
}

grant_types! {
    /// RFC 6749 §4.4: the application on its own behalf.
    ClientCredentials = "client_credentials" {
        requires: [],
        refuses: [Username, Password, RefreshToken, Code, RedirectUri, CodeVerifier],
        issues_first_refresh_token: false,
    }
    /// RFC 6749 §4.3: a configured user's username and password.
    Password = "password" {
        requires: [Username, Password],
        refuses: [RefreshToken, Code, RedirectUri, CodeVerifier],
        issues_first_refresh_token: true,
    }
    /// RFC 6749 §6: a new access token for a refresh token.
    RefreshToken = "refresh_token" {
        requires: [RefreshToken],
        refuses: [Username, Password, Code, RedirectUri, CodeVerifier],
        issues_first_refresh_token: false,
    }
    /// RFC 6749 §4.1 with PKCE (RFC 7636): the code `/authorize` hands out after a sign-in.
    /// It takes no scope (§4.1.3): the code carries the one granted.
    AuthorizationCode = "authorization_code" {
        requires: [Code, RedirectUri, CodeVerifier],
        refuses: [Username, Password, RefreshToken, Scope],
        issues_first_refresh_token: true,
    }
}

impl GrantType {
    /// The `grant_type` parameter value (RFC 6749).
    pub const fn as_str(self) -> &'static str {
        self.spec().param
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

/// The grants a public client (RFC 6749 §2.1) may use, configured or registered: the code
/// flow's, where PKCE stands in for the secret it does not have (RFC 7636 §1).
pub const PUBLIC_CLIENT_GRANTS: [GrantType; 2] = [GrantType::AuthorizationCode, GrantType::RefreshToken];

/// Whether `refresh_token` is among `grants` while none of them hands out a first refresh
/// token (today the password and authorization code grants do): a grant nobody could ever use.
pub fn refresh_token_unobtainable(grants: GrantTypes) -> bool {
    grants.contains(GrantType::RefreshToken)
        && !grants.iter().any(|grant| grant.spec().issues_first_refresh_token)
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

    #[test]
    fn serde_reads_each_grant_by_its_grant_type_value() {
        for grant in GrantType::ALL {
            let read: GrantType = serde_json::from_str(&format!("\"{}\"", grant.as_str())).unwrap();
            assert_eq!(read, grant);
            assert_eq!(GrantType::from_param(grant.as_str()), Some(grant));
        }
        assert_eq!(GrantType::from_param("urn:ietf:params:oauth:grant-type:device_code"), None);
    }

    /// Every grant-specific parameter is either required or refused by each grant, never both;
    /// only the scope may be neither (an optional parameter).
    #[test]
    fn each_grant_requires_or_refuses_every_parameter_but_the_scope() {
        use TokenParam::*;
        for grant in GrantType::ALL {
            let spec = grant.spec();
            for param in [Username, Password, RefreshToken, Code, RedirectUri, CodeVerifier, Scope] {
                let required = spec.requires.contains(&param);
                assert!(!(required && spec.refuses(param)), "{grant:?} requires and refuses {param:?}");
                assert!(
                    required || spec.refuses(param) || param == Scope,
                    "{grant:?} says nothing of {param:?}"
                );
            }
        }
    }

    #[test]
    fn each_parameters_missing_description_names_its_field() {
        use TokenParam::*;
        for param in [Username, Password, RefreshToken, Code, RedirectUri, CodeVerifier, Scope] {
            assert_eq!(param.missing(), format!("{} is missing", param.name()));
        }
    }

    #[test]
    fn refresh_token_needs_a_grant_that_issues_the_first_one() {
        use GrantType::*;
        assert!(refresh_token_unobtainable(GrantTypes::from([RefreshToken])));
        assert!(refresh_token_unobtainable(GrantTypes::from([RefreshToken, ClientCredentials])));
        assert!(!refresh_token_unobtainable(GrantTypes::from([RefreshToken, Password])));
        assert!(!refresh_token_unobtainable(GrantTypes::from([RefreshToken, AuthorizationCode])));
        assert!(!refresh_token_unobtainable(GrantTypes::from([ClientCredentials])));
    }
}
