//! `meta/stats.json` (spec §1.10): the dataset-wide statistics of every feature, in
//! `json.dump(indent=4)` layout with Python float repr. Stat order is fixed
//! (`min, max, mean, std, count, q01..q99`); feature order is the caller's (LeRobot's own
//! order is a Python set order, so no order can be byte-identical).

use std::path::Path;

use reel_core::journal::{write_atomic, Journal};
use reel_core::{Error, Result};
use reel_stats::FeatureStats;

use crate::paths;
use crate::pyjson::{self, PyValue};

fn vec_py(values: &[f64], visual: bool) -> PyValue {
    PyValue::List(
        values
            .iter()
            .map(|&v| {
                if visual {
                    PyValue::List(vec![PyValue::List(vec![PyValue::Float(v)])])
                } else {
                    PyValue::Float(v)
                }
            })
            .collect(),
    )
}

/// The file content. `visual` features (cameras) get LeRobot's (C,1,1) nesting. NaN and
/// infinities are written bare (`NaN`, `Infinity`) as Python does.
pub fn to_json(stats: &[(String, FeatureStats, bool)]) -> String {
    let items = stats
        .iter()
        .map(|(name, st, visual)| {
            let mut m = vec![
                ("min".to_string(), vec_py(&st.min, *visual)),
                ("max".to_string(), vec_py(&st.max, *visual)),
                ("mean".to_string(), vec_py(&st.mean, *visual)),
                ("std".to_string(), vec_py(&st.std, *visual)),
                (
                    "count".to_string(),
                    PyValue::List(vec![PyValue::Int(st.count as i128)]),
                ),
            ];
            for (q, v) in &st.quantiles {
                m.push((q.clone(), vec_py(v, *visual)));
            }
            (name.clone(), PyValue::Dict(m))
        })
        .collect();
    pyjson::to_string_py(&PyValue::Dict(items))
}

/// Rewrites `root/meta/stats.json` atomically, journaled.
pub fn write(
    root: &Path,
    stats: &[(String, FeatureStats, bool)],
    journal: &mut Journal,
) -> Result<()> {
    let path = paths::stats_file(root);
    journal.record_replace(&path)?;
    write_atomic(&path, to_json(stats).as_bytes(), false)
}

fn flatten(v: &PyValue, out: &mut Vec<f64>) -> bool {
    match v {
        PyValue::Int(i) => out.push(*i as f64),
        PyValue::Float(f) => out.push(*f),
        PyValue::List(items) => return items.iter().all(|x| flatten(x, out)),
        _ => return false,
    }
    true
}

/// Parses stats.json text; `path` names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<(String, FeatureStats)>> {
    let bad = |msg: String| Error::corrupt(path, msg);
    pyjson::check_value_budget(text, pyjson::PY_VALUE_COST).map_err(bad)?;
    let Some(PyValue::Dict(features)) = pyjson::parse_py(text) else {
        return Err(bad(format!(
            "not a JSON object (malformed, or nested deeper than {} levels)",
            pyjson::MAX_DEPTH
        )));
    };
    let mut out = Vec::with_capacity(features.len());
    for (name, v) in features {
        let PyValue::Dict(stats) = v else {
            return Err(bad(format!("{name}: not an object")));
        };
        let mut st = FeatureStats {
            min: vec![],
            max: vec![],
            mean: vec![],
            std: vec![],
            count: 0,
            quantiles: vec![],
        };
        let mut seen = [false; 5];
        for (s, val) in stats {
            let mut vals = Vec::new();
            if !flatten(&val, &mut vals) {
                return Err(bad(format!("{name}.{s}: not a (nested) list of numbers")));
            }
            match s.as_str() {
                "min" => (st.min, seen[0]) = (vals, true),
                "max" => (st.max, seen[1]) = (vals, true),
                "mean" => (st.mean, seen[2]) = (vals, true),
                "std" => (st.std, seen[3]) = (vals, true),
                "count" => {
                    st.count = match vals.as_slice() {
                        [c] if *c >= 0.0 && c.fract() == 0.0 => *c as u64,
                        _ => return Err(bad(format!("{name}.count must be [n], found {vals:?}"))),
                    };
                    seen[4] = true;
                }
                q if q.starts_with('q') => st.quantiles.push((q.to_string(), vals)),
                other => return Err(bad(format!("{name}: unknown stat '{other}'"))),
            }
        }
        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(bad(format!(
                "{name}: '{}' missing",
                ["min", "max", "mean", "std", "count"][i]
            )));
        }
        out.push((name, st));
    }
    Ok(out)
}

/// Reads `root/meta/stats.json` (visual stats come back flattened to length C).
pub fn read(root: &Path) -> Result<Vec<(String, FeatureStats)>> {
    let path = paths::stats_file(root);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    parse(&text, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_round_trip() {
        let fi = FeatureStats {
            min: vec![0.0],
            max: vec![19.0],
            mean: vec![8.428571428571429],
            std: vec![5.341405455954263],
            count: 35,
            quantiles: vec![("q01".into(), vec![-1e-10]), ("q99".into(), vec![f64::NAN])],
        };
        let cam = FeatureStats {
            min: vec![0.0, 0.1, 0.2],
            max: vec![1.0; 3],
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
            count: 215040,
            quantiles: vec![],
        };
        let s = to_json(&[
            ("frame_index".into(), fi.clone(), false),
            ("observation.images.front".into(), cam.clone(), true),
        ]);
        assert!(s.starts_with("{\n    \"frame_index\": {\n        \"min\": [\n            0.0\n        ],\n        \"max\": [\n            19.0\n        ],\n        \"mean\": [\n            8.428571428571429\n        ],"));
        assert!(s.contains("\"count\": [\n            35\n        ],\n        \"q01\": [\n            -1e-10\n        ],\n        \"q99\": [\n            NaN\n        ]"));
        assert!(s.contains("\"min\": [\n            [\n                [\n                    0.0\n                ]\n            ],\n            [\n                [\n                    0.1\n                ]"));
        let back = parse(&s, Path::new("stats.json")).unwrap();
        assert_eq!(back[1], ("observation.images.front".to_string(), cam));
        assert_eq!(back[0].1.mean, fi.mean);
        assert!(back[0].1.quantiles[1].1[0].is_nan());
        let e = parse("{\"a\": {\"min\": [1]}}", Path::new("meta/stats.json")).unwrap_err();
        assert!(
            matches!(e, Error::Corrupt { .. }) && e.to_string().contains("max"),
            "{e}"
        );
    }
}
