use super::*;
use crate::oauth::grant_type::{GrantType, GrantTypes};
use crate::oauth::redirect_uri::ApplicationType;

/// The demo configuration shipped in envoy/envoy.yaml, as the gateway tests use it too.
pub(crate) const DEMO: &str = r#"{
  "applications": [
    { "consumer_key": "demo-app", "consumer_secret": "demo-secret",
      "grant_types": ["client_credentials", "password", "refresh_token"],
      "scopes": ["orders:read", "orders:write"] }
  ],
  "users": [ { "username": "admin", "password": "admin", "scopes": ["orders:read", "orders:write"] } ],
  "resources": [
    { "methods": ["GET"], "path": "/api/orders", "scopes": ["orders:read"] },
    { "methods": ["GET"], "path": "/api/orders/{id}", "scopes": ["orders:read"] },
    { "methods": ["POST"], "path": "/api/orders", "scopes": ["orders:write"] },
    { "methods": ["GET"], "path": "/api/public/ping", "public": true }
  ]
}"#;

/// The demo configuration with `change` made to its JSON value: the one way tests build a
/// variant of a config (an edit on the text could match the wrong place and pass unnoticed).
pub(crate) fn demo_with(change: impl FnOnce(&mut serde_json::Value)) -> String {
    config_with(DEMO, change)
}

/// `json` with `change` made to its value.
pub(crate) fn config_with(json: &str, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
    change(&mut value);
    value.to_string()
}

fn error_of(json: &str) -> String {
    match Config::from_json(json.as_bytes()) {
        Ok(_) => panic!("config was accepted: {json}"),
        Err(ConfigError(message)) => message,
    }
}

/// A config that must be refused, and how its one-line error begins.
struct Refused {
    name: &'static str,
    json: String,
    error: &'static str,
}

/// Each case's error is one line and starts as the case says.
fn assert_refused(cases: impl IntoIterator<Item = Refused>) {
    for Refused { name, json, error } in cases {
        let message = error_of(&json);
        assert_eq!(message.lines().count(), 1, "{name}: {message}");
        assert!(message.starts_with(error), "{name}\n  got: {message}\n  want: {error}");
    }
}

#[test]
fn the_demo_config_is_valid_with_documented_defaults() {
    let config = Config::from_json(DEMO.as_bytes()).unwrap();
    assert_eq!(config.realm, "tokengate");
    assert_eq!(config.token_endpoint, "/token");
    assert_eq!(config.refresh_validity_secs, 86400);
    assert_eq!(config.applications["demo-app"].access_validity, Validity::Seconds(3600));
    assert_eq!(config.store_capacity, 10_000);
    assert_eq!(crate::state::grants::bucket_count_for(config.store_capacity), 1250);
    assert!(config.applications["demo-app"].verifier.verify("demo-secret"));
}

#[test]
fn the_login_form_has_a_pbkdf2_budget_and_its_own_lockout_table_by_default() {
    let config = Config::from_json(with_spa(|_| {}).as_bytes()).unwrap();
    // One sign-in a second per worker for a user hashed with the CLI's 100,000 iterations.
    assert_eq!(config.authorization.as_ref().map(|flow| flow.pbkdf2_iterations_per_sec), Some(100_000));
    assert_eq!(config.lockout.sign_in_pairs, config.lockout.tracked_names);
    // No login form, no table for it.
    assert_eq!(Config::from_json(DEMO.as_bytes()).unwrap().lockout.sign_in_pairs, 0);
}

#[test]
fn negative_validity_means_never() {
    let json = demo_with(|v| v["applications"][0]["access_token_validity_secs"] = (-1).into());
    let config = Config::from_json(json.as_bytes()).unwrap();
    assert_eq!(config.applications["demo-app"].access_validity, Validity::Never);
}

#[test]
fn grant_types_default_to_client_credentials_only() {
    let json = demo_with(|v| {
        v["applications"][0].as_object_mut().unwrap().remove("grant_types");
    });
    let config = Config::from_json(json.as_bytes()).unwrap();
    assert_eq!(config.applications["demo-app"].grant_types, GrantTypes::from([GrantType::ClientCredentials]));
}

/// Each broken config is refused with a message naming the place of the problem.
#[test]
fn invalid_configs_are_refused_with_a_clear_message() {
    let table: Vec<(String, &str)> = vec![
        ("".into(), "EOF"),
        ("{".into(), "EOF"),
        ("[]".into(), "wrong type or value at line 1 column 2"),
        (demo_with(|v| v["bogus"] = true.into()), "unknown field `bogus`"),
        (
            demo_with(|v| v["applications"][0]["colour"] = "red".into()),
            "applications[0].colour: unknown field `colour`",
        ),
        (
            demo_with(|v| v["login_page"] = serde_json::json!({"accent_colour": "#fff"})),
            "login_page.accent_colour: unknown field `accent_colour`",
        ),
        (
            demo_with(|v| v["login_page"] = serde_json::json!({"accent_color": "#fff;}*{display:none"})),
            "login_page.accent_color: must be #rgb or #rrggbb (hexadecimal digits)",
        ),
        (
            demo_with(|v| v["applications"][0]["grant_types"][0] = "implicit".into()),
            "applications[0].grant_types[0]: unknown variant at line",
        ),
        (
            demo_with(|v| v["applications"][0]["consumer_secret"] = "".into()),
            "applications[0].consumer_secret: must not be empty",
        ),
        (
            demo_with(|v| {
                v["applications"][0].as_object_mut().unwrap().remove("consumer_secret");
            }),
            "applications[0]: consumer_secret or consumer_secret_hash is needed",
        ),
        (
            demo_with(|v| v["applications"][0]["consumer_secret_hash"] = "sha256$x$y".into()),
            "applications[0]: give consumer_secret or consumer_secret_hash, not both",
        ),
        (
            demo_with(|v| {
                let app = v["applications"][0].clone();
                v["applications"].as_array_mut().unwrap().push(app);
            }),
            "applications[1].consumer_key: the same consumer_key appears twice",
        ),
        (
            demo_with(|v| v["applications"][0]["scopes"][0] = "bad scope".into()),
            "applications[0].scopes[0]: not a valid scope",
        ),
        (
            demo_with(|v| v["applications"][0]["access_token_validity_secs"] = 0.into()),
            "applications[0].access_token_validity_secs: 0 is not a validity",
        ),
        (
            demo_with(|v| v["applications"][0]["grant_types"] = serde_json::json!(["refresh_token"])),
            "refresh_token alone",
        ),
        (
            demo_with(|v| v["applications"][0]["grant_types"] = serde_json::json!([])),
            "at least one grant type",
        ),
        (
            demo_with(|v| {
                v["applications"][0]["grant_types"] =
                    serde_json::json!(["client_credentials", "refresh_token"])
            }),
            "applications[0].grant_types: refresh_token alone, or with client_credentials only",
        ),
        (
            demo_with(|v| {
                v["resources"][1]["path"] = "/api/orders/{order}".into();
                v["resources"].as_array_mut().unwrap().push(
                    serde_json::json!({"methods": ["GET"], "path": "/api/orders/{id}", "scopes": ["orders:read"]}),
                );
            }),
            "this method and path are listed twice",
        ),
        (demo_with(|v| v["applications"] = serde_json::json!([])), "applications: at least one application"),
        (
            demo_with(|v| v["users"][0]["password_hash"] = "md5$x".into()),
            "users[0]: give password or password_hash, not both",
        ),
        (
            demo_with(|v| v["resources"][0]["scopes"][0] = "orders:delete".into()),
            "resources[0].scopes[0]: no application can be granted this scope",
        ),
        (
            demo_with(|v| v["resources"][0]["path"] = "api/orders".into()),
            "resources[0].path: must start with '/'",
        ),
        (
            demo_with(|v| v["resources"][0]["path"] = "/token".into()),
            "resources[0].path: overlaps the token_endpoint",
        ),
        (
            demo_with(|v| v["resources"][0]["methods"][0] = "get".into()),
            "resources[0].methods[0]: an HTTP method in capitals",
        ),
        (
            demo_with(|v| v["resources"][1]["path"] = "/api/orders".into()),
            "resources[1].methods[0]: this method and path are listed twice",
        ),
        (
            demo_with(|v| v["resources"][3]["scopes"] = serde_json::json!(["orders:read"])),
            "resources[3].scopes: a public resource needs no scopes",
        ),
        (demo_with(|v| v["store"] = serde_json::json!({"capacity": 0})), "store.capacity: must be between 1"),
        (demo_with(|v| v["realm"] = "a\"b".into()), "realm: must be printable ASCII"),
        (demo_with(|v| v["token_endpoint"] = "token".into()), "token_endpoint: must be a path"),
        (
            demo_with(|v| v["refresh_token_validity_secs"] = (-5).into()),
            "refresh_token_validity_secs: must be a positive",
        ),
    ];
    for (json, expected) in table {
        let message = error_of(&json);
        assert!(message.contains(expected), "for {json}\n  got: {message}\n  want: {expected}");
    }
}

