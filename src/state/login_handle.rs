//! The login page's hidden `handle`: the pending authorization request (RFC 6749 §4.1.1)
//! travels in the page itself, so serving the page (`GET` or `HEAD /authorize`) stores
//! nothing, and nobody can fill a table by asking for pages.
//!
//! A handle is `base64url(format ‖ expires_at ‖ nonce ‖ request ‖ tag)`: the tag is
//! HMAC-SHA-256 (RFC 2104) over everything before it, under a key every worker (and, in fleet
//! mode, every replica) shares. The request's fields are what the client itself put in the URL
//! of `GET /authorize`, so a handle needs integrity (nobody may swap the client, redirect URI,
//! scope or PKCE challenge the checks approved) and an expiry, not secrecy: it is
//! authenticated, not encrypted. The random nonce makes every page's handle distinct.
//!
//! The key is 32 random bytes in a one-bucket table (`tokengate/authz-key/0`, a fleet table),
//! created by the first login page ever served and never changed afterwards. Its slot exists
//! from start-up ([`BucketTable::initialize`]), so creating the key is a compare-and-swap: two
//! workers (or replicas) creating it at once both end up using the one that was stored. Each
//! VM keeps the key once it has read it ([`KeyMemory`]), so a warm login page reads nothing.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::host::{Randomness, SharedStore, StoreError};
use crate::state::authorization::Ticket;
use crate::state::buckets::{put_audience, BucketTable, Reader, Record};
use crate::state::keys;

const KEY_BYTES: usize = 32;
/// The key's table has one bucket.
pub const KEY_BUCKETS: u32 = 1;
const NONCE_BYTES: usize = 16;
const TAG_BYTES: usize = 32;
const FORMAT: u8 = 1;
/// Longer handles are refused unread: a `state` of 512 bytes and long URIs stay far below.
const MAX_HANDLE_CHARS: usize = 8192;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The key handles are sealed under. Its bytes never appear in `Debug` output.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HandleKey([u8; KEY_BYTES]);

impl std::fmt::Debug for HandleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandleKey(..)")
    }
}

impl HandleKey {
    fn mac(&self) -> HmacSha256 {
        // RFC 2104 §2: a key shorter than the hash's block (64 bytes for SHA-256) is padded
        // with zeros to the block's length, so this is HMAC under the 32-byte key, built
        // without the fallible any-length constructor.
        let mut block = [0u8; 64];
        for (padded, byte) in block.iter_mut().zip(self.0) {
            *padded = byte;
        }
        <HmacSha256 as KeyInit>::new(&block.into())
    }
}

/// One VM's copy of the key once read from the store (the key never changes once stored).
/// The filter keeps one per VM; tests make one per simulated VM.
#[derive(Default)]
pub struct KeyMemory(OnceLock<HandleKey>);

impl KeyMemory {
    pub const fn new() -> Self {
        KeyMemory(OnceLock::new())
    }
}

/// A handle that verified: the request it carries, and what makes it one of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedHandle {
    /// The pending request (`username` empty).
    pub ticket: Ticket,
    pub expires_at: u64,
    /// The handle's MAC: what a used handle is remembered by.
    pub tag: [u8; TAG_BYTES],
}

