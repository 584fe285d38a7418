//! Protected resource metadata (RFC 9728), one document per API with a resource identifier.
//!
//! The endpoint table has one row for the well-known path; the path after it is the resource
//! identifier's own (§3.1: `https://h/mcp` → `/.well-known/oauth-protected-resource/mcp`), so
//! which API a request names is decided here, against the configured identifiers, rather than
//! by a row per API. The root form (the bare well-known path) describes the API whose
//! identifier has no path, if one does; the gateway as a whole is no resource a token can name.

use serde::Serialize;

use super::reply::{json_response, Response};
use super::{EndpointRequest, Gateway};
use crate::config::{metadata_suffix, Api};
use crate::oauth::endpoints::EndpointKind;
use crate::oauth::messages::ErrorResponse;
use crate::oauth::routes::Access;

/// RFC 9728 §2.
#[derive(Serialize)]
struct ResourceMetadata<'a> {
    resource: &'a str,
    /// §2: the issuers whose tokens the resource takes; none without a configured issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_servers: Option<[&'a str; 1]>,
    /// The scopes its resources require, sorted.
    scopes_supported: Vec<&'a str>,
    /// §2: tokens in the Authorization header only (RFC 6750 §2.1; §2.3 is refused).
    bearer_methods_supported: [&'static str; 1],
    resource_name: String,
}

impl Gateway<'_> {
    /// `GET /.well-known/oauth-protected-resource[<path>]`: the document of the API whose
    /// resource identifier has that path, or 404.
    pub(super) fn resource_metadata_endpoint(&self, request: &EndpointRequest, suffix: &str) -> Response {
        if request.method != "GET" && request.method != "HEAD" {
            let body = ErrorResponse::bare("method_not_allowed").to_json();
            let allow = EndpointKind::ResourceMetadata.spec().methods;
            return json_response(405, vec![("allow", allow.to_owned())], body);
        }
        let found = self.config.apis.iter().enumerate().find_map(|(index, api)| {
            let resource = api.resource.as_deref()?;
            (metadata_suffix(resource) == Some(suffix)).then_some((index, api, resource))
        });
        let Some((index, api, resource)) = found else {
            return json_response(404, Vec::new(), ErrorResponse::bare("not_found").to_json());
        };
        let document = ResourceMetadata {
            resource,
            authorization_servers: self.config.issuer.as_deref().map(|issuer| [issuer]),
            scopes_supported: self.api_scopes(index),
            bearer_methods_supported: ["header"],
            resource_name: resource_name(api),
        };
        json_response(200, Vec::new(), serde_json::to_vec(&document).unwrap_or_default())
    }

    /// Every scope a resource of API `index` requires, sorted, without repeats.
    fn api_scopes(&self, index: usize) -> Vec<&str> {
        let mut scopes: Vec<&str> = Vec::new();
        let rules = self.config.routes.rules().iter().filter(|rule| rule.api == Some(index));
        for rule in rules {
            let Access::Scopes { names } = &rule.access else { continue };
            for name in names {
                if let Err(at) = scopes.binary_search(&name.as_str()) {
                    scopes.insert(at, name);
                }
            }
        }
        scopes
    }
}

/// The API's name and version, as WSO2 shows an API to people.
fn resource_name(api: &Api) -> String {
    format!("{} {}", api.name, api.version)
}
