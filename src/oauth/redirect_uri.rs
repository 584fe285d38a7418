//! Redirect URIs: which ones an application may register, and the exact match at
//! `/authorize` (RFC 9700 §4.1.3), with the one exception RFC 8252 §7.3 makes for the port of
//! a loopback `http` URI, for native apps only (RFC 9700 §4.1.3 limits it to them).

use serde::Deserialize;

/// What kind of client registered the redirect URIs (OpenID Connect Dynamic Client
/// Registration 1.0 §2 `application_type`, which RFC 7591 registrations may send too): a web
/// app, served from an origin of its own, or a native app (RFC 8252), which receives its
/// redirect on whatever loopback port it could open, or through a private-use scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    /// The default (OpenID Connect Dynamic Client Registration §2).
    #[default]
    Web,
    Native,
}

impl ApplicationType {
    pub fn from_name(name: &str) -> Option<ApplicationType> {
        match name {
            "web" => Some(ApplicationType::Web),
            "native" => Some(ApplicationType::Native),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Web => "web",
            ApplicationType::Native => "native",
        }
    }
}

/// Schemes no redirect URI may have, whatever the client: a browser runs or reads them in the
/// page that follows the redirect instead of leaving for an app.
const UNSAFE_SCHEMES: [&str; 4] = ["javascript", "data", "vbscript", "file"];

/// Why a redirect URI is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectUriError {
    /// `javascript:`, `data:`, `vbscript:` or `file:`, whatever the client.
    UnsafeScheme,
    /// Not `https://host...` nor `http://` on a loopback IP literal, nor (for a native client)
    /// a private-use scheme.
    Scheme,
    /// A fragment (RFC 6749 §3.1.2), a wildcard, whitespace or a control character.
    Malformed,
    /// The same URI twice in one list.
    Duplicate,
}

/// True when `uri` has one of [`UNSAFE_SCHEMES`] (in any case).
pub fn has_unsafe_scheme(uri: &str) -> bool {
    scheme_of(uri).is_some_and(|scheme| UNSAFE_SCHEMES.iter().any(|known| scheme.eq_ignore_ascii_case(known)))
}

/// Which hosts an `http` redirect URI may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopbackHosts {
    /// `127.0.0.1` and `[::1]` (RFC 8252 §7.3).
    IpLiterals,
    /// Those and `localhost`, for a public client registered through RFC 7591: RFC 8252 §8.3
    /// calls `localhost` NOT RECOMMENDED (a name can resolve elsewhere, or a firewall treat it
    /// otherwise), not forbidden, and MCP clients register it (the official SDKs' examples
    /// listen on `http://localhost:<port>/callback`). Its port is free at the match.
    WithLocalhost,
}

/// Checks a redirect URI an application registers: absolute `https` with a host, or `http` on
/// `127.0.0.1` or `[::1]` (RFC 8252 §7.3, §8.3: `localhost` is not a loopback literal); for a
/// native client also a private-use scheme in reverse-domain form (RFC 8252 §7.1,
/// `com.example.app:/cb`). No fragment, no wildcard, no whitespace, and never a scheme of
/// [`UNSAFE_SCHEMES`].
pub fn check_registered(uri: &str, application_type: ApplicationType) -> Result<(), RedirectUriError> {
    check_registered_with(uri, application_type, LoopbackHosts::IpLiterals)
}

/// [`check_registered`], with `http://localhost` too when `hosts` says so.
pub fn check_registered_with(
    uri: &str,
    application_type: ApplicationType,
    hosts: LoopbackHosts,
) -> Result<(), RedirectUriError> {
    if has_unsafe_scheme(uri) {
        return Err(RedirectUriError::UnsafeScheme);
    }
    let scheme = scheme_of(uri);
    if uri.contains(['#', '*', ' ', '"', '<', '>', '\\'])
        || uri.chars().any(|c| c.is_control() || !c.is_ascii())
    {
        return Err(RedirectUriError::Malformed);
    }
    if let Some(rest) = uri.strip_prefix("https://") {
        return match https_authority_is_good(rest) {
            true => Ok(()),
            false => Err(RedirectUriError::Scheme),
        };
    }
    if loopback_parts(uri).is_some()
        || (hosts == LoopbackHosts::WithLocalhost && localhost_parts(uri).is_some())
    {
        return Ok(());
    }
    let private_use =
        scheme.is_some_and(|scheme| scheme.contains('.') && uri.len() > scheme.len().saturating_add(1));
    match (application_type, private_use) {
        (ApplicationType::Native, true) => Ok(()),
        _ => Err(RedirectUriError::Scheme),
    }
}