/// Seals `ticket` (all but its `username`) until `expires_at`, `nonce` making it unique.
pub fn seal(key: &HandleKey, ticket: &Ticket, expires_at: u64, nonce: [u8; NONCE_BYTES]) -> String {
    let mut bytes = Vec::with_capacity(128);
    bytes.push(FORMAT);
    bytes.extend_from_slice(&expires_at.to_be_bytes());
    bytes.extend_from_slice(&nonce);
    ticket.encode_request(&mut bytes);
    put_audience(&mut bytes, &ticket.audience);
    ticket.encode_openid(&mut bytes);
    let tag = key.mac().chain_update(&bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The request a handle carries, if its MAC verifies under `key` (a constant-time check) and it
/// has not expired at `now`. Anything else (forged, altered, truncated, sealed under another
/// key, expired) is `None`.
pub fn open(key: &HandleKey, handle: &str, now: u64) -> Option<OpenedHandle> {
    if handle.len() > MAX_HANDLE_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(handle).ok()?;
    let sealed_len = bytes.len().checked_sub(TAG_BYTES)?;
    let (sealed, tag) = bytes.split_at_checked(sealed_len)?;
    key.mac().chain_update(sealed).verify_slice(tag).ok()?;
    let mut r = Reader(sealed);
    if r.u8()? != FORMAT {
        return None;
    }
    let expires_at = r.u64()?;
    if expires_at <= now {
        return None;
    }
    r.take(NONCE_BYTES)?;
    let mut ticket = Ticket::decode_request(&mut r)?;
    ticket.audience = r.audience()?;
    ticket.decode_openid(&mut r)?;
    if !r.0.is_empty() {
        return None;
    }
    Some(OpenedHandle { ticket, expires_at, tag: tag.try_into().ok()? })
}

/// The key as its bucket holds it: one record of 32 bytes that never expires.
#[derive(Clone)]
struct StoredKey([u8; KEY_BYTES]);

impl Record for StoredKey {
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(StoredKey(bytes.try_into().ok()?))
    }
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn prune(&mut self, _now: u64) -> bool {
        true
    }
}

/// Where the key lives, and this VM's copy of it.
pub struct HandleKeys<'h> {
    slot: BucketTable<'h>,
    random: &'h dyn Randomness,
    memory: &'h KeyMemory,
}

impl<'h> HandleKeys<'h> {
    pub fn new(shared: &'h dyn SharedStore, random: &'h dyn Randomness, memory: &'h KeyMemory) -> Self {
        HandleKeys { slot: BucketTable::new(shared, keys::LOGIN_KEY, KEY_BUCKETS), random, memory }
    }

