//! Brute-force limits on every check of a client secret or user password (RFC 6749 §2.3.1,
//! §4.3.2; RFC 6819 §5.1.4.2.3).
//!
//! Failed attempts are counted per name (consumer key or username) in a fixed window, in
//! [`BucketTable`]s so that every worker sees the same count. A name with too many failures in
//! one window is locked for a while: every attempt is refused before any secret is checked,
//! right or wrong, so guessing stops paying. Unknown names are counted like known ones.
//!
//! A name's bucket is picked by a hash keyed with a random secret made once per shared-data
//! space ([`FailureLimiter::initialize`]), so nobody can work out offline which made-up names
//! share a victim's bucket. Names the configuration lists (and registered applications) are
//! counted in a table of their own that made-up names never enter, so it needs no slot limit;
//! the table of unknown names is larger and bounded.
//!
//! The login form counts apart from everything else: per (username, client address)
//! ([`Principal::SignIn`]), since anyone can post it, and a per-user lock there would let anyone
//! lock a user out (RFC 6819 §5.1.4.2.3). Failures at the form lock only that pair: the user's
//! password grant and the form from other addresses stay open. Pairs of an existing user are
//! counted in a bounded table of their own ([`LockoutPolicy::sign_in_pairs`]), so neither many
//! addresses nor made-up names can grow or crowd the table of known names.
//!
//! The tables never forget a name while its window or lockout runs, so failures under made-up
//! names cannot push a victim's count out. When a bucket of unknown names is full, a name not
//! yet in it cannot be counted and is refused until a slot frees (fail closed): flooding that
//! table can delay unknown names (and reveals, while it lasts, that a name is unknown), never
//! open the door to unlimited guessing, and never touches the names that exist.

use std::cell::{OnceCell, RefCell};
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};

use siphasher::sip::SipHasher24;

use crate::host::{Coordination, Randomness, SharedStore, StoreError};
use crate::oauth::scope::leading_u32;
use crate::state::buckets::{BucketTable, Reader, Record};
use crate::state::keys;
use crate::state::remembered::RememberedGrants;

thread_local! {
    /// Names this worker found unlocked, by the failure epoch they were read at: no failure
    /// recorded anywhere since means none of them can have been locked since, so the happy
    /// path of `/token` skips the bucket read (one metric read instead of a shared-data read).
    /// Bounded like the token memory (see [`crate::state::remembered`]).
    static UNLOCKED: RefCell<RememberedGrants<()>> = RefCell::new(RememberedGrants::default());
}

/// Unknown names tracked per bucket.
pub const NAMES_PER_BUCKET: usize = 8;
/// The hash key, made once by the first `on_configure` and never changed: hosts may keep its
/// value once read (Envoy's glue does, sparing a shared-data read on every `/token`).
pub const KEY: &str = keys::LIMITER_KEY;
const KEY_BYTES: usize = 32;

/// Whose credentials failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    Client(&'a str),
    /// A user's password at the password grant.
    User(&'a str),
    /// A user's password at the registration endpoint: counted apart, so failed admin logins
    /// cannot lock the user's password grant.
    Admin(&'a str),
    /// A user's password at the login form, from one client address (see [`client_address`]).
    SignIn {
        username: &'a str,
        address: &'a str,
    },
}

impl Principal<'_> {
    fn tag(self, key: &[u8; KEY_BYTES]) -> [u8; 8] {
        let (kind, name, address) = match self {
            Principal::Client(name) => (b'c', name, None),
            Principal::User(name) => (b'u', name, None),
            Principal::Admin(name) => (b'a', name, None),
            Principal::SignIn { username, address } => (b'f', username, Some(address)),
        };
        // SipHash-2-4 is a keyed pseudo-random function, which is all a tag needs to be
        // (SHA-256 over key and name did the same at ten times the price, on every `/token`).
        // Its first 16 key bytes are the shared key's; (kind, 0) first keeps kinds apart.
        let sip_key: [u8; 16] = key.get(..16).and_then(|head| head.try_into().ok()).unwrap_or_default();
        let mut hasher = SipHasher24::new_with_key(&sip_key);
        hasher.write(&[kind, 0]);
        if let Some(address) = address {
            // The name's length first: ("ab", "c") and ("a", "bc") are other pairs.
            hasher.write(&(name.len() as u64).to_le_bytes());
            hasher.write(name.as_bytes());
            hasher.write(address.as_bytes());
        } else {
            hasher.write(name.as_bytes());
        }
        hasher.finish().to_le_bytes()
    }
}

