//! The login page's look, compiled once from the `login_page` section: its title, logo, footer,
//! its stylesheet with the operator's accent colour in it, and that stylesheet's CSP hash.
//!
//! The page's `Content-Security-Policy` allows its one inline `<style>` by hash (CSP Level 3
//! §2.3.1 `hash-source`), never `'unsafe-inline'`. The accent colour is part of the CSS, so the
//! hash depends on the config: it is computed here, at configure time, not per request.
//! Nothing from a request reaches the CSS.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::error::{problem, ConfigError};
use super::raw::RawLoginPage;

/// The default accent, `#2563eb`: white text on it has a contrast of 5.2:1 (WCAG 2.2 §1.4.3
/// asks 4.5:1).
const DEFAULT_ACCENT: Rgb = Rgb(0x25, 0x63, 0xeb);
const DEFAULT_TITLE: &str = "Sign in";
const MAX_TITLE_CHARS: usize = 100;
const MAX_FOOTER_CHARS: usize = 300;
/// A logo inlined as a data URI travels in every login page: keep it small.
const MAX_LOGO_DATA_URI_BYTES: usize = 8192;
const MAX_LOGO_URL_BYTES: usize = 2048;
/// The image types a logo may be (`data:<type>;base64,…`); an SVG shown by `<img>` runs no
/// script (browsers render images in the SVG Integration spec's "secure animated mode").
const LOGO_TYPES: [&str; 4] = ["image/png", "image/svg+xml", "image/jpeg", "image/webp"];

/// What the login and error pages look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPageLook {
    /// The page's `<title>` and heading (plain text: escaped where it is written).
    pub title: String,
    pub logo: Option<Logo>,
    /// A line under the form (plain text: escaped where it is written).
    pub footer: Option<String>,
    /// The exact text of the page's `<style>` element.
    pub stylesheet: String,
    /// `'sha256-…'`: the CSP `style-src` source that allows exactly `stylesheet`.
    pub style_source: String,
}

/// An image shown above the heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    /// The `<img src>` (a data URI or an https URL; escaped where it is written).
    pub src: String,
    /// The CSP `img-src` source that allows it: `data:` or the URL's `https://host[:port]`.
    pub source: String,
}

impl Default for LoginPageLook {
    fn default() -> Self {
        look(DEFAULT_TITLE.to_owned(), None, None, DEFAULT_ACCENT)
    }
}

/// The `login_page` section, checked field by field.
pub(super) fn login_page(raw: RawLoginPage) -> Result<LoginPageLook, ConfigError> {
    let title = match raw.title {
        Some(title) => plain_text("login_page.title", title, MAX_TITLE_CHARS)?,
        None => DEFAULT_TITLE.to_owned(),
    };
    let footer =
        raw.footer.map(|footer| plain_text("login_page.footer", footer, MAX_FOOTER_CHARS)).transpose()?;
    let logo = raw.logo.map(logo).transpose()?;
    let accent = match raw.accent_color {
        Some(text) => Rgb::parse(&text).ok_or_else(|| {
            problem("login_page.accent_color", "must be #rgb or #rrggbb (hexadecimal digits)")
        })?,
        None => DEFAULT_ACCENT,
    };
    Ok(look(title, logo, footer, accent))
}

fn look(title: String, logo: Option<Logo>, footer: Option<String>, accent: Rgb) -> LoginPageLook {
    let stylesheet = stylesheet(accent);
    let style_source = format!("'sha256-{}'", STANDARD.encode(Sha256::digest(stylesheet.as_bytes())));
    LoginPageLook { title, logo, footer, stylesheet, style_source }
}

