//! Registered clients in the code flow: redirect URIs at registration (RFC 7591
//! `redirect_uris`, WSO2 v0.17 `callbackUrl`) and their application type.

use super::*;

const REGISTERING: &str = r#"{
  "issuer": "https://127.0.0.1:8243",
  "applications": [ { "consumer_key": "demo-app", "consumer_secret": "demo-secret", "scopes": ["orders:read"] } ],
  "users": [ { "username": "alice", "password": "wonderland", "admin": true, "scopes": ["orders:read", "orders:write"] } ],
  "registration": { "grant_types": ["client_credentials", "authorization_code", "refresh_token"],
                    "scopes": ["orders:read", "orders:write"] }
}"#;

impl Rig {
    pub(super) fn register(&self, path: &str, json: &str) -> Reply {
        let gateway = self.gateway();
        let endpoint = gateway.endpoint(path).unwrap();
        let admin = format!("Basic {}", encode_basic_credentials("alice", "wonderland"));
        let request = EndpointRequest {
            client_address: None,
            method: "POST",
            path,
            authorization: Some(&admin),
            content_type: Some("application/json"),
            body: json.as_bytes(),
        };
        Reply(gateway.serve(&endpoint, &request))
    }
}

struct RegistrationCase {
    name: &'static str,
    path: &'static str,
    json: &'static str,
    status: u16,
    error: Option<&'static str>,
}

