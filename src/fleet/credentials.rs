//! Fleet mode's credential-change record (see [`crate::state::credential_changes`]): kept in
//! etcd beside the grants it judges, so every replica and every restart sees one history, and
//! a config rolled back to an old secret cannot revive the tokens its change ended.
//!
//! A config load is recorded once per VM, by the first pass of a request after it
//! (`on_configure` cannot wait for etcd): that pass reads the record through its
//! [`super::view::FleetView`], writes this config's changes into it, and its transaction
//! commits them with its own answer. Until etcd has confirmed the record, every pass reads it
//! again that way, so a replica that cannot reach etcd answers 503 rather than judge a token
//! by a history it does not have (a pass that reads nothing else of etcd's, a public
//! resource's, leaves the record out and answers as before). Afterwards each VM's timer
//! re-reads the record from the cache, which the watch keeps current.

use std::cell::Cell;

use super::plan::{plan, FleetTxn, Step, ETCD_MAX_TXN_OPS};
use super::view::PassRecord;
use crate::config::Config;
use crate::host::{SharedStore, StoreError};
use crate::state::credential_changes::{CredentialChanges, FLEET_KEY};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// This config's changes are not in etcd's record yet.
    ToRecord,
    /// They are, but this Envoy's cache lost the record (a restarted watch forgot it): the next
    /// pass reads it from etcd.
    ToRead,
    /// etcd confirmed the record this VM holds; the timer keeps it current.
    Known,
}

/// Where one VM stands with the fleet's record.
#[derive(Debug)]
pub struct CredentialRecord {
    /// When this VM loaded its config: the time its changes are recorded at.
    configured_at: u64,
    standing: Cell<Standing>,
}

impl CredentialRecord {
    pub fn new(configured_at: u64) -> Self {
        CredentialRecord { configured_at, standing: Cell::new(Standing::ToRecord) }
    }

    /// The changes a pass over `view` judges tokens by: `None` when this VM's own copy is
    /// confirmed, else the record read (and, the first time, written) through the view, which
    /// puts it in the pass's transaction.
    pub fn for_pass(
        &self,
        view: &dyn SharedStore,
        config: &Config,
    ) -> Result<Option<CredentialChanges>, StoreError> {
        match self.standing.get() {
            Standing::Known => Ok(None),
            Standing::ToRead => CredentialChanges::read_fleet(view).map(Some),
            Standing::ToRecord => {
                CredentialChanges::record_fleet(view, &config.credentials(), self.configured_at).map(Some)
            }
        }
    }

    /// After a pass that read the record: a pass that read nothing else of the fleet's judged
    /// no token or client by it (a public resource, say), so the record leaves the pass (which
    /// then needs etcd no more than before) and waits for one that does. Returns the record
    /// to keep once the pass holds.
    pub fn keep_if_judged(
        &self,
        pass: &mut PassRecord,
        read: Option<CredentialChanges>,
    ) -> Option<CredentialChanges> {
        read.as_ref()?;
        let judged = pass.reads.keys().chain(pass.writes.keys()).any(|key| key != FLEET_KEY);
        if judged {
            return read;
        }
        pass.reads.remove(FLEET_KEY);
        pass.writes.remove(FLEET_KEY);
        None
    }

    /// True once etcd has confirmed the record this VM judges tokens by. Until then a pass
    /// must read the record, and carries it to etcd only when it reads a grant or a client: a
    /// Bearer check answered from a worker's memory reads neither, so it waits for this.
    pub fn is_known(&self) -> bool {
        self.standing.get() == Standing::Known
    }

    /// A pass that read the record through its view holds (etcd agreed, or the cache already
    /// knew the record): this VM's copy is now etcd's.
    pub fn confirmed(&self) {
        self.standing.set(Standing::Known);
    }

    /// The cache no longer knows the record: read it from etcd with the next pass.
    pub fn forgotten(&self) {
        if self.standing.get() == Standing::Known {
            self.standing.set(Standing::ToRead);
        }
    }
}

/// The transaction of the credential-change record alone, when `pass` carries the record and
/// its transaction `txn` is longer than etcd takes with its default `--max-txn-ops` (etcd
/// refuses such a `Txn` whatever it compares). A VM carries the record in its passes until one
/// holds, and a registration by an admin with a quota compares every registry bucket (128 at
/// the default capacity): with the record in it, that pass could never hold. The record goes
/// first (once it holds, the VM has it and the pass runs again without it): one more pass, once
/// per VM.
pub fn record_first(pass: &PassRecord, txn: &FleetTxn, prefix: &str, now_ms: u64) -> Option<FleetTxn> {
    if txn.operations() <= ETCD_MAX_TXN_OPS {
        return None;
    }
    let mut alone = PassRecord::default();
    if let Some(&revision) = pass.reads.get(FLEET_KEY) {
        alone.reads.insert(FLEET_KEY.to_owned(), revision);
    }
    if let Some(value) = pass.writes.get(FLEET_KEY) {
        alone.writes.insert(FLEET_KEY.to_owned(), value.clone());
    }
    match plan(&alone, prefix, true, now_ms) {
        Step::Ask(record_txn) => Some(record_txn),
        Step::Deliver => None,
    }
}

/// The record as this Envoy's cache holds it, when the cache knows it.
pub fn cached(cache: &dyn SharedStore) -> Result<Option<CredentialChanges>, StoreError> {
    let Some((bytes, _)) = cache.get(FLEET_KEY)? else { return Ok(None) };
    Ok(super::cache::decode(&bytes)
        .filter(super::cache::Entry::is_known)
        .map(|entry| CredentialChanges::from_fleet_bytes(entry.value)))
}
