//! A grant as one bucket record: [`GrantRecord`] to decode and re-encode a bucket when it
//! changes, [`GrantView`] to read one in place on the validation hot path.

use crate::oauth::resource_indicator::Audience;
use crate::oauth::scope::ScopeId;
use crate::state::buckets::{put_audience, put_scopes, put_short_bytes, Reader, Record};
use crate::state::token::{GrantTag, TokenHash};

/// Live access tokens kept per grant; issuing one more drops the one expiring first.
pub const MAX_ACCESS_TOKENS_PER_GRANT: usize = 4;
/// Expiry meaning "never" (WSO2's negative validity).
pub const NEVER_EXPIRES: u64 = u64::MAX;
/// Marks an access token whose scope is the grant's scope, to save repeating it.
const SAME_SCOPE_AS_GRANT: u8 = 0xFF;
/// Set in the refresh flag byte for a grant of sandbox keys. Records written before key
/// types existed have flag bytes 0 to 2, so they decode as production grants.
const SANDBOX_FLAG: u8 = 0x80;

/// Which of an application's key pairs a grant was issued to (WSO2's production and sandbox
/// keys): a sandbox token reaches an API's sandbox upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    #[default]
    Production,
    Sandbox,
}

impl KeyType {
    /// WSO2's spelling (`keyType` in its APIs, `PRODUCTION`/`SANDBOX` in old scopes).
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Production => "PRODUCTION",
            KeyType::Sandbox => "SANDBOX",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub hash: TokenHash,
    pub issued_at: u64,
    pub expires_at: u64,
    /// `None`: the grant's scope.
    pub scopes: Option<Vec<ScopeId>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshEntry {
    pub hash: TokenHash,
    pub issued_at: u64,
    pub expires_at: u64,
    /// The refresh token this one replaced (at `issued_at`): a request that raced the rotation
    /// may still present it for a short grace without counting as reuse.
    pub replaced: Option<TokenHash>,
}

/// Who a grant was issued to, and under which credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantOwner {
    pub client_id: String,
    /// Fingerprint of the application's credentials when the grant was issued.
    pub client_fingerprint: u32,
    /// The user and the fingerprint of their password, for the password grant.
    pub user: Option<(String, u32)>,
    /// The key pair the client authenticated with; refreshing keeps it.
    pub key_type: KeyType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub tag: GrantTag,
    pub owner: GrantOwner,
    pub scopes: Vec<ScopeId>,
    pub refresh: Option<RefreshEntry>,
    pub access: Vec<AccessEntry>,
    /// The resources the grant's tokens may be used on (RFC 8707); unbound when it was issued
    /// without `resource`. A refresh may narrow it, never widen it.
    pub audience: Audience,
    /// Fields a newer module appended after the audience, kept as they were and written back
    /// after it, so rewriting the bucket does not drop them (docs/upgrading.md).
    pub newer_fields: Vec<u8>,
}

impl GrantRecord {
    /// The resource identifiers the grant is bound to (a JWT's `aud`, introspection's `aud`);
    /// empty when it is unbound.
    pub fn audience(&self) -> &[String] {
        self.audience.uris()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.refresh.is_none() && self.access.is_empty()
    }

    /// When the grant's newest token was issued: if its owner's credentials changed after
    /// that, every token of the grant is dead.
    pub fn newest_issue(&self) -> u64 {
        let refresh = self.refresh.as_ref().map(|refresh| refresh.issued_at);
        self.access.iter().map(|entry| entry.issued_at).chain(refresh).max().unwrap_or(0)
    }

    pub(super) fn add_access(&mut self, entry: AccessEntry) {
        if self.access.len() >= MAX_ACCESS_TOKENS_PER_GRANT {
            let soonest = self.access.iter().enumerate().min_by_key(|(_, e)| e.expires_at).map(|(i, _)| i);
            if let Some(soonest) = soonest {
                self.access.remove(soonest);
            }
        }
        self.access.push(entry);
    }
}

/// Layout: `tag(8) client_fp(4) user_fp(4) client(len8) user(len8, empty = none)
/// refresh?(flag | 0x80 for sandbox keys, hash 16, issued 8, expires 8) scopes(count8, u32…)
/// access(count8, {hash 16, issued 8, expires 8, scopes or 0xFF = the grant's})
/// audience?(0x01, count8, {uri len8}) newer fields(…)`: readers older than the audience stop
/// after the access entries, and this one after the audience (absent for an unbound grant), so
/// a newer module may append fields there, each behind a mark greater than the audience's, and
/// an older one keeps them ([`GrantRecord::newer_fields`]).
impl Record for GrantRecord {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let view = GrantView::parse(bytes)?;
        let mut entries = Reader(view.access);
        // Every entry must decode: a record whose entries this build misreads is kept whole,
        // as bytes, by the bucket rather than rewritten with fewer of them.
        let access = (0..view.access_count)
            .map(|_| read_access_entry(&mut entries)?.to_owned())
            .collect::<Option<Vec<_>>>()?;
        Some(GrantRecord {
            tag: view.tag,
            owner: view.owner(),
            scopes: Reader(view.scopes).scopes()?,
            refresh: view.refresh,
            access,
            audience: entries.audience()?,
            newer_fields: entries.0.to_vec(),
        })
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag);
        out.extend_from_slice(&self.owner.client_fingerprint.to_be_bytes());
        let (user_name, user_fingerprint) = match &self.owner.user {
            Some((name, fingerprint)) => (name.as_str(), *fingerprint),
            None => ("", 0),
        };
        out.extend_from_slice(&user_fingerprint.to_be_bytes());
        put_short_bytes(out, self.owner.client_id.as_bytes());
        put_short_bytes(out, user_name.as_bytes());
        let key_flag = match self.owner.key_type {
            KeyType::Production => 0,
            KeyType::Sandbox => SANDBOX_FLAG,
        };
        match &self.refresh {
            Some(refresh) => {
                out.push(key_flag | if refresh.replaced.is_some() { 2 } else { 1 });
                out.extend_from_slice(&refresh.hash);
                out.extend_from_slice(&refresh.issued_at.to_be_bytes());
                out.extend_from_slice(&refresh.expires_at.to_be_bytes());
                if let Some(replaced) = &refresh.replaced {
                    out.extend_from_slice(replaced);
                }
            }
            None => out.push(key_flag),
        }
        put_scopes(out, &self.scopes);
        out.push(self.access.len().min(MAX_ACCESS_TOKENS_PER_GRANT) as u8);
        for entry in self.access.iter().take(MAX_ACCESS_TOKENS_PER_GRANT) {
            out.extend_from_slice(&entry.hash);
            out.extend_from_slice(&entry.issued_at.to_be_bytes());
            out.extend_from_slice(&entry.expires_at.to_be_bytes());
            match &entry.scopes {
                None => out.push(SAME_SCOPE_AS_GRANT),
                Some(scopes) => put_scopes(out, scopes),
            }
        }
        put_audience(out, &self.audience);
        out.extend_from_slice(&self.newer_fields);
    }

    fn prune(&mut self, now: u64) -> bool {
        self.access.retain(|entry| entry.expires_at > now);
        if self.refresh.as_ref().is_some_and(|refresh| refresh.expires_at <= now) {
            self.refresh = None;
        }
        !self.is_empty()
    }
}

