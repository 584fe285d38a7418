//! The authorization code grant at `/token` (RFC 6749 §4.1.3, RFC 7636 §4.5-4.6).
//!
//! The code must be this client's, presented with the very redirect URI it was issued for
//! and the PKCE verifier of its challenge. Its first such presentation spends it; a second one
//! is refused and revokes the grant the first produced (§4.1.2). A presentation that fails
//! those checks changes nothing: a public client's code stolen without its verifier can
//! neither be burnt before the client redeems it nor used to revoke what it produced.

use super::reply::{ErrorKind, OAuthError};
use super::Gateway;
use crate::config::Application;
use crate::host::metrics::Metric;
use crate::oauth::form::FormParams;
use crate::oauth::grant_type::GrantType;
use crate::oauth::messages::TokenResponse;
use crate::oauth::pkce::CodeChallenge;
use crate::oauth::scope::ScopeSet;
use crate::state::authorization::{Redeemed, Ticket};
use crate::state::grants::GrantOwner;

const INVALID_CODE: OAuthError =
    ErrorKind::InvalidGrant.because("the code is invalid, expired, used, or was issued for another request");

impl<'a> Gateway<'a> {
    pub(super) fn authorization_code_grant(
        &self,
        app: &Application,
        form: &FormParams,
        now: u64,
    ) -> Result<TokenResponse, OAuthError> {
        let code = form.get("code").ok_or(ErrorKind::InvalidRequest.because("code is missing"))?;
        let redirect_uri =
            form.get("redirect_uri").ok_or(ErrorKind::InvalidRequest.because("redirect_uri is missing"))?;
        let verifier =
            form.get("code_verifier").ok_or(ErrorKind::InvalidRequest.because("code_verifier is missing"))?;
        let table = self.authorizations.as_ref().ok_or(INVALID_CODE)?;
        let is_issuers = |ticket: &Ticket| presented_as_issued(ticket, app, redirect_uri, verifier);
        let ticket = match table.redeem(code, now, is_issuers)? {
            Redeemed::Fresh(ticket) => ticket,
            Redeemed::Replayed(grant) => {
                self.metrics.add(Metric::RefreshReuseDetected, 1);
                if let Some(grant) = grant {
                    self.store.revoke_grant(grant, now)?;
                }
                return Err(INVALID_CODE);
            }
            Redeemed::Unknown => return Err(INVALID_CODE),
        };
        let user = self.configured_user(&ticket.username).ok_or(INVALID_CODE)?;
        let owner = GrantOwner {
            client_id: app.consumer_key.clone(),
            client_fingerprint: app.fingerprint,
            user: Some((user.username.clone(), user.fingerprint)),
            key_type: app.key_type,
        };
        let scopes = ScopeSet::from_names(ticket.scope.split(' ').filter(|name| !name.is_empty()))
            .intersection(&app.scopes.intersection(&user.scopes));
        let refresh_expires_at =
            app.grant_types.contains(GrantType::RefreshToken).then(|| self.config.refresh_expires_at(now));
        let (body, grant) = self.issue_grant(app, owner, &scopes, refresh_expires_at, now)?;
        if table.remember_grant(code, grant, now)? {
            // The code came back while this grant was being issued: it goes too.
            self.store.revoke_grant(grant, now)?;
            return Err(INVALID_CODE);
        }
        Ok(body)
    }
}

/// RFC 6749 §4.1.3: the same client and the identical redirect URI; RFC 7636 §4.6: the
/// verifier of the challenge.
fn presented_as_issued(ticket: &Ticket, app: &Application, redirect_uri: &str, verifier: &str) -> bool {
    let challenge = CodeChallenge::from_stored(ticket.challenge.clone());
    ticket.client_id == app.consumer_key
        && ticket.redirect_uri == redirect_uri
        && challenge.is_met_by(verifier)
}
