//! The plugin configuration: parsed once from JSON, then validated completely.
//!
//! Parsing rejects unknown fields and wrong types; validation checks values and
//! cross-references. Every error names where the problem is, never the value found there, so
//! a secret typed into the wrong field cannot reach Envoy's log.

use std::collections::BTreeSet;

// Looked up on every request; foldhash is several times cheaper than SipHash on short keys,
// and these maps are built from the operator's config, so no caller chooses what goes in.
use foldhash::{HashMap, HashMapExt};

use serde::Deserialize;

use crate::credentials::SecretVerifier;
use crate::epochs::CredentialKind;
use crate::limits::{LockoutPolicy, NAMES_PER_BUCKET};
use crate::registry::client_bucket_count_for;
use crate::routes::{Access, PathTemplate, RouteRule, RouteTable};
use crate::scope::{is_scope_token, scope_id, ScopeId, ScopeSet};
use crate::store::bucket_count_for;

/// Where RFC 8414 metadata is served.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

pub const DEFAULT_ACCESS_VALIDITY_SECS: i64 = 3600;
pub const DEFAULT_REFRESH_VALIDITY_SECS: i64 = 86400;
const DEFAULT_MAX_BODY_BYTES: usize = 8192;
const DEFAULT_STORE_CAPACITY: u32 = 10_000;
const MAX_STORE_CAPACITY: u32 = 1 << 24;
/// The store keeps names in one length byte.
const MAX_NAME_BYTES: usize = 255;
/// The store keeps scope lists in one count byte (0xFF is reserved).
const MAX_SCOPES: usize = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 3] =
        [GrantType::ClientCredentials, GrantType::Password, GrantType::RefreshToken];

    /// The `grant_type` parameter value (RFC 6749).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    pub fn from_param(value: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|grant| grant.as_str() == value)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_realm")]
    realm: String,
    issuer: Option<String>,
    #[serde(default = "default_token_endpoint")]
    token_endpoint: String,
    #[serde(default = "default_revocation_endpoint")]
    revocation_endpoint: String,
    #[serde(default = "default_introspection_endpoint")]
    introspection_endpoint: String,
    registration: Option<RawRegistration>,
    #[serde(default = "default_access_validity")]
    access_token_validity_secs: i64,
    #[serde(default = "default_refresh_validity")]
    refresh_token_validity_secs: i64,
    #[serde(default = "default_refresh_reuse_grace")]
    refresh_token_reuse_grace_ms: u64,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default)]
    forward_authorization: bool,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    lockout: RawLockout,
    applications: Vec<RawApplication>,
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    resources: Vec<RawResource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistration {
    #[serde(default = "default_registration_endpoint")]
    endpoint: String,
    #[serde(default = "default_registration_capacity")]
    capacity: u32,
    #[serde(default = "default_grant_types")]
    grant_types: Vec<GrantType>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLockout {
    max_failures: u16,
    window_secs: u64,
    lockout_secs: u64,
    /// Names whose failures can be counted at once (see [`crate::limits`]).
    tracked_names: u32,
}

impl Default for RawLockout {
    fn default() -> Self {
        RawLockout { max_failures: 10, window_secs: 60, lockout_secs: 300, tracked_names: 4096 }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    capacity: u32,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore { capacity: DEFAULT_STORE_CAPACITY }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    consumer_key: String,
    consumer_secret: Option<String>,
    consumer_secret_hash: Option<String>,
    #[serde(default = "default_grant_types")]
    grant_types: Vec<GrantType>,
    #[serde(default)]
    scopes: Vec<String>,
    access_token_validity_secs: Option<i64>,
    /// May introspect any token (a resource server), not only its own.
    #[serde(default)]
    introspect: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    username: String,
    password: Option<String>,
    password_hash: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// May register, re-key and delete applications.
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    methods: Vec<String>,
    path: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    public: bool,
}

fn default_realm() -> String {
    "tokengate".to_owned()
}
fn default_token_endpoint() -> String {
    "/token".to_owned()
}
fn default_revocation_endpoint() -> String {
    "/revoke".to_owned()
}
fn default_introspection_endpoint() -> String {
    "/introspect".to_owned()
}
fn default_registration_endpoint() -> String {
    "/client-registration/v0.17/register".to_owned()
}
fn default_registration_capacity() -> u32 {
    1024
}
fn default_access_validity() -> i64 {
    DEFAULT_ACCESS_VALIDITY_SECS
}
fn default_refresh_validity() -> i64 {
    DEFAULT_REFRESH_VALIDITY_SECS
}
fn default_refresh_reuse_grace() -> u64 {
    5_000
}
fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_grant_types() -> Vec<GrantType> {
    // RFC 9700 §2.4: the password grant is never on unless an application asks for it.
    vec![GrantType::ClientCredentials]
}

/// How long a token lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Seconds(u64),
    /// The seeds' negative validity: the token never expires (it can still be revoked).
    Never,
}

impl Validity {
    /// When a token issued at `now_ms` expires, in milliseconds. A finite validity never
    /// reaches [`crate::store::NEVER_EXPIRES`], however late `now_ms` is: such a token is born
    /// expired instead of immortal.
    pub fn expires_at(self, now_ms: u64) -> u64 {
        match self {
            Validity::Seconds(secs) => {
                now_ms.saturating_add(secs.saturating_mul(1000)).min(crate::store::NEVER_EXPIRES - 1)
            }
            Validity::Never => crate::store::NEVER_EXPIRES,
        }
    }
}

#[derive(Clone)]
pub struct Application {
    pub consumer_key: String,
    pub verifier: SecretVerifier,
    /// Changes whenever the key or secret changes; tokens remember it.
    pub fingerprint: u32,
    pub grant_types: BTreeSet<GrantType>,
    pub scopes: ScopeSet,
    pub access_validity: Validity,
    pub can_introspect: bool,
}

pub struct User {
    pub username: String,
    pub verifier: SecretVerifier,
    pub fingerprint: u32,
    pub scopes: ScopeSet,
    pub is_admin: bool,
}

/// Dynamic client registration, when enabled.
pub struct RegistrationConfig {
    pub endpoint: String,
    pub bucket_count: u32,
    /// Grant types a registration may ask for.
    pub grant_types: BTreeSet<GrantType>,
    /// Scopes every registered application may be granted.
    pub scopes: ScopeSet,
}

/// A validated configuration: everything the gateway needs, precomputed.
pub struct Config {
    pub realm: String,
    /// The RFC 8414 issuer; metadata is served only when it is set.
    pub issuer: Option<String>,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub registration: Option<RegistrationConfig>,
    /// Access token lifetime for registered applications.
    pub default_access_validity: Validity,
    pub refresh_validity_secs: u64,
    /// How long the refresh token just replaced counts as a lost race, not a reuse.
    pub refresh_reuse_grace_ms: u64,
    pub max_body_bytes: usize,
    pub forward_authorization: bool,
    pub store_capacity: u32,
    pub bucket_count: u32,
    pub applications: HashMap<String, Application>,
    pub users: HashMap<String, User>,
    pub routes: RouteTable,
    pub lockout: LockoutPolicy,
    pub lockout_bucket_count: u32,
    /// Every configured scope by its stored id.
    pub scope_names: HashMap<ScopeId, String>,
    /// The same, by name: issuing looks ids up here instead of hashing names each time.
    scope_ids: HashMap<String, ScopeId>,
    /// Checked when a client or user is unknown, so that case costs what a wrong secret costs.
    pub decoy_client_verifier: SecretVerifier,
    pub decoy_user_verifier: SecretVerifier,
}

/// A configuration problem, phrased for one log line. Never contains a configured value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn problem(at: impl std::fmt::Display, what: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{at}: {what}"))
}

