//! Merging LeRobot v3.0 datasets (issue 18): `reel merge SRC... --output DST [--append]`.
//!
//! Sources must have equal features (LeRobot 0.6.1's `features_equal_for_merge`: the same
//! keys, and per key the same definition, where a video's encoder-option fields do not
//! count), the same fps and robot type; anything else is refused with the list of
//! differences, before anything is written.
//!
//! How the files move: every video file a source's episodes reference goes into a new file
//! of DST. When the camera's stream format (codec, pixel format, size, fps —
//! [`VideoInfo::stream_differences`]) is DST's, the file is copied whole (no re-mux, no
//! decode: the bytes are the source's); when it is not, that source's files of that camera
//! are re-encoded to DST's stream ([`VideoInfo::encoder_settings`] of DST's video block,
//! through `reel_media::transcode`), frame for frame on the same 1/fps grid, and the
//! summary says so per source ([`SourceSummary::reencoded`]). Either way every episode's
//! `from_timestamp`/`to_timestamp` stays valid. Every data file is rewritten row group by
//! row group with `index`, `episode_index` and `task_index` renumbered; the other columns
//! (timestamps and frame indices are per episode in v3.0) are unchanged. Episode rows are
//! renumbered into one new episodes file. Tasks are unified by text (first appearance wins
//! the lower index). Stats: LeRobot's `aggregate_stats` over DST's and the sources'
//! `stats.json` ([`reel_stats::aggregate::aggregate_all`]); unlike LeRobot (spec §9), the
//! `index` and `episode_index` stats are shifted by each source's offset, so they describe
//! the merged numbering.
//!
//! File sizes: a DST file never holds more than one source file's content (a copied video is
//! the source's file; a re-encoded one its frames), so DST's files stay within the size the
//! sources' writers kept to (`data_files_size_in_mb` / `video_files_size_in_mb`); merge
//! starts a new file for every source file rather than packing small ones together.
//!
//! Crash safety: the merge holds DST's exclusive writer lock and journals every change
//! (created files, replaced `info.json`/`stats.json`/`tasks.parquet`) in DST's undo journal;
//! `info.json` is written last, after which the journal is committed. A re-encode writes in
//! DST's scratch folder (`.reel/merge/`, emptied by the next merge) and is renamed into place
//! after its creation is journaled. A kill at any moment leaves the journal, and the repair
//! every writer runs on open (or `reel check --repair`) restores DST as it was before the
//! merge. A new DST is built in a sibling staging folder (`DST.reel-merge`) and renamed into
//! place once complete, so a kill leaves no DST at all; the next merge into the same DST
//! removes a stale staging folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use reel_core::journal::Journal;
use reel_core::{Dtype, Error, Result};
use reel_stats::FeatureStats;

use reel_core::extra::ExtraValue;
use reel_dataset::episodes::{self, EpisodeRecord};
use reel_dataset::info::{Info, VideoInfo, STREAM_KEYS};
use reel_dataset::lock::{DatasetLock, LockMode};
use reel_dataset::parquet_append::{self, read_batches};
use reel_dataset::paths::{self, FileIndex};

/// What a merge did, per source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSummary {
    pub path: PathBuf,
    pub episodes: u64,
    pub frames: u64,
    /// "stream-copy" when every video was copied whole, "re-encode" when some camera's were
    /// re-encoded to DST's stream ([`SourceSummary::reencoded`] says which).
    pub method: &'static str,
    /// The cameras whose videos were re-encoded: (camera, what differed, e.g.
    /// "video.codec h264 → av1").
    pub reencoded: Vec<(String, String)>,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeSummary {
    pub output: PathBuf,
    pub appended: bool,
    /// Episodes and frames in DST after the merge.
    pub episodes: u64,
    pub frames: u64,
    pub sources: Vec<SourceSummary>,
    pub bytes_written: u64,
    pub seconds: f64,
}

