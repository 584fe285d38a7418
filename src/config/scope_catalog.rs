//! Every scope the configuration names, by its stored id, and which of them some application
//! may be granted.

use foldhash::HashMap;

use super::error::{problem, ConfigError};
use crate::oauth::scope::{is_scope_token, scope_id, ScopeId, ScopeSet};

/// The store keeps scope lists in one count byte (0xFF is reserved).
const MAX_SCOPES: usize = 254;

#[derive(Default)]
pub(super) struct ScopeCatalog {
    names: HashMap<ScopeId, String>,
    /// Scopes an application (configured or registered) may be granted.
    grantable: ScopeSet,
}

impl ScopeCatalog {
    /// Checks a list of scope names at `at` and records their ids. Two names whose ids
    /// collide are refused: the store keeps ids, and it could not tell them apart.
    pub(super) fn register(&mut self, at: &str, names: &[String]) -> Result<ScopeSet, ConfigError> {
        if names.len() > MAX_SCOPES {
            return Err(problem(at, format!("at most {MAX_SCOPES} scopes")));
        }
        for (i, name) in names.iter().enumerate() {
            if !is_scope_token(name) {
                return Err(problem(format!("{at}[{i}]"), "not a valid scope (RFC 6749 §3.3)"));
            }
            let id = scope_id(name);
            match self.names.get(&id) {
                Some(existing) if existing != name => {
                    return Err(problem(
                        format!("{at}[{i}]"),
                        "scope name collides with another scope's id; rename it",
                    ));
                }
                _ => {
                    self.names.insert(id, name.clone());
                }
            }
        }
        Ok(ScopeSet::from_names(names.iter().cloned()))
    }

    /// [`Self::register`] for scopes some application may be granted.
    pub(super) fn register_grantable(&mut self, at: &str, names: &[String]) -> Result<ScopeSet, ConfigError> {
        let scopes = self.register(at, names)?;
        self.grantable = ScopeSet::from_names(self.grantable.iter().chain(scopes.iter()).map(str::to_owned));
        Ok(scopes)
    }

    pub(super) fn is_grantable(&self, name: &str) -> bool {
        self.grantable.contains(name)
    }

    /// Names by id (for describing stored scopes) and ids by name (for issuing).
    pub(super) fn into_maps(self) -> (HashMap<ScopeId, String>, HashMap<String, ScopeId>) {
        let ids = self.names.iter().map(|(id, name)| (name.clone(), *id)).collect();
        (self.names, ids)
    }
}
