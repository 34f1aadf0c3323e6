//! Helpers shared by the integration tests and the check examples: synthetic frame sources
//! (solid colours, a flashing source generated from the recorder's clock) and inspection of the
//! written MP4 through the `ffprobe` / `ffmpeg` command-line tools.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use reel_core::{monotonic_ns, SharedFrame, VideoFrame};
use reel_demo::FrameSource;

/// A camera that always shows the same solid colour.
pub struct SolidSource {
    pub name: String,
    pub frame: SharedFrame,
}

impl SolidSource {
    pub fn shared(name: &str, w: u32, h: u32, rgb: [u8; 3]) -> Arc<dyn FrameSource> {
        Arc::new(SolidSource {
            name: name.into(),
            frame: Arc::new(VideoFrame::solid(w, h, rgb)),
        })
    }
}

impl FrameSource for SolidSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn latest(&self) -> Option<SharedFrame> {
        Some(self.frame.clone())
    }
}

/// A camera whose frame `k` (captured at `epoch + k/fps`) is white during the first 0.1 s of
/// every second after `epoch` and black otherwise, and which delivers each frame `delay_ns`
/// after its capture, like a real camera. Black until `epoch` is set.
pub struct FlashSource {
    pub epoch: Arc<AtomicU64>,
    pub fps: u64,
    pub delay_ns: u64,
    cache: Mutex<Option<(u64, SharedFrame)>>,
}

impl FlashSource {
    pub fn new(fps: u64, delay_ns: u64) -> Arc<FlashSource> {
        Arc::new(FlashSource {
            epoch: Arc::new(AtomicU64::new(0)),
            fps,
            delay_ns,
            cache: Mutex::new(None),
        })
    }
}

impl FrameSource for FlashSource {
    fn name(&self) -> &str {
        "flash"
    }
    fn latest(&self) -> Option<SharedFrame> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let content = monotonic_ns().saturating_sub(self.delay_ns);
        if epoch == 0 || content < epoch {
            return None;
        }
        let frame_ns = 1_000_000_000 / self.fps;
        let k = (content - epoch) / frame_ns;
        let mut cache = self.cache.lock().unwrap();
        if let Some((ck, f)) = cache.as_ref() {
            if *ck == k {
                return Some(f.clone());
            }
        }
        let white = (k % self.fps) * 10 < self.fps; // first tenth of each second
        let mut f = VideoFrame::solid(320, 240, if white { [255, 255, 255] } else { [0, 0, 0] });
        f.captured_ns = epoch + k * frame_ns;
        f.seq = k;
        let f = Arc::new(f);
        *cache = Some((k, f.clone()));
        Some(f)
    }
}

/// Each stream of the file as ffprobe's key=value pairs.
pub fn probe_streams(path: &Path) -> Vec<HashMap<String, String>> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-of",
            "default=noprint_wrappers=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut streams = Vec::new();
    let mut cur: Option<HashMap<String, String>> = None;
    for line in text.lines() {
        match line {
            "[STREAM]" => cur = Some(HashMap::new()),
            "[/STREAM]" => streams.extend(cur.take()),
            _ => {
                if let (Some(m), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
                    m.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    streams
}

pub fn stream<'a>(
    streams: &'a [HashMap<String, String>],
    kind: &str,
) -> &'a HashMap<String, String> {
    streams
        .iter()
        .find(|s| s.get("codec_type").map(|t| t == kind).unwrap_or(false))
        .unwrap_or_else(|| panic!("no {kind} stream"))
}

pub fn num(s: &HashMap<String, String>, key: &str) -> f64 {
    s.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key} in {s:?}"))
}

/// Decodes the video to `w`×`h` RGB24 frames (all of them).
pub fn decode_rgb(path: &Path, w: u32, h: u32) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-vf",
            &format!("scale={w}:{h}:flags=neighbor"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg decode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact((w * h * 3) as usize)
        .map(|c| c.to_vec())
        .collect()
}

/// Decodes the audio to mono f32 at 48 kHz.
pub fn decode_audio(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "1", "-ar", "48000", "-f", "f32le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg audio decode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Times (s) at which the video turns white (mean brightness crosses half).
pub fn flash_onsets(path: &Path, fps: f64) -> Vec<f64> {
    let frames = decode_rgb(path, 16, 9);
    let mut onsets = Vec::new();
    let mut prev = false;
    for (i, f) in frames.iter().enumerate() {
        let mean = f.iter().map(|&b| b as f64).sum::<f64>() / f.len() as f64;
        let white = mean > 128.0;
        if white && !prev {
            onsets.push(i as f64 / fps);
        }
        prev = white;
    }
    onsets
}

/// Times (s) at which a beep starts (1 ms windows; loud after at least 100 ms of quiet).
pub fn beep_onsets(path: &Path) -> Vec<f64> {
    let samples = decode_audio(path);
    let win = 48;
    let mut onsets = Vec::new();
    let mut quiet_windows = 1000usize;
    for (i, w) in samples.chunks(win).enumerate() {
        let rms = (w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32).sqrt();
        if rms > 0.1 {
            if quiet_windows >= 100 {
                // Refine to the first loud sample in the window.
                let first = w.iter().position(|s| s.abs() > 0.05).unwrap_or(0);
                onsets.push((i * win + first) as f64 / 48_000.0);
            }
            quiet_windows = 0;
        } else {
            quiet_windows += 1;
        }
    }
    onsets
}

/// For each flash, the signed offset (flash - nearest beep) in seconds.
pub fn av_offsets(flashes: &[f64], beeps: &[f64]) -> Vec<(f64, f64)> {
    flashes
        .iter()
        .filter_map(|&f| {
            beeps
                .iter()
                .map(|&b| f - b)
                .min_by(|a, b| a.abs().total_cmp(&b.abs()))
                .map(|d| (f, d))
        })
        .collect()
}

/// The `lavfi` audio input that beeps (1 kHz) during the first 0.1 s of every second.
pub const BEEP_AUDIO: &str =
    "lavfi:aevalsrc=exprs='if(lt(mod(t,1),0.1),0.8*sin(2*PI*1000*t),0)':s=48000";
