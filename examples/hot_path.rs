//! The filter's two hot paths run natively, so callgrind can say which of our functions cost
//! what: `make profile` runs `hot_path bearer N` and `hot_path token N` and prints
//! instructions per request. Envoy's share and the host calls are `make bench`'s business;
//! this is the part between them that is ours. V8's code for the same Rust runs about twice
//! these instruction counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

#[path = "support/rig.rs"]
mod rig;

use tokengate::config::Config;

/// The bench's plugin configuration (bench/envoy_configs.py), with a plaintext password.
const CONFIG: &str = r#"{
  "store": {"capacity": 100000, "max_grants_per_application": 100000},
  "applications": [{
    "consumer_key": "bench-client", "consumer_secret": "bench-secret-0123456789abcdef",
    "grant_types": ["client_credentials", "password", "refresh_token"],
    "scopes": ["orders:read", "orders:write"]
  }],
  "users": [{"username": "bench-user", "password": "bench-password", "scopes": ["orders:read"]}],
  "resources": [
    {"methods": ["GET"], "path": "/api/orders", "scopes": ["orders:read"]},
    {"methods": ["GET"], "path": "/api/orders/{id}", "scopes": ["orders:read"]},
    {"methods": ["POST"], "path": "/api/orders", "scopes": ["orders:write"]},
    {"methods": ["GET"], "path": "/api/public/ping", "public": true}
  ]
}"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let count: u32 = args.next().map_or(10_000, |text| text.parse().expect("a request count"));

    let config = Config::from_json(CONFIG.as_bytes()).unwrap();
    rig::with_gateway(&config, |gateway, endpoint, token_request| {
        let headers = rig::bearer_headers("/api/orders/42", &rig::issue(gateway, endpoint, token_request));
        let mut succeeded = 0;
        for _ in 0..count {
            let ok = match mode.as_str() {
                "bearer" => rig::forwards(gateway, &headers),
                "token" => gateway.serve(endpoint, token_request).status == 200,
                other => panic!("unknown mode {other:?}: use `bearer` or `token`"),
            };
            succeeded += u32::from(std::hint::black_box(ok));
        }
        assert_eq!(succeeded, count, "every {mode} request should succeed");
    });
}
