//! Authorization server metadata (RFC 8414), from the configuration.

use serde::Serialize;

use super::reply::{json_response, Response};
use super::{EndpointRequest, Gateway};
use crate::config::RegistrationConfig;
use crate::oauth::endpoints::EndpointKind;
use crate::oauth::grant_type::{GrantType, GrantTypes};
use crate::oauth::messages::ErrorResponse;
use crate::oauth::openid::CLAIMS_SUPPORTED;
use crate::oauth::scope::ScopeSet;

#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    // The endpoints that are on, each at the field its row in the endpoint table names (a test
    // checks the names agree; a map here would cost the filter serde's flattening code).
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_endpoint: Option<String>,
    /// RFC 8414 §2, when signing keys are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    grant_types_supported: Vec<&'static str>,
    scopes_supported: Vec<&'a str>,
    token_endpoint_auth_methods_supported: &'static [&'static str],
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    /// RFC 8414 §2 requires it; with no authorization endpoint there are none.
    response_types_supported: &'static [&'static str],
    /// RFC 7636 §6.2, when the code flow is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge_methods_supported: Option<[&'static str; 1]>,
    /// RFC 9207 §3, when the code flow is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
    /// OpenID Connect Discovery §3, when OpenID Connect is on (`issuer` and `signing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    userinfo_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_types_supported: Option<[&'static str; 1]>,
    /// The algorithm of the key that signs (the first of `signing.keys`): RS256 is not among
    /// them, although Discovery §3 says it MUST be (docs/openid-connect.md says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token_signing_alg_values_supported: Option<[&'static str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims_supported: Option<&'static [&'static str]>,
}

/// With public clients (RFC 6749 §2.1), `none` too (at `/token` and `/revoke`).
const TOKEN_AUTH_METHODS_WITH_PUBLIC: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// How applications may authenticate at `/token`, `/revoke` and `/introspect` (RFC 6749 §2.3.1).
const CLIENT_AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

impl<'a> Gateway<'a> {
    /// `GET /.well-known/oauth-authorization-server`, served when `issuer` is configured.
    pub(super) fn metadata_endpoint(&self, request: &EndpointRequest) -> Response {
        self.metadata_document(request, EndpointKind::Metadata, self.config.issuer.as_deref())
    }

    /// `GET /.well-known/openid-configuration` (Discovery §4), served when OpenID Connect is
    /// on: the same document as RFC 8414's, which carries Discovery's fields then (RFC 8414 §5
    /// names OpenID Connect's metadata as valid in it).
    pub(super) fn openid_configuration_endpoint(&self, request: &EndpointRequest) -> Response {
        let issuer = self.openid_provider().map(|(issuer, _)| issuer);
        self.metadata_document(request, EndpointKind::OpenIdConfiguration, issuer)
    }

    fn metadata_document(
        &self,
        request: &EndpointRequest,
        kind: EndpointKind,
        issuer: Option<&str>,
    ) -> Response {
        let Some(issuer) = issuer else {
            return json_response(404, Vec::new(), ErrorResponse::bare("not_found").to_json());
        };
        if request.method != "GET" && request.method != "HEAD" {
            let body = ErrorResponse::bare("method_not_allowed").to_json();
            let allow = kind.spec().methods;
            return json_response(405, vec![("allow", allow.to_owned())], body);
        }
        let config = self.config;
        let mut grants: GrantTypes =
            config.applications.values().flat_map(|app| app.grant_types.iter()).collect();
        let registration = config.registration.as_ref();
        if let Some(registration) = registration {
            grants.extend(registration.grant_types.iter());
        }
        // Sorted and without repeats, by insertion: neither a sort nor a set of its own.
        let mut scopes: Vec<&str> = Vec::new();
        let listed =
            config.applications.values().map(|app| &app.scopes).chain(registration.map(|r| &r.scopes));
        for name in listed.flat_map(ScopeSet::iter) {
            if let Err(at) = scopes.binary_search(&name) {
                scopes.insert(at, name);
            }
        }
        let flow = config.authorization.as_ref();
        // A configured public client, or registration that may register one.
        let has_public = config.applications.values().any(|app| app.public)
            || registration.is_some_and(RegistrationConfig::admits_public_clients);
        let openid = self.openid_provider().filter(|_| flow.is_some());
        let signing_alg =
            openid.and_then(|(_, signing)| signing.active_key()).map(|key| [key.algorithm().name()]);
        let metadata = Metadata {
            issuer,
            authorization_endpoint: self.endpoint_url(issuer, EndpointKind::Authorization),
            token_endpoint: self.endpoint_url(issuer, EndpointKind::Token),
            revocation_endpoint: self.endpoint_url(issuer, EndpointKind::Revocation),
            introspection_endpoint: self.endpoint_url(issuer, EndpointKind::Introspection),
            // RFC 7591's endpoint; WSO2's v0.17 one is not what RFC 8414 clients expect there.
            registration_endpoint: self.endpoint_url(issuer, EndpointKind::Rfc7591Registration),
            jwks_uri: self.endpoint_url(issuer, EndpointKind::Jwks),
            grant_types_supported: grants.iter().map(GrantType::as_str).collect(),
            scopes_supported: scopes,
            token_endpoint_auth_methods_supported: if has_public {
                &TOKEN_AUTH_METHODS_WITH_PUBLIC
            } else {
                &CLIENT_AUTH_METHODS
            },
            revocation_endpoint_auth_methods_supported: if has_public {
                &TOKEN_AUTH_METHODS_WITH_PUBLIC
            } else {
                &CLIENT_AUTH_METHODS
            },
            introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
            response_types_supported: if flow.is_some() { &["code"] } else { &[] },
            code_challenge_methods_supported: flow.map(|_| [crate::oauth::pkce::S256]),
            authorization_response_iss_parameter_supported: flow.map(|_| true),
            userinfo_endpoint: openid.and_then(|_| self.endpoint_url(issuer, EndpointKind::Userinfo)),
            subject_types_supported: openid.map(|_| ["public"]),
            id_token_signing_alg_values_supported: signing_alg,
            claims_supported: openid.map(|_| &CLAIMS_SUPPORTED[..]),
        };
        json_response(200, Vec::new(), serde_json::to_vec(&metadata).unwrap_or_default())
    }

    /// Where an endpoint that is on is, for the metadata.
    fn endpoint_url(&self, issuer: &str, kind: EndpointKind) -> Option<String> {
        self.endpoint_path(kind).map(|path| format!("{issuer}{path}"))
    }
}
