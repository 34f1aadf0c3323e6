//! The atomic swap: finished new files replace the old ones together with `info.json`, and
//! a `kill -9` at any moment is finished on the next run.
//!
//! The scheme is roll-forward. All new files are complete and synced under `new/` before the
//! swap begins. The swap first writes a manifest (`swap.json`: the files, and the complete
//! new `info.json` text) durably: that write is the commit point. Then, per file, the old
//! file is renamed to `old/<rel>` and the new one renamed to `<rel>`; then `info.json` is
//! replaced; then the manifest is deleted and the scratch directories removed. Every step is
//! idempotent, so [`recover`] simply runs the remaining steps again. The episodes metadata
//! does not change: a re-encode keeps every frame and the 1/fps grid, so `from_timestamp` /
//! `to_timestamp` stay valid (the frame counts are verified before a file can be swapped).

use crate::state::{self, work_dir, DoneFile};
use reel_core::extra::ExtraValue;
use reel_core::journal::{sync_dir, write_atomic, Journal};
use reel_core::{Error, Result};
use reel_dataset::info::{Info, VideoInfo};
use reel_dataset::{paths, pyjson};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The swap manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    files: Vec<String>,
    info_json: String,
    /// (episode, camera key, encoder): the per-episode figures' encoder corrections
    /// ([`reel_dataset::figures`]) appended once the files are in place.
    #[serde(default)]
    encoders: Vec<(u64, String, String)>,
}

fn manifest_path(root: &Path) -> PathBuf {
    work_dir(root).join("swap.json")
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", dir, e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    if let Some(d) = to.parent() {
        fs::create_dir_all(d).map_err(|e| Error::io("create dir", d, e))?;
    }
    fs::rename(from, to).map_err(|e| Error::io("rename", from, e))
}

/// True when an interrupted swap waits to be finished.
pub fn pending(root: &Path) -> bool {
    manifest_path(root).exists()
}

/// Finishes an interrupted swap, if any. Returns true when there was one.
pub fn recover(root: &Path) -> Result<bool> {
    let mp = manifest_path(root);
    let text = match fs::read_to_string(&mp) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("read", &mp, e)),
    };
    // A manifest reached through a symbolic link (`.reel -> elsewhere`) is not this
    // dataset's: finishing it would move files and remove folders outside the dataset.
    let rel = mp.strip_prefix(root).unwrap_or(&mp);
    reel_core::safepath::resolve(root, rel).map_err(|e| {
        Error::corrupt(
            &mp,
            format!("re-encode swap manifest: {e}; nothing was moved"),
        )
    })?;
    pyjson::check_value_budget(&text, pyjson::SERDE_VALUE_COST)
        .map_err(|e| Error::corrupt(&mp, format!("re-encode swap manifest: {e}")))?;
    let m: Manifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        // write_atomic never leaves a torn manifest; an unreadable one is foreign damage.
        Err(e) => {
            return Err(Error::corrupt(
                &mp,
                format!("re-encode swap manifest unreadable: {e}"),
            ))
        }
    };
    roll_forward(root, &m)?;
    Ok(true)
}

/// Checks a manifest before any step: every path is a video file of the dataset whose new
/// copy or current file is there, and the new `info.json` reads. A manifest failing any of
/// these is refused with nothing moved.
fn check_manifest(root: &Path, m: &Manifest) -> Result<()> {
    let refuse = |e: String| {
        Error::corrupt(
            manifest_path(root),
            format!("re-encode swap manifest: {e}; nothing was moved"),
        )
    };
    for rel in &m.files {
        state::check_rel(root, rel).map_err(|e| refuse(e.to_string()))?;
        if !state::new_path(root, rel).exists() && !root.join(rel).exists() {
            return Err(refuse(format!(
                "neither the new file nor the dataset file of '{rel}' exists (restore it from .reel/reencode/old)"
            )));
        }
    }
    Info::parse(&m.info_json, &paths::info_file(root))
        .map_err(|e| refuse(format!("its info.json is not valid ({e})")))?;
    Ok(())
}

