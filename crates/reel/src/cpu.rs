//! CPU time per group of threads, for `reel bench record`: a sampler thread reads
//! `/proc/self/task/*/stat` every 200 ms and keeps each thread's last figure, so threads that
//! ended (an episode's encoder pool) still count, up to their last 200 ms. Threads are grouped
//! by name; threads a library starts inherit the name of the thread that started them (SVT-AV1's
//! and x264's pools are named after the reel thread that opened the encoder).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Seconds of CPU per group.
#[derive(Debug, Clone, Default)]
pub struct CpuGroups {
    /// Camera reader threads: demux, decode, filter, scale to RGB.
    pub capture_s: f64,
    /// Live encoding: intake, encoder supervisors, encoder workers and their codec threads.
    pub live_encoding_s: f64,
    /// The final codec: final lanes, transcode workers and their codec threads, load checks.
    pub conversion_s: f64,
    /// Everything else: the control loop, the committer, the process's other threads.
    pub other_s: f64,
}

/// The group a thread belongs to, from its name (15 characters at most on Linux).
fn group(comm: &str) -> usize {
    if comm.starts_with("camera-") {
        0
    } else if comm.starts_with("encode-")
        || comm.starts_with("encoder-worker")
        || comm.starts_with("intake-")
    {
        1
    } else if comm.starts_with("final-")
        || comm.starts_with("reel-deferred")
        || comm.starts_with("trial-")
    {
        2
    } else {
        3
    }
}

fn sample(seen: &Mutex<HashMap<i32, (String, u64)>>) {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let mut now = Vec::new();
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(v) = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .as_deref()
            .and_then(reel_report::doctor::proc::parse_stat)
        {
            now.push((tid, v));
        }
    }
    let mut m = seen.lock().unwrap_or_else(|p| p.into_inner());
    for (tid, (comm, ticks)) in now {
        // A reused tid with fewer ticks is a new thread: keep the old one's total under a key
        // of its own.
        if let Some((old_comm, old)) = m.get(&tid).cloned() {
            if ticks < old {
                let k = -(m.len() as i32) - 1;
                m.insert(k, (old_comm, old));
            }
        }
        m.insert(tid, (comm, ticks));
    }
}

/// The running sampler.
pub struct CpuSampler {
    seen: Arc<Mutex<HashMap<i32, (String, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CpuSampler {
    pub fn start() -> CpuSampler {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::Builder::new()
                .name("cpu-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        sample(&seen);
                        std::thread::sleep(Duration::from_millis(200));
                    }
                })
                .ok()
        };
        CpuSampler { seen, stop, thread }
    }

    /// Stops sampling and sums each group.
    pub fn finish(mut self) -> CpuGroups {
        sample(&self.seen);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut g = [0u64; 4];
        for (comm, ticks) in self.seen.lock().unwrap_or_else(|p| p.into_inner()).values() {
            g[group(comm)] += ticks;
        }
        CpuGroups {
            capture_s: g[0] as f64 / hz,
            live_encoding_s: g[1] as f64 / hz,
            conversion_s: g[2] as f64 / hz,
            other_s: g[3] as f64 / hz,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_grouped_by_name() {
        assert_eq!(group("camera-top"), 0);
        assert_eq!(group("encoder-worker"), 1);
        assert_eq!(group("final-observati"), 2);
        assert_eq!(group("reel"), 3);
    }
}
