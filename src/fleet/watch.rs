//! The watcher's side: one etcd Watch per Envoy (a singleton service in the same `vm_id`)
//! writes every change under the deployment's prefix into the cache, so all workers see a
//! revocation, a rotation or a re-keyed application within one event's delay.
//!
//! An event that may end or alter a token a worker remembers moves this Envoy's token epoch,
//! after the cache holds the new value (see [`crate::state::remembered`]): a worker's memory of
//! a token another replica revoked is then trusted no more, and its next request reads the
//! cache. [`moves_token_epoch`] says which: a grant bucket's change unless it only issues
//! tokens ([`only_adds_tokens`]), and every change of the other fleet tables (the registry
//! holds the tokens' applications, the credential-change record ends them). A steady stream
//! of issued tokens therefore leaves every worker's memory in place. So does an event whose
//! word the cache already holds: this replica's own write coming back (a pass caches etcd's
//! answer with its revision, [`super::plan::settle`]), or a word a failure branch brought
//! first; whoever cached it moved the epoch if it had to (a pass that ends tokens, a failure
//! branch always). Forgetting the cache moves it too: a watch that starts again from where
//! etcd stands never delivers what changed in between.

use super::cache;
use super::etcd::{
    watch_request, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse, EVENT_DELETE,
};
use crate::host::{Coordination, SharedStore, StoreError};
use crate::state::grants::only_adds_tokens;
use crate::state::keys;

/// What the watcher learnt from one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Events (possibly none: a progress answer) up to this revision were applied.
    UpTo(i64),
    /// The watch was created: its header's revision is etcd's, not the watch's, whose events
    /// from the start revision on are still to come.
    Opened,
    /// etcd compacted the revisions the watch needed: the cache was forgotten and the watch must
    /// start again from the current revision.
    Compacted,
    /// etcd refused to create the watch (`canceled` with no compaction): with access control on,
    /// its token ended or its user may not read the prefix (etcd checks a watch's permission
    /// when it is created). Nothing was applied; the watch must be opened again.
    Refused,
}

/// The request that opens the watch on every key under `prefix`, from `start_revision`
/// (0: from now).
pub fn create_request(prefix: &str, start_revision: i64) -> WatchRequest {
    WatchRequest {
        request: Some(watch_request::Request::Create(WatchCreateRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: super::etcd::prefix_range_end(prefix.as_bytes()),
            start_revision,
            progress_notify: true,
        })),
    }
}

/// Asks etcd to say where the watch stands. The member answers from its own store, without
/// the quorum: the answer tells how far the watch got, not that the member is current.
pub fn progress_request() -> WatchRequest {
    WatchRequest { request: Some(watch_request::Request::Progress(WatchProgressRequest {})) }
}

/// Applies one watch message to the cache, then moves `epochs`' token epoch if it changed a
/// fleet key (see the module's doc). `forget_keys`: every fleet key of this Envoy,
/// forgotten when etcd compacted past the watch.
pub fn apply(
    cache: &dyn SharedStore,
    epochs: &dyn Coordination,
    prefix: &str,
    response: &WatchResponse,
    forget_keys: impl Iterator<Item = String>,
) -> Result<Heard, StoreError> {
    if response.canceled && response.compact_revision > 0 {
        cache::forget(cache, forget_keys)?;
        epochs.tokens_changed();
        return Ok(Heard::Compacted);
    }
    if response.canceled {
        return Ok(Heard::Refused);
    }
    if response.created && response.events.is_empty() {
        return Ok(Heard::Opened);
    }
    let mut changed = false;
    for event in &response.events {
        let Some(kv) = &event.kv else { continue };
        let Some(key) = cache::cache_key(prefix, &kv.key) else { continue };
        let current = (event.kind != EVENT_DELETE).then_some((kv.value.as_slice(), kv.mod_revision));
        let entry = cache::entry_of(current, kv.mod_revision);
        // Not written: the cache holds this word already, and whoever cached it moved the
        // epoch if it had to (see the module's doc).
        let Some(replaced) = cache::replace(cache, &key, entry)? else { continue };
        let before = cache::decode(&replaced).filter(cache::Entry::is_known).map(|known| known.value);
        changed |= moves_token_epoch(&key, before, entry.value);
    }
    if changed {
        epochs.tokens_changed();
    }
    // A message with events vouches for those events; a progress answer for everything up to
    // its header's revision.
    let last_event =
        response.events.iter().filter_map(|event| event.kv.as_ref()).map(|kv| kv.mod_revision).max();
    Ok(Heard::UpTo(
        last_event.unwrap_or_else(|| response.header.as_ref().map_or(0, |header| header.revision)),
    ))
}

/// True when the change of the cache key `key` from `before` to `after` may end or alter a
/// token a worker remembers (see the module's doc). `before` is `None` when the cache held no
/// word of etcd's for the key (never asked, or forgotten): no worker can remember a token
/// from it, since forgetting moved the epoch and a pass over an unknown entry asks etcd.
pub fn moves_token_epoch(key: &str, before: Option<&[u8]>, after: &[u8]) -> bool {
    if keys::table_of_bucket(key) != Some(keys::GRANTS) {
        return true;
    }
    before.is_some_and(|before| !only_adds_tokens(before, after))
}

/// Where a watch with no revision to resume from starts (at start-up, after a compaction):
/// every entry of `keys` older than `revision` is forgotten ([`cache::forget_below`]), and so
/// is every worker's memory of tokens, since the watch never delivers what changed before.
pub fn start_after(
    cache: &dyn SharedStore,
    epochs: &dyn Coordination,
    keys: impl Iterator<Item = String>,
    revision: i64,
) -> Result<(), StoreError> {
    cache::forget_below(cache, keys, revision)?;
    epochs.tokens_changed();
    Ok(())
}
