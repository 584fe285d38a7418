//! Tokens across replicas: issued on one and accepted on another, revoked on one and refused on
//! every worker of the others once the watch delivers, refresh rotation exactly once, and what
//! etcd must confirm.

use super::*;

#[test]
fn a_token_issued_on_one_replica_is_accepted_by_another_at_once() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    // B has heard nothing yet: its cache does not know the bucket, so it asks etcd.
    assert_eq!(b.bearer_status(&token), 200);
    assert_eq!(a.bearer_status(&token), 200);
    assert_eq!(b.bearer_status("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 401);
    assert_eq!(
        a.metrics.get(Metric::TokensIssued(crate::oauth::grant_type::GrantType::ClientCredentials)),
        1
    );
}

/// A replica's cache may not have seen a token another replica just issued: a refusal for want
/// of a live token waits for etcd's word. Every other answer can go out from the cache.
#[test]
fn only_a_denial_for_want_of_a_live_token_must_rest_on_etcd() {
    let fleet = Fleet::new();
    let replica = fleet.replica();
    let token = format!("Bearer {}", field(&replica.token("grant_type=client_credentials"), "access_token"));
    struct Case {
        name: &'static str,
        path: &'static str,
        authorization: Option<&'static str>,
        rests_on_the_store: bool,
    }
    #[rustfmt::skip]
    let table = [
        Case { name: "no token", path: "/api/orders", authorization: None, rests_on_the_store: true },
        Case { name: "an unknown token", path: "/api/orders", authorization: Some("Bearer AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), rests_on_the_store: true },
        Case { name: "a malformed header", path: "/api/orders", authorization: Some("Bearer a b"), rests_on_the_store: false },
        Case { name: "no such resource", path: "/nowhere", authorization: None, rests_on_the_store: false },
        Case { name: "a token in the URL", path: "/api/orders?access_token=x", authorization: None, rests_on_the_store: false },
        Case { name: "a live token", path: "/api/orders", authorization: Some("live"), rests_on_the_store: false },
    ];
    for Case { name, path, authorization, rests_on_the_store } in table {
        let authorization =
            authorization.map(|header| if header == "live" { token.as_str() } else { header });
        let request = ApiRequest { method: "GET", path, authorization };
        let outcome =
            replica.decide(Outcome::rests_on_the_store, |gateway| gateway.check_bearer(&request)).unwrap();
        assert_eq!(outcome.rests_on_the_store(), rests_on_the_store, "{name}: {outcome:?}");
    }
}

#[test]
fn a_revocation_on_one_replica_ends_the_token_on_the_other_once_its_watch_delivers() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(b.bearer_status(&token), 200);
    assert_eq!(b.revoke(&token), 200);
    assert_eq!(b.bearer_status(&token), 401, "the revoking replica knows at once");
    a.catch_up();
    assert_eq!(a.bearer_status(&token), 401, "the other one as soon as its watch delivers");
}

/// Each worker remembers the tokens it validated (`state::remembered`), trusted while its
/// Envoy's token epoch stands: the replica that revokes moves it once its write holds, every
/// other one once its watch has put the revocation in the cache.
#[test]
fn a_remembered_token_is_refused_on_every_replica_once_the_revocation_reaches_it() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    b.catch_up();
    for replica in [&a, &b] {
        // B's first pass records its config in etcd's credential-change record: until that
        // holds, no token is judged from memory. The next one remembers.
        for _ in 0..2 {
            assert_eq!(replica.bearer_status(&token), 200);
        }
        let reads = replica.bearer_reads(&token);
        assert!(reads.is_empty(), "a warm hit answers from the worker's memory, read {reads:?}");
    }
    assert_eq!(b.revoke(&token), 200);
    assert_eq!(b.bearer_status(&token), 401, "the revoking replica forgets at once");
    // Until its watch delivers, A knows no more than its cache, which still holds the token.
    assert_eq!(a.bearer_status(&token), 200);
    a.catch_up();
    assert_eq!(a.bearer_status(&token), 401, "the next request after the watch delivered");
}

/// A watch that starts again from where etcd stands (at start-up, after a compaction) never
/// delivers what changed before: the workers' memories go with the cache.
#[test]
fn a_watch_that_starts_again_leaves_no_remembered_token_behind() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(a.bearer_status(&token), 200);
    assert_eq!(b.revoke(&token), 200);
    fleet.etcd.compact();
    a.restart_watch();
    assert_eq!(a.bearer_status(&token), 401);
}

