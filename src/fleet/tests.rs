//! Two replicas (each its own shared data, as two Envoy processes) over one in-memory etcd,
//! running the real gateway decisions through the fleet layer.

use super::credentials::record_first;
use super::heartbeat::Heartbeat;
use super::memory_etcd::MemoryEtcd;
use super::plan::{plan, settle, Settled, Step, ETCD_MAX_TXN_OPS};
use super::view::{FleetView, StagedMetrics};
use super::watch;
use crate::config::tests::demo_with_lifecycle;
use crate::config::Config;
use crate::gateway::{ApiRequest, Denial, EndpointRequest, Gateway, Host, Outcome, Response};
use crate::host::memory::{ManualClock, MemoryStore, RecordedMetrics};
use crate::host::metrics::Metric;
use crate::host::SharedStore as _;
use crate::host::SystemRandomness;
use crate::oauth::credentials::encode_basic_credentials;
use crate::oauth::pkce::{APPENDIX_B_CHALLENGE as CHALLENGE, APPENDIX_B_VERIFIER as VERIFIER};
use crate::state::credential_changes::CredentialChanges;
use crate::state::login_handle::KeyMemory;

const PREFIX: &str = "test/";
const FORM: &str = "application/x-www-form-urlencoded";
/// Passes a decision may take before the replica gives up (the glue answers 503).
const ATTEMPTS: usize = 5;

struct Fleet {
    etcd: MemoryEtcd,
    clock: ManualClock,
    config: Config,
    json: String,
}

struct Replica<'f> {
    fleet: &'f Fleet,
    /// This replica's configuration (the fleet's, unless it was started with another).
    config: Config,
    shared: MemoryStore,
    metrics: RecordedMetrics,
    /// This VM's copy of the credential-change record, and where it stands with etcd's.
    changes: std::cell::RefCell<CredentialChanges>,
    record: super::credentials::CredentialRecord,
    no_changes: CredentialChanges,
    config_generation: std::cell::Cell<u64>,
    /// One VM's copy of the login handles' key.
    login_key: KeyMemory,
    /// The revision this replica's watch has applied up to.
    watched: std::cell::Cell<i64>,
    /// This replica's token epoch (a process-wide gauge in Envoy).
    epochs: std::rc::Rc<TokenEpoch>,
}

/// A replica's token epoch, and no tier windows. The replicas of a test share one thread, so
/// one worker's memory of tokens (`state::remembered`, thread-local): each starts its epoch
/// far from every other's, so that no replica ever recalls what another remembered, as two
/// Envoy processes never do.
struct TokenEpoch(std::cell::Cell<u64>);

impl TokenEpoch {
    fn new() -> Self {
        static REPLICAS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let replica = REPLICAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TokenEpoch(std::cell::Cell::new(replica << 32))
    }
}

impl crate::host::Coordination for TokenEpoch {
    fn window(&self, _counter: usize) -> Option<u64> {
        None
    }
    fn count_in_window(&self, _counter: usize) {}
    fn restart_window(&self, _counter: usize, _value: u64) {}
    fn token_epoch(&self) -> Option<u64> {
        Some(self.0.get())
    }
    fn tokens_changed(&self) {
        self.0.set(self.0.get() + 1);
    }
    fn failure_epoch(&self) -> Option<u64> {
        None
    }
    fn failure_recorded(&self) {}
}

#[derive(Debug, PartialEq)]
enum Failed {
    /// Still stale after every attempt.
    Contended,
    /// etcd refused the transaction: more operations than its `--max-txn-ops`.
    TooManyOperations,
}

impl Fleet {
    fn new() -> Fleet {
        Fleet::with_config(&demo_with_lifecycle())
    }

    fn with_config(json: &str) -> Fleet {
        Fleet {
            etcd: MemoryEtcd::default(),
            clock: ManualClock::at(1_700_000_000),
            config: Config::from_json(json.as_bytes()).unwrap(),
            json: json.to_owned(),
        }
    }

    fn replica(&self) -> Replica<'_> {
        self.replica_with(&self.json)
    }

    /// A replica started (as a new process: nothing in its shared data) with its own config.
    fn replica_with(&self, json: &str) -> Replica<'_> {
        let replica = Replica {
            fleet: self,
            config: Config::from_json(json.as_bytes()).unwrap(),
            shared: MemoryStore::default(),
            metrics: RecordedMetrics::default(),
            changes: std::cell::RefCell::default(),
            record: super::credentials::CredentialRecord::new(self.now()),
            no_changes: CredentialChanges::default(),
            config_generation: std::cell::Cell::new(0),
            login_key: KeyMemory::new(),
            watched: std::cell::Cell::new(self.etcd.revision()),
            epochs: std::rc::Rc::new(TokenEpoch::new()),
        };
        replica.config.store_layout().initialize(&replica.shared, &SystemRandomness).unwrap();
        CredentialChanges::create_fleet_record(&replica.shared).unwrap();
        replica
    }

    /// The grant buckets etcd holds (beside them: the credential-change record).
    fn grant_keys(&self) -> usize {
        self.etcd.keys_under(format!("{PREFIX}grants/").as_bytes())
    }

    fn now(&self) -> u64 {
        use crate::host::Clock;
        self.clock.now_millis().unwrap()
    }
}