#[test]
fn error_messages_never_echo_a_secret() {
    // A secret typed where a number belongs, and a secret in a malformed hash field.
    let misplaced = demo_with(|v| v["store"] = serde_json::json!({"capacity": "SuperSecret-42"}));
    let message = error_of(&misplaced);
    assert!(!message.contains("SuperSecret-42"), "{message}");
    assert!(message.starts_with("store.capacity: wrong type or value"), "{message}");

    let bad_hash = demo_with(|v| {
        v["applications"][0].as_object_mut().unwrap().remove("consumer_secret");
        v["applications"][0]["consumer_secret_hash"] = "SuperSecret-42".into();
    });
    let message = error_of(&bad_hash);
    assert!(!message.contains("SuperSecret-42"), "{message}");
    assert!(message.starts_with("applications[0].consumer_secret_hash: expected sha256$"), "{message}");
}

/// serde quotes an unknown variant; the message names its place and the variants
/// expected, never the value (it may be a secret pasted into the wrong field).
#[test]
fn unknown_variants_are_named_by_place_not_value() {
    struct Case {
        name: &'static str,
        json: String,
        place: &'static str,
    }
    let secret = "s3cr3t-Value-42";
    let table = [
        Case {
            name: "an application's grant type",
            json: demo_with(|v| v["applications"][0]["grant_types"][1] = secret.into()),
            place: "applications[0].grant_types[1]: unknown variant at line ",
        },
        Case {
            name: "a registration grant type",
            json: demo_with(|v| {
                v["registration"] = serde_json::json!({"grant_types": ["client_credentials", secret]})
            }),
            place: "registration.grant_types[1]: unknown variant at line ",
        },
    ];
    for Case { name, json, place } in table {
        let message = error_of(&json);
        assert!(!message.contains(secret), "{name}: {message}");
        assert!(message.starts_with(place), "{name}: {message}");
        assert!(
            message.ends_with(
                "expected one of `client_credentials`, `password`, `refresh_token`, `authorization_code`"
            ),
            "{name}: {message}"
        );
    }
}

/// A parse error's place comes from its position in the text (`json_path.rs`): right after
/// the value it concerns, or, for an array or object serde refused on sight, just before it.
#[test]
fn parse_errors_name_the_value_at_their_position() {
    let table = [
        Refused {
            name: "a missing field, placed after the object",
            json: demo_with(|v| {
                v["users"][0].as_object_mut().unwrap().remove("username");
            }),
            error: "users[0]: missing field `username`",
        },
        Refused {
            name: "an array where a string belongs",
            json: demo_with(|v| v["realm"] = serde_json::json!(["x"])),
            error: "realm: wrong type or value at line 1 column ",
        },
        Refused {
            name: "an object as an array's first element",
            json: demo_with(|v| v["applications"][0]["scopes"] = serde_json::json!([{"a": 1}])),
            error: "applications[0].scopes[0]: wrong type or value at line 1 column ",
        },
        Refused {
            name: "a wrong type on another line",
            // An edit on the text, not the value: the error must name a line other than the first.
            json: DEMO.replace(r#""public": true"#, r#""public": "yes""#),
            error: "resources[3].public: wrong type or value at line 12 column ",
        },
        Refused {
            name: "text after the config",
            json: format!("{DEMO} x"),
            error: "trailing characters at line 14",
        },
    ];
    assert_refused(table);
}

#[test]
fn hashed_secrets_and_passwords_are_accepted() {
    // sha256 of "salt" + "s3cret" and pbkdf2-sha256 (1000 rounds) of "admin" with salt "pepper-salt",
    // both computed with Python's hashlib.
    let json = demo_with(|v| {
        v["applications"][0].as_object_mut().unwrap().remove("consumer_secret");
        v["applications"][0]["consumer_secret_hash"] =
            "sha256$c2FsdA==$LQO8MKPHuIGU2KjPYT4rewzl0H9eA4NlRWhKiiHq5Ho=".into();
        v["users"][0].as_object_mut().unwrap().remove("password");
        v["users"][0]["password_hash"] =
            "pbkdf2-sha256$1000$cGVwcGVyLXNhbHQ=$0dZ8qQvCYigm7icDoOyfqJrPCA8XbmBUrJiEMqnHWd8=".into();
    });
    let config = Config::from_json(json.as_bytes()).unwrap();
    assert!(config.applications["demo-app"].verifier.verify("s3cret"));
    assert!(config.users["admin"].verifier.verify("admin"));
}

/// The demo config with the lifecycle features on: an issuer, a resource server that may
/// introspect, and registration by an admin.
pub(crate) fn demo_with_lifecycle() -> String {
    demo_with(|v| {
        v["issuer"] = "http://127.0.0.1:8080".into();
        v["users"][0]["admin"] = true.into();
        v["users"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"username": "viewer", "password": "viewer"}));
        v["applications"].as_array_mut().unwrap().push(serde_json::json!({
            "consumer_key": "orders-service", "consumer_secret": "rs-secret", "introspect": true
        }));
        v["registration"] = serde_json::json!({
            "grant_types": ["client_credentials", "password", "refresh_token"],
            "scopes": ["orders:read"]
        });
    })
}

