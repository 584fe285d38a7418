use super::*;
use crate::host::memory::{EpochHost, MemoryStore, NoMetrics, RecordedMetrics};
use crate::host::SystemRandomness;
use crate::state::buckets::{decode_bucket, encode_bucket, records_of, EMPTY_BUCKET};

const NOW: u64 = 1_700_000_000;
/// Reuse grace for refresh tokens, in the same units as NOW.
const GRACE: u64 = 5;

fn owner(client: &str) -> GrantOwner {
    GrantOwner {
        client_id: client.to_owned(),
        client_fingerprint: 7,
        user: None,
        key_type: KeyType::Production,
    }
}

fn cc_grant(client: &str, expires_in: u64) -> NewGrant {
    NewGrant {
        owner: owner(client),
        scopes: vec![1, 2],
        access_expires_at: NOW + expires_in,
        refresh_expires_at: None,
        audience: Audience::default(),
    }
}

fn password_grant(client: &str) -> NewGrant {
    NewGrant {
        owner: GrantOwner { user: Some(("admin".to_owned(), 9)), ..owner(client) },
        scopes: vec![1, 2],
        access_expires_at: NOW + 3600,
        refresh_expires_at: Some(NOW + 86400),
        audience: Audience::default(),
    }
}

fn keep_scope(_: &GrantRecord) -> Result<RefreshPlan, RefreshRefusal> {
    Ok(RefreshPlan {
        access_scopes: None,
        access_expires_at: NOW + 3600,
        refresh_expires_at: NOW + 86400,
        audience: Audience::default(),
    })
}

struct Fixture {
    shared: MemoryStore,
    capacity: u32,
    bucket_count: u32,
}

impl Fixture {
    fn with_capacity(capacity: u32) -> Self {
        let fixture =
            Fixture { shared: MemoryStore::default(), capacity, bucket_count: bucket_count_for(capacity) };
        fixture.store().initialize().unwrap();
        fixture
    }
    fn store(&self) -> TokenStore<'_> {
        TokenStore::new(&self.shared, &SystemRandomness, &NoMetrics, &NoMetrics, self.capacity)
    }
}

#[test]
fn records_round_trip_through_the_bucket_encoding() {
    let record = GrantRecord {
        tag: [1, 2, 3, 4, 5, 6, 7, 8],
        owner: GrantOwner {
            client_id: "demo-app".into(),
            client_fingerprint: 0xdead_beef,
            user: Some(("ädmin".into(), 3)),
            key_type: KeyType::Production,
        },
        scopes: vec![10, 20, 30],
        refresh: Some(RefreshEntry {
            hash: [9; 16],
            issued_at: 1,
            expires_at: NEVER_EXPIRES,
            replaced: Some([3; 16]),
        }),
        access: vec![
            AccessEntry { hash: [4; 16], issued_at: 1, expires_at: 5, scopes: None },
            AccessEntry { hash: [5; 16], issued_at: 2, expires_at: 6, scopes: Some(vec![10]) },
            AccessEntry { hash: [6; 16], issued_at: 3, expires_at: 7, scopes: Some(vec![]) },
        ],
        audience: Audience::default(),
        newer_fields: Vec::new(),
    };
    let bucket = encode_bucket(&[record.clone(), record.clone()]);
    assert_eq!(decode_bucket::<GrantRecord>(&bucket), vec![record.clone(), record]);
}

#[test]
fn sandbox_grants_keep_their_key_type_with_every_refresh_shape() {
    let replaced = [None, Some([3; 16])];
    let refreshes = [None].into_iter().chain(
        replaced.map(|replaced| Some(RefreshEntry { hash: [9; 16], issued_at: 1, expires_at: 9, replaced })),
    );
    for refresh in refreshes {
        for key_type in [KeyType::Production, KeyType::Sandbox] {
            let record = GrantRecord {
                tag: [7; 8],
                owner: GrantOwner { key_type, ..owner("demo-app") },
                scopes: vec![1],
                refresh: refresh.clone(),
                access: vec![AccessEntry { hash: [4; 16], issued_at: 1, expires_at: 5, scopes: None }],
                audience: Audience::default(),
                newer_fields: Vec::new(),
            };
            let bucket = encode_bucket(std::slice::from_ref(&record));
            assert_eq!(decode_bucket::<GrantRecord>(&bucket), vec![record], "{key_type:?} {refresh:?}");
        }
    }
}

#[test]
fn records_stored_before_key_types_decode_as_production() {
    // The layout as it was: tag, fingerprints, "app", no user, a refresh entry (flag 1),
    // one scope, one access entry with the grant's scope.
    let mut bytes = vec![1u8; 8];
    bytes.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 0, 3, b'a', b'p', b'p', 0, 1]);
    bytes.extend_from_slice(&[9; 16]);
    bytes.extend_from_slice(&1u64.to_be_bytes());
    bytes.extend_from_slice(&9u64.to_be_bytes());
    bytes.extend_from_slice(&[1, 0, 0, 0, 42, 1]);
    bytes.extend_from_slice(&[4; 16]);
    bytes.extend_from_slice(&1u64.to_be_bytes());
    bytes.extend_from_slice(&5u64.to_be_bytes());
    bytes.push(0xFF);
    let record = GrantRecord::decode(&bytes).expect("the old layout decodes");
    assert_eq!(record.owner, owner("app"));
    assert_eq!(record.owner.key_type, KeyType::Production);
    assert_eq!(record.scopes, vec![42]);
    assert!(record.refresh.is_some_and(|refresh| refresh.replaced.is_none() && refresh.expires_at == 9));
    let mut reencoded = Vec::new();
    GrantRecord::decode(&bytes).expect("decodes").encode_into(&mut reencoded);
    assert_eq!(reencoded, bytes, "a production grant is written in the old layout");
}

