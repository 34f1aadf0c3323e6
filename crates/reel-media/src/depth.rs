//! Depth maps as LeRobot 0.6.1 stores them (`lerobot/datasets/depth_utils.py`,
//! `lerobot/configs/video.py`): uint16 millimetres are quantised to 12-bit codes
//! (logarithmic by default: more codes near the camera) and encoded as lossless HEVC in
//! `gray12le`. [`DepthQuant`] holds the quantiser's parameters (metres, LeRobot's defaults),
//! [`DepthTable`] maps every possible millimetre value to its code with LeRobot's float32
//! arithmetic (so reel stores the codes LeRobot's writer stores), and
//! [`depth_encoder_settings`] is LeRobot's `DepthEncoderConfig` as [`EncoderSettings`].

use reel_core::{Error, Result};
use serde_json::Value;

use crate::EncoderSettings;

/// The largest 12-bit code (LeRobot's `DEPTH_QMAX`).
pub const DEPTH_QMAX: u16 = 4095;
/// The pixel format and unit of depth streams (shared with the format crate, which names them
/// in `info.json` without encoding anything).
pub use reel_core::feature::{DEPTH_PIX_FMT, DEPTH_UNIT_MM};

/// The depth quantiser's parameters, in metres: `depth_min` maps to code 0, `depth_max`
/// to [`DEPTH_QMAX`], `shift` is added before the logarithm when `use_log`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepthQuant {
    pub depth_min: f64,
    pub depth_max: f64,
    pub shift: f64,
    pub use_log: bool,
}

impl Default for DepthQuant {
    /// LeRobot's defaults: 0.01 m, 10.0 m, shift 3.5 m, logarithmic.
    fn default() -> Self {
        DepthQuant {
            depth_min: 0.01,
            depth_max: 10.0,
            shift: 3.5,
            use_log: true,
        }
    }
}

/// Python's `repr` of a float as JSON: 10.0 stays a float (`10.0`), as LeRobot writes it.
fn float_value(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

impl DepthQuant {
    /// Refuses parameters LeRobot refuses (`depth_min + shift <= 0` in log mode) and those
    /// that map every depth to one code (`depth_max <= depth_min`, non-finite values).
    pub fn validate(&self) -> Result<()> {
        let all = [self.depth_min, self.depth_max, self.shift];
        if all.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "depth quantiser parameters must be finite: depth_min {}, depth_max {}, shift {}",
                self.depth_min, self.depth_max, self.shift
            )));
        }
        if self.depth_max <= self.depth_min {
            return Err(Error::invalid(format!(
                "depth_max ({} m) must be greater than depth_min ({} m)",
                self.depth_max, self.depth_min
            )));
        }
        if self.use_log && self.depth_min + self.shift <= 0.0 {
            return Err(Error::invalid(format!(
                "depth_min + shift must be positive for logarithmic quantization, got depth_min={} + shift={}",
                self.depth_min, self.shift
            )));
        }
        if self.use_log && self.shift < 0.0 {
            // ln(mm + shift) of a small reading would be undefined (NumPy's NaN → an
            // unspecified code); refuse instead of storing garbage.
            return Err(Error::invalid(format!(
                "a negative depth shift ({} m) leaves readings below {} mm without a code",
                self.shift,
                -self.shift * 1000.0
            )));
        }
        Ok(())
    }

    /// The code of every uint16 millimetre value, computed as LeRobot's `quantize_depth`
    /// computes it for integer input under NumPy 2 (float32 throughout; the two log bounds
    /// in float64, then rounded to float32; `rint` rounds half to even). The float32
    /// logarithm is the correctly rounded one (computed in float64): NumPy's SIMD `log`
    /// is not correctly rounded and differs between CPUs (AVX-512, AVX2, scalar), so
    /// LeRobot's own codes vary by one at a few rounding boundaries from machine to machine
    /// (spec §9); reel's table is the same on every machine.
    pub fn table(&self) -> Result<DepthTable> {
        self.validate()?;
        let mm = |m: f64| (m * 1000.0) as f32;
        let (dmin, dmax, shift) = (mm(self.depth_min), mm(self.depth_max), mm(self.shift));
        let qmax = DEPTH_QMAX as f32;
        let code = |norm: f32| -> u16 {
            let q = (norm * qmax).round_ties_even();
            if q.is_nan() || q <= 0.0 {
                0
            } else if q >= qmax {
                DEPTH_QMAX
            } else {
                q as u16
            }
        };
        let codes: Vec<u16> = if self.use_log {
            let log_min = f64::from(dmin + shift).ln();
            let log_max = f64::from(dmax + shift).ln();
            let (lo, range) = (log_min as f32, (log_max - log_min) as f32);
            (0..=u16::MAX)
                .map(|d| code((ln_f32(f32::from(d) + shift) - lo) / range))
                .collect()
        } else {
            let range = dmax - dmin;
            (0..=u16::MAX)
                .map(|d| code((f32::from(d) - dmin) / range))
                .collect()
        };
        Ok(DepthTable { codes })
    }

    /// The `info.json` fields LeRobot's depth encoder adds after the common encoder fields,
    /// in `DepthEncoderConfig`'s order.
    pub fn info_fields(&self) -> Vec<(String, Value)> {
        vec![
            ("video.depth_min".into(), float_value(self.depth_min)),
            ("video.depth_max".into(), float_value(self.depth_max)),
            ("video.shift".into(), float_value(self.shift)),
            ("video.use_log".into(), Value::Bool(self.use_log)),
        ]
    }

    /// Reads the parameters back from a feature's `info` (`video.depth_min`, …), each
    /// missing key falling back to LeRobot's default, as `DepthEncoderConfig.from_video_info`.
    pub fn from_info(info: &serde_json::Map<String, Value>) -> Result<Self> {
        let d = DepthQuant::default();
        let num = |k: &str, dflt: f64| -> Result<f64> {
            match info.get(k) {
                None | Some(Value::Null) => Ok(dflt),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| Error::invalid(format!("info key '{k}' is not a number: {v}"))),
            }
        };
        let use_log = match info.get("video.use_log") {
            None | Some(Value::Null) => d.use_log,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(Error::invalid(format!(
                    "info key 'video.use_log' is not a boolean: {v}"
                )))
            }
        };
        let q = DepthQuant {
            depth_min: num("video.depth_min", d.depth_min)?,
            depth_max: num("video.depth_max", d.depth_max)?,
            shift: num("video.shift", d.shift)?,
            use_log,
        };
        q.validate()?;
        Ok(q)
    }
}

