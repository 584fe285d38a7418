//! WSO2's dynamic client registration (v0.17): who may register, what it answers, and its
//! errors.

use super::*;

#[test]
fn registration_answers_like_wso2_and_the_application_works_at_once() {
    let rig = lifecycle_rig();
    let payload = r#"{"callbackUrl":"www.google.lk","clientName":"rest_api_admin","owner":"admin","grantType":"password refresh_token","saasApp":true}"#;
    let reply = register(&rig, ("admin", "admin"), "application/json", payload);
    assert_eq!(reply.0.status, 201, "{}", reply.text());
    assert_eq!(reply.0.header("cache-control"), Some("no-store"));
    let body = reply.json();
    let (client_id, secret) = (body["clientId"].as_str().unwrap(), body["clientSecret"].as_str().unwrap());
    assert_eq!(body["clientName"], "rest_api_admin");
    assert_eq!(body["callBackURL"], "www.google.lk");
    assert_eq!(body["isSaasApplication"], true);
    assert_eq!(body["appOwner"], "admin");
    let inner: serde_json::Value = serde_json::from_str(body["jsonString"].as_str().unwrap()).unwrap();
    assert_eq!(inner["grant_types"], "password refresh_token");
    assert_eq!(inner["client_name"], "rest_api_admin");
    for id in [client_id, secret] {
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)), "{id}");
    }
    // The new application gets tokens at once, with the registration's scopes and grants.
    let token = rig.post_as(client_id, secret, "/token", "grant_type=password&username=admin&password=admin");
    assert_eq!(token.0.status, 200, "{}", token.text());
    assert_eq!(token.field("scope"), "orders:read");
    let access = token.field("access_token");
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &access)), 200);
    let cc = rig.post_as(client_id, secret, "/token", "grant_type=client_credentials");
    assert_eq!(cc.field("error"), "unauthorized_client");

    // A new secret ends the old tokens and the old secret.
    let basic = format!("Basic {}", encode_basic_credentials("admin", "admin"));
    let rekeyed = rig.endpoint("POST", &format!("{REGISTER}/{client_id}/secret"), Some(&basic), None, "");
    assert_eq!(rekeyed.0.status, 200, "{}", rekeyed.text());
    let new_secret = rekeyed.field("clientSecret");
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &access)), 401);
    assert_eq!(
        rig.post_as(client_id, secret, "/token", "grant_type=password&username=admin&password=admin")
            .0
            .status,
        401
    );
    let fresh =
        rig.post_as(client_id, &new_secret, "/token", "grant_type=password&username=admin&password=admin");
    assert_eq!(fresh.0.status, 200);

    // Deleting ends the application and its tokens.
    let described = rig.endpoint("GET", &format!("{REGISTER}/{client_id}"), Some(&basic), None, "");
    assert_eq!(described.field("clientName"), "rest_api_admin");
    assert!(described.json().get("clientSecret").is_none());
    assert_eq!(
        rig.endpoint("DELETE", &format!("{REGISTER}/{client_id}"), Some(&basic), None, "").0.status,
        204
    );
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &fresh.field("access_token"))), 401);
    assert_eq!(rig.post_as(client_id, &new_secret, "/token", "grant_type=client_credentials").0.status, 401);
    assert_eq!(
        rig.endpoint("DELETE", &format!("{REGISTER}/{client_id}"), Some(&basic), None, "").0.status,
        404
    );
    assert_eq!(rig.metrics.get(Metric::RegisteredClients), 0);
    assert_eq!(rig.metrics.get(Metric::Registrations), 1);
}

/// The registration endpoint is no password oracle: a right password of a user who is
/// not an admin, a wrong one and an unknown name get the same reply.
#[test]
fn the_registration_endpoint_says_nothing_about_passwords() {
    let rig = lifecycle_rig();
    struct Case {
        name: &'static str,
        caller: (&'static str, &'static str),
    }
    let table = [
        Case { name: "right password, not an admin", caller: ("viewer", "viewer") },
        Case { name: "wrong password, not an admin", caller: ("viewer", "wrong") },
        Case { name: "wrong password, admin", caller: ("admin", "wrong") },
        Case { name: "unknown user", caller: ("nobody", "viewer") },
    ];
    let good = r#"{"clientName":"shop","grantType":"client_credentials"}"#;
    let replies: Vec<(u16, String)> = table
        .iter()
        .map(|case| {
            let reply = register(&rig, case.caller, "application/json", good);
            (reply.0.status, reply.text())
        })
        .collect();
    for (case, reply) in table.iter().zip(&replies) {
        assert_eq!(reply.0, 401, "{}: {}", case.name, reply.1);
        assert_eq!(reply, &replies[0], "{}", case.name);
    }
}

/// Failed admin logins count apart from the same user's password grant.
#[test]
fn failed_admin_logins_do_not_lock_the_password_grant() {
    let rig = lifecycle_rig();
    let good = r#"{"clientName":"shop","grantType":"client_credentials"}"#;
    for user in ["admin", "viewer"] {
        for _ in 0..10 {
            register(&rig, (user, "wrong"), "application/json", good);
        }
        // The admin login is locked...
        assert_eq!(register(&rig, (user, "wrong"), "application/json", good).0.status, 429, "{user}");
        // ...the password grant is not.
        let reply = rig.token(&format!("grant_type=password&username={user}&password={user}"));
        assert_eq!(reply.0.status, 200, "{user}: {}", reply.text());
    }
}

