//! The schema of a dataset row (LeRobot "features") and the values of one row.

use crate::{Error, Result, SharedFrame};

/// The pixel format depth streams are encoded in (LeRobot's `DEFAULT_DEPTH_PIX_FMT`).
pub const DEPTH_PIX_FMT: &str = "gray12le";
/// The unit reel's depth input is in: uint16 millimetres (LeRobot's `depth_unit` "mm").
pub const DEPTH_UNIT_MM: &str = "mm";

/// Data type of a feature, as written in LeRobot's `info.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    Float32,
    Float64,
    Int64,
    Bool,
    /// A camera stored as an MP4 video.
    Video,
    /// A string column.
    String,
}

impl Dtype {
    /// The `info.json` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Float32 => "float32",
            Dtype::Float64 => "float64",
            Dtype::Int64 => "int64",
            Dtype::Bool => "bool",
            Dtype::Video => "video",
            Dtype::String => "string",
        }
    }
    /// Parses the `info.json` spelling.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "float32" => Dtype::Float32,
            "float64" => Dtype::Float64,
            "int64" => Dtype::Int64,
            "bool" => Dtype::Bool,
            "video" => Dtype::Video,
            "string" => Dtype::String,
            "image" => return Err(Error::invalid("dtype 'image' (frames stored as PNG files, LeRobot's --dataset.video=false) is not recorded by reel: declare cameras as 'video'")),
            "language" => return Err(Error::invalid("dtype 'language' (annotation columns LeRobot fills after recording) is not recorded by reel")),
            other => return Err(Error::invalid(format!("unsupported feature dtype '{other}' (reel supports float32, float64, int64, bool, video, string)"))),
        })
    }
    /// True for numeric dtypes (those with statistics computed from the data column).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Dtype::Float32 | Dtype::Float64 | Dtype::Int64 | Dtype::Bool
        )
    }
}

/// One feature: dtype, shape and optional per-dimension names.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub dtype: Dtype,
    /// For vectors `[n]`; for cameras `[height, width, 3]`, for depth cameras
    /// `[height, width, 1]` (LeRobot's `is_depth_map` features).
    pub shape: Vec<usize>,
    pub names: Option<Vec<String>>,
}

impl Feature {
    /// A float32 vector feature with named dimensions (`action`, `observation.state`).
    pub fn vector_f32(names: &[&str]) -> Self {
        Feature {
            dtype: Dtype::Float32,
            shape: vec![names.len()],
            names: Some(names.iter().map(|s| s.to_string()).collect()),
        }
    }
    /// A camera feature of `height x width` RGB.
    pub fn video(height: u32, width: u32) -> Self {
        Feature {
            dtype: Dtype::Video,
            shape: vec![height as usize, width as usize, 3],
            names: Some(vec!["height".into(), "width".into(), "channels".into()]),
        }
    }
    /// A depth camera feature of `height x width` (one channel, LeRobot's shape and names;
    /// frames are uint16 millimetres).
    pub fn depth(height: u32, width: u32) -> Self {
        Feature {
            dtype: Dtype::Video,
            shape: vec![height as usize, width as usize, 1],
            names: Some(vec!["height".into(), "width".into(), "channels".into()]),
        }
    }
    /// True for a depth camera: a video feature with one channel (LeRobot flags exactly these
    /// `is_depth_map`, `hw_to_dataset_features`).
    pub fn is_depth(&self) -> bool {
        self.dtype == Dtype::Video && self.shape.len() == 3 && self.shape[2] == 1
    }
    /// Bytes per pixel of this camera's frames: 3 (RGB24) or 2 (uint16 millimetres).
    pub fn frame_bytes_per_pixel(&self) -> usize {
        if self.is_depth() {
            2
        } else {
            3
        }
    }
    /// Number of scalar elements per row (product of the shape).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// (height, width) of a video feature.
    pub fn video_hw(&self) -> Option<(u32, u32)> {
        (self.dtype == Dtype::Video && self.shape.len() == 3)
            .then(|| (self.shape[0] as u32, self.shape[1] as u32))
    }
}

/// The five columns LeRobot appends to every dataset, in order.
pub const DEFAULT_FEATURES: [(&str, Dtype); 5] = [
    ("timestamp", Dtype::Float32),
    ("frame_index", Dtype::Int64),
    ("episode_index", Dtype::Int64),
    ("index", Dtype::Int64),
    ("task_index", Dtype::Int64),
];

/// The names of [`DEFAULT_FEATURES`].
pub const DEFAULT_FEATURES_NAMES: [&str; 5] = [
    "timestamp",
    "frame_index",
    "episode_index",
    "index",
    "task_index",
];

/// The user features of a dataset, in insertion order (the order of `info.json`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Features {
    items: Vec<(String, Feature)>,
}

