//! Bearer checks on every request that is not for one of the gateway's endpoints (RFC 6750).

use super::backend_jwt::{Caller, ASSERTION_HEADER};
use super::reply::{
    json_response, Denial, Forward, Response, API_HEADER, CLIENT_ID_HEADER, SCOPE_HEADER, TIER_HEADER,
    UPSTREAM_HEADER, USERNAME_HEADER,
};
use super::standing::Standing;
use super::throttle::{admit, Admission};
use super::{split_path, ApiRequest, Gateway};
use crate::config::{Config, Subscription, SubscriptionState};
use crate::host::metrics::{ApiStat, DenyReason, Metric};
use crate::oauth::credentials::is_b64token;
use crate::oauth::form::query_parameter_names;
use crate::oauth::messages::ErrorResponse;
use crate::oauth::resource_indicator::Audience;
use crate::oauth::routes::{has_ambiguous_segment, has_method_override_parameter, Access, RouteMatch};
use crate::state::grants::{GrantOwner, KeyType, LookupError};

/// Headers some frameworks honour to change a request's method or path after the gateway
/// checked it: a GET allowed with `orders:read` would become a DELETE upstream.
const OVERRIDE: &str = "x-http-method-override";
const METHOD: &str = "x-http-method";
const METHOD_OVERRIDE: &str = "x-method-override";
const ORIGINAL_URL: &str = "x-original-url";
const REWRITE_URL: &str = "x-rewrite-url";
/// What a forwarded request loses, by (`forward_authorization`, `forward_method_overrides`):
/// the identity headers always (the gateway sets them), the token unless it is forwarded
/// (by default it is not), the method overrides unless they are kept (by default they are not).
/// Static lists: the filter removes only those the request has, so the list costs no host call.
/// A client's copy of the routing header goes too: nobody picks an upstream by sending it; and
/// of the backend JWT's header, on every API, so that no upstream meets a forged assertion.
#[rustfmt::skip]
const STRIP_ALL: &[&str] = &[
    CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER, API_HEADER, TIER_HEADER, UPSTREAM_HEADER, ASSERTION_HEADER,
    "authorization", OVERRIDE, METHOD, METHOD_OVERRIDE, ORIGINAL_URL, REWRITE_URL,
];
#[rustfmt::skip]
const STRIP_KEEPING_AUTHORIZATION: &[&str] = &[
    CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER, API_HEADER, TIER_HEADER, UPSTREAM_HEADER, ASSERTION_HEADER,
    OVERRIDE, METHOD, METHOD_OVERRIDE, ORIGINAL_URL, REWRITE_URL,
];
#[rustfmt::skip]
const STRIP_KEEPING_OVERRIDES: &[&str] = &[
    CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER, API_HEADER, TIER_HEADER, UPSTREAM_HEADER, ASSERTION_HEADER,
    "authorization",
];
#[rustfmt::skip]
const STRIP_IDENTITY_ONLY: &[&str] = &[
    CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER, API_HEADER, TIER_HEADER, UPSTREAM_HEADER, ASSERTION_HEADER,
];

/// What an allowed request that needed a token carries upstream.
struct Identity<'s> {
    owner: GrantOwner,
    scopes: String,
    /// The API's name and the subscription's tier, for a resource of an API.
    api: Option<(&'s str, &'s str)>,
    /// The Envoy cluster the token's key type reaches, when the API names one.
    upstream: Option<&'s str>,
    /// What is left of a rated tier's window, for the client (IETF ratelimit headers).
    quota: Vec<(&'static str, String)>,
    /// The backend JWT, on an API that has one.
    assertion: Option<String>,
}

