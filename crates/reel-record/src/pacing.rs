//! Fixed-rate pacing: sleep most of the way to the deadline, then spin the last stretch,
//! so ticks start within ~0.1 ms of their slot instead of the scheduler's 1–4 ms slop.

use reel_core::monotonic_ns;

/// How long before a deadline sleeping stops and spinning starts.
pub const SPIN_NS: u64 = 1_200_000;

/// Waits until the monotonic clock reaches `deadline_ns`.
pub fn sleep_until(deadline_ns: u64) {
    loop {
        let now = monotonic_ns();
        if now >= deadline_ns {
            return;
        }
        let left = deadline_ns - now;
        if left > SPIN_NS {
            std::thread::sleep(std::time::Duration::from_nanos(left - SPIN_NS));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// What the loop thread got when it asked for priority (see
/// [`reel_core::sched::raise_control_thread`]).
pub fn raise_priority(realtime: bool) -> String {
    reel_core::sched::raise_control_thread(realtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_wakes_early() {
        // Lateness is a benchmark figure (`reel bench record` prints pacing jitter);
        // waking early would be a bug, so that is what is asserted here.
        for ms in [0u64, 1, 2, 3] {
            let d = monotonic_ns() + ms * 1_000_000;
            sleep_until(d);
            assert!(monotonic_ns() >= d);
        }
    }
}