impl MergeSummary {
    /// The `--json` / Python summary.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "output": self.output.display().to_string(),
            "appended": self.appended,
            "episodes": self.episodes,
            "frames": self.frames,
            "bytes_written": self.bytes_written,
            "seconds": self.seconds,
            "sources": self.sources.iter().map(|s| serde_json::json!({
                "path": s.path.display().to_string(),
                "episodes": s.episodes,
                "frames": s.frames,
                "method": s.method,
                "reencoded": s.reencoded.iter().map(|(camera, why)| serde_json::json!({
                    "camera": camera,
                    "because": why,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Options of a merge.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// Append into an existing DST instead of creating it.
    pub append: bool,
}

/// What a merge reports while it runs (the CLI shows it with frames/s and an ETA).
#[derive(Debug, Clone, Copy)]
pub enum MergeEvent<'a> {
    /// The sources are checked; `frames` frames in `sources` sources are to be merged.
    Begin { sources: usize, frames: u64 },
    /// Source `index` (`frames` frames) starts; `reencode` when some of its videos are
    /// re-encoded (slow: every frame is decoded and encoded).
    Source {
        index: usize,
        path: &'a Path,
        frames: u64,
        reencode: bool,
    },
    /// Source `index` is merged (not yet committed).
    SourceDone { index: usize, path: &'a Path },
}

/// The progress callback of [`merge`].
pub type Progress<'a> = &'a mut dyn FnMut(MergeEvent<'_>);

struct Source {
    root: PathBuf,
    info: Info,
    episodes: Vec<EpisodeRecord>,
    tasks: Vec<String>,
    stats: Vec<(String, FeatureStats)>,
    _lock: DatasetLock,
}

/// One camera of one source that is re-encoded to DST's stream.
struct Reencode {
    key: String,
    settings: reel_media::EncoderSettings,
    why: String,
}

/// The keys where two feature sets differ under LeRobot's `features_equal_for_merge`.
pub fn feature_differences(a: &Info, b: &Info) -> Vec<String> {
    let mut out = Vec::new();
    for (name, fa) in a.features.iter() {
        match b.features.get(name) {
            None => out.push(format!("{name} (only in the first)")),
            Some(fb) if fa != fb => out.push(format!(
                "{name} ({:?} {:?} vs {:?} {:?})",
                fa.dtype, fa.shape, fb.dtype, fb.shape
            )),
            Some(fb) if fa.dtype == Dtype::Video && fb.dtype == Dtype::Video => {
                let (va, vb) = (video_info(a, name), video_info(b, name));
                let differs = va.fields.iter().chain(vb.fields.iter()).any(|(k, _)| {
                    !is_encoder_key(k)
                        && !STREAM_KEYS.contains(&k.as_str())
                        && va.get(k) != vb.get(k)
                });
                if differs {
                    out.push(format!("{name} (video info)"));
                }
            }
            Some(_) => {}
        }
    }
    for (name, _) in b.features.iter() {
        if a.features.get(name).is_none() {
            out.push(format!("{name} (only in the second)"));
        }
    }
    out
}

/// LeRobot's `VIDEO_ENCODER_INFO_KEYS` (encoder options: ignored by the feature comparison).
fn is_encoder_key(k: &str) -> bool {
    matches!(
        k,
        "video.g"
            | "video.crf"
            | "video.preset"
            | "video.fast_decode"
            | "video.tune"
            | "video.is_depth_map"
    ) || k.starts_with("video.encoder")
        || k.starts_with("video.extra")
}

fn video_info(info: &Info, key: &str) -> VideoInfo {
    info.video_info_of(key).cloned().unwrap_or_default()
}

fn check_compatible(
    first: &Info,
    first_root: &Path,
    other: &Info,
    other_root: &Path,
) -> Result<()> {
    if first.fps != other.fps {
        return Err(Error::invalid(format!(
            "cannot merge {}: fps {} differs from {} ({} fps)",
            other_root.display(),
            other.fps,
            first_root.display(),
            first.fps
        )));
    }
    if first.robot_type != other.robot_type {
        return Err(Error::invalid(format!(
            "cannot merge {}: robot_type {:?} differs from {} ({:?})",
            other_root.display(),
            other.robot_type,
            first_root.display(),
            first.robot_type
        )));
    }
    let diff = feature_differences(first, other);
    if !diff.is_empty() {
        return Err(Error::invalid(format!(
            "cannot merge {}: its features differ from {}'s: {}",
            other_root.display(),
            first_root.display(),
            diff.join(", ")
        )));
    }
    Ok(())
}

/// The cameras of `src` whose stream is not DST's (`dst`, at `dst_root`), each with the
/// settings that write DST's stream; an error when one cannot be re-encoded to it.
fn reencode_plan(dst: &Info, dst_root: &Path, src: &Source) -> Result<Vec<Reencode>> {
    let mut out = Vec::new();
    for (name, f) in dst.features.iter() {
        if f.dtype != Dtype::Video {
            continue;
        }
        let (a, b) = (video_info(dst, name), video_info(&src.info, name));
        let diff = a.stream_differences(&b);
        if diff.is_empty() {
            continue;
        }
        let settings = encoder_settings(&a).map_err(|e| {
            Error::invalid(format!(
                "cannot merge {}: camera {name} is {}, {} has {}, and it cannot be \
                 re-encoded to that: {e}",
                src.root.display(),
                b.describe(),
                dst_root.display(),
                a.describe()
            ))
        })?;
        out.push(Reencode {
            key: name.to_string(),
            settings,
            why: diff.join(", "),
        });
    }
    Ok(out)
}

fn open_source(root: &Path) -> Result<Source> {
    if !root.is_dir() {
        return Err(Error::invalid(format!(
            "source {} is not a dataset folder",
            root.display()
        )));
    }
    // A shared hold is not offered by the lock; the exclusive lock refuses a source that is
    // being recorded (or repaired, or merged into) and keeps it still while it is read.
    let lock = DatasetLock::acquire(root, LockMode::Exclusive, "reel merge (reading)")?;
    if crate::writer::journal_pending(root) {
        return Err(Error::invalid(format!(
            "source {} has an unfinished save (a crash): run reel check --repair on it first",
            root.display()
        )));
    }
    let report = crate::check::check(root, crate::check::CheckOptions::default())?;
    if !report.ok() {
        return Err(Error::invalid(format!(
            "source {} is damaged: {}",
            root.display(),
            report.problems.join("; ")
        )));
    }
    let info = Info::read(root)?;
    let episodes = episodes::read_all(root, &info.features)?;
    let tasks = reel_dataset::tasks::read(root)?;
    let stats = reel_dataset::stats_json::read(root)?;
    Ok(Source {
        root: root.to_path_buf(),
        info,
        episodes,
        tasks,
        stats,
        _lock: lock,
    })
}

/// Where DST's next files go, and what it holds already.
struct Dst {
    /// An existing episode row of DST (append), whose columns the new rows must match.
    layout: Option<EpisodeRecord>,
    root: PathBuf,
    info: Info,
    tasks: Vec<String>,
    stats: Vec<FeatureStats>,
    stat_names: Vec<String>,
    next_data: FileIndex,
    next_video: BTreeMap<String, FileIndex>,
    next_meta: FileIndex,
    /// Per [`RENUMBERED`] column, every DST episode's stats (existing and merged).
    int_stats: [Vec<FeatureStats>; 3],
    episodes: u64,
    frames: u64,
    bytes: u64,
}

fn after(files: impl Iterator<Item = FileIndex>, chunks_size: u32) -> FileIndex {
    files.max().map(|f| f.next(chunks_size)).unwrap_or_default()
}

fn dst_state(
    root: &Path,
    info: Info,
    existing: &[EpisodeRecord],
    tasks: Vec<String>,
) -> Result<Dst> {
    let cs = info.chunks_size;
    let mut next_video = BTreeMap::new();
    for (name, f) in info.features.iter() {
        if f.dtype == Dtype::Video {
            let files = existing
                .iter()
                .flat_map(|e| e.videos.iter().filter(|v| v.key == name).map(|v| v.file));
            next_video.insert(name.to_string(), after(files, cs));
        }
    }
    let (stat_names, stats) = if existing.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        reel_dataset::stats_json::read(root)?.into_iter().unzip()
    };
    let int_stats = RENUMBERED.map(|name| {
        existing
            .iter()
            .filter_map(|e| {
                e.stats
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, s, _)| s.clone())
            })
            .collect()
    });
    Ok(Dst {
        layout: existing.first().cloned(),
        int_stats,
        root: root.to_path_buf(),
        next_data: after(existing.iter().map(|e| e.data_file), cs),
        next_meta: after(existing.iter().map(|e| e.meta_file), cs),
        next_video,
        episodes: existing.len() as u64,
        frames: existing.iter().map(|e| e.length).sum(),
        info,
        tasks,
        stats,
        stat_names,
        bytes: 0,
    })
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn mkdirs(p: &Path) -> Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io("create", d, e))?;
    }
    Ok(())
}

/// `col` of `batch` as int64 with `f` applied to every value.
fn map_i64(
    batch: &RecordBatch,
    col: &str,
    path: &Path,
    f: &dyn Fn(i64) -> Result<i64>,
) -> Result<Option<ArrayRef>> {
    let Some(a) = batch.column_by_name(col) else {
        return Ok(None);
    };
    let a = a
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| Error::corrupt(path, format!("column '{col}' is not int64")))?;
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        out.push(if a.is_null(i) {
            None
        } else {
            Some(f(a.value(i))?)
        });
    }
    Ok(Some(Arc::new(Int64Array::from(out))))
}

