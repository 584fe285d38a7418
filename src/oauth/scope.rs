//! OAuth scopes (RFC 6749 §3.3): parsing, validation and the compact ids the token store keeps.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

/// What a malformed `scope` is told (RFC 6749 §3.3's grammar, in words), by the browser
/// package's token requests and sign-in helpers alike.
pub const MALFORMED_SCOPE: &str = "a scope is scope-tokens separated by single spaces (no quotes, \
     backslashes, control or non-ASCII characters)";

/// A scope as the token store remembers it: 4 bytes of SHA-256 of its name.
///
/// Ids instead of indexes into the config's scope list keep stored tokens meaningful across
/// config reloads that reorder or add scopes; config validation rejects two configured scopes
/// whose ids collide, so within one config an id names exactly one scope.
pub type ScopeId = u32;

pub fn scope_id(name: &str) -> ScopeId {
    leading_u32(&Sha256::digest(name.as_bytes()))
}

/// The first four bytes of a digest as a number.
pub(crate) fn leading_u32(digest: &[u8]) -> u32 {
    digest.first_chunk::<4>().map_or(0, |bytes| u32::from_be_bytes(*bytes))
}

/// True when `name` is a scope-token: 1*( %x21 / %x23-5B / %x5D-7E ).
pub fn is_scope_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// A set of scope names, kept sorted so responses and headers are stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedScope;

impl ScopeSet {
    /// Parses a `scope` parameter: scope-tokens separated by single spaces.
    ///
    /// Leading, trailing or doubled spaces are malformed under §3.3's grammar; they are refused
    /// rather than repaired so a client's bug shows up instead of being silently accepted.
    pub fn parse(text: &str) -> Result<Self, MalformedScope> {
        let mut set = BTreeSet::new();
        for name in text.split(' ') {
            if !is_scope_token(name) {
                return Err(MalformedScope);
            }
            set.insert(name.to_owned());
        }
        Ok(ScopeSet(set))
    }

    pub fn from_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        // Inserted one by one: collect() would sort them first, and bring a copy of the sort
        // code of its own into the filter's .wasm.
        let mut set = BTreeSet::new();
        for name in names {
            set.insert(name.into());
        }
        ScopeSet(set)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet::from_names(self.0.intersection(&other.0).cloned())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for name in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(name)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_space_separated_tokens_in_any_order() {
        let a = ScopeSet::parse("orders:write orders:read").unwrap();
        let b = ScopeSet::parse("orders:read orders:write").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "orders:read orders:write");
    }

    #[test]
    fn refuses_malformed_scope_strings() {
        for bad in ["", " a", "a ", "a  b", "a\tb", "a\"b", "a\\b", "caf\u{e9}", "a\u{7f}"] {
            assert_eq!(ScopeSet::parse(bad), Err(MalformedScope), "{bad:?}");
        }
    }

    #[test]
    fn scopes_are_case_sensitive() {
        let set = ScopeSet::parse("Read").unwrap();
        assert!(!set.contains("read"));
    }

    #[test]
    fn ids_are_stable() {
        assert_eq!(scope_id("orders:read"), scope_id("orders:read"));
        assert_ne!(scope_id("orders:read"), scope_id("orders:write"));
    }
}