/// Text shown as is: not empty, not too long, no control character (a line break or a
/// bidirectional override in a title is a way to mislead, never a need).
fn plain_text(at: &str, text: String, max_chars: usize) -> Result<String, ConfigError> {
    if text.trim().is_empty() {
        return Err(problem(at, "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(problem(at, format!("must be at most {max_chars} characters")));
    }
    if text.chars().any(|c| {
        c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)
    }) {
        return Err(problem(at, "must not contain control or bidirectional formatting characters"));
    }
    Ok(text)
}

/// `data:image/<png|svg+xml|jpeg|webp>;base64,<base64>` up to [`MAX_LOGO_DATA_URI_BYTES`], or an
/// `https://host[:port]/path` URL whose origin the CSP can name as a source.
fn logo(src: String) -> Result<Logo, ConfigError> {
    const AT: &str = "login_page.logo";
    if let Some(data) = src.strip_prefix("data:") {
        if src.len() > MAX_LOGO_DATA_URI_BYTES {
            return Err(problem(AT, format!("a data URI must be at most {MAX_LOGO_DATA_URI_BYTES} bytes")));
        }
        let (media_type, payload) = data.split_once(";base64,").unwrap_or(("", ""));
        if !LOGO_TYPES.contains(&media_type) {
            return Err(problem(
                AT,
                "a data URI must be data:image/png, image/svg+xml, image/jpeg or image/webp;base64,…",
            ));
        }
        if payload.is_empty() || STANDARD.decode(payload).is_err() {
            return Err(problem(AT, "a data URI's payload must be standard base64"));
        }
        return Ok(Logo { src, source: "data:".to_owned() });
    }
    let Some(rest) = src.strip_prefix("https://") else {
        return Err(problem(AT, "must be a data:image/… URI or an https:// URL"));
    };
    if src.len() > MAX_LOGO_URL_BYTES {
        return Err(problem(AT, format!("a URL must be at most {MAX_LOGO_URL_BYTES} bytes")));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at_checked(authority_end).unwrap_or((rest, ""));
    // A host-source (CSP Level 3 §2.3.1): no userinfo, wildcard, space, `;` or `,` that a
    // policy would read as another source or directive.
    let plain_host = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']');
    if authority.is_empty() || !authority.bytes().all(plain_host) {
        return Err(problem(AT, "a URL's host must be a plain host[:port], without user info or wildcard"));
    }
    let url_byte = |b: u8| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`');
    if !path.bytes().all(url_byte) {
        return Err(problem(AT, "a URL must be printable ASCII without quotes, angle brackets or spaces"));
    }
    Ok(Logo { source: format!("https://{authority}"), src })
}

/// An sRGB colour, from `#rgb` or `#rrggbb` only: it is written into the CSS, so nothing else
/// (no name, function or `;`) can get there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rgb(u8, u8, u8);

impl Rgb {
    fn parse(text: &str) -> Option<Rgb> {
        let hex = text.strip_prefix('#')?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let channel = |digits: &str| u8::from_str_radix(digits, 16).ok();
        match hex.len() {
            3 => {
                let short = |i: usize| hex.get(i..=i).and_then(channel).map(|v| v.saturating_mul(17));
                Some(Rgb(short(0)?, short(1)?, short(2)?))
            }
            6 => Some(Rgb(channel(hex.get(0..2)?)?, channel(hex.get(2..4)?)?, channel(hex.get(4..6)?)?)),
            _ => None,
        }
    }

    /// Relative luminance (WCAG 2.2, "relative luminance").
    fn luminance(self) -> f64 {
        let linear = |v: u8| {
            let c = f64::from(v) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                let x = (c + 0.055) / 1.055;
                x * x * two_fifths_power(x)
            }
        };
        0.2126 * linear(self.0) + 0.7152 * linear(self.1) + 0.0722 * linear(self.2)
    }

    /// White or black, whichever contrasts more with this colour: at least 4.5:1 for any
    /// accent (WCAG 2.2 §1.4.3; the better of the two is never below 4.58:1).
    fn text_on(self) -> &'static str {
        let luminance = self.luminance();
        let with_white = 1.05 / (luminance + 0.05);
        let with_black = (luminance + 0.05) / 0.05;
        if with_white >= with_black {
            "#fff"
        } else {
            "#000"
        }
    }
}

/// `x^(2/5)` for `x` in `[0.05, 1]`, by Newton's method on `y^5 = x^2` from `y = 1` (which
/// converges from above): `f64::powf` would link libm's `pow` into the filter, about 7 KB of
/// wasm, for one number per configuration.
fn two_fifths_power(x: f64) -> f64 {
    let target = x * x;
    let mut y = 1.0_f64;
    for _ in 0..24 {
        let y4 = y * y * y * y;
        y -= (y4 * y - target) / (5.0 * y4);
    }
    y
}

