//! What the pure logic needs from its host, as small traits.
//!
//! The proxy-wasm glue (`crate::filter`) implements these with Envoy's shared data, clock,
//! stats and WASI randomness; native tests and benches use [`memory`], which reproduces
//! Envoy's shared-data semantics. [`metrics`] names the stats; [`header_pairs`] reads the
//! host's serialised header map in place.

pub mod body_wait;
pub mod header_pairs;
pub mod memory;
pub mod metrics;

use metrics::Metric;

/// A shared-data failure the logic must handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The key changed since it was read: read again and retry.
    CasMismatch,
    /// Any other host failure.
    Unavailable,
}

/// Envoy's shared data: a process-wide key/value map per `vm_id`.
///
/// Semantics (as Envoy implements them): `get` returns the value and its cas; `set` with a
/// non-zero cas fails with `CasMismatch` if the key exists with another cas; a cas of 0, or a
/// key that does not exist yet, writes unconditionally. Keys can never be deleted.
pub trait SharedStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError>;
}

/// Every time the store keeps is in milliseconds since the Unix epoch: seconds would make a
/// token issued in the same second as a credential change indistinguishable from one before.
pub trait Clock {
    /// `None` when the host cannot tell the time. Callers then refuse the operation: any
    /// stand-in would either keep expired tokens alive (a time too early) or prune every live
    /// grant and lock names out for good (a time too late).
    fn now_millis(&self) -> Option<u64>;
}

/// A clock that asks `clock` once and gives every later question the same answer: a fleet
/// decision's staleness check, its pass and its plan then read the time once (in Envoy a host
/// call, about 1,300 instructions) and judge by one instant.
pub struct ClockReadOnce<'c> {
    clock: &'c dyn Clock,
    read: std::cell::Cell<Option<Option<u64>>>,
}

impl<'c> ClockReadOnce<'c> {
    pub fn new(clock: &'c dyn Clock) -> Self {
        ClockReadOnce { clock, read: std::cell::Cell::new(None) }
    }
}

impl Clock for ClockReadOnce<'_> {
    fn now_millis(&self) -> Option<u64> {
        if let Some(read) = self.read.get() {
            return read;
        }
        let now = self.clock.now_millis();
        self.read.set(Some(now));
        now
    }
}

/// The downstream connection a request came on.
pub trait Connection {
    /// Envoy's `connection.id`: process-wide, assigned in increasing order when Envoy accepts a
    /// connection. A host call, so asked only when it matters (see
    /// [`crate::state::credential_changes`]). `None` when the host cannot tell.
    fn id(&self) -> Option<u64>;
}

/// Where there is no connection to ask (a timer, a config load) or a host keeps no ids.
pub struct NoConnection;

impl Connection for NoConnection {
    fn id(&self) -> Option<u64> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomUnavailable;

pub trait Randomness {
    /// Fills `buf` from a cryptographically secure source.
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable>;
}

/// Where the logic reports its stats (see [`metrics`]): published, never read back.
pub trait Metrics {
    /// Adds `delta` to a counter or gauge.
    fn add(&self, metric: Metric, delta: i64);
    /// Sets a gauge.
    fn set(&self, metric: Metric, value: u64);
}

/// The process-wide counters the workers coordinate through (gauges in Envoy, read back on the
/// request path): the tiers' windows and the two epochs. No method has a default: a host
/// states what it keeps, so one cannot leave the tiers unenforced by forgetting a method.
pub trait Coordination {
    /// A subscription's window counter (see `gateway/throttle.rs`); `None` when this host
    /// keeps none, and then no tier is enforced.
    fn window(&self, counter: usize) -> Option<u64>;
    /// Adds one request to a window counter.
    fn count_in_window(&self, counter: usize);
    /// Starts a window counter afresh.
    fn restart_window(&self, counter: usize, value: u64);
    /// The token epoch: a process-wide counter that moves whenever stored tokens end or
    /// change (see [`crate::state::remembered`]). `None` when this host keeps none: then no
    /// worker remembers tokens and every lookup reads the store.
    fn token_epoch(&self) -> Option<u64>;
    /// Moves the token epoch on, after a write that ended or changed stored tokens.
    fn tokens_changed(&self);
    /// The failure epoch: a process-wide counter of failed secret checks recorded by the
    /// failure limiter (see [`crate::state::lockout`]); `None` when this host keeps none.
    fn failure_epoch(&self) -> Option<u64>;
    /// Moves the failure epoch on, after a failed attempt was counted.
    fn failure_recorded(&self);
}

/// The operating system's (or WASI's) secure random source.
pub struct SystemRandomness;

impl Randomness for SystemRandomness {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        getrandom::fill(buf).map_err(|_| RandomUnavailable)
    }
}
