//! The authorization code flow's short-lived records (RFC 6749 §4.1): the codes sign-ins
//! produce, and the login handles already used.
//!
//! One bounded [`BucketTable`], `code`: the code → who signed in, for which client, redirect
//! URI, scope and PKCE challenge. It keeps SHA-256 prefixes of the code, never the text, and
//! drops records once they expire. Codes are 32 random bytes (256 bits) in base64url: the
//! bucket comes from their hash, so nothing in them is guessable or needs to be parsed.
//!
//! The pending sign-in itself is not stored: it travels sealed in the login page
//! ([`crate::state::login_handle`]). Only a sign-in that succeeded leaves a record of its
//! handle here ([`AuthorizationTable::spend_login`]), until the handle expires, so a handle
//! gives at most one code while nobody without a password can add a record.
//!
//! A code is marked spent by its first presentation, good or bad; a second presentation marks
//! it replayed, and the caller revokes the grant the first one produced (RFC 6749 §4.1.2),
//! including a grant still being issued while the replay arrived
//! ([`AuthorizationTable::remember_grant`] reports it).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::host::{RandomUnavailable, Randomness, SharedStore, StoreError};
use crate::oauth::resource_indicator::Audience;
use crate::state::buckets::{put_audience, BucketTable, Reader, Record, AUDIENCE_MARK};
use crate::state::grants::GrantLocation;
use crate::state::keys;
use crate::state::token::hash_prefix;

/// Records one bucket holds; a full bucket refuses new ones until some expire.
const SLOTS_PER_BUCKET: usize = 8;

/// Buckets for about `capacity` codes and used login handles.
pub fn code_bucket_count_for(capacity: u32) -> u32 {
    capacity.div_ceil(SLOTS_PER_BUCKET as u32).max(1)
}
const SECRET_BYTES: usize = 32;

/// The mark that starts the OpenID Connect fields (`auth_time`, `nonce`) appended after a
/// code's or a login handle's audience. Greater than [`AUDIENCE_MARK`], so a module that
/// knows only the audience keeps these bytes as a newer module's fields (docs/upgrading.md).
const OPENID_MARK: u8 = AUDIENCE_MARK + 1;

/// A pending sign-in or an issued code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub client_id: String,
    pub redirect_uri: String,
    /// The scope asked for (validated), space-separated; may be empty.
    pub scope: String,
    /// The client's `state`, echoed on the redirect (login records only).
    pub state: Option<String>,
    /// The `S256` code challenge.
    pub challenge: String,
    /// Who signed in (code records only).
    pub username: String,
    /// The resources asked for (RFC 8707 §2.1); unbound without `resource`.
    pub audience: Audience,
    /// OpenID Connect's `nonce` (Core §3.1.2.1), echoed in the ID token.
    pub nonce: Option<String>,
    /// When the user signed in at the login page, in seconds since the epoch: the ID token's
    /// `auth_time` (Core §2). Set on the codes of `openid` requests only.
    pub auth_time: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Fresh,
    Spent,
    Replayed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    hash: [u8; 16],
    expires_at: u64,
    status: Status,
    grant: Option<GrantLocation>,
    ticket: Ticket,
    /// Fields a newer module appended after the username and the audience, kept as they were
    /// and written back last (docs/upgrading.md).
    newer_fields: Vec<u8>,
}

/// What presenting a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// First presentation: the code is now spent.
    Fresh(Ticket),
    /// Presented before: the grant it produced, if it has one yet, must be revoked.
    Replayed(Option<GrantLocation>),
    /// Unknown or expired.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketError {
    /// The bucket this record hashes to is full.
    Full,
    Random,
    Store(StoreError),
}

impl From<StoreError> for TicketError {
    fn from(error: StoreError) -> Self {
        TicketError::Store(error)
    }
}

impl From<RandomUnavailable> for TicketError {
    fn from(_: RandomUnavailable) -> Self {
        TicketError::Random
    }
}

pub struct AuthorizationTable<'h> {
    codes: BucketTable<'h>,
    random: &'h dyn Randomness,
}

impl<'h> AuthorizationTable<'h> {
    /// A table holding about `capacity` codes and used login handles.
    pub fn new(shared: &'h dyn SharedStore, random: &'h dyn Randomness, capacity: u32) -> Self {
        AuthorizationTable {
            codes: BucketTable::new(shared, keys::AUTHORIZATION_CODES, code_bucket_count_for(capacity)),
            random,
        }
    }

