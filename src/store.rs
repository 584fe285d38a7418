//! The token store: grants kept in a fixed table of shared-data buckets.
//!
//! Envoy can never delete a shared-data key, so one key per token would grow without bound.
//! Instead the store owns `bucket_count` keys, `tokengate/b/<index>`, created once at start-up
//! and rewritten with compare-and-swap. Each bucket holds up to [`SLOTS_PER_BUCKET`] grant
//! records. A grant is what one successful `/token` call creates: its client, user, scope, its
//! current refresh token and its live access tokens. Every token names its bucket (see
//! [`crate::token`]), so validating a token is one shared-data read and a scan of a few
//! hundred bytes, with no JSON and no per-token keys.
//!
//! Expired access tokens and dead grants are dropped whenever their bucket is rewritten, so
//! memory follows the live grants; when every bucket tried for a new grant is full of live
//! grants, issuing fails with [`IssueError::Full`] and nothing stored is touched.

use crate::host::{RandomUnavailable, Randomness, SharedStore, StoreError};
use crate::scope::ScopeId;
use crate::token::{
    grant_tag, mint_access_token, mint_refresh_token, new_grant_id, GrantTag, ParsedToken, TokenHash,
};

/// Grants per bucket. Small enough that a bucket read copies well under a kilobyte.
pub const SLOTS_PER_BUCKET: usize = 8;
/// Live access tokens kept per grant; issuing one more drops the one expiring first.
pub const MAX_ACCESS_TOKENS_PER_GRANT: usize = 4;
/// Random buckets tried for a new grant before the store counts as full.
const BUCKET_PROBES: usize = 4;
/// Compare-and-swap attempts on one bucket before giving up on it.
const CAS_ATTEMPTS: usize = 16;
/// Expiry meaning "never" (the seeds' negative validity).
pub const NEVER_EXPIRES: u64 = u64::MAX;

const BUCKET_FORMAT: u8 = 1;
const META_KEY: &str = "tokengate/meta";
/// Marks an access token whose scope is the grant's scope, to save repeating it.
const SAME_SCOPE_AS_GRANT: u8 = 0xFF;

pub fn bucket_key(index: u32) -> String {
    format!("tokengate/b/{index}")
}

/// Buckets needed for `capacity` grants.
pub fn bucket_count_for(capacity: u32) -> u32 {
    capacity.div_ceil(SLOTS_PER_BUCKET as u32).max(1)
}

// ---------------------------------------------------------------------------------------------
// Records

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub hash: TokenHash,
    pub expires_at: u64,
    /// `None`: the grant's scope.
    pub scopes: Option<Vec<ScopeId>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshEntry {
    pub hash: TokenHash,
    pub expires_at: u64,
}

/// Who a grant was issued to, and under which credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantOwner {
    pub client_id: String,
    /// Fingerprint of the application's credentials when the grant was issued.
    pub client_fingerprint: u32,
    /// The user and the fingerprint of their password, for the password grant.
    pub user: Option<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub tag: GrantTag,
    pub owner: GrantOwner,
    pub scopes: Vec<ScopeId>,
    pub refresh: Option<RefreshEntry>,
    pub access: Vec<AccessEntry>,
}

impl GrantRecord {
    /// Drops expired access tokens and an expired refresh token; false when nothing is left.
    fn prune(&mut self, now: u64) -> bool {
        self.access.retain(|entry| entry.expires_at > now);
        if self.refresh.as_ref().is_some_and(|refresh| refresh.expires_at <= now) {
            self.refresh = None;
        }
        self.refresh.is_some() || !self.access.is_empty()
    }

