//! Stream facts of an MP4 read through libavformat, for `info.json`'s per-video block and
//! for checks (codec, pixel format, size, fps, frame count, time base).

use ffmpeg_next as ff;
use reel_core::{Error, Result};
use std::path::Path;

/// What FFmpeg reports about a file's first video stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Canonical codec name: "av1", "h264", "hevc".
    pub codec: String,
    pub pix_fmt: String,
    pub width: u32,
    pub height: u32,
    /// `int()` of the stream's base frame rate (r_frame_rate, else avg_frame_rate).
    pub fps: u32,
    /// Components of the pixel format (3 for yuv420p).
    pub channels: u32,
    pub has_audio: bool,
    /// Frames in the stream (nb_frames, else counted packets).
    pub frames: u64,
    pub time_base: (i32, i32),
}

/// Probes `path`'s first video stream with libavformat.
pub fn probe_video(path: &Path) -> Result<StreamInfo> {
    crate::init();
    let ctx = |what: &str| format!("{what} ({})", path.display());
    let mut ictx = ff::format::input(&path).map_err(|e| Error::media(ctx("open video"), e))?;
    let has_audio = ictx
        .streams()
        .any(|s| s.parameters().medium() == ff::media::Type::Audio);
    let ist = ictx
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| Error::media(ctx("probe"), "no video stream"))?;
    let index = ist.index();
    let tb = ist.time_base();
    let rate = if ist.rate().numerator() > 0 && ist.rate().denominator() > 0 {
        ist.rate()
    } else {
        ist.avg_frame_rate()
    };
    let fps = if rate.denominator() > 0 && rate.numerator() > 0 {
        (rate.numerator() / rate.denominator()) as u32
    } else {
        0
    };
    let nb_frames = ist.frames();
    let params = ist.parameters();
    let codec = params.id().name().to_string();
    let dec = ff::codec::context::Context::from_parameters(params)
        .and_then(|c| c.decoder().video())
        .map_err(|e| Error::media(ctx("read stream parameters"), e))?;
    let (width, height, fmt) = (dec.width(), dec.height(), dec.format());
    let (pix_fmt, channels) = match fmt.descriptor() {
        Some(d) => (d.name().to_string(), d.nb_components() as u32),
        None => ("none".to_string(), 0),
    };
    let frames = if nb_frames > 0 {
        nb_frames as u64
    } else {
        ictx.packets().filter(|(s, _)| s.index() == index).count() as u64
    };
    Ok(StreamInfo {
        codec,
        pix_fmt,
        width,
        height,
        fps,
        channels,
        has_audio,
        frames,
        time_base: (tb.numerator(), tb.denominator()),
    })
}