/// Refresh tokens come only from the password grant, so `refresh_token` without `password`
/// is a grant nobody could ever use.
pub fn refresh_without_password(grants: &BTreeSet<GrantType>) -> bool {
    grants.contains(&GrantType::RefreshToken) && !grants.contains(&GrantType::Password)
}

/// The grant types a configured application, or every registered one, may use: at least one,
/// none twice, none unusable.
fn grant_type_set(at: &str, listed: &[GrantType]) -> Result<BTreeSet<GrantType>, ConfigError> {
    let grants: BTreeSet<GrantType> = listed.iter().copied().collect();
    if grants.is_empty() {
        return Err(problem(at, "at least one grant type is needed"));
    }
    if grants.len() != listed.len() {
        return Err(problem(at, "lists a grant type twice"));
    }
    if refresh_without_password(&grants) {
        return Err(problem(
            at,
            "refresh_token alone, or with client_credentials only, can never be used: add password",
        ));
    }
    Ok(grants)
}

impl Config {
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            // serde's "invalid type/value" messages quote the offending value: describe it
            // by position instead, in case it is a secret typed into the wrong field.
            let what = if inner.is_data()
                && !inner.to_string().starts_with("unknown field")
                && !inner.to_string().starts_with("missing field")
                && !inner.to_string().starts_with("unknown variant")
            {
                format!("wrong type or value at line {} column {}", inner.line(), inner.column())
            } else {
                inner.to_string()
            };
            if path == "." {
                ConfigError(what)
            } else {
                problem(path, what)
            }
        })?;
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.realm.is_empty()
            || !raw.realm.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(problem("realm", "must be printable ASCII without '\"' or '\\'"));
        }
        if let Some(issuer) = &raw.issuer {
            check_issuer(issuer)?;
        }
        let mut endpoints = vec![
            ("token_endpoint", raw.token_endpoint.clone()),
            ("revocation_endpoint", raw.revocation_endpoint.clone()),
            ("introspection_endpoint", raw.introspection_endpoint.clone()),
            ("metadata endpoint", METADATA_PATH.to_owned()),
        ];
        if let Some(registration) = &raw.registration {
            endpoints.push(("registration.endpoint", registration.endpoint.clone()));
        }
        for (i, (name, path)) in endpoints.iter().enumerate() {
            if !path.starts_with('/') || path.contains(['?', '#', ' ', '{', '}', '*']) {
                return Err(problem(name, "must be a path starting with '/'"));
            }
            if endpoints.iter().take(i).any(|(_, other)| other == path) {
                return Err(problem(name, "is the same path as another endpoint"));
            }
        }
        let access_validity = validity("access_token_validity_secs", raw.access_token_validity_secs)?;
        let refresh_validity_secs = match raw.refresh_token_validity_secs {
            secs if secs > 0 => secs.unsigned_abs(),
            _ => return Err(problem("refresh_token_validity_secs", "must be a positive number of seconds")),
        };
        if raw.refresh_token_reuse_grace_ms > 60_000 {
            return Err(problem("refresh_token_reuse_grace_ms", "must be at most 60000"));
        }
        if !(256..=1 << 20).contains(&raw.max_body_bytes) {
            return Err(problem("max_body_bytes", "must be between 256 and 1048576"));
        }
        if !(1..=MAX_STORE_CAPACITY).contains(&raw.store.capacity) {
            return Err(problem("store.capacity", format!("must be between 1 and {MAX_STORE_CAPACITY}")));
        }
        let lockout = &raw.lockout;
        if lockout.max_failures > 0 && !(1..=86_400).contains(&lockout.window_secs) {
            return Err(problem("lockout.window_secs", "must be between 1 and 86400"));
        }
        if lockout.max_failures > 0 && !(1..=86_400).contains(&lockout.lockout_secs) {
            return Err(problem("lockout.lockout_secs", "must be between 1 and 86400"));
        }
        if !(NAMES_PER_BUCKET as u32..=MAX_STORE_CAPACITY).contains(&lockout.tracked_names) {
            return Err(problem(
                "lockout.tracked_names",
                format!("must be between 8 and {MAX_STORE_CAPACITY}"),
            ));
        }
        if raw.applications.is_empty() {
            return Err(problem("applications", "at least one application is needed"));
        }

        let mut scope_names: HashMap<ScopeId, String> = HashMap::new();
        let mut register_scopes = |at: &str, names: &[String]| -> Result<ScopeSet, ConfigError> {
            if names.len() > MAX_SCOPES {
                return Err(problem(at, format!("at most {MAX_SCOPES} scopes")));
            }
            for (i, name) in names.iter().enumerate() {
                if !is_scope_token(name) {
                    return Err(problem(format!("{at}[{i}]"), "not a valid scope (RFC 6749 §3.3)"));
                }
                let id = scope_id(name);
                match scope_names.get(&id) {
                    Some(existing) if existing != name => {
                        return Err(problem(
                            format!("{at}[{i}]"),
                            "scope name collides with another scope's id; rename it",
                        ));
                    }
                    _ => {
                        scope_names.insert(id, name.clone());
                    }
                }
            }
            Ok(ScopeSet::from_names(names.iter().cloned()))
        };

        let mut applications = HashMap::new();
        let mut grantable = ScopeSet::default();
        for (i, app) in raw.applications.into_iter().enumerate() {
            let at = format!("applications[{i}]");
            check_name(&format!("{at}.consumer_key"), &app.consumer_key)?;
            let verifier = verifier(&at, "consumer_secret", app.consumer_secret, app.consumer_secret_hash)?;
            let grant_types = grant_type_set(&format!("{at}.grant_types"), &app.grant_types)?;
            let scopes = register_scopes(&format!("{at}.scopes"), &app.scopes)?;
            grantable = ScopeSet::from_names(grantable.iter().chain(scopes.iter()).map(str::to_owned));
            let access_validity = match app.access_token_validity_secs {
                Some(secs) => validity(&format!("{at}.access_token_validity_secs"), secs)?,
                None => access_validity,
            };
            let application = Application {
                fingerprint: verifier.fingerprint(&app.consumer_key),
                consumer_key: app.consumer_key.clone(),
                verifier,
                grant_types,
                scopes,
                access_validity,
                can_introspect: app.introspect,
            };
            if applications.insert(app.consumer_key, application).is_some() {
                return Err(problem(format!("{at}.consumer_key"), "the same consumer_key appears twice"));
            }
        }

        let mut users = HashMap::new();
        for (i, user) in raw.users.into_iter().enumerate() {
            let at = format!("users[{i}]");
            check_name(&format!("{at}.username"), &user.username)?;
            let verifier = verifier(&at, "password", user.password, user.password_hash)?;
            let scopes = register_scopes(&format!("{at}.scopes"), &user.scopes)?;
            let entry = User {
                fingerprint: verifier.fingerprint(&user.username),
                username: user.username.clone(),
                verifier,
                scopes,
                is_admin: user.admin,
            };
            if users.insert(user.username, entry).is_some() {
                return Err(problem(format!("{at}.username"), "the same username appears twice"));
            }
        }

        let registration = match raw.registration {
            None => None,
            Some(registration) => {
                let scopes = register_scopes("registration.scopes", &registration.scopes)?;
                grantable = ScopeSet::from_names(grantable.iter().chain(scopes.iter()).map(str::to_owned));
                if !(1..=MAX_STORE_CAPACITY).contains(&registration.capacity) {
                    return Err(problem(
                        "registration.capacity",
                        format!("must be between 1 and {MAX_STORE_CAPACITY}"),
                    ));
                }
                if !users.values().any(|user| user.is_admin) {
                    return Err(problem("registration", "no user is an admin, so nobody could register"));
                }
                Some(RegistrationConfig {
                    endpoint: registration.endpoint,
                    bucket_count: client_bucket_count_for(registration.capacity),
                    grant_types: grant_type_set("registration.grant_types", &registration.grant_types)?,
                    scopes,
                })
            }
        };

        let mut rules: Vec<RouteRule> = Vec::with_capacity(raw.resources.len());
        for (i, resource) in raw.resources.into_iter().enumerate() {
            let at = format!("resources[{i}]");
            let template =
                PathTemplate::parse(&resource.path).map_err(|e| problem(format!("{at}.path"), e.0))?;
            if let Some((name, _)) = endpoints.iter().find(|(_, path)| template.matches(path)) {
                return Err(problem(format!("{at}.path"), format!("overlaps the {name}")));
            }
            if resource.methods.is_empty() {
                return Err(problem(format!("{at}.methods"), "at least one method is needed"));
            }
            for (j, method) in resource.methods.iter().enumerate() {
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(problem(
                        format!("{at}.methods[{j}]"),
                        "an HTTP method in capitals, like GET",
                    ));
                }
                // Templates, not their text: `/orders/{id}` and `/orders/{x}` are one template.
                let listed_before = resource.methods.iter().take(j).any(|m| m == method)
                    || rules.iter().any(|rule| rule.template == template && rule.methods.contains(method));
                if listed_before {
                    return Err(problem(
                        format!("{at}.methods[{j}]"),
                        "this method and path are listed twice",
                    ));
                }
            }
            let access = if resource.public {
                if !resource.scopes.is_empty() {
                    return Err(problem(format!("{at}.scopes"), "a public resource needs no scopes"));
                }
                Access::Public
            } else {
                let scopes = register_scopes(&format!("{at}.scopes"), &resource.scopes)?;
                if let Some(j) = resource.scopes.iter().position(|name| !grantable.contains(name)) {
                    return Err(problem(
                        format!("{at}.scopes[{j}]"),
                        "no application can be granted this scope",
                    ));
                }
                Access::scopes(scopes.iter().map(str::to_owned))
            };
            rules.push(RouteRule { methods: resource.methods, template, access });
        }

        let decoy_client_verifier =
            SecretVerifier::decoy_like(applications.values().map(|app| &app.verifier));
        let decoy_user_verifier = SecretVerifier::decoy_like(users.values().map(|user| &user.verifier));
        Ok(Config {
            realm: raw.realm,
            issuer: raw.issuer,
            token_endpoint: raw.token_endpoint,
            revocation_endpoint: raw.revocation_endpoint,
            introspection_endpoint: raw.introspection_endpoint,
            registration,
            default_access_validity: access_validity,
            refresh_validity_secs,
            refresh_reuse_grace_ms: raw.refresh_token_reuse_grace_ms,
            max_body_bytes: raw.max_body_bytes,
            forward_authorization: raw.forward_authorization,
            store_capacity: raw.store.capacity,
            bucket_count: bucket_count_for(raw.store.capacity),
            applications,
            users,
            routes: RouteTable::new(rules),
            lockout: LockoutPolicy {
                max_failures: raw.lockout.max_failures,
                window_secs: raw.lockout.window_secs,
                lockout_secs: raw.lockout.lockout_secs,
            },
            lockout_bucket_count: raw.lockout.tracked_names.div_ceil(NAMES_PER_BUCKET as u32),
            scope_ids: scope_names.iter().map(|(id, name)| (name.clone(), *id)).collect(),
            scope_names,
            decoy_client_verifier,
            decoy_user_verifier,
        })
    }
}

