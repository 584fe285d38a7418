//! What each fuzz target checks, in one place: the cargo-fuzz targets (`fuzz/fuzz_targets/`)
//! call these functions with libFuzzer's input, and `tests/fuzz_corpus.rs` replays every file
//! of `fuzz/corpus/<target>/` through the same function on stable `cargo test`.
//!
//! The fuzz crate builds this file as its library (`checks`); the main crate's test includes it
//! with `#[path]`. It uses only tokengate's public API, so the production crate carries
//! nothing for fuzzing. A check panics (an assertion) when an invariant breaks; any other panic
//! it reaches is a bug in the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::Cell;
use std::fmt::Debug;

use tokengate::browser::challenge::parse_challenges;
use tokengate::config::{Config, ConfigError};
use tokengate::gateway::{
    ApiRequest, EndpointRequest, Gateway, Host, Outcome, Response, CLIENT_ID_HEADER, SCOPE_HEADER,
    USERNAME_HEADER,
};
use tokengate::host::memory::{ManualClock, MemoryStore, NoMetrics};
use tokengate::host::{NoConnection, RandomUnavailable, Randomness, SharedStore};
use tokengate::oauth::credentials::{
    decode_basic_credentials, encode_basic_credentials, parse_basic_authorization,
};
use tokengate::oauth::form::{decode_component, query_parameter_names, FormParams};
use tokengate::oauth::grant_type::GrantType;
use tokengate::oauth::redirect_uri::ApplicationType;
use tokengate::oauth::resource_indicator::Audience;
use tokengate::oauth::scope::{is_scope_token, ScopeSet};
use tokengate::state::buckets::{decode_bucket, encode_bucket, records_of, Record};
use tokengate::state::credential_changes::{CredentialChanges, CredentialKind};
use tokengate::state::grants::{
    AccessEntry, GrantOwner, GrantRecord, KeyType, NewGrant, RefreshEntry, RefreshPlan, TokenStore,
};
use tokengate::state::lockout::{FailureLimiter, Listing, LockoutPolicy, Principal};
use tokengate::state::login_handle::KeyMemory;
use tokengate::state::registry::{AuthMethod, ClientRecord, ClientRegistry, Registration};
use tokengate::state::token::{grant_tag, mint_access_token, mint_refresh_token, ParsedToken};

/// A target's check: panics when an invariant breaks.
pub type Check = fn(&[u8]);

/// The targets, by the name of their corpus folder and fuzz target.
pub const TARGETS: &[(&str, Check)] = &[
    ("form", form),
    ("basic", basic),
    ("token", token),
    ("scope", scope),
    ("challenge", challenge),
    ("config", config),
    ("records", records),
    ("gateway", gateway),
];

/// Deterministic randomness, so a crashing input crashes again (splitmix64 of a counter).
pub struct CountingRandom(Cell<u64>);

impl CountingRandom {
    pub fn new(seed: u64) -> Self {
        CountingRandom(Cell::new(seed))
    }
}

