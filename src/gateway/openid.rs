//! OpenID Connect on the code flow (docs/openid-connect.md): the ID token the code grant and
//! the refresh of an `openid` grant add to the token response (Core §3.1.3.3, §12.2), the
//! UserInfo endpoint (Core §5.3) and Discovery's provider metadata (Discovery §4).
//!
//! On when `issuer` and `signing` are both configured: the issuer is every ID token's `iss`
//! and the key that signs is `signing`'s first. Without either, `openid` is a scope like any
//! other and no ID token is issued.

use super::bearer::{bearer_token, BearerError, ChallengeHints};
use super::reply::{json_response, no_store_json, ErrorKind, OAuthError, Response};
use super::{EndpointRequest, Gateway};
use crate::config::{Application, SigningConfig};
use crate::jose;
use crate::oauth::endpoints::EndpointKind;
use crate::oauth::messages::{ErrorResponse, TokenResponse};
use crate::oauth::openid::{at_hash, IdTokenClaims, UserInfo, OPENID_SCOPE};
use crate::oauth::scope::ScopeSet;
use crate::state::grants::TokenKind;

/// Who the ID token is about and what the sign-in said: the code's record, or nothing but the
/// user on a refresh.
pub(super) struct SignIn<'s> {
    pub username: &'s str,
    pub auth_time: Option<u64>,
    pub nonce: Option<&'s str>,
}

const NOT_SIGNED: OAuthError = ErrorKind::Unavailable.because("the ID token could not be signed; try again");

impl<'a> Gateway<'a> {
    /// The issuer and signing keys, when OpenID Connect is on.
    pub(super) fn openid_provider(&self) -> Option<(&'a str, &'a SigningConfig)> {
        Some((self.config.issuer.as_deref()?, self.config.signing.as_ref()?))
    }

    /// Adds an ID token to `body` when the granted `scopes` hold `openid` and OpenID Connect
    /// is on (Core §3.1.3.3); `at_hash` binds it to `body`'s access token (Core §3.1.3.6).
    pub(super) fn add_id_token(
        &self,
        body: &mut TokenResponse,
        app: &Application,
        scopes: &ScopeSet,
        sign_in: &SignIn,
        now: u64,
    ) -> Result<(), OAuthError> {
        if !scopes.contains(OPENID_SCOPE) {
            return Ok(());
        }
        let Some((issuer, signing)) = self.openid_provider() else { return Ok(()) };
        let key = signing.active_key().ok_or(NOT_SIGNED)?;
        let iat = now / 1000;
        let claims = IdTokenClaims {
            iss: issuer,
            sub: sign_in.username,
            aud: &app.consumer_key,
            azp: &app.consumer_key,
            exp: iat.saturating_add(signing.id_token_lifetime_secs),
            iat,
            auth_time: sign_in.auth_time,
            nonce: sign_in.nonce,
            at_hash: at_hash(key.algorithm(), &body.access_token),
        };
        body.id_token = Some(jose::sign(key, Some("JWT"), &claims).map_err(|_| NOT_SIGNED)?);
        Ok(())
    }

    /// `GET` or `POST` UserInfo (Core §5.3): the user's claims the access token's scopes
    /// release, for a token that holds `openid`. Errors are RFC 6750 §3.1's.
    pub(super) fn userinfo_endpoint(&self, request: &EndpointRequest) -> Response {
        if self.openid_provider().is_none() {
            return json_response(404, Vec::new(), ErrorResponse::bare("not_found").to_json());
        }
        if request.method != "GET" && request.method != "POST" {
            let body = ErrorResponse::bare("method_not_allowed").to_json();
            let allow = EndpointKind::Userinfo.spec().methods;
            return json_response(405, vec![("allow", allow.to_owned())], body);
        }
        let hints = ChallengeHints::default();
        let token = match self.userinfo_access_token(request) {
            Ok(Some(token)) => token,
            Ok(None) => return self.bearer_challenge(&hints),
            Err(description) => return self.bearer_error(400, "invalid_request", description, None, &hints),
        };
        let invalid = |gateway: &Self| {
            gateway.bearer_error(401, "invalid_token", "the access token is invalid or expired", None, &hints)
        };
        let Ok(now) = self.now() else { return Response::unavailable() };
        let described = match self.store.describe(&token, now) {
            Ok(Some(described)) if described.kind == TokenKind::Access => described,
            Ok(_) => return invalid(self),
            Err(_) => return Response::unavailable(),
        };
        let standing = match self.standing(&described.owner, described.issued_at) {
            Ok(Some(standing)) => standing,
            Ok(None) => return invalid(self),
            Err(_) => return Response::unavailable(),
        };
        let scopes = ScopeSet::from_names(self.held_scopes(&described.scopes, &standing));
        if !scopes.contains(OPENID_SCOPE) {
            let description = "the access token was not granted the openid scope";
            return self.bearer_error(
                403,
                "insufficient_scope",
                description,
                Some(OPENID_SCOPE.to_owned()),
                &hints,
            );
        }
        let Some(user) = described.owner.user.as_ref().and_then(|(name, _)| self.configured_user(name))
        else {
            return invalid(self);
        };
        let info = UserInfo::released(&user.username, &user.claims, &scopes);
        no_store_json(200, Vec::new(), serde_json::to_vec(&info).unwrap_or_default())
    }

    /// The access token from `Authorization: Bearer` (RFC 6750 §2.1) or, on a POST without
    /// that header, the form's `access_token` (§2.2). `Ok(None)`: no credentials at all.
    fn userinfo_access_token(&self, request: &EndpointRequest) -> Result<Option<String>, &'static str> {
        if let Some(header) = request.authorization {
            return match bearer_token(header) {
                Ok(token) => Ok(Some(token.to_owned())),
                Err(BearerError::OtherScheme) => Ok(None),
                Err(BearerError::Malformed) => Err("the Bearer token is malformed"),
            };
        }
        if request.method != "POST" {
            return Ok(None);
        }
        let form = self.read_form(request).map_err(|_| "the form is malformed")?;
        Ok(form.get("access_token").map(str::to_owned))
    }
}
