//! Envoy's implementations of the [`crate::host`] traits.

use std::cell::{Cell, RefCell};
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, MetricType, Status};

use crate::gateway::Host;
use crate::host::header_pairs::HeaderPairs;
use crate::host::metrics::{ApiStat, Metric, MetricKind, StateGauge};
use crate::host::{Clock, Connection, Coordination, Metrics, SharedStore, StoreError, SystemRandomness};
use crate::state::credential_changes::CredentialChanges;
use crate::state::lockout;
use crate::state::login_handle::KeyMemory;

/// This VM's copy of the login handles' key (each VM is its own instance, so a static is one
/// per VM): read once, it spares every login page a shared-data read.
pub static LOGIN_KEY: KeyMemory = KeyMemory::new();

/// Where a decision reads and writes: this Envoy's shared data (local mode) or a pass over its
/// cache of etcd (fleet mode), the stats it reports, and the credential-change record it
/// judges tokens by.
pub struct Backing<'b> {
    pub shared: &'b dyn SharedStore,
    pub metrics: &'b dyn Metrics,
    pub coordination: &'b dyn Coordination,
    pub credential_changes: &'b CredentialChanges,
    /// The clock the decision judges by (a fleet decision's reads it once).
    pub clock: &'b dyn Clock,
}

impl<'b> Backing<'b> {
    /// Local mode, and every root-context job: this Envoy's shared data.
    pub fn local(metrics: &'b EnvoyMetrics, credential_changes: &'b CredentialChanges) -> Self {
        Backing {
            shared: &EnvoySharedData,
            metrics,
            coordination: metrics,
            credential_changes,
            clock: &EnvoyClock,
        }
    }
}

/// The gateway's host in Envoy over `backing`: the clock, WASI randomness, the record
/// generation this VM's config belongs to, and the request's connection
/// ([`crate::host::NoConnection`] outside a request). Every gateway the filter makes is built here.
pub fn envoy_host<'h>(
    backing: Backing<'h>,
    config_generation: &'h Cell<u64>,
    connection: &'h dyn Connection,
) -> Host<'h> {
    Host {
        shared: backing.shared,
        random: &SystemRandomness,
        clock: backing.clock,
        metrics: backing.metrics,
        coordination: backing.coordination,
        credential_changes: backing.credential_changes,
        process_shared: &EnvoySharedData,
        connection,
        config_generation,
        login_key: &LOGIN_KEY,
    }
}

/// The request's downstream connection, asked through Envoy's `connection.id` attribute.
pub struct EnvoyConnection;

impl Connection for EnvoyConnection {
    /// The attribute is a uint64, handed over as 8 bytes in the host's (little-endian) order.
    fn id(&self) -> Option<u64> {
        let bytes = hostcalls::get_property(vec!["connection", "id"]).ok().flatten()?;
        Some(u64::from_le_bytes(bytes.as_slice().try_into().ok()?))
    }
}

/// Proxy-wasm shared data: one map per `vm_id`, seen by every worker thread.
pub struct EnvoySharedData;

thread_local! {
    /// The failure limiter's hash key once this VM has read it: it is written once and never
    /// changes (see `state::lockout::KEY`), and reading it is a shared-data read (about
    /// 11,000 instructions) that every `/token` request would otherwise pay.
    static LIMITER_KEY: RefCell<Option<(Vec<u8>, u32)>> = const { RefCell::new(None) };
}

impl SharedStore for EnvoySharedData {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        if key != lockout::KEY {
            return read_shared_data(key);
        }
        if let Some(kept) = LIMITER_KEY.with(|kept| kept.borrow().clone()) {
            return Ok(Some(kept));
        }
        let read = read_shared_data(key)?;
        if let Some(value) = &read {
            LIMITER_KEY.with(|kept| *kept.borrow_mut() = Some(value.clone()));
        }
        Ok(read)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), Some(cas)) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Unavailable),
        }
    }
}

fn read_shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
    match hostcalls::get_shared_data(key) {
        Ok((None, None)) => Ok(None),
        // A key written with an empty value exists: its cas is what a later write needs.
        Ok((value, Some(cas))) => Ok(Some((value.unwrap_or_default(), cas))),
        Ok((Some(value), None)) => Ok(Some((value, 0))),
        Err(_) => Err(StoreError::Unavailable),
    }
}

/// Envoy's wall clock.
pub struct EnvoyClock;

impl Clock for EnvoyClock {
    fn now_millis(&self) -> Option<u64> {
        let since_epoch = hostcalls::get_current_time().ok()?.duration_since(UNIX_EPOCH).ok()?;
        u64::try_from(since_epoch.as_millis()).ok()
    }
}

