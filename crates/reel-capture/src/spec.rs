//! What a camera is: its name, its FFmpeg input, the size and rate it must deliver, an
//! optional filter, and the fault-injection knobs. Parsing of the command-line form
//! `name=input[@WxH[@FPS[@FORMAT]]][@vf=FILTERS]`.

use std::time::Duration;

use reel_core::{Error, Result};

/// Default frame size when a spec string gives none.
pub const DEFAULT_WIDTH: u32 = 640;
/// Default frame height when a spec string gives none.
pub const DEFAULT_HEIGHT: u32 = 480;
/// Default rate when a spec string gives none.
pub const DEFAULT_FPS: u32 = 30;

/// Largest accepted frame side (FFmpeg's own limit is 16384 for most codecs).
const MAX_SIDE: u32 = 16384;

/// Pixel formats a V4L2 device can be asked for (`input_format` option of FFmpeg's v4l2 demuxer).
pub const V4L2_INPUT_FORMATS: [&str; 2] = ["mjpeg", "yuyv422"];

/// The FORMAT of a depth camera: any input whose pictures are 16-bit millimetres (a
/// `gray16le` video file, a lavfi graph ending in `format=gray16le`), read as uint16 frames.
pub const DEPTH_FORMAT: &str = "gray16le";

/// One camera: an FFmpeg input read into RGB24 frames of `width x height` at `fps`.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraSpec {
    /// Camera name; the dataset key becomes `observation.images.<name>`.
    pub name: String,
    /// `lavfi:<graph>`, a V4L2 device (`/dev/videoN`, any `/dev/...` path), or a media file.
    pub input: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Files: start again at end of file instead of ending with an error.
    pub loop_file: bool,
    /// V4L2 only: ask the device for this pixel format (`mjpeg` or `yuyv422`); `None` lets the
    /// driver choose.
    pub input_format: Option<String>,
    /// A depth camera (FORMAT `gray16le`): frames are the input's 16-bit values, taken as
    /// millimetres (uint16, `width * height * 2` bytes), never colour-converted; the dataset
    /// stores them as LeRobot's depth maps.
    pub depth: bool,
    /// An FFmpeg video filter chain applied to every decoded frame before it is scaled to
    /// RGB24 (e.g. `noise=alls=4:allf=t`, sensor-like noise on clean footage).
    pub filter: Option<String>,
    /// Fault injection: frames stop for `len` starting `at` after open (`(at, len)`).
    pub stall: Option<(Duration, Duration)>,
    /// Fault injection: deliver at this rate instead of the nominal one.
    pub deliver_fps: Option<f64>,
    /// Fault injection: the reader fails this long after the first read of its frames, as an
    /// unplugged device does.
    pub fail_after: Option<Duration>,
}

impl Default for CameraSpec {
    fn default() -> Self {
        CameraSpec {
            name: String::new(),
            input: String::new(),
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            fps: DEFAULT_FPS,
            loop_file: true,
            input_format: None,
            depth: false,
            filter: None,
            stall: None,
            deliver_fps: None,
            fail_after: None,
        }
    }
}

/// Where the frames of a camera come from; decides the FFmpeg input format and the pacing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// A libavfilter source graph (synthetic, produced as fast as FFmpeg can, paced by pts).
    Lavfi { graph: String },
    /// A V4L2 capture device (delivers in real time by itself).
    V4l2 { device: String },
    /// A media file (demuxed as fast as FFmpeg can, paced by pts).
    File { path: String },
}

impl InputKind {
    /// True when the source produces frames faster than real time and must be paced from pts.
    pub(crate) fn paced(&self) -> bool {
        !matches!(self, InputKind::V4l2 { .. })
    }
    /// How the input is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            InputKind::Lavfi { graph } => format!("lavfi graph '{graph}'"),
            InputKind::V4l2 { device } => device.clone(),
            InputKind::File { path } => path.clone(),
        }
    }
}

