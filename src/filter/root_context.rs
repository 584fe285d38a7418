//! One per VM (the main thread's and each worker's): owns the parsed configuration, creates
//! the token store at start-up and, on a timer, sweeps expired grants and re-reads the
//! credential changes other config loads recorded.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::envoy_host::{envoy_host, Backing, EnvoyClock, EnvoyMetrics, EnvoySharedData};
use super::fleet_request::{FleetClient, GrantedLeases};
use super::request_context::GatewayRequest;
use super::watcher::{Watcher, WATCHER_ROOT_ID};
use crate::config::Config;
use crate::fleet::credentials::{self, CredentialRecord};
use crate::gateway::Gateway;
use crate::host::body_wait::{BodyWaits, BODY_WAIT_LIMIT_MS};
use crate::host::metrics::{Metric, StateGauge};
use crate::host::{Clock, Metrics, NoConnection, StoreError, SystemRandomness};
use crate::state::buckets::InitError;
use crate::state::credential_changes::CredentialChanges;
use crate::state::layout::StoreLayout;

/// How often each VM sweeps a slice of the store and re-reads the credential changes.
const TICK_PERIOD: Duration = Duration::from_secs(1);
/// A slice is this fraction of the table (but at least `SWEEP_MIN_SLICE` buckets): every VM
/// (the main thread's and each worker's) sweeps one per tick, so with two workers a large
/// table is swept in about three minutes, a small one in seconds. Each bucket read costs about
/// 11k instructions, so sweeping faster would tax an idle gateway for little gain.
const SWEEP_SLICES: u32 = 600;
const SWEEP_MIN_SLICE: u32 = 32;

pub struct GatewayRoot {
    context_id: u32,
    config: Option<Rc<Config>>,
    metrics: Option<Rc<EnvoyMetrics>>,
    /// Shared with this root's request contexts; refreshed on every tick.
    credential_changes: Rc<RefCell<CredentialChanges>>,
    /// The credential record's generation this root's config belongs to, shared with its
    /// request contexts, which move it on when they re-assert a restored config.
    config_generation: Rc<Cell<u64>>,
    /// Fleet mode: etcd's client for this VM's request contexts.
    fleet: Option<Rc<FleetClient>>,
    /// Fleet mode, in the bootstrap singleton only: the Envoy's one etcd watch.
    watcher: Option<Watcher>,
    /// Endpoint requests waiting for their body, watched on every tick.
    body_waits: Rc<BodyWaits>,
}

impl GatewayRoot {
    pub fn new(context_id: u32) -> Self {
        GatewayRoot {
            context_id,
            config: None,
            metrics: None,
            credential_changes: Rc::default(),
            config_generation: Rc::default(),
            fleet: None,
            watcher: None,
            body_waits: Rc::default(),
        }
    }

    /// One line, once per VM, when an endpoint request has waited far longer for its body than
    /// any client takes: the one known cause is a filter config without the setting.
    fn warn_of_missing_bodies(&self) {
        if self.body_waits.is_empty() {
            return;
        }
        let Some(now) = EnvoyClock.now_millis() else { return };
        if self.body_waits.overdue(now) {
            log::warn!(
                "#{} a request to a token endpoint has waited {} s for its body and Envoy delivered none: \
                 the filter's config (next to vm_config) needs allow_on_headers_stop_iteration: true \
                 (Envoy >= 1.35), or /token hangs",
                self.context_id,
                BODY_WAIT_LIMIT_MS / 1000
            );
        }
    }

    /// True in the watcher's bootstrap service, whose root id names it.
    fn is_watcher() -> bool {
        matches!(hostcalls::get_property(vec!["plugin_root_id"]), Ok(Some(id)) if id == WATCHER_ROOT_ID.as_bytes())
    }
}

