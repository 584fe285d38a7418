//! Applications added by dynamic client registration, kept in their own [`BucketTable`].
//!
//! A registered application lives in the first bucket with room at or after the one picked by
//! a hash of its owner and name; registration checks that window for the same name first. Its
//! client id is `base64url(bucket ‖ 12 random bytes)`: like a token, it says where to look, so
//! `/token` finds a registered application with one shared-data read. Ids and secrets use only
//! unreserved characters (base64url's alphabet), so raw and form-encoded Basic clients agree.
//! Only a salted SHA-256 of the secret is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::host::metrics::Metric;
use crate::host::{Metrics, RandomUnavailable, Randomness, SharedStore, StoreError};
use crate::oauth::credentials::SecretVerifier;
use crate::oauth::grant_type::GrantTypes;
use crate::oauth::redirect_uri::ApplicationType;
use crate::state::buckets::{put_short_bytes, records_of, BucketTable, InitError, Reader, Record};
use crate::state::keys;

/// Registered applications per bucket.
pub const CLIENTS_PER_BUCKET: usize = 8;
/// Buckets a registration may probe from its home bucket before the registry counts as full.
const PROBE_WINDOW: u32 = 64;
const CLIENT_ID_RANDOM_BYTES: usize = 12;
const SECRET_BYTES: usize = 32;
const SALT_BYTES: usize = 16;

/// Buckets needed for `capacity` registered applications.
pub fn client_bucket_count_for(capacity: u32) -> u32 {
    capacity.div_ceil(CLIENTS_PER_BUCKET as u32).max(1)
}

/// What an administrator asked to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub owner: String,
    /// WSO2's `callbackUrl`, or RFC 7591's `redirect_uris` joined by spaces (URIs have none).
    pub callback_url: String,
    pub grant_types: GrantTypes,
    pub saas: bool,
    /// The scopes it may be granted, space-separated, within `registration.scopes`; empty:
    /// all of them (WSO2 registrations, and RFC 7591 ones that asked for no `scope`).
    pub scope: String,
    /// RFC 7591 `token_endpoint_auth_method`: what the client said it will use. Both secret
    /// methods are accepted at `/token` whatever it says; `none` makes it a public client.
    pub auth_method: AuthMethod,
    /// `application_type` (RFC 7591 registrations only; WSO2's v0.17 has none): web, the
    /// default, or native.
    pub application_type: ApplicationType,
}

/// RFC 7591 §2 `token_endpoint_auth_method`, the ones this gateway supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// RFC 7591's default.
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client (RFC 6749 §2.1): it names itself with `client_id` alone and holds no
    /// secret. Stored as [`PUBLIC_CLIENT_FIELDS`], not in the auth method byte.
    None,
}

impl AuthMethod {
    pub fn from_name(name: &str) -> Option<AuthMethod> {
        match name {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }

    /// The auth method byte. A public client writes Basic's code there: a module that predates
    /// public registrations reads a confidential client whose secret nobody was given, so it
    /// refuses the client instead of letting it in without one.
    fn code(self) -> u8 {
        match self {
            AuthMethod::ClientSecretBasic | AuthMethod::None => 0,
            AuthMethod::ClientSecretPost => 1,
        }
    }

    fn from_code(code: u8) -> Option<AuthMethod> {
        match code {
            0 => Some(AuthMethod::ClientSecretBasic),
            1 => Some(AuthMethod::ClientSecretPost),
            _ => None,
        }
    }
}

/// How a registration is made: WSO2's (names unique per owner, no registration access token)
/// or RFC 7591's (names need not be unique, RFC 7592 management by a registration access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOptions {
    pub unique_name: bool,
    pub registration_token: bool,
    /// The most applications the registering administrator may have registered; `None`: no limit.
    pub max_registered_by: Option<u32>,
    /// Registered without credentials, within these bounds.
    pub open: Option<OpenQuota>,
}

impl RegisterOptions {
    pub const WSO2: RegisterOptions =
        RegisterOptions { unique_name: true, registration_token: false, max_registered_by: None, open: None };
    pub const RFC7591: RegisterOptions =
        RegisterOptions { unique_name: false, registration_token: true, max_registered_by: None, open: None };

    /// These options with at most `limit` applications per registering administrator.
    pub fn at_most_per_admin(self, limit: Option<u32>) -> RegisterOptions {
        RegisterOptions { max_registered_by: limit, ..self }
    }
}

/// Marks the fields added for RFC 7591 after `registered_by`.
const RFC7591_FIELDS: u8 = 1;
/// Marks the subscriptions, added after the RFC 7591 fields.
const SUBSCRIPTION_FIELDS: u8 = 2;
/// Marks the admin grant, added after the subscriptions. Written only when the application's
/// registration asks for less than its admin grant, so a record that never narrowed keeps the
/// bytes it had before; an older module that rewrites the bucket drops it, and the admin grant
/// falls back to what the application has then (a ceiling that can only go down, never up).
const ADMIN_GRANT_FIELDS: u8 = 3;
/// Marks the application type, added after the admin grant, and written only for a native
/// client: a web client's record keeps the bytes it had before the type existed, and a record
/// without the mark is a web client's.
const APPLICATION_TYPE_FIELDS: u8 = 4;
/// Marks a public client (`token_endpoint_auth_method: none`), added after the application
/// type, and written only for one: a confidential client's record keeps the bytes it had
/// before. The mark is followed by one byte of flags: [`PUBLIC_CLIENT`], and
/// [`OPEN_REGISTRATION`] followed by its [`OpenRegistrant`] fields.
const PUBLIC_CLIENT_FIELDS: u8 = 5;
/// In [`PUBLIC_CLIENT_FIELDS`]' flags: the client authenticates with no secret.
const PUBLIC_CLIENT: u8 = 1;
/// In [`PUBLIC_CLIENT_FIELDS`]' flags: registered without credentials; the source, the last
/// use and the unused lifetime follow.
const OPEN_REGISTRATION: u8 = 2;
/// Subscriptions one registered application may hold (one per API): bounds its record.
pub const MAX_SUBSCRIPTIONS_PER_CLIENT: usize = 32;

/// WSO2's subscription states, as its admin REST API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisteredState {
    Unblocked,
    Blocked,
    ProdOnlyBlocked,
}

impl RegisteredState {
    pub fn from_name(name: &str) -> Option<RegisteredState> {
        match name {
            "UNBLOCKED" => Some(RegisteredState::Unblocked),
            "BLOCKED" => Some(RegisteredState::Blocked),
            "PROD_ONLY_BLOCKED" => Some(RegisteredState::ProdOnlyBlocked),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegisteredState::Unblocked => "UNBLOCKED",
            RegisteredState::Blocked => "BLOCKED",
            RegisteredState::ProdOnlyBlocked => "PROD_ONLY_BLOCKED",
        }
    }

    fn code(self) -> u8 {
        match self {
            RegisteredState::Unblocked => 0,
            RegisteredState::Blocked => 1,
            RegisteredState::ProdOnlyBlocked => 2,
        }
    }

    fn from_code(code: u8) -> Option<RegisteredState> {
        [RegisteredState::Unblocked, RegisteredState::Blocked, RegisteredState::ProdOnlyBlocked]
            .into_iter()
            .find(|state| state.code() == code)
    }
}

/// A registered application's subscription, by names: the config (and its API and tier
/// indexes) may change under it; a name the config no longer has makes it no subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSubscription {
    pub api: String,
    pub tier: String,
    pub state: RegisteredState,
}

/// What an administrator gave an application: the grant types and scopes it was registered with,
/// or last given by an administrator's RFC 7592 update. An update made with the application's
/// registration access token alone may keep or narrow these, never exceed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminGrant {
    pub grant_types: GrantTypes,
    /// As [`Registration::scope`]: empty means every scope of `registration.scopes`.
    pub scope: String,
}

