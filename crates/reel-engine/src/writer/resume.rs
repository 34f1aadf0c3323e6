//! Resuming a dataset: roll back what a crash left, then check that the dataset matches what
//! this session records, and read where the next episode goes (a resumed session always opens
//! new files, as LeRobot does).

use super::committer::CommitState;
use super::validate::probe_writable;
use super::{recover, WriterConfig};
use reel_core::{Dtype, Error, Features, Result};
use reel_dataset::info::Info;
use reel_dataset::{episodes, paths, stats_json, tasks};
use reel_stats::FeatureStats;
use std::path::Path;

/// What an existing dataset records, read from its `meta/info.json`: enough to resume it
/// without restating fps, features or robot type.
#[derive(Debug, Clone)]
pub struct DatasetSchema {
    pub fps: u32,
    /// The user features (without LeRobot's default columns).
    pub features: Features,
    pub robot_type: Option<String>,
    /// The cameras' codec as ffprobe names it ("av1", "h264", "hevc"), when every camera
    /// agrees (None: no video written yet, or mixed codecs).
    pub codec: Option<String>,
}

impl DatasetSchema {
    /// The encoder a resumed session asks for: the one requested, else the dataset's own
    /// codec (so that "auto" on another machine does not refuse the dataset), else "auto".
    pub fn vcodec_for_resume(&self, requested: Option<&str>) -> String {
        match (requested.map(str::trim), &self.codec) {
            (Some(r), _) if !r.is_empty() && r != "auto" => r.to_string(),
            (_, Some(c)) => c.clone(),
            _ => "auto".to_string(),
        }
    }
}

/// Reads the schema of the dataset at `root` (see [`DatasetSchema`]).
pub fn read_schema(root: &Path) -> Result<DatasetSchema> {
    if !paths::info_file(root).exists() {
        return Err(Error::invalid(format!(
            "cannot resume {}: no meta/info.json there",
            root.display()
        )));
    }
    let info = Info::read(root)?;
    // The RGB cameras' codec: depth cameras always hold LeRobot's depth codec (HEVC).
    let codecs: Vec<&str> = info
        .video_info
        .iter()
        .filter(|(k, _)| !info.features.get(k).is_some_and(|f| f.is_depth()))
        .filter_map(|(_, vi)| {
            vi.fields
                .iter()
                .find(|(k, _)| k == "video.codec")
                .and_then(|(_, v)| v.as_str())
        })
        .collect();
    let codec = match codecs.first() {
        Some(c) if codecs.iter().all(|x| x == c) => Some(c.to_string()),
        _ => None,
    };
    Ok(DatasetSchema {
        fps: info.fps,
        features: info.features,
        robot_type: info.robot_type,
        codec,
    })
}

/// What [`open_existing`] read.
pub(super) struct Resumed {
    pub(super) state: CommitState,
    pub(super) tasks: Vec<String>,
    /// The dataset's codec per camera when this session opened it.
    pub(super) codecs_before: Vec<(String, String)>,
}

