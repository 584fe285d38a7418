//! The token store: grants kept in a [`BucketTable`] of shared-data buckets.
//!
//! A grant is what one successful `/token` call creates: its client, user, scope, its current
//! refresh token and its live access tokens. Every token names its bucket (see
//! [`crate::state::token`]), so validating a token is one shared-data read and a scan of a few
//! hundred bytes, with no JSON and no per-token keys. Each bucket holds up to
//! [`SLOTS_PER_BUCKET`] grants; when every bucket tried for a new grant is full of live
//! grants, issuing fails with [`IssueError::Full`] and nothing stored is touched.

mod record;

use std::cell::RefCell;

use siphasher::sip::SipHasher24;

use crate::host::metrics::Metric;
use crate::host::{Coordination, Metrics, RandomUnavailable, Randomness, SharedStore, StoreError};
use crate::oauth::resource_indicator::Audience;
use crate::oauth::scope::ScopeId;
use crate::state::buckets::{is_bucket, records_of, BucketTable, Reader, Record, Updated};
use crate::state::keys;
use crate::state::remembered::{recall_key, RememberedGrants};
use crate::state::token::{
    grant_tag, jwt_token, mint_access_token, mint_jwt_id, mint_refresh_token, new_grant_id, AccessToken,
    GrantTag, MintedToken, ParsedToken, TokenHash,
};
use record::GrantView;
pub use record::{
    AccessEntry, GrantOwner, GrantRecord, KeyType, RefreshEntry, MAX_ACCESS_TOKENS_PER_GRANT, NEVER_EXPIRES,
};

thread_local! {
    /// This worker's memory of access tokens it validated (each Envoy worker runs its own VM
    /// on its own thread); see [`crate::state::remembered`].
    static REMEMBERED: RefCell<RememberedGrants<AccessGrant>> = RefCell::new(RememberedGrants::default());
}

/// Grants per bucket. Small enough that a bucket read copies well under a kilobyte.
pub const SLOTS_PER_BUCKET: usize = 8;
/// Random buckets tried for a new grant before the store counts as full.
const BUCKET_PROBES: usize = 4;

/// When the last token of any grant in `bucket` (a bucket's bytes) expires: the bucket is
/// worth keeping until then. `None` when a token never expires or the bucket holds no grant.
pub fn latest_expiry(bucket: &[u8]) -> Option<u64> {
    let mut latest = None;
    for record in records_of(bucket).filter_map(GrantRecord::decode) {
        let refresh = record.refresh.iter().map(|refresh| refresh.expires_at);
        for expiry in record.access.iter().map(|access| access.expires_at).chain(refresh) {
            if expiry == NEVER_EXPIRES {
                return None;
            }
            latest = latest.max(Some(expiry));
        }
    }
    latest
}

/// True when the bucket `after` keeps every token of the bucket `before` as it was: each
/// record of `before` is in `after` unchanged, or (the same grant) with access tokens added and
/// nothing else changed. Whatever a worker remembered of a token in `before`
/// ([`crate::state::remembered`]: its grant's owner, scopes and expiry) then still holds, so a
/// change that only issues tokens need not make every worker forget what it remembered
/// (see [`crate::fleet::watch`]). A revocation, a rotation (the refresh entry changes), a
/// deleted or pruned grant, or a changed expiry or scope is not only an addition; nor is a
/// change to a record this build cannot read, which must be there byte for byte.
pub fn only_adds_tokens(before: &[u8], after: &[u8]) -> bool {
    if !is_bucket(before) {
        return false;
    }
    records_of(before).all(|old| records_of(after).any(|new| new == old) || grew_in(old, after))
}

