//! The gateway's decisions: a request goes in, a [`Response`] or [`Outcome`] comes out.
//!
//! Two words for what the gateway answers, and no others: a [`Response`] is an HTTP reply
//! the gateway sends itself (status, headers, body); an [`Outcome`] is the decision on a
//! request to an API, either [`Outcome::Forward`] (let it through, with [`Forward`]'s header
//! changes) or [`Outcome::Deny`] (refuse it with a [`Response`], saying why).
//!
//! Nothing here knows about proxy-wasm. This file is the front desk: the [`Gateway`] type and
//! its public entry points. The filter glue asks [`Gateway::endpoint`] whether a path is one of
//! the gateway's own endpoints (the table in [`crate::oauth::endpoints`]); if so it reads the
//! body and calls [`Gateway::serve_with_origin`] (CORS, then [`Gateway::serve`], the
//! dispatch), or [`Gateway::body_too_large`] when the body is over the limit; otherwise it
//! calls [`Gateway::check_bearer`].
//!
//! One file per endpoint: `token.rs` (RFC 6749 §3.2; one handler per grant in `grants/`),
//! `authorization_endpoint.rs` (RFC 6749 §3.1, the login page in `login_page.rs`),
//! `bearer.rs` (RFC 6750), `revocation.rs` (RFC 7009), `introspection.rs` (RFC 7662),
//! `metadata.rs` (RFC 8414), `resource_metadata.rs` (RFC 9728), `jwks.rs` (RFC 7517's JWK Set), `openid.rs` (OpenID Connect: ID tokens,
//! UserInfo, Discovery), `wso2_registration.rs` (WSO2's v0.17 dynamic client
//! registration), `rfc7591_registration.rs` (RFC 7591, 7592), `subscriptions.rs` (a
//! registered application's subscriptions). Shared rooms: `reply.rs` (responses and typed
//! errors), `authentication.rs` (who is calling), `standing.rs` (whether a grant's owner still
//! stands), `cors.rs` (which origins), `throttle.rs` (tier windows).

mod access_jwt;
mod authentication;
mod authorization_endpoint;
mod backend_jwt;
mod bearer;
mod cors;
mod grants;
mod introspection;
mod jwks;
mod login_page;
mod metadata;
mod openid;
mod reply;
mod resource_metadata;
mod revocation;
mod rfc7591_registration;
mod standing;
mod subscriptions;
mod throttle;
mod token;
mod wso2_registration;

use crate::config::Config;
use std::cell::Cell;

use crate::host::metrics::Metric;
use crate::host::{Clock, Connection, Coordination, Metrics, Randomness, SharedStore, StoreError};
use crate::oauth::endpoints::EndpointKind;
use crate::oauth::{METADATA_PATH, OPENID_CONFIGURATION_PATH, RESOURCE_METADATA_PATH};
use crate::state::authorization::AuthorizationTable;
use crate::state::credential_changes::CredentialChanges;
use crate::state::grants::{GrantRecord, TokenStore};
use crate::state::lockout::FailureLimiter;
use crate::state::login_handle::{HandleKeys, KeyMemory};
use crate::state::registry::ClientRegistry;
#[cfg(test)]
pub(crate) use login_page::handle_in as login_handle_in;
use reply::{ErrorKind, OAuthError};

pub use reply::{
    Denial, Forward, Grounds, Outcome, Response, API_HEADER, CLIENT_ID_HEADER, IDENTITY_HEADER_PREFIX,
    SCOPE_HEADER, TIER_HEADER, USERNAME_HEADER,
};

/// One of the gateway's own endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    /// The authorization endpoint (RFC 6749 §3.1): the login page and its form.
    Authorize,
    Revocation,
    Introspection,
    Metadata,
    /// The registration endpoint itself.
    Registration,
    /// `<registration endpoint>/<client id>`.
    RegisteredClient(String),
    /// `<registration endpoint>/<client id>/secret`.
    RegisteredClientSecret(String),
    /// `<registration endpoint>/<client id>/subscriptions`, and `…/subscriptions/<API name>`.
    Subscriptions {
        client_id: String,
        api: Option<String>,
    },
    /// The RFC 7591 registration endpoint.
    Rfc7591Registration,
    /// `<RFC 7591 endpoint>/<client id>`: RFC 7592 client configuration.
    Rfc7592Client(String),
    /// RFC 9728 protected resource metadata: what follows the well-known path, `""` for the
    /// root form or a resource's path (§3.1).
    ResourceMetadata(String),
    /// The JWK Set of the signing keys.
    Jwks,
    /// OpenID Connect's UserInfo (Core §5.3).
    Userinfo,
    /// OpenID Connect Discovery's provider metadata (Discovery §4).
    OpenIdConfiguration,
}

