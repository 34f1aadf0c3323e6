//! Probe by opening, not by name (issue 3 item 1): `--vcodec auto` tries every candidate
//! encoder — hardware first (nvenc, vaapi, qsv, v4l2m2m, videotoolbox), then software — by
//! really opening it at the configured size and pixel format and encoding + flushing a few
//! frames in a helper thread under a deadline (a hung open is abandoned). Verdicts are cached
//! per machine and request in JSON, invalidated when the FFmpeg version or the GPU device set
//! changes. Also the capacity rule ([`can_keep_up`]) that decides live vs deferred AV1.

use crate::encoder::{partial_path, EpisodeEncoder};
use crate::settings::EncoderSettings;
use ffmpeg_next as ff;
use reel_core::{Error, Result, VideoFrame};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What the recorder will ask of the encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Pixel format fed to the encoder ("yuv420p").
    pub pix_fmt: String,
    /// Codec families in preference order: "av1", "hevc", "h264" ("h265" = "hevc").
    pub families: Vec<String>,
}

impl ProbeRequest {
    /// A request for `families` (preference order) at `width`x`height`, `fps`, yuv420p.
    pub fn new(width: u32, height: u32, fps: u32, families: &[&str]) -> ProbeRequest {
        ProbeRequest {
            width,
            height,
            fps,
            pix_fmt: "yuv420p".into(),
            families: families.iter().map(|f| f.to_string()).collect(),
        }
    }
}

/// Share of an encoder's measured speed kept free for the control loop and capture when
/// deciding whether it keeps up live (see [`can_keep_up`]).
pub const HEADROOM: f64 = 0.3;

/// The outcome of probing one encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// Opened, encoded and flushed; `fps` = frames per second measured at the requested size.
    Works { fps: f64 },
    /// This FFmpeg build has no such encoder.
    NotCompiled,
    /// Compiled in but unusable here; why (open error, "timed out after 2 s", ...).
    Rejected(String),
}

/// One candidate encoder and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// FFmpeg encoder name, e.g. "h264_nvenc".
    pub name: String,
    /// "av1", "hevc" or "h264".
    pub family: String,
    pub hardware: bool,
    pub verdict: Verdict,
    /// True when the verdict came from the cache.
    pub cached: bool,
}

/// Hardware back-ends in the order they are tried.
const HW_BACKENDS: [&str; 5] = ["nvenc", "vaapi", "qsv", "v4l2m2m", "videotoolbox"];

/// Frames every probe must encode and flush.
const PROBE_FRAMES: u64 = 10;
/// Most frames a probe encodes to measure speed.
const PROBE_MAX_FRAMES: u64 = 60;

fn family_of(f: &str) -> Option<&'static str> {
    match f.trim().to_ascii_lowercase().as_str() {
        "av1" => Some("av1"),
        "hevc" | "h265" => Some("hevc"),
        "h264" | "avc" => Some("h264"),
        _ => None,
    }
}

fn software_for(family: &str) -> &'static [&'static str] {
    match family {
        "av1" => &["libsvtav1", "libaom-av1"],
        "hevc" => &["libx265"],
        "h264" => &["libx264"],
        _ => &[],
    }
}

/// Every candidate for `req`, in the order they are tried: hardware first, back-end by
/// back-end (nvenc, vaapi, qsv, v4l2m2m, videotoolbox), each in the requested family order
/// (`av1_nvenc`, `hevc_nvenc`, `h264_nvenc`, `av1_vaapi`, ...), then software in family
/// order (libsvtav1, libaom-av1, libx265, libx264). Unknown families are skipped.
pub fn candidates(req: &ProbeRequest) -> Vec<(String, String, bool)> {
    let mut fams: Vec<&'static str> = Vec::new();
    for f in &req.families {
        if let Some(f) = family_of(f) {
            if !fams.contains(&f) {
                fams.push(f);
            }
        }
    }
    let mut out = Vec::new();
    for b in HW_BACKENDS {
        for f in &fams {
            out.push((format!("{f}_{b}"), f.to_string(), true));
        }
    }
    for f in &fams {
        for s in software_for(f) {
            out.push((s.to_string(), f.to_string(), false));
        }
    }
    out
}

/// Where verdicts are cached: `$XDG_CACHE_HOME/reel/encoders.json`, else
/// `~/.cache/reel/encoders.json` (a relative `.cache/...` when neither is set).
pub fn default_cache_path() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("reel").join("encoders.json")
}