impl CameraSpec {
    /// Parses `"name=input[@WxH[@FPS[@FORMAT]]][@vf=FILTERS]"`, e.g.
    /// `"front=lavfi:testsrc2@640x480@30"`, `"wrist=/dev/video2@640x480"`,
    /// `"top=/dev/video0@1280x720@30@mjpeg"`, `"top=clip.mkv@640x480@30@vf=noise=alls=4:allf=t"`,
    /// a depth camera `"depth=depth.mkv@640x480@30@gray16le"`.
    ///
    /// The input ends at its first `@`. Omitted size and rate default to 640x480 and 30 fps;
    /// `FORMAT` is `mjpeg` or `yuyv422` (V4L2 only), or `gray16le` for a depth camera (any
    /// input of 16-bit millimetres); everything after `@vf=` is an FFmpeg
    /// filter chain applied to the decoded frames. A file input loops at its end.
    pub fn parse(s: &str) -> Result<CameraSpec> {
        let bad = |why: String| {
            Error::invalid(format!("camera spec '{s}': {why} (expected name=input[@WxH[@FPS[@FORMAT]]][@vf=FILTERS], e.g. front=lavfi:testsrc2@640x480@30)"))
        };
        let (s_main, filter) = match s.split_once("@vf=") {
            Some((main, f)) => {
                if f.trim().is_empty() {
                    return Err(bad("empty filter after '@vf='".into()));
                }
                (main, Some(f.trim().to_string()))
            }
            None => (s, None),
        };
        let (name, rest) = s_main
            .split_once('=')
            .ok_or_else(|| bad("missing '='".into()))?;
        let name = name.trim();
        check_name(name).map_err(bad)?;
        let mut parts = rest.split('@');
        let input = parts.next().unwrap_or("").trim();
        if input.is_empty() {
            return Err(bad("empty input".into()));
        }
        let mut spec = CameraSpec {
            name: name.to_string(),
            input: input.to_string(),
            filter,
            ..Default::default()
        };
        if let Some(size) = parts.next() {
            let (w, h) = size
                .split_once(['x', 'X'])
                .ok_or_else(|| bad(format!("size '{size}' is not WxH")))?;
            spec.width = w
                .trim()
                .parse()
                .map_err(|_| bad(format!("width '{w}' is not a number")))?;
            spec.height = h
                .trim()
                .parse()
                .map_err(|_| bad(format!("height '{h}' is not a number")))?;
        }
        if let Some(fps) = parts.next() {
            spec.fps = fps
                .trim()
                .parse()
                .map_err(|_| bad(format!("fps '{fps}' is not a whole number")))?;
        }
        if let Some(fmt) = parts.next() {
            if fmt.trim() == DEPTH_FORMAT {
                spec.depth = true;
            } else {
                spec.input_format = Some(fmt.trim().to_string());
            }
        }
        if let Some(extra) = parts.next() {
            return Err(bad(format!("unexpected '@{extra}'")));
        }
        spec.validate().map_err(|e| bad(e.to_string()))?;
        Ok(spec)
    }

    /// The default synthetic camera: a lavfi source at the given size and rate, with a different
    /// pattern per `index` so that cameras are distinguishable (testsrc2, testsrc, smptehdbars,
    /// rgbtestsrc; further indices reuse them with a hue rotation).
    pub fn synthetic(name: &str, index: usize, width: u32, height: u32, fps: u32) -> CameraSpec {
        const PATTERNS: [&str; 4] = ["testsrc2", "testsrc", "smptehdbars", "rgbtestsrc"];
        let pattern = PATTERNS[index % PATTERNS.len()];
        let round = index / PATTERNS.len();
        let mut graph = format!("{pattern}=size={width}x{height}:rate={fps}");
        if round > 0 {
            // 360/7 is not a divisor of 360, so rounds never repeat a hue within 7 rounds.
            let hue = (round * 360 / 7) % 360;
            graph.push_str(&format!(",hue=h={hue}"));
        }
        CameraSpec {
            name: name.to_string(),
            input: format!("lavfi:{graph}"),
            width,
            height,
            fps,
            ..Default::default()
        }
    }

