//! Encoder settings: LeRobot's `VideoEncoderConfig` (defaults, codec aliases, validation,
//! the codec-option mapping of `get_codec_options`) and the `info.json` fields it produces.

use ffmpeg_next as ff;
use reel_core::{Error, Result};
use std::str::FromStr;

/// Video encoders reel knows how to drive (LeRobot's list, by FFmpeg encoder name).
pub const KNOWN_ENCODERS: [&str; 10] = [
    "libsvtav1",
    "libx264",
    "libx265",
    "libaom-av1",
    "h264_nvenc",
    "hevc_nvenc",
    "h264_vaapi",
    "h264_qsv",
    "h264_videotoolbox",
    "hevc_videotoolbox",
];

/// The diagnostics switch `REEL_SVTAV1=ffmpeg`: `libsvtav1` through FFmpeg's own wrapper
/// (the machine's SVT-AV1) instead of the built-in one, e.g. to compare the two.
pub fn ffmpeg_svt_requested() -> bool {
    std::env::var("REEL_SVTAV1").is_ok_and(|v| v == "ffmpeg")
}

/// True when encoder `name` can be opened here: `libsvtav1` is built in (unless
/// [`ffmpeg_svt_requested`]), the others must be compiled into FFmpeg.
pub fn encoder_available(name: &str) -> bool {
    crate::init();
    if name == "libsvtav1" && !ffmpeg_svt_requested() {
        return true;
    }
    ff::encoder::find_by_name(name).is_some_and(|c| c.is_video())
}

/// How one camera is encoded; field names and defaults follow LeRobot's `RGBEncoderConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSettings {
    /// FFmpeg encoder name: "libsvtav1" (default), "libx264", "libx265", "libaom-av1", ...
    pub vcodec: String,
    /// Pixel format fed to the encoder, "yuv420p".
    pub pix_fmt: String,
    /// GOP size: a keyframe every `g` frames (2).
    pub g: Option<u32>,
    /// Quality (30), mapped per codec.
    pub crf: Option<f64>,
    /// None becomes "12" for libsvtav1 (see [`EncoderSettings::resolved`]).
    pub preset: Option<String>,
    /// SVT-AV1 fast-decode level / x264 `tune=fastdecode` when > 0.
    pub fast_decode: u32,
    /// Encoder threads; None lets the codec decide.
    pub threads: Option<u32>,
    /// Extra FFmpeg options, added after the structured ones (never overriding them).
    pub extra: Vec<(String, String)>,
    /// Test-only misbehaviour injected into [`crate::EpisodeEncoder`] (None in production);
    /// never part of [`EncoderSettings::codec_options`] nor [`EncoderSettings::info_fields`].
    pub fault: Option<crate::Fault>,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self::lerobot_default()
    }
}

fn resolve_alias(name: &str) -> &str {
    match name {
        "av1" => "libsvtav1",
        "h264" => "libx264",
        "hevc" | "h265" => "libx265",
        other => other,
    }
}