impl Randomness for CountingRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomUnavailable> {
        for chunk in buf.chunks_mut(8) {
            let state = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            self.0.set(state);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Parsers

/// `FormParams::parse` agrees with decoding each `name=value` pair on its own.
pub fn form(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = query_parameter_names(&text).count();
    let Ok(params) = FormParams::parse(data) else { return };
    for pair in data.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        let name = decode_component(name).expect("a name the whole parse accepted");
        let value = decode_component(value).expect("a value the whole parse accepted");
        assert!(params.was_sent(&name), "{name:?} was parsed but not kept");
        assert_eq!(params.get(&name), Some(value.as_str()).filter(|v| !v.is_empty()));
    }
}

/// Accepted Basic credentials are non-empty, free of control characters, and survive
/// re-encoding.
pub fn basic(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_basic_authorization(&text);
    let Ok(credentials) = decode_basic_credentials(&text) else { return };
    for half in [&credentials.consumer_key, &credentials.consumer_secret] {
        assert!(!half.is_empty() && !half.chars().any(char::is_control), "{half:?}");
    }
    let encoded = encode_basic_credentials(&credentials.consumer_key, &credentials.consumer_secret);
    let again = decode_basic_credentials(&encoded).expect("re-encoded credentials decode");
    assert_eq!(again.consumer_key, credentials.consumer_key);
    assert_eq!(again.consumer_secret, credentials.consumer_secret);
    let header = parse_basic_authorization(&format!("Basic {encoded}")).expect("as a header");
    assert_eq!(header.consumer_key, credentials.consumer_key);
}

/// Parsing never panics, only the two token shapes parse, and every minted token parses back.
pub fn token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match ParsedToken::parse(&text) {
        Some(ParsedToken::Access { .. }) => assert_eq!(text.len(), 39, "{text:?}"),
        Some(ParsedToken::Refresh { .. }) => assert_eq!(text.len(), 50, "{text:?}"),
        None => {}
    }
    // The input as randomness: a bucket, a grant id and the random bytes.
    let bucket = data.get(..4).map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()));
    let random = CountingRandom::new(fingerprint(data));
    let access = mint_access_token(bucket, &random).unwrap();
    assert_eq!(ParsedToken::parse(&access.text), Some(ParsedToken::Access { bucket, hash: access.hash }));
    let grant_id = [data.len() as u8; 16];
    let refresh = mint_refresh_token(bucket, &grant_id, &random).unwrap();
    assert_eq!(
        ParsedToken::parse(&refresh.text),
        Some(ParsedToken::Refresh { bucket, grant_id, hash: refresh.hash })
    );
}

/// A parsed scope set holds only scope-tokens and prints as text that parses back to itself.
pub fn scope(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(scopes) = ScopeSet::parse(&text) else { return };
    assert!(scopes.iter().all(is_scope_token));
    let printed = scopes.to_string();
    assert_eq!(ScopeSet::parse(&printed).ok(), Some(scopes.clone()), "{printed:?}");
    assert_eq!(ScopeSet::from_names(scopes.iter()), scopes);
    assert!(scopes.is_subset(&scopes) && scopes.intersection(&scopes) == scopes);
}

/// Every accessor of every parsed challenge answers without panicking; names are unique.
pub fn challenge(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(challenges) = parse_challenges(&text) else { return };
    for challenge in &challenges {
        assert!(!challenge.scheme.is_empty());
        let _ = (challenge.realm(), challenge.error(), challenge.error_description(), challenge.scope());
        let _ = (challenge.scopes(), challenge.next_step().as_str(), challenge.is_scheme("bearer"));
        for (i, (name, _)) in challenge.params.iter().enumerate() {
            assert!(!challenge.params[..i].iter().any(|(other, _)| other == name), "{name:?} twice");
            assert_eq!(challenge.param(name).map(str::len), Some(challenge.params[i].1.len()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Config

/// Words a config error may contain without echoing anything: the config module's own text
/// (field names, variants, messages) and serde's phrases. A value that is one of these words
/// proves nothing when it shows up in a message.
const CONFIG_VOCABULARY: &[&str] = &[
    include_str!("../src/config/raw.rs"),
    include_str!("../src/config/sections.rs"),
    include_str!("../src/config/parts.rs"),
    include_str!("../src/config/mod.rs"),
    include_str!("../src/config/scope_catalog.rs"),
    include_str!("../src/oauth/grant_type.rs"),
    include_str!("../src/oauth/routes.rs"),
    include_str!("../src/oauth/credentials.rs"),
    "unknown field, expected one of, missing field, unknown variant, wrong type or value at line",
];

fn strings_in(value: &serde_json::Value, keys: &mut Vec<String>, strings: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) => strings.push(text.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|item| strings_in(item, keys, strings)),
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                keys.push(key.clone());
                strings_in(item, keys, strings);
            }
        }
        _ => {}
    }
}

/// What may stand around a value a message quotes: `problem` joins paths, names and texts with
/// these, and serde quotes with backticks.
const DELIMITERS: &[char] = &[' ', '`', '"', '\'', ':', ',', '.', '[', ']', '(', ')', '{', '}'];

/// True when `needle` occurs in `haystack` as a whole: at its ends or between delimiters. A
/// configured string that only matches across the message's own words ("s[0].grant" in
/// "applications[0].grant_types") or inside a longer word is no echo.
fn occurs_whole(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        before.is_none_or(|c| DELIMITERS.contains(&c)) && after.is_none_or(|c| DELIMITERS.contains(&c))
    })
}

