//! Rotated secrets and passwords end old tokens, on every VM that serves an old config (see
//! docs/credential-rotation.md).

use super::*;

#[test]
fn restoring_old_credentials_does_not_revive_ended_tokens() {
    let rig = Rig::demo();
    // Each load records its credentials, as every VM does in on_configure; the clock moves
    // between loads as it would between config updates.
    let load = |json: &str| {
        rig.clock.advance(10);
        let config = Config::from_json(json.as_bytes()).unwrap();
        let changes =
            CredentialChanges::record(&rig.shared, &config.credentials(), rig.clock.now_millis().unwrap())
                .unwrap();
        (config, changes)
    };
    let status_under = |loaded: &(Config, CredentialChanges), token: &str| {
        let authorization = format!("Bearer {token}");
        let request = ApiRequest { method: "GET", path: "/api/orders", authorization: Some(&authorization) };
        status_of(&rig.gateway_with(loaded).check_bearer(&request))
    };
    let issue_under = |loaded: &(Config, CredentialChanges)| {
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
        let request = EndpointRequest {
            client_address: None,
            method: "POST",
            path: "/token",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: b"grant_type=client_credentials",
        };
        Reply(rig.gateway_with(loaded).serve(&Endpoint::Token, &request)).field("access_token")
    };
    let original = load(DEMO);
    let token = issue_under(&original);
    assert_eq!(status_under(&original, &token), 200);
    // Reloading the same config changes nothing.
    assert_eq!(status_under(&load(DEMO), &token), 200);
    let rotated = load(&demo_with(|v| v["applications"][0]["consumer_secret"] = "rotated".into()));
    assert_eq!(status_under(&rotated, &token), 401);
    assert_eq!(status_under(&load(DEMO), &token), 401, "rolling back revived the token");
    // Envoy may reuse the very first config's root without on_configure: its timer re-reads
    // the changes, and with them the token stays dead.
    let reused = (Config::from_json(DEMO.as_bytes()).unwrap(), CredentialChanges::read(&rig.shared).unwrap());
    assert_eq!(status_under(&reused, &token), 401, "a reused root revived the token");
    // Removing the application and adding it back later does not revive its tokens either.
    let fresh = issue_under(&load(DEMO));
    rig.clock.advance(1);
    let with_another_app = demo_with(|v| {
        let other =
            serde_json::json!({ "consumer_key": "other", "consumer_secret": "x", "scopes": ["orders:read"] });
        v["applications"].as_array_mut().unwrap().insert(0, other);
    });
    let without_demo_app =
        config_with(&with_another_app, |v| v["applications"][1]["consumer_key"] = "renamed".into());
    assert_eq!(status_under(&load(&with_another_app), &fresh), 200);
    load(&without_demo_app);
    assert_eq!(
        status_under(&load(&with_another_app), &fresh),
        401,
        "re-adding the application revived its token"
    );
    // Tokens issued after the last change work.
    let latest = load(&with_another_app);
    assert_eq!(status_under(&latest, &issue_under(&latest)), 200);
}

/// After a config update Envoy keeps serving the connections it drains with the old config's
/// VMs (for up to 600 s by default): once they re-read the credential record, the old secret
/// and password no longer authenticate there, and no token issued under them stands, not even
/// one they minted after the change while their view was still a timer tick old.
#[test]
fn an_old_configs_vm_refuses_credentials_a_later_config_changed() {
    // keep-app stays as it is, so the admin's password is checked on its own.
    let before = demo_with(|v| {
        let keep = serde_json::json!({ "consumer_key": "keep-app", "consumer_secret": "keep",
            "grant_types": ["client_credentials", "password"], "scopes": ["orders:read"] });
        v["applications"].as_array_mut().unwrap().insert(0, keep);
    });
    let after = config_with(&before, |v| {
        v["applications"][1]["consumer_secret"] = "rotated".into();
        v["users"][0]["password"] = "new".into();
    });
    let rig = Rig::with_config(&before);
    let load = |json: &str| {
        rig.clock.advance(10);
        let config = Config::from_json(json.as_bytes()).unwrap();
        let now = rig.clock.now_millis().unwrap();
        let changes = CredentialChanges::record(&rig.shared, &config.credentials(), now).unwrap();
        (config, changes)
    };
    let post = |loaded: &(Config, CredentialChanges), (key, secret): (&str, &str), body: &str| {
        let basic = format!("Basic {}", encode_basic_credentials(key, secret));
        let request = EndpointRequest {
            method: "POST",
            path: "/token",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: body.as_bytes(),
            client_address: None,
        };
        Reply(rig.gateway_with(loaded).serve(&Endpoint::Token, &request))
    };
    let status_under = |loaded: &(Config, CredentialChanges), token: &str| {
        let authorization = format!("Bearer {token}");
        let request = ApiRequest { method: "GET", path: "/api/orders", authorization: Some(&authorization) };
        status_of(&rig.gateway_with(loaded).check_bearer(&request))
    };
    const CC: &str = "grant_type=client_credentials";
    const OLD_PASSWORD: &str = "grant_type=password&username=admin&password=admin";
    let (old_app, keep_app, new_app) =
        (("demo-app", "demo-secret"), ("keep-app", "keep"), ("demo-app", "rotated"));
    let old = load(&before);
    let kept_admin = post(&old, keep_app, OLD_PASSWORD).field("access_token");
    let rotated = load(&after);
    // The old config's VM before its timer re-reads the record (at most one tick): it still
    // takes the old credentials.
    let minted_stale = post(&old, old_app, CC);
    assert_eq!(minted_stale.0.status, 200, "{}", minted_stale.text());
    let minted_stale = minted_stale.field("access_token");
    let old_reread =
        (Config::from_json(before.as_bytes()).unwrap(), CredentialChanges::read(&rig.shared).unwrap());
    let refused = post(&old_reread, old_app, CC);
    assert_eq!((refused.0.status, refused.field("error").as_str()), (401, "invalid_client"));
    let refused = post(&old_reread, keep_app, OLD_PASSWORD);
    assert_eq!((refused.0.status, refused.field("error").as_str()), (400, "invalid_grant"));
    assert_eq!(status_under(&old_reread, &minted_stale), 401, "a token minted with the old secret stands");
    assert_eq!(status_under(&old_reread, &kept_admin), 401, "a token of the old password stands");
    assert_eq!(status_under(&rotated, &minted_stale), 401);
    // What the change left alone still works on the old config's VM.
    assert_eq!(status_under(&old_reread, &post(&old_reread, keep_app, CC).field("access_token")), 200);
    // The new config's VM is never refused because of its own change.
    assert_eq!(status_under(&rotated, &post(&rotated, new_app, CC).field("access_token")), 200);
    let password = post(&rotated, keep_app, "grant_type=password&username=admin&password=new");
    assert_eq!(status_under(&rotated, &password.field("access_token")), 200, "{}", password.text());
}

