//! The deferred conversion's swap-in: at `finalize`, the final-codec version of every video
//! file this session wrote is built from the converted parts, checked (frame count, duration)
//! against the live file, and all of them are swapped in with info.json in one journaled
//! transaction (rename old → `.reel/deferred/old/…`, create + rename new → old). The episodes
//! files holding this session's episodes are rewritten the same way, so that each converted
//! camera's `reel/videos/<key>/encoder` column names the encoder that produced what the
//! video file now holds.

use super::committer::video_info_block;
use super::journal_path;
use crate::deferred;
use crate::episodes::VideoRef;
use crate::info::Info;
use crate::paths::{self, FileIndex};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use reel_core::faultpoint;
use reel_core::journal::Journal;
use reel_core::{Error, Result};
use reel_media::EncoderSettings;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
                reel_media::mp4::append_segment(&new, &part, &mut j)?;
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
            reel_media::mp4::read_index(&old)?,
            reel_media::mp4::read_index(&new)?,
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
    let keys: Vec<String> = built.iter().map(|(k, _, _, _)| k.clone()).collect();
    let session_eps: Vec<u64> = videos.iter().map(|(e, _)| *e).collect();
    let tables = rewrite_encoder_columns(root, &dir, &keys, &session_eps, &fin.vcodec)?;
    faultpoint::hit("swap.built");
    // 2. Swap every file and info.json in one transaction of the dataset journal.
    let mut info = Info::read(root)?;
    let fields = fin.info_fields();
    let mut j = Journal::begin(&journal_path(root), root, durable)?;
    let swapped = (|| -> Result<()> {
        let videos = built.iter().map(|(_, old, new, stash)| (old, new, stash));
        for (old, new, stash) in videos.chain(tables.iter().map(|(o, n, s)| (o, n, s))) {
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

/// Builds, under `dir/new/`, a copy of every episodes file holding one of `episodes` in which
/// the `reel/videos/<key>/encoder` column of those episodes (for each of `keys`) says
/// `encoder`, row group by row group as the original. Returns (file, new copy, stash path)
/// for the files that needed it (a dataset without reel's columns needs none).
fn rewrite_encoder_columns(
    root: &Path,
    dir: &Path,
    keys: &[String],
    episodes: &[u64],
    encoder: &str,
) -> Result<Vec<(PathBuf, PathBuf, PathBuf)>> {
    let perr = |p: &Path, e: &dyn std::fmt::Display| Error::corrupt(p, e.to_string());
    let mut out = Vec::new();
    for file in crate::episodes::episode_files(root)? {
        let open = || {
            let f = fs::File::open(&file).map_err(|e| Error::io("open", &file, e))?;
            ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| perr(&file, &e))
        };
        let b = open()?;
        let schema = b.schema().clone();
        let group_rows: Vec<usize> = b
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows().max(1) as usize)
            .collect();
        let cols: Vec<usize> = keys
            .iter()
            .filter_map(|k| schema.index_of(&format!("reel/videos/{k}/encoder")).ok())
            .collect();
        let Ok(ep_col) = schema.index_of("episode_index") else {
            continue;
        };
        if cols.is_empty() {
            continue;
        }
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut changed = false;
        for (g, rows) in group_rows.iter().enumerate() {
            let reader = open()?
                .with_row_groups(vec![g])
                .with_batch_size(*rows)
                .build()
                .map_err(|e| perr(&file, &e))?;
            for batch in reader {
                let batch = batch.map_err(|e| perr(&file, &e))?;
                let eps = batch
                    .column(ep_col)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| perr(&file, &"episode_index is not int64"))?;
                let hit: Vec<bool> = (0..batch.num_rows())
                    .map(|r| {
                        eps.is_valid(r)
                            && u64::try_from(eps.value(r)).is_ok_and(|e| episodes.contains(&e))
                    })
                    .collect();
                if !hit.iter().any(|h| *h) {
                    batches.push(batch);
                    continue;
                }
                let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
                for &c in &cols {
                    let Some(old) = columns[c].as_any().downcast_ref::<StringArray>() else {
                        continue;
                    };
                    let new: StringArray = (0..old.len())
                        .map(|r| {
                            if hit[r] {
                                Some(encoder.to_string())
                            } else {
                                old.is_valid(r).then(|| old.value(r).to_string())
                            }
                        })
                        .collect();
                    columns[c] = Arc::new(new);
                    changed = true;
                }
                batches.push(
                    RecordBatch::try_new(batch.schema(), columns).map_err(|e| perr(&file, &e))?,
                );
            }
        }
        if !changed {
            continue;
        }
        let rel = file
            .strip_prefix(root)
            .map_err(|_| Error::invalid(format!("{} is outside the dataset", file.display())))?
            .to_path_buf();
        let new = dir.join("new").join(&rel);
        if let Some(d) = new.parent() {
            fs::create_dir_all(d).map_err(|e| Error::io("create dir", d, e))?;
        }
        let kv: Vec<(String, String)> = crate::parquet_append::key_value_metadata(&file)?
            .into_iter()
            .filter(|(k, _)| k != "ARROW:schema")
            .collect();
        let f = fs::File::create(&new).map_err(|e| Error::io("create", &new, e))?;
        let mut w = ArrowWriter::try_new(
            f,
            schema.clone(),
            Some(crate::parquet_append::writer_properties(&kv)),
        )
        .map_err(|e| perr(&new, &e))?;
        for b in &batches {
            w.write(b).map_err(|e| perr(&new, &e))?;
            w.flush().map_err(|e| perr(&new, &e))?; // one row group per original row group
        }
        w.close().map_err(|e| perr(&new, &e))?;
        out.push((file, new, dir.join("old").join(rel)));
    }
    Ok(out)
}