/// A refused config's message names the place of the problem, never a configured string.
///
/// A configured string (its delimiters trimmed, at least 6 bytes) may appear in a message
/// only as an object key (`unknown field` names them, paths are made of them) or as a word of
/// the config code's own vocabulary. An unknown variant is named by its place, not quoted.
pub fn config(data: &[u8]) {
    if let Err(ConfigError(message)) = Config::from_json(data) {
        assert_no_echo(data, &message);
    }
}

/// Panics when `message` quotes a string of the JSON document `data` (see [`config`]).
pub fn assert_no_echo(data: &[u8], message: &str) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let (mut keys, mut strings) = (Vec::new(), Vec::new());
    strings_in(&value, &mut keys, &mut strings);
    let scanned = message;
    for text in strings.iter().map(|text| text.trim_matches(DELIMITERS)).filter(|text| text.len() >= 6) {
        if !occurs_whole(scanned, text)
            || keys.iter().any(|key| key.contains(text))
            || CONFIG_VOCABULARY.iter().any(|words| words.contains(text))
        {
            continue;
        }
        panic!("the config error echoes the configured value {text:?}: {message:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Shared-data records

/// "now" for the record checks, in milliseconds.
pub const RECORDS_NOW: u64 = 1_700_000_000_000;
/// The known tokens of the records target: minted into bucket 0 from `CountingRandom::new(1)`.
/// Seeds carry their hashes, so the fuzzer starts next to records these tokens find.
pub fn known_tokens() -> (String, String, [u8; 16]) {
    let random = CountingRandom::new(1);
    let grant_id = [7u8; 16];
    let access = mint_access_token(0, &random).unwrap();
    let refresh = mint_refresh_token(0, &grant_id, &random).unwrap();
    (access.text, refresh.text, grant_id)
}

/// The records target: the first byte picks the table, the rest is what shared data holds.
pub fn records(data: &[u8]) {
    let Some((&table, bytes)) = data.split_first() else { return };
    match table % 4 {
        0 => {
            settles::<GrantRecord>(bytes);
            grant_store_over(bytes);
        }
        1 => {
            settles::<ClientRecord>(bytes);
            registry_over(bytes);
        }
        2 => lockout_over(bytes),
        _ => credential_changes_over(bytes),
    }
}

/// Decoding then encoding a bucket settles after one pass: the second encoding is the first.
fn settles<R: Record + PartialEq + Debug>(bucket: &[u8]) {
    let first: Vec<R> = decode_bucket(bucket);
    assert!(first.len() <= records_of(bucket).count());
    let once = encode_bucket(&first);
    let second: Vec<R> = decode_bucket(&once);
    assert_eq!(second.len(), first.len(), "a decoded record did not survive re-encoding");
    assert_eq!(encode_bucket(&second), once, "re-encoding did not settle");
    assert_eq!(decode_bucket::<R>(&encode_bucket(&second)), second);
}

/// A seed for the randomness of new records that changes with every byte of the input, so the
/// fuzzer cannot plant a copy of a record it has not seen yet (no real store can either).
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Writes `bytes` over an existing key, proving the key name is the store's own.
fn plant(shared: &MemoryStore, key: &str, bytes: &[u8]) {
    let keys = shared.key_count();
    shared.set(key, bytes, 0).unwrap();
    assert_eq!(shared.key_count(), keys, "{key} is not one of the table's keys");
}

/// Every record of a bucket the store wrote decodes.
fn all_decode<R: Record>(bucket: &[u8]) {
    assert_eq!(records_of(bucket).count(), decode_bucket::<R>(bucket).len(), "the store wrote a bad record");
}

fn owner(client: &str) -> GrantOwner {
    GrantOwner {
        client_id: client.to_owned(),
        client_fingerprint: 1,
        user: None,
        key_type: KeyType::Production,
    }
}

/// The token store over a planted bucket: lookups never panic, the fast reader agrees with the
/// full decoder, and a token issued into the bucket afterwards works.
fn grant_store_over(bytes: &[u8]) {
    let shared = MemoryStore::default();
    let random = CountingRandom::new(fingerprint(bytes));
    let store = TokenStore::new(&shared, &random, &NoMetrics, &NoMetrics, 8);
    store.initialize().unwrap();
    plant(&shared, "tokengate/grants/0", bytes);
    let (access, refresh, _) = known_tokens();
    let now = RECORDS_NOW;

    let found = store.find_access(&access, now);
    let described = store.describe(&access, now).unwrap();
    let _ = store.describe(&refresh, now).unwrap();
    if records_of(bytes).count() == 1 {
        if let Some(description) = &described {
            let grant = found.expect("the full decoder finds a token the fast reader does not");
            assert_eq!(grant.owner, description.owner);
            assert_eq!(grant.scopes, description.scopes);
            assert_eq!(grant.issued_at, description.issued_at);
        }
    }

    let plan = |_: &GrantRecord| {
        Ok(RefreshPlan {
            access_scopes: None,
            access_expires_at: now + 1000,
            refresh_expires_at: now + 2000,
            audience: Audience::default(),
        })
    };
    let _ = store.refresh(&refresh, "demo-app", now, 5000, plan);
    let _ = store.revoke(&access, "demo-app", now, 0);
    let _ = store.revoke(&refresh, "other-app", now, 0);
    store.sweep(0, 1, now, &mut |_| true).unwrap();
    all_decode::<GrantRecord>(&shared.get("tokengate/grants/0").unwrap().unwrap().0);

    let grant = NewGrant {
        owner: owner("fresh-app"),
        scopes: vec![1, 2],
        access_expires_at: now + 60_000,
        refresh_expires_at: Some(now + 120_000),
        audience: Audience::default(),
    };
    if let Ok(issued) = store.issue(grant, now) {
        let found = store.find_access(&issued.access_token, now).expect("a token just issued is found");
        assert_eq!(found.owner, owner("fresh-app"));
        let refreshed = store.refresh(&issued.refresh_token.unwrap(), "fresh-app", now, 5000, plan);
        assert!(refreshed.is_ok(), "a refresh token just issued does not refresh: {:?}", refreshed.err());
    }
    all_decode::<GrantRecord>(&shared.get("tokengate/grants/0").unwrap().unwrap().0);
}

/// The registry over a planted bucket: every stored id is found as itself, and an application
/// registered afterwards can be found, re-keyed and deleted.
fn registry_over(bytes: &[u8]) {
    let shared = MemoryStore::default();
    let random = CountingRandom::new(fingerprint(bytes));
    let registry = ClientRegistry::new(&shared, &random, &NoMetrics, 8);
    registry.initialize().unwrap();
    plant(&shared, "tokengate/clients/0", bytes);
    for record in decode_bucket::<ClientRecord>(bytes) {
        if let Some(found) = registry.find(&record.client_id).unwrap() {
            assert_eq!(found.client_id, record.client_id);
        }
    }
    let registration = Registration {
        name: "fuzz-app".to_owned(),
        owner: "admin".to_owned(),
        callback_url: String::new(),
        grant_types: [GrantType::ClientCredentials].into(),
        saas: false,
        scope: String::new(),
        auth_method: AuthMethod::default(),
        application_type: ApplicationType::default(),
    };
    let Ok(registered) = registry.register(registration, "admin", RECORDS_NOW) else { return };
    let id = &registered.record.client_id;
    assert_eq!(registry.find(id).unwrap().as_ref(), Some(&registered.record));
    assert!(registered.record.verifier().verify(&registered.secret));
    let rekeyed = registry.regenerate_secret(id, RECORDS_NOW).unwrap();
    assert!(registry.find(id).unwrap().unwrap().verifier().verify(&rekeyed.secret));
    registry.delete(id, RECORDS_NOW).unwrap();
    assert_eq!(registry.find(id).unwrap(), None);
    all_decode::<ClientRecord>(&shared.get("tokengate/clients/0").unwrap().unwrap().0);
}

/// The failure limiter over a planted bucket fails closed: after `max_failures` failures the
/// name is refused, whatever the bucket held.
fn lockout_over(bytes: &[u8]) {
    let shared = MemoryStore::default();
    let policy = LockoutPolicy {
        max_failures: 3,
        window_secs: 60,
        lockout_secs: 300,
        tracked_names: 8,
        known_names: 8,
        sign_in_pairs: 8,
    };
    let random = CountingRandom::new(fingerprint(bytes));
    let limiter = FailureLimiter::new(&shared, &random, policy);
    limiter.initialize().unwrap();
    plant(&shared, "tokengate/limits/0", bytes);
    let name = Principal::Client("demo-app");
    let _ = limiter.locked_for(Principal::User("admin"), Listing::Unknown, RECORDS_NOW).unwrap();
    for _ in 0..policy.max_failures {
        limiter.record_failure(name, Listing::Unknown, RECORDS_NOW).unwrap();
    }
    let wait = limiter.locked_for(name, Listing::Unknown, RECORDS_NOW).unwrap();
    assert!(wait.is_some_and(|secs| secs > 0), "not refused after {} failures", policy.max_failures);
}

/// Credential changes over a planted record: recording a config and reading the record back
/// agree.
fn credential_changes_over(bytes: &[u8]) {
    let shared = MemoryStore::default();
    CredentialChanges::record(&shared, &[(CredentialKind::User, "seed", 0)], 1).unwrap();
    plant(&shared, "tokengate/credential-changes", bytes);
    let _ = CredentialChanges::read(&shared).unwrap();
    let config = [(CredentialKind::Application, "demo-app", 1), (CredentialKind::User, "admin", 2)];
    let recorded = CredentialChanges::record(&shared, &config, RECORDS_NOW).unwrap();
    assert_eq!(CredentialChanges::read(&shared).unwrap(), recorded);
}

/// A few meaningful buckets for the records corpus, by file name (see `tests/fuzz_corpus.rs`).
pub fn record_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let (access, refresh, grant_id) = known_tokens();
    let hash = |text: &str| match ParsedToken::parse(text) {
        Some(ParsedToken::Access { hash, .. } | ParsedToken::Refresh { hash, .. }) => hash,
        None => unreachable!(),
    };
    let now = RECORDS_NOW;
    let grant = GrantRecord {
        tag: grant_tag(&grant_id),
        owner: GrantOwner {
            client_id: "demo-app".to_owned(),
            client_fingerprint: 11,
            user: Some(("admin".to_owned(), 22)),
            key_type: KeyType::Sandbox,
        },
        scopes: vec![0x0102_0304, 0x0a0b_0c0d],
        refresh: Some(RefreshEntry {
            hash: hash(&refresh),
            issued_at: now - 1000,
            expires_at: now + 86_400_000,
            replaced: Some([9; 16]),
        }),
        access: vec![
            AccessEntry {
                hash: hash(&access),
                issued_at: now - 1000,
                expires_at: now + 3_600_000,
                scopes: None,
            },
            AccessEntry { hash: [5; 16], issued_at: now - 9000, expires_at: now - 1, scopes: Some(vec![7]) },
        ],
        audience: Audience::default(),
        newer_fields: Vec::new(),
    };
    let client_only = GrantRecord {
        owner: owner("orders-service"),
        refresh: None,
        access: vec![AccessEntry {
            hash: hash(&access),
            issued_at: now,
            expires_at: u64::MAX,
            scopes: Some(vec![1]),
        }],
        ..grant.clone()
    };
    let with_table = |table: u8, bucket: Vec<u8>| [vec![table], bucket].concat();

    let shared = MemoryStore::default();
    let random = CountingRandom::new(4);
    let registry = ClientRegistry::new(&shared, &random, &NoMetrics, 8);
    registry.initialize().unwrap();
    for name in ["console", "reports"] {
        let registration = Registration {
            name: name.to_owned(),
            owner: "admin".to_owned(),
            callback_url: "https://app.example/cb".to_owned(),
            grant_types: [GrantType::Password, GrantType::RefreshToken].into(),
            saas: name == "reports",
            scope: String::new(),
            auth_method: AuthMethod::default(),
            application_type: ApplicationType::default(),
        };
        registry.register(registration, "admin", now).unwrap();
    }
    let clients = shared.get("tokengate/clients/0").unwrap().unwrap().0;

    let policy = LockoutPolicy {
        max_failures: 3,
        window_secs: 60,
        lockout_secs: 300,
        tracked_names: 8,
        known_names: 8,
        sign_in_pairs: 8,
    };
    let random = CountingRandom::new(1);
    let limiter = FailureLimiter::new(&shared, &random, policy);
    limiter.initialize().unwrap();
    limiter.record_failure(Principal::Client("demo-app"), Listing::Unknown, now).unwrap();
    for _ in 0..3 {
        limiter.record_failure(Principal::User("admin"), Listing::Unknown, now).unwrap();
    }
    let limits = shared.get("tokengate/limits/0").unwrap().unwrap().0;

    let config = [(CredentialKind::Application, "demo-app", 1), (CredentialKind::User, "admin", 2)];
    CredentialChanges::record(&shared, &config, now - 5000).unwrap();
    CredentialChanges::record(&shared, &[(CredentialKind::Application, "demo-app", 3)], now).unwrap();
    let changes = shared.get("tokengate/credential-changes").unwrap().unwrap().0;

    vec![
        ("grants-password-grant", with_table(0, encode_bucket(std::slice::from_ref(&grant)))),
        ("grants-two-records", with_table(0, encode_bucket(&[client_only, grant]))),
        ("grants-empty", with_table(0, encode_bucket::<GrantRecord>(&[]))),
        ("clients-two", with_table(1, clients)),
        ("limits-locked-user", with_table(2, limits)),
        ("credential-changes", with_table(3, changes)),
    ]
}

// ---------------------------------------------------------------------------------------------
// The gateway

/// The demo configuration (envoy/envoy.yaml) with small tables, so that a fuzz input can fill
/// them, a lockout that trips after 3 failures, and an admin password that is not also a
/// username, so that a leak of it is visible.
pub const GATEWAY_CONFIG: &str = r#"{
  "issuer": "http://127.0.0.1:8080",
  "store": { "capacity": 16 },
  "lockout": { "max_failures": 3, "window_secs": 60, "lockout_secs": 300, "tracked_names": 16 },
  "applications": [
    { "consumer_key": "demo-app", "consumer_secret": "demo-secret",
      "grant_types": ["client_credentials", "password", "refresh_token"],
      "scopes": ["orders:read", "orders:write"] },
    { "consumer_key": "orders-service", "consumer_secret": "orders-service-secret",
      "grant_types": ["client_credentials"], "introspect": true }
  ],
  "users": [ { "username": "admin", "password": "admin-fuzz-password", "admin": true,
               "scopes": ["orders:read", "orders:write"] } ],
  "registration": {
    "capacity": 8,
    "grant_types": ["client_credentials", "password", "refresh_token"],
    "scopes": ["orders:read", "orders:write"]
  },
  "resources": [
    { "methods": ["GET"], "path": "/api/orders", "scopes": ["orders:read"] },
    { "methods": ["GET"], "path": "/api/orders/{id}", "scopes": ["orders:read"] },
    { "methods": ["POST"], "path": "/api/orders", "scopes": ["orders:write"] },
    { "methods": ["GET"], "path": "/api/public/ping", "public": true }
  ]
}"#;

