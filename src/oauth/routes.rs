//! API resources: an HTTP method plus a path template, and what a request needs to reach it.

use crate::oauth::form::query_parameter_names;

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Parameter,
    /// A final `*`: any remainder, including none.
    Rest,
}

/// Two templates are equal when they match the same paths (`/orders/{id}` and `/orders/{x}`
/// are one template); `text` only keeps the operator's spelling for display.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    segments: Vec<Segment>,
    text: String,
}

impl PartialEq for PathTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.segments == other.segments
    }
}

impl Eq for PathTemplate {}

impl std::fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub &'static str);

impl PathTemplate {
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let body = template.strip_prefix('/').ok_or(TemplateError("must start with '/'"))?;
        if template.contains(['?', '#']) {
            return Err(TemplateError("must not contain '?' or '#'"));
        }
        let raw: Vec<&str> = if body.is_empty() { Vec::new() } else { body.split('/').collect() };
        let last = raw.len().saturating_sub(1);
        let mut segments = Vec::with_capacity(raw.len());
        for (index, part) in raw.iter().enumerate() {
            let segment = if *part == "*" {
                if index != last {
                    return Err(TemplateError("'*' may only be the last segment"));
                }
                Segment::Rest
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(TemplateError("a parameter is {name} with letters, digits or '_'"));
                }
                Segment::Parameter
            } else if part.is_empty() {
                return Err(TemplateError("empty segment ('//' or a trailing '/')"));
            } else if part.contains(['{', '}', '*']) || *part == "." || *part == ".." {
                return Err(TemplateError(
                    "a literal segment must not contain '{', '}', '*' or be a dot segment",
                ));
            } else {
                Segment::Literal((*part).to_owned())
            };
            segments.push(segment);
        }
        Ok(PathTemplate { segments, text: template.to_owned() })
    }

    /// Matches a request path (query string already removed).
    pub fn matches(&self, path: &str) -> bool {
        let Some(body) = path.strip_prefix('/') else {
            return false;
        };
        // Bytes, not chars: '/' is ASCII, and a byte split is several times cheaper per request.
        let mut parts = body.as_bytes().split(|&byte| byte == b'/');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::Literal(literal) => {
                    if parts.next() != Some(literal.as_bytes()) {
                        return false;
                    }
                }
                Segment::Parameter => match parts.next() {
                    Some(part) if !part.is_empty() => {}
                    _ => return false,
                },
            }
        }
        // "/" splits into one empty part; a template with no segments matches only that.
        match parts.next() {
            None => true,
            Some([]) => self.segments.is_empty() && parts.next().is_none(),
            Some(_) => false,
        }
    }
}

/// True when a request path has a segment that some upstream would read differently from the
/// route table: a dot segment (`.`, `..`, also as `%2e`) or a `;` parameter (also `%3b`).
/// Tomcat, Jetty and Spring drop `;…` from each segment, then resolve dot segments, so
/// `/static/..;/api/orders` matches a public `/static/*` here but serves `/api/orders` there.
/// Envoy's `normalize_path` resolves plain dot segments first, but not `..;`.
///
/// One pass over the bytes, and none at all for a path without `.`, `;` or `%`.
pub fn has_ambiguous_segment(path: &str) -> bool {
    let bytes = path.as_bytes();
    if !bytes.iter().any(|&byte| matches!(byte, b'.' | b';' | b'%')) {
        return false;
    }
    bytes.split(|&byte| byte == b'/').any(|segment| {
        let mut dots = 0usize;
        let mut other = false;
        let mut rest = segment;
        while let Some((&byte, tail)) = rest.split_first() {
            match (byte, tail) {
                (b';', _) => return true,
                (b'%', [b'3', b'b' | b'B', ..]) => return true,
                (b'%', [b'2', b'e' | b'E', after @ ..]) => {
                    dots += 1;
                    rest = after;
                    continue;
                }
                (b'.', _) => dots += 1,
                _ => other = true,
            }
            rest = tail;
        }
        !other && (dots == 1 || dots == 2)
    })
}

/// True when a query string has a parameter that a method-override middleware would read as
/// the request's method: Symfony and Laravel (`Request::getMethod`) and Express's
/// `method-override` with a `_method` getter read `_method` from the query of a POST, so a POST
/// allowed with one scope would reach the upstream as a DELETE.
///
/// A scan of the names only, and none at all for a request without a query.
pub fn has_method_override_parameter(query: &str) -> bool {
    query_parameter_names(query).any(|name| is_method_override_parameter(&name))
}

