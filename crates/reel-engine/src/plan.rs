//! The encoder plan: one decision, made once, for every front end.
//!
//! Which encoder records, whether the final codec is recorded live or converted in the
//! background (deferred), which encoders take over when one fails or hangs, and how long an
//! encoder may stay silent: [`plan_encoders`] decides all of it from an [`EncoderRequest`]
//! (what the user asked: codec, quality, deferral mode; what will be recorded: cameras, size,
//! rate). `reel record`, `reel bench`, `reel doctor` and the Python module call it alike and
//! hand the [`EncoderPlan`] to [`WriterConfig::with_plan`](crate::writer::WriterConfig::with_plan),
//! so a user of any front end gets the same behaviour.
//!
//! `vcodec = "auto"` probes every candidate by really opening it
//! ([`reel_media::encoders::probe`], cached per machine) and takes the first that works, AV1
//! before HEVC before H.264, hardware first. With `deferred = Auto`, an encoder whose measured
//! speed cannot keep up with `cameras × fps` plus [`HEADROOM`] records through a fast live
//! encoder (libx264 ultrafast, crf 18) and is converted in the background.
//!
//! The probe measures one stream on a machine at rest (and is cached); a session runs one
//! encoder per camera next to the capture threads. So an encoder the probe lets through is
//! measured again by [`confirm_under_load`] once the cameras capture: all cameras' encoders at
//! once, under the real load. Below the need, the plan becomes deferred. The recorded codec of
//! a camera cannot change within a session (info.json names one codec per camera and every
//! file must match it at every commit), so this is the last point where live vs deferred is
//! decided; during the session the deferred path adapts per camera and episode instead (see
//! [`crate::deferred`]).
//!
//! A `slow=MS` fault in the request (`--inject-fault`, `reel.Writer(inject_fault=...)`) makes
//! the speed deterministic for tests: every push of the faulty encoder takes at least MS ms, so
//! the plan takes `1000 / MS` frames/s per stream as the final encoder's speed, at the probe
//! stage and under load, instead of a measurement ([`injected_speed`]). Two front ends given
//! the same request then reach the same plan, word for word, whatever the machine's load.

use crate::camera::Watchdog;
use reel_core::{Error, Result};
use reel_media::encoders::{self, can_keep_up, ProbeRequest, Verdict, HEADROOM};
use reel_media::EncoderSettings;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// When to record with a fast live encoder and convert to the final codec afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeferredMode {
    /// Only when the final encoder's measured speed cannot keep up live.
    #[default]
    Auto,
    Always,
    Never,
}

impl FromStr for DeferredMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeferredMode::Auto),
            "always" | "true" | "yes" => Ok(DeferredMode::Always),
            "never" | "false" | "no" => Ok(DeferredMode::Never),
            other => Err(Error::invalid(format!(
                "deferred mode '{other}': expected auto, always or never"
            ))),
        }
    }
}

/// Highest control-loop rate reel accepts (Hz).
pub const MAX_FPS: u32 = 1000;

/// What a front end asks for. Build it with [`EncoderRequest::new`] and set what the user gave.
#[derive(Debug, Clone)]
pub struct EncoderRequest {
    /// "auto", an FFmpeg encoder name (libsvtav1, libx264, h264_nvenc, ...) or an alias
    /// (av1, h264, hevc).
    pub vcodec: String,
    /// Quality (codec-specific CRF; LeRobot's default 30).
    pub crf: Option<f64>,
    /// Encoder preset (libsvtav1 0-13, x264 ultrafast..placebo).
    pub preset: Option<String>,
    /// Keyframe interval.
    pub gop: Option<u32>,
    /// Encoder threads (None: the codec decides).
    pub threads: Option<u32>,
    pub deferred: DeferredMode,
    /// Testing aid: a fault injected into every camera's primary encoder
    /// (`hang-open`, `hang-after=N`, `error-after=N`, `no-flush`, `slow=MS`).
    pub fault: Option<String>,
    /// Seconds an encoder may stay silent (opening, or with frames waiting) before the next
    /// one of the chain replaces it; flushing may take 4× this.
    pub encoder_timeout_s: f64,
    /// The largest camera's size.
    pub width: u32,
    pub height: u32,
    /// Number of cameras recorded.
    pub cameras: u32,
    /// Control-loop rate (frames per second per camera).
    pub fps: u32,
    /// Where probe verdicts are cached (None: [`encoders::default_cache_path`]).
    pub probe_cache: Option<PathBuf>,
    /// How long the probe of one candidate may take.
    pub probe_deadline: Duration,
}