impl Replica<'_> {
    /// A host whose credential changes are none (passes that judge no token by them).
    fn host<'h>(
        &'h self,
        shared: &'h dyn crate::host::SharedStore,
        metrics: &'h (impl crate::host::Metrics + crate::host::Coordination),
    ) -> Host<'h> {
        self.host_with(shared, metrics, &self.no_changes)
    }

    fn host_with<'h>(
        &'h self,
        shared: &'h dyn crate::host::SharedStore,
        metrics: &'h (impl crate::host::Metrics + crate::host::Coordination),
        credential_changes: &'h CredentialChanges,
    ) -> Host<'h> {
        Host {
            shared,
            random: &SystemRandomness,
            clock: &self.fleet.clock,
            metrics,
            coordination: metrics,
            credential_changes,
            process_shared: &self.shared,
            connection: &crate::host::NoConnection,
            config_generation: &self.config_generation,
            login_key: &self.login_key,
        }
    }

    /// One decision, the way the filter glue drives it: a pass over the cache, then what etcd
    /// must confirm or commit, repeated while another replica got there first. As etcd does,
    /// a transaction longer than its default `--max-txn-ops` is refused; as the glue does, a
    /// pass too long with the credential-change record in it commits the record first.
    fn decide<T>(&self, confirm: impl Fn(&T) -> bool, pass: impl Fn(&Gateway) -> T) -> Result<T, Failed> {
        self.decide_remembering(false, confirm, pass)
    }

    /// [`Self::decide`]; `remembers`: a Bearer check over a current cache, which the glue lets
    /// answer from the worker's memory of tokens.
    fn decide_remembering<T>(
        &self,
        remembers: bool,
        confirm: impl Fn(&T) -> bool,
        pass: impl Fn(&Gateway) -> T,
    ) -> Result<T, Failed> {
        for _ in 0..ATTEMPTS {
            let view = FleetView::new(&self.shared);
            let staged =
                StagedMetrics::with_windows(self.epochs.clone(), remembers && self.record.is_known());
            let read = self.record.for_pass(&view, &self.config).unwrap();
            let answer = {
                let held = self.changes.borrow();
                let changes = read.as_ref().unwrap_or(&held);
                pass(&Gateway::new(&self.config, self.host_with(&view, &staged, changes)))
            };
            let mut record = view.into_record();
            let read = self.record.keep_if_judged(&mut record, read);
            let holds = |staged: StagedMetrics| {
                staged.into_held().report(&self.metrics, &*self.epochs);
                if let Some(read) = read.clone() {
                    *self.changes.borrow_mut() = read;
                    self.record.confirmed();
                }
            };
            match plan(&record, PREFIX, confirm(&answer), self.fleet.now()) {
                Step::Deliver => {
                    holds(staged);
                    return Ok(answer);
                }
                Step::Ask(txn) => {
                    let record_txn =
                        read.as_ref().and_then(|_| record_first(&record, &txn, PREFIX, self.fleet.now()));
                    if let Some(record_txn) = record_txn {
                        let response = self.fleet.etcd.txn(&record_txn.request);
                        if settle(&self.shared, &record_txn, &response).unwrap() == Settled::Holds {
                            holds(StagedMetrics::default());
                        }
                        continue;
                    }
                    if txn.operations() > ETCD_MAX_TXN_OPS {
                        return Err(Failed::TooManyOperations);
                    }
                    for lease in &txn.leases {
                        let _ = self.fleet.etcd.lease_grant(lease, self.fleet.now());
                    }
                    let response = self.fleet.etcd.txn(&txn.request);
                    if settle(&self.shared, &txn, &response).unwrap() == Settled::Holds {
                        holds(staged);
                        return Ok(answer);
                    }
                    // As the glue does: the failure branch cached etcd's newer words.
                    crate::host::Coordination::tokens_changed(&*self.epochs);
                }
            }
        }
        Err(Failed::Contended)
    }

    fn endpoint(&self, path: &str, who: (&str, &str), body: &str) -> Response {
        let basic = format!("Basic {}", encode_basic_credentials(who.0, who.1));
        self.decide(
            |_| true,
            |gateway| {
                let endpoint = gateway.endpoint(path).unwrap();
                let request = EndpointRequest {
                    client_address: None,
                    method: "POST",
                    path,
                    authorization: Some(&basic),
                    content_type: Some(FORM),
                    body: body.as_bytes(),
                };
                gateway.serve(&endpoint, &request)
            },
        )
        .unwrap()
    }

    /// A WSO2 v0.17 registration by the admin, who has a quota (`registration.max_per_owner`).
    fn register(&self, name: &str) -> Result<Response, Failed> {
        let basic = format!("Basic {}", encode_basic_credentials("admin", "admin"));
        let path = "/client-registration/v0.17/register";
        let body = format!(r#"{{"clientName":"{name}","grantType":"client_credentials"}}"#);
        self.decide(
            |_| true,
            |gateway| {
                let request = EndpointRequest {
                    client_address: None,
                    method: "POST",
                    path,
                    authorization: Some(&basic),
                    content_type: Some("application/json"),
                    body: body.as_bytes(),
                };
                gateway.serve(&gateway.endpoint(path).unwrap(), &request)
            },
        )
    }

    fn token(&self, body: &str) -> serde_json::Value {
        let response = self.endpoint("/token", ("demo-app", "demo-secret"), body);
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
        serde_json::from_slice(&response.body).unwrap()
    }

    /// The status a Bearer request to `GET /api/orders` gets (200: forwarded).
    fn bearer_status(&self, token: &str) -> u16 {
        let authorization = format!("Bearer {token}");
        let outcome = self
            .decide_remembering(true, Outcome::rests_on_the_store, |gateway| {
                gateway.check_bearer(&ApiRequest {
                    method: "GET",
                    path: "/api/orders",
                    authorization: Some(&authorization),
                })
            })
            .unwrap();
        match outcome {
            Outcome::Forward(_) => 200,
            Outcome::Deny(Denial { response, .. }) => response.status,
        }
    }

    /// Applies what this replica's watch would have delivered since it last looked.
    fn catch_up(&self) {
        let response = self.fleet.etcd.watch_from(self.watched.get() + 1);
        let keys = self.config.store_layout().fleet_keys();
        match watch::apply(&self.shared, &*self.epochs, PREFIX, &response, keys.into_iter()).unwrap() {
            watch::Heard::UpTo(revision) => self.watched.set(revision.max(self.watched.get())),
            watch::Heard::Compacted => self.restart_watch(),
            watch::Heard::Opened => {}
        }
    }

    /// What the watcher does with no revision to resume from (at start-up, after a
    /// compaction): one read says where etcd stands, every older entry is forgotten below that
    /// floor, and the watch starts right after it.
    fn restart_watch(&self) {
        let revision = self.fleet.etcd.revision();
        let keys = self.config.store_layout().fleet_keys();
        watch::start_after(&self.shared, &*self.epochs, keys.into_iter(), revision).unwrap();
        self.watched.set(revision);
    }

    /// The fleet keys a Bearer check of `token` (which must be let through) reads from the
    /// cache, in a pass that may answer from the worker's memory.
    fn bearer_reads(&self, token: &str) -> Vec<String> {
        let authorization = format!("Bearer {token}");
        let view = FleetView::new(&self.shared);
        let staged = StagedMetrics::with_windows(self.epochs.clone(), true);
        let changes = self.changes.borrow();
        let outcome =
            Gateway::new(&self.config, self.host_with(&view, &staged, &changes)).check_bearer(&ApiRequest {
                method: "GET",
                path: "/api/orders",
                authorization: Some(&authorization),
            });
        assert!(matches!(outcome, Outcome::Forward(_)), "{outcome:?}");
        view.into_record().reads.into_keys().collect()
    }

    /// A Bearer check's pass over the cache and the transaction it needs, not yet sent.
    fn bearer_txn(&self, token: &str) -> super::plan::FleetTxn {
        let authorization = format!("Bearer {token}");
        let view = FleetView::new(&self.shared);
        let staged = StagedMetrics::default();
        let gateway = Gateway::new(&self.config, self.host(&view, &staged));
        gateway.check_bearer(&ApiRequest {
            method: "GET",
            path: "/api/orders",
            authorization: Some(&authorization),
        });
        match plan(&view.into_record(), PREFIX, true, self.fleet.now()) {
            Step::Ask(txn) => txn,
            Step::Deliver => panic!("a Bearer check on a cold cache asks etcd"),
        }
    }
}

