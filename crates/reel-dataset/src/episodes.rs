//! The episodes metadata parquet (`meta/episodes/chunk-CCC/file-FFF.parquet`, spec §1.8): one
//! row per episode with its location in the data and video files, its per-episode statistics
//! and reel's own per-episode figures, and the reader used to resume and validate.

pub use reel_core::extra::ExtraValue;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, LargeListArray, ListArray, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use reel_core::{Dtype, Error, Features, Result};
use reel_stats::FeatureStats;

use crate::parquet_append::read_batches;
use crate::paths::FileIndex;

/// Where one camera's frames of an episode live.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoRef {
    pub key: String,
    pub file: FileIndex,
    pub from_timestamp: f64,
    pub to_timestamp: f64,
}

/// One row of the episodes parquet.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRecord {
    pub episode_index: u64,
    pub tasks: Vec<String>,
    pub length: u64,
    pub data_file: FileIndex,
    pub dataset_from_index: u64,
    pub dataset_to_index: u64,
    pub videos: Vec<VideoRef>,
    /// (feature, stats, visual): visual stats (cameras) are written as
    /// `list<list<list<double>>>` of shape (C,1,1). Order: non-video features in features
    /// order, then the 5 defaults, then cameras (LeRobot's streaming order).
    pub stats: Vec<(String, FeatureStats, bool)>,
    pub meta_file: FileIndex,
    /// Written as `reel/<name>` columns after the `meta/episodes/*` columns.
    pub extra: Vec<(String, ExtraValue)>,
}

fn i64_col(v: i64) -> ArrayRef {
    Arc::new(Int64Array::from(vec![v]))
}

fn f64_col(v: f64) -> ArrayRef {
    Arc::new(Float64Array::from(vec![v]))
}

fn as_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(format!("{what} {v} does not fit in int64")))
}

/// One stat vector as a one-row `list<double>` (or `list<list<list<double>>>` when visual).
fn stat_col(values: &[f64], visual: bool) -> (DataType, ArrayRef) {
    if visual {
        let mut b = ListBuilder::new(ListBuilder::new(ListBuilder::new(Float64Builder::new())));
        for &v in values {
            b.values().values().values().append_value(v);
            b.values().values().append(true);
            b.values().append(true);
        }
        b.append(true);
        let a = b.finish();
        (a.data_type().clone(), Arc::new(a))
    } else {
        let mut b = ListBuilder::new(Float64Builder::new());
        b.values().append_slice(values);
        b.append(true);
        let a = b.finish();
        (a.data_type().clone(), Arc::new(a))
    }
}

/// The episode as a one-row record batch, columns in LeRobot's order.
pub fn episode_batch(rec: &EpisodeRecord) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    let mut push = |name: String, dt: DataType, a: ArrayRef| {
        fields.push(Field::new(name, dt, true));
        cols.push(a);
    };
    push(
        "episode_index".into(),
        DataType::Int64,
        i64_col(as_i64(rec.episode_index, "episode_index")?),
    );
    let mut tb = ListBuilder::new(StringBuilder::new());
    for t in &rec.tasks {
        tb.values().append_value(t);
    }
    tb.append(true);
    let tasks = tb.finish();
    push("tasks".into(), tasks.data_type().clone(), Arc::new(tasks));
    push(
        "length".into(),
        DataType::Int64,
        i64_col(as_i64(rec.length, "length")?),
    );
    push(
        "data/chunk_index".into(),
        DataType::Int64,
        i64_col(rec.data_file.chunk as i64),
    );
    push(
        "data/file_index".into(),
        DataType::Int64,
        i64_col(rec.data_file.file as i64),
    );
    push(
        "dataset_from_index".into(),
        DataType::Int64,
        i64_col(as_i64(rec.dataset_from_index, "dataset_from_index")?),
    );
    push(
        "dataset_to_index".into(),
        DataType::Int64,
        i64_col(as_i64(rec.dataset_to_index, "dataset_to_index")?),
    );
    for v in &rec.videos {
        push(
            format!("videos/{}/chunk_index", v.key),
            DataType::Int64,
            i64_col(v.file.chunk as i64),
        );
        push(
            format!("videos/{}/file_index", v.key),
            DataType::Int64,
            i64_col(v.file.file as i64),
        );
        push(
            format!("videos/{}/from_timestamp", v.key),
            DataType::Float64,
            f64_col(v.from_timestamp),
        );
        push(
            format!("videos/{}/to_timestamp", v.key),
            DataType::Float64,
            f64_col(v.to_timestamp),
        );
    }
    for (name, st, visual) in &rec.stats {
        let stat = |s: &str, vals: &[f64]| {
            let (dt, a) = stat_col(vals, *visual);
            (format!("stats/{name}/{s}"), dt, a)
        };
        let entries = [
            stat("min", &st.min),
            stat("max", &st.max),
            stat("mean", &st.mean),
            stat("std", &st.std),
        ];
        for (n, dt, a) in entries {
            push(n, dt, a);
        }
        let mut cb = ListBuilder::new(Int64Builder::new());
        cb.values().append_value(as_i64(st.count, "count")?);
        cb.append(true);
        let c = cb.finish();
        push(
            format!("stats/{name}/count"),
            c.data_type().clone(),
            Arc::new(c),
        );
        for (q, vals) in &st.quantiles {
            let (n, dt, a) = stat(q, vals);
            push(n, dt, a);
        }
    }
    push(
        "meta/episodes/chunk_index".into(),
        DataType::Int64,
        i64_col(rec.meta_file.chunk as i64),
    );
    push(
        "meta/episodes/file_index".into(),
        DataType::Int64,
        i64_col(rec.meta_file.file as i64),
    );
    for (name, v) in &rec.extra {
        let (dt, a): (DataType, ArrayRef) = match v {
            ExtraValue::I64(x) => (DataType::Int64, i64_col(*x)),
            ExtraValue::F64(x) => (DataType::Float64, f64_col(*x)),
            ExtraValue::Str(s) => (DataType::Utf8, Arc::new(StringArray::from(vec![s.clone()]))),
        };
        push(format!("reel/{name}"), dt, a);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| Error::invalid(format!("building the episode row: {e}")))
}