#[test]
fn lifecycle_settings_are_validated() {
    let config = Config::from_json(demo_with_lifecycle().as_bytes()).unwrap();
    assert_eq!(config.revocation_endpoint, "/revoke");
    assert_eq!(config.introspection_endpoint, "/introspect");
    assert_eq!(config.registration.as_ref().unwrap().endpoint, "/client-registration/v0.17/register");
    assert_eq!(config.registration.as_ref().unwrap().rfc7591_endpoint, "/register");
    assert!(config.applications["orders-service"].can_introspect);
    assert!(config.users["admin"].is_admin);
    assert_eq!(config.registration.as_ref().unwrap().max_per_owner, 100);

    let table: Vec<(String, &str)> = vec![
        (demo_with(|v| v["issuer"] = "http://example.com".into()), "issuer: must be an https URL"),
        (demo_with(|v| v["issuer"] = "https://example.com/?x".into()), "issuer: must have no query"),
        (
            demo_with(|v| v["issuer"] = "https://example.com/".into()),
            "issuer: must have no query, fragment or trailing",
        ),
        (
            demo_with(|v| v["revocation_endpoint"] = "/token".into()),
            "revocation_endpoint: is the same path as another endpoint",
        ),
        (demo_with(|v| v["registration"] = serde_json::json!({})), "registration: no user is an admin"),
        (
            demo_with(|v| {
                v["users"][0]["admin"] = true.into();
                v["registration"] = serde_json::json!({"rfc7591_endpoint": "/token"});
            }),
            "registration.rfc7591_endpoint: is the same path as another endpoint",
        ),
        (
            demo_with(|v| {
                v["users"][0]["admin"] = true.into();
                v["registration"] = serde_json::json!({"rfc7591_endpoint": "/client-registration"});
            }),
            "registration.rfc7591_endpoint: has the registration.endpoint below it",
        ),
        (
            demo_with(|v| {
                v["users"][0]["admin"] = true.into();
                v["registration"] = serde_json::json!({"rfc7591_endpoint": "register"});
            }),
            "registration.rfc7591_endpoint: must be a path starting with '/'",
        ),
        (
            demo_with(|v| {
                v["users"][0]["admin"] = true.into();
                v["registration"] = serde_json::json!({"grant_types": ["refresh_token"]});
            }),
            "registration.grant_types: refresh_token alone",
        ),
        (
            demo_with(|v| {
                v["users"][0]["admin"] = true.into();
                v["registration"] = serde_json::json!({"max_per_owner": 0});
            }),
            "registration.max_per_owner: must be at least 1",
        ),
        (
            demo_with(|v| v["resources"][0]["path"] = "/introspect".into()),
            "resources[0].path: overlaps the introspection_endpoint",
        ),
    ];
    for (json, expected) in table {
        let message = error_of(&json);
        assert!(message.contains(expected), "got: {message}\n  want: {expected}");
    }
    for good in ["https://auth.example.com", "https://auth.example.com/tenant", "http://localhost:8080"] {
        assert!(Config::from_json(demo_with(|v| v["issuer"] = good.into()).as_bytes()).is_ok(), "{good}");
    }
}

#[test]
fn the_fleet_section_is_optional_and_validated() {
    assert_eq!(Config::from_json(DEMO.as_bytes()).unwrap().fleet, None);
    let json = demo_with(|v| v["fleet"] = serde_json::json!({"cluster": "etcd"}));
    let fleet = Config::from_json(json.as_bytes()).unwrap().fleet.unwrap();
    assert_eq!((fleet.prefix.as_str(), fleet.timeout_ms, fleet.staleness_ms), ("tokengate/", 1000, 5000));
    struct Case {
        fleet: serde_json::Value,
        error: &'static str,
    }
    let table = [
        Case { fleet: serde_json::json!({}), error: "fleet: missing field `cluster`" },
        Case {
            fleet: serde_json::json!({"cluster": "et cd"}),
            error: "fleet.cluster: must name an Envoy cluster",
        },
        Case {
            fleet: serde_json::json!({"cluster": "etcd", "prefix": "tg"}),
            error: "fleet.prefix: must be",
        },
        Case {
            fleet: serde_json::json!({"cluster": "etcd", "timeout_ms": 0}),
            error: "fleet.timeout_ms: must be",
        },
        Case {
            fleet: serde_json::json!({"cluster": "etcd", "staleness_ms": 700000}),
            error: "fleet.staleness_ms",
        },
        Case {
            fleet: serde_json::json!({"cluster": "etcd", "members": 3}),
            error: "fleet.members: unknown field `members`",
        },
    ];
    for case in table {
        let json = demo_with(|v| v["fleet"] = case.fleet.clone());
        let message = error_of(&json);
        assert!(message.starts_with(case.error), "{}: got {message}", case.fleet);
    }
}

