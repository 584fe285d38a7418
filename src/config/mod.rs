//! The plugin configuration: parsed once from JSON, then validated completely.
//!
//! Parsing rejects unknown fields and wrong types; validation checks values and
//! cross-references. Every error names where the problem is, never the value found there, so
//! a secret typed into the wrong field cannot reach Envoy's log.

//!
//! `raw.rs` holds the JSON's serde types and defaults, `sections.rs` one check per section,
//! `parts.rs` the validated pieces, `scope_catalog.rs` every scope named anywhere,
//! `login_page.rs` the login page's look and its stylesheet's CSP hash.

mod apis;
mod error;
mod json_path;
mod login_page;
mod parts;
mod raw;
mod scope_catalog;
mod sections;
mod signing;

// Looked up on every request; foldhash is several times cheaper than SipHash on short keys,
// and these maps are built from the operator's config, so no caller chooses what goes in.
use foldhash::HashMap;

use crate::oauth::credentials::SecretVerifier;
use crate::oauth::routes::RouteTable;
use crate::oauth::scope::{scope_id, ScopeId, ScopeSet};
use crate::state::credential_changes::CredentialKind;
use crate::state::layout::StoreLayout;
use crate::state::lockout::LockoutPolicy;
pub use apis::{metadata_suffix, registered_counter, MAX_COUNTERS};
use error::problem;
pub use error::ConfigError;
pub use login_page::{LoginPageLook, Logo};
pub use parts::{
    Api, Application, AuthorizationConfig, BackendJwt, EtcdLogin, EtcdPassword, FleetConfig,
    OpenRegistration, RegistrationConfig, Subscription, SubscriptionState, Tier, TierUnit, TokenFormat, User,
    UserClaims, Validity,
};
use raw::RawConfig;
use scope_catalog::ScopeCatalog;
pub use signing::SigningConfig;

/// A validated configuration: everything the gateway needs, precomputed.
pub struct Config {
    pub realm: String,
    /// The RFC 8414 issuer; metadata is served only when it is set.
    pub issuer: Option<String>,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub registration: Option<RegistrationConfig>,
    /// The authorization code flow (`/authorize`), when some application uses it.
    pub authorization: Option<AuthorizationConfig>,
    /// The login and error pages' title, logo, footer and stylesheet.
    pub login_page: LoginPageLook,
    /// Fleet mode (many Envoys, one token state in etcd); `None`: this Envoy alone.
    pub fleet: Option<FleetConfig>,
    /// Token signing keys and the JWKS; `None`: nothing is signed and no JWKS is served.
    pub signing: Option<SigningConfig>,
    /// Access token lifetime for registered applications.
    pub default_access_validity: Validity,
    /// The access token format of registered applications.
    pub default_token_format: TokenFormat,
    /// The lifetime of JWT access tokens of applications that set none (registered ones too).
    pub jwt_access_validity: Validity,
    pub refresh_validity_secs: u64,
    /// How long the refresh token just replaced counts as a lost race, not a reuse.
    pub refresh_reuse_grace_ms: u64,
    pub max_body_bytes: usize,
    pub forward_authorization: bool,
    /// Keep method and URL override headers on forwarded requests (see `gateway/bearer.rs`).
    pub forward_method_overrides: bool,
    /// Live grants the token store holds (the store derives its bucket table from it).
    pub store_capacity: u32,
    /// Live grants one application may hold (rounded up to whole buckets).
    pub max_grants_per_application: u32,
    pub applications: HashMap<String, Application>,
    pub users: HashMap<String, User>,
    pub routes: RouteTable,
    /// The APIs of `apis`, by the index resources and subscriptions name them with.
    pub apis: Vec<Api>,
    /// Window counters the subscriptions with a rate count in (see `gateway/throttle.rs`).
    pub window_counters: usize,
    /// Every tier by name (built-in and configured): registered applications' subscriptions
    /// name theirs.
    pub tiers: HashMap<String, Tier>,
    /// Window counters after `window_counters` that registered applications' rated
    /// subscriptions share, by a hash of application and API (see `apis::registered_counter`).
    pub registered_window_counters: usize,
    pub lockout: LockoutPolicy,
    /// Every configured scope by its stored id.
    pub scope_names: HashMap<ScopeId, String>,
    /// The same, by name: issuing looks ids up here instead of hashing names each time.
    scope_ids: HashMap<String, ScopeId>,
    /// Checked when a client or user is unknown, so that case costs what a wrong secret costs.
    pub decoy_client_verifier: SecretVerifier,
    pub decoy_user_verifier: SecretVerifier,
}