fn field(json: &serde_json::Value, name: &str) -> String {
    json[name].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_token_issued_on_one_replica_is_accepted_by_another_at_once() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    // B has heard nothing yet: its cache does not know the bucket, so it asks etcd.
    assert_eq!(b.bearer_status(&token), 200);
    assert_eq!(a.bearer_status(&token), 200);
    assert_eq!(b.bearer_status("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 401);
    assert_eq!(
        a.metrics.get(Metric::TokensIssued(crate::oauth::grant_type::GrantType::ClientCredentials)),
        1
    );
}

/// A replica's cache may not have seen a token another replica just issued: a refusal for want
/// of a live token waits for etcd's word. Every other answer can go out from the cache.
#[test]
fn only_a_denial_for_want_of_a_live_token_must_rest_on_etcd() {
    let fleet = Fleet::new();
    let replica = fleet.replica();
    let token = format!("Bearer {}", field(&replica.token("grant_type=client_credentials"), "access_token"));
    struct Case {
        name: &'static str,
        path: &'static str,
        authorization: Option<&'static str>,
        rests_on_the_store: bool,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "no token", path: "/api/orders", authorization: None, rests_on_the_store: true },
        Case { name: "an unknown token", path: "/api/orders", authorization: Some("Bearer AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), rests_on_the_store: true },
        Case { name: "a malformed header", path: "/api/orders", authorization: Some("Bearer a b"), rests_on_the_store: false },
        Case { name: "no such resource", path: "/nowhere", authorization: None, rests_on_the_store: false },
        Case { name: "a token in the URL", path: "/api/orders?access_token=x", authorization: None, rests_on_the_store: false },
        Case { name: "a live token", path: "/api/orders", authorization: Some("live"), rests_on_the_store: false },
    ];
    for Case { name, path, authorization, rests_on_the_store } in table {
        let authorization =
            authorization.map(|header| if header == "live" { token.as_str() } else { header });
        let request = ApiRequest { method: "GET", path, authorization };
        let outcome =
            replica.decide(Outcome::rests_on_the_store, |gateway| gateway.check_bearer(&request)).unwrap();
        assert_eq!(outcome.rests_on_the_store(), rests_on_the_store, "{name}: {outcome:?}");
    }
}

#[test]
fn a_revocation_on_one_replica_ends_the_token_on_the_other_once_its_watch_delivers() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(b.bearer_status(&token), 200);
    let revoked = b.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}"));
    assert_eq!(revoked.status, 200);
    assert_eq!(b.bearer_status(&token), 401, "the revoking replica knows at once");
    a.catch_up();
    assert_eq!(a.bearer_status(&token), 401, "the other one as soon as its watch delivers");
}

/// Each worker remembers the tokens it validated (`state::remembered`), trusted while its
/// Envoy's token epoch stands: the replica that revokes moves it once its write holds, every
/// other one once its watch has put the revocation in the cache.
#[test]
fn a_remembered_token_is_refused_on_every_replica_once_the_revocation_reaches_it() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    b.catch_up();
    for replica in [&a, &b] {
        // B's first pass records its config in etcd's credential-change record: until that
        // holds, no token is judged from memory. The next one remembers.
        for _ in 0..2 {
            assert_eq!(replica.bearer_status(&token), 200);
        }
        let reads = replica.bearer_reads(&token);
        assert!(reads.is_empty(), "a warm hit answers from the worker's memory, read {reads:?}");
    }
    let revoked = b.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}"));
    assert_eq!(revoked.status, 200);
    assert_eq!(b.bearer_status(&token), 401, "the revoking replica forgets at once");
    // Until its watch delivers, A knows no more than its cache, which still holds the token.
    assert_eq!(a.bearer_status(&token), 200);
    a.catch_up();
    assert_eq!(a.bearer_status(&token), 401, "the next request after the watch delivered");
}

