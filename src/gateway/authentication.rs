//! Who is calling: the form endpoints' shared preamble, client authentication (RFC 6749
//! §2.3.1), user passwords, and the brute-force limits every secret check goes through.

use std::borrow::Cow;

use super::reply::{
    locked_out, ErrorKind, OAuthError, CLIENT_AUTH_FAILED, CLIENT_POST_AUTH_FAILED, SIGN_IN_BUSY,
};
use super::{split_path, EndpointRequest, Gateway};
use crate::config::{registered_counter, Application, Subscription, SubscriptionState, TokenFormat, User};
use crate::host::metrics::Metric;
use crate::host::StoreError;
use crate::oauth::credentials::{parse_basic_authorization, ClientCredentials, SecretVerifier};
use crate::oauth::form::{query_parameter_names, FormError, FormParams};
use crate::oauth::grant_type::{GrantType, GrantTypes, PUBLIC_CLIENT_GRANTS};
use crate::oauth::redirect_uri::{self, LoopbackHosts};
use crate::oauth::scope::ScopeSet;
use crate::state::credential_changes::{CredentialChanges, CredentialKind, Reclaim};
use crate::state::grants::KeyType;
use crate::state::hash_budget;
use crate::state::lockout::{Listing, Principal};
use crate::state::registry::{ClientRecord, RegisteredState, RegisteredSubscription};
use crate::state::remembered::verify_remembering;

impl<'a> Gateway<'a> {
    /// Checks method, URL and content type, and parses the form body (RFC 6749 §3.2, App. B).
    pub(super) fn read_form(&self, request: &EndpointRequest) -> Result<FormParams, OAuthError> {
        if request.method != "POST" {
            return Err(
                ErrorKind::MethodNotAllowed { allow: "POST" }.because("this endpoint accepts only POST")
            );
        }
        const SECRET_PARAMETERS: [&str; 6] =
            ["client_id", "client_secret", "username", "password", "refresh_token", "token"];
        if let (_, Some(query)) = split_path(request.path) {
            if query_parameter_names(query).any(|name| SECRET_PARAMETERS.contains(&name.as_ref())) {
                return Err(ErrorKind::InvalidRequest
                    .because("credentials and tokens must be sent in the body, not in the URL"));
            }
        }
        if !request
            .content_type
            .is_some_and(|value| media_type_is(value, "application/x-www-form-urlencoded"))
        {
            return Err(ErrorKind::InvalidRequest
                .because("the content type must be application/x-www-form-urlencoded"));
        }
        FormParams::parse(request.body).map_err(|error| match error {
            FormError::RepeatedParameter => ErrorKind::InvalidRequest.because("a parameter is repeated"),
            FormError::BadPercentEncoding => {
                ErrorKind::InvalidRequest.because("the body is not valid form encoding")
            }
            FormError::InvalidUtf8 => ErrorKind::InvalidRequest.because("the body is not valid UTF-8"),
        })
    }