#[test]
fn a_stale_cache_cannot_revive_a_token_etcd_no_longer_holds() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    assert_eq!(b.revoke(&token), 200);
    // A has not heard of the revocation; a write into the same bucket must not restore it.
    let introspected = a.endpoint("/introspect", ("demo-app", "demo-secret"), &format!("token={token}"));
    assert_eq!(
        String::from_utf8_lossy(&introspected.body),
        r#"{"active":false}"#,
        "endpoints confirm with etcd"
    );
}

#[test]
fn refresh_rotation_is_exactly_once_across_replicas() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let issued = a.token("grant_type=password&username=admin&password=admin");
    let refresh = field(&issued, "refresh_token");
    let body = format!("grant_type=refresh_token&refresh_token={refresh}");
    b.catch_up();
    // Both passes run on the same cached state; etcd lets only the first commit through.
    let pass = |replica: &Replica| {
        let view = FleetView::new(&replica.shared);
        let staged = StagedMetrics::default();
        let gateway = Gateway::new(&fleet.config, replica.host(&view, &staged));
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
        let request = EndpointRequest {
            client_address: None,
            method: "POST",
            path: "/token",
            authorization: Some(&basic),
            content_type: Some(FORM),
            body: body.as_bytes(),
        };
        let response = gateway.serve(&gateway.endpoint("/token").unwrap(), &request);
        (response, view.into_record())
    };
    let (first, first_record) = pass(&a);
    let (second, second_record) = pass(&b);
    assert_eq!((first.status, second.status), (200, 200), "each pass alone would win");
    let Step::Ask(first_txn) = plan(&first_record, PREFIX, true, fleet.now()) else { panic!("a write") };
    let Step::Ask(second_txn) = plan(&second_record, PREFIX, true, fleet.now()) else { panic!("a write") };
    for lease in first_txn.leases.iter().chain(&second_txn.leases) {
        let _ = fleet.etcd.lease_grant(lease, fleet.now());
    }
    assert_eq!(settle(&a.shared, &first_txn, &fleet.etcd.txn(&first_txn.request)).unwrap(), Settled::Holds);
    assert_eq!(settle(&b.shared, &second_txn, &fleet.etcd.txn(&second_txn.request)).unwrap(), Settled::Stale);
    // B runs again on what etcd sent back: the refresh token is used, so it is refused, and
    // with no reuse grace (the default, RFC 9700 §4.14.2) the reuse ends the grant everywhere.
    assert_eq!(b.endpoint("/token", ("demo-app", "demo-secret"), &body).status, 400);
    let winner = serde_json::from_slice::<serde_json::Value>(&first.body).unwrap();
    a.catch_up();
    for replica in [&a, &b] {
        assert_eq!(replica.bearer_status(&field(&winner, "access_token")), 401);
        assert_eq!(replica.bearer_status(&field(&issued, "access_token")), 401);
    }
}

/// A shared store that counts its reads: whether settling etcd's answer read the cache again.
struct CountingReads<'s> {
    store: &'s MemoryStore,
    reads: std::cell::Cell<usize>,
}

impl crate::host::SharedStore for CountingReads<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, crate::host::StoreError> {
        self.reads.set(self.reads.get() + 1);
        self.store.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), crate::host::StoreError> {
        self.store.set(key, value, cas)
    }
}

/// A client_credentials pass over `replica`'s cache, planned: its record and its transaction,
/// with the leases it needs granted.
fn planned_token_pass(
    fleet: &Fleet,
    replica: &Replica,
) -> (crate::fleet::view::PassRecord, crate::fleet::plan::FleetTxn) {
    let view = FleetView::new(&replica.shared);
    let staged = StagedMetrics::default();
    let gateway = Gateway::new(&fleet.config, replica.host(&view, &staged));
    let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
    let request = EndpointRequest {
        client_address: None,
        method: "POST",
        path: "/token",
        authorization: Some(&basic),
        content_type: Some(FORM),
        body: b"grant_type=client_credentials",
    };
    assert_eq!(gateway.serve(&gateway.endpoint("/token").unwrap(), &request).status, 200);
    let record = view.into_record();
    let Step::Ask(txn) = plan(&record, PREFIX, true, fleet.now()) else { panic!("a token is a write") };
    for lease in &txn.leases {
        let _ = fleet.etcd.lease_grant(lease, fleet.now());
    }
    (record, txn)
}

