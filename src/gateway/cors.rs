//! CORS at the endpoints whose row says so (`/token` and `/revoke`) for the origins of configured redirect URIs, so a browser
//! app (a public client) can redeem its code and refresh its tokens: a web client's exactly, a
//! native client's loopback one on any port, as its redirect URI (RFC 8252 §7.3). Other
//! origins get no CORS header at all, and their preflight is answered as any OPTIONS request
//! is.

use super::reply::Response;
use super::{Endpoint, Gateway};
use crate::oauth::redirect_uri::{self, ApplicationType};

impl<'a> Gateway<'a> {
    /// `origin` if the endpoint's row allows CORS and the origin is a registered one.
    pub(super) fn cors_origin<'o>(&self, endpoint: &Endpoint, origin: Option<&'o str>) -> Option<&'o str> {
        origin.filter(|origin| endpoint.kind().spec().cors && self.is_cors_origin(origin))
    }

    /// A web client's redirect URI's origin, exactly (RFC 9700 §4.1.3 keeps the port exception
    /// to native apps: another port on the same machine is another program); a native
    /// client's loopback one on any port, since its redirect URI may carry any port (RFC 8252
    /// §7.3) and the app is served from there.
    fn is_cors_origin(&self, origin: &str) -> bool {
        self.config.authorization.as_ref().is_some_and(|flow| {
            flow.cors_origins.iter().any(|registered| registered == origin)
                || flow
                    .native_cors_origins
                    .iter()
                    .any(|registered| redirect_uri::matches(registered, origin, ApplicationType::Native))
        })
    }
}

/// A preflight's answer (Fetch standard, CORS protocol): the endpoint's methods (POST) with
/// the form's headers.
pub(super) fn preflight(origin: &str, methods: &str) -> Response {
    let headers = vec![
        ("access-control-allow-origin", origin.to_owned()),
        ("access-control-allow-methods", methods.to_owned()),
        ("access-control-allow-headers", "authorization, content-type".to_owned()),
        ("access-control-max-age", "600".to_owned()),
        ("vary", "Origin".to_owned()),
        ("cache-control", "no-store".to_owned()),
    ];
    Response { status: 204, headers, body: Vec::new() }
}

/// The headers of an actual (not preflight) cross-origin answer.
pub(super) fn allow_origin(response: &mut Response, origin: &str) {
    response.headers.push(("access-control-allow-origin", origin.to_owned()));
    response.headers.push(("vary", "Origin".to_owned()));
}
