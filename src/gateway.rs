//! The gateway's decisions: a request goes in, an [`Outcome`] comes out.
//!
//! Nothing here knows about proxy-wasm. The filter glue reads the request into
//! [`TokenRequest`] or [`ApiRequest`], calls [`Gateway`], and turns the outcome into host calls.

use crate::config::{Application, Config, GrantType, User};
use crate::credentials::{parse_basic_authorization, BasicError, ClientCredentials};
use crate::form::{query_parameter_names, FormError, FormParams};
use crate::host::{Clock, Randomness, SharedStore};
use crate::messages::{ErrorResponse, TokenResponse};
use crate::routes::{Access, RouteMatch};
use crate::scope::ScopeSet;
use crate::store::{
    GrantOwner, GrantRecord, IssueError, IssuedTokens, LookupError, NewGrant, RefreshError, RefreshPlan,
    RefreshRefusal, TokenStore, NEVER_EXPIRES,
};

/// Headers that carry the caller's identity upstream. The filter sets them; any copy a client
/// sends is removed first, so upstreams can trust them (RFC 9700 §4.13).
pub const CLIENT_ID_HEADER: &str = "x-tokengate-client-id";
pub const USERNAME_HEADER: &str = "x-tokengate-username";
pub const SCOPE_HEADER: &str = "x-tokengate-scope";
const IDENTITY_HEADERS: [&str; 3] = [CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER];

/// A reply the gateway sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Changes to a request that goes on upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forward {
    pub remove_headers: Vec<&'static str>,
    pub set_headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Respond(Response),
    Forward(Forward),
}

/// A request to the token endpoint, body included.
pub struct TokenRequest<'a> {
    pub method: &'a str,
    /// The query string, without `?`, if any.
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Any other request: only its headers matter.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    /// The `:path` pseudo-header: path and query.
    pub path: &'a str,
    pub authorization: Option<&'a str>,
}

/// The host pieces the gateway works with.
pub struct Host<'h> {
    pub shared: &'h dyn SharedStore,
    pub random: &'h dyn Randomness,
    pub clock: &'h dyn Clock,
}

pub struct Gateway<'a> {
    config: &'a Config,
    store: TokenStore<'a>,
    clock: &'a dyn Clock,
}

/// An RFC 6749 §5.2 error: the code and a fixed description that never echoes input.
struct OAuthError {
    status: u16,
    code: &'static str,
    description: &'static str,
}

const fn oauth_error(status: u16, code: &'static str, description: &'static str) -> OAuthError {
    OAuthError { status, code, description }
}

const CLIENT_AUTH_FAILED: OAuthError = oauth_error(
    401,
    "invalid_client",
    "client authentication failed: send Authorization: Basic base64(consumer-key:consumer-secret)",
);
const STORE_UNAVAILABLE: OAuthError =
    oauth_error(503, "temporarily_unavailable", "the token store is unavailable; try again later");

/// Splits `/path?query` into the path and the query.
pub fn split_path(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    }
}

impl<'a> Gateway<'a> {
    pub fn new(config: &'a Config, host: Host<'a>) -> Self {
        Gateway {
            config,
            store: TokenStore::new(host.shared, host.random, config.bucket_count),
            clock: host.clock,
        }
    }

    pub fn is_token_endpoint(&self, path_and_query: &str) -> bool {
        split_path(path_and_query).0 == self.config.token_endpoint
    }

    /// The reply to a token request whose body exceeds `max_body_bytes`.
    pub fn body_too_large(&self) -> Response {
        self.error_response(&oauth_error(413, "invalid_request", "the request body is too large"))
    }

    // -----------------------------------------------------------------------------------------
    // The token endpoint (RFC 6749 §3.2, §4.3, §4.4, §6)

    pub fn token_endpoint(&self, request: &TokenRequest) -> Response {
        match self.issue_tokens(request) {
            Ok(body) => token_response(200, Vec::new(), serde_json::to_vec(&body).unwrap_or_default()),
            Err(error) => self.error_response(&error),
        }
    }