/// What a cached verdict depends on besides the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Machine {
    ffmpeg: String,
    devices: Vec<String>,
}

impl Machine {
    fn current() -> Machine {
        crate::init();
        // SAFETY: av_version_info returns a static NUL-terminated string (or null).
        let info = unsafe {
            let p = ff::ffi::av_version_info();
            if p.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        // SAFETY: a plain version getter.
        let avcodec = unsafe { ff::ffi::avcodec_version() };
        Machine {
            // The probe's content is part of the key: new content, new measurements.
            // The built-in SVT-AV1 too: another version, new measurements.
            ffmpeg: format!(
                "{info} avcodec {avcodec} {} probe-content-2",
                crate::encoder_display_name("libsvtav1")
            ),
            devices: device_set(),
        }
    }
}

/// Names under /dev/dri and /dev/nvidia*, sorted.
fn device_set() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/dev/dri") {
        for e in rd.flatten() {
            out.push(format!("dri/{}", e.file_name().to_string_lossy()));
        }
    }
    if let Ok(rd) = std::fs::read_dir("/dev") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("nvidia") {
                out.push(n);
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedCandidate {
    name: String,
    family: String,
    hardware: bool,
    verdict: Verdict,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheEntry {
    machine: Machine,
    request: ProbeRequest,
    candidates: Vec<CachedCandidate>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CacheFile {
    entries: Vec<CacheEntry>,
}

fn load_cache(path: &Path) -> CacheFile {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!("ignoring unreadable encoder cache {}: {e}", path.display());
            CacheFile::default()
        }),
        Err(_) => CacheFile::default(),
    }
}

fn store_cache(path: &Path, file: &CacheFile) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    }
    let bytes = serde_json::to_vec_pretty(file)
        .map_err(|e| Error::invalid(format!("encoder cache: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
}

/// Opens one encoder for real and measures it: (encoder name, request, time budget, the
/// probe's control) → frames per second.
type Opener =
    Arc<dyn Fn(&str, &ProbeRequest, Duration, &ProbeControl) -> Result<f64> + Send + Sync>;

/// Shared between a probe thread and the caller waiting for it: the frames the encoder has
/// taken so far, and the caller's word that the deadline has passed. A probe that is merely
/// slow (libaom-av1, libx265 at 640×480 on a small machine) stops at its next frame instead
/// of encoding on beside the session it was probing for; only a call that blocks inside
/// the encoder (a hung hardware open) runs on, abandoned.
#[derive(Debug, Default)]
struct ProbeControl {
    cancel: AtomicBool,
    frames: AtomicU64,
}

impl ProbeControl {
    /// Whether the waiting side has given up on this probe.
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    /// Counts one frame taken by the encoder.
    fn frame_done(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

/// Runs `open` in a helper thread; at `deadline` the probe is told to stop (see
/// [`ProbeControl`]) and rejected, as too slow when it had encoded frames, as timed out when
/// it had not.
fn run_with_deadline(open: &Opener, name: &str, req: &ProbeRequest, deadline: Duration) -> Verdict {
    let (tx, rx) = mpsc::channel();
    let (open, n, r) = (open.clone(), name.to_string(), req.clone());
    let ctl = Arc::new(ProbeControl::default());
    let thread_ctl = ctl.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("probe-{name}"))
        .spawn(move || {
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                open(&n, &r, deadline, &thread_ctl)
            }));
            let _ = tx.send(res);
        });
    if let Err(e) = spawned {
        return Verdict::Rejected(format!("could not start a probe thread: {e}"));
    }
    match rx.recv_timeout(deadline) {
        Ok(Ok(Ok(fps))) if fps.is_finite() && fps > 0.0 => Verdict::Works { fps },
        Ok(Ok(Ok(fps))) => Verdict::Rejected(format!("measured a bad speed ({fps} frames/s)")),
        Ok(Ok(Err(e))) => Verdict::Rejected(e.to_string()),
        Ok(Err(_)) => Verdict::Rejected("the probe panicked".into()),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            ctl.cancel.store(true, Ordering::Release);
            match ctl.frames() {
                0 => Verdict::Rejected(format!("timed out after {} s", fmt_secs(deadline))),
                n => Verdict::Rejected(format!(
                    "too slow: {n} frame(s) in the {} s probe, fewer than the {PROBE_FRAMES} it needs",
                    fmt_secs(deadline)
                )),
            }
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Verdict::Rejected("the probe thread died".into())
        }
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s:.1}")
    }
}

