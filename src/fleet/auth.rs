//! etcd's user/password authentication ([etcd's authentication guide](https://etcd.io/docs/v3.4/op-guide/authentication/)):
//! `etcdserverpb.Auth/Authenticate` answers a token, and every other call carries it as the
//! gRPC metadata [`TOKEN_METADATA`]. Sans-IO: the glue sends the calls and hands their answers
//! in here.
//!
//! - **One token per Envoy.** The watcher (the singleton, which has the timer) authenticates at
//!   start and again every renewal period ([`Renewal`]), and [`publish`]es the token in shared
//!   data ([`ETCD_TOKEN_KEY`]); every worker [`read`]s it there for its calls. `Authenticate`
//!   goes through raft and bcrypt in etcd 3.4, so one per request is out of the question.
//! - **Renewal.** etcd's token ends after its TTL: a JWT at its `exp` however much it is used, a
//!   simple token after `--auth-token-ttl` unused, counted by each member on its own. The
//!   answer does not say the TTL, so the period is configured, well inside it.
//! - **A token that ended anyway** ([`token_ended`]: gRPC status 16, or 3 "revision of auth
//!   store is old" once etcd's users or roles changed): the worker [`recover`]s once per pass,
//!   with a token another context published meanwhile or one it asks for itself, which
//!   [`adopt`] publishes unless another new token won first.

use super::etcd::AuthenticateRequest;
use crate::config::EtcdLogin;
use crate::host::{SharedStore, StoreError};

pub use crate::state::keys::ETCD_TOKEN_KEY;

/// The gRPC metadata (request header) etcd reads the token from.
pub const TOKEN_METADATA: &str = "token";
/// etcd's `ErrGRPCInvalidAuthToken` (`api/v3rpc/rpctypes/error.go`): UNAUTHENTICATED.
const GRPC_UNAUTHENTICATED: u32 = 16;
/// etcd's `ErrGRPCAuthOldRevision`: INVALID_ARGUMENT, told apart from other invalid arguments
/// by its message.
const GRPC_INVALID_ARGUMENT: u32 = 3;
const OLD_AUTH_REVISION: &str = "revision of auth store is old";
/// The first wait before asking again after `Authenticate` failed; it doubles up to the limit.
const FIRST_BACKOFF_MS: u64 = 1_000;
const MAX_BACKOFF_MS: u64 = 30_000;

/// The `Authenticate` request for `login`.
pub fn authenticate_request(login: &EtcdLogin) -> AuthenticateRequest {
    AuthenticateRequest { name: login.user.clone(), password: login.password.expose().to_owned() }
}

/// The token shared data holds, and its cas. Its `Debug` shows nothing of the token.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedToken {
    pub token: Vec<u8>,
    pub cas: u32,
}

impl std::fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedToken {{ cas: {} }}", self.cas)
    }
}

/// The token this Envoy calls etcd with, if it has one yet.
pub fn read(store: &dyn SharedStore) -> Result<Option<SharedToken>, StoreError> {
    Ok(store
        .get(ETCD_TOKEN_KEY)?
        .filter(|(token, _)| !token.is_empty())
        .map(|(token, cas)| SharedToken { token, cas }))
}

/// The watcher's renewed token, for every worker from their next call on.
pub fn publish(store: &dyn SharedStore, token: &[u8]) -> Result<(), StoreError> {
    store.set(ETCD_TOKEN_KEY, token, 0)
}

/// A worker's new token, asked for after `replaced` ended: published unless another context
/// replaced `replaced` first, whose token then wins (one new token, not one per worker).
/// Returns the token to call with.
pub fn adopt(store: &dyn SharedStore, fresh: &[u8], replaced: &SharedToken) -> Result<Vec<u8>, StoreError> {
    match store.set(ETCD_TOKEN_KEY, fresh, replaced.cas) {
        Ok(()) => Ok(fresh.to_vec()),
        Err(StoreError::CasMismatch) => {
            Ok(read(store)?.map_or_else(|| fresh.to_vec(), |winner| winner.token))
        }
        Err(error) => Err(error),
    }
}

