//! APIs, throttling tiers and subscriptions (WSO2's model): which application may call which
//! group of resources, and how often.
//!
//! The flat `resources` list stays one implicit API that needs no subscription and is never
//! throttled, so a config without `apis` checks tokens and scopes only.

use foldhash::{HashMap, HashMapExt};

use super::error::{problem, ConfigError};
use super::parts::{Api, Application, BackendJwt, Subscription, SubscriptionState, Tier, TierUnit};
use super::raw::{RawApi, RawBackendJwt, RawOpenSubscription, RawSubscription, RawTier};
use crate::oauth::resource_indicator::{is_resource_uri, MAX_RESOURCE_URI_BYTES};
use crate::oauth::RESOURCE_METADATA_PATH;
use crate::state::registry::{RegisteredState, RegisteredSubscription};

/// The subscriptions with a rate, each counting in its own window counter (a gauge per
/// subscription, defined when the filter is configured): bounded, so stats stay bounded.
pub const MAX_COUNTERS: usize = 1024;
/// Window counters registered applications' rated subscriptions share at most, per tier
/// period (second, minute, hour, day).
const MAX_REGISTERED_COUNTERS_PER_PERIOD: usize = 64;
/// Tier periods: each has its own part of the registered counters.
const PERIODS: usize = 4;

/// How many window counters registered applications share: for each tier period, one per
/// registered application the registry may hold, at most
/// [`MAX_REGISTERED_COUNTERS_PER_PERIOD`].
pub(super) fn registered_counters(capacity: u32) -> usize {
    let per_period = usize::try_from(capacity)
        .unwrap_or(MAX_REGISTERED_COUNTERS_PER_PERIOD)
        .min(MAX_REGISTERED_COUNTERS_PER_PERIOD);
    per_period * PERIODS
}

/// The shared window counter (of `count`) that a registered application's subscription to
/// `api` with a tier of `period` counts in: FNV-1a of both names, the same in every worker,
/// within the part of the counters kept for that period. Two subscriptions that land on the
/// same counter share its window, so each may be throttled early, never late; only tiers of
/// one period share a counter, since a counter's window number means nothing to another
/// period (sharing across periods would restart each other's windows and admit too many).
pub fn registered_counter(client_id: &str, api: &str, period: TierUnit, count: usize) -> Option<usize> {
    let hash =
        client_id.bytes().chain([0]).chain(api.bytes()).fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let per_period = count / PERIODS;
    let slots = u64::try_from(per_period).ok().filter(|slots| *slots > 0)?;
    let period_index = match period {
        TierUnit::Second => 0,
        TierUnit::Minute => 1,
        TierUnit::Hour => 2,
        TierUnit::Day => 3,
    };
    let slot = usize::try_from(hash % slots).ok()?;
    Some(period_index * per_period + slot)
}

/// APIs a config may declare (each gets no stat of its own: denials are counted in totals).
const MAX_APIS: usize = 256;

/// WSO2's default subscription tiers.
fn built_in_tiers() -> [Tier; 4] {
    let tier = |name: &str, rate| Tier { name: name.to_owned(), rate };
    [
        tier("Bronze", Some((1000, TierUnit::Minute))),
        tier("Silver", Some((2000, TierUnit::Minute))),
        tier("Gold", Some((5000, TierUnit::Minute))),
        tier("Unlimited", None),
    ]
}

/// The built-in tiers and the operator's, by name; no name twice.
pub(super) fn tiers(raw: Vec<RawTier>) -> Result<HashMap<String, Tier>, ConfigError> {
    let mut tiers: HashMap<String, Tier> =
        built_in_tiers().into_iter().map(|tier| (tier.name.clone(), tier)).collect();
    for (i, tier) in raw.into_iter().enumerate() {
        let at = format!("tiers[{i}]");
        check_label(&format!("{at}.name"), &tier.name)?;
        if tier.requests == 0 {
            return Err(problem(format!("{at}.requests"), "must be at least 1"));
        }
        let entry = Tier { name: tier.name.clone(), rate: Some((tier.requests, tier.per)) };
        if tiers.insert(tier.name, entry).is_some() {
            return Err(problem(format!("{at}.name"), "names a tier already defined (or built in)"));
        }
    }
    Ok(tiers)
}

