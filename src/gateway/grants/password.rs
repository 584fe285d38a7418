//! The resource owner password credentials grant (RFC 6749 §4.3): a configured user's
//! username and password, checked under the lockout policy; the scope is within what both the
//! application and the user hold.

use super::{narrow, owner, Principal, TokenRequest};
use crate::gateway::reply::{ErrorKind, OAuthError};
use crate::gateway::Gateway;
use crate::oauth::grant_type::TokenParam;
use crate::oauth::messages::TokenResponse;

pub(super) fn issue(gateway: &Gateway<'_>, request: TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let username = request.param(TokenParam::Username)?;
    let password = request.param(TokenParam::Password)?;
    let wrong = ErrorKind::InvalidGrant.because("the username or password is wrong");
    let user = gateway.authenticate_user(username, password, wrong)?;
    let TokenRequest { app, requested, audience, now, .. } = request;
    let held = app.scopes.intersection(&user.scopes);
    let scopes = narrow(requested, &held)?;
    // A refresh token only for applications allowed to use it.
    let refresh_expires_at = gateway.refresh_expiry_for(app, now);
    Ok(gateway
        .issue_grant(
            app,
            Principal { owner: owner(app, Some(user)), auth_time: Some(now) },
            &scopes,
            audience,
            refresh_expires_at,
            now,
        )?
        .0)
}