/// Whether a principal's name exists (configured, or a registered application).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Known,
    Unknown,
}

/// The lockout policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed in one window; 0 turns the limiter off.
    pub max_failures: u16,
    pub window_secs: u64,
    pub lockout_secs: u64,
    /// Unknown names whose failures can be counted at once: that table's size.
    pub tracked_names: u32,
    /// Known principals (configured names and registered applications): the other table's size.
    pub known_names: u32,
    /// (existing username, client address) pairs whose failures at the login form can be
    /// counted at once; 0 when there is no login form.
    pub sign_in_pairs: u32,
}

/// Which table counts a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Known,
    Unknown,
    SignIn,
}

impl Table {
    /// Whether a bucket holds at most [`NAMES_PER_BUCKET`] live names (and refuses a name that
    /// finds it full). The known table needs no bound: only names that exist enter it.
    fn is_bounded(self) -> bool {
        self != Table::Known
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempts {
    tag: [u8; 8],
    failures: u16,
    window_ends_at: u64,
    locked_until: u64,
    /// Fields a newer module appended, kept as they were and written back last
    /// (docs/upgrading.md).
    newer_fields: Vec<u8>,
}

impl Record for Attempts {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        Some(Attempts {
            tag: r.array()?,
            failures: r.u16()?,
            window_ends_at: r.u64()?,
            locked_until: r.u64()?,
            newer_fields: r.0.to_vec(),
        })
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag);
        out.extend_from_slice(&self.failures.to_be_bytes());
        out.extend_from_slice(&self.window_ends_at.to_be_bytes());
        out.extend_from_slice(&self.locked_until.to_be_bytes());
        out.extend_from_slice(&self.newer_fields);
    }

    fn prune(&mut self, now: u64) -> bool {
        self.window_ends_at > now || self.locked_until > now
    }
}

pub struct FailureLimiter<'h> {
    shared: &'h dyn SharedStore,
    random: &'h dyn Randomness,
    known: BucketTable<'h>,
    unknown: BucketTable<'h>,
    sign_in: BucketTable<'h>,
    policy: LockoutPolicy,
    key: OnceCell<[u8; KEY_BYTES]>,
    /// Where the failure epoch is read and moved; `None`: every check reads its bucket.
    epoch: Option<&'h dyn Coordination>,
}

impl<'h> FailureLimiter<'h> {
    pub fn new(shared: &'h dyn SharedStore, random: &'h dyn Randomness, policy: LockoutPolicy) -> Self {
        let buckets = |names: u32| names.div_ceil(NAMES_PER_BUCKET as u32).max(1);
        FailureLimiter {
            shared,
            random,
            known: BucketTable::new(shared, keys::LIMITS_KNOWN, buckets(policy.known_names)),
            unknown: BucketTable::new(shared, keys::LIMITS_UNKNOWN, buckets(policy.tracked_names)),
            sign_in: BucketTable::new(shared, keys::LIMITS_SIGN_IN, buckets(policy.sign_in_pairs)),
            policy,
            key: OnceCell::new(),
            epoch: None,
        }
    }

    /// Lets this worker remember names it found unlocked while `epoch`'s failure epoch
    /// stands still (a host without one keeps reading every bucket).
    pub fn remembering(mut self, epoch: &'h dyn Coordination) -> Self {
        self.epoch = Some(epoch);
        self
    }

    /// Creates the tables and, the first time ever, the hash key. Only for `on_configure`
    /// (see [`crate::state::buckets`]): a key that exists is kept, so every VM, and every later
    /// configuration, hashes names the same way.
    pub fn initialize(&self) -> Result<u32, StoreError> {
        if self.policy.max_failures == 0 {
            return Ok(0);
        }
        if self.shared.get(KEY)?.is_none() {
            let mut key = [0u8; KEY_BYTES];
            self.random.fill(&mut key).map_err(|_| StoreError::Unavailable)?;
            self.shared.set(KEY, &key, 0)?;
        }
        let sign_in = match self.policy.sign_in_pairs {
            0 => 0,
            _ => self.sign_in.initialize()?,
        };
        Ok(self.known.initialize()? + self.unknown.initialize()? + sign_in)
    }

