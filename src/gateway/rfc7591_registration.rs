//! Dynamic client registration as RFC 7591 says it, and its management as RFC 7592 does:
//!
//! | request | does |
//! |---|---|
//! | `POST <rfc7591_endpoint>` (JSON client metadata) | registers an application (201): its id, secret, metadata, a registration access token and its client URI |
//! | `GET <rfc7591_endpoint>/<client id>` | reads its metadata (never the secret or the token: only their hashes are kept) |
//! | `PUT <rfc7591_endpoint>/<client id>` | replaces its metadata; id and secret stay |
//! | `DELETE <rfc7591_endpoint>/<client id>` | deletes it (204): its tokens stop working |
//!
//! Registering needs authorization (§3 lets the server require it): an administrator's HTTP
//! Basic, as at the WSO2 endpoint. The client URI takes `Authorization: Bearer <registration
//! access token>` (RFC 7592 §2); a wrong token and an unknown client get the same 401. With the
//! token alone an update may keep or narrow the grant types and scope the client's administrator
//! gave it ([`AdminGrant`](crate::state::registry::AdminGrant)), never widen them (§2.2 lets the
//! server refuse any change). The client URI also takes the HTTP Basic of an administrator who
//! manages the client: its update may give anything registration allows, and replaces the
//! registration access token (§3: the reply carries the new one).

use serde::{Deserialize, Serialize};

use super::authentication::{loopback_hosts, media_type_is};
use super::bearer::bearer_token;
use super::reply::{no_store_json, ErrorKind, OAuthError, Response};
use super::wso2_registration::{self, managed_by};
use super::{EndpointRequest, Gateway};
use crate::config::{OpenRegistration, RegistrationConfig};
use crate::host::metrics::Metric;
use crate::oauth::credentials::parse_basic_authorization;
use crate::oauth::grant_type::{refresh_token_unobtainable, GrantType, GrantTypes, PUBLIC_CLIENT_GRANTS};
use crate::oauth::redirect_uri::{self, ApplicationType, LoopbackHosts, RedirectUriError};
use crate::oauth::scope::ScopeSet;
use crate::state::lockout;
use crate::state::registry::{
    AuthMethod, ClientRecord, ClientRegistry, MetadataUpdater, OpenQuota, RegisterOptions, Registration,
    RegistryError,
};

/// RFC 7591 §2 client metadata, the fields this gateway understands; any others are ignored
/// (§2: the server MUST ignore metadata it does not understand). `client_id` and
/// `client_secret` matter only in an RFC 7592 update.
#[derive(Deserialize)]
struct ClientMetadata {
    client_id: Option<String>,
    client_secret: Option<String>,
    client_name: Option<String>,
    grant_types: Option<Vec<String>>,
    redirect_uris: Option<Vec<String>>,
    scope: Option<String>,
    token_endpoint_auth_method: Option<String>,
    /// `web` (the default) or `native` (OpenID Connect Dynamic Client Registration 1.0 §2).
    application_type: Option<String>,
}

/// RFC 7591 §3.2.1 client information response (RFC 7592 §3 for reads and updates).
#[derive(Serialize)]
struct ClientInformation {
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id_issued_at: Option<u64>,
    /// 0: the secret does not expire. Absent for a public client, which has none (RFC 7591
    /// §3.2.1 requires it only when a secret was issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_expires_at: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    client_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    redirect_uris: Vec<String>,
    grant_types: Vec<&'static str>,
    scope: String,
    token_endpoint_auth_method: &'static str,
    application_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_access_token: Option<String>,
    registration_client_uri: String,
}

/// A client at its RFC 7592 URI and who is managing it.
struct ManagedClient<'r, 'a> {
    registry: &'r ClientRegistry<'a>,
    registration: &'a RegistrationConfig,
    record: ClientRecord,
    updater: MetadataUpdater<'r>,
}

/// RFC 7592 §2.1: a missing or wrong token and an unknown client are all this 401.
const REGISTRATION_TOKEN_INVALID: OAuthError = ErrorKind::InvalidRegistrationToken
    .because("send Authorization: Bearer with this client's registration access token");
const NOT_SERVED: OAuthError = ErrorKind::NotFound.because("registration is not enabled");
const BAD_METADATA: OAuthError =
    ErrorKind::InvalidClientMetadata.because("the body is not a valid client metadata document");
/// What a metadata text field may hold.
const MAX_TEXT_BYTES: usize = 255;
/// What an open registration keeps of its source address (an IPv6 /64 takes 24 characters).
const MAX_SOURCE_CHARS: usize = 64;