    /// Every bucket's key.
    pub fn bucket_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.codes.keys()
    }

    /// Creates missing buckets (start-up only; see [`BucketTable::initialize`]).
    pub fn initialize(&self) -> Result<u32, StoreError> {
        self.codes.initialize()
    }

    /// Records that the login handle whose MAC is `tag` produced a sign-in, until the handle
    /// expires at `expires_at`. False when it already had: a handle signs in once.
    pub fn spend_login(&self, tag: &[u8], now: u64, expires_at: u64) -> Result<bool, TicketError> {
        let hash = hash_prefix(b"login-handle\0", tag);
        let empty = Ticket {
            client_id: String::new(),
            redirect_uri: String::new(),
            scope: String::new(),
            state: None,
            challenge: String::new(),
            username: String::new(),
            audience: Audience::default(),
            nonce: None,
            auth_time: None,
        };
        let used = Entry {
            hash,
            expires_at,
            status: Status::Spent,
            grant: None,
            ticket: empty,
            newer_fields: Vec::new(),
        };
        let spent = self.codes.update(bucket_of(&hash, &self.codes), now, |entries: &mut Vec<Entry>| {
            if entries.iter().any(|entry| entry.hash == hash) {
                return Ok::<_, TicketError>(false);
            }
            if entries.len() >= SLOTS_PER_BUCKET {
                return Err(TicketError::Full);
            }
            entries.push(used.clone());
            Ok(true)
        })?;
        spent.map(|updated| updated.value).ok_or(TicketError::Store(StoreError::Unavailable))
    }

    /// Stores a code until `expires_at`; returns its text.
    pub fn issue_code(&self, ticket: Ticket, now: u64, expires_at: u64) -> Result<String, TicketError> {
        self.insert(ticket, now, expires_at)
    }

    /// Presents a code: the first presentation spends it, later ones mark it replayed. Only a
    /// presentation whose request `is_issuers` accepts (the code's client, redirect URI and
    /// PKCE verifier) counts: any other finds it [`Redeemed::Unknown`] and changes nothing, so
    /// whoever merely saw a code can neither burn it nor, once redeemed, revoke its grant.
    pub fn redeem(
        &self,
        code: &str,
        now: u64,
        is_issuers: impl Fn(&Ticket) -> bool,
    ) -> Result<Redeemed, StoreError> {
        let hash = secret_hash(code);
        let found = self.codes.update(bucket_of(&hash, &self.codes), now, |entries: &mut Vec<Entry>| {
            let Some(entry) =
                entries.iter_mut().find(|entry| entry.hash == hash && is_issuers(&entry.ticket))
            else {
                return Ok::<_, StoreError>(Redeemed::Unknown);
            };
            Ok(match entry.status {
                Status::Fresh => {
                    entry.status = Status::Spent;
                    Redeemed::Fresh(entry.ticket.clone())
                }
                Status::Spent | Status::Replayed => {
                    entry.status = Status::Replayed;
                    Redeemed::Replayed(entry.grant)
                }
            })
        })?;
        Ok(found.map_or(Redeemed::Unknown, |updated| updated.value))
    }

    /// Remembers the grant a code produced. True when the code was replayed meanwhile: the
    /// caller must revoke that grant too.
    pub fn remember_grant(&self, code: &str, grant: GrantLocation, now: u64) -> Result<bool, StoreError> {
        let hash = secret_hash(code);
        let replayed =
            self.codes.update(bucket_of(&hash, &self.codes), now, |entries: &mut Vec<Entry>| {
                let Some(entry) = entries.iter_mut().find(|entry| entry.hash == hash) else {
                    return Ok::<_, StoreError>(false);
                };
                entry.grant = Some(grant);
                Ok(entry.status == Status::Replayed)
            })?;
        Ok(replayed.is_some_and(|updated| updated.value))
    }

    fn insert(&self, ticket: Ticket, now: u64, expires_at: u64) -> Result<String, TicketError> {
        let table = &self.codes;
        let mut secret = [0u8; SECRET_BYTES];
        self.random.fill(&mut secret)?;
        let text = URL_SAFE_NO_PAD.encode(secret);
        let hash = secret_hash(&text);
        let entry =
            Entry { hash, expires_at, status: Status::Fresh, grant: None, ticket, newer_fields: Vec::new() };
        let stored = table.update(bucket_of(&hash, table), now, |entries: &mut Vec<Entry>| {
            if entries.len() >= SLOTS_PER_BUCKET {
                return Ok::<_, TicketError>(false);
            }
            entries.push(entry.clone());
            Ok(true)
        })?;
        match stored {
            Some(updated) if updated.value => Ok(text),
            Some(_) => Err(TicketError::Full),
            None => Err(TicketError::Store(StoreError::Unavailable)),
        }
    }
}