/// An application is managed only by the admin who registered it or a super-admin;
/// to another admin it does not exist. Only a super-admin registers for another owner.
#[test]
fn only_the_registering_admin_or_a_super_admin_manages_an_application() {
    let json = config_with(&crate::config::tests::demo_with_lifecycle(), |v| {
        let users = v["users"].as_array_mut().unwrap();
        users.insert(0, serde_json::json!({"username": "root", "password": "root", "super_admin": true}));
        users.insert(0, serde_json::json!({"username": "ops", "password": "ops", "admin": true}));
    });
    let rig = Rig::with_config(&json);
    let reply = register(
        &rig,
        ("admin", "admin"),
        "application/json",
        r#"{"clientName":"shop","grantType":"client_credentials"}"#,
    );
    assert_eq!(reply.0.status, 201, "{}", reply.text());
    let id = reply.field("clientId");
    struct Case {
        name: &'static str,
        caller: (&'static str, &'static str),
        method: &'static str,
        path: String,
        body: &'static str,
        status: u16,
    }
    let app = format!("{REGISTER}/{id}");
    let secret = format!("{app}/secret");
    let table = [
        Case {
            name: "another admin reads",
            caller: ("ops", "ops"),
            method: "GET",
            path: app.clone(),
            body: "",
            status: 404,
        },
        Case {
            name: "another admin re-keys",
            caller: ("ops", "ops"),
            method: "POST",
            path: secret.clone(),
            body: "",
            status: 404,
        },
        Case {
            name: "another admin deletes",
            caller: ("ops", "ops"),
            method: "DELETE",
            path: app.clone(),
            body: "",
            status: 404,
        },
        Case {
            name: "an admin registers for another owner",
            caller: ("ops", "ops"),
            method: "POST",
            path: REGISTER.into(),
            body: r#"{"clientName":"x","owner":"admin","grantType":"client_credentials"}"#,
            status: 400,
        },
        Case {
            name: "an admin registers for itself",
            caller: ("ops", "ops"),
            method: "POST",
            path: REGISTER.into(),
            body: r#"{"clientName":"x","owner":"ops","grantType":"client_credentials"}"#,
            status: 201,
        },
        Case {
            name: "a super-admin registers for anyone",
            caller: ("root", "root"),
            method: "POST",
            path: REGISTER.into(),
            body: r#"{"clientName":"x","owner":"someone","grantType":"client_credentials"}"#,
            status: 201,
        },
        Case {
            name: "the registering admin reads",
            caller: ("admin", "admin"),
            method: "GET",
            path: app.clone(),
            body: "",
            status: 200,
        },
        Case {
            name: "a super-admin reads",
            caller: ("root", "root"),
            method: "GET",
            path: app.clone(),
            body: "",
            status: 200,
        },
        Case {
            name: "a super-admin re-keys",
            caller: ("root", "root"),
            method: "POST",
            path: secret.clone(),
            body: "",
            status: 200,
        },
        Case {
            name: "the registering admin re-keys",
            caller: ("admin", "admin"),
            method: "POST",
            path: secret.clone(),
            body: "",
            status: 200,
        },
        Case {
            name: "a super-admin deletes",
            caller: ("root", "root"),
            method: "DELETE",
            path: app.clone(),
            body: "",
            status: 204,
        },
    ];
    for case in table {
        let basic = format!("Basic {}", encode_basic_credentials(case.caller.0, case.caller.1));
        let content_type = (!case.body.is_empty()).then_some("application/json");
        let reply = rig.endpoint(case.method, &case.path, Some(&basic), content_type, case.body);
        assert_eq!(reply.0.status, case.status, "{}: {}", case.name, reply.text());
        if case.status == 404 {
            assert_eq!(reply.field("error"), "not_found", "{}", case.name);
        }
        if case.status == 400 {
            assert_eq!(reply.field("error"), "invalid_client_metadata", "{}", case.name);
        }
    }
}

#[test]
fn bad_registrations_get_clear_4xx_errors() {
    let rig = lifecycle_rig();
    let good = r#"{"clientName":"shop","grantType":"client_credentials"}"#;
    assert_eq!(register(&rig, ("admin", "admin"), "application/json", good).0.status, 201);
    struct RegisterCase<'a> {
        caller: (&'a str, &'a str),
        content_type: &'a str,
        body: &'a str,
        status: u16,
        error: &'a str,
    }
    let table = [
        RegisterCase {
            caller: ("admin", "wrong"),
            content_type: "application/json",
            body: good,
            status: 401,
            error: "invalid_client",
        },
        // A user who is not an admin is refused like a wrong password: a 403 would confirm the password.
        RegisterCase {
            caller: ("viewer", "viewer"),
            content_type: "application/json",
            body: good,
            status: 401,
            error: "invalid_client",
        },
        RegisterCase {
            caller: ("demo-app", "demo-secret"),
            content_type: "application/json",
            body: good,
            status: 401,
            error: "invalid_client",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/x-www-form-urlencoded",
            body: good,
            status: 400,
            error: "invalid_request",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: "{not json",
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"grantType":"password"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"clientName":"x","grantType":"implicit"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"clientName":"x","grantType":""}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"clientName":"x","grantType":"client_credentials refresh_token"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: r#"{"clientName":"x\u0000","grantType":"password"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        RegisterCase {
            caller: ("admin", "admin"),
            content_type: "application/json",
            body: good,
            status: 409,
            error: "invalid_client_metadata",
        },
    ];
    for RegisterCase { caller: who, content_type, body, status, error } in table {
        let reply = register(&rig, who, content_type, body);
        assert_eq!(reply.0.status, status, "{who:?} {body}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{who:?} {body}");
    }
}