/// A watch that starts again from where etcd stands (at start-up, after a compaction) never
/// delivers what changed before: the workers' memories go with the cache.
#[test]
fn a_watch_that_starts_again_leaves_no_remembered_token_behind() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(a.bearer_status(&token), 200);
    assert_eq!(b.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}")).status, 200);
    fleet.etcd.compact();
    a.restart_watch();
    assert_eq!(a.bearer_status(&token), 401);
}

#[test]
fn a_stale_cache_cannot_revive_a_token_etcd_no_longer_holds() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(b.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}")).status, 200);
    // A has not heard of the revocation; a write into the same bucket must not restore it.
    let introspected = a.endpoint("/introspect", ("demo-app", "demo-secret"), &format!("token={token}"));
    assert_eq!(
        String::from_utf8_lossy(&introspected.body),
        r#"{"active":false}"#,
        "endpoints confirm with etcd"
    );
}

#[test]
fn refresh_rotation_is_exactly_once_across_replicas() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let issued = a.token("grant_type=password&username=admin&password=admin");
    let refresh = field(&issued, "refresh_token");
    let body = format!("grant_type=refresh_token&refresh_token={refresh}");
    b.catch_up();
    // Both passes run on the same cached state; etcd lets only the first commit through.
    let pass = |replica: &Replica| {
        let view = FleetView::new(&replica.shared);
        let staged = StagedMetrics::default();
        let gateway = Gateway::new(&fleet.config, replica.host(&view, &staged));
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
        let request = EndpointRequest {
            client_address: None,
            method: "POST",
            path: "/token",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: body.as_bytes(),
        };
        let response = gateway.serve(&gateway.endpoint("/token").unwrap(), &request);
        (response, view.into_record())
    };
    let (first, first_record) = pass(&a);
    let (second, second_record) = pass(&b);
    assert_eq!((first.status, second.status), (200, 200), "each pass alone would win");
    let Step::Ask(first_txn) = plan(&first_record, PREFIX, true, fleet.now()) else { panic!("a write") };
    let Step::Ask(second_txn) = plan(&second_record, PREFIX, true, fleet.now()) else { panic!("a write") };
    for lease in first_txn.leases.iter().chain(&second_txn.leases) {
        let _ = fleet.etcd.lease_grant(lease, fleet.now());
    }
    assert_eq!(settle(&a.shared, &first_txn, &fleet.etcd.txn(&first_txn.request)).unwrap(), Settled::Holds);
    assert_eq!(settle(&b.shared, &second_txn, &fleet.etcd.txn(&second_txn.request)).unwrap(), Settled::Stale);
    // B runs again on what etcd sent back: the refresh token is used, so it is refused, and
    // with no reuse grace (the default, RFC 9700 §4.14.2) the reuse ends the grant everywhere.
    assert_eq!(b.endpoint("/token", ("demo-app", "demo-secret"), &body).status, 400);
    let winner = serde_json::from_slice::<serde_json::Value>(&first.body).unwrap();
    a.catch_up();
    for replica in [&a, &b] {
        assert_eq!(replica.bearer_status(&field(&winner, "access_token")), 401);
        assert_eq!(replica.bearer_status(&field(&issued, "access_token")), 401);
    }
}

/// A shared store that counts its reads: whether settling etcd's answer read the cache again.
struct CountingReads<'s> {
    store: &'s MemoryStore,
    reads: std::cell::Cell<usize>,
}

impl crate::host::SharedStore for CountingReads<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, crate::host::StoreError> {
        self.reads.set(self.reads.get() + 1);
        self.store.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), crate::host::StoreError> {
        self.store.set(key, value, cas)
    }
}

/// A client_credentials pass over `replica`'s cache, planned: its record and its transaction,
/// with the leases it needs granted.
fn planned_token_pass(fleet: &Fleet, replica: &Replica) -> (super::view::PassRecord, super::plan::FleetTxn) {
    let view = FleetView::new(&replica.shared);
    let staged = StagedMetrics::default();
    let gateway = Gateway::new(&fleet.config, replica.host(&view, &staged));
    let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
    let request = EndpointRequest {
        client_address: None,
        method: "POST",
        path: "/token",
        authorization: Some(&basic),
        content_type: Some(FORM),
        body: b"grant_type=client_credentials",
    };
    assert_eq!(gateway.serve(&gateway.endpoint("/token").unwrap(), &request).status, 200);
    let record = view.into_record();
    let Step::Ask(txn) = plan(&record, PREFIX, true, fleet.now()) else { panic!("a token is a write") };
    for lease in &txn.leases {
        let _ = fleet.etcd.lease_grant(lease, fleet.now());
    }
    (record, txn)
}

