//! The configuration as JSON spells it: serde types with their defaults, nothing validated.
//!
//! `Config::from_json` parses these (unknown fields refused), then each section is
//! checked and turned into the types the gateway uses (`sections.rs`).

use serde::Deserialize;

use super::parts::{SubscriptionState, TierUnit, TokenFormat};
use crate::jose::{PrivateJwk, PublicJwk};
use crate::oauth::grant_type::GrantType;
use crate::oauth::redirect_uri::ApplicationType;

const DEFAULT_ACCESS_VALIDITY_SECS: i64 = 3600;
const DEFAULT_REFRESH_VALIDITY_SECS: i64 = 86400;
/// Short: an upstream that verifies a JWT offline accepts it until `exp`, revoked or not.
const DEFAULT_JWT_ACCESS_VALIDITY_SECS: i64 = 300;
const DEFAULT_MAX_BODY_BYTES: usize = 8192;
const DEFAULT_STORE_CAPACITY: u32 = 10_000;
const DEFAULT_MAX_GRANTS_PER_APPLICATION: u32 = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default = "default_realm")]
    pub(super) realm: String,
    pub(super) issuer: Option<String>,
    #[serde(default = "default_token_endpoint")]
    pub(super) token_endpoint: String,
    #[serde(default = "default_revocation_endpoint")]
    pub(super) revocation_endpoint: String,
    #[serde(default = "default_introspection_endpoint")]
    pub(super) introspection_endpoint: String,
    pub(super) registration: Option<RawRegistration>,
    pub(super) fleet: Option<RawFleet>,
    #[serde(default = "default_access_validity")]
    pub(super) access_token_validity_secs: i64,
    #[serde(default = "default_refresh_validity")]
    pub(super) refresh_token_validity_secs: i64,
    /// The format of applications that name none, registered ones included.
    #[serde(default)]
    pub(super) token_format: TokenFormat,
    /// Lifetime of JWT access tokens of applications that set no `access_token_validity_secs`.
    #[serde(default = "default_jwt_access_validity")]
    pub(super) jwt_access_token_validity_secs: i64,
    #[serde(default = "default_refresh_reuse_grace")]
    pub(super) refresh_token_reuse_grace_ms: u64,
    #[serde(default = "default_max_body_bytes")]
    pub(super) max_body_bytes: usize,
    #[serde(default)]
    pub(super) forward_authorization: bool,
    /// Keep `X-HTTP-Method-Override` and the like on forwarded requests (off: stripped).
    #[serde(default)]
    pub(super) forward_method_overrides: bool,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) lockout: RawLockout,
    pub(super) applications: Vec<RawApplication>,
    #[serde(default)]
    pub(super) users: Vec<RawUser>,
    #[serde(default)]
    pub(super) resources: Vec<RawResource>,
    /// Named request rates, next to the built-in Bronze, Silver, Gold and Unlimited.
    #[serde(default)]
    pub(super) tiers: Vec<RawTier>,
    /// Resources grouped under a context; reaching one needs a subscription (`subscriptions`).
    #[serde(default)]
    pub(super) apis: Vec<RawApi>,
    /// The authorization code flow (`/authorize`), on when an application uses it.
    #[serde(default)]
    pub(super) authorization: RawAuthorization,
    /// What the login page looks like (see `config/login_page.rs`).
    #[serde(default)]
    pub(super) login_page: RawLoginPage,
    /// Token signing keys and the JWKS (see `signing.rs`); absent: no JWKS, nothing signed.
    pub(super) signing: Option<RawSigning>,
}

