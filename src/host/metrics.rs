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

/// Declares [`ApiStat`] from one table: its variants in order (a variant's place is its
/// index among one API's stats, and in [`ApiStat::ALL`]) and each one's name after the API's.
macro_rules! api_stats {
    ($( $(#[doc = $doc:literal])* $variant:ident => $suffix:literal, )*) => {
        /// What is counted per API: the APIs come from the config, so their number (and
        /// these stats') is bounded.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ApiStat {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ApiStat {
            pub const ALL: [ApiStat; [$($suffix),*].len()] = [$(ApiStat::$variant),*];

            /// What its name ends with, after `tokengate.api.<API name>.`.
            pub fn suffix(self) -> &'static str {
                match self {
                    $( ApiStat::$variant => $suffix, )*
                }
            }
        }
    };
}

api_stats! {
    /// 429: the subscription's tier allowed no more requests.
    Throttled => "throttled",
    /// 403: no subscription, a blocked one, or a sandbox token for an API without sandbox.
    SubscriptionDenied => "subscription_denied",
}

/// What every per-API stat's name starts with.
const PER_API_PREFIX: &str = "tokengate.api";

impl ApiStat {
    /// `tokengate.api.<API name>.throttled` and `.subscription_denied`.
    pub fn name_for(self, api: &str) -> String {
        format!("{PER_API_PREFIX}.{api}.{}", self.suffix())
    }