/// The APIs, and each one's resources with their paths under its context; each API's resource
/// identifier is its own or one derived from `issuer` ([`derived_resource`]). `can_sign`: the
/// config has `signing` keys, which a backend JWT needs.
pub(super) fn apis(raw: &[RawApi], issuer: Option<&str>, can_sign: bool) -> Result<Vec<Api>, ConfigError> {
    if raw.len() > MAX_APIS {
        return Err(problem("apis", format!("at most {MAX_APIS} APIs")));
    }
    let mut apis: Vec<Api> = Vec::with_capacity(raw.len());
    for (i, api) in raw.iter().enumerate() {
        let at = format!("apis[{i}]");
        check_label(&format!("{at}.name"), &api.name)?;
        check_label(&format!("{at}.version"), &api.version)?;
        let context = &api.context;
        let plain = context.bytes().all(|b| b.is_ascii_graphic() && !b"?#{}*;%".contains(&b));
        if !context.starts_with('/') || context.len() < 2 || context.ends_with('/') || !plain {
            return Err(problem(format!("{at}.context"), "must be a path like /orders/1.0.0"));
        }
        if apis.iter().any(|other| other.name == api.name) {
            return Err(problem(format!("{at}.name"), "two APIs have this name"));
        }
        if apis.iter().any(|other| other.context == *context) {
            return Err(problem(format!("{at}.context"), "two APIs have this context"));
        }
        // A path under both contexts would fall into the shorter one's `/*` (or `/{id}`) when
        // the longer API has no exact match (`/orders/1.0.0/ITEMS`), and skip the longer
        // API's subscription and tier: no context may be another's prefix, segment-wise.
        let overlapping =
            apis.iter().enumerate().find(|(_, other)| contexts_overlap(&other.context, context));
        if let Some((j, other)) = overlapping {
            return Err(problem(
                format!("{at}.context"),
                format!(
                    "overlaps the context of apis[{j}] ({}): no context may be a path under another",
                    other.name
                ),
            ));
        }
        for (field, upstream) in
            [("production_upstream", &api.production_upstream), ("sandbox_upstream", &api.sandbox_upstream)]
        {
            // A cluster name goes into a request header that Envoy routes on.
            if upstream.as_ref().is_some_and(|name| check_label(&format!("{at}.{field}"), name).is_err()) {
                return Err(problem(
                    format!("{at}.{field}"),
                    "an Envoy cluster name: 1 to 64 letters, digits, '-', '_', '.' or ':'",
                ));
            }
        }
        let resource = resource_identifier(&at, api, issuer, &apis)?;
        let backend_jwt = match &api.backend_jwt {
            Some(raw) if raw.enabled => {
                Some(backend_jwt(&at, raw, issuer, can_sign, resource.as_deref().unwrap_or(context))?)
            }
            _ => None,
        };
        apis.push(Api {
            name: api.name.clone(),
            version: api.version.clone(),
            context: context.clone(),
            production_upstream: api.production_upstream.clone(),
            sandbox_upstream: api.sandbox_upstream.clone(),
            resource_metadata_url: resource.as_deref().and_then(resource_metadata_url),
            resource,
            require_audience: api.require_audience,
            backend_jwt,
        });
    }
    Ok(apis)
}

/// Shortest and longest backend JWT lifetimes: an assertion is reused until
/// `BACKEND_JWT_REUSE_MARGIN_SECS` (`gateway/backend_jwt.rs`) before its `exp`, so a shorter one would
/// be signed on nearly every request; a longer one would outlive a revoked token by too much.
const BACKEND_JWT_LIFETIMES: std::ops::RangeInclusive<u64> = 60..=3600;

/// An enabled backend JWT: it is signed (so `signing` is needed), names its issuer (RFC 7519
/// §4.1.1, so `issuer` is needed) and has `audience` (the API's resource, else its context).
fn backend_jwt(
    at: &str,
    raw: &RawBackendJwt,
    issuer: Option<&str>,
    can_sign: bool,
    audience: &str,
) -> Result<BackendJwt, ConfigError> {
    let field = format!("{at}.backend_jwt");
    if !can_sign {
        return Err(problem(field, "needs signing keys (the signing section) to sign the assertion"));
    }
    if issuer.is_none() {
        return Err(problem(field, "needs an issuer, which the assertion names as its iss"));
    }
    if !BACKEND_JWT_LIFETIMES.contains(&raw.lifetime_seconds) {
        return Err(problem(
            format!("{field}.lifetime_seconds"),
            format!("must be {} to {} seconds", BACKEND_JWT_LIFETIMES.start(), BACKEND_JWT_LIFETIMES.end()),
        ));
    }
    Ok(BackendJwt { audience: audience.to_owned(), lifetime_secs: raw.lifetime_seconds })
}

