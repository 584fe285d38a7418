//! One check per section of the configuration, each turning its raw part into what the
//! gateway uses. Every error names the place of the problem, never the value found there.

use foldhash::{HashMap, HashMapExt};

use super::error::{problem, ConfigError};
use super::parts::{
    Application, AuthorizationConfig, EtcdLogin, EtcdPassword, FleetConfig, OpenRegistration,
    RegistrationConfig, TokenFormat, User, UserClaims, Validity,
};
use super::raw::{
    RawApplication, RawAuthorization, RawConfig, RawFleet, RawKeyPair, RawOpenRegistration, RawRegistration,
    RawResource, RawUser,
};
use super::scope_catalog::ScopeCatalog;
use crate::oauth::credentials::SecretVerifier;
use crate::oauth::endpoints::EndpointKind;
use crate::oauth::grant_type::{refresh_token_unobtainable, GrantType, GrantTypes, PUBLIC_CLIENT_GRANTS};
use crate::oauth::redirect_uri::{self, ApplicationType, RedirectUriError};
use crate::oauth::routes::{Access, PathTemplate, RouteRule, RouteTable};
use crate::oauth::scope::ScopeSet;
use crate::oauth::{METADATA_PATH, OPENID_CONFIGURATION_PATH, RESOURCE_METADATA_PATH};
use crate::state::grants::KeyType;
use crate::state::lockout::{LockoutPolicy, NAMES_PER_BUCKET};

/// The largest table of shared-data records (grants, registered applications, lockout names).
const MAX_TABLE_CAPACITY: u32 = 1 << 24;
/// The store keeps names in one length byte.
const MAX_NAME_BYTES: usize = 255;

/// The gateway's own paths, by the field that sets each.
pub(super) type Endpoints = Vec<(&'static str, String)>;

/// Token lifetimes and the default format, validated.
pub(super) struct Lifetimes {
    pub(super) access: Validity,
    pub(super) refresh_secs: u64,
    /// JWT access tokens' lifetime where an application sets none: always finite.
    pub(super) jwt_access: Validity,
    pub(super) format: TokenFormat,
}

/// `realm` goes into `WWW-Authenticate` quoted; `issuer` must be an RFC 8414 issuer.
pub(super) fn check_realm_and_issuer(raw: &RawConfig) -> Result<(), ConfigError> {
    if raw.realm.is_empty()
        || !raw.realm.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(problem("realm", "must be printable ASCII without '\"' or '\\'"));
    }
    match &raw.issuer {
        Some(issuer) => check_issuer(issuer),
        None => Ok(()),
    }
}

/// The endpoints' paths, by [`EndpointKind`]'s rows: each a plain path, no two the same, and
/// nothing below an endpoint that serves the paths below it.
pub(super) fn endpoints(raw: &RawConfig) -> Result<Endpoints, ConfigError> {
    let endpoints: Endpoints = EndpointKind::ALL
        .into_iter()
        .filter_map(|kind| Some((kind.spec().config_field, configured_path(raw, kind)?)))
        .collect();
    for (i, (name, path)) in endpoints.iter().enumerate() {
        if !path.starts_with('/') || path.contains(['?', '#', ' ', '{', '}', '*']) {
            return Err(problem(name, "must be a path starting with '/'"));
        }
        if endpoints.iter().take(i).any(|(_, other)| other == path) {
            return Err(problem(name, "is the same path as another endpoint"));
        }
    }
    let serving_below = EndpointKind::ALL.into_iter().filter(|kind| kind.spec().serves_below);
    for name in serving_below.map(|kind| kind.spec().config_field) {
        let Some((_, path)) = endpoints.iter().find(|(field, _)| *field == name) else { continue };
        let below = format!("{}/", path.trim_end_matches('/'));
        if let Some((other, _)) = endpoints.iter().find(|(_, other)| other.starts_with(&below)) {
            return Err(problem(name, format!("has the {other} below it")));
        }
    }
    Ok(endpoints)
}

