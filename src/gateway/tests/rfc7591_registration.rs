//! RFC 7591 registration and RFC 7592 client management: registration access tokens, what an
//! administrator's grant bounds, and the errors.

use super::*;

fn register_rfc7591(rig: &Rig, who: (&str, &str), body: &str) -> Reply {
    let basic = format!("Basic {}", encode_basic_credentials(who.0, who.1));
    rig.endpoint("POST", "/register", Some(&basic), Some("application/json"), body)
}

fn manage(rig: &Rig, method: &str, uri: &str, token: &str, body: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    let content_type = (!body.is_empty()).then_some("application/json");
    rig.endpoint(method, uri, Some(&bearer), content_type, body)
}

/// RFC 7591 registration and RFC 7592 read, update and delete.
#[test]
fn rfc7591_registration_and_rfc7592_management() {
    let rig = lifecycle_rig();
    let reply = register_rfc7591(
        &rig,
        ("admin", "admin"),
        r#"{"client_name":"shop","grant_types":["client_credentials"],"redirect_uris":["https://shop.example/cb"],
            "scope":"orders:read","token_endpoint_auth_method":"client_secret_post","logo_uri":"ignored"}"#,
    );
    assert_eq!(reply.0.status, 201, "{}", reply.text());
    assert_eq!(reply.0.header("cache-control"), Some("no-store"));
    let body = reply.json();
    let id = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let token = body["registration_access_token"].as_str().unwrap().to_owned();
    assert_eq!(body["client_id_issued_at"], 1_700_000_000u64);
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(body["client_name"], "shop");
    assert_eq!(body["grant_types"], serde_json::json!(["client_credentials"]));
    assert_eq!(body["redirect_uris"], serde_json::json!(["https://shop.example/cb"]));
    assert_eq!(body["scope"], "orders:read");
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_post");
    let uri = format!("/register/{id}");
    assert_eq!(body["registration_client_uri"], format!("http://127.0.0.1:8080{uri}"));
    assert!(body.get("logo_uri").is_none());
    for value in [&id, &secret, &token] {
        assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)), "{value}");
    }
    // It works at once, with either method, within the scope it registered.
    let post = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let issued = rig.endpoint("POST", "/token", None, Some(FORM), &post);
    assert_eq!(
        (issued.0.status, issued.field("scope")),
        (200, "orders:read".to_owned()),
        "{}",
        issued.text()
    );
    assert_eq!(rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").0.status, 200);
    let wider = rig.post_as(&id, &secret, "/token", "grant_type=client_credentials&scope=orders:write");
    assert_eq!(wider.field("error"), "invalid_scope");

    // RFC 7592 read: the metadata, never the secret or the token.
    let read = manage(&rig, "GET", &uri, &token, "");
    assert_eq!(read.0.status, 200, "{}", read.text());
    assert_eq!(read.field("client_name"), "shop");
    assert!(
        read.json().get("client_secret").is_none() && read.json().get("registration_access_token").is_none()
    );
    // Update: the id must match; the secret, if sent, must be its own.
    let update =
        format!(r#"{{"client_id":"{id}","client_name":"shop-2","grant_types":["client_credentials"]}}"#);
    let updated = manage(&rig, "PUT", &uri, &token, &update);
    assert_eq!(updated.0.status, 200, "{}", updated.text());
    assert_eq!(updated.field("client_name"), "shop-2");
    // PUT replaces: the scope, no longer asked for, is what the administrator registered.
    assert_eq!(updated.field("scope"), "orders:read");
    assert_eq!(updated.field("token_endpoint_auth_method"), "client_secret_basic");
    assert_eq!(rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").0.status, 200);
    struct Case {
        name: &'static str,
        method: &'static str,
        token: String,
        body: String,
        status: u16,
        error: &'static str,
    }
    let case = |name, method, token: &str, body: String, status, error| Case {
        name,
        method,
        token: token.to_owned(),
        body,
        status,
        error,
    };
    let table = [
        case("read with a wrong token", "GET", "AAAAwrongtoken", String::new(), 401, "invalid_token"),
        case("read with the client secret", "GET", &secret, String::new(), 401, "invalid_token"),
        case(
            "update, another client_id",
            "PUT",
            &token,
            update.replace(&id, "someone-else"),
            400,
            "invalid_request",
        ),
        case("update, no client_id", "PUT", &token, r#"{"client_name":"x"}"#.into(), 400, "invalid_request"),
        case(
            "update, a wrong client_secret",
            "PUT",
            &token,
            update.replace("\"client_name\"", "\"client_secret\":\"nope\",\"client_name\""),
            400,
            "invalid_client_metadata",
        ),
        case(
            "update, its own client_secret",
            "PUT",
            &token,
            update.replace("\"client_name\"", &format!("\"client_secret\":\"{secret}\",\"client_name\"")),
            200,
            "",
        ),
        case(
            "update, bad grant",
            "PUT",
            &token,
            update.replace("client_credentials", "implicit"),
            400,
            "invalid_client_metadata",
        ),
        case("POST to the client", "POST", &token, update.clone(), 405, "invalid_request"),
        case("delete with a wrong token", "DELETE", "AAAAwrongtoken", String::new(), 401, "invalid_token"),
    ];
    for Case { name, method, token, body, status, error } in table {
        let reply = manage(&rig, method, &uri, &token, &body);
        assert_eq!(reply.0.status, status, "{name}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{name}");
        if status == 401 {
            assert_eq!(
                reply.0.header("www-authenticate"),
                Some("Bearer realm=\"tokengate\", error=\"invalid_token\""),
                "{name}"
            );
        }
        if status == 405 {
            assert_eq!(reply.0.header("allow"), Some("GET, PUT, DELETE"), "{name}");
        }
    }
    // No token at all: the same 401.
    let anonymous = rig.endpoint("GET", &uri, None, None, "");
    assert_eq!((anonymous.0.status, anonymous.field("error")), (401, "invalid_token".to_owned()));
    // Delete: 204, then the client and its token are gone: 401 as for an unknown client.
    let access = rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").field("access_token");
    assert_eq!(manage(&rig, "DELETE", &uri, &token, "").0.status, 204);
    assert_eq!(status_of(&rig.call_with_token("GET", "/api/orders", &access)), 401);
    assert_eq!(rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").0.status, 401);
    assert_eq!(manage(&rig, "GET", &uri, &token, "").0.status, 401);
    assert_eq!(rig.metrics.get(Metric::Registrations), 1);
}

/// The lifecycle demo with a second admin (`ops`), a super-admin (`root`) and two registration
/// scopes, so that a client can be registered with less than registration allows.
fn registration_rig(change: impl FnOnce(&mut serde_json::Value)) -> Rig {
    let mut v: serde_json::Value =
        serde_json::from_str(&crate::config::tests::demo_with_lifecycle()).unwrap();
    v["registration"]["scopes"] = serde_json::json!(["orders:read", "orders:write"]);
    let users = v["users"].as_array_mut().unwrap();
    users.push(serde_json::json!({"username": "ops", "password": "ops", "admin": true}));
    users.push(serde_json::json!({"username": "root", "password": "root", "super_admin": true}));
    change(&mut v);
    Rig::with_config(&v.to_string())
}

/// An RFC 7592 request to the client URI with an administrator's HTTP Basic.
fn manage_as(rig: &Rig, method: &str, uri: &str, who: (&str, &str), body: &str) -> Reply {
    let basic = format!("Basic {}", encode_basic_credentials(who.0, who.1));
    let content_type = (!body.is_empty()).then_some("application/json");
    rig.endpoint(method, uri, Some(&basic), content_type, body)
}

/// An RFC 7591 registration by `admin` that must succeed: (client URI, client id, token).
fn registered_rfc7591(rig: &Rig, body: &str) -> (String, String, String) {
    let reply = register_rfc7591(rig, ("admin", "admin"), body);
    assert_eq!(reply.0.status, 201, "{}", reply.text());
    let id = reply.field("client_id");
    (format!("/register/{id}"), id, reply.field("registration_access_token"))
}

/// RFC 7592 §2.2 lets the server refuse any change (`invalid_client_metadata`): with its
/// registration access token alone, a client keeps or narrows the grant types and scope its
/// administrator registered; its name and redirect URIs may change within registration policy.
#[test]
fn a_registration_access_token_cannot_widen_what_the_administrator_registered() {
    let rig = registration_rig(|_| {});
    let (uri, id, token) = registered_rfc7591(
        &rig,
        r#"{"client_name":"shop","grant_types":["client_credentials"],"scope":"orders:read"}"#,
    );
    struct Case {
        name: &'static str,
        fields: &'static str,
        status: u16,
        error: &'static str,
    }
    let table = [
        Case {
            name: "adds the password grant",
            fields: r#""grant_types":["client_credentials","password"],"scope":"orders:read""#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "adds the password and refresh grants, scope omitted",
            fields: r#""grant_types":["password","refresh_token"]"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "adds a scope registration allows",
            fields: r#""grant_types":["client_credentials"],"scope":"orders:read orders:write""#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "swaps its scope for another",
            fields: r#""scope":"orders:write""#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "renames itself and redirects within registration policy",
            fields: r#""client_name":"Demo console","redirect_uris":["https://evil.example/cb"]"#,
            status: 200,
            error: "",
        },
    ];
    for Case { name, fields, status, error } in table {
        let body = format!(r#"{{"client_id":"{id}",{fields}}}"#);
        let reply = manage(&rig, "PUT", &uri, &token, &body);
        assert_eq!(reply.0.status, status, "{name}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{name}");
        // Whatever the answer, the client has no more than it was registered with.
        let read = manage(&rig, "GET", &uri, &token, "").json();
        assert_eq!(read["grant_types"], serde_json::json!(["client_credentials"]), "{name}");
        assert_eq!(read["scope"], "orders:read", "{name}");
    }
    // Omitted grant_types and scope keep what the administrator registered.
    let renamed = manage(&rig, "GET", &uri, &token, "");
    assert_eq!(renamed.field("client_name"), "Demo console");
    assert_eq!(renamed.json()["redirect_uris"], serde_json::json!(["https://evil.example/cb"]));
}

/// Narrowing is not a new ceiling: the client may widen back to its administrator's grant.
#[test]
fn a_client_that_narrowed_itself_may_widen_back_to_its_administrators_grant_only() {
    let rig = registration_rig(|_| {});
    let (uri, id, token) = registered_rfc7591(
        &rig,
        r#"{"client_name":"shop","grant_types":["client_credentials","password","refresh_token"],"scope":"orders:read orders:write"}"#,
    );
    let put =
        |fields: &str| manage(&rig, "PUT", &uri, &token, &format!(r#"{{"client_id":"{id}",{fields}}}"#));
    let narrowed = put(r#""grant_types":["client_credentials"],"scope":"orders:read""#);
    assert_eq!(narrowed.0.status, 200, "{}", narrowed.text());
    assert_eq!(narrowed.json()["grant_types"], serde_json::json!(["client_credentials"]));
    let back = put(
        r#""grant_types":["client_credentials","password","refresh_token"],"scope":"orders:read orders:write""#,
    );
    assert_eq!(back.0.status, 200, "{}", back.text());
    assert_eq!(back.field("scope"), "orders:read orders:write");
    // Omitted: the administrator's grant, not the narrowed one.
    let omitted = put(r#""client_name":"shop""#);
    assert_eq!(
        omitted.json()["grant_types"],
        serde_json::json!(["client_credentials", "password", "refresh_token"])
    );
}

/// Widening is for an administrator who manages the client (its registering admin or a
/// super-admin, HTTP Basic as at registration); the reply carries a new registration access
/// token (RFC 7592 §3 allows it) and the old one stops working.
#[test]
fn an_administrator_widens_a_client_and_hands_it_a_new_registration_access_token() {
    let rig = registration_rig(|_| {});
    let (uri, id, token) = registered_rfc7591(
        &rig,
        r#"{"client_name":"shop","grant_types":["client_credentials"],"scope":"orders:read"}"#,
    );
    let wider = format!(
        r#"{{"client_id":"{id}","client_name":"shop","grant_types":["client_credentials","password","refresh_token"],"scope":"orders:read orders:write"}}"#
    );
    // Another admin: the client does not exist for it; a wrong password: the admin 401.
    assert_eq!(manage_as(&rig, "PUT", &uri, ("ops", "ops"), &wider).0.status, 404);
    assert_eq!(manage_as(&rig, "GET", &uri, ("ops", "ops"), "").0.status, 404);
    let wrong = manage_as(&rig, "PUT", &uri, ("admin", "wrong"), &wider);
    assert_eq!((wrong.0.status, wrong.field("error")), (401, "invalid_client".to_owned()));
    let read = manage_as(&rig, "GET", &uri, ("admin", "admin"), "");
    assert_eq!(read.0.status, 200, "{}", read.text());
    assert!(read.json().get("registration_access_token").is_none(), "a read changes nothing");

    let widened = manage_as(&rig, "PUT", &uri, ("admin", "admin"), &wider);
    assert_eq!(widened.0.status, 200, "{}", widened.text());
    assert_eq!(
        widened.json()["grant_types"],
        serde_json::json!(["client_credentials", "password", "refresh_token"])
    );
    assert_eq!(widened.field("scope"), "orders:read orders:write");
    let new_token = widened.field("registration_access_token");
    assert!(!new_token.is_empty() && new_token != token);
    assert_eq!(manage(&rig, "GET", &uri, &token, "").0.status, 401, "the old token stops working");
    assert_eq!(manage(&rig, "GET", &uri, &new_token, "").0.status, 200);
    // The administrator's update is the new ceiling of the client's own updates.
    let narrower =
        wider.replace(r#","refresh_token""#, "").replace(r#""password""#, r#""client_credentials""#);
    assert_eq!(manage(&rig, "PUT", &uri, &new_token, &narrower).0.status, 200);
    assert_eq!(manage(&rig, "PUT", &uri, &new_token, &wider).0.status, 200);
    // A super-admin manages it too.
    assert_eq!(manage_as(&rig, "PUT", &uri, ("root", "root"), &wider).0.status, 200);
    // An application registered at v0.17 is managed there, not here.
    let v017 = register(
        &rig,
        ("admin", "admin"),
        "application/json",
        r#"{"clientName":"old","grantType":"client_credentials"}"#,
    );
    let v017_uri = format!("/register/{}", v017.field("clientId"));
    assert_eq!(manage_as(&rig, "GET", &v017_uri, ("admin", "admin"), "").0.status, 404);
}

/// Whoever held the old secret may hold the registration access token too: a v0.17 re-key
/// rotates it. v0.17 has no field for a new one; an administrator's RFC 7592 update hands it out.
#[test]
fn a_v017_re_key_ends_the_registration_access_token() {
    let rig = registration_rig(|_| {});
    let (uri, id, token) = registered_rfc7591(
        &rig,
        r#"{"client_name":"shop","grant_types":["client_credentials"],"scope":"orders:read"}"#,
    );
    let update = format!(r#"{{"client_id":"{id}","client_name":"shop"}}"#);
    assert_eq!(manage(&rig, "PUT", &uri, &token, &update).0.status, 200);
    let rekeyed = rig.post_as("admin", "admin", &format!("{REGISTER}/{id}/secret"), "");
    assert_eq!(rekeyed.0.status, 200, "{}", rekeyed.text());
    for method in ["GET", "PUT", "DELETE"] {
        let body = if method == "PUT" { update.as_str() } else { "" };
        let reply = manage(&rig, method, &uri, &token, body);
        assert_eq!((reply.0.status, reply.field("error")), (401, "invalid_token".to_owned()), "{method}");
    }
    let handed = manage_as(&rig, "PUT", &uri, ("admin", "admin"), &update);
    assert_eq!(handed.0.status, 200, "{}", handed.text());
    let new_token = handed.field("registration_access_token");
    assert_eq!(manage(&rig, "GET", &uri, &new_token, "").0.status, 200);
    // The new secret works; the re-key did not change the client's metadata.
    let secret = rekeyed.field("clientSecret");
    assert_eq!(rig.post_as(&id, &secret, "/token", "grant_type=client_credentials").0.status, 200);
}

/// One administrator may not fill the registry for everyone: past `registration.max_per_owner`
/// its registrations are refused (403 `access_denied`: its metadata is fine, and waiting does
/// not help) until it deletes one. Others, and super-admins, are not held back.
#[test]
fn registrations_past_max_per_owner_are_refused_until_one_is_deleted() {
    let rig = registration_rig(|v| v["registration"]["max_per_owner"] = 2.into());
    let v017 = |who, name: &str| {
        let body = format!(r#"{{"clientName":"{name}","grantType":"client_credentials"}}"#);
        register(&rig, who, "application/json", &body)
    };
    let rfc7591 = |who, name: &str| register_rfc7591(&rig, who, &format!(r#"{{"client_name":"{name}"}}"#));
    let admin = ("admin", "admin");
    let first = v017(admin, "one");
    assert_eq!(first.0.status, 201, "{}", first.text());
    assert_eq!(rfc7591(admin, "two").0.status, 201);
    for (name, reply) in [("v0.17", v017(admin, "three")), ("RFC 7591", rfc7591(admin, "three"))] {
        assert_eq!(reply.0.status, 403, "{name}: {}", reply.text());
        assert_eq!(reply.field("error"), "access_denied", "{name}");
    }
    // Another admin has its own quota; a super-admin has none, even registering for `admin`.
    assert_eq!(v017(("ops", "ops"), "one").0.status, 201);
    for name in ["a", "b", "c"] {
        assert_eq!(rfc7591(("root", "root"), name).0.status, 201, "{name}");
    }
    let for_admin = r#"{"clientName":"four","owner":"admin","grantType":"client_credentials"}"#;
    assert_eq!(register(&rig, ("root", "root"), "application/json", for_admin).0.status, 201);
    assert_eq!(v017(admin, "three").0.status, 403);
    // Deleting one frees a place.
    let gone = rig.endpoint(
        "DELETE",
        &format!("{REGISTER}/{}", first.field("clientId")),
        Some(&format!("Basic {}", encode_basic_credentials("admin", "admin"))),
        None,
        "",
    );
    assert_eq!(gone.0.status, 204);
    assert_eq!(v017(admin, "three").0.status, 201);
    assert_eq!(rig.metrics.get(Metric::Registrations), 8);
}

/// RFC 7591 §3.2.2 errors, and who may register.
#[test]
fn rfc7591_registration_errors() {
    let rig = lifecycle_rig();
    struct Case {
        name: &'static str,
        caller: (&'static str, &'static str),
        body: &'static str,
        status: u16,
        error: &'static str,
    }
    let admin = ("admin", "admin");
    let table = [
        Case {
            name: "no client_name is fine",
            caller: admin,
            body: r#"{"grant_types":["client_credentials"]}"#,
            status: 201,
            error: "",
        },
        Case { name: "no metadata at all is fine", caller: admin, body: "{}", status: 201, error: "" },
        Case {
            name: "the same name twice is fine",
            caller: admin,
            body: r#"{"client_name":"twin"}"#,
            status: 201,
            error: "",
        },
        Case {
            name: "the same name twice is fine, again",
            caller: admin,
            body: r#"{"client_name":"twin"}"#,
            status: 201,
            error: "",
        },
        Case {
            name: "password and refresh",
            caller: admin,
            body: r#"{"grant_types":["password","refresh_token"]}"#,
            status: 201,
            error: "",
        },
        Case {
            name: "not JSON",
            caller: admin,
            body: "{nope",
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "not an object",
            caller: admin,
            body: "[]",
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "grant_types not an array",
            caller: admin,
            body: r#"{"grant_types":"client_credentials"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "authorization_code",
            caller: admin,
            body: r#"{"grant_types":["authorization_code"]}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "empty grant_types",
            caller: admin,
            body: r#"{"grant_types":[]}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "refresh alone",
            caller: admin,
            body: r#"{"grant_types":["client_credentials","refresh_token"]}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "scope beyond registration.scopes",
            caller: admin,
            body: r#"{"scope":"orders:write"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "malformed scope",
            caller: admin,
            body: r#"{"scope":"orders:read  x"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "auth method none",
            caller: admin,
            body: r#"{"token_endpoint_auth_method":"none"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "auth method private_key_jwt",
            caller: admin,
            body: r#"{"token_endpoint_auth_method":"private_key_jwt"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "control character in the name",
            caller: admin,
            body: r#"{"client_name":"a\nb"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "relative redirect URI",
            caller: admin,
            body: r#"{"redirect_uris":["/cb"]}"#,
            status: 400,
            error: "invalid_redirect_uri",
        },
        Case {
            name: "redirect URI with a fragment",
            caller: admin,
            body: r#"{"redirect_uris":["https://a.example/cb#x"]}"#,
            status: 400,
            error: "invalid_redirect_uri",
        },
        Case {
            name: "redirect URI with a space",
            caller: admin,
            body: r#"{"redirect_uris":["https://a.example/c b"]}"#,
            status: 400,
            error: "invalid_redirect_uri",
        },
        Case {
            name: "redirect_uris not an array",
            caller: admin,
            body: r#"{"redirect_uris":"https://a.example/cb"}"#,
            status: 400,
            error: "invalid_client_metadata",
        },
        Case {
            name: "wrong admin password",
            caller: ("admin", "wrong"),
            body: "{}",
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "not an admin",
            caller: ("viewer", "viewer"),
            body: "{}",
            status: 401,
            error: "invalid_client",
        },
        Case {
            name: "an application",
            caller: ("demo-app", "demo-secret"),
            body: "{}",
            status: 401,
            error: "invalid_client",
        },
    ];
    for Case { name, caller, body, status, error } in table {
        let reply = register_rfc7591(&rig, caller, body);
        assert_eq!(reply.0.status, status, "{name}: {}", reply.text());
        assert_eq!(reply.field("error"), error, "{name}");
        assert!(!reply.field("error_description").contains("orders:write"), "{name}");
    }
    let basic = format!("Basic {}", encode_basic_credentials("admin", "admin"));
    let form = rig.endpoint("POST", "/register", Some(&basic), Some(FORM), "client_name=x");
    assert_eq!(form.field("error"), "invalid_request");
    let get = rig.endpoint("GET", "/register", Some(&basic), None, "");
    assert_eq!((get.0.status, get.0.header("allow")), (405, Some("POST")));
    // Registration off: no RFC 7591 endpoint.
    assert_eq!(Rig::with_config(DEMO).gateway().endpoint("/register"), None);
}
