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

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokengate::config::Config;
use tokengate::gateway::{ApiRequest, EndpointRequest, Gateway, Host, Outcome};
use tokengate::host::header_pairs::HeaderPairs;
use tokengate::host::memory::{EpochHost, ManualClock};
use tokengate::host::{NoConnection, SystemRandomness};
use tokengate::state::credential_changes::CredentialChanges;
use tokengate::state::login_handle::KeyMemory;

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

/// Headers as Envoy hands them to the filter (proxy-wasm's serialised header map).
fn serialise(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (name, value) in pairs {
        out.extend((name.len() as u32).to_le_bytes());
        out.extend((value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        for text in [name, value] {
            out.extend(text.as_bytes());
            out.push(0);
        }
    }
    out
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
    let host = EpochHost::default();
    let clock = ManualClock::at(1_700_000_000);
    let changes = CredentialChanges::default();
    let login_key = KeyMemory::new();
    config.store_layout().initialize(&host, &SystemRandomness).unwrap();
    let host = Host {
        shared: &host,
        random: &SystemRandomness,
        clock: &clock,
        metrics: &host,
        coordination: &host,
        credential_changes: &changes,
        process_shared: &host,
        connection: &NoConnection,
        config_generation: &std::cell::Cell::new(0),
        login_key: &login_key,
    };
    let gateway = Gateway::new(&config, host);

    let basic = format!("Basic {}", STANDARD.encode("bench-client:bench-secret-0123456789abcdef"));
    let endpoint = gateway.endpoint("/token").unwrap();
    let token_request = EndpointRequest {
        client_address: None,
        method: "POST",
        path: "/token",
        authorization: Some(&basic),
        content_type: Some("application/x-www-form-urlencoded"),
        body: b"grant_type=client_credentials",
    };
    let requests: Vec<Vec<u8>> = (0..pool)
        .map(|_| {
            let issued: serde_json::Value =
                serde_json::from_slice(&gateway.serve(&endpoint, &token_request).body).unwrap();
            let bearer = format!("Bearer {}", issued["access_token"].as_str().unwrap());
            serialise(&[
                (":authority", "127.0.0.1:10000"),
                (":path", "/api/orders"),
                (":method", "GET"),
                (":scheme", "http"),
                ("authorization", &bearer),
                ("user-agent", "wrk"),
                ("x-forwarded-proto", "http"),
                ("x-request-id", "0b9d3f0e-3c4e-4a55-9d6a-2b1f0e4c7a11"),
            ])
        })
        .collect();

    // A warm-up pass over the pool, as the bench's warm-up: every token once.
    let mut succeeded = 0;
    for headers in requests.iter().cycle().take(pool + count) {
        let headers = HeaderPairs::new(headers.clone());
        let method = headers.get(":method").unwrap_or_default();
        let path = headers.get(":path").unwrap_or_default();
        let authorization = headers.get("authorization");
        let request = ApiRequest { method: &method, path: &path, authorization: authorization.as_deref() };
        succeeded +=
            usize::from(std::hint::black_box(matches!(gateway.check_bearer(&request), Outcome::Forward(_))));
    }
    assert_eq!(succeeded, pool + count, "every {mode} request should succeed");
}
