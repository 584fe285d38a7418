//! One per HTTP stream: reads the request, asks the gateway, applies the outcome.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::decision::{decide, Answer, PendingEndpointRequest, Question};
use super::envoy_host::{
    envoy_host, request_headers, request_trailers, source_address, Backing, EnvoyClock, EnvoyConnection,
    EnvoyMetrics,
};
use super::fleet_request::{FleetClient, Next, Waiting};
use crate::config::Config;
use crate::gateway::{
    ApiRequest, Denial, Endpoint, Forward, Gateway, Outcome, Response, IDENTITY_HEADER_PREFIX,
};
use crate::host::body_wait::BodyWaits;
use crate::host::header_pairs::HeaderPairs;
use crate::host::{Clock, ClockReadOnce};
use crate::state::credential_changes::CredentialChanges;

pub struct GatewayRequest {
    context_id: u32,
    config: Rc<Config>,
    metrics: Rc<EnvoyMetrics>,
    credential_changes: Rc<RefCell<CredentialChanges>>,
    /// The record generation the root's config belongs to (see `state::credential_changes`).
    config_generation: Rc<Cell<u64>>,
    /// Set while a request to one of the gateway's endpoints waits for its body.
    pending: Option<PendingEndpointRequest>,
    /// This VM's requests waiting for a body; this one is in it while `waits_for_body`.
    body_waits: Rc<BodyWaits>,
    waits_for_body: bool,
    /// What a forwarded request lost from its headers: its trailers lose the same.
    stripped: Option<&'static [&'static str]>,
    /// Headers the upstream's response gets (a rated tier's ratelimit headers).
    response_headers: Vec<(&'static str, String)>,
    /// Fleet mode: etcd's client, and the decision waiting for its answer.
    fleet: Option<Rc<FleetClient>>,
    waiting: Option<(Job<'static>, Box<Waiting>)>,
    /// The request's trailers came while its decision waited for etcd: a forward strips
    /// them when it resumes the stream, as `on_http_request_trailers` would have.
    trailers_held: bool,
}

/// A request's question in fleet mode, which may have to ask it more than once. A Bearer
/// check borrows the request's headers until it has to wait for etcd, and owns them only
/// then: a hit answered at once copies nothing.
enum Job<'h> {
    Bearer { method: Cow<'h, str>, path: Cow<'h, str>, authorization: Option<Cow<'h, str>> },
    Endpoint { pending: PendingEndpointRequest, body: Vec<u8> },
}

impl Job<'_> {
    /// This job, owning what it borrowed: to be kept while etcd answers.
    fn into_owned(self) -> Job<'static> {
        match self {
            Job::Bearer { method, path, authorization } => Job::Bearer {
                method: Cow::Owned(method.into_owned()),
                path: Cow::Owned(path.into_owned()),
                authorization: authorization.map(|header| Cow::Owned(header.into_owned())),
            },
            Job::Endpoint { pending, body } => Job::Endpoint { pending, body },
        }
    }

    fn question(&self) -> Question<'_> {
        match self {
            Job::Bearer { method, path, authorization } => {
                Question::Bearer(ApiRequest { method, path, authorization: authorization.as_deref() })
            }
            Job::Endpoint { pending, body } => Question::Endpoint(pending, body),
        }
    }
}

impl GatewayRequest {
    pub fn new(
        context_id: u32,
        config: Rc<Config>,
        metrics: Rc<EnvoyMetrics>,
        (credential_changes, config_generation): (Rc<RefCell<CredentialChanges>>, Rc<Cell<u64>>),
        fleet: Option<Rc<FleetClient>>,
        body_waits: Rc<BodyWaits>,
    ) -> Self {
        GatewayRequest {
            context_id,
            config,
            metrics,
            credential_changes,
            config_generation,
            pending: None,
            body_waits,
            waits_for_body: false,
            stripped: None,
            response_headers: Vec::new(),
            fleet,
            waiting: None,
            trailers_held: false,
        }
    }

