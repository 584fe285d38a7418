//! A request's decision in fleet mode: a pass over this Envoy's cache, then, when
//! [`crate::fleet::plan`] says so, etcd calls (a `LeaseGrant` when a write needs a new lease,
//! then one `Txn`) while the stream stays paused, and the answer once etcd agrees.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use prost::Message;
use proxy_wasm::hostcalls;

use super::decision::Answer;
use super::envoy_host::{Backing, EnvoyMetrics, EnvoySharedData};
use crate::config::{Config, FleetConfig};
use crate::fleet::auth::{self, Recovery, SharedToken, TOKEN_METADATA};
use crate::fleet::credentials::{record_first, CredentialRecord};
use crate::fleet::etcd::{
    AuthenticateResponse, LeaseGrantRequest, TxnResponse, AUTH_SERVICE, KV_SERVICE, LEASE_SERVICE,
};
use crate::fleet::plan::{plan, settle, FleetTxn, Settled, Step};
use crate::fleet::view::{FleetView, HeldStats, PassRecord, StagedMetrics};
use crate::gateway::Response;
use crate::host::metrics::Metric;
use crate::host::{Clock, Coordination, Metrics};
use crate::state::credential_changes::CredentialChanges;

/// Passes a decision may take (each after another replica changed what it read).
const MAX_PASSES: usize = 5;
/// etcd's answer to a `LeaseGrant` for an id that exists: the lease is there, as wanted.
const GRPC_FAILED_PRECONDITION: u32 = 9;
/// The member could not be reached (stopped, restarting): the next call goes to another one.
const GRPC_UNAVAILABLE: u32 = 14;
/// Calls re-sent after `UNAVAILABLE`: with three members, one down is never seen twice in a row
/// once Envoy's health check has taken it out of the rotation.
const RETRIES_ON_UNAVAILABLE: u8 = 2;

/// Lease ids this VM has granted (or found granted): a write needs a `LeaseGrant` only for a
/// lease not in here. One per VM; leases are per minute, so it stays small for a day.
#[derive(Default)]
pub struct GrantedLeases(RefCell<BTreeSet<i64>>);

impl GrantedLeases {
    fn knows(&self, id: i64) -> bool {
        self.0.try_borrow().is_ok_and(|ids| ids.contains(&id))
    }
    fn remember(&self, id: i64) {
        if let Ok(mut ids) = self.0.try_borrow_mut() {
            // Forget leases from past days rather than grow: a stale id costs one extra call.
            if ids.len() > 4096 {
                ids.clear();
            }
            ids.insert(id);
        }
    }
}

/// One pass: the decision over the cache and what it read and wrote.
pub struct Pass {
    pub answer: Answer,
    pub record: PassRecord,
    pub stats: HeldStats,
    /// The credential-change record the pass read through the cache, to keep once it holds.
    credentials: Option<CredentialChanges>,
}

/// A decision waiting for etcd.
pub struct Waiting {
    pub answer: Answer,
    pub stats: HeldStats,
    pub txn: FleetTxn,
    pub passes: usize,
    credentials: Option<CredentialChanges>,
    /// The lease being granted, when the call out is a `LeaseGrant`.
    lease_call: Option<i64>,
    /// Re-sends left for the call out.
    retries: u8,
    /// The transaction commits only the credential-change record the pass carried
    /// ([`record_first`]): once it holds, the pass runs again without it.
    record_first: bool,
    /// etcd's token for this pass's calls (see [`crate::fleet::auth`]): read from shared data
    /// once, by the pass's first call, and only when etcd wants one.
    token: Option<SharedToken>,
    /// The pass has recovered from an ended token once already.
    recovered: bool,
    /// The call out is this worker's own `Authenticate`, after etcd refused the token.
    authenticating: bool,
}

/// What to do after a pass or an etcd answer.
pub enum Next {
    /// Send this answer (stats reported).
    Deliver(Answer),
    /// A call to etcd is out: wait for its answer.
    Wait(Box<Waiting>),
    /// etcd could not be asked, or failed: 503, nothing written.
    Unavailable,
    /// Another replica changed what the pass read: run the pass again.
    Again(usize),
}

