//! The proxy-wasm glue Envoy loads: thin adapters from host calls to [`crate::gateway`].
//!
//! `GatewayRoot` parses the plugin configuration once per VM and hands it to a
//! `GatewayRequest` per HTTP stream. Host calls go through `hostcalls`, which return `Result`,
//! never through the SDK's trait helpers that unwrap: a panic would kill the VM.

mod decision;
mod envoy_host;
mod fleet_request;
mod request_context;
mod root_context;
mod watcher;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| Box::new(root_context::GatewayRoot::new(context_id)));
}}