fn roll_forward(root: &Path, m: &Manifest) -> Result<()> {
    check_manifest(root, m)?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for rel in &m.files {
        let new = state::new_path(root, rel);
        let cur = root.join(rel);
        if new.exists() {
            if cur.exists() {
                rename(&cur, &state::old_path(root, rel))?;
            }
            rename(&new, &cur)?;
        } else if !cur.exists() {
            return Err(Error::corrupt(
                &cur,
                "re-encode swap: neither the new file nor the dataset file exists; restore it from .reel/reencode/old",
            ));
        }
        if let Some(d) = cur.parent() {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        }
    }
    for d in &dirs {
        sync_dir(d)?;
    }
    write_atomic(&paths::info_file(root), m.info_json.as_bytes(), true)?;
    if !m.encoders.is_empty() {
        // Journaled like an episode save, so a crash never leaves half a line; appending
        // the same corrections twice (a recovery after this point) changes nothing.
        let lines: Vec<(u64, Vec<(String, ExtraValue)>)> = m
            .encoders
            .iter()
            .map(|(e, key, enc)| {
                (
                    *e,
                    vec![(
                        format!("videos/{key}/encoder"),
                        ExtraValue::Str(enc.clone()),
                    )],
                )
            })
            .collect();
        let jp = paths::reel_dir(root).join("journal");
        reel_core::journal::recover(&jp, root)?;
        let mut j = Journal::begin(&jp, root, true)?;
        reel_dataset::figures::append_lines(root, &lines, &mut j)?;
        j.commit()?;
    }
    let mp = manifest_path(root);
    fs::remove_file(&mp).map_err(|e| Error::io("remove", &mp, e))?;
    sync_dir(&work_dir(root))?;
    cleanup(root)
}

/// Removes the scratch of a finished re-encode: `old/`, `new/` and the state files.
pub fn cleanup(root: &Path) -> Result<()> {
    let w = work_dir(root);
    remove_dir_if_present(&w.join("old"))?;
    remove_dir_if_present(&w.join("new"))?;
    for (p, _) in state::all_states(root)? {
        fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
    }
    match fs::remove_dir(&w) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Not empty: someone else's files (another shard's stray output); leave them.
        Err(_) => Ok(()),
    }
}

/// `info.json` after the swap: each re-encoded camera's block gets the codec, pixel format,
/// size and fps of its new files and the encoder fields of the encoder that did them (the
/// most used one when a fallback did some). Returns the text and warnings.
pub fn new_info(root: &Path, files: &BTreeMap<String, DoneFile>) -> Result<(String, Vec<String>)> {
    let mut info = Info::read(root)?;
    let mut warnings = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<(&String, &DoneFile)>> = BTreeMap::new();
    for (rel, d) in files {
        by_key.entry(d.key.as_str()).or_default().push((rel, d));
    }
    for (key, list) in by_key {
        let mut counts: Vec<(&crate::state::Target, usize)> = Vec::new();
        for (_, d) in &list {
            match counts.iter_mut().find(|(t, _)| *t == &d.encoder) {
                Some(c) => c.1 += 1,
                None => counts.push((&d.encoder, 1)),
            }
        }
        counts.sort_by_key(|b| std::cmp::Reverse(b.1));
        let Some(&(enc, _)) = counts.first() else {
            continue;
        };
        if counts.len() > 1 {
            warnings.push(format!(
                "{key}: files were encoded by {} different encoders ({}); info.json describes {}",
                counts.len(),
                counts
                    .iter()
                    .map(|(t, n)| format!("{} ×{n}", t.vcodec))
                    .collect::<Vec<_>>()
                    .join(", "),
                enc.vcodec
            ));
        }
        let Some((rel, _)) = list.iter().find(|(_, d)| &d.encoder == enc) else {
            continue;
        };
        let p = state::new_path(root, rel);
        let probe_path = if p.exists() { p } else { root.join(rel) };
        let pr = reel_media::probe::probe_video(&probe_path)?;
        let mut fields: Vec<(String, serde_json::Value)> = info
            .video_info_of(key)
            .map(|v| v.fields.clone())
            .unwrap_or_default();
        let mut set =
            |k: &str, v: serde_json::Value| match fields.iter_mut().find(|(kk, _)| kk == k) {
                Some(slot) => slot.1 = v,
                None => fields.push((k.to_string(), v)),
            };
        if !fields_has(&info, key, "is_depth_map") {
            set("is_depth_map", false.into());
        }
        set("video.height", pr.height.into());
        set("video.width", pr.width.into());
        set("video.codec", pr.codec.clone().into());
        set("video.pix_fmt", pr.pix_fmt.clone().into());
        set("video.fps", pr.fps.into());
        set("video.channels", pr.channels.into());
        set("has_audio", pr.has_audio.into());
        for (k, v) in &enc.info_fields {
            set(k, v.clone());
        }
        match info.video_info.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = VideoInfo { fields },
            None => info
                .video_info
                .push((key.to_string(), VideoInfo { fields })),
        }
    }
    Ok((info.to_json(), warnings))
}