    /// Its place among one API's stats.
    pub fn index(self) -> usize {
        self as usize
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
    /// Fleet mode with etcd's user/password authentication: etcd calls refused for an ended
    /// token (each sent again once with a new one). Zero while renewal keeps ahead of the TTL.
    FleetEtcdTokenRefusals,
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

/// Declares [`Metric::ALL`] and each stat's name, index and kind from one table. A row's place
/// is its index (hosts keep ids in an array by it: the request path updates a stat on every
/// request), so rows are only ever added at the end. `Slot` names each row's place; the
/// matches are exhaustive, so a new variant (or grant type, or deny reason) must get a row.
macro_rules! stats {
    ($( $slot:ident: $kind:ident = $variant:ident $(($arg:path))? => $name:literal; )*) => {
        /// Each row's place in [`Metric::ALL`].
        #[derive(Clone, Copy)]
        enum Slot {
            $( $slot, )*
        }

        impl Metric {
            pub const ALL: [Metric; [$(Slot::$slot),*].len()] = [$( Metric::$variant $(($arg))? ),*];

            pub fn name(self) -> &'static str {
                match self {
                    $( Metric::$variant $(($arg))? => $name, )*
                    // Named by its API (`ApiStat::name_for`), defined apart: this is only their prefix.
                    Metric::Api { .. } => PER_API_PREFIX,
                }
            }

            /// This metric's place in [`Metric::ALL`].
            pub fn index(self) -> usize {
                match self {
                    $( Metric::$variant $(($arg))? => Slot::$slot as usize, )*
                    // Past the end of ALL: hosts keep per-API stats apart.
                    Metric::Api { .. } => usize::MAX,
                }
            }

            pub fn kind(self) -> MetricKind {
                match self {
                    $( Metric::$variant $(($arg))? => MetricKind::$kind, )*
                    Metric::Api { .. } => MetricKind::Counter,
                }
            }
        }
    };
}

#[rustfmt::skip]
stats! {
    ClientCredentialsIssued: Counter = TokensIssued(GrantType::ClientCredentials) => "tokengate.tokens_issued.client_credentials";
    PasswordIssued: Counter = TokensIssued(GrantType::Password) => "tokengate.tokens_issued.password";
    RefreshIssued: Counter = TokensIssued(GrantType::RefreshToken) => "tokengate.tokens_issued.refresh_token";
    TokenErrors: Counter = TokenErrors => "tokengate.token_errors";
    RefreshReuseDetected: Counter = RefreshReuseDetected => "tokengate.refresh_reuse_detected";
    RequestsAllowed: Counter = RequestsAllowed => "tokengate.requests_allowed";
    MissingToken: Counter = RequestsDenied(DenyReason::MissingToken) => "tokengate.requests_denied.missing_token";
    InvalidRequest: Counter = RequestsDenied(DenyReason::InvalidRequest) => "tokengate.requests_denied.invalid_request";
    InvalidToken: Counter = RequestsDenied(DenyReason::InvalidToken) => "tokengate.requests_denied.invalid_token";
    InsufficientScope: Counter = RequestsDenied(DenyReason::InsufficientScope) => "tokengate.requests_denied.insufficient_scope";
    NoSuchResource: Counter = RequestsDenied(DenyReason::NoSuchResource) => "tokengate.requests_denied.no_such_resource";
    Revocations: Counter = Revocations => "tokengate.revocations";
    Introspections: Counter = Introspections => "tokengate.introspections";
    Registrations: Counter = Registrations => "tokengate.registrations";
    StoreFull: Counter = StoreFull => "tokengate.store_full";
    StoreGrants: Gauge = StoreGrants => "tokengate.store_grants";
    StoreCapacity: Gauge = StoreCapacity => "tokengate.store_capacity";
    RegisteredClients: Gauge = RegisteredClients => "tokengate.registered_clients";
    FleetWatchHeartbeat: Gauge = FleetWatchHeartbeat => "tokengate.fleet.watch_heartbeat_ms";
    FleetEtcdFailures: Counter = FleetEtcdFailures => "tokengate.fleet.etcd_failures";
    FleetConflicts: Counter = FleetConflicts => "tokengate.fleet.conflicts";
    FleetEtcdTokenRefusals: Counter = FleetEtcdTokenRefusals => "tokengate.fleet.etcd_token_refusals";
    AuthorizationCodeIssued: Counter = TokensIssued(GrantType::AuthorizationCode) => "tokengate.tokens_issued.authorization_code";
    SubscriptionRequired: Counter = RequestsDenied(DenyReason::SubscriptionRequired) => "tokengate.requests_denied.subscription_required";
    SubscriptionBlocked: Counter = RequestsDenied(DenyReason::SubscriptionBlocked) => "tokengate.requests_denied.subscription_blocked";
    Throttled: Counter = RequestsDenied(DenyReason::Throttled) => "tokengate.requests_denied.throttled";
    SignInSlowHashes: Counter = SignInSlowHashes => "tokengate.sign_in.slow_hashes";
    SignInBusy: Counter = SignInBusy => "tokengate.sign_in.busy";
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

    /// docs/stats.md is where an operator looks a stat up: every stat the filter defines is in
    /// it, by its name without `tokengate.`, or as `.last` after its family's first row.
    #[test]
    fn every_stat_is_on_the_stats_page() {
        let page = include_str!("../../docs/stats.md");
        let named = |name: &str| {
            let last = name.rsplit('.').next().unwrap_or(name);
            page.contains(&format!("`{name}")) || page.contains(&format!("`.{last}`"))
        };
        // Per API, by the full name: `.throttled` alone is the total's row.
        let per_api: Vec<String> = ApiStat::ALL
            .map(|stat| stat.name_for("<API name>"))
            .into_iter()
            .filter(|name| !page.contains(&format!("`{}`", name.trim_start_matches("tokengate."))))
            .collect();
        assert!(per_api.is_empty(), "docs/stats.md does not name {per_api:?}");
        let gauges = [StateGauge::TokenEpoch, StateGauge::FailureEpoch, StateGauge::FleetHeartbeat]
            .map(StateGauge::name)
            .into_iter()
            .chain(["tokengate.tier_window.<n>".to_owned()]);
        let names = Metric::ALL.map(|metric| metric.name().to_owned()).into_iter().chain(gauges);
        let missing: Vec<String> =
            names.filter(|name| !named(name.strip_prefix("tokengate.").unwrap_or(name))).collect();
        assert!(missing.is_empty(), "docs/stats.md does not name {missing:?}");
    }

    #[test]
    fn per_api_stats_sit_at_their_index_in_all() {
        for (position, stat) in ApiStat::ALL.iter().enumerate() {
            assert_eq!(stat.index(), position, "{stat:?}");
        }
        let name = ApiStat::SubscriptionDenied.name_for("orders");
        assert_eq!(name, format!("{PER_API_PREFIX}.orders.subscription_denied"));
    }

    #[test]
    fn every_metric_sits_at_its_index_in_all() {
        for (position, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(metric.index(), position, "{metric:?}");
        }
    }
}