/// A renumbering of one int64 column.
type Renumber<'a> = dyn Fn(i64) -> Result<i64> + 'a;

/// The renumbered columns, whose stats are recomputed from the new values.
const RENUMBERED: [&str; 3] = ["index", "episode_index", "task_index"];

/// Per new episode index, the new values of [`RENUMBERED`].
type Renumbered = BTreeMap<i64, [Vec<f64>; 3]>;

fn collect_renumbered(batch: &RecordBatch, path: &Path, out: &mut Renumbered) -> Result<()> {
    let col = |name: &str| -> Result<Int64Array> {
        batch
            .column_by_name(name)
            .and_then(|a| a.as_any().downcast_ref::<Int64Array>().cloned())
            .ok_or_else(|| Error::corrupt(path, format!("column '{name}' (int64) missing")))
    };
    let cols = [
        col(RENUMBERED[0])?,
        col(RENUMBERED[1])?,
        col(RENUMBERED[2])?,
    ];
    for row in 0..batch.num_rows() {
        let ep = cols[1].value(row);
        let slot = out.entry(ep).or_default();
        for (k, c) in cols.iter().enumerate() {
            slot[k].push(c.value(row) as f64);
        }
    }
    Ok(())
}

/// Copies one source's data files into DST with renumbered columns; returns the map
/// from the source's data files to DST's.
fn copy_data(
    src: &Source,
    dst: &mut Dst,
    ep_off: i64,
    frame_off: i64,
    task_map: &[i64],
    journal: &mut Journal,
    values: &mut Renumbered,
) -> Result<BTreeMap<FileIndex, FileIndex>> {
    let mut map = BTreeMap::new();
    for e in &src.episodes {
        if map.contains_key(&e.data_file) {
            continue;
        }
        let from = paths::data_file(&src.root, e.data_file);
        let to = paths::data_file(&dst.root, dst.next_data);
        mkdirs(&to)?;
        let kv: Vec<(String, String)> = parquet_append::key_value_metadata(&from)?
            .into_iter()
            .filter(|(k, _)| k != "ARROW:schema")
            .collect();
        let remap_task = |t: i64| {
            usize::try_from(t)
                .ok()
                .and_then(|t| task_map.get(t).copied())
                .ok_or_else(|| Error::corrupt(&from, format!("task_index {t} names no task")))
        };
        for batch in read_batches(&from)? {
            let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
            let schema = batch.schema();
            let replace: [(&str, &Renumber<'_>); 3] = [
                ("index", &|v| Ok(v + frame_off)),
                ("episode_index", &|v| Ok(v + ep_off)),
                ("task_index", &remap_task),
            ];
            for (name, f) in replace {
                if let (Some(new), Ok(i)) =
                    (map_i64(&batch, name, &from, f)?, schema.index_of(name))
                {
                    cols[i] = new;
                }
            }
            let out = RecordBatch::try_new(schema.clone(), cols)
                .map_err(|e| Error::corrupt(&from, format!("renumbering rows: {e}")))?;
            collect_renumbered(&out, &from, values)?;
            parquet_append::append_batch(&to, &out, &kv, journal)?;
        }
        dst.bytes += file_len(&to);
        map.insert(e.data_file, dst.next_data);
        dst.next_data = dst.next_data.next(dst.info.chunks_size);
    }
    Ok(map)
}

/// Re-encodes `from` to DST's stream (`r.settings`) in DST's scratch folder, then moves it to
/// `to` once its creation is journaled; returns its size.
fn reencode_video(
    from: &Path,
    to: &Path,
    r: &Reencode,
    (root, fps): (&Path, u32),
    journal: &mut Journal,
) -> Result<u64> {
    let reader = reel_media::transcode::FrameReader::open(from)?;
    if reader.fps() != fps {
        return Err(Error::Mismatch(format!(
            "{}: the video runs at {} fps, the dataset at {fps}",
            from.display(),
            reader.fps(),
        )));
    }
    drop(reader);
    let scratch = scratch_dir(root);
    std::fs::create_dir_all(&scratch).map_err(|e| Error::io("create", &scratch, e))?;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = scratch.join(format!("{}-{name}", r.key));
    let seg = reel_media::transcode::transcode_file(from, &tmp, &r.settings, &Default::default())?;
    reel_core::faultpoint::hit("merge.video_reencoded");
    journal.record_create(to)?;
    std::fs::rename(&tmp, to).map_err(|e| Error::io("rename", &tmp, e))?;
    Ok(seg.bytes)
}

/// DST's scratch folder for re-encoded videos on their way in.
fn scratch_dir(root: &Path) -> PathBuf {
    paths::reel_dir(root).join("merge")
}

/// Copies one source's video files into DST (whole, or re-encoded per `plan`); returns per
/// key the file map.
fn copy_videos(
    src: &Source,
    dst: &mut Dst,
    plan: &[Reencode],
    journal: &mut Journal,
) -> Result<BTreeMap<(String, FileIndex), FileIndex>> {
    let mut map = BTreeMap::new();
    for e in &src.episodes {
        for v in &e.videos {
            let k = (v.key.clone(), v.file);
            if map.contains_key(&k) {
                continue;
            }
            let at = (dst.root.as_path(), dst.info.fps);
            let next = dst.next_video.get_mut(&v.key).ok_or_else(|| {
                Error::invalid(format!("camera {} is not a feature of DST", v.key))
            })?;
            let from = paths::video_file(&src.root, &v.key, v.file);
            let to = paths::video_file(&dst.root, &v.key, *next);
            mkdirs(&to)?;
            let n = match plan.iter().find(|r| r.key == v.key) {
                Some(r) => reencode_video(&from, &to, r, at, journal)?,
                None => {
                    journal.record_create(&to)?;
                    std::fs::copy(&from, &to).map_err(|e| Error::io("copy", &from, e))?
                }
            };
            reel_core::faultpoint::hit("merge.video_copied");
            dst.bytes += n;
            map.insert(k, *next);
            *next = next.next(dst.info.chunks_size);
        }
    }
    Ok(map)
}

fn merge_one(
    src: &Source,
    plan: &[Reencode],
    dst: &mut Dst,
    journal: &mut Journal,
    rows: &mut Vec<EpisodeRecord>,
) -> Result<()> {
    let (ep_off, frame_off) = (dst.episodes, dst.frames);
    let mut task_map = Vec::with_capacity(src.tasks.len());
    for t in &src.tasks {
        let i = match dst.tasks.iter().position(|x| x == t) {
            Some(i) => i,
            None => {
                dst.tasks.push(t.clone());
                dst.tasks.len() - 1
            }
        };
        task_map.push(i as i64);
    }
    let (ep_i, fr_i) = (
        i64::try_from(ep_off).map_err(|_| Error::invalid("too many episodes"))?,
        i64::try_from(frame_off).map_err(|_| Error::invalid("too many frames"))?,
    );
    let mut values = Renumbered::new();
    let data_map = copy_data(src, dst, ep_i, fr_i, &task_map, journal, &mut values)?;
    reel_core::faultpoint::hit("merge.data_copied");
    let video_map = copy_videos(src, dst, plan, journal)?;
    for e in &src.episodes {
        let mut r = e.clone();
        r.episode_index += ep_off;
        r.dataset_from_index += frame_off;
        r.dataset_to_index += frame_off;
        r.data_file = data_map[&e.data_file];
        for v in &mut r.videos {
            v.file = video_map[&(v.key.clone(), v.file)];
        }
        r.meta_file = dst.next_meta;
        let vals = i64::try_from(r.episode_index)
            .ok()
            .and_then(|i| values.get(&i))
            .ok_or_else(|| {
                Error::corrupt(
                    paths::data_file(&src.root, e.data_file),
                    format!("no rows of episode {}", e.episode_index),
                )
            })?;
        for (n, st, _) in &mut r.stats {
            if let Some(k) = RENUMBERED.iter().position(|x| x == n) {
                *st = reel_stats::vector_stats(&vals[k], 1)?;
                dst.int_stats[k].push(st.clone());
            }
        }
        rows.push(r);
    }
    // Stats in DST's stat order (the first stats file's), each aggregated; the renumbered
    // columns' are replaced in write_meta.
    let shifted_stats = &src.stats;
    if dst.stat_names.is_empty() {
        dst.stat_names = shifted_stats.iter().map(|(n, _)| n.clone()).collect();
        dst.stats = shifted_stats.iter().map(|(_, s)| s.clone()).collect();
    } else {
        for (i, name) in dst.stat_names.clone().iter().enumerate() {
            let s = shifted_stats
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| {
                    Error::corrupt(paths::stats_file(&src.root), format!("no stats for {name}"))
                })?;
            dst.stats[i] = reel_stats::aggregate(&dst.stats[i], &s.1);
        }
    }
    dst.episodes += src.episodes.len() as u64;
    dst.frames += src.episodes.iter().map(|e| e.length).sum::<u64>();
    Ok(())
}

