//! reel's own per-episode figures (loop timing, encoder and queue figures, robot and camera
//! counters), kept beside LeRobot's tables in `meta/reel/episodes.jsonl`.
//!
//! Decision: LeRobot's tables hold exactly LeRobot's columns. reel's first version stored these
//! figures as `reel/*` columns of `meta/episodes`; a LeRobot resume then appended episodes files
//! without them, and its `aggregate_datasets` merged tables with unequal schemas. Both only
//! loaded because the `datasets` library fills missing columns — a tolerance no format promises.
//! A separate file removes the question: LeRobot's loader, resume and merge never open it (the
//! conformance tests prove it), and it is copied with the dataset (Hub uploads included).
//!
//! The file is an append-only log, one JSON object per line:
//! `{"episode_index": 3, "figures": {"loop/missed_deadlines": 0, "videos/observation.images.front/encoder": "libx264", ...}}`.
//! A later line for the same episode overrides the figures it names: the deferred conversion and
//! `reel reencode` append `.../encoder` corrections when they change what a video file holds, so
//! the figures always say what the files hold. Appends happen inside the episode's journaled
//! transaction, so a crash never leaves half a line (a torn last line is ignored on read).

use crate::episodes::ExtraValue;
use crate::pyjson;
use reel_core::journal::Journal;
use reel_core::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `<root>/meta/reel/episodes.jsonl`.
pub fn figures_file(root: &Path) -> PathBuf {
    root.join("meta").join("reel").join("episodes.jsonl")
}

/// Largest figures file [`read`] accepts (a line is ~1 KB per episode).
const MAX_BYTES: u64 = 512 << 20;

fn to_json(v: &ExtraValue) -> serde_json::Value {
    match v {
        ExtraValue::I64(x) => (*x).into(),
        ExtraValue::F64(x) => serde_json::Number::from_f64(*x)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        ExtraValue::Str(s) => s.clone().into(),
    }
}

fn from_json(v: &serde_json::Value) -> Option<ExtraValue> {
    match v {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Some(ExtraValue::I64(i)),
            None => n.as_f64().map(ExtraValue::F64),
        },
        serde_json::Value::String(s) => Some(ExtraValue::Str(s.clone())),
        serde_json::Value::Null => Some(ExtraValue::F64(f64::NAN)),
        _ => None,
    }
}

/// One line of the log.
fn line(episode_index: u64, figures: &[(String, ExtraValue)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = figures
        .iter()
        .map(|(k, v)| (k.clone(), to_json(v)))
        .collect();
    let mut s = serde_json::json!({"episode_index": episode_index, "figures": map}).to_string();
    s.push('\n');
    s
}

/// Appends the figures of `episode_index` inside transaction `j` (nothing when empty).
pub fn append(
    root: &Path,
    episode_index: u64,
    figures: &[(String, ExtraValue)],
    j: &mut Journal,
) -> Result<()> {
    append_lines(root, &[(episode_index, figures.to_vec())], j)
}

/// Appends several episodes' figures (or corrections) inside transaction `j`.
pub fn append_lines(
    root: &Path,
    entries: &[(u64, Vec<(String, ExtraValue)>)],
    j: &mut Journal,
) -> Result<()> {
    let text: String = entries
        .iter()
        .filter(|(_, f)| !f.is_empty())
        .map(|(e, f)| line(*e, f))
        .collect();
    if text.is_empty() {
        return Ok(());
    }
    let path = figures_file(root);
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|e| Error::io("create folder", d, e))?;
    }
    match fs::metadata(&path) {
        Ok(m) => j.record_tail(&path, m.len())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => j.record_create(&path)?,
        Err(e) => return Err(Error::io("stat", &path, e)),
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io("append figures", &path, e))
}

