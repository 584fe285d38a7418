//! What the gateway answers: its own replies ([`Response`]), changes to a request it lets
//! through ([`Forward`]), and the RFC 6749 §5.2 errors of its endpoints ([`OAuthError`]).

use crate::host::metrics::DenyReason;
use crate::host::StoreError;
use crate::oauth::messages::ErrorResponse;

/// A reply the gateway sends itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The body's length only: bodies carry tokens and registration secrets.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Response {
    /// 503 for a request the host could not serve (a store read, the clock, a header rewrite).
    pub fn unavailable() -> Response {
        json_response(503, Vec::new(), ErrorResponse::bare("temporarily_unavailable").to_json())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Headers that carry the caller's identity upstream. The filter sets them; any copy a client
/// sends is removed first, so upstreams can trust them (RFC 9700 §4.13).
pub const CLIENT_ID_HEADER: &str = "x-tokengate-client-id";
pub const USERNAME_HEADER: &str = "x-tokengate-username";
pub const SCOPE_HEADER: &str = "x-tokengate-scope";
/// The API a request reached, and the tier of the subscription it came through.
pub const API_HEADER: &str = "x-tokengate-api";
pub const TIER_HEADER: &str = "x-tokengate-tier";
/// The Envoy cluster a request goes to, set only when its key type's upstream is named (a
/// sandbox token, usually): Envoy's route table sends it there (`cluster_header`).
pub const UPSTREAM_HEADER: &str = "x-tokengate-upstream";
/// What every identity header's name starts with: trailers lose any of them.
pub const IDENTITY_HEADER_PREFIX: &str = "x-tokengate-";

/// Changes to a request that goes on upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub remove_headers: &'static [&'static str],
    pub set_headers: Vec<(&'static str, String)>,
    /// Added to the upstream's response: the IETF ratelimit headers of a rated tier (empty,
    /// and then no response host call, for everything else).
    pub response_headers: Vec<(&'static str, String)>,
}

/// The decision on a request to an API (see the gateway's module documentation for the words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Refused: the gateway answers it itself.
    Deny(Denial),
    Forward(Forward),
}

impl Outcome {
    /// True when the answer says the store holds no live token for the request: a store that
    /// is one replica's cache (fleet mode) may not have seen yet a token another replica just
    /// issued, so this answer must rest on the authoritative store's word, never on the cache.
    pub fn rests_on_the_store(&self) -> bool {
        matches!(self, Outcome::Deny(Denial { grounds: Grounds::NoLiveToken, .. }))
    }
}

/// A refused request: the stat it counts under, what it was refused on, and the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
    pub grounds: Grounds,
    pub response: Response,
}

/// What a denial rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounds {
    /// The request itself, or what its live token may do: a malformed request, no such
    /// resource, a scope, subscription or tier that refuses it.
    Request,
    /// No live token: none presented, or one the store does not hold as live (unknown,
    /// expired, revoked).
    NoLiveToken,
    /// The store or the clock could not be read.
    Unavailable,
}

impl Denial {
    /// A denial counted under `reason`: a missing or invalid token is refused for want of a
    /// live token, anything else for the request.
    pub fn new(reason: DenyReason, response: Response) -> Denial {
        let grounds = match reason {
            DenyReason::MissingToken | DenyReason::InvalidToken => Grounds::NoLiveToken,
            _ => Grounds::Request,
        };
        Denial { reason, grounds, response }
    }

    /// 503 for a token that could not be looked up (counted as an invalid token).
    pub fn unavailable() -> Denial {
        Denial {
            reason: DenyReason::InvalidToken,
            grounds: Grounds::Unavailable,
            response: Response::unavailable(),
        }
    }
}

/// What went wrong at an endpoint. Each kind fixes its error code, its HTTP status and the
/// header it needs, so no caller picks behaviour by a status number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorKind {
    /// 400 `invalid_request`.
    InvalidRequest,
    /// 405 `invalid_request`, with `Allow` listing the methods the endpoint takes.
    MethodNotAllowed { allow: &'static str },
    /// 413 `invalid_request`.
    BodyTooLarge,
    /// 401 `invalid_client`, with a `Basic` challenge (RFC 6749 §5.2).
    InvalidClient,
    /// 401 `invalid_client` without a challenge: the client sent its credentials in the body
    /// (`client_secret_post`). RFC 6749 §5.2 requires `WWW-Authenticate` only when the client
    /// used the Authorization header, and a Basic challenge would invite a method it did not use.
    InvalidClientInBody,
    /// 400 `invalid_grant`.
    InvalidGrant,
    /// 400 `unauthorized_client`.
    UnauthorizedClient,
    /// 400 `unsupported_grant_type`.
    UnsupportedGrantType,
    /// 400 `invalid_scope`.
    InvalidScope,
    /// 400 `invalid_client_metadata` (RFC 7591 §3.2.2).
    InvalidClientMetadata,
    /// 400 `invalid_redirect_uri` (RFC 7591 §3.2.2).
    InvalidRedirectUri,
    /// 400 `invalid_target` (RFC 8707 §2): a `resource` that is malformed, not served here,
    /// or wider than the grant's.
    InvalidTarget,
    /// 401 `invalid_token`, with a `Bearer` challenge (RFC 6750 §3): an RFC 7592 registration
    /// access token missing, wrong, or for a client that does not exist (§2.1: all alike).
    InvalidRegistrationToken,
    /// 409 `invalid_client_metadata`: the registration exists already.
    DuplicateClient,
    /// 403 `access_denied`: the caller is who it says, and may not do this (a registration past
    /// `registration.max_per_owner`).
    AccessDenied,
    /// 404 `not_found`.
    NotFound,
    /// 429 `access_denied`: an open registration past its quota per source or in all (no
    /// RFC 7591 §3.2.2 code fits: nothing is wrong with the metadata). No `Retry-After`: a slot
    /// frees when a registration is deleted or expires unused, not after a set time.
    RegistrationQuota,
    /// 409 `subscription_exists`: the application is subscribed to that API already.
    AlreadySubscribed,
    /// 429 `temporarily_unavailable`, with `Retry-After`: a locked-out name.
    LockedOut { retry_after_secs: u64 },
    /// 503 `temporarily_unavailable`: the store could not serve the request.
    Unavailable,
    /// 503 `temporarily_unavailable`, with `Retry-After`: this worker's budget of slow password
    /// hashing is spent for now (see [`crate::state::hash_budget`]).
    Busy { retry_after_secs: u64 },
}

