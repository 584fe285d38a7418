//! The browser's side of the authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636,
//! RFC 9207): the verifier and its challenge, the URL that sends the user to `/authorize`, and
//! the checks on the redirect that comes back.
//!
//! Pure: the random bytes come in as arguments (the package draws them from
//! `crypto.getRandomValues`), so the same code runs natively in tests. The challenge is the
//! gateway's own [`pkce::s256`], so the two cannot compute it differently.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use subtle::ConstantTimeEq;

use crate::oauth::form::FormParams;
use crate::oauth::messages::ErrorResponse;
use crate::oauth::pkce::{self, S256};
use crate::oauth::redirect_uri::{self, ApplicationType};
use crate::oauth::scope::{ScopeSet, MALFORMED_SCOPE};

/// Random bytes behind one verifier or one `state`: 256 bits, 43 base64url characters
/// (RFC 7636 §4.1 recommends 32 octets; RFC 9700 §4.7.1 wants `state` unguessable).
pub const RANDOM_BYTES: usize = 32;

/// Unreserved characters stay; everything else is percent-encoded in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Why a sign-in step fails on the client, before or after the trip to `/authorize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// A required input is missing or empty.
    MissingParameter(&'static str),
    /// A code verifier outside RFC 7636 §4.1's grammar (43-128 of `A-Z a-z 0-9 - . _ ~`).
    MalformedCodeVerifier,
    /// A redirect URI the gateway would refuse to register (not https, nor http on a
    /// loopback IP literal; a fragment, a wildcard, a space).
    MalformedRedirectUri,
    /// An authorization endpoint with a fragment, or none at all.
    MalformedEndpoint,
    /// A `scope` that is not scope-tokens separated by single spaces.
    MalformedScope,
    /// The callback URL's query cannot be read (a repeated parameter, bad percent-encoding).
    MalformedCallback,
    /// The callback's `state` is missing or not the one this sign-in sent: another site's
    /// redirect (CSRF, RFC 6749 §10.12), or a stale tab.
    StateMismatch,
    /// The callback's `iss` is missing or not the expected issuer (RFC 9207 §2.4: a mix-up).
    IssuerMismatch,
    /// The server's own error, redirected back (RFC 6749 §4.1.2.1).
    Server(ErrorResponse),
}

impl SignInError {
    pub fn code(&self) -> &str {
        match self {
            SignInError::MissingParameter(_) => "missing_parameter",
            SignInError::MalformedCodeVerifier => "malformed_code_verifier",
            SignInError::MalformedRedirectUri => "malformed_redirect_uri",
            SignInError::MalformedEndpoint => "malformed_endpoint",
            SignInError::MalformedScope => "malformed_scope",
            SignInError::MalformedCallback => "malformed_callback",
            SignInError::StateMismatch => "state_mismatch",
            SignInError::IssuerMismatch => "issuer_mismatch",
            SignInError::Server(response) => &response.error,
        }
    }

    /// A sentence for people. Never contains a code, a verifier or a `state`.
    pub fn message(&self) -> String {
        match self {
            SignInError::MissingParameter(what) => format!("{what} is required"),
            SignInError::MalformedCodeVerifier => {
                "a code verifier is 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)".to_owned()
            }
            SignInError::MalformedRedirectUri => "the redirect URI must be https, or http on 127.0.0.1 or \
                 [::1], without a fragment, wildcard or space"
                .to_owned(),
            SignInError::MalformedEndpoint => {
                "the authorization endpoint must be a URL without a fragment".to_owned()
            }
            SignInError::MalformedScope => MALFORMED_SCOPE.to_owned(),
            SignInError::MalformedCallback => {
                "the callback URL's query is malformed (a repeated parameter or bad percent-encoding)"
                    .to_owned()
            }
            SignInError::StateMismatch => {
                "the callback's state is not the one this sign-in sent: ignore it and sign in again"
                    .to_owned()
            }
            SignInError::IssuerMismatch => {
                "the callback's iss is not the expected issuer (RFC 9207): ignore it".to_owned()
            }
            SignInError::Server(response) => response.refusal(),
        }
    }
}

/// A PKCE pair: the verifier the app keeps, the challenge it sends (RFC 7636 §4.1-4.2).
/// Deliberately not `Debug`: the verifier is a secret until the code is redeemed.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    /// A verifier made of `random` (base64url, 43 characters) and its `S256` challenge.
    pub fn from_random(random: &[u8; RANDOM_BYTES]) -> Pkce {
        let verifier = URL_SAFE_NO_PAD.encode(random);
        Pkce { challenge: pkce::s256(&verifier), verifier }
    }

    /// The challenge of a verifier the app made itself, once its grammar is checked.
    pub fn from_verifier(verifier: &str) -> Result<Pkce, SignInError> {
        if !pkce::is_valid_verifier(verifier) {
            return Err(SignInError::MalformedCodeVerifier);
        }
        Ok(Pkce { verifier: verifier.to_owned(), challenge: pkce::s256(verifier) })
    }
}