impl EncoderRequest {
    /// LeRobot's defaults (`auto` codec, its crf/preset/gop), deferral decided by measurement,
    /// a 5 s encoder watchdog.
    pub fn new(width: u32, height: u32, cameras: u32, fps: u32) -> EncoderRequest {
        EncoderRequest {
            vcodec: "auto".into(),
            crf: None,
            preset: None,
            gop: None,
            threads: None,
            deferred: DeferredMode::Auto,
            fault: None,
            encoder_timeout_s: 5.0,
            width,
            height,
            cameras,
            fps,
            probe_cache: None,
            probe_deadline: Duration::from_secs(2),
        }
    }

    /// [`new`](Self::new) for the RGB cameras of `features` (their count, the largest one's
    /// size); depth cameras always record LeRobot's depth encoding and plan nothing.
    pub fn for_features(features: &reel_core::Features, fps: u32) -> EncoderRequest {
        let cams: Vec<(u32, u32)> = features
            .iter()
            .filter(|(_, f)| !f.is_depth())
            .filter_map(|(_, f)| f.video_hw())
            .map(|(h, w)| (w, h))
            .collect();
        let (w, h) = cams
            .iter()
            .copied()
            .max_by_key(|(w, h)| u64::from(*w) * u64::from(*h))
            .unwrap_or((0, 0));
        EncoderRequest::new(w, h, cams.len() as u32, fps)
    }

    /// Every number in range; the error names the option.
    pub fn validate(&self) -> Result<()> {
        if self.fps == 0 || self.fps > MAX_FPS {
            return Err(Error::invalid(format!(
                "fps {} is out of range: it must be between 1 and {MAX_FPS}",
                self.fps
            )));
        }
        if !(self.encoder_timeout_s.is_finite()
            && self.encoder_timeout_s > 0.0
            && self.encoder_timeout_s <= 3600.0)
        {
            return Err(Error::invalid(format!(
                "encoder timeout {} s is out of range: it must be a positive number of seconds up to 3600",
                self.encoder_timeout_s
            )));
        }
        if let Some(c) = self.crf {
            if !c.is_finite() || c < 0.0 {
                return Err(Error::invalid(format!(
                    "crf {c} is out of range: it must be a finite number >= 0"
                )));
            }
        }
        if self.gop == Some(0) {
            return Err(Error::invalid(
                "the GOP (keyframe interval) must be at least 1",
            ));
        }
        if self.threads == Some(0) {
            return Err(Error::invalid("encoder threads must be at least 1"));
        }
        if self.cameras > 0 {
            validate_size(self.width, self.height)?;
        }
        if self.vcodec.trim().is_empty() {
            return Err(Error::invalid(
                "vcodec is empty: give auto or an encoder name",
            ));
        }
        Ok(())
    }

    fn watchdog(&self) -> Watchdog {
        let t = Duration::from_secs_f64(self.encoder_timeout_s);
        Watchdog {
            open: t,
            stall: t,
            flush: t * 4,
        }
    }

    fn probe_request(&self, families: &[&str]) -> ProbeRequest {
        ProbeRequest::new(self.width, self.height, self.fps, families)
    }

    fn probe(&self, families: &[&str]) -> Vec<encoders::Candidate> {
        let cache = self
            .probe_cache
            .clone()
            .unwrap_or_else(encoders::default_cache_path);
        encoders::probe(
            &self.probe_request(families),
            self.probe_deadline,
            Some(&cache),
        )
    }
}