#[test]
fn the_etcd_login_comes_whole_and_no_error_or_debug_print_shows_its_password() {
    let fleet = |extra: serde_json::Value| {
        let mut section = serde_json::json!({"cluster": "etcd"});
        for (key, value) in extra.as_object().unwrap() {
            section[key] = value.clone();
        }
        demo_with(|v| v["fleet"] = section)
    };
    let json = fleet(serde_json::json!({"etcd_user": "tokengate", "etcd_password": "pw-s3cret"}));
    let config = Config::from_json(json.as_bytes()).unwrap().fleet.unwrap();
    let login = config.login.clone().unwrap();
    assert_eq!(
        (login.user.as_str(), login.password.expose(), login.renewal_ms),
        ("tokengate", "pw-s3cret", 120_000)
    );
    assert!(!format!("{config:?}").contains("pw-s3cret"), "{config:?}");
    let without = Config::from_json(fleet(serde_json::json!({})).as_bytes()).unwrap();
    assert_eq!(without.fleet.unwrap().login, None);
    struct Case {
        name: &'static str,
        extra: serde_json::Value,
        error: &'static str,
    }
    let table = [
        Case {
            name: "a user without a password",
            extra: serde_json::json!({"etcd_user": "tokengate"}),
            error: "fleet.etcd_password: is needed with etcd_user",
        },
        Case {
            name: "a password without a user",
            extra: serde_json::json!({"etcd_password": "pw-s3cret"}),
            error: "fleet.etcd_user: is needed with etcd_password",
        },
        Case {
            name: "an empty password",
            extra: serde_json::json!({"etcd_user": "tokengate", "etcd_password": ""}),
            error: "fleet.etcd_password: must be",
        },
        Case {
            name: "a control character in the user",
            extra: serde_json::json!({"etcd_user": "token\ngate", "etcd_password": "pw-s3cret"}),
            error: "fleet.etcd_user: must be",
        },
        Case {
            name: "a renewal too quick for etcd's raft",
            extra: serde_json::json!({"etcd_user": "u", "etcd_password": "pw-s3cret", "etcd_token_renewal_ms": 10}),
            error: "fleet.etcd_token_renewal_ms: must be",
        },
        Case {
            name: "a password of the wrong type, quoted by serde unless redacted",
            extra: serde_json::json!({"etcd_user": "u", "etcd_password": 987654321}),
            error: "fleet.etcd_password: wrong type",
        },
    ];
    for case in table {
        let message = error_of(&fleet(case.extra));
        assert!(message.starts_with(case.error), "{}: got {message}", case.name);
        assert!(!message.contains("pw-s3cret") && !message.contains("987654321"), "{}: {message}", case.name);
    }
}

/// A public single-page app using the code flow, added to the demo.
fn with_spa(change: impl FnOnce(&mut serde_json::Value)) -> String {
    demo_with(|v| {
        v["issuer"] = "https://127.0.0.1:8243".into();
        v["applications"].as_array_mut().unwrap().push(serde_json::json!({
            "consumer_key": "demo-spa", "public": true,
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["http://127.0.0.1:8080/console/callback"], "scopes": ["orders:read"]
        }));
        change(v)
    })
}

/// Web clients (the default) get CORS for their redirect URIs' exact origins; native ones for
/// their loopback origins on any port, apart (RFC 9700 §4.1.3, RFC 8252 §7.3).
#[test]
fn application_types_split_the_cors_origins_and_allow_private_use_schemes_to_native_clients() {
    let json = with_spa(|v| {
        v["applications"].as_array_mut().unwrap().push(serde_json::json!({
            "consumer_key": "demo-cli", "public": true, "application_type": "native",
            "grant_types": ["authorization_code"],
            "redirect_uris": ["http://127.0.0.1/callback", "com.example.app:/cb"], "scopes": ["orders:read"]
        }));
    });
    let config = Config::from_json(json.as_bytes()).unwrap();
    let flow = config.authorization.as_ref().unwrap();
    assert_eq!(flow.cors_origins, vec!["http://127.0.0.1:8080".to_owned()]);
    assert_eq!(flow.native_cors_origins, vec!["http://127.0.0.1".to_owned()]);
    assert_eq!(config.applications["demo-cli"].application_type, ApplicationType::Native);
    assert_eq!(config.applications["demo-spa"].application_type, ApplicationType::Web);
}

#[test]
fn the_code_flow_is_configured_per_application_rfc6749_4_1() {
    let config = Config::from_json(with_spa(|_| {}).as_bytes()).unwrap();
    let flow = config.authorization.as_ref().unwrap();
    assert_eq!((flow.endpoint.as_str(), flow.code_lifetime_ms), ("/authorize", 60_000));
    assert_eq!(flow.cors_origins, vec!["http://127.0.0.1:8080".to_owned()]);
    assert!(config.applications["demo-spa"].public);
    assert!(Config::from_json(DEMO.as_bytes()).unwrap().authorization.is_none(), "off unless used");
    // Registrations that may use the code grant turn the flow on, with no configured user of it.
    let registered = demo_with(|v| {
        v["users"][0]["admin"] = true.into();
        v["registration"] = serde_json::json!({"grant_types": ["authorization_code", "refresh_token"]});
    });
    let config = Config::from_json(registered.as_bytes()).unwrap();
    assert_eq!(config.authorization.as_ref().map(|flow| flow.endpoint.as_str()), Some("/authorize"));
    // Fleet mode keeps the flow's tables in etcd (src/fleet/cache.rs): allowed.
    let fleet = with_spa(|v| v["fleet"] = serde_json::json!({"cluster": "etcd"}));
    assert!(Config::from_json(fleet.as_bytes()).unwrap().authorization.is_some());

    let cases = [
        Refused {
            name: "a public client with a secret",
            json: with_spa(|v| v["applications"][1]["consumer_secret"] = "s".into()),
            error: "applications[1]: a public client has no consumer_secret",
        },
        Refused {
            name: "a public client with client_credentials",
            json: with_spa(|v| v["applications"][1]["grant_types"] = serde_json::json!(["authorization_code", "client_credentials"])),
            error: "applications[1].grant_types: a public client may use authorization_code and refresh_token only",
        },
        Refused {
            name: "the code grant without redirect URIs",
            json: with_spa(|v| v["applications"][1]["redirect_uris"] = serde_json::json!([])),
            error: "applications[1].redirect_uris: authorization_code needs at least one redirect URI",
        },
        Refused {
            name: "redirect URIs without the code grant",
            json: with_spa(|v| v["applications"][0]["redirect_uris"] = serde_json::json!(["https://a.example/cb"])),
            error: "applications[0].redirect_uris: only the authorization_code grant uses redirect URIs",
        },
        Refused {
            name: "plain http off loopback",
            json: with_spa(|v| v["applications"][1]["redirect_uris"] = serde_json::json!(["http://a.example/cb"])),
            error: "applications[1].redirect_uris[0]: must be https, or http on 127.0.0.1 or [::1]",
        },
        Refused {
            name: "a fragment",
            json: with_spa(|v| v["applications"][1]["redirect_uris"] = serde_json::json!(["https://a.example/cb#x"])),
            error: "applications[1].redirect_uris[0]: must have no fragment",
        },
        Refused {
            name: "twice the same URI",
            json: with_spa(|v| v["applications"][1]["redirect_uris"] = serde_json::json!(["https://a.example/cb", "https://a.example/cb"])),
            error: "applications[1].redirect_uris[1]: is listed twice",
        },
        Refused {
            name: "https without a host",
            json: with_spa(|v| v["applications"][1]["redirect_uris"] = serde_json::json!(["https://:443/cb"])),
            error: "applications[1].redirect_uris[0]: must be https, or http on 127.0.0.1 or [::1]",
        },
        Refused {
            name: "a javascript: redirect URI, even for a native client",
            json: with_spa(|v| {
                v["applications"][1]["application_type"] = "native".into();
                v["applications"][1]["redirect_uris"] = serde_json::json!(["javascript:alert(1)"]);
            }),
            error: "applications[1].redirect_uris[0]: must not use the javascript, data, vbscript or file scheme",
        },
        Refused {
            name: "a private-use scheme for a web client",
            json: with_spa(|v| v["applications"][1]["redirect_uris"] = serde_json::json!(["com.example.app:/cb"])),
            error: "applications[1].redirect_uris[0]: must be https, or http on 127.0.0.1 or [::1]",
        },
        Refused {
            name: "an application type OpenID Connect does not define",
            json: with_spa(|v| v["applications"][1]["application_type"] = "desktop".into()),
            error: "applications[1].application_type: unknown variant",
        },
        Refused {
            name: "a code lifetime over 60 s",
            json: with_spa(|v| v["authorization"] = serde_json::json!({"code_lifetime_secs": 61})),
            error: "authorization.code_lifetime_secs: must be between 1 and 60",
        },
        Refused {
            name: "a login form budget below one cheap PBKDF2 hash",
            json: with_spa(|v| v["authorization"] = serde_json::json!({"pbkdf2_iterations_per_sec": 999})),
            error: "authorization.pbkdf2_iterations_per_sec: must be between 1000 and 100000000",
        },
        Refused {
            name: "the authorization endpoint over another",
            json: with_spa(|v| v["authorization"] = serde_json::json!({"endpoint": "/token"})),
            error: "authorization.endpoint: is the same path as another endpoint",
        },
    ];
    assert_refused(cases);
}

