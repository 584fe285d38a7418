//! Bearer checks on every request that is not for one of the gateway's endpoints (RFC 6750).

use super::reply::{
    json_response, Forward, Outcome, Response, CLIENT_ID_HEADER, SCOPE_HEADER, USERNAME_HEADER,
};
use super::{split_path, ApiRequest, Gateway};
use crate::host::metrics::{DenyReason, Metric};
use crate::oauth::credentials::is_b64token;
use crate::oauth::form::query_parameter_names;
use crate::oauth::messages::ErrorResponse;
use crate::oauth::routes::{has_ambiguous_segment, Access, RouteMatch};
use crate::state::grants::{GrantOwner, LookupError};

/// Headers some frameworks honour to change a request's method or path after the gateway
/// checked it: a GET allowed with `orders:read` would become a DELETE upstream.
const OVERRIDE: &str = "x-http-method-override";
const METHOD: &str = "x-http-method";
const METHOD_OVERRIDE: &str = "x-method-override";
const ORIGINAL_URL: &str = "x-original-url";
const REWRITE_URL: &str = "x-rewrite-url";
/// What a forwarded request loses, by (`forward_authorization`, `forward_method_overrides`):
/// the identity headers always (the gateway sets them), the token unless it is forwarded
/// (by default it is not), the method overrides unless they are kept (by default they are not).
/// Static lists: the filter removes only those the request has, so the list costs no host call.
#[rustfmt::skip]
const STRIP_ALL: &[&str] = &[
    CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER, "authorization",
    OVERRIDE, METHOD, METHOD_OVERRIDE, ORIGINAL_URL, REWRITE_URL,
];
#[rustfmt::skip]
const STRIP_KEEPING_AUTHORIZATION: &[&str] = &[
    CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER,
    OVERRIDE, METHOD, METHOD_OVERRIDE, ORIGINAL_URL, REWRITE_URL,
];
const STRIP_KEEPING_OVERRIDES: &[&str] = &[CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER, "authorization"];
const STRIP_IDENTITY_ONLY: &[&str] = &[CLIENT_ID_HEADER, USERNAME_HEADER, SCOPE_HEADER];

impl<'a> Gateway<'a> {
    pub fn authorize(&self, request: &ApiRequest) -> Outcome {
        let outcome = self.check_bearer(request);
        match &outcome {
            Ok(_) => self.metrics.add(Metric::RequestsAllowed, 1),
            Err((reason, _)) => self.metrics.add(Metric::RequestsDenied(*reason), 1),
        }
        match outcome {
            Ok(forward) => Outcome::Forward(forward),
            Err((_, response)) => Outcome::Respond(response),
        }
    }

