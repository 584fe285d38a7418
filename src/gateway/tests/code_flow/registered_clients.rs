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
    fn register(&self, path: &str, json: &str) -> Reply {
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