/// True when etcd refused a call for its token: ended or unknown (status 16), or older than a
/// change to etcd's users or roles (status 3 with etcd's message). `message`: the call's gRPC
/// status message, if the host gave one.
pub fn token_ended(grpc_status: u32, message: Option<&str>) -> bool {
    match grpc_status {
        GRPC_UNAUTHENTICATED => true,
        GRPC_INVALID_ARGUMENT => message.is_some_and(|message| message.contains(OLD_AUTH_REVISION)),
        _ => false,
    }
}

/// What a worker does once etcd refused its call for the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Another context published a newer token since the call went out: send again with it.
    ResendWith(Vec<u8>),
    /// Ask etcd for a new token, then [`adopt`] it and send again.
    Authenticate,
    /// This pass recovered once already (or has nothing to recover with): the request fails.
    GiveUp,
}

/// The recovery for a call made with `used`, given the token shared data holds now. Once per
/// pass (`recovered`), so a password etcd no longer takes costs one `Authenticate`, not a loop.
pub fn recover(used: &[u8], current: Option<&SharedToken>, recovered: bool) -> Recovery {
    if recovered {
        return Recovery::GiveUp;
    }
    match current {
        Some(current) if current.token != used => Recovery::ResendWith(current.token.clone()),
        _ => Recovery::Authenticate,
    }
}

/// The watcher's schedule of `Authenticate` calls: at start, then every renewal period after
/// the last answer, at once when one of its own calls found the token ended, and after a
/// failure with a backoff (each attempt is a raft round and a bcrypt check on etcd's side).
#[derive(Debug, Clone)]
pub struct Renewal {
    period_ms: u64,
    next_at: u64,
    backoff_ms: u64,
    /// The call out, and when it was sent.
    out: Option<(u32, u64)>,
    has_token: bool,
}

impl Renewal {
    pub fn new(period_ms: u64) -> Self {
        Renewal { period_ms, next_at: 0, backoff_ms: FIRST_BACKOFF_MS, out: None, has_token: false }
    }

    /// True when a call should go out now. Envoy answers every call by its timeout, so a call
    /// out for `lost_after_ms` is taken as lost.
    pub fn due(&self, now: u64, lost_after_ms: u64) -> bool {
        match self.out {
            Some((_, sent_at)) => now.saturating_sub(sent_at) > lost_after_ms,
            None => now >= self.next_at,
        }
    }

    pub fn sent(&mut self, call: u32, now: u64) {
        self.out = Some((call, now));
    }

    /// True when `call` is the `Authenticate` out.
    pub fn is_out(&self, call: u32) -> bool {
        self.out.is_some_and(|(out, _)| out == call)
    }

    /// etcd answered with a token (published by the glue): the next one a period from now.
    pub fn answered(&mut self, now: u64) {
        self.out = None;
        self.has_token = true;
        self.next_at = now.saturating_add(self.period_ms);
        self.backoff_ms = FIRST_BACKOFF_MS;
    }

    /// The call failed, or could not be sent: again after the backoff, never later than the
    /// period says.
    pub fn failed(&mut self, now: u64) {
        self.out = None;
        self.next_at = now.saturating_add(self.backoff_ms.min(self.period_ms));
        self.backoff_ms = self.backoff_ms.saturating_mul(2).min(MAX_BACKOFF_MS);
    }

    /// One of the watcher's calls found the token ended: ask for a new one at the next tick.
    pub fn token_ended(&mut self) {
        if self.out.is_none() {
            self.next_at = 0;
        }
    }

