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
//! In fleet mode the grants live in etcd, so the record must too: one shared-data key per Envoy
//! would forget, at the next restart, the change a rollback must not undo. There the record is
//! [`FLEET_KEY`], a key of the fleet's cache kept in etcd like the grants' buckets, written
//! through the fleet layer's transactions (see `crate::fleet::credentials`).

use std::collections::BTreeMap;

use crate::host::{SharedStore, StoreError};
use crate::state::buckets::{put_short_bytes, Reader, CAS_ATTEMPTS, EMPTY_BUCKET};

const KEY: &str = "tokengate/credential-changes";
/// The record's key in fleet mode: in each Envoy's cache of etcd, `<prefix>credential-changes/0`
/// in etcd.
pub const FLEET_KEY: &str = "tokengate/credential-changes/0";

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

fn decode(bytes: &[u8]) -> Entries {
    let mut entries = BTreeMap::new();
    let mut r = Reader(bytes);
    while let Some(kind) = r.u8() {
        let kind = if kind == b'u' { CredentialKind::User } else { CredentialKind::Application };
        let (Some(name), Some(fingerprint), Some(changed_at), Some(present)) =
            (r.short_string(), r.u32(), r.u64(), r.u8())
        else {
            break;
        };
        entries.insert((kind, name), Entry { fingerprint, changed_at, present: present != 0 });
    }
    entries
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

/// When each application's or user's credentials last changed, as one VM last read it:
/// by name, the application's and the user's time (0: never changed); and the name of every
/// application any config has listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialChanges(foldhash::HashMap<String, [u64; 2]>, foldhash::HashSet<String>);

impl CredentialChanges {
    fn from_entries(entries: &Entries) -> Self {
        let mut changes = foldhash::HashMap::<String, [u64; 2]>::default();
        for ((kind, name), entry) in entries.iter().filter(|(_, entry)| entry.changed_at > 0) {
            let times = changes.entry(name.clone()).or_default();
            match kind {
                CredentialKind::Application => times[0] = entry.changed_at,
                CredentialKind::User => times[1] = entry.changed_at,
            }
        }
        let configured = entries
            .keys()
            .filter(|(kind, _)| *kind == CredentialKind::Application)
            .map(|(_, name)| name.clone())
            .collect();
        CredentialChanges(changes, configured)
    }

    /// True when some config loaded so far configured an application of this name (so it is
    /// not a registered client, whatever this VM's config says).
    pub fn ever_configured(&self, consumer_key: &str) -> bool {
        self.1.contains(consumer_key)
    }

    /// True when a token issued at `issued_at` predates the last change of this credential.
    pub fn ended(&self, kind: CredentialKind, name: &str, issued_at: u64) -> bool {
        let Some([application, user]) = self.0.get(name) else { return false };
        let changed_at = match kind {
            CredentialKind::Application => application,
            CredentialKind::User => user,
        };
        issued_at < *changed_at
    }

    /// Reads the shared record without changing it (the timer's refresh).
    pub fn read(shared: &dyn SharedStore) -> Result<Self, StoreError> {
        Self::read_under(shared, KEY)
    }

    /// Reads the record kept under `key` without changing it.
    pub fn read_under(shared: &dyn SharedStore, key: &str) -> Result<Self, StoreError> {
        Ok(match shared.get(key)? {
            Some((bytes, _)) => Self::from_record(&bytes),
            None => CredentialChanges::default(),
        })
    }

    /// The changes a stored record says (an empty or unreadable one says none).
    pub fn from_record(bytes: &[u8]) -> Self {
        CredentialChanges::from_entries(&decode(bytes))
    }

    /// Creates the fleet record's cache key, unknown, if this Envoy lacks it: the fleet's cache
    /// only takes etcd's word for keys that exist (see `crate::fleet::cache::store`).
    pub fn create_fleet_record(shared: &dyn SharedStore) -> Result<(), StoreError> {
        match shared.get(FLEET_KEY)? {
            Some(_) => Ok(()),
            None => shared.set(FLEET_KEY, EMPTY_BUCKET, 0),
        }
    }

    /// Records the credentials of a config being loaded at `now`, and returns the changes.
    ///
    /// `credentials` lists every configured (kind, name, fingerprint). A name seen before with
    /// another fingerprint, or coming back after it disappeared, changed now; a name missing
    /// from this config disappeared now. A change time never moves back (a replica whose clock
    /// is behind, or that loaded its config before the last change was recorded, must not
    /// revive what that change ended).
    pub fn record(
        shared: &dyn SharedStore,
        credentials: &[(CredentialKind, &str, u32)],
        now: u64,
    ) -> Result<Self, StoreError> {
        Self::record_under(shared, KEY, credentials, now)
    }

    /// [`Self::record`] for the record kept under `key`.
    pub fn record_under(
        shared: &dyn SharedStore,
        key: &str,
        credentials: &[(CredentialKind, &str, u32)],
        now: u64,
    ) -> Result<Self, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let (before, cas) = match shared.get(key)? {
                Some((bytes, cas)) => (decode(&bytes), cas),
                None => (BTreeMap::new(), 0),
            };
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
            if entries == before {
                return Ok(CredentialChanges::from_entries(&entries));
            }
            match shared.set(key, &encode(&entries), cas) {
                Ok(()) => return Ok(CredentialChanges::from_entries(&entries)),
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
    fn an_empty_fleet_record_says_nothing_changed() {
        let shared = MemoryStore::default();
        CredentialChanges::create_fleet_record(&shared).unwrap();
        assert_eq!(CredentialChanges::read_under(&shared, FLEET_KEY).unwrap(), CredentialChanges::default());
        CredentialChanges::record_under(&shared, FLEET_KEY, &[(App, "a", 1)], 10).unwrap();
        let (_, cas) = shared.get(FLEET_KEY).unwrap().unwrap();
        CredentialChanges::create_fleet_record(&shared).unwrap();
        assert_eq!(shared.get(FLEET_KEY).unwrap().unwrap().1, cas, "creating it again rewrote the record");
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
    fn the_record_round_trips() {
        let mut entries = Entries::new();
        entries.insert((App, "ä".to_owned()), Entry { fingerprint: 7, changed_at: 3, present: true });
        entries.insert((User, "u".to_owned()), Entry { fingerprint: 9, changed_at: 0, present: false });
        assert_eq!(decode(&encode(&entries)), entries);
        assert!(decode(&[0xff, 0xff]).is_empty());
    }
}
