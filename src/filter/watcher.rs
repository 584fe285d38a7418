//! Fleet mode's one etcd Watch per Envoy: a root context of Envoy's `envoy.bootstrap.wasm`
//! singleton service (root id [`WATCHER_ROOT_ID`]) in the HTTP filter's `vm_id`, so what it
//! writes into shared data every worker reads at once.
//!
//! Envoy never reopens a closed gRPC stream, so the timer does: with backoff, from the revision
//! after the last one applied, so nothing in between is missed. With none to resume from (at
//! start-up, after a compaction) it first reads where etcd stands, `R`, forgets every cache
//! entry older than `R` ([`crate::fleet::cache::forget_below`]) and watches from `R + 1`. Each tick also asks the watch
//! where it stands (a progress request) and sends etcd one linearizable `Range`; the heartbeat
//! workers check before they let their cache answer alone is stamped only once the watch has
//! reached that read's revision ([`crate::fleet::heartbeat`]). The read is a unary call from
//! this root context, whose answer Envoy delivers back to it (`on_grpc_call_response`).
//!
//! With etcd's user/password authentication configured, the watcher also keeps the Envoy's
//! token ([`crate::fleet::auth`]): it authenticates before anything else, opens the watch only
//! once it has a token, and authenticates again every renewal period, or at once when etcd
//! refuses one of its calls, or the watch's creation, for the token.

use std::time::Duration;

use prost::Message;
use proxy_wasm::hostcalls;
use proxy_wasm::types::BufferType;

use super::envoy_host::{EnvoyClock, EnvoyMetrics, EnvoySharedData};
use crate::config::FleetConfig;
use crate::fleet::auth::{self, Renewal, TOKEN_METADATA};
use crate::fleet::etcd::{
    AuthenticateResponse, RangeResponse, WatchResponse, AUTH_SERVICE, KV_SERVICE, WATCH_SERVICE,
};
use crate::fleet::heartbeat::{self, Heartbeat};
use crate::fleet::watch::{self, Heard};
use crate::host::metrics::Metric;
use crate::host::{Clock, Metrics};

/// The root id of the watcher's bootstrap service (`envoy/fleet/envoy.yaml`).
pub const WATCHER_ROOT_ID: &str = "tokengate_fleet_watcher";
const FIRST_BACKOFF_MS: u64 = 200;
const MAX_BACKOFF_MS: u64 = 5_000;
/// A stream that answers no progress request for this long is treated as dead and reopened
/// (a hung etcd member keeps the HTTP/2 connection up).
const SILENCE_LIMIT_MS: u64 = 3_000;
/// A stream still behind a revision a linearizable read returned this long after the answer
/// sits on a member behind the quorum: it is reopened, so that Envoy may pick another member.
const LAG_LIMIT_MS: u64 = 3_000;

pub struct Watcher {
    context_id: u32,
    fleet: FleetConfig,
    /// Every fleet cache key of this Envoy, forgotten when etcd compacts past the watch.
    table_keys: Vec<String>,
    stream: Option<u32>,
    /// The last revision applied to the cache; the watch resumes after it.
    applied: i64,
    backoff_ms: u64,
    next_open_at: u64,
    heard_at: u64,
    /// When the heartbeat may be stamped, from the quorum reads and the watch's progress.
    heartbeat: Heartbeat,
    /// The quorum read out, if any.
    read: Option<u32>,
    /// The read out that says where a watch with no revision to resume from starts, if any.
    start_read: Option<u32>,
    /// When to authenticate, if etcd wants a user and password.
    renewal: Option<Renewal>,
}

impl Watcher {
    pub fn new(context_id: u32, fleet: FleetConfig, table_keys: Vec<String>) -> Self {
        Watcher {
            context_id,
            table_keys,
            stream: None,
            applied: 0,
            backoff_ms: FIRST_BACKOFF_MS,
            next_open_at: 0,
            heard_at: 0,
            heartbeat: Heartbeat::default(),
            read: None,
            start_read: None,
            renewal: fleet.login.as_ref().map(|login| Renewal::new(login.renewal_ms)),
            fleet,
        }
    }

