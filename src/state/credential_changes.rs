//! Credential changes: what makes ending a token by a config change final.
//!
//! A grant remembers a fingerprint of the credentials it was issued under, so a config that
//! changes a secret or removes an application ends its tokens without touching the store. A
//! fingerprint alone, though, would bring those tokens back if a later config restored the old
//! secret or re-added the application. So every VM that loads a config records, in one
//! shared-data key, when each application's and user's credentials last changed or
//! disappeared; a token issued before its owner's last change is dead, whatever the fingerprint
//! says.
//!
//! Envoy may reuse an earlier config's plugin without calling `on_configure` again (a config
//! update that restores an earlier config exactly), so each VM also re-reads the record on a
//! timer, and its view is at most one timer period old.
//!
//! After a config update Envoy keeps serving the connections it drains with the old config's
//! VMs, for up to its drain time (600 s by default, `--drain-time-s`): there a changed secret
//! or password must not authenticate any more. The record keeps each name's fingerprint in the
//! newest config, so such a VM sees that its own is superseded. A restored config's reused VM
//! looks the same, though, and it is the current one again: the two are told apart by Envoy's
//! connection ids, process-wide and increasing at accept time, since after a listener update
//! only connections accepted later reach the new filter chain. Every change starts a new
//! *generation* of the record; the first request that a VM of that generation (one that loaded
//! the config after the change began) serves fixes the generation's *boundary*, the id of its
//! connection. A superseded VM serving a connection at or above the boundary serves a
//! connection accepted after the change, so its config is current again: it re-asserts its
//! credentials as the newest (a new generation, whose boundary is that connection). Below the
//! boundary, or while it is unknown, the connection is a draining one, and the superseded
//! credentials are refused. Connection ids are per Envoy process, as is this record.
//!
//! In fleet mode the grants live in etcd, so the record must too: one shared-data key per Envoy
//! would forget, at the next restart, the change a rollback must not undo. There the record is
//! [`FLEET_KEY`], a key of the fleet's cache kept in etcd like the grants' buckets, written
//! through the fleet layer's transactions (see `crate::fleet::credentials`). That record is
//! every replica's, and replicas may run different configs during a rolling deploy, each of
//! them current: so a fleet record never marks a name superseded, and the draining-connection
//! refusal above is local mode's alone.

use std::cell::Cell;
use std::collections::BTreeMap;

use crate::host::{Connection, SharedStore, StoreError};
use crate::state::buckets::{put_short_bytes, Reader, CAS_ATTEMPTS, EMPTY_BUCKET};
use crate::state::keys;

const KEY: &str = keys::CREDENTIAL_CHANGES_KEY;
/// The record's key in fleet mode: in each Envoy's cache of etcd, `<prefix>credential-changes/0`
/// in etcd.
pub const FLEET_KEY: &str = keys::CREDENTIAL_CHANGES_FLEET_KEY;
/// Marks the record's trailer, its generation and boundary (after every entry, so a reader
/// that does not know it still finds every entry first).
const GENERATION_MARK: u8 = b'g';

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialKind {
    Application,
    User,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    fingerprint: u32,
    /// When the credentials last changed or disappeared (0: never).
    changed_at: u64,
    present: bool,
}

/// In key order, so the record is written the same way whatever order it was built in.
type Entries = BTreeMap<(CredentialKind, String), Entry>;

/// The whole shared record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Record {
    entries: Entries,
    /// Moves on with every change of the newest config's credentials (0: none recorded yet).
    generation: u64,
    /// The id of the first connection a VM of this generation served (0: not yet known).
    boundary: u64,
    /// What a newer module appended after the trailer, kept as it was and written back last
    /// (docs/upgrading.md).
    newer_fields: Vec<u8>,
}

fn decode_record(bytes: &[u8]) -> Record {
    let mut record = Record::default();
    let mut r = Reader(bytes);
    while let Some(kind) = r.u8() {
        if kind == GENERATION_MARK {
            if let (Some(generation), Some(boundary)) = (r.u64(), r.u64()) {
                (record.generation, record.boundary) = (generation, boundary);
                record.newer_fields = r.0.to_vec();
            }
            break;
        }
        let kind = if kind == b'u' { CredentialKind::User } else { CredentialKind::Application };
        let (Some(name), Some(fingerprint), Some(changed_at), Some(present)) =
            (r.short_string(), r.u32(), r.u64(), r.u8())
        else {
            break;
        };
        record.entries.insert((kind, name), Entry { fingerprint, changed_at, present: present != 0 });
    }
    record
}