/// The path `raw` gives an endpoint, or `None` when the endpoint is off: the authorization
/// endpoint without an application or registration using the code grant, the registration
/// endpoints without `registration`, the JWKS without `signing`.
fn configured_path(raw: &RawConfig, kind: EndpointKind) -> Option<String> {
    let registration = raw.registration.as_ref();
    match kind {
        EndpointKind::Token => Some(raw.token_endpoint.clone()),
        EndpointKind::Revocation => Some(raw.revocation_endpoint.clone()),
        EndpointKind::Introspection => Some(raw.introspection_endpoint.clone()),
        EndpointKind::Metadata => Some(METADATA_PATH.to_owned()),
        EndpointKind::Authorization => {
            let code_grant = GrantType::AuthorizationCode;
            let uses_code = raw.applications.iter().any(|app| app.grant_types.contains(&code_grant))
                || registration.is_some_and(|r| r.grant_types.contains(&code_grant));
            uses_code.then(|| raw.authorization.endpoint.clone())
        }
        EndpointKind::Wso2Registration => registration.map(|r| r.endpoint.clone()),
        EndpointKind::Rfc7591Registration => registration.map(|r| r.rfc7591_endpoint.clone()),
        // Fixed like RFC 8414's, and on whenever there are APIs (those without a resource
        // identifier have no document: the gateway answers 404).
        EndpointKind::ResourceMetadata => (!raw.apis.is_empty()).then(|| RESOURCE_METADATA_PATH.to_owned()),
        EndpointKind::Jwks => raw.signing.as_ref().map(|signing| signing.jwks_endpoint.clone()),
        EndpointKind::Userinfo => raw.signing.as_ref().map(|signing| signing.userinfo_endpoint.clone()),
        EndpointKind::OpenIdConfiguration => {
            raw.signing.as_ref().map(|_| OPENID_CONFIGURATION_PATH.to_owned())
        }
    }
}

/// Token lifetimes and the refresh race grace.
pub(super) fn lifetimes(raw: &RawConfig) -> Result<Lifetimes, ConfigError> {
    let access = validity("access_token_validity_secs", raw.access_token_validity_secs)?;
    let refresh_secs = match raw.refresh_token_validity_secs {
        secs if secs > 0 => secs.unsigned_abs(),
        _ => return Err(problem("refresh_token_validity_secs", "must be a positive number of seconds")),
    };
    if raw.refresh_token_reuse_grace_ms > 60_000 {
        return Err(problem("refresh_token_reuse_grace_ms", "must be at most 60000"));
    }
    let jwt_access = match raw.jwt_access_token_validity_secs {
        secs if secs > 0 => Validity::Seconds(secs.unsigned_abs()),
        _ => return Err(problem("jwt_access_token_validity_secs", JWT_MUST_EXPIRE)),
    };
    Ok(Lifetimes { access, refresh_secs, jwt_access, format: raw.token_format })
}

/// RFC 9068 §2.2: `exp` is required, so a JWT access token has a finite lifetime.
const JWT_MUST_EXPIRE: &str = "must be a positive number of seconds: a JWT access token carries exp";

/// A `jwt` format (an application's, or the default registered ones take) signs with the
/// active `signing` key and names the `issuer` in `iss` (RFC 9068 §2.2): both must be there.
pub(super) fn check_token_formats<'a>(
    applications: impl IntoIterator<Item = (&'a String, &'a Application)>,
    default_format: TokenFormat,
    has_signing: bool,
    has_issuer: bool,
) -> Result<(), ConfigError> {
    if has_signing && has_issuer {
        return Ok(());
    }
    let at = match applications.into_iter().find(|(_, app)| app.token_format == TokenFormat::Jwt) {
        _ if default_format == TokenFormat::Jwt => "token_format".to_owned(),
        Some((key, _)) => format!("applications[consumer_key={key}].token_format"),
        None => return Ok(()),
    };
    Err(problem(at, "jwt needs a signing section and an issuer"))
}

/// The size limits: body, token store, and the brute-force lockout.
pub(super) fn limits(raw: &RawConfig) -> Result<LockoutPolicy, ConfigError> {
    if !(256..=1 << 20).contains(&raw.max_body_bytes) {
        return Err(problem("max_body_bytes", "must be between 256 and 1048576"));
    }
    check_capacity("store.capacity", 1, raw.store.capacity)?;
    check_capacity("store.max_grants_per_application", 1, raw.store.max_grants_per_application)?;
    let lockout = &raw.lockout;
    if lockout.max_failures > 0 && !(1..=86_400).contains(&lockout.window_secs) {
        return Err(problem("lockout.window_secs", "must be between 1 and 86400"));
    }
    if lockout.max_failures > 0 && !(1..=86_400).contains(&lockout.lockout_secs) {
        return Err(problem("lockout.lockout_secs", "must be between 1 and 86400"));
    }
    check_capacity("lockout.tracked_names", NAMES_PER_BUCKET as u32, lockout.tracked_names)?;
    Ok(LockoutPolicy {
        max_failures: lockout.max_failures,
        window_secs: lockout.window_secs,
        lockout_secs: lockout.lockout_secs,
        tracked_names: lockout.tracked_names,
        // Counted once the applications, users and registry are known (`Config::validate`).
        known_names: 0,
        // Set once the login form is known to be on (`Config::validate`).
        sign_in_pairs: 0,
    })
}

