//! Requests paused at their headers for a body that never comes.
//!
//! An endpoint request (`/token`, ...) pauses in `on_http_request_headers` to read its form
//! body. Without `allow_on_headers_stop_iteration: true` in the filter's config, Envoy never
//! delivers that body: the request hangs and nothing is logged. The request contexts record
//! when they start waiting and stop when a body (or trailers) arrives; the root's timer asks
//! [`BodyWaits::overdue`] and logs one line naming the setting.

use std::cell::{Cell, RefCell};

/// Far longer than a client takes to send a form body once its headers are out.
pub const BODY_WAIT_LIMIT_MS: u64 = 10_000;

/// One per VM, shared by its root and request contexts (one thread: no locking).
#[derive(Default)]
pub struct BodyWaits {
    /// (context id, waiting since, in ms).
    waiting: RefCell<Vec<(u32, u64)>>,
    warned: Cell<bool>,
}

impl BodyWaits {
    pub fn start(&self, context_id: u32, now_ms: u64) {
        self.waiting.borrow_mut().push((context_id, now_ms));
    }

    /// A body, trailers or the stream's end arrived: the request no longer waits.
    pub fn stop(&self, context_id: u32) {
        self.waiting.borrow_mut().retain(|(id, _)| *id != context_id);
    }

    /// True once per VM, the first time a request has waited longer than the limit with no
    /// body callback at all: the caller logs it.
    pub fn overdue(&self, now_ms: u64) -> bool {
        if self.warned.get() {
            return false;
        }
        let overdue =
            self.waiting.borrow().iter().any(|(_, since)| now_ms.saturating_sub(*since) > BODY_WAIT_LIMIT_MS);
        self.warned.set(overdue);
        overdue
    }

    pub fn len(&self) -> usize {
        self.waiting.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_in_time_warns_nothing() {
        let waits = BodyWaits::default();
        waits.start(7, 1_000);
        assert!(!waits.overdue(1_000 + BODY_WAIT_LIMIT_MS));
        waits.stop(7);
        assert!(waits.is_empty());
        assert!(!waits.overdue(1_000_000));
    }

    #[test]
    fn a_request_that_waits_too_long_warns_once() {
        let waits = BodyWaits::default();
        waits.start(7, 1_000);
        waits.start(8, 2_000);
        assert!(waits.overdue(1_001 + BODY_WAIT_LIMIT_MS));
        assert!(!waits.overdue(5_000 + BODY_WAIT_LIMIT_MS), "one line per VM, not one per tick");
        waits.stop(8);
        assert_eq!(waits.len(), 1);
    }

    #[test]
    fn a_clock_that_goes_back_is_no_wait() {
        let waits = BodyWaits::default();
        waits.start(7, 50_000);
        assert!(!waits.overdue(1_000));
    }
}