#[cfg(test)]
fn decode(bytes: &[u8]) -> Entries {
    decode_record(bytes).entries
}

fn encode(entries: &Entries) -> Vec<u8> {
    let mut out = Vec::new();
    for ((kind, name), entry) in entries {
        out.push(if *kind == CredentialKind::User { b'u' } else { b'a' });
        put_short_bytes(&mut out, name.as_bytes());
        out.extend_from_slice(&entry.fingerprint.to_be_bytes());
        out.extend_from_slice(&entry.changed_at.to_be_bytes());
        out.push(u8::from(entry.present));
    }
    out
}

fn encode_record(record: &Record) -> Vec<u8> {
    let mut out = encode(&record.entries);
    out.push(GENERATION_MARK);
    out.extend_from_slice(&record.generation.to_be_bytes());
    out.extend_from_slice(&record.boundary.to_be_bytes());
    out.extend_from_slice(&record.newer_fields);
    out
}

fn read_record(shared: &dyn SharedStore) -> Result<(Record, u32), StoreError> {
    read_record_under(shared, KEY)
}

fn read_record_under(shared: &dyn SharedStore, key: &str) -> Result<(Record, u32), StoreError> {
    Ok(match shared.get(key)? {
        Some((bytes, cas)) => (decode_record(&bytes), cas),
        None => (Record::default(), 0),
    })
}

/// The entries after a config with `credentials` loads at `now`: a name seen before with
/// another fingerprint, or coming back after it disappeared, changed now; a name missing from
/// this config disappeared now. A change time never moves back (a replica whose clock is
/// behind, or that loaded its config before the last change was recorded, must not revive
/// what that change ended).
fn apply(before: &Entries, credentials: &[(CredentialKind, &str, u32)], now: u64) -> Entries {
    let mut entries = before.clone();
    for entry in entries.values_mut() {
        entry.present = false;
    }
    for &(kind, name, fingerprint) in credentials {
        let key = (kind, name.to_owned());
        match (entries.get_mut(&key), before.get(&key)) {
            (Some(entry), Some(old)) => {
                if old.fingerprint != fingerprint || !old.present {
                    entry.fingerprint = fingerprint;
                    entry.changed_at = entry.changed_at.max(now);
                }
                entry.present = true;
            }
            _ => {
                entries.insert(key, Entry { fingerprint, changed_at: 0, present: true });
            }
        }
    }
    for (key, entry) in entries.iter_mut() {
        if !entry.present && before.get(key).is_some_and(|old| old.present) {
            entry.changed_at = entry.changed_at.max(now);
        }
    }
    entries
}

/// True when the newest config gives this name another fingerprint than `fingerprint`, or
/// none (see [`CredentialChanges::superseded`]).
fn superseded_in(entries: &Entries, kind: CredentialKind, name: &str, fingerprint: u32) -> bool {
    entries
        .get(&(kind, name.to_owned()))
        .is_some_and(|entry| entry.changed_at > 0 && !(entry.present && entry.fingerprint == fingerprint))
}

/// One credential's last change, as the record has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LastChange {
    /// When it changed or disappeared (0: never).
    at: u64,
    /// Its fingerprint in the newest config loaded; `None` when that config has no such name.
    newest: Option<u32>,
}

/// What a VM whose credential is superseded learns from the connection a request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reclaim {
    /// The record holds this VM's credential as the newest (again): serve. `Some(generation)`
    /// when this call re-asserted the VM's config, which now belongs to that generation.
    Current(Option<u64>),
    /// A connection accepted before the change (or one that cannot be told from it): refuse.
    Draining,
}

/// When each application's or user's credentials last changed, as one VM last read it:
/// by name, the application's and the user's last change; the name of every application any
/// config has listed; and the record's generation and boundary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialChanges {
    last: foldhash::HashMap<String, [LastChange; 2]>,
    configured: foldhash::HashSet<String>,
    generation: u64,
    /// Set in place once this VM learns the boundary, so that only its first request after a
    /// change pays for the connection id.
    boundary: Cell<u64>,
    /// Whether this is this Envoy's own record, whose newest config may supersede this VM's
    /// (false for fleet mode's record: see the module's text).
    judges_supersession: bool,
}