impl<'a> Gateway<'a> {
    /// `POST <rfc7591_endpoint>`.
    pub(super) fn rfc7591_registration_endpoint(&self, request: &EndpointRequest) -> Response {
        let result = self.register_rfc7591(request);
        self.client_information_reply(result)
    }

    /// `<rfc7591_endpoint>/<client id>`: RFC 7592 read, update and delete.
    pub(super) fn rfc7592_client_endpoint(&self, request: &EndpointRequest, client_id: &str) -> Response {
        let result =
            self.managed_client(request, client_id).and_then(|managed| match request.method {
                "GET" => Ok((200, Some(self.client_information(managed.record, None, None)))),
                "PUT" => self.update_client(request, managed),
                "DELETE" => {
                    managed.registry.delete(client_id, self.now()?).map_err(registry_error)?;
                    Ok((204, None))
                }
                _ => Err(ErrorKind::MethodNotAllowed { allow: "GET, PUT, DELETE" }
                    .because("use GET, PUT or DELETE")),
            });
        self.client_information_reply(result)
    }

    /// RFC 7592 §2.2. The client itself may keep or narrow what its administrator gave it
    /// (omitted `grant_types` and `scope` keep that); an administrator may give it anything
    /// registration allows, and its reply carries a new registration access token (§3).
    fn update_client(
        &self,
        request: &EndpointRequest,
        managed: ManagedClient<'_, 'a>,
    ) -> Result<(u16, Option<ClientInformation>), OAuthError> {
        let ManagedClient { registry, registration, record, updater } = managed;
        let mut metadata = json_metadata(request)?;
        check_update_identity(&metadata, &record)?;
        keep_client_kind(&mut metadata, &record)?;
        if record.open.is_some() {
            check_open_policy(&metadata)?;
        }
        if let MetadataUpdater::Client { .. } = updater {
            let granted = &record.admin_grant;
            metadata.grant_types.get_or_insert_with(|| {
                granted.grant_types.iter().map(|grant| grant.as_str().to_owned()).collect()
            });
            metadata.scope.get_or_insert_with(|| granted.scope.clone());
        }
        let asked = self.asked_registration(metadata, registration, &record.registration.owner)?;
        let (updated, new_token) = registry
            .update_metadata(&record.client_id, asked, self.now()?, updater)
            .map_err(registry_error)?;
        Ok((200, Some(self.client_information(updated, None, new_token))))
    }

    fn register_rfc7591(
        &self,
        request: &EndpointRequest,
    ) -> Result<(u16, Option<ClientInformation>), OAuthError> {
        let registration = self.config.registration.as_ref().ok_or(NOT_SERVED)?;
        // No credentials at all: open registration, if the operator turned it on.
        if let (None, Some(open)) = (request.authorization, &registration.open) {
            return self.register_openly(request, registration, open);
        }
        let (registry, admin) = self.authenticate_admin(request)?;
        if request.method != "POST" {
            return Err(ErrorKind::MethodNotAllowed { allow: "POST" }.because("use POST"));
        }
        let metadata = json_metadata(request)?;
        let asked = self.asked_registration(metadata, registration, &admin.username)?;
        let options = RegisterOptions::RFC7591.at_most_per_admin(registration.quota_for(admin));
        let registered =
            registry.register_with(asked, &admin.username, self.now()?, options).map_err(registry_error)?;
        self.metrics.add(Metric::Registrations, 1);
        // A public client is given no secret (RFC 7591 §3.2.1: only a confidential one gets
        // one); the record keeps the digest of one nobody knows.
        let secret = Some(registered.secret).filter(|_| !registered.record.is_public());
        let info = self.client_information(registered.record, secret, registered.registration_token);
        Ok((201, Some(info)))
    }