    /// The hash key, read once per limiter. Missing (no `on_configure` made it): refuse, like a
    /// missing bucket, rather than fall back to a hash anyone can compute.
    fn key(&self) -> Result<[u8; KEY_BYTES], StoreError> {
        if let Some(key) = self.key.get() {
            return Ok(*key);
        }
        let (bytes, _) = self.shared.get(KEY)?.ok_or(StoreError::Unavailable)?;
        let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| StoreError::Unavailable)?;
        Ok(*self.key.get_or_init(|| key))
    }

    /// The table, tag and bucket that count `principal`. Made-up usernames at the login form
    /// share the table of unknown names with every other made-up name.
    fn slot(&self, principal: Principal, listing: Listing) -> Result<(Table, [u8; 8], u32), StoreError> {
        let tag = principal.tag(&self.key()?);
        let table = match (principal, listing) {
            (_, Listing::Unknown) => Table::Unknown,
            (Principal::SignIn { .. }, Listing::Known) => Table::SignIn,
            (_, Listing::Known) => Table::Known,
        };
        Ok((table, tag, leading_u32(&tag) % self.table(table).count()))
    }

    fn table(&self, table: Table) -> &BucketTable<'h> {
        match table {
            Table::Known => &self.known,
            Table::Unknown => &self.unknown,
            Table::SignIn => &self.sign_in,
        }
    }

    /// Seconds until `principal` may try again (`now` in milliseconds), or `None`.
    pub fn locked_for(
        &self,
        principal: Principal,
        listing: Listing,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        if self.policy.max_failures == 0 {
            return Ok(None);
        }
        let (table, tag, bucket) = self.slot(principal, listing)?;
        let epoch = self.epoch.and_then(|epoch| epoch.failure_epoch());
        let name = remembered_name(&tag, table);
        if let Some(epoch) = epoch {
            if UNLOCKED.with(|unlocked| unlocked.borrow().recall(&name, epoch, 0)).is_some() {
                return Ok(None);
            }
        }
        let wait = self.read_lock(table, tag, bucket, now)?;
        if let (None, Some(epoch)) = (wait, epoch) {
            UNLOCKED.with(|unlocked| unlocked.borrow_mut().remember(name, epoch, u64::MAX, ()));
        }
        Ok(wait)
    }

    /// [`Self::locked_for`] from the bucket itself.
    fn read_lock(
        &self,
        table: Table,
        tag: [u8; 8],
        bucket: u32,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let Some(bytes) = self.table(table).read(bucket)? else { return Ok(None) };
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
        // A bucket full of other live unknown names (or sign-in pairs) cannot count this one:
        // refuse until a slot frees.
        let full = table.is_bounded() && tracked >= NAMES_PER_BUCKET;
        Ok(full.then(|| wait_secs(now.saturating_add(self.policy.window_secs.saturating_mul(1000)))))
    }

    /// Counts a failed attempt; locks the principal when it reaches the limit.
    pub fn record_failure(&self, principal: Principal, listing: Listing, now: u64) -> Result<(), StoreError> {
        if self.policy.max_failures == 0 {
            return Ok(());
        }
        let (table, tag, bucket) = self.slot(principal, listing)?;
        let policy = self.policy;
        let window = policy.window_secs.saturating_mul(1000);
        self.table(table).update(bucket, now, |records: &mut Vec<Attempts>| {
            // Pruning has already dropped every name whose window and lockout are over.
            let position = match records.iter().position(|attempts| attempts.tag == tag) {
                Some(position) => position,
                None if table.is_bounded() && records.len() >= NAMES_PER_BUCKET => {
                    return Ok::<(), StoreError>(())
                }
                None => {
                    records.push(Attempts {
                        tag,
                        failures: 0,
                        window_ends_at: now.saturating_add(window),
                        locked_until: 0,
                        newer_fields: Vec::new(),
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
        if let Some(epoch) = self.epoch {
            epoch.failure_recorded();
        }
        Ok(())
    }
}

/// What the login form counts failures by, from Envoy's `source.address` (`ip:port`): the
/// port never (each new connection has another), an IPv4 address whole, an IPv6 address by its
/// /64, the block one host or site commonly holds whole (RFC 4291 §2.5.4; RFC 7421), so
/// counting its addresses one by one would give it 2^64 tries. An IPv4-mapped address is its
/// IPv4 address. Anything else is taken as it is.
pub fn client_address(source: &str) -> String {
    let ip = match source.parse::<SocketAddr>() {
        Ok(socket) => socket.ip(),
        Err(_) => match source.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return source.to_owned(),
        },
    };
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    }
}

/// A name's key in the worker's memory: its tag and table.
fn remembered_name(tag: &[u8; 8], table: Table) -> [u8; 16] {
    let mut name = [0u8; 16];
    if let Some(head) = name.get_mut(..8) {
        head.copy_from_slice(tag);
    }
    if let Some(slot) = name.get_mut(8) {
        *slot = match table {
            Table::Known => 1,
            Table::Unknown => 2,
            Table::SignIn => 3,
        };
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryStore;
    use crate::host::SystemRandomness;

    const POLICY: LockoutPolicy = LockoutPolicy {
        max_failures: 3,
        window_secs: 60,
        lockout_secs: 300,
        tracked_names: 8,
        known_names: 8,
        sign_in_pairs: 8,
    };
    const UNKNOWN: Listing = Listing::Unknown;
    const KNOWN: Listing = Listing::Known;

    fn limiter(shared: &MemoryStore, buckets: u32) -> FailureLimiter<'_> {
        let names = buckets * NAMES_PER_BUCKET as u32;
        let policy =
            LockoutPolicy { tracked_names: names, known_names: names, sign_in_pairs: names, ..POLICY };
        let limiter = FailureLimiter::new(shared, &SystemRandomness, policy);
        limiter.initialize().unwrap();
        limiter
    }

    #[test]
    fn locks_after_the_limit_and_unlocks_after_the_lockout() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 4);
        let app = Principal::Client("demo-app");
        for listing in [KNOWN, UNKNOWN] {
            // Times are milliseconds.
            for _ in 0..2 {
                limiter.record_failure(app, listing, 100_000).unwrap();
                assert_eq!(limiter.locked_for(app, listing, 100_000).unwrap(), None);
            }
            limiter.record_failure(app, listing, 100_000).unwrap();
            assert_eq!(limiter.locked_for(app, listing, 100_000).unwrap(), Some(300));
            assert_eq!(limiter.locked_for(app, listing, 399_500).unwrap(), Some(1));
            assert_eq!(limiter.locked_for(app, listing, 400_000).unwrap(), None);
            // A user of the same name is another principal.
            assert_eq!(limiter.locked_for(Principal::User("demo-app"), listing, 100_000).unwrap(), None);
        }
    }

    #[test]
    fn failures_spread_over_windows_do_not_lock() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 4);
        let user = Principal::User("admin");
        for window in 0..5 {
            limiter.record_failure(user, KNOWN, window * 61_000).unwrap();
            limiter.record_failure(user, KNOWN, window * 61_000 + 1_000).unwrap();
        }
        assert_eq!(limiter.locked_for(user, KNOWN, 305_000).unwrap(), None);
    }

    #[test]
    fn failures_under_other_names_cannot_push_a_victim_out() {
        for listing in [KNOWN, UNKNOWN] {
            let shared = MemoryStore::default();
            let limiter = limiter(&shared, 1);
            let victim = Principal::User("admin");
            // Two guesses, then a flood of made-up names in the same (only) bucket, then a third.
            for _ in 0..2 {
                limiter.record_failure(victim, listing, 0).unwrap();
            }
            for i in 0..50 {
                limiter.record_failure(Principal::User(&format!("spray{i}")), UNKNOWN, 1_000).unwrap();
            }
            limiter.record_failure(victim, listing, 2_000).unwrap();
            assert_eq!(
                limiter.locked_for(victim, listing, 2_000).unwrap(),
                Some(300),
                "{listing:?}: count lost"
            );
        }
    }

    #[test]
    fn an_unknown_name_the_full_table_cannot_count_is_refused_until_a_slot_frees() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 1);
        for i in 0..NAMES_PER_BUCKET {
            limiter.record_failure(Principal::User(&format!("spray{i}")), UNKNOWN, 0).unwrap();
        }
        let newcomer = Principal::Client("made-up");
        assert_eq!(limiter.locked_for(newcomer, UNKNOWN, 1_000).unwrap(), Some(60));
        // The sprayed names' windows end after 60 s: the newcomer may try again.
        assert_eq!(limiter.locked_for(newcomer, UNKNOWN, 60_000).unwrap(), None);
    }

    /// Eight made-up names whose unkeyed hash shares demo-app's bucket (in a table of 512
    /// buckets) must not lock it out before any secret is checked.
    #[test]
    fn names_sharing_an_unkeyed_bucket_do_not_lock_demo_app() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 512);
        let spray = [
            "spray2161",
            "spray2162",
            "spray2193",
            "spray2507",
            "spray2658",
            "spray4148",
            "spray5053",
            "spray5958",
        ];
        for name in spray {
            limiter.record_failure(Principal::Client(name), UNKNOWN, 0).unwrap();
        }
        for listing in [KNOWN, UNKNOWN] {
            assert_eq!(limiter.locked_for(Principal::Client("demo-app"), listing, 1_000).unwrap(), None);
        }
    }

    #[test]
    fn filling_the_unknown_table_leaves_known_names_alone() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 1);
        for i in 0..100 {
            limiter.record_failure(Principal::Client(&format!("junk{i}")), UNKNOWN, 0).unwrap();
        }
        let app = Principal::Client("demo-app");
        assert_eq!(limiter.locked_for(Principal::Client("made-up"), UNKNOWN, 1_000).unwrap(), Some(60));
        assert_eq!(limiter.locked_for(app, KNOWN, 1_000).unwrap(), None);
        // And the known name is still counted: the limit still holds for it.
        for _ in 0..POLICY.max_failures {
            limiter.record_failure(app, KNOWN, 1_000).unwrap();
        }
        assert_eq!(limiter.locked_for(app, KNOWN, 1_000).unwrap(), Some(300));
    }

    #[test]
    fn failures_at_the_login_form_lock_only_that_username_and_address() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 4);
        let attacker = Principal::SignIn { username: "carol", address: "203.0.113.7" };
        for _ in 0..POLICY.max_failures {
            limiter.record_failure(attacker, KNOWN, 1_000).unwrap();
        }
        assert_eq!(limiter.locked_for(attacker, KNOWN, 1_000).unwrap(), Some(300));
        let elsewhere = Principal::SignIn { username: "carol", address: "198.51.100.2" };
        assert_eq!(limiter.locked_for(elsewhere, KNOWN, 1_000).unwrap(), None, "the user, from elsewhere");
        assert_eq!(
            limiter.locked_for(Principal::User("carol"), KNOWN, 1_000).unwrap(),
            None,
            "password grant"
        );
        // Names and addresses are not glued together: ("carol2", "03…") is another pair.
        let shifted = Principal::SignIn { username: "carol2", address: "03.0.113.7" };
        assert_eq!(limiter.locked_for(shifted, KNOWN, 1_000).unwrap(), None);
    }

    #[test]
    fn a_field_a_newer_module_appended_survives_the_next_failure() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 1);
        let user = Principal::User("dave");
        limiter.record_failure(user, KNOWN, 100_000).unwrap();
        let key = "tokengate/limits-known/0";
        let mut counted =
            crate::state::buckets::decode_bucket::<Attempts>(&shared.get(key).unwrap().unwrap().0);
        counted[0].newer_fields = vec![0x42];
        shared.set(key, &crate::state::buckets::encode_bucket(&counted), 0).unwrap();

        limiter.record_failure(user, KNOWN, 100_001).unwrap();

        let counted = crate::state::buckets::decode_bucket::<Attempts>(&shared.get(key).unwrap().unwrap().0);
        assert_eq!((counted[0].failures, counted[0].newer_fields.as_slice()), (2, &[0x42][..]));
    }

    #[test]
    fn sign_in_pairs_of_existing_users_fill_their_own_bounded_table() {
        let shared = MemoryStore::default();
        let limiter = limiter(&shared, 1);
        // Many addresses failing for an existing user: the table stays bounded (and refuses new
        // pairs while full), and the known names' table never sees them.
        for i in 0..100 {
            let address = format!("192.0.2.{i}");
            limiter
                .record_failure(Principal::SignIn { username: "carol", address: &address }, KNOWN, 0)
                .unwrap();
        }
        let pairs = shared.get("tokengate/limits-sign-in/0").unwrap().unwrap().0;
        assert_eq!(crate::state::buckets::records_of(&pairs).count(), NAMES_PER_BUCKET);
        let newcomer = Principal::SignIn { username: "carol", address: "198.51.100.9" };
        assert_eq!(limiter.locked_for(newcomer, KNOWN, 1_000).unwrap(), Some(60));
        assert_eq!(limiter.locked_for(Principal::User("carol"), KNOWN, 1_000).unwrap(), None);
        let known = shared.get("tokengate/limits-known/0").unwrap().unwrap().0;
        assert_eq!(crate::state::buckets::records_of(&known).count(), 0);
    }

    #[test]
    fn a_client_address_is_its_ip_without_the_port_and_an_ipv6_one_its_64() {
        let cases = [
            ("203.0.113.7:51234", "203.0.113.7"),
            ("203.0.113.7", "203.0.113.7"),
            ("[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"),
            ("[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"),
            ("[::ffff:192.0.2.1]:80", "192.0.2.1"),
            ("[::1]:8080", "0:0:0:0::/64"),
            ("envoy-internal", "envoy-internal"),
            ("", ""),
        ];
        for (source, expected) in cases {
            assert_eq!(client_address(source), expected, "{source}");
        }
    }

    #[test]
    fn the_key_is_made_once_and_survives_a_second_vm() {
        let shared = MemoryStore::default();
        let first = limiter(&shared, 4);
        let key = shared.get(KEY).unwrap().unwrap().0;
        assert_eq!(key.len(), KEY_BYTES);
        let app = Principal::Client("demo-app");
        for _ in 0..POLICY.max_failures {
            first.record_failure(app, UNKNOWN, 0).unwrap();
        }
        // Another VM (a worker, or a later config) initialises over the same shared data.
        let second = limiter(&shared, 4);
        assert_eq!(shared.get(KEY).unwrap().unwrap().0, key, "the key was regenerated");
        assert_eq!(second.locked_for(app, UNKNOWN, 0).unwrap(), Some(300));
    }

    #[test]
    fn without_a_key_the_limiter_refuses_rather_than_hash_unkeyed() {
        let shared = MemoryStore::default();
        let limiter = FailureLimiter::new(&shared, &SystemRandomness, POLICY);
        let app = Principal::Client("demo-app");
        assert_eq!(limiter.locked_for(app, KNOWN, 0), Err(StoreError::Unavailable));
        assert_eq!(limiter.record_failure(app, KNOWN, 0), Err(StoreError::Unavailable));
    }

    #[test]
    fn a_zero_limit_turns_it_off() {
        let shared = MemoryStore::default();
        let limiter =
            FailureLimiter::new(&shared, &SystemRandomness, LockoutPolicy { max_failures: 0, ..POLICY });
        limiter.initialize().unwrap();
        for _ in 0..10 {
            limiter.record_failure(Principal::Client("x"), UNKNOWN, 0).unwrap();
        }
        assert_eq!(limiter.locked_for(Principal::Client("x"), UNKNOWN, 0).unwrap(), None);
        assert_eq!(shared.key_count(), 0);
    }
}

