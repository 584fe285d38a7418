//! The client credentials grant (RFC 6749 §4.4): the application on its own behalf, with the
//! scope it asked for within its own, or all of its own.

use super::{narrow, owner, Principal, TokenRequest};
use crate::gateway::reply::OAuthError;
use crate::gateway::Gateway;
use crate::oauth::messages::TokenResponse;

pub(super) fn issue(gateway: &Gateway<'_>, request: TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let TokenRequest { app, requested, audience, now, .. } = request;
    let scopes = narrow(requested, &app.scopes)?;
    Ok(gateway
        .issue_grant(
            app,
            Principal { owner: owner(app, None), auth_time: None },
            &scopes,
            audience,
            None,
            now,
        )?
        .0)
}
