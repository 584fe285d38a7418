//! Resource indicators (RFC 8707): the `resource` parameter's grammar, and the audience a grant
//! is bound to.
//!
//! A `resource` value is an absolute URI (RFC 3986 §4.3) without a fragment (RFC 8707 §2).
//! Values are compared as strings, character for character (RFC 3986 §6.2.1): a client names
//! a resource by the very identifier its protected resource metadata gives (RFC 9728 §3.3).

/// The most `resource` values one request may carry: each must be a resource the gateway
/// serves, and a grant records every one, so the bound keeps the record small.
pub const MAX_RESOURCES_PER_REQUEST: usize = 16;

/// The longest resource identifier: the record keeps each behind a length byte.
pub const MAX_RESOURCE_URI_BYTES: usize = 255;

/// Why a `resource` value or list is refused (RFC 8707 §2: `invalid_target` for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceError {
    /// Not an absolute URI, or one with a fragment (§2).
    Malformed,
    /// More than [`MAX_RESOURCES_PER_REQUEST`] values.
    TooMany,
}

impl ResourceError {
    /// The `error_description` (never the value: it is the client's input).
    pub fn description(self) -> &'static str {
        match self {
            ResourceError::Malformed => {
                "resource must be an absolute URI without a fragment (RFC 8707 section 2)"
            }
            ResourceError::TooMany => "too many resource values",
        }
    }
}

/// True when `uri` is an absolute URI without a fragment (RFC 3986 §4.3, RFC 8707 §2):
/// `scheme ":" hier-part [ "?" query ]`, with a scheme of a letter then letters, digits, `+`,
/// `-`, `.`, something after the colon, and only visible ASCII (a URI, not an IRI).
pub fn is_resource_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else { return false };
    let mut scheme_bytes = scheme.bytes();
    let scheme_ok = scheme_bytes.next().is_some_and(|first| first.is_ascii_alphabetic())
        && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    scheme_ok
        && !rest.is_empty()
        && uri.len() <= MAX_RESOURCE_URI_BYTES
        && uri.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

/// The audience a grant is bound to: the resource identifiers it may be used on, sorted and
/// without repeats. Empty: the grant was issued without `resource`, and is not bound (see
/// docs/resources-and-audience.md for what that allows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience(Vec<String>);

impl Audience {
    /// The audience of `values`, each checked (§2); no values: not bound.
    pub fn parse<'v>(values: impl IntoIterator<Item = &'v str>) -> Result<Audience, ResourceError> {
        let mut uris: Vec<String> = Vec::new();
        for value in values {
            if !is_resource_uri(value) {
                return Err(ResourceError::Malformed);
            }
            if let Err(at) = uris.binary_search_by(|uri| uri.as_str().cmp(value)) {
                if uris.len() >= MAX_RESOURCES_PER_REQUEST {
                    return Err(ResourceError::TooMany);
                }
                uris.insert(at, value.to_owned());
            }
        }
        Ok(Audience(uris))
    }

    /// An audience read back from a record (already checked when it was issued), in order.
    pub fn from_stored(mut uris: Vec<String>) -> Audience {
        uris.sort_unstable();
        uris.dedup();
        Audience(uris)
    }

    /// True when the grant is bound to no resource.
    pub fn is_unbound(&self) -> bool {
        self.0.is_empty()
    }

    /// The resource identifiers, sorted.
    pub fn uris(&self) -> &[String] {
        &self.0
    }

    /// True when the grant may be used on the resource `uri`: it names it. An unbound grant
    /// names none; whether it may be used anyway is the resource's decision (`require_audience`).
    pub fn names(&self, uri: &str) -> bool {
        self.0.iter().any(|named| named == uri)
    }

    /// The audience a later request that asks for `requested` gets (RFC 8707 §2.2: the same or
    /// fewer resources, never others). Asking for none keeps this one; a bound audience only
    /// narrows; an unbound grant may be narrowed to any resources (the caller checks that
    /// they are served). `None`: the request widens it.
    pub fn narrowed_to(&self, requested: &Audience) -> Option<Audience> {
        if requested.is_unbound() {
            return Some(self.clone());
        }
        if self.is_unbound() || requested.0.iter().all(|uri| self.names(uri)) {
            return Some(requested.clone());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        name: &'static str,
        uri: &'static str,
        valid: bool,
    }

    #[test]
    fn resource_values_must_be_absolute_uris_without_a_fragment() {
        let cases = [
            Case { name: "https with a path", uri: "https://127.0.0.1:8243/mcp", valid: true },
            Case { name: "a URN is absolute too", uri: "urn:example:orders", valid: true },
            Case { name: "a query is allowed (RFC 8707 §2)", uri: "https://api.example/x?v=1", valid: true },
            Case { name: "a fragment is not (§2)", uri: "https://api.example/mcp#part", valid: false },
            Case { name: "an empty fragment is a fragment", uri: "https://api.example/mcp#", valid: false },
            Case { name: "a relative path", uri: "/mcp", valid: false },
            Case { name: "a network-path reference", uri: "//api.example/mcp", valid: false },
            Case { name: "nothing after the scheme", uri: "https:", valid: false },
            Case { name: "a scheme starting with a digit", uri: "1https://x/y", valid: false },
            Case { name: "a space", uri: "https://api.example/a b", valid: false },
            Case { name: "not ASCII (an IRI)", uri: "https://api.example/ü", valid: false },
            Case { name: "empty", uri: "", valid: false },
        ];
        for case in cases {
            assert_eq!(is_resource_uri(case.uri), case.valid, "{}", case.name);
        }
        let long = format!("https://api.example/{}", "a".repeat(MAX_RESOURCE_URI_BYTES));
        assert!(!is_resource_uri(&long), "longer than a record keeps");
    }

    #[test]
    fn an_audience_is_sorted_without_repeats_and_bounded() {
        let audience = Audience::parse(["https://b.example/", "https://a.example/", "https://b.example/"]);
        assert_eq!(audience.unwrap().uris(), ["https://a.example/", "https://b.example/"]);
        assert_eq!(Audience::parse(["https://a.example/#x"]), Err(ResourceError::Malformed));
        let many: Vec<String> = (0..=MAX_RESOURCES_PER_REQUEST).map(|i| format!("urn:r:{i}")).collect();
        assert_eq!(Audience::parse(many.iter().map(String::as_str)), Err(ResourceError::TooMany));
        assert!(Audience::parse([]).unwrap().is_unbound());
    }

    #[test]
    fn a_later_request_may_narrow_the_audience_never_widen_it() {
        let both = Audience::parse(["urn:a", "urn:b"]).unwrap();
        let a = Audience::parse(["urn:a"]).unwrap();
        let c = Audience::parse(["urn:c"]).unwrap();
        let unbound = Audience::default();
        assert_eq!(both.narrowed_to(&a), Some(a.clone()), "narrowing");
        assert_eq!(both.narrowed_to(&unbound), Some(both.clone()), "none asked: the same");
        assert_eq!(a.narrowed_to(&both), None, "widening");
        assert_eq!(a.narrowed_to(&c), None, "another resource");
        assert_eq!(unbound.narrowed_to(&c), Some(c), "an unbound grant may be bound");
        assert_eq!(unbound.narrowed_to(&unbound), Some(unbound));
    }
}