impl<'a> Gateway<'a> {
    /// The decision on a request to an API: what it carries upstream, or why it is refused
    /// and the reply that says so. [`Gateway::check_bearer`] counts and returns it.
    pub(super) fn bearer_verdict(&self, request: &ApiRequest) -> Result<Forward, Denial> {
        let (path, query) = split_path(request.path);
        // RFC 6750 §2.3: tokens in URLs leak into logs; refuse them outright.
        if query.is_some_and(|query| query_parameter_names(query).any(|name| name == "access_token")) {
            let description = "send the token in the Authorization header, not the URL";
            return Err(Denial::new(
                DenyReason::InvalidRequest,
                self.bearer_error(400, "invalid_request", description, None, &ChallengeHints::default()),
            ));
        }
        // A path some upstream would resolve to another resource than the rule that matched.
        if has_ambiguous_segment(path) {
            let description = "the path has a dot segment or a ';' parameter";
            let body = ErrorResponse::new("invalid_request", description).to_json();
            return Err(Denial::new(DenyReason::InvalidRequest, json_response(400, Vec::new(), body)));
        }
        // The query's counterpart of the override headers, which cannot be stripped: refused.
        if !self.config.forward_method_overrides && query.is_some_and(has_method_override_parameter) {
            let description = "the query has a _method parameter, which some frameworks read as the method";
            let body = ErrorResponse::new("invalid_request", description).to_json();
            return Err(Denial::new(DenyReason::InvalidRequest, json_response(400, Vec::new(), body)));
        }
        let (found, api) = self.config.routes.find_with_api(request.method, path);
        let required = match found {
            RouteMatch::Found(Access::Public) => return Ok(self.forward(None)),
            RouteMatch::Found(Access::Scopes { names }) => names,
            RouteMatch::NotFound => {
                let body = ErrorResponse::bare("not_found").to_json();
                return Err(Denial::new(DenyReason::NoSuchResource, json_response(404, Vec::new(), body)));
            }
            RouteMatch::MethodNotAllowed(methods) => {
                let body = ErrorResponse::bare("method_not_allowed").to_json();
                let headers = vec![("allow", methods.join(", "))];
                return Err(Denial::new(DenyReason::NoSuchResource, json_response(405, headers, body)));
            }
        };
        self.check_token(request.authorization, required, api)
    }

    /// The token, then (for a resource of API `api`) its subscription and key type, the
    /// scopes `required`, and the tier.
    fn check_token(
        &self,
        authorization: Option<&str>,
        required: &[String],
        api: Option<usize>,
    ) -> Result<Forward, Denial> {
        let hints = || self.challenge_hints(api, required);
        let token = self.presented_token(authorization, &hints)?;
        let invalid_token = |description| {
            let response = self.bearer_error(401, "invalid_token", description, None, &hints());
            Denial::new(DenyReason::InvalidToken, response)
        };
        let Ok(now) = self.now() else { return Err(Denial::unavailable()) };
        let grant = match self.store.find_access(token, now) {
            Ok(grant) => grant,
            Err(LookupError::Unknown) => return Err(invalid_token("the access token is unknown or revoked")),
            Err(LookupError::Expired) => return Err(invalid_token("the access token expired")),
            Err(LookupError::Store(_)) => return Err(Denial::unavailable()),
        };
        if let Some(description) = self.audience_refusal(&grant.audience, api) {
            return Err(invalid_token(description));
        }
        let standing = match self.standing(&grant.owner, grant.issued_at) {
            Ok(Some(standing)) => standing,
            Ok(None) => return Err(invalid_token("the access token is unknown or revoked")),
            Err(_) => return Err(Denial::unavailable()),
        };
        // WSO2's order: the token, its application's subscription, the scope, the tier.
        let key_type = grant.owner.key_type;
        let counted = |api: usize, stat| {
            move |denial| {
                self.metrics.add(Metric::Api { api, stat }, 1);
                denial
            }
        };
        let subscription = api
            .map(|api| {
                self.subscription(&standing, api, key_type).map_err(counted(api, ApiStat::SubscriptionDenied))
            })
            .transpose()?;
        let upstream = match api {
            Some(api) => self.upstream(api, key_type).map_err(counted(api, ApiStat::SubscriptionDenied))?,
            // A resource outside every API has no sandbox upstream: its route is production's.
            None if key_type == KeyType::Sandbox => {
                return Err(sandbox_not_served(
                    "the resource belongs to no API, so it has no sandbox upstream",
                ))
            }
            None => None,
        };
        let held = self.held_scopes(&grant.scopes, &standing);
        if !required.iter().all(|name| held.contains(&name.as_str())) {
            let description = "the access token lacks a required scope";
            let hints = ChallengeHints { scope: None, ..hints() };
            let response =
                self.bearer_error(403, "insufficient_scope", description, Some(required.join(" ")), &hints);
            return Err(Denial::new(DenyReason::InsufficientScope, response));
        }
        let scopes = held.join(" ");
        let (api, quota, assertion) = match subscription {
            Some(subscription) => {
                let (api, tier, quota) = self
                    .throttle(subscription, now)
                    .map_err(counted(subscription.api, ApiStat::Throttled))?;
                let assertion = match self.config.apis.get(subscription.api) {
                    Some(config) => {
                        let caller = Caller {
                            token,
                            owner: &grant.owner,
                            scopes: &scopes,
                            api_index: subscription.api,
                            api: config,
                            tier,
                        };
                        self.backend_assertion(&caller, now).map_err(|_| Denial::unavailable())?
                    }
                    None => None,
                };
                (Some((api, tier)), quota, assertion)
            }
            None => (None, Vec::new(), None),
        };
        Ok(self.forward(Some(Identity { owner: grant.owner, scopes, api, upstream, quota, assertion })))
    }

