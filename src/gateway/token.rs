//! The token endpoint (RFC 6749 §3.2, §4.3, §4.4, §6).

use std::borrow::Cow;

use super::reply::{no_store_json, ErrorKind, OAuthError, Response, STORE_UNAVAILABLE};
use super::{EndpointRequest, Gateway};
use crate::config::Application;
use crate::host::metrics::Metric;
use crate::oauth::grant_type::GrantType;
use crate::oauth::messages::TokenResponse;
use crate::oauth::scope::ScopeSet;
use crate::state::grants::{
    GrantLocation, GrantOwner, GrantRecord, IssueError, IssuedTokens, KeyType, NewGrant, RefreshError,
    RefreshPlan, RefreshRefusal, NEVER_EXPIRES,
};

impl<'a> Gateway<'a> {
    pub(super) fn token_endpoint(&self, request: &EndpointRequest) -> Response {
        match self.issue_tokens(request) {
            Ok((grant, body)) => {
                self.metrics.add(Metric::TokensIssued(grant), 1);
                no_store_json(200, Vec::new(), serde_json::to_vec(&body).unwrap_or_default())
            }
            Err(error) => {
                self.metrics.add(Metric::TokenErrors, 1);
                self.oauth_error_response(error)
            }
        }
    }

    fn issue_tokens(&self, request: &EndpointRequest) -> Result<(GrantType, TokenResponse), OAuthError> {
        let form = self.read_form(request)?;
        let grant_type =
            form.get("grant_type").ok_or(ErrorKind::InvalidRequest.because("grant_type is missing"))?;
        let app = self.authenticate_client_or_public(request, &form)?;
        // With no application using the code flow, the grant is not served at all.
        let grant = GrantType::from_param(grant_type)
            .filter(|grant| *grant != GrantType::AuthorizationCode || self.config.authorization.is_some())
            .ok_or(ErrorKind::UnsupportedGrantType.because("the grant type is not supported"))?;
        if !app.grant_types.contains(grant) {
            return Err(ErrorKind::UnauthorizedClient.because("this application may not use this grant type"));
        }
        let requested = match form.get("scope") {
            Some(text) => Some(
                ScopeSet::parse(text)
                    .map_err(|_| ErrorKind::InvalidScope.because("the scope is malformed"))?,
            ),
            None => None,
        };
        let requested = without_key_type(requested, &app)?;
        let now = self.now()?;
        let body = match grant {
            GrantType::ClientCredentials => {
                let scopes = narrow(requested, &app.scopes)?;
                let owner = GrantOwner {
                    client_id: app.consumer_key.clone(),
                    client_fingerprint: app.fingerprint,
                    user: None,
                    key_type: app.key_type,
                };
                self.issue_grant(&app, owner, &scopes, None, now)?.0
            }
            GrantType::Password => {
                let username =
                    form.get("username").ok_or(ErrorKind::InvalidRequest.because("username is missing"))?;
                let password =
                    form.get("password").ok_or(ErrorKind::InvalidRequest.because("password is missing"))?;
                let wrong = ErrorKind::InvalidGrant.because("the username or password is wrong");
                let user = self.authenticate_user(username, password, wrong)?;
                let held = app.scopes.intersection(&user.scopes);
                let scopes = narrow(requested, &held)?;
                let owner = GrantOwner {
                    client_id: app.consumer_key.clone(),
                    client_fingerprint: app.fingerprint,
                    user: Some((user.username.clone(), user.fingerprint)),
                    key_type: app.key_type,
                };
                // A refresh token only for applications allowed to use it.
                let refresh_expires_at = app
                    .grant_types
                    .contains(GrantType::RefreshToken)
                    .then(|| self.config.refresh_expires_at(now));
                self.issue_grant(&app, owner, &scopes, refresh_expires_at, now)?.0
            }
            GrantType::AuthorizationCode => self.authorization_code_grant(&app, &form, now)?,
            GrantType::RefreshToken => {
                let token = form
                    .get("refresh_token")
                    .ok_or(ErrorKind::InvalidRequest.because("refresh_token is missing"))?;
                self.refresh_grant(&app, token, requested.as_ref(), now)?
            }
        };
        Ok((grant, body))
    }

    /// Issues a grant: the token response, and where the grant lives (the code grant keeps it,
    /// to revoke the grant if its code is replayed).
    pub(super) fn issue_grant(
        &self,
        app: &Application,
        owner: GrantOwner,
        scopes: &ScopeSet,
        refresh_expires_at: Option<u64>,
        now: u64,
    ) -> Result<(TokenResponse, GrantLocation), OAuthError> {
        let access_expires_at = app.access_validity.expires_at(now);
        let grant =
            NewGrant { owner, scopes: self.config.scope_ids(scopes), access_expires_at, refresh_expires_at };
        let issued = self.store.issue(grant, now).map_err(|error| match error {
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
        })?;
        let location = issued.location;
        Ok((token_body(issued, scopes, access_expires_at, now), location))
    }