/// The probe with every dependency injected (candidates, compiled-in test, opener,
/// machine identity), so that tests can use fakes without FFmpeg.
fn probe_inner(
    cands: &[(String, String, bool)],
    req: &ProbeRequest,
    deadline: Duration,
    cache: Option<&Path>,
    machine: &Machine,
    compiled: &dyn Fn(&str) -> bool,
    open: &Opener,
) -> Vec<Candidate> {
    let mut file = cache.map(load_cache).unwrap_or_default();
    let hit = file
        .entries
        .iter()
        .find(|e| &e.machine == machine && &e.request == req);
    if let Some(hit) = hit {
        let same = hit.candidates.len() == cands.len()
            && hit
                .candidates
                .iter()
                .zip(cands)
                .all(|(c, (n, f, h))| &c.name == n && &c.family == f && c.hardware == *h);
        if same {
            return hit
                .candidates
                .iter()
                .map(|c| Candidate {
                    name: c.name.clone(),
                    family: c.family.clone(),
                    hardware: c.hardware,
                    verdict: c.verdict.clone(),
                    cached: true,
                })
                .collect();
        }
    }
    let out: Vec<Candidate> = cands
        .iter()
        .map(|(name, family, hw)| {
            let verdict = if compiled(name) {
                run_with_deadline(open, name, req, deadline)
            } else {
                Verdict::NotCompiled
            };
            Candidate {
                name: name.clone(),
                family: family.clone(),
                hardware: *hw,
                verdict,
                cached: false,
            }
        })
        .collect();
    if let Some(path) = cache {
        // Entries of another FFmpeg or device set are stale; this request's is replaced.
        file.entries
            .retain(|e| &e.machine == machine && &e.request != req);
        file.entries.push(CacheEntry {
            machine: machine.clone(),
            request: req.clone(),
            candidates: out
                .iter()
                .map(|c| CachedCandidate {
                    name: c.name.clone(),
                    family: c.family.clone(),
                    hardware: c.hardware,
                    verdict: c.verdict.clone(),
                })
                .collect(),
        });
        if let Err(e) = store_cache(path, &file) {
            tracing::warn!("could not write the encoder cache: {e}");
        }
    }
    out
}

fn compiled_in(name: &str) -> bool {
    crate::settings::encoder_available(name)
}

/// The settings a working candidate is used with: LeRobot's defaults for that codec at the
/// requested pixel format.
fn settings_for(name: &str, req: &ProbeRequest) -> EncoderSettings {
    let mut s = EncoderSettings::lerobot_default().with_codec(name);
    s.pix_fmt = req.pix_fmt.clone();
    s
}

/// Checks that an FFmpeg hardware device of `kind` can be created.
fn hw_device(kind: ff::ffi::AVHWDeviceType, what: &str) -> Result<()> {
    let mut dev: *mut ff::ffi::AVBufferRef = std::ptr::null_mut();
    // SAFETY: FFmpeg fills `dev` on success; we unref it right away.
    let res = unsafe {
        ff::ffi::av_hwdevice_ctx_create(&mut dev, kind, std::ptr::null(), std::ptr::null_mut(), 0)
    };
    if res < 0 {
        return Err(Error::media(
            format!("no usable {what} device"),
            ff::Error::from(res),
        ));
    }
    // SAFETY: `dev` is a valid reference we own.
    unsafe { ff::ffi::av_buffer_unref(&mut dev) };
    Ok(())
}

/// Why a hardware encoder probably failed, from the devices present.
fn device_hint(name: &str) -> Option<&'static str> {
    let devices = device_set();
    if name.ends_with("_nvenc") && !devices.iter().any(|d| d.starts_with("nvidia")) {
        return Some("no NVIDIA device (/dev/nvidia* absent)");
    }
    if (name.ends_with("_vaapi") || name.ends_with("_qsv"))
        && !devices.iter().any(|d| d.starts_with("dri/"))
    {
        return Some("no DRM render node (/dev/dri absent)");
    }
    if name.ends_with("_v4l2m2m") {
        let any_video = std::fs::read_dir("/dev").is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("video"))
        });
        if !any_video {
            return Some("no V4L2 device (/dev/video* absent)");
        }
    }
    None
}

