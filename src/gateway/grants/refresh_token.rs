//! The refresh token grant (RFC 6749 §6): new tokens for a grant of this client whose owner
//! still stands. The access token may narrow the grant's scope; the grant keeps it.

use std::borrow::Cow;

use super::{token_body, TokenRequest};
use crate::gateway::openid::SignIn;
use crate::gateway::reply::{ErrorKind, OAuthError, STORE_UNAVAILABLE};
use crate::gateway::Gateway;
use crate::host::metrics::Metric;
use crate::oauth::grant_type::TokenParam;
use crate::oauth::messages::TokenResponse;
use crate::oauth::scope::ScopeSet;
use crate::state::grants::{
    AccessFacts, AccessSigner, GrantRecord, RefreshError, RefreshPlan, RefreshRefusal,
};

pub(super) fn issue(gateway: &Gateway<'_>, request: TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let token = request.param(TokenParam::RefreshToken)?;
    let (app, requested, now) = (request.app, request.requested.as_ref(), request.now);
    let asked_audience = &request.audience;
    let invalid_grant = ErrorKind::InvalidGrant.because("the refresh token is invalid, expired or revoked");
    let mut granted = ScopeSet::default();
    let mut username: Option<String> = None;
    let access_expires_at = app.access_validity.expires_at(now);
    let refresh_expires_at = gateway.config.refresh_expires_at(now);
    let decide = |record: &GrantRecord| -> Result<RefreshPlan, RefreshRefusal> {
        // Credentials changed or removed since the grant: the grant is dead.
        let issued_at = record.refresh.as_ref().map_or(0, |refresh| refresh.issued_at);
        // The store hands over only grants of `app`, already authenticated: no second
        // lookup (for a registered client, a second shared-data read that could fail and
        // turn a good refresh token "invalid") is needed.
        let Some(standing) = gateway.standing_of(Cow::Borrowed(app), &record.owner, issued_at) else {
            return Err(RefreshRefusal::InvalidGrant);
        };
        // The grant keeps its scope; the access token may narrow it (RFC 6749 §6).
        let grant_scopes = ScopeSet::from_names(gateway.held_scopes(&record.scopes, &standing));
        let access_scopes = match requested {
            Some(requested) if !requested.is_subset(&grant_scopes) => {
                return Err(RefreshRefusal::InvalidScope)
            }
            Some(requested) => requested.clone(),
            None => grant_scopes,
        };
        // RFC 8707 §2.2: the grant's audience may narrow, never widen; a narrowed one sticks.
        let audience = record.audience.narrowed_to(asked_audience).ok_or(RefreshRefusal::InvalidTarget)?;
        // An access token with the grant's whole scope stores no scope list of its own.
        let plan = RefreshPlan {
            audience,
            access_scopes: Some(gateway.config.scope_ids(&access_scopes)).filter(|ids| *ids != record.scopes),
            access_expires_at,
            refresh_expires_at,
        };
        granted = access_scopes;
        username = record.owner.user.as_ref().map(|(name, _)| name.clone());
        Ok(plan)
    };
    // A refresh proves the grant, not the user: no `auth_time` on its JWT.
    let signer = gateway.access_token_signer(app, None);
    let signer = signer.as_ref().map(|signer| move |facts: &AccessFacts<'_>| signer.sign(facts));
    let signer = signer.as_ref().map(|sign| sign as AccessSigner<'_>);
    let grace = gateway.config.refresh_reuse_grace_ms;
    match gateway.store.refresh_signed(token, &app.consumer_key, now, grace, decide, signer) {
        Ok(issued) => {
            let mut body = token_body(issued, &granted, access_expires_at, now);
            // Core §12.2: a new ID token for the same user, without `nonce`; the grant does
            // not keep when the user signed in, so without `auth_time` too.
            if let Some(username) = username.as_deref() {
                let sign_in = SignIn { username, auth_time: None, nonce: None };
                gateway.add_id_token(&mut body, app, &granted, &sign_in, now)?;
            }
            Ok(body)
        }
        Err(RefreshError::Refused(RefreshRefusal::InvalidScope)) => {
            Err(ErrorKind::InvalidScope.because("the scope exceeds the grant's scope"))
        }
        Err(RefreshError::Refused(RefreshRefusal::InvalidTarget)) => {
            Err(ErrorKind::InvalidTarget.because("the resource is outside the grant's audience"))
        }
        Err(RefreshError::ReuseDetected) => {
            gateway.metrics.add(Metric::RefreshReuseDetected, 1);
            Err(invalid_grant)
        }
        Err(RefreshError::InvalidGrant | RefreshError::Refused(RefreshRefusal::InvalidGrant)) => {
            Err(invalid_grant)
        }
        Err(RefreshError::Random | RefreshError::Store(_)) => Err(STORE_UNAVAILABLE),
        Err(RefreshError::Signing) => Err(super::SIGNING_FAILED),
    }
}
