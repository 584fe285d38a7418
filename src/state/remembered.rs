//! A worker's memory of the access tokens it validated, so that a Bearer hit can skip the
//! store's shared-data read (about 11,000 instructions in Envoy) for one process-wide metric
//! read (about 1,300).
//!
//! What is remembered is only ever trusted together with a *token epoch*: a process-wide
//! counter every path that ends or changes stored tokens bumps after its write (revocation,
//! refresh rotation and reuse, a replayed code's grant revocation; see
//! [`crate::state::grants::TokenStore`]). An entry remembered at epoch `e` is used only while
//! the counter still reads `e`, so a token ended on any worker is looked up afresh by every
//! worker's very next request. Expiry is checked against the clock on every use.
//!
//! Only the store's answer is remembered: whether the grant's application and user still
//! stand (credential changes, a deleted or re-keyed registration) is judged afresh on every
//! request. In fleet mode another replica's revocation reaches this one through etcd's watch,
//! not through a local write: the watcher moves the epoch once it has put a change that may end
//! or alter a token in the cache (see [`crate::fleet::watch`]), and a pass's own change moves
//! it once it holds.
//!
//! The memory is fixed: [`SLOTS`] entries chosen by the token's [`recall_key`] (each new
//! token takes its slot from whatever was there), so it never grows with time or traffic.
//!
//! The same bounded table serves two other memories: application secrets this worker verified
//! ([`verify_remembering`]) and the failure limiter's names found unlocked
//! ([`crate::state::lockout`]).

use std::cell::RefCell;
use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::host::{Randomness, SystemRandomness};
use crate::oauth::credentials::SecretVerifier;
use crate::state::token::TokenHash;

thread_local! {
    /// This VM's key for [`recall_key`], drawn once when the VM starts; `None` when no
    /// randomness was to be had, and then nothing is remembered.
    static RECALL_KEY: Option<SipHasher24> = {
        let mut key = [0u8; 16];
        SystemRandomness.fill(&mut key).ok().map(|()| SipHasher24::new_with_key(&key))
    };
    /// Application secrets this worker verified, by [`recall_key`] of (digest, secret).
    static VERIFIED: RefCell<RememberedGrants<()>> = RefCell::new(RememberedGrants::default());
}

/// `verifier.verify(presented)`, answered from this worker's memory when this very secret
/// matched this very digest before: an application that calls `/token` again skips the
/// SHA-256 (about a tenth of the request in Envoy). The memory is keyed by SipHash under the
/// VM's key over the digest and the secret, so a changed secret (a new digest) or another
/// secret never meets an entry, and it holds no secret. Only fast digests are remembered: a
/// user's PBKDF2 password is slow on purpose, and a memory that skipped it would let whoever
/// can read this VM's memory test guesses at SipHash's speed.
pub fn verify_remembering(verifier: &SecretVerifier, presented: &str) -> bool {
    let SecretVerifier::Sha256 { digest, .. } = verifier else { return verifier.verify(presented) };
    let Some(key) = recall_key_of(&[digest, presented.as_bytes()]) else { return verifier.verify(presented) };
    if VERIFIED.with(|memory| memory.borrow().recall(&key, 0, 0)).is_some() {
        return true;
    }
    let verified = verifier.verify(presented);
    if verified {
        VERIFIED.with(|memory| memory.borrow_mut().remember(key, 0, u64::MAX, ()));
    }
    verified
}

/// A token's key in this worker's memory: SipHash-2-4 (128 bits) of its bytes under this VM's
/// random key. SipHash is a keyed pseudo-random function, so nobody who lacks the key can
/// make another token meet a remembered one's key, and the memory holds no token and no
/// store key. It costs a tenth of the store key's SHA-256, which a warm hit no longer needs.
pub fn recall_key(token: &[u8]) -> Option<TokenHash> {
    recall_key_of(&[token])
}

