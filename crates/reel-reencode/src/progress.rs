//! How a re-encode shows its progress: the [`Progress`] callbacks the pool calls, a silent
//! implementation for libraries and tests, and [`ConsoleProgress`] for the command line
//! (indicatif bars — overall frames/s and ETA, one bar per worker — on a terminal, periodic
//! plain lines otherwise).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Callbacks from the re-encode; every method has an empty default.
pub trait Progress: Sync {
    /// Work is about to start: `files` files holding `frames` frames, on `jobs` workers.
    fn begin(&self, _files: usize, _frames: u64, _jobs: usize) {}
    /// Worker `worker` starts `file` (`frames` frames) with `encoder`.
    fn task_begin(&self, _worker: usize, _file: &str, _encoder: &str, _frames: u64) {}
    /// Worker `worker` has written `done` frames of its current attempt.
    fn task_frames(&self, _worker: usize, _done: u64) {}
    /// Worker `worker` ended `file`: Ok(encoder that did it) or Err(why every attempt failed).
    fn task_end(&self, _worker: usize, _file: &str, _result: &Result<String, String>) {}
    /// A line worth showing (fallbacks, resumed files, the swap).
    fn message(&self, _msg: &str) {}
    /// All work is done.
    fn end(&self) {}
}

/// Shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Terminal progress: bars on a TTY, a line every few seconds otherwise.
pub struct ConsoleProgress {
    multi: Option<MultiProgress>,
    total: Mutex<Option<ProgressBar>>,
    workers: Mutex<Vec<ProgressBar>>,
    total_frames: AtomicU64,
    finished_frames: AtomicU64,
    current: Mutex<Vec<u64>>,
    started: Mutex<Instant>,
    last_line: Mutex<Instant>,
    line_every: Duration,
}

impl Default for ConsoleProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleProgress {
    /// Bars when stderr is a terminal, periodic lines (every 5 s) when it is not.
    pub fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        ConsoleProgress {
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            total: Mutex::new(None),
            workers: Mutex::new(Vec::new()),
            total_frames: AtomicU64::new(0),
            finished_frames: AtomicU64::new(0),
            current: Mutex::new(Vec::new()),
            started: Mutex::new(Instant::now()),
            last_line: Mutex::new(Instant::now()),
            line_every: Duration::from_secs(5),
        }
    }

    fn done_frames(&self) -> u64 {
        let cur: u64 = self.current.lock().map(|c| c.iter().sum()).unwrap_or(0);
        self.finished_frames.load(Ordering::Relaxed) + cur
    }

    fn print_line(&self, force: bool) {
        if self.multi.is_some() {
            return;
        }
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        if !force && last.elapsed() < self.line_every {
            return;
        }
        *last = Instant::now();
        let done = self.done_frames();
        let total = self.total_frames.load(Ordering::Relaxed).max(1);
        let secs = self
            .started
            .lock()
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let fps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let eta = if fps > 0.0 {
            (total.saturating_sub(done)) as f64 / fps
        } else {
            0.0
        };
        eprintln!(
            "reencode: {done}/{total} frames ({:.0}%), {fps:.1} frames/s, ETA {eta:.0} s",
            100.0 * done as f64 / total as f64
        );
    }
}

impl Progress for ConsoleProgress {
    fn begin(&self, files: usize, frames: u64, jobs: usize) {
        self.total_frames.store(frames, Ordering::Relaxed);
        if let Ok(mut c) = self.current.lock() {
            *c = vec![0; jobs];
        }
        if let Ok(mut s) = self.started.lock() {
            *s = Instant::now();
        }
        match &self.multi {
            Some(m) => {
                let bar = m.add(ProgressBar::new(frames));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>8} [{bar:40}] {pos}/{len} frames {per_sec} ETA {eta} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix("total");
                bar.set_message(format!("{files} files"));
                if let Ok(mut t) = self.total.lock() {
                    *t = Some(bar);
                }
                let mut ws = Vec::new();
                for i in 0..jobs {
                    let b = m.add(ProgressBar::new(1));
                    b.set_style(
                        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    b.set_prefix(format!("w{i}"));
                    ws.push(b);
                }
                if let Ok(mut w) = self.workers.lock() {
                    *w = ws;
                }
            }
            None => eprintln!("reencode: {files} file(s), {frames} frames, {jobs} worker(s)"),
        }
    }

    fn task_begin(&self, worker: usize, file: &str, encoder: &str, frames: u64) {
        if let Ok(mut c) = self.current.lock() {
            if let Some(x) = c.get_mut(worker) {
                *x = 0;
            }
        }
        if let Ok(ws) = self.workers.lock() {
            if let Some(b) = ws.get(worker) {
                b.set_length(frames);
                b.set_position(0);
                b.set_message(format!("{file} ({encoder})"));
            }
        }
    }

    fn task_frames(&self, worker: usize, done: u64) {
        if let Ok(mut c) = self.current.lock() {
            if let Some(x) = c.get_mut(worker) {
                *x = done;
            }
        }
        if let Ok(ws) = self.workers.lock() {
            if let Some(b) = ws.get(worker) {
                b.set_position(done);
            }
        }
        if let Ok(t) = self.total.lock() {
            if let Some(b) = t.as_ref() {
                b.set_position(self.done_frames());
            }
        }
        self.print_line(false);
    }

    fn task_end(&self, worker: usize, file: &str, result: &Result<String, String>) {
        let cur = self
            .current
            .lock()
            .ok()
            .and_then(|mut c| c.get_mut(worker).map(std::mem::take))
            .unwrap_or(0);
        self.finished_frames.fetch_add(cur, Ordering::Relaxed);
        if let Err(why) = result {
            self.message(&format!("FAILED {file}: {why}"));
        }
        if let Ok(t) = self.total.lock() {
            if let Some(b) = t.as_ref() {
                b.set_position(self.done_frames());
            }
        }
    }

    fn message(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("reencode: {msg}"),
        }
    }

    fn end(&self) {
        if let Ok(ws) = self.workers.lock() {
            for b in ws.iter() {
                b.finish_and_clear();
            }
        }
        if let Ok(t) = self.total.lock() {
            if let Some(b) = t.as_ref() {
                b.finish();
            }
        }
        self.print_line(true);
    }
}
