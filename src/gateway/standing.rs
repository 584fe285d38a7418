//! Whether a grant's owner still stands: its application and user as the current config (and
//! the credential-change record) has them, and which stored scopes they may still hold.

use std::borrow::Cow;

use super::Gateway;
use crate::config::{Application, User};
use crate::host::StoreError;
use crate::oauth::scope::ScopeId;
use crate::state::credential_changes::CredentialKind;
use crate::state::grants::{GrantOwner, GrantRecord};

impl Gateway<'_> {
    /// The grant owner's application and user as the current config has them, for a token
    /// issued at `issued_at`; `None` when either is gone or its credentials changed since.
    pub(super) fn standing(
        &self,
        owner: &GrantOwner,
        issued_at: u64,
    ) -> Result<Option<Standing<'_>>, StoreError> {
        let Some(app) = self.application(&owner.client_id)? else { return Ok(None) };
        Ok(self.standing_of(app, owner, issued_at))
    }

    /// [`Self::standing`] with the owner's application already in hand (the one named by
    /// `owner.client_id`).
    pub(super) fn standing_of<'s>(
        &'s self,
        app: Cow<'s, Application>,
        owner: &GrantOwner,
        issued_at: u64,
    ) -> Option<Standing<'s>> {
        let changes = self.credential_changes;
        if changes.ended(CredentialKind::Application, &owner.client_id, issued_at)
            || app.fingerprint != owner.client_fingerprint
            || app.key_type != owner.key_type
        {
            return None;
        }
        let user = match &owner.user {
            None => None,
            Some((username, fingerprint)) => Some(
                self.configured_user(username)
                    .filter(|user| user.fingerprint == *fingerprint)
                    .filter(|_| !changes.ended(CredentialKind::User, username, issued_at))?,
            ),
        };
        Some(Standing { app, user })
    }

    /// Whether the sweep keeps a grant: false only when its owner can never stand again,
    /// whichever config asks. During a config update the old config's VMs still sweep, so
    /// "not in my config" is no proof: an application is dead once the shared credential
    /// record says it (or the user) changed or disappeared after the grant's newest token; a
    /// registered client (a name no config ever listed) once the registry has it no more or
    /// under another secret. `registered` caches registry answers for one sweep step; a read
    /// that fails keeps the grant.
    pub(super) fn may_stand(
        &self,
        record: &GrantRecord,
        registered: &mut foldhash::HashMap<String, Option<u32>>,
    ) -> bool {
        let (owner, newest) = (&record.owner, record.newest_issue());
        let changes = self.credential_changes;
        if changes.ended(CredentialKind::Application, &owner.client_id, newest)
            || owner.user.as_ref().is_some_and(|(user, _)| changes.ended(CredentialKind::User, user, newest))
        {
            return false;
        }
        if self.registry.is_none()
            || self.config.applications.contains_key(&owner.client_id)
            || changes.ever_configured(&owner.client_id)
        {
            return true;
        }
        let fingerprint = match registered.get(&owner.client_id) {
            Some(known) => *known,
            None => match self.application(&owner.client_id) {
                Ok(app) => {
                    let fingerprint = app.map(|app| app.fingerprint);
                    registered.insert(owner.client_id.clone(), fingerprint);
                    fingerprint
                }
                Err(_) => return true,
            },
        };
        fingerprint == Some(owner.client_fingerprint)
    }

    /// The names of stored scope ids that the owner may still hold, in name order.
    pub(super) fn held_scopes<'s>(&'s self, ids: &[ScopeId], standing: &Standing) -> Vec<&'s str> {
        let held = ids
            .iter()
            .filter_map(|id| self.config.scope_names.get(id))
            .map(String::as_str)
            .filter(|name| standing.allows(name));
        // Sorted by insertion: a grant's few scopes need no sort code of their own.
        let mut names: Vec<&str> = Vec::new();
        for name in held {
            let at = names.binary_search(&name).unwrap_or_else(|at| at);
            names.insert(at, name);
        }
        names
    }
}

/// A grant owner as the current config knows them (see [`Gateway::standing`]).
pub(super) struct Standing<'a> {
    pub(super) app: Cow<'a, Application>,
    pub(super) user: Option<&'a User>,
}

impl Standing<'_> {
    /// True when the application, and the user if any, may still hold `scope`.
    fn allows(&self, scope: &str) -> bool {
        self.app.scopes.contains(scope) && self.user.is_none_or(|user| user.scopes.contains(scope))
    }
}
