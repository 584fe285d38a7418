//! One pass of a gateway decision in fleet mode.
//!
//! The gateway's decisions are synchronous and read-modify-write buckets through
//! [`SharedStore`]. In fleet mode they run over a [`FleetView`]: reads of the fleet tables come
//! from this Envoy's cache (and are remembered with the etcd revision they were read at), writes
//! are held back instead of performed. After the pass, [`super::plan`] turns what was read and
//! written into the one etcd transaction that makes the decision true fleet-wide; only when
//! etcd agrees does the decision's answer go out. Stats counted during a pass are held back
//! the same way ([`StagedMetrics`]), so a pass that has to run again counts nothing twice.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use super::cache;
use crate::host::metrics::Metric;
use crate::host::{Coordination, Metrics, SharedStore, StoreError};
use crate::state::buckets::EMPTY_BUCKET;

/// The cas a held-back write hands to a later read in the same pass.
const STAGED_CAS: u32 = u32::MAX;

/// What one pass read and wrote of the fleet tables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassRecord {
    /// Each key read, with the mod revision its cached entry had (`None`: not cached yet).
    pub reads: BTreeMap<String, Option<i64>>,
    /// The cache's cas of each key read: while the entry still has it, nothing has changed it
    /// since, so etcd's answer can replace it without reading it again.
    pub read_cas: BTreeMap<String, u32>,
    /// Each key written, with its new value.
    pub writes: BTreeMap<String, Vec<u8>>,
}

pub struct FleetView<'h> {
    cache: &'h dyn SharedStore,
    record: RefCell<PassRecord>,
}

impl<'h> FleetView<'h> {
    pub fn new(cache: &'h dyn SharedStore) -> Self {
        FleetView { cache, record: RefCell::default() }
    }

    /// What this pass read and wrote.
    pub fn into_record(self) -> PassRecord {
        self.record.into_inner()
    }
}

impl SharedStore for FleetView<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        if !cache::is_fleet_key(key) {
            return self.cache.get(key);
        }
        let mut record = self.record.try_borrow_mut().map_err(|_| StoreError::Unavailable)?;
        if let Some(staged) = record.writes.get(key) {
            return Ok(Some((staged.clone(), STAGED_CAS)));
        }
        let Some((bytes, cas)) = self.cache.get(key)? else { return Ok(None) };
        let (revision, value) = match cache::decode(&bytes) {
            Some(entry) if entry.is_known() => (Some(entry.mod_revision), entry.value.to_vec()),
            _ => (None, EMPTY_BUCKET.to_vec()),
        };
        // The first read is the one the decision rests on.
        if !record.reads.contains_key(key) {
            record.reads.insert(key.to_owned(), revision);
            record.read_cas.insert(key.to_owned(), cas);
        }
        Ok(Some((value, cas)))
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        if !cache::is_fleet_key(key) {
            return self.cache.set(key, value, cas);
        }
        let mut record = self.record.try_borrow_mut().map_err(|_| StoreError::Unavailable)?;
        record.writes.insert(key.to_owned(), value.to_vec());
        Ok(())
    }
}

/// Stats of one pass, reported only when its decision goes out. The tiers' window counters
/// are not held back: they go to this Envoy's counters at once (`windows`), so each replica
/// enforces its tiers alone, and a pass that runs again counts its request again.
///
/// The token epoch is this Envoy's too (see [`crate::state::remembered`]): a pass that may
/// answer from a worker's memory reads it, and a pass that ends or changes tokens moves it
/// only once its decision holds, after [`super::plan::settle`] has written the new buckets
/// into the cache: moved earlier, another worker could read the old bucket at the new epoch
/// and remember a revoked token under it. Other replicas' writes move it through the watch
/// ([`super::watch::apply`]).
#[derive(Default)]
pub struct StagedMetrics {
    pending: RefCell<StatChanges>,
    windows: Option<std::rc::Rc<dyn Coordination>>,
    /// Whether this pass may answer from (and add to) a worker's memory of tokens.
    remembers: bool,
    tokens_changed: Cell<bool>,
}