#[test]
fn a_committed_write_reaches_the_cache_without_reading_it_again() {
    // Each shared-data read costs Envoy a host call and a copy into the VM: when nothing
    // changed the entry since the pass read it, etcd's answer replaces it with one write.
    let fleet = Fleet::new();
    let a = fleet.replica();
    a.token("grant_type=client_credentials");
    let (record, txn) = planned_token_pass(&fleet, &a);
    let counting = CountingReads { store: &a.shared, reads: std::cell::Cell::new(0) };
    let response = fleet.etcd.txn(&txn.request);
    assert_eq!(settle(&counting, &txn, &response).unwrap(), Settled::Holds);
    assert_eq!(counting.reads.get(), 0, "the entries the pass read were written over at once");
    let revision = response.header.map(|header| header.revision).unwrap();
    for key in record.writes.keys() {
        let (bytes, _) = a.shared.get(key).unwrap().unwrap();
        let entry = super::cache::decode(&bytes).unwrap();
        assert_eq!((entry.mod_revision, entry.seen_revision), (revision, revision), "{key}");
    }
}

#[test]
fn a_newer_word_the_watch_cached_meanwhile_outlives_an_older_answer() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    a.token("grant_type=client_credentials");
    let (record, txn) = planned_token_pass(&fleet, &a);
    let response = fleet.etcd.txn(&txn.request);
    // Between the pass and etcd's answer, the watch caches a later revision of the bucket.
    let later = response.header.as_ref().map(|header| header.revision).unwrap() + 10;
    let key = record.writes.keys().next().unwrap();
    let newer = super::cache::Entry { mod_revision: later, seen_revision: later, value: b"newer" };
    assert!(super::cache::store(&a.shared, key, newer).unwrap());
    assert_eq!(settle(&a.shared, &txn, &response).unwrap(), Settled::Holds);
    let (bytes, _) = a.shared.get(key).unwrap().unwrap();
    assert_eq!(super::cache::decode(&bytes), Some(newer), "the answer, older, was not taken");
}

#[test]
fn tokens_survive_a_restart_and_registrations_reach_every_replica() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    drop(a);
    // A new process: empty shared data, buckets created by on_configure, nothing cached.
    let restarted = fleet.replica();
    assert_eq!(restarted.bearer_status(&token), 200);

    let registered = restarted.decide(
        |_| true,
        |gateway| {
            let basic = format!("Basic {}", encode_basic_credentials("admin", "admin"));
            let path = "/client-registration/v0.17/register";
            let request = EndpointRequest {
                client_address: None,
                method: "POST",
                path,
                authorization: Some(&basic),
                content_type: Some("application/json"),
                body: br#"{"clientName":"shop","owner":"admin","grantType":"client_credentials"}"#,
            };
            gateway.serve(&gateway.endpoint(path).unwrap(), &request)
        },
    );
    let registered: serde_json::Value = serde_json::from_slice(&registered.unwrap().body).unwrap();
    let (id, secret) = (field(&registered, "clientId"), field(&registered, "clientSecret"));
    let other = fleet.replica();
    let issued = other.endpoint("/token", (&id, &secret), "grant_type=client_credentials");
    assert_eq!(issued.status, 200, "{}", String::from_utf8_lossy(&issued.body));
}

#[test]
fn a_fresh_replicas_first_registration_holds_though_it_compares_every_registry_bucket() {
    // The admin's quota is counted over every registry bucket, and each is compared: 128 at the
    // default capacity, etcd's default --max-txn-ops. A fresh VM's passes carry the
    // credential-change record as well until one holds.
    let fleet = Fleet::new();
    for name in ["first", "second"] {
        let fresh = fleet.replica();
        let registered = fresh.register(name).expect("etcd takes the registration's transaction");
        assert_eq!(registered.status, 201, "{}", String::from_utf8_lossy(&registered.body));
        let again = fresh.register(&format!("{name}-again")).expect("the record is not carried again");
        assert_eq!(again.status, 201, "{}", String::from_utf8_lossy(&again.body));
    }
}

#[test]
fn expired_grants_leave_etcd_with_their_lease() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(fleet.grant_keys(), 1);
    // Validity 3600 s; the lease outlives the token by 10 to 20 s.
    fleet.clock.advance(3600 + 5);
    fleet.etcd.expire_leases(fleet.now());
    assert_eq!(fleet.grant_keys(), 1, "not before the lease's window has passed");
    fleet.clock.advance(20);
    fleet.etcd.expire_leases(fleet.now());
    assert_eq!(fleet.grant_keys(), 0);
    a.catch_up();
    assert_eq!(a.bearer_status(&token), 401);
}

#[test]
fn revoking_the_last_grant_of_a_bucket_deletes_its_key() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(a.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}")).status, 200);
    assert_eq!(fleet.grant_keys(), 0);
}

#[test]
fn after_a_compaction_the_cache_is_forgotten_and_read_again() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(b.bearer_status(&token), 200);
    assert_eq!(a.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}")).status, 200);
    fleet.etcd.compact();
    // B's watch was behind the compaction: it forgets its cache rather than trust it.
    b.catch_up();
    assert_eq!(b.bearer_status(&token), 401);
}

