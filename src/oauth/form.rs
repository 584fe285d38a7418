//! `application/x-www-form-urlencoded` decoding as RFC 6749 needs it (Appendix B, §3.2).
//!
//! General-purpose form parsers decode invalid UTF-8 lossily and keep the last of two repeated
//! parameters; a token endpoint must refuse both, so this is a strict parser over
//! `percent-encoding`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use percent_encoding::percent_decode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// The decoded bytes are not UTF-8.
    InvalidUtf8,
    /// The same parameter name appears twice (RFC 6749 §3.2).
    RepeatedParameter,
}

/// Decodes one form component: `+` is a space, then percent-decoding, then strict UTF-8.
pub fn decode_component(raw: &[u8]) -> Result<String, FormError> {
    if !percent_escapes_are_well_formed(raw) {
        return Err(FormError::BadPercentEncoding);
    }
    let plus_as_space: Cow<[u8]> = if raw.contains(&b'+') {
        Cow::Owned(raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect())
    } else {
        Cow::Borrowed(raw)
    };
    percent_decode(&plus_as_space).decode_utf8().map(Cow::into_owned).map_err(|_| FormError::InvalidUtf8)
}

fn percent_escapes_are_well_formed(raw: &[u8]) -> bool {
    let mut rest = raw;
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        match rest.get(at + 1..at + 3) {
            Some([hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                rest = rest.get(at + 3..).unwrap_or_default();
            }
            _ => return false,
        }
    }
    true
}

/// The parameters a request may repeat: RFC 8707 §2 lets a client name several resources.
/// Every other name appears once at most (RFC 6749 §3.1, §3.2).
pub const REPEATABLE: [&str; 1] = ["resource"];

/// The parameters of a form body. Parameters with an empty value count as absent (§3.2).
#[derive(Default, Clone, PartialEq, Eq)]
pub struct FormParams(BTreeMap<String, String>, Vec<(String, String)>);

/// Names only: values include passwords, secrets and tokens.
impl std::fmt::Debug for FormParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys().chain(self.1.iter().map(|(name, _)| name))).finish()
    }
}

impl FormParams {
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let mut params = BTreeMap::new();
        let mut repeated = Vec::new();
        for pair in body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
            let (raw_name, raw_value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => {
                    let (name, equals_and_value) = pair.split_at(eq);
                    (name, equals_and_value.get(1..).unwrap_or_default())
                }
                None => (pair, &[][..]),
            };
            let name = decode_component(raw_name)?;
            let value = decode_component(raw_value)?;
            if REPEATABLE.contains(&name.as_str()) {
                repeated.push((name, value));
            } else if params.insert(name, value).is_some() {
                return Err(FormError::RepeatedParameter);
            }
        }
        Ok(FormParams(params, repeated))
    }

    /// Every non-empty value of a [`REPEATABLE`] parameter, in the order sent.
    pub fn all<'p>(&'p self, name: &'p str) -> impl Iterator<Item = &'p str> + 'p {
        self.1
            .iter()
            .filter(move |(sent, value)| sent == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, or `None` if it is missing or empty (for a [`REPEATABLE`] one: its
    /// first non-empty value).
    pub fn get(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(value) => Some(value.as_str()).filter(|value| !value.is_empty()),
            None => self
                .1
                .iter()
                .find(|(sent, value)| sent == name && !value.is_empty())
                .map(|(_, value)| value.as_str()),
        }
    }

    /// True when `name` was sent, even with an empty value.
    pub fn was_sent(&self, name: &str) -> bool {
        self.0.contains_key(name) || self.1.iter().any(|(sent, _)| sent == name)
    }
}

/// The names of the parameters in a URL query string, percent-decoded (values are not needed).
pub fn query_parameter_names(query: &str) -> impl Iterator<Item = Cow<'_, str>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .map(|name| percent_decode(name.as_bytes()).decode_utf8_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent_escapes() {
        let form = FormParams::parse(b"grant_type=password&username=a+b&password=p%26w%3D").unwrap();
        assert_eq!(form.get("grant_type"), Some("password"));
        assert_eq!(form.get("username"), Some("a b"));
        assert_eq!(form.get("password"), Some("p&w="));
    }

    #[test]
    fn empty_values_count_as_absent() {
        let form = FormParams::parse(b"scope=&grant_type=client_credentials").unwrap();
        assert_eq!(form.get("scope"), None);
        assert!(form.was_sent("scope"));
    }

    #[test]
    fn resource_may_be_repeated_rfc8707_2() {
        let form = FormParams::parse(b"resource=urn%3Aa&grant_type=x&resource=&resource=urn%3Ab").unwrap();
        assert_eq!(
            form.all("resource").collect::<Vec<_>>(),
            ["urn:a", "urn:b"],
            "in order, empty ones absent"
        );
        assert_eq!(form.get("resource"), Some("urn:a"));
        assert!(form.was_sent("resource") && !form.was_sent("scope"));
        assert_eq!(form.all("scope").count(), 0, "only repeatable names are listed");
    }

    #[test]
    fn refuses_repeated_parameters_even_unknown_ones() {
        assert_eq!(FormParams::parse(b"grant_type=a&grant_type=a"), Err(FormError::RepeatedParameter));
        assert_eq!(FormParams::parse(b"x=1&x=2"), Err(FormError::RepeatedParameter));
    }

    #[test]
    fn refuses_invalid_utf8_and_broken_escapes() {
        assert_eq!(FormParams::parse(b"username=%FF%FE"), Err(FormError::InvalidUtf8));
        assert_eq!(FormParams::parse(b"username=\xff"), Err(FormError::InvalidUtf8));
        assert_eq!(FormParams::parse(b"username=%zz"), Err(FormError::BadPercentEncoding));
        assert_eq!(FormParams::parse(b"username=%4"), Err(FormError::BadPercentEncoding));
        assert_eq!(FormParams::parse(b"username=%"), Err(FormError::BadPercentEncoding));
    }

    #[test]
    fn tolerates_stray_separators() {
        let form = FormParams::parse(b"&&grant_type=x&&").unwrap();
        assert_eq!(form.get("grant_type"), Some("x"));
    }

    #[test]
    fn lists_query_names() {
        let names: Vec<_> = query_parameter_names("a=1&client%5Fid=x&flag").collect();
        assert_eq!(names, ["a", "client_id", "flag"]);
    }
}
