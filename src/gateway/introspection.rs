//! The introspection endpoint (RFC 7662).

use serde::Serialize;

use super::reply::{no_store_json, ErrorKind, OAuthError, Response};
use super::{EndpointRequest, Gateway};
use crate::host::metrics::Metric;
use crate::oauth::resource_indicator::Audience;
use crate::state::grants::{TokenKind, NEVER_EXPIRES};

/// An RFC 7662 §2.2 response. An inactive token is `{"active":false}` and nothing else.
#[derive(Serialize, Default)]
struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    /// WSO2's key type (`PRODUCTION` or `SANDBOX`): which key pair the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_type: Option<&'static str>,
    /// RFC 7662 §2.2: the resources the token is for (RFC 8707), a string for one and an
    /// array for several; absent for a token issued without `resource`.
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<Aud>,
}

/// `aud` as RFC 7519 §4.1.3 spells it, which RFC 7662 §2.2 refers to.
#[derive(Serialize)]
#[serde(untagged)]
enum Aud {
    One(String),
    Several(Vec<String>),
}

impl Aud {
    fn of(audience: Audience) -> Option<Aud> {
        match audience.uris() {
            [] => None,
            [one] => Some(Aud::One(one.clone())),
            several => Some(Aud::Several(several.to_vec())),
        }
    }
}

impl<'a> Gateway<'a> {
    /// `POST /introspect`: what a resource server may know about a token. Callers must
    /// authenticate; an application sees its own tokens, and one marked `introspect` (a
    /// resource server) sees every token.
    pub(super) fn introspection_endpoint(&self, request: &EndpointRequest) -> Response {
        match self.introspect(request) {
            Ok(body) => no_store_json(200, Vec::new(), serde_json::to_vec(&body).unwrap_or_default()),
            Err(error) => self.oauth_error_response(error),
        }
    }

    fn introspect(&self, request: &EndpointRequest) -> Result<Introspection, OAuthError> {
        let form = self.read_form(request)?;
        let caller = self.authenticate_client(request, &form)?;
        let token = form.get("token").ok_or(ErrorKind::InvalidRequest.because("token is missing"))?;
        self.metrics.add(Metric::Introspections, 1);
        let Some(described) = self.store.describe(token, self.now()?)? else {
            return Ok(Introspection::default());
        };
        if !caller.can_introspect && described.owner.client_id != caller.consumer_key {
            return Ok(Introspection::default());
        }
        let Some(standing) = self.standing(&described.owner, described.issued_at)? else {
            return Ok(Introspection::default());
        };
        let scope = self.held_scopes(&described.scopes, &standing).join(" ");
        Ok(Introspection {
            active: true,
            scope: Some(scope),
            client_id: Some(described.owner.client_id),
            username: described.owner.user.map(|(username, _)| username),
            token_type: Some(match described.kind {
                TokenKind::Access => "Bearer",
                TokenKind::Refresh => "refresh_token",
            }),
            exp: (described.expires_at != NEVER_EXPIRES).then_some(described.expires_at / 1000),
            iat: Some(described.issued_at / 1000),
            key_type: Some(described.owner.key_type.name()),
            aud: Aud::of(described.audience),
        })
    }
}