    fn presented_token<'r>(
        &self,
        authorization: Option<&'r str>,
        hints: &dyn Fn() -> ChallengeHints<'a>,
    ) -> Result<&'r str, Denial> {
        match authorization.map(bearer_token) {
            None | Some(Err(BearerError::OtherScheme)) => {
                Err(Denial::new(DenyReason::MissingToken, self.bearer_challenge(&hints())))
            }
            Some(Err(BearerError::Malformed)) => {
                let description = "the Authorization header is malformed";
                Err(Denial::new(
                    DenyReason::InvalidRequest,
                    self.bearer_error(400, "invalid_request", description, None, &hints()),
                ))
            }
            Some(Ok(token)) => Ok(token),
        }
    }

    /// Why a token of `audience` may not be used on a resource of API `api` (RFC 8707): a
    /// bound token only where its audience names the API; an unbound one anywhere but an API
    /// that says `require_audience`. A resource outside every API (or of an API without an
    /// identifier) is in no audience, so only unbound tokens reach it.
    fn audience_refusal(&self, audience: &Audience, api: Option<usize>) -> Option<&'static str> {
        let api = api.and_then(|api| self.config.apis.get(api));
        let resource = api.and_then(|api| api.resource.as_deref());
        match resource {
            _ if audience.is_unbound() => api
                .is_some_and(|api| api.require_audience)
                .then_some("the access token was issued without a resource; this API requires its own"),
            Some(resource) if audience.names(resource) => None,
            _ => Some("the access token's audience does not include this resource"),
        }
    }

    /// What a challenge on API `api` tells the client: where its metadata is (RFC 9728 §5.1)
    /// and the scopes the resource needs (RFC 6750 §3), when there are any. A resource outside
    /// every API keeps the challenge it always had.
    fn challenge_hints(&self, api: Option<usize>, required: &[String]) -> ChallengeHints<'a> {
        let config: &'a Config = self.config;
        let Some(api) = api.and_then(|api| config.apis.get(api)) else { return ChallengeHints::default() };
        ChallengeHints {
            resource_metadata: api.resource_metadata_url.as_deref(),
            scope: (!required.is_empty()).then(|| required.join(" ")),
        }
    }

    /// The token's application's subscription to API `api`: 403 when there is none or it is
    /// blocked (for this key type: `prod_only_blocked` lets sandbox tokens through).
    fn subscription<'s>(
        &self,
        standing: &'s Standing<'_>,
        api: usize,
        key_type: KeyType,
    ) -> Result<&'s Subscription, Denial> {
        let subscription = standing.app.subscriptions.iter().find(|subscription| subscription.api == api);
        let name = self.config.apis.get(api).map_or("", |api| api.name.as_str());
        match subscription {
            None => {
                let description = format!("the application is not subscribed to the API {name}");
                let body = ErrorResponse::new("subscription_required", &description).to_json();
                Err(Denial::new(DenyReason::SubscriptionRequired, json_response(403, Vec::new(), body)))
            }
            Some(subscription) if blocks(subscription.state, key_type) => {
                let description = format!("the application's subscription to the API {name} is blocked");
                let body = ErrorResponse::new("subscription_blocked", &description).to_json();
                Err(Denial::new(DenyReason::SubscriptionBlocked, json_response(403, Vec::new(), body)))
            }
            Some(subscription) => Ok(subscription),
        }
    }

    /// Where a token of `key_type` goes for API `api`: the cluster the API names for it, or
    /// (production) the route's own. WSO2 refuses a sandbox key for an API without a sandbox
    /// endpoint, so nobody's sandbox token ever reaches production.
    fn upstream(&self, api: usize, key_type: KeyType) -> Result<Option<&str>, Denial> {
        let Some(api) = self.config.apis.get(api) else { return Ok(None) };
        match key_type {
            KeyType::Production => Ok(api.production_upstream.as_deref()),
            KeyType::Sandbox => match api.sandbox_upstream.as_deref() {
                Some(cluster) => Ok(Some(cluster)),
                None => Err(sandbox_not_served(&format!(
                    "the API {} has no sandbox upstream: call it with a production token",
                    api.name
                ))),
            },
        }
    }

    /// The subscription's tier: 429 with the IETF ratelimit headers (and Kong's) when this
    /// window's requests are used up; otherwise the API and tier to forward, and, once half
    /// of a rated tier's window is used, the ratelimit headers the response gets.
    #[allow(clippy::type_complexity)]
    fn throttle<'s>(
        &'s self,
        subscription: &'s Subscription,
        now: u64,
    ) -> Result<(&'s str, &'s str, Vec<(&'static str, String)>), Denial> {
        let api = self.config.apis.get(subscription.api).map_or("", |api| api.name.as_str());
        let tier = &subscription.tier;
        let (Some((limit, unit)), Some(counter)) = (tier.rate, subscription.counter) else {
            return Ok((api, tier.name.as_str(), Vec::new()));
        };
        let window = unit.millis() / 1000;
        let policy = || ("ratelimit-policy", format!("\"{}\";q={limit};w={window}", tier.name));
        match admit(self.coordination, counter, limit, unit, now) {
            // Each response header is a host call (about 6,000 instructions): they go out once
            // half the window's requests are used, when a client has a reason to slow down.
            Admission::Allowed { remaining, .. } if remaining > limit / 2 => {
                Ok((api, tier.name.as_str(), Vec::new()))
            }
            Admission::Allowed { remaining, reset_secs } => {
                let left = ("ratelimit", format!("\"{}\";r={remaining};t={reset_secs}", tier.name));
                Ok((api, tier.name.as_str(), vec![policy(), left]))
            }
            Admission::Throttled { reset_secs } => {
                let headers = vec![
                    ("retry-after", reset_secs.to_string()),
                    policy(),
                    ("ratelimit", format!("\"{}\";r=0;t={reset_secs}", tier.name)),
                    ("x-ratelimit-limit", limit.to_string()),
                    ("x-ratelimit-remaining", "0".to_owned()),
                ];
                let description =
                    format!("the {} tier allows {limit} requests per {}", tier.name, unit.name());
                let body = ErrorResponse::new("throttled", &description).to_json();
                Err(Denial::new(DenyReason::Throttled, json_response(429, headers, body)))
            }
        }
    }

    fn forward(&self, identity: Option<Identity<'_>>) -> Forward {
        let remove_headers = match (self.config.forward_authorization, self.config.forward_method_overrides) {
            (false, false) => STRIP_ALL,
            (true, false) => STRIP_KEEPING_AUTHORIZATION,
            (false, true) => STRIP_KEEPING_OVERRIDES,
            (true, true) => STRIP_IDENTITY_ONLY,
        };
        let mut set_headers = Vec::with_capacity(7);
        let mut response_headers = Vec::new();
        if let Some(Identity { owner, scopes, api, upstream, quota, assertion }) = identity {
            response_headers = quota;
            set_headers.push((CLIENT_ID_HEADER, owner.client_id));
            if let Some((username, _)) = owner.user {
                set_headers.push((USERNAME_HEADER, username));
            }
            // An empty header would only cost a host call: a scope-less token sends none (and
            // a client's copy is removed like every identity header).
            if !scopes.is_empty() {
                set_headers.push((SCOPE_HEADER, scopes));
            }
            if let Some((api, tier)) = api {
                set_headers.push((API_HEADER, api.to_owned()));
                set_headers.push((TIER_HEADER, tier.to_owned()));
            }
            if let Some(cluster) = upstream {
                set_headers.push((UPSTREAM_HEADER, cluster.to_owned()));
            }
            if let Some(assertion) = assertion {
                set_headers.push((ASSERTION_HEADER, assertion));
            }
        }
        Forward { remove_headers, set_headers, response_headers }
    }

    /// RFC 6750 §3: no credentials, so no error code, just the challenge.
    pub(super) fn bearer_challenge(&self, hints: &ChallengeHints) -> Response {
        let mut challenge = format!("Bearer realm=\"{}\"", self.config.realm);
        hints.append_to(&mut challenge);
        Response { status: 401, headers: vec![("www-authenticate", challenge)], body: Vec::new() }
    }

    /// An error challenge (RFC 6750 §3.1); `scope` is the one a 403 `insufficient_scope`
    /// names, in the challenge and the body.
    pub(super) fn bearer_error(
        &self,
        status: u16,
        code: &str,
        description: &str,
        scope: Option<String>,
        hints: &ChallengeHints,
    ) -> Response {
        let mut challenge = format!(
            "Bearer realm=\"{}\", error=\"{code}\", error_description=\"{description}\"",
            self.config.realm
        );
        if let Some(scope) = &scope {
            challenge.push_str(&format!(", scope=\"{scope}\""));
        }
        hints.append_to(&mut challenge);
        let body = ErrorResponse { scope, ..ErrorResponse::new(code, description) };
        json_response(status, vec![("www-authenticate", challenge)], body.to_json())
    }
}

