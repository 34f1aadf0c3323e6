//! Thread priorities, in one place: the control loop is the only thread of a reel process that
//! may run real-time ([`raise_control_thread`]); live encoders and re-encode workers run at
//! [`ENCODER`] (nice 10), background conversion at [`Policy::Idle`] ([`set_current`]).
//!
//! Libraries do not always agree that the loop is the only real-time thread. Libraries do not always agree: SVT-AV1 1.4.1, run as root, creates every one of
//! its ~85 worker threads per encoder with SCHED_FIFO priority 99, which starves the loop
//! (ticks started 35–40 ms late in a 3-camera recording), and makes the opening thread
//! real-time too. [`demote_realtime_threads`] gives such threads the scheduling the opening
//! thread had before the open ([`current_policy`]): nice 10 for a live encoder worker,
//! SCHED_IDLE for the deferred transcoder.
//!
//! The one other real-time thread is a stand-in for hardware: `reel sim-bus`'s simulated
//! servos ([`raise_device_thread`]), which play a device with its own CPU. Nothing outside
//! this module calls the kernel's scheduling functions: `clippy.toml` disallows them, and this
//! module alone allows them.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicI32, Ordering};

static CONTROL_TID: AtomicI32 = AtomicI32::new(0);

/// The calling thread's kernel thread id.
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Records the calling thread as the control loop (kept real-time by [`demote_realtime_threads`]).
pub fn mark_control_thread() {
    CONTROL_TID.store(current_tid(), Ordering::SeqCst);
}

/// A thread's non-real-time scheduling: SCHED_IDLE, or SCHED_OTHER at a nice value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Idle,
    Normal { nice: i32 },
}

/// Live encoders and re-encode workers: below the control loop, above idle work.
pub const ENCODER: Policy = Policy::Normal { nice: 10 };

/// Puts thread `tid` (0: the caller) at `policy`; returns a description of what it got
/// (SCHED_IDLE may fall back to nice 19; a refused change leaves the thread as it was).
pub fn set_thread(tid: i32, policy: Policy) -> String {
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain scheduling syscalls on a thread id of this process (0 = the caller).
    unsafe {
        match policy {
            Policy::Idle => {
                if libc::sched_getscheduler(tid) == libc::SCHED_IDLE
                    || libc::sched_setscheduler(tid, libc::SCHED_IDLE, &p) == 0
                {
                    return "SCHED_IDLE".into();
                }
                if (libc::sched_getscheduler(tid) == libc::SCHED_OTHER
                    || libc::sched_setscheduler(tid, libc::SCHED_OTHER, &p) == 0)
                    && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) == 0
                {
                    return "nice 19 (SCHED_IDLE refused)".into();
                }
                "the default priority (SCHED_IDLE and nice 19 refused)".into()
            }
            Policy::Normal { nice } => {
                let other = libc::sched_getscheduler(tid) == libc::SCHED_OTHER
                    || libc::sched_setscheduler(tid, libc::SCHED_OTHER, &p) == 0;
                if other && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) == 0 {
                    format!("nice {nice}")
                } else {
                    format!("the default priority (nice {nice} refused)")
                }
            }
        }
    }
}

/// Puts the calling thread at `policy` (see [`set_thread`]).
pub fn set_current(policy: Policy) -> String {
    set_thread(0, policy)
}

/// Makes the calling thread the control loop: SCHED_FIFO priority 10 when `realtime` (falls
/// back to nice −10, then to the default priority), and marks it so that
/// [`demote_realtime_threads`] keeps it real-time. Returns what it got.
pub fn raise_control_thread(realtime: bool) -> String {
    mark_control_thread();
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

/// Makes the calling thread a simulated device (`reel sim-bus`): SCHED_FIFO priority 10, the
/// control loop's own priority, so that a simulated servo answers as promptly as real
/// hardware with its own CPU would. Returns whether the kernel granted it.
pub fn raise_device_thread() -> bool {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sets the scheduling policy of the calling thread.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0 }
}

/// The calling thread's scheduling, to hand to [`demote_realtime_threads`] after a library
/// call that may change it (SVT-AV1's init makes even the opening thread real-time).
/// A real-time caller counts as `Normal { nice: 0 }`.
pub fn current_policy() -> Policy {
    // SAFETY: querying the calling thread's own policy and nice value.
    unsafe {
        if libc::sched_getscheduler(0) == libc::SCHED_IDLE {
            Policy::Idle
        } else {
            Policy::Normal {
                nice: libc::getpriority(libc::PRIO_PROCESS, 0),
            }
        }
    }
}