impl Features {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a feature; names must be unique, non-empty, without '/', and not one of the defaults.
    pub fn push(&mut self, name: impl Into<String>, feature: Feature) -> Result<()> {
        let name = name.into();
        if name.is_empty() || name.contains('/') {
            return Err(Error::invalid(format!(
                "feature name '{name}' must be non-empty and must not contain '/'"
            )));
        }
        if DEFAULT_FEATURES.iter().any(|(d, _)| *d == name) {
            return Err(Error::invalid(format!(
                "feature name '{name}' is reserved by LeRobot"
            )));
        }
        if self.get(&name).is_some() {
            return Err(Error::invalid(format!("feature '{name}' declared twice")));
        }
        if feature.shape.is_empty() || feature.shape.contains(&0) {
            return Err(Error::invalid(format!(
                "feature '{name}': shape {:?} must be non-empty positive",
                feature.shape
            )));
        }
        if feature.dtype == Dtype::Video
            && (feature.shape.len() != 3 || (feature.shape[2] != 3 && feature.shape[2] != 1))
        {
            return Err(Error::invalid(format!(
                "camera '{name}': shape {:?} must be [height, width, 3] (RGB) or [height, width, 1] (depth)",
                feature.shape
            )));
        }
        if let Some(n) = &feature.names {
            if feature.shape.len() == 1 && n.len() != feature.shape[0] {
                return Err(Error::invalid(format!(
                    "feature '{name}': {} names for shape {:?}",
                    n.len(),
                    feature.shape
                )));
            }
        }
        self.items.push((name, feature));
        Ok(())
    }
    /// Builder-style [`push`](Self::push).
    pub fn with(mut self, name: impl Into<String>, feature: Feature) -> Result<Self> {
        self.push(name, feature)?;
        Ok(self)
    }
    pub fn get(&self, name: &str) -> Option<&Feature> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, f)| f)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Feature)> {
        self.items.iter().map(|(n, f)| (n.as_str(), f))
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Checks that a row's feature names are exactly this schema's: one error listing every
    /// missing and every unknown name (LeRobot's `validate_frame` reports both the same way).
    pub fn check_keys<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let keys: Vec<&str> = keys.into_iter().collect();
        let missing: Vec<&str> = self
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !keys.contains(n))
            .collect();
        let extra: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| self.get(k).is_none())
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("frame is missing features {missing:?}"));
        }
        if !extra.is_empty() {
            parts.push(format!("frame has features not in the dataset: {extra:?}"));
        }
        if parts.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(parts.join("; ")))
        }
    }

    /// Names of the video features, in order.
    pub fn video_keys(&self) -> Vec<String> {
        self.iter()
            .filter(|(_, f)| f.dtype == Dtype::Video)
            .map(|(n, _)| n.to_string())
            .collect()
    }
    /// Names of the non-video features, in order (the data parquet columns before the defaults).
    pub fn data_keys(&self) -> Vec<String> {
        self.iter()
            .filter(|(_, f)| f.dtype != Dtype::Video)
            .map(|(n, _)| n.to_string())
            .collect()
    }
}

/// The value of one feature in one row.
#[derive(Debug, Clone)]
pub enum Value {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    Str(String),
    Video(SharedFrame),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::F32(_) => "float32",
            Value::F64(_) => "float64",
            Value::I64(_) => "int64",
            Value::Bool(_) => "bool",
            Value::Str(_) => "string",
            Value::Video(_) => "video frame",
        }
    }
    /// Number of scalar elements (0 for strings and frames).
    pub fn len(&self) -> usize {
        match self {
            Value::F32(x) => x.len(),
            Value::F64(x) => x.len(),
            Value::I64(x) => x.len(),
            Value::Bool(x) => x.len(),
            Value::Str(_) | Value::Video(_) => 0,
        }
    }
    /// True when [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checks this value against its feature: dtype and shape must match exactly.
    pub fn check(&self, name: &str, f: &Feature) -> Result<()> {
        let fail = |what: String| Err(Error::invalid(format!("feature '{name}': {what}")));
        match (self, f.dtype) {
            (Value::Str(_), Dtype::String) => Ok(()),
            (Value::Video(fr), Dtype::Video) => {
                let (h, w) = f.video_hw().unwrap_or((0, 0));
                let want = w as usize * h as usize * f.frame_bytes_per_pixel();
                if fr.width != w || fr.height != h {
                    fail(format!(
                        "frame is {}x{}, the feature declares {}x{}",
                        fr.width, fr.height, w, h
                    ))
                } else if fr.data.len() != want {
                    let kind = if f.is_depth() {
                        "uint16 millimetres"
                    } else {
                        "RGB24"
                    };
                    fail(format!(
                        "a {w}x{h} frame of {kind} needs {want} bytes, got {}",
                        fr.data.len()
                    ))
                } else {
                    Ok(())
                }
            }
            (v, d) if d.is_numeric() && v.kind() == d.as_str() => {
                if v.len() == f.numel() {
                    Ok(())
                } else {
                    fail(format!(
                        "{} values, shape {:?} needs {}",
                        v.len(),
                        f.shape,
                        f.numel()
                    ))
                }
            }
            _ => fail(format!(
                "got {}, declared {} {:?}",
                self.kind(),
                f.dtype.as_str(),
                f.shape
            )),
        }
    }
}

/// The values of one row, by feature name, plus its task string.
#[derive(Debug, Clone, Default)]
pub struct RowValues {
    pub task: String,
    pub values: Vec<(String, Value)>,
}

impl RowValues {
    pub fn new(task: impl Into<String>) -> Self {
        RowValues {
            task: task.into(),
            values: Vec::new(),
        }
    }
    pub fn set(&mut self, name: impl Into<String>, v: Value) -> &mut Self {
        self.values.push((name.into(), v));
        self
    }
    pub fn with(mut self, name: impl Into<String>, v: Value) -> Self {
        self.values.push((name.into(), v));
        self
    }
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    /// Checks that the row has exactly the features of `schema`, each with the right dtype and shape.
    pub fn validate(&self, schema: &Features) -> Result<()> {
        if self.task.is_empty() {
            return Err(Error::invalid("frame has no task string"));
        }
        schema.check_keys(self.values.iter().map(|(n, _)| n.as_str()))?;
        for (name, f) in schema.iter() {
            if let Some(v) = self.get(name) {
                v.check(name, f)?;
            }
        }
        Ok(())
    }
}