/// An application's sandbox key pair, checked, waiting for its production entry to be
/// complete (subscriptions included): see [`add_sandbox_pairs`].
pub(super) struct SandboxPair {
    at: String,
    production_key: String,
    consumer_key: String,
    verifier: SecretVerifier,
}

/// The configured applications, by consumer key; their scopes become grantable. Sandbox
/// pairs come back apart, for [`add_sandbox_pairs`] once subscriptions are known.
pub(super) fn applications(
    raw: Vec<RawApplication>,
    lifetimes: &Lifetimes,
    catalog: &mut ScopeCatalog,
) -> Result<(HashMap<String, Application>, Vec<SandboxPair>), ConfigError> {
    if raw.is_empty() {
        return Err(problem("applications", "at least one application is needed"));
    }
    let mut applications = HashMap::new();
    let mut sandbox_pairs = Vec::new();
    for (i, mut app) in raw.into_iter().enumerate() {
        let at = format!("applications[{i}]");
        if let Some(pair) = app.sandbox.take() {
            sandbox_pairs.push(sandbox_pair(&at, &app, pair)?);
        }
        check_name(&format!("{at}.consumer_key"), &app.consumer_key)?;
        let grant_types = grant_type_set(&format!("{at}.grant_types"), &app.grant_types)?;
        let verifier = match app.public {
            true => public_client(&at, &app, grant_types)?,
            false => verifier(&at, "consumer_secret", app.consumer_secret, app.consumer_secret_hash)?,
        };
        let redirect_uris = redirect_uris(&at, app.redirect_uris, grant_types, app.application_type)?;
        let name = app.name.unwrap_or_else(|| app.consumer_key.clone());
        check_name(&format!("{at}.name"), &name)?;
        let scopes = catalog.register_grantable(&format!("{at}.scopes"), &app.scopes)?;
        let token_format = app.token_format.unwrap_or(lifetimes.format);
        let access_validity = match (app.access_token_validity_secs, token_format) {
            (Some(secs), TokenFormat::Jwt) if secs <= 0 => {
                return Err(problem(format!("{at}.access_token_validity_secs"), JWT_MUST_EXPIRE))
            }
            (Some(secs), _) => validity(&format!("{at}.access_token_validity_secs"), secs)?,
            (None, TokenFormat::Opaque) => lifetimes.access,
            (None, TokenFormat::Jwt) => lifetimes.jwt_access,
        };
        let application = Application {
            fingerprint: verifier.fingerprint(&app.consumer_key),
            consumer_key: app.consumer_key.clone(),
            verifier,
            grant_types,
            scopes,
            access_validity,
            can_introspect: app.introspect,
            public: app.public,
            redirect_uris,
            application_type: app.application_type,
            name,
            // Filled in once the APIs and tiers are known (`apis::subscribe`).
            subscriptions: Vec::new(),
            key_type: KeyType::Production,
            token_format,
        };
        if applications.insert(app.consumer_key, application).is_some() {
            return Err(problem(format!("{at}.consumer_key"), "the same consumer_key appears twice"));
        }
    }
    Ok((applications, sandbox_pairs))
}

fn sandbox_pair(at: &str, app: &RawApplication, pair: RawKeyPair) -> Result<SandboxPair, ConfigError> {
    let at = format!("{at}.sandbox");
    if app.public {
        return Err(problem(at, "a public client has no key pairs, so no sandbox pair"));
    }
    check_name(&format!("{at}.consumer_key"), &pair.consumer_key)?;
    if pair.consumer_key == app.consumer_key {
        return Err(problem(
            format!("{at}.consumer_key"),
            "is the production consumer_key: give the sandbox pair a key of its own",
        ));
    }
    let verifier = verifier(&at, "consumer_secret", pair.consumer_secret, pair.consumer_secret_hash)?;
    Ok(SandboxPair {
        production_key: app.consumer_key.clone(),
        consumer_key: pair.consumer_key,
        verifier,
        at,
    })
}

