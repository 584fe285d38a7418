//! The gateway's decisions: a request goes in, a [`Response`] or [`Outcome`] comes out.
//!
//! Nothing here knows about proxy-wasm. The filter glue asks [`Gateway::endpoint`] whether a
//! path is one of the gateway's own endpoints; if so it reads the body and calls
//! [`Gateway::serve`], otherwise it calls [`Gateway::authorize`]. One file per concern:
//! `token.rs` (RFC 6749), `bearer.rs` (RFC 6750), `lifecycle.rs` (RFC 7009, 7662),
//! `metadata.rs` (RFC 8414), `registration.rs` (WSO2 dynamic client registration).

mod bearer;
mod lifecycle;
mod metadata;
mod registration;
mod token;

use std::borrow::Cow;

use crate::config::{Application, Config, User, METADATA_PATH};
use crate::credentials::{parse_basic_authorization, ClientCredentials, SecretVerifier};
use crate::epochs::{CredentialChanges, CredentialKind};
use crate::form::{query_parameter_names, FormError, FormParams};
use crate::host::{Clock, Metrics, Randomness, SharedStore, StoreError};
use crate::limits::{FailureLimiter, Principal};
use crate::messages::ErrorResponse;
use crate::registry::{ClientRecord, ClientRegistry};
use crate::scope::{ScopeId, ScopeSet};
use crate::store::{GrantOwner, TokenStore};

pub use bearer::{CLIENT_ID_HEADER, SCOPE_HEADER, USERNAME_HEADER};

/// A reply the gateway sends itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The body's length only: bodies carry tokens and registration secrets.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Response {
    /// 503 for a request the host could not serve (a store read, the clock, a header rewrite).
    pub fn unavailable() -> Response {
        json_response(503, Vec::new(), ErrorResponse::bare("temporarily_unavailable").to_json())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Changes to a request that goes on upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub remove_headers: &'static [&'static str],
    pub set_headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Respond(Response),
    Forward(Forward),
}

/// One of the gateway's own endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Revocation,
    Introspection,
    Metadata,
    /// The registration endpoint itself.
    Registration,
    /// `<registration endpoint>/<client id>`.
    RegisteredClient(String),
    /// `<registration endpoint>/<client id>/secret`.
    RegisteredClientSecret(String),
}

/// A request to one of the gateway's endpoints, body included.
pub struct EndpointRequest<'a> {
    pub method: &'a str,
    /// The `:path` pseudo-header: path and query.
    pub path: &'a str,
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
    pub metrics: &'h dyn Metrics,
    /// When credentials last changed, as this VM last read it (see [`crate::epochs`]).
    pub credential_changes: &'h CredentialChanges,
}

pub struct Gateway<'a> {
    config: &'a Config,
    store: TokenStore<'a>,
    limiter: FailureLimiter<'a>,
    registry: Option<ClientRegistry<'a>>,
    clock: &'a dyn Clock,
    metrics: &'a dyn Metrics,
    credential_changes: &'a CredentialChanges,
}

/// An OAuth error: the code and a fixed description that never echoes input (RFC 6749 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OAuthError {
    status: u16,
    code: &'static str,
    description: &'static str,
    /// Seconds to wait, sent as `Retry-After` (a locked-out name).
    retry_after: Option<u64>,
}

const fn oauth_error(status: u16, code: &'static str, description: &'static str) -> OAuthError {
    OAuthError { status, code, description, retry_after: None }
}

/// Too many failed attempts for this name: no secret is checked until the lockout ends.
fn locked_out(wait_secs: u64) -> OAuthError {
    OAuthError {
        retry_after: Some(wait_secs),
        ..oauth_error(429, "temporarily_unavailable", "too many failed attempts; try again later")
    }
}

const CLIENT_AUTH_FAILED: OAuthError = oauth_error(
    401,
    "invalid_client",
    "client authentication failed: send Authorization: Basic base64(consumer-key:consumer-secret)",
);
const STORE_UNAVAILABLE: OAuthError =
    oauth_error(503, "temporarily_unavailable", "the token store is unavailable; try again later");