#[test]
fn truncated_or_garbage_buckets_decode_without_panicking() {
    let record = GrantRecord {
        tag: [0; 8],
        owner: owner("a"),
        scopes: vec![1],
        refresh: None,
        access: vec![AccessEntry { hash: [1; 16], issued_at: 0, expires_at: 1, scopes: None }],
        audience: Audience::default(),
        newer_fields: Vec::new(),
    };
    let bucket = encode_bucket(&[record]);
    for cut in 0..bucket.len() {
        let _ = decode_bucket::<GrantRecord>(&bucket[..cut]);
    }
    for garbage in [&[][..], &[0xff; 40][..], &[1, 0xff, 0xff, 1][..], &[1, 0, 3, 0, 0, 0][..]] {
        assert!(decode_bucket::<GrantRecord>(garbage).is_empty());
    }
}

#[test]
fn initialize_creates_each_bucket_once_and_never_wipes_one() {
    let fixture = Fixture::with_capacity(64);
    assert_eq!(fixture.shared.key_count(), 8 + 2, "buckets, the count and the sweep cursor");
    let issued = fixture.store().issue(cc_grant("a", 60), NOW).unwrap();
    // A second VM starting (a worker, or a config reload) must not clear what is stored.
    assert_eq!(fixture.store().initialize().unwrap(), 0);
    assert!(fixture.store().find_access(&issued.access_token, NOW).is_ok());
    // A larger capacity adds buckets and keeps the old ones.
    let bigger = TokenStore::new(
        &fixture.shared,
        &SystemRandomness,
        &NoMetrics,
        &NoMetrics,
        16 * SLOTS_PER_BUCKET as u32,
    );
    assert_eq!(bigger.initialize().unwrap(), 8);
    assert!(bigger.find_access(&issued.access_token, NOW).is_ok());
}

#[test]
fn issued_access_tokens_are_found_until_they_expire() {
    let fixture = Fixture::with_capacity(100);
    let issued = fixture.store().issue(cc_grant("demo-app", 60), NOW).unwrap();
    assert!(issued.refresh_token.is_none());
    let grant = fixture.store().find_access(&issued.access_token, NOW + 59).unwrap();
    assert_eq!(grant.owner, owner("demo-app"));
    assert_eq!(grant.scopes, vec![1, 2]);
    assert_eq!(fixture.store().find_access(&issued.access_token, NOW + 60), Err(LookupError::Expired));
}

#[test]
fn unknown_and_foreign_tokens_are_unknown() {
    let fixture = Fixture::with_capacity(100);
    let issued = fixture.store().issue(cc_grant("a", 60), NOW).unwrap();
    let mut tampered = issued.access_token.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for token in ["", "garbage", tampered.as_str()] {
        assert_eq!(fixture.store().find_access(token, NOW), Err(LookupError::Unknown), "{token}");
    }
    // A refresh token is not an access token.
    let refresh = fixture.store().issue(password_grant("a"), NOW).unwrap().refresh_token.unwrap();
    assert_eq!(fixture.store().find_access(&refresh, NOW), Err(LookupError::Unknown));
}

#[test]
fn a_bucket_index_beyond_the_table_is_unknown_not_a_panic() {
    let small = Fixture::with_capacity(8);
    let big = Fixture::with_capacity(8 * 1000);
    // Issue in a big table until a token lands past the small table's single bucket.
    let token = (0..100)
        .map(|_| big.store().issue(cc_grant("a", 60), NOW).unwrap().access_token)
        .find(|token| matches!(ParsedToken::parse(token), Some(ParsedToken::Access { bucket, .. }) if bucket > 0))
        .unwrap();
    assert_eq!(small.store().find_access(&token, NOW), Err(LookupError::Unknown));
}

#[test]
fn a_full_store_refuses_new_grants_and_keeps_the_old_ones() {
    let fixture = Fixture::with_capacity(8);
    let tokens: Vec<String> =
        (0..8).map(|_| fixture.store().issue(cc_grant("a", 60), NOW).unwrap().access_token).collect();
    assert_eq!(fixture.store().issue(cc_grant("a", 60), NOW).err(), Some(IssueError::Full));
    for token in &tokens {
        assert!(fixture.store().find_access(token, NOW).is_ok());
    }
    // Once they expire, their slots are reclaimed by the next write.
    assert!(fixture.store().issue(cc_grant("a", 60), NOW + 61).is_ok());
}

#[test]
fn key_count_is_bounded_however_many_tokens_expire() {
    let fixture = Fixture::with_capacity(1000);
    let keys_before = fixture.shared.key_count();
    for round in 0..50u64 {
        for _ in 0..500 {
            fixture.store().issue(cc_grant("a", 10), NOW + round * 100).unwrap();
        }
    }
    assert_eq!(fixture.shared.key_count(), keys_before);
}