    /// Runs `decide` with a gateway over Envoy's host. The credential changes are borrowed
    /// only for that call: the root's timer replaces them between requests.
    fn with_gateway<T>(&self, decide: impl FnOnce(&Gateway) -> T) -> T {
        let changes = self.credential_changes.borrow();
        let backing = Backing::local(&self.metrics, &changes);
        decide(&Gateway::new(&self.config, envoy_host(backing, &self.config_generation, &EnvoyConnection)))
    }

    /// Local mode: `question` answered over this Envoy's shared data.
    fn decide_locally(&self, question: &Question) -> Answer {
        let changes = self.credential_changes.borrow();
        let backing = Backing::local(&self.metrics, &changes);
        decide(&self.config, &self.config_generation, backing, question)
    }

    /// Sends a local reply. The stream must then stay paused: the reply ends it, and
    /// continuing would also send the request upstream.
    fn respond(&self, response: &Response) -> Action {
        let headers: Vec<(&str, &str)> =
            response.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        if let Err(status) =
            hostcalls::send_http_response(u32::from(response.status), headers, Some(&response.body))
        {
            log::error!("#{} cannot send a local reply: {status:?}", self.context_id);
        }
        Action::Pause
    }

    /// Applies a forward decision with as few host calls as it takes (each request-header
    /// write costs 3,000 to 8,000 instructions in Envoy): a header is only removed when the
    /// request has it (a removal is a host call even for an absent header) and is not about to
    /// be set (`set` replaces any copy). The decision itself leaves out empty headers.
    fn forward(&mut self, forward: &Forward, headers: &HeaderPairs) -> Action {
        self.stripped = Some(forward.remove_headers);
        self.response_headers.clone_from(&forward.response_headers);
        let written = |name: &str| forward.set_headers.iter().any(|(set, _)| *set == name);
        let removed = forward
            .remove_headers
            .iter()
            .filter(|name| headers.contains(name) && !written(name))
            .all(|name| hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None).is_ok());
        let added = forward.set_headers.iter().all(|(name, value)| {
            hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).is_ok()
        });
        if removed && added {
            return Action::Continue;
        }
        // Never forward a request whose identity headers could not be set or stripped.
        log::error!("#{} cannot rewrite request headers; refusing the request", self.context_id);
        self.respond(&Response::unavailable())
    }

    /// A forwarded request's trailers lose what its headers lost, and any `x-tokengate-*`:
    /// upstreams that merge trailers into headers must not meet a forged identity. Only
    /// requests with trailers pay for this (one read, and one removal per present name).
    fn strip_trailers(&self) -> Action {
        let Some(stripped) = self.stripped else { return Action::Continue };
        let trailers = request_trailers();
        // Each present name once. Envoy caps a header map (100 entries by default), so a linear
        // search drops repeats without a sort.
        let mut names: Vec<&[u8]> = Vec::new();
        for (name, _) in trailers.iter() {
            let strip = name.starts_with(IDENTITY_HEADER_PREFIX.as_bytes())
                || stripped.iter().any(|strip| strip.as_bytes() == name);
            if strip && !names.contains(&name) {
                names.push(name);
            }
        }
        let removed = names.iter().all(|name| {
            hostcalls::set_map_value(MapType::HttpRequestTrailers, &String::from_utf8_lossy(name), None)
                .is_ok()
        });
        if removed {
            return Action::Continue;
        }
        log::error!("#{} cannot strip request trailers; refusing the request", self.context_id);
        self.respond(&Response::unavailable())
    }

    /// The body (or the stream's end) came: the root's timer no longer watches this request.
    fn body_arrived(&mut self) {
        if self.waits_for_body {
            self.waits_for_body = false;
            self.body_waits.stop(self.context_id);
        }
    }

    /// Up to `size` bytes of the body Envoy buffered while the stream was paused. A body that
    /// cannot be read is treated as empty, which the endpoints answer with a 400.
    fn buffered_body(&self, size: usize) -> Vec<u8> {
        match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size) {
            Ok(body) => body.unwrap_or_default(),
            Err(status) => {
                log::error!("#{} cannot read the request body: {status:?}", self.context_id);
                Vec::new()
            }
        }
    }

    fn serve(&mut self, pending: PendingEndpointRequest, body: Vec<u8>) -> Action {
        if let Some(fleet) = self.fleet.clone() {
            return self.decide_in_fleet(&fleet, Job::Endpoint { pending, body }, 0, None, false);
        }
        let answer = self.decide_locally(&Question::Endpoint(&pending, &body));
        self.deliver(answer, None, false)
    }

    /// Fleet mode: runs `job` over this Envoy's cache and delivers its answer, or pauses while
    /// etcd confirms or commits it (see [`crate::fleet::plan`]). `in_callback`: the stream is
    /// already paused (an etcd answer arrived), so a forward must resume it.
    fn decide_in_fleet(
        &mut self,
        fleet: &FleetClient,
        job: Job<'_>,
        passes: usize,
        headers: Option<&HeaderPairs>,
        in_callback: bool,
    ) -> Action {
        let question = job.question();
        // Once the watch has gone quiet, no answer may rest on this cache alone, nor on a
        // worker's memory of it. An endpoint's answer always rests on etcd's word, and its
        // pass may write: it neither reads nor adds to the memory.
        // The staleness check, the decision and the plan judge by one reading of the clock.
        let clock = ClockReadOnce::new(&EnvoyClock);
        let bearer = matches!(job, Job::Bearer { .. });
        let stale = bearer && fleet.cache_is_stale(&clock);
        let pass = fleet.run_pass(&self.config, &clock, bearer && !stale, |backing| {
            decide(&self.config, &self.config_generation, backing, &question)
        });
        let confirm = pass.answer.must_be_confirmed() || stale;
        match fleet.after_pass(pass, &clock, confirm, passes) {
            Next::Deliver(answer) => self.deliver(answer, headers, in_callback),
            Next::Wait(waiting) => {
                self.waiting = Some((job.into_owned(), waiting));
                Action::Pause
            }
            Next::Unavailable | Next::Again(_) => {
                self.deliver(Answer::Response(Response::unavailable()), headers, in_callback)
            }
        }
    }

    fn deliver(&mut self, answer: Answer, headers: Option<&HeaderPairs>, in_callback: bool) -> Action {
        match answer {
            Answer::Response(response) | Answer::Outcome(Outcome::Deny(Denial { response, .. })) => {
                self.respond(&response)
            }
            Answer::Outcome(Outcome::Forward(forward)) => {
                let mut action = match headers {
                    Some(headers) => self.forward(&forward, headers),
                    None => self.forward(&forward, &request_headers()),
                };
                if action == Action::Continue && std::mem::take(&mut self.trailers_held) {
                    action = self.strip_trailers();
                }
                if in_callback && action == Action::Continue {
                    if let Err(status) = hostcalls::resume_http_request() {
                        log::error!("#{} cannot resume the request: {status:?}", self.context_id);
                    }
                }
                action
            }
        }
    }
}