/// The kernel thread ids of this process (empty when /proc is not readable).
fn process_threads() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .collect()
}

/// Moves every SCHED_FIFO / SCHED_RR thread of this process, except the control loop's, to
/// `to` (normally the [`current_policy`] of the thread that opened the encoder, taken before
/// the open). Returns how many threads were demoted.
pub fn demote_realtime_threads(to: Policy) -> usize {
    let keep = CONTROL_TID.load(Ordering::SeqCst);
    let mut n = 0;
    for tid in process_threads() {
        if tid == keep {
            continue;
        }
        // SAFETY: plain scheduling syscalls on a thread id of this process.
        unsafe {
            let policy = libc::sched_getscheduler(tid);
            if policy == libc::SCHED_FIFO || policy == libc::SCHED_RR {
                let p = libc::sched_param { sched_priority: 0 };
                let done = match to {
                    Policy::Idle => libc::sched_setscheduler(tid, libc::SCHED_IDLE, &p) == 0,
                    Policy::Normal { nice } => {
                        libc::sched_setscheduler(tid, libc::SCHED_OTHER, &p) == 0
                            && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) == 0
                    }
                };
                if done {
                    n += 1;
                }
            }
        }
    }
    n
}

/// Moves every SCHED_IDLE thread of this process, and with `also_niced` every thread niced
/// above `to`'s nice value (the live encoders at [`ENCODER`]), to `to`. Those priorities are
/// for background work that must never compete with the control loop; once the loop has
/// stopped, that work (encoding, the final-codec conversion and the threads their encoders
/// made) may use the whole machine. Returns how many threads were moved (0 when the change
/// is refused, e.g. no permission).
pub fn raise_background_threads(to: Policy, also_niced: bool) -> usize {
    let floor = match to {
        Policy::Normal { nice } => nice,
        Policy::Idle => return 0,
    };
    let mut n = 0;
    for tid in process_threads() {
        // SAFETY: querying a thread id of this process.
        let (policy, nice) = unsafe {
            (
                libc::sched_getscheduler(tid),
                libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t),
            )
        };
        let background = policy == libc::SCHED_IDLE
            || (also_niced && policy == libc::SCHED_OTHER && nice > floor);
        if background && !set_thread(tid, to).contains("refused") {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demotes_other_realtime_threads_only() {
        // Needs permission to set SCHED_FIFO (root / CAP_SYS_NICE); without it there is
        // nothing to demote and the check below is about the control thread only.
        mark_control_thread();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let p = libc::sched_param { sched_priority: 5 };
            // SAFETY: sets this thread's own policy.
            let ok = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } == 0;
            tx.send((current_tid(), ok)).unwrap();
            done_rx.recv().unwrap();
        });
        let (tid, was_rt) = rx.recv().unwrap();
        let n = demote_realtime_threads(Policy::Normal { nice: 10 });
        // SAFETY: querying a live thread of this process.
        let policy = unsafe { libc::sched_getscheduler(tid) };
        done_tx.send(()).unwrap();
        h.join().unwrap();
        if was_rt {
            assert!(n >= 1);
            assert_eq!(policy, libc::SCHED_OTHER);
        } else {
            eprintln!("note: no permission for SCHED_FIFO here; nothing to demote");
        }
    }

    #[test]
    fn idle_threads_are_raised_and_others_left_alone() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            set_current(Policy::Idle);
            tx.send(current_tid()).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        // SAFETY: querying live threads of this process.
        let before = unsafe { libc::sched_getscheduler(tid) };
        let n = raise_background_threads(Policy::Normal { nice: 0 }, false);
        // SAFETY: as above.
        let after = unsafe { libc::sched_getscheduler(tid) };
        // SAFETY: querying this thread's own policy.
        let me = unsafe { libc::sched_getscheduler(0) };
        done_tx.send(()).unwrap();
        h.join().unwrap();
        assert_eq!(
            before,
            libc::SCHED_IDLE,
            "setting SCHED_IDLE needs no permission"
        );
        assert!(n >= 1);
        assert_eq!(after, libc::SCHED_OTHER);
        assert_ne!(me, libc::SCHED_IDLE);
    }
}