impl Endpoint {
    /// Its row in the endpoint table.
    pub fn kind(&self) -> EndpointKind {
        match self {
            Endpoint::Token => EndpointKind::Token,
            Endpoint::Authorize => EndpointKind::Authorization,
            Endpoint::Revocation => EndpointKind::Revocation,
            Endpoint::Introspection => EndpointKind::Introspection,
            Endpoint::Metadata => EndpointKind::Metadata,
            Endpoint::Registration
            | Endpoint::RegisteredClient(_)
            | Endpoint::RegisteredClientSecret(_)
            | Endpoint::Subscriptions { .. } => EndpointKind::Wso2Registration,
            Endpoint::Rfc7591Registration | Endpoint::Rfc7592Client(_) => EndpointKind::Rfc7591Registration,
            Endpoint::ResourceMetadata(_) => EndpointKind::ResourceMetadata,
            Endpoint::Jwks => EndpointKind::Jwks,
            Endpoint::Userinfo => EndpointKind::Userinfo,
            Endpoint::OpenIdConfiguration => EndpointKind::OpenIdConfiguration,
        }
    }

    /// The endpoint of `kind` that `rest`, the path after the endpoint's own, names: the
    /// endpoint itself for `""`, a path below it for `/…` if its row serves those.
    fn of_kind(kind: EndpointKind, rest: &str) -> Option<Endpoint> {
        if rest.is_empty() {
            return Some(match kind {
                EndpointKind::Token => Endpoint::Token,
                EndpointKind::Authorization => Endpoint::Authorize,
                EndpointKind::Revocation => Endpoint::Revocation,
                EndpointKind::Introspection => Endpoint::Introspection,
                EndpointKind::Metadata => Endpoint::Metadata,
                EndpointKind::Wso2Registration => Endpoint::Registration,
                EndpointKind::Rfc7591Registration => Endpoint::Rfc7591Registration,
                EndpointKind::ResourceMetadata => Endpoint::ResourceMetadata(String::new()),
                EndpointKind::Jwks => Endpoint::Jwks,
                EndpointKind::Userinfo => Endpoint::Userinfo,
                EndpointKind::OpenIdConfiguration => Endpoint::OpenIdConfiguration,
            });
        }
        // A resource's path, '/' included: the metadata answers for it or says 404.
        if kind == EndpointKind::ResourceMetadata && rest.starts_with('/') {
            return Some(Endpoint::ResourceMetadata(rest.to_owned()));
        }
        let below = rest.strip_prefix('/').filter(|_| kind.spec().serves_below)?;
        match kind {
            EndpointKind::Rfc7591Registration => {
                (!below.is_empty() && !below.contains('/')).then(|| Endpoint::Rfc7592Client(below.to_owned()))
            }
            EndpointKind::Wso2Registration => Endpoint::below_wso2_registration(below),
            _ => None,
        }
    }

    /// `<client id>`, `<client id>/secret`, `<client id>/subscriptions[/<API name>]`.
    fn below_wso2_registration(below: &str) -> Option<Endpoint> {
        match below.split('/').collect::<Vec<_>>().as_slice() {
            [client_id] if !client_id.is_empty() => Some(Endpoint::RegisteredClient((*client_id).to_owned())),
            [client_id, "secret"] if !client_id.is_empty() => {
                Some(Endpoint::RegisteredClientSecret((*client_id).to_owned()))
            }
            [client_id, "subscriptions", api @ ..] if !client_id.is_empty() && api.len() <= 1 => {
                let api = api.first().map(|api| (*api).to_owned());
                Some(Endpoint::Subscriptions { client_id: (*client_id).to_owned(), api })
            }
            _ => None,
        }
    }
}

