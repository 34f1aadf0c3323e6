//! `meta/info.json` (spec §1.6): written byte-identical to LeRobot's `json.dump(indent=4)`,
//! with its exact key orders, and parsed back (with errors naming the bad field) for resume.

use std::path::Path;

use reel_core::feature::DEFAULT_FEATURES;
use reel_core::journal::{write_atomic, Journal};
use reel_core::{Dtype, Error, Feature, Features, Result};

use crate::paths;
use crate::pyjson::{self, PyValue};

/// The `features[key]["info"]` block of a camera, members in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VideoInfo {
    pub fields: Vec<(String, serde_json::Value)>,
}

/// The keys of a video block that describe the stream itself (not the encoder's options).
pub const STREAM_KEYS: [&str; 5] = [
    "video.codec",
    "video.pix_fmt",
    "video.height",
    "video.width",
    "video.fps",
];

impl VideoInfo {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// True when both blocks describe the same stream format ([`STREAM_KEYS`]).
    pub fn same_stream(&self, other: &VideoInfo) -> bool {
        STREAM_KEYS.iter().all(|k| self.get(k) == other.get(k))
    }

    /// "av1 640x480 yuv420p 30 fps" (missing keys as "?").
    pub fn describe(&self) -> String {
        let v = |k: &str| {
            self.get(k)
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_else(|| "?".into())
        };
        format!(
            "{} {}x{} {} {} fps",
            v("video.codec"),
            v("video.width"),
            v("video.height"),
            v("video.pix_fmt"),
            v("video.fps")
        )
    }

    /// The [`STREAM_KEYS`] where `other` differs from `self`, as "video.codec h264 → av1"
    /// (numbers compared by value: LeRobot may write `30.0` where reel writes `30`).
    pub fn stream_differences(&self, other: &VideoInfo) -> Vec<String> {
        let text = |v: Option<&serde_json::Value>| match v {
            None => "?".to_string(),
            Some(v) => v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string()),
        };
        STREAM_KEYS
            .iter()
            .filter(|k| {
                let (a, b) = (self.get(k), other.get(k));
                match (a.and_then(|v| v.as_f64()), b.and_then(|v| v.as_f64())) {
                    (Some(x), Some(y)) => x != y,
                    _ => a != b,
                }
            })
            .map(|k| format!("{k} {} → {}", text(other.get(k)), text(self.get(k))))
            .collect()
    }

    /// The block LeRobot writes for a stream of `codec` (FFmpeg's codec name: av1, h264,
    /// hevc) at `width`x`height`, `fps`, `pix_fmt`, followed by the encoder's option fields.
    pub fn for_stream(
        codec: &str,
        width: u32,
        height: u32,
        fps: u32,
        pix_fmt: &str,
        encoder_fields: &[(String, serde_json::Value)],
    ) -> VideoInfo {
        let depth = pix_fmt == reel_core::feature::DEPTH_PIX_FMT;
        let mut fields = VideoInfo::head(depth);
        fields.extend([
            ("video.height".into(), height.into()),
            ("video.width".into(), width.into()),
            ("video.codec".into(), codec.into()),
            ("video.pix_fmt".into(), pix_fmt.into()),
            ("video.fps".into(), fps.into()),
            ("video.channels".into(), (if depth { 1 } else { 3 }).into()),
            ("has_audio".into(), false.into()),
        ]);
        fields.extend(encoder_fields.iter().cloned());
        VideoInfo { fields }
    }

    /// The keys a camera's block starts with, before the stream's: `is_depth_map` (the
    /// record pipeline's initial `info`), and for a depth camera the `depth_unit` LeRobot's
    /// writer adds at the episode's first frame (`"mm"`: reel's depth input is uint16
    /// millimetres).
    pub fn head(depth: bool) -> Vec<(String, serde_json::Value)> {
        let mut f = vec![("is_depth_map".to_string(), depth.into())];
        if depth {
            f.push((
                "depth_unit".into(),
                reel_core::feature::DEPTH_UNIT_MM.into(),
            ));
        }
        f
    }

    /// True when the block says `is_depth_map: true`.
    pub fn is_depth(&self) -> bool {
        self.get("is_depth_map") == Some(&serde_json::Value::Bool(true))
    }
}

