//! The HTML the authorization endpoint serves: the login page and the error page.
//!
//! No script, no external resource, every value HTML-escaped, and headers that keep the page
//! out of caches and frames (`Content-Security-Policy` allows inline style and posting back
//! to this origin only). The password is never written back into a page.

use super::reply::Response;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// The login page's policy: as [`CSP`], with the redirect URI's origin (or private-use scheme)
/// allowed as a target of the form. Browsers check `form-action` on every redirect after a
/// form's submission too (CSP Level 3 §6.4.1), so `'self'` alone would stop the 302 to an app
/// on another origin.
fn login_csp(redirect_origin: Option<&str>) -> String {
    match redirect_origin.filter(|origin| is_plain_origin(origin) || is_scheme_source(origin)) {
        Some(origin) => format!(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {origin}; frame-ancestors 'none'"
        ),
        None => CSP.to_owned(),
    }
}

/// `http(s)://host[:port]` with nothing a policy could read as another source or directive
/// (no space, `;`, `,`, quote or wildcard).
fn is_plain_origin(origin: &str) -> bool {
    let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    host.is_some_and(|host| {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    })
}

/// `scheme:` (CSP Level 3 `scheme-source`), the scheme as RFC 3986 §3.1 spells one, and not
/// one that would allow every web origin.
fn is_scheme_source(source: &str) -> bool {
    let Some(scheme) = source.strip_suffix(':') else { return false };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !["http", "https"].iter().any(|web| scheme.eq_ignore_ascii_case(web))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}\
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}\
button{margin-top:1rem;padding:.5rem 1rem}.error{color:#a00}ul{padding-left:1.2rem}";

/// What the login page shows.
pub(super) struct LoginPage<'p> {
    pub(super) action: &'p str,
    pub(super) application: &'p str,
    /// The scopes asked for (empty: the application's default).
    pub(super) scopes: Vec<&'p str>,
    pub(super) handle: &'p str,
    /// Where the form's redirect goes (`scheme://host[:port]`, or a native app's `scheme:`):
    /// shown to the user, and allowed by the page's CSP.
    pub(super) redirect_origin: Option<&'p str>,
    /// Kept in the username field after a failed attempt (never the password).
    pub(super) username: &'p str,
    pub(super) message: Option<&'p str>,
}

/// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn login_page(status: u16, page: &LoginPage) -> Response {
    let scopes = match page.scopes.as_slice() {
        [] => "<p>It asks for its default access.</p>".to_owned(),
        names => {
            let items: String = names.iter().map(|name| format!("<li>{}</li>", escape(name))).collect();
            format!("<p>It asks for:</p><ul>{items}</ul>")
        }
    };
    let message = page.message.map(|m| format!("<p class=\"error\">{}</p>", escape(m))).unwrap_or_default();
    // Names can be chosen by whoever registers an application; where the code goes cannot.
    let destination = page
        .redirect_origin
        .map(|origin| format!("<p>You will be sent back to <strong>{}</strong>.</p>", escape(origin)))
        .unwrap_or_default();
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>Sign in</title><style>{STYLE}</style></head>\
<body><h1>Sign in</h1><p><strong>{app}</strong> wants to access your account.</p>{scopes}{destination}{message}\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"handle\" value=\"{handle}\">\
<label for=\"username\">Username</label><input id=\"username\" name=\"username\" value=\"{username}\" \
autocomplete=\"username\" required>\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" \
autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form></body></html>",
        app = escape(page.application),
        action = escape(page.action),
        handle = escape(page.handle),
        username = escape(page.username),
    );
    html_with_policy(status, body, login_csp(page.redirect_origin))
}

/// A page that ends the flow here (RFC 6749 §4.1.2.1: never redirect to an unverified URI).
pub(super) fn error_page(status: u16, message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in error</title>\
<style>{STYLE}</style></head><body><h1>Sign-in error</h1><p class=\"error\">{}</p></body></html>",
        escape(message)
    );
    html(status, Vec::new(), body)
}