impl Config {
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|error| {
            let what = redacted(&error);
            let offset = json_path::offset_of(bytes, error.line(), error.column());
            match json_path::path_at(bytes, offset) {
                path if path == "." => ConfigError(what),
                path => problem(path, what),
            }
        })?;
        Config::validate(raw)
    }

    /// One section at a time (`sections.rs`); scopes named anywhere go into one catalog, so
    /// a resource can be checked against what some application may be granted.
    fn validate(mut raw: RawConfig) -> Result<Config, ConfigError> {
        sections::check_realm_and_issuer(&raw)?;
        let endpoints = sections::endpoints(&raw)?;
        let lifetimes = sections::lifetimes(&raw)?;
        let lockout = sections::limits(&raw)?;
        let mut catalog = ScopeCatalog::default();
        let tiers = apis::tiers(std::mem::take(&mut raw.tiers))?;
        let api_list = apis::apis(&raw.apis, raw.issuer.as_deref(), raw.signing.is_some())?;
        let subscriptions: Vec<_> = (raw.applications.iter_mut().enumerate())
            .map(|(i, app)| (i, app.consumer_key.clone(), std::mem::take(&mut app.subscriptions)))
            .collect();
        let (mut applications, sandbox_pairs) =
            sections::applications(raw.applications, &lifetimes, &mut catalog)?;
        let window_counters = apis::subscribe(&mut applications, subscriptions, &api_list, &tiers)?;
        sections::add_sandbox_pairs(&mut applications, sandbox_pairs)?;
        let authorization = sections::authorization(
            &raw.authorization,
            sections::AuthorizationContext {
                registration_grants: raw.registration.as_ref().map(|r| r.grant_types.as_slice()),
            },
            &applications,
        )?;
        let login_page = login_page::login_page(raw.login_page)?;
        let users = sections::users(raw.users, &mut catalog)?;
        let open_subscriptions =
            (raw.registration.as_mut().and_then(|registration| registration.open.as_mut()))
                .map(|open| std::mem::take(&mut open.subscriptions))
                .unwrap_or_default();
        let mut registration = match raw.registration {
            Some(registration) => Some(sections::registration(registration, &users, &mut catalog)?),
            None => None,
        };
        if let Some(open) = registration.as_mut().and_then(|registration| registration.open.as_mut()) {
            open.subscriptions = apis::open_subscriptions(open_subscriptions, &api_list, &tiers)?;
        }
        let routes = sections::routes(resources(raw.resources, raw.apis), &endpoints, &mut catalog)?;
        let fleet = raw.fleet.map(sections::fleet).transpose()?;
        let signing = raw.signing.map(signing::signing).transpose()?;
        sections::check_token_formats(
            &applications,
            lifetimes.format,
            signing.is_some(),
            raw.issuer.is_some(),
        )?;
        let registered_window_counters = match &registration {
            Some(registration) if !api_list.is_empty() => apis::registered_counters(registration.capacity),
            _ => 0,
        };
        let lockout = LockoutPolicy {
            known_names: known_principals(&applications, &users, &registration),
            // The login form's (user, address) pairs: as many as unknown names, when it is on.
            sign_in_pairs: if authorization.is_some() { lockout.tracked_names } else { 0 },
            ..lockout
        };

        let decoy_client_verifier =
            SecretVerifier::decoy_like(applications.values().map(|app| &app.verifier));
        let decoy_user_verifier = SecretVerifier::decoy_like(users.values().map(|user| &user.verifier));
        let (scope_names, scope_ids) = catalog.into_maps();
        Ok(Config {
            realm: raw.realm,
            issuer: raw.issuer,
            token_endpoint: raw.token_endpoint,
            revocation_endpoint: raw.revocation_endpoint,
            introspection_endpoint: raw.introspection_endpoint,
            registration,
            authorization,
            login_page,
            fleet,
            signing,
            default_access_validity: lifetimes.access,
            default_token_format: lifetimes.format,
            jwt_access_validity: lifetimes.jwt_access,
            refresh_validity_secs: lifetimes.refresh_secs,
            refresh_reuse_grace_ms: raw.refresh_token_reuse_grace_ms,
            max_body_bytes: raw.max_body_bytes,
            forward_authorization: raw.forward_authorization,
            forward_method_overrides: raw.forward_method_overrides,
            store_capacity: raw.store.capacity,
            max_grants_per_application: raw.store.max_grants_per_application,
            applications,
            users,
            routes,
            apis: api_list,
            window_counters,
            tiers,
            registered_window_counters,
            lockout,
            scope_names,
            scope_ids,
            decoy_client_verifier,
            decoy_user_verifier,
        })
    }
}

