//! The gateway's own endpoints, declared once.
//!
//! Each row of `endpoints!` below is an endpoint: the configuration field that sets its path
//! (named so in configuration errors), the methods its own path takes, whether browser apps may
//! call it cross-origin (CORS), its field in the RFC 8414 metadata, and whether it also serves
//! the paths below its own (`<endpoint>/<client id>`). The enum, [`EndpointKind::ALL`] and
//! [`EndpointKind::spec`] are generated from the rows. The configuration's path checks, the
//! gateway's matching, its metadata and its CORS read them.
//!
//! The rows' order is the order the configuration checks paths in: of two endpoints on one
//! path, the later row is the one named.

/// What an endpoint is: one row of `endpoints!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointSpec {
    /// The configuration field that sets its path, as configuration errors name it.
    pub config_field: &'static str,
    /// The methods its own path takes, as an `Allow` header lists them.
    pub methods: &'static str,
    /// Whether the origins of configured redirect URIs may call it from a browser (CORS).
    pub cors: bool,
    /// Its field in the authorization server metadata (RFC 8414 §2), if it is advertised.
    pub metadata_field: Option<&'static str>,
    /// Whether it serves the paths below its own too (`<endpoint>/<client id>`).
    pub serves_below: bool,
}

/// Declares [`EndpointKind`] and its table from rows of `Variant { field: value, .. }`.
macro_rules! endpoints {
    ($(
        $(#[$meta:meta])*
        $variant:ident {
            config_field: $config_field:literal,
            methods: $methods:literal,
            cors: $cors:literal,
            metadata_field: $metadata_field:expr,
            serves_below: $serves_below:literal $(,)?
        }
    )*) => {
        /// One of the gateway's own endpoints, whatever the path below it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum EndpointKind {
            $($(#[$meta])* $variant,)*
        }

        impl EndpointKind {
            /// Every endpoint, in the rows' order.
            pub const ALL: [EndpointKind; [$($config_field),*].len()] = [$(EndpointKind::$variant),*];

            /// The endpoint's row.
            pub const fn spec(self) -> EndpointSpec {
                match self {
                    $(EndpointKind::$variant => EndpointSpec {
                        config_field: $config_field,
                        methods: $methods,
                        cors: $cors,
                        metadata_field: $metadata_field,
                        serves_below: $serves_below,
                    },)*
                }
            }
        }
    };
}

endpoints! {
    /// RFC 6749 §3.2.
    Token {
        config_field: "token_endpoint",
        methods: "POST",
        cors: true,
        metadata_field: Some("token_endpoint"),
        serves_below: false,
    }
    /// RFC 7009.
    Revocation {
        config_field: "revocation_endpoint",
        methods: "POST",
        cors: true,
        metadata_field: Some("revocation_endpoint"),
        serves_below: false,
    }
    /// RFC 7662.
    Introspection {
        config_field: "introspection_endpoint",
        methods: "POST",
        cors: false,
        metadata_field: Some("introspection_endpoint"),
        serves_below: false,
    }
    /// RFC 8414 §3, at [`super::METADATA_PATH`] (not configurable).
    Metadata {
        config_field: "metadata endpoint",
        methods: "GET, HEAD",
        cors: false,
        metadata_field: None,
        serves_below: false,
    }
    /// RFC 6749 §3.1: the login page and its form, when the code flow is on.
    Authorization {
        config_field: "authorization.endpoint",
        methods: "GET, POST",
        cors: false,
        metadata_field: Some("authorization_endpoint"),
        serves_below: false,
    }
    /// WSO2's v0.17 dynamic client registration: works, but is not what RFC 8414 clients
    /// expect at `registration_endpoint`.
    Wso2Registration {
        config_field: "registration.endpoint",
        methods: "POST",
        cors: false,
        metadata_field: None,
        serves_below: true,
    }
    /// RFC 7591, and RFC 7592 client configuration below it.
    Rfc7591Registration {
        config_field: "registration.rfc7591_endpoint",
        methods: "POST",
        cors: false,
        metadata_field: Some("registration_endpoint"),
        serves_below: true,
    }
    /// RFC 9728 §3, at [`super::RESOURCE_METADATA_PATH`] (not configurable) followed by each
    /// API's resource path (§3.1), when some API has a resource identifier.
    ResourceMetadata {
        config_field: "protected resource metadata endpoint",
        methods: "GET, HEAD",
        cors: false,
        metadata_field: None,
        serves_below: true,
    }
    /// The JWK Set (RFC 7517 §5) of the signing keys, when `signing` is configured: public,
    /// and fetched by browser apps that verify ID tokens, so CORS is on.
    Jwks {
        config_field: "signing.jwks_endpoint",
        methods: "GET, HEAD",
        cors: true,
        metadata_field: Some("jwks_uri"),
        serves_below: false,
    }
    /// OpenID Connect's UserInfo (Core §5.3), when `signing` is configured: called by browser
    /// apps with the access token, so CORS is on.
    Userinfo {
        config_field: "signing.userinfo_endpoint",
        methods: "GET, POST",
        cors: true,
        metadata_field: Some("userinfo_endpoint"),
        serves_below: false,
    }
    /// OpenID Connect Discovery §4, at [`super::OPENID_CONFIGURATION_PATH`] (not
    /// configurable), when `signing` is configured: public, read by browser apps, so CORS is on.
    OpenIdConfiguration {
        config_field: "openid configuration endpoint",
        methods: "GET, HEAD",
        cors: true,
        metadata_field: None,
        serves_below: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_endpoints_share_a_config_field_or_a_metadata_field() {
        for (i, kind) in EndpointKind::ALL.into_iter().enumerate() {
            for other in EndpointKind::ALL.into_iter().skip(i + 1) {
                assert_ne!(kind.spec().config_field, other.spec().config_field);
                if kind.spec().metadata_field.is_some() {
                    assert_ne!(kind.spec().metadata_field, other.spec().metadata_field);
                }
            }
        }
    }
}
