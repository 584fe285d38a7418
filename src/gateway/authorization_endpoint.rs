//! The authorization endpoint (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 9207): `GET /authorize`
//! checks the request and serves the login page; `POST /authorize` (that page's form) checks
//! the password and redirects back with a code.
//!
//! Until the client and its redirect URI are known good, every error is a page here, never a
//! redirect (§4.1.2.1). After that, errors go back to the client with `error`, `state` and
//! `iss`. PKCE `S256` is required of every client, public or confidential.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::login_page::{error_page, login_page, redirect, LoginPage};
use super::reply::{ErrorKind, Response};
use super::{split_path, EndpointRequest, Gateway};
use crate::config::{Application, AuthorizationConfig};
use crate::oauth::form::FormParams;
use crate::oauth::grant_type::GrantType;
use crate::oauth::openid::{check_max_age, is_openid, Prompt, PromptError};
use crate::oauth::pkce::{ChallengeError, CodeChallenge};
use crate::oauth::redirect_uri;
use crate::oauth::resource_indicator::Audience;
use crate::oauth::scope::ScopeSet;
use crate::state::authorization::Ticket;
use crate::state::lockout::client_address;
use crate::state::login_handle::OpenedHandle;

/// The longest `state` kept and echoed.
const MAX_STATE_BYTES: usize = 512;

/// Unreserved characters stay; everything else is percent-encoded in the redirect's query.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Where errors and codes go once the client and redirect URI are verified.
struct Callback<'r> {
    redirect_uri: &'r str,
    state: Option<&'r str>,
}

impl<'a> Gateway<'a> {
    pub(super) fn authorize_endpoint(&self, request: &EndpointRequest) -> Response {
        let Some(flow) = &self.config.authorization else {
            return self.error_page(404, "There is no sign-in here.");
        };
        match request.method {
            "GET" | "HEAD" => self.authorization_request(flow, request),
            "POST" => self.sign_in(flow, request),
            _ => {
                let mut response = self.error_page(405, "Use GET or POST.");
                response.headers.push(("allow", "GET, HEAD, POST".to_owned()));
                response
            }
        }
    }

    /// `GET /authorize?...`: the login page, an error page, or a redirect with the error.
    fn authorization_request(&self, flow: &AuthorizationConfig, request: &EndpointRequest) -> Response {
        let (_, query) = split_path(request.path);
        let Ok(params) = FormParams::parse(query.unwrap_or_default().as_bytes()) else {
            return self.error_page(
                400,
                "The sign-in request is malformed (a parameter is repeated or badly encoded).",
            );
        };
        // A configured application, or a registered one (one shared-data read).
        let found = params.get("client_id").map_or(Ok(None), |id| self.application_in_use(id));
        let app = match found {
            Ok(Some(app)) if app.grant_types.contains(GrantType::AuthorizationCode) => app,
            Ok(_) => {
                return self.error_page(400, "The application is unknown or may not ask you to sign in.")
            }
            Err(_) => return self.error_page(503, "Signing in is unavailable; try again later."),
        };
        let Some(redirect_uri) = verified_redirect_uri(&app, params.get("redirect_uri")) else {
            return self.error_page(400, "The redirect URI is not registered for this application.");
        };
        let state = params.get("state");
        if state.is_some_and(|state| state.len() > MAX_STATE_BYTES) {
            let callback = Callback { redirect_uri, state: None };
            return self.redirect_error(&callback, "invalid_request", "state is too long");
        }
        let callback = Callback { redirect_uri, state };
        let prompt = match check_openid_request(&params) {
            Ok(prompt) => prompt,
            Err((code, description)) => return self.redirect_error(&callback, code, description),
        };
        match self.check_authorization_request(&app, &params) {
            // Core §3.1.2.1: the user may not be asked, and no session could sign them in.
            Ok(_) if prompt == Prompt::None => {
                self.redirect_error(&callback, "login_required", "prompt=none: there is no sign-in session")
            }
            Ok((scope, challenge, audience)) => {
                let ticket = Ticket {
                    audience,
                    client_id: app.consumer_key.clone(),
                    redirect_uri: redirect_uri.to_owned(),
                    scope: scope.to_string(),
                    state: state.map(str::to_owned),
                    challenge: challenge.as_str().to_owned(),
                    username: String::new(),
                    nonce: params.get("nonce").map(str::to_owned),
                    auth_time: None,
                };
                let form = LoginForm { ticket: &ticket, expires_at: None, username: "", message: None };
                self.login_page_for(flow, &app, &form, 200)
                    .unwrap_or_else(|code| self.redirect_error(&callback, code, "try again later"))
            }
            Err((code, description)) => self.redirect_error(&callback, code, description),
        }
    }