    pub fn tick(&mut self, metrics: &EnvoyMetrics) {
        let Some(now) = EnvoyClock.now_millis() else { return };
        self.renew(now);
        if self.renewal.as_ref().is_some_and(|renewal| !renewal.has_token()) {
            // No call to etcd goes out without a token: it would only be refused.
            return;
        }
        match self.stream {
            Some(token) if now.saturating_sub(self.heard_at) > SILENCE_LIMIT_MS => {
                log::warn!("#{} etcd watch silent for {} ms; reopening", self.context_id, SILENCE_LIMIT_MS);
                let _ = hostcalls::cancel_grpc_stream(token);
                self.closed(now, metrics);
            }
            Some(token) if self.heartbeat.watch_lags(now, LAG_LIMIT_MS) => {
                log::warn!(
                    "#{} etcd watch behind the quorum for {} ms; reopening",
                    self.context_id,
                    LAG_LIMIT_MS
                );
                let _ = hostcalls::cancel_grpc_stream(token);
                self.closed(now, metrics);
            }
            Some(token) => {
                self.send_read(now);
                let sent = watch::progress_request().encode_to_vec();
                if hostcalls::send_grpc_stream_message(token, Some(&sent), false).is_err() {
                    self.closed(now, metrics);
                }
            }
            None if self.start_read.is_some() => {}
            None if now >= self.next_open_at && self.applied == 0 => self.send_start_read(now, metrics),
            None if now >= self.next_open_at => self.open(now, metrics),
            None => {}
        }
    }

    /// Sends `Authenticate` when the renewal says so.
    fn renew(&mut self, now: u64) {
        let (Some(renewal), Some(login)) = (self.renewal.as_mut(), self.fleet.login.as_ref()) else { return };
        if !renewal.due(now, self.fleet.timeout_ms.saturating_mul(2)) {
            return;
        }
        let request = auth::authenticate_request(login).encode_to_vec();
        let timeout = Duration::from_millis(self.fleet.timeout_ms);
        match hostcalls::dispatch_grpc_call(
            &self.fleet.cluster,
            AUTH_SERVICE,
            "Authenticate",
            Vec::new(),
            Some(&request),
            timeout,
        ) {
            Ok(call) => renewal.sent(call, now),
            Err(status) => {
                log::warn!("#{} cannot send etcd's Authenticate: {status:?}", self.context_id);
                renewal.failed(now);
            }
        }
    }

