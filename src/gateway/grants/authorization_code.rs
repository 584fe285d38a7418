//! The authorization code grant at `/token` (RFC 6749 §4.1.3, RFC 7636 §4.5-4.6).
//!
//! The code must be this client's, presented with the very redirect URI it was issued for
//! and the PKCE verifier of its challenge. Its first such presentation spends it; a second one
//! is refused and revokes the grant the first produced (§4.1.2). A presentation that fails
//! those checks changes nothing: a public client's code stolen without its verifier can
//! neither be burnt before the client redeems it nor used to revoke what it produced.

use super::{owner, Principal, TokenRequest};
use crate::config::Application;
use crate::gateway::openid::SignIn;
use crate::gateway::reply::{ErrorKind, OAuthError};
use crate::gateway::Gateway;
use crate::host::metrics::Metric;
use crate::oauth::grant_type::TokenParam;
use crate::oauth::messages::TokenResponse;
use crate::oauth::pkce::CodeChallenge;
use crate::oauth::scope::ScopeSet;
use crate::state::authorization::{Redeemed, Ticket};

const INVALID_CODE: OAuthError =
    ErrorKind::InvalidGrant.because("the code is invalid, expired, used, or was issued for another request");

const NOT_REQUESTED_AT_AUTHORIZE: OAuthError =
    ErrorKind::InvalidTarget.because("the resource was not named in the authorization request");

/// The scope is the one the code carries (§4.1.3: the request takes none), within what the
/// application and the user hold now.
pub(super) fn issue(gateway: &Gateway<'_>, request: TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let code = request.param(TokenParam::Code)?;
    let redirect_uri = request.param(TokenParam::RedirectUri)?;
    let verifier = request.param(TokenParam::CodeVerifier)?;
    let (app, now) = (request.app, request.now);
    let table = gateway.authorizations.as_ref().ok_or(INVALID_CODE)?;
    let is_issuers = |ticket: &Ticket| presented_as_issued(ticket, app, redirect_uri, verifier);
    let ticket = match table.redeem(code, now, is_issuers)? {
        Redeemed::Fresh(ticket) => ticket,
        Redeemed::Replayed(grant) => {
            gateway.metrics.add(Metric::RefreshReuseDetected, 1);
            if let Some(grant) = grant {
                gateway.store.revoke_grant(grant, now)?;
            }
            return Err(INVALID_CODE);
        }
        Redeemed::Unknown => return Err(INVALID_CODE),
    };
    let user = gateway.configured_user(&ticket.username).ok_or(INVALID_CODE)?;
    let scopes = ScopeSet::from_names(ticket.scope.split(' ').filter(|name| !name.is_empty()))
        .intersection(&app.scopes.intersection(&user.scopes));
    // RFC 8707 §2.2: the token request may repeat or narrow the resources the authorization
    // request named, never name others. The code is spent either way, like any failed
    // presentation after its checks.
    let audience = ticket.audience.narrowed_to(&request.audience).ok_or(NOT_REQUESTED_AT_AUTHORIZE)?;
    let refresh_expires_at = gateway.refresh_expiry_for(app, now);
    let (mut body, grant) = gateway.issue_grant(
        app,
        // When the user signed in, known for the codes of `openid` requests (the code record keeps it).
        Principal { owner: owner(app, Some(user)), auth_time: ticket.auth_time },
        &scopes,
        audience,
        refresh_expires_at,
        now,
    )?;
    if table.remember_grant(code, grant, now)? {
        // The code came back while this grant was being issued: it goes too.
        gateway.store.revoke_grant(grant, now)?;
        return Err(INVALID_CODE);
    }
    let sign_in =
        SignIn { username: &ticket.username, auth_time: ticket.auth_time, nonce: ticket.nonce.as_deref() };
    if let Err(error) = gateway.add_id_token(&mut body, app, &scopes, &sign_in, now) {
        // No grant without the ID token its `openid` scope promised.
        gateway.store.revoke_grant(grant, now)?;
        return Err(error);
    }
    Ok(body)
}

/// RFC 6749 §4.1.3: the same client and the identical redirect URI; RFC 7636 §4.6: the
/// verifier of the challenge.
fn presented_as_issued(ticket: &Ticket, app: &Application, redirect_uri: &str, verifier: &str) -> bool {
    let challenge = CodeChallenge::from_stored(ticket.challenge.clone());
    ticket.client_id == app.consumer_key
        && ticket.redirect_uri == redirect_uri
        && challenge.is_met_by(verifier)
}