/// The login page's look; every field optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLoginPage {
    /// The page's title and heading (default "Sign in").
    pub(super) title: Option<String>,
    /// A `data:image/…;base64,` URI or an `https://` URL.
    pub(super) logo: Option<String>,
    /// `#rgb` or `#rrggbb`.
    pub(super) accent_color: Option<String>,
    /// A line of plain text under the form.
    pub(super) footer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigning {
    /// Private JWKs (with `d`), as `tokengate keygen` prints them; the first of each
    /// algorithm signs.
    pub(super) keys: Vec<PrivateJwk>,
    /// Public JWKs of keys that no longer sign, kept in the JWKS until every token they signed
    /// has expired (a `d` here is refused as an unknown field).
    #[serde(default)]
    pub(super) retired_keys: Vec<PublicJwk>,
    #[serde(default = "default_jwks_endpoint")]
    pub(super) jwks_endpoint: String,
    /// OpenID Connect's UserInfo endpoint (Core §5.3).
    #[serde(default = "default_userinfo_endpoint")]
    pub(super) userinfo_endpoint: String,
    /// How long an ID token is good for (Core §2 `exp`).
    #[serde(default = "default_id_token_lifetime")]
    pub(super) id_token_lifetime_secs: u64,
}

/// WSO2 API Manager's path for its UserInfo endpoint.
pub(super) fn default_userinfo_endpoint() -> String {
    "/oauth2/userinfo".to_owned()
}

/// Five minutes: an ID token is read once, when the client signs the user in.
pub(super) fn default_id_token_lifetime() -> u64 {
    300
}