/// The parameters a challenge on an API adds after the error's.
#[derive(Default)]
pub(super) struct ChallengeHints<'c> {
    /// RFC 9728 §5.1: the URL of the API's protected resource metadata.
    resource_metadata: Option<&'c str>,
    /// RFC 6750 §3: the scopes the resource needs (an `insufficient_scope` names its own).
    scope: Option<String>,
}

impl ChallengeHints<'_> {
    fn append_to(&self, challenge: &mut String) {
        if let Some(url) = self.resource_metadata {
            challenge.push_str(&format!(", resource_metadata=\"{url}\""));
        }
        if let Some(scope) = &self.scope {
            challenge.push_str(&format!(", scope=\"{scope}\""));
        }
    }
}

/// WSO2's subscription states against a token's key type.
pub(super) fn blocks(state: SubscriptionState, key_type: KeyType) -> bool {
    match state {
        SubscriptionState::Active => false,
        SubscriptionState::Blocked => true,
        SubscriptionState::ProdOnlyBlocked => key_type == KeyType::Production,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum BearerError {
    OtherScheme,
    Malformed,
}

/// The token of `Authorization: Bearer <b64token>` (RFC 6750 §2.1), scheme in any case.
pub(super) fn bearer_token(header: &str) -> Result<&str, BearerError> {
    // Byte-wise: the `char` pattern searches cost more than the rest of this check.
    let scheme_end = header.bytes().position(|b| b == b' ').unwrap_or(header.len());
    let (scheme, rest) = header.split_at_checked(scheme_end).unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::OtherScheme);
    }
    let token = rest.trim_matches(|c| c == ' ');
    if is_b64token(token) {
        Ok(token)
    } else {
        Err(BearerError::Malformed)
    }
}

/// 403 `sandbox_not_served`: a sandbox token where no sandbox upstream is (WSO2 refuses a
/// sandbox key for an API without a sandbox endpoint), so no sandbox token reaches production.
fn sandbox_not_served(description: &str) -> Denial {
    let body = ErrorResponse::new("sandbox_not_served", description).to_json();
    Denial::new(DenyReason::SubscriptionBlocked, json_response(403, Vec::new(), body))
}