    /// Checks every field; the message names the offending value.
    pub fn validate(&self) -> Result<()> {
        check_name(&self.name).map_err(Error::invalid)?;
        if self.input.trim().is_empty() {
            return Err(Error::invalid(format!(
                "camera '{}': empty input",
                self.name
            )));
        }
        if self.input.contains('\0') {
            return Err(Error::invalid(format!(
                "camera '{}': input contains a NUL byte",
                self.name
            )));
        }
        if self.width == 0 || self.height == 0 || self.width > MAX_SIDE || self.height > MAX_SIDE {
            return Err(Error::invalid(format!(
                "camera '{}': size {}x{} must be between 1x1 and {MAX_SIDE}x{MAX_SIDE}",
                self.name, self.width, self.height
            )));
        }
        if self.fps == 0 || self.fps > 1000 {
            return Err(Error::invalid(format!(
                "camera '{}': fps {} must be between 1 and 1000",
                self.name, self.fps
            )));
        }
        if let Some(f) = &self.input_format {
            if !V4L2_INPUT_FORMATS.contains(&f.as_str()) {
                return Err(Error::invalid(format!(
                    "camera '{}': input format '{f}' is not one of {V4L2_INPUT_FORMATS:?}",
                    self.name
                )));
            }
            if !matches!(self.kind(), InputKind::V4l2 { .. }) {
                return Err(Error::invalid(format!(
                    "camera '{}': input format '{f}' applies to V4L2 devices only, not {}",
                    self.name, self.input
                )));
            }
        }
        if let Some(d) = self.deliver_fps {
            if !(d.is_finite() && d > 0.0 && d <= 1000.0) {
                return Err(Error::invalid(format!(
                    "camera '{}': deliver_fps {d} must be in (0, 1000]",
                    self.name
                )));
            }
        }
        if let Some(f) = &self.filter {
            if f.trim().is_empty() || f.contains('\0') {
                return Err(Error::invalid(format!(
                    "camera '{}': the filter must be a non-empty FFmpeg filter chain",
                    self.name
                )));
            }
        }
        if let Some((_, len)) = self.stall {
            if len.is_zero() {
                return Err(Error::invalid(format!(
                    "camera '{}': stall length must be positive",
                    self.name
                )));
            }
        }
        if let InputKind::Lavfi { graph } = self.kind() {
            if graph.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "camera '{}': empty lavfi graph",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// Applies a testing-aid fault: `error-after=SECONDS` (the device fails, as when
    /// unplugged, SECONDS after the recording first reads it, however late that is), `end-file` (a file input ends instead of looping), `stall=AT:LEN` (no frames
    /// for LEN seconds from AT), `fps=F` (delivers F frames per second).
    pub fn apply_fault(&mut self, fault: &str) -> Result<()> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "camera '{}': fault '{fault}': {why} (expected error-after=SECONDS, end-file, stall=AT:LEN or fps=F)",
                self.name
            ))
        };
        let secs = |v: &str| -> Result<Duration> {
            let x: f64 = v
                .trim()
                .parse()
                .map_err(|_| bad("not a number of seconds"))?;
            Duration::try_from_secs_f64(x).map_err(|_| bad("not a number of seconds"))
        };
        let (key, value) = fault.split_once('=').unwrap_or((fault, ""));
        match key.trim() {
            "error-after" => self.fail_after = Some(secs(value)?),
            "end-file" => {
                if !matches!(self.kind(), InputKind::File { .. }) {
                    return Err(bad("applies to file inputs only"));
                }
                self.loop_file = false;
            }
            "stall" => {
                let (a, l) = value
                    .split_once(':')
                    .ok_or_else(|| bad("stall needs AT:LEN"))?;
                self.stall = Some((secs(a)?, secs(l)?));
            }
            "fps" => self.deliver_fps = Some(value.trim().parse().map_err(|_| bad("not a rate"))?),
            _ => return Err(bad("unknown fault")),
        }
        self.validate()
    }

    /// The dataset feature key of this camera (`observation.images.<name>`).
    pub fn feature_key(&self) -> String {
        format!("observation.images.{}", self.name)
    }

    /// Classifies the input string.
    pub(crate) fn kind(&self) -> InputKind {
        let input = self.input.trim();
        if let Some(graph) = input.strip_prefix("lavfi:") {
            InputKind::Lavfi {
                graph: graph.to_string(),
            }
        } else if input.starts_with("/dev/") {
            InputKind::V4l2 {
                device: input.to_string(),
            }
        } else {
            InputKind::File {
                path: input.to_string(),
            }
        }
    }

    /// The lavfi graph as opened: a bare source name (`testsrc2`, or `testsrc2,hue=h=90`) gets
    /// `=size=WxH:rate=FPS` appended to its first filter.
    pub(crate) fn lavfi_graph(&self, graph: &str) -> String {
        let graph = graph.trim();
        let first_end = graph.find([',', ';']).unwrap_or(graph.len());
        let (first, tail) = graph.split_at(first_end);
        if first.contains('=') {
            graph.to_string()
        } else {
            format!(
                "{first}=size={}x{}:rate={}{tail}",
                self.width, self.height, self.fps
            )
        }
    }
}

