//! Dynamic client registration as WSO2 API Manager's `client-registration/v0.17` does it
//! (its documented curl request and response), plus the administrator's re-key and delete:
//!
//! | request | does |
//! |---|---|
//! | `POST <endpoint>` (JSON) | registers an application, answers its id and secret (201) |
//! | `GET <endpoint>/<client id>` | describes a registered application (no secret) |
//! | `POST <endpoint>/<client id>/secret` | replaces its secret: its tokens, and its RFC 7592 registration access token, stop working |
//! | `DELETE <endpoint>/<client id>` | deletes it: its tokens stop working (204) |
//!
//! Every call authenticates with HTTP Basic as a user marked `admin` in the configuration. An
//! application is managed only by the admin who registered it (kept in its record) or by a
//! `super_admin`; to any other admin it does not exist (404). Only a super-admin may register
//! for an `owner` other than itself. An admin who is not a super-admin may have at most
//! `registration.max_per_owner` applications registered (403 past it).

use serde::{Deserialize, Serialize};

use super::authentication::media_type_is;
use super::reply::{no_store_json, ErrorKind, OAuthError, Response, STORE_UNAVAILABLE};
use super::{EndpointRequest, Gateway};
use crate::config::User;
use crate::host::metrics::Metric;
use crate::oauth::credentials::parse_basic_authorization;
use crate::oauth::grant_type::{refresh_token_unobtainable, GrantType, GrantTypes};
use crate::oauth::redirect_uri::{self, ApplicationType};
use crate::state::lockout::Principal;
use crate::state::registry::{
    AuthMethod, ClientRecord, ClientRegistry, OpenQuotaReached, RegisterOptions, Registration, RegistryError,
};

/// The request body of WSO2's v0.17 registration. Unknown fields are ignored, as WSO2 does.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationRequest {
    client_name: Option<String>,
    owner: Option<String>,
    #[serde(default)]
    callback_url: String,
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    saas_app: bool,
}

/// The response body of WSO2's v0.17 registration.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationResponse {
    client_id: String,
    client_name: String,
    #[serde(rename = "callBackURL")]
    callback_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    is_saas_application: bool,
    app_owner: String,
    json_string: String,
}

/// The inner `jsonString` of that response: the OAuth view of the same application.
#[derive(Serialize)]
struct RegistrationJsonString<'a> {
    username: &'a str,
    redirect_uris: &'a str,
    client_name: &'a str,
    grant_types: String,
}

const NOT_FOUND: OAuthError = ErrorKind::NotFound.because("no registered application has this id");
const ADMIN_AUTH_FAILED: OAuthError =
    ErrorKind::InvalidClient.because("authenticate with HTTP Basic as an administrator");

impl<'a> Gateway<'a> {
    pub(super) fn registration_endpoint(&self, request: &EndpointRequest) -> Response {
        self.answer(self.register(request))
    }

    pub(super) fn registered_client_endpoint(&self, request: &EndpointRequest, client_id: &str) -> Response {
        let result = self.authenticate_admin(request).and_then(|(registry, admin)| match request.method {
            "GET" => {
                let record = managed_by(admin, registry.find(client_id)?)?;
                Ok((200, Some(registration_response(record, None))))
            }
            "DELETE" => {
                managed_by(admin, registry.find(client_id)?)?;
                registry.delete(client_id, self.now()?).map_err(registry_error)?;
                Ok((204, None))
            }
            _ => Err(ErrorKind::MethodNotAllowed { allow: "GET, DELETE" }.because("use GET or DELETE")),
        });
        self.answer(result)
    }

    pub(super) fn regenerate_secret_endpoint(&self, request: &EndpointRequest, client_id: &str) -> Response {
        let result = self.authenticate_admin(request).and_then(|(registry, admin)| {
            if request.method != "POST" {
                return Err(ErrorKind::MethodNotAllowed { allow: "POST" }.because("use POST"));
            }
            let record = managed_by(admin, registry.find(client_id)?)?;
            // It authenticates with no secret (RFC 6749 §2.1): one would never be accepted.
            if record.is_public() {
                return Err(ErrorKind::InvalidRequest.because("a public client has no secret to regenerate"));
            }
            let registered = registry.regenerate_secret(client_id, self.now()?).map_err(registry_error)?;
            Ok((200, Some(registration_response(registered.record, Some(registered.secret)))))
        });
        self.answer(result)
    }