/// A request to one of the gateway's endpoints, body included.
pub struct EndpointRequest<'a> {
    pub method: &'a str,
    /// The `:path` pseudo-header: path and query.
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// Where the request came from (Envoy's `source.address`, `ip:port`), read for the login
    /// form only: its failures are counted per (username, address). `None`: unknown, and
    /// every such request shares one address.
    pub client_address: Option<&'a str>,
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
    /// The tiers' windows and the epochs the workers coordinate through.
    pub coordination: &'h dyn Coordination,
    /// When credentials last changed, as this VM last read it (see [`crate::state::credential_changes`]).
    pub credential_changes: &'h CredentialChanges,
    /// This Envoy process's own shared data, where the credential record lives (in fleet mode
    /// `shared` is etcd's view; connection ids are per process).
    pub process_shared: &'h dyn SharedStore,
    /// The request's downstream connection, asked for its id only when the record needs it.
    pub connection: &'h dyn Connection,
    /// The record generation this VM's config belongs to (see
    /// [`crate::state::credential_changes`]): set when it loads, and when it re-asserts a
    /// restored config.
    pub config_generation: &'h Cell<u64>,
    /// This VM's copy of the login handles' key (see [`crate::state::login_handle`]).
    pub login_key: &'h KeyMemory,
}