/// `_method`, also as PHP reads a name (the PHP manual, "Variables From External Sources"):
/// leading spaces dropped (`+` is a space in a query), `.` and ` ` turned into `_`, and
/// `_method[...]` read as an array named `_method`.
fn is_method_override_parameter(name: &str) -> bool {
    let name = name.trim_start_matches([' ', '+']);
    let name = name.split_once('[').map_or(name, |(base, _)| base);
    name.strip_prefix(['_', '.']) == Some("method")
}

/// What a matched resource asks of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Public,
    /// A valid token holding every one of these scopes.
    Scopes { names: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct RouteRule {
    pub methods: Vec<String>,
    pub template: PathTemplate,
    pub access: Access,
    /// The API (an index into the config's `apis`) this resource belongs to; `None` for the
    /// flat `resources` list, which needs no subscription.
    pub api: Option<usize>,
}

impl Access {
    pub fn scopes<I: IntoIterator<Item = String>>(names: I) -> Access {
        // Sorted and without repeats, by insertion: no sort code for a list this short.
        let mut sorted: Vec<String> = Vec::new();
        for name in names {
            if let Err(at) = sorted.binary_search(&name) {
                sorted.insert(at, name);
            }
        }
        Access::Scopes { names: sorted }
    }
}

/// The outcome of matching a request against the route table.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch<'a> {
    Found(&'a Access),
    /// The path matches some resource but not with this method: the methods that would.
    MethodNotAllowed(Vec<&'a str>),
    NotFound,
}

/// Rules in configuration order; the first whose method and path match wins.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    rules: Vec<RouteRule>,
}

impl RouteTable {
    pub fn new(rules: Vec<RouteRule>) -> Self {
        RouteTable { rules }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules in the order they are tried.
    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    pub fn find(&self, method: &str, path: &str) -> RouteMatch<'_> {
        self.find_with_api(method, path).0
    }

    /// [`Self::find`], and the API of the rule found.
    pub fn find_with_api(&self, method: &str, path: &str) -> (RouteMatch<'_>, Option<usize>) {
        // The methods that would do, sorted and without repeats, by insertion (no sort code).
        let mut allowed: Vec<&str> = Vec::new();
        for rule in &self.rules {
            if !rule.template.matches(path) {
                continue;
            }
            if rule.methods.iter().any(|m| m == method) {
                return (RouteMatch::Found(&rule.access), rule.api);
            }
            for known in &rule.methods {
                if let Err(at) = allowed.binary_search(&known.as_str()) {
                    allowed.insert(at, known);
                }
            }
        }
        if allowed.is_empty() {
            (RouteMatch::NotFound, None)
        } else {
            (RouteMatch::MethodNotAllowed(allowed), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> PathTemplate {
        PathTemplate::parse(text).unwrap()
    }

    #[test]
    fn literal_parameter_and_rest_segments() {
        let cases = [
            ("/api/orders", "/api/orders", true),
            ("/api/orders", "/api/orders/", false),
            ("/api/orders", "/api/orders/1", false),
            ("/api/orders", "/api/order", false),
            ("/api/orders/{id}", "/api/orders/42", true),
            ("/api/orders/{id}", "/api/orders/", false),
            ("/api/orders/{id}", "/api/orders", false),
            ("/api/orders/{id}", "/api/orders/42/items", false),
            ("/static/*", "/static", true),
            ("/static/*", "/static/", true),
            ("/static/*", "/static/app/main.js", true),
            ("/static/*", "/staticx", false),
            ("/*", "/anything/at/all", true),
            ("/", "/", true),
            ("/", "/x", false),
        ];
        for (tpl, path, expected) in cases {
            assert_eq!(template(tpl).matches(path), expected, "{tpl} vs {path}");
        }
    }

    /// Paths a Java upstream (Tomcat, Jetty, Spring) would resolve elsewhere than the route table does.
    #[test]
    fn dot_segments_and_semicolon_parameters_are_ambiguous() {
        struct Case {
            name: &'static str,
            path: &'static str,
            ambiguous: bool,
        }
        #[rustfmt::skip]
        let table = [
            Case { name: "plain", path: "/api/orders/42", ambiguous: false },
            Case { name: "root", path: "/", ambiguous: false },
            Case { name: "file with an extension", path: "/static/app.min.js", ambiguous: false },
            Case { name: "three dots are a name", path: "/static/...", ambiguous: false },
            Case { name: "dotted name", path: "/static/.well-known", ambiguous: false },
            Case { name: "other escapes", path: "/static/a%20b%2Fc", ambiguous: false },
            Case { name: "dot-dot semicolon", path: "/static/..;/api/orders", ambiguous: true },
            Case { name: "dot semicolon", path: "/static/.;/api/orders", ambiguous: true },
            Case { name: "encoded dot-dot semicolon", path: "/static/%2e%2e;/api/orders", ambiguous: true },
            Case { name: "upper-case encoded dots", path: "/static/%2E%2E;/api/orders", ambiguous: true },
            Case { name: "mixed dots", path: "/static/.%2E/api/orders", ambiguous: true },
            Case { name: "encoded semicolon", path: "/static/..%3b/api/orders", ambiguous: true },
            Case { name: "upper-case encoded semicolon", path: "/static/..%3B/api/orders", ambiguous: true },
            Case { name: "matrix parameter", path: "/api/orders;jsessionid=x", ambiguous: true },
            Case { name: "dot-dot", path: "/static/../api/orders", ambiguous: true },
            Case { name: "dot", path: "/static/./a", ambiguous: true },
            Case { name: "trailing dot-dot", path: "/static/..", ambiguous: true },
            Case { name: "encoded dot", path: "/static/%2e/a", ambiguous: true },
            Case { name: "truncated escape", path: "/static/%2", ambiguous: false },
        ];
        for Case { name, path, ambiguous } in table {
            assert_eq!(has_ambiguous_segment(path), ambiguous, "{name}: {path}");
        }
    }

    #[test]
    fn method_override_parameters_are_found_in_the_query() {
        struct Case {
            name: &'static str,
            query: &'static str,
            found: bool,
        }
        #[rustfmt::skip]
        let table = [
            Case { name: "plain", query: "_method=DELETE", found: true },
            Case { name: "after other parameters", query: "page=2&_method=PUT", found: true },
            Case { name: "without a value", query: "a=1&_method", found: true },
            Case { name: "percent-encoded", query: "%5Fmethod=DELETE", found: true },
            Case { name: "PHP reads a dot as '_'", query: ".method=DELETE", found: true },
            Case { name: "PHP drops leading spaces", query: "+_method=DELETE&%20_method=PUT", found: true },
            Case { name: "PHP and qs read brackets as an array", query: "_method[]=DELETE", found: true },
            Case { name: "no such parameter", query: "page=2&sort=asc", found: false },
            Case { name: "a value, not a name", query: "q=_method", found: false },
            Case { name: "a longer name", query: "_methods=DELETE&x_method=PUT", found: false },
            Case { name: "upper case is another name", query: "_METHOD=DELETE", found: false },
            Case { name: "empty", query: "", found: false },
        ];
        for Case { name, query, found } in table {
            assert_eq!(has_method_override_parameter(query), found, "{name}: {query}");
        }
    }

    #[test]
    fn refuses_bad_templates() {
        for bad in
            ["", "api", "/a//b", "/a/", "/a/*/b", "/a/{}", "/a/{b-c}", "/a/x{y}", "/a?b", "/a/..", "/a/**"]
        {
            assert!(PathTemplate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn first_matching_rule_wins_and_wrong_method_is_reported() {
        let table = RouteTable::new(vec![
            RouteRule {
                methods: vec!["GET".into()],
                template: template("/api/orders"),
                access: Access::scopes(["r".to_owned()]),
                api: None,
            },
            RouteRule {
                methods: vec!["POST".into()],
                template: template("/api/orders"),
                access: Access::scopes(["w".to_owned()]),
                api: None,
            },
            RouteRule {
                methods: vec!["GET".into()],
                template: template("/api/public/ping"),
                access: Access::Public,
                api: None,
            },
        ]);
        assert_eq!(table.find("POST", "/api/orders"), RouteMatch::Found(&Access::scopes(["w".to_owned()])));
        assert_eq!(table.find("GET", "/api/public/ping"), RouteMatch::Found(&Access::Public));
        assert_eq!(table.find("DELETE", "/api/orders"), RouteMatch::MethodNotAllowed(vec!["GET", "POST"]));
        assert_eq!(table.find("GET", "/nowhere"), RouteMatch::NotFound);
    }
}