fn demo_with_api(change: impl FnOnce(&mut serde_json::Value)) -> String {
    demo_with(|v| {
        v["apis"] = serde_json::json!([{ "name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0",
            "resources": [{ "methods": ["GET"], "path": "/items", "scopes": ["orders:read"] }] }]);
        v["tiers"] = serde_json::json!([{ "name": "Tiny", "requests": 3, "per": "second" }]);
        v["applications"][0]["subscriptions"] = serde_json::json!([{ "api": "Orders", "tier": "Tiny" }]);
        change(v);
    })
}

/// The demo API (`Orders` at `/orders/1.0.0`) and a second one, `Catalog`, at `context`, with a
/// public wildcard: the resource that would swallow the other API's paths if both were kept.
fn with_second_api(context: &str) -> String {
    demo_with_api(|v| {
        v["apis"].as_array_mut().unwrap().push(serde_json::json!({ "name": "Catalog", "version": "1",
            "context": context, "resources": [{ "methods": ["GET"], "path": "/*", "public": true }] }));
    })
}

/// Contexts overlap segment by segment only: a shared spelling without a '/' between is two
/// separate trees of paths.
#[test]
fn contexts_that_only_share_a_spelling_are_accepted() {
    for context in ["/orders2", "/orders/1.0.01", "/orders/2.0.0", "/order", "/Orders/1.0.0/beta"] {
        let config = Config::from_json(with_second_api(context).as_bytes());
        assert!(config.is_ok(), "{context}: {:?}", config.err());
    }
}

#[test]
fn apis_tiers_and_subscriptions_are_validated() {
    let table = [
        Refused {
            name: "unknown API",
            json: demo_with_api(|v| v["applications"][0]["subscriptions"][0]["api"] = "Nope".into()),
            error: "applications[0].subscriptions[0].api: no API of this name in apis",
        },
        Refused {
            name: "unknown tier",
            json: demo_with_api(|v| v["applications"][0]["subscriptions"][0]["tier"] = "Platinum".into()),
            error: "applications[0].subscriptions[0].tier: no tier of this name (built in or in tiers)",
        },
        Refused {
            name: "a built-in tier redefined",
            json: demo_with_api(|v| v["tiers"][0]["name"] = "Gold".into()),
            error: "tiers[0].name: names a tier already defined (or built in)",
        },
        Refused {
            name: "a tier of no requests",
            json: demo_with_api(|v| v["tiers"][0]["requests"] = 0.into()),
            error: "tiers[0].requests: must be at least 1",
        },
        Refused {
            name: "a tier per week",
            json: demo_with_api(|v| v["tiers"][0]["per"] = "week".into()),
            error: "tiers[0].per: unknown variant at line",
        },
        Refused {
            name: "a context ending in '/'",
            json: demo_with_api(|v| v["apis"][0]["context"] = "/orders/".into()),
            error: "apis[0].context: must be a path like /orders/1.0.0",
        },
        Refused {
            name: "a context that is a prefix of another API's",
            json: with_second_api("/orders"),
            error: "apis[1].context: overlaps the context of apis[0] (Orders): no context may be a path under another",
        },
        Refused {
            name: "a context under another API's",
            json: with_second_api("/orders/1.0.0/beta"),
            error: "apis[1].context: overlaps the context of apis[0] (Orders)",
        },
        Refused {
            name: "a context under another API's, with a doubled slash",
            json: with_second_api("/orders/1.0.0//beta"),
            error: "apis[1].context: overlaps the context of apis[0] (Orders)",
        },
        Refused {
            name: "an API resource's path without '/'",
            json: demo_with_api(|v| v["apis"][0]["resources"][0]["path"] = "items".into()),
            error: "apis[0].resources[0].path: must start with '/'",
        },
        Refused {
            name: "an API resource over a flat one",
            json: demo_with_api(|v| {
                v["apis"][0]["context"] = "/api".into();
                v["apis"][0]["resources"][0]["path"] = "/orders".into();
            }),
            error: "apis[0].resources[0].methods[0]: this method and path are listed twice",
        },
        Refused {
            name: "subscribed twice",
            json: demo_with_api(|v| {
                v["applications"][0]["subscriptions"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({ "api": "Orders" }));
            }),
            error: "applications[0].subscriptions[1].api: subscribed to twice",
        },
        Refused {
            name: "a sandbox pair reusing its production key",
            json: demo_with_api(|v| {
                v["applications"][0]["sandbox"] =
                    serde_json::json!({ "consumer_key": "demo-app", "consumer_secret": "x" });
            }),
            error: "applications[0].sandbox.consumer_key: is the production consumer_key",
        },
        Refused {
            name: "a sandbox pair reusing another application's key",
            json: demo_with_api(|v| {
                v["applications"][0]["sandbox"] =
                    serde_json::json!({ "consumer_key": "other", "consumer_secret": "x" });
                v["applications"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({ "consumer_key": "other", "consumer_secret": "y" }));
            }),
            error: "applications[0].sandbox.consumer_key: is another application's consumer_key",
        },
        Refused {
            name: "a sandbox pair without a secret",
            json: demo_with_api(|v| {
                v["applications"][0]["sandbox"] = serde_json::json!({ "consumer_key": "sb" })
            }),
            error: "applications[0].sandbox: consumer_secret or consumer_secret_hash is needed",
        },
        Refused {
            name: "a sandbox pair with an unknown field",
            json: demo_with_api(|v| {
                v["applications"][0]["sandbox"] =
                    serde_json::json!({ "consumer_key": "sb", "consumer_secret": "x", "tier": "Gold" });
            }),
            error: "applications[0].sandbox.tier: unknown field `tier`",
        },
        Refused {
            name: "a sandbox upstream that is no cluster name",
            json: demo_with_api(|v| v["apis"][0]["sandbox_upstream"] = "sandbox upstream".into()),
            error: "apis[0].sandbox_upstream: an Envoy cluster name",
        },
    ];
    assert_refused(table);
}