pub(super) fn html(status: u16, headers: Vec<(&'static str, String)>, body: String) -> Response {
    let mut response = html_with_policy(status, body, CSP.to_owned());
    response.headers.splice(0..0, headers);
    response
}

fn html_with_policy(status: u16, body: String, policy: String) -> Response {
    let headers = vec![
        ("content-type", "text/html; charset=utf-8".to_owned()),
        ("cache-control", "no-store".to_owned()),
        ("pragma", "no-cache".to_owned()),
        ("content-security-policy", policy),
        ("x-frame-options", "DENY".to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
    ];
    Response { status, headers, body: body.into_bytes() }
}

/// A 302 to `location`, uncached.
pub(super) fn redirect(location: String) -> Response {
    let headers = vec![
        ("location", location),
        ("cache-control", "no-store".to_owned()),
        ("pragma", "no-cache".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
    ];
    Response { status: 302, headers, body: Vec::new() }
}

/// The hidden handle in a login page, as its form sends it back: what tests post to sign in.
#[cfg(test)]
pub(crate) fn handle_in(page: &str) -> Option<&str> {
    let marker = "name=\"handle\" value=\"";
    let start = page.find(marker)?.checked_add(marker.len())?;
    page.get(start..)?.split('"').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_escaped_and_the_headers_harden_the_page() {
        let page = LoginPage {
            action: "/authorize",
            application: "<script>alert(1)</script>",
            scopes: vec!["a\"b"],
            handle: "h'1",
            redirect_origin: None,
            username: "<u>",
            message: Some("wrong & <b>"),
        };
        let response = login_page(200, &page);
        let body = String::from_utf8(response.body.clone()).unwrap();
        for raw in ["<script>", "a\"b", "h'1", "<u>", "<b>"] {
            assert!(!body.contains(raw), "{raw} was not escaped");
        }
        assert!(body.contains("&lt;script&gt;") && body.contains("a&quot;b") && body.contains("h&#39;1"));
        assert!(!body.contains("<script"), "no script at all");
        assert_eq!(response.header("cache-control"), Some("no-store"));
        assert_eq!(response.header("content-security-policy"), Some(CSP));
        assert!(response.header("content-type").unwrap().starts_with("text/html"));
        assert!(body.len() < 2048, "the login page is {} bytes", body.len());
    }

    #[test]
    fn the_page_names_where_the_code_goes_escaped() {
        let page = LoginPage {
            action: "/authorize",
            application: "Your bank",
            scopes: Vec::new(),
            handle: "h",
            redirect_origin: Some("https://shop.example"),
            username: "",
            message: None,
        };
        let body = String::from_utf8(login_page(200, &page).body).unwrap();
        assert!(body.contains("sent back to <strong>https://shop.example</strong>"), "{body}");
        let hostile = LoginPage { redirect_origin: Some("https://a<b>\"c"), ..page };
        let body = String::from_utf8(login_page(200, &hostile).body).unwrap();
        assert!(body.contains("sent back to <strong>https://a&lt;b&gt;&quot;c</strong>"), "{body}");
    }

    #[test]
    fn the_form_may_redirect_to_the_apps_origin_only() {
        let cases = [
            (Some("http://127.0.0.1:5173"), "form-action 'self' http://127.0.0.1:5173;"),
            (Some("https://app.example"), "form-action 'self' https://app.example;"),
            (Some("http://[::1]:8080"), "form-action 'self' http://[::1]:8080;"),
            (None, "form-action 'self';"),
            // Anything a policy would read as more sources or directives: left out.
            (Some("https://a.example; script-src *"), "form-action 'self';"),
            (Some("https://a.example,b"), "form-action 'self';"),
            (Some("https://*.example"), "form-action 'self';"),
            (Some("javascript:x"), "form-action 'self';"),
            // A native app's private-use scheme (RFC 8252 §7.1), as a CSP scheme-source.
            (Some("com.example.app:"), "form-action 'self' com.example.app:;"),
            (Some("https:"), "form-action 'self';"),
            (Some("com.example app:"), "form-action 'self';"),
        ];
        for (origin, expected) in cases {
            let policy = login_csp(origin);
            assert!(policy.contains(expected), "{origin:?}: {policy}");
            assert!(policy.contains("frame-ancestors 'none'"), "{origin:?}");
        }
    }
}