static PROBE_SEQ: AtomicU64 = AtomicU64::new(0);

/// The real opener: opens `name` through [`EpisodeEncoder`] at the requested size, encodes
/// and flushes at least [`PROBE_FRAMES`] frames (more, up to [`PROBE_MAX_FRAMES`], while a
/// third of the budget lasts) and returns the frames per second from first frame to flushed
/// file (pipeline latency included, so a conservative figure).
fn open_for_real(
    name: &str,
    req: &ProbeRequest,
    budget: Duration,
    ctl: &ProbeControl,
) -> Result<f64> {
    open_checked(name, req, budget, ctl).map_err(|e| match device_hint(name) {
        Some(h) => Error::invalid(format!("{e}; {h}")),
        None => e,
    })
}

fn open_checked(
    name: &str,
    req: &ProbeRequest,
    budget: Duration,
    ctl: &ProbeControl,
) -> Result<f64> {
    if name.ends_with("_vaapi") {
        hw_device(ff::ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI, "VAAPI")?;
        return Err(Error::invalid(
            "a VAAPI device exists, but VAAPI encoders take hardware frames (hwupload) and reel \
             feeds system-memory frames",
        ));
    }
    if name.ends_with("_qsv") {
        hw_device(ff::ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_QSV, "Intel QSV")?;
    }
    let seq = PROBE_SEQ.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "reel-probe-{}-{seq}-{name}.mp4",
        std::process::id()
    ));
    let res = encode_probe(&path, name, req, budget, ctl);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(partial_path(&path));
    res
}

/// Distinct frames the probe cycles through.
const PROBE_DISTINCT_FRAMES: u64 = 8;

/// A frame that encodes like a camera's: a static textured background (checkerboard and grid
/// lines), a lighting gradient that moves, three moving objects and ±6 of sensor noise.
fn camera_like_frame(width: u32, height: u32, k: u64) -> VideoFrame {
    let (w, h) = (width as usize, height as usize);
    let mut data = vec![0u8; w * h * 3];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (k + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let objects = [
        (0.2, 0.3, 7.0, 3.0),
        (0.6, 0.5, -4.0, 5.0),
        (0.4, 0.7, 5.0, -6.0),
    ];
    for y in 0..h {
        for x in 0..w {
            let checker = if ((x / 16) + (y / 16)) % 2 == 0 {
                70i32
            } else {
                110
            };
            let grid = if x % 64 == 0 || y % 64 == 0 { 60 } else { 0 };
            let light = ((x + y + k as usize * 6) % 256) as i32 / 4;
            let mut v = [
                checker + grid + light,
                checker + light / 2,
                checker + grid / 2 + 20,
            ];
            for (i, (ox, oy, dx, dy)) in objects.iter().enumerate() {
                let cx = (ox * w as f64 + dx * k as f64) as i64;
                let cy = (oy * h as f64 + dy * k as f64) as i64;
                if (x as i64 - cx).abs() < (w as i64 / 12)
                    && (y as i64 - cy).abs() < (h as i64 / 12)
                {
                    v[i] = 230;
                }
            }
            for c in v.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *c = (*c + (seed % 13) as i32 - 6).clamp(0, 255);
            }
            let o = (y * w + x) * 3;
            data[o] = v[0] as u8;
            data[o + 1] = v[1] as u8;
            data[o + 2] = v[2] as u8;
        }
    }
    VideoFrame {
        width,
        height,
        data,
        captured_ns: 0,
        seq: k,
    }
}

fn encode_probe(
    path: &Path,
    name: &str,
    req: &ProbeRequest,
    budget: Duration,
    ctl: &ProbeControl,
) -> Result<f64> {
    let settings = settings_for(name, req);
    let mut enc = EpisodeEncoder::create(path, req.width, req.height, req.fps, &settings)?;
    // Camera-like content, prepared before the clock starts: smooth gradients alone make
    // SVT-AV1 look twice as fast as it is on real footage (182 vs ~80 frames/s here).
    let frames: Vec<VideoFrame> = (0..PROBE_DISTINCT_FRAMES)
        .map(|k| camera_like_frame(req.width, req.height, k))
        .collect();
    let t = Instant::now();
    let mut n = 0u64;
    while n < PROBE_FRAMES || (n < PROBE_MAX_FRAMES && t.elapsed() < budget / 3) {
        if ctl.cancelled() {
            return Err(Error::invalid(format!(
                "probe stopped at its deadline after {n} frame(s)"
            )));
        }
        enc.push(&frames[n as usize % frames.len()])?;
        ctl.frame_done();
        n += 1;
    }
    let seg = enc.finish()?;
    if seg.frames != n {
        return Err(Error::invalid(format!(
            "{} of {n} frames came out after the flush",
            seg.frames
        )));
    }
    Ok(n as f64 / t.elapsed().as_secs_f64().max(1e-9))
}

