//! The authorization code flow across replicas: a sign-in started on one finishes on another.

use super::*;

impl Replica<'_> {
    /// An unauthenticated request to one of the gateway's endpoints, through the fleet layer.
    fn anonymous(&self, method: &str, path: &str, body: &str) -> Response {
        self.decide(
            |_| true,
            |gateway| {
                let endpoint = gateway.endpoint(path).unwrap();
                let request = EndpointRequest {
                    client_address: None,
                    method,
                    path,
                    authorization: None,
                    content_type: Some(FORM),
                    body: body.as_bytes(),
                };
                gateway.serve(&endpoint, &request)
            },
        )
        .unwrap()
    }
}

fn login_handle(page: &Response) -> String {
    crate::gateway::login_handle_in(&String::from_utf8_lossy(&page.body)).unwrap().to_owned()
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    crate::oauth::form::FormParams::parse(query.as_bytes()).ok()?.get(name).map(str::to_owned)
}

#[test]
fn a_sign_in_started_on_one_replica_finishes_on_another_and_its_code_works_once_anywhere() {
    let fleet = code_flow_fleet();
    let (a, b) = (fleet.replica(), fleet.replica());
    let query = format!(
        "/authorize?response_type=code&client_id=demo-spa&redirect_uri={}&state=s1\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        crate::oauth::credentials::form_encode(SPA_CALLBACK)
    );
    // The login page on A; B has heard nothing of it, yet takes its form.
    let page = a.anonymous("GET", &query, "");
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let handle = login_handle(&page);
    let back = b.anonymous("POST", "/authorize", &format!("handle={handle}&username=admin&password=admin"));
    assert_eq!(back.status, 302, "{}", String::from_utf8_lossy(&back.body));
    let location = back.header("location").unwrap().to_owned();
    assert_eq!(query_param(&location, "state").as_deref(), Some("s1"));
    // The handle is spent fleet-wide: A refuses it too, watch or no watch.
    let again = a.anonymous("POST", "/authorize", &format!("handle={handle}&username=admin&password=admin"));
    assert_eq!(again.status, 400);

    // The code redeemed on A (which did not issue it), its token good on B.
    let code = query_param(&location, "code").unwrap();
    let redeem = format!(
        "grant_type=authorization_code&client_id=demo-spa&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        crate::oauth::credentials::form_encode(SPA_CALLBACK)
    );
    let tokens = a.anonymous("POST", "/token", &redeem);
    assert_eq!(tokens.status, 200, "{}", String::from_utf8_lossy(&tokens.body));
    let tokens: serde_json::Value = serde_json::from_slice(&tokens.body).unwrap();
    let access = field(&tokens, "access_token");
    assert_eq!(b.bearer_status(&access), 200);

    // A replay on B is refused and revokes what the code produced, on every replica.
    let replay = b.anonymous("POST", "/token", &redeem);
    assert_eq!(replay.status, 400);
    assert_eq!(b.bearer_status(&access), 401);
    a.catch_up();
    assert_eq!(a.bearer_status(&access), 401);
}

#[test]
fn replicas_that_both_start_a_sign_in_cold_agree_on_one_handle_key() {
    let fleet = code_flow_fleet();
    let (a, b) = (fleet.replica(), fleet.replica());
    let query = format!(
        "/authorize?response_type=code&client_id=demo-spa&redirect_uri={}&state=s1\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        crate::oauth::credentials::form_encode(SPA_CALLBACK)
    );
    // A makes the key; B, which has heard nothing of it, tries to make its own, is refused by
    // etcd, and reads A's back.
    let (page_a, page_b) = (a.anonymous("GET", &query, ""), b.anonymous("GET", &query, ""));
    assert_eq!((page_a.status, page_b.status), (200, 200));
    for (page, other) in [(&page_a, &b), (&page_b, &a)] {
        let body = format!("handle={}&username=admin&password=admin", login_handle(page));
        let back = other.anonymous("POST", "/authorize", &body);
        assert_eq!(back.status, 302, "{}", String::from_utf8_lossy(&back.body));
    }
}