/// All `meta/episodes/*/*.parquet` files, sorted by path.
pub fn episode_files(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join("meta").join("episodes");
    let mut out = Vec::new();
    let chunks = match std::fs::read_dir(&dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("list", &dir, e)),
    };
    for c in chunks {
        let c = c.map_err(|e| Error::io("list", &dir, e))?.path();
        if !c.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&c).map_err(|e| Error::io("list", &c, e))? {
            let f = f.map_err(|e| Error::io("list", &c, e))?.path();
            if f.extension().is_some_and(|x| x == "parquet") && f.is_file() {
                out.push(f);
            }
        }
    }
    out.sort();
    Ok(out)
}

struct Row<'a> {
    path: &'a Path,
    batch: &'a RecordBatch,
    row: usize,
}

impl Row<'_> {
    fn col(&self, name: &str) -> Result<&ArrayRef> {
        self.batch
            .column_by_name(name)
            .ok_or_else(|| Error::corrupt(self.path, format!("column '{name}' missing")))
    }
    fn i64(&self, name: &str) -> Result<i64> {
        let a = self.col(name)?;
        let a = a
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| Error::corrupt(self.path, format!("column '{name}' is not int64")))?;
        if a.is_null(self.row) {
            return Err(Error::corrupt(
                self.path,
                format!("column '{name}' is null in row {}", self.row),
            ));
        }
        Ok(a.value(self.row))
    }
    fn u64(&self, name: &str) -> Result<u64> {
        let v = self.i64(name)?;
        u64::try_from(v).map_err(|_| {
            Error::corrupt(
                self.path,
                format!("column '{name}' is negative ({v}) in row {}", self.row),
            )
        })
    }
    fn u32(&self, name: &str) -> Result<u32> {
        let v = self.i64(name)?;
        u32::try_from(v).map_err(|_| {
            Error::corrupt(
                self.path,
                format!("column '{name}' out of range ({v}) in row {}", self.row),
            )
        })
    }
    fn f64(&self, name: &str) -> Result<f64> {
        let a = self.col(name)?;
        let a = a
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| Error::corrupt(self.path, format!("column '{name}' is not double")))?;
        if a.is_null(self.row) {
            return Err(Error::corrupt(
                self.path,
                format!("column '{name}' is null in row {}", self.row),
            ));
        }
        Ok(a.value(self.row))
    }
    fn file(&self, prefix: &str) -> Result<FileIndex> {
        Ok(FileIndex {
            chunk: self.u32(&format!("{prefix}/chunk_index"))?,
            file: self.u32(&format!("{prefix}/file_index"))?,
        })
    }
}