/// Everything `meta/info.json` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub fps: u32,
    pub features: Features,
    /// Per video key; a key without an entry is written as `{"is_depth_map": false}`.
    pub video_info: Vec<(String, VideoInfo)>,
    pub total_episodes: u64,
    pub total_frames: u64,
    pub total_tasks: u64,
    pub chunks_size: u32,
    /// Written as an int when integral (LeRobot's default 100).
    pub data_files_size_in_mb: f64,
    /// Written as an int when integral (LeRobot's default 200).
    pub video_files_size_in_mb: f64,
    pub robot_type: Option<String>,
}

fn num_py(x: f64) -> PyValue {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        PyValue::Int(x as i128)
    } else {
        PyValue::Float(x)
    }
}

fn shape_py(shape: &[usize]) -> PyValue {
    PyValue::List(shape.iter().map(|&s| PyValue::Int(s as i128)).collect())
}

fn names_py(names: &Option<Vec<String>>) -> PyValue {
    match names {
        Some(n) => PyValue::List(n.iter().map(|s| PyValue::Str(s.clone())).collect()),
        None => PyValue::Null,
    }
}

impl Info {
    /// A fresh dataset: no episodes, LeRobot's default chunk and size limits.
    pub fn new(fps: u32, features: Features, robot_type: Option<String>) -> Info {
        Info {
            fps,
            features,
            video_info: Vec::new(),
            total_episodes: 0,
            total_frames: 0,
            total_tasks: 0,
            chunks_size: paths::DEFAULT_CHUNKS_SIZE,
            data_files_size_in_mb: paths::DEFAULT_DATA_FILE_SIZE_MB,
            video_files_size_in_mb: paths::DEFAULT_VIDEO_FILE_SIZE_MB,
            robot_type,
        }
    }