/// Every resource with where the config lists it and its API: the flat list first, then each
/// API's, under its context.
fn resources(
    flat: Vec<raw::RawResource>,
    apis: Vec<raw::RawApi>,
) -> Vec<(String, raw::RawResource, Option<usize>)> {
    let flat = flat.into_iter().enumerate().map(|(i, resource)| (format!("resources[{i}]"), resource, None));
    let grouped = apis.into_iter().enumerate().flat_map(|(i, api)| {
        let context = api.context;
        api.resources.into_iter().enumerate().map(move |(j, mut resource)| {
            resource.path = apis::full_path(&context, &resource.path);
            (format!("apis[{i}].resources[{j}]"), resource, Some(i))
        })
    });
    flat.chain(grouped).collect()
}

/// serde's message for a parse error, without the value found: "invalid type/value" and
/// "unknown variant" messages quote it, and it may be a secret typed into the wrong field.
/// Field names (unknown, missing) are kept, and so are the variants serde expected.
fn redacted(error: &serde_json::Error) -> String {
    let message = error.to_string();
    if !error.is_data() || message.starts_with("unknown field") || message.starts_with("missing field") {
        return message;
    }
    let at = format!("line {} column {}", error.line(), error.column());
    if message.starts_with("unknown variant") {
        // "unknown variant `<value>`, expected one of `a`, `b` at line L column C"
        let expected = message
            .split_once(", expected ")
            .map(|(_, rest)| rest.rsplit_once(" at line ").map_or(rest, |(expected, _)| expected));
        return match expected {
            Some(expected) => format!("unknown variant at {at}, expected {expected}"),
            None => format!("unknown variant at {at}"),
        };
    }
    format!("wrong type or value at {at}")
}

/// Every name whose failures the lockout counts in its table of known names: the configured
/// applications, users (and again administrators, whose admin logins count apart), and room
/// for every registered application.
fn known_principals(
    applications: &HashMap<String, Application>,
    users: &HashMap<String, User>,
    registration: &Option<RegistrationConfig>,
) -> u32 {
    let admins = users.values().filter(|user| user.is_admin).count();
    let configured = applications.len().saturating_add(users.len()).saturating_add(admins);
    let registered = registration.as_ref().map_or(0, |registration| registration.capacity);
    u32::try_from(configured).unwrap_or(u32::MAX).saturating_add(registered)
}

impl Config {
    /// The shared-data tables this config uses, sized by it.
    pub fn store_layout(&self) -> StoreLayout {
        StoreLayout::new(
            self.store_capacity,
            self.registration.as_ref().map(|registration| registration.capacity),
            self.authorization.as_ref().map(|flow| flow.capacity),
            self.lockout,
        )
    }

    /// The stored ids of a set of scopes, in the set's (name) order.
    pub fn scope_ids(&self, scopes: &ScopeSet) -> Vec<ScopeId> {
        scopes
            .iter()
            .map(|name| self.scope_ids.get(name).copied().unwrap_or_else(|| scope_id(name)))
            .collect()
    }

    /// When a refresh token issued (or rotated) at `now_ms` expires.
    pub fn refresh_expires_at(&self, now_ms: u64) -> u64 {
        Validity::Seconds(self.refresh_validity_secs).expires_at(now_ms)
    }

    /// Every configured application and user with its credential fingerprint, for
    /// [`CredentialChanges::record`].
    pub fn credentials(&self) -> Vec<(CredentialKind, &str, u32)> {
        self.applications
            .values()
            .map(|app| (CredentialKind::Application, app.consumer_key.as_str(), app.fingerprint))
            .chain(
                self.users
                    .values()
                    .map(|user| (CredentialKind::User, user.username.as_str(), user.fingerprint)),
            )
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