impl AdminGrant {
    /// The admin grant of an application registered with `registration`.
    pub fn of(registration: &Registration) -> AdminGrant {
        AdminGrant { grant_types: registration.grant_types, scope: registration.scope.clone() }
    }

    /// True when `registration` asks for no grant type and no scope beyond this grant.
    pub fn covers(&self, registration: &Registration) -> bool {
        let grants_within = registration.grant_types.iter().all(|grant| self.grant_types.contains(grant));
        let scope_within = self.scope.is_empty()
            || (!registration.scope.is_empty()
                && registration.scope.split(' ').all(|asked| self.scope.split(' ').any(|own| own == asked)));
        grants_within && scope_within
    }
}

/// What an application registered without credentials (RFC 7591 §3 open registration) keeps
/// for its bounds: where it came from, for the quota per source, and when it was last used,
/// for its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRegistrant {
    /// The source address it registered from, as [`crate::state::lockout::client_address`]
    /// writes it (an IP, an IPv6 one by its /64).
    pub source: String,
    /// When it last used the gateway, in seconds, kept coarsely (see [`Self::needs_touch`]).
    pub last_used_secs: u64,
    /// Unused for longer than this, it is expired: refused, and dropped at its bucket's next
    /// write. Kept with the record, so its bucket can prune it without the config.
    pub expire_unused_after_secs: u32,
}

impl OpenRegistrant {
    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms / 1000 > self.last_used_secs.saturating_add(u64::from(self.expire_unused_after_secs))
    }

    /// Whether a use at `now_ms` should be written down: at most once a day (a quarter of the
    /// lifetime when that is shorter), so a token request does not write the registry each
    /// time and the registration still never expires while in use.
    pub fn needs_touch(&self, now_ms: u64) -> bool {
        let every = (self.expire_unused_after_secs / 4).clamp(1, TOUCH_AT_MOST_EVERY_SECS);
        now_ms / 1000 >= self.last_used_secs.saturating_add(u64::from(every))
    }
}

/// How often an open registration's last use is written at most.
const TOUCH_AT_MOST_EVERY_SECS: u32 = 24 * 3600;

/// The bounds of an open registration (see [`RegisterOptions::open`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenQuota {
    pub source: String,
    pub max_per_source: u32,
    pub max_registrations: u32,
    pub expire_unused_after_secs: u32,
}

/// Which open-registration quota a registration would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenQuotaReached {
    Source,
    Total,
}

/// Who changes an application's metadata through RFC 7592 (see [`ClientRegistry::update_metadata`]).
#[derive(Debug, Clone, Copy)]
pub enum MetadataUpdater<'t> {
    /// The application, with its registration access token: within its [`AdminGrant`].
    Client { registration_token: &'t str },
    /// An administrator who manages it: the update becomes its admin grant, and it gets a new
    /// registration access token.
    Admin,
}

/// A registered application as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub registration: Registration,
    /// The administrator who registered it; empty for records written before it was kept,
    /// which only a super-admin may manage.
    pub registered_by: String,
    salt: [u8; SALT_BYTES],
    digest: [u8; 32],
    /// When it was registered (seconds since the epoch); 0 for records older than RFC 7591.
    pub issued_at_secs: u64,
    /// SHA-256 of its RFC 7592 registration access token, if it has one (only RFC 7591
    /// registrations do). The token itself is never stored.
    registration_token_hash: Option<[u8; 32]>,
    /// The APIs it subscribed to through the admin endpoint; they go when it goes.
    pub subscriptions: Vec<RegisteredSubscription>,
    /// The ceiling of its own RFC 7592 updates.
    pub admin_grant: AdminGrant,
    /// Registered without credentials: its source and last use.
    pub open: Option<OpenRegistrant>,
    /// What a newer module wrote after the last mark this build knows (a mark of its own, then
    /// its fields), kept as it was and written back last (docs/upgrading.md).
    pub newer_fields: Vec<u8>,
}

impl ClientRecord {
    pub fn verifier(&self) -> SecretVerifier {
        SecretVerifier::Sha256 { salt: self.salt.to_vec(), digest: self.digest }
    }

    /// True when `presented` is this client's registration access token (constant time).
    pub fn registration_token_matches(&self, presented: &str) -> bool {
        let Some(stored) = &self.registration_token_hash else { return false };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(stored).into()
    }

    /// True for applications registered through RFC 7591: only they have a registration access
    /// token (a re-key replaces it, see [`ClientRegistry::regenerate_secret`]).
    pub fn has_registration_token(&self) -> bool {
        self.registration_token_hash.is_some()
    }

    /// True for a public client (RFC 6749 §2.1): registered with `token_endpoint_auth_method`
    /// `none`, it was given no secret and presents none.
    pub fn is_public(&self) -> bool {
        self.registration.auth_method == AuthMethod::None
    }
}

/// A space-separated scope list behind its u16 length.
fn put_scope(out: &mut Vec<u8>, scope: &str) {
    // Scopes are validated tokens within registration.scopes; the limit only bounds the record.
    let scope = scope.as_bytes();
    let scope = scope.get(..scope.len().min(usize::from(u16::MAX))).unwrap_or_default();
    out.extend_from_slice(&(scope.len() as u16).to_be_bytes());
    out.extend_from_slice(scope);
}

fn read_scope(r: &mut Reader) -> Option<String> {
    let len = r.u16()?;
    String::from_utf8(r.take(usize::from(len))?.to_vec()).ok()
}

fn application_type_code(application_type: ApplicationType) -> u8 {
    match application_type {
        ApplicationType::Web => 0,
        ApplicationType::Native => 1,
    }
}

fn application_type_from_code(code: u8) -> Option<ApplicationType> {
    match code {
        0 => Some(ApplicationType::Web),
        1 => Some(ApplicationType::Native),
        _ => None,
    }
}

fn decode_subscription(r: &mut Reader) -> Option<RegisteredSubscription> {
    let api = r.short_string()?;
    let tier = r.short_string()?;
    let state = RegisteredState::from_code(r.u8()?)?;
    Some(RegisteredSubscription { api, tier, state })
}

