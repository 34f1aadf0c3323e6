//! Per-tick timing of every recorded frame, stored beside the dataset where LeRobot does not
//! look: `meta/reel/ticks/chunk-CCC/file-FFF.parquet`, one row per data row, the file index
//! mirroring the data file the episode's rows went to.
//!
//! LeRobot's loader reads `data/*/*.parquet` and `meta/episodes/*/*.parquet` only; its resume
//! appends new episodes to new files and its merge (`aggregate_datasets`) copies data, videos
//! and metadata it knows, so these files are ignored by all three (the conformance tests
//! prove it). They are written inside the episode's journaled transaction
//! ([`append`], called from the committer), so a crash never leaves them half-written.
//!
//! A [`TickRecord`] is a small fixed-size `Copy` struct: the control loop hands one over per
//! tick (`DatasetWriter::add_tick`) with no
//! allocation beyond the episode's buffer. Any loop can fill one: reel's own `TickTimer`
//! does, and an external loop (LeRobot's, through the Python module) can fill the same fields
//! from its own clock.

use crate::parquet_append::{self, read_batches};
use crate::paths::FileIndex;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
};
use arrow_schema::{DataType, Field, Schema};
use reel_core::journal::Journal;
pub use reel_core::tick::{CameraTick, TickRecord, MAX_TICK_CAMERAS, NO_CAPTURE, SECTIONS};
use reel_core::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `root/meta/reel/ticks/chunk-CCC/file-FFF.parquet`: the ticks of the episodes whose rows
/// are in `data/chunk-CCC/file-FFF.parquet`.
pub fn ticks_file(root: &Path, data_file: FileIndex) -> PathBuf {
    root.join("meta")
        .join("reel")
        .join("ticks")
        .join(format!("chunk-{:03}", data_file.chunk))
        .join(format!("file-{:03}.parquet", data_file.file))
}

/// The column name prefix of a camera (its feature key).
fn cam_col(key: &str, what: &str) -> String {
    format!("{key}.{what}")
}