/// The configured secrets: none may appear in any reply.
const SECRETS: &[&str] = &["demo-secret", "orders-service-secret", "admin-fuzz-password"];

/// Fields of a registration reply that echo what the administrator sent.
const ECHOED_REGISTRATION_FIELDS: &[&str] = &["clientName", "callBackURL", "appOwner", "jsonString"];

/// One request of a gateway input.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// What earlier replies handed out, for the placeholders of later requests.
#[derive(Default)]
struct Session {
    access: String,
    refresh: String,
    client_id: String,
    registered: String,
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|window| window == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

impl Session {
    /// `{demo}`, `{service}`, `{admin}`: Basic credentials (base64) of the demo app, the
    /// introspecting service and the administrator; `{registered}`: of the application last
    /// registered, whose id is `{client}`; `{access}`, `{refresh}`: the tokens last issued.
    fn expand(&self, text: &[u8]) -> Vec<u8> {
        if !text.contains(&b'{') {
            return text.to_vec();
        }
        let placeholders = [
            ("{demo}", encode_basic_credentials("demo-app", "demo-secret")),
            ("{service}", encode_basic_credentials("orders-service", "orders-service-secret")),
            ("{admin}", encode_basic_credentials("admin", "admin-fuzz-password")),
            ("{registered}", self.registered.clone()),
            ("{client}", self.client_id.clone()),
            ("{access}", self.access.clone()),
            ("{refresh}", self.refresh.clone()),
        ];
        placeholders
            .iter()
            .fold(text.to_vec(), |text, (from, to)| replace(&text, from.as_bytes(), to.as_bytes()))
    }