/// The value of a reel figure column an episode's source did not record (a LeRobot-written
/// source has none of them).
fn not_recorded(like: &ExtraValue) -> ExtraValue {
    match like {
        ExtraValue::I64(_) => ExtraValue::I64(-1),
        ExtraValue::F64(_) => ExtraValue::F64(f64::NAN),
        ExtraValue::Str(_) => ExtraValue::Str(String::new()),
    }
}

/// Gives every row the columns of `layout` (DST's existing rows, else the first new one), so
/// that one episodes table (and LeRobot's load of every episodes file together) has one
/// schema: stats in `layout`'s feature order (LeRobot's writer and reel's order them
/// differently), and exactly `layout`'s reel figure columns (`reel/...`, after LeRobot's),
/// a missing one written as not recorded (-1, NaN or ""), one `layout` lacks left out.
fn conform_rows(rows: &mut [EpisodeRecord], layout: Option<&EpisodeRecord>) {
    let Some(layout) = layout.or(rows.first()).cloned() else {
        return;
    };
    let order = |name: &str| {
        layout
            .stats
            .iter()
            .position(|(n, _, _)| n == name)
            .unwrap_or(usize::MAX)
    };
    for r in rows {
        r.stats.sort_by_key(|(n, _, _)| order(n));
        r.extra = layout
            .extra
            .iter()
            .map(|(name, like)| {
                let v = r
                    .extra
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone());
                (name.clone(), v.unwrap_or_else(|| not_recorded(like)))
            })
            .collect();
    }
}

