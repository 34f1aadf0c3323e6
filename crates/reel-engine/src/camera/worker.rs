//! One encoder instance on its own thread, so that a hang can be abandoned: the supervisor
//! ([`super::supervisor`]) sends frames, the worker reports what it accepted, and an encoder
//! that stops answering is left behind while its frames go to the next one.

use reel_core::{Error, SharedFrame, VideoFrame};
use reel_media::depth::DepthTable;
use reel_media::{EncoderSettings, EpisodeEncoder};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

/// Frames handed to an encoder worker and not yet accepted by it.
pub(crate) const IN_FLIGHT: u64 = 4;

pub(crate) enum ToWorker {
    Frame(SharedFrame),
    Finish,
}

pub(crate) enum FromWorker {
    Opened(Arc<AtomicU64>),
    Pushed(u64),
    Failed(Error),
    Finished(reel_core::Result<reel_media::EncodedSegment>),
}

/// The supervisor's handle on one worker thread.
pub(crate) struct Worker {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) tx: crossbeam_channel::Sender<ToWorker>,
    pub(crate) rx: crossbeam_channel::Receiver<FromWorker>,
    /// Index (within the episode) of the first frame given to this worker.
    pub(crate) base: u64,
    pub(crate) sent: u64,
    pub(crate) pushed: u64,
    /// Frames the encoder has written as complete fragments (set once it opened).
    pub(crate) confirmed: Option<Arc<AtomicU64>>,
    pub(crate) last_progress: Instant,
    pub(crate) finishing: Option<Instant>,
}

/// Starts a worker that opens `settings` at `path` and encodes what it is sent; `base` is the
/// episode index of its first frame. With `depth`, frames are uint16 millimetres, quantised
/// by the table and encoded as 12-bit codes.
pub(crate) fn spawn_worker(
    path: PathBuf,
    width: u32,
    height: u32,
    fps: u32,
    settings: EncoderSettings,
    base: u64,
    depth: Option<Arc<DepthTable>>,
) -> Worker {
    let (tx, wrx) = crossbeam_channel::unbounded::<ToWorker>();
    let (wtx, rx) = crossbeam_channel::unbounded::<FromWorker>();
    let name = match &settings.fault {
        Some(f) => format!("{} (injected fault {f:?})", settings.vcodec),
        None => settings.vcodec.clone(),
    };
    let p = path.clone();
    let spawned = std::thread::Builder::new()
        .name("encoder-worker".into())
        .spawn(move || {
            reel_core::sched::set_current(reel_core::sched::ENCODER);
            let opened = match depth {
                Some(_) => EpisodeEncoder::create_depth(&p, width, height, fps, &settings),
                None => EpisodeEncoder::create(&p, width, height, fps, &settings),
            };
            let mut enc = match opened {
                Ok(e) => e,
                Err(e) => {
                    let _ = wtx.send(FromWorker::Failed(e.context("open")));
                    return;
                }
            };
            let _ = wtx.send(FromWorker::Opened(enc.confirmed_frames()));
            let mut n = 0u64;
            let (mut mm, mut codes) = (Vec::new(), Vec::new());
            for msg in wrx.iter() {
                match msg {
                    ToWorker::Frame(f) => {
                        match push(&mut enc, &f, depth.as_deref(), &mut mm, &mut codes) {
                            Ok(()) => {
                                n += 1;
                                let _ = wtx.send(FromWorker::Pushed(n));
                            }
                            Err(e) => {
                                let _ =
                                    wtx.send(FromWorker::Failed(e.context(format!("frame {n}"))));
                                return;
                            }
                        }
                    }
                    ToWorker::Finish => {
                        let _ = wtx.send(FromWorker::Finished(enc.finish()));
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        // The supervisor sees the channel disconnect and moves on to the next encoder.
        tracing::error!("cannot spawn an encoder worker: {e}");
    }
    Worker {
        name,
        path,
        tx,
        rx,
        base,
        sent: 0,
        pushed: 0,
        confirmed: None,
        last_progress: Instant::now(),
        finishing: None,
    }
}

/// Encodes one frame: RGB as it is, a depth frame's millimetres quantised into 12-bit codes
/// (`mm` and `codes` are scratch buffers reused between frames).
fn push(
    enc: &mut EpisodeEncoder,
    f: &VideoFrame,
    depth: Option<&DepthTable>,
    mm: &mut Vec<u16>,
    codes: &mut Vec<u16>,
) -> reel_core::Result<()> {
    let Some(table) = depth else {
        return enc.push(f);
    };
    mm.clear();
    mm.extend(
        f.data
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]])),
    );
    table.quantize_into(mm, codes);
    enc.push_gray12(codes)
}