    fn answer(&self, result: Result<(u16, Option<RegistrationResponse>), OAuthError>) -> Response {
        match result {
            Ok((status, Some(body))) => {
                no_store_json(status, Vec::new(), serde_json::to_vec(&body).unwrap_or_default())
            }
            Ok((status, None)) => Response { status, headers: Vec::new(), body: Vec::new() },
            Err(error) => self.oauth_error_response(error),
        }
    }

    fn register(&self, request: &EndpointRequest) -> Result<(u16, Option<RegistrationResponse>), OAuthError> {
        let (registry, admin) = self.authenticate_admin(request)?;
        if request.method != "POST" {
            return Err(ErrorKind::MethodNotAllowed { allow: "POST" }.because("use POST"));
        }
        if !request.content_type.is_some_and(|value| media_type_is(value, "application/json")) {
            return Err(ErrorKind::InvalidRequest.because("the content type must be application/json"));
        }
        let payload: RegistrationRequest = serde_json::from_slice(request.body).map_err(|_| {
            ErrorKind::InvalidClientMetadata.because("the body is not a valid registration request")
        })?;
        let name = payload
            .client_name
            .filter(|name| !name.is_empty())
            .ok_or(ErrorKind::InvalidClientMetadata.because("clientName is missing"))?;
        let owner = payload.owner.filter(|owner| !owner.is_empty()).unwrap_or_else(|| admin.username.clone());
        if owner != admin.username && !admin.is_super_admin {
            return Err(
                ErrorKind::InvalidClientMetadata.because("owner must be the administrator who registers")
            );
        }
        for text in [&name, &owner, &payload.callback_url] {
            if text.len() > 255 || text.chars().any(char::is_control) {
                return Err(ErrorKind::InvalidClientMetadata.because(
                    "clientName, owner and callbackUrl must be at most 255 bytes without control characters",
                ));
            }
        }
        let allowed = self.config.registration.as_ref().map(|r| r.grant_types);
        let mut grant_types = GrantTypes::default();
        for name in payload.grant_type.split(' ').filter(|name| !name.is_empty()) {
            let grant = GrantType::from_param(name)
                .filter(|&grant| allowed.is_some_and(|allowed| allowed.contains(grant)))
                .ok_or(
                    ErrorKind::InvalidClientMetadata.because("a grant type is unknown or not allowed here"),
                )?;
            grant_types.insert(grant);
        }
        if grant_types.is_empty() {
            return Err(ErrorKind::InvalidClientMetadata.because("grantType names no grant type"));
        }
        if refresh_token_unobtainable(grant_types) {
            return Err(ErrorKind::InvalidClientMetadata.because("refresh_token needs the password grant"));
        }
        // v0.17 has no application type: a web client's. The code grant redirects to
        // callbackUrl: the rules of configured redirect URIs apply. Without it, callbackUrl is
        // stored and echoed only (the docs' `www.google.lk`), yet never a script or a file.
        let application_type = ApplicationType::Web;
        if grant_types.contains(GrantType::AuthorizationCode)
            && redirect_uri::check_all_registered(&payload.callback_url, application_type).is_err()
        {
            return Err(ErrorKind::InvalidClientMetadata.because(
                "with authorization_code, callbackUrl must be https, or http on 127.0.0.1 or [::1], \
                 without a fragment or wildcard, each URI once",
            ));
        }
        if payload.callback_url.split(' ').any(redirect_uri::has_unsafe_scheme) {
            return Err(ErrorKind::InvalidClientMetadata
                .because("callbackUrl must not use the javascript, data, vbscript or file scheme"));
        }
        let registration = Registration {
            name,
            owner,
            callback_url: payload.callback_url,
            grant_types,
            saas: payload.saas_app,
            scope: String::new(),
            auth_method: AuthMethod::default(),
            application_type,
        };
        let quota = self.config.registration.as_ref().and_then(|config| config.quota_for(admin));
        let options = RegisterOptions::WSO2.at_most_per_admin(quota);
        let registered = registry
            .register_with(registration, &admin.username, self.now()?, options)
            .map_err(registry_error)?;
        self.metrics.add(Metric::Registrations, 1);
        Ok((201, Some(registration_response(registered.record, Some(registered.secret)))))
    }