impl From<StoreError> for OAuthError {
    fn from(_: StoreError) -> Self {
        STORE_UNAVAILABLE
    }
}

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
            store: TokenStore::new(host.shared, host.random, host.metrics, config.bucket_count),
            limiter: FailureLimiter::new(host.shared, config.lockout, config.lockout_bucket_count),
            registry: config.registration.as_ref().map(|registration| {
                ClientRegistry::new(host.shared, host.random, host.metrics, registration.bucket_count)
            }),
            clock: host.clock,
            metrics: host.metrics,
            credential_changes: host.credential_changes,
        }
    }

    /// Creates the store's buckets. Only for `on_configure` (see [`crate::buckets`]).
    pub fn initialize_store(&self) -> Result<u32, StoreError> {
        let registry_created = match &self.registry {
            Some(registry) => registry.initialize()?,
            None => 0,
        };
        Ok(self.store.initialize()? + registry_created + self.limiter.initialize()?)
    }

    /// Sweeps the next slice of the token store (called from a timer on every VM).
    pub fn sweep_step(&self, buckets: u32) -> Result<(), StoreError> {
        self.store.sweep_next(buckets, self.now()?)
    }

    /// The time, or [`StoreError::Unavailable`] when the host cannot tell it: the request is
    /// then refused like one whose store read failed (503), and nothing is written.
    fn now(&self) -> Result<u64, StoreError> {
        self.clock.now_millis().ok_or(StoreError::Unavailable)
    }

    /// Which of the gateway's own endpoints `path_and_query` names, if any.
    pub fn endpoint(&self, path_and_query: &str) -> Option<Endpoint> {
        let (path, _) = split_path(path_and_query);
        let config = self.config;
        if path == config.token_endpoint {
            return Some(Endpoint::Token);
        }
        if path == config.revocation_endpoint {
            return Some(Endpoint::Revocation);
        }
        if path == config.introspection_endpoint {
            return Some(Endpoint::Introspection);
        }
        if path == METADATA_PATH {
            return Some(Endpoint::Metadata);
        }
        let registration = config.registration.as_ref()?;
        let rest = path.strip_prefix(registration.endpoint.as_str())?;
        match rest.strip_prefix('/').map(|rest| rest.split('/').collect::<Vec<_>>()).as_deref() {
            None if rest.is_empty() => Some(Endpoint::Registration),
            Some([client_id]) if !client_id.is_empty() => {
                Some(Endpoint::RegisteredClient((*client_id).to_owned()))
            }
            Some([client_id, "secret"]) if !client_id.is_empty() => {
                Some(Endpoint::RegisteredClientSecret((*client_id).to_owned()))
            }
            _ => None,
        }
    }

    /// Answers a request to one of the gateway's endpoints.
    pub fn serve(&self, endpoint: &Endpoint, request: &EndpointRequest) -> Response {
        match endpoint {
            Endpoint::Token => self.token_endpoint(request),
            Endpoint::Revocation => self.revocation_endpoint(request),
            Endpoint::Introspection => self.introspection_endpoint(request),
            Endpoint::Metadata => self.metadata_endpoint(request),
            Endpoint::Registration => self.registration_endpoint(request),
            Endpoint::RegisteredClient(client_id) => self.registered_client_endpoint(request, client_id),
            Endpoint::RegisteredClientSecret(client_id) => {
                self.regenerate_secret_endpoint(request, client_id)
            }
        }
    }

    /// The reply to an endpoint request whose body exceeds `max_body_bytes`.
    pub fn body_too_large(&self) -> Response {
        self.oauth_error_response(&oauth_error(413, "invalid_request", "the request body is too large"))
    }

    // -----------------------------------------------------------------------------------------
    // Shared by the form endpoints (/token, /revoke, /introspect)

    /// Checks method, URL and content type, and parses the form body (RFC 6749 §3.2, App. B).
    fn read_form(&self, request: &EndpointRequest) -> Result<FormParams, OAuthError> {
        if request.method != "POST" {
            return Err(oauth_error(405, "invalid_request", "this endpoint accepts only POST"));
        }
        const SECRET_PARAMETERS: [&str; 6] =
            ["client_id", "client_secret", "username", "password", "refresh_token", "token"];
        if let (_, Some(query)) = split_path(request.path) {
            if query_parameter_names(query).any(|name| SECRET_PARAMETERS.contains(&name.as_ref())) {
                return Err(oauth_error(
                    400,
                    "invalid_request",
                    "credentials and tokens must be sent in the body, not in the URL",
                ));
            }
        }
        if !request
            .content_type
            .is_some_and(|value| media_type_is(value, "application/x-www-form-urlencoded"))
        {
            return Err(oauth_error(
                400,
                "invalid_request",
                "the content type must be application/x-www-form-urlencoded",
            ));
        }
        FormParams::parse(request.body).map_err(|error| match error {
            FormError::RepeatedParameter => oauth_error(400, "invalid_request", "a parameter is repeated"),
            FormError::BadPercentEncoding => {
                oauth_error(400, "invalid_request", "the body is not valid form encoding")
            }
            FormError::InvalidUtf8 => oauth_error(400, "invalid_request", "the body is not valid UTF-8"),
        })
    }

    /// Authenticates the calling application with HTTP Basic (RFC 6749 §2.3.1).
    fn authenticate_client(
        &self,
        request: &EndpointRequest,
        form: &FormParams,
    ) -> Result<Cow<'a, Application>, OAuthError> {
        let credentials: ClientCredentials = request
            .authorization
            .and_then(|header| parse_basic_authorization(header).ok())
            .ok_or(CLIENT_AUTH_FAILED)?;
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
        let app = self.application(&credentials.consumer_key)?;
        self.verify_secret(
            Principal::Client(&credentials.consumer_key),
            app,
            |app| &app.verifier,
            &self.config.decoy_client_verifier,
            &credentials.consumer_secret,
            CLIENT_AUTH_FAILED,
        )
    }

    /// Checks a username and password; `failure` is the error for wrong credentials.
    fn authenticate_user(
        &self,
        username: &str,
        password: &str,
        failure: OAuthError,
    ) -> Result<&'a User, OAuthError> {
        let user = self.config.users.get(username);
        let decoy = &self.config.decoy_user_verifier;
        self.verify_secret(Principal::User(username), user, |user| &user.verifier, decoy, password, failure)
    }

    /// Checks a presented secret of `principal` (the application or user `found` under that
    /// name, if any) under the brute-force limits: refused while the name is locked out, an
    /// unknown name checked against `decoy` so it costs what a wrong secret costs (RFC 6749
    /// §10.10), and every failure counted.
    fn verify_secret<T>(
        &self,
        principal: Principal,
        found: Option<T>,
        verifier: impl Fn(&T) -> &SecretVerifier,
        decoy: &SecretVerifier,
        presented: &str,
        failure: OAuthError,
    ) -> Result<T, OAuthError> {
        let now = self.now()?;
        if let Some(wait) = self.limiter.locked_for(principal, now)? {
            return Err(locked_out(wait));
        }
        let verified = match &found {
            Some(item) => verifier(item).verify(presented),
            None => {
                decoy.verify(presented);
                false
            }
        };
        match found {
            Some(item) if verified => Ok(item),
            _ => {
                self.limiter.record_failure(principal, now)?;
                Err(failure)
            }
        }
    }

    /// A configured application, or a registered one (one shared-data read).
    fn application(&self, consumer_key: &str) -> Result<Option<Cow<'a, Application>>, StoreError> {
        if let Some(app) = self.config.applications.get(consumer_key) {
            return Ok(Some(Cow::Borrowed(app)));
        }
        let (Some(registry), Some(registration)) = (&self.registry, &self.config.registration) else {
            return Ok(None);
        };
        let Some(record) = registry.find(consumer_key)? else { return Ok(None) };
        Ok(Some(Cow::Owned(self.registered_application(record, &registration.scopes))))
    }

    fn registered_application(&self, record: ClientRecord, scopes: &ScopeSet) -> Application {
        let verifier: SecretVerifier = record.verifier();
        let allowed = self.config.registration.as_ref().map(|r| &r.grant_types);
        Application {
            fingerprint: verifier.fingerprint(&record.client_id),
            grant_types: record
                .registration
                .grant_types
                .iter()
                .filter(|grant| allowed.is_some_and(|allowed| allowed.contains(grant)))
                .copied()
                .collect(),
            consumer_key: record.client_id,
            verifier,
            scopes: scopes.clone(),
            access_validity: self.config.default_access_validity,
            can_introspect: false,
        }
    }

    /// The grant owner's application and user as the current config has them, for a token
    /// issued at `issued_at`; `None` when either is gone or its credentials changed since.
    fn standing(&self, owner: &GrantOwner, issued_at: u64) -> Result<Option<Standing<'_>>, StoreError> {
        let Some(app) = self.application(&owner.client_id)? else { return Ok(None) };
        Ok(self.standing_of(app, owner, issued_at))
    }

    /// [`Self::standing`] with the owner's application already in hand (the one named by
    /// `owner.client_id`).
    fn standing_of<'s>(
        &'s self,
        app: Cow<'s, Application>,
        owner: &GrantOwner,
        issued_at: u64,
    ) -> Option<Standing<'s>> {
        let changes = self.credential_changes;
        if changes.ended(CredentialKind::Application, &owner.client_id, issued_at)
            || app.fingerprint != owner.client_fingerprint
        {
            return None;
        }
        let user = match &owner.user {
            None => None,
            Some((username, fingerprint)) => Some(
                self.config
                    .users
                    .get(username)
                    .filter(|user| user.fingerprint == *fingerprint)
                    .filter(|_| !changes.ended(CredentialKind::User, username, issued_at))?,
            ),
        };
        Some(Standing { app, user })
    }

    /// The names of stored scope ids that the owner may still hold, in name order.
    fn held_scopes<'s>(&'s self, ids: &[ScopeId], standing: &Standing) -> Vec<&'s str> {
        let mut names: Vec<&str> = ids
            .iter()
            .filter_map(|id| self.config.scope_names.get(id))
            .map(String::as_str)
            .filter(|name| standing.allows(name))
            .collect();
        names.sort_unstable();
        names
    }

    /// An RFC 6749 §5.2 error response, with the Basic challenge on 401 and `Allow` on 405.
    fn oauth_error_response(&self, error: &OAuthError) -> Response {
        let mut headers = Vec::new();
        if error.status == 401 {
            headers.push(("www-authenticate", format!("Basic realm=\"{}\"", self.config.realm)));
        }
        if error.status == 405 {
            headers.push(("allow", "POST".to_owned()));
        }
        if let Some(wait) = error.retry_after {
            headers.push(("retry-after", wait.to_string()));
        }
        no_store_json(error.status, headers, ErrorResponse::new(error.code, error.description).to_json())
    }
}

/// A grant owner as the current config knows them (see [`Gateway::standing`]).
struct Standing<'a> {
    app: Cow<'a, Application>,
    user: Option<&'a User>,
}

impl Standing<'_> {
    /// True when the application, and the user if any, may still hold `scope`.
    fn allows(&self, scope: &str) -> bool {
        self.app.scopes.contains(scope) && self.user.is_none_or(|user| user.scopes.contains(scope))
    }
}

/// A JSON response that must not be cached: tokens, secrets, and errors about them
/// (RFC 6749 §5.1).
fn no_store_json(status: u16, mut headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Response {
    headers.push(("content-type", "application/json".to_owned()));
    headers.push(("cache-control", "no-store".to_owned()));
    headers.push(("pragma", "no-cache".to_owned()));
    Response { status, headers, body }
}

fn json_response(status: u16, mut headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Response {
    headers.push(("content-type", "application/json".to_owned()));
    Response { status, headers, body }
}

/// True when a Content-Type header names `media_type`, in any case, parameters allowed.
fn media_type_is(value: &str, media_type: &str) -> bool {
    value.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case(media_type)
}

#[cfg(test)]
mod tests;
