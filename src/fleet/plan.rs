//! From a finished pass to the etcd transaction that settles it, and from etcd's answer back
//! to the cache (sans-IO: the glue sends what [`plan`] returns and hands [`settle`] the reply).
//!
//! - A pass that wrote: one `Txn` whose compares pin every key the pass read to the revision
//!   it was read at, and whose success branch writes (or deletes) the buckets. Success makes
//!   the decision true for the whole fleet at once; failure means another replica got there
//!   first, and the failure branch reads the current values so the next pass starts fresh.
//!   This is the shared-data compare-and-swap loop, with etcd as the authority.
//! - A pass that only read, where the answer must not rest on this Envoy's cache alone (a
//!   token it has not seen, an endpoint's answer, a cache past its staleness window): the same
//!   compares with nothing to write, so etcd confirms the cache or sends what changed.
//! - Otherwise the decision goes out as it is: a Bearer hit stays synchronous.

use super::cache;
use super::etcd::{
    compare, request_op, response_op, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest, TxnResponse, COMPARE_EQUAL, COMPARE_TARGET_MOD,
};
use super::view::PassRecord;
use crate::host::{SharedStore, StoreError};
use crate::state::buckets::EMPTY_BUCKET;
use crate::state::grants::latest_expiry;
use crate::state::keys;

/// Leases cover ten seconds each: every bucket whose last token expires in those ten seconds
/// shares one lease, so a write needs a `LeaseGrant` at most every ten seconds per worker, and
/// a bucket outlives its last token by 10 to 20 s.
const LEASE_WINDOW_MS: u64 = 10_000;
/// etcd's shortest lease.
const MIN_LEASE_TTL_SECS: i64 = 2;
/// Tokens living longer than this get no lease (their buckets stay until rewritten).
const MAX_LEASE_MS: u64 = 365 * 24 * 3600 * 1000;
/// etcd's default `--max-txn-ops`: a `Txn` with more compares, or more operations in either
/// branch, is refused (`InvalidArgument`), whatever its compares say.
pub const ETCD_MAX_TXN_OPS: usize = 128;

/// What a pass needs before its answer can go out.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Deliver,
    Ask(FleetTxn),
}

/// A transaction for etcd and what to do with its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetTxn {
    pub request: TxnRequest,
    /// Leases the puts use, to grant first (granting an existing one is harmless).
    pub leases: Vec<LeaseGrantRequest>,
    /// Cache keys in the order of the failure branch's ranges, with the cas the pass read.
    compared: Vec<(String, Option<u32>)>,
    /// Cache keys written on success, in the order of the success branch's operations (whose
    /// puts hold the values), each with the cache's cas when the pass read it.
    writes: Vec<(String, Option<u32>)>,
    /// Keys read without a cached entry, with their cas: on success they are known absent.
    unknown: Vec<(String, Option<u32>)>,
}

impl FleetTxn {
    /// What etcd counts against `--max-txn-ops`: the longest of the compares and the branches.
    pub fn operations(&self) -> usize {
        let request = &self.request;
        request.compare.len().max(request.success.len()).max(request.failure.len())
    }
}

/// What etcd's answer means for the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The decision holds: send its answer.
    Holds,
    /// Another replica changed what the pass read; the cache has the new values: run again.
    Stale,
}