#[test]
fn refresh_rotates_and_the_old_token_is_dead() {
    let fixture = Fixture::with_capacity(100);
    let first = fixture.store().issue(password_grant("a"), NOW).unwrap();
    let old_refresh = first.refresh_token.unwrap();
    let second = fixture.store().refresh(&old_refresh, "a", NOW + 10, GRACE, keep_scope).unwrap();
    let new_refresh = second.refresh_token.clone().unwrap();
    assert_ne!(new_refresh, old_refresh);
    // Both access tokens work: rotation does not cut the previous access token short.
    assert!(fixture.store().find_access(&first.access_token, NOW + 10).is_ok());
    assert!(fixture.store().find_access(&second.access_token, NOW + 10).is_ok());
    // The new refresh token works once more.
    assert!(fixture.store().refresh(&new_refresh, "a", NOW + 20, GRACE, keep_scope).is_ok());
}

#[test]
fn reusing_a_rotated_refresh_token_revokes_the_whole_grant() {
    let fixture = Fixture::with_capacity(100);
    let first = fixture.store().issue(password_grant("a"), NOW).unwrap();
    let old_refresh = first.refresh_token.unwrap();
    let second = fixture.store().refresh(&old_refresh, "a", NOW, GRACE, keep_scope).unwrap();
    // Within the grace the replaced token is a lost race: refused, nothing revoked.
    let racing = fixture.store().refresh(&old_refresh, "a", NOW + GRACE - 1, GRACE, keep_scope);
    assert_eq!(racing.err(), Some(RefreshError::InvalidGrant));
    assert!(fixture.store().find_access(&second.access_token, NOW).is_ok());
    // Past it, the same token is a reuse: the whole grant goes.
    let later = NOW + GRACE;
    assert_eq!(
        fixture.store().refresh(&old_refresh, "a", later, GRACE, keep_scope).err(),
        Some(RefreshError::ReuseDetected)
    );
    assert_eq!(fixture.store().find_access(&first.access_token, later), Err(LookupError::Unknown));
    assert_eq!(fixture.store().find_access(&second.access_token, later), Err(LookupError::Unknown));
    let newest = second.refresh_token.unwrap();
    assert_eq!(
        fixture.store().refresh(&newest, "a", later, GRACE, keep_scope).err(),
        Some(RefreshError::InvalidGrant)
    );
}

#[test]
fn a_token_older_than_the_one_just_replaced_is_reuse_even_within_the_grace() {
    let fixture = Fixture::with_capacity(100);
    let oldest = fixture.store().issue(password_grant("a"), NOW).unwrap().refresh_token.unwrap();
    let middle =
        fixture.store().refresh(&oldest, "a", NOW, GRACE, keep_scope).unwrap().refresh_token.unwrap();
    fixture.store().refresh(&middle, "a", NOW, GRACE, keep_scope).unwrap();
    assert_eq!(
        fixture.store().refresh(&oldest, "a", NOW, GRACE, keep_scope).err(),
        Some(RefreshError::ReuseDetected)
    );
}

#[test]
fn another_clients_refresh_token_is_refused_and_left_working() {
    let fixture = Fixture::with_capacity(100);
    let refresh = fixture.store().issue(password_grant("a"), NOW).unwrap().refresh_token.unwrap();
    assert_eq!(
        fixture.store().refresh(&refresh, "b", NOW, GRACE, keep_scope).err(),
        Some(RefreshError::InvalidGrant)
    );
    assert!(fixture.store().refresh(&refresh, "a", NOW, GRACE, keep_scope).is_ok());
}

#[test]
fn expired_refresh_tokens_are_refused() {
    let fixture = Fixture::with_capacity(100);
    let refresh = fixture.store().issue(password_grant("a"), NOW).unwrap().refresh_token.unwrap();
    assert_eq!(
        fixture.store().refresh(&refresh, "a", NOW + 86400, GRACE, keep_scope).err(),
        Some(RefreshError::InvalidGrant)
    );
}

#[test]
fn a_refused_refresh_changes_nothing() {
    let fixture = Fixture::with_capacity(100);
    let refresh = fixture.store().issue(password_grant("a"), NOW).unwrap().refresh_token.unwrap();
    let refuse = |_: &GrantRecord| Err(RefreshRefusal::InvalidScope);
    assert_eq!(
        fixture.store().refresh(&refresh, "a", NOW, GRACE, refuse).err(),
        Some(RefreshError::Refused(RefreshRefusal::InvalidScope))
    );
    assert!(fixture.store().refresh(&refresh, "a", NOW, GRACE, keep_scope).is_ok());
}

#[test]
fn a_grant_keeps_at_most_four_access_tokens() {
    let fixture = Fixture::with_capacity(100);
    let first = fixture.store().issue(password_grant("a"), NOW).unwrap();
    let mut refresh = first.refresh_token.unwrap();
    let mut access = vec![first.access_token];
    for i in 1..=MAX_ACCESS_TOKENS_PER_GRANT as u64 {
        let plan = move |_: &GrantRecord| {
            Ok(RefreshPlan {
                access_scopes: Some(vec![1]),
                access_expires_at: NOW + 3600 + i,
                refresh_expires_at: NOW + 86400,
                audience: Audience::default(),
            })
        };
        let next = fixture.store().refresh(&refresh, "a", NOW, GRACE, plan).unwrap();
        refresh = next.refresh_token.unwrap();
        access.push(next.access_token);
    }
    // The one expiring first (the original) made room; the narrowed ones keep their scope.
    assert_eq!(fixture.store().find_access(&access[0], NOW), Err(LookupError::Unknown));
    for token in &access[1..] {
        assert_eq!(fixture.store().find_access(token, NOW).unwrap().scopes, vec![1]);
    }
}

