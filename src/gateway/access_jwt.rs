//! JWT access tokens (RFC 9068): the claims of one, signed with the active `signing` key.
//!
//! The store mints the `jti` (it names the token's bucket, see [`crate::state::token`]) and
//! hands the grant's facts to the signer built here; the claims are a typed struct written
//! once, `jti` first, so the store can read the bucket back from a fixed prefix.

use serde::Serialize;

use super::Gateway;
use crate::config::{Application, TokenFormat};
use crate::jose::{sign, SigningKey};
use crate::state::grants::AccessFacts;

/// RFC 9068 §2.1: the header's `typ`.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// WSO2's `aut`: who the token acts for.
const AUT_APPLICATION: &str = "APPLICATION";
const AUT_APPLICATION_USER: &str = "APPLICATION_USER";

/// The claims of RFC 9068 §2.2 and WSO2's `aut`. Field order is the JSON's: `jti` first.
#[derive(Serialize)]
struct AccessClaims<'a> {
    jti: &'a str,
    iss: &'a str,
    sub: &'a str,
    aud: AudienceClaim<'a>,
    client_id: &'a str,
    azp: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    scope: String,
    aut: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<u64>,
}

/// RFC 7519 §4.1.3: one audience as a string, several as an array.
#[derive(Serialize)]
#[serde(untagged)]
enum AudienceClaim<'a> {
    One(&'a str),
    Many(&'a [String]),
}

/// What signs an application's JWT access tokens: the active key and the issuer.
pub(super) struct AccessTokenSigner<'g> {
    gateway: &'g Gateway<'g>,
    key: &'g SigningKey,
    issuer: &'g str,
    /// When the user authenticated (ms), for a grant where one just did.
    auth_time: Option<u64>,
}

impl<'g> Gateway<'g> {
    /// The signer of `app`'s access tokens, `None` for an opaque-token application. The config
    /// guarantees a `jwt` application a key and an issuer; without them it gets no signer.
    pub(super) fn access_token_signer(
        &'g self,
        app: &Application,
        auth_time: Option<u64>,
    ) -> Option<AccessTokenSigner<'g>> {
        if app.token_format != TokenFormat::Jwt {
            return None;
        }
        let key = self.config.signing.as_ref()?.active_key()?;
        let issuer = self.config.issuer.as_deref()?;
        Some(AccessTokenSigner { gateway: self, key, issuer, auth_time })
    }
}

impl AccessTokenSigner<'_> {
    /// The compact JWT for `facts`; `None` when signing fails (a claims set over the size
    /// limit), which the caller answers as a server error.
    pub(super) fn sign(&self, facts: &AccessFacts<'_>) -> Option<String> {
        let owner = facts.owner;
        let client_id = owner.client_id.as_str();
        let (sub, aut) = match &owner.user {
            Some((username, _)) => (username.as_str(), AUT_APPLICATION_USER),
            None => (client_id, AUT_APPLICATION),
        };
        // RFC 8707's resource when the grant names one; WSO2's client id otherwise (see
        // docs/tokens-and-keys.md: a default resource would name every API at once).
        let aud = match facts.audience.uris() {
            [] => AudienceClaim::One(client_id),
            [one] => AudienceClaim::One(one),
            many => AudienceClaim::Many(many),
        };
        let mut names: Vec<&str> = (facts.scopes.iter())
            .filter_map(|id| self.gateway.config.scope_names.get(id).map(String::as_str))
            .collect();
        names.sort_unstable();
        let iat = facts.issued_at / 1000;
        let claims = AccessClaims {
            jti: facts.jti,
            iss: self.issuer,
            sub,
            aud,
            client_id,
            azp: client_id,
            iat,
            nbf: iat,
            exp: facts.expires_at / 1000,
            scope: names.join(" "),
            aut,
            auth_time: self.auth_time.map(|ms| ms / 1000),
        };
        sign(self.key, Some(ACCESS_TOKEN_TYP), &claims).ok()
    }
}