fn write_meta(dst: &mut Dst, rows: &mut [EpisodeRecord], journal: &mut Journal) -> Result<()> {
    conform_rows(rows, dst.layout.as_ref());
    if !rows.is_empty() {
        let to = paths::episodes_file(&dst.root, dst.next_meta);
        mkdirs(&to)?;
        for chunk in rows.chunks(crate::writer::EPISODES_PER_ROW_GROUP) {
            let batches = chunk
                .iter()
                .map(episodes::episode_batch)
                .collect::<Result<Vec<_>>>()?;
            let schema = batches[0].schema();
            let batch = arrow_select::concat::concat_batches(&schema, &batches)
                .map_err(|e| Error::invalid(format!("building the episodes table: {e}")))?;
            parquet_append::append_batch(&to, &batch, &[], journal)?;
        }
        dst.bytes += file_len(&to);
    }
    reel_core::faultpoint::hit("merge.episodes_written");
    reel_dataset::tasks::write(&dst.root, &dst.tasks, journal)?;
    for (k, name) in RENUMBERED.iter().enumerate() {
        if let (Some(i), Some(agg)) = (
            dst.stat_names.iter().position(|n| n == name),
            reel_stats::aggregate_all(&dst.int_stats[k]),
        ) {
            dst.stats[i] = agg;
        }
    }
    let visual = |n: &str| {
        dst.info
            .features
            .get(n)
            .is_some_and(|f| f.dtype == Dtype::Video)
    };
    let stats: Vec<(String, FeatureStats, bool)> = dst
        .stat_names
        .iter()
        .zip(&dst.stats)
        .map(|(n, s)| (n.clone(), s.clone(), visual(n)))
        .collect();
    reel_dataset::stats_json::write(&dst.root, &stats, journal)?;
    reel_core::faultpoint::hit("merge.stats_written");
    dst.info.total_episodes = dst.episodes;
    dst.info.total_frames = dst.frames;
    dst.info.total_tasks = dst.tasks.len() as u64;
    dst.info.write(&dst.root, journal)?;
    reel_core::faultpoint::hit("merge.info_written");
    for f in ["info.json", "stats.json", "tasks.parquet"] {
        dst.bytes += file_len(&dst.root.join("meta").join(f));
    }
    Ok(())
}