/// Probes every candidate of `req` by opening it for real (see the module doc), each under
/// `deadline`, with verdicts read from / written to the JSON `cache` when given.
pub fn probe(req: &ProbeRequest, deadline: Duration, cache: Option<&Path>) -> Vec<Candidate> {
    crate::init();
    let open: Opener = Arc::new(open_for_real);
    // Expected failures (no driver, no device) would print FFmpeg errors: quiet while probing.
    ff::log::set_level(ff::log::Level::Fatal);
    let out = probe_inner(
        &candidates(req),
        req,
        deadline,
        cache,
        &Machine::current(),
        &compiled_in,
        &open,
    );
    ff::log::set_level(ff::log::Level::Error);
    out
}

fn working_settings(found: &[Candidate], req: &ProbeRequest) -> Result<Vec<EncoderSettings>> {
    let ok: Vec<EncoderSettings> = found
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Works { .. }))
        .map(|c| settings_for(&c.name, req))
        .collect();
    if ok.is_empty() {
        let why: Vec<String> = found
            .iter()
            .filter_map(|c| match &c.verdict {
                Verdict::Rejected(r) => Some(format!("{}: {r}", c.name)),
                _ => None,
            })
            .collect();
        return Err(Error::invalid(format!(
            "no working video encoder for {:?} at {}x{} {}{}",
            req.families,
            req.width,
            req.height,
            req.pix_fmt,
            if why.is_empty() {
                " (none compiled in)".to_string()
            } else {
                format!(" ({})", why.join("; "))
            }
        )));
    }
    Ok(ok)
}

/// `--vcodec auto`: the working encoders of [`probe`], best first (candidate order), as
/// settings (LeRobot's defaults for each codec, the requested pixel format). The first is
/// the one to record with, the rest are the fallback chain.
pub fn resolve_auto(
    req: &ProbeRequest,
    deadline: Duration,
    cache: Option<&Path>,
) -> Result<Vec<EncoderSettings>> {
    working_settings(&probe(req, deadline, cache), req)
}

/// Speed under the machine's real load: encodes camera-like frames with `streams` encoders of
/// `settings` at once, each on its own thread at the live encoders' priority
/// ([`reel_core::sched::ENCODER`]), for about `duration` (at least [`PROBE_FRAMES`] frames
/// each), and returns the total frames per second, flushes included. Run it while the cameras
/// capture, so that their decoding (and whatever else the machine does) is part of the figure:
/// the probe's one stream on an idle machine overstates what a session gets.
pub fn measure_concurrent(
    settings: &EncoderSettings,
    width: u32,
    height: u32,
    fps: u32,
    streams: u32,
    duration: Duration,
) -> Result<f64> {
    crate::init();
    let frames: Vec<VideoFrame> = (0..PROBE_DISTINCT_FRAMES)
        .map(|k| camera_like_frame(width, height, k))
        .collect();
    let t0 = Instant::now();
    let results: Vec<Result<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams.max(1))
            .map(|i| {
                let frames = &frames;
                std::thread::Builder::new()
                    .name(format!("trial-{i}"))
                    .spawn_scoped(scope, move || -> Result<u64> {
                        reel_core::sched::set_current(reel_core::sched::ENCODER);
                        let seq = PROBE_SEQ.fetch_add(1, Ordering::Relaxed);
                        let path = std::env::temp_dir()
                            .join(format!("reel-trial-{}-{seq}.mp4", std::process::id()));
                        let res = (|| {
                            let mut enc =
                                EpisodeEncoder::create(&path, width, height, fps, settings)?;
                            let mut n = 0u64;
                            while n < PROBE_FRAMES || t0.elapsed() < duration {
                                enc.push(&frames[n as usize % frames.len()])?;
                                n += 1;
                            }
                            let seg = enc.finish()?;
                            if seg.frames != n {
                                return Err(Error::invalid(format!(
                                    "{} of {n} frames came out after the flush",
                                    seg.frames
                                )));
                            }
                            Ok(n)
                        })();
                        let _ = std::fs::remove_file(&path);
                        let _ = std::fs::remove_file(partial_path(&path));
                        res
                    })
                    .map_err(|e| Error::invalid(format!("could not start a trial encoder: {e}")))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.and_then(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::invalid("a trial encoder panicked")))
                })
            })
            .collect()
    });
    let elapsed = t0.elapsed().as_secs_f64().max(1e-9);
    let mut total = 0u64;
    for r in results {
        total += r?;
    }
    Ok(total as f64 / elapsed)
}