/// A public client registered through RFC 7591 on one replica (`token_endpoint_auth_method:
/// none`) is the same client on another: the registry lives in etcd, so B runs its sign-in
/// and takes its `client_id` alone at `/token`, and A refreshes what B issued.
#[test]
fn a_public_client_registered_on_one_replica_signs_in_and_redeems_on_another() {
    let mut config: serde_json::Value = serde_json::from_str(&demo_with_lifecycle()).unwrap();
    config["registration"]["grant_types"] =
        serde_json::json!(["client_credentials", "authorization_code", "refresh_token"]);
    config["applications"].as_array_mut().unwrap().push(serde_json::json!({
        "consumer_key": "demo-spa", "public": true, "grant_types": ["authorization_code"],
        "redirect_uris": [SPA_CALLBACK], "scopes": ["orders:read"]
    }));
    let fleet = Fleet::with_config(&config.to_string());
    let (a, b) = (fleet.replica(), fleet.replica());
    let basic = format!("Basic {}", encode_basic_credentials("admin", "admin"));
    let metadata = r#"{"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],
                       "redirect_uris":["http://127.0.0.1:33418/callback"]}"#;
    let registered = a
        .decide(
            |_| true,
            |gateway| {
                let request = EndpointRequest {
                    client_address: None,
                    method: "POST",
                    path: "/register",
                    authorization: Some(&basic),
                    content_type: Some("application/json"),
                    body: metadata.as_bytes(),
                };
                gateway.serve(&gateway.endpoint("/register").unwrap(), &request)
            },
        )
        .unwrap();
    assert_eq!(registered.status, 201, "{}", String::from_utf8_lossy(&registered.body));
    let registered: serde_json::Value = serde_json::from_slice(&registered.body).unwrap();
    assert!(registered.get("client_secret").is_none());
    let client_id = field(&registered, "client_id");

    let redirect_uri = crate::oauth::credentials::form_encode("http://127.0.0.1:33418/callback");
    let query = format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={redirect_uri}&state=s1\
         &code_challenge={CHALLENGE}&code_challenge_method=S256"
    );
    let page = b.anonymous("GET", &query, "");
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let back = b.anonymous(
        "POST",
        "/authorize",
        &format!("handle={}&username=admin&password=admin", login_handle(&page)),
    );
    assert_eq!(back.status, 302, "{}", String::from_utf8_lossy(&back.body));
    let code = query_param(back.header("location").unwrap(), "code").unwrap();
    let redeem = format!(
        "grant_type=authorization_code&client_id={client_id}&code={code}&redirect_uri={redirect_uri}&code_verifier={VERIFIER}"
    );
    let tokens = b.anonymous("POST", "/token", &redeem);
    assert_eq!(tokens.status, 200, "{}", String::from_utf8_lossy(&tokens.body));
    let tokens: serde_json::Value = serde_json::from_slice(&tokens.body).unwrap();
    let refresh = format!(
        "grant_type=refresh_token&client_id={client_id}&refresh_token={}",
        field(&tokens, "refresh_token")
    );
    let refreshed = a.anonymous("POST", "/token", &refresh);
    assert_eq!(refreshed.status, 200, "{}", String::from_utf8_lossy(&refreshed.body));
    let refreshed: serde_json::Value = serde_json::from_slice(&refreshed.body).unwrap();
    assert_eq!(b.bearer_status(&field(&refreshed, "access_token")), 200);
}

/// Open registration's quotas count the registry in etcd, so they hold across replicas: a
/// source at its `max_per_source` on A is refused on B, and B takes the client A registered.
#[test]
fn open_registration_quotas_hold_across_replicas() {
    let mut config: serde_json::Value = serde_json::from_str(&demo_with_lifecycle()).unwrap();
    config["registration"]["grant_types"] = serde_json::json!(["authorization_code", "refresh_token"]);
    config["registration"]["open"] = serde_json::json!({"scopes": ["orders:read"], "max_per_source": 1});
    let fleet = Fleet::with_config(&config.to_string());
    let (a, b) = (fleet.replica(), fleet.replica());
    let metadata = r#"{"redirect_uris":["http://localhost:8090/callback"]}"#;
    let register_openly = |replica: &Replica, source: &str| {
        replica
            .decide(
                |_| true,
                |gateway| {
                    let request = EndpointRequest {
                        client_address: Some(source),
                        method: "POST",
                        path: "/register",
                        authorization: None,
                        content_type: Some("application/json"),
                        body: metadata.as_bytes(),
                    };
                    gateway.serve(&gateway.endpoint("/register").unwrap(), &request)
                },
            )
            .unwrap()
    };
    let on_a = register_openly(&a, "192.0.2.1:40000");
    assert_eq!(on_a.status, 201, "{}", String::from_utf8_lossy(&on_a.body));
    assert_eq!(register_openly(&b, "192.0.2.1:40001").status, 429, "the same source, on the other replica");
    assert_eq!(register_openly(&b, "192.0.2.2:40000").status, 201);
    let client_id = field(&serde_json::from_slice(&on_a.body).unwrap(), "client_id");
    let query = format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&code_challenge={CHALLENGE}\
         &code_challenge_method=S256",
        crate::oauth::credentials::form_encode("http://localhost:51000/callback")
    );
    assert_eq!(b.anonymous("GET", &query, "").status, 200, "any localhost port, on the other replica");
}