/// Proxy-wasm metrics: defined once per VM; Envoy keeps one stat per name for the process.
pub struct EnvoyMetrics {
    /// By [`Metric::index`].
    ids: [u32; Metric::ALL.len()],
    /// The subscriptions' window counters (gauges `tokengate.tier_window.<n>`), by number.
    windows: Vec<u32>,
    /// Per API, its counters by [`ApiStat::index`].
    apis: Vec<[u32; ApiStat::ALL.len()]>,
    /// The token epoch (gauge `tokengate.token_epoch`, see `state::remembered`), when Envoy
    /// keeps it (see [`live_epoch`]).
    token_epoch: Option<u32>,
    /// The failure epoch (gauge `tokengate.failure_epoch`, see `state::lockout`), likewise.
    failure_epoch: Option<u32>,
    /// What this VM counted of the stats every successful request moves (see [`batched`]) and
    /// has not yet added to them, by [`Metric::index`]: each add would otherwise be a host
    /// call (about 1,700 instructions, 1.2 % of a Bearer hit) for a stat nobody reads per
    /// request. [`EnvoyMetrics::flush`] adds them on the root's timer (every second), and when
    /// this VM's metrics are dropped.
    unflushed: [Cell<i64>; Metric::ALL.len()],
}

/// The stats added up in the VM and flushed once a second: the counters the happy paths move
/// (an allowed request, an issued token). Refusals and errors, rare and what an operator
/// watches during an attack, reach Envoy at once. So do gauges: a grant issued on one worker
/// and revoked on another within the second would take the live-grants gauge below zero.
fn batched(metric: Metric) -> bool {
    matches!(metric, Metric::RequestsAllowed | Metric::TokensIssued(_))
}

/// Defines an epoch gauge and moves it, so that every worker's memory from before this
/// configuration is stale (a new config may end tokens or lower limits), and proves that
/// Envoy keeps it: a `stats_matcher` that rejects the name gives a gauge that always reads 0
/// and ignores every change, and trusting such an epoch would keep revoked tokens and
/// locked names remembered for ever. A gauge, not a counter: `/reset_counters` on the admin
/// port would send a counter back to values that old memories were stored under.
/// `None` when the epoch cannot be trusted: the workers then remember nothing.
fn live_epoch(name: &str) -> Result<Option<u32>, Status> {
    let id = hostcalls::define_metric(MetricType::Gauge, name)?;
    let before = hostcalls::get_metric(id)?;
    hostcalls::increment_metric(id, 1)?;
    let after = hostcalls::get_metric(id)?;
    // Another worker may move it too in between: any change proves it is kept.
    Ok((after != before).then_some(id))
}

/// True when Envoy keeps this gauge: a gauge its `stats_matcher` rejects reads 0 whatever is
/// added. One that reads 0 gets 1 added, which leaves a tier window's count in window 0 (1970,
/// long over) and a heartbeat 1 ms after 1970 (long stale): neither reads as current.
fn gauge_is_kept(id: u32) -> bool {
    match hostcalls::get_metric(id) {
        Ok(0) => hostcalls::increment_metric(id, 1).is_ok() && matches!(hostcalls::get_metric(id), Ok(1..)),
        Ok(_) => true,
        Err(_) => false,
    }
}

impl EnvoyMetrics {
    /// The stats, `window_counters` gauges for the tiers (see `gateway/throttle.rs`), and
    /// each API's counters.
    pub fn define(window_counters: usize, apis: &[&str]) -> Result<Self, Status> {
        let mut ids = [0; Metric::ALL.len()];
        for (slot, metric) in ids.iter_mut().zip(Metric::ALL) {
            let kind = match metric.kind() {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
            };
            *slot = hostcalls::define_metric(kind, metric.name())?;
        }
        let windows = (0..window_counters)
            .map(|n| hostcalls::define_metric(MetricType::Gauge, &StateGauge::TierWindow(n).name()))
            .collect::<Result<Vec<u32>, Status>>()?;
        let apis = apis
            .iter()
            .map(|api| {
                let mut ids = [0; ApiStat::ALL.len()];
                for (slot, stat) in ids.iter_mut().zip(ApiStat::ALL) {
                    *slot = hostcalls::define_metric(MetricType::Counter, &stat.name_for(api))?;
                }
                Ok(ids)
            })
            .collect::<Result<Vec<[u32; ApiStat::ALL.len()]>, Status>>()?;
        let token_epoch = live_epoch(&StateGauge::TokenEpoch.name())?;
        let failure_epoch = live_epoch(&StateGauge::FailureEpoch.name())?;
        let unflushed = std::array::from_fn(|_| Cell::new(0));
        Ok(EnvoyMetrics { ids, windows, apis, token_epoch, failure_epoch, unflushed })
    }