impl Record for ClientRecord {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let client_id = r.short_string()?;
        let name = r.short_string()?;
        let owner = r.short_string()?;
        let callback_url = r.short_string()?;
        let grant_types = GrantTypes::from_bits(r.u8()?);
        let saas = r.u8()? != 0;
        let salt = r.array()?;
        let digest = r.array()?;
        // Added at the end, so records of the older format (which stop here) still decode.
        let registered_by = if r.peek().is_some() { r.short_string()? } else { String::new() };
        // Added after that for RFC 7591; records without them have none of it.
        let (issued_at_secs, auth_method, registration_token_hash, scope) = match r.peek() {
            Some(RFC7591_FIELDS) => {
                r.u8()?;
                let issued_at = r.u64()?;
                let auth_method = AuthMethod::from_code(r.u8()?)?;
                let token_hash = if r.u8()? != 0 { Some(r.array()?) } else { None };
                (issued_at, auth_method, token_hash, read_scope(&mut r)?)
            }
            _ => (0, AuthMethod::default(), None, String::new()),
        };
        let subscriptions = match r.peek() {
            Some(SUBSCRIPTION_FIELDS) => {
                r.u8()?;
                (0..r.u8()?).map(|_| decode_subscription(&mut r)).collect::<Option<Vec<_>>>()?
            }
            _ => Vec::new(),
        };
        // Absent: the application has what its admin grant gave it (see ADMIN_GRANT_FIELDS).
        let admin_grant = match r.peek() {
            Some(ADMIN_GRANT_FIELDS) => {
                r.u8()?;
                let grant_types = GrantTypes::from_bits(r.u8()?);
                Some(AdminGrant { grant_types, scope: read_scope(&mut r)? })
            }
            _ => None,
        };
        let application_type = match r.peek() {
            Some(APPLICATION_TYPE_FIELDS) => {
                r.u8()?;
                application_type_from_code(r.u8()?)?
            }
            _ => ApplicationType::Web,
        };
        let (auth_method, open) = match r.peek() {
            Some(PUBLIC_CLIENT_FIELDS) => {
                r.u8()?;
                let flags = r.u8()?;
                let auth_method = if flags & PUBLIC_CLIENT != 0 { AuthMethod::None } else { auth_method };
                let open = match flags & OPEN_REGISTRATION {
                    0 => None,
                    _ => Some(OpenRegistrant {
                        source: r.short_string()?,
                        last_used_secs: r.u64()?,
                        expire_unused_after_secs: u32::from_be_bytes(r.array()?),
                    }),
                };
                (auth_method, open)
            }
            _ => (auth_method, None),
        };
        // Marks only ever follow each other in increasing order, so what is left starts with
        // a newer module's mark; a known mark out of order is not a record this build
        // understands (the bucket keeps it as it is).
        if r.peek().is_some_and(|mark| mark <= PUBLIC_CLIENT_FIELDS) {
            return None;
        }
        let newer_fields = r.0.to_vec();
        let registration = Registration {
            name,
            owner,
            callback_url,
            grant_types,
            saas,
            scope,
            auth_method,
            application_type,
        };
        let admin_grant = admin_grant.unwrap_or_else(|| AdminGrant::of(&registration));
        Some(ClientRecord {
            client_id,
            registration,
            registered_by,
            salt,
            digest,
            issued_at_secs,
            registration_token_hash,
            subscriptions,
            admin_grant,
            open,
            newer_fields,
        })
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        put_short_bytes(out, self.client_id.as_bytes());
        put_short_bytes(out, self.registration.name.as_bytes());
        put_short_bytes(out, self.registration.owner.as_bytes());
        put_short_bytes(out, self.registration.callback_url.as_bytes());
        out.push(self.registration.grant_types.bits());
        out.push(u8::from(self.registration.saas));
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.digest);
        put_short_bytes(out, self.registered_by.as_bytes());
        out.push(RFC7591_FIELDS);
        out.extend_from_slice(&self.issued_at_secs.to_be_bytes());
        out.push(self.registration.auth_method.code());
        match &self.registration_token_hash {
            Some(hash) => {
                out.push(1);
                out.extend_from_slice(hash);
            }
            None => out.push(0),
        }
        put_scope(out, &self.registration.scope);
        if !self.subscriptions.is_empty() {
            out.push(SUBSCRIPTION_FIELDS);
            let kept = self.subscriptions.iter().take(MAX_SUBSCRIPTIONS_PER_CLIENT);
            out.push(kept.len() as u8);
            for subscription in kept {
                put_short_bytes(out, subscription.api.as_bytes());
                put_short_bytes(out, subscription.tier.as_bytes());
                out.push(subscription.state.code());
            }
        }
        if self.admin_grant != AdminGrant::of(&self.registration) {
            out.push(ADMIN_GRANT_FIELDS);
            out.push(self.admin_grant.grant_types.bits());
            put_scope(out, &self.admin_grant.scope);
        }
        if self.registration.application_type != ApplicationType::Web {
            out.push(APPLICATION_TYPE_FIELDS);
            out.push(application_type_code(self.registration.application_type));
        }
        if self.is_public() || self.open.is_some() {
            out.push(PUBLIC_CLIENT_FIELDS);
            let public = if self.is_public() { PUBLIC_CLIENT } else { 0 };
            match &self.open {
                Some(open) => {
                    out.push(public | OPEN_REGISTRATION);
                    put_short_bytes(out, open.source.as_bytes());
                    out.extend_from_slice(&open.last_used_secs.to_be_bytes());
                    out.extend_from_slice(&open.expire_unused_after_secs.to_be_bytes());
                }
                None => out.push(public),
            }
        }
        out.extend_from_slice(&self.newer_fields);
    }

    /// Registered applications do not expire, but for open registrations unused too long.
    fn prune(&mut self, now: u64) -> bool {
        !self.open.as_ref().is_some_and(|open| open.expired(now))
    }
}

/// A registered application with its secret (and, for RFC 7591, its registration access
/// token), as the registration response shows them once.
pub struct Registered {
    pub record: ClientRecord,
    pub secret: String,
    pub registration_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryError {
    /// The owner already has an application of this name.
    Duplicate,
    Full,
    NotFound,
    /// The registering administrator has registered as many applications as it may.
    QuotaReached,
    /// An open registration past its quota per source or in all.
    OpenQuotaReached(OpenQuotaReached),
    /// An update made with the registration access token asked for more than the admin grant.
    BeyondAdminGrant,
    Random,
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(error: StoreError) -> Self {
        RegistryError::Store(error)
    }
}

/// Why a change of subscriptions was refused (see [`ClientRegistry::update_subscriptions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionError {
    Registry(RegistryError),
    /// Already subscribed to this API.
    Exists,
    /// Not subscribed to this API.
    NotSubscribed,
    /// More than [`MAX_SUBSCRIPTIONS_PER_CLIENT`].
    TooMany,
}

impl From<StoreError> for SubscriptionError {
    fn from(error: StoreError) -> Self {
        SubscriptionError::Registry(RegistryError::Store(error))
    }
}

impl From<RandomUnavailable> for RegistryError {
    fn from(_: RandomUnavailable) -> Self {
        RegistryError::Random
    }
}

pub struct ClientRegistry<'h> {
    table: BucketTable<'h>,
    random: &'h dyn Randomness,
    metrics: &'h dyn Metrics,
}

/// The bucket a client id names, if it is shaped like a registered client id.
fn bucket_of(client_id: &str) -> Option<u32> {
    // Any caller's Basic username lands here: refuse long ones before decoding.
    if client_id.len() > 64 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(client_id).ok()?;
    if raw.len() != 4 + CLIENT_ID_RANDOM_BYTES {
        return None;
    }
    Some(u32::from_be_bytes(*raw.first_chunk::<4>()?))
}

impl<'h> ClientRegistry<'h> {
    pub fn new(
        shared: &'h dyn SharedStore,
        random: &'h dyn Randomness,
        metrics: &'h dyn Metrics,
        capacity: u32,
    ) -> Self {
        let table = BucketTable::new(shared, keys::CLIENTS, client_bucket_count_for(capacity));
        ClientRegistry { table, random, metrics }
    }

    /// Creates the table; refuses a smaller capacity that would delete registered applications.
    pub fn initialize(&self) -> Result<u32, InitError> {
        self.table.initialize_keeping_records()
    }

