//! The encoder thread of one camera: takes the queue's entries in order (memory frames,
//! spilled frames read back, end-of-episode and discard markers), hands frames to the
//! [`Supervisor`], and sends each finished episode's [`SegmentResult`] to the committer.
//! Back-pressure stays here: a new entry is taken only when the worker has room, so frames
//! wait in the memory queue or the spill while the watchdog keeps running. An abort (stop
//! now) drops what is queued and ends the thread.

use super::queue::{Entry, Queue, SpillReader};
use super::supervisor::{Episode, Supervisor};
use super::{CameraCounters, SegmentResult};
use crossbeam_channel::Sender;
use reel_core::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs until a `Shutdown` entry (or the committer hangs up); removes the spill file at the end.
pub(crate) fn encoder_loop(
    sup: Supervisor<'_>,
    spill: SpillReader,
    queue: Arc<Queue>,
    counters: Arc<CameraCounters>,
    abort: Arc<AtomicBool>,
    results: Sender<Result<SegmentResult>>,
) {
    let path = spill.path().to_path_buf();
    run(sup, spill, queue, counters, abort, results);
    let _ = std::fs::remove_file(path);
}

fn run(
    mut sup: Supervisor<'_>,
    mut spill: SpillReader,
    queue: Arc<Queue>,
    counters: Arc<CameraCounters>,
    abort: Arc<AtomicBool>,
    results: Sender<Result<SegmentResult>>,
) {
    let key = sup.key.to_string();
    let mut current: Option<Episode> = None;
    loop {
        if abort.load(Ordering::SeqCst) {
            if let Some(mut ep) = current.take() {
                sup.abandon(&mut ep);
            }
            return;
        }
        if let Some(ep) = current.as_mut() {
            if ep.worker_busy() {
                let _ = sup.poll(ep, Duration::from_millis(50));
                continue;
            }
            if ep.worker.is_some() {
                let _ = sup.poll(ep, Duration::ZERO);
            }
        }
        let Some(entry) = queue.take(Duration::from_millis(50)) else {
            if let Some(ep) = current.as_mut() {
                let _ = sup.poll(ep, Duration::ZERO);
            }
            continue;
        };
        let entry = match spill.frame_of(entry, &queue, &counters) {
            Ok(frame) => {
                let ep = current.get_or_insert_with(|| sup.new_episode());
                match frame {
                    Ok(f) => sup.add_frame(ep, f),
                    Err(e) => ep.lost_frame(
                        e.context(format!("camera {key}: reading a spilled frame back")),
                    ),
                }
                continue;
            }
            Err(marker) => marker,
        };
        match entry {
            // Frames were handled above.
            Entry::Mem(_) | Entry::Disk { .. } => {}
            Entry::End(seq) => {
                let (spilled, max_depth) = queue.take_episode_figures();
                let res = match current.take() {
                    Some(ep) => sup.finish(ep, seq, spilled, max_depth),
                    None => Err(Error::encoder(
                        key.as_str(),
                        format!("episode {seq} has no frames"),
                    )),
                };
                if let Ok(r) = &res {
                    counters
                        .encoded_total
                        .fetch_add(r.frames, Ordering::Relaxed);
                }
                if results.send(res).is_err() {
                    return;
                }
            }
            // Only final lanes give episodes up; the live lane never does.
            Entry::Abandon => {}
            Entry::Discard => {
                if let Some(mut ep) = current.take() {
                    sup.abandon(&mut ep);
                }
                queue.reset_episode_spill();
            }
            Entry::Shutdown => {
                if let Some(mut ep) = current.take() {
                    sup.abandon(&mut ep);
                }
                return;
            }
        }
    }
}