#[test]
fn registrations_with_the_code_grant_need_good_redirect_uris() {
    let cases = [
        RegistrationCase {
            name: "RFC 7591, https",
            path: "/register",
            json: r#"{"client_name":"Shop","grant_types":["authorization_code"],"redirect_uris":["https://shop.example/cb"]}"#,
            status: 201,
            error: None,
        },
        RegistrationCase {
            name: "RFC 7591, no redirect URI",
            path: "/register",
            json: r#"{"client_name":"Shop","grant_types":["authorization_code"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, plain http elsewhere than loopback",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["https://shop.example/cb","http://shop.example/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, a wildcard",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["https://*.example/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, client_credentials: a web client's URIs follow the same rules",
            path: "/register",
            json: r#"{"grant_types":["client_credentials"],"redirect_uris":["myapp:cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, javascript: is refused whatever the grants",
            path: "/register",
            json: r#"{"grant_types":["client_credentials"],"redirect_uris":["javascript:alert(1)"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, data: is refused even for a native client",
            path: "/register",
            json: r#"{"application_type":"native","redirect_uris":["data:text/html,hi"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, https without a host",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["https://:443/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, the same URI twice (RFC 7591 §3.2.2)",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["https://shop.example/cb","https://shop.example/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, a native client's private-use scheme (RFC 8252 §7.1)",
            path: "/register",
            json: r#"{"application_type":"native","grant_types":["authorization_code"],"redirect_uris":["com.example.app:/cb"]}"#,
            status: 201,
            error: None,
        },
        RegistrationCase {
            name: "RFC 7591, a web client may not have one",
            path: "/register",
            json: r#"{"grant_types":["authorization_code"],"redirect_uris":["com.example.app:/cb"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
        RegistrationCase {
            name: "RFC 7591, an unknown application_type",
            path: "/register",
            json: r#"{"application_type":"desktop","redirect_uris":["https://shop.example/cb"]}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "v0.17, a javascript: callbackUrl without the code grant",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"js","callbackUrl":"javascript:alert(1)","grantType":"client_credentials"}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "v0.17, the same callbackUrl twice",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"twice","callbackUrl":"https://shop.example/cb https://shop.example/cb","grantType":"authorization_code"}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "v0.17, https without a host",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"hostless","callbackUrl":"https://:443/cb","grantType":"authorization_code"}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "v0.17, the docs' callbackUrl without the code grant is only stored",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"docs-cc","callbackUrl":"www.google.lk","grantType":"client_credentials"}"#,
            status: 201,
            error: None,
        },
        RegistrationCase {
            name: "v0.17, loopback callbackUrl",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"cli","callbackUrl":"http://127.0.0.1:9000/cb","grantType":"authorization_code refresh_token"}"#,
            status: 201,
            error: None,
        },
        RegistrationCase {
            name: "v0.17, the docs' callbackUrl is no redirect URI",
            path: "/client-registration/v0.17/register",
            json: r#"{"clientName":"docs","callbackUrl":"www.google.lk","grantType":"authorization_code"}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
    ];
    let rig = Rig::with_config(REGISTERING);
    for case in cases {
        let reply = rig.register(case.path, case.json);
        assert_eq!(reply.0.status, case.status, "{}: {}", case.name, reply.text());
        if let Some(error) = case.error {
            assert_eq!(reply.json()["error"], error, "{}", case.name);
        }
    }
}

#[test]
fn a_registered_client_signs_a_user_in_and_redeems_the_code_with_its_secret() {
    let rig = Rig::with_config(REGISTERING);
    let registered = rig.register(
        "/register",
        r#"{"client_name":"Shop <1>","grant_types":["authorization_code","refresh_token"],
            "redirect_uris":["https://shop.example/cb","https://shop.example/other"],"scope":"orders:read"}"#,
    );
    assert_eq!(registered.0.status, 201, "{}", registered.text());
    let client_id = registered.json()["client_id"].as_str().unwrap().to_owned();
    let secret = registered.json()["client_secret"].as_str().unwrap().to_owned();

    // An unregistered redirect URI: the error page, never a redirect.
    let wrong = rig.authorize(&Rig::good_query(&client_id, "https://shop.example/elsewhere"));
    assert_eq!((wrong.0.status, wrong.0.header("location")), (400, None));
    // The login page names the application by its registered name, escaped.
    let page = rig.authorize(&Rig::good_query(&client_id, "https://shop.example/other"));
    assert_eq!(page.0.status, 200, "{}", page.text());
    assert!(page.text().contains("Shop &lt;1&gt;"));
    assert!(page
        .0
        .header("content-security-policy")
        .unwrap()
        .contains("form-action 'self' https://shop.example;"));
    let back = rig.sign_in(&page.handle(), "alice", "wonderland");
    assert_eq!(back.0.status, 302, "{}", back.text());
    assert!(back.location().starts_with("https://shop.example/other?code="));
    let code = back.callback().get("code").unwrap().to_owned();

    // A confidential client: the code needs its secret (Basic), then gives the user's tokens.
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fshop.example%2Fother&code_verifier={VERIFIER}"
    );
    let anonymous = rig.request("POST", "/token", None, &format!("{body}&client_id={client_id}"));
    assert_eq!(anonymous.0.status, 401, "a registered client is not public: {}", anonymous.text());
    let basic = format!("Basic {}", encode_basic_credentials(&client_id, &secret));
    let tokens = rig.request("POST", "/token", Some(&basic), &body);
    assert_eq!(tokens.0.status, 200, "{}", tokens.text());
    assert_eq!(tokens.json()["scope"], "orders:read");
    assert!(tokens.json()["refresh_token"].is_string());

    // A client registered without the code grant may not start a sign-in.
    let other = rig.register(
        "/register",
        r#"{"grant_types":["client_credentials"],"redirect_uris":["https://shop.example/cb"]}"#,
    );
    let other_id = other.json()["client_id"].as_str().unwrap().to_owned();
    let refused = rig.authorize(&Rig::good_query(&other_id, "https://shop.example/cb"));
    assert_eq!((refused.0.status, refused.0.header("location")), (400, None));
}