/// Each sandbox pair becomes an application entry of its own under its consumer key: the
/// production entry's grants, scopes and subscriptions (so both count in the same tier
/// windows), its own secret, and sandbox as its key type. A key no other entry has.
pub(super) fn add_sandbox_pairs(
    applications: &mut HashMap<String, Application>,
    pairs: Vec<SandboxPair>,
) -> Result<(), ConfigError> {
    for pair in pairs {
        let key_at = format!("{}.consumer_key", pair.at);
        if applications.contains_key(&pair.consumer_key) {
            return Err(problem(key_at, "is another application's consumer_key (or another sandbox pair's)"));
        }
        let Some(production) = applications.get(&pair.production_key) else { continue };
        let sandbox = Application {
            fingerprint: pair.verifier.fingerprint(&pair.consumer_key),
            consumer_key: pair.consumer_key.clone(),
            verifier: pair.verifier,
            key_type: KeyType::Sandbox,
            ..production.clone()
        };
        applications.insert(pair.consumer_key, sandbox);
    }
    Ok(())
}

/// A public client (RFC 6749 §2.1): no secret, and only the code flow (with PKCE) and its
/// refresh tokens. Its verifier matches no secret: a Basic or body secret always fails.
fn public_client(at: &str, app: &RawApplication, grants: GrantTypes) -> Result<SecretVerifier, ConfigError> {
    if app.consumer_secret.is_some() || app.consumer_secret_hash.is_some() {
        return Err(problem(at, "a public client has no consumer_secret"));
    }
    if !grants.contains(GrantType::AuthorizationCode)
        || grants.iter().any(|g| !PUBLIC_CLIENT_GRANTS.contains(&g))
    {
        return Err(problem(
            format!("{at}.grant_types"),
            "a public client may use authorization_code and refresh_token only",
        ));
    }
    // SHA-256 of nothing anyone knows: no presented secret matches an all-zero digest.
    Ok(SecretVerifier::Sha256 { salt: b"tokengate public client".to_vec(), digest: [0; 32] })
}

/// Redirect URIs: needed by, and only for, the authorization code grant; https with a host or
/// loopback http, or for a native client a private-use scheme, no fragment (RFC 6749 §3.1.2,
/// RFC 8252 §7); none twice.
fn redirect_uris(
    at: &str,
    uris: Vec<String>,
    grants: GrantTypes,
    application_type: ApplicationType,
) -> Result<Vec<String>, ConfigError> {
    let uses_code = grants.contains(GrantType::AuthorizationCode);
    if uses_code && uris.is_empty() {
        return Err(problem(
            format!("{at}.redirect_uris"),
            "authorization_code needs at least one redirect URI",
        ));
    }
    if !uses_code && !uris.is_empty() {
        return Err(problem(
            format!("{at}.redirect_uris"),
            "only the authorization_code grant uses redirect URIs",
        ));
    }
    for (j, uri) in uris.iter().enumerate() {
        let place = format!("{at}.redirect_uris[{j}]");
        if uri.len() > MAX_NAME_BYTES {
            return Err(problem(place, format!("must be at most {MAX_NAME_BYTES} bytes")));
        }
        redirect_uri::check_registered(uri, application_type).map_err(|error| match error {
            RedirectUriError::Scheme => match application_type {
                ApplicationType::Web => problem(&place, "must be https, or http on 127.0.0.1 or [::1]"),
                ApplicationType::Native => problem(
                    &place,
                    "must be https, http on 127.0.0.1 or [::1], or a private-use scheme like com.example.app:/cb",
                ),
            },
            RedirectUriError::UnsafeScheme => {
                problem(&place, "must not use the javascript, data, vbscript or file scheme")
            }
            RedirectUriError::Malformed => {
                problem(&place, "must have no fragment, wildcard, space or non-ASCII character")
            }
            RedirectUriError::Duplicate => problem(&place, "is listed twice"),
        })?;
        if uris.iter().take(j).any(|other| other == uri) {
            return Err(problem(place, "is listed twice"));
        }
    }
    Ok(uris)
}

