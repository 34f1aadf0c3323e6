//! [`DemoRecorder`]: owns the mux thread (camera sampling by the wall clock, compositing, H.264 +
//! AAC encoding, MP4 muxing) and the audio thread, and finalizes the file on stop within a
//! deadline. The file is written as `<output>.partial` and renamed only after its trailer is
//! written; a failed recording removes it, so no 0-byte or index-less file looks like a video.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use ff::format::Sample;
use ff::{ChannelLayout, Rational};
use ffmpeg_next as ff;
use reel_core::{monotonic_ns, Error, Result, SharedFrame, VideoFrame};

use crate::audio::{self, AudioChunk, AudioMsg, OUT_RATE};
use crate::compositor::{Compositor, Plan};
use crate::config::DemoConfig;
use crate::source::FrameSource;

/// Per-camera counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraDemoStats {
    pub name: String,
    /// Output frames that showed a frame of this camera not shown before.
    pub new_frames: u64,
    /// Output frames that repeated this camera's previous frame (or showed black before its
    /// first frame) because it had nothing newer: the camera fell behind or stalled.
    pub repeated_frames: u64,
}

/// What the recorder did so far (or in total, from [`DemoRecorder::stop`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoStats {
    /// Composited frames sent to the video encoder.
    pub frames_written: u64,
    /// One entry per camera passed to `start`, in order (cameras the layout hides stay at 0).
    pub cameras: Vec<CameraDemoStats>,
    /// Audio samples (per channel, at `audio_sample_rate`) sent to the AAC encoder.
    pub audio_samples: u64,
    pub audio_sample_rate: u32,
    /// Silence inserted where the input had no audio (gaps, the end of a file, the tail at stop).
    pub audio_padded_samples: u64,
    /// Input samples dropped because they fell before `t0`, overlapped, or came after the end.
    pub audio_dropped_samples: u64,
    /// Seconds from `start` to now (or to the stop request).
    pub wall_seconds: f64,
    /// `frames_written / fps`.
    pub video_seconds: f64,
    /// `audio_samples / audio_sample_rate` (0 without audio).
    pub audio_seconds: f64,
    /// Errors met by the recorder threads (an audio input that failed, the fatal error).
    pub errors: Vec<String>,
    /// Frames cut from the end because the encoder was still this far behind the wall clock
    /// when the stop deadline passed (a loaded machine): the file ends early (video and audio
    /// alike) instead of being discarded. 0 when the video covers the whole recording.
    pub frames_cut: u64,
}

struct Shared {
    t0: AtomicU64,
    /// Monotonic ns of the stop request; 0 while recording.
    stop_at: AtomicU64,
    audio_stop: Arc<AtomicBool>,
    stats: Mutex<DemoStats>,
    /// Decides the file's fate once: the mux thread renames it unless `stop` gave up waiting.
    fate: Mutex<Fate>,
    /// Set by `stop` when the deadline passed with frames still to encode: the mux thread
    /// emits no more frames and finalizes what it has.
    cut: AtomicBool,
}

#[derive(Default)]
struct Fate {
    abandoned: bool,
    settled: bool,
}

/// A demo video being recorded. Dropping it without [`DemoRecorder::stop`] asks the threads to
/// finalize the file in the background.
pub struct DemoRecorder {
    shared: Arc<Shared>,
    mux: Option<JoinHandle<()>>,
    done_rx: Receiver<Result<DemoStats>>,
    output: PathBuf,
    partial: PathBuf,
    deadline: Duration,
    fps: u32,
}

fn partial_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