/// Interleaves two refreshes of the same token the way two Envoy workers can: both read the
/// bucket before either writes.
struct RacingStore<'a> {
    inner: &'a MemoryStore,
    /// A write to run right after the first read, as if another worker got there first.
    intrude: std::cell::RefCell<Option<Box<dyn FnOnce() + 'a>>>,
}

impl SharedStore for RacingStore<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let value = self.inner.get(key);
        if let Some(intrude) = self.intrude.borrow_mut().take() {
            intrude();
        }
        value
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        self.inner.set(key, value, cas)
    }
}

#[test]
fn the_loser_of_a_concurrent_refresh_gets_invalid_grant_and_the_winner_keeps_its_tokens() {
    let fixture = Fixture::with_capacity(100);
    let refresh = fixture.store().issue(password_grant("a"), NOW).unwrap().refresh_token.unwrap();
    let winner = std::rc::Rc::new(std::cell::RefCell::new(None));
    let racing = RacingStore { inner: &fixture.shared, intrude: Default::default() };
    {
        let (winner, refresh, shared, buckets) =
            (winner.clone(), refresh.clone(), &fixture.shared, fixture.capacity);
        *racing.intrude.borrow_mut() = Some(Box::new(move || {
            let store = TokenStore::new(shared, &SystemRandomness, &NoMetrics, &NoMetrics, buckets);
            *winner.borrow_mut() = Some(store.refresh(&refresh, "a", NOW, GRACE, keep_scope).unwrap());
        }));
    }
    let loser = TokenStore::new(&racing, &SystemRandomness, &NoMetrics, &NoMetrics, fixture.capacity);
    assert_eq!(loser.refresh(&refresh, "a", NOW, GRACE, keep_scope).err(), Some(RefreshError::InvalidGrant));
    let winner = winner.borrow_mut().take().unwrap();
    assert!(fixture.store().find_access(&winner.access_token, NOW).is_ok());
    assert!(fixture.store().refresh(&winner.refresh_token.unwrap(), "a", NOW, GRACE, keep_scope).is_ok());
}

/// RFC 9700 §4.14.2: without a grace (the default), the loser of a concurrent refresh presents the
/// token the winner just replaced, which is reuse: the grant and the winner's tokens go.
#[test]
fn without_a_grace_the_loser_of_a_concurrent_refresh_revokes_the_grant() {
    let fixture = Fixture::with_capacity(100);
    let refresh = fixture.store().issue(password_grant("a"), NOW).unwrap().refresh_token.unwrap();
    let winner = std::rc::Rc::new(std::cell::RefCell::new(None));
    let racing = RacingStore { inner: &fixture.shared, intrude: Default::default() };
    {
        let (winner, refresh, shared, buckets) =
            (winner.clone(), refresh.clone(), &fixture.shared, fixture.capacity);
        *racing.intrude.borrow_mut() = Some(Box::new(move || {
            let store = TokenStore::new(shared, &SystemRandomness, &NoMetrics, &NoMetrics, buckets);
            *winner.borrow_mut() = Some(store.refresh(&refresh, "a", NOW, 0, keep_scope).unwrap());
        }));
    }
    let loser = TokenStore::new(&racing, &SystemRandomness, &NoMetrics, &NoMetrics, fixture.capacity);
    assert_eq!(loser.refresh(&refresh, "a", NOW, 0, keep_scope).err(), Some(RefreshError::ReuseDetected));
    let winner = winner.borrow_mut().take().unwrap();
    assert_eq!(fixture.store().find_access(&winner.access_token, NOW), Err(LookupError::Unknown));
    assert_eq!(
        fixture.store().refresh(&winner.refresh_token.unwrap(), "a", NOW, 0, keep_scope).err(),
        Some(RefreshError::InvalidGrant)
    );
}

#[test]
fn concurrent_issues_into_one_bucket_all_land() {
    // Capacity 8 is one bucket: every issue below races for the same key.
    let fixture = Fixture::with_capacity(8);
    let racing = RacingStore { inner: &fixture.shared, intrude: Default::default() };
    let intruder_token = std::rc::Rc::new(std::cell::RefCell::new(None));
    {
        let (slot, shared, buckets) = (intruder_token.clone(), &fixture.shared, fixture.capacity);
        *racing.intrude.borrow_mut() = Some(Box::new(move || {
            let store = TokenStore::new(shared, &SystemRandomness, &NoMetrics, &NoMetrics, buckets);
            *slot.borrow_mut() = Some(store.issue(cc_grant("b", 60), NOW).unwrap().access_token);
        }));
    }
    let mine = TokenStore::new(&racing, &SystemRandomness, &NoMetrics, &NoMetrics, fixture.capacity)
        .issue(cc_grant("a", 60), NOW)
        .unwrap();
    let theirs = intruder_token.borrow_mut().take().unwrap();
    assert_eq!(fixture.store().find_access(&mine.access_token, NOW).unwrap().owner.client_id, "a");
    assert_eq!(fixture.store().find_access(&theirs, NOW).unwrap().owner.client_id, "b");
}