impl std::fmt::Display for Rgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// A centered card in the system font; light or dark as the system is (`prefers-color-scheme`),
/// narrower margins on a narrow screen; a focus ring in the text colour, which contrasts with
/// the card whatever the accent. Text meets WCAG 2.2 §1.4.3 (4.5:1) and input borders §1.4.11
/// (3:1) on their backgrounds in both schemes.
fn stylesheet(accent: Rgb) -> String {
    let on_accent = accent.text_on();
    format!(
        ":root{{color-scheme:light dark;--a:{accent};--o:{on_accent};--b:#f3f4f6;--c:#fff;--f:#111827;--m:#4b5563;--l:#d1d5db}}\
@media(prefers-color-scheme:dark){{:root{{--b:#0b0f19;--c:#161b26;--f:#f3f4f6;--m:#a1a9b8;--l:#3b4452}}}}\
*{{box-sizing:border-box}}\
body{{margin:0;min-height:100vh;display:grid;place-items:center;padding:1rem;background:var(--b);color:var(--f);font:16px/1.5 system-ui,sans-serif}}\
main{{width:100%;max-width:24rem;background:var(--c);border:1px solid var(--l);border-radius:12px;padding:2rem;overflow-wrap:anywhere}}\
h1{{font-size:1.4rem;margin:0 0 1rem}}\
img{{display:block;max-width:100%;max-height:3rem;margin-bottom:1rem}}\
p,ul{{margin:.5rem 0;color:var(--m)}}\
strong{{color:var(--f)}}\
label{{display:block;margin:1rem 0 .3rem;font-weight:600}}\
input,button{{width:100%;padding:.6rem;font:inherit;border-radius:6px}}\
input{{color:inherit;background:none;border:1px solid var(--m)}}\
button{{margin-top:1.5rem;font-weight:600;border:0;background:var(--a);color:var(--o)}}\
:focus-visible{{outline:3px solid var(--f);outline-offset:2px}}\
.error{{color:#991b1b;background:#fef2f2;padding:.5rem}}\
footer{{margin-top:1.5rem;font-size:.85rem;color:var(--m);text-align:center}}\
@media(max-width:30rem){{body{{padding:.5rem}}main{{padding:1.25rem}}}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(
        title: Option<&str>,
        logo: Option<&str>,
        accent: Option<&str>,
        footer: Option<&str>,
    ) -> RawLoginPage {
        RawLoginPage {
            title: title.map(str::to_owned),
            logo: logo.map(str::to_owned),
            accent_color: accent.map(str::to_owned),
            footer: footer.map(str::to_owned),
        }
    }

    #[test]
    fn the_accent_colour_is_hex_only_since_it_is_written_into_the_css() {
        struct Case {
            name: &'static str,
            accent: &'static str,
            written: Option<&'static str>,
        }
        let cases = [
            Case { name: "#rrggbb", accent: "#0A7f3c", written: Some("--a:#0a7f3c;") },
            Case { name: "#rgb, each digit doubled", accent: "#f80", written: Some("--a:#ff8800;") },
            Case { name: "a CSS name", accent: "red", written: None },
            Case { name: "no hash", accent: "0a7f3c", written: None },
            Case { name: "#rrggbbaa", accent: "#0a7f3cff", written: None },
            Case { name: "four digits", accent: "#0a7f", written: None },
            Case { name: "a declaration smuggled in", accent: "#fff;}body{display:none", written: None },
            Case { name: "a function", accent: "rgb(1,2,3)", written: None },
            Case { name: "not hexadecimal", accent: "#ggg", written: None },
            Case { name: "non-ASCII digits", accent: "#１２３", written: None },
            Case { name: "empty", accent: "", written: None },
        ];
        for case in cases {
            match (login_page(raw(None, None, Some(case.accent), None)), case.written) {
                (Ok(look), Some(written)) => assert!(look.stylesheet.contains(written), "{}", case.name),
                (Err(error), None) => {
                    assert!(error.0.starts_with("login_page.accent_color:"), "{}: {error}", case.name);
                    assert!(
                        !error.0.contains(case.accent) || case.accent.is_empty(),
                        "{}: echoed",
                        case.name
                    );
                }
                (outcome, _) => panic!("{}: {:?}", case.name, outcome.map(|look| look.stylesheet)),
            }
        }
    }

    #[test]
    fn text_on_the_accent_is_white_or_black_whichever_contrasts_more() {
        let contrast = |a: f64, b: f64| (a.max(b) + 0.05) / (a.min(b) + 0.05);
        // Every grey (the tie between white and black text is near #767676), and some colours.
        let greys = (0..=255u8).map(|v| Rgb(v, v, v).to_string());
        let colours =
            ["#2563eb", "#ffff00", "#0a7f3c", "#76a", "#fc0", "#f00", "#0f0", "#00f"].map(str::to_owned);
        for accent in greys.chain(colours) {
            let rgb = Rgb::parse(&accent).unwrap();
            let text = Rgb::parse(rgb.text_on()).unwrap();
            let ratio = contrast(rgb.luminance(), text.luminance());
            assert!(ratio >= 4.5, "{accent} with {}: {ratio:.2}:1", rgb.text_on());
        }
        assert_eq!(Rgb::parse("#ffff00").unwrap().text_on(), "#000");
        assert_eq!(DEFAULT_ACCENT.text_on(), "#fff");
        assert_eq!(Rgb::parse("#2563eb"), Some(DEFAULT_ACCENT));
    }

    #[test]
    fn luminance_without_libm_matches_the_wcag_formula() {
        for v in 0..=255u8 {
            let c = f64::from(v) / 255.0;
            let wcag = if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) };
            let ours = Rgb(v, v, v).luminance();
            assert!((ours - wcag).abs() < 1e-12, "{v}: {ours} against {wcag}");
        }
    }

    #[test]
    fn the_style_hash_is_over_the_exact_stylesheet_and_follows_the_accent() {
        let default = LoginPageLook::default();
        assert_eq!(login_page(raw(None, None, None, None)).unwrap(), default);
        let expected = format!("'sha256-{}'", STANDARD.encode(Sha256::digest(default.stylesheet.as_bytes())));
        assert_eq!(default.style_source, expected);
        let green = login_page(raw(None, None, Some("#0a7f3c"), None)).unwrap();
        assert_ne!(green.style_source, default.style_source, "the accent is in the CSS, so in the hash");
        assert!(!default.stylesheet.contains("</"), "nothing in the CSS can close the <style> element");
    }

    #[test]
    fn a_logo_is_a_small_image_data_uri_or_an_https_url_the_csp_can_name() {
        let big = format!("data:image/png;base64,{}", "A".repeat(MAX_LOGO_DATA_URI_BYTES));
        struct Case<'c> {
            name: &'c str,
            logo: &'c str,
            source: Option<&'c str>,
        }
        let cases = [
            Case { name: "png data URI", logo: "data:image/png;base64,iVBORw0KGgo=", source: Some("data:") },
            Case { name: "svg data URI", logo: "data:image/svg+xml;base64,PHN2Zy8+", source: Some("data:") },
            Case {
                name: "https URL",
                logo: "https://cdn.example/logo.svg",
                source: Some("https://cdn.example"),
            },
            Case {
                name: "https URL with a port",
                logo: "https://cdn.example:8443/a.png?v=2",
                source: Some("https://cdn.example:8443"),
            },
            Case { name: "too big", logo: &big, source: None },
            Case { name: "html data URI", logo: "data:text/html;base64,PHNjcmlwdD4=", source: None },
            Case { name: "not base64", logo: "data:image/svg+xml,<svg onload=x>", source: None },
            Case { name: "bad base64", logo: "data:image/png;base64,***", source: None },
            Case { name: "plain http", logo: "http://cdn.example/logo.png", source: None },
            Case { name: "javascript", logo: "javascript:alert(1)", source: None },
            Case { name: "user info", logo: "https://user@cdn.example/logo.png", source: None },
            Case { name: "wildcard", logo: "https://*.example/logo.png", source: None },
            Case { name: "a second CSP source", logo: "https://a.example;script-src/x", source: None },
            Case { name: "a quote", logo: "https://cdn.example/\"onerror=x", source: None },
            Case { name: "no host", logo: "https:///logo.png", source: None },
        ];
        for case in cases {
            match (login_page(raw(None, Some(case.logo), None, None)), case.source) {
                (Ok(look), Some(source)) => {
                    let logo = look.logo.unwrap();
                    assert_eq!(
                        (logo.src.as_str(), logo.source.as_str()),
                        (case.logo, source),
                        "{}",
                        case.name
                    );
                }
                (Err(error), None) => {
                    assert!(error.0.starts_with("login_page.logo:"), "{}: {error}", case.name)
                }
                (outcome, _) => panic!("{}: {:?}", case.name, outcome.map(|look| look.logo)),
            }
        }
    }

    #[test]
    fn titles_and_footers_are_short_plain_text() {
        let look = login_page(raw(Some("Acme <Bank>"), None, None, Some("© Acme & Co"))).unwrap();
        assert_eq!((look.title.as_str(), look.footer.as_deref()), ("Acme <Bank>", Some("© Acme & Co")));
        let long = "x".repeat(MAX_FOOTER_CHARS + 1);
        let refused = [
            (raw(Some(""), None, None, None), "login_page.title:"),
            (raw(Some("a\nb"), None, None, None), "login_page.title:"),
            (raw(Some("bank\u{202e}evil"), None, None, None), "login_page.title:"),
            (raw(None, None, None, Some(&long)), "login_page.footer:"),
            (raw(None, None, None, Some("  ")), "login_page.footer:"),
        ];
        for (section, at) in refused {
            let error = login_page(section).unwrap_err();
            assert!(error.0.starts_with(at), "{error}");
        }
    }
}
