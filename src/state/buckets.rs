//! A fixed table of shared-data keys ("buckets"), each holding a few records, rewritten with
//! compare-and-swap. The token store and the client registry are both built on it.
//!
//! Envoy can never delete a shared-data key, so one key per record would grow without bound.
//! A table owns `count` keys, `tokengate/<name>/<index>`, created once and rewritten in place;
//! records that have expired are dropped whenever their bucket is rewritten, so memory follows
//! the live records and the key count never changes.
//!
//! Shared data has no insert-if-absent: a write to a missing key always succeeds, so a second
//! "create" could wipe a bucket another worker already wrote records into. Only
//! [`BucketTable::initialize`] ever writes a missing key; it runs from `on_configure`, which
//! Envoy calls on the main thread before any worker serves the new config, and request paths
//! treat a missing bucket as unusable. A meta key remembers how many buckets exist, so worker
//! VMs and config reloads skip the loop, and a larger table keeps the old buckets.

use super::keys::Table;
use crate::host::{SharedStore, StoreError};
use crate::oauth::resource_indicator::Audience;
use crate::oauth::scope::ScopeId;

const BUCKET_FORMAT: u8 = 1;
/// A bucket with no records.
pub const EMPTY_BUCKET: &[u8] = &[BUCKET_FORMAT];
/// Compare-and-swap attempts on one bucket before giving up on it.
pub(crate) const CAS_ATTEMPTS: usize = 16;

/// Why a table could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    Store(StoreError),
    /// A smaller table would give up buckets holding this many records that must be kept.
    WouldDrop {
        records: usize,
    },
}

impl From<StoreError> for InitError {
    fn from(error: StoreError) -> Self {
        InitError::Store(error)
    }
}

/// A record kept in a bucket.
pub trait Record: Sized + Clone {
    fn decode(bytes: &[u8]) -> Option<Self>;
    fn encode_into(&self, out: &mut Vec<u8>);
    /// Drops whatever has expired at `now`; false when nothing worth keeping is left.
    fn prune(&mut self, now: u64) -> bool;
}

/// The outcome of a successful [`BucketTable::update`].
pub struct Updated<T> {
    pub value: T,
    /// Records after the update minus records before (pruning included), for gauges.
    pub records_delta: i64,
}

pub struct BucketTable<'h> {
    shared: &'h dyn SharedStore,
    table: Table,
    count: u32,
}

