//! The stats the filter publishes through proxy-wasm metrics (Envoy's `/stats`).
//!
//! Envoy 1.40 shows custom wasm metrics as `wasmcustom.tokengate.tokens_issued.password` in
//! `/stats` and as `tokengate_tokens_issued_password` in `/stats/prometheus`. Counters and
//! gauges are process-wide: every worker's VM adds to the same one.

use crate::oauth::grant_type::GrantType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// Why a request to a resource was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    MissingToken,
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
    NoSuchResource,
    /// The token's application is not subscribed to the resource's API.
    SubscriptionRequired,
    /// Its subscription is blocked (for this key type).
    SubscriptionBlocked,
    /// Its subscription's tier allows no more requests in this window.
    Throttled,
}

/// What is counted per API: the APIs come from the config, so their number (and
/// these stats') is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiStat {
    /// 429: the subscription's tier allowed no more requests.
    Throttled,
    /// 403: no subscription, a blocked one, or a sandbox token for an API without sandbox.
    SubscriptionDenied,
}

/// What every per-API stat's name starts with.
const PER_API_PREFIX: &str = "tokengate.api";

impl ApiStat {
    pub const ALL: [ApiStat; 2] = [ApiStat::Throttled, ApiStat::SubscriptionDenied];

    /// `tokengate.api.<API name>.throttled` and `.subscription_denied`.
    pub fn name_for(self, api: &str) -> String {
        let stat = match self {
            ApiStat::Throttled => "throttled",
            ApiStat::SubscriptionDenied => "subscription_denied",
        };
        format!("{PER_API_PREFIX}.{api}.{stat}")
    }

