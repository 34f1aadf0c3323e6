//! What makes a re-encode resumable: where its scratch files live under
//! `<root>/.reel/reencode/`, and the state file that records, per run or per shard, the
//! target settings, the files assigned, and every file finished (with the encoder that did
//! it, its frame count and size). A file counts as finished only when it is in the state
//! and its new copy under `new/` has the recorded size.

use reel_core::journal::write_atomic;
use reel_core::{Error, Result};
use reel_media::EncoderSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// `<root>/.reel/reencode`.
pub fn work_dir(root: &Path) -> PathBuf {
    reel_dataset::paths::reel_dir(root).join("reencode")
}

/// Checks that `rel` (read from a state file or a swap manifest, which someone else may have
/// written) names a video file inside the dataset: under `videos/`, an `.mp4`, no `..`, no
/// absolute path, no symbolic link on the way (see [`reel_core::safepath`]).
pub fn check_rel(root: &Path, rel: &str) -> Result<()> {
    if !rel.starts_with("videos/") || !rel.ends_with(".mp4") {
        return Err(reel_core::Error::invalid(format!(
            "'{rel}' is not a video file of the dataset (videos/.../*.mp4): refusing to touch it"
        )));
    }
    // From the dataset root, so that a linked `.reel` or `.reel/reencode` is refused too.
    let work = Path::new(".reel").join("reencode");
    reel_core::safepath::resolve(root, Path::new(rel))?;
    reel_core::safepath::resolve(root, &work.join("new").join(rel))?;
    reel_core::safepath::resolve(root, &work.join("old").join(rel))?;
    Ok(())
}

/// Where finished new files wait for the swap: `<work>/new/<rel>`.
pub fn new_path(root: &Path, rel: &str) -> PathBuf {
    work_dir(root).join("new").join(rel)
}

/// Where the old files go during the swap: `<work>/old/<rel>`.
pub fn old_path(root: &Path, rel: &str) -> PathBuf {
    work_dir(root).join("old").join(rel)
}

/// The state file of an unsharded run (`state.json`) or of shard i of N
/// (`state-shard-<i>-of-<N>.json`).
pub fn state_path(root: &Path, shard: Option<(usize, usize)>) -> PathBuf {
    match shard {
        None => work_dir(root).join("state.json"),
        Some((i, n)) => work_dir(root).join(format!("state-shard-{i}-of-{n}.json")),
    }
}

/// The encoder identity that decides whether a file is already "done": codec name, pixel
/// format and the `info.json` encoder fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub vcodec: String,
    pub pix_fmt: String,
    /// `video.g`, `video.crf`, ... as `info.json` holds them.
    pub info_fields: serde_json::Map<String, serde_json::Value>,
}

impl Target {
    /// The identity of `settings`.
    pub fn of(settings: &EncoderSettings) -> Target {
        let s = settings.clone().resolved();
        Target {
            vcodec: s.vcodec.clone(),
            pix_fmt: s.pix_fmt.clone(),
            info_fields: s.info_fields().into_iter().collect(),
        }
    }
}

/// One finished file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneFile {
    /// The camera (video key) the file belongs to.
    pub key: String,
    /// The encoder that produced it (the target's, or a fallback's).
    pub encoder: Target,
    pub frames: u64,
    pub bytes: u64,
    /// Failed attempts before the one that worked ("libfoo: no frame for 2.0 s").
    pub failed_attempts: Vec<String>,
}

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub target: Target,
    /// (i, N); (0, 1) for an unsharded run.
    pub shard: (usize, usize),
    /// Every file (relative path) this run or shard must produce.
    pub assigned: Vec<String>,
    /// True once every assigned file is finished.
    pub complete: bool,
    pub files: BTreeMap<String, DoneFile>,
}

impl State {
    /// A fresh state.
    pub fn new(target: Target, shard: (usize, usize)) -> State {
        State {
            version: 1,
            target,
            shard,
            assigned: Vec::new(),
            complete: false,
            files: BTreeMap::new(),
        }
    }

    /// Reads a state file; None when absent.
    pub fn read(path: &Path) -> Result<Option<State>> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::corrupt(path, format!("re-encode state is not valid: {e}")))
    }

    /// Writes the state file atomically and durably.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid(format!("serialize re-encode state: {e}")))?;
        write_atomic(path, text.as_bytes(), true)
    }

    /// True when `rel` is recorded as finished and its new copy is there with the right size.
    pub fn is_done(&self, root: &Path, rel: &str) -> bool {
        match self.files.get(rel) {
            Some(d) => fs::metadata(new_path(root, rel))
                .map(|m| m.len() == d.bytes)
                .unwrap_or(false),
            None => false,
        }
    }
}

/// Every state file present in the work directory, with its path.
pub fn all_states(root: &Path) -> Result<Vec<(PathBuf, State)>> {
    let dir = work_dir(root);
    let rd = match fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", &dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("list", &dir, e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if name == "state.json" || (name.starts_with("state-shard-") && name.ends_with(".json")) {
            let p = ent.path();
            if let Some(s) = State::read(&p)? {
                out.push((p, s));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