#[test]
fn stored_bytes_per_grant_stay_small() {
    let fixture = Fixture::with_capacity(8000);
    let before = fixture.shared.stored_bytes();
    for _ in 0..4000 {
        fixture.store().issue(cc_grant("demo-app", 3600), NOW).unwrap();
    }
    let per_grant = (fixture.shared.stored_bytes() - before) / 4000;
    // A client-credentials grant: 8 tag + 8 fingerprints + 9 client + 1 user + 1 refresh flag
    // + 9 scopes + 1 count + 33 access entry + 2 length = 72 bytes.
    assert_eq!(per_grant, 72, "bytes per stored grant");
}

#[test]
fn revoking_an_access_token_leaves_the_rest_of_the_grant() {
    let fixture = Fixture::with_capacity(100);
    let first = fixture.store().issue(password_grant("a"), NOW).unwrap();
    let refresh = first.refresh_token.unwrap();
    let second = fixture.store().refresh(&refresh, "a", NOW, GRACE, keep_scope).unwrap();
    assert_eq!(fixture.store().revoke(&first.access_token, "b", NOW, GRACE), Ok(Revocation::NotOwner));
    assert!(fixture.store().find_access(&first.access_token, NOW).is_ok());
    assert_eq!(fixture.store().revoke(&first.access_token, "a", NOW, GRACE), Ok(Revocation::Revoked));
    assert_eq!(fixture.store().find_access(&first.access_token, NOW), Err(LookupError::Unknown));
    assert!(fixture.store().find_access(&second.access_token, NOW).is_ok());
    assert_eq!(fixture.store().revoke(&first.access_token, "a", NOW, GRACE), Ok(Revocation::Unknown));
}

#[test]
fn revoking_a_refresh_token_ends_the_whole_grant() {
    let fixture = Fixture::with_capacity(100);
    let issued = fixture.store().issue(password_grant("a"), NOW).unwrap();
    let refresh = issued.refresh_token.unwrap();
    assert_eq!(fixture.store().revoke(&refresh, "b", NOW, GRACE), Ok(Revocation::NotOwner));
    assert_eq!(fixture.store().revoke(&refresh, "a", NOW, GRACE), Ok(Revocation::Revoked));
    assert_eq!(fixture.store().find_access(&issued.access_token, NOW), Err(LookupError::Unknown));
    assert_eq!(
        fixture.store().refresh(&refresh, "a", NOW, GRACE, keep_scope).err(),
        Some(RefreshError::InvalidGrant)
    );
    assert_eq!(fixture.store().revoke("garbage", "a", NOW, GRACE), Ok(Revocation::Unknown));
}

/// The grant id in a refresh token only says which grant to look at; revoking
/// needs the current refresh token (or, within the grace, the one it just replaced).
#[test]
fn a_rotated_or_forged_refresh_token_revokes_nothing() {
    fn forge(token: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let mut raw = URL_SAFE_NO_PAD.decode(token).unwrap();
        *raw.last_mut().unwrap() ^= 1;
        URL_SAFE_NO_PAD.encode(raw)
    }
    struct Case {
        name: &'static str,
        /// Which token to revoke, from (the first refresh token, the current one).
        token: fn(&str, &str) -> String,
        /// How long after the rotation.
        after: u64,
        grace: u64,
        revoked: bool,
    }
    let table = [
        Case {
            name: "the current token",
            token: |_, current| current.to_owned(),
            after: 0,
            grace: 0,
            revoked: true,
        },
        Case {
            name: "the rotated token, no grace",
            token: |first, _| first.to_owned(),
            after: 0,
            grace: 0,
            revoked: false,
        },
        Case {
            name: "the rotated token within the grace",
            token: |first, _| first.to_owned(),
            after: GRACE - 1,
            grace: GRACE,
            revoked: true,
        },
        Case {
            name: "the rotated token after the grace",
            token: |first, _| first.to_owned(),
            after: GRACE,
            grace: GRACE,
            revoked: false,
        },
        Case {
            name: "a forged token with the grant id",
            token: |_, current| forge(current),
            after: 0,
            grace: GRACE,
            revoked: false,
        },
    ];
    for Case { name, token, after, grace, revoked } in table {
        let fixture = Fixture::with_capacity(100);
        let first = fixture.store().issue(password_grant("a"), NOW).unwrap().refresh_token.unwrap();
        let second = fixture.store().refresh(&first, "a", NOW, grace, keep_scope).unwrap();
        let current = second.refresh_token.unwrap();
        let outcome = fixture.store().revoke(&token(&first, &current), "a", NOW + after, grace);
        let want = if revoked { Revocation::Revoked } else { Revocation::Unknown };
        assert_eq!(outcome, Ok(want), "{name}");
        let alive = fixture.store().find_access(&second.access_token, NOW + after).is_ok();
        assert_eq!(alive, !revoked, "{name}");
    }
}

