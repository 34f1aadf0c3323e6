//! The deferred conversion's swap-in: at `finalize`, the final-codec version of every video
//! file this session wrote is built from the converted parts, checked (frame count, duration)
//! against the live file, and all of them are swapped in with info.json in one journaled
//! transaction (rename old → `.reel/deferred/old/…`, create + rename new → old). The same
//! transaction appends to reel's per-episode figures (`reel_dataset::figures`) that each converted
//! camera's `videos/<key>/encoder` is now the final encoder, so the figures say what the
//! video files hold.

use super::committer::video_info_block;
use super::journal_path;
use crate::deferred;
use reel_core::extra::ExtraValue;
use reel_core::faultpoint;
use reel_core::journal::Journal;
use reel_core::{Error, Result};
use reel_dataset::episodes::VideoRef;
use reel_dataset::info::Info;
use reel_dataset::paths::{self, FileIndex};
use reel_media::EncoderSettings;
use std::fs;
use std::path::Path;

/// Builds the final-codec version of every video file this session wrote and swaps them
/// all in, with info.json, in one transaction. Cameras with a failed conversion, or whose
/// earlier files (a resumed dataset) are not in the final codec, keep the live codec.
/// Returns the number of files swapped.
pub(super) fn swap_in_final_codec(
    root: &Path,
    fin: &EncoderSettings,
    durable: bool,
    videos: &[(u64, VideoRef)],
    failed: &[(String, u64, String)],
    codecs_before: &[(String, String)],
) -> Result<usize> {
    let family = fin.codec_family()?;
    // (key, file) -> episodes in order
    let mut files: Vec<(String, FileIndex, Vec<u64>)> = Vec::new();
    for (ep, v) in videos {
        match files
            .iter_mut()
            .find(|(k, f, _)| *k == v.key && *f == v.file)
        {
            Some((_, _, eps)) => eps.push(*ep),
            None => files.push((v.key.clone(), v.file, vec![*ep])),
        }
    }
    let mut skip: Vec<String> = Vec::new();
    for (key, ep, e) in failed {
        if !skip.contains(key) {
            tracing::warn!("camera {key} keeps its live codec (episode {ep}: {e})");
            skip.push(key.clone());
        }
    }
    for (key, codec) in codecs_before {
        if *codec != family && !skip.contains(key) {
            tracing::warn!(
                "camera {key} keeps its live codec: the dataset's earlier files are {codec}; `reel reencode {} --vcodec {}` converts them all",
                root.display(),
                fin.vcodec
            );
            skip.push(key.clone());
        }
    }
    files.retain(|(k, _, _)| !skip.contains(k));
    if files.is_empty() {
        return Ok(0);
    }
    let dir = deferred::deferred_dir(root);
    // 1. Build each new file from the converted parts (scratch files: a throwaway journal).
    let mut built = Vec::new();
    for (key, file, eps) in &files {
        let old = paths::video_file(root, key, *file);
        let rel = old
            .strip_prefix(root)
            .map_err(|_| Error::invalid(format!("{} is outside the dataset", old.display())))?
            .to_path_buf();
        let new = dir.join("new").join(&rel);
        if let Some(d) = new.parent() {
            fs::create_dir_all(d).map_err(|e| Error::io("create dir", d, e))?;
        }
        if new.exists() {
            fs::remove_file(&new).map_err(|e| Error::io("remove", &new, e))?;
        }
        let mut j = Journal::begin(&dir.join("scratch-journal"), root, false)?;
        for ep in eps {
            let mut i = 0;
            loop {
                let part = deferred::converted_path(root, key, *ep, i);
                if !part.exists() {
                    break;
                }
                reel_dataset::mp4::append_segment(&new, &part, &mut j)?;
                i += 1;
            }
            if i == 0 {
                return Err(Error::invalid(format!(
                    "camera {key}: episode {ep} has no converted video"
                )));
            }
        }
        j.commit()?;
        let (a, b) = (
            reel_dataset::mp4::read_index(&old)?,
            reel_dataset::mp4::read_index(&new)?,
        );
        if a.frames != b.frames {
            return Err(Error::corrupt(
                &new,
                format!(
                    "{} frames after conversion, {} in {}",
                    b.frames,
                    a.frames,
                    old.display()
                ),
            ));
        }
        let (da, db) = (
            a.duration_ticks as f64 / a.timescale.max(1) as f64,
            b.duration_ticks as f64 / b.timescale.max(1) as f64,
        );
        if a.frames > 0 && (da - db).abs() > 0.5 * da / a.frames as f64 {
            return Err(Error::corrupt(
                &new,
                format!("lasts {db:.4} s after conversion, {da:.4} s before"),
            ));
        }
        built.push((key.clone(), old, new, dir.join("old").join(rel)));
    }
    faultpoint::hit("swap.built");
    // 2. Swap every file and info.json in one transaction of the dataset journal.
    let mut info = Info::read(root)?;
    let fields = fin.info_fields();
    let mut j = Journal::begin(&journal_path(root), root, durable)?;
    let swapped = (|| -> Result<()> {
        for (_, old, new, stash) in &built {
            if let Some(d) = stash.parent() {
                fs::create_dir_all(d).map_err(|e| Error::io("create dir", d, e))?;
            }
            j.record_rename(old, stash)?;
            fs::rename(old, stash).map_err(|e| Error::io("move aside", old, e))?;
            j.record_create(old)?;
            fs::rename(new, old).map_err(|e| Error::io("move into place", new, e))?;
            faultpoint::hit("swap.renamed");
        }
        for (key, old, _, _) in &built {
            if let Some((_, vi)) = info.video_info.iter_mut().find(|(k, _)| k == key) {
                *vi = video_info_block(&reel_media::probe::probe_video(old)?, &fields);
            }
        }
        // The per-episode figures name the encoder that produced what the files now hold.
        let corrections: Vec<(u64, Vec<(String, ExtraValue)>)> = videos
            .iter()
            .filter(|(_, v)| built.iter().any(|(k, _, _, _)| *k == v.key))
            .map(|(ep, v)| {
                (
                    *ep,
                    vec![(
                        format!("videos/{}/encoder", v.key),
                        ExtraValue::Str(fin.vcodec.clone()),
                    )],
                )
            })
            .collect();
        reel_dataset::figures::append_lines(root, &corrections, &mut j)?;
        info.write(root, &mut j)
    })();
    match swapped {
        Ok(()) => j.commit()?,
        Err(e) => {
            j.rollback()?;
            return Err(e);
        }
    }
    tracing::info!(
        "converted {} video file(s) to {family} ({})",
        built.len(),
        fin.vcodec
    );
    Ok(built.len())
}