    fn refresh_grant(
        &self,
        app: &Application,
        token: &str,
        requested: Option<&ScopeSet>,
        now: u64,
    ) -> Result<TokenResponse, OAuthError> {
        let invalid_grant =
            ErrorKind::InvalidGrant.because("the refresh token is invalid, expired or revoked");
        let mut granted = ScopeSet::default();
        let access_expires_at = app.access_validity.expires_at(now);
        let refresh_expires_at = self.config.refresh_expires_at(now);
        let decide = |record: &GrantRecord| -> Result<RefreshPlan, RefreshRefusal> {
            // Credentials changed or removed since the grant: the grant is dead.
            let issued_at = record.refresh.as_ref().map_or(0, |refresh| refresh.issued_at);
            // The store hands over only grants of `app`, already authenticated: no second
            // lookup (for a registered client, a second shared-data read that could fail and
            // turn a good refresh token "invalid") is needed.
            let Some(standing) = self.standing_of(Cow::Borrowed(app), &record.owner, issued_at) else {
                return Err(RefreshRefusal::InvalidGrant);
            };
            // The grant keeps its scope; the access token may narrow it (RFC 6749 §6).
            let grant_scopes = ScopeSet::from_names(self.held_scopes(&record.scopes, &standing));
            let access_scopes = match requested {
                Some(requested) if !requested.is_subset(&grant_scopes) => {
                    return Err(RefreshRefusal::InvalidScope)
                }
                Some(requested) => requested.clone(),
                None => grant_scopes,
            };
            // An access token with the grant's whole scope stores no scope list of its own.
            let plan = RefreshPlan {
                access_scopes: Some(self.config.scope_ids(&access_scopes))
                    .filter(|ids| *ids != record.scopes),
                access_expires_at,
                refresh_expires_at,
            };
            granted = access_scopes;
            Ok(plan)
        };
        match self.store.refresh(token, &app.consumer_key, now, self.config.refresh_reuse_grace_ms, decide) {
            Ok(issued) => Ok(token_body(issued, &granted, access_expires_at, now)),
            Err(RefreshError::Refused(RefreshRefusal::InvalidScope)) => {
                Err(ErrorKind::InvalidScope.because("the scope exceeds the grant's scope"))
            }
            Err(RefreshError::ReuseDetected) => {
                self.metrics.add(Metric::RefreshReuseDetected, 1);
                Err(invalid_grant)
            }
            Err(RefreshError::InvalidGrant | RefreshError::Refused(RefreshRefusal::InvalidGrant)) => {
                Err(invalid_grant)
            }
            Err(RefreshError::Random | RefreshError::Store(_)) => Err(STORE_UNAVAILABLE),
        }
    }
}

/// Older WSO2 versions chose the key type with `PRODUCTION` or `SANDBOX` in the scope (seed
/// 003: `scope=PRODUCTION`). Here the key pair the client authenticated with decides it, so
/// either name only asserts it: it is taken out of the scope (a scope left empty asks for the
/// default, all the application may have) and never granted, and a name that disagrees with
/// the pair is `invalid_scope`. Either name stays a plain scope for an application
/// configured with a scope of that name.
fn without_key_type(requested: Option<ScopeSet>, app: &Application) -> Result<Option<ScopeSet>, OAuthError> {
    let Some(requested) = requested else { return Ok(None) };
    let selectors = [KeyType::Production, KeyType::Sandbox]
        .map(|key_type| (key_type, key_type.name()))
        .into_iter()
        .filter(|(_, name)| requested.contains(name) && !app.scopes.contains(name));
    let mut asked = None;
    for (key_type, _) in selectors {
        if asked.is_some() {
            return Err(ErrorKind::InvalidScope.because("ask for PRODUCTION or SANDBOX keys, not both"));
        }
        asked = Some(key_type);
    }
    let Some(asked) = asked else { return Ok(Some(requested)) };
    if asked != app.key_type {
        return Err(ErrorKind::InvalidScope.because(match asked {
            KeyType::Sandbox => "scope SANDBOX asks for sandbox keys: authenticate with the application's sandbox consumer key",
            KeyType::Production => "scope PRODUCTION asks for production keys: authenticate with the application's production consumer key",
        }));
    }
    let rest = ScopeSet::from_names(requested.iter().filter(|name| *name != asked.name()));
    Ok((!rest.is_empty()).then_some(rest))
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
    }
}