impl CredentialChanges {
    fn from_local_record(record: &Record) -> Self {
        CredentialChanges { judges_supersession: true, ..Self::from_fleet_record(record) }
    }

    fn from_fleet_record(record: &Record) -> Self {
        let mut last = foldhash::HashMap::<String, [LastChange; 2]>::default();
        for ((kind, name), entry) in record.entries.iter().filter(|(_, entry)| entry.changed_at > 0) {
            let both = last.entry(name.clone()).or_default();
            let change =
                LastChange { at: entry.changed_at, newest: entry.present.then_some(entry.fingerprint) };
            match kind {
                CredentialKind::Application => both[0] = change,
                CredentialKind::User => both[1] = change,
            }
        }
        let configured = record
            .entries
            .keys()
            .filter(|(kind, _)| *kind == CredentialKind::Application)
            .map(|(_, name)| name.clone())
            .collect();
        CredentialChanges {
            last,
            configured,
            generation: record.generation,
            boundary: Cell::new(record.boundary),
            judges_supersession: false,
        }
    }

    fn last_change(&self, kind: CredentialKind, name: &str) -> Option<LastChange> {
        let [application, user] = self.last.get(name)?;
        Some(match kind {
            CredentialKind::Application => *application,
            CredentialKind::User => *user,
        })
    }

    /// The record's generation this view was read at: a VM that records its config joins it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when some config loaded so far configured an application of this name (so it is
    /// not a registered client, whatever this VM's config says).
    pub fn ever_configured(&self, consumer_key: &str) -> bool {
        self.configured.contains(consumer_key)
    }

    /// True when a token issued at `issued_at` predates the last change of this credential.
    pub fn ended(&self, kind: CredentialKind, name: &str, issued_at: u64) -> bool {
        self.last_change(kind, name).is_some_and(|change| issued_at < change.at)
    }

    /// True when, as this view has it, a config loaded after this VM's changed this credential
    /// (this VM's config gives it `fingerprint`) or dropped its name: this VM serves either
    /// connections Envoy drains, or those of a restored config (see the module's text and
    /// [`Self::reclaim`]).
    ///
    /// Judged by fingerprint rather than by comparing load times: the VMs of the newest config
    /// agree with the record whatever their clocks read when each loaded (a wall clock may
    /// step back between two of them), so none is ever refused because of its own change.
    pub fn superseded(&self, kind: CredentialKind, name: &str, fingerprint: u32) -> bool {
        self.judges_supersession
            && self
                .last_change(kind, name)
                .is_some_and(|change| change.at > 0 && change.newest != Some(fingerprint))
    }

