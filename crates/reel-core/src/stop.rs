//! Stop requests: how a signal (or a caller) asks long work to end, and how every wait in the
//! library notices.
//!
//! A [`StopToken`] counts requests. Front ends decide where they come from: the CLI installs
//! [`on_signals`] per subcommand (SIGINT, SIGTERM and SIGHUP each count as one request; a third
//! request exits at once, as a user who insists expects); the Python module calls
//! [`StopToken::request`] itself. The library only reads the count:
//!
//! * the first request ends the recording phase cleanly (the session stops, the unfinished
//!   episode is discarded, saved episodes are committed);
//! * a request that arrives while the library is already finishing (the wait for queued commits
//!   or for the background conversion to the final codec) means "stop now": the wait ends within
//!   a bounded time and leaves valid files (the live codec where the conversion did not finish).
//!
//! Waits compare against a [`StopMark`] taken when they start, so that the request that ended
//! the recording does not also cut the finishing short.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shared counter of stop requests. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct StopToken {
    count: Arc<AtomicUsize>,
}

/// The number of requests seen at some moment (see [`StopToken::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StopMark(usize);

impl StopToken {
    /// A token nobody has requested yet.
    pub fn new() -> StopToken {
        StopToken::default()
    }

    /// Asks the work holding this token to stop (async-signal-safe: one atomic add).
    pub fn request(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// True once any request arrived.
    pub fn requested(&self) -> bool {
        self.count() > 0
    }

    /// The current count, for [`requested_since`](Self::requested_since).
    pub fn mark(&self) -> StopMark {
        StopMark(self.count())
    }

    /// True when a request arrived after `mark` was taken.
    pub fn requested_since(&self, mark: StopMark) -> bool {
        self.count() > mark.0
    }
}

/// Signal handlers installed by [`on_signals`]; dropping it restores the previous handling.
#[derive(Debug)]
pub struct SignalGuard {
    ids: Vec<signal_hook::SigId>,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The signals that ask reel to stop.
pub const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// Makes SIGINT, SIGTERM and SIGHUP count as stop requests on `stop` while the guard lives.
/// The third request exits the process at once with status 130 (every saved episode is
/// already on disk; an unfinished save is rolled back by the next open or `reel check --repair`).
pub fn on_signals(stop: &StopToken) -> std::io::Result<SignalGuard> {
    let mut ids = Vec::new();
    for sig in STOP_SIGNALS {
        let count = stop.count.clone();
        let action = move || {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= 3 {
                signal_hook::low_level::exit(130);
            }
        };
        // SAFETY: the action only does an atomic add and, at the third request, calls
        // signal_hook's async-signal-safe `exit` (_exit); both are allowed in a signal handler.
        let id = unsafe { signal_hook::low_level::register(sig, action) }?;
        ids.push(id);
    }
    Ok(SignalGuard { ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_see_only_later_requests() {
        let t = StopToken::new();
        assert!(!t.requested());
        let m0 = t.mark();
        t.request();
        assert!(t.requested());
        assert!(t.requested_since(m0));
        let m1 = t.mark();
        assert!(!t.requested_since(m1));
        t.clone().request();
        assert!(t.requested_since(m1));
        assert_eq!(t.count(), 2);
    }

    #[test]
    fn a_real_signal_counts_once_and_the_guard_unregisters() {
        let t = StopToken::new();
        {
            let _g = on_signals(&t).unwrap();
            signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
            assert_eq!(t.count(), 1);
        }
        // Without the guard, SIGHUP would end the test process: register a plain flag first.
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let id = signal_hook::flag::register(signal_hook::consts::SIGHUP, flag.clone()).unwrap();
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        assert!(flag.load(Ordering::SeqCst));
        assert_eq!(t.count(), 1, "the dropped guard no longer counts");
        signal_hook::low_level::unregister(id);
    }
}