/// The step a pass needs. `confirm`: a read-only pass must be confirmed by etcd.
pub fn plan(record: &PassRecord, prefix: &str, confirm: bool, now_ms: u64) -> Step {
    let unknown = record.reads.values().any(Option::is_none);
    if record.writes.is_empty() && !(unknown || (confirm && !record.reads.is_empty())) {
        return Step::Deliver;
    }
    // Every key read, then every key written without being read: each compared once.
    let compared_once: Vec<(String, Option<u32>)> = record
        .reads
        .keys()
        .chain(record.writes.keys().filter(|key| !record.reads.contains_key(*key)))
        .map(|key| (key.clone(), record.read_cas.get(key).copied()))
        .collect();
    let compare = compared_once
        .iter()
        .map(|(key, _)| {
            // A key this Envoy has never asked etcd about is assumed absent (revision 0): true
            // for most buckets of a young fleet, and etcd refuses the transaction otherwise.
            let revision = record.reads.get(key).copied().flatten().unwrap_or(0);
            Compare {
                result: COMPARE_EQUAL,
                target: COMPARE_TARGET_MOD,
                key: cache::etcd_key(prefix, key),
                target_union: Some(compare::TargetUnion::ModRevision(revision)),
            }
        })
        .collect();
    let failure = compared_once
        .iter()
        .map(|(key, _)| RequestOp {
            request: Some(request_op::Request::Range(RangeRequest {
                key: cache::etcd_key(prefix, key),
                ..RangeRequest::default()
            })),
        })
        .collect();
    let mut leases: Vec<LeaseGrantRequest> = Vec::new();
    let mut success = Vec::with_capacity(record.writes.len());
    for (key, value) in &record.writes {
        let etcd_key = cache::etcd_key(prefix, key);
        let op = if value.as_slice() == EMPTY_BUCKET {
            request_op::Request::DeleteRange(DeleteRangeRequest { key: etcd_key })
        } else {
            let lease = lease_for(prefix, key, value, now_ms);
            if let Some(grant) = &lease {
                if !leases.iter().any(|known| known.id == grant.id) {
                    leases.push(grant.clone());
                }
            }
            let lease = lease.map_or(0, |grant| grant.id);
            request_op::Request::Put(PutRequest { key: etcd_key, value: value.clone(), lease })
        };
        success.push(RequestOp { request: Some(op) });
    }
    let read_cas = |key: &String| record.read_cas.get(key).copied();
    let writes = record.writes.keys().map(|key| (key.clone(), read_cas(key))).collect();
    let unknown = record
        .reads
        .iter()
        .filter(|(key, revision)| revision.is_none() && !record.writes.contains_key(*key))
        .map(|(key, _)| (key.clone(), read_cas(key)))
        .collect();
    Step::Ask(FleetTxn {
        request: TxnRequest { compare, success, failure },
        leases,
        compared: compared_once,
        writes,
        unknown,
    })
}

/// The lease a grant bucket's put carries: the one of the window after its last token
/// expires. Its id is derived from the prefix and the window, so every replica names the same
/// lease without asking anyone. Registered applications never expire: no lease.
fn lease_for(prefix: &str, key: &str, value: &[u8], now_ms: u64) -> Option<LeaseGrantRequest> {
    if keys::table_of_bucket(key) != Some(keys::GRANTS) {
        return None;
    }
    let expiry = latest_expiry(value)?;
    if expiry.saturating_sub(now_ms) > MAX_LEASE_MS {
        return None;
    }
    let window_end = (expiry / LEASE_WINDOW_MS).saturating_add(2).saturating_mul(LEASE_WINDOW_MS);
    let digest = crate::state::token::hash_prefix::<8>(
        b"tokengate-lease",
        &[prefix.as_bytes(), &window_end.to_be_bytes()].concat(),
    );
    // Positive and non-zero: etcd reads 0 as "choose an id for me".
    let id = (i64::from_be_bytes(digest) & i64::MAX).max(1);
    let ttl_secs = i64::try_from(window_end.saturating_sub(now_ms) / 1000).unwrap_or(i64::MAX);
    Some(LeaseGrantRequest { ttl: ttl_secs.max(MIN_LEASE_TTL_SECS), id })
}

/// Applies etcd's answer to the cache.
pub fn settle(
    cache: &dyn SharedStore,
    txn: &FleetTxn,
    response: &TxnResponse,
) -> Result<Settled, StoreError> {
    let revision = response.header.as_ref().map_or(0, |header| header.revision);
    if response.succeeded {
        for ((key, read_cas), op) in txn.writes.iter().zip(&txn.request.success) {
            let entry = match &op.request {
                Some(request_op::Request::Put(put)) => {
                    cache::entry_of(Some((&put.value, revision)), revision)
                }
                _ => cache::entry_of(None, revision),
            };
            cache::store_over_read(cache, key, entry, *read_cas)?;
        }
        for (key, read_cas) in &txn.unknown {
            cache::store_over_read(cache, key, cache::entry_of(None, revision), *read_cas)?;
        }
        return Ok(Settled::Holds);
    }
    for ((key, read_cas), op) in txn.compared.iter().zip(&response.responses) {
        let Some(response_op::Response::Range(range)) = &op.response else { continue };
        let current = range.kvs.first().map(|kv| (kv.value.as_slice(), kv.mod_revision));
        cache::store_over_read(cache, key, cache::entry_of(current, revision), *read_cas)?;
    }
    Ok(Settled::Stale)
}