    /// The info block of a video key, if one was set.
    pub fn video_info_of(&self, key: &str) -> Option<&VideoInfo> {
        self.video_info
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    fn features_py(&self) -> PyValue {
        let mut items = Vec::new();
        for (name, f) in self.features.iter() {
            let dtype = PyValue::Str(f.dtype.as_str().into());
            let v = if f.dtype == Dtype::Video {
                let info = match self.video_info_of(name) {
                    Some(vi) => PyValue::Dict(
                        vi.fields
                            .iter()
                            .map(|(k, v)| (k.clone(), PyValue::from(v)))
                            .collect(),
                    ),
                    None => {
                        PyValue::Dict(vec![("is_depth_map".into(), PyValue::Bool(f.is_depth()))])
                    }
                };
                PyValue::Dict(vec![
                    ("dtype".into(), dtype),
                    ("shape".into(), shape_py(&f.shape)),
                    ("names".into(), names_py(&f.names)),
                    ("info".into(), info),
                ])
            } else {
                PyValue::Dict(vec![
                    ("dtype".into(), dtype),
                    ("names".into(), names_py(&f.names)),
                    ("shape".into(), shape_py(&f.shape)),
                ])
            };
            items.push((name.to_string(), v));
        }
        for (name, dtype) in DEFAULT_FEATURES {
            items.push((
                name.to_string(),
                PyValue::Dict(vec![
                    ("dtype".into(), PyValue::Str(dtype.as_str().into())),
                    ("shape".into(), shape_py(&[1])),
                    ("names".into(), PyValue::Null),
                ]),
            ));
        }
        PyValue::Dict(items)
    }

    /// The file content: LeRobot's key order, `json.dump(indent=4)` layout, no trailing newline.
    pub fn to_json(&self) -> String {
        let has_video = !self.features.video_keys().is_empty();
        let splits = if self.total_episodes > 0 {
            PyValue::Dict(vec![(
                "train".into(),
                PyValue::Str(format!("0:{}", self.total_episodes)),
            )])
        } else {
            PyValue::Dict(Vec::new())
        };
        let v = PyValue::Dict(vec![
            ("codebase_version".into(), PyValue::Str("v3.0".into())),
            ("fps".into(), PyValue::Int(self.fps as i128)),
            ("features".into(), self.features_py()),
            (
                "total_episodes".into(),
                PyValue::Int(self.total_episodes as i128),
            ),
            (
                "total_frames".into(),
                PyValue::Int(self.total_frames as i128),
            ),
            ("total_tasks".into(), PyValue::Int(self.total_tasks as i128)),
            ("chunks_size".into(), PyValue::Int(self.chunks_size as i128)),
            (
                "data_files_size_in_mb".into(),
                num_py(self.data_files_size_in_mb),
            ),
            (
                "video_files_size_in_mb".into(),
                num_py(self.video_files_size_in_mb),
            ),
            ("data_path".into(), PyValue::Str(paths::DATA_PATH.into())),
            (
                "video_path".into(),
                if has_video {
                    PyValue::Str(paths::VIDEO_PATH.into())
                } else {
                    PyValue::Null
                },
            ),
            (
                "robot_type".into(),
                self.robot_type
                    .clone()
                    .map(PyValue::Str)
                    .unwrap_or(PyValue::Null),
            ),
            ("splits".into(), splits),
        ]);
        pyjson::to_string_py(&v)
    }

    /// Parses `info.json` text; `path` names the file in errors ([`Error::Corrupt`]).
    pub fn parse(text: &str, path: &Path) -> Result<Info> {
        let bad = |msg: String| Error::corrupt(path, msg);
        pyjson::check_value_budget(text, pyjson::SERDE_VALUE_COST).map_err(bad)?;
        let root: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let obj = root
            .as_object()
            .ok_or_else(|| bad("top level is not an object".into()))?;
        match obj.get("codebase_version").and_then(|v| v.as_str()) {
            Some("v3.0") => {}
            Some(other) => {
                return Err(bad(format!(
                    "codebase_version is '{other}', reel reads only v3.0"
                )))
            }
            None => return Err(bad("codebase_version missing or not a string".into())),
        }
        let uint = |key: &str, default: Option<u64>| -> Result<u64> {
            match obj.get(key) {
                Some(v) => v.as_u64().ok_or_else(|| {
                    bad(format!("'{key}' must be a non-negative integer, found {v}"))
                }),
                None => default.ok_or_else(|| bad(format!("'{key}' missing"))),
            }
        };
        let float = |key: &str, default: f64| -> Result<f64> {
            match obj.get(key) {
                Some(v) => match v.as_f64() {
                    Some(x) if x > 0.0 && x.is_finite() => Ok(x),
                    _ => Err(bad(format!("'{key}' must be a positive number, found {v}"))),
                },
                None => Ok(default),
            }
        };
        let fps = uint("fps", None)?;
        if fps == 0 || fps > u32::MAX as u64 {
            return Err(bad(format!(
                "'fps' must be a positive integer, found {fps}"
            )));
        }
        let chunks_size = uint("chunks_size", Some(paths::DEFAULT_CHUNKS_SIZE as u64))?;
        if chunks_size == 0 || chunks_size > u32::MAX as u64 {
            return Err(bad(format!(
                "'chunks_size' must be a positive integer, found {chunks_size}"
            )));
        }
        let feats = obj
            .get("features")
            .and_then(|v| v.as_object())
            .ok_or_else(|| bad("'features' missing or not an object".into()))?;
        let mut features = Features::new();
        let mut video_info = Vec::new();
        for (name, fv) in feats {
            let fo = fv
                .as_object()
                .ok_or_else(|| bad(format!("features.{name} is not an object")))?;
            let dtype_s = fo
                .get("dtype")
                .and_then(|v| v.as_str())
                .ok_or_else(|| bad(format!("features.{name}.dtype missing or not a string")))?;
            let dtype =
                Dtype::parse(dtype_s).map_err(|e| bad(format!("features.{name}.dtype: {e}")))?;
            let shape = fo
                .get("shape")
                .and_then(|v| v.as_array())
                .ok_or_else(|| bad(format!("features.{name}.shape missing or not a list")))?
                .iter()
                .map(|x| x.as_u64().filter(|&n| n > 0).map(|n| n as usize))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| bad(format!("features.{name}.shape must hold positive integers")))?;
            if let Some((_, d)) = DEFAULT_FEATURES.iter().find(|(d, _)| d == name) {
                if *d != dtype || shape != [1] {
                    return Err(bad(format!(
                        "features.{name}: default feature must be {} [1]",
                        d.as_str()
                    )));
                }
                continue;
            }
            let names = match fo.get("names") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::Array(a)) => Some(
                    a.iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<Vec<String>>>()
                        .ok_or_else(|| bad(format!("features.{name}.names must be strings")))?,
                ),
                // LeRobot also accepts dicts of names (e.g. {"motors": [...]}); reel keeps only lists.
                Some(other) => {
                    return Err(bad(format!(
                        "features.{name}.names: unsupported value {other}"
                    )))
                }
            };
            if dtype == Dtype::Video {
                if let Some(info) = fo.get("info") {
                    let io = info
                        .as_object()
                        .ok_or_else(|| bad(format!("features.{name}.info is not an object")))?;
                    // `{"is_depth_map": false}` alone is how a key without video info is
                    // written (before its first episode): read it back as none, so that
                    // what is read writes back the same (found by fuzz_meta).
                    let depth_shape = fo
                        .get("shape")
                        .and_then(|v| v.as_array())
                        .is_some_and(|a| a.len() == 3 && a[2].as_u64() == Some(1));
                    let bare = io.len() == 1
                        && io.get("is_depth_map") == Some(&serde_json::Value::Bool(depth_shape));
                    let flagged = io.get("is_depth_map") == Some(&serde_json::Value::Bool(true));
                    if flagged != depth_shape {
                        return Err(bad(format!(
                            "features.{name}: is_depth_map is {flagged} but the shape has {} channel(s); reel reads depth maps as [height, width, 1] only",
                            if depth_shape { 1 } else { 3 }
                        )));
                    }
                    if !bare {
                        video_info.push((
                            name.clone(),
                            VideoInfo {
                                fields: io.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                            },
                        ));
                    }
                }
            }
            features
                .push(
                    name.clone(),
                    Feature {
                        dtype,
                        shape,
                        names,
                    },
                )
                .map_err(|e| bad(format!("features.{name}: {e}")))?;
        }
        for (d, _) in DEFAULT_FEATURES {
            if !feats.contains_key(d) {
                return Err(bad(format!(
                    "features.{d} (a LeRobot default feature) missing"
                )));
            }
        }
        let robot_type = match obj.get("robot_type") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(bad(format!(
                    "'robot_type' must be a string or null, found {other}"
                )))
            }
        };
        Ok(Info {
            fps: fps as u32,
            features,
            video_info,
            total_episodes: uint("total_episodes", Some(0))?,
            total_frames: uint("total_frames", Some(0))?,
            total_tasks: uint("total_tasks", Some(0))?,
            chunks_size: chunks_size as u32,
            data_files_size_in_mb: float(
                "data_files_size_in_mb",
                paths::DEFAULT_DATA_FILE_SIZE_MB,
            )?,
            video_files_size_in_mb: float(
                "video_files_size_in_mb",
                paths::DEFAULT_VIDEO_FILE_SIZE_MB,
            )?,
            robot_type,
        })
    }

    /// Reads `root/meta/info.json`.
    pub fn read(root: &Path) -> Result<Info> {
        let path = paths::info_file(root);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        Info::parse(&text, &path)
    }

    /// Writes `root/meta/info.json` atomically, journaled (the old content is restored on rollback).
    pub fn write(&self, root: &Path, journal: &mut Journal) -> Result<()> {
        let path = paths::info_file(root);
        journal.record_replace(&path)?;
        write_atomic(&path, self.to_json().as_bytes(), false)
    }

    /// Writes the info.json of a new dataset in one atomic step (a temporary file renamed
    /// into place, synced when `durable`): a crash leaves either no dataset or a complete,
    /// empty one that can be resumed — never a half-created one.
    pub fn write_new(&self, root: &Path, durable: bool) -> Result<()> {
        let path = paths::info_file(root);
        write_atomic(&path, self.to_json().as_bytes(), durable)?;
        if durable {
            if let Some(d) = path.parent() {
                reel_core::journal::sync_dir(d)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOTORS: [&str; 6] = [
        "shoulder_pan.pos",
        "shoulder_lift.pos",
        "elbow_flex.pos",
        "wrist_flex.pos",
        "wrist_roll.pos",
        "gripper.pos",
    ];

    fn so100() -> Features {
        Features::new()
            .with("action", Feature::vector_f32(&MOTORS))
            .unwrap()
            .with("observation.state", Feature::vector_f32(&MOTORS))
            .unwrap()
            .with("observation.images.front", Feature::video(480, 640))
            .unwrap()
    }

    fn indent(v: &serde_json::Value) -> String {
        pyjson::to_string(v)
    }

    #[test]
    fn info_json_matches_spec_example_bytes() {
        let mut info = Info::new(30, so100(), Some("so_follower".into()));
        info.total_episodes = 2;
        info.total_frames = 3600;
        info.total_tasks = 1;
        let vi: serde_json::Value = serde_json::json!({
            "is_depth_map": false, "video.height": 480, "video.width": 640, "video.codec": "av1",
            "video.pix_fmt": "yuv420p", "video.fps": 30, "video.channels": 3, "has_audio": false,
            "video.g": 2, "video.crf": 30, "video.preset": 12, "video.fast_decode": 0,
            "video.video_backend": "pyav", "video.extra_options": {}
        });
        info.video_info = vec![(
            "observation.images.front".into(),
            VideoInfo {
                fields: vi
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        )];
        // The spec example, built as Python would hold it (dict insertion order), then dumped.
        let motors: Vec<serde_json::Value> = MOTORS.iter().map(|m| serde_json::json!(m)).collect();
        let default = |d: &str| serde_json::json!({"dtype": d, "shape": [1], "names": null});
        let want = serde_json::json!({
            "codebase_version": "v3.0",
            "fps": 30,
            "features": {
                "action": {"dtype": "float32", "names": motors, "shape": [6]},
                "observation.state": {"dtype": "float32", "names": motors, "shape": [6]},
                "observation.images.front": {"dtype": "video", "shape": [480, 640, 3], "names": ["height", "width", "channels"], "info": vi},
                "timestamp": default("float32"),
                "frame_index": default("int64"),
                "episode_index": default("int64"),
                "index": default("int64"),
                "task_index": default("int64")
            },
            "total_episodes": 2, "total_frames": 3600, "total_tasks": 1, "chunks_size": 1000,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "robot_type": "so_follower",
            "splits": {"train": "0:2"}
        });
        let got = info.to_json();
        assert_eq!(got, indent(&want));
        assert!(got.starts_with("{\n    \"codebase_version\": \"v3.0\",\n    \"fps\": 30,\n    \"features\": {\n        \"action\": {\n            \"dtype\": \"float32\",\n            \"names\": [\n                \"shoulder_pan.pos\","));
        assert!(got.ends_with("    \"splits\": {\n        \"train\": \"0:2\"\n    }\n}"));
        // Round trip.
        let back = Info::parse(&got, Path::new("meta/info.json")).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn fresh_info_without_video() {
        let f = Features::new()
            .with("action", Feature::vector_f32(&MOTORS))
            .unwrap();
        let mut info = Info::new(10, f, None);
        info.data_files_size_in_mb = 0.5;
        let s = info.to_json();
        assert!(
            s.contains("\"video_path\": null,\n    \"robot_type\": null,\n    \"splits\": {}\n}")
        );
        assert!(s.contains("\"data_files_size_in_mb\": 0.5,\n    \"video_files_size_in_mb\": 200,"));
        assert!(s.contains("\"timestamp\": {\n            \"dtype\": \"float32\",\n            \"shape\": [\n                1\n            ],\n            \"names\": null\n        },"));
        assert!(!s.contains("\"observation.images.front\""));
        let back = Info::parse(&s, Path::new("x")).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn garbage_is_corrupt_naming_the_file_and_field() {
        let p = Path::new("/data/set/meta/info.json");
        let e = Info::parse("garbage{", p).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains("info.json"), "{e}");
        let e = Info::parse(
            "{\"codebase_version\": \"v3.0\", \"fps\": \"30\", \"features\": {}}",
            p,
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::Corrupt { .. }) && e.to_string().contains("fps"),
            "{e}"
        );
        let e = Info::parse(
            "{\"codebase_version\": \"v2.1\", \"fps\": 30, \"features\": {}}",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("codebase_version"), "{e}");
        let e = Info::parse("{\"codebase_version\": \"v3.0\", \"fps\": 30, \"features\": {\"a\": {\"dtype\": \"float32\", \"shape\": [0]}}}", p)
            .unwrap_err();
        assert!(e.to_string().contains("features.a.shape"), "{e}");
    }
}