/// True when `after` holds the grant `old` (a record's bytes) with only access tokens added.
fn grew_in(old: &[u8], after: &[u8]) -> bool {
    let Some(old) = GrantRecord::decode(old) else { return false };
    records_of(after).filter_map(GrantRecord::decode).any(|new| {
        new.tag == old.tag
            && new.owner == old.owner
            && new.scopes == old.scopes
            && new.refresh == old.refresh
            && new.audience == old.audience
            && new.newer_fields == old.newer_fields
            && old.access.iter().all(|entry| new.access.contains(entry))
    })
}

/// The first of the buckets an application's grants go to (see
/// [`TokenStore::with_share_per_owner`]). A spread, not a secret (the client id is public),
/// and the same in every worker and replica: SipHash-2-4 under a fixed key, a tenth of the
/// SHA-256 it was, which every `/token` paid where an application's share is below the table.
fn owner_start(client_id: &str, count: u32) -> u32 {
    let spread = SipHasher24::new().hash(client_id.as_bytes());
    u32::try_from(spread.checked_rem(u64::from(count)).unwrap_or(0)).unwrap_or(0)
}

/// Buckets needed for `capacity` grants.
pub fn bucket_count_for(capacity: u32) -> u32 {
    capacity.div_ceil(SLOTS_PER_BUCKET as u32).max(1)
}

/// What the store knows about a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    pub owner: GrantOwner,
    pub scopes: Vec<ScopeId>,
    pub issued_at: u64,
    /// The grant's audience (RFC 8707): the resources the token may be used on.
    pub audience: Audience,
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
    /// Every bucket tried is full, mostly of this application's grants: it holds about as
    /// many as its share of the table allows (see [`TokenStore::with_share_per_owner`]).
    OwnerFull,
    Random,
    /// The access token could not be signed.
    Signing,
    Store(StoreError),
}

impl From<RandomUnavailable> for IssueError {
    fn from(_: RandomUnavailable) -> Self {
        IssueError::Random
    }
}

impl From<StoreError> for IssueError {
    fn from(error: StoreError) -> Self {
        IssueError::Store(error)
    }
}

/// A grant about to be issued.
pub struct NewGrant {
    pub owner: GrantOwner,
    pub scopes: Vec<ScopeId>,
    pub access_expires_at: u64,
    /// Set when the grant gets a refresh token.
    pub refresh_expires_at: Option<u64>,
    /// The resources asked for (RFC 8707); unbound without `resource`.
    pub audience: Audience,
}

/// What a JWT access token says (RFC 9068 §2.2), handed to the caller that signs it: the
/// store knows no keys and no issuer, the caller knows no buckets.
pub struct AccessFacts<'a> {
    /// The token's `jti`: names its bucket (see [`crate::state::token`]).
    pub jti: &'a str,
    pub owner: &'a GrantOwner,
    pub scopes: &'a [ScopeId],
    pub audience: &'a Audience,
    pub issued_at: u64,
    pub expires_at: u64,
}

/// Signs a JWT access token for its facts; `None` when it cannot. Without one, access tokens
/// are opaque.
pub type AccessSigner<'s> = &'s dyn Fn(&AccessFacts<'_>) -> Option<String>;

pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Where the grant lives, for [`TokenStore::revoke_grant`] (an authorization code that
    /// comes back revokes what it produced, RFC 6749 §4.1.2).
    pub location: GrantLocation,
}

/// A grant's bucket and tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantLocation {
    pub bucket: u32,
    pub tag: GrantTag,
}

/// What the caller decides when a refresh token checks out (see [`TokenStore::refresh`]).
pub struct RefreshPlan {
    /// `None`: the grant's full scope.
    pub access_scopes: Option<Vec<ScopeId>>,
    pub access_expires_at: u64,
    pub refresh_expires_at: u64,
    /// The grant's audience from now on: its own, or narrower (RFC 8707 §2.2).
    pub audience: Audience,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshError {
    /// Unknown, expired, used, revoked, or issued to another client (RFC 6749 `invalid_grant`).
    InvalidGrant,
    /// A used refresh token came back: the grant has been revoked (RFC 9700 §4.14.2).
    ReuseDetected,
    /// The caller's decision refused it: passed back unchanged, nothing stored changes.
    Refused(RefreshRefusal),
    Random,
    /// The access token could not be signed.
    Signing,
    Store(StoreError),
}

impl From<StoreError> for RefreshError {
    fn from(error: StoreError) -> Self {
        RefreshError::Store(error)
    }
}

/// Why the caller refused a refresh; see [`TokenStore::refresh`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    InvalidGrant,
    InvalidScope,
    /// A `resource` outside the grant's audience (RFC 8707 §2.2).
    InvalidTarget,
}