    /// Its place among one API's stats.
    pub fn index(self) -> usize {
        match self {
            ApiStat::Throttled => 0,
            ApiStat::SubscriptionDenied => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    TokensIssued(GrantType),
    /// `/token` requests answered with an error.
    TokenErrors,
    RefreshReuseDetected,
    RequestsAllowed,
    RequestsDenied(DenyReason),
    Revocations,
    Introspections,
    Registrations,
    /// `/token` refused because the store had no room.
    StoreFull,
    /// Gauge: live grants in the store (changes as grants are added, revoked and swept).
    StoreGrants,
    /// Gauge: how many grants the store can hold.
    StoreCapacity,
    /// Gauge: applications added by dynamic client registration.
    RegisteredClients,
    /// Gauge (fleet mode): when this Envoy's etcd watch last heard from etcd, in ms since the
    /// Unix epoch. Workers read it to know whether their cache may answer alone.
    FleetWatchHeartbeat,
    /// Fleet mode: etcd calls that failed or timed out (each answered 503).
    FleetEtcdFailures,
    /// Fleet mode: decisions that ran again on fresh values from etcd: another replica changed
    /// what they read, or this replica had not cached it yet (a first read of a bucket).
    FleetConflicts,
    /// PBKDF2 checks run at the login form (unknown usernames' decoys included).
    SignInSlowHashes,
    /// Login form posts refused (503) because this worker's PBKDF2 budget for the second was
    /// spent (see [`crate::state::hash_budget`]).
    SignInBusy,
    /// Counter per API (by its index in the config), defined at configure time; not in
    /// [`Metric::ALL`], whose stats every config has.
    Api {
        api: usize,
        stat: ApiStat,
    },
}

impl Metric {
    pub const ALL: [Metric; 27] = [
        Metric::TokensIssued(GrantType::ClientCredentials),
        Metric::TokensIssued(GrantType::Password),
        Metric::TokensIssued(GrantType::RefreshToken),
        Metric::TokenErrors,
        Metric::RefreshReuseDetected,
        Metric::RequestsAllowed,
        Metric::RequestsDenied(DenyReason::MissingToken),
        Metric::RequestsDenied(DenyReason::InvalidRequest),
        Metric::RequestsDenied(DenyReason::InvalidToken),
        Metric::RequestsDenied(DenyReason::InsufficientScope),
        Metric::RequestsDenied(DenyReason::NoSuchResource),
        Metric::Revocations,
        Metric::Introspections,
        Metric::Registrations,
        Metric::StoreFull,
        Metric::StoreGrants,
        Metric::StoreCapacity,
        Metric::RegisteredClients,
        Metric::FleetWatchHeartbeat,
        Metric::FleetEtcdFailures,
        Metric::FleetConflicts,
        Metric::TokensIssued(GrantType::AuthorizationCode),
        Metric::RequestsDenied(DenyReason::SubscriptionRequired),
        Metric::RequestsDenied(DenyReason::SubscriptionBlocked),
        Metric::RequestsDenied(DenyReason::Throttled),
        Metric::SignInSlowHashes,
        Metric::SignInBusy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::TokensIssued(GrantType::ClientCredentials) => {
                "tokengate.tokens_issued.client_credentials"
            }
            Metric::TokensIssued(GrantType::Password) => "tokengate.tokens_issued.password",
            Metric::TokensIssued(GrantType::RefreshToken) => "tokengate.tokens_issued.refresh_token",
            Metric::TokensIssued(GrantType::AuthorizationCode) => {
                "tokengate.tokens_issued.authorization_code"
            }
            Metric::TokenErrors => "tokengate.token_errors",
            Metric::RefreshReuseDetected => "tokengate.refresh_reuse_detected",
            Metric::RequestsAllowed => "tokengate.requests_allowed",
            Metric::RequestsDenied(DenyReason::MissingToken) => "tokengate.requests_denied.missing_token",
            Metric::RequestsDenied(DenyReason::InvalidRequest) => "tokengate.requests_denied.invalid_request",
            Metric::RequestsDenied(DenyReason::InvalidToken) => "tokengate.requests_denied.invalid_token",
            Metric::RequestsDenied(DenyReason::InsufficientScope) => {
                "tokengate.requests_denied.insufficient_scope"
            }
            Metric::RequestsDenied(DenyReason::NoSuchResource) => {
                "tokengate.requests_denied.no_such_resource"
            }
            Metric::Revocations => "tokengate.revocations",
            Metric::Introspections => "tokengate.introspections",
            Metric::Registrations => "tokengate.registrations",
            Metric::StoreFull => "tokengate.store_full",
            Metric::StoreGrants => "tokengate.store_grants",
            Metric::StoreCapacity => "tokengate.store_capacity",
            Metric::RegisteredClients => "tokengate.registered_clients",
            Metric::FleetWatchHeartbeat => "tokengate.fleet.watch_heartbeat_ms",
            Metric::FleetEtcdFailures => "tokengate.fleet.etcd_failures",
            Metric::FleetConflicts => "tokengate.fleet.conflicts",
            Metric::RequestsDenied(DenyReason::SubscriptionRequired) => {
                "tokengate.requests_denied.subscription_required"
            }
            Metric::RequestsDenied(DenyReason::SubscriptionBlocked) => {
                "tokengate.requests_denied.subscription_blocked"
            }
            Metric::RequestsDenied(DenyReason::Throttled) => "tokengate.requests_denied.throttled",
            Metric::SignInSlowHashes => "tokengate.sign_in.slow_hashes",
            Metric::SignInBusy => "tokengate.sign_in.busy",
            // Named by its API (`ApiStat::name_for`), defined apart: this is only their prefix.
            Metric::Api { .. } => PER_API_PREFIX,
        }
    }

    /// This metric's place in [`Metric::ALL`], so hosts can keep ids in an array: the request
    /// path updates a metric on every request. Exhaustive, so a new variant must get one.
    pub fn index(self) -> usize {
        match self {
            Metric::TokensIssued(GrantType::ClientCredentials) => 0,
            Metric::TokensIssued(GrantType::Password) => 1,
            Metric::TokensIssued(GrantType::RefreshToken) => 2,
            Metric::TokenErrors => 3,
            Metric::RefreshReuseDetected => 4,
            Metric::RequestsAllowed => 5,
            Metric::RequestsDenied(DenyReason::MissingToken) => 6,
            Metric::RequestsDenied(DenyReason::InvalidRequest) => 7,
            Metric::RequestsDenied(DenyReason::InvalidToken) => 8,
            Metric::RequestsDenied(DenyReason::InsufficientScope) => 9,
            Metric::RequestsDenied(DenyReason::NoSuchResource) => 10,
            Metric::Revocations => 11,
            Metric::Introspections => 12,
            Metric::Registrations => 13,
            Metric::StoreFull => 14,
            Metric::StoreGrants => 15,
            Metric::StoreCapacity => 16,
            Metric::RegisteredClients => 17,
            Metric::FleetWatchHeartbeat => 18,
            Metric::FleetEtcdFailures => 19,
            Metric::FleetConflicts => 20,
            Metric::TokensIssued(GrantType::AuthorizationCode) => 21,
            Metric::RequestsDenied(DenyReason::SubscriptionRequired) => 22,
            Metric::RequestsDenied(DenyReason::SubscriptionBlocked) => 23,
            Metric::RequestsDenied(DenyReason::Throttled) => 24,
            Metric::SignInSlowHashes => 25,
            Metric::SignInBusy => 26,
            // Past the end of ALL: hosts keep per-API stats apart.
            Metric::Api { .. } => usize::MAX,
        }
    }

    pub fn kind(self) -> MetricKind {
        match self {
            Metric::StoreGrants
            | Metric::StoreCapacity
            | Metric::RegisteredClients
            | Metric::FleetWatchHeartbeat => MetricKind::Gauge,
            _ => MetricKind::Counter,
        }
    }
}

/// The gauges the filter reads back as state, not only publishes. Envoy's `stats_matcher`
/// can reject any stat by name, and a rejected gauge reads 0 whatever is written to it, so
/// each one a configuration relies on is probed when the configuration is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateGauge {
    /// When stored tokens last ended or changed (see `state::remembered`).
    TokenEpoch,
    /// When a secret check last failed (see `state::lockout`).
    FailureEpoch,
    /// A rated subscription's request count in its current window, by counter number (see
    /// `gateway::throttle`).
    TierWindow(usize),
    /// Fleet mode: when this Envoy's etcd watch last heard from etcd
    /// ([`Metric::FleetWatchHeartbeat`]).
    FleetHeartbeat,
}