/// The build exports no `proxy_on_done` (see the Makefile's FILTER_EXPORTS): the stream's end
/// is seen here, when the SDK frees the context in `proxy_on_delete`.
impl Drop for GatewayRequest {
    fn drop(&mut self) {
        self.body_arrived();
    }
}

impl Context for GatewayRequest {
    /// etcd answered (or failed) the call a paused fleet decision made.
    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, response_size: usize) {
        let (Some(fleet), Some((job, waiting))) = (self.fleet.clone(), self.waiting.take()) else { return };
        let body = match status_code {
            0 => hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size).ok().flatten(),
            _ => None,
        };
        match fleet.after_answer(*waiting, status_code, body) {
            Next::Deliver(answer) => {
                self.deliver(answer, None, true);
            }
            Next::Wait(waiting) => self.waiting = Some((job, waiting)),
            Next::Unavailable => {
                self.deliver(Answer::Response(Response::unavailable()), None, true);
            }
            Next::Again(passes) => {
                self.decide_in_fleet(&fleet, job, passes, None, true);
            }
        }
    }
}

impl HttpContext for GatewayRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = request_headers();
        let path = headers.get(":path").unwrap_or_default();
        if let Some(endpoint) = self.with_gateway(|gateway| gateway.endpoint(&path)) {
            let owned = |name| headers.get(name).map(Cow::into_owned);
            let client_address = match endpoint {
                // The login form counts failures, and open registration its quota, by it.
                Endpoint::Authorize | Endpoint::Rfc7591Registration => source_address(),
                _ => None,
            };
            let pending = PendingEndpointRequest {
                endpoint,
                method: owned(":method").unwrap_or_default(),
                path: path.into_owned(),
                authorization: owned("authorization"),
                content_type: owned("content-type"),
                origin: owned("origin"),
                client_address,
            };
            if end_of_stream {
                return self.serve(pending, Vec::new());
            }
            // Wait for the whole body: the parameters are in it. Without
            // allow_on_headers_stop_iteration Envoy never delivers it; the root's timer
            // watches for that (see `host::body_wait`).
            self.pending = Some(pending);
            if let Some(now) = EnvoyClock.now_millis() {
                self.body_waits.start(self.context_id, now);
                self.waits_for_body = true;
            }
            return Action::Pause;
        }
        let method = headers.get(":method").unwrap_or_default();
        let authorization = headers.get("authorization");
        if let Some(fleet) = self.fleet.clone() {
            let job = Job::Bearer { method, path, authorization };
            return self.decide_in_fleet(&fleet, job, 0, Some(&headers), false);
        }
        let request = ApiRequest { method: &method, path: &path, authorization: authorization.as_deref() };
        let answer = self.decide_locally(&Question::Bearer(request));
        self.deliver(answer, Some(&headers), false)
    }

    /// Only a request that passed a rated tier pays for this: its response learns what is left
    /// of the window (IETF ratelimit headers), which the upstream cannot know.
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            if hostcalls::add_map_value(MapType::HttpResponseHeaders, name, &value).is_err() {
                log::warn!("#{} cannot add {name} to the response", self.context_id);
            }
        }
        Action::Continue
    }

    /// Trailers end the request without a body callback marked end-of-stream: answer the
    /// pending endpoint request here, or the buffered body would go on to the upstream.
    ///
    /// While a fleet decision waits for etcd, the trailers wait too: continuing here would
    /// send the request upstream before the gateway has decided.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.body_arrived();
        if self.waiting.is_some() {
            self.trailers_held = true;
            return Action::Pause;
        }
        let Some(pending) = self.pending.take() else { return self.strip_trailers() };
        let body = self.buffered_body(self.config.max_body_bytes + 1);
        if body.len() > self.config.max_body_bytes {
            let response = self.with_gateway(|gateway| gateway.body_too_large());
            return self.respond(&response);
        }
        self.serve(pending, body)
    }

    /// While a fleet decision waits for etcd the body is buffered, never passed on: with
    /// `allow_on_headers_stop_iteration`, a `Continue` here resumes the whole request, headers
    /// included, before the decision has stripped them. Only the decision's delivery resumes
    /// the stream. (A body larger than Envoy's buffer limit meanwhile gets Envoy's 413.)
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.waiting.is_some() {
            return Action::Pause;
        }
        if self.pending.is_none() {
            return Action::Continue;
        }
        self.body_arrived();
        if body_size > self.config.max_body_bytes {
            self.pending = None;
            let response = self.with_gateway(|gateway| gateway.body_too_large());
            return self.respond(&response);
        }
        if !end_of_stream {
            // Pause here means "buffer": Envoy keeps the body until the last chunk arrives.
            return Action::Pause;
        }
        let Some(pending) = self.pending.take() else { return Action::Continue };
        let body = self.buffered_body(body_size);
        self.serve(pending, body)
    }
}
