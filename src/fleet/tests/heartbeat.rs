//! The watch's heartbeat (`fleet/heartbeat.rs`): when the watcher may say its cache is current.

use super::*;

/// A progress answer from a member whose own store stops at `revision` (etcd answers those
/// without the quorum), as `watch::apply` reads it.
fn progress_answer(revision: i64) -> crate::fleet::etcd::WatchResponse {
    crate::fleet::etcd::WatchResponse {
        header: Some(crate::fleet::etcd::ResponseHeader { revision }),
        ..Default::default()
    }
}

/// Applies one watch message to `replica`'s cache and returns what the heartbeat says.
fn watch_delivers(
    replica: &Replica,
    heartbeat: &mut Heartbeat,
    message: &crate::fleet::etcd::WatchResponse,
) -> Option<u64> {
    match watch::apply(&replica.shared, &*replica.epochs, PREFIX, message, Vec::new().into_iter()).unwrap() {
        watch::Heard::UpTo(revision) => heartbeat.watch_reached(revision),
        other => panic!("expected progress, got {other:?}"),
    }
}

#[test]
fn a_watch_on_a_member_behind_the_quorum_never_vouches_for_a_revoked_token() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    let mut heartbeat = Heartbeat::default();
    // A's watch sits on a member that stops at this revision (partitioned away).
    let member_revision = fleet.etcd.revision();
    assert_eq!(b.revoke(&token), 200);
    for tick in 0..10u64 {
        let now = 1_000 + tick * 500;
        assert!(heartbeat.read_due(now, 2_000));
        heartbeat.read_sent(now);
        // The quorum read says where etcd stands: past the revocation.
        assert_eq!(heartbeat.read_answered(fleet.etcd.revision(), now + 5), None);
        let progress = progress_answer(member_revision);
        assert_eq!(watch_delivers(&a, &mut heartbeat, &progress), None, "tick {tick}: stamped");
    }
    assert!(heartbeat.watch_lags(1_000 + 9 * 500, 3_000), "the watch should be moved");
}

#[test]
fn the_heartbeat_is_when_the_read_the_watch_has_reached_was_sent() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let token = field(&a.token("grant_type=client_credentials"), "access_token");
    let mut heartbeat = Heartbeat::default();
    let before = fleet.etcd.revision();
    assert_eq!(b.revoke(&token), 200);
    heartbeat.read_sent(7_000);
    assert_eq!(heartbeat.read_answered(fleet.etcd.revision(), 7_010), None, "the watch is not there yet");
    assert_eq!(watch_delivers(&a, &mut heartbeat, &progress_answer(before)), None);
    assert!(!heartbeat.watch_lags(7_010 + 3_000, 3_000), "inside the lag limit");
    // The revocation's event arrives: the cache holds everything committed before 7000.
    let events = fleet.etcd.watch_from(before + 1);
    assert_eq!(watch_delivers(&a, &mut heartbeat, &events), Some(7_000));
    assert_eq!(a.bearer_status(&token), 401);
    assert!(!heartbeat.watch_lags(20_000, 3_000), "nothing left to reach");
    // A later read the watch is already past stamps at once.
    heartbeat.read_sent(7_500);
    assert_eq!(heartbeat.read_answered(fleet.etcd.revision(), 7_520), Some(7_500));
}

#[test]
fn of_several_reads_reached_the_latest_one_stamps() {
    let mut heartbeat = Heartbeat::default();
    for (sent_at, revision) in [(1_000, 10), (1_500, 12), (2_000, 15)] {
        heartbeat.read_sent(sent_at);
        assert_eq!(heartbeat.read_answered(revision, sent_at + 10), None);
    }
    assert_eq!(heartbeat.watch_reached(9), None);
    assert_eq!(heartbeat.watch_reached(13), Some(1_500));
    assert_eq!(heartbeat.watch_reached(14), None, "the read at 2000 needs 15");
    assert_eq!(heartbeat.watch_reached(15), Some(2_000));
}

#[test]
fn a_failed_read_stamps_nothing_and_the_next_tick_sends_another() {
    let mut heartbeat = Heartbeat::default();
    heartbeat.watch_reached(50);
    heartbeat.read_sent(1_000);
    assert!(!heartbeat.read_due(1_500, 2_000), "one read out at a time");
    heartbeat.read_failed();
    assert_eq!(heartbeat.read_answered(40, 1_600), None, "an answer to no read out stamps nothing");
    assert!(heartbeat.read_due(1_500, 2_000));
    heartbeat.read_sent(1_500);
    assert!(heartbeat.read_due(3_501, 2_000), "a read never answered is taken as lost");
}

#[test]
fn a_reopened_stream_gets_the_lag_limit_again() {
    let mut heartbeat = Heartbeat::default();
    heartbeat.read_sent(1_000);
    assert_eq!(heartbeat.read_answered(10, 1_010), None);
    assert!(heartbeat.watch_lags(4_011, 3_000));
    heartbeat.watch_opened(4_011);
    assert!(!heartbeat.watch_lags(6_000, 3_000));
    assert!(heartbeat.watch_lags(7_012, 3_000));
}

#[test]
fn a_created_watch_vouches_for_nothing_before_its_events() {
    // etcd's `created` answer carries etcd's revision, not the watch's: the events from the
    // start revision on are still to come, so neither the resume point nor the heartbeat may
    // move on it.
    let fleet = Fleet::new();
    let a = fleet.replica();
    let created = crate::fleet::etcd::WatchResponse {
        header: Some(crate::fleet::etcd::ResponseHeader { revision: 40 }),
        created: true,
        ..Default::default()
    };
    let heard = watch::apply(&a.shared, &*a.epochs, PREFIX, &created, Vec::new().into_iter()).unwrap();
    assert_eq!(heard, watch::Heard::Opened);
}

#[test]
fn a_watch_etcd_refused_to_create_is_refused_not_opened() {
    // etcd 3.4 answers a create it does not permit (an ended token, a user without read on the
    // prefix) with `created` and `canceled` both set: such a watch delivers nothing, ever.
    let fleet = Fleet::new();
    let a = fleet.replica();
    let refused = crate::fleet::etcd::WatchResponse {
        header: Some(crate::fleet::etcd::ResponseHeader { revision: 40 }),
        created: true,
        canceled: true,
        ..Default::default()
    };
    let heard = watch::apply(&a.shared, &*a.epochs, PREFIX, &refused, Vec::new().into_iter()).unwrap();
    assert_eq!(heard, watch::Heard::Refused);
}

#[test]
fn the_heartbeat_read_is_one_linearizable_count_on_one_key() {
    let read = crate::fleet::heartbeat::read_request(PREFIX);
    assert_eq!(read.key, PREFIX.as_bytes());
    assert!(read.range_end.is_empty(), "one key, not the prefix's range");
    assert!(read.count_only);
    assert_eq!(read.limit, 1);
}