impl StateGauge {
    /// The state gauges a configuration reads: the epochs always, a window per counter of its
    /// rated tiers, the watch's heartbeat in fleet mode. Those a configuration cannot do
    /// without come first.
    pub fn used_by(tier_windows: usize, fleet: bool) -> impl Iterator<Item = StateGauge> {
        (0..tier_windows)
            .map(StateGauge::TierWindow)
            .chain(fleet.then_some(StateGauge::FleetHeartbeat))
            .chain([StateGauge::TokenEpoch, StateGauge::FailureEpoch])
    }

    /// Its stat's name (Envoy shows it with a `wasmcustom.` prefix).
    pub fn name(self) -> String {
        match self {
            StateGauge::TokenEpoch => "tokengate.token_epoch".to_owned(),
            StateGauge::FailureEpoch => "tokengate.failure_epoch".to_owned(),
            StateGauge::TierWindow(counter) => format!("tokengate.tier_window.{counter}"),
            StateGauge::FleetHeartbeat => Metric::FleetWatchHeartbeat.name().to_owned(),
        }
    }

    /// What a configuration would silently lose if Envoy rejected it, when that is reason to
    /// refuse the configuration; `None` when the filter does without it (its workers then
    /// remember no validated token and no failure, and read the store every time).
    pub fn needed_because(self) -> Option<&'static str> {
        match self {
            StateGauge::TierWindow(_) => Some("rated tiers count requests in it, so none would be throttled"),
            StateGauge::FleetHeartbeat => {
                Some("workers read the etcd watch's heartbeat from it, so none could answer from its cache")
            }
            StateGauge::TokenEpoch | StateGauge::FailureEpoch => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_uses_the_gauges_it_reads_and_the_ones_it_needs_come_first() {
        let used: Vec<StateGauge> = StateGauge::used_by(2, true).collect();
        assert_eq!(
            used,
            [
                StateGauge::TierWindow(0),
                StateGauge::TierWindow(1),
                StateGauge::FleetHeartbeat,
                StateGauge::TokenEpoch,
                StateGauge::FailureEpoch
            ]
        );
        let local: Vec<StateGauge> = StateGauge::used_by(0, false).collect();
        assert_eq!(local, [StateGauge::TokenEpoch, StateGauge::FailureEpoch]);
        let needed = used.iter().take_while(|gauge| gauge.needed_because().is_some()).count();
        assert_eq!(needed, 3, "a gauge the configuration can do without came before one it needs");
        assert_eq!(StateGauge::TierWindow(7).name(), "tokengate.tier_window.7");
        assert_eq!(StateGauge::FleetHeartbeat.name(), Metric::FleetWatchHeartbeat.name());
    }

    #[test]
    fn names_are_unique_and_prometheus_friendly() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        assert!(names.iter().all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')));
    }

    #[test]
    fn every_metric_sits_at_its_index_in_all() {
        for (position, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(metric.index(), position, "{metric:?}");
        }
    }
}