/// What the authorization section is checked against.
pub(super) struct AuthorizationContext<'r> {
    pub(super) registration_grants: Option<&'r [GrantType]>,
}

/// The authorization code flow: on when an application uses it or registrations may. In
/// fleet mode its tables live in etcd like the grants. Without an issuer, redirects carry no
/// `iss` (RFC 9207 §2).
pub(super) fn authorization(
    section: &RawAuthorization,
    context: AuthorizationContext,
    applications: &HashMap<String, Application>,
) -> Result<Option<AuthorizationConfig>, ConfigError> {
    let users: Vec<&Application> =
        applications.values().filter(|app| app.grant_types.contains(GrantType::AuthorizationCode)).collect();
    // Registered clients bring their own redirect URIs (checked when they register).
    let registered_may =
        context.registration_grants.is_some_and(|grants| grants.contains(&GrantType::AuthorizationCode));
    if users.is_empty() && !registered_may {
        return Ok(None);
    }
    if !(1..=60).contains(&section.code_lifetime_secs) {
        return Err(problem("authorization.code_lifetime_secs", "must be between 1 and 60"));
    }
    if !(10..=600).contains(&section.login_lifetime_secs) {
        return Err(problem("authorization.login_lifetime_secs", "must be between 10 and 600"));
    }
    check_capacity("authorization.capacity", 1, section.capacity)?;
    if !(1_000..=100_000_000).contains(&section.pbkdf2_iterations_per_sec) {
        return Err(problem("authorization.pbkdf2_iterations_per_sec", "must be between 1000 and 100000000"));
    }
    let cors_origins = redirect_origins(&users, ApplicationType::Web);
    let native_cors_origins = redirect_origins(&users, ApplicationType::Native);
    Ok(Some(AuthorizationConfig {
        endpoint: section.endpoint.clone(),
        code_lifetime_ms: section.code_lifetime_secs.saturating_mul(1000),
        login_lifetime_ms: section.login_lifetime_secs.saturating_mul(1000),
        capacity: section.capacity,
        pbkdf2_iterations_per_sec: section.pbkdf2_iterations_per_sec,
        cors_origins,
        native_cors_origins,
    }))
}

/// The origins of the redirect URIs of the applications of one type, sorted and without
/// repeats, by insertion: no sort code for a list this short.
fn redirect_origins(users: &[&Application], application_type: ApplicationType) -> Vec<String> {
    let origins = users
        .iter()
        .filter(|app| app.application_type == application_type)
        .flat_map(|app| app.redirect_uris.iter().filter_map(|uri| redirect_uri::origin(uri)));
    let mut sorted: Vec<String> = Vec::new();
    for origin in origins {
        if let Err(at) = sorted.binary_search_by(|known| known.as_str().cmp(origin)) {
            sorted.insert(at, origin.to_owned());
        }
    }
    sorted
}

/// The configured users, by username.
pub(super) fn users(
    raw: Vec<RawUser>,
    catalog: &mut ScopeCatalog,
) -> Result<HashMap<String, User>, ConfigError> {
    let mut users = HashMap::new();
    for (i, user) in raw.into_iter().enumerate() {
        let at = format!("users[{i}]");
        check_name(&format!("{at}.username"), &user.username)?;
        let verifier = verifier(&at, "password", user.password, user.password_hash)?;
        let scopes = catalog.register(&format!("{at}.scopes"), &user.scopes)?;
        let entry = User {
            fingerprint: verifier.fingerprint(&user.username),
            username: user.username.clone(),
            verifier,
            scopes,
            is_admin: user.admin || user.super_admin,
            is_super_admin: user.super_admin,
            claims: UserClaims {
                name: user.name,
                given_name: user.given_name,
                family_name: user.family_name,
                email: user.email,
                email_verified: user.email_verified,
            },
        };
        if users.insert(user.username, entry).is_some() {
            return Err(problem(format!("{at}.username"), "the same username appears twice"));
        }
    }
    Ok(users)
}

