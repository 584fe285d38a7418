//! Each Envoy's copy of etcd's state, kept in its shared data under the same keys local mode
//! uses (`tokengate/grants/<n>`, `tokengate/clients/<n>`), so every worker reads one cache.
//!
//! An entry is `format ‖ mod revision ‖ seen revision ‖ the etcd value`. The mod revision is
//! what a compare-and-swap in etcd checks (0: the key does not exist in etcd); the seen
//! revision is the etcd revision at which this word was true, so an older answer (a slow read,
//! a replayed watch event) never overwrites a newer one. A value without the format byte (the
//! empty bucket `on_configure` creates) is an entry nobody has asked etcd about yet.
//!
//! When the watch starts without a revision to resume from (at start-up, or after etcd
//! compacted the history it needed), it starts right after a revision `R` a read returned, and
//! delivers only what changes after `R`. An answer etcd gave before `R` (a `Txn` still on its
//! way) would then install a word no event ever corrects, so [`forget_below`] leaves every
//! entry older than `R` unknown with a floor: only words seen at `R` or later are taken.

use crate::host::{SharedStore, StoreError};
use crate::state::buckets::EMPTY_BUCKET;
use crate::state::keys::{self, Home};

const ENTRY_FORMAT: u8 = 0xF1;
const HEADER_BYTES: usize = 1 + 8 + 8;
/// Attempts at replacing an entry another worker keeps changing.
const STORE_ATTEMPTS: usize = 16;
/// The mod revision that marks an entry forgotten below a floor (its seen revision is the
/// last revision the watch does not cover).
const UNKNOWN_REVISION: i64 = -1;

/// A decoded cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub mod_revision: i64,
    pub seen_revision: i64,
    pub value: &'a [u8],
}

/// True for a bucket of a table that lives in etcd (not the tables' count or sweep keys): the
/// tables [`keys::TABLES`] says are at home in etcd; everything else stays per Envoy.
pub fn is_fleet_key(key: &str) -> bool {
    keys::table_of_bucket(key).is_some_and(|table| table.home == Home::Etcd)
}

/// The etcd key of a cache key: the deployment's prefix instead of `tokengate/`.
pub fn etcd_key(prefix: &str, cache_key: &str) -> Vec<u8> {
    let rest = cache_key.strip_prefix(keys::ROOT).unwrap_or(cache_key);
    [prefix.as_bytes(), rest.as_bytes()].concat()
}

/// The cache key of an etcd key under `prefix`, if it is one of the fleet tables' buckets.
pub fn cache_key(prefix: &str, etcd_key: &[u8]) -> Option<String> {
    let rest = std::str::from_utf8(etcd_key.strip_prefix(prefix.as_bytes())?).ok()?;
    let key = [keys::ROOT, rest].concat();
    is_fleet_key(&key).then_some(key)
}

impl Entry<'_> {
    /// False for an entry forgotten below a floor: it holds no word of etcd's.
    pub fn is_known(&self) -> bool {
        self.mod_revision != UNKNOWN_REVISION
    }
}

pub fn decode(bytes: &[u8]) -> Option<Entry<'_>> {
    let (&format, rest) = bytes.split_first()?;
    if format != ENTRY_FORMAT {
        return None;
    }
    let mod_revision = i64::from_be_bytes(*rest.first_chunk::<8>()?);
    let seen_revision = i64::from_be_bytes(*rest.get(8..)?.first_chunk::<8>()?);
    Some(Entry { mod_revision, seen_revision, value: rest.get(16..)? })
}

pub fn encode(entry: Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + entry.value.len());
    out.push(ENTRY_FORMAT);
    out.extend_from_slice(&entry.mod_revision.to_be_bytes());
    out.extend_from_slice(&entry.seen_revision.to_be_bytes());
    out.extend_from_slice(entry.value);
    out
}

