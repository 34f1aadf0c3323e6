//! What a demo recording should look like and sound like: the [`DemoConfig`] the CLI fills from
//! its flags, the [`Layout`] of the cameras and the [`AudioInput`] to record.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use reel_core::{Error, Result};

/// How the cameras are arranged in the output picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The main camera fills the picture; the inset camera is a bordered square at the bottom-right.
    #[default]
    Pip,
    /// All cameras in one row, each filling (center-cropped) an equal column.
    SideBySide,
    /// All cameras in a near-square grid, each filling (center-cropped) one cell; empty cells black.
    Grid,
}

impl FromStr for Layout {
    type Err = Error;
    /// Parses `pip`, `side-by-side` or `grid` (the `--layout` values).
    fn from_str(s: &str) -> Result<Layout> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pip" => Ok(Layout::Pip),
            "side-by-side" | "sidebyside" | "sbs" => Ok(Layout::SideBySide),
            "grid" => Ok(Layout::Grid),
            other => Err(Error::invalid(format!(
                "unknown layout {other:?}: expected pip, side-by-side or grid"
            ))),
        }
    }
}

/// An FFmpeg audio input, written as the CLI takes it:
/// `lavfi:sine=frequency=1000:sample_rate=48000`, `pulse:default`, `alsa:hw:0`, or a file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInput {
    pub input: String,
}

impl AudioInput {
    /// Wraps an input string (see the type's doc for the accepted forms).
    pub fn new(input: impl Into<String>) -> Self {
        AudioInput {
            input: input.into(),
        }
    }

    /// Splits the input into (FFmpeg input format name, URL). `None` format = a file, probed.
    pub(crate) fn format_and_url(&self) -> (Option<&'static str>, &str) {
        const DEVICES: [&str; 6] = ["lavfi", "pulse", "alsa", "oss", "jack", "openal"];
        for fmt in DEVICES {
            if let Some(rest) = self
                .input
                .strip_prefix(fmt)
                .and_then(|r| r.strip_prefix(':'))
            {
                return (Some(fmt), rest);
            }
        }
        (None, self.input.as_str())
    }

    /// True for inputs that deliver samples in real time by themselves (capture devices). Files
    /// and `lavfi` graphs are read as fast as asked, so the recorder paces them by the clock.
    pub(crate) fn is_live(&self) -> bool {
        matches!(
            self.format_and_url().0,
            Some("pulse" | "alsa" | "oss" | "jack" | "openal")
        )
    }
}

/// Everything [`crate::DemoRecorder::start`] needs besides the cameras.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The MP4 to write. While recording the data goes to `<output>.partial`.
    pub output: PathBuf,
    /// Output width in pixels (even). Default 960.
    pub width: u32,
    /// Output height in pixels (even). Default 540.
    pub height: u32,
    /// Output frame rate; also the rate at which cameras are sampled. Default 30.
    pub fps: u32,
    pub layout: Layout,
    /// Index into the camera list of the camera that fills the picture (Pip) or comes first.
    pub main_camera: usize,
    /// Index of the inset camera (Pip only); `None` = no inset.
    pub inset_camera: Option<usize>,
    /// Side of the square inset, border excluded. Default 240.
    pub inset_size: u32,
    /// White border around the inset. Default 2.
    pub border_px: u32,
    /// Gap between the inset's border and the bottom/right edges of the picture. Default 16.
    pub inset_margin: u32,
    /// `None` = silent video (`--no-audio`).
    pub audio: Option<AudioInput>,
    /// Video encoder name. Default `libx264`.
    pub vcodec: String,
    /// Encoder preset. Default `ultrafast`.
    pub preset: String,
    /// Constant rate factor. Default 23.
    pub crf: u32,
    /// AAC bit rate in bit/s. Default 128 000.
    pub audio_bitrate: u64,
    /// [`crate::DemoRecorder::stop`] waits this long for the encoder to catch up with the
    /// recording; then it cuts the video where the encoder is (`DemoStats::frames_cut`) and
    /// waits as long again for the trailer. Default 2 s.
    pub stop_deadline: Duration,
    /// How far behind the wall clock the compositor samples cameras, so that a frame is placed
    /// by its capture time even when the camera delivers it late (USB cameras: ~100 ms). Frames
    /// captured at content time `t` land at video time `t`, like the audio. Default 200 ms.
    pub video_delay: Duration,
    /// Test hook: the mux thread fails after writing this many frames.
    #[doc(hidden)]
    pub fail_after_frames: Option<u64>,
    /// Test hook: every frame takes at least this long to encode (an encoder slower than the
    /// wall clock, as on a loaded machine).
    #[doc(hidden)]
    pub slow_frames: Option<Duration>,
}

impl DemoConfig {
    /// The defaults of the issue (960×540 at 30 fps, PiP of cameras 0 and 1, libx264 ultrafast
    /// crf 23, AAC 128 kb/s, 2 s stop deadline), writing `output`, with no audio.
    pub fn new(output: impl Into<PathBuf>) -> Self {
        DemoConfig {
            output: output.into(),
            width: 960,
            height: 540,
            fps: 30,
            layout: Layout::Pip,
            main_camera: 0,
            inset_camera: Some(1),
            inset_size: 240,
            border_px: 2,
            inset_margin: 16,
            audio: None,
            vcodec: "libx264".into(),
            preset: "ultrafast".into(),
            crf: 23,
            audio_bitrate: 128_000,
            stop_deadline: Duration::from_secs(2),
            video_delay: Duration::from_millis(200),
            fail_after_frames: None,
            slow_frames: None,
        }
    }

    /// Checks the numbers against each other and against the number of cameras.
    pub(crate) fn validate(&self, cameras: usize) -> Result<()> {
        if cameras == 0 {
            return Err(Error::invalid("demo video needs at least one camera"));
        }
        if self.width < 16 || self.height < 16 || (self.width | self.height) & 1 != 0 {
            return Err(Error::invalid(format!(
                "demo video size {}x{} must be even and at least 16x16",
                self.width, self.height
            )));
        }
        if self.fps == 0 || self.fps > 240 {
            return Err(Error::invalid(format!(
                "demo video fps {} must be 1..=240",
                self.fps
            )));
        }
        if self.main_camera >= cameras {
            return Err(Error::invalid(format!(
                "main camera index {} out of range: {cameras} camera(s)",
                self.main_camera
            )));
        }
        if self.layout == Layout::Pip {
            if let Some(i) = self.inset_camera {
                if i >= cameras {
                    return Err(Error::invalid(format!(
                        "inset camera index {i} out of range: {cameras} camera(s)"
                    )));
                }
                let outer = self.inset_size + 2 * self.border_px + self.inset_margin;
                if self.inset_size == 0 || outer > self.width || outer > self.height {
                    return Err(Error::invalid(format!(
                        "inset {}px + border {}px + margin {}px does not fit in {}x{}",
                        self.inset_size, self.border_px, self.inset_margin, self.width, self.height
                    )));
                }
            }
        }
        if self.stop_deadline.is_zero() {
            return Err(Error::invalid("stop deadline must be > 0"));
        }
        if self.video_delay > Duration::from_secs(5) {
            return Err(Error::invalid("video delay must be at most 5 s"));
        }
        Ok(())
    }
}