/// Stats held back from a pass whose answer waits for etcd.
#[derive(Debug, Default)]
pub struct HeldStats {
    changes: StatChanges,
    tokens_changed: bool,
}

/// Changes kept in place up to [`INLINE_CHANGES`]: a Bearer hit counts one or two stats, and
/// the pass that answers it from a worker's memory allocates nothing for them.
const INLINE_CHANGES: usize = 4;

#[derive(Debug, Default)]
struct StatChanges {
    inline: [Option<(Metric, MetricChange)>; INLINE_CHANGES],
    more: Vec<(Metric, MetricChange)>,
}

impl StatChanges {
    fn push(&mut self, change: (Metric, MetricChange)) {
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(change),
            None => self.more.push(change),
        }
    }

    fn into_changes(self) -> impl Iterator<Item = (Metric, MetricChange)> {
        self.inline.into_iter().flatten().chain(self.more)
    }
}

#[derive(Debug, Clone, Copy)]
enum MetricChange {
    Add(i64),
    Set(u64),
}

impl StagedMetrics {
    /// Stats held back, window counters read and written in `windows` at once. `remembers`:
    /// the pass reads the token epoch from `windows` too, so a worker may answer a Bearer
    /// check from its memory; only when the cache may be trusted (the watch is current) and
    /// the pass writes nothing (a Bearer check), so that nothing is remembered that etcd
    /// might not commit.
    pub fn with_windows(windows: std::rc::Rc<dyn Coordination>, remembers: bool) -> Self {
        StagedMetrics { windows: Some(windows), remembers, ..StagedMetrics::default() }
    }

    pub fn into_held(self) -> HeldStats {
        HeldStats { changes: self.pending.into_inner(), tokens_changed: self.tokens_changed.get() }
    }
}

impl HeldStats {
    /// Reports what the pass counted, once its answer goes out (and its writes are in the
    /// cache), and moves the token epoch if the pass ended or changed tokens.
    pub fn report(self, metrics: &dyn Metrics, coordination: &dyn Coordination) {
        for (metric, change) in self.changes.into_changes() {
            match change {
                MetricChange::Add(delta) => metrics.add(metric, delta),
                MetricChange::Set(value) => metrics.set(metric, value),
            }
        }
        if self.tokens_changed {
            coordination.tokens_changed();
        }
    }
}

impl Metrics for StagedMetrics {
    fn add(&self, metric: Metric, delta: i64) {
        if let Ok(mut pending) = self.pending.try_borrow_mut() {
            pending.push((metric, MetricChange::Add(delta)));
        }
    }
    fn set(&self, metric: Metric, value: u64) {
        if let Ok(mut pending) = self.pending.try_borrow_mut() {
            pending.push((metric, MetricChange::Set(value)));
        }
    }
}

/// This Envoy's tier windows, at once; its token epoch when the pass [`remembers`], a change
/// of it held back; no failure epoch, so in fleet mode no worker remembers an unlocked name.
///
/// [`remembers`]: StagedMetrics::with_windows
impl Coordination for StagedMetrics {
    fn window(&self, counter: usize) -> Option<u64> {
        self.windows.as_ref()?.window(counter)
    }
    fn count_in_window(&self, counter: usize) {
        if let Some(windows) = &self.windows {
            windows.count_in_window(counter);
        }
    }
    fn restart_window(&self, counter: usize, value: u64) {
        if let Some(windows) = &self.windows {
            windows.restart_window(counter, value);
        }
    }
    fn token_epoch(&self) -> Option<u64> {
        if !self.remembers || self.tokens_changed.get() {
            return None;
        }
        self.windows.as_ref()?.token_epoch()
    }
    fn tokens_changed(&self) {
        self.tokens_changed.set(true);
    }
    fn failure_epoch(&self) -> Option<u64> {
        None
    }
    fn failure_recorded(&self) {}
}