    /// Authenticates the calling application (RFC 6749 §2.3.1): HTTP Basic
    /// (`client_secret_basic`), or `client_id` and `client_secret` in the form body
    /// (`client_secret_post`). Either way the secret goes through [`Self::verify_secret`]
    /// (lockout, decoy, counted failures). A request with no credentials at all is told to use
    /// Basic, the method RFC 6749 recommends.
    pub(super) fn authenticate_client(
        &self,
        request: &EndpointRequest,
        form: &FormParams,
    ) -> Result<Cow<'a, Application>, OAuthError> {
        let (credentials, failure) = presented_client_credentials(request, form)?;
        let app = self.application_in_use(&credentials.consumer_key)?;
        self.verify_secret(
            Principal::Client(&credentials.consumer_key),
            app,
            |app| &app.verifier,
            &self.config.decoy_client_verifier,
            &credentials.consumer_secret,
            failure,
        )
    }

    /// [`Self::authenticate_client`], or a public client (RFC 6749 §2.1), configured or
    /// registered with `token_endpoint_auth_method: none`, naming itself with `client_id`
    /// alone: no Authorization header, no `client_secret`. Only `/token` and `/revoke` take it;
    /// a public client may only use the code flow's grants. A public client that presents a
    /// secret is refused (it was given none), and so is a confidential one that presents none.
    pub(super) fn authenticate_client_or_public(
        &self,
        request: &EndpointRequest,
        form: &FormParams,
    ) -> Result<Cow<'a, Application>, OAuthError> {
        if request.authorization.is_none() && !form.was_sent("client_secret") {
            if let Some(id) = form.get("client_id") {
                if let Some(app) = self.application_in_use(id)?.filter(|app| app.public) {
                    return Ok(app);
                }
            }
        }
        let app = self.authenticate_client(request, form)?;
        // Its verifier matches no secret; this holds even if a secret were ever set on it.
        if app.public {
            return Err(CLIENT_AUTH_FAILED);
        }
        Ok(app)
    }

    /// The application of this name in this VM's config, unless a later config changed its
    /// secret or dropped it and this request came on a connection Envoy drains (see
    /// [`Self::holds_current`]).
    pub(super) fn configured_application(&self, consumer_key: &str) -> Option<&'a Application> {
        let app = self.config.applications.get(consumer_key)?;
        self.holds_current(CredentialKind::Application, consumer_key, app.fingerprint).then_some(app)
    }

    /// The user of this name in this VM's config, unless a later config changed their
    /// password or dropped them, as for [`Self::configured_application`].
    pub(super) fn configured_user(&self, username: &str) -> Option<&'a User> {
        let user = self.config.users.get(username)?;
        self.holds_current(CredentialKind::User, username, user.fingerprint).then_some(user)
    }

    /// Whether this VM's credential `(kind, name, fingerprint)` is still the one to use. After
    /// a config update Envoy keeps serving the connections it drains (for up to 600 s by
    /// default, `--drain-time-s`) with the old config's VMs: there a changed secret or
    /// password must not authenticate, nor tokens issued under it stand. Only a credential the
    /// record says is superseded pays for the connection id (a host call, about 10,000
    /// instructions) and a fresh read of the record: the Bearer hot path never does in the
    /// steady state. A failure to tell refuses.
    fn holds_current(&self, kind: CredentialKind, name: &str, fingerprint: u32) -> bool {
        if !self.credential_changes.superseded(kind, name, fingerprint) {
            return true;
        }
        let (Some(connection_id), Ok(now)) = (self.connection.id(), self.now()) else { return false };
        let credentials = self.config.credentials();
        let asked = (kind, name, fingerprint);
        match CredentialChanges::reclaim(self.process_shared, &credentials, asked, connection_id, now) {
            Ok(Reclaim::Current(reasserted)) => {
                if let Some(generation) = reasserted {
                    self.config_generation.set(generation);
                }
                true
            }
            Ok(Reclaim::Draining) | Err(_) => false,
        }
    }

    /// Fixes the record generation's boundary on this VM's first request after a change, if
    /// its config is the newest (see [`CredentialChanges::mark_boundary`]): two comparisons in
    /// the steady state. A failed read or write leaves it unknown, for the next request to
    /// fix; this request is served either way.
    pub(super) fn mark_config_boundary(&self) {
        let changes = self.credential_changes;
        let generation = self.config_generation.get();
        changes.mark_boundary(self.process_shared, generation, self.connection).ok();
    }

    /// Checks a username and password; `failure` is the error for wrong credentials.
    pub(super) fn authenticate_user(
        &self,
        username: &str,
        password: &str,
        failure: OAuthError,
    ) -> Result<&'a User, OAuthError> {
        self.check_user_password(Principal::User(username), username, password, failure, |_| Ok(()))
    }

    /// [`Self::authenticate_user`] at the login form, which anyone may post: its failures are
    /// counted per (username, client address), so they never lock the user's password grant,
    /// nor the form for the user at another address (RFC 6819 §5.1.4.2.3); and a PBKDF2 check
    /// (a decoy's too) first takes its iterations from this worker's `pbkdf2_per_second`, or
    /// the form is busy and nothing is hashed (see [`crate::state::hash_budget`]).
    pub(super) fn authenticate_user_at_form(
        &self,
        username: &str,
        password: &str,
        address: &str,
        pbkdf2_per_second: u64,
        failure: OAuthError,
    ) -> Result<&'a User, OAuthError> {
        let now = self.now()?;
        let take_work = |verifier: &SecretVerifier| {
            let work = verifier.work();
            if !hash_budget::take_from_this_worker(now, work, pbkdf2_per_second) {
                self.metrics.add(Metric::SignInBusy, 1);
                return Err(SIGN_IN_BUSY);
            }
            if work > 0 {
                self.metrics.add(Metric::SignInSlowHashes, 1);
            }
            Ok(())
        };
        let principal = Principal::SignIn { username, address };
        self.check_user_password(principal, username, password, failure, take_work)
    }

    fn check_user_password(
        &self,
        principal: Principal,
        username: &str,
        password: &str,
        failure: OAuthError,
        before_hashing: impl FnOnce(&SecretVerifier) -> Result<(), OAuthError>,
    ) -> Result<&'a User, OAuthError> {
        let user = self.configured_user(username);
        let decoy = &self.config.decoy_user_verifier;
        self.verify_secret_after(
            principal,
            user,
            |user| &user.verifier,
            decoy,
            password,
            failure,
            before_hashing,
        )
    }

    /// Checks a presented secret of `principal` (the application or user `found` under that
    /// name, if any) under the brute-force limits: refused while the name is locked out, an
    /// unknown name checked against `decoy` so it costs what a wrong secret costs (RFC 6749
    /// §10.10), and every failure counted.
    pub(super) fn verify_secret<T>(
        &self,
        principal: Principal,
        found: Option<T>,
        verifier: impl Fn(&T) -> &SecretVerifier,
        decoy: &SecretVerifier,
        presented: &str,
        failure: OAuthError,
    ) -> Result<T, OAuthError> {
        self.verify_secret_after(principal, found, verifier, decoy, presented, failure, |_| Ok(()))
    }

    /// [`Self::verify_secret`], with `before_hashing` asked about the verifier about to run
    /// (the found one's or the decoy) once the name is known not to be locked: its error ends
    /// the check before any hashing, and counts no failure.
    #[allow(clippy::too_many_arguments)]
    fn verify_secret_after<T>(
        &self,
        principal: Principal,
        found: Option<T>,
        verifier: impl Fn(&T) -> &SecretVerifier,
        decoy: &SecretVerifier,
        presented: &str,
        failure: OAuthError,
        before_hashing: impl FnOnce(&SecretVerifier) -> Result<(), OAuthError>,
    ) -> Result<T, OAuthError> {
        let now = self.now()?;
        // Names that exist are counted apart, where made-up names cannot crowd them out.
        let listing = if found.is_some() { Listing::Known } else { Listing::Unknown };
        if let Some(wait) = self.limiter.locked_for(principal, listing, now)? {
            return Err(locked_out(wait));
        }
        before_hashing(found.as_ref().map_or(decoy, &verifier))?;
        let verified = match &found {
            Some(item) => verify_remembering(verifier(item), presented),
            None => {
                decoy.verify(presented);
                false
            }
        };
        match found {
            Some(item) if verified => Ok(item),
            _ => {
                self.limiter.record_failure(principal, listing, now)?;
                Err(failure)
            }
        }
    }

    /// A configured application, or a registered one (one shared-data read). An open
    /// registration unused past its lifetime is none (its bucket's next write drops it).
    pub(super) fn application(&self, consumer_key: &str) -> Result<Option<Cow<'a, Application>>, StoreError> {
        self.find_application(consumer_key, Use::Read)
    }

    /// [`Self::application`] for a request the client itself makes (`/authorize`, `/token`,
    /// `/revoke`, `/introspect`): an open registration's last use is written down, at most
    /// once a day ([`crate::state::registry::OpenRegistrant::needs_touch`]), so it does not expire while in use.
    pub(super) fn application_in_use(
        &self,
        consumer_key: &str,
    ) -> Result<Option<Cow<'a, Application>>, StoreError> {
        self.find_application(consumer_key, Use::ByTheClient)
    }

    fn find_application(
        &self,
        consumer_key: &str,
        by: Use,
    ) -> Result<Option<Cow<'a, Application>>, StoreError> {
        if self.config.applications.contains_key(consumer_key) {
            return Ok(self.configured_application(consumer_key).map(Cow::Borrowed));
        }
        let (Some(registry), Some(registration)) = (&self.registry, &self.config.registration) else {
            return Ok(None);
        };
        let Some(record) = registry.find(consumer_key)? else { return Ok(None) };
        if let Some(open) = &record.open {
            let now = self.now()?;
            if open.expired(now) {
                return Ok(None);
            }
            // Best effort: a failed write leaves the use for a later request to note.
            if by == Use::ByTheClient && open.needs_touch(now) {
                registry.touch(consumer_key, now).ok();
            }
        }
        Ok(Some(Cow::Owned(self.registered_application(record, &registration.scopes))))
    }

    /// The scopes a registered application may be granted: the ones it registered (RFC 7591
    /// `scope`) within today's `registration.scopes`, or all of those.
    pub(super) fn registered_scopes(record: &ClientRecord, scopes: &ScopeSet) -> ScopeSet {
        match record.registration.scope.as_str() {
            "" => scopes.clone(),
            asked => ScopeSet::from_names(asked.split(' ')).intersection(scopes),
        }
    }

    pub(super) fn registered_application(&self, record: ClientRecord, scopes: &ScopeSet) -> Application {
        let verifier: SecretVerifier = record.verifier();
        let scopes = Self::registered_scopes(&record, scopes);
        let public = record.is_public();
        let allowed = self.config.registration.as_ref().map(|r| r.grant_types);
        let subscriptions = self.registered_subscriptions(&record.client_id, &self.subscriptions_of(&record));
        let grant_types: GrantTypes = record
            .registration
            .grant_types
            .iter()
            .filter(|&grant| allowed.is_some_and(|allowed| allowed.contains(grant)))
            // Checked when registered; a public client holds no secret for the other grants.
            .filter(|&grant| !public || PUBLIC_CLIENT_GRANTS.contains(&grant))
            .collect();
        // Checked when registered; checked again, since an older record may hold anything.
        let redirect_uris = match grant_types.contains(GrantType::AuthorizationCode) {
            true => record
                .registration
                .callback_url
                .split(' ')
                .filter(|uri| {
                    let hosts = loopback_hosts(public);
                    redirect_uri::check_registered_with(uri, record.registration.application_type, hosts)
                        .is_ok()
                })
                .map(str::to_owned)
                .collect(),
            false => Vec::new(),
        };
        let name = match record.registration.name.as_str() {
            "" => record.client_id.clone(),
            name => name.to_owned(),
        };
        Application {
            fingerprint: verifier.fingerprint(&record.client_id),
            grant_types,
            name,
            consumer_key: record.client_id,
            verifier,
            scopes,
            // The registration endpoints do not set a format yet: registered applications
            // take the configured default (see docs/tokens-and-keys.md).
            access_validity: match self.config.default_token_format {
                TokenFormat::Opaque => self.config.default_access_validity,
                TokenFormat::Jwt => self.config.jwt_access_validity,
            },
            token_format: self.config.default_token_format,
            can_introspect: false,
            public,
            redirect_uris,
            application_type: record.registration.application_type,
            // Registration issues one key pair.
            key_type: KeyType::Production,
            subscriptions,
        }
    }

    /// What a registered application is subscribed to: its own subscriptions, and for an open
    /// registration those `registration.open.subscriptions` gives every open registration
    /// (an API it holds a subscription of its own to keeps that one, blocked or not).
    fn subscriptions_of<'r>(&'r self, record: &'r ClientRecord) -> Cow<'r, [RegisteredSubscription]> {
        let policy = (self.config.registration.as_ref())
            .and_then(|registration| registration.open.as_ref())
            .filter(|_| record.open.is_some())
            .map_or(&[][..], |open| open.subscriptions.as_slice());
        let own = &record.subscriptions;
        if policy.is_empty() {
            return Cow::Borrowed(own.as_slice());
        }
        let given = policy.iter().filter(|given| !own.iter().any(|held| held.api == given.api));
        Cow::Owned(own.iter().chain(given).cloned().collect())
    }

    /// A registered application's subscriptions as the current config knows them: those to
    /// an API or with a tier it no longer has are left out. Rated ones count in the shared
    /// registered window counters (see [`registered_counter`]).
    fn registered_subscriptions(
        &self,
        client_id: &str,
        stored: &[RegisteredSubscription],
    ) -> Vec<Subscription> {
        let config = self.config;
        stored
            .iter()
            .filter_map(|subscription| {
                let api = config.apis.iter().position(|api| api.name == subscription.api)?;
                let tier = config.tiers.get(&subscription.tier)?.clone();
                let counter = match tier.rate {
                    Some((_, period)) => Some(
                        config.window_counters
                            + registered_counter(
                                client_id,
                                &subscription.api,
                                period,
                                config.registered_window_counters,
                            )?,
                    ),
                    None => None,
                };
                let state = match subscription.state {
                    RegisteredState::Unblocked => SubscriptionState::Active,
                    RegisteredState::Blocked => SubscriptionState::Blocked,
                    RegisteredState::ProdOnlyBlocked => SubscriptionState::ProdOnlyBlocked,
                };
                Some(Subscription { api, tier, state, counter })
            })
            .collect()
    }
}