    /// The key's slot (one fleet table key).
    pub fn bucket_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.slot.keys()
    }

    /// Creates the key's empty slot. Only for `on_configure` (see [`crate::state::buckets`]).
    pub fn initialize(&self) -> Result<u32, StoreError> {
        self.slot.initialize()
    }

    /// The key: this VM's copy, else the stored one, else a new one stored now. A key this
    /// call created is not kept in memory: in fleet mode it is only written once etcd accepts
    /// the pass, so the next request reads it back (and keeps what it finds).
    pub fn key(&self, now: u64) -> Result<HandleKey, StoreError> {
        if let Some(key) = self.memory.0.get() {
            return Ok(*key);
        }
        let mut fresh: Option<[u8; KEY_BYTES]> = None;
        let updated = self.slot.update(0, now, |stored: &mut Vec<StoredKey>| {
            if let Some(StoredKey(key)) = stored.first() {
                return Ok::<_, StoreError>((*key, true));
            }
            let key = match fresh {
                Some(key) => key,
                None => {
                    let mut key = [0u8; KEY_BYTES];
                    self.random.fill(&mut key).map_err(|_| StoreError::Unavailable)?;
                    *fresh.insert(key)
                }
            };
            stored.push(StoredKey(key));
            Ok((key, false))
        })?;
        let (key, was_stored) = updated.ok_or(StoreError::Unavailable)?.value;
        if was_stored {
            return Ok(*self.memory.0.get_or_init(|| HandleKey(key)));
        }
        Ok(HandleKey(key))
    }

    /// A handle for `ticket`, good until `expires_at`.
    pub fn seal(&self, ticket: &Ticket, now: u64, expires_at: u64) -> Result<String, StoreError> {
        let key = self.key(now)?;
        let mut nonce = [0u8; NONCE_BYTES];
        self.random.fill(&mut nonce).map_err(|_| StoreError::Unavailable)?;
        Ok(seal(&key, ticket, expires_at, nonce))
    }

    /// What `handle` carries, if it is one of ours and still good at `now` (see [`open`]).
    pub fn open(&self, handle: &str, now: u64) -> Result<Option<OpenedHandle>, StoreError> {
        Ok(open(&self.key(now)?, handle, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::{EpochHost, MemoryStore};
    use crate::host::SystemRandomness;
    use crate::state::authorization::tests::ticket;

    const KEY: HandleKey = HandleKey([7; KEY_BYTES]);

    #[test]
    fn a_sealed_request_opens_under_its_key_until_it_expires() {
        let handle = seal(&KEY, &ticket(), 1000, [1; NONCE_BYTES]);
        let opened = open(&KEY, &handle, 999).unwrap();
        assert_eq!((opened.ticket, opened.expires_at), (ticket(), 1000));
        assert_eq!(open(&KEY, &handle, 1000), None, "expired");
        assert_eq!(open(&HandleKey([8; KEY_BYTES]), &handle, 0), None, "another key");
        let no_state = Ticket { state: None, ..ticket() };
        assert_eq!(open(&KEY, &seal(&KEY, &no_state, 10, [0; NONCE_BYTES]), 0).unwrap().ticket, no_state);
        assert_ne!(handle, seal(&KEY, &ticket(), 1000, [2; NONCE_BYTES]), "the nonce makes it unique");
    }

    #[test]
    fn any_change_to_a_handle_is_refused() {
        let handle = seal(&KEY, &ticket(), 1000, [1; NONCE_BYTES]);
        let bytes = URL_SAFE_NO_PAD.decode(&handle).unwrap();
        // Every byte flipped in turn: the expiry, the nonce, each field and the tag itself.
        for at in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[at] ^= 0x01;
            assert_eq!(open(&KEY, &URL_SAFE_NO_PAD.encode(&altered), 0), None, "byte {at}");
        }
        for cut in 0..bytes.len() {
            assert_eq!(open(&KEY, &URL_SAFE_NO_PAD.encode(&bytes[..cut]), 0), None, "cut at {cut}");
        }
        for junk in ["", "forged", "!!!!", &"A".repeat(MAX_HANDLE_CHARS + 4)] {
            assert_eq!(open(&KEY, junk, 0), None);
        }
    }

    #[test]
    fn the_key_is_made_once_then_read_from_memory() {
        let (host, memory) = (EpochHost::default(), KeyMemory::new());
        let keys = HandleKeys::new(&host, &SystemRandomness, &memory);
        keys.initialize().unwrap();
        let made = keys.key(0).unwrap();
        let read = keys.key(1).unwrap();
        assert_eq!(made, read, "read back as stored");
        let reads = host.reads.get();
        assert_eq!(keys.key(2).unwrap(), made);
        assert_eq!(host.reads.get(), reads, "a warm VM reads nothing");
        // Another VM of the same Envoy finds the same key.
        let other = KeyMemory::new();
        assert_eq!(HandleKeys::new(&host, &SystemRandomness, &other).key(3).unwrap(), made);
    }

    #[test]
    fn two_workers_making_the_key_at_once_both_use_the_stored_one() {
        let shared = MemoryStore::default();
        let (first, second) = (KeyMemory::new(), KeyMemory::new());
        HandleKeys::new(&shared, &SystemRandomness, &first).initialize().unwrap();
        // The second worker's write lands between the first one's read and its write: the
        // first one's compare-and-swap fails, and it reads back the second one's key.
        let racing = RacingStore { inner: &shared, second: &second, raced: false.into() };
        let key = HandleKeys::new(&racing, &SystemRandomness, &first).key(0).unwrap();
        let stored = HandleKeys::new(&shared, &SystemRandomness, &KeyMemory::new()).key(1).unwrap();
        assert_eq!(key, stored);
        assert_eq!(HandleKeys::new(&shared, &SystemRandomness, &second).key(2).unwrap(), stored);
    }

    /// A store where another worker makes the key just before this one's first write.
    struct RacingStore<'a> {
        inner: &'a MemoryStore,
        second: &'a KeyMemory,
        raced: std::cell::Cell<bool>,
    }

    impl SharedStore for RacingStore<'_> {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
            if !self.raced.replace(true) {
                HandleKeys::new(self.inner, &SystemRandomness, self.second).key(0)?;
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn without_its_slot_there_is_no_key() {
        let shared = MemoryStore::default();
        let memory = KeyMemory::new();
        assert_eq!(HandleKeys::new(&shared, &SystemRandomness, &memory).key(0), Err(StoreError::Unavailable));
        assert_eq!(shared.key_count(), 0, "request paths never create keys");
    }
}