impl<'h> BucketTable<'h> {
    pub fn new(shared: &'h dyn SharedStore, table: Table, count: u32) -> Self {
        BucketTable { shared, table, count: count.max(1) }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Every bucket's key.
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.count).map(|index| self.key(index))
    }

    fn key(&self, index: u32) -> String {
        // Built on every Bearer check; `format!` costs several times this.
        self.table.bucket_key(index)
    }

    /// Creates the buckets that do not exist yet; returns how many it created.
    ///
    /// A smaller table than last time empties the buckets it gives up: their records could
    /// not be swept, and a later, larger table would bring them back to life.
    pub fn initialize(&self) -> Result<u32, StoreError> {
        let meta_key = self.table.count_key();
        let existing = match self.shared.get(&meta_key)? {
            Some((value, _)) => Reader(&value).u32().unwrap_or(0),
            None => 0,
        };
        let empty = EMPTY_BUCKET;
        if existing > self.count {
            for index in self.count..existing {
                self.shared.set(&self.key(index), empty, 0)?;
            }
            self.shared.set(&meta_key, &self.count.to_be_bytes(), 0)?;
            return Ok(0);
        }
        if existing == self.count {
            return Ok(0);
        }
        let mut created = 0;
        for index in existing..self.count {
            let key = self.key(index);
            if self.shared.get(&key)?.is_none() {
                self.shared.set(&key, empty, 0)?;
                created += 1;
            }
        }
        let cursor_key = self.sweep_cursor_key();
        if self.shared.get(&cursor_key)?.is_none() {
            self.shared.set(&cursor_key, &0u32.to_be_bytes(), 0)?;
        }
        self.shared.set(&meta_key, &self.count.to_be_bytes(), 0)?;
        Ok(created)
    }

    /// [`BucketTable::initialize`] for records that must never be dropped: a smaller table
    /// than last time is refused while the buckets it would give up hold any record.
    pub fn initialize_keeping_records(&self) -> Result<u32, InitError> {
        let meta_key = self.table.count_key();
        let existing = match self.shared.get(&meta_key)? {
            Some((value, _)) => Reader(&value).u32().unwrap_or(0),
            None => 0,
        };
        let mut records = 0;
        for index in self.count..existing {
            if let Some((bytes, _)) = self.shared.get(&self.key(index))? {
                records += records_of(&bytes).count();
            }
        }
        if records > 0 {
            return Err(InitError::WouldDrop { records });
        }
        Ok(self.initialize()?)
    }

    fn sweep_cursor_key(&self) -> String {
        self.table.sweep_key()
    }

    /// Claims the next `count` buckets to sweep: every VM sweeps from a timer, and the shared
    /// cursor (advanced with compare-and-swap) hands each slice to exactly one of them.
    /// `None` when another VM advanced the cursor first; it will try again next tick.
    pub fn claim_sweep_slice(&self, count: u32) -> Result<Option<u32>, StoreError> {
        let key = self.sweep_cursor_key();
        let Some((value, cas)) = self.shared.get(&key)? else { return Ok(None) };
        let start = Reader(&value).u32().unwrap_or(0) % self.count;
        let next = ((u64::from(start) + u64::from(count)) % u64::from(self.count)) as u32;
        match self.shared.set(&key, &next.to_be_bytes(), cas) {
            Ok(()) => Ok(Some(start)),
            Err(StoreError::CasMismatch) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The bucket's bytes, or `None` when it is outside the table or does not exist.
    pub fn read(&self, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_with_cas(index)?.map(|(bytes, _)| bytes))
    }

    fn read_with_cas(&self, index: u32) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        if index >= self.count {
            return Ok(None);
        }
        self.shared.get(&self.key(index))
    }

    /// Reads a bucket, prunes its records, lets `change` edit them, and writes the bucket back
    /// with compare-and-swap, retrying from a fresh read on conflict (so `change` must be safe
    /// to run more than once). `Ok(None)`: the bucket does not exist. Nothing is written when
    /// `change` fails or leaves the bytes as they were.
    pub fn update<R: Record, T, E: From<StoreError>>(
        &self,
        index: u32,
        now: u64,
        mut change: impl FnMut(&mut Vec<R>) -> Result<T, E>,
    ) -> Result<Option<Updated<T>>, E> {
        if index >= self.count {
            return Ok(None);
        }
        let key = self.key(index);
        for _ in 0..CAS_ATTEMPTS {
            let Some((bytes, cas)) = self.shared.get(&key)? else {
                return Ok(None);
            };
            let (mut records, not_understood) = decode_bucket_keeping_the_rest::<R>(&bytes);
            let before = records.len();
            records.retain_mut(|record| record.prune(now));
            let value = change(&mut records)?;
            let records_delta = records.len() as i64 - before as i64;
            let mut encoded = encode_bucket(&records);
            for raw in not_understood {
                put_framed(&mut encoded, |out| out.extend_from_slice(raw));
            }
            if encoded == bytes {
                return Ok(Some(Updated { value, records_delta }));
            }
            match self.shared.set(&key, &encoded, cas) {
                Ok(()) => return Ok(Some(Updated { value, records_delta })),
                Err(StoreError::CasMismatch) => continue,
                Err(other) => return Err(E::from(other)),
            }
        }
        Err(E::from(StoreError::CasMismatch))
    }
}

/// True when `bytes` are a bucket in the format this build reads (see [`records_of`]).
pub fn is_bucket(bytes: &[u8]) -> bool {
    bytes.first() == Some(&BUCKET_FORMAT)
}

/// The records of one bucket, as bytes: `format ‖ (u16 length ‖ record)*`.
pub fn records_of(bucket: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut reader = Reader(match bucket.split_first() {
        Some((&BUCKET_FORMAT, rest)) => rest,
        _ => &[],
    });
    std::iter::from_fn(move || {
        let len = reader.u16()?;
        reader.take(usize::from(len))
    })
}

pub fn encode_bucket<R: Record>(records: &[R]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + records.len() * 96);
    out.push(BUCKET_FORMAT);
    for record in records {
        put_framed(&mut out, |out| record.encode_into(out));
    }
    out
}