pub struct Gateway<'a> {
    config: &'a Config,
    store: TokenStore<'a>,
    limiter: FailureLimiter<'a>,
    registry: Option<ClientRegistry<'a>>,
    /// Codes and used login handles, when the authorization code flow is on.
    authorizations: Option<AuthorizationTable<'a>>,
    /// The key pending sign-ins are sealed under, likewise.
    login_keys: Option<HandleKeys<'a>>,
    clock: &'a dyn Clock,
    metrics: &'a dyn Metrics,
    coordination: &'a dyn Coordination,
    credential_changes: &'a CredentialChanges,
    process_shared: &'a dyn SharedStore,
    connection: &'a dyn Connection,
    config_generation: &'a Cell<u64>,
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
            store: TokenStore::new(
                host.shared,
                host.random,
                host.metrics,
                host.coordination,
                config.store_capacity,
            )
            .with_share_per_owner(config.max_grants_per_application),
            limiter: FailureLimiter::new(host.shared, host.random, config.lockout)
                .remembering(host.coordination),
            registry: config.registration.as_ref().map(|registration| {
                ClientRegistry::new(host.shared, host.random, host.metrics, registration.capacity)
            }),
            authorizations: config
                .authorization
                .as_ref()
                .map(|flow| AuthorizationTable::new(host.shared, host.random, flow.capacity)),
            login_keys: config
                .authorization
                .as_ref()
                .map(|_| HandleKeys::new(host.shared, host.random, host.login_key)),
            clock: host.clock,
            metrics: host.metrics,
            coordination: host.coordination,
            credential_changes: host.credential_changes,
            process_shared: host.process_shared,
            connection: host.connection,
            config_generation: host.config_generation,
        }
    }

    /// Sweeps the next slice of the token store (called from a timer on every VM): a
    /// `1/slices` share of its buckets, at least `min_buckets`.
    pub fn sweep_step(&self, slices: u32, min_buckets: u32) -> Result<(), StoreError> {
        let buckets = self.store.bucket_count().div_ceil(slices.max(1)).max(min_buckets);
        let mut registered = foldhash::HashMap::default();
        let mut keep = |record: &GrantRecord| self.may_stand(record, &mut registered);
        self.store.sweep_next(buckets, self.now()?, &mut keep)
    }

    /// The time, or [`StoreError::Unavailable`] when the host cannot tell it: the request is
    /// then refused like one whose store read failed (503), and nothing is written.
    fn now(&self) -> Result<u64, StoreError> {
        self.clock.now_millis().ok_or(StoreError::Unavailable)
    }

    /// Which of the gateway's own endpoints `path_and_query` names, if any: each endpoint of
    /// the table ([`EndpointKind::ALL`]) that is on, at its path or below it.
    pub fn endpoint(&self, path_and_query: &str) -> Option<Endpoint> {
        let (path, _) = split_path(path_and_query);
        EndpointKind::ALL.into_iter().find_map(|kind| {
            let rest = path.strip_prefix(self.endpoint_path(kind)?)?;
            Endpoint::of_kind(kind, rest)
        })
    }

    /// Where the configuration puts an endpoint; `None` when it is off (the authorization
    /// endpoint without the code flow, the registration endpoints without `registration`, the
    /// JWKS without `signing`).
    fn endpoint_path(&self, kind: EndpointKind) -> Option<&'a str> {
        let config = self.config;
        let registration = config.registration.as_ref();
        match kind {
            EndpointKind::Token => Some(&config.token_endpoint),
            EndpointKind::Revocation => Some(&config.revocation_endpoint),
            EndpointKind::Introspection => Some(&config.introspection_endpoint),
            EndpointKind::Metadata => Some(METADATA_PATH),
            EndpointKind::Authorization => config.authorization.as_ref().map(|flow| flow.endpoint.as_str()),
            EndpointKind::Wso2Registration => registration.map(|r| r.endpoint.as_str()),
            EndpointKind::Rfc7591Registration => registration.map(|r| r.rfc7591_endpoint.as_str()),
            // Only when there is a resource to describe: otherwise the path stays an API's.
            EndpointKind::ResourceMetadata => {
                config.apis.iter().any(|api| api.resource.is_some()).then_some(RESOURCE_METADATA_PATH)
            }
            EndpointKind::Jwks => config.signing.as_ref().map(|signing| signing.jwks_endpoint.as_str()),
            EndpointKind::Userinfo => {
                config.signing.as_ref().map(|signing| signing.userinfo_endpoint.as_str())
            }
            EndpointKind::OpenIdConfiguration => config.signing.as_ref().map(|_| OPENID_CONFIGURATION_PATH),
        }
    }

    /// [`Gateway::serve`] for a request that may carry an `Origin` header: a registered
    /// origin's preflight is answered here, and its request gets the CORS headers (`cors.rs`).
    pub fn serve_with_origin(
        &self,
        endpoint: &Endpoint,
        request: &EndpointRequest,
        origin: Option<&str>,
    ) -> Response {
        let Some(origin) = self.cors_origin(endpoint, origin) else { return self.serve(endpoint, request) };
        if request.method == "OPTIONS" {
            return cors::preflight(origin, endpoint.kind().spec().methods);
        }
        let mut response = self.serve(endpoint, request);
        cors::allow_origin(&mut response, origin);
        response
    }

    /// Answers a request to one of the gateway's endpoints.
    pub fn serve(&self, endpoint: &Endpoint, request: &EndpointRequest) -> Response {
        self.mark_config_boundary();
        match endpoint {
            Endpoint::Token => self.token_endpoint(request),
            Endpoint::Authorize => self.authorize_endpoint(request),
            Endpoint::Revocation => self.revocation_endpoint(request),
            Endpoint::Introspection => self.introspection_endpoint(request),
            Endpoint::Metadata => self.metadata_endpoint(request),
            Endpoint::Registration => self.registration_endpoint(request),
            Endpoint::RegisteredClient(client_id) => self.registered_client_endpoint(request, client_id),
            Endpoint::RegisteredClientSecret(client_id) => {
                self.regenerate_secret_endpoint(request, client_id)
            }
            Endpoint::Subscriptions { client_id, api } => {
                self.subscriptions_endpoint(request, client_id, api.as_deref())
            }
            Endpoint::Rfc7591Registration => self.rfc7591_registration_endpoint(request),
            Endpoint::Rfc7592Client(client_id) => self.rfc7592_client_endpoint(request, client_id),
            Endpoint::ResourceMetadata(suffix) => self.resource_metadata_endpoint(request, suffix),
            Endpoint::Jwks => self.jwks_endpoint(request),
            Endpoint::Userinfo => self.userinfo_endpoint(request),
            Endpoint::OpenIdConfiguration => self.openid_configuration_endpoint(request),
        }
    }

    /// The Bearer check (RFC 6750) of a request that is not for one of the gateway's
    /// endpoints: forward it, with the caller's identity, or answer it (`bearer.rs`).
    pub fn check_bearer(&self, request: &ApiRequest) -> Outcome {
        self.mark_config_boundary();
        match self.bearer_verdict(request) {
            Ok(forward) => {
                self.metrics.add(Metric::RequestsAllowed, 1);
                Outcome::Forward(forward)
            }
            Err(denial) => {
                self.metrics.add(Metric::RequestsDenied(denial.reason), 1);
                Outcome::Deny(denial)
            }
        }
    }

    /// The reply to an endpoint request whose body exceeds `max_body_bytes`.
    pub fn body_too_large(&self) -> Response {
        self.oauth_error_response(ErrorKind::BodyTooLarge.because("the request body is too large"))
    }

    /// An endpoint's error as its RFC 6749 §5.2 reply.
    fn oauth_error_response(&self, error: OAuthError) -> Response {
        error.to_response(&self.config.realm)
    }
}

#[cfg(test)]
mod tests;