#[test]
fn subscriptions_get_their_tier_and_a_window_counter_when_rated() {
    let json = demo_with_api(|v| {
        v["apis"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({ "name": "Stock", "version": "2", "context": "/stock",
            "resources": [{ "methods": ["GET"], "path": "/", "public": true }] }));
        let subscriptions = v["applications"][0]["subscriptions"].as_array_mut().unwrap();
        subscriptions.push(serde_json::json!({ "api": "Stock", "state": "blocked" }));
    });
    let config = Config::from_json(json.as_bytes()).unwrap();
    let subscriptions = &config.applications["demo-app"].subscriptions;
    assert_eq!(subscriptions[0].tier.rate, Some((3, TierUnit::Second)));
    assert_eq!(subscriptions[0].counter, Some(0));
    assert_eq!(subscriptions[1].tier.name, "Unlimited");
    assert_eq!((subscriptions[1].tier.rate, subscriptions[1].counter), (None, None));
    assert_eq!(subscriptions[1].state, SubscriptionState::Blocked);
    assert_eq!(config.window_counters, 1);
    // The demo's flat resources stay one implicit API, without subscriptions or counters.
    let demo = Config::from_json(DEMO.as_bytes()).unwrap();
    assert_eq!((demo.apis.len(), demo.window_counters), (0, 0));
    assert!(demo.routes.rules().iter().all(|rule| rule.api.is_none()));
}

#[test]
fn a_sandbox_pair_is_an_entry_with_the_production_subscriptions() {
    let json = demo_with_api(|v| {
        v["applications"][0]["sandbox"] =
            serde_json::json!({ "consumer_key": "demo-app-sandbox", "consumer_secret": "x" });
    });
    let config = Config::from_json(json.as_bytes()).unwrap();
    let (production, sandbox) = (&config.applications["demo-app"], &config.applications["demo-app-sandbox"]);
    assert_eq!(sandbox.key_type, crate::state::grants::KeyType::Sandbox);
    assert_eq!(production.key_type, crate::state::grants::KeyType::Production);
    assert_eq!(sandbox.subscriptions, production.subscriptions, "one subscription, one tier window");
    assert_eq!((&sandbox.scopes, &sandbox.grant_types), (&production.scopes, &production.grant_types));
    assert_ne!(sandbox.fingerprint, production.fingerprint);
    assert_eq!(config.window_counters, 1);
}

/// Registered subscriptions share counters only with tiers of the same period: a counter's
/// window number belongs to one period, and sharing it across periods would let each
/// subscription restart the other's window and admit more than its tier.
#[test]
fn registered_counters_are_shared_only_within_a_tier_period() {
    let count = apis::registered_counters(10_000);
    assert_eq!(count, 256);
    let periods = [TierUnit::Second, TierUnit::Minute, TierUnit::Hour, TierUnit::Day];
    let mut seen: Vec<Vec<usize>> = vec![Vec::new(); periods.len()];
    for client in 0..200 {
        for (index, period) in periods.iter().enumerate() {
            let counter = registered_counter(&format!("client-{client}"), "Orders", *period, count);
            let counter = counter.expect("a counter for every subscription");
            assert!(counter < count, "within the pool");
            seen[index].push(counter);
        }
    }
    for (index, counters) in seen.iter().enumerate() {
        for (other, others) in seen.iter().enumerate().filter(|(other, _)| *other != index) {
            assert!(
                counters.iter().all(|counter| !others.contains(counter)),
                "periods {index} and {other} share"
            );
        }
    }
    // A registry of one application still has one counter per period.
    assert_eq!(apis::registered_counters(1), 4);
    assert_eq!(registered_counter("a", "Orders", TierUnit::Day, 4), Some(3));
    assert_eq!(registered_counter("a", "Orders", TierUnit::Day, 0), None);
}

/// `registration.open`: off unless present, and every bound checked.
#[test]
fn open_registration_is_off_by_default_and_bounded_when_on() {
    let with_open = |open: serde_json::Value| {
        demo_with(|v| {
            v["users"][0]["admin"] = true.into();
            v["registration"] = serde_json::json!({
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": ["orders:read", "orders:write"],
                "open": open
            });
        })
    };
    let on = Config::from_json(with_open(serde_json::json!({"scopes": ["orders:read"]})).as_bytes()).unwrap();
    let open = on.registration.as_ref().unwrap().open.clone().unwrap();
    assert_eq!(open.scopes.to_string(), "orders:read");
    assert_eq!(
        (open.max_per_source, open.max_registrations, open.expire_unused_after_secs),
        (5, 100, 2_592_000)
    );
    let off = demo_with(|v| {
        v["users"][0]["admin"] = true.into();
        v["registration"] = serde_json::json!({});
    });
    assert!(Config::from_json(off.as_bytes()).unwrap().registration.unwrap().open.is_none());

    let table = [
        (serde_json::json!({"scopes": []}), "registration.open.scopes: must name one or more"),
        (serde_json::json!({"scopes": ["admin:all"]}), "registration.open.scopes: must name one or more"),
        (serde_json::json!({}), "registration.open: missing field `scopes`"),
        (
            serde_json::json!({"scopes": ["orders:read"], "per_source": 1}),
            "registration.open.per_source: unknown field `per_source`",
        ),
        (
            serde_json::json!({"scopes": ["orders:read"], "max_per_source": 0}),
            "registration.open.max_per_source: must be between 1 and max_registrations",
        ),
        (
            serde_json::json!({"scopes": ["orders:read"], "max_per_source": 11, "max_registrations": 10}),
            "registration.open.max_per_source: must be between 1 and max_registrations",
        ),
        (
            serde_json::json!({"scopes": ["orders:read"], "max_registrations": 2000}),
            "registration.open.max_registrations: must be between 1 and registration.capacity",
        ),
        (
            serde_json::json!({"scopes": ["orders:read"], "expire_unused_after_secs": 59}),
            "registration.open.expire_unused_after_secs: must be at least 60",
        ),
    ];
    for (open, expected) in table {
        let message = error_of(&with_open(open));
        assert!(message.contains(expected), "got: {message}\n  want: {expected}");
    }
    let without_code = demo_with(|v| {
        v["users"][0]["admin"] = true.into();
        v["registration"] =
            serde_json::json!({"scopes": ["orders:read"], "open": {"scopes": ["orders:read"]}});
    });
    let message = error_of(&without_code);
    assert!(message.contains("registration.open: registers public clients"), "{message}");
}