    fn learn(&mut self, body: &[u8]) {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else { return };
        let text = |name: &str| fields.get(name).and_then(|value| value.as_str()).map(str::to_owned);
        if let Some(access) = text("access_token") {
            self.access = access;
        }
        if let Some(refresh) = text("refresh_token") {
            self.refresh = refresh;
        }
        if let (Some(id), Some(secret)) = (text("clientId"), text("clientSecret")) {
            self.registered = encode_basic_credentials(&id, &secret);
            self.client_id = id;
        }
    }
}

/// Splits a gateway input into requests: they are separated by lines `---`; in each, the
/// first line is `METHOD PATH`, the second the Authorization value, the third the
/// Content-Type (an empty line: no such header), the rest the body. A request `sleep N`
/// moves the clock N seconds instead.
fn requests(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.windows(5).position(|window| window == b"\n---\n") {
            Some(at) => {
                rest = Some(&text[at + 5..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
    .take(32)
}

fn parse_request(session: &Session, raw: &[u8]) -> Request {
    let mut lines = raw.splitn(4, |&b| b == b'\n');
    let line = |bytes: Option<&[u8]>| {
        String::from_utf8_lossy(&session.expand(bytes.unwrap_or_default())).into_owned()
    };
    let first = line(lines.next());
    let (method, path) = first.split_once(' ').unwrap_or((first.as_str(), "/"));
    let header = |text: String| Some(text).filter(|text| !text.is_empty());
    Request {
        method: method.to_owned(),
        path: path.to_owned(),
        authorization: header(line(lines.next())),
        content_type: header(line(lines.next())),
        body: session.expand(lines.next().unwrap_or_default()),
    }
}

// The checks below run for every reply: messages are built only when one fails.

fn no_line_breaks(text: &str, what: impl FnOnce() -> String) {
    if text.contains(['\r', '\n']) {
        panic!("a line break in {}: {text:?}", what());
    }
}

fn no_secrets(text: &str, what: impl FnOnce() -> String) {
    thread_local! {
        /// The secrets, and the Basic credentials that carry them.
        static FORBIDDEN: Vec<String> =
            SECRETS.iter().flat_map(|secret| [secret.to_string(), basic_of(secret)]).collect();
    }
    if let Some(secret) =
        FORBIDDEN.with(|forbidden| forbidden.iter().find(|s| text.contains(s.as_str())).cloned())
    {
        panic!("{} shows the configured secret {secret:?}", what());
    }
}

/// The base64 of a Basic value with this secret, as the placeholders send it.
fn basic_of(secret: &str) -> String {
    let key = match secret {
        "demo-secret" => "demo-app",
        "orders-service-secret" => "orders-service",
        _ => "admin",
    };
    encode_basic_credentials(key, secret)
}

/// `FUZZ_TRACE=1` prints each gateway request and its answer (for reading a crash input).
fn trace(request: &Request, answer: impl FnOnce() -> String) {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some()) {
        eprintln!("{} {} -> {}", request.method, request.path, answer());
    }
}

fn check_response(request: &Request, response: &Response) {
    trace(request, || format!("{} {}", response.status, String::from_utf8_lossy(&response.body)));
    let context = || format!("{request:?} -> {}", response.status);
    let json = serde_json::from_slice::<serde_json::Value>(&response.body).ok();
    if response.status >= 500 {
        let error = json.as_ref().and_then(|json| json.get("error")).and_then(|error| error.as_str());
        assert_eq!((response.status, error), (503, Some("temporarily_unavailable")), "{}", context());
    }
    for (name, value) in &response.headers {
        no_line_breaks(name, || format!("a header name ({})", context()));
        no_line_breaks(value, || format!("header {name} ({})", context()));
        no_secrets(value, || format!("header {name} ({})", context()));
        if name.eq_ignore_ascii_case("www-authenticate") {
            parse_challenges(value)
                .unwrap_or_else(|e| panic!("{}: unreadable challenge {value:?}: {e:?}", context()));
        }
    }
    match json {
        Some(serde_json::Value::Object(mut fields)) if fields.contains_key("clientId") => {
            for field in ECHOED_REGISTRATION_FIELDS {
                fields.remove(*field);
            }
            no_secrets(&serde_json::Value::Object(fields).to_string(), || {
                format!("the body of {}", context())
            });
        }
        _ => no_secrets(&String::from_utf8_lossy(&response.body), || format!("the body of {}", context())),
    }
}

/// The gateway over the in-memory host, fed the requests of `data` in turn (see [`requests`]).
/// Every reply: no 5xx but the documented 503 `temporarily_unavailable`, no configured secret,
/// no line break in a header, challenges the client package can read; every request let
/// through has the identity headers removed before the gateway's own are set.
pub fn gateway(data: &[u8]) {
    thread_local! {
        static CONFIG: &'static Config =
            Box::leak(Box::new(Config::from_json(GATEWAY_CONFIG.as_bytes()).unwrap()));
    }
    let config = CONFIG.with(|config| *config);
    let shared = MemoryStore::default();
    let random = CountingRandom::new(0);
    let clock = ManualClock::at(1_700_000_000);
    let changes = CredentialChanges::default();
    let login_key = KeyMemory::new();
    let host = Host {
        shared: &shared,
        random: &random,
        clock: &clock,
        metrics: &NoMetrics,
        coordination: &NoMetrics,
        credential_changes: &changes,
        process_shared: &shared,
        connection: &NoConnection,
        config_generation: &std::cell::Cell::new(0),
        login_key: &login_key,
    };
    config.store_layout().initialize(&shared, &random).unwrap();
    let gateway = Gateway::new(config, host);

    let mut session = Session::default();
    for raw in requests(data) {
        if let Some(secs) = raw.strip_prefix(b"sleep ") {
            clock.advance(String::from_utf8_lossy(secs).trim().parse::<u32>().map_or(0, u64::from));
            continue;
        }
        let request = parse_request(&session, raw);
        match gateway.endpoint(&request.path) {
            Some(endpoint) => {
                let response = if request.body.len() > config.max_body_bytes {
                    gateway.body_too_large()
                } else {
                    gateway.serve(
                        &endpoint,
                        &EndpointRequest {
                            client_address: None,
                            method: &request.method,
                            path: &request.path,
                            authorization: request.authorization.as_deref(),
                            content_type: request.content_type.as_deref(),
                            body: &request.body,
                        },
                    )
                };
                check_response(&request, &response);
                session.learn(&response.body);
            }
            None => {
                let api = ApiRequest {
                    method: &request.method,
                    path: &request.path,
                    authorization: request.authorization.as_deref(),
                };
                match gateway.check_bearer(&api) {
                    Outcome::Deny(denial) => check_response(&request, &denial.response),
                    Outcome::Forward(forward) => {
                        trace(&request, || format!("{forward:?}"));
                        for identity in [CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER] {
                            assert!(
                                forward.remove_headers.contains(&identity),
                                "{request:?}: {identity} kept"
                            );
                        }
                        for (name, value) in &forward.set_headers {
                            no_line_breaks(name, || format!("a forwarded header name ({request:?})"));
                            no_line_breaks(value, || format!("forwarded header {name} ({request:?})"));
                            no_secrets(value, || format!("forwarded header {name} ({request:?})"));
                        }
                    }
                }
            }
        }
    }
}