/// The result of a revocation request (RFC 7009).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// Unknown, already revoked or expired: nothing to do.
    Unknown,
    /// The token belongs to another client; it was left alone.
    NotOwner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// An active token as introspection reports it (RFC 7662).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDescription {
    pub kind: TokenKind,
    pub owner: GrantOwner,
    pub scopes: Vec<ScopeId>,
    pub issued_at: u64,
    pub expires_at: u64,
    pub audience: Audience,
}

/// The store as the gateway uses it. Borrowing the host pieces keeps it cheap to build per
/// request.
pub struct TokenStore<'h> {
    table: BucketTable<'h>,
    /// Buckets one application's new grants may go to (see [`TokenStore::with_share_per_owner`]).
    owner_buckets: u32,
    random: &'h dyn Randomness,
    metrics: &'h dyn Metrics,
    /// The token epoch, moved by every write that ends or changes tokens.
    coordination: &'h dyn Coordination,
}

impl<'h> TokenStore<'h> {
    pub fn new(
        shared: &'h dyn SharedStore,
        random: &'h dyn Randomness,
        metrics: &'h dyn Metrics,
        coordination: &'h dyn Coordination,
        capacity: u32,
    ) -> Self {
        let table = BucketTable::new(shared, keys::GRANTS, bucket_count_for(capacity));
        TokenStore { owner_buckets: table.count(), table, random, metrics, coordination }
    }

    /// Caps the grants one application holds at about `max_grants` without counting them:
    /// its new grants go only to `max_grants / 8` buckets (rounded up), a run of the table
    /// that starts where a hash of its name says. It can fill those and no more, so however
    /// often it calls `/token` the rest of the table stays for everyone else. The price: the
    /// cap is an upper bound, and in a busy store the other applications' grants in those
    /// buckets leave it less. Issuing costs one SHA-256 of the name more, no host call.
    pub fn with_share_per_owner(mut self, max_grants: u32) -> Self {
        self.owner_buckets = bucket_count_for(max_grants).min(self.table.count());
        self
    }

    /// Buckets in the table (the sweep walks them in slices).
    pub fn bucket_count(&self) -> u32 {
        self.table.count()
    }

    /// Creates missing buckets; see [`BucketTable::initialize`] for why only start-up may.
    pub fn initialize(&self) -> Result<u32, StoreError> {
        self.table.initialize()
    }

