//! The token endpoint (RFC 6749 §3.2): client authentication, the checks every grant shares,
//! the dispatch to the grant's handler (`grants/`), and the response.

use super::grants::{self, TokenRequest};
use super::reply::{no_store_json, ErrorKind, OAuthError, Response};
use super::{EndpointRequest, Gateway};
use crate::config::Application;
use crate::host::metrics::Metric;
use crate::oauth::form::FormParams;
use crate::oauth::grant_type::GrantType;
use crate::oauth::messages::TokenResponse;
use crate::oauth::resource_indicator::Audience;
use crate::oauth::scope::ScopeSet;
use crate::state::grants::KeyType;

impl<'a> Gateway<'a> {
    pub(super) fn token_endpoint(&self, request: &EndpointRequest) -> Response {
        match self.issue_tokens(request) {
            Ok((grant, body)) => {
                self.metrics.add(Metric::TokensIssued(grant), 1);
                no_store_json(200, Vec::new(), serde_json::to_vec(&body).unwrap_or_default())
            }
            Err(error) => {
                self.metrics.add(Metric::TokenErrors, 1);
                self.oauth_error_response(error)
            }
        }
    }

    fn issue_tokens(&self, request: &EndpointRequest) -> Result<(GrantType, TokenResponse), OAuthError> {
        let form = self.read_form(request)?;
        let grant_type =
            form.get("grant_type").ok_or(ErrorKind::InvalidRequest.because("grant_type is missing"))?;
        let app = self.authenticate_client_or_public(request, &form)?;
        // With no application using the code flow, the grant is not served at all.
        let grant = GrantType::from_param(grant_type)
            .filter(|grant| *grant != GrantType::AuthorizationCode || self.config.authorization.is_some())
            .ok_or(ErrorKind::UnsupportedGrantType.because("the grant type is not supported"))?;
        if !app.grant_types.contains(grant) {
            return Err(ErrorKind::UnauthorizedClient.because("this application may not use this grant type"));
        }
        let requested = match form.get("scope") {
            Some(text) => Some(
                ScopeSet::parse(text)
                    .map_err(|_| ErrorKind::InvalidScope.because("the scope is malformed"))?,
            ),
            None => None,
        };
        let requested = without_key_type(requested, &app)?;
        let audience = self.requested_audience(&form)?;
        let now = self.now()?;
        let request = TokenRequest { app: &app, form: &form, requested, audience, now };
        // The parameters the grant's row requires, in its order: the first one missing is the
        // `invalid_request` (RFC 6749 §5.2).
        for &param in grant.spec().requires {
            request.param(param)?;
        }
        Ok((grant, grants::issue(grant, self, request)?))
    }
}

impl Gateway<'_> {
    /// The resources a request names (RFC 8707 §2): each an absolute URI without a fragment
    /// and the identifier of an API this gateway serves, else `invalid_target`.
    pub(super) fn requested_audience(&self, form: &FormParams) -> Result<Audience, OAuthError> {
        let audience = Audience::parse(form.all("resource"))
            .map_err(|error| ErrorKind::InvalidTarget.because(error.description()))?;
        match audience.uris().iter().all(|uri| self.serves_resource(uri)) {
            true => Ok(audience),
            false => Err(ErrorKind::InvalidTarget.because("the resource is not one this server protects")),
        }
    }

    /// True when `uri` is the resource identifier of a configured API.
    pub(super) fn serves_resource(&self, uri: &str) -> bool {
        self.config.apis.iter().any(|api| api.resource.as_deref() == Some(uri))
    }
}

/// Older WSO2 versions chose the key type with `PRODUCTION` or `SANDBOX` in the scope (WSO2 API
/// Manager's Token API page: `scope=PRODUCTION`). Here the key pair the client authenticated with decides it, so
/// either name only asserts it: it is taken out of the scope (a scope left empty asks for the
/// default, all the application may have) and never granted, and a name that disagrees with
/// the pair is `invalid_scope`. Either name stays a plain scope for an application
/// configured with a scope of that name.
fn without_key_type(requested: Option<ScopeSet>, app: &Application) -> Result<Option<ScopeSet>, OAuthError> {
    let Some(requested) = requested else { return Ok(None) };
    let selectors = [KeyType::Production, KeyType::Sandbox]
        .map(|key_type| (key_type, key_type.name()))
        .into_iter()
        .filter(|(_, name)| requested.contains(name) && !app.scopes.contains(name));
    let mut asked = None;
    for (key_type, _) in selectors {
        if asked.is_some() {
            return Err(ErrorKind::InvalidScope.because("ask for PRODUCTION or SANDBOX keys, not both"));
        }
        asked = Some(key_type);
    }
    let Some(asked) = asked else { return Ok(Some(requested)) };
    if asked != app.key_type {
        return Err(ErrorKind::InvalidScope.because(match asked {
            KeyType::Sandbox => "scope SANDBOX asks for sandbox keys: authenticate with the application's sandbox consumer key",
            KeyType::Production => "scope PRODUCTION asks for production keys: authenticate with the application's production consumer key",
        }));
    }
    let rest = ScopeSet::from_names(requested.iter().filter(|name| *name != asked.name()));
    Ok((!rest.is_empty()).then_some(rest))
}
