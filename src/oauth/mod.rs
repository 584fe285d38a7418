//! OAuth 2.0 on the wire, as pure rules: what a request may say and how it is read.
//!
//! - [`grant_type`]: the grants (RFC 6749 §4), one row each: the parameters each requires and
//!   refuses at `/token`, and whether it issues a first refresh token.
//! - [`endpoints`]: the gateway's own endpoints, their methods, CORS and RFC 8414 fields.
//! - [`form`]: `application/x-www-form-urlencoded` bodies, strictly (RFC 6749 Appendix B).
//! - [`credentials`]: HTTP Basic client authentication (§2.3.1), the config's secret hashes,
//!   decoys and constant-time checks.
//! - [`scope`]: the scope grammar (§3.3) and scope sets.
//! - [`routes`]: the resource table: method and path template to the scopes a token needs.
//! - [`pkce`]: PKCE `S256` challenges and verifiers (RFC 7636), constant-time.
//! - [`redirect_uri`]: registrable redirect URIs and their exact match (RFC 9700 §4.1.3, RFC 8252 §7.3).
//! - [`messages`]: the token and error responses (§5.1, §5.2), shared with the browser package.
//! - [`resource_indicator`]: the `resource` parameter (RFC 8707) and a grant's audience.
//! - [`openid`]: OpenID Connect's rules: ID token claims and `at_hash`, `prompt`, the
//!   claims each scope releases.
//!
//! Nothing here touches state or the host.

/// Where RFC 8414 authorization server metadata is served (§3).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Where RFC 9728 protected resource metadata is served: this path for a resource identifier
/// without a path, this path followed by the identifier's path otherwise (§3.1).
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Where OpenID Connect Discovery's provider metadata is served (Discovery §4).
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

pub mod credentials;
pub mod endpoints;
pub mod form;
pub mod grant_type;
pub mod messages;
pub mod openid;
pub mod pkce;
pub mod redirect_uri;
pub mod resource_indicator;
pub mod routes;
pub mod scope;