/// Whether an encoder measured at `measured_fps` (one stream at the recording size, on this
/// machine) can encode `cameras` streams of `fps` frames per second live with a safety
/// margin for the control loop: `measured_fps >= cameras × fps × (1 + headroom)`.
/// Example: SVT-AV1 at 80 frames/s, 3 cameras at 30 Hz, headroom 0.3 → needs 117 → false,
/// so reel records with a fast live encoder and transcodes to AV1 in the background.
/// A non-finite or negative input never keeps up; zero cameras always does.
pub fn can_keep_up(measured_fps: f64, cameras: u32, fps: u32, headroom: f64) -> bool {
    if cameras == 0 || fps == 0 {
        return true;
    }
    if !measured_fps.is_finite() || !headroom.is_finite() || headroom < 0.0 {
        return false;
    }
    measured_fps >= f64::from(cameras) * f64::from(fps) * (1.0 + headroom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn req() -> ProbeRequest {
        ProbeRequest {
            width: 128,
            height: 96,
            fps: 30,
            pix_fmt: "yuv420p".into(),
            families: vec!["av1".into(), "h264".into()],
        }
    }

    #[test]
    fn candidate_order() {
        let c = candidates(&req());
        let names: Vec<&str> = c.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "av1_nvenc",
                "h264_nvenc",
                "av1_vaapi",
                "h264_vaapi",
                "av1_qsv",
                "h264_qsv",
                "av1_v4l2m2m",
                "h264_v4l2m2m",
                "av1_videotoolbox",
                "h264_videotoolbox",
                "libsvtav1",
                "libaom-av1",
                "libx264"
            ]
        );
        assert!(c[..10].iter().all(|(_, _, hw)| *hw));
        assert!(c[10..].iter().all(|(_, _, hw)| !*hw));
        let mut r = req();
        r.families = vec!["h265".into(), "nope".into(), "hevc".into()];
        let c = candidates(&r);
        assert_eq!(c.len(), 6);
        assert_eq!(c[0].0, "hevc_nvenc");
        assert_eq!(c[5], ("libx265".into(), "hevc".into(), false));
    }

    fn fakes() -> Vec<(String, String, bool)> {
        [
            ("hang_hw", true),
            ("error_hw", true),
            ("absent", true),
            ("works_a", false),
            ("works_b", false),
        ]
        .iter()
        .map(|(n, hw)| (n.to_string(), "h264".to_string(), *hw))
        .collect()
    }

    fn fake_opener(calls: Arc<AtomicUsize>) -> Opener {
        Arc::new(
            move |name: &str, _r: &ProbeRequest, _b: Duration, _c: &ProbeControl| {
                calls.fetch_add(1, Ordering::SeqCst);
                match name {
                    "hang_hw" => loop {
                        std::thread::sleep(Duration::from_secs(60));
                    },
                    "error_hw" => Err(Error::invalid("Cannot load libcuda.so.1")),
                    "works_a" => Ok(120.0),
                    _ => Ok(300.0),
                }
            },
        )
    }

    fn machine(devs: &[&str]) -> Machine {
        Machine {
            ffmpeg: "5.1.test".into(),
            devices: devs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn fake_probe_order_deadline_and_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("sub/encoders.json");
        let calls = Arc::new(AtomicUsize::new(0));
        let open = fake_opener(calls.clone());
        let compiled = |n: &str| n != "absent";
        let deadline = Duration::from_millis(200);
        let t = Instant::now();
        let got = probe_inner(
            &fakes(),
            &req(),
            deadline,
            Some(&cache),
            &machine(&[]),
            &compiled,
            &open,
        );
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 4, "absent is never opened");
        let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["hang_hw", "error_hw", "absent", "works_a", "works_b"]
        );
        assert_eq!(
            got[0].verdict,
            Verdict::Rejected("timed out after 0.2 s".into())
        );
        assert!(
            matches!(&got[1].verdict, Verdict::Rejected(r) if r.contains("libcuda")),
            "{:?}",
            got[1]
        );
        assert_eq!(got[2].verdict, Verdict::NotCompiled);
        assert_eq!(got[3].verdict, Verdict::Works { fps: 120.0 });
        assert!(got.iter().all(|c| !c.cached));
        let best: Vec<String> = working_settings(&got, &req())
            .unwrap()
            .into_iter()
            .map(|s| s.vcodec)
            .collect();
        assert_eq!(best, ["works_a", "works_b"], "working ones, best first");

        // Same machine and request: everything from the cache, nothing opened.
        let again = probe_inner(
            &fakes(),
            &req(),
            deadline,
            Some(&cache),
            &machine(&[]),
            &compiled,
            &open,
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(again.iter().all(|c| c.cached));
        assert_eq!(
            again.iter().map(|c| &c.verdict).collect::<Vec<_>>(),
            got.iter().map(|c| &c.verdict).collect::<Vec<_>>()
        );

        // A new GPU appears: the cache is stale, everything is probed again.
        let t = Instant::now();
        let third = probe_inner(
            &fakes(),
            &req(),
            deadline,
            Some(&cache),
            &machine(&["nvidia0"]),
            &compiled,
            &open,
        );
        assert!(t.elapsed() >= deadline);
        assert_eq!(calls.load(Ordering::SeqCst), 8);
        assert!(third.iter().all(|c| !c.cached));
        // Another FFmpeg: stale as well.
        let mut m = machine(&["nvidia0"]);
        m.ffmpeg = "6.0".into();
        probe_inner(
            &fakes(),
            &req(),
            deadline,
            Some(&cache),
            &m,
            &compiled,
            &open,
        );
        assert_eq!(calls.load(Ordering::SeqCst), 12);
        let text = std::fs::read_to_string(&cache).unwrap();
        let file: CacheFile = serde_json::from_str(&text).unwrap();
        assert_eq!(file.entries.len(), 1, "stale entries are dropped");

        // Garbage in the cache file is ignored, not fatal.
        std::fs::write(&cache, b"{not json").unwrap();
        let g = probe_inner(
            &fakes()[3..],
            &req(),
            deadline,
            Some(&cache),
            &m,
            &compiled,
            &open,
        );
        assert!(g.iter().all(|c| !c.cached));
    }

    #[test]
    fn a_slow_probe_is_told_to_stop_at_its_deadline_and_called_too_slow() {
        // An encoder that takes a frame every 30 ms and never reaches PROBE_FRAMES within
        // the deadline: it must be rejected as too slow (not "timed out", which means no
        // frame at all) and its thread must stop instead of encoding on beside a session.
        let (done_tx, done_rx) = mpsc::channel::<u64>();
        let done_tx = std::sync::Mutex::new(done_tx);
        let open: Opener = Arc::new(
            move |_n: &str, _r: &ProbeRequest, _b: Duration, ctl: &ProbeControl| {
                let mut n = 0u64;
                while !ctl.cancelled() && n < 10_000 {
                    std::thread::sleep(Duration::from_millis(30));
                    ctl.frame_done();
                    n += 1;
                }
                let _ = done_tx.lock().map(|tx| tx.send(n));
                Err(Error::invalid("stopped"))
            },
        );
        let v = run_with_deadline(&open, "slow", &req(), Duration::from_millis(100));
        match &v {
            Verdict::Rejected(r) => assert!(r.starts_with("too slow: "), "{r}"),
            other => panic!("{other:?}"),
        }
        // The thread stopped on its own: it reports how far it got, far short of the 10,000
        // frames it would have encoded unchecked (a liveness bound, not a timing assertion).
        let n = done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the cancelled probe thread never returned");
        assert!(n < 10_000, "{n}");

        // An opener that never takes a frame is still "timed out".
        let stuck: Opener = Arc::new(
            |_n: &str, _r: &ProbeRequest, _b: Duration, c: &ProbeControl| {
                while !c.cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(1.0)
            },
        );
        assert_eq!(
            run_with_deadline(&stuck, "stuck", &req(), Duration::from_millis(50)),
            Verdict::Rejected("timed out after 0.1 s".into())
        );
    }

    #[test]
    fn resolve_keeps_order_of_working_ones() {
        let found = vec![
            Candidate {
                name: "h264_nvenc".into(),
                family: "h264".into(),
                hardware: true,
                verdict: Verdict::Rejected("no".into()),
                cached: false,
            },
            Candidate {
                name: "libsvtav1".into(),
                family: "av1".into(),
                hardware: false,
                verdict: Verdict::Works { fps: 80.0 },
                cached: false,
            },
            Candidate {
                name: "libx264".into(),
                family: "h264".into(),
                hardware: false,
                verdict: Verdict::Works { fps: 400.0 },
                cached: true,
            },
        ];
        let s = working_settings(&found, &req()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], EncoderSettings::lerobot_default());
        assert_eq!(s[1].vcodec, "libx264");
        let e = working_settings(&found[..1], &req())
            .unwrap_err()
            .to_string();
        assert!(e.contains("h264_nvenc: no"), "{e}");
    }

    #[test]
    fn real_probe_on_this_machine() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("encoders.json");
        let mut r = req();
        r.families = vec!["av1".into(), "h264".into()];
        let got = probe(&r, Duration::from_secs(2), Some(&cache));
        let by = |n: &str| got.iter().find(|c| c.name == n).unwrap().verdict.clone();
        for c in &got {
            eprintln!("{} {:?}", c.name, c.verdict);
        }
        assert_eq!(
            by("av1_nvenc"),
            Verdict::NotCompiled,
            "FFmpeg 5.1 has no av1_nvenc"
        );
        let has_nvidia = device_set().iter().any(|d| d.starts_with("nvidia"));
        let has_dri = device_set().iter().any(|d| d.starts_with("dri/"));
        if compiled_in("h264_nvenc") && !has_nvidia {
            assert!(
                matches!(by("h264_nvenc"), Verdict::Rejected(r) if r.contains("NVIDIA")),
                "{:?}",
                by("h264_nvenc")
            );
        }
        if compiled_in("h264_vaapi") && !has_dri {
            assert!(
                matches!(by("h264_vaapi"), Verdict::Rejected(r) if r.contains("VAAPI")),
                "{:?}",
                by("h264_vaapi")
            );
        }
        assert!(matches!(by("libsvtav1"), Verdict::Works { fps } if fps > 0.0));
        assert!(matches!(by("libx264"), Verdict::Works { .. }));
        if !has_nvidia && !has_dri {
            let auto = working_settings(&got, &r).unwrap();
            assert_eq!(auto[0].vcodec, "libsvtav1");
            assert!(auto.iter().any(|s| s.vcodec == "libx264"));
        }
        // The second run comes from the cache.
        let again = probe(&r, Duration::from_secs(2), Some(&cache));
        assert!(again.iter().all(|c| c.cached));
        let dir = std::env::temp_dir();
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                // A probe abandoned at its deadline removes its file when its thread ends.
                let abandoned = got.iter().any(|c| {
                    matches!(&c.verdict, Verdict::Rejected(w)
                        if w.contains("timed out") || w.starts_with("too slow"))
                        && (name.ends_with(&format!("-{}.mp4", c.name))
                            || name.ends_with(&format!("-{}.mp4.frag", c.name)))
                });
                name.starts_with(&format!("reel-probe-{}-", std::process::id())) && !abandoned
            })
            .count();
        assert_eq!(leftovers, 0, "probe files are removed");
    }

    #[test]
    fn capacity_rule() {
        // SVT-AV1 p12 at 640x480 on 2 cores: ~80 frames/s; 3 cameras at 30 Hz need 90.
        assert!(!can_keep_up(80.0, 3, 30, 0.0));
        assert!(can_keep_up(80.0, 2, 30, 0.3));
        assert!(!can_keep_up(80.0, 2, 30, 0.4));
        assert!(can_keep_up(400.0, 3, 30, 0.5));
        assert!(can_keep_up(0.0, 0, 30, 0.5));
        assert!(!can_keep_up(f64::NAN, 1, 30, 0.5));
        assert!(!can_keep_up(100.0, 1, 30, -1.0));
    }
}