    /// True once a token has been published since start: the watch may open.
    pub fn has_token(&self) -> bool {
        self.has_token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EtcdPassword;
    use crate::host::memory::MemoryStore;

    #[test]
    fn etcd_refusals_for_the_token_are_told_apart_from_other_failures() {
        struct Case {
            name: &'static str,
            status: u32,
            message: Option<&'static str>,
            ended: bool,
        }
        let table = [
            Case {
                name: "an ended token",
                status: 16,
                message: Some("etcdserver: invalid auth token"),
                ended: true,
            },
            Case { name: "no message from the host", status: 16, message: None, ended: true },
            Case {
                name: "users or roles changed",
                status: 3,
                message: Some("etcdserver: revision of auth store is old"),
                ended: true,
            },
            Case {
                name: "another invalid argument",
                status: 3,
                message: Some("etcdserver: too many operations in txn request"),
                ended: false,
            },
            Case { name: "status 3 without a message", status: 3, message: None, ended: false },
            Case {
                name: "permission denied",
                status: 7,
                message: Some("etcdserver: permission denied"),
                ended: false,
            },
            Case { name: "unavailable", status: 14, message: None, ended: false },
            Case { name: "success", status: 0, message: None, ended: false },
        ];
        for case in table {
            assert_eq!(token_ended(case.status, case.message), case.ended, "{}", case.name);
        }
    }

    #[test]
    fn a_worker_recovers_once_per_pass_preferring_a_token_published_meanwhile() {
        let newer = SharedToken { token: b"newer".to_vec(), cas: 7 };
        let same = SharedToken { token: b"used".to_vec(), cas: 3 };
        assert_eq!(recover(b"used", Some(&newer), false), Recovery::ResendWith(b"newer".to_vec()));
        assert_eq!(recover(b"used", Some(&same), false), Recovery::Authenticate);
        assert_eq!(recover(b"used", None, false), Recovery::Authenticate);
        assert_eq!(recover(b"used", Some(&newer), true), Recovery::GiveUp);
        assert_eq!(recover(b"used", Some(&same), true), Recovery::GiveUp);
    }

    #[test]
    fn of_two_workers_authenticating_at_once_the_first_token_published_wins() {
        let store = MemoryStore::default();
        publish(&store, b"ended").unwrap();
        let seen = read(&store).unwrap().unwrap();
        assert_eq!(adopt(&store, b"first", &seen).unwrap(), b"first");
        assert_eq!(adopt(&store, b"second", &seen).unwrap(), b"first", "the second takes the first's token");
        assert_eq!(read(&store).unwrap().unwrap().token, b"first");
        // The watcher's renewal replaces whatever is there.
        publish(&store, b"renewed").unwrap();
        assert_eq!(read(&store).unwrap().unwrap().token, b"renewed");
    }

    #[test]
    fn no_token_is_read_before_one_is_published() {
        let store = MemoryStore::default();
        assert_eq!(read(&store).unwrap(), None);
        store.set(ETCD_TOKEN_KEY, b"", 0).unwrap();
        assert_eq!(read(&store).unwrap(), None, "an empty value is no token");
    }

    #[test]
    fn the_watcher_renews_a_period_after_each_token_and_backs_off_after_failures() {
        let mut renewal = Renewal::new(120_000);
        assert!(renewal.due(0, 2_000) && !renewal.has_token(), "at start");
        renewal.sent(1, 0);
        assert!(renewal.is_out(1) && !renewal.is_out(2));
        assert!(!renewal.due(1_000, 2_000), "one call out at a time");
        assert!(renewal.due(2_001, 2_000), "a call out past its timeout is lost");
        renewal.answered(500);
        assert!(renewal.has_token() && !renewal.is_out(1));
        assert!(!renewal.due(120_499, 2_000) && renewal.due(120_500, 2_000), "a period after the answer");
        renewal.sent(2, 120_500);
        renewal.failed(120_600);
        assert!(!renewal.due(121_599, 2_000) && renewal.due(121_600, 2_000), "1 s after a failure");
        renewal.sent(3, 121_600);
        renewal.failed(121_700);
        assert!(!renewal.due(123_699, 2_000) && renewal.due(123_700, 2_000), "then 2 s");
        renewal.sent(4, 123_700);
        renewal.answered(123_800);
        renewal.token_ended();
        assert!(renewal.due(123_801, 2_000), "a refused call of the watcher's asks at once");
    }

    #[test]
    fn the_backoff_never_outlasts_the_renewal_period() {
        let mut renewal = Renewal::new(1_500);
        for at in [0, 10_000, 20_000, 30_000] {
            renewal.failed(at);
            assert!(renewal.due(at + 1_500, 0), "at {at}");
        }
    }

    #[test]
    fn the_authenticate_request_carries_the_login_and_debug_prints_neither_secret() {
        let login = EtcdLogin {
            user: "tokengate".into(),
            password: EtcdPassword::new("pw-s3cret".into()),
            renewal_ms: 1,
        };
        let request = authenticate_request(&login);
        assert_eq!((request.name.as_str(), request.password.as_str()), ("tokengate", "pw-s3cret"));
        assert!(!format!("{request:?}").contains("pw-s3cret"));
        let token = SharedToken { token: b"tok-s3cret".to_vec(), cas: 1 };
        assert!(!format!("{token:?}").contains("tok"));
    }
}