fn secret_hash(text: &str) -> [u8; 16] {
    hash_prefix(b"authorization\0", text.as_bytes())
}

fn bucket_of(hash: &[u8; 16], table: &BucketTable) -> u32 {
    let [a, b, c, d, ..] = *hash;
    u32::from_be_bytes([a, b, c, d]) % table.count()
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes().get(..usize::from(len)).unwrap_or_default());
}

fn read_text(reader: &mut Reader) -> Option<String> {
    let len = reader.u16()?;
    String::from_utf8(reader.take(usize::from(len))?.to_vec()).ok()
}

impl Ticket {
    /// Writes the pending request (every field but `username`), in the order the code table's
    /// records and the login page's sealed handle both keep it.
    pub(super) fn encode_request(&self, out: &mut Vec<u8>) {
        match &self.state {
            Some(state) => {
                out.push(1);
                put_text(out, state);
            }
            None => out.push(0),
        }
        for text in [&self.client_id, &self.redirect_uri, &self.scope, &self.challenge] {
            put_text(out, text);
        }
    }

    /// Reads what [`Self::encode_request`] wrote; `username` is left empty.
    pub(super) fn decode_request(r: &mut Reader) -> Option<Ticket> {
        let state = match r.u8()? {
            0 => None,
            _ => Some(read_text(r)?),
        };
        Some(Ticket {
            client_id: read_text(r)?,
            redirect_uri: read_text(r)?,
            scope: read_text(r)?,
            state,
            challenge: read_text(r)?,
            username: String::new(),
            audience: Audience::default(),
            nonce: None,
            auth_time: None,
        })
    }

    /// Appends the OpenID Connect fields behind [`OPENID_MARK`] (after the audience), or
    /// nothing when there are none: a request without them keeps its bytes of before.
    pub(super) fn encode_openid(&self, out: &mut Vec<u8>) {
        if self.nonce.is_none() && self.auth_time.is_none() {
            return;
        }
        out.push(OPENID_MARK);
        out.extend_from_slice(&self.auth_time.unwrap_or(0).to_be_bytes());
        match &self.nonce {
            Some(nonce) => {
                out.push(1);
                put_text(out, nonce);
            }
            None => out.push(0),
        }
    }

    /// Reads what [`Self::encode_openid`] wrote, if the next byte is its mark.
    pub(super) fn decode_openid(&mut self, r: &mut Reader) -> Option<()> {
        if r.peek() != Some(OPENID_MARK) {
            return Some(());
        }
        r.u8()?;
        self.auth_time = Some(r.u64()?).filter(|&secs| secs != 0);
        self.nonce = match r.u8()? {
            0 => None,
            _ => Some(read_text(r)?),
        };
        Some(())
    }
}

