//! The JWK Set endpoint (RFC 7517 §5) and its place in the metadata (RFC 8414 `jwks_uri`).

use super::*;

fn signing_rig(jwks_endpoint: Option<&str>) -> Rig {
    Rig::with_config(&config_with(&crate::config::tests::demo_with_lifecycle(), |v| {
        v["signing"] = serde_json::json!({"keys": [crate::config::tests::rfc8037_signing_key()]});
        if let Some(path) = jwks_endpoint {
            v["signing"]["jwks_endpoint"] = path.into();
        }
    }))
}

#[test]
fn the_jwks_lists_the_public_keys_and_may_be_cached_briefly() {
    let rig = signing_rig(None);
    let reply = rig.endpoint("GET", "/oauth2/jwks", None, None, "");
    assert_eq!(reply.0.status, 200);
    let header = |name: &str| reply.0.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    assert_eq!(header("cache-control").as_deref(), Some("public, max-age=300"));
    assert_eq!(header("content-type").as_deref(), Some("application/jwk-set+json"));
    let jwks = reply.json();
    assert_eq!(jwks["keys"][0]["kid"], "rfc8037");
    assert_eq!(jwks["keys"][0]["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    assert!(jwks["keys"][0].get("d").is_none(), "{jwks}");
    assert_eq!(rig.endpoint("HEAD", "/oauth2/jwks", None, None, "").0.status, 200);
    let post = rig.endpoint("POST", "/oauth2/jwks", None, None, "");
    assert_eq!(post.0.status, 405);
    assert!(post.0.headers.iter().any(|(name, value)| *name == "allow" && value == "GET, HEAD"));
}

#[test]
fn the_jwks_is_advertised_at_its_configured_path() {
    let rig = signing_rig(Some("/keys"));
    assert!(rig.gateway().endpoint("/oauth2/jwks").is_none());
    assert_eq!(rig.endpoint("GET", "/keys", None, None, "").0.status, 200);
    let metadata = rig.endpoint("GET", "/.well-known/oauth-authorization-server", None, None, "").json();
    assert_eq!(metadata["jwks_uri"], "http://127.0.0.1:8080/keys");
}

#[test]
fn without_signing_keys_there_is_no_jwks_and_no_jwks_uri() {
    let rig = Rig::with_config(&crate::config::tests::demo_with_lifecycle());
    assert!(rig.gateway().endpoint("/oauth2/jwks").is_none(), "the path is the APIs' like any other");
    let metadata = rig.endpoint("GET", "/.well-known/oauth-authorization-server", None, None, "").json();
    assert!(metadata.get("jwks_uri").is_none(), "{metadata}");
}
