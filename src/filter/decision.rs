//! The one decision both modes make for a request: local mode over this Envoy's shared data,
//! fleet mode over its cache of etcd (see [`super::fleet_request`]). Only where reads come
//! from and how writes commit differ; the call and its inputs are the same.

use std::cell::Cell;

use super::envoy_host::{envoy_host, Backing, EnvoyConnection};
use crate::config::Config;
use crate::gateway::{ApiRequest, Endpoint, EndpointRequest, Gateway, Outcome, Response};

/// What the filter read of a request to one of the gateway's endpoints, kept while its body
/// comes in.
pub struct PendingEndpointRequest {
    pub endpoint: Endpoint,
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// CORS at `/token` and `/revoke` (see `gateway::cors`).
    pub origin: Option<String>,
    /// The client's address, for the login form only (a host call the other endpoints skip).
    pub client_address: Option<String>,
}

/// What a request asks the gateway, borrowed from what the stream read.
pub enum Question<'r> {
    /// A request to a resource: the Bearer check.
    Bearer(ApiRequest<'r>),
    /// A request to one of the gateway's endpoints, with its body.
    Endpoint(&'r PendingEndpointRequest, &'r [u8]),
}

/// What the gateway answers: an endpoint's [`Response`], or the Bearer check's [`Outcome`].
pub enum Answer {
    Response(Response),
    Outcome(Outcome),
}

impl Answer {
    /// True when this answer must rest on the authoritative store's word, never on a
    /// replica's cache alone: every endpoint answer (it issues, revokes or reads grants another
    /// replica may have just written), and a Bearer denial for want of a live token (see
    /// [`Outcome::rests_on_the_store`]).
    pub fn must_be_confirmed(&self) -> bool {
        match self {
            Answer::Response(_) => true,
            Answer::Outcome(outcome) => outcome.rests_on_the_store(),
        }
    }
}

/// Asks the gateway `question` over `backing`, CORS included: the one call both modes make.
pub fn decide(
    config: &Config,
    config_generation: &Cell<u64>,
    backing: Backing<'_>,
    question: &Question,
) -> Answer {
    let host = envoy_host(backing, config_generation, &EnvoyConnection);
    let gateway = Gateway::new(config, host);
    match question {
        Question::Bearer(request) => Answer::Outcome(gateway.check_bearer(request)),
        Question::Endpoint(pending, body) => {
            let request = EndpointRequest {
                method: &pending.method,
                path: &pending.path,
                authorization: pending.authorization.as_deref(),
                content_type: pending.content_type.as_deref(),
                body,
                client_address: pending.client_address.as_deref(),
            };
            Answer::Response(gateway.serve_with_origin(
                &pending.endpoint,
                &request,
                pending.origin.as_deref(),
            ))
        }
    }
}