impl Config {
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

fn validity(at: &str, secs: i64) -> Result<Validity, ConfigError> {
    match secs {
        0 => Err(problem(at, "0 is not a validity: use a positive number of seconds, or -1 for never")),
        secs if secs < 0 => Ok(Validity::Never),
        secs => Ok(Validity::Seconds(secs.unsigned_abs())),
    }
}

/// RFC 8414 §2: https, no query or fragment. Plain http is allowed on loopback only, for demos.
fn check_issuer(issuer: &str) -> Result<(), ConfigError> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    let is_loopback = loopback.iter().any(|prefix| {
        issuer.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
    });
    let host_part = issuer.strip_prefix("https://").map(|rest| rest.split('/').next().unwrap_or_default());
    if !(is_loopback || host_part.is_some_and(|host| !host.is_empty())) {
        return Err(problem("issuer", "must be an https URL (plain http only on loopback)"));
    }
    if issuer.contains(['?', '#', ' ']) || issuer.ends_with('/') {
        return Err(problem("issuer", "must have no query, fragment or trailing '/'"));
    }
    Ok(())
}

fn check_name(at: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(problem(at, format!("must be 1 to {MAX_NAME_BYTES} bytes without control characters")));
    }
    Ok(())
}

fn verifier(
    at: &str,
    field: &str,
    plain: Option<String>,
    hash: Option<String>,
) -> Result<SecretVerifier, ConfigError> {
    match (plain, hash) {
        (Some(plain), None) if !plain.is_empty() => Ok(SecretVerifier::from_plaintext(&plain)),
        (Some(_), None) => Err(problem(format!("{at}.{field}"), "must not be empty")),
        (None, Some(hash)) => {
            SecretVerifier::parse(&hash).map_err(|e| problem(format!("{at}.{field}_hash"), e.0))
        }
        (Some(_), Some(_)) => Err(problem(at, format!("give {field} or {field}_hash, not both"))),
        (None, None) => Err(problem(at, format!("{field} or {field}_hash is needed"))),
    }
}

#[cfg(test)]
pub(crate) mod tests;
