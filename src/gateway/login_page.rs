//! The HTML the authorization endpoint serves: the login page and the error page.
//!
//! No script, no external resource but the operator's logo, every value HTML-escaped, and
//! headers that keep the page out of caches and frames. The `Content-Security-Policy` allows
//! the page's one `<style>` by its hash (computed with the config, `config/login_page.rs`), an
//! image from the logo's origin only, and posting back to this origin (and the redirect's)
//! only. The password is never written back into a page.

use super::reply::Response;
use crate::config::LoginPageLook;

/// The pages' policy: the stylesheet by hash, the logo's source, no `<base>`, no framing; the
/// form may post to this origin and, when given, the redirect's. Browsers check `form-action`
/// on every redirect after a form's submission too (CSP Level 3 §6.4.1), so `'self'` alone
/// would stop the 302 to an app on another origin.
fn policy(look: &LoginPageLook, redirect_origin: Option<&str>) -> String {
    let images = look.logo.as_ref().map(|logo| format!(" img-src {};", logo.source)).unwrap_or_default();
    let form_target = redirect_origin
        .filter(|origin| is_plain_origin(origin) || is_scheme_source(origin))
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src {};{images} form-action 'self'{form_target}; frame-ancestors 'none'; base-uri 'none'",
        look.style_source
    )
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

pub(super) fn login_page(look: &LoginPageLook, status: u16, page: &LoginPage) -> Response {
    let scopes = match page.scopes.as_slice() {
        [] => "<p>It asks for its default access.</p>".to_owned(),
        names => {
            let items: String = names.iter().map(|name| format!("<li>{}</li>", escape(name))).collect();
            format!("<p>It asks for:</p><ul>{items}</ul>")
        }
    };
    let message = page
        .message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    // Names can be chosen by whoever registers an application; where the code goes cannot:
    // shown next to the name, so a look-alike name meets the real destination.
    let destination = page
        .redirect_origin
        .map(|origin| format!(" You will be sent back to <strong>{}</strong>.", escape(origin)))
        .unwrap_or_default();
    let content = format!(
        "<p><strong>{app}</strong> wants to access your account.{destination}</p>{scopes}{message}\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"handle\" value=\"{handle}\">\
<label for=\"username\">Username</label><input id=\"username\" name=\"username\" value=\"{username}\" \
autocomplete=\"username\" required>\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" \
autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>",
        app = escape(page.application),
        action = escape(page.action),
        handle = escape(page.handle),
        username = escape(page.username),
    );
    let body = document(look, &look.title, &content);
    html(status, body, policy(look, page.redirect_origin))
}

/// A page that ends the flow here (RFC 6749 §4.1.2.1: never redirect to an unverified URI).
pub(super) fn error_page(look: &LoginPageLook, status: u16, message: &str) -> Response {
    let content = format!("<p class=\"error\" role=\"alert\">{}</p>", escape(message));
    html(status, document(look, "Sign-in error", &content), policy(look, None))
}

/// The page around `content`: the stylesheet, then a card with the logo, the heading and the
/// footer.
fn document(look: &LoginPageLook, heading: &str, content: &str) -> String {
    let logo = look
        .logo
        .as_ref()
        .map(|logo| format!("<img src=\"{}\" alt=\"\">", escape(&logo.src)))
        .unwrap_or_default();
    let footer = look
        .footer
        .as_deref()
        .map(|footer| format!("<footer>{}</footer>", escape(footer)))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{heading}</title>\
<style>{style}</style></head><body><main>{logo}<h1>{heading}</h1>{content}{footer}</main></body></html>",
        heading = escape(heading),
        style = look.stylesheet,
    )
}