/// The correctly rounded float32 natural logarithm (via float64), the same on every machine.
fn ln_f32(x: f32) -> f32 {
    f64::from(x).ln() as f32
}

/// Millimetres → 12-bit code for all 65536 inputs (128 KiB, built once per camera).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthTable {
    codes: Vec<u16>,
}

impl DepthTable {
    /// The code of one reading.
    pub fn code(&self, mm: u16) -> u16 {
        self.codes
            .get(usize::from(mm))
            .copied()
            .unwrap_or(DEPTH_QMAX)
    }
    /// Quantises a frame of readings into `out` (cleared first).
    pub fn quantize_into(&self, mm: &[u16], out: &mut Vec<u16>) {
        out.clear();
        out.extend(mm.iter().map(|&d| self.code(d)));
    }
    /// All codes, indexed by millimetres.
    pub fn codes(&self) -> &[u16] {
        &self.codes
    }
}

/// LeRobot's `DepthEncoderConfig` defaults as encoder settings: HEVC (libx265), `gray12le`,
/// GOP 2, crf 30 (ignored by x265 in lossless mode, still recorded), no preset,
/// `x265-params=lossless=1`.
pub fn depth_encoder_settings() -> EncoderSettings {
    EncoderSettings {
        vcodec: "libx265".into(),
        pix_fmt: DEPTH_PIX_FMT.into(),
        g: Some(2),
        crf: Some(30.0),
        preset: None,
        fast_decode: 0,
        threads: None,
        extra: vec![("x265-params".into(), "lossless=1".into())],
        fault: None,
    }
}

/// How a dataset's depth cameras are encoded: LeRobot's `DepthEncoderConfig` (the encoder
/// settings and the quantiser), the same for every depth camera of the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthEncoding {
    pub encoder: EncoderSettings,
    pub quant: DepthQuant,
}

impl Default for DepthEncoding {
    /// LeRobot 0.6.1's defaults: lossless 12-bit HEVC, log quantisation over 0.01–10 m.
    fn default() -> Self {
        DepthEncoding {
            encoder: depth_encoder_settings(),
            quant: DepthQuant::default(),
        }
    }
}