impl ErrorKind {
    pub(super) fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::InvalidGrant
            | ErrorKind::UnauthorizedClient
            | ErrorKind::UnsupportedGrantType
            | ErrorKind::InvalidScope
            | ErrorKind::InvalidClientMetadata
            | ErrorKind::InvalidRedirectUri
            | ErrorKind::InvalidTarget => 400,
            ErrorKind::InvalidClient
            | ErrorKind::InvalidClientInBody
            | ErrorKind::InvalidRegistrationToken => 401,
            ErrorKind::AccessDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed { .. } => 405,
            ErrorKind::DuplicateClient | ErrorKind::AlreadySubscribed => 409,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::LockedOut { .. } | ErrorKind::RegistrationQuota => 429,
            ErrorKind::Unavailable | ErrorKind::Busy { .. } => 503,
        }
    }

    pub(super) fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed { .. } | ErrorKind::BodyTooLarge => {
                "invalid_request"
            }
            ErrorKind::InvalidClient | ErrorKind::InvalidClientInBody => "invalid_client",
            ErrorKind::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorKind::InvalidTarget => "invalid_target",
            ErrorKind::InvalidRegistrationToken => "invalid_token",
            ErrorKind::InvalidGrant => "invalid_grant",
            ErrorKind::UnauthorizedClient => "unauthorized_client",
            ErrorKind::UnsupportedGrantType => "unsupported_grant_type",
            ErrorKind::InvalidScope => "invalid_scope",
            ErrorKind::InvalidClientMetadata | ErrorKind::DuplicateClient => "invalid_client_metadata",
            ErrorKind::AccessDenied | ErrorKind::RegistrationQuota => "access_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadySubscribed => "subscription_exists",
            ErrorKind::LockedOut { .. } | ErrorKind::Unavailable | ErrorKind::Busy { .. } => {
                "temporarily_unavailable"
            }
        }
    }

    /// The error with a fixed description that never echoes input.
    pub(super) const fn because(self, description: &'static str) -> OAuthError {
        OAuthError { kind: self, description }
    }
}

/// An endpoint's error: its kind and a fixed description (RFC 6749 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OAuthError {
    pub(super) kind: ErrorKind,
    pub(super) description: &'static str,
}

impl OAuthError {
    /// The §5.2 JSON reply; `realm` names the Basic challenge of an `invalid_client`.
    pub(super) fn to_response(self, realm: &str) -> Response {
        let mut headers = Vec::new();
        match self.kind {
            ErrorKind::InvalidClient => {
                headers.push(("www-authenticate", format!("Basic realm=\"{realm}\"")))
            }
            ErrorKind::InvalidRegistrationToken => headers
                .push(("www-authenticate", format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))),
            ErrorKind::MethodNotAllowed { allow } => headers.push(("allow", allow.to_owned())),
            ErrorKind::LockedOut { retry_after_secs } | ErrorKind::Busy { retry_after_secs } => {
                headers.push(("retry-after", retry_after_secs.to_string()))
            }
            _ => {}
        }
        let body = ErrorResponse::new(self.kind.code(), self.description).to_json();
        no_store_json(self.kind.status(), headers, body)
    }
}

/// Too many failed attempts for this name: no secret is checked until the lockout ends.
pub(super) fn locked_out(retry_after_secs: u64) -> OAuthError {
    ErrorKind::LockedOut { retry_after_secs }.because("too many failed attempts; try again later")
}

pub(super) const CLIENT_AUTH_FAILED: OAuthError = ErrorKind::InvalidClient
    .because("client authentication failed: send Authorization: Basic base64(consumer-key:consumer-secret)");
pub(super) const CLIENT_POST_AUTH_FAILED: OAuthError = ErrorKind::InvalidClientInBody
    .because("client authentication failed: send client_id and client_secret, or HTTP Basic");
/// This worker spent its PBKDF2 budget for the second: a second later it has a new one.
pub(super) const SIGN_IN_BUSY: OAuthError =
    ErrorKind::Busy { retry_after_secs: 1 }.because("signing in is busy; try again in a moment");
pub(super) const STORE_UNAVAILABLE: OAuthError =
    ErrorKind::Unavailable.because("the token store is unavailable; try again later");

impl From<StoreError> for OAuthError {
    fn from(_: StoreError) -> Self {
        STORE_UNAVAILABLE
    }
}

/// A JSON response that must not be cached: tokens, secrets, and errors about them
/// (RFC 6749 §5.1).
pub(super) fn no_store_json(
    status: u16,
    mut headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> Response {
    headers.push(("content-type", "application/json".to_owned()));
    headers.push(("cache-control", "no-store".to_owned()));
    headers.push(("pragma", "no-cache".to_owned()));
    Response { status, headers, body }
}

pub(super) fn json_response(
    status: u16,
    mut headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> Response {
    headers.push(("content-type", "application/json".to_owned()));
    Response { status, headers, body }
}
