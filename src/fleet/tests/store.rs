//! What etcd keeps: tokens across restarts, registrations, leases, deleted buckets, compaction,
//! the credential-change record, and the tables fleet mode keeps.

use super::*;

#[test]
fn tokens_survive_a_restart_and_registrations_reach_every_replica() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    drop(a);
    // A new process: empty shared data, buckets created by on_configure, nothing cached.
    let restarted = fleet.replica();
    assert_eq!(restarted.bearer_status(&token), 200);

    let registered = restarted.decide(
        |_| true,
        |gateway| {
            let basic = format!("Basic {}", encode_basic_credentials("admin", "admin"));
            let path = "/client-registration/v0.17/register";
            let request = EndpointRequest {
                client_address: None,
                method: "POST",
                path,
                authorization: Some(&basic),
                content_type: Some("application/json"),
                body: br#"{"clientName":"shop","owner":"admin","grantType":"client_credentials"}"#,
            };
            gateway.serve(&gateway.endpoint(path).unwrap(), &request)
        },
    );
    let registered: serde_json::Value = serde_json::from_slice(&registered.unwrap().body).unwrap();
    let (id, secret) = (field(&registered, "clientId"), field(&registered, "clientSecret"));
    let other = fleet.replica();
    let issued = other.endpoint("/token", (&id, &secret), "grant_type=client_credentials");
    assert_eq!(issued.status, 200, "{}", String::from_utf8_lossy(&issued.body));
}

#[test]
fn a_fresh_replicas_first_registration_holds_though_it_compares_every_registry_bucket() {
    // The admin's quota is counted over every registry bucket, and each is compared: 128 at the
    // default capacity, etcd's default --max-txn-ops. A fresh VM's passes carry the
    // credential-change record as well until one holds.
    let fleet = Fleet::new();
    for name in ["first", "second"] {
        let fresh = fleet.replica();
        let registered = fresh.register(name).expect("etcd takes the registration's transaction");
        assert_eq!(registered.status, 201, "{}", String::from_utf8_lossy(&registered.body));
        let again = fresh.register(&format!("{name}-again")).expect("the record is not carried again");
        assert_eq!(again.status, 201, "{}", String::from_utf8_lossy(&again.body));
    }
}

#[test]
fn expired_grants_leave_etcd_with_their_lease() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(fleet.grant_keys(), 1);
    // Validity 3600 s; the lease outlives the token by 10 to 20 s.
    fleet.clock.advance(3600 + 5);
    fleet.etcd.expire_leases(fleet.now());
    assert_eq!(fleet.grant_keys(), 1, "not before the lease's window has passed");
    fleet.clock.advance(20);
    fleet.etcd.expire_leases(fleet.now());
    assert_eq!(fleet.grant_keys(), 0);
    a.catch_up();
    assert_eq!(a.bearer_status(&token), 401);
}

#[test]
fn revoking_the_last_grant_of_a_bucket_deletes_its_key() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(a.revoke(&token), 200);
    assert_eq!(fleet.grant_keys(), 0);
}

#[test]
fn after_a_compaction_the_cache_is_forgotten_and_read_again() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(b.bearer_status(&token), 200);
    assert_eq!(a.revoke(&token), 200);
    fleet.etcd.compact();
    // B's watch was behind the compaction: it forgets its cache rather than trust it.
    b.catch_up();
    assert_eq!(b.bearer_status(&token), 401);
}

#[test]
fn an_answer_sent_before_a_compaction_cannot_outlive_the_watch_that_follows() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    // etcd answers B about the token's bucket; the answer is still on its way...
    let txn = b.bearer_txn(&token);
    let late = fleet.etcd.txn(&txn.request);
    // ...while A revokes the token and etcd compacts the history B's watch needed.
    assert_eq!(a.revoke(&token), 200);
    fleet.etcd.compact();
    b.catch_up();
    // The watch now starts after the revocation and will never deliver it: the late answer
    // must not be cached, or B would let the revoked token through on its cache alone.
    let _ = settle(&b.shared, &txn, &late).unwrap();
    b.catch_up();
    assert_eq!(b.bearer_status(&token), 401);
}

#[test]
fn an_answer_sent_before_the_watch_starts_cannot_outlive_it() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    // A replica starting up: its first request asks etcd before its watch is open.
    let b = fleet.replica();
    let txn = b.bearer_txn(&token);
    let late = fleet.etcd.txn(&txn.request);
    assert_eq!(a.revoke(&token), 200);
    // The watch opens after the revocation (from where etcd stands), then the answer lands.
    b.restart_watch();
    let _ = settle(&b.shared, &txn, &late).unwrap();
    b.catch_up();
    assert_eq!(b.bearer_status(&token), 401);
}

