//! Each worker's budget of slow password hashing at the login form.
//!
//! Anyone may post the login form, and every post runs the user's verifier: for a
//! `password_hash` user, and for an unknown username (checked against a decoy of the same cost,
//! RFC 6749 §10.10), that is PBKDF2, about 136 ms of an Envoy worker at 100,000 iterations. A
//! few posts a second under fresh usernames would hold every worker and slow every route. So
//! each worker may spend `authorization.pbkdf2_iterations_per_sec` PBKDF2 iterations a second
//! at the form; past that the form answers 503 with `Retry-After` before hashing anything. The
//! password grant is not counted here: it needs a client secret first.
//!
//! Per worker on purpose: each worker runs its own VM, so the budget needs no shared data
//! (which would cost a compare-and-swap per sign-in), and it bounds what a flood can take of
//! each worker's second, whatever the number of workers.

use std::cell::Cell;

thread_local! {
    /// This worker's window.
    static THIS_WORKER: Cell<WorkWindow> = const { Cell::new(WorkWindow { second: 0, spent: 0 }) };
}

/// The work spent in one second (`second`: milliseconds since the epoch / 1000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkWindow {
    second: u64,
    spent: u64,
}

impl WorkWindow {
    /// Takes `work` from the budget of the second `now_ms` falls in: `false`, and nothing
    /// taken, when that second's `per_second` is spent already. Work of 0 (a fast digest)
    /// always passes. Only what was spent before is compared, so one hash dearer than the
    /// whole budget still runs once a second (a user with more iterations than the budget can
    /// still sign in), and a second never spends more than the budget and one hash.
    pub fn take(&mut self, now_ms: u64, work: u64, per_second: u64) -> bool {
        let second = now_ms / 1000;
        if second != self.second {
            *self = WorkWindow { second, spent: 0 };
        }
        if work > 0 && self.spent >= per_second {
            return false;
        }
        self.spent = self.spent.saturating_add(work);
        true
    }
}

/// [`WorkWindow::take`] from this worker's window.
pub fn take_from_this_worker(now_ms: u64, work: u64, per_second: u64) -> bool {
    THIS_WORKER.with(|window| {
        let mut current = window.get();
        let taken = current.take(now_ms, work, per_second);
        window.set(current);
        taken
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_spends_its_budget_then_refuses_until_the_next() {
        let mut window = WorkWindow::default();
        assert!(window.take(5_000, 60_000, 100_000));
        assert!(window.take(5_100, 60_000, 100_000), "40,000 were left: one hash may run past the end");
        assert!(!window.take(5_200, 60_000, 100_000), "spent");
        assert!(window.take(5_999, 0, 100_000), "a fast digest costs nothing");
        assert!(window.take(6_000, 60_000, 100_000), "a new second");
    }

    #[test]
    fn one_hash_dearer_than_the_budget_runs_once_a_second() {
        let mut window = WorkWindow::default();
        assert!(window.take(1_000, 1_000_000, 100_000));
        assert!(!window.take(1_500, 1_000_000, 100_000));
        assert!(window.take(2_000, 1_000_000, 100_000));
    }

    #[test]
    fn each_worker_has_its_own_window() {
        assert!(take_from_this_worker(9_000, 100_000, 100_000));
        assert!(!take_from_this_worker(9_000, 100_000, 100_000));
        // Another VM (here: another thread) has spent nothing.
        assert!(std::thread::spawn(|| take_from_this_worker(9_000, 100_000, 100_000)).join().unwrap());
    }
}
