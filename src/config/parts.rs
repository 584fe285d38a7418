//! The validated pieces of a configuration: applications, users, registration, lifetimes.

use serde::Deserialize;

use crate::oauth::credentials::SecretVerifier;
use crate::oauth::grant_type::{GrantType, GrantTypes};
use crate::oauth::redirect_uri::ApplicationType;
use crate::oauth::scope::ScopeSet;
use crate::state::grants::{KeyType, NEVER_EXPIRES};
use crate::state::registry::RegisteredSubscription;

/// How long a token lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Seconds(u64),
    /// WSO2's negative validity: the token never expires (it can still be revoked).
    Never,
}

impl Validity {
    /// When a token issued at `now_ms` expires, in milliseconds. A finite validity never
    /// reaches [`NEVER_EXPIRES`], however late `now_ms` is: such a token is born
    /// expired instead of immortal.
    pub fn expires_at(self, now_ms: u64) -> u64 {
        match self {
            Validity::Seconds(secs) => {
                now_ms.saturating_add(secs.saturating_mul(1000)).min(NEVER_EXPIRES - 1)
            }
            Validity::Never => NEVER_EXPIRES,
        }
    }
}

/// What an application's access tokens are (see `docs/tokens-and-keys.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// A random string that means something only to the gateway.
    #[default]
    Opaque,
    /// A JWT access token (RFC 9068) signed with the active `signing` key.
    Jwt,
}

#[derive(Clone)]
pub struct Application {
    pub consumer_key: String,
    pub verifier: SecretVerifier,
    /// Changes whenever the key or secret changes; tokens remember it.
    pub fingerprint: u32,
    pub grant_types: GrantTypes,
    pub scopes: ScopeSet,
    pub access_validity: Validity,
    pub can_introspect: bool,
    /// By API index; applications registered at run time have none yet.
    pub subscriptions: Vec<Subscription>,
    /// No secret: authenticates with `client_id` alone, and only for the code flow.
    pub public: bool,
    /// Registered redirect URIs, matched exactly ([`crate::oauth::redirect_uri::matches`]).
    pub redirect_uris: Vec<String>,
    /// Web or native: which redirect URIs it may have, and whether a loopback one's port may
    /// change (native only, RFC 8252 §7.3).
    pub application_type: ApplicationType,
    /// What the login page calls it.
    pub name: String,
    /// Which key pair this consumer key is: a sandbox pair is an entry of its own, with the
    /// production entry's grants, scopes and subscriptions (WSO2's one application, two keys).
    pub key_type: KeyType,
    /// Opaque or JWT access tokens; refresh tokens are always opaque.
    pub token_format: TokenFormat,
}

/// The authorization code flow, when some application uses it.
pub struct AuthorizationConfig {
    pub endpoint: String,
    pub code_lifetime_ms: u64,
    pub login_lifetime_ms: u64,
    pub capacity: u32,
    /// PBKDF2 iterations each worker may spend a second at the login form.
    pub pbkdf2_iterations_per_sec: u64,
    /// The origins of web clients' redirect URIs, matched exactly: CORS at `/token` and
    /// `/revoke`.
    pub cors_origins: Vec<String>,
    /// The origins of native clients' redirect URIs: a loopback one on any port, as its
    /// redirect URI (RFC 8252 §7.3).
    pub native_cors_origins: Vec<String>,
}

pub struct User {
    pub username: String,
    pub verifier: SecretVerifier,
    pub fingerprint: u32,
    pub scopes: ScopeSet,
    pub is_admin: bool,
    /// Manages every registered application, not only its own (implies `is_admin`).
    pub is_super_admin: bool,
    /// What `/userinfo` may release about the user (OpenID Connect Core §5.1).
    pub claims: UserClaims,
}

/// A user's OpenID Connect claims (Core §5.1), each optional, as the configuration gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserClaims {
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
}

/// Fleet mode, when configured: the tables that must agree across Envoys live in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The Envoy cluster (HTTP/2) that reaches etcd's gRPC API.
    pub cluster: String,
    /// Every key of this deployment starts with it, so two fleets can share one etcd.
    pub prefix: String,
    /// The longest wait for one etcd call.
    pub timeout_ms: u64,
    /// How long this Envoy's cache answers Bearer checks alone once its watch has gone
    /// silent; after that every token check asks etcd (and gets 503 when etcd is away).
    pub staleness_ms: u64,
    /// etcd's user/password authentication, when etcd asks for it (see `crate::fleet::auth`).
    pub login: Option<EtcdLogin>,
}

/// The etcd user fleet mode authenticates as, and how often it takes a new token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdLogin {
    pub user: String,
    pub password: EtcdPassword,
    /// A new token is asked for this often: well inside etcd's token TTL, which
    /// `AuthenticateResponse` does not tell.
    pub renewal_ms: u64,
}

/// The etcd user's password: sent to etcd's `Authenticate`, never logged (its `Debug` shows
/// nothing of it).
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdPassword(String);