#[test]
fn describe_reports_active_tokens_only() {
    let fixture = Fixture::with_capacity(100);
    let issued = fixture.store().issue(password_grant("a"), NOW).unwrap();
    let access = fixture.store().describe(&issued.access_token, NOW + 1).unwrap().unwrap();
    assert_eq!((access.kind, access.issued_at, access.expires_at), (TokenKind::Access, NOW, NOW + 3600));
    assert_eq!(access.owner.user, Some(("admin".to_owned(), 9)));
    let refresh = fixture.store().describe(issued.refresh_token.as_deref().unwrap(), NOW).unwrap().unwrap();
    assert_eq!((refresh.kind, refresh.expires_at), (TokenKind::Refresh, NOW + 86400));
    assert_eq!(fixture.store().describe(&issued.access_token, NOW + 3600).unwrap(), None);
    assert_eq!(fixture.store().describe("garbage", NOW).unwrap(), None);
}

#[test]
fn sweeping_reclaims_expired_grants_and_the_gauge_follows() {
    let metrics = RecordedMetrics::default();
    let fixture = Fixture::with_capacity(800);
    let store = TokenStore::new(&fixture.shared, &SystemRandomness, &metrics, &metrics, fixture.capacity);
    let empty_size = fixture.shared.stored_bytes();
    for _ in 0..300 {
        store.issue(cc_grant("a", 10), NOW).unwrap();
    }
    let live = store.issue(cc_grant("a", 1000), NOW).unwrap();
    assert_eq!(metrics.get(Metric::StoreGrants), 301);
    // Two half sweeps cover the table once.
    let next = store.sweep(0, fixture.bucket_count / 2, NOW + 11, &mut |_| true).unwrap();
    assert_eq!(store.sweep(next, fixture.bucket_count - next, NOW + 11, &mut |_| true).unwrap(), 0);
    assert_eq!(metrics.get(Metric::StoreGrants), 1);
    // 72 bytes for a grant of "demo-app", 65 for one of "a".
    assert_eq!(fixture.shared.stored_bytes() - empty_size, 65, "only the live grant is left");
    assert!(store.find_access(&live.access_token, NOW + 11).is_ok());
}

fn epoch_host() -> EpochHost {
    let host = EpochHost { token_epoch: 40.into(), ..EpochHost::default() };
    TokenStore::new(&host, &SystemRandomness, &host, &host, 64).initialize().unwrap();
    host
}

#[test]
fn a_validated_token_is_found_again_without_reading_the_store() {
    let host = epoch_host();
    let store = TokenStore::new(&host, &SystemRandomness, &host, &host, 64);
    let issued = store.issue(cc_grant("demo-app", 60), NOW).unwrap();
    let reads = host.reads.get();
    let first = store.find_access(&issued.access_token, NOW + 1).unwrap();
    assert_eq!(host.reads.get(), reads + 1);
    assert_eq!(store.find_access(&issued.access_token, NOW + 2).unwrap(), first);
    assert_eq!(host.reads.get(), reads + 1, "the second lookup came from this worker's memory");
    assert_eq!(host.token_epoch.get(), 40, "issuing and looking up tokens leave the epoch alone");
    assert_eq!(store.find_access(&issued.access_token, NOW + 60), Err(LookupError::Expired));
    assert_eq!(host.reads.get(), reads + 2, "an expired memory is not trusted: the store says why");
}

#[test]
fn every_way_a_token_ends_moves_the_epoch_and_the_memory_is_not_trusted() {
    let host = epoch_host();
    let store = TokenStore::new(&host, &SystemRandomness, &host, &host, 64);
    // An access token revoked.
    let access = store.issue(cc_grant("demo-app", 600), NOW).unwrap().access_token;
    store.find_access(&access, NOW).unwrap();
    assert_eq!(store.revoke(&access, "demo-app", NOW, GRACE), Ok(Revocation::Revoked));
    assert_eq!(host.token_epoch.get(), 41);
    assert_eq!(store.find_access(&access, NOW), Err(LookupError::Unknown));
    // A grant revoked by where it lives (a replayed authorization code).
    let issued = store.issue(password_grant("demo-app"), NOW).unwrap();
    store.find_access(&issued.access_token, NOW).unwrap();
    assert!(store.revoke_grant(issued.location, NOW).unwrap());
    assert_eq!(host.token_epoch.get(), 42);
    assert_eq!(store.find_access(&issued.access_token, NOW), Err(LookupError::Unknown));
    // A refresh token rotated, then the old one reused: the grant ends.
    let issued = store.issue(password_grant("demo-app"), NOW).unwrap();
    let old_refresh = issued.refresh_token.unwrap();
    let rotated = store.refresh(&old_refresh, "demo-app", NOW, GRACE, keep_scope).unwrap();
    assert_eq!(host.token_epoch.get(), 43);
    store.find_access(&rotated.access_token, NOW + GRACE).unwrap();
    let reused = store.refresh(&old_refresh, "demo-app", NOW + GRACE, GRACE, keep_scope);
    assert_eq!(reused.err(), Some(RefreshError::ReuseDetected));
    assert_eq!(host.token_epoch.get(), 44);
    assert_eq!(store.find_access(&rotated.access_token, NOW + GRACE), Err(LookupError::Unknown));
    // Nothing revoked: the epoch stays.
    assert_eq!(store.revoke(&access, "demo-app", NOW, GRACE), Ok(Revocation::Unknown));
    assert_eq!(host.token_epoch.get(), 44);
}