/// The redirect URIs a registered client lists, space-separated (URIs have no spaces): at
/// least one, each as [`check_registered`] wants it, none twice. Their number is bounded by
/// the registry's 255 bytes for all of them.
pub fn check_all_registered(joined: &str, application_type: ApplicationType) -> Result<(), RedirectUriError> {
    if joined.is_empty() {
        return Err(RedirectUriError::Malformed);
    }
    let mut seen: Vec<&str> = Vec::new();
    for uri in joined.split(' ') {
        check_registered(uri, application_type)?;
        if seen.contains(&uri) {
            return Err(RedirectUriError::Duplicate);
        }
        seen.push(uri);
    }
    Ok(())
}

/// RFC 9700 §4.1.3: the presented URI is the registered one, string for string. The one
/// exception, for native clients only: a loopback `http` URI may carry any port (RFC 8252
/// §7.3), host and path still exact. A web client's loopback URI keeps its port: another port
/// on the same machine is another origin, perhaps another program.
///
/// A registered `http://localhost` URI (only a public client registered through RFC 7591 has
/// one, see [`LoopbackHosts::WithLocalhost`]) is a loopback one whose port is free, whatever the
/// application type: RFC 8252 §7.3's exception, path and query still exact.
pub fn matches(registered: &str, presented: &str, application_type: ApplicationType) -> bool {
    if registered == presented {
        return true;
    }
    if let (Some(registered), Some(presented)) = (localhost_parts(registered), localhost_parts(presented)) {
        return registered.rest == presented.rest;
    }
    if application_type != ApplicationType::Native {
        return false;
    }
    match (loopback_parts(registered), loopback_parts(presented)) {
        (Some(registered), Some(presented)) => {
            registered.host == presented.host && registered.rest == presented.rest
        }
        _ => false,
    }
}

/// The origin (`scheme://host[:port]`) of a registered `http` or `https` URI, for CORS.
pub fn origin(uri: &str) -> Option<&str> {
    if !(uri.starts_with("https://") || uri.starts_with("http://")) {
        return None;
    }
    let after_scheme = uri.find("://")?.checked_add(3)?;
    let rest = uri.get(after_scheme..)?;
    let end = rest.find(['/', '?']).map_or(uri.len(), |i| after_scheme.saturating_add(i));
    uri.get(..end)
}

/// Where a redirect leaves for, as a user can judge it and a `Content-Security-Policy` source
/// can name it: the origin of an `http(s)` URI, or a private-use scheme with its colon
/// (`com.example.app:`, RFC 8252 §7.1).
pub fn destination(uri: &str) -> Option<&str> {
    match origin(uri) {
        Some(origin) => Some(origin),
        None => {
            let scheme = scheme_of(uri)?;
            uri.get(..scheme.len().checked_add(1)?)
        }
    }
}

/// The scheme before the first `:` when it has RFC 3986 §3.1's syntax.
fn scheme_of(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let well_formed = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    well_formed.then_some(scheme)
}

/// After `https://`: a host (a name, or an IPv6 literal in brackets), then perhaps `:port`, no
/// userinfo. `https://:443/cb` names no host, so no origin a browser could go back to.
fn https_authority_is_good(rest: &str) -> bool {
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let (host, after_host) = match authority.strip_prefix('[') {
        Some(literal) => match literal.split_once(']') {
            Some((inside, after)) => (inside, after),
            None => return false,
        },
        None => authority.find(':').map_or((authority, ""), |at| authority.split_at(at)),
    };
    let port_is_good = match after_host.strip_prefix(':') {
        Some(port) => port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()),
        None => after_host.is_empty(),
    };
    !host.is_empty() && port_is_good
}

struct LoopbackParts<'u> {
    host: &'u str,
    /// Path and query, after the port.
    rest: &'u str,
}