impl GatewayRoot {
    /// The plugin configuration, validated; `None` (logged once) when Envoy must refuse it.
    fn read_configuration(&self, size: usize) -> Option<Config> {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                log::error!("#{} invalid configuration: the plugin configuration is empty", self.context_id);
                return None;
            }
            Err(status) => {
                log::error!("#{} cannot read the plugin configuration: {status:?}", self.context_id);
                return None;
            }
        };
        match Config::from_json(&bytes) {
            Ok(config) => Some(config),
            Err(problem) => {
                log::error!("#{} invalid configuration: {problem}", self.context_id);
                None
            }
        }
    }

    /// Probes every gauge the configuration reads back as state (see [`StateGauge`]): false,
    /// with one line naming the gauge, when Envoy's `stats_matcher` rejects one it cannot do
    /// without; a warning when it rejects one it can.
    fn state_gauges_kept(&self, metrics: &EnvoyMetrics, tier_windows: usize, fleet: bool) -> bool {
        let mut warned = false;
        for gauge in StateGauge::used_by(tier_windows, fleet) {
            if metrics.keeps(gauge) {
                continue;
            }
            if let Some(why) = gauge.needed_because() {
                log::error!(
                    "#{} invalid configuration: Envoy's stats_matcher rejects the gauge wasmcustom.{}, and {why}; let wasmcustom.tokengate.* through",
                    self.context_id,
                    gauge.name()
                );
                return false;
            }
            if !warned {
                log::warn!(
                    "#{} Envoy's stats_matcher rejects the gauge wasmcustom.{}: workers will not remember validated tokens",
                    self.context_id,
                    gauge.name()
                );
                warned = true;
            }
        }
        true
    }

    /// Fleet mode: the bootstrap singleton becomes the Envoy's etcd watcher, every other root
    /// hands its request contexts an etcd client. Returns the timer period this root needs.
    /// `configured_at`: when this config was loaded, the time its credential changes are
    /// recorded at (see [`crate::fleet::credentials`]).
    fn take_fleet_role(
        &mut self,
        config: &Config,
        metrics: &Rc<EnvoyMetrics>,
        layout: &StoreLayout,
        configured_at: u64,
    ) -> Duration {
        let Some(fleet) = &config.fleet else { return TICK_PERIOD };
        if Self::is_watcher() {
            log::info!("#{} fleet watcher for etcd cluster {:?}", self.context_id, fleet.cluster);
            self.watcher = Some(Watcher::new(self.context_id, fleet.clone(), layout.fleet_keys()));
            return Watcher::tick_period();
        }
        let leases = Rc::new(GrantedLeases::default());
        self.fleet = Some(Rc::new(FleetClient {
            config: fleet.clone(),
            metrics: Rc::clone(metrics),
            leases,
            record: CredentialRecord::new(configured_at),
            changes: Rc::clone(&self.credential_changes),
        }));
        TICK_PERIOD
    }

    /// Records this config's credential changes, and returns the changes this VM starts with.
    /// In fleet mode the record is etcd's: this only creates its cache key, and the first
    /// request's pass records the config (see [`crate::fleet::credentials`]).
    fn record_credentials(&self, config: &Config, now: u64) -> Result<CredentialChanges, StoreError> {
        if config.fleet.is_none() {
            return CredentialChanges::record(&EnvoySharedData, &config.credentials(), now);
        }
        CredentialChanges::create_fleet_record(&EnvoySharedData)?;
        Ok(credentials::cached(&EnvoySharedData)?.unwrap_or_default())
    }

    /// The timer's re-read of the credential changes other config loads recorded.
    fn refresh_credentials(&self, config: &Config) {
        let read = match (&config.fleet, &self.fleet) {
            (None, _) | (_, None) => CredentialChanges::read(&EnvoySharedData).map(Some),
            (Some(_), Some(fleet)) => {
                let cached = credentials::cached(&EnvoySharedData);
                if let Ok(None) = cached {
                    fleet.record.forgotten();
                }
                cached
            }
        };
        match read {
            Ok(Some(changes)) => *self.credential_changes.borrow_mut() = changes,
            Ok(None) => {}
            Err(error) => log::warn!("#{} cannot read credential changes: {error:?}", self.context_id),
        }
    }
}

impl Context for GatewayRoot {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        if let (Some(watcher), Some(metrics)) = (self.watcher.as_mut(), self.metrics.as_ref()) {
            watcher.on_read_answer(token_id, status_code, response_size, metrics);
        }
    }

    fn on_grpc_stream_message(&mut self, token_id: u32, message_size: usize) {
        if let (Some(watcher), Some(metrics)) = (self.watcher.as_mut(), self.metrics.as_ref()) {
            watcher.on_message(token_id, message_size, metrics);
        }
    }

    fn on_grpc_stream_close(&mut self, token_id: u32, status_code: u32) {
        if let (Some(watcher), Some(metrics)) = (self.watcher.as_mut(), self.metrics.as_ref()) {
            watcher.on_close(token_id, status_code, metrics);
        }
    }
}