#[test]
fn a_secret_rolled_back_across_restarts_does_not_revive_the_tokens_its_change_ended() {
    let fleet = Fleet::new();
    let token = field(&fleet.replica().token("grant_type=client_credentials"), "access_token");
    let mut rotated: serde_json::Value = serde_json::from_str(&fleet.json).unwrap();
    rotated["applications"][0]["consumer_secret"] = "rotated-secret".into();
    fleet.clock.advance(1);
    // Every replica restarted with the new secret: the token dies by its fingerprint.
    let under_v2 = fleet.replica_with(&rotated.to_string());
    assert_eq!(under_v2.bearer_status(&token), 401);
    fleet.clock.advance(1);
    // Every replica restarted with the old secret again: new processes, empty shared data.
    // Only etcd remembers that the secret changed after the token was issued.
    let (back, other) = (fleet.replica(), fleet.replica());
    assert_eq!(back.bearer_status(&token), 401, "the rollback revived the token");
    assert_eq!(other.bearer_status(&token), 401);
    let fresh = field(&back.token("grant_type=client_credentials"), "access_token");
    assert_eq!(other.bearer_status(&fresh), 200, "tokens issued after the rollback work everywhere");
}

#[test]
fn a_replica_records_its_config_with_the_first_pass_that_judges_a_token() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    let pass = |authorization: Option<&str>, path: &str| {
        let view = FleetView::new(&b.shared);
        let staged = StagedMetrics::default();
        let read = b.record.for_pass(&view, &b.config).unwrap();
        let changes = read.clone().unwrap_or_default();
        let gateway = Gateway::new(&b.config, b.host_with(&view, &staged, &changes));
        let outcome = gateway.check_bearer(&ApiRequest { method: "GET", path, authorization });
        let mut record = view.into_record();
        let kept = b.record.keep_if_judged(&mut record, read);
        (outcome, record, kept)
    };
    // Before B has heard from etcd at all, a public resource reads nothing of etcd's: it
    // needs no etcd (it keeps working while etcd is away), and records nothing.
    let (outcome, record, kept) = pass(None, "/api/public/ping");
    assert!(matches!(outcome, Outcome::Forward(_)));
    assert_eq!(plan(&record, PREFIX, false, fleet.now()), Step::Deliver);
    assert_eq!(kept, None);
    b.catch_up();
    // Once B's watch has delivered the token's bucket and the record A wrote for the same
    // config, a token check reads the record with the bucket, needs no write, and the cache
    // answers alone.
    let authorization = format!("Bearer {token}");
    let (outcome, record, kept) = pass(Some(&authorization), "/api/orders");
    assert!(matches!(outcome, Outcome::Forward(_)));
    assert!(record.reads.contains_key(crate::state::credential_changes::FLEET_KEY));
    assert_eq!(plan(&record, PREFIX, false, fleet.now()), Step::Deliver);
    assert!(kept.is_some(), "the record read with a token check is kept");
}

/// Fleet mode: each replica enforces its tiers in its own window counters, read and written at
/// once (not held back with the pass's stats).
#[test]
fn staged_metrics_count_tier_windows_at_once() {
    use crate::host::Coordination;
    let windows = std::rc::Rc::new(crate::host::memory::RecordedMetrics::default());
    let staged = StagedMetrics::with_windows(windows.clone(), false);
    staged.restart_window(3, 7 << 32 | 1);
    staged.count_in_window(3);
    assert_eq!(windows.window(3), Some(7 << 32 | 2));
    assert_eq!(staged.window(3), Some(7 << 32 | 2));
    assert_eq!(StagedMetrics::default().window(3), None);
}

/// What the watcher watches and the cache holds is what fleet mode keeps in etcd: a table
/// declared at home in etcd but left out of the gateway's keys would be written by each
/// replica alone, and one the gateway listed but `state::keys` kept per Envoy never shared.
#[test]
fn the_store_layouts_fleet_keys_are_exactly_the_fleet_tables_buckets() {
    use crate::state::keys::{table_of_bucket, Home, TABLES};
    let fleet = code_flow_fleet();
    let keys = fleet.replica().config.store_layout().fleet_keys();
    let outside: Vec<&String> = keys.iter().filter(|key| !crate::fleet::cache::is_fleet_key(key)).collect();
    assert!(outside.is_empty(), "not kept in etcd: {outside:?}");
    let mut listed: Vec<&str> =
        keys.iter().filter_map(|key| table_of_bucket(key)).map(|table| table.name).collect();
    listed.sort_unstable();
    listed.dedup();
    let mut in_etcd: Vec<&str> =
        TABLES.iter().filter(|table| table.home == Home::Etcd).map(|table| table.name).collect();
    in_etcd.sort_unstable();
    assert_eq!(listed, in_etcd);
}