/// [`recall_key`] of several fields of any length, each written after its length, so that no
/// two different lists of fields hash the same bytes (`["ab", "c"]` is not `["a", "bc"]`).
pub fn recall_key_of_fields(fields: &[&[u8]]) -> Option<TokenHash> {
    RECALL_KEY.with(|key| {
        let mut hasher = *key.as_ref()?;
        for field in fields {
            hasher.write_usize(field.len());
            hasher.write(field);
        }
        Some(u128::from(hasher.finish128()).to_le_bytes())
    })
}

/// [`recall_key`] of parts: each but the last must have a fixed length, so that the
/// concatenation is unambiguous.
fn recall_key_of(parts: &[&[u8]]) -> Option<TokenHash> {
    RECALL_KEY.with(|key| {
        let mut hasher = *key.as_ref()?;
        for part in parts {
            hasher.write(part);
        }
        Some(u128::from(hasher.finish128()).to_le_bytes())
    })
}

/// Entries per worker. A slot holds one grant view (its owner's names and scopes, about 100
/// to 200 bytes), so the whole memory stays well under a megabyte.
pub const SLOTS: usize = 1024;

struct Slot<G> {
    hash: TokenHash,
    epoch: u64,
    expires_at: u64,
    grant: G,
}

pub struct RememberedGrants<G> {
    slots: Vec<Option<Slot<G>>>,
}

impl<G: Clone> Default for RememberedGrants<G> {
    fn default() -> Self {
        RememberedGrants { slots: (0..SLOTS).map(|_| None).collect() }
    }
}

/// The pair of slots a token may take: two per set, so that two tokens whose hashes pick
/// the same set do not evict each other on every request.
fn set_of(hash: &TokenHash) -> usize {
    let [a, b, ..] = *hash;
    (usize::from(u16::from_le_bytes([a, b])) % (SLOTS / 2)) * 2
}

impl<G: Clone> RememberedGrants<G> {
    /// The grant remembered for `hash`, if it was remembered at `epoch` and has not expired
    /// by `now` (an expired one is left to the store, which says so).
    pub fn recall(&self, hash: &TokenHash, epoch: u64, now: u64) -> Option<G> {
        let set = set_of(hash);
        let slot = self.slots.get(set..set + 2)?.iter().flatten().find(|slot| slot.hash == *hash)?;
        (slot.epoch == epoch && now < slot.expires_at).then(|| slot.grant.clone())
    }

    /// Remembers what the store said about `hash` at `epoch` (read before the store was).
    /// The token goes first in its set; the one it displaces moves second, and the second
    /// is forgotten.
    pub fn remember(&mut self, hash: TokenHash, epoch: u64, expires_at: u64, grant: G) {
        let set = set_of(&hash);
        let Some(pair) = self.slots.get_mut(set..set + 2) else { return };
        let fresh = Some(Slot { hash, epoch, expires_at, grant });
        if let [first, second] = pair {
            if first.as_ref().is_some_and(|slot| slot.hash == hash) {
                *first = fresh;
            } else {
                *second = std::mem::replace(first, fresh);
            }
        }
    }

    /// Entries held (for tests and the bound's check).
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_secret_is_remembered_for_its_digest_only() {
        let verifier = SecretVerifier::hash_sha256("s3cret", b"salt");
        let rekeyed = SecretVerifier::hash_sha256("other", b"salt");
        assert!(!verify_remembering(&verifier, "wrong"));
        assert!(verify_remembering(&verifier, "s3cret"));
        assert!(verify_remembering(&verifier, "s3cret"), "remembered");
        assert!(!verify_remembering(&verifier, "wrong"), "a wrong secret is never remembered");
        assert!(!verify_remembering(&rekeyed, "s3cret"), "a new digest is checked afresh");
        assert!(verify_remembering(&rekeyed, "other"));
        let password = SecretVerifier::hash_pbkdf2("pw", b"salt-salt-salt", 1_000).unwrap();
        assert!(verify_remembering(&password, "pw") && !verify_remembering(&password, "pW"));
        VERIFIED.with(|memory| assert_eq!(memory.borrow().len(), 2, "PBKDF2 passwords are not remembered"));
    }

