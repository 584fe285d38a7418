//! Brute-force limits on every check of a client secret or user password (RFC 6749 §2.3.1,
//! §4.3.2; RFC 6819 §5.1.4.2.3).
//!
//! Failed attempts are counted per name (consumer key or username) in a fixed window, in a
//! small [`BucketTable`] so that every worker sees the same count. A name with too many
//! failures in one window is locked for a while: every attempt is refused before any secret is
//! checked, right or wrong, so guessing stops paying. Unknown names are counted like known
//! ones, so a lockout does not reveal which names exist.
//!
//! The table never forgets a name while its window or lockout runs, so failures under made-up
//! names cannot push a victim's count out. When a bucket is full of such names, a name not yet
//! in it cannot be counted and is refused until a slot frees (fail closed): flooding the table
//! can delay some logins, never open the door to unlimited guessing.

use crate::host::{SharedStore, StoreError};
use crate::oauth::scope::leading_u32;
use crate::state::buckets::{BucketTable, Reader, Record};
use crate::state::token::hash_prefix;

/// Names tracked per bucket.
pub const NAMES_PER_BUCKET: usize = 8;
const TABLE: &str = "limits";

/// Whose credentials failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    Client(&'a str),
    User(&'a str),
}

impl Principal<'_> {
    fn tag(self) -> [u8; 8] {
        let (kind, name) = match self {
            Principal::Client(name) => (b'c', name),
            Principal::User(name) => (b'u', name),
        };
        hash_prefix(&[kind, 0], name.as_bytes())
    }
}

/// The lockout policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed in one window; 0 turns the limiter off.
    pub max_failures: u16,
    pub window_secs: u64,
    pub lockout_secs: u64,
    /// Names whose failures can be counted at once: the table's size.
    pub tracked_names: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempts {
    tag: [u8; 8],
    failures: u16,
    window_ends_at: u64,
    locked_until: u64,
}

impl Record for Attempts {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        Some(Attempts {
            tag: r.array()?,
            failures: r.u16()?,
            window_ends_at: r.u64()?,
            locked_until: r.u64()?,
        })
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag);
        out.extend_from_slice(&self.failures.to_be_bytes());
        out.extend_from_slice(&self.window_ends_at.to_be_bytes());
        out.extend_from_slice(&self.locked_until.to_be_bytes());
    }

    fn prune(&mut self, now: u64) -> bool {
        self.window_ends_at > now || self.locked_until > now
    }
}

pub struct FailureLimiter<'h> {
    table: BucketTable<'h>,
    policy: LockoutPolicy,
}

impl<'h> FailureLimiter<'h> {
    pub fn new(shared: &'h dyn SharedStore, policy: LockoutPolicy) -> Self {
        let bucket_count = policy.tracked_names.div_ceil(NAMES_PER_BUCKET as u32).max(1);
        FailureLimiter { table: BucketTable::new(shared, TABLE, bucket_count), policy }
    }

    pub fn initialize(&self) -> Result<u32, StoreError> {
        self.table.initialize()
    }

    fn bucket(&self, tag: &[u8; 8]) -> u32 {
        leading_u32(tag) % self.table.count()
    }

    /// Seconds until `principal` may try again (`now` in milliseconds), or `None`.
    pub fn locked_for(&self, principal: Principal, now: u64) -> Result<Option<u64>, StoreError> {
        if self.policy.max_failures == 0 {
            return Ok(None);
        }
        let tag = principal.tag();
        let Some(bytes) = self.table.read(self.bucket(&tag))? else { return Ok(None) };
        let mut live = crate::state::buckets::records_of(&bytes)
            .filter_map(Attempts::decode)
            .filter(|attempts| attempts.window_ends_at > now || attempts.locked_until > now);
        let wait_secs = |until: u64| until.saturating_sub(now).div_ceil(1000);
        let mut tracked = 0;
        for attempts in live.by_ref() {
            if attempts.tag == tag {
                return Ok((attempts.locked_until > now).then(|| wait_secs(attempts.locked_until)));
            }
            tracked += 1;
        }
        // A bucket full of other live names cannot count this one: refuse until a slot frees.
        Ok((tracked >= NAMES_PER_BUCKET)
            .then(|| wait_secs(now.saturating_add(self.policy.window_secs.saturating_mul(1000)))))
    }