impl Record for Entry {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let hash = r.array()?;
        let expires_at = r.u64()?;
        let status = match r.u8()? {
            0 => Status::Fresh,
            1 => Status::Spent,
            _ => Status::Replayed,
        };
        let grant = match r.u8()? {
            0 => None,
            _ => Some(GrantLocation { bucket: r.u32()?, tag: r.array::<8>()? }),
        };
        let mut ticket = Ticket::decode_request(&mut r)?;
        ticket.username = read_text(&mut r)?;
        ticket.audience = r.audience()?;
        ticket.decode_openid(&mut r)?;
        Some(Entry { hash, expires_at, status, grant, ticket, newer_fields: r.0.to_vec() })
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.push(match self.status {
            Status::Fresh => 0,
            Status::Spent => 1,
            Status::Replayed => 2,
        });
        match self.grant {
            Some(grant) => {
                out.push(1);
                out.extend_from_slice(&grant.bucket.to_be_bytes());
                out.extend_from_slice(&grant.tag);
            }
            None => out.push(0),
        }
        self.ticket.encode_request(out);
        put_text(out, &self.ticket.username);
        put_audience(out, &self.ticket.audience);
        self.ticket.encode_openid(out);
        out.extend_from_slice(&self.newer_fields);
    }

    fn prune(&mut self, now: u64) -> bool {
        self.expires_at > now
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::host::memory::MemoryStore;
    use crate::host::SystemRandomness;
    use crate::state::buckets::{decode_bucket, encode_bucket};

    /// A pending request of the demo's public client, as the login page would seal or store it.
    pub(crate) fn ticket() -> Ticket {
        Ticket {
            client_id: "demo-spa".to_owned(),
            redirect_uri: "http://127.0.0.1:8080/console/callback".to_owned(),
            scope: "read write".to_owned(),
            state: Some("xyz".to_owned()),
            challenge: crate::oauth::pkce::APPENDIX_B_CHALLENGE.to_owned(),
            audience: Audience::default(),
            username: String::new(),
            nonce: None,
            auth_time: None,
        }
    }

    #[test]
    fn a_login_handle_is_spent_once_until_it_expires() {
        let (shared, random) = (MemoryStore::default(), SystemRandomness);
        let table = AuthorizationTable::new(&shared, &random, 64);
        table.initialize().unwrap();
        let tag = [5u8; 32];
        assert_eq!(table.spend_login(&tag, 0, 1000), Ok(true));
        assert_eq!(table.spend_login(&tag, 1, 1000), Ok(false), "replayed");
        assert_eq!(table.spend_login(&[6u8; 32], 1, 1000), Ok(true), "another handle");
        assert_eq!(
            table.redeem(&URL_SAFE_NO_PAD.encode(tag), 2, any).unwrap(),
            Redeemed::Unknown,
            "not a code"
        );
        assert_eq!(table.spend_login(&tag, 1000, 2000), Ok(true), "forgotten once the handle expired");
    }

    /// A presentation with the code's own client, redirect URI and verifier.
    fn any(_: &Ticket) -> bool {
        true
    }

    #[test]
    fn a_code_is_spent_once_then_reports_its_grant_rfc6749_4_1_2() {
        let (shared, random) = (MemoryStore::default(), SystemRandomness);
        let table = AuthorizationTable::new(&shared, &random, 64);
        table.initialize().unwrap();
        let code = table.issue_code(ticket(), 0, 60_000).unwrap();
        assert_eq!(table.redeem(&code, 1, any).unwrap(), Redeemed::Fresh(ticket()));
        let grant = GrantLocation { bucket: 7, tag: [9; 8] };
        assert!(!table.remember_grant(&code, grant, 2).unwrap());
        assert_eq!(table.redeem(&code, 3, any).unwrap(), Redeemed::Replayed(Some(grant)));
        assert_eq!(table.redeem(&code, 60_000, any).unwrap(), Redeemed::Unknown, "expired");
        assert_eq!(table.redeem("made-up", 4, any).unwrap(), Redeemed::Unknown);
    }

    /// The code's audience (RFC 8707 §2.1) follows the username; a newer module's field
    /// follows the audience and survives spending the code.
    #[test]
    fn a_codes_audience_and_a_newer_field_after_it_survive_spending_the_code() {
        let (shared, random) = (MemoryStore::default(), SystemRandomness);
        let table = AuthorizationTable::new(&shared, &random, 1);
        table.initialize().unwrap();
        let audience = Audience::parse(["https://api.example/mcp"]).unwrap();
        let bound = Ticket { audience, ..ticket() };
        let code = table.issue_code(bound.clone(), 0, 60_000).unwrap();
        let key = table.bucket_keys().next().unwrap();
        let mut entries = decode_bucket::<Entry>(&shared.get(&key).unwrap().unwrap().0);
        entries[0].newer_fields = vec![0x7E, 0x01];
        shared.set(&key, &encode_bucket(&entries), 0).unwrap();

        assert_eq!(table.redeem(&code, 1, any).unwrap(), Redeemed::Fresh(bound.clone()));

        let entries = decode_bucket::<Entry>(&shared.get(&key).unwrap().unwrap().0);
        assert_eq!((entries[0].status, &entries[0].ticket), (Status::Spent, &bound));
        assert_eq!(entries[0].newer_fields, vec![0x7E, 0x01]);
    }

    /// An `openid` code carries `auth_time` and `nonce` behind their own mark after the
    /// audience; a newer module's field after them survives; a code without them is written
    /// byte for byte as before, so a module that predates them reads it unchanged.
    #[test]
    fn a_codes_openid_fields_round_trip_and_only_openid_codes_carry_them() {
        let (shared, random) = (MemoryStore::default(), SystemRandomness);
        let table = AuthorizationTable::new(&shared, &random, 1);
        table.initialize().unwrap();
        let audience = Audience::parse(["https://api.example/mcp"]).unwrap();
        let openid =
            Ticket { nonce: Some("n-0S6".to_owned()), auth_time: Some(1_700_000_000), audience, ..ticket() };
        let code = table.issue_code(openid.clone(), 0, 60_000).unwrap();
        let key = table.bucket_keys().next().unwrap();
        let mut entries = decode_bucket::<Entry>(&shared.get(&key).unwrap().unwrap().0);
        entries[0].newer_fields = vec![0x7E, 0x01];
        shared.set(&key, &encode_bucket(&entries), 0).unwrap();
        assert_eq!(table.redeem(&code, 1, any).unwrap(), Redeemed::Fresh(openid.clone()));
        let entries = decode_bucket::<Entry>(&shared.get(&key).unwrap().unwrap().0);
        assert_eq!(entries[0].newer_fields, vec![0x7E, 0x01]);

        let plain = Entry {
            hash: [1; 16],
            expires_at: 5,
            status: Status::Fresh,
            grant: None,
            ticket: ticket(),
            newer_fields: Vec::new(),
        };
        let mut bytes = Vec::new();
        plain.encode_into(&mut bytes);
        let mut before = Vec::new();
        before.extend_from_slice(&plain.hash);
        before.extend_from_slice(&plain.expires_at.to_be_bytes());
        before.extend_from_slice(&[0, 0]);
        plain.ticket.encode_request(&mut before);
        put_text(&mut before, &plain.ticket.username);
        assert_eq!(bytes, before, "the bytes a code had before OpenID Connect");
    }

    #[test]
    fn a_field_a_newer_module_appended_survives_spending_the_code() {
        let (shared, random) = (MemoryStore::default(), SystemRandomness);
        let table = AuthorizationTable::new(&shared, &random, 1);
        table.initialize().unwrap();
        let code = table.issue_code(ticket(), 0, 60_000).unwrap();
        let key = table.bucket_keys().next().unwrap();
        let mut entries = decode_bucket::<Entry>(&shared.get(&key).unwrap().unwrap().0);
        entries[0].newer_fields = vec![0x7E, 0x01];
        shared.set(&key, &encode_bucket(&entries), 0).unwrap();

        assert_eq!(table.redeem(&code, 1, any).unwrap(), Redeemed::Fresh(ticket()));

        let entries = decode_bucket::<Entry>(&shared.get(&key).unwrap().unwrap().0);
        assert_eq!(entries[0].status, Status::Spent);
        assert_eq!(entries[0].newer_fields, vec![0x7E, 0x01]);
    }

    #[test]
    fn a_presentation_that_is_not_the_issuers_neither_spends_nor_replays_a_code() {
        let (shared, random) = (MemoryStore::default(), SystemRandomness);
        let table = AuthorizationTable::new(&shared, &random, 64);
        table.initialize().unwrap();
        let code = table.issue_code(ticket(), 0, 60_000).unwrap();
        let stranger = |_: &Ticket| false;
        assert_eq!(table.redeem(&code, 1, stranger).unwrap(), Redeemed::Unknown);
        assert_eq!(table.redeem(&code, 2, any).unwrap(), Redeemed::Fresh(ticket()), "not burnt");
        assert_eq!(table.redeem(&code, 3, stranger).unwrap(), Redeemed::Unknown, "no replay");
        assert_eq!(table.redeem(&code, 4, any).unwrap(), Redeemed::Replayed(None));
    }

    #[test]
    fn a_replay_before_the_grant_is_stored_is_reported_to_the_issuer() {
        let (shared, random) = (MemoryStore::default(), SystemRandomness);
        let table = AuthorizationTable::new(&shared, &random, 64);
        table.initialize().unwrap();
        let code = table.issue_code(ticket(), 0, 60_000).unwrap();
        assert!(matches!(table.redeem(&code, 1, any).unwrap(), Redeemed::Fresh(_)));
        assert_eq!(table.redeem(&code, 2, any).unwrap(), Redeemed::Replayed(None));
        assert!(table.remember_grant(&code, GrantLocation { bucket: 1, tag: [1; 8] }, 3).unwrap());
    }

    #[test]
    fn the_tables_are_bounded() {
        let (shared, random) = (MemoryStore::default(), SystemRandomness);
        let table = AuthorizationTable::new(&shared, &random, 1);
        table.initialize().unwrap();
        for _ in 0..SLOTS_PER_BUCKET {
            table.issue_code(ticket(), 0, 10).unwrap();
        }
        assert_eq!(table.issue_code(ticket(), 0, 10), Err(TicketError::Full));
        assert!(table.issue_code(ticket(), 10, 20).is_ok(), "expired records make room");
    }
}
