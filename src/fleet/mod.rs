//! Fleet mode: many Envoys share one token state through etcd v3, and tokens survive restarts.
//!
//! etcd holds the tables that must agree across replicas, bucket by bucket, under the
//! deployment's prefix: `<prefix>grants/<n>` (grants, by token hash: the same bucket records
//! local mode keeps), `<prefix>clients/<n>` (registered applications) and
//! `<prefix>credential-changes/0` (when credentials last changed: [`credentials`]). Each
//! Envoy's shared data is its cache of those keys ([`cache`]); lockout counters stay per Envoy.
//!
//! - A decision runs over the cache ([`view`]); [`plan`] says what etcd must confirm or commit
//!   before its answer goes out, and [`plan::settle`] applies etcd's answer. The gateway itself
//!   does not know it runs in a fleet.
//! - One Watch per Envoy ([`watch`]) keeps the cache current for every worker; [`heartbeat`]
//!   says when the watcher may vouch for it (against a linearizable read, not the watch's word).
//! - [`auth`]: etcd's user/password authentication, one token per Envoy, renewed by the watcher.
//! - [`etcd`] is the wire format (prost); [`memory_etcd`] an in-memory etcd for native tests.

pub mod auth;
pub mod cache;
pub mod credentials;
pub mod etcd;
pub mod heartbeat;
pub mod memory_etcd;
pub mod plan;
pub mod view;
pub mod watch;

#[cfg(test)]
mod tests;