/// Dynamic client registration: its scopes become grantable; some user must be an admin.
pub(super) fn registration(
    raw: RawRegistration,
    users: &HashMap<String, User>,
    catalog: &mut ScopeCatalog,
) -> Result<RegistrationConfig, ConfigError> {
    let scopes = catalog.register_grantable("registration.scopes", &raw.scopes)?;
    check_capacity("registration.capacity", 1, raw.capacity)?;
    if raw.max_per_owner == 0 {
        return Err(problem("registration.max_per_owner", "must be at least 1"));
    }
    if !users.values().any(|user| user.is_admin) {
        return Err(problem("registration", "no user is an admin, so nobody could register"));
    }
    let grant_types = grant_type_set("registration.grant_types", &raw.grant_types)?;
    let open = match raw.open {
        Some(open) => Some(open_registration(open, &scopes, grant_types, raw.capacity)?),
        None => None,
    };
    Ok(RegistrationConfig {
        endpoint: raw.endpoint,
        rfc7591_endpoint: raw.rfc7591_endpoint,
        capacity: raw.capacity,
        grant_types,
        scopes,
        max_per_owner: raw.max_per_owner,
        open,
    })
}

/// Open registration's bounds: scopes within `registration.scopes`, the code grant allowed
/// (it registers public clients only), quotas of at least 1 and within the registry.
fn open_registration(
    raw: RawOpenRegistration,
    registration_scopes: &ScopeSet,
    grant_types: GrantTypes,
    capacity: u32,
) -> Result<OpenRegistration, ConfigError> {
    let scopes = ScopeSet::from_names(raw.scopes.iter().map(String::as_str));
    // A registration's empty scope means all of registration.scopes, so an empty set here
    // could not be told apart from that.
    if raw.scopes.is_empty() || raw.scopes.iter().any(|scope| !registration_scopes.contains(scope)) {
        return Err(problem("registration.open.scopes", "must name one or more of registration.scopes"));
    }
    if !grant_types.contains(GrantType::AuthorizationCode) {
        return Err(problem(
            "registration.open",
            "registers public clients, which need authorization_code in registration.grant_types",
        ));
    }
    if raw.max_per_source == 0 || raw.max_per_source > raw.max_registrations {
        return Err(problem("registration.open.max_per_source", "must be between 1 and max_registrations"));
    }
    if raw.max_registrations == 0 || raw.max_registrations > capacity {
        return Err(problem(
            "registration.open.max_registrations",
            "must be between 1 and registration.capacity",
        ));
    }
    if raw.expire_unused_after_secs < 60 {
        return Err(problem("registration.open.expire_unused_after_secs", "must be at least 60"));
    }
    Ok(OpenRegistration {
        scopes,
        max_per_source: raw.max_per_source,
        max_registrations: raw.max_registrations,
        expire_unused_after_secs: raw.expire_unused_after_secs,
        // Checked against apis and tiers, which this section does not see (apis.rs).
        subscriptions: Vec::new(),
    })
}

/// Fleet mode: an Envoy cluster name and a key prefix etcd can hold, sane timeouts.
pub(super) fn fleet(raw: RawFleet) -> Result<FleetConfig, ConfigError> {
    let printable =
        |text: &str| !text.is_empty() && text.len() <= 255 && text.bytes().all(|b| b.is_ascii_graphic());
    if !printable(&raw.cluster) {
        return Err(problem("fleet.cluster", "must name an Envoy cluster (printable ASCII, no spaces)"));
    }
    if !printable(&raw.prefix) || !raw.prefix.ends_with('/') {
        return Err(problem("fleet.prefix", "must be printable ASCII without spaces, ending with '/'"));
    }
    if !(10..=60_000).contains(&raw.timeout_ms) {
        return Err(problem("fleet.timeout_ms", "must be between 10 and 60000"));
    }
    if raw.staleness_ms > 600_000 {
        return Err(problem("fleet.staleness_ms", "must be at most 600000"));
    }
    let login = etcd_login(raw.etcd_user, raw.etcd_password, raw.etcd_token_renewal_ms)?;
    Ok(FleetConfig {
        cluster: raw.cluster,
        prefix: raw.prefix,
        timeout_ms: raw.timeout_ms,
        staleness_ms: raw.staleness_ms,
        login,
    })
}