/// The staging folder a new DST is built in.
pub fn staging_dir(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".reel-merge");
    PathBuf::from(s)
}

/// Merges `sources` into `output` (created, or with `opts.append` extended). `progress` is
/// called after each source. Nothing is written when a source is refused.
pub fn merge(
    sources: &[PathBuf],
    output: &Path,
    opts: &MergeOptions,
    progress: Progress<'_>,
) -> Result<MergeSummary> {
    let t0 = Instant::now();
    if sources.is_empty() {
        return Err(Error::invalid(
            "reel merge needs at least one source dataset",
        ));
    }
    let out_abs = std::path::absolute(output).map_err(|e| Error::io("resolve", output, e))?;
    for s in sources {
        if std::path::absolute(s).map_err(|e| Error::io("resolve", s, e))? == out_abs {
            return Err(Error::invalid(format!(
                "{} is both a source and the output",
                s.display()
            )));
        }
    }
    let srcs = sources
        .iter()
        .map(|s| open_source(s))
        .collect::<Result<Vec<_>>>()?;
    for s in &srcs[1..] {
        check_compatible(&srcs[0].info, &srcs[0].root, &s.info, &s.root)?;
    }
    let plans_for = |dst: &Info, dst_root: &Path| {
        srcs.iter()
            .map(|s| reencode_plan(dst, dst_root, s))
            .collect::<Result<Vec<_>>>()
    };
    let (root, _lock, mut dst, plans) = if opts.append {
        if !paths::info_file(output).is_file() {
            return Err(Error::invalid(format!(
                "--append: {} is not a dataset (no meta/info.json)",
                output.display()
            )));
        }
        let lock = DatasetLock::acquire(output, LockMode::Exclusive, "reel merge")?;
        crate::writer::recover(output)?;
        let info = Info::read(output)?;
        check_compatible(&info, output, &srcs[0].info, &srcs[0].root)?;
        let plans = plans_for(&info, output)?;
        let existing = episodes::read_all(output, &info.features)?;
        let tasks = reel_dataset::tasks::read(output)?;
        let dst = dst_state(output, info, &existing, tasks)?;
        (output.to_path_buf(), lock, dst, plans)
    } else {
        if output.exists() {
            return Err(Error::invalid(format!(
                "{} exists: choose a new output, or add --append to merge into it",
                output.display()
            )));
        }
        let plans = plans_for(&srcs[0].info, &srcs[0].root)?;
        let stage = staging_dir(output);
        if stage.exists() {
            // A kill during an earlier merge: nothing in it was published.
            let _l = DatasetLock::acquire(&stage, LockMode::Exclusive, "reel merge")?;
            std::fs::remove_dir_all(&stage).map_err(|e| Error::io("remove", &stage, e))?;
        }
        std::fs::create_dir_all(stage.join("meta")).map_err(|e| Error::io("create", &stage, e))?;
        let lock = DatasetLock::acquire(&stage, LockMode::Exclusive, "reel merge")?;
        let mut info = srcs[0].info.clone();
        info.total_episodes = 0;
        info.total_frames = 0;
        info.total_tasks = 0;
        info.write_new(&stage, true)?;
        let dst = dst_state(&stage, info, &[], Vec::new())?;
        (stage, lock, dst, plans)
    };
    let scratch = scratch_dir(&root);
    if scratch.exists() {
        // Left by a merge killed while re-encoding: never part of DST.
        std::fs::remove_dir_all(&scratch).map_err(|e| Error::io("remove", &scratch, e))?;
    }
    let jpath = paths::reel_dir(&root).join("journal");
    let mut journal = Journal::begin(&jpath, &root, true)?;
    let mut rows = Vec::new();
    let mut summaries = Vec::new();
    let frames_of = |s: &Source| s.episodes.iter().map(|e| e.length).sum::<u64>();
    progress(MergeEvent::Begin {
        sources: srcs.len(),
        frames: srcs.iter().map(frames_of).sum(),
    });
    for (i, (s, plan)) in srcs.iter().zip(&plans).enumerate() {
        progress(MergeEvent::Source {
            index: i,
            path: &s.root,
            frames: frames_of(s),
            reencode: !plan.is_empty(),
        });
        merge_one(s, plan, &mut dst, &mut journal, &mut rows)?;
        summaries.push(SourceSummary {
            path: s.root.clone(),
            episodes: s.episodes.len() as u64,
            frames: s.episodes.iter().map(|e| e.length).sum(),
            method: if plan.is_empty() {
                "stream-copy"
            } else {
                "re-encode"
            },
            reencoded: plan
                .iter()
                .map(|r| (r.key.clone(), r.why.clone()))
                .collect(),
        });
        progress(MergeEvent::SourceDone {
            index: i,
            path: &s.root,
        });
    }
    write_meta(&mut dst, &mut rows, &mut journal)?;
    journal.commit()?;
    reel_core::faultpoint::hit("merge.committed");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(|e| Error::io("remove", &scratch, e))?;
    }
    if !opts.append {
        drop(_lock);
        std::fs::rename(&root, output).map_err(|e| Error::io("rename", &root, e))?;
        let parent = output.parent().filter(|d| !d.as_os_str().is_empty());
        reel_core::journal::sync_dir(parent.unwrap_or(Path::new(".")))?;
    }
    Ok(MergeSummary {
        output: output.to_path_buf(),
        appended: opts.append,
        episodes: dst.episodes,
        frames: dst.frames,
        sources: summaries,
        bytes_written: dst.bytes,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The encoder settings that write the stream of video block `v`: the codec (`av1` → libsvtav1,
/// `h264` → libx264, `hevc` → libx265) and pixel format, with the encoder fields
/// (`video.g`, `video.crf`, `video.preset`, `video.fast_decode`, `video.extra_options`)
/// where present, LeRobot's defaults where not. Refuses a depth map (its codes must be
/// re-quantised, not re-encoded) and a codec reel does not encode.
fn encoder_settings(block: &VideoInfo) -> Result<reel_media::EncoderSettings> {
    use serde_json::Value;
    if block.get("is_depth_map").and_then(Value::as_bool) == Some(true) {
        return Err(Error::invalid("a depth map stream is not re-encoded"));
    }
    let codec = block
        .get("video.codec")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("the video block names no video.codec"))?;
    let vcodec = match codec {
        "av1" => "libsvtav1",
        "h264" => "libx264",
        "hevc" => "libx265",
        other => {
            return Err(Error::invalid(format!(
                "reel does not encode video.codec {other:?} (it writes av1, h264, hevc)"
            )))
        }
    };
    let mut s = reel_media::EncoderSettings::lerobot_default().with_codec(vcodec);
    if let Some(p) = block.get("video.pix_fmt").and_then(Value::as_str) {
        s.pix_fmt = p.to_string();
    }
    let bad = |k: &str, v: &Value| Error::invalid(format!("video block: bad {k} {v}"));
    if let Some(v) = block.get("video.g").filter(|v| !v.is_null()) {
        let g = v.as_u64().and_then(|g| u32::try_from(g).ok());
        s.g = Some(g.filter(|&g| g > 0).ok_or_else(|| bad("video.g", v))?);
    }
    if let Some(v) = block.get("video.crf").filter(|v| !v.is_null()) {
        s.crf = Some(v.as_f64().ok_or_else(|| bad("video.crf", v))?);
    }
    if let Some(v) = block.get("video.preset") {
        s.preset = match v {
            Value::Null => None,
            Value::String(p) => Some(p.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => return Err(bad("video.preset", other)),
        };
    }
    if let Some(v) = block.get("video.fast_decode").filter(|v| !v.is_null()) {
        let f = v.as_u64().and_then(|f| u32::try_from(f).ok());
        s.fast_decode = f.ok_or_else(|| bad("video.fast_decode", v))?;
    }
    if let Some(Value::Object(m)) = block.get("video.extra_options") {
        for (k, v) in m {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            s.extra.push((k.clone(), v));
        }
    }
    let s = s.resolved();
    s.validate()?;
    Ok(s)
}