    /// The checks whose failure goes back to the client: response type, PKCE, scope.
    fn check_authorization_request(
        &self,
        app: &Application,
        params: &FormParams,
    ) -> Result<(ScopeSet, CodeChallenge, Audience), (&'static str, &'static str)> {
        match params.get("response_type") {
            Some("code") => {}
            Some(_) => return Err(("unsupported_response_type", "only response_type=code is supported")),
            None => return Err(("invalid_request", "response_type is missing")),
        }
        let challenge = CodeChallenge::parse(
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        )
        .map_err(|error| match error {
            ChallengeError::Missing => ("invalid_request", "code_challenge is required (PKCE)"),
            ChallengeError::UnsupportedMethod => ("invalid_request", "code_challenge_method must be S256"),
            ChallengeError::Malformed => ("invalid_request", "code_challenge is malformed"),
        })?;
        let scope = match params.get("scope") {
            Some(text) => ScopeSet::parse(text).map_err(|_| ("invalid_scope", "the scope is malformed"))?,
            None => app.scopes.clone(),
        };
        if !scope.is_subset(&app.scopes) {
            return Err(("invalid_scope", "the scope exceeds what this client may be granted"));
        }
        // RFC 8707 §2.1: the resources travel in the code; `/token` may narrow them.
        let audience =
            self.requested_audience(params).map_err(|error| (error.kind.code(), error.description))?;
        Ok((scope, challenge, audience))
    }

    /// Renders the login page with `form.ticket` sealed into its handle (nothing is stored);
    /// on failure, the RFC 6749 error code to send back.
    fn login_page_for(
        &self,
        flow: &AuthorizationConfig,
        app: &Application,
        form: &LoginForm,
        status: u16,
    ) -> Result<Response, &'static str> {
        let (Some(keys), Ok(now)) = (&self.login_keys, self.now()) else {
            return Err("temporarily_unavailable");
        };
        let expires_at = form.expires_at.unwrap_or_else(|| now.saturating_add(flow.login_lifetime_ms));
        let handle = keys.seal(form.ticket, now, expires_at).map_err(|_| "temporarily_unavailable")?;
        let page = LoginPage {
            action: &flow.endpoint,
            application: &app.name,
            scopes: form.ticket.scope.split(' ').filter(|name| !name.is_empty()).collect(),
            handle: &handle,
            redirect_origin: redirect_uri::destination(&form.ticket.redirect_uri),
            username: form.username,
            message: form.message,
        };
        Ok(login_page(&self.config.login_page, status, &page))
    }

    /// `POST /authorize`: the login form. Its handle's MAC and expiry are checked before
    /// anything else; a wrong password shows the page again for the same request and expiry;
    /// a forged, altered, expired or already used handle ends here.
    fn sign_in(&self, flow: &AuthorizationConfig, request: &EndpointRequest) -> Response {
        let Ok(form) = self.read_form(request) else {
            return self.error_page(400, "The sign-in form is malformed.");
        };
        let (Some(keys), Ok(now)) = (&self.login_keys, self.now()) else {
            return self.error_page(503, "Signing in is unavailable; try again later.");
        };
        let opened = match form.get("handle") {
            Some(handle) => keys.open(handle, now),
            None => Ok(None),
        };
        let opened = match opened {
            Ok(Some(opened)) => opened,
            Ok(None) => return self.expired_page(),
            Err(_) => return self.error_page(503, "Signing in is unavailable; try again later."),
        };
        let app = match self.application(&opened.ticket.client_id) {
            Ok(Some(app)) => app,
            Ok(None) => return self.error_page(400, "The application is no longer known."),
            Err(_) => return self.error_page(503, "Signing in is unavailable; try again later."),
        };
        let username = form.get("username").unwrap_or_default();
        let password = form.get("password").unwrap_or_default();
        let wrong = ErrorKind::InvalidGrant.because("the username or password is wrong");
        let address = client_address(request.client_address.unwrap_or_default());
        let budget = flow.pbkdf2_iterations_per_sec;
        match self.authenticate_user_at_form(username, password, &address, budget, wrong) {
            Ok(user) => self.issue_code(flow, opened, &user.scopes, &user.username),
            Err(error) => {
                let (status, message, retry_after) = match error.kind {
                    ErrorKind::LockedOut { retry_after_secs } => {
                        (429, "Too many failed attempts. Try again later.", Some(retry_after_secs))
                    }
                    ErrorKind::Busy { retry_after_secs } => {
                        (503, "Signing in is busy; try again in a moment.", Some(retry_after_secs))
                    }
                    ErrorKind::Unavailable => (503, "Signing in is unavailable; try again later.", None),
                    _ => (400, "The username or password is wrong.", None),
                };
                let again = LoginForm {
                    ticket: &opened.ticket,
                    expires_at: Some(opened.expires_at),
                    username,
                    message: Some(message),
                };
                let mut page = self.login_page_for(flow, &app, &again, status).unwrap_or_else(|code| {
                    let ticket = &opened.ticket;
                    let callback =
                        Callback { redirect_uri: &ticket.redirect_uri, state: ticket.state.as_deref() };
                    self.redirect_error(&callback, code, "try again later")
                });
                if let Some(secs) = retry_after.filter(|_| page.status == status) {
                    page.headers.push(("retry-after", secs.to_string()));
                }
                page
            }
        }
    }

    /// The user signed in: a code for the scope asked within the user's, back to the client.
    /// The handle is spent first (a handle signs in once), then the code stored.
    fn issue_code(
        &self,
        flow: &AuthorizationConfig,
        opened: OpenedHandle,
        user_scopes: &ScopeSet,
        username: &str,
    ) -> Response {
        let OpenedHandle { ticket, expires_at, tag } = opened;
        let redirect_uri = ticket.redirect_uri.clone();
        let state = ticket.state.clone();
        let callback = Callback { redirect_uri: &redirect_uri, state: state.as_deref() };
        let (Some(table), Ok(now)) = (&self.authorizations, self.now()) else {
            return self.redirect_error(&callback, "temporarily_unavailable", "try again later");
        };
        match table.spend_login(&tag, now, expires_at) {
            Ok(true) => {}
            Ok(false) => return self.expired_page(),
            Err(_) => return self.redirect_error(&callback, "temporarily_unavailable", "try again later"),
        }
        let scope = ScopeSet::from_names(ticket.scope.split(' ').filter(|n| !n.is_empty()))
            .intersection(user_scopes)
            .to_string();
        // Core §2 `auth_time`: now, when the password was checked; kept for `openid` codes only,
        // so the records of other codes keep their bytes of before (docs/upgrading.md).
        let auth_time = is_openid(&scope).then_some(now / 1000);
        let ticket = Ticket { scope, state: None, username: username.to_owned(), auth_time, ..ticket };
        match table.issue_code(ticket, now, now.saturating_add(flow.code_lifetime_ms)) {
            Ok(code) => redirect(self.callback_url(&callback, &[("code", &code)])),
            Err(_) => self.redirect_error(&callback, "temporarily_unavailable", "try again later"),
        }
    }

    /// A page that ends the flow here, in the configured look.
    fn error_page(&self, status: u16, message: &str) -> Response {
        error_page(&self.config.login_page, status, message)
    }

    /// The answer to a login form whose handle is not good: forged, altered, sealed under
    /// another key, expired, or already used for a sign-in.
    fn expired_page(&self) -> Response {
        self.error_page(400, "This sign-in has expired or was already used. Start again.")
    }

    fn redirect_error(&self, callback: &Callback, error: &str, description: &str) -> Response {
        redirect(self.callback_url(callback, &[("error", error), ("error_description", description)]))
    }

    /// The redirect URI with `params`, then `state` and `iss` (RFC 9207), added to its query.
    fn callback_url(&self, callback: &Callback, params: &[(&str, &str)]) -> String {
        let mut url = callback.redirect_uri.to_owned();
        let mut separator = if url.contains('?') { '&' } else { '?' };
        let state = callback.state.map(|state| ("state", state));
        let iss = self.config.issuer.as_deref().map(|iss| ("iss", iss));
        for (name, value) in params.iter().copied().chain(state).chain(iss) {
            url.push(separator);
            url.push_str(name);
            url.push('=');
            url.extend(utf8_percent_encode(value, QUERY_VALUE));
            separator = '&';
        }
        url
    }
}

