//! The grant table (`oauth/grant_type.rs`) and the endpoint table (`oauth/endpoints.rs`) reach
//! the gateway: `/token` asks for each parameter a grant's row requires, in the row's order;
//! with every endpoint on, each row's path names an endpoint of that row, and each row with a
//! metadata field is advertised at its path.

use super::*;
use crate::oauth::grant_type::GrantType;

/// Every endpoint on: an issuer, registration, the code grant (which turns `/authorize` on),
/// an API with a resource identifier (which turns protected resource metadata on) and signing
/// keys (the JWKS).
fn everything_on() -> Rig {
    Rig::with_config(&config_with(&crate::config::tests::demo_with_lifecycle(), |v| {
        v["registration"]["grant_types"].as_array_mut().unwrap().push("authorization_code".into());
        v["apis"] = serde_json::json!([{ "name": "Mcp", "version": "1", "context": "/mcp",
            "resources": [{ "methods": ["POST"], "path": "/", "scopes": ["orders:read"] }] }]);
        v["signing"] = serde_json::json!({"keys": [crate::config::tests::rfc8037_signing_key()]});
    }))
}

#[test]
fn every_rows_path_names_an_endpoint_of_that_row() {
    let rig = everything_on();
    let gateway = rig.gateway();
    for kind in EndpointKind::ALL {
        let path = gateway.endpoint_path(kind).unwrap_or_else(|| panic!("{kind:?} is off"));
        let endpoint = gateway.endpoint(&format!("{path}?x=1"));
        assert_eq!(endpoint.map(|endpoint| endpoint.kind()), Some(kind), "{path}");
    }
    // Below its path only for the rows that serve below theirs.
    for kind in EndpointKind::ALL {
        let below = format!("{}/some-client", gateway.endpoint_path(kind).unwrap_or_default());
        let served = gateway.endpoint(&below).map(|endpoint| endpoint.kind());
        assert_eq!(served, kind.spec().serves_below.then_some(kind), "{below}");
    }
}

#[test]
fn every_row_with_a_metadata_field_is_advertised_at_its_path() {
    let rig = everything_on();
    let gateway = rig.gateway();
    let request = EndpointRequest {
        method: "GET",
        path: METADATA_PATH,
        authorization: None,
        content_type: None,
        body: b"",
        client_address: None,
    };
    let reply = gateway.serve(&Endpoint::Metadata, &request);
    let metadata: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let issuer = rig.config.issuer.as_deref().unwrap();
    for kind in EndpointKind::ALL {
        let Some(field) = kind.spec().metadata_field else { continue };
        let path = gateway.endpoint_path(kind).unwrap();
        assert_eq!(metadata[field], format!("{issuer}{path}"), "{kind:?}");
    }
}

/// An application that may use every grant, and a user.
const EVERY_GRANT: &str = r#"{
  "applications": [
    { "consumer_key": "all", "consumer_secret": "all-secret",
      "grant_types": ["client_credentials", "password", "refresh_token", "authorization_code"],
      "redirect_uris": ["https://app.example/cb"], "scopes": ["orders:read"] }
  ],
  "users": [ { "username": "alice", "password": "wonderland", "scopes": ["orders:read"] } ]
}"#;

#[test]
fn token_asks_for_each_parameter_a_grants_row_requires_in_the_rows_order() {
    let rig = Rig::with_config(EVERY_GRANT);
    let gateway = rig.gateway();
    let basic = format!("Basic {}", encode_basic_credentials("all", "all-secret"));
    for grant in GrantType::ALL {
        let mut body = format!("grant_type={}", grant.as_str());
        for &param in grant.spec().requires {
            let request = EndpointRequest {
                method: "POST",
                path: "/token",
                authorization: Some(&basic),
                content_type: Some("application/x-www-form-urlencoded"),
                body: body.as_bytes(),
                client_address: None,
            };
            let reply = gateway.serve(&Endpoint::Token, &request);
            let error: crate::oauth::messages::ErrorResponse = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!((reply.status, error.error.as_str()), (400, "invalid_request"), "{body}");
            assert_eq!(error.error_description.as_deref(), Some(param.missing()), "{body}");
            body.push_str(&format!("&{}=x", param.name()));
        }
    }
}