    /// RFC 7591 §3 without an initial access token, within `registration.open`: a public
    /// client with the code flow's grants, scopes within `open.scopes` (all of them when it
    /// asks for none), redirect URIs https or loopback http, within the quotas per source
    /// and in all. It manages itself by its registration access token; a super-admin may too.
    fn register_openly(
        &self,
        request: &EndpointRequest,
        registration: &RegistrationConfig,
        open: &OpenRegistration,
    ) -> Result<(u16, Option<ClientInformation>), OAuthError> {
        let registry = self.registry.as_ref().ok_or(NOT_SERVED)?;
        if request.method != "POST" {
            return Err(ErrorKind::MethodNotAllowed { allow: "POST" }.because("use POST"));
        }
        let mut metadata = json_metadata(request)?;
        // RFC 7591 §3.2.1 lets the server replace a value: omitted, the method is `none`.
        metadata.token_endpoint_auth_method.get_or_insert_with(|| AuthMethod::None.as_str().to_owned());
        check_open_policy(&metadata)?;
        let scope = match metadata.scope.take().filter(|asked| !asked.is_empty()) {
            Some(asked) => scope_within(Some(&asked), &open.scopes)?,
            None => open.scopes.to_string(),
        };
        let asked = Registration { scope, ..self.asked_registration(metadata, registration, "")? };
        let source = request.client_address.map(lockout::client_address).unwrap_or_default();
        let quota = OpenQuota {
            source: source.chars().take(MAX_SOURCE_CHARS).collect(),
            max_per_source: open.max_per_source,
            max_registrations: open.max_registrations,
            expire_unused_after_secs: open.expire_unused_after_secs,
        };
        let options = RegisterOptions { open: Some(quota), ..RegisterOptions::RFC7591 };
        let registered = registry.register_with(asked, "", self.now()?, options).map_err(registry_error)?;
        self.metrics.add(Metric::Registrations, 1);
        Ok((201, Some(self.client_information(registered.record, None, registered.registration_token))))
    }

    /// The client `client_id` names and who manages it: the client, by the registration access
    /// token it sends as Bearer, or an administrator who manages it, by HTTP Basic (only an
    /// application registered through RFC 7591: the others are managed at the v0.17 endpoint).
    fn managed_client<'r>(
        &'r self,
        request: &'r EndpointRequest,
        client_id: &str,
    ) -> Result<ManagedClient<'r, 'a>, OAuthError> {
        let (Some(registry), Some(registration)) = (&self.registry, &self.config.registration) else {
            return Err(NOT_SERVED);
        };
        let authorization = request.authorization.unwrap_or_default();
        if parse_basic_authorization(authorization).is_ok() {
            let (registry, admin) = self.authenticate_admin(request)?;
            let record =
                managed_by(admin, registry.find(client_id)?.filter(ClientRecord::has_registration_token))?;
            return Ok(ManagedClient { registry, registration, record, updater: MetadataUpdater::Admin });
        }
        let token = bearer_token(authorization).map_err(|_| REGISTRATION_TOKEN_INVALID)?;
        let record = registry
            .find(client_id)?
            .filter(|record| record.registration_token_matches(token))
            .ok_or(REGISTRATION_TOKEN_INVALID)?;
        let updater = MetadataUpdater::Client { registration_token: token };
        Ok(ManagedClient { registry, registration, record, updater })
    }

    /// Client metadata checked against RFC 7591 §2 and the registration settings.
    fn asked_registration(
        &self,
        metadata: ClientMetadata,
        registration: &RegistrationConfig,
        owner: &str,
    ) -> Result<Registration, OAuthError> {
        let name = metadata.client_name.unwrap_or_default();
        if name.len() > MAX_TEXT_BYTES || name.chars().any(char::is_control) {
            return Err(ErrorKind::InvalidClientMetadata
                .because("client_name must be at most 255 bytes without control characters"));
        }
        let auth_method = match metadata.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::default(),
            Some(name) => AuthMethod::from_name(name).ok_or(ErrorKind::InvalidClientMetadata.because(
                "token_endpoint_auth_method must be client_secret_basic, client_secret_post or none",
            ))?,
        };
        let application_type = match metadata.application_type.as_deref() {
            None => ApplicationType::Web,
            Some(name) => ApplicationType::from_name(name)
                .ok_or(ErrorKind::InvalidClientMetadata.because("application_type must be web or native"))?,
        };
        let hosts = loopback_hosts(auth_method == AuthMethod::None);
        let callback_url =
            redirect_uris(metadata.redirect_uris.unwrap_or_default(), application_type, hosts)?;
        let grant_types = grant_types(metadata.grant_types, registration.grant_types, auth_method)?;
        // The code grant redirects there: it needs one at least.
        if grant_types.contains(GrantType::AuthorizationCode) && callback_url.is_empty() {
            return Err(ErrorKind::InvalidRedirectUri.because("authorization_code needs redirect_uris"));
        }
        Ok(Registration {
            name,
            owner: owner.to_owned(),
            callback_url,
            grant_types,
            saas: false,
            scope: scope_within(metadata.scope.as_deref(), &registration.scopes)?,
            auth_method,
            application_type,
        })
    }

    fn client_information(
        &self,
        record: ClientRecord,
        secret: Option<String>,
        registration_token: Option<String>,
    ) -> ClientInformation {
        let scopes = self.config.registration.as_ref().map(|r| Self::registered_scopes(&record, &r.scopes));
        let endpoint =
            self.config.registration.as_ref().map(|r| r.rfc7591_endpoint.as_str()).unwrap_or_default();
        let issuer = self.config.issuer.as_deref().unwrap_or_default();
        let client_secret_expires_at = (!record.is_public()).then_some(0);
        let registration = record.registration;
        ClientInformation {
            registration_client_uri: format!("{issuer}{endpoint}/{}", record.client_id),
            client_id: record.client_id,
            client_secret: secret,
            client_id_issued_at: Some(record.issued_at_secs).filter(|&secs| secs > 0),
            client_secret_expires_at,
            client_name: registration.name,
            redirect_uris: registration
                .callback_url
                .split(' ')
                .filter(|uri| !uri.is_empty())
                .map(str::to_owned)
                .collect(),
            grant_types: registration.grant_types.iter().map(|grant| grant.as_str()).collect(),
            scope: scopes.map(|scopes| scopes.to_string()).unwrap_or_default(),
            token_endpoint_auth_method: registration.auth_method.as_str(),
            application_type: registration.application_type.as_str(),
            registration_access_token: registration_token,
        }
    }

    fn client_information_reply(
        &self,
        result: Result<(u16, Option<ClientInformation>), OAuthError>,
    ) -> Response {
        match result {
            Ok((status, Some(body))) => {
                no_store_json(status, Vec::new(), serde_json::to_vec(&body).unwrap_or_default())
            }
            Ok((status, None)) => Response { status, headers: Vec::new(), body: Vec::new() },
            Err(error) => self.oauth_error_response(error),
        }
    }
}