impl DepthEncoding {
    /// Refuses what LeRobot's depth path would not store losslessly as 12-bit codes: any
    /// codec but HEVC through libx265 (`hevc` is PyAV's name for it), any pixel format but
    /// `gray12le` (LeRobot's streaming depth path quantises to `gray12le` whatever `pix_fmt`
    /// says, spec §9.13), quantiser parameters LeRobot refuses.
    pub fn validate(&self) -> Result<()> {
        if self.encoder.vcodec != "libx265" {
            return Err(Error::invalid(format!(
                "depth cameras are encoded with libx265 (LeRobot's depth codec, hevc), not '{}'",
                self.encoder.vcodec
            )));
        }
        if self.encoder.pix_fmt != DEPTH_PIX_FMT {
            return Err(Error::invalid(format!(
                "depth cameras are stored as {DEPTH_PIX_FMT} (12-bit codes), not '{}'",
                self.encoder.pix_fmt
            )));
        }
        self.quant.validate()?;
        self.encoder.validate_depth()
    }

    /// The `info.json` fields of a depth stream after the stream-derived ones: the encoder's
    /// (`video.g` … `video.extra_options`), then the quantiser's, as LeRobot writes them.
    pub fn info_fields(&self) -> Vec<(String, Value)> {
        let mut f = self.encoder.info_fields();
        f.extend(self.quant.info_fields());
        f
    }

    /// The settings a dataset's depth block records (`video.g`, `video.crf`, …,
    /// `video.depth_min`, …), each missing key LeRobot's default: how a resumed session
    /// encodes its depth cameras as the dataset's first episodes were.
    pub fn from_info(info: &serde_json::Map<String, Value>) -> Result<Self> {
        let mut d = DepthEncoding {
            quant: DepthQuant::from_info(info)?,
            ..DepthEncoding::default()
        };
        if let Some(g) = info.get("video.g").and_then(Value::as_u64) {
            d.encoder.g = Some(g as u32);
        }
        if let Some(crf) = info.get("video.crf").and_then(Value::as_f64) {
            d.encoder.crf = Some(crf);
        }
        if let Some(Value::Object(extra)) = info.get("video.extra_options") {
            d.encoder.extra = extra
                .iter()
                .map(|(k, v)| {
                    let v = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (k.clone(), v)
                })
                .collect();
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_endpoints_and_monotonic() {
        let t = DepthQuant::default().table().unwrap();
        assert_eq!(t.codes().len(), 65536);
        assert_eq!(t.code(0), 0);
        assert_eq!(t.code(10), 0);
        assert_eq!(t.code(10_000), DEPTH_QMAX);
        assert_eq!(t.code(u16::MAX), DEPTH_QMAX);
        assert!(t.codes().windows(2).all(|w| w[0] <= w[1]));
        // Log quantisation spends more codes near the camera than far away.
        assert!(t.code(1000) - t.code(500) > t.code(9500) - t.code(9000));
        let lin = DepthQuant {
            use_log: false,
            ..DepthQuant::default()
        }
        .table()
        .unwrap();
        assert_eq!(lin.code(5005), 2048);
    }

    #[test]
    fn bad_parameters_are_refused() {
        for q in [
            DepthQuant {
                depth_max: 0.01,
                ..DepthQuant::default()
            },
            DepthQuant {
                shift: -0.02,
                ..DepthQuant::default()
            },
            DepthQuant {
                depth_min: f64::NAN,
                ..DepthQuant::default()
            },
        ] {
            assert!(q.table().is_err(), "{q:?}");
        }
        let mut info = serde_json::Map::new();
        info.insert("video.use_log".into(), Value::from("yes"));
        assert!(DepthQuant::from_info(&info).is_err());
        info.insert("video.use_log".into(), Value::Bool(false));
        info.insert("video.depth_max".into(), Value::from(4.0));
        let q = DepthQuant::from_info(&info).unwrap();
        assert_eq!((q.depth_max, q.use_log, q.shift), (4.0, false, 3.5));
    }

    #[test]
    fn settings_and_info_fields() {
        let s = depth_encoder_settings();
        assert_eq!(
            s.codec_options(),
            vec![
                ("g".to_string(), "2".to_string()),
                ("crf".into(), "30".into()),
                ("x265-params".into(), "lossless=1".into())
            ]
        );
        let j = Value::Object(
            s.info_fields()
                .into_iter()
                .chain(DepthQuant::default().info_fields())
                .collect(),
        );
        assert_eq!(
            j.to_string(),
            r#"{"video.g":2,"video.crf":30,"video.preset":null,"video.fast_decode":0,"video.video_backend":"pyav","video.extra_options":{"x265-params":"lossless=1"},"video.depth_min":0.01,"video.depth_max":10.0,"video.shift":3.5,"video.use_log":true}"#
        );
    }
}