#[test]
fn a_committed_write_reaches_the_cache_without_reading_it_again() {
    // Each shared-data read costs Envoy a host call and a copy into the VM: when nothing
    // changed the entry since the pass read it, etcd's answer replaces it with one write.
    let fleet = Fleet::new();
    let a = fleet.replica();
    a.token("grant_type=client_credentials");
    let (record, txn) = planned_token_pass(&fleet, &a);
    let counting = CountingReads { store: &a.shared, reads: std::cell::Cell::new(0) };
    let response = fleet.etcd.txn(&txn.request);
    assert_eq!(settle(&counting, &txn, &response).unwrap(), Settled::Holds);
    assert_eq!(counting.reads.get(), 0, "the entries the pass read were written over at once");
    let revision = response.header.map(|header| header.revision).unwrap();
    for key in record.writes.keys() {
        let (bytes, _) = a.shared.get(key).unwrap().unwrap();
        let entry = crate::fleet::cache::decode(&bytes).unwrap();
        assert_eq!((entry.mod_revision, entry.seen_revision), (revision, revision), "{key}");
    }
}

#[test]
fn a_newer_word_the_watch_cached_meanwhile_outlives_an_older_answer() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    a.token("grant_type=client_credentials");
    let (record, txn) = planned_token_pass(&fleet, &a);
    let response = fleet.etcd.txn(&txn.request);
    // Between the pass and etcd's answer, the watch caches a later revision of the bucket.
    let later = response.header.as_ref().map(|header| header.revision).unwrap() + 10;
    let key = record.writes.keys().next().unwrap();
    let newer = crate::fleet::cache::Entry { mod_revision: later, seen_revision: later, value: b"newer" };
    assert!(crate::fleet::cache::store(&a.shared, key, newer).unwrap());
    assert_eq!(settle(&a.shared, &txn, &response).unwrap(), Settled::Holds);
    let (bytes, _) = a.shared.get(key).unwrap().unwrap();
    assert_eq!(crate::fleet::cache::decode(&bytes), Some(newer), "the answer, older, was not taken");
}

/// RFC 8707 in fleet mode: a grant's audience lives in its etcd record, so a refresh on
/// another replica sees it, may narrow it, and never widens it, and every replica's Bearer
/// check reads the narrowed one.
#[test]
fn the_audience_survives_a_refresh_across_replicas_and_only_narrows() {
    let orders = "http://127.0.0.1:8080/orders";
    let mcp = "http://127.0.0.1:8080/mcp";
    let fleet = Fleet::with_config(&crate::config::tests::config_with(&demo_with_lifecycle(), |v| {
        v["apis"] = serde_json::json!([
            { "name": "Orders", "version": "1", "context": "/orders",
              "resources": [{ "methods": ["GET"], "path": "/", "scopes": ["orders:read"] }] },
            { "name": "Mcp", "version": "1", "context": "/mcp",
              "resources": [{ "methods": ["GET"], "path": "/", "scopes": ["orders:read"] }] }
        ]);
        v["applications"][0]["subscriptions"] = serde_json::json!([{ "api": "Orders" }, { "api": "Mcp" }]);
    }));
    let (a, b) = (fleet.replica(), fleet.replica());
    let encoded = |uri: &str| uri.replace(':', "%3A").replace('/', "%2F");
    let issued = a.token(&format!(
        "grant_type=password&username=admin&password=admin&resource={}&resource={}",
        encoded(orders),
        encoded(mcp)
    ));
    let status_on = |replica: &Replica, path: &str, token: &str| {
        let authorization = format!("Bearer {token}");
        let outcome = replica
            .decide_remembering(true, Outcome::rests_on_the_store, |gateway| {
                gateway.check_bearer(&ApiRequest { method: "GET", path, authorization: Some(&authorization) })
            })
            .unwrap();
        match outcome {
            Outcome::Forward(_) => 200,
            Outcome::Deny(Denial { response, .. }) => response.status,
        }
    };
    b.catch_up();
    let refresh = |replica: &Replica, token: &str, resource: &str| {
        let body = format!("grant_type=refresh_token&refresh_token={token}&resource={}", encoded(resource));
        replica.endpoint("/token", ("demo-app", "demo-secret"), &body)
    };
    let narrowed = refresh(&b, &field(&issued, "refresh_token"), mcp);
    assert_eq!(narrowed.status, 200, "{}", String::from_utf8_lossy(&narrowed.body));
    let narrowed: serde_json::Value = serde_json::from_slice(&narrowed.body).unwrap();
    a.catch_up();
    let widened = refresh(&a, &field(&narrowed, "refresh_token"), orders);
    assert_eq!(widened.status, 400, "{}", String::from_utf8_lossy(&widened.body));
    assert!(String::from_utf8_lossy(&widened.body).contains("invalid_target"));
    for replica in [&a, &b] {
        assert_eq!(status_on(replica, "/mcp", &field(&narrowed, "access_token")), 200);
        assert_eq!(status_on(replica, "/orders", &field(&narrowed, "access_token")), 401, "narrowed");
    }
    let introspected = a.endpoint(
        "/introspect",
        ("orders-service", "rs-secret"),
        &format!("token={}", field(&narrowed, "access_token")),
    );
    let introspected: serde_json::Value = serde_json::from_slice(&introspected.body).unwrap();
    assert_eq!(introspected["aud"], mcp);
}