    fn issue_tokens(&self, request: &TokenRequest) -> Result<TokenResponse, OAuthError> {
        if request.method != "POST" {
            return Err(oauth_error(405, "invalid_request", "the token endpoint accepts only POST"));
        }
        const SECRET_PARAMETERS: [&str; 5] =
            ["client_id", "client_secret", "username", "password", "refresh_token"];
        if let Some(query) = request.query {
            if query_parameter_names(query).any(|name| SECRET_PARAMETERS.contains(&name.as_ref())) {
                return Err(oauth_error(
                    400,
                    "invalid_request",
                    "credentials must be sent in the body, not in the URL",
                ));
            }
        }
        if !request.content_type.is_some_and(is_form_content_type) {
            return Err(oauth_error(
                400,
                "invalid_request",
                "the content type must be application/x-www-form-urlencoded",
            ));
        }
        let form = FormParams::parse(request.body).map_err(|error| match error {
            FormError::RepeatedParameter => oauth_error(400, "invalid_request", "a parameter is repeated"),
            FormError::BadPercentEncoding => {
                oauth_error(400, "invalid_request", "the body is not valid form encoding")
            }
            FormError::InvalidUtf8 => oauth_error(400, "invalid_request", "the body is not valid UTF-8"),
        })?;
        let grant_type =
            form.get("grant_type").ok_or(oauth_error(400, "invalid_request", "grant_type is missing"))?;

        let credentials = match request.authorization.map(parse_basic_authorization) {
            Some(Ok(credentials)) => credentials,
            None | Some(Err(BasicError::NotBasic | BasicError::Malformed)) => return Err(CLIENT_AUTH_FAILED),
        };
        // RFC 6749 §2.3: one authentication method per request.
        if form.was_sent("client_secret") {
            return Err(oauth_error(400, "invalid_request", "use HTTP Basic or client_secret, not both"));
        }
        if form.get("client_id").is_some_and(|id| id != credentials.consumer_key) {
            return Err(oauth_error(
                400,
                "invalid_request",
                "client_id does not match the authenticated client",
            ));
        }
        let app = self.authenticate_client(&credentials).ok_or(CLIENT_AUTH_FAILED)?;

        let grant = GrantType::from_param(grant_type).ok_or(oauth_error(
            400,
            "unsupported_grant_type",
            "the grant type is not supported",
        ))?;
        if !app.grant_types.contains(&grant) {
            return Err(oauth_error(
                400,
                "unauthorized_client",
                "this application may not use this grant type",
            ));
        }
        let requested = match form.get("scope") {
            Some(text) => Some(
                ScopeSet::parse(text)
                    .map_err(|_| oauth_error(400, "invalid_scope", "the scope is malformed"))?,
            ),
            None => None,
        };
        let now = self.clock.now_secs();
        match grant {
            GrantType::ClientCredentials => {
                let scopes = narrow(requested, &app.scopes)?;
                let owner = GrantOwner {
                    client_id: app.consumer_key.clone(),
                    client_fingerprint: app.fingerprint,
                    user: None,
                };
                self.issue_grant(app, owner, scopes, None, now)
            }
            GrantType::Password => {
                let username =
                    form.get("username").ok_or(oauth_error(400, "invalid_request", "username is missing"))?;
                let password =
                    form.get("password").ok_or(oauth_error(400, "invalid_request", "password is missing"))?;
                let user = self.authenticate_user(username, password).ok_or(oauth_error(
                    400,
                    "invalid_grant",
                    "the username or password is wrong",
                ))?;
                let scopes = narrow(requested, &app.scopes.intersection(&user.scopes))?;
                let owner = GrantOwner {
                    client_id: app.consumer_key.clone(),
                    client_fingerprint: app.fingerprint,
                    user: Some((user.username.clone(), user.fingerprint)),
                };
                let refresh_expires_at = app
                    .grant_types
                    .contains(&GrantType::RefreshToken)
                    .then(|| now.saturating_add(self.config.refresh_validity_secs));
                self.issue_grant(app, owner, scopes, refresh_expires_at, now)
            }
            GrantType::RefreshToken => {
                let token = form.get("refresh_token").ok_or(oauth_error(
                    400,
                    "invalid_request",
                    "refresh_token is missing",
                ))?;
                self.refresh_grant(app, token, requested.as_ref(), now)
            }
        }
    }

