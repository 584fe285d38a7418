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
