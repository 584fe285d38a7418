//! The shared-data tables a configuration uses and their sizes: what `on_configure` creates,
//! and, in fleet mode, the keys the etcd watcher watches. Built from the config once
//! (`Config::store_layout`), by the filter's root context.

use super::authorization::code_bucket_count_for;
use super::buckets::{BucketTable, InitError};
use super::grants::bucket_count_for;
use super::keys::{self, Table};
use super::lockout::{FailureLimiter, LockoutPolicy};
use super::login_handle::KEY_BUCKETS;
use super::registry::client_bucket_count_for;
use crate::host::{Randomness, SharedStore};

/// Each table's bucket count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLayout {
    grants: u32,
    /// With dynamic client registration.
    clients: Option<u32>,
    /// With the authorization code flow: its codes' table (its login key has one bucket).
    codes: Option<u32>,
    lockout: LockoutPolicy,
}

impl StoreLayout {
    /// Room for `store_capacity` grants, `registration` registered applications (with dynamic
    /// client registration) and `code_flow` codes and used login handles (with the
    /// authorization code flow), and the failure limiter's tables for `lockout`.
    pub fn new(
        store_capacity: u32,
        registration: Option<u32>,
        code_flow: Option<u32>,
        lockout: LockoutPolicy,
    ) -> StoreLayout {
        StoreLayout {
            grants: bucket_count_for(store_capacity),
            clients: registration.map(client_bucket_count_for),
            codes: code_flow.map(code_bucket_count_for),
            lockout,
        }
    }

    /// Creates the buckets that do not exist yet; returns how many it created. Only for
    /// `on_configure` (see [`super::buckets`]). [`InitError::WouldDrop`]: a lower
    /// `registration.capacity` would delete registered applications, so the configuration must
    /// be refused.
    pub fn initialize(&self, shared: &dyn SharedStore, random: &dyn Randomness) -> Result<u32, InitError> {
        let clients = match self.clients {
            Some(count) => BucketTable::new(shared, keys::CLIENTS, count).initialize_keeping_records()?,
            None => 0,
        };
        let code_flow = match self.codes {
            Some(count) => {
                BucketTable::new(shared, keys::AUTHORIZATION_CODES, count).initialize()?
                    + BucketTable::new(shared, keys::LOGIN_KEY, KEY_BUCKETS).initialize()?
            }
            None => 0,
        };
        let grants = BucketTable::new(shared, keys::GRANTS, self.grants).initialize()?;
        Ok(grants + clients + code_flow + FailureLimiter::new(shared, random, self.lockout).initialize()?)
    }

    /// The keys of the tables a fleet keeps in etcd (see [`keys::Home`]): the grant store's
    /// buckets, the registry's and the code flow's (its codes and its login handles' key), and
    /// the credential-change record.
    pub fn fleet_keys(&self) -> Vec<String> {
        let tables: [(Table, Option<u32>); 5] = [
            (keys::GRANTS, Some(self.grants)),
            (keys::CLIENTS, self.clients),
            (keys::AUTHORIZATION_CODES, self.codes),
            (keys::LOGIN_KEY, self.codes.map(|_| KEY_BUCKETS)),
            (keys::CREDENTIAL_CHANGES, Some(1)),
        ];
        tables
            .into_iter()
            .flat_map(|(table, count)| (0..count.unwrap_or(0)).map(move |index| table.bucket_key(index)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{demo_with_lifecycle, DEMO};
    use crate::config::Config;
    use crate::host::memory::{MemoryStore, NoMetrics};
    use crate::host::SystemRandomness;
    use crate::state::authorization::AuthorizationTable;
    use crate::state::grants::TokenStore;
    use crate::state::login_handle::{HandleKeys, KeyMemory};
    use crate::state::registry::ClientRegistry;

    /// The buckets of the tables the gateway builds for `config` (`Gateway::new`), in order.
    fn gateway_table_keys(config: &Config) -> Vec<String> {
        let shared = MemoryStore::default();
        let memory = KeyMemory::new();
        let random = &SystemRandomness;
        let store = TokenStore::new(&shared, random, &NoMetrics, &NoMetrics, config.store_capacity);
        let registry = config
            .registration
            .as_ref()
            .map(|r| ClientRegistry::new(&shared, random, &NoMetrics, r.capacity));
        let codes =
            config.authorization.as_ref().map(|flow| AuthorizationTable::new(&shared, random, flow.capacity));
        let login_keys = config.authorization.as_ref().map(|_| HandleKeys::new(&shared, random, &memory));
        store
            .bucket_keys()
            .chain(registry.iter().flat_map(|registry| registry.bucket_keys()))
            .chain(codes.iter().flat_map(|codes| codes.bucket_keys()))
            .chain(login_keys.iter().flat_map(|keys| keys.bucket_keys()))
            .chain([keys::CREDENTIAL_CHANGES_FLEET_KEY.to_owned()])
            .collect()
    }

    /// The layout and the tables the gateway works with size each table alike: the watcher
    /// watches every bucket a request may write, and none more.
    #[test]
    fn the_fleet_keys_are_the_buckets_of_the_tables_the_gateway_uses() {
        let mut json: serde_json::Value = serde_json::from_str(&demo_with_lifecycle()).unwrap();
        json["applications"].as_array_mut().unwrap().push(serde_json::json!({
            "consumer_key": "spa", "public": true, "grant_types": ["authorization_code"],
            "redirect_uris": ["http://127.0.0.1:8080/callback"], "scopes": ["orders:read"]
        }));
        let lifecycle = Config::from_json(json.to_string().as_bytes()).unwrap();
        assert!(lifecycle.authorization.is_some() && lifecycle.registration.is_some());
        for config in [lifecycle, Config::from_json(DEMO.as_bytes()).unwrap()] {
            assert_eq!(config.store_layout().fleet_keys(), gateway_table_keys(&config));
        }
    }
}