/// `registration.open.subscriptions`: each names an API of `apis` once, with a known tier
/// (Unlimited when omitted); they are the open registrations' subscriptions.
#[test]
fn open_registration_subscriptions_name_known_apis_and_tiers() {
    let with_subscriptions = |subscriptions: serde_json::Value| {
        demo_with(|v| {
            v["users"][0]["admin"] = true.into();
            v["apis"] = serde_json::json!([{ "name": "Mcp", "version": "1", "context": "/mcp",
                "resources": [{ "methods": ["POST"], "path": "/", "scopes": ["orders:read"] }] }]);
            v["registration"] = serde_json::json!({
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": ["orders:read"],
                "open": { "scopes": ["orders:read"], "subscriptions": subscriptions }
            });
        })
    };
    let config = with_subscriptions(serde_json::json!([{ "api": "Mcp" }]));
    let open = Config::from_json(config.as_bytes()).unwrap().registration.unwrap().open.unwrap();
    let names: Vec<_> = open.subscriptions.iter().map(|s| (s.api.as_str(), s.tier.as_str())).collect();
    assert_eq!(names, [("Mcp", "Unlimited")]);

    let table = [
        (
            serde_json::json!([{ "api": "Orders" }]),
            "registration.open.subscriptions[0].api: no API of this name",
        ),
        (
            serde_json::json!([{ "api": "Mcp", "tier": "Platinum" }]),
            "registration.open.subscriptions[0].tier: no tier of this name",
        ),
        (
            serde_json::json!([{ "api": "Mcp" }, { "api": "Mcp", "tier": "Gold" }]),
            "registration.open.subscriptions[1].api: subscribed to twice",
        ),
        (serde_json::json!([{ "api": "Mcp", "state": "BLOCKED" }]), "unknown field `state`"),
    ];
    for (subscriptions, expected) in table {
        let message = error_of(&with_subscriptions(subscriptions));
        assert!(message.contains(expected), "got: {message}\n  want: {expected}");
    }
}

/// RFC 8707 §2 and RFC 9728 §3.1: each API's resource identifier is an absolute URI without a
/// fragment, names one API only, and gives its metadata a URL of its own.
#[test]
fn api_resource_identifiers_are_validated() {
    let with_issuer = |change: fn(&mut serde_json::Value)| {
        config_with(&with_second_api("/catalog"), |v| {
            v["issuer"] = "https://127.0.0.1:8243".into();
            change(v);
        })
    };
    let table = [
        Refused {
            name: "a relative resource",
            json: with_issuer(|v| v["apis"][0]["resource"] = "/orders".into()),
            error: "apis[0].resource: must be an absolute URI without a fragment",
        },
        Refused {
            name: "a resource with a fragment",
            json: with_issuer(|v| v["apis"][0]["resource"] = "https://api.example/orders#v1".into()),
            error: "apis[0].resource: must be an absolute URI without a fragment",
        },
        Refused {
            name: "a resource with a query",
            json: with_issuer(|v| v["apis"][0]["resource"] = "https://api.example/orders?v=1".into()),
            error: "apis[0].resource: must have no query",
        },
        Refused {
            name: "a resource without an authority has no metadata URL",
            json: with_issuer(|v| v["apis"][0]["resource"] = "urn:example:orders".into()),
            error: "apis[0].resource: must be a URL with an authority",
        },
        Refused {
            name: "two APIs with one resource",
            json: with_issuer(|v| {
                v["apis"][0]["resource"] = "https://api.example/shop".into();
                v["apis"][1]["resource"] = "https://api.example/shop".into();
            }),
            error: "apis[1].resource: is the resource of apis[0] too",
        },
        Refused {
            name: "a resource equal to another API's derived one",
            json: with_issuer(|v| v["apis"][1]["resource"] = "https://127.0.0.1:8243/orders/1.0.0".into()),
            error: "apis[1].resource: is the resource of apis[0] too",
        },
        Refused {
            name: "two resources on one path share a metadata URL",
            json: with_issuer(|v| {
                v["apis"][0]["resource"] = "https://a.example/shop".into();
                v["apis"][1]["resource"] = "https://b.example/shop".into();
            }),
            error: "apis[1].resource: has the path of apis[0]'s resource",
        },
        Refused {
            name: "require_audience with no resource to require",
            json: config_with(&with_second_api("/catalog"), |v| {
                v["apis"][0]["require_audience"] = true.into()
            }),
            error: "apis[0].resource: require_audience needs a resource",
        },
    ];
    assert_refused(table);
}

#[test]
fn an_api_resource_defaults_to_the_issuers_origin_and_the_context() {
    let json = config_with(&with_second_api("/catalog"), |v| {
        v["issuer"] = "https://gw.example:8243/oauth2".into();
        v["apis"][1]["resource"] = "https://catalog.example/".into();
        v["apis"][1]["require_audience"] = true.into();
    });
    let config = Config::from_json(json.as_bytes()).unwrap();
    let orders = &config.apis[0];
    assert_eq!(
        orders.resource.as_deref(),
        Some("https://gw.example:8243/orders/1.0.0"),
        "the issuer's path is not kept"
    );
    assert!(!orders.require_audience, "off unless configured");
    assert_eq!(config.apis[1].resource.as_deref(), Some("https://catalog.example/"));
    assert!(config.apis[1].require_audience);
    let without_issuer = Config::from_json(with_second_api("/catalog").as_bytes()).unwrap();
    assert_eq!(without_issuer.apis[0].resource, None, "nothing to derive it from");
}

/// RFC 8037 Appendix A.1's Ed25519 key: a published test key, never one to deploy.
pub(crate) fn rfc8037_signing_key() -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "rfc8037", "alg": "EdDSA",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
    })
}

/// RFC 7515 Appendix A.3's P-256 key, public part only (a retired key).
fn rfc7515_public_key() -> serde_json::Value {
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": "rfc7515", "alg": "ES256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    })
}