/// Camera sizes every encoder reel drives accepts: even, at least 2x2, at most 8192x8192.
pub fn validate_size(width: u32, height: u32) -> Result<()> {
    if width < 2 || height < 2 || width > 8192 || height > 8192 {
        return Err(Error::invalid(format!(
            "camera size {width}x{height} is out of range (2x2 to 8192x8192)"
        )));
    }
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(Error::invalid(format!(
            "camera size {width}x{height}: width and height must be even (yuv420p halves them)"
        )));
    }
    Ok(())
}

/// What to record with. See the module doc.
#[derive(Debug, Clone)]
pub struct EncoderPlan {
    /// The encoder every camera records with (the final codec unless `final_codec` is set).
    pub live: EncoderSettings,
    /// With a deferred conversion: the final codec, converted to in the background.
    pub final_codec: Option<EncoderSettings>,
    /// Tried in order when `live` fails or hangs mid-episode (empty: a fresh instance of `live`).
    pub fallbacks: Vec<EncoderSettings>,
    /// When an encoder counts as hung.
    pub watchdog: Watchdog,
    /// The final encoder's measured speed at the recording size (frames/s, one stream), when
    /// a probe measured it.
    pub measured_fps: Option<f64>,
    /// The decisions taken and why, in words (also logged at info level).
    pub decisions: Vec<String>,
    /// Live final codec chosen by `deferred auto` from the probe: to be confirmed under the
    /// real load ([`confirm_under_load`]).
    pub needs_load_check: bool,
}

impl EncoderPlan {
    /// The codec the dataset ends up in.
    pub fn final_settings(&self) -> &EncoderSettings {
        self.final_codec.as_ref().unwrap_or(&self.live)
    }

    /// Whether the final codec is converted in the background (recorded live in another).
    pub fn is_deferred(&self) -> bool {
        self.final_codec.is_some()
    }

    /// The plan in words, as every front end shows it: a headline (the live encoder, and the
    /// final one when deferred), then each decision on its own line, indented.
    pub fn summary(&self) -> Vec<String> {
        let head = match &self.final_codec {
            Some(f) => format!(
                "encoder plan: {} live, {} final (deferred)",
                self.live.vcodec, f.vcodec
            ),
            None => format!("encoder plan: {} live (final codec)", self.live.vcodec),
        };
        std::iter::once(head)
            .chain(self.decisions.iter().map(|d| format!("  {d}")))
            .collect()
    }
}

/// The speed a `slow=MS` fault in `req` makes deterministic: at most `1000 / MS` frames/s per
/// stream, taken by the plan instead of a measurement (None without such a fault, or MS 0).
pub fn injected_speed(req: &EncoderRequest) -> Option<(f64, u64)> {
    let f = req.fault.as_deref()?;
    match reel_media::Fault::parse(f).ok()? {
        reel_media::Fault::Slow(ms) if ms > 0 => Some((1000.0 / ms as f64, ms)),
        _ => None,
    }
}

/// The live encoder of a deferred plan: libx264 ultrafast, crf 18 (visually lossless for the
/// interim), the final codec's GOP and pixel format.
pub fn deferred_live_encoder(fin: &EncoderSettings) -> EncoderSettings {
    let mut live = EncoderSettings::lerobot_default().with_codec("libx264");
    live.crf = Some(18.0);
    live.preset = Some("ultrafast".into());
    live.g = fin.g;
    live.pix_fmt = fin.pix_fmt.clone();
    live
}

