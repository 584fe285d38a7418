//! The revocation endpoint (RFC 7009).

use super::reply::{no_store_json, ErrorKind, OAuthError, Response};
use super::{EndpointRequest, Gateway};
use crate::host::metrics::Metric;
use crate::state::grants::Revocation;

impl<'a> Gateway<'a> {
    /// `POST /revoke`: the application revokes one of its own tokens. Unknown tokens get 200
    /// too (RFC 7009 §2.2), so revocation cannot be used to probe for tokens; a token of
    /// another application is refused and left working (§2.1).
    pub(super) fn revocation_endpoint(&self, request: &EndpointRequest) -> Response {
        match self.revoke(request) {
            Ok(()) => no_store_json(200, Vec::new(), b"{}".to_vec()),
            Err(error) => self.oauth_error_response(error),
        }
    }

    fn revoke(&self, request: &EndpointRequest) -> Result<(), OAuthError> {
        let form = self.read_form(request)?;
        let app = self.authenticate_client_or_public(request, &form)?;
        let token = form.get("token").ok_or(ErrorKind::InvalidRequest.because("token is missing"))?;
        // token_type_hint is only a hint (§2.1): the token's own format says what it is, so
        // a wrong or unknown hint changes nothing.
        let grace = self.config.refresh_reuse_grace_ms;
        match self.store.revoke(token, &app.consumer_key, self.now()?, grace)? {
            Revocation::Revoked => {
                self.metrics.add(Metric::Revocations, 1);
                Ok(())
            }
            Revocation::Unknown => Ok(()),
            Revocation::NotOwner => {
                Err(ErrorKind::UnauthorizedClient.because("the token was not issued to this client"))
            }
        }
    }
}