/// Records what etcd said about a key at `entry.seen_revision`, unless the cache already holds
/// that word or a newer one (the watch echoes every write a worker has already cached: one
/// revision is one state of the key). Only keys that exist are written (they are created at
/// start-up): shared data has no insert-if-absent. Returns whether the entry was written.
pub fn store(cache: &dyn SharedStore, key: &str, entry: Entry) -> Result<bool, StoreError> {
    replace(cache, key, entry).map(|replaced| replaced.is_some())
}

/// [`store`], giving back the bytes of the entry it replaced when it wrote (`None`: nothing
/// written, the cache holding this word or a newer one, or no such key).
pub fn replace(cache: &dyn SharedStore, key: &str, entry: Entry) -> Result<Option<Vec<u8>>, StoreError> {
    for _ in 0..STORE_ATTEMPTS {
        let Some((current, cas)) = cache.get(key)? else { return Ok(None) };
        if decode(&current).is_some_and(|held| held.seen_revision >= entry.seen_revision) {
            return Ok(None);
        }
        match cache.set(key, &encode(entry), cas) {
            Ok(()) => return Ok(Some(current)),
            Err(StoreError::CasMismatch) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(StoreError::CasMismatch)
}

/// Records etcd's answer to a transaction over the entry a pass read with cas `read_cas`
/// (see [`store`]). While the entry still has that cas nobody has changed it since the pass,
/// and the word the pass read was seen before the transaction was sent, so older than etcd's
/// answer: one write, without reading the entry again. Otherwise (another worker or the watch
/// wrote it meanwhile, or the pass never read it) [`store`] compares the revisions.
pub fn store_over_read(
    cache: &dyn SharedStore,
    key: &str,
    entry: Entry,
    read_cas: Option<u32>,
) -> Result<bool, StoreError> {
    // Envoy reads a cas of 0 as "no check": never take it for the pass's.
    if let Some(cas) = read_cas.filter(|&cas| cas != 0) {
        match cache.set(key, &encode(entry), cas) {
            Ok(()) => return Ok(true),
            Err(StoreError::CasMismatch) => {}
            Err(other) => return Err(other),
        }
    }
    store(cache, key, entry)
}

/// What etcd said, as a cache entry: `value` at `mod_revision`, or an absent key (an empty
/// bucket at revision 0).
pub fn entry_of<'a>(value: Option<(&'a [u8], i64)>, seen_revision: i64) -> Entry<'a> {
    match value {
        Some((value, mod_revision)) => Entry { mod_revision, seen_revision, value },
        None => Entry { mod_revision: 0, seen_revision, value: EMPTY_BUCKET },
    }
}

/// Forgets every fleet entry of `keys` (after etcd compacted the history a watch needed):
/// the next request that reads one asks etcd first.
pub fn forget(cache: &dyn SharedStore, keys: impl Iterator<Item = String>) -> Result<(), StoreError> {
    for key in keys {
        if cache.get(&key)?.is_some() {
            cache.set(&key, EMPTY_BUCKET, 0)?;
        }
    }
    Ok(())
}

/// Leaves every entry of `keys` that etcd's word older than `revision` set unknown, and
/// refuses such words from now on (see the module's doc): what the watch does before it
/// starts from `revision + 1`. Entries seen at `revision` or later stay, as they are current.
pub fn forget_below(
    cache: &dyn SharedStore,
    keys: impl Iterator<Item = String>,
    revision: i64,
) -> Result<(), StoreError> {
    let floor = Entry {
        mod_revision: UNKNOWN_REVISION,
        seen_revision: revision.saturating_sub(1),
        value: EMPTY_BUCKET,
    };
    for key in keys {
        forget_key_below(cache, &key, floor)?;
    }
    Ok(())
}

