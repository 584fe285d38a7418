//! tokengate: an OAuth 2.0 token endpoint and Bearer gateway that runs inside Envoy.
//!
//! Two layers in one crate. The pure modules below know nothing of proxy-wasm and carry the
//! tests; [`filter`] (feature `filter`, target `wasm32-wasip1`) is the thin glue Envoy loads.

// Request and config paths must never panic: Cargo.toml denies unwrap, expect, panic and
// indexing. Tests may, since a panic there is a failed assertion.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::type_complexity
    )
)]

#[cfg(all(feature = "filter", feature = "web"))]
compile_error!("features `filter` and `web` build different artifacts; enable only one");

pub mod buckets;
pub mod challenge;
pub mod client;
pub mod config;
pub mod credentials;
pub mod epochs;
pub mod form;
pub mod gateway;
pub mod host;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod registry;
pub mod routes;
pub mod scope;
pub mod store;
pub mod token;

#[cfg(feature = "filter")]
pub mod filter;
#[cfg(feature = "web")]
pub mod web;