/// Who asks for an application (see [`Gateway::application_in_use`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Read,
    ByTheClient,
}

/// The hosts a registered client's `http` redirect URIs may name: a public client's may name
/// `localhost` too (see [`LoopbackHosts::WithLocalhost`]).
pub(super) fn loopback_hosts(public: bool) -> LoopbackHosts {
    match public {
        true => LoopbackHosts::WithLocalhost,
        false => LoopbackHosts::IpLiterals,
    }
}

/// The client's credentials and the error a wrong secret gets: Basic when an `Authorization`
/// header was sent (a failure carries the Basic challenge), else the body's `client_id` and
/// `client_secret` (a failure is the same 401 without a challenge: RFC 6749 §5.2 asks for one
/// only when the client used the Authorization header).
fn presented_client_credentials(
    request: &EndpointRequest,
    form: &FormParams,
) -> Result<(ClientCredentials, OAuthError), OAuthError> {
    if let Some(header) = request.authorization {
        let credentials = parse_basic_authorization(header).map_err(|_| CLIENT_AUTH_FAILED)?;
        // RFC 6749 §2.3: one authentication method per request.
        if form.was_sent("client_secret") {
            return Err(ErrorKind::InvalidRequest.because("use HTTP Basic or client_secret, not both"));
        }
        if form.get("client_id").is_some_and(|id| id != credentials.consumer_key) {
            return Err(
                ErrorKind::InvalidRequest.because("client_id does not match the authenticated client")
            );
        }
        return Ok((credentials, CLIENT_AUTH_FAILED));
    }
    match (form.get("client_id"), form.was_sent("client_secret")) {
        (Some(client_id), true) => {
            let credentials = ClientCredentials {
                consumer_key: client_id.to_owned(),
                consumer_secret: form.get("client_secret").unwrap_or_default().to_owned(),
            };
            Ok((credentials, CLIENT_POST_AUTH_FAILED))
        }
        (None, true) => Err(CLIENT_POST_AUTH_FAILED),
        // No secret anywhere: a public client's request, or none at all.
        (_, false) => Err(CLIENT_AUTH_FAILED),
    }
}

/// True when a Content-Type header names `media_type`, in any case, parameters allowed.
pub(super) fn media_type_is(value: &str, media_type: &str) -> bool {
    value.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case(media_type)
}
