//! What the native profiles share: the gateway over the in-memory host built as Envoy's (shared
//! data and process-wide epochs, so a repeated Bearer hit is a warm one, served from the
//! worker's memory as in the bench's hit rows), the bench client's `/token` request, and the
//! Bearer request as Envoy hands it to the filter.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokengate::config::Config;
use tokengate::gateway::{ApiRequest, Endpoint, EndpointRequest, Gateway, Host, Outcome};
use tokengate::host::header_pairs::HeaderPairs;
use tokengate::host::memory::{EpochHost, ManualClock};
use tokengate::host::{NoConnection, SystemRandomness};
use tokengate::state::credential_changes::CredentialChanges;
use tokengate::state::login_handle::KeyMemory;

/// Runs `run` with a gateway over `config`, and the `/token` endpoint with the bench client's
/// `client_credentials` request (bench/workload.py).
pub fn with_gateway<R>(
    config: &Config,
    run: impl FnOnce(&Gateway<'_>, &Endpoint, &EndpointRequest<'_>) -> R,
) -> R {
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
    let gateway = Gateway::new(config, host);
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
    run(&gateway, &endpoint, &token_request)
}

/// A new access token from `/token`.
pub fn issue(gateway: &Gateway<'_>, endpoint: &Endpoint, token_request: &EndpointRequest<'_>) -> String {
    let issued: serde_json::Value =
        serde_json::from_slice(&gateway.serve(endpoint, token_request).body).unwrap();
    issued["access_token"].as_str().unwrap().to_owned()
}

/// A `GET path` with `token` as Envoy hands its headers to the filter (proxy-wasm's serialised
/// header map), with wrk's other headers.
pub fn bearer_headers(path: &str, token: &str) -> Vec<u8> {
    let bearer = format!("Bearer {token}");
    serialise(&[
        (":authority", "127.0.0.1:10000"),
        (":path", path),
        (":method", "GET"),
        (":scheme", "http"),
        ("authorization", &bearer),
        ("user-agent", "wrk"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "0b9d3f0e-3c4e-4a55-9d6a-2b1f0e4c7a11"),
    ])
}

/// As the filter does: one snapshot of the headers (the host's buffer), then the check.
pub fn forwards(gateway: &Gateway<'_>, headers: &[u8]) -> bool {
    let headers = HeaderPairs::new(headers.to_vec());
    let method = headers.get(":method").unwrap_or_default();
    let path = headers.get(":path").unwrap_or_default();
    let authorization = headers.get("authorization");
    let request = ApiRequest { method: &method, path: &path, authorization: authorization.as_deref() };
    matches!(gateway.check_bearer(&request), Outcome::Forward(_))
}

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
