//! What the gateway keeps in Envoy's shared data, so every worker sees the same state.
//!
//! Shared data is a process-wide map whose keys can never be deleted, so every table here is a
//! fixed set of keys created at start-up ([`buckets`]), each rewritten with compare-and-swap:
//! - [`authorization`]: authorization codes (RFC 6749 §4.1) and used login handles, short-lived;
//! - [`login_handle`]: the key the login page's handle is sealed under (the pending sign-in
//!   itself is in the page, not here);
//! - [`grants`]: the token store (grants and their tokens, by hash), with its record codec;
//! - [`registry`]: applications added by dynamic client registration;
//! - [`lockout`]: failed-secret counters per consumer key and username;
//! - [`credential_changes`]: when each name's credentials last changed, one key;
//! - [`remembered`]: not shared data but each worker's bounded memory of tokens it validated;
//! - [`hash_budget`]: not shared data either: each worker's budget of PBKDF2 at the login form;
//! - [`token`]: the token format (what a token says about where its grant lives);
//! - [`keys`]: every key and table name above, and where fleet mode keeps each table.

pub mod authorization;
pub mod buckets;
pub mod credential_changes;
pub mod grants;
pub mod hash_budget;
pub mod keys;
pub mod layout;
pub mod lockout;
pub mod login_handle;
pub mod registry;
pub mod remembered;
pub mod token;