/// The bucket holding the fixture's only grant.
fn bucket_with_records(fixture: &Fixture) -> (String, Vec<u8>) {
    (0..fixture.bucket_count)
        .map(|index| keys::GRANTS.bucket_key(index))
        .filter_map(|key| Some((key.clone(), fixture.shared.get(&key).unwrap()?.0)))
        .find(|(_, bytes)| records_of(bytes).next().is_some())
        .expect("a bucket holds the grant")
}

#[test]
fn a_newer_modules_fields_and_record_kinds_survive_a_refresh_by_this_build() {
    let fixture = Fixture::with_capacity(100);
    let issued = fixture.store().issue(password_grant("a"), NOW).unwrap();
    let (key, bucket) = bucket_with_records(&fixture);
    // What a newer module would write: the same grant with a field appended after the access
    // entries, and a record of a kind this build does not know (refresh flag 3).
    let mut grant = decode_bucket::<GrantRecord>(&bucket).remove(0);
    grant.newer_fields = vec![0x11, 0x22, 0x33];
    let mut unknown_kind = Vec::new();
    GrantRecord { tag: [9; 8], newer_fields: Vec::new(), ..grant.clone() }.encode_into(&mut unknown_kind);
    unknown_kind[8 + 4 + 4 + 1 + 1 + 1 + 5] = 3;
    let mut newer = encode_bucket(std::slice::from_ref(&grant));
    newer.extend_from_slice(&(unknown_kind.len() as u16).to_be_bytes());
    newer.extend_from_slice(&unknown_kind);
    fixture.shared.set(&key, &newer, 0).unwrap();
    assert!(fixture.store().find_access(&issued.access_token, NOW + 1).is_ok(), "the hot path reads it");

    let refreshed = fixture
        .store()
        .refresh(issued.refresh_token.as_ref().unwrap(), "a", NOW + 10, GRACE, keep_scope)
        .unwrap();

    let (_, rewritten) = bucket_with_records(&fixture);
    let grants = decode_bucket::<GrantRecord>(&rewritten);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].newer_fields, vec![0x11, 0x22, 0x33], "the appended field is kept");
    assert_eq!(grants[0].access.len(), 2, "the refresh did rewrite the record");
    assert_eq!(records_of(&rewritten).filter(|raw| *raw == unknown_kind.as_slice()).count(), 1);
    assert!(fixture.store().find_access(&refreshed.access_token, NOW + 11).is_ok());
}

/// RFC 8707 audience, appended after the access entries behind its mark (docs/upgrading.md):
/// a refresh by this build keeps it and a newer module's field after it, an unbound grant is
/// written in the layout older modules wrote, and the hot path reads the audience.
#[test]
fn the_audience_follows_the_access_entries_and_a_newer_field_follows_it() {
    let fixture = Fixture::with_capacity(100);
    let audience = Audience::parse(["https://api.example/mcp", "https://api.example/orders"]).unwrap();
    let grant = NewGrant { audience: audience.clone(), ..password_grant("a") };
    let issued = fixture.store().issue(grant, NOW).unwrap();
    assert_eq!(fixture.store().find_access(&issued.access_token, NOW).unwrap().audience, audience);
    let (key, bucket) = bucket_with_records(&fixture);
    let mut record = decode_bucket::<GrantRecord>(&bucket).remove(0);
    assert_eq!(record.audience(), audience.uris());

    // What an older module reads: the fields up to the access entries, the rest as bytes.
    let unbound = GrantRecord { audience: Audience::default(), ..record.clone() };
    let (mut bound_bytes, mut unbound_bytes) = (Vec::new(), Vec::new());
    record.encode_into(&mut bound_bytes);
    unbound.encode_into(&mut unbound_bytes);
    assert!(bound_bytes.starts_with(&unbound_bytes), "the audience is appended, nothing before it moves");
    assert_eq!(bound_bytes.get(unbound_bytes.len()), Some(&crate::state::buckets::AUDIENCE_MARK));

    record.newer_fields = vec![0xF0, 0x01, 0x02];
    fixture.shared.set(&key, &encode_bucket(std::slice::from_ref(&record)), 0).unwrap();
    let narrow = |_: &GrantRecord| {
        Ok(RefreshPlan {
            access_scopes: None,
            access_expires_at: NOW + 3600,
            refresh_expires_at: NOW + 86400,
            audience: Audience::parse(["https://api.example/mcp"]).unwrap(),
        })
    };
    let refreshed =
        fixture.store().refresh(issued.refresh_token.as_ref().unwrap(), "a", NOW + 10, GRACE, narrow);
    let refreshed = refreshed.unwrap();
    let (_, rewritten) = bucket_with_records(&fixture);
    let rewritten = decode_bucket::<GrantRecord>(&rewritten).remove(0);
    assert_eq!(rewritten.audience(), ["https://api.example/mcp"], "the refresh narrowed it");
    assert_eq!(rewritten.newer_fields, vec![0xF0, 0x01, 0x02], "the newer field is kept after it");
    let found = fixture.store().find_access(&refreshed.access_token, NOW + 11).unwrap();
    assert_eq!(found.audience.uris(), ["https://api.example/mcp"]);
    let described = fixture.store().describe(&refreshed.access_token, NOW + 11).unwrap().unwrap();
    assert_eq!(described.audience.uris(), ["https://api.example/mcp"]);
}