    /// Fixes the boundary of the generation `own_generation` (the one this VM's config
    /// belongs to) at the request's connection, if it is the record's and its boundary is not
    /// known yet; called on every request. The first comparison ends it in the steady state:
    /// only then is the connection id (a host call) read.
    ///
    /// Never lowers a known boundary: a reused VM that re-asserted its config also serves
    /// connections from before the change, and one of those as a boundary would make every
    /// draining connection above it look current.
    pub fn mark_boundary(
        &self,
        shared: &dyn SharedStore,
        own_generation: u64,
        connection: &dyn Connection,
    ) -> Result<(), StoreError> {
        if !self.judges_supersession
            || self.generation != own_generation
            || self.boundary.get() != 0
            || own_generation == 0
        {
            return Ok(());
        }
        let Some(id) = connection.id() else { return Ok(()) };
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, cas) = read_record(shared)?;
            if record.generation != own_generation {
                return Ok(());
            }
            if record.boundary != 0 {
                self.boundary.set(record.boundary);
                return Ok(());
            }
            record.boundary = id;
            match shared.set(KEY, &encode_record(&record), cas) {
                Ok(()) => {
                    self.boundary.set(id);
                    return Ok(());
                }
                Err(StoreError::CasMismatch) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::CasMismatch)
    }

    /// Whether a VM whose `(kind, name, fingerprint)` [`Self::superseded`] may still use it,
    /// serving a request on connection `connection_id`. Reads the record afresh (this view may
    /// be a timer tick old). Still superseded there: at or above the known boundary, the
    /// connection was accepted after the change, so this VM's config is current again; it
    /// re-asserts `credentials` (all of its config's) as the newest, as loading them at `now`
    /// would, in a new generation whose boundary is this connection. Otherwise the connection
    /// is a draining one.
    pub fn reclaim(
        shared: &dyn SharedStore,
        credentials: &[(CredentialKind, &str, u32)],
        (kind, name, fingerprint): (CredentialKind, &str, u32),
        connection_id: u64,
        now: u64,
    ) -> Result<Reclaim, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let (before, cas) = read_record(shared)?;
            if !superseded_in(&before.entries, kind, name, fingerprint) {
                return Ok(Reclaim::Current(None));
            }
            if before.boundary == 0 || connection_id < before.boundary {
                return Ok(Reclaim::Draining);
            }
            let generation = before.generation.saturating_add(1);
            let record = Record {
                entries: apply(&before.entries, credentials, now),
                generation,
                boundary: connection_id,
                newer_fields: before.newer_fields.clone(),
            };
            match shared.set(KEY, &encode_record(&record), cas) {
                Ok(()) => return Ok(Reclaim::Current(Some(generation))),
                Err(StoreError::CasMismatch) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::CasMismatch)
    }

    /// Reads the shared record without changing it (the timer's refresh).
    pub fn read(shared: &dyn SharedStore) -> Result<Self, StoreError> {
        Ok(CredentialChanges::from_local_record(&read_record(shared)?.0))
    }

    /// Reads fleet mode's record (through a fleet view or this Envoy's cache of it).
    pub fn read_fleet(shared: &dyn SharedStore) -> Result<Self, StoreError> {
        Ok(CredentialChanges::from_fleet_record(&read_record_under(shared, FLEET_KEY)?.0))
    }

    /// The changes a stored fleet record says (an empty or unreadable one says none).
    pub fn from_fleet_bytes(bytes: &[u8]) -> Self {
        CredentialChanges::from_fleet_record(&decode_record(bytes))
    }

    /// Creates the fleet record's cache key, unknown, if this Envoy lacks it: the fleet's cache
    /// only takes etcd's word for keys that exist (see `crate::fleet::cache::store`).
    pub fn create_fleet_record(shared: &dyn SharedStore) -> Result<(), StoreError> {
        match shared.get(FLEET_KEY)? {
            Some(_) => Ok(()),
            None => shared.set(FLEET_KEY, EMPTY_BUCKET, 0),
        }
    }

    /// [`Self::record`] into fleet mode's record, through a fleet view (so the pass's etcd
    /// transaction commits it).
    pub fn record_fleet(
        view: &dyn SharedStore,
        credentials: &[(CredentialKind, &str, u32)],
        now: u64,
    ) -> Result<Self, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let (before, cas) = read_record_under(view, FLEET_KEY)?;
            let entries = apply(&before.entries, credentials, now);
            if entries == before.entries {
                return Ok(CredentialChanges::from_fleet_record(&before));
            }
            let record = Record { entries, ..before };
            match view.set(FLEET_KEY, &encode_record(&record), cas) {
                Ok(()) => return Ok(CredentialChanges::from_fleet_record(&record)),
                Err(StoreError::CasMismatch) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::CasMismatch)
    }

    /// Records the credentials of a config being loaded at `now`, and returns the changes; the
    /// loading VM belongs to the returned view's [`Self::generation`].
    ///
    /// `credentials` lists every configured (kind, name, fingerprint). A name seen before with
    /// another fingerprint, or coming back after it disappeared, changed now; a name missing
    /// from this config disappeared now. Any change starts a new generation, whose boundary is
    /// not known yet.
    pub fn record(
        shared: &dyn SharedStore,
        credentials: &[(CredentialKind, &str, u32)],
        now: u64,
    ) -> Result<Self, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let (before, cas) = read_record(shared)?;
            let entries = apply(&before.entries, credentials, now);
            if entries == before.entries && before.generation > 0 {
                return Ok(CredentialChanges::from_local_record(&before));
            }
            let record =
                Record { entries, generation: before.generation.saturating_add(1), boundary: 0, ..before };
            match shared.set(KEY, &encode_record(&record), cas) {
                Ok(()) => return Ok(CredentialChanges::from_local_record(&record)),
                Err(StoreError::CasMismatch) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::CasMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryStore;
    use CredentialKind::{Application as App, User};

    #[test]
    fn an_unchanged_config_changes_nothing_and_writes_nothing() {
        let shared = MemoryStore::default();
        let config = [(App, "a", 1), (User, "a", 2)];
        let changes = CredentialChanges::record(&shared, &config, 10).unwrap();
        assert!(!changes.ended(App, "a", 0));
        let (_, cas) = shared.get(KEY).unwrap().unwrap();
        CredentialChanges::record(&shared, &config, 20).unwrap();
        assert_eq!(shared.get(KEY).unwrap().unwrap().1, cas, "reloading the same config rewrote the record");
    }

    #[test]
    fn a_new_secret_ends_older_tokens_even_after_a_rollback() {
        let shared = MemoryStore::default();
        CredentialChanges::record(&shared, &[(App, "a", 1)], 10).unwrap();
        let rotated = CredentialChanges::record(&shared, &[(App, "a", 2)], 20).unwrap();
        assert!(rotated.ended(App, "a", 19));
        assert!(!rotated.ended(App, "a", 20));
        let restored = CredentialChanges::record(&shared, &[(App, "a", 1)], 30).unwrap();
        assert!(restored.ended(App, "a", 15), "rolling back revived a token from before the rotation");
        // A VM that kept the old config sees the same through the timer's read.
        assert_eq!(CredentialChanges::read(&shared).unwrap(), restored);
    }

    #[test]
    fn a_change_recorded_with_an_earlier_time_never_moves_the_last_change_back() {
        let shared = MemoryStore::default();
        CredentialChanges::record(&shared, &[(App, "a", 1)], 10).unwrap();
        CredentialChanges::record(&shared, &[(App, "a", 2)], 20).unwrap();
        // A replica that loaded the old config at 15 (or whose clock is behind) records it late.
        let late = CredentialChanges::record(&shared, &[(App, "a", 1)], 15).unwrap();
        assert!(late.ended(App, "a", 19), "a late record revived tokens the change at 20 ended");
    }

    #[test]
    fn an_empty_fleet_record_says_nothing_changed_and_never_supersedes() {
        let shared = MemoryStore::default();
        CredentialChanges::create_fleet_record(&shared).unwrap();
        assert_eq!(CredentialChanges::read_fleet(&shared).unwrap(), CredentialChanges::default());
        CredentialChanges::record_fleet(&shared, &[(App, "a", 1)], 10).unwrap();
        let (_, cas) = shared.get(FLEET_KEY).unwrap().unwrap();
        CredentialChanges::create_fleet_record(&shared).unwrap();
        assert_eq!(shared.get(FLEET_KEY).unwrap().unwrap().1, cas, "creating it again rewrote the record");
        // Another replica's newer config: tokens from before it end, but this one's credential
        // is not refused (replicas may differ during a rolling deploy).
        let rotated = CredentialChanges::record_fleet(&shared, &[(App, "a", 2)], 20).unwrap();
        assert!(rotated.ended(App, "a", 15));
        assert!(!rotated.superseded(App, "a", 1));
        assert!(!CredentialChanges::read_fleet(&shared).unwrap().superseded(App, "a", 1));
    }

    #[test]
    fn removing_and_re_adding_a_name_ends_its_older_tokens() {
        let shared = MemoryStore::default();
        CredentialChanges::record(&shared, &[(App, "a", 1), (App, "b", 5)], 10).unwrap();
        CredentialChanges::record(&shared, &[(App, "b", 5)], 20).unwrap();
        CredentialChanges::record(&shared, &[(App, "b", 5)], 25).unwrap();
        let back = CredentialChanges::record(&shared, &[(App, "a", 1), (App, "b", 5)], 30).unwrap();
        assert!(back.ended(App, "a", 15));
        assert!(!back.ended(App, "a", 30));
        assert!(!back.ended(App, "b", 0), "an unchanged name was affected");
        assert!(!back.ended(User, "a", 0));
    }

    #[test]
    fn a_later_config_supersedes_an_older_configs_credentials_but_never_its_own() {
        let shared = MemoryStore::default();
        let old =
            CredentialChanges::record(&shared, &[(App, "a", 1), (User, "u", 5), (App, "b", 3)], 10).unwrap();
        assert!(!old.superseded(App, "a", 1) && !old.superseded(User, "u", 5));
        // The new config's first VM records the change; another of its VMs loads later, and a
        // third reads a wall clock that stepped back in between.
        let new_config = [(App, "a", 2), (User, "u", 6)];
        let first = CredentialChanges::record(&shared, &new_config, 20).unwrap();
        let later = CredentialChanges::record(&shared, &new_config, 21).unwrap();
        let clock_behind = CredentialChanges::record(&shared, &new_config, 15).unwrap();
        for view in [&first, &later, &clock_behind] {
            assert!(!view.superseded(App, "a", 2), "a VM of the new config refused its own secret");
            assert!(!view.superseded(User, "u", 6), "a VM of the new config refused its own password");
        }
        // The old config's VMs, still serving the connections Envoy drains, re-read the record.
        let old_reread = CredentialChanges::read(&shared).unwrap();
        assert!(old_reread.superseded(App, "a", 1), "the old secret still stands");
        assert!(old_reread.superseded(User, "u", 5), "the old password still stands");
        assert!(old_reread.superseded(App, "b", 3), "a dropped application still stands");
        assert!(!old_reread.superseded(App, "never-recorded", 9));
        assert!(!CredentialChanges::default().superseded(App, "a", 1), "an unread record refused");
    }

    /// A connection with a known id.
    struct AcceptedAs(u64);

    impl Connection for AcceptedAs {
        fn id(&self) -> Option<u64> {
            Some(self.0)
        }
    }

    const OLD: [(CredentialKind, &str, u32); 2] = [(App, "a", 1), (App, "kept", 7)];
    const NEW: [(CredentialKind, &str, u32); 2] = [(App, "a", 2), (App, "kept", 7)];

    /// The old config loads, then the new one; returns the new config's generation.
    fn rotate(shared: &MemoryStore) -> u64 {
        CredentialChanges::record(shared, &OLD, 10).unwrap();
        CredentialChanges::record(shared, &NEW, 20).unwrap().generation()
    }

    #[test]
    fn the_new_configs_first_request_fixes_the_boundary_and_later_ones_pay_nothing() {
        let shared = MemoryStore::default();
        let generation = rotate(&shared);
        let view = CredentialChanges::read(&shared).unwrap();
        view.mark_boundary(&shared, generation, &AcceptedAs(40)).unwrap();
        assert_eq!(read_record(&shared).unwrap().0.boundary, 40);
        // Known now: a later request on an older connection of this config moves nothing, and
        // never asks for its id.
        struct NeverAsked;
        impl Connection for NeverAsked {
            fn id(&self) -> Option<u64> {
                panic!("the connection id was read once the boundary was known")
            }
        }
        view.mark_boundary(&shared, generation, &NeverAsked).unwrap();
        // Another VM of the config, whose view predates the boundary, learns it and keeps it.
        let other = CredentialChanges::record(&shared, &NEW, 21).unwrap();
        other.mark_boundary(&shared, generation, &AcceptedAs(35)).unwrap();
        assert_eq!(read_record(&shared).unwrap().0.boundary, 40, "a known boundary was lowered");
        // A VM of an older generation never sets it, even if its credentials match the newest.
        let fresh = MemoryStore::default();
        let old_generation = CredentialChanges::record(&fresh, &OLD, 10).unwrap().generation();
        CredentialChanges::record(&fresh, &NEW, 20).unwrap();
        CredentialChanges::record(&fresh, &OLD, 30).unwrap();
        let restored_view = CredentialChanges::read(&fresh).unwrap();
        restored_view.mark_boundary(&fresh, old_generation, &AcceptedAs(5)).unwrap();
        assert_eq!(
            read_record(&fresh).unwrap().0.boundary,
            0,
            "a VM loaded before the change set the boundary"
        );
    }

    #[test]
    fn a_superseded_vm_on_a_connection_below_the_boundary_is_draining() {
        let shared = MemoryStore::default();
        let generation = rotate(&shared);
        let old_view = CredentialChanges::read(&shared).unwrap();
        assert!(old_view.superseded(App, "a", 1) && !old_view.superseded(App, "kept", 7));
        let reclaim = |id| CredentialChanges::reclaim(&shared, &OLD, (App, "a", 1), id, 30).unwrap();
        assert_eq!(reclaim(99), Reclaim::Draining, "served before the boundary is known");
        CredentialChanges::read(&shared)
            .unwrap()
            .mark_boundary(&shared, generation, &AcceptedAs(40))
            .unwrap();
        assert_eq!(reclaim(39), Reclaim::Draining);
        assert!(
            CredentialChanges::read(&shared).unwrap().superseded(App, "a", 1),
            "a refusal rewrote the record"
        );
    }

    #[test]
    fn a_restored_configs_vm_on_a_later_connection_re_asserts_its_credentials() {
        let shared = MemoryStore::default();
        let generation = rotate(&shared);
        CredentialChanges::read(&shared)
            .unwrap()
            .mark_boundary(&shared, generation, &AcceptedAs(40))
            .unwrap();
        // Envoy reuses the old config's VM for a restore without `on_configure`: a connection
        // accepted after the boundary proves it current.
        let reclaimed = CredentialChanges::reclaim(&shared, &OLD, (App, "a", 1), 50, 30).unwrap();
        let reasserted = Reclaim::Current(Some(generation + 1));
        assert_eq!(reclaimed, reasserted);
        let record = read_record(&shared).unwrap().0;
        assert_eq!((record.generation, record.boundary), (generation + 1, 50));
        let now_view = CredentialChanges::read(&shared).unwrap();
        assert!(!now_view.superseded(App, "a", 1), "the restored secret is still superseded");
        assert!(now_view.superseded(App, "a", 2), "the new config's draining VMs keep the new secret");
        assert!(now_view.ended(App, "a", 25), "re-asserting revived tokens from before it");
        // The new config's VM, on its own (now draining) connections below 50, is refused.
        let draining = CredentialChanges::reclaim(&shared, &NEW, (App, "a", 2), 45, 31).unwrap();
        assert_eq!(draining, Reclaim::Draining);
        // Another VM of the restored config finds its credential current, and writes nothing.
        let (_, cas) = shared.get(KEY).unwrap().unwrap();
        assert_eq!(
            CredentialChanges::reclaim(&shared, &OLD, (App, "a", 1), 20, 32).unwrap(),
            Reclaim::Current(None)
        );
        assert_eq!(shared.get(KEY).unwrap().unwrap().1, cas);
    }

    #[test]
    fn the_record_keeps_its_generation_and_boundary() {
        let mut record = Record { generation: 3, boundary: 9, ..Record::default() };
        record.entries.insert((User, "u".to_owned()), Entry { fingerprint: 9, changed_at: 4, present: true });
        assert_eq!(decode_record(&encode_record(&record)), record);
        // A record written before it had a trailer reads as generation 0, boundary unknown.
        assert_eq!(decode_record(&encode(&record.entries)), Record { generation: 0, boundary: 0, ..record });
    }

    #[test]
    fn a_field_a_newer_module_appended_after_the_trailer_survives_a_config_change() {
        let shared = MemoryStore::default();
        CredentialChanges::record(&shared, &[(App, "a", 1)], 10).unwrap();
        let mut newer = shared.get(KEY).unwrap().unwrap().0;
        newer.extend_from_slice(&[0x5A, 0x01, 0x02]);
        shared.set(KEY, &newer, 0).unwrap();

        CredentialChanges::record(&shared, &[(App, "a", 2)], 20).unwrap();

        let rewritten = decode_record(&shared.get(KEY).unwrap().unwrap().0);
        assert_eq!(rewritten.entries.get(&(App, "a".to_owned())).map(|entry| entry.fingerprint), Some(2));
        assert_eq!(rewritten.newer_fields, vec![0x5A, 0x01, 0x02]);
    }

    #[test]
    fn the_record_round_trips() {
        let mut entries = Entries::new();
        entries.insert((App, "ä".to_owned()), Entry { fingerprint: 7, changed_at: 3, present: true });
        entries.insert((User, "u".to_owned()), Entry { fingerprint: 9, changed_at: 0, present: false });
        assert_eq!(decode(&encode(&entries)), entries);
        assert!(decode(&[0xff, 0xff]).is_empty());
    }
}