impl RootContext for GatewayRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log::info!("#{} tokengate {} starting", self.context_id, env!("CARGO_PKG_VERSION"));
        true
    }

    /// Returning false makes Envoy refuse the configuration, so every problem ends here with
    /// one log line that names it (and never a configured value).
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let Some(config) = self.read_configuration(plugin_configuration_size) else { return false };
        let counters = config.window_counters + config.registered_window_counters;
        let apis: Vec<&str> = config.apis.iter().map(|api| api.name.as_str()).collect();
        let metrics = match EnvoyMetrics::define(counters, &apis) {
            Ok(metrics) => Rc::new(metrics),
            Err(status) => {
                log::error!("#{} cannot define metrics: {status:?}", self.context_id);
                return false;
            }
        };
        if !self.state_gauges_kept(&metrics, counters, config.fleet.is_some()) {
            return false;
        }
        metrics.set(Metric::StoreCapacity, u64::from(config.store_capacity));
        // The tables this config uses: created here, and watched by a fleet's etcd watcher.
        let layout = config.store_layout();
        match layout.initialize(&EnvoySharedData, &SystemRandomness) {
            Ok(0) => {}
            Ok(created) => log::info!("#{} token store: created {created} buckets", self.context_id),
            Err(InitError::WouldDrop { records }) => {
                log::error!(
                    "#{} invalid configuration: registration.capacity is lower than before and would delete {records} registered applications; delete them first or keep the capacity",
                    self.context_id
                );
                return false;
            }
            Err(InitError::Store(error)) => {
                log::error!("#{} cannot initialise the token store: {error:?}", self.context_id);
                return false;
            }
        }
        // Recorded only once the config is sure to be accepted: a refused config ends nothing.
        let Some(now) = EnvoyClock.now_millis() else {
            log::error!("#{} cannot read the clock to record credential changes", self.context_id);
            return false;
        };
        let changes = match self.record_credentials(&config, now) {
            Ok(changes) => changes,
            Err(error) => {
                log::error!("#{} cannot record credential changes: {error:?}", self.context_id);
                return false;
            }
        };
        let tick = self.take_fleet_role(&config, &metrics, &layout, now);
        if let Err(status) = hostcalls::set_tick_period(tick) {
            log::warn!(
                "#{} no timer ({status:?}): expired grants are reclaimed only on writes",
                self.context_id
            );
        }
        log::info!(
            "#{} configured: {} applications, {} users, {} resources, store capacity {}",
            self.context_id,
            config.applications.len(),
            config.users.len(),
            config.routes.len(),
            config.store_capacity
        );
        self.config = Some(Rc::new(config));
        self.metrics = Some(metrics);
        self.config_generation.set(changes.generation());
        *self.credential_changes.borrow_mut() = changes;
        true
    }

    fn on_tick(&mut self) {
        let (Some(config), Some(metrics)) = (&self.config, &self.metrics) else { return };
        metrics.flush();
        if let Some(watcher) = self.watcher.as_mut() {
            return watcher.tick(metrics);
        }
        self.warn_of_missing_bodies();
        // Envoy can reuse this root for a later config without calling on_configure, so the
        // credential changes that other loads recorded are re-read here.
        self.refresh_credentials(config);
        if config.fleet.is_some() {
            // etcd's leases end what expires; a bucket is rewritten with its next write.
            return;
        }
        let changes = self.credential_changes.borrow();
        let gateway = Gateway::new(
            config,
            envoy_host(Backing::local(metrics, &changes), &self.config_generation, &NoConnection),
        );
        if let Err(error) = gateway.sweep_step(SWEEP_SLICES, SWEEP_MIN_SLICE) {
            log::warn!("#{} sweep failed: {error:?}", self.context_id);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = Rc::clone(self.config.as_ref()?);
        let metrics = Rc::clone(self.metrics.as_ref()?);
        let changes = Rc::clone(&self.credential_changes);
        let generation = Rc::clone(&self.config_generation);
        let fleet = self.fleet.clone();
        let body_waits = Rc::clone(&self.body_waits);
        Some(Box::new(GatewayRequest::new(
            context_id,
            config,
            metrics,
            (changes, generation),
            fleet,
            body_waits,
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