/// Formats a number the way Python's `str()` would for an int-valued float: "30", "30.5".
fn num_str(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl EncoderSettings {
    /// LeRobot's defaults: libsvtav1, yuv420p, g 2, crf 30, preset 12, fast_decode 0.
    pub fn lerobot_default() -> Self {
        EncoderSettings {
            vcodec: "libsvtav1".into(),
            pix_fmt: "yuv420p".into(),
            g: Some(2),
            crf: Some(30.0),
            preset: Some("12".into()),
            fast_decode: 0,
            threads: None,
            extra: Vec::new(),
            fault: None,
        }
    }

    /// Switches to codec `name` (aliases: "av1"→"libsvtav1", "h264"→"libx264",
    /// "hevc"/"h265"→"libx265"). Presets are codec-specific, so the preset goes back to the
    /// new codec's default (12 for libsvtav1, none otherwise).
    pub fn with_codec(mut self, name: &str) -> Self {
        self.vcodec = resolve_alias(name).to_string();
        self.preset = None;
        self.resolved()
    }

    /// Applies a user's overrides of LeRobot's defaults (`--crf`, `--preset`, `--gop`).
    pub fn with_overrides(
        mut self,
        crf: Option<f64>,
        preset: Option<&str>,
        g: Option<u32>,
    ) -> Result<Self> {
        if g == Some(0) {
            return Err(Error::invalid("the GOP (--gop) must be at least 1"));
        }
        if let Some(c) = crf {
            self.crf = Some(c);
        }
        if let Some(p) = preset {
            self.preset = Some(p.to_string());
        }
        if let Some(g) = g {
            self.g = Some(g);
        }
        Ok(self)
    }

    /// Resolves the codec alias and LeRobot's preset default (None → "12" for libsvtav1).
    pub fn resolved(mut self) -> Self {
        self.vcodec = resolve_alias(&self.vcodec).to_string();
        if self.vcodec == "libsvtav1" && self.preset.is_none() {
            self.preset = Some("12".into());
        }
        self
    }

    fn is_svt(&self) -> bool {
        self.vcodec == "libsvtav1"
    }

    /// True when these settings encode with the built-in SVT-AV1 (crate `reel-svt`):
    /// `libsvtav1` always does, unless the diagnostics switch `REEL_SVTAV1=ffmpeg` asks for
    /// FFmpeg's own libsvtav1 wrapper (Debian's SVT-AV1 1.4.1) instead.
    pub fn is_builtin_svt(&self) -> bool {
        self.clone().resolved().is_svt() && !ffmpeg_svt_requested()
    }

    /// The built-in SVT-AV1's parameters for these settings, from the same options FFmpeg's
    /// libsvtav1 would get ([`codec_options`](Self::codec_options)): `g`, `crf`, `preset` and
    /// `svtav1-params` (`key=value` pairs separated by `:`, handed to SVT's own parser). Any
    /// other option is refused, as FFmpeg refuses options a codec does not consume.
    pub fn svt_params(&self) -> Result<reel_svt::SvtParams> {
        let mut p = reel_svt::SvtParams {
            preset: None,
            crf: None,
            keyint: None,
            level_of_parallelism: None,
            extra: Vec::new(),
        };
        let mut unknown = Vec::new();
        let bad = |k: &str, v: &str| Error::invalid(format!("libsvtav1: bad value {k}={v}"));
        for (k, v) in self.codec_options() {
            match k.as_str() {
                "g" => p.keyint = Some(v.trim().parse().map_err(|_| bad(&k, &v))?),
                "crf" => p.crf = Some(v.trim().parse().map_err(|_| bad(&k, &v))?),
                "preset" => p.preset = Some(v.trim().parse().map_err(|_| bad(&k, &v))?),
                "svtav1-params" => {
                    for kv in v.split(':').filter(|kv| !kv.is_empty()) {
                        let (a, b) = kv.split_once('=').ok_or_else(|| bad(&k, &v))?;
                        p.extra.push((a.trim().to_string(), b.trim().to_string()));
                    }
                }
                _ => unknown.push(format!("{k}={v}")),
            }
        }
        if !unknown.is_empty() {
            return Err(Error::invalid(format!(
                "libsvtav1 ({}) does not know the option(s) {}",
                crate::encoder::builtin_svt_description(),
                unknown.join(", ")
            )));
        }
        Ok(p)
    }

    fn is_x26x(&self) -> bool {
        matches!(self.vcodec.as_str(), "libx264" | "libx265")
    }

    /// Checks that this FFmpeg build can run these settings: the encoder exists, takes
    /// `pix_fmt`, and the numeric options are in range.
    pub fn validate(&self) -> Result<()> {
        self.validate_for(3)
    }

    /// [`validate`](Self::validate) for a depth stream: one component (`gray12le`) is
    /// enough, as LeRobot's `DepthEncoderConfig` allows.
    pub fn validate_depth(&self) -> Result<()> {
        self.validate_for(1)
    }

    fn validate_for(&self, min_components: u8) -> Result<()> {
        crate::init();
        let s = self.clone().resolved();
        if s.is_builtin_svt() {
            return s.validate_builtin_svt();
        }
        let codec = ff::encoder::find_by_name(&s.vcodec).filter(|c| c.is_video());
        let Some(codec) = codec else {
            let have: Vec<&str> = KNOWN_ENCODERS
                .iter()
                .copied()
                .filter(|n| encoder_available(n))
                .collect();
            return Err(Error::invalid(format!(
                "unknown or unavailable video encoder '{}'; this FFmpeg build has: {}",
                self.vcodec,
                have.join(", ")
            )));
        };
        let pix = ff::format::Pixel::from_str(&s.pix_fmt)
            .map_err(|_| Error::invalid(format!("unknown pixel format '{}'", s.pix_fmt)))?;
        if let Ok(video) = codec.video() {
            if let Some(formats) = video.formats() {
                let formats: Vec<ff::format::Pixel> = formats.collect();
                if !formats.contains(&pix) {
                    let names: Vec<String> = formats
                        .iter()
                        .filter_map(|p| p.descriptor().map(|d| d.name().to_string()))
                        .collect();
                    return Err(Error::invalid(format!(
                        "pixel format '{}' is not supported by {} (supported: {})",
                        s.pix_fmt,
                        s.vcodec,
                        names.join(", ")
                    )));
                }
            }
        }
        if let Some(desc) = pix.descriptor() {
            if desc.nb_components() < min_components {
                let kind = if min_components >= 3 { "RGB" } else { "depth" };
                return Err(Error::invalid(format!(
                    "pixel format '{}' has {} component(s); {kind} cameras need at least {min_components}",
                    s.pix_fmt,
                    desc.nb_components()
                )));
            }
        }
        s.validate_numbers()
    }

    /// The built-in SVT-AV1 takes 8-bit yuv420p only; then the same numeric checks.
    fn validate_builtin_svt(&self) -> Result<()> {
        if self.pix_fmt != "yuv420p" {
            return Err(Error::invalid(format!(
                "pixel format '{}' is not supported by libsvtav1 ({}): it encodes 8-bit yuv420p only",
                self.pix_fmt,
                crate::encoder::builtin_svt_description()
            )));
        }
        self.validate_numbers()
    }

    fn validate_numbers(&self) -> Result<()> {
        let s = self;
        if s.g == Some(0) {
            return Err(Error::invalid("g (GOP size) must be a positive integer"));
        }
        if let Some(crf) = s.crf {
            if !crf.is_finite() {
                return Err(Error::invalid(format!("crf {crf} is not a number")));
            }
        }
        if s.is_svt() {
            if let Some(p) = &s.preset {
                let v: i64 = p.trim().parse().map_err(|_| {
                    Error::invalid(format!(
                        "libsvtav1 preset '{p}' must be an integer in [-2, 13]"
                    ))
                })?;
                if !(-2..=13).contains(&v) {
                    return Err(Error::invalid(format!(
                        "libsvtav1 preset {v} out of range [-2, 13]"
                    )));
                }
            }
            if let Some(crf) = s.crf {
                if crf.fract() != 0.0 || !(0.0..=63.0).contains(&crf) {
                    return Err(Error::invalid(format!(
                        "libsvtav1 crf {crf} must be an integer in [0, 63]"
                    )));
                }
            }
        }
        if s.is_x26x() {
            if let Some(crf) = s.crf {
                if !(0.0..=51.0).contains(&crf) {
                    return Err(Error::invalid(format!(
                        "{} crf {crf} out of range [0, 51]",
                        s.vcodec
                    )));
                }
            }
        }
        Ok(())
    }

    /// LeRobot's `get_codec_options` mapping as strings, plus reel's additions (x264/x265
    /// get `bf=0`: appends need a constant decode delay; not x265 depth streams, see below),
    /// then the `extra` options not already set.
    pub fn codec_options(&self) -> Vec<(String, String)> {
        let s = self.clone().resolved();
        let mut o: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: String| o.push((k.to_string(), v));
        if let Some(g) = s.g {
            put("g", g.to_string());
        }
        match s.vcodec.as_str() {
            "libsvtav1" => {
                if let Some(c) = s.crf {
                    put("crf", num_str(c));
                }
                if let Some(p) = &s.preset {
                    put("preset", p.clone());
                }
                let mut params = format!("fast-decode={}", s.fast_decode.min(2));
                if let Some(t) = s.threads {
                    params.push_str(&format!(":lp={t}"));
                }
                put("svtav1-params", params);
            }
            "libx264" | "libx265" => {
                if let Some(c) = s.crf {
                    put("crf", num_str(c));
                }
                if let Some(p) = &s.preset {
                    put("preset", p.clone());
                }
                if s.fast_decode > 0 {
                    put("tune", "fastdecode".into());
                }
                if let Some(t) = s.threads {
                    put("threads", t.to_string());
                }
                // A depth stream keeps x265's B-frames, as LeRobot's depth files have them:
                // the first file's sample entry (its SPS reorder depth) is what a decoder of
                // a concatenation uses, so a reel file without reordering followed by LeRobot's
                // would decode LeRobot's frames out of order. x265 at `g` 2 has a constant
                // decode delay of 2 frames, so reel's segments still append to each other.
                if !(s.vcodec == "libx265" && s.pix_fmt == crate::depth::DEPTH_PIX_FMT) {
                    put("bf", "0".into());
                }
            }
            "libaom-av1" => {
                if let Some(c) = s.crf {
                    put("crf", num_str(c));
                }
                if let Some(p) = &s.preset {
                    put("preset", p.clone());
                }
                if let Some(t) = s.threads {
                    put("threads", t.to_string());
                    put("row-mt", "1".into());
                }
            }
            "h264_videotoolbox" | "hevc_videotoolbox" => {
                if let Some(c) = s.crf {
                    put("q:v", num_str((100.0 - 2.0 * c).clamp(1.0, 100.0)));
                }
            }
            "h264_nvenc" | "hevc_nvenc" => {
                put("rc", "0".into());
                if let Some(c) = s.crf {
                    put("qp", num_str(c));
                }
                if let Some(p) = &s.preset {
                    put("preset", p.clone());
                }
            }
            "h264_vaapi" => {
                if let Some(c) = s.crf {
                    put("qp", num_str(c));
                }
            }
            "h264_qsv" => {
                if let Some(c) = s.crf {
                    put("global_quality", num_str(c));
                }
                if let Some(p) = &s.preset {
                    put("preset", p.clone());
                }
            }
            _ => {
                if let Some(c) = s.crf {
                    put("crf", num_str(c));
                }
                if let Some(p) = &s.preset {
                    put("preset", p.clone());
                }
            }
        }
        for (k, v) in &s.extra {
            if !o.iter().any(|(kk, _)| kk == k) {
                o.push((k.clone(), v.clone()));
            }
        }
        o
    }

    /// The codec's canonical name as ffprobe prints it: "av1", "h264", "hevc".
    pub fn codec_family(&self) -> Result<String> {
        crate::init();
        let s = self.clone().resolved();
        if s.is_builtin_svt() {
            return Ok("av1".into());
        }
        let codec = ff::encoder::find_by_name(&s.vcodec)
            .ok_or_else(|| Error::invalid(format!("unknown video encoder '{}'", self.vcodec)))?;
        Ok(codec.id().name().to_string())
    }

    /// `info.json` encoder fields in LeRobot's order: video.g, video.crf, video.preset,
    /// video.fast_decode, video.video_backend, video.extra_options.
    pub fn info_fields(&self) -> Vec<(String, serde_json::Value)> {
        use serde_json::Value;
        let s = self.clone().resolved();
        let crf = match s.crf {
            Some(c) if c.fract() == 0.0 && c.abs() < 1e15 => Value::from(c as i64),
            Some(c) => serde_json::Number::from_f64(c)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            None => Value::Null,
        };
        let preset = match &s.preset {
            None => Value::Null,
            Some(p) => match p.trim().parse::<i64>() {
                Ok(v) => Value::from(v),
                Err(_) => Value::from(p.clone()),
            },
        };
        let extra: serde_json::Map<String, Value> = s
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        vec![
            (
                "video.g".into(),
                s.g.map(Value::from).unwrap_or(Value::Null),
            ),
            ("video.crf".into(), crf),
            ("video.preset".into(), preset),
            ("video.fast_decode".into(), Value::from(s.fast_decode)),
            ("video.video_backend".into(), Value::from("pyav")),
            ("video.extra_options".into(), Value::Object(extra)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &EncoderSettings) -> Vec<(String, String)> {
        s.codec_options()
    }
    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn lerobot_default_options() {
        let s = EncoderSettings::lerobot_default();
        assert_eq!(
            opts(&s),
            kv(&[
                ("g", "2"),
                ("crf", "30"),
                ("preset", "12"),
                ("svtav1-params", "fast-decode=0")
            ])
        );
        let mut t = s.clone();
        t.threads = Some(4);
        t.fast_decode = 5;
        assert_eq!(opts(&t)[3].1, "fast-decode=2:lp=4");
    }

    #[test]
    fn aliases_and_other_codecs() {
        let s = EncoderSettings::lerobot_default().with_codec("h264");
        assert_eq!(s.vcodec, "libx264");
        assert_eq!(s.preset, None);
        assert_eq!(opts(&s), kv(&[("g", "2"), ("crf", "30"), ("bf", "0")]));
        assert_eq!(
            EncoderSettings::lerobot_default().with_codec("hevc").vcodec,
            "libx265"
        );
        assert_eq!(
            EncoderSettings::lerobot_default().with_codec("h265").vcodec,
            "libx265"
        );
        let av1 = EncoderSettings::lerobot_default()
            .with_codec("libx264")
            .with_codec("av1");
        assert_eq!(av1, EncoderSettings::lerobot_default());
        let nv = EncoderSettings::lerobot_default().with_codec("h264_nvenc");
        assert_eq!(opts(&nv), kv(&[("g", "2"), ("rc", "0"), ("qp", "30")]));
        let vt = EncoderSettings::lerobot_default().with_codec("h264_videotoolbox");
        assert_eq!(opts(&vt), kv(&[("g", "2"), ("q:v", "40")]));
        let mut x = EncoderSettings::lerobot_default().with_codec("libx264");
        x.extra = vec![
            ("crf".into(), "1".into()),
            ("tune".into(), "zerolatency".into()),
        ];
        assert_eq!(
            opts(&x),
            kv(&[
                ("g", "2"),
                ("crf", "30"),
                ("bf", "0"),
                ("tune", "zerolatency")
            ])
        );
    }

    #[test]
    fn validation() {
        assert!(EncoderSettings::lerobot_default().validate().is_ok());
        assert!(EncoderSettings::lerobot_default()
            .with_codec("h264")
            .validate()
            .is_ok());
        let e = EncoderSettings::lerobot_default()
            .with_codec("libnope")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("libnope") && e.contains("libsvtav1"), "{e}");
        let mut s = EncoderSettings::lerobot_default();
        s.preset = Some("14".into());
        assert!(s.validate().unwrap_err().to_string().contains("preset"));
        let mut s = EncoderSettings::lerobot_default();
        s.crf = Some(30.5);
        assert!(s.validate().is_err());
        s.crf = Some(64.0);
        assert!(s.validate().is_err());
        let mut s = EncoderSettings::lerobot_default().with_codec("libx264");
        s.crf = Some(52.0);
        assert!(s.validate().is_err());
        let mut s = EncoderSettings::lerobot_default();
        s.pix_fmt = "rgb48be".into();
        assert!(s.validate().unwrap_err().to_string().contains("rgb48be"));
        s.pix_fmt = "nonsense".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn family_and_info_fields() {
        assert_eq!(
            EncoderSettings::lerobot_default().codec_family().unwrap(),
            "av1"
        );
        assert_eq!(
            EncoderSettings::lerobot_default()
                .with_codec("h264")
                .codec_family()
                .unwrap(),
            "h264"
        );
        assert_eq!(
            EncoderSettings::lerobot_default()
                .with_codec("hevc")
                .codec_family()
                .unwrap(),
            "hevc"
        );
        let f = EncoderSettings::lerobot_default().info_fields();
        let j = serde_json::Value::Object(f.into_iter().collect());
        assert_eq!(
            j.to_string(),
            r#"{"video.g":2,"video.crf":30,"video.preset":12,"video.fast_decode":0,"video.video_backend":"pyav","video.extra_options":{}}"#
        );
        let f = EncoderSettings::lerobot_default()
            .with_codec("h264")
            .info_fields();
        assert_eq!(f[2].1, serde_json::Value::Null);
    }
}