/// This replica's token epoch.
fn epoch(replica: &Replica) -> u64 {
    replica.epochs.0.get()
}

/// A pass caches etcd's answer with its revision (`plan::settle`), so the watch's echo of this
/// replica's own write finds it there: no worker forgets what it remembered for it.
#[test]
fn the_watch_echoing_this_replicas_own_write_keeps_every_remembered_token() {
    let fleet = Fleet::new();
    let a = fleet.replica();
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    a.catch_up();
    for _ in 0..2 {
        assert_eq!(a.bearer_status(&token), 200);
    }
    let before = epoch(&a);
    let another = field(&a.token("grant_type=client_credentials"), "access_token");
    a.catch_up();
    assert_eq!(epoch(&a), before, "neither issuing nor its echo moves it");
    let reads = a.bearer_reads(&token);
    assert!(reads.is_empty(), "still answered from the worker's memory, read {reads:?}");
    assert_eq!(a.revoke(&another), 200);
    assert_eq!(epoch(&a), before + 1, "the revocation's pass moves it once it holds");
    a.catch_up();
    assert_eq!(epoch(&a), before + 1, "and its echo no more");
}

/// What another replica writes moves the epoch when it may end or alter a token a worker
/// remembers, and only then: under steady issuance elsewhere, a worker keeps its memory.
#[test]
fn another_replicas_write_moves_the_epoch_only_when_it_may_end_or_alter_a_token() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let issued = b.token("grant_type=password&username=admin&password=admin");
    let refresh = field(&issued, "refresh_token");
    let revoked = field(&b.token("grant_type=client_credentials"), "access_token");
    a.catch_up();
    struct Case<'t> {
        name: &'static str,
        change: fn(&Replica, &str),
        argument: &'t str,
        moves: bool,
    }
    let rotate = |b: &Replica, refresh: &str| {
        drop(b.token(&format!("grant_type=refresh_token&refresh_token={refresh}")));
    };
    #[rustfmt::skip]
    let table = [
        Case { name: "a token issued", change: |b, _| drop(b.token("grant_type=client_credentials")), argument: "", moves: false },
        Case { name: "a token revoked", change: |b, token| assert_eq!(b.revoke(token), 200), argument: &revoked, moves: true },
        Case { name: "a refresh token rotated", change: rotate, argument: &refresh, moves: true },
        Case { name: "an application registered", change: |b, _| assert_eq!(b.register("fleet-epoch-app").unwrap().status, 201), argument: "", moves: true },
    ];
    for Case { name, change, argument, moves } in table {
        change(&b, argument);
        let before = epoch(&a);
        a.catch_up();
        assert_eq!(epoch(&a) != before, moves, "{name}");
    }
    // A replica started with another secret records the change in etcd's credential-change
    // record with its first pass that judges a token.
    let mut rotated: serde_json::Value = serde_json::from_str(&fleet.json).unwrap();
    rotated["applications"][0]["consumer_secret"] = "rotated-secret".into();
    fleet.clock.advance(1);
    let under_new_secret = fleet.replica_with(&rotated.to_string());
    assert_eq!(under_new_secret.bearer_status(&field(&issued, "access_token")), 401);
    let before = epoch(&a);
    a.catch_up();
    assert_ne!(epoch(&a), before, "a credential change");
}