/// etcd's user and password come together or not at all; no message quotes either.
fn etcd_login(
    user: Option<String>,
    password: Option<String>,
    renewal_ms: u64,
) -> Result<Option<EtcdLogin>, ConfigError> {
    let (user, password) = match (user, password) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(problem("fleet.etcd_password", "is needed with etcd_user")),
        (None, Some(_)) => return Err(problem("fleet.etcd_user", "is needed with etcd_password")),
        (Some(user), Some(password)) => (user, password),
    };
    if user.is_empty() || user.len() > 255 || user.chars().any(char::is_control) {
        return Err(problem("fleet.etcd_user", "must be 1 to 255 characters, no control characters"));
    }
    if password.is_empty() || password.len() > 1024 {
        return Err(problem("fleet.etcd_password", "must be 1 to 1024 bytes"));
    }
    if !(1_000..=3_600_000).contains(&renewal_ms) {
        return Err(problem("fleet.etcd_token_renewal_ms", "must be between 1000 and 3600000"));
    }
    Ok(Some(EtcdLogin { user, password: EtcdPassword::new(password), renewal_ms }))
}

/// The resource table: no resource over an endpoint, no method and template twice, and every
/// scope a resource asks for grantable to some application. Each resource comes with where
/// the config lists it and its API (`None`: the flat `resources` list).
pub(super) fn routes(
    raw: Vec<(String, RawResource, Option<usize>)>,
    endpoints: &Endpoints,
    catalog: &mut ScopeCatalog,
) -> Result<RouteTable, ConfigError> {
    let mut rules: Vec<RouteRule> = Vec::with_capacity(raw.len());
    for (at, resource, api) in raw {
        let template = PathTemplate::parse(&resource.path).map_err(|e| problem(format!("{at}.path"), e.0))?;
        if let Some((name, _)) = endpoints.iter().find(|(_, path)| template.matches(path)) {
            return Err(problem(format!("{at}.path"), format!("overlaps the {name}")));
        }
        check_methods(&at, &resource.methods, &template, &rules)?;
        let access = access(&at, &resource, catalog)?;
        rules.push(RouteRule { methods: resource.methods, template, access, api });
    }
    Ok(RouteTable::new(rules))
}

fn check_methods(
    at: &str,
    methods: &[String],
    template: &PathTemplate,
    rules: &[RouteRule],
) -> Result<(), ConfigError> {
    if methods.is_empty() {
        return Err(problem(format!("{at}.methods"), "at least one method is needed"));
    }
    for (j, method) in methods.iter().enumerate() {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(problem(format!("{at}.methods[{j}]"), "an HTTP method in capitals, like GET"));
        }
        // Templates, not their text: `/orders/{id}` and `/orders/{x}` are one template.
        let listed_before = methods.iter().take(j).any(|m| m == method)
            || rules.iter().any(|rule| rule.template == *template && rule.methods.contains(method));
        if listed_before {
            return Err(problem(format!("{at}.methods[{j}]"), "this method and path are listed twice"));
        }
    }
    Ok(())
}

fn access(at: &str, resource: &RawResource, catalog: &mut ScopeCatalog) -> Result<Access, ConfigError> {
    if resource.public {
        if !resource.scopes.is_empty() {
            return Err(problem(format!("{at}.scopes"), "a public resource needs no scopes"));
        }
        return Ok(Access::Public);
    }
    let scopes = catalog.register(&format!("{at}.scopes"), &resource.scopes)?;
    if let Some(j) = resource.scopes.iter().position(|name| !catalog.is_grantable(name)) {
        return Err(problem(format!("{at}.scopes[{j}]"), "no application can be granted this scope"));
    }
    Ok(Access::scopes(scopes.iter().map(str::to_owned)))
}

/// The grant types a configured application, or every registered one, may use: at least one,
/// none twice, none unusable.
fn grant_type_set(at: &str, listed: &[GrantType]) -> Result<GrantTypes, ConfigError> {
    let grants: GrantTypes = listed.iter().copied().collect();
    if grants.is_empty() {
        return Err(problem(at, "at least one grant type is needed"));
    }
    if grants.len() != listed.len() {
        return Err(problem(at, "lists a grant type twice"));
    }
    if refresh_token_unobtainable(grants) {
        return Err(problem(
            at,
            "refresh_token alone, or with client_credentials only, can never be used: add password or authorization_code",
        ));
    }
    Ok(grants)
}

fn check_capacity(at: &str, min: u32, capacity: u32) -> Result<(), ConfigError> {
    if !(min..=MAX_TABLE_CAPACITY).contains(&capacity) {
        return Err(problem(at, format!("must be between {min} and {MAX_TABLE_CAPACITY}")));
    }
    Ok(())
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