    /// Whether Envoy keeps this gauge (see [`StateGauge`]): the epochs were probed as they
    /// were defined, the others are probed now.
    pub fn keeps(&self, gauge: StateGauge) -> bool {
        match gauge {
            StateGauge::TokenEpoch => self.token_epoch.is_some(),
            StateGauge::FailureEpoch => self.failure_epoch.is_some(),
            StateGauge::TierWindow(counter) => self.windows.get(counter).is_some_and(|id| gauge_is_kept(*id)),
            StateGauge::FleetHeartbeat => self.id(Metric::FleetWatchHeartbeat).is_some_and(gauge_is_kept),
        }
    }

    /// Adds what the [`batched`] stats counted since the last flush to the process-wide stats.
    pub fn flush(&self) {
        for (id, unflushed) in self.ids.iter().zip(&self.unflushed) {
            let delta = unflushed.replace(0);
            if delta != 0 {
                let _ = hostcalls::increment_metric(*id, delta);
            }
        }
    }

    fn id(&self, metric: Metric) -> Option<u32> {
        match metric {
            Metric::Api { api, stat } => self.apis.get(api)?.get(stat.index()).copied(),
            _ => self.ids.get(metric.index()).copied(),
        }
    }

    /// A stat's current, process-wide value: read without the host calling back into the VM,
    /// so about the price of any host call.
    pub fn get(&self, metric: Metric) -> Option<u64> {
        hostcalls::get_metric(self.id(metric)?).ok()
    }
}

/// A VM that goes (a new config, Envoy stopping) adds what it counted since its last tick.
impl Drop for EnvoyMetrics {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Stats are best effort: a failed update is not worth failing a request for.
impl Metrics for EnvoyMetrics {
    fn add(&self, metric: Metric, delta: i64) {
        if batched(metric) {
            if let Some(unflushed) = self.unflushed.get(metric.index()) {
                unflushed.set(unflushed.get().saturating_add(delta));
            }
            return;
        }
        if let Some(id) = self.id(metric) {
            let _ = hostcalls::increment_metric(id, delta);
        }
    }

    fn set(&self, metric: Metric, value: u64) {
        if let Some(id) = self.id(metric) {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}

/// The tier windows and both epochs, as process-wide gauges ([`EnvoyMetrics::define`]); an
/// epoch Envoy does not keep reads `None`.
impl Coordination for EnvoyMetrics {
    fn window(&self, counter: usize) -> Option<u64> {
        hostcalls::get_metric(*self.windows.get(counter)?).ok()
    }

    fn count_in_window(&self, counter: usize) {
        if let Some(id) = self.windows.get(counter) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }

    fn token_epoch(&self) -> Option<u64> {
        hostcalls::get_metric(self.token_epoch?).ok()
    }

    fn tokens_changed(&self) {
        if let Some(id) = self.token_epoch {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn failure_epoch(&self) -> Option<u64> {
        hostcalls::get_metric(self.failure_epoch?).ok()
    }

    fn failure_recorded(&self) {
        if let Some(id) = self.failure_epoch {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn restart_window(&self, counter: usize, value: u64) {
        if let Some(id) = self.windows.get(counter) {
            let _ = hostcalls::record_metric(*id, value);
        }
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

/// Every request header, in one host call: a host call that returns data costs about 10k
/// instructions in Envoy's V8, so reading the three or four headers the gateway needs one by
/// one costs twice as much. The SDK's own `get_map` would panic on a header that is not UTF-8
/// and copies every header into its own `String`; [`HeaderPairs`] reads the host's bytes in place.
pub fn request_headers() -> HeaderPairs {
    header_map(MapType::HttpRequestHeaders)
}

/// The downstream client's address, `ip:port` (Envoy's `source.address` attribute: the
/// connection's peer, or the address Envoy's connection manager took from `X-Forwarded-For`
/// when it is set up to trust it). `None` when the host cannot tell.
pub fn source_address() -> Option<String> {
    let bytes = hostcalls::get_property(vec!["source", "address"]).ok().flatten()?;
    String::from_utf8(bytes).ok()
}

/// The request's trailers (HTTP/2, or chunked HTTP/1.1), read like the headers.
pub fn request_trailers() -> HeaderPairs {
    header_map(MapType::HttpRequestTrailers)
}

fn header_map(map: MapType) -> HeaderPairs {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: on success the host has allocated `size` bytes through this module's allocator
    // (`proxy_on_memory_allocate`) and handed them over; the Vec takes ownership and frees them.
    unsafe {
        if proxy_get_header_map_pairs(map, &mut data, &mut size) != Status::Ok || data.is_null() {
            return HeaderPairs::new(Vec::new());
        }
        HeaderPairs::new(Vec::from_raw_parts(data, size, size))
    }
}