    /// Counts a failed attempt; locks the principal when it reaches the limit.
    pub fn record_failure(&self, principal: Principal, now: u64) -> Result<(), StoreError> {
        if self.policy.max_failures == 0 {
            return Ok(());
        }
        let tag = principal.tag();
        let policy = self.policy;
        let window = policy.window_secs.saturating_mul(1000);
        self.table.update(self.bucket(&tag), now, |records: &mut Vec<Attempts>| {
            // Pruning has already dropped every name whose window and lockout are over.
            let position = match records.iter().position(|attempts| attempts.tag == tag) {
                Some(position) => position,
                None if records.len() >= NAMES_PER_BUCKET => return Ok::<(), StoreError>(()),
                None => {
                    records.push(Attempts {
                        tag,
                        failures: 0,
                        window_ends_at: now.saturating_add(window),
                        locked_until: 0,
                    });
                    records.len() - 1
                }
            };
            if let Some(attempts) = records.get_mut(position) {
                if attempts.window_ends_at <= now {
                    attempts.failures = 0;
                    attempts.window_ends_at = now.saturating_add(window);
                }
                attempts.failures = attempts.failures.saturating_add(1);
                if attempts.failures >= policy.max_failures {
                    attempts.locked_until = now.saturating_add(policy.lockout_secs.saturating_mul(1000));
                    attempts.failures = 0;
                }
            }
            Ok(())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryStore;

    const POLICY: LockoutPolicy =
        LockoutPolicy { max_failures: 3, window_secs: 60, lockout_secs: 300, tracked_names: 8 };

    fn limiter(shared: &MemoryStore, buckets: u32) -> FailureLimiter<'_> {
        let policy = LockoutPolicy { tracked_names: buckets * NAMES_PER_BUCKET as u32, ..POLICY };
        let limiter = FailureLimiter::new(shared, policy);
        limiter.initialize().unwrap();
        limiter
    }

    #[test]
    fn locks_after_the_limit_and_unlocks_after_the_lockout() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 4);
        let app = Principal::Client("demo-app");
        // Times are milliseconds.
        for _ in 0..2 {
            limiter.record_failure(app, 100_000).unwrap();
            assert_eq!(limiter.locked_for(app, 100_000).unwrap(), None);
        }
        limiter.record_failure(app, 100_000).unwrap();
        assert_eq!(limiter.locked_for(app, 100_000).unwrap(), Some(300));
        assert_eq!(limiter.locked_for(app, 399_500).unwrap(), Some(1));
        assert_eq!(limiter.locked_for(app, 400_000).unwrap(), None);
        // A user of the same name is another principal.
        assert_eq!(limiter.locked_for(Principal::User("demo-app"), 100_000).unwrap(), None);
    }

    #[test]
    fn failures_spread_over_windows_do_not_lock() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 4);
        let user = Principal::User("admin");
        for window in 0..5 {
            limiter.record_failure(user, window * 61_000).unwrap();
            limiter.record_failure(user, window * 61_000 + 1_000).unwrap();
        }
        assert_eq!(limiter.locked_for(user, 305_000).unwrap(), None);
    }

    #[test]
    fn failures_under_other_names_cannot_push_a_victim_out() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 1);
        let victim = Principal::User("admin");
        // Two guesses, then a flood of made-up names in the same (only) bucket, then a third.
        for _ in 0..2 {
            limiter.record_failure(victim, 0).unwrap();
        }
        for i in 0..50 {
            limiter.record_failure(Principal::User(&format!("spray{i}")), 1_000).unwrap();
        }
        limiter.record_failure(victim, 2_000).unwrap();
        assert_eq!(limiter.locked_for(victim, 2_000).unwrap(), Some(300), "the victim's count was lost");
    }

    #[test]
    fn a_name_the_full_table_cannot_count_is_refused_until_a_slot_frees() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 1);
        for i in 0..NAMES_PER_BUCKET {
            limiter.record_failure(Principal::User(&format!("spray{i}")), 0).unwrap();
        }
        let newcomer = Principal::Client("demo-app");
        assert_eq!(limiter.locked_for(newcomer, 1_000).unwrap(), Some(60));
        // The sprayed names' windows end after 60 s: the newcomer may try again.
        assert_eq!(limiter.locked_for(newcomer, 60_000).unwrap(), None);
    }

    #[test]
    fn a_zero_limit_turns_it_off() {
        let shared = MemoryStore::default();
        let limiter = FailureLimiter::new(&shared, LockoutPolicy { max_failures: 0, ..POLICY });
        for _ in 0..10 {
            limiter.record_failure(Principal::Client("x"), 0).unwrap();
        }
        assert_eq!(limiter.locked_for(Principal::Client("x"), 0).unwrap(), None);
        assert_eq!(shared.key_count(), 0);
    }
}