/// A grant record read in place, without allocating: what the validation hot path uses.
pub(super) struct GrantView<'a> {
    pub(super) tag: GrantTag,
    pub(super) client_fingerprint: u32,
    pub(super) user_fingerprint: u32,
    pub(super) client: &'a str,
    pub(super) user: &'a str,
    pub(super) key_type: KeyType,
    pub(super) refresh: Option<RefreshEntry>,
    /// The encoded scope list (count byte included).
    pub(super) scopes: &'a [u8],
    pub(super) access_count: u8,
    /// The access entries, then any fields a newer module appended.
    pub(super) access: &'a [u8],
}

pub(super) struct AccessView<'a> {
    pub(super) hash: TokenHash,
    pub(super) issued_at: u64,
    pub(super) expires_at: u64,
    /// The encoded scope list, or `None` for the grant's.
    pub(super) scopes: Option<&'a [u8]>,
}

impl<'a> GrantView<'a> {
    pub(super) fn parse(bytes: &'a [u8]) -> Option<GrantView<'a>> {
        let mut r = Reader(bytes);
        let tag = r.array::<8>()?;
        let client_fingerprint = r.u32()?;
        let user_fingerprint = r.u32()?;
        let client_len = r.u8()?;
        let client = std::str::from_utf8(r.take(usize::from(client_len))?).ok()?;
        let user_len = r.u8()?;
        let user = std::str::from_utf8(r.take(usize::from(user_len))?).ok()?;
        let flag = r.u8()?;
        let key_type = if flag & SANDBOX_FLAG == 0 { KeyType::Production } else { KeyType::Sandbox };
        let refresh = match flag & !SANDBOX_FLAG {
            0 => None,
            flag @ (1 | 2) => Some(RefreshEntry {
                hash: r.array()?,
                issued_at: r.u64()?,
                expires_at: r.u64()?,
                replaced: if flag == 2 { Some(r.array()?) } else { None },
            }),
            _ => return None,
        };
        let scopes = take_scope_list(&mut r)?;
        let access_count = r.u8()?;
        Some(GrantView {
            tag,
            client_fingerprint,
            user_fingerprint,
            client,
            user,
            key_type,
            refresh,
            scopes,
            access_count,
            access: r.0,
        })
    }

    /// The access entries; a malformed one ends the iteration with `None`.
    pub(super) fn access(&self) -> impl Iterator<Item = AccessView<'a>> + '_ {
        let mut r = Reader(self.access);
        (0..self.access_count).map_while(move |_| read_access_entry(&mut r))
    }

    /// The grant's audience, after its access entries; `None` when a field is malformed.
    pub(super) fn audience(&self) -> Option<Audience> {
        let mut r = Reader(self.access);
        for _ in 0..self.access_count {
            read_access_entry(&mut r)?;
        }
        r.audience()
    }

    pub(super) fn owner(&self) -> GrantOwner {
        GrantOwner {
            client_id: self.client.to_owned(),
            client_fingerprint: self.client_fingerprint,
            user: (!self.user.is_empty()).then(|| (self.user.to_owned(), self.user_fingerprint)),
            key_type: self.key_type,
        }
    }
}

impl AccessView<'_> {
    pub(super) fn to_owned(&self) -> Option<AccessEntry> {
        let scopes = match self.scopes {
            None => None,
            Some(encoded) => Some(Reader(encoded).scopes()?),
        };
        Some(AccessEntry { hash: self.hash, issued_at: self.issued_at, expires_at: self.expires_at, scopes })
    }
}

fn read_access_entry<'a>(r: &mut Reader<'a>) -> Option<AccessView<'a>> {
    let hash = r.array()?;
    let issued_at = r.u64()?;
    let expires_at = r.u64()?;
    let scopes = if r.peek()? == SAME_SCOPE_AS_GRANT {
        r.u8()?;
        None
    } else {
        Some(take_scope_list(r)?)
    };
    Some(AccessView { hash, issued_at, expires_at, scopes })
}

/// Takes an encoded scope list (count byte and ids) as one slice.
fn take_scope_list<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let count = usize::from(r.peek()?);
    r.take(1 + 4 * count)
}