/// Threads per camera for a final codec encoded in the background (final lanes, deferred
/// conversions), when the user gave none: the cores shared among the cameras, at least 1.
/// Each lane runs beside the others, so more threads per encoder add no speed on a machine
/// the lanes already fill, only buffers (SVT-AV1's grow with its `lp`: 3 lanes of 640x480 on
/// 2 cores peaked 200 MB higher with the codec's default than with 1).
fn background_threads(
    req: &EncoderRequest,
    fin: &mut EncoderSettings,
    decisions: &mut Vec<String>,
) {
    if req.threads.is_some() || req.cameras == 0 {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let t = (cores / req.cameras).max(1);
    fin.threads = Some(t);
    decisions.push(format!(
        "{} in the background: {t} encoder thread(s) per camera ({cores} core(s) shared by {} camera(s))",
        fin.vcodec, req.cameras
    ));
}

/// Decides the encoders for `req` (see the module doc). Errors name the option at fault.
pub fn plan_encoders(req: &EncoderRequest) -> Result<EncoderPlan> {
    req.validate()?;
    let mut decisions = Vec::new();
    let need = f64::from(req.cameras * req.fps) * (1.0 + HEADROOM);
    let (fin, measured) = if req.vcodec.trim() == "auto" {
        let list = req.probe(&["av1", "hevc", "h264"]);
        let (name, fps) = list
            .iter()
            .find_map(|c| match c.verdict {
                Verdict::Works { fps } => Some((c.name.clone(), fps)),
                _ => None,
            })
            .ok_or_else(|| {
                let why: Vec<String> = list
                    .iter()
                    .filter_map(|c| match &c.verdict {
                        Verdict::Rejected(r) => Some(format!("{}: {r}", c.name)),
                        _ => None,
                    })
                    .collect();
                Error::invalid(format!(
                    "vcodec auto: no encoder opens on this machine at {}x{} ({}); see `reel encoders`",
                    req.width,
                    req.height,
                    if why.is_empty() { "none compiled in".into() } else { why.join("; ") }
                ))
            })?;
        let fps = match injected_speed(req) {
            Some((inj, ms)) => {
                decisions.push(format!(
                    "vcodec auto: {name} (the first encoder that opens here; its speed is injected: slow={ms} ms per frame, {inj:.0} frames/s per stream)"
                ));
                inj
            }
            None => {
                decisions.push(format!(
                    "vcodec auto: {name} ({fps:.0} frames/s measured at {}x{})",
                    req.width, req.height
                ));
                fps
            }
        };
        (
            EncoderSettings::lerobot_default().with_codec(&name),
            Some(fps),
        )
    } else {
        let s = EncoderSettings::lerobot_default().with_codec(req.vcodec.trim());
        s.validate()
            .map_err(|e| Error::invalid(format!("vcodec {}: {e}", req.vcodec)))?;
        let measured = if req.deferred == DeferredMode::Auto && req.cameras > 0 {
            injected_speed(req)
                .map(|(inj, _)| inj)
                .or_else(|| measured_speed(req, &s))
        } else {
            None
        };
        (s, measured)
    };
    let mut fin = fin.with_overrides(req.crf, req.preset.as_deref(), req.gop)?;
    fin.threads = req.threads;
    fin.validate()
        .map_err(|e| Error::invalid(format!("vcodec {}: {e}", req.vcodec)))?;
    let fault = match &req.fault {
        Some(f) => Some(
            reel_media::Fault::parse(f)
                .map_err(|e| Error::invalid(format!("inject fault '{f}': {e}")))?,
        ),
        None => None,
    };
    let keeps_up = measured.map(|m| can_keep_up(m, req.cameras, req.fps, HEADROOM));
    let defer = req.cameras > 0
        && match req.deferred {
            DeferredMode::Never => {
                if keeps_up == Some(false) {
                    decisions.push(format!(
                        "{} measured {:.0} frames/s here; {} camera(s) at {} Hz need {need:.0} with headroom: frames will queue and spill to disk, the loop is unaffected, and finishing waits for the backlog (deferred never)",
                        fin.vcodec,
                        measured.unwrap_or(0.0),
                        req.cameras,
                        req.fps
                    ));
                }
                false
            }
            DeferredMode::Always => {
                decisions.push(format!(
                    "deferred always: recording live with libx264, converting to {} in the background",
                    fin.vcodec
                ));
                true
            }
            DeferredMode::Auto => match keeps_up {
                Some(false) => {
                    decisions.push(format!(
                        "deferred auto: {} cannot keep up with {} camera(s) at {} Hz ({need:.0} frames/s with headroom): recording live with libx264 (ultrafast, crf 18) and converting to {} in the background at idle priority",
                        fin.vcodec, req.cameras, req.fps, fin.vcodec
                    ));
                    true
                }
                Some(true) => {
                    decisions.push(format!(
                        "deferred auto: {} keeps up with {} camera(s) at {} Hz: recording in it directly",
                        fin.vcodec, req.cameras, req.fps
                    ));
                    false
                }
                None => false,
            },
        };
    let watchdog = req.watchdog();
    let plan = if defer {
        background_threads(req, &mut fin, &mut decisions);
        let mut live = deferred_live_encoder(&fin);
        live.fault = fault; // injected faults are for the live encoders
        live.validate()
            .map_err(|e| Error::invalid(format!("live encoder libx264: {e}")))?;
        EncoderPlan {
            live,
            final_codec: Some(fin),
            fallbacks: Vec::new(),
            watchdog,
            measured_fps: measured,
            decisions,
            needs_load_check: false,
        }
    } else {
        fin.fault = fault;
        EncoderPlan {
            live: fin,
            final_codec: None,
            fallbacks: Vec::new(),
            watchdog,
            measured_fps: measured,
            decisions,
            needs_load_check: req.deferred == DeferredMode::Auto && keeps_up == Some(true),
        }
    };
    for d in &plan.decisions {
        tracing::debug!("{d}");
    }
    Ok(plan)
}

/// How long [`confirm_under_load`] encodes.
pub const LOAD_CHECK: Duration = Duration::from_millis(1500);

/// `deferred auto` with a live final codec the probe let through: encodes with one encoder
/// per camera at once for [`LOAD_CHECK`], now (call it with the cameras capturing), and keeps
/// the live plan only if they reach `cameras × fps` plus [`HEADROOM`]; otherwise returns the
/// deferred plan (live libx264, the final codec converted in the background). Plans that need
/// no check are returned as they are.
pub fn confirm_under_load(mut plan: EncoderPlan, req: &EncoderRequest) -> Result<EncoderPlan> {
    if !plan.needs_load_check || req.cameras == 0 {
        return Ok(plan);
    }
    plan.needs_load_check = false;
    let mut fin = plan.live.clone();
    let fault = fin.fault.take();
    let need = f64::from(req.cameras * req.fps) * (1.0 + HEADROOM);
    let (measured, how) = match injected_speed(req) {
        Some((inj, ms)) => (
            Ok(inj * f64::from(req.cameras)),
            format!(" (injected: slow={ms})"),
        ),
        None => (
            reel_media::encoders::measure_concurrent(
                &fin,
                req.width,
                req.height,
                req.fps,
                req.cameras,
                LOAD_CHECK,
            ),
            String::new(),
        ),
    };
    let d = match measured {
        Ok(m) if m >= need => {
            let d = format!(
                "deferred auto: under the real load{how} {} camera(s) of {} encode {m:.0} frames/s together (need {need:.0}): recording in it directly",
                req.cameras, fin.vcodec
            );
            plan.decisions.push(d.clone());
            tracing::debug!("{d}");
            return Ok(plan);
        }
        Ok(m) => format!(
            "deferred auto: under the real load{how} {} camera(s) of {} encode only {m:.0} frames/s together (need {need:.0}; the probe's one stream at rest: {:.0}): recording live with libx264 (ultrafast, crf 18) and encoding {} beside it at idle priority",
            req.cameras,
            fin.vcodec,
            plan.measured_fps.unwrap_or(0.0),
            fin.vcodec
        ),
        Err(e) => format!(
            "deferred auto: {} could not be measured under the real load ({e}): recording live with libx264 and converting to it in the background",
            fin.vcodec
        ),
    };
    tracing::debug!("{d}");
    plan.decisions.push(d);
    background_threads(req, &mut fin, &mut plan.decisions);
    let mut live = deferred_live_encoder(&fin);
    live.fault = fault;
    plan.live = live;
    plan.final_codec = Some(fin);
    Ok(plan)
}

/// The probe's (cached) measurement of an explicitly named encoder.
fn measured_speed(req: &EncoderRequest, s: &EncoderSettings) -> Option<f64> {
    let family = s.codec_family().ok()?;
    req.probe(&[family.as_str()])
        .iter()
        .find(|c| c.name == s.vcodec)
        .and_then(|c| match c.verdict {
            Verdict::Works { fps } => Some(fps),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_out_of_range_are_refused_naming_the_option() {
        let ok = EncoderRequest::new(640, 480, 2, 30);
        assert!(ok.validate().is_ok());
        let cases: Vec<(EncoderRequest, &str)> = vec![
            (
                EncoderRequest {
                    fps: 0,
                    ..ok.clone()
                },
                "fps 0",
            ),
            (
                EncoderRequest {
                    fps: 5000,
                    ..ok.clone()
                },
                "fps 5000",
            ),
            (
                EncoderRequest {
                    encoder_timeout_s: f64::NAN,
                    ..ok.clone()
                },
                "encoder timeout",
            ),
            (
                EncoderRequest {
                    encoder_timeout_s: 0.0,
                    ..ok.clone()
                },
                "encoder timeout",
            ),
            (
                EncoderRequest {
                    crf: Some(f64::INFINITY),
                    ..ok.clone()
                },
                "crf",
            ),
            (
                EncoderRequest {
                    gop: Some(0),
                    ..ok.clone()
                },
                "GOP",
            ),
            (
                EncoderRequest {
                    width: 641,
                    ..ok.clone()
                },
                "even",
            ),
            (
                EncoderRequest {
                    height: 0,
                    ..ok.clone()
                },
                "out of range",
            ),
            (
                EncoderRequest {
                    vcodec: " ".into(),
                    ..ok.clone()
                },
                "vcodec",
            ),
        ];
        for (r, want) in cases {
            let e = r.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e} should mention {want}");
        }
    }

    #[test]
    fn deferred_mode_parses() {
        assert_eq!("AUTO".parse::<DeferredMode>().unwrap(), DeferredMode::Auto);
        assert_eq!(
            "always".parse::<DeferredMode>().unwrap(),
            DeferredMode::Always
        );
        assert_eq!(
            "never".parse::<DeferredMode>().unwrap(),
            DeferredMode::Never
        );
        assert!("sometimes".parse::<DeferredMode>().is_err());
    }

    #[test]
    fn named_codecs_plan_without_probing_and_defer_on_request() {
        let mut r = EncoderRequest::new(64, 64, 2, 30);
        r.vcodec = "h264".into();
        r.deferred = DeferredMode::Never;
        let p = plan_encoders(&r).unwrap();
        assert_eq!(p.live.vcodec, "libx264");
        assert!(p.final_codec.is_none());
        r.vcodec = "libsvtav1".into();
        r.deferred = DeferredMode::Always;
        r.fault = Some("error-after=3".into());
        let p = plan_encoders(&r).unwrap();
        assert_eq!(p.live.vcodec, "libx264");
        assert_eq!(p.live.preset.as_deref(), Some("ultrafast"));
        assert!(p.live.fault.is_some(), "faults go to the live encoder");
        let fin = p.final_codec.unwrap();
        assert_eq!(fin.vcodec, "libsvtav1");
        assert!(fin.fault.is_none());
        r.vcodec = "nosuchcodec".into();
        let e = plan_encoders(&r).unwrap_err().to_string();
        assert!(e.contains("nosuchcodec"), "{e}");
        r.vcodec = "libx264".into();
        r.fault = Some("explode".into());
        let e = plan_encoders(&r).unwrap_err().to_string();
        assert!(e.contains("explode"), "{e}");
    }

    #[test]
    fn a_live_plan_is_confirmed_or_deferred_by_measuring_all_cameras_at_once() {
        // A plan that needs no check comes back as it is.
        let mut r = EncoderRequest::new(64, 64, 2, 30);
        r.vcodec = "libx264".into();
        r.deferred = DeferredMode::Never;
        let p = plan_encoders(&r).unwrap();
        assert!(!p.needs_load_check);
        let p = confirm_under_load(p, &r).unwrap();
        assert!(p.final_codec.is_none());
        // Two 64x64 x264 streams at 30 Hz: easily live.
        let mut live = p.clone();
        live.needs_load_check = true;
        let p = confirm_under_load(live.clone(), &r).unwrap();
        assert!(p.final_codec.is_none(), "{:?}", p.decisions);
        assert!(!p.needs_load_check, "checked once");
        assert!(p.decisions.last().unwrap().contains("under the real load"));
        // 8 cameras at 1000 Hz are beyond any encoder here: the plan becomes deferred, and
        // an injected fault moves to the live encoder.
        r.cameras = 8;
        r.fps = 1000;
        live.live.fault = Some(reel_media::Fault::parse("error-after=3").unwrap());
        let p = confirm_under_load(live, &r).unwrap();
        let fin = p.final_codec.as_ref().expect("deferred");
        assert_eq!(fin.vcodec, "libx264");
        assert!(fin.fault.is_none());
        assert_eq!(p.live.preset.as_deref(), Some("ultrafast"));
        assert!(p.live.fault.is_some());
        assert!(
            p.decisions.iter().any(|d| d.contains("encode only")),
            "{:?}",
            p.decisions
        );
        assert!(
            p.decisions.last().unwrap().contains("thread(s) per camera"),
            "the background encoder's threads are sized: {:?}",
            p.decisions
        );
    }

    #[test]
    fn an_injected_slow_encoder_decides_the_plan_without_measuring() {
        // slow=200: 5 frames/s per stream, below one camera at 10 Hz: deferred at the probe
        // stage, whatever this machine's real speed.
        let mut r = EncoderRequest::new(64, 64, 1, 10);
        r.vcodec = "libx264".into();
        r.fault = Some("slow=200".into());
        assert_eq!(injected_speed(&r), Some((5.0, 200)));
        let p = plan_encoders(&r).unwrap();
        assert!(p.is_deferred(), "{:?}", p.decisions);
        assert_eq!(p.measured_fps, Some(5.0));
        assert!(p.summary()[0].ends_with("(deferred)"), "{:?}", p.summary());
        // The background encoder gets the cores shared by the cameras; the live x264 keeps
        // the codec's default.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        assert_eq!(p.final_settings().threads, Some(cores.max(1)));
        assert_eq!(p.live.threads, None);
        assert!(p
            .decisions
            .last()
            .unwrap()
            .contains("encoder thread(s) per camera"));
        // slow=1: 1000 frames/s per stream: live, and the check under load takes 2 x 1000
        // (two cameras) without encoding, so the words are the same on every run.
        r.fault = Some("slow=1".into());
        r.cameras = 2;
        let p = plan_encoders(&r).unwrap();
        assert!(p.needs_load_check && !p.is_deferred());
        let a = confirm_under_load(p.clone(), &r).unwrap();
        let b = confirm_under_load(p, &r).unwrap();
        assert_eq!(a.summary(), b.summary());
        assert!(!a.is_deferred());
        let last = a.decisions.last().unwrap();
        assert!(
            last.contains("(injected: slow=1)") && last.contains("2000 frames/s"),
            "{last}"
        );
        assert_eq!(a.summary()[0], "encoder plan: libx264 live (final codec)");
        // Other faults and slow=0 inject no speed.
        for f in ["error-after=3", "slow=0", "hang-open"] {
            r.fault = Some(f.into());
            assert_eq!(injected_speed(&r), None, "{f}");
        }
    }
}