    fn add_access(&mut self, entry: AccessEntry) {
        if self.access.len() >= MAX_ACCESS_TOKENS_PER_GRANT {
            if let Some(soonest) =
                (0..self.access.len()).min_by_key(|&i| self.access.get(i).map(|e| e.expires_at))
            {
                self.access.remove(soonest);
            }
        }
        self.access.push(entry);
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0, 0]); // length, patched below
        out.extend_from_slice(&self.tag);
        out.extend_from_slice(&self.owner.client_fingerprint.to_be_bytes());
        let (user_name, user_fingerprint) = match &self.owner.user {
            Some((name, fingerprint)) => (name.as_str(), *fingerprint),
            None => ("", 0),
        };
        out.extend_from_slice(&user_fingerprint.to_be_bytes());
        put_short_bytes(out, self.owner.client_id.as_bytes());
        put_short_bytes(out, user_name.as_bytes());
        match &self.refresh {
            Some(refresh) => {
                out.push(1);
                out.extend_from_slice(&refresh.hash);
                out.extend_from_slice(&refresh.expires_at.to_be_bytes());
            }
            None => out.push(0),
        }
        put_scopes(out, &self.scopes);
        out.push(self.access.len() as u8);
        for entry in &self.access {
            out.extend_from_slice(&entry.hash);
            out.extend_from_slice(&entry.expires_at.to_be_bytes());
            match &entry.scopes {
                None => out.push(SAME_SCOPE_AS_GRANT),
                Some(scopes) => put_scopes(out, scopes),
            }
        }
        let len = (out.len() - start - 2) as u16;
        if let Some(slot) = out.get_mut(start..start + 2) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> Option<GrantRecord> {
        let mut r = Reader(bytes);
        let tag = r.array::<8>()?;
        let client_fingerprint = r.u32()?;
        let user_fingerprint = r.u32()?;
        let client_id = r.short_string()?;
        let user_name = r.short_string()?;
        let refresh = match r.u8()? {
            0 => None,
            1 => Some(RefreshEntry { hash: r.array::<16>()?, expires_at: r.u64()? }),
            _ => return None,
        };
        let scopes = r.scopes()?;
        let access_count = r.u8()?;
        let mut access = Vec::with_capacity(usize::from(access_count));
        for _ in 0..access_count {
            let hash = r.array::<16>()?;
            let expires_at = r.u64()?;
            let scopes = if r.peek()? == SAME_SCOPE_AS_GRANT {
                r.u8()?;
                None
            } else {
                Some(r.scopes()?)
            };
            access.push(AccessEntry { hash, expires_at, scopes });
        }
        let user = if user_name.is_empty() { None } else { Some((user_name, user_fingerprint)) };
        Some(GrantRecord {
            tag,
            owner: GrantOwner { client_id, client_fingerprint, user },
            scopes,
            refresh,
            access,
        })
    }
}

fn put_short_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Config validation keeps ids and names under 256 bytes.
    let len = bytes.len().min(255);
    out.push(len as u8);
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

fn put_scopes(out: &mut Vec<u8>, scopes: &[ScopeId]) {
    // Config validation keeps scope lists under 255 entries (0xFF is the "same as grant" mark).
    let count = scopes.len().min(254);
    out.push(count as u8);
    for scope in scopes.iter().take(count) {
        out.extend_from_slice(&scope.to_be_bytes());
    }
}

/// A bounds-checked cursor: every read returns `None` past the end instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }
    fn short_string(&mut self) -> Option<String> {
        let len = self.u8()?;
        String::from_utf8(self.take(usize::from(len))?.to_vec()).ok()
    }
    fn scopes(&mut self) -> Option<Vec<ScopeId>> {
        let count = self.u8()?;
        (0..count).map(|_| self.u32()).collect()
    }
}

/// The records of one bucket, as bytes: `format ‖ (u16 length ‖ record)*`.
fn bucket_records(bucket: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut reader = Reader(match bucket.split_first() {
        Some((&BUCKET_FORMAT, rest)) => rest,
        _ => &[],
    });
    std::iter::from_fn(move || {
        let len = reader.u16()?;
        reader.take(usize::from(len))
    })
}

fn decode_bucket(bucket: &[u8]) -> Vec<GrantRecord> {
    bucket_records(bucket).filter_map(GrantRecord::decode).collect()
}

