//! Fleet mode over the in-memory etcd: replicas that share one etcd, each with its own cache
//! and worker memory, driven the way the filter drives them. This file holds the rig; the tests
//! are in one file per concern.

use super::credentials::record_first;
use super::heartbeat::Heartbeat;
use super::memory_etcd::MemoryEtcd;
use super::watch;
use crate::config::tests::demo_with_lifecycle;
use crate::config::Config;
use crate::fleet::plan::{plan, settle, Settled, Step, ETCD_MAX_TXN_OPS};
use crate::fleet::view::{FleetView, StagedMetrics};
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
    /// Revokes `token` as the demo app (RFC 7009) and gives the status.
    fn revoke(&self, token: &str) -> u16 {
        self.endpoint("/revoke", ("demo-app", "demo-secret"), &format!("token={token}")).status
    }

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
            watch::Heard::Opened | watch::Heard::Refused => {}
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
    fn bearer_txn(&self, token: &str) -> crate::fleet::plan::FleetTxn {
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

/// The demo SPA's redirect URI.
const SPA_CALLBACK: &str = "http://127.0.0.1:8080/console/callback";

/// A fleet with the code flow on (the demo SPA's sign-in).
fn code_flow_fleet() -> Fleet {
    let mut config: serde_json::Value = serde_json::from_str(&demo_with_lifecycle()).unwrap();
    config["applications"].as_array_mut().unwrap().push(serde_json::json!({
        "consumer_key": "demo-spa", "public": true, "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [SPA_CALLBACK], "scopes": ["orders:read"]
    }));
    Fleet::with_config(&config.to_string())
}

mod code_flow;
mod heartbeat;
mod store;
mod tokens;
