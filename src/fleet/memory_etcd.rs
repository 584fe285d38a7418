//! An in-memory etcd for native tests and benches: revisions, compare-and-swap transactions,
//! leases that delete their keys when they expire, watch events and compaction, as etcd v3
//! implements them for the calls fleet mode makes.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::etcd::{
    compare, request_op, response_op, Event, KeyValue, LeaseGrantRequest, RangeResponse, ResponseHeader,
    ResponseOp, TxnRequest, TxnResponse, WatchResponse, COMPARE_EQUAL, COMPARE_TARGET_MOD, EVENT_DELETE,
    EVENT_PUT,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseExists;

#[derive(Default)]
pub struct MemoryEtcd {
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    revision: i64,
    keys: BTreeMap<Vec<u8>, KeyValue>,
    /// Lease id → when it expires (ms).
    leases: BTreeMap<i64, u64>,
    /// Every event, oldest first, from `compacted + 1` on.
    events: Vec<Event>,
    compacted: i64,
}

impl Inner {
    fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader { revision: self.revision })
    }

    fn range(&self, key: &[u8]) -> RangeResponse {
        RangeResponse {
            header: self.header(),
            kvs: self.keys.get(key).cloned().into_iter().collect(),
            more: false,
        }
    }
}

impl MemoryEtcd {
    pub fn revision(&self) -> i64 {
        self.inner.borrow().revision
    }

    pub fn key_count(&self) -> usize {
        self.inner.borrow().keys.len()
    }

    /// How many keys start with `prefix`.
    pub fn keys_under(&self, prefix: &[u8]) -> usize {
        self.inner.borrow().keys.keys().filter(|key| key.starts_with(prefix)).count()
    }

    /// Total bytes of keys and values held.
    pub fn stored_bytes(&self) -> usize {
        self.inner.borrow().keys.values().map(|kv| kv.key.len() + kv.value.len()).sum()
    }

    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.inner.borrow().keys.get(key).cloned()
    }

    pub fn lease_grant(&self, request: &LeaseGrantRequest, now_ms: u64) -> Result<(), LeaseExists> {
        let mut inner = self.inner.borrow_mut();
        if inner.leases.contains_key(&request.id) {
            return Err(LeaseExists);
        }
        let ttl_ms = u64::try_from(request.ttl).unwrap_or(0).saturating_mul(1000);
        inner.leases.insert(request.id, now_ms.saturating_add(ttl_ms));
        Ok(())
    }

    /// Ends the leases due at `now_ms`, deleting their keys (one revision for all, as etcd's
    /// lessor revokes a lease in one transaction).
    pub fn expire_leases(&self, now_ms: u64) {
        let mut inner = self.inner.borrow_mut();
        let due: Vec<i64> = inner.leases.iter().filter(|(_, at)| **at <= now_ms).map(|(id, _)| *id).collect();
        for id in due {
            inner.leases.remove(&id);
            let doomed: Vec<Vec<u8>> =
                inner.keys.values().filter(|kv| kv.lease == id).map(|kv| kv.key.clone()).collect();
            if doomed.is_empty() {
                continue;
            }
            inner.revision += 1;
            let revision = inner.revision;
            for key in doomed {
                inner.keys.remove(&key);
                let kv = KeyValue { key, mod_revision: revision, ..KeyValue::default() };
                inner.events.push(Event { kind: EVENT_DELETE, kv: Some(kv) });
            }
        }
    }

    pub fn txn(&self, request: &TxnRequest) -> TxnResponse {
        let mut inner = self.inner.borrow_mut();
        let succeeded = request.compare.iter().all(|compare| {
            let current = inner.keys.get(&compare.key).map_or(0, |kv| kv.mod_revision);
            let Some(compare::TargetUnion::ModRevision(expected)) = compare.target_union else {
                return false;
            };
            compare.result == COMPARE_EQUAL && compare.target == COMPARE_TARGET_MOD && current == expected
        });
        let ops = if succeeded { &request.success } else { &request.failure };
        let writes = ops.iter().any(|op| !matches!(op.request, Some(request_op::Request::Range(_)) | None));
        if writes {
            inner.revision += 1;
        }
        let revision = inner.revision;
        let mut responses = Vec::new();
        for op in ops {
            match &op.request {
                Some(request_op::Request::Range(range)) => responses.push(ResponseOp {
                    response: Some(response_op::Response::Range(inner.range(&range.key))),
                }),
                Some(request_op::Request::Put(put)) => {
                    let kv = KeyValue {
                        key: put.key.clone(),
                        mod_revision: revision,
                        value: put.value.clone(),
                        lease: put.lease,
                    };
                    inner.keys.insert(put.key.clone(), kv.clone());
                    inner.events.push(Event { kind: EVENT_PUT, kv: Some(kv) });
                    responses.push(ResponseOp { response: None });
                }
                Some(request_op::Request::DeleteRange(delete)) => {
                    if inner.keys.remove(&delete.key).is_some() {
                        let kv = KeyValue {
                            key: delete.key.clone(),
                            mod_revision: revision,
                            ..KeyValue::default()
                        };
                        inner.events.push(Event { kind: EVENT_DELETE, kv: Some(kv) });
                    }
                    responses.push(ResponseOp { response: None });
                }
                None => responses.push(ResponseOp { response: None }),
            }
        }
        TxnResponse { header: inner.header(), succeeded, responses }
    }

    /// What a watch from `start_revision` delivers now: the events since, or `canceled` with
    /// the compaction revision when etcd no longer has them.
    pub fn watch_from(&self, start_revision: i64) -> WatchResponse {
        let inner = self.inner.borrow();
        if start_revision > 0 && start_revision <= inner.compacted {
            return WatchResponse {
                header: inner.header(),
                canceled: true,
                compact_revision: inner.compacted,
                ..WatchResponse::default()
            };
        }
        let events = inner
            .events
            .iter()
            .filter(|event| event.kv.as_ref().is_some_and(|kv| kv.mod_revision >= start_revision))
            .cloned()
            .collect();
        WatchResponse { header: inner.header(), events, ..WatchResponse::default() }
    }

    /// Drops the history up to the current revision, as `etcdctl compact` does.
    pub fn compact(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.compacted = inner.revision;
        inner.events.clear();
    }
}
