//! The filter's two hot paths run natively, so callgrind can say which of our functions cost
//! what: `make profile` runs `hot_path bearer N` and `hot_path token N` and prints
//! instructions per request. Envoy's share and the host calls are `make bench`'s business;
//! this is the part between them that is ours. V8's code for the same Rust runs about twice
//! these instruction counts.
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
    let count: u32 = args.next().map_or(10_000, |text| text.parse().expect("a request count"));

    let config = Config::from_json(CONFIG.as_bytes()).unwrap();
    // Shared data and process-wide epochs, as in Envoy: a repeated Bearer hit is a warm one,
    // served from the worker's memory (`state::remembered`), like the bench's hit row.
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
    let issued: serde_json::Value =
        serde_json::from_slice(&gateway.serve(&endpoint, &token_request).body).unwrap();
    let bearer = format!("Bearer {}", issued["access_token"].as_str().unwrap());
    let headers = serialise(&[
        (":authority", "127.0.0.1:10000"),
        (":path", "/api/orders/42"),
        (":method", "GET"),
        (":scheme", "http"),
        ("authorization", &bearer),
        ("user-agent", "wrk"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "0b9d3f0e-3c4e-4a55-9d6a-2b1f0e4c7a11"),
    ]);

    let mut succeeded = 0;
    for _ in 0..count {
        let ok = match mode.as_str() {
            "bearer" => {
                // As the filter does: one snapshot of the headers (the host's buffer), then the check.
                let headers = HeaderPairs::new(headers.clone());
                let method = headers.get(":method").unwrap_or_default();
                let path = headers.get(":path").unwrap_or_default();
                let authorization = headers.get("authorization");
                let request =
                    ApiRequest { method: &method, path: &path, authorization: authorization.as_deref() };
                matches!(gateway.check_bearer(&request), Outcome::Forward(_))
            }
            "token" => gateway.serve(&endpoint, &token_request).status == 200,
            other => panic!("unknown mode {other:?}: use `bearer` or `token`"),
        };
        succeeded += u32::from(std::hint::black_box(ok));
    }
    assert_eq!(succeeded, count, "every {mode} request should succeed");
}
