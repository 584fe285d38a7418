//! One per VM (the main thread's and each worker's): owns the parsed configuration.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::envoy_host::EnvoySharedData;
use super::request_context::GatewayRequest;
use crate::config::Config;
use crate::host::SystemRandomness;
use crate::store::TokenStore;

pub struct GatewayRoot {
    context_id: u32,
    config: Option<Rc<Config>>,
}

impl GatewayRoot {
    pub fn new(context_id: u32) -> Self {
        GatewayRoot { context_id, config: None }
    }
}

impl Context for GatewayRoot {}

impl RootContext for GatewayRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log::info!("#{} tokengate {} starting", self.context_id, env!("CARGO_PKG_VERSION"));
        true
    }

    /// Returning false makes Envoy refuse the configuration, so every problem ends here with
    /// one log line that names it (and never a configured value).
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, plugin_configuration_size)
        {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                log::error!("#{} invalid configuration: the plugin configuration is empty", self.context_id);
                return false;
            }
            Err(status) => {
                log::error!("#{} cannot read the plugin configuration: {status:?}", self.context_id);
                return false;
            }
        };
        let config = match Config::from_json(&bytes) {
            Ok(config) => config,
            Err(problem) => {
                log::error!("#{} invalid configuration: {problem}", self.context_id);
                return false;
            }
        };
        let store = TokenStore::new(&EnvoySharedData, &SystemRandomness, config.bucket_count);
        match store.initialize() {
            Ok(0) => {}
            Ok(created) => log::info!(
                "#{} token store: created {created} buckets for {} grants",
                self.context_id,
                config.store_capacity
            ),
            Err(error) => {
                log::error!("#{} cannot initialise the token store: {error:?}", self.context_id);
                return false;
            }
        }
        log::info!(
            "#{} configured: {} applications, {} users, token endpoint {}",
            self.context_id,
            config.applications.len(),
            config.users.len(),
            config.token_endpoint
        );
        self.config = Some(Rc::new(config));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = Rc::clone(self.config.as_ref()?);
        Some(Box::new(GatewayRequest::new(context_id, config)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