/// A camera name must make a valid feature key: non-empty, no '/', '=' or '@', no whitespace.
fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty camera name".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '=' | '@') || c.is_whitespace() || c.is_control())
    {
        return Err(format!("camera name '{name}' must not contain {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_partial_forms() {
        let s = CameraSpec::parse("front=lavfi:testsrc2@640x480@30").unwrap();
        assert_eq!(s.name, "front");
        assert_eq!(s.input, "lavfi:testsrc2");
        assert_eq!((s.width, s.height, s.fps), (640, 480, 30));
        assert!(s.loop_file);
        assert_eq!(s.feature_key(), "observation.images.front");

        let s = CameraSpec::parse("wrist=/dev/video2@320x240").unwrap();
        assert_eq!(s.input, "/dev/video2");
        assert_eq!((s.width, s.height, s.fps), (320, 240, DEFAULT_FPS));
        assert_eq!(
            s.kind(),
            InputKind::V4l2 {
                device: "/dev/video2".into()
            }
        );

        let s = CameraSpec::parse("top=/dev/video0@1280x720@15@mjpeg").unwrap();
        assert_eq!(s.input_format.as_deref(), Some("mjpeg"));
        assert_eq!(s.fps, 15);

        let s = CameraSpec::parse("sim=clips/a.mp4").unwrap();
        assert_eq!(
            (s.width, s.height, s.fps),
            (DEFAULT_WIDTH, DEFAULT_HEIGHT, DEFAULT_FPS)
        );
        assert_eq!(
            s.kind(),
            InputKind::File {
                path: "clips/a.mp4".into()
            }
        );

        let s = CameraSpec::parse("top=clip.mkv@320x240@15@vf=noise=alls=4:allf=t").unwrap();
        assert_eq!(s.input, "clip.mkv");
        assert_eq!((s.width, s.height, s.fps), (320, 240, 15));
        assert_eq!(s.filter.as_deref(), Some("noise=alls=4:allf=t"));
        let s = CameraSpec::parse("top=clip.mkv@vf=hflip,vflip").unwrap();
        assert_eq!((s.input.as_str(), s.width), ("clip.mkv", DEFAULT_WIDTH));
        assert_eq!(s.filter.as_deref(), Some("hflip,vflip"));

        // '=' inside the input belongs to the input (lavfi options).
        let s = CameraSpec::parse("g=lavfi:testsrc2=size=320x240:rate=10@320x240@10").unwrap();
        assert_eq!(s.input, "lavfi:testsrc2=size=320x240:rate=10");
        assert_eq!(
            s.kind(),
            InputKind::Lavfi {
                graph: "testsrc2=size=320x240:rate=10".into()
            }
        );
    }

    #[test]
    fn rejects_bad_specs_with_named_problem() {
        let cases = [
            ("front", "missing '='"),
            ("=lavfi:testsrc2", "empty camera name"),
            ("a/b=lavfi:testsrc2", "must not contain '/'"),
            ("front=", "empty input"),
            ("front=lavfi:testsrc2@640", "size '640' is not WxH"),
            ("front=lavfi:testsrc2@axb", "width 'a'"),
            ("front=lavfi:testsrc2@640x0", "size 640x0"),
            ("front=lavfi:testsrc2@640x480@0", "fps 0"),
            ("front=lavfi:testsrc2@640x480@thirty", "fps 'thirty'"),
            ("front=/dev/video0@640x480@30@h265", "input format 'h265'"),
            ("front=lavfi:testsrc2@640x480@30@mjpeg", "V4L2 devices only"),
            ("front=/dev/video0@640x480@30@mjpeg@x", "unexpected '@x'"),
            ("front=lavfi:", "empty lavfi graph"),
            ("front=a.mkv@vf= ", "empty filter"),
        ];
        for (input, want) in cases {
            let err = CameraSpec::parse(input).expect_err(input).to_string();
            assert!(
                err.contains(want),
                "{input}: error '{err}' should contain '{want}'"
            );
            assert!(
                err.contains(input),
                "{input}: error '{err}' should quote the spec"
            );
        }
    }

    #[test]
    fn lavfi_graph_gets_size_and_rate_only_when_bare() {
        let s = CameraSpec {
            width: 320,
            height: 240,
            fps: 15,
            ..Default::default()
        };
        assert_eq!(s.lavfi_graph("testsrc2"), "testsrc2=size=320x240:rate=15");
        assert_eq!(
            s.lavfi_graph("testsrc2,hue=h=90"),
            "testsrc2=size=320x240:rate=15,hue=h=90"
        );
        assert_eq!(s.lavfi_graph("testsrc2=size=64x64"), "testsrc2=size=64x64");
    }

    #[test]
    fn synthetic_cameras_differ_per_index() {
        let specs: Vec<_> = (0..6)
            .map(|i| CameraSpec::synthetic(&format!("c{i}"), i, 64, 48, 30))
            .collect();
        assert_eq!(specs[0].input, "lavfi:testsrc2=size=64x48:rate=30");
        for (i, a) in specs.iter().enumerate() {
            a.validate().unwrap();
            for b in &specs[i + 1..] {
                assert_ne!(a.input, b.input);
            }
        }
    }
}
