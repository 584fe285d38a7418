//! Redirect URIs: which ones an application may register, and the exact match at
//! `/authorize` (RFC 9700 §4.1.3), with the one exception RFC 8252 §7.3 makes for the port of
//! a loopback `http` URI.

/// Why a configured redirect URI is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectUriError {
    /// Neither `https://host...` nor `http://` on a loopback IP literal.
    Scheme,
    /// A fragment (RFC 6749 §3.1.2), a wildcard, whitespace or a control character.
    Malformed,
}

/// Checks a redirect URI an application registers: absolute `https`, or `http` on
/// `127.0.0.1` or `[::1]` (RFC 8252 §7.3, §8.3: `localhost` is not a loopback literal); no
/// fragment, no wildcard, no whitespace.
pub fn check_registered(uri: &str) -> Result<(), RedirectUriError> {
    if uri.contains(['#', '*', ' ', '"', '<', '>', '\\'])
        || uri.chars().any(|c| c.is_control() || !c.is_ascii())
    {
        return Err(RedirectUriError::Malformed);
    }
    if let Some(rest) = uri.strip_prefix("https://") {
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        if host.is_empty() || host.contains('@') {
            return Err(RedirectUriError::Scheme);
        }
        return Ok(());
    }
    match loopback_parts(uri) {
        Some(_) => Ok(()),
        None => Err(RedirectUriError::Scheme),
    }
}

/// The redirect URIs a registered client lists for the code grant, space-separated (URIs
/// have no spaces): at least one, each as [`check_registered`] wants it. Their number is
/// bounded by the registry's 255 bytes for all of them.
pub fn check_all_registered(joined: &str) -> Result<(), RedirectUriError> {
    if joined.is_empty() {
        return Err(RedirectUriError::Malformed);
    }
    joined.split(' ').try_for_each(check_registered)
}

/// RFC 9700 §4.1.3: the presented URI is the registered one, string for string. The one
/// exception: a loopback `http` URI may carry any port (RFC 8252 §7.3), host and path still
/// exact.
pub fn matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    match (loopback_parts(registered), loopback_parts(presented)) {
        (Some(registered), Some(presented)) => {
            registered.host == presented.host && registered.rest == presented.rest
        }
        _ => false,
    }
}

/// The origin (`scheme://host[:port]`) of a registered URI, for CORS.
pub fn origin(uri: &str) -> Option<&str> {
    let after_scheme = uri.find("://")?.checked_add(3)?;
    let rest = uri.get(after_scheme..)?;
    let end = rest.find(['/', '?']).map_or(uri.len(), |i| after_scheme.saturating_add(i));
    uri.get(..end)
}

struct LoopbackParts<'u> {
    host: &'u str,
    /// Path and query, after the port.
    rest: &'u str,
}

/// `http://127.0.0.1[:port]/...` or `http://[::1][:port]/...`, split around the port.
fn loopback_parts(uri: &str) -> Option<LoopbackParts<'_>> {
    let rest = uri.strip_prefix("http://")?;
    let host = ["127.0.0.1", "[::1]"].into_iter().find(|host| rest.starts_with(host))?;
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
            assert_eq!(check_registered(case.uri), case.expect, "{}", case.name);
        }
    }

    struct MatchCase {
        name: &'static str,
        registered: &'static str,
        presented: &'static str,
        matches: bool,
    }

    #[test]
    fn exact_match_rfc9700_4_1_3_and_loopback_ports_rfc8252_7_3() {
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
            assert_eq!(matches(case.registered, case.presented), case.matches, "{}", case.name);
        }
    }

    #[test]
    fn a_registered_clients_list_needs_one_uri_and_every_uri_good() {
        assert_eq!(check_all_registered("https://a.example/cb"), Ok(()));
        assert_eq!(check_all_registered("https://a.example/cb http://127.0.0.1/cb"), Ok(()));
        assert_eq!(check_all_registered(""), Err(RedirectUriError::Malformed));
        assert_eq!(
            check_all_registered("https://a.example/cb  https://b.example/cb"),
            Err(RedirectUriError::Scheme)
        );
        assert_eq!(check_all_registered("https://a.example/cb www.google.lk"), Err(RedirectUriError::Scheme));
        assert_eq!(check_all_registered("https://a.example/cb#x"), Err(RedirectUriError::Malformed));
    }

    #[test]
    fn origins() {
        assert_eq!(origin("http://127.0.0.1:8080/console/callback"), Some("http://127.0.0.1:8080"));
        assert_eq!(origin("https://a.example?x"), Some("https://a.example"));
        assert_eq!(origin("https://a.example"), Some("https://a.example"));
        assert_eq!(origin("nope"), None);
    }
}