/// The ticks of one episode as a record batch (one row per tick, `frame_index` = position).
/// `cameras` are the dataset's video keys, in feature order.
pub fn ticks_batch(
    episode_index: u64,
    ticks: &[TickRecord],
    cameras: &[String],
) -> Result<RecordBatch> {
    let n = ticks.len();
    let t0 = ticks.first().map(|t| t.scheduled_ns).unwrap_or(0);
    let ms = |ns: u64| (ns as f64 / 1e6) as f32;
    let mut fields = vec![
        Field::new("episode_index", DataType::Int64, false),
        Field::new("frame_index", DataType::Int64, false),
        Field::new("t_s", DataType::Float64, false),
        Field::new("late_ms", DataType::Float32, false),
        Field::new("start_ns", DataType::Int64, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![episode_index as i64; n])),
        Arc::new(Int64Array::from_iter_values(0..n as i64)),
        Arc::new(Float64Array::from_iter_values(
            ticks
                .iter()
                .map(|t| t.start_ns.saturating_sub(t0) as f64 / 1e9),
        )),
        Arc::new(Float32Array::from_iter_values(
            ticks.iter().map(|t| ms(t.late_ns())),
        )),
        Arc::new(Int64Array::from_iter_values(
            ticks.iter().map(|t| t.start_ns.min(i64::MAX as u64) as i64),
        )),
    ];
    for (i, s) in SECTIONS.iter().enumerate() {
        fields.push(Field::new(format!("{s}_ms"), DataType::Float32, false));
        cols.push(Arc::new(Float32Array::from_iter_values(
            ticks.iter().map(|t| ms(t.sections_ns[i] as u64)),
        )));
    }
    fields.push(Field::new("missed", DataType::Boolean, false));
    cols.push(Arc::new(BooleanArray::from(
        ticks.iter().map(|t| t.missed).collect::<Vec<_>>(),
    )));
    for (c, key) in cameras.iter().enumerate().take(MAX_TICK_CAMERAS) {
        fields.push(Field::new(cam_col(key, "age_ms"), DataType::Float32, false));
        cols.push(Arc::new(Float32Array::from_iter_values(
            ticks.iter().map(|t| t.cameras[c].age_us as f32 / 1e3),
        )));
        fields.push(Field::new(
            cam_col(key, "repeated"),
            DataType::Boolean,
            false,
        ));
        cols.push(Arc::new(BooleanArray::from(
            ticks
                .iter()
                .map(|t| t.cameras[c].repeated)
                .collect::<Vec<_>>(),
        )));
        fields.push(Field::new(cam_col(key, "queued"), DataType::Int32, false));
        cols.push(Arc::new(Int32Array::from_iter_values(
            ticks
                .iter()
                .map(|t| t.cameras[c].queued.min(i32::MAX as u32) as i32),
        )));
        fields.push(Field::new(
            cam_col(key, "captured_ns"),
            DataType::Int64,
            true,
        ));
        cols.push(Arc::new(Int64Array::from(
            ticks
                .iter()
                .map(|t| t.captured_ns(c).map(|v| v.min(i64::MAX as u64) as i64))
                .collect::<Vec<_>>(),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| Error::invalid(format!("tick table: {e}")))
}

/// Appends one episode's ticks to the ticks file of `data_file`, inside the episode's
/// transaction `j`. `first_in_session`: this session has not written to that file yet (a
/// file already there then belongs to no data file — a leftover — and is replaced, with its
/// old content kept in the journal).
pub fn append(
    root: &Path,
    data_file: FileIndex,
    episode_index: u64,
    ticks: &[TickRecord],
    cameras: &[String],
    first_in_session: bool,
    j: &mut Journal,
) -> Result<()> {
    if ticks.is_empty() {
        return Ok(());
    }
    let path = ticks_file(root, data_file);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
    }
    if first_in_session && path.exists() {
        j.record_replace(&path)?;
        std::fs::remove_file(&path).map_err(|e| Error::io("remove stale ticks file", &path, e))?;
    }
    let batch = ticks_batch(episode_index, ticks, cameras)?;
    parquet_append::append_batch(&path, &batch, &[], j)?;
    Ok(())
}

/// The stored ticks of one episode, column by column (what the report draws).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpisodeTicks {
    pub episode_index: u64,
    /// Tick start, seconds since the episode's first scheduled tick.
    pub t_s: Vec<f64>,
    pub late_ms: Vec<f32>,
    /// Per section of [`SECTIONS`]: duration of each tick, ms.
    pub sections_ms: Vec<Vec<f32>>,
    pub missed: Vec<bool>,
    /// Tick start on the monotonic clock (the side streams' clock), ns; empty for ticks files
    /// written before the column existed.
    pub start_ns: Vec<i64>,
    /// Per camera: (feature key, frame age ms, repeated, queued frames).
    pub cameras: Vec<CameraSeries>,
}

/// One camera's per-tick series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraSeries {
    pub key: String,
    pub age_ms: Vec<f32>,
    pub repeated: Vec<bool>,
    pub queued: Vec<i32>,
    /// The frame's capture time (monotonic ns) when the loop gave one; empty for older files.
    pub captured_ns: Vec<Option<i64>>,
}

impl EpisodeTicks {
    pub fn len(&self) -> usize {
        self.t_s.len()
    }
    pub fn is_empty(&self) -> bool {
        self.t_s.is_empty()
    }
    /// Work time of tick `i` (sum of sections), ms.
    pub fn work_ms(&self, i: usize) -> f32 {
        self.sections_ms.iter().map(|s| s[i]).sum()
    }
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a T> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::corrupt(path, format!("ticks file has no valid column {name}")))
}