/// A newer module's field right after the access entries (a mark other than the audience's)
/// is no audience: the grant reads as unbound and the field is kept.
#[test]
fn a_field_after_the_access_entries_with_another_mark_is_kept_not_read_as_an_audience() {
    let fixture = Fixture::with_capacity(100);
    let issued = fixture.store().issue(password_grant("a"), NOW).unwrap();
    let (key, bucket) = bucket_with_records(&fixture);
    let mut record = decode_bucket::<GrantRecord>(&bucket).remove(0);
    record.newer_fields = b"\xf0newer-field".to_vec();
    fixture.shared.set(&key, &encode_bucket(std::slice::from_ref(&record)), 0).unwrap();
    let found = fixture.store().find_access(&issued.access_token, NOW + 1).unwrap();
    assert!(found.audience.is_unbound());
    let decoded = decode_bucket::<GrantRecord>(&fixture.shared.get(&key).unwrap().unwrap().0).remove(0);
    assert_eq!(decoded.newer_fields, b"\xf0newer-field".to_vec());
}

/// The fleet watch moves the token epoch only for a change that may end or alter a token a
/// worker remembers (`fleet::watch`): one that only issues tokens keeps every memory.
#[test]
fn only_a_change_that_issues_tokens_keeps_every_remembered_token() {
    let access =
        |byte: u8, expires_at: u64| AccessEntry { hash: [byte; 16], issued_at: 1, expires_at, scopes: None };
    let grant = |tag: u8, access: Vec<AccessEntry>| GrantRecord {
        tag: [tag; 8],
        owner: owner("demo-app"),
        scopes: vec![1, 2],
        refresh: Some(RefreshEntry { hash: [tag; 16], issued_at: 1, expires_at: NOW, replaced: None }),
        access,
        audience: Default::default(),
        newer_fields: Vec::new(),
    };
    let before = encode_bucket(&[grant(1, vec![access(10, NOW)]), grant(2, vec![access(20, NOW)])]);
    let rotated = GrantRecord {
        refresh: Some(RefreshEntry { hash: [9; 16], issued_at: 2, expires_at: NOW, replaced: Some([1; 16]) }),
        ..grant(1, vec![access(10, NOW), access(11, NOW)])
    };
    let rescoped = GrantRecord { scopes: vec![1], ..grant(1, vec![access(10, NOW)]) };
    let audience = crate::oauth::resource_indicator::Audience::parse(["https://api.example/mcp"]).unwrap();
    let bound = GrantRecord { audience, ..grant(1, vec![access(10, NOW), access(11, NOW)]) };
    let unreadable = {
        let mut bucket = before.clone();
        bucket.extend_from_slice(&[0, 3, 0xEE, 0xEE, 0xEE]);
        bucket
    };
    struct Case {
        name: &'static str,
        before: Vec<u8>,
        after: Vec<u8>,
        only_adds: bool,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "a new grant", before: before.clone(),
               after: encode_bucket(&[grant(1, vec![access(10, NOW)]), grant(2, vec![access(20, NOW)]), grant(3, vec![access(30, NOW)])]), only_adds: true },
        Case { name: "the same records in another order", before: before.clone(),
               after: encode_bucket(&[grant(2, vec![access(20, NOW)]), grant(1, vec![access(10, NOW)])]), only_adds: true },
        Case { name: "an access token added to a grant", before: before.clone(),
               after: encode_bucket(&[grant(1, vec![access(10, NOW), access(11, NOW)]), grant(2, vec![access(20, NOW)])]), only_adds: true },
        Case { name: "into an empty bucket", before: EMPTY_BUCKET.to_vec(), after: before.clone(), only_adds: true },
        Case { name: "an unchanged bucket", before: before.clone(), after: before.clone(), only_adds: true },
        Case { name: "a grant revoked", before: before.clone(),
               after: encode_bucket(&[grant(2, vec![access(20, NOW)])]), only_adds: false },
        Case { name: "an access token revoked", before: before.clone(),
               after: encode_bucket(&[grant(1, vec![]), grant(2, vec![access(20, NOW)])]), only_adds: false },
        Case { name: "a refresh rotation", before: before.clone(),
               after: encode_bucket(&[rotated, grant(2, vec![access(20, NOW)])]), only_adds: false },
        Case { name: "an expiry changed", before: before.clone(),
               after: encode_bucket(&[grant(1, vec![access(10, NOW + 1)]), grant(2, vec![access(20, NOW)])]), only_adds: false },
        Case { name: "a grant's scope changed", before: before.clone(),
               after: encode_bucket(&[rescoped, grant(2, vec![access(20, NOW)])]), only_adds: false },
        Case { name: "a grant's audience changed (RFC 8707)", before: before.clone(),
               after: encode_bucket(&[bound, grant(2, vec![access(20, NOW)])]), only_adds: false },
        Case { name: "the bucket deleted", before: before.clone(), after: EMPTY_BUCKET.to_vec(), only_adds: false },
        Case { name: "a record this build cannot read dropped", before: unreadable.clone(), after: before.clone(), only_adds: false },
        Case { name: "a record this build cannot read kept", before: unreadable.clone(), after: unreadable.clone(), only_adds: true },
        Case { name: "a bucket in a format this build cannot read", before: vec![0x7F, 0, 0], after: before.clone(), only_adds: false },
    ];
    for Case { name, before, after, only_adds } in table {
        assert_eq!(only_adds_tokens(&before, &after), only_adds, "{name}");
    }
}