#[test]
fn an_answer_sent_before_a_compaction_cannot_outlive_the_watch_that_follows() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    // etcd answers B about the token's bucket; the answer is still on its way...
    let txn = b.bearer_txn(&token);
    let late = fleet.etcd.txn(&txn.request);
    // ...while A revokes the token and etcd compacts the history B's watch needed.
    assert_eq!(a.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}")).status, 200);
    fleet.etcd.compact();
    b.catch_up();
    // The watch now starts after the revocation and will never deliver it: the late answer
    // must not be cached, or B would let the revoked token through on its cache alone.
    let _ = settle(&b.shared, &txn, &late).unwrap();
    b.catch_up();
    assert_eq!(b.bearer_status(&token), 401);
}

#[test]
fn an_answer_sent_before_the_watch_starts_cannot_outlive_it() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    // A replica starting up: its first request asks etcd before its watch is open.
    let b = fleet.replica();
    let txn = b.bearer_txn(&token);
    let late = fleet.etcd.txn(&txn.request);
    assert_eq!(a.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}")).status, 200);
    // The watch opens after the revocation (from where etcd stands), then the answer lands.
    b.restart_watch();
    let _ = settle(&b.shared, &txn, &late).unwrap();
    b.catch_up();
    assert_eq!(b.bearer_status(&token), 401);
}

#[test]
fn a_secret_rolled_back_across_restarts_does_not_revive_the_tokens_its_change_ended() {
    let fleet = Fleet::new();
    let token = field(&fleet.replica().token("grant_type=client_credentials"), "access_token");
    let mut rotated: serde_json::Value = serde_json::from_str(&fleet.json).unwrap();
    rotated["applications"][0]["consumer_secret"] = "rotated-secret".into();
    fleet.clock.advance(1);
    // Every replica restarted with the new secret: the token dies by its fingerprint.
    let under_v2 = fleet.replica_with(&rotated.to_string());
    assert_eq!(under_v2.bearer_status(&token), 401);
    fleet.clock.advance(1);
    // Every replica restarted with the old secret again: new processes, empty shared data.
    // Only etcd remembers that the secret changed after the token was issued.
    let (back, other) = (fleet.replica(), fleet.replica());
    assert_eq!(back.bearer_status(&token), 401, "the rollback revived the token");
    assert_eq!(other.bearer_status(&token), 401);
    let fresh = field(&back.token("grant_type=client_credentials"), "access_token");
    assert_eq!(other.bearer_status(&fresh), 200, "tokens issued after the rollback work everywhere");
}

#[test]
fn a_replica_records_its_config_with_the_first_pass_that_judges_a_token() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    let pass = |authorization: Option<&str>, path: &str| {
        let view = FleetView::new(&b.shared);
        let staged = StagedMetrics::default();
        let read = b.record.for_pass(&view, &b.config).unwrap();
        let changes = read.clone().unwrap_or_default();
        let gateway = Gateway::new(&b.config, b.host_with(&view, &staged, &changes));
        let outcome = gateway.check_bearer(&ApiRequest { method: "GET", path, authorization });
        let mut record = view.into_record();
        let kept = b.record.keep_if_judged(&mut record, read);
        (outcome, record, kept)
    };
    // Before B has heard from etcd at all, a public resource reads nothing of etcd's: it
    // needs no etcd (it keeps working while etcd is away), and records nothing.
    let (outcome, record, kept) = pass(None, "/api/public/ping");
    assert!(matches!(outcome, Outcome::Forward(_)));
    assert_eq!(plan(&record, PREFIX, false, fleet.now()), Step::Deliver);
    assert_eq!(kept, None);
    b.catch_up();
    // Once B's watch has delivered the token's bucket and the record A wrote for the same
    // config, a token check reads the record with the bucket, needs no write, and the cache
    // answers alone.
    let authorization = format!("Bearer {token}");
    let (outcome, record, kept) = pass(Some(&authorization), "/api/orders");
    assert!(matches!(outcome, Outcome::Forward(_)));
    assert!(record.reads.contains_key(crate::state::credential_changes::FLEET_KEY));
    assert_eq!(plan(&record, PREFIX, false, fleet.now()), Step::Deliver);
    assert!(kept.is_some(), "the record read with a token check is kept");
}

/// Fleet mode: each replica enforces its tiers in its own window counters, read and written at
/// once (not held back with the pass's stats).
#[test]
fn staged_metrics_count_tier_windows_at_once() {
    use crate::host::Coordination;
    let windows = std::rc::Rc::new(crate::host::memory::RecordedMetrics::default());
    let staged = StagedMetrics::with_windows(windows.clone(), false);
    staged.restart_window(3, 7 << 32 | 1);
    staged.count_in_window(3);
    assert_eq!(windows.window(3), Some(7 << 32 | 2));
    assert_eq!(staged.window(3), Some(7 << 32 | 2));
    assert_eq!(StagedMetrics::default().window(3), None);
}

// ---------------------------------------------------------------------------------------------
// The authorization code flow across replicas

const SPA_CALLBACK: &str = "http://127.0.0.1:8080/console/callback";

fn code_flow_fleet() -> Fleet {
    let mut config: serde_json::Value = serde_json::from_str(&demo_with_lifecycle()).unwrap();
    config["applications"].as_array_mut().unwrap().push(serde_json::json!({
        "consumer_key": "demo-spa", "public": true, "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [SPA_CALLBACK], "scopes": ["orders:read"]
    }));
    Fleet::with_config(&config.to_string())
}