/// The API's resource identifier: the configured one, or the issuer's scheme and authority
/// followed by the context. Each is an absolute URI without a fragment (RFC 8707 §2), no two
/// APIs share one, nor the path its protected resource metadata is served at (RFC 9728 §3.1).
fn resource_identifier(
    at: &str,
    api: &RawApi,
    issuer: Option<&str>,
    earlier: &[Api],
) -> Result<Option<String>, ConfigError> {
    let field = format!("{at}.resource");
    let resource = match (&api.resource, issuer) {
        (Some(resource), _) => resource.clone(),
        (None, Some(issuer)) => derived_resource(issuer, &api.context),
        (None, None) if api.require_audience => {
            return Err(problem(field, "require_audience needs a resource (or an issuer to derive it from)"));
        }
        (None, None) => return Ok(None),
    };
    if !is_resource_uri(&resource) {
        return Err(problem(
            field,
            format!("must be an absolute URI without a fragment, at most {MAX_RESOURCE_URI_BYTES} bytes"),
        ));
    }
    // RFC 8707 §2 advises against a query; without one, the metadata URL is path only.
    if resource.contains('?') {
        return Err(problem(field, "must have no query (RFC 8707 §2)"));
    }
    let Some(path) = metadata_suffix(&resource) else {
        return Err(problem(field, "must be a URL with an authority, like https://api.example.com/orders"));
    };
    for (j, other) in earlier.iter().enumerate() {
        let Some(other_resource) = other.resource.as_deref() else { continue };
        if other_resource == resource {
            return Err(problem(field, format!("is the resource of apis[{j}] too")));
        }
        if metadata_suffix(other_resource) == Some(path) {
            return Err(problem(
                field,
                format!("has the path of apis[{j}]'s resource: both metadata documents would share a URL"),
            ));
        }
    }
    Ok(Some(resource))
}

/// An API's default resource identifier: the issuer's scheme and authority, then the context
/// (`https://127.0.0.1:8243` and `/mcp` give `https://127.0.0.1:8243/mcp`).
pub(super) fn derived_resource(issuer: &str, context: &str) -> String {
    let origin_end = issuer
        .find("://")
        .map(|at| at + 3)
        .and_then(|authority| issuer.get(authority..)?.find('/').map(|end| authority + end))
        .unwrap_or(issuer.len());
    format!("{}{context}", issuer.get(..origin_end).unwrap_or(issuer))
}

/// What follows the well-known path in a resource's metadata URL (RFC 9728 §3.1): its path
/// (configured identifiers have no query); `None` for an identifier without an authority
/// (`urn:…`), which has no such URL.
pub fn metadata_suffix(resource: &str) -> Option<&str> {
    let (_, rest) = resource.split_once("://")?;
    let path_start = rest.find('/').unwrap_or(rest.len());
    let suffix = rest.get(path_start..)?;
    // A trailing '/' alone is no path (RFC 9728 §3.1: the root form).
    Some(if suffix == "/" { "" } else { suffix })
}

/// The URL of a resource's metadata (RFC 9728 §3.1): the well-known path between its
/// authority and its path (`https://h/mcp` → `https://h/.well-known/oauth-protected-resource/mcp`).
pub fn resource_metadata_url(resource: &str) -> Option<String> {
    let suffix = metadata_suffix(resource)?;
    let origin = resource.strip_suffix(suffix).unwrap_or(resource).trim_end_matches('/');
    Some(format!("{origin}{RESOURCE_METADATA_PATH}{suffix}"))
}