    /// Finds the application and checks its secret. An unknown key is checked against a decoy
    /// so it costs the same as a wrong secret (RFC 6749 §10.10).
    fn authenticate_client(&self, credentials: &ClientCredentials) -> Option<&Application> {
        match self.config.applications.get(&credentials.consumer_key) {
            Some(app) if app.verifier.verify(&credentials.consumer_secret) => Some(app),
            Some(_) => None,
            None => {
                self.config.decoy_client_verifier.verify(&credentials.consumer_secret);
                None
            }
        }
    }

    fn authenticate_user(&self, username: &str, password: &str) -> Option<&User> {
        match self.config.users.get(username) {
            Some(user) if user.verifier.verify(password) => Some(user),
            Some(_) => None,
            None => {
                self.config.decoy_user_verifier.verify(password);
                None
            }
        }
    }

    fn issue_grant(
        &self,
        app: &Application,
        owner: GrantOwner,
        scopes: ScopeSet,
        refresh_expires_at: Option<u64>,
        now: u64,
    ) -> Result<TokenResponse, OAuthError> {
        let access_expires_at = app.access_validity.expires_at(now);
        let grant = NewGrant { owner, scopes: scopes.ids(), access_expires_at, refresh_expires_at };
        let issued = self.store.issue(grant, now).map_err(|error| match error {
            IssueError::Full => {
                oauth_error(503, "temporarily_unavailable", "the token store is full; try again later")
            }
            IssueError::Random | IssueError::Store(_) => STORE_UNAVAILABLE,
        })?;
        Ok(token_body(issued, &scopes, access_expires_at, now))
    }

    fn refresh_grant(
        &self,
        app: &Application,
        token: &str,
        requested: Option<&ScopeSet>,
        now: u64,
    ) -> Result<TokenResponse, OAuthError> {
        let invalid_grant =
            oauth_error(400, "invalid_grant", "the refresh token is invalid, expired or revoked");
        let mut granted = ScopeSet::default();
        let mut access_expires_at = 0;
        let decide = |record: &GrantRecord| -> Result<RefreshPlan, RefreshRefusal> {
            // Credentials changed or removed since the grant: the grant is dead.
            let allowed = self.still_allowed_scopes(&record.owner).ok_or(RefreshRefusal::InvalidGrant)?;
            // The grant keeps its scope; the access token may narrow it (RFC 6749 §6).
            let grant_scopes = self.config.scope_set(&record.scopes).intersection(&allowed);
            let access_scopes = match requested {
                Some(requested) if !requested.is_subset(&grant_scopes) => {
                    return Err(RefreshRefusal::InvalidScope)
                }
                Some(requested) => requested.clone(),
                None => grant_scopes,
            };
            access_expires_at = app.access_validity.expires_at(now);
            let plan = RefreshPlan {
                access_scopes: Some(access_scopes.ids()),
                access_expires_at,
                refresh_expires_at: now.saturating_add(self.config.refresh_validity_secs),
            };
            granted = access_scopes;
            Ok(plan)
        };
        match self.store.refresh(token, &app.consumer_key, now, decide) {
            Ok(issued) => Ok(token_body(issued, &granted, access_expires_at, now)),
            Err(RefreshError::Refused(RefreshRefusal::InvalidScope)) => {
                Err(oauth_error(400, "invalid_scope", "the scope exceeds the grant's scope"))
            }
            Err(
                RefreshError::InvalidGrant
                | RefreshError::ReuseDetected
                | RefreshError::Refused(RefreshRefusal::InvalidGrant),
            ) => Err(invalid_grant),
            Err(RefreshError::Random | RefreshError::Store(_)) => Err(STORE_UNAVAILABLE),
        }
    }