impl Replica<'_> {
    /// An unauthenticated request to one of the gateway's endpoints, through the fleet layer.
    fn anonymous(&self, method: &str, path: &str, body: &str) -> Response {
        self.decide(
            |_| true,
            |gateway| {
                let endpoint = gateway.endpoint(path).unwrap();
                let request = EndpointRequest {
                    client_address: None,
                    method,
                    path,
                    authorization: None,
                    content_type: Some(FORM),
                    body: body.as_bytes(),
                };
                gateway.serve(&endpoint, &request)
            },
        )
        .unwrap()
    }
}

fn login_handle(page: &Response) -> String {
    crate::gateway::login_handle_in(&String::from_utf8_lossy(&page.body)).unwrap().to_owned()
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    crate::oauth::form::FormParams::parse(query.as_bytes()).ok()?.get(name).map(str::to_owned)
}

#[test]
fn a_sign_in_started_on_one_replica_finishes_on_another_and_its_code_works_once_anywhere() {
    let fleet = code_flow_fleet();
    let (a, b) = (fleet.replica(), fleet.replica());
    let query = format!(
        "/authorize?response_type=code&client_id=demo-spa&redirect_uri={}&state=s1\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        crate::oauth::credentials::form_encode(SPA_CALLBACK)
    );
    // The login page on A; B has heard nothing of it, yet takes its form.
    let page = a.anonymous("GET", &query, "");
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let handle = login_handle(&page);
    let back = b.anonymous("POST", "/authorize", &format!("handle={handle}&username=admin&password=admin"));
    assert_eq!(back.status, 302, "{}", String::from_utf8_lossy(&back.body));
    let location = back.header("location").unwrap().to_owned();
    assert_eq!(query_param(&location, "state").as_deref(), Some("s1"));
    // The handle is spent fleet-wide: A refuses it too, watch or no watch.
    let again = a.anonymous("POST", "/authorize", &format!("handle={handle}&username=admin&password=admin"));
    assert_eq!(again.status, 400);

    // The code redeemed on A (which did not issue it), its token good on B.
    let code = query_param(&location, "code").unwrap();
    let redeem = format!(
        "grant_type=authorization_code&client_id=demo-spa&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        crate::oauth::credentials::form_encode(SPA_CALLBACK)
    );
    let tokens = a.anonymous("POST", "/token", &redeem);
    assert_eq!(tokens.status, 200, "{}", String::from_utf8_lossy(&tokens.body));
    let tokens: serde_json::Value = serde_json::from_slice(&tokens.body).unwrap();
    let access = field(&tokens, "access_token");
    assert_eq!(b.bearer_status(&access), 200);

    // A replay on B is refused and revokes what the code produced, on every replica.
    let replay = b.anonymous("POST", "/token", &redeem);
    assert_eq!(replay.status, 400);
    assert_eq!(b.bearer_status(&access), 401);
    a.catch_up();
    assert_eq!(a.bearer_status(&access), 401);
}

#[test]
fn replicas_that_both_start_a_sign_in_cold_agree_on_one_handle_key() {
    let fleet = code_flow_fleet();
    let (a, b) = (fleet.replica(), fleet.replica());
    let query = format!(
        "/authorize?response_type=code&client_id=demo-spa&redirect_uri={}&state=s1\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        crate::oauth::credentials::form_encode(SPA_CALLBACK)
    );
    // A makes the key; B, which has heard nothing of it, tries to make its own, is refused by
    // etcd, and reads A's back.
    let (page_a, page_b) = (a.anonymous("GET", &query, ""), b.anonymous("GET", &query, ""));
    assert_eq!((page_a.status, page_b.status), (200, 200));
    for (page, other) in [(&page_a, &b), (&page_b, &a)] {
        let body = format!("handle={}&username=admin&password=admin", login_handle(page));
        let back = other.anonymous("POST", "/authorize", &body);
        assert_eq!(back.status, 302, "{}", String::from_utf8_lossy(&back.body));
    }
}

// The heartbeat (`heartbeat.rs`): when the watcher may say its cache is current.

/// A progress answer from a member whose own store stops at `revision` (etcd answers those
/// without the quorum), as `watch::apply` reads it.
fn progress_answer(revision: i64) -> crate::fleet::etcd::WatchResponse {
    crate::fleet::etcd::WatchResponse {
        header: Some(crate::fleet::etcd::ResponseHeader { revision }),
        ..Default::default()
    }
}

/// Applies one watch message to `replica`'s cache and returns what the heartbeat says.
fn watch_delivers(
    replica: &Replica,
    heartbeat: &mut Heartbeat,
    message: &crate::fleet::etcd::WatchResponse,
) -> Option<u64> {
    match watch::apply(&replica.shared, &*replica.epochs, PREFIX, message, Vec::new().into_iter()).unwrap() {
        watch::Heard::UpTo(revision) => heartbeat.watch_reached(revision),
        other => panic!("expected progress, got {other:?}"),
    }
}

#[test]
fn a_watch_on_a_member_behind_the_quorum_never_vouches_for_a_revoked_token() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    let mut heartbeat = Heartbeat::default();
    // A's watch sits on a member that stops at this revision (partitioned away).
    let member_revision = fleet.etcd.revision();
    assert_eq!(b.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}")).status, 200);
    for tick in 0..10u64 {
        let now = 1_000 + tick * 500;
        assert!(heartbeat.read_due(now, 2_000));
        heartbeat.read_sent(now);
        // The quorum read says where etcd stands: past the revocation.
        assert_eq!(heartbeat.read_answered(fleet.etcd.revision(), now + 5), None);
        let progress = progress_answer(member_revision);
        assert_eq!(watch_delivers(&a, &mut heartbeat, &progress), None, "tick {tick}: stamped");
    }
    assert!(heartbeat.watch_lags(1_000 + 9 * 500, 3_000), "the watch should be moved");
}

