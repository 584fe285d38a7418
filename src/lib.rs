//! tokengate: an OAuth 2.0 token endpoint and Bearer gateway that runs inside Envoy.
//!
//! Two layers in one crate: pure modules that know nothing of proxy-wasm or wasm-bindgen and
//! carry the tests, and thin glue for each build.
//!
//! | module | holds | imports |
//! |---|---|---|
//! | [`oauth`] | the wire rules: grant types (one row each), the gateway's endpoints (one row each), forms, Basic credentials and secret hashes, scopes, the resource table, token and error messages | nothing of the crate |
//! | [`jose`] | signed tokens: JWS compact JWTs signed and verified strictly (EdDSA, ES256), keys as JWKs, the JWKS document | nothing of the crate |
//! | [`host`] | the traits the logic needs from its host (shared store, clock, randomness, stats, the coordination gauges), stat names, in-memory fakes | `oauth` |
//! | [`state`] | the shared-data tables and their keys and sizes: grants, registered applications, lockout counters, credential changes, the code flow's records, the token format | `host`, `oauth` |
//! | [`config`] | JSON → validated [`config::Config`], one check per section | `oauth`, `state` |
//! | [`fleet`] | fleet mode: the etcd messages, this Envoy's cache of etcd's tables, what a decision needs etcd to confirm or commit, the watch, the fleet's credential-change record | `host`, `state`, `config` |
//! | [`gateway`] | the decisions: request in, a `Response` (an HTTP reply) or an `Outcome` (forward or deny) out; one file per endpoint, one handler per grant (`gateway/grants/`) | `oauth`, `host`, `state`, `config` |
//! | `filter` | proxy-wasm glue (feature `filter`, `wasm32-wasip1`): what Envoy loads | `gateway`, `fleet` and below |
//! | [`browser`] | the browser package: the front-end side (`/token` requests, responses, challenges) and the browser package's wasm-bindgen glue (feature `web`) | `oauth` |
//!
//! The request path inside Envoy: `filter::request_context` reads the headers and asks
//! [`gateway::Gateway::endpoint`] whether the path is one of the gateway's own. If it is, the
//! body is read and [`gateway::Gateway::serve_with_origin`] answers it (`/token`, `/revoke`, ...). Any other
//! request goes to [`gateway::Gateway::check_bearer`], which matches the resource table, looks the
//! Bearer token up in the grant store (one shared-data read) and answers 401/403 or forwards it
//! with identity headers.

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

pub mod browser;
pub mod config;
pub mod fleet;
pub mod gateway;
pub mod host;
pub mod jose;
pub mod oauth;
pub mod state;

#[cfg(feature = "filter")]
pub mod filter;
