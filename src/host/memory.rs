//! In-memory hosts for native tests, benches and the profile: Envoy's shared-data semantics
//! (cas checked only on existing keys, no delete, one cas counter for the whole map), a clock
//! tests can move, and stats kept or dropped.

use super::metrics::Metric;
use super::{Clock, Coordination, Metrics, SharedStore, StoreError};

/// Discards every stat, and keeps no window or epoch: no tier is enforced, nothing remembered.
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn add(&self, _: Metric, _: i64) {}
    fn set(&self, _: Metric, _: u64) {}
}

impl Coordination for NoMetrics {
    fn window(&self, _: usize) -> Option<u64> {
        None
    }
    fn count_in_window(&self, _: usize) {}
    fn restart_window(&self, _: usize, _: u64) {}
    fn token_epoch(&self) -> Option<u64> {
        None
    }
    fn tokens_changed(&self) {}
    fn failure_epoch(&self) -> Option<u64> {
        None
    }
    fn failure_recorded(&self) {}
}

/// Keeps stats in memory, for tests, and window counters like Envoy's gauges (no epochs:
/// workers remember nothing, so every lookup in a test reads the store).
#[derive(Default)]
pub struct RecordedMetrics(
    std::sync::Mutex<std::collections::HashMap<Metric, i64>>,
    std::sync::Mutex<std::collections::HashMap<usize, u64>>,
);

impl RecordedMetrics {
    pub fn get(&self, metric: Metric) -> i64 {
        self.0.lock().map(|values| values.get(&metric).copied().unwrap_or(0)).unwrap_or(0)
    }
}

impl Metrics for RecordedMetrics {
    fn add(&self, metric: Metric, delta: i64) {
        if let Ok(mut values) = self.0.lock() {
            *values.entry(metric).or_insert(0) += delta;
        }
    }
    fn set(&self, metric: Metric, value: u64) {
        if let Ok(mut values) = self.0.lock() {
            values.insert(metric, i64::try_from(value).unwrap_or(i64::MAX));
        }
    }
}

impl Coordination for RecordedMetrics {
    fn window(&self, counter: usize) -> Option<u64> {
        self.1.lock().ok().map(|values| values.get(&counter).copied().unwrap_or(0))
    }
    fn count_in_window(&self, counter: usize) {
        if let Ok(mut values) = self.1.lock() {
            let value = values.entry(counter).or_insert(0);
            *value = value.saturating_add(1);
        }
    }
    fn restart_window(&self, counter: usize, value: u64) {
        if let Ok(mut values) = self.1.lock() {
            values.insert(counter, value);
        }
    }
    fn token_epoch(&self) -> Option<u64> {
        None
    }
    fn tokens_changed(&self) {}
    fn failure_epoch(&self) -> Option<u64> {
        None
    }
    fn failure_recorded(&self) {}
}

/// An in-memory [`SharedStore`] with Envoy's semantics, for native tests and benches.
#[derive(Default)]
pub struct MemoryStore {
    inner: std::sync::Mutex<MemoryStoreInner>,
}

#[derive(Default)]
struct MemoryStoreInner {
    entries: std::collections::HashMap<String, (Vec<u8>, u32)>,
    /// Like Envoy's, one counter for the whole map: a cas never repeats across keys.
    next_cas: u32,
}

impl MemoryStore {
    pub fn key_count(&self) -> usize {
        self.inner.lock().map(|inner| inner.entries.len()).unwrap_or(0)
    }

    /// Total bytes of keys and values: what Envoy would hold, before its own overhead.
    pub fn stored_bytes(&self) -> usize {
        self.inner
            .lock()
            .map(|inner| inner.entries.iter().map(|(k, (v, _))| k.len() + v.len()).sum())
            .unwrap_or(0)
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let inner = self.inner.lock().map_err(|_| StoreError::Unavailable)?;
        Ok(inner.entries.get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Unavailable)?;
        if let Some((_, current)) = inner.entries.get(key) {
            if cas != 0 && cas != *current {
                return Err(StoreError::CasMismatch);
            }
        }
        inner.next_cas = inner.next_cas.wrapping_add(1).max(1);
        let next = inner.next_cas;
        inner.entries.insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }
}

/// A host with both epochs in cells, and a [`MemoryStore`] that counts its reads: what the
/// tests of a worker's memories (`state::remembered`, the failure limiter's unlocked names)
/// run against, to see when a lookup came from memory rather than from shared data.
#[derive(Default)]
pub struct EpochHost {
    pub shared: MemoryStore,
    pub reads: std::cell::Cell<usize>,
    pub token_epoch: std::cell::Cell<u64>,
    pub failure_epoch: std::cell::Cell<u64>,
}

impl SharedStore for EpochHost {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        self.reads.set(self.reads.get().saturating_add(1));
        self.shared.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        self.shared.set(key, value, cas)
    }
}

impl Metrics for EpochHost {
    fn add(&self, _: Metric, _: i64) {}
    fn set(&self, _: Metric, _: u64) {}
}

/// Both epochs, no tier windows.
impl Coordination for EpochHost {
    fn window(&self, _: usize) -> Option<u64> {
        None
    }
    fn count_in_window(&self, _: usize) {}
    fn restart_window(&self, _: usize, _: u64) {}
    fn token_epoch(&self) -> Option<u64> {
        Some(self.token_epoch.get())
    }
    fn tokens_changed(&self) {
        self.token_epoch.set(self.token_epoch.get().wrapping_add(1));
    }
    fn failure_epoch(&self) -> Option<u64> {
        Some(self.failure_epoch.get())
    }
    fn failure_recorded(&self) {
        self.failure_epoch.set(self.failure_epoch.get().wrapping_add(1));
    }
}

/// A clock tests can move.
#[derive(Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    pub fn at(secs: u64) -> Self {
        ManualClock(std::sync::atomic::AtomicU64::new(secs.saturating_mul(1000)))
    }
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs.saturating_mul(1000), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> Option<u64> {
        Some(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fleet decision's staleness check, pass and plan share one reading of the clock.
    #[test]
    fn a_clock_read_once_gives_every_question_the_first_answer() {
        let clock = ManualClock::at(10);
        let once = crate::host::ClockReadOnce::new(&clock);
        assert_eq!(once.now_millis(), Some(10_000));
        clock.advance(5);
        assert_eq!(once.now_millis(), Some(10_000), "not asked again");
        assert_eq!(crate::host::ClockReadOnce::new(&clock).now_millis(), Some(15_000));
    }

    #[test]
    fn memory_store_checks_cas_only_on_existing_keys() {
        let store = MemoryStore::default();
        // A missing key is written whatever cas is given: there is no insert-if-absent.
        store.set("k", b"one", 12345).unwrap();
        let (value, cas) = store.get("k").unwrap().unwrap();
        assert_eq!(value, b"one");
        assert_eq!(store.set("k", b"two", cas.wrapping_add(1)), Err(StoreError::CasMismatch));
        store.set("k", b"two", cas).unwrap();
        assert_eq!(store.set("k", b"three", cas), Err(StoreError::CasMismatch));
        // cas 0 overwrites unconditionally, as in Envoy.
        store.set("k", b"four", 0).unwrap();
        assert_eq!(store.get("k").unwrap().unwrap().0, b"four");
    }

    #[test]
    fn memory_store_cannot_delete() {
        let store = MemoryStore::default();
        store.set("k", b"value", 0).unwrap();
        store.set("k", b"", 0).unwrap();
        assert_eq!(store.key_count(), 1);
        assert_eq!(store.get("k").unwrap().map(|(v, _)| v), Some(Vec::new()));
    }
}