    /// The scopes a grant's owner may still hold under the current config; `None` when the
    /// application or user is gone or their credentials changed since the grant was issued.
    fn still_allowed_scopes(&self, owner: &GrantOwner) -> Option<ScopeSet> {
        let app = self.config.applications.get(&owner.client_id)?;
        if app.fingerprint != owner.client_fingerprint {
            return None;
        }
        match &owner.user {
            None => Some(app.scopes.clone()),
            Some((username, fingerprint)) => {
                let user = self.config.users.get(username)?;
                (user.fingerprint == *fingerprint).then(|| app.scopes.intersection(&user.scopes))
            }
        }
    }

    fn error_response(&self, error: &OAuthError) -> Response {
        let mut headers = Vec::new();
        if error.status == 401 {
            headers.push(("www-authenticate", format!("Basic realm=\"{}\"", self.config.realm)));
        }
        if error.status == 405 {
            headers.push(("allow", "POST".to_owned()));
        }
        token_response(error.status, headers, ErrorResponse::new(error.code, error.description).to_json())
    }

    // -----------------------------------------------------------------------------------------
    // Bearer checks (RFC 6750)

    pub fn authorize(&self, request: &ApiRequest) -> Outcome {
        let (path, query) = split_path(request.path);
        // RFC 6750 §2.3: tokens in URLs leak into logs; refuse them outright.
        if query.is_some_and(|query| query_parameter_names(query).any(|name| name == "access_token")) {
            return Outcome::Respond(self.bearer_error(
                400,
                "invalid_request",
                "send the token in the Authorization header, not the URL",
                None,
            ));
        }
        let access = match self.config.routes.find(request.method, path) {
            RouteMatch::Found(access) => access,
            RouteMatch::NotFound => {
                return Outcome::Respond(json_response(
                    404,
                    Vec::new(),
                    ErrorResponse::bare("not_found").to_json(),
                ));
            }
            RouteMatch::MethodNotAllowed(methods) => {
                let headers = vec![("allow", methods.join(", "))];
                return Outcome::Respond(json_response(
                    405,
                    headers,
                    ErrorResponse::bare("method_not_allowed").to_json(),
                ));
            }
        };
        let required = match access {
            Access::Public => return Outcome::Forward(self.forward(None)),
            Access::Scopes { names, .. } => names,
        };
        let token = match request.authorization.map(bearer_token) {
            None | Some(Err(BearerError::OtherScheme)) => return Outcome::Respond(self.bearer_challenge()),
            Some(Err(BearerError::Malformed)) => {
                return Outcome::Respond(self.bearer_error(
                    400,
                    "invalid_request",
                    "the Authorization header is malformed",
                    None,
                ));
            }
            Some(Ok(token)) => token,
        };
        let grant = match self.store.find_access(token, self.clock.now_secs()) {
            Ok(grant) => grant,
            Err(LookupError::Unknown) => {
                return Outcome::Respond(self.bearer_error(
                    401,
                    "invalid_token",
                    "the access token is unknown or revoked",
                    None,
                ));
            }
            Err(LookupError::Expired) => {
                return Outcome::Respond(self.bearer_error(
                    401,
                    "invalid_token",
                    "the access token expired",
                    None,
                ));
            }
            Err(LookupError::Store(_)) => {
                return Outcome::Respond(json_response(
                    503,
                    Vec::new(),
                    ErrorResponse::bare("temporarily_unavailable").to_json(),
                ));
            }
        };
        let Some(allowed) = self.still_allowed_scopes(&grant.owner) else {
            return Outcome::Respond(self.bearer_error(
                401,
                "invalid_token",
                "the access token is unknown or revoked",
                None,
            ));
        };
        let held = self.config.scope_set(&grant.scopes).intersection(&allowed);
        if !required.iter().all(|name| held.contains(name)) {
            let scope = required.join(" ");
            return Outcome::Respond(self.bearer_error(
                403,
                "insufficient_scope",
                "the access token lacks a required scope",
                Some(scope),
            ));
        }
        Outcome::Forward(self.forward(Some((&grant.owner, &held))))
    }