    /// An administrator's HTTP Basic credentials (a user, not an application); anything else,
    /// a user who is not an administrator included, is the same 401.
    pub(super) fn authenticate_admin(
        &self,
        request: &EndpointRequest,
    ) -> Result<(&ClientRegistry<'a>, &'a User), OAuthError> {
        let registry = self.registry.as_ref().ok_or(NOT_FOUND)?;
        let credentials = request
            .authorization
            .and_then(|header| parse_basic_authorization(header).ok())
            .ok_or(ADMIN_AUTH_FAILED)?;
        // A user who is not an administrator is refused like a wrong password, after the same
        // decoy check: the endpoint says nothing about anyone's password. Its failures count
        // under the admin login, apart from the user's password grant.
        let name = credentials.consumer_key.as_str();
        let admin = self.configured_user(name).filter(|user| user.is_admin);
        let user = self.verify_secret(
            Principal::Admin(name),
            admin,
            |user| &user.verifier,
            &self.config.decoy_user_verifier,
            &credentials.consumer_secret,
            ADMIN_AUTH_FAILED,
        )?;
        Ok((registry, user))
    }
}

/// The application, if `admin` may manage it: the admin who registered it, or a super-admin.
/// Anyone else is told it does not exist, as for an unknown id.
pub(super) fn managed_by(admin: &User, record: Option<ClientRecord>) -> Result<ClientRecord, OAuthError> {
    record.filter(|record| admin.is_super_admin || record.registered_by == admin.username).ok_or(NOT_FOUND)
}

pub(super) fn registry_error(error: RegistryError) -> OAuthError {
    match error {
        RegistryError::Duplicate => {
            ErrorKind::DuplicateClient.because("this owner already has an application with this name")
        }
        RegistryError::NotFound => NOT_FOUND,
        RegistryError::OpenQuotaReached(OpenQuotaReached::Source) => ErrorKind::RegistrationQuota
            .because("this address has registered registration.open.max_per_source clients"),
        RegistryError::OpenQuotaReached(OpenQuotaReached::Total) => ErrorKind::RegistrationQuota
            .because("open registration holds registration.open.max_registrations clients"),
        RegistryError::Full => ErrorKind::Unavailable.because("no room for more registered applications"),
        RegistryError::QuotaReached => ErrorKind::AccessDenied.because(
            "this administrator has registered registration.max_per_owner applications; delete one first",
        ),
        RegistryError::BeyondAdminGrant => ErrorKind::InvalidClientMetadata.because(
            "with the registration access token, grant_types and scope may keep or narrow what the \
             administrator registered, not exceed it; an administrator (HTTP Basic) may widen them",
        ),
        RegistryError::Random | RegistryError::Store(_) => STORE_UNAVAILABLE,
    }
}

fn registration_response(record: ClientRecord, secret: Option<String>) -> RegistrationResponse {
    let registration = record.registration;
    let grant_types =
        registration.grant_types.iter().map(|grant| grant.as_str()).collect::<Vec<_>>().join(" ");
    let json_string = serde_json::to_string(&RegistrationJsonString {
        username: &registration.owner,
        redirect_uris: &registration.callback_url,
        client_name: &registration.name,
        grant_types,
    })
    .unwrap_or_default();
    RegistrationResponse {
        client_id: record.client_id,
        client_name: registration.name,
        callback_url: registration.callback_url,
        client_secret: secret,
        is_saas_application: registration.saas,
        app_owner: registration.owner,
        json_string,
    }
}