impl DemoRecorder {
    /// Opens `<cfg.output>.partial` and the audio input, then starts the mux thread (samples the
    /// latest frame of each camera at `fps` by the wall clock, repeating a camera's last frame
    /// when it has no new one) and the audio thread. Cameras are shared with the caller.
    pub fn start(cameras: Vec<Arc<dyn FrameSource>>, cfg: DemoConfig) -> Result<DemoRecorder> {
        cfg.validate(cameras.len())?;
        ff::init().map_err(|e| Error::media("FFmpeg init", e))?;
        let partial = partial_path(&cfg.output);
        if partial.to_str().map(|s| s.contains('\0')).unwrap_or(true) {
            return Err(Error::invalid(format!(
                "output path {} must be valid UTF-8 without NUL bytes (FFmpeg takes it as a string)",
                cfg.output.display()
            )));
        }
        if cfg.output.is_dir() || cfg.output.file_name().is_none() {
            return Err(Error::invalid(format!(
                "output {} is a folder: give the MP4's file name (e.g. {}/demo.mp4)",
                cfg.output.display(),
                cfg.output.display()
            )));
        }
        if let Some(parent) = cfg.output.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(Error::invalid(format!(
                    "output directory {} does not exist",
                    parent.display()
                )));
            }
        }
        let audio_stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            t0: AtomicU64::new(0),
            stop_at: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            audio_stop: audio_stop.clone(),
            stats: Mutex::new(DemoStats {
                cameras: cameras
                    .iter()
                    .map(|c| CameraDemoStats {
                        name: c.name().to_string(),
                        ..Default::default()
                    })
                    .collect(),
                audio_sample_rate: if cfg.audio.is_some() { OUT_RATE } else { 0 },
                ..Default::default()
            }),
            fate: Mutex::new(Fate::default()),
        });

        let (audio_tx, audio_rx) = crossbeam_channel::unbounded::<AudioMsg>();
        let (t0_audio_tx, t0_audio_rx) = crossbeam_channel::bounded::<u64>(1);
        let audio_live = cfg.audio.as_ref().map(|a| a.is_live()).unwrap_or(false);
        let audio_rx = match &cfg.audio {
            Some(input) => {
                audio::spawn(input.clone(), audio_stop.clone(), t0_audio_rx, audio_tx)?;
                Some(audio_rx)
            }
            None => None,
        };

        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<()>>(1);
        let (t0_tx, t0_rx) = crossbeam_channel::bounded::<u64>(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<Result<DemoStats>>(1);
        let (deadline, fps, output) = (cfg.stop_deadline, cfg.fps, cfg.output.clone());
        let thread_shared = shared.clone();
        let thread_partial = partial.clone();
        let mux = std::thread::Builder::new()
            .name("reel-demo-mux".into())
            .spawn(move || {
                mux_main(MuxArgs {
                    cameras,
                    cfg,
                    partial: thread_partial,
                    audio_rx,
                    audio_live,
                    shared: thread_shared,
                    ready_tx,
                    t0_rx,
                    done_tx,
                })
            })
            .map_err(|e| {
                audio_stop.store(true, Ordering::SeqCst);
                Error::media("demo recorder", format!("cannot start mux thread: {e}"))
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                audio_stop.store(true, Ordering::SeqCst);
                let _ = mux.join();
                return Err(e);
            }
            Err(_) => {
                audio_stop.store(true, Ordering::SeqCst);
                let _ = mux.join();
                let _ = std::fs::remove_file(&partial);
                return Err(Error::media(
                    "demo recorder",
                    "mux thread died while opening the output",
                ));
            }
        }
        let t0 = monotonic_ns();
        shared.t0.store(t0, Ordering::SeqCst);
        // Both receivers are alive: the threads are waiting for exactly this value.
        let _ = t0_audio_tx.send(t0);
        let _ = t0_tx.send(t0);
        tracing::info!("demo video recording to {}", output.display());
        Ok(DemoRecorder {
            shared,
            mux: Some(mux),
            done_rx,
            output,
            partial,
            deadline,
            fps,
        })
    }

    /// Counters so far; `errors` holds anything a recorder thread reported.
    pub fn stats(&self) -> DemoStats {
        let mut s = lock(&self.shared.stats).clone();
        let t0 = self.shared.t0.load(Ordering::SeqCst);
        let end = match self.shared.stop_at.load(Ordering::SeqCst) {
            0 => monotonic_ns(),
            stop => stop,
        };
        s.wall_seconds = end.saturating_sub(t0) as f64 / 1e9;
        s
    }

    /// The fatal error of the mux thread, if it already failed (the recording is then lost and
    /// [`DemoRecorder::stop`] returns that error).
    pub fn failed(&self) -> Option<String> {
        let s = lock(&self.shared.stats);
        if self.mux.as_ref().map(|h| h.is_finished()).unwrap_or(true) && !s.errors.is_empty() {
            s.errors.last().cloned()
        } else {
            None
        }
    }

    /// The frame rate the video is written at.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// The monotonic instant (ns, [`reel_core::monotonic_ns`]) that is time 0 of the video and
    /// the audio.
    pub fn t0_ns(&self) -> u64 {
        self.shared.t0.load(Ordering::SeqCst)
    }

    /// Stops within `stop_deadline` even though a live audio input never ends, writes the
    /// trailer and renames `<output>.partial` to `output`. Returns the final stats, or the error
    /// that happened in a recorder thread (the partial file is then removed).
    pub fn stop(mut self) -> Result<DemoStats> {
        let asked = Instant::now();
        let _ = self.shared.stop_at.compare_exchange(
            0,
            monotonic_ns().max(1),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        let mut waited = self.done_rx.recv_timeout(self.deadline);
        if matches!(waited, Err(RecvTimeoutError::Timeout)) {
            // Still encoding what was recorded (the encoder fell behind the wall clock): cut the
            // video where the encoder is rather than lose it. What is left (flushing the
            // encoder, the audio up to the video's end, the trailer) is bounded work; a second
            // deadline guards against a thread that is truly stuck.
            self.shared.cut.store(true, Ordering::SeqCst);
            waited = self.done_rx.recv_timeout(self.deadline);
        }
        let result = match waited {
            Ok(r) => {
                if let Some(h) = self.mux.take() {
                    let _ = h.join();
                }
                r
            }
            Err(RecvTimeoutError::Timeout) => {
                let mut fate = lock(&self.shared.fate);
                if fate.settled {
                    drop(fate);
                    self.done_rx.recv().unwrap_or_else(|_| {
                        Err(Error::media("demo recorder", "mux thread vanished"))
                    })
                } else {
                    fate.abandoned = true;
                    Err(Error::media(
                        "demo recorder",
                        format!(
                            "could not finalize {} within {:?} (twice {:?}: encoding, then the cut \
                             file's trailer); the recording was discarded",
                            self.output.display(),
                            self.deadline * 2,
                            self.deadline
                        ),
                    ))
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = std::fs::remove_file(&self.partial);
                Err(Error::media(
                    "demo recorder",
                    "mux thread panicked; the recording was discarded",
                ))
            }
        };
        self.shared.audio_stop.store(true, Ordering::SeqCst);
        match &result {
            Ok(s) => tracing::info!(
                "demo video {}: {} frames ({:.2} s video, {:.2} s audio, {:.2} s wall), stopped in {:?}",
                self.output.display(),
                s.frames_written,
                s.video_seconds,
                s.audio_seconds,
                s.wall_seconds,
                asked.elapsed()
            ),
            Err(e) => tracing::error!("demo video {}: {e}", self.output.display()),
        }
        result
    }
}

impl Drop for DemoRecorder {
    fn drop(&mut self) {
        let _ = self.shared.stop_at.compare_exchange(
            0,
            monotonic_ns().max(1),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct MuxArgs {
    cameras: Vec<Arc<dyn FrameSource>>,
    cfg: DemoConfig,
    partial: PathBuf,
    audio_rx: Option<Receiver<AudioMsg>>,
    audio_live: bool,
    shared: Arc<Shared>,
    ready_tx: Sender<Result<()>>,
    t0_rx: Receiver<u64>,
    done_tx: Sender<Result<DemoStats>>,
}

fn mux_main(a: MuxArgs) {
    let mut muxer = match Muxer::open(&a.cfg, &a.partial) {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&a.partial);
            let _ = a.ready_tx.send(Err(e));
            return;
        }
    };
    let _ = a.ready_tx.send(Ok(()));
    let Ok(t0) = a.t0_rx.recv() else {
        drop(muxer);
        let _ = std::fs::remove_file(&a.partial);
        return;
    };
    let output = a.cfg.output.clone();
    let mut run = Run::new(&a, t0);
    let result = run.record(&mut muxer).and_then(|()| run.finish(&mut muxer));
    a.shared.audio_stop.store(true, Ordering::SeqCst);
    drop(muxer);
    let result = match result {
        Ok(()) => {
            let mut fate = lock(&a.shared.fate);
            if fate.abandoned {
                let _ = std::fs::remove_file(&a.partial);
                Err(Error::media(
                    "demo recorder",
                    "finalized after the stop deadline; discarded",
                ))
            } else {
                fate.settled = true;
                std::fs::rename(&a.partial, &output)
                    .map_err(|e| Error::io("rename demo video to", &output, e))
                    .map(|()| run.stats(&a.shared))
            }
        }
        Err(e) => {
            tracing::error!("demo recorder thread failed: {e}");
            lock(&a.shared.stats).errors.push(e.to_string());
            lock(&a.shared.fate).settled = true;
            if let Err(rm) = std::fs::remove_file(&a.partial) {
                if rm.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!("cannot remove {}: {rm}", a.partial.display());
                }
            }
            Err(e)
        }
    };
    if let Err(e) = &result {
        let mut s = lock(&a.shared.stats);
        if !s.errors.iter().any(|x| *x == e.to_string()) {
            s.errors.push(e.to_string());
        }
    }
    let _ = a.done_tx.send(result);
}

/// The output file and its two encoders.
struct Muxer {
    octx: ff::format::context::Output,
    venc: ff::encoder::Video,
    vidx: usize,
    venc_tb: Rational,
    vost_tb: Rational,
    audio: Option<AudioOut>,
}

struct AudioOut {
    enc: ff::encoder::Audio,
    idx: usize,
    ost_tb: Rational,
    frame_size: usize,
}

/// ORs GLOBAL_HEADER into the codec flags without erasing the encoder's defaults
/// (media-stack.md §5.1).
fn add_global_header(ctx: &mut ff::codec::context::Context) {
    // SAFETY: reading a plain int field of the context we own.
    let cur = unsafe { (*ctx.as_ptr()).flags };
    ctx.set_flags(ff::codec::Flags::from_bits_truncate(cur as _) | ff::codec::Flags::GLOBAL_HEADER);
}

impl Muxer {
    fn open(cfg: &DemoConfig, partial: &Path) -> Result<Muxer> {
        let ctx = format!("demo video {}", partial.display());
        let err = |what: &str, e: ff::Error| Error::media(format!("{ctx}: {what}"), e);
        let mut octx =
            ff::format::output_as(partial, "mp4").map_err(|e| err("cannot create", e))?;
        let global = octx
            .format()
            .flags()
            .contains(ff::format::Flags::GLOBAL_HEADER);

        let vcodec = ff::encoder::find_by_name(&cfg.vcodec)
            .ok_or_else(|| Error::invalid(format!("unknown video encoder {:?}", cfg.vcodec)))?;
        let vidx = octx
            .add_stream(vcodec)
            .map_err(|e| err("add video stream", e))?
            .index();
        let mut vctx = ff::codec::context::Context::new_with_codec(vcodec);
        if global {
            add_global_header(&mut vctx);
        }
        let mut venc = vctx
            .encoder()
            .video()
            .map_err(|e| err("video encoder", e))?;
        let fps = cfg.fps as i32;
        venc.set_width(cfg.width);
        venc.set_height(cfg.height);
        venc.set_format(ff::format::Pixel::YUV420P);
        venc.set_time_base(Rational::new(1, fps));
        venc.set_frame_rate(Some(Rational::new(fps, 1)));
        venc.set_gop(cfg.fps * 2);
        let mut opts = ff::Dictionary::new();
        opts.set("preset", &cfg.preset);
        opts.set("crf", &cfg.crf.to_string());
        let venc = venc
            .open_with(opts)
            .map_err(|e| err(&format!("open {}", cfg.vcodec), e))?;
        {
            let mut ost = octx
                .stream_mut(vidx)
                .ok_or_else(|| Error::media(&ctx, "video stream vanished"))?;
            ost.set_parameters(&venc);
            ost.set_time_base(Rational::new(1, fps));
        }

        let audio = match &cfg.audio {
            None => None,
            Some(_) => {
                let acodec = ff::encoder::find_by_name("aac")
                    .ok_or_else(|| Error::media(&ctx, "FFmpeg has no aac encoder"))?;
                let idx = octx
                    .add_stream(acodec)
                    .map_err(|e| err("add audio stream", e))?
                    .index();
                let mut actx = ff::codec::context::Context::new_with_codec(acodec);
                if global {
                    add_global_header(&mut actx);
                }
                let mut aenc = actx
                    .encoder()
                    .audio()
                    .map_err(|e| err("audio encoder", e))?;
                aenc.set_rate(OUT_RATE as i32);
                aenc.set_channel_layout(ChannelLayout::STEREO);
                aenc.set_channels(2);
                aenc.set_format(Sample::F32(ff::format::sample::Type::Planar));
                aenc.set_bit_rate(cfg.audio_bitrate as usize);
                aenc.set_time_base(Rational::new(1, OUT_RATE as i32));
                let aenc = aenc
                    .open_with(ff::Dictionary::new())
                    .map_err(|e| err("open aac", e))?;
                let frame_size = (aenc.frame_size() as usize).max(1);
                {
                    let mut ost = octx
                        .stream_mut(idx)
                        .ok_or_else(|| Error::media(&ctx, "audio stream vanished"))?;
                    ost.set_parameters(&aenc);
                    ost.set_time_base(Rational::new(1, OUT_RATE as i32));
                }
                Some(AudioOut {
                    enc: aenc,
                    idx,
                    ost_tb: Rational::new(1, OUT_RATE as i32),
                    frame_size,
                })
            }
        };
        octx.write_header().map_err(|e| err("write header", e))?;
        let vost_tb = octx
            .stream(vidx)
            .map(|s| s.time_base())
            .unwrap_or(Rational::new(1, fps));
        let mut audio = audio;
        if let Some(a) = audio.as_mut() {
            a.ost_tb = octx
                .stream(a.idx)
                .map(|s| s.time_base())
                .unwrap_or(a.ost_tb);
        }
        Ok(Muxer {
            octx,
            venc,
            vidx,
            venc_tb: Rational::new(1, fps),
            vost_tb,
            audio,
        })
    }

    fn write_video(&mut self, frame: Option<&ff::frame::Video>) -> Result<()> {
        match frame {
            Some(f) => self.venc.send_frame(f),
            None => self.venc.send_eof(),
        }
        .map_err(|e| Error::media("demo video encoder", e))?;
        let mut pkt = ff::Packet::empty();
        while self.venc.receive_packet(&mut pkt).is_ok() {
            pkt.set_stream(self.vidx);
            if pkt.duration() <= 0 {
                // One frame; otherwise the MP4's last sample gets no duration.
                pkt.set_duration(1);
            }
            pkt.rescale_ts(self.venc_tb, self.vost_tb);
            pkt.write_interleaved(&mut self.octx)
                .map_err(|e| Error::media("demo video: writing packet", e))?;
        }
        Ok(())
    }

    fn write_audio(&mut self, frame: Option<&ff::frame::Audio>) -> Result<()> {
        let Some(a) = self.audio.as_mut() else {
            return Ok(());
        };
        match frame {
            Some(f) => a.enc.send_frame(f),
            None => a.enc.send_eof(),
        }
        .map_err(|e| Error::media("demo audio encoder", e))?;
        let mut pkt = ff::Packet::empty();
        while a.enc.receive_packet(&mut pkt).is_ok() {
            pkt.set_stream(a.idx);
            pkt.rescale_ts(Rational::new(1, OUT_RATE as i32), a.ost_tb);
            pkt.write_interleaved(&mut self.octx)
                .map_err(|e| Error::media("demo audio: writing packet", e))?;
        }
        Ok(())
    }
}

/// One camera as the mux thread tracks it.
struct CamState {
    source: Arc<dyn FrameSource>,
    /// Frames seen and not yet superseded: (content time ns, frame).
    history: VecDeque<(u64, SharedFrame)>,
    last_seen: Option<SharedFrame>,
    shown: Option<SharedFrame>,
    new_frames: u64,
    repeated: u64,
}

/// The state of one recording in the mux thread.
struct Run {
    cfg: DemoConfig,
    shared: Arc<Shared>,
    t0: u64,
    plan: Plan,
    cams: Vec<CamState>,
    compositor: Option<Compositor>,
    /// Output frames emitted to the compositor (ticks).
    ticks: u64,
    frames_written: u64,
    audio_rx: Option<Receiver<AudioMsg>>,
    audio_live: bool,
    audio_ended: bool,
    /// Samples placed in the timeline so far (encoded + pending).
    audio_placed: i64,
    pending: [Vec<f32>; 2],
    audio_pts: i64,
    padded: u64,
    dropped: u64,
    /// Frames not emitted because `stop` cut the video (see `DemoStats::frames_cut`).
    cut: u64,
    errors: Vec<String>,
    placeholder: SharedFrame,
}

impl Run {
    fn new(a: &MuxArgs, t0: u64) -> Run {
        let plan = Plan::new(&a.cfg, a.cameras.len());
        Run {
            cfg: a.cfg.clone(),
            shared: a.shared.clone(),
            t0,
            cams: a
                .cameras
                .iter()
                .map(|s| CamState {
                    source: s.clone(),
                    history: VecDeque::new(),
                    last_seen: None,
                    shown: None,
                    new_frames: 0,
                    repeated: 0,
                })
                .collect(),
            plan,
            compositor: None,
            ticks: 0,
            frames_written: 0,
            cut: 0,
            audio_rx: a.audio_rx.clone(),
            audio_live: a.audio_live,
            audio_ended: a.audio_rx.is_none(),
            audio_placed: 0,
            pending: [Vec::new(), Vec::new()],
            audio_pts: 0,
            padded: 0,
            dropped: 0,
            errors: Vec::new(),
            placeholder: Arc::new(VideoFrame::solid(64, 36, [0, 0, 0])),
        }
    }

    fn frame_ns(&self) -> f64 {
        1e9 / self.cfg.fps as f64
    }

    /// Content time (ns since t0) shown by output frame `n`.
    fn tick_content_ns(&self, n: u64) -> u64 {
        (n as f64 * self.frame_ns()).round() as u64
    }

    fn record(&mut self, muxer: &mut Muxer) -> Result<()> {
        let delay = self.cfg.video_delay.as_nanos() as u64;
        let half = (self.frame_ns() / 2.0) as u64;
        let shared = self.shared.clone();
        loop {
            let now = monotonic_ns();
            self.poll_cameras(now);
            self.pump_audio(muxer, now)?;
            let stop_at = shared.stop_at.load(Ordering::SeqCst);
            if stop_at != 0 {
                let content = stop_at.saturating_sub(self.t0) as f64;
                let final_ticks = (content / self.frame_ns()).ceil() as u64;
                while self.ticks < final_ticks {
                    if shared.cut.load(Ordering::SeqCst) {
                        self.cut = final_ticks - self.ticks;
                        tracing::warn!(
                            "demo video: the encoder was {} frame(s) ({:.1} s) behind at the stop \
                             deadline; the video (and its audio) ends there",
                            self.cut,
                            self.cut as f64 / self.cfg.fps as f64
                        );
                        break;
                    }
                    self.emit(muxer)?;
                }
                return Ok(());
            }
            while self.t0 + delay + self.tick_content_ns(self.ticks) <= now {
                // Behind the wall clock, this catch-up can last seconds: a stop request is
                // looked at between frames (the stop branch above then honours a cut).
                if shared.stop_at.load(Ordering::SeqCst) != 0 {
                    break;
                }
                self.emit(muxer)?;
            }
            self.publish(&shared);
            let next = self.t0 + delay + self.tick_content_ns(self.ticks);
            let wait = next
                .saturating_sub(monotonic_ns())
                .min(half / 2)
                .max(1_000_000);
            std::thread::sleep(Duration::from_nanos(wait));
        }
    }

    fn poll_cameras(&mut self, now: u64) {
        for &c in &self.plan.cameras {
            let cam = &mut self.cams[c];
            let Some(f) = cam.source.latest() else {
                continue;
            };
            if cam
                .last_seen
                .as_ref()
                .map(|l| Arc::ptr_eq(l, &f))
                .unwrap_or(false)
            {
                continue;
            }
            // Content time = capture time, trusted only within [arrival - 1 s, arrival].
            let ts = f.captured_ns.clamp(now.saturating_sub(1_000_000_000), now);
            cam.history
                .push_back((ts.saturating_sub(self.t0), f.clone()));
            while cam.history.len() > 64 {
                cam.history.pop_front();
            }
            cam.last_seen = Some(f);
        }
    }

    /// Composites and encodes the next output frame.
    fn emit(&mut self, muxer: &mut Muxer) -> Result<()> {
        let target = self.tick_content_ns(self.ticks) + (self.frame_ns() / 2.0) as u64;
        let mut frames: Vec<SharedFrame> = Vec::with_capacity(self.plan.cameras.len());
        for &c in &self.plan.cameras {
            let cam = &mut self.cams[c];
            // Newest frame captured no later than the middle of this output frame.
            let pick = cam.history.iter().rposition(|(ts, _)| *ts <= target);
            match pick {
                Some(k) => {
                    cam.history.drain(..k);
                    let f = cam.history[0].1.clone();
                    let is_new = cam
                        .shown
                        .as_ref()
                        .map(|s| !Arc::ptr_eq(s, &f))
                        .unwrap_or(true);
                    if is_new {
                        cam.new_frames += 1;
                    } else {
                        cam.repeated += 1;
                    }
                    cam.shown = Some(f);
                }
                None => cam.repeated += 1,
            }
            frames.push(
                cam.shown
                    .clone()
                    .unwrap_or_else(|| self.placeholder.clone()),
            );
        }
        let sizes: Vec<(u32, u32)> = frames.iter().map(|f| (f.width, f.height)).collect();
        if self
            .compositor
            .as_ref()
            .map(|c| c.sizes() != sizes.as_slice())
            .unwrap_or(true)
        {
            if let Some(mut old) = self.compositor.take() {
                for f in old.finish()? {
                    self.encode_video(muxer, f)?;
                }
            }
            self.compositor = Some(Compositor::new(&self.cfg, &sizes)?);
        }
        let pts = self.ticks as i64;
        self.ticks += 1;
        let refs: Vec<&VideoFrame> = frames.iter().map(|f| f.as_ref()).collect();
        let out = match self.compositor.as_mut() {
            Some(c) => c.push(&refs, pts)?,
            None => return Err(Error::media("demo compositor", "no filter graph")),
        };
        for f in out {
            self.encode_video(muxer, f)?;
        }
        Ok(())
    }

    fn encode_video(&mut self, muxer: &mut Muxer, mut f: ff::frame::Video) -> Result<()> {
        if let Some(d) = self.cfg.slow_frames {
            std::thread::sleep(d);
        }
        if let Some(k) = self.cfg.fail_after_frames {
            if self.frames_written >= k {
                return Err(Error::media(
                    "demo compositor thread",
                    format!("injected failure after {k} frames"),
                ));
            }
        }
        f.set_pts(Some(self.frames_written as i64));
        muxer.write_video(Some(&f))?;
        self.frames_written += 1;
        Ok(())
    }

    /// Samples of audio that belong before output frame `ticks`.
    fn audio_target(&self, ticks: u64) -> i64 {
        (ticks as i128 * OUT_RATE as i128 / self.cfg.fps as i128) as i64
    }

    /// Takes the audio that arrived, places it, and encodes whole AAC frames that lie before
    /// the video written so far.
    fn pump_audio(&mut self, muxer: &mut Muxer, now: u64) -> Result<()> {
        let Some(rx) = self.audio_rx.clone() else {
            return Ok(());
        };
        loop {
            match rx.try_recv() {
                Ok(msg) => self.take_audio(msg),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.audio_ended = true;
                    break;
                }
            }
        }
        if self.audio_ended {
            // Input gone: keep the timeline filled with silence up to shortly before now.
            let upto = (now.saturating_sub(self.t0).saturating_sub(500_000_000) as i128
                * OUT_RATE as i128
                / 1_000_000_000) as i64;
            self.pad_to(upto);
        }
        let limit = self.audio_target(self.ticks);
        self.encode_audio(muxer, limit, false)
    }

    fn take_audio(&mut self, msg: AudioMsg) {
        match msg {
            AudioMsg::Chunk(AudioChunk { pos, planes }) => self.place(pos, planes),
            AudioMsg::End => self.audio_ended = true,
            AudioMsg::Failed(e) => {
                self.audio_ended = true;
                self.errors.push(e);
            }
        }
    }

    fn place(&mut self, pos: i64, planes: [Vec<f32>; 2]) {
        let n = planes[0].len() as i64;
        let mut skip = 0i64;
        if pos > self.audio_placed {
            self.pad_to(pos);
        } else if pos < self.audio_placed {
            skip = (self.audio_placed - pos).min(n);
            self.dropped += skip as u64;
        }
        let [l, r] = planes;
        self.pending[0].extend_from_slice(&l[skip as usize..]);
        self.pending[1].extend_from_slice(&r[skip as usize..]);
        self.audio_placed += n - skip;
    }

    fn pad_to(&mut self, upto: i64) {
        if upto > self.audio_placed {
            let k = (upto - self.audio_placed) as usize;
            self.pending[0].resize(self.pending[0].len() + k, 0.0);
            self.pending[1].resize(self.pending[1].len() + k, 0.0);
            self.padded += k as u64;
            self.audio_placed = upto;
        }
    }

    /// Encodes pending audio up to timeline sample `limit`: whole frames only, unless `last`.
    fn encode_audio(&mut self, muxer: &mut Muxer, limit: i64, last: bool) -> Result<()> {
        let Some(fs) = muxer.audio.as_ref().map(|a| a.frame_size) else {
            return Ok(());
        };
        loop {
            let avail = self.pending[0]
                .len()
                .min((limit - self.audio_pts).max(0) as usize);
            let n = if avail >= fs {
                fs
            } else if last && avail > 0 {
                avail
            } else {
                return Ok(());
            };
            let mut f = ff::frame::Audio::new(
                Sample::F32(ff::format::sample::Type::Planar),
                n,
                ChannelLayout::STEREO,
            );
            f.set_rate(OUT_RATE);
            for ch in 0..2 {
                let src: Vec<f32> = self.pending[ch].drain(..n).collect();
                f.plane_mut::<f32>(ch)[..n].copy_from_slice(&src);
            }
            f.set_pts(Some(self.audio_pts));
            muxer.write_audio(Some(&f))?;
            self.audio_pts += n as i64;
        }
    }

    /// After the last tick: completes the audio to the video's length, flushes both encoders
    /// and writes the trailer.
    fn finish(&mut self, muxer: &mut Muxer) -> Result<()> {
        if let Some(mut c) = self.compositor.take() {
            for f in c.finish()? {
                self.encode_video(muxer, f)?;
            }
        }
        muxer.write_video(None)?;
        if muxer.audio.is_some() {
            let target = self.audio_target(self.frames_written);
            // A live input delivers the last moments a little late: wait briefly for them.
            let wait_until =
                Instant::now() + Duration::from_millis(if self.audio_live { 150 } else { 0 });
            if let Some(rx) = self.audio_rx.clone() {
                loop {
                    if self.audio_ended || self.audio_placed >= target {
                        break;
                    }
                    let left = wait_until.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(msg) => self.take_audio(msg),
                        Err(_) => break,
                    }
                }
                while let Ok(msg) = rx.try_recv() {
                    self.take_audio(msg);
                }
            }
            self.pad_to(target);
            // Anything past the video's end is cut.
            let keep = (target - self.audio_pts).max(0) as usize;
            for ch in 0..2 {
                if self.pending[ch].len() > keep {
                    self.dropped += if ch == 0 {
                        (self.pending[ch].len() - keep) as u64
                    } else {
                        0
                    };
                    self.pending[ch].truncate(keep);
                }
            }
            self.encode_audio(muxer, target, true)?;
            muxer.write_audio(None)?;
        }
        muxer
            .octx
            .write_trailer()
            .map_err(|e| Error::media("demo video: writing trailer", e))?;
        Ok(())
    }

    fn publish(&self, shared: &Shared) {
        let mut s = lock(&shared.stats);
        self.fill(&mut s);
    }

    fn fill(&self, s: &mut DemoStats) {
        s.frames_written = self.frames_written;
        for (i, c) in self.cams.iter().enumerate() {
            if let Some(cs) = s.cameras.get_mut(i) {
                cs.new_frames = c.new_frames;
                cs.repeated_frames = c.repeated;
            }
        }
        s.audio_samples = self.audio_pts.max(0) as u64;
        s.audio_padded_samples = self.padded;
        s.audio_dropped_samples = self.dropped;
        s.frames_cut = self.cut;
        s.video_seconds = self.frames_written as f64 / self.cfg.fps as f64;
        s.audio_seconds = if s.audio_sample_rate > 0 {
            s.audio_samples as f64 / s.audio_sample_rate as f64
        } else {
            0.0
        };
        for e in &self.errors {
            if !s.errors.contains(e) {
                s.errors.push(e.clone());
            }
        }
    }

    fn stats(&self, shared: &Shared) -> DemoStats {
        let mut s = lock(&shared.stats);
        self.fill(&mut s);
        let stop = shared.stop_at.load(Ordering::SeqCst);
        s.wall_seconds = stop.saturating_sub(self.t0) as f64 / 1e9;
        s.clone()
    }
}
