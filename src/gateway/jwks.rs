//! The JWK Set (RFC 7517 §5) of the signing keys: what verifiers of the gateway's tokens fetch.

use super::reply::{json_response, Response};
use super::{EndpointRequest, Gateway};
use crate::oauth::endpoints::EndpointKind;
use crate::oauth::messages::ErrorResponse;

/// How long verifiers may cache the JWKS (RFC 9111 §5.2.2.1). Short: a key added to the
/// configuration reaches every verifier within five minutes, so a new key can sign five
/// minutes after it is published (docs/tokens-and-keys.md, "Rotation"), while a verifier
/// still fetches at most once every five minutes, not once per token.
pub const JWKS_MAX_AGE_SECS: u32 = 300;

impl<'a> Gateway<'a> {
    /// `GET /oauth2/jwks` (configurable), served when `signing` is configured: the document
    /// built once from the configuration, public members only.
    pub(super) fn jwks_endpoint(&self, request: &EndpointRequest) -> Response {
        let Some(signing) = self.config.signing.as_ref() else {
            return json_response(404, Vec::new(), ErrorResponse::bare("not_found").to_json());
        };
        if request.method != "GET" && request.method != "HEAD" {
            let body = ErrorResponse::bare("method_not_allowed").to_json();
            let allow = EndpointKind::Jwks.spec().methods;
            return json_response(405, vec![("allow", allow.to_owned())], body);
        }
        let headers = vec![
            // RFC 7517 §8.5: the JWK Set's own media type.
            ("content-type", "application/jwk-set+json".to_owned()),
            ("cache-control", format!("public, max-age={JWKS_MAX_AGE_SECS}")),
        ];
        Response { status: 200, headers, body: signing.jwks.clone().into_bytes() }
    }
}