/// Rolls back an unfinished save, then checks that the dataset at `cfg.root` matches `cfg`
/// (fps, robot type, features, codecs: an error lists every mismatch) and reads where the
/// next episode goes.
///
/// A camera's files must share one codec at every commit (info.json describes them all), so
/// a deferred session on a dataset already in the final codec records that codec directly
/// (`cfg` is changed, and the decision logged); one whose cameras are split between codecs
/// is refused until `reel reencode` unified them.
pub(super) fn open_existing(cfg: &mut WriterConfig) -> Result<Resumed> {
    let root = cfg.root.clone();
    probe_writable(&root)?;
    recover(&root)?;
    let info = Info::read(&root)?;
    let mut problems = Vec::new();
    if info.fps != cfg.fps {
        problems.push(format!(
            "fps is {} in the dataset, {} requested",
            info.fps, cfg.fps
        ));
    }
    if info.robot_type != cfg.robot_type {
        problems.push(format!(
            "robot_type is {:?} in the dataset, {:?} requested",
            info.robot_type, cfg.robot_type
        ));
    }
    for (name, f) in cfg.features.iter() {
        match info.features.get(name) {
            None => problems.push(format!("feature '{name}' is not in the dataset")),
            Some(g) if g.dtype != f.dtype || g.shape != f.shape => problems.push(format!(
                "feature '{name}' is {} {:?} in the dataset, {} {:?} requested",
                g.dtype.as_str(),
                g.shape,
                f.dtype.as_str(),
                f.shape
            )),
            Some(g) if g.names != f.names && f.names.is_some() => problems.push(format!(
                "feature '{name}' has names {:?} in the dataset, {:?} requested",
                g.names, f.names
            )),
            _ => {}
        }
    }
    for (name, _) in info.features.iter() {
        if cfg.features.get(name).is_none() {
            problems.push(format!(
                "the dataset has feature '{name}', which this session does not record"
            ));
        }
    }
    let mut codecs_before = Vec::new();
    // Without episodes there are no video files yet: the blocks are only predictions.
    let described = if info.total_episodes > 0 {
        info.video_info.as_slice()
    } else {
        &[]
    };
    for (key, vi) in described {
        if info.features.get(key).is_some_and(|f| f.is_depth()) {
            // A depth camera goes on with the dataset's own depth settings (quantiser and
            // encoder), whatever this session was given: its files must share them.
            let fields: serde_json::Map<String, serde_json::Value> =
                vi.fields.iter().cloned().collect();
            let own = reel_media::depth::DepthEncoding::from_info(&fields)
                .map_err(|e| e.context(format!("camera '{key}'")))?;
            if own != cfg.depth {
                tracing::info!(
                    "camera '{key}': depth encoded with the dataset's own settings ({:?})",
                    own.quant
                );
                cfg.depth = own;
            }
            continue;
        }
        if let Some(codec) = vi
            .fields
            .iter()
            .find(|(k, _)| k == "video.codec")
            .and_then(|(_, v)| v.as_str())
        {
            let live = cfg.encoder.codec_family()?;
            let fin = match &cfg.deferred {
                Some(d) => Some(d.codec_family()?),
                None => None,
            };
            // With a deferred final codec, a dataset in either codec is fine: still in the
            // live codec (an earlier conversion was not finished) or already in the final one.
            if codec != live && fin.as_deref() != Some(codec) {
                let want = fin.unwrap_or(live);
                problems.push(format!("camera '{key}' is encoded as {codec} in the dataset, {want} requested (--vcodec)"));
            }
            codecs_before.push((key.clone(), codec.to_string()));
        }
    }
    if info.total_episodes > 0 {
        keep_one_codec_per_camera(cfg, &codecs_before, &mut problems)?;
    }
    if !problems.is_empty() {
        return Err(Error::Mismatch(format!(
            "cannot resume {}: {}",
            root.display(),
            problems.join("; ")
        )));
    }
    let task_list = tasks::read(&root).or_else(|e| {
        if info.total_tasks == 0 {
            Ok(Vec::new())
        } else {
            Err(e)
        }
    })?;
    let records = if info.total_episodes > 0 {
        episodes::read_all(&root, &info.features)?
    } else {
        Vec::new()
    };
    let total: u64 = records.iter().map(|r| r.length).sum();
    let contiguous = records
        .iter()
        .enumerate()
        .all(|(i, r)| r.episode_index == i as u64);
    if records.len() as u64 != info.total_episodes || total != info.total_frames || !contiguous {
        return Err(Error::corrupt(
            paths::info_file(&root),
            format!(
                "info.json says {} episodes / {} frames but meta/episodes holds {} episodes / {} frames{}; run `reel check --repair {}`",
                info.total_episodes,
                info.total_frames,
                records.len(),
                total,
                if contiguous { "" } else { " (episode indices not contiguous)" },
                root.display()
            ),
        ));
    }
    let stats = if info.total_episodes > 0 {
        Some(read_stats_with_flags(&root, &info.features)?)
    } else {
        None
    };
    let state = CommitState::resumed(cfg, info, task_list.len(), records.last(), stats);
    Ok(Resumed {
        state,
        tasks: task_list,
        codecs_before,
    })
}

/// See [`open_existing`]: with a deferred final codec, new files must be in the codec the
/// dataset's files already have.
fn keep_one_codec_per_camera(
    cfg: &mut WriterConfig,
    codecs_before: &[(String, String)],
    problems: &mut Vec<String>,
) -> Result<()> {
    let Some(fin) = cfg.deferred.clone() else {
        return Ok(());
    };
    let (live_family, fin_family) = (cfg.encoder.codec_family()?, fin.codec_family()?);
    if live_family == fin_family || codecs_before.is_empty() {
        return Ok(());
    }
    let in_final = codecs_before
        .iter()
        .filter(|(_, c)| *c == fin_family)
        .count();
    if in_final == 0 {
        return Ok(()); // all in the live codec: record live, the swap keeps them live too
    }
    if in_final < codecs_before.len() {
        let split: Vec<String> = codecs_before
            .iter()
            .map(|(k, c)| format!("{k} is {c}"))
            .collect();
        problems.push(format!(
            "its cameras are in different codecs ({}); run `reel reencode {} --vcodec {}` first",
            split.join(", "),
            cfg.root.display(),
            fin.vcodec
        ));
        return Ok(());
    }
    tracing::warn!(
        "the dataset's videos are already {fin_family}: recording {} directly in this session (a deferred conversion would leave {live_family} files beside {fin_family} ones until it finished)",
        fin.vcodec
    );
    let mut direct = fin;
    direct.fault = cfg.encoder.fault.take();
    cfg.encoder = direct;
    cfg.deferred = None;
    Ok(())
}

fn read_stats_with_flags(
    root: &Path,
    features: &Features,
) -> Result<Vec<(String, FeatureStats, bool)>> {
    Ok(stats_json::read(root)?
        .into_iter()
        .map(|(k, s)| {
            let visual = features.get(&k).is_some_and(|f| f.dtype == Dtype::Video);
            (k, s, visual)
        })
        .collect())
}