fn forget_key_below(cache: &dyn SharedStore, key: &str, floor: Entry) -> Result<(), StoreError> {
    for _ in 0..STORE_ATTEMPTS {
        let Some((current, cas)) = cache.get(key)? else { return Ok(()) };
        // A word seen at the floor or later (a newer floor included) is current: kept.
        if decode(&current).is_some_and(|held| held.seen_revision > floor.seen_revision) {
            return Ok(());
        }
        match cache.set(key, &encode(floor), cas) {
            Ok(()) => return Ok(()),
            Err(StoreError::CasMismatch) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(StoreError::CasMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryStore;

    #[test]
    fn keys_map_between_the_cache_and_etcd() {
        assert!(is_fleet_key("tokengate/grants/17") && is_fleet_key("tokengate/clients/0"));
        assert!(!is_fleet_key("tokengate/grants/count") && !is_fleet_key("tokengate/limits/3"));
        assert!(!is_fleet_key("tokengate/grants/") && !is_fleet_key("tokengate/credential-changes"));
        assert!(is_fleet_key(crate::state::credential_changes::FLEET_KEY), "the record's fleet key");
        assert_eq!(etcd_key("prod/", "tokengate/grants/17"), b"prod/grants/17");
        assert_eq!(cache_key("prod/", b"prod/grants/17").as_deref(), Some("tokengate/grants/17"));
        assert_eq!(cache_key("prod/", b"other/grants/17"), None);
        assert_eq!(cache_key("prod/", b"prod/grants/count"), None);
    }

    #[test]
    fn an_older_word_never_overwrites_a_newer_one() {
        let cache = MemoryStore::default();
        let key = "tokengate/grants/1";
        assert!(!store(&cache, key, entry_of(Some((b"x", 5)), 5)).unwrap(), "missing keys are not created");
        cache.set(key, EMPTY_BUCKET, 0).unwrap();
        assert_eq!(decode(&cache.get(key).unwrap().unwrap().0), None, "start-up's bucket is unknown");
        assert!(store(&cache, key, entry_of(Some((b"new", 9)), 9)).unwrap());
        assert!(!store(&cache, key, entry_of(Some((b"old", 7)), 7)).unwrap());
        assert!(!store(&cache, key, entry_of(Some((b"new", 9)), 9)).unwrap(), "an echo is not written again");
        assert!(store(&cache, key, entry_of(None, 12)).unwrap());
        let bytes = cache.get(key).unwrap().unwrap().0;
        assert_eq!(decode(&bytes), Some(Entry { mod_revision: 0, seen_revision: 12, value: EMPTY_BUCKET }));
        forget(&cache, [key.to_owned()].into_iter()).unwrap();
        assert_eq!(decode(&cache.get(key).unwrap().unwrap().0), None);
    }

    #[test]
    fn below_a_floor_older_words_are_refused_and_newer_ones_kept() {
        let cache = MemoryStore::default();
        let (old, current) = ("tokengate/grants/1", "tokengate/grants/2");
        for key in [old, current] {
            cache.set(key, EMPTY_BUCKET, 0).unwrap();
        }
        assert!(store(&cache, old, entry_of(Some((b"old", 4)), 4)).unwrap());
        assert!(store(&cache, current, entry_of(Some((b"now", 10)), 10)).unwrap());
        forget_below(&cache, [old, current, "tokengate/grants/9"].map(str::to_owned).into_iter(), 10)
            .unwrap();
        let held = |key| decode(&cache.get(key).unwrap().unwrap().0).map(|entry| entry.is_known());
        assert_eq!(held(old), Some(false), "a word from before the floor is forgotten");
        assert_eq!(held(current), Some(true), "a word at the floor is current");
        assert_eq!(cache.get("tokengate/grants/9").unwrap(), None, "missing keys are not created");
        assert!(
            !store(&cache, old, entry_of(Some((b"late", 9)), 9)).unwrap(),
            "an answer from before the floor"
        );
        assert!(store(&cache, old, entry_of(Some((b"new", 10)), 10)).unwrap());
    }

    #[test]
    fn truncated_entries_are_unknown() {
        let bytes = encode(Entry { mod_revision: 3, seen_revision: 4, value: b"abc" });
        for cut in 0..HEADER_BYTES {
            assert_eq!(decode(&bytes[..cut]), None);
        }
        assert_eq!(decode(&bytes).map(|entry| entry.value), Some(&b"abc"[..]));
    }
}