/// Every ticks file of the dataset (sorted by path).
pub fn ticks_files(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join("meta").join("reel").join("ticks");
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for chunk in std::fs::read_dir(&dir).map_err(|e| Error::io("read dir", &dir, e))? {
        let chunk = chunk.map_err(|e| Error::io("read dir", &dir, e))?.path();
        if !chunk.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&chunk).map_err(|e| Error::io("read dir", &chunk, e))? {
            let p = f.map_err(|e| Error::io("read dir", &chunk, e))?.path();
            if p.extension().is_some_and(|e| e == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads every stored tick of the dataset, grouped by episode (sorted by episode index).
/// Read-only.
pub fn read_all(root: &Path) -> Result<Vec<EpisodeTicks>> {
    let mut by_ep: std::collections::BTreeMap<u64, EpisodeTicks> = Default::default();
    for path in ticks_files(root)? {
        for b in read_batches(&path)? {
            let ep = col::<Int64Array>(&b, "episode_index", &path)?;
            let t = col::<Float64Array>(&b, "t_s", &path)?;
            let late = col::<Float32Array>(&b, "late_ms", &path)?;
            let missed = col::<BooleanArray>(&b, "missed", &path)?;
            let start_ns = b
                .column_by_name("start_ns")
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
            let secs: Vec<&Float32Array> = SECTIONS
                .iter()
                .map(|s| col::<Float32Array>(&b, &format!("{s}_ms"), &path))
                .collect::<Result<_>>()?;
            type Cam<'a> = (
                String,
                &'a Float32Array,
                &'a BooleanArray,
                &'a Int32Array,
                Option<&'a Int64Array>,
            );
            let mut cams: Vec<Cam<'_>> = Vec::new();
            for f in b.schema().fields() {
                if let Some(key) = f.name().strip_suffix(".age_ms") {
                    cams.push((
                        key.to_string(),
                        col::<Float32Array>(&b, f.name(), &path)?,
                        col::<BooleanArray>(&b, &cam_col(key, "repeated"), &path)?,
                        col::<Int32Array>(&b, &cam_col(key, "queued"), &path)?,
                        b.column_by_name(&cam_col(key, "captured_ns"))
                            .and_then(|c| c.as_any().downcast_ref::<Int64Array>()),
                    ));
                }
            }
            for r in 0..b.num_rows() {
                let e = ep.value(r);
                if e < 0 {
                    return Err(Error::corrupt(&path, format!("episode_index {e}")));
                }
                let et = by_ep.entry(e as u64).or_insert_with(|| EpisodeTicks {
                    episode_index: e as u64,
                    sections_ms: vec![Vec::new(); SECTIONS.len()],
                    cameras: cams
                        .iter()
                        .map(|(k, ..)| CameraSeries {
                            key: k.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                });
                et.t_s.push(t.value(r));
                et.late_ms.push(late.value(r));
                et.missed.push(missed.value(r));
                if let Some(sn) = start_ns {
                    et.start_ns.push(sn.value(r));
                }
                for (s, a) in et.sections_ms.iter_mut().zip(&secs) {
                    s.push(a.value(r));
                }
                for (c, (key, age, rep, q, cap)) in cams.iter().enumerate() {
                    match et.cameras.get_mut(c) {
                        Some(cs) if cs.key == *key => {
                            cs.age_ms.push(age.value(r));
                            cs.repeated.push(rep.value(r));
                            cs.queued.push(q.value(r));
                            if let Some(cap) = cap {
                                cs.captured_ns.push((!cap.is_null(r)).then(|| cap.value(r)));
                            }
                        }
                        _ => {
                            return Err(Error::corrupt(
                                &path,
                                format!(
                                "episode {e}: its ticks name different cameras in different files"
                            ),
                            ))
                        }
                    }
                }
            }
        }
    }
    Ok(by_ep.into_values().collect())
}

/// Number of rows in a ticks file (tests, checks).
pub fn rows(path: &Path) -> Result<u64> {
    Ok(parquet_append::row_group_rows(path)?.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(i: u64, cams: usize) -> TickRecord {
        let mut t = TickRecord::new(i * 33_333_333, i * 33_333_333 + 10_000);
        for s in 0..4 {
            t.set_section(s, 1000 * (s as u64 + 1) + i);
        }
        t.missed = i == 2;
        for c in 0..cams {
            t.set_camera(c, 5_000_000 + c as u64 * 1000, i % 2 == 1);
            t.cameras[c].queued = i as u32;
        }
        t
    }

    #[test]
    fn record_is_small_and_copy() {
        // The loop copies one of these per tick: keep it a few cache lines.
        assert!(std::mem::size_of::<TickRecord>() <= 176);
        let mut t = TickRecord::new(10, 25);
        t.set_section(0, u64::MAX);
        assert_eq!(t.sections_ns[0], u32::MAX);
        assert_eq!(t.late_ns(), 15);
        t.set_camera(MAX_TICK_CAMERAS, 1, true); // ignored, no panic
        assert_eq!(t.n_cameras, 0);
        // Capture times: to the microsecond, before or after the tick's start.
        let mut t = TickRecord::new(5_000_000_000, 5_000_000_000);
        assert_eq!(t.captured_ns(0), None);
        t.set_capture(0, 4_966_666_999);
        t.set_capture(1, 5_000_002_000);
        t.set_capture(MAX_TICK_CAMERAS, 1); // ignored, no panic
        assert_eq!(t.captured_ns(0), Some(4_966_666_000));
        assert_eq!(t.captured_ns(1), Some(5_000_002_000));
        let b = ticks_batch(
            0,
            &[t],
            &["a".to_string(), "b".to_string(), "c".to_string()],
        )
        .unwrap();
        let c = b.column_by_name("a.captured_ns").unwrap();
        let c = c.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(c.value(0), 4_966_666_000);
        assert!(b.column_by_name("c.captured_ns").unwrap().is_null(0));
        let s = b.column_by_name("start_ns").unwrap();
        assert_eq!(
            s.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
            5_000_000_000
        );
    }

    #[test]
    fn appends_in_a_transaction_and_rolls_back() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let jp = root.join("journal");
        let cams = vec![
            "observation.images.front".to_string(),
            "observation.images.wrist".to_string(),
        ];
        let f = FileIndex::default();
        let ep0: Vec<_> = (0..5).map(|i| tick(i, 2)).collect();
        let mut j = Journal::begin(&jp, root, false).unwrap();
        append(root, f, 0, &ep0, &cams, true, &mut j).unwrap();
        j.commit().unwrap();
        let ep1: Vec<_> = (0..3).map(|i| tick(i, 2)).collect();
        let mut j = Journal::begin(&jp, root, false).unwrap();
        append(root, f, 1, &ep1, &cams, false, &mut j).unwrap();
        j.commit().unwrap();
        let all = read_all(root).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].len(), 5);
        assert_eq!(all[1].len(), 3);
        assert_eq!(all[0].missed.iter().filter(|m| **m).count(), 1);
        assert_eq!(all[0].cameras.len(), 2);
        assert_eq!(all[0].cameras[1].key, "observation.images.wrist");
        assert_eq!(all[0].cameras[1].queued, vec![0, 1, 2, 3, 4]);
        assert!((all[0].cameras[0].age_ms[0] - 5.0).abs() < 1e-3);
        assert!(all[0].cameras[0].repeated[1]);
        assert!((all[0].t_s[1] - 0.033343333).abs() < 1e-6);
        assert!((all[0].sections_ms[3][0] - 0.004).abs() < 1e-6);

        // A third episode rolled back leaves the file as it was, byte for byte.
        let path = ticks_file(root, f);
        let before = std::fs::read(&path).unwrap();
        let mut j = Journal::begin(&jp, root, false).unwrap();
        append(root, f, 2, &ep1, &cams, false, &mut j).unwrap();
        assert_ne!(std::fs::read(&path).unwrap(), before);
        j.rollback().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(rows(&path).unwrap(), 8);
    }

    #[test]
    fn a_leftover_file_is_replaced_and_restored_on_rollback() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let jp = root.join("journal");
        let f = FileIndex { chunk: 0, file: 3 };
        let path = ticks_file(root, f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"leftover").unwrap();
        let ep: Vec<_> = (0..4).map(|i| tick(i, 1)).collect();
        let cams = vec!["observation.images.front".to_string()];
        let mut j = Journal::begin(&jp, root, false).unwrap();
        append(root, f, 7, &ep, &cams, true, &mut j).unwrap();
        j.rollback().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"leftover");
        let mut j = Journal::begin(&jp, root, false).unwrap();
        append(root, f, 7, &ep, &cams, true, &mut j).unwrap();
        j.commit().unwrap();
        let all = read_all(root).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].episode_index, 7);
        assert_eq!(all[0].len(), 4);
    }

    #[test]
    fn nothing_written_without_ticks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let mut j = Journal::begin(&root.join("journal"), root, false).unwrap();
        append(root, FileIndex::default(), 0, &[], &[], true, &mut j).unwrap();
        j.commit().unwrap();
        assert!(ticks_files(root).unwrap().is_empty());
        assert!(read_all(root).unwrap().is_empty());
    }
}
