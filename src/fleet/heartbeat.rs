//! When the watcher may vouch for its cache: the heartbeat (`fleet.watch_heartbeat_ms`) that
//! workers check before a Bearer check rests on the cache alone. Sans-IO: the glue sends the
//! reads and the watch's progress requests, and hands their answers in here.
//!
//! The watch cannot vouch for itself: etcd answers a watch's progress request from the
//! member's own store, without asking the quorum (`WatchProgressRequest` in etcd's
//! `api/etcdserverpb/rpc.proto`; <https://github.com/etcd-io/etcd/pull/9869> describes the
//! intended use: compare the progress revision with a quorum read's), so a member cut off from
//! its peers, or behind them, keeps answering while the fleet moves on.
//! Instead, every tick the glue sends a linearizable `Range` ([`read_request`]: etcd's default,
//! answered only once the member has caught up with the leader). Once the watch has delivered
//! up to the revision that read returned, every change committed before the read was sent is in
//! the cache: the heartbeat is the time the read was sent.

use super::etcd::RangeRequest;

/// Answered reads the watch has not reached yet, kept at most: one read goes out per tick, and
/// a watch this far behind is reopened long before.
const MAX_PENDING: usize = 16;

/// A linearizable read on one key (the prefix itself, which holds nothing): etcd answers it
/// with the cluster's current revision, at the cost of one index lookup, sending no value.
pub fn read_request(prefix: &str) -> RangeRequest {
    RangeRequest { key: prefix.as_bytes().to_vec(), limit: 1, count_only: true, ..RangeRequest::default() }
}

/// A linearizable read etcd answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    /// When the read was sent (ms): everything committed before is at or below `revision`.
    sent_at: u64,
    /// When its answer came (ms): the watch gets the lag limit from then to reach `revision`.
    answered_at: u64,
    revision: i64,
}

#[derive(Debug, Default)]
pub struct Heartbeat {
    /// When the read now out was sent.
    read_out_since: Option<u64>,
    /// Answered reads the watch has not reached, oldest (and lowest revision) first.
    pending: Vec<Checkpoint>,
    /// The revision the watch has delivered everything up to.
    watched: i64,
    /// When the current watch stream was opened: a fresh stream gets the lag limit to catch up.
    opened_at: u64,
}

impl Heartbeat {
    /// True when a read should go out now: none is out, or the one out is older than
    /// `lost_after_ms` (Envoy answers every call by its timeout; this is only a safety net).
    pub fn read_due(&self, now: u64, lost_after_ms: u64) -> bool {
        self.read_out_since.is_none_or(|since| now.saturating_sub(since) > lost_after_ms)
    }

    pub fn read_sent(&mut self, now: u64) {
        self.read_out_since = Some(now);
    }

    /// The read failed or timed out (the member could not reach its leader, say): no heartbeat.
    pub fn read_failed(&mut self) {
        self.read_out_since = None;
    }

    /// The read out came back with `revision`. Returns the heartbeat to stamp, when the watch
    /// has already delivered that revision.
    pub fn read_answered(&mut self, revision: i64, now: u64) -> Option<u64> {
        let sent_at = self.read_out_since.take()?;
        if revision <= self.watched {
            return Some(sent_at);
        }
        if self.pending.len() >= MAX_PENDING {
            // The oldest can only stamp an earlier time than the ones after it.
            self.pending.remove(0);
        }
        self.pending.push(Checkpoint { sent_at, answered_at: now, revision });
        None
    }

    /// The watch has delivered everything up to `revision` (events, or a progress answer).
    /// Returns the heartbeat to stamp: the send time of the latest read it has now reached.
    pub fn watch_reached(&mut self, revision: i64) -> Option<u64> {
        self.watched = self.watched.max(revision);
        let reached =
            self.pending.iter().take_while(|checkpoint| checkpoint.revision <= self.watched).count();
        let stamp = reached
            .checked_sub(1)
            .and_then(|last| self.pending.get(last))
            .map(|checkpoint| checkpoint.sent_at);
        self.pending.drain(..reached);
        stamp
    }

    /// A new watch stream is open.
    pub fn watch_opened(&mut self, now: u64) {
        self.opened_at = now;
    }

    /// True when the watch has stayed behind a revision a read returned for longer than
    /// `limit_ms` (counted from the answer, or from the stream's opening if later): its member
    /// is behind the quorum, and the watch should move.
    pub fn watch_lags(&self, now: u64, limit_ms: u64) -> bool {
        self.pending
            .first()
            .is_some_and(|oldest| now.saturating_sub(oldest.answered_at.max(self.opened_at)) > limit_ms)
    }
}