    /// etcd's answer to `Authenticate`: the token goes into shared data for every worker.
    fn on_authenticated(&mut self, status: u32, size: usize) {
        let now = EnvoyClock.now_millis().unwrap_or(0);
        let token = (status == 0)
            .then(|| hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size).ok().flatten())
            .flatten()
            .and_then(|bytes| AuthenticateResponse::decode(bytes.as_slice()).ok())
            .map(|response| response.token)
            .filter(|token| !token.is_empty());
        let Some(renewal) = self.renewal.as_mut() else { return };
        let published = match token {
            Some(token) => auth::publish(&EnvoySharedData, token.as_bytes()),
            None => {
                // The user name is the operator's, not a secret; the password never appears.
                // Not a `fleet.etcd_failures`: no request is refused for it while the last
                // token lives, and every one is once it has ended.
                log::warn!(
                    "#{} etcd did not authenticate user {:?} (grpc status {status})",
                    self.context_id,
                    self.fleet.login.as_ref().map_or("", |login| login.user.as_str())
                );
                renewal.failed(now);
                return;
            }
        };
        match published {
            Ok(()) => renewal.answered(now),
            Err(error) => {
                log::warn!("#{} cannot share etcd's token: {error:?}", self.context_id);
                renewal.failed(now);
            }
        }
    }

    /// The metadata every call carries: etcd's token, when etcd wants one (read from shared
    /// data, where a worker may have put a newer one than the watcher's own).
    fn token(&self) -> Option<Vec<u8>> {
        self.fleet.login.as_ref()?;
        auth::read(&EnvoySharedData).ok().flatten().map(|shared| shared.token)
    }

    /// A call of the watcher's failed: if etcd refused its token, authenticate at once.
    fn check_token(&mut self, status: u32, metrics: &EnvoyMetrics) {
        let Some(renewal) = self.renewal.as_mut() else { return };
        let message = hostcalls::get_grpc_status().ok().and_then(|(_, message)| message);
        if auth::token_ended(status, message.as_deref()) {
            metrics.add(Metric::FleetEtcdTokenRefusals, 1);
            renewal.token_ended();
        }
    }

    /// Sends one linearizable `Range` (see [`heartbeat::read_request`]): where etcd stands.
    fn dispatch_read(&self) -> Result<u32, proxy_wasm::types::Status> {
        let request = heartbeat::read_request(&self.fleet.prefix).encode_to_vec();
        let timeout = Duration::from_millis(self.fleet.timeout_ms);
        let token = self.token();
        let metadata = token.as_deref().map(|token| vec![(TOKEN_METADATA, token)]).unwrap_or_default();
        hostcalls::dispatch_grpc_call(
            &self.fleet.cluster,
            KV_SERVICE,
            "Range",
            metadata,
            Some(&request),
            timeout,
        )
    }

    /// Asks where etcd stands before a watch with no revision to resume from (a linearizable
    /// read: everything committed before it is at or below its revision).
    fn send_start_read(&mut self, now: u64, metrics: &EnvoyMetrics) {
        match self.dispatch_read() {
            Ok(token) => self.start_read = Some(token),
            Err(status) => {
                log::warn!("#{} cannot read etcd's revision: {status:?}", self.context_id);
                self.closed(now, metrics);
            }
        }
    }

    /// The answer to the start read: the cache forgets what is older, the watch opens after it.
    fn on_start_read_answer(&mut self, status: u32, size: usize, metrics: &EnvoyMetrics) {
        self.start_read = None;
        let now = EnvoyClock.now_millis().unwrap_or(0);
        let revision = read_revision(status, size).filter(|revision| *revision > 0);
        let Some(revision) = revision else {
            self.check_token(status, metrics);
            log::warn!("#{} cannot read etcd's revision (grpc status {status})", self.context_id);
            return self.closed(now, metrics);
        };
        if let Err(error) =
            watch::start_after(&EnvoySharedData, metrics, self.table_keys.iter().cloned(), revision)
        {
            log::warn!("#{} cannot forget the cache before watching: {error:?}", self.context_id);
            return self.closed(now, metrics);
        }
        self.applied = revision;
        self.open(now, metrics);
    }

    fn open(&mut self, now: u64, metrics: &EnvoyMetrics) {
        let start = self.applied.saturating_add(1);
        // etcd checks a watch's token once, when the watch is created: an open watch outlives it.
        let auth_token = self.token();
        let metadata = auth_token.as_deref().map(|token| vec![(TOKEN_METADATA, token)]).unwrap_or_default();
        let token = match hostcalls::open_grpc_stream(&self.fleet.cluster, WATCH_SERVICE, "Watch", metadata) {
            Ok(token) => token,
            Err(status) => {
                log::warn!("#{} cannot open the etcd watch: {status:?}", self.context_id);
                return self.closed(now, metrics);
            }
        };
        let create = watch::create_request(&self.fleet.prefix, start).encode_to_vec();
        if hostcalls::send_grpc_stream_message(token, Some(&create), false).is_err() {
            let _ = hostcalls::cancel_grpc_stream(token);
            return self.closed(now, metrics);
        }
        self.stream = Some(token);
        // The stream gets the silence limit from now to say something, and the lag limit to
        // catch up.
        self.heard_at = now;
        self.heartbeat.watch_opened(now);
    }

    /// Sends the tick's linearizable read, unless one is still out. Its failures are not
    /// `fleet.etcd_failures` (no request is answered 503 for them): the heartbeat just ages.
    fn send_read(&mut self, now: u64) {
        // Envoy answers every call by its timeout; a read out twice as long is taken as lost.
        if !self.heartbeat.read_due(now, self.fleet.timeout_ms.saturating_mul(2)) {
            return;
        }
        match self.dispatch_read() {
            Ok(token) => {
                self.read = Some(token);
                self.heartbeat.read_sent(now);
            }
            Err(status) => log::debug!("#{} cannot send the heartbeat read: {status:?}", self.context_id),
        }
    }

    /// The answer to one of the watcher's reads: the tick's, or the one a watch starts from.
    pub fn on_read_answer(&mut self, token: u32, status: u32, size: usize, metrics: &EnvoyMetrics) {
        if self.renewal.as_ref().is_some_and(|renewal| renewal.is_out(token)) {
            return self.on_authenticated(status, size);
        }
        if self.start_read == Some(token) {
            return self.on_start_read_answer(status, size, metrics);
        }
        if self.read != Some(token) {
            return;
        }
        self.read = None;
        let Some(now) = EnvoyClock.now_millis() else { return self.heartbeat.read_failed() };
        let Some(revision) = read_revision(status, size) else {
            self.check_token(status, metrics);
            log::debug!("#{} heartbeat read failed (grpc status {status})", self.context_id);
            return self.heartbeat.read_failed();
        };
        if let Some(stamp) = self.heartbeat.read_answered(revision, now) {
            metrics.set(Metric::FleetWatchHeartbeat, stamp);
        }
    }

    fn closed(&mut self, now: u64, metrics: &EnvoyMetrics) {
        self.stream = None;
        self.next_open_at = now.saturating_add(self.backoff_ms);
        self.backoff_ms = self.backoff_ms.saturating_mul(2).min(MAX_BACKOFF_MS);
        metrics.add(Metric::FleetEtcdFailures, 1);
    }

    pub fn on_message(&mut self, token: u32, size: usize, metrics: &EnvoyMetrics) {
        if self.stream != Some(token) {
            return;
        }
        let Some(now) = EnvoyClock.now_millis() else { return };
        let bytes =
            hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size).ok().flatten().unwrap_or_default();
        let Ok(response) = WatchResponse::decode(bytes.as_slice()) else {
            log::warn!("#{} undecodable etcd watch message; reopening", self.context_id);
            let _ = hostcalls::cancel_grpc_stream(token);
            return self.closed(now, metrics);
        };
        match watch::apply(
            &EnvoySharedData,
            metrics,
            &self.fleet.prefix,
            &response,
            self.table_keys.iter().cloned(),
        ) {
            Ok(Heard::UpTo(revision)) => {
                self.applied = self.applied.max(revision);
                self.heard_at = now;
                self.backoff_ms = FIRST_BACKOFF_MS;
                if let Some(stamp) = self.heartbeat.watch_reached(revision) {
                    metrics.set(Metric::FleetWatchHeartbeat, stamp);
                }
            }
            Ok(Heard::Opened) => {
                self.heard_at = now;
                self.backoff_ms = FIRST_BACKOFF_MS;
            }
            Ok(Heard::Refused) => {
                log::warn!(
                    "#{} etcd refused the watch (an ended token, or no read permission on the prefix); reopening",
                    self.context_id
                );
                if let Some(renewal) = self.renewal.as_mut() {
                    metrics.add(Metric::FleetEtcdTokenRefusals, 1);
                    renewal.token_ended();
                }
                let _ = hostcalls::cancel_grpc_stream(token);
                self.closed(now, metrics);
            }
            Ok(Heard::Compacted) => {
                log::warn!(
                    "#{} etcd compacted past the watch; cache forgotten, watching anew",
                    self.context_id
                );
                let _ = hostcalls::cancel_grpc_stream(token);
                self.applied = 0;
                self.stream = None;
                self.next_open_at = now;
            }
            Err(error) => {
                // The cache could not be written: stop vouching for it.
                log::warn!("#{} cannot apply etcd watch events: {error:?}; reopening", self.context_id);
                let _ = hostcalls::cancel_grpc_stream(token);
                self.closed(now, metrics);
            }
        }
    }

    pub fn on_close(&mut self, token: u32, status: u32, metrics: &EnvoyMetrics) {
        if self.stream != Some(token) {
            return;
        }
        log::warn!("#{} etcd watch closed (grpc status {status}); reopening", self.context_id);
        self.check_token(status, metrics);
        let now = EnvoyClock.now_millis().unwrap_or(0);
        self.closed(now, metrics);
    }

    pub fn tick_period() -> Duration {
        Duration::from_millis(500)
    }
}

/// The revision in a `Range` answer of `size` bytes (`None`: the call failed).
fn read_revision(status: u32, size: usize) -> Option<i64> {
    (status == 0)
        .then(|| hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size).ok().flatten())
        .flatten()
        .and_then(|bytes| RangeResponse::decode(bytes.as_slice()).ok())
        .and_then(|response| response.header)
        .map(|header| header.revision)
}