/// RFC 7591 `application_type`: echoed, kept with the client (RFC 7592 reads it back), and
/// deciding whether a loopback redirect URI's port may change (native only, RFC 8252 §7.3).
#[test]
fn a_registered_clients_application_type_decides_the_loopback_port() {
    let rig = Rig::with_config(REGISTERING);
    let register = |json: &str| {
        let reply = rig.register("/register", json);
        assert_eq!(reply.0.status, 201, "{}", reply.text());
        reply.json()
    };
    let native = register(
        r#"{"application_type":"native","grant_types":["authorization_code"],"redirect_uris":["http://127.0.0.1/cb"]}"#,
    );
    let web =
        register(r#"{"grant_types":["authorization_code"],"redirect_uris":["http://127.0.0.1:9000/cb"]}"#);
    assert_eq!(
        (native["application_type"].as_str(), web["application_type"].as_str()),
        (Some("native"), Some("web"))
    );

    let read = rig.gateway();
    let path = format!("/register/{}", native["client_id"].as_str().unwrap());
    let bearer = format!("Bearer {}", native["registration_access_token"].as_str().unwrap());
    let request = EndpointRequest {
        client_address: None,
        method: "GET",
        path: &path,
        authorization: Some(&bearer),
        content_type: None,
        body: b"",
    };
    let stored = Reply(read.serve(&read.endpoint(&path).unwrap(), &request));
    assert_eq!(stored.json()["application_type"], "native", "{}", stored.text());

    let native_id = native["client_id"].as_str().unwrap();
    let page = rig.authorize(&Rig::good_query(native_id, "http://127.0.0.1:51000/cb"));
    assert_eq!(page.0.status, 200, "{}", page.text());
    let web_id = web["client_id"].as_str().unwrap();
    let refused = rig.authorize(&Rig::good_query(web_id, "http://127.0.0.1:51000/cb"));
    assert_eq!((refused.0.status, refused.0.header("location")), (400, None));
    assert_eq!(rig.authorize(&Rig::good_query(web_id, "http://127.0.0.1:9000/cb")).0.status, 200);
}

/// A `/token` or `/revoke` request from a registered client, and what it must get.
struct ClientAuthCase {
    name: &'static str,
    basic: Option<(&'static str, &'static str)>,
    body_secret: Option<&'static str>,
    status: u16,
    error: &'static str,
}

/// RFC 7591 `token_endpoint_auth_method: none`: a public client (RFC 6749 §2.1) is registered
/// with no secret, signs a user in with PKCE, and names itself with `client_id` alone at
/// `/token` and `/revoke`; a secret it presents is refused, and a confidential client that
/// presents none is refused too. RFC 7592 read, update and delete keep working for it.
#[test]
fn a_public_registered_client_runs_the_code_flow_with_its_client_id_alone() {
    let rig = Rig::with_config(REGISTERING);
    let registered = rig.register(
        "/register",
        r#"{"client_name":"MCP client","token_endpoint_auth_method":"none",
            "grant_types":["authorization_code","refresh_token"],
            "redirect_uris":["http://127.0.0.1:33418/callback"],"scope":"orders:read"}"#,
    );
    assert_eq!(registered.0.status, 201, "{}", registered.text());
    let info = registered.json();
    assert_eq!(info["token_endpoint_auth_method"], "none");
    assert!(info.get("client_secret").is_none(), "a public client is issued no secret: {info}");
    assert!(info.get("client_secret_expires_at").is_none(), "{info}");
    let client_id = info["client_id"].as_str().unwrap().to_owned();
    let registration_token = info["registration_access_token"].as_str().unwrap().to_owned();

    let page = rig.authorize(&Rig::good_query(&client_id, "http://127.0.0.1:33418/callback"));
    assert_eq!(page.0.status, 200, "{}", page.text());
    let back = rig.sign_in(&page.handle(), "alice", "wonderland");
    let code = back.callback().get("code").unwrap().to_owned();
    let exchange = |code: &str, verifier: &str| {
        let body = format!(
            "grant_type=authorization_code&client_id={client_id}&code={code}\
             &redirect_uri=http%3A%2F%2F127.0.0.1%3A33418%2Fcallback&code_verifier={verifier}"
        );
        rig.request("POST", "/token", None, &body)
    };
    // A wrong verifier gets nothing: PKCE stands in for the secret (RFC 7636 §4.6).
    let wrong = exchange(&code, &"x".repeat(43));
    assert_eq!(wrong.json()["error"], "invalid_grant", "{}", wrong.text());
    let page = rig.authorize(&Rig::good_query(&client_id, "http://127.0.0.1:33418/callback"));
    let code = rig.sign_in(&page.handle(), "alice", "wonderland").callback().get("code").unwrap().to_owned();
    let tokens = exchange(&code, VERIFIER);
    assert_eq!(tokens.0.status, 200, "{}", tokens.text());
    assert_eq!(tokens.json()["scope"], "orders:read");
    let refresh = tokens.json()["refresh_token"].as_str().unwrap().to_owned();

    // The client names itself with client_id alone; with any secret it is refused.
    let cases = [
        ClientAuthCase { name: "client_id alone", basic: None, body_secret: None, status: 200, error: "" },
        ClientAuthCase {
            name: "an empty client_secret is a secret",
            basic: None,
            body_secret: Some(""),
            status: 401,
            error: "invalid_client",
        },
        ClientAuthCase {
            name: "a client_secret in the body",
            basic: None,
            body_secret: Some("guess"),
            status: 401,
            error: "invalid_client",
        },
        ClientAuthCase {
            name: "HTTP Basic with a secret",
            basic: Some(("", "guess")),
            body_secret: None,
            status: 401,
            error: "invalid_client",
        },
    ];
    let mut refresh = refresh;
    for path in ["/token", "/revoke"] {
        for case in &cases {
            let mut body = match path {
                "/token" => format!("grant_type=refresh_token&refresh_token={refresh}"),
                _ => "token=unknown-token".to_owned(),
            };
            if case.basic.is_none() {
                body.push_str(&format!("&client_id={client_id}"));
            }
            if let Some(secret) = case.body_secret {
                body.push_str(&format!("&client_secret={secret}"));
            }
            let basic = case
                .basic
                .map(|(_, secret)| format!("Basic {}", encode_basic_credentials(&client_id, secret)));
            let reply = rig.request("POST", path, basic.as_deref(), &body);
            assert_eq!(reply.0.status, case.status, "{path}, {}: {}", case.name, reply.text());
            if case.status == 200 && path == "/token" {
                refresh = reply.json()["refresh_token"].as_str().unwrap().to_owned();
            } else if case.status != 200 {
                assert_eq!(reply.json()["error"], case.error, "{path}, {}", case.name);
            }
        }
    }
    // It revokes its own refresh token with client_id alone.
    let revoked = rig.request("POST", "/revoke", None, &format!("token={refresh}&client_id={client_id}"));
    assert_eq!(revoked.0.status, 200, "{}", revoked.text());
    let after = rig.request(
        "POST",
        "/token",
        None,
        &format!("grant_type=refresh_token&refresh_token={refresh}&client_id={client_id}"),
    );
    assert_eq!(after.json()["error"], "invalid_grant", "{}", after.text());

    // RFC 7592: the registration access token is its credential there.
    let uri = format!("/register/{client_id}");
    let manage = |method: &str, body: &str| {
        let gateway = rig.gateway();
        let bearer = format!("Bearer {registration_token}");
        let request = EndpointRequest {
            client_address: None,
            method,
            path: &uri,
            authorization: Some(&bearer),
            content_type: (!body.is_empty()).then_some("application/json"),
            body: body.as_bytes(),
        };
        Reply(gateway.serve(&gateway.endpoint(&uri).unwrap(), &request))
    };
    let read = manage("GET", "");
    assert_eq!(read.0.status, 200, "{}", read.text());
    assert_eq!(read.json()["token_endpoint_auth_method"], "none");
    assert!(read.json().get("client_secret_expires_at").is_none());
    let update = |fields: &str| {
        manage(
            "PUT",
            &format!(
                r#"{{"client_id":"{client_id}","grant_types":["authorization_code"],
                    "redirect_uris":["http://127.0.0.1:33419/callback"]{fields}}}"#
            ),
        )
    };
    let to_confidential = update(r#","token_endpoint_auth_method":"client_secret_basic""#);
    assert_eq!(
        (to_confidential.0.status, to_confidential.json()["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "a public client cannot become confidential: it holds no secret"
    );
    let kept = update("");
    assert_eq!(kept.0.status, 200, "{}", kept.text());
    assert_eq!(kept.json()["token_endpoint_auth_method"], "none", "an omitted method keeps its own");
    assert_eq!(kept.json()["redirect_uris"], serde_json::json!(["http://127.0.0.1:33419/callback"]));
    assert_eq!(manage("DELETE", "").0.status, 204);
    let gone = rig.request("POST", "/revoke", None, &format!("token=unknown-token&client_id={client_id}"));
    assert_eq!(gone.0.status, 401, "a deleted public client is nobody: {}", gone.text());
}

/// A registered confidential client cannot pass for a public one by leaving its secret out,
/// and cannot become public by an RFC 7592 update.
#[test]
fn a_confidential_registered_client_must_present_its_secret() {
    let rig = Rig::with_config(REGISTERING);
    let registered = rig.register(
        "/register",
        r#"{"grant_types":["authorization_code","refresh_token"],"redirect_uris":["https://shop.example/cb"]}"#,
    );
    let client_id = registered.json()["client_id"].as_str().unwrap().to_owned();
    for path in ["/token", "/revoke"] {
        let body = match path {
            "/token" => format!("grant_type=refresh_token&refresh_token=x&client_id={client_id}"),
            _ => format!("token=x&client_id={client_id}"),
        };
        let reply = rig.request("POST", path, None, &body);
        assert_eq!((reply.0.status, reply.field("error")), (401, "invalid_client".to_owned()), "{path}");
    }
}

/// A public registration asks for the code flow's grants only, and needs the code grant.
#[test]
fn a_public_registration_takes_the_code_flow_grants_only() {
    let cases = [
        RegistrationCase {
            name: "code alone, the default for a public client",
            path: "/register",
            json: r#"{"token_endpoint_auth_method":"none","redirect_uris":["https://app.example/cb"]}"#,
            status: 201,
            error: None,
        },
        RegistrationCase {
            name: "client_credentials needs a secret",
            path: "/register",
            json: r#"{"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "code and client_credentials",
            path: "/register",
            json: r#"{"token_endpoint_auth_method":"none","grant_types":["authorization_code","client_credentials"],
                      "redirect_uris":["https://app.example/cb"]}"#,
            status: 400,
            error: Some("invalid_client_metadata"),
        },
        RegistrationCase {
            name: "code without a redirect URI",
            path: "/register",
            json: r#"{"token_endpoint_auth_method":"none","grant_types":["authorization_code"]}"#,
            status: 400,
            error: Some("invalid_redirect_uri"),
        },
    ];
    let rig = Rig::with_config(REGISTERING);
    for case in cases {
        let reply = rig.register(case.path, case.json);
        assert_eq!(reply.0.status, case.status, "{}: {}", case.name, reply.text());
        if let Some(error) = case.error {
            assert_eq!(reply.json()["error"], error, "{}", case.name);
        }
    }
}

/// RFC 8414 `token_endpoint_auth_methods_supported` lists `none` once a public client can be
/// registered (registration allows the code grant), though none is configured: an RFC 7591
/// client reads it to choose `token_endpoint_auth_method` (RFC 8414 §2).
#[test]
fn metadata_lists_none_when_registration_admits_public_clients() {
    let methods = |config: &str| {
        let rig = Rig::with_config(config);
        let metadata = rig.request("GET", "/.well-known/oauth-authorization-server", None, "").json();
        let listed = |field: &str| metadata[field].clone();
        assert_eq!(
            listed("token_endpoint_auth_methods_supported"),
            listed("revocation_endpoint_auth_methods_supported")
        );
        assert!(metadata["registration_endpoint"].as_str().unwrap().ends_with("/register"));
        listed("token_endpoint_auth_methods_supported")
    };
    assert_eq!(
        methods(REGISTERING),
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    let confidential_only = REGISTERING
        .replace(r#""client_credentials", "authorization_code", "refresh_token""#, r#""client_credentials""#);
    assert_eq!(methods(&confidential_only), serde_json::json!(["client_secret_basic", "client_secret_post"]));
}