/// Appends one record behind its u16 length.
fn put_framed(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    write(out);
    let len = out.len() - start - 2;
    match (u16::try_from(len), out.get_mut(start..start + 2)) {
        (Ok(len), Some(prefix)) => prefix.copy_from_slice(&len.to_be_bytes()),
        // Config limits keep records far below 64 KiB; drop one that is not, rather than
        // write a bucket no reader could parse.
        _ => out.truncate(start),
    }
}

pub fn decode_bucket<R: Record>(bucket: &[u8]) -> Vec<R> {
    records_of(bucket).filter_map(R::decode).collect()
}

/// The records this build understands, and the raw bytes of those it does not: a record kind
/// (or a field value) added by a newer module. [`BucketTable::update`] writes the latter back
/// unchanged after the records it knows, so a module never drops what a newer one wrote
/// (docs/upgrading.md). It cannot tell when they expire: the modules that know them prune them.
fn decode_bucket_keeping_the_rest<R: Record>(bucket: &[u8]) -> (Vec<R>, Vec<&[u8]>) {
    let mut known = Vec::new();
    let mut not_understood = Vec::new();
    for raw in records_of(bucket) {
        match R::decode(raw) {
            Some(record) => known.push(record),
            None => not_understood.push(raw),
        }
    }
    (known, not_understood)
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers for records

/// Writes up to 255 bytes behind a length byte (config validation keeps names shorter).
pub fn put_short_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len().min(255);
    out.push(len as u8);
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

/// The most scope ids a list holds; 0xFF is left free as a marker.
pub const MAX_SCOPE_IDS: usize = 254;

pub fn put_scopes(out: &mut Vec<u8>, scopes: &[ScopeId]) {
    let count = scopes.len().min(MAX_SCOPE_IDS);
    out.push(count as u8);
    for scope in scopes.iter().take(count) {
        out.extend_from_slice(&scope.to_be_bytes());
    }
}

/// The mark that starts an audience (RFC 8707) appended to a grant or code record. A field
/// appended later starts with a greater mark, so a reader that finds another byte here stops
/// and keeps the rest as a newer module's fields (docs/upgrading.md).
pub const AUDIENCE_MARK: u8 = 0x01;

/// Appends `audience` behind [`AUDIENCE_MARK`], or nothing when it is unbound (so an unbound
/// grant's bytes are those of a record written before audiences existed).
pub fn put_audience(out: &mut Vec<u8>, audience: &Audience) {
    if audience.is_unbound() {
        return;
    }
    let uris = audience.uris();
    let count = uris.len().min(usize::from(u8::MAX));
    out.push(AUDIENCE_MARK);
    out.push(count as u8);
    for uri in uris.iter().take(count) {
        put_short_bytes(out, uri.as_bytes());
    }
}

/// A bounds-checked cursor: every read returns `None` past the end instead of panicking.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    pub fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[byte]| byte)
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }
    pub fn short_string(&mut self) -> Option<String> {
        let len = self.u8()?;
        String::from_utf8(self.take(usize::from(len))?.to_vec()).ok()
    }
    /// The audience [`put_audience`] wrote, if the next byte is its mark; unbound otherwise
    /// (nothing is consumed). `None` when the field is cut short or not UTF-8.
    pub fn audience(&mut self) -> Option<Audience> {
        if self.peek() != Some(AUDIENCE_MARK) {
            return Some(Audience::default());
        }
        self.u8()?;
        let count = self.u8()?;
        let uris = (0..count).map(|_| self.short_string()).collect::<Option<Vec<_>>>()?;
        Some(Audience::from_stored(uris))
    }
    pub fn scopes(&mut self) -> Option<Vec<ScopeId>> {
        let count = self.u8()?;
        (0..count).map(|_| self.u32()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::keys::Home;

    const TEST_TABLE: Table = Table { name: "t", home: Home::Envoy };
    use crate::host::memory::MemoryStore;

    /// A record that is a number and an expiry.
    #[derive(Clone, Debug, PartialEq)]
    struct Note(u32, u64);

    impl Record for Note {
        fn decode(bytes: &[u8]) -> Option<Self> {
            let mut r = Reader(bytes);
            Some(Note(r.u32()?, r.u64()?))
        }
        fn encode_into(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0.to_be_bytes());
            out.extend_from_slice(&self.1.to_be_bytes());
        }
        fn prune(&mut self, now: u64) -> bool {
            self.1 > now
        }
    }

    fn push(note: Note) -> impl FnMut(&mut Vec<Note>) -> Result<(), StoreError> {
        move |records| {
            records.push(note.clone());
            Ok(())
        }
    }

    #[test]
    fn initialize_creates_buckets_once_and_grows_without_wiping() {
        let shared = MemoryStore::default();
        let table = BucketTable::new(&shared, TEST_TABLE, 4);
        assert_eq!(table.initialize().unwrap(), 4);
        table.update(2, 0, push(Note(1, 10))).unwrap();
        assert_eq!(table.initialize().unwrap(), 0);
        let bigger = BucketTable::new(&shared, TEST_TABLE, 6);
        assert_eq!(bigger.initialize().unwrap(), 2);
        assert_eq!(decode_bucket::<Note>(&bigger.read(2).unwrap().unwrap()), vec![Note(1, 10)]);
        assert_eq!(shared.key_count(), 6 + 2, "buckets, the count and the sweep cursor");
    }

    #[test]
    fn a_smaller_table_empties_what_it_gives_up_so_growing_again_revives_nothing() {
        let shared = MemoryStore::default();
        let big = BucketTable::new(&shared, TEST_TABLE, 6);
        big.initialize().unwrap();
        big.update(5, 0, push(Note(1, 10))).unwrap();
        BucketTable::new(&shared, TEST_TABLE, 4).initialize().unwrap();
        big.initialize().unwrap();
        assert!(decode_bucket::<Note>(&big.read(5).unwrap().unwrap()).is_empty());
    }

    #[test]
    fn missing_and_out_of_range_buckets_are_not_written() {
        let shared = MemoryStore::default();
        let table = BucketTable::new(&shared, TEST_TABLE, 4);
        assert!(table.update(1, 0, push(Note(1, 10))).unwrap().is_none());
        table.initialize().unwrap();
        assert!(table.update(4, 0, push(Note(1, 10))).unwrap().is_none());
        assert_eq!(table.read(4).unwrap(), None);
        assert_eq!(shared.key_count(), 4 + 2);
    }

    #[test]
    fn updates_prune_expired_records_and_report_the_change() {
        let shared = MemoryStore::default();
        let table = BucketTable::new(&shared, TEST_TABLE, 1);
        table.initialize().unwrap();
        for (id, expiry) in [(1, 5), (2, 50), (3, 6)] {
            assert_eq!(table.update(0, 0, push(Note(id, expiry))).unwrap().unwrap().records_delta, 1);
        }
        let updated = table.update(0, 10, push(Note(4, 60))).unwrap().unwrap();
        assert_eq!(updated.records_delta, 1 - 2);
        assert_eq!(decode_bucket::<Note>(&table.read(0).unwrap().unwrap()), vec![Note(2, 50), Note(4, 60)]);
    }

    #[test]
    fn a_record_kind_this_build_does_not_know_survives_a_rewrite_unchanged() {
        let shared = MemoryStore::default();
        let table = BucketTable::new(&shared, TEST_TABLE, 1);
        table.initialize().unwrap();
        table.update(0, 0, push(Note(1, 10))).unwrap();
        // A newer module's record of another kind: too short to be a Note.
        let from_a_newer_module = [0xA5, 0x01, 0x02];
        let mut bucket = table.read(0).unwrap().unwrap();
        bucket.extend_from_slice(&(from_a_newer_module.len() as u16).to_be_bytes());
        bucket.extend_from_slice(&from_a_newer_module);
        shared.set("tokengate/t/0", &bucket, 0).unwrap();

        table.update(0, 20, push(Note(2, 30))).unwrap();

        let rewritten = table.read(0).unwrap().unwrap();
        assert_eq!(decode_bucket::<Note>(&rewritten), vec![Note(2, 30)], "the expired Note was pruned");
        assert_eq!(records_of(&rewritten).filter(|raw| *raw == from_a_newer_module).count(), 1);
    }

    #[test]
    fn garbage_buckets_read_as_empty() {
        for garbage in [&[][..], &[0xff; 40][..], &[1, 0xff, 0xff, 1][..], &[1, 0, 3, 0, 0, 0][..]] {
            assert!(decode_bucket::<Note>(garbage).is_empty());
        }
    }
}