/// Flattens the value at `row` of a (nested) list column into numbers.
fn flatten(path: &Path, name: &str, a: &ArrayRef, row: usize) -> Result<Vec<f64>> {
    fn walk(a: &dyn Array, out: &mut Vec<f64>) -> bool {
        if let Some(l) = a.as_any().downcast_ref::<ListArray>() {
            (0..l.len()).all(|i| walk(l.value(i).as_ref(), out))
        } else if let Some(l) = a.as_any().downcast_ref::<LargeListArray>() {
            (0..l.len()).all(|i| walk(l.value(i).as_ref(), out))
        } else if let Some(f) = a.as_any().downcast_ref::<Float64Array>() {
            out.extend(f.iter().map(|x| x.unwrap_or(f64::NAN)));
            true
        } else if let Some(f) = a.as_any().downcast_ref::<Int64Array>() {
            out.extend(f.iter().map(|x| x.map(|v| v as f64).unwrap_or(f64::NAN)));
            true
        } else {
            false
        }
    }
    let mut out = Vec::new();
    let ok = walk(a.slice(row, 1).as_ref(), &mut out);
    if !ok {
        return Err(Error::corrupt(
            path,
            format!("column '{name}' is not a list of numbers"),
        ));
    }
    Ok(out)
}

fn parse_row(
    path: &Path,
    batch: &RecordBatch,
    row: usize,
    features: &Features,
) -> Result<EpisodeRecord> {
    let r = Row { path, batch, row };
    let tasks_col = r.col("tasks")?;
    let tl = tasks_col
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| Error::corrupt(path, "column 'tasks' is not list<string>"))?;
    let tv = tl.value(row);
    let ts = tv
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::corrupt(path, "column 'tasks' is not list<string>"))?;
    let tasks: Vec<String> = ts
        .iter()
        .map(|s| s.unwrap_or_default().to_string())
        .collect();
    let mut videos = Vec::new();
    for key in features.video_keys() {
        let p = format!("videos/{key}");
        videos.push(VideoRef {
            file: r.file(&p)?,
            from_timestamp: r.f64(&format!("{p}/from_timestamp"))?,
            to_timestamp: r.f64(&format!("{p}/to_timestamp"))?,
            key,
        });
    }
    let schema = batch.schema();
    let mut stats: Vec<(String, FeatureStats, bool)> = Vec::new();
    let mut extra = Vec::new();
    for (ci, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        if let Some(rest) = name.strip_prefix("stats/") {
            let Some((feat, stat)) = rest.rsplit_once('/') else {
                return Err(Error::corrupt(
                    path,
                    format!("bad stats column name '{name}'"),
                ));
            };
            let vals = flatten(path, name, batch.column(ci), row)?;
            let idx = match stats.iter().position(|(f, _, _)| f == feat) {
                Some(i) => i,
                None => {
                    let visual = features.get(feat).is_some_and(|f| f.dtype == Dtype::Video);
                    let empty = FeatureStats {
                        min: vec![],
                        max: vec![],
                        mean: vec![],
                        std: vec![],
                        count: 0,
                        quantiles: vec![],
                    };
                    stats.push((feat.to_string(), empty, visual));
                    stats.len() - 1
                }
            };
            let st = &mut stats[idx].1;
            match stat {
                "min" => st.min = vals,
                "max" => st.max = vals,
                "mean" => st.mean = vals,
                "std" => st.std = vals,
                "count" => {
                    st.count = vals
                        .first()
                        .copied()
                        .filter(|c| *c >= 0.0)
                        .map(|c| c as u64)
                        .ok_or_else(|| {
                            Error::corrupt(path, format!("column '{name}' has no count"))
                        })?
                }
                q => st.quantiles.push((q.to_string(), vals)),
            }
        } else if let Some(x) = name.strip_prefix("reel/") {
            let a = batch.column(ci);
            let v = if let Some(i) = a.as_any().downcast_ref::<Int64Array>() {
                ExtraValue::I64(i.value(row))
            } else if let Some(f) = a.as_any().downcast_ref::<Float64Array>() {
                ExtraValue::F64(f.value(row))
            } else if let Some(s) = a.as_any().downcast_ref::<StringArray>() {
                ExtraValue::Str(s.value(row).to_string())
            } else {
                return Err(Error::corrupt(
                    path,
                    format!("column '{name}' is not int64, double or string"),
                ));
            };
            extra.push((x.to_string(), v));
        }
    }
    Ok(EpisodeRecord {
        episode_index: r.u64("episode_index")?,
        tasks,
        length: r.u64("length")?,
        data_file: r.file("data")?,
        dataset_from_index: r.u64("dataset_from_index")?,
        dataset_to_index: r.u64("dataset_to_index")?,
        videos,
        stats,
        meta_file: r.file("meta/episodes")?,
        extra,
    })
}