/// True when one context is the other or a path under it, segment by segment: `/orders` and
/// `/orders/1.0.0` overlap, `/orders` and `/orders2` do not. Contexts start with '/' and do
/// not end with one (checked before).
fn contexts_overlap(one: &str, other: &str) -> bool {
    let under = |longer: &str, shorter: &str| {
        longer.strip_prefix(shorter).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under(one, other) || under(other, one)
}

/// A resource's path under its API's context: `/` is the context itself. A path without its
/// leading '/' stays as it is, for the template check to refuse.
pub(super) fn full_path(context: &str, path: &str) -> String {
    if !path.starts_with('/') {
        path.to_owned()
    } else if path == "/" {
        context.to_owned()
    } else {
        format!("{context}{path}")
    }
}

/// Each configured application's subscriptions, by consumer key; every rated subscription
/// gets the next window counter.
pub(super) fn subscribe(
    applications: &mut HashMap<String, Application>,
    raw: Vec<(usize, String, Vec<RawSubscription>)>,
    apis: &[Api],
    tiers: &HashMap<String, Tier>,
) -> Result<usize, ConfigError> {
    let mut counters = 0usize;
    for (i, key, subscriptions) in raw {
        let mut taken: HashMap<usize, ()> = HashMap::new();
        let mut list = Vec::with_capacity(subscriptions.len());
        for (j, subscription) in subscriptions.into_iter().enumerate() {
            let at = format!("applications[{i}].subscriptions[{j}]");
            let Some(api) = apis.iter().position(|api| api.name == subscription.api) else {
                return Err(problem(format!("{at}.api"), "no API of this name in apis"));
            };
            let Some(tier) = tiers.get(&subscription.tier) else {
                return Err(problem(format!("{at}.tier"), "no tier of this name (built in or in tiers)"));
            };
            if taken.insert(api, ()).is_some() {
                return Err(problem(format!("{at}.api"), "subscribed to twice"));
            }
            let counter = match tier.rate {
                Some(_) if counters >= MAX_COUNTERS => {
                    return Err(problem(at, format!("more than {MAX_COUNTERS} rated subscriptions")));
                }
                Some(_) => {
                    counters += 1;
                    Some(counters - 1)
                }
                None => None,
            };
            list.push(Subscription { api, tier: tier.clone(), state: subscription.state, counter });
        }
        if let Some(app) = applications.get_mut(&key) {
            app.subscriptions = list;
        }
    }
    Ok(counters)
}

/// Names and versions go into headers and JSON: printable ASCII, no quotes or commas.
fn check_label(at: &str, label: &str) -> Result<(), ConfigError> {
    let fits = |b: u8| b.is_ascii_alphanumeric() || b"-_.:".contains(&b);
    if label.is_empty() || label.len() > 64 || !label.bytes().all(fits) {
        return Err(problem(at, "1 to 64 letters, digits, '-', '_', '.' or ':'"));
    }
    Ok(())
}

impl SubscriptionState {
    pub fn name(self) -> &'static str {
        match self {
            SubscriptionState::Active => "active",
            SubscriptionState::Blocked => "blocked",
            SubscriptionState::ProdOnlyBlocked => "prod_only_blocked",
        }
    }
}

/// `registration.open.subscriptions`: each names an API of `apis` once, with a known tier.
/// They are kept by name, like an administrator's subscriptions of a registered application,
/// and count in the registered applications' window counters.
pub(super) fn open_subscriptions(
    raw: Vec<RawOpenSubscription>,
    apis: &[Api],
    tiers: &HashMap<String, Tier>,
) -> Result<Vec<RegisteredSubscription>, ConfigError> {
    let mut list: Vec<RegisteredSubscription> = Vec::with_capacity(raw.len());
    for (i, subscription) in raw.into_iter().enumerate() {
        let at = format!("registration.open.subscriptions[{i}]");
        if !apis.iter().any(|api| api.name == subscription.api) {
            return Err(problem(format!("{at}.api"), "no API of this name in apis"));
        }
        if !tiers.contains_key(&subscription.tier) {
            return Err(problem(format!("{at}.tier"), "no tier of this name (built in or in tiers)"));
        }
        if list.iter().any(|taken| taken.api == subscription.api) {
            return Err(problem(format!("{at}.api"), "subscribed to twice"));
        }
        list.push(RegisteredSubscription {
            api: subscription.api,
            tier: subscription.tier,
            state: RegisteredState::Unblocked,
        });
    }
    Ok(list)
}