    fn forward(&self, identity: Option<(&GrantOwner, &ScopeSet)>) -> Forward {
        let mut remove_headers = IDENTITY_HEADERS.to_vec();
        if !self.config.forward_authorization {
            remove_headers.push("authorization");
        }
        let mut set_headers = Vec::new();
        if let Some((owner, scopes)) = identity {
            set_headers.push((CLIENT_ID_HEADER, owner.client_id.clone()));
            if let Some((username, _)) = &owner.user {
                set_headers.push((USERNAME_HEADER, username.clone()));
            }
            set_headers.push((SCOPE_HEADER, scopes.to_string()));
        }
        Forward { remove_headers, set_headers }
    }

    /// RFC 6750 §3: no credentials, so no error code, just the challenge.
    fn bearer_challenge(&self) -> Response {
        let challenge = format!("Bearer realm=\"{}\"", self.config.realm);
        Response { status: 401, headers: vec![("www-authenticate", challenge)], body: Vec::new() }
    }

    fn bearer_error(&self, status: u16, code: &str, description: &str, scope: Option<String>) -> Response {
        let mut challenge = format!(
            "Bearer realm=\"{}\", error=\"{code}\", error_description=\"{description}\"",
            self.config.realm
        );
        if let Some(scope) = &scope {
            challenge.push_str(&format!(", scope=\"{scope}\""));
        }
        let body = ErrorResponse { scope, ..ErrorResponse::new(code, description) };
        json_response(status, vec![("www-authenticate", challenge)], body.to_json())
    }
}

/// The requested scope if it is within `allowed`, else all of `allowed`.
fn narrow(requested: Option<ScopeSet>, allowed: &ScopeSet) -> Result<ScopeSet, OAuthError> {
    match requested {
        Some(requested) if requested.is_subset(allowed) => Ok(requested),
        Some(_) => {
            Err(oauth_error(400, "invalid_scope", "the scope exceeds what this client may be granted"))
        }
        None => Ok(allowed.clone()),
    }
}

fn token_body(issued: IssuedTokens, scopes: &ScopeSet, access_expires_at: u64, now: u64) -> TokenResponse {
    TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer".to_owned(),
        expires_in: (access_expires_at != NEVER_EXPIRES).then(|| access_expires_at.saturating_sub(now)),
        refresh_token: issued.refresh_token,
        scope: Some(scopes.to_string()),
    }
}

/// Every token endpoint response, errors included, must not be cached (RFC 6749 §5.1).
fn token_response(status: u16, mut headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Response {
    headers.push(("content-type", "application/json".to_owned()));
    headers.push(("cache-control", "no-store".to_owned()));
    headers.push(("pragma", "no-cache".to_owned()));
    Response { status, headers, body }
}

fn json_response(status: u16, mut headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Response {
    headers.push(("content-type", "application/json".to_owned()));
    Response { status, headers, body }
}

/// `application/x-www-form-urlencoded`, any case, parameters such as `charset` allowed.
fn is_form_content_type(value: &str) -> bool {
    let media_type = value.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

#[derive(Debug, PartialEq, Eq)]
enum BearerError {
    OtherScheme,
    Malformed,
}

/// The token of `Authorization: Bearer <b64token>` (RFC 6750 §2.1), scheme in any case.
fn bearer_token(header: &str) -> Result<&str, BearerError> {
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::OtherScheme);
    }
    let token = rest.trim_matches(' ');
    let body = token.trim_end_matches('=');
    let is_b64token = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'));
    if is_b64token {
        Ok(token)
    } else {
        Err(BearerError::Malformed)
    }
}

#[cfg(test)]
mod tests;