    /// The keys of this table's buckets.
    pub fn bucket_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.table.keys()
    }

    /// [`BucketTable::update`], keeping the live-grants gauge in step.
    fn update<T, E: From<StoreError>>(
        &self,
        index: u32,
        now: u64,
        change: impl FnMut(&mut Vec<GrantRecord>) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        let updated = self.table.update(index, now, change)?;
        Ok(updated.map(|Updated { value, records_delta }| {
            if records_delta != 0 {
                self.metrics.add(Metric::StoreGrants, records_delta);
            }
            value
        }))
    }

    /// Finds the grant behind an access token: one shared-data read, and a scan that only
    /// allocates for the token it finds.
    ///
    /// A grant this worker found before is taken from its memory instead, while the token
    /// epoch has not moved since (one metric read instead of the shared-data read): see
    /// [`crate::state::remembered`]. The epoch is read before the store, so a token ended
    /// between the two reads is remembered at an epoch that is already past.
    pub fn find_access(&self, token: &str, now: u64) -> Result<AccessGrant, LookupError> {
        let Some(token) = AccessToken::decode(token) else { return Err(LookupError::Unknown) };
        // A worker remembers only while it can tell when to forget: with an epoch to read.
        let memory = self.coordination.token_epoch().zip(recall_key(token.bytes()));
        if let Some((epoch, key)) = memory {
            let recalled = REMEMBERED.with(|memory| memory.borrow().recall(&key, epoch, now));
            if let Some(grant) = recalled {
                return Ok(grant);
            }
        }
        let (grant, expires_at) = self.read_access(token.bucket, &token.hash(), now)?;
        if let Some((epoch, key)) = memory {
            REMEMBERED.with(|memory| memory.borrow_mut().remember(key, epoch, expires_at, grant.clone()));
        }
        Ok(grant)
    }

    /// The store's answer for an access token, and when it expires.
    fn read_access(
        &self,
        bucket: u32,
        hash: &TokenHash,
        now: u64,
    ) -> Result<(AccessGrant, u64), LookupError> {
        let Some(bytes) = self.table.read(bucket).map_err(LookupError::Store)? else {
            return Err(LookupError::Unknown);
        };
        for view in records_of(&bytes).filter_map(GrantView::parse) {
            let Some(entry) = view.access().find(|entry| entry.hash == *hash) else { continue };
            if entry.expires_at <= now {
                return Err(LookupError::Expired);
            }
            let scopes = Reader(entry.scopes.unwrap_or(view.scopes)).scopes().ok_or(LookupError::Unknown)?;
            let audience = view.audience().ok_or(LookupError::Unknown)?;
            let grant = AccessGrant { owner: view.owner(), scopes, issued_at: entry.issued_at, audience };
            return Ok((grant, entry.expires_at));
        }
        Err(LookupError::Unknown)
    }

    /// Describes an active access or refresh token, for introspection; `None` when it is not.
    pub fn describe(&self, token: &str, now: u64) -> Result<Option<TokenDescription>, StoreError> {
        let (bucket, kind, hash, tag) = match ParsedToken::parse(token) {
            Some(ParsedToken::Access { bucket, hash }) => (bucket, TokenKind::Access, hash, None),
            Some(ParsedToken::Refresh { bucket, grant_id, hash }) => {
                (bucket, TokenKind::Refresh, hash, Some(grant_tag(&grant_id)))
            }
            None => return Ok(None),
        };
        let Some(bytes) = self.table.read(bucket)? else { return Ok(None) };
        for record in records_of(&bytes).filter_map(GrantRecord::decode) {
            let found = match tag {
                None => record.access.iter().find(|entry| entry.hash == hash).map(|entry| {
                    let scopes = entry.scopes.clone().unwrap_or_else(|| record.scopes.clone());
                    (scopes, entry.issued_at, entry.expires_at)
                }),
                Some(tag) => record
                    .refresh
                    .as_ref()
                    .filter(|refresh| record.tag == tag && refresh.hash == hash)
                    .map(|refresh| (record.scopes.clone(), refresh.issued_at, refresh.expires_at)),
            };
            if let Some((scopes, issued_at, expires_at)) = found {
                if expires_at <= now {
                    return Ok(None);
                }
                return Ok(Some(TokenDescription {
                    kind,
                    owner: record.owner,
                    scopes,
                    issued_at,
                    expires_at,
                    audience: record.audience,
                }));
            }
        }
        Ok(None)
    }

    /// Stores a new grant in a random bucket with room and returns its tokens.
    pub fn issue(&self, grant: NewGrant, now: u64) -> Result<IssuedTokens, IssueError> {
        self.issue_signed(grant, now, None)
    }

    /// [`TokenStore::issue`], with a JWT access token signed by `signer` when there is one.
    pub fn issue_signed(
        &self,
        grant: NewGrant,
        now: u64,
        signer: Option<AccessSigner<'_>>,
    ) -> Result<IssuedTokens, IssueError> {
        // A refresh token carries its grant's id, and the store finds the grant by the id's
        // hash. A grant without one is only ever found by its access tokens' hashes, so its
        // tag can be drawn at random: no id to keep, and no SHA-256 to pay on every issue.
        let refresh_grant = match grant.refresh_expires_at {
            Some(expires_at) => Some((new_grant_id(self.random)?, expires_at)),
            None => None,
        };
        let tag = match &refresh_grant {
            Some((grant_id, _)) => grant_tag(grant_id),
            None => {
                let mut tag = GrantTag::default();
                self.random.fill(&mut tag)?;
                tag
            }
        };
        let count = self.table.count();
        let first = if self.owner_buckets < count { owner_start(&grant.owner.client_id, count) } else { 0 };
        let mut owner_full = false;
        for _ in 0..BUCKET_PROBES {
            let mut pick = [0u8; 4];
            self.random.fill(&mut pick)?;
            let offset = u32::from_be_bytes(pick) % self.owner_buckets.max(1);
            let bucket = ((u64::from(first) + u64::from(offset)) % u64::from(count)) as u32;
            let access = match signer {
                None => mint_access_token(bucket, self.random)?,
                Some(sign) => {
                    let jti = mint_jwt_id(bucket, self.random)?;
                    let facts = AccessFacts {
                        jti: &jti,
                        owner: &grant.owner,
                        scopes: &grant.scopes,
                        audience: &grant.audience,
                        issued_at: now,
                        expires_at: grant.access_expires_at,
                    };
                    jwt_token(sign(&facts).ok_or(IssueError::Signing)?)
                }
            };
            let refresh = match &refresh_grant {
                Some((grant_id, expires_at)) => {
                    Some((mint_refresh_token(bucket, grant_id, self.random)?, *expires_at))
                }
                None => None,
            };
            let record = GrantRecord {
                tag,
                owner: grant.owner.clone(),
                scopes: grant.scopes.clone(),
                refresh: refresh.as_ref().map(|(token, expires_at)| RefreshEntry {
                    hash: token.hash,
                    issued_at: now,
                    expires_at: *expires_at,
                    replaced: None,
                }),
                access: vec![AccessEntry {
                    hash: access.hash,
                    issued_at: now,
                    expires_at: grant.access_expires_at,
                    scopes: None,
                }],
                audience: grant.audience.clone(),
                newer_fields: Vec::new(),
            };
            let stored = self.update(bucket, now, |records| {
                if records.len() >= SLOTS_PER_BUCKET {
                    let own = records.iter().filter(|r| r.owner.client_id == grant.owner.client_id).count();
                    owner_full |= own * 2 >= SLOTS_PER_BUCKET;
                    return Ok(false);
                }
                records.push(record.clone());
                Ok::<bool, IssueError>(true)
            })?;
            if stored == Some(true) {
                return Ok(IssuedTokens {
                    access_token: access.text,
                    refresh_token: refresh.map(|(token, _)| token.text),
                    location: GrantLocation { bucket, tag },
                });
            }
        }
        if owner_full && self.owner_buckets < count {
            return Err(IssueError::OwnerFull);
        }
        Err(IssueError::Full)
    }

    /// Rotates a refresh token: checks it, lets `decide` judge the stored grant, then replaces
    /// the refresh token and adds an access token, all in one compare-and-swap.
    ///
    /// A refresh token of a live grant that is no longer the current one is a reused token:
    /// the grant is revoked. The exception is the token just replaced, presented within
    /// `reuse_grace` milliseconds of its rotation: a request that lost a concurrent race gets
    /// `InvalidGrant` and the winner's tokens stay, so clients that retry in parallel do not
    /// lose their session.
    pub fn refresh(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
        reuse_grace: u64,
        decide: impl FnMut(&GrantRecord) -> Result<RefreshPlan, RefreshRefusal>,
    ) -> Result<IssuedTokens, RefreshError> {
        self.refresh_signed(token, client_id, now, reuse_grace, decide, None)
    }

    /// [`TokenStore::refresh`], with a JWT access token signed by `signer` when there is one
    /// (signed once the plan is known, inside the compare-and-swap: a retry signs again).
    pub fn refresh_signed(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
        reuse_grace: u64,
        mut decide: impl FnMut(&GrantRecord) -> Result<RefreshPlan, RefreshRefusal>,
        signer: Option<AccessSigner<'_>>,
    ) -> Result<IssuedTokens, RefreshError> {
        let Some(ParsedToken::Refresh { bucket, grant_id, hash }) = ParsedToken::parse(token) else {
            return Err(RefreshError::InvalidGrant);
        };
        let tag = grant_tag(&grant_id);
        let mut access = match signer {
            None => mint_access_token(bucket, self.random).map_err(|_| RefreshError::Random)?,
            Some(_) => MintedToken { text: String::new(), hash: TokenHash::default() },
        };
        let jti = match signer {
            Some(_) => Some(mint_jwt_id(bucket, self.random).map_err(|_| RefreshError::Random)?),
            None => None,
        };
        let refresh = mint_refresh_token(bucket, &grant_id, self.random).map_err(|_| RefreshError::Random)?;
        let outcome = self.update(bucket, now, |records| {
            let position =
                records.iter().position(|record| record.tag == tag).ok_or(RefreshError::InvalidGrant)?;
            let record = records.get_mut(position).ok_or(RefreshError::InvalidGrant)?;
            if record.owner.client_id != client_id {
                return Err(RefreshError::InvalidGrant);
            }
            let Some(current) = &record.refresh else { return Err(RefreshError::InvalidGrant) };
            if current.hash != hash {
                let lost_race =
                    current.replaced == Some(hash) && now.saturating_sub(current.issued_at) < reuse_grace;
                if lost_race {
                    return Err(RefreshError::InvalidGrant);
                }
                records.remove(position);
                return Ok(Err(RefreshError::ReuseDetected));
            }
            let plan = decide(&*record).map_err(RefreshError::Refused)?;
            if let (Some(sign), Some(jti)) = (signer, &jti) {
                let facts = AccessFacts {
                    jti,
                    owner: &record.owner,
                    scopes: plan.access_scopes.as_deref().unwrap_or(&record.scopes),
                    audience: &plan.audience,
                    issued_at: now,
                    expires_at: plan.access_expires_at,
                };
                access = jwt_token(sign(&facts).ok_or(RefreshError::Signing)?);
            }
            record.refresh = Some(RefreshEntry {
                hash: refresh.hash,
                issued_at: now,
                expires_at: plan.refresh_expires_at,
                replaced: Some(hash),
            });
            record.add_access(AccessEntry {
                hash: access.hash,
                issued_at: now,
                expires_at: plan.access_expires_at,
                scopes: plan.access_scopes,
            });
            record.audience = plan.audience;
            Ok(Ok(()))
        });
        if matches!(outcome, Ok(Some(_))) {
            // Rotated (older access tokens may have gone) or revoked as reused.
            self.coordination.tokens_changed();
        }
        match outcome {
            Ok(Some(Ok(()))) => Ok(IssuedTokens {
                access_token: access.text,
                refresh_token: Some(refresh.text),
                location: GrantLocation { bucket, tag },
            }),
            Ok(Some(Err(reuse))) => Err(reuse),
            Ok(None) => Err(RefreshError::InvalidGrant),
            Err(error) => Err(error),
        }
    }

    /// Revokes a token of `client_id` (RFC 7009 §2.1). An access token goes alone; a refresh
    /// token takes its whole grant, the access tokens issued from it included.
    ///
    /// A refresh token must be the grant's current one, or the one it just replaced within
    /// `reuse_grace` milliseconds (a revocation racing a refresh): the grant id alone, which
    /// every rotated token carries, revokes nothing, just as introspection calls such a token
    /// inactive.
    pub fn revoke(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
        reuse_grace: u64,
    ) -> Result<Revocation, StoreError> {
        let (bucket, target) = match ParsedToken::parse(token) {
            Some(ParsedToken::Access { bucket, hash }) => (bucket, RevokeTarget::Access(hash)),
            Some(ParsedToken::Refresh { bucket, grant_id, hash }) => {
                (bucket, RevokeTarget::Grant(grant_tag(&grant_id), hash))
            }
            None => return Ok(Revocation::Unknown),
        };
        let outcome = self.update(bucket, now, |records| {
            let position = records.iter().position(|record| match target {
                RevokeTarget::Access(hash) => record.access.iter().any(|entry| entry.hash == hash),
                RevokeTarget::Grant(tag, hash) => {
                    record.tag == tag
                        && record.refresh.as_ref().is_some_and(|current| {
                            current.hash == hash
                                || (current.replaced == Some(hash)
                                    && now.saturating_sub(current.issued_at) < reuse_grace)
                        })
                }
            });
            let Some(position) = position else { return Ok::<_, StoreError>(Revocation::Unknown) };
            let Some(record) = records.get_mut(position) else { return Ok(Revocation::Unknown) };
            if record.owner.client_id != client_id {
                return Ok(Revocation::NotOwner);
            }
            match target {
                RevokeTarget::Access(hash) => record.access.retain(|entry| entry.hash != hash),
                RevokeTarget::Grant(..) => record.access.clear(),
            }
            if matches!(target, RevokeTarget::Grant(..)) || record.is_empty() {
                records.remove(position);
            }
            Ok(Revocation::Revoked)
        })?;
        if outcome == Some(Revocation::Revoked) {
            self.coordination.tokens_changed();
        }
        Ok(outcome.unwrap_or(Revocation::Unknown))
    }

    /// Revokes a whole grant, its access and refresh tokens, by where it lives; true when it
    /// was there. For a replayed authorization code (RFC 6749 §4.1.2).
    pub fn revoke_grant(&self, location: GrantLocation, now: u64) -> Result<bool, StoreError> {
        let removed = self.update(location.bucket, now, |records| {
            let before = records.len();
            records.retain(|record| record.tag != location.tag);
            Ok::<_, StoreError>(records.len() != before)
        })?;
        if removed == Some(true) {
            self.coordination.tokens_changed();
        }
        Ok(removed.unwrap_or(false))
    }

    /// Sweeps the next slice of `count` buckets, if no other VM claimed it first.
    pub fn sweep_next(
        &self,
        count: u32,
        now: u64,
        keep: &mut dyn FnMut(&GrantRecord) -> bool,
    ) -> Result<(), StoreError> {
        if let Some(first) = self.table.claim_sweep_slice(count)? {
            self.sweep(first, count, now, keep)?;
        }
        Ok(())
    }

    /// Rewrites buckets `first..first + count` (wrapping), dropping what has expired and the
    /// grants `keep` refuses (the caller knows whose owner no longer stands; the store does
    /// not). Returns the index to continue from.
    pub fn sweep(
        &self,
        first: u32,
        count: u32,
        now: u64,
        keep: &mut dyn FnMut(&GrantRecord) -> bool,
    ) -> Result<u32, StoreError> {
        let total = self.table.count();
        let mut index = first % total;
        for _ in 0..count.min(total) {
            self.update(index, now, |records| {
                records.retain(|record| keep(record));
                Ok::<(), StoreError>(())
            })?;
            index = (index + 1) % total;
        }
        Ok(index)
    }
}

#[derive(Clone, Copy)]
enum RevokeTarget {
    Access(TokenHash),
    /// A grant by its tag and the refresh token's hash.
    Grant(GrantTag, TokenHash),
}

#[cfg(test)]
mod tests;