    #[test]
    fn fields_are_keyed_with_their_boundaries() {
        let key = recall_key_of_fields(&[b"ab", b"c"]).unwrap();
        assert_eq!(recall_key_of_fields(&[b"ab", b"c"]), Some(key));
        assert_ne!(recall_key_of_fields(&[b"a", b"bc"]), Some(key), "another split of the same bytes");
        assert_ne!(recall_key(b"abc"), Some(key));
    }

    #[test]
    fn recall_keys_are_stable_within_a_vm_and_differ_between_tokens() {
        let key = recall_key(b"token one").unwrap();
        assert_eq!(recall_key(b"token one"), Some(key));
        assert_ne!(recall_key(b"token two"), Some(key));
        // Another VM (here: another thread) draws its own key.
        let elsewhere = std::thread::spawn(|| recall_key(b"token one")).join().unwrap();
        assert_ne!(elsewhere, Some(key));
    }

    fn hash(n: u16) -> TokenHash {
        let mut hash = [7u8; 16];
        hash[..2].copy_from_slice(&n.to_le_bytes());
        hash
    }

    #[test]
    fn a_remembered_grant_is_recalled_at_its_epoch_until_it_expires() {
        let mut memory = RememberedGrants::default();
        memory.remember(hash(1), 5, 1_000, "grant");
        assert_eq!(memory.recall(&hash(1), 5, 999), Some("grant"));
        assert_eq!(memory.recall(&hash(1), 5, 1_000), None, "expired at its expiry");
        assert_eq!(memory.recall(&hash(1), 6, 10), None, "a token ended since: the epoch moved");
        assert_eq!(memory.recall(&hash(2), 5, 10), None, "never remembered");
    }

    #[test]
    fn two_tokens_share_a_set_and_a_third_evicts_the_older() {
        let mut memory = RememberedGrants::default();
        let sets = (SLOTS / 2) as u16;
        let (first, second, third) = (hash(3), hash(3 + sets), hash(3 + 2 * sets));
        memory.remember(first, 1, 100, "first");
        assert_eq!(memory.recall(&second, 1, 10), None, "same set, another token");
        memory.remember(second, 1, 100, "second");
        assert_eq!(
            (memory.recall(&first, 1, 10), memory.recall(&second, 1, 10)),
            (Some("first"), Some("second"))
        );
        memory.remember(third, 1, 100, "third");
        assert_eq!(memory.recall(&first, 1, 10), None, "the older of the two went");
        assert_eq!(
            (memory.recall(&second, 1, 10), memory.recall(&third, 1, 10)),
            (Some("second"), Some("third"))
        );
    }

    #[test]
    fn remembering_a_token_again_replaces_its_entry() {
        let mut memory = RememberedGrants::default();
        let sets = (SLOTS / 2) as u16;
        memory.remember(hash(4), 1, 100, "old");
        memory.remember(hash(4 + sets), 1, 100, "neighbour");
        memory.remember(hash(4 + sets), 2, 100, "neighbour again");
        assert_eq!(memory.recall(&hash(4), 1, 10), Some("old"), "not pushed out by its neighbour's refresh");
        assert_eq!(memory.recall(&hash(4 + sets), 2, 10), Some("neighbour again"));
        assert_eq!(memory.len(), 2);
    }

    #[test]
    fn the_memory_never_holds_more_than_its_slots() {
        let mut memory = RememberedGrants::default();
        for n in 0..(4 * SLOTS as u16) {
            memory.remember(hash(n), 1, 100, n);
        }
        assert_eq!(memory.len(), SLOTS);
        let mut other = hash(9);
        other[5] = 0;
        assert_eq!(memory.recall(&other, 1, 10), None, "same slot and prefix, another hash");
    }
}
