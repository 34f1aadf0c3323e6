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

/// What the loop thread got when it asked for priority.
pub fn raise_priority(realtime: bool) -> String {
    reel_core::sched::mark_control_thread();
    if realtime {
        let param = libc::sched_param { sched_priority: 10 };
        // SAFETY: sets the scheduling policy of the calling thread.
        let rc =
            unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
        if rc == 0 {
            return "SCHED_FIFO priority 10".into();
        }
    }
    // SAFETY: setpriority on the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) };
    if rc == 0 {
        "nice -10".into()
    } else {
        "default priority (raising it needs CAP_SYS_NICE)".into()
    }
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
