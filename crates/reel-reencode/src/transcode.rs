//! The unit of work of a re-encode: one MP4 in, one MP4 out, same frames on the same 1/fps
//! grid. [`Transcoder`] is the seam the worker pool drives (tests plug in faulty ones);
//! [`FfmpegTranscoder`] is the real one, `reel_media::transcode::transcode_file` (decode every
//! frame in presentation order, B-frames included, then reel's `EpisodeEncoder`), which counts
//! frames into `progress` and stops soon after `cancel` is set.

use reel_core::{Error, Result};
use reel_media::transcode::{transcode_file, TranscodeOptions};
use reel_media::EncoderSettings;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

/// Re-encodes one video file. Implementations must count every frame written in
/// `progress` (the watchdog reads it) and give up soon after `cancel` becomes true.
pub trait Transcoder: Send + Sync + 'static {
    /// Encodes `src`'s video stream into `dst` with `settings`; `fps` is the dataset's rate,
    /// which the source must have. Returns the number of frames written.
    fn transcode(
        &self,
        src: &Path,
        dst: &Path,
        fps: u32,
        settings: &EncoderSettings,
        progress: &Arc<AtomicU64>,
        cancel: &Arc<AtomicBool>,
    ) -> Result<u64>;
}

/// The real transcoder (FFmpeg decode → RGB24 → reel's encoder).
#[derive(Debug, Clone, Copy, Default)]
pub struct FfmpegTranscoder;

impl Transcoder for FfmpegTranscoder {
    fn transcode(
        &self,
        src: &Path,
        dst: &Path,
        fps: u32,
        settings: &EncoderSettings,
        progress: &Arc<AtomicU64>,
        cancel: &Arc<AtomicBool>,
    ) -> Result<u64> {
        reel_media::init();
        let reader = reel_media::transcode::FrameReader::open(src)?;
        if reader.fps() != fps {
            return Err(Error::Mismatch(format!(
                "{}: the video runs at {} fps, the dataset at {fps}",
                src.display(),
                reader.fps()
            )));
        }
        drop(reader);
        let opts = TranscodeOptions {
            progress: Some(progress.clone()),
            cancel: Some(cancel.clone()),
        };
        Ok(transcode_file(src, dst, settings, &opts)?.frames)
    }
}