    fn check_bearer(&self, request: &ApiRequest) -> Result<Forward, (DenyReason, Response)> {
        let (path, query) = split_path(request.path);
        // RFC 6750 §2.3: tokens in URLs leak into logs; refuse them outright.
        if query.is_some_and(|query| query_parameter_names(query).any(|name| name == "access_token")) {
            let description = "send the token in the Authorization header, not the URL";
            return Err((
                DenyReason::InvalidRequest,
                self.bearer_error(400, "invalid_request", description, None),
            ));
        }
        // A path some upstream would resolve to another resource than the rule that matched.
        if has_ambiguous_segment(path) {
            let description = "the path has a dot segment or a ';' parameter";
            let body = ErrorResponse::new("invalid_request", description).to_json();
            return Err((DenyReason::InvalidRequest, json_response(400, Vec::new(), body)));
        }
        let required = match self.config.routes.find(request.method, path) {
            RouteMatch::Found(Access::Public) => return Ok(self.forward(None)),
            RouteMatch::Found(Access::Scopes { names }) => names,
            RouteMatch::NotFound => {
                let body = ErrorResponse::bare("not_found").to_json();
                return Err((DenyReason::NoSuchResource, json_response(404, Vec::new(), body)));
            }
            RouteMatch::MethodNotAllowed(methods) => {
                let body = ErrorResponse::bare("method_not_allowed").to_json();
                let headers = vec![("allow", methods.join(", "))];
                return Err((DenyReason::NoSuchResource, json_response(405, headers, body)));
            }
        };
        let token = match request.authorization.map(bearer_token) {
            None | Some(Err(BearerError::OtherScheme)) => {
                return Err((DenyReason::MissingToken, self.bearer_challenge()));
            }
            Some(Err(BearerError::Malformed)) => {
                let description = "the Authorization header is malformed";
                return Err((
                    DenyReason::InvalidRequest,
                    self.bearer_error(400, "invalid_request", description, None),
                ));
            }
            Some(Ok(token)) => token,
        };
        let invalid_token = |description| {
            (DenyReason::InvalidToken, self.bearer_error(401, "invalid_token", description, None))
        };
        let unavailable = || (DenyReason::InvalidToken, Response::unavailable());
        let Ok(now) = self.now() else { return Err(unavailable()) };
        let grant = match self.store.find_access(token, now) {
            Ok(grant) => grant,
            Err(LookupError::Unknown) => return Err(invalid_token("the access token is unknown or revoked")),
            Err(LookupError::Expired) => return Err(invalid_token("the access token expired")),
            Err(LookupError::Store(_)) => return Err(unavailable()),
        };
        let standing = match self.standing(&grant.owner, grant.issued_at) {
            Ok(Some(standing)) => standing,
            Ok(None) => return Err(invalid_token("the access token is unknown or revoked")),
            Err(_) => return Err(unavailable()),
        };
        let held = self.held_scopes(&grant.scopes, &standing);
        if !required.iter().all(|name| held.contains(&name.as_str())) {
            let description = "the access token lacks a required scope";
            let response =
                self.bearer_error(403, "insufficient_scope", description, Some(required.join(" ")));
            return Err((DenyReason::InsufficientScope, response));
        }
        let scopes = held.join(" ");
        Ok(self.forward(Some((grant.owner, scopes))))
    }

    fn forward(&self, identity: Option<(GrantOwner, String)>) -> Forward {
        let remove_headers = match (self.config.forward_authorization, self.config.forward_method_overrides) {
            (false, false) => STRIP_ALL,
            (true, false) => STRIP_KEEPING_AUTHORIZATION,
            (false, true) => STRIP_KEEPING_OVERRIDES,
            (true, true) => STRIP_IDENTITY_ONLY,
        };
        let mut set_headers = Vec::with_capacity(3);
        if let Some((owner, scopes)) = identity {
            set_headers.push((CLIENT_ID_HEADER, owner.client_id));
            if let Some((username, _)) = owner.user {
                set_headers.push((USERNAME_HEADER, username));
            }
            set_headers.push((SCOPE_HEADER, scopes));
        }
        Forward { remove_headers, set_headers }
    }

    /// RFC 6750 §3: no credentials, so no error code, just the challenge.
    fn bearer_challenge(&self) -> Response {
        let challenge = format!("Bearer realm=\"{}\"", self.config.realm);
        Response { status: 401, headers: vec![("www-authenticate", challenge)], body: Vec::new() }
    }

    fn bearer_error(&self, status: u16, code: &str, description: &str, scope: Option<String>) -> Response {
        let mut challenge = format!(
            "Bearer realm=\"{}\", error=\"{code}\", error_description=\"{description}\"",
            self.config.realm
        );
        if let Some(scope) = &scope {
            challenge.push_str(&format!(", scope=\"{scope}\""));
        }
        let body = ErrorResponse { scope, ..ErrorResponse::new(code, description) };
        json_response(status, vec![("www-authenticate", challenge)], body.to_json())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum BearerError {
    OtherScheme,
    Malformed,
}

/// The token of `Authorization: Bearer <b64token>` (RFC 6750 §2.1), scheme in any case.
pub(super) fn bearer_token(header: &str) -> Result<&str, BearerError> {
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::OtherScheme);
    }
    let token = rest.trim_matches(' ');
    if is_b64token(token) {
        Ok(token)
    } else {
        Err(BearerError::Malformed)
    }
}