/// What the login page's form carries: the request sealed into its handle, and what the
/// page shows.
struct LoginForm<'f> {
    ticket: &'f Ticket,
    /// The handle's expiry: kept when the page is shown again, so retries never extend it;
    /// `None` for a new sign-in (now plus the login lifetime).
    expires_at: Option<u64>,
    /// Kept in the username field after a failed attempt (never the password).
    username: &'f str,
    message: Option<&'f str>,
}

/// OpenID Connect's parameters (Core §3.1.2.1), whose errors go back to the client: `prompt`
/// known values only, `max_age` a number, `nonce` no longer than `state` may be. `nonce` is
/// optional: Core requires it for the implicit and hybrid flows only, and this is the code
/// flow. `id_token_hint` is ignored: there is no session for it to name.
fn check_openid_request(params: &FormParams) -> Result<Prompt, (&'static str, &'static str)> {
    let prompt = Prompt::parse(params.get("prompt")).map_err(|PromptError(why)| ("invalid_request", why))?;
    check_max_age(params.get("max_age")).map_err(|PromptError(why)| ("invalid_request", why))?;
    if params.get("nonce").is_some_and(|nonce| nonce.len() > MAX_STATE_BYTES) {
        return Err(("invalid_request", "nonce is too long"));
    }
    Ok(prompt)
}

/// The presented redirect URI when it matches a registered one (a loopback one's port may
/// differ for a native client only); when absent, the only one registered (RFC 6749 §4.1.1,
/// §3.1.2.3).
fn verified_redirect_uri<'r>(app: &'r Application, presented: Option<&'r str>) -> Option<&'r str> {
    match (presented, app.redirect_uris.as_slice()) {
        (Some(presented), registered) => {
            let matching = |uri: &String| redirect_uri::matches(uri, presented, app.application_type);
            registered.iter().any(matching).then_some(presented)
        }
        (None, [only]) => Some(only.as_str()),
        (None, _) => None,
    }
}
