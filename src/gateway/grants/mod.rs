//! One handler per grant type (RFC 6749 §4, §6), each of one shape: [`GrantHandler`].
//!
//! The token endpoint (`token.rs`) authenticates the client, checks that it may use the grant,
//! reads the scope it asked for, checks the parameters the grant's row requires
//! ([`crate::oauth::grant_type::GrantSpec`]), then hands a [`TokenRequest`] to the grant's
//! handler, found by [`issue`]. What the handlers share, issuing a grant and narrowing a
//! scope, is here.
//!
//! Adding a grant type: its row in `oauth/grant_type.rs`, a file here with its handler, and
//! its arm in [`issue`] (the compiler asks for it).

mod authorization_code;
mod client_credentials;
mod password;
mod refresh_token;

use std::borrow::Cow;

use super::reply::{ErrorKind, OAuthError, STORE_UNAVAILABLE};
use super::Gateway;
use crate::config::Application;
use crate::host::metrics::Metric;
use crate::oauth::form::FormParams;
use crate::oauth::grant_type::{GrantType, TokenParam};
use crate::oauth::messages::TokenResponse;
use crate::oauth::resource_indicator::Audience;
use crate::oauth::scope::ScopeSet;
use crate::state::grants::{
    AccessFacts, AccessSigner, GrantLocation, GrantOwner, IssueError, IssuedTokens, NewGrant, NEVER_EXPIRES,
};

/// The access token could not be signed: a server error (RFC 6749 §5.2 has no code for it).
pub(super) const SIGNING_FAILED: OAuthError =
    ErrorKind::Unavailable.because("the access token could not be signed");

/// A `/token` request its grant's handler may act on: the client is authenticated and may use
/// the grant, and every parameter the grant requires is present.
pub(super) struct TokenRequest<'r> {
    pub app: &'r Application,
    pub form: &'r FormParams,
    /// The scope asked for, without the key-type selectors (`None`: the default).
    pub requested: Option<ScopeSet>,
    /// The resources asked for (RFC 8707 §2), each one the gateway serves; unbound: none.
    pub audience: Audience,
    pub now: u64,
}

impl TokenRequest<'_> {
    /// A parameter's value, or the grant's `invalid_request` when it is missing.
    pub fn param(&self, param: TokenParam) -> Result<&str, OAuthError> {
        self.form.get(param.name()).ok_or(ErrorKind::InvalidRequest.because(param.missing()))
    }
}

/// A grant's handler: the token response for a request of its grant. Every handler has this
/// shape; [`issue`] picks one by the grant type.
pub(super) type GrantHandler = fn(&Gateway<'_>, TokenRequest<'_>) -> Result<TokenResponse, OAuthError>;

/// The token response of `grant`'s handler (a match, not a table of function pointers, so the
/// compiler may inline each handler and must be given one for every grant).
pub(super) fn issue(
    grant: GrantType,
    gateway: &Gateway<'_>,
    request: TokenRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    match grant {
        GrantType::ClientCredentials => shaped(client_credentials::issue)(gateway, request),
        GrantType::Password => shaped(password::issue)(gateway, request),
        GrantType::RefreshToken => shaped(refresh_token::issue)(gateway, request),
        GrantType::AuthorizationCode => shaped(authorization_code::issue)(gateway, request),
    }
}

/// Checks that a handler has the one shape; the call through it stays direct.
#[inline(always)]
const fn shaped(handler: GrantHandler) -> GrantHandler {
    handler
}

/// The grant's owner for `app`'s client, and a user's when the grant is on one's behalf.
fn owner(app: &Application, user: Option<&crate::config::User>) -> GrantOwner {
    GrantOwner {
        client_id: app.consumer_key.clone(),
        client_fingerprint: app.fingerprint,
        user: user.map(|user| (user.username.clone(), user.fingerprint)),
        key_type: app.key_type,
    }
}

/// Whom a grant is for, and when a user proved who they are with this request (a password
/// grant: `auth_time`, RFC 9068 §2.2.1). A code's user signed in at the login page, which the
/// code does not record: no `auth_time` then.
struct Principal {
    owner: GrantOwner,
    auth_time: Option<u64>,
}

impl<'a> Gateway<'a> {
    /// Issues a grant: the token response, and where the grant lives (the code grant keeps it,
    /// to revoke the grant if its code is replayed).
    fn issue_grant(
        &self,
        app: &Application,
        who: Principal,
        scopes: &ScopeSet,
        audience: Audience,
        refresh_expires_at: Option<u64>,
        now: u64,
    ) -> Result<(TokenResponse, GrantLocation), OAuthError> {
        let signer = self.access_token_signer(app, who.auth_time);
        let signer = signer.as_ref().map(|signer| move |facts: &AccessFacts<'_>| signer.sign(facts));
        let access_expires_at = app.access_validity.expires_at(now);
        let scopes_ids = self.config.scope_ids(scopes);
        let grant = NewGrant {
            owner: who.owner,
            scopes: scopes_ids,
            access_expires_at,
            refresh_expires_at,
            audience,
        };
        let signer = signer.as_ref().map(|sign| sign as AccessSigner<'_>);
        let issued = self.store.issue_signed(grant, now, signer).map_err(|error| match error {
            IssueError::Full => {
                self.metrics.add(Metric::StoreFull, 1);
                ErrorKind::Unavailable.because("the token store is full; try again later")
            }
            IssueError::OwnerFull => {
                self.metrics.add(Metric::StoreFull, 1);
                ErrorKind::Unavailable
                    .because("this client holds too many live tokens; revoke some or try again later")
            }
            IssueError::Random | IssueError::Store(_) => STORE_UNAVAILABLE,
            IssueError::Signing => SIGNING_FAILED,
        })?;
        let location = issued.location;
        Ok((token_body(issued, scopes, access_expires_at, now), location))
    }

    /// When a refresh token issued now would expire, for an application allowed to use one;
    /// `None` (no refresh token) otherwise.
    fn refresh_expiry_for(&self, app: &Application, now: u64) -> Option<u64> {
        app.grant_types.contains(GrantType::RefreshToken).then(|| self.config.refresh_expires_at(now))
    }
}

/// The requested scope if it is within `allowed`, else all of `allowed` (borrowed: most
/// clients ask for no scope, and a copy of the set is a string per scope).
fn narrow(requested: Option<ScopeSet>, allowed: &ScopeSet) -> Result<Cow<'_, ScopeSet>, OAuthError> {
    match requested {
        Some(requested) if requested.is_subset(allowed) => Ok(Cow::Owned(requested)),
        Some(_) => Err(ErrorKind::InvalidScope.because("the scope exceeds what this client may be granted")),
        None => Ok(Cow::Borrowed(allowed)),
    }
}

fn token_body(issued: IssuedTokens, scopes: &ScopeSet, access_expires_at: u64, now: u64) -> TokenResponse {
    TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer".to_owned(),
        expires_in: (access_expires_at != NEVER_EXPIRES)
            .then(|| access_expires_at.saturating_sub(now).div_ceil(1000)),
        refresh_token: issued.refresh_token,
        // An empty scope is not a valid scope string (§3.3): leave the field out.
        scope: (!scopes.is_empty()).then(|| scopes.to_string()),
        id_token: None,
    }
}