/// `http://127.0.0.1[:port]/...` or `http://[::1][:port]/...`, split around the port.
fn loopback_parts(uri: &str) -> Option<LoopbackParts<'_>> {
    http_parts(uri, &["127.0.0.1", "[::1]"])
}

/// `http://localhost[:port]/...`, split around the port.
fn localhost_parts(uri: &str) -> Option<LoopbackParts<'_>> {
    http_parts(uri, &["localhost"])
}

/// `http://<one of hosts>[:port]/...`, split around the port.
fn http_parts<'u>(uri: &'u str, hosts: &[&'static str]) -> Option<LoopbackParts<'u>> {
    let rest = uri.strip_prefix("http://")?;
    let host = hosts.iter().copied().find(|host| rest.starts_with(host))?;
    let after_host = rest.get(host.len()..)?;
    let after_port = match after_host.strip_prefix(':') {
        Some(port_on) => {
            let digits = port_on.bytes().take_while(u8::is_ascii_digit).count();
            if !(1..=5).contains(&digits) {
                return None;
            }
            port_on.get(digits..)?
        }
        None => after_host,
    };
    if !(after_port.is_empty() || after_port.starts_with(['/', '?'])) {
        return None;
    }
    Some(LoopbackParts { host, rest: after_port })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct RegisterCase {
        name: &'static str,
        uri: &'static str,
        expect: Result<(), RedirectUriError>,
    }

    #[test]
    fn registered_uris_https_or_loopback_http() {
        let cases = [
            RegisterCase { name: "https", uri: "https://app.example/cb", expect: Ok(()) },
            RegisterCase { name: "https with query", uri: "https://app.example/cb?x=1", expect: Ok(()) },
            RegisterCase {
                name: "loopback v4",
                uri: "http://127.0.0.1:8080/console/callback",
                expect: Ok(()),
            },
            RegisterCase { name: "loopback v4 no port", uri: "http://127.0.0.1/cb", expect: Ok(()) },
            RegisterCase { name: "loopback v6", uri: "http://[::1]:9000/cb", expect: Ok(()) },
            RegisterCase {
                name: "plain http elsewhere",
                uri: "http://app.example/cb",
                expect: Err(RedirectUriError::Scheme),
            },
            RegisterCase {
                name: "localhost is not a literal (RFC 8252 §8.3)",
                uri: "http://localhost/cb",
                expect: Err(RedirectUriError::Scheme),
            },
            RegisterCase {
                name: "loopback lookalike",
                uri: "http://127.0.0.1.evil.example/cb",
                expect: Err(RedirectUriError::Scheme),
            },
            RegisterCase {
                name: "custom scheme",
                uri: "com.example.app:/cb",
                expect: Err(RedirectUriError::Scheme),
            },
            RegisterCase { name: "relative", uri: "/cb", expect: Err(RedirectUriError::Scheme) },
            RegisterCase {
                name: "https without host",
                uri: "https:///cb",
                expect: Err(RedirectUriError::Scheme),
            },
            RegisterCase {
                name: "userinfo",
                uri: "https://user@app.example/cb",
                expect: Err(RedirectUriError::Scheme),
            },
            RegisterCase {
                name: "fragment (RFC 6749 §3.1.2)",
                uri: "https://app.example/cb#x",
                expect: Err(RedirectUriError::Malformed),
            },
            RegisterCase {
                name: "wildcard",
                uri: "https://*.example/cb",
                expect: Err(RedirectUriError::Malformed),
            },
            RegisterCase {
                name: "space",
                uri: "https://app.example/c b",
                expect: Err(RedirectUriError::Malformed),
            },
        ];
        for case in cases {
            assert_eq!(check_registered(case.uri, ApplicationType::Web), case.expect, "{}", case.name);
        }
    }

    struct MatchCase {
        name: &'static str,
        registered: &'static str,
        presented: &'static str,
        matches: bool,
    }

    #[test]
    fn exact_match_rfc9700_4_1_3_and_native_loopback_ports_rfc8252_7_3() {
        let cases = [
            MatchCase {
                name: "same",
                registered: "https://a.example/cb",
                presented: "https://a.example/cb",
                matches: true,
            },
            MatchCase {
                name: "trailing slash",
                registered: "https://a.example/cb",
                presented: "https://a.example/cb/",
                matches: false,
            },
            MatchCase {
                name: "extra query",
                registered: "https://a.example/cb",
                presented: "https://a.example/cb?x=1",
                matches: false,
            },
            MatchCase {
                name: "case of the host",
                registered: "https://a.example/cb",
                presented: "https://A.example/cb",
                matches: false,
            },
            MatchCase {
                name: "https port",
                registered: "https://a.example/cb",
                presented: "https://a.example:444/cb",
                matches: false,
            },
            MatchCase {
                name: "prefix",
                registered: "https://a.example/cb",
                presented: "https://a.example/cbx",
                matches: false,
            },
            MatchCase {
                name: "loopback other port",
                registered: "http://127.0.0.1:8080/cb",
                presented: "http://127.0.0.1:51234/cb",
                matches: true,
            },
            MatchCase {
                name: "loopback port added",
                registered: "http://127.0.0.1/cb",
                presented: "http://127.0.0.1:51234/cb",
                matches: true,
            },
            MatchCase {
                name: "loopback v6 port",
                registered: "http://[::1]:1/cb",
                presented: "http://[::1]:2/cb",
                matches: true,
            },
            MatchCase {
                name: "loopback other path",
                registered: "http://127.0.0.1:8080/cb",
                presented: "http://127.0.0.1:8080/other",
                matches: false,
            },
            MatchCase {
                name: "loopback other host",
                registered: "http://127.0.0.1:8080/cb",
                presented: "http://[::1]:8080/cb",
                matches: false,
            },
            MatchCase {
                name: "loopback to https",
                registered: "http://127.0.0.1:8080/cb",
                presented: "https://127.0.0.1:8080/cb",
                matches: false,
            },
            MatchCase {
                name: "loopback userinfo trick",
                registered: "http://127.0.0.1:8080/cb",
                presented: "http://127.0.0.1:8080@evil.example/cb",
                matches: false,
            },
            MatchCase {
                name: "loopback bad port",
                registered: "http://127.0.0.1:8080/cb",
                presented: "http://127.0.0.1:x/cb",
                matches: false,
            },
        ];
        for case in cases {
            let native = matches(case.registered, case.presented, ApplicationType::Native);
            assert_eq!(native, case.matches, "{}", case.name);
        }
    }

    #[test]
    fn a_registered_clients_list_needs_one_uri_and_every_uri_good() {
        let check = |joined| check_all_registered(joined, ApplicationType::Web);
        assert_eq!(check("https://a.example/cb"), Ok(()));
        assert_eq!(check("https://a.example/cb http://127.0.0.1/cb"), Ok(()));
        assert_eq!(check(""), Err(RedirectUriError::Malformed));
        assert_eq!(check("https://a.example/cb  https://b.example/cb"), Err(RedirectUriError::Scheme));
        assert_eq!(check("https://a.example/cb www.google.lk"), Err(RedirectUriError::Scheme));
        assert_eq!(check("https://a.example/cb#x"), Err(RedirectUriError::Malformed));
    }

    #[test]
    fn origins() {
        assert_eq!(origin("http://127.0.0.1:8080/console/callback"), Some("http://127.0.0.1:8080"));
        assert_eq!(origin("https://a.example?x"), Some("https://a.example"));
        assert_eq!(origin("https://a.example"), Some("https://a.example"));
        assert_eq!(origin("nope"), None);
        assert_eq!(origin("com.example.app://host/cb"), None, "no web origin");
    }

    #[test]
    fn destinations_name_an_origin_or_a_private_use_scheme() {
        assert_eq!(destination("https://shop.example/cb?x"), Some("https://shop.example"));
        assert_eq!(destination("com.example.app:/cb"), Some("com.example.app:"));
        assert_eq!(destination("/cb"), None);
    }

    #[test]
    fn a_web_clients_loopback_uri_keeps_its_port_rfc9700_4_1_3() {
        let web = |registered, presented| matches(registered, presented, ApplicationType::Web);
        assert!(web("http://127.0.0.1:8080/cb", "http://127.0.0.1:8080/cb"));
        assert!(!web("http://127.0.0.1:8080/cb", "http://127.0.0.1:51234/cb"));
        assert!(!web("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"));
        assert!(!web("http://[::1]:1/cb", "http://[::1]:2/cb"));
        // Origins, as CORS compares them.
        assert!(!web("http://127.0.0.1:8080", "http://127.0.0.1:9999"));
        assert!(matches("http://127.0.0.1:8080", "http://127.0.0.1:9999", ApplicationType::Native));
    }

    #[test]
    fn unsafe_schemes_hostless_https_and_private_use_schemes_by_application_type() {
        let cases = [
            ("javascript:alert(1)", Err(RedirectUriError::UnsafeScheme), Err(RedirectUriError::UnsafeScheme)),
            ("JavaScript:alert(1)", Err(RedirectUriError::UnsafeScheme), Err(RedirectUriError::UnsafeScheme)),
            ("data:text/html,hi", Err(RedirectUriError::UnsafeScheme), Err(RedirectUriError::UnsafeScheme)),
            ("vbscript:msgbox", Err(RedirectUriError::UnsafeScheme), Err(RedirectUriError::UnsafeScheme)),
            ("file:///etc/passwd", Err(RedirectUriError::UnsafeScheme), Err(RedirectUriError::UnsafeScheme)),
            ("https://:443/cb", Err(RedirectUriError::Scheme), Err(RedirectUriError::Scheme)),
            ("https://[]/cb", Err(RedirectUriError::Scheme), Err(RedirectUriError::Scheme)),
            ("https://a.example:x/cb", Err(RedirectUriError::Scheme), Err(RedirectUriError::Scheme)),
            ("https://[::1/cb", Err(RedirectUriError::Scheme), Err(RedirectUriError::Scheme)),
            ("https://a.example:8443/cb", Ok(()), Ok(())),
            ("https://[2001:db8::1]:8443/cb", Ok(()), Ok(())),
            // RFC 8252 §7.1: reverse-domain private-use schemes, for native apps only.
            ("com.example.app:/cb", Err(RedirectUriError::Scheme), Ok(())),
            ("com.example.app:", Err(RedirectUriError::Scheme), Err(RedirectUriError::Scheme)),
            ("myapp:cb", Err(RedirectUriError::Scheme), Err(RedirectUriError::Scheme)),
            ("http://app.example/cb", Err(RedirectUriError::Scheme), Err(RedirectUriError::Scheme)),
        ];
        for (uri, web, native) in cases {
            assert_eq!(check_registered(uri, ApplicationType::Web), web, "web {uri}");
            assert_eq!(check_registered(uri, ApplicationType::Native), native, "native {uri}");
        }
    }

    #[test]
    fn a_list_names_each_uri_once() {
        assert_eq!(
            check_all_registered("https://a.example/cb https://a.example/cb", ApplicationType::Web),
            Err(RedirectUriError::Duplicate)
        );
        assert_eq!(check_all_registered("com.example.app:/cb", ApplicationType::Native), Ok(()));
    }

    /// `localhost` only where [`LoopbackHosts::WithLocalhost`] lets it in (RFC 8252 §8.3), a
    /// name that merely starts with it never; registered, its port is free at the match and
    /// its path is not.
    #[test]
    fn localhost_is_a_loopback_host_with_any_port_for_the_clients_allowed_it() {
        let with = |uri| check_registered_with(uri, ApplicationType::Web, LoopbackHosts::WithLocalhost);
        assert_eq!(with("http://localhost:8090/callback"), Ok(()));
        assert_eq!(with("http://localhost/callback"), Ok(()));
        assert_eq!(with("http://localhost.evil.example/cb"), Err(RedirectUriError::Scheme));
        assert_eq!(with("http://localhost:99999999/cb"), Err(RedirectUriError::Scheme));
        assert_eq!(
            check_registered("http://localhost:8090/callback", ApplicationType::Native),
            Err(RedirectUriError::Scheme)
        );
        let registered = "http://localhost:8090/callback";
        for (presented, expected) in [
            ("http://localhost:8090/callback", true),
            ("http://localhost:51234/callback", true),
            ("http://localhost/callback", true),
            ("http://localhost:8090/callback?x=1", false),
            ("http://localhost:8090/other", false),
            ("http://127.0.0.1:8090/callback", false),
            ("https://localhost:8090/callback", false),
        ] {
            assert_eq!(matches(registered, presented, ApplicationType::Web), expected, "{presented}");
        }
    }
}