#[cfg(test)]
mod remembering_tests {
    use super::*;
    use crate::host::memory::EpochHost;
    use crate::host::SystemRandomness;

    const POLICY: LockoutPolicy = LockoutPolicy {
        max_failures: 2,
        window_secs: 60,
        lockout_secs: 300,
        tracked_names: 8,
        known_names: 8,
        sign_in_pairs: 8,
    };

    #[test]
    fn an_unlocked_name_is_not_read_again_until_a_failure_is_recorded() {
        let host = EpochHost::default();
        let limiter = FailureLimiter::new(&host, &SystemRandomness, POLICY).remembering(&host);
        limiter.initialize().unwrap();
        let name = Principal::Client("demo-app");
        assert_eq!(limiter.locked_for(name, Listing::Known, 1_000), Ok(None));
        let reads = host.reads.get();
        assert_eq!(limiter.locked_for(name, Listing::Known, 2_000), Ok(None));
        assert_eq!(host.reads.get(), reads, "the second check came from this worker's memory");
        limiter.record_failure(name, Listing::Known, 3_000).unwrap();
        assert_eq!(host.failure_epoch.get(), 1);
        limiter.record_failure(name, Listing::Known, 4_000).unwrap();
        let reads = host.reads.get();
        assert_eq!(
            limiter.locked_for(name, Listing::Known, 5_000),
            Ok(Some(299)),
            "locked: the memory was not trusted"
        );
        assert!(host.reads.get() > reads);
        assert_eq!(
            limiter.locked_for(name, Listing::Known, 6_000),
            Ok(Some(298)),
            "a lock is never remembered"
        );
    }
}