fn html(status: u16, body: String, policy: String) -> Response {
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
        let response = login_page(&LoginPageLook::default(), 200, &page);
        let body = String::from_utf8(response.body.clone()).unwrap();
        for raw in ["<script>", "a\"b", "h'1", "<u>", "<b>"] {
            assert!(!body.contains(raw), "{raw} was not escaped");
        }
        assert!(body.contains("&lt;script&gt;") && body.contains("a&quot;b") && body.contains("h&#39;1"));
        assert!(!body.contains("<script"), "no script at all");
        assert_eq!(response.header("cache-control"), Some("no-store"));
        let default_policy = format!(
            "default-src 'none'; style-src {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            LoginPageLook::default().style_source
        );
        assert_eq!(response.header("content-security-policy"), Some(default_policy.as_str()));
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
        let body = String::from_utf8(login_page(&LoginPageLook::default(), 200, &page).body).unwrap();
        assert!(body.contains("sent back to <strong>https://shop.example</strong>"), "{body}");
        let hostile = LoginPage { redirect_origin: Some("https://a<b>\"c"), ..page };
        let body = String::from_utf8(login_page(&LoginPageLook::default(), 200, &hostile).body).unwrap();
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
            let policy = policy(&LoginPageLook::default(), origin);
            assert!(policy.contains(expected), "{origin:?}: {policy}");
            assert!(policy.contains("frame-ancestors 'none'"), "{origin:?}");
        }
    }

    /// A page as the authorization endpoint shows it for a two-scope request.
    fn demo_page(message: Option<&str>) -> LoginPage<'_> {
        LoginPage {
            action: "/authorize",
            application: "Demo console",
            scopes: vec!["orders:read", "orders:write"],
            handle: "aGFuZGxlLWFzLWxvbmctYXMtYS1yZWFsLW9uZS1pcy1hYm91dC10d28taHVuZHJlZC1ieXRlcy1sb25nLXdpdGgtaXRzLW1hYy1hbmQtZXhwaXJ5LWFuZC10aGUtcmVxdWVzdC1zZWFsZWQtaW4taXQtYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo",
            redirect_origin: Some("http://127.0.0.1:8080"),
            username: "",
            message,
        }
    }

    /// The `<style>` element's text and the `style-src` hash the header allows, as a browser
    /// reads them (CSP Level 3 `hash-source`, §2.3.1: the hash of the element's exact text, UTF-8).
    fn style_and_allowed_hash(response: &Response) -> (String, String) {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine;
        use sha2::{Digest, Sha256};
        let body = String::from_utf8(response.body.clone()).unwrap();
        let style = body.split("<style>").nth(1).unwrap().split("</style>").next().unwrap();
        assert_eq!(body.matches("<style").count(), 1, "one style element");
        let computed = format!("'sha256-{}'", STANDARD.encode(Sha256::digest(style.as_bytes())));
        let policy = response.header("content-security-policy").unwrap();
        let allowed = policy.split(';').find_map(|d| d.trim().strip_prefix("style-src ")).unwrap();
        (computed, allowed.to_owned())
    }

    #[test]
    fn the_policy_allows_the_pages_own_stylesheet_by_its_hash_and_nothing_inline() {
        let accents = [None, Some("#0a7f3c"), Some("#fc0")];
        for accent in accents {
            let config = match accent {
                Some(accent) => format!(r##"{{"accent_color":"{accent}"}}"##),
                None => "{}".to_owned(),
            };
            let look = crate::config::Config::from_json(
                format!(r#"{{"applications":[{{"consumer_key":"k","consumer_secret":"s"}}],"login_page":{config}}}"#)
                    .as_bytes(),
            )
            .unwrap()
            .login_page;
            for response in [login_page(&look, 200, &demo_page(None)), error_page(&look, 400, "No.")] {
                let (computed, allowed) = style_and_allowed_hash(&response);
                assert_eq!(computed, allowed, "{accent:?}: the header allows the page's exact stylesheet");
                let policy = response.header("content-security-policy").unwrap();
                assert!(!policy.contains("unsafe-inline") && !policy.contains("img-src"), "{policy}");
                assert!(
                    policy.contains("base-uri 'none'") && policy.contains("default-src 'none'"),
                    "{policy}"
                );
            }
        }
    }

    #[test]
    fn the_default_page_stays_under_four_kilobytes() {
        for message in [None, Some("The username or password is wrong.")] {
            let response = login_page(&LoginPageLook::default(), 400, &demo_page(message));
            assert!(response.body.len() < 4096, "{message:?}: {} bytes", response.body.len());
        }
    }

    #[test]
    fn the_operators_title_logo_and_footer_are_escaped_and_the_logo_allowed_by_origin() {
        let look = crate::config::Config::from_json(
            br#"{"applications":[{"consumer_key":"k","consumer_secret":"s"}],"login_page":{
                "title":"Acme <Bank>","logo":"https://cdn.example/l.svg?a=1&b=2","footer":"\u00a9 Acme & \"Co\""}}"#,
        )
        .unwrap()
        .login_page;
        for response in [login_page(&look, 200, &demo_page(None)), error_page(&look, 400, "No.")] {
            let body = String::from_utf8(response.body.clone()).unwrap();
            assert!(body.contains("<img src=\"https://cdn.example/l.svg?a=1&amp;b=2\" alt=\"\">"), "{body}");
            assert!(body.contains("<footer>\u{a9} Acme &amp; &quot;Co&quot;</footer>"), "{body}");
            assert!(!body.contains("<Bank>"), "{body}");
            let policy = response.header("content-security-policy").unwrap();
            assert!(policy.contains("; img-src https://cdn.example; "), "{policy}");
        }
        let page = String::from_utf8(login_page(&look, 200, &demo_page(None)).body).unwrap();
        assert!(
            page.contains("<title>Acme &lt;Bank&gt;</title>") && page.contains("<h1>Acme &lt;Bank&gt;</h1>")
        );
    }

    #[test]
    fn labels_name_their_inputs_and_the_destination_sits_with_the_client_name() {
        let body =
            String::from_utf8(login_page(&LoginPageLook::default(), 200, &demo_page(None)).body).unwrap();
        for field in ["username", "password"] {
            assert!(
                body.contains(&format!("<label for=\"{field}\">"))
                    && body.contains(&format!("id=\"{field}\""))
            );
        }
        assert!(body.contains(
            "<p><strong>Demo console</strong> wants to access your account. You will be sent back to \
<strong>http://127.0.0.1:8080</strong>.</p>"
        ));
    }
}