pub struct FleetClient {
    pub config: FleetConfig,
    pub metrics: Rc<EnvoyMetrics>,
    pub leases: Rc<GrantedLeases>,
    /// This VM's standing with the fleet's credential-change record.
    pub record: CredentialRecord,
    /// This VM's copy of the record (the root's, refreshed by its timer).
    pub changes: Rc<RefCell<CredentialChanges>>,
}

impl FleetClient {
    /// Runs `decide` over this Envoy's cache with stats held back (the tiers' window counters
    /// are this Envoy's `metrics`, at once), judging tokens by the credential-change record
    /// etcd holds: this VM's copy once confirmed, else the record read (and recorded) in the
    /// pass itself (see [`crate::fleet::credentials`]). `remembers`: the pass may answer from
    /// this worker's memory of tokens (see [`StagedMetrics::with_windows`]).
    pub fn run_pass(
        &self,
        config: &Config,
        clock: &dyn Clock,
        remembers: bool,
        decide: impl FnOnce(Backing<'_>) -> Answer,
    ) -> Pass {
        let view = FleetView::new(&EnvoySharedData);
        let windows: Rc<dyn Coordination> = self.metrics.clone();
        let staged = StagedMetrics::with_windows(windows, remembers && self.record.is_known());
        let backing = |credential_changes| Backing {
            shared: &view,
            metrics: &staged,
            coordination: &staged,
            credential_changes,
            clock,
        };
        let (answer, credentials) = match self.record.for_pass(&view, config) {
            Ok(Some(read)) => (decide(backing(&read)), Some(read)),
            Ok(None) => match self.changes.try_borrow() {
                Ok(changes) => (decide(backing(&changes)), None),
                Err(_) => return Self::refused(),
            },
            Err(error) => {
                log::debug!("fleet: cannot read the credential-change record: {error:?}");
                return Self::refused();
            }
        };
        let mut record = view.into_record();
        let credentials = self.record.keep_if_judged(&mut record, credentials);
        Pass { answer, record, stats: staged.into_held(), credentials }
    }

    /// A pass that could not run: 503, nothing read or written.
    fn refused() -> Pass {
        Pass {
            answer: Answer::Response(Response::unavailable()),
            record: PassRecord::default(),
            stats: HeldStats::default(),
            credentials: None,
        }
    }

    /// A pass holds (its writes are in the cache): its stats and epoch move go out, and the
    /// record it read is etcd's, and this VM's from now on.
    fn holds(&self, stats: HeldStats, credentials: Option<CredentialChanges>) {
        stats.report(self.metrics.as_ref(), self.metrics.as_ref());
        let Some(credentials) = credentials else { return };
        if let Ok(mut changes) = self.changes.try_borrow_mut() {
            *changes = credentials;
            self.record.confirmed();
        }
    }

    /// True when this Envoy's watch has been silent longer than the staleness window: then
    /// no token check may rest on the cache alone.
    pub fn cache_is_stale(&self, clock: &dyn Clock) -> bool {
        let heard = self.metrics.get(Metric::FleetWatchHeartbeat).unwrap_or(0);
        let now = clock.now_millis().unwrap_or(u64::MAX);
        now.saturating_sub(heard) > self.config.staleness_ms
    }

    /// After a pass: deliver, or send what etcd must confirm or commit first.
    pub fn after_pass(&self, pass: Pass, clock: &dyn Clock, confirm: bool, passes: usize) -> Next {
        // A pass that read and wrote nothing of etcd's (a hit from a worker's memory) has
        // nothing to plan: no clock read (a host call) for it.
        if pass.record.reads.is_empty() && pass.record.writes.is_empty() {
            self.holds(pass.stats, pass.credentials);
            return Next::Deliver(pass.answer);
        }
        let Some(now) = clock.now_millis() else { return self.failed() };
        match plan(&pass.record, &self.config.prefix, confirm, now) {
            Step::Deliver => {
                self.holds(pass.stats, pass.credentials);
                Next::Deliver(pass.answer)
            }
            Step::Ask(txn) => {
                let record_txn = pass
                    .credentials
                    .as_ref()
                    .and_then(|_| record_first(&pass.record, &txn, &self.config.prefix, now));
                let record_first = record_txn.is_some();
                let txn = record_txn.unwrap_or(txn);
                let waiting = Waiting {
                    answer: pass.answer,
                    stats: pass.stats,
                    txn,
                    passes,
                    credentials: pass.credentials,
                    lease_call: None,
                    retries: 0,
                    record_first,
                    token: None,
                    recovered: false,
                    authenticating: false,
                };
                self.send_next(waiting)
            }
        }
    }

    /// After etcd answered the call `waiting` made.
    pub fn after_answer(&self, mut waiting: Waiting, grpc_status: u32, body: Option<Vec<u8>>) -> Next {
        if waiting.authenticating {
            return self.after_authenticate(waiting, grpc_status, body);
        }
        if grpc_status != 0 && self.config.login.is_some() && token_ended(grpc_status) {
            self.metrics.add(Metric::FleetEtcdTokenRefusals, 1);
            return self.recover(waiting);
        }
        // A re-sent Txn that etcd had applied after all fails its compares and runs the pass
        // again, which then sees its own write: at worst a grant nobody was told about, which
        // its lease ends.
        if grpc_status == GRPC_UNAVAILABLE && waiting.retries < RETRIES_ON_UNAVAILABLE {
            waiting.retries += 1;
            waiting.lease_call = None;
            return self.send_next(waiting);
        }
        if grpc_status != 0 {
            log::debug!("etcd call failed: grpc status {grpc_status} after {} re-sends", waiting.retries);
        }
        waiting.retries = 0;
        if let Some(lease) = waiting.lease_call.take() {
            if grpc_status != 0 && grpc_status != GRPC_FAILED_PRECONDITION {
                return self.failed();
            }
            self.leases.remember(lease);
            return self.send_next(waiting);
        }
        if grpc_status != 0 {
            return self.failed();
        }
        let Some(response) = body.and_then(|body| TxnResponse::decode(body.as_slice()).ok()) else {
            return self.failed();
        };
        match settle(&EnvoySharedData, &waiting.txn, &response) {
            // The record holds; the pass itself was never sent: it runs again, without the
            // record now, and counts its stats then.
            Ok(Settled::Holds) if waiting.record_first => {
                self.holds(HeldStats::default(), waiting.credentials);
                let passes = waiting.passes.saturating_add(1);
                if passes < MAX_PASSES {
                    Next::Again(passes)
                } else {
                    self.failed()
                }
            }
            Ok(Settled::Holds) => {
                self.holds(waiting.stats, waiting.credentials);
                Next::Deliver(waiting.answer)
            }
            // The failure branch put etcd's newer words into the cache, before the watch: a
            // worker that remembered a token they end must read them.
            Ok(Settled::Stale) if waiting.passes.saturating_add(1) < MAX_PASSES => {
                self.metrics.tokens_changed();
                self.metrics.add(Metric::FleetConflicts, 1);
                Next::Again(waiting.passes.saturating_add(1))
            }
            Ok(Settled::Stale) => {
                self.metrics.tokens_changed();
                log::debug!("fleet: still stale after {} passes", waiting.passes.saturating_add(1));
                self.failed()
            }
            Err(error) => {
                log::debug!("fleet: cannot settle: {error:?}");
                self.failed()
            }
        }
    }

    /// etcd refused the call for its token: send it again once, with a token another context
    /// published meanwhile or with one this worker asks for (see [`auth::recover`]).
    fn recover(&self, mut waiting: Waiting) -> Next {
        let used = waiting.token.as_ref().map(|shared| shared.token.as_slice()).unwrap_or_default();
        let current = auth::read(&EnvoySharedData).ok().flatten();
        let recovery = auth::recover(used, current.as_ref(), waiting.recovered);
        waiting.recovered = true;
        waiting.lease_call = None;
        match recovery {
            Recovery::ResendWith(_) => {
                waiting.token = current;
                self.send_next(waiting)
            }
            Recovery::Authenticate => {
                let Some(login) = &self.config.login else { return self.failed() };
                waiting.authenticating = true;
                if self.call(AUTH_SERVICE, "Authenticate", &auth::authenticate_request(login), None) {
                    Next::Wait(Box::new(waiting))
                } else {
                    self.failed()
                }
            }
            Recovery::GiveUp => {
                log::debug!("etcd refused a renewed token");
                self.failed()
            }
        }
    }

    /// The answer to this worker's own `Authenticate`: its token is adopted (unless another
    /// new one won) and the call sent again.
    fn after_authenticate(&self, mut waiting: Waiting, grpc_status: u32, body: Option<Vec<u8>>) -> Next {
        waiting.authenticating = false;
        let fresh = (grpc_status == 0)
            .then_some(body)
            .flatten()
            .and_then(|body| AuthenticateResponse::decode(body.as_slice()).ok())
            .map(|response| response.token)
            .filter(|token| !token.is_empty());
        let (Some(fresh), Some(replaced)) = (fresh, waiting.token.as_ref()) else {
            log::debug!("etcd refused the login (grpc status {grpc_status})");
            return self.failed();
        };
        match auth::adopt(&EnvoySharedData, fresh.as_bytes(), replaced) {
            Ok(token) => {
                waiting.token = Some(SharedToken { token, cas: 0 });
                self.send_next(waiting)
            }
            Err(error) => {
                log::debug!("cannot share etcd's token: {error:?}");
                self.failed()
            }
        }
    }

    /// Grants the next lease the transaction needs, or sends the transaction.
    fn send_next(&self, mut waiting: Waiting) -> Next {
        if self.config.login.is_some() && waiting.token.is_none() {
            // The watcher authenticates before anything else; until it has, no call can pass.
            let Ok(Some(token)) = auth::read(&EnvoySharedData) else { return self.failed() };
            waiting.token = Some(token);
        }
        let token = waiting.token.as_ref().map(|shared| shared.token.as_slice());
        let lease = waiting.txn.leases.iter().find(|lease| !self.leases.knows(lease.id)).cloned();
        let sent = match &lease {
            Some(lease) => {
                waiting.lease_call = Some(lease.id);
                let request = LeaseGrantRequest { ttl: lease.ttl, id: lease.id };
                self.call(LEASE_SERVICE, "LeaseGrant", &request, token)
            }
            None => self.call(KV_SERVICE, "Txn", &waiting.txn.request, token),
        };
        if sent {
            Next::Wait(Box::new(waiting))
        } else {
            self.failed()
        }
    }

    /// Sends one unary call, with etcd's `token` as its metadata when there is one.
    fn call(&self, service: &str, method: &str, message: &impl Message, token: Option<&[u8]>) -> bool {
        let bytes = message.encode_to_vec();
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let metadata = token.map(|token| vec![(TOKEN_METADATA, token)]).unwrap_or_default();
        // Errors here (a cluster with no healthy host, say) come back at once, not as a panic.
        hostcalls::dispatch_grpc_call(&self.config.cluster, service, method, metadata, Some(&bytes), timeout)
            .is_ok()
    }

    fn failed(&self) -> Next {
        self.metrics.add(Metric::FleetEtcdFailures, 1);
        Next::Unavailable
    }
}

/// True when etcd refused the call just answered for its token. Asks the host for the call's
/// status message, so only on a failure.
fn token_ended(grpc_status: u32) -> bool {
    let message = hostcalls::get_grpc_status().ok().and_then(|(_, message)| message);
    auth::token_ended(grpc_status, message.as_deref())
}
