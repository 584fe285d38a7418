//! Every shared-data key the filter uses, declared once: the bucket tables (keys
//! `tokengate/<table>/<n>`, see [`super::buckets`]) with where fleet mode keeps each one, and
//! the few single keys. In fleet mode the tables kept in etcd are this Envoy's cache of etcd,
//! under the deployment's prefix instead of [`ROOT`] (see `crate::fleet::cache`).

/// What every key starts with.
pub const ROOT: &str = "tokengate/";

/// Where fleet mode keeps a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// In each Envoy's own shared data, in fleet mode too.
    Envoy,
    /// In etcd, shared by every replica (each Envoy's shared data caches it).
    Etcd,
}

/// A table of buckets: `tokengate/<name>/<index>`, with `/count` and `/sweep` beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub home: Home,
}

/// The token store's grants: a token issued on one replica works on every one.
pub const GRANTS: Table = Table { name: "grants", home: Home::Etcd };
/// Applications added by dynamic client registration: they reach every replica.
pub const CLIENTS: Table = Table { name: "clients", home: Home::Etcd };
/// The key login handles are sealed under: a login page served by one replica opens on another.
pub const LOGIN_KEY: Table = Table { name: "authz-key", home: Home::Etcd };
/// Authorization codes and used login handles: a code is redeemed, and its replay caught, on any
/// replica.
pub const AUTHORIZATION_CODES: Table = Table { name: "authz-code", home: Home::Etcd };
/// Fleet mode's credential-change record, one bucket: no restart forgets what a change ended.
pub const CREDENTIAL_CHANGES: Table = Table { name: "credential-changes", home: Home::Etcd };
/// Failed-secret counters for names the config does not know (per Envoy, like a rate limit).
pub const LIMITS_UNKNOWN: Table = Table { name: "limits", home: Home::Envoy };
/// Failed-secret counters for consumer keys and usernames the config knows.
pub const LIMITS_KNOWN: Table = Table { name: "limits-known", home: Home::Envoy };
/// Failed passwords at the login form, per (username, client address).
pub const LIMITS_SIGN_IN: Table = Table { name: "limits-sign-in", home: Home::Envoy };

/// Every table.
pub const TABLES: [Table; 8] = [
    GRANTS,
    CLIENTS,
    LOGIN_KEY,
    AUTHORIZATION_CODES,
    CREDENTIAL_CHANGES,
    LIMITS_UNKNOWN,
    LIMITS_KNOWN,
    LIMITS_SIGN_IN,
];

/// The failure limiter's hash key, made once and never changed (per Envoy).
pub const LIMITER_KEY: &str = "tokengate/limits/key";
/// The credential-change record in local mode (per Envoy): one key, not a table.
pub const CREDENTIAL_CHANGES_KEY: &str = "tokengate/credential-changes";
/// The credential-change record in fleet mode: the one bucket of [`CREDENTIAL_CHANGES`].
pub const CREDENTIAL_CHANGES_FLEET_KEY: &str = "tokengate/credential-changes/0";
/// Fleet mode with etcd's user/password authentication: the token every etcd call carries,
/// one per Envoy (see `crate::fleet::auth`). Never in etcd, never logged.
pub const ETCD_TOKEN_KEY: &str = "tokengate/etcd-token";

impl Table {
    /// Bucket `index`'s key. Built on every Bearer check; `format!` costs several times this.
    pub fn bucket_key(&self, index: u32) -> String {
        [ROOT, self.name, "/", itoa::Buffer::new().format(index)].concat()
    }

    /// The key of the table's bucket count.
    pub fn count_key(&self) -> String {
        [ROOT, self.name, "/count"].concat()
    }

    /// The key of the table's sweep cursor.
    pub fn sweep_key(&self) -> String {
        [ROOT, self.name, "/sweep"].concat()
    }
}

/// The table `key` is a bucket of (not its count or sweep key), if any.
pub fn table_of_bucket(key: &str) -> Option<Table> {
    let (name, index) = key.strip_prefix(ROOT)?.split_once('/')?;
    let is_index = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
    TABLES.into_iter().find(|table| is_index && table.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_key_names_its_table_and_no_other_key_does() {
        for table in TABLES {
            assert_eq!(table_of_bucket(&table.bucket_key(17)), Some(table), "{table:?}");
            assert_eq!(table_of_bucket(&table.count_key()), None, "{table:?}");
            assert_eq!(table_of_bucket(&table.sweep_key()), None, "{table:?}");
        }
        assert_eq!(table_of_bucket(CREDENTIAL_CHANGES_FLEET_KEY), Some(CREDENTIAL_CHANGES));
        assert_eq!(table_of_bucket(LIMITER_KEY), None);
        assert_eq!(table_of_bucket(CREDENTIAL_CHANGES_KEY), None);
        assert_eq!(table_of_bucket(ETCD_TOKEN_KEY), None);
        assert_eq!(table_of_bucket("tokengate/grants/"), None);
        assert_eq!(table_of_bucket("tokengate/unknown/3"), None);
    }

    #[test]
    fn table_names_are_unique() {
        let mut names = TABLES.map(|table| table.name);
        names.sort_unstable();
        assert!(names.windows(2).all(|pair| pair.first() != pair.get(1)), "{names:?}");
    }
}