/// The JSON body of a registration or an update.
fn json_metadata(request: &EndpointRequest) -> Result<ClientMetadata, OAuthError> {
    if !request.content_type.is_some_and(|value| media_type_is(value, "application/json")) {
        return Err(ErrorKind::InvalidRequest.because("the content type must be application/json"));
    }
    serde_json::from_slice(request.body).map_err(|_| BAD_METADATA)
}

/// RFC 7592 §2.2: an update names the client's own id, and a secret it sends must be its own.
fn check_update_identity(metadata: &ClientMetadata, record: &ClientRecord) -> Result<(), OAuthError> {
    if metadata.client_id.as_deref() != Some(record.client_id.as_str()) {
        return Err(ErrorKind::InvalidRequest.because("client_id must be this client's id"));
    }
    if metadata.client_secret.as_deref().is_some_and(|secret| !record.verifier().verify(secret)) {
        return Err(ErrorKind::InvalidClientMetadata.because("client_secret is not this client's secret"));
    }
    Ok(())
}

/// RFC 7592 §2.2: an update keeps the client public or confidential. A public client never
/// got a secret to authenticate with, and a confidential one's secret must not stop being
/// asked for. An omitted `token_endpoint_auth_method` is the default, as PUT replaces all
/// metadata: `client_secret_basic` for a confidential client, `none` for a public one.
fn keep_client_kind(metadata: &mut ClientMetadata, record: &ClientRecord) -> Result<(), OAuthError> {
    let default = if record.is_public() { AuthMethod::None } else { AuthMethod::default() };
    let asked = metadata.token_endpoint_auth_method.get_or_insert_with(|| default.as_str().to_owned());
    let asked_public = AuthMethod::from_name(asked) == Some(AuthMethod::None);
    if asked_public != record.is_public() {
        return Err(ErrorKind::InvalidClientMetadata
            .because("token_endpoint_auth_method cannot change between none and a secret method"));
    }
    Ok(())
}

/// What open registration takes beyond RFC 7591's own checks: public clients only, and
/// redirect URIs https or loopback http (RFC 8252 §7.3; `localhost` too, see
/// [`redirect_uri::LoopbackHosts::WithLocalhost`]), never a private-use scheme, which
/// any app on a device may claim.
fn check_open_policy(metadata: &ClientMetadata) -> Result<(), OAuthError> {
    if metadata.token_endpoint_auth_method.as_deref() != Some(AuthMethod::None.as_str()) {
        return Err(ErrorKind::InvalidClientMetadata
            .because("open registration registers public clients only: token_endpoint_auth_method none"));
    }
    let uris = metadata.redirect_uris.iter().flatten();
    if uris.into_iter().any(|uri| !(uri.starts_with("https://") || uri.starts_with("http://"))) {
        return Err(ErrorKind::InvalidRedirectUri.because(
            "open registration takes https redirect URIs, or http on 127.0.0.1, [::1] or localhost",
        ));
    }
    Ok(())
}

