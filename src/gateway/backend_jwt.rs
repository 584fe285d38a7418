//! The backend JWT (WSO2 API Manager's `X-JWT-Assertion`): on an API with `backend_jwt`, each
//! request the gateway lets through carries a short-lived JWT, signed with the gateway's active
//! key, that tells the upstream who called (client, user, scopes, API, tier, key type). An
//! upstream that verifies it against the JWKS trusts the identity without trusting the network.
//! Claims: docs/backend-jwt.md.
//!
//! A warm Bearer hit does not sign: each worker remembers the assertion it signed, keyed by
//! SipHash (under the VM's key, [`recall_key_of_fields`]) of everything the claims come from
//! except the clock (the token, the API, the signing key, the scopes and tier it was judged
//! with), and reuses it while more than [`REUSE_MARGIN_MILLIS`] of its life remain and the
//! token epoch stands (a revoked token is never looked up this far, and any token ended moves
//! the epoch). The memory is the bounded table of [`crate::state::remembered`].
//!
//! No `jti`: an assertion is reused for the requests of its lifetime, so it identifies a
//! statement about a caller, not a request; a `jti` would invite upstreams to refuse a second
//! request as a replay, and a fresh one per request would mean a signature per request.

use std::cell::RefCell;

use serde::Serialize;

use super::Gateway;
use crate::config::Api;
use crate::jose;
use crate::state::grants::GrantOwner;
use crate::state::remembered::{recall_key_of_fields, RememberedGrants};

/// The header the assertion travels in (WSO2's default name); a client's copy is always
/// removed, on every API (`bearer.rs`).
pub const ASSERTION_HEADER: &str = "x-jwt-assertion";

/// A remembered assertion is signed afresh once less than this is left before its `exp`, so an
/// upstream always receives one with at least half a minute to live (clock skew, queues).
pub const REUSE_MARGIN_MILLIS: u64 = 30_000;

thread_local! {
    /// The assertions this worker signed, by [`recall_key_of_fields`] of what they say.
    static SIGNED: RefCell<RememberedGrants<String>> = RefCell::new(RememberedGrants::default());
}

/// What an assertion says about one allowed request.
pub(super) struct Caller<'c> {
    /// The access token presented: only the memory's key is made from it, never a claim.
    pub token: &'c str,
    pub owner: &'c GrantOwner,
    /// Space-separated, as forwarded in `x-tokengate-scope`.
    pub scopes: &'c str,
    pub api_index: usize,
    pub api: &'c Api,
    pub tier: &'c str,
}

/// The claims, in WSO2's names where it has them (docs/backend-jwt.md lists each), written
/// straight from borrowed strings: no JSON value tree.
#[derive(Serialize)]
struct BackendClaims<'c> {
    iss: &'c str,
    /// The user, or the client for a token without one (as RFC 9068 §2.2 does).
    sub: &'c str,
    aud: &'c str,
    iat: u64,
    exp: u64,
    client_id: &'c str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'c str,
    #[serde(rename = "http://wso2.org/claims/apiname")]
    api_name: &'c str,
    #[serde(rename = "http://wso2.org/claims/apicontext")]
    api_context: &'c str,
    #[serde(rename = "http://wso2.org/claims/version")]
    api_version: &'c str,
    #[serde(rename = "http://wso2.org/claims/tier")]
    tier: &'c str,
    #[serde(rename = "http://wso2.org/claims/keytype")]
    key_type: &'static str,
    /// `APPLICATION` for a client's own token, `APPLICATION_USER` for a user's.
    #[serde(rename = "http://wso2.org/claims/usertype")]
    user_type: &'static str,
    #[serde(rename = "http://wso2.org/claims/enduser", skip_serializing_if = "Option::is_none")]
    end_user: Option<&'c str>,
}

/// Why no assertion could be made for an API that promises one.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct AssertionUnavailable;

impl Gateway<'_> {
    /// The assertion for `caller` at `now` (ms): `Ok(None)` when its API has no backend JWT;
    /// the one this worker remembers when it still may; otherwise a fresh signature.
    pub(super) fn backend_assertion(
        &self,
        caller: &Caller,
        now: u64,
    ) -> Result<Option<String>, AssertionUnavailable> {
        let Some(settings) = caller.api.backend_jwt.as_ref() else { return Ok(None) };
        let (Some(key), Some(issuer)) = (
            self.config.signing.as_ref().and_then(|signing| signing.active_key()),
            self.config.issuer.as_deref(),
        ) else {
            return Err(AssertionUnavailable);
        };
        let api_index = (caller.api_index as u64).to_le_bytes();
        let memory = self.coordination.token_epoch().zip(recall_key_of_fields(&[
            &api_index,
            key.kid().as_bytes(),
            caller.token.as_bytes(),
            caller.scopes.as_bytes(),
            caller.tier.as_bytes(),
        ]));
        if let Some((epoch, recall)) = memory {
            if let Some(assertion) = SIGNED.with(|signed| signed.borrow().recall(&recall, epoch, now)) {
                return Ok(Some(assertion));
            }
        }
        let issued_at = now / 1000;
        let expires_at = issued_at.saturating_add(settings.lifetime_secs);
        let user = caller.owner.user.as_ref().map(|(name, _)| name.as_str());
        let claims = BackendClaims {
            iss: issuer,
            sub: user.unwrap_or(&caller.owner.client_id),
            aud: &settings.audience,
            iat: issued_at,
            exp: expires_at,
            client_id: &caller.owner.client_id,
            scope: caller.scopes,
            api_name: &caller.api.name,
            api_context: &caller.api.context,
            api_version: &caller.api.version,
            tier: caller.tier,
            key_type: caller.owner.key_type.name(),
            user_type: if user.is_some() { "APPLICATION_USER" } else { "APPLICATION" },
            end_user: user,
        };
        let assertion = jose::sign(key, Some("JWT"), &claims).map_err(|_| AssertionUnavailable)?;
        if let Some((epoch, recall)) = memory {
            let reusable_until = expires_at.saturating_mul(1000).saturating_sub(REUSE_MARGIN_MILLIS);
            SIGNED.with(|signed| {
                signed.borrow_mut().remember(recall, epoch, reusable_until, assertion.clone())
            });
        }
        Ok(Some(assertion))
    }
}