impl EtcdPassword {
    pub fn new(password: String) -> Self {
        EtcdPassword(password)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for EtcdPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EtcdPassword(..)")
    }
}

/// Dynamic client registration, when enabled.
pub struct RegistrationConfig {
    /// WSO2's v0.17 registration.
    pub endpoint: String,
    /// RFC 7591 registration; RFC 7592 management at `<rfc7591_endpoint>/<client id>`.
    pub rfc7591_endpoint: String,
    /// Registered applications the registry holds.
    pub capacity: u32,
    /// Grant types a registration may ask for.
    pub grant_types: GrantTypes,
    /// Scopes every registered application may be granted.
    pub scopes: ScopeSet,
    /// The most applications one administrator may have registered; super-admins have no limit.
    pub max_per_owner: u32,
    /// Registration without credentials, for public clients (`None`: off, the default).
    pub open: Option<OpenRegistration>,
}

/// RFC 7591 §3 registration without an initial access token (MCP clients register so),
/// bounded: public clients only, the code flow's grants, scopes within `scopes`, redirect URIs
/// loopback or https, a quota per source address and in all, and expiry when unused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRegistration {
    /// The scopes an open registration may ask for; omitted, it gets all of them.
    pub scopes: ScopeSet,
    /// The most live open registrations from one source (Envoy's `source.address`, by IP, an
    /// IPv6 one by its /64).
    pub max_per_source: u32,
    /// The most live open registrations in all.
    pub max_registrations: u32,
    /// An open registration unused (no `/authorize`, `/token` or `/revoke`) for this long
    /// expires: refused, and its slot reclaimed.
    pub expire_unused_after_secs: u32,
    /// The APIs (by name, with their tiers) every open registration is subscribed to, as if
    /// an administrator had subscribed it: an MCP client that registered itself can call
    /// the MCP server's API without anyone's step in between.
    pub subscriptions: Vec<RegisteredSubscription>,
}

impl RegistrationConfig {
    /// The registration quota of `admin`, `None` for a super-admin: it registers for any owner
    /// and manages every application, so a limit would only get in its way.
    pub fn quota_for(&self, admin: &User) -> Option<u32> {
        (!admin.is_super_admin).then_some(self.max_per_owner)
    }

    /// Whether a public client (RFC 7591 `token_endpoint_auth_method: none`) may register:
    /// it needs the code grant.
    pub fn admits_public_clients(&self) -> bool {
        self.grant_types.contains(GrantType::AuthorizationCode)
    }
}

/// The window of a tier. WSO2 counts per minute, hour or day; `second` keeps tests short.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TierUnit {
    Second,
    Minute,
    Hour,
    Day,
}

/// WSO2's subscription states (`PROD_ONLY_BLOCKED` blocks production keys, not sandbox ones).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    #[default]
    Active,
    Blocked,
    ProdOnlyBlocked,
}

impl TierUnit {
    pub fn millis(self) -> u64 {
        match self {
            TierUnit::Second => 1_000,
            TierUnit::Minute => 60_000,
            TierUnit::Hour => 3_600_000,
            TierUnit::Day => 86_400_000,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TierUnit::Second => "second",
            TierUnit::Minute => "minute",
            TierUnit::Hour => "hour",
            TierUnit::Day => "day",
        }
    }
}

/// A throttling tier: a request rate, or none (`Unlimited`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub name: String,
    /// Requests per window; `None`: never throttled.
    pub rate: Option<(u32, TierUnit)>,
}

/// A group of resources under one context (WSO2's API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub name: String,
    pub version: String,
    pub context: String,
    /// The Envoy clusters each key type reaches (see `gateway/bearer.rs`): `None` for
    /// production is the route's own cluster, `None` for sandbox refuses sandbox tokens.
    pub production_upstream: Option<String>,
    pub sandbox_upstream: Option<String>,
    /// The API's resource identifier (RFC 8707 §2, RFC 9728 §1.2): what a token's audience
    /// must name to be used here. `None` only without an issuer to derive it from.
    pub resource: Option<String>,
    /// Where its protected resource metadata is (RFC 9728 §3.1), with `resource`.
    pub resource_metadata_url: Option<String>,
    /// Refuse tokens issued without `resource` (unbound) here, not only those bound elsewhere.
    pub require_audience: bool,
    /// The signed assertion forwarded requests carry (`gateway/backend_jwt.rs`); `None`: none.
    pub backend_jwt: Option<BackendJwt>,
}

/// An API's backend JWT, validated: `signing` and `issuer` are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendJwt {
    /// The assertion's `aud`: the API's resource identifier, or its context without one.
    pub audience: String,
    /// From `iat` to `exp`.
    pub lifetime_secs: u64,
}

/// An application's subscription to an API (an index into `Config::apis`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub api: usize,
    pub tier: Tier,
    pub state: SubscriptionState,
    /// The window counter this subscription counts in, when its tier has a rate.
    pub counter: Option<usize>,
}