/// Reads every row of every `meta/episodes/*/*.parquet` (files sorted by path), with stats
/// and `reel/*` columns. `features` tells which video columns to expect and which stats are
/// visual.
pub fn read_all(root: &Path, features: &Features) -> Result<Vec<EpisodeRecord>> {
    let mut out = Vec::new();
    for path in episode_files(root)? {
        for batch in read_batches(&path)? {
            for row in 0..batch.num_rows() {
                out.push(parse_row(&path, &batch, row, features)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_append::append_batch;
    use crate::paths::episodes_file;
    use reel_core::journal::Journal;
    use reel_core::Feature;

    fn list_of(dt: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("item", dt, true)))
    }

    fn st(d: usize, base: f64, count: u64) -> FeatureStats {
        let v = |k: f64| (0..d).map(|i| base + k + i as f64).collect::<Vec<_>>();
        FeatureStats {
            min: v(0.0),
            max: v(4.0),
            mean: v(2.0),
            std: v(0.5),
            count,
            quantiles: ["q01", "q10", "q50", "q90", "q99"]
                .iter()
                .enumerate()
                .map(|(i, q)| (q.to_string(), v(i as f64)))
                .collect(),
        }
    }

    #[test]
    fn rows_round_trip_with_video_stats_and_extras() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let f = Features::new()
            .with("action", Feature::vector_f32(&["a", "b"]))
            .unwrap()
            .with("observation.images.front", Feature::video(8, 8))
            .unwrap();
        let mut recs = Vec::new();
        for e in 0..2u64 {
            recs.push(EpisodeRecord {
                episode_index: e,
                tasks: vec!["pick".into()],
                length: 10 + e,
                data_file: FileIndex::default(),
                dataset_from_index: e * 10,
                dataset_to_index: e * 10 + 10 + e,
                videos: vec![VideoRef {
                    key: "observation.images.front".into(),
                    file: FileIndex {
                        chunk: 0,
                        file: e as u32,
                    },
                    from_timestamp: 0.0,
                    to_timestamp: 0.6666666666666666,
                }],
                stats: vec![
                    ("action".into(), st(2, e as f64, 10), false),
                    ("observation.images.front".into(), st(3, 0.1, 640), true),
                ],
                meta_file: FileIndex::default(),
                extra: vec![
                    ("dropped_frames".into(), ExtraValue::I64(e as i64)),
                    ("loop_hz".into(), ExtraValue::F64(29.5)),
                ],
            });
        }
        let b = episode_batch(&recs[0]).unwrap();
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|x| x.name().clone())
            .collect();
        assert_eq!(
            &names[..11],
            [
                "episode_index",
                "tasks",
                "length",
                "data/chunk_index",
                "data/file_index",
                "dataset_from_index",
                "dataset_to_index",
                "videos/observation.images.front/chunk_index",
                "videos/observation.images.front/file_index",
                "videos/observation.images.front/from_timestamp",
                "videos/observation.images.front/to_timestamp"
            ]
        );
        assert_eq!(names[11], "stats/action/min");
        assert_eq!(names[15], "stats/action/count");
        assert_eq!(names[16], "stats/action/q01");
        assert_eq!(
            b.schema()
                .field_with_name("stats/observation.images.front/mean")
                .unwrap()
                .data_type(),
            &list_of(list_of(list_of(DataType::Float64)))
        );
        assert_eq!(
            b.schema()
                .field_with_name("stats/action/count")
                .unwrap()
                .data_type(),
            &list_of(DataType::Int64)
        );
        assert_eq!(
            names[names.len() - 4..],
            [
                "meta/episodes/chunk_index",
                "meta/episodes/file_index",
                "reel/dropped_frames",
                "reel/loop_hz"
            ]
        );
        let p = episodes_file(root, FileIndex::default());
        for r in &recs {
            let mut j = Journal::begin(&root.join(".reel/journal"), root, false).unwrap();
            append_batch(&p, &episode_batch(r).unwrap(), &[], &mut j).unwrap();
            j.commit().unwrap();
        }
        let back = read_all(root, &f).unwrap();
        assert_eq!(back, recs);
    }
}