/// A config restored exactly while its old plugin still exists: Envoy reuses that plugin's
/// VMs without `on_configure`, so they look like the draining ones of the old config. The
/// connection ids tell them apart: a VM of the newest config fixes the boundary on its first
/// request; below it a superseded VM refuses, at or above it the VM is current again.
#[test]
fn connection_ids_tell_a_restored_configs_vm_from_a_draining_one() {
    let before = DEMO.to_owned();
    let after = demo_with(|v| v["applications"][0]["consumer_secret"] = "rotated".into());
    let rig = Rig::with_config(&before);
    struct Vm {
        config: Config,
        generation: std::cell::Cell<u64>,
    }
    let load = |json: &str| {
        rig.clock.advance(10);
        let config = Config::from_json(json.as_bytes()).unwrap();
        let now = rig.clock.now_millis().unwrap();
        let changes = CredentialChanges::record(&rig.shared, &config.credentials(), now).unwrap();
        Vm { config, generation: std::cell::Cell::new(changes.generation()) }
    };
    // Each request: the VM's view as its timer last read it, on a connection of this id.
    let token = |vm: &Vm, connection: u64, secret: &str| {
        rig.connection.0.set(Some(connection));
        let changes = CredentialChanges::read(&rig.shared).unwrap();
        let host = Host { credential_changes: &changes, config_generation: &vm.generation, ..rig.host() };
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", secret));
        let request = EndpointRequest {
            method: "POST",
            path: "/token",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: b"grant_type=client_credentials",
            client_address: None,
        };
        Reply(Gateway::new(&vm.config, host).serve(&Endpoint::Token, &request))
    };
    let bearer = |vm: &Vm, connection: u64, token: &str| {
        rig.connection.0.set(Some(connection));
        let changes = CredentialChanges::read(&rig.shared).unwrap();
        let host = Host { credential_changes: &changes, config_generation: &vm.generation, ..rig.host() };
        let authorization = format!("Bearer {token}");
        let request = ApiRequest { method: "GET", path: "/api/orders", authorization: Some(&authorization) };
        status_of(&Gateway::new(&vm.config, host).check_bearer(&request))
    };
    let old = load(&before);
    let new = load(&after);
    let old_generation = old.generation.get();
    // No request reached the new config yet: the old secret is refused everywhere.
    assert_eq!(token(&old, 60, "demo-secret").0.status, 401, "the old secret worked before any boundary");
    let minted_new = token(&new, 40, "rotated");
    assert_eq!(minted_new.0.status, 200, "{}", minted_new.text());
    let minted_new = minted_new.field("access_token");
    // The old config's VM on a connection accepted before the change (below 40) is draining.
    let refused = token(&old, 30, "demo-secret");
    assert_eq!((refused.0.status, refused.field("error").as_str()), (401, "invalid_client"));
    assert_eq!(old.generation.get(), old_generation, "a refusal moved the VM's generation");
    // The same VM on a connection accepted after it is a restored config's: it serves.
    let restored = token(&old, 50, "demo-secret");
    assert_eq!(restored.0.status, 200, "{}", restored.text());
    assert!(old.generation.get() > new.generation.get(), "the restored VM did not re-assert its config");
    assert_eq!(bearer(&old, 55, &restored.field("access_token")), 200);
    // The new config's VM, now draining, refuses its secret and its tokens.
    let refused = token(&new, 45, "rotated");
    assert_eq!((refused.0.status, refused.field("error").as_str()), (401, "invalid_client"));
    assert_eq!(bearer(&new, 45, &minted_new), 401, "a token of the superseded secret stands");
    // With no connection id to go by, a superseded credential is refused.
    rig.connection.0.set(None);
    let changes = CredentialChanges::read(&rig.shared).unwrap();
    let host = Host { credential_changes: &changes, config_generation: &new.generation, ..rig.host() };
    let unknown = Gateway::new(&new.config, host);
    assert!(unknown.configured_application("demo-app").is_none());
}