fn fields_has(info: &Info, key: &str, field: &str) -> bool {
    info.video_info_of(key)
        .is_some_and(|v| v.fields.iter().any(|(k, _)| k == field))
}

/// Swaps every file of `files` (all finished under `new/`) into the dataset together with
/// the new `info.json`. Returns warnings about the metadata.
pub fn swap_in(root: &Path, files: &BTreeMap<String, DoneFile>) -> Result<Vec<String>> {
    for (rel, d) in files {
        state::check_rel(root, rel)?;
        let p = state::new_path(root, rel);
        let len = fs::metadata(&p)
            .map_err(|e| Error::io("stat new file", &p, e))?
            .len();
        if len != d.bytes {
            return Err(Error::corrupt(
                &p,
                format!("new file has {len} bytes, the state recorded {}", d.bytes),
            ));
        }
    }
    let (info_json, warnings) = new_info(root, files)?;
    let info = Info::read(root)?;
    let mut encoders = Vec::new();
    for ep in reel_dataset::episodes::read_all(root, &info.features)? {
        for v in &ep.videos {
            let p = paths::video_file(root, &v.key, v.file);
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            if let Some(d) = files.get(&rel) {
                encoders.push((ep.episode_index, v.key.clone(), d.encoder.vcodec.clone()));
            }
        }
    }
    let m = Manifest {
        files: files.keys().cloned().collect(),
        info_json,
        encoders,
    };
    let text = serde_json::to_string(&m)
        .map_err(|e| Error::invalid(format!("serialize swap manifest: {e}")))?;
    write_atomic(&manifest_path(root), text.as_bytes(), true)?;
    reel_core::faultpoint::hit("reencode.manifest");
    roll_forward(root, &m)?;
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    }

    /// A crash after any number of swap steps is finished by `recover`.
    #[test]
    fn interrupted_swap_rolls_forward_from_every_step() {
        // The manifest's info.json must parse (recovery checks it before moving anything).
        let new_info = reel_dataset::info::Info::new(30, Default::default(), None).to_json();
        let rels = [
            "videos/a/chunk-000/file-000.mp4",
            "videos/a/chunk-000/file-001.mp4",
            "videos/b/chunk-000/file-000.mp4",
        ];
        // Steps: per file 2 renames; crash after `done` of them.
        for done in 0..=6 {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path();
            put(&paths::info_file(root), "old info");
            for r in rels {
                put(&root.join(r), &format!("old {r}"));
                put(&state::new_path(root, r), &format!("new {r}"));
            }
            let m = Manifest {
                files: rels.iter().map(|s| s.to_string()).collect(),
                info_json: new_info.clone(),
                encoders: Vec::new(),
            };
            write_atomic(
                &manifest_path(root),
                serde_json::to_string(&m).unwrap().as_bytes(),
                false,
            )
            .unwrap();
            for step in 0..done {
                let r = rels[step / 2];
                if step % 2 == 0 {
                    rename(&root.join(r), &state::old_path(root, r)).unwrap();
                } else {
                    rename(&state::new_path(root, r), &root.join(r)).unwrap();
                }
            }
            assert!(pending(root));
            assert!(recover(root).unwrap());
            for r in rels {
                assert_eq!(
                    fs::read_to_string(root.join(r)).unwrap(),
                    format!("new {r}"),
                    "crash after {done} steps"
                );
            }
            assert_eq!(
                fs::read_to_string(paths::info_file(root)).unwrap(),
                new_info
            );
            assert!(!pending(root));
            assert!(!work_dir(root).exists());
            assert!(
                !recover(root).unwrap(),
                "a second recovery has nothing to do"
            );
        }
    }
}
