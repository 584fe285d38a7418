//! What the pure logic needs from its host, as small traits, plus an in-memory host for tests.
//!
//! The proxy-wasm glue implements these with Envoy's shared data, clock and WASI randomness;
//! native tests use [`MemoryStore`], which reproduces Envoy's shared-data semantics.

use std::borrow::Cow;

use crate::metrics::Metric;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomUnavailable;

pub trait Randomness {
    /// Fills `buf` from a cryptographically secure source.
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable>;
}

/// Where the logic reports its stats (see [`crate::metrics`]).
pub trait Metrics {
    /// Adds `delta` to a counter or gauge.
    fn add(&self, metric: Metric, delta: i64);
    /// Sets a gauge.
    fn set(&self, metric: Metric, value: u64);
}

/// Discards every stat.
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn add(&self, _: Metric, _: i64) {}
    fn set(&self, _: Metric, _: u64) {}
}

/// Keeps stats in memory, for tests.
#[derive(Default)]
pub struct RecordedMetrics(std::sync::Mutex<std::collections::HashMap<Metric, i64>>);

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

/// The operating system's (or WASI's) secure random source.
pub struct SystemRandomness;

impl Randomness for SystemRandomness {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        getrandom::fill(buf).map_err(|_| RandomUnavailable)
    }
}

/// A header map as proxy-wasm serialises it: a little-endian `u32` count, then a (name length,
/// value length) `u32` pair per header, then each name and value followed by a NUL.
///
/// Read in place: a request check looks up three or four of a dozen headers, and copying every
/// header into its own `String` cost more instructions than the rest of the check. A truncated
/// map yields the headers before the damage. Never panics.
pub struct HeaderPairs(Vec<u8>);

impl HeaderPairs {
    pub fn new(bytes: Vec<u8>) -> Self {
        HeaderPairs(bytes)
    }

    /// Every (name, value) pair, raw, in the host's order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let bytes = self.0.as_slice();
        let read_u32 = move |at: usize| -> Option<usize> {
            let chunk: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
            usize::try_from(u32::from_le_bytes(chunk)).ok()
        };
        let count = read_u32(0).unwrap_or(0);
        let mut index = 0usize;
        let mut data = 4usize.saturating_add(count.saturating_mul(8));
        std::iter::from_fn(move || {
            if index >= count {
                return None;
            }
            let sizes = index.saturating_mul(8).saturating_add(4);
            let (name_len, value_len) = (read_u32(sizes)?, read_u32(sizes.saturating_add(4))?);
            let name_end = data.saturating_add(name_len);
            let value_start = name_end.saturating_add(1);
            let value_end = value_start.saturating_add(value_len);
            let pair = (bytes.get(data..name_end)?, bytes.get(value_start..value_end)?);
            index += 1;
            data = value_end.saturating_add(1);
            Some(pair)
        })
    }

    /// The first value of header `name` (lower case, as Envoy keeps names). Bytes that are not
    /// UTF-8 become U+FFFD, which the gateway's syntax checks then refuse.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let (_, value) = self.iter().find(|(n, _)| *n == name.as_bytes())?;
        // `from_utf8` has an ASCII fast path that the lossy decoder lacks.
        Some(match std::str::from_utf8(value) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n == name.as_bytes())
    }
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

    /// Serialises like the host does, to feed the decoder.
    fn encode_header_pairs(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (name, value) in pairs {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        for (name, value) in pairs {
            out.extend_from_slice(name);
            out.push(0);
            out.extend_from_slice(value);
            out.push(0);
        }
        out
    }

    #[test]
    fn header_pairs_decode_and_survive_bad_bytes() {
        let bytes = encode_header_pairs(&[
            (b":path", b"/api"),
            (b"authorization", b"Bearer \xff\xfe"),
            (b"x", b""),
            (b"x", b"second"),
        ]);
        let headers = HeaderPairs::new(bytes.clone());
        assert_eq!(headers.iter().count(), 4);
        assert_eq!(headers.get(":path").as_deref(), Some("/api"));
        assert_eq!(headers.get("authorization").as_deref(), Some("Bearer \u{fffd}\u{fffd}"));
        assert_eq!(headers.get("x").as_deref(), Some(""), "the first copy wins");
        assert!(headers.contains("x") && !headers.contains("X") && !headers.contains("y"));
        assert_eq!(headers.get("y"), None);
        for cut in 0..bytes.len() {
            let truncated = HeaderPairs::new(bytes[..cut].to_vec());
            // Only the last value's terminating NUL may be missing for all four to survive.
            assert_eq!(truncated.iter().count() == 4, cut == bytes.len() - 1, "cut at {cut}");
            assert_eq!(truncated.get(":path").is_some(), cut >= 4 + 4 * 8 + ":path\0/api".len());
        }
        assert_eq!(HeaderPairs::new(vec![0xff, 0xff, 0xff, 0xff]).iter().count(), 0);
        assert_eq!(HeaderPairs::new(Vec::new()).iter().count(), 0);
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