/// `grant_types` within the allowed ones. Omitted, a confidential client gets
/// `client_credentials` (RFC 7591's own default, `authorization_code`, is not served to them
/// here: §2 lets the server substitute) and a public one `authorization_code`. A public
/// client may ask for the code flow's grants only ([`PUBLIC_CLIENT_GRANTS`]).
fn grant_types(
    asked: Option<Vec<String>>,
    allowed: GrantTypes,
    auth_method: AuthMethod,
) -> Result<GrantTypes, OAuthError> {
    let public = auth_method == AuthMethod::None;
    let default = if public { GrantType::AuthorizationCode } else { GrantType::ClientCredentials };
    let asked = asked.unwrap_or_else(|| vec![default.as_str().to_owned()]);
    let mut grants = GrantTypes::default();
    for name in &asked {
        let grant = GrantType::from_param(name)
            .filter(|&grant| allowed.contains(grant))
            .ok_or(ErrorKind::InvalidClientMetadata.because("a grant type is unknown or not allowed here"))?;
        grants.insert(grant);
    }
    if grants.is_empty() {
        return Err(ErrorKind::InvalidClientMetadata.because("grant_types names no grant type"));
    }
    if refresh_token_unobtainable(grants) {
        return Err(ErrorKind::InvalidClientMetadata.because("refresh_token needs the password grant"));
    }
    if public
        && (!grants.contains(GrantType::AuthorizationCode)
            || grants.iter().any(|grant| !PUBLIC_CLIENT_GRANTS.contains(&grant)))
    {
        return Err(ErrorKind::InvalidClientMetadata
            .because("a public client (token_endpoint_auth_method none) may use authorization_code and refresh_token only"));
    }
    Ok(grants)
}

/// `scope` as space-separated scope tokens within `registration.scopes`, normalized; empty
/// when omitted (all of them).
fn scope_within(asked: Option<&str>, allowed: &ScopeSet) -> Result<String, OAuthError> {
    let Some(asked) = asked.filter(|asked| !asked.is_empty()) else { return Ok(String::new()) };
    let scopes = ScopeSet::parse(asked).ok().filter(|scopes| scopes.is_subset(allowed)).ok_or(
        ErrorKind::InvalidClientMetadata.because("scope is malformed or beyond what registration allows"),
    )?;
    Ok(scopes.to_string())
}

/// `redirect_uris`, stored as given (joined by spaces), each once, each a redirect URI the
/// client's type may use (see [`redirect_uri::check_registered`]), whatever its grants: a
/// client without the code grant is never redirected to, but what is stored and echoed must
/// not be a script or a file (RFC 7591 §3.2.2 `invalid_redirect_uri`).
fn redirect_uris(
    uris: Vec<String>,
    application_type: ApplicationType,
    hosts: LoopbackHosts,
) -> Result<String, OAuthError> {
    for (i, uri) in uris.iter().enumerate() {
        let reason = match redirect_uri::check_registered_with(uri, application_type, hosts) {
            Ok(()) if uris.iter().take(i).any(|earlier| earlier == uri) => "a redirect URI is listed twice",
            Ok(()) => continue,
            Err(RedirectUriError::UnsafeScheme) => {
                "a redirect URI must not use the javascript, data, vbscript or file scheme"
            }
            Err(RedirectUriError::Malformed | RedirectUriError::Duplicate) => {
                "a redirect URI must have no fragment, wildcard, space or non-ASCII character"
            }
            Err(RedirectUriError::Scheme) => match application_type {
                ApplicationType::Web => {
                    "a web client's redirect URI must be https://host..., or http on 127.0.0.1 or [::1]"
                }
                ApplicationType::Native => {
                    "a native client's redirect URI must be https://host..., http on 127.0.0.1 or [::1], \
                     or a private-use scheme like com.example.app:/cb"
                }
            },
        };
        return Err(ErrorKind::InvalidRedirectUri.because(reason));
    }
    let joined = uris.join(" ");
    if joined.len() > MAX_TEXT_BYTES {
        return Err(ErrorKind::InvalidClientMetadata.because("redirect_uris take at most 255 bytes in all"));
    }
    Ok(joined)
}

/// As at v0.17, but a client that is gone is a registration access token that no longer works.
fn registry_error(error: RegistryError) -> OAuthError {
    match error {
        RegistryError::NotFound => REGISTRATION_TOKEN_INVALID,
        other => wso2_registration::registry_error(other),
    }
}
