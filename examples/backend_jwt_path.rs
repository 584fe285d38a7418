//! The Bearer hit on a subscribed API with and without the backend JWT, natively and with the
//! bench's request pattern (bench/bench.py: a pool of tokens used in turn), so callgrind can say
//! what a warm hit on a backend-JWT API costs beyond the plain one, by function:
//!
//! ```text
//! cargo build --release --example backend_jwt_path   # with debug info for names, as `make profile`
//! valgrind --tool=callgrind target/release/examples/backend_jwt_path backend_jwt 10000 256
//! ```
//!
//! Modes: `tier` (the API without a backend JWT) and `backend_jwt`; then the request count and
//! the pool's size (256 as in the bench; 1 for a single remembered token).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

#[path = "support/rig.rs"]
mod rig;

use tokengate::config::Config;

/// bench/envoy_configs.py's `tokengate_config(tier=True, backend_jwt=...)`, signed with
/// RFC 8037 Appendix A.1's published Ed25519 test key (for measuring only).
fn config(backend_jwt: bool) -> String {
    let backend = if backend_jwt { r#", "backend_jwt": {}"# } else { "" };
    format!(
        r#"{{
  "tiers": [{{"name": "Bench", "requests": 4000000000, "per": "day"}}],
  "apis": [{{"name": "Orders", "version": "1", "context": "/api", "resources": [
    {{"methods": ["GET"], "path": "/orders", "scopes": ["orders:read"]}},
    {{"methods": ["GET"], "path": "/orders/{{id}}", "scopes": ["orders:read"]}}
  ]{backend}}}],
  "issuer": "http://127.0.0.1",
  "signing": {{"keys": [{{"kty": "OKP", "crv": "Ed25519", "kid": "rfc8037", "alg": "EdDSA",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}}]}},
  "store": {{"capacity": 100000, "max_grants_per_application": 100000}},
  "applications": [{{
    "consumer_key": "bench-client", "consumer_secret": "bench-secret-0123456789abcdef",
    "grant_types": ["client_credentials"], "scopes": ["orders:read", "orders:write"],
    "subscriptions": [{{"api": "Orders", "tier": "Bench"}}]
  }}],
  "users": [],
  "resources": []
}}"#
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let backend_jwt = match mode.as_str() {
        "tier" => false,
        "backend_jwt" => true,
        other => panic!("unknown mode {other:?}: use `tier` or `backend_jwt`"),
    };
    let count: usize = args.next().map_or(10_000, |text| text.parse().expect("a request count"));
    let pool: usize = args.next().map_or(256, |text| text.parse().expect("a pool size"));

    let config = Config::from_json(config(backend_jwt).as_bytes()).unwrap();
    rig::with_gateway(&config, |gateway, endpoint, token_request| {
        let requests: Vec<Vec<u8>> = (0..pool)
            .map(|_| rig::bearer_headers("/api/orders", &rig::issue(gateway, endpoint, token_request)))
            .collect();
        // A warm-up pass over the pool, as the bench's warm-up: every token once.
        let mut succeeded = 0;
        for headers in requests.iter().cycle().take(pool + count) {
            succeeded += usize::from(std::hint::black_box(rig::forwards(gateway, headers)));
        }
        assert_eq!(succeeded, pool + count, "every {mode} request should succeed");
    });
}
