//! tokengate: an OAuth 2.0 token endpoint and Bearer gateway that runs inside Envoy.
//!
//! Two layers in one crate. The pure modules below know nothing of proxy-wasm and carry the
//! tests; [`filter`] (feature `filter`, target `wasm32-wasip1`) is the thin glue Envoy loads.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[cfg(all(feature = "filter", feature = "web"))]
compile_error!("features `filter` and `web` build different artifacts; enable only one");

pub mod config;
pub mod credentials;
pub mod form;
pub mod gateway;
pub mod host;
pub mod routes;
pub mod scope;
pub mod store;
pub mod token;

#[cfg(feature = "filter")]
pub mod filter;
