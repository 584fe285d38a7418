//! What a failing host gets: a stopped clock or a failing store read is a refusal that
//! erases nothing.

use super::*;

/// A host whose clock call fails.
struct StoppedClock;

impl crate::host::Clock for StoppedClock {
    fn now_millis(&self) -> Option<u64> {
        None
    }
}

#[test]
fn a_failed_clock_refuses_requests_and_erases_nothing() {
    let rig = Rig::demo();
    let token = rig.access_token("grant_type=client_credentials");
    let stopped = Gateway::new(&rig.config, Host { clock: &StoppedClock, ..rig.host() });

    let check = stopped.check_bearer(&ApiRequest {
        method: "GET",
        path: "/api/orders",
        authorization: Some(&format!("Bearer {token}")),
    });
    assert_eq!(status_of(&check), 503);
    let endpoint = stopped.endpoint("/token").unwrap();
    let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
    let body = b"grant_type=client_credentials";
    let request = EndpointRequest {
        client_address: None,
        method: "POST",
        path: "/token",
        authorization: Some(&basic),
        content_type: Some(FORM),
        body,
    };
    assert_eq!(stopped.serve(&endpoint, &request).status, 503);
    // A sweep with no time skips its slice rather than prune against a made-up time.
    assert_eq!(stopped.sweep_step(1, 1), Err(StoreError::Unavailable));

    // With the clock back, the token issued before still works.
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &token)), 200);
}

/// Passes through to a store, but fails every read of the registry after the first `allowed`.
struct RegistryReadsFailAfter<'s> {
    inner: &'s MemoryStore,
    allowed: std::cell::Cell<u32>,
}

impl crate::host::SharedStore for RegistryReadsFailAfter<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        if key.starts_with("tokengate/clients/") {
            let left = self.allowed.get();
            if left == 0 {
                return Err(StoreError::Unavailable);
            }
            self.allowed.set(left - 1);
        }
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        self.inner.set(key, value, cas)
    }
}

#[test]
fn refreshing_a_registered_clients_grant_reads_the_registry_once() {
    let rig = lifecycle_rig();
    let payload = r#"{"callbackUrl":"","clientName":"mobile","owner":"admin","grantType":"password refresh_token","saasApp":false}"#;
    let registered = register(&rig, ("admin", "admin"), "application/json", payload);
    let (client_id, secret) = (registered.field("clientId"), registered.field("clientSecret"));
    let issued =
        rig.post_as(&client_id, &secret, "/token", "grant_type=password&username=admin&password=admin");
    let refresh = issued.field("refresh_token");

    // Authentication reads the client's record; a second read failing must not matter, and
    // above all must not answer invalid_grant (the client would drop a good refresh token).
    let shared = RegistryReadsFailAfter { inner: &rig.shared, allowed: std::cell::Cell::new(1) };
    let gateway = Gateway::new(&rig.config, Host { shared: &shared, ..rig.host() });
    let basic = format!("Basic {}", encode_basic_credentials(&client_id, &secret));
    let body = format!("grant_type=refresh_token&refresh_token={refresh}");
    let request = EndpointRequest {
        client_address: None,
        method: "POST",
        path: "/token",
        authorization: Some(&basic),
        content_type: Some(FORM),
        body: body.as_bytes(),
    };
    let reply = Reply(gateway.serve(&gateway.endpoint("/token").unwrap(), &request));
    assert_eq!(reply.0.status, 200, "{}", reply.text());
    assert!(!reply.field("refresh_token").is_empty());
}