#[test]
fn signing_is_optional_and_its_keys_make_the_jwks() {
    assert!(Config::from_json(DEMO.as_bytes()).unwrap().signing.is_none());
    let json = demo_with(|v| {
        v["signing"] =
            serde_json::json!({"keys": [rfc8037_signing_key()], "retired_keys": [rfc7515_public_key()]});
    });
    let signing = Config::from_json(json.as_bytes()).unwrap().signing.unwrap();
    assert_eq!(signing.jwks_endpoint, "/oauth2/jwks");
    assert_eq!(signing.active_key().map(|key| key.kid()), Some("rfc8037"));
    assert!(signing.key_for(crate::jose::Algorithm::Es256).is_none(), "a retired key never signs");
    let kids: Vec<&str> = signing.key_set.keys().iter().map(|key| key.kid()).collect();
    assert_eq!(kids, ["rfc8037", "rfc7515"]);
    let jwks: serde_json::Value = serde_json::from_str(&signing.jwks).unwrap();
    let mut retired = rfc7515_public_key();
    retired["use"] = "sig".into();
    assert_eq!(jwks["keys"][1], retired);
    assert!(!signing.jwks.contains("\"d\""), "{}", signing.jwks);
}

#[test]
fn signing_keys_are_checked_and_errors_name_the_member_never_the_key() {
    const D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        demo_with(|v| {
            v["signing"] =
                serde_json::json!({"keys": [rfc8037_signing_key()], "retired_keys": [rfc7515_public_key()]});
            change(&mut v["signing"]);
        })
    };
    let cases = [
        Refused {
            name: "no key",
            json: with(&|s| s["keys"] = serde_json::json!([])),
            error: "signing.keys: must list at least one key",
        },
        Refused {
            name: "x of another key",
            json: with(&|s| s["keys"][0]["x"] = "2tuIvqX91CbdVP3aA7tqs9b-GT4BZwu8FSTBtG5ljIo".into()),
            error: "signing.keys[0].x: is not the public key of d",
        },
        Refused {
            name: "an algorithm we do not implement",
            json: with(&|s| s["keys"][0]["alg"] = "RS256".into()),
            error: "signing.keys[0].alg: must be EdDSA or ES256",
        },
        Refused {
            name: "d that is not base64url",
            json: with(&|s| s["keys"][0]["d"] = format!("{D}==").into()),
            error: "signing.keys[0].d: is not 32 bytes of canonical base64url",
        },
        Refused {
            name: "d of the wrong type",
            json: with(&|s| s["keys"][0]["d"] = 42.into()),
            error: "signing.keys[0].d: wrong type or value",
        },
        Refused {
            name: "a private key without d",
            json: with(&|s| {
                s["keys"][0].as_object_mut().unwrap().remove("d");
            }),
            error: "signing.keys[0]: missing field `d`",
        },
        Refused {
            name: "a retired key that still has its private part",
            json: with(&|s| s["retired_keys"][0]["d"] = D.into()),
            error: "signing.retired_keys[0]",
        },
        Refused {
            name: "a retired key with the kid of an active one",
            json: with(&|s| s["retired_keys"][0]["kid"] = "rfc8037".into()),
            error: "signing.retired_keys[0].kid: is the kid of another key",
        },
        Refused {
            name: "a retired P-256 key with y spelled with non-zero trailing bits",
            json: with(&|s| s["retired_keys"][0]["y"] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1".into()),
            error: "signing.retired_keys[0].y: is not 32 bytes of canonical base64url",
        },
        Refused {
            name: "a retired P-256 key off the curve",
            json: with(&|s| s["retired_keys"][0]["y"] = "x_FEzRu9m36HLN_tue658LNpXW6pCyStikYjKIWI5a0".into()),
            error: "signing.retired_keys[0].y: is not, with x, a point on P-256",
        },
        Refused {
            name: "the JWKS on the token endpoint's path",
            json: with(&|s| s["jwks_endpoint"] = "/token".into()),
            error: "signing.jwks_endpoint: is the same path as another endpoint",
        },
    ];
    for case in &cases {
        let message = error_of(&case.json);
        assert!(!message.contains(D), "{}: {message}", case.name);
    }
    assert_refused(cases);
}

/// `token_format`: per application or as the default of the others (registered ones included);
/// a JWT is signed by the active key, names the issuer, and always expires (RFC 9068 §2.2).
#[test]
fn token_formats_need_keys_an_issuer_and_a_finite_lifetime() {
    let signed = |change: &dyn Fn(&mut serde_json::Value)| {
        demo_with(|v| {
            v["issuer"] = "http://127.0.0.1:8080".into();
            v["signing"] = serde_json::json!({"keys": [rfc8037_signing_key()]});
            change(v);
        })
    };
    let config =
        Config::from_json(signed(&|v| v["applications"][0]["token_format"] = "jwt".into()).as_bytes())
            .unwrap();
    let app = &config.applications["demo-app"];
    assert_eq!(app.token_format, TokenFormat::Jwt);
    assert_eq!(app.access_validity, Validity::Seconds(300), "the JWT default, not the opaque one");
    assert_eq!(config.default_token_format, TokenFormat::Opaque);
    let config = Config::from_json(
        signed(&|v| {
            v["token_format"] = "jwt".into();
            v["jwt_access_token_validity_secs"] = 60.into();
            v["applications"][0]["access_token_validity_secs"] = 120.into();
        })
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(config.default_token_format, TokenFormat::Jwt);
    assert_eq!(config.jwt_access_validity, Validity::Seconds(60));
    assert_eq!(config.applications["demo-app"].access_validity, Validity::Seconds(120));
    assert_eq!(config.applications["demo-app"].token_format, TokenFormat::Jwt);

    let table: Vec<(String, &str)> = vec![
        (
            demo_with(|v| v["applications"][0]["token_format"] = "jwt".into()),
            "applications[consumer_key=demo-app].token_format: jwt needs a signing section and an issuer",
        ),
        (
            demo_with(|v| v["token_format"] = "jwt".into()),
            "token_format: jwt needs a signing section and an issuer",
        ),
        (
            signed(&|v| {
                v.as_object_mut().unwrap().remove("issuer");
            }),
            "",
        ),
        (
            signed(&|v| {
                v["applications"][0]["token_format"] = "jwt".into();
                v["applications"][0]["access_token_validity_secs"] = (-1).into();
            }),
            "applications[0].access_token_validity_secs: must be a positive number of seconds",
        ),
        (
            signed(&|v| v["jwt_access_token_validity_secs"] = 0.into()),
            "jwt_access_token_validity_secs: must be",
        ),
        (demo_with(|v| v["token_format"] = "signed".into()), "token_format: unknown variant"),
    ];
    for (json, expected) in table {
        let result = Config::from_json(json.as_bytes());
        match expected {
            "" => assert!(result.is_ok(), "an opaque default needs no issuer"),
            expected => {
                let error = result.err().map(|error| error.to_string()).unwrap_or_default();
                assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
            }
        }
    }
    let without_issuer = signed(&|v| {
        v.as_object_mut().unwrap().remove("issuer");
        v["applications"][0]["token_format"] = "jwt".into();
    });
    let error = Config::from_json(without_issuer.as_bytes()).err().unwrap().to_string();
    assert!(error.contains("jwt needs a signing section and an issuer"), "{error}");
}
