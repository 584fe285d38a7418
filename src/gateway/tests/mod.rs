//! The gateway's tests over the in-memory host, one file per endpoint or concern. This file
//! holds the rig every file uses.

use super::*;
use crate::config::tests::{config_with, demo_with, DEMO};
use crate::host::memory::{ManualClock, MemoryStore, RecordedMetrics};
use crate::host::metrics::{DenyReason, Metric};
use crate::host::SystemRandomness;
use crate::oauth::credentials::encode_basic_credentials;
use crate::state::credential_changes::CredentialChanges;
use crate::state::login_handle::KeyMemory;

const FORM: &str = "application/x-www-form-urlencoded";

struct Rig {
    config: Config,
    shared: MemoryStore,
    clock: ManualClock,
    metrics: RecordedMetrics,
    changes: CredentialChanges,
    login_key: KeyMemory,
    /// The downstream connection of the requests this rig sends.
    connection: FakeConnection,
    config_generation: std::cell::Cell<u64>,
}

/// A connection whose id a test sets; `None`: the host cannot tell.
#[derive(Default)]
struct FakeConnection(std::cell::Cell<Option<u64>>);

impl crate::host::Connection for FakeConnection {
    fn id(&self) -> Option<u64> {
        self.0.get()
    }
}

impl Rig {
    fn demo() -> Rig {
        Rig::with_config(DEMO)
    }

    /// The demo configuration with `change` made to its JSON value.
    fn demo_with(change: impl FnOnce(&mut serde_json::Value)) -> Rig {
        Rig::with_config(&demo_with(change))
    }

    fn with_config(json: &str) -> Rig {
        let config = Config::from_json(json.as_bytes()).unwrap();
        let rig = Rig {
            config,
            shared: MemoryStore::default(),
            clock: ManualClock::at(1_700_000_000),
            metrics: RecordedMetrics::default(),
            changes: CredentialChanges::default(),
            login_key: KeyMemory::new(),
            connection: FakeConnection::default(),
            config_generation: std::cell::Cell::new(0),
        };
        rig.config.store_layout().initialize(&rig.shared, &SystemRandomness).unwrap();
        rig
    }

    fn host(&self) -> Host<'_> {
        Host {
            shared: &self.shared,
            random: &SystemRandomness,
            clock: &self.clock,
            metrics: &self.metrics,
            coordination: &self.metrics,
            credential_changes: &self.changes,
            process_shared: &self.shared,
            connection: &self.connection,
            config_generation: &self.config_generation,
            login_key: &self.login_key,
        }
    }

    fn gateway(&self) -> Gateway<'_> {
        Gateway::new(&self.config, self.host())
    }

    /// A gateway over this rig's store with another config and its credential changes.
    fn gateway_with<'a>(&'a self, (config, changes): &'a (Config, CredentialChanges)) -> Gateway<'a> {
        Gateway::new(config, Host { credential_changes: changes, ..self.host() })
    }

    fn token_request(
        &self,
        method: &str,
        query: Option<&str>,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let path = match query {
            Some(query) => format!("/token?{query}"),
            None => "/token".to_owned(),
        };
        self.endpoint(method, &path, authorization, content_type, body)
    }

    fn endpoint(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let gateway = self.gateway();
        let endpoint = gateway.endpoint(path).expect("an endpoint path");
        let request = EndpointRequest {
            client_address: None,
            method,
            path,
            authorization,
            content_type,
            body: body.as_bytes(),
        };
        Reply(gateway.serve(&endpoint, &request))
    }

    /// A form POST to one of the endpoints, authenticated as `key`/`secret`.
    fn post_as(&self, key: &str, secret: &str, path: &str, body: &str) -> Reply {
        let basic = format!("Basic {}", encode_basic_credentials(key, secret));
        self.endpoint("POST", path, Some(&basic), Some(FORM), body)
    }

    /// A well-formed POST /token as the demo app.
    fn token(&self, body: &str) -> Reply {
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
        self.token_request("POST", None, Some(&basic), Some(FORM), body)
    }

    fn access_token(&self, body: &str) -> String {
        let reply = self.token(body);
        assert_eq!(reply.0.status, 200, "{}", reply.text());
        reply.field("access_token")
    }

    fn call(&self, method: &str, path: &str, authorization: Option<&str>) -> Outcome {
        self.gateway().check_bearer(&ApiRequest { method, path, authorization })
    }

    fn call_with_token(&self, method: &str, path: &str, token: &str) -> Outcome {
        self.call(method, path, Some(&format!("Bearer {token}")))
    }
}

struct Reply(Response);

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.body).unwrap()
    }
    fn field(&self, name: &str) -> String {
        self.json()[name].as_str().unwrap_or_default().to_owned()
    }
}

fn status_of(outcome: &Outcome) -> u16 {
    match outcome {
        Outcome::Deny(Denial { response, .. }) => response.status,
        Outcome::Forward(_) => 200,
    }
}

fn challenge_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Deny(Denial { response, .. }) => {
            response.header("www-authenticate").unwrap_or_default().to_owned()
        }
        Outcome::Forward(_) => String::new(),
    }
}

fn lifecycle_rig() -> Rig {
    Rig::with_config(&crate::config::tests::demo_with_lifecycle())
}

const REGISTER: &str = "/client-registration/v0.17/register";

fn register(rig: &Rig, who: (&str, &str), content_type: &str, body: &str) -> Reply {
    let basic = format!("Basic {}", encode_basic_credentials(who.0, who.1));
    rig.endpoint("POST", REGISTER, Some(&basic), Some(content_type), body)
}

mod audience;
mod backend_jwt;
mod bearer;
mod code_flow;
mod credential_rotation;
mod grant_lifecycle;
mod host_failures;
mod jwks;
mod jwt_access;
mod lockout_and_sweep;
mod revocation_introspection;
mod rfc7591_registration;
mod subscriptions;
mod tables;
mod token_endpoint;
mod wso2_registration;