/// Every episode's figures, later lines overriding earlier ones. A missing file is empty; a
/// torn last line (a crash) is ignored; any other malformed line is an error naming it.
pub fn read(root: &Path) -> Result<BTreeMap<u64, Vec<(String, ExtraValue)>>> {
    let path = figures_file(root);
    let mut out: BTreeMap<u64, Vec<(String, ExtraValue)>> = BTreeMap::new();
    let len = match fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("stat", &path, e)),
    };
    if len > MAX_BYTES {
        return Err(Error::corrupt(&path, format!("{len} bytes is too large")));
    }
    let text = fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    let complete = text.ends_with('\n');
    // Where each figure of an episode sits in its list (a search per figure is quadratic).
    let mut index: HashMap<u64, HashMap<String, usize>> = HashMap::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, l)) = lines.next() {
        let last = lines.peek().is_none();
        if l.trim().is_empty() {
            continue;
        }
        let parsed = pyjson::check_value_budget(l, pyjson::SERDE_VALUE_COST)
            .map_err(|e| format!("line {}: {e}", n + 1))
            .and_then(|()| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|mut v| {
                        let e = v.get("episode_index")?.as_u64()?;
                        match v.get_mut("figures")?.take() {
                            serde_json::Value::Object(f) => Some((e, f)),
                            _ => None,
                        }
                    })
                    .ok_or_else(|| format!("line {} is not a figures record", n + 1))
            });
        let (e, f) = match parsed {
            Ok(x) => x,
            Err(_) if last && !complete => break, // torn by a crash
            Err(why) => return Err(Error::corrupt(&path, why)),
        };
        let entry = out.entry(e).or_default();
        let at = index.entry(e).or_default();
        for (k, v) in f {
            let Some(v) = from_json(&v) else { continue };
            match at.get(&k) {
                Some(&i) => entry[i].1 = v,
                None => {
                    at.insert(k.clone(), entry.len());
                    entry.push((k, v));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_corrections_read_back_in_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let jp = root.join(".reel/journal");
        let mut j = Journal::begin(&jp, root, false).unwrap();
        append(
            root,
            0,
            &[
                ("loop/missed_deadlines".into(), ExtraValue::I64(0)),
                ("videos/k/encoder".into(), ExtraValue::Str("libx264".into())),
            ],
            &mut j,
        )
        .unwrap();
        j.commit().unwrap();
        let mut j = Journal::begin(&jp, root, false).unwrap();
        append(
            root,
            1,
            &[("loop/hz".into(), ExtraValue::F64(29.5))],
            &mut j,
        )
        .unwrap();
        append_lines(
            root,
            &[(
                0,
                vec![(
                    "videos/k/encoder".into(),
                    ExtraValue::Str("libsvtav1".into()),
                )],
            )],
            &mut j,
        )
        .unwrap();
        j.commit().unwrap();
        let r = read(root).unwrap();
        assert_eq!(
            r[&0][1].1,
            ExtraValue::Str("libsvtav1".into()),
            "the correction wins"
        );
        assert_eq!(r[&0][0].1, ExtraValue::I64(0));
        assert_eq!(r[&1][0].1, ExtraValue::F64(29.5));
        // A crash in the middle of an append is rolled back byte for byte.
        let before = fs::read(figures_file(root)).unwrap();
        let mut j = Journal::begin(&jp, root, false).unwrap();
        append(root, 2, &[("x".into(), ExtraValue::I64(1))], &mut j).unwrap();
        drop(j);
        reel_core::journal::recover(&jp, root).unwrap();
        assert_eq!(fs::read(figures_file(root)).unwrap(), before);
        // A torn last line is ignored; garbage elsewhere is an error.
        let mut t = before.clone();
        t.extend_from_slice(b"{\"episode_index\": 9, \"figu");
        fs::write(figures_file(root), &t).unwrap();
        assert_eq!(read(root).unwrap().len(), 2);
        fs::write(figures_file(root), b"garbage\n{}\n").unwrap();
        assert!(read(root).is_err());
    }
}