fn encode_bucket(records: &[GrantRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + records.len() * 96);
    out.push(BUCKET_FORMAT);
    for record in records {
        record.encode_into(&mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Operations

/// What the store knows about a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    pub owner: GrantOwner,
    pub scopes: Vec<ScopeId>,
    pub expires_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// Not issued here, revoked, or swept after expiry.
    Unknown,
    Expired,
    Store(StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueError {
    /// Every bucket tried is full of live grants.
    Full,
    Random,
    Store(StoreError),
}

impl From<RandomUnavailable> for IssueError {
    fn from(_: RandomUnavailable) -> Self {
        IssueError::Random
    }
}

/// A grant about to be issued.
pub struct NewGrant {
    pub owner: GrantOwner,
    pub scopes: Vec<ScopeId>,
    pub access_expires_at: u64,
    /// Set when the grant gets a refresh token.
    pub refresh_expires_at: Option<u64>,
}

pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

/// What the caller decides when a refresh token checks out (see [`TokenStore::refresh`]).
pub struct RefreshPlan {
    /// `None`: the grant's full scope.
    pub access_scopes: Option<Vec<ScopeId>>,
    pub access_expires_at: u64,
    pub refresh_expires_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshError {
    /// Unknown, expired, used, revoked, or issued to another client (RFC 6749 `invalid_grant`).
    InvalidGrant,
    /// A used refresh token came back: the grant has been revoked (RFC 9700 §4.14.2).
    ReuseDetected,
    /// The caller's decision refused it (for example `invalid_scope`): passed back unchanged.
    Refused(RefreshRefusal),
    Random,
    Store(StoreError),
}

/// Why the caller refused a refresh; see [`TokenStore::refresh`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    InvalidGrant,
    InvalidScope,
}

/// The store as the gateway uses it. Borrowing the host pieces keeps it cheap to build per
/// request.
pub struct TokenStore<'h> {
    shared: &'h dyn SharedStore,
    random: &'h dyn Randomness,
    bucket_count: u32,
}

impl<'h> TokenStore<'h> {
    pub fn new(shared: &'h dyn SharedStore, random: &'h dyn Randomness, bucket_count: u32) -> Self {
        TokenStore { shared, random, bucket_count: bucket_count.max(1) }
    }

    /// Creates the buckets that do not exist yet. Returns how many were created.
    ///
    /// Shared data has no insert-if-absent: a write to a missing key always succeeds, and a
    /// second "create" would wipe a bucket someone already wrote grants into. So only this
    /// function ever writes a missing key, request paths treat a missing bucket as unusable,
    /// and it runs from `on_configure`, which Envoy calls on the main thread before any worker
    /// serves a request with the new config. The meta key remembers how many buckets exist, so
    /// worker VMs skip the loop.
    pub fn initialize(&self) -> Result<u32, StoreError> {
        let existing = match self.shared.get(META_KEY)? {
            Some((value, _)) => value.as_slice().try_into().map(u32::from_be_bytes).unwrap_or(0),
            None => 0,
        };
        if existing >= self.bucket_count {
            return Ok(0);
        }
        let empty = encode_bucket(&[]);
        let mut created = 0;
        for index in existing..self.bucket_count {
            let key = bucket_key(index);
            if self.shared.get(&key)?.is_none() {
                self.shared.set(&key, &empty, 0)?;
                created += 1;
            }
        }
        self.shared.set(META_KEY, &self.bucket_count.to_be_bytes(), 0)?;
        Ok(created)
    }

    fn read_bucket(&self, index: u32) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        if index >= self.bucket_count {
            return Ok(None);
        }
        self.shared.get(&bucket_key(index))
    }

    /// Finds the grant behind an access token. One shared-data read.
    pub fn find_access(&self, token: &str, now: u64) -> Result<AccessGrant, LookupError> {
        let Some(ParsedToken::Access { bucket, hash }) = ParsedToken::parse(token) else {
            return Err(LookupError::Unknown);
        };
        let Some((bytes, _)) = self.read_bucket(bucket).map_err(LookupError::Store)? else {
            return Err(LookupError::Unknown);
        };
        for raw in bucket_records(&bytes) {
            let Some(record) = GrantRecord::decode(raw) else {
                continue;
            };
            if let Some(entry) = record.access.iter().find(|entry| entry.hash == hash) {
                if entry.expires_at <= now {
                    return Err(LookupError::Expired);
                }
                let scopes = entry.scopes.clone().unwrap_or_else(|| record.scopes.clone());
                return Ok(AccessGrant { owner: record.owner, scopes, expires_at: entry.expires_at });
            }
        }
        Err(LookupError::Unknown)
    }

    /// Stores a new grant in a random bucket with room and returns its tokens.
    pub fn issue(&self, grant: NewGrant, now: u64) -> Result<IssuedTokens, IssueError> {
        let grant_id = new_grant_id(self.random)?;
        for _ in 0..BUCKET_PROBES {
            let mut pick = [0u8; 4];
            self.random.fill(&mut pick)?;
            let bucket = u32::from_be_bytes(pick) % self.bucket_count;
            let access = mint_access_token(bucket, self.random)?;
            let refresh = match grant.refresh_expires_at {
                Some(expires_at) => Some((mint_refresh_token(bucket, &grant_id, self.random)?, expires_at)),
                None => None,
            };
            let record = GrantRecord {
                tag: grant_tag(&grant_id),
                owner: grant.owner.clone(),
                scopes: grant.scopes.clone(),
                refresh: refresh
                    .as_ref()
                    .map(|(token, expires_at)| RefreshEntry { hash: token.hash, expires_at: *expires_at }),
                access: vec![AccessEntry {
                    hash: access.hash,
                    expires_at: grant.access_expires_at,
                    scopes: None,
                }],
            };
            let stored = self.update_bucket(bucket, now, |records| {
                if records.len() >= SLOTS_PER_BUCKET {
                    return Ok(false);
                }
                records.push(record.clone());
                Ok::<bool, IssueError>(true)
            })?;
            if stored == Some(true) {
                return Ok(IssuedTokens {
                    access_token: access.text,
                    refresh_token: refresh.map(|(token, _)| token.text),
                });
            }
        }
        Err(IssueError::Full)
    }

    /// Rotates a refresh token: checks it, lets `decide` judge the stored grant, then replaces
    /// the refresh token and adds an access token, all in one compare-and-swap.
    ///
    /// A refresh token of a live grant that is no longer the current one is a reused token:
    /// the grant is revoked. The exception is a token that was current when this call first
    /// read the bucket and lost a concurrent race: that caller gets `InvalidGrant` but the
    /// winner's tokens stay, so clients that retry in parallel do not lose their session.
    pub fn refresh(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
        mut decide: impl FnMut(&GrantRecord) -> Result<RefreshPlan, RefreshRefusal>,
    ) -> Result<IssuedTokens, RefreshError> {
        let Some(ParsedToken::Refresh { bucket, grant_id, hash }) = ParsedToken::parse(token) else {
            return Err(RefreshError::InvalidGrant);
        };
        let tag = grant_tag(&grant_id);
        let access = mint_access_token(bucket, self.random).map_err(|_| RefreshError::Random)?;
        let refresh = mint_refresh_token(bucket, &grant_id, self.random).map_err(|_| RefreshError::Random)?;
        let mut first_read = true;
        let outcome = self.update_bucket(bucket, now, |records| {
            let was_first_read = std::mem::replace(&mut first_read, false);
            let Some(position) = records.iter().position(|record| record.tag == tag) else {
                return Err(RefreshError::InvalidGrant);
            };
            let record = records.get_mut(position).ok_or(RefreshError::InvalidGrant)?;
            if record.owner.client_id != client_id {
                return Err(RefreshError::InvalidGrant);
            }
            let is_current = record.refresh.as_ref().is_some_and(|current| current.hash == hash);
            if !is_current {
                if !was_first_read || record.refresh.is_none() {
                    return Err(RefreshError::InvalidGrant);
                }
                records.remove(position);
                return Ok(Err(RefreshError::ReuseDetected));
            }
            let plan = decide(&*record).map_err(RefreshError::Refused)?;
            record.refresh = Some(RefreshEntry { hash: refresh.hash, expires_at: plan.refresh_expires_at });
            record.add_access(AccessEntry {
                hash: access.hash,
                expires_at: plan.access_expires_at,
                scopes: plan.access_scopes,
            });
            Ok(Ok(()))
        });
        match outcome {
            Ok(Some(Ok(()))) => {
                Ok(IssuedTokens { access_token: access.text, refresh_token: Some(refresh.text) })
            }
            Ok(Some(Err(reuse))) => Err(reuse),
            Ok(None) => Err(RefreshError::InvalidGrant),
            Err(error) => Err(error),
        }
    }

    /// Reads a bucket, prunes it, lets `change` edit its records, and writes it back with
    /// compare-and-swap, retrying on conflicts. `Ok(None)`: the bucket does not exist.
    ///
    /// Each attempt starts from a fresh read, so `change` must be safe to run more than once.
    fn update_bucket<T, E: From<StoreError>>(
        &self,
        index: u32,
        now: u64,
        mut change: impl FnMut(&mut Vec<GrantRecord>) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        for _ in 0..CAS_ATTEMPTS {
            let Some((bytes, cas)) = self.read_bucket(index).map_err(E::from)? else {
                return Ok(None);
            };
            let mut records = decode_bucket(&bytes);
            records.retain_mut(|record| record.prune(now));
            let result = change(&mut records)?;
            let encoded = encode_bucket(&records);
            if encoded == bytes {
                return Ok(Some(result));
            }
            match self.shared.set(&bucket_key(index), &encoded, cas) {
                Ok(()) => return Ok(Some(result)),
                Err(StoreError::CasMismatch) => continue,
                Err(other) => return Err(E::from(other)),
            }
        }
        Err(E::from(StoreError::CasMismatch))
    }
}

impl From<StoreError> for IssueError {
    fn from(error: StoreError) -> Self {
        IssueError::Store(error)
    }
}

impl From<StoreError> for RefreshError {
    fn from(error: StoreError) -> Self {
        RefreshError::Store(error)
    }
}

#[cfg(test)]
mod tests;