    /// The keys of this table's buckets.
    pub fn bucket_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.table.keys()
    }

    fn home_bucket(&self, registration: &Registration) -> u32 {
        let digest = Sha256::new()
            .chain_update(registration.owner.as_bytes())
            .chain_update([0])
            .chain_update(registration.name.as_bytes())
            .finalize();
        crate::oauth::scope::leading_u32(&digest) % self.table.count()
    }

    fn new_secret(&self) -> Result<(String, [u8; SALT_BYTES], [u8; 32]), RandomUnavailable> {
        let mut secret = [0u8; SECRET_BYTES];
        let mut salt = [0u8; SALT_BYTES];
        self.random.fill(&mut secret)?;
        self.random.fill(&mut salt)?;
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let digest = Sha256::new().chain_update(salt).chain_update(secret.as_bytes()).finalize().into();
        Ok((secret, salt, digest))
    }

    /// Registers an application in the first bucket with room, starting from a hash of its
    /// owner and name and probing up to [`PROBE_WINDOW`] buckets on. The duplicate check
    /// covers the whole window, so the same name always meets its twin.
    pub fn register(
        &self,
        registration: Registration,
        registered_by: &str,
        now: u64,
    ) -> Result<Registered, RegistryError> {
        self.register_with(registration, registered_by, now, RegisterOptions::WSO2)
    }

    /// [`Self::register`], the WSO2 way or the RFC 7591 way.
    pub fn register_with(
        &self,
        registration: Registration,
        registered_by: &str,
        now: u64,
        options: RegisterOptions,
    ) -> Result<Registered, RegistryError> {
        let home = self.home_bucket(&registration);
        let window: Vec<u32> = (0..self.table.count().min(PROBE_WINDOW))
            .map(|step| (home + step) % self.table.count())
            .collect();
        let same = |record: &ClientRecord| {
            options.unique_name
                && record.registration.owner == registration.owner
                && record.registration.name == registration.name
        };
        if let Some(limit) = options.max_registered_by {
            if self.count_registered_by(registered_by)? >= limit {
                return Err(RegistryError::QuotaReached);
            }
        }
        if let Some(quota) = &options.open {
            let (total, from_source) = self.count_open(&quota.source, now)?;
            if total >= quota.max_registrations {
                return Err(RegistryError::OpenQuotaReached(OpenQuotaReached::Total));
            }
            if from_source >= quota.max_per_source {
                return Err(RegistryError::OpenQuotaReached(OpenQuotaReached::Source));
            }
        }
        let open = options.open.as_ref().map(|quota| OpenRegistrant {
            source: quota.source.clone(),
            last_used_secs: now / 1000,
            expire_unused_after_secs: quota.expire_unused_after_secs,
        });
        if options.unique_name {
            for &bucket in &window {
                let bytes = self.table.read(bucket)?.unwrap_or_default();
                if records_of(&bytes).filter_map(ClientRecord::decode).any(|record| same(&record)) {
                    return Err(RegistryError::Duplicate);
                }
            }
        }
        let (secret, salt, digest) = self.new_secret()?;
        let (registration_token, registration_token_hash) = if options.registration_token {
            let (token, hash) = self.new_registration_token()?;
            (Some(token), Some(hash))
        } else {
            (None, None)
        };
        for bucket in window {
            let mut id = [0u8; 4 + CLIENT_ID_RANDOM_BYTES];
            let (prefix, random) = id.split_at_mut(4);
            prefix.copy_from_slice(&bucket.to_be_bytes());
            self.random.fill(random)?;
            let record = ClientRecord {
                client_id: URL_SAFE_NO_PAD.encode(id),
                registration: registration.clone(),
                registered_by: registered_by.to_owned(),
                salt,
                digest,
                issued_at_secs: now / 1000,
                registration_token_hash,
                subscriptions: Vec::new(),
                admin_grant: AdminGrant::of(&registration),
                open: open.clone(),
                newer_fields: Vec::new(),
            };
            let outcome = self.table.update(bucket, now, |records: &mut Vec<ClientRecord>| {
                // A twin registered concurrently into this bucket since the scan above.
                if records.iter().any(&same) {
                    return Err(RegistryError::Duplicate);
                }
                if records.len() >= CLIENTS_PER_BUCKET {
                    return Ok(false);
                }
                records.push(record.clone());
                Ok(true)
            })?;
            if let Some(updated) = outcome.filter(|updated| updated.value) {
                self.metrics.add(Metric::RegisteredClients, updated.records_delta);
                return Ok(Registered { record, secret, registration_token });
            }
        }
        Err(RegistryError::Full)
    }

    /// A registration access token (RFC 7592) and the hash that is stored instead of it.
    fn new_registration_token(&self) -> Result<(String, [u8; 32]), RandomUnavailable> {
        let mut token = [0u8; SECRET_BYTES];
        self.random.fill(&mut token)?;
        let token = URL_SAFE_NO_PAD.encode(token);
        let hash = Sha256::digest(token.as_bytes()).into();
        Ok((token, hash))
    }

    /// How many applications `registered_by` has registered, counted over every bucket: the
    /// registry itself is the count, so nothing can drift from it.
    pub fn count_registered_by(&self, registered_by: &str) -> Result<u32, StoreError> {
        let mut count = 0u32;
        for bucket in 0..self.table.count() {
            let bytes = self.table.read(bucket)?.unwrap_or_default();
            let mine = records_of(&bytes)
                .filter_map(ClientRecord::decode)
                .filter(|record| record.registered_by == registered_by)
                .count();
            count = count.saturating_add(u32::try_from(mine).unwrap_or(u32::MAX));
        }
        Ok(count)
    }

    /// Live open registrations, in all and from `source`, counted over every bucket like
    /// [`Self::count_registered_by`]; expired ones do not count: their slots are free for a
    /// new registration before their bucket's next write drops them.
    pub fn count_open(&self, source: &str, now: u64) -> Result<(u32, u32), StoreError> {
        let (mut total, mut from_source) = (0u32, 0u32);
        for bucket in 0..self.table.count() {
            let bytes = self.table.read(bucket)?.unwrap_or_default();
            for record in records_of(&bytes).filter_map(ClientRecord::decode) {
                let Some(open) = record.open.filter(|open| !open.expired(now)) else { continue };
                total = total.saturating_add(1);
                if open.source == source {
                    from_source = from_source.saturating_add(1);
                }
            }
        }
        Ok((total, from_source))
    }

    /// Writes down that an open registration was used at `now` (see
    /// [`OpenRegistrant::needs_touch`]); other applications are left as they are.
    pub fn touch(&self, client_id: &str, now: u64) -> Result<(), RegistryError> {
        let bucket = bucket_of(client_id).ok_or(RegistryError::NotFound)?;
        self.table.update(bucket, now, |records: &mut Vec<ClientRecord>| {
            let record =
                records.iter_mut().find(|r| r.client_id == client_id).ok_or(RegistryError::NotFound)?;
            if let Some(open) = &mut record.open {
                open.last_used_secs = now / 1000;
            }
            Ok::<_, RegistryError>(())
        })?;
        Ok(())
    }

    /// Replaces an application's metadata (RFC 7592 §2.2); its owner, id and secret stay.
    ///
    /// The application itself ([`MetadataUpdater::Client`]) keeps its registration access token
    /// and may not exceed its admin grant ([`RegistryError::BeyondAdminGrant`]); both are checked
    /// in the same compare-and-swap as the write, so a concurrent re-key or admin update wins.
    /// An administrator's update becomes the admin grant and rotates the registration access
    /// token: the new one is returned, once.
    pub fn update_metadata(
        &self,
        client_id: &str,
        registration: Registration,
        now: u64,
        updater: MetadataUpdater,
    ) -> Result<(ClientRecord, Option<String>), RegistryError> {
        let bucket = bucket_of(client_id).ok_or(RegistryError::NotFound)?;
        let new_token = match updater {
            MetadataUpdater::Client { .. } => None,
            MetadataUpdater::Admin => Some(self.new_registration_token()?),
        };
        let updated = self.table.update(bucket, now, |records: &mut Vec<ClientRecord>| {
            let record =
                records.iter_mut().find(|r| r.client_id == client_id).ok_or(RegistryError::NotFound)?;
            let registration =
                Registration { owner: record.registration.owner.clone(), ..registration.clone() };
            match updater {
                MetadataUpdater::Client { registration_token } => {
                    if !record.registration_token_matches(registration_token) {
                        return Err(RegistryError::NotFound);
                    }
                    if !record.admin_grant.covers(&registration) {
                        return Err(RegistryError::BeyondAdminGrant);
                    }
                }
                MetadataUpdater::Admin => {
                    record.admin_grant = AdminGrant::of(&registration);
                    record.registration_token_hash = new_token.as_ref().map(|(_, hash)| *hash);
                }
            }
            record.registration = registration;
            Ok::<_, RegistryError>(record.clone())
        })?;
        let record = updated.ok_or(RegistryError::NotFound)?.value;
        Ok((record, new_token.map(|(token, _)| token)))
    }

    /// The registered application with this id, if any: one shared-data read.
    pub fn find(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let Some(bucket) = bucket_of(client_id) else { return Ok(None) };
        let Some(bytes) = self.table.read(bucket)? else { return Ok(None) };
        let found =
            records_of(&bytes).filter_map(ClientRecord::decode).find(|record| record.client_id == client_id);
        Ok(found)
    }

    /// Replaces an application's secret; its old tokens die with the old secret's fingerprint.
    ///
    /// A re-key also rotates its RFC 7592 registration access token, if it has one: whoever
    /// held the old secret may hold the old token too. The new token is not returned (WSO2's
    /// v0.17 response has no field for it) but its hash keeps the application an RFC 7591 one,
    /// which an administrator's RFC 7592 update can hand a token again.
    pub fn regenerate_secret(&self, client_id: &str, now: u64) -> Result<Registered, RegistryError> {
        let bucket = bucket_of(client_id).ok_or(RegistryError::NotFound)?;
        let (secret, salt, digest) = self.new_secret()?;
        let (_, unknown_token_hash) = self.new_registration_token()?;
        let updated = self.table.update(bucket, now, |records: &mut Vec<ClientRecord>| {
            let record =
                records.iter_mut().find(|r| r.client_id == client_id).ok_or(RegistryError::NotFound)?;
            record.salt = salt;
            record.digest = digest;
            if record.registration_token_hash.is_some() {
                record.registration_token_hash = Some(unknown_token_hash);
            }
            Ok::<_, RegistryError>(record.clone())
        })?;
        let record = updated.ok_or(RegistryError::NotFound)?.value;
        Ok(Registered { record, secret, registration_token: None })
    }

    /// Changes an application's subscriptions in one compare-and-swap of its bucket: every
    /// worker (and, in fleet mode, every replica) sees the change at its next read.
    pub fn update_subscriptions<T>(
        &self,
        client_id: &str,
        now: u64,
        change: impl Fn(&mut Vec<RegisteredSubscription>) -> Result<T, SubscriptionError>,
    ) -> Result<T, SubscriptionError> {
        let bucket = bucket_of(client_id).ok_or(SubscriptionError::Registry(RegistryError::NotFound))?;
        let updated = self.table.update(bucket, now, |records: &mut Vec<ClientRecord>| {
            let record = records
                .iter_mut()
                .find(|r| r.client_id == client_id)
                .ok_or(SubscriptionError::Registry(RegistryError::NotFound))?;
            let value = change(&mut record.subscriptions)?;
            if record.subscriptions.len() > MAX_SUBSCRIPTIONS_PER_CLIENT {
                return Err(SubscriptionError::TooMany);
            }
            Ok(value)
        })?;
        Ok(updated.ok_or(SubscriptionError::Registry(RegistryError::NotFound))?.value)
    }

    pub fn delete(&self, client_id: &str, now: u64) -> Result<(), RegistryError> {
        let bucket = bucket_of(client_id).ok_or(RegistryError::NotFound)?;
        let updated = self.table.update(bucket, now, |records: &mut Vec<ClientRecord>| {
            let position =
                records.iter().position(|r| r.client_id == client_id).ok_or(RegistryError::NotFound)?;
            records.remove(position);
            Ok::<_, RegistryError>(())
        })?;
        let updated = updated.ok_or(RegistryError::NotFound)?;
        self.metrics.add(Metric::RegisteredClients, updated.records_delta);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::{MemoryStore, NoMetrics};
    use crate::host::SystemRandomness;
    use crate::oauth::grant_type::GrantType;

    fn registration(name: &str) -> Registration {
        Registration {
            name: name.to_owned(),
            owner: "admin".to_owned(),
            callback_url: "https://app.example/cb".to_owned(),
            grant_types: GrantTypes::from([GrantType::Password, GrantType::RefreshToken]),
            saas: false,
            scope: String::new(),
            auth_method: AuthMethod::ClientSecretBasic,
            application_type: ApplicationType::Web,
        }
    }

    fn registry(shared: &MemoryStore, capacity: u32) -> ClientRegistry<'_> {
        let registry = ClientRegistry::new(shared, &SystemRandomness, &NoMetrics, capacity);
        registry.initialize().unwrap();
        registry
    }

    #[test]
    fn registered_applications_are_found_by_id_and_verify_their_secret() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 16 * CLIENTS_PER_BUCKET as u32);
        let registered = registry.register(registration("shop"), "admin", 0).unwrap();
        let id = &registered.record.client_id;
        assert!(id
            .bytes()
            .chain(registered.secret.bytes())
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        let found = registry.find(id).unwrap().unwrap();
        assert_eq!(found, registered.record);
        assert!(found.verifier().verify(&registered.secret));
        assert!(!found.verifier().verify("wrong"));
        assert_eq!(registry.find("demo-app").unwrap(), None);
    }

    #[test]
    fn subscriptions_round_trip_and_records_without_them_keep_their_bytes() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 16 * CLIENTS_PER_BUCKET as u32);
        let registered = registry.register(registration("shop"), "admin", 0).unwrap();
        let mut before = Vec::new();
        registered.record.encode_into(&mut before);
        let id = &registered.record.client_id;
        let bronze = RegisteredSubscription {
            api: "Orders".into(),
            tier: "Bronze".into(),
            state: RegisteredState::ProdOnlyBlocked,
        };
        registry
            .update_subscriptions(id, 1, |subscriptions| {
                subscriptions.push(bronze.clone());
                Ok(())
            })
            .unwrap();
        let found = registry.find(id).unwrap().unwrap();
        assert_eq!(found.subscriptions, vec![bronze.clone()]);
        assert!(found.verifier().verify(&registered.secret), "the rest of the record stays");
        // Too many subscriptions: refused, nothing stored changes.
        let too_many = registry.update_subscriptions(id, 2, |subscriptions| {
            subscriptions.extend(
                (0..MAX_SUBSCRIPTIONS_PER_CLIENT)
                    .map(|i| RegisteredSubscription { api: format!("api{i}"), ..bronze.clone() }),
            );
            Ok(())
        });
        assert_eq!(too_many, Err(SubscriptionError::TooMany));
        assert_eq!(registry.find(id).unwrap().unwrap().subscriptions.len(), 1);
        // Unsubscribed again, the record is written without a subscription section, as modules
        // that predate subscriptions read it.
        registry
            .update_subscriptions(id, 3, |subscriptions| {
                subscriptions.clear();
                Ok(())
            })
            .unwrap();
        let mut after = Vec::new();
        registry.find(id).unwrap().unwrap().encode_into(&mut after);
        assert_eq!(after, before);
        assert_eq!(
            registry.update_subscriptions("nope", 4, |_| Ok(())),
            Err(SubscriptionError::Registry(RegistryError::NotFound))
        );
    }

    #[test]
    fn the_same_name_for_the_same_owner_is_a_duplicate() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 16 * CLIENTS_PER_BUCKET as u32);
        registry.register(registration("shop"), "admin", 0).unwrap();
        assert_eq!(registry.register(registration("shop"), "admin", 0).err(), Some(RegistryError::Duplicate));
        let other_owner = Registration { owner: "someone".into(), ..registration("shop") };
        assert!(registry.register(other_owner, "admin", 0).is_ok());
    }

    #[test]
    fn regenerating_replaces_the_secret_and_deleting_removes_the_application() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 16 * CLIENTS_PER_BUCKET as u32);
        let first = registry.register(registration("shop"), "admin", 0).unwrap();
        let id = first.record.client_id.clone();
        let second = registry.regenerate_secret(&id, 0).unwrap();
        assert_ne!(first.secret, second.secret);
        let found = registry.find(&id).unwrap().unwrap();
        assert!(!found.verifier().verify(&first.secret));
        assert!(found.verifier().verify(&second.secret));
        registry.delete(&id, 0).unwrap();
        assert_eq!(registry.find(&id).unwrap(), None);
        assert_eq!(registry.delete(&id, 0).err(), Some(RegistryError::NotFound));
        assert_eq!(registry.regenerate_secret("nope", 0).err(), Some(RegistryError::NotFound));
    }

    #[test]
    fn the_registry_holds_its_capacity_whatever_the_names() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 64);
        for i in 0..64 {
            registry.register(registration(&format!("app{i}")), "admin", 0).unwrap();
        }
        assert_eq!(registry.register(registration("one-more"), "admin", 0).err(), Some(RegistryError::Full));
        // Duplicates are found wherever probing put the first one.
        for i in 0..64 {
            assert_eq!(
                registry.register(registration(&format!("app{i}")), "admin", 0).err(),
                Some(RegistryError::Duplicate)
            );
        }
    }

    /// Without this check, 1024 → 64 → 1024 would lose 47 of 50 registered applications.
    #[test]
    fn a_lower_capacity_that_would_delete_applications_is_refused() {
        let shared = MemoryStore::default();
        let big = registry(&shared, 1024);
        let ids: Vec<String> = (0..50)
            .map(|i| big.register(registration(&format!("app{i}")), "admin", 0).unwrap().record.client_id)
            .collect();
        let smaller = ClientRegistry::new(&shared, &SystemRandomness, &NoMetrics, 64);
        assert!(smaller.initialize().is_err(), "a smaller registry dropped registered applications");
        big.initialize().unwrap();
        for id in &ids {
            assert!(big.find(id).unwrap().is_some(), "{id} was deleted");
        }
    }

    #[test]
    fn a_lower_capacity_is_fine_while_the_buckets_it_gives_up_are_empty() {
        let shared = MemoryStore::default();
        registry(&shared, 1024);
        let smaller = ClientRegistry::new(&shared, &SystemRandomness, &NoMetrics, 64);
        assert_eq!(smaller.initialize(), Ok(0));
        let registered = smaller.register(registration("shop"), "admin", 0).unwrap();
        // Growing again keeps what the smaller table holds.
        let big = registry(&shared, 1024);
        assert!(big.find(&registered.record.client_id).unwrap().is_some());
    }

    #[test]
    fn records_of_the_older_formats_decode() {
        let shared = MemoryStore::default();
        let registered = registry(&shared, 64).register(registration("shop"), "admin", 0).unwrap().record;
        assert_eq!(registered.registered_by, "admin");
        let mut bytes = Vec::new();
        registered.encode_into(&mut bytes);
        assert_eq!(ClientRecord::decode(&bytes).as_ref(), Some(&registered));
        // Before RFC 7591 the record ended after the registrar (marker, issued-at, auth method,
        // no token hash, empty scope came later).
        bytes.truncate(bytes.len() - (1 + 8 + 1 + 1 + 2));
        let before_rfc7591 = ClientRecord::decode(&bytes).unwrap();
        assert_eq!(before_rfc7591, ClientRecord { issued_at_secs: 0, ..registered.clone() });
        // The oldest format ended after the digest.
        bytes.truncate(bytes.len() - 1 - "admin".len());
        let old = ClientRecord::decode(&bytes).unwrap();
        assert_eq!(old, ClientRecord { registered_by: String::new(), issued_at_secs: 0, ..registered });
    }

    /// What a newer module wrote, a mark and field after the last mark this build knows and a
    /// record this build cannot read (an application type it does not know), outlives a
    /// subscription change made by this build.
    #[test]
    fn a_newer_modules_marks_and_records_survive_a_subscription_change() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 64);
        let shop = registry.register(registration("shop"), "admin", 0).unwrap().record;
        let bucket = bucket_of(&shop.client_id).unwrap();
        let newer_mark = [PUBLIC_CLIENT_FIELDS + 1, 0xAB, 0xCD];
        let from_newer = ClientRecord { newer_fields: newer_mark.to_vec(), ..shop.clone() };
        let mut unknown_type = Vec::new();
        ClientRecord {
            client_id: "other-app".into(),
            registration: Registration {
                application_type: ApplicationType::Native,
                ..shop.registration.clone()
            },
            ..shop.clone()
        }
        .encode_into(&mut unknown_type);
        let last = unknown_type.len() - 1;
        unknown_type[last] = 9;
        let mut bytes = crate::state::buckets::encode_bucket(&[from_newer]);
        bytes.extend_from_slice(&(unknown_type.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&unknown_type);
        shared.set(&keys::CLIENTS.bucket_key(bucket), &bytes, 0).unwrap();

        let gold = RegisteredSubscription {
            api: "Orders".into(),
            tier: "Gold".into(),
            state: RegisteredState::Unblocked,
        };
        registry
            .update_subscriptions(&shop.client_id, 0, |subscriptions| {
                subscriptions.push(gold.clone());
                Ok(())
            })
            .unwrap();

        let found = registry.find(&shop.client_id).unwrap().unwrap();
        assert_eq!(found.subscriptions, vec![gold]);
        assert_eq!(found.newer_fields, newer_mark, "the newer mark follows the subscriptions");
        let rewritten = registry.table.read(bucket).unwrap().unwrap();
        assert_eq!(records_of(&rewritten).filter(|raw| *raw == unknown_type.as_slice()).count(), 1);
    }

    /// Re-encoding drops a known block that says nothing (an empty subscription list): a known
    /// mark after the last one would then be read as a known block, so such a record is not
    /// read at all (the bucket keeps it as it is) rather than changed by a rewrite.
    #[test]
    fn a_known_mark_after_the_last_known_one_is_not_a_record_this_build_reads() {
        let shared = MemoryStore::default();
        let web = registry(&shared, 64).register(registration("shop"), "admin", 0).unwrap().record;
        let mut bytes = Vec::new();
        web.encode_into(&mut bytes);
        let out_of_order = [bytes.as_slice(), &[APPLICATION_TYPE_FIELDS, 1, SUBSCRIPTION_FIELDS, 0]].concat();
        assert_eq!(ClientRecord::decode(&out_of_order), None);
        let newer = [bytes.as_slice(), &[PUBLIC_CLIENT_FIELDS + 1, SUBSCRIPTION_FIELDS]].concat();
        let decoded = ClientRecord::decode(&newer).unwrap();
        assert_eq!(decoded.newer_fields, vec![PUBLIC_CLIENT_FIELDS + 1, SUBSCRIPTION_FIELDS]);
        let mut reencoded = Vec::new();
        decoded.encode_into(&mut reencoded);
        assert_eq!(reencoded, newer);
    }

    /// A public client's record adds its mark after the application type's; a confidential
    /// client's keeps its bytes. Without the mark (what a module that predates public clients
    /// reads and, rewriting the bucket, keeps after its last known field) the record is a
    /// confidential client's whose secret nobody was given: refused there, never let in.
    #[test]
    fn a_public_client_is_marked_after_the_application_type_and_reads_as_confidential_without_it() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 64);
        let public_registration = Registration { auth_method: AuthMethod::None, ..registration("mcp") };
        let public =
            registry.register_with(public_registration, "admin", 0, RegisterOptions::RFC7591).unwrap();
        assert!(public.record.is_public());
        let mut public_bytes = Vec::new();
        public.record.encode_into(&mut public_bytes);
        assert!(public_bytes.ends_with(&[PUBLIC_CLIENT_FIELDS, PUBLIC_CLIENT]));
        assert_eq!(ClientRecord::decode(&public_bytes).as_ref(), Some(&public.record));
        assert_eq!(registry.find(&public.record.client_id).unwrap().as_ref(), Some(&public.record));

        let without_mark = &public_bytes[..public_bytes.len() - 2];
        let as_older_modules_read = ClientRecord::decode(without_mark).unwrap();
        assert_eq!(as_older_modules_read.registration.auth_method, AuthMethod::ClientSecretBasic);
        // The same client registered confidential is written byte for byte as before.
        let basic =
            Registration { auth_method: AuthMethod::ClientSecretBasic, ..public.record.registration.clone() };
        let mut confidential_bytes = Vec::new();
        ClientRecord { registration: basic, ..public.record.clone() }.encode_into(&mut confidential_bytes);
        assert_eq!(confidential_bytes, without_mark);

        let native =
            Registration { application_type: ApplicationType::Native, ..public.record.registration.clone() };
        let native_public = ClientRecord { registration: native, ..public.record.clone() };
        let mut native_bytes = Vec::new();
        native_public.encode_into(&mut native_bytes);
        assert!(native_bytes.ends_with(&[APPLICATION_TYPE_FIELDS, 1, PUBLIC_CLIENT_FIELDS, PUBLIC_CLIENT]));
        assert_eq!(ClientRecord::decode(&native_bytes).as_ref(), Some(&native_public));
    }

    /// An open registration keeps its source, last use and lifetime after the public flag; the
    /// quotas count only live ones, a touch moves the last use, and the bucket's next write
    /// drops an expired one (its slot reclaimed).
    #[test]
    fn open_registrations_round_trip_count_while_live_and_are_pruned_when_expired() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 64);
        let quota = |source: &str| OpenQuota {
            source: source.to_owned(),
            max_per_source: 2,
            max_registrations: 3,
            expire_unused_after_secs: 100,
        };
        let open = |source: &str| RegisterOptions { open: Some(quota(source)), ..RegisterOptions::RFC7591 };
        let public =
            || Registration { auth_method: AuthMethod::None, owner: String::new(), ..registration("mcp") };
        let first = registry.register_with(public(), "", 1_000_000, open("192.0.2.1")).unwrap().record;
        let mut bytes = Vec::new();
        first.encode_into(&mut bytes);
        assert_eq!(
            bytes[bytes.len() - (2 + 1 + 9 + 8 + 4)..][..2],
            [PUBLIC_CLIENT_FIELDS, PUBLIC_CLIENT | OPEN_REGISTRATION]
        );
        assert_eq!(ClientRecord::decode(&bytes).as_ref(), Some(&first));
        let open_fields = first.open.clone().unwrap();
        assert_eq!((open_fields.source.as_str(), open_fields.last_used_secs), ("192.0.2.1", 1000));

        registry.register_with(public(), "", 1_000_000, open("192.0.2.1")).unwrap();
        assert_eq!(
            registry.register_with(public(), "", 1_000_000, open("192.0.2.1")).err(),
            Some(RegistryError::OpenQuotaReached(OpenQuotaReached::Source))
        );
        registry.register_with(public(), "", 1_000_000, open("192.0.2.2")).unwrap();
        assert_eq!(
            registry.register_with(public(), "", 1_000_000, open("192.0.2.3")).err(),
            Some(RegistryError::OpenQuotaReached(OpenQuotaReached::Total))
        );
        // An administrator's registrations are not open ones.
        registry.register_with(registration("shop"), "admin", 1_000_000, RegisterOptions::RFC7591).unwrap();
        assert_eq!(registry.count_open("192.0.2.1", 1_000_000), Ok((3, 2)));

        registry.touch(&first.client_id, 1_050_000).unwrap();
        assert_eq!(registry.find(&first.client_id).unwrap().unwrap().open.unwrap().last_used_secs, 1050);
        // At 1,120 s the others (last used at 1,000 s, 100 s lifetime) expired: they count no
        // more, and a write to the first one's bucket drops the expired ones in it.
        assert_eq!(registry.count_open("192.0.2.1", 1_120_000), Ok((1, 1)));
        let fresh = registry.register_with(public(), "", 1_120_000, open("192.0.2.3")).unwrap();
        assert!(fresh.record.open.is_some());
        registry.touch(&first.client_id, 1_120_000).unwrap();
        let bucket = bucket_of(&first.client_id).unwrap();
        let left = crate::state::buckets::decode_bucket::<ClientRecord>(
            &registry.table.read(bucket).unwrap().unwrap(),
        );
        assert!(left.iter().all(|record| record.open.as_ref().is_none_or(|open| !open.expired(1_120_000))));
        assert!(ClientRecord { open: Some(open_fields.clone()), ..first.clone() }.prune(1_100_000));
        assert!(!ClientRecord { open: Some(open_fields), ..first }.prune(1_101_000));
    }

    /// A record written before the application type existed is a web client's, and a web
    /// client's record is still written byte for byte as before; a native one adds its mark.
    #[test]
    fn the_application_type_defaults_to_web_and_leaves_web_records_bytes_alone() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 64);
        let web = registry.register(registration("shop"), "admin", 0).unwrap().record;
        let mut web_bytes = Vec::new();
        web.encode_into(&mut web_bytes);
        assert_eq!(
            ClientRecord::decode(&web_bytes).unwrap().registration.application_type,
            ApplicationType::Web
        );

        let native_registration =
            Registration { application_type: ApplicationType::Native, ..web.registration.clone() };
        let native = ClientRecord { registration: native_registration, ..web.clone() };
        let mut native_bytes = Vec::new();
        native.encode_into(&mut native_bytes);
        assert_eq!(native_bytes, [web_bytes.as_slice(), &[APPLICATION_TYPE_FIELDS, 1]].concat());
        assert_eq!(ClientRecord::decode(&native_bytes).as_ref(), Some(&native));
        // After subscriptions too.
        let subscribed = ClientRecord {
            subscriptions: vec![RegisteredSubscription {
                api: "Orders".into(),
                tier: "Gold".into(),
                state: RegisteredState::Unblocked,
            }],
            ..native
        };
        let mut bytes = Vec::new();
        subscribed.encode_into(&mut bytes);
        assert_eq!(ClientRecord::decode(&bytes).as_ref(), Some(&subscribed));
        // An unknown type is no record, rather than a guess.
        let last = native_bytes.len() - 1;
        native_bytes[last] = 9;
        assert_eq!(ClientRecord::decode(&native_bytes), None);
    }

    #[test]
    fn rfc7591_registrations_keep_a_token_hash_scope_and_method_and_may_share_a_name() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 64);
        let asked = Registration {
            scope: "orders:read".into(),
            auth_method: AuthMethod::ClientSecretPost,
            ..registration("shop")
        };
        let first =
            registry.register_with(asked.clone(), "admin", 1_700_000_000_123, RegisterOptions::RFC7591);
        let first = first.unwrap();
        let second = registry.register_with(asked.clone(), "admin", 0, RegisterOptions::RFC7591).unwrap();
        assert_ne!(first.record.client_id, second.record.client_id);
        let token = first.registration_token.clone().unwrap();
        let found = registry.find(&first.record.client_id).unwrap().unwrap();
        assert_eq!(found, first.record);
        assert_eq!(found.issued_at_secs, 1_700_000_000);
        assert_eq!(found.registration.scope, "orders:read");
        assert_eq!(found.registration.auth_method, AuthMethod::ClientSecretPost);
        assert!(found.registration_token_matches(&token));
        assert!(!found.registration_token_matches(&second.registration_token.unwrap()));
        assert!(!found.registration_token_matches(""));
        // The record keeps a hash of the token, never the token.
        let raw = registry.table.read(bucket_of(&found.client_id).unwrap()).unwrap().unwrap();
        assert!(!raw.windows(token.len()).any(|w| w == token.as_bytes()));
        // WSO2 registrations have no registration token.
        let wso2 = registry.register(registration("wso2"), "admin", 0).unwrap();
        assert!(wso2.registration_token.is_none());
        assert!(!wso2.record.registration_token_matches(&token));
        // Metadata updates keep id, owner, secret and token.
        let changed = Registration { name: "renamed".into(), owner: "someone-else".into(), ..asked };
        let by_client = MetadataUpdater::Client { registration_token: &token };
        let (updated, new_token) = registry.update_metadata(&found.client_id, changed, 0, by_client).unwrap();
        assert_eq!(new_token, None);
        assert_eq!(updated.registration.name, "renamed");
        assert_eq!(updated.registration.owner, "admin");
        assert!(updated.verifier().verify(&first.secret));
        assert!(updated.registration_token_matches(&token));
        assert_eq!(
            registry.update_metadata("nope", registration("x"), 0, by_client).err(),
            Some(RegistryError::NotFound)
        );
    }

    #[test]
    fn the_admin_grant_is_stored_only_once_a_client_narrowed_itself() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 64);
        let asked = Registration { scope: "orders:read orders:write".into(), ..registration("shop") };
        let registered = registry.register_with(asked.clone(), "admin", 0, RegisterOptions::RFC7591).unwrap();
        let token = registered.registration_token.unwrap();
        let id = registered.record.client_id;
        let mut unchanged = Vec::new();
        registry.find(&id).unwrap().unwrap().encode_into(&mut unchanged);
        // Still what the admin gave: the record ends with its scope, as older modules wrote it.
        let scope_field = [&(asked.scope.len() as u16).to_be_bytes()[..], asked.scope.as_bytes()].concat();
        assert!(unchanged.ends_with(&scope_field));

        let narrower = Registration {
            grant_types: GrantTypes::from([GrantType::Password]),
            scope: "orders:read".into(),
            ..asked.clone()
        };
        let by_client = MetadataUpdater::Client { registration_token: &token };
        let (narrowed, _) = registry.update_metadata(&id, narrower.clone(), 0, by_client).unwrap();
        assert_eq!(narrowed.admin_grant, AdminGrant::of(&asked), "narrowing keeps the ceiling");
        let mut bytes = Vec::new();
        narrowed.encode_into(&mut bytes);
        assert_eq!(ClientRecord::decode(&bytes).as_ref(), Some(&narrowed));
        // An older module rewriting the bucket drops the admin grant (marker, grant bits, scope):
        // the ceiling falls to what the client has, never above it.
        bytes.truncate(bytes.len() - (1 + 1 + 2 + asked.scope.len()));
        let dropped = ClientRecord::decode(&bytes).unwrap();
        assert_eq!(dropped.admin_grant, AdminGrant::of(&narrower));
        assert_eq!(dropped.registration, narrower);
        // Back up to the admin grant is fine; beyond it is refused and changes nothing.
        registry.update_metadata(&id, asked.clone(), 0, by_client).unwrap();
        let beyond =
            Registration { grant_types: GrantTypes::from([GrantType::ClientCredentials]), ..asked.clone() };
        assert_eq!(
            registry.update_metadata(&id, beyond, 0, by_client).err(),
            Some(RegistryError::BeyondAdminGrant)
        );
        assert_eq!(registry.find(&id).unwrap().unwrap().registration, asked);
    }

    /// Each optional block after the subscriptions has its own mark, in a fixed order: a native
    /// client that narrowed itself keeps both its admin grant and its type.
    #[test]
    fn a_narrowed_native_client_keeps_its_admin_grant_and_its_type() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 64);
        let registered = registry.register(registration("shop"), "admin", 0).unwrap().record;
        let narrowed = ClientRecord {
            registration: Registration {
                application_type: ApplicationType::Native,
                scope: "orders:read".into(),
                ..registered.registration.clone()
            },
            admin_grant: AdminGrant {
                grant_types: registered.registration.grant_types,
                scope: "orders:read orders:write".into(),
            },
            ..registered
        };
        let mut bytes = Vec::new();
        narrowed.encode_into(&mut bytes);
        assert!(bytes.ends_with(&[APPLICATION_TYPE_FIELDS, 1]));
        assert_eq!(ClientRecord::decode(&bytes).as_ref(), Some(&narrowed));
    }

    #[test]
    fn an_admin_grant_covers_what_it_keeps_or_narrows() {
        struct Case {
            name: &'static str,
            granted: (&'static [GrantType], &'static str),
            asked: (&'static [GrantType], &'static str),
            covers: bool,
        }
        use GrantType::{ClientCredentials as Cc, Password};
        let table = [
            Case { name: "the same", granted: (&[Cc], "a b"), asked: (&[Cc], "a b"), covers: true },
            Case { name: "fewer scopes", granted: (&[Cc], "a b"), asked: (&[Cc], "b"), covers: true },
            Case {
                name: "fewer grants",
                granted: (&[Cc, Password], "a"),
                asked: (&[Password], "a"),
                covers: true,
            },
            Case { name: "all scopes granted", granted: (&[Cc], ""), asked: (&[Cc], "a"), covers: true },
            Case {
                name: "another grant",
                granted: (&[Cc], "a"),
                asked: (&[Cc, Password], "a"),
                covers: false,
            },
            Case { name: "another scope", granted: (&[Cc], "a"), asked: (&[Cc], "a c"), covers: false },
            Case { name: "a scope's prefix", granted: (&[Cc], "ab"), asked: (&[Cc], "a"), covers: false },
            Case { name: "all scopes asked", granted: (&[Cc], "a"), asked: (&[Cc], ""), covers: false },
        ];
        for Case { name, granted, asked, covers } in table {
            let granted =
                AdminGrant { grant_types: granted.0.iter().copied().collect(), scope: granted.1.into() };
            let asked = Registration {
                grant_types: asked.0.iter().copied().collect(),
                scope: asked.1.into(),
                ..registration("shop")
            };
            assert_eq!(granted.covers(&asked), covers, "{name}");
        }
    }

    #[test]
    fn a_re_key_rotates_the_registration_token_and_an_admin_update_hands_out_a_new_one() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 64);
        let registered =
            registry.register_with(registration("shop"), "admin", 0, RegisterOptions::RFC7591).unwrap();
        let (id, token) = (registered.record.client_id, registered.registration_token.unwrap());
        assert!(registry.regenerate_secret(&id, 0).unwrap().registration_token.is_none());
        let rekeyed = registry.find(&id).unwrap().unwrap();
        assert!(!rekeyed.registration_token_matches(&token));
        assert!(rekeyed.has_registration_token(), "still an RFC 7591 application");
        let by_client = MetadataUpdater::Client { registration_token: &token };
        assert_eq!(
            registry.update_metadata(&id, registration("shop"), 0, by_client).err(),
            Some(RegistryError::NotFound)
        );
        let (updated, new_token) =
            registry.update_metadata(&id, registration("shop"), 0, MetadataUpdater::Admin).unwrap();
        assert!(updated.registration_token_matches(&new_token.unwrap()));
        // A v0.17 application has no token before or after a re-key.
        let wso2 = registry.register(registration("v017"), "admin", 0).unwrap().record.client_id;
        registry.regenerate_secret(&wso2, 0).unwrap();
        assert!(!registry.find(&wso2).unwrap().unwrap().has_registration_token());
    }

    #[test]
    fn the_quota_counts_what_the_registering_admin_has_in_the_registry() {
        let shared = MemoryStore::default();
        let registry = registry(&shared, 256);
        let at_most_two = RegisterOptions::WSO2.at_most_per_admin(Some(2));
        let first = registry.register_with(registration("a"), "admin", 0, at_most_two.clone()).unwrap();
        registry.register_with(registration("b"), "admin", 0, at_most_two.clone()).unwrap();
        assert_eq!(registry.count_registered_by("admin"), Ok(2));
        assert_eq!(
            registry.register_with(registration("c"), "admin", 0, at_most_two.clone()).err(),
            Some(RegistryError::QuotaReached)
        );
        assert!(registry.register_with(registration("c"), "ops", 0, at_most_two.clone()).is_ok());
        assert!(registry.register_with(registration("d"), "admin", 0, RegisterOptions::WSO2).is_ok());
        registry.delete(&first.record.client_id, 0).unwrap();
        assert_eq!(registry.count_registered_by("admin"), Ok(2));
    }
}
