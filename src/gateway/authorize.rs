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
use crate::oauth::pkce::{ChallengeError, CodeChallenge};
use crate::oauth::redirect_uri;
use crate::oauth::scope::ScopeSet;
use crate::state::authorization::{Ticket, TicketError};
use crate::state::lockout::client_address;

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
            return error_page(404, "There is no sign-in here.");
        };
        match request.method {
            "GET" | "HEAD" => self.authorization_request(flow, request),
            "POST" => self.sign_in(flow, request),
            _ => {
                let mut response = error_page(405, "Use GET or POST.");
                response.headers.push(("allow", "GET, HEAD, POST".to_owned()));
                response
            }
        }
    }

    /// `GET /authorize?...`: the login page, an error page, or a redirect with the error.
    fn authorization_request(&self, flow: &AuthorizationConfig, request: &EndpointRequest) -> Response {
        let (_, query) = split_path(request.path);
        let Ok(params) = FormParams::parse(query.unwrap_or_default().as_bytes()) else {
            return error_page(
                400,
                "The sign-in request is malformed (a parameter is repeated or badly encoded).",
            );
        };
        // A configured application, or a registered one (one shared-data read).
        let found = params.get("client_id").map_or(Ok(None), |id| self.application(id));
        let app = match found {
            Ok(Some(app)) if app.grant_types.contains(GrantType::AuthorizationCode) => app,
            Ok(_) => return error_page(400, "The application is unknown or may not ask you to sign in."),
            Err(_) => return error_page(503, "Signing in is unavailable; try again later."),
        };
        let Some(redirect_uri) = verified_redirect_uri(&app, params.get("redirect_uri")) else {
            return error_page(400, "The redirect URI is not registered for this application.");
        };
        let state = params.get("state");
        if state.is_some_and(|state| state.len() > MAX_STATE_BYTES) {
            let callback = Callback { redirect_uri, state: None };
            return self.redirect_error(&callback, "invalid_request", "state is too long");
        }
        let callback = Callback { redirect_uri, state };
        match self.check_authorization_request(&app, &params) {
            Ok((scope, challenge)) => {
                let ticket = Ticket {
                    client_id: app.consumer_key.clone(),
                    redirect_uri: redirect_uri.to_owned(),
                    scope: scope.to_string(),
                    state: state.map(str::to_owned),
                    challenge: challenge.as_str().to_owned(),
                    username: String::new(),
                };
                self.login_page_for(flow, &app, ticket, 200, "", None)
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
    ) -> Result<(ScopeSet, CodeChallenge), (&'static str, &'static str)> {
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
        Ok((scope, challenge))
    }

    /// Stores `ticket` under a new handle and renders the login page for it; on failure, the
    /// RFC 6749 error code to send back.
    fn login_page_for(
        &self,
        flow: &AuthorizationConfig,
        app: &Application,
        ticket: Ticket,
        status: u16,
        username: &str,
        message: Option<&str>,
    ) -> Result<Response, &'static str> {
        let (Some(table), Ok(now)) = (&self.authorizations, self.now()) else {
            return Err("temporarily_unavailable");
        };
        let scope = ticket.scope.clone();
        let redirect_uri = ticket.redirect_uri.clone();
        let handle =
            table.start_login(ticket, now, now.saturating_add(flow.login_lifetime_ms)).map_err(|error| {
                match error {
                    TicketError::Full | TicketError::Store(_) => "temporarily_unavailable",
                    TicketError::Random => "server_error",
                }
            })?;
        let page = LoginPage {
            action: &flow.endpoint,
            application: &app.name,
            scopes: scope.split(' ').filter(|name| !name.is_empty()).collect(),
            handle: &handle,
            redirect_origin: redirect_uri::origin(&redirect_uri),
            username,
            message,
        };
        Ok(login_page(status, &page))
    }

    /// `POST /authorize`: the login form. A wrong password shows the page again under a new
    /// handle; a forged, expired or replayed handle ends here.
    fn sign_in(&self, flow: &AuthorizationConfig, request: &EndpointRequest) -> Response {
        let Ok(form) = self.read_form(request) else {
            return error_page(400, "The sign-in form is malformed.");
        };
        let (Some(table), Ok(now)) = (&self.authorizations, self.now()) else {
            return error_page(503, "Signing in is unavailable; try again later.");
        };
        let taken = match form.get("handle") {
            Some(handle) => table.take_login(handle, now),
            None => Ok(None),
        };
        let ticket = match taken {
            Ok(Some(ticket)) => ticket,
            Ok(None) => return error_page(400, "This sign-in has expired or was already used. Start again."),
            Err(_) => return error_page(503, "Signing in is unavailable; try again later."),
        };
        let app = match self.application(&ticket.client_id) {
            Ok(Some(app)) => app,
            Ok(None) => return error_page(400, "The application is no longer known."),
            Err(_) => return error_page(503, "Signing in is unavailable; try again later."),
        };
        let username = form.get("username").unwrap_or_default();
        let password = form.get("password").unwrap_or_default();
        let wrong = ErrorKind::InvalidGrant.because("the username or password is wrong");
        let address = client_address(request.client_address.unwrap_or_default());
        let budget = flow.pbkdf2_iterations_per_sec;
        match self.authenticate_user_at_form(username, password, &address, budget, wrong) {
            Ok(user) => self.issue_code(flow, ticket, &user.scopes, &user.username),
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
                let (redirect_uri, state) = (ticket.redirect_uri.clone(), ticket.state.clone());
                let mut page = self
                    .login_page_for(flow, &app, ticket, status, username, Some(message))
                    .unwrap_or_else(|code| {
                        let callback = Callback { redirect_uri: &redirect_uri, state: state.as_deref() };
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
    fn issue_code(
        &self,
        flow: &AuthorizationConfig,
        ticket: Ticket,
        user_scopes: &ScopeSet,
        username: &str,
    ) -> Response {
        let redirect_uri = ticket.redirect_uri.clone();
        let state = ticket.state.clone();
        let callback = Callback { redirect_uri: &redirect_uri, state: state.as_deref() };
        let (Some(table), Ok(now)) = (&self.authorizations, self.now()) else {
            return self.redirect_error(&callback, "temporarily_unavailable", "try again later");
        };
        let scope = ScopeSet::from_names(ticket.scope.split(' ').filter(|n| !n.is_empty()))
            .intersection(user_scopes)
            .to_string();
        let ticket = Ticket { scope, state: None, username: username.to_owned(), ..ticket };
        match table.issue_code(ticket, now, now.saturating_add(flow.code_lifetime_ms)) {
            Ok(code) => redirect(self.callback_url(&callback, &[("code", &code)])),
            Err(_) => self.redirect_error(&callback, "temporarily_unavailable", "try again later"),
        }
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

/// The presented redirect URI when it matches a registered one; when absent, the only one
/// registered (RFC 6749 §4.1.1, §3.1.2.3).
fn verified_redirect_uri<'r>(app: &'r Application, presented: Option<&'r str>) -> Option<&'r str> {
    match (presented, app.redirect_uris.as_slice()) {
        (Some(presented), registered) => {
            registered.iter().any(|uri| redirect_uri::matches(uri, presented)).then_some(presented)
        }
        (None, [only]) => Some(only.as_str()),
        (None, _) => None,
    }
}