#[test]
fn the_heartbeat_is_when_the_read_the_watch_has_reached_was_sent() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    let mut heartbeat = Heartbeat::default();
    let before = fleet.etcd.revision();
    assert_eq!(b.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}")).status, 200);
    heartbeat.read_sent(7_000);
    assert_eq!(heartbeat.read_answered(fleet.etcd.revision(), 7_010), None, "the watch is not there yet");
    assert_eq!(watch_delivers(&a, &mut heartbeat, &progress_answer(before)), None);
    assert!(!heartbeat.watch_lags(7_010 + 3_000, 3_000), "inside the lag limit");
    // The revocation's event arrives: the cache holds everything committed before 7000.
    let events = fleet.etcd.watch_from(before + 1);
    assert_eq!(watch_delivers(&a, &mut heartbeat, &events), Some(7_000));
    assert_eq!(a.bearer_status(&token), 401);
    assert!(!heartbeat.watch_lags(20_000, 3_000), "nothing left to reach");
    // A later read the watch is already past stamps at once.
    heartbeat.read_sent(7_500);
    assert_eq!(heartbeat.read_answered(fleet.etcd.revision(), 7_520), Some(7_500));
}

#[test]
fn of_several_reads_reached_the_latest_one_stamps() {
    let mut heartbeat = Heartbeat::default();
    for (sent_at, revision) in [(1_000, 10), (1_500, 12), (2_000, 15)] {
        heartbeat.read_sent(sent_at);
        assert_eq!(heartbeat.read_answered(revision, sent_at + 10), None);
    }
    assert_eq!(heartbeat.watch_reached(9), None);
    assert_eq!(heartbeat.watch_reached(13), Some(1_500));
    assert_eq!(heartbeat.watch_reached(14), None, "the read at 2000 needs 15");
    assert_eq!(heartbeat.watch_reached(15), Some(2_000));
}

#[test]
fn a_failed_read_stamps_nothing_and_the_next_tick_sends_another() {
    let mut heartbeat = Heartbeat::default();
    heartbeat.watch_reached(50);
    heartbeat.read_sent(1_000);
    assert!(!heartbeat.read_due(1_500, 2_000), "one read out at a time");
    heartbeat.read_failed();
    assert_eq!(heartbeat.read_answered(40, 1_600), None, "an answer to no read out stamps nothing");
    assert!(heartbeat.read_due(1_500, 2_000));
    heartbeat.read_sent(1_500);
    assert!(heartbeat.read_due(3_501, 2_000), "a read never answered is taken as lost");
}

#[test]
fn a_reopened_stream_gets_the_lag_limit_again() {
    let mut heartbeat = Heartbeat::default();
    heartbeat.read_sent(1_000);
    assert_eq!(heartbeat.read_answered(10, 1_010), None);
    assert!(heartbeat.watch_lags(4_011, 3_000));
    heartbeat.watch_opened(4_011);
    assert!(!heartbeat.watch_lags(6_000, 3_000));
    assert!(heartbeat.watch_lags(7_012, 3_000));
}

#[test]
fn a_created_watch_vouches_for_nothing_before_its_events() {
    // etcd's `created` answer carries etcd's revision, not the watch's: the events from the
    // start revision on are still to come, so neither the resume point nor the heartbeat may
    // move on it.
    let fleet = Fleet::new();
    let a = fleet.replica();
    let created = crate::fleet::etcd::WatchResponse {
        header: Some(crate::fleet::etcd::ResponseHeader { revision: 40 }),
        created: true,
        ..Default::default()
    };
    let heard = watch::apply(&a.shared, &*a.epochs, PREFIX, &created, Vec::new().into_iter()).unwrap();
    assert_eq!(heard, watch::Heard::Opened);
}

#[test]
fn the_heartbeat_read_is_one_linearizable_count_on_one_key() {
    let read = crate::fleet::heartbeat::read_request(PREFIX);
    assert_eq!(read.key, PREFIX.as_bytes());
    assert!(read.range_end.is_empty(), "one key, not the prefix's range");
    assert!(read.count_only);
    assert_eq!(read.limit, 1);
}

/// What the watcher watches and the cache holds is what fleet mode keeps in etcd: a table
/// declared at home in etcd but left out of the gateway's keys would be written by each
/// replica alone, and one the gateway listed but `state::keys` kept per Envoy never shared.
#[test]
fn the_store_layouts_fleet_keys_are_exactly_the_fleet_tables_buckets() {
    use crate::state::keys::{table_of_bucket, Home, TABLES};
    let fleet = code_flow_fleet();
    let keys = fleet.replica().config.store_layout().fleet_keys();
    let outside: Vec<&String> = keys.iter().filter(|key| !super::cache::is_fleet_key(key)).collect();
    assert!(outside.is_empty(), "not kept in etcd: {outside:?}");
    let mut listed: Vec<&str> =
        keys.iter().filter_map(|key| table_of_bucket(key)).map(|table| table.name).collect();
    listed.sort_unstable();
    listed.dedup();
    let mut in_etcd: Vec<&str> =
        TABLES.iter().filter(|table| table.home == Home::Etcd).map(|table| table.name).collect();
    in_etcd.sort_unstable();
    assert_eq!(listed, in_etcd);
}