/// WSO2 API Manager's path for its JWKS.
pub(super) fn default_jwks_endpoint() -> String {
    "/oauth2/jwks".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuthorization {
    pub(super) endpoint: String,
    /// How long a code lives (RFC 6749 §4.1.2: 10 minutes at most; we allow 60 s).
    pub(super) code_lifetime_secs: u64,
    /// How long the login page's handle stays good.
    pub(super) login_lifetime_secs: u64,
    /// Codes and used login handles the shared-data table holds (pending sign-ins are not
    /// stored: they travel sealed in the login page, see `state::login_handle`).
    pub(super) capacity: u32,
    /// PBKDF2 iterations each worker may spend a second checking passwords at the login form
    /// (see [`crate::state::hash_budget`]).
    pub(super) pbkdf2_iterations_per_sec: u64,
}

impl Default for RawAuthorization {
    fn default() -> Self {
        RawAuthorization {
            endpoint: "/authorize".to_owned(),
            code_lifetime_secs: 60,
            login_lifetime_secs: 300,
            capacity: 1024,
            pbkdf2_iterations_per_sec: 100_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTier {
    pub(super) name: String,
    pub(super) requests: u32,
    pub(super) per: TierUnit,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub(super) name: String,
    pub(super) version: String,
    /// The path prefix every resource of this API sits under, like `/orders/1.0.0`.
    pub(super) context: String,
    pub(super) resources: Vec<RawResource>,
    /// The Envoy cluster production tokens go to; absent: the route's own cluster.
    pub(super) production_upstream: Option<String>,
    /// The Envoy cluster sandbox tokens go to; absent: the API refuses sandbox tokens.
    pub(super) sandbox_upstream: Option<String>,
    /// The API's resource identifier (RFC 8707, RFC 9728); absent: the issuer's scheme and
    /// authority followed by the context.
    pub(super) resource: Option<String>,
    /// Refuse tokens issued without `resource` here (RFC 8707), not only those bound elsewhere.
    #[serde(default)]
    pub(super) require_audience: bool,
    /// A signed assertion of the caller for the upstream (WSO2's backend JWT); absent: none.
    pub(super) backend_jwt: Option<RawBackendJwt>,
}

/// An API's backend JWT: present and `enabled` (the default), each forwarded request carries
/// `X-JWT-Assertion`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackendJwt {
    #[serde(default = "enabled_by_default")]
    pub(super) enabled: bool,
    #[serde(default = "default_backend_jwt_lifetime")]
    pub(super) lifetime_seconds: u64,
}

fn enabled_by_default() -> bool {
    true
}

/// Five minutes: long enough to be reused across a client's burst of requests, short enough
/// that a captured assertion soon means nothing.
fn default_backend_jwt_lifetime() -> u64 {
    300
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubscription {
    pub(super) api: String,
    #[serde(default = "default_tier")]
    pub(super) tier: String,
    #[serde(default)]
    pub(super) state: SubscriptionState,
}

pub(super) fn default_tier() -> String {
    "Unlimited".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistration {
    #[serde(default = "default_registration_endpoint")]
    pub(super) endpoint: String,
    /// RFC 7591 registration (and RFC 7592 management below it).
    #[serde(default = "default_rfc7591_endpoint")]
    pub(super) rfc7591_endpoint: String,
    #[serde(default = "default_registration_capacity")]
    pub(super) capacity: u32,
    #[serde(default = "default_grant_types")]
    pub(super) grant_types: Vec<GrantType>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    #[serde(default = "default_registrations_per_owner")]
    pub(super) max_per_owner: u32,
    /// RFC 7591 §3 registration without an initial access token, for public clients only.
    pub(super) open: Option<RawOpenRegistration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOpenRegistration {
    pub(super) scopes: Vec<String>,
    #[serde(default = "default_open_per_source")]
    pub(super) max_per_source: u32,
    #[serde(default = "default_open_total")]
    pub(super) max_registrations: u32,
    #[serde(default = "default_open_unused_secs")]
    pub(super) expire_unused_after_secs: u32,
    /// The APIs every open registration is subscribed to (it has no administrator to
    /// subscribe it through the admin endpoint).
    #[serde(default)]
    pub(super) subscriptions: Vec<RawOpenSubscription>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOpenSubscription {
    pub(super) api: String,
    #[serde(default = "default_tier")]
    pub(super) tier: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLockout {
    pub(super) max_failures: u16,
    pub(super) window_secs: u64,
    pub(super) lockout_secs: u64,
    /// Unknown names whose failures can be counted at once (see [`crate::state::lockout`]).
    pub(super) tracked_names: u32,
}

impl Default for RawLockout {
    fn default() -> Self {
        RawLockout { max_failures: 10, window_secs: 60, lockout_secs: 300, tracked_names: 32_768 }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    #[serde(default = "default_store_capacity")]
    pub(super) capacity: u32,
    /// Live grants one application may hold (see [`crate::state::grants`]).
    #[serde(default = "default_max_grants_per_application")]
    pub(super) max_grants_per_application: u32,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            capacity: DEFAULT_STORE_CAPACITY,
            max_grants_per_application: DEFAULT_MAX_GRANTS_PER_APPLICATION,
        }
    }
}

fn default_jwt_access_validity() -> i64 {
    DEFAULT_JWT_ACCESS_VALIDITY_SECS
}
fn default_store_capacity() -> u32 {
    DEFAULT_STORE_CAPACITY
}
fn default_max_grants_per_application() -> u32 {
    DEFAULT_MAX_GRANTS_PER_APPLICATION
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApplication {
    pub(super) consumer_key: String,
    pub(super) consumer_secret: Option<String>,
    pub(super) consumer_secret_hash: Option<String>,
    #[serde(default = "default_grant_types")]
    pub(super) grant_types: Vec<GrantType>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    pub(super) access_token_validity_secs: Option<i64>,
    /// `opaque` or `jwt`; the top-level `token_format` when absent.
    pub(super) token_format: Option<TokenFormat>,
    /// May introspect any token (a resource server), not only its own.
    #[serde(default)]
    pub(super) introspect: bool,
    /// A public client (RFC 6749 §2.1): no secret, `client_id` only, PKCE on every code.
    #[serde(default)]
    pub(super) public: bool,
    /// Where `/authorize` may send codes: exact strings (RFC 9700 §4.1.3).
    #[serde(default)]
    pub(super) redirect_uris: Vec<String>,
    /// `web` (the default) or `native` (RFC 8252): which redirect URIs it may use and how they
    /// are matched (see [`crate::oauth::redirect_uri`]).
    #[serde(default)]
    pub(super) application_type: ApplicationType,
    /// Shown on the login page; the consumer key when absent.
    pub(super) name: Option<String>,
    /// The APIs (of `apis`) this application may call, each with its tier.
    #[serde(default)]
    pub(super) subscriptions: Vec<RawSubscription>,
    /// WSO2's second key pair: tokens issued with it are sandbox tokens.
    pub(super) sandbox: Option<RawKeyPair>,
}

/// A consumer key and its secret (plaintext or hashed, as for the production pair).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeyPair {
    pub(super) consumer_key: String,
    pub(super) consumer_secret: Option<String>,
    pub(super) consumer_secret_hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) username: String,
    pub(super) password: Option<String>,
    pub(super) password_hash: Option<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    /// May register applications, and read, re-key and delete the ones it registered.
    #[serde(default)]
    pub(super) admin: bool,
    /// An admin who may manage every registered application, and register for any owner.
    #[serde(default)]
    pub(super) super_admin: bool,
    /// OpenID Connect claims (Core §5.1), released by the `profile` scope.
    pub(super) name: Option<String>,
    pub(super) given_name: Option<String>,
    pub(super) family_name: Option<String>,
    /// Released by the `email` scope, with `email_verified`.
    pub(super) email: Option<String>,
    #[serde(default)]
    pub(super) email_verified: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResource {
    pub(super) methods: Vec<String>,
    pub(super) path: String,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    #[serde(default)]
    pub(super) public: bool,
}

pub(super) fn default_realm() -> String {
    "tokengate".to_owned()
}
pub(super) fn default_token_endpoint() -> String {
    "/token".to_owned()
}
pub(super) fn default_revocation_endpoint() -> String {
    "/revoke".to_owned()
}
pub(super) fn default_introspection_endpoint() -> String {
    "/introspect".to_owned()
}
pub(super) fn default_registration_endpoint() -> String {
    "/client-registration/v0.17/register".to_owned()
}
pub(super) fn default_rfc7591_endpoint() -> String {
    "/register".to_owned()
}
pub(super) fn default_registration_capacity() -> u32 {
    1024
}
pub(super) fn default_registrations_per_owner() -> u32 {
    100
}
pub(super) fn default_open_per_source() -> u32 {
    5
}
pub(super) fn default_open_total() -> u32 {
    100
}
/// 30 days.
pub(super) fn default_open_unused_secs() -> u32 {
    30 * 24 * 3600
}
pub(super) fn default_access_validity() -> i64 {
    DEFAULT_ACCESS_VALIDITY_SECS
}
pub(super) fn default_refresh_validity() -> i64 {
    DEFAULT_REFRESH_VALIDITY_SECS
}
/// RFC 9700 §4.14.2: a replaced refresh token presented again is reuse, however soon.
pub(super) fn default_refresh_reuse_grace() -> u64 {
    0
}
pub(super) fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
pub(super) fn default_grant_types() -> Vec<GrantType> {
    // RFC 9700 §2.4: the password grant is never on unless an application asks for it.
    vec![GrantType::ClientCredentials]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub(super) cluster: String,
    #[serde(default = "default_fleet_prefix")]
    pub(super) prefix: String,
    #[serde(default = "default_fleet_timeout")]
    pub(super) timeout_ms: u64,
    #[serde(default = "default_fleet_staleness")]
    pub(super) staleness_ms: u64,
    pub(super) etcd_user: Option<String>,
    pub(super) etcd_password: Option<String>,
    #[serde(default = "default_etcd_token_renewal")]
    pub(super) etcd_token_renewal_ms: u64,
}

pub(super) fn default_fleet_prefix() -> String {
    crate::state::keys::ROOT.to_owned()
}
pub(super) fn default_fleet_timeout() -> u64 {
    1000
}
pub(super) fn default_fleet_staleness() -> u64 {
    5000
}
/// Well inside etcd's default token TTL (`--auth-token-ttl`, 300 s), so a token lapses only
/// when etcd is away for minutes.
pub(super) fn default_etcd_token_renewal() -> u64 {
    120_000
}
