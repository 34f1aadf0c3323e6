//! CPU use while a trial runs, from /proc: every thread of this process
//! (`/proc/self/task/*/stat`), every thread of the other processes (`/proc/*/task/*/stat`: a
//! thread of another program holding a core is a cause too) and each core's load
//! (`/proc/stat`). A sampler thread snapshots them every 500 ms; a window of snapshots gives
//! each thread's share of a core and each core's busy share.

use reel_core::monotonic_ns;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One thread's CPU ticks (utime + stime, in clock ticks).
#[derive(Debug, Clone)]
struct ThreadTicks {
    comm: String,
    process: String,
    ticks: u64,
}

/// One reading of /proc.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub t_ns: u64,
    threads: HashMap<(u32, u32), ThreadTicks>,
    /// Per core: (busy ticks, total ticks).
    cores: Vec<(u64, u64)>,
}

/// A thread's share of one core over a window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThreadCpu {
    /// The thread's name (`comm`).
    pub name: String,
    /// Its process's name.
    pub process: String,
    pub pid: u32,
    pub tid: u32,
    /// A thread of this process (reel's own).
    pub own: bool,
    /// Percent of one core.
    pub cpu_pct: f64,
}

/// CPU use over a window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuUse {
    /// Threads using at least 2 % of a core, busiest first.
    pub threads: Vec<ThreadCpu>,
    /// Busy percent of each core.
    pub cores: Vec<f64>,
    pub seconds: f64,
}

/// `pid (comm) state ... utime stime ...`: (comm, utime + stime). The comm may hold spaces
/// and parentheses, so fields are counted after its last ')'.
pub fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is the state (field 3); utime is field 14, stime field 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// `/proc/stat`'s per-core lines: (busy, total) ticks per core.
pub fn parse_cores(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total.saturating_sub(idle), total)
        })
        .collect()
}

fn read_threads(pid: u32, process: &str, out: &mut HashMap<(u32, u32), ThreadTicks>) {
    let dir = format!("/proc/{pid}/task");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return; // the process ended meanwhile
    };
    for e in rd.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(e.path().join("stat")) {
            if let Some((comm, ticks)) = parse_stat(&text) {
                out.insert(
                    (pid, tid),
                    ThreadTicks {
                        comm,
                        process: process.to_string(),
                        ticks,
                    },
                );
            }
        }
    }
}

/// Reads /proc now: every thread of every process, and the cores.
pub fn snapshot() -> Snapshot {
    let mut threads = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let process = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| parse_stat(&t))
                .map(|(c, _)| c)
                .unwrap_or_default();
            read_threads(pid, &process, &mut threads);
        }
    }
    let cores = std::fs::read_to_string("/proc/stat")
        .map(|t| parse_cores(&t))
        .unwrap_or_default();
    Snapshot {
        t_ns: monotonic_ns(),
        threads,
        cores,
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU use between two snapshots.
pub fn between(a: &Snapshot, b: &Snapshot) -> CpuUse {
    let secs = b.t_ns.saturating_sub(a.t_ns) as f64 / 1e9;
    if secs <= 0.0 {
        return CpuUse::default();
    }
    let hz = clock_ticks();
    let me = std::process::id();
    let mut threads: Vec<ThreadCpu> = b
        .threads
        .iter()
        .filter_map(|(&(pid, tid), t)| {
            let before = a
                .threads
                .get(&(pid, tid))
                .map(|x| x.ticks)
                // A thread born inside the window spent all its time in it.
                .unwrap_or(0);
            let pct = t.ticks.saturating_sub(before) as f64 / hz / secs * 100.0;
            (pct >= 2.0).then(|| ThreadCpu {
                name: t.comm.clone(),
                process: t.process.clone(),
                pid,
                tid,
                own: pid == me,
                cpu_pct: pct,
            })
        })
        .collect();
    threads.sort_by(|x, y| y.cpu_pct.total_cmp(&x.cpu_pct));
    let cores = a
        .cores
        .iter()
        .zip(&b.cores)
        .map(|(&(b0, t0), &(b1, t1))| {
            let dt = t1.saturating_sub(t0);
            if dt == 0 {
                0.0
            } else {
                b1.saturating_sub(b0) as f64 / dt as f64 * 100.0
            }
        })
        .collect();
    CpuUse {
        threads,
        cores,
        seconds: secs,
    }
}

/// Snapshots /proc every 500 ms on its own thread until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    snaps: Arc<Mutex<Vec<Snapshot>>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let snaps = Arc::new(Mutex::new(vec![snapshot()]));
        let thread = {
            let stop = stop.clone();
            let snaps = snaps.clone();
            std::thread::Builder::new()
                .name("doctor-cpu".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        for _ in 0..10 {
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        let s = snapshot();
                        snaps.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                    }
                })
                .ok()
        };
        Sampler {
            stop,
            snaps,
            thread,
        }
    }

    /// Stops sampling and returns the CPU use between the first snapshot taken at or after
    /// `from_ns` and the last one at or before `to_ns` (the whole run when the window holds
    /// fewer than two).
    pub fn finish(mut self, from_ns: u64, to_ns: u64) -> CpuUse {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut snaps = std::mem::take(&mut *self.snaps.lock().unwrap_or_else(|p| p.into_inner()));
        snaps.push(snapshot());
        let inside: Vec<&Snapshot> = snaps
            .iter()
            .filter(|s| s.t_ns >= from_ns && s.t_ns <= to_ns)
            .collect();
        match (inside.first(), inside.last()) {
            (Some(a), Some(b)) if inside.len() >= 2 => between(a, b),
            _ => match (snaps.first(), snaps.last()) {
                (Some(a), Some(b)) => between(a, b),
                _ => CpuUse::default(),
            },
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_odd_names() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0 1000 0 0";
        assert_eq!(parse_stat(line), Some(("a (weird) name".into(), 280)));
        assert_eq!(parse_stat("garbage"), None);
        let cores = parse_cores(
            "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 0 0 0 0 0 0\ncpu1 5 0 5 50 10 0 0 0 0 0\nintr 1",
        );
        assert_eq!(cores, vec![(10, 60), (10, 70)]);
    }

    #[test]
    fn sees_a_busy_thread_of_this_process() {
        let s = Sampler::start();
        let from = monotonic_ns();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let h = std::thread::Builder::new()
            .name("busy-spinner".into())
            .spawn(move || {
                let mut x = 0u64;
                while !st.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                x
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(1300));
        // Measured while it still runs (a thread that ended is not in the last snapshot).
        let u = s.finish(from, monotonic_ns());
        stop.store(true, Ordering::Relaxed);
        let _ = h.join();
        let t = u
            .threads
            .iter()
            .find(|t| t.name == "busy-spinner")
            .expect("spinner seen");
        assert!(t.own);
        assert!(t.cpu_pct > 5.0, "{t:?}");
        assert!(!u.cores.is_empty());
    }
}
