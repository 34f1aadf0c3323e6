//! Checks made before anything on disk changes: every option in range, every camera size
//! opens in its encoder (a trial open), the root writable.

use super::WriterConfig;
use crate::plan::{validate_size, MAX_FPS};
use reel_core::{Error, Result};
use reel_media::EncoderSettings;
use std::fs;
use std::path::Path;

/// Largest file-size limit accepted (MB): 1 TiB.
const MAX_FILE_MB: f64 = 1024.0 * 1024.0;

/// The primary encoder followed by its fallbacks (a clean instance of the primary when none
/// are given: it replaces a hung or failing instance without changing the stream's format).
pub(super) fn encoder_chain(cfg: &WriterConfig) -> Vec<EncoderSettings> {
    let mut chain = vec![cfg.encoder.clone()];
    if cfg.fallbacks.is_empty() {
        let mut clean = cfg.encoder.clone();
        clean.fault = None;
        chain.push(clean);
    } else {
        chain.extend(cfg.fallbacks.iter().cloned());
    }
    chain
}

/// Every option of `cfg` in range, every camera size opened once in its encoder(s).
pub(super) fn validate_config(cfg: &WriterConfig) -> Result<()> {
    if cfg.fps == 0 || cfg.fps > MAX_FPS {
        return Err(Error::invalid(format!(
            "fps {} is out of range: it must be between 1 and {MAX_FPS}",
            cfg.fps
        )));
    }
    for (what, v) in [
        ("data file size limit", cfg.data_files_size_mb),
        ("video file size limit", cfg.video_files_size_mb),
    ] {
        let Some(v) = v else { continue };
        if !(v.is_finite() && v > 0.0 && v <= MAX_FILE_MB) {
            return Err(Error::invalid(format!(
                "{what} {v} MB is out of range: it must be a positive number of MB up to {MAX_FILE_MB}"
            )));
        }
    }
    if cfg.chunks_size == 0 {
        return Err(Error::invalid("chunks_size must be at least 1"));
    }
    if cfg.queue.max_frames_in_memory == 0 {
        return Err(Error::invalid(
            "frames kept in memory per camera must be at least 1",
        ));
    }
    if cfg.features.is_empty() {
        return Err(Error::invalid("a dataset needs at least one feature"));
    }
    let has_rgb = cfg
        .features
        .iter()
        .any(|(_, f)| f.video_hw().is_some() && !f.is_depth());
    if cfg.features.iter().any(|(_, f)| f.is_depth()) {
        cfg.depth
            .validate()
            .map_err(|e| e.context("depth encoder"))?;
    }
    if !cfg.features.video_keys().is_empty() {
        if has_rgb {
            cfg.encoder.validate()?;
            if let Some(fin) = &cfg.deferred {
                fin.validate()?;
            }
        }
        reel_media::init();
        let mut opened: Vec<(u32, u32, bool)> = Vec::new();
        for (key, f) in cfg.features.iter() {
            if let Some((h, w)) = f.video_hw() {
                validate_size(w, h).map_err(|e| e.context(format!("camera '{key}'")))?;
                if f.is_depth() {
                    if !opened.contains(&(w, h, true)) {
                        trial_open(key, w, h, cfg.fps, &cfg.depth.encoder, true)?;
                        opened.push((w, h, true));
                    }
                    continue;
                }
                if !opened.contains(&(w, h, false)) {
                    let mut clean = cfg.encoder.clone();
                    clean.fault = None; // injected faults are for the recording, not this check
                    trial_open(key, w, h, cfg.fps, &clean, false)?;
                    if let Some(fin) = &cfg.deferred {
                        trial_open(key, w, h, cfg.fps, fin, false)?;
                    }
                    opened.push((w, h, false));
                }
            }
        }
    }
    Ok(())
}

/// Opens (and closes) the encoder once at a camera's size, so that a size or option the
/// encoder refuses is reported now, naming the camera, rather than at the first save.
fn trial_open(
    key: &str,
    w: u32,
    h: u32,
    fps: u32,
    settings: &EncoderSettings,
    depth: bool,
) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("reel-trial-open-")
        .tempdir()
        .map_err(|e| Error::io("create a scratch folder", std::env::temp_dir(), e))?;
    let path = dir.path().join(format!("{w}x{h}.mp4"));
    let res = if depth {
        reel_media::EpisodeEncoder::create_depth(&path, w, h, fps, settings)
    } else {
        reel_media::EpisodeEncoder::create(&path, w, h, fps, settings)
    };
    // The folder (with the encoder's fragmented scratch file) goes when `dir` is dropped.
    match res {
        Ok(enc) => {
            drop(enc);
            Ok(())
        }
        Err(e) => {
            let hint = if settings.vcodec == "libsvtav1" && (w < 64 || h < 64) {
                "; SVT-AV1 needs at least 64x64"
            } else {
                ""
            };
            Err(Error::invalid(format!(
                "camera '{key}' ({w}x{h} at {fps} fps): the {} encoder cannot open ({e}){hint}",
                settings.vcodec
            )))
        }
    }
}

/// The root accepts new files.
pub(super) fn probe_writable(root: &Path) -> Result<()> {
    let p = root.join(".reel-write-test");
    fs::write(&p, b"x").map_err(|e| Error::io("cannot write into the dataset root", root, e))?;
    let _ = fs::remove_file(&p);
    Ok(())
}