/// A random `state` value.
pub fn state_from_random(random: &[u8; RANDOM_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// What the app supplies to start a sign-in. Empty strings count as absent.
#[derive(Default, Clone, Copy)]
pub struct AuthorizationInput<'a> {
    pub authorization_endpoint: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    /// Space-separated; absent or empty: the application's default.
    pub scope: Option<&'a str>,
    /// OpenID Connect Core §3.1.2.1: a value the ID token must carry back, binding it to this
    /// sign-in (replay protection); left out when absent or empty. A server without OpenID
    /// Connect ignores it (RFC 6749 §3.1: unrecognized parameters are ignored).
    pub nonce: Option<&'a str>,
}

/// The URL to send the user to, and what the app must keep until the callback (in
/// `sessionStorage`, say): the `state` to compare and the verifier to redeem the code with.
/// Deliberately not `Debug`: it holds the verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub code_verifier: String,
    pub redirect_uri: String,
}

fn present<'a>(value: Option<&'a str>, what: &'static str) -> Result<&'a str, SignInError> {
    value.filter(|value| !value.is_empty()).ok_or(SignInError::MissingParameter(what))
}

/// RFC 6749 §4.1.1 with RFC 7636 §4.3: `response_type=code`, `client_id`, `redirect_uri`,
/// `scope`, `state`, `code_challenge` and `code_challenge_method=S256` (and OpenID Connect's
/// `nonce` when given), added to the
/// endpoint's own query if it has one (§3.1: it must be kept).
pub fn authorization_request(
    input: &AuthorizationInput,
    pkce: Pkce,
    state: String,
) -> Result<AuthorizationRequest, SignInError> {
    let endpoint = present(input.authorization_endpoint, "the authorization endpoint")?;
    if endpoint.contains('#') {
        return Err(SignInError::MalformedEndpoint);
    }
    let client_id = present(input.client_id, "the client id")?;
    let redirect = present(input.redirect_uri, "the redirect URI")?;
    // The browser package and the CLI check as for a web client: what any client may use.
    redirect_uri::check_registered(redirect, ApplicationType::Web)
        .map_err(|_| SignInError::MalformedRedirectUri)?;
    let scope = match input.scope.filter(|scope| !scope.is_empty()) {
        Some(text) => Some(ScopeSet::parse(text).map_err(|_| SignInError::MalformedScope)?.to_string()),
        None => None,
    };
    let mut url = endpoint.to_owned();
    if !endpoint.contains('?') {
        url.push('?');
    } else if !endpoint.ends_with(['?', '&']) {
        url.push('&');
    }
    let params = [
        ("response_type", Some("code")),
        ("client_id", Some(client_id)),
        ("redirect_uri", Some(redirect)),
        ("scope", scope.as_deref()),
        ("state", Some(state.as_str())),
        ("code_challenge", Some(pkce.challenge.as_str())),
        ("code_challenge_method", Some(S256)),
        ("nonce", input.nonce.filter(|nonce| !nonce.is_empty())),
    ];
    for (index, (name, value)) in
        params.iter().filter_map(|(name, value)| Some((*name, (*value)?))).enumerate()
    {
        if index > 0 {
            url.push('&');
        }
        url.push_str(name);
        url.push('=');
        url.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
    Ok(AuthorizationRequest { url, state, code_verifier: pkce.verifier, redirect_uri: redirect.to_owned() })
}

/// A callback that carries a code. Deliberately not `Debug`: it holds the code.
#[derive(Clone, PartialEq, Eq)]
pub struct Callback {
    pub code: String,
    pub state: String,
    /// The issuer that sent it (RFC 9207), when the server says.
    pub issuer: Option<String>,
}

/// Reads the redirect back (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 §2.4), in this order:
/// the query must parse; its `state` must be `expected_state` (else nothing in it is trusted,
/// not even an error); with `expected_issuer`, `iss` must be present and equal; then an
/// `error` becomes [`SignInError::Server`], and otherwise there must be a `code`.
pub fn parse_callback(
    url: &str,
    expected_state: &str,
    expected_issuer: Option<&str>,
) -> Result<Callback, SignInError> {
    let without_fragment = url.split('#').next().unwrap_or_default();
    let query = without_fragment.split_once('?').map(|(_, query)| query).unwrap_or_default();
    let params = FormParams::parse(query.as_bytes()).map_err(|_| SignInError::MalformedCallback)?;
    let state = params.get("state").unwrap_or_default();
    // Constant time: a state compared byte by byte could be guessed by timing a page that
    // leaks how fast it refused.
    if expected_state.is_empty() || !bool::from(state.as_bytes().ct_eq(expected_state.as_bytes())) {
        return Err(SignInError::StateMismatch);
    }
    let issuer = params.get("iss");
    if let Some(expected) = expected_issuer.filter(|issuer| !issuer.is_empty()) {
        if issuer != Some(expected) {
            return Err(SignInError::IssuerMismatch);
        }
    }
    if let Some(error) = params.get("error") {
        return Err(SignInError::Server(ErrorResponse {
            error: error.to_owned(),
            error_description: params.get("error_description").map(str::to_owned),
            scope: None,
        }));
    }
    let code = params.get("code").ok_or(SignInError::MissingParameter("the callback's code"))?;
    Ok(Callback { code: code.to_owned(), state: state.to_owned(), issuer: issuer.map(str::to_owned) })
}
